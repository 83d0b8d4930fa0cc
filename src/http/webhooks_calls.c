/* The TwiML URLs call control gives Twilio (docs/voice.md, "Call control"), all POST, form-encoded, signed:
 *
 *   /webhooks/twilio/voice/calls/connect?w=&c=        an outbound call's customer answered: the call
 *                                                     is answered (RecordCallStatus in-progress);
 *                                                     TwiML dials the agent's browser (else the queue)
 *   /webhooks/twilio/voice/calls/fallback?w=&c=&t=&s= a <Dial>'s action: the target (s=1, transfer t)
 *                                                     or the agent (s=2) did not answer: FailTransfer,
 *                                                     then TwiML back to the first agent, then the
 *                                                     workspace's queue
 *   /webhooks/twilio/voice/calls/target?w=&c=&t=      a warm transfer target's leg ended: FailTransfer
 *                                                     when it never answered (call control then takes
 *                                                     the customer back to the first agent)
 *   /webhooks/twilio/voice/calls/reclaim?w=&c=&a=     the parker answered the parking-limit ring:
 *                                                     UnparkCall for them, TwiML joining that call
 *   /webhooks/twilio/voice/calls/unanswered?w=&c=&u=  the leg ringing an unparking agent ended
 *                                                     unanswered: ReturnToLot (the call is parked
 *                                                     again, same slot if still free, same parker)
 *
 * w and c (the workspace and the call) are ours, in the URL Twilio signs: the signature is checked
 * with the workspace's auth token and AccountSid must be its account, else 403 and nothing is
 * stored.  A configuration that does not verify is read again once (the token may just have
 * changed). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/park.h"
#include "core/error.h"
#include "core/log.h"
#include "http/response.h"
#include "http/webhooks_int.h"
#include "providers/form.h"
#include "providers/twilio_calls.h"
#include "providers/twilio_sig.h"
#include "reactors/messaging.h"
#include "reactors/wsconf.h"

typedef enum { K_CONNECT, K_FALLBACK, K_TARGET, K_RECLAIM, K_UNANSWERED } kind_t;

typedef struct {
    sb__wh_signed_t s; /* first: the state is freed through it */
    char ws[SB_UUID_STRLEN + 1];
    char call[SB_UUID_STRLEN + 1];
    char agent[SB_UUID_STRLEN + 1]; /* a= */
    long transfer;                  /* t=, 0 when absent */
    char unparked_at[40];           /* u= */
    int stage;                      /* s= */
} cwh_t;

static void cwh_free(cwh_t *t)
{
    sb__wh_signed_free(&t->s);
}

static bool uuid_value(const char *v, size_t n, char out[SB_UUID_STRLEN + 1])
{
    if (n != SB_UUID_STRLEN)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = v[i];
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? ch != '-' : !((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
            return false;
        out[i] = ch;
    }
    out[n] = '\0';
    return true;
}

/* Our query (we wrote it: lowercase uuids and small numbers, nothing escaped).  False when w or c
 * is missing or anything is malformed. */
static bool parse_query(cwh_t *t, const char *q, size_t len)
{
    const char *end = q + len;
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(stop - q));
        if (eq == NULL || eq - q != 1)
            return false;
        const char *v = eq + 1;
        size_t n = (size_t)(stop - v);
        switch (*q) {
        case 'w':
            if (!uuid_value(v, n, t->ws))
                return false;
            break;
        case 'c':
            if (!uuid_value(v, n, t->call))
                return false;
            break;
        case 'a':
            if (!uuid_value(v, n, t->agent))
                return false;
            break;
        case 'u':
            if (n == 0 || n >= sizeof t->unparked_at)
                return false;
            for (size_t i = 0; i < n; i++)
                if (strchr("0123456789-:.TZ", v[i]) == NULL || v[i] == '\0')
                    return false;
            memcpy(t->unparked_at, v, n);
            t->unparked_at[n] = '\0';
            break;
        case 't':
        case 's': {
            long x = 0;
            if (n == 0 || n > 6)
                return false;
            for (size_t i = 0; i < n; i++) {
                if (v[i] < '0' || v[i] > '9')
                    return false;
                x = x * 10 + (v[i] - '0');
            }
            if (*q == 't')
                t->transfer = x;
            else
                t->stage = (int)x;
            break;
        }
        default:
            return false;
        }
        q = stop + (amp ? 1 : 0);
        if (amp != NULL && q == end)
            return false; /* a trailing '&': not a URL we wrote */
    }
    return t->ws[0] != '\0' && t->call[0] != '\0';
}

