/* The API's shared machinery: the service, calls and their lifetime, replies, bodies, asks, SQL,
 * query parameters, If-Match and cursors (http/api.h). */
#include "http/api.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/kinds.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "events/codec.h"
#include "http/api_int.h"
#include "http/auth_hook.h"
#include "http/response.h"
#include "providers/form.h"

#define MAX_BODY_DEPTH 32

/* ---- roles -------------------------------------------------------------------------------------- */

sb_role_t sb_role_parse(const char *s)
{
    if (s == NULL)
        return SB_ROLE_NONE;
    if (strcmp(s, "owner") == 0)
        return SB_ROLE_OWNER;
    if (strcmp(s, "admin") == 0)
        return SB_ROLE_ADMIN;
    if (strcmp(s, "agent") == 0)
        return SB_ROLE_AGENT;
    return SB_ROLE_NONE;
}

const char *sb_role_name(sb_role_t r)
{
    switch (r) {
    case SB_ROLE_OWNER:
        return "owner";
    case SB_ROLE_ADMIN:
        return "admin";
    case SB_ROLE_AGENT:
        return "agent";
    default:
        return "none";
    }
}

/* ---- options and the service ------------------------------------------------------------------- */

static int env_int(const char *name, long long min, long long max, long long *out, char *err, size_t errlen)
{
    const char *v = getenv(name);
    if (v == NULL || *v == '\0')
        return 0;
    char *end;
    long long n = strtoll(v, &end, 10);
    if (*end != '\0' || n < min || n > max) {
        snprintf(err, errlen, "invalid %s '%s' (expected %lld..%lld)", name, v, min, max);
        return SB_EINVAL;
    }
    *out = n;
    return 0;
}

int sb_api_options_init(sb_api_options_t *o, char *err, size_t errlen)
{
    memset(o, 0, sizeof(*o));
    long long ttl = 30LL * 86400, cache = 2000, fu = 5, fa = 50, win = 900,
              ops = crypto_pwhash_OPSLIMIT_INTERACTIVE, mem = crypto_pwhash_MEMLIMIT_INTERACTIVE,
              chat_sessions = 10, chat_messages = 30, signups = 5;
    int rc = 0;
    rc |= env_int("SWITCHBOARD_TOKEN_TTL_SECONDS", 1, 10LL * 365 * 86400, &ttl, err, errlen);
    rc |= env_int("SWITCHBOARD_TOKEN_CACHE_MS", 0, 60000, &cache, err, errlen);
    rc |= env_int("SWITCHBOARD_LOGIN_MAX_FAILURES", 1, 1000000, &fu, err, errlen);
    rc |= env_int("SWITCHBOARD_LOGIN_MAX_FAILURES_ADDR", 1, 1000000, &fa, err, errlen);
    rc |= env_int("SWITCHBOARD_LOGIN_WINDOW_SECONDS", 1, 86400, &win, err, errlen);
    rc |= env_int("SWITCHBOARD_PWHASH_OPS", crypto_pwhash_OPSLIMIT_MIN, 64, &ops, err, errlen);
    rc |= env_int("SWITCHBOARD_PWHASH_MEM", 8192, 1LL << 30, &mem, err, errlen);
    rc |= env_int("SWITCHBOARD_CHAT_SESSIONS_PER_MINUTE", 1, 1000000, &chat_sessions, err, errlen);
    rc |= env_int("SWITCHBOARD_SIGNUPS_PER_MINUTE", 1, 1000000, &signups, err, errlen);
    rc |= env_int("SWITCHBOARD_CHAT_MESSAGES_PER_MINUTE", 1, 1000000, &chat_messages, err, errlen);
    if (rc != 0)
        return SB_EINVAL;
    o->token_ttl_s = ttl;
    o->token_cache_ms = cache;
    o->login_max_failures_user = (int)fu;
    o->login_max_failures_addr = (int)fa;
    o->login_window_s = win;
    o->pwhash_ops = (unsigned long long)ops;
    o->pwhash_mem = (size_t)mem;
    o->max_hash_jobs = 32;
    o->idempotency_ttl_s = 86400;
    o->chat_sessions_per_minute = (int)chat_sessions;
    o->signups_per_minute = (int)signups;
    o->chat_messages_per_minute = (int)chat_messages;
    return 0;
}

