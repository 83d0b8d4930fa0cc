/* The contact decider (profile, pipeline, opt-outs, notes, messages): given events, when a command,
 * then events or a rejection; segment counting; bounded state; the fold property. */
#include "decider_harness.h"

#include "actors/contact_int.h"
#include "actors/dutil.h"
#include "core/buf.h"
#include "events/codec.h"

#define CREATED                                                                                              \
    "['ContactCreated', {'contact_id': '" CONTACT "', 'workspace_id': '" WS "', 'name': 'Bea', 'phones': "   \
    "['+14155550100'], 'emails': ['bea@example.com'], 'tags': ['VIP'], 'stage': 'Lead', 'assignee_id': "     \
    "null}]"
#define EMAIL_ONLY                                                                                           \
    "[['ContactCreated', {'contact_id': '" CONTACT "', 'workspace_id': '" WS                                 \
    "', 'name': 'Cy', 'phones': [], "                                                                        \
    "'emails': ['cy@example.com'], 'tags': []}]]"
#define PHONE_ONLY                                                                                           \
    "[['ContactCreated', {'contact_id': '" CONTACT "', 'workspace_id': '" WS "', 'name': '', 'phones': "     \
    "['+14155550100'], 'emails': [], 'tags': []}]]"
#define K(extra) "[" CREATED extra "]"
#define BASE K("")

#define QUEUED(id)                                                                                           \
    ", ['MessageQueued', {'message_id': '" id "', 'channel': 'sms', 'to': '+14155550100', 'body': 'Hi'}]"
#define SCHEDULED(id)                                                                                        \
    ", ['MessageScheduled', {'message_id': '" id "', 'channel': 'sms', 'direction': 'outbound', 'to': "      \
    "'+14155550100', 'body': 'Later', 'media_urls': [], 'segments': 1, 'send_at': "                          \
    "'2026-03-02T09:00:00.000000Z'}]"
#define SENT(id) ", ['MessageSent', {'message_id': '" id "', 'provider_id': 'SM1'}]"
#define DELIVERED(id) ", ['MessageDelivered', {'message_id': '" id "'}]"
#define READ(id) ", ['MessageRead', {'message_id': '" id "'}]"
#define FAILED(id) ", ['MessageFailed', {'message_id': '" id "', 'status': 'failed', 'code': '30008'}]"
#define CANCELLED(id) ", ['MessageScheduleCancelled', {'message_id': '" id "'}]"
#define RECEIVED(id, pid)                                                                                    \
    ", ['MessageReceived', {'message_id': '" id                                                              \
    "', 'channel': 'sms', 'from': '+14155550100', 'body': 'Yo', "                                            \
    "'provider_id': '" pid "'}]"
#define OPTED_OUT(ch) ", ['ContactOptedOut', {'channel': '" ch "', 'keyword': 'stop'}]"
#define DELETED(ids) ", ['ContactDeleted', {'cancelled_message_ids': " ids "}]"
#define NOTE(id, author)                                                                                     \
    ", ['NoteAdded', {'note_id': '" id "', 'author_id': '" author "', 'body': 'x', 'private': false}]"

#define SEND(extra) "{'type': 'SendMessage', 'message_id': '" M1 "', " extra "}"
#define STATUS(id, s) "{'type': 'RecordMessageStatus', 'message_id': '" id "', 'status': '" s "'}"
#define RECV(extra)                                                                                          \
    "{'type': 'ReceiveMessage', 'message_id': '" M2                                                          \
    "', 'from': '+14155550100', 'to': '+14155550199', " extra "}"
#define GB_CTX "{'default_country': 'GB', 'members': [], 'stages': []}"
#define LATER "2026-03-02T09:00:00Z"

