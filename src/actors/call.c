/* The call decider: one voice call, inbound or outbound, from first ring to hang-up.
 *
 *   queued -> ringing -> in-progress -> (parked <-> in-progress)* -> completed
 *   queued | ringing -> busy | no-answer | failed | cancelled
 *
 * Two sources move a call.  Twilio's status callbacks (RecordCallStatus, AnswerCall) are facts that
 * arrive late, twice or out of order: a repeat or a status behind the current one decides nothing.
 * The team's commands (ParkCall, UnparkCall, TransferCall, HangupCall) are requests: asked of a call
 * in the wrong state they are refused (409 invalid_transition).  The hang-up itself is reported back
 * by Twilio as "completed".
 *
 * State: {"created", "call_id", "workspace_id", "call_sid", "direction", "from", "to", "contact_id",
 *         "agent_id", "status", "started_at", "answered_at", "ended_at", "duration_seconds",
 *         "parked": null | {"slot", "parked_by", "parked_at"}, "transfers", "hangup_requested",
 *         "recordings": [url, ...], "queue" (set once queued by EnqueueCall), "last_transfer"?: {"mode",
 *         "to_agent", "to_number", "from_agent", "failed"}, "dial_attempts"?: [ref, ...], "last_unpark"?:
 *         {"slot", "parked_by", "at"}} */
#include "actors/dutil.h"
#include "actors/kinds.h"
#include "core/error.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#define MAX_SLOT 999
#define MAX_RECORDINGS 20

static const char *const directions[] = {"inbound", "outbound", NULL};
static const char *const modes[] = {"cold", "warm", NULL};
static const char *const callback_statuses[] = {"queued",    "initiated", "ringing",   "in-progress",
                                                "completed", "busy",      "no-answer", "failed",
                                                "canceled",  "cancelled", NULL};

static json_t *call_initial(void)
{
    return json_pack(
        "{s:b, s:n, s:n, s:n, s:n, s:n, s:n, s:n, s:n, s:n, s:n, s:n, s:n, s:n, s:n, s:i, s:b, s:[]}",
        "created", 0, "call_id", "workspace_id", "call_sid", "direction", "from", "to", "contact_id",
        "agent_id", "status", "started_at", "answered_at", "ended_at", "duration_seconds", "parked",
        "transfers", 0, "hangup_requested", 0, "recordings");
}

static bool is_final(const char *s)
{
    return sb__eq(s, "completed") || sb__eq(s, "busy") || sb__eq(s, "no-answer") || sb__eq(s, "failed") ||
           sb__eq(s, "cancelled");
}

static bool is_live(const char *s)
{
    return sb__eq(s, "in-progress") || sb__eq(s, "parked");
}

/* A call endpoint: a phone number (normalised) or a Twilio Client identity "client:<name>". */
static int read_endpoint(const json_t *cmd, const char *key, bool required, const sb_decide_ctx_t *ctx,
                         char out[SB_EMAIL_MAX], sb_derror_t *err)
{
    const char *s;
    out[0] = '\0';
    SB_TRY(required ? sb__need_str(cmd, key, 1, 160, &s, err) : sb__opt_str(cmd, key, 1, 160, &s, err));
    if (s == NULL)
        return 0;
    if (strncmp(s, "client:", 7) == 0) {
        bool ok = s[7] != '\0' && strlen(s) < 160;
        for (const char *p = s + 7; ok && *p; p++)
            ok = isalnum((unsigned char)*p) || strchr("-_.@", *p) != NULL;
        if (!ok)
            return sb_reject(err, 400, "invalid", key, "%s must be a phone number or client:<identity>", key);
        strcpy(out, s);
        return 0;
    }
    return sb__phone(s, sb__ctx_country(ctx), key, out, err);
}

static int read_sid(const json_t *cmd, const char **out, sb_derror_t *err)
{
    SB_TRY(sb__opt_str(cmd, "call_sid", 1, 64, out, err));
    if (*out == NULL)
        return 0;
    bool ok = strlen(*out) == 34 && strncmp(*out, "CA", 2) == 0;
    for (int i = 2; ok && i < 34; i++)
        ok = isxdigit((unsigned char)(*out)[i]) != 0;
    if (!ok)
        return sb_reject(err, 400, "invalid", "call_sid", "call_sid must be CA followed by 32 hex digits");
    return 0;
}

