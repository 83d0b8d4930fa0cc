/* The runtime's edges: starting and stopping a loop's runtime, messages between loops (asks,
 * reads, scheduled commands and their replies), the timer heap's uv_timer and the counters.
 * What an actor does with a message is in runtime_actor.c. */
#include "actors/runtime.h"
#include "actors/runtime_int.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "events/stream.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* ---- configuration ------------------------------------------------------------------------- */

static void apply_defaults(sb_runtime_config_t *c)
{
    if (c->mailbox_capacity <= 0)
        c->mailbox_capacity = 1024;
    if (c->idle_ms == 0)
        c->idle_ms = 300 * 1000;
    if (c->sweep_ms == 0) {
        c->sweep_ms = c->idle_ms / 4;
        if (c->sweep_ms < 50)
            c->sweep_ms = 50;
        if (c->sweep_ms > 10000)
            c->sweep_ms = 10000;
    }
    if (c->memory_budget == 0)
        c->memory_budget = (size_t)256 << 20;
    if (c->snapshot_every == 0)
        c->snapshot_every = 100;
    if (c->snapshot_on_passivate <= 0)
        c->snapshot_on_passivate = 20;
    if (c->max_attempts <= 0)
        c->max_attempts = 5;
    if (c->read_page <= 0)
        c->read_page = 500;
    if (c->find_kind == NULL)
        c->find_kind = sb_kind_find;
    if (c->open_store == NULL)
        c->open_store = sb_rt_pgstore_open;
}

void sb_runtime_config_from(sb_runtime_config_t *rc, const sb_config_t *cfg)
{
    if (cfg->actor_idle_seconds > 0)
        rc->idle_ms = (uint64_t)cfg->actor_idle_seconds * 1000;
}

/* ---- messages ------------------------------------------------------------------------------ */

/* Drops the message's hold on its context: a reference, or nothing when the caller lent it. */
static void release_context(sb__msg_t *m)
{
    if (!m->context_borrowed)
        json_decref(m->context);
    m->context = NULL;
}

static void msg_free(sb__msg_t *m)
{
    json_decref(m->cmd);
    release_context(m);
    json_decref(m->state);
    for (int i = 0; i < m->nevents; i++)
        json_decref(m->events[i].data);
    free(m->events);
    free(m->err);
    free(m->error);
    free(m);
}

static void on_reply(sb_task_t *t)
{
    sb__msg_t *m = container_of(t, sb__msg_t, task);
    sb_ask_reply_t r = {
        .status = m->status,
        .stream = m->stream,
        .version = m->version,
        .events = m->events,
        .nevents = m->nevents,
        .state = m->state,
        .err = m->status == SB_EREJECTED ? m->err : NULL,
        .error = m->error,
        .attempts = m->attempts,
        .precondition_failed = m->precondition_failed,
    };
    m->cb(&r, m->data);
    msg_free(m);
}

void sb__msg_reply(sb__msg_t *m, int status)
{
    m->status = status;
    /* The command and context are done with: release them here, on the loop that used them. */
    json_decref(m->cmd);
    m->cmd = NULL;
    release_context(m);
    if (m->cb != NULL) {
        m->task.cb = on_reply;
        sb_loop_post(m->caller, &m->task);
        return;
    }
    if (status == SB_EREJECTED)
        sb_log_debug("actors", "scheduled command rejected stream=%s code=%s", m->stream,
                     m->err ? m->err->code : "");
    else if (status != 0 && status != SB_ESHUTDOWN)
        sb_log_warn("actors", "command without a caller failed stream=%s error=%s%s%s", m->stream,
                    sb_errname(status), m->error ? " detail=" : "", m->error ? m->error : "");
    msg_free(m);
}

/* Builds a message for stream; on the caller's thread.  has_cb: a callback will be told the reply (a
 * borrowed context may then stay borrowed).  0 or SB_EINVAL / SB_ENOMEM. */
