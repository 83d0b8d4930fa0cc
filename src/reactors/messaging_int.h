/* Internal to src/reactors: the messaging service's shared state and per-loop parts. */
#ifndef SB_REACTORS_MESSAGING_INT_H
#define SB_REACTORS_MESSAGING_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "reactors/messaging.h"
#include "reactors/senders.h"
#include "reactors/wsconf.h"

#define SB__WSC_SLOTS 1024   /* cached workspaces per loop (direct-mapped) */
#define SB__ROUTE_SLOTS 4096 /* cached number routes per loop (direct-mapped) */
#define SB__SENDER_SETS 8192 /* remembered senders per loop: sets of SB__SENDERS_WAYS (about 2 MB) */

typedef struct sb__wsc_load_s sb__wsc_load_t;

typedef struct sb__route_slot_s {
    char number[SB_PHONE_MAX]; /* "" when empty */
    char workspace[SB_UUID_STRLEN + 1];
    uint64_t loaded_ms;
} sb__route_slot_t;

typedef struct sb__msg_loop_s {
    sb_messaging_t *m;
    sb_loop_t *loop;
    bool stopping;
    /* the configuration cache (wsconf.c) */
    sb_wsconf_t *slots[SB__WSC_SLOTS];
    sb__route_slot_t *routes; /* SB__ROUTE_SLOTS */
    sb__senders_t *senders;   /* senders.h, allocated on first use */
    sb__wsc_load_t *loads;    /* reads in flight */
    uint64_t inval_seq;       /* bumped by every invalidation on this loop */
    /* loop 0: the reactors, while the lease is held */
    struct sb_lease_s *lease;
    struct sb_outbox_s *outbox;
    struct sb_scheduler_s *scheduler;
    struct sb_autoreply_s *autoreply;
    struct sb_calls_s *calls; /* call control (calls.h) */
    /* loop 0: the reactors' figures, sampled into the service once a second */
    uv_timer_t stats_timer;
    bool stats_timer_open;
    /* loop 0: following workspace events to invalidate every loop's entries */
    sb_sub_t *inval_sub;
    uv_timer_t inval_timer; /* waits for the follower to know the log's head */
    bool inval_timer_open;
} sb__msg_loop_t;

struct sb_messaging_s {
    sb_messaging_options_t opts;
    char *conninfo;
    int nloops;
    sb__msg_loop_t **loops; /* by loop index */
    /* Caching is off until loop 0 follows the log: before that an invalidation could be missed. */
    _Atomic bool cache_live;
    /* The reactors' figures (sb_messaging_stats_t as words): written by loop 0, read by any loop. */
    _Atomic uint64_t stats[sizeof(sb_messaging_stats_t) / sizeof(uint64_t)];
    /* loop 0 only: the counters of reactors that have stopped, so totals carry on */
    sb_messaging_stats_t base;
};

sb__msg_loop_t *sb__msg_loop(void);

/* wsconf.c */
void sb__wsconf_loop_init(sb__msg_loop_t *ml);
void sb__wsconf_loop_stop(sb__msg_loop_t *ml);
void sb__wsconf_loop_free(sb__msg_loop_t *ml);
/* Forgets ml's entries of workspace (NULL: all) and the routes of the numbers given (NULL-terminated
 * list, may be NULL) and of the workspace. */
void sb__wsconf_invalidate(sb__msg_loop_t *ml, const char *workspace, const char *const *numbers);
/* Monotonic milliseconds (uv_now of the loop). */
uint64_t sb__msg_now_ms(const sb__msg_loop_t *ml);

/* invalidate.c: loop 0 follows workspace events and tells every loop. */
void sb__inval_start(sb__msg_loop_t *ml);
void sb__inval_stop(sb__msg_loop_t *ml);

#endif