static const dcase_t cases[] = {
    /* CreateContact */
    {"create, normalising everything", NULL,
     "{'type': 'CreateContact', 'workspace_id': '" WS
     "', 'name': ' Bea Lima ', 'phone': '(415) 555-0100', 'phones': "
     "['+1 415 555 0101', '415-555-0100'], 'email': 'Bea@Example.com', 'tags': [' VIP ', 'vip', 'new'], "
     "'stage': "
     "'lead', 'assignee_id': '" AGENT "'}",
     AGENT,
     "[['ContactCreated', {'contact_id': '" CONTACT "', 'workspace_id': '" WS
     "', 'name': 'Bea Lima', 'phones': "
     "['+14155550100', '+14155550101'], 'emails': ['bea@example.com'], 'tags': ['VIP', 'new'], 'stage': "
     "'Lead', "
     "'assignee_id': '" AGENT "', 'created_at': '" T0 "', 'created_by': '" AGENT "'}]]"},
    {"create from an inbound number alone", NULL,
     "{'type': 'CreateContact', 'workspace_id': '" WS "', 'phone': '+14155550100'}", NULL,
     "[['ContactCreated', {'name': '', 'phones': ['+14155550100'], 'emails': [], 'tags': [], 'stage': "
     "null}]]"},
    {"national numbers read in the workspace's country", NULL,
     "{'type': 'CreateContact', 'workspace_id': '" WS "', 'phone': '020 7946 0958'}", NULL,
     "[['ContactCreated', {'phones': ['+442079460958']}]]", GB_CTX},
    {"create with nothing to go by", NULL,
     "{'type': 'CreateContact', 'workspace_id': '" WS "', 'name': '  '}", NULL,
     "{'error': [400, 'required']}"},
    {"create twice", BASE, "{'type': 'CreateContact', 'workspace_id': '" WS "', 'name': 'Bea'}", NULL,
     "{'error': [409, 'contact_exists']}"},
    {"create without a workspace", NULL, "{'type': 'CreateContact', 'name': 'Bea'}", NULL,
     "{'error': [400, 'required']}"},
    {"a bad phone", NULL,
     "{'type': 'CreateContact', 'workspace_id': '" WS "', 'phones': ['+14155550100', 'nope']}", NULL,
     "{'error': [400, 'invalid_phone', 'phones']}"},
    {"phones that are not strings", NULL,
     "{'type': 'CreateContact', 'workspace_id': '" WS "', 'phones': [4155550100]}", NULL,
     "{'error': [400, 'invalid']}"},
    {"too many phones", NULL,
     "{'type': 'CreateContact', 'workspace_id': '" WS
     "', 'phones': ['+14155550100', '+14155550101', '+14155550102', "
     "'+14155550103', '+14155550104', '+14155550105', '+14155550106', '+14155550107', '+14155550108', "
     "'+14155550109', '+14155550110']}",
     NULL, "{'error': [400, 'invalid']}"},
    {"a bad email", NULL, "{'type': 'CreateContact', 'workspace_id': '" WS "', 'email': 'bea at example'}",
     NULL, "{'error': [400, 'invalid_email']}"},
    {"tags must be a list", NULL,
     "{'type': 'CreateContact', 'workspace_id': '" WS "', 'name': 'B', 'tags': 'vip'}", NULL,
     "{'error': [400, 'invalid', 'tags']}"},
    {"an empty tag", NULL, "{'type': 'CreateContact', 'workspace_id': '" WS "', 'name': 'B', 'tags': ['']}",
     NULL, "{'error': [400, 'required', 'tags']}"},
    {"a stage not in the pipeline", NULL,
     "{'type': 'CreateContact', 'workspace_id': '" WS "', 'name': 'B', 'stage': 'Lost'}", NULL,
     "{'error': [400, 'unknown_stage']}"},
    {"an assignee who is not a member", NULL,
     "{'type': 'CreateContact', 'workspace_id': '" WS "', 'name': 'B', 'assignee_id': '" STRANGER "'}", NULL,
     "{'error': [400, 'unknown_member']}"},
    {"a user who is not a member", NULL, "{'type': 'CreateContact', 'workspace_id': '" WS "', 'name': 'B'}",
     STRANGER, "{'error': [403, 'not_member']}"},
    {"commands before creation", NULL, "{'type': 'TagContact', 'tag': 'x'}", NULL,
     "{'error': [404, 'contact_not_found']}"},
    {"messages before creation", NULL, SEND("'channel': 'sms', 'body': 'Hi'"), NULL,
     "{'error': [404, 'contact_not_found']}"},
    {"another workspace's context: as if unknown", BASE, "{'type': 'TagContact', 'tag': 'x'}", NULL,
     "{'error': [404, 'contact_not_found']}",
     "{'workspace_id': '99999999-9999-7999-8999-999999999999', 'members': [], 'stages': []}"},
    {"another workspace's context, a message command", BASE, SEND("'channel': 'sms', 'body': 'Hi'"), NULL,
     "{'error': [404, 'contact_not_found']}",
     "{'workspace_id': '99999999-9999-7999-8999-999999999999', 'members': [], 'stages': []}"},
    {"unknown command", BASE, "{'type': 'Befriend'}", NULL, "{'error': [400, 'unknown_command']}"},
    {"a command that is not an object", BASE, "['SendMessage']", NULL, "{'error': [400, 'required']}"},
    /* UpdateContact */
    {"rename", BASE, "{'type': 'UpdateContact', 'name': 'Bea Lima'}", AGENT,
     "[['ContactUpdated', {'name': 'Bea Lima', 'by': '" AGENT "'}]]"},
    {"update with the same values: nothing", BASE,
     "{'type': 'UpdateContact', 'name': 'Bea', 'phones': ['(415) 555-0100'], 'emails': ['BEA@example.com'], "
     "'tags': "
     "['vip'], 'stage': 'Lead'}",
     AGENT, "[['ContactUpdated', {'tags': ['vip']}]]"},
    {"update with exactly the same values: nothing", BASE,
     "{'type': 'UpdateContact', 'name': 'Bea', 'phones': ['+14155550100'], 'tags': ['VIP'], 'stage': 'Lead', "
     "'assignee_id': null}",
     AGENT, "[]"},
    {"replace the phones", BASE, "{'type': 'UpdateContact', 'phones': ['+14155550101', '+14155550100']}",
     AGENT, "[['ContactUpdated', {'phones': ['+14155550101', '+14155550100']}]]"},
    {"one patch, three events", BASE,
     "{'type': 'UpdateContact', 'email': 'b@lima.example', 'stage': 'won', 'assignee_id': '" AGENT "'}",
     AGENT,
     "[['ContactUpdated', {'emails': ['b@lima.example']}], ['ContactStageChanged', {'from': 'Lead', 'to': "
     "'Won'}], "
     "['ContactAssigned', {'assignee_id': '" AGENT "', 'from': null}]]"},
    {"a null stage clears it", BASE, "{'type': 'UpdateContact', 'stage': null}", AGENT,
     "[['ContactStageChanged', {'from': 'Lead', 'to': null}]]"},
    {"update cannot leave the contact nameless", BASE,
     "{'type': 'UpdateContact', 'name': '', 'phones': [], 'emails': []}", AGENT,
     "{'error': [400, 'invalid']}"},
    {"update with a bad phone", BASE, "{'type': 'UpdateContact', 'phone': '12'}", AGENT,
     "{'error': [400, 'invalid_phone']}"},
    {"update with an unknown stage", BASE, "{'type': 'UpdateContact', 'stage': 'Lost'}", AGENT,
     "{'error': [400, 'unknown_stage']}"},
    /* ChangeStage, AssignContact */
    {"change stage", BASE, "{'type': 'ChangeStage', 'stage': 'QUALIFIED'}", AGENT,
     "[['ContactStageChanged', {'from': 'Lead', 'to': 'Qualified', 'by': '" AGENT "'}]]"},
    {"same stage: nothing", BASE, "{'type': 'ChangeStage', 'stage': 'lead'}", AGENT, "[]"},
    {"a stage not in the pipeline", BASE, "{'type': 'ChangeStage', 'stage': 'Lost'}", AGENT,
     "{'error': [400, 'unknown_stage']}"},
    {"change stage needs a stage", BASE, "{'type': 'ChangeStage'}", AGENT, "{'error': [400, 'required']}"},
    {"assign", BASE, "{'type': 'AssignContact', 'assignee_id': '" ADMIN "'}", OWNER,
     "[['ContactAssigned', {'assignee_id': '" ADMIN "', 'from': null, 'by': '" OWNER "'}]]"},
    {"assign to the same: nothing", K(", ['ContactAssigned', {'assignee_id': '" ADMIN "'}]"),
     "{'type': 'AssignContact', 'assignee_id': '" ADMIN "'}", OWNER, "[]"},
    {"unassign", K(", ['ContactAssigned', {'assignee_id': '" ADMIN "'}]"),
     "{'type': 'AssignContact', 'assignee_id': null}", OWNER,
     "[['ContactAssigned', {'assignee_id': null, 'from': '" ADMIN "'}]]"},
    {"assign to a stranger", BASE, "{'type': 'AssignContact', 'assignee_id': '" STRANGER "'}", OWNER,
     "{'error': [400, 'unknown_member']}"},
    {"assign needs an assignee", BASE, "{'type': 'AssignContact'}", OWNER, "{'error': [400, 'required']}"},
    /* Tags */
    {"tag", BASE, "{'type': 'TagContact', 'tag': ' Hot '}", AGENT, "[['ContactTagged', {'tag': 'Hot'}]]"},
    {"tag again, any case: nothing", BASE, "{'type': 'TagContact', 'tag': 'vip'}", AGENT, "[]"},
    {"an empty tag", BASE, "{'type': 'TagContact', 'tag': ' '}", AGENT,
     "{'error': [400, 'required', 'tag']}"},
    {"untag, any case", BASE, "{'type': 'UntagContact', 'tag': 'vip'}", AGENT,
     "[['ContactUntagged', {'tag': 'VIP'}]]"},
    {"untag what is not there: nothing", BASE, "{'type': 'UntagContact', 'tag': 'cold'}", AGENT, "[]"},
    {"untagged is gone", K(", ['ContactUntagged', {'tag': 'VIP'}]"), "{'type': 'TagContact', 'tag': 'VIP'}",
     AGENT, "[['ContactTagged', {'tag': 'VIP'}]]"},
    /* DeleteContact */
    {"delete", BASE, "{'type': 'DeleteContact'}", OWNER,
     "[['ContactDeleted', {'cancelled_message_ids': [], 'by': '" OWNER "', 'at': '" T0 "'}]]"},
    {"delete cancels what is scheduled", K(SCHEDULED(M1) QUEUED(M2)), "{'type': 'DeleteContact'}", OWNER,
     "[['ContactDeleted', {'cancelled_message_ids': ['" M1 "']}]]"},
    {"delete twice", K(DELETED("[]")), "{'type': 'DeleteContact'}", OWNER,
     "{'error': [404, 'contact_deleted']}"},
    {"update a deleted contact", K(DELETED("[]")), "{'type': 'UpdateContact', 'name': 'X'}", OWNER,
     "{'error': [404, 'contact_deleted']}"},
    {"send to a deleted contact", K(DELETED("[]")), SEND("'channel': 'sms', 'body': 'Hi'"), OWNER,
     "{'error': [404, 'contact_deleted']}"},
    {"inbound for a deleted contact (the router makes a new one)", K(DELETED("[]")),
     RECV("'channel': 'sms', 'body': 'Hi', 'provider_id': 'SM9'"), NULL,
     "{'error': [404, 'contact_deleted']}"},
    {"a note on a deleted contact", K(DELETED("[]")), "{'type': 'AddNote', 'note_id': '" N1 "', 'body': 'x'}",
     OWNER, "{'error': [404, 'contact_deleted']}"},
    {"outcomes of messages already sent still land", K(QUEUED(M1) SENT(M1) DELETED("[]")),
     STATUS(M1, "delivered"), NULL, "[['MessageDelivered', {'message_id': '" M1 "'}]]"},
    {"a scheduled message cancelled by the delete", K(SCHEDULED(M1) DELETED("['" M1 "']")),
     "{'type': 'DispatchScheduledMessage', 'message_id': '" M1 "'}", NULL,
     "{'error': [404, 'contact_deleted']}"},
    /* Opt-outs */
    {"opt out of sms", BASE, "{'type': 'OptOutContact', 'channel': 'sms', 'keyword': 'STOP'}", AGENT,
     "[['ContactOptedOut', {'channel': 'sms', 'keyword': 'STOP', 'message_id': null}]]"},
    {"mms opt-out is the sms opt-out", BASE, "{'type': 'OptOutContact', 'channel': 'mms'}", AGENT,
     "[['ContactOptedOut', {'channel': 'sms'}]]"},
    {"opt out twice: nothing", K(OPTED_OUT("sms")), "{'type': 'OptOutContact', 'channel': 'sms'}", AGENT,
     "[]"},
    {"opt back in", K(OPTED_OUT("sms")), "{'type': 'OptInContact', 'channel': 'sms', 'keyword': 'START'}",
     AGENT, "[['ContactOptedIn', {'channel': 'sms', 'keyword': 'START'}]]"},
    {"opt in when not out: nothing", BASE, "{'type': 'OptInContact', 'channel': 'whatsapp'}", AGENT, "[]"},
    {"chat has no opt-out", BASE, "{'type': 'OptOutContact', 'channel': 'chat'}", AGENT,
     "{'error': [400, 'invalid']}"},
    /* SendMessage */
    {"send an sms", BASE, SEND("'channel': 'sms', 'body': 'Hello there'"), AGENT,
     "[['MessageQueued', {'message_id': '" M1
     "', 'channel': 'sms', 'direction': 'outbound', 'to': '+14155550100', "
     "'from': null, 'body': 'Hello there', 'media_urls': [], 'subject': null, 'segments': 1, 'encoding': "
     "'gsm7', "
     "'author_id': '" AGENT "', 'created_at': '" T0 "', 'send_at': null}]]"},
    {"an sms with a picture is an mms", BASE,
     SEND("'channel': 'sms', 'body': 'Look', 'media_url': 'https://cdn.example/a.jpg'"), AGENT,
     "[['MessageQueued', {'channel': 'mms', 'media_urls': ['https://cdn.example/a.jpg'], 'segments': 1, "
     "'encoding': "
     "null}]]"},
    {"a picture without words", BASE,
     SEND("'channel': 'mms', 'body': '', 'media_urls': ['https://cdn.example/a.jpg']"), AGENT,
     "[['MessageQueued', {'channel': 'mms', 'body': ''}]]"},
    {"media must be http(s)", BASE,
     SEND("'channel': 'mms', 'body': 'x', 'media_urls': ['ftp://cdn.example/a.jpg']"), AGENT,
     "{'error': [400, 'invalid']}"},
    {"unicode goes out as ucs2", BASE, SEND("'channel': 'sms', 'body': 'Olá 👋'"), AGENT,
     "[['MessageQueued', {'segments': 1, 'encoding': 'ucs2'}]]"},
    {"to one of the contact's numbers, any format", BASE,
     SEND("'channel': 'sms', 'body': 'Hi', 'to': '415-555-0100', 'from': '(415) 555-0199'"), AGENT,
     "[['MessageQueued', {'to': '+14155550100', 'from': '+14155550199'}]]"},
    {"to a number that is not the contact's", BASE,
     SEND("'channel': 'sms', 'body': 'Hi', 'to': '+14155550111'"), AGENT,
     "{'error': [400, 'unknown_recipient', 'to']}"},
    {"whatsapp", BASE, SEND("'channel': 'whatsapp', 'body': 'Hi'"), AGENT,
     "[['MessageQueued', {'channel': 'whatsapp', 'to': '+14155550100', 'segments': 1, 'encoding': null}]]"},
    {"an e-mail", BASE, SEND("'channel': 'email', 'body': 'Dear Bea', 'subject': 'Your quote'"), AGENT,
     "[['MessageQueued', {'channel': 'email', 'to': 'bea@example.com', 'subject': 'Your quote'}]]"},
    {"chat has no address", BASE, SEND("'channel': 'chat', 'body': 'Hi'"), AGENT,
     "[['MessageQueued', {'channel': 'chat', 'to': null}]]"},
    {"an sms to a contact without a phone", EMAIL_ONLY, SEND("'channel': 'sms', 'body': 'Hi'"), AGENT,
     "{'error': [409, 'no_phone']}"},
    {"an e-mail to a contact without one", PHONE_ONLY, SEND("'channel': 'email', 'body': 'Hi'"), AGENT,
     "{'error': [409, 'no_email']}"},
    {"a subject on an sms", BASE, SEND("'channel': 'sms', 'body': 'Hi', 'subject': 'S'"), AGENT,
     "{'error': [400, 'invalid']}"},
    {"an empty body", BASE, SEND("'channel': 'sms', 'body': ''"), AGENT,
     "{'error': [400, 'required', 'body']}"},
    {"no body", BASE, SEND("'channel': 'sms'"), AGENT, "{'error': [400, 'required']}"},
    {"an e-mail needs words", BASE,
     SEND("'channel': 'email', 'body': '', 'media_url': 'https://x.example/a'"), AGENT,
     "{'error': [400, 'required']}"},
    {"an unknown channel", BASE, SEND("'channel': 'pigeon', 'body': 'Hi'"), AGENT,
     "{'error': [400, 'invalid']}"},
    {"no message id", BASE, "{'type': 'SendMessage', 'channel': 'sms', 'body': 'Hi'}", AGENT,
     "{'error': [400, 'required']}"},
    {"a message id that is not a uuid", BASE,
     "{'type': 'SendMessage', 'message_id': 'm1', 'channel': 'sms', 'body': 'Hi'}", AGENT,
     "{'error': [400, 'invalid']}"},
    {"the same message again: nothing", K(QUEUED(M1)), SEND("'channel': 'sms', 'body': 'Hi'"), AGENT, "[]"},
    {"sms to an opted-out contact", K(OPTED_OUT("sms")), SEND("'channel': 'sms', 'body': 'Hi'"), AGENT,
     "{'error': [409, 'opted_out']}"},
    {"mms to an sms-opted-out contact", K(OPTED_OUT("sms")),
     SEND("'channel': 'sms', 'body': 'Hi', 'media_url': 'https://x.example/a.png'"), AGENT,
     "{'error': [409, 'opted_out']}"},
    {"whatsapp to a contact opted out of whatsapp", K(OPTED_OUT("whatsapp")),
     SEND("'channel': 'whatsapp', 'body': 'Hi'"), AGENT, "{'error': [409, 'opted_out']}"},
    {"whatsapp is unaffected by an sms opt-out", K(OPTED_OUT("sms")),
     SEND("'channel': 'whatsapp', 'body': 'Hi'"), AGENT, "[['MessageQueued', {'channel': 'whatsapp'}]]"},
    {"e-mail after an e-mail opt-out", K(OPTED_OUT("email")), SEND("'channel': 'email', 'body': 'Hi'"), AGENT,
     "{'error': [409, 'opted_out']}"},
    {"sms after opting back in",
     K(OPTED_OUT("sms") ", ['ContactOptedIn', {'channel': 'sms', 'keyword': 'start'}]"),
     SEND("'channel': 'sms', 'body': 'Hi'"), AGENT, "[['MessageQueued', {}]]"},
    {"schedule for later", BASE, SEND("'channel': 'sms', 'body': 'Later', 'send_at': '" LATER "'"), AGENT,
     "[['MessageScheduled', {'message_id': '" M1
     "', 'send_at': '2026-03-02T09:00:00.000000Z', 'body': 'Later'}]]"},
    {"a send time in the past goes now", BASE,
     SEND("'channel': 'sms', 'body': 'Now', 'send_at': '2026-01-01T00:00:00Z'"), AGENT,
     "[['MessageQueued', {'send_at': null}]]"},
    {"a send time over a year ahead", BASE,
     SEND("'channel': 'sms', 'body': 'Hi', 'send_at': '2027-06-01T00:00:00Z'"), AGENT,
     "{'error': [400, 'invalid']}"},
    {"a send time that is not a time", BASE, SEND("'channel': 'sms', 'body': 'Hi', 'send_at': 'tomorrow'"),
     AGENT, "{'error': [400, 'invalid']}"},
    /* DispatchScheduledMessage */
    {"dispatch at send time", K(SCHEDULED(M1)),
     "{'type': 'DispatchScheduledMessage', 'message_id': '" M1 "'}", NULL,
     "[['MessageQueued', {'message_id': '" M1
     "', 'channel': 'sms', 'to': '+14155550100', 'body': 'Later', 'send_at': "
     "'2026-03-02T09:00:00.000000Z', 'queued_at': '2026-03-02T09:00:00.000000Z'}]]",
     NULL, "2026-03-02T09:00:00Z"},
    {"dispatch twice: nothing", K(SCHEDULED(M1) ", ['MessageQueued', {'message_id': '" M1 "'}]"),
     "{'type': 'DispatchScheduledMessage', 'message_id': '" M1 "'}", NULL, "[]"},
    {"dispatch a cancelled message", K(SCHEDULED(M1) CANCELLED(M1)),
     "{'type': 'DispatchScheduledMessage', 'message_id': '" M1 "'}", NULL,
     "{'error': [409, 'message_cancelled']}"},
    {"dispatch an unknown message", BASE, "{'type': 'DispatchScheduledMessage', 'message_id': '" M1 "'}",
     NULL, "{'error': [404, 'unknown_message']}"},
    {"dispatch after an opt-out fails it", K(SCHEDULED(M1) OPTED_OUT("sms")),
     "{'type': 'DispatchScheduledMessage', 'message_id': '" M1 "'}", NULL,
     "[['MessageFailed', {'message_id': '" M1 "', 'status': 'failed', 'code': 'opted_out'}]]"},
    /* CancelScheduledMessage */
    {"cancel", K(SCHEDULED(M1)), "{'type': 'CancelScheduledMessage', 'message_id': '" M1 "'}", AGENT,
     "[['MessageScheduleCancelled', {'message_id': '" M1 "', 'by': '" AGENT "'}]]"},
    {"cancel twice: nothing", K(SCHEDULED(M1) CANCELLED(M1)),
     "{'type': 'CancelScheduledMessage', 'message_id': '" M1 "'}", AGENT, "[]"},
    {"cancel what already went", K(SCHEDULED(M1) ", ['MessageQueued', {'message_id': '" M1 "'}]"),
     "{'type': 'CancelScheduledMessage', 'message_id': '" M1 "'}", AGENT,
     "{'error': [409, 'not_scheduled']}"},
    {"cancel a message sent straight away", K(QUEUED(M1)),
     "{'type': 'CancelScheduledMessage', 'message_id': '" M1 "'}", AGENT,
     "{'error': [409, 'not_scheduled']}"},
    {"cancel an unknown message", BASE, "{'type': 'CancelScheduledMessage', 'message_id': '" M1 "'}", AGENT,
     "{'error': [404, 'unknown_message']}"},
    /* RecordSendAttempt (the outbox, before each provider request) */
    {"first attempt", K(QUEUED(M1)), "{'type': 'RecordSendAttempt', 'message_id': '" M1 "', 'attempt': 1}",
     NULL, "[['MessageSendAttempted', {'message_id': '" M1 "', 'attempt': 1, 'at': '" T0 "'}]]"},
    {"next attempt", K(QUEUED(M1) ", ['MessageSendAttempted', {'message_id': '" M1 "', 'attempt': 1}]"),
     "{'type': 'RecordSendAttempt', 'message_id': '" M1 "', 'attempt': 2}", NULL,
     "[['MessageSendAttempted', {'attempt': 2}]]"},
    {"an attempt someone else recorded",
     K(QUEUED(M1) ", ['MessageSendAttempted', {'message_id': '" M1 "', 'attempt': 1}]"),
     "{'type': 'RecordSendAttempt', 'message_id': '" M1 "', 'attempt': 1}", NULL,
     "{'error': [409, 'attempt_conflict', 'attempt']}"},
    {"an attempt out of turn", K(QUEUED(M1)),
     "{'type': 'RecordSendAttempt', 'message_id': '" M1 "', 'attempt': 3}", NULL,
     "{'error': [409, 'attempt_conflict', 'attempt']}"},
    {"an attempt on a sent message", K(QUEUED(M1) SENT(M1)),
     "{'type': 'RecordSendAttempt', 'message_id': '" M1 "', 'attempt': 1}", NULL,
     "{'error': [409, 'not_queued']}"},
    {"an attempt on a scheduled message", K(SCHEDULED(M1)),
     "{'type': 'RecordSendAttempt', 'message_id': '" M1 "', 'attempt': 1}", NULL,
     "{'error': [409, 'not_queued']}"},
    {"an attempt after an opt-out", K(QUEUED(M1) OPTED_OUT("sms")),
     "{'type': 'RecordSendAttempt', 'message_id': '" M1 "', 'attempt': 1}", NULL,
     "{'error': [409, 'opted_out']}"},
    {"an attempt without a number", K(QUEUED(M1)), "{'type': 'RecordSendAttempt', 'message_id': '" M1 "'}",
     NULL, "{'error': [400, 'invalid', 'attempt']}"},
    {"an attempt on an unknown message", BASE,
     "{'type': 'RecordSendAttempt', 'message_id': '" M1 "', 'attempt': 1}", NULL,
     "{'error': [404, 'unknown_message']}"},
    {"an attempt for a deleted contact", K(QUEUED(M1) DELETED("[]")),
     "{'type': 'RecordSendAttempt', 'message_id': '" M1 "', 'attempt': 1}", NULL,
     "{'error': [404, 'contact_deleted']}"},
    {"sent after attempts",
     K(QUEUED(M1) ", ['MessageSendAttempted', {'message_id': '" M1 "', 'attempt': 1}]"),
     "{'type': 'RecordMessageStatus', 'message_id': '" M1 "', 'status': 'sent', 'provider_id': 'SM1'}", NULL,
     "[['MessageSent', {'message_id': '" M1 "', 'provider_id': 'SM1'}]]"},
    /* RecordMessageStatus */
    {"sent", K(QUEUED(M1)),
     "{'type': 'RecordMessageStatus', 'message_id': '" M1 "', 'status': 'sent', 'provider_id': 'SM1'}", NULL,
     "[['MessageSent', {'message_id': '" M1 "', 'provider_id': 'SM1', 'at': '" T0 "'}]]"},
    {"sent without the provider's id", K(QUEUED(M1)), STATUS(M1, "sent"), NULL,
     "{'error': [400, 'required']}"},
    {"delivered", K(QUEUED(M1) SENT(M1)), STATUS(M1, "delivered"), NULL,
     "[['MessageDelivered', {'message_id': '" M1 "', 'provider_id': 'SM1'}]]"},
    {"delivered when 'sent' was lost", K(QUEUED(M1)),
     "{'type': 'RecordMessageStatus', 'message_id': '" M1 "', 'status': 'delivered', 'provider_id': 'SM1'}",
     NULL, "[['MessageDelivered', {'provider_id': 'SM1'}]]"},
    {"a late sent after delivered: nothing", K(QUEUED(M1) SENT(M1) DELIVERED(M1)),
     "{'type': 'RecordMessageStatus', 'message_id': '" M1 "', 'status': 'sent', 'provider_id': 'SM1'}", NULL,
     "[]"},
    {"sent twice: nothing", K(QUEUED(M1) SENT(M1)),
     "{'type': 'RecordMessageStatus', 'message_id': '" M1 "', 'status': 'sent', 'provider_id': 'SM1'}", NULL,
     "[]"},
    {"read", K(QUEUED(M1) SENT(M1) DELIVERED(M1)), STATUS(M1, "read"), NULL,
     "[['MessageRead', {'message_id': '" M1 "'}]]"},
    {"delivered after read: nothing", K(QUEUED(M1) SENT(M1) DELIVERED(M1) READ(M1)), STATUS(M1, "delivered"),
     NULL, "[]"},
    {"failed after delivered: nothing", K(QUEUED(M1) SENT(M1) DELIVERED(M1)), STATUS(M1, "failed"), NULL,
     "[]"},
    {"undelivered", K(QUEUED(M1) SENT(M1)),
     "{'type': 'RecordMessageStatus', 'message_id': '" M1
     "', 'status': 'undelivered', 'error_code': 30003, 'error': "
     "'Unreachable destination handset'}",
     NULL,
     "[['MessageFailed', {'message_id': '" M1
     "', 'status': 'undelivered', 'code': '30003', 'error': 'Unreachable "
     "destination handset', 'provider_id': 'SM1'}]]"},
    {"failed before sending", K(QUEUED(M1)),
     "{'type': 'RecordMessageStatus', 'message_id': '" M1 "', 'status': 'failed', 'error_code': '21211'}",
     NULL, "[['MessageFailed', {'status': 'failed', 'code': '21211', 'provider_id': null}]]"},
    {"delivered after failed: nothing", K(QUEUED(M1) FAILED(M1)), STATUS(M1, "delivered"), NULL, "[]"},
    {"failed twice: nothing", K(QUEUED(M1) FAILED(M1)), STATUS(M1, "failed"), NULL, "[]"},
    {"a status for a scheduled message", K(SCHEDULED(M1)),
     "{'type': 'RecordMessageStatus', 'message_id': '" M1 "', 'status': 'sent', 'provider_id': 'SM1'}", NULL,
     "{'error': [409, 'invalid_transition']}"},
    {"a status for a cancelled message", K(SCHEDULED(M1) CANCELLED(M1)), STATUS(M1, "delivered"), NULL,
     "{'error': [409, 'invalid_transition']}"},
    {"a status for an unknown message", BASE, STATUS(M1, "delivered"), NULL,
     "{'error': [404, 'unknown_message']}"},
    {"a status twilio reports that we do not record", K(QUEUED(M1)), STATUS(M1, "sending"), NULL,
     "{'error': [400, 'invalid']}"},
    {"an error code that is neither text nor number", K(QUEUED(M1)),
     "{'type': 'RecordMessageStatus', 'message_id': '" M1 "', 'status': 'failed', 'error_code': [1]}", NULL,
     "{'error': [400, 'invalid']}"},
    {"an inbound message is read", K(RECEIVED(M2, "SM2")), STATUS(M2, "read"), AGENT,
     "[['MessageRead', {'message_id': '" M2 "', 'by': '" AGENT "'}]]"},
    {"an inbound message read twice: nothing", K(RECEIVED(M2, "SM2") READ(M2)), STATUS(M2, "read"), AGENT,
     "[]"},
    {"an inbound message is never 'delivered'", K(RECEIVED(M2, "SM2")), STATUS(M2, "delivered"), NULL,
     "{'error': [409, 'invalid_transition']}"},
    /* ReceiveMessage */
    {"an inbound sms", BASE, RECV("'channel': 'sms', 'body': 'Hi!', 'provider_id': 'SM2'"), NULL,
     "[['MessageReceived', {'message_id': '" M2 "', 'channel': 'sms', 'direction': 'inbound', 'from': "
     "'+14155550100', 'to': '+14155550199', 'body': 'Hi!', 'media_urls': [], 'provider_id': 'SM2', "
     "'received_at': '" T0 "'}]]"},
    {"an inbound whatsapp", BASE,
     "{'type': 'ReceiveMessage', 'message_id': '" M2
     "', 'channel': 'whatsapp', 'from': 'whatsapp:+14155550100', "
     "'to': 'whatsapp:+14155550199', 'body': 'Hi', 'provider_id': 'SM2'}",
     NULL, "[['MessageReceived', {'from': '+14155550100', 'to': '+14155550199'}]]"},
    {"an inbound mms without words", BASE,
     RECV("'channel': 'mms', 'body': '', 'media_urls': ['https://api.twilio.com/media/ME1'], 'provider_id': "
          "'MM2'"),
     NULL, "[['MessageReceived', {'channel': 'mms', 'media_urls': ['https://api.twilio.com/media/ME1']}]]"},
    {"an inbound mms: media_url and media_urls together, the single one first", BASE,
     RECV("'channel': 'mms', 'body': '', 'media_urls': ['https://x.example/b'], 'media_url': "
          "'https://x.example/a', 'provider_id': 'MM2'"),
     NULL, "[['MessageReceived', {'media_urls': ['https://x.example/a', 'https://x.example/b']}]]"},
    {"an inbound media_url that is not a URL", BASE,
     RECV("'channel': 'mms', 'body': '', 'media_url': 'ftp://x.example/a', 'provider_id': 'MM2'"), NULL,
     "{'error': [400, 'invalid', 'media_urls']}"},
    {"an inbound e-mail", BASE,
     "{'type': 'ReceiveMessage', 'message_id': '" M2
     "', 'channel': 'email', 'from': 'Bea@Example.com', 'to': "
     "'hello@acme.example', 'subject': 'Re: quote', 'body': 'Yes please', 'provider_id': 'em_1'}",
     NULL, "[['MessageReceived', {'from': 'bea@example.com', 'subject': 'Re: quote'}]]"},
    {"twilio retried (same provider id): nothing", K(RECEIVED(M3, "SM2")),
     RECV("'channel': 'sms', 'body': 'Hi!', 'provider_id': 'SM2'"), NULL, "[]"},
    {"the same message id again: nothing", K(RECEIVED(M2, "SM7")),
     RECV("'channel': 'sms', 'body': 'Hi!', 'provider_id': 'SM8'"), NULL, "[]"},
    /* from_listed: the sender was named from a hint; the contact's own numbers decide. */
    {"from_listed: one of its numbers", BASE,
     RECV("'channel': 'sms', 'body': 'Hi', 'provider_id': 'SM2', 'from_listed': true"), NULL,
     "[['MessageReceived', {'from': '+14155550100'}]]"},
    {"from_listed: a number it does not have", BASE,
     "{'type': 'ReceiveMessage', 'message_id': '" M2
     "', 'from': '+14155550177', 'channel': 'sms', 'body': 'Hi', 'from_listed': true}",
     NULL, "{'error': [409, 'sender_not_listed']}"},
    {"from_listed false: any sender", BASE,
     "{'type': 'ReceiveMessage', 'message_id': '" M2
     "', 'from': '+14155550177', 'channel': 'sms', 'body': 'Hi', 'from_listed': false}",
     NULL, "[['MessageReceived', {'from': '+14155550177'}]]"},
    {"from_listed: an e-mail address it has (any case)", BASE,
     "{'type': 'ReceiveMessage', 'message_id': '" M2
     "', 'channel': 'email', 'from': 'BEA@example.com', 'body': 'Hi', 'from_listed': true}",
     NULL, "[['MessageReceived', {'from': 'bea@example.com'}]]"},
    {"from_listed: a deleted contact", K(DELETED("[]")),
     RECV("'channel': 'sms', 'body': 'Hi', 'provider_id': 'SM2', 'from_listed': true"), NULL,
     "{'error': [404, 'contact_deleted']}"},
    {"from_listed: a retry still answers nothing, whoever has the number now", K(RECEIVED(M3, "SM2")),
     "{'type': 'ReceiveMessage', 'message_id': '" M2
     "', 'from': '+14155550177', 'channel': 'sms', 'body': 'Hi', 'provider_id': 'SM2', 'from_listed': true}",
     NULL, "[]"},
    {"from_listed must be a boolean", BASE,
     RECV("'channel': 'sms', 'body': 'Hi', 'provider_id': 'SM2', 'from_listed': 1"), NULL,
     "{'error': [400, 'invalid']}"},
    {"nothing in it", BASE, RECV("'channel': 'sms', 'body': '', 'provider_id': 'SM2'"), NULL,
     "{'error': [400, 'required']}"},
    {"from a number that is not one", BASE,
     "{'type': 'ReceiveMessage', 'message_id': '" M2 "', 'channel': 'sms', 'from': 'abc', 'body': 'x'}", NULL,
     "{'error': [400, 'invalid_phone']}"},
    {"STOP opts out in the same decision", BASE,
     RECV("'channel': 'sms', 'body': ' Stop ', 'provider_id': 'SM2'"), NULL,
     "[['MessageReceived', {'body': ' Stop '}], ['ContactOptedOut', {'channel': 'sms', 'keyword': 'stop', "
     "'message_id': '" M2 "', 'by': null}]]"},
    {"UNSUBSCRIBE too", BASE, RECV("'channel': 'mms', 'body': 'UNSUBSCRIBE', 'provider_id': 'SM2'"), NULL,
     "[['MessageReceived', {}], ['ContactOptedOut', {'channel': 'sms', 'keyword': 'unsubscribe'}]]"},
    {"STOP in a sentence is just a message", BASE,
     RECV("'channel': 'sms', 'body': 'stop calling me after 5', 'provider_id': 'SM2'"), NULL,
     "[['MessageReceived', {}]]"},
    {"STOP when already out", K(OPTED_OUT("sms")),
     RECV("'channel': 'sms', 'body': 'STOP', 'provider_id': 'SM2'"), NULL, "[['MessageReceived', {}]]"},
    {"START opts back in", K(OPTED_OUT("sms")),
     RECV("'channel': 'sms', 'body': 'start', 'provider_id': 'SM2'"), NULL,
     "[['MessageReceived', {}], ['ContactOptedIn', {'channel': 'sms', 'keyword': 'start'}]]"},
    {"START when not out", BASE, RECV("'channel': 'sms', 'body': 'START', 'provider_id': 'SM2'"), NULL,
     "[['MessageReceived', {}]]"},
    {"STOP on whatsapp", BASE,
     "{'type': 'ReceiveMessage', 'message_id': '" M2
     "', 'channel': 'whatsapp', 'from': 'whatsapp:+14155550100', "
     "'body': 'stop', 'provider_id': 'SM2'}",
     NULL, "[['MessageReceived', {}], ['ContactOptedOut', {'channel': 'whatsapp'}]]"},
    {"STOP by e-mail is just a message", BASE,
     "{'type': 'ReceiveMessage', 'message_id': '" M2
     "', 'channel': 'email', 'from': 'bea@example.com', 'body': "
     "'STOP', 'provider_id': 'em1'}",
     NULL, "[['MessageReceived', {}]]"},
    /* Notes */
    {"a note with mentions", BASE,
     "{'type': 'AddNote', 'note_id': '" N1
     "', 'body': 'Ask @ana.a and @AdamAdmin, cc bob@example.com, @nobody and "
     "@olivia. Also @ana.a again'}",
     OWNER,
     "[['NoteAdded', {'note_id': '" N1 "', 'author_id': '" OWNER "', 'private': false, 'mentions': ['" AGENT
     "', '" ADMIN "', '" OWNER "'], 'at': '" T0 "'}]]"},
    {"a private note", BASE,
     "{'type': 'AddNote', 'note_id': '" N1 "', 'body': 'between us', 'private': true}", AGENT,
     "[['NoteAdded', {'private': true, 'mentions': []}]]"},
    {"private must be true or false", BASE,
     "{'type': 'AddNote', 'note_id': '" N1 "', 'body': 'x', 'private': 'yes'}", AGENT,
     "{'error': [400, 'invalid']}"},
    {"an empty note", BASE, "{'type': 'AddNote', 'note_id': '" N1 "', 'body': ''}", AGENT,
     "{'error': [400, 'required']}"},
    {"the same note again: nothing", K(NOTE(N1, AGENT)),
     "{'type': 'AddNote', 'note_id': '" N1 "', 'body': 'x'}", AGENT, "[]"},
    {"edit one's note", K(NOTE(N1, AGENT)), "{'type': 'EditNote', 'note_id': '" N1 "', 'body': 'ping @adam'}",
     AGENT,
     "[['NoteEdited', {'note_id': '" N1 "', 'body': 'ping @adam', 'mentions': ['" ADMIN "'], 'by': '" AGENT
     "'}]]"},
    {"edit someone else's note", K(NOTE(N1, AGENT)), "{'type': 'EditNote', 'note_id': '" N1 "', 'body': 'x'}",
     OWNER, "{'error': [403, 'not_author']}"},
    {"edit an unknown note", BASE, "{'type': 'EditNote', 'note_id': '" N1 "', 'body': 'x'}", AGENT,
     "{'error': [404, 'unknown_note']}"},
    {"delete one's note", K(NOTE(N1, AGENT)), "{'type': 'DeleteNote', 'note_id': '" N1 "'}", AGENT,
     "[['NoteDeleted', {'note_id': '" N1 "', 'by': '" AGENT "'}]]"},
    {"delete someone else's note", K(NOTE(N1, AGENT)), "{'type': 'DeleteNote', 'note_id': '" N1 "'}", ADMIN,
     "{'error': [403, 'not_author']}"},
    {"delete a deleted note", K(NOTE(N1, AGENT) ", ['NoteDeleted', {'note_id': '" N1 "'}]"),
     "{'type': 'DeleteNote', 'note_id': '" N1 "'}", AGENT, "{'error': [404, 'unknown_note']}"},
    {"the system may edit", K(NOTE(N1, AGENT)),
     "{'type': 'EditNote', 'note_id': '" N1 "', 'body': 'redacted'}", NULL, "[['NoteEdited', {'by': null}]]"},
};

