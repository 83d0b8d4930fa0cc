/* Principals: bearer tokens to users, and users to their role in a workspace.
 *
 * A token is "sbt_" + base64url of 32 random bytes; only its SHA-256 is stored (auth_sessions), so
 * a leaked table grants nothing.  Verifying looks the hash up with its expiry and revocation; a loop
 * then trusts the answer for token_cache_ms (a direct-mapped cache of hashes, compared in constant
 * time).  A logout bumps the service's revocation epoch, which makes every loop of this process
 * check the database again before trusting any cached token.
 *
 * The lookup itself compares hashes in PostgreSQL's index, not in constant time; that leaks at
 * most which SHA-256 prefixes exist, which tells an attacker nothing about any token (finding a
 * preimage is the whole problem). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "actors/kinds.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "http/api_int.h"
#include "http/auth_hook.h"
#include "events/follow.h"
#include "http/response.h"

static const char verify_sql[] = "SELECT user_id::text, (extract(epoch FROM expires_at) * 1000000)::int8 "
                                 "FROM auth_sessions WHERE token_hash = decode($1, 'hex') "
                                 "AND revoked_at IS NULL AND expires_at > now()";

void sb__api_hex(const uint8_t *p, size_t n, char *out)
{
    sodium_bin2hex(out, n * 2 + 1, p, n);
}

void sb__api_token_new(char out[SB__API_TOKEN_LEN + 1], uint8_t hash[32])
{
    uint8_t raw[32];
    randombytes_buf(raw, sizeof(raw));
    memcpy(out, SB__API_TOKEN_PREFIX, 4);
    sodium_bin2base64(out + 4, SB__API_TOKEN_LEN + 1 - 4, raw, sizeof(raw),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof(raw));
    crypto_hash_sha256(hash, (const unsigned char *)out, SB__API_TOKEN_LEN);
}

/* 1 for the characters of unpadded base64url: a table, as every request checks its token. */
static const unsigned char base64url[256] = {
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1,
    ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1,
    ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
    ['Y'] = 1, ['Z'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1,
    ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1,
    ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1,
    ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1, ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1,
    ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1, ['-'] = 1, ['_'] = 1,
};

bool sb__api_token_is_wellformed(const char *token, size_t len)
{
    if (len != SB__API_TOKEN_LEN || memcmp(token, SB__API_TOKEN_PREFIX, 4) != 0)
        return false;
    unsigned ok = 1;
    for (size_t i = 4; i < len; i++)
        ok &= base64url[(unsigned char)token[i]];
    return ok;
}

bool sb__api_token_hash(const char *token, size_t len, uint8_t hash[32])
{
    if (!sb__api_token_is_wellformed(token, len))
        return false;
    crypto_hash_sha256(hash, (const unsigned char *)token, len);
    return true;
}

const char *sb__api_bearer(sb_api_call_t *c, bool allow_query, size_t *len)
{
    ssize_t i = h2o_find_header(&c->req->headers, H2O_TOKEN_AUTHORIZATION, -1);
    if (i >= 0) {
        h2o_iovec_t v = c->req->headers.entries[i].value;
        if (v.len > 7 && strncasecmp(v.base, "Bearer ", 7) == 0) {
            size_t k = 7;
            while (k < v.len && v.base[k] == ' ')
                k++;
            size_t n = v.len - k;
            while (n > 0 && v.base[k + n - 1] == ' ')
                n--;
            *len = n;
            return v.base + k;
        }
        return NULL;
    }
    if (allow_query) {
        const char *q = sb_api_query(c, "access_token");
        if (q != NULL) {
            *len = strlen(q);
            return q;
        }
    }
    return NULL;
}

void sb__api_tokens_revoked(sb_api_t *api)
{
    atomic_fetch_add(&api->token_epoch, 1);
    /* Open event streams authorized by a token check it again (src/http/sse.c). */
    sb_http_auth_revoked();
}

/* ---- verification (shared by calls and sb_api_check_member) ---------------------------------------- */

typedef void (*verify_cb)(void *data, int status, const char *user_id);

typedef struct {
    sb_pg_req_t req;
    sb_api_t *api;
    sb__api_loop_t *l;
    uint8_t key[SB__API_TOKEN_KEY_BYTES];
    uint8_t hash[32];
    char hex[65];
    const char *values[1];
    uint64_t epoch;
    verify_cb cb;
    void *data;
} verify_t;

static sb__api_token_slot_t *slot_for(sb__api_loop_t *l, const uint8_t key[SB__API_TOKEN_KEY_BYTES])
{
    uint32_t k;
    memcpy(&k, key, sizeof(k));
    return &l->tokens[k % SB__API_TOKEN_SLOTS];
}

/* A cached, still valid verification, or NULL. */
static const char *cached_user(sb_api_t *api, sb__api_loop_t *l, const uint8_t key[SB__API_TOKEN_KEY_BYTES])
{
    sb__api_token_slot_t *s = slot_for(l, key);
    if (!s->used || sodium_memcmp(s->key, key, SB__API_TOKEN_KEY_BYTES) != 0)
        return NULL;
    uint64_t now_ms = uv_now(&l->loop->uv);
    if (s->epoch != atomic_load(&api->token_epoch) ||
        now_ms - s->cached_ms > (uint64_t)api->opts.token_cache_ms || s->expires_us <= sb_clock_now_us()) {
        s->used = false;
        return NULL;
    }
    return s->user_id;
}

static void on_verified(sb_pg_req_t *req, int status)
{
    verify_t *v = req->data;
    if (status != 0) {
        if (status == SB_EDB)
            sb_log_error("api", "token lookup failed: %s", req->error ? req->error : "?");
        v->cb(v->data, status == SB_EDB ? SB_EDB : status, NULL);
    } else if (PQntuples(req->results[0]) != 1) {
        v->cb(v->data, SB_EINVAL, NULL);
    } else {
        char user[SB_UUID_STRLEN + 1];
        snprintf(user, sizeof(user), "%s", PQgetvalue(req->results[0], 0, 0));
        if (v->api->opts.token_cache_ms > 0) {
            sb__api_token_slot_t *s = slot_for(v->l, v->key);
            memcpy(s->key, v->key, sizeof(s->key));
            memcpy(s->user_id, user, sizeof(user));
            s->expires_us = strtoll(PQgetvalue(req->results[0], 0, 1), NULL, 10);
            s->cached_ms = uv_now(&v->l->loop->uv);
            s->epoch = v->epoch;
            s->used = true;
        }
        v->cb(v->data, 0, user);
    }
    free(v);
}

/* Resolves a well-formed token (sb__api_token_is_wellformed) to its user: from the loop's cache (cb
 * runs before this returns, and true is returned), or from the database (cb later; false). */
static bool verify(sb_api_t *api, sb_loop_t *loop, const char *token, size_t len, verify_cb cb, void *data)
{
    sb__api_loop_t *l = api->loops[loop->index];
    uint8_t key[SB__API_TOKEN_KEY_BYTES];
    crypto_shorthash_siphashx24(key, (const unsigned char *)token, len, api->token_key);
    const char *user = cached_user(api, l, key);
    if (user != NULL) {
        cb(data, 0, user);
        return true;
    }
    verify_t *v = calloc(1, sizeof(*v));
    if (v == NULL || loop->db == NULL) {
        free(v);
        cb(data, loop->db == NULL ? SB_EDBDOWN : SB_ENOMEM, NULL);
        return true;
    }
    v->api = api;
    v->l = l;
    memcpy(v->key, key, sizeof(key));
    crypto_hash_sha256(v->hash, (const unsigned char *)token, len);
    sb__api_hex(v->hash, 32, v->hex);
    v->values[0] = v->hex;
    /* The epoch before asking: a logout that lands while we ask makes this answer stale at once. */
    v->epoch = atomic_load(&api->token_epoch);
    v->cb = cb;
    v->data = data;
    sb_pg_req_init(&v->req, verify_sql, 1, v->values, on_verified, v);
    v->req.stmts[0].name = "api_token_verify";
    sb_pg_submit(loop->db, &v->req);
    return false;
}

/* ---- calls: authenticate ----------------------------------------------------------------------------- */

static void on_call_verified(void *data, int status, const char *user_id)
{
    sb_api_call_t *c = data;
    if (c->req == NULL) {
        sb__api_drop(c);
        return;
    }
    if (status == SB_EINVAL) {
        sb_api_reply_error(c, 401, "unauthorized", "the token is invalid, expired or revoked", NULL);
        return;
    }
    if (status != 0) {
        sb_api_reply_errcode(c, status, NULL);
        return;
    }
    memcpy(c->user_id, user_id, SB_UUID_STRLEN + 1);
    sb_api_step_cb next = c->_next;
    c->_next = NULL;
    next(c);
}

void sb_api_authenticate(sb_api_call_t *c, bool allow_query, sb_api_step_cb next)
{
    if (c->user_id[0] != '\0') {
        next(c);
        return;
    }
    size_t len = 0;
    const char *tok = sb__api_bearer(c, allow_query, &len);
    if (tok == NULL) {
        sb_api_reply_error(c, 401, "unauthorized", "a bearer token is required", NULL);
        return;
    }
    if (!sb__api_token_is_wellformed(tok, len)) {
        sb_api_reply_error(c, 401, "unauthorized", "the token is invalid, expired or revoked", NULL);
        return;
    }
    c->_next = next;
    verify(c->api, c->loop, tok, len, on_call_verified, c);
}

/* ---- calls: the workspace -------------------------------------------------------------------------------
 */

static const char *member_role(const json_t *ws_state, const char *user_id)
{
    return json_string_value(
        json_object_get(json_object_get(json_object_get(ws_state, "members"), user_id), "role"));
}

#define WS_CACHE_MS 30000 /* a safety net: invalidation does the real work */

static sb__api_ws_slot_t *ws_slot(sb__api_loop_t *l, const char *ws)
{
    uint32_t h = 2166136261u;
    for (const char *p = ws; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    return &l->ws[h % SB__API_WS_SLOTS];
}

static void ws_slot_clear(sb__api_ws_slot_t *s)
{
    json_decref(s->state);
    json_decref(s->context);
    memset(s, 0, sizeof(*s));
}

/* Checks the caller's role in the slot's state and continues, or answers 404/403. */
static void use_workspace(sb_api_call_t *c, sb__api_ws_slot_t *slot)
{
    if (memcmp(slot->member, c->user_id, sizeof(slot->member)) != 0) {
        slot->member_role = sb_role_parse(member_role(slot->state, c->user_id));
        memcpy(slot->member, c->user_id, sizeof(slot->member));
    }
    sb_role_t role = slot->member_role;
    if (role == SB_ROLE_NONE) {
        sb_api_reply_error(c, 404, "workspace_not_found", "no such workspace", NULL);
        return;
    }
    if (role < c->_need) {
        char msg[96];
        snprintf(msg, sizeof(msg), "this needs the %s role or higher", sb_role_name(c->_need));
        sb_api_reply_error(c, 403, "forbidden", msg, NULL);
        return;
    }
    c->ws_state = json_incref(slot->state);
    c->ws_context = json_incref(slot->context);
    c->ws_version = slot->version;
    c->role = role;
    sb_api_step_cb next = c->_ws_next;
    c->_ws_next = NULL;
    next(c);
}

static void got_workspace(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    if (reply->status != 0) {
        sb_api_reply_ask_error(c, reply);
        return;
    }
    if (reply->state == NULL || !json_is_true(json_object_get(reply->state, "created"))) {
        sb_api_reply_error(c, 404, "workspace_not_found", "no such workspace", NULL);
        return;
    }
    json_t *context = sb_workspace_context(reply->state);
    if (context == NULL) {
        sb_api_reply_errcode(c, SB_ENOMEM, NULL);
        return;
    }
    /* Cached under the epoch read before asking: a change committed meanwhile makes it stale. */
    sb__api_ws_slot_t *slot = ws_slot(sb__api_loop(c), c->ws_id);
    ws_slot_clear(slot);
    memcpy(slot->ws, c->ws_id, sizeof(slot->ws));
    slot->state = json_incref(reply->state);
    slot->context = context;
    slot->version = reply->version;
    slot->epoch = c->_ws_epoch;
    slot->cached_ms = uv_now(&c->loop->uv);
    use_workspace(c, slot);
}

static void workspace_authenticated(sb_api_call_t *c)
{
    if (c->ws_id[0] == '\0') {
        sb_api_reply_error(c, 404, "workspace_not_found", "no such workspace", NULL);
        return;
    }
    sb__api_ws_slot_t *slot = ws_slot(sb__api_loop(c), c->ws_id);
    uint64_t epoch = atomic_load(&c->api->ws_epoch);
    if (slot->state != NULL && strcmp(slot->ws, c->ws_id) == 0 && slot->epoch == epoch &&
        uv_now(&c->loop->uv) - slot->cached_ms < WS_CACHE_MS) {
        use_workspace(c, slot);
        return;
    }
    c->_ws_epoch = epoch;
    char stream[16 + SB_UUID_STRLEN];
    snprintf(stream, sizeof(stream), "workspace-%s", c->ws_id);
    sb_api_get(c, stream, got_workspace);
}

/* ---- the follower: workspace changes made elsewhere ---------------------------------------------------- */

static void on_ws_events(sb_sub_t *sub, const sb_event_t *events, int n, void *data)
{
    sb_api_t *api = data;
    if (n > 0)
        atomic_fetch_add(&api->ws_epoch, 1);
}

void sb__api_ws_cache_start(sb__api_loop_t *l, sb_api_t *api)
{
    sb_app_t *app = api->app;
    if (l->loop->index != 0 || app == NULL || app->follower == NULL || l->loop->db == NULL)
        return;
    static const char *const categories[] = {"workspace"};
    sb_log_filter_t f = {.categories = categories, .ncategories = 1};
    int64_t head = sb_follower_head(app->follower);
    l->ws_sub = sb_follower_subscribe(app->follower, l->loop->db, head > 0 ? head : 0, &f, on_ws_events, api);
    if (l->ws_sub == NULL)
        sb_log_warn("api", "cannot follow workspace changes: cached workspaces expire after %d s",
                    WS_CACHE_MS / 1000);
}

void sb__api_ws_cache_stop(sb__api_loop_t *l)
{
    if (l->ws_sub != NULL) {
        sb_sub_close(l->ws_sub);
        l->ws_sub = NULL;
    }
    for (int i = 0; i < SB__API_WS_SLOTS; i++)
        ws_slot_clear(&l->ws[i]);
}

void sb_api_workspace(sb_api_call_t *c, sb_role_t min_role, sb_api_step_cb next)
{
    c->_need = min_role;
    c->_ws_next = next;
    /* Authentication comes first: an anonymous caller learns nothing, not even 404 from 403. */
    sb_api_authenticate(c, false, workspace_authenticated);
}

/* ---- membership for other subsystems ------------------------------------------------------------------ */

typedef struct {
    sb_task_t task; /* to answer later on this loop when the answer is known at once */
    sb_api_t *api;
    sb_loop_t *loop;
    char ws[SB_UUID_STRLEN + 1];
    char user[SB_UUID_STRLEN + 1];
    int status;
    sb_role_t role;
    sb_api_member_cb cb;
    void *data;
} member_check_t;

static void member_answer(sb_task_t *task)
{
    member_check_t *m = (member_check_t *)task;
    m->cb(m->status, m->status == 0 ? m->user : NULL, m->role, m->data);
    free(m);
}

static void member_finish(member_check_t *m, int status, sb_role_t role, bool deferred)
{
    m->status = status;
    m->role = role;
    if (deferred) {
        member_answer(&m->task);
    } else {
        m->task.cb = member_answer;
        sb_loop_post(m->loop, &m->task);
    }
}

static void member_got_workspace(const sb_ask_reply_t *reply, void *data)
{
    member_check_t *m = data;
    if (reply->status != 0) {
        member_finish(m, reply->status == SB_ENOTFOUND ? SB_ENOTFOUND : reply->status, SB_ROLE_NONE, true);
        return;
    }
    const json_t *st = reply->state;
    sb_role_t role = st != NULL && json_is_true(json_object_get(st, "created"))
                         ? sb_role_parse(member_role(st, m->user))
                         : SB_ROLE_NONE;
    member_finish(m, role == SB_ROLE_NONE ? SB_ENOTFOUND : 0, role, true);
}

static void member_verified(void *data, int status, const char *user_id)
{
    member_check_t *m = data;
    if (status != 0) {
        /* May run inside sb_api_check_member (a cached answer): defer to keep the promise. */
        m->status = status;
        m->task.cb = member_answer;
        sb_loop_post(m->loop, &m->task);
        return;
    }
    memcpy(m->user, user_id, SB_UUID_STRLEN + 1);
    char stream[16 + SB_UUID_STRLEN];
    snprintf(stream, sizeof(stream), "workspace-%s", m->ws);
    sb_ask_opts_t opts = {.user_id = m->user, .source = "api", .skip_event_data = true};
    sb_app_t *app = m->api->app;
    int rc = sb_actor_get(app->loops, stream, &opts, member_got_workspace, m);
    if (rc != 0) {
        m->status = rc;
        m->task.cb = member_answer;
        sb_loop_post(m->loop, &m->task);
    }
}

void sb_api_check_member(const char *token, const char *workspace_id, sb_api_member_cb cb, void *data)
{
    sb_app_t *app = sb_app_current();
    sb_loop_t *loop = sb_loop_current();
    member_check_t *m = calloc(1, sizeof(*m));
    if (m == NULL)
        h2o_fatal("no memory");
    m->loop = loop;
    m->cb = cb;
    m->data = data;
    if (app == NULL || app->api == NULL || loop == NULL) {
        m->status = SB_ESHUTDOWN;
    } else if (!sb__api_uuid(workspace_id, m->ws)) {
        m->status = SB_ENOTFOUND;
    } else if (token == NULL || !sb__api_token_is_wellformed(token, strlen(token))) {
        m->status = SB_EINVAL;
    } else {
        m->api = app->api;
        verify(m->api, loop, token, strlen(token), member_verified, m);
        return;
    }
    if (loop == NULL) {
        /* Off the worker loops there is no later to answer in; callers must not do this. */
        member_answer(&m->task);
        return;
    }
    member_finish(m, m->status, SB_ROLE_NONE, false);
}

/* ---- the HTTP layer's workspace authorizer (auth_hook.h), for the SSE stream -----------------------------
 */

static void authorizer_answered(int status, const char *user_id, sb_role_t role, void *data)
{
    sb_http_auth_check_t *check = data;
    sb_uuid_t uid;
    switch (status) {
    case 0:
        sb_uuid_parse(user_id, SB_UUID_STRLEN, &uid);
        sb_http_auth_finish(check, SB_HTTP_AUTH_OK, &uid);
        return;
    case SB_EINVAL:
        sb_http_auth_finish(check, SB_HTTP_AUTH_UNAUTHENTICATED, NULL);
        return;
    case SB_ENOTFOUND:
        sb_http_auth_finish(check, SB_HTTP_AUTH_NOT_FOUND, NULL);
        return;
    default:
        sb_http_auth_finish(check, SB_HTTP_AUTH_UNAVAILABLE, NULL);
    }
}

static void authorizer_check(sb_http_auth_check_t *check, const char *token, const sb_uuid_t *workspace,
                             void *data)
{
    char ws[SB_UUID_STRLEN + 1];
    sb_uuid_format(workspace, ws);
    sb_api_check_member(token, ws, authorizer_answered, check);
}

void sb__api_install_authorizer(sb_api_t *api)
{
    if (sb_http_has_authorizer())
        return; /* a test tool's own */
    sb_http_authorizer_t a = {authorizer_check, api};
    sb_http_set_authorizer(&a);
    api->authorizer = true;
}
