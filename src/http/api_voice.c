/* Voice for the team's browsers (SPEC §5; docs/voice.md):
 *
 *   GET /v1/workspaces/{ws}/voice/token         -> {token, identity, expires_at}: a Twilio Voice
 *                                                   access token for the calling member
 *   PUT /v1/me/presence {presence}               -> {presence, changed_at}: online | away | offline
 *   GET /v1/workspaces/{ws}/voice/agents         -> {items: [{user_id, name, email, role, presence,
 *                                                   identity, numbers, active_call}]}: who can take calls
 *   GET /v1/workspaces/{ws}/voice/numbers        -> {items: [{number, sid, assigned_to}]}
 *   PUT /v1/workspaces/{ws}/voice/numbers/{number} {assigned_to} (admin) -> {number, sid, assigned_to}:
 *                                                   whose browser the number's calls ring
 *   GET /v1/workspaces/{ws}/contacts/{id}/calls  -> the contact's calls, newest first (the timeline)
 *
 * The token is signed with the workspace's API key secret, read from the sealed secrets through the
 * per-loop configuration cache (reactors/wsconf.h); it is answered once and never logged. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "core/phone.h"
#include "http/api_int.h"
#include "http/api_messaging.h"
#include "providers/twilio_token.h"
#include "providers/twilio_voice.h"
#include "reactors/wsconf.h"

static const char *const presences[] = {"online", "away", "offline", NULL};

/* ---- token ------------------------------------------------------------------------------------------- */

static void token_conf(int status, const sb_wsconf_t *conf, void *data)
{
    sb_api_call_t *c = data;
    if (!sb_api_alive(c)) {
        sb__api_drop(c);
        return;
    }
    if (status == SB_ENOTFOUND) { /* deleted since it was loaded */
        sb_api_reply_error(c, 404, "workspace_not_found", "no such workspace", NULL);
        return;
    }
    if (status == SB_EPERM) {
        sb_api_reply_error(c, 500, "secrets_unreadable",
                           "the workspace's Twilio secrets are sealed under another master key", NULL);
        return;
    }
    if (status != 0) {
        sb_api_reply_errcode(c, status, NULL);
        return;
    }
    if (!conf->twilio || conf->api_key_sid[0] == '\0' || conf->api_key_secret[0] == '\0' ||
        conf->twiml_app_sid[0] == '\0') {
        sb_api_reply_error(c, 409, "twilio_not_configured",
                           "set up Twilio for this workspace first (PUT .../twilio)", NULL);
        return;
    }
    char identity[SB_VOICE_IDENTITY_LEN + 1];
    if (sb_voice_identity(c->ws_id, c->user_id, identity) != 0) {
        sb_api_reply_errcode(c, SB_EINVAL, NULL);
        return;
    }
    sb_twilio_token_t tk = {
        .account_sid = conf->account_sid,
        .api_key_sid = conf->api_key_sid,
        .api_key_secret = conf->api_key_secret,
        .identity = identity,
        .application_sid = conf->twiml_app_sid,
        .incoming = true,
        .ttl = SB_TWILIO_TOKEN_TTL,
    };
    int64_t now = sb_clock_now_us() / 1000000;
    sb_buf_t b = SB_BUF_INIT;
    int rc = sb_twilio_token_make(&tk, now, &b);
    if (rc != 0) {
        sb_buf_free(&b);
        sb_api_reply_errcode(c, rc, NULL);
        return;
    }
    char *token = sb_buf_steal(&b);
    json_t *body = json_pack("{s:s, s:s, s:o}", "token", token, "identity", identity, "expires_at",
                             sb__api_time((now + SB_TWILIO_TOKEN_TTL) * 1000000));
    sodium_memzero(token, strlen(token));
    free(token);
    /* A credential: no cache may keep it. */
    sb_api_header(c, "cache-control", "no-store");
    sb_api_reply_json(c, 200, body);
}

static void token_loaded(sb_api_call_t *c)
{
    int rc = sb_wsconf_get(c->ws_id, 0, token_conf, c);
    if (rc != 0)
        sb_api_reply_errcode(c, rc, NULL);
}

static int on_token(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_api_workspace(sb_api_begin(req, params, 0), SB_ROLE_AGENT, token_loaded);
    return 0;
}