/* An agent: the command's key, else the acting user; it must be a member. */
static int read_agent(const json_t *cmd, const char *key, const sb_decide_ctx_t *ctx, bool required,
                      const char **out, sb_derror_t *err)
{
    SB_TRY(sb__opt_uuid(cmd, key, out, err));
    if (*out == NULL)
        *out = ctx->user_id;
    if (*out == NULL) {
        if (required)
            return sb_reject(err, 400, "required", key, "%s is required", key);
        return 0;
    }
    if (sb__ctx_member(ctx, *out) == NULL)
        return sb_reject(err, 400, "unknown_member", key, "%s is not a member of this workspace", key);
    return 0;
}

static int invalid(sb_derror_t *err, const char *what, const char *status)
{
    return sb_reject(err, 409, "invalid_transition", "", "cannot %s a call that is %s", what,
                     status ? status : "not started");
}

/* ---- commands ----------------------------------------------------------------------------------- */

static int initiate(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx, sb_devents_t *out,
                    sb_derror_t *err)
{
    const char *ws, *direction, *sid, *contact, *agent = NULL;
    char from[SB_EMAIL_MAX], to[SB_EMAIL_MAX], now[SB_RFC3339_LEN];
    if (json_is_true(json_object_get(state, "created")))
        return sb_reject(err, 409, "call_exists", "", "this call already exists");
    SB_TRY(sb__need_uuid(cmd, "workspace_id", &ws, err));
    SB_TRY(sb__need_enum(cmd, "direction", directions, &direction, err));
    SB_TRY(read_endpoint(cmd, "from", true, ctx, from, err));
    SB_TRY(read_endpoint(cmd, "to", true, ctx, to, err));
    SB_TRY(read_sid(cmd, &sid, err));
    SB_TRY(sb__opt_uuid(cmd, "contact_id", &contact, err));
    SB_TRY(sb__opt_uuid(cmd, "agent_id", &agent, err));
    if (agent != NULL && sb__ctx_member(ctx, agent) == NULL)
        return sb_reject(err, 400, "unknown_member", "agent_id",
                         "agent_id is not a member of this workspace");
    sb__now(ctx, now);
    return sb_devents_add(out, "CallInitiated",
                          json_pack("{s:s?, s:s, s:s?, s:s, s:s, s:s, s:s?, s:s?, s:s?, s:s}", "call_id",
                                    ctx->id, "workspace_id", ws, "call_sid", sid, "direction", direction,
                                    "from", from, "to", to, "contact_id", contact, "agent_id", agent, "by",
                                    ctx->user_id, "started_at", now));
}

/* Adds "call_sid" to an event payload when the call learns its sid from this callback. */
static json_t *with_sid(json_t *data, const char *new_sid)
{
    if (data != NULL && new_sid != NULL)
        json_object_set_new(data, "call_sid", json_string(new_sid));
    return data;
}

static int answered(const json_t *state, const char *agent, const char *new_sid, const sb_decide_ctx_t *ctx,
                    sb_devents_t *out)
{
    char now[SB_RFC3339_LEN];
    sb__now(ctx, now);
    if (agent == NULL)
        agent = sb__str(state, "agent_id");
    return sb_devents_add(out, "CallAnswered",
                          with_sid(json_pack("{s:s?, s:s}", "agent_id", agent, "answered_at", now), new_sid));
}

static int completed(const json_t *state, const char *new_sid, const sb_decide_ctx_t *ctx, sb_devents_t *out)
{
    char now[SB_RFC3339_LEN];
    sb__now(ctx, now);
    const char *answered_at = sb__str(state, "answered_at");
    int64_t secs = 0;
    if (answered_at != NULL) {
        int64_t from = sb__time_us(answered_at);
        if (from > 0 && ctx->now_us > from)
            secs = (ctx->now_us - from) / 1000000;
    }
    return sb_devents_add(out, "CallCompleted",
                          with_sid(json_pack("{s:s?, s:s, s:I}", "answered_at", answered_at, "ended_at", now,
                                             "duration_seconds", (json_int_t)secs),
                                   new_sid));
}