static int msg_new(sb_loops_t *g, int kind, const char *stream, const sb_ask_opts_t *opts, bool has_cb,
                   sb__msg_t **out)
{
    if (g == NULL || g->n <= 0 || stream == NULL)
        return SB_EINVAL;
    size_t len = strlen(stream);
    sb_stream_name_t sn;
    if (len >= SB_STREAM_NAME_MAX || sb_stream_parse(stream, len, &sn) != 0)
        return SB_EINVAL;
    static const sb_ask_opts_t none;
    if (opts == NULL)
        opts = &none;
    if (opts->n_more_versions < 0 || opts->n_more_versions > SB_ASK_MAX_VERSIONS - 1)
        return SB_EINVAL;
    const char *strs[5] = {opts->correlation_id, opts->causation_id, opts->user_id, opts->request_id,
                           opts->source};
    size_t lens[5];
    size_t total = len + 1;
    for (int i = 0; i < 5; i++) {
        lens[i] = strs[i] ? strlen(strs[i]) : 0;
        if (lens[i] > SB_ASK_MAX_STR)
            return SB_EINVAL;
        total += strs[i] ? lens[i] + 1 : 0;
    }
    sb_uuid_t ws;
    bool has_ws = false;
    if (opts->workspace_id != NULL) {
        if (sb_uuid_parse(opts->workspace_id, strlen(opts->workspace_id), &ws) != 0)
            return SB_EINVAL;
        has_ws = true;
    } else if (strcmp(sn.category, "workspace") == 0) {
        ws = sn.id;
        has_ws = true;
    }
    sb__msg_t *m = calloc(1, sizeof(*m) + total);
    if (m == NULL)
        return SB_ENOMEM;
    m->kind = (uint8_t)kind;
    m->hash = sb_stream_hash(stream, len);
    m->owner = g->loops[sb_loops_pick(g, m->hash)];
    m->skip_state = opts->skip_state;
    m->skip_event_data = opts->skip_event_data;
    m->check_version = opts->check_version;
    m->refresh = opts->refresh;
    m->expected_version = opts->expected_version;
    m->n_more_versions = (uint8_t)opts->n_more_versions;
    memcpy(m->more_versions, opts->more_versions, (size_t)opts->n_more_versions * sizeof(int64_t));
    m->has_workspace = has_ws;
    if (has_ws)
        m->workspace = ws;
    m->stream_len = len;
    memcpy(m->stream, stream, len + 1);
    char *p = m->stream + len + 1;
    const char **slots[5] = {&m->meta.correlation_id, &m->meta.causation_id, &m->meta.user_id,
                             &m->meta.request_id, &m->meta.source};
    for (int i = 0; i < 5; i++) {
        if (strs[i] == NULL)
            continue;
        memcpy(p, strs[i], lens[i] + 1);
        *slots[i] = p;
        p += lens[i] + 1;
    }
    if (opts->context != NULL) {
        m->context_borrowed = opts->context_borrowed && has_cb;
        m->context = m->context_borrowed ? (json_t *)opts->context : json_incref((json_t *)opts->context);
    }
    *out = m;
    return 0;
}

static void on_arrive(sb_task_t *t)
{
    sb__msg_t *m = container_of(t, sb__msg_t, task);
    sb__runtime_t *rt = m->owner->actors;
    if (rt == NULL || rt->stopping) {
        sb__msg_reply(m, SB_ESHUTDOWN);
        return;
    }
    sb__actor_deliver(rt, m);
}

static int send_msg(sb_loops_t *g, int kind, const char *stream, json_t *cmd, const sb_ask_opts_t *opts,
                    sb_ask_cb cb, void *data)
{
    sb_loop_t *caller = sb_loop_current();
    if (cb != NULL && caller == NULL)
        goto fail_inval;
    if (kind != SB__MSG_GET && !json_is_object(cmd))
        goto fail_inval;
    sb__msg_t *m;
    int r = msg_new(g, kind, stream, opts, cb != NULL, &m);
    if (r != 0) {
        json_decref(cmd);
        return r;
    }
    m->cmd = cmd;
    m->caller = caller;
    m->cb = cb;
    m->data = data;
    m->task.cb = on_arrive;
    sb_loop_post(m->owner, &m->task);
    return 0;
fail_inval:
    json_decref(cmd);
    return SB_EINVAL;
}

int sb_actor_ask(sb_loops_t *g, const char *stream, json_t *cmd, const sb_ask_opts_t *opts, sb_ask_cb cb,
                 void *data)
{
    return send_msg(g, SB__MSG_ASK, stream, cmd, opts, cb, data);
}

int sb_actor_get(sb_loops_t *g, const char *stream, const sb_ask_opts_t *opts, sb_ask_cb cb, void *data)
{
    return send_msg(g, SB__MSG_GET, stream, NULL, opts, cb, data);
}

/* ---- scheduled commands ------------------------------------------------------------------ */

static void on_timer(uv_timer_t *h);

static void arm_timer(sb__runtime_t *rt)
{
    const sb__timer_t *top = sb__heap_top(&rt->heap);
    SB__STAT_SET(rt, timers, rt->heap.n);
    if (top == NULL) {
        uv_timer_stop(&rt->timer);
        return;
    }
    int64_t wait = top->at_us - sb_clock_now_us();
    uint64_t ms = wait <= 0 ? 0 : (uint64_t)(wait + 999) / 1000;
    uv_timer_start(&rt->timer, on_timer, ms, 0);
}

static void on_timer(uv_timer_t *h)
{
    sb__runtime_t *rt = container_of(h, sb__runtime_t, timer);
    int64_t now = sb_clock_now_us();
    const sb__timer_t *top;
    while ((top = sb__heap_top(&rt->heap)) != NULL && top->at_us <= now)
        sb__actor_deliver(rt, sb__heap_pop(&rt->heap));
    arm_timer(rt);
}

static void on_schedule(sb_task_t *t)
{
    sb__msg_t *m = container_of(t, sb__msg_t, task);
    sb__runtime_t *rt = m->owner->actors;
    if (rt == NULL || rt->stopping) {
        sb__msg_reply(m, SB_ESHUTDOWN);
        return;
    }
    if (m->at_us <= sb_clock_now_us()) {
        sb__actor_deliver(rt, m);
        return;
    }
    const sb__timer_t *before = sb__heap_top(&rt->heap);
    int64_t earliest = before ? before->at_us : INT64_MAX;
    if (sb__heap_push(&rt->heap, m->at_us, m) != 0) {
        sb__msg_reply(m, SB_ENOMEM);
        return;
    }
    if (m->at_us < earliest)
        arm_timer(rt);
    else
        SB__STAT_SET(rt, timers, rt->heap.n);
}

