/* The Twilio and Resend clients against the fake provider (tests/support/fakeprov.h): what goes
 * out (recorded by the fake and read back through its admin API), answers, Twilio's and Resend's
 * error JSON, retries on 500 and 429 (Retry-After), calls, the set-up requests, and arguments
 * refused before anything is sent.  test_http_client.c has the HTTP client itself. */
#include "core/error.h"
#include "core/loop.h"
#include "fakeprov.h"
#include "providers/form.h"
#include "providers/http_client.h"
#include "providers/resend.h"
#include "providers/twilio.h"
#include "sbtest.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

static sbtest_fake_t F;

/* ---- Twilio results --------------------------------------------------------------------------- */

typedef struct {
    bool done;
    int error;
    long status;
    int code;
    int attempts;
    char message[256];
    char sid[64];
    char resource_status[32];
    char next_page[512];
    json_t *json;
    uint64_t at;
} tw_result_t;

static void on_twilio(const sb_twilio_result_t *r, void *data)
{
    tw_result_t *res = data;
    res->done = true;
    res->error = r->error;
    res->status = r->status;
    res->code = r->code;
    res->attempts = r->http->attempts;
    snprintf(res->message, sizeof res->message, "%s", r->message);
    snprintf(res->sid, sizeof res->sid, "%s", r->sid ? r->sid : "");
    snprintf(res->resource_status, sizeof res->resource_status, "%s",
             r->resource_status ? r->resource_status : "");
    snprintf(res->next_page, sizeof res->next_page, "%s", r->next_page_uri ? r->next_page_uri : "");
    res->json = json_incref(r->json);
    res->at = uv_now(&F.loop.uv);
}

static void tw_free(tw_result_t *r)
{
    json_decref(r->json);
    memset(r, 0, sizeof(*r));
}

#define TW_RUN(call)                                                                                         \
    do {                                                                                                     \
        tw_free(&r);                                                                                         \
        if (CHECK_EQ_INT((call), 0))                                                                         \
            sbtest_run_until(&F, &r.done);                                                                   \
    } while (0)

/* ---- tests ------------------------------------------------------------------------------------ */
static void test_send_message(void)
{
    sbtest_fake_reset(&F);
    char sid[64], token[64];
    sbtest_fake_account(&F, 2, sid, token);
    sb_twilio_t tw;
    if (!CHECK_EQ_INT(sb_twilio_init(&tw, F.client, F.url, sid, token), 0))
        return;
    const char *media[] = {"https://example.com/a.jpg", "https://example.com/b c.png"};
    sb_twilio_message_t m = {.to = "+15551230001",
                             .from = "+15559990000",
                             .body = "Hi & welcome = 100% \xf0\x9f\x91\x8b",
                             .media_urls = media,
                             .n_media = 2,
                             .status_callback = "http://127.0.0.1:8080/webhooks/twilio/messaging/status"};
    tw_result_t r = {0};
    TW_RUN(sb_twilio_send_message(&tw, &m, on_twilio, &r, NULL));
    CHECK_EQ_INT(r.error, 0);
    CHECK_EQ_INT(r.status, 201);
    CHECK(sb_twilio_sid_is_valid(r.sid, "MM"));
    CHECK_EQ_STR(r.resource_status, "queued");
    CHECK_EQ_STR(json_string_value(json_object_get(r.json, "to")), "+15551230001");

    char path[1024];
    snprintf(path, sizeof path, "/2010-04-01/Accounts/%s/Messages.json", sid);
    json_t *recs = sbtest_fake_recorded(&F, path);
    if (CHECK_EQ_UINT(json_array_size(recs), 1)) {
        json_t *rec = json_array_get(recs, 0);
        CHECK_EQ_STR(json_string_value(json_object_get(rec, "method")), "POST");
        sb_buf_t lines = SB_BUF_INIT;
        sbtest_fake_form_lines(rec, &lines);
        CHECK_EQ_STR(lines.data,
                     "To=+15551230001\nFrom=+15559990000\nBody=Hi & welcome = 100% \xf0\x9f\x91\x8b\n"
                     "MediaUrl=https://example.com/a.jpg\nMediaUrl=https://example.com/b c.png\n"
                     "StatusCallback=http://127.0.0.1:8080/webhooks/twilio/messaging/status\n");
        sb_buf_free(&lines);
        json_t *auth = json_object_get(rec, "auth");
        CHECK_EQ_STR(json_string_value(json_object_get(auth, "user")), sid);
        CHECK_EQ_STR(json_string_value(json_object_get(auth, "pass")), token);
        json_t *h = json_object_get(rec, "headers");
        CHECK_EQ_STR(json_string_value(json_object_get(h, "content-type")),
                     "application/x-www-form-urlencoded");
        CHECK(json_object_get(h, "expect") == NULL);
    }
    json_decref(recs);

    /* An API key works as credentials too. */
    tw_result_t k = {0};
    if (CHECK_EQ_INT(sb_twilio_create_key(&tw, "switchboard", on_twilio, &k, NULL), 0))
        sbtest_run_until(&F, &k.done);
    sb_twilio_t tw2 = tw;
    if (CHECK_EQ_INT(sb_twilio_use_api_key(&tw2, k.sid, json_string_value(json_object_get(k.json, "secret"))),
                     0)) {
        m.n_media = 0;
        TW_RUN(sb_twilio_send_message(&tw2, &m, on_twilio, &r, NULL));
        CHECK_EQ_INT(r.error, 0);
        CHECK(sb_twilio_sid_is_valid(r.sid, "SM"));
    }
    tw_free(&k);
    tw_free(&r);
    sb_twilio_clear(&tw);
    sb_twilio_clear(&tw2);
}

