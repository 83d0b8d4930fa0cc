/* Reading Twilio's voice requests and writing our TwiML answers.  See webhooks_voice.h. */
#include "http/webhooks_voice.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/error.h"
#include "providers/twilio.h"
#include "providers/twilio_voice.h"
#include "providers/twiml.h"

/* A fixed namespace for call ids named by their CallSid (random, chosen once). */
static const sb_uuid_t call_ns = {
    {0x9c, 0x31, 0x7a, 0x05, 0xe2, 0x58, 0x4b, 0x6f, 0xa1, 0x0d, 0x84, 0x3e, 0x27, 0xc9, 0x5b, 0x70}};

static const char *const call_statuses[] = {"queued", "initiated", "ringing", "in-progress", "completed",
                                            "busy",   "no-answer", "failed",  "canceled",    NULL};
static const char *const dial_statuses[] = {"completed", "answered", "busy", "no-answer",
                                            "failed",    "canceled", NULL};

static int bad(const char **field, const char *name)
{
    *field = name;
    return SB_EINVAL;
}

static bool one_of(const char *s, const char *const *set)
{
    for (; *set != NULL; set++)
        if (strcmp(s, *set) == 0)
            return true;
    return false;
}

static bool is_url(const char *s)
{
    size_t n = strlen(s);
    if (n > 2048 || !(strncmp(s, "https://", 8) == 0 || strncmp(s, "http://", 7) == 0) || n <= 8)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f)
            return false;
    return true;
}

int sb_wh_parse_call(const sb_form_t *f, sb_wh_call_t *out, const char **field)
{
    memset(out, 0, sizeof(*out));
    out->recording_duration = -1;
    *field = NULL;
    out->call_sid = sb_form_get(f, "CallSid");
    if (out->call_sid == NULL || !sb_twilio_sid_is_valid(out->call_sid, "CA"))
        return bad(field, "CallSid");
    out->account_sid = sb_form_get(f, "AccountSid");
    if (out->account_sid == NULL || !sb_twilio_sid_is_valid(out->account_sid, "AC"))
        return bad(field, "AccountSid");
    out->parent_call_sid = sb_form_get(f, "ParentCallSid");
    if (out->parent_call_sid != NULL && out->parent_call_sid[0] == '\0')
        out->parent_call_sid = NULL;
    if (out->parent_call_sid != NULL && !sb_twilio_sid_is_valid(out->parent_call_sid, "CA"))
        return bad(field, "ParentCallSid");
    out->from = sb_form_get(f, "From");
    out->to = sb_form_get(f, "To");
    if (out->from == NULL)
        out->from = "";
    if (out->to == NULL)
        out->to = "";
    if (strlen(out->from) > SB_WH_VOICE_ADDR_MAX)
        return bad(field, "From");
    if (strlen(out->to) > SB_WH_VOICE_ADDR_MAX)
        return bad(field, "To");
    out->call_status = sb_form_get(f, "CallStatus");
    if (out->call_status != NULL && !one_of(out->call_status, call_statuses))
        return bad(field, "CallStatus");
    out->dial_status = sb_form_get(f, "DialCallStatus");
    if (out->dial_status != NULL && !one_of(out->dial_status, dial_statuses))
        return bad(field, "DialCallStatus");
    out->recording_url = sb_form_get(f, "RecordingUrl");
    if (out->recording_url != NULL && !is_url(out->recording_url))
        return bad(field, "RecordingUrl");
    out->recording_sid = sb_form_get(f, "RecordingSid");
    if (out->recording_sid != NULL && !sb_twilio_sid_is_valid(out->recording_sid, "RE"))
        return bad(field, "RecordingSid");
    out->recording_status = sb_form_get(f, "RecordingStatus");
    const char *d = sb_form_get(f, "RecordingDuration");
    if (d != NULL) {
        size_t n = strlen(d);
        if (n == 0 || n > 10 || strspn(d, "0123456789") != n)
            return bad(field, "RecordingDuration");
        out->recording_duration = strtol(d, NULL, 10);
    }
    return 0;
}