/* ---- segments ---------------------------------------------------------------------------------- */

static char *repeat(const char *unit, int n)
{
    size_t len = strlen(unit);
    char *s = malloc(len * (size_t)n + 1);
    for (int i = 0; i < n; i++)
        memcpy(s + len * (size_t)i, unit, len);
    s[len * (size_t)n] = '\0';
    return s;
}

static void check_segments(void)
{
    static const struct {
        const char *unit;
        int n;
        int segments;
        const char *encoding;
    } rows[] = {
        {"a", 0, 1, "gsm7"},   {"a", 1, 1, "gsm7"},   {"a", 160, 1, "gsm7"},   {"a", 161, 2, "gsm7"},
        {"a", 306, 2, "gsm7"}, {"a", 307, 3, "gsm7"}, {"a", 1600, 11, "gsm7"}, {"@£$¥èéùìòÇ", 16, 1, "gsm7"},
        {"€", 80, 1, "gsm7"},                         /* the extension table takes two septets each */
        {"€", 81, 2, "gsm7"},  {"[", 153, 3, "gsm7"}, /* 76 per part: an escape never straddles */
        {"`", 1, 1, "ucs2"},                          /* the backtick is not in GSM-7 */
        {"ж", 70, 1, "ucs2"},  {"ж", 71, 2, "ucs2"},  {"ж", 134, 2, "ucs2"},   {"ж", 135, 3, "ucs2"},
        {"😀", 35, 1, "ucs2"},                        /* a surrogate pair each */
        {"😀", 36, 2, "ucs2"},  {"😀", 66, 2, "ucs2"}, /* 33 per part, never split */
        {"😀", 67, 3, "ucs2"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char *body = repeat(rows[i].unit, rows[i].n);
        const char *enc = NULL;
        int got = sb__sms_segments(body, &enc);
        if (got != rows[i].segments || strcmp(enc, rows[i].encoding) != 0)
            fprintf(stderr, "segments of %d x '%s': want %d %s, got %d %s\n", rows[i].n, rows[i].unit,
                    rows[i].segments, rows[i].encoding, got, enc);
        CHECK(got == rows[i].segments && strcmp(enc, rows[i].encoding) == 0);
        free(body);
    }
    /* One foreign character turns the whole message to UCS-2. */
    char *body = repeat("a", 100);
    char mixed[200];
    snprintf(mixed, sizeof mixed, "%sж", body);
    const char *enc;
    CHECK(sb__sms_segments(mixed, &enc) == 2 && strcmp(enc, "ucs2") == 0);
    free(body);
}

/* ---- body limits, pending limit, bounded state ---------------------------------------------------- */

typedef struct {
    json_t *state, *ctx;
    int64_t now;
} live_t;

static int live_decide(live_t *l, json_t *cmd, const char *user, sb_derror_t *err, int *nevents)
{
    sb_decide_ctx_t ctx = {.now_us = l->now += 1000000, .id = CONTACT, .user_id = user, .context = l->ctx};
    sb_devents_t out = {.n = 0};
    int rc = sb_kind_contact.decide(l->state, cmd, &ctx, &out, err);
    for (int i = 0; i < out.n; i++)
        sb_kind_contact.evolve(l->state, &out.items[i]);
    if (nevents)
        *nevents = out.n;
    sb_devents_clear(&out);
    json_decref(cmd);
    return rc;
}

static void live_init(live_t *l)
{
    json_t *given = jq(BASE);
    sb_devent_t evs[4];
    l->state = sb_fold(&sb_kind_contact, evs, given_events(given, evs, 4));
    l->ctx = jq(MEMBERS_CTX);
    l->now = h_time(T0);
    json_decref(given);
}

static void live_free(live_t *l)
{
    json_decref(l->state);
    json_decref(l->ctx);
}

static void id_of(int i, char out[37])
{
    snprintf(out, 37, "66666666-6666-7666-8666-%012d", i);
}

static void check_limits(void)
{
    live_t l;
    sb_derror_t err;
    char id[37];
    live_init(&l);
    /* Body: 1600 characters (not bytes) go, 1601 do not. */
    char *ok = repeat("ж", 1600), *long_body = repeat("a", 1601);
    id_of(1, id);
    CHECK(live_decide(&l,
                      json_pack("{s:s, s:s, s:s, s:s}", "type", "SendMessage", "message_id", id, "channel",
                                "sms", "body", ok),
                      AGENT, &err, NULL) == 0);
    id_of(2, id);
    CHECK(live_decide(&l,
                      json_pack("{s:s, s:s, s:s, s:s}", "type", "SendMessage", "message_id", id, "channel",
                                "sms", "body", long_body),
                      AGENT, &err, NULL) == SB_EREJECTED &&
          err.status == 400 && strcmp(err.field, "body") == 0);
    free(ok);
    free(long_body);
    /* Pending: at most SB_CONTACT_MAX_PENDING queued or scheduled at once. */
    int accepted = 1;
    for (int i = 10; i < 10 + SB_CONTACT_MAX_PENDING + 5; i++) {
        id_of(i, id);
        if (live_decide(&l,
                        json_pack("{s:s, s:s, s:s, s:s}", "type", "SendMessage", "message_id", id, "channel",
                                  "sms", "body", "hi"),
                        AGENT, &err, NULL) == 0)
            accepted++;
        else
            CHECK(err.status == 409 && strcmp(err.code, "too_many_pending") == 0);
    }
    CHECK(accepted == SB_CONTACT_MAX_PENDING);
    /* Once the outbox settles one, there is room again. */
    id_of(10, id);
    CHECK(live_decide(&l,
                      json_pack("{s:s, s:s, s:s, s:s}", "type", "RecordMessageStatus", "message_id", id,
                                "status", "sent", "provider_id", "SMx"),
                      NULL, &err, NULL) == 0);
    id_of(9999, id);
    CHECK(live_decide(&l,
                      json_pack("{s:s, s:s, s:s, s:s}", "type", "SendMessage", "message_id", id, "channel",
                                "sms", "body", "hi"),
                      AGENT, &err, NULL) == 0);
    live_free(&l);
}

/* The MessageReceived a ReceiveMessage decides is, byte for byte once encoded, the payload the
 * documented json_pack format builds (the decider shares strings with the command and uses constant
 * words instead of building each); and the state its evolve leaves (sharing the event's strings and
 * constant words) is the one a fresh copy of the event leaves. */
static void check_received_bytes(void)
{
    static const struct {
        const char *channel, *from, *to, *want_from, *want_to;
    } cases[] = {
        {"sms", "+14155550100", "+14155550199", "+14155550100", "+14155550199"},
        {"sms", "(415) 555-0100", NULL, "+14155550100", NULL},
        {"mms", "+14155550100", "415 555 0199", "+14155550100", "+14155550199"},
        {"whatsapp", "whatsapp:+14155550100", "whatsapp:+14155550199", "+14155550100", "+14155550199"},
        {"email", "Bea@Example.com", "hello@acme.example", "bea@example.com", "hello@acme.example"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        live_t l;
        live_init(&l);
        char id[37], pid[16], now[SB_RFC3339_LEN];
        id_of((int)c + 1, id);
        snprintf(pid, sizeof pid, "SM%zu", c);
        for (int round = 0; round < 2; round++) { /* twice: the constant words outlive the first */
            json_t *cmd =
                json_pack("{s:s, s:s, s:s, s:s, s:s?, s:s, s:s, s:b}", "type", "ReceiveMessage", "message_id",
                          id, "channel", cases[c].channel, "from", cases[c].from, "to", cases[c].to, "body",
                          "Hi there", "provider_id", pid, "from_listed", 0);
            sb_decide_ctx_t ctx = {.now_us = l.now + round, .id = CONTACT, .context = l.ctx};
            sb_devents_t out = {.n = 0};
            sb_derror_t err;
            bool decided = sb_kind_contact.decide(l.state, cmd, &ctx, &out, &err) == 0 && out.n == 1;
            CHECK(decided);
            if (!decided) {
                json_decref(cmd);
                sb_devents_clear(&out);
                break;
            }
            json_decref(cmd); /* the event keeps what it shares */
            sb_clock_format_rfc3339(ctx.now_us, now);
            json_t *want =
                json_pack("{s:s, s:s, s:s, s:s, s:s?, s:s, s:o, s:s?, s:s?, s:s}", "message_id", id,
                          "channel", cases[c].channel, "direction", "inbound", "from", cases[c].want_from,
                          "to", cases[c].want_to, "body", "Hi there", "media_urls", json_array(), "subject",
                          NULL, "provider_id", pid, "received_at", now);
            sb_buf_t a = SB_BUF_INIT, b = SB_BUF_INIT;
            CHECK(sb_codec_from_jansson(out.items[0].data, &a) == 0);
            CHECK(sb_codec_from_jansson(want, &b) == 0);
            CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
            /* Evolve with the event as decided, and with a copy sharing nothing. */
            json_t *shared = json_deep_copy(l.state), *fresh = json_deep_copy(l.state);
            sb_devent_t copy = out.items[0];
            char *text = json_dumps(out.items[0].data, JSON_PRESERVE_ORDER);
            copy.data = json_loads(text, 0, NULL);
            free(text);
            sb_kind_contact.evolve(shared, &out.items[0]);
            sb_kind_contact.evolve(fresh, &copy);
            json_decref(copy.data);
            sb_devents_clear(&out);
            char *s1 = json_dumps(shared, JSON_PRESERVE_ORDER | JSON_COMPACT);
            char *s2 = json_dumps(fresh, JSON_PRESERVE_ORDER | JSON_COMPACT);
            CHECK(strcmp(s1, s2) == 0);
            free(s1);
            free(s2);
            json_decref(shared);
            json_decref(fresh);
            json_decref(want);
            sb_buf_free(&a);
            sb_buf_free(&b);
        }
        live_free(&l);
    }
}

/* A contact with 100,000 messages keeps a bounded state: pending messages, the newest settled ones
 * and the newest inbound provider ids. */
static void check_bounded(void)
{
    live_t l;
    sb_derror_t err;
    char id[37], pid[32];
    live_init(&l);
    size_t largest = 0;
    for (int i = 0; i < 100000; i++) {
        id_of(i, id);
        json_t *cmd;
        if (i % 2 == 0) {
            snprintf(pid, sizeof pid, "SM%08d", i);
            cmd = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "type", "ReceiveMessage", "message_id", id,
                            "channel", "sms", "from", "+14155550100", "body", "hello", "provider_id", pid);
        } else if (i % 4 == 1) {
            cmd = json_pack("{s:s, s:s, s:s, s:s}", "type", "SendMessage", "message_id", id, "channel", "sms",
                            "body", "hi");
        } else {
            /* The outcome of the send just before. */
            id_of(i - 2, id);
            cmd = json_pack("{s:s, s:s, s:s, s:s}", "type", "RecordMessageStatus", "message_id", id, "status",
                            "delivered", "provider_id", "SMout");
        }
        CHECK(live_decide(&l, cmd, NULL, &err, NULL) == 0);
        if (i % 5000 == 4999) {
            char *s = dump(l.state);
            if (strlen(s) > largest)
                largest = strlen(s);
            free(s);
        }
    }
    CHECK(json_object_size(json_object_get(l.state, "messages")) <= SB_CONTACT_SETTLED_WINDOW + 1);
    CHECK(json_array_size(json_object_get(l.state, "settled")) == SB_CONTACT_SETTLED_WINDOW);
    CHECK(json_array_size(json_object_get(l.state, "provider_ids")) == SB_CONTACT_PROVIDER_WINDOW);
    CHECK(largest < 200000);
    fprintf(stderr, "contact with 100000 messages: largest state %zu bytes\n", largest);
    /* A retry of a recent inbound message is still recognised... */
    id_of(200000, id);
    int n = -1;
    CHECK(live_decide(&l,
                      json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "type", "ReceiveMessage", "message_id", id,
                                "channel", "sms", "from", "+14155550100", "body", "hello", "provider_id",
                                "SM00099998"),
                      NULL, &err, &n) == 0);
    CHECK(n == 0);
    /* ...and a status for a message settled long ago is unknown (the webhook answers 200 anyway). */
    id_of(1, id);
    CHECK(live_decide(
              &l,
              json_pack("{s:s, s:s, s:s}", "type", "RecordMessageStatus", "message_id", id, "status", "read"),
              NULL, &err, NULL) == SB_EREJECTED &&
          err.status == 404);
    live_free(&l);
}

