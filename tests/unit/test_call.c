/* The call decider: given events, when a command, then events or a rejection. */
#include "decider_harness.h"

#define SID "CA0123456789abcdef0123456789abcdef"
#define SID2 "CAffffffffffffffffffffffffffffffff"
#define T1 "2026-03-01T12:02:05.500000Z" /* 125.5 s after T0 */
#define T2 "2026-03-01T12:03:00.000000Z"

#define INIT                                                                                                 \
    "['CallInitiated', {'call_id': '" CALL "', 'workspace_id': '" WS "', 'call_sid': '" SID                  \
    "', 'direction': "                                                                                       \
    "'inbound', 'from': '+14155550100', 'to': '+14155550199', 'contact_id': '" CONTACT                       \
    "', 'agent_id': null, "                                                                                  \
    "'started_at': '" T0 "'}]"
#define INIT_NOSID                                                                                           \
    "['CallInitiated', {'call_id': '" CALL "', 'workspace_id': '" WS "', 'call_sid': null, 'direction': "    \
    "'outbound', 'from': '+14155550199', 'to': '+14155550100', 'agent_id': '" AGENT "', 'started_at': '" T0  \
    "'}]"
#define RINGING ", ['CallRinging', {'at': '" T0 "'}]"
#define ANSWERED ", ['CallAnswered', {'agent_id': '" AGENT "', 'answered_at': '" T0 "'}]"
#define PARKED ", ['CallParked', {'slot': 2, 'parked_by': '" AGENT "', 'parked_at': '" T0 "'}]"
#define UNPARKED ", ['CallUnparked', {'agent_id': '" ADMIN "', 'slot': 2}]"
#define COMPLETED ", ['CallCompleted', {'ended_at': '" T1 "', 'duration_seconds': 125}]"
#define FAILED(r) ", ['CallFailed', {'reason': '" r "', 'ended_at': '" T0 "'}]"
#define C(extra) "[" INIT extra "]"
#define XFER1                                                                                                \
    ", ['CallTransferred', {'mode': 'warm', 'to_agent': '" ADMIN                                             \
    "', 'to_number': null, 'from_agent': '" AGENT "', 'transfer': 1}]"
#define UNPARKED_BY_ADMIN                                                                                    \
    ", ['CallUnparked', {'agent_id': '" ADMIN "', 'slot': 2, 'parked_by': '" AGENT "', 'unparked_at': '" T1  \
    "'}]"
#define XFER1_FAILED ", ['CallTransferFailed', {'mode': 'warm', 'transfer': 1, 'back_to': '" AGENT "'}]"

#define STATUS(s) "{'type': 'RecordCallStatus', 'status': '" s "'}"
#define ERR409 "{'error': [409, 'invalid_transition']}"

