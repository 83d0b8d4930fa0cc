/* One actor's life on its loop: activation (snapshot, then events), the mailbox, deciding and
 * appending, reloading after a conflict or an unknown outcome, snapshots and passivation.
 *
 * An actor is in one phase at a time.  LOADING and RELOADING read from the store, APPENDING waits
 * for a commit; only READY takes messages, one at a time, in arrival order.  An idle actor (READY,
 * empty mailbox, nothing in hand) sits in the loop's LRU list, from which the sweep and the memory
 * budget passivate it.
 *
 * Every path that may free an actor (passivation, a failed load, the end of a stop) ends in
 * actor_run() or actor_free(), and callers touch neither the actor nor the runtime afterwards. */
#include "actors/runtime_int.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "events/event.h"
#include "events/stream.h"

#include <stdlib.h>
#include <string.h>

static void actor_run(sb__actor_t *a);
static void read_more(sb__actor_t *a);

/* ---- memory estimates ------------------------------------------------------------------ */

/* Roughly what jansson allocates (structs, hash buckets and pairs, string copies, malloc
 * overhead): calibrated against RSS growth with contact-sized states (bench/actors.c, memory). */

static size_t json_size_at(const json_t *j, int depth)
{
    if (j == NULL || depth > 128)
        return 0;
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        size_t n = 160; /* the object and its bucket table */
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)j, k, v) n += 64 + strlen(k) + json_size_at(v, depth + 1);
        return n;
    }
    case JSON_ARRAY: {
        size_t n = 64 + 8 * json_array_size(j);
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v) n += json_size_at(v, depth + 1);
        return n;
    }
    case JSON_STRING:
        return 64 + json_string_length(j);
    case JSON_INTEGER:
    case JSON_REAL:
        return 32;
    default:
        return 0; /* true, false and null are shared singletons */
    }
}

size_t sb__json_size(const json_t *j)
{
    return json_size_at(j, 0);
}

static void set_mem(sb__actor_t *a, size_t mem)
{
    sb__runtime_t *rt = a->rt;
    rt->mem = rt->mem - a->mem + mem;
    a->mem = mem;
    SB__STAT_SET(rt, memory, rt->mem);
}

static size_t base_mem(const sb__actor_t *a)
{
    return sizeof(*a) + a->stream_len + 1 + 2 * sizeof(sb__reg_slot_t);
}

/* ---- the LRU list of idle actors --------------------------------------------------------- */

static void lru_remove(sb__actor_t *a)
{
    if (!a->in_lru)
        return;
    sb__runtime_t *rt = a->rt;
    if (a->lru_prev)
        a->lru_prev->lru_next = a->lru_next;
    else
        rt->lru_head = a->lru_next;
    if (a->lru_next)
        a->lru_next->lru_prev = a->lru_prev;
    else
        rt->lru_tail = a->lru_prev;
    a->lru_prev = a->lru_next = NULL;
    a->in_lru = false;
}

static void lru_append(sb__actor_t *a)
{
    sb__runtime_t *rt = a->rt;
    a->lru_next = NULL;
    a->lru_prev = rt->lru_tail;
    if (rt->lru_tail)
        rt->lru_tail->lru_next = a;
    else
        rt->lru_head = a;
    rt->lru_tail = a;
    a->in_lru = true;
}

/* ---- freeing and passivating ----------------------------------------------------------------- */

static void actor_free(sb__actor_t *a)
{
    sb__runtime_t *rt = a->rt;
    lru_remove(a);
    sb__registry_remove(&rt->reg, a);
    set_mem(a, 0);
    json_decref(a->state);
    free(a);
    SB__STAT_SET(rt, active, rt->reg.n);
    if (rt->stopping)
        sb__runtime_maybe_free(rt);
}

static void save_snapshot(sb__actor_t *a)
{
    sb__runtime_t *rt = a->rt;
    rt->store->ops->save_snapshot(rt->store, a->stream, a->version, a->position, a->state);
    a->unsnapshotted = 0;
    a->snapshot_ms = uv_now(&rt->loop->uv);
    SB__STAT_ADD(rt, snapshots, 1);
}

/* Every K events, at most once per interval for a busy actor, and at 10 K events whatever the time. */
static bool snapshot_due(const sb__actor_t *a)
{
    const sb_runtime_config_t *cfg = &a->rt->cfg;
    if (cfg->snapshot_every <= 0 || a->unsnapshotted < cfg->snapshot_every)
        return false;
    return cfg->snapshot_interval_ms == 0 || a->unsnapshotted >= 10 * (int64_t)cfg->snapshot_every ||
           uv_now(&a->rt->loop->uv) - a->snapshot_ms >= cfg->snapshot_interval_ms;
}

