/* A contact's messages (SPEC §5):
 *
 *   POST   /v1/workspaces/{ws}/contacts/{id}/messages {channel, body, media_url?, media_urls?,
 *          subject?, send_at?}                         (agent) -> 202 the message, queued or scheduled
 *   GET    /v1/workspaces/{ws}/contacts/{id}/messages  (agent) -> {items, next_cursor}, oldest first
 *   DELETE /v1/workspaces/{ws}/contacts/{id}/messages/{mid}  (agent) -> 204: cancels a scheduled one
 *
 * POST asks the contact actor (SendMessage): MessageQueued, or MessageScheduled when send_at is in
 * the future; the outbox sends a queued message once it is in the log, the scheduler queues a
 * scheduled one at its time (src/reactors).  SMS, MMS and WhatsApp go out from the number the
 * contact last wrote to on that channel when the workspace still has it, else the workspace's
 * first number.  A contact who opted out is refused with 409 opted_out.  Idempotency-Key makes a
 * retry name the same message. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/phone.h"
#include "http/api_int.h"
#include "http/api_messaging.h"

#define PAGE_DEFAULT 50
#define PAGE_MAX 200

typedef struct {
    char message_id[SB_UUID_STRLEN + 1];
    char stream[16 + SB_UUID_STRLEN];
    char from[SB_PHONE_MAX];
    int limit;
    int64_t cursor_at;
    char cursor_id[SB_UUID_STRLEN + 1];
    char cursor_at_s[24], limit_s[16];
} msg_state_t;

static const char *const channels[] = {"sms", "mms", "whatsapp", "email", "chat", NULL};

static bool need_contact(sb_api_call_t *c, msg_state_t *st)
{
    if (c->id[0] == '\0') {
        sb__api_reply_no_contact(c);
        return false;
    }
    snprintf(st->stream, sizeof(st->stream), "contact-%s", c->id);
    return true;
}

static void reply_error(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    if (reply->status == SB_EREJECTED && strcmp(reply->err->code, "unknown_message") == 0)
        sb_api_reply_error(c, 404, "message_not_found", "no such message", "mid");
    else
        sb__api_reply_contact_ask_error(c, reply);
}

/* ---- POST --------------------------------------------------------------------------------------- */

static json_t *message_json(const sb_api_call_t *c, const char *id, const json_t *ev, const char *status)
{
    return json_pack("{s:s, s:s, s:O?, s:s, s:O?, s:O?, s:O?, s:O?, s:O?, s:O?, s:s, s:O?, s:O?, s:n, s:n}",
                     "id", id, "contact_id", c->id, "channel", json_object_get(ev, "channel"), "direction",
                     "outbound", "body", json_object_get(ev, "body"), "subject",
                     json_object_get(ev, "subject"), "media_urls", json_object_get(ev, "media_urls"), "from",
                     json_object_get(ev, "from"), "to", json_object_get(ev, "to"), "segments",
                     json_object_get(ev, "segments"), "status", status, "created_at",
                     json_object_get(ev, "created_at"), "send_at", json_object_get(ev, "send_at"),
                     "provider_id", "error");
}

static void sent(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    msg_state_t *st = c->data;
    if (reply->status != 0) {
        reply_error(c, reply);
        return;
    }
    json_t *m;
    if (reply->nevents > 0) {
        const sb_ask_event_t *ev = &reply->events[0];
        m = message_json(c, st->message_id, ev->data,
                         strcmp(ev->type, "MessageScheduled") == 0 ? "scheduled" : "queued");
    } else {
        /* A retry naming a message already decided: what the contact knows of it. */
        const json_t *known = json_object_get(json_object_get(reply->state, "messages"), st->message_id);
        m = json_pack("{s:s, s:s, s:O?, s:s, s:O?}", "id", st->message_id, "contact_id", c->id, "channel",
                      json_object_get(known, "channel"), "direction", "outbound", "status",
                      json_object_get(known, "status"));
    }
    char loc[200];
    snprintf(loc, sizeof(loc), "/v1/workspaces/%s/contacts/%s/messages/%s", c->ws_id, c->id, st->message_id);
    sb_api_header(c, "location", loc);
    sb_api_reply_json(c, 202, m);
}

