/* Parking slots held through claims (park.h; docs/voice.md, "Parking slots").
 *
 * A park, on its caller's loop, one ask at a time:
 *   read the call (fresh) -> not parkable: send the command as it is (the decider answers)
 *   for each candidate slot (the one asked for; else the old slot of a ReturnToLot, then 1, 2, ...
 *   skipping the hint, then the hinted ones):
 *     Claim(slot, call)  -> Claimed: ours
 *                        -> already ours (an earlier parking): Release + Claim, so its age is ours
 *                        -> taken by H: read H (fresh) and judge: in force -> next candidate
 *                           (a slot asked for: 409 slot_taken); over -> Release on H's behalf if
 *                           the claim is still the one judged, then Claim again
 *   then, within create_within of the claim, the command with {"slot": n}.  A command that did not
 *   park the call in n (refused, or the call was parked meanwhile) leaves the claim released.
 * Detours (renewals, takeovers, lost races) are bounded, so two parks never chase each other for
 * ever. */
#include "actors/park.h"
#include "actors/dutil.h"
#include "actors/kinds.h"
#include "core/clock.h"
#include "core/error.h"
#include "events/stream.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#define MAX_DETOURS 32

static _Atomic int64_t create_within_us = 5000000;
static _Atomic int64_t steal_after_us = 10000000;

int sb_park_set_timing(int64_t create_within, int64_t steal_after)
{
    if (create_within <= 0 || steal_after <= create_within)
        return SB_EINVAL;
    atomic_store(&create_within_us, create_within);
    atomic_store(&steal_after_us, steal_after);
    return 0;
}

void sb_park_slot_key(const char *workspace_id, int slot, char out[SB_PARK_KEY_MAX])
{
    snprintf(out, SB_PARK_KEY_MAX, "slot:%s:%d", workspace_id, slot);
}

static bool is_final(const char *s)
{
    return sb__eq(s, "completed") || sb__eq(s, "busy") || sb__eq(s, "no-answer") || sb__eq(s, "failed") ||
           sb__eq(s, "cancelled");
}

static int64_t time_of(const json_t *o, const char *key)
{
    const char *t = sb__str(o, key);
    return t ? sb__time_us(t) : 0;
}

bool sb_park_claim_in_force(const json_t *claim, const json_t *holder, int slot, int64_t now_us,
                            int64_t steal_after)
{
    if (sb__str(claim, "owner") == NULL)
        return false;
    if (!json_is_true(json_object_get(holder, "created")) || is_final(sb__str(holder, "status")))
        return false;
    const json_t *parked = json_object_get(holder, "parked");
    if (sb__eq(sb__str(holder, "status"), "parked") && json_is_object(parked))
        return json_integer_value(json_object_get(parked, "slot")) == slot;
    int64_t at = time_of(claim, "claimed_at");
    if (time_of(holder, "left_lot_at") >= at)
        return false; /* its parking is over (also true for a claim without a time) */
    return now_us - at < steal_after;
}

/* ---- the flow ------------------------------------------------------------------------------------ */

typedef struct park_s park_t;
typedef void (*step_fn)(park_t *p, const sb_ask_reply_t *r);

struct park_s {
    sb_task_t task;
    sb_loops_t *g;
    sb_loop_t *loop;
    sb_ask_cb cb;
    void *data;
    step_fn next;
    char ws[SB_UUID_STRLEN + 1];
    char call[SB_UUID_STRLEN + 1];
    char stream[8 + SB_UUID_STRLEN];
    bool return_to_lot;
    char unparked_at[48];
    int asked;     /* the slot asked for, 0 = any */
    int preferred; /* ReturnToLot: the old slot */
    json_t *hint;
    unsigned char tried[SB_PARK_MAX_SLOT + 1]; /* 1: held by someone, skip */
    int slot;                                  /* the candidate */
    int pass;                                  /* 0: candidates outside the hint; 1: the hinted ones */
    int detours;
    char claim[SB_CLAIM_STREAM_LEN];
    int64_t claim_version;
    int64_t claimed_us;
    char holder[SB_STREAM_NAME_MAX];
    json_t *held; /* the claim state being judged */
    /* the caller's options (copies) */
    char *user_id, *correlation_id, *causation_id, *request_id, *source;
    json_t *context;
    bool check_version;
    int64_t expected_version;
    /* a result of the flow's own */
    sb_ask_reply_t res;
    sb_derror_t err;
};

