/* The workspace decider: given events, when a command, then events or a rejection. */
#include "decider_harness.h"

#define AC "AC0123456789abcdef0123456789abcdef"
#define SK "SK0123456789abcdef0123456789abcdef"
#define AP "AP0123456789abcdef0123456789abcdef"
#define PN1 "PN0123456789abcdef0123456789abcdef"
#define PN2 "PN1123456789abcdef0123456789abcdef"

/* A workspace with an owner, an admin and an agent. */
#define TEAM                                                                                                 \
    "['WorkspaceCreated', {'workspace_id': '" WS "', 'name': 'Acme', 'owner_id': '" OWNER                    \
    "', 'default_country': 'US'}], "                                                                         \
    "['MemberAdded', {'user_id': '" OWNER                                                                    \
    "', 'role': 'owner', 'email': 'olivia@example.com', 'name': 'Olivia'}], "                                \
    "['MemberAdded', {'user_id': '" ADMIN                                                                    \
    "', 'role': 'admin', 'email': 'adam@example.com', 'name': 'Adam'}], "                                    \
    "['MemberAdded', {'user_id': '" AGENT "', 'role': 'agent', 'email': 'ana@example.com', 'name': 'Ana'}]"
#define G(extra) "[" TEAM extra "]"
#define BASE G("")
#define TWILIO                                                                                               \
    ", ['TwilioConfigured', {'account_sid': '" AC "', 'api_key_sid': '" SK "', 'twiml_app_sid': '" AP        \
    "', 'secret_ref': 'vault:1'}]"
#define NUMBER ", ['PhoneNumberAdded', {'number': '+14155550100', 'sid': '" PN1 "', 'assigned_to': null}]"
#define STAGES                                                                                               \
    ", ['PipelineStageAdded', {'name': 'Lead', 'position': 0}], ['PipelineStageAdded', {'name': 'Won', "     \
    "'position': 1}]"
#define RULE ", ['AutoReplyRuleSet', {'keyword': 'hours', 'reply': 'We open at 9.'}]"

