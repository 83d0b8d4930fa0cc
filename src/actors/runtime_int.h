/* The runtime's internals, shared by runtime*.c and their unit tests.  Not a public contract. */
#ifndef SB_ACTORS_RUNTIME_INT_H
#define SB_ACTORS_RUNTIME_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "actors/runtime.h"
#include "actors/runtime_store.h"

/* ---- messages ---------------------------------------------------------------------------- */

enum { SB__MSG_ASK, SB__MSG_GET, SB__MSG_TIMER };

/* One ask, from the caller to the owner loop and back: the same allocation carries the command
 * there and the reply home.  Strings live after the struct. */
typedef struct sb__msg_s {
    sb_task_t task;
    struct sb__msg_s *next; /* mailbox link */
    sb_loop_t *owner;
    sb_loop_t *caller; /* NULL for scheduled commands: the reply is dropped */
    sb_ask_cb cb;
    void *data;
    uint64_t hash;
    uint8_t kind;
    bool skip_state;
    bool skip_event_data;
    bool has_workspace;
    bool check_version;
    bool precondition_failed;
    bool refresh;
    uint64_t arrived_seq; /* the actor's read_seq when the message joined its mailbox */
    int64_t expected_version;
    uint8_t n_more_versions; /* If-Match lists: the other versions that match */
    int64_t more_versions[SB_ASK_MAX_VERSIONS - 1];
    sb_uuid_t workspace;
    json_t *cmd;
    json_t *context;
    bool context_borrowed; /* context is the caller's (sb_ask_opts_t.context_borrowed): no reference */
    sb_rt_meta_t meta;
    int64_t at_us; /* scheduled commands */
    /* the reply */
    int status;
    int attempts;
    int64_t version;
    json_t *state;
    sb_ask_event_t *events;
    int nevents;
    sb_derror_t *err;
    char *error;
    size_t stream_len;
    char stream[]; /* NUL-terminated, then the metadata strings */
} sb__msg_t;

/* ---- actors ------------------------------------------------------------------------------ */

enum {
    SB__LOADING,   /* reading the snapshot and the events after it */
    SB__READY,     /* may take the next message */
    SB__APPENDING, /* the current message's events are being committed */
    SB__RELOADING, /* reading events written by someone else (conflict, unknown outcome) */
};

typedef struct sb__runtime_s sb__runtime_t;

typedef struct sb__actor_s {
    uint64_t hash;
    sb__runtime_t *rt;
    const sb_kind_t *kind;
    json_t *state;
    int64_t version;       /* of the last event folded in (0: none) */
    int64_t position;      /* of that event (0 when unknown) */
    int64_t unsnapshotted; /* events folded in since the last snapshot read or written */
    size_t mem;            /* estimated bytes held (state and the struct) */
    uint64_t idle_since;   /* uv_now() when it last became idle */
    uint64_t snapshot_ms;  /* uv_now() when its snapshot was last read or written */
    struct sb__actor_s *lru_prev, *lru_next;
    sb__msg_t *mb_head, *mb_tail;
    int mb_len;
    uint64_t read_seq;     /* log reads started (activation, reloads) */
    uint64_t fresh_seq;    /* read_seq of the last read that finished */
    sb__msg_t *cur;        /* being handled: appending, or waiting for a reload to decide again */
    sb_devents_t *decided; /* cur's events while they are appended */
    size_t decided_mem;    /* their estimated size, measured when decided (still in cache then) */
    uint8_t phase;
    bool in_lru;
    size_t stream_len;
    char stream[]; /* NUL-terminated */
} sb__actor_t;

/* ---- registry: stream name -> actor, open addressing with linear probing --------------------- */

typedef struct sb__reg_slot_s {
    uint64_t hash;
    sb__actor_t *actor; /* NULL: empty */
} sb__reg_slot_t;

typedef struct sb__registry_s {
    sb__reg_slot_t *slots;
    size_t cap; /* a power of two, or 0 */
    size_t n;
} sb__registry_t;