static const dcase_t cases[] = {
    /* InitiateCall */
    {"inbound call", NULL,
     "{'type': 'InitiateCall', 'workspace_id': '" WS
     "', 'direction': 'inbound', 'from': '+1 415 555 0100', 'to': "
     "'+14155550199', 'call_sid': '" SID "', 'contact_id': '" CONTACT "'}",
     NULL,
     "[['CallInitiated', {'call_id': '" CALL "', 'workspace_id': '" WS "', 'call_sid': '" SID
     "', 'direction': 'inbound', 'from': '+14155550100', 'to': '+14155550199', 'contact_id': '" CONTACT
     "', 'agent_id': null, 'started_at': '" T0 "'}]]"},
    {"outbound call from an agent's browser", NULL,
     "{'type': 'InitiateCall', 'workspace_id': '" WS
     "', 'direction': 'outbound', 'from': 'client:ana', 'to': "
     "'(415) 555-0100', 'agent_id': '" AGENT "'}",
     AGENT,
     "[['CallInitiated', {'from': 'client:ana', 'to': '+14155550100', 'agent_id': '" AGENT
     "', 'call_sid': null}]]"},
    {"initiate twice", C(""),
     "{'type': 'InitiateCall', 'workspace_id': '" WS
     "', 'direction': 'inbound', 'from': '+14155550100', 'to': "
     "'+14155550199'}",
     NULL, "{'error': [409, 'call_exists']}"},
    {"a bad direction", NULL,
     "{'type': 'InitiateCall', 'workspace_id': '" WS
     "', 'direction': 'sideways', 'from': '+14155550100', 'to': "
     "'+14155550199'}",
     NULL, "{'error': [400, 'invalid']}"},
    {"a bad number", NULL,
     "{'type': 'InitiateCall', 'workspace_id': '" WS
     "', 'direction': 'inbound', 'from': 'hello', 'to': '+14155550199'}",
     NULL, "{'error': [400, 'invalid_phone']}"},
    {"a bad client identity", NULL,
     "{'type': 'InitiateCall', 'workspace_id': '" WS
     "', 'direction': 'outbound', 'from': 'client:a b', 'to': "
     "'+14155550199'}",
     NULL, "{'error': [400, 'invalid']}"},
    {"a bad call sid", NULL,
     "{'type': 'InitiateCall', 'workspace_id': '" WS
     "', 'direction': 'inbound', 'from': '+14155550100', 'to': "
     "'+14155550199', 'call_sid': 'CA12'}",
     NULL, "{'error': [400, 'invalid']}"},
    {"an agent who is not a member", NULL,
     "{'type': 'InitiateCall', 'workspace_id': '" WS
     "', 'direction': 'outbound', 'from': '+14155550199', 'to': "
     "'+14155550100', 'agent_id': '" STRANGER "'}",
     NULL, "{'error': [400, 'unknown_member']}"},
    {"a user who is not a member", NULL,
     "{'type': 'InitiateCall', 'workspace_id': '" WS
     "', 'direction': 'outbound', 'from': '+14155550199', 'to': "
     "'+14155550100'}",
     STRANGER, "{'error': [403, 'not_member']}"},
    {"commands before the call exists", NULL, STATUS("ringing"), NULL, "{'error': [404, 'call_not_found']}"},
    {"another workspace's context: as if unknown", C(RINGING), STATUS("in-progress"), NULL,
     "{'error': [404, 'call_not_found']}",
     "{'workspace_id': '99999999-9999-7999-8999-999999999999', 'members': [], 'stages': []}"},

    {"unknown command", C(""), "{'type': 'Teleport'}", NULL, "{'error': [400, 'unknown_command']}"},
    /* Twilio's status callbacks */
    {"ringing", C(""), STATUS("ringing"), NULL, "[['CallRinging', {'at': '" T0 "'}]]"},
    {"ringing twice: nothing", C(RINGING), STATUS("ringing"), NULL, "[]"},
    {"queued/initiated again: nothing", C(""), STATUS("initiated"), NULL, "[]"},
    {"the first callback tells the sid", "[" INIT_NOSID "]",
     "{'type': 'RecordCallStatus', 'status': 'ringing', 'call_sid': '" SID "'}", NULL,
     "[['CallRinging', {'call_sid': '" SID "'}]]"},
    {"a queued callback with the sid records it", "[" INIT_NOSID "]",
     "{'type': 'RecordCallStatus', 'status': 'queued', 'call_sid': '" SID "'}", NULL,
     "[['CallSidRecorded', {'call_sid': '" SID "'}]]"},
    {"a callback for another call sid", C(""),
     "{'type': 'RecordCallStatus', 'status': 'ringing', 'call_sid': '" SID2 "'}", NULL,
     "{'error': [409, 'call_sid_mismatch']}"},
    {"answered", C(RINGING), "{'type': 'RecordCallStatus', 'status': 'in-progress', 'agent_id': '" AGENT "'}",
     NULL, "[['CallAnswered', {'agent_id': '" AGENT "', 'answered_at': '" T0 "'}]]"},
    {"answered straight from queued (ringing lost)", C(""), STATUS("in-progress"), NULL,
     "[['CallAnswered', {'agent_id': null}]]"},
    {"answered twice: nothing", C(RINGING ANSWERED), STATUS("in-progress"), NULL, "[]"},
    {"ringing after answered: nothing", C(RINGING ANSWERED), STATUS("ringing"), NULL, "[]"},
    {"ringing while parked: nothing", C(ANSWERED PARKED), STATUS("ringing"), NULL, "[]"},
    {"in-progress while parked: nothing", C(ANSWERED PARKED), STATUS("in-progress"), NULL, "[]"},
    {"completed: duration from answer to end", C(RINGING ANSWERED), STATUS("completed"), NULL,
     "[['CallCompleted', {'ended_at': '" T1 "', 'duration_seconds': 125, 'answered_at': '" T0 "'}]]", NULL,
     T1},
    {"completed while parked", C(ANSWERED PARKED), STATUS("completed"), NULL,
     "[['CallCompleted', {'duration_seconds': 125}]]", NULL, T1},
    {"completed without an answer: zero seconds", C(RINGING), STATUS("completed"), NULL,
     "[['CallCompleted', {'duration_seconds': 0, 'answered_at': null}]]", NULL, T1},
    {"completed twice: nothing", C(ANSWERED COMPLETED), STATUS("completed"), NULL, "[]"},
    {"anything after the end: nothing", C(ANSWERED COMPLETED), STATUS("in-progress"), NULL, "[]"},
    {"ringing after the end: nothing", C(ANSWERED COMPLETED), STATUS("ringing"), NULL, "[]"},
    {"busy", C(RINGING), STATUS("busy"), NULL, "[['CallFailed', {'reason': 'busy', 'ended_at': '" T0 "'}]]"},
    {"no answer", C(RINGING), STATUS("no-answer"), NULL, "[['CallFailed', {'reason': 'no-answer'}]]"},
    {"failed from queued", C(""), STATUS("failed"), NULL, "[['CallFailed', {'reason': 'failed'}]]"},
    {"twilio's canceled spelling", C(RINGING), STATUS("canceled"), NULL,
     "[['CallFailed', {'reason': 'cancelled'}]]"},
    {"busy twice: nothing", C(RINGING FAILED("busy")), STATUS("busy"), NULL, "[]"},
    {"answered after no-answer: nothing", C(RINGING FAILED("no-answer")), STATUS("in-progress"), NULL, "[]"},
    {"busy after answered is illegal", C(ANSWERED), STATUS("busy"), NULL, ERR409},
    {"no-answer while parked is illegal", C(ANSWERED PARKED), STATUS("no-answer"), NULL, ERR409},
    {"an unknown status", C(""), STATUS("exploded"), NULL, "{'error': [400, 'invalid']}"},
    /* AnswerCall */
    {"an agent answers", C(RINGING), "{'type': 'AnswerCall'}", AGENT,
     "[['CallAnswered', {'agent_id': '" AGENT "'}]]"},
    {"answered already: nothing", C(ANSWERED), "{'type': 'AnswerCall', 'agent_id': '" ADMIN "'}", NULL, "[]"},
    {"answer after the end: nothing", C(FAILED("busy")), "{'type': 'AnswerCall', 'agent_id': '" ADMIN "'}",
     NULL, "[]"},
    {"answered by a stranger", C(RINGING), "{'type': 'AnswerCall', 'agent_id': '" STRANGER "'}", NULL,
     "{'error': [400, 'unknown_member']}"},
    /* EnqueueCall */
    {"nobody answered: the queue", C(", ['CallInitiated', {'agent_id': '" AGENT "'}]" RINGING),
     "{'type': 'EnqueueCall', 'queue': 'ws_1', 'reason': 'no-answer'}", NULL,
     "[['CallEnqueued', {'queue': 'ws_1', 'reason': 'no-answer', 'from_agent': '" AGENT "', 'at': '" T0
     "'}]]"},
    {"queued twice: nothing", C(", ['CallEnqueued', {'queue': 'ws_1'}]"),
     "{'type': 'EnqueueCall', 'queue': 'ws_1'}", NULL, "[]"},
    {"a late queue after the answer: nothing", C(ANSWERED), "{'type': 'EnqueueCall', 'queue': 'ws_1'}", NULL,
     "[]"},
    {"a late queue after the end: nothing", C(COMPLETED), "{'type': 'EnqueueCall', 'queue': 'ws_1'}", NULL,
     "[]"},
    {"a queue needs a name", C(""), "{'type': 'EnqueueCall'}", NULL, "{'error': [400, 'required']}"},
    {"queued, then rung and answered", C(", ['CallEnqueued', {'queue': 'ws_1'}]"), STATUS("in-progress"),
     NULL, "[['CallAnswered', {'agent_id': null}]]"},
    /* ParkCall */
    {"park in the lowest free slot", C(ANSWERED), "{'type': 'ParkCall'}", AGENT,
     "[['CallParked', {'slot': 2, 'parked_by': '" AGENT "', 'parked_at': '" T0 "'}]]",
     "{'members': [{'user_id': '" AGENT "', 'role': 'agent'}], 'parked_slots': [1, 3]}"},
    {"park in a chosen slot", C(ANSWERED), "{'type': 'ParkCall', 'slot': 7}", AGENT,
     "[['CallParked', {'slot': 7}]]"},
    {"park in a taken slot", C(ANSWERED), "{'type': 'ParkCall', 'slot': 3}", AGENT,
     "{'error': [409, 'slot_taken']}",
     "{'members': [{'user_id': '" AGENT "', 'role': 'agent'}], 'parked_slots': [1, 3]}"},
    {"park in slot zero", C(ANSWERED), "{'type': 'ParkCall', 'slot': 0}", AGENT,
     "{'error': [400, 'invalid']}"},
    {"park twice: nothing", C(ANSWERED PARKED), "{'type': 'ParkCall'}", AGENT, "[]"},
    {"park a ringing call", C(RINGING), "{'type': 'ParkCall'}", AGENT, ERR409},
    {"park a queued call", C(""), "{'type': 'ParkCall'}", AGENT, ERR409},
    {"park an ended call", C(ANSWERED COMPLETED), "{'type': 'ParkCall'}", AGENT, ERR409},
    /* UnparkCall */
    {"unpark to another agent", C(ANSWERED PARKED), "{'type': 'UnparkCall', 'agent_id': '" ADMIN "'}", AGENT,
     "[['CallUnparked', {'agent_id': '" ADMIN "', 'slot': 2, 'parked_seconds': 125, 'by': '" AGENT "'}]]",
     NULL, T1},
    {"unpark to oneself", C(ANSWERED PARKED), "{'type': 'UnparkCall'}", ADMIN,
     "[['CallUnparked', {'agent_id': '" ADMIN "'}]]"},
    {"the system must name the agent", C(ANSWERED PARKED), "{'type': 'UnparkCall'}", NULL,
     "{'error': [400, 'required']}"},
    {"unpark to a stranger", C(ANSWERED PARKED), "{'type': 'UnparkCall', 'agent_id': '" STRANGER "'}", AGENT,
     "{'error': [400, 'unknown_member']}"},
    {"unpark a call that is not parked", C(ANSWERED), "{'type': 'UnparkCall'}", AGENT, ERR409},
    {"unpark twice", C(ANSWERED PARKED UNPARKED), "{'type': 'UnparkCall'}", AGENT, ERR409},
    {"park again after unpark", C(ANSWERED PARKED UNPARKED), "{'type': 'ParkCall', 'slot': 4}", ADMIN,
     "[['CallParked', {'slot': 4, 'parked_by': '" ADMIN "'}]]"},
    /* TransferCall */
    {"cold transfer to an agent", C(ANSWERED),
     "{'type': 'TransferCall', 'mode': 'cold', 'to_agent': '" ADMIN "'}", AGENT,
     "[['CallTransferred', {'mode': 'cold', 'to_agent': '" ADMIN "', 'to_number': null, 'from_agent': '" AGENT
     "', 'by': '" AGENT "'}]]"},
    {"warm transfer to a number", C(ANSWERED),
     "{'type': 'TransferCall', 'mode': 'warm', 'to_number': '415-555-0142'}", AGENT,
     "[['CallTransferred', {'mode': 'warm', 'to_agent': null, 'to_number': '+14155550142'}]]"},
    {"transfer after a transfer",
     C(ANSWERED ", ['CallTransferred', {'mode': 'cold', 'to_agent': '" ADMIN "', 'from_agent': '" AGENT
                "'}]"),
     "{'type': 'TransferCall', 'mode': 'cold', 'to_agent': '" AGENT "'}", ADMIN,
     "[['CallTransferred', {'to_agent': '" AGENT "', 'from_agent': '" ADMIN "'}]]"},
    {"transfer to the agent who has it", C(ANSWERED),
     "{'type': 'TransferCall', 'mode': 'cold', 'to_agent': '" AGENT "'}", AGENT,
     "{'error': [409, 'same_agent']}"},
    {"transfer to both", C(ANSWERED),
     "{'type': 'TransferCall', 'mode': 'cold', 'to_agent': '" ADMIN "', 'to_number': '+14155550142'}", AGENT,
     "{'error': [400, 'invalid']}"},
    {"transfer to nobody", C(ANSWERED), "{'type': 'TransferCall', 'mode': 'cold'}", AGENT,
     "{'error': [400, 'invalid']}"},
    {"transfer with a bad mode", C(ANSWERED),
     "{'type': 'TransferCall', 'mode': 'hot', 'to_agent': '" ADMIN "'}", AGENT,
     "{'error': [400, 'invalid']}"},
    {"transfer to a stranger", C(ANSWERED),
     "{'type': 'TransferCall', 'mode': 'cold', 'to_agent': '" STRANGER "'}", AGENT,
     "{'error': [400, 'unknown_member']}"},
    {"transfer a parked call", C(ANSWERED PARKED),
     "{'type': 'TransferCall', 'mode': 'cold', 'to_agent': '" ADMIN "'}", AGENT, ERR409},
    {"transfer a ringing call", C(RINGING),
     "{'type': 'TransferCall', 'mode': 'cold', 'to_agent': '" ADMIN "'}", AGENT, ERR409},
    {"transfer an ended call", C(ANSWERED COMPLETED),
     "{'type': 'TransferCall', 'mode': 'cold', 'to_agent': '" ADMIN "'}", AGENT, ERR409},
    /* HangupCall */
    {"hang up", C(ANSWERED), "{'type': 'HangupCall'}", AGENT,
     "[['CallHangupRequested', {'by': '" AGENT "'}]]"},
    {"hang up a ringing call", C(RINGING), "{'type': 'HangupCall'}", AGENT, "[['CallHangupRequested', {}]]"},
    {"hang up twice: nothing", C(ANSWERED ", ['CallHangupRequested', {'by': '" AGENT "'}]"),
     "{'type': 'HangupCall'}", AGENT, "[]"},
    {"hang up an ended call", C(ANSWERED COMPLETED), "{'type': 'HangupCall'}", AGENT, ERR409},
    /* RecordCallRecording */
    {"a recording", C(ANSWERED COMPLETED),
     "{'type': 'RecordCallRecording', 'url': 'https://api.twilio.com/rec/RE1', 'duration_seconds': 120}",
     NULL,
     "[['CallRecordingAvailable', {'url': 'https://api.twilio.com/rec/RE1', 'duration_seconds': 120}]]"},
    {"the same recording twice: nothing",
     C(ANSWERED
       ", ['CallRecordingAvailable', {'url': 'https://api.twilio.com/rec/RE1', 'duration_seconds': 120}]"),
     "{'type': 'RecordCallRecording', 'url': 'https://api.twilio.com/rec/RE1', 'duration_seconds': 120}",
     NULL, "[]"},
    {"a recording without a duration", C(ANSWERED),
     "{'type': 'RecordCallRecording', 'url': 'https://x.example/r'}", NULL, "{'error': [400, 'invalid']}"},
    {"a recording that is not a URL", C(ANSWERED),
     "{'type': 'RecordCallRecording', 'url': 'file:///etc/passwd', 'duration_seconds': 1}", NULL,
     "{'error': [400, 'invalid']}"},
    /* TransferCall numbers each transfer */
    {"the first transfer is number 1", C(ANSWERED),
     "{'type': 'TransferCall', 'mode': 'warm', 'to_agent': '" ADMIN "'}", AGENT,
     "[['CallTransferred', {'transfer': 1}]]"},
    {"the second is number 2", C(ANSWERED XFER1),
     "{'type': 'TransferCall', 'mode': 'cold', 'to_agent': '" AGENT "'}", ADMIN,
     "[['CallTransferred', {'transfer': 2, 'from_agent': '" ADMIN "'}]]"},
    /* FailTransfer: the target did not answer */
    {"a transfer fails: back to the first agent", C(ANSWERED XFER1),
     "{'type': 'FailTransfer', 'transfer': 1, 'reason': 'no-answer'}", NULL,
     "[['CallTransferFailed', {'mode': 'warm', 'transfer': 1, 'to_agent': '" ADMIN "', 'back_to': '" AGENT
     "', 'reason': 'no-answer'}]]"},
    {"the same failure twice: nothing", C(ANSWERED XFER1 XFER1_FAILED),
     "{'type': 'FailTransfer', 'transfer': 1, 'reason': 'busy'}", NULL, "[]"},
    {"a late failure of an older transfer: nothing",
     C(ANSWERED XFER1 ", ['CallTransferred', {'mode': 'cold', 'to_agent': '" AGENT "', 'from_agent': '" ADMIN
                      "', 'transfer': 2}]"),
     "{'type': 'FailTransfer', 'transfer': 1, 'reason': 'no-answer'}", NULL, "[]"},
    {"a failure without a transfer: nothing", C(ANSWERED),
     "{'type': 'FailTransfer', 'transfer': 1, 'reason': 'no-answer'}", NULL, "[]"},
    {"a failure after the end: nothing", C(ANSWERED XFER1 COMPLETED),
     "{'type': 'FailTransfer', 'transfer': 1, 'reason': 'no-answer'}", NULL, "[]"},
    {"a failure without its number", C(ANSWERED XFER1), "{'type': 'FailTransfer', 'reason': 'no-answer'}",
     NULL, "{'error': [400, 'invalid', 'transfer']}"},
    /* ReturnToLot: the unparking agent did not answer */
    {"unparked, unanswered: back in the slot, still the parker's", C(ANSWERED PARKED UNPARKED_BY_ADMIN),
     "{'type': 'ReturnToLot', 'unparked_at': '" T1 "'}", NULL,
     "[['CallParked', {'slot': 2, 'parked_by': '" AGENT "', 'returned': true}]]", NULL, T2},
    {"an older unparking: nothing", C(ANSWERED PARKED UNPARKED_BY_ADMIN),
     "{'type': 'ReturnToLot', 'unparked_at': '" T0 "'}", NULL, "[]"},
    {"after a transfer: nothing",
     C(ANSWERED PARKED UNPARKED_BY_ADMIN ", ['CallTransferred', {'mode': 'cold', 'to_agent': '" AGENT
                                         "', 'from_agent': '" ADMIN "', 'transfer': 1}]"),
     "{'type': 'ReturnToLot', 'unparked_at': '" T1 "'}", NULL, "[]"},
    {"parked again already: nothing", C(ANSWERED PARKED UNPARKED_BY_ADMIN PARKED),
     "{'type': 'ReturnToLot', 'unparked_at': '" T1 "'}", NULL, "[]"},
    {"the unparking names its parker", C(ANSWERED PARKED), "{'type': 'UnparkCall'}", ADMIN,
     "[['CallUnparked', {'agent_id': '" ADMIN "', 'parked_by': '" AGENT "'}]]"},
    /* RequeueCall: call control sent a live caller back to the queue */
    {"a live call back to the queue", C(ANSWERED),
     "{'type': 'RequeueCall', 'queue': 'ws_1', 'reason': 'no-answer'}", NULL,
     "[['CallEnqueued', {'queue': 'ws_1', 'reason': 'no-answer', 'from_agent': '" AGENT
     "', 'requeued': true}]]"},
    {"already waiting there: nothing",
     C(", ['CallEnqueued', {'queue': 'ws_1', 'reason': 'no-answer', 'from_agent': null, 'at': '" T0 "'}]"),
     "{'type': 'RequeueCall', 'queue': 'ws_1'}", NULL, "[]"},
    {"a parked call stays in the lot", C(ANSWERED PARKED), "{'type': 'RequeueCall', 'queue': 'ws_1'}", NULL,
     "[]"},
    {"an ended call: nothing", C(ANSWERED COMPLETED), "{'type': 'RequeueCall', 'queue': 'ws_1'}", NULL, "[]"},
    {"requeue without a queue", C(ANSWERED), "{'type': 'RequeueCall'}", NULL,
     "{'error': [400, 'required', 'queue']}"},
    /* RecordDialAttempt: each leg at most once */
    {"a dial attempt", C(""), "{'type': 'RecordDialAttempt', 'ref': 'dial'}", NULL,
     "[['CallDialAttempted', {'ref': 'dial', 'at': '" T0 "'}]]"},
    {"the same attempt again", C(", ['CallDialAttempted', {'ref': 'dial', 'at': '" T0 "'}]"),
     "{'type': 'RecordDialAttempt', 'ref': 'dial'}", NULL, "{'error': [409, 'attempted', 'ref']}"},
    {"another leg", C(", ['CallDialAttempted', {'ref': 'dial', 'at': '" T0 "'}]"),
     "{'type': 'RecordDialAttempt', 'ref': 'unpark:7'}", NULL,
     "[['CallDialAttempted', {'ref': 'unpark:7'}]]"},
    {"an attempt without a ref", C(""), "{'type': 'RecordDialAttempt'}", NULL,
     "{'error': [400, 'required', 'ref']}"},
    {"an attempt on an unknown call", NULL, "{'type': 'RecordDialAttempt', 'ref': 'dial'}", NULL,
     "{'error': [404, 'call_not_found']}"},
};