static const dcase_t cases[] = {
    /* CreateWorkspace */
    {"create", NULL,
     "{'type': 'CreateWorkspace', 'name': ' Acme ', 'owner_email': 'Olivia@Example.com', 'owner_name': "
     "'Olivia'}",
     OWNER,
     "[['WorkspaceCreated', {'workspace_id': '" WS "', 'name': 'Acme', 'owner_id': '" OWNER
     "', 'default_country': 'US', 'created_at': '" T0 "'}], ['MemberAdded', {'user_id': '" OWNER
     "', 'role': 'owner', 'email': 'olivia@example.com', 'name': 'Olivia'}]]"},
    {"create in Britain", NULL,
     "{'type': 'CreateWorkspace', 'name': 'Acme', 'owner_email': 'o@example.com', 'default_country': 'gb'}",
     OWNER, "[['WorkspaceCreated', {'default_country': 'GB'}], ['MemberAdded', {'role': 'owner'}]]"},
    {"create by the system names the owner", NULL,
     "{'type': 'CreateWorkspace', 'name': 'Acme', 'owner_id': '" OWNER2 "', 'owner_email': 'o@example.com'}",
     NULL, "[['WorkspaceCreated', {'owner_id': '" OWNER2 "'}], ['MemberAdded', {'user_id': '" OWNER2 "'}]]"},
    {"create by the system without an owner", NULL,
     "{'type': 'CreateWorkspace', 'name': 'Acme', 'owner_email': 'o@example.com'}", NULL,
     "{'error': [400, 'required']}"},
    {"create twice", BASE, "{'type': 'CreateWorkspace', 'name': 'Acme', 'owner_email': 'o@example.com'}",
     OWNER, "{'error': [409, 'workspace_exists']}"},
    {"create with an unknown country", NULL,
     "{'type': 'CreateWorkspace', 'name': 'Acme', 'owner_email': 'o@example.com', 'default_country': 'XX'}",
     OWNER, "{'error': [400, 'invalid_country']}"},
    {"create with a country that is not a code", NULL,
     "{'type': 'CreateWorkspace', 'name': 'Acme', 'owner_email': 'o@example.com', 'default_country': 'USA'}",
     OWNER, "{'error': [400, 'invalid_country']}"},
    {"create with a blank name", NULL,
     "{'type': 'CreateWorkspace', 'name': '  ', 'owner_email': 'o@example.com'}", OWNER,
     "{'error': [400, 'required']}"},
    {"create with a bad owner email", NULL, "{'type': 'CreateWorkspace', 'name': 'Acme', 'owner_email': 'o'}",
     OWNER, "{'error': [400, 'invalid_email']}"},
    {"commands before creation", NULL, "{'type': 'RenameWorkspace', 'name': 'B'}", OWNER,
     "{'error': [404, 'workspace_not_found']}"},
    {"unknown command", BASE, "{'type': 'Explode'}", OWNER, "{'error': [400, 'unknown_command']}"},
    /* RenameWorkspace */
    {"rename", BASE, "{'type': 'RenameWorkspace', 'name': 'Acme Ltd'}", ADMIN,
     "[['WorkspaceRenamed', {'name': 'Acme Ltd'}]]"},
    {"rename to the same name", BASE, "{'type': 'RenameWorkspace', 'name': 'Acme'}", ADMIN, "[]"},
    {"agents cannot rename", BASE, "{'type': 'RenameWorkspace', 'name': 'X'}", AGENT,
     "{'error': [403, 'forbidden']}"},
    {"strangers cannot rename", BASE, "{'type': 'RenameWorkspace', 'name': 'X'}", STRANGER,
     "{'error': [403, 'not_member']}"},
    /* AddMember */
    {"admin adds an agent", BASE,
     "{'type': 'AddMember', 'user_id': '" STRANGER
     "', 'role': 'agent', 'email': 'Sam@Example.com', 'name': 'Sam'}",
     ADMIN,
     "[['MemberAdded', {'user_id': '" STRANGER
     "', 'role': 'agent', 'email': 'sam@example.com', 'name': 'Sam', 'added_by': '" ADMIN "'}]]"},
    {"add again with the same role: nothing", BASE,
     "{'type': 'AddMember', 'user_id': '" AGENT "', 'role': 'agent', 'email': 'ana@example.com'}", OWNER,
     "[]"},
    {"add again with another role", BASE,
     "{'type': 'AddMember', 'user_id': '" AGENT "', 'role': 'admin', 'email': 'ana@example.com'}", OWNER,
     "{'error': [409, 'already_member']}"},
    {"agents cannot add members", BASE,
     "{'type': 'AddMember', 'user_id': '" STRANGER "', 'role': 'agent', 'email': 's@example.com'}", AGENT,
     "{'error': [403, 'forbidden']}"},
    {"admins cannot add owners", BASE,
     "{'type': 'AddMember', 'user_id': '" STRANGER "', 'role': 'owner', 'email': 's@example.com'}", ADMIN,
     "{'error': [403, 'forbidden']}"},
    {"owners can add owners", BASE,
     "{'type': 'AddMember', 'user_id': '" STRANGER "', 'role': 'owner', 'email': 's@example.com'}", OWNER,
     "[['MemberAdded', {'role': 'owner'}]]"},
    {"unknown role", BASE,
     "{'type': 'AddMember', 'user_id': '" STRANGER "', 'role': 'boss', 'email': 's@example.com'}", OWNER,
     "{'error': [400, 'invalid']}"},
    {"member id must be a uuid", BASE,
     "{'type': 'AddMember', 'user_id': 'sam', 'role': 'agent', 'email': 's@example.com'}", OWNER,
     "{'error': [400, 'invalid']}"},
    {"member email must be valid", BASE,
     "{'type': 'AddMember', 'user_id': '" STRANGER "', 'role': 'agent', 'email': 'nope'}", OWNER,
     "{'error': [400, 'invalid_email']}"},
    /* RemoveMember */
    {"admin removes an agent", BASE, "{'type': 'RemoveMember', 'user_id': '" AGENT "'}", ADMIN,
     "[['MemberRemoved', {'user_id': '" AGENT "', 'role': 'agent'}]]"},
    {"an agent leaves", BASE, "{'type': 'RemoveMember', 'user_id': '" AGENT "'}", AGENT,
     "[['MemberRemoved', {'user_id': '" AGENT "'}]]"},
    {"an agent cannot remove others", BASE, "{'type': 'RemoveMember', 'user_id': '" ADMIN "'}", AGENT,
     "{'error': [403, 'forbidden']}"},
    {"an admin cannot remove an owner",
     G(", ['MemberAdded', {'user_id': '" OWNER2 "', 'role': 'owner', 'email': 'o2@example.com'}]"),
     "{'type': 'RemoveMember', 'user_id': '" OWNER "'}", ADMIN, "{'error': [403, 'forbidden']}"},
    {"the last owner cannot be removed", BASE, "{'type': 'RemoveMember', 'user_id': '" OWNER "'}", NULL,
     "{'error': [409, 'last_owner']}"},
    {"the last owner cannot leave", BASE, "{'type': 'RemoveMember', 'user_id': '" OWNER "'}", OWNER,
     "{'error': [409, 'last_owner']}"},
    {"one of two owners can be removed",
     G(", ['MemberAdded', {'user_id': '" OWNER2 "', 'role': 'owner', 'email': 'o2@example.com'}]"),
     "{'type': 'RemoveMember', 'user_id': '" OWNER "'}", OWNER2,
     "[['MemberRemoved', {'user_id': '" OWNER "', 'role': 'owner'}]]"},
    {"remove a non-member", BASE, "{'type': 'RemoveMember', 'user_id': '" STRANGER "'}", OWNER,
     "{'error': [404, 'unknown_member']}"},
    {"a removed member is gone", G(", ['MemberRemoved', {'user_id': '" AGENT "'}]"),
     "{'type': 'RenameWorkspace', 'name': 'X'}", AGENT, "{'error': [403, 'not_member']}"},
    /* ChangeMemberRole */
    {"promote an agent", BASE, "{'type': 'ChangeMemberRole', 'user_id': '" AGENT "', 'role': 'admin'}", ADMIN,
     "[['MemberRoleChanged', {'user_id': '" AGENT "', 'from': 'agent', 'to': 'admin'}]]"},
    {"same role: nothing", BASE, "{'type': 'ChangeMemberRole', 'user_id': '" AGENT "', 'role': 'agent'}",
     ADMIN, "[]"},
    {"admins cannot make owners", BASE,
     "{'type': 'ChangeMemberRole', 'user_id': '" AGENT "', 'role': 'owner'}", ADMIN,
     "{'error': [403, 'forbidden']}"},
    {"admins cannot demote owners",
     G(", ['MemberAdded', {'user_id': '" OWNER2 "', 'role': 'owner', 'email': 'o2@example.com'}]"),
     "{'type': 'ChangeMemberRole', 'user_id': '" OWNER "', 'role': 'agent'}", ADMIN,
     "{'error': [403, 'forbidden']}"},
    {"the last owner cannot be demoted", BASE,
     "{'type': 'ChangeMemberRole', 'user_id': '" OWNER "', 'role': 'admin'}", OWNER,
     "{'error': [409, 'last_owner']}"},
    {"an owner of two can step down",
     G(", ['MemberAdded', {'user_id': '" OWNER2 "', 'role': 'owner', 'email': 'o2@example.com'}]"),
     "{'type': 'ChangeMemberRole', 'user_id': '" OWNER "', 'role': 'admin'}", OWNER,
     "[['MemberRoleChanged', {'from': 'owner', 'to': 'admin'}]]"},
    {"a demoted owner counts no more",
     G(", ['MemberAdded', {'user_id': '" OWNER2 "', 'role': 'owner', 'email': 'o2@example.com'}], "
       "['MemberRoleChanged', {'user_id': '" OWNER "', 'from': 'owner', 'to': 'admin'}]"),
     "{'type': 'ChangeMemberRole', 'user_id': '" OWNER2 "', 'role': 'agent'}", OWNER2,
     "{'error': [409, 'last_owner']}"},
    {"role of a non-member", BASE, "{'type': 'ChangeMemberRole', 'user_id': '" STRANGER "', 'role': 'agent'}",
     OWNER, "{'error': [404, 'unknown_member']}"},
    /* ConfigureTwilio / ClearTwilio */
    {"configure twilio", BASE,
     "{'type': 'ConfigureTwilio', 'account_sid': '" AC "', 'api_key_sid': '" SK "', 'twiml_app_sid': '" AP
     "', 'secret_ref': 'vault:1'}",
     ADMIN,
     "[['TwilioConfigured', {'account_sid': '" AC "', 'api_key_sid': '" SK "', 'twiml_app_sid': '" AP
     "', 'secret_ref': 'vault:1'}]]"},
    {"configure the account first, the key and app later", BASE,
     "{'type': 'ConfigureTwilio', 'account_sid': '" AC "', 'secret_ref': 'vault:1'}", NULL,
     "[['TwilioConfigured', {'account_sid': '" AC "', 'api_key_sid': null, 'twiml_app_sid': null}]]"},
    {"configure the same again: nothing", G(TWILIO),
     "{'type': 'ConfigureTwilio', 'account_sid': '" AC "', 'api_key_sid': '" SK "', 'twiml_app_sid': '" AP
     "', 'secret_ref': 'vault:1'}",
     ADMIN, "[]"},
    {"a raw auth token is refused", BASE,
     "{'type': 'ConfigureTwilio', 'account_sid': '" AC "', 'secret_ref': '0123456789abcdef0123456789abcdef'}",
     ADMIN, "{'error': [400, 'secret_not_sealed']}"},
    {"a bad account sid", BASE,
     "{'type': 'ConfigureTwilio', 'account_sid': 'AC123', 'secret_ref': 'vault:1'}", ADMIN,
     "{'error': [400, 'invalid']}"},
    {"a key sid with the wrong prefix", BASE,
     "{'type': 'ConfigureTwilio', 'account_sid': '" AC "', 'api_key_sid': '" AP "', 'secret_ref': 'vault:1'}",
     ADMIN, "{'error': [400, 'invalid']}"},
    {"agents cannot configure", BASE,
     "{'type': 'ConfigureTwilio', 'account_sid': '" AC "', 'secret_ref': 'vault:1'}", AGENT,
     "{'error': [403, 'forbidden']}"},
    {"clear twilio lists the numbers it drops", G(TWILIO NUMBER), "{'type': 'ClearTwilio'}", OWNER,
     "[['TwilioCleared', {'numbers': ['+14155550100']}]]"},
    {"clear when nothing is configured: nothing", BASE, "{'type': 'ClearTwilio'}", OWNER, "[]"},
    {"cleared numbers are gone", G(TWILIO NUMBER ", ['TwilioCleared', {'numbers': ['+14155550100']}]"),
     "{'type': 'RemovePhoneNumber', 'number': '+14155550100'}", OWNER, "{'error': [404, 'unknown_number']}"},
    /* Phone numbers */
    {"add a number", G(TWILIO), "{'type': 'AddPhoneNumber', 'number': '+1 (415) 555-0100', 'sid': '" PN1 "'}",
     NULL, "[['PhoneNumberAdded', {'number': '+14155550100', 'sid': '" PN1 "', 'assigned_to': null}]]"},
    {"add a national number, read in the workspace's country", BASE,
     "{'type': 'AddPhoneNumber', 'number': '(415) 555-0100', 'sid': '" PN1 "', 'assigned_to': '" AGENT "'}",
     OWNER, "[['PhoneNumberAdded', {'number': '+14155550100', 'assigned_to': '" AGENT "'}]]"},
    {"the same number and sid again: nothing", G(NUMBER),
     "{'type': 'AddPhoneNumber', 'number': '+14155550100', 'sid': '" PN1 "'}", NULL, "[]"},
    {"the same number with another sid", G(NUMBER),
     "{'type': 'AddPhoneNumber', 'number': '+14155550100', 'sid': '" PN2 "'}", NULL,
     "{'error': [409, 'number_exists']}"},
    {"not a number", BASE, "{'type': 'AddPhoneNumber', 'number': 'call me', 'sid': '" PN1 "'}", NULL,
     "{'error': [400, 'invalid_phone']}"},
    {"a number assigned to a stranger", BASE,
     "{'type': 'AddPhoneNumber', 'number': '+14155550100', 'sid': '" PN1 "', 'assigned_to': '" STRANGER "'}",
     NULL, "{'error': [400, 'unknown_member']}"},
    {"remove a number", G(NUMBER), "{'type': 'RemovePhoneNumber', 'number': '+14155550100'}", ADMIN,
     "[['PhoneNumberRemoved', {'number': '+14155550100', 'sid': '" PN1 "'}]]"},
    {"remove an unknown number", BASE, "{'type': 'RemovePhoneNumber', 'number': '+14155550100'}", ADMIN,
     "{'error': [404, 'unknown_number']}"},
    {"assign a number", G(NUMBER),
     "{'type': 'AssignPhoneNumber', 'number': '+14155550100', 'user_id': '" AGENT "'}", ADMIN,
     "[['PhoneNumberAssigned', {'number': '+14155550100', 'assigned_to': '" AGENT "', 'from': null}]]"},
    {"assign to the same: nothing",
     G(NUMBER ", ['PhoneNumberAssigned', {'number': '+14155550100', 'assigned_to': '" AGENT "'}]"),
     "{'type': 'AssignPhoneNumber', 'number': '+14155550100', 'user_id': '" AGENT "'}", ADMIN, "[]"},
    {"unassign",
     G(NUMBER ", ['PhoneNumberAssigned', {'number': '+14155550100', 'assigned_to': '" AGENT "'}]"),
     "{'type': 'AssignPhoneNumber', 'number': '+14155550100', 'user_id': null}", ADMIN,
     "[['PhoneNumberAssigned', {'assigned_to': null, 'from': '" AGENT "'}]]"},
    {"a member who leaves loses their number",
     G(NUMBER ", ['PhoneNumberAssigned', {'number': '+14155550100', 'assigned_to': '" AGENT "'}], "
              "['MemberRemoved', {'user_id': '" AGENT "'}]"),
     "{'type': 'AssignPhoneNumber', 'number': '+14155550100', 'user_id': '" ADMIN "'}", ADMIN,
     "[['PhoneNumberAssigned', {'assigned_to': '" ADMIN "', 'from': null}]]"},
    {"assign to a stranger", G(NUMBER),
     "{'type': 'AssignPhoneNumber', 'number': '+14155550100', 'user_id': '" STRANGER "'}", ADMIN,
     "{'error': [400, 'unknown_member']}"},
    {"assign an unknown number", BASE,
     "{'type': 'AssignPhoneNumber', 'number': '+14155550100', 'user_id': '" AGENT "'}", ADMIN,
     "{'error': [404, 'unknown_number']}"},
    {"agents cannot add numbers", BASE,
     "{'type': 'AddPhoneNumber', 'number': '+14155550100', 'sid': '" PN1 "'}", AGENT,
     "{'error': [403, 'forbidden']}"},
    /* Pipeline stages */
    {"add a stage at the end", G(STAGES), "{'type': 'AddPipelineStage', 'name': ' Qualified '}", ADMIN,
     "[['PipelineStageAdded', {'name': 'Qualified', 'position': 2}]]"},
    {"add a stage in the middle", G(STAGES),
     "{'type': 'AddPipelineStage', 'name': 'Qualified', 'position': 1}", ADMIN,
     "[['PipelineStageAdded', {'name': 'Qualified', 'position': 1}]]"},
    {"stage names are unique, case-insensitively", G(STAGES), "{'type': 'AddPipelineStage', 'name': 'lead'}",
     ADMIN, "{'error': [409, 'stage_exists']}"},
    {"a position past the end", G(STAGES), "{'type': 'AddPipelineStage', 'name': 'Lost', 'position': 3}",
     ADMIN, "{'error': [400, 'invalid']}"},
    {"a negative position", G(STAGES), "{'type': 'AddPipelineStage', 'name': 'Lost', 'position': -1}", ADMIN,
     "{'error': [400, 'invalid']}"},
    {"an empty stage name", G(STAGES), "{'type': 'AddPipelineStage', 'name': ''}", ADMIN,
     "{'error': [400, 'required']}"},
    {"remove a stage by any case", G(STAGES), "{'type': 'RemovePipelineStage', 'name': 'WON'}", ADMIN,
     "[['PipelineStageRemoved', {'name': 'Won', 'position': 1}]]"},
    {"remove an unknown stage", G(STAGES), "{'type': 'RemovePipelineStage', 'name': 'Lost'}", ADMIN,
     "{'error': [404, 'unknown_stage']}"},
    {"a removed stage can come back", G(STAGES ", ['PipelineStageRemoved', {'name': 'Won'}]"),
     "{'type': 'AddPipelineStage', 'name': 'Won', 'position': 0}", ADMIN,
     "[['PipelineStageAdded', {'name': 'Won', 'position': 0}]]"},
    {"agents cannot change the pipeline", G(STAGES), "{'type': 'AddPipelineStage', 'name': 'Lost'}", AGENT,
     "{'error': [403, 'forbidden']}"},
    /* Auto-replies */
    {"set a rule", BASE, "{'type': 'SetAutoReplyRule', 'keyword': 'Hours', 'reply': 'We open at 9.'}", ADMIN,
     "[['AutoReplyRuleSet', {'keyword': 'hours', 'reply': 'We open at 9.'}]]"},
    {"set the same rule: nothing", G(RULE),
     "{'type': 'SetAutoReplyRule', 'keyword': 'HOURS', 'reply': 'We open at 9.'}", ADMIN, "[]"},
    {"change a rule's reply", G(RULE),
     "{'type': 'SetAutoReplyRule', 'keyword': 'hours', 'reply': 'We open at 8.'}", ADMIN,
     "[['AutoReplyRuleSet', {'keyword': 'hours', 'reply': 'We open at 8.'}]]"},
    {"a keyword is one word", BASE, "{'type': 'SetAutoReplyRule', 'keyword': 'open hours', 'reply': 'x'}",
     ADMIN, "{'error': [400, 'invalid']}"},
    {"a keyword has no punctuation", BASE, "{'type': 'SetAutoReplyRule', 'keyword': 'hours!', 'reply': 'x'}",
     ADMIN, "{'error': [400, 'invalid']}"},
    {"STOP is reserved", BASE, "{'type': 'SetAutoReplyRule', 'keyword': 'Stop', 'reply': 'x'}", ADMIN,
     "{'error': [400, 'reserved_keyword']}"},
    {"an empty reply", BASE, "{'type': 'SetAutoReplyRule', 'keyword': 'hours', 'reply': ''}", ADMIN,
     "{'error': [400, 'required']}"},
    {"remove a rule", G(RULE), "{'type': 'RemoveAutoReplyRule', 'keyword': 'HOURS'}", ADMIN,
     "[['AutoReplyRuleRemoved', {'keyword': 'hours'}]]"},
    {"remove an unknown rule", BASE, "{'type': 'RemoveAutoReplyRule', 'keyword': 'hours'}", ADMIN,
     "{'error': [404, 'unknown_rule']}"},
    {"agents cannot set rules", BASE, "{'type': 'SetAutoReplyRule', 'keyword': 'hours', 'reply': 'x'}", AGENT,
     "{'error': [403, 'forbidden']}"},
    /* Default country, e-mail sender, parking limit */
    {"change the default country", BASE, "{'type': 'ChangeDefaultCountry', 'default_country': 'gb'}", OWNER,
     "[['DefaultCountryChanged', {'from': 'US', 'to': 'GB'}]]"},
    {"the same country: nothing", BASE, "{'type': 'ChangeDefaultCountry', 'default_country': 'US'}", OWNER,
     "[]"},
    {"an unknown country", BASE, "{'type': 'ChangeDefaultCountry', 'default_country': 'ZZ'}", OWNER,
     "{'error': [400, 'invalid_country']}"},
    {"national numbers follow the new country", G(", ['DefaultCountryChanged', {'from': 'US', 'to': 'GB'}]"),
     "{'type': 'AddPhoneNumber', 'number': '020 7946 0958', 'sid': '" PN1 "'}", OWNER,
     "[['PhoneNumberAdded', {'number': '+442079460958'}]]"},
    {"set the e-mail sender", BASE,
     "{'type': 'SetEmailSender', 'from': 'Hello@Acme.example', 'from_name': 'Acme'}", ADMIN,
     "[['EmailSenderSet', {'from': 'hello@acme.example', 'from_name': 'Acme'}]]"},
    {"the same sender: nothing", G(", ['EmailSenderSet', {'from': 'hello@acme.example', 'from_name': null}]"),
     "{'type': 'SetEmailSender', 'from': 'hello@acme.example'}", ADMIN, "[]"},
    {"a sender with its sealed Resend key", BASE,
     "{'type': 'SetEmailSender', 'from': 'hello@acme.example', 'secret_ref': "
     "'secret:0190a0b0-0000-7000-8000-000000000001'}",
     ADMIN,
     "[['EmailSenderSet', {'from': 'hello@acme.example', 'secret_ref': "
     "'secret:0190a0b0-0000-7000-8000-000000000001'}]]"},
    {"a new key for the same sender",
     G(", ['EmailSenderSet', {'from': 'hello@acme.example', 'from_name': null, 'secret_ref': 'secret:a'}]"),
     "{'type': 'SetEmailSender', 'from': 'hello@acme.example', 'secret_ref': 'secret:b'}", ADMIN,
     "[['EmailSenderSet', {'secret_ref': 'secret:b'}]]"},
    {"the same sender and key: nothing",
     G(", ['EmailSenderSet', {'from': 'hello@acme.example', 'from_name': null, 'secret_ref': 'secret:a'}]"),
     "{'type': 'SetEmailSender', 'from': 'hello@acme.example', 'secret_ref': 'secret:a'}", ADMIN, "[]"},
    {"a bare Resend key", BASE,
     "{'type': 'SetEmailSender', 'from': 'hello@acme.example', 'secret_ref': 're_123abc'}", ADMIN,
     "{'error': [400, 'secret_not_sealed', 'secret_ref']}"},
    {"clear the sender",
     G(", ['EmailSenderSet', {'from': 'hello@acme.example', 'from_name': null, 'secret_ref': 'secret:a'}]"),
     "{'type': 'ClearEmailSender'}", ADMIN, "[['EmailSenderCleared', {}]]"},
    {"clear what is not set: nothing", BASE, "{'type': 'ClearEmailSender'}", ADMIN, "[]"},
    {"agents do not clear the sender", G(", ['EmailSenderSet', {'from': 'hello@acme.example'}]"),
     "{'type': 'ClearEmailSender'}", AGENT, "{'error': [403, 'forbidden']}"},
    {"a sender that is not an address", BASE, "{'type': 'SetEmailSender', 'from': 'acme'}", ADMIN,
     "{'error': [400, 'invalid_email']}"},
    {"a sender name that would forge a header", BASE,
     "{'type': 'SetEmailSender', 'from': 'hello@acme.example', 'from_name': 'A <evil@x.example>'}", ADMIN,
     "{'error': [400, 'invalid']}"},
    {"set the parking limit", BASE, "{'type': 'SetParkingLimit', 'seconds': 120}", ADMIN,
     "[['ParkingLimitSet', {'seconds': 120}]]"},
    {"the default parking limit again: nothing", BASE, "{'type': 'SetParkingLimit', 'seconds': 300}", ADMIN,
     "[]"},
    {"a parking limit too short", BASE, "{'type': 'SetParkingLimit', 'seconds': 5}", ADMIN,
     "{'error': [400, 'invalid']}"},
    {"a parking limit that is not a number", BASE, "{'type': 'SetParkingLimit', 'seconds': '60'}", ADMIN,
     "{'error': [400, 'invalid']}"},
    {"agents cannot set the parking limit", BASE, "{'type': 'SetParkingLimit', 'seconds': 60}", AGENT,
     "{'error': [403, 'forbidden']}"},
};