/* ---- the provider-id index ------------------------------------------------------------------------ */

/* Decides cmd (released) on *state as the runtime would, appending each event to log as [type, data]. */
static int logged_decide(json_t *state, json_t *log, json_t *cmd, int64_t now, int *nevents)
{
    sb_decide_ctx_t ctx = {.now_us = now, .id = CONTACT, .context = NULL};
    sb_devents_t out = {.n = 0};
    sb_derror_t err;
    int rc = sb_kind_contact.decide(state, cmd, &ctx, &out, &err);
    for (int i = 0; i < out.n; i++) {
        sb_kind_contact.evolve(state, &out.items[i]);
        json_array_append_new(log, json_pack("[s, O]", out.items[i].type, out.items[i].data));
    }
    *nevents = out.n;
    sb_devents_clear(&out);
    json_decref(cmd);
    return rc;
}

static json_t *inbound(int n, const char *pid)
{
    char id[37];
    id_of(n, id);
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "type", "ReceiveMessage", "message_id", id, "channel",
                     "sms", "from", "+14155550100", "body", "hello", "provider_id", pid);
}

/* Events decided by a new inbound message (id n) with provider id pid on state (not changed). */
static int events_for(const json_t *state, int n, const char *pid)
{
    json_t *copy = json_deep_copy(state), *log = json_array();
    int k = -1;
    CHECK(logged_decide(copy, log, inbound(n, pid), h_time(T0), &k) == 0);
    json_decref(copy);
    json_decref(log);
    return k;
}