/* Twilio's CallStatus callback. */
static int record_status(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx,
                         sb_devents_t *out, sb_derror_t *err)
{
    const char *status, *sid, *agent;
    char now[SB_RFC3339_LEN];
    SB_TRY(sb__need_enum(cmd, "status", callback_statuses, &status, err));
    SB_TRY(read_sid(cmd, &sid, err));
    SB_TRY(sb__opt_uuid(cmd, "agent_id", &agent, err));
    const char *known = sb__str(state, "call_sid"), *cur = sb__str(state, "status");
    if (sid != NULL && known != NULL && strcmp(sid, known) != 0)
        return sb_reject(err, 409, "call_sid_mismatch", "call_sid", "this call has another call sid");
    const char *new_sid = known == NULL ? sid : NULL;
    sb__now(ctx, now);
    if (is_final(cur))
        return 0; /* late or repeated */
    if (strcmp(status, "queued") == 0 || strcmp(status, "initiated") == 0) {
        if (new_sid == NULL)
            return 0;
        return sb_devents_add(out, "CallSidRecorded", json_pack("{s:s}", "call_sid", new_sid));
    }
    if (strcmp(status, "ringing") == 0) {
        if (!sb__eq(cur, "queued"))
            return 0;
        return sb_devents_add(out, "CallRinging", with_sid(json_pack("{s:s}", "at", now), new_sid));
    }
    if (strcmp(status, "in-progress") == 0) {
        if (is_live(cur))
            return 0;
        return answered(state, agent, new_sid, ctx, out);
    }
    if (strcmp(status, "completed") == 0)
        return completed(state, new_sid, ctx, out);
    /* busy, no-answer, failed, cancelled: only a call that never connected ends this way. */
    if (is_live(cur))
        return invalid(err, "fail", cur);
    const char *reason = strcmp(status, "canceled") == 0 ? "cancelled" : status;
    return sb_devents_add(out, "CallFailed",
                          with_sid(json_pack("{s:s, s:s}", "reason", reason, "ended_at", now), new_sid));
}

/* An agent picked up (the voice webhook's dial result, or a browser client's accept). */
static int answer(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx, sb_devents_t *out,
                  sb_derror_t *err)
{
    const char *agent;
    SB_TRY(read_agent(cmd, "agent_id", ctx, false, &agent, err));
    const char *cur = sb__str(state, "status");
    if (is_final(cur) || is_live(cur))
        return 0; /* already answered, or over: a late report */
    return answered(state, agent, NULL, ctx, out);
}

/* No agent took the call (nobody online, or the agent's browser did not answer): the caller waits in
 * the workspace's queue.  Only a call still waiting for someone can be queued; a late report about
 * a call already answered or over decides nothing. */
static int enqueue(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx, sb_devents_t *out,
                   sb_derror_t *err)
{
    const char *queue, *reason, *cur = sb__str(state, "status");
    SB_TRY(sb__need_str(cmd, "queue", 1, 64, &queue, err));
    SB_TRY(sb__opt_str(cmd, "reason", 1, 32, &reason, err));
    if (is_final(cur) || is_live(cur))
        return 0;
    if (sb__eq(cur, "queued") && sb__str(state, "agent_id") == NULL && sb__eq(sb__str(state, "queue"), queue))
        return 0; /* already waiting there */
    char now[SB_RFC3339_LEN];
    sb__now(ctx, now);
    return sb_devents_add(out, "CallEnqueued",
                          json_pack("{s:s, s:s?, s:s?, s:s}", "queue", queue, "reason", reason, "from_agent",
                                    sb__str(state, "agent_id"), "at", now));
}

/* Call control sent the caller back to the workspace's queue (a transfer target and the first agent
 * did not answer, or an outbound call's agent did not): unlike EnqueueCall, which is about a call
 * nobody has taken yet, this is about a live call, which waits again with no agent.  A call that
 * ended, or that is parked, decides nothing. */
static int requeue(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx, sb_devents_t *out,
                   sb_derror_t *err)
{
    const char *queue, *reason, *cur = sb__str(state, "status");
    SB_TRY(sb__need_str(cmd, "queue", 1, 64, &queue, err));
    SB_TRY(sb__opt_str(cmd, "reason", 1, 32, &reason, err));
    if (is_final(cur) || sb__eq(cur, "parked"))
        return 0;
    if (sb__eq(cur, "queued") && sb__str(state, "agent_id") == NULL && sb__eq(sb__str(state, "queue"), queue))
        return 0; /* already waiting there */
    char now[SB_RFC3339_LEN];
    sb__now(ctx, now);
    return sb_devents_add(out, "CallEnqueued",
                          json_pack("{s:s, s:s?, s:s?, s:s, s:b}", "queue", queue, "reason", reason,
                                    "from_agent", sb__str(state, "agent_id"), "at", now, "requeued", 1));
}