static void park_free(park_t *p)
{
    free(p->user_id);
    free(p->correlation_id);
    free(p->causation_id);
    free(p->request_id);
    free(p->source);
    json_decref(p->context);
    json_decref(p->hint);
    json_decref(p->held);
    free(p);
}

static void on_result(sb_task_t *t)
{
    park_t *p = container_of(t, park_t, task);
    p->cb(&p->res, p->data);
    park_free(p);
}

/* Ends with a result of the flow's own, through the loop's queue. */
static void finish(park_t *p, int status)
{
    p->res.status = status;
    p->res.stream = p->stream;
    p->res.err = status == SB_EREJECTED ? &p->err : NULL;
    p->task.cb = on_result;
    sb_loop_post(p->loop, &p->task);
}

static void reject(park_t *p, const char *code, const char *message)
{
    p->err.status = 409;
    snprintf(p->err.code, sizeof p->err.code, "%s", code);
    snprintf(p->err.field, sizeof p->err.field, "slot");
    snprintf(p->err.message, sizeof p->err.message, "%s", message);
    finish(p, SB_EREJECTED);
}

static void slot_taken(park_t *p)
{
    char m[64];
    snprintf(m, sizeof m, "parking slot %d is taken", p->slot);
    reject(p, "slot_taken", m);
}

static void on_reply(const sb_ask_reply_t *r, void *data)
{
    park_t *p = data;
    step_fn step = p->next;
    p->next = NULL;
    step(p, r);
}

static void ask(park_t *p, const char *stream, json_t *cmd, bool call_opts, bool check, int64_t version,
                step_fn next)
{
    sb_ask_opts_t o = {
        .user_id = p->user_id,
        .correlation_id = p->correlation_id,
        .causation_id = p->causation_id,
        .request_id = p->request_id,
        .source = p->source,
        .workspace_id = p->ws,
        .skip_event_data = true,
        .refresh = !call_opts,
    };
    if (call_opts) {
        o.context = p->context;
        o.check_version = p->check_version;
        o.expected_version = p->expected_version;
    } else if (check) {
        o.check_version = true;
        o.expected_version = version;
    }
    /* Claims are the system's bookkeeping, not the agent's acts. */
    if (strncmp(stream, "claim-", 6) == 0)
        o.user_id = NULL;
    p->next = next;
    int rc =
        cmd ? sb_actor_ask(p->g, stream, cmd, &o, on_reply, p) : sb_actor_get(p->g, stream, &o, on_reply, p);
    if (rc != 0) {
        p->next = NULL;
        finish(p, rc);
    }
}

static void claim_next(park_t *p);
static void claim_slot(park_t *p);

/* ---- the command ------------------------------------------------------------------------------- */

static void on_released_after(const sb_ask_reply_t *r, void *data)
{
    (void)r;
    park_free(data);
}

static void on_command(park_t *p, const sb_ask_reply_t *r)
{
    p->cb(r, p->data);
    const json_t *parked = r->state != NULL ? json_object_get(r->state, "parked") : NULL;
    bool used = r->status == 0 && json_integer_value(json_object_get(parked, "slot")) == p->slot &&
                sb__eq(sb__str(r->state, "status"), "parked");
    if (p->slot == 0 || used || r->status == SB_EUNKNOWN) {
        park_free(p);
        return;
    }
    /* Not parked in our slot: give it back at once rather than let it look taken until it ages. */
    char owner[SB_STREAM_NAME_MAX];
    snprintf(owner, sizeof owner, "call-%s", p->call);
    sb_ask_opts_t o = {.source = p->source,
                       .workspace_id = p->ws,
                       .check_version = true,
                       .expected_version = p->claim_version,
                       .skip_state = true,
                       .skip_event_data = true};
    if (sb_actor_ask(p->g, p->claim, json_pack("{s:s, s:s}", "type", "Release", "owner", owner), &o,
                     on_released_after, p) != 0)
        park_free(p);
}

