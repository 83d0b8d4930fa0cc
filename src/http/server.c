#include "http/server.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <h2o.h>
#include <h2o/http1.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "core/error.h"
#include "core/log.h"
#include "http/http_int.h"
#include "http/response.h"

#define DEFAULT_MAX_BODY (1024 * 1024)
#define DEFAULT_MAX_HEADER (32 * 1024)
#define DEFAULT_GRACE_MS 10000
#define LISTEN_BACKLOG 1024

const int sb_http_status_slot_codes[SB_HTTP_STATUS_SLOTS] = {
    200, 201, 202, 204, 301, 302, 304, 400, 401, 403, 404, 405,
    409, 412, 413, 415, 422, 429, 431, 500, 502, 503, 504, 0,
};

const uint64_t sb_http_latency_bounds_us[SB_HTTP_LATENCY_BUCKETS] = {
    1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000,
};

/* One route's counters on one loop.  Only that loop writes them (plain load + store, no lock
 * prefix); relaxed atomics let /metrics read them from another loop without a data race. */
typedef struct {
    _Atomic uint64_t status[SB_HTTP_STATUS_SLOTS];
    _Atomic uint64_t latency[SB_HTTP_LATENCY_BUCKETS + 1];
    _Atomic uint64_t latency_sum_us;
    _Atomic uint64_t bytes_sent;
} counters_t;

struct sb_http_server_s {
    h2o_globalconf_t conf;
    sb_router_t *router;
    SSL_CTX *ssl_ctx;
    char *host; /* as configured, for messages */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int port;
    size_t max_body;
    size_t max_header;
    uint64_t grace_ms;
    int nloops;
    int *fds;             /* the socket bound for each loop; -1 once that loop owns it */
    int nslots;           /* routes + 1 (unmatched), frozen by sb_http_server_listen */
    counters_t *counters; /* nloops rows of nslots */
    sb_http_ready_cb ready_cb;
    void *ready_data;
};

/* A loop's HTTP side (loop->http). */
typedef struct sb_http_s {
    h2o_context_t ctx;
    h2o_accept_ctx_t accept;
    sb_http_server_t *srv;
    sb_loop_t *loop;
    counters_t *counters; /* this loop's row */
    uv_tcp_t listener;
    uv_timer_t timer; /* the grace period, then the deferred disposal */
    /* The access log: the lines of requests that ended during one turn of the loop are written
     * together just before it waits again (at most SB_LOG_BATCH_MAX bytes per write), instead of
     * one write(2) per request. */
    uv_prepare_t log_flush;
    size_t loglen;
    char logbuf[SB_LOG_BATCH_MAX];
    h2o_linklist_t conns;
    size_t nconns;
    int open_handles; /* handles still closing: a failed start, or the end of the stop */
    bool listening;
    bool stopping;
    bool finishing;
    sb_http_stopped_cb on_stopped;
    void *stopped_data;
} sb_http_t;

/* An accepted connection: the uv handle h2o's socket wraps, tracked so a stop can count them and
 * shut down stragglers.  h2o frees its socket first, then calls on_conn_closed with the handle. */
typedef struct {
    uv_tcp_t tcp;
    h2o_linklist_t link;
    sb_http_t *http;
} conn_t;

typedef struct {
    h2o_handler_t super;
    sb_http_server_t *srv;
} dispatch_handler_t;

typedef struct {
    h2o_logger_t super;
    sb_http_server_t *srv;
} access_logger_t;

static sb_http_t *http_of(h2o_req_t *req)
{
    return H2O_STRUCT_FROM_MEMBER(sb_http_t, ctx, req->conn->ctx);
}

/* ---- dispatch ------------------------------------------------------------------------------- */

static size_t request_header_bytes(h2o_req_t *req)
{
    size_t n = req->input.method.len + req->input.path.len;
    for (size_t i = 0; i < req->headers.size; i++)
        n += req->headers.entries[i].name->len + req->headers.entries[i].value.len + 4;
    return n;
}

/* Replaces the raw path slices of params by decoded, NUL-terminated copies in the request's pool.
 * Returns the index of a malformed value, or -1. */
