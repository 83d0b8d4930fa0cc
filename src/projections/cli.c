/* placeholder */
#include "projections/projections.h"
int sb_cmd_projections(sb_config_t *cfg, int argc, char **argv)
{
    return 2;
}
