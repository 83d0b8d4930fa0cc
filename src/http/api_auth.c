/* Accounts and sessions: POST /v1/auth/signup, POST /v1/auth/login, POST /v1/auth/logout (the
 * account itself, GET and PATCH /v1/me: api_me.c).
 *
 * Passwords are hashed with argon2id (libsodium crypto_pwhash_str) on the libuv thread pool, never
 * on a loop; at most opts.max_hash_jobs hashes are queued or running per process, more get 503.
 * Sign-up claims the e-mail (claim stream "email:<address>") before registering the user, so two
 * sign-ups with one address, even in different processes, cannot both succeed.  Failed logins are
 * counted per account and per client address in the database (shared by every process); past the
 * limits a login answers 429 with Retry-After, before any hashing.  An unknown e-mail costs the
 * same hash as a wrong password, and both answer the same 401. */
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/flows.h"
#include "actors/kinds.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "core/phone.h"
#include "http/api_int.h"
#include "http/response.h"

#define PASSWORD_MIN 8
#define PASSWORD_MAX 1024 /* bytes; argon2 hashes any length, but a peer must not send megabytes */

typedef struct {
    char email[SB_EMAIL_MAX];
    const char *name;
    char user_id[SB_UUID_STRLEN + 1];
    char ref[SB_UUID_STRLEN + 1];
    char credential_ref[8 + SB_UUID_STRLEN];
    char hash[crypto_pwhash_STRBYTES];
    char token[SB__API_TOKEN_LEN + 1];
    char token_hex[65];
    char ttl[24];
    char addr[INET6_ADDRSTRLEN + 8];
    char user_key[8 + SB_EMAIL_MAX];
    char window[24];
    bool known;  /* login: the e-mail has a credential */
    bool active; /* ... an active one */
    char registered_at[SB_RFC3339_LEN];
} auth_state_t;

static void auth_cleanup(sb_api_call_t *c)
{
    auth_state_t *st = c->data;
    sodium_memzero(st->token, sizeof(st->token));
    sodium_memzero(st->hash, sizeof(st->hash));
}

/* ---- password hashing on the thread pool --------------------------------------------------------- */

typedef struct {
    uv_work_t work;
    sb_api_call_t *c;
    sb_api_t *api;
    bool verify;
    char *password;
    size_t pwlen;
    char hash[crypto_pwhash_STRBYTES]; /* in for verify, out for hash */
    int rc;
    char *hash_out; /* hash: where the new hash goes (crypto_pwhash_STRBYTES) */
    sb__api_pw_cb done;
} pw_job_t;

static void pw_work(uv_work_t *w)
{
    pw_job_t *j = w->data;
    if (j->verify)
        j->rc = crypto_pwhash_str_verify(j->hash, j->password, j->pwlen) == 0 ? 0 : SB_EPERM;
    else
        j->rc = crypto_pwhash_str(j->hash, j->password, j->pwlen, j->api->opts.pwhash_ops,
                                  j->api->opts.pwhash_mem) == 0
                    ? 0
                    : SB_ENOMEM;
}

static void pw_after(uv_work_t *w, int status)
{
    pw_job_t *j = w->data;
    sb_api_call_t *c = j->c;
    atomic_fetch_sub(&j->api->hash_jobs, 1);
    sodium_memzero(j->password, j->pwlen);
    free(j->password);
    if (c->req == NULL) {
        sb__api_drop(c);
    } else if (status != 0) {
        sb_api_reply_errcode(c, SB_ESHUTDOWN, NULL);
    } else {
        if (!j->verify && j->rc == 0)
            memcpy(j->hash_out, j->hash, sizeof(j->hash));
        j->done(c, j->rc);
    }
    sodium_memzero(j->hash, sizeof(j->hash));
    free(j);
}

