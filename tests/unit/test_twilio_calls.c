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

static void test_identity(void)
{
    char id[SB_CALLS_IDENTITY_LEN + 1], back[SB_UUID_STRLEN + 1], client[64];
    CHECK(sb_twilio_calls_identity(USER, id));
    CHECK_EQ_STR(id, "agent_0190aaaabbbb7ccc8dddeeeeffff0001");
    CHECK(sb_twilio_calls_member(id, back));
    CHECK_EQ_STR(back, USER);
    CHECK(sb_twilio_calls_identity("0190AAAA-BBBB-7CCC-8DDD-EEEEFFFF0001", id));
    CHECK_EQ_STR(id, "agent_0190aaaabbbb7ccc8dddeeeeffff0001");
    CHECK(sb_twilio_calls_client(USER, client, sizeof client));
    CHECK_EQ_STR(client, "client:agent_0190aaaabbbb7ccc8dddeeeeffff0001");
    CHECK(sb_twilio_calls_member(client, back));
    CHECK_EQ_STR(back, USER);
    CHECK(!sb_twilio_calls_client(USER, client, 20)); /* too small */
    CHECK(!sb_twilio_calls_identity("not-a-uuid", id));
    CHECK(!sb_twilio_calls_identity(NULL, id));
    CHECK(!sb_twilio_calls_member("agent_0190", back));
    CHECK(!sb_twilio_calls_member("agent_0190aaaabbbb7ccc8dddeeeeffff000g", back));
    CHECK(!sb_twilio_calls_member("alice", back));
    CHECK(!sb_twilio_calls_member(NULL, back));
}

static void test_names(void)
{
    char n[SB_CALLS_NAME_MAX];
    sb_twilio_calls_park_room(USER, n);
    CHECK_EQ_STR(n, "park-" USER);
    sb_twilio_calls_room(USER, n);
    CHECK_EQ_STR(n, "call-" USER);
    sb_twilio_calls_queue(USER, n);
    CHECK_EQ_STR(n, "queue-" USER);
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
    check_doc(sb_twiml_calls_enqueue("queue-1"), DECL "<Response><Enqueue>queue-1</Enqueue></Response>");
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
    CHECK(sb_twiml_calls_enqueue("") == NULL);
}

int main(void)
{
    SBTEST_RUN(test_identity);
    SBTEST_RUN(test_names);
    SBTEST_RUN(test_documents);
    SBTEST_RUN(test_refusals);
    return sbtest_summary();
}
