/* The caller's own account:
 *   GET   /v1/me                                        -> {id, email, name, presence, created_at}, ETag
 *   PATCH /v1/me {name?, email?, password?}  (If-Match) -> the same, ETag
 *
 * Changing the e-mail address needs the current password, and goes through the user flow
 * (src/actors/flows.h), which claims the new address, records it (UserProfileUpdated) and releases
 * the old one, so an address still belongs to at most one account whatever runs concurrently.
 * The login follows the address through the credential table (schema 003_api_auth.sql), kept in
 * step with the log this way:
 *   1. a new credential row for the new address, inactive, with the same password hash;
 *   2. the flow changes the address (on failure the new row is deleted again);
 *   3. the user names the new row (ChangeCredential: UserCredentialChanged);
 *   4. the new row becomes the user's only active one.
 * A crash after 3 leaves the new row inactive: the first login with the new address activates it,
 * as it does for a sign-up cut short (api_auth.c, login_found_user).  A crash between 2 and 3 is
 * healed by sending the change again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/flows.h"
#include "core/error.h"
#include "core/log.h"
#include "http/api_int.h"

typedef struct {
    char email[SB_EMAIL_MAX];
    const char *name;
    sb_ask_opts_t cond; /* If-Match, for the first change */
    char new_ref[SB_UUID_STRLEN + 1];
    char credential_ref[8 + SB_UUID_STRLEN];
    char hash[crypto_pwhash_STRBYTES];
    bool changed; /* a change was stored: If-Match no longer applies to the next */
    json_t *state;
    int64_t version;
    /* why the e-mail flow failed, kept while its credential row is deleted */
    sb_flow_result_t failed;
    sb_derror_t failed_err;
} me_state_t;

static void me_cleanup(sb_api_call_t *c)
{
    me_state_t *st = c->data;
    sodium_memzero(st->hash, sizeof(st->hash));
    json_decref(st->state);
}

static void user_stream(const sb_api_call_t *c, char out[8 + SB_UUID_STRLEN])
{
    snprintf(out, 8 + SB_UUID_STRLEN, "user-%s", c->user_id);
}

static void reply_me(sb_api_call_t *c, const json_t *u, int64_t version)
{
    sb_api_etag(c, version);
    sb_api_reply_json(c, 200,
                      json_pack("{s:s, s:O?, s:O?, s:O?, s:O?}", "id", c->user_id, "email",
                                json_object_get(u, "email"), "name", json_object_get(u, "name"), "presence",
                                json_object_get(u, "presence"), "created_at",
                                json_object_get(u, "registered_at")));
}

/* ---- GET ---------------------------------------------------------------------------------------- */

static void me_got_user(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    if (reply->status != 0) {
        sb_api_reply_ask_error(c, reply);
        return;
    }
    if (!json_is_true(json_object_get(reply->state, "registered"))) {
        /* A session whose user never registered: treat as no session. */
        sb_api_reply_error(c, 401, "unauthorized", "the token's account does not exist", NULL);
        return;
    }
    reply_me(c, reply->state, reply->version);
}

static void me_authenticated(sb_api_call_t *c)
{
    char stream[8 + SB_UUID_STRLEN];
    user_stream(c, stream);
    sb_api_get(c, stream, me_got_user);
}

static int on_me(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_api_authenticate(sb_api_begin(req, params, 0), false, me_authenticated);
    return 0;
}

/* ---- PATCH: the name -------------------------------------------------------------------------------- */

/* Nothing to change: the account as it is, if the condition holds. */
static void unchanged_got(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    me_state_t *st = c->data;
    if (reply->status == 0 && !sb_api_if_match_holds(&st->cond, reply->version)) {
        sb_api_etag(c, reply->version);
        sb_api_reply_error(c, 412, "precondition_failed", "the resource has changed (If-Match)", NULL);
        return;
    }
    me_got_user(c, reply);
}

static void patch_done(sb_api_call_t *c)
{
    me_state_t *st = c->data;
    if (st->state != NULL) {
        reply_me(c, st->state, st->version);
        return;
    }
    char stream[8 + SB_UUID_STRLEN];
    user_stream(c, stream);
    sb_api_get(c, stream, unchanged_got);
}

static void name_changed(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    me_state_t *st = c->data;
    if (reply->status != 0) {
        sb_api_reply_ask_error(c, reply);
        return;
    }
    json_decref(st->state);
    st->state = json_incref(reply->state);
    st->version = reply->version;
    patch_done(c);
}

static void change_name(sb_api_call_t *c)
{
    me_state_t *st = c->data;
    if (st->name == NULL) {
        patch_done(c);
        return;
    }
    sb_ask_opts_t o;
    sb_api_ask_opts(c, &o);
    if (!st->changed) {
        o.check_version = st->cond.check_version;
        o.expected_version = st->cond.expected_version;
        o.n_more_versions = st->cond.n_more_versions;
        memcpy(o.more_versions, st->cond.more_versions, sizeof(o.more_versions));
    }
    char stream[8 + SB_UUID_STRLEN];
    user_stream(c, stream);
    sb_api_ask(c, stream, json_pack("{s:s, s:s}", "type", "UpdateProfile", "name", st->name), &o,
               name_changed);
}

/* ---- PATCH: the e-mail address ------------------------------------------------------------------------ */

static void credential_activated(sb_api_call_t *c, int status, PGresult *const *results, int n)
{
    change_name(c);
}

