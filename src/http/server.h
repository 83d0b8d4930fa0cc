/* The HTTP server: h2o 2.2 on the worker loops.
 *
 * One sb_http_server_t per process holds the h2o configuration, the router, the TLS context and
 * the request counters.  Each worker loop runs its own h2o context and accepts on its own listening
 * socket (SO_REUSEPORT on one address), so the kernel spreads connections over the loops and no
 * request ever crosses threads inside this module.  One port speaks HTTP/1.1 and HTTP/2: cleartext
 * HTTP/2 with prior knowledge (h2o's HTTP/1 parser hands a "PRI * HTTP/2.0" preface over to its
 * HTTP/2 code) and, with a certificate, TLS with ALPN h2 / http/1.1.
 *
 * The process must ignore SIGPIPE (serve does): a peer that closes early makes writes fail with
 * EPIPE, which h2o handles, instead of killing the process.
 *
 * Life cycle, in this order:
 *   main thread:  sb_http_server_create, register routes on sb_http_server_router,
 *                 sb_http_server_set_ready_cb, sb_http_server_listen;
 *   each loop:    sb_http_start (from the loop's start hook) ... sb_http_stop (from a stop hook);
 *   main thread:  after the loops are joined, sb_http_server_free.
 *
 * Built-in routes: GET /healthz (200 while the process serves) and GET /readyz (200 when the
 * readiness callback says so, else 503 with Retry-After).  Every request is counted per route and
 * status on its loop and logged in one access-log line:
 *
 *   info  http: GET /v1/x 200 bytes=15 ms=0.42 proto=2 id=01890a5d-...
 */
#ifndef SB_HTTP_SERVER_H
#define SB_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/loop.h"
#include "http/router.h"

typedef struct sb_http_server_s sb_http_server_t;

typedef struct sb_http_options_s {
    const char *host;        /* numeric address or a name resolved once; "[::1]" brackets allowed */
    int port;                /* 0 picks a free port, the same for every loop */
    const char *tls_cert;    /* PEM certificate chain; NULL (with tls_key NULL) serves plain HTTP */
    const char *tls_key;     /* PEM private key */
    size_t max_body_bytes;   /* larger request bodies get 413; also bounds what h2o buffers */
    size_t max_header_bytes; /* request line + headers; more gets 431 */
    uint64_t grace_ms;       /* how long sb_http_stop lets in-flight requests run */
} sb_http_options_t;

/* Defaults (1 MiB bodies, 32 KiB headers, 10 s grace) with the address and TLS files of cfg.  The
 * strings stay cfg's. */
void sb_http_options_init(sb_http_options_t *o, const sb_config_t *cfg);

/* Readiness: called on the loop that serves GET /readyz; must answer at once from state it already
 * has (a flag, a connection's status), never block.  On false, *why may be set to a short reason
 * for the 503 body. */
typedef bool (*sb_http_ready_cb)(sb_loop_t *loop, void *data, const char **why);

/* Sets up the server: resolves the address, checks that it can be bound (so "address already in
 * use" is reported here, before anything starts), loads the TLS certificate and key.  0, or a
 * negative code with one line in err (e.g. "cannot listen on 127.0.0.1:8080: address already in
 * use").  Strings in opts are copied. */
int sb_http_server_create(sb_http_server_t **out, const sb_http_options_t *opts, char *err, size_t errlen);

/* Routes are registered here, before sb_http_server_listen.  Handlers run on any loop. */
sb_router_t *sb_http_server_router(sb_http_server_t *srv);

/* Installs the readiness callback (before the loops start).  Without one, /readyz answers 503. */
void sb_http_server_set_ready_cb(sb_http_server_t *srv, sb_http_ready_cb cb, void *data);

/* Binds one socket per loop (nloops of them, SO_REUSEPORT) and freezes the routes.  Nothing is
 * accepted until each loop's sb_http_start.  0, or a negative code with one line in err. */
int sb_http_server_listen(sb_http_server_t *srv, int nloops, char *err, size_t errlen);

/* The port actually bound (useful when 0 was asked), and whether TLS is on. */
int sb_http_server_port(const sb_http_server_t *srv);
bool sb_http_server_is_tls(const sb_http_server_t *srv);

/* Frees everything; every loop must have stopped (its stopped callback fired). */
void sb_http_server_free(sb_http_server_t *srv);

/* Starts serving on loop (on its thread): an h2o context on loop->uv, accepting on the socket bound
 * for loop->index.  Sets loop->http.  0 or a negative code (then nothing is left open). */
int sb_http_start(sb_loop_t *loop, sb_http_server_t *srv);

/* Fired once the loop's HTTP side is gone: all connections closed, the h2o context disposed,
 * loop->http NULL again. */
typedef void (*sb_http_stopped_cb)(sb_loop_t *loop, void *data);

/* Graceful stop, on the loop's thread: closes the listening socket, asks h2o to shut down
 * (HTTP/2 connections get GOAWAY; HTTP/1 responses carry Connection: close), closes idle
 * keep-alive connections at once, lets in-flight requests finish, and after the grace period shuts
 * down whatever connections remain.  cb fires when everything is closed, or at once (from inside
 * this call) when the loop never started HTTP.  A second call is ignored.
 *
 * One h2o 2.2 limit: an HTTP/2 connection closes a second after the first GOAWAY once no request
 * on it is being processed, so a stream still uploading its body at that point is cut; a request
 * whose body has arrived always finishes (within the grace period). */
void sb_http_stop(sb_loop_t *loop, sb_http_stopped_cb cb, void *data);

/* ---- counters, for /metrics ------------------------------------------------------------------- */

/* Responses are counted by status in these slots; the last one collects every other status. */
#define SB_HTTP_STATUS_SLOTS 24
extern const int sb_http_status_slot_codes[SB_HTTP_STATUS_SLOTS]; /* 0 for the "other" slot */

/* Latency histogram upper bounds in microseconds; one more bucket catches the rest (+Inf). */
#define SB_HTTP_LATENCY_BUCKETS 12
extern const uint64_t sb_http_latency_bounds_us[SB_HTTP_LATENCY_BUCKETS];

typedef struct sb_http_route_stats_s {
    uint64_t status[SB_HTTP_STATUS_SLOTS];
    uint64_t latency[SB_HTTP_LATENCY_BUCKETS + 1]; /* per bucket, not cumulative */
    uint64_t latency_sum_us;
    uint64_t bytes_sent;
} sb_http_route_stats_t;

/* Sums one route's counters over every loop.  route is an index in the router, or -1 for requests
 * that matched no route.  Safe from any thread at any time between listen and free: each loop
 * writes only its own counters, with relaxed atomics, so totals are eventually exact. */
void sb_http_server_stats(const sb_http_server_t *srv, int route, sb_http_route_stats_t *out);

#endif