int sb_api_create(sb_api_t **out, sb_app_t *app, sb_router_t *router, int nloops, const sb_api_options_t *o)
{
    *out = NULL;
    if (sodium_init() < 0 || nloops < 1)
        return SB_EINVAL;
    sb_api_t *api = calloc(1, sizeof(*api));
    if (api == NULL)
        return SB_ENOMEM;
    api->app = app;
    api->opts = *o;
    api->router = router;
    api->nloops = nloops;
    api->loops = calloc((size_t)nloops, sizeof(*api->loops));
    api->chat_sessions = sb_ratelimit_new(o->chat_sessions_per_minute, 2 * o->chat_sessions_per_minute, 4096);
    api->chat_messages = sb_ratelimit_new(o->chat_messages_per_minute, 2 * o->chat_messages_per_minute, 4096);
    api->signups_limit = sb_ratelimit_new(o->signups_per_minute, 2 * o->signups_per_minute, 4096);
    if (api->loops == NULL || api->chat_sessions == NULL || api->chat_messages == NULL ||
        api->signups_limit == NULL)
        goto fail;
    /* The stand-in hash for unknown accounts: same parameters, a password nobody knows. */
    char pw[33];
    uint8_t rnd[16];
    randombytes_buf(rnd, sizeof(rnd));
    randombytes_buf(api->token_key, sizeof(api->token_key));
    sb__api_hex(rnd, sizeof(rnd), pw);
    if (crypto_pwhash_str(api->dummy_hash, pw, strlen(pw), o->pwhash_ops, o->pwhash_mem) != 0)
        goto fail;
    int rc;
    if ((rc = sb__api_auth_routes(router, api)) != 0 || (rc = sb__api_workspace_routes(router, api)) != 0 ||
        (rc = sb__api_settings_routes(router, api)) != 0 || (rc = sb__api_contact_routes(router, api)) != 0 ||
        (rc = sb__api_contact_list_routes(router, api)) != 0 ||
        (rc = sb__api_analytics_routes(router, api)) != 0 || (rc = sb__api_note_routes(router, api)) != 0 ||
        (rc = sb__api_event_routes(router, api)) != 0 || (rc = sb__api_metrics_routes(router, api)) != 0 ||
        (rc = sb__api_me_routes(router, api)) != 0) {
        sb_log_error("api", "cannot register routes: %s", sb_strerror(rc));
        sb_api_free(api);
        return rc;
    }
    sb__api_install_authorizer(api);
    app->api = api;
    *out = api;
    return 0;
fail:
    sb_ratelimit_free(api->chat_sessions);
    sb_ratelimit_free(api->chat_messages);
    sb_ratelimit_free(api->signups_limit);
    free(api->loops);
    free(api);
    return SB_ENOMEM;
}

int sb_api_loop_start(sb_api_t *api, sb_loop_t *loop)
{
    if (loop->index < 0 || loop->index >= api->nloops)
        return SB_EINVAL;
    sb__api_loop_t *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return SB_ENOMEM;
    l->loop = loop;
    l->started = true;
    api->loops[loop->index] = l;
    sb__api_sampler_start(l);
    sb__api_ws_cache_start(l, api);
    l->threads = sb__api_threads_start(loop, api->app != NULL ? api->app->follower : NULL);
    return 0;
}

void sb_api_loop_stop(sb_api_t *api, sb_loop_t *loop)
{
    /* Calls in flight finish through their own callbacks (the runtime and the database answer
     * them with SB_ESHUTDOWN); the loop's state stays until sb_api_free. */
    if (loop->index >= 0 && loop->index < api->nloops && api->loops[loop->index] != NULL &&
        api->loops[loop->index]->started) {
        api->loops[loop->index]->started = false;
        sb__api_sampler_stop(api->loops[loop->index]);
        sb__api_ws_cache_stop(api->loops[loop->index]);
        sb__api_threads_stop(api->loops[loop->index]->threads);
    }
}

void sb_api_free(sb_api_t *api)
{
    if (api == NULL)
        return;
    if (api->authorizer)
        sb_http_set_authorizer(NULL);
    for (int i = 0; i < api->nloops; i++) {
        if (api->loops[i] != NULL)
            sb__api_threads_free(api->loops[i]->threads);
        free(api->loops[i]);
    }
    free(api->loops);
    sb_ratelimit_free(api->chat_sessions);
    sb_ratelimit_free(api->chat_messages);
    sb_ratelimit_free(api->signups_limit);
    sodium_memzero(api->dummy_hash, sizeof(api->dummy_hash));
    sodium_memzero(api->token_key, sizeof(api->token_key));
    free(api);
}

bool sb__api_within_limit(sb_api_call_t *c, sb_ratelimit_t *rl, const char *key, const char *what,
                          _Atomic uint64_t *refused)
{
    int wait = sb_ratelimit_take(rl, key, uv_now(&c->loop->uv));
    if (wait == 0)
        return true;
    char ra[16];
    snprintf(ra, sizeof(ra), "%d", wait);
    sb_api_header(c, "retry-after", ra);
    atomic_fetch_add_explicit(refused, 1, memory_order_relaxed);
    sb_api_reply_error(c, 429, "rate_limited", what, NULL);
    return false;
}

