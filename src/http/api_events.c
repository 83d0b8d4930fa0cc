#include "http/api_int.h"

int sb__api_event_routes(sb_router_t *r, sb_api_t *api)
{
    return 0;
}