/* The state as a snapshot stores it, read back. */
static json_t *snapshot_of(const json_t *state)
{
    char *s = dump(state);
    json_t *j = json_loads(s, 0, NULL);
    free(s);
    return j;
}

/* Whether every state answers pid the same: 0 events (a duplicate) or 1 (a new message). */
static void check_same_answer(json_t *const *states, int n, const char *pid, int want)
{
    for (int i = 0; i < n; i++)
        CHECK(events_for(states[i], 900000, pid) == want);
}

/* The index answers what the list answers, in a live actor, one rebuilt from its snapshot, one
 * folded from its log, and one from before the index (list only); also when a log holds an id twice
 * and the window forgets one copy. */
static void check_provider_index(void)
{
    json_t *given = jq(BASE);
    sb_devent_t evs[4];
    json_t *state = sb_fold(&sb_kind_contact, evs, given_events(given, evs, 4));
    json_t *log = json_array();
    json_array_extend(log, given);
    char pid[32];
    int k = -1, n = 0;
    /* "SMdup" twice (two message ids, as a log written around a decider could hold it), then enough
     * ids to push the first copy out of the window. */
    for (int i = 0; i < 2; i++) {
        char id[37];
        id_of(500000 + i, id);
        sb_devent_t ev = {.type = "MessageReceived",
                          .data = json_pack("{s:s, s:s, s:s, s:s, s:s}", "message_id", id, "channel", "sms",
                                            "direction", "inbound", "from", "+14155550100", "provider_id",
                                            "SMdup")};
        sb_kind_contact.evolve(state, &ev);
        json_array_append_new(log, json_pack("[s, o]", ev.type, ev.data));
    }
    CHECK(json_integer_value(json_object_get(json_object_get(state, "provider_index"), "SMdup")) == 2);
    for (n = 0; n < SB_CONTACT_PROVIDER_WINDOW - 1; n++) {
        snprintf(pid, sizeof pid, "SM%08d", n);
        CHECK(logged_decide(state, log, inbound(n, pid), h_time(T0) + n, &k) == 0 && k == 1);
    }
    /* The first "SMdup" left the window, the second is still in it. */
    CHECK(json_is_true(json_object_get(json_object_get(state, "provider_index"), "SMdup")));
    CHECK(json_array_size(json_object_get(state, "provider_ids")) == SB_CONTACT_PROVIDER_WINDOW);
    CHECK(json_object_size(json_object_get(state, "provider_index")) == SB_CONTACT_PROVIDER_WINDOW);

    json_t *snap = snapshot_of(state);
    sb_devent_t *all = calloc(json_array_size(log), sizeof(*all));
    json_t *folded = sb_fold(&sb_kind_contact, all, given_events(log, all, (int)json_array_size(log)));
    json_t *before = json_deep_copy(state);
    json_object_del(before, "provider_index");
    char *a = dump(state), *b = dump(folded), *c = dump(snap);
    CHECK(strcmp(a, b) == 0 && strcmp(a, c) == 0);
    free(a);
    free(b);
    free(c);

    json_t *states[] = {state, snap, folded, before};
    check_same_answer(states, 4, "SMdup", 0);
    check_same_answer(states, 4, "SM00000000", 0);
    check_same_answer(states, 4, "SM00001022", 0);
    check_same_answer(states, 4, "SMnew", 1);
    /* One more id each: "SMdup" leaves the window altogether and becomes new; the oldest numbered id
     * is still there; the state from before the index gets its index, the same as the others'. */
    for (int i = 0; i < 4; i++) {
        json_t *scratch = json_array();
        CHECK(logged_decide(states[i], scratch, inbound(n, "SMlast"), h_time(T0) + n, &k) == 0 && k == 1);
        json_decref(scratch);
    }
    check_same_answer(states, 4, "SMdup", 1);
    check_same_answer(states, 4, "SM00000000", 0);
    check_same_answer(states, 4, "SMlast", 0);
    CHECK(json_object_get(json_object_get(before, "provider_index"), "SMdup") == NULL);
    a = dump(state);
    b = dump(before);
    CHECK(strcmp(a, b) == 0);
    free(a);
    free(b);
    CHECK(json_object_size(json_object_get(state, "provider_index")) == SB_CONTACT_PROVIDER_WINDOW);

    free(all);
    json_decref(before);
    json_decref(folded);
    json_decref(snap);
    json_decref(state);
    json_decref(log);
    json_decref(given);
}

