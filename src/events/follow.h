/* Following the log: one follower per process reads newly committed events in position order and
 * hands them to every subscriber, on the subscriber's own loop, exactly once and in order.
 *
 * The follower LISTENs for the appenders' NOTIFY and also polls on a short timer (100 ms), so a
 * lost notification or a reconnect only adds latency.  What its own process's appenders commit it
 * gets from them instead, without a NOTIFY or a read (sb_follower_offer below).  It reads pages of events
 * after its head and publishes each page as an immutable, reference-counted batch covering the position range
 * (from, to]: every committed event in that range is in the batch (docs/event-log.md explains why
 * positions become visible in order).
 *
 * A subscriber starts at any position.  While it is behind the follower's head it reads the log
 * itself, in pages, on its own loop's connection; then it switches to live batches, skipping what
 * it already has and re-reading any range it missed, so the hand-over neither skips nor repeats.
 * A subscriber that falls too far behind live delivery (SB_FOLLOW_MAX_QUEUED batches) drops back
 * to reading the log.
 *
 * A caught-up subscriber's position reaches the follower's head even when its filter matches
 * nothing and the log is idle: at start, once the follower has learnt the log's end, it publishes
 * an empty batch (head, head] that brings every subscriber that caught up earlier to the head. */
#ifndef SB_EVENTS_FOLLOW_H
#define SB_EVENTS_FOLLOW_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/loop.h"
#include "db/pg.h"
#include "events/event.h"
#include "events/read.h"

typedef struct sb_follower_s sb_follower_t;
typedef struct sb_sub_s sb_sub_t;

#define SB_FOLLOW_PAGE 1000
#define SB_FOLLOW_MAX_QUEUED 64

/* An immutable run of events.  Consumers receive it during the callback only; sb_batch_ref() to
 * keep it longer, sb_batch_unref() to release (thread-safe). */
typedef struct sb_batch_s {
    _Atomic int refs;
    int64_t from; /* exclusive */
    int64_t to;   /* inclusive: every committed event with from < position <= to is here */
    int n;
    sb_event_t *events;
    /* the events' strings and bytes live in one block after the struct */
} sb_batch_t;

void sb_batch_ref(sb_batch_t *b);
void sb_batch_unref(sb_batch_t *b);
/* A new batch (one reference) holding copies of events[0..n) (n >= 1, in position order), covering
 * (from, the last one's position].  NULL on allocation failure. */
sb_batch_t *sb_batch_copy(int64_t from, const sb_event_t *events, int n);

/* Delivers events with position > the subscriber's position, in order, on the subscriber's loop.
 * The events are borrowed for the call.  To process asynchronously, call sb_sub_pause() before
 * returning and sb_sub_resume() when done: nothing more is delivered meanwhile. */
typedef void (*sb_sub_cb)(sb_sub_t *s, const sb_event_t *events, int n, void *data);

/* Creates a follower for a group of nloops loops (subscribers may live on any of them; loop
 * indexes 0..nloops-1).  Nothing runs until sb_follower_start.  NULL on allocation failure. */
sb_follower_t *sb_follower_new(const char *conninfo, int nloops);
/* Starts following on loop (the caller's thread), with its own LISTENing connection, from the
 * log's current end (subscribers read older events themselves). */
int sb_follower_start(sb_follower_t *f, sb_loop_t *loop);
/* Stops following (on the follower's loop): closes its connection and timer; publishes nothing
 * more. */
void sb_follower_stop(sb_follower_t *f);
/* Frees the follower once every loop has stopped and every subscription is closed. */
void sb_follower_free(sb_follower_t *f);
/* The last position the follower has published, or -1 before it knows the log's end (any
 * thread). */
int64_t sb_follower_head(const sb_follower_t *f);

/* Appenders of the follower's own process hand it what they commit, so that it need not read it
 * back from the log (src/events/append.c, sb_appender_set_follower):
 *   - sb_follower_origin: the text such an appender puts in its NOTIFY's payload; the follower
 *     ignores notifications that carry it (their batch is offered instead), and reads the log on
 *     any other (another process appended).  Constant for the follower's lifetime.
 *   - sb_follower_offer (any thread): b holds every event one append transaction committed, in
 *     position order, as (from, to] with from = the first position - 1.  On the follower's loop,
 *     b is published as it is when from is the follower's head; if it overlaps what is already
 *     published it is dropped; otherwise (a position between the head and from: another process's
 *     events, or positions a rolled-back transaction drew) the follower reads the log from its head,
 *     which covers b.  b == NULL asks for a read (an append whose outcome is unknown).  Takes over
 *     the caller's reference to b. */
const char *sb_follower_origin(const sb_follower_t *f);
/* Whether the follower of another process may be listening (any thread): each follower names its
 * connection SB_FOLLOW_APP_PREFIX + its origin, and looks for other such names in pg_stat_activity
 * once a second (true until the first answer, and after a failed one).  When no other process
 * follows the log, this process's appenders need not NOTIFY at all: their batches reach their own
 * follower as offers.  A follower that starts in another process meanwhile polls (every 100 ms)
 * until the next check here sees it. */
bool sb_follower_others(const sb_follower_t *f);
#define SB_FOLLOW_APP_PREFIX "switchboard follower "
void sb_follower_offer(sb_follower_t *f, sb_batch_t *b);
/* Batches published from offers, and offers that fell back to reading the log (tests, metrics). */
void sb_follower_offer_stats(const sb_follower_t *f, uint64_t *published, uint64_t *read_instead);

/* Subscribes on the calling loop (sb_loop_current()), reading catch-up pages through pg (a
 * connection on that loop).  Delivers every event matching filter (copied; may be NULL) with
 * position > after.  Returns NULL on allocation failure. */
sb_sub_t *sb_follower_subscribe(sb_follower_t *f, sb_pg_t *pg, int64_t after, const sb_log_filter_t *filter,
                                sb_sub_cb cb, void *data);
/* Stops delivery and frees the subscription (on its loop; not from inside its own callback: use
 * it after the callback returns, or pause first). */
void sb_sub_close(sb_sub_t *s);
void sb_sub_pause(sb_sub_t *s);
void sb_sub_resume(sb_sub_t *s);
/* The position of the last event delivered or skipped by the filter. */
int64_t sb_sub_position(const sb_sub_t *s);

#endif