static void passivate(sb__actor_t *a)
{
    sb__runtime_t *rt = a->rt;
    if (rt->cfg.snapshot_every > 0 && a->version > 0 && a->unsnapshotted >= rt->cfg.snapshot_on_passivate)
        save_snapshot(a);
    SB__STAT_ADD(rt, passivations, 1);
    actor_free(a);
}

int sb__actors_passivate_idle(sb__runtime_t *rt, uint64_t idle_ms)
{
    if (rt->stopping)
        return 0; /* stopping frees idle actors itself (and may free rt with the last one) */
    uint64_t now = uv_now(&rt->loop->uv);
    int n = 0;
    /* The list is ordered by idle_since: stop at the first actor that is still fresh. */
    while (rt->lru_head != NULL && now - rt->lru_head->idle_since >= idle_ms) {
        passivate(rt->lru_head);
        n++;
    }
    return n;
}

/* a has nothing to do: park it in the LRU list, or free it when stopping. */
static void actor_idle(sb__actor_t *a)
{
    sb__runtime_t *rt = a->rt;
    if (rt->stopping) {
        actor_free(a);
        return;
    }
    a->idle_since = uv_now(&rt->loop->uv);
    lru_append(a);
    /* Over budget: the least recently used go first (possibly a itself, if it is the only one). */
    while (rt->mem > rt->cfg.memory_budget && rt->lru_head != NULL)
        passivate(rt->lru_head);
}

/* ---- failures ------------------------------------------------------------------------------ */

/* The actor's state cannot be trusted or loaded: fail what it holds and forget it.  The next
 * message activates it afresh. */
static void load_failed(sb__actor_t *a, int status, const char *error)
{
    sb__runtime_t *rt = a->rt;
    if (status != SB_ESHUTDOWN) {
        SB__STAT_ADD(rt, failures, 1);
        sb_log_warn("actors", "cannot load actor stream=%s error=%s%s%s", a->stream, sb_errname(status),
                    error ? " detail=" : "", error ? error : "");
    }
    if (a->cur != NULL) {
        sb__msg_t *m = a->cur;
        a->cur = NULL;
        if (error != NULL && m->error == NULL)
            m->error = strdup(error);
        sb__msg_reply(m, status);
    }
    while (a->mb_head != NULL) {
        sb__msg_t *m = a->mb_head;
        a->mb_head = m->next;
        sb__msg_reply(m, status);
    }
    a->mb_tail = NULL;
    a->mb_len = 0;
    actor_free(a);
}

/* ---- loading ------------------------------------------------------------------------------- */

static void loaded(sb__actor_t *a)
{
    sb__runtime_t *rt = a->rt;
    if (a->phase == SB__LOADING)
        SB__STAT_ADD(rt, activations, 1);
    a->phase = SB__READY;
    a->fresh_seq = a->read_seq;
    set_mem(a, base_mem(a) + sb__json_size(a->state));
    actor_run(a);
}

static void on_page(void *data, int status, const sb_rt_event_t *events, int n, bool more, const char *error)
{
    sb__actor_t *a = data;
    if (status != 0) {
        load_failed(a, status, error);
        return;
    }
    for (int i = 0; i < n; i++) {
        const sb_rt_event_t *e = &events[i];
        if (e->ev.version != a->version + 1)
            sb_log_warn("actors", "stream version gap stream=%s have=%lld got=%lld", a->stream,
                        (long long)a->version, (long long)e->ev.version);
        a->kind->evolve(a->state, &e->ev);
        a->version = e->ev.version;
        a->position = e->position;
        a->unsnapshotted++;
    }
    if (more && n > 0 && !a->rt->stopping) {
        read_more(a);
        return;
    }
    if (more && n > 0) {
        load_failed(a, SB_ESHUTDOWN, NULL);
        return;
    }
    loaded(a);
}

static void read_more(sb__actor_t *a)
{
    sb__runtime_t *rt = a->rt;
    rt->store->ops->read_events(rt->store, a->stream, a->version, rt->cfg.read_page, on_page, a);
}

