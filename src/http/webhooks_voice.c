/* Twilio's voice webhooks (SPEC §7): the call webhook, the <Dial> action, the queue's hold music,
 * status and recording callbacks.  docs/voice.md describes the routing; webhooks_voice.h the
 * parameters and the TwiML.
 *
 *   voice      form -> the workspace (the To number's claim; for a browser's call the identity in
 *              From) -> AccountSid and X-Twilio-Signature -> [inbound: the number's owner (the
 *              workspace actor) and their presence (the user actor)] -> the contact for the other
 *              party, found or created -> InitiateCall (named by CallSid: Twilio's retries are
 *              repeats) -> TwiML once committed: ring the owner's browser, else the queue; a
 *              browser's call dials the number with the workspace's number as caller id.
 *   dial       the <Dial>'s end (DialCallStatus): answered -> AnswerCall, hang up; not answered ->
 *              EnqueueCall and the queue (a browser's call: RecordCallStatus, hang up).
 *   hold       the <Enqueue> waitUrl: a message and hold music; with k=room, the waitUrl of a
 *              conference room (a parked call, a warm transfer): "Please hold." and the music.
 *   status     CallStatus of the call (RecordCallStatus with its CallSid) or of the leg our <Dial>
 *              placed (ParentCallSid: ringing -> RecordCallStatus ringing, answered -> AnswerCall).
 *   recording  a finished recording -> RecordCallRecording.
 *   dequeued   the <Queue> url of an agent who takes the next waiting caller (a browser's call to
 *              "queue"): the caller's call is answered by that agent -> AnswerCall.
 *
 * The callback URLs we give Twilio carry our ids (?w=<workspace>&call=<call>&a=<agent>), which are
 * signed with them; the TwiML app's own callbacks (voice, status) carry none and are routed by the
 * number or the client identity.  A status the call has moved past, or for a call we do not know,
 * is still a 200: Twilio must not retry what will never record anything. */
#include <stdlib.h>
#include <string.h>

#include "actors/flows.h"
#include "core/error.h"
#include "core/log.h"
#include "core/phone.h"
#include "db/pg.h"
#include "http/response.h"
#include "http/webhooks_int.h"
#include "http/webhooks_voice.h"
#include "providers/twilio_sig.h"
#include "providers/twilio_voice.h"
#include "reactors/messaging.h"
#include "reactors/wsconf.h"

typedef enum { K_VOICE, K_DIAL, K_HOLD, K_STATUS, K_RECORDING, K_DEQUEUED } kind_t;

static const char *const kind_names[] = {"call",        "dial action", "hold",
                                         "call status", "recording",   "dequeue"};

typedef struct {
    sb__wh_signed_t s; /* first: the state is freed through it */
    sb_wh_call_t call;
    sb_wh_voice_ids_t ids;
    int tries;
    /* routing: a workspace id, else a number */
    char route_ws[SB_UUID_STRLEN + 1];
    char route_number[SB_PHONE_MAX];
    char client_user[SB_UUID_STRLEN + 1]; /* the browser's member (From client:<identity>) */
    /* the call */
    bool outgoing; /* a browser's call through the TwiML app */
    bool ring;     /* ring agent's browser (else the queue) */
    char call_id[SB_UUID_STRLEN + 1];
    char contact_id[SB_UUID_STRLEN + 1];
    char agent[SB_UUID_STRLEN + 1];
    char party[SB_PHONE_MAX];     /* the other party: the caller (inbound) or the callee (outgoing) */
    char caller_id[SB_PHONE_MAX]; /* outgoing: the workspace number the callee sees */
    /* dequeued: the caller's call looked up by its CallSid in the calls read model */
    sb_pg_req_t req;
    const char *params[2]; /* borrowed from form and conf until the reply */
    bool looked_up;
} vwh_t;

static void vwh_free(vwh_t *t)
{
    sb__wh_signed_free(&t->s);
}

static sb_loops_t *loops(void)
{
    return sb_messaging_loops(sb_messaging_current());
}

static void fail(vwh_t *t, int rc)
{
    sb__wh_reply_errcode(&t->s.h, rc);
    vwh_free(t);
}

/* Answers xml (taken over) as TwiML and ends the request. */
static void reply_twiml(vwh_t *t, int rc, char *xml, size_t len)
{
    if (rc != 0) {
        fail(t, rc);
        return;
    }
    if (t->s.h.req != NULL)
        sb_http_send_body(t->s.h.req, 200, "text/xml", xml, len);
    free(xml);
    vwh_free(t);
}

