/* The domain as pure functions: decide(state, command) -> events | error and
 * evolve(state, event) -> state.  No I/O, no clock reads, no globals: everything a decision needs
 * arrives in its arguments, which is what makes unit tests cheap and replay exact.
 *
 * State, commands and event payloads are jansson objects.  The runtime (src/actors/runtime.h)
 * loads state by folding evolve over the stream, runs decide, appends the events, then folds them
 * in.  `switchboard replay` runs the same fold. */
#ifndef SB_ACTORS_DECIDER_H
#define SB_ACTORS_DECIDER_H

#include <jansson.h>
#include <stdint.h>

#define SB_MAX_EVENTS_PER_COMMAND 16

/* One event decided by a command, or read back from the log. */
typedef struct sb_devent_s {
    const char *type;       /* a catalogue name, e.g. "ContactCreated" (static storage) */
    json_t *data;           /* the payload object; owned by whoever holds the sb_devent_t */
    int64_t version;        /* stream version once stored; 0 for a freshly decided event */
    int64_t recorded_at_us; /* when stored; for a decided event, the command's time */
} sb_devent_t;

typedef struct sb_devents_s {
    sb_devent_t items[SB_MAX_EVENTS_PER_COMMAND];
    int n;
} sb_devents_t;

/* Adds an event, taking ownership of data (steals the reference).  Returns 0, or SB_ENOMEM when
 * the list is full (data is released). */
int sb_devents_add(sb_devents_t *list, const char *type, json_t *data);
/* Releases every payload and empties the list. */
void sb_devents_clear(sb_devents_t *list);

/* Why a command was refused.  status is the HTTP status the API answers with: 400 bad input (field
 * names it), 403 not allowed, 404 unknown id, 409 conflicts with the current state (illegal
 * transition, duplicate). */
typedef struct sb_derror_s {
    int status;
    char code[40];     /* snake_case, e.g. "invalid_transition", "phone_taken" */
    char message[200]; /* one short lowercase sentence */
    char field[48];    /* the offending field, or "" */
} sb_derror_t;

/* Fills err and returns SB_EREJECTED (for `return sb_reject(err, 409, ...)`). */
int sb_reject(sb_derror_t *err, int status, const char *code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* What a decision may read besides the state and the command. */
typedef struct sb_decide_ctx_s {
    int64_t now_us;        /* the command's time (the runtime reads the clock, not the decider) */
    const char *stream;    /* "contact-<uuid>" */
    const char *id;        /* the uuid part */
    const char *user_id;   /* the acting user's id, or NULL for the system (webhooks, reactors) */
    const json_t *context; /* facts from other actors the caller gathered, e.g. for a contact the
                              workspace's {"members": [...], "stages": [...], "default_country"};
                              NULL when none */
} sb_decide_ctx_t;

/* An actor kind: one per stream category. */
typedef struct sb_kind_s {
    const char *category; /* "workspace", "contact", "call", "user", ... */
    /* A new, empty state (the state of a stream with no events).  Caller owns it. */
    json_t *(*initial)(void);
    /* Decides on cmd ({"type": "CreateContact", ...}).  Returns 0 with the events to append in out
     * (none when the command changes nothing: an idempotent repeat), or SB_EREJECTED with err
     * filled.  Never modifies state. */
    int (*decide)(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx, sb_devents_t *out,
                  sb_derror_t *err);
    /* Applies one stored event to state.  Total: events are facts, so evolve never fails; unknown
     * types are ignored. */
    void (*evolve)(json_t *state, const sb_devent_t *ev);
} sb_kind_t;

/* The kind for a category ("contact"), or NULL. */
const sb_kind_t *sb_kind_find(const char *category);

#endif
