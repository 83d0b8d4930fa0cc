/* The user decider: given events, when a command, then events or a rejection. */
#include "decider_harness.h"

#define ME OWNER
#define REF "sealed:v1:Zm9vYmFy"
#define REGISTERED                                                                                           \
    "[['UserRegistered', {'user_id': '" ME                                                                   \
    "', 'email': 'ana@example.com', 'name': 'Ana', 'credential_ref': '" REF "', 'registered_at': '" T0       \
    "'}]]"
#define AWAY                                                                                                 \
    "[['UserRegistered', {'user_id': '" ME                                                                   \
    "', 'email': 'ana@example.com', 'name': 'Ana', 'credential_ref': '" REF                                  \
    "'}], ['UserPresenceChanged', {'presence': 'away', 'from': 'offline'}]]"

static const dcase_t cases[] = {
    /* RegisterUser */
    {"register", NULL,
     "{'type': 'RegisterUser', 'email': ' Ana@Example.COM ', 'name': '  Ana  ', 'credential_ref': '" REF "'}",
     NULL,
     "[['UserRegistered', {'user_id': '" ME
     "', 'email': 'ana@example.com', 'name': 'Ana', 'credential_ref': '" REF "', 'registered_at': '" T0
     "'}]]"},
    {"register twice", REGISTERED,
     "{'type': 'RegisterUser', 'email': 'ana@example.com', 'name': 'Ana', 'credential_ref': '" REF "'}", NULL,
     "{'error': [409, 'already_registered']}"},
    {"register with a bad email", NULL,
     "{'type': 'RegisterUser', 'email': 'ana-at-example', 'name': 'Ana', 'credential_ref': '" REF "'}", NULL,
     "{'error': [400, 'invalid_email']}"},
    {"register without a name", NULL,
     "{'type': 'RegisterUser', 'email': 'ana@example.com', 'name': '   ', 'credential_ref': '" REF "'}", NULL,
     "{'error': [400, 'required']}"},
    {"register without a credential", NULL,
     "{'type': 'RegisterUser', 'email': 'ana@example.com', 'name': 'Ana'}", NULL,
     "{'error': [400, 'required']}"},
    {"a bare argon2 hash never reaches the log", NULL,
     "{'type': 'RegisterUser', 'email': 'ana@example.com', 'name': 'Ana', 'credential_ref': "
     "'$argon2id$v=19$m=65536,t=2,p=1$c2FsdA$aGFzaA'}",
     NULL, "{'error': [400, 'credential_not_sealed']}"},
    {"nor a bcrypt hash", NULL,
     "{'type': 'RegisterUser', 'email': 'ana@example.com', 'name': 'Ana', 'credential_ref': '$2b$12$abc'}",
     NULL, "{'error': [400, 'credential_not_sealed']}"},
    /* ChangePresence */
    {"go online", REGISTERED, "{'type': 'ChangePresence', 'presence': 'online'}", ME,
     "[['UserPresenceChanged', {'presence': 'online', 'from': 'offline', 'at': '" T0 "'}]]"},
    {"same presence: nothing", AWAY, "{'type': 'ChangePresence', 'presence': 'away'}", ME, "[]"},
    {"the system sets presence", AWAY, "{'type': 'ChangePresence', 'presence': 'offline'}", NULL,
     "[['UserPresenceChanged', {'presence': 'offline', 'from': 'away'}]]"},
    {"someone else's presence", REGISTERED, "{'type': 'ChangePresence', 'presence': 'online'}", AGENT,
     "{'error': [403, 'forbidden']}"},
    {"unknown presence", REGISTERED, "{'type': 'ChangePresence', 'presence': 'busy'}", ME,
     "{'error': [400, 'invalid']}"},
    {"presence of nobody", NULL, "{'type': 'ChangePresence', 'presence': 'online'}", ME,
     "{'error': [404, 'user_not_found']}"},
    /* UpdateProfile */
    {"rename", REGISTERED, "{'type': 'UpdateProfile', 'name': 'Ana Lima'}", ME,
     "[['UserProfileUpdated', {'name': 'Ana Lima'}]]"},
    {"new email, normalised", REGISTERED, "{'type': 'UpdateProfile', 'email': 'ANA@lima.example'}", ME,
     "[['UserProfileUpdated', {'email': 'ana@lima.example'}]]"},
    {"nothing changes", REGISTERED, "{'type': 'UpdateProfile', 'name': 'Ana', 'email': 'ana@example.com'}",
     ME, "[]"},
    {"bad email in update", REGISTERED, "{'type': 'UpdateProfile', 'email': 'nope'}", ME,
     "{'error': [400, 'invalid_email']}"},
    {"someone else's profile", REGISTERED, "{'type': 'UpdateProfile', 'name': 'X'}", AGENT,
     "{'error': [403, 'forbidden']}"},
    /* ChangeCredential */
    {"new credential", REGISTERED, "{'type': 'ChangeCredential', 'credential_ref': 'sealed:v1:bmV3'}", ME,
     "[['UserCredentialChanged', {'credential_ref': 'sealed:v1:bmV3'}]]"},
    {"same credential: nothing", REGISTERED, "{'type': 'ChangeCredential', 'credential_ref': '" REF "'}", ME,
     "[]"},
    {"bare hash as new credential", REGISTERED,
     "{'type': 'ChangeCredential', 'credential_ref': '$argon2i$x'}", ME,
     "{'error': [400, 'credential_not_sealed']}"},
    {"unknown command", REGISTERED, "{'type': 'DeleteEverything'}", ME,
     "{'error': [400, 'unknown_command']}"},
};

static json_t *gen(const json_t *state, int step, const char **user)
{
    static const char *const presences[] = {"online", "away", "offline", "busy"};
    static const char *const names[] = {"Ana", "Ana Lima", " Bea ", ""};
    static const char *const emails[] = {"ana@example.com", "ANA@lima.example", "bad"};
    *user = h_rand(10) == 0 ? AGENT : (h_rand(2) ? ME : NULL);
    switch (h_rand(step < 3 ? 1 : 5)) {
    case 0:
        return json_pack("{s:s, s:s, s:s, s:s}", "type", "RegisterUser", "email", emails[h_rand(3)], "name",
                         names[h_rand(4)], "credential_ref", REF);
    case 1:
    case 2:
        return json_pack("{s:s, s:s}", "type", "ChangePresence", "presence", presences[h_rand(4)]);
    case 3:
        return json_pack("{s:s, s:s, s:s}", "type", "UpdateProfile", "name", names[h_rand(4)], "email",
                         emails[h_rand(3)]);
    default:
        return json_pack("{s:s, s:s}", "type", "ChangeCredential", "credential_ref",
                         h_rand(2) ? REF : "sealed:v1:b3RoZXI=");
    }
}

int main(void)
{
    run_cases(&sb_kind_user, cases, sizeof cases / sizeof cases[0], NULL, ME);
    CHECK(run_property(&sb_kind_user, gen, NULL, ME, 3000, 7, 4096) > 500);
    return h_finish("user");
}
