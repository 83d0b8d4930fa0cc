#include "core/loop.h"
#include "core/error.h"
#include "core/log.h"

#include <stdlib.h>
#include <string.h>

static _Thread_local sb_loop_t *current_loop;

/* How many tasks one wake-up runs before yielding to I/O; the rest run on the next turn. */
#define DRAIN_BATCH 4096

sb_loop_t *sb_loop_current(void)
{
    return current_loop;
}

void sb_loop_set_current(sb_loop_t *loop)
{
    current_loop = loop;
}

/* Vyukov's intrusive MPSC queue: push is one atomic exchange; pop is consumer-only. */
static void queue_push(sb_loop_t *l, sb_task_t *t)
{
    atomic_store_explicit(&t->_next, NULL, memory_order_relaxed);
    sb_task_t *prev = atomic_exchange_explicit(&l->_head, t, memory_order_acq_rel);
    atomic_store_explicit(&prev->_next, t, memory_order_release);
}

static sb_task_t *queue_pop(sb_loop_t *l)
{
    sb_task_t *tail = l->_tail;
    sb_task_t *next = atomic_load_explicit(&tail->_next, memory_order_acquire);
    if (tail == &l->_stub) {
        if (next == NULL)
            return NULL;
        l->_tail = next;
        tail = next;
        next = atomic_load_explicit(&next->_next, memory_order_acquire);
    }
    if (next != NULL) {
        l->_tail = next;
        return tail;
    }
    /* tail is the last element unless a producer is between its exchange and its link; in that
     * case it will wake us again after linking. */
    if (tail != atomic_load_explicit(&l->_head, memory_order_acquire))
        return NULL;
    queue_push(l, &l->_stub);
    next = atomic_load_explicit(&tail->_next, memory_order_acquire);
    if (next != NULL) {
        l->_tail = next;
        return tail;
    }
    return NULL;
}

static void on_wake(sb_wake_t *w)
{
    sb_loop_t *l = w->data;
    sb_task_t *t;
    int n = 0;
    while (n < DRAIN_BATCH && (t = queue_pop(l)) != NULL) {
        t->cb(t);
        n++;
    }
    if (n == DRAIN_BATCH)
        sb_wake_send(&l->_wake); /* more may be queued: come back after polling I/O */
}

static int loop_init(sb_loop_t *l)
{
    int r = uv_loop_init(&l->uv);
    if (r != 0)
        return r;
    l->uv.data = l;
    atomic_store(&l->_stub._next, NULL);
    atomic_store(&l->_head, &l->_stub);
    l->_tail = &l->_stub;
    l->_wake.data = l;
    r = sb_wake_init(&l->uv, &l->_wake, on_wake);
    if (r != 0) {
        uv_loop_close(&l->uv);
        return r;
    }
    return 0;
}

void sb_loop_post(sb_loop_t *target, sb_task_t *task)
{
    queue_push(target, task);
    sb_wake_send(&target->_wake);
}

int sb_loop_on_stop(sb_loop_t *loop, sb_loop_hook_cb cb, void *data)
{
    if (loop->_nstop >= SB_LOOP_MAX_HOOKS)
        return SB_ENOMEM;
    loop->_stop_hooks[loop->_nstop].cb = cb;
    loop->_stop_hooks[loop->_nstop].data = data;
    loop->_nstop++;
    return 0;
}

static void run_stop(sb_loop_t *l)
{
    if (l->_stopping)
        return;
    l->_stopping = true;
    for (int i = l->_nstop - 1; i >= 0; i--)
        l->_stop_hooks[i].cb(l, l->_stop_hooks[i].data);
}

typedef struct {
    sb_task_t task;
    sb_loop_t *loop;
} stop_task_t;

static void on_stop_task(sb_task_t *t)
{
    stop_task_t *st = (stop_task_t *)t;
    sb_loop_t *l = st->loop;
    free(st);
    run_stop(l);
    /* Tasks posted after this point still run: the wake handle closes only once the loop has
     * nothing else alive, in thread_main. */
}

