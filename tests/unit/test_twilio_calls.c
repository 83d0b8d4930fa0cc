/* Call control's TwiML and names (providers/twilio_calls.h): each document exactly as it goes out,
 * identities both ways, refusals of what is malformed. */
#include <stdlib.h>
#include <string.h>

#include "providers/twilio_calls.h"
#include "sbtest.h"

#define DECL "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
#define USER "0190aaaa-bbbb-7ccc-8ddd-eeeeffff0001"

static void check_doc(char *xml, const char *want)
{
    if (CHECK(xml != NULL))
        CHECK_EQ_STR(xml, want);
    free(xml);
}

#define WS "0190aaaa-bbbb-7ccc-8ddd-eeeeffff0009"
#define IDENT "w0190aaaabbbb7ccc8dddeeeeffff0009_u0190aaaabbbb7ccc8dddeeeeffff0001"

static void test_identity(void)
{
    char id[SB_CALLS_IDENTITY_LEN + 1], back[SB_UUID_STRLEN + 1], client[96];
    CHECK(sb_twilio_calls_identity(WS, USER, id));
    CHECK_EQ_STR(id, IDENT);
    CHECK(sb_twilio_calls_member(id, WS, back));
    CHECK_EQ_STR(back, USER);
    CHECK(!sb_twilio_calls_member(id, USER, back)); /* another workspace's member */
    CHECK(sb_twilio_calls_identity("0190AAAA-BBBB-7CCC-8DDD-EEEEFFFF0009",
                                   "0190AAAA-BBBB-7CCC-8DDD-EEEEFFFF0001", id));
    CHECK_EQ_STR(id, IDENT);
    CHECK(sb_twilio_calls_client(WS, USER, client, sizeof client));
    CHECK_EQ_STR(client, "client:" IDENT);
    CHECK(sb_twilio_calls_member(client, WS, back));
    CHECK_EQ_STR(back, USER);
    CHECK(!sb_twilio_calls_client(WS, USER, client, 40)); /* too small */
    CHECK(!sb_twilio_calls_identity(WS, "not-a-uuid", id));
    CHECK(!sb_twilio_calls_identity(NULL, USER, id));
    CHECK(!sb_twilio_calls_member("w0190", WS, back));
    CHECK(!sb_twilio_calls_member("w0190aaaabbbb7ccc8dddeeeeffff0009_u0190aaaabbbb7ccc8dddeeeeffff000g", WS,
                                  back));
    CHECK(!sb_twilio_calls_member("w0190aaaabbbb7ccc8dddeeeeffff0009_x0190aaaabbbb7ccc8dddeeeeffff0001", WS,
                                  back));
    CHECK(!sb_twilio_calls_member("alice", WS, back));
    CHECK(!sb_twilio_calls_member(NULL, WS, back));
}

static void test_names(void)
{
    char n[SB_CALLS_NAME_MAX];
    sb_twilio_calls_park_room(USER, n);
    CHECK_EQ_STR(n, "park-" USER);
    sb_twilio_calls_room(USER, n);
    CHECK_EQ_STR(n, "call-" USER);
    sb_twilio_calls_queue(WS, n);
    CHECK_EQ_STR(n, "ws_0190aaaabbbb7ccc8dddeeeeffff0009");
    sb_twilio_calls_queue("nope", n);
    CHECK_EQ_STR(n, "");
}

static void test_documents(void)
{
    check_doc(sb_twiml_calls_hold("park-1"), DECL
              "<Response><Dial><Conference startConferenceOnEnter=\"false\" endConferenceOnExit=\"true\" "
              "beep=\"false\">park-1</Conference></Dial></Response>");
    check_doc(sb_twiml_calls_join("park-1", true),
              DECL "<Response><Dial><Conference startConferenceOnEnter=\"true\" endConferenceOnExit=\"true\" "
                   "beep=\"false\">park-1</Conference></Dial></Response>");
    check_doc(sb_twiml_calls_join("call-1", false), DECL
              "<Response><Dial><Conference startConferenceOnEnter=\"true\" endConferenceOnExit=\"false\" "
              "beep=\"false\">call-1</Conference></Dial></Response>");
    /* A browser: no caller id (it is a number's); the action's & escaped. */
    check_doc(sb_twiml_calls_dial("client:agent_1", "+14155550100", "https://x/fallback?w=1&c=2"),
              DECL "<Response><Dial timeout=\"20\" action=\"https://x/fallback?w=1&amp;c=2\" method=\"POST\">"
                   "<Client>agent_1</Client></Dial></Response>");
    check_doc(sb_twiml_calls_dial("+14155550142", "+14155550100", NULL), DECL
              "<Response><Dial timeout=\"20\" callerId=\"+14155550100\"><Number>+14155550142</Number></Dial>"
              "</Response>");
    check_doc(sb_twiml_calls_enqueue("ws_1", NULL), DECL "<Response><Enqueue>ws_1</Enqueue></Response>");
    check_doc(
        sb_twiml_calls_enqueue("ws_1", "https://x/hold?w=1"), DECL
        "<Response><Enqueue waitUrl=\"https://x/hold?w=1\" waitUrlMethod=\"POST\">ws_1</Enqueue></Response>");
    check_doc(sb_twiml_calls_gone("Gone <now>"),
              DECL "<Response><Say>Gone &lt;now&gt;</Say><Hangup/></Response>");
    check_doc(sb_twiml_calls_hangup(), DECL "<Response><Hangup/></Response>");
}

static void test_refusals(void)
{
    CHECK(sb_twiml_calls_hold(NULL) == NULL);
    CHECK(sb_twiml_calls_hold("") == NULL);
    CHECK(sb_twiml_calls_join(NULL, true) == NULL);
    CHECK(sb_twiml_calls_dial(NULL, NULL, NULL) == NULL);
    CHECK(sb_twiml_calls_dial("client:", NULL, NULL) == NULL);
    CHECK(sb_twiml_calls_dial("4155550142", NULL, NULL) == NULL); /* not E.164 */
    CHECK(sb_twiml_calls_enqueue("", NULL) == NULL);
}

int main(void)
{
    SBTEST_RUN(test_identity);
    SBTEST_RUN(test_names);
    SBTEST_RUN(test_documents);
    SBTEST_RUN(test_refusals);
    return sbtest_summary();
}
