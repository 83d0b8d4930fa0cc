/* libFuzzer driver for the deciders (src/actors): commands carry whatever API bodies and webhook
 * forms held, so decide must answer any JSON with events or a clean rejection.
 *
 * Input: byte 0 picks the kind and a history to fold first, byte 1 the acting user, byte 2 a
 * command type (used when the JSON has none), the rest is a JSON command.  Checked: decide returns 0
 * or SB_EREJECTED; a rejection has an HTTP-ish status and a code and leaves no events; decide never
 * changes the state; decided events are objects with catalogue-style names, and folding the history
 * plus the new events from scratch gives the state evolved live. */
#include "actors/decider.h"
#include "actors/fold.h"
#include "actors/kinds.h"
#include "core/error.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define WS "11111111-1111-7111-8111-111111111111"
#define OWNER "00000000-0000-7000-8000-000000000001"
#define AGENT "00000000-0000-7000-8000-000000000003"

static const char *const users[] = {NULL, OWNER, AGENT, "00000000-0000-7000-8000-000000000009"};

static const char *const ctx_json =
    "{\"workspace_id\": \"" WS
    "\", \"default_country\": \"US\", \"stages\": [\"Lead\", \"Won\"], \"members\": ["
    "{\"user_id\": \"" OWNER
    "\", \"role\": \"owner\", \"name\": \"Olivia Owner\", \"email\": \"olivia@example.com\"},"
    "{\"user_id\": \"" AGENT "\", \"role\": \"agent\", \"name\": \"Ana\", \"email\": \"ana@example.com\"}],"
    "\"parked_slots\": [1]}";

static const struct {
    const sb_kind_t *kind;
    const char *id;
    const char *history; /* [["Type", {...}], ...] */
    const char *const *types;
} setups[] = {
    {&sb_kind_workspace, WS, "[]", (const char *const[]){"CreateWorkspace", NULL}},
    {&sb_kind_workspace, WS,
     "[[\"WorkspaceCreated\", {\"workspace_id\": \"" WS "\", \"name\": \"A\", \"owner_id\": \"" OWNER
     "\", \"default_country\": \"US\"}], [\"MemberAdded\", {\"user_id\": \"" OWNER
     "\", \"role\": \"owner\", \"email\": \"o@example.com\"}], [\"PhoneNumberAdded\", {\"number\": "
     "\"+14155550100\", \"sid\": \"PN0123456789abcdef0123456789abcdef\"}], [\"PipelineStageAdded\", "
     "{\"name\": "
     "\"Lead\", \"position\": 0}]]",
     (const char *const[]){"RenameWorkspace", "AddMember", "RemoveMember", "ChangeMemberRole",
                           "ConfigureTwilio", "ClearTwilio", "AddPhoneNumber", "RemovePhoneNumber",
                           "AssignPhoneNumber", "AddPipelineStage", "RemovePipelineStage", "SetAutoReplyRule",
                           "RemoveAutoReplyRule", "ChangeDefaultCountry", "SetEmailSender", "SetParkingLimit",
                           NULL}},
    {&sb_kind_user, OWNER,
     "[[\"UserRegistered\", {\"user_id\": \"" OWNER "\", \"email\": \"o@example.com\", \"name\": \"O\", "
     "\"credential_ref\": \"sealed:1\"}]]",
     (const char *const[]){"RegisterUser", "ChangePresence", "UpdateProfile", "ChangeCredential", NULL}},
    {&sb_kind_contact, "22222222-2222-7222-8222-222222222222",
     "[[\"ContactCreated\", {\"workspace_id\": \"" WS "\", \"name\": \"B\", \"phones\": [\"+14155550100\"], "
     "\"emails\": [\"b@example.com\"], \"tags\": [\"vip\"]}], [\"MessageQueued\", {\"message_id\": "
     "\"44444444-4444-7444-8444-000000000001\", \"channel\": \"sms\"}], [\"MessageScheduled\", "
     "{\"message_id\": "
     "\"44444444-4444-7444-8444-000000000002\", \"channel\": \"sms\", \"body\": \"x\"}], "
     "[\"MessageReceived\", "
     "{\"message_id\": \"44444444-4444-7444-8444-000000000003\", \"channel\": \"sms\", \"provider_id\": "
     "\"SM1\"}], "
     "[\"NoteAdded\", {\"note_id\": \"55555555-5555-7555-8555-000000000001\", \"author_id\": \"" AGENT
     "\"}]]",
     (const char *const[]){"CreateContact", "UpdateContact", "ChangeStage", "AssignContact", "TagContact",
                           "UntagContact", "DeleteContact", "OptOutContact", "OptInContact", "AddNote",
                           "EditNote", "DeleteNote", "SendMessage", "ReceiveMessage",
                           "DispatchScheduledMessage", "CancelScheduledMessage", "RecordMessageStatus",
                           NULL}},
    {&sb_kind_call, "33333333-3333-7333-8333-333333333333",
     "[[\"CallInitiated\", {\"workspace_id\": \"" WS
     "\", \"direction\": \"inbound\", \"from\": \"+14155550100\", "
     "\"to\": \"+14155550199\", \"call_sid\": null}], [\"CallAnswered\", {\"agent_id\": \"" AGENT
     "\", \"answered_at\": \"2026-03-01T12:00:00Z\"}]]",
     (const char *const[]){"InitiateCall", "RecordCallStatus", "AnswerCall", "ParkCall", "UnparkCall",
                           "TransferCall", "HangupCall", "RecordCallRecording", NULL}},
    {&sb_kind_claim, "", "[]", (const char *const[]){"Claim", "Release", NULL}},
};