/* ---- property --------------------------------------------------------------------------------- */

static const char *const users[] = {OWNER, ADMIN, AGENT, OWNER2, STRANGER};
static const char *const roles[] = {"owner", "admin", "agent"};
static const char *const stage_names[] = {"Lead", "lead", "Qualified", "Won", "Lost", "Call back"};
static const char *const numbers[] = {"+14155550100", "+14155550101", "(415) 555-0102"};
static const char *const keywords[] = {"hours", "Price", "menu", "stop"};

static json_t *gen(const json_t *state, int step, const char **user)
{
    *user = h_rand(4) == 0 ? NULL : users[h_rand(3)];
    const char *who = users[h_rand(5)];
    if (step == 0)
        return json_pack("{s:s, s:s, s:s, s:s}", "type", "CreateWorkspace", "name", "Acme", "owner_email",
                         "o@example.com", "owner_id", OWNER);
    switch (h_rand(14)) {
    case 0:
        return json_pack("{s:s, s:s, s:s, s:s}", "type", "AddMember", "user_id", who, "role",
                         roles[h_rand(3)], "email", "m@example.com");
    case 1:
        return json_pack("{s:s, s:s}", "type", "RemoveMember", "user_id", who);
    case 2:
        return json_pack("{s:s, s:s, s:s}", "type", "ChangeMemberRole", "user_id", who, "role",
                         roles[h_rand(3)]);
    case 3:
        return json_pack("{s:s, s:s, s:s}", "type", "ConfigureTwilio", "account_sid", AC, "secret_ref",
                         h_rand(2) ? "vault:1" : "vault:2");
    case 4:
        return json_pack("{s:s}", "type", h_rand(4) ? "RenameWorkspace" : "ClearTwilio", "name", "Acme 2");
    case 5:
        return json_pack("{s:s, s:s, s:s}", "type", "AddPhoneNumber", "number", numbers[h_rand(3)], "sid",
                         h_rand(3) ? PN1 : PN2);
    case 6:
        return json_pack("{s:s, s:s}", "type", "RemovePhoneNumber", "number", numbers[h_rand(3)]);
    case 7:
        return json_pack("{s:s, s:s, s:s?}", "type", "AssignPhoneNumber", "number", numbers[h_rand(3)],
                         "user_id", h_rand(3) ? who : NULL);
    case 8:
        return json_pack("{s:s, s:s, s:i}", "type", "AddPipelineStage", "name", stage_names[h_rand(6)],
                         "position",
                         (int)h_rand((uint32_t)json_array_size(json_object_get(state, "stages")) + 1));
    case 9:
        return json_pack("{s:s, s:s}", "type", "RemovePipelineStage", "name", stage_names[h_rand(6)]);
    case 10:
        return json_pack("{s:s, s:s, s:s}", "type", "SetAutoReplyRule", "keyword", keywords[h_rand(4)],
                         "reply", h_rand(2) ? "Nine to five." : "Ten to six.");
    case 11:
        return json_pack("{s:s, s:s}", "type", "RemoveAutoReplyRule", "keyword", keywords[h_rand(4)]);
    case 12:
        return json_pack("{s:s, s:s}", "type", "ChangeDefaultCountry", "default_country",
                         h_rand(2) ? "US" : "GB");
    default:
        return h_rand(2)
                   ? json_pack("{s:s, s:i}", "type", "SetParkingLimit", "seconds", 30 + (int)h_rand(3) * 30)
                   : json_pack("{s:s, s:s}", "type", "SetEmailSender", "from",
                               h_rand(2) ? "a@acme.example" : "b@acme.example");
    }
}

