/* The flows' shared machinery (flows.c) used by flows_contact.c and flows_user.c.  Not a public
 * contract.
 *
 * A flow is one heap object living on its caller's loop.  It has at most one ask in flight; the
 * reply goes to f->next.  Claims: f->want lists the values (E.164 numbers or addresses) the
 * subject (f->stream) must hold before the flow's write; sb__flow_claim takes them in sorted order
 * and then calls ops->claimed, or ops->taken when another live owner has one. */
#ifndef SB_ACTORS_FLOWS_INT_H
#define SB_ACTORS_FLOWS_INT_H

#include "actors/decider.h"
#include "actors/flows.h"
#include "actors/runtime.h"
#include "core/uuid.h"
#include "events/stream.h"

#include <uv.h>

typedef struct sb__flow_s sb__flow_t;
typedef void (*sb__flow_step)(sb__flow_t *f, const sb_ask_reply_t *r);

typedef struct sb__flow_ops_s {
    /* Every wanted value is held: send the write (the deadline has been checked). */
    void (*claimed)(sb__flow_t *f);
    /* value is held by holder (its reply: state may be an empty stream's, when it is being created
     * right now).  Finish the flow (sb__flow_settle after setting the result). */
    void (*taken)(sb__flow_t *f, const char *value, const sb_ask_reply_t *holder);
    /* May take over ("adopt") an owner that was claimed for but never written: creating flows. */
    bool adopt;
} sb__flow_ops_t;

enum { SB__SUBJECT_CONTACT, SB__SUBJECT_USER };

struct sb__flow_s {
    sb_task_t task; /* finishing, posted to the caller's loop */
    uv_timer_t timer;
    bool timer_open;
    sb_loops_t *g;
    sb_loop_t *loop; /* the caller's */
    sb_flow_cb cb;
    void *data;
    const sb__flow_ops_t *ops;
    sb__flow_step next;
    /* the caller's metadata (copies) */
    char *user_id, *correlation_id, *causation_id, *request_id, *source;
    bool check_version;
    int64_t expected_version;
    int n_more_versions;
    int64_t more_versions[SB_ASK_MAX_VERSIONS - 1];
    sb_flow_mode_t mode;
    /* the subject */
    int subject;                     /* SB__SUBJECT_* : phone claims or e-mail claims */
    char ws[SB_UUID_STRLEN + 1];     /* the workspace (contacts), "" for users */
    char id[SB_UUID_STRLEN + 1];     /* the subject's uuid */
    char stream[SB_STREAM_NAME_MAX]; /* "contact-<id>" / "user-<id>" */
    json_t *fields;                  /* the caller's fields / command (a private copy) */
    json_t *cmd;                     /* the write to send once the claims are held */
    json_t *context;                 /* the workspace context (contacts) */
    json_t *current;                 /* the subject's state when read (updates) */
    int64_t base_version;            /* the subject's version the write expects (updates) */
    bool refreshed, ws_refreshed;    /* the subject / workspace looked missing and was read again */
    int retries;                     /* whole-flow restarts after the subject changed */
    /* claims */
    json_t *want;         /* sorted values the subject must hold */
    json_t *listed;       /* values the subject had when read (its phones, its address) */
    json_t *taken;        /* values this flow claimed for the subject (a Claimed event) */
    json_t *drop;         /* values to release once the write succeeded */
    size_t at;            /* the value being claimed, in want */
    bool probing;         /* first pass: only look for live holders */
    int64_t relied_since; /* the oldest claimed_at the write relies on (INT64_MAX: none) */
    json_t *claim;        /* the claim state being examined */
    char holder[SB_STREAM_NAME_MAX];
    int adoptions, detours;
    json_t *releasing; /* values being released */
    size_t rel_at;
    /* the result */
    int status;
    bool has_err;
    sb_derror_t err;
    char *error;
    json_t *state;
    int64_t version;
    bool created, precondition_failed;
    char res_stream[SB_STREAM_NAME_MAX];
    char res_holder[SB_STREAM_NAME_MAX];
};

/* A new flow for the calling loop (NULL: no current loop, or out of memory; *rc says which). */
sb__flow_t *sb__flow_new(sb_loops_t *g, const sb_flow_opts_t *opts, sb_flow_cb cb, void *data, int *rc);
/* Frees a flow that was never started (its cb will not fire). */
void sb__flow_discard(sb__flow_t *f);
/* If-Match: whether version v of the subject meets the caller's condition (one version or any of a
 * list), and the newest version the condition names. */
bool sb__flow_version_matches(const sb__flow_t *f, int64_t v);
int64_t sb__flow_newest_expected(const sb__flow_t *f);

/* Sets the subject: category "contact" / "user" and uuid text (normalised). */
void sb__flow_subject(sb__flow_t *f, int subject, const char *id);

typedef struct sb__ask_x_s {
    const char *workspace_id;
    const json_t *context;
    bool check_version;
    int64_t expected_version;
    bool refresh;
} sb__ask_x_t;

/* Asks stream (cmd stolen; NULL for a read); the reply goes to next.  Finishes the flow on a
 * synchronous failure. */
void sb__flow_ask(sb__flow_t *f, const char *stream, json_t *cmd, const sb__ask_x_t *x, sb__flow_step next);

/* Results, then sb__flow_finish (or sb__flow_settle / sb__flow_release_then_finish). */
void sb__flow_ok(sb__flow_t *f, const sb_ask_reply_t *r, bool created);
void sb__flow_reject(sb__flow_t *f, int status, const char *code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
void sb__flow_fail(sb__flow_t *f, int status, const char *error);
/* Takes r's outcome: status, err, error, precondition_failed, and its state when there is one. */
void sb__flow_fail_reply(sb__flow_t *f, const sb_ask_reply_t *r);
/* Calls cb on the caller's loop (a posted task) and frees f. */
void sb__flow_finish(sb__flow_t *f);
/* Finishes after releasing the claims this flow took that the subject does not list (only when the
 * subject exists: an unwritten subject's claims stay, to be adopted or to expire).  Whatever the
 * result set, success or failure. */
void sb__flow_settle(sb__flow_t *f);
/* Finishes after releasing f->drop (the subject's removed values). */
void sb__flow_release_then_finish(sb__flow_t *f);

/* Claims f->want for f->stream (see above). */
void sb__flow_claim(sb__flow_t *f);

/* The values a subject's state holds (its phones; its e-mail), as a new array. */
json_t *sb__flow_listed(int subject, const json_t *state);
/* Runs k's decide on state (pure; nothing is stored) for validation and normalisation: 0 with the
 * events in out (the caller clears it) or SB_EREJECTED with err. */
int sb__flow_dry_run(sb__flow_t *f, const sb_kind_t *k, const json_t *state, const json_t *cmd,
                     const char *user_id, sb_devents_t *out, sb_derror_t *err);
/* Sorted, de-duplicated copy of a string array (NULL -> []). */
json_t *sb__flow_sorted(const json_t *a);
/* a - b for string arrays, sorted. */
json_t *sb__flow_minus(const json_t *a, const json_t *b);
bool sb__flow_has(const json_t *a, const char *s);

#endif
