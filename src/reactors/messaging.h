/* The messaging service: what the webhooks and the messaging reactors share in one process.
 *
 *   - per loop: the workspace configuration cache (wsconf.h) and its invalidation from the log;
 *   - the reactors (the outbox sender, the scheduler, auto-replies), each running in one process per
 *     database at a time under an advisory-lock lease, on loop 0.
 *
 * Life cycle: sb_messaging_new on the main thread before the loops start; sb_messaging_loop_start
 * on every loop's thread from its start hook, after the loop's database connection, appender and
 * actor runtime (it registers its own stop hook, which runs before theirs); sb_messaging_free on
 * the main thread after the loops have been joined. */
#ifndef SB_REACTORS_MESSAGING_H
#define SB_REACTORS_MESSAGING_H

#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"
#include "core/loop.h"
#include "db/secrets.h"
#include "events/follow.h"
#include "providers/http_client.h"

typedef struct sb_messaging_s sb_messaging_t;

typedef struct sb_messaging_options_s {
    const sb_config_t *cfg;      /* public_url, the providers' API bases; must outlive the service */
    const char *conninfo;        /* for the reactors' lease connection; copied */
    sb_loops_t *loops;           /* the group the service runs on */
    sb_follower_t *follower;     /* the process's follower (runs on loop 0) */
    sb_secrets_t *secrets;       /* opens the workspaces' credentials; must outlive the service */
    bool reactors;               /* run the outbox, scheduler and auto-replies (false: caches only) */
    sb_http_retry_t retry;       /* the outbox's retry policy for provider calls; zero: 6 attempts,
                                    500 ms doubling, capped at 30 s */
    uint64_t reconcile_after_ms; /* the outbox waits this long after an attempt of unknown outcome
                                    before looking for it at Twilio; 0: 60 s */
} sb_messaging_options_t;

/* The advisory lock the messaging reactors' lease takes (one process per database runs them). */
#define SB_MESSAGING_LEASE_KEY 7318029347265520LL /* migrate ...500, log ...501, projections ...510-511 */

/* Fills o with the defaults for cfg (reactors on), then the environment's overrides, for tests and
 * operations: SWITCHBOARD_OUTBOX_RECONCILE_MS, SWITCHBOARD_OUTBOX_RETRY_BASE_MS,
 * SWITCHBOARD_OUTBOX_ATTEMPTS. */
void sb_messaging_options_init(sb_messaging_options_t *o, const sb_config_t *cfg);

/* Creates the service (nothing runs yet).  0, SB_EINVAL or SB_ENOMEM. */
int sb_messaging_new(sb_messaging_t **out, const sb_messaging_options_t *o);

/* Starts the service's part on loop (the calling thread) and sets loop->messaging.  0 or a negative
 * code (nothing left running). */
int sb_messaging_loop_start(sb_messaging_t *m, sb_loop_t *loop);

/* Frees the service once every loop has stopped. */
void sb_messaging_free(sb_messaging_t *m);

/* The service of the calling loop, or NULL when none runs there. */
sb_messaging_t *sb_messaging_current(void);

/* The reactors' figures, for /metrics.  Counters are this process's totals (they carry on across
 * lease changes); gauges are 0 while another process runs the reactors.  Sampled on loop 0 once a
 * second, so they may be a second old. */
typedef struct sb_messaging_stats_s {
    uint64_t leader; /* 1 while this process holds the lease and runs the reactors */
    /* the outbox (counters) */
    uint64_t outbox_jobs, outbox_sent, outbox_failed, outbox_attempts, outbox_retries, outbox_reconciled;
    /* the scheduler */
    uint64_t scheduler_pending;    /* gauge */
    uint64_t scheduler_dispatched; /* counter */
    /* call control (reactors/calls.h): counters, then gauges */
    uint64_t calls_jobs, calls_requests, calls_retries, calls_failures, calls_rung;
    uint64_t calls_pending, calls_parked;
} sb_messaging_stats_t;

/* Any thread, while the service exists. */
void sb_messaging_get_stats(const sb_messaging_t *m, sb_messaging_stats_t *out);

/* Shared parts, for the webhooks and API handlers. */
const sb_config_t *sb_messaging_config(const sb_messaging_t *m);
sb_secrets_t *sb_messaging_secrets(const sb_messaging_t *m);
sb_loops_t *sb_messaging_loops(const sb_messaging_t *m);

#endif