void sb__api_pw_start(sb_api_call_t *c, const char *password, bool verify, const char *against_hash,
                      char *hash_out, sb__api_pw_cb done)
{
    sb_api_t *api = c->api;
    if (atomic_fetch_add(&api->hash_jobs, 1) >= api->opts.max_hash_jobs) {
        atomic_fetch_sub(&api->hash_jobs, 1);
        sb_api_reply_error(c, 503, "overloaded", "too many sign-ins at once; try again", NULL);
        return;
    }
    pw_job_t *j = calloc(1, sizeof(*j));
    size_t n = strlen(password);
    char *pw = malloc(n + 1);
    if (j == NULL || pw == NULL) {
        free(j);
        free(pw);
        atomic_fetch_sub(&api->hash_jobs, 1);
        sb_api_reply_errcode(c, SB_ENOMEM, NULL);
        return;
    }
    memcpy(pw, password, n + 1);
    j->work.data = j;
    j->c = c;
    j->api = api;
    j->verify = verify;
    j->password = pw;
    j->pwlen = n;
    j->done = done;
    j->hash_out = hash_out;
    if (verify)
        snprintf(j->hash, sizeof(j->hash), "%s", against_hash);
    int rc = uv_queue_work(&c->loop->uv, &j->work, pw_work, pw_after);
    if (rc != 0) {
        atomic_fetch_sub(&api->hash_jobs, 1);
        sodium_memzero(pw, n);
        free(pw);
        free(j);
        sb_api_reply_errcode(c, rc, NULL);
    }
}

/* ---- shared ------------------------------------------------------------------------------------------ */

bool sb__api_body_email(sb_api_call_t *c, bool required, char out[SB_EMAIL_MAX])
{
    const char *email;
    out[0] = '\0';
    if (!sb__api_body_str(c, "email", required, 3, 254, &email))
        return false;
    if (email != NULL && sb_email_normalize(email, strlen(email), out) != 0) {
        sb_api_reply_error(c, 400, "invalid_email", "email is not a valid address", "email");
        return false;
    }
    return true;
}

bool sb__api_body_password(sb_api_call_t *c, const char **out)
{
    json_t *v = json_object_get(c->body, "password");
    if (v == NULL || json_is_null(v)) {
        sb_api_reply_error(c, 400, "required", "password is required", "password");
        return false;
    }
    const char *pw = json_string_value(v);
    if (pw == NULL || json_string_length(v) > PASSWORD_MAX || strlen(pw) != json_string_length(v)) {
        sb_api_reply_error(c, 400, "invalid", "password must be a string of at most 1024 bytes", "password");
        return false;
    }
    *out = pw;
    return true;
}

static const char session_sql[] = "INSERT INTO auth_sessions (token_hash, user_id, expires_at) "
                                  "VALUES (decode($1, 'hex'), $2, now() + make_interval(secs => $3::int)) "
                                  "RETURNING (extract(epoch FROM expires_at) * 1000000)::int8";

/* A new token for st->user_id: fills st->token and the statement that stores its hash. */
static void new_session(sb_api_call_t *c, auth_state_t *st, sb_api_sql_t *stmt)
{
    uint8_t hash[32];
    sb__api_token_new(st->token, hash);
    sb__api_hex(hash, 32, st->token_hex);
    snprintf(st->ttl, sizeof(st->ttl), "%lld", (long long)c->api->opts.token_ttl_s);
    *stmt = (sb_api_sql_t){"api_session_new", session_sql, 3, {st->token_hex, st->user_id, st->ttl}};
}

static json_t *session_json(auth_state_t *st, PGresult *r)
{
    int64_t exp = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    return json_pack("{s:s, s:o}", "token", st->token, "expires_at", sb__api_time(exp));
}

/* ---- sign-up ------------------------------------------------------------------------------------------- */

/* The credential row is written first, inactive, under a reference the log's UserRegistered will
 * carry; the user flow then claims the address and registers the user; the row is activated with
 * the id the flow used (it may complete an earlier, crashed sign-up's user instead of ours). */

static void signup_session_stored(sb_api_call_t *c, int status, PGresult *const *results, int n)
{
    auth_state_t *st = c->data;
    atomic_fetch_add_explicit(&c->api->signups, 1, memory_order_relaxed);
    json_t *user = json_pack("{s:s, s:s, s:s, s:s}", "id", st->user_id, "email", st->email, "name", st->name,
                             "created_at", st->registered_at);
    json_t *body = session_json(st, results[1]);
    json_object_set_new(body, "user", user);
    sb_api_reply_json(c, 201, body);
}

