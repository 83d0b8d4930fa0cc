/* A wake-up a loop receives from any thread: what uv_async_t does, without its spin.
 *
 * libuv 1.44's uv_async_send marks the handle busy, writes the loop's eventfd, then marks it done;
 * the receiving loop, woken by that very write, spins (997 PAUSEs, then sched_yield, again) until
 * the sender has marked it done.  With more runnable threads than cores (the server's loops, the
 * database's backends and the load on one small machine) the sender is often preempted just after
 * its write, by the thread it woke, and the woken loop burns its slice waiting for it: 1.4% of the
 * server's CPU per webhook in a profile, and a stall of the loop each time.
 *
 * Here a sender sets one flag and writes the eventfd only if the flag was clear; the loop clears
 * the flag before it looks for work, so a sender that finds it set knows the loop has yet to look,
 * and one that finds it clear wakes it again.  Nothing waits for anyone. */
#ifndef SB_CORE_WAKE_H
#define SB_CORE_WAKE_H

#include <stdatomic.h>
#include <uv.h>

typedef struct sb_wake_s sb_wake_t;
/* Runs on the loop's thread after one or more sb_wake_send calls (several coalesce into one). */
typedef void (*sb_wake_cb)(sb_wake_t *w);
/* Runs on the loop's thread once the wake-up is closed; w may be freed from then on. */
typedef void (*sb_wake_closed_cb)(sb_wake_t *w);

struct sb_wake_s {
    void *data; /* free for the owner */
    /* internal */
    uv_poll_t _poll;
    int _fd;
    atomic_int _armed; /* 1 from a send that wrote the eventfd until the loop takes the wake-up */
    sb_wake_cb _cb;
    sb_wake_closed_cb _closed;
};

/* On the loop's thread.  Active like any handle (uv_unref(sb_wake_handle(w)) for one that must not
 * keep the loop alive).  0 or a UV_E* code (no eventfd: too many open
 * files), after which there is nothing to close. */
int sb_wake_init(uv_loop_t *loop, sb_wake_t *w, sb_wake_cb cb);
/* Any thread, any number of times, until sb_wake_close.  Everything the sender wrote before the
 * call is visible to the callback it causes. */
void sb_wake_send(sb_wake_t *w);
/* On the loop's thread; closed (may be NULL) runs when it is done.  No send may follow the call. */
void sb_wake_close(sb_wake_t *w, sb_wake_closed_cb closed);
uv_handle_t *sb_wake_handle(sb_wake_t *w);

#endif