static void reply_xml(cwh_t *t, char *xml)
{
    if (xml == NULL) {
        sb__wh_reply_errcode(&t->s.h, SB_ENOMEM);
    } else if (t->s.h.req != NULL) {
        sb_http_send_body(t->s.h.req, 200, "text/xml", xml, strlen(xml));
    }
    free(xml);
    cwh_free(t);
}

static void ask(cwh_t *t, json_t *cmd, void (*cb)(const sb_ask_reply_t *, void *))
{
    char stream[8 + SB_UUID_STRLEN];
    snprintf(stream, sizeof stream, "call-%s", t->call);
    sb_ask_opts_t opts = {
        .context = t->s.conf->context,
        .correlation_id = t->call,
        .request_id = t->s.h.request_id,
        .source = "webhook:twilio",
        .workspace_id = t->ws,
        .skip_event_data = true,
    };
    int rc = cmd != NULL ? sb_actor_ask(sb_messaging_loops(sb_messaging_current()), stream, cmd, &opts, cb, t)
                         : SB_ENOMEM;
    if (rc != 0) {
        sb__wh_reply_errcode(&t->s.h, rc);
        cwh_free(t);
    }
}

/* The start of an ask's callback: the webhook to answer, or NULL when it is done with — Twilio
 * left, or the ask failed for a reason other than a refusal, answered with that error (Twilio
 * retries a failed request and falls back to its own error message on the call: a transient failure
 * is better answered 503 than with TwiML that ends the call). */
static cwh_t *answerable(const sb_ask_reply_t *reply, void *data)
{
    cwh_t *t = data;
    if (t->s.h.req != NULL && reply->status != 0 && reply->status != SB_EREJECTED)
        sb__wh_reply_ask_error(&t->s.h, reply);
    else if (t->s.h.req != NULL)
        return t;
    cwh_free(t);
    return NULL;
}

static void on_requeued(const sb_ask_reply_t *reply, void *data)
{
    cwh_t *t = answerable(reply, data);
    if (t == NULL)
        return;
    char queue[SB_CALLS_NAME_MAX], wait[512];
    sb_twilio_calls_queue(t->ws, queue);
    snprintf(wait, sizeof wait, "%s/webhooks/twilio/voice/hold?w=%s", t->s.h.cfg->public_url, t->ws);
    reply_xml(t, sb_twiml_calls_enqueue(queue, wait));
}

/* The caller back with agent (a member, or NULL): ringing their browser (a dial whose own fallback
 * is the queue), or, at the second stage or without an agent, the workspace's queue, where the
 * call waits again with no agent (RequeueCall). */
static void back(cwh_t *t, const char *agent)
{
    char endpoint[96], action[512], queue[SB_CALLS_NAME_MAX];
    if (agent != NULL && t->stage < 2 && sb_twilio_calls_client(t->ws, agent, endpoint, sizeof endpoint)) {
        snprintf(action, sizeof action, "%s/webhooks/twilio/voice/calls/fallback?w=%s&c=%s&s=2",
                 t->s.h.cfg->public_url, t->ws, t->call);
        reply_xml(t, sb_twiml_calls_dial(endpoint, NULL, action));
        return;
    }
    const char *why = sb_form_get(&t->s.form, "DialCallStatus");
    if (why == NULL || why[0] == '\0' || strlen(why) > 32)
        why = "no-answer";
    sb_twilio_calls_queue(t->ws, queue);
    ask(t, json_pack("{s:s, s:s, s:s}", "type", "RequeueCall", "queue", queue, "reason", why), on_requeued);
}

/* ---- connect: the customer of an outbound call answered ----------------------------------------------- */

static void on_answered(const sb_ask_reply_t *reply, void *data)
{
    cwh_t *t = answerable(reply, data);
    if (t == NULL)
        return;
    const char *status = reply->state ? json_string_value(json_object_get(reply->state, "status")) : NULL;
    if (reply->status != 0 || status == NULL || strcmp(status, "in-progress") != 0) {
        /* Not ours to connect (ended, another CallSid): let the customer go. */
        reply_xml(t, sb_twiml_calls_gone(NULL));
        return;
    }
    t->stage = 1;
    back(t, json_string_value(json_object_get(reply->state, "agent_id")));
}

/* ---- fallback and target: a transfer target did not answer ------------------------------------------- */

static void on_fallback_recorded(const sb_ask_reply_t *reply, void *data)
{
    cwh_t *t = answerable(reply, data);
    if (t == NULL)
        return;
    if (t->s.kind == K_TARGET) {
        sb__wh_reply_ok(&t->s.h);
        cwh_free(t);
        return;
    }
    /* The call is back with its agent (the state after the transfer failed), or nobody's. */
    back(t, reply->state ? json_string_value(json_object_get(reply->state, "agent_id")) : NULL);
}

