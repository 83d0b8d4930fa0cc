/* Contacts, decided by the contact actor:
 *   POST   /v1/workspaces/{ws}/contacts {name?, phone?, phones?, email?, emails?, tags?, stage?,
 *                                        assignee_id?}                      -> 201 contact, ETag
 *   GET    /v1/workspaces/{ws}/contacts/{id}                                -> contact, ETag
 *   PATCH  /v1/workspaces/{ws}/contacts/{id} {any of the above}  (If-Match) -> contact, ETag
 *   DELETE /v1/workspaces/{ws}/contacts/{id}                     (If-Match) -> 204
 * (the list and search, GET .../contacts, read the contacts read model: api_contacts_list.c).
 *
 * A phone number belongs to at most one contact per workspace: before a contact gets a number the
 * API claims "phone:<workspace>:<e164>" for it (claim streams serialise concurrent claims, across
 * processes too); numbers a contact gives up, or a deleted contact's, are released afterwards.  A
 * command that fails after its claims gives them back.  The contact actor refuses commands made in
 * another workspace's context (404), so ids never leak across workspaces. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/kinds.h"
#include "core/error.h"
#include "core/log.h"
#include "core/phone.h"
#include "http/api_int.h"

#define MAX_PHONES 10

typedef struct {
    char id[SB_UUID_STRLEN + 1];
    char stream[16 + SB_UUID_STRLEN];
    char want[MAX_PHONES][SB_PHONE_MAX]; /* the phones the contact will have */
    int nwant;
    bool phones_given;
    char had[MAX_PHONES][SB_PHONE_MAX]; /* the phones it had (PATCH) */
    int nhad;
    char claim[MAX_PHONES][SB_PHONE_MAX]; /* wanted and not had: claimed before the command */
    int nclaim, nclaimed;
    sb_ask_opts_t opts;
    json_t *cmd;
    void (*after_claims)(sb_api_call_t *c);
} contact_state_t;

static void contact_cleanup(sb_api_call_t *c)
{
    contact_state_t *st = c->data;
    json_decref(st->cmd);
}

static const char *const contact_fields[] = {"name", "phone", "phones",      "email", "emails",
                                             "tags", "stage", "assignee_id", NULL};

json_t *sb__api_contact_json(const char *id, const json_t *s)
{
    json_t *opted = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(s, "opt_outs"), k, v) json_array_append_new(opted, json_string(k));
    const json_t *phones = json_object_get(s, "phones"), *emails = json_object_get(s, "emails");
    return json_pack("{s:s, s:O?, s:O?, s:O?, s:O?, s:O?, s:O?, s:O?, s:O?, s:O?, s:o}", "id", id, "name",
                     json_object_get(s, "name"), "phone", json_array_get(phones, 0), "email",
                     json_array_get(emails, 0), "phones", phones, "emails", emails, "tags",
                     json_object_get(s, "tags"), "stage", json_object_get(s, "stage"), "assignee_id",
                     json_object_get(s, "assignee_id"), "created_at", json_object_get(s, "created_at"),
                     "opted_out", opted);
}

/* True when the actor state is a live contact of the call's workspace. */
static bool is_ours(const sb_api_call_t *c, const json_t *s)
{
    const char *ws = sb__api_str(s, "workspace_id");
    return json_is_true(json_object_get(s, "created")) && !json_is_true(json_object_get(s, "deleted")) &&
           ws != NULL && strcmp(ws, c->ws_id) == 0;
}

static void reply_not_found(sb_api_call_t *c)
{
    sb_api_reply_error(c, 404, "contact_not_found", "no such contact", NULL);
}

/* ---- validation -----------------------------------------------------------------------------------------
 */

static bool check_string_list(sb_api_call_t *c, const char *field, size_t max_items, size_t max_len)
{
    json_t *v = json_object_get(c->body, field);
    if (v == NULL || json_is_null(v))
        return true;
    char msg[96];
    if (!json_is_array(v) || json_array_size(v) > max_items) {
        snprintf(msg, sizeof(msg), "%s must be an array of at most %zu strings", field, max_items);
        sb_api_reply_error(c, 400, "invalid", msg, field);
        return false;
    }
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        if (!json_is_string(e) || sb__api_utf8_len(json_string_value(e)) > max_len) {
            snprintf(msg, sizeof(msg), "%s must hold strings of at most %zu characters", field, max_len);
            sb_api_reply_error(c, 400, "invalid", msg, field);
            return false;
        }
    }
    return true;
}