static void on_snapshot(void *data, int status, json_t *state, int64_t version, int64_t position,
                        const char *error)
{
    sb__actor_t *a = data;
    if (status != 0) {
        json_decref(state);
        load_failed(a, status, error);
        return;
    }
    if (state != NULL) {
        a->state = state;
        a->version = version;
        a->position = position;
    } else {
        a->state = a->kind->initial();
        if (a->state == NULL) {
            load_failed(a, SB_ENOMEM, NULL);
            return;
        }
    }
    a->unsnapshotted = 0;
    a->snapshot_ms = uv_now(&a->rt->loop->uv);
    read_more(a);
}

/* Reads what others appended after our version, then carries on (deciding a->cur again, if set). */
static void reload(sb__actor_t *a)
{
    if (a->rt->stopping) {
        load_failed(a, SB_ESHUTDOWN, NULL);
        return;
    }
    a->phase = SB__RELOADING;
    a->read_seq++;
    read_more(a);
}

/* ---- deciding and appending ----------------------------------------------------------------- */

/* Event lists are ~0.5 KiB: keep one spare per loop, since most commands decide on the spot. */
static sb_devents_t *devents_get(sb__runtime_t *rt)
{
    sb_devents_t *d = rt->spare;
    rt->spare = NULL;
    if (d == NULL)
        d = malloc(sizeof(*d));
    if (d != NULL)
        d->n = 0;
    return d;
}

static void devents_put(sb__runtime_t *rt, sb_devents_t *d)
{
    sb_devents_clear(d);
    if (rt->spare == NULL)
        rt->spare = d;
    else
        free(d);
}

static void fill_state(sb__actor_t *a, sb__msg_t *m)
{
    m->version = a->version;
    if (!m->skip_state && m->cb != NULL)
        m->state = json_deep_copy(a->state);
}

static void on_appended(void *data, const sb_rt_append_res_t *res)
{
    sb__actor_t *a = data;
    sb__runtime_t *rt = a->rt;
    sb__msg_t *m = a->cur;
    sb_devents_t *d = a->decided;
    a->decided = NULL;
    a->phase = SB__READY;
    switch (res->status) {
    case 0: {
        SB__STAT_ADD(rt, appends, 1);
        int n = d->n;
        int64_t first = a->version + 1;
        if (res->version != a->version + n)
            sb_log_warn("actors", "append reported an unexpected version stream=%s expected=%lld got=%lld",
                        a->stream, (long long)(a->version + n), (long long)res->version);
        bool exact = res->last_position - res->first_position == n - 1;
        if (m->cb != NULL) {
            m->events = calloc((size_t)n, sizeof(*m->events));
            m->nevents = m->events ? n : 0;
        }
        size_t grew = a->decided_mem;
        for (int i = 0; i < n; i++) {
            sb_devent_t *ev = &d->items[i];
            ev->version = first + i;
            ev->recorded_at_us = res->recorded_at_us;
            if (m->events != NULL) {
                sb_ask_event_t *out = &m->events[i];
                out->type = ev->type;
                out->data = m->skip_event_data ? NULL : json_deep_copy(ev->data);
                out->version = ev->version;
                out->recorded_at_us = ev->recorded_at_us;
                out->position = exact        ? res->first_position + i
                                : i == 0     ? res->first_position
                                : i == n - 1 ? res->last_position
                                             : 0;
            }
            a->kind->evolve(a->state, ev);
        }
        a->version = first + n - 1;
        a->position = res->last_position;
        a->unsnapshotted += n;
        devents_put(rt, d);
        a->cur = NULL;
        fill_state(a, m);
        sb__msg_reply(m, 0);
        if (snapshot_due(a)) {
            save_snapshot(a);
            set_mem(a, base_mem(a) + sb__json_size(a->state)); /* re-measure now and then */
        } else {
            set_mem(a, a->mem + grew); /* events usually add about their own size */
        }
        break;
    }
    case SB_ECONFLICT:
        SB__STAT_ADD(rt, conflicts, 1);
        devents_put(rt, d);
        if (m->attempts < rt->cfg.max_attempts) {
            SB__STAT_ADD(rt, retries, 1); /* a->cur stays: it is decided again after the reload */
        } else {
            a->cur = NULL;
            m->version = res->version;
            sb__msg_reply(m, SB_ECONFLICT);
        }
        reload(a);
        return;
    case SB_EUNKNOWN:
        /* The commit may have happened: our state is stale either way until we read the log. */
        SB__STAT_ADD(rt, failures, 1);
        devents_put(rt, d);
        a->cur = NULL;
        m->version = a->version;
        if (res->error != NULL)
            m->error = strdup(res->error);
        sb__msg_reply(m, SB_EUNKNOWN);
        reload(a);
        return;
    default:
        if (res->status != SB_ESHUTDOWN)
            SB__STAT_ADD(rt, failures, 1);
        devents_put(rt, d);
        a->cur = NULL;
        m->version = a->version;
        if (res->error != NULL)
            m->error = strdup(res->error);
        sb__msg_reply(m, res->status);
        break;
    }
    actor_run(a);
}

