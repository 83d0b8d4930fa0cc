/* The flows' machinery: a flow's life on its caller's loop, asks and results, and the claim
 * protocol (docs/events.md, "Flows").
 *
 * Claiming a value (a number, an address) for the subject S:
 *   Claim(key, owner S)  -> Claimed, or already S's: go on to the next value;
 *                        -> taken by H: read H (fresh from the log) and judge the claim:
 *     H lists the value (a live contact with that number, a user with that address): taken.
 *     H is a deleted contact: the claim is stale; release it on H's behalf and claim again.
 *     H never wrote the value: H is being written right now, or its flow crashed.  By the claim's
 *       age (claimed_at): younger than create_within, a creating flow adopts H (writes H itself,
 *       so that H is created once, by whoever gets there first), other flows answer taken; from
 *       steal_after on, nobody may write H relying on it any more, so it is released and claimed
 *       again; in between, wait until steal_after.
 * Before its write a flow checks that every claim it relies on is younger than create_within:
 * with steal_after - create_within to spare, no write can land on a claim already taken over. */
#include "actors/flows_int.h"
#include "actors/dutil.h"
#include "actors/kinds.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* Takeovers, adoptions and waits per flow: each one answers a crash or a race, so a few suffice;
 * the bound keeps two flows from chasing each other for ever. */
#define MAX_DETOURS 16
#define KEY_MAX 320 /* "email:" + an address of at most 254 bytes, or "phone:<ws>:<e164>" */

static _Atomic int64_t create_within_us = 5000000;
static _Atomic int64_t steal_after_us = 10000000;

int sb_flow_set_claim_timing(int64_t create_within, int64_t steal_after)
{
    if (create_within <= 0 || steal_after <= create_within)
        return SB_EINVAL;
    atomic_store(&create_within_us, create_within);
    atomic_store(&steal_after_us, steal_after);
    return 0;
}

/* ---- small helpers ------------------------------------------------------------------------------ */

bool sb__flow_has(const json_t *a, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v) if (sb__eq(json_string_value(v), s)) return true;
    return false;
}

static int cmp_str(const void *x, const void *y)
{
    return strcmp(*(const char *const *)x, *(const char *const *)y);
}

json_t *sb__flow_sorted(const json_t *a)
{
    size_t n = json_array_size(a), k = 0;
    const char **v = calloc(n ? n : 1, sizeof(*v));
    json_t *out = json_array();
    if (v == NULL || out == NULL) {
        free(v);
        json_decref(out);
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        if (json_is_string(json_array_get(a, i)))
            v[k++] = json_string_value(json_array_get(a, i));
    qsort(v, k, sizeof(*v), cmp_str);
    for (size_t i = 0; i < k; i++)
        if (i == 0 || strcmp(v[i], v[i - 1]) != 0)
            json_array_append_new(out, json_string(v[i]));
    free(v);
    return out;
}

json_t *sb__flow_minus(const json_t *a, const json_t *b)
{
    json_t *d = json_array(), *sorted;
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v) if (!sb__flow_has(b, json_string_value(v))) json_array_append(d, v);
    sorted = sb__flow_sorted(d);
    json_decref(d);
    return sorted;
}

json_t *sb__flow_listed(int subject, const json_t *state)
{
    if (subject == SB__SUBJECT_CONTACT) {
        if (!json_is_true(json_object_get(state, "created")) ||
            json_is_true(json_object_get(state, "deleted")))
            return json_array();
        return json_deep_copy(json_object_get(state, "phones"));
    }
    const char *email = sb__str(state, "email");
    if (!json_is_true(json_object_get(state, "registered")) || email == NULL)
        return json_array();
    return json_pack("[s]", email);
}

