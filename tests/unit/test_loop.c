/* Cross-thread wake-ups and posts (src/core/wake.c, loop.c): no wake-up is lost, whatever the
 * interleaving of senders and the loop.  A lost one shows as a loop that never sees the last post;
 * each wait below has a deadline, so it fails instead of hanging. */
#include "core/loop.h"
#include "core/wake.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "sbtest.h"

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Polls cond until it holds or 30 s have passed (the work takes well under a second). */
static bool wait_for(bool (*cond)(void *), void *arg)
{
    uint64_t deadline = mono_ms() + 30000;
    while (!cond(arg)) {
        if (mono_ms() > deadline)
            return false;
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    return true;
}

/* ---- one wake-up, one sender thread: what the sender wrote before a send is visible to the
 * callback it causes, and the last send is never lost ---- */

enum { SENDS = 100000 };

typedef struct {
    sb_wake_t wake;
    uv_loop_t uv;
    atomic_long written; /* by the sender, before each send */
    long seen;           /* by the callback: the largest value of written it saw */
    atomic_long acked;   /* seen, for a sender that waits for each callback (ping-pong) */
    bool ping_pong;
    bool lost; /* the ping-pong sender gave up waiting: a wake-up was lost */
    long calls;
    bool stop;
} wake_case_t;

static void on_wake(sb_wake_t *w)
{
    wake_case_t *c = w->data;
    long v = atomic_load_explicit(&c->written, memory_order_relaxed);
    if (v > c->seen)
        c->seen = v;
    c->calls++;
    atomic_store(&c->acked, c->seen);
    if (c->seen == SENDS && !c->stop) {
        c->stop = true;
        sb_wake_close(&c->wake, NULL);
    }
}

static void sender(void *arg)
{
    wake_case_t *c = arg;
    for (long i = 1; i <= SENDS; i++) {
        atomic_store_explicit(&c->written, i, memory_order_relaxed);
        sb_wake_send(&c->wake);
        /* Ping-pong: the next send comes right after the callback, while the loop is between its
         * callback and its next poll, or asleep: where a wake-up taken too late would be lost. */
        uint64_t deadline = c->ping_pong ? mono_ms() + 10000 : 0;
        while (c->ping_pong && atomic_load(&c->acked) < i) {
            if (mono_ms() > deadline) {
                c->lost = true;
                return;
            }
        }
    }
}

/* Only if a wake-up was lost: ends the case so that the check below fails instead of hanging. */
static void on_deadline(uv_timer_t *t)
{
    wake_case_t *c = t->data;
    if (!c->stop) {
        c->stop = true;
        sb_wake_close(&c->wake, NULL);
    }
}

static void wake_case(bool ping_pong)
{
    wake_case_t c = {.ping_pong = ping_pong};
    if (!CHECK(uv_loop_init(&c.uv) == 0))
        return;
    c.wake.data = &c;
    if (!CHECK(sb_wake_init(&c.uv, &c.wake, on_wake) == 0))
        return;
    uv_timer_t deadline;
    uv_timer_init(&c.uv, &deadline);
    deadline.data = &c;
    uv_timer_start(&deadline, on_deadline, 30000, 0);
    uv_unref((uv_handle_t *)&deadline); /* only the wake-up keeps the loop running */
    uv_thread_t th;
    CHECK(uv_thread_create(&th, sender, &c) == 0);
    uv_run(&c.uv, UV_RUN_DEFAULT); /* returns once the wake-up is closed */
    uv_thread_join(&th);
    uv_close((uv_handle_t *)&deadline, NULL);
    uv_run(&c.uv, UV_RUN_DEFAULT);
    CHECK(!c.lost);
    CHECK_EQ_INT(c.seen, SENDS);
    /* Sends coalesce while the loop has not looked; a ping-pong has one callback per send. */
    CHECK(c.calls >= 1 && c.calls <= SENDS);
    if (ping_pong)
        CHECK_EQ_INT(c.calls, SENDS);
    CHECK(uv_loop_close(&c.uv) == 0);
}

static void test_wake_last_send_seen(void)
{
    wake_case(false);
}

static void test_wake_ping_pong(void)
{
    wake_case(true);
}

/* ---- posts between loops: several threads post to every loop at once, and two loops bounce one
 * task back and forth, so a loop often sleeps between two posts ---- */

enum { LOOPS = 3, POSTERS = 3, PER_POSTER = 30000, BOUNCES = 20000 };

typedef struct {
    sb_task_t task;
    atomic_long *count;
} count_task_t;

static void on_count(sb_task_t *t)
{
    count_task_t *c = (count_task_t *)t;
    atomic_fetch_add(c->count, 1);
    free(c);
}

typedef struct {
    sb_loops_t *g;
    atomic_long *counts;
} poster_arg_t;

static void poster(void *arg)
{
    poster_arg_t *a = arg;
    for (int i = 0; i < PER_POSTER; i++) {
        int target = i % LOOPS;
        count_task_t *c = malloc(sizeof(*c));
        c->task.cb = on_count;
        c->count = &a->counts[target];
        sb_loop_post(a->g->loops[target], &c->task);
    }
}

typedef struct {
    sb_task_t task;
    sb_loops_t *g;
    int hops;
    atomic_int done;
} bounce_t;

static void on_bounce(sb_task_t *t)
{
    bounce_t *b = (bounce_t *)t;
    if (++b->hops == BOUNCES) {
        atomic_store(&b->done, 1);
        return;
    }
    int here = sb_loop_current()->index;
    sb_loop_post(b->g->loops[(here + 1) % 2], &b->task);
}

typedef struct {
    atomic_long *counts;
    bounce_t *bounce;
} all_arg_t;

static bool all_counted(void *arg)
{
    all_arg_t *a = arg;
    long total = 0;
    for (int i = 0; i < LOOPS; i++)
        total += atomic_load(&a->counts[i]);
    return total == (long)POSTERS * PER_POSTER && atomic_load(&a->bounce->done);
}

static void test_posts_all_run(void)
{
    sb_loops_t g;
    if (!CHECK(sb_loops_init(&g, LOOPS, NULL, NULL) == 0) || !CHECK(sb_loops_start(&g) == 0))
        return;
    atomic_long counts[LOOPS];
    for (int i = 0; i < LOOPS; i++)
        atomic_init(&counts[i], 0);
    bounce_t bounce = {.g = &g};
    bounce.task.cb = on_bounce;
    atomic_init(&bounce.done, 0);
    sb_loop_post(g.loops[0], &bounce.task);
    poster_arg_t pa = {&g, counts};
    uv_thread_t th[POSTERS];
    for (int i = 0; i < POSTERS; i++)
        CHECK(uv_thread_create(&th[i], poster, &pa) == 0);
    for (int i = 0; i < POSTERS; i++)
        uv_thread_join(&th[i]);
    all_arg_t aa = {counts, &bounce};
    CHECK(wait_for(all_counted, &aa));
    for (int i = 0; i < LOOPS; i++)
        CHECK_EQ_INT(atomic_load(&counts[i]), (long)POSTERS * PER_POSTER / LOOPS);
    CHECK_EQ_INT(bounce.hops, BOUNCES);
    sb_loops_stop(&g);
    sb_loops_join(&g);
}

int main(void)
{
    SBTEST_RUN(test_wake_last_send_seen);
    SBTEST_RUN(test_wake_ping_pong);
    SBTEST_RUN(test_posts_all_run);
    return sbtest_summary();
}