/* ---- property: a call driven by random callbacks and commands ---------------------------------- */

static json_t *gen(const json_t *state, int step, const char **user)
{
    static const char *const statuses[] = {"queued", "ringing",   "in-progress", "completed",
                                           "busy",   "no-answer", "failed",      "canceled"};
    static const char *const agents[] = {OWNER, ADMIN, AGENT};
    *user = h_rand(3) ? agents[h_rand(3)] : NULL;
    /* A fresh call every so often: the property runs over many calls through one stream. */
    if (step == 0)
        return json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", "InitiateCall", "workspace_id", WS, "direction",
                         "inbound", "from", "+14155550100", "to", "+14155550199");
    switch (h_rand(9)) {
    case 0:
    case 1:
    case 2:
        return json_pack("{s:s, s:s}", "type", "RecordCallStatus", "status",
                         statuses[h_rand(h_rand(4) ? 3 : 8)]);
    case 3:
        return json_pack("{s:s}", "type", "ParkCall");
    case 4:
        return json_pack("{s:s, s:s}", "type", "UnparkCall", "agent_id", agents[h_rand(3)]);
    case 5:
        return json_pack("{s:s, s:s, s:s}", "type", "TransferCall", "mode", h_rand(2) ? "cold" : "warm",
                         "to_agent", agents[h_rand(3)]);
    case 6:
        return json_pack("{s:s, s:s}", "type", "AnswerCall", "agent_id", agents[h_rand(3)]);
    case 7:
        if (h_rand(4) == 0)
            return json_pack("{s:s, s:s}", "type", "EnqueueCall", "queue", "ws_1");
        return json_pack("{s:s}", "type", h_rand(3) ? "RecordCallStatus" : "HangupCall", "status", "ringing");
    default:
        return json_pack("{s:s, s:s, s:i}", "type", "RecordCallRecording", "url",
                         h_rand(2) ? "https://r.example/1" : "https://r.example/2", "duration_seconds", 10);
    }
}