static int decode_params(h2o_req_t *req, sb_route_params_t *params)
{
    for (int i = 0; i < params->n; i++) {
        char *out = h2o_mem_alloc_pool(&req->pool, params->lens[i] + 1);
        size_t n;
        if (sb_router_decode(params->values[i], params->lens[i], out, &n) != 0)
            return i;
        params->values[i] = out;
        params->lens[i] = n;
    }
    return -1;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    sb_http_server_t *srv = ((dispatch_handler_t *)self)->srv;
    sb__http_reqstate_t *st = sb__http_reqstate(req, true);

    if (request_header_bytes(req) > srv->max_header) {
        sb_http_send_error(req, 431, NULL, "request headers too large", NULL);
        return 0;
    }
    /* h2o already refuses bodies over max_request_entity_size; this is the same limit, kept here
     * so the rule does not depend on h2o's exact comparison. */
    if (req->entity.base != NULL && req->entity.len > srv->max_body) {
        sb_http_send_error(req, 413, NULL, "request body too large", NULL);
        return 0;
    }
    size_t path_len = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    sb_route_match_t m;
    switch (sb_router_match(srv->router, req->method.base, req->method.len, req->path.base, path_len, &m)) {
    case SB_ROUTE_NOT_FOUND:
        sb_http_send_error(req, 404, "not_found", "no such resource", NULL);
        return 0;
    case SB_ROUTE_METHOD_NOT_ALLOWED: {
        const char *allow = sb_router_allow(srv->router, m.resource);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, allow, strlen(allow));
        sb_http_send_error(req, 405, "method_not_allowed", "method not allowed on this resource", NULL);
        return 0;
    }
    default:
        break;
    }
    st->route = m.route;
    int bad = decode_params(req, &m.params);
    if (bad >= 0) {
        sb_http_send_error(req, 400, "invalid_argument", "malformed percent-encoding in the path",
                           m.params.names[bad]);
        return 0;
    }
    const sb_route_t *rt = sb_router_route(srv->router, m.route);
    int rc = rt->cb(req, &m.params, rt->data);
    if (rc < 0 && !sb_http_responded(req))
        sb_http_send_errcode(req, rc, NULL);
    return 0;
}

/* ---- built-in routes ------------------------------------------------------------------------ */

static int on_healthz(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_http_send_body(req, 200, "application/json", H2O_STRLIT("{\"status\":\"ok\"}"));
    return 0;
}

static int on_readyz(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_http_server_t *srv = data;
    const char *why = NULL;
    if (srv->ready_cb != NULL && srv->ready_cb(http_of(req)->loop, srv->ready_data, &why)) {
        sb_http_send_body(req, 200, "application/json", H2O_STRLIT("{\"status\":\"ok\"}"));
        return 0;
    }
    sb_http_send_error(req, 503, "not_ready", why != NULL ? why : "not ready", NULL);
    return 0;
}

/* ---- access log and counters ---------------------------------------------------------------- */

static int status_slot(int status)
{
    for (int i = 0; i < SB_HTTP_STATUS_SLOTS - 1; i++)
        if (sb_http_status_slot_codes[i] == status)
            return i;
    return SB_HTTP_STATUS_SLOTS - 1;
}

static void bump(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n, memory_order_relaxed);
}

/* Copies at most cap - 1 bytes of in, escaping anything but visible ASCII as %XX so a request can
 * never forge or break a log line. */
static void log_safe(char *out, size_t cap, const char *in, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c > 0x20 && c < 0x7f && c != '%') {
            if (o + 1 >= cap)
                break;
            out[o++] = (char)c;
        } else {
            if (o + 3 >= cap)
                break;
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
}

static void flush_log(sb_http_t *h)
{
    if (h->loglen > 0)
        sb_log_write(h->logbuf, h->loglen);
    h->loglen = 0;
}

