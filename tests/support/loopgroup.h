/* Loop groups running the actor runtime, for tests and benchmarks (linked as part of sbtest).
 *
 * A group is n worker loops (core/loop.h), each started with sb_runtime_start and, when a conninfo
 * is given, its own query connection (loop->db) and appender (loop->appender), closed as the loop
 * stops.  The main thread drives it: it runs code on a loop and waits for it (sbtest_run_on), and
 * waits for callbacks that fire on the loops (sbtest_wait_t). */
#ifndef SB_TESTS_LOOPGROUP_H
#define SB_TESTS_LOOPGROUP_H

#include <stdatomic.h>

#include <uv.h>

#include "actors/runtime.h"
#include "core/loop.h"

/* Starts n loops running the runtime with a copy of rc (NULL: all defaults; the caller sets
 * find_kind and the store there).  conninfo NULL gives the loops no database connections (rc must
 * then name a store, such as the memory store); otherwise it is copied.  Aborts when the loops
 * cannot start: a test or benchmark cannot go on without them. */
sb_loops_t *sbtest_group_new(int n, const sb_runtime_config_t *rc, const char *conninfo);

/* Stops the loops (the runtime answers what is in flight with SB_ESHUTDOWN), joins their threads
 * and frees the group. */
void sbtest_group_free(sb_loops_t *g);

/* Runs fn(arg) on loop l and returns once it has returned (from any thread but l's own). */
void sbtest_run_on(sb_loop_t *l, void (*fn)(void *), void *arg);

/* Passivates every idle actor of every loop now (sb_runtime_passivate_idle with no idle time);
 * returns how many were passivated. */
int sbtest_passivate_all(sb_loops_t *g);

/* Waiting from the main thread for n callbacks, each calling sbtest_wait_one on whatever loop it
 * runs on. */
typedef struct sbtest_wait_s {
    _Atomic int pending;
    uv_sem_t done;
} sbtest_wait_t;

void sbtest_wait_init(sbtest_wait_t *w, int n);
void sbtest_wait_one(sbtest_wait_t *w);
/* Returns once every callback has called sbtest_wait_one; w may then be initialised again. */
void sbtest_wait_all(sbtest_wait_t *w);

#endif