/* The workspace a command's events belong to (see sb_ask_opts_t.workspace_id). */
static bool find_workspace(const sb__actor_t *a, const sb__msg_t *m, const sb_devents_t *d, sb_uuid_t *out)
{
    const char *s = json_string_value(json_object_get(a->state, "workspace_id"));
    if (s == NULL && a->version == 0 && d->n > 0)
        s = json_string_value(json_object_get(d->items[0].data, "workspace_id"));
    if (s != NULL && sb_uuid_parse(s, strlen(s), out) == 0)
        return true;
    if (m->has_workspace)
        *out = m->workspace;
    return m->has_workspace;
}

/* Whether the stream at version v meets m's If-Match (one version, or any of a list). */
static bool version_matches(const sb__msg_t *m, int64_t v)
{
    if (m->expected_version == v)
        return true;
    for (int i = 0; i < m->n_more_versions; i++)
        if (m->more_versions[i] == v)
            return true;
    return false;
}

/* The newest version m's If-Match names. */
static int64_t newest_expected(const sb__msg_t *m)
{
    int64_t v = m->expected_version;
    for (int i = 0; i < m->n_more_versions; i++)
        if (m->more_versions[i] > v)
            v = m->more_versions[i];
    return v;
}

/* Decides m.  Returns true when an append is now in flight (a->cur = m), false when m was
 * answered. */
static bool decide(sb__actor_t *a, sb__msg_t *m)
{
    sb__runtime_t *rt = a->rt;
    if (m->check_version && !version_matches(m, a->version)) {
        m->version = a->version;
        m->precondition_failed = true;
        sb__msg_reply(m, SB_ECONFLICT);
        return false;
    }
    m->attempts++;
    const char *dash = memchr(a->stream, '-', a->stream_len);
    sb_decide_ctx_t ctx = {
        .now_us = sb_clock_now_us(),
        .stream = a->stream,
        .id = dash ? dash + 1 : a->stream,
        .user_id = m->meta.user_id,
        .context = m->context,
    };
    sb_devents_t *d = devents_get(rt);
    if (d == NULL) {
        sb__msg_reply(m, SB_ENOMEM);
        return false;
    }
    sb_derror_t err;
    memset(&err, 0, sizeof(err));
    int r = a->kind->decide(a->state, m->cmd, &ctx, d, &err);
    if (r != 0 || d->n == 0) {
        devents_put(rt, d);
        m->version = a->version;
        if (r == SB_EREJECTED) {
            SB__STAT_ADD(rt, rejected, 1);
            m->err = malloc(sizeof(*m->err));
            if (m->err != NULL)
                *m->err = err;
            else
                r = SB_ENOMEM;
        }
        if (r == 0 || r == SB_EREJECTED)
            fill_state(a, m); /* a rejection shows the state it was refused on */
        sb__msg_reply(m, r);
        return false;
    }
    /* Measured now, while the events the decider just built are in cache, rather than when the
     * commit returns, after other requests have evicted them (the estimate is the same). */
    a->decided_mem = 0;
    for (int i = 0; i < d->n; i++) {
        d->items[i].recorded_at_us = ctx.now_us;
        a->decided_mem += sb__json_size(d->items[i].data);
    }
    a->decided = d;
    a->cur = m;
    a->phase = SB__APPENDING;
    sb_rt_append_req_t req = {
        .stream = a->stream,
        .expected_version = a->version > 0 ? a->version : SB_VERSION_NO_STREAM,
        .events = d->items,
        .nevents = d->n,
        .meta = m->meta,
    };
    req.has_workspace = find_workspace(a, m, d, &req.workspace);
    rt->store->ops->append(rt->store, &req, on_appended, a);
    return true;
}