static void log_access(h2o_logger_t *self, h2o_req_t *req)
{
    sb_http_server_t *srv = ((access_logger_t *)self)->srv;
    sb_http_t *h = http_of(req);
    sb__http_reqstate_t *st = sb__http_reqstate(req, false);
    int route = st != NULL ? st->route : -1;
    int status = req->res.status;

    /* HTTP/1 stamps the first byte of the request; HTTP/2 (in h2o 2.2) only the start of
     * processing. */
    struct timeval begin = req->timestamps.request_begin_at.tv_sec != 0 ? req->timestamps.request_begin_at
                                                                        : req->processed_at.at;
    struct timeval end;
    gettimeofday(&end, NULL);
    int64_t us = (int64_t)(end.tv_sec - begin.tv_sec) * 1000000 + (end.tv_usec - begin.tv_usec);
    if (us < 0 || begin.tv_sec == 0)
        us = 0;

    counters_t *c = &h->counters[route >= 0 && route < srv->nslots - 1 ? route : srv->nslots - 1];
    bump(&c->status[status_slot(status)], 1);
    int b = 0;
    while (b < SB_HTTP_LATENCY_BUCKETS && (uint64_t)us > sb_http_latency_bounds_us[b])
        b++;
    bump(&c->latency[b], 1);
    bump(&c->latency_sum_us, (uint64_t)us);
    bump(&c->bytes_sent, req->bytes_sent);

    if (!sb_log_enabled(SB_LOG_INFO))
        return;
    char method[24], path[320], line[SB_LOG_LINE_MAX];
    size_t path_len = req->input.query_at != SIZE_MAX ? req->input.query_at : req->input.path.len;
    log_safe(method, sizeof(method), req->input.method.base, req->input.method.len);
    log_safe(path, sizeof(path), req->input.path.base, path_len);
    size_t n = sb_log_format(line, SB_LOG_INFO, "http", "%s %s %d bytes=%zu ms=%.2f proto=%s id=%s", method,
                             path, status, req->bytes_sent, (double)us / 1000.0,
                             req->version >= 0x200   ? "2"
                             : req->version == 0x100 ? "1.0"
                                                     : "1.1",
                             sb_http_request_id(req));
    if (n == 0)
        return;
    if (h->loglen + n > sizeof(h->logbuf))
        flush_log(h);
    memcpy(h->logbuf + h->loglen, line, n);
    h->loglen += n;
}

static void on_log_flush(uv_prepare_t *p)
{
    flush_log(p->data);
}

void sb_http_server_stats(const sb_http_server_t *srv, int route, sb_http_route_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    if (srv->counters == NULL)
        return;
    int slot = route >= 0 && route < srv->nslots - 1 ? route : srv->nslots - 1;
    for (int l = 0; l < srv->nloops; l++) {
        const counters_t *c = &srv->counters[(size_t)l * (size_t)srv->nslots + (size_t)slot];
        for (int i = 0; i < SB_HTTP_STATUS_SLOTS; i++)
            out->status[i] += atomic_load_explicit(&c->status[i], memory_order_relaxed);
        for (int i = 0; i <= SB_HTTP_LATENCY_BUCKETS; i++)
            out->latency[i] += atomic_load_explicit(&c->latency[i], memory_order_relaxed);
        out->latency_sum_us += atomic_load_explicit(&c->latency_sum_us, memory_order_relaxed);
        out->bytes_sent += atomic_load_explicit(&c->bytes_sent, memory_order_relaxed);
    }
}

/* ---- set-up --------------------------------------------------------------------------------- */

void sb_http_options_init(sb_http_options_t *o, const sb_config_t *cfg)
{
    memset(o, 0, sizeof(*o));
    o->host = cfg->listen_host;
    o->port = cfg->listen_port;
    o->tls_cert = cfg->tls_cert;
    o->tls_key = cfg->tls_key;
    o->max_body_bytes = DEFAULT_MAX_BODY;
    o->max_header_bytes = DEFAULT_MAX_HEADER;
    o->grace_ms = DEFAULT_GRACE_MS;
}