static void test_twilio_errors(void)
{
    sbtest_fake_reset(&F);
    char sid[64], token[64];
    sbtest_fake_account(&F, 0, sid, token);
    sb_twilio_t tw;
    sb_twilio_init(&tw, F.client, F.url, sid, token);
    tw_result_t r = {0};
    sb_twilio_message_t m = {.to = "12", .from = "+15559990000", .body = "x"};
    TW_RUN(sb_twilio_send_message(&tw, &m, on_twilio, &r, NULL));
    CHECK_EQ_INT(r.error, SB_EREJECTED);
    CHECK_EQ_INT(r.status, 400);
    CHECK_EQ_INT(r.code, 21211);
    CHECK(strstr(r.message, "is not a valid phone number") != NULL);

    sb_twilio_t bad;
    sb_twilio_init(&bad, F.client, F.url, sid, "wrong-token");
    TW_RUN(sb_twilio_fetch_account(&bad, on_twilio, &r, NULL));
    CHECK_EQ_INT(r.error, SB_EREJECTED);
    CHECK_EQ_INT(r.status, 401);
    CHECK_EQ_INT(r.code, 20003);
    CHECK_EQ_STR(r.message, "Authenticate");

    TW_RUN(sb_twilio_fetch_account(&tw, on_twilio, &r, NULL));
    CHECK_EQ_INT(r.error, 0);
    CHECK_EQ_STR(r.sid, sid);
    CHECK_EQ_STR(r.resource_status, "active");

    /* A 5xx without JSON still carries the status. */
    char path[256];
    snprintf(path, sizeof path, "/2010-04-01/Accounts/%s/Messages.json", sid);
    char spec[2048];
    snprintf(spec, sizeof spec, "{\"path\":\"%s\",\"status\":502,\"body\":\"Bad Gateway\"}", path);
    sbtest_fake_fault(&F, spec);
    m.to = "+15551230001";
    TW_RUN(sb_twilio_send_message(&tw, &m, on_twilio, &r, NULL));
    CHECK_EQ_INT(r.error, SB_EREJECTED);
    CHECK_EQ_INT(r.status, 502);
    CHECK_EQ_INT(r.code, 0);
    CHECK_EQ_STR(r.message, "HTTP 502");
    tw_free(&r);
}

