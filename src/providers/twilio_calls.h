/* Call control's side of Twilio (docs/voice_control.md): the TwiML a live call is redirected with,
 * the names Twilio knows our agents and rooms by, and the URLs it is told to fetch.  Pure functions
 * of their arguments: no I/O, so every document is unit-tested as it will go out.
 *
 * The controlled leg of a call is always the customer's (the call's CallSid): inbound it is the
 * caller, outbound it is the leg Calls.json created to the customer.  Agents are reached as Twilio
 * Client identities, on legs that come and go: a child <Dial> of the customer's leg, or a leg of
 * their own (Calls.json) that joins a conference.
 *
 * Every builder returns a malloc'd, NUL-terminated document (the caller frees it), or NULL when an
 * argument is missing or malformed. */
#ifndef SB_PROVIDERS_TWILIO_CALLS_H
#define SB_PROVIDERS_TWILIO_CALLS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/uuid.h"
#include "providers/twilio_voice.h"

/* A member's browser: the Twilio Client identity "w<workspace hex>_u<user hex>" (the two uuids
 * without dashes: letters, digits and the underscore), the one the voice token grants and inbound
 * routing dials: these wrap providers/twilio_voice.h (docs/voice.md), so one person in two
 * workspaces has a client per workspace. */
#define SB_CALLS_IDENTITY_LEN SB_VOICE_IDENTITY_LEN
/* Twilio's name for a conference or queue of ours: a prefix and a uuid. */
#define SB_CALLS_NAME_MAX 48
#define SB_CALLS_RING_SECONDS 20 /* how long an agent or a transfer target rings */

/* The identity of member user_id of workspace_id; false when either is not a uuid. */
bool sb_twilio_calls_identity(const char *workspace_id, const char *user_id,
                              char out[SB_CALLS_IDENTITY_LEN + 1]);
/* "client:<identity>", into out (at least 7 + SB_CALLS_IDENTITY_LEN + 1 bytes). */
bool sb_twilio_calls_client(const char *workspace_id, const char *user_id, char *out, size_t cap);
/* The member (uuid, lower case) an identity (with or without "client:") of workspace_id names;
 * false when it names none, or a member of another workspace. */
bool sb_twilio_calls_member(const char *identity, const char *workspace_id, char out[SB_UUID_STRLEN + 1]);

/* Names: the parking room of a call ("park-<call id>"), the conference of a warm transfer
 * ("call-<call id>"), the workspace's waiting queue ("ws_<workspace hex>", the inbound side's). */
void sb_twilio_calls_park_room(const char *call_id, char out[SB_CALLS_NAME_MAX]);
void sb_twilio_calls_room(const char *call_id, char out[SB_CALLS_NAME_MAX]);
void sb_twilio_calls_queue(const char *workspace_id, char out[SB_CALLS_NAME_MAX]);

/* The customer's leg waits in room: hold music (Twilio's default waitUrl) until an agent comes in;
 * the customer hanging up ends the room.  For parking and the start of a warm transfer. */
char *sb_twiml_calls_hold(const char *room);

/* An agent's leg joins room and starts it (the music stops).  end_on_exit: the room ends when this
 * agent leaves (unparking: the agent's hang-up is the call's end); false for a warm transfer, where
 * the first agent leaves and the others stay. */
char *sb_twiml_calls_join(const char *room, bool end_on_exit);

/* <Dial> to one endpoint ("client:<identity>" or an E.164 number), ringing SB_CALLS_RING_SECONDS;
 * action (may be NULL) is fetched when the dial ends; caller_id (may be NULL) shows on a number. */
char *sb_twiml_calls_dial(const char *endpoint, const char *caller_id, const char *action);

/* The workspace's queue: <Enqueue waitUrl="wait_url" waitUrlMethod="POST">queue</Enqueue> (the
 * inbound side's hold URL, /webhooks/twilio/voice/hold?w=, plays what waiting callers hear; NULL:
 * Twilio's default music). */
char *sb_twiml_calls_enqueue(const char *queue, const char *wait_url);

/* Says text, then hangs up (an agent who answered a call that is gone). */
char *sb_twiml_calls_gone(const char *text);

/* <Hangup/>. */
char *sb_twiml_calls_hangup(void);

#endif
