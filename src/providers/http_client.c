/* libcurl multi on libuv: the glue (sockets, timer), the requests' life cycle, shutdown.
 *
 * The pattern is libcurl's multi_socket API: curl tells us which sockets to watch for what
 * (on_socket) and when to call it back (on_curl_timer); we watch them with uv_poll_t and a
 * uv_timer_t and report readiness with curl_multi_socket_action; completed transfers are collected
 * with curl_multi_info_read after every action.  No curl function is called from inside a curl
 * callback, and user callbacks run only outside curl. */
#include "providers/http_client.h"

#include "core/buf.h"
#include "core/error.h"
#include "core/log.h"

#include <curl/curl.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct sb_http_client_s {
    sb_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer; /* curl's timeout; the client is freed in its close callback */
    sb_http_call_t *calls;
    struct sock_s *socks;
    bool closing;
    sb_http_stats_t stats;
};

/* One watched socket.  Freed in its poll handle's close callback. */
typedef struct sock_s {
    uv_poll_t poll;
    curl_socket_t fd;
    sb_http_client_t *c;
    struct sock_s *prev, *next;
} sock_t;

struct sb_http_call_s {
    sb_http_client_t *c;
    CURL *easy;
    struct curl_slist *headers;
    char *body; /* request body, owned (curl reads it in place) */
    sb_buf_t resp_body;
    sb_buf_t resp_headers;
    size_t max_response;
    bool too_big;
    bool in_multi; /* added to the multi handle (not waiting to retry) */
    sb_http_retry_t retry;
    bool has_retry;
    int attempt;
    uv_timer_t retry_timer; /* the call is freed in its close callback */
    sb_http_cb cb;
    void *data;
    char errbuf[CURL_ERROR_SIZE];
    sb_http_call_t *prev, *next;
};

/* A closed client leaves this in the loop's slot, so nothing creates another during shutdown. */
static char closed_marker;

static uv_once_t global_once = UV_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT;

static void global_init(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

bool sb_http_async_dns(void)
{
    uv_once(&global_once, global_init);
    const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
    return (v->features & CURL_VERSION_ASYNCHDNS) != 0;
}

static void check_multi_info(sb_http_client_t *c);

/* ---- sockets and the timer ---------------------------------------------------------------------- */

static void on_sock_closed(uv_handle_t *h)
{
    free(h->data);
}

static void sock_close(sock_t *s)
{
    sb_http_client_t *c = s->c;
    if (s->prev)
        s->prev->next = s->next;
    else
        c->socks = s->next;
    if (s->next)
        s->next->prev = s->prev;
    c->stats.sockets--;
    uv_close((uv_handle_t *)&s->poll, on_sock_closed);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    sock_t *s = h->data;
    sb_http_client_t *c = s->c;
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    else {
        if (events & (UV_READABLE | UV_DISCONNECT))
            flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
            flags |= CURL_CSELECT_OUT;
    }
    int running;
    /* s may be freed by the socket callback inside this call: use only the saved fd. */
    curl_multi_socket_action(c->multi, s->fd, flags, &running);
    check_multi_info(c);
}

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    sb_http_client_t *c = userp;
    sock_t *s = socketp;
    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        if (s != NULL) {
            curl_multi_assign(c->multi, fd, NULL);
            sock_close(s);
        }
        return 0;
    }
    if (s == NULL) {
        s = calloc(1, sizeof(*s));
        if (s == NULL)
            return -1;
        int ri = uv_poll_init_socket(&c->loop->uv, &s->poll, fd);
        if (ri != 0) {
            sb_log_error("http-client", "cannot watch socket fd=%d: %s", (int)fd, sb_strerror(ri));
            free(s);
            return -1;
        }
        s->poll.data = s;
        s->fd = fd;
        s->c = c;
        s->next = c->socks;
        if (c->socks)
            c->socks->prev = s;
        c->socks = s;
        c->stats.sockets++;
        curl_multi_assign(c->multi, fd, s);
    }
    int events = 0;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
        events |= UV_READABLE;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
        events |= UV_WRITABLE;
    int r = uv_poll_start(&s->poll, events, on_poll);
    if (r != 0) {
        sb_log_error("http-client", "cannot poll socket fd=%d: %s", (int)fd, sb_strerror(r));
        return -1; /* curl fails the transfer */
    }
    return 0;
}