static void on_fallback(cwh_t *t)
{
    const char *dial = sb_form_get(&t->s.form, "DialCallStatus");
    if (dial != NULL && (strcmp(dial, "completed") == 0 || strcmp(dial, "answered") == 0)) {
        reply_xml(t, sb_twiml_calls_hangup()); /* they talked, and it is over */
        return;
    }
    const char *reason = dial != NULL && dial[0] != '\0' && strlen(dial) <= 40 ? dial : "no-answer";
    if (t->transfer > 0 && t->stage == 1) {
        ask(t,
            json_pack("{s:s, s:s, s:I}", "type", "FailTransfer", "reason", reason, "transfer",
                      (json_int_t)t->transfer),
            on_fallback_recorded);
        return;
    }
    if (t->stage >= 2) {
        back(t, NULL);
        return;
    }
    char stream[8 + SB_UUID_STRLEN];
    snprintf(stream, sizeof stream, "call-%s", t->call);
    sb_ask_opts_t opts = {.source = "webhook:twilio", .skip_event_data = true};
    if (sb_actor_get(sb_messaging_loops(sb_messaging_current()), stream, &opts, on_fallback_recorded, t) !=
        0) {
        sb__wh_reply_errcode(&t->s.h, SB_EINVAL);
        cwh_free(t);
    }
}

static void on_target(cwh_t *t)
{
    const char *st = sb_form_get(&t->s.form, "CallStatus");
    bool unanswered = st != NULL && (strcmp(st, "no-answer") == 0 || strcmp(st, "busy") == 0 ||
                                     strcmp(st, "failed") == 0 || strcmp(st, "canceled") == 0);
    if (!unanswered || t->transfer <= 0) {
        sb__wh_reply_ok(&t->s.h);
        cwh_free(t);
        return;
    }
    ask(t,
        json_pack("{s:s, s:s, s:I}", "type", "FailTransfer", "reason", st, "transfer",
                  (json_int_t)t->transfer),
        on_fallback_recorded);
}

/* ---- unanswered: the unparking agent did not pick up -------------------------------------------------- */

static void on_returned(const sb_ask_reply_t *reply, void *data)
{
    cwh_t *t = answerable(reply, data);
    if (t == NULL)
        return;
    sb__wh_reply_ok(&t->s.h);
    cwh_free(t);
}

static void on_unanswered(cwh_t *t)
{
    const char *st = sb_form_get(&t->s.form, "CallStatus");
    bool unanswered = st != NULL && (strcmp(st, "no-answer") == 0 || strcmp(st, "busy") == 0 ||
                                     strcmp(st, "failed") == 0 || strcmp(st, "canceled") == 0);
    if (!unanswered || t->unparked_at[0] == '\0') {
        sb__wh_reply_ok(&t->s.h);
        cwh_free(t);
        return;
    }
    /* Back to the lot through the parking flow: its old slot may have been taken meanwhile. */
    sb_park_req_t req = {
        .workspace_id = t->ws,
        .call_id = t->call,
        .command = "ReturnToLot",
        .unparked_at = t->unparked_at,
        .opts = {.context = t->s.conf->context,
                 .correlation_id = t->call,
                 .request_id = t->s.h.request_id,
                 .source = "webhook:twilio"},
    };
    int rc = sb_park_call(sb_messaging_loops(sb_messaging_current()), &req, on_returned, t);
    if (rc != 0) {
        sb__wh_reply_errcode(&t->s.h, rc);
        cwh_free(t);
    }
}

/* ---- reclaim: the parker answered the parking-limit ring ---------------------------------------------- */

static void on_reclaimed(const sb_ask_reply_t *reply, void *data)
{
    cwh_t *t = answerable(reply, data);
    if (t == NULL)
        return;
    if (reply->status != 0) {
        reply_xml(t, sb_twiml_calls_gone("This call is no longer waiting."));
        return;
    }
    char room[SB_CALLS_NAME_MAX];
    sb_twilio_calls_park_room(t->call, room);
    reply_xml(t, sb_twiml_calls_join(room, true));
}

/* ---- verification and dispatch ------------------------------------------------------------------------- */

static void verified(cwh_t *t)
{
    switch (t->s.kind) {
    case K_CONNECT: {
        const char *sid = sb_form_get(&t->s.form, "CallSid");
        ask(t,
            json_pack("{s:s, s:s, s:s?}", "type", "RecordCallStatus", "status", "in-progress", "call_sid",
                      sid),
            on_answered);
        return;
    }
    case K_FALLBACK:
        on_fallback(t);
        return;
    case K_TARGET:
        on_target(t);
        return;
    case K_UNANSWERED:
        on_unanswered(t);
        return;
    case K_RECLAIM:
        if (t->agent[0] == '\0') {
            sb__wh_reply_error(&t->s.h, 400, "invalid", "the agent is missing", "a");
            cwh_free(t);
            return;
        }
        ask(t, json_pack("{s:s, s:s}", "type", "UnparkCall", "agent_id", t->agent), on_reclaimed);
        return;
    }
}

