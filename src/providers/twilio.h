/* Twilio's REST API (SPEC §8), asynchronous, on the calling loop's HTTP client.
 *
 * A client is a small value made on demand from a workspace's credentials (sb_twilio_init copies
 * them); it holds no connection and needs no freeing beyond sb_twilio_clear, which wipes the
 * secret.  Every operation POSTs application/x-www-form-urlencoded fields (repeated keys for lists)
 * or GETs, with HTTP basic auth, under {api_base}/2010-04-01/Accounts/{AccountSid}/, and answers
 * through one callback with the parsed JSON.  Twilio's error JSON ({code, message, more_info,
 * status}) comes back as error SB_EREJECTED with the code and text; transport failures as the
 * HTTP client's codes (http_client.h), so a caller can tell "Twilio said no" from "we do not know".
 *
 * Calls, callbacks and cancellation follow http_client.h: start on a loop thread, the callback
 * fires once on that thread (never from inside the starting call), sb_twilio_cancel suppresses it. */
#ifndef SB_PROVIDERS_TWILIO_H
#define SB_PROVIDERS_TWILIO_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "providers/http_client.h"

#define SB_TWILIO_API_VERSION "2010-04-01"
#define SB_TWILIO_SID_LEN 34     /* two letters and 32 hex digits */
#define SB_TWILIO_SECRET_MAX 128 /* auth tokens are 32 characters, API key secrets 32 */
#define SB_TWILIO_BASE_MAX 255
#define SB_TWILIO_MAX_RESPONSE (4 * 1024 * 1024) /* a page of 1,000 numbers stays under this */

typedef struct sb_twilio_s {
    sb_http_client_t *http;
    char api_base[SB_TWILIO_BASE_MAX + 1]; /* without a trailing slash */
    char account_sid[SB_TWILIO_SID_LEN + 1];
    char username[SB_TWILIO_SID_LEN + 1]; /* the account SID, or an API key SID */
    char secret[SB_TWILIO_SECRET_MAX + 1];
    const sb_http_retry_t *retry; /* NULL (the default): one attempt; must outlive the client */
    uint64_t timeout_ms;          /* 0: SB_HTTP_DEFAULT_TIMEOUT_MS */
    bool fresh_connection;        /* each request on a connection of its own (http_client.h) */
} sb_twilio_t;

/* Fills tw for the account (HTTP basic auth with account_sid and auth_token).  api_base: e.g.
 * cfg->twilio_api_base.  0 or SB_EINVAL (an account SID that is not "AC" + 32 hex digits, an
 * empty or too long token or base). */
int sb_twilio_init(sb_twilio_t *tw, sb_http_client_t *http, const char *api_base, const char *account_sid,
                   const char *auth_token);

/* Authenticates with an API key instead of the auth token (Twilio accepts both for REST). */
int sb_twilio_use_api_key(sb_twilio_t *tw, const char *key_sid, const char *key_secret);

/* Wipes the secret. */
void sb_twilio_clear(sb_twilio_t *tw);

/* True when s is a Twilio SID with the given two-letter prefix ("AC", "SM", ...; NULL: any two
 * uppercase letters). */
bool sb_twilio_sid_is_valid(const char *s, const char *prefix);

typedef struct sb_twilio_result_s {
    /* 0 for a 2xx answer; SB_EREJECTED when Twilio answered with an error (status, code, message);
     * SB_ECODEC when a 2xx answer is not JSON; else a transport error (http_client.h). */
    int error;
    long status;                 /* HTTP status; 0 without an answer */
    int code;                    /* Twilio's error code (20003, 21211, ...); 0 when none */
    const char *message;         /* Twilio's message or the transport error's text; "" when ok; never NULL */
    const char *more_info;       /* Twilio's link to the error's documentation; never NULL */
    json_t *json;                /* the parsed answer (borrowed), NULL when it had no body (204) */
    const char *sid;             /* json's "sid", when there is one */
    const char *resource_status; /* json's "status" (a message's or call's), when there is one */
    const char *next_page_uri;   /* lists: the next page for sb_twilio_list_*, NULL on the last */
    const sb_http_response_t *http; /* the raw answer: for sb_http_retry_next, Retry-After, sent */
} sb_twilio_result_t;

/* Fires once; everything in res is valid only during the call. */
typedef void (*sb_twilio_cb)(const sb_twilio_result_t *res, void *data);

typedef struct sb_twilio_req_s sb_twilio_req_t;

/* The callback will not fire; data may be freed once this returns. */
void sb_twilio_cancel(sb_twilio_req_t *req);

/* ---- messages ---- */

typedef struct sb_twilio_message_s {
    const char *to;                    /* E.164, or "whatsapp:+..." */
    const char *from;                  /* one of the account's numbers (or "whatsapp:+...") */
    const char *messaging_service_sid; /* instead of from; NULL when from is given */
    const char *body;                  /* may be NULL with media */
    const char *const *media_urls;     /* MediaUrl, repeated; up to 10 */
    size_t n_media;
    const char *status_callback; /* NULL: none */
} sb_twilio_message_t;