static int park(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx, sb_devents_t *out,
                sb_derror_t *err)
{
    const char *cur = sb__str(state, "status");
    const json_t *taken = json_object_get(ctx->context, "parked_slots");
    const json_t *s = json_object_get(cmd, "slot");
    json_int_t slot = 0;
    if (s != NULL && !json_is_null(s)) {
        if (!json_is_integer(s) || json_integer_value(s) < 1 || json_integer_value(s) > MAX_SLOT)
            return sb_reject(err, 400, "invalid", "slot", "slot must be 1 to %d", MAX_SLOT);
        slot = json_integer_value(s);
    }
    if (sb__eq(cur, "parked"))
        return 0;
    if (!sb__eq(cur, "in-progress"))
        return invalid(err, "park", cur);
    size_t i;
    const json_t *v;
    if (slot != 0) {
        json_array_foreach(taken, i, v)
        {
            if (json_integer_value(v) == slot)
                return sb_reject(err, 409, "slot_taken", "slot", "parking slot %lld is taken",
                                 (long long)slot);
        }
    } else {
        /* The lowest free slot: agents read slot numbers aloud, so keep them small. */
        for (slot = 1; slot <= MAX_SLOT; slot++) {
            bool used = false;
            json_array_foreach(taken, i, v)
            {
                used = used || json_integer_value(v) == slot;
            }
            if (!used)
                break;
        }
        if (slot > MAX_SLOT)
            return sb_reject(err, 409, "no_free_slot", "slot", "every parking slot is taken");
    }
    char now[SB_RFC3339_LEN];
    sb__now(ctx, now);
    return sb_devents_add(
        out, "CallParked",
        json_pack("{s:I, s:s?, s:s}", "slot", slot, "parked_by", ctx->user_id, "parked_at", now));
}

static int unpark(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx, sb_devents_t *out,
                  sb_derror_t *err)
{
    const char *agent, *cur = sb__str(state, "status");
    SB_TRY(read_agent(cmd, "agent_id", ctx, true, &agent, err));
    if (!sb__eq(cur, "parked"))
        return invalid(err, "unpark", cur);
    const json_t *parked = json_object_get(state, "parked");
    int64_t since = sb__time_us(sb__str(parked, "parked_at"));
    int64_t secs = since > 0 && ctx->now_us > since ? (ctx->now_us - since) / 1000000 : 0;
    char now[SB_RFC3339_LEN];
    sb__now(ctx, now);
    return sb_devents_add(out, "CallUnparked",
                          json_pack("{s:s, s:O, s:I, s:s?, s:s, s:O?}", "agent_id", agent, "slot",
                                    json_object_get(parked, "slot"), "parked_seconds", (json_int_t)secs, "by",
                                    ctx->user_id, "unparked_at", now, "parked_by",
                                    json_object_get(parked, "parked_by")));
}

static int transfer(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx, sb_devents_t *out,
                    sb_derror_t *err)
{
    const char *mode, *agent, *cur = sb__str(state, "status");
    char number[SB_EMAIL_MAX];
    SB_TRY(sb__need_enum(cmd, "mode", modes, &mode, err));
    SB_TRY(sb__opt_uuid(cmd, "to_agent", &agent, err));
    SB_TRY(read_endpoint(cmd, "to_number", false, ctx, number, err));
    if ((agent == NULL) == (number[0] == '\0'))
        return sb_reject(err, 400, "invalid", "to_agent", "give exactly one of to_agent and to_number");
    if (agent != NULL && sb__ctx_member(ctx, agent) == NULL)
        return sb_reject(err, 400, "unknown_member", "to_agent",
                         "to_agent is not a member of this workspace");
    if (!sb__eq(cur, "in-progress"))
        return invalid(err, "transfer", cur);
    if (agent != NULL && sb__eq(agent, sb__str(state, "agent_id")))
        return sb_reject(err, 409, "same_agent", "to_agent", "the call is already with this agent");
    char now[SB_RFC3339_LEN];
    sb__now(ctx, now);
    return sb_devents_add(out, "CallTransferred",
                          json_pack("{s:s, s:s?, s:s?, s:s?, s:s?, s:s, s:I}", "mode", mode, "to_agent",
                                    agent, "to_number", number[0] ? number : NULL, "from_agent",
                                    sb__str(state, "agent_id"), "by", ctx->user_id, "at", now, "transfer",
                                    json_integer_value(json_object_get(state, "transfers")) + 1));
}

