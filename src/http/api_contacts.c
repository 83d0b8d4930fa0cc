/* Contacts, through the contact flows (src/actors/flows.h), which keep each phone number with at
 * most one contact per workspace by claims, whatever runs concurrently or crashes:
 *   POST   /v1/workspaces/{ws}/contacts {name?, phone?, phones?, email?, emails?, tags?, stage?,
 *                                        assignee_id?}                      -> 201 contact, ETag
 *   GET    /v1/workspaces/{ws}/contacts/{id}                                -> contact, ETag
 *   PATCH  /v1/workspaces/{ws}/contacts/{id} {any of the above}  (If-Match) -> contact, ETag
 *   DELETE /v1/workspaces/{ws}/contacts/{id}                     (If-Match) -> 204
 * (the list and search, GET .../contacts, read the contacts read model: api_contacts_list.c).
 * Another workspace's contact answers 404 (the flows and the contact actor check the workspace). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/flows.h"
#include "actors/kinds.h"
#include "core/error.h"
#include "core/log.h"
#include "core/phone.h"
#include "http/api_int.h"

#define MAX_PHONES 10

typedef struct {
    char id[SB_UUID_STRLEN + 1];
    char stream[16 + SB_UUID_STRLEN];
} contact_state_t;

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

bool sb__api_is_live_contact(const sb_api_call_t *c, const json_t *s)
{
    const char *ws = sb__api_str(s, "workspace_id");
    return json_is_true(json_object_get(s, "created")) && !json_is_true(json_object_get(s, "deleted")) &&
           ws != NULL && strcmp(ws, c->ws_id) == 0;
}

void sb__api_reply_no_contact(sb_api_call_t *c)
{
    sb_api_reply_error(c, 404, "contact_not_found", "no such contact", NULL);
}

void sb__api_reply_contact_ask_error(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    if (reply->status == SB_EREJECTED && (strcmp(reply->err->code, "contact_not_found") == 0 ||
                                          strcmp(reply->err->code, "contact_deleted") == 0))
        sb__api_reply_no_contact(c);
    else
        sb_api_reply_ask_error(c, reply);
}

/* ---- validation ------------------------------------------------------------------------------------ */

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

/* Validates the body's shape and bounds; the flow and the contact decider validate the values
 * (phone numbers, stages, members) and answer 400 naming the field. */
static bool read_contact_body(sb_api_call_t *c)
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
    return true;
}

/* ---- the flows' outcomes ------------------------------------------------------------------------------ */

static void reply_flow_error(sb_api_call_t *c, const sb_flow_result_t *res)
{
    if (res->status == SB_EREJECTED && strcmp(res->err->code, "contact_deleted") == 0)
        sb__api_reply_no_contact(c);
    else if (res->status == SB_ECONFLICT && !res->precondition_failed)
        sb_api_reply_error(c, 409, "conflict", "the contact kept changing; try again", NULL);
    else if (res->status == SB_ETIMEOUT)
        sb_api_reply_error(c, 503, "timeout", "the contact's numbers could not be claimed in time; try again",
                           NULL);
    else
        sb__api_reply_flow_error(c, res);
}

/* ---- POST -------------------------------------------------------------------------------------------------
 */

static void create_reply(sb_api_call_t *c, const char *id, const json_t *state, int64_t version)
{
    char loc[128];
    snprintf(loc, sizeof(loc), "/v1/workspaces/%s/contacts/%s", c->ws_id, id);
    sb_api_header(c, "location", loc);
    sb_api_etag(c, version);
    sb_api_reply_json(c, 201, sb__api_contact_json(id, state));
}

static void create_reread(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    contact_state_t *st = c->data;
    if (reply->status != 0) {
        sb_api_reply_ask_error(c, reply);
        return;
    }
    if (!sb__api_is_live_contact(c, reply->state)) {
        sb_api_reply_error(c, 409, "contact_exists", "this contact already exists", NULL);
        return;
    }
    create_reply(c, st->id, reply->state, reply->version);
}

static void created(sb_api_call_t *c, const sb_flow_result_t *res)
{
    contact_state_t *st = c->data;
    if (res->status == 0) {
        create_reply(c, res->id, res->state, res->version);
        return;
    }
    /* A retry with the same Idempotency-Key after an unknown outcome names the same contact: if it
     * was created, the flow finds it (as existing, or holding our numbers): answer it. */
    if (res->status == SB_EREJECTED && st->id[0] &&
        (strcmp(res->err->code, "contact_exists") == 0 ||
         (strcmp(res->err->code, "phone_taken") == 0 && res->holder != NULL &&
          strcmp(res->holder, st->stream) == 0))) {
        sb_api_get(c, st->stream, create_reread);
        return;
    }
    reply_flow_error(c, res);
}

