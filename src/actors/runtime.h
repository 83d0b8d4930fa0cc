/* The actor runtime: virtual actors on worker loops.
 *
 * Every stream ("contact-<uuid>") has one actor, owned by the loop sb_loops_pick(sb_stream_hash)
 * and touched only on that loop's thread.  An actor exists conceptually forever: it is activated
 * on its first message (the latest snapshot, then the events after it, folded with its kind's
 * evolve) and passivated after an idle period or when its loop is over its memory budget.
 * Messages that arrive meanwhile wait in its mailbox; it handles one message at a time, in
 * arrival order.
 *
 * A command is decided by the kind's pure decide (src/actors/decider.h); the runtime appends the
 * events with the actor's version as the expected version (group commit, src/events/append.h),
 * folds them in with evolve once committed, then replies.  A conflict (another process wrote the
 * stream) reloads the actor and decides again, a bounded number of times.
 *
 * Crossing threads: sb_actor_ask posts the command to the owner loop and the reply comes back as a
 * task on the caller's loop, where the callback runs.  No locks around actor state.
 *
 * Asks may be made from any loop until sb_loops_stop; once a loop's runtime is stopping, asks to
 * its actors are answered SB_ESHUTDOWN.  Stopping lets in-flight appends finish. */
#ifndef SB_ACTORS_RUNTIME_H
#define SB_ACTORS_RUNTIME_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "actors/decider.h"
#include "core/config.h"
#include "core/loop.h"

typedef struct sb_rt_store_s sb_rt_store_t;

/* Opens the persistence a loop's runtime uses (see runtime_store.h); NULL on failure. */
typedef sb_rt_store_t *(*sb_rt_store_open_cb)(sb_loop_t *loop, void *arg);

typedef struct sb_runtime_config_s {
    int mailbox_capacity;      /* messages waiting per actor; 0 = 1024 */
    uint64_t idle_ms;          /* passivate after this idle time; 0 = 300 s */
    uint64_t sweep_ms;         /* how often the idle sweep runs; 0 = idle_ms / 4, 50 ms .. 10 s */
    size_t memory_budget;      /* estimated bytes of actor state per loop; 0 = 256 MiB */
    int snapshot_every;        /* write a snapshot every K events; 0 = 100; < 0 never */
    int snapshot_on_passivate; /* ... and on passivation when this many events are not in one; 0 = 20 */
    /* A busy actor writes its every-K snapshot at most once per this many milliseconds, unless
     * 10 K events are not in one; 0 = no limit.  Each snapshot packs the whole state: for an actor
     * with a large state taking many commands a second, snapshots every K events cost more than
     * the commands, while only an activation (after passivation, which writes one anyway, or a
     * restart) ever reads them. */
    uint64_t snapshot_interval_ms;
    int max_attempts; /* decides per command when appends conflict; 0 = 5 */
    int read_page;    /* events per read while loading; 0 = 500 */
    /* The kind for a category; NULL = sb_kind_find. */
    const sb_kind_t *(*find_kind)(const char *category);
    /* The store; NULL = PostgreSQL through loop->db and loop->appender (sb_rt_pgstore_open). */
    sb_rt_store_open_cb open_store;
    void *store_arg;
} sb_runtime_config_t;

/* Starts the runtime on loop: call on that loop's thread (in the loops' on_start hook), after the
 * loop's query connection and appender exist.  cfg is copied; NULL means the defaults.  Sets
 * loop->actors and registers a stop hook that drains and frees everything.  0, SB_ENOMEM, or SB_EINVAL
 * when the store cannot be opened (e.g. the loop has no connection or appender). */
int sb_runtime_start(sb_loop_t *loop, const sb_runtime_config_t *cfg);

/* Fills a config's idle time from the process configuration (SWITCHBOARD_ACTOR_IDLE_SECONDS). */
void sb_runtime_config_from(sb_runtime_config_t *rc, const sb_config_t *cfg);