/* POST Messages.json.  res->sid is the message's SID ("SM..."/"MM..."). */
int sb_twilio_send_message(const sb_twilio_t *tw, const sb_twilio_message_t *m, sb_twilio_cb cb, void *data,
                           sb_twilio_req_t **reqp);

/* ---- calls ---- */

typedef struct sb_twilio_call_s {
    const char *to;
    const char *from;
    const char *url;    /* TwiML URL; exactly one of url and twiml */
    const char *twiml;  /* inline TwiML */
    const char *method; /* for url; NULL: Twilio's default (POST) */
    const char *status_callback;
    const char *const
        *status_events; /* StatusCallbackEvent, repeated: initiated ringing answered completed */
    size_t n_events;
    int timeout_s; /* ring time; 0: Twilio's default */
} sb_twilio_call_t;

/* POST Calls.json.  res->sid is the call's SID ("CA..."). */
int sb_twilio_create_call(const sb_twilio_t *tw, const sb_twilio_call_t *c, sb_twilio_cb cb, void *data,
                          sb_twilio_req_t **reqp);

typedef struct sb_twilio_call_update_s {
    const char *twiml; /* new instructions; exactly one of twiml, url, complete */
    const char *url;
    const char *method;
    bool complete; /* Status=completed: hang up */
} sb_twilio_call_update_t;

/* POST Calls/{call_sid}.json: redirect a live call (park, unpark, transfer) or hang up. */
int sb_twilio_update_call(const sb_twilio_t *tw, const char *call_sid, const sb_twilio_call_update_t *u,
                          sb_twilio_cb cb, void *data, sb_twilio_req_t **reqp);

/* ---- set-up ---- */

/* POST Keys.json {FriendlyName}: a new API key; res->sid is its SID ("SK..."), and json "secret"
 * its secret, shown this once (seal it before storing). */
int sb_twilio_create_key(const sb_twilio_t *tw, const char *friendly_name, sb_twilio_cb cb, void *data,
                         sb_twilio_req_t **reqp);

typedef struct sb_twilio_app_s {
    const char *friendly_name;
    const char *voice_url;
    const char *voice_method; /* NULL: POST */
    const char *status_callback;
    const char *status_callback_method; /* NULL: POST */
} sb_twilio_app_t;

/* POST Applications.json: a TwiML app; res->sid is its SID ("AP..."). */
int sb_twilio_create_app(const sb_twilio_t *tw, const sb_twilio_app_t *a, sb_twilio_cb cb, void *data,
                         sb_twilio_req_t **reqp);
/* POST Applications/{sid}.json: changes the fields given (NULL fields are left as they are). */
int sb_twilio_update_app(const sb_twilio_t *tw, const char *app_sid, const sb_twilio_app_t *a,
                         sb_twilio_cb cb, void *data, sb_twilio_req_t **reqp);
/* DELETE Applications/{sid}.json (204: json is NULL). */
int sb_twilio_delete_app(const sb_twilio_t *tw, const char *app_sid, sb_twilio_cb cb, void *data,
                         sb_twilio_req_t **reqp);
/* GET Applications.json: the first page (friendly_name filters when not NULL), or the page at
 * page_uri (a previous answer's next_page_uri; friendly_name is then ignored).  The apps are json
 * "applications". */
int sb_twilio_list_apps(const sb_twilio_t *tw, const char *friendly_name, const char *page_uri,
                        sb_twilio_cb cb, void *data, sb_twilio_req_t **reqp);

/* GET IncomingPhoneNumbers.json: the first page of page_size (0: Twilio's default, 50) or the page
 * at page_uri.  The numbers are json "incoming_phone_numbers". */
int sb_twilio_list_numbers(const sb_twilio_t *tw, unsigned page_size, const char *page_uri, sb_twilio_cb cb,
                           void *data, sb_twilio_req_t **reqp);

typedef struct sb_twilio_number_update_s {
    const char *voice_application_sid; /* NULL fields are left as they are; "" clears one */
    const char *sms_url;
    const char *sms_method;
    const char *status_callback;
} sb_twilio_number_update_t;

/* POST IncomingPhoneNumbers/{sid}.json. */
int sb_twilio_update_number(const sb_twilio_t *tw, const char *number_sid, const sb_twilio_number_update_t *u,
                            sb_twilio_cb cb, void *data, sb_twilio_req_t **reqp);

/* GET Accounts/{sid}.json: checks the credentials (a wrong token answers SB_EREJECTED, status 401,
 * code 20003); json "status" is the account's ("active", "suspended", "closed"). */
int sb_twilio_fetch_account(const sb_twilio_t *tw, sb_twilio_cb cb, void *data, sb_twilio_req_t **reqp);

/* ---- anything else ---- */

/* method on {api_base}/2010-04-01/Accounts/{sid}/{path} (path: e.g. "Messages.json", no leading
 * slash; or, starting with "/2010-04-01/Accounts/{sid}/", a next_page_uri), with form (encoded with
 * sb_form_add; NULL for none). */
int sb_twilio_request(const sb_twilio_t *tw, const char *method, const char *path, const sb_buf_t *form,
                      sb_twilio_cb cb, void *data, sb_twilio_req_t **reqp);

#endif
