/* The scheduler: a heap of due times driving one uv_timer.  See scheduler.h. */
#include "reactors/scheduler.h"

#include <stdlib.h>
#include <string.h>

#include "actors/runtime.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "core/uuid.h"
#include "db/pg.h"
#include "events/codec.h"
#include "reactors/idmap.h"
#include "reactors/messaging_int.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#define MAX_IN_FLIGHT 256
#define RETRY_MS 1000
#define LOAD_TRIES 10

typedef struct entry_s {
    char id[SB_UUID_STRLEN + 1];
    char contact[SB_UUID_STRLEN + 1];
    char workspace[SB_UUID_STRLEN + 1];
    int64_t at_us;
    size_t idx;  /* in the heap; SIZE_MAX while its dispatch is on its way */
    bool forget; /* removed while dispatching: drop it when the answer comes */
    sb_scheduler_t *s;
} entry_t;

struct sb_scheduler_s {
    sb_loop_t *loop;
    sb_sub_t *sub;
    sb_idmap_t entries; /* id -> entry (in the heap or dispatching) */
    entry_t **heap;
    size_t n, cap;
    int in_flight;
    uv_timer_t timer;
    bool timer_open;
    sb_pg_req_t req;
    bool loading;
    int load_failures;
    bool stopping;
    sb_scheduler_stats_t stats;
};

/* ---- the heap ----------------------------------------------------------------------------------- */

static void swap(sb_scheduler_t *s, size_t a, size_t b)
{
    entry_t *t = s->heap[a];
    s->heap[a] = s->heap[b];
    s->heap[b] = t;
    s->heap[a]->idx = a;
    s->heap[b]->idx = b;
}

static void sift_up(sb_scheduler_t *s, size_t i)
{
    while (i > 0 && s->heap[(i - 1) / 2]->at_us > s->heap[i]->at_us) {
        swap(s, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void sift_down(sb_scheduler_t *s, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < s->n && s->heap[l]->at_us < s->heap[m]->at_us)
            m = l;
        if (r < s->n && s->heap[r]->at_us < s->heap[m]->at_us)
            m = r;
        if (m == i)
            return;
        swap(s, i, m);
        i = m;
    }
}

static int heap_push(sb_scheduler_t *s, entry_t *e)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        entry_t **h = realloc(s->heap, cap * sizeof(*h));
        if (h == NULL)
            return SB_ENOMEM;
        s->heap = h;
        s->cap = cap;
    }
    e->idx = s->n;
    s->heap[s->n++] = e;
    sift_up(s, e->idx);
    return 0;
}

static void heap_remove(sb_scheduler_t *s, entry_t *e)
{
    size_t i = e->idx;
    if (i == SIZE_MAX)
        return;
    s->n--;
    if (i != s->n) {
        s->heap[i] = s->heap[s->n];
        s->heap[i]->idx = i;
        sift_down(s, i);
        sift_up(s, i);
    }
    e->idx = SIZE_MAX;
}

/* ---- timers --------------------------------------------------------------------------------------- */

static void on_timer(uv_timer_t *t);

/* Arms the timer for the earliest entry. */
static void arm(sb_scheduler_t *s)
{
    if (s->stopping)
        return;
    s->stats.pending = s->n;
    if (s->n == 0) {
        s->stats.next_us = 0;
        uv_timer_stop(&s->timer);
        return;
    }
    int64_t at = s->heap[0]->at_us, now = sb_clock_now_us();
    s->stats.next_us = at;
    uint64_t ms = at > now ? (uint64_t)((at - now + 999) / 1000) : 0;
    if (s->in_flight >= MAX_IN_FLIGHT && ms < 10)
        ms = 10; /* a backlog: let the dispatches on their way come back first */
    uv_timer_start(&s->timer, on_timer, ms, 0);
}

static void add(sb_scheduler_t *s, const char *id, const char *contact, const char *workspace, int64_t at_us)
{
    entry_t *e = sb_idmap_get(&s->entries, id);
    if (e != NULL) {
        e->forget = false;
        if (e->idx != SIZE_MAX && e->at_us != at_us) {
            e->at_us = at_us;
            sift_down(s, e->idx);
            sift_up(s, e->idx);
        }
        return;
    }
    e = calloc(1, sizeof(*e));
    if (e == NULL) {
        sb_log_error("scheduler", "out of memory: message %s waits for the next start", id);
        return;
    }
    e->s = s;
    memcpy(e->id, id, SB_UUID_STRLEN);
    memcpy(e->contact, contact, SB_UUID_STRLEN);
    memcpy(e->workspace, workspace, SB_UUID_STRLEN);
    e->at_us = at_us;
    if (sb_idmap_put(&s->entries, e->id, e) != 0 || heap_push(s, e) != 0) {
        sb_idmap_del(&s->entries, e->id);
        free(e);
        sb_log_error("scheduler", "out of memory: message %s waits for the next start", id);
    }
}

