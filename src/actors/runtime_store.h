/* Where actors' streams and snapshots live, as seen by the runtime.
 *
 * The runtime works in JSON (the kinds' states and payloads); a store turns that into storage.
 * One store per loop, opened when the loop's runtime starts and closed when it has finished; every
 * call and callback happens on that loop's thread, and callbacks never fire inside the call that
 * started them.
 *
 * Two stores exist: PostgreSQL (the event log through the loop's appender and query connection,
 * msgpack payloads; what the server runs) and memory (a process-wide map of streams for tests and
 * benchmarks that need actors but no database). */
#ifndef SB_ACTORS_RUNTIME_STORE_H
#define SB_ACTORS_RUNTIME_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "actors/decider.h"
#include "core/loop.h"
#include "core/uuid.h"
#include "db/pg.h"
#include "events/append.h"

typedef struct sb_rt_store_s sb_rt_store_t;

/* An event read back: ev.type and ev.data are borrowed for the callback. */
typedef struct sb_rt_event_s {
    sb_devent_t ev;
    int64_t position;
} sb_rt_event_t;

/* The metadata recorded with a command's events (strings may be NULL). */
typedef struct sb_rt_meta_s {
    const char *correlation_id;
    const char *causation_id;
    const char *user_id;
    const char *request_id;
    const char *source;
} sb_rt_meta_t;

/* A command's events to append; everything is borrowed until the callback. */
typedef struct sb_rt_append_req_s {
    const char *stream;
    int64_t expected_version; /* the stream's current version (SB_VERSION_NO_STREAM for a new one), as
                                 the actor knows it: read from the log or committed by an append,
                                 never assumed (sb_append_t.expected_known) */
    bool has_workspace;
    sb_uuid_t workspace;
    const sb_devent_t *events;
    int nevents;
    sb_rt_meta_t meta;
} sb_rt_append_req_t;

/* As sb_append_cb: status 0 (version is the new version, positions first..last, recorded_at),
 * SB_ECONFLICT (version is the stream's), SB_EUNKNOWN, or another negative code. */
typedef struct sb_rt_append_res_s {
    int status;
    int64_t version;
    int64_t first_position;
    int64_t last_position;
    int64_t recorded_at_us;
    const char *error; /* detail, or NULL; valid during the callback */
} sb_rt_append_res_t;

/* status 0 with state (a new reference, the caller's) or state NULL when the stream has no
 * snapshot; version and position are the snapshot's.  Negative on failure. */
typedef void (*sb_rt_snapshot_cb)(void *data, int status, json_t *state, int64_t version, int64_t position,
                                  const char *error);
/* status 0 with up to limit events in version order (more: there may be more after the last);
 * negative on failure. */
typedef void (*sb_rt_page_cb)(void *data, int status, const sb_rt_event_t *events, int n, bool more,
                              const char *error);
typedef void (*sb_rt_append_cb)(void *data, const sb_rt_append_res_t *res);

typedef struct sb_rt_store_ops_s {
    void (*load_snapshot)(sb_rt_store_t *s, const char *stream, sb_rt_snapshot_cb cb, void *data);
    void (*read_events)(sb_rt_store_t *s, const char *stream, int64_t after_version, int limit,
                        sb_rt_page_cb cb, void *data);
    void (*append)(sb_rt_store_t *s, const sb_rt_append_req_t *req, sb_rt_append_cb cb, void *data);
    /* Best effort, no callback: stores state (borrowed for the call) as stream's snapshot unless a
     * newer one exists. */
    void (*save_snapshot)(sb_rt_store_t *s, const char *stream, int64_t version, int64_t position,
                          const json_t *state);
    /* Frees the store.  Called once nothing started through it is waiting for a callback, except
     * snapshot writes, which must finish on their own. */
    void (*close)(sb_rt_store_t *s);
} sb_rt_store_ops_t;

struct sb_rt_store_s {
    const sb_rt_store_ops_t *ops;
};

/* PostgreSQL: snapshots and reads on pg, appends through ap (may be NULL for a read-only store,
 * e.g. replay).  Neither is owned. */
sb_rt_store_t *sb_rt_pgstore_new(sb_pg_t *pg, sb_appender_t *ap);
/* The runtime's default store opener: loop->db and loop->appender. */
sb_rt_store_t *sb_rt_pgstore_open(sb_loop_t *loop, void *arg);

/* Memory: a process-wide set of streams shared by every loop that opens it (a mutex guards it;
 * for tests and benchmarks only).  Appends honour expected versions like the log does. */
typedef struct sb_memlog_s sb_memlog_t;
sb_memlog_t *sb_memlog_new(void);
void sb_memlog_free(sb_memlog_t *m);
/* Use as sb_runtime_config_t.open_store with store_arg = the sb_memlog_t. */
sb_rt_store_t *sb_memlog_open(sb_loop_t *loop, void *arg);
/* The stream's version (0 when it has no events); any thread. */
int64_t sb_memlog_version(sb_memlog_t *m, const char *stream);
/* Copies of the stream's events, in version order: [{type, data, version, position, recorded_at,
 * workspace?}] (caller owns). */
json_t *sb_memlog_events(sb_memlog_t *m, const char *stream);
/* Appends events as if another process had written them (for conflict tests); 0 or SB_ECONFLICT. */
int sb_memlog_append_external(sb_memlog_t *m, const char *stream, int64_t expected, const char *type,
                              json_t *data);
/* Counts snapshot writes and snapshot loads that found one. */
void sb_memlog_counts(sb_memlog_t *m, uint64_t *snapshot_writes, uint64_t *snapshot_hits);
/* Makes the next n appends fail with status (e.g. SB_EUNKNOWN after storing, when stored is true). */
void sb_memlog_fail_next(sb_memlog_t *m, int n, int status, bool stored);

#endif