/* Validates the body's shape (the actor validates the values) and normalises the phones into
 * st->want, in the workspace's default country. */
static bool read_contact_body(sb_api_call_t *c, contact_state_t *st)
{
    const char *s;
    if (!sb_api_read_body(c, contact_fields) || !sb__api_body_str(c, "name", false, 0, 200, &s) ||
        !sb__api_body_str(c, "phone", false, 1, 64, &s) || !sb__api_body_str(c, "email", false, 1, 254, &s) ||
        !sb__api_body_str(c, "stage", false, 1, 64, &s) || !check_string_list(c, "phones", MAX_PHONES, 64) ||
        !check_string_list(c, "emails", 10, 254) || !check_string_list(c, "tags", 50, 64))
        return false;
    json_t *a = json_object_get(c->body, "assignee_id");
    char uuid[SB_UUID_STRLEN + 1];
    if (a != NULL && !json_is_null(a) && !sb__api_uuid(json_string_value(a), uuid)) {
        sb_api_reply_error(c, 400, "invalid", "assignee_id must be a member's id", "assignee_id");
        return false;
    }
    const char *country = sb__api_str(c->ws_state, "default_country");
    const json_t *one = json_object_get(c->body, "phone"), *many = json_object_get(c->body, "phones");
    st->phones_given = (one != NULL && !json_is_null(one)) || (many != NULL && !json_is_null(many));
    size_t n = (json_is_string(one) ? 1 : 0) + json_array_size(many);
    for (size_t i = 0; i < n; i++) {
        bool single = json_is_string(one) && i == 0;
        const char *in =
            json_string_value(single ? one : json_array_get(many, i - (json_is_string(one) ? 1 : 0)));
        char e164[SB_PHONE_MAX];
        if (sb_phone_normalize(in, strlen(in), country, e164) != 0) {
            const char *field = single ? "phone" : "phones";
            char msg[96];
            snprintf(msg, sizeof(msg), "%s is not a valid phone number", field);
            sb_api_reply_error(c, 400, "invalid_phone", msg, field);
            return false;
        }
        bool dup = false;
        for (int k = 0; k < st->nwant && !dup; k++)
            dup = strcmp(st->want[k], e164) == 0;
        if (dup)
            continue;
        if (st->nwant == MAX_PHONES) {
            sb_api_reply_error(c, 400, "invalid", "a contact has at most 10 phone numbers", "phones");
            return false;
        }
        memcpy(st->want[st->nwant++], e164, SB_PHONE_MAX);
    }
    return true;
}

/* The command with the body's fields, phones normalised. */
static json_t *build_cmd(sb_api_call_t *c, contact_state_t *st, const char *type)
{
    json_t *cmd = json_deep_copy(c->body);
    if (cmd == NULL)
        return NULL;
    json_object_del(cmd, "phone");
    json_object_del(cmd, "phones");
    if (st->phones_given) {
        json_t *list = json_array();
        for (int i = 0; i < st->nwant; i++)
            json_array_append_new(list, json_string(st->want[i]));
        json_object_set_new(cmd, "phones", list);
    }
    json_object_set_new(cmd, "type", json_string(type));
    return cmd;
}

/* ---- phone claims
 * ---------------------------------------------------------------------------------------------- */

static void claim_key(const sb_api_call_t *c, const char *e164, char *out, size_t cap)
{
    snprintf(out, cap, "phone:%s:%s", c->ws_id, e164);
}

static void released(const sb_ask_reply_t *reply, void *data)
{
    if (reply->status != 0 && !(reply->status == SB_EREJECTED && reply->err->status == 403))
        sb_log_warn("api", "phone claim not released stream=%s: %s", reply->stream,
                    sb_strerror(reply->status));
}