static int hangup(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx, sb_devents_t *out,
                  sb_derror_t *err)
{
    const char *cur = sb__str(state, "status");
    if (is_final(cur))
        return invalid(err, "hang up", cur);
    if (json_is_true(json_object_get(state, "hangup_requested")))
        return 0;
    char now[SB_RFC3339_LEN];
    sb__now(ctx, now);
    return sb_devents_add(out, "CallHangupRequested",
                          json_pack("{s:s?, s:s}", "by", ctx->user_id, "at", now));
}

/* The agent who unparked a call did not answer their browser: the call goes back to the lot, in
 * its slot, still the parker's.  unparked_at names the unparking, so a late report about an older
 * one (or one after the call moved on: transferred, parked again, ended) changes nothing. */
static int return_to_lot(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx,
                         sb_devents_t *out, sb_derror_t *err)
{
    const char *at;
    SB_TRY(sb__need_str(cmd, "unparked_at", 1, 40, &at, err));
    const json_t *last = json_object_get(state, "last_unpark");
    if (!sb__eq(sb__str(state, "status"), "in-progress") || !json_is_object(last) ||
        !sb__eq(sb__str(last, "at"), at))
        return 0;
    char now[SB_RFC3339_LEN];
    sb__now(ctx, now);
    return sb_devents_add(out, "CallParked",
                          json_pack("{s:O?, s:O?, s:s, s:b}", "slot", json_object_get(last, "slot"),
                                    "parked_by", json_object_get(last, "parked_by"), "parked_at", now,
                                    "returned", 1));
}

/* Call control records each Twilio request that creates a call leg (dialling the customer, ringing
 * an agent or a transfer target) before it goes out: a ref names the request, and a second attempt
 * with a ref already recorded is refused, so a leg is never created twice for one decision, even
 * when a reactor restarts after the request went out. */
static int dial_attempt(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx, sb_devents_t *out,
                        sb_derror_t *err)
{
    const char *ref;
    SB_TRY(sb__need_str(cmd, "ref", 1, 120, &ref, err));
    const json_t *done = json_object_get(state, "dial_attempts");
    if (sb__array_find(done, ref, false) >= 0)
        return sb_reject(err, 409, "attempted", "ref", "this request was attempted already");
    if (json_array_size(done) >= 200)
        return sb_reject(err, 409, "limit_reached", "ref", "too many call legs for one call");
    char now[SB_RFC3339_LEN];
    sb__now(ctx, now);
    return sb_devents_add(out, "CallDialAttempted", json_pack("{s:s, s:s}", "ref", ref, "at", now));
}

/* A transfer target did not answer (or was busy, or failed): the call goes back to the agent who
 * had it.  transfer names which transfer (the call's count after it), so a late report about an
 * older one changes nothing. */
static int transfer_failed(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx,
                           sb_devents_t *out, sb_derror_t *err)
{
    const char *reason;
    SB_TRY(sb__need_str(cmd, "reason", 1, 40, &reason, err));
    const json_t *n = json_object_get(cmd, "transfer");
    if (!json_is_integer(n) || json_integer_value(n) < 1)
        return sb_reject(err, 400, "invalid", "transfer", "transfer must be a positive whole number");
    const json_t *last = json_object_get(state, "last_transfer");
    if (!sb__eq(sb__str(state, "status"), "in-progress") || !json_is_object(last) ||
        json_integer_value(json_object_get(state, "transfers")) != json_integer_value(n) ||
        json_is_true(json_object_get(last, "failed")))
        return 0; /* over, superseded, or reported already */
    char now[SB_RFC3339_LEN];
    sb__now(ctx, now);
    return sb_devents_add(out, "CallTransferFailed",
                          json_pack("{s:O?, s:I, s:O?, s:O?, s:O?, s:s, s:s}", "mode",
                                    json_object_get(last, "mode"), "transfer", json_integer_value(n),
                                    "to_agent", json_object_get(last, "to_agent"), "to_number",
                                    json_object_get(last, "to_number"), "back_to",
                                    json_object_get(last, "from_agent"), "reason", reason, "at", now));
}

