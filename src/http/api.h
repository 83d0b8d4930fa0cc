/* The JSON API's shared machinery (SPEC §5): the per-request call, principals (bearer tokens),
 * workspace authorization, the actor asks, idempotency keys, ETags, query parameters, cursors and
 * the replies.  Resource handlers live in api_<resource>.c and are registered by sb_api_register.
 *
 * A handler runs on the loop that received the request.  It starts an sb_api_call_t, which lives
 * on the heap (not in the request's pool) so asynchronous steps can outlive the request: an HTTP/2
 * client may reset its stream at any time, and h2o then frees the request at once.  Each step
 * (authenticate, load the workspace, ask an actor, query the database) continues with a callback
 * that runs only while the request is alive; when the client has gone, the call is freed instead
 * and the continuation never runs.  Exactly one sb_api_reply_* ends a call (and frees it).
 *
 *   static int on_get_x(h2o_req_t *req, const sb_route_params_t *p, void *data)
 *   {
 *       sb_api_call_t *c = sb_api_begin(req, p, sizeof(my_state_t));
 *       sb_api_workspace(c, SB_ROLE_AGENT, got_workspace);   // authenticates first
 *       return 0;
 *   }
 *
 * Authorization rules, the same on every workspace route:
 *   - no token, or a token that is unknown, expired or revoked: 401 (WWW-Authenticate: Bearer);
 *   - a workspace that does not exist, or of which the caller is not a member: 404 — another
 *     workspace's ids reveal nothing, not even that they exist;
 *   - a member whose role is below the route's: 403;
 *   - an id of another workspace's contact, note, call...: 404, as if it did not exist.
 * Membership is read from the workspace actor (sb_actor_get), which is always current; it is read
 * once per request. */
#ifndef SB_HTTP_API_H
#define SB_HTTP_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <h2o.h>
#include <jansson.h>

#include "actors/runtime.h"
#include "core/loop.h"
#include "core/uuid.h"
#include "db/pg.h"
#include "http/app.h"
#include "http/router.h"

/* ---- roles ------------------------------------------------------------------------------------ */

/* Ordered: a route that needs SB_ROLE_ADMIN admits admins and owners. */
typedef enum sb_role_e {
    SB_ROLE_NONE = 0, /* not a member */
    SB_ROLE_AGENT = 1,
    SB_ROLE_ADMIN = 2,
    SB_ROLE_OWNER = 3,
} sb_role_t;

/* "owner" -> SB_ROLE_OWNER ...; anything else SB_ROLE_NONE. */
sb_role_t sb_role_parse(const char *s);
/* "owner", "admin", "agent", or "none". */
const char *sb_role_name(sb_role_t r);

/* ---- the process-wide API service -------------------------------------------------------------- */

typedef struct sb_api_s sb_api_t;

typedef struct sb_api_options_s {
    int64_t token_ttl_s;           /* session lifetime; SWITCHBOARD_TOKEN_TTL_SECONDS, 30 days */
    int64_t token_cache_ms;        /* how long a loop trusts a verified token without asking the
                                      database again; SWITCHBOARD_TOKEN_CACHE_MS, 2000.  Logout clears
                                      every loop of this process at once; other processes notice within
                                      this time. */
    int login_max_failures_user;   /* failed logins per account per window before 429;
                                      SWITCHBOARD_LOGIN_MAX_FAILURES, 5 */
    int login_max_failures_addr;   /* ... per client address; SWITCHBOARD_LOGIN_MAX_FAILURES_ADDR, 50 */
    int64_t login_window_s;        /* the window; SWITCHBOARD_LOGIN_WINDOW_SECONDS, 900 */
    unsigned long long pwhash_ops; /* argon2id cost; SWITCHBOARD_PWHASH_OPS / _MEM (bytes);
                                      libsodium's INTERACTIVE limits by default */
    size_t pwhash_mem;
    int max_hash_jobs;         /* password hashes queued or running at once; more get 503; 32 */
    int64_t idempotency_ttl_s; /* how long responses to Idempotency-Key requests are kept; 24 h */
    /* Website chat is public: new visitor sessions per client address and messages per visitor,
     * per minute (token buckets, bursts of twice that; per process, src/http/ratelimit.h).
     * SWITCHBOARD_CHAT_SESSIONS_PER_MINUTE, 10; SWITCHBOARD_CHAT_MESSAGES_PER_MINUTE, 30. */
    int chat_sessions_per_minute;
    /* Sign-ups per client address per minute (bursts of twice that); SWITCHBOARD_SIGNUPS_PER_MINUTE,
     * 5.  Each costs an argon2id hash and makes an account. */
    int signups_per_minute;
    int chat_messages_per_minute;
} sb_api_options_t;