sb__api_loop_t *sb__api_loop(const sb_api_call_t *c)
{
    return c->api->loops[c->loop->index];
}

/* ---- calls --------------------------------------------------------------------------------------- */

/* Lives in the request's pool: when h2o disposes of the request, it tells the call. */
typedef struct sb__api_link_s {
    sb_api_call_t *call;
} api_link_t;

static void on_req_dispose(void *p)
{
    api_link_t *link = p;
    if (link->call != NULL) {
        link->call->req = NULL;
        link->call->_link = NULL;
    }
}

/* True when s is a uuid in canonical lowercase form already (what clients send back). */
/* 1 for the lower-case hex digits: a table, as every request checks one or two ids. */
static const unsigned char lower_hex[256] = {
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
    ['8'] = 1, ['9'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1,
};

static bool is_canonical_uuid(const char *s)
{
    /* In order, stopping at the first mismatch: a shorter string stops at its NUL. */
    static const char dash[SB_UUID_STRLEN] = {[8] = 1, [13] = 1, [18] = 1, [23] = 1};
    for (int i = 0; i < SB_UUID_STRLEN; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (dash[i] ? ch != '-' : !lower_hex[ch])
            return false;
    }
    return s[SB_UUID_STRLEN] == '\0';
}

bool sb__api_uuid(const char *s, char out[SB_UUID_STRLEN + 1])
{
    if (s != NULL && is_canonical_uuid(s)) {
        memcpy(out, s, SB_UUID_STRLEN + 1);
        return true;
    }
    sb_uuid_t u;
    if (s == NULL || strlen(s) != SB_UUID_STRLEN || sb_uuid_parse(s, SB_UUID_STRLEN, &u) != 0)
        return false;
    sb_uuid_format(&u, out);
    return true;
}

sb_api_call_t *sb_api_begin(h2o_req_t *req, const sb_route_params_t *params, size_t data_size)
{
    size_t head = (sizeof(sb_api_call_t) + 15) & ~(size_t)15;
    /* malloc and memset rather than calloc: glibc's calloc skips the thread cache (tcache), and a
     * call is allocated and freed on every API request. */
    sb_api_call_t *c = malloc(head + data_size);
    if (c == NULL)
        h2o_fatal("no memory");
    memset(c, 0, head + data_size);
    c->req = req;
    c->loop = sb_loop_current();
    c->app = sb_app_current();
    c->api = c->app != NULL ? c->app->api : NULL;
    c->data = data_size ? (char *)c + head : NULL;
    const char *rid = sb_http_request_id(req);
    size_t rlen = strnlen(rid, sizeof(c->_rid) - 1); /* at most 128 (response.h) */
    memcpy(c->_rid, rid, rlen);
    c->_rid[rlen] = '\0';
    c->request_id = c->_rid;
    for (int i = 0; params != NULL && i < params->n; i++) {
        const char *name = params->names[i], *v = params->values[i];
        if (strcmp(name, "ws") == 0) {
            if (!sb__api_uuid(v, c->ws_id))
                c->ws_id[0] = '\0';
        } else if (strcmp(name, "id") == 0) {
            if (!sb__api_uuid(v, c->id))
                c->id[0] = '\0';
        } else if (params->lens[i] < sizeof(c->sub)) {
            memcpy(c->sub, v, params->lens[i] + 1);
        } else {
            c->sub[0] = '\0';
        }
    }
    api_link_t *link = h2o_mem_alloc_shared(&req->pool, sizeof(*link), on_req_dispose);
    link->call = c;
    c->_link = link;
    return c;
}

bool sb_api_alive(const sb_api_call_t *c)
{
    return c->req != NULL;
}

static void free_call(sb_api_call_t *c)
{
    if (c->cleanup != NULL)
        c->cleanup(c);
    if (c->_link != NULL)
        c->_link->call = NULL;
    json_decref(c->ws_state);
    json_decref(c->ws_context);
    json_decref(c->body);
    sb__api_idem_free(c->_idem);
    free(c->_resp.body);
    free(c);
}

void sb__api_drop(sb_api_call_t *c)
{
    free_call(c);
}

/* The headers a status implies (the sender adds Retry-After to a 429 or 503). */
static void status_headers(sb_api_call_t *c, int status)
{
    if (status == 401 && h2o_find_header(&c->req->res.headers, H2O_TOKEN_WWW_AUTHENTICATE, -1) < 0)
        h2o_add_header(&c->req->pool, &c->req->res.headers, H2O_TOKEN_WWW_AUTHENTICATE, NULL,
                       H2O_STRLIT("Bearer realm=\"switchboard\""));
}

/* Sends the pending response (when the client still waits) and ends the call. */
static void deliver(sb_api_call_t *c)
{
    if (c->req != NULL) {
        int status = c->_resp.status;
        status_headers(c, status);
        /* The body goes to the request as it is (the request frees it). */
        char *body = c->_resp.body;
        c->_resp.body = NULL;
        sb_http_send_owned(c->req, status, body != NULL ? "application/json" : NULL, body, c->_resp.len);
    }
    free_call(c);
}

/* len bytes of body (binary-safe: a borrowed body may be gzip). */
static void respond_len(sb_api_call_t *c, int status, char *body, size_t len)
{
    c->_resp.status = status;
    c->_resp.body = body;
    c->_resp.len = len;
    if (c->_idem != NULL)
        sb__api_idem_finish(c, status, deliver);
    else
        deliver(c);
}

static void respond(sb_api_call_t *c, int status, char *text)
{
    respond_len(c, status, text, text != NULL ? strlen(text) : 0);
}

void sb_api_reply_json(sb_api_call_t *c, int status, json_t *body)
{
    char *text = NULL;
    if (body != NULL) {
        text = json_dumps(body, JSON_COMPACT);
        json_decref(body);
        if (text == NULL) {
            sb_api_reply_error(c, 500, "internal", "response could not be encoded", NULL);
            return;
        }
    }
    respond(c, status, text);
}

void sb_api_reply_raw(sb_api_call_t *c, int status, char *json_text)
{
    respond(c, status, json_text);
}

void sb_api_reply_borrowed(sb_api_call_t *c, int status, const char *json_text, size_t len,
                           void (*release)(void *data), void *data)
{
    if (c->_idem != NULL || c->req == NULL) {
        /* A stored response outlives the request: it gets its own copy. */
        char *text = malloc(len + 1);
        if (text != NULL) {
            memcpy(text, json_text, len);
            text[len] = '\0';
        }
        release(data);
        if (text == NULL)
            sb_api_reply_errcode(c, SB_ENOMEM, NULL);
        else
            respond_len(c, status, text, len);
        return;
    }
    status_headers(c, status);
    sb_http_send_borrowed(c->req, status, "application/json", json_text, len, release, data);
    free_call(c);
}

void sb_api_reply_error(sb_api_call_t *c, int status, const char *code, const char *message,
                        const char *field)
{
    if (code == NULL)
        code = sb_http_status_code_word(status);
    if (message == NULL)
        message = sb_http_status_message(status);
    respond(c, status, sb_http_error_text(code, message, field != NULL && *field ? field : NULL));
}

void sb_api_reply_errcode(sb_api_call_t *c, int err, const char *field)
{
    int status = sb_http_status_for(err);
    if (status == 500)
        sb_log_error("api", "internal error id=%s err=%s", c->request_id, sb_errname(err));
    const char *code;
    switch (err) {
    case SB_EINVAL:
        code = "invalid_argument";
        break;
    case SB_ENOTFOUND:
        code = "not_found";
        break;
    case SB_ECONFLICT:
        code = "conflict";
        break;
    case SB_EOVERLOAD:
        code = "overloaded";
        break;
    case SB_EDBDOWN:
        code = "database_unavailable";
        break;
    case SB_ESHUTDOWN:
        code = "shutting_down";
        break;
    case SB_EUNKNOWN:
        code = "outcome_unknown";
        break;
    case SB_ETIMEOUT:
        code = "timeout";
        break;
    default:
        code = status == 500 ? "internal" : sb_http_status_code_word(status);
    }
    sb_api_reply_error(c, status, code, status == 500 ? "internal error" : sb_strerror(err), field);
}

void sb_api_header(sb_api_call_t *c, const char *name, const char *value)
{
    if (c->req != NULL)
        sb_http_add_header(c->req, name, value);
    if (c->_idem != NULL)
        sb__api_idem_header(c, name, value);
}

void sb_api_reply_keyset_page(sb_api_call_t *c, const PGresult *r, int limit)
{
    int rows = PQntuples(r);
    sb_buf_t b = SB_BUF_INIT;
    sb_buf_puts(&b, "{\"items\":[");
    for (int i = 0; i < rows && i < limit; i++) {
        if (i > 0)
            sb_buf_putc(&b, ',');
        sb_buf_puts(&b, PQgetvalue(r, i, 0));
    }
    sb_buf_puts(&b, "],\"next_cursor\":");
    if (rows > limit) {
        char cur[SB_API_CURSOR_MAX];
        sb_api_cursor_encode(strtoll(PQgetvalue(r, limit - 1, 1), NULL, 10), PQgetvalue(r, limit - 1, 2),
                             cur);
        sb_buf_printf(&b, "\"%s\"}", cur);
    } else {
        sb_buf_puts(&b, "null}");
    }
    sb_api_reply_raw(c, 200, sb_buf_steal(&b));
}

void sb_api_reply_sql_page(sb_api_call_t *c, const PGresult *r, int col, int limit)
{
    int count = atoi(PQgetvalue(r, 0, col + 1));
    char cursor[SB_API_CURSOR_MAX] = "";
    if (count == limit && !PQgetisnull(r, 0, col + 2))
        sb_api_cursor_encode(strtoll(PQgetvalue(r, 0, col + 2), NULL, 10), PQgetvalue(r, 0, col + 3), cursor);
    const char *items = PQgetvalue(r, 0, col);
    size_t len = strlen(items) + strlen(cursor) + 48;
    char *text = malloc(len);
    if (text == NULL) {
        sb_api_reply_errcode(c, SB_ENOMEM, NULL);
        return;
    }
    if (cursor[0])
        snprintf(text, len, "{\"items\":%s,\"next_cursor\":\"%s\"}", items, cursor);
    else
        snprintf(text, len, "{\"items\":%s,\"next_cursor\":null}", items);
    sb_api_reply_raw(c, 200, text);
}

void sb_api_etag(sb_api_call_t *c, int64_t version)
{
    char tag[32];
    snprintf(tag, sizeof(tag), "\"%" PRId64 "\"", version);
    sb_api_header(c, "etag", tag);
}

/* ---- bodies ---------------------------------------------------------------------------------------- */

bool sb_api_read_body(sb_api_call_t *c, const char *const *allowed)
{
    json_t *v;
    sb_http_body_problem_t why;
    if (sb_http_parse_json_object(c->req, MAX_BODY_DEPTH, &v, &why) != 0) {
        sb_api_reply_error(c, why.status, why.code, why.message, NULL);
        return false;
    }
    if (allowed != NULL) {
        const char *k;
        json_t *m;
        json_object_foreach(v, k, m)
        {
            bool ok = false;
            for (const char *const *a = allowed; *a != NULL && !ok; a++)
                ok = strcmp(*a, k) == 0;
            if (!ok) {
                char msg[160], field[64];
                snprintf(field, sizeof(field), "%.60s", k);
                /* a truncated key may split a character: keep the field valid UTF-8 */
                while (!sb_utf8_is_valid(field, strlen(field)))
                    field[strlen(field) - 1] = '\0';
                snprintf(msg, sizeof(msg), "unknown field '%s'", field);
                json_decref(v);
                sb_api_reply_error(c, 400, "unknown_field", msg, field);
                return false;
            }
        }
    }
    json_decref(c->body);
    c->body = v;
    return true;
}

size_t sb__api_utf8_len(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

const char *sb__api_str(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

json_t *sb__api_time(int64_t us)
{
    char buf[SB_RFC3339_LEN];
    sb_clock_format_rfc3339(us, buf);
    return json_string(buf);
}

bool sb__api_body_str(sb_api_call_t *c, const char *field, bool required, size_t min, size_t max,
                      const char **out)
{
    json_t *v = json_object_get(c->body, field);
    *out = NULL;
    if (v == NULL || (json_is_null(v) && !required)) {
        if (!required)
            return true;
        char msg[96];
        snprintf(msg, sizeof(msg), "%s is required", field);
        sb_api_reply_error(c, 400, "required", msg, field);
        return false;
    }
    const char *s = json_string_value(v);
    size_t n = s != NULL ? sb__api_utf8_len(s) : 0;
    if (s == NULL || n < min || n > max) {
        char msg[128];
        if (s == NULL)
            snprintf(msg, sizeof(msg), "%s must be a string", field);
        else
            snprintf(msg, sizeof(msg), "%s must be %zu to %zu characters", field, min, max);
        sb_api_reply_error(c, 400, "invalid", msg, field);
        return false;
    }
    *out = s;
    return true;
}

/* ---- asks --------------------------------------------------------------------------------------------- */

void sb_api_ask_opts(const sb_api_call_t *c, sb_ask_opts_t *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->user_id = c->user_id[0] ? c->user_id : NULL;
    opts->context = c->ws_context;
    opts->correlation_id = c->request_id;
    opts->request_id = c->request_id;
    opts->source = "api";
    opts->workspace_id = c->ws_id[0] ? c->ws_id : NULL;
}

typedef struct {
    sb_api_call_t *c;
    sb_api_ask_cb cb;
} ask_t;

static void on_ask_reply(const sb_ask_reply_t *reply, void *data)
{
    ask_t *a = data;
    sb_api_call_t *c = a->c;
    sb_api_ask_cb cb = a->cb;
    free(a);
    /* A committed change to a workspace: every loop reads it again before trusting its cache, and
     * this happens before anyone is answered, so the caller's next request sees the change. */
    if ((reply->nevents > 0 || reply->status == SB_EUNKNOWN) && reply->stream != NULL &&
        strncmp(reply->stream, "workspace-", 10) == 0)
        atomic_fetch_add(&c->api->ws_epoch, 1);
    if (c->req == NULL) {
        free_call(c);
        return;
    }
    cb(c, reply);
}

static void ask(sb_api_call_t *c, const char *stream, json_t *cmd, const sb_ask_opts_t *opts,
                sb_api_ask_cb cb)
{
    sb_ask_opts_t def;
    if (opts == NULL) {
        sb_api_ask_opts(c, &def);
        opts = &def;
    }
    ask_t *a = malloc(sizeof(*a));
    if (a == NULL) {
        json_decref(cmd);
        sb_api_reply_errcode(c, SB_ENOMEM, NULL);
        return;
    }
    a->c = c;
    a->cb = cb;
    int rc = cmd != NULL ? sb_actor_ask(c->app->loops, stream, cmd, opts, on_ask_reply, a)
                         : sb_actor_get(c->app->loops, stream, opts, on_ask_reply, a);
    if (rc != 0) {
        free(a);
        sb_api_reply_errcode(c, rc, NULL);
    }
}

void sb_api_ask(sb_api_call_t *c, const char *stream, json_t *cmd, const sb_ask_opts_t *opts,
                sb_api_ask_cb cb)
{
    if (cmd == NULL) {
        sb_api_reply_errcode(c, SB_ENOMEM, NULL);
        return;
    }
    ask(c, stream, cmd, opts, cb);
}

void sb_api_get(sb_api_call_t *c, const char *stream, sb_api_ask_cb cb)
{
    sb_ask_opts_t opts;
    sb_api_ask_opts(c, &opts);
    opts.context = NULL;
    opts.skip_event_data = true;
    ask(c, stream, NULL, &opts, cb);
}

void sb_api_reply_ask_error(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    switch (reply->status) {
    case SB_EREJECTED:
        sb_api_reply_error(c, reply->err->status, reply->err->code, reply->err->message, reply->err->field);
        return;
    case SB_ECONFLICT:
        if (reply->precondition_failed) {
            sb_api_etag(c, reply->version);
            sb_api_reply_error(c, 412, "precondition_failed", "the resource has changed (If-Match)", NULL);
        } else {
            sb_api_reply_error(c, 409, "conflict", "the resource kept changing; try again", NULL);
        }
        return;
    case SB_ENOTFOUND:
        sb_api_reply_error(c, 404, "not_found", "not found", NULL);
        return;
    default:
        if (reply->error != NULL)
            sb_log_warn("api", "ask failed id=%s stream=%s: %s (%s)", c->request_id, reply->stream,
                        sb_strerror(reply->status), reply->error);
        sb_api_reply_errcode(c, reply->status, NULL);
    }
}

/* ---- flows ------------------------------------------------------------------------------------------- */

/* Flows keep nothing of ours: the call comes back through this link. */
struct sb__api_flow_s {
    sb_api_call_t *c;
    sb__api_flow_cb done;
};

void sb__api_flow_opts(const sb_api_call_t *c, sb_flow_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->user_id = c->user_id[0] ? c->user_id : NULL;
    o->correlation_id = c->request_id;
    o->request_id = c->request_id;
    o->source = "api";
}

sb__api_flow_t *sb__api_flow_link(sb_api_call_t *c, sb__api_flow_cb done)
{
    sb__api_flow_t *l = malloc(sizeof(*l));
    if (l == NULL)
        h2o_fatal("no memory");
    l->c = c;
    l->done = done;
    return l;
}

void sb__api_on_flow(const sb_flow_result_t *res, void *data)
{
    sb__api_flow_t *l = data;
    sb_api_call_t *c = l->c;
    sb__api_flow_cb done = l->done;
    free(l);
    if (c->req == NULL) {
        free_call(c);
        return;
    }
    done(c, res);
}

void sb__api_flow_started(sb_api_call_t *c, sb__api_flow_t *link, int rc)
{
    if (rc != 0) {
        free(link);
        sb_api_reply_errcode(c, rc, NULL);
    }
}

void sb__api_reply_flow_error(sb_api_call_t *c, const sb_flow_result_t *res)
{
    switch (res->status) {
    case SB_EREJECTED:
        sb_api_reply_error(c, res->err->status, res->err->code, res->err->message, res->err->field);
        return;
    case SB_ECONFLICT:
        if (res->precondition_failed) {
            sb_api_etag(c, res->version);
            sb_api_reply_error(c, 412, "precondition_failed", "the resource has changed (If-Match)", NULL);
        } else {
            sb_api_reply_error(c, 409, "conflict", "the resource kept changing; try again", NULL);
        }
        return;
    case SB_ETIMEOUT:
        sb_api_reply_error(c, 503, "timeout", "the change could not be made in time; try again", NULL);
        return;
    default:
        if (res->error != NULL)
            sb_log_warn("api", "flow failed id=%s: %s (%s)", c->request_id, sb_strerror(res->status),
                        res->error);
        sb_api_reply_errcode(c, res->status, NULL);
    }
}

/* ---- SQL -------------------------------------------------------------------------------------------------
 */

typedef struct {
    sb_pg_req_t req;
    sb_api_call_t *c;
    sb_api_query_cb cb;
    bool want_errors;
    char *copies[SB_PG_MAX_STMTS][16];
    const char *values[SB_PG_MAX_STMTS][16];
} api_sql_t;

static void free_sql(api_sql_t *q)
{
    for (int s = 0; s < SB_PG_MAX_STMTS; s++)
        for (int i = 0; i < 16; i++)
            free(q->copies[s][i]);
    free(q);
}

static void on_sql_done(sb_pg_req_t *req, int status)
{
    api_sql_t *q = req->data;
    sb_api_call_t *c = q->c;
    if (c->req == NULL) {
        free_call(c);
    } else if (status != 0 && !q->want_errors) {
        if (status == SB_EDB)
            sb_log_error("api", "query failed id=%s stmt=%d sqlstate=%s: %s", c->request_id, req->failed_stmt,
                         req->sqlstate ? req->sqlstate : "?", req->error ? req->error : "?");
        sb_api_reply_errcode(c, status == SB_EDB ? SB_EDB : status, NULL);
    } else {
        q->cb(c, status, req->results, req->nstmts);
    }
    free_sql(q);
}

void sb_api_sql(sb_api_call_t *c, const sb_api_sql_t *stmts, int nstmts, bool want_errors, sb_api_query_cb cb)
{
    if (nstmts < 1 || nstmts > SB_PG_MAX_STMTS || c->loop->db == NULL) {
        sb_api_reply_errcode(c, SB_EDBDOWN, NULL);
        return;
    }
    api_sql_t *q = calloc(1, sizeof(*q));
    if (q == NULL) {
        sb_api_reply_errcode(c, SB_ENOMEM, NULL);
        return;
    }
    q->c = c;
    q->cb = cb;
    q->want_errors = want_errors;
    q->req.cb = on_sql_done;
    q->req.data = q;
    for (int s = 0; s < nstmts; s++) {
        const sb_api_sql_t *st = &stmts[s];
        for (int i = 0; i < st->nparams && i < 16; i++) {
            if (st->params[i] == NULL)
                continue;
            q->copies[s][i] = strdup(st->params[i]);
            if (q->copies[s][i] == NULL) {
                free_sql(q);
                sb_api_reply_errcode(c, SB_ENOMEM, NULL);
                return;
            }
            q->values[s][i] = q->copies[s][i];
        }
        sb_pg_stmt_t ps = {.name = st->name, .sql = st->sql, .nparams = st->nparams, .values = q->values[s]};
        sb_pg_req_add(&q->req, &ps);
    }
    sb_pg_submit(c->loop->db, &q->req);
}

/* ---- query parameters ---------------------------------------------------------------------------------- */

/* Decodes application/x-www-form-urlencoded text into the pool; "\x01" for a malformed value. */
static const char *decode_query_value(h2o_mem_pool_t *pool, const char *p, size_t n)
{
    char *out = h2o_mem_alloc_pool(pool, n + 1);
    size_t o;
    if (sb_form_decode(p, n, out, &o) != 0 || !sb_utf8_is_valid(out, o))
        return "\x01";
    return out;
}

const char *sb_api_query(sb_api_call_t *c, const char *name)
{
    h2o_req_t *req = c->req;
    if (req == NULL || req->query_at == SIZE_MAX)
        return NULL;
    const char *p = req->path.base + req->query_at + 1, *end = req->path.base + req->path.len;
    size_t nlen = strlen(name);
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *e = amp != NULL ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(e - p));
        const char *kend = eq != NULL ? eq : e;
        if ((size_t)(kend - p) == nlen && memcmp(p, name, nlen) == 0)
            return eq != NULL ? decode_query_value(&req->pool, eq + 1, (size_t)(e - eq - 1)) : "";
        p = e + 1;
    }
    return NULL;
}

bool sb_api_page_limit(sb_api_call_t *c, int def, int max, int *out)
{
    const char *v = sb_api_query(c, "limit");
    *out = def;
    if (v == NULL)
        return true;
    char *end;
    long n = strtol(v, &end, 10);
    if (*v == '\0' || *end != '\0' || n < 1 || n > max || v[0] == '+' || v[0] == ' ') {
        char msg[80];
        snprintf(msg, sizeof(msg), "limit must be an integer from 1 to %d", max);
        sb_api_reply_error(c, 400, "invalid", msg, "limit");
        return false;
    }
    *out = (int)n;
    return true;
}

/* ---- If-Match
 * ------------------------------------------------------------------------------------------------- */

/* Parses one If-Match field value (RFC 9110 §13.1.1: "*" / #entity-tag) into vers.  Sets *any for
 * "*".  Weak tags and opaque tags that are not a version are valid but can never match (strong
 * comparison), so they add nothing.  Returns false for a malformed value or more than max
 * distinct versions. */
static bool parse_if_match(const char *p, size_t len, int64_t *vers, int *n, int max, bool *any)
{
    const char *end = p + len;
    bool element = false; /* a list needs at least one element */
    for (;;) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        if (p == end)
            return element;
        element = true;
        if (*p == '*') {
            *any = true;
            p++;
            continue;
        }
        bool weak = false;
        if (end - p >= 2 && p[0] == 'W' && p[1] == '/') {
            weak = true;
            p += 2;
        }
        if (p == end || *p != '"')
            return false;
        const char *tag = ++p;
        while (p < end && *p != '"') {
            /* etagc: %x21 / %x23-7E / obs-text */
            if ((unsigned char)*p < 0x21 || *p == 0x7f)
                return false;
            p++;
        }
        if (p == end)
            return false;
        size_t tlen = (size_t)(p - tag);
        p++;
        if (p < end && *p != ',' && *p != ' ' && *p != '\t')
            return false;
        if (weak || tlen == 0 || tlen > 18)
            continue;
        int64_t v = 0;
        size_t k = 0;
        for (; k < tlen && tag[k] >= '0' && tag[k] <= '9'; k++)
            v = v * 10 + (tag[k] - '0');
        if (k != tlen)
            continue; /* not one of our tags: it matches nothing */
        bool dup = false;
        for (int j = 0; j < *n && !dup; j++)
            dup = vers[j] == v;
        if (dup)
            continue;
        if (*n == max)
            return false;
        vers[(*n)++] = v;
    }
}