/* Who asks, and why: recorded in each event's metadata and given to decide.  Strings are copied
 * (each at most SB_ASK_MAX_STR bytes). */
#define SB_ASK_MAX_STR 255
/* The most versions one If-Match may name (expected_version and more_versions). */
#define SB_ASK_MAX_VERSIONS 8

typedef struct sb_ask_opts_s {
    const char *user_id;   /* the acting user's uuid, or NULL for the system */
    const json_t *context; /* facts for decide (sb_decide_ctx_t.context), or NULL; a reference is
                              taken (unless context_borrowed) and the value is read on the owner
                              loop: do not modify it after the call */
    /* The caller keeps context alive and unchanged until its callback has run: the runtime then
     * takes no reference.  Taking one writes the value's reference count on the caller's loop and
     * again on the owner's, a cache line both cores write for every ask; borrowed, the owner only
     * reads it.  Ignored by sb_actor_schedule and by an ask without a callback (a reference is
     * taken: nothing tells the caller when the runtime is done). */
    bool context_borrowed;
    const char *correlation_id; /* metadata; NULL = none */
    const char *causation_id;
    const char *request_id;
    const char *source; /* "api", "webhook", "reactor:outbox", ... */
    /* The workspace the stream belongs to (stored as the events' workspace_id): the actor's
     * state["workspace_id"] when it has one (workspace-scoped kinds keep it there), else the
     * creating event's payload["workspace_id"], else this uuid, else a workspace stream's own id. */
    const char *workspace_id;
    /* If-Match: decide only when the stream is at expected_version, else answer SB_ECONFLICT with
     * precondition_failed set (and the current version).  A version ahead of the actor's makes it
     * read the log first: another process may have written it (the client saw that version). */
    bool check_version;
    int64_t expected_version;
    /* If-Match with a list of entity tags (RFC 9110 §13.1.1): the condition also holds when the
     * stream is at any of these n_more_versions versions (at most SB_ASK_MAX_VERSIONS - 1).  A
     * version ahead of the actor's, among them, makes it read the log first, as above. */
    int n_more_versions;
    int64_t more_versions[SB_ASK_MAX_VERSIONS - 1];
    bool skip_state;      /* do not copy the new state into the reply */
    bool skip_event_data; /* do not copy the events' payloads into the reply */
    /* Read the log for events after the actor's version before deciding (or reading), unless the
     * actor has read it since this message arrived.  An actor's state is otherwise only as fresh
     * as its last load: another process's writes show up when an append conflicts, which a read,
     * a rejection or a no-op never does.  Costs one query; for decisions that must see every
     * process's writes (uniqueness claims, src/actors/flows.h). */
    bool refresh;
} sb_ask_opts_t;

/* One event a command stored. */
typedef struct sb_ask_event_s {
    const char *type; /* static */
    json_t *data;     /* a copy of the payload (NULL with skip_event_data); read-only */
    int64_t version;
    int64_t position; /* 0 when the append did not report it */
    int64_t recorded_at_us;
} sb_ask_event_t;

/* The outcome of an ask, valid during the callback only (json_incref what you keep; the values
 * are independent copies, yours to read but shared with nobody).
 *   status 0:             done; events (maybe none: an idempotent repeat) are committed.
 *   status SB_EREJECTED:  decide refused; err says why (status, code, field, message).
 *   status SB_ECONFLICT:  the stream kept changing under us (max_attempts decides conflicted), or,
 *                         with precondition_failed, it was not at opts.expected_version.
 *   status SB_EOVERLOAD:  the actor's mailbox was full; nothing was done (answer 503, Retry-After).
 *   status SB_EUNKNOWN:   the connection broke during the commit: the events may be stored or not;
 *                         the actor reloads from the log (answer 503; retry with an idempotency key).
 *   status SB_ESHUTDOWN:  the runtime is stopping; nothing was done.
 *   status SB_ENOTFOUND:  no actor kind for the stream's category.
 *   other negative:       storage failed (SB_EDB with error, SB_EDBDOWN, SB_ECODEC); nothing stored. */