static void signup_forgotten(sb_api_call_t *c, int status, PGresult *const *results, int n)
{
    sb_api_reply_error(c, 409, "email_taken", "an account with this e-mail already exists", "email");
}

static void signup_registered(sb_api_call_t *c, const sb_flow_result_t *res)
{
    auth_state_t *st = c->data;
    if (res->status == SB_EREJECTED && strcmp(res->err->code, "email_taken") == 0) {
        sb_api_sql_t q = {
            "api_cred_forget", "DELETE FROM auth_credentials WHERE ref = $1 AND NOT active", 1, {st->ref}};
        sb_api_sql(c, &q, 1, false, signup_forgotten);
        return;
    }
    if (res->status == SB_EREJECTED) {
        sb_api_reply_error(c, res->err->status, res->err->code, res->err->message, res->err->field);
        return;
    }
    if (res->status != 0) {
        sb_api_reply_errcode(c, res->status == SB_ETIMEOUT ? SB_EOVERLOAD : res->status, NULL);
        return;
    }
    snprintf(st->user_id, sizeof(st->user_id), "%s", res->id);
    const char *at = sb__api_str(res->state, "registered_at");
    snprintf(st->registered_at, sizeof(st->registered_at), "%s", at ? at : "");
    sb_api_sql_t q[2] = {{"api_cred_activate",
                          "UPDATE auth_credentials SET user_id = $2, active = true WHERE ref = $1",
                          2,
                          {st->ref, st->user_id}}};
    new_session(c, st, &q[1]);
    sb_api_sql(c, q, 2, false, signup_session_stored);
}

static void signup_credential_stored(sb_api_call_t *c, int status, PGresult *const *results, int n)
{
    auth_state_t *st = c->data;
    snprintf(st->credential_ref, sizeof(st->credential_ref), "cred:%s", st->ref);
    sb_flow_opts_t o;
    sb__api_flow_opts(c, &o);
    o.id = st->user_id;
    sb__api_flow_t *l = sb__api_flow_link(c, signup_registered);
    sb__api_flow_started(c, l,
                         sb_flow_user_register(c->app->loops, st->email, st->name, st->credential_ref, &o,
                                               sb__api_on_flow, l));
}

static void signup_hashed(sb_api_call_t *c, int rc)
{
    auth_state_t *st = c->data;
    if (rc != 0) {
        sb_api_reply_errcode(c, rc, NULL);
        return;
    }
    sb_uuid_t u;
    sb_uuid_v7(&u);
    sb_uuid_format(&u, st->user_id);
    sb_uuid_v4(&u);
    sb_uuid_format(&u, st->ref);
    sb_api_sql_t q = {
        "api_cred_insert",
        "INSERT INTO auth_credentials (ref, user_id, email, password_hash) VALUES ($1, $2, $3, $4)",
        4,
        {st->ref, st->user_id, st->email, st->hash}};
    sb_api_sql(c, &q, 1, false, signup_credential_stored);
}

static int on_signup(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    static const char *const fields[] = {"email", "password", "name", NULL};
    sb_api_call_t *c = sb_api_begin(req, params, sizeof(auth_state_t));
    auth_state_t *st = c->data;
    c->cleanup = auth_cleanup;
    const char *pw;
    if (!sb_api_read_body(c, fields) || !sb__api_body_email(c, true, st->email) ||
        !sb__api_body_password(c, &pw) || !sb__api_body_str(c, "name", true, 1, 200, &st->name))
        return 0;
    if (strlen(pw) < PASSWORD_MIN) {
        sb_api_reply_error(c, 400, "weak_password", "password must be at least 8 characters", "password");
        return 0;
    }
    sb__api_pw_start(c, pw, false, NULL, st->hash, signup_hashed);
    return 0;
}

/* ---- login ------------------------------------------------------------------------------------------------
 */

static const char failures_sql[] =
    "SELECT count(*)::int, coalesce(ceil(extract(epoch FROM min(at) + make_interval(secs => $2::int) - "
    "now())), 1)::int "
    "FROM auth_login_failures WHERE key = $1 AND at > now() - make_interval(secs => $2::int)";