int sb__flow_dry_run(sb__flow_t *f, const sb_kind_t *k, const json_t *state, const json_t *cmd,
                     const char *user_id, sb_devents_t *out, sb_derror_t *err)
{
    sb_decide_ctx_t ctx = {
        .now_us = sb_clock_now_us(),
        .stream = f->stream,
        .id = f->id,
        .user_id = user_id,
        .context = f->context,
    };
    out->n = 0;
    memset(err, 0, sizeof(*err));
    return k->decide(state, cmd, &ctx, out, err);
}

static void claim_key(const sb__flow_t *f, const char *value, char key[KEY_MAX])
{
    if (f->subject == SB__SUBJECT_CONTACT)
        snprintf(key, KEY_MAX, "phone:%s:%s", f->ws, value);
    else
        snprintf(key, KEY_MAX, "email:%s", value);
}

/* A claim state's claimed_at in microseconds (0 when missing: as old as can be). */
static int64_t claimed_at(const json_t *claim)
{
    const char *t = sb__str(claim, "claimed_at");
    return t ? sb__time_us(t) : 0;
}

/* ---- life of a flow --------------------------------------------------------------------------- */

static char *dup_opt(const char *s, int *rc)
{
    if (s == NULL)
        return NULL;
    if (strlen(s) > SB_ASK_MAX_STR) {
        *rc = SB_EINVAL;
        return NULL;
    }
    char *d = strdup(s);
    if (d == NULL)
        *rc = SB_ENOMEM;
    return d;
}

static void flow_free(sb__flow_t *f)
{
    free(f->user_id);
    free(f->correlation_id);
    free(f->causation_id);
    free(f->request_id);
    free(f->source);
    free(f->error);
    json_decref(f->fields);
    json_decref(f->cmd);
    json_decref(f->context);
    json_decref(f->current);
    json_decref(f->want);
    json_decref(f->listed);
    json_decref(f->taken);
    json_decref(f->drop);
    json_decref(f->claim);
    json_decref(f->releasing);
    json_decref(f->state);
    free(f);
}

bool sb__flow_version_matches(const sb__flow_t *f, int64_t v)
{
    if (f->expected_version == v)
        return true;
    for (int i = 0; i < f->n_more_versions; i++)
        if (f->more_versions[i] == v)
            return true;
    return false;
}

int64_t sb__flow_newest_expected(const sb__flow_t *f)
{
    int64_t v = f->expected_version;
    for (int i = 0; i < f->n_more_versions; i++)
        if (f->more_versions[i] > v)
            v = f->more_versions[i];
    return v;
}

sb__flow_t *sb__flow_new(sb_loops_t *g, const sb_flow_opts_t *opts, sb_flow_cb cb, void *data, int *rc)
{
    static const sb_flow_opts_t none;
    *rc = 0;
    if (g == NULL || cb == NULL || sb_loop_current() == NULL) {
        *rc = SB_EINVAL;
        return NULL;
    }
    if (opts == NULL)
        opts = &none;
    if ((opts->user_id != NULL && !sb__is_uuid(opts->user_id)) || opts->n_more_versions < 0 ||
        opts->n_more_versions > SB_ASK_MAX_VERSIONS - 1) {
        *rc = SB_EINVAL;
        return NULL;
    }
    sb__flow_t *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        *rc = SB_ENOMEM;
        return NULL;
    }
    f->g = g;
    f->loop = sb_loop_current();
    f->cb = cb;
    f->data = data;
    f->user_id = dup_opt(opts->user_id, rc);
    f->correlation_id = dup_opt(opts->correlation_id, rc);
    f->causation_id = dup_opt(opts->causation_id, rc);
    f->request_id = dup_opt(opts->request_id, rc);
    f->source = dup_opt(opts->source, rc);
    f->check_version = opts->check_version;
    f->expected_version = opts->expected_version;
    f->n_more_versions = opts->n_more_versions;
    memcpy(f->more_versions, opts->more_versions, (size_t)opts->n_more_versions * sizeof(int64_t));
    f->relied_since = INT64_MAX;
    f->want = json_array();
    f->listed = json_array();
    f->taken = json_array();
    f->drop = json_array();
    if (*rc == 0 && (f->want == NULL || f->listed == NULL || f->taken == NULL || f->drop == NULL))
        *rc = SB_ENOMEM;
    if (*rc != 0) {
        flow_free(f);
        return NULL;
    }
    return f;
}

