/* The HTTP client (libcurl multi on libuv) against the fake provider (tests/support/fakeprov.h):
 * names resolved off the loop, timeouts, dropped, refused connections and oversized answers,
 * cancellation, many requests at once, one client per worker loop, shutdown with requests in
 * flight, and when a failed attempt is retried. */
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

/* ---- tests ------------------------------------------------------------------------------------ */
/* Names resolve without blocking the loop (libcurl's threaded resolver), and a name works. */
static void test_async_dns(void)
{
    CHECK(sb_http_async_dns());
    const char *port = strrchr(F.url, ':');
    char url[256];
    snprintf(url, sizeof url, "http://localhost%s/__admin/state", port);
    sb_http_request_t req = {.url = url};
    sbtest_http_result_t r = {0};
    CHECK_EQ_INT(sb_http_request(F.client, &req, sbtest_on_http, &r, NULL), 0);
    sbtest_run_until(&F, &r.done);
    CHECK_EQ_INT(r.error, 0);
    CHECK_EQ_INT(r.status, 200);
    CHECK(json_object_get(r.json, "accounts") != NULL);
    sbtest_http_result_free(&r);
}

static void test_timeout_and_drop(void)
{
    sbtest_fake_reset(&F);
    char url[1024];
    snprintf(url, sizeof url, "%s/slow", F.url);
    sbtest_fake_fault(&F, "{\"path\":\"/slow\",\"action\":\"hang\"}");
    sb_http_request_t req = {.method = "POST", .url = url, .body = "a=1", .body_len = 3, .timeout_ms = 300};
    sbtest_http_result_t r = {0};
    uv_update_time(&F.loop.uv);
    uint64_t t0 = uv_now(&F.loop.uv);
    CHECK_EQ_INT(sb_http_request(F.client, &req, sbtest_on_http, &r, NULL), 0);
    sbtest_run_until(&F, &r.done);
    CHECK_EQ_INT(r.error, SB_ETIMEOUT);
    CHECK(r.sent);
    CHECK_EQ_INT(r.status, 0);
    CHECK(r.at - t0 >= 300 && r.at - t0 < 5000);
    sbtest_http_result_free(&r);

    /* A dropped connection after the request went out: the outcome is unknown.  (On a reused
     * keep-alive connection libcurl itself tries once more on a fresh one, as for a stale
     * connection, so the fake drops twice.) */
    sbtest_fake_fault(&F, "{\"path\":\"/drop1\",\"action\":\"drop\",\"times\":2}");
    sb_http_retry_t retry = {.max_attempts = 4, .base_ms = 10};
    snprintf(url, sizeof url, "%s/drop1", F.url);
    req.retry = &retry;
    req.timeout_ms = 5000;
    CHECK_EQ_INT(sb_http_request(F.client, &req, sbtest_on_http, &r, NULL), 0);
    sbtest_run_until(&F, &r.done);
    CHECK_EQ_INT(r.error, SB_EUNKNOWN);
    CHECK(r.sent);
    CHECK_EQ_INT(r.attempts, 1); /* not retried unless the policy says so */
    sbtest_http_result_free(&r);

    sbtest_fake_fault(&F, "{\"path\":\"/drop2\",\"action\":\"drop\",\"times\":2}");
    snprintf(url, sizeof url, "%s/drop2", F.url);
    retry.after_sent = true;
    CHECK_EQ_INT(sb_http_request(F.client, &req, sbtest_on_http, &r, NULL), 0);
    sbtest_run_until(&F, &r.done);
    CHECK_EQ_INT(r.error, 0);
    CHECK_EQ_INT(r.status, 404); /* the fake knows no /drop2; what matters is that an answer came */
    CHECK(r.attempts >= 2);
    sbtest_http_result_free(&r);
    json_t *recs = sbtest_fake_recorded(&F, "/drop2");
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
    sbtest_http_result_t r = {0};
    CHECK_EQ_INT(sb_http_request(F.client, &req, sbtest_on_http, &r, NULL), 0);
    sbtest_run_until(&F, &r.done);
    CHECK_EQ_INT(r.error, UV_ECONNREFUSED);
    CHECK(!r.sent);
    CHECK_EQ_INT(r.attempts, 3); /* nothing was sent, so retrying is always safe */
    sbtest_http_result_free(&r);

    sbtest_fake_reset(&F);
    sbtest_fake_fault(&F, "{\"path\":\"/big\",\"status\":200,\"bodyBytes\":300000}");
    snprintf(url, sizeof url, "%s/big", F.url);
    sb_http_request_t big = {.url = url, .max_response = 100000};
    CHECK_EQ_INT(sb_http_request(F.client, &big, sbtest_on_http, &r, NULL), 0);
    sbtest_run_until(&F, &r.done);
    CHECK_EQ_INT(r.error, SB_ETOOBIG);
    sbtest_http_result_free(&r);
    /* Under the bound it arrives whole. */
    sbtest_fake_fault(&F, "{\"path\":\"/big\",\"status\":200,\"bodyBytes\":300000}");
    big.max_response = 300000;
    CHECK_EQ_INT(sb_http_request(F.client, &big, sbtest_on_http, &r, NULL), 0);
    sbtest_run_until(&F, &r.done);
    CHECK_EQ_INT(r.error, 0);
    CHECK_EQ_UINT(strlen(r.body), 300000);
    sbtest_http_result_free(&r);
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
    sbtest_fake_reset(&F);
    sbtest_fake_fault(&F, "{\"path\":\"/hang\",\"action\":\"hang\"}");
    char url[1024];
    snprintf(url, sizeof url, "%s/hang", F.url);
    bool fired = false;
    sb_http_call_t *call = NULL;
    sb_http_request_t req = {.url = url};
    CHECK_EQ_INT(sb_http_request(F.client, &req, on_never, &fired, &call), 0);
    /* Let it connect and send, then give up on it. */
    bool waited = false;
    uv_timer_t t;
    uv_timer_init(&F.loop.uv, &t);
    t.data = &waited;
    uv_timer_start(&t, on_timer_done, 200, 0);
    sbtest_run_until(&F, &waited);
    sb_http_cancel(call);
    waited = false;
    uv_timer_start(&t, on_timer_done, 100, 0);
    sbtest_run_until(&F, &waited);
    uv_close((uv_handle_t *)&t, NULL);
    CHECK(!fired);
    sb_http_stats_t st;
    sb_http_client_stats(F.client, &st);
    CHECK_EQ_INT(st.in_flight, 0);
    json_t *recs = sbtest_fake_recorded(&F, "/hang");
    CHECK_EQ_UINT(json_array_size(recs), 1);
    json_decref(recs);

    /* A request waiting between attempts can be cancelled too. */
    sbtest_fake_fault(&F, "{\"path\":\"/again\",\"status\":500}");
    snprintf(url, sizeof url, "%s/again", F.url);
    sb_http_retry_t retry = {.max_attempts = 2, .base_ms = 10000};
    sb_http_request_t again = {.url = url, .retry = &retry};
    CHECK_EQ_INT(sb_http_request(F.client, &again, on_never, &fired, &call), 0);
    /* Each admin query runs the loop until its own answer, which also moves the first attempt
     * along; stop as soon as the fake has seen it (never by blocking on the loop, which would wait
     * out the 10 s backoff and let the second attempt run). */
    size_t n = 0;
    for (int i = 0; i < 1000 && n == 0 && !fired; i++) {
        recs = sbtest_fake_recorded(&F, "/again");
        n = json_array_size(recs);
        json_decref(recs);
    }
    CHECK_EQ_UINT(n, 1);
    sb_http_cancel(call);
    sb_http_client_stats(F.client, &st);
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
    sbtest_fake_reset(&F);
    char sid[64], token[64];
    sbtest_fake_account(&F, 0, sid, token);
    char url[1024];
    snprintf(url, sizeof url, "%s/2010-04-01/Accounts/%s/Messages.json", F.url, sid);
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
        CHECK_EQ_INT(sb_http_request(F.client, &req, on_many, &m, NULL), 0);
    sb_http_stats_t st;
    sb_http_client_stats(F.client, &st);
    CHECK_EQ_INT(st.in_flight, N);
    while (m.done < N)
        uv_run(&F.loop.uv, UV_RUN_ONCE);
    CHECK_EQ_INT(m.ok, N);
    sb_http_client_stats(F.client, &st);
    CHECK_EQ_INT(st.in_flight, 0);
    char path[1024];
    snprintf(path, sizeof path, "/2010-04-01/Accounts/%s/Messages.json", sid);
    json_t *recs = sbtest_fake_recorded(&F, path);
    CHECK_EQ_UINT(json_array_size(recs), N);
    json_decref(recs);
}