void sb__registry_init(sb__registry_t *r);
void sb__registry_free(sb__registry_t *r);
sb__actor_t *sb__registry_find(const sb__registry_t *r, uint64_t hash, const char *stream, size_t len);
/* Adds a (whose stream is not present).  0 or SB_ENOMEM. */
int sb__registry_add(sb__registry_t *r, sb__actor_t *a);
/* Removes a (which must be present). */
void sb__registry_remove(sb__registry_t *r, sb__actor_t *a);
/* Calls fn for every actor; fn may not change the registry. */
void sb__registry_each(const sb__registry_t *r, void (*fn)(sb__actor_t *a, void *arg), void *arg);

/* ---- timers: a min-heap of scheduled commands by (at_us, seq) ------------------------------ */

typedef struct sb__timer_s {
    int64_t at_us;
    uint64_t seq; /* keeps equal times in scheduling order */
    sb__msg_t *msg;
} sb__timer_t;

typedef struct sb__heap_s {
    sb__timer_t *items;
    size_t n, cap;
    uint64_t next_seq;
} sb__heap_t;

void sb__heap_init(sb__heap_t *h);
void sb__heap_free(sb__heap_t *h); /* the array only; empty it first */
int sb__heap_push(sb__heap_t *h, int64_t at_us, sb__msg_t *msg);
/* The earliest entry, or NULL. */
const sb__timer_t *sb__heap_top(const sb__heap_t *h);
/* Removes the earliest entry and returns its message (NULL when empty). */
sb__msg_t *sb__heap_pop(sb__heap_t *h);

/* ---- the per-loop runtime ------------------------------------------------------------------ */

typedef struct sb__stats_s {
    _Atomic uint64_t active, activations, passivations, mailbox_full, commands, rejected, appends, conflicts,
        retries, failures, snapshots, timers, memory;
} sb__stats_t;

/* Counters are written by the owner loop only: a relaxed load and store, no locked instruction. */
#define SB__STAT_ADD(rt, field, v)                                                                           \
    atomic_store_explicit(&(rt)->stats.field,                                                                \
                          atomic_load_explicit(&(rt)->stats.field, memory_order_relaxed) + (uint64_t)(v),    \
                          memory_order_relaxed)
#define SB__STAT_SET(rt, field, v)                                                                           \
    atomic_store_explicit(&(rt)->stats.field, (uint64_t)(v), memory_order_relaxed)

struct sb__runtime_s {
    sb_loop_t *loop;
    sb_runtime_config_t cfg;
    sb_rt_store_t *store;
    sb__registry_t reg;
    sb__actor_t *lru_head, *lru_tail; /* idle actors, least recently used first */
    size_t mem;                       /* sum of the actors' estimates */
    uv_timer_t sweep;
    uv_timer_t timer;
    sb__heap_t heap;
    sb_devents_t *spare; /* a free event list (see runtime_actor.c) */
    int open_handles;
    bool stopping;
    sb__stats_t stats;
};

/* runtime_actor.c */
/* Takes msg (on the owner loop): queues it for its actor, activating it when needed. */
void sb__actor_deliver(sb__runtime_t *rt, sb__msg_t *msg);
/* Finishes msg with status and sends it home (or frees it for a scheduled command). */
void sb__msg_reply(sb__msg_t *msg, int status);
/* Stop: fails queued messages, frees idle actors; busy ones free themselves when their I/O ends. */
void sb__actors_stop(sb__runtime_t *rt);
int sb__actors_passivate_idle(sb__runtime_t *rt, uint64_t idle_ms);
/* Frees the runtime once it is stopping, every actor is gone and its handles are closed. */
void sb__runtime_maybe_free(sb__runtime_t *rt);

/* An estimate of the heap bytes a JSON value holds (jansson's allocations, roughly). */
size_t sb__json_size(const json_t *j);
/* A command's metadata as the msgpack map the log stores (runtime_pgstore.c): appended to b.
 * SB_ECODEC when a value is not UTF-8, SB_ENOMEM when b cannot grow. */
struct sb_buf_s;
int sb__rt_pack_meta(struct sb_buf_s *b, const sb_rt_meta_t *m);

#endif