/* Defaults overridden by the environment variables above.  0, or SB_EINVAL with one line in err. */
int sb_api_options_init(sb_api_options_t *o, char *err, size_t errlen);

/* Creates the service and registers every /v1 route and GET /metrics on router.  Call on the main
 * thread before sb_http_server_listen; app must outlive the service.  Sets app->api.  0 or a
 * negative code. */
int sb_api_create(sb_api_t **out, sb_app_t *app, sb_router_t *router, int nloops, const sb_api_options_t *o);

/* Per loop, on its thread: start after the loop's database connection, appender and actor runtime
 * exist; stop (from a stop hook, before the database connection closes) lets in-flight calls fail
 * cleanly.  start returns 0 or a negative code. */
int sb_api_loop_start(sb_api_t *api, sb_loop_t *loop);
void sb_api_loop_stop(sb_api_t *api, sb_loop_t *loop);

/* After every loop has stopped. */
void sb_api_free(sb_api_t *api);

/* ---- membership, for other HTTP subsystems (the SSE authorizer) -------------------------------- */

/* The outcome of sb_api_check_member:
 *   0             token valid and its user a member of the workspace (user_id, role set);
 *   SB_EINVAL     no valid session for the token (unknown, expired, revoked): 401;
 *   SB_ENOTFOUND  a valid user, but the workspace does not exist or the user is not a member;
 *   other         cannot decide now (SB_EDBDOWN, SB_EOVERLOAD, SB_ESHUTDOWN ...): 503. */
typedef void (*sb_api_member_cb)(int status, const char *user_id, sb_role_t role, void *data);

/* Checks that the bearer of token (NUL-terminated) is a member of workspace_id (a uuid string).
 * Call on a worker loop running the API; cb fires later on the same loop, never inside this call.
 * Strings are copied. */
void sb_api_check_member(const char *token, const char *workspace_id, sb_api_member_cb cb, void *data);

/* ---- the per-request call ---------------------------------------------------------------------- */

typedef struct sb_api_call_s sb_api_call_t;
typedef void (*sb_api_step_cb)(sb_api_call_t *c);

struct sb_api_call_s {
    h2o_req_t *req; /* the request; read it only inside a step callback (where it is alive) */
    sb_loop_t *loop;
    sb_app_t *app;
    sb_api_t *api;
    const char *request_id; /* X-Request-Id, copied: also each event's correlation id */
    /* Path parameters, decoded and copied ("" when the route has none by that name). */
    char ws_id[SB_UUID_STRLEN + 1]; /* {ws} */
    char id[SB_UUID_STRLEN + 1];    /* {id}: the resource's uuid, lower-cased */
    char sub[128];                  /* a third parameter ({mid}, {nid}, {keyword}), raw */
    /* After sb_api_authenticate: the caller. */
    char user_id[SB_UUID_STRLEN + 1];
    /* After sb_api_workspace: the workspace's state, its version, the caller's role, and the
     * workspace context that contact and call decisions need (sb_workspace_context).  The call holds
     * a reference to each; both are read-only (shared through the loop's cache). */
    json_t *ws_state;
    int64_t ws_version;
    sb_role_t role;
    json_t *ws_context;
    /* The parsed JSON body, after sb_api_read_body (owned by the call). */
    json_t *body;
    /* Handler state: data_size zeroed bytes allocated with the call.  cleanup, if set, runs when
     * the call is freed (release what the state holds). */
    void *data;
    void (*cleanup)(sb_api_call_t *c);
    /* internal */
    struct sb__api_link_s *_link;
    struct sb__api_idem_s *_idem;
    sb_api_step_cb _next;    /* after authentication */
    sb_api_step_cb _ws_next; /* after the workspace */
    sb_role_t _need;
    uint64_t _ws_epoch; /* the workspace epoch when the workspace was asked for */
    struct {
        int status;
        char *body; /* malloc'd JSON text, or NULL */
        size_t len;
    } _resp;
    char _rid[132];
};

/* Starts a call for req (copying the route's {ws}, {id} and the third parameter).  Never NULL (a
 * failed allocation aborts: the size is fixed).  A malformed {ws} or {id} (not a uuid) is answered
 * 404 by the first step that needs it. */
sb_api_call_t *sb_api_begin(h2o_req_t *req, const sb_route_params_t *params, size_t data_size);

/* True while the client still waits for the answer. */
bool sb_api_alive(const sb_api_call_t *c);

