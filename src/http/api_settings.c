/* A workspace's pipeline and auto-replies, read from and decided by the workspace actor:
 *   GET  /v1/workspaces/{ws}/pipeline/stages              -> {items: [{id, name, position}]}
 *   POST /v1/workspaces/{ws}/pipeline/stages {name, position?}   (admin) -> 201 stage
 *   DELETE /v1/workspaces/{ws}/pipeline/stages/{name}     (admin) -> 204
 *   GET  /v1/workspaces/{ws}/auto-replies                 -> {items: [{id, keyword, reply}]}
 *   GET/PUT/DELETE /v1/workspaces/{ws}/auto-replies/{keyword}   (PUT {reply}, admin)
 * A stage's id is its name and a rule's its keyword: what names them in paths. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "http/api_int.h"

static void ws_stream(const sb_api_call_t *c, char out[16 + SB_UUID_STRLEN])
{
    snprintf(out, 16 + SB_UUID_STRLEN, "workspace-%s", c->ws_id);
}

static sb_ask_opts_t ws_opts(sb_api_call_t *c)
{
    sb_ask_opts_t o;
    sb_api_ask_opts(c, &o);
    o.context = NULL;
    return o;
}

/* ---- pipeline stages -------------------------------------------------------------------------------- */

static json_t *stages_json(const json_t *state)
{
    json_t *items = json_array();
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(state, "stages"), i, s) json_array_append_new(
        items, json_pack("{s:O, s:O, s:I}", "id", s, "name", s, "position", (json_int_t)i));
    return items;
}

static void stages_loaded(sb_api_call_t *c)
{
    sb_api_etag(c, c->ws_version);
    sb_api_reply_json(c, 200, json_pack("{s:o, s:n}", "items", stages_json(c->ws_state), "next_cursor"));
}

static int on_stages(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_api_workspace(sb_api_begin(req, params, 0), SB_ROLE_AGENT, stages_loaded);
    return 0;
}

static void stage_added(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    if (reply->status != 0) {
        sb_api_reply_ask_error(c, reply);
        return;
    }
    const json_t *ev = reply->nevents > 0 ? reply->events[0].data : NULL;
    sb_api_etag(c, reply->version);
    sb_api_reply_json(c, 201,
                      json_pack("{s:O?, s:O?, s:O?}", "id", json_object_get(ev, "name"), "name",
                                json_object_get(ev, "name"), "position", json_object_get(ev, "position")));
}

static void stage_keyed(sb_api_call_t *c)
{
    char stream[16 + SB_UUID_STRLEN];
    ws_stream(c, stream);
    sb_ask_opts_t o = ws_opts(c);
    json_t *cmd =
        json_pack("{s:s, s:O}", "type", "AddPipelineStage", "name", json_object_get(c->body, "name"));
    json_t *pos = json_object_get(c->body, "position");
    if (cmd != NULL && pos != NULL && !json_is_null(pos))
        json_object_set(cmd, "position", pos);
    sb_api_ask(c, stream, cmd, &o, stage_added);
}

static void stage_add_loaded(sb_api_call_t *c)
{
    static const char *const fields[] = {"name", "position", NULL};
    const char *name;
    if (!sb_api_read_body(c, fields) || !sb__api_body_str(c, "name", true, 1, 64, &name))
        return;
    json_t *pos = json_object_get(c->body, "position");
    if (pos != NULL && !json_is_null(pos) && (!json_is_integer(pos) || json_integer_value(pos) < 0)) {
        sb_api_reply_error(c, 400, "invalid", "position must be a non-negative integer", "position");
        return;
    }
    sb_api_idempotent(c, stage_keyed);
}

static int on_stage_add(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_api_workspace(sb_api_begin(req, params, 0), SB_ROLE_ADMIN, stage_add_loaded);
    return 0;
}

static void done_204(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    if (reply->status != 0) {
        sb_api_reply_ask_error(c, reply);
        return;
    }
    sb_api_reply_json(c, 204, NULL);
}

static void stage_remove_loaded(sb_api_call_t *c)
{
    char stream[16 + SB_UUID_STRLEN];
    ws_stream(c, stream);
    sb_ask_opts_t o = ws_opts(c);
    if (!sb_api_if_match(c, &o))
        return;
    sb_api_ask(c, stream, json_pack("{s:s, s:s}", "type", "RemovePipelineStage", "name", c->sub), &o,
               done_204);
}

static int on_stage_remove(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_api_workspace(sb_api_begin(req, params, 0), SB_ROLE_ADMIN, stage_remove_loaded);
    return 0;
}

/* ---- auto-replies
 * ------------------------------------------------------------------------------------------- */

