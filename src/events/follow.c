/* The follower and its subscribers: see follow.h and docs/event-log.md.
 *
 * The follower publishes contiguous batches (from, to].  Every loop that has subscribers has a
 * hub; the follower posts each batch to every hub with subscribers, and the hub hands it to its
 * subscribers on that loop.  A subscriber's invariant: it has delivered every matching event with
 * position <= its position.  Catch-up pages keep it; a live batch is usable when from <= position
 * (its events after position are delivered and position becomes to); a batch with from > position
 * would leave a hole, so the subscriber reads the log instead. */
#include "events/follow.h"
#include "core/error.h"
#include "core/log.h"
#include "core/uuid.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POLL_MS 100
#define OTHERS_EVERY_TICKS 10 /* every second */

typedef struct hub_s hub_t;

enum { SUB_CATCHUP, SUB_LIVE };

struct sb_sub_s {
    hub_t *hub;
    sb_sub_t *prev, *next;
    sb_pg_t *pg;
    sb_log_filter_t *filter;
    sb_sub_cb cb;
    void *data;
    int64_t position;
    int mode;
    bool reading; /* a catch-up read is in flight */
    bool paused;
    bool closed; /* freed once the in-flight read returns */
    bool in_cb;
    int64_t read_head; /* the follower's head when the in-flight read was issued */
    sb_read_t read;
    sb_batch_t *queue[SB_FOLLOW_MAX_QUEUED];
    int qhead, qlen;
};

struct hub_s {
    sb_follower_t *f;
    _Atomic(sb_loop_t *) loop;
    sb_sub_t *subs;
    _Atomic int nsubs;
    sb_event_t *scratch;
    int scratch_cap;
};

typedef struct delivery_s {
    sb_task_t task;
    hub_t *hub;
    sb_batch_t *batch;
} delivery_t;

typedef struct offer_s {
    sb_task_t task;
    sb_follower_t *f;
    sb_batch_t *batch;
} offer_t;

struct sb_follower_s {
    char *conninfo;
    int nloops;
    hub_t *hubs;
    _Atomic(sb_loop_t *) loop;
    char origin[48]; /* see sb_follower_origin */
    _Atomic uint64_t offers_published, offers_read;
    /* sb_follower_others: the connection's application_name, and the check for other followers */
    char app_name[96]; /* 59 characters: PostgreSQL keeps 63 */
    const char *app_name_values[1];
    sb_pg_req_t name_req, others_req;
    bool name_in_flight, others_in_flight;
    int ticks;
    _Atomic bool others;
    sb_pg_t *pg;
    uv_timer_t timer;
    bool timer_open;
    _Atomic int64_t head;
    bool reading;
    bool again;
    bool stopped;
    sb_pg_req_t head_req;
    sb_read_t read;
};

static void sub_process(sb_sub_t *s);

/* ---- batches ------------------------------------------------------------------------------ */

void sb_batch_ref(sb_batch_t *b)
{
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
}

void sb_batch_unref(sb_batch_t *b)
{
    if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1)
        free(b);
}

sb_batch_t *sb_batch_copy(int64_t from, const sb_event_t *events, int n)
{
    size_t bytes = sizeof(sb_batch_t) + (size_t)n * sizeof(sb_event_t);
    for (int i = 0; i < n; i++) {
        const sb_event_t *e = &events[i];
        bytes += strlen(e->stream) + 1 + strlen(e->type) + 1 + e->payload_len + e->metadata_len;
    }
    sb_batch_t *b = malloc(bytes);
    if (b == NULL)
        return NULL;
    atomic_init(&b->refs, 1);
    b->from = from;
    b->to = events[n - 1].position;
    b->n = n;
    b->events = (sb_event_t *)(b + 1);
    char *p = (char *)(b->events + n);
    for (int i = 0; i < n; i++) {
        const sb_event_t *e = &events[i];
        sb_event_t *d = &b->events[i];
        *d = *e;
        size_t n = strlen(e->stream) + 1;
        memcpy(p, e->stream, n);
        d->stream = p;
        p += n;
        n = strlen(e->type) + 1;
        memcpy(p, e->type, n);
        d->type = p;
        p += n;
        memcpy(p, e->payload, e->payload_len);
        d->payload = p;
        p += e->payload_len;
        memcpy(p, e->metadata, e->metadata_len);
        d->metadata = p;
        p += e->metadata_len;
    }
    return b;
}