static int resolve(sb_http_server_t *srv, int port, char *err, size_t errlen)
{
    char name[256];
    size_t n = strlen(srv->host);
    const char *h = srv->host;
    if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
        h++;
        n -= 2;
    }
    if (n == 0 || n >= sizeof(name)) {
        snprintf(err, errlen, "invalid listen address '%s'", srv->host);
        return SB_EINVAL;
    }
    memcpy(name, h, n);
    name[n] = '\0';
    char service[16];
    snprintf(service, sizeof(service), "%d", port);
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int r = getaddrinfo(name, service, &hints, &res);
    if (r != 0 || res == NULL) {
        snprintf(err, errlen, "cannot resolve listen address '%s': %s", srv->host, gai_strerror(r));
        return SB_EINVAL;
    }
    memcpy(&srv->addr, res->ai_addr, res->ai_addrlen);
    srv->addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static void set_port(struct sockaddr_storage *ss, int port)
{
    if (ss->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
}

/* A bound (not yet listening) socket, or a negative errno. */
static int bind_socket(const sb_http_server_t *srv, bool reuseport)
{
    int fd = socket(srv->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) ||
        bind(fd, (const struct sockaddr *)&srv->addr, srv->addrlen) != 0) {
        int r = -errno;
        close(fd);
        return r;
    }
    return fd;
}

/* Binding once without SO_REUSEPORT catches a port held by anyone, another switchboard included
 * (whose SO_REUSEPORT sockets would otherwise silently share the port with ours). */
static int probe_bind(sb_http_server_t *srv, int port, char *err, size_t errlen)
{
    int fd = bind_socket(srv, false);
    if (fd < 0) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s", srv->host, port, sb_strerror(fd));
        return fd;
    }
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
        int r = -errno;
        close(fd);
        snprintf(err, errlen, "cannot listen on %s:%d: %s", srv->host, port, sb_strerror(r));
        return r;
    }
    srv->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                               : ((struct sockaddr_in *)&ss)->sin_port);
    set_port(&srv->addr, srv->port);
    close(fd);
    return 0;
}

static void tls_error(char *err, size_t errlen, const char *what, const char *file)
{
    char detail[256] = "unknown error";
    unsigned long e = ERR_peek_last_error();
    if (e != 0)
        ERR_error_string_n(e, detail, sizeof(detail));
    ERR_clear_error();
    snprintf(err, errlen, "cannot load TLS %s '%s': %s", what, file, detail);
}

static int setup_tls(sb_http_server_t *srv, const char *cert, const char *key, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        snprintf(err, errlen, "cannot create a TLS context");
        return SB_ENOMEM;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx,
                        SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* Close TLS connections without writing a close_notify alert.  h2o 2.2.5 closes a TLS socket
     * by writing close_notify and disposing of the socket in that write's callback, but its libuv
     * binding ignores uv_write's result: after a read error (a peer's reset, as when we shut an
     * idle keep-alive connection down on stop) libuv refuses further writes at once (UV_EPIPE),
     * the callback never comes, and the connection stays open forever, holding sb_http_stop past
     * its grace period.  HTTP frames its own messages, so clients lose nothing without the alert
     * (RFC 9112 §9.8: a client treats a response as complete by its framing on an incomplete
     * close). */
    SSL_CTX_set_quiet_shutdown(ctx, 1);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        tls_error(err, errlen, "certificate", cert);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        tls_error(err, errlen, "key", key);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        tls_error(err, errlen, "key", key);
        goto fail;
    }
    /* h2 first, then http/1.1 (and h2's draft names for old clients). */
    h2o_ssl_register_alpn_protocols(ctx, h2o_http2_alpn_protocols);
    srv->ssl_ctx = ctx;
    return 0;
fail:
    SSL_CTX_free(ctx);
    return SB_EINVAL;
}

/* Every path (and the fallback h2o uses for requests it rejects before routing) gets the same
 * dispatch, response filter, chunked encoding for streamed HTTP/1.1 bodies, and access log. */
static void setup_pathconf(sb_http_server_t *srv, h2o_pathconf_t *pathconf)
{
    dispatch_handler_t *h = (dispatch_handler_t *)h2o_create_handler(pathconf, sizeof(*h));
    h->super.on_req = on_req;
    h->srv = srv;
    sb__http_register_filter(pathconf); /* before chunked: it may rewrite the length */
    h2o_chunked_register(pathconf);
    access_logger_t *l = (access_logger_t *)h2o_create_logger(pathconf, sizeof(*l));
    l->super.log_access = log_access;
    l->srv = srv;
}