/* ---- presence ------------------------------------------------------------------------------------------ */

/* Presence is a person's (the user stream, which routing reads); each of their workspaces notes
 * it too (NotePresence on "presence-<workspace>": MemberPresenceChanged), so that the workspace's
 * live board (SSE) and event page show the change.  Noting is idempotent and done on every PUT,
 * changed or not, so a PUT repeated after a failure or a crash between the two brings the
 * workspaces up to date.  The workspaces come from the members read model (a workspace joined a
 * moment ago may be missed until the next change); at most MAX_NOTED. */
#define MAX_NOTED 200

typedef struct {
    json_t *answer; /* {presence, changed_at} */
    int64_t version;
    char *workspaces; /* MAX_NOTED uuids, SB_UUID_STRLEN + 1 apart */
    int n, at;
} presence_state_t;

static void presence_cleanup(sb_api_call_t *c)
{
    presence_state_t *st = c->data;
    json_decref(st->answer);
    free(st->workspaces);
}

static void presence_answer(sb_api_call_t *c)
{
    presence_state_t *st = c->data;
    sb_api_etag(c, st->version);
    sb_api_reply_json(c, 200, json_incref(st->answer));
}

static void note_next(sb_api_call_t *c);

static void noted(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    presence_state_t *st = c->data;
    if (reply->status != 0)
        sb_log_warn("api", "presence of %s not noted in workspace %s: %s id=%s", c->user_id,
                    st->workspaces + (size_t)(st->at - 1) * (SB_UUID_STRLEN + 1),
                    reply->err != NULL ? reply->err->code : sb_strerror(reply->status), c->request_id);
    note_next(c);
}

static void note_next(sb_api_call_t *c)
{
    presence_state_t *st = c->data;
    if (st->at >= st->n) {
        presence_answer(c);
        return;
    }
    const char *ws = st->workspaces + (size_t)st->at++ * (SB_UUID_STRLEN + 1);
    char stream[16 + SB_UUID_STRLEN];
    snprintf(stream, sizeof stream, "presence-%s", ws);
    sb_ask_opts_t o;
    sb_api_ask_opts(c, &o);
    o.context = NULL;
    o.workspace_id = ws;
    o.skip_state = true;
    o.skip_event_data = true;
    sb_api_ask(c, stream,
               json_pack("{s:s, s:s, s:O}", "type", "NotePresence", "user_id", c->user_id, "presence",
                         json_object_get(st->answer, "presence")),
               &o, noted);
}

static void got_workspaces(sb_api_call_t *c, int status, PGresult *const *results, int n)
{
    presence_state_t *st = c->data;
    if (status != 0) {
        sb_log_warn("api", "presence of %s: its workspaces cannot be read: %s id=%s", c->user_id,
                    sb_strerror(status), c->request_id);
        presence_answer(c);
        return;
    }
    int rows = PQntuples(results[0]);
    st->workspaces = calloc((size_t)(rows > 0 ? rows : 1), SB_UUID_STRLEN + 1);
    if (st->workspaces == NULL) {
        presence_answer(c);
        return;
    }
    for (int i = 0; i < rows; i++) {
        if (PQgetlength(results[0], i, 0) != SB_UUID_STRLEN)
            continue;
        memcpy(st->workspaces + (size_t)st->n++ * (SB_UUID_STRLEN + 1), PQgetvalue(results[0], i, 0),
               SB_UUID_STRLEN);
    }
    note_next(c);
}

static void presence_done(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    presence_state_t *st = c->data;
    if (reply->status != 0) {
        sb_api_reply_ask_error(c, reply);
        return;
    }
    st->version = reply->version;
    st->answer = json_pack("{s:O?, s:O?}", "presence", json_object_get(reply->state, "presence"),
                           "changed_at", json_object_get(reply->state, "presence_changed_at"));
    if (st->answer == NULL || !json_is_string(json_object_get(st->answer, "presence"))) {
        sb_api_reply_errcode(c, SB_ENOMEM, NULL);
        return;
    }
    char limit[16];
    snprintf(limit, sizeof limit, "%d", MAX_NOTED);
    sb_api_sql_t q = {"api_presence_workspaces",
                      "SELECT workspace_id::text FROM members.members WHERE user_id = $1::uuid "
                      "ORDER BY workspace_id LIMIT $2::int",
                      2,
                      {c->user_id, limit}};
    sb_api_sql(c, &q, 1, true, got_workspaces);
}