static void forget(sb_scheduler_t *s, const char *id)
{
    entry_t *e = sb_idmap_get(&s->entries, id);
    if (e == NULL)
        return;
    if (e->idx == SIZE_MAX) { /* dispatching: its answer frees it */
        e->forget = true;
        return;
    }
    heap_remove(s, e);
    sb_idmap_del(&s->entries, id);
    free(e);
}

static void maybe_free(sb_scheduler_t *s)
{
    if (!s->stopping || s->in_flight > 0 || s->loading || s->timer_open)
        return;
    for (size_t i = 0; i < s->entries.cap; i++)
        free(s->entries.slots[i].key != NULL ? s->entries.slots[i].value : NULL);
    sb_idmap_free(&s->entries);
    free(s->heap);
    free(s);
}

static void on_dispatched(const sb_ask_reply_t *reply, void *data)
{
    entry_t *e = data;
    sb_scheduler_t *s = e->s;
    s->in_flight--;
    bool transient = reply->status != 0 && reply->status != SB_EREJECTED;
    if (s->stopping || e->forget || !transient) {
        if (!transient) {
            s->stats.dispatched++;
            if (reply->status == SB_EREJECTED && reply->err != NULL)
                sb_log_debug("scheduler", "message %s not dispatched: %s", e->id, reply->err->code);
        } else if (!s->stopping) {
            sb_log_warn("scheduler", "message %s: %s", e->id, sb_strerror(reply->status));
        }
        sb_idmap_del(&s->entries, e->id);
        free(e);
        if (s->stopping)
            maybe_free(s);
        else
            arm(s);
        return;
    }
    /* The actor could not take it now (overload, a database outage): a second later. */
    e->at_us = sb_clock_now_us() + RETRY_MS * 1000;
    if (heap_push(s, e) != 0) {
        sb_idmap_del(&s->entries, e->id);
        free(e);
    }
    arm(s);
}

static void dispatch(sb_scheduler_t *s, entry_t *e)
{
    char stream[16 + SB_UUID_STRLEN];
    snprintf(stream, sizeof(stream), "contact-%s", e->contact);
    json_t *cmd = json_pack("{s:s, s:s}", "type", "DispatchScheduledMessage", "message_id", e->id);
    sb_ask_opts_t opts = {.source = "reactor:scheduler",
                          .correlation_id = e->id,
                          .workspace_id = e->workspace,
                          .skip_state = true,
                          .skip_event_data = true};
    s->in_flight++;
    int rc = sb_actor_ask(sb_messaging_loops(sb_messaging_current()), stream, cmd, &opts, on_dispatched, e);
    if (rc != 0) {
        s->in_flight--;
        sb_log_error("scheduler", "message %s cannot be dispatched: %s", e->id, sb_strerror(rc));
        sb_idmap_del(&s->entries, e->id);
        free(e);
    }
}

static void on_timer(uv_timer_t *t)
{
    sb_scheduler_t *s = container_of(t, sb_scheduler_t, timer);
    int64_t now = sb_clock_now_us();
    while (s->n > 0 && s->heap[0]->at_us <= now && s->in_flight < MAX_IN_FLIGHT) {
        entry_t *e = s->heap[0];
        heap_remove(s, e);
        dispatch(s, e);
    }
    arm(s);
}

/* ---- following the log ---------------------------------------------------------------------------- */

static void on_event(sb_scheduler_t *s, const sb_event_t *ev)
{
    json_t *p = NULL;
    if (strncmp(ev->stream, "contact-", 8) != 0 || strlen(ev->stream) != 8 + SB_UUID_STRLEN ||
        sb_codec_to_jansson(ev->payload, ev->payload_len, &p, NULL, 0) != 0)
        return;
    const char *t = ev->type;
    const char *id = json_string_value(json_object_get(p, "message_id"));
    bool valid_id = id != NULL && strlen(id) == SB_UUID_STRLEN;
    if (strcmp(t, "MessageScheduled") == 0 && valid_id) {
        int64_t at = 0;
        const char *send_at = json_string_value(json_object_get(p, "send_at"));
        char ws[SB_UUID_STRLEN + 1];
        sb_uuid_format(&ev->workspace, ws);
        if (send_at != NULL && sb_clock_parse_rfc3339(send_at, &at) == 0)
            add(s, id, ev->stream + 8, ws, at);
    } else if (strcmp(t, "MessageQueued") == 0 && valid_id) {
        if (json_object_get(p, "queued_at") != NULL)
            forget(s, id); /* dispatched */
    } else if ((strcmp(t, "MessageScheduleCancelled") == 0 || strcmp(t, "MessageFailed") == 0) && valid_id) {
        forget(s, id);
    } else if (strcmp(t, "ContactDeleted") == 0) {
        size_t i;
        const json_t *v;
        json_array_foreach(json_object_get(p, "cancelled_message_ids"), i, v)
        {
            if (json_is_string(v))
                forget(s, json_string_value(v));
        }
    }
    json_decref(p);
}