int sb_http_server_create(sb_http_server_t **out, const sb_http_options_t *opts, char *err, size_t errlen)
{
    *out = NULL;
    if (opts->port < 0 || opts->port > 65535 || opts->max_body_bytes == 0 || opts->max_header_bytes == 0 ||
        (opts->tls_cert == NULL) != (opts->tls_key == NULL)) {
        snprintf(err, errlen, "invalid http options");
        return SB_EINVAL;
    }
    sb_http_server_t *srv = calloc(1, sizeof(*srv));
    if (srv == NULL)
        goto fail_alloc;
    srv->host = strdup(opts->host != NULL ? opts->host : "127.0.0.1");
    srv->router = sb_router_new();
    if (srv->host == NULL || srv->router == NULL)
        goto fail_alloc;
    srv->max_body = opts->max_body_bytes;
    srv->max_header = opts->max_header_bytes;
    srv->grace_ms = opts->grace_ms;

    int rc = resolve(srv, opts->port, err, errlen);
    if (rc == 0)
        rc = probe_bind(srv, opts->port, err, errlen);
    if (rc == 0 && opts->tls_cert != NULL)
        rc = setup_tls(srv, opts->tls_cert, opts->tls_key, err, errlen);
    if (rc != 0) {
        sb_router_free(srv->router);
        free(srv->host);
        free(srv);
        return rc;
    }

    h2o_config_init(&srv->conf);
    srv->conf.server_name = h2o_iovec_init(H2O_STRLIT("switchboard"));
    srv->conf.max_request_entity_size = srv->max_body;
    /* h2o sends HTTP/2 clients a second GOAWAY after a second, then closes stragglers after this. */
    srv->conf.http2.graceful_shutdown_timeout = srv->grace_ms;
    h2o_hostconf_t *host = h2o_config_register_host(&srv->conf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    setup_pathconf(srv, h2o_config_register_path(host, "/", 0));
    setup_pathconf(srv, &host->fallback_path);

    if (sb_router_add(srv->router, "GET", "/healthz", on_healthz, srv) != 0 ||
        sb_router_add(srv->router, "GET", "/readyz", on_readyz, srv) != 0) {
        sb_http_server_free(srv);
        goto fail_alloc_msg;
    }
    *out = srv;
    return 0;

fail_alloc:
    if (srv != NULL) {
        sb_router_free(srv->router);
        free(srv->host);
        free(srv);
    }
fail_alloc_msg:
    snprintf(err, errlen, "out of memory");
    return SB_ENOMEM;
}

sb_router_t *sb_http_server_router(sb_http_server_t *srv)
{
    return srv->router;
}

void sb_http_server_set_ready_cb(sb_http_server_t *srv, sb_http_ready_cb cb, void *data)
{
    srv->ready_cb = cb;
    srv->ready_data = data;
}

int sb_http_server_port(const sb_http_server_t *srv)
{
    return srv->port;
}

bool sb_http_server_is_tls(const sb_http_server_t *srv)
{
    return srv->ssl_ctx != NULL;
}

int sb_http_server_listen(sb_http_server_t *srv, int nloops, char *err, size_t errlen)
{
    if (nloops < 1 || srv->fds != NULL) {
        snprintf(err, errlen, "invalid loop count");
        return SB_EINVAL;
    }
    srv->nslots = sb_router_count(srv->router) + 1;
    srv->fds = malloc((size_t)nloops * sizeof(*srv->fds));
    srv->counters = calloc((size_t)nloops * (size_t)srv->nslots, sizeof(*srv->counters));
    if (srv->fds == NULL || srv->counters == NULL) {
        snprintf(err, errlen, "out of memory");
        return SB_ENOMEM;
    }
    for (int i = 0; i < nloops; i++) {
        int fd = bind_socket(srv, true);
        if (fd < 0) {
            snprintf(err, errlen, "cannot listen on %s:%d: %s", srv->host, srv->port, sb_strerror(fd));
            while (i-- > 0)
                close(srv->fds[i]);
            srv->nloops = 0;
            return fd;
        }
        srv->fds[i] = fd;
        srv->nloops = i + 1;
    }
    return 0;
}

void sb_http_server_free(sb_http_server_t *srv)
{
    if (srv == NULL)
        return;
    for (int i = 0; srv->fds != NULL && i < srv->nloops; i++)
        if (srv->fds[i] >= 0)
            close(srv->fds[i]);
    free(srv->fds);
    free(srv->counters);
    h2o_config_dispose(&srv->conf);
    sb_router_free(srv->router);
    if (srv->ssl_ctx != NULL)
        SSL_CTX_free(srv->ssl_ctx);
    free(srv->host);
    free(srv);
}

/* ---- per loop: accepting -------------------------------------------------------------------- */

static void maybe_finish(sb_http_t *h);

static void on_conn_closed(uv_handle_t *handle)
{
    conn_t *c = H2O_STRUCT_FROM_MEMBER(conn_t, tcp, handle);
    sb_http_t *h = c->http;
    h2o_linklist_unlink(&c->link);
    free(c);
    h->nconns--;
    maybe_finish(h);
}

static void on_unaccepted_closed(uv_handle_t *handle)
{
    free(H2O_STRUCT_FROM_MEMBER(conn_t, tcp, handle));
}

static void on_connection(uv_stream_t *listener, int status)
{
    sb_http_t *h = listener->data;
    if (status != 0) {
        sb_log_warn("http", "accept failed: %s", sb_strerror(status));
        return;
    }
    conn_t *c = h2o_mem_alloc(sizeof(*c));
    memset(c, 0, sizeof(*c));
    uv_tcp_init(&h->loop->uv, &c->tcp);
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, on_unaccepted_closed);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    c->http = h;
    h2o_linklist_insert(&h->conns, &c->link);
    h->nconns++;
    h2o_accept(&h->accept, h2o_uv_socket_create((uv_stream_t *)&c->tcp, on_conn_closed));
}

