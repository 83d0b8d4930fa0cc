/* Internal to call control (calls.c: jobs, order, checkpoint; calls_act.c: what each event does at
 * Twilio; calls_park.c: the parking-limit timers). */
#ifndef SB_REACTORS_CALLS_INT_H
#define SB_REACTORS_CALLS_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "actors/runtime.h"
#include "core/uuid.h"
#include "db/pg.h"
#include "events/follow.h"
#include "providers/twilio.h"
#include "reactors/calls.h"
#include "reactors/idmap.h"
#include "reactors/wsconf.h"

/* A job's synthetic type for a parking limit that ran out (not an event of the log). */
#define SB__CC_RING "ParkingLimitReached"

typedef struct sb__cc_job_s sb__cc_job_t;

struct sb__cc_job_s {
    sb_calls_t *cc;
    sb__cc_job_t *prev, *next; /* in arrival order (log position order, ring jobs at the end) */
    bool linked;
    bool running;     /* the call's current job (others of the call wait) */
    int64_t position; /* of its event; 0 for a ring job (not part of the checkpoint) */
    int64_t version;  /* of its event */
    char type[32];
    char call_id[SB_UUID_STRLEN + 1];
    char workspace_id[SB_UUID_STRLEN + 1];
    json_t *data;  /* the event's payload */
    json_t *state; /* the call's state, read when the job starts */
    const sb_wsconf_t *conf;
    bool busy; /* an actor, configuration or provider callback is on its way */
    int tries; /* reads and records that could not be made now */
    int step;  /* within a job of several requests (a warm transfer) */
    char ref[96];
    /* the leg being created (after its attempt is recorded) */
    char leg_to[96];
    char *leg_twiml; /* malloc'd, or NULL */
    char leg_url[512];
    char leg_cb[512]; /* StatusCallback ("completed" only), or "" */
    sb_twilio_req_t *tw;
    uv_timer_t timer;
    void (*after_timer)(sb__cc_job_t *j);
};

typedef struct sb__cc_park_s sb__cc_park_t;

struct sb_calls_s {
    sb_loop_t *loop;
    sb_sub_t *sub;
    bool paused;
    sb__cc_job_t *head, *tail;
    sb_idmap_t running; /* call id -> its running job */
    int njobs, nalive;
    int64_t saved, saving_at;
    bool saving;
    sb_pg_req_t req;
    const char *params[1];
    char param[24];
    uv_timer_t tick;
    bool tick_open;
    bool stopping;
    sb_http_retry_t create_retry, update_retry;
    sb__cc_park_t *park;
    sb_calls_stats_t stats;
};

/* calls.c */
/* A job for the event (or ring) described; data is stolen.  Starts it unless a job of the same
 * call is running. */
void sb__cc_add(sb_calls_t *cc, int64_t position, int64_t version, const char *type, const char *call_id,
                const char *workspace_id, json_t *data);
/* The job is over: frees it and starts its call's next. */
void sb__cc_done(sb__cc_job_t *j);
/* A callback came back: false (and the job freed) when call control is stopping. */
bool sb__cc_back(sb__cc_job_t *j);
void sb__cc_later(sb__cc_job_t *j, uint64_t ms, void (*next)(sb__cc_job_t *j));
/* Asks the job's call actor (the system acting) cmd (stolen); cb as for sb_actor_ask. */
void sb__cc_ask(sb__cc_job_t *j, json_t *cmd, void (*cb)(const sb_ask_reply_t *, void *));
void sb__cc_maybe_free(sb_calls_t *cc);

/* calls_act.c: the state and configuration are loaded; do what the job's event asks. */
void sb__cc_act(sb__cc_job_t *j);

/* calls_park.c */
int sb__cc_park_start(sb_calls_t *cc);
void sb__cc_park_stop(sb_calls_t *cc);
/* True while the parking part holds resources (its handles are closing). */
bool sb__cc_park_alive(const sb_calls_t *cc);

#endif
