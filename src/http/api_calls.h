/* Calls and call control in the JSON API (api_calls.c; SPEC §5, docs/voice_control.md), on top of
 * http/api.h.  Registered with the messaging routes (api_messaging.c). */
#ifndef SB_HTTP_API_CALLS_H
#define SB_HTTP_API_CALLS_H

#include "http/api.h"
#include "http/router.h"

/* Registers POST/GET /v1/workspaces/{ws}/calls, GET .../calls/{id}, POST .../calls/{id}/park,
 * unpark, transfer, hangup, and GET/PUT .../calls/settings.  api must outlive the router.  0 or a
 * negative code. */
int sb_api_call_routes(sb_router_t *r, sb_api_t *api);

#endif