/* Gives back one number (fire and forget: a claim left behind only blocks that number, and the
 * next contact to take it in this workspace would see it held by a deleted contact). */
static void release_phone(sb_api_call_t *c, const char *contact_id, const char *e164)
{
    char key[64 + SB_UUID_STRLEN], stream[SB_CLAIM_STREAM_LEN], owner[16 + SB_UUID_STRLEN];
    claim_key(c, e164, key, sizeof(key));
    sb_claim_stream(key, stream);
    snprintf(owner, sizeof(owner), "contact-%s", contact_id);
    sb_ask_opts_t o;
    sb_api_ask_opts(c, &o);
    o.context = NULL;
    o.workspace_id = NULL;
    sb_actor_ask(c->app->loops, stream, json_pack("{s:s, s:s}", "type", "Release", "owner", owner), &o,
                 released, NULL);
}

static void release_claimed(sb_api_call_t *c, contact_state_t *st)
{
    for (int i = 0; i < st->nclaimed; i++)
        release_phone(c, st->id, st->claim[i]);
    st->nclaimed = 0;
}

static void claim_next(sb_api_call_t *c);

static void on_claimed(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    contact_state_t *st = c->data;
    if (reply->status == SB_EREJECTED && strcmp(reply->err->code, "taken") == 0) {
        char msg[96];
        snprintf(msg, sizeof(msg), "%s belongs to another contact of this workspace",
                 st->claim[st->nclaimed]);
        release_claimed(c, st);
        sb_api_reply_error(c, 409, "phone_taken", msg, st->nwant > 1 ? "phones" : "phone");
        return;
    }
    if (reply->status != 0) {
        release_claimed(c, st);
        sb_api_reply_ask_error(c, reply);
        return;
    }
    st->nclaimed++;
    claim_next(c);
}

static void claim_next(sb_api_call_t *c)
{
    contact_state_t *st = c->data;
    if (st->nclaimed == st->nclaim) {
        st->after_claims(c);
        return;
    }
    char key[64 + SB_UUID_STRLEN], stream[SB_CLAIM_STREAM_LEN], owner[16 + SB_UUID_STRLEN];
    claim_key(c, st->claim[st->nclaimed], key, sizeof(key));
    sb_claim_stream(key, stream);
    snprintf(owner, sizeof(owner), "contact-%s", st->id);
    sb_ask_opts_t o;
    sb_api_ask_opts(c, &o);
    o.context = NULL;
    o.workspace_id = NULL;
    sb_api_ask(c, stream, json_pack("{s:s, s:s, s:s}", "type", "Claim", "key", key, "owner", owner), &o,
               on_claimed);
}

/* Claims every wanted number the contact did not have, then runs then. */
static void claim_phones(sb_api_call_t *c, void (*then)(sb_api_call_t *c))
{
    contact_state_t *st = c->data;
    st->nclaim = st->nclaimed = 0;
    for (int i = 0; i < st->nwant; i++) {
        bool had = false;
        for (int k = 0; k < st->nhad && !had; k++)
            had = strcmp(st->had[k], st->want[i]) == 0;
        if (!had)
            memcpy(st->claim[st->nclaim++], st->want[i], SB_PHONE_MAX);
    }
    st->after_claims = then;
    claim_next(c);
}

/* ---- POST
 * ------------------------------------------------------------------------------------------------------ */

static void create_reply(sb_api_call_t *c, const json_t *state, int64_t version)
{
    contact_state_t *st = c->data;
    char loc[128];
    snprintf(loc, sizeof(loc), "/v1/workspaces/%s/contacts/%s", c->ws_id, st->id);
    sb_api_header(c, "location", loc);
    sb_api_etag(c, version);
    sb_api_reply_json(c, 201, sb__api_contact_json(st->id, state));
}

static void create_reread(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    if (reply->status != 0) {
        sb_api_reply_ask_error(c, reply);
        return;
    }
    if (!is_ours(c, reply->state)) {
        sb_api_reply_error(c, 409, "contact_exists", "this contact already exists", NULL);
        return;
    }
    create_reply(c, reply->state, reply->version);
}