/* ---- subscribers --------------------------------------------------------------------------- */

/* Delivers the matching events of evs (position > s->position) in one call. */
static void deliver(sb_sub_t *s, const sb_event_t *evs, int n)
{
    hub_t *h = s->hub;
    if (n > h->scratch_cap) {
        sb_event_t *p = realloc(h->scratch, (size_t)n * sizeof(*p));
        if (p == NULL)
            abort();
        h->scratch = p;
        h->scratch_cap = n;
    }
    int m = 0;
    for (int i = 0; i < n; i++)
        if (evs[i].position > s->position && sb_log_filter_match(s->filter, &evs[i]))
            h->scratch[m++] = evs[i];
    if (m == 0)
        return;
    s->position = h->scratch[m - 1].position;
    s->in_cb = true;
    s->cb(s, h->scratch, m, s->data);
    s->in_cb = false;
}

static void sub_free(sb_sub_t *s)
{
    while (s->qlen > 0) {
        sb_batch_unref(s->queue[s->qhead]);
        s->qhead = (s->qhead + 1) % SB_FOLLOW_MAX_QUEUED;
        s->qlen--;
    }
    sb_log_filter_free(s->filter);
    free(s);
}

static void start_catchup(sb_sub_t *s);

static void on_catchup_page(sb_read_t *r, int status, const sb_event_page_t *page)
{
    sb_sub_t *s = r->data;
    s->reading = false;
    if (s->closed) {
        sub_free(s);
        return;
    }
    if (status != 0) {
        /* Connection trouble: try again at once (the connection queues the read until it is back,
         * up to its deadline).  A query error would repeat, so wait for the next batch then. */
        if (status == SB_EDB) {
            sb_log_error("follow", "catch-up read failed: %s", r->error ? r->error : "?");
            return;
        }
        if (!s->paused)
            start_catchup(s);
        return;
    }
    deliver(s, page->events, page->n);
    if (page->more) {
        if (!s->paused)
            start_catchup(s);
        return;
    }
    /* The read saw everything committed up to the head published before it was issued. */
    if (s->read_head > s->position)
        s->position = s->read_head;
    s->mode = SUB_LIVE;
    sub_process(s);
}

static void start_catchup(sb_sub_t *s)
{
    if (s->reading || s->closed)
        return;
    s->mode = SUB_CATCHUP;
    s->reading = true;
    s->read_head = atomic_load(&s->hub->f->head); /* seq_cst: see publish */
    sb_read_log(s->pg, &s->read, s->position, s->filter, SB_FOLLOW_PAGE, on_catchup_page, s);
}

/* Works through queued batches while live and not paused. */
static void sub_process(sb_sub_t *s)
{
    while (!s->paused && !s->closed && s->mode == SUB_LIVE && s->qlen > 0) {
        sb_batch_t *b = s->queue[s->qhead];
        if (b->from > s->position) {
            /* A hole between what we have and this batch: fill it from the log. */
            start_catchup(s);
            return;
        }
        s->qhead = (s->qhead + 1) % SB_FOLLOW_MAX_QUEUED;
        s->qlen--;
        if (b->to > s->position) {
            deliver(s, b->events, b->n);
            if (b->to > s->position)
                s->position = b->to;
        }
        sb_batch_unref(b);
    }
}

static void sub_enqueue(sb_sub_t *s, sb_batch_t *b)
{
    if (s->qlen == SB_FOLLOW_MAX_QUEUED) {
        /* Too far behind: drop what is queued and read it from the log later. */
        while (s->qlen > 0) {
            sb_batch_unref(s->queue[s->qhead]);
            s->qhead = (s->qhead + 1) % SB_FOLLOW_MAX_QUEUED;
            s->qlen--;
        }
    }
    sb_batch_ref(b);
    s->queue[(s->qhead + s->qlen) % SB_FOLLOW_MAX_QUEUED] = b;
    s->qlen++;
    if (s->mode == SUB_LIVE)
        sub_process(s);
    else if (!s->reading && !s->paused)
        start_catchup(s);
}