static void presence_authenticated(sb_api_call_t *c)
{
    c->cleanup = presence_cleanup;
    static const char *const fields[] = {"presence", NULL};
    const char *p;
    if (!sb_api_read_body(c, fields) || !sb__api_body_str(c, "presence", true, 1, 16, &p))
        return;
    bool known = false;
    for (int i = 0; presences[i] != NULL; i++)
        known = known || strcmp(p, presences[i]) == 0;
    if (!known) {
        sb_api_reply_error(c, 400, "invalid", "presence must be online, away or offline", "presence");
        return;
    }
    char stream[8 + SB_UUID_STRLEN];
    snprintf(stream, sizeof(stream), "user-%s", c->user_id);
    sb_ask_opts_t o;
    sb_api_ask_opts(c, &o);
    o.workspace_id = NULL;
    if (!sb_api_if_match(c, &o))
        return;
    sb_api_ask(c, stream, json_pack("{s:s, s:s}", "type", "ChangePresence", "presence", p), &o,
               presence_done);
}

static int on_presence(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_api_authenticate(sb_api_begin(req, params, sizeof(presence_state_t)), false, presence_authenticated);
    return 0;
}

/* ---- numbers ---------------------------------------------------------------------------------------------
 */

static json_t *number_json(const char *number, const json_t *n)
{
    return json_pack("{s:s, s:O?, s:O?}", "number", number, "sid", json_object_get(n, "sid"), "assigned_to",
                     json_object_get(n, "assigned_to"));
}

/* The workspace's numbers, in number order. */
static json_t *numbers_json(const json_t *state, const char *only_user)
{
    json_t *items = json_array();
    const json_t *numbers = json_object_get(state, "numbers");
    const char **keys = calloc(json_object_size(numbers) + 1, sizeof(*keys));
    size_t n = 0;
    const char *key;
    const json_t *v;
    if (keys == NULL)
        return items;
    json_object_foreach((json_t *)numbers, key, v)
    {
        const char *a = json_string_value(json_object_get(v, "assigned_to"));
        if (only_user == NULL || (a != NULL && strcmp(a, only_user) == 0))
            keys[n++] = key;
    }
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && strcmp(keys[j - 1], keys[j]) > 0; j--) {
            const char *tmp = keys[j];
            keys[j] = keys[j - 1];
            keys[j - 1] = tmp;
        }
    for (size_t i = 0; i < n; i++)
        json_array_append_new(items, only_user ? json_string(keys[i])
                                               : number_json(keys[i], json_object_get(numbers, keys[i])));
    free(keys);
    return items;
}

static void numbers_loaded(sb_api_call_t *c)
{
    sb_api_etag(c, c->ws_version);
    sb_api_reply_json(c, 200,
                      json_pack("{s:o, s:n}", "items", numbers_json(c->ws_state, NULL), "next_cursor"));
}

static int on_numbers(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_api_workspace(sb_api_begin(req, params, 0), SB_ROLE_AGENT, numbers_loaded);
    return 0;
}

typedef struct {
    char number[SB_PHONE_MAX];
} number_state_t;

static void assigned(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    number_state_t *st = c->data;
    if (reply->status != 0) {
        sb_api_reply_ask_error(c, reply);
        return;
    }
    sb_api_etag(c, reply->version);
    sb_api_reply_json(
        c, 200,
        number_json(st->number, json_object_get(json_object_get(reply->state, "numbers"), st->number)));
}