static void created(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    contact_state_t *st = c->data;
    if (reply->status == SB_EREJECTED && strcmp(reply->err->code, "contact_exists") == 0) {
        /* A retry with the same Idempotency-Key after an unknown outcome: it was created. */
        sb_api_get(c, st->stream, create_reread);
        return;
    }
    if (reply->status != 0) {
        if (reply->status != SB_EUNKNOWN)
            release_claimed(c, st);
        sb_api_reply_ask_error(c, reply);
        return;
    }
    create_reply(c, reply->state, reply->version);
}

static void create_claimed(sb_api_call_t *c)
{
    contact_state_t *st = c->data;
    json_t *cmd = st->cmd;
    st->cmd = NULL;
    sb_api_ask(c, st->stream, cmd, NULL, created);
}

static void create_keyed(sb_api_call_t *c)
{
    contact_state_t *st = c->data;
    sb_api_new_id(c, "contact", st->id);
    snprintf(st->stream, sizeof(st->stream), "contact-%s", st->id);
    st->cmd = build_cmd(c, st, "CreateContact");
    if (st->cmd == NULL) {
        sb_api_reply_errcode(c, SB_ENOMEM, NULL);
        return;
    }
    json_object_set_new(st->cmd, "workspace_id", json_string(c->ws_id));
    claim_phones(c, create_claimed);
}

static void create_loaded(sb_api_call_t *c)
{
    contact_state_t *st = c->data;
    if (!read_contact_body(c, st))
        return;
    sb_api_idempotent(c, create_keyed);
}

static int on_create(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_api_call_t *c = sb_api_begin(req, params, sizeof(contact_state_t));
    c->cleanup = contact_cleanup;
    sb_api_workspace(c, SB_ROLE_AGENT, create_loaded);
    return 0;
}

/* ---- GET
 * ---------------------------------------------------------------------------------------------------------
 */

static void got(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    if (reply->status != 0) {
        sb_api_reply_ask_error(c, reply);
        return;
    }
    if (!is_ours(c, reply->state)) {
        reply_not_found(c);
        return;
    }
    sb_api_etag(c, reply->version);
    sb_api_reply_json(c, 200, sb__api_contact_json(c->id, reply->state));
}

static void get_loaded(sb_api_call_t *c)
{
    if (c->id[0] == '\0') {
        reply_not_found(c);
        return;
    }
    char stream[16 + SB_UUID_STRLEN];
    snprintf(stream, sizeof(stream), "contact-%s", c->id);
    sb_api_get(c, stream, got);
}

static int on_get(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_api_workspace(sb_api_begin(req, params, 0), SB_ROLE_AGENT, get_loaded);
    return 0;
}

/* ---- PATCH
 * -----------------------------------------------------------------------------------------------------------
 */

/* Releases the numbers the contact had before and no longer has now (state: after the command). */
static void release_dropped(sb_api_call_t *c, contact_state_t *st, const json_t *state)
{
    const json_t *now = json_object_get(state, "phones");
    for (int i = 0; i < st->nhad; i++) {
        bool kept = false;
        size_t k;
        json_t *p;
        json_array_foreach(now, k, p) kept = kept || strcmp(json_string_value(p), st->had[i]) == 0;
        if (!kept)
            release_phone(c, st->id, st->had[i]);
    }
}

static void updated(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    contact_state_t *st = c->data;
    if (reply->status != 0) {
        if (reply->status != SB_EUNKNOWN)
            release_claimed(c, st);
        if (reply->status == SB_EREJECTED && strcmp(reply->err->code, "contact_deleted") == 0) {
            reply_not_found(c);
            return;
        }
        sb_api_reply_ask_error(c, reply);
        return;
    }
    release_dropped(c, st, reply->state);
    sb_api_etag(c, reply->version);
    sb_api_reply_json(c, 200, sb__api_contact_json(st->id, reply->state));
}

static void update_claimed(sb_api_call_t *c)
{
    contact_state_t *st = c->data;
    json_t *cmd = st->cmd;
    st->cmd = NULL;
    sb_api_ask(c, st->stream, cmd, &st->opts, updated);
}