static void on_delivery(sb_task_t *t)
{
    delivery_t *d = (delivery_t *)t;
    for (sb_sub_t *s = d->hub->subs, *next; s != NULL; s = next) {
        next = s->next;
        sub_enqueue(s, d->batch);
    }
    sb_batch_unref(d->batch);
    free(d);
}

sb_sub_t *sb_follower_subscribe(sb_follower_t *f, sb_pg_t *pg, int64_t after, const sb_log_filter_t *filter,
                                sb_sub_cb cb, void *data)
{
    sb_loop_t *loop = sb_loop_current();
    if (loop == NULL || loop->index >= f->nloops)
        return NULL;
    sb_sub_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    if (filter != NULL && (s->filter = sb_log_filter_copy(filter)) == NULL) {
        free(s);
        return NULL;
    }
    hub_t *h = &f->hubs[loop->index];
    atomic_store(&h->loop, loop);
    s->hub = h;
    s->pg = pg;
    s->cb = cb;
    s->data = data;
    s->position = after < 0 ? 0 : after;
    s->next = h->subs;
    if (h->subs)
        h->subs->prev = s;
    h->subs = s;
    atomic_fetch_add(&h->nsubs, 1);
    start_catchup(s);
    return s;
}

void sb_sub_close(sb_sub_t *s)
{
    hub_t *h = s->hub;
    if (s->prev)
        s->prev->next = s->next;
    else
        h->subs = s->next;
    if (s->next)
        s->next->prev = s->prev;
    atomic_fetch_sub(&h->nsubs, 1);
    s->closed = true;
    if (!s->reading)
        sub_free(s);
}

void sb_sub_pause(sb_sub_t *s)
{
    s->paused = true;
}

void sb_sub_resume(sb_sub_t *s)
{
    if (!s->paused)
        return;
    s->paused = false;
    if (s->in_cb)
        return; /* deliver() continues the caller's loop */
    if (s->mode == SUB_LIVE)
        sub_process(s);
    else
        start_catchup(s);
}

int64_t sb_sub_position(const sb_sub_t *s)
{
    return s->position;
}

/* ---- the follower ------------------------------------------------------------------------ */

int64_t sb_follower_head(const sb_follower_t *f)
{
    return atomic_load_explicit(&f->head, memory_order_acquire);
}

static void publish(sb_follower_t *f, sb_batch_t *b)
{
    /* Sequentially consistent with sb_follower_subscribe's count and head read: either this sees
     * the new subscriber and posts the batch to its hub, or the subscriber's first read starts from
     * this head.  With release/acquire both could miss, leaving the subscriber short of the head
     * on an idle log. */
    atomic_store(&f->head, b->to);
    for (int i = 0; i < f->nloops; i++) {
        hub_t *h = &f->hubs[i];
        sb_loop_t *loop = atomic_load(&h->loop);
        if (atomic_load(&h->nsubs) == 0 || loop == NULL)
            continue;
        delivery_t *d = malloc(sizeof(*d));
        if (d == NULL)
            abort();
        d->task.cb = on_delivery;
        d->hub = h;
        d->batch = b;
        sb_batch_ref(b);
        sb_loop_post(loop, &d->task);
    }
    sb_batch_unref(b);
}

static void read_next(sb_follower_t *f);

static void on_page(sb_read_t *r, int status, const sb_event_page_t *page)
{
    sb_follower_t *f = r->data;
    f->reading = false;
    if (f->stopped)
        return;
    if (status != 0) {
        sb_log_debug("follow", "read failed: %s", sb_strerror(status));
        return; /* the poll timer tries again */
    }
    /* An offer may have published part of the page while it was being read: the rest continues
     * the head (positions become visible in order, so the page holds all of that offer's events
     * if it holds any event after them). */
    int64_t head = sb_follower_head(f);
    int skip = 0;
    while (skip < page->n && page->events[skip].position <= head)
        skip++;
    if (skip < page->n) {
        sb_batch_t *b = sb_batch_copy(head, page->events + skip, page->n - skip);
        if (b == NULL)
            return;
        publish(f, b);
    }
    if (page->more || f->again) {
        f->again = false;
        read_next(f);
    }
}