static void assign_loaded(sb_api_call_t *c)
{
    static const char *const fields[] = {"assigned_to", NULL};
    number_state_t *st = c->data;
    /* The path's number: "+1415..." (a '+' may come percent-encoded), or a national format. */
    char raw[sizeof(c->sub)];
    const char *s = c->sub;
    if (strncasecmp(s, "%2B", 3) == 0) {
        snprintf(raw, sizeof(raw), "+%s", s + 3);
        s = raw;
    }
    const char *country = sb__api_str(c->ws_state, "default_country");
    if (sb_phone_normalize(s, strlen(s), country != NULL ? country : "US", st->number) != 0 ||
        json_object_get(json_object_get(c->ws_state, "numbers"), st->number) == NULL) {
        sb_api_reply_error(c, 404, "unknown_number", "the workspace has no such number", NULL);
        return;
    }
    if (!sb_api_read_body(c, fields))
        return;
    const json_t *a = json_object_get(c->body, "assigned_to");
    char uid[SB_UUID_STRLEN + 1];
    if (a == NULL || !(json_is_null(a) || (json_is_string(a) && sb__api_uuid(json_string_value(a), uid)))) {
        sb_api_reply_error(c, 400, "invalid", "assigned_to must be a member's id or null", "assigned_to");
        return;
    }
    char stream[16 + SB_UUID_STRLEN];
    snprintf(stream, sizeof(stream), "workspace-%s", c->ws_id);
    sb_ask_opts_t o;
    sb_api_ask_opts(c, &o);
    o.context = NULL;
    if (!sb_api_if_match(c, &o))
        return;
    sb_api_ask(c, stream,
               json_pack("{s:s, s:s, s:s?}", "type", "AssignPhoneNumber", "number", st->number, "user_id",
                         json_is_null(a) ? NULL : uid),
               &o, assigned);
}

static int on_assign(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_api_workspace(sb_api_begin(req, params, sizeof(number_state_t)), SB_ROLE_ADMIN, assign_loaded);
    return 0;
}

/* ---- agents -------------------------------------------------------------------------------------------- */

/* Presence from the users read model, and each agent's live call from the board. */
static const char agents_sql[] =
    "SELECT u.id::text, u.presence, b.id::text, b.status FROM members.users u "
    "LEFT JOIN LATERAL (SELECT id, status FROM calls.board WHERE workspace_id = $1 AND agent_id = u.id "
    "ORDER BY started_at DESC LIMIT 1) b ON true WHERE u.id = ANY($2::uuid[])";

static void agents_read(sb_api_call_t *c, int status, PGresult *const *results, int n)
{
    PGresult *r = results[0];
    json_t *items = json_array();
    const char *uid;
    const json_t *m;
    json_object_foreach(json_object_get(c->ws_state, "members"), uid, m)
    {
        const char *presence = "offline";
        json_t *active = json_null();
        for (int i = 0; i < PQntuples(r); i++) {
            if (strcmp(PQgetvalue(r, i, 0), uid) != 0)
                continue;
            presence = PQgetvalue(r, i, 1);
            if (!PQgetisnull(r, i, 2))
                active = json_pack("{s:s, s:s}", "id", PQgetvalue(r, i, 2), "status", PQgetvalue(r, i, 3));
        }
        char identity[SB_VOICE_IDENTITY_LEN + 1];
        if (sb_voice_identity(c->ws_id, uid, identity) != 0)
            identity[0] = '\0';
        json_array_append_new(
            items, json_pack("{s:s, s:O?, s:O?, s:O?, s:s, s:s, s:o, s:o}", "user_id", uid, "name",
                             json_object_get(m, "name"), "email", json_object_get(m, "email"), "role",
                             json_object_get(m, "role"), "presence", presence, "identity", identity,
                             "numbers", numbers_json(c->ws_state, uid), "active_call", active));
    }
    sb_api_reply_json(c, 200, json_pack("{s:o, s:n}", "items", items, "next_cursor"));
}

static void agents_loaded(sb_api_call_t *c)
{
    sb_buf_t ids = SB_BUF_INIT;
    const char *uid;
    const json_t *m;
    sb_buf_putc(&ids, '{');
    json_object_foreach(json_object_get(c->ws_state, "members"), uid, m)
    {
        if (ids.len > 1)
            sb_buf_putc(&ids, ',');
        sb_buf_puts(&ids, uid);
    }
    sb_buf_putc(&ids, '}');
    sb_api_sql_t q = {"api_voice_agents", agents_sql, 2, {c->ws_id, ids.data}};
    sb_api_sql(c, &q, 1, false, agents_read);
    sb_buf_free(&ids);
}

static int on_agents(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_api_workspace(sb_api_begin(req, params, 0), SB_ROLE_AGENT, agents_loaded);
    return 0;
}

/* ---- the contact's calls ---------------------------------------------------------------------------------
 */

typedef struct {
    int limit;
    char limit_s[8], cursor_at_s[24];
    char cursor_id[SB_UUID_STRLEN + 1];
} calls_state_t;