static void update_got(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    contact_state_t *st = c->data;
    if (reply->status != 0) {
        sb_api_reply_ask_error(c, reply);
        return;
    }
    if (!is_ours(c, reply->state)) {
        reply_not_found(c);
        return;
    }
    if (st->opts.check_version && st->opts.expected_version != reply->version) {
        sb_api_etag(c, reply->version);
        sb_api_reply_error(c, 412, "precondition_failed", "the resource has changed (If-Match)", NULL);
        return;
    }
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(reply->state, "phones"), i, p)
    {
        if (st->nhad < MAX_PHONES && json_is_string(p))
            snprintf(st->had[st->nhad++], SB_PHONE_MAX, "%s", json_string_value(p));
    }
    if (!st->phones_given) {
        update_claimed(c);
        return;
    }
    claim_phones(c, update_claimed);
}

static void update_loaded(sb_api_call_t *c)
{
    contact_state_t *st = c->data;
    if (c->id[0] == '\0') {
        reply_not_found(c);
        return;
    }
    memcpy(st->id, c->id, sizeof(st->id));
    snprintf(st->stream, sizeof(st->stream), "contact-%s", st->id);
    sb_api_ask_opts(c, &st->opts);
    if (!read_contact_body(c, st) || !sb_api_if_match(c, &st->opts))
        return;
    st->cmd = build_cmd(c, st, "UpdateContact");
    if (st->cmd == NULL) {
        sb_api_reply_errcode(c, SB_ENOMEM, NULL);
        return;
    }
    /* Read first: the numbers it has now decide what to claim and release, and a contact of another
     * workspace answers 404 before anything is claimed. */
    sb_api_get(c, st->stream, update_got);
}

static int on_patch(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_api_call_t *c = sb_api_begin(req, params, sizeof(contact_state_t));
    c->cleanup = contact_cleanup;
    sb_api_workspace(c, SB_ROLE_AGENT, update_loaded);
    return 0;
}

/* ---- DELETE
 * -------------------------------------------------------------------------------------------------------------
 */

static void deleted(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    contact_state_t *st = c->data;
    if (reply->status != 0) {
        if (reply->status == SB_EREJECTED && reply->err->status == 404) {
            reply_not_found(c);
            return;
        }
        sb_api_reply_ask_error(c, reply);
        return;
    }
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(reply->state, "phones"), i, p)
    {
        if (json_is_string(p))
            release_phone(c, st->id, json_string_value(p));
    }
    sb_api_reply_json(c, 204, NULL);
}

static void delete_loaded(sb_api_call_t *c)
{
    contact_state_t *st = c->data;
    if (c->id[0] == '\0') {
        reply_not_found(c);
        return;
    }
    memcpy(st->id, c->id, sizeof(st->id));
    snprintf(st->stream, sizeof(st->stream), "contact-%s", st->id);
    sb_api_ask_opts(c, &st->opts);
    if (!sb_api_if_match(c, &st->opts))
        return;
    sb_api_ask(c, st->stream, json_pack("{s:s}", "type", "DeleteContact"), &st->opts, deleted);
}

static int on_delete(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_api_call_t *c = sb_api_begin(req, params, sizeof(contact_state_t));
    c->cleanup = contact_cleanup;
    sb_api_workspace(c, SB_ROLE_AGENT, delete_loaded);
    return 0;
}

int sb__api_contact_routes(sb_router_t *r, sb_api_t *api)
{
    int rc;
    if ((rc = sb_router_add(r, "POST", "/v1/workspaces/{ws}/contacts", on_create, api)) != 0 ||
        (rc = sb_router_add(r, "GET", "/v1/workspaces/{ws}/contacts/{id}", on_get, api)) != 0 ||
        (rc = sb_router_add(r, "PATCH", "/v1/workspaces/{ws}/contacts/{id}", on_patch, api)) != 0 ||
        (rc = sb_router_add(r, "DELETE", "/v1/workspaces/{ws}/contacts/{id}", on_delete, api)) != 0)
        return rc;
    return 0;
}
