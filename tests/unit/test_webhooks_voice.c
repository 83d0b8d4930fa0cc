/* The voice webhooks' pure parts: reading Twilio's voice parameters, our ids in callback URLs,
 * call ids by CallSid, client identities and queue names, and the TwiML answers (their exact text:
 * the e2e test parses them with a real XML parser). */
#include "core/error.h"
#include "http/webhooks_voice.h"
#include "providers/twilio_voice.h"
#include "sbtest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CA "CA0123456789abcdef0123456789abcdef"
#define CA2 "CAffffffffffffffffffffffffffffffff"
#define AC "AC0123456789abcdef0123456789abcdef"
#define WS "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
#define USER "0190ffff-0000-7000-8000-00000000abcd"
#define CALL "0190eeee-1111-7222-8333-444455556666"
#define BASE "https://sb.example.com"

static sb_form_t form(const char *s)
{
    sb_form_t f = SB_FORM_INIT;
    if (sb_form_parse(s, strlen(s), &f) != 0)
        fprintf(stderr, "bad test form: %s\n", s);
    return f;
}

static int parse(const char *s, sb_wh_call_t *c, const char **field, sb_form_t *f)
{
    *f = form(s);
    return sb_wh_parse_call(f, c, field);
}

static void test_parse_call(void)
{
    sb_form_t f;
    sb_wh_call_t c;
    const char *field = "x";
    CHECK_EQ_INT(parse("CallSid=" CA "&AccountSid=" AC
                       "&From=%2B14155550100&To=%2B15005550006&CallStatus=ringing"
                       "&Direction=inbound&ApiVersion=2010-04-01",
                       &c, &field, &f),
                 0);
    CHECK(field == NULL);
    CHECK_EQ_STR(c.call_sid, CA);
    CHECK_EQ_STR(c.account_sid, AC);
    CHECK_EQ_STR(c.from, "+14155550100");
    CHECK_EQ_STR(c.to, "+15005550006");
    CHECK_EQ_STR(c.call_status, "ringing");
    CHECK(c.parent_call_sid == NULL && c.dial_status == NULL && c.recording_url == NULL);
    CHECK_EQ_INT(c.recording_duration, -1);
    sb_form_free(&f);

    /* A <Dial> leg, a dial action, a recording. */
    CHECK_EQ_INT(
        parse("CallSid=" CA2 "&ParentCallSid=" CA "&AccountSid=" AC "&From=client%3Aw1_u2&To=&CallStatus="
              "in-progress&DialCallStatus=no-answer&RecordingUrl=https%3A%2F%2Fapi.twilio.com%2Fr%2FRE1"
              "&RecordingSid=RE0123456789abcdef0123456789abcdef&RecordingDuration=42&RecordingStatus="
              "completed",
              &c, &field, &f),
        0);
    CHECK_EQ_STR(c.parent_call_sid, CA);
    CHECK_EQ_STR(c.from, "client:w1_u2");
    CHECK_EQ_STR(c.to, "");
    CHECK_EQ_STR(c.dial_status, "no-answer");
    CHECK_EQ_STR(c.recording_url, "https://api.twilio.com/r/RE1");
    CHECK_EQ_INT(c.recording_duration, 42);
    CHECK_EQ_STR(c.recording_status, "completed");
    sb_form_free(&f);

    /* An empty ParentCallSid is none. */
    CHECK_EQ_INT(parse("CallSid=" CA "&AccountSid=" AC "&ParentCallSid=", &c, &field, &f), 0);
    CHECK(c.parent_call_sid == NULL);
    CHECK_EQ_STR(c.from, "");
    sb_form_free(&f);

    static const struct {
        const char *body, *field;
    } bad[] = {
        {"AccountSid=" AC, "CallSid"},
        {"CallSid=CA123&AccountSid=" AC, "CallSid"},
        {"CallSid=" AC "&AccountSid=" AC, "CallSid"},
        {"CallSid=" CA, "AccountSid"},
        {"CallSid=" CA "&AccountSid=" CA, "AccountSid"},
        {"CallSid=" CA "&AccountSid=" AC "&ParentCallSid=CAzz", "ParentCallSid"},
        {"CallSid=" CA "&AccountSid=" AC "&CallStatus=dancing", "CallStatus"},
        {"CallSid=" CA "&AccountSid=" AC "&DialCallStatus=ringing", "DialCallStatus"},
        {"CallSid=" CA "&AccountSid=" AC "&RecordingUrl=ftp%3A%2F%2Fx", "RecordingUrl"},
        {"CallSid=" CA "&AccountSid=" AC "&RecordingUrl=https%3A%2F%2Fa+b", "RecordingUrl"},
        {"CallSid=" CA "&AccountSid=" AC "&RecordingSid=CA0123456789abcdef0123456789abcdef", "RecordingSid"},
        {"CallSid=" CA "&AccountSid=" AC "&RecordingDuration=-1", "RecordingDuration"},
        {"CallSid=" CA "&AccountSid=" AC "&RecordingDuration=", "RecordingDuration"},
        {"CallSid=" CA "&AccountSid=" AC "&RecordingDuration=12345678901", "RecordingDuration"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        field = NULL;
        CHECK_EQ_INT(parse(bad[i].body, &c, &field, &f), SB_EINVAL);
        CHECK_EQ_STR(field, bad[i].field);
        sb_form_free(&f);
    }
    /* From / To are bounded. */
    char big[400];
    memset(big, '1', sizeof(big));
    big[0] = '%', big[1] = '2', big[2] = 'B';
    snprintf(big + 200, sizeof(big) - 200, "&CallSid=" CA "&AccountSid=" AC);
    char body[512];
    snprintf(body, sizeof(body), "From=%s", big);
    CHECK_EQ_INT(parse(body, &c, &field, &f), SB_EINVAL);
    CHECK_EQ_STR(field, "From");
    sb_form_free(&f);
}

static void test_ids(void)
{
    sb_wh_voice_ids_t ids;
    const char *q = "w=" WS "&call=" CALL "&a=" USER "&k=out";
    sb_wh_parse_voice_ids(q, strlen(q), &ids);
    CHECK_EQ_STR(ids.workspace, WS);
    CHECK_EQ_STR(ids.call, CALL);
    CHECK_EQ_STR(ids.agent, USER);
    CHECK(ids.outgoing);
    /* Upper case is read lower case; junk, repeats of nothing, and unknown names are ignored. */
    q = "x=1&w=0190A1B2-C3D4-7E5F-8A9B-0C1D2E3F4A5B&call=nope&&a&k=in";
    sb_wh_parse_voice_ids(q, strlen(q), &ids);
    CHECK_EQ_STR(ids.workspace, WS);
    CHECK_EQ_STR(ids.call, "");
    CHECK_EQ_STR(ids.agent, "");
    CHECK(!ids.outgoing);
    /* Only len bytes are read. */
    q = "w=" WS "&call=" CALL;
    sb_wh_parse_voice_ids(q, 2 + 36, &ids);
    CHECK_EQ_STR(ids.workspace, WS);
    CHECK_EQ_STR(ids.call, "");
    sb_wh_parse_voice_ids(NULL, 0, &ids);
    CHECK_EQ_STR(ids.workspace, "");
}

static void test_call_id(void)
{
    char a[SB_UUID_STRLEN + 1], b[SB_UUID_STRLEN + 1], c[SB_UUID_STRLEN + 1];
    sb_wh_call_id(CA, a);
    sb_wh_call_id(CA, b);
    sb_wh_call_id(CA2, c);
    CHECK_EQ_STR(a, b);
    CHECK(strcmp(a, c) != 0);
    CHECK_EQ_INT(strlen(a), 36);
}

static void test_identity(void)
{
    char id[SB_VOICE_IDENTITY_LEN + 1], ws[SB_UUID_STRLEN + 1], user[SB_UUID_STRLEN + 1];
    CHECK_EQ_INT(sb_voice_identity(WS, USER, id), 0);
    CHECK_EQ_STR(id, "w0190a1b2c3d47e5f8a9b0c1d2e3f4a5b_u0190ffff00007000800000000000abcd");
    CHECK_EQ_INT(strlen(id), SB_VOICE_IDENTITY_LEN);
    CHECK(sb_voice_identity_parse(id, ws, user));
    CHECK_EQ_STR(ws, WS);
    CHECK_EQ_STR(user, USER);
    char client[80];
    snprintf(client, sizeof(client), "client:%s", id);
    CHECK(sb_voice_identity_parse(client, ws, user));
    CHECK_EQ_STR(user, USER);
    CHECK_EQ_INT(sb_voice_identity("nope", USER, id), SB_EINVAL);
    CHECK(!sb_voice_identity_parse("client:alice", ws, user));
    CHECK(!sb_voice_identity_parse("w0190a1b2c3d47e5f8a9b0c1d2e3f4a5b_u0190ffff00007000800000000000ABCD", ws,
                                   user));
    CHECK(!sb_voice_identity_parse("w0190a1b2c3d47e5f8a9b0c1d2e3f4a5b_x0190ffff00007000800000000000abcd", ws,
                                   user));
    CHECK(!sb_voice_identity_parse("w0190a1b2c3d47e5f8a9b0c1d2e3f4a5b_u0190ffff00007000800000000000abc", ws,
                                   user));
    CHECK(!sb_voice_identity_parse(NULL, ws, user));
    char q[SB_VOICE_QUEUE_LEN + 1];
    CHECK_EQ_INT(sb_voice_queue(WS, q), 0);
    CHECK_EQ_STR(q, "ws_0190a1b2c3d47e5f8a9b0c1d2e3f4a5b");
}

#define DECL "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"

static void test_twiml(void)
{
    sb_wh_voice_ctx_t v = {BASE, WS, CALL};
    char *xml = NULL;
    size_t len = 0;
    CHECK_EQ_INT(sb_wh_twiml_ring_agent(&v, USER, &xml, &len), 0);
    CHECK_EQ_STR(xml, DECL
                 "<Response><Dial timeout=\"20\" action=\"" BASE "/webhooks/twilio/voice/dial?w=" WS
                 "&amp;call=" CALL "&amp;a=" USER "\" method=\"POST\" record=\"record-from-answer-dual\" "
                 "recordingStatusCallback=\"" BASE "/webhooks/twilio/voice/recording?w=" WS "&amp;call=" CALL
                 "\" recordingStatusCallbackEvent=\"completed\"><Client statusCallback=\"" BASE
                 "/webhooks/twilio/voice/status?w=" WS "&amp;call=" CALL "&amp;a=" USER
                 "\" statusCallbackMethod=\"POST\" statusCallbackEvent=\"ringing answered\">"
                 "w0190a1b2c3d47e5f8a9b0c1d2e3f4a5b_u0190ffff00007000800000000000abcd</Client></Dial>"
                 "</Response>");
    CHECK_EQ_INT(len, strlen(xml));
    free(xml);

    CHECK_EQ_INT(sb_wh_twiml_enqueue(&v, &xml, &len), 0);
    CHECK_EQ_STR(xml,
                 DECL "<Response><Enqueue waitUrl=\"" BASE "/webhooks/twilio/voice/hold?w=" WS
                      "\" waitUrlMethod=\"POST\">ws_0190a1b2c3d47e5f8a9b0c1d2e3f4a5b</Enqueue></Response>");
    free(xml);

    CHECK_EQ_INT(sb_wh_twiml_dial_number(&v, USER, "+15005550006", "+14155550100", &xml, &len), 0);
    CHECK(strstr(xml, "<Dial timeout=\"30\" callerId=\"+15005550006\" action=\"" BASE
                      "/webhooks/twilio/voice/dial?w=" WS "&amp;call=" CALL "&amp;a=" USER
                      "&amp;k=out\"") != NULL);
    CHECK(strstr(xml, "\">+14155550100</Number></Dial></Response>") != NULL);
    free(xml);

    sb_wh_voice_ctx_t nocall = {BASE, WS, NULL};
    CHECK_EQ_INT(sb_wh_twiml_take_queue(&nocall, USER, &xml, &len), 0);
    CHECK_EQ_STR(xml, DECL
                 "<Response><Dial><Queue url=\"" BASE "/webhooks/twilio/voice/dequeued?w=" WS "&amp;a=" USER
                 "\" method=\"POST\">ws_0190a1b2c3d47e5f8a9b0c1d2e3f4a5b</Queue></Dial></Response>");
    free(xml);
    CHECK_EQ_INT(sb_wh_twiml_take_queue(&nocall, "x", &xml, &len), SB_EINVAL);

    CHECK_EQ_INT(sb_wh_twiml_hangup("Bye <now> & \"then\"", &xml, &len), 0);
    CHECK_EQ_STR(xml, DECL "<Response><Say>Bye &lt;now&gt; &amp; &quot;then&quot;</Say><Hangup/></Response>");
    free(xml);
    CHECK_EQ_INT(sb_wh_twiml_hangup(NULL, &xml, &len), 0);
    CHECK_EQ_STR(xml, DECL "<Response><Hangup/></Response>");
    free(xml);

    CHECK_EQ_INT(sb_wh_twiml_hold(&xml, &len), 0);
    CHECK(strstr(xml, "<Play loop=\"0\">" SB_WH_HOLD_MUSIC "</Play></Response>") != NULL);
    free(xml);

    /* Missing pieces are refused, never written half. */
    xml = NULL;
    CHECK_EQ_INT(sb_wh_twiml_ring_agent(&nocall, USER, &xml, &len), SB_EINVAL);
    CHECK_EQ_INT(sb_wh_twiml_ring_agent(&v, "bob", &xml, &len), SB_EINVAL);
    CHECK_EQ_INT(sb_wh_twiml_dial_number(&v, USER, NULL, "+14155550100", &xml, &len), SB_EINVAL);
    sb_wh_voice_ctx_t nows = {BASE, "x", CALL};
    CHECK_EQ_INT(sb_wh_twiml_enqueue(&nows, &xml, &len), SB_EINVAL);
    CHECK(xml == NULL);
}

int main(void)
{
    SBTEST_RUN(test_parse_call);
    SBTEST_RUN(test_ids);
    SBTEST_RUN(test_call_id);
    SBTEST_RUN(test_identity);
    SBTEST_RUN(test_twiml);
    return sbtest_summary();
}
