/* The scheduler (DESIGN "Reactors", SPEC §8): scheduled messages go out at their time, to the
 * second, survive restarts, and can be cancelled; no polling.
 *
 * At start it reads the pending scheduled messages from the `scheduled` read model together with
 * that projection's checkpoint (one statement, so one snapshot), then follows the log from that
 * checkpoint: MessageScheduled adds a timer; a dispatch (MessageQueued with queued_at),
 * MessageScheduleCancelled, MessageFailed or ContactDeleted removes it.  The timers are a binary
 * heap driving one uv_timer, armed for the earliest.  When one is due the scheduler sends
 * DispatchScheduledMessage to the contact, which queues the message (the outbox then sends it), or
 * fails it if the contact opted out meanwhile, or refuses it if it was cancelled.
 *
 * Runs on one loop while the messaging lease is held (messaging.h).  If the read model cannot be
 * read (the projection is missing or broken) it falls back, after a few tries, to reading the log
 * from the start. */
#ifndef SB_REACTORS_SCHEDULER_H
#define SB_REACTORS_SCHEDULER_H

#include <stdint.h>

typedef struct sb_scheduler_s sb_scheduler_t;

/* Starts the scheduler on the calling loop (which runs the messaging service).  0 or a negative
 * code. */
int sb_scheduler_start(sb_scheduler_t **out);

/* Stops it; dispatches on their way finish and are then dropped.  It frees itself. */
void sb_scheduler_stop(sb_scheduler_t *s);

typedef struct sb_scheduler_stats_s {
    uint64_t pending;    /* timers armed now */
    uint64_t dispatched; /* DispatchScheduledMessage answered (queued, failed or refused) */
    int64_t next_us;     /* when the next one is due (0: none) */
} sb_scheduler_stats_t;
void sb_scheduler_get_stats(const sb_scheduler_t *s, sb_scheduler_stats_t *out);

#endif
