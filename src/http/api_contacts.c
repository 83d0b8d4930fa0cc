#include "http/api_int.h"

int sb__api_contact_routes(sb_router_t *r, sb_api_t *api)
{
    return 0;
}