static void on_timer(uv_timer_t *t)
{
    sb_http_client_t *c = t->data;
    int running;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_multi_info(c);
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    sb_http_client_t *c = userp;
    (void)multi;
    if (timeout_ms < 0)
        uv_timer_stop(&c->timer);
    else /* 0 too goes through the timer: curl must not be called back from inside its callback */
        uv_timer_start(&c->timer, on_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

/* ---- calls ------------------------------------------------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t n, void *userp)
{
    sb_http_call_t *call = userp;
    size_t len = size * n;
    if (len > call->max_response - call->resp_body.len || sb_buf_reserve(&call->resp_body, len) != 0) {
        call->too_big = true;
        return 0; /* curl fails the transfer with CURLE_WRITE_ERROR */
    }
    sb_buf_append(&call->resp_body, p, len);
    return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *userp)
{
    sb_http_call_t *call = userp;
    size_t len = size * n;
    /* A new status line starts a new answer (after 1xx or an authentication round): keep only the
     * final answer's headers. */
    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0)
        sb_buf_reset(&call->resp_headers);
    if (len > SB_HTTP_MAX_HEADER_BYTES - call->resp_headers.len) {
        call->too_big = true;
        return 0;
    }
    sb_buf_append(&call->resp_headers, p, len);
    return len;
}

static void on_call_closed(uv_handle_t *h)
{
    sb_http_call_t *call = h->data;
    free(call);
}

/* Frees everything but the timer handle, whose close callback frees the call. */
static void call_destroy(sb_http_call_t *call)
{
    sb_http_client_t *c = call->c;
    if (call->in_multi) {
        curl_multi_remove_handle(c->multi, call->easy);
        call->in_multi = false;
    }
    curl_easy_cleanup(call->easy);
    curl_slist_free_all(call->headers);
    free(call->body);
    sb_buf_free(&call->resp_body);
    sb_buf_free(&call->resp_headers);
    if (call->prev)
        call->prev->next = call->next;
    else
        c->calls = call->next;
    if (call->next)
        call->next->prev = call->prev;
    c->stats.in_flight--;
    uv_close((uv_handle_t *)&call->retry_timer, on_call_closed);
}

static int map_error(CURLcode rc, bool too_big, bool sent)
{
    switch (rc) {
    case CURLE_OK:
        return 0;
    case CURLE_WRITE_ERROR:
    case CURLE_FILESIZE_EXCEEDED:
        return too_big || rc == CURLE_FILESIZE_EXCEEDED ? SB_ETOOBIG : UV_EIO;
    case CURLE_OPERATION_TIMEDOUT:
        return SB_ETIMEOUT;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return UV_EAI_NONAME;
    case CURLE_COULDNT_CONNECT:
        return UV_ECONNREFUSED;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
        return UV_EPROTO;
    default: /* GOT_NOTHING, RECV_ERROR, SEND_ERROR, PARTIAL_FILE, HTTP2...: the connection failed */
        return sent ? SB_EUNKNOWN : UV_ECONNRESET;
    }
}

static void on_retry_timer(uv_timer_t *t);

/* res points into the call's buffers: the call goes only after the callback returns. */
static void call_finish(sb_http_call_t *call, sb_http_response_t *res)
{
    call->cb(res, call->data);
    call_destroy(call);
}

/* One attempt ended (curl result rc, already removed from the multi handle). */
static void attempt_done(sb_http_call_t *call, CURLcode rc)
{
    sb_http_client_t *c = call->c;
    long status = 0, reqsize = 0;
    curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(call->easy, CURLINFO_REQUEST_SIZE, &reqsize);
    sb_http_response_t res = {0};
    bool sent = reqsize > 0;
    res.error = map_error(rc, call->too_big, sent);
    res.error_text = res.error ? (call->errbuf[0] ? call->errbuf : curl_easy_strerror(rc)) : "";
    res.sent = res.error == 0 || sent;
    res.status = res.error ? 0 : status;
    res.body = call->resp_body.data ? call->resp_body.data : "";
    res.body_len = call->resp_body.len;
    res._headers = call->resp_headers.data ? call->resp_headers.data : "";
    res._headers_len = call->resp_headers.len;
    res.attempts = call->attempt;
    res.retry_after_ms = -1;
    if (res.error == 0) {
        char v[64];
        if (sb_http_response_header(&res, "Retry-After", v, sizeof v) != NULL) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            res.retry_after_ms =
                sb_http_parse_retry_after(v, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
        }
    }
    uint64_t delay;
    if (call->has_retry && !c->closing &&
        sb_http_retry_next(&call->retry, call->attempt, &res, randombytes_random(), &delay)) {
        sb_log_info("http-client", "retrying in %llums attempt=%d status=%ld error=%s",
                    (unsigned long long)delay, call->attempt, res.status,
                    res.error ? sb_errname(res.error) : "none");
        sb_buf_reset(&call->resp_body);
        sb_buf_reset(&call->resp_headers);
        call->too_big = false;
        call->errbuf[0] = '\0';
        c->stats.retries++;
        uv_timer_start(&call->retry_timer, on_retry_timer, delay, 0);
        return;
    }
    call_finish(call, &res);
}

