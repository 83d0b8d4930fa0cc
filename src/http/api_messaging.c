/* The messaging routes of the API.  See api_messaging.h. */
#include "http/api_messaging.h"
#include "http/api_calls.h"

int sb_api_messaging_routes(sb_router_t *r, sb_api_t *api)
{
    int rc;
    if ((rc = sb__api_twilio_routes(r, api)) != 0 || (rc = sb__api_message_routes(r, api)) != 0 ||
        (rc = sb__api_email_routes(r, api)) != 0 || (rc = sb__api_chat_routes(r, api)) != 0 ||
        (rc = sb__api_voice_routes(r, api)) != 0 || (rc = sb_api_call_routes(r, api)) != 0)
        return rc;
    return 0;
}
