/* The runner's internals, shared by runner.c (lease, catalog, builds and swaps), unit.c (applying
 * batches), catalog.c (blocking set-up) and cli.c.  Not a public contract. */
#ifndef SB_PROJECTIONS_PJ_INT_H
#define SB_PROJECTIONS_PJ_INT_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "db/pg.h"
#include "events/follow.h"
#include "projections/def.h"
#include "projections/projections.h"

/* Advisory lock keys: the runner lease (session-level) and catalog changes (transaction-level). */
#define SB_PJ_LEASE_LOCK "7318029347265510"
#define SB_PJ_INSTALL_LOCK "7318029347265511"
/* SQLSTATEs raised by the catalog functions. */
#define SB_PJ_SQLSTATE_MOVED "SBP01"  /* a checkpoint is not where the runner thought */
#define SB_PJ_SQLSTATE_BEHIND "SBP02" /* a build to swap in is behind its live tables */
#define SB_PJ_NOTIFY_CHANNEL "sb_projections"

#define SB_OID_TIMESTAMPTZ 1184
#define SB_OID_JSONB 3802

typedef struct sb_projections_s pj_runner_t;
typedef struct pj_unit_s pj_unit_t;

/* One projection as the runner runs it: its live tables, or a build of a new version. */
typedef struct pj_member_s {
    pj_runner_t *r;
    pj_unit_t *unit;
    char name[SB_PJ_NAME_MAX + 1];
    char schema[SB_PJ_NAME_MAX + 16]; /* name, or name__build */
    bool build;
    char **types;
    int ntypes;
    bool uses_metadata;
    /* What its sections read of the payloads (sb_pj_def_t's payload_types and payload_keys), known
     * only when the runner had the file of the version installed (the same hash): until then the
     * lane sends it every payload whole.  The same hash also says its functions are this
     * generator's (SB_PJ_GENERATOR is part of it), whose dispatcher takes the streams' ids as a
     * ninth array: until then the lane leaves that out and the dispatcher works them out itself. */
    bool payload_known;
    char **payload_types;
    int npayload_types;
    char **payload_keys; /* NULL: every key */
    int npayload_keys;
    int partition;
    /* set while its handlers fail */
    char *error;
    int failures;
    /* where a member created by a reconcile starts, until it joins a unit */
    int64_t start_at;
    int64_t start_applied_us;
    struct pj_member_s *fresh_next;
    struct pj_member_s *next; /* the runner's list */
} pj_member_t;

/* The distinct event types a batch remembers (beyond that, or for a longer name, it calls every
 * lane member: see pj_batch_t.types). */
#define SB_PJ_BATCH_TYPES 8
#define SB_PJ_BATCH_TYPE_MAX 63

/* The arrays of __apply: the eight of docs/projections.md and the streams' ids. */
#define SB_PJ_ARRAYS 9

/* One batch being collected or applied, as the array parameters of __apply. */
typedef struct pj_batch_s {
    sb_pg_array_t a[SB_PJ_ARRAYS];
    int n;
    /* The distinct types of its events, so that a lane calls only the __apply of members that
     * take one of them (live, a burst of inbound messages means nothing to most projections, and
     * each call costs its session the arrays' set-up and a scan of the types); types_all when
     * there were more than fit (every member is called, and its dispatcher checks). */
    char types[SB_PJ_BATCH_TYPES][SB_PJ_BATCH_TYPE_MAX + 1];
    int ntypes;
    bool types_all;
    /* each event's type, as its index in types (unused once types_all): a lane that needs only
     * some of the payloads, or some of their keys, cuts them down by it */
    uint8_t *tix;
    int tix_cap;
    /* once sealed: types as a text[] literal, for the dispatchers (unused once types_all) */
    sb_buf_t types_lit;
    int64_t last_position;
    int64_t last_recorded_us;
    /* once sealed (handed to the lanes): its place in the unit's sequence, the position it takes
     * the lanes to, and the finished arrays */
    uint64_t seq;
    int64_t to;
    const char *values[SB_PJ_ARRAYS];
    int lengths[SB_PJ_ARRAYS];
} pj_batch_t;