/* The owner invariant holds along any history: there is always at least one owner. */
static void check_owner_invariant(void)
{
    json_t *state = sb_kind_workspace.initial();
    sb_decide_ctx_t ctx = {.now_us = h_time(T0), .id = WS};
    h_seed(99);
    int owners_min = 99;
    for (int step = 0; step < 3000; step++) {
        const char *user;
        json_t *cmd = gen(state, step, &user);
        ctx.user_id = user;
        sb_devents_t out = {.n = 0};
        sb_derror_t err;
        if (sb_kind_workspace.decide(state, cmd, &ctx, &out, &err) == 0)
            for (int i = 0; i < out.n; i++)
                sb_kind_workspace.evolve(state, &out.items[i]);
        sb_devents_clear(&out);
        json_decref(cmd);
        int owners = 0;
        const char *k;
        json_t *m;
        json_object_foreach(json_object_get(state, "members"), k, m)
        {
            owners += strcmp(json_string_value(json_object_get(m, "role")), "owner") == 0;
        }
        if (owners < owners_min)
            owners_min = owners;
    }
    CHECK(owners_min >= 1);
    json_decref(state);
}

int main(void)
{
    run_cases(&sb_kind_workspace, cases, sizeof cases / sizeof cases[0], NULL, WS);
    CHECK(run_property(&sb_kind_workspace, gen, NULL, WS, 4000, 1234, 16384) > 500);
    check_owner_invariant();

    /* The context a contact decision gets from the workspace. */
    json_t *given = jq(G(STAGES));
    sb_devent_t evs[16];
    json_t *state = sb_fold(&sb_kind_workspace, evs, given_events(given, evs, 16));
    json_t *ctx = sb_workspace_context(state);
    json_t *want =
        jq("{'workspace_id': '" WS "', 'default_country': 'US', 'stages': ['Lead', 'Won'], "
           "'parking_limit_seconds': 300, 'members': ["
           "{'user_id': '" OWNER "', 'role': 'owner', 'name': 'Olivia', 'email': 'olivia@example.com'}, "
           "{'user_id': '" ADMIN "', 'role': 'admin', 'name': 'Adam', 'email': 'adam@example.com'}, "
           "{'user_id': '" AGENT "', 'role': 'agent', 'name': 'Ana', 'email': 'ana@example.com'}]}");
    CHECK(json_equal(ctx, want));
    json_decref(want);
    json_decref(ctx);
    json_decref(state);
    json_decref(given);
    return h_finish("workspace");
}