static void send_now(sb_api_call_t *c)
{
    msg_state_t *st = c->data;
    json_t *cmd = json_deep_copy(c->body);
    json_object_set_new(cmd, "type", json_string("SendMessage"));
    json_object_set_new(cmd, "message_id", json_string(st->message_id));
    if (st->from[0] != '\0')
        json_object_set_new(cmd, "from", json_string(st->from));
    sb_api_ask(c, st->stream, cmd, NULL, sent);
}

/* The number the contact last wrote to on this channel, if the workspace still has it. */
static void got_last_number(sb_api_call_t *c, int status, PGresult *const *results, int n)
{
    msg_state_t *st = c->data;
    if (status == 0 && PQntuples(results[0]) == 1) {
        const char *to = PQgetvalue(results[0], 0, 0);
        if (sb_phone_is_e164(to) && json_object_get(json_object_get(c->ws_state, "numbers"), to) != NULL)
            snprintf(st->from, sizeof(st->from), "%s", to);
    }
    send_now(c);
}

static void post_keyed(sb_api_call_t *c)
{
    msg_state_t *st = c->data;
    sb_api_new_id(c, "message", st->message_id);
    const char *channel = sb__api_str(c->body, "channel");
    bool phone =
        strcmp(channel, "sms") == 0 || strcmp(channel, "mms") == 0 || strcmp(channel, "whatsapp") == 0;
    if (!phone) {
        send_now(c);
        return;
    }
    sb_api_sql_t q = {"api_messages_last_number",
                      "SELECT to_address FROM messages.messages WHERE contact_id = $1 AND workspace_id = $2 "
                      "AND direction = 'inbound' AND channel = ANY (CASE WHEN $3 = 'whatsapp' THEN "
                      "ARRAY['whatsapp'] ELSE ARRAY['sms', 'mms'] END) ORDER BY created_at DESC LIMIT 1",
                      3,
                      {c->id, c->ws_id, channel}};
    /* want_errors: without the read model the workspace's first number will do. */
    sb_api_sql(c, &q, 1, true, got_last_number);
}

static void post_loaded(sb_api_call_t *c)
{
    static const char *const fields[] = {"channel", "body",    "media_url", "media_urls",
                                         "subject", "send_at", NULL};
    msg_state_t *st = c->data;
    if (!need_contact(c, st) || !sb_api_read_body(c, fields))
        return;
    const char *channel = sb__api_str(c->body, "channel");
    bool known = false;
    for (int i = 0; channel != NULL && channels[i] != NULL; i++)
        known = known || strcmp(channel, channels[i]) == 0;
    if (!known) {
        sb_api_reply_error(c, 400, channel == NULL ? "required" : "invalid",
                           "channel must be one of sms, mms, whatsapp, email, chat", "channel");
        return;
    }
    if (!json_is_string(json_object_get(c->body, "body"))) {
        sb_api_reply_error(c, 400, "required", "body is required (a string)", "body");
        return;
    }
    sb_api_idempotent(c, post_keyed);
}

static int on_post(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_api_workspace(sb_api_begin(req, params, sizeof(msg_state_t)), SB_ROLE_AGENT, post_loaded);
    return 0;
}

/* ---- GET ------------------------------------------------------------------------------------------ */

static const char page_sql[] =
    "SELECT json_build_object('id', id, 'contact_id', contact_id, 'channel', channel, 'direction', "
    "direction, "
    "'body', body, 'subject', subject, 'media_urls', media_urls, 'status', status, 'from', from_address, "
    "'to', to_address, 'segments', segments, "
    "'created_at', to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "
    "'send_at', to_char(send_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "
    "'provider_id', provider_id, 'error', error, 'error_code', error_code)::text, "
    "(extract(epoch FROM created_at) * 1000000)::int8, id::text "
    "FROM messages.messages WHERE contact_id = $1 AND workspace_id = $2 AND (created_at, id) > "
    "('epoch'::timestamptz + $3::int8 * interval '1 microsecond', $4::uuid) ORDER BY created_at, id LIMIT "
    "$5::int";