#define SB_PJ_MAX_LANES 16
/* The niceness of the lanes' sessions when PostgreSQL is local (unit.c, SWITCHBOARD_PROJECTIONS_NICE). */
#define SB_PJ_DEFAULT_NICE 10
/* A unit's batch buffers: one collecting, the rest sealed and being applied.  Each lane applies
 * the sealed ones in order at its own pace, so a lane may be up to SB_PJ_BATCHES - 2 batches ahead
 * of another; a buffer is reused once every lane has committed it. */
#define SB_PJ_BATCHES 4

/* The projections of one partition within a unit: one connection and one transaction per batch.
 * Lanes of a unit apply the same batches in the same order (in parallel on the server), each
 * moving on to the next as soon as it has committed its own, so each has its own checkpoint. */
typedef struct pj_lane_s {
    pj_unit_t *u;
    int partition;
    sb_pg_t *pg;
    pj_member_t **members;
    int nmembers;
    bool uses_metadata;
    bool in_flight;
    pj_batch_t *fly;      /* the batch in flight */
    uint64_t applied;     /* batches committed: every seq below this */
    int64_t committed;    /* its members' checkpoint in the catalog */
    int64_t committed_us; /* recorded_at of the last event applied (0: unknown) */
    /* the outcome of the batch just applied */
    int status;
    char sqlstate[8];
    char *error;
    sb_pg_req_t req;
    char stmt_name[64];
    char *apply_sql;
    int gen;
    /* members apply_sql hands the streams' ids and the distinct types (payload_known when it was
     * made) */
    int with_ids;
    char *p_names; /* its members' names as a text[] literal */
    char p_from[24], p_to[24], p_at[40];
    const char *adv_values[5];
    /* the arrays, the batch's distinct types ($10), then which members to call ($11, a boolean[]
     * literal in p_calls) */
    const char *apply_values[SB_PJ_ARRAYS + 2];
    int apply_lengths[SB_PJ_ARRAYS + 2];
    int apply_formats[SB_PJ_ARRAYS + 2];
    char *p_calls;
    /* the payloads cut down for its members (payload.c), when they need less than all of them */
    sb_pg_array_t payloads;
    /* running what its members' files deferred (projection_run_deferred) */
    sb_pg_req_t dreq;
    char *d_schemas;
    const char *d_values[1];
} pj_lane_t;

/* A group of projections at the same position that share one subscription and decode each batch
 * once; their lanes apply it. */
struct pj_unit_s {
    pj_runner_t *r;
    int id;
    bool build;
    pj_member_t **members;
    int nmembers;
    char **types; /* the union of the members' */
    int ntypes;
    bool uses_metadata;
    pj_lane_t *lanes[SB_PJ_MAX_LANES];
    int nlanes;
    int lanes_in_flight;
    sb_pg_t *rpg; /* reads the log while catching up */
    sb_sub_t *sub;
    int64_t committed;    /* every lane's checkpoint is at least this (all at it when !in_flight) */
    int64_t committed_us; /* recorded_at of the last event applied by all (0: unknown) */
    int64_t caught_up_us; /* the last time committed >= the follower's head */
    pj_batch_t bufs[SB_PJ_BATCHES];
    pj_batch_t *acc;                   /* collecting */
    pj_batch_t *sealed[SB_PJ_BATCHES]; /* handed to the lanes, oldest first */
    int nsealed;
    uint64_t next_seq; /* of the next batch sealed */
    bool in_flight;    /* some sealed batch is not yet committed by every lane */
    bool failing;      /* a lane failed: no more batches; split once no lane is in flight */
    bool paused;
    bool held;           /* a swap waits for it: no new batch */
    bool swap_pending;   /* a build unit that has caught up and waits to be swapped in */
    bool swap_in_flight; /* its swap transaction is under way */
    bool was_held;
    bool closing;
    /* the members' deferred set-up (-- @deferred): run once caught up, the unit held meanwhile */
    bool deferred_done;
    bool deferring;
    bool deferred_failed;
    int deferring_lanes;
    uint64_t deferred_retry_at; /* loop ms */
    char *p_names;              /* every member's name as a text[] literal */
    sb_pg_req_t swap_req;
    char swap_to[24];
    const char *swap_values[2];
    uv_timer_t timer; /* a delayed start */
    /* the linger (runner's linger_ms): live, a batch that collected while the previous one was
     * applied waits until linger_ms after its first event before going out */
    uv_timer_t linger;
    bool lingering;
    uint64_t acc_first_ms;   /* loop time of acc's first event */
    uint64_t linger_from_ms; /* when the wait began */
    uint64_t busy_from_ns;   /* when lanes_in_flight last changed */
    int pending_closes;
    pj_unit_t *next;
};