bool sb_api_if_match(sb_api_call_t *c, sb_ask_opts_t *opts)
{
    int64_t vers[SB_ASK_MAX_VERSIONS];
    int n = 0;
    bool any = false, seen = false;
    /* Several If-Match fields make one list (RFC 9110 §5.3). */
    for (ssize_t i = -1; (i = h2o_find_header(&c->req->headers, H2O_TOKEN_IF_MATCH, i)) >= 0;) {
        seen = true;
        h2o_iovec_t v = c->req->headers.entries[i].value;
        if (!parse_if_match(v.base, v.len, vers, &n, SB_ASK_MAX_VERSIONS, &any)) {
            /* A condition that cannot be read is not met: nothing changes. */
            sb_api_reply_error(c, 412, "precondition_failed",
                               "If-Match must be \"*\" or a list of at most 8 entity tags", NULL);
            return false;
        }
    }
    /* "*" matches any current representation: a missing resource answers 404 as it would without
     * the condition (RFC 9110 §13.2.1). */
    if (!seen || any)
        return true;
    if (n == 0) {
        sb_api_reply_error(c, 412, "precondition_failed", "If-Match does not match the resource", NULL);
        return false;
    }
    opts->check_version = true;
    opts->expected_version = vers[0];
    opts->n_more_versions = n - 1;
    memcpy(opts->more_versions, vers + 1, (size_t)(n - 1) * sizeof(int64_t));
    return true;
}

bool sb_api_if_match_holds(const sb_ask_opts_t *opts, int64_t version)
{
    if (!opts->check_version || opts->expected_version == version)
        return true;
    for (int i = 0; i < opts->n_more_versions; i++)
        if (opts->more_versions[i] == version)
            return true;
    return false;
}
