/* Calls and their control (SPEC §5; docs/voice.md, "Call control"):
 *
 *   POST /v1/workspaces/{ws}/calls {to | contact_id, agent_id?}    (agent) -> 201 the call, queued
 *   GET  /v1/workspaces/{ws}/calls?status=&limit=&cursor=          (agent) -> {items, next_cursor}
 *   GET  /v1/workspaces/{ws}/calls/{id}                            (agent) -> the call (ETag)
 *   POST /v1/workspaces/{ws}/calls/{id}/park {slot?}               (agent) -> 200 the call, parked
 *   POST /v1/workspaces/{ws}/calls/{id}/unpark {agent_id?}         (agent) -> 200 the call
 *   POST /v1/workspaces/{ws}/calls/{id}/transfer {to_agent | to_number, mode}  (agent) -> 200
 *   POST /v1/workspaces/{ws}/calls/{id}/hangup                     (agent) -> 200
 *   GET/PUT /v1/workspaces/{ws}/calls/settings {parking_limit_seconds}  (PUT: admin)
 *
 * Each command goes to the call actor and is answered once its event is committed (409 for what
 * the call's state does not allow, and nothing is stored then).  What it means at Twilio (dialling
 * the customer, redirecting the live call) is call control's (reactors/calls.h), which acts on the
 * event from the log: the request never waits for Twilio, and a Twilio outage delays the live call
 * change without losing it.  The list is the calls read model: status=live is the board (queued,
 * ringing, in progress and parked calls, with slot, who parked them and since when). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/kinds.h"
#include "actors/park.h"
#include "core/error.h"
#include "core/phone.h"
#include "http/api_calls.h"
#include "http/api_int.h"

#define PAGE_DEFAULT 50
#define PAGE_MAX 200

typedef struct {
    char call_id[SB_UUID_STRLEN + 1];
    char stream[8 + SB_UUID_STRLEN];
    char to[SB_PHONE_MAX];
    char from[SB_PHONE_MAX];
    char contact_id[SB_UUID_STRLEN + 1];
    const char *command;
    int limit;
    int64_t cursor_at;
    char cursor_id[SB_UUID_STRLEN + 1];
    char cursor_at_s[24], limit_s[16];
    const char *status;
} call_state_t;

static call_state_t *state_of(sb_api_call_t *c)
{
    return c->data;
}

static const char *const statuses[] = {"queued", "ringing",   "in-progress", "parked",    "completed",
                                       "busy",   "no-answer", "failed",      "cancelled", NULL};

static json_t *cp(const json_t *v)
{
    return v != NULL ? json_deep_copy(v) : json_null();
}

/* ---- the call object ------------------------------------------------------------------------------- */

static json_t *call_json(const char *id, const json_t *s)
{
    const json_t *parked = json_object_get(s, "parked");
    json_t *o = json_pack("{s:s, s:O?, s:O?, s:O?, s:O?, s:O?, s:O?, s:O?, s:O?, s:O?, s:O?, s:O?}", "id", id,
                          "contact_id", json_object_get(s, "contact_id"), "direction",
                          json_object_get(s, "direction"), "from", json_object_get(s, "from"), "to",
                          json_object_get(s, "to"), "status", json_object_get(s, "status"), "agent_id",
                          json_object_get(s, "agent_id"), "started_at", json_object_get(s, "started_at"),
                          "answered_at", json_object_get(s, "answered_at"), "ended_at",
                          json_object_get(s, "ended_at"), "duration_seconds",
                          json_object_get(s, "duration_seconds"), "call_sid", json_object_get(s, "call_sid"));
    if (o == NULL)
        return NULL;
    bool is_parked = json_is_object(parked);
    json_object_set_new(o, "parked_slot", is_parked ? cp(json_object_get(parked, "slot")) : json_null());
    json_object_set_new(o, "parked_by", is_parked ? cp(json_object_get(parked, "parked_by")) : json_null());
    json_object_set_new(o, "parked_at", is_parked ? cp(json_object_get(parked, "parked_at")) : json_null());
    json_object_set_new(o, "transfers", cp(json_object_get(s, "transfers")));
    return o;
}