static const char record_failure_sql[] =
    "WITH gone AS (DELETE FROM auth_login_failures WHERE key = ANY (ARRAY[$1, $2]) "
    "AND at < now() - make_interval(secs => $3::int)) "
    "INSERT INTO auth_login_failures (key) VALUES ($1), ($2)";

static void login_failure_recorded(sb_api_call_t *c, int status, PGresult *const *results, int n)
{
    atomic_fetch_add_explicit(&c->api->login_failures, 1, memory_order_relaxed);
    sb_api_reply_error(c, 401, "invalid_credentials", "wrong e-mail or password", NULL);
}

static void login_session_stored(sb_api_call_t *c, int status, PGresult *const *results, int n)
{
    auth_state_t *st = c->data;
    atomic_fetch_add_explicit(&c->api->logins, 1, memory_order_relaxed);
    json_t *body = session_json(st, results[2]); /* after the failures' reset and the activation */
    json_object_set_new(body, "user_id", json_string(st->user_id));
    sb_api_reply_json(c, 200, body);
}

static void login_failed(sb_api_call_t *c)
{
    auth_state_t *st = c->data;
    sb_api_sql_t q = {"api_login_failed", record_failure_sql, 3, {st->user_key, st->addr, st->window}};
    sb_api_sql(c, &q, 1, false, login_failure_recorded);
}

static void login_succeeded(sb_api_call_t *c)
{
    auth_state_t *st = c->data;
    sb_api_sql_t q[3] = {
        {"api_login_ok", "DELETE FROM auth_login_failures WHERE key = $1", 1, {st->user_key}},
    };
    new_session(c, st, &q[1]);
    q[2] = q[1];
    /* Activating the credential is a no-op for an active one (see login_found_user); activating
     * an inactive one retires the user's others (an e-mail change cut short: api_me.c). */
    q[1] = (sb_api_sql_t){"api_cred_activate_only",
                          "UPDATE auth_credentials SET user_id = $2, active = (ref = $1) "
                          "WHERE ref = $1 OR (user_id = $2 AND active)",
                          2,
                          {st->ref, st->user_id}};
    sb_api_sql(c, q, 3, false, login_session_stored);
}

/* A password that matches an inactive credential: a sign-up that crashed after registering the
 * user but before activating the row.  The user's own UserRegistered names the credential it was
 * registered with; only that one becomes active. */
static void login_found_user(sb_api_call_t *c, const sb_flow_result_t *res)
{
    auth_state_t *st = c->data;
    char want[8 + SB_UUID_STRLEN];
    snprintf(want, sizeof(want), "cred:%s", st->ref);
    const char *ref = res->status == 0 ? sb__api_str(res->state, "credential_ref") : NULL;
    if (res->status != 0 && !(res->status == SB_EREJECTED && res->err->status == 404)) {
        sb_api_reply_errcode(c, res->status == SB_EREJECTED ? SB_EDBDOWN : res->status, NULL);
        return;
    }
    if (ref == NULL || strcmp(ref, want) != 0) {
        login_failed(c);
        return;
    }
    snprintf(st->user_id, sizeof(st->user_id), "%s", res->id);
    login_succeeded(c);
}

static void login_verified(sb_api_call_t *c, int rc)
{
    auth_state_t *st = c->data;
    if (rc != 0 || !st->known) {
        login_failed(c);
        return;
    }
    if (st->active) {
        login_succeeded(c);
        return;
    }
    sb_flow_opts_t o;
    sb__api_flow_opts(c, &o);
    sb__api_flow_t *l = sb__api_flow_link(c, login_found_user);
    sb__api_flow_started(c, l, sb_flow_user_find(c->app->loops, st->email, &o, sb__api_on_flow, l));
}

