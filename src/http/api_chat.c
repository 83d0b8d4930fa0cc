/* The website chat: a public widget channel per workspace, for visitors who have no account.
 *
 *   POST /v1/chat/{ws}/sessions {name?, email?}      -> 201 {token, contact_id, expires_at}
 *   POST /v1/chat/{ws}/messages {body}  (visitor)    -> 202 the message (MessageReceived, channel chat)
 *   GET  /v1/chat/{ws}/stream?access_token=  (visitor) -> the visitor's own conversation as SSE
 *   OPTIONS on each                                  -> 204, for browsers' CORS preflight
 *
 * A session is a contact of the workspace (named after the visitor, or "Website visitor"), so chat
 * lands in the same contact and conversation model as every other channel, and agents answer with
 * POST .../contacts/{id}/messages {channel: "chat"}.  The visitor's token is the contact's and
 * workspace's ids and an expiry, sealed under the master key for this workspace (db/secrets.h):
 * nothing to store, nothing to guess, and it opens for this workspace only.  The stream shows the
 * message events of the visitor's own contact and nothing else.  Responses allow any origin (the
 * widget runs on the business's own site; the token is a bearer token, never a cookie). */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <netinet/in.h>
#include <stdatomic.h>

#include "actors/flows.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "db/secrets.h"
#include "http/api_int.h"
#include "http/api_messaging.h"
#include "http/response.h"
#include "http/sse.h"
#include "reactors/messaging.h"

#define TOKEN_TTL_S (30LL * 24 * 3600)
#define BODY_MAX 1600

typedef struct {
    char contact[SB_UUID_STRLEN + 1];
    char message_id[SB_UUID_STRLEN + 1];
    int64_t expires;
} chat_t;

static void cors(sb_api_call_t *c)
{
    sb_api_header(c, "access-control-allow-origin", "*");
}

static void token_context(const char *ws, char out[16 + SB_UUID_STRLEN])
{
    snprintf(out, 16 + SB_UUID_STRLEN, "chat:%s", ws);
}

/* The visitor's contact from a token (Authorization: Bearer, or ?access_token= when allow_query).
 * Answers 401 itself and returns false when there is none or it does not open. */
static bool visitor(sb_api_call_t *c, bool allow_query, char contact[SB_UUID_STRLEN + 1])
{
    const char *tok = NULL;
    size_t n = 0;
    ssize_t i = h2o_find_header(&c->req->headers, H2O_TOKEN_AUTHORIZATION, -1);
    if (i >= 0) {
        h2o_iovec_t v = c->req->headers.entries[i].value;
        if (v.len > 7 && strncasecmp(v.base, "Bearer ", 7) == 0) {
            tok = v.base + 7;
            n = v.len - 7;
        }
    } else if (allow_query) {
        tok = sb_api_query(c, "access_token");
        n = tok != NULL ? strlen(tok) : 0;
    }
    char ctx[16 + SB_UUID_STRLEN], plain[160];
    size_t len = 0;
    token_context(c->ws_id, ctx);
    sb_messaging_t *m = sb_messaging_current();
    int rc = tok == NULL || m == NULL
                 ? SB_EINVAL
                 : sb_secrets_open_token(sb_messaging_secrets(m), ctx, tok, n, plain, sizeof(plain), &len);
    char ws[SB_UUID_STRLEN + 1];
    long long exp = 0;
    if (rc == 0 && (sscanf(plain, "v1 %36s %36s %lld", ws, contact, &exp) != 3 || strcmp(ws, c->ws_id) != 0 ||
                    exp < (long long)time(NULL)))
        rc = SB_EPERM;
    if (rc != 0) {
        cors(c);
        sb_api_header(c, "www-authenticate", "Bearer realm=\"switchboard-chat\"");
        sb_api_reply_error(c, 401, "unauthenticated", "a valid chat session token is required", NULL);
        return false;
    }
    return true;
}

/* Spends one request of key from rl; false (having answered 429 with Retry-After) when none is left. */
static bool within_limit(sb_api_call_t *c, sb_ratelimit_t *rl, const char *key, const char *what)
{
    int wait = sb_ratelimit_take(rl, key, uv_now(&c->loop->uv));
    if (wait == 0)
        return true;
    char ra[16];
    snprintf(ra, sizeof(ra), "%d", wait);
    cors(c);
    sb_api_header(c, "retry-after", ra);
    atomic_fetch_add_explicit(&c->api->chat_rate_limited, 1, memory_order_relaxed);
    sb_api_reply_error(c, 429, "rate_limited", what, NULL);
    return false;
}

/* ---- sessions --------------------------------------------------------------------------------- */