/* Many calls, each a fresh stream: every random history keeps the state machine's rules. */
static void check_machine(void)
{
    json_t *ctxj = jq(MEMBERS_CTX);
    int completed = 0, failed = 0, parked = 0;
    h_seed(5);
    for (int call = 0; call < 400; call++) {
        json_t *state = sb_kind_call.initial();
        int64_t now = h_time(T0);
        char prevbuf[16] = "";
        const char *prev = NULL;
        bool ever_answered = false;
        for (int step = 0; step < 30; step++) {
            const char *user;
            json_t *cmd = gen(state, step, &user);
            sb_decide_ctx_t ctx = {.now_us = now += 7000000, .id = CALL, .user_id = user, .context = ctxj};
            sb_devents_t out = {.n = 0};
            sb_derror_t err;
            if (sb_kind_call.decide(state, cmd, &ctx, &out, &err) == 0)
                for (int i = 0; i < out.n; i++)
                    sb_kind_call.evolve(state, &out.items[i]);
            sb_devents_clear(&out);
            json_decref(cmd);
            const char *s = json_string_value(json_object_get(state, "status"));
            /* Once over, a call stays over, unchanged. */
            if (prev != NULL && (strcmp(prev, "completed") == 0 || strcmp(prev, "busy") == 0 ||
                                 strcmp(prev, "no-answer") == 0 || strcmp(prev, "failed") == 0 ||
                                 strcmp(prev, "cancelled") == 0))
                CHECK(strcmp(prev, s) == 0);
            /* Once answered, it never rings again nor fails to connect. */
            if (ever_answered)
                CHECK(strcmp(s, "ringing") != 0 && strcmp(s, "queued") != 0 && strcmp(s, "busy") != 0 &&
                      strcmp(s, "no-answer") != 0);
            ever_answered = ever_answered || strcmp(s, "in-progress") == 0 || strcmp(s, "parked") == 0;
            parked += strcmp(s, "parked") == 0;
            snprintf(prevbuf, sizeof prevbuf, "%s", s);
            prev = prevbuf;
        }
        completed += strcmp(prev, "completed") == 0;
        failed +=
            strcmp(prev, "completed") != 0 && strcmp(prev, "in-progress") != 0 && strcmp(prev, "parked") != 0;
        /* Duration is never negative and only completed calls have one. */
        json_t *d = json_object_get(state, "duration_seconds");
        CHECK(json_is_null(d) || (json_integer_value(d) >= 0 && strcmp(prev, "completed") == 0));
        json_decref(state);
    }
    /* The generator reaches every outcome, so the checks above had something to check. */
    CHECK(completed > 20 && failed > 20 && parked > 20);
    json_decref(ctxj);
}

int main(void)
{
    run_cases(&sb_kind_call, cases, sizeof cases / sizeof cases[0], MEMBERS_CTX, CALL);
    /* A call ends within a few dozen steps, so the property runs over many calls. */
    int productive = 0;
    h_quiet = true;
    for (int i = 0; i < 200; i++)
        productive += run_property(&sb_kind_call, gen, MEMBERS_CTX, CALL, 25, 1000 + (uint64_t)i, 4096);
    h_quiet = false;
    fprintf(stderr, "call property: 200 calls of 25 steps, %d productive commands\n", productive);
    CHECK(productive > 1000);
    check_machine();
    return h_finish("call");
}