static void login_looked_up(sb_api_call_t *c, int status, PGresult *const *results, int n)
{
    auth_state_t *st = c->data;
    const sb_api_options_t *o = &c->api->opts;
    int fu = atoi(PQgetvalue(results[0], 0, 0)), fa = atoi(PQgetvalue(results[1], 0, 0));
    if (fu >= o->login_max_failures_user || fa >= o->login_max_failures_addr) {
        int wait = atoi(PQgetvalue(results[fu >= o->login_max_failures_user ? 0 : 1], 0, 1));
        char ra[16];
        snprintf(ra, sizeof(ra), "%d", wait > 0 ? wait : 1);
        sb_api_header(c, "retry-after", ra);
        atomic_fetch_add_explicit(&c->api->login_rate_limited, 1, memory_order_relaxed);
        sb_api_reply_error(c, 429, "rate_limited", "too many failed logins; try again later", NULL);
        return;
    }
    const char *against = c->api->dummy_hash;
    if (PQntuples(results[2]) == 1) {
        st->known = true;
        snprintf(st->user_id, sizeof(st->user_id), "%s", PQgetvalue(results[2], 0, 0));
        snprintf(st->hash, sizeof(st->hash), "%s", PQgetvalue(results[2], 0, 1));
        st->active = PQgetvalue(results[2], 0, 2)[0] == 't';
        snprintf(st->ref, sizeof(st->ref), "%s", PQgetvalue(results[2], 0, 3));
        against = st->hash;
    }
    const char *pw = json_string_value(json_object_get(c->body, "password"));
    sb__api_pw_start(c, pw, true, against, NULL, login_verified);
}

static int on_login(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    static const char *const fields[] = {"email", "password", NULL};
    sb_api_call_t *c = sb_api_begin(req, params, sizeof(auth_state_t));
    auth_state_t *st = c->data;
    c->cleanup = auth_cleanup;
    const char *pw;
    if (!sb_api_read_body(c, fields) || !sb__api_body_email(c, true, st->email) ||
        !sb__api_body_password(c, &pw))
        return 0;
    sb_ratelimit_client_key(req, st->addr, sizeof(st->addr));
    snprintf(st->user_key, sizeof(st->user_key), "user:%s", st->email);
    snprintf(st->window, sizeof(st->window), "%lld", (long long)c->api->opts.login_window_s);
    sb_api_sql_t q[3] = {
        {"api_login_failures", failures_sql, 2, {st->user_key, st->window}},
        {"api_login_failures", failures_sql, 2, {st->addr, st->window}},
        {"api_login_lookup",
         /* the active credential, else the newest (a sign-up cut short: login_found_user) */
         "SELECT user_id::text, password_hash, active, ref::text FROM auth_credentials WHERE email = $1 "
         "ORDER BY active DESC, created_at DESC LIMIT 1",
         1,
         {st->email}},
    };
    sb_api_sql(c, q, 3, false, login_looked_up);
    return 0;
}

/* ---- logout ------------------------------------------------------------------------------------------ */

static void logout_done(sb_api_call_t *c, int status, PGresult *const *results, int n)
{
    sb__api_tokens_revoked(c->api);
    sb_api_reply_json(c, 204, NULL);
}

static void logout_authenticated(sb_api_call_t *c)
{
    size_t len;
    const char *tok = sb__api_bearer(c, false, &len);
    uint8_t hash[32];
    char hex[65];
    if (tok == NULL || !sb__api_token_hash(tok, len, hash)) {
        sb_api_reply_error(c, 401, "unauthorized", "a bearer token is required", NULL);
        return;
    }
    sb__api_hex(hash, 32, hex);
    sb_api_sql_t q = {"api_logout",
                      "UPDATE auth_sessions SET revoked_at = now() WHERE token_hash = decode($1, 'hex') "
                      "AND revoked_at IS NULL",
                      1,
                      {hex}};
    sb_api_sql(c, &q, 1, false, logout_done);
}

static int on_logout(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_api_call_t *c = sb_api_begin(req, params, 0);
    sb_api_authenticate(c, false, logout_authenticated);
    return 0;
}

int sb__api_auth_routes(sb_router_t *r, sb_api_t *api)
{
    int rc;
    if ((rc = sb_router_add(r, "POST", "/v1/auth/signup", on_signup, api)) != 0 ||
        (rc = sb_router_add(r, "POST", "/v1/auth/login", on_login, api)) != 0 ||
        (rc = sb_router_add(r, "POST", "/v1/auth/logout", on_logout, api)) != 0)
        return rc;
    return 0;
}
