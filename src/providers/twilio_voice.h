/* Names a Twilio Voice set-up shares between our token, our TwiML and Twilio's callbacks: the
 * browser client identity of a workspace member and the workspace's call queue.  Pure functions.
 *
 * Identity: "w<workspace hex>_u<user hex>" (the two uuids without dashes: 67 characters of
 * letters, digits and underscore).  It names the member, not just the user, so:
 *   - a call the browser places through the TwiML app (From "client:<identity>") names the
 *     workspace it is made for, and the agent, without any lookup;
 *   - a person who belongs to two workspaces has one browser client per workspace, and a call of
 *     one workspace never rings the other's dashboard.
 * Queue: "ws_<workspace hex>", the <Enqueue> name the workspace's waiting callers share. */
#ifndef SB_PROVIDERS_TWILIO_VOICE_H
#define SB_PROVIDERS_TWILIO_VOICE_H

#include <stdbool.h>

#include "core/uuid.h"

#define SB_VOICE_IDENTITY_LEN 67 /* "w" + 32 + "_u" + 32 */
#define SB_VOICE_QUEUE_LEN 35    /* "ws_" + 32 */

/* The identity of user_id in workspace_id (both canonical uuid strings, any case).  0, or SB_EINVAL
 * when either is not a uuid. */
int sb_voice_identity(const char *workspace_id, const char *user_id, char out[SB_VOICE_IDENTITY_LEN + 1]);

/* Reads an identity back (with or without a "client:" prefix) into the two uuids, lower case
 * with dashes.  False when s is not an identity of ours. */
bool sb_voice_identity_parse(const char *s, char workspace_id[SB_UUID_STRLEN + 1],
                             char user_id[SB_UUID_STRLEN + 1]);

/* The workspace's queue name.  0, or SB_EINVAL when workspace_id is not a uuid. */
int sb_voice_queue(const char *workspace_id, char out[SB_VOICE_QUEUE_LEN + 1]);

#endif
