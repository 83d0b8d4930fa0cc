/* Call control at Twilio: what each job does once its call's state and its workspace's
 * configuration are loaded.  See calls.h and docs/voice_control.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "providers/twilio_calls.h"
#include "reactors/calls_int.h"
#include "reactors/messaging_int.h"

#define RETRY_LATER_MS 1000
#define STALE_DIAL_US (10LL * 60 * 1000000) /* an outbound call not dialled within 10 minutes never is */
#define URL_MAX 512

static const char *str(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static bool eq(const char *a, const char *b)
{
    return a != NULL && b != NULL && strcmp(a, b) == 0;
}

static bool is_final(const char *s)
{
    return eq(s, "completed") || eq(s, "busy") || eq(s, "no-answer") || eq(s, "failed") || eq(s, "cancelled");
}

static const sb_config_t *cfg(void)
{
    return sb_messaging_config(sb_messaging_current());
}

/* Our webhook URL for path with the call's ids (and extra, "&k=v..." or ""). */
static void url(const sb__cc_job_t *j, const char *path, const char *extra, char out[URL_MAX])
{
    snprintf(out, URL_MAX, "%s/webhooks/twilio/voice/%s?w=%s&c=%s%s", cfg()->public_url, path,
             j->workspace_id, j->call_id, extra);
}

/* A URL of another handler's, which names the workspace and the call with its own keys. */
static void url_ids(const sb__cc_job_t *j, const char *path, const char *wk, const char *ck,
                    char out[URL_MAX])
{
    snprintf(out, URL_MAX, "%s/webhooks/twilio/voice/%s?%s=%s&%s=%s", cfg()->public_url, path, wk,
             j->workspace_id, ck, j->call_id);
}

/* The workspace's side of the call: the number it was made from or to, else the first number. */
static const char *our_number(const sb__cc_job_t *j)
{
    const char *n = eq(str(j->state, "direction"), "outbound") ? str(j->state, "from") : str(j->state, "to");
    if (n != NULL && n[0] == '+')
        return n;
    return j->conf->first_number[0] != '\0' ? j->conf->first_number : NULL;
}

static bool client(sb__cc_job_t *j, sb_twilio_t *tw, const sb_http_retry_t *retry)
{
    sb_http_client_t *http = sb_http_client_get(j->cc->loop);
    const sb_wsconf_t *c = j->conf;
    if (http == NULL || sb_twilio_init(tw, http, cfg()->twilio_api_base, c->account_sid, c->auth_token) != 0)
        return false;
    if (c->api_key_sid[0] != '\0' && c->api_key_secret[0] != '\0' &&
        sb_twilio_use_api_key(tw, c->api_key_sid, c->api_key_secret) != 0)
        return false;
    tw->retry = retry;
    /* A leg must not be created twice: libcurl resends on a dead reused connection. */
    tw->fresh_connection = retry == &j->cc->create_retry;
    return true;
}

static void failed_request(sb__cc_job_t *j, const char *what, const sb_twilio_result_t *res)
{
    j->cc->stats.failures++;
    sb_log_warn("calls", "call %s: %s failed: status=%ld code=%d %s", j->call_id, what, res->status,
                res->code, res->message);
}

/* ---- steps of several requests ----------------------------------------------------------------- */

static void next_step(sb__cc_job_t *j);

static void on_leg(const sb_twilio_result_t *res, void *data)
{
    sb__cc_job_t *j = data;
    j->tw = NULL;
    if (!sb__cc_back(j))
        return;
    if (res->error == 0)
        sb_log_debug("calls", "call %s: leg %s created sid=%s", j->call_id, j->ref, res->sid ? res->sid : "");
    else
        failed_request(j, j->ref, res);
    next_step(j);
}

/* ---- the outbound dial -------------------------------------------------------------------------- */

static void record_dial(sb__cc_job_t *j);

static void on_dial_recorded(const sb_ask_reply_t *reply, void *data)
{
    sb__cc_job_t *j = data;
    if (!sb__cc_back(j))
        return;
    if (reply->status != 0 && reply->status != SB_EREJECTED) {
        sb__cc_later(j, RETRY_LATER_MS, record_dial);
        return;
    }
    sb__cc_done(j);
}

/* The outcome: ref holds the CallSid, or "" when the dial failed. */
static void record_dial(sb__cc_job_t *j)
{
    json_t *cmd = j->ref[0] != '\0' ? json_pack("{s:s, s:s, s:s}", "type", "RecordCallStatus", "status",
                                                "queued", "call_sid", j->ref)
                                    : json_pack("{s:s, s:s}", "type", "RecordCallStatus", "status", "failed");
    sb__cc_ask(j, cmd, on_dial_recorded);
}

static void on_dialled(const sb_twilio_result_t *res, void *data)
{
    sb__cc_job_t *j = data;
    j->tw = NULL;
    if (!sb__cc_back(j))
        return;
    j->cc->stats.requests++;
    if (res->error == 0 && sb_twilio_sid_is_valid(res->sid, "CA")) {
        snprintf(j->ref, sizeof j->ref, "%s", res->sid);
        record_dial(j);
        return;
    }
    failed_request(j, "dialling the customer", res);
    if (res->error == SB_ECODEC || (res->http != NULL && res->http->error != 0 && res->http->sent)) {
        /* It may have been placed: its status callbacks (which name our call) will say so. */
        sb__cc_done(j);
        return;
    }
    j->ref[0] = '\0';
    record_dial(j);
}

static void dial(sb__cc_job_t *j)
{
    sb_twilio_t tw;
    char connect[URL_MAX], status[URL_MAX];
    static const char *const events[] = {"initiated", "ringing", "answered", "completed"};
    const char *from = our_number(j), *to = str(j->state, "to");
    url(j, "calls/connect", "", connect);
    url_ids(j, "status", "w", "call", status);
    sb_twilio_call_t c = {.to = to,
                          .from = from,
                          .url = connect,
                          .status_callback = status,
                          .status_events = events,
                          .n_events = 4,
                          .timeout_s = 30};
    if (from == NULL || to == NULL || !client(j, &tw, &j->cc->create_retry)) {
        sb_log_warn("calls", "call %s: no number to call from, or no Twilio client", j->call_id);
        j->ref[0] = '\0';
        record_dial(j);
        return;
    }
    j->busy = true;
    int rc = sb_twilio_create_call(&tw, &c, on_dialled, j, &j->tw);
    sb_twilio_clear(&tw);
    if (rc != 0) {
        j->busy = false;
        j->ref[0] = '\0';
        record_dial(j);
    }
}

/* ---- creating a leg (after its attempt is recorded) ----------------------------------------------- */

static void on_attempt(const sb_ask_reply_t *reply, void *data)
{
    sb__cc_job_t *j = data;
    if (!sb__cc_back(j))
        return;
    if (reply->status == SB_EREJECTED) {
        /* "attempted": made already (before a restart); anything else: the call cannot have it. */
        sb_log_info("calls", "call %s: %s not made: %s", j->call_id, j->ref,
                    reply->err ? reply->err->code : "");
        next_step(j);
        return;
    }
    if (reply->status != 0) {
        j->step--; /* the same step again */
        sb__cc_later(j, RETRY_LATER_MS, next_step);
        return;
    }
    if (strcmp(j->type, "CallInitiated") == 0) {
        dial(j);
        return;
    }
    static const char *const completed[] = {"completed"};
    sb_twilio_t tw;
    const char *from = our_number(j);
    sb_twilio_call_t c = {.to = j->leg_to,
                          .from = from,
                          .twiml = j->leg_twiml,
                          .url = j->leg_url[0] ? j->leg_url : NULL,
                          .status_callback = j->leg_cb[0] ? j->leg_cb : NULL,
                          .status_events = completed,
                          .n_events = j->leg_cb[0] ? 1 : 0,
                          .timeout_s = SB_CALLS_RING_SECONDS};
    if (from == NULL || !client(j, &tw, &j->cc->create_retry)) {
        sb_log_warn("calls", "call %s: %s: no number to call from, or no Twilio client", j->call_id, j->ref);
        next_step(j);
        return;
    }
    j->busy = true;
    j->cc->stats.requests++;
    int rc = sb_twilio_create_call(&tw, &c, on_leg, j, &j->tw);
    sb_twilio_clear(&tw);
    if (rc != 0) {
        j->busy = false;
        sb_log_warn("calls", "call %s: %s cannot be requested: %s", j->call_id, j->ref, sb_strerror(rc));
        next_step(j);
    }
}

/* Records the attempt of the leg described by j->leg_* (to, and twiml (taken) or url; a status
 * callback when cb is not NULL) under ref, then creates it. */
static void create_leg(sb__cc_job_t *j, const char *ref, const char *to, char *twiml, const char *url_,
                       const char *cb)
{
    snprintf(j->leg_to, sizeof j->leg_to, "%s", to);
    free(j->leg_twiml);
    j->leg_twiml = twiml;
    snprintf(j->leg_url, sizeof j->leg_url, "%s", url_ ? url_ : "");
    snprintf(j->leg_cb, sizeof j->leg_cb, "%s", cb ? cb : "");
    if (j->leg_twiml == NULL && j->leg_url[0] == '\0') {
        next_step(j);
        return;
    }
    snprintf(j->ref, sizeof j->ref, "%s", ref);
    sb__cc_ask(j, json_pack("{s:s, s:s}", "type", "RecordDialAttempt", "ref", ref), on_attempt);
}

/* ---- redirecting the customer's leg ------------------------------------------------------------------ */

static void on_updated(const sb_twilio_result_t *res, void *data)
{
    sb__cc_job_t *j = data;
    j->tw = NULL;
    if (!sb__cc_back(j))
        return;
    j->cc->stats.requests++;
    if (res->error != 0)
        failed_request(j, j->type, res); /* 404: the call ended meanwhile; others: retries are spent */
    next_step(j);
}

/* twiml (taken, may be NULL: allocation failure) or, when hangup, Status=completed. */
static void update(sb__cc_job_t *j, char *twiml, bool hangup)
{
    const char *sid = str(j->state, "call_sid");
    sb_twilio_t tw;
    sb_twilio_call_update_t u = {.twiml = twiml, .complete = hangup};
    if ((!hangup && twiml == NULL) || !sb_twilio_sid_is_valid(sid, "CA") ||
        !client(j, &tw, &j->cc->update_retry)) {
        sb_log_warn("calls", "call %s: %s cannot be sent (no CallSid, or no Twilio client)", j->call_id,
                    j->type);
        free(twiml);
        next_step(j);
        return;
    }
    j->busy = true;
    int rc = sb_twilio_update_call(&tw, sid, &u, on_updated, j, &j->tw);
    sb_twilio_clear(&tw);
    free(twiml);
    if (rc != 0) {
        j->busy = false;
        sb_log_warn("calls", "call %s: %s cannot be requested: %s", j->call_id, j->type, sb_strerror(rc));
        next_step(j);
    }
}

/* ---- the jobs ----------------------------------------------------------------------------------------- */

/* The customer back with agent (a member id, or NULL): ringing them, then the queue. */
static char *back_to(const sb__cc_job_t *j, const char *agent)
{
    char endpoint[96], action[URL_MAX], queue[SB_CALLS_NAME_MAX];
    if (agent != NULL && sb_twilio_calls_client(j->workspace_id, agent, endpoint, sizeof endpoint)) {
        url(j, "calls/fallback", "&s=2", action);
        return sb_twiml_calls_dial(endpoint, NULL, action);
    }
    char wait[URL_MAX];
    snprintf(wait, sizeof wait, "%s/webhooks/twilio/voice/hold?w=%s", cfg()->public_url, j->workspace_id);
    sb_twilio_calls_queue(j->workspace_id, queue);
    return sb_twiml_calls_enqueue(queue, wait);
}

static void on_requeued(const sb_ask_reply_t *reply, void *data)
{
    sb__cc_job_t *j = data;
    if (!sb__cc_back(j))
        return;
    if (reply->status != 0 && reply->status != SB_EREJECTED) {
        j->step--; /* record it again */
        sb__cc_later(j, RETRY_LATER_MS, next_step);
        return;
    }
    next_step(j);
}

/* The endpoint of a transfer target: a member's browser or a number. */
static bool target(const sb__cc_job_t *j, const json_t *d, char *out, size_t cap)
{
    const char *agent = str(d, "to_agent"), *number = str(d, "to_number");
    if (agent != NULL)
        return sb_twilio_calls_client(j->workspace_id, agent, out, cap);
    if (number != NULL && strlen(number) < cap) {
        snprintf(out, cap, "%s", number);
        return true;
    }
    return false;
}

/* Each job is a short sequence of steps; next_step runs the one after j->step (0: the first). */
static void next_step(sb__cc_job_t *j)
{
    int step = j->step++;
    const json_t *d = j->data, *st = j->state;
    const char *type = j->type, *status = str(st, "status");
    char room[SB_CALLS_NAME_MAX], endpoint[96], to[96], extra[64], ref[96], link[URL_MAX];

    if (strcmp(type, "CallInitiated") == 0) {
        if (step > 0)
            goto done;
        /* Only an outbound call the API asked for (no leg yet) is dialled here; inbound calls and
         * browser calls arrive with their CallSid. */
        int64_t started = 0;
        sb_clock_parse_rfc3339(str(st, "started_at") ? str(st, "started_at") : "", &started);
        if (!eq(str(d, "direction"), "outbound") || str(d, "call_sid") != NULL ||
            str(st, "call_sid") != NULL || !eq(status, "queued"))
            goto done;
        if (started > 0 && sb_clock_now_us() - started > STALE_DIAL_US) {
            sb_log_warn("calls", "call %s: not dialled in time, left alone", j->call_id);
            goto done;
        }
        if (!j->conf->twilio) {
            /* Twilio was cleared since the call was asked for: it cannot be placed. */
            sb_log_info("calls", "call %s: Twilio is not set up any more, the call fails", j->call_id);
            j->ref[0] = '\0';
            record_dial(j);
            return;
        }
        snprintf(j->ref, sizeof j->ref, "dial");
        sb__cc_ask(j, json_pack("{s:s, s:s}", "type", "RecordDialAttempt", "ref", "dial"), on_attempt);
        return;
    }
    if (is_final(status))
        goto done; /* over: nothing to change at Twilio */
    if (!j->conf->twilio) {
        sb_log_info("calls", "call %s: %s needs Twilio, which the workspace has not set up", j->call_id,
                    j->type);
        goto done;
    }

    if (strcmp(type, "CallParked") == 0) {
        const json_t *parked = json_object_get(st, "parked");
        if (step > 0 || !eq(status, "parked") || !eq(str(parked, "parked_at"), str(d, "parked_at")))
            goto done; /* unparked (or parked again) since: a later job says where it is */
        sb_twilio_calls_park_room(j->call_id, room);
        update(j, sb_twiml_calls_hold(room), false);
        return;
    }
    if (strcmp(type, "CallUnparked") == 0) {
        const char *agent = str(d, "agent_id");
        if (step > 0 || agent == NULL || !sb_twilio_calls_client(j->workspace_id, agent, to, sizeof to))
            goto done;
        const char *at = str(d, "unparked_at");
        sb_twilio_calls_park_room(j->call_id, room);
        snprintf(ref, sizeof ref, "unpark:%lld", (long long)j->version);
        /* If the agent does not answer, the call goes back to the lot (calls/unanswered). */
        snprintf(extra, sizeof extra, "&u=%s", at != NULL && strlen(at) < 40 ? at : "");
        url(j, "calls/unanswered", extra, link);
        create_leg(j, ref, to, sb_twiml_calls_join(room, true), NULL, at != NULL ? link : NULL);
        return;
    }
    if (strcmp(type, "CallTransferred") == 0) {
        long long n = (long long)json_integer_value(json_object_get(d, "transfer"));
        bool warm = eq(str(d, "mode"), "warm");
        if (!target(j, d, endpoint, sizeof endpoint))
            goto done;
        if (!warm) {
            if (step > 0)
                goto done;
            snprintf(extra, sizeof extra, "&t=%lld&s=1", n);
            url(j, "calls/fallback", extra, link);
            update(j, sb_twiml_calls_dial(endpoint, our_number(j), link), false);
            return;
        }
        /* Warm: the customer waits in the call's room; the first agent and the target are rung
         * into it; the first agent introduces the caller and hangs up, the others stay. */
        sb_twilio_calls_room(j->call_id, room);
        const char *first = str(d, "from_agent");
        if (step == 0) {
            update(j, sb_twiml_calls_hold(room), false);
            return;
        }
        if (step == 1) {
            if (first == NULL || !sb_twilio_calls_client(j->workspace_id, first, to, sizeof to)) {
                next_step(j);
                return;
            }
            snprintf(ref, sizeof ref, "warm:%lld:first", n);
            create_leg(j, ref, to, sb_twiml_calls_join(room, false), NULL, NULL);
            return;
        }
        if (step == 2) {
            snprintf(extra, sizeof extra, "&t=%lld", n);
            url(j, "calls/target", extra, link);
            snprintf(ref, sizeof ref, "warm:%lld:target", n);
            create_leg(j, ref, endpoint, sb_twiml_calls_join(room, false), NULL, link);
            return;
        }
        goto done;
    }
    if (strcmp(type, "CallTransferFailed") == 0) {
        /* A cold transfer's <Dial> action answers with the way back itself; a warm one's target
         * leg is separate, so the customer is redirected. */
        if (!eq(str(d, "mode"), "warm"))
            goto done;
        if (step == 0) {
            update(j, back_to(j, str(d, "back_to")), false);
            return;
        }
        if (step == 1 && str(d, "back_to") == NULL) {
            /* Nobody to go back to: the caller waits in the queue, with no agent. */
            char queue[SB_CALLS_NAME_MAX];
            sb_twilio_calls_queue(j->workspace_id, queue);
            sb__cc_ask(
                j, json_pack("{s:s, s:s, s:s}", "type", "RequeueCall", "queue", queue, "reason", "no-answer"),
                on_requeued);
            return;
        }
        goto done;
    }
    if (strcmp(type, "CallHangupRequested") == 0) {
        if (step > 0)
            goto done;
        update(j, NULL, true);
        return;
    }
    if (strcmp(type, SB__CC_RING) == 0) {
        const json_t *parked = json_object_get(st, "parked");
        const char *parker = str(d, "parked_by");
        if (step > 0 || !eq(status, "parked") || !eq(str(parked, "parked_at"), str(d, "parked_at")) ||
            parker == NULL || !sb_twilio_calls_client(j->workspace_id, parker, to, sizeof to))
            goto done;
        snprintf(extra, sizeof extra, "&a=%s", parker);
        url(j, "calls/reclaim", extra, link);
        snprintf(ref, sizeof ref, "ring:%s", str(d, "parked_at"));
        j->cc->stats.rung++;
        create_leg(j, ref, to, NULL, link, NULL);
        return;
    }
done:
    sb__cc_done(j);
}

void sb__cc_act(sb__cc_job_t *j)
{
    j->step = 0;
    next_step(j);
}
