/* The messaging part of the JSON API (SPEC §5), on top of http/api.h:
 *
 *   PUT/GET/DELETE /v1/workspaces/{ws}/twilio          Twilio set-up (api_twilio.c)
 *   PUT/GET/DELETE /v1/workspaces/{ws}/email           e-mail sender and Resend key (api_email.c)
 *   GET/POST /v1/workspaces/{ws}/contacts/{id}/messages, DELETE .../messages/{mid} (api_messages.c)
 *   /v1/chat/{ws}/...                                   the website chat widget (api_chat.c)
 *   .../voice/token, /v1/me/presence, .../voice/agents|numbers, .../contacts/{id}/calls (api_voice.c)
 *
 * Registered by serve.c after sb_api_create, on the same router. */
#ifndef SB_HTTP_API_MESSAGING_H
#define SB_HTTP_API_MESSAGING_H

#include "http/api.h"
#include "http/router.h"

/* Registers every messaging route.  api must outlive the router.  0 or a negative code. */
int sb_api_messaging_routes(sb_router_t *r, sb_api_t *api);

/* Per resource file. */
int sb__api_twilio_routes(sb_router_t *r, sb_api_t *api);
int sb__api_message_routes(sb_router_t *r, sb_api_t *api);
int sb__api_email_routes(sb_router_t *r, sb_api_t *api);
int sb__api_chat_routes(sb_router_t *r, sb_api_t *api);
int sb__api_voice_routes(sb_router_t *r, sb_api_t *api);

#endif
