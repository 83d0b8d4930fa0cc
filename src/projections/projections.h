/* Projections: read models built from the event log by SQL files in projections/ (docs/projections.md).
 *
 * The runner follows the log and applies each batch of events to the projections in one
 * transaction per group of projections, storing their checkpoints in that same transaction, so
 * every event affects a read model exactly once, across crashes.  A projection file seen for the
 * first time is built from position 0 straight into its schema; a changed file (content hash), or
 * `switchboard projections rebuild`, builds the new version into <name>__build while the old tables
 * keep serving reads and being updated, then swaps the schemas in one transaction once the build
 * has caught up.  Read models are queried by stable names: <projection>.<table>.
 *
 * With several server processes on one database only one runs projections: a session-level
 * advisory lock held on a dedicated connection is the lease; the others stand by, try again every
 * second, and take over when the holder's session ends.
 *
 * Threads: sb_projections_new and _free on any one thread while the runner is not running;
 * sb_projections_start and _stop on the runner's loop (nothing there ever blocks);
 * sb_projections_metrics and _is_active from any thread. */
#ifndef SB_PROJECTIONS_PROJECTIONS_H
#define SB_PROJECTIONS_PROJECTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/loop.h"
#include "events/follow.h"

typedef struct sb_projections_s sb_projections_t;

typedef struct sb_projections_options_s {
    const char *conninfo; /* copied */
    const char *dir;      /* projection files; copied */
    int partitions;       /* groups of projections applied in parallel, each on its own
                             connection; 0 = 2 */
    int max_batch;        /* events per transaction at most; 0 = 12000 */
    int linger_ms;        /* live, how long a batch that collected while the previous one was
                             applied waits for more (a lone event never waits): 0 = never;
                             < 0 = SWITCHBOARD_PROJECTIONS_LINGER_MS, or 20 when unset */
} sb_projections_options_t;

/* Live, without a linger, a busy log is applied in batches of the few events that arrived while
 * the previous batch was applied, each paying a batch's fixed costs. */
#define SB_PROJECTIONS_DEFAULT_LINGER_MS 20
#define SB_PROJECTIONS_MAX_LINGER_MS 10000

/* Creates the catalog (projection_state and its functions) if needed and installs every projection
 * file of dir the catalog has not seen, so their tables exist before anything reads them.  Files
 * that do not parse or install are logged and skipped.  Blocking (plain libpq): call before the
 * loops start.  0, or a negative code with one line in err when the database cannot be reached or
 * the catalog cannot be created. */
int sb_projections_prepare(const char *conninfo, const char *dir, char *err, size_t errlen);

/* A runner, not yet running.  NULL on allocation failure. */
sb_projections_t *sb_projections_new(const sb_projections_options_t *opts);

/* Starts the runner on loop (the calling thread), following f (which must run in the same loop
 * group and outlive the runner).  It stands by until it holds the lease.  0 or a negative code. */
int sb_projections_start(sb_projections_t *p, sb_loop_t *loop, sb_follower_t *f);

/* Stops the runner (on its loop): in-flight transactions finish or roll back, connections close,
 * the lease is released.  on_stopped (may be NULL) fires once everything is closed. */
void sb_projections_stop(sb_projections_t *p, void (*on_stopped)(void *data), void *data);

/* Frees a runner that never started or has stopped. */
void sb_projections_free(sb_projections_t *p);

/* True while this process holds the lease and runs the projections (any thread). */
bool sb_projections_is_active(const sb_projections_t *p);

/* One projection's progress, as /metrics reports it. */
typedef struct sb_projection_metric_s {
    char name[48];
    int64_t checkpoint;    /* every event up to this position is applied (or not for it) */
    int64_t lag_positions; /* log head - checkpoint, >= 0 */
    double lag_seconds;    /* 0 when caught up, else roughly how long since the read model was
                              complete: now - max(recorded_at of the last event applied, the last
                              moment it was caught up); about a second of precision */
    bool failing;          /* its handlers fail; the runner retries with backoff */
    bool building;         /* a rebuild is in progress */
    int64_t build_position;
} sb_projection_metric_t;

/* The runner's batches since it was created (any thread). */
typedef struct sb_projections_stats_s {
    uint64_t batches;      /* batches of events committed (every lane of a unit: one) */
    uint64_t events;       /* events in them */
    uint64_t lingered;     /* batches that waited for more events before going out */
    uint64_t linger_ms;    /* the time they waited, in total */
    int linger_setting_ms; /* the linger in force (0: off) */
    uint64_t apply_us;     /* time some lane of a unit was applying a batch, in total */
    uint64_t lane_wait_us; /* of which another lane of that unit was idle */
    uint64_t lanes_ahead;  /* batches a lane started before another lane of its unit had committed
                              the batch before it (lanes do not wait for each other) */
} sb_projections_stats_t;

void sb_projections_stats(const sb_projections_t *p, sb_projections_stats_t *out);

/* Copies up to cap projections' metrics into out, sorted by name, and returns how many there are
 * (which may exceed cap).  Empty while standing by.  Any thread. */
int sb_projections_metrics(const sb_projections_t *p, sb_projection_metric_t *out, int cap);

/* Appends the metrics in Prometheus text format: per projection
 * switchboard_projection_{checkpoint,lag_events,lag_seconds,failing,rebuilding}{projection="..."},
 * switchboard_projections_active (1 in the process holding the lease), and the batch counters of
 * sb_projections_stats: switchboard_projections_{batches,events_applied,lingered_batches}_total,
 * switchboard_projections_{linger,apply,lane_wait}_seconds_total and
 * switchboard_projections_linger_seconds (the setting).  Any thread. */
void sb_projections_metrics_text(const sb_projections_t *p, sb_buf_t *out);

/* `switchboard projections list|status|rebuild NAME...|--all`: argv[0] is "projections".  Returns
 * the exit code. */
int sb_cmd_projections(sb_config_t *cfg, int argc, char **argv);

#endif
