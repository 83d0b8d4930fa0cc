/* Reading Twilio's and Resend's webhook parameters: inbound SMS, MMS and WhatsApp, status callbacks,
 * our ids in the StatusCallback query, Resend events, and inbound message ids. */
#include "core/error.h"
#include "http/webhooks_parse.h"
#include "sbtest.h"

#include <stdio.h>
#include <string.h>

#define SM "SM0123456789abcdef0123456789abcdef"
#define AC "AC0123456789abcdef0123456789abcdef"

static sb_form_t form(const char *s)
{
    sb_form_t f = SB_FORM_INIT;
    if (sb_form_parse(s, strlen(s), &f) != 0)
        fprintf(stderr, "bad test form: %s\n", s);
    return f;
}

static void test_inbound_sms(void)
{
    sb_form_t f =
        form("ToCountry=US&SmsMessageSid=" SM "&NumMedia=0&Body=Hello+there%21&MessageSid=" SM
             "&AccountSid=" AC "&From=%2B14155550100&To=%2B15005550006&NumSegments=1&ApiVersion=2010-04-01");
    sb_wh_inbound_t m;
    const char *field = "x";
    CHECK_EQ_INT(sb_wh_parse_inbound(&f, &m, &field), 0);
    CHECK(field == NULL);
    CHECK_EQ_STR(m.message_sid, SM);
    CHECK_EQ_STR(m.account_sid, AC);
    CHECK_EQ_STR(m.channel, "sms");
    CHECK_EQ_STR(m.from, "+14155550100");
    CHECK_EQ_STR(m.to, "+15005550006");
    CHECK_EQ_STR(m.body, "Hello there!");
    CHECK_EQ_INT(m.n_media, 0);
    CHECK(m.profile_name == NULL);
    sb_form_free(&f);

    /* SmsSid alone (older callbacks), no Body: an empty body */
    f = form("SmsSid=" SM "&AccountSid=" AC "&From=%2B14155550100&To=%2B15005550006");
    CHECK_EQ_INT(sb_wh_parse_inbound(&f, &m, &field), 0);
    CHECK_EQ_STR(m.body, "");
    sb_form_free(&f);
}

static void test_inbound_mms_whatsapp(void)
{
    sb_form_t f = form("MessageSid=MM0123456789abcdef0123456789abcdef&AccountSid=" AC
                       "&From=%2B14155550100&To=%2B15005550006&Body=&NumMedia=2"
                       "&MediaUrl0=https%3A%2F%2Fapi.twilio.com%2Fm%2F0&MediaContentType0=image%2Fjpeg"
                       "&MediaUrl1=https%3A%2F%2Fapi.twilio.com%2Fm%2F1");
    sb_wh_inbound_t m;
    const char *field;
    CHECK_EQ_INT(sb_wh_parse_inbound(&f, &m, &field), 0);
    CHECK_EQ_STR(m.channel, "mms");
    CHECK_EQ_INT(m.n_media, 2);
    CHECK_EQ_STR(m.media[0], "https://api.twilio.com/m/0");
    CHECK_EQ_STR(m.media[1], "https://api.twilio.com/m/1");
    sb_form_free(&f);

    f = form("MessageSid=" SM "&AccountSid=" AC "&From=whatsapp%3A%2B14155550100&To=whatsapp%3A%2B15005550006"
             "&Body=hola&ProfileName=Ana+Cliente&WaId=14155550100");
    CHECK_EQ_INT(sb_wh_parse_inbound(&f, &m, &field), 0);
    CHECK_EQ_STR(m.channel, "whatsapp");
    CHECK_EQ_STR(m.from, "+14155550100");
    CHECK_EQ_STR(m.to, "+15005550006");
    CHECK_EQ_STR(m.profile_name, "Ana Cliente");
    sb_form_free(&f);
}

/* Each field is found by its exact name, and a repeated name gives its first value (what
 * sb_form_get answers): near misses (case, a prefix, a longer name) are other fields. */