static void reply_ok(vwh_t *t)
{
    SB__WH_COUNT(statuses);
    sb__wh_reply_ok(&t->s.h);
    vwh_free(t);
}

static void forbidden(vwh_t *t, const char *why)
{
    sb_log_info("webhooks", "twilio %s refused: %s id=%s", kind_names[t->s.kind], why, t->s.h.request_id);
    sb__wh_reply_error(&t->s.h, 403, "invalid_signature", "the request could not be verified", NULL);
    vwh_free(t);
}

static void ask_opts(vwh_t *t, sb_ask_opts_t *o, const char *user)
{
    *o = (sb_ask_opts_t){
        .user_id = user,
        .context = t->s.conf->context,
        .correlation_id = t->s.h.request_id,
        .request_id = t->s.h.request_id,
        .source = "webhook:twilio",
        .workspace_id = t->s.conf->workspace_id,
        .skip_state = true,
        .skip_event_data = true,
    };
}

/* Asks the call actor t->call_id; cmd stolen.  On a synchronous failure answers and frees t. */
static void ask_call(vwh_t *t, json_t *cmd, const char *user, sb_ask_cb cb)
{
    char stream[SB_UUID_STRLEN + 8];
    snprintf(stream, sizeof(stream), "call-%s", t->call_id);
    sb_ask_opts_t o;
    ask_opts(t, &o, user);
    int rc = cmd != NULL ? sb_actor_ask(loops(), stream, cmd, &o, cb, t) : SB_ENOMEM;
    if (rc != 0)
        fail(t, rc);
}

static bool gone(vwh_t *t)
{
    if (t->s.h.req != NULL)
        return false;
    vwh_free(t);
    return true;
}

/* A rejection that means "nothing to record": the call is unknown to us (404), or the report is
 * behind or against the call's state (409). */
static bool settled(const sb_ask_reply_t *r)
{
    return r->status == 0 ||
           (r->status == SB_EREJECTED && r->err != NULL && (r->err->status == 404 || r->err->status == 409));
}

/* ---- the call webhook --------------------------------------------------------------------------- */

static void answer_call(vwh_t *t)
{
    sb_wh_voice_ctx_t v = {t->s.h.cfg->public_url, t->s.conf->workspace_id, t->call_id};
    char *xml = NULL;
    size_t len = 0;
    int rc;
    if (t->outgoing)
        rc = sb_wh_twiml_dial_number(&v, t->client_user, t->caller_id, t->party, &xml, &len);
    else if (t->ring)
        rc = sb_wh_twiml_ring_agent(&v, t->agent, &xml, &len);
    else
        rc = sb_wh_twiml_enqueue(&v, &xml, &len);
    if (rc == 0)
        SB__WH_COUNT(inbound);
    reply_twiml(t, rc, xml, len);
}

static void on_initiated(const sb_ask_reply_t *reply, void *data)
{
    vwh_t *t = data;
    if (gone(t))
        return;
    /* call_exists: Twilio retried a call we have recorded; answer it the same way again. */
    bool repeat =
        reply->status == SB_EREJECTED && reply->err != NULL && strcmp(reply->err->code, "call_exists") == 0;
    if (reply->status != 0 && !repeat) {
        sb__wh_reply_ask_error(&t->s.h, reply);
        vwh_free(t);
        return;
    }
    answer_call(t);
}

static void initiate(vwh_t *t)
{
    const char *from = t->outgoing ? t->caller_id : t->party;
    const char *to = t->outgoing ? t->party : t->route_number;
    const char *agent = t->outgoing ? t->client_user : (t->ring ? t->agent : NULL);
    json_t *cmd =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s?, s:s?}", "type", "InitiateCall", "workspace_id",
                  t->s.conf->workspace_id, "direction", t->outgoing ? "outbound" : "inbound", "from", from,
                  "to", to, "call_sid", t->call.call_sid, "contact_id",
                  t->contact_id[0] ? t->contact_id : NULL, "agent_id", agent);
    ask_call(t, cmd, t->outgoing ? t->client_user : NULL, on_initiated);
}

static void find_contact(vwh_t *t);