/* Resolves the bearer token (Authorization: Bearer, else ?access_token= when allow_query) to the
 * caller's user id (c->user_id), then continues with next.  Answers 401 itself when there is no
 * valid session (and next never runs), 503 when the database cannot tell. */
void sb_api_authenticate(sb_api_call_t *c, bool allow_query, sb_api_step_cb next);

/* Authenticates (if not yet done), then loads the workspace c->ws_id and checks that the caller's
 * role is at least min_role: 404 when the workspace does not exist or the caller is not a member,
 * 403 when the role is too low.  Fills c->ws_state, ws_version, role and ws_context, then next.
 * The state comes from the workspace actor, through a per-loop cache that every committed change to
 * a workspace invalidates before it is acknowledged (changes this process makes: at once; changes
 * other processes make: when the follower delivers them, a few milliseconds later).  ws_state and
 * ws_context may be shared with other requests: read them, never modify them. */
void sb_api_workspace(sb_api_call_t *c, sb_role_t min_role, sb_api_step_cb next);

/* Parses the request body as a JSON object into c->body.  Answers 415/400/413 itself (invalid
 * JSON, invalid UTF-8, not an object, nesting deeper than 32) and returns false; else true.
 * Unknown fields are refused with 400 "unknown_field" naming the field unless allowed[] (NULL-
 * terminated) lists every key present: the API is strict, so a client's typo never passes
 * silently. */
bool sb_api_read_body(sb_api_call_t *c, const char *const *allowed);

/* Options for an ask on behalf of the caller: user id, request id as correlation and request id,
 * source "api", the workspace id and (when set) the workspace context. */
void sb_api_ask_opts(const sb_api_call_t *c, sb_ask_opts_t *opts);

/* Called with the reply when the request is still alive (else the call is freed and cb never
 * runs).  reply is valid during the callback only. */
typedef void (*sb_api_ask_cb)(sb_api_call_t *c, const sb_ask_reply_t *reply);

/* sb_actor_ask / sb_actor_get on behalf of the call (opts NULL: sb_api_ask_opts).  cmd is stolen.
 * On a synchronous failure the call is answered with the error. */
void sb_api_ask(sb_api_call_t *c, const char *stream, json_t *cmd, const sb_ask_opts_t *opts,
                sb_api_ask_cb cb);
void sb_api_get(sb_api_call_t *c, const char *stream, sb_api_ask_cb cb);

/* Answers a failed ask: SB_EREJECTED with the decider's status, code, message and field; 412 for
 * a failed If-Match; 409 for conflicts; 503 (Retry-After) for overload, shutdown and unknown
 * outcomes; 500 otherwise. */
void sb_api_reply_ask_error(sb_api_call_t *c, const sb_ask_reply_t *reply);

/* ---- replies (each ends the call) ------------------------------------------------------------- */

/* Sends body (reference stolen; NULL: empty) as JSON with status.  With an Idempotency-Key the
 * response is stored first and answered once stored. */
void sb_api_reply_json(sb_api_call_t *c, int status, json_t *body);
/* Sends json_text (malloc'd JSON, ownership taken; NULL: empty) as it is: for read models that
 * build their JSON in SQL. */
void sb_api_reply_raw(sb_api_call_t *c, int status, char *json_text);
/* Sends len bytes of json_text as they are, without copying: the text stays the caller's until
 * release(data) runs, exactly once (when h2o disposes of the request; at once when the call keeps
 * a copy instead, under an Idempotency-Key).  For texts a cache serves to many requests.  The
 * bytes may be the JSON in a content coding (gzip, with Content-Encoding set by sb_api_header
 * first) on calls without an Idempotency-Key (reads): stored answers are text. */
void sb_api_reply_borrowed(sb_api_call_t *c, int status, const char *json_text, size_t len,
                           void (*release)(void *data), void *data);
/* SPEC §5's error shape; code NULL picks the status's word; field may be NULL. */
void sb_api_reply_error(sb_api_call_t *c, int status, const char *code, const char *message,
                        const char *field);
/* The error for a negative SB_E* code (http/response.h's mapping). */
void sb_api_reply_errcode(sb_api_call_t *c, int err, const char *field);
/* Adds a response header before a reply (strings copied). */
void sb_api_header(sb_api_call_t *c, const char *name, const char *value);
/* ETag: "<version>" (a stream version, strong). */
void sb_api_etag(sb_api_call_t *c, int64_t version);

/* ---- conditional requests and idempotency -------------------------------------------------------- */

