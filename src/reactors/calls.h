/* Call control (DESIGN "Reactors"; docs/voice_control.md): the team's decisions about calls,
 * once they are events in the log, become Twilio requests on the live calls.
 *
 *   CallInitiated (outbound, no CallSid yet)  -> Calls.json to the customer (Url: our connect TwiML,
 *                                                StatusCallback: the voice status webhook), then
 *                                                the CallSid is recorded (or the call failed)
 *   CallParked                                -> the customer's leg redirected into its parking room
 *   CallUnparked                              -> Calls.json to the unparking agent's browser,
 *                                                joining exactly that room
 *   CallTransferred cold                      -> the customer's leg redirected to a <Dial> of the
 *                                                target, whose action returns it to the first agent,
 *                                                then the queue, when nobody answers
 *   CallTransferred warm                      -> the customer's leg into a conference, the first
 *                                                agent and the target rung into it
 *   CallTransferFailed warm                   -> the customer's leg back to the first agent
 *   CallHangupRequested                       -> Status=completed
 *
 * It follows the log from its checkpoint ("calls" in the checkpoints table), one job per event,
 * and never two jobs of one call at once (a call's requests go out in the order of its events).
 * Before each job it reads the call's current state: a job about a call that has ended since does
 * nothing.  Redirects and hang-ups may be sent again after a restart (the same TwiML again is
 * harmless); requests that create a leg are recorded first (RecordDialAttempt) and never made
 * twice.  Twilio's 5xx, 429 and network errors are retried with backoff a bounded number of times;
 * nothing blocks the loop.
 *
 * Parking limit: calls parked longer than their workspace's parking_limit_seconds ring the agent who
 * parked them (Calls.json to their browser; answering takes the call out of the lot).  The parked
 * calls are read at start from the calls read model together with its checkpoint, then kept up to
 * date from the log: one timer for the earliest, so restarts lose nothing and nothing polls.
 *
 * Runs on one loop while the messaging lease is held (reactors/messaging.h). */
#ifndef SB_REACTORS_CALLS_H
#define SB_REACTORS_CALLS_H

#include <stdint.h>

typedef struct sb_calls_s sb_calls_t;

/* Starts call control on the calling loop (which runs the messaging service).  0 or a negative
 * code. */
int sb_calls_start(sb_calls_t **out);

/* Stops it: requests in flight are abandoned, timers closed; it frees itself once nothing refers
 * to it. */
void sb_calls_stop(sb_calls_t *cc);

typedef struct sb_calls_stats_s {
    uint64_t jobs, requests, retries, failures, rung, parked;
    int64_t checkpoint;
} sb_calls_stats_t;
void sb_calls_get_stats(const sb_calls_t *cc, sb_calls_stats_t *out);

#endif
