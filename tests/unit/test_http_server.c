/* The HTTP server as a library, without a database: routes registered by the test (a handler that
 * answers later from a timer, one that fails with a code, JSON bodies, 204), the dispatch's
 * percent-decoding and error mapping, the per-route counters, and the stop paths: a request in
 * flight finishes, a half-sent request is cut at the end of the grace period, a handler still
 * waiting past the grace period answers into a closed connection without harm.  Driven by libcurl
 * and raw sockets from the test's threads; run under ASan, which checks that nothing leaks. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "core/log.h"
#include "core/loop.h"
#include "http/response.h"
#include "http/server.h"

static int failures;

#define CHECK(cond)                                                                                          \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);                         \
            failures++;                                                                                      \
        }                                                                                                    \
    } while (0)

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- routes ---------------------------------------------------------------------------------- */

static atomic_int slow_started;

/* A reply pending on a timer.  It lives until both the timer is closed and the request's pool is
 * gone (refs), and remembers whether the request was disposed first (a client reset), so a late
 * answer is dropped: the recipe router.h gives handlers that answer later. */
typedef struct {
    uv_timer_t timer;
    h2o_req_t *req;
    bool req_gone;
    int refs;
} slow_t;

static void slow_unref(slow_t *s)
{
    if (--s->refs == 0)
        free(s);
}

static void on_req_disposed(void *p)
{
    slow_t *s = *(slow_t **)p;
    s->req_gone = true;
    slow_unref(s);
}

static void on_slow_closed(uv_handle_t *h)
{
    slow_unref(h->data);
}

static void on_slow_timer(uv_timer_t *t)
{
    slow_t *s = t->data;
    if (!s->req_gone)
        sb_http_send_body(s->req, 200, "text/plain", "slow", 4);
    uv_close((uv_handle_t *)&s->timer, on_slow_closed);
}

static int h_slow(h2o_req_t *req, const sb_route_params_t *p, void *data)
{
    slow_t *s = calloc(1, sizeof(*s));
    s->req = req;
    s->refs = 2;
    slow_t **link = h2o_mem_alloc_shared(&req->pool, sizeof(*link), on_req_disposed);
    *link = s;
    uv_timer_init(req->conn->ctx->loop, &s->timer);
    s->timer.data = s;
    uv_timer_start(&s->timer, on_slow_timer, (uint64_t)atoi(sb_route_param(p, "ms")), 0);
    atomic_fetch_add(&slow_started, 1);
    return 0;
}

static int h_echo(h2o_req_t *req, const sb_route_params_t *p, void *data)
{
    const char *x = sb_route_param(p, "x");
    sb_http_send_json(req, 200, json_pack("{s:s}", "x", x));
    return 0;
}

static int h_fail(h2o_req_t *req, const sb_route_params_t *p, void *data)
{
    return atoi(sb_route_param(p, "code"));
}

static int h_json(h2o_req_t *req, const sb_route_params_t *p, void *data)
{
    json_t *body;
    int rc = sb_http_read_json_object(req, &body);
    if (rc != 0)
        return rc; /* already answered: the router must not answer again */
    sb_http_send_json(req, 201, body);
    return 0;
}

static int h_empty(h2o_req_t *req, const sb_route_params_t *p, void *data)
{
    sb_http_send_body(req, 204, NULL, NULL, 0);
    return 0;
}

/* ---- one server ----------------------------------------------------------------------------- */

static sb_http_server_t *srv;
static sb_loops_t loops;
static int port;
static atomic_int started, stopped;
static int echo_route;

static void on_stopped(sb_loop_t *loop, void *data)
{
    atomic_fetch_add(&stopped, 1);
}

static void on_stop(sb_loop_t *loop, void *data)
{
    sb_http_stop(loop, on_stopped, NULL);
}

static void on_start(sb_loop_t *loop, void *data)
{
    if (sb_http_start(loop, srv) != 0)
        abort();
    sb_loop_on_stop(loop, on_stop, NULL);
    atomic_fetch_add(&started, 1);
}