/* Copies a uuid value (lower-cased) when it is one. */
static void take_uuid(const char *v, size_t n, char out[SB_UUID_STRLEN + 1])
{
    sb_uuid_t u;
    if (sb_uuid_parse(v, n, &u) == 0)
        sb_uuid_format(&u, out);
}

void sb_wh_parse_voice_ids(const char *query, size_t len, sb_wh_voice_ids_t *out)
{
    memset(out, 0, sizeof(*out));
    const char *p = query, *end = query + len;
    while (query != NULL && p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp != NULL ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        if (eq != NULL) {
            size_t kn = (size_t)(eq - p), vn = (size_t)(stop - eq - 1);
            const char *v = eq + 1;
            if (kn == 1 && p[0] == 'w')
                take_uuid(v, vn, out->workspace);
            else if (kn == 4 && memcmp(p, "call", 4) == 0)
                take_uuid(v, vn, out->call);
            else if (kn == 1 && p[0] == 'a')
                take_uuid(v, vn, out->agent);
            else if (kn == 1 && p[0] == 'k')
                out->outgoing = vn == 3 && memcmp(v, "out", 3) == 0;
        }
        p = stop + 1;
    }
}

void sb_wh_call_id(const char *call_sid, char out[SB_UUID_STRLEN + 1])
{
    sb_uuid_t u;
    sb_uuid_from_name(&u, &call_ns, call_sid, strlen(call_sid));
    sb_uuid_format(&u, out);
}

/* ---- TwiML --------------------------------------------------------------------------------------- */

/* base + "/webhooks/twilio/voice/" + what + "?w=<ws>[&call=<call>][&a=<agent>][&k=out]".  The ids
 * are uuids and the base a configured URL: nothing to escape (the TwiML writer escapes the '&'). */
static char *callback_url(const sb_wh_voice_ctx_t *v, const char *what, const char *agent, bool out)
{
    sb_buf_t b = {0};
    sb_buf_printf(&b, "%s/webhooks/twilio/voice/%s?w=%s", v->base, what, v->workspace_id);
    if (v->call_id != NULL)
        sb_buf_printf(&b, "&call=%s", v->call_id);
    if (agent != NULL)
        sb_buf_printf(&b, "&a=%s", agent);
    if (out)
        sb_buf_puts(&b, "&k=out");
    return sb_buf_steal(&b);
}

static bool ctx_ok(const sb_wh_voice_ctx_t *v, bool need_call)
{
    return v != NULL && v->base != NULL && v->workspace_id != NULL && (!need_call || v->call_id != NULL);
}

/* The <Dial> both routes use: a timeout, the action that decides what follows, and a recording of
 * the conversation (both parties, from the answer) reported to the recording callback. */
static void open_dial(sb_twiml_t *t, const char *timeout, const char *caller_id, const char *action,
                      const char *recording)
{
    sb_twiml_open(t, "Dial", "timeout", timeout, "callerId", caller_id, "action", action, "method", "POST",
                  "record", "record-from-answer-dual", "recordingStatusCallback", recording,
                  "recordingStatusCallbackEvent", "completed", NULL);
}

int sb_wh_twiml_ring_agent(const sb_wh_voice_ctx_t *v, const char *agent_id, char **xml, size_t *len)
{
    char identity[SB_VOICE_IDENTITY_LEN + 1], timeout[16];
    if (!ctx_ok(v, true) || sb_voice_identity(v->workspace_id, agent_id, identity) != 0)
        return SB_EINVAL;
    snprintf(timeout, sizeof(timeout), "%d", SB_WH_VOICE_DIAL_TIMEOUT);
    char *action = callback_url(v, "dial", agent_id, false);
    char *status = callback_url(v, "status", agent_id, false);
    char *rec = callback_url(v, "recording", NULL, false);
    sb_twiml_t t;
    sb_twiml_init(&t);
    open_dial(&t, timeout, NULL, action, rec);
    sb_twiml_leaf(&t, "Client", identity, "statusCallback", status, "statusCallbackMethod", "POST",
                  "statusCallbackEvent", "ringing answered", NULL);
    sb_twiml_close(&t, "Dial");
    free(action);
    free(status);
    free(rec);
    return sb_twiml_finish(&t, xml, len);
}