static void create_keyed(sb_api_call_t *c)
{
    contact_state_t *st = c->data;
    sb_flow_opts_t o;
    sb__api_flow_opts(c, &o);
    if (sb_api_has_idempotency_key(c)) {
        sb_api_new_id(c, "contact", st->id);
        snprintf(st->stream, sizeof(st->stream), "contact-%s", st->id);
        o.id = st->id;
    }
    sb__api_flow_t *l = sb__api_flow_link(c, created);
    sb__api_flow_started(
        c, l,
        sb_flow_contact_create(c->app->loops, c->ws_id, c->body, SB_FLOW_CREATE, &o, sb__api_on_flow, l));
}

static void create_loaded(sb_api_call_t *c)
{
    if (!read_contact_body(c))
        return;
    sb_api_idempotent(c, create_keyed);
}

static int on_create(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_api_workspace(sb_api_begin(req, params, sizeof(contact_state_t)), SB_ROLE_AGENT, create_loaded);
    return 0;
}

/* ---- GET
 * --------------------------------------------------------------------------------------------------- */

static void got(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    if (reply->status != 0) {
        sb_api_reply_ask_error(c, reply);
        return;
    }
    if (!sb__api_is_live_contact(c, reply->state)) {
        sb__api_reply_no_contact(c);
        return;
    }
    sb_api_etag(c, reply->version);
    sb_api_reply_json(c, 200, sb__api_contact_json(c->id, reply->state));
}

static void get_loaded(sb_api_call_t *c)
{
    if (c->id[0] == '\0') {
        sb__api_reply_no_contact(c);
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

/* ---- PATCH and DELETE
 * --------------------------------------------------------------------------------------- */

static void updated(sb_api_call_t *c, const sb_flow_result_t *res)
{
    if (res->status != 0) {
        reply_flow_error(c, res);
        return;
    }
    sb_api_etag(c, res->version);
    sb_api_reply_json(c, 200, sb__api_contact_json(c->id, res->state));
}

static void deleted(sb_api_call_t *c, const sb_flow_result_t *res)
{
    if (res->status != 0) {
        reply_flow_error(c, res);
        return;
    }
    sb_api_reply_json(c, 204, NULL);
}

/* If-Match into the flow's options; false after answering 412 for a tag that cannot match. */
static bool flow_if_match(sb_api_call_t *c, sb_flow_opts_t *o)
{
    sb_ask_opts_t ao = {0};
    if (!sb_api_if_match(c, &ao))
        return false;
    o->check_version = ao.check_version;
    o->expected_version = ao.expected_version;
    o->n_more_versions = ao.n_more_versions;
    memcpy(o->more_versions, ao.more_versions, sizeof(o->more_versions));
    return true;
}

static void change_loaded(sb_api_call_t *c)
{
    bool is_delete = c->req->method.len == 6;
    if (c->id[0] == '\0') {
        sb__api_reply_no_contact(c);
        return;
    }
    sb_flow_opts_t o;
    sb__api_flow_opts(c, &o);
    if (!flow_if_match(c, &o) || (!is_delete && !read_contact_body(c)))
        return;
    sb__api_flow_t *l = sb__api_flow_link(c, is_delete ? deleted : updated);
    int rc = is_delete
                 ? sb_flow_contact_delete(c->app->loops, c->ws_id, c->id, &o, sb__api_on_flow, l)
                 : sb_flow_contact_update(c->app->loops, c->ws_id, c->id, c->body, &o, sb__api_on_flow, l);
    sb__api_flow_started(c, l, rc);
}

static int on_change(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_api_workspace(sb_api_begin(req, params, 0), SB_ROLE_AGENT, change_loaded);
    return 0;
}

int sb__api_contact_routes(sb_router_t *r, sb_api_t *api)
{
    int rc;
    if ((rc = sb_router_add(r, "POST", "/v1/workspaces/{ws}/contacts", on_create, api)) != 0 ||
        (rc = sb_router_add(r, "GET", "/v1/workspaces/{ws}/contacts/{id}", on_get, api)) != 0 ||
        (rc = sb_router_add(r, "PATCH", "/v1/workspaces/{ws}/contacts/{id}", on_change, api)) != 0 ||
        (rc = sb_router_add(r, "DELETE", "/v1/workspaces/{ws}/contacts/{id}", on_change, api)) != 0)
        return rc;
    return 0;
}