void sb__flow_discard(sb__flow_t *f)
{
    flow_free(f);
}

void sb__flow_subject(sb__flow_t *f, int subject, const char *id)
{
    f->subject = subject;
    snprintf(f->id, sizeof(f->id), "%s", id);
    snprintf(f->stream, sizeof(f->stream), "%s-%s", subject == SB__SUBJECT_CONTACT ? "contact" : "user", id);
}

static void on_timer_closed(uv_handle_t *h)
{
    flow_free(h->data);
}

static void on_finish(sb_task_t *t)
{
    sb__flow_t *f = container_of(t, sb__flow_t, task);
    bool ok = f->status == 0;
    sb_flow_result_t res = {
        .status = f->status,
        .err = f->status == SB_EREJECTED && f->has_err ? &f->err : NULL,
        .error = f->error,
        .stream = f->res_stream[0] ? f->res_stream : NULL,
        .id = f->res_stream[0] ? strchr(f->res_stream, '-') + 1 : NULL,
        .version = f->version,
        .state = f->state,
        .created = ok && f->created,
        .precondition_failed = f->precondition_failed,
        .holder = f->res_holder[0] ? f->res_holder : NULL,
    };
    f->cb(&res, f->data);
    if (f->timer_open)
        uv_close((uv_handle_t *)&f->timer, on_timer_closed);
    else
        flow_free(f);
}

void sb__flow_finish(sb__flow_t *f)
{
    /* Always through the loop's queue: the callback never fires inside the call that started the
     * flow, even when it is refused before any ask. */
    f->task.cb = on_finish;
    sb_loop_post(f->loop, &f->task);
}

/* ---- asking ----------------------------------------------------------------------------------- */

static void on_reply(const sb_ask_reply_t *r, void *data)
{
    sb__flow_t *f = data;
    sb__flow_step step = f->next;
    f->next = NULL;
    step(f, r);
}

void sb__flow_ask(sb__flow_t *f, const char *stream, json_t *cmd, const sb__ask_x_t *x, sb__flow_step next)
{
    static const sb__ask_x_t none;
    if (x == NULL)
        x = &none;
    sb_ask_opts_t o = {
        .user_id = f->user_id,
        .context = x->context,
        .correlation_id = f->correlation_id,
        .causation_id = f->causation_id,
        .request_id = f->request_id,
        .source = f->source,
        .workspace_id = x->workspace_id,
        .check_version = x->check_version,
        .expected_version = x->expected_version,
        .skip_event_data = true,
        .refresh = x->refresh,
    };
    f->next = next;
    int rc =
        cmd ? sb_actor_ask(f->g, stream, cmd, &o, on_reply, f) : sb_actor_get(f->g, stream, &o, on_reply, f);
    if (rc != 0) {
        f->next = NULL;
        sb__flow_fail(f, rc, "cannot ask the actor");
        sb__flow_finish(f);
    }
}

/* ---- results ---------------------------------------------------------------------------------- */

static void set_state(sb__flow_t *f, const sb_ask_reply_t *r)
{
    json_decref(f->state);
    f->state = json_incref(r->state);
    f->version = r->version;
    snprintf(f->res_stream, sizeof(f->res_stream), "%s", r->stream);
}

void sb__flow_ok(sb__flow_t *f, const sb_ask_reply_t *r, bool created)
{
    f->status = 0;
    f->created = created;
    set_state(f, r);
}