static void on_contact(const sb_flow_result_t *res, void *data)
{
    vwh_t *t = data;
    if (gone(t))
        return;
    if (res->status != 0 || res->id == NULL) {
        /* A call still goes through without its contact: better an unfiled call than a caller
         * nobody answers.  Only a transient failure is worth Twilio's retry. */
        bool transient = res->status == SB_EOVERLOAD || res->status == SB_ETIMEOUT ||
                         res->status == SB_EDBDOWN || res->status == SB_ECONFLICT ||
                         res->status == SB_EUNKNOWN;
        if (transient) {
            fail(t, res->status);
            return;
        }
        sb_log_warn("webhooks", "call %s: no contact for the caller: %s id=%s", t->call.call_sid,
                    res->err != NULL ? res->err->code : sb_strerror(res->status), t->s.h.request_id);
        t->contact_id[0] = '\0';
    } else {
        snprintf(t->contact_id, sizeof(t->contact_id), "%s", res->id);
    }
    initiate(t);
}

static void find_contact(vwh_t *t)
{
    if (t->party[0] == '\0') {
        initiate(t);
        return;
    }
    json_t *fields = json_pack("{s:s}", "phone", t->party);
    /* A browser's call files its callee as created by the agent who called. */
    sb_flow_opts_t o = {.user_id = t->outgoing ? t->client_user : NULL,
                        .correlation_id = t->s.h.request_id,
                        .request_id = t->s.h.request_id,
                        .source = "webhook:twilio"};
    int rc = fields != NULL ? sb_flow_contact_create(loops(), t->s.conf->workspace_id, fields,
                                                     SB_FLOW_FIND_OR_CREATE, &o, on_contact, t)
                            : SB_ENOMEM;
    json_decref(fields);
    if (rc != 0)
        fail(t, rc);
}

static bool is_online(const json_t *user_state)
{
    const json_t *p = json_object_get(user_state, "presence");
    return json_is_string(p) && strcmp(json_string_value(p), "online") == 0;
}

static void on_presence(const sb_ask_reply_t *reply, void *data)
{
    vwh_t *t = data;
    if (gone(t))
        return;
    if (reply->status != 0 && reply->status != SB_EREJECTED) {
        sb__wh_reply_ask_error(&t->s.h, reply);
        vwh_free(t);
        return;
    }
    /* Only an agent who said they are online is rung: away and offline agents' callers queue. */
    t->ring = reply->status == 0 && is_online(reply->state);
    find_contact(t);
}

/* Reads a stream (the workspace or a user) for routing; on a synchronous failure answers. */
static void get_stream(vwh_t *t, const char *category, const char *id, sb_ask_cb cb)
{
    char stream[SB_UUID_STRLEN + 16];
    snprintf(stream, sizeof(stream), "%s-%s", category, id);
    sb_ask_opts_t o;
    ask_opts(t, &o, NULL);
    o.skip_state = false;
    int rc = sb_actor_get(loops(), stream, &o, cb, t);
    if (rc != 0)
        fail(t, rc);
}

/* The number's owner, read from the workspace actor itself (not the cached configuration): an
 * assignment made a moment ago routes the next call. */
static void on_workspace(const sb_ask_reply_t *reply, void *data)
{
    vwh_t *t = data;
    if (gone(t))
        return;
    if (reply->status != 0) {
        sb__wh_reply_ask_error(&t->s.h, reply);
        vwh_free(t);
        return;
    }
    const json_t *n = json_object_get(json_object_get(reply->state, "numbers"), t->route_number);
    const json_t *owner = json_object_get(n, "assigned_to");
    if (json_is_string(owner) &&
        json_object_get(json_object_get(reply->state, "members"), json_string_value(owner)) != NULL) {
        snprintf(t->agent, sizeof(t->agent), "%s", json_string_value(owner));
        get_stream(t, "user", t->agent, on_presence);
        return;
    }
    find_contact(t); /* nobody owns the number: the queue */
}

/* The number a member's browser calls from: the lowest number assigned to them, else the
 * workspace's first number. */
static void caller_id_of(const sb_wsconf_t *conf, const char *user, char out[SB_PHONE_MAX])
{
    const char *key;
    const json_t *v;
    out[0] = '\0';
    json_object_foreach(json_object_get(conf->state, "numbers"), key, v)
    {
        const char *a = json_string_value(json_object_get(v, "assigned_to"));
        if (a != NULL && strcmp(a, user) == 0 && (out[0] == '\0' || strcmp(key, out) < 0))
            snprintf(out, SB_PHONE_MAX, "%s", key);
    }
    if (out[0] == '\0')
        snprintf(out, SB_PHONE_MAX, "%s", conf->first_number);
}

