/* Internal to the outbox (outbox.c: jobs, checkpoint, recording; outbox_send.c: the providers). */
#ifndef SB_REACTORS_OUTBOX_INT_H
#define SB_REACTORS_OUTBOX_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "core/uuid.h"
#include "db/pg.h"
#include "events/follow.h"
#include "providers/resend.h"
#include "providers/twilio.h"
#include "reactors/idmap.h"
#include "reactors/outbox.h"
#include "reactors/wsconf.h"

typedef struct sb__ob_job_s sb__ob_job_t;

struct sb__ob_job_s {
    sb_outbox_t *o;
    sb__ob_job_t *prev, *next; /* in position order */
    bool linked;
    int64_t position; /* of its MessageQueued */
    char message_id[SB_UUID_STRLEN + 1];
    char contact_id[SB_UUID_STRLEN + 1];
    char workspace_id[SB_UUID_STRLEN + 1];
    json_t *msg;        /* the MessageQueued payload */
    json_t *known_pids; /* {"<provider id>": true} of the contact's messages */
    const sb_wsconf_t *conf;
    int attempts;            /* recorded (MessageSendAttempted) */
    int64_t attempted_at_us; /* the last one's time */
    bool unknown;            /* the last attempt may have reached the provider */
    bool final;              /* no attempts left: a reconcile that finds nothing fails the message */
    int reconciles;          /* failed looks at Twilio's list */
    bool busy;               /* an actor or configuration callback is on its way */
    sb_twilio_req_t *tw;
    sb_resend_req_t *rs;
    uv_timer_t timer;
    void (*after_timer)(sb__ob_job_t *j);
    /* the outcome being recorded */
    char status[16];
    char provider_id[130];
    char code[40];
    char error[300];
};

struct sb_outbox_s {
    sb_loop_t *loop;
    sb_outbox_options_t opts;
    sb_sub_t *sub;
    bool paused;
    sb_idmap_t jobs; /* message id -> job */
    sb__ob_job_t *head, *tail;
    int njobs;  /* linked */
    int nalive; /* allocated (linked, or closing) */
    int64_t saved, saving_at;
    bool saving; /* req is in use (checkpoint read or write) */
    sb_pg_req_t req;
    const char *params[1];
    char param[24];
    uv_timer_t tick;
    bool tick_open;
    bool stopping;
    sb_outbox_stats_t stats;
};

/* outbox.c */
void sb__ob_attempt(sb__ob_job_t *j);
void sb__ob_sent(sb__ob_job_t *j, const char *provider_id);
void sb__ob_failed(sb__ob_job_t *j, const char *code, const char *error);
void sb__ob_done(sb__ob_job_t *j);
/* A callback came back: false (and the job freed) when the outbox is stopping. */
bool sb__ob_back(sb__ob_job_t *j);
/* Runs next after ms on the job's timer. */
void sb__ob_later(sb__ob_job_t *j, uint64_t ms, void (*next)(sb__ob_job_t *j));
void sb__ob_maybe_free(sb_outbox_t *o);

/* outbox_send.c */
bool sb__ob_is_twilio(const sb__ob_job_t *j);
/* Sends the message (an attempt has just been recorded). */
void sb__ob_send(sb__ob_job_t *j);
/* Looks for the message at Twilio (once the unknown attempt is old enough): sent if found, else a
 * new attempt (or failed, when final). */
void sb__ob_reconcile(sb__ob_job_t *j);
/* Abandons a provider request in flight. */
void sb__ob_cancel_request(sb__ob_job_t *j);

#endif