static bool mine(const sb_api_call_t *c, const json_t *s)
{
    const char *ws = sb__api_str(s, "workspace_id");
    return json_is_true(json_object_get(s, "created")) && ws != NULL && strcmp(ws, c->ws_id) == 0;
}

static void not_found(sb_api_call_t *c)
{
    sb_api_reply_error(c, 404, "call_not_found", "no such call", NULL);
}

static bool need_call(sb_api_call_t *c, call_state_t *st)
{
    if (c->id[0] == '\0') {
        not_found(c);
        return false;
    }
    snprintf(st->stream, sizeof st->stream, "call-%s", c->id);
    return true;
}

static void reply_call(sb_api_call_t *c, int status, const char *id, const sb_ask_reply_t *reply)
{
    json_t *o = call_json(id, reply->state);
    if (o == NULL) {
        sb_api_reply_errcode(c, SB_ENOMEM, NULL);
        return;
    }
    sb_api_etag(c, reply->version);
    sb_api_reply_json(c, status, o);
}

/* ---- POST /calls (outbound) -------------------------------------------------------------------------- */

static void initiated(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    call_state_t *st = c->data;
    /* A retry (same Idempotency-Key) after an outcome nobody knew: the call it made is the answer. */
    bool retried = reply->status == SB_EREJECTED && reply->err != NULL &&
                   strcmp(reply->err->code, "call_exists") == 0 && sb_api_has_idempotency_key(c) &&
                   reply->state != NULL && mine(c, reply->state);
    if (reply->status != 0 && !retried) {
        sb_api_reply_ask_error(c, reply);
        return;
    }
    char loc[160];
    snprintf(loc, sizeof loc, "/v1/workspaces/%s/calls/%s", c->ws_id, st->call_id);
    sb_api_header(c, "location", loc);
    reply_call(c, 201, st->call_id, reply);
}

/* The number the call goes out from: the agent's own (the lowest assigned to them), else the
 * workspace's lowest.  Numbers are E.164, so text order is a stable choice. */
static void pick_from(const sb_api_call_t *c, const char *agent, char out[SB_PHONE_MAX])
{
    const char *k, *mine_ = NULL, *any = NULL;
    const json_t *v;
    json_object_foreach((json_t *)json_object_get(c->ws_state, "numbers"), k, v)
    {
        if (any == NULL || strcmp(k, any) < 0)
            any = k;
        const char *to = sb__api_str(v, "assigned_to");
        if (agent != NULL && to != NULL && strcmp(to, agent) == 0 && (mine_ == NULL || strcmp(k, mine_) < 0))
            mine_ = k;
    }
    snprintf(out, SB_PHONE_MAX, "%s", mine_ != NULL ? mine_ : any != NULL ? any : "");
}

static void initiate(sb_api_call_t *c)
{
    call_state_t *st = c->data;
    const char *agent = sb__api_str(c->body, "agent_id");
    if (agent == NULL)
        agent = c->user_id;
    pick_from(c, agent, st->from);
    if (st->from[0] == '\0') {
        sb_api_reply_error(c, 409, "no_number", "the workspace has no phone number to call from", NULL);
        return;
    }
    json_t *cmd =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "type", "InitiateCall", "workspace_id", c->ws_id,
                  "direction", "outbound", "from", st->from, "to", st->to, "agent_id", agent);
    if (cmd != NULL && st->contact_id[0] != '\0')
        json_object_set_new(cmd, "contact_id", json_string(st->contact_id));
    snprintf(st->stream, sizeof st->stream, "call-%s", st->call_id);
    sb_api_ask(c, st->stream, cmd, NULL, initiated);
}

/* to given: the contact that number belongs to, when one does (its claim names the owner). */
static void got_claim(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    call_state_t *st = c->data;
    const char *owner = reply->status == 0 ? sb__api_str(reply->state, "owner") : NULL;
    if (owner != NULL && strncmp(owner, "contact-", 8) == 0 && strlen(owner) == 8 + SB_UUID_STRLEN)
        snprintf(st->contact_id, sizeof st->contact_id, "%s", owner + 8);
    initiate(c);
}