static void test_retry_500(void)
{
    sbtest_fake_reset(&F);
    char sid[64], token[64];
    sbtest_fake_account(&F, 0, sid, token);
    sb_twilio_t tw;
    sb_twilio_init(&tw, F.client, F.url, sid, token);
    char path[1024], spec[2048];
    snprintf(path, sizeof path, "/2010-04-01/Accounts/%s/Messages.json", sid);
    snprintf(spec, sizeof spec, "{\"path\":\"%s\",\"status\":500,\"times\":2}", path);
    sbtest_fake_fault(&F, spec);
    sb_http_retry_t retry = {.max_attempts = 4, .base_ms = 20, .cap_ms = 100};
    tw.retry = &retry;
    sb_twilio_message_t m = {.to = "+15551230001", .from = "+15559990000", .body = "retry me"};
    tw_result_t r = {0};
    sb_http_stats_t before, after;
    sb_http_client_stats(F.client, &before);
    TW_RUN(sb_twilio_send_message(&tw, &m, on_twilio, &r, NULL));
    sb_http_client_stats(F.client, &after);
    CHECK_EQ_INT(r.error, 0);
    CHECK_EQ_INT(r.status, 201);
    CHECK_EQ_INT(r.attempts, 3);
    CHECK_EQ_UINT(after.retries - before.retries, 2);
    json_t *recs = sbtest_fake_recorded(&F, path);
    CHECK_EQ_UINT(json_array_size(recs), 3);
    json_decref(recs);

    /* Out of attempts: the last answer is what the callback sees. */
    snprintf(spec, sizeof spec, "{\"path\":\"%s\",\"status\":503,\"times\":5}", path);
    sbtest_fake_fault(&F, spec);
    retry.max_attempts = 2;
    TW_RUN(sb_twilio_send_message(&tw, &m, on_twilio, &r, NULL));
    CHECK_EQ_INT(r.error, SB_EREJECTED);
    CHECK_EQ_INT(r.status, 503);
    CHECK_EQ_INT(r.code, 20500);
    CHECK_EQ_INT(r.attempts, 2);

    /* A 4xx is never retried. */
    json_decref(sbtest_fake_admin(&F, "DELETE", "/__admin/faults", NULL));
    retry.max_attempts = 5;
    m.to = "bad";
    TW_RUN(sb_twilio_send_message(&tw, &m, on_twilio, &r, NULL));
    CHECK_EQ_INT(r.status, 400);
    CHECK_EQ_INT(r.attempts, 1);
    tw_free(&r);
}

static void test_retry_after_429(void)
{
    sbtest_fake_reset(&F);
    char sid[64], token[64];
    sbtest_fake_account(&F, 0, sid, token);
    sb_twilio_t tw;
    sb_twilio_init(&tw, F.client, F.url, sid, token);
    char path[1024], spec[2048];
    snprintf(path, sizeof path, "/2010-04-01/Accounts/%s/Calls.json", sid);
    snprintf(spec, sizeof spec,
             "{\"path\":\"%s\",\"status\":429,\"headers\":{\"Retry-After\":\"1\"},"
             "\"body\":{\"code\":20429,\"message\":\"Too Many Requests\",\"status\":429}}",
             path);
    sbtest_fake_fault(&F, spec);
    sb_http_retry_t retry = {.max_attempts = 3, .base_ms = 10, .cap_ms = 20};
    tw.retry = &retry;
    const char *events[] = {"initiated", "ringing", "answered", "completed"};
    sb_twilio_call_t c = {.to = "+15551230001",
                          .from = "+15559990000",
                          .url = "http://127.0.0.1:8080/webhooks/twilio/voice",
                          .status_callback = "http://127.0.0.1:8080/webhooks/twilio/voice/status",
                          .status_events = events,
                          .n_events = 4};
    tw_result_t r = {0};
    uv_update_time(&F.loop.uv);
    uint64_t t0 = uv_now(&F.loop.uv);
    TW_RUN(sb_twilio_create_call(&tw, &c, on_twilio, &r, NULL));
    CHECK_EQ_INT(r.error, 0);
    CHECK_EQ_INT(r.attempts, 2);
    CHECK(sb_twilio_sid_is_valid(r.sid, "CA"));
    /* Waited for Retry-After (1 s), not the 10 ms backoff. */
    CHECK(r.at - t0 >= 1000);

    /* A Retry-After longer than the policy accepts gives up at once. */
    snprintf(spec, sizeof spec, "{\"path\":\"%s\",\"status\":429,\"headers\":{\"Retry-After\":\"600\"}}",
             path);
    sbtest_fake_fault(&F, spec);
    uv_update_time(&F.loop.uv);
    t0 = uv_now(&F.loop.uv);
    TW_RUN(sb_twilio_create_call(&tw, &c, on_twilio, &r, NULL));
    CHECK_EQ_INT(r.status, 429);
    CHECK_EQ_INT(r.attempts, 1);
    CHECK(r.at - t0 < 1000);

    json_t *recs = sbtest_fake_recorded(&F, path);
    if (CHECK_EQ_UINT(json_array_size(recs), 3)) {
        sb_buf_t lines = SB_BUF_INIT;
        sbtest_fake_form_lines(json_array_get(recs, 1), &lines);
        CHECK_EQ_STR(lines.data,
                     "To=+15551230001\nFrom=+15559990000\nUrl=http://127.0.0.1:8080/webhooks/twilio/voice\n"
                     "StatusCallback=http://127.0.0.1:8080/webhooks/twilio/voice/status\n"
                     "StatusCallbackMethod=POST\nStatusCallbackEvent=initiated\n"
                     "StatusCallbackEvent=ringing\nStatusCallbackEvent=answered\n"
                     "StatusCallbackEvent=completed\n");
        sb_buf_free(&lines);
    }
    json_decref(recs);
    tw_free(&r);
}