void sb__flow_reject(sb__flow_t *f, int status, const char *code, const char *field, const char *fmt, ...)
{
    f->status = SB_EREJECTED;
    f->has_err = true;
    f->err.status = status;
    snprintf(f->err.code, sizeof(f->err.code), "%s", code);
    snprintf(f->err.field, sizeof(f->err.field), "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->err.message, sizeof(f->err.message), fmt, ap);
    va_end(ap);
}

void sb__flow_fail(sb__flow_t *f, int status, const char *error)
{
    f->status = status;
    free(f->error);
    f->error = error ? strdup(error) : NULL;
}

void sb__flow_fail_reply(sb__flow_t *f, const sb_ask_reply_t *r)
{
    sb__flow_fail(f, r->status, r->error);
    f->precondition_failed = r->precondition_failed;
    if (r->err != NULL) {
        f->has_err = true;
        f->err = *r->err;
    }
    if (strcmp(r->stream, f->stream) == 0) {
        /* the subject's own refusal: show where it stands (e.g. the version a 412 missed) */
        f->version = r->version;
        snprintf(f->res_stream, sizeof(f->res_stream), "%s", r->stream);
    }
}

/* ---- releasing -------------------------------------------------------------------------------- */

static void release_next(sb__flow_t *f);

static void on_released(sb__flow_t *f, const sb_ask_reply_t *r)
{
    /* Best effort: a claim left behind is stale (its owner no longer lists the value) and is
     * taken over once old enough. */
    if (r->status != 0 && !(r->status == SB_EREJECTED && r->err && sb__eq(r->err->code, "not_owner")))
        sb_log_warn("flows", "claim not released stream=%s owner=%s error=%s", r->stream, f->stream,
                    sb_errname(r->status));
    f->rel_at++;
    release_next(f);
}

static void release_next(sb__flow_t *f)
{
    if (f->rel_at >= json_array_size(f->releasing)) {
        sb__flow_finish(f);
        return;
    }
    char key[KEY_MAX], cs[SB_CLAIM_STREAM_LEN];
    claim_key(f, json_string_value(json_array_get(f->releasing, f->rel_at)), key);
    sb_claim_stream(key, cs);
    sb__ask_x_t x = {.workspace_id = f->ws[0] ? f->ws : NULL, .refresh = true};
    sb__flow_ask(f, cs, json_pack("{s:s, s:s}", "type", "Release", "owner", f->stream), &x, on_released);
}

static void release_values(sb__flow_t *f, json_t *values)
{
    json_decref(f->releasing);
    f->releasing = values;
    f->rel_at = 0;
    if (values == NULL) {
        sb__flow_finish(f);
        return;
    }
    release_next(f);
}

void sb__flow_release_then_finish(sb__flow_t *f)
{
    release_values(f, json_incref(f->drop));
}

static void settle_on_subject(sb__flow_t *f, const sb_ask_reply_t *r)
{
    if (r->status != 0 || r->version == 0) {
        /* unwritten (or unreadable): its claims stay; another flow may be adopting it */
        sb__flow_finish(f);
        return;
    }
    json_t *uses = sb__flow_listed(f->subject, r->state);
    json_t *unused = sb__flow_minus(f->taken, uses);
    json_decref(uses);
    release_values(f, unused);
}

void sb__flow_settle(sb__flow_t *f)
{
    if (json_array_size(f->taken) == 0) {
        sb__flow_finish(f);
        return;
    }
    sb__ask_x_t x = {.refresh = true};
    sb__flow_ask(f, f->stream, NULL, &x, settle_on_subject);
}

/* ---- claiming --------------------------------------------------------------------------------- */

static void claims_step(sb__flow_t *f);

void sb__flow_claim(sb__flow_t *f)
{
    f->at = 0;
    /* With several values, look before taking any: a live holder of a later value would otherwise
     * leave the earlier claims behind. */
    f->probing = json_array_size(f->want) > 1;
    claims_step(f);
}

static bool detour(sb__flow_t *f)
{
    if (++f->detours <= MAX_DETOURS)
        return true;
    sb__flow_fail(f, SB_ECONFLICT, "the claims kept changing");
    sb__flow_settle(f);
    return false;
}

static void on_wait(uv_timer_t *t)
{
    claims_step(t->data);
}

/* Waits until the claim under examination may be taken over, then tries the value again. */
static void wait_for_steal(sb__flow_t *f)
{
    if (!detour(f))
        return;
    if (!f->timer_open) {
        uv_timer_init(&f->loop->uv, &f->timer);
        f->timer.data = f;
        f->timer_open = true;
    }
    int64_t until = claimed_at(f->claim) + atomic_load(&steal_after_us);
    int64_t wait = until - sb_clock_now_us();
    uv_timer_start(&f->timer, on_wait, wait > 0 ? (uint64_t)(wait / 1000) + 1 : 0, 0);
}

static void on_stolen(sb__flow_t *f, const sb_ask_reply_t *r)
{
    /* not_owner: someone else changed the claim meanwhile; either way, claim again */
    if (r->status != 0 && !(r->status == SB_EREJECTED && r->err && sb__eq(r->err->code, "not_owner"))) {
        sb__flow_fail_reply(f, r);
        sb__flow_settle(f);
        return;
    }
    claims_step(f);
}

/* Releases the claim on the holder's behalf (it is stale), then claims the value again. */
static void steal(sb__flow_t *f)
{
    if (!detour(f))
        return;
    char key[KEY_MAX], cs[SB_CLAIM_STREAM_LEN];
    claim_key(f, json_string_value(json_array_get(f->want, f->at)), key);
    sb_claim_stream(key, cs);
    sb_log_info("flows", "taking over a stale claim stream=%s from=%s for=%s", cs, f->holder, f->stream);
    sb__ask_x_t x = {.workspace_id = f->ws[0] ? f->ws : NULL, .refresh = true};
    sb__flow_ask(f, cs, json_pack("{s:s, s:s}", "type", "Release", "owner", f->holder), &x, on_stolen);
}

/* Becomes the holder: a creating flow finishes what the holder's flow started. */
static void adopt(sb__flow_t *f)
{
    f->adoptions++;
    sb_log_debug("flows", "adopting an unwritten owner holder=%s instead_of=%s", f->holder, f->stream);
    /* The claims taken for the old id stay: another flow may be adopting it in turn. */
    sb__flow_subject(f, f->subject, strchr(f->holder, '-') + 1);
    json_array_clear(f->taken);
    f->relied_since = INT64_MAX;
    f->at = 0;
    f->probing = false;
    claims_step(f);
}

static int holder_subject(const char *holder)
{
    if (strncmp(holder, "contact-", 8) == 0)
        return SB__SUBJECT_CONTACT;
    if (strncmp(holder, "user-", 5) == 0)
        return SB__SUBJECT_USER;
    return -1;
}

static void on_holder(sb__flow_t *f, const sb_ask_reply_t *r)
{
    if (r->status != 0) {
        sb__flow_fail_reply(f, r);
        sb__flow_settle(f);
        return;
    }
    const char *value = json_string_value(json_array_get(f->want, f->at));
    int hs = holder_subject(f->holder);
    if (hs < 0) { /* not an owner the flows make (a workspace's number, say): never ours to judge */
        f->ops->taken(f, value, r);
        return;
    }
    bool empty = r->version == 0;
    bool deleted = hs == SB__SUBJECT_CONTACT && json_is_true(json_object_get(r->state, "deleted"));
    json_t *l = sb__flow_listed(hs, r->state);
    bool lists = sb__flow_has(l, value);
    json_decref(l);
    bool mine = strcmp(f->holder, f->stream) == 0; /* renewing our own old claim */
    if (!empty && !deleted && lists) {
        if (mine) { /* the subject uses it after all: nothing to rely on */
            f->at++;
            claims_step(f);
        } else {
            f->ops->taken(f, value, r);
        }
        return;
    }
    if (f->probing) {
        f->at++;
        claims_step(f);
        return;
    }
    int64_t age = sb_clock_now_us() - claimed_at(f->claim);
    if (deleted || age >= atomic_load(&steal_after_us)) {
        steal(f);
        return;
    }
    if (age < atomic_load(&create_within_us) && !mine) {
        if (empty && f->ops->adopt && f->adoptions == 0 && hs == f->subject)
            adopt(f);
        else
            f->ops->taken(f, value, r); /* being written right now */
        return;
    }
    wait_for_steal(f);
}

/* The value is claimed by f->holder (claim: the claim's state): read the holder, fresh. */
static void examine(sb__flow_t *f, const json_t *claim, const char *owner)
{
    json_decref(f->claim);
    f->claim = json_incref((json_t *)claim);
    snprintf(f->holder, sizeof(f->holder), "%s", owner);
    sb__ask_x_t x = {.refresh = true};
    sb__flow_ask(f, f->holder, NULL, &x, on_holder);
}

static void on_probe(sb__flow_t *f, const sb_ask_reply_t *r)
{
    if (r->status != 0) {
        sb__flow_fail_reply(f, r);
        sb__flow_settle(f);
        return;
    }
    const char *owner = sb__str(r->state, "owner");
    if (owner == NULL || strcmp(owner, f->stream) == 0 || strlen(owner) >= SB_STREAM_NAME_MAX) {
        f->at++; /* the claim pass sees to it */
        claims_step(f);
        return;
    }
    examine(f, r->state, owner);
}

static void on_claim(sb__flow_t *f, const sb_ask_reply_t *r)
{
    const char *value = json_string_value(json_array_get(f->want, f->at));
    if (r->status == 0) {
        int64_t since = claimed_at(r->state);
        if (r->nevents > 0) {
            json_array_append_new(f->taken, json_string(value));
        } else if (!sb__flow_has(f->listed, value) &&
                   sb_clock_now_us() - since >= atomic_load(&create_within_us)) {
            /* Already the subject's, but never used and too old to rely on: another flow may take
             * it over at any moment.  Renew it (release and claim again) once that is safe. */
            examine(f, r->state, f->stream);
            return;
        }
        if (!sb__flow_has(f->listed, value) && since < f->relied_since)
            f->relied_since = since;
        f->at++;
        claims_step(f);
        return;
    }
    const char *owner = sb__str(r->state, "owner");
    if (r->status == SB_EREJECTED && r->err != NULL && sb__eq(r->err->code, "taken") && owner != NULL &&
        strlen(owner) < SB_STREAM_NAME_MAX) {
        examine(f, r->state, owner);
        return;
    }
    sb__flow_fail_reply(f, r);
    sb__flow_settle(f);
}

static void claims_step(sb__flow_t *f)
{
    if (f->at >= json_array_size(f->want)) {
        if (f->probing) {
            f->probing = false;
            f->at = 0;
            claims_step(f);
            return;
        }
        if (f->relied_since != INT64_MAX &&
            sb_clock_now_us() - f->relied_since >= atomic_load(&create_within_us)) {
            sb__flow_fail(f, SB_ETIMEOUT, "claiming took too long");
            sb__flow_settle(f);
            return;
        }
        f->ops->claimed(f);
        return;
    }
    char key[KEY_MAX], cs[SB_CLAIM_STREAM_LEN];
    claim_key(f, json_string_value(json_array_get(f->want, f->at)), key);
    sb_claim_stream(key, cs);
    sb__ask_x_t x = {.workspace_id = f->ws[0] ? f->ws : NULL, .refresh = true};
    if (f->probing)
        sb__flow_ask(f, cs, NULL, &x, on_probe);
    else
        sb__flow_ask(f, cs, json_pack("{s:s, s:s, s:s}", "type", "Claim", "key", key, "owner", f->stream), &x,
                     on_claim);
}
