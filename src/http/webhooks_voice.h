/* Twilio's voice webhooks (SPEC §7), the pure parts: reading what Twilio posts, reading our ids
 * back from the callback URLs we give it, and the TwiML we answer.  No I/O: the handlers
 * (webhooks_voice.c) check signatures, route and record; everything here is unit-tested.
 *
 * Results borrow from their input (the parsed form): they live as long as it does.  A failure
 * names the offending parameter in *field, for the 400 answer.  docs/voice.md describes the
 * routing these answers implement. */
#ifndef SB_HTTP_WEBHOOKS_VOICE_H
#define SB_HTTP_WEBHOOKS_VOICE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/uuid.h"
#include "providers/form.h"

#define SB_WH_VOICE_ADDR_MAX 160       /* a From / To we accept: a phone number or client:<identity> */
#define SB_WH_VOICE_DIAL_TIMEOUT 20    /* seconds an agent's browser rings before the caller queues */
#define SB_WH_VOICE_TAKE_QUEUE "queue" /* a browser's To that takes the next waiting caller */

/* A voice request: the call webhook, a <Dial> action, a status or recording callback, a waitUrl
 * request.  Only CallSid and AccountSid are always required. */
typedef struct sb_wh_call_s {
    const char *call_sid;         /* CallSid: CA + 32 hex digits */
    const char *account_sid;      /* AccountSid: AC + 32 hex digits */
    const char *parent_call_sid;  /* ParentCallSid (a leg our <Dial> placed), or NULL */
    const char *from;             /* From as sent, "" when absent */
    const char *to;               /* To as sent, "" when absent */
    const char *call_status;      /* CallStatus (queued, initiated, ringing, in-progress, completed,
                                     busy, no-answer, failed, canceled), or NULL */
    const char *dial_status;      /* DialCallStatus (completed, answered, busy, no-answer, failed,
                                     canceled), or NULL */
    const char *recording_url;    /* RecordingUrl (http(s)), or NULL */
    const char *recording_sid;    /* RecordingSid (RE...), or NULL */
    const char *recording_status; /* RecordingStatus, or NULL */
    long recording_duration;      /* RecordingDuration in seconds, -1 when absent */
} sb_wh_call_t;

/* Reads a voice request.  0, or SB_EINVAL with *field naming the parameter: a SID that is not two
 * letters and 32 hex digits, an unknown CallStatus / DialCallStatus, From / To longer than
 * SB_WH_VOICE_ADDR_MAX, a RecordingUrl that is not http(s), a RecordingDuration that is not 0..10
 * digits. */
int sb_wh_parse_call(const sb_form_t *f, sb_wh_call_t *out, const char **field);

/* Our ids in a callback URL's query: w=<workspace>&call=<call>&a=<agent>&k=in|out.  Parameters
 * that are absent or not uuids are left ""; unknown parameters are ignored.  query: the raw query
 * without '?', len bytes. */
typedef struct sb_wh_voice_ids_s {
    char workspace[SB_UUID_STRLEN + 1];
    char call[SB_UUID_STRLEN + 1];
    char agent[SB_UUID_STRLEN + 1];
    bool outgoing; /* k=out: the <Dial> of a call the team placed */
} sb_wh_voice_ids_t;
void sb_wh_parse_voice_ids(const char *query, size_t len, sb_wh_voice_ids_t *out);

/* The call id of a Twilio call: a name-based uuid of its CallSid, so Twilio's retries (and its
 * status callbacks, which carry only the sid) name the same call in any process. */
void sb_wh_call_id(const char *call_sid, char out[SB_UUID_STRLEN + 1]);

/* ---- TwiML answers (each: malloc'd, NUL-terminated XML into *xml, its length in *len; 0, or
 * SB_EINVAL / SB_ENOMEM).  base: SWITCHBOARD_PUBLIC_URL, the root of the callback URLs. ---- */

typedef struct sb_wh_voice_ctx_s {
    const char *base;         /* public URL */
    const char *workspace_id; /* uuid */
    const char *call_id;      /* uuid */
} sb_wh_voice_ctx_t;

/* Rings agent_id's browser: <Dial timeout action=".../voice/dial?..." record...><Client
 * statusCallback=".../voice/status?..." statusCallbackEvent="ringing answered">identity</Client>
 * </Dial>.  When the Dial ends, Twilio asks the action URL what next (queue or hang up). */
int sb_wh_twiml_ring_agent(const sb_wh_voice_ctx_t *v, const char *agent_id, char **xml, size_t *len);

/* Puts the caller in the workspace's queue: <Enqueue waitUrl=".../voice/hold?w=...">ws_...</Enqueue>. */
int sb_wh_twiml_enqueue(const sb_wh_voice_ctx_t *v, char **xml, size_t *len);

/* A browser's call to number, shown to the callee as caller_id (one of the workspace's numbers):
 * <Dial callerId action=".../voice/dial?...&k=out" record...><Number statusCallback...>number
 * </Number></Dial>.  agent_id: the caller. */
int sb_wh_twiml_dial_number(const sb_wh_voice_ctx_t *v, const char *agent_id, const char *caller_id,
                            const char *number, char **xml, size_t *len);

/* An agent's browser takes the next caller waiting in the workspace's queue:
 * <Dial><Queue url=".../voice/dequeued?w=...&a=agent">ws_...</Queue></Dial>.  Twilio asks the url,
 * for the caller's call, just before it connects them: that is when the call is answered. */
int sb_wh_twiml_take_queue(const sb_wh_voice_ctx_t *v, const char *agent_id, char **xml, size_t *len);

/* What a waiting caller hears (the <Enqueue> waitUrl): a short message, then hold music. */
int sb_wh_twiml_hold(char **xml, size_t *len);

/* <Say>message</Say><Hangup/> (message NULL: just <Hangup/>). */
int sb_wh_twiml_hangup(const char *message, char **xml, size_t *len);

/* The hold music the waitUrl plays (Twilio's public hold-music bucket). */
#define SB_WH_HOLD_MUSIC "https://com.twilio.music.classical.s3.amazonaws.com/BusyStrings.mp3"

#endif
