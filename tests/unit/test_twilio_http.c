/* The HTTP client (libcurl multi on libuv) and the Twilio and Resend clients, against the fake
 * provider (tests/fake_provider/server.mjs, started here with node on a free loopback port): what
 * goes out (recorded by the fake and read back through its admin API), answers, Twilio's and
 * Resend's error JSON, retries on 500 and 429 (Retry-After), timeouts, dropped connections, refused
 * connections, oversized answers, cancellation, many requests at once, and shutdown with requests
 * in flight. */
#include "core/error.h"
#include "core/loop.h"
#include "providers/form.h"
#include "providers/http_client.h"
#include "providers/resend.h"
#include "providers/twilio.h"
#include "sbtest.h"

#include <jansson.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <unistd.h>

static sb_loop_t loop;
static char fake_url[128];
static pid_t fake_pid = -1;
static sb_http_client_t *client;

/* ---- the fake ----------------------------------------------------------------------------------- */

static bool start_fake(void)
{
    int out[2], in[2];
    if (pipe(out) != 0 || pipe(in) != 0)
        return false;
    fake_pid = fork();
    if (fake_pid == 0) {
        dup2(out[1], 1);
        dup2(in[0], 0);
        close(out[0]);
        close(in[1]);
        execlp("node", "node", SB_SOURCE_DIR "/tests/fake_provider/server.mjs", "--port", "0", (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    close(in[0]);
    /* in[1] stays open for our lifetime: the fake exits when it closes (when we exit). */
    FILE *f = fdopen(out[0], "r");
    char line[256];
    if (f == NULL || fgets(line, sizeof line, f) == NULL) {
        fprintf(stderr, "fake provider did not start (is node installed?)\n");
        return false;
    }
    json_error_t err;
    json_t *j = json_loads(line, 0, &err);
    const char *url = json_string_value(json_object_get(j, "url"));
    bool ok = url != NULL && strlen(url) < sizeof fake_url;
    if (ok)
        strcpy(fake_url, url);
    json_decref(j);
    return ok;
}

static void stop_fake(void)
{
    if (fake_pid > 0) {
        kill(fake_pid, SIGTERM);
        waitpid(fake_pid, NULL, 0);
    }
}

/* ---- running the loop until a callback has fired ---------------------------------------------- */

static void run_until(const bool *done)
{
    while (!*done)
        uv_run(&loop.uv, UV_RUN_ONCE);
}

typedef struct {
    bool done;
    int error;
    long status;
    int attempts;
    bool sent;
    int64_t retry_after_ms;
    char *body;
    json_t *json;
    uint64_t at; /* uv_now when the callback fired */
} http_result_t;

static void on_http(const sb_http_response_t *r, void *data)
{
    http_result_t *res = data;
    res->done = true;
    res->error = r->error;
    res->status = r->status;
    res->attempts = r->attempts;
    res->sent = r->sent;
    res->retry_after_ms = r->retry_after_ms;
    res->body = strdup(r->body);
    json_error_t err;
    res->json = r->body_len ? json_loadb(r->body, r->body_len, 0, &err) : NULL;
    res->at = uv_now(&loop.uv);
}

static void http_result_free(http_result_t *r)
{
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof(*r));
}

/* A blocking admin call to the fake (the test drives the loop until it answers). */
static json_t *admin(const char *method, const char *path, const char *json_body)
{
    char url[1024];
    snprintf(url, sizeof url, "%s%s", fake_url, path);
    static const char *const headers[] = {"Content-Type: application/json", NULL};
    sb_http_request_t req = {.method = method,
                             .url = url,
                             .headers = headers,
                             .body = json_body,
                             .body_len = json_body ? strlen(json_body) : 0};
    http_result_t r = {0};
    if (!CHECK_EQ_INT(sb_http_request(client, &req, on_http, &r, NULL), 0))
        return NULL;
    run_until(&r.done);
    CHECK_EQ_INT(r.error, 0);
    json_t *j = json_incref(r.json);
    http_result_free(&r);
    return j;
}

static json_t *recorded(const char *path)
{
    char p[256];
    snprintf(p, sizeof p, "/__admin/requests?path=%s", path);
    json_t *j = admin("GET", p, NULL);
    json_t *list = json_incref(json_object_get(j, "requests"));
    json_decref(j);
    return list;
}

static void fault(const char *spec)
{
    json_decref(admin("POST", "/__admin/faults", spec));
}

static void reset_fake(void)
{
    json_decref(admin("POST", "/__admin/reset", NULL));
}

/* A registered account with n numbers; fills sid and token. */
static void new_account(int numbers, char sid[64], char token[64])
{
    char body[64];
    snprintf(body, sizeof body, "{\"numbers\": %d}", numbers);
    json_t *a = admin("POST", "/__admin/accounts", body);
    snprintf(sid, 64, "%s", json_string_value(json_object_get(a, "sid")));
    snprintf(token, 64, "%s", json_string_value(json_object_get(a, "token")));
    json_decref(a);
}

/* The form fields of a recorded request, as "k=v" lines. */
static void form_lines(json_t *rec, sb_buf_t *out)
{
    size_t i;
    json_t *pair;
    json_array_foreach(json_object_get(rec, "form"), i, pair)
    {
        sb_buf_printf(out, "%s=%s\n", json_string_value(json_array_get(pair, 0)),
                      json_string_value(json_array_get(pair, 1)));
    }
}

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
    res->at = uv_now(&loop.uv);
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
            run_until(&r.done);                                                                              \
    } while (0)

/* ---- tests ------------------------------------------------------------------------------------ */

/* Names resolve without blocking the loop (libcurl's threaded resolver), and a name works. */
static void test_async_dns(void)
{
    CHECK(sb_http_async_dns());
    const char *port = strrchr(fake_url, ':');
    char url[256];
    snprintf(url, sizeof url, "http://localhost%s/__admin/state", port);
    sb_http_request_t req = {.url = url};
    http_result_t r = {0};
    CHECK_EQ_INT(sb_http_request(client, &req, on_http, &r, NULL), 0);
    run_until(&r.done);
    CHECK_EQ_INT(r.error, 0);
    CHECK_EQ_INT(r.status, 200);
    CHECK(json_object_get(r.json, "accounts") != NULL);
    http_result_free(&r);
}

static void test_send_message(void)
{
    reset_fake();
    char sid[64], token[64];
    new_account(2, sid, token);
    sb_twilio_t tw;
    if (!CHECK_EQ_INT(sb_twilio_init(&tw, client, fake_url, sid, token), 0))
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
    json_t *recs = recorded(path);
    if (CHECK_EQ_UINT(json_array_size(recs), 1)) {
        json_t *rec = json_array_get(recs, 0);
        CHECK_EQ_STR(json_string_value(json_object_get(rec, "method")), "POST");
        sb_buf_t lines = SB_BUF_INIT;
        form_lines(rec, &lines);
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
        run_until(&k.done);
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
    reset_fake();
    char sid[64], token[64];
    new_account(0, sid, token);
    sb_twilio_t tw;
    sb_twilio_init(&tw, client, fake_url, sid, token);
    tw_result_t r = {0};
    sb_twilio_message_t m = {.to = "12", .from = "+15559990000", .body = "x"};
    TW_RUN(sb_twilio_send_message(&tw, &m, on_twilio, &r, NULL));
    CHECK_EQ_INT(r.error, SB_EREJECTED);
    CHECK_EQ_INT(r.status, 400);
    CHECK_EQ_INT(r.code, 21211);
    CHECK(strstr(r.message, "is not a valid phone number") != NULL);

    sb_twilio_t bad;
    sb_twilio_init(&bad, client, fake_url, sid, "wrong-token");
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
    fault(spec);
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
    reset_fake();
    char sid[64], token[64];
    new_account(0, sid, token);
    sb_twilio_t tw;
    sb_twilio_init(&tw, client, fake_url, sid, token);
    char path[1024], spec[2048];
    snprintf(path, sizeof path, "/2010-04-01/Accounts/%s/Messages.json", sid);
    snprintf(spec, sizeof spec, "{\"path\":\"%s\",\"status\":500,\"times\":2}", path);
    fault(spec);
    sb_http_retry_t retry = {.max_attempts = 4, .base_ms = 20, .cap_ms = 100};
    tw.retry = &retry;
    sb_twilio_message_t m = {.to = "+15551230001", .from = "+15559990000", .body = "retry me"};
    tw_result_t r = {0};
    sb_http_stats_t before, after;
    sb_http_client_stats(client, &before);
    TW_RUN(sb_twilio_send_message(&tw, &m, on_twilio, &r, NULL));
    sb_http_client_stats(client, &after);
    CHECK_EQ_INT(r.error, 0);
    CHECK_EQ_INT(r.status, 201);
    CHECK_EQ_INT(r.attempts, 3);
    CHECK_EQ_UINT(after.retries - before.retries, 2);
    json_t *recs = recorded(path);
    CHECK_EQ_UINT(json_array_size(recs), 3);
    json_decref(recs);

    /* Out of attempts: the last answer is what the callback sees. */
    snprintf(spec, sizeof spec, "{\"path\":\"%s\",\"status\":503,\"times\":5}", path);
    fault(spec);
    retry.max_attempts = 2;
    TW_RUN(sb_twilio_send_message(&tw, &m, on_twilio, &r, NULL));
    CHECK_EQ_INT(r.error, SB_EREJECTED);
    CHECK_EQ_INT(r.status, 503);
    CHECK_EQ_INT(r.code, 20500);
    CHECK_EQ_INT(r.attempts, 2);

    /* A 4xx is never retried. */
    json_decref(admin("DELETE", "/__admin/faults", NULL));
    retry.max_attempts = 5;
    m.to = "bad";
    TW_RUN(sb_twilio_send_message(&tw, &m, on_twilio, &r, NULL));
    CHECK_EQ_INT(r.status, 400);
    CHECK_EQ_INT(r.attempts, 1);
    tw_free(&r);
}

static void test_retry_after_429(void)
{
    reset_fake();
    char sid[64], token[64];
    new_account(0, sid, token);
    sb_twilio_t tw;
    sb_twilio_init(&tw, client, fake_url, sid, token);
    char path[1024], spec[2048];
    snprintf(path, sizeof path, "/2010-04-01/Accounts/%s/Calls.json", sid);
    snprintf(spec, sizeof spec,
             "{\"path\":\"%s\",\"status\":429,\"headers\":{\"Retry-After\":\"1\"},"
             "\"body\":{\"code\":20429,\"message\":\"Too Many Requests\",\"status\":429}}",
             path);
    fault(spec);
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
    uv_update_time(&loop.uv);
    uint64_t t0 = uv_now(&loop.uv);
    TW_RUN(sb_twilio_create_call(&tw, &c, on_twilio, &r, NULL));
    CHECK_EQ_INT(r.error, 0);
    CHECK_EQ_INT(r.attempts, 2);
    CHECK(sb_twilio_sid_is_valid(r.sid, "CA"));
    /* Waited for Retry-After (1 s), not the 10 ms backoff. */
    CHECK(r.at - t0 >= 1000);

    /* A Retry-After longer than the policy accepts gives up at once. */
    snprintf(spec, sizeof spec, "{\"path\":\"%s\",\"status\":429,\"headers\":{\"Retry-After\":\"600\"}}",
             path);
    fault(spec);
    uv_update_time(&loop.uv);
    t0 = uv_now(&loop.uv);
    TW_RUN(sb_twilio_create_call(&tw, &c, on_twilio, &r, NULL));
    CHECK_EQ_INT(r.status, 429);
    CHECK_EQ_INT(r.attempts, 1);
    CHECK(r.at - t0 < 1000);

    json_t *recs = recorded(path);
    if (CHECK_EQ_UINT(json_array_size(recs), 3)) {
        sb_buf_t lines = SB_BUF_INIT;
        form_lines(json_array_get(recs, 1), &lines);
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

static void test_timeout_and_drop(void)
{
    reset_fake();
    char url[1024];
    snprintf(url, sizeof url, "%s/slow", fake_url);
    fault("{\"path\":\"/slow\",\"action\":\"hang\"}");
    sb_http_request_t req = {.method = "POST", .url = url, .body = "a=1", .body_len = 3, .timeout_ms = 300};
    http_result_t r = {0};
    uv_update_time(&loop.uv);
    uint64_t t0 = uv_now(&loop.uv);
    CHECK_EQ_INT(sb_http_request(client, &req, on_http, &r, NULL), 0);
    run_until(&r.done);
    CHECK_EQ_INT(r.error, SB_ETIMEOUT);
    CHECK(r.sent);
    CHECK_EQ_INT(r.status, 0);
    CHECK(r.at - t0 >= 300 && r.at - t0 < 5000);
    http_result_free(&r);

    /* A dropped connection after the request went out: the outcome is unknown.  (On a reused
     * keep-alive connection libcurl itself tries once more on a fresh one, as for a stale
     * connection, so the fake drops twice.) */
    fault("{\"path\":\"/drop1\",\"action\":\"drop\",\"times\":2}");
    sb_http_retry_t retry = {.max_attempts = 4, .base_ms = 10};
    snprintf(url, sizeof url, "%s/drop1", fake_url);
    req.retry = &retry;
    req.timeout_ms = 5000;
    CHECK_EQ_INT(sb_http_request(client, &req, on_http, &r, NULL), 0);
    run_until(&r.done);
    CHECK_EQ_INT(r.error, SB_EUNKNOWN);
    CHECK(r.sent);
    CHECK_EQ_INT(r.attempts, 1); /* not retried unless the policy says so */
    http_result_free(&r);

    fault("{\"path\":\"/drop2\",\"action\":\"drop\",\"times\":2}");
    snprintf(url, sizeof url, "%s/drop2", fake_url);
    retry.after_sent = true;
    CHECK_EQ_INT(sb_http_request(client, &req, on_http, &r, NULL), 0);
    run_until(&r.done);
    CHECK_EQ_INT(r.error, 0);
    CHECK_EQ_INT(r.status, 404); /* the fake knows no /drop2; what matters is that an answer came */
    CHECK(r.attempts >= 2);
    http_result_free(&r);
    json_t *recs = recorded("/drop2");
    CHECK_EQ_UINT(json_array_size(recs), 3);
    json_decref(recs);
}

static void test_refused_and_too_big(void)
{
    /* A port nobody listens on: bind one, note it, close it. */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    bind(s, (struct sockaddr *)&a, sizeof a);
    getsockname(s, (struct sockaddr *)&a, &al);
    close(s);
    char url[1024];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/x", ntohs(a.sin_port));
    sb_http_retry_t retry = {.max_attempts = 3, .base_ms = 5};
    sb_http_request_t req = {.url = url, .retry = &retry};
    http_result_t r = {0};
    CHECK_EQ_INT(sb_http_request(client, &req, on_http, &r, NULL), 0);
    run_until(&r.done);
    CHECK_EQ_INT(r.error, UV_ECONNREFUSED);
    CHECK(!r.sent);
    CHECK_EQ_INT(r.attempts, 3); /* nothing was sent, so retrying is always safe */
    http_result_free(&r);

    reset_fake();
    fault("{\"path\":\"/big\",\"status\":200,\"bodyBytes\":300000}");
    snprintf(url, sizeof url, "%s/big", fake_url);
    sb_http_request_t big = {.url = url, .max_response = 100000};
    CHECK_EQ_INT(sb_http_request(client, &big, on_http, &r, NULL), 0);
    run_until(&r.done);
    CHECK_EQ_INT(r.error, SB_ETOOBIG);
    http_result_free(&r);
    /* Under the bound it arrives whole. */
    fault("{\"path\":\"/big\",\"status\":200,\"bodyBytes\":300000}");
    big.max_response = 300000;
    CHECK_EQ_INT(sb_http_request(client, &big, on_http, &r, NULL), 0);
    run_until(&r.done);
    CHECK_EQ_INT(r.error, 0);
    CHECK_EQ_UINT(strlen(r.body), 300000);
    http_result_free(&r);
}

static void test_calls(void)
{
    reset_fake();
    char sid[64], token[64];
    new_account(0, sid, token);
    sb_twilio_t tw;
    sb_twilio_init(&tw, client, fake_url, sid, token);
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
    json_t *recs = recorded(path);
    if (CHECK_EQ_UINT(json_array_size(recs), 2)) {
        sb_buf_t lines = SB_BUF_INIT;
        form_lines(json_array_get(recs, 0), &lines);
        form_lines(json_array_get(recs, 1), &lines);
        CHECK_EQ_STR(lines.data, "Twiml=<Response><Enqueue>park</Enqueue></Response>\nStatus=completed\n");
        sb_buf_free(&lines);
    }
    json_decref(recs);
    tw_free(&r);
}

static void test_setup(void)
{
    reset_fake();
    char sid[64], token[64];
    new_account(5, sid, token);
    sb_twilio_t tw;
    sb_twilio_init(&tw, client, fake_url, sid, token);
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
                run_until(&u.done);
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
    CHECK_EQ_INT(sb_twilio_init(&tw, client, fake_url, "AC123", "t"), SB_EINVAL);
    CHECK_EQ_INT(sb_twilio_init(&tw, client, fake_url, "SM0123456789abcdef0123456789abcdef", "t"), SB_EINVAL);
    CHECK_EQ_INT(sb_twilio_init(&tw, client, "", "AC0123456789abcdef0123456789abcdef", "t"), SB_EINVAL);
    CHECK_EQ_INT(sb_twilio_init(&tw, client, fake_url, "AC0123456789abcdef0123456789abcdef", ""), SB_EINVAL);
    if (!CHECK_EQ_INT(sb_twilio_init(&tw, client, fake_url, "AC0123456789abcdef0123456789abcdef", "t"), 0))
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

    http_result_t h = {0};
    sb_http_request_t bad = {.url = "ftp://127.0.0.1/x"};
    CHECK_EQ_INT(sb_http_request(client, &bad, on_http, &h, NULL), SB_EINVAL);
    bad.url = "not a url";
    CHECK_EQ_INT(sb_http_request(client, &bad, on_http, &h, NULL), SB_EINVAL);
    bad.url = fake_url;
    bad.method = "get";
    CHECK_EQ_INT(sb_http_request(client, &bad, on_http, &h, NULL), SB_EINVAL);
    const char *inject[] = {"X-A: 1\r\nX-B: 2", NULL};
    sb_http_request_t hdr = {.url = fake_url, .headers = inject};
    CHECK_EQ_INT(sb_http_request(client, &hdr, on_http, &h, NULL), SB_EINVAL);
    CHECK_EQ_INT(sb_http_request(NULL, &hdr, on_http, &h, NULL), SB_ESHUTDOWN);
    CHECK(!h.done);
    sb_http_stats_t st;
    sb_http_client_stats(client, &st);
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
            run_until(&r.done);                                                                              \
    } while (0)

static void test_resend(void)
{
    reset_fake();
    sb_resend_t rs;
    if (!CHECK_EQ_INT(sb_resend_init(&rs, client, fake_url, "re_test_key"), 0))
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

    json_t *recs = recorded("/emails");
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
    fault("{\"path\":\"/emails\",\"status\":500}");
    sb_http_retry_t retry = {.max_attempts = 3, .base_ms = 10};
    rs.retry = &retry;
    e.idempotency_key = "msg-0190d1c2-bbbb";
    RS_RUN(sb_resend_send(&rs, &e, on_resend, &r, NULL));
    CHECK_EQ_INT(r.error, 0);
    CHECK_EQ_INT(r.attempts, 2);

    /* A key the account does not know. */
    json_decref(admin("POST", "/__admin/resend", "{\"keys\":[\"re_other\"]}"));
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
    CHECK_EQ_INT(sb_resend_init(&rs, client, fake_url, "key\r\nX-Injected: 1"), SB_EINVAL);
    sb_resend_clear(&rs);
}

static void on_never(const sb_http_response_t *r, void *data)
{
    (void)r;
    *(bool *)data = true;
}

static void on_timer_done(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

static void test_cancel(void)
{
    reset_fake();
    fault("{\"path\":\"/hang\",\"action\":\"hang\"}");
    char url[1024];
    snprintf(url, sizeof url, "%s/hang", fake_url);
    bool fired = false;
    sb_http_call_t *call = NULL;
    sb_http_request_t req = {.url = url};
    CHECK_EQ_INT(sb_http_request(client, &req, on_never, &fired, &call), 0);
    /* Let it connect and send, then give up on it. */
    bool waited = false;
    uv_timer_t t;
    uv_timer_init(&loop.uv, &t);
    t.data = &waited;
    uv_timer_start(&t, on_timer_done, 200, 0);
    run_until(&waited);
    sb_http_cancel(call);
    waited = false;
    uv_timer_start(&t, on_timer_done, 100, 0);
    run_until(&waited);
    uv_close((uv_handle_t *)&t, NULL);
    CHECK(!fired);
    sb_http_stats_t st;
    sb_http_client_stats(client, &st);
    CHECK_EQ_INT(st.in_flight, 0);
    json_t *recs = recorded("/hang");
    CHECK_EQ_UINT(json_array_size(recs), 1);
    json_decref(recs);

    /* A request waiting between attempts can be cancelled too. */
    fault("{\"path\":\"/again\",\"status\":500}");
    snprintf(url, sizeof url, "%s/again", fake_url);
    sb_http_retry_t retry = {.max_attempts = 2, .base_ms = 10000};
    sb_http_request_t again = {.url = url, .retry = &retry};
    CHECK_EQ_INT(sb_http_request(client, &again, on_never, &fired, &call), 0);
    /* Each admin query runs the loop until its own answer, which also moves the first attempt
     * along; stop as soon as the fake has seen it (never by blocking on the loop, which would wait
     * out the 10 s backoff and let the second attempt run). */
    size_t n = 0;
    for (int i = 0; i < 1000 && n == 0 && !fired; i++) {
        recs = recorded("/again");
        n = json_array_size(recs);
        json_decref(recs);
    }
    CHECK_EQ_UINT(n, 1);
    sb_http_cancel(call);
    sb_http_client_stats(client, &st);
    CHECK_EQ_INT(st.in_flight, 0);
    CHECK(!fired);
}

typedef struct {
    int done;
    int ok;
} many_t;

static void on_many(const sb_http_response_t *r, void *data)
{
    many_t *m = data;
    m->done++;
    if (r->error == 0 && r->status == 201)
        m->ok++;
}

/* Many requests at once over a few connections. */
static void test_many(void)
{
    reset_fake();
    char sid[64], token[64];
    new_account(0, sid, token);
    char url[1024];
    snprintf(url, sizeof url, "%s/2010-04-01/Accounts/%s/Messages.json", fake_url, sid);
    enum { N = 200 };
    many_t m = {0};
    static const char *const headers[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    const char *body = "To=%2B15551230001&From=%2B15559990000&Body=hello";
    sb_http_request_t req = {.url = url,
                             .headers = headers,
                             .body = body,
                             .body_len = strlen(body),
                             .username = sid,
                             .password = token};
    for (int i = 0; i < N; i++)
        CHECK_EQ_INT(sb_http_request(client, &req, on_many, &m, NULL), 0);
    sb_http_stats_t st;
    sb_http_client_stats(client, &st);
    CHECK_EQ_INT(st.in_flight, N);
    while (m.done < N)
        uv_run(&loop.uv, UV_RUN_ONCE);
    CHECK_EQ_INT(m.ok, N);
    sb_http_client_stats(client, &st);
    CHECK_EQ_INT(st.in_flight, 0);
    char path[1024];
    snprintf(path, sizeof path, "/2010-04-01/Accounts/%s/Messages.json", sid);
    json_t *recs = recorded(path);
    CHECK_EQ_UINT(json_array_size(recs), N);
    json_decref(recs);
}

/* ---- worker loops: one client per loop, closed by the loops' stop ------------------------------ */

static char w_sid[64], w_token[64];
static uv_sem_t w_sem;
static sb_http_client_t *w_clients[2];
static _Atomic int w_ok;

static void on_worker_done(const sb_http_response_t *r, void *data)
{
    (void)data;
    if (r->error == 0 && r->status == 201)
        atomic_fetch_add(&w_ok, 1);
    uv_sem_post(&w_sem);
}

static void on_worker_start(sb_loop_t *l, void *data)
{
    (void)data;
    sb_http_client_t *c = sb_http_client_get(l);
    w_clients[l->index] = c;
    char url[1024];
    snprintf(url, sizeof url, "%s/2010-04-01/Accounts/%s/Messages.json", fake_url, w_sid);
    static const char *const headers[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    const char *body = "To=%2B15551230001&From=%2B15559990000&Body=from+a+worker";
    sb_http_request_t req = {.url = url,
                             .headers = headers,
                             .body = body,
                             .body_len = strlen(body),
                             .username = w_sid,
                             .password = w_token};
    for (int i = 0; i < 10; i++)
        if (c == NULL || sb_http_request(c, &req, on_worker_done, NULL, NULL) != 0)
            uv_sem_post(&w_sem);
}

static void test_worker_loops(void)
{
    reset_fake();
    new_account(0, w_sid, w_token);
    uv_sem_init(&w_sem, 0);
    sb_loops_t g;
    if (!CHECK_EQ_INT(sb_loops_init(&g, 2, on_worker_start, NULL), 0))
        return;
    CHECK_EQ_INT(sb_loops_start(&g), 0);
    for (int i = 0; i < 20; i++)
        uv_sem_wait(&w_sem);
    CHECK_EQ_INT(atomic_load(&w_ok), 20);
    CHECK(w_clients[0] != NULL && w_clients[1] != NULL && w_clients[0] != w_clients[1]);
    sb_loops_stop(&g);
    sb_loops_join(&g);
    uv_sem_destroy(&w_sem);
    sb_loop_set_current(&loop);
}

/* ---- shutdown, on a loop of its own ---------------------------------------------------------- */

typedef struct {
    bool done;
    int error;
    int restart_rc;
    sb_http_client_t *c;
} shut_t;

static void on_shutdown_cb(const sb_http_response_t *r, void *data)
{
    shut_t *s = data;
    s->done = true;
    s->error = r->error;
    sb_http_request_t again = {.url = fake_url};
    s->restart_rc = sb_http_request(s->c, &again, on_never, NULL, NULL);
}

static void test_shutdown(void)
{
    json_decref(admin("POST", "/__admin/faults", "{\"path\":\"/stuck\",\"action\":\"hang\",\"times\":2}"));
    sb_loop_t l2;
    if (!CHECK_EQ_INT(sb_loop_init_standalone(&l2), 0))
        return;
    sb_http_client_t *c2 = sb_http_client_get(&l2);
    CHECK(c2 != NULL && c2 != client);
    CHECK(sb_http_client_get(&l2) == c2);
    char url[1024];
    snprintf(url, sizeof url, "%s/stuck", fake_url);
    shut_t a = {.c = c2}, b = {.c = c2};
    sb_http_request_t req = {.url = url};
    CHECK_EQ_INT(sb_http_request(c2, &req, on_shutdown_cb, &a, NULL), 0);
    /* The second waits between attempts when the loop stops. */
    sb_http_retry_t retry = {.max_attempts = 3, .base_ms = 60000};
    sb_http_request_t req2 = {.url = "http://127.0.0.1:1/", .retry = &retry};
    CHECK_EQ_INT(sb_http_request(c2, &req2, on_shutdown_cb, &b, NULL), 0);
    for (int i = 0; i < 50; i++)
        uv_run(&l2.uv, UV_RUN_NOWAIT);
    CHECK(!a.done && !b.done);
    sb_loop_close_standalone(&l2); /* runs the stop hooks: both end with SB_ESHUTDOWN */
    CHECK(a.done && b.done);
    CHECK_EQ_INT(a.error, SB_ESHUTDOWN);
    CHECK_EQ_INT(b.error, SB_ESHUTDOWN);
    CHECK_EQ_INT(a.restart_rc, SB_ESHUTDOWN);
    CHECK(l2.http_client != NULL && sb_http_client_get(&l2) == NULL);
    sb_loop_set_current(&loop);
}

static void test_retry_decision(void)
{
    sb_http_retry_t p = {.max_attempts = 5, .base_ms = 100, .cap_ms = 1000};
    sb_http_response_t res = {.status = 503, .retry_after_ms = -1};
    uint64_t d;
    /* Equal jitter: [exp/2, exp], doubling, capped. */
    CHECK(sb_http_retry_next(&p, 1, &res, 0, &d));
    CHECK_EQ_UINT(d, 50);
    CHECK(sb_http_retry_next(&p, 1, &res, 50, &d));
    CHECK_EQ_UINT(d, 100);
    CHECK(sb_http_retry_next(&p, 3, &res, 0, &d));
    CHECK_EQ_UINT(d, 200);
    CHECK(sb_http_retry_next(&p, 4, &res, 0xffffffffu, &d));
    CHECK(d >= 400 && d <= 800);
    CHECK(!sb_http_retry_next(&p, 5, &res, 0, &d)); /* out of attempts */
    p.max_attempts = 50;
    CHECK(sb_http_retry_next(&p, 40, &res, 0xffffffffu, &d));
    CHECK(d >= 500 && d <= 1000);
    /* Retry-After wins when longer; too long gives up. */
    res.retry_after_ms = 5000;
    CHECK(sb_http_retry_next(&p, 1, &res, 0, &d));
    CHECK_EQ_UINT(d, 5000);
    res.retry_after_ms = 200000;
    CHECK(!sb_http_retry_next(&p, 1, &res, 0, &d));
    p.max_retry_after_ms = 300000;
    CHECK(sb_http_retry_next(&p, 1, &res, 0, &d));
    /* Which answers are retried. */
    res.retry_after_ms = -1;
    long statuses[] = {400, 401, 404, 409, 422, 200, 201, 301};
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++) {
        res.status = statuses[i];
        CHECK(!sb_http_retry_next(&p, 1, &res, 0, &d));
    }
    res.status = 429;
    CHECK(sb_http_retry_next(&p, 1, &res, 0, &d));
    res.status = 0;
    res.error = SB_ETOOBIG;
    CHECK(!sb_http_retry_next(&p, 1, &res, 0, &d));
    res.error = SB_ESHUTDOWN;
    CHECK(!sb_http_retry_next(&p, 1, &res, 0, &d));
    res.error = UV_ECONNREFUSED;
    res.sent = false;
    CHECK(sb_http_retry_next(&p, 1, &res, 0, &d));
    res.error = SB_ETIMEOUT;
    res.sent = true;
    CHECK(!sb_http_retry_next(&p, 1, &res, 0, &d));
    p.after_sent = true;
    CHECK(sb_http_retry_next(&p, 1, &res, 0, &d));
    CHECK(!sb_http_retry_next(NULL, 1, &res, 0, &d));

    /* Retry-After values. */
    int64_t now = 784111777000; /* Sun, 06 Nov 1994 08:49:37 GMT */
    CHECK_EQ_INT(sb_http_parse_retry_after("120", now), 120000);
    CHECK_EQ_INT(sb_http_parse_retry_after(" 0 ", now), 0);
    CHECK_EQ_INT(sb_http_parse_retry_after("Sun, 06 Nov 1994 08:50:37 GMT", now), 60000);
    CHECK_EQ_INT(sb_http_parse_retry_after("Sun, 06 Nov 1994 08:49:36 GMT", now), 0);
    CHECK_EQ_INT(sb_http_parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT", 0), 0);
    CHECK_EQ_INT(sb_http_parse_retry_after("Fri, 31 Dec 1999 23:59:59 GMT", 0), 946684799000);
    CHECK_EQ_INT(sb_http_parse_retry_after("-1", now), -1);
    CHECK_EQ_INT(sb_http_parse_retry_after("1.5", now), -1);
    CHECK_EQ_INT(sb_http_parse_retry_after("", now), -1);
    CHECK_EQ_INT(sb_http_parse_retry_after("99999999999", now), -1);
    CHECK_EQ_INT(sb_http_parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now), -1);
    CHECK_EQ_INT(sb_http_parse_retry_after("Sun, 06 Foo 1994 08:49:37 GMT", now), -1);
    CHECK_EQ_INT(sb_http_parse_retry_after(NULL, now), -1);

    /* Header lookup: case-insensitive, the last of several, trimmed. */
    const char *hdrs =
        "HTTP/1.1 429 Too Many Requests\r\nretry-after:  7 \r\nX-A: 1\r\nRetry-After: 9\r\n\r\n";
    sb_http_response_t h = {._headers = hdrs, ._headers_len = strlen(hdrs)};
    char buf[16];
    CHECK_EQ_STR(sb_http_response_header(&h, "Retry-After", buf, sizeof buf), "9");
    CHECK_EQ_STR(sb_http_response_header(&h, "x-a", buf, sizeof buf), "1");
    CHECK(sb_http_response_header(&h, "X", buf, sizeof buf) == NULL);
    CHECK_EQ_STR(sb_http_response_header(&h, "retry-after", buf, 1), "");
}

int main(void)
{
    if (sb_loop_init_standalone(&loop) != 0)
        return 1;
    client = sb_http_client_get(&loop);
    if (!CHECK(client != NULL) || !CHECK(start_fake())) {
        stop_fake();
        return sbtest_summary();
    }
    SBTEST_RUN(test_async_dns);
    SBTEST_RUN(test_send_message);
    SBTEST_RUN(test_twilio_errors);
    SBTEST_RUN(test_retry_500);
    SBTEST_RUN(test_retry_after_429);
    SBTEST_RUN(test_timeout_and_drop);
    SBTEST_RUN(test_refused_and_too_big);
    SBTEST_RUN(test_calls);
    SBTEST_RUN(test_setup);
    SBTEST_RUN(test_invalid_arguments);
    SBTEST_RUN(test_resend);
    SBTEST_RUN(test_cancel);
    SBTEST_RUN(test_many);
    SBTEST_RUN(test_worker_loops);
    SBTEST_RUN(test_shutdown);
    SBTEST_RUN(test_retry_decision);
    sb_loop_close_standalone(&loop);
    stop_fake();
    return sbtest_summary();
}