static void on_contact(const sb_flow_result_t *res, void *data)
{
    sb_api_call_t *c = data;
    chat_t *st = c->data;
    if (!sb_api_alive(c)) {
        sb_api_reply_errcode(c, SB_ESHUTDOWN, NULL);
        return;
    }
    cors(c);
    if (res->status != 0 || res->id == NULL) {
        if (res->status == SB_EREJECTED && res->err != NULL &&
            strcmp(res->err->code, "workspace_not_found") == 0)
            sb_api_reply_error(c, 404, "not_found", "no such workspace", NULL);
        else if (res->status == SB_EREJECTED && res->err != NULL)
            sb_api_reply_error(c, res->err->status, res->err->code, res->err->message,
                               res->err->field[0] ? res->err->field : NULL);
        else
            sb_api_reply_errcode(c, res->status != 0 ? res->status : SB_EINVAL, NULL);
        return;
    }
    char plain[160], ctx[16 + SB_UUID_STRLEN], token[SB_SECRETS_TOKEN_MAX], at[SB_RFC3339_LEN];
    snprintf(st->contact, sizeof(st->contact), "%s", res->id);
    st->expires = (int64_t)time(NULL) + TOKEN_TTL_S;
    snprintf(plain, sizeof(plain), "v1 %s %s %lld", c->ws_id, st->contact, (long long)st->expires);
    token_context(c->ws_id, ctx);
    int rc = sb_secrets_seal_token(sb_messaging_secrets(sb_messaging_current()), ctx, plain, strlen(plain),
                                   token, sizeof(token));
    if (rc != 0) {
        sb_api_reply_errcode(c, rc, NULL);
        return;
    }
    sb_clock_format_rfc3339(st->expires * 1000000, at);
    sb_api_reply_json(
        c, 201, json_pack("{s:s, s:s, s:s}", "token", token, "contact_id", st->contact, "expires_at", at));
}

static void on_session(sb_api_call_t *c)
{
    static const char *const fields[] = {"name", "email", NULL};
    if (c->ws_id[0] == '\0') {
        cors(c);
        sb_api_reply_error(c, 404, "not_found", "no such workspace", NULL);
        return;
    }
    char key[INET6_ADDRSTRLEN + 8];
    sb_ratelimit_client_key(c->req, key, sizeof(key));
    if (!within_limit(c, c->api->chat_sessions, key,
                      "too many new chat sessions from this address; try again later"))
        return;
    if (c->req->entity.len > 0 && !sb_api_read_body(c, fields))
        return;
    const char *name = sb__api_str(c->body, "name");
    const char *email = sb__api_str(c->body, "email");
    json_t *f = json_pack("{s:s}", "name", name != NULL && name[0] != '\0' ? name : "Website visitor");
    if (email != NULL)
        json_object_set_new(f, "email", json_string(email));
    sb_flow_opts_t o = {.correlation_id = c->request_id, .request_id = c->request_id, .source = "chat"};
    int rc = sb_flow_contact_create(sb_messaging_loops(sb_messaging_current()), c->ws_id, f, SB_FLOW_CREATE,
                                    &o, on_contact, c);
    json_decref(f);
    if (rc != 0)
        sb_api_reply_errcode(c, rc, NULL);
}

static int on_sessions(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_api_call_t *c = sb_api_begin(req, params, sizeof(chat_t));
    if (sb_messaging_current() == NULL) {
        sb_api_reply_errcode(c, SB_ESHUTDOWN, NULL);
        return 0;
    }
    on_session(c);
    return 0;
}

/* ---- messages ------------------------------------------------------------------------------------ */

static void received(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    chat_t *st = c->data;
    cors(c);
    if (reply->status != 0) {
        if (reply->status == SB_EREJECTED && reply->err != NULL && reply->err->status == 404) {
            sb_api_reply_error(c, 401, "unauthenticated", "this chat session has ended", NULL);
            return;
        }
        sb_api_reply_ask_error(c, reply);
        return;
    }
    const json_t *ev = reply->nevents > 0 ? reply->events[0].data : NULL;
    sb_api_reply_json(c, 202,
                      json_pack("{s:s, s:s, s:s, s:s, s:O?, s:s, s:O?}", "id", st->message_id, "contact_id",
                                st->contact, "channel", "chat", "direction", "inbound", "body",
                                json_object_get(c->body, "body"), "status", "received", "created_at",
                                json_object_get(ev, "received_at")));
}