/* ---- worker loops: one F.client per loop, closed by the loops' stop ------------------------------ */

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
    snprintf(url, sizeof url, "%s/2010-04-01/Accounts/%s/Messages.json", F.url, w_sid);
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
    sbtest_fake_reset(&F);
    sbtest_fake_account(&F, 0, w_sid, w_token);
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
    sb_loop_set_current(&F.loop);
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
    sb_http_request_t again = {.url = F.url};
    s->restart_rc = sb_http_request(s->c, &again, on_never, NULL, NULL);
}

static void test_shutdown(void)
{
    json_decref(sbtest_fake_admin(&F, "POST", "/__admin/faults",
                                  "{\"path\":\"/stuck\",\"action\":\"hang\",\"times\":2}"));
    sb_loop_t l2;
    if (!CHECK_EQ_INT(sb_loop_init_standalone(&l2), 0))
        return;
    sb_http_client_t *c2 = sb_http_client_get(&l2);
    CHECK(c2 != NULL && c2 != F.client);
    CHECK(sb_http_client_get(&l2) == c2);
    char url[1024];
    snprintf(url, sizeof url, "%s/stuck", F.url);
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
    sb_loop_set_current(&F.loop);
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
    if (!CHECK(sbtest_fake_start(&F))) {
        sbtest_fake_stop(&F);
        return sbtest_summary();
    }
    SBTEST_RUN(test_async_dns);
    SBTEST_RUN(test_timeout_and_drop);
    SBTEST_RUN(test_refused_and_too_big);
    SBTEST_RUN(test_cancel);
    SBTEST_RUN(test_many);
    SBTEST_RUN(test_worker_loops);
    SBTEST_RUN(test_shutdown);
    SBTEST_RUN(test_retry_decision);
    sbtest_fake_stop(&F);
    return sbtest_summary();
}
