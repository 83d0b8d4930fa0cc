/* Inside the Twilio set-up (api_twilio*.c): what one PUT or DELETE carries from step to step, and
 * the steps the files hand each other.
 *
 *   api_twilio.c         routes, GET, the PUT's start (credentials, the recorded configuration), DELETE
 *   api_twilio_remote.c  the PUT's steps at Twilio: the API key, the TwiML app, the numbers
 *   api_twilio_record.c  the steps in our log: sealing, ConfigureTwilio, the numbers' claims, the end
 *
 * Every step runs on the request's loop; a step either starts the next one or answers the request
 * (which frees the call and, through cleanup, everything below). */
#ifndef SB_HTTP_API_TWILIO_INT_H
#define SB_HTTP_API_TWILIO_INT_H

#include <stdbool.h>
#include <stdio.h>

#include "db/secrets.h"
#include "http/api_int.h"
#include "providers/twilio.h"

#define SB__TWS_MAX_NUMBERS 1000

typedef struct {
    bool deleting;
    sb_twilio_t tw;  /* the account's credentials */
    sb_twilio_t key; /* the API key's, once known */
    sb_twilio_req_t *pending;
    char account_sid[SB_TWILIO_SID_LEN + 1];
    char token[SB_TWILIO_SECRET_MAX + 1];
    bool same_account; /* the account already configured */
    char old_ref[SB_SECRET_REF_LEN + 1];
    char old_token[SB_TWILIO_SECRET_MAX + 1];
    char old_key_sid[SB_TWILIO_SID_LEN + 1];
    char old_key_secret[SB_TWILIO_SECRET_MAX + 1];
    char old_app_sid[SB_TWILIO_SID_LEN + 1];
    char key_sid[SB_TWILIO_SID_LEN + 1];
    char key_secret[SB_TWILIO_SECRET_MAX + 1];
    char app_sid[SB_TWILIO_SID_LEN + 1];
    char new_ref[SB_SECRET_REF_LEN + 1];
    char voice_url[512], voice_status_url[512], sms_url[512];
    json_t
        *numbers;   /* the account's: [{"number", "sid", "voice_application_sid", "sms_url", "sms_method"}] */
    json_t *report; /* {"<e164>": "configured" | "unchanged" | "taken" | "invalid" | "removed"} */
    json_t *stale;  /* numbers to remove (PUT: no longer on the account) and release */
    size_t next;
    json_t *state; /* the workspace state after the last command */
    int64_t version;
} sb__tws_t;

static inline sb__tws_t *sb__tws_of(sb_api_call_t *c)
{
    return c->data;
}

static inline void sb__tws_copy(char *out, size_t cap, const char *v)
{
    snprintf(out, cap, "%s", v != NULL ? v : "");
}

/* "workspace-<ws>", the workspace actor's stream. */
void sb__tws_ws_stream(const sb_api_call_t *c, char out[16 + SB_UUID_STRLEN]);

/* Asks the workspace actor cmd (taken), as the request (its correlation, not its context), checking
 * the request's If-Match when if_match (answering 412 and not asking when it fails); cb as for
 * sb_api_ask. */
void sb__tws_ask_workspace(sb_api_call_t *c, json_t *cmd, bool if_match, sb_api_ask_cb cb);

/* The name of what the set-up creates at Twilio (key, app): "Switchboard <ws>". */
void sb__tws_name(const sb_api_call_t *c, char out[64]);

/* A step after an outside call (Twilio, the secrets): true when the client is gone, in which case
 * the call is freed and nothing more may be done with it. */
bool sb__tws_gone(sb_api_call_t *c);

/* The start of every Twilio answer's callback: the call to go on with, or NULL when the client
 * left or (what != NULL) Twilio failed, which has been answered (see sb__tws_reply_twilio_error).
 * With what == NULL errors are the caller's to look at. */
sb_api_call_t *sb__tws_answered(const sb_twilio_result_t *res, void *data, const char *what);

/* Twilio's failure as our answer: bad credentials are the caller's (400), the rest Twilio's (502).
 * what says what we tried ("list the numbers"); "account" names the first check. */
void sb__tws_reply_twilio_error(sb_api_call_t *c, const sb_twilio_result_t *res, const char *what);

/* A step that could not even start (rc from the request's constructor) answers with rc. */
void sb__tws_started(sb_api_call_t *c, int rc);

/* The configuration as GET answers it (never a secret); report adds "changes". */
json_t *sb__tws_config_json(const sb_api_call_t *c, const json_t *state, const json_t *report);

/* api_twilio_remote.c: PUT from the API key on (key, app, numbers), then sb__tws_seal. */
void sb__tws_ensure_key(sb_api_call_t *c);

/* api_twilio_record.c: PUT from sealing on (seal, ConfigureTwilio, claims, the end). */
void sb__tws_seal(sb_api_call_t *c);

/* api_twilio_record.c: removes (PUT only) and releases every number in stale, then finishes: the
 * PUT with its answer, a DELETE by deleting the secrets and answering 204. */
void sb__tws_release_stale(sb_api_call_t *c);

#endif
