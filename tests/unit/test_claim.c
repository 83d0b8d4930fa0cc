/* The claim decider: given events, when a command, then events or a rejection. */
#include "decider_harness.h"

#define KEY "email:ana@example.com"
#define OWNER_A "user-" OWNER
#define OWNER_B "user-" AGENT
#define CLAIMED "[['Claimed', {'key': '" KEY "', 'owner': '" OWNER_A "', 'at': '" T0 "'}]]"

static char claim_id[SB_UUID_STRLEN + 1];

static const dcase_t cases[] = {
    {"claim a free key", NULL, "{'type': 'Claim', 'key': '" KEY "', 'owner': '" OWNER_A "'}", NULL,
     "[['Claimed', {'key': '" KEY "', 'owner': '" OWNER_A "', 'at': '" T0 "'}]]"},
    {"claim again by the same owner: nothing", CLAIMED,
     "{'type': 'Claim', 'key': '" KEY "', 'owner': '" OWNER_A "'}", NULL, "[]"},
    {"claim by another owner: taken", CLAIMED, "{'type': 'Claim', 'key': '" KEY "', 'owner': '" OWNER_B "'}",
     NULL, "{'error': [409, 'taken']}"},
    {"release by the owner", CLAIMED, "{'type': 'Release', 'owner': '" OWNER_A "'}", NULL,
     "[['Released', {'key': '" KEY "', 'owner': '" OWNER_A "'}]]"},
    {"release by another owner", CLAIMED, "{'type': 'Release', 'owner': '" OWNER_B "'}", NULL,
     "{'error': [403, 'not_owner']}"},
    {"release a free key: nothing", NULL, "{'type': 'Release', 'owner': '" OWNER_A "'}", NULL, "[]"},
    {"claim after release by someone else",
     "[['Claimed', {'key': '" KEY "', 'owner': '" OWNER_A "'}], ['Released', {'key': '" KEY
     "', 'owner': '" OWNER_A "'}]]",
     "{'type': 'Claim', 'key': '" KEY "', 'owner': '" OWNER_B "'}", NULL,
     "[['Claimed', {'key': '" KEY "', 'owner': '" OWNER_B "'}]]"},
    {"a key that is not this stream's", NULL,
     "{'type': 'Claim', 'key': 'email:bob@example.com', 'owner': '" OWNER_A "'}", NULL,
     "{'error': [400, 'key_mismatch']}"},
    {"owner must be a stream name", NULL, "{'type': 'Claim', 'key': '" KEY "', 'owner': 'ana'}", NULL,
     "{'error': [400, 'invalid']}"},
    {"owner with a bad uuid", NULL, "{'type': 'Claim', 'key': '" KEY "', 'owner': 'user-1234'}", NULL,
     "{'error': [400, 'invalid']}"},
    {"key required", NULL, "{'type': 'Claim', 'owner': '" OWNER_A "'}", NULL, "{'error': [400, 'required']}"},
    {"key not a string", NULL, "{'type': 'Claim', 'key': 7, 'owner': '" OWNER_A "'}", NULL,
     "{'error': [400, 'invalid']}"},
    {"owner required on release", CLAIMED, "{'type': 'Release'}", NULL, "{'error': [400, 'required']}"},
    {"unknown command", NULL, "{'type': 'Steal'}", NULL, "{'error': [400, 'unknown_command']}"},
    {"no type", NULL, "{'key': 'x'}", NULL, "{'error': [400, 'required']}"},
};

static const char *const owners[] = {OWNER_A, OWNER_B, "contact-" CONTACT};

static json_t *gen(const json_t *state, int step, const char **user)
{
    *user = NULL;
    const char *owner = owners[h_rand(3)];
    if (h_rand(2) == 0)
        return json_pack("{s:s, s:s, s:s}", "type", "Claim", "key", KEY, "owner", owner);
    /* Mostly release as the holder, sometimes as someone else. */
    const char *holder = json_string_value(json_object_get(state, "owner"));
    return json_pack("{s:s, s:s}", "type", "Release", "owner", holder && h_rand(4) ? holder : owner);
}

int main(void)
{
    /* The stream id is derived from the key, the same way every time. */
    sb_uuid_t a, b;
    sb_claim_id(KEY, &a);
    sb_claim_id(KEY, &b);
    CHECK(memcmp(a.b, b.b, 16) == 0);
    sb_claim_id("email:bob@example.com", &b);
    CHECK(memcmp(a.b, b.b, 16) != 0);
    sb_uuid_format(&a, claim_id);
    char stream[SB_CLAIM_STREAM_LEN];
    sb_claim_stream(KEY, stream);
    CHECK(strncmp(stream, "claim-", 6) == 0 && strcmp(stream + 6, claim_id) == 0);
    CHECK(sb_kind_find("claim") == &sb_kind_claim);
    CHECK(sb_kind_find("workspace") == &sb_kind_workspace);
    CHECK(sb_kind_find("contact") == &sb_kind_contact);
    CHECK(sb_kind_find("call") == &sb_kind_call);
    CHECK(sb_kind_find("user") == &sb_kind_user);
    CHECK(sb_kind_find("nope") == NULL);
    CHECK(sb_kind_find(NULL) == NULL);

    run_cases(&sb_kind_claim, cases, sizeof cases / sizeof cases[0], NULL, claim_id);

    /* The "taken" message names the holder, so the API can say who has it. */
    json_t *given = jq(CLAIMED);
    sb_devent_t evs[4];
    json_t *state = sb_fold(&sb_kind_claim, evs, given_events(given, evs, 4));
    json_t *cmd = jq("{'type': 'Claim', 'key': '" KEY "', 'owner': '" OWNER_B "'}");
    sb_decide_ctx_t ctx = {.now_us = h_time(T0), .id = claim_id};
    sb_devents_t out = {.n = 0};
    sb_derror_t err;
    CHECK(sb_kind_claim.decide(state, cmd, &ctx, &out, &err) == SB_EREJECTED);
    CHECK(strstr(err.message, OWNER_A) != NULL);
    json_decref(cmd);
    json_decref(state);
    json_decref(given);

    /* sb_devents_add: full lists and NULL payloads release what they were given. */
    sb_devents_t list = {.n = 0};
    for (int i = 0; i < SB_MAX_EVENTS_PER_COMMAND; i++)
        CHECK(sb_devents_add(&list, "X", json_object()) == 0);
    CHECK(sb_devents_add(&list, "X", json_object()) == SB_ENOMEM);
    CHECK(list.n == SB_MAX_EVENTS_PER_COMMAND);
    sb_devents_clear(&list);
    CHECK(list.n == 0);
    CHECK(sb_devents_add(&list, "X", NULL) == SB_ENOMEM && list.n == 0);
    CHECK(sb_reject(&err, 409, "some_code", "f", "n=%d", 3) == SB_EREJECTED);
    CHECK(err.status == 409 && strcmp(err.code, "some_code") == 0 && strcmp(err.message, "n=3") == 0 &&
          strcmp(err.field, "f") == 0);

    CHECK(run_property(&sb_kind_claim, gen, NULL, claim_id, 3000, 42, 4096) > 500);
    return h_finish("claim");
}
