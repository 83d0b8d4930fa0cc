/* The webhooks Twilio and Resend call for messaging (SPEC §7; docs/messaging.md):
 *
 *   POST /webhooks/twilio/messaging         inbound SMS, MMS, WhatsApp -> MessageReceived
 *   POST /webhooks/twilio/messaging/status  MessageStatus callbacks    -> MessageSent/Delivered/...
 *   POST /webhooks/resend                   svix-signed e-mail events  -> statuses, complaints
 *
 * Thin by design: read the body, route (the To number names the workspace; our ids in a
 * StatusCallback URL name the message), check the signature with the workspace's credentials,
 * send one command to the owning actor, and answer only once it has committed.  A missing or wrong
 * signature gets 403 and stores nothing; a malformed body 400; a repeat (Twilio retries) stores
 * nothing more and gets 200 again.
 *
 * The handlers run on any worker loop and need the messaging service (reactors/messaging.h) and
 * the actor runtime running there. */
#ifndef SB_HTTP_WEBHOOKS_H
#define SB_HTTP_WEBHOOKS_H

#include "core/config.h"
#include "http/router.h"

/* Registers the three routes.  cfg (public_url: the base of every signature check) must outlive
 * the router.  0 or a negative code (SB_EEXIST when a route is taken). */
int sb_webhooks_register(sb_router_t *r, const sb_config_t *cfg);

/* Counters, summed over every loop (any thread; relaxed). */
typedef struct sb_webhooks_stats_s {
    unsigned long long inbound;      /* messages recorded (repeats included) */
    unsigned long long statuses;     /* status callbacks answered 200 */
    unsigned long long email_events; /* Resend events answered 200 */
    unsigned long long forbidden;    /* 403: signature, account or routing */
    unsigned long long malformed;    /* 400 / 415 */
    unsigned long long failed;       /* 5xx */
} sb_webhooks_stats_t;
void sb_webhooks_get_stats(sb_webhooks_stats_t *out);

#endif