static void send_command(park_t *p, int slot)
{
    json_t *cmd = p->return_to_lot
                      ? json_pack("{s:s, s:s}", "type", "ReturnToLot", "unparked_at", p->unparked_at)
                      : json_pack("{s:s}", "type", "ParkCall");
    if (cmd == NULL) {
        finish(p, SB_ENOMEM);
        return;
    }
    if (slot > 0)
        json_object_set_new(cmd, "slot", json_integer(slot));
    else if (p->asked > 0)
        json_object_set_new(cmd, "slot", json_integer(p->asked)); /* the decider validates it */
    ask(p, p->stream, cmd, true, false, 0, on_command);
}

/* ---- claiming ------------------------------------------------------------------------------------ */

static bool detour(park_t *p)
{
    if (++p->detours <= MAX_DETOURS)
        return true;
    finish(p, SB_ECONFLICT); /* the slots keep changing under us: the caller may retry */
    return false;
}

static void on_claim_renewed(park_t *p, const sb_ask_reply_t *r)
{
    if (r->status == SB_ECONFLICT && r->precondition_failed) {
        if (detour(p))
            claim_slot(p);
        return;
    }
    if (r->status != 0) {
        finish(p, r->status);
        return;
    }
    claim_slot(p);
}

/* The claim stream was at held_version when judged; release it for owner only if it still is. */
static void release_then_claim(park_t *p, const char *owner, int64_t held_version)
{
    if (!detour(p))
        return;
    ask(p, p->claim, json_pack("{s:s, s:s}", "type", "Release", "owner", owner), false, true, held_version,
        on_claim_renewed);
}

static void on_holder(park_t *p, const sb_ask_reply_t *r)
{
    if (r->status != 0) {
        finish(p, r->status);
        return;
    }
    if (sb_park_claim_in_force(p->held, r->state, p->slot, sb_clock_now_us(), atomic_load(&steal_after_us))) {
        if (p->asked > 0) {
            slot_taken(p);
            return;
        }
        p->tried[p->slot] = 1;
        claim_next(p);
        return;
    }
    release_then_claim(p, p->holder, p->claim_version);
}

static void on_claimed(park_t *p, const sb_ask_reply_t *r)
{
    char me[SB_STREAM_NAME_MAX];
    snprintf(me, sizeof me, "call-%s", p->call);
    if (r->status == SB_EREJECTED && r->err != NULL && strcmp(r->err->code, "taken") == 0 &&
        r->state != NULL) {
        const char *owner = sb__str(r->state, "owner");
        if (owner == NULL || strlen(owner) >= sizeof p->holder || strncmp(owner, "call-", 5) != 0) {
            /* Not a call's: nothing we know how to judge; leave the slot alone. */
            if (p->asked > 0) {
                slot_taken(p);
                return;
            }
            p->tried[p->slot] = 1;
            claim_next(p);
            return;
        }
        snprintf(p->holder, sizeof p->holder, "%s", owner);
        json_decref(p->held);
        p->held = json_incref(r->state);
        p->claim_version = r->version;
        ask(p, p->holder, NULL, false, false, 0, on_holder);
        return;
    }
    if (r->status != 0) {
        finish(p, r->status);
        return;
    }
    p->claim_version = r->version;
    if (r->nevents == 0) {
        /* Ours from an earlier parking (or a concurrent park of this same call): renew it, so the
         * age we rely on is this park's. */
        release_then_claim(p, me, r->version);
        return;
    }
    p->claimed_us = time_of(r->state, "claimed_at");
    if (sb_clock_now_us() - p->claimed_us >= atomic_load(&create_within_us)) {
        finish(p, SB_ETIMEOUT);
        return;
    }
    send_command(p, p->slot);
}

static void claim_slot(park_t *p)
{
    char key[SB_PARK_KEY_MAX], owner[SB_STREAM_NAME_MAX];
    sb_park_slot_key(p->ws, p->slot, key);
    sb_claim_stream(key, p->claim);
    snprintf(owner, sizeof owner, "call-%s", p->call);
    ask(p, p->claim, json_pack("{s:s, s:s, s:s}", "type", "Claim", "key", key, "owner", owner), false, false,
        0, on_claimed);
}

static bool hinted(const park_t *p, int slot)
{
    size_t i;
    const json_t *v;
    json_array_foreach(p->hint, i, v) if (json_integer_value(v) == slot) return true;
    return false;
}