static void test_calls(void)
{
    sbtest_fake_reset(&F);
    char sid[64], token[64];
    sbtest_fake_account(&F, 0, sid, token);
    sb_twilio_t tw;
    sb_twilio_init(&tw, F.client, F.url, sid, token);
    tw_result_t r = {0};
    sb_twilio_call_t c = {
        .to = "+15551230001", .from = "+15559990000", .twiml = "<Response><Say>Hi</Say></Response>"};
    TW_RUN(sb_twilio_create_call(&tw, &c, on_twilio, &r, NULL));
    CHECK_EQ_INT(r.error, 0);
    char call_sid[64];
    snprintf(call_sid, sizeof call_sid, "%s", r.sid);
    sb_twilio_call_update_t park = {.twiml = "<Response><Enqueue>park</Enqueue></Response>"};
    TW_RUN(sb_twilio_update_call(&tw, call_sid, &park, on_twilio, &r, NULL));
    CHECK_EQ_INT(r.error, 0);
    CHECK_EQ_STR(r.resource_status, "in-progress");
    sb_twilio_call_update_t hangup = {.complete = true};
    TW_RUN(sb_twilio_update_call(&tw, call_sid, &hangup, on_twilio, &r, NULL));
    CHECK_EQ_STR(r.resource_status, "completed");
    /* An unknown call: Twilio's 404. */
    TW_RUN(sb_twilio_update_call(&tw, "CA00000000000000000000000000000000", &hangup, on_twilio, &r, NULL));
    CHECK_EQ_INT(r.error, SB_EREJECTED);
    CHECK_EQ_INT(r.status, 404);
    CHECK_EQ_INT(r.code, 20404);

    char path[1024];
    snprintf(path, sizeof path, "/2010-04-01/Accounts/%s/Calls/%s.json", sid, call_sid);
    json_t *recs = sbtest_fake_recorded(&F, path);
    if (CHECK_EQ_UINT(json_array_size(recs), 2)) {
        sb_buf_t lines = SB_BUF_INIT;
        sbtest_fake_form_lines(json_array_get(recs, 0), &lines);
        sbtest_fake_form_lines(json_array_get(recs, 1), &lines);
        CHECK_EQ_STR(lines.data, "Twiml=<Response><Enqueue>park</Enqueue></Response>\nStatus=completed\n");
        sb_buf_free(&lines);
    }
    json_decref(recs);
    tw_free(&r);
}