/* contact_id given: its first phone number. */
static void got_contact(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    call_state_t *st = c->data;
    if (reply->status != 0) {
        sb_api_reply_ask_error(c, reply);
        return;
    }
    const json_t *s = reply->state;
    if (!mine(c, s) || json_is_true(json_object_get(s, "deleted"))) {
        sb_api_reply_error(c, 404, "contact_not_found", "no such contact", "contact_id");
        return;
    }
    const char *phone = json_string_value(json_array_get(json_object_get(s, "phones"), 0));
    if (phone == NULL) {
        sb_api_reply_error(c, 409, "no_phone", "the contact has no phone number", "contact_id");
        return;
    }
    snprintf(st->to, sizeof st->to, "%s", phone);
    initiate(c);
}

static void post_keyed(sb_api_call_t *c)
{
    call_state_t *st = c->data;
    sb_api_new_id(c, "call", st->call_id);
    if (st->contact_id[0] != '\0') {
        char stream[16 + SB_UUID_STRLEN];
        snprintf(stream, sizeof stream, "contact-%s", st->contact_id);
        sb_api_get(c, stream, got_contact);
        return;
    }
    char key[SB_UUID_STRLEN + SB_PHONE_MAX + 16], stream[SB_CLAIM_STREAM_LEN];
    snprintf(key, sizeof key, "phone:%s:%s", c->ws_id, st->to);
    sb_claim_stream(key, stream);
    sb_api_get(c, stream, got_claim);
}

static void post_loaded(sb_api_call_t *c)
{
    static const char *const fields[] = {"to", "contact_id", "agent_id", NULL};
    call_state_t *st = state_of(c);
    const char *to, *contact, *agent;
    if (!sb_api_read_body(c, fields) || !sb__api_body_str(c, "to", false, 1, 64, &to) ||
        !sb__api_body_str(c, "contact_id", false, 1, 64, &contact) ||
        !sb__api_body_str(c, "agent_id", false, 1, 64, &agent))
        return;
    if ((to == NULL) == (contact == NULL)) {
        sb_api_reply_error(c, 400, "invalid", "give exactly one of to and contact_id", "to");
        return;
    }
    if (contact != NULL && !sb__api_uuid(contact, st->contact_id)) {
        sb_api_reply_error(c, 400, "invalid", "contact_id must be a uuid", "contact_id");
        return;
    }
    if (agent != NULL && !sb__api_uuid(agent, (char[SB_UUID_STRLEN + 1]){0})) {
        sb_api_reply_error(c, 400, "invalid", "agent_id must be a uuid", "agent_id");
        return;
    }
    if (to != NULL) {
        const char *country = sb__api_str(c->ws_state, "default_country");
        if (sb_phone_normalize(to, strlen(to), country ? country : "US", st->to) != 0) {
            sb_api_reply_error(c, 400, "invalid_phone", "to is not a phone number", "to");
            return;
        }
    }
    if (json_is_null(json_object_get(c->ws_state, "twilio")) ||
        json_object_get(c->ws_state, "twilio") == NULL) {
        sb_api_reply_error(c, 409, "twilio_not_configured", "Twilio is not set up for this workspace", NULL);
        return;
    }
    sb_api_idempotent(c, post_keyed);
}

static int on_post(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_api_workspace(sb_api_begin(req, params, sizeof(call_state_t)), SB_ROLE_AGENT, post_loaded);
    return 0;
}

/* ---- GET /calls/{id} --------------------------------------------------------------------------------- */

static void got_call(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    if (reply->status != 0) {
        sb_api_reply_ask_error(c, reply);
        return;
    }
    if (!mine(c, reply->state)) {
        not_found(c);
        return;
    }
    reply_call(c, 200, c->id, reply);
}

static void get_loaded(sb_api_call_t *c)
{
    call_state_t *st = state_of(c);
    if (need_call(c, st))
        sb_api_get(c, st->stream, got_call);
}

static int on_get(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_api_workspace(sb_api_begin(req, params, sizeof(call_state_t)), SB_ROLE_AGENT, get_loaded);
    return 0;
}