/* Takes messages until one needs I/O or the mailbox is empty. */
static void actor_run(sb__actor_t *a)
{
    sb__runtime_t *rt = a->rt;
    while (a->phase == SB__READY) {
        sb__msg_t *m = a->cur;
        if (m != NULL) {
            a->cur = NULL; /* again after a conflict, or after a refresh */
        } else {
            m = a->mb_head;
            if (m == NULL)
                break;
            a->mb_head = m->next;
            if (a->mb_head == NULL)
                a->mb_tail = NULL;
            a->mb_len--;
            m->next = NULL;
            SB__STAT_ADD(rt, commands, 1);
        }
        if (rt->stopping) {
            sb__msg_reply(m, SB_ESHUTDOWN);
            continue;
        }
        /* Read the log first, unless a read that began after m arrived has finished: when asked
         * to (refresh), and when an If-Match names a version ahead of ours (another process wrote
         * the stream; answering 412 from our stale state would be wrong). */
        bool ahead = m->check_version && newest_expected(m) > a->version;
        if ((m->refresh || ahead) && a->fresh_seq <= m->arrived_seq) {
            a->cur = m;
            reload(a);
            return;
        }
        if (m->kind == SB__MSG_GET) {
            fill_state(a, m);
            sb__msg_reply(m, 0);
            continue;
        }
        if (decide(a, m))
            return;
    }
    if (a->phase == SB__READY)
        actor_idle(a);
}

/* ---- arrival ------------------------------------------------------------------------------ */

void sb__actor_deliver(sb__runtime_t *rt, sb__msg_t *m)
{
    sb__actor_t *a = sb__registry_find(&rt->reg, m->hash, m->stream, m->stream_len);
    if (a == NULL) {
        char category[SB_CATEGORY_MAX];
        const char *dash = memchr(m->stream, '-', m->stream_len);
        size_t clen = dash ? (size_t)(dash - m->stream) : 0;
        if (clen == 0 || clen >= sizeof(category)) {
            sb__msg_reply(m, SB_EINVAL);
            return;
        }
        memcpy(category, m->stream, clen);
        category[clen] = '\0';
        const sb_kind_t *kind = rt->cfg.find_kind(category);
        if (kind == NULL) {
            sb__msg_reply(m, SB_ENOTFOUND);
            return;
        }
        a = calloc(1, sizeof(*a) + m->stream_len + 1);
        if (a == NULL) {
            sb__msg_reply(m, SB_ENOMEM);
            return;
        }
        a->rt = rt;
        a->hash = m->hash;
        a->kind = kind;
        a->stream_len = m->stream_len;
        memcpy(a->stream, m->stream, m->stream_len + 1);
        a->phase = SB__LOADING;
        if (sb__registry_add(&rt->reg, a) != 0) {
            free(a);
            sb__msg_reply(m, SB_ENOMEM);
            return;
        }
        SB__STAT_SET(rt, active, rt->reg.n);
        set_mem(a, base_mem(a));
        a->mb_head = a->mb_tail = m;
        a->mb_len = 1;
        m->arrived_seq = a->read_seq++;
        rt->store->ops->load_snapshot(rt->store, a->stream, on_snapshot, a);
        return;
    }
    if (a->mb_len >= rt->cfg.mailbox_capacity) {
        SB__STAT_ADD(rt, mailbox_full, 1);
        sb__msg_reply(m, SB_EOVERLOAD);
        return;
    }
    m->next = NULL;
    m->arrived_seq = a->read_seq;
    if (a->mb_tail)
        a->mb_tail->next = m;
    else
        a->mb_head = m;
    a->mb_tail = m;
    a->mb_len++;
    if (a->phase == SB__READY && a->cur == NULL) {
        lru_remove(a);
        actor_run(a);
    }
}

/* ---- stopping ------------------------------------------------------------------------------ */

void sb__actors_stop(sb__runtime_t *rt)
{
    size_t n = rt->reg.n, k = 0;
    if (n == 0)
        return;
    sb__actor_t **all = malloc(n * sizeof(*all));
    if (all == NULL)
        abort(); /* small, and there is no way to stop cleanly without it */
    for (size_t i = 0; i < rt->reg.cap; i++)
        if (rt->reg.slots[i].actor != NULL)
            all[k++] = rt->reg.slots[i].actor;
    for (size_t i = 0; i < k; i++) {
        sb__actor_t *a = all[i];
        while (a->mb_head != NULL) {
            sb__msg_t *m = a->mb_head;
            a->mb_head = m->next;
            sb__msg_reply(m, SB_ESHUTDOWN);
        }
        a->mb_tail = NULL;
        a->mb_len = 0;
        /* Actors waiting for I/O finish when it completes (an in-flight append is answered with its
         * real outcome), then free themselves. */
        if (a->phase == SB__READY && a->cur == NULL)
            actor_free(a);
    }
    free(all);
}
