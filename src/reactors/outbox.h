/* The outbox sender (DESIGN "Reactors", SPEC §8): every queued message goes out once.
 *
 * It follows the log's MessageQueued events from its checkpoint ("outbox" in the checkpoints
 * table) and, for each message still queued in its contact's state:
 *
 *   1. records the attempt through the contact actor (RecordSendAttempt -> MessageSendAttempted);
 *   2. asks the provider: Twilio's Messages.json (SMS, MMS, WhatsApp) with the workspace's API key
 *      and a StatusCallback naming the message, or Resend's /emails with the message id as the
 *      Idempotency-Key and as a tag; a chat message needs no provider;
 *   3. records the outcome: MessageSent with the provider's id, or MessageFailed with its code and
 *      text (RecordMessageStatus).
 *
 * 5xx, 429 and network errors are retried with exponential backoff and jitter, a bounded number of
 * times (sb_http_retry_next).  Never twice for one message id: an attempt is recorded before its
 * request goes out, so after a crash (or a lost lease, or an answer that never came) the outbox
 * knows the provider may already have the message.  Resend's Idempotency-Key makes sending again
 * safe; for Twilio the outbox first waits out the request's lifetime, then looks for the message in
 * Twilio's list (same To, From and body, created after the attempt, a SID the contact does not
 * know) and records it as sent if it is there.
 *
 * Runs on one loop while the messaging lease is held (messaging.h); the checkpoint covers every
 * message before the oldest one still being worked on. */
#ifndef SB_REACTORS_OUTBOX_H
#define SB_REACTORS_OUTBOX_H

#include <stdint.h>

#include "core/loop.h"
#include "providers/http_client.h"

typedef struct sb_outbox_s sb_outbox_t;

typedef struct sb_outbox_options_s {
    sb_http_retry_t retry;       /* the provider retry policy (attempts in all, backoff) */
    uint64_t reconcile_after_ms; /* how old an attempt of unknown outcome must be before the
                                    outbox looks for it at Twilio; 0 = 60 s (longer than any
                                    request can take) */
    int max_jobs;                /* messages worked on at once; 0 = 512 */
} sb_outbox_options_t;

/* Starts the outbox on the calling loop (which runs the messaging service).  0 or a negative
 * code. */
int sb_outbox_start(sb_outbox_t **out, const sb_outbox_options_t *opts);

/* Stops it: provider requests are abandoned (their outcome stays unknown, which the next outbox
 * reconciles), timers closed; work in flight with the actors finishes and is then dropped.  The
 * outbox frees itself once nothing refers to it. */
void sb_outbox_stop(sb_outbox_t *o);

/* Counters (this process). */
typedef struct sb_outbox_stats_s {
    uint64_t sent, failed, attempts, retries, reconciled, jobs;
    int64_t checkpoint;
} sb_outbox_stats_t;
void sb_outbox_get_stats(const sb_outbox_t *o, sb_outbox_stats_t *out);

#endif
