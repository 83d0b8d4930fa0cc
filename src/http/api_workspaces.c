/* Workspaces and their members:
 *   POST /v1/workspaces {name, default_country?}      -> 201 workspace (the caller is its owner)
 *   GET  /v1/workspaces                               -> the caller's workspaces (members read model)
 *   GET  /v1/workspaces/{ws}                          -> workspace, ETag = the stream's version
 *   PATCH /v1/workspaces/{ws} {name?, default_country?} (admin; If-Match)
 *   GET  /v1/workspaces/{ws}/members                  -> members
 *   POST /v1/workspaces/{ws}/members {email, role}    -> 201 member (200 when already one, same role)
 *   PATCH /v1/workspaces/{ws}/members/{id} {role}     -> member
 *   DELETE /v1/workspaces/{ws}/members/{id}           -> 204 (anyone may leave; admins remove others)
 * The workspace actor is authoritative for everything here except the list of the caller's
 * workspaces, which spans workspaces and so comes from the members read model. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/flows.h"
#include "actors/kinds.h"
#include "core/error.h"
#include "core/phone.h"
#include "http/api_int.h"

typedef struct {
    char new_id[SB_UUID_STRLEN + 1];
    char email[SB_EMAIL_MAX];
    const char *role;
    char member_id[SB_UUID_STRLEN + 1];
    int step;           /* PATCH: the next field to apply */
    json_t *last_state; /* PATCH: the state after the last command */
    int64_t last_version;
} ws_state_t;

static void ws_cleanup(sb_api_call_t *c)
{
    ws_state_t *st = c->data;
    json_decref(st->last_state);
}

/* The API's view of a workspace state; role is the caller's. */
static json_t *workspace_json(const char *id, const json_t *s, sb_role_t role)
{
    return json_pack("{s:s, s:O?, s:O?, s:O?, s:O?, s:s}", "id", id, "name", json_object_get(s, "name"),
                     "default_country", json_object_get(s, "default_country"), "owner_id",
                     json_object_get(s, "owner_id"), "created_at", json_object_get(s, "created_at"), "role",
                     sb_role_name(role));
}

/* A member is named by its user's id: "id" (SPEC §5: every resource has one) and "user_id". */
static json_t *member_json(const char *user_id, const json_t *m)
{
    return json_pack("{s:s, s:s, s:O?, s:O?, s:O?}", "id", user_id, "user_id", user_id, "email",
                     json_object_get(m, "email"), "name", json_object_get(m, "name"), "role",
                     json_object_get(m, "role"));
}

static void stream_of(const char *category, const char *id, char *out, size_t cap)
{
    snprintf(out, cap, "%s-%s", category, id);
}

/* ---- POST /v1/workspaces ---------------------------------------------------------------------------- */

static void created_reply(sb_api_call_t *c, const json_t *state, int64_t version)
{
    ws_state_t *st = c->data;
    char loc[64];
    snprintf(loc, sizeof(loc), "/v1/workspaces/%s", st->new_id);
    sb_api_header(c, "location", loc);
    sb_api_etag(c, version);
    sb_api_reply_json(c, 201, workspace_json(st->new_id, state, SB_ROLE_OWNER));
}

static void create_reread(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    /* An idempotent retry of a create whose first outcome was unknown: the workspace exists; it is
     * the caller's if they own it. */
    if (reply->status != 0) {
        sb_api_reply_ask_error(c, reply);
        return;
    }
    const char *owner = sb__api_str(reply->state, "owner_id");
    if (owner == NULL || strcmp(owner, c->user_id) != 0) {
        sb_api_reply_error(c, 409, "workspace_exists", "this workspace already exists", NULL);
        return;
    }
    created_reply(c, reply->state, reply->version);
}

static void create_done(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    ws_state_t *st = c->data;
    if (reply->status == SB_EREJECTED && strcmp(reply->err->code, "workspace_exists") == 0) {
        char stream[16 + SB_UUID_STRLEN];
        stream_of("workspace", st->new_id, stream, sizeof(stream));
        sb_api_get(c, stream, create_reread);
        return;
    }
    if (reply->status != 0) {
        sb_api_reply_ask_error(c, reply);
        return;
    }
    created_reply(c, reply->state, reply->version);
}

static void create_got_user(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    ws_state_t *st = c->data;
    if (reply->status != 0) {
        sb_api_reply_ask_error(c, reply);
        return;
    }
    const char *email = sb__api_str(reply->state, "email");
    if (email == NULL) {
        sb_api_reply_error(c, 401, "unauthorized", "the token's account does not exist", NULL);
        return;
    }
    sb_api_new_id(c, "workspace", st->new_id);
    char stream[16 + SB_UUID_STRLEN];
    stream_of("workspace", st->new_id, stream, sizeof(stream));
    json_t *cmd = json_pack("{s:s, s:O, s:s, s:O?}", "type", "CreateWorkspace", "name",
                            json_object_get(c->body, "name"), "owner_email", email, "owner_name",
                            json_object_get(reply->state, "name"));
    json_t *country = json_object_get(c->body, "default_country");
    if (cmd != NULL && country != NULL && !json_is_null(country))
        json_object_set(cmd, "default_country", country);
    sb_api_ask(c, stream, cmd, NULL, create_done);
}