static void lower(char *s)
{
    for (; *s; s++)
        *s = (char)tolower((unsigned char)*s);
}

static void rules_loaded(sb_api_call_t *c)
{
    json_t *items = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(c->ws_state, "auto_replies"), k, v)
        json_array_append_new(items, json_pack("{s:s, s:s, s:O}", "id", k, "keyword", k, "reply", v));
    sb_api_etag(c, c->ws_version);
    sb_api_reply_json(c, 200, json_pack("{s:o, s:n}", "items", items, "next_cursor"));
}

static int on_rules(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_api_workspace(sb_api_begin(req, params, 0), SB_ROLE_AGENT, rules_loaded);
    return 0;
}

static void rule_loaded(sb_api_call_t *c)
{
    lower(c->sub);
    json_t *reply = json_object_get(json_object_get(c->ws_state, "auto_replies"), c->sub);
    if (reply == NULL) {
        sb_api_reply_error(c, 404, "unknown_rule", "no auto-reply for this keyword", "keyword");
        return;
    }
    sb_api_etag(c, c->ws_version);
    sb_api_reply_json(c, 200, json_pack("{s:s, s:s, s:O}", "id", c->sub, "keyword", c->sub, "reply", reply));
}

static int on_rule(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_api_workspace(sb_api_begin(req, params, 0), SB_ROLE_AGENT, rule_loaded);
    return 0;
}

static void rule_set(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    if (reply->status != 0) {
        sb_api_reply_ask_error(c, reply);
        return;
    }
    bool existed = json_object_get(json_object_get(c->ws_state, "auto_replies"), c->sub) != NULL;
    json_t *r = json_object_get(json_object_get(reply->state, "auto_replies"), c->sub);
    sb_api_etag(c, reply->version);
    sb_api_reply_json(c, existed ? 200 : 201,
                      json_pack("{s:s, s:s, s:O?}", "id", c->sub, "keyword", c->sub, "reply", r));
}

static void rule_put_loaded(sb_api_call_t *c)
{
    static const char *const fields[] = {"reply", NULL};
    const char *text;
    sb_ask_opts_t o = ws_opts(c);
    lower(c->sub);
    if (!sb_api_read_body(c, fields) || !sb__api_body_str(c, "reply", true, 1, 1600, &text) ||
        !sb_api_if_match(c, &o))
        return;
    char stream[16 + SB_UUID_STRLEN];
    ws_stream(c, stream);
    sb_api_ask(c, stream,
               json_pack("{s:s, s:s, s:s}", "type", "SetAutoReplyRule", "keyword", c->sub, "reply", text), &o,
               rule_set);
}

static int on_rule_put(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_api_workspace(sb_api_begin(req, params, 0), SB_ROLE_ADMIN, rule_put_loaded);
    return 0;
}

static void rule_delete_loaded(sb_api_call_t *c)
{
    sb_ask_opts_t o = ws_opts(c);
    if (!sb_api_if_match(c, &o))
        return;
    char stream[16 + SB_UUID_STRLEN];
    ws_stream(c, stream);
    sb_api_ask(c, stream, json_pack("{s:s, s:s}", "type", "RemoveAutoReplyRule", "keyword", c->sub), &o,
               done_204);
}

static int on_rule_delete(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_api_workspace(sb_api_begin(req, params, 0), SB_ROLE_ADMIN, rule_delete_loaded);
    return 0;
}

int sb__api_settings_routes(sb_router_t *r, sb_api_t *api)
{
    int rc;
    if ((rc = sb_router_add(r, "GET", "/v1/workspaces/{ws}/pipeline/stages", on_stages, api)) != 0 ||
        (rc = sb_router_add(r, "POST", "/v1/workspaces/{ws}/pipeline/stages", on_stage_add, api)) != 0 ||
        (rc = sb_router_add(r, "DELETE", "/v1/workspaces/{ws}/pipeline/stages/{name}", on_stage_remove,
                            api)) != 0 ||
        (rc = sb_router_add(r, "GET", "/v1/workspaces/{ws}/auto-replies", on_rules, api)) != 0 ||
        (rc = sb_router_add(r, "GET", "/v1/workspaces/{ws}/auto-replies/{keyword}", on_rule, api)) != 0 ||
        (rc = sb_router_add(r, "PUT", "/v1/workspaces/{ws}/auto-replies/{keyword}", on_rule_put, api)) != 0 ||
        (rc = sb_router_add(r, "DELETE", "/v1/workspaces/{ws}/auto-replies/{keyword}", on_rule_delete,
                            api)) != 0)
        return rc;
    return 0;
}