static void test_inbound_names(void)
{
    sb_form_t f = form("body=no&Body=first&Body=second&MediaUrl1=https%3A%2F%2Fx.example%2F1&MediaUrl=no&"
                       "MediaUrlA=no&MediaUrl10=no&MediaUrl0=https%3A%2F%2Fx.example%2F0&"
                       "MediaUrl1=https%3A%2F%2Fx.example%2Fsecond&MediaUrl2=https%3A%2F%2Fx.example%2F2&"
                       "NumMedia=3&NumMedia=0&Tos=%2B15005550001&To=whatsapp%3A%2B15005550006&"
                       "To=whatsapp%3A%2B15005550007&From=whatsapp%3A%2B14155550100&FromCity=X&"
                       "SmsSid=SMffffffffffffffffffffffffffffffff&MessageSid=" SM "&MessageSid=x&"
                       "AccountSid=" AC "&AccountSid=x&ProfileNam=no&ProfileName=Bea&ProfileName=B");
    sb_wh_inbound_t m;
    const char *field = "x";
    CHECK_EQ_INT(sb_wh_parse_inbound(&f, &m, &field), 0);
    CHECK(field == NULL);
    CHECK_EQ_STR(m.message_sid, SM);
    CHECK_EQ_STR(m.account_sid, AC);
    CHECK_EQ_STR(m.channel, "whatsapp");
    CHECK_EQ_STR(m.from, "+14155550100");
    CHECK_EQ_STR(m.to, "+15005550006");
    CHECK_EQ_STR(m.body, "first");
    if (CHECK_EQ_INT(m.n_media, 3)) {
        CHECK_EQ_STR(m.media[0], "https://x.example/0");
        CHECK_EQ_STR(m.media[1], "https://x.example/1");
        CHECK_EQ_STR(m.media[2], "https://x.example/2");
    }
    CHECK_EQ_STR(m.profile_name, "Bea");
    sb_form_free(&f);

    /* SmsMessageSid before SmsSid when MessageSid is missing; a missing MediaUrl named. */
    f = form("SmsSid=x&SmsMessageSid=" SM "&AccountSid=" AC "&From=%2B14155550100&To=%2B15005550006&"
             "NumMedia=2&MediaUrl0=https%3A%2F%2Fx.example%2F0&mediaurl1=https%3A%2F%2Fx.example%2F1");
    CHECK_EQ_INT(sb_wh_parse_inbound(&f, &m, &field), SB_EINVAL);
    CHECK_EQ_STR(field, "MediaUrl1");
    sb_form_free(&f);
}