static void server_up(uint64_t grace_ms)
{
    sb_http_options_t o = {.host = "127.0.0.1",
                           .port = 0,
                           .max_body_bytes = 4096,
                           .max_header_bytes = 2048,
                           .grace_ms = grace_ms};
    char err[256];
    if (sb_http_server_create(&srv, &o, err, sizeof(err)) != 0) {
        fprintf(stderr, "server: %s\n", err);
        exit(1);
    }
    sb_router_t *r = sb_http_server_router(srv);
    CHECK(sb_router_add(r, "GET", "/slow/{ms}", h_slow, NULL) == 0);
    CHECK(sb_router_add(r, "GET", "/echo/{x}", h_echo, NULL) == 0);
    echo_route = sb_router_count(r) - 1;
    CHECK(sb_router_add(r, "GET", "/fail/{code}", h_fail, NULL) == 0);
    CHECK(sb_router_add(r, "POST", "/json", h_json, NULL) == 0);
    CHECK(sb_router_add(r, "DELETE", "/empty", h_empty, NULL) == 0);
    if (sb_http_server_listen(srv, 2, err, sizeof(err)) != 0) {
        fprintf(stderr, "listen: %s\n", err);
        exit(1);
    }
    port = sb_http_server_port(srv);
    atomic_store(&started, 0);
    atomic_store(&stopped, 0);
    atomic_store(&slow_started, 0);
    if (sb_loops_init(&loops, 2, on_start, NULL) != 0 || sb_loops_start(&loops) != 0)
        abort();
    /* The sockets are bound but accept only once each loop's start hook has listened. */
    uint64_t deadline = now_ms() + 10000;
    while (atomic_load(&started) < 2 && now_ms() < deadline)
        usleep(1000);
    if (atomic_load(&started) < 2)
        abort();
}

/* Stops the loops and returns how long the stop took. */
static uint64_t server_down(void)
{
    uint64_t t0 = now_ms();
    sb_loops_stop(&loops);
    sb_loops_join(&loops);
    uint64_t took = now_ms() - t0;
    CHECK(atomic_load(&stopped) == 2);
    sb_http_server_free(srv);
    srv = NULL;
    return took;
}

/* ---- a tiny client ---------------------------------------------------------------------------- */

typedef struct {
    long status;
    char body[4096];
    size_t len;
    char headers[4096];
    size_t hlen;
    CURLcode rc;
} resp_t;

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    resp_t *r = ud;
    size_t len = sz * n;
    size_t room = sizeof(r->body) - 1 - r->len;
    memcpy(r->body + r->len, p, len < room ? len : room);
    r->len += len < room ? len : room;
    r->body[r->len] = '\0';
    return len;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
    resp_t *r = ud;
    size_t len = sz * n;
    size_t room = sizeof(r->headers) - 1 - r->hlen;
    memcpy(r->headers + r->hlen, p, len < room ? len : room);
    r->hlen += len < room ? len : room;
    r->headers[r->hlen] = '\0';
    return len;
}

static void request(resp_t *r, const char *method, const char *path, const char *ctype, const char *body)
{
    memset(r, 0, sizeof(*r));
    char url[4096];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    CURL *c = curl_easy_init();
    struct curl_slist *hdrs = NULL;
    if (ctype != NULL) {
        char h[128];
        snprintf(h, sizeof(h), "Content-Type: %s", ctype);
        hdrs = curl_slist_append(hdrs, h);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body != NULL)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    r->rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
}

static bool has_header(const resp_t *r, const char *line)
{
    return strcasestr(r->headers, line) != NULL;
}

typedef struct {
    const char *path;
    resp_t resp;
} bg_t;

static void *bg_get(void *arg)
{
    bg_t *b = arg;
    request(&b->resp, "GET", b->path, NULL, NULL);
    return NULL;
}

static void wait_slow_started(int n)
{
    uint64_t deadline = now_ms() + 10000;
    while (atomic_load(&slow_started) < n && now_ms() < deadline)
        usleep(1000);
    CHECK(atomic_load(&slow_started) >= n);
}