static void hang_up(vwh_t *t, const char *message)
{
    char *xml = NULL;
    size_t len = 0;
    int rc = sb_wh_twiml_hangup(message, &xml, &len);
    reply_twiml(t, rc, xml, len);
}

static void start_call(vwh_t *t)
{
    sb_wh_call_id(t->call.call_sid, t->call_id);
    if (t->outgoing) {
        if (json_object_get(json_object_get(t->s.conf->state, "members"), t->client_user) == NULL) {
            hang_up(t, "This browser is not allowed to place calls for this workspace.");
            return;
        }
        const char *to = t->call.to;
        if (strcmp(to, SB_WH_VOICE_TAKE_QUEUE) == 0) {
            /* The agent takes the next waiting caller: nothing to record until Twilio connects
             * them (the dequeued callback names the caller's call). */
            sb_wh_voice_ctx_t v = {t->s.h.cfg->public_url, t->s.conf->workspace_id, NULL};
            char *xml = NULL;
            size_t len = 0;
            int rc = sb_wh_twiml_take_queue(&v, t->client_user, &xml, &len);
            reply_twiml(t, rc, xml, len);
            return;
        }
        if (sb_phone_normalize(to, strlen(to), t->s.conf->default_country, t->party) != 0) {
            hang_up(t, "The number you dialled is not a valid phone number.");
            return;
        }
        caller_id_of(t->s.conf, t->client_user, t->caller_id);
        if (t->caller_id[0] == '\0') {
            hang_up(t, "This workspace has no phone number to call from.");
            return;
        }
        find_contact(t);
        return;
    }
    /* Inbound: an unusual caller id (a short code, "anonymous") is a call without a contact. */
    if (!sb_phone_is_e164(t->call.from))
        t->party[0] = '\0';
    else
        snprintf(t->party, sizeof(t->party), "%s", t->call.from);
    get_stream(t, "workspace", t->s.conf->workspace_id, on_workspace);
}

/* ---- the dial action ---------------------------------------------------------------------------- */

static void on_dial_recorded(const sb_ask_reply_t *reply, void *data)
{
    vwh_t *t = data;
    if (gone(t))
        return;
    if (!settled(reply)) {
        sb__wh_reply_ask_error(&t->s.h, reply);
        vwh_free(t);
        return;
    }
    if (t->ring || t->outgoing) { /* answered, or a browser's call that ended: nothing follows */
        hang_up(t, NULL);
        return;
    }
    sb_wh_voice_ctx_t v = {t->s.h.cfg->public_url, t->s.conf->workspace_id, t->call_id};
    char *xml = NULL;
    size_t len = 0;
    int rc = sb_wh_twiml_enqueue(&v, &xml, &len);
    reply_twiml(t, rc, xml, len);
}

static void dial_ended(vwh_t *t)
{
    const char *s = t->call.dial_status;
    json_t *cmd;
    t->outgoing = t->ids.outgoing;
    t->ring = strcmp(s, "completed") == 0 || strcmp(s, "answered") == 0; /* someone answered */
    if (t->ring) {
        /* Normally recorded already by the leg's "answered" callback; this one may come first. */
        cmd =
            json_pack("{s:s, s:s?}", "type", "AnswerCall", "agent_id", t->ids.agent[0] ? t->ids.agent : NULL);
    } else if (t->outgoing) {
        cmd = json_pack("{s:s, s:s}", "type", "RecordCallStatus", "status", s);
    } else {
        char queue[SB_VOICE_QUEUE_LEN + 1];
        sb_voice_queue(t->s.conf->workspace_id, queue);
        cmd = json_pack("{s:s, s:s, s:s}", "type", "EnqueueCall", "queue", queue, "reason", s);
    }
    ask_call(t, cmd, NULL, on_dial_recorded);
}

/* ---- a caller taken from the queue ------------------------------------------------------------- */

static void on_dequeued(const sb_ask_reply_t *reply, void *data);

