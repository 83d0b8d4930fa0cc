/* Parking slots: a slot is held by one parked call of a workspace at a time (docs/voice.md,
 * "Parking slots").
 *
 * The call decider picks no slot on its own: it cannot see the other calls.  Each slot is a claim
 * (kinds.h), key "slot:<workspace id>:<n>", owned by "call-<id>", and the claim stream serialises
 * concurrent parks of one slot across loops and processes.  A claim is not released by a step of
 * its own: it is in force only while its holder uses it, which the holder's state says (judged
 * afresh from the log whenever someone else wants the slot):
 *
 *   the holder is parked in that slot                        in force
 *   the holder ended, is parked elsewhere, or left the lot   over: the slot is free
 *     (CallUnparked) after the claim was taken
 *   otherwise (the holder's park is being written right now, in force until steal_after (10 s)
 *     or its flow died before writing)                       after the claim, then over
 *
 * so an unpark, a transfer (which follows an unpark) or the end of the call frees the slot at
 * once, and a crash between the claim and the park frees it after steal_after.  Over claims are
 * released on their holder's behalf (conditionally on the claim's version) and claimed again.
 *
 * A park writes within create_within (5 s) of its claim, else it gives up (SB_ETIMEOUT): a claim it
 * relies on can never have been taken over (steal_after - create_within covers the time to commit
 * and clock skew between processes).  A claim the call already holds from an earlier parking is
 * renewed (released and claimed again) first, so its age is this park's. */
#ifndef SB_ACTORS_PARK_H
#define SB_ACTORS_PARK_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "actors/runtime.h"
#include "core/loop.h"

#define SB_PARK_MAX_SLOT 999
#define SB_PARK_KEY_MAX 64

typedef struct sb_park_req_s {
    const char *workspace_id; /* uuid */
    const char *call_id;      /* uuid */
    /* "ParkCall" (an agent parks the call) or "ReturnToLot" (the unparking agent did not answer:
     * the call goes back, to its old slot when that is still free, else to the lowest free one). */
    const char *command;
    int slot;                /* ParkCall: the slot asked for (1..999), 0 = the lowest free */
    const char *unparked_at; /* ReturnToLot: the unparking it undoes */
    /* Slots believed taken (e.g. the calls read model's), tried last; NULL = none.  A hint only. */
    const json_t *hint;
    /* Who asks and the metadata; context is the workspace context (kinds.h).  check_version and
     * expected_version (If-Match) apply to the call's command. */
    sb_ask_opts_t opts;
} sb_park_req_t;

/* Parks req->call_id: reads the call, claims a slot for it, then sends the command with that slot.
 * cb fires once, on the calling loop, never inside this call, with the command's reply (the call's
 * state and version), or with a reply of the flow's own: SB_EREJECTED 409 slot_taken (the slot
 * asked for is held) or 409 no_free_slot, SB_ETIMEOUT (the claim could not be used in time:
 * retry, nothing parked), or an ask's failure.  A call that cannot be parked (not in progress,
 * already parked, another workspace's, a ReturnToLot about an older unparking) gets the command
 * without a slot, so the call decider answers (409, 404 or nothing to do).  Returns 0, or SB_EINVAL
 * (no current loop, ids not uuids, unknown command) / SB_ENOMEM at once, and then cb never fires.
 * Every argument is copied. */
int sb_park_call(sb_loops_t *g, const sb_park_req_t *req, sb_ask_cb cb, void *data);

/* The key of slot n of a workspace: "slot:<workspace id>:<n>". */
void sb_park_slot_key(const char *workspace_id, int slot, char out[SB_PARK_KEY_MAX]);

/* Judges a claim (claim state: owner, claimed_at) on slot held by holder (a call's state, read
 * afresh): true while it is in force (the table above).  Pure. */
bool sb_park_claim_in_force(const json_t *claim, const json_t *holder, int slot, int64_t now_us,
                            int64_t steal_after_us);

/* The claim timing (defaults 5 s and 10 s); process-wide, for tests.  SB_EINVAL unless
 * 0 < create_within < steal_after. */
int sb_park_set_timing(int64_t create_within_us, int64_t steal_after_us);

#endif