static int recording(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx, sb_devents_t *out,
                     sb_derror_t *err)
{
    const char *url, *rsid;
    SB_TRY(sb__need_str(cmd, "url", 1, 2048, &url, err));
    if (!sb__is_url(url, 2048))
        return sb_reject(err, 400, "invalid", "url", "url must be an http(s) URL");
    SB_TRY(sb__opt_str(cmd, "recording_sid", 1, 64, &rsid, err));
    const json_t *d = json_object_get(cmd, "duration_seconds");
    if (!json_is_integer(d) || json_integer_value(d) < 0 || json_integer_value(d) > 7 * 24 * 3600)
        return sb_reject(err, 400, "invalid", "duration_seconds",
                         "duration_seconds must be a whole number of seconds");
    const json_t *known = json_object_get(state, "recordings");
    if (sb__array_find(known, url, false) >= 0)
        return 0;
    if (json_array_size(known) >= MAX_RECORDINGS)
        return sb_reject(err, 409, "limit_reached", "url", "a call has at most %d recordings",
                         MAX_RECORDINGS);
    return sb_devents_add(out, "CallRecordingAvailable",
                          json_pack("{s:s, s:I, s:s?}", "url", url, "duration_seconds", json_integer_value(d),
                                    "recording_sid", rsid));
}

typedef int (*handler_fn)(const json_t *, const json_t *, const sb_decide_ctx_t *, sb_devents_t *,
                          sb_derror_t *);

static const struct {
    const char *type;
    handler_fn fn;
} handlers[] = {
    {"RecordCallStatus", record_status},
    {"AnswerCall", answer},
    {"EnqueueCall", enqueue},
    {"ParkCall", park},
    {"UnparkCall", unpark},
    {"TransferCall", transfer},
    {"HangupCall", hangup},
    {"RecordCallRecording", recording},
    {"RecordDialAttempt", dial_attempt},
    {"FailTransfer", transfer_failed},
    {"ReturnToLot", return_to_lot},
    {"RequeueCall", requeue},
};

static int dispatch(const json_t *state, const json_t *cmd, const char *type, const sb_decide_ctx_t *ctx,
                    sb_devents_t *out, sb_derror_t *err)
{
    SB_TRY(sb__need_actor_member(ctx, err));
    if (strcmp(type, "InitiateCall") == 0)
        return initiate(state, cmd, ctx, out, err);
    for (size_t i = 0; i < sizeof handlers / sizeof handlers[0]; i++) {
        if (strcmp(handlers[i].type, type) == 0) {
            if (!json_is_true(json_object_get(state, "created")) || sb__other_workspace(state, ctx))
                return sb_reject(err, 404, "call_not_found", "", "no such call");
            return handlers[i].fn(state, cmd, ctx, out, err);
        }
    }
    return sb_reject(err, 400, "unknown_command", "type", "unknown call command %.60s", type);
}

static int call_decide(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx, sb_devents_t *out,
                       sb_derror_t *err)
{
    return sb__decide(dispatch, state, cmd, ctx, out, err);
}

/* ---- evolve ------------------------------------------------------------------------------------- */