static void on_call_by_sid(sb_pg_req_t *req, int status)
{
    vwh_t *t = req->data;
    if (gone(t))
        return;
    if (status != 0) {
        fail(t, status);
        return;
    }
    PGresult *r = req->results[0];
    if (PQntuples(r) != 1 || PQgetlength(r, 0, 0) != SB_UUID_STRLEN) {
        sb__wh_reply_twiml(&t->s.h); /* a caller we do not know: connect them all the same */
        vwh_free(t);
        return;
    }
    snprintf(t->call_id, sizeof(t->call_id), "%s", PQgetvalue(r, 0, 0));
    ask_call(t, json_pack("{s:s, s:s}", "type", "AnswerCall", "agent_id", t->ids.agent), NULL, on_dequeued);
}

/* A call whose id is not derived from its CallSid (an outbound call, placed through Calls.json,
 * that call control sent back to the queue): found through the calls read model's call_sid index.
 * Its sid was recorded when it was dialled, long before it could wait in the queue, so the read
 * model has it. */
static void find_by_sid(vwh_t *t)
{
    const char *sid = t->call.call_sid;
    sb_loop_t *loop = sb_loop_current();
    if (sid == NULL || loop == NULL || loop->db == NULL) {
        sb__wh_reply_twiml(&t->s.h);
        vwh_free(t);
        return;
    }
    t->looked_up = true;
    t->params[0] = sid;
    t->params[1] = t->s.conf->workspace_id;
    sb_pg_req_init(&t->req,
                   "SELECT id::text FROM calls.calls WHERE call_sid = $1 AND workspace_id = $2::uuid "
                   "ORDER BY started_at DESC LIMIT 1",
                   2, t->params, on_call_by_sid, t);
    t->req.stmts[0].name = "voice_call_by_sid";
    sb_pg_submit(loop->db, &t->req);
}

static void on_dequeued(const sb_ask_reply_t *reply, void *data)
{
    vwh_t *t = data;
    if (gone(t))
        return;
    if (!t->looked_up && reply->status == SB_EREJECTED && reply->err != NULL && reply->err->status == 404) {
        find_by_sid(t);
        return;
    }
    if (!settled(reply)) {
        sb__wh_reply_ask_error(&t->s.h, reply);
        vwh_free(t);
        return;
    }
    sb__wh_reply_twiml(&t->s.h); /* nothing to play: connect them */
    vwh_free(t);
}

/* Twilio asks the <Queue> url for the waiting caller's call just before connecting it to the agent
 * who dialled the queue: the caller is answered, by that agent. */
static void dequeued(vwh_t *t)
{
    if (t->ids.agent[0] == '\0') {
        sb__wh_reply_error(&t->s.h, 400, "invalid", "the agent is missing from the URL", "a");
        vwh_free(t);
        return;
    }
    ask_call(t, json_pack("{s:s, s:s}", "type", "AnswerCall", "agent_id", t->ids.agent), NULL, on_dequeued);
}

/* ---- status and recording callbacks ---------------------------------------------------------------- */

static void on_recorded(const sb_ask_reply_t *reply, void *data)
{
    vwh_t *t = data;
    if (gone(t))
        return;
    if (!settled(reply)) {
        sb__wh_reply_ask_error(&t->s.h, reply);
        vwh_free(t);
        return;
    }
    if (reply->status != 0)
        sb_log_debug("webhooks", "%s for call %s recorded nothing: %s", kind_names[t->s.kind], t->call_id,
                     reply->err->code);
    reply_ok(t);
}

static void status_callback(vwh_t *t)
{
    const sb_wh_call_t *c = &t->call;
    json_t *cmd = NULL;
    if (c->call_status == NULL) {
        sb__wh_reply_malformed(&t->s.h, "CallStatus");
        vwh_free(t);
        return;
    }
    if (c->parent_call_sid != NULL) {
        /* The leg our <Dial> placed (the agent's browser, or the number a browser called): it tells
         * who answered; how the call ends is the parent's callback and the dial action. */
        if (strcmp(c->call_status, "ringing") == 0)
            cmd = json_pack("{s:s, s:s}", "type", "RecordCallStatus", "status", "ringing");
        else if (strcmp(c->call_status, "in-progress") == 0)
            cmd = json_pack("{s:s, s:s?}", "type", "AnswerCall", "agent_id",
                            t->ids.agent[0] ? t->ids.agent : NULL);
        else {
            reply_ok(t);
            return;
        }
    } else {
        cmd = json_pack("{s:s, s:s, s:s}", "type", "RecordCallStatus", "status", c->call_status, "call_sid",
                        c->call_sid);
    }
    ask_call(t, cmd, NULL, on_recorded);
}