static void forbidden(cwh_t *t, const char *why)
{
    sb_log_info("webhooks", "twilio call control refused: %s id=%s", why, t->s.h.request_id);
    sb__wh_reply_error(&t->s.h, 403, "invalid_signature", "the request could not be verified", NULL);
    cwh_free(t);
}

static void on_conf(int status, const sb_wsconf_t *conf, void *data);

static void verify(cwh_t *t, const sb_wsconf_t *conf)
{
    const char *account = sb_form_get(&t->s.form, "AccountSid");
    const char *why = NULL;
    if (!conf->twilio)
        why = "twilio is not configured for the workspace";
    else if (account == NULL || strcmp(conf->account_sid, account) != 0)
        why = "AccountSid is not the workspace's account";
    else if (!sb_twilio_sig_check(conf->auth_token, t->s.url, t->s.url_len, &t->s.form, t->s.sig,
                                  t->s.sig_len))
        why = "X-Twilio-Signature does not match";
    if (why != NULL) {
        if (!t->s.reloaded) {
            t->s.reloaded = true;
            if (sb_wsconf_get(t->ws, SB_WSCONF_RELOAD, on_conf, t) == 0)
                return;
        }
        forbidden(t, why);
        return;
    }
    t->s.conf = conf;
    sb_wsconf_ref(conf);
    verified(t);
}

static void on_conf(int status, const sb_wsconf_t *conf, void *data)
{
    cwh_t *t = data;
    if (t->s.h.req == NULL) {
        cwh_free(t);
        return;
    }
    if (status == SB_ENOTFOUND || status == SB_EPERM) {
        forbidden(t, status == SB_ENOTFOUND ? "no such workspace" : "the credentials cannot be opened");
        return;
    }
    if (status != 0) {
        sb__wh_reply_errcode(&t->s.h, status);
        cwh_free(t);
        return;
    }
    t->s.reloaded = true;
    verify(t, conf);
}

static int handle(h2o_req_t *req, const sb_config_t *cfg, kind_t kind)
{
    cwh_t *t = sb__wh_begin_signed(req, cfg, sizeof(cwh_t), kind, NULL);
    if (t == NULL)
        return 0;
    bool ids = req->query_at != SIZE_MAX &&
               parse_query(t, req->path.base + req->query_at + 1, req->path.len - req->query_at - 1);
    if (!ids) {
        /* Not a URL we gave out: nothing to verify it against. */
        forbidden(t, "not one of our call control URLs");
        return 0;
    }
    const sb_wsconf_t *conf = sb_wsconf_peek(t->ws);
    if (conf != NULL) {
        verify(t, conf);
        return 0;
    }
    int rc = sb_wsconf_get(t->ws, 0, on_conf, t);
    if (rc != 0) {
        sb__wh_reply_errcode(&t->s.h, rc);
        cwh_free(t);
    }
    return 0;
}

static int on_connect(h2o_req_t *req, const sb_route_params_t *p, void *data)
{
    return handle(req, data, K_CONNECT);
}

static int on_fallback_req(h2o_req_t *req, const sb_route_params_t *p, void *data)
{
    return handle(req, data, K_FALLBACK);
}

static int on_target_req(h2o_req_t *req, const sb_route_params_t *p, void *data)
{
    return handle(req, data, K_TARGET);
}

static int on_unanswered_req(h2o_req_t *req, const sb_route_params_t *p, void *data)
{
    return handle(req, data, K_UNANSWERED);
}

static int on_reclaim(h2o_req_t *req, const sb_route_params_t *p, void *data)
{
    return handle(req, data, K_RECLAIM);
}

int sb__wh_calls_routes(sb_router_t *r, const sb_config_t *cfg)
{
    int rc = sb_router_add(r, "POST", "/webhooks/twilio/voice/calls/connect", on_connect, (void *)cfg);
    if (rc == 0)
        rc = sb_router_add(r, "POST", "/webhooks/twilio/voice/calls/fallback", on_fallback_req, (void *)cfg);
    if (rc == 0)
        rc = sb_router_add(r, "POST", "/webhooks/twilio/voice/calls/target", on_target_req, (void *)cfg);
    if (rc == 0)
        rc = sb_router_add(r, "POST", "/webhooks/twilio/voice/calls/reclaim", on_reclaim, (void *)cfg);
    if (rc == 0)
        rc = sb_router_add(r, "POST", "/webhooks/twilio/voice/calls/unanswered", on_unanswered_req,
                           (void *)cfg);
    return rc;
}