static void call_evolve(json_t *state, const sb_devent_t *ev)
{
    const json_t *d = ev->data;
    const char *t = ev->type;
    if (strncmp(t, "Call", 4) != 0)
        return;
    if (json_is_string(json_object_get(d, "call_sid")) && json_is_null(json_object_get(state, "call_sid")))
        sb__set(state, "call_sid", json_object_get(d, "call_sid"));

    if (strcmp(t, "CallInitiated") == 0) {
        static const char *const keys[] = {"call_id",    "workspace_id", "direction",  "from",    "to",
                                           "contact_id", "agent_id",     "started_at", "call_sid"};
        json_object_set_new(state, "created", json_true());
        json_object_set_new(state, "status", json_string("queued"));
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
            sb__set(state, keys[i], json_object_get(d, keys[i]));
    } else if (strcmp(t, "CallRinging") == 0) {
        json_object_set_new(state, "status", json_string("ringing"));
    } else if (strcmp(t, "CallAnswered") == 0) {
        json_object_set_new(state, "status", json_string("in-progress"));
        sb__set(state, "agent_id", json_object_get(d, "agent_id"));
        sb__set(state, "answered_at", json_object_get(d, "answered_at"));
    } else if (strcmp(t, "CallEnqueued") == 0) {
        json_object_set_new(state, "status", json_string("queued"));
        json_object_set_new(state, "agent_id", json_null());
        sb__set(state, "queue", json_object_get(d, "queue"));
    } else if (strcmp(t, "CallParked") == 0) {
        json_object_set_new(state, "status", json_string("parked"));
        json_object_del(state, "last_unpark");
        json_object_set_new(state, "parked",
                            json_pack("{s:o, s:o, s:o}", "slot", sb__copy(json_object_get(d, "slot")),
                                      "parked_by", sb__copy(json_object_get(d, "parked_by")), "parked_at",
                                      sb__copy(json_object_get(d, "parked_at"))));
    } else if (strcmp(t, "CallUnparked") == 0) {
        json_object_set_new(state, "status", json_string("in-progress"));
        json_object_set_new(state, "parked", json_null());
        sb__set(state, "agent_id", json_object_get(d, "agent_id"));
        json_object_set_new(state, "last_unpark",
                            json_pack("{s:o, s:o, s:o}", "slot", sb__copy(json_object_get(d, "slot")),
                                      "parked_by", sb__copy(json_object_get(d, "parked_by")), "at",
                                      sb__copy(json_object_get(d, "unparked_at"))));
    } else if (strcmp(t, "CallTransferred") == 0) {
        /* The call is now with the new agent, or with no agent when it went to an outside number. */
        sb__set(state, "agent_id", json_object_get(d, "to_agent"));
        json_object_del(state, "last_unpark");
        json_object_set_new(state, "transfers",
                            json_integer(json_integer_value(json_object_get(state, "transfers")) + 1));
        json_object_set_new(state, "last_transfer",
                            json_pack("{s:o, s:o, s:o, s:o, s:b}", "mode",
                                      sb__copy(json_object_get(d, "mode")), "to_agent",
                                      sb__copy(json_object_get(d, "to_agent")), "to_number",
                                      sb__copy(json_object_get(d, "to_number")), "from_agent",
                                      sb__copy(json_object_get(d, "from_agent")), "failed", 0));
    } else if (strcmp(t, "CallTransferFailed") == 0) {
        sb__set(state, "agent_id", json_object_get(d, "back_to"));
        json_t *last = json_object_get(state, "last_transfer");
        if (json_is_object(last))
            json_object_set_new(last, "failed", json_true());
    } else if (strcmp(t, "CallDialAttempted") == 0) {
        json_t *a = json_object_get(state, "dial_attempts");
        if (!json_is_array(a)) {
            a = json_array();
            json_object_set_new(state, "dial_attempts", a);
        }
        if (json_is_string(json_object_get(d, "ref")))
            json_array_append_new(a, sb__copy(json_object_get(d, "ref")));
    } else if (strcmp(t, "CallHangupRequested") == 0) {
        json_object_set_new(state, "hangup_requested", json_true());
    } else if (strcmp(t, "CallRecordingAvailable") == 0) {
        if (json_is_string(json_object_get(d, "url")))
            json_array_append_new(json_object_get(state, "recordings"), sb__copy(json_object_get(d, "url")));
    } else if (strcmp(t, "CallCompleted") == 0) {
        json_object_set_new(state, "status", json_string("completed"));
        json_object_set_new(state, "parked", json_null());
        sb__set(state, "ended_at", json_object_get(d, "ended_at"));
        sb__set(state, "duration_seconds", json_object_get(d, "duration_seconds"));
    } else if (strcmp(t, "CallFailed") == 0) {
        const char *reason = sb__str(d, "reason");
        json_object_set_new(state, "status", json_string(reason ? reason : "failed"));
        sb__set(state, "ended_at", json_object_get(d, "ended_at"));
    }
}

const sb_kind_t sb_kind_call = {
    .category = "call",
    .initial = call_initial,
    .decide = call_decide,
    .evolve = call_evolve,
};