static char *dump(const json_t *j)
{
    return json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY);
}

static int load(json_t *history, sb_devent_t *evs, int max)
{
    int n = 0;
    size_t i;
    json_t *pair;
    json_array_foreach(history, i, pair)
    {
        if (n == max)
            break;
        evs[n].type = json_string_value(json_array_get(pair, 0));
        evs[n].data = json_array_get(pair, 1);
        evs[n].version = n + 1;
        evs[n].recorded_at_us = 0;
        n++;
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    size_t nsetups = sizeof setups / sizeof setups[0];
    const __typeof__(setups[0]) *s = &setups[data[0] % nsetups];
    const char *user = users[data[1] % 4];
    json_t *cmd = json_loadb((const char *)data + 3, size - 3, JSON_DECODE_ANY, NULL);
    if (cmd == NULL)
        return 0;
    if (json_is_object(cmd) && json_object_get(cmd, "type") == NULL) {
        size_t ntypes = 0;
        while (s->types[ntypes])
            ntypes++;
        json_object_set_new(cmd, "type", json_string(s->types[data[2] % ntypes]));
    }
    char claim_id[SB_UUID_STRLEN + 1] = "";
    const char *id = s->id;
    if (s->kind == &sb_kind_claim) {
        /* A claim stream is its key's: derive the id from the command's key when it has one. */
        const char *key = json_string_value(json_object_get(cmd, "key"));
        sb_uuid_t u;
        sb_claim_id(key ? key : "", &u);
        sb_uuid_format(&u, claim_id);
        id = claim_id;
    }

    json_t *history = json_loads(s->history, 0, NULL);
    json_t *ctxj = json_loads(ctx_json, 0, NULL);
    if (history == NULL || ctxj == NULL)
        abort();
    sb_devent_t evs[8 + SB_MAX_EVENTS_PER_COMMAND];
    int n = load(history, evs, 8);
    json_t *state = sb_fold(s->kind, evs, n);
    char *before = dump(state);
    sb_decide_ctx_t ctx = {.now_us = 1772366400000000, .id = id, .user_id = user, .context = ctxj};
    sb_devents_t out = {.n = 0};
    sb_derror_t err;
    memset(&err, 0, sizeof err);
    int rc = s->kind->decide(state, cmd, &ctx, &out, &err);
    char *after = dump(state);
    if (strcmp(before, after) != 0)
        abort(); /* decide changed the state */
    if (rc == SB_EREJECTED) {
        if (out.n != 0 || err.code[0] == '\0' ||
            (err.status != 400 && err.status != 403 && err.status != 404 && err.status != 409))
            abort();
    } else if (rc != 0) {
        abort();
    } else {
        for (int i = 0; i < out.n; i++) {
            const sb_devent_t *e = &out.items[i];
            if (!json_is_object(e->data) || e->type == NULL || !isupper((unsigned char)e->type[0]))
                abort();
            s->kind->evolve(state, e);
            evs[n++] = *e;
        }
        json_t *folded = sb_fold(s->kind, evs, n);
        char *a = dump(state), *b = dump(folded);
        if (strcmp(a, b) != 0)
            abort(); /* live and replayed states disagree */
        free(a);
        free(b);
        json_decref(folded);
    }
    sb_devents_clear(&out);
    free(before);
    free(after);
    json_decref(state);
    json_decref(history);
    json_decref(ctxj);
    json_decref(cmd);
    return 0;
}
