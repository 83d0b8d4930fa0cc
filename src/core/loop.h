/* Worker loops: N threads, each running its own uv_loop_t, and messages between them.
 *
 * Every piece of per-thread state (an h2o context, database connections, the appender, the actors a
 * loop owns) hangs off its sb_loop_t and is touched only on that loop's thread.  Crossing threads
 * is always a task posted with sb_loop_post(): an intrusive multi-producer single-consumer queue
 * (lock-free push) plus one wake-up (core/wake.h), so any number of posts between two loop turns cost one
 * wake-up. */
#ifndef SB_CORE_LOOP_H
#define SB_CORE_LOOP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "core/wake.h"

typedef struct sb_task_s sb_task_t;
typedef void (*sb_task_cb)(sb_task_t *task);

/* A unit of work to run on another loop.  Embed it in your own struct and recover the owner with
 * container_of in cb.  The poster must not touch the task after posting; the callback owns it. */
struct sb_task_s {
    _Atomic(sb_task_t *) _next;
    sb_task_cb cb;
};

typedef struct sb_loop_s sb_loop_t;
typedef void (*sb_loop_hook_cb)(sb_loop_t *loop, void *data);

#define SB_LOOP_MAX_HOOKS 16

struct sb_loop_s {
    uv_loop_t uv;
    int index; /* 0..n-1 within its group */
    struct sb_loops_s *group;
    /* Per-loop subsystems, owned by the layers that set them (opaque here). */
    void *db;          /* src/db: the loop's query connection */
    void *appender;    /* src/events: the loop's group-commit appender */
    void *actors;      /* src/actors: the loop's actor registry */
    void *http;        /* src/http: the loop's h2o context */
    void *http_client; /* src/providers: the loop's outbound HTTP client (libcurl multi) */
    void *messaging;   /* src/reactors: the loop's part of the messaging service */
    void *user;        /* free for tools and tests */
    /* internal */
    sb_wake_t _wake;
    _Atomic(sb_task_t *) _head; /* producers push here */
    sb_task_t *_tail;           /* consumer pops here */
    sb_task_t _stub;
    uv_thread_t _thread;
    int _nstop;
    struct {
        sb_loop_hook_cb cb;
        void *data;
    } _stop_hooks[SB_LOOP_MAX_HOOKS];
    bool _stopping;
    _Atomic uint64_t _posted;
};

typedef struct sb_loops_s {
    int n;
    sb_loop_t **loops;
    void *app; /* the application the loops serve (opaque here; see src/http/app.h) */
    sb_loop_hook_cb _on_start;
    void *_start_data;
} sb_loops_t;

/* Initialises n loops (not yet running).  on_start, if given, runs first on each loop's own thread
 * once it starts: that is where per-loop subsystems are created.  0 or a negative code. */
int sb_loops_init(sb_loops_t *g, int n, sb_loop_hook_cb on_start, void *data);

/* Starts one thread per loop.  Returns once all threads are running. */
int sb_loops_start(sb_loops_t *g);

/* Asks every loop to stop: runs each loop's stop hooks (latest first) on its thread, then lets the
 * loop drain its remaining handles.  Thread-safe; returns at once. */
void sb_loops_stop(sb_loops_t *g);

/* Waits for every loop thread to finish, then frees the loops. */
void sb_loops_join(sb_loops_t *g);

/* Registers cb to run on loop's thread when the loop is asked to stop; cb must close the handles
 * it owns.  Call on the loop's own thread. */
int sb_loop_on_stop(sb_loop_t *loop, sb_loop_hook_cb cb, void *data);

/* Runs task->cb on target's thread, soon.  Thread-safe, lock-free, never blocks. */
void sb_loop_post(sb_loop_t *target, sb_task_t *task);

/* The loop whose thread is calling, or NULL on a thread that is not a worker loop. */
sb_loop_t *sb_loop_current(void);

/* Marks the calling thread as running loop (for tools that drive a loop on the main thread). */
void sb_loop_set_current(sb_loop_t *loop);

/* Initialises a standalone loop on the calling thread (for command-line tools and tests): it has
 * the post queue but no thread of its own; run it with uv_run(&loop->uv, ...). */
int sb_loop_init_standalone(sb_loop_t *loop);
/* Closes a standalone loop's queue handle, runs until all handles are closed, closes the uv loop. */
void sb_loop_close_standalone(sb_loop_t *loop);

/* Maps a 64-bit hash to a loop index. */
static inline int sb_loops_pick(const sb_loops_t *g, uint64_t hash)
{
    return (int)(hash % (uint64_t)g->n);
}

#endif