static void recording_callback(vwh_t *t)
{
    const sb_wh_call_t *c = &t->call;
    if (c->recording_status != NULL && strcmp(c->recording_status, "completed") != 0) {
        reply_ok(t); /* in-progress, absent, failed: nothing to listen to */
        return;
    }
    if (c->recording_url == NULL) {
        sb__wh_reply_malformed(&t->s.h, "RecordingUrl");
        vwh_free(t);
        return;
    }
    json_t *cmd =
        json_pack("{s:s, s:s, s:I, s:s?}", "type", "RecordCallRecording", "url", c->recording_url,
                  "duration_seconds", (json_int_t)(c->recording_duration < 0 ? 0 : c->recording_duration),
                  "recording_sid", c->recording_sid);
    ask_call(t, cmd, NULL, on_recorded);
}

/* ---- verification and routing ------------------------------------------------------------------------ */

static void proceed(vwh_t *t)
{
    /* The call our ids name; else the one its CallSid names (for a <Dial> leg: its parent's). */
    if (t->ids.call[0])
        snprintf(t->call_id, sizeof(t->call_id), "%s", t->ids.call);
    else
        sb_wh_call_id(t->call.parent_call_sid != NULL ? t->call.parent_call_sid : t->call.call_sid,
                      t->call_id);
    switch (t->s.kind) {
    case K_VOICE:
        start_call(t);
        return;
    case K_HOLD: {
        char *xml = NULL;
        size_t len = 0;
        int rc = t->ids.room ? sb_wh_twiml_hold_room(&xml, &len) : sb_wh_twiml_hold(&xml, &len);
        reply_twiml(t, rc, xml, len);
        return;
    }
    case K_DIAL:
        if (t->call.dial_status == NULL) {
            sb__wh_reply_malformed(&t->s.h, "DialCallStatus");
            vwh_free(t);
            return;
        }
        dial_ended(t);
        return;
    case K_STATUS:
        status_callback(t);
        return;
    case K_RECORDING:
        recording_callback(t);
        return;
    case K_DEQUEUED:
        dequeued(t);
        return;
    }
}

static void on_conf(int status, const sb_wsconf_t *conf, void *data);

static bool reload(vwh_t *t)
{
    if (t->s.reloaded)
        return false;
    t->s.reloaded = true;
    int rc = t->route_ws[0] ? sb_wsconf_get(t->route_ws, SB_WSCONF_RELOAD, on_conf, t)
                            : sb_wsconf_route(t->route_number, SB_WSCONF_RELOAD, on_conf, t);
    return rc == 0;
}

static void verify(vwh_t *t, const sb_wsconf_t *conf, bool may_reload)
{
    const char *why = NULL;
    if (!conf->twilio)
        why = "twilio is not configured for the workspace";
    else if (strcmp(conf->account_sid, t->call.account_sid) != 0)
        why = "AccountSid is not the workspace's account";
    else if (!sb_twilio_sig_check(conf->auth_token, t->s.url, t->s.url_len, &t->s.form, t->s.sig,
                                  t->s.sig_len))
        why = "X-Twilio-Signature does not match";
    if (why != NULL) {
        if (!may_reload || !reload(t))
            forbidden(t, why);
        return;
    }
    t->s.conf = conf;
    sb_wsconf_ref(conf);
    proceed(t);
}

static void on_conf(int status, const sb_wsconf_t *conf, void *data)
{
    vwh_t *t = data;
    if (gone(t))
        return;
    if (status == SB_ENOTFOUND || status == SB_EPERM) {
        forbidden(t, status == SB_ENOTFOUND ? "no workspace has the number or id"
                                            : "the credentials cannot be opened");
        return;
    }
    if (status != 0) {
        fail(t, status);
        return;
    }
    t->s.reloaded = true;
    verify(t, conf, false);
}

/* Which workspace the request is for: our ids when the URL carries them, else a client identity
 * (a browser's call), else the number: To (a call to us), else From (a call we placed). */