static int attempt_start(sb_http_call_t *call)
{
    sb_http_client_t *c = call->c;
    call->attempt++;
    c->stats.attempts++;
    CURLMcode mc = curl_multi_add_handle(c->multi, call->easy);
    if (mc != CURLM_OK) {
        sb_log_error("http-client", "cannot add a transfer: %s", curl_multi_strerror(mc));
        return SB_ENOMEM;
    }
    call->in_multi = true;
    return 0;
}

static void on_retry_timer(uv_timer_t *t)
{
    sb_http_call_t *call = t->data;
    if (attempt_start(call) != 0) {
        sb_http_response_t res = {.error = SB_ENOMEM,
                                  .error_text = "cannot add a transfer",
                                  .body = "",
                                  ._headers = "",
                                  .retry_after_ms = -1,
                                  .attempts = call->attempt};
        call_finish(call, &res);
    }
}

static void check_multi_info(sb_http_client_t *c)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(c->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *easy = msg->easy_handle;
        CURLcode rc = msg->data.result;
        sb_http_call_t *call = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&call);
        curl_multi_remove_handle(c->multi, easy);
        call->in_multi = false;
        attempt_done(call, rc);
    }
}

static bool method_ok(const char *m)
{
    if (m[0] == '\0' || strlen(m) > 16)
        return false;
    for (const char *p = m; *p; p++)
        if (*p < 'A' || *p > 'Z')
            return false;
    return true;
}

static bool url_ok(const char *url)
{
    CURLU *u = curl_url();
    if (u == NULL)
        return false;
    bool ok = curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK;
    char *scheme = NULL;
    if (ok && curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK)
        ok = strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0;
    else
        ok = false;
    curl_free(scheme);
    curl_url_cleanup(u);
    return ok;
}

