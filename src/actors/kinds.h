/* The actor kinds (one per stream category) and the few helpers the runtime and the HTTP layer need
 * to feed them.  docs/events.md lists every command, the events it decides and their payloads.
 *
 * Every kind's state is a JSON object; the workspace-scoped kinds (workspace, contact, call) keep
 * the owning workspace's id in state["workspace_id"] once created, which is where the runtime finds
 * the workspace id to store with each event.  decide() returns 0, SB_EREJECTED (err filled), or
 * SB_ENOMEM; on any failure it leaves `out` as it found it. */
#ifndef SB_ACTORS_KINDS_H
#define SB_ACTORS_KINDS_H

#include "actors/decider.h"
#include "core/uuid.h"

#include <stddef.h>

extern const sb_kind_t sb_kind_workspace; /* category "workspace" */
extern const sb_kind_t sb_kind_user;      /* category "user" */
extern const sb_kind_t sb_kind_contact;   /* category "contact" */
extern const sb_kind_t sb_kind_call;      /* category "call" */
extern const sb_kind_t sb_kind_claim;     /* category "claim" */
extern const sb_kind_t sb_kind_presence;  /* category "presence": members' presence, per workspace */

/* The context a contact or call decision needs, built from a workspace's state:
 * {"workspace_id", "default_country", "members": [{"user_id", "role", "name", "email"}],
 *  "stages": ["Lead", ...], "parking_limit_seconds"}.  Callers may add "parked_slots": [1, 3]
 * (slots in use across the workspace) before a ParkCall.  Caller owns the result; NULL on
 * allocation failure. */
json_t *sb_workspace_context(const json_t *workspace_state);

/* Claims: the stream id of a uniqueness claim is a name-based uuid of the claimed key ("email:<addr>",
 * "phone:<workspace id>:<e164>", "number:<e164>") under a fixed namespace, so every process derives
 * the same stream for the same key. */
extern const sb_uuid_t sb_claim_namespace;
void sb_claim_id(const char *key, sb_uuid_t *out);
/* "claim-<uuid>" for key into out (at least SB_CLAIM_STREAM_LEN bytes). */
#define SB_CLAIM_STREAM_LEN (6 + SB_UUID_STRLEN + 1)
void sb_claim_stream(const char *key, char out[SB_CLAIM_STREAM_LEN]);

#endif
