#include "loopgroup.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "db/pg.h"
#include "events/append.h"

/* The group and what its loops' start hook reads, allocated together so that the configuration
 * lives exactly as long as the loops. */
typedef struct {
    sb_loops_t loops; /* first: the caller holds &group->loops */
    sb_runtime_config_t rc;
    char *conninfo;
} group_t;

static void on_stop_db(sb_loop_t *loop, void *data)
{
    (void)data;
    sb_appender_close(loop->appender, NULL, NULL);
    sb_pg_close(loop->db, NULL, NULL);
}

static void on_start(sb_loop_t *loop, void *data)
{
    group_t *gr = data;
    if (gr->conninfo != NULL) {
        loop->db = sb_pg_open(&loop->uv, gr->conninfo, "sbtest");
        loop->appender = sb_appender_open(&loop->uv, gr->conninfo);
        if (loop->db == NULL || loop->appender == NULL || sb_loop_on_stop(loop, on_stop_db, NULL) != 0)
            abort();
    }
    if (sb_runtime_start(loop, &gr->rc) != 0)
        abort();
}

sb_loops_t *sbtest_group_new(int n, const sb_runtime_config_t *rc, const char *conninfo)
{
    group_t *gr = calloc(1, sizeof(*gr));
    if (gr == NULL)
        abort();
    if (rc != NULL)
        gr->rc = *rc;
    if (conninfo != NULL && (gr->conninfo = strdup(conninfo)) == NULL)
        abort();
    if (sb_loops_init(&gr->loops, n, on_start, gr) != 0 || sb_loops_start(&gr->loops) != 0)
        abort();
    return &gr->loops;
}

void sbtest_group_free(sb_loops_t *g)
{
    group_t *gr = (group_t *)((char *)g - offsetof(group_t, loops));
    sb_loops_stop(g);
    sb_loops_join(g);
    free(gr->conninfo);
    free(gr);
}

typedef struct {
    sb_task_t task;
    void (*fn)(void *);
    void *arg;
    uv_sem_t done;
} call_t;

static void on_call(sb_task_t *t)
{
    call_t *c = (call_t *)t;
    c->fn(c->arg);
    uv_sem_post(&c->done);
}

void sbtest_run_on(sb_loop_t *l, void (*fn)(void *), void *arg)
{
    call_t c = {.fn = fn, .arg = arg};
    c.task.cb = on_call;
    uv_sem_init(&c.done, 0);
    sb_loop_post(l, &c.task);
    uv_sem_wait(&c.done);
    uv_sem_destroy(&c.done);
}

static void passivate_here(void *arg)
{
    atomic_fetch_add((_Atomic int *)arg, sb_runtime_passivate_idle(sb_loop_current(), 0));
}

int sbtest_passivate_all(sb_loops_t *g)
{
    _Atomic int n = 0;
    for (int i = 0; i < g->n; i++)
        sbtest_run_on(g->loops[i], passivate_here, &n);
    return atomic_load(&n);
}

void sbtest_wait_init(sbtest_wait_t *w, int n)
{
    atomic_store(&w->pending, n);
    uv_sem_init(&w->done, 0);
}

void sbtest_wait_one(sbtest_wait_t *w)
{
    if (atomic_fetch_sub(&w->pending, 1) == 1)
        uv_sem_post(&w->done);
}

void sbtest_wait_all(sbtest_wait_t *w)
{
    uv_sem_wait(&w->done);
    uv_sem_destroy(&w->done);
}