static void on_message(sb_api_call_t *c)
{
    static const char *const fields[] = {"body", NULL};
    chat_t *st = c->data;
    if (!visitor(c, false, st->contact))
        return;
    char key[16 + SB_UUID_STRLEN];
    snprintf(key, sizeof(key), "visitor:%s", st->contact);
    if (!within_limit(c, c->api->chat_messages, key, "too many chat messages; slow down") ||
        !sb_api_read_body(c, fields))
        return;
    const char *body = sb__api_str(c->body, "body");
    if (body == NULL || body[0] == '\0' || sb__api_utf8_len(body) > BODY_MAX) {
        cors(c);
        sb_api_reply_error(c, 400, body == NULL ? "required" : "invalid", "body must be 1..1600 characters",
                           "body");
        return;
    }
    sb_uuid_t id;
    sb_uuid_v7(&id);
    sb_uuid_format(&id, st->message_id);
    char stream[16 + SB_UUID_STRLEN], from[16 + SB_UUID_STRLEN];
    snprintf(stream, sizeof(stream), "contact-%s", st->contact);
    snprintf(from, sizeof(from), "visitor:%s", st->contact);
    json_t *cmd = json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", "ReceiveMessage", "message_id",
                            st->message_id, "channel", "chat", "from", from, "body", body);
    sb_ask_opts_t o = {.correlation_id = c->request_id,
                       .request_id = c->request_id,
                       .source = "chat",
                       .workspace_id = c->ws_id,
                       .skip_state = true};
    sb_api_ask(c, stream, cmd, &o, received);
}

static int on_messages(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_api_call_t *c = sb_api_begin(req, params, sizeof(chat_t));
    if (sb_messaging_current() == NULL) {
        sb_api_reply_errcode(c, SB_ESHUTDOWN, NULL);
        return 0;
    }
    on_message(c);
    return 0;
}

/* ---- the stream ----------------------------------------------------------------------------------- */

static int on_stream(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_api_call_t *c = sb_api_begin(req, params, sizeof(chat_t));
    chat_t *st = c->data;
    if (sb_messaging_current() == NULL || c->app == NULL || c->app->sse == NULL) {
        sb_api_reply_errcode(c, SB_ESHUTDOWN, NULL);
        return 0;
    }
    if (!visitor(c, true, st->contact))
        return 0;
    /* Only the visitor's own contact, and only its messages: never notes or anything else. */
    char query[512];
    int n = snprintf(query, sizeof(query),
                     "streams=contact-%s&types=MessageReceived,MessageQueued,MessageSent,MessageDelivered,"
                     "MessageRead,MessageFailed",
                     st->contact);
    const char *after = sb_api_query(c, "after");
    if (after != NULL && strlen(after) < 24)
        n += snprintf(query + n, sizeof(query) - (size_t)n, "&after=%s", after);
    sb_uuid_t ws;
    sb_uuid_parse(c->ws_id, SB_UUID_STRLEN, &ws);
    /* The stream belongs to the SSE module from here: the call ends without answering. */
    h2o_req_t *r = c->req;
    sb_sse_t *sse = c->app->sse;
    h2o_add_header_by_str(&r->pool, &r->res.headers, H2O_STRLIT("access-control-allow-origin"), 0, NULL,
                          H2O_STRLIT("*"));
    sb__api_drop(c);
    int rc = sb_sse_serve(sse, r, &ws, query, (size_t)n);
    if (rc != 0)
        sb_http_send_errcode(r, rc, NULL);
    return 0;
}

/* ---- CORS preflight --------------------------------------------------------------------------------- */

static int on_preflight(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_http_add_header(req, "access-control-allow-origin", "*");
    sb_http_add_header(req, "access-control-allow-methods", "GET, POST, OPTIONS");
    sb_http_add_header(req, "access-control-allow-headers", "authorization, content-type, last-event-id");
    sb_http_add_header(req, "access-control-max-age", "86400");
    sb_http_send_body(req, 204, NULL, "", 0);
    return 0;
}

int sb__api_chat_routes(sb_router_t *r, sb_api_t *api)
{
    int rc;
    if ((rc = sb_router_add(r, "POST", "/v1/chat/{ws}/sessions", on_sessions, api)) != 0 ||
        (rc = sb_router_add(r, "OPTIONS", "/v1/chat/{ws}/sessions", on_preflight, api)) != 0 ||
        (rc = sb_router_add(r, "POST", "/v1/chat/{ws}/messages", on_messages, api)) != 0 ||
        (rc = sb_router_add(r, "OPTIONS", "/v1/chat/{ws}/messages", on_preflight, api)) != 0 ||
        (rc = sb_router_add(r, "GET", "/v1/chat/{ws}/stream", on_stream, api)) != 0 ||
        (rc = sb_router_add(r, "OPTIONS", "/v1/chat/{ws}/stream", on_preflight, api)) != 0)
        return rc;
    return 0;
}
