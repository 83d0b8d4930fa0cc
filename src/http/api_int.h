/* Internal to the API handlers (src/http/api*.c): the service's state, per-loop state, and the
 * helpers the resource files share beyond http/api.h. */
#ifndef SB_HTTP_API_INT_H
#define SB_HTTP_API_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <sodium.h>

#include "actors/flows.h"
#include "core/phone.h"
#include "events/append.h"
#include "http/api.h"
#include "http/ratelimit.h"

/* A loop's cache of verified tokens: direct-mapped by a keyed hash of the token (SipHash-2-4 with
 * 128-bit output under a random per-process key: uniform, and nobody without the key can make two
 * tokens collide), compared in constant time.  The SHA-256 that the database knows is computed only
 * on a miss. */
#define SB__API_TOKEN_SLOTS 2048
#define SB__API_TOKEN_KEY_BYTES 16

typedef struct sb__api_token_slot_s {
    uint8_t key[SB__API_TOKEN_KEY_BYTES];
    char user_id[SB_UUID_STRLEN + 1];
    int64_t expires_us; /* the session's expiry */
    uint64_t cached_ms; /* loop time when verified */
    uint64_t epoch;     /* the service's revocation epoch then */
    bool used;
} sb__api_token_slot_t;

/* What /metrics reports about a loop's database side, sampled on the loop (the appender's and the
 * connection's counters are the loop's own, not safe to read from another thread). */
typedef struct sb__api_sample_s {
    _Atomic uint64_t events, commands, conflicts, batches, failures, rechecks;
    _Atomic uint64_t commit_latency[SB_APPEND_LATENCY_BUCKETS + 1], commit_latency_sum_us;
    _Atomic uint64_t db_requests, db_errors, db_reconnects;
    _Atomic int db_connected, appender_connected;
} sb__api_sample_t;

/* A loop's cache of workspace states (membership and roles for authorization, the context for
 * contact decisions), direct-mapped by workspace id.  An entry is trusted only while the service's
 * workspace epoch is the one it was filled under. */
#define SB__API_WS_SLOTS 256

typedef struct sb__api_ws_slot_s {
    char ws[SB_UUID_STRLEN + 1];
    json_t *state;   /* read-only once cached: shared by the requests of this loop */
    json_t *context; /* sb_workspace_context(state), read-only; shared with owner loops of asks */
    int64_t version;
    uint64_t epoch;
    uint64_t cached_ms;
    /* The role of the last caller who used this entry, read from state ("" when none yet): the
     * same caller's next requests skip the lookup.  Dies with the entry, so it is never staler. */
    char member[SB_UUID_STRLEN + 1];
    sb_role_t member_role;
} sb__api_ws_slot_t;

typedef struct sb__api_threads_s sb__api_threads_t;

typedef struct sb__api_loop_s {
    sb_loop_t *loop;
    bool started;
    sb__api_threads_t *threads; /* api_thread.c */
    sb__api_ws_slot_t ws[SB__API_WS_SLOTS];
    struct sb_sub_s *ws_sub; /* loop 0: workspace events from the follower */
    uv_timer_t sampler;      /* every second: the sample below */
    sb__api_sample_t sample;
    sb__api_token_slot_t tokens[SB__API_TOKEN_SLOTS];
} sb__api_loop_t;

/* The workspace cache (api_principal.c): start subscribes loop 0 to workspace events; stop closes
 * that subscription and releases every loop's cached states. */
void sb__api_ws_cache_start(sb__api_loop_t *l, sb_api_t *api);
void sb__api_ws_cache_stop(sb__api_loop_t *l);

/* Contacts' note threads cached per loop and fed by the follower (api_thread.c). */
sb__api_threads_t *sb__api_threads_start(sb_loop_t *loop, struct sb_follower_s *follower);
void sb__api_threads_stop(sb__api_threads_t *c);
void sb__api_threads_free(sb__api_threads_t *c);
/* The reader's first page of contact's notes (limit 1..200) from the cache, or NULL on a miss: a
 * reference to a rendered page that the cache may hand to other requests too.  Its text (and gzip
 * copy) stay valid and unchanged until the caller releases it (sb__api_page_release, once), on the
 * cache's loop.  gzip: the caller may send gzip, so the page gets its gzip copy if it has none
 * (compressed once, kept with the page; sb__api_page_gzip). */
typedef struct sb__api_page_s sb__api_page_t;
sb__api_page_t *sb__api_threads_page(sb__api_threads_t *c, const char *contact, const char *ws,
                                     const char *reader, int limit, bool gzip);
/* The reader's page of contact's notes after a cursor (the note at after_at, after_id) from the
 * cache: its text (caller frees), or NULL on a miss (not cached, or past the notes it holds).  A
 * cached thread can be ahead of the notes read model (it applies the follower's events at once), so
 * a client paging through a thread gets every page from the same source while it stays cached. */
char *sb__api_threads_page_after(sb__api_threads_t *c, const char *contact, const char *ws,
                                 const char *reader, int limit, int64_t after_at, const char *after_id);