static void on_start_failed_handle_closed(uv_handle_t *handle)
{
    sb_http_t *h = handle->data;
    if (--h->open_handles == 0)
        free(h);
}

int sb_http_start(sb_loop_t *loop, sb_http_server_t *srv)
{
    if (srv->fds == NULL || loop->index < 0 || loop->index >= srv->nloops || srv->fds[loop->index] < 0)
        return SB_EINVAL;
    sb_http_t *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return SB_ENOMEM;
    h->srv = srv;
    h->loop = loop;
    h->counters = &srv->counters[(size_t)loop->index * (size_t)srv->nslots];
    h2o_linklist_init_anchor(&h->conns);
    h2o_context_init(&h->ctx, &loop->uv, &srv->conf);
    h->accept.ctx = &h->ctx;
    h->accept.hosts = srv->conf.hosts;
    h->accept.ssl_ctx = srv->ssl_ctx;

    uv_timer_init(&loop->uv, &h->timer);
    h->timer.data = h;
    uv_prepare_init(&loop->uv, &h->log_flush);
    h->log_flush.data = h;
    uv_prepare_start(&h->log_flush, on_log_flush);
    uv_tcp_init(&loop->uv, &h->listener);
    h->listener.data = h;
    int fd = srv->fds[loop->index];
    int rc = uv_tcp_open(&h->listener, fd);
    if (rc != 0)
        goto fail_open;
    srv->fds[loop->index] = -1; /* the handle owns it now */
    rc = uv_listen((uv_stream_t *)&h->listener, LISTEN_BACKLOG, on_connection);
    if (rc != 0)
        goto fail_listen;
    h->listening = true;
    loop->http = h;
    return 0;

fail_open:
    close(fd);
    srv->fds[loop->index] = -1;
fail_listen:
    sb_log_error("http", "cannot listen on loop %d: %s", loop->index, sb_strerror(rc));
    /* Not inside uv_run yet (this runs from the loop's start hook), so h2o's own NOWAIT run in
     * dispose is not nested. */
    h2o_context_dispose(&h->ctx);
    h->listener.data = h;
    h->open_handles = 3;
    uv_close((uv_handle_t *)&h->listener, on_start_failed_handle_closed);
    uv_close((uv_handle_t *)&h->timer, on_start_failed_handle_closed);
    uv_close((uv_handle_t *)&h->log_flush, on_start_failed_handle_closed);
    return rc;
}