int sb_http_request(sb_http_client_t *c, const sb_http_request_t *req, sb_http_cb cb, void *data,
                    sb_http_call_t **callp)
{
    if (c == NULL || c->closing)
        return SB_ESHUTDOWN;
    if (req->url == NULL || cb == NULL || (req->body == NULL && req->body_len > 0))
        return SB_EINVAL;
    if (req->body_len > SB_HTTP_MAX_REQUEST_BODY)
        return SB_ETOOBIG;
    const char *method = req->method ? req->method : req->body ? "POST" : "GET";
    if (!method_ok(method) || !url_ok(req->url))
        return SB_EINVAL;

    sb_http_call_t *call = calloc(1, sizeof(*call));
    if (call == NULL)
        return SB_ENOMEM;
    int rc = SB_ENOMEM;
    call->c = c;
    call->cb = cb;
    call->data = data;
    call->max_response = req->max_response ? req->max_response : SB_HTTP_DEFAULT_MAX_RESPONSE;
    if (req->retry) {
        call->retry = *req->retry;
        call->has_retry = true;
    }
    call->easy = curl_easy_init();
    if (call->easy == NULL)
        goto fail_easy;
    if (req->body) {
        call->body = malloc(req->body_len + 1);
        if (call->body == NULL)
            goto fail_body;
        memcpy(call->body, req->body, req->body_len);
        call->body[req->body_len] = '\0';
    }
    /* An empty Expect: stops curl from waiting for "100 Continue" before sending a body. */
    struct curl_slist *h = curl_slist_append(NULL, "Expect:");
    if (h == NULL)
        goto fail_headers;
    call->headers = h;
    for (const char *const *p = req->headers; p && *p; p++) {
        if (strchr(*p, '\r') || strchr(*p, '\n')) {
            rc = SB_EINVAL; /* header injection */
            goto fail_headers;
        }
        if ((h = curl_slist_append(call->headers, *p)) == NULL)
            goto fail_headers;
        call->headers = h;
    }

    CURL *e = call->easy;
    uint64_t timeout = req->timeout_ms ? req->timeout_ms : SB_HTTP_DEFAULT_TIMEOUT_MS;
    curl_easy_setopt(e, CURLOPT_PRIVATE, call);
    curl_easy_setopt(e, CURLOPT_URL, req->url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075700
    /* Removing a transfer whose name is still being resolved must not wait for the resolver
     * thread (that would block the loop): let the thread finish on its own. */
    curl_easy_setopt(e, CURLOPT_QUICK_EXIT, 1L);
#endif
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(timeout < SB_HTTP_CONNECT_TIMEOUT_MS ? timeout : SB_HTTP_CONNECT_TIMEOUT_MS));
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, call->headers);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "switchboard");
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)call->max_response);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, call);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, call);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, call->errbuf);
    if (req->fresh_connection) {
        curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
        curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
    }
    if (req->username) {
        curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(e, CURLOPT_USERNAME, req->username);
        curl_easy_setopt(e, CURLOPT_PASSWORD, req->password ? req->password : "");
    }
    if (call->body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, call->body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        if (strcmp(method, "POST") != 0)
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    } else if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
    } else {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    }

    uv_timer_init(&c->loop->uv, &call->retry_timer);
    call->retry_timer.data = call;
    call->next = c->calls;
    if (c->calls)
        c->calls->prev = call;
    c->calls = call;
    c->stats.in_flight++;
    c->stats.started++;
    if ((rc = attempt_start(call)) != 0) {
        call_destroy(call); /* frees the call in the timer's close callback; cb never fires */
        return rc;
    }
    if (callp)
        *callp = call;
    return 0;

fail_headers:
    curl_slist_free_all(call->headers);
    free(call->body);
fail_body:
    curl_easy_cleanup(call->easy);
fail_easy:
    free(call);
    return rc;
}

void sb_http_cancel(sb_http_call_t *call)
{
    if (call != NULL)
        call_destroy(call);
}

void sb_http_client_stats(const sb_http_client_t *c, sb_http_stats_t *out)
{
    *out = c->stats;
}

/* ---- the client's life cycle ------------------------------------------------------------------- */

static void on_client_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

static void on_loop_stop(sb_loop_t *loop, void *data)
{
    sb_http_client_t *c = data;
    c->closing = true;
    /* Requests in flight end now, their callbacks told why; a callback may not start new requests
     * (closing makes sb_http_request refuse). */
    while (c->calls) {
        sb_http_call_t *call = c->calls;
        sb_http_response_t res = {.error = SB_ESHUTDOWN,
                                  .error_text = "shutting down",
                                  .body = "",
                                  ._headers = "",
                                  .retry_after_ms = -1,
                                  .attempts = call->attempt};
        call_finish(call, &res);
    }
    curl_multi_cleanup(c->multi);
    c->multi = NULL;
    /* curl tells us to drop every socket it stops using; close any it did not mention. */
    while (c->socks)
        sock_close(c->socks);
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_client_timer_closed);
    loop->http_client = &closed_marker;
}

sb_http_client_t *sb_http_client_get(sb_loop_t *loop)
{
    if (loop->http_client == &closed_marker)
        return NULL;
    if (loop->http_client != NULL)
        return loop->http_client;
    uv_once(&global_once, global_init);
    if (global_rc != CURLE_OK) {
        sb_log_error("http-client", "libcurl failed to initialise: %s", curl_easy_strerror(global_rc));
        return NULL;
    }
    sb_http_client_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->loop = loop;
    c->multi = curl_multi_init();
    if (c->multi == NULL)
        goto fail_multi;
    if (sb_loop_on_stop(loop, on_loop_stop, c) != 0)
        goto fail_hook;
    uv_timer_init(&loop->uv, &c->timer);
    c->timer.data = c;
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    if (!sb_http_async_dns())
        sb_log_warn("http-client",
                    "libcurl resolves names synchronously: a slow DNS server will stall loops");
    loop->http_client = c;
    return c;

fail_hook:
    curl_multi_cleanup(c->multi);
fail_multi:
    free(c);
    return NULL;
}