static uint64_t count_status(const sb_http_route_stats_t *st, int status)
{
    for (int i = 0; i < SB_HTTP_STATUS_SLOTS; i++)
        if (sb_http_status_slot_codes[i] == status)
            return st->status[i];
    return 0;
}

/* A request is counted when h2o disposes of it, which may be just after the client has read the
 * response: wait (boundedly) for the expected total. */
static bool wait_counted(int route, uint64_t want)
{
    uint64_t deadline = now_ms() + 5000;
    for (;;) {
        sb_http_route_stats_t st;
        sb_http_server_stats(srv, route, &st);
        uint64_t total = 0;
        for (int i = 0; i < SB_HTTP_STATUS_SLOTS; i++)
            total += st.status[i];
        if (total >= want || now_ms() > deadline)
            return total == want;
        usleep(1000);
    }
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void test_dispatch(void)
{
    server_up(2000);
    resp_t r;

    request(&r, "GET", "/echo/a%20b%C3%A9", NULL, NULL);
    CHECK(r.status == 200 && strcmp(r.body, "{\"x\":\"a b\xc3\xa9\"}") == 0);
    request(&r, "GET", "/echo/a%zz", NULL, NULL);
    CHECK(r.status == 400);
    CHECK(strcmp(r.body,
                 "{\"error\":{\"code\":\"invalid_argument\",\"message\":\"malformed percent-encoding in "
                 "the path\",\"field\":\"x\"}}") == 0);

    /* a handler's negative code becomes the matching error */
    char path[64];
    snprintf(path, sizeof(path), "/fail/%d", SB_ENOTFOUND);
    request(&r, "GET", path, NULL, NULL);
    CHECK(r.status == 404 && strstr(r.body, "\"code\":\"not_found\"") != NULL);
    snprintf(path, sizeof(path), "/fail/%d", SB_ECONFLICT);
    request(&r, "GET", path, NULL, NULL);
    CHECK(r.status == 409 && strstr(r.body, "\"code\":\"conflict\"") != NULL);
    snprintf(path, sizeof(path), "/fail/%d", SB_EOVERLOAD);
    request(&r, "GET", path, NULL, NULL);
    CHECK(r.status == 503 && has_header(&r, "retry-after: 1"));
    snprintf(path, sizeof(path), "/fail/%d", UV_EIO);
    request(&r, "GET", path, NULL, NULL);
    CHECK(r.status == 500 && strstr(r.body, "\"code\":\"internal\"") != NULL);

    /* JSON bodies */
    request(&r, "POST", "/json", "text/plain", "{}");
    CHECK(r.status == 415 && strstr(r.body, "\"code\":\"unsupported_media_type\"") != NULL);
    request(&r, "POST", "/json", "application/json; charset=utf-8", "{\"a\":");
    CHECK(r.status == 400 && strstr(r.body, "\"code\":\"invalid_json\"") != NULL);
    request(&r, "POST", "/json", "application/json", "[1]");
    CHECK(r.status == 400 && strstr(r.body, "must be a JSON object") != NULL);
    request(&r, "POST", "/json", "application/json", "{\"a\":1,\"a\":2}");
    CHECK(r.status == 400);
    request(&r, "POST", "/json", "application/json", "{\"a\":[1,\"\xc3\xa9\"]}");
    CHECK(r.status == 201 && strcmp(r.body, "{\"a\":[1,\"\xc3\xa9\"]}") == 0);

    /* 204: no body and no Content-Length */
    request(&r, "DELETE", "/empty", NULL, NULL);
    CHECK(r.status == 204 && r.len == 0 && !has_header(&r, "content-length"));

    /* the limits given in the options */
    char big[5000];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    request(&r, "POST", "/json", "application/json", big);
    CHECK(r.status == 413 && strstr(r.body, "\"code\":\"payload_too_large\"") != NULL);
    char longpath[2100] = "/echo/";
    memset(longpath + 6, 'b', 2080);
    longpath[2086] = '\0';
    request(&r, "GET", longpath, NULL, NULL);
    CHECK(r.status == 431);

    /* Counters: /echo/{x} saw a 200 and a 400 (its 431 was refused before routing); unmatched
     * are the 413 (refused by h2o itself), the 431 and this 404. */
    request(&r, "GET", "/nothing", NULL, NULL);
    CHECK(r.status == 404);
    sb_http_route_stats_t st;
    CHECK(wait_counted(echo_route, 2));
    sb_http_server_stats(srv, echo_route, &st);
    CHECK(count_status(&st, 200) == 1 && count_status(&st, 400) == 1);
    uint64_t in_buckets = 0;
    for (int i = 0; i <= SB_HTTP_LATENCY_BUCKETS; i++)
        in_buckets += st.latency[i];
    CHECK(in_buckets == 2 && st.bytes_sent > 0);
    CHECK(wait_counted(-1, 3));
    sb_http_server_stats(srv, -1, &st);
    CHECK(count_status(&st, 404) == 1 && count_status(&st, 413) == 1 && count_status(&st, 431) == 1);

    CHECK(server_down() < 1500); /* nothing in flight, keep-alive connections all closed by curl */
}

static void test_stop_waits_for_in_flight(void)
{
    server_up(5000);
    bg_t b = {.path = "/slow/400"};
    pthread_t t;
    pthread_create(&t, NULL, bg_get, &b);
    wait_slow_started(1);
    uint64_t took = server_down();
    pthread_join(t, NULL);
    CHECK(b.resp.rc == CURLE_OK && b.resp.status == 200 && strcmp(b.resp.body, "slow") == 0);
    CHECK(has_header(&b.resp, "connection: close"));
    CHECK(took >= 300 && took < 4000);
}

/* A client that sends half a request and then stalls: cut when the grace period ends. */
static void test_grace_cuts_stalled_client(void)
{
    server_up(300);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    /* Expect: 100-continue makes the server say when it has parsed the headers, so the stop
     * surely finds a request in progress (not an idle connection, which it would close at once). */
    static const char head[] = "POST /json HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                               "Content-Length: 100\r\nExpect: 100-continue\r\n\r\n";
    CHECK(write(fd, head, sizeof(head) - 1) == (ssize_t)(sizeof(head) - 1));
    char cont[64] = "";
    size_t got = 0;
    while (got < sizeof(cont) - 1 && strstr(cont, "\r\n\r\n") == NULL) {
        ssize_t n = read(fd, cont + got, sizeof(cont) - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
        cont[got] = '\0';
    }
    CHECK(strncmp(cont, "HTTP/1.1 100 Continue\r\n", 23) == 0);
    CHECK(write(fd, "{\"a\":", 5) == 5);
    uint64_t took = server_down();
    CHECK(took >= 250 && took < 3000);
    char buf[256];
    ssize_t n = read(fd, buf, sizeof(buf));
    CHECK(n <= 0); /* closed without an answer */
    close(fd);
}

/* A handler still waiting when the grace period ends answers into a connection already shut down:
 * nothing crashes or leaks, and the stop completes once it has answered. */
static void test_grace_with_waiting_handler(void)
{
    server_up(200);
    bg_t b = {.path = "/slow/700"};
    pthread_t t;
    pthread_create(&t, NULL, bg_get, &b);
    wait_slow_started(1);
    uint64_t took = server_down();
    pthread_join(t, NULL);
    CHECK(b.resp.status != 200);
    CHECK(took >= 150 && took < 3000);
}

int main(void)
{
    sb_log_set_level(SB_LOG_WARN);
    signal(SIGPIPE, SIG_IGN); /* as serve does: writes to a closed peer fail with EPIPE */
    curl_global_init(CURL_GLOBAL_DEFAULT);
    test_dispatch();
    test_stop_waits_for_in_flight();
    test_grace_cuts_stalled_client();
    test_grace_with_waiting_handler();
    curl_global_cleanup();
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("http server: ok\n");
    return 0;
}