/* ---- per loop: stopping --------------------------------------------------------------------- */

/* For each HTTP/1 connection: one idle between requests is shut down now (h2o sees EOF and closes
 * it); one with a request in progress loses keep-alive, so it closes after its response. */
static int wind_down_http1(h2o_req_t *req, void *data)
{
    if (req->version == 0) {
        h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
        if (sock != NULL && sock->input->size == 0) {
            int fd = h2o_socket_get_fd(sock);
            if (fd >= 0)
                shutdown(fd, SHUT_RDWR);
            return 0;
        }
    }
    req->http1_is_persistent = 0;
    return 0;
}

static void on_grace_over(uv_timer_t *timer)
{
    sb_http_t *h = timer->data;
    sb_log_warn("http", "grace period over on loop %d: shutting down %zu connection(s)", h->loop->index,
                h->nconns);
    /* Shutting the sockets down makes every pending read or write fail, and h2o closes each
     * connection through its normal error path.  A request whose handler is still waiting
     * (no I/O pending) closes as soon as that handler answers. */
    for (h2o_linklist_t *n = h->conns.next; n != &h->conns; n = n->next) {
        conn_t *c = H2O_STRUCT_FROM_MEMBER(conn_t, link, n);
        uv_os_fd_t fd;
        if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0)
            shutdown(fd, SHUT_RDWR);
    }
}

static void on_last_closed(uv_handle_t *handle)
{
    sb_http_t *h = handle->data;
    if (--h->open_handles > 0)
        return;
    sb_loop_t *loop = h->loop;
    sb_http_stopped_cb cb = h->on_stopped;
    void *data = h->stopped_data;
    loop->http = NULL;
    free(h);
    sb_log_debug("http", "stopped on loop %d", loop->index);
    if (cb != NULL)
        cb(loop, data);
}

/* Runs from a timer callback, never from an I/O or close callback: h2o_context_dispose runs the
 * uv loop once more itself (UV_RUN_NOWAIT, to release its timers), which is only safe outside the
 * poll phase. */
static void on_finish(uv_timer_t *timer)
{
    sb_http_t *h = timer->data;
    /* h2o's HTTP/2 shutdown timer may still be armed; dispose requires every entry unlinked. */
    h2o_timeout_unlink(&h->ctx.http2._graceful_shutdown_timeout);
    h2o_context_dispose(&h->ctx);
    flush_log(h);
    h->open_handles = 2;
    uv_close((uv_handle_t *)&h->log_flush, on_last_closed);
    uv_close((uv_handle_t *)&h->timer, on_last_closed);
}

static void maybe_finish(sb_http_t *h)
{
    if (!h->stopping || h->finishing || h->listening || h->nconns != 0)
        return;
    h->finishing = true;
    uv_timer_stop(&h->timer);
    uv_timer_start(&h->timer, on_finish, 0, 0);
}

static void on_listener_closed(uv_handle_t *handle)
{
    sb_http_t *h = handle->data;
    h->listening = false;
    maybe_finish(h);
}

void sb_http_stop(sb_loop_t *loop, sb_http_stopped_cb cb, void *data)
{
    sb_http_t *h = loop->http;
    if (h == NULL) {
        if (cb != NULL)
            cb(loop, data);
        return;
    }
    if (h->stopping)
        return;
    h->stopping = true;
    h->on_stopped = cb;
    h->stopped_data = data;
    sb_log_debug("http", "stopping on loop %d: %zu connection(s) open", loop->index, h->nconns);
    uv_close((uv_handle_t *)&h->listener, on_listener_closed);
    h2o_context_request_shutdown(&h->ctx);
    H2O_HTTP1_CALLBACKS.foreach_request(&h->ctx, wind_down_http1, NULL);
    uv_timer_start(&h->timer, on_grace_over, h->srv->grace_ms, 0);
}