static void test_inbound_malformed(void)
{
    static const struct {
        const char *form, *field;
    } cases[] = {
        {"AccountSid=" AC "&From=%2B14155550100&To=%2B15005550006", "MessageSid"},
        {"MessageSid=SMnothex&AccountSid=" AC "&From=%2B14155550100&To=%2B15005550006", "MessageSid"},
        {"MessageSid=" SM "&From=%2B14155550100&To=%2B15005550006", "AccountSid"},
        {"MessageSid=" SM "&AccountSid=" SM "&From=%2B14155550100&To=%2B15005550006", "AccountSid"},
        {"MessageSid=" SM "&AccountSid=" AC "&To=%2B15005550006", "From"},
        {"MessageSid=" SM "&AccountSid=" AC "&From=12345&To=%2B15005550006", "From"},
        {"MessageSid=" SM "&AccountSid=" AC "&From=ACMEBANK&To=%2B15005550006", "From"},
        {"MessageSid=" SM "&AccountSid=" AC "&From=%2B14155550100", "To"},
        {"MessageSid=" SM "&AccountSid=" AC "&From=whatsapp%3A%2B14155550100&To=%2B15005550006", "To"},
        {"MessageSid=" SM "&AccountSid=" AC "&From=%2B14155550100&To=%2B15005550006&NumMedia=x", "NumMedia"},
        {"MessageSid=" SM "&AccountSid=" AC "&From=%2B14155550100&To=%2B15005550006&NumMedia=11", "NumMedia"},
        {"MessageSid=" SM "&AccountSid=" AC "&From=%2B14155550100&To=%2B15005550006&NumMedia=-1", "NumMedia"},
        {"MessageSid=" SM "&AccountSid=" AC "&From=%2B14155550100&To=%2B15005550006&NumMedia=1", "MediaUrl0"},
        {"MessageSid=" SM "&AccountSid=" AC
         "&From=%2B14155550100&To=%2B15005550006&NumMedia=1&MediaUrl0=ftp%3A%2F%2Fx",
         "MediaUrl0"},
        {"MessageSid=" SM "&AccountSid=" AC
         "&From=%2B14155550100&To=%2B15005550006&NumMedia=2&MediaUrl0=https%3A%2F%2Fa.b",
         "MediaUrl1"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sb_form_t f = form(cases[i].form);
        sb_wh_inbound_t m;
        const char *field = NULL;
        if (!CHECK_EQ_INT(sb_wh_parse_inbound(&f, &m, &field), SB_EINVAL))
            fprintf(stderr, "  case %zu: %s\n", i, cases[i].form);
        CHECK_EQ_STR(field, cases[i].field);
        sb_form_free(&f);
    }
}

static void test_status(void)
{
    static const struct {
        const char *twilio, *ours;
    } cases[] = {{"queued", NULL},
                 {"sending", NULL},
                 {"accepted", NULL},
                 {"sent", "sent"},
                 {"delivered", "delivered"},
                 {"read", "read"},
                 {"failed", "failed"},
                 {"undelivered", "undelivered"},
                 {"partially_delivered", "delivered"},
                 {"canceled", "failed"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char s[512];
        snprintf(s, sizeof(s),
                 "MessageSid=%s&AccountSid=%s&MessageStatus=%s&From=%%2B15005550006&To=%%2B14155550100", SM,
                 AC, cases[i].twilio);
        sb_form_t f = form(s);
        sb_wh_status_t st;
        const char *field;
        CHECK_EQ_INT(sb_wh_parse_status(&f, &st, &field), 0);
        CHECK_EQ_STR(st.status, cases[i].ours);
        CHECK_EQ_STR(st.twilio_status, cases[i].twilio);
        CHECK_EQ_STR(st.from, "+15005550006");
        sb_form_free(&f);
    }
    sb_form_t f = form("MessageSid=" SM "&AccountSid=" AC "&MessageStatus=undelivered&ErrorCode=30003"
                       "&ErrorMessage=Unreachable+destination+handset");
    sb_wh_status_t st;
    const char *field;
    CHECK_EQ_INT(sb_wh_parse_status(&f, &st, &field), 0);
    CHECK_EQ_STR(st.error_code, "30003");
    CHECK_EQ_STR(st.error, "Unreachable destination handset");
    CHECK_EQ_STR(st.from, "");
    sb_form_free(&f);

    const char *badforms[][2] = {
        {"AccountSid=" AC "&MessageStatus=sent", "MessageSid"},
        {"MessageSid=" SM "&MessageStatus=sent", "AccountSid"},
        {"MessageSid=" SM "&AccountSid=" AC, "MessageStatus"},
        {"MessageSid=" SM "&AccountSid=" AC "&MessageStatus=exploded", "MessageStatus"},
        {"MessageSid=" SM "&AccountSid=" AC "&MessageStatus=failed&ErrorCode=3x", "ErrorCode"},
        {"MessageSid=" SM "&AccountSid=" AC "&MessageStatus=failed&ErrorCode=12345678901", "ErrorCode"},
    };
    for (size_t i = 0; i < sizeof(badforms) / sizeof(badforms[0]); i++) {
        f = form(badforms[i][0]);
        field = NULL;
        CHECK_EQ_INT(sb_wh_parse_status(&f, &st, &field), SB_EINVAL);
        CHECK_EQ_STR(field, badforms[i][1]);
        sb_form_free(&f);
    }
}

static void test_ids(void)
{
    static const char q[] = "w=0190A0B0-0000-7000-8000-000000000001&c=0190a0b0-0000-7000-8000-000000000002"
                            "&m=0190a0b0-0000-7000-8000-000000000003";
    sb_wh_ids_t ids;
    CHECK(sb_wh_parse_ids(q, strlen(q), &ids));
    CHECK_EQ_STR(ids.workspace, "0190a0b0-0000-7000-8000-000000000001");
    CHECK_EQ_STR(ids.contact, "0190a0b0-0000-7000-8000-000000000002");
    CHECK_EQ_STR(ids.message, "0190a0b0-0000-7000-8000-000000000003");
    const char *bad[] = {"", "w=x&c=y&m=z", "w=0190a0b0-0000-7000-8000-000000000001",
                         "w=0190a0b0-0000-7000-8000-000000000001&c=0190a0b0-0000-7000-8000-000000000002"
                         "&m=0190a0b0-0000-7000-8000-000000000003&m=0190a0b0-0000-7000-8000-000000000004",
                         "w=%zz"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK(!sb_wh_parse_ids(bad[i], strlen(bad[i]), &ids));
        CHECK_EQ_STR(ids.message, "");
    }
}

static void test_email(void)
{
    const char *doc =
        "{\"type\":\"email.bounced\",\"created_at\":\"2026-01-01T00:00:00Z\",\"data\":"
        "{\"email_id\":\"4ef9a417-02e9-4d39-ad75-9611e0fcc33c\",\"from\":\"a@b.co\",\"to\":[\"x@y.co\"],"
        "\"subject\":\"hi\",\"bounce\":{\"message\":\"mailbox full\"},"
        "\"tags\":{\"workspace_id\":\"0190a0b0-0000-7000-8000-000000000001\","
        "\"contact_id\":\"0190a0b0-0000-7000-8000-000000000002\","
        "\"message_id\":\"0190a0b0-0000-7000-8000-000000000003\"}}}";
    json_t *j = json_loads(doc, 0, NULL);
    sb_wh_email_t e;
    const char *field;
    CHECK_EQ_INT(sb_wh_parse_email(j, &e, &field), 0);
    CHECK_EQ_INT(e.kind, SB_WH_EMAIL_STATUS);
    CHECK_EQ_STR(e.status, "undelivered");
    CHECK_EQ_STR(e.error_code, "bounced");
    CHECK_EQ_STR(e.error, "mailbox full");
    CHECK_EQ_STR(e.to, "x@y.co");
    CHECK(e.has_ids);
    CHECK_EQ_STR(e.ids.message, "0190a0b0-0000-7000-8000-000000000003");
    json_decref(j);

    /* tags as an array of {name, value}; delivered, opened, complained, ignored types */
    static const struct {
        const char *type;
        sb_wh_email_kind_t kind;
        const char *status;
    } cases[] = {{"email.delivered", SB_WH_EMAIL_STATUS, "delivered"},
                 {"email.opened", SB_WH_EMAIL_STATUS, "read"},
                 {"email.sent", SB_WH_EMAIL_STATUS, "sent"},
                 {"email.complained", SB_WH_EMAIL_COMPLAINED, NULL},
                 {"email.delivery_delayed", SB_WH_EMAIL_IGNORED, NULL}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        j = json_pack("{s:s, s:{s:s, s:[s], s:[{s:s, s:s}, {s:s, s:s}, {s:s, s:s}]}}", "type", cases[i].type,
                      "data", "email_id", "e1", "to", "x@y.co", "tags", "name", "message_id", "value",
                      "0190a0b0-0000-7000-8000-000000000003", "name", "contact_id", "value",
                      "0190a0b0-0000-7000-8000-000000000002", "name", "workspace_id", "value",
                      "0190a0b0-0000-7000-8000-000000000001");
        CHECK_EQ_INT(sb_wh_parse_email(j, &e, &field), 0);
        CHECK_EQ_INT(e.kind, cases[i].kind);
        CHECK_EQ_STR(e.status, cases[i].status);
        CHECK(e.has_ids);
        json_decref(j);
    }
    /* without tags: no ids (the handler looks the provider id up instead) */
    j = json_pack("{s:s, s:{s:s}}", "type", "email.delivered", "data", "email_id", "e1");
    CHECK_EQ_INT(sb_wh_parse_email(j, &e, &field), 0);
    CHECK(!e.has_ids);
    json_decref(j);
    /* malformed */
    const char *bad[][2] = {{"[]", "type"},
                            {"{\"data\":{}}", "type"},
                            {"{\"type\":\"email.sent\"}", "data"},
                            {"{\"type\":\"email.sent\",\"data\":[]}", "data"},
                            {"{\"type\":\"email.sent\",\"data\":{}}", "data.email_id"},
                            {"{\"type\":\"email.sent\",\"data\":{\"email_id\":\"\"}}", "data.email_id"}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        j = json_loads(bad[i][0], JSON_DECODE_ANY, NULL);
        field = NULL;
        CHECK_EQ_INT(sb_wh_parse_email(j, &e, &field), SB_EINVAL);
        CHECK_EQ_STR(field, bad[i][1]);
        json_decref(j);
    }
}

static void test_message_ids(void)
{
    char a[SB_UUID_STRLEN + 1], b[SB_UUID_STRLEN + 1], c[SB_UUID_STRLEN + 1];
    sb_wh_inbound_message_id("twilio", SM, a);
    sb_wh_inbound_message_id("twilio", SM, b);
    sb_wh_inbound_message_id("twilio", "SM0123456789abcdef0123456789abcdee", c);
    CHECK_EQ_STR(a, b);
    CHECK(strcmp(a, c) != 0);
    sb_uuid_t u;
    CHECK_EQ_INT(sb_uuid_parse(a, SB_UUID_STRLEN, &u), 0);
    /* The ids recorded so far were named "provider:sid" cut at 255 bytes: the same ids now
     * (Python: uuid.uuid5(ns, name), ns the file's inbound namespace). */
    CHECK_EQ_STR(a, "1f34a8ff-b37c-5a70-8125-c9fe68b715b3");
    char longer[301];
    memset(longer, 'S', 300);
    longer[300] = '\0';
    sb_wh_inbound_message_id("twilio", longer, c);
    CHECK_EQ_STR(c, "b88eec31-9782-5f59-8aac-5959014e9079");
    char provider[300];
    memset(provider, 'e', 299);
    provider[299] = '\0';
    sb_wh_inbound_message_id(provider, SM, c);
    CHECK_EQ_STR(c, "450192c1-1bc5-5e1f-b4a0-83ace81d9209");
}

int main(void)
{
    SBTEST_RUN(test_inbound_sms);
    SBTEST_RUN(test_inbound_mms_whatsapp);
    SBTEST_RUN(test_inbound_names);
    SBTEST_RUN(test_inbound_malformed);
    SBTEST_RUN(test_status);
    SBTEST_RUN(test_ids);
    SBTEST_RUN(test_email);
    SBTEST_RUN(test_message_ids);
    return sbtest_summary();
}