static bool choose_route(vwh_t *t)
{
    char ws[SB_UUID_STRLEN + 1], user[SB_UUID_STRLEN + 1];
    const sb_wh_call_t *c = &t->call;
    if (strncmp(c->from, "client:", 7) == 0) {
        if (!sb_voice_identity_parse(c->from, ws, user))
            return false;
        snprintf(t->client_user, sizeof(t->client_user), "%s", user);
        t->outgoing = true;
        snprintf(t->route_ws, sizeof(t->route_ws), "%s", ws);
    } else if (sb_voice_identity_parse(c->to, ws, user)) {
        snprintf(t->route_ws, sizeof(t->route_ws), "%s", ws);
    }
    if (t->ids.workspace[0])
        snprintf(t->route_ws, sizeof(t->route_ws), "%s", t->ids.workspace);
    if (t->route_ws[0])
        return true;
    const char *n = sb_phone_is_e164(c->to) ? c->to : sb_phone_is_e164(c->from) ? c->from : NULL;
    if (n == NULL)
        return false;
    snprintf(t->route_number, sizeof(t->route_number), "%s", n);
    return true;
}

static void route(vwh_t *t)
{
    if (!choose_route(t)) {
        forbidden(t, "no number or identity of ours to route by");
        return;
    }
    /* A call to us must be to one of our numbers (a browser's call names its workspace). */
    if (t->s.kind == K_VOICE && !t->outgoing) {
        if (!sb_phone_is_e164(t->call.to)) {
            sb__wh_reply_malformed(&t->s.h, "To");
            vwh_free(t);
            return;
        }
        snprintf(t->route_number, sizeof(t->route_number), "%s", t->call.to);
        if (!t->ids.workspace[0])
            t->route_ws[0] = '\0';
    }
    const sb_wsconf_t *conf;
    int rc;
    if (t->route_ws[0]) {
        conf = sb_wsconf_peek(t->route_ws);
        rc = conf != NULL ? 0 : sb_wsconf_get(t->route_ws, 0, on_conf, t);
    } else {
        conf = sb_wsconf_route_peek(t->route_number);
        rc = conf != NULL ? 0 : sb_wsconf_route(t->route_number, 0, on_conf, t);
    }
    if (conf != NULL)
        verify(t, conf, sb_wsconf_may_reload(conf));
    else if (rc == SB_EINVAL)
        forbidden(t, "no workspace has the id");
    else if (rc != 0)
        fail(t, rc);
}

/* ---- handlers ------------------------------------------------------------------------------------------ */

/* The call's fields, then our ids from the query (the URLs we give out carry them). */
static int parse(sb__wh_signed_t *s, const char **field)
{
    vwh_t *t = (vwh_t *)s;
    if (sb_wh_parse_call(&s->form, &t->call, field) != 0)
        return SB_EINVAL;
    h2o_req_t *req = s->h.req;
    if (req->query_at != SIZE_MAX)
        sb_wh_parse_voice_ids(req->path.base + req->query_at + 1, req->path.len - req->query_at - 1, &t->ids);
    return 0;
}

#define HANDLER(name, kind)                                                                                  \
    static int name(h2o_req_t *req, const sb_route_params_t *params, void *data)                             \
    {                                                                                                        \
        (void)params;                                                                                        \
        vwh_t *t = sb__wh_begin_signed(req, data, sizeof(vwh_t), kind, parse);                               \
        if (t != NULL)                                                                                       \
            route(t);                                                                                        \
        return 0;                                                                                            \
    }

HANDLER(on_voice, K_VOICE)
HANDLER(on_dial, K_DIAL)
HANDLER(on_hold, K_HOLD)
HANDLER(on_status, K_STATUS)
HANDLER(on_recording, K_RECORDING)
HANDLER(on_dequeued_req, K_DEQUEUED)

int sb__wh_voice_routes(sb_router_t *r, const sb_config_t *cfg)
{
    void *d = (void *)cfg;
    int rc;
    if ((rc = sb_router_add(r, "POST", "/webhooks/twilio/voice", on_voice, d)) != 0 ||
        (rc = sb_router_add(r, "POST", "/webhooks/twilio/voice/dial", on_dial, d)) != 0 ||
        (rc = sb_router_add(r, "POST", "/webhooks/twilio/voice/hold", on_hold, d)) != 0 ||
        (rc = sb_router_add(r, "POST", "/webhooks/twilio/voice/status", on_status, d)) != 0 ||
        (rc = sb_router_add(r, "POST", "/webhooks/twilio/voice/recording", on_recording, d)) != 0 ||
        (rc = sb_router_add(r, "POST", "/webhooks/twilio/voice/dequeued", on_dequeued_req, d)) != 0)
        return rc;
    return 0;
}
