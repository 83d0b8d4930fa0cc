/* The presence decider (members' presence as a workspace sees it): given events, when a command,
 * then events or a rejection. */
#include "decider_harness.h"

#define NOTED(p)                                                                                             \
    "[['MemberPresenceChanged', {'workspace_id': '" WS "', 'user_id': '" AGENT "', 'presence': '" p "'}]]"

static const dcase_t cases[] = {
    {"a first presence", NULL, "{'type': 'NotePresence', 'user_id': '" AGENT "', 'presence': 'online'}",
     AGENT,
     "[['MemberPresenceChanged', {'workspace_id': '" WS "', 'user_id': '" AGENT
     "', 'presence': 'online', 'from': null, 'at': '" T0 "'}]]"},
    {"a change names where it came from", NOTED("online"),
     "{'type': 'NotePresence', 'user_id': '" AGENT "', 'presence': 'away'}", AGENT,
     "[['MemberPresenceChanged', {'presence': 'away', 'from': 'online'}]]"},
    {"the same again: nothing", NOTED("away"),
     "{'type': 'NotePresence', 'user_id': '" AGENT "', 'presence': 'away'}", AGENT, "[]"},
    {"each member has their own", NOTED("away"),
     "{'type': 'NotePresence', 'user_id': '" OWNER "', 'presence': 'away'}", OWNER,
     "[['MemberPresenceChanged', {'user_id': '" OWNER "', 'from': null}]]"},
    {"the system may note anyone's", NULL,
     "{'type': 'NotePresence', 'user_id': '" AGENT "', 'presence': 'offline'}", NULL, NOTED("offline")},
    {"nobody notes someone else's", NULL,
     "{'type': 'NotePresence', 'user_id': '" AGENT "', 'presence': 'online'}", OWNER,
     "{'error': [403, 'forbidden', 'user_id']}"},
    {"an unknown presence", NULL, "{'type': 'NotePresence', 'user_id': '" AGENT "', 'presence': 'asleep'}",
     AGENT, "{'error': [400, 'invalid', 'presence']}"},
    {"a user id that is not one", NULL, "{'type': 'NotePresence', 'user_id': 'ada', 'presence': 'online'}",
     NULL, "{'error': [400, 'invalid', 'user_id']}"},
    {"unknown command", NULL, "{'type': 'SetPresence'}", NULL, "{'error': [400, 'unknown_command']}"},
};

static json_t *gen(const json_t *state, int step, const char **user)
{
    static const char *const who[] = {OWNER, ADMIN, AGENT};
    static const char *const what[] = {"online", "away", "offline"};
    const char *u = who[h_rand(3)];
    *user = h_rand(4) ? u : NULL;
    return json_pack("{s:s, s:s, s:s}", "type", "NotePresence", "user_id", u, "presence", what[h_rand(3)]);
}

int main(void)
{
    CHECK(sb_kind_find("presence") == &sb_kind_presence);
    run_cases(&sb_kind_presence, cases, sizeof cases / sizeof cases[0], NULL, WS);
    /* The fold keeps each member's last presence and the workspace. */
    json_t *given = jq("[['MemberPresenceChanged', {'workspace_id': '" WS "', 'user_id': '" AGENT
                       "', 'presence': 'online'}], ['MemberPresenceChanged', {'workspace_id': '" WS
                       "', 'user_id': '" AGENT "', 'presence': 'away'}]]");
    sb_devent_t evs[4];
    json_t *state = sb_fold(&sb_kind_presence, evs, given_events(given, evs, 4));
    CHECK(strcmp(json_string_value(json_object_get(json_object_get(state, "members"), AGENT)), "away") == 0);
    CHECK(strcmp(json_string_value(json_object_get(state, "workspace_id")), WS) == 0);
    json_decref(state);
    json_decref(given);
    /* Folds agree with the live state; the state stays one entry per person. */
    CHECK(run_property(&sb_kind_presence, gen, NULL, WS, 2000, 7, 1024) > 500);
    return h_finish("presence");
}