static void on_head(sb_pg_req_t *req, int status)
{
    sb_follower_t *f = req->data;
    f->reading = false;
    if (f->stopped || status != 0)
        return;
    int64_t h = strtoll(PQgetvalue(req->results[0], 0, 0), NULL, 10);
    sb_log_debug("follow", "following from position %lld", (long long)h);
    /* The head was learnt without a batch.  A subscriber that caught up before this (its read
     * could not say how far it reached) would otherwise stay short of it until the next event:
     * an empty batch (h, h] tells it, and one below h reads the log up to the head once. */
    sb_batch_t *b = calloc(1, sizeof(*b));
    if (b == NULL) {
        atomic_store(&f->head, h);
    } else {
        atomic_init(&b->refs, 1);
        b->from = b->to = h;
        b->events = NULL;
        publish(f, b);
    }
    read_next(f);
}

static void read_next(sb_follower_t *f)
{
    if (f->stopped)
        return;
    if (f->reading) {
        f->again = true;
        return;
    }
    f->reading = true;
    if (sb_follower_head(f) < 0) {
        sb_pg_req_init(&f->head_req, "SELECT coalesce(max(position), 0) FROM events", 0, NULL, on_head, f);
        sb_pg_submit(f->pg, &f->head_req);
        return;
    }
    sb_read_log(f->pg, &f->read, sb_follower_head(f), NULL, SB_FOLLOW_PAGE, on_page, f);
}

static void on_notify(sb_pg_t *pg, const char *channel, const char *payload, void *data)
{
    sb_follower_t *f = data;
    if (payload != NULL && strcmp(payload, f->origin) == 0)
        return; /* our own appenders' batch: it comes as an offer */
    read_next(f);
}

const char *sb_follower_origin(const sb_follower_t *f)
{
    return f->origin;
}

static void on_offer(sb_task_t *t)
{
    offer_t *o = (offer_t *)t;
    sb_follower_t *f = o->f;
    sb_batch_t *b = o->batch;
    free(o);
    int64_t head = sb_follower_head(f);
    if (b != NULL && !f->stopped && head >= 0 && b->from == head && b->to > head) {
        atomic_fetch_add_explicit(&f->offers_published, 1, memory_order_relaxed);
        publish(f, b); /* consumes the reference */
        return;
    }
    bool stale = b != NULL && head >= 0 && b->to <= head;
    if (b != NULL)
        sb_batch_unref(b);
    if (stale)
        return; /* a read published it already */
    atomic_fetch_add_explicit(&f->offers_read, 1, memory_order_relaxed);
    read_next(f); /* a hole before it, an overlap, or the head not known yet: the log says */
}

void sb_follower_offer(sb_follower_t *f, sb_batch_t *b)
{
    sb_loop_t *loop = atomic_load(&f->loop);
    offer_t *o = loop != NULL ? malloc(sizeof(*o)) : NULL;
    if (o == NULL) {
        /* Not started (the head is unknown, so nothing is lost), or out of memory: the poll
         * timer reads it. */
        if (b != NULL)
            sb_batch_unref(b);
        return;
    }
    o->task.cb = on_offer;
    o->f = f;
    o->batch = b;
    sb_loop_post(loop, &o->task);
}

void sb_follower_offer_stats(const sb_follower_t *f, uint64_t *published, uint64_t *read_instead)
{
    *published = atomic_load_explicit(&f->offers_published, memory_order_relaxed);
    *read_instead = atomic_load_explicit(&f->offers_read, memory_order_relaxed);
}

static void on_named(sb_pg_req_t *req, int status)
{
    sb_follower_t *f = req->data;
    f->name_in_flight = false;
    if (status != 0 && !f->stopped)
        sb_log_warn("follow", "cannot name the follower's connection: %s",
                    req->error ? req->error : sb_strerror(status));
}

static void on_others(sb_pg_req_t *req, int status)
{
    sb_follower_t *f = req->data;
    f->others_in_flight = false;
    /* Unknown counts as yes: a NOTIFY too many costs little, one too few costs another process
     * up to its poll interval. */
    bool others =
        status != 0 || PQntuples(req->results[0]) != 1 || strcmp(PQgetvalue(req->results[0], 0, 0), "0") != 0;
    atomic_store_explicit(&f->others, others, memory_order_relaxed);
}