static void on_events(sb_sub_t *sub, const sb_event_t *events, int n, void *data)
{
    sb_scheduler_t *s = data;
    for (int i = 0; i < n; i++)
        on_event(s, &events[i]);
    arm(s);
}

static void follow(sb_scheduler_t *s, int64_t from)
{
    static const char *const categories[] = {"contact"};
    static const char *const types[] = {"MessageScheduled", "MessageQueued", "MessageScheduleCancelled",
                                        "MessageFailed", "ContactDeleted"};
    sb_log_filter_t f = {.categories = categories, .ncategories = 1, .types = types, .ntypes = 5};
    s->sub =
        sb_follower_subscribe(sb_messaging_current()->opts.follower, s->loop->db, from, &f, on_events, s);
    if (s->sub == NULL)
        sb_log_error("scheduler", "cannot follow the log: out of memory");
    arm(s);
}

static void load(sb_scheduler_t *s);

static void on_retry(uv_timer_t *t)
{
    load(container_of(t, sb_scheduler_t, timer));
}

static void on_loaded(sb_pg_req_t *req, int status)
{
    sb_scheduler_t *s = req->data;
    s->loading = false;
    if (s->stopping) {
        maybe_free(s);
        return;
    }
    PGresult *r = req->results[0];
    if (status != 0 || PQntuples(r) == 0) {
        if (++s->load_failures >= LOAD_TRIES) {
            sb_log_warn("scheduler",
                        "the scheduled read model cannot be read (%s): reading the log from the start",
                        status != 0 && req->error ? req->error : "no checkpoint");
            follow(s, 0);
            return;
        }
        uv_timer_start(&s->timer, on_retry, RETRY_MS, 0);
        return;
    }
    int64_t from = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    for (int i = 0; i < PQntuples(r); i++) {
        if (PQgetisnull(r, i, 1))
            continue; /* the checkpoint's row when nothing is scheduled */
        add(s, PQgetvalue(r, i, 1), PQgetvalue(r, i, 2), PQgetvalue(r, i, 3),
            strtoll(PQgetvalue(r, i, 4), NULL, 10));
    }
    sb_log_info("scheduler", "running: %zu pending from the read model at position %lld", s->n,
                (long long)from);
    follow(s, from);
}

static void load(sb_scheduler_t *s)
{
    /* One statement, so the rows and the checkpoint are of one snapshot: the projection stores
     * both in one transaction, so the rows are exactly what the log up to the checkpoint says. */
    s->loading = true;
    sb_pg_req_init(&s->req,
                   "SELECT p.position, m.id, m.contact_id, m.workspace_id, "
                   "(extract(epoch FROM m.send_at) * 1000000)::bigint "
                   "FROM projection_state p LEFT JOIN scheduled.messages m ON true "
                   "WHERE p.name = 'scheduled' AND p.state = 'live'",
                   0, NULL, on_loaded, s);
    sb_pg_submit(s->loop->db, &s->req);
}

/* ---- start and stop ------------------------------------------------------------------------------- */

int sb_scheduler_start(sb_scheduler_t **out)
{
    sb_loop_t *loop = sb_loop_current();
    *out = NULL;
    if (loop == NULL || loop->db == NULL || sb_messaging_current() == NULL)
        return SB_EINVAL;
    sb_scheduler_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return SB_ENOMEM;
    s->loop = loop;
    uv_timer_init(&loop->uv, &s->timer);
    s->timer_open = true;
    load(s);
    *out = s;
    return 0;
}

static void on_timer_closed(uv_handle_t *h)
{
    sb_scheduler_t *s = container_of((uv_timer_t *)h, sb_scheduler_t, timer);
    s->timer_open = false;
    maybe_free(s);
}

void sb_scheduler_stop(sb_scheduler_t *s)
{
    if (s == NULL || s->stopping)
        return;
    s->stopping = true;
    if (s->sub != NULL) {
        sb_sub_close(s->sub);
        s->sub = NULL;
    }
    /* Entries in the heap go with the scheduler; those dispatching are freed by their answers. */
    for (size_t i = 0; i < s->n; i++) {
        sb_idmap_del(&s->entries, s->heap[i]->id);
        free(s->heap[i]);
    }
    s->n = 0;
    uv_timer_stop(&s->timer);
    uv_close((uv_handle_t *)&s->timer, on_timer_closed);
}

void sb_scheduler_get_stats(const sb_scheduler_t *s, sb_scheduler_stats_t *out)
{
    *out = s->stats;
}