/* ---- property ------------------------------------------------------------------------------------ */

/* Received inbound messages share one entry per channel (contact_messages.c): a change to one
 * contact's message (read, or any event naming it) copies the entry first, so no other message of
 * that contact or of another one changes with it. */
static const char *entry_status(const json_t *state, const char *id)
{
    return json_string_value(
        json_object_get(json_object_get(json_object_get(state, "messages"), id), "status"));
}

static void apply(json_t *state, const char *type, json_t *data)
{
    sb_devent_t ev = {.type = type, .data = data};
    sb_kind_contact.evolve(state, &ev);
    json_decref(data);
}

static void check_shared_entries(void)
{
    live_t a, b;
    sb_derror_t err;
    char id1[37], id2[37], id3[37];
    live_init(&a);
    live_init(&b);
    id_of(1, id1);
    id_of(2, id2);
    id_of(3, id3);
    const char *ids[] = {id1, id2};
    for (int i = 0; i < 2; i++) {
        char pid[16];
        snprintf(pid, sizeof pid, "SM%d", i);
        CHECK(live_decide(&a, inbound(i + 1, pid), NULL, &err, NULL) == 0);
        CHECK(live_decide(&b, inbound(i + 1, pid), NULL, &err, NULL) == 0);
        CHECK(sb__eq(entry_status(a.state, ids[i]), "received") &&
              sb__eq(entry_status(b.state, ids[i]), "received"));
    }
    /* The agent reads a's first message: only that entry moves. */
    CHECK(live_decide(&a,
                      json_pack("{s:s, s:s, s:s}", "type", "RecordMessageStatus", "message_id", id1, "status",
                                "read"),
                      OWNER, &err, NULL) == 0);
    CHECK(sb__eq(entry_status(a.state, id1), "read"));
    CHECK(sb__eq(entry_status(a.state, id2), "received"));
    CHECK(sb__eq(entry_status(b.state, id1), "received") && sb__eq(entry_status(b.state, id2), "received"));
    /* Events a log may hold against an inbound message's id change that entry alone. */
    apply(b.state, "MessageSendAttempted",
          json_pack("{s:s, s:i, s:s}", "message_id", id1, "attempt", 1, "at", T0));
    apply(b.state, "MessageDelivered",
          json_pack("{s:s, s:s, s:s}", "message_id", id2, "provider_id", "SMx", "at", T0));
    CHECK(json_integer_value(
              json_object_get(json_object_get(json_object_get(b.state, "messages"), id1), "attempts")) == 1);
    CHECK(sb__eq(entry_status(b.state, id2), "delivered"));
    CHECK(json_object_get(json_object_get(json_object_get(a.state, "messages"), id1), "attempts") == NULL);
    CHECK(sb__eq(entry_status(a.state, id2), "received"));
    /* A new message after all that is received, on either contact. */
    CHECK(live_decide(&a, inbound(3, "SM3"), NULL, &err, NULL) == 0);
    CHECK(live_decide(&b, inbound(3, "SM3"), NULL, &err, NULL) == 0);
    CHECK(sb__eq(entry_status(a.state, id3), "received") && sb__eq(entry_status(b.state, id3), "received"));
    const json_t *e = json_object_get(json_object_get(a.state, "messages"), id3);
    CHECK(json_object_size(e) == 3 && sb__eq(sb__str(e, "channel"), "sms") &&
          sb__eq(sb__str(e, "direction"), "inbound"));
    /* So does a cancellation a log may hold for one (decide lists only scheduled messages). */
    apply(a.state, "ContactDeleted", json_pack("{s:[s]}", "cancelled_message_ids", id3));
    CHECK(sb__eq(entry_status(a.state, id3), "cancelled") && sb__eq(entry_status(b.state, id3), "received"));
    live_free(&a);
    live_free(&b);
}