/* payload.c: appends to out the JSON object json[0..len) with only the top-level members whose key
 * (as written, without its quotes) keep accepts, in their order.  For the runner's own JSON
 * (sb_codec_to_json_sorted).  False, with out as it was, when json is not an object it can walk:
 * the caller then sends it whole. */
bool sb__pj_json_keep(const char *json, size_t len, bool (*keep)(const char *key, size_t n, void *data),
                      void *data, sb_buf_t *out);
/* runner.c: gives m what d (its installed version's file) says of the payloads. */
void sb__pj_member_set_payload(pj_member_t *m, const sb_pj_def_t *d);

/* unit.c */
pj_unit_t *sb__pj_unit_new(pj_runner_t *r, bool build, int64_t position);
void sb__pj_unit_add(pj_unit_t *u, pj_member_t *m);
void sb__pj_unit_remove(pj_unit_t *u, pj_member_t *m);
/* Subscribes from u->committed and starts applying. */
void sb__pj_unit_start(pj_unit_t *u);
/* Closes the subscription and connections; the runner frees u once closed (sb__pj_unit_closed). */
void sb__pj_unit_close(pj_unit_t *u);
/* Subscribes after delay_ms instead. */
void sb__pj_unit_start_later(pj_unit_t *u, uint64_t delay_ms);
/* Flushes what is collected (or, with nothing collected, records how far the filter skipped) if
 * nothing is in flight and the unit is not held; force ignores the hold. */
void sb__pj_unit_kick(pj_unit_t *u, bool force);
/* After a swap: the unit's members now run the live tables. */
void sb__pj_unit_promote(pj_unit_t *u);
/* The position every event the unit needs up to which is applied. */
int64_t sb__pj_unit_position(const pj_unit_t *u);
/* Runs the members' deferred set-up (once caught up), unless done, under way, or a batch is in
 * flight.  Holds the unit until it is done; the runner is told through sb__pj_runner_committed. */
void sb__pj_unit_run_deferred(pj_unit_t *u);

/* runner.c: called by units */
sb_follower_t *sb__pj_runner_follower(pj_runner_t *r);
sb_loop_t *sb__pj_runner_loop(pj_runner_t *r);
const char *sb__pj_runner_conninfo(pj_runner_t *r);
int sb__pj_runner_max_batch(pj_runner_t *r);
uint64_t sb__pj_runner_linger_ms(pj_runner_t *r);
/* Counts a batch of n events every lane of a unit committed / busy_ns of some lane of a unit
 * applying, wait_ns of which some other lane of it was idle / a batch a lane started before
 * another lane had committed the one before it / a batch that waited waited_ms for more. */
void sb__pj_runner_count_batch(pj_runner_t *r, int n);
void sb__pj_runner_count_busy(pj_runner_t *r, uint64_t busy_ns, uint64_t wait_ns);
void sb__pj_runner_count_ahead(pj_runner_t *r);
void sb__pj_runner_count_linger(pj_runner_t *r, uint64_t waited_ms);
void sb__pj_runner_committed(pj_runner_t *r, pj_unit_t *u);
/* Some lane of u failed its batch (the others may have committed it): lane->status etc. say how. */
void sb__pj_runner_unit_failed(pj_runner_t *r, pj_unit_t *u);
void sb__pj_runner_unit_closed(pj_runner_t *r, pj_unit_t *u);

/* catalog.c: blocking helpers for start-up and the CLI */
PGconn *sb__pj_connect(const char *conninfo, char *err, size_t errlen);
int sb__pj_ensure_catalog(PGconn *c, char *err, size_t errlen);
/* Installs d live (build false) or as a build; SB_EEXIST when someone installed it first. */
int sb__pj_install_blocking(PGconn *c, const sb_pj_def_t *d, bool build, char *err, size_t errlen);
void sb__pj_text_array(sb_buf_t *out, char *const *items, int n);

#endif