static void test_setup(void)
{
    sbtest_fake_reset(&F);
    char sid[64], token[64];
    sbtest_fake_account(&F, 5, sid, token);
    sb_twilio_t tw;
    sb_twilio_init(&tw, F.client, F.url, sid, token);
    tw_result_t r = {0};

    TW_RUN(sb_twilio_create_key(&tw, "switchboard", on_twilio, &r, NULL));
    CHECK_EQ_INT(r.status, 201);
    CHECK(sb_twilio_sid_is_valid(r.sid, "SK"));
    CHECK(json_string_length(json_object_get(r.json, "secret")) >= 32);

    sb_twilio_app_t app = {.friendly_name = "Switchboard",
                           .voice_url = "http://127.0.0.1:8080/webhooks/twilio/voice",
                           .status_callback = "http://127.0.0.1:8080/webhooks/twilio/voice/status"};
    TW_RUN(sb_twilio_create_app(&tw, &app, on_twilio, &r, NULL));
    CHECK_EQ_INT(r.status, 201);
    char app_sid[64];
    snprintf(app_sid, sizeof app_sid, "%s", r.sid);
    CHECK(sb_twilio_sid_is_valid(app_sid, "AP"));
    CHECK_EQ_STR(json_string_value(json_object_get(r.json, "voice_method")), "POST");

    TW_RUN(sb_twilio_list_apps(&tw, "Switchboard", NULL, on_twilio, &r, NULL));
    json_t *apps = json_object_get(r.json, "applications");
    CHECK_EQ_UINT(json_array_size(apps), 1);
    CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(apps, 0), "sid")), app_sid);
    TW_RUN(sb_twilio_list_apps(&tw, "Some other app", NULL, on_twilio, &r, NULL));
    CHECK_EQ_UINT(json_array_size(json_object_get(r.json, "applications")), 0);

    sb_twilio_app_t upd = {.voice_url = "https://sb.example.com/webhooks/twilio/voice"};
    TW_RUN(sb_twilio_update_app(&tw, app_sid, &upd, on_twilio, &r, NULL));
    CHECK_EQ_STR(json_string_value(json_object_get(r.json, "voice_url")), upd.voice_url);
    CHECK_EQ_STR(json_string_value(json_object_get(r.json, "friendly_name")), "Switchboard");

    /* Page through the numbers two at a time and point each at the app. */
    int pages = 0, numbers = 0;
    TW_RUN(sb_twilio_list_numbers(&tw, 2, NULL, on_twilio, &r, NULL));
    for (;;) {
        if (!CHECK_EQ_INT(r.error, 0))
            break;
        pages++;
        json_t *list = json_object_get(r.json, "incoming_phone_numbers"), *n;
        size_t i;
        json_array_foreach(list, i, n)
        {
            tw_result_t u = {0};
            sb_twilio_number_update_t nu = {.voice_application_sid = app_sid,
                                            .sms_url = "http://127.0.0.1:8080/webhooks/twilio/messaging"};
            if (CHECK_EQ_INT(sb_twilio_update_number(&tw, json_string_value(json_object_get(n, "sid")), &nu,
                                                     on_twilio, &u, NULL),
                             0))
                sbtest_run_until(&F, &u.done);
            CHECK_EQ_INT(u.error, 0);
            CHECK_EQ_STR(json_string_value(json_object_get(u.json, "voice_application_sid")), app_sid);
            CHECK_EQ_STR(json_string_value(json_object_get(u.json, "sms_method")), "POST");
            tw_free(&u);
            numbers++;
        }
        if (r.next_page[0] == '\0')
            break;
        char next[512];
        snprintf(next, sizeof next, "%s", r.next_page);
        TW_RUN(sb_twilio_list_numbers(&tw, 0, next, on_twilio, &r, NULL));
    }
    CHECK_EQ_INT(pages, 3);
    CHECK_EQ_INT(numbers, 5);

    TW_RUN(sb_twilio_delete_app(&tw, app_sid, on_twilio, &r, NULL));
    CHECK_EQ_INT(r.error, 0);
    CHECK_EQ_INT(r.status, 204);
    CHECK(r.json == NULL);
    TW_RUN(sb_twilio_delete_app(&tw, app_sid, on_twilio, &r, NULL));
    CHECK_EQ_INT(r.status, 404);
    tw_free(&r);
}