/* Reads If-Match into opts (check_version, expected_version, more_versions), RFC 9110 §13.1.1:
 * "*" is no condition (a missing resource still answers 404); a list of entity tags (one field or
 * several) matches when the stream is at any version it names ("<version>", strong comparison).
 * Weak tags and tags that are not versions never match: a list of only those answers 412, as does
 * a malformed value or one naming more than SB_ASK_MAX_VERSIONS versions (a condition that cannot
 * be evaluated is not met).  Returns true, or false after answering. */
bool sb_api_if_match(sb_api_call_t *c, sb_ask_opts_t *opts);
/* Whether a resource at version meets the If-Match that sb_api_if_match read into opts (true
 * without one): for a request that ends up changing nothing, which answers 412 all the same. */
bool sb_api_if_match_holds(const sb_ask_opts_t *opts, int64_t version);

/* Idempotency-Key on POST: when the request carries the header (1..255 visible ASCII characters),
 * looks the key up among the caller's (authenticate first): a completed request with the same
 * method, path and body is answered again as it was first answered (and next never runs); the
 * same key with a different request answers 422 "idempotency_key_reused"; one still in flight
 * answers 409 "idempotency_in_progress" (Retry-After).  Otherwise the key is recorded as in flight
 * and next runs; the reply that ends the call is stored with it.  Without the header next runs at
 * once.  A failure that stored nothing (4xx other than 409/412, 5xx other than unknown outcomes)
 * releases the key so a retry runs again. */
void sb_api_idempotent(sb_api_call_t *c, sb_api_step_cb next);

/* True when the call runs under an Idempotency-Key (after sb_api_idempotent). */
bool sb_api_has_idempotency_key(const sb_api_call_t *c);

/* The id for a resource the call creates: with an Idempotency-Key, a name-based uuid of (user,
 * key, purpose), so a retry after an unknown outcome names the same resource and the actor sees a
 * repeat; without one, a fresh v7 uuid. */
void sb_api_new_id(const sb_api_call_t *c, const char *purpose, char out[SB_UUID_STRLEN + 1]);

/* ---- query parameters and cursors ----------------------------------------------------------------- */

/* The decoded value of query parameter name (in the request's pool), or NULL when absent.  A
 * malformed escape or an embedded NUL counts as present with value "\x01" so validation refuses
 * it. */
const char *sb_api_query(sb_api_call_t *c, const char *name);

/* ?limit=: 1..max, default def.  false after answering 400 (field "limit"). */
bool sb_api_page_limit(sb_api_call_t *c, int def, int max, int *out);

/* An opaque, URL-safe cursor for keyset pagination over (time in microseconds, uuid), and back.
 * decode returns 0 or SB_EINVAL. */
#define SB_API_CURSOR_MAX 48
void sb_api_cursor_encode(int64_t at_us, const char *id, char out[SB_API_CURSOR_MAX]);
int sb_api_cursor_decode(const char *s, int64_t *at_us, char id[SB_UUID_STRLEN + 1]);
/* Answers 200 {"items": [...], "next_cursor": ...} from a keyset query that asked for limit + 1 rows
 * of (an item's JSON text, its time in microseconds, its id): the first limit items, and a cursor
 * after the last of them when there was one more row. */
void sb_api_reply_keyset_page(sb_api_call_t *c, const PGresult *r, int limit);
/* The same answer from a query that built the page in SQL: one row whose columns from col on are
 * the items (a JSON array's text), how many, and the last item's time in microseconds and id (NULL
 * when none); a cursor after the last item when the page is full. */
void sb_api_reply_sql_page(sb_api_call_t *c, const PGresult *r, int col, int limit);

/* ---- database reads on the loop's connection --------------------------------------------------- */

/* Called with the results while the request is alive (status 0: req->results[] are valid during
 * the callback only).  A failed query (status < 0) is answered by the API itself (503 when the
 * database is down, 500 otherwise) unless cb is registered with want_errors. */
typedef void (*sb_api_query_cb)(sb_api_call_t *c, int status, PGresult *const *results, int nresults);

/* Runs a request of up to SB_PG_MAX_STMTS statements (their parameters copied into the call) on
 * the loop's query connection. */
typedef struct sb_api_sql_s {
    const char *name; /* prepared-statement name (stable per statement text), or NULL */
    const char *sql;
    int nparams;
    const char *params[16]; /* NULL = SQL NULL */
} sb_api_sql_t;
void sb_api_sql(sb_api_call_t *c, const sb_api_sql_t *stmts, int nstmts, bool want_errors,
                sb_api_query_cb cb);

#endif