static void thread_main(void *arg)
{
    sb_loop_t *l = arg;
    current_loop = l;
    if (l->group->_on_start)
        l->group->_on_start(l, l->group->_start_data);
    /* Returns once on_final_stop has unref'd the wake handle and every subsystem's handles are
     * closed. */
    uv_run(&l->uv, UV_RUN_DEFAULT);
    while (uv_run(&l->uv, UV_RUN_NOWAIT) != 0)
        ;
    current_loop = NULL;
}

static void on_final_stop(sb_task_t *t)
{
    stop_task_t *st = (stop_task_t *)t;
    sb_loop_t *l = st->loop;
    free(st);
    /* Every subsystem has closed its handles by now (their stop hooks ran before); drop the wake
     * handle's reference so uv_run returns once the last close callback has run. */
    uv_unref(sb_wake_handle(&l->_wake));
}

int sb_loops_init(sb_loops_t *g, int n, sb_loop_hook_cb on_start, void *data)
{
    memset(g, 0, sizeof(*g));
    g->loops = calloc((size_t)n, sizeof(*g->loops));
    if (g->loops == NULL)
        return SB_ENOMEM;
    g->_on_start = on_start;
    g->_start_data = data;
    for (int i = 0; i < n; i++) {
        sb_loop_t *l = calloc(1, sizeof(*l));
        if (l == NULL)
            return SB_ENOMEM;
        int r = loop_init(l);
        if (r != 0) {
            free(l);
            return r;
        }
        l->index = i;
        l->group = g;
        g->loops[i] = l;
        g->n = i + 1;
    }
    return 0;
}

int sb_loops_start(sb_loops_t *g)
{
    for (int i = 0; i < g->n; i++) {
        int r = uv_thread_create(&g->loops[i]->_thread, thread_main, g->loops[i]);
        if (r != 0)
            return r;
    }
    return 0;
}

void sb_loops_stop(sb_loops_t *g)
{
    for (int i = 0; i < g->n; i++) {
        stop_task_t *st = malloc(sizeof(*st));
        stop_task_t *fin = malloc(sizeof(*fin));
        if (st == NULL || fin == NULL)
            abort();
        st->task.cb = on_stop_task;
        st->loop = g->loops[i];
        fin->task.cb = on_final_stop;
        fin->loop = g->loops[i];
        sb_loop_post(g->loops[i], &st->task);
        sb_loop_post(g->loops[i], &fin->task);
    }
}

void sb_loops_join(sb_loops_t *g)
{
    for (int i = 0; i < g->n; i++)
        uv_thread_join(&g->loops[i]->_thread);
    /* Tasks posted after a loop stopped still run, here, on this thread: they may post to other
     * loops in turn (a reply to an ask), so drain every queue until all are empty before freeing
     * any loop. */
    for (bool again = true; again;) {
        again = false;
        for (int i = 0; i < g->n; i++) {
            sb_loop_t *l = g->loops[i];
            sb_task_t *t;
            current_loop = l;
            while ((t = queue_pop(l)) != NULL) {
                t->cb(t);
                again = true;
            }
        }
    }
    current_loop = NULL;
    for (int i = 0; i < g->n; i++) {
        sb_loop_t *l = g->loops[i];
        sb_wake_close(&l->_wake, NULL);
        uv_run(&l->uv, UV_RUN_DEFAULT);
        if (uv_loop_close(&l->uv) != 0)
            sb_log_warn("loop", "loop %d closed with handles still open", i);
    }
    for (int i = 0; i < g->n; i++)
        free(g->loops[i]);
    free(g->loops);
    g->loops = NULL;
    g->n = 0;
}

int sb_loop_init_standalone(sb_loop_t *loop)
{
    memset(loop, 0, sizeof(*loop));
    int r = loop_init(loop);
    if (r != 0)
        return r;
    uv_unref(sb_wake_handle(&loop->_wake)); /* the queue alone does not keep a tool's loop alive */
    current_loop = loop;
    return 0;
}

void sb_loop_close_standalone(sb_loop_t *loop)
{
    run_stop(loop);
    on_wake(&loop->_wake);
    sb_wake_close(&loop->_wake, NULL);
    uv_run(&loop->uv, UV_RUN_DEFAULT);
    uv_loop_close(&loop->uv);
    if (current_loop == loop)
        current_loop = NULL;
}