/* ---- GET /calls (the log and the board) --------------------------------------------------------------- */

#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

static const char page_sql[] =
    "SELECT json_build_object('id', id, 'contact_id', contact_id, 'direction', direction, 'from', "
    "from_number, "
    "'to', to_number, 'status', status, 'agent_id', agent_id, 'parked_slot', parked_slot, 'parked_by', "
    "parked_by, 'parked_at', " TS("parked_at") ", 'started_at', " TS("started_at") ", 'answered_at', " TS(
        "answered_at") ", 'ended_at', " TS("ended_at") ", 'duration_seconds', duration_seconds, 'call_sid', "
                                                       "call_sid, 'transfers', transfers)::text, "
                                                       "(extract(epoch FROM started_at) * 1000000)::int8, "
                                                       "id::text "
                                                       "FROM calls.calls WHERE workspace_id = $1 AND (CASE "
                                                       "$2::text WHEN '' THEN true "
                                                       "WHEN 'live' THEN status IN ('queued', 'ringing', "
                                                       "'in-progress', 'parked') "
                                                       "ELSE status = $2 END) AND (started_at, id) < "
                                                       "('epoch'::timestamptz + $3::int8 * "
                                                       "interval '1 microsecond', $4::uuid) ORDER BY "
                                                       "started_at DESC, id DESC LIMIT $5::int";

static void paged(sb_api_call_t *c, int status, PGresult *const *results, int n)
{
    sb_api_reply_keyset_page(c, results[0], ((const call_state_t *)c->data)->limit);
}

static void list_loaded(sb_api_call_t *c)
{
    call_state_t *st = state_of(c);
    if (!sb_api_page_limit(c, PAGE_DEFAULT, PAGE_MAX, &st->limit))
        return;
    const char *status = sb_api_query(c, "status");
    bool known = status == NULL || strcmp(status, "live") == 0;
    for (int i = 0; !known && statuses[i] != NULL; i++)
        known = strcmp(status, statuses[i]) == 0;
    if (!known) {
        sb_api_reply_error(c, 400, "invalid", "status must be live or a call status", "status");
        return;
    }
    const char *cur = sb_api_query(c, "cursor");
    st->cursor_at = 253402300799000000LL; /* 9999-12-31T23:59:59Z: after every call */
    snprintf(st->cursor_id, sizeof st->cursor_id, "ffffffff-ffff-ffff-ffff-ffffffffffff");
    if (cur != NULL && sb_api_cursor_decode(cur, &st->cursor_at, st->cursor_id) != 0) {
        sb_api_reply_error(c, 400, "invalid", "cursor is not one this API gave out", "cursor");
        return;
    }
    snprintf(st->cursor_at_s, sizeof st->cursor_at_s, "%lld", (long long)st->cursor_at);
    snprintf(st->limit_s, sizeof st->limit_s, "%d", st->limit + 1);
    sb_api_sql_t q = {"api_calls_page",
                      page_sql,
                      5,
                      {c->ws_id, status ? status : "", st->cursor_at_s, st->cursor_id, st->limit_s}};
    sb_api_sql(c, &q, 1, false, paged);
}

static int on_list(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_api_workspace(sb_api_begin(req, params, sizeof(call_state_t)), SB_ROLE_AGENT, list_loaded);
    return 0;
}

/* ---- commands: park, unpark, transfer, hang up -------------------------------------------------------- */

static void commanded(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    if (reply->status == SB_EREJECTED && reply->err != NULL && reply->err->status == 404) {
        not_found(c);
        return;
    }
    if (reply->status != 0) {
        sb_api_reply_ask_error(c, reply);
        return;
    }
    reply_call(c, 200, c->id, reply);
}

static void send_command(sb_api_call_t *c)
{
    call_state_t *st = c->data;
    json_t *cmd = json_deep_copy(c->body);
    if (cmd == NULL)
        cmd = json_object();
    json_object_set_new(cmd, "type", json_string(st->command));
    sb_ask_opts_t o;
    sb_api_ask_opts(c, &o);
    if (!sb_api_if_match(c, &o)) {
        json_decref(cmd);
        return;
    }
    sb_api_ask(c, st->stream, cmd, &o, commanded);
}