const char *sb__api_page_text(const sb__api_page_t *p, size_t *len);
/* The page's text in gzip, or NULL when it has none (never asked for, too small or too large to be
 * worth it: http/encoding.h). */
const char *sb__api_page_gzip(const sb__api_page_t *p, size_t *len);
void sb__api_page_release(void *p);
/* listed: whether the contacts read model listed the contact, at its checkpoint listed_at.
 * *behind: this loop has followed an event of the contact (a note's, or its deletion) that the read
 * models had not applied when they answered, so the page may be out of date and the contact gone. */
char *sb__api_threads_fill(sb__api_threads_t *c, const char *contact, const char *ws, const char *reader,
                           int limit, PGresult *rows, bool listed, int64_t listed_at, bool *oom,
                           bool *behind);
/* A page from the page query's rows (no checkpoint column). */
char *sb__api_notes_page(PGresult *rows, const char *contact, int limit);
/* hits, misses, fills, fills not kept, entries. */
void sb__api_threads_stats(const sb__api_threads_t *c, uint64_t out[5]);

/* Starts and stops a loop's sampler (api_metrics.c). */
void sb__api_sampler_start(sb__api_loop_t *l);
void sb__api_sampler_stop(sb__api_loop_t *l);

struct sb_api_s {
    sb_app_t *app;
    sb_api_options_t opts;
    sb_router_t *router;
    int nloops;
    sb__api_loop_t **loops; /* by loop index */
    /* Bumped by every logout: a cached token verified under an older epoch is checked again, so a
     * revoked token stops working on every loop of this process at once. */
    _Atomic uint64_t token_epoch;
    uint8_t token_key[crypto_shorthash_siphashx24_KEYBYTES]; /* the token cache's hash key */
    /* Bumped whenever a workspace stream changes: by the API itself once a workspace command it
     * sent has committed (before it answers), and by the follower for changes made elsewhere
     * (other processes, reactors).  Every loop's cached workspace states are then read again. */
    _Atomic uint64_t ws_epoch;
    _Atomic int hash_jobs; /* password hashes queued or running */
    bool authorizer;       /* installed as the HTTP layer's workspace authorizer */
    /* A hash of a random password with the configured cost: a login for an unknown e-mail verifies
     * against it, so it takes as long as a wrong password for a known one. */
    char dummy_hash[crypto_pwhash_STRBYTES];
    /* counters for /metrics (relaxed; any loop) */
    _Atomic uint64_t signups, logins, login_failures, login_rate_limited, idempotent_replays;
    _Atomic uint64_t chat_rate_limited;
    sb_ratelimit_t *chat_sessions; /* per client address */
    sb_ratelimit_t *chat_messages; /* per visitor */
    sb_ratelimit_t *signups_limit; /* per client address */
    _Atomic uint64_t signup_rate_limited;
};

sb__api_loop_t *sb__api_loop(const sb_api_call_t *c);
/* Frees a call whose request is gone (no reply is possible). */
void sb__api_drop(sb_api_call_t *c);

/* Route registration, one function per resource file. */
int sb__api_auth_routes(sb_router_t *r, sb_api_t *api);
int sb__api_workspace_routes(sb_router_t *r, sb_api_t *api);
int sb__api_settings_routes(sb_router_t *r, sb_api_t *api);
int sb__api_contact_routes(sb_router_t *r, sb_api_t *api);
int sb__api_contact_list_routes(sb_router_t *r, sb_api_t *api);
int sb__api_analytics_routes(sb_router_t *r, sb_api_t *api);
int sb__api_note_routes(sb_router_t *r, sb_api_t *api);
int sb__api_event_routes(sb_router_t *r, sb_api_t *api);
int sb__api_metrics_routes(sb_router_t *r, sb_api_t *api);
int sb__api_me_routes(sb_router_t *r, sb_api_t *api);

/* ---- tokens (api_principal.c) ---- */

#define SB__API_TOKEN_PREFIX "sbt_"
#define SB__API_TOKEN_LEN (4 + 43) /* prefix + base64url of 32 random bytes */

/* A fresh token (NUL-terminated) and its SHA-256. */
void sb__api_token_new(char out[SB__API_TOKEN_LEN + 1], uint8_t hash[32]);
/* 64 lowercase hex characters and a NUL. */
void sb__api_hex(const uint8_t *p, size_t n, char *out);
/* Spends one request of key from rl (src/http/ratelimit.h).  True when allowed; otherwise answers
 * 429 rate_limited with Retry-After and the message what, counts it in *refused, and returns
 * false. */
bool sb__api_within_limit(sb_api_call_t *c, sb_ratelimit_t *rl, const char *key, const char *what,
                          _Atomic uint64_t *refused);
/* SHA-256 of the token text; false when the text cannot be a token (length, characters). */
bool sb__api_token_hash(const char *token, size_t len, uint8_t hash[32]);
/* True when the text can be a token (length, prefix, characters). */
bool sb__api_token_is_wellformed(const char *token, size_t len);
/* The bearer token of the request (Authorization, else ?access_token= when allow_query), or
 * NULL.  *len gets its length. */