/* Is another process's follower connected?  Asked on the follower's connection every
 * OTHERS_EVERY_TICKS polls. */
static void check_others(sb_follower_t *f)
{
    if (f->stopped || f->others_in_flight || f->pg == NULL || !sb_pg_is_connected(f->pg))
        return;
    f->others_in_flight = true;
    sb_pg_req_init(&f->others_req,
                   "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE '" SB_FOLLOW_APP_PREFIX
                   "%' AND application_name <> $1 AND datname = current_database()",
                   1, f->app_name_values, on_others, f);
    sb_pg_submit(f->pg, &f->others_req);
}

static void on_state(sb_pg_t *pg, bool connected, void *data)
{
    sb_follower_t *f = data;
    if (!connected)
        return;
    /* Other processes' appenders look for this name (sb_follower_others) to know that we follow. */
    if (!f->name_in_flight) {
        f->name_in_flight = true;
        sb_pg_req_init(&f->name_req, "SELECT set_config('application_name', $1, false)", 1,
                       f->app_name_values, on_named, f);
        sb_pg_submit(f->pg, &f->name_req);
    }
    check_others(f);
    read_next(f); /* anything committed while we were away */
}

static void on_timer(uv_timer_t *t)
{
    sb_follower_t *f = t->data;
    if (++f->ticks % OTHERS_EVERY_TICKS == 0)
        check_others(f);
    read_next(f);
}

bool sb_follower_others(const sb_follower_t *f)
{
    return atomic_load_explicit(&f->others, memory_order_relaxed);
}

sb_follower_t *sb_follower_new(const char *conninfo, int nloops)
{
    sb_follower_t *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return NULL;
    f->conninfo = strdup(conninfo);
    f->hubs = calloc((size_t)nloops, sizeof(hub_t));
    if (f->conninfo == NULL || f->hubs == NULL) {
        free(f->conninfo);
        free(f->hubs);
        free(f);
        return NULL;
    }
    f->nloops = nloops;
    for (int i = 0; i < nloops; i++)
        f->hubs[i].f = f;
    atomic_init(&f->head, -1);
    atomic_init(&f->loop, NULL);
    atomic_init(&f->offers_published, 0);
    atomic_init(&f->offers_read, 0);
    /* Unique to this follower (so to its process): a random UUID. */
    sb_uuid_t u;
    sb_uuid_v4(&u);
    char us[SB_UUID_STRLEN + 1];
    sb_uuid_format(&u, us);
    snprintf(f->origin, sizeof(f->origin), "f:%s", us);
    snprintf(f->app_name, sizeof(f->app_name), SB_FOLLOW_APP_PREFIX "%s", f->origin);
    f->app_name_values[0] = f->app_name;
    atomic_init(&f->others, true); /* until the first check says otherwise */
    return f;
}

int sb_follower_start(sb_follower_t *f, sb_loop_t *loop)
{
    f->pg = sb_pg_open(&loop->uv, f->conninfo, "follower");
    if (f->pg == NULL)
        return SB_ENOMEM;
    sb_pg_set_state_cb(f->pg, on_state, f);
    sb_pg_listen(f->pg, "sb_events", on_notify, f);
    uv_timer_init(&loop->uv, &f->timer);
    f->timer.data = f;
    f->timer_open = true;
    uv_timer_start(&f->timer, on_timer, POLL_MS, POLL_MS);
    atomic_store(&f->loop, loop); /* offers may come from now on */
    return 0;
}

static void on_timer_closed(uv_handle_t *h)
{
    (void)h;
}

void sb_follower_stop(sb_follower_t *f)
{
    if (f->stopped)
        return;
    f->stopped = true;
    if (f->timer_open) {
        uv_timer_stop(&f->timer);
        uv_close((uv_handle_t *)&f->timer, on_timer_closed);
        f->timer_open = false;
    }
    if (f->pg != NULL) {
        sb_pg_close(f->pg, NULL, NULL);
        f->pg = NULL;
    }
}

void sb_follower_free(sb_follower_t *f)
{
    if (f == NULL)
        return;
    for (int i = 0; i < f->nloops; i++)
        free(f->hubs[i].scratch);
    free(f->hubs);
    free(f->conninfo);
    free(f);
}