/* The next candidate: the preferred slot, then the lowest not hinted, then the hinted ones. */
static void claim_next(park_t *p)
{
    if (p->asked > 0) {
        p->slot = p->asked;
        claim_slot(p);
        return;
    }
    if (p->preferred > 0 && !p->tried[p->preferred]) {
        p->slot = p->preferred;
        claim_slot(p);
        return;
    }
    for (; p->pass < 2; p->pass++) {
        for (int s = 1; s <= SB_PARK_MAX_SLOT; s++) {
            if (p->tried[s] || hinted(p, s) != (p->pass == 1))
                continue;
            p->slot = s;
            claim_slot(p);
            return;
        }
    }
    p->slot = 0;
    reject(p, "no_free_slot", "every parking slot is taken");
}

static void on_call(park_t *p, const sb_ask_reply_t *r)
{
    if (r->status != 0) {
        p->cb(r, p->data);
        park_free(p);
        return;
    }
    const json_t *s = r->state;
    const char *ws = sb__str(s, "workspace_id");
    bool parkable = json_is_true(json_object_get(s, "created")) && sb__eq(ws, p->ws) &&
                    sb__eq(sb__str(s, "status"), "in-progress") &&
                    (!p->check_version || p->expected_version == r->version);
    if (p->return_to_lot) {
        const json_t *last = json_object_get(s, "last_unpark");
        parkable = parkable && json_is_object(last) && sb__eq(sb__str(last, "at"), p->unparked_at);
        if (parkable) {
            json_int_t old = json_integer_value(json_object_get(last, "slot"));
            p->preferred = old >= 1 && old <= SB_PARK_MAX_SLOT ? (int)old : 0;
        }
    } else if (p->asked < 0 || p->asked > SB_PARK_MAX_SLOT) {
        parkable = false;
    }
    if (!parkable) {
        send_command(p, 0); /* the decider says why (or that there is nothing to do) */
        return;
    }
    claim_next(p);
}

static char *dup_opt(const char *s, int *rc)
{
    if (s == NULL)
        return NULL;
    char *d = strdup(s);
    if (d == NULL)
        *rc = SB_ENOMEM;
    return d;
}

int sb_park_call(sb_loops_t *g, const sb_park_req_t *req, sb_ask_cb cb, void *data)
{
    if (g == NULL || req == NULL || cb == NULL || sb_loop_current() == NULL || req->command == NULL ||
        !sb__is_uuid(req->workspace_id) || !sb__is_uuid(req->call_id))
        return SB_EINVAL;
    bool rtl = strcmp(req->command, "ReturnToLot") == 0;
    if (!rtl && strcmp(req->command, "ParkCall") != 0)
        return SB_EINVAL;
    if (rtl && (req->unparked_at == NULL || strlen(req->unparked_at) >= 48))
        return SB_EINVAL;
    park_t *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return SB_ENOMEM;
    int rc = 0;
    p->g = g;
    p->loop = sb_loop_current();
    p->cb = cb;
    p->data = data;
    snprintf(p->ws, sizeof p->ws, "%s", req->workspace_id);
    snprintf(p->call, sizeof p->call, "%s", req->call_id);
    snprintf(p->stream, sizeof p->stream, "call-%s", p->call);
    p->return_to_lot = rtl;
    if (rtl)
        snprintf(p->unparked_at, sizeof p->unparked_at, "%s", req->unparked_at);
    p->asked = rtl ? 0 : req->slot;
    p->hint = req->hint != NULL ? json_deep_copy(req->hint) : json_array();
    p->context = req->opts.context != NULL ? json_deep_copy(req->opts.context) : NULL;
    p->user_id = dup_opt(req->opts.user_id, &rc);
    p->correlation_id = dup_opt(req->opts.correlation_id, &rc);
    p->causation_id = dup_opt(req->opts.causation_id, &rc);
    p->request_id = dup_opt(req->opts.request_id, &rc);
    p->source = dup_opt(req->opts.source, &rc);
    p->check_version = req->opts.check_version;
    p->expected_version = req->opts.expected_version;
    if (rc == 0 && (p->hint == NULL || (req->opts.context != NULL && p->context == NULL)))
        rc = SB_ENOMEM;
    if (rc != 0) {
        park_free(p);
        return rc;
    }
    p->next = on_call;
    sb_ask_opts_t o = {.source = p->source, .workspace_id = p->ws, .refresh = true, .skip_event_data = true};
    rc = sb_actor_get(g, p->stream, &o, on_reply, p);
    if (rc != 0)
        park_free(p);
    return rc;
}