static void create_keyed(sb_api_call_t *c)
{
    char stream[8 + SB_UUID_STRLEN];
    stream_of("user", c->user_id, stream, sizeof(stream));
    sb_api_get(c, stream, create_got_user);
}

static bool read_country(sb_api_call_t *c)
{
    const char *country;
    if (!sb__api_body_str(c, "default_country", false, 2, 2, &country))
        return false;
    if (country != NULL && !sb_phone_country_known(country)) {
        sb_api_reply_error(c, 400, "invalid_country",
                           "default_country must be an ISO 3166 alpha-2 code we know", "default_country");
        return false;
    }
    return true;
}

static void create_authenticated(sb_api_call_t *c)
{
    static const char *const fields[] = {"name", "default_country", NULL};
    const char *name;
    if (!sb_api_read_body(c, fields) || !sb__api_body_str(c, "name", true, 1, 200, &name) || !read_country(c))
        return;
    sb_api_idempotent(c, create_keyed);
}

static int on_create(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_api_call_t *c = sb_api_begin(req, params, sizeof(ws_state_t));
    c->cleanup = ws_cleanup;
    sb_api_authenticate(c, false, create_authenticated);
    return 0;
}

/* ---- GET /v1/workspaces ------------------------------------------------------------------------------- */

static const char mine_sql[] =
    "SELECT coalesce(json_agg(json_build_object('id', w.id, 'name', w.name, 'default_country', "
    "w.default_country, "
    "'owner_id', w.owner_id, 'created_at', to_char(w.created_at AT TIME ZONE 'UTC', "
    "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), 'role', m.role) ORDER BY w.created_at, w.id), '[]')::text "
    "FROM members.members m JOIN workspaces.workspaces w ON w.id = m.workspace_id WHERE m.user_id = $1";

static void mine_done(sb_api_call_t *c, int status, PGresult *const *results, int n)
{
    json_t *items = json_loads(PQgetvalue(results[0], 0, 0), 0, NULL);
    if (items == NULL) {
        sb_api_reply_errcode(c, SB_ENOMEM, NULL);
        return;
    }
    sb_api_reply_json(c, 200, json_pack("{s:o, s:n}", "items", items, "next_cursor"));
}

static void list_authenticated(sb_api_call_t *c)
{
    sb_api_sql_t q = {"api_ws_mine", mine_sql, 1, {c->user_id}};
    sb_api_sql(c, &q, 1, false, mine_done);
}

static int on_list(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_api_call_t *c = sb_api_begin(req, params, 0);
    sb_api_authenticate(c, false, list_authenticated);
    return 0;
}

/* ---- GET / PATCH /v1/workspaces/{ws} --------------------------------------------------------------------
 */

static void get_loaded(sb_api_call_t *c)
{
    sb_api_etag(c, c->ws_version);
    sb_api_reply_json(c, 200, workspace_json(c->ws_id, c->ws_state, c->role));
}

static int on_get(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_api_call_t *c = sb_api_begin(req, params, sizeof(ws_state_t));
    sb_api_workspace(c, SB_ROLE_AGENT, get_loaded);
    return 0;
}

static void patch_step(sb_api_call_t *c, const sb_ask_reply_t *reply);

/* Applies the body's changes one command at a time (rename, then the country); the first is
 * conditional on If-Match when the request has one. */
static void patch_next(sb_api_call_t *c, const sb_ask_opts_t *cond)
{
    ws_state_t *st = c->data;
    char stream[16 + SB_UUID_STRLEN];
    stream_of("workspace", c->ws_id, stream, sizeof(stream));
    sb_ask_opts_t o;
    sb_api_ask_opts(c, &o);
    o.context = NULL;
    if (cond != NULL) {
        o.check_version = cond->check_version;
        o.expected_version = cond->expected_version;
        o.n_more_versions = cond->n_more_versions;
        memcpy(o.more_versions, cond->more_versions, sizeof(o.more_versions));
    }
    while (st->step < 2) {
        int s = st->step++;
        json_t *v = json_object_get(c->body, s == 0 ? "name" : "default_country");
        if (v == NULL || json_is_null(v))
            continue;
        json_t *cmd = s == 0 ? json_pack("{s:s, s:O}", "type", "RenameWorkspace", "name", v)
                             : json_pack("{s:s, s:O}", "type", "ChangeDefaultCountry", "default_country", v);
        sb_api_ask(c, stream, cmd, &o, patch_step);
        return;
    }
    sb_api_etag(c, st->last_state != NULL ? st->last_version : c->ws_version);
    sb_api_reply_json(
        c, 200, workspace_json(c->ws_id, st->last_state != NULL ? st->last_state : c->ws_state, c->role));
}