static void test_invalid_arguments(void)
{
    sb_twilio_t tw;
    CHECK_EQ_INT(sb_twilio_init(&tw, F.client, F.url, "AC123", "t"), SB_EINVAL);
    CHECK_EQ_INT(sb_twilio_init(&tw, F.client, F.url, "SM0123456789abcdef0123456789abcdef", "t"), SB_EINVAL);
    CHECK_EQ_INT(sb_twilio_init(&tw, F.client, "", "AC0123456789abcdef0123456789abcdef", "t"), SB_EINVAL);
    CHECK_EQ_INT(sb_twilio_init(&tw, F.client, F.url, "AC0123456789abcdef0123456789abcdef", ""), SB_EINVAL);
    if (!CHECK_EQ_INT(sb_twilio_init(&tw, F.client, F.url, "AC0123456789abcdef0123456789abcdef", "t"), 0))
        return;
    tw_result_t r = {0};
    sb_twilio_call_update_t u = {.complete = true};
    CHECK_EQ_INT(sb_twilio_update_call(&tw, "CA../../Messages", &u, on_twilio, &r, NULL), SB_EINVAL);
    sb_twilio_call_update_t two = {.complete = true, .url = "http://x"};
    CHECK_EQ_INT(sb_twilio_update_call(&tw, "CA0123456789abcdef0123456789abcdef", &two, on_twilio, &r, NULL),
                 SB_EINVAL);
    sb_twilio_message_t m = {.to = "+1555", .body = "x"}; /* no From */
    CHECK_EQ_INT(sb_twilio_send_message(&tw, &m, on_twilio, &r, NULL), SB_EINVAL);
    /* A next page under another account, or elsewhere, is refused before anything goes out. */
    CHECK_EQ_INT(sb_twilio_list_numbers(&tw, 0,
                                        "/2010-04-01/Accounts/AC11111111111111111111111111111111/"
                                        "IncomingPhoneNumbers.json?Page=1",
                                        on_twilio, &r, NULL),
                 SB_EINVAL);
    CHECK_EQ_INT(sb_twilio_list_numbers(&tw, 0, "https://evil.example/", on_twilio, &r, NULL), SB_EINVAL);
    CHECK_EQ_INT(sb_twilio_list_numbers(
                     &tw, 0, "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/../../x\r\nX: y",
                     on_twilio, &r, NULL),
                 SB_EINVAL);
    CHECK(!r.done);

    sbtest_http_result_t h = {0};
    sb_http_request_t bad = {.url = "ftp://127.0.0.1/x"};
    CHECK_EQ_INT(sb_http_request(F.client, &bad, sbtest_on_http, &h, NULL), SB_EINVAL);
    bad.url = "not a url";
    CHECK_EQ_INT(sb_http_request(F.client, &bad, sbtest_on_http, &h, NULL), SB_EINVAL);
    bad.url = F.url;
    bad.method = "get";
    CHECK_EQ_INT(sb_http_request(F.client, &bad, sbtest_on_http, &h, NULL), SB_EINVAL);
    const char *inject[] = {"X-A: 1\r\nX-B: 2", NULL};
    sb_http_request_t hdr = {.url = F.url, .headers = inject};
    CHECK_EQ_INT(sb_http_request(F.client, &hdr, sbtest_on_http, &h, NULL), SB_EINVAL);
    CHECK_EQ_INT(sb_http_request(NULL, &hdr, sbtest_on_http, &h, NULL), SB_ESHUTDOWN);
    CHECK(!h.done);
    sb_http_stats_t st;
    sb_http_client_stats(F.client, &st);
    CHECK_EQ_INT(st.in_flight, 0);
}

typedef struct {
    bool done;
    int error;
    long status;
    int attempts;
    char id[64], name[64], message[256];
} rs_result_t;

static void on_resend(const sb_resend_result_t *res, void *data)
{
    rs_result_t *r = data;
    r->done = true;
    r->error = res->error;
    r->status = res->status;
    r->attempts = res->http->attempts;
    snprintf(r->id, sizeof r->id, "%s", res->id ? res->id : "");
    snprintf(r->name, sizeof r->name, "%s", res->name);
    snprintf(r->message, sizeof r->message, "%s", res->message);
}

#define RS_RUN(call)                                                                                         \
    do {                                                                                                     \
        memset(&r, 0, sizeof r);                                                                             \
        if (CHECK_EQ_INT((call), 0))                                                                         \
            sbtest_run_until(&F, &r.done);                                                                   \
    } while (0)