static void paged(sb_api_call_t *c, int status, PGresult *const *results, int n)
{
    sb_api_reply_keyset_page(c, results[0], ((const msg_state_t *)c->data)->limit);
}

static void list_contact_got(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    msg_state_t *st = c->data;
    if (reply->status != 0) {
        reply_error(c, reply);
        return;
    }
    if (!sb__api_is_live_contact(c, reply->state)) {
        sb__api_reply_no_contact(c);
        return;
    }
    snprintf(st->cursor_at_s, sizeof(st->cursor_at_s), "%lld", (long long)st->cursor_at);
    snprintf(st->limit_s, sizeof(st->limit_s), "%d", st->limit + 1);
    sb_api_sql_t q = {
        "api_messages_page", page_sql, 5, {c->id, c->ws_id, st->cursor_at_s, st->cursor_id, st->limit_s}};
    sb_api_sql(c, &q, 1, false, paged);
}

static void list_loaded(sb_api_call_t *c)
{
    msg_state_t *st = c->data;
    if (!need_contact(c, st) || !sb_api_page_limit(c, PAGE_DEFAULT, PAGE_MAX, &st->limit))
        return;
    const char *cur = sb_api_query(c, "cursor");
    st->cursor_at = -62135596800LL * 1000000; /* 0001-01-01, before every message */
    snprintf(st->cursor_id, sizeof(st->cursor_id), "00000000-0000-0000-0000-000000000000");
    if (cur != NULL && sb_api_cursor_decode(cur, &st->cursor_at, st->cursor_id) != 0) {
        sb_api_reply_error(c, 400, "invalid", "cursor is not one this API gave out", "cursor");
        return;
    }
    /* The actor says whether the contact is this workspace's (the read model may lag behind). */
    sb_api_get(c, st->stream, list_contact_got);
}

static int on_list(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_api_workspace(sb_api_begin(req, params, sizeof(msg_state_t)), SB_ROLE_AGENT, list_loaded);
    return 0;
}

/* ---- DELETE (cancel a scheduled message) ------------------------------------------------------------ */

static void cancelled(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    if (reply->status != 0) {
        reply_error(c, reply);
        return;
    }
    sb_api_reply_json(c, 204, NULL);
}

static void cancel_loaded(sb_api_call_t *c)
{
    msg_state_t *st = c->data;
    char mid[SB_UUID_STRLEN + 1];
    if (!need_contact(c, st))
        return;
    if (!sb__api_uuid(c->sub, mid)) {
        sb_api_reply_error(c, 404, "message_not_found", "no such message", "mid");
        return;
    }
    sb_ask_opts_t o;
    sb_api_ask_opts(c, &o);
    if (!sb_api_if_match(c, &o))
        return;
    sb_api_ask(c, st->stream, json_pack("{s:s, s:s}", "type", "CancelScheduledMessage", "message_id", mid),
               &o, cancelled);
}

static int on_cancel(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_api_workspace(sb_api_begin(req, params, sizeof(msg_state_t)), SB_ROLE_AGENT, cancel_loaded);
    return 0;
}

int sb__api_message_routes(sb_router_t *r, sb_api_t *api)
{
    int rc;
    if ((rc = sb_router_add(r, "POST", "/v1/workspaces/{ws}/contacts/{id}/messages", on_post, api)) != 0 ||
        (rc = sb_router_add(r, "GET", "/v1/workspaces/{ws}/contacts/{id}/messages", on_list, api)) != 0 ||
        (rc = sb_router_add(r, "DELETE", "/v1/workspaces/{ws}/contacts/{id}/messages/{mid}", on_cancel,
                            api)) != 0)
        return rc;
    return 0;
}