/* A park: the slot is claimed (src/actors/park.h), so two parks never share one, however close
 * together.  The read model's parked slots are only a hint of which slots to try last. */
typedef struct {
    sb_api_call_t *c;
} park_link_t;

static void parked(const sb_ask_reply_t *reply, void *data)
{
    park_link_t *l = data;
    sb_api_call_t *c = l->c;
    free(l);
    if (!sb_api_alive(c)) {
        sb__api_drop(c);
        return;
    }
    if (reply->status == SB_ETIMEOUT) {
        sb_api_reply_error(c, 503, "timeout", "the parking slot could not be claimed in time; try again",
                           NULL);
        return;
    }
    if (reply->status == SB_ECONFLICT && !reply->precondition_failed) {
        sb_api_reply_error(c, 409, "conflict", "the parking lot kept changing; try again", "slot");
        return;
    }
    commanded(c, reply);
}

static void got_slots(sb_api_call_t *c, int status, PGresult *const *results, int n)
{
    json_t *hint = json_array();
    park_link_t *l = malloc(sizeof(*l));
    if (hint == NULL || l == NULL) {
        json_decref(hint);
        free(l);
        sb_api_reply_errcode(c, SB_ENOMEM, NULL);
        return;
    }
    for (int i = 0; i < PQntuples(results[0]); i++)
        json_array_append_new(hint, json_integer(strtoll(PQgetvalue(results[0], i, 0), NULL, 10)));
    const json_t *slot = json_object_get(c->body, "slot");
    sb_park_req_t req = {
        .workspace_id = c->ws_id,
        .call_id = c->id,
        .command = "ParkCall",
        .slot = json_is_integer(slot) ? (int)json_integer_value(slot) : 0,
        .hint = hint,
    };
    sb_api_ask_opts(c, &req.opts);
    if (!sb_api_if_match(c, &req.opts)) {
        json_decref(hint);
        free(l);
        return;
    }
    l->c = c;
    int rc = sb_park_call(c->app->loops, &req, parked, l);
    json_decref(hint);
    if (rc != 0) {
        free(l);
        sb_api_reply_errcode(c, rc, NULL);
    }
}

static void command_loaded(sb_api_call_t *c, const char *command, const char *const *fields)
{
    call_state_t *st = state_of(c);
    st->command = command;
    if (!need_call(c, st))
        return;
    bool has_body = c->req->entity.base != NULL && c->req->entity.len > 0;
    if (has_body && !sb_api_read_body(c, fields))
        return;
    if (strcmp(command, "ParkCall") == 0) {
        const json_t *slot = json_object_get(c->body, "slot");
        if (slot != NULL && !json_is_null(slot) &&
            (!json_is_integer(slot) || json_integer_value(slot) < 1 ||
             json_integer_value(slot) > SB_PARK_MAX_SLOT)) {
            sb_api_reply_error(c, 400, "invalid", "slot must be 1 to 999", "slot");
            return;
        }
        sb_api_sql_t q = {"api_calls_slots",
                          "SELECT parked_slot FROM calls.calls WHERE workspace_id = $1 AND status = 'parked' "
                          "AND parked_slot IS NOT NULL AND id <> $2::uuid",
                          2,
                          {c->ws_id, c->id}};
        sb_api_sql(c, &q, 1, false, got_slots);
        return;
    }
    send_command(c);
}

static void park_loaded(sb_api_call_t *c)
{
    static const char *const fields[] = {"slot", NULL};
    command_loaded(c, "ParkCall", fields);
}

static void unpark_loaded(sb_api_call_t *c)
{
    static const char *const fields[] = {"agent_id", NULL};
    command_loaded(c, "UnparkCall", fields);
}

static void transfer_loaded(sb_api_call_t *c)
{
    static const char *const fields[] = {"to_agent", "to_number", "mode", NULL};
    command_loaded(c, "TransferCall", fields);
}