#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

static const char calls_sql[] =
    "SELECT EXISTS (SELECT 1 FROM contacts.contacts WHERE id = $2 AND workspace_id = $1), "
    "coalesce(json_agg(json_build_object('id', x.id, 'contact_id', x.contact_id, 'direction', x.direction, "
    "'from', x.from_number, 'to', x.to_number, 'status', x.status, 'agent_id', x.agent_id, 'parked_slot', "
    "x.parked_slot, 'started_at', " TS("x.started_at") ", 'answered_at', " TS(
        "x.answered_at") ", 'ended_at', " TS("x.ended_at") ", 'duration_seconds', x.duration_seconds, "
                                                           "'recordings', x.recordings) "
                                                           "ORDER BY x.started_at DESC, x.id DESC), "
                                                           "'[]')::text, count(x.id)::int, "
                                                           "(extract(epoch FROM min(x.started_at)) * "
                                                           "1000000)::int8, "
                                                           "(array_agg(x.id::text ORDER BY x.started_at, "
                                                           "x.id))[1] "
                                                           "FROM (SELECT * FROM calls.calls WHERE "
                                                           "workspace_id = $1 AND contact_id = $2 "
                                                           "AND (started_at, id) < ('epoch'::timestamptz + "
                                                           "$3::int8 * interval '1 microsecond', $4::uuid) "
                                                           "ORDER BY started_at DESC, id DESC LIMIT $5::int) "
                                                           "x";

static void calls_read(sb_api_call_t *c, int status, PGresult *const *results, int n)
{
    calls_state_t *st = c->data;
    PGresult *r = results[0];
    if (strcmp(PQgetvalue(r, 0, 0), "t") != 0) {
        sb_api_reply_error(c, 404, "contact_not_found", "no such contact", NULL);
        return;
    }
    sb_api_reply_sql_page(c, r, 1, st->limit);
}

static void calls_loaded(sb_api_call_t *c)
{
    calls_state_t *st = c->data;
    if (c->id[0] == '\0') {
        sb_api_reply_error(c, 404, "contact_not_found", "no such contact", NULL);
        return;
    }
    if (!sb_api_page_limit(c, 50, 200, &st->limit))
        return;
    const char *cur = sb_api_query(c, "cursor");
    int64_t at = INT64_MAX / 2; /* no cursor: after the end of time */
    snprintf(st->cursor_id, sizeof(st->cursor_id), "ffffffff-ffff-ffff-ffff-ffffffffffff");
    if (cur != NULL && sb_api_cursor_decode(cur, &at, st->cursor_id) != 0) {
        sb_api_reply_error(c, 400, "invalid", "cursor is not one this API gave out", "cursor");
        return;
    }
    snprintf(st->cursor_at_s, sizeof(st->cursor_at_s), "%lld", (long long)at);
    snprintf(st->limit_s, sizeof(st->limit_s), "%d", st->limit);
    sb_api_sql_t q = {
        "api_contact_calls", calls_sql, 5, {c->ws_id, c->id, st->cursor_at_s, st->cursor_id, st->limit_s}};
    sb_api_sql(c, &q, 1, false, calls_read);
}

static int on_contact_calls(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_api_workspace(sb_api_begin(req, params, sizeof(calls_state_t)), SB_ROLE_AGENT, calls_loaded);
    return 0;
}

int sb__api_voice_routes(sb_router_t *r, sb_api_t *api)
{
    int rc;
    if ((rc = sb_router_add(r, "GET", "/v1/workspaces/{ws}/voice/token", on_token, api)) != 0 ||
        (rc = sb_router_add(r, "PUT", "/v1/me/presence", on_presence, api)) != 0 ||
        (rc = sb_router_add(r, "GET", "/v1/workspaces/{ws}/voice/agents", on_agents, api)) != 0 ||
        (rc = sb_router_add(r, "GET", "/v1/workspaces/{ws}/voice/numbers", on_numbers, api)) != 0 ||
        (rc = sb_router_add(r, "PUT", "/v1/workspaces/{ws}/voice/numbers/{number}", on_assign, api)) != 0 ||
        (rc = sb_router_add(r, "GET", "/v1/workspaces/{ws}/contacts/{id}/calls", on_contact_calls, api)) != 0)
        return rc;
    return 0;
}