static void patch_step(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    ws_state_t *st = c->data;
    if (reply->status != 0) {
        sb_api_reply_ask_error(c, reply);
        return;
    }
    json_decref(st->last_state);
    st->last_state = json_incref(reply->state);
    st->last_version = reply->version;
    patch_next(c, NULL);
}

static void patch_loaded(sb_api_call_t *c)
{
    static const char *const fields[] = {"name", "default_country", NULL};
    const char *name;
    sb_ask_opts_t o = {0};
    if (!sb_api_read_body(c, fields) || !sb__api_body_str(c, "name", false, 1, 200, &name) ||
        !read_country(c) || !sb_api_if_match(c, &o))
        return;
    patch_next(c, &o);
}

static int on_patch(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_api_call_t *c = sb_api_begin(req, params, sizeof(ws_state_t));
    c->cleanup = ws_cleanup;
    sb_api_workspace(c, SB_ROLE_ADMIN, patch_loaded);
    return 0;
}

/* ---- members
 * ------------------------------------------------------------------------------------------------ */

static int cmp_members(const void *a, const void *b)
{
    const char *ea = sb__api_str(*(json_t *const *)a, "email"),
               *eb = sb__api_str(*(json_t *const *)b, "email");
    return strcmp(ea ? ea : "", eb ? eb : "");
}

static void members_loaded(sb_api_call_t *c)
{
    const json_t *members = json_object_get(c->ws_state, "members");
    size_t n = json_object_size(members), i = 0;
    json_t **list = calloc(n ? n : 1, sizeof(*list));
    if (list == NULL) {
        sb_api_reply_errcode(c, SB_ENOMEM, NULL);
        return;
    }
    const char *k;
    json_t *m;
    json_object_foreach((json_t *)members, k, m) list[i++] = member_json(k, m);
    qsort(list, n, sizeof(*list), cmp_members);
    json_t *items = json_array();
    for (i = 0; i < n; i++)
        json_array_append_new(items, list[i]);
    free(list);
    sb_api_etag(c, c->ws_version);
    sb_api_reply_json(c, 200, json_pack("{s:o, s:n}", "items", items, "next_cursor"));
}

static int on_members(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_api_call_t *c = sb_api_begin(req, params, 0);
    sb_api_workspace(c, SB_ROLE_AGENT, members_loaded);
    return 0;
}

static void member_reply(sb_api_call_t *c, const sb_ask_reply_t *reply, int status)
{
    ws_state_t *st = c->data;
    const json_t *m = json_object_get(json_object_get(reply->state, "members"), st->member_id);
    if (m == NULL) {
        sb_api_reply_error(c, 404, "unknown_member", "no such member", NULL);
        return;
    }
    sb_api_etag(c, reply->version);
    sb_api_reply_json(c, status, member_json(st->member_id, m));
}

static void add_done(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    if (reply->status != 0) {
        sb_api_reply_ask_error(c, reply);
        return;
    }
    member_reply(c, reply, reply->nevents > 0 ? 201 : 200);
}

static void add_found_user(sb_api_call_t *c, const sb_flow_result_t *res)
{
    ws_state_t *st = c->data;
    if (res->status == SB_EREJECTED && res->err->status == 404) {
        sb_api_reply_error(c, 404, "user_not_found", "no user has this e-mail address", "email");
        return;
    }
    if (res->status != 0) {
        sb__api_reply_flow_error(c, res);
        return;
    }
    snprintf(st->member_id, sizeof(st->member_id), "%s", res->id);
    char stream[16 + SB_UUID_STRLEN];
    stream_of("workspace", c->ws_id, stream, sizeof(stream));
    sb_api_ask(c, stream,
               json_pack("{s:s, s:s, s:s, s:s, s:O?}", "type", "AddMember", "user_id", st->member_id, "role",
                         st->role, "email", st->email, "name", json_object_get(res->state, "name")),
               NULL, add_done);
}

static void add_keyed(sb_api_call_t *c)
{
    ws_state_t *st = c->data;
    sb_flow_opts_t o;
    sb__api_flow_opts(c, &o);
    sb__api_flow_t *l = sb__api_flow_link(c, add_found_user);
    sb__api_flow_started(c, l, sb_flow_user_find(c->app->loops, st->email, &o, sb__api_on_flow, l));
}

