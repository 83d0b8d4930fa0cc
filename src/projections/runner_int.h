/* The runner's own state, shared by runner.c (the lease, reconciling, installs, swaps, the
 * lifecycle), runner_failed.c (what a failed batch means) and runner_metrics.c (what /metrics and
 * `projections status` read).  Private to src/projections. */
#ifndef SB_PROJECTIONS_RUNNER_INT_H
#define SB_PROJECTIONS_RUNNER_INT_H

#include "projections/pj_int.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* The tick records how far units skipped, every quarter second; the lease, the heartbeat and
 * reconciling happen on every fourth and eighth tick. */
#define TICK_MS 250
#define DEFAULT_PARTITIONS 2
/* Lanes no longer wait for each other, so while catching up the reader is ahead and batches fill up
 * to this; at 20,000 the lanes' CPU per event was 4-7% higher than at main's natural ~10,300 (A/B,
 * docs/benchmarks.md), at 12,000 the same. */
#define DEFAULT_MAX_BATCH 12000
#define RETRY_MIN_MS 500
#define RETRY_MAX_MS 60000

enum { ST_NEW, ST_STANDBY, ST_ACTIVE, ST_RESTARTING, ST_STOPPING, ST_STOPPED };

typedef struct row_s {
    char name[SB_PJ_NAME_MAX + 1];
    bool live;
    char hash[SB_PJ_HASH_LEN + 1];
    char *types;
    bool uses_metadata;
    int64_t position;
    int64_t applied_us;
    bool has_build;
    char build_hash[SB_PJ_HASH_LEN + 1];
    char *build_types;
    bool build_uses_metadata;
    bool build_running; /* build_position is set */
    int64_t build_position;
    bool build_failed;
    bool requested;
} row_t;

enum { OP_INSTALL, OP_CANCEL_BUILD, OP_NO_FILE };

typedef struct op_s {
    int kind;
    const sb_pj_def_t *def; /* borrowed from r->defs (OP_INSTALL) */
    bool build;
    char name[SB_PJ_NAME_MAX + 1];
    struct op_s *next;
} op_t;

typedef struct load_s {
    uv_work_t work;
    pj_runner_t *r;
    char *dir;
    sb_pj_def_t **defs;
    int n;
    int rc;
    char err[512];
} load_t;

/* A control statement nobody waits for (recording an error, dropping an old schema). */
typedef struct chore_s {
    sb_pg_req_t req;
    char *params[4];
    const char *values[4];
    char what[96];
} chore_t;

typedef struct metric_s {
    sb_projection_metric_t m;
    int64_t complete_us;
} metric_t;

struct sb_projections_s {
    char *conninfo;
    char *dir;
    int partitions;
    int max_batch;
    uint64_t linger_ms;
    sb_loop_t *loop;
    sb_follower_t *f;
    int state;
    _Atomic bool active;
    sb_pg_t *lease;
    sb_pg_t *ctl;
    char app_name[96];
    const char *app_name_values[1];
    uv_timer_t tick;
    unsigned ticks;
    bool lease_in_flight;
    sb_pg_req_t lease_req;
    int64_t activated_us;
    /* reconciling */
    bool reconciling, again, full_again, full;
    sb_pg_req_t cat_req;
    row_t *rows;
    int nrows;
    bool loading;
    sb_pj_def_t **defs;
    int ndefs;
    op_t *ops, *ops_tail;
    op_t *op; /* in flight */
    sb_pg_req_t op_req;
    char *op_script;
    char *op_types;
    const char *op_values[6];
    pj_member_t *fresh; /* created by this reconcile, waiting to be grouped into units */
    /* what runs */
    pj_member_t *members;
    pj_unit_t *units;
    /* shutdown */
    int closing_parts;
    void (*on_stopped)(void *data);
    void *stopped_data;
    /* metrics, read from any thread */
    uv_mutex_t mlock;
    metric_t *metrics;
    int nmetrics;
    _Atomic uint64_t batches, events, lingered, lingered_ms, apply_ns, lane_wait_ns, ahead;
};

/* ---- between the runner's files (the runner's loop only) ------------------------------------- */

/* Closes every unit and forgets every member; the next activation rebuilds them from the
 * catalog.  why (may be NULL) is logged. */
void sb__pj_runner_restart_all(pj_runner_t *r, int to_state, const char *why);
/* A new unit at position for the n members ms (no longer in any unit), subscribing after
 * delay_ms.  NULL when n is 0. */
pj_unit_t *sb__pj_runner_unit_of(pj_runner_t *r, bool build, pj_member_t **ms, int n, int64_t position,
                                 int64_t applied_us, uint64_t delay_ms);
/* A control statement nobody waits for; what names it in the log if it fails. */
void sb__pj_runner_chore(pj_runner_t *r, const char *what, const char *sql, int nparams,
                         const char *const *params);
/* Recomputes which units are held: every build unit waiting to be swapped in, and the live units
 * of its projections.  Units no longer held get going again. */
void sb__pj_runner_update_holds(pj_runner_t *r);
/* The member running projection name (its rebuild when build), or NULL. */
pj_member_t *sb__pj_runner_find_member(pj_runner_t *r, const char *name, bool build);
/* Copies the members' figures for readers on other threads. */
void sb__pj_runner_publish_metrics(pj_runner_t *r);

#endif