static void test_resend(void)
{
    sbtest_fake_reset(&F);
    sb_resend_t rs;
    if (!CHECK_EQ_INT(sb_resend_init(&rs, F.client, F.url, "re_test_key"), 0))
        return;
    const char *to[] = {"ann@example.com", "bob@example.com"};
    sb_resend_email_t e = {.from = "Acme <hello@acme.example>",
                           .to = to,
                           .n_to = 2,
                           .subject = "Your quote \xe2\x9c\x93",
                           .text = "Hello\nthere",
                           .idempotency_key = "msg-0190d1c2-aaaa"};
    rs_result_t r;
    RS_RUN(sb_resend_send(&rs, &e, on_resend, &r, NULL));
    CHECK_EQ_INT(r.error, 0);
    CHECK_EQ_INT(r.status, 200);
    CHECK_EQ_UINT(strlen(r.id), 36);
    char first_id[64];
    snprintf(first_id, sizeof first_id, "%s", r.id);

    json_t *recs = sbtest_fake_recorded(&F, "/emails");
    if (CHECK_EQ_UINT(json_array_size(recs), 1)) {
        json_t *rec = json_array_get(recs, 0);
        json_t *h = json_object_get(rec, "headers"), *j = json_object_get(rec, "json");
        CHECK_EQ_STR(json_string_value(json_object_get(h, "authorization")), "Bearer re_test_key");
        CHECK_EQ_STR(json_string_value(json_object_get(h, "idempotency-key")), "msg-0190d1c2-aaaa");
        CHECK_EQ_STR(json_string_value(json_object_get(h, "content-type")), "application/json");
        CHECK_EQ_STR(json_string_value(json_object_get(j, "from")), "Acme <hello@acme.example>");
        CHECK_EQ_STR(json_string_value(json_object_get(j, "subject")), "Your quote \xe2\x9c\x93");
        CHECK_EQ_STR(json_string_value(json_object_get(j, "text")), "Hello\nthere");
        CHECK_EQ_STR(json_string_value(json_array_get(json_object_get(j, "to"), 1)), "bob@example.com");
        CHECK(json_object_get(j, "html") == NULL);
    }
    json_decref(recs);

    /* The same key again: the first send's id, nothing sent twice. */
    RS_RUN(sb_resend_send(&rs, &e, on_resend, &r, NULL));
    CHECK_EQ_STR(r.id, first_id);
    /* The same key with another payload: Resend's 409. */
    e.text = "changed";
    RS_RUN(sb_resend_send(&rs, &e, on_resend, &r, NULL));
    CHECK_EQ_INT(r.error, SB_EREJECTED);
    CHECK_EQ_INT(r.status, 409);
    CHECK_EQ_STR(r.name, "invalid_idempotent_request");

    /* 500 then success, with a retry policy. */
    sbtest_fake_fault(&F, "{\"path\":\"/emails\",\"status\":500}");
    sb_http_retry_t retry = {.max_attempts = 3, .base_ms = 10};
    rs.retry = &retry;
    e.idempotency_key = "msg-0190d1c2-bbbb";
    RS_RUN(sb_resend_send(&rs, &e, on_resend, &r, NULL));
    CHECK_EQ_INT(r.error, 0);
    CHECK_EQ_INT(r.attempts, 2);

    /* A key the account does not know. */
    json_decref(sbtest_fake_admin(&F, "POST", "/__admin/resend", "{\"keys\":[\"re_other\"]}"));
    RS_RUN(sb_resend_send(&rs, &e, on_resend, &r, NULL));
    CHECK_EQ_INT(r.error, SB_EREJECTED);
    CHECK_EQ_INT(r.status, 403);
    CHECK_EQ_STR(r.name, "invalid_api_key");
    CHECK_EQ_STR(r.message, "API key is invalid");

    /* Refused before anything goes out. */
    sb_resend_email_t bad = e;
    bad.subject = NULL;
    CHECK_EQ_INT(sb_resend_send(&rs, &bad, on_resend, &r, NULL), SB_EINVAL);
    bad = e;
    bad.text = "bad \xc3\x28 utf8";
    CHECK_EQ_INT(sb_resend_send(&rs, &bad, on_resend, &r, NULL), SB_EUTF8);
    bad = e;
    bad.idempotency_key = "two words";
    CHECK_EQ_INT(sb_resend_send(&rs, &bad, on_resend, &r, NULL), SB_EINVAL);
    CHECK_EQ_INT(sb_resend_init(&rs, F.client, F.url, "key\r\nX-Injected: 1"), SB_EINVAL);
    sb_resend_clear(&rs);
}

int main(void)
{
    if (!CHECK(sbtest_fake_start(&F))) {
        sbtest_fake_stop(&F);
        return sbtest_summary();
    }
    SBTEST_RUN(test_send_message);
    SBTEST_RUN(test_twilio_errors);
    SBTEST_RUN(test_retry_500);
    SBTEST_RUN(test_retry_after_429);
    SBTEST_RUN(test_calls);
    SBTEST_RUN(test_setup);
    SBTEST_RUN(test_invalid_arguments);
    SBTEST_RUN(test_resend);
    sbtest_fake_stop(&F);
    return sbtest_summary();
}