static bool read_role(sb_api_call_t *c, const char **out)
{
    if (!sb__api_body_str(c, "role", true, 1, 16, out))
        return false;
    if (sb_role_parse(*out) == SB_ROLE_NONE) {
        sb_api_reply_error(c, 400, "invalid", "role must be owner, admin or agent", "role");
        return false;
    }
    return true;
}

static void add_loaded(sb_api_call_t *c)
{
    static const char *const fields[] = {"email", "role", NULL};
    ws_state_t *st = c->data;
    const char *email;
    if (!sb_api_read_body(c, fields) || !sb__api_body_str(c, "email", true, 3, 254, &email) ||
        !read_role(c, &st->role))
        return;
    if (sb_email_normalize(email, strlen(email), st->email) != 0) {
        sb_api_reply_error(c, 400, "invalid_email", "email is not a valid address", "email");
        return;
    }
    sb_api_idempotent(c, add_keyed);
}

static int on_add_member(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_api_call_t *c = sb_api_begin(req, params, sizeof(ws_state_t));
    c->cleanup = ws_cleanup;
    sb_api_workspace(c, SB_ROLE_ADMIN, add_loaded);
    return 0;
}

static void role_done(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    if (reply->status != 0) {
        sb_api_reply_ask_error(c, reply);
        return;
    }
    member_reply(c, reply, 200);
}

static void role_loaded(sb_api_call_t *c)
{
    static const char *const fields[] = {"role", NULL};
    ws_state_t *st = c->data;
    sb_ask_opts_t o;
    sb_api_ask_opts(c, &o);
    o.context = NULL;
    if (c->id[0] == '\0' || json_object_get(json_object_get(c->ws_state, "members"), c->id) == NULL) {
        sb_api_reply_error(c, 404, "unknown_member", "no such member", NULL);
        return;
    }
    if (!sb_api_read_body(c, fields) || !read_role(c, &st->role) || !sb_api_if_match(c, &o))
        return;
    memcpy(st->member_id, c->id, sizeof(st->member_id));
    char stream[16 + SB_UUID_STRLEN];
    stream_of("workspace", c->ws_id, stream, sizeof(stream));
    sb_api_ask(c, stream,
               json_pack("{s:s, s:s, s:s}", "type", "ChangeMemberRole", "user_id", c->id, "role", st->role),
               &o, role_done);
}

static int on_member_role(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_api_call_t *c = sb_api_begin(req, params, sizeof(ws_state_t));
    c->cleanup = ws_cleanup;
    sb_api_workspace(c, SB_ROLE_ADMIN, role_loaded);
    return 0;
}

static void remove_done(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    if (reply->status != 0) {
        sb_api_reply_ask_error(c, reply);
        return;
    }
    sb_api_reply_json(c, 204, NULL);
}

static void remove_loaded(sb_api_call_t *c)
{
    sb_ask_opts_t o;
    sb_api_ask_opts(c, &o);
    o.context = NULL;
    if (c->id[0] == '\0' || json_object_get(json_object_get(c->ws_state, "members"), c->id) == NULL) {
        sb_api_reply_error(c, 404, "unknown_member", "no such member", NULL);
        return;
    }
    if (!sb_api_if_match(c, &o))
        return;
    char stream[16 + SB_UUID_STRLEN];
    stream_of("workspace", c->ws_id, stream, sizeof(stream));
    sb_api_ask(c, stream, json_pack("{s:s, s:s}", "type", "RemoveMember", "user_id", c->id), &o, remove_done);
}

static int on_remove_member(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_api_call_t *c = sb_api_begin(req, params, sizeof(ws_state_t));
    c->cleanup = ws_cleanup;
    /* An agent may remove themself (leave); the decider refuses anything more. */
    sb_api_workspace(c, SB_ROLE_AGENT, remove_loaded);
    return 0;
}

int sb__api_workspace_routes(sb_router_t *r, sb_api_t *api)
{
    int rc;
    if ((rc = sb_router_add(r, "POST", "/v1/workspaces", on_create, api)) != 0 ||
        (rc = sb_router_add(r, "GET", "/v1/workspaces", on_list, api)) != 0 ||
        (rc = sb_router_add(r, "GET", "/v1/workspaces/{ws}", on_get, api)) != 0 ||
        (rc = sb_router_add(r, "PATCH", "/v1/workspaces/{ws}", on_patch, api)) != 0 ||
        (rc = sb_router_add(r, "GET", "/v1/workspaces/{ws}/members", on_members, api)) != 0 ||
        (rc = sb_router_add(r, "POST", "/v1/workspaces/{ws}/members", on_add_member, api)) != 0 ||
        (rc = sb_router_add(r, "PATCH", "/v1/workspaces/{ws}/members/{id}", on_member_role, api)) != 0 ||
        (rc = sb_router_add(r, "DELETE", "/v1/workspaces/{ws}/members/{id}", on_remove_member, api)) != 0)
        return rc;
    return 0;
}
