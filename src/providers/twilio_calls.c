/* Call control's TwiML and names: see twilio_calls.h. */
#include "providers/twilio_calls.h"

#include <stdio.h>
#include <string.h>

#include "providers/twiml.h"

bool sb_twilio_calls_identity(const char *workspace_id, const char *user_id,
                              char out[SB_CALLS_IDENTITY_LEN + 1])
{
    return sb_voice_identity(workspace_id, user_id, out) == 0;
}

bool sb_twilio_calls_client(const char *workspace_id, const char *user_id, char *out, size_t cap)
{
    char id[SB_CALLS_IDENTITY_LEN + 1];
    if (cap < 7 + sizeof id || !sb_twilio_calls_identity(workspace_id, user_id, id))
        return false;
    snprintf(out, cap, "client:%s", id);
    return true;
}

bool sb_twilio_calls_member(const char *identity, const char *workspace_id, char out[SB_UUID_STRLEN + 1])
{
    char ws[SB_UUID_STRLEN + 1], want[SB_CALLS_IDENTITY_LEN + 1];
    /* The identity's workspace must be this one: compare in the identity's own (canonical) form. */
    if (!sb_voice_identity_parse(identity, ws, out) || sb_voice_identity(workspace_id, out, want) != 0)
        return false;
    if (strncmp(identity, "client:", 7) == 0)
        identity += 7;
    return strcmp(identity, want) == 0;
}

void sb_twilio_calls_park_room(const char *call_id, char out[SB_CALLS_NAME_MAX])
{
    snprintf(out, SB_CALLS_NAME_MAX, "park-%s", call_id);
}

void sb_twilio_calls_room(const char *call_id, char out[SB_CALLS_NAME_MAX])
{
    snprintf(out, SB_CALLS_NAME_MAX, "call-%s", call_id);
}

void sb_twilio_calls_queue(const char *workspace_id, char out[SB_CALLS_NAME_MAX])
{
    char q[SB_VOICE_QUEUE_LEN + 1];
    snprintf(out, SB_CALLS_NAME_MAX, "%s", sb_voice_queue(workspace_id, q) == 0 ? q : "");
}

static char *finish(sb_twiml_t *t)
{
    char *xml = NULL;
    size_t len = 0;
    return sb_twiml_finish(t, &xml, &len) == 0 ? xml : NULL;
}

static bool present(const char *s)
{
    return s != NULL && s[0] != '\0';
}

char *sb_twiml_calls_hold(const char *room)
{
    if (!present(room))
        return NULL;
    sb_twiml_t t;
    sb_twiml_init(&t);
    sb_twiml_open(&t, "Dial", NULL);
    sb_twiml_leaf(&t, "Conference", room, "startConferenceOnEnter", "false", "endConferenceOnExit", "true",
                  "beep", "false", NULL);
    sb_twiml_close(&t, "Dial");
    return finish(&t);
}

char *sb_twiml_calls_join(const char *room, bool end_on_exit)
{
    if (!present(room))
        return NULL;
    sb_twiml_t t;
    sb_twiml_init(&t);
    sb_twiml_open(&t, "Dial", NULL);
    sb_twiml_leaf(&t, "Conference", room, "startConferenceOnEnter", "true", "endConferenceOnExit",
                  end_on_exit ? "true" : "false", "beep", "false", NULL);
    sb_twiml_close(&t, "Dial");
    return finish(&t);
}

char *sb_twiml_calls_dial(const char *endpoint, const char *caller_id, const char *action)
{
    if (!present(endpoint))
        return NULL;
    bool client = strncmp(endpoint, "client:", 7) == 0;
    if (client ? endpoint[7] == '\0' : endpoint[0] != '+')
        return NULL;
    char timeout[16];
    snprintf(timeout, sizeof timeout, "%d", SB_CALLS_RING_SECONDS);
    sb_twiml_t t;
    sb_twiml_init(&t);
    sb_twiml_open(&t, "Dial", "timeout", timeout, "action", action, "method", action ? "POST" : NULL,
                  "callerId", client ? NULL : caller_id, NULL);
    if (client)
        sb_twiml_leaf(&t, "Client", endpoint + 7, NULL);
    else
        sb_twiml_leaf(&t, "Number", endpoint, NULL);
    sb_twiml_close(&t, "Dial");
    return finish(&t);
}

char *sb_twiml_calls_enqueue(const char *queue, const char *wait_url)
{
    if (!present(queue))
        return NULL;
    sb_twiml_t t;
    sb_twiml_init(&t);
    sb_twiml_leaf(&t, "Enqueue", queue, "waitUrl", wait_url, "waitUrlMethod", wait_url ? "POST" : NULL, NULL);
    return finish(&t);
}

char *sb_twiml_calls_gone(const char *text)
{
    sb_twiml_t t;
    sb_twiml_init(&t);
    if (present(text))
        sb_twiml_leaf(&t, "Say", text, NULL);
    sb_twiml_leaf(&t, "Hangup", NULL, NULL);
    return finish(&t);
}

char *sb_twiml_calls_hangup(void)
{
    return sb_twiml_calls_gone(NULL);
}
