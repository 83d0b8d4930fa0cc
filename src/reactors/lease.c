/* A lease: a session-level advisory lock on a connection of its own.  See lease.h. */
#include "reactors/lease.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "db/pg.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

struct sb_lease_s {
    sb_loop_t *loop;
    sb_pg_t *pg;
    uv_timer_t timer;
    sb_pg_req_t req;
    char sql[96];
    char name[64];
    bool in_flight;
    bool held;
    bool stopping;
    sb_lease_cb cb;
    void *data;
    void (*on_closed)(void *data);
    void *closed_data;
    int parts; /* the timer and the connection, until both are closed */
};

bool sb_lease_held(const sb_lease_t *l)
{
    return l->held;
}

static void lost(sb_lease_t *l, const char *why)
{
    if (!l->held)
        return;
    l->held = false;
    sb_log_warn("lease", "%s: lost (%s)", l->name, why);
    l->cb(l, false, l->data);
}

static void on_answer(sb_pg_req_t *req, int status)
{
    sb_lease_t *l = req->data;
    l->in_flight = false;
    if (l->stopping)
        return;
    if (status != 0) {
        lost(l, "the lease connection failed");
        return;
    }
    if (l->held)
        return; /* a heartbeat */
    const char *v = PQntuples(req->results[0]) == 1 ? PQgetvalue(req->results[0], 0, 0) : "f";
    if (strcmp(v, "t") == 0) {
        l->held = true;
        sb_log_info("lease", "%s: taken", l->name);
        l->cb(l, true, l->data);
    }
}

static void on_tick(uv_timer_t *t)
{
    sb_lease_t *l = container_of(t, sb_lease_t, timer);
    if (l->in_flight || l->stopping)
        return;
    l->in_flight = true;
    sb_pg_req_init(&l->req, l->held ? "SELECT 1" : l->sql, 0, NULL, on_answer, l);
    sb_pg_submit(l->pg, &l->req);
}

static void on_state(sb_pg_t *pg, bool connected, void *data)
{
    sb_lease_t *l = data;
    if (!connected && !l->stopping)
        lost(l, "the lease connection was lost");
    else if (connected && !l->held && !l->stopping)
        on_tick(&l->timer); /* try at once rather than at the next tick */
}

sb_lease_t *sb_lease_start(sb_loop_t *loop, const char *conninfo, int64_t key, const char *name,
                           uint64_t interval_ms, sb_lease_cb cb, void *data)
{
    sb_lease_t *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return NULL;
    l->loop = loop;
    l->cb = cb;
    l->data = data;
    snprintf(l->sql, sizeof(l->sql), "SELECT pg_try_advisory_lock(%lld)", (long long)key);
    snprintf(l->name, sizeof(l->name), "%s", name);
    l->pg = sb_pg_open(&loop->uv, conninfo, name);
    if (l->pg == NULL) {
        free(l);
        return NULL;
    }
    sb_pg_set_state_cb(l->pg, on_state, l);
    uv_timer_init(&loop->uv, &l->timer);
    uv_timer_start(&l->timer, on_tick, 0, interval_ms);
    l->parts = 2;
    return l;
}

static void part_closed(sb_lease_t *l)
{
    if (--l->parts > 0)
        return;
    if (l->on_closed != NULL)
        l->on_closed(l->closed_data);
    free(l);
}

static void on_timer_closed(uv_handle_t *h)
{
    part_closed(container_of((uv_timer_t *)h, sb_lease_t, timer));
}

static void on_pg_closed(void *data)
{
    part_closed(data);
}

void sb_lease_stop(sb_lease_t *l, void (*on_closed)(void *data), void *data)
{
    if (l == NULL || l->stopping)
        return;
    l->stopping = true;
    l->held = false;
    l->on_closed = on_closed;
    l->closed_data = data;
    uv_timer_stop(&l->timer);
    uv_close((uv_handle_t *)&l->timer, on_timer_closed);
    sb_pg_close(l->pg, on_pg_closed, l);
}