typedef struct sb_ask_reply_s {
    int status;
    const char *stream;
    int64_t version; /* the stream's version after the command (0: no events yet; for a read, the
                        stream does not exist) */
    const sb_ask_event_t *events;
    int nevents;
    json_t *state;            /* a copy of the state after the command (with SB_EREJECTED: the state it
                                 was refused on), or NULL (skip_state, other errors) */
    const sb_derror_t *err;   /* with SB_EREJECTED, else NULL */
    const char *error;        /* detail for storage errors, or NULL */
    int attempts;             /* decides it took (> 1 after conflicts) */
    bool precondition_failed; /* SB_ECONFLICT because of opts.check_version (answer 412) */
} sb_ask_reply_t;

typedef void (*sb_ask_cb)(const sb_ask_reply_t *reply, void *data);

/* Sends cmd ({"type": "...", ...}; stolen, even on failure) to stream's actor.  Call on a worker
 * loop (sb_loop_current() != NULL): cb fires later on that loop, never inside this call.  Returns
 * 0, or SB_EINVAL synchronously (malformed stream name or option, no current loop, cmd not an
 * object), in which case cb never fires. */
int sb_actor_ask(sb_loops_t *g, const char *stream, json_t *cmd, const sb_ask_opts_t *opts, sb_ask_cb cb,
                 void *data);

/* Reads stream's actor state (activating it if needed) without deciding, in mailbox order: the
 * reply's state reflects every command that arrived before.  opts may be NULL.  As sb_actor_ask. */
int sb_actor_get(sb_loops_t *g, const char *stream, const sb_ask_opts_t *opts, sb_ask_cb cb, void *data);

/* Delivers cmd (stolen) to stream's actor at wall-clock time at_us (or at once if past), activating
 * it then if needed.  The pending timer does not keep the actor active, and it is not durable: a
 * restart forgets it, and a full mailbox at that time drops it (durable scheduling is the scheduler
 * reactor's).  The reply is dropped (failures are logged).  Callable from any thread.  0 or
 * SB_EINVAL. */
int sb_actor_schedule(sb_loops_t *g, const char *stream, int64_t at_us, json_t *cmd,
                      const sb_ask_opts_t *opts);

/* Counters of one loop's runtime.  Each is written by its loop only; any thread may read them
 * (a consistent-enough view for metrics) while the loops run: not concurrently with sb_loops_stop,
 * which frees each runtime. */
typedef struct sb_runtime_stats_s {
    uint64_t active; /* actors in memory now */
    uint64_t activations;
    uint64_t passivations;
    uint64_t mailbox_full; /* asks answered SB_EOVERLOAD */
    uint64_t commands;     /* asks handled (commands and reads) */
    uint64_t rejected;     /* SB_EREJECTED */
    uint64_t appends;      /* commands that stored events */
    uint64_t conflicts;    /* appends that conflicted */
    uint64_t retries;      /* decides repeated after a conflict */
    uint64_t failures;     /* storage errors, unknown outcomes, failed activations */
    uint64_t snapshots;    /* snapshot writes started */
    uint64_t timers;       /* scheduled commands pending */
    uint64_t memory;       /* estimated bytes of actor state */
} sb_runtime_stats_t;

/* Adds loop's counters into out (zero it first to read one loop); any thread. */
void sb_runtime_add_stats(const sb_loop_t *loop, sb_runtime_stats_t *out);
/* The sum over every loop of g. */
void sb_runtime_get_stats(const sb_loops_t *g, sb_runtime_stats_t *out);

/* Passivates loop's idle actors (empty mailbox, no I/O in flight) that have been idle at least
 * idle_ms (0: all of them), writing snapshots as configured.  Call on loop's thread; returns how
 * many were passivated.  For tests and operations (the sweep does this on its own). */
int sb_runtime_passivate_idle(sb_loop_t *loop, uint64_t idle_ms);

#endif