int sb_wh_twiml_enqueue(const sb_wh_voice_ctx_t *v, char **xml, size_t *len)
{
    char queue[SB_VOICE_QUEUE_LEN + 1];
    if (!ctx_ok(v, false) || sb_voice_queue(v->workspace_id, queue) != 0)
        return SB_EINVAL;
    sb_wh_voice_ctx_t hold = {v->base, v->workspace_id, NULL};
    char *wait = callback_url(&hold, "hold", NULL, false);
    sb_twiml_t t;
    sb_twiml_init(&t);
    sb_twiml_leaf(&t, "Enqueue", queue, "waitUrl", wait, "waitUrlMethod", "POST", NULL);
    free(wait);
    return sb_twiml_finish(&t, xml, len);
}

int sb_wh_twiml_dial_number(const sb_wh_voice_ctx_t *v, const char *agent_id, const char *caller_id,
                            const char *number, char **xml, size_t *len)
{
    char timeout[16];
    if (!ctx_ok(v, true) || agent_id == NULL || caller_id == NULL || number == NULL)
        return SB_EINVAL;
    snprintf(timeout, sizeof(timeout), "%d", 30);
    char *action = callback_url(v, "dial", agent_id, true);
    char *status = callback_url(v, "status", agent_id, true);
    char *rec = callback_url(v, "recording", NULL, false);
    sb_twiml_t t;
    sb_twiml_init(&t);
    open_dial(&t, timeout, caller_id, action, rec);
    sb_twiml_leaf(&t, "Number", number, "statusCallback", status, "statusCallbackMethod", "POST",
                  "statusCallbackEvent", "ringing answered", NULL);
    sb_twiml_close(&t, "Dial");
    free(action);
    free(status);
    free(rec);
    return sb_twiml_finish(&t, xml, len);
}

int sb_wh_twiml_take_queue(const sb_wh_voice_ctx_t *v, const char *agent_id, char **xml, size_t *len)
{
    char queue[SB_VOICE_QUEUE_LEN + 1];
    sb_uuid_t u;
    if (!ctx_ok(v, false) || agent_id == NULL || sb_uuid_parse(agent_id, strlen(agent_id), &u) != 0 ||
        sb_voice_queue(v->workspace_id, queue) != 0)
        return SB_EINVAL;
    sb_wh_voice_ctx_t noc = {v->base, v->workspace_id, NULL};
    char *url = callback_url(&noc, "dequeued", agent_id, false);
    sb_twiml_t t;
    sb_twiml_init(&t);
    sb_twiml_open(&t, "Dial", NULL);
    sb_twiml_leaf(&t, "Queue", queue, "url", url, "method", "POST", NULL);
    sb_twiml_close(&t, "Dial");
    free(url);
    return sb_twiml_finish(&t, xml, len);
}

int sb_wh_twiml_hold(char **xml, size_t *len)
{
    sb_twiml_t t;
    sb_twiml_init(&t);
    sb_twiml_leaf(&t, "Say", "Thanks for calling. Please hold: the next available person will answer.", NULL);
    sb_twiml_leaf(&t, "Play", SB_WH_HOLD_MUSIC, "loop", "0", NULL);
    return sb_twiml_finish(&t, xml, len);
}

int sb_wh_twiml_hangup(const char *message, char **xml, size_t *len)
{
    sb_twiml_t t;
    sb_twiml_init(&t);
    if (message != NULL)
        sb_twiml_leaf(&t, "Say", message, NULL);
    sb_twiml_leaf(&t, "Hangup", NULL, NULL);
    return sb_twiml_finish(&t, xml, len);
}