const char *sb__api_bearer(sb_api_call_t *c, bool allow_query, size_t *len);
/* Installs the API as the HTTP layer's workspace authorizer (http/auth_hook.h) unless one is
 * installed already. */
void sb__api_install_authorizer(sb_api_t *api);
/* Forgets every cached verification (after a logout). */
void sb__api_tokens_revoked(sb_api_t *api);

/* ---- idempotency (api_idem.c) ---- */

/* Ends an idempotent call's key after the reply text is known: stores a 2xx response, releases the
 * key otherwise; then runs deliver (which sends and frees the call) whether or not that worked. */
void sb__api_idem_finish(sb_api_call_t *c, int status, void (*deliver)(sb_api_call_t *c));
void sb__api_idem_free(struct sb__api_idem_s *idem);
/* Records a response header for a replay (name lowercase). */
void sb__api_idem_header(sb_api_call_t *c, const char *name, const char *value);

/* ---- flows (actors/flows.h) from handlers (api.c) ---- */

typedef void (*sb__api_flow_cb)(sb_api_call_t *c, const sb_flow_result_t *res);
typedef struct sb__api_flow_s sb__api_flow_t;
/* The options of a flow the call starts: the acting user (none before sign-in), the request id as
 * correlation id, source "api".  Callers add If-Match or an id. */
void sb__api_flow_opts(const sb_api_call_t *c, sb_flow_opts_t *o);
/* Links a flow to the call: start the flow with sb__api_on_flow and the link as its callback and
 * data, then pass what it returned to sb__api_flow_started.  done runs once the flow answers, when
 * the request is still there (a call whose request went away is dropped instead). */
sb__api_flow_t *sb__api_flow_link(sb_api_call_t *c, sb__api_flow_cb done);
void sb__api_on_flow(const sb_flow_result_t *res, void *data);
/* A flow that failed to start (rc != 0) frees its link and answers rc's error. */
void sb__api_flow_started(sb_api_call_t *c, sb__api_flow_t *link, int rc);
/* Answers a failed flow: the deciders' and the flow's rejections as they are, 412 with the current
 * ETag for a failed If-Match, 409 when the subject kept changing, 503 when claims timed out, else
 * the status's error. */
void sb__api_reply_flow_error(sb_api_call_t *c, const sb_flow_result_t *res);

/* ---- passwords and e-mail addresses (api_auth.c) ---- */

typedef void (*sb__api_pw_cb)(sb_api_call_t *c, int rc);
/* Hashes password (verify false; the hash goes to hash_out, crypto_pwhash_STRBYTES bytes in the
 * call's state) or verifies it against against_hash (0, or SB_EPERM when it does not match), with
 * argon2id on the libuv thread pool; done runs on the call's loop afterwards.  Answers 503 itself
 * when too many hashes are queued (done never runs then). */
void sb__api_pw_start(sb_api_call_t *c, const char *password, bool verify, const char *against_hash,
                      char *hash_out, sb__api_pw_cb done);
/* The body's "email", normalised into out ("" when absent and not required); false after
 * answering 400. */
bool sb__api_body_email(sb_api_call_t *c, bool required, char out[SB_EMAIL_MAX]);
/* The body's "password": a string of at most 1024 bytes, required; false after answering 400. */
bool sb__api_body_password(sb_api_call_t *c, const char **out);

/* ---- shapes shared by resource files ---- */

/* The API's contact object from a contact actor's state. */
json_t *sb__api_contact_json(const char *id, const json_t *state);
/* True when a contact actor's state is a live contact (created, not deleted) of the call's
 * workspace: anything else answers 404 contact_not_found, revealing nothing. */
bool sb__api_is_live_contact(const sb_api_call_t *c, const json_t *state);
/* Answers 404 contact_not_found. */
void sb__api_reply_no_contact(sb_api_call_t *c);
/* Answers a failed ask to a contact: its 404s (not found, deleted) as 404 contact_not_found, the
 * rest as sb_api_reply_ask_error. */
void sb__api_reply_contact_ask_error(sb_api_call_t *c, const sb_ask_reply_t *reply);

/* ---- small JSON helpers ---- */

/* The string at key, or NULL. */
const char *sb__api_str(const json_t *o, const char *key);
/* RFC 3339 text of microseconds since the epoch, as a new JSON string. */
json_t *sb__api_time(int64_t us);
/* A string field of the body: absent -> *out NULL and true (unless required: 400 "required");
 * not a string or its length in characters outside min..max -> 400 "invalid" naming field. */
bool sb__api_body_str(sb_api_call_t *c, const char *field, bool required, size_t min, size_t max,
                      const char **out);
/* Number of UTF-8 characters (code points) in s (valid UTF-8). */
size_t sb__api_utf8_len(const char *s);
/* True when s is a canonical uuid; writes its lowercase form into out. */
bool sb__api_uuid(const char *s, char out[SB_UUID_STRLEN + 1]);

#endif