static void hangup_loaded(sb_api_call_t *c)
{
    static const char *const fields[] = {NULL};
    command_loaded(c, "HangupCall", fields);
}

#define COMMAND_ROUTE(name)                                                                                  \
    static int on_##name(h2o_req_t *req, const sb_route_params_t *params, void *data)                        \
    {                                                                                                        \
        sb_api_workspace(sb_api_begin(req, params, sizeof(call_state_t)), SB_ROLE_AGENT, name##_loaded);     \
        return 0;                                                                                            \
    }
COMMAND_ROUTE(park)
COMMAND_ROUTE(unpark)
COMMAND_ROUTE(transfer)
COMMAND_ROUTE(hangup)

/* ---- settings --------------------------------------------------------------------------------------- */

static json_t *settings_json(const json_t *ws_state)
{
    const json_t *v = json_object_get(ws_state, "parking_limit_seconds");
    return json_pack("{s:I}", "parking_limit_seconds", json_is_integer(v) ? json_integer_value(v) : 300);
}

static void settings_loaded(sb_api_call_t *c)
{
    sb_api_etag(c, c->ws_version);
    sb_api_reply_json(c, 200, settings_json(c->ws_state));
}

static int on_settings(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_api_workspace(sb_api_begin(req, params, sizeof(call_state_t)), SB_ROLE_AGENT, settings_loaded);
    return 0;
}

static void settings_set(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    if (reply->status != 0) {
        sb_api_reply_ask_error(c, reply);
        return;
    }
    sb_api_etag(c, reply->version);
    sb_api_reply_json(c, 200, settings_json(reply->state));
}

static void settings_put_loaded(sb_api_call_t *c)
{
    static const char *const fields[] = {"parking_limit_seconds", NULL};
    if (!sb_api_read_body(c, fields))
        return;
    const json_t *v = json_object_get(c->body, "parking_limit_seconds");
    if (!json_is_integer(v)) {
        sb_api_reply_error(c, 400, v == NULL ? "required" : "invalid",
                           "parking_limit_seconds must be a whole number of seconds",
                           "parking_limit_seconds");
        return;
    }
    sb_ask_opts_t o;
    sb_api_ask_opts(c, &o);
    o.context = NULL;
    if (!sb_api_if_match(c, &o))
        return;
    char stream[16 + SB_UUID_STRLEN];
    snprintf(stream, sizeof stream, "workspace-%s", c->ws_id);
    sb_api_ask(c, stream,
               json_pack("{s:s, s:I}", "type", "SetParkingLimit", "seconds", json_integer_value(v)), &o,
               settings_set);
}

static int on_settings_put(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_api_workspace(sb_api_begin(req, params, sizeof(call_state_t)), SB_ROLE_ADMIN, settings_put_loaded);
    return 0;
}

int sb_api_call_routes(sb_router_t *r, sb_api_t *api)
{
    int rc;
    if ((rc = sb_router_add(r, "POST", "/v1/workspaces/{ws}/calls", on_post, api)) != 0 ||
        (rc = sb_router_add(r, "GET", "/v1/workspaces/{ws}/calls", on_list, api)) != 0 ||
        (rc = sb_router_add(r, "GET", "/v1/workspaces/{ws}/calls/settings", on_settings, api)) != 0 ||
        (rc = sb_router_add(r, "PUT", "/v1/workspaces/{ws}/calls/settings", on_settings_put, api)) != 0 ||
        (rc = sb_router_add(r, "GET", "/v1/workspaces/{ws}/calls/{id}", on_get, api)) != 0 ||
        (rc = sb_router_add(r, "POST", "/v1/workspaces/{ws}/calls/{id}/park", on_park, api)) != 0 ||
        (rc = sb_router_add(r, "POST", "/v1/workspaces/{ws}/calls/{id}/unpark", on_unpark, api)) != 0 ||
        (rc = sb_router_add(r, "POST", "/v1/workspaces/{ws}/calls/{id}/transfer", on_transfer, api)) != 0 ||
        (rc = sb_router_add(r, "POST", "/v1/workspaces/{ws}/calls/{id}/hangup", on_hangup, api)) != 0)
        return rc;
    return 0;
}
