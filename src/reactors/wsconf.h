/* A workspace's messaging configuration, as the webhooks and the senders need it: its Twilio account
 * and opened credentials, its e-mail sender and Resend key, its numbers, default country and the
 * context contact decisions take.  Read from the workspace actor (sb_actor_get) and the sealed
 * secrets (db/secrets.h), and cached per loop so a webhook costs no database round trip: the
 * server runs with no provider configuration anywhere, and provider clients are made per workspace
 * on demand from what this returns.
 *
 * Routing: the workspace a Twilio number belongs to is read from the number's claim stream
 * ("number:<e164>", actors/kinds.h), the record that keeps a number in one workspace.  Unlike a read
 * model it never lags the log, so a webhook that arrives right after set-up is routed.
 *
 * Freshness: loop 0 follows the log's workspace (and number claim) events and tells every loop to
 * forget what they change, so a change made by any process is seen within the follower's latency;
 * entries also expire after SB_WSCONF_TTL_MS.  A caller that finds the configuration wrong (a
 * signature that does not verify) may ask for a fresh read with SB_WSCONF_RELOAD.
 *
 * Everything runs on the calling worker loop (sb_loop_current(); the messaging service must have
 * been started on it, reactors/messaging.h).  Callbacks fire on that loop, never inside the
 * starting call.  Secrets stay in memory only in these entries and are wiped when an entry goes. */
#ifndef SB_REACTORS_WSCONF_H
#define SB_REACTORS_WSCONF_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/phone.h"
#include "core/uuid.h"
#include "providers/twilio.h"

#define SB_WSCONF_TTL_MS 60000
#define SB_WSCONF_SECRET_MAX 255

typedef struct sb_wsconf_s {
    char workspace_id[SB_UUID_STRLEN + 1];
    int64_t version; /* the workspace stream's version this was read at */
    json_t *state;   /* the workspace's state (read-only) */
    json_t *context; /* sb_workspace_context(state), for contact and call decisions */
    char default_country[3];
    /* Twilio: set when twilio is true */
    bool twilio;
    char account_sid[SB_TWILIO_SID_LEN + 1];
    char api_key_sid[SB_TWILIO_SID_LEN + 1];   /* "" when none */
    char twiml_app_sid[SB_TWILIO_SID_LEN + 1]; /* "" when none */
    char auth_token[SB_TWILIO_SECRET_MAX + 1];
    char api_key_secret[SB_TWILIO_SECRET_MAX + 1];
    char first_number[SB_PHONE_MAX]; /* the lowest of its numbers, "" when none: a default sender */
    /* E-mail: from when set; a Resend key and webhook secret when sealed with it */
    char email_from[SB_EMAIL_MAX];
    char email_from_name[128];
    char resend_key[SB_WSCONF_SECRET_MAX + 1];
    char resend_webhook_secret[SB_WSCONF_SECRET_MAX + 1];
    /* internal */
    int _refs;
    uint64_t _loaded_ms;
} sb_wsconf_t;

/* status 0 with conf (valid during the call; sb_wsconf_ref to keep it), or SB_ENOTFOUND (no such
 * workspace, or for a route no workspace has the number), SB_EPERM (its secrets are sealed under
 * another master key), or what the actor runtime or the database answered (SB_EOVERLOAD,
 * SB_EDBDOWN, SB_ESHUTDOWN, ...). */
typedef void (*sb_wsconf_cb)(int status, const sb_wsconf_t *conf, void *data);

enum {
    SB_WSCONF_RELOAD = 1, /* ignore the cached entry: read the workspace again */
};

/* Whether a request that does not verify against conf (a cached configuration) may have it read
 * again (the credentials may have just changed): only once it is a second old, so forged requests
 * cannot turn into a stream of reads.  Call on the loop conf came from. */
bool sb_wsconf_may_reload(const sb_wsconf_t *conf);

/* The cached configuration of workspace_id on the calling loop when it is fresh, else NULL.
 * Borrowed: valid until the loop next runs something else. */
const sb_wsconf_t *sb_wsconf_peek(const char *workspace_id);

/* Reads workspace_id's configuration (coalescing concurrent reads of one workspace on a loop).  0
 * and cb later, or SB_EINVAL (not a uuid, not on a loop running the messaging service) / SB_ENOMEM
 * and no callback. */
int sb_wsconf_get(const char *workspace_id, int flags, sb_wsconf_cb cb, void *data);

/* The workspace whose number e164 is (the number's claim), then its configuration.  As
 * sb_wsconf_get; SB_ENOTFOUND when no workspace has the number. */
int sb_wsconf_route(const char *e164, int flags, sb_wsconf_cb cb, void *data);

/* The cached configuration of the workspace whose number e164 is, when both the route and the
 * configuration are cached and fresh, else NULL.  Borrowed, as sb_wsconf_peek. */
const sb_wsconf_t *sb_wsconf_route_peek(const char *e164);

/* Keeps conf past the callback, on its loop; release with sb_wsconf_unref on the same loop. */
void sb_wsconf_ref(const sb_wsconf_t *conf);
void sb_wsconf_unref(const sb_wsconf_t *conf);

/* Senders: which contact the messages from a number to a workspace were last filed under, per
 * loop, so that a contact's next message skips the find-or-create flow (its claim and
 * holder reads).  Only a hint: the contact may have lost the number or been deleted since, so the
 * caller must send its command in a form the contact's decider refuses in that case (ReceiveMessage
 * with from_listed) and fall back to the flow then.  Bounded (set-associative, the least recently
 * used sender of a set makes room: reactors/senders.h); nothing is ever read from the database.
 *
 * sb_wsconf_sender_peek: true with the contact's uuid in contact_id when one is remembered.
 * sb_wsconf_sender_remember: remembers contact_id for number, on this loop at once and on the
 * others through posted tasks (no-op off a messaging loop, or when an argument is not a uuid /
 * E.164 number).  sb_wsconf_sender_forget: forgets number's entry. */
bool sb_wsconf_sender_peek(const char *workspace_id, const char *e164, char contact_id[SB_UUID_STRLEN + 1]);
void sb_wsconf_sender_remember(const char *workspace_id, const char *e164, const char *contact_id);
void sb_wsconf_sender_forget(const char *workspace_id, const char *e164);

/* Forgets the calling loop's entries for workspace_id (NULL: all) and the routes to it; for code
 * that has just changed a workspace and must not read the old configuration again.  Other loops
 * learn of the change from the follower. */
void sb_wsconf_forget(const char *workspace_id);

#endif