static void credential_named(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    me_state_t *st = c->data;
    if (reply->status != 0) {
        /* The address has changed but the login still uses the old row: sending the change again
         * finishes it. */
        sb_log_warn("api", "e-mail changed but the credential was not renamed id=%s: %s", c->request_id,
                    sb_strerror(reply->status));
        sb_api_reply_ask_error(c, reply);
        return;
    }
    json_decref(st->state);
    st->state = json_incref(reply->state);
    st->version = reply->version;
    sb_api_sql_t q = {"api_cred_activate_only",
                      "UPDATE auth_credentials SET user_id = $2, active = (ref = $1) "
                      "WHERE ref = $1 OR (user_id = $2 AND active)",
                      2,
                      {st->new_ref, c->user_id}};
    sb_api_sql(c, &q, 1, false, credential_activated);
}

static void reply_flow_failure(sb_api_call_t *c, int status, PGresult *const *results, int n)
{
    me_state_t *st = c->data;
    sb__api_reply_flow_error(c, &st->failed);
}

static void email_changed(sb_api_call_t *c, const sb_flow_result_t *res)
{
    me_state_t *st = c->data;
    if (res->status != 0) {
        /* Keep what to answer, forget the new credential row, then answer. */
        /* only what sb__api_reply_flow_error reads: the rest is the flow's, gone after this */
        st->failed = (sb_flow_result_t){
            .status = res->status, .version = res->version, .precondition_failed = res->precondition_failed};
        if (res->err != NULL) {
            st->failed_err = *res->err;
            st->failed.err = &st->failed_err;
        }
        sb_api_sql_t q = {"api_cred_forget",
                          "DELETE FROM auth_credentials WHERE ref = $1 AND NOT active",
                          1,
                          {st->new_ref}};
        sb_api_sql(c, &q, 1, false, reply_flow_failure);
        return;
    }
    st->changed = true;
    char stream[8 + SB_UUID_STRLEN];
    user_stream(c, stream);
    sb_api_ask(c, stream,
               json_pack("{s:s, s:s}", "type", "ChangeCredential", "credential_ref", st->credential_ref),
               NULL, credential_named);
}

static void credential_stored(sb_api_call_t *c, int status, PGresult *const *results, int n)
{
    me_state_t *st = c->data;
    sb_flow_opts_t o;
    sb__api_flow_opts(c, &o);
    o.check_version = st->cond.check_version;
    o.expected_version = st->cond.expected_version;
    o.n_more_versions = st->cond.n_more_versions;
    memcpy(o.more_versions, st->cond.more_versions, sizeof(o.more_versions));
    sb__api_flow_t *l = sb__api_flow_link(c, email_changed);
    sb__api_flow_started(
        c, l, sb_flow_user_change_email(c->app->loops, c->user_id, st->email, &o, sb__api_on_flow, l));
}

static void password_checked(sb_api_call_t *c, int rc)
{
    me_state_t *st = c->data;
    if (rc != 0) {
        sb_api_reply_error(c, 403, "wrong_password", "the password is not right", "password");
        return;
    }
    sb_uuid_t u;
    sb_uuid_v4(&u);
    sb_uuid_format(&u, st->new_ref);
    snprintf(st->credential_ref, sizeof(st->credential_ref), "cred:%s", st->new_ref);
    sb_api_sql_t q = {
        "api_cred_insert",
        "INSERT INTO auth_credentials (ref, user_id, email, password_hash) VALUES ($1, $2, $3, $4)",
        4,
        {st->new_ref, c->user_id, st->email, st->hash}};
    sb_api_sql(c, &q, 1, false, credential_stored);
}

static void credential_loaded(sb_api_call_t *c, int status, PGresult *const *results, int n)
{
    me_state_t *st = c->data;
    PGresult *r = results[0];
    if (PQntuples(r) != 1) {
        sb_api_reply_error(c, 401, "unauthorized", "the token's account has no password", NULL);
        return;
    }
    if (strcmp(PQgetvalue(r, 0, 1), st->email) == 0) { /* the address it has */
        change_name(c);
        return;
    }
    snprintf(st->hash, sizeof(st->hash), "%s", PQgetvalue(r, 0, 0));
    const char *pw = json_string_value(json_object_get(c->body, "password"));
    sb__api_pw_start(c, pw, true, st->hash, NULL, password_checked);
}

static void patch_authenticated(sb_api_call_t *c)
{
    static const char *const fields[] = {"name", "email", "password", NULL};
    me_state_t *st = c->data;
    const char *pw;
    if (!sb_api_read_body(c, fields) || !sb__api_body_str(c, "name", false, 1, 200, &st->name) ||
        !sb__api_body_email(c, false, st->email) || !sb_api_if_match(c, &st->cond))
        return;
    if (st->email[0] == '\0') {
        change_name(c);
        return;
    }
    json_t *p = json_object_get(c->body, "password");
    if (p == NULL || json_is_null(p)) {
        sb_api_reply_error(c, 400, "required", "password is required to change the e-mail address",
                           "password");
        return;
    }
    if (!sb__api_body_password(c, &pw))
        return;
    sb_api_sql_t q = {
        "api_cred_of_user",
        "SELECT password_hash, email FROM auth_credentials WHERE user_id = $1 AND active LIMIT 1",
        1,
        {c->user_id}};
    sb_api_sql(c, &q, 1, false, credential_loaded);
}

static int on_patch(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_api_call_t *c = sb_api_begin(req, params, sizeof(me_state_t));
    c->cleanup = me_cleanup;
    sb_api_authenticate(c, false, patch_authenticated);
    return 0;
}

int sb__api_me_routes(sb_router_t *r, sb_api_t *api)
{
    int rc;
    if ((rc = sb_router_add(r, "GET", "/v1/me", on_me, api)) != 0 ||
        (rc = sb_router_add(r, "PATCH", "/v1/me", on_patch, api)) != 0)
        return rc;
    return 0;
}
