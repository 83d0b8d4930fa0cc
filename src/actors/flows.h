/* Flows: the operations that span several actors, composed from sb_actor_ask / sb_actor_get.
 *
 * Uniqueness needs them: a phone number belongs to at most one contact per workspace, an e-mail
 * address to at most one user.  Each rule is a claim stream per key (the claim kind, kinds.h);
 * a flow claims the keys for the contact or user, then writes that actor, then releases what it no
 * longer holds.  docs/events.md ("Claim" and "Flows") describes the protocol and why concurrent
 * flows, in one process or several, and a crash between any two steps, never leave a key with two
 * owners.
 *
 * Calling: on a worker loop (sb_loop_current() != NULL), like sb_actor_ask.  A flow returns 0 and
 * later calls cb exactly once, on the calling loop and never inside the call; or it returns a
 * negative code at once and never calls cb: SB_EINVAL (no current loop, cb NULL, a malformed
 * workspace / contact / user id, fields not an object, opts->user_id not a uuid, a metadata string
 * longer than SB_ASK_MAX_STR) or SB_ENOMEM.  Bad input inside fields is not refused here: it comes
 * through cb as the decider's 400.  Every argument is copied or read during the call: the caller
 * keeps what it passed.  A flow is several commits, not one: on failure a step already committed
 * stays (the claims it took are released where that is safe, and otherwise expire; see
 * docs/events.md).  Besides its asks, a flow may wait on a timer of the calling loop (at most the
 * claim timing's steal_after, below) when a crashed flow's claim is about to expire.
 *
 * Outcomes (sb_flow_result_t.status), to map to HTTP:
 *   0              done; stream, version, state describe the contact or user.
 *   SB_EREJECTED   err says why: the deciders' rejections (400 invalid_phone, 404
 *                  contact_not_found, ...) and the flows' own 409 phone_taken / email_taken, where
 *                  `holder` names the contact or user that has the number or address.
 *   SB_ECONFLICT   with precondition_failed: the stream was not at opts->expected_version (412);
 *                  without: it kept changing under the flow (retry).
 *   SB_ETIMEOUT    the flow could not finish its claims in time (the loops are overloaded, or a
 *                  crashed flow's claim is about to expire); nothing was created: retry (503).
 *   others         as sb_ask_reply_t (SB_EOVERLOAD, SB_EUNKNOWN, SB_ESHUTDOWN, storage errors). */
#ifndef SB_ACTORS_FLOWS_H
#define SB_ACTORS_FLOWS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "actors/decider.h"
#include "actors/runtime.h"
#include "core/loop.h"

typedef struct sb_flow_result_s {
    int status;
    const sb_derror_t *err; /* with SB_EREJECTED, else NULL */
    const char *error;      /* detail of a storage error, or NULL */
    const char *stream;     /* "contact-<uuid>" / "user-<uuid>" the result is about, or NULL */
    const char *id;         /* its uuid, or NULL */
    int64_t version;        /* its version (the ETag) */
    json_t *state;          /* its state (read-only; json_incref to keep it past the callback), or NULL */
    bool created;           /* this call created it (find-or-create: false when it was found) */
    bool precondition_failed;
    const char *holder; /* with 409 phone_taken / email_taken: "contact-<uuid>" / "user-<uuid>" */
} sb_flow_result_t;

/* Fires once, on the loop that started the flow.  res and everything it points to are valid
 * during the call only. */
typedef void (*sb_flow_cb)(const sb_flow_result_t *res, void *data);

typedef struct sb_flow_opts_s {
    const char *user_id; /* the acting user's uuid, or NULL for the system (webhooks, reactors) */
    /* metadata recorded with every event the flow stores; NULL = none */
    const char *correlation_id;
    const char *causation_id;
    const char *request_id;
    const char *source; /* "api", "webhook", ... */
    /* If-Match on the contact's or user's stream (update, delete, e-mail change): expected_version
     * or, for a list of entity tags, any of more_versions too (as sb_ask_opts_t) */
    bool check_version;
    int64_t expected_version;
    int n_more_versions;
    int64_t more_versions[SB_ASK_MAX_VERSIONS - 1];
    /* create / register: the new contact's or user's uuid; NULL = a new uuid v7.  The result names
     * the id actually used, which differs when the flow completed a crashed flow's contact. */
    const char *id;
} sb_flow_opts_t;

typedef enum {
    SB_FLOW_CREATE,         /* a number another contact has: 409 phone_taken */
    SB_FLOW_FIND_OR_CREATE, /* ... answers that contact instead (created = false) */
} sb_flow_mode_t;

/* Creates a contact in workspace_id from fields, the API's body ({name, phone, phones, email,
 * emails, tags, stage, assignee_id}; "type" and "workspace_id" are set by the flow).  Reads the
 * workspace (404 workspace_not_found; its default country reads national numbers; the acting
 * user must be a member), validates like the contact decider, claims every phone, then stores
 * ContactCreated.  Find-or-create is for inbound traffic from an unknown number: concurrent calls
 * with one number, from any loops and processes, all answer the same single contact. */
int sb_flow_contact_create(sb_loops_t *g, const char *workspace_id, const json_t *fields, sb_flow_mode_t mode,
                           const sb_flow_opts_t *opts, sb_flow_cb cb, void *data);

/* UpdateContact on contact_id in workspace_id with fields (any of name, phone(s), email(s), tags,
 * stage, assignee_id).  When the phones change: claims the new numbers, updates, then releases the
 * removed ones.  404 contact_not_found also when the contact is in another workspace. */
int sb_flow_contact_update(sb_loops_t *g, const char *workspace_id, const char *contact_id,
                           const json_t *fields, const sb_flow_opts_t *opts, sb_flow_cb cb, void *data);

/* DeleteContact on contact_id in workspace_id, then releases its numbers. */
int sb_flow_contact_delete(sb_loops_t *g, const char *workspace_id, const char *contact_id,
                           const sb_flow_opts_t *opts, sb_flow_cb cb, void *data);

/* Registers a user (RegisterUser: email, name, credential_ref, already sealed): claims the
 * normalised address first; 409 email_taken when another registered user has it. */
int sb_flow_user_register(sb_loops_t *g, const char *email, const char *name, const char *credential_ref,
                          const sb_flow_opts_t *opts, sb_flow_cb cb, void *data);

/* Changes user_id's address: claims the new one, UpdateProfile, releases the old one. */
int sb_flow_user_change_email(sb_loops_t *g, const char *user_id, const char *email,
                              const sb_flow_opts_t *opts, sb_flow_cb cb, void *data);

/* The registered user with this address (status 0 with its state), or 404 user_not_found (400
 * invalid_email).  Reads through the claim, so it sees every process's writes. */
int sb_flow_user_find(sb_loops_t *g, const char *email, const sb_flow_opts_t *opts, sb_flow_cb cb,
                      void *data);

/* The claim timing (docs/events.md): a flow writes its contact or user within create_within_us of
 * the claims it relies on, and a claim whose owner never came to be (or no longer lists the key)
 * may be taken over once it is steal_after_us old.  steal_after - create_within is the margin for
 * clock skew between processes.  Defaults 5 s and 10 s; process-wide, for tests.  SB_EINVAL unless
 * 0 < create_within < steal_after. */
int sb_flow_set_claim_timing(int64_t create_within_us, int64_t steal_after_us);

#endif