int sb_actor_schedule(sb_loops_t *g, const char *stream, int64_t at_us, json_t *cmd,
                      const sb_ask_opts_t *opts)
{
    if (!json_is_object(cmd)) {
        json_decref(cmd);
        return SB_EINVAL;
    }
    sb__msg_t *m;
    int r = msg_new(g, SB__MSG_TIMER, stream, opts, false, &m);
    if (r != 0) {
        json_decref(cmd);
        return r;
    }
    m->cmd = cmd;
    m->at_us = at_us;
    m->task.cb = on_schedule;
    sb_loop_post(m->owner, &m->task);
    return 0;
}

/* ---- start, sweep, stop ---------------------------------------------------------------------- */

static void on_sweep(uv_timer_t *h)
{
    sb__runtime_t *rt = container_of(h, sb__runtime_t, sweep);
    sb__actors_passivate_idle(rt, rt->cfg.idle_ms);
}

void sb__runtime_maybe_free(sb__runtime_t *rt)
{
    if (!rt->stopping || rt->open_handles > 0 || rt->reg.n > 0)
        return;
    rt->store->ops->close(rt->store);
    sb__registry_free(&rt->reg);
    sb__heap_free(&rt->heap);
    free(rt->spare);
    if (rt->loop->actors == rt)
        rt->loop->actors = NULL;
    free(rt);
}

static void on_handle_closed(uv_handle_t *h)
{
    sb__runtime_t *rt = h->data;
    rt->open_handles--;
    sb__runtime_maybe_free(rt);
}

static void on_stop(sb_loop_t *loop, void *data)
{
    sb__runtime_t *rt = data;
    rt->stopping = true;
    rt->open_handles++; /* hold the runtime while actors are freed below */
    uv_close((uv_handle_t *)&rt->sweep, on_handle_closed);
    uv_close((uv_handle_t *)&rt->timer, on_handle_closed);
    sb__msg_t *m;
    while ((m = sb__heap_pop(&rt->heap)) != NULL)
        sb__msg_reply(m, SB_ESHUTDOWN);
    SB__STAT_SET(rt, timers, 0);
    sb__actors_stop(rt);
    rt->open_handles--;
    sb__runtime_maybe_free(rt);
}

int sb_runtime_start(sb_loop_t *loop, const sb_runtime_config_t *cfg)
{
    sb__runtime_t *rt = calloc(1, sizeof(*rt));
    if (rt == NULL)
        return SB_ENOMEM;
    if (cfg != NULL)
        rt->cfg = *cfg;
    apply_defaults(&rt->cfg);
    rt->loop = loop;
    sb__registry_init(&rt->reg);
    sb__heap_init(&rt->heap);
    rt->store = rt->cfg.open_store(loop, rt->cfg.store_arg);
    if (rt->store == NULL) {
        sb_log_error("actors", "cannot open the actor store loop=%d", loop->index);
        free(rt);
        return SB_EINVAL;
    }
    if (sb_loop_on_stop(loop, on_stop, rt) != 0)
        goto fail_hook;
    uv_timer_init(&loop->uv, &rt->sweep);
    uv_timer_init(&loop->uv, &rt->timer);
    rt->sweep.data = rt;
    rt->timer.data = rt;
    rt->open_handles = 2;
    /* The sweep alone must not keep a loop running (a pending scheduled command does). */
    uv_timer_start(&rt->sweep, on_sweep, rt->cfg.sweep_ms, rt->cfg.sweep_ms);
    uv_unref((uv_handle_t *)&rt->sweep);
    loop->actors = rt;
    return 0;
fail_hook:
    rt->store->ops->close(rt->store);
    free(rt);
    return SB_ENOMEM;
}

int sb_runtime_passivate_idle(sb_loop_t *loop, uint64_t idle_ms)
{
    sb__runtime_t *rt = loop->actors;
    return rt ? sb__actors_passivate_idle(rt, idle_ms) : 0;
}

void sb_runtime_add_stats(const sb_loop_t *loop, sb_runtime_stats_t *out)
{
    const sb__runtime_t *rt = loop->actors;
    if (rt == NULL)
        return;
    const sb__stats_t *s = &rt->stats;
#define ADD(f) out->f += atomic_load_explicit(&s->f, memory_order_relaxed)
    ADD(active);
    ADD(activations);
    ADD(passivations);
    ADD(mailbox_full);
    ADD(commands);
    ADD(rejected);
    ADD(appends);
    ADD(conflicts);
    ADD(retries);
    ADD(failures);
    ADD(snapshots);
    ADD(timers);
    ADD(memory);
#undef ADD
}

void sb_runtime_get_stats(const sb_loops_t *g, sb_runtime_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    for (int i = 0; i < g->n; i++)
        sb_runtime_add_stats(g->loops[i], out);
}