static int next_id;
static const char *const users[] = {OWNER, ADMIN, AGENT};

/* A message id this contact has seen (or a fresh one now and then). */
static void some_message(const json_t *state, char out[37])
{
    const json_t *messages = json_object_get(state, "messages");
    size_t n = json_object_size(messages);
    if (n == 0 || h_rand(10) == 0) {
        id_of(h_rand((uint32_t)next_id + 1), out);
        return;
    }
    size_t pick = h_rand((uint32_t)n), i = 0;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)messages, k, v)
    {
        if (i++ == pick) {
            snprintf(out, 37, "%s", k);
            return;
        }
    }
}

static json_t *gen(const json_t *state, int step, const char **user)
{
    static const char *const channels[] = {"sms", "whatsapp", "email", "chat", "mms"};
    static const char *const statuses[] = {"sent", "delivered", "read", "failed", "undelivered"};
    static const char *const bodies[] = {"Hi", "STOP", "start", "Olá 👋", "see you @ana.a"};
    static const char *const tags[] = {"vip", "VIP", "new", "hot"};
    static const char *const stages[] = {"Lead", "Qualified", "won", "Lost"};
    char id[37];
    *user = h_rand(4) ? users[h_rand(3)] : NULL;
    if (step == 0)
        return json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", "CreateContact", "workspace_id", WS, "name",
                         "Bea", "phone", "+14155550100", "email", "bea@example.com");
    switch (h_rand(16)) {
    case 0:
    case 1:
    case 2: {
        id_of(++next_id, id);
        char at[SB_RFC3339_LEN];
        sb_clock_format_rfc3339(h_time(T0) + (int64_t)step * 30000000 + (int64_t)h_rand(3600) * 1000000, at);
        return json_pack("{s:s, s:s, s:s, s:s, s:s?}", "type", "SendMessage", "message_id", id, "channel",
                         channels[h_rand(5)], "body", bodies[h_rand(5)], "send_at", h_rand(3) ? NULL : at);
    }
    case 3:
    case 4: {
        id_of(++next_id, id);
        char pid[16];
        snprintf(pid, sizeof pid, "SM%u", h_rand(400)); /* repeats: provider retries */
        return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "type", "ReceiveMessage", "message_id", id,
                         "channel", h_rand(2) ? "sms" : "whatsapp", "from", "+14155550100", "body",
                         bodies[h_rand(5)], "provider_id", pid);
    }
    case 5:
    case 6:
    case 7:
        some_message(state, id);
        return json_pack("{s:s, s:s, s:s, s:s}", "type", "RecordMessageStatus", "message_id", id, "status",
                         statuses[h_rand(5)], "provider_id", "SM-out");
    case 8:
        some_message(state, id);
        return json_pack("{s:s, s:s}", "type",
                         h_rand(2) ? "DispatchScheduledMessage" : "CancelScheduledMessage", "message_id", id);
    case 9:
        return json_pack("{s:s, s:s}", "type", h_rand(2) ? "TagContact" : "UntagContact", "tag",
                         tags[h_rand(4)]);
    case 10:
        return json_pack("{s:s, s:s}", "type", "ChangeStage", "stage", stages[h_rand(4)]);
    case 11:
        return json_pack("{s:s, s:s?}", "type", "AssignContact", "assignee_id",
                         h_rand(4) ? users[h_rand(3)] : NULL);
    case 12:
        return json_pack("{s:s, s:s}", "type", h_rand(2) ? "OptOutContact" : "OptInContact", "channel",
                         channels[h_rand(3)]);
    case 13:
        return json_pack("{s:s, s:s, s:[s], s:s}", "type", "UpdateContact", "name",
                         h_rand(2) ? "Bea" : "Bea Lima", "phones",
                         h_rand(2) ? "+14155550100" : "+14155550101", "email", "bea@example.com");
    case 14:
        id_of(h_rand(2) ? ++next_id : 700000 + (int)h_rand(20), id);
        return json_pack("{s:s, s:s, s:s, s:b}", "type", "AddNote", "note_id", id, "body", bodies[h_rand(5)],
                         "private", h_rand(2));
    default:
        id_of(700000 + (int)h_rand(20), id);
        return json_pack("{s:s, s:s, s:s}", "type", h_rand(2) ? "EditNote" : "DeleteNote", "note_id", id,
                         "body", "edited");
    }
}

int main(void)
{
    run_cases(&sb_kind_contact, cases, sizeof cases / sizeof cases[0], MEMBERS_CTX, CONTACT);
    check_segments();
    check_limits();
    check_received_bytes();
    check_bounded();
    check_shared_entries();
    check_provider_index();
    CHECK(run_property(&sb_kind_contact, gen, MEMBERS_CTX, CONTACT, 5000, 2024, 200000) > 2000);
    return h_finish("contact");
}
