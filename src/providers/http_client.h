/* Outbound HTTP on a worker loop: libcurl's multi interface driven by libuv.
 *
 * One client per loop, made on first use (sb_http_client_get) and kept in the loop's http_client
 * slot: a curl multi handle whose sockets are watched with one uv_poll_t each
 * (CURLMOPT_SOCKETFUNCTION) and whose timeouts run on one uv_timer_t (CURLMOPT_TIMERFUNCTION), so a
 * request never blocks the loop.  Name resolution uses libcurl's threaded resolver (Debian's
 * libcurl4-openssl-dev is built with it; sb_http_async_dns() says so at run time), so a slow DNS
 * server does not stall the loop either.
 *
 * Everything here runs on the loop's own thread: requests are started there, and their callbacks
 * fire there.  When the loop stops (sb_loop_on_stop), requests still in flight complete with
 * SB_ESHUTDOWN and the client closes its handles; sb_http_client_get answers NULL from then on.
 *
 * Retries: a request may carry a retry policy (sb_http_retry_t): then 5xx answers, 429 (waiting at
 * least its Retry-After) and transport errors are retried with exponential backoff and jitter, a
 * bounded number of times, and the callback sees only the last attempt.  Callers that keep their
 * own durable retry state (the outbox) use sb_http_retry_next, the same decision as a pure
 * function. */
#ifndef SB_PROVIDERS_HTTP_CLIENT_H
#define SB_PROVIDERS_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/loop.h"

#define SB_HTTP_DEFAULT_TIMEOUT_MS 30000
#define SB_HTTP_CONNECT_TIMEOUT_MS 10000
#define SB_HTTP_DEFAULT_MAX_RESPONSE (1024 * 1024)
#define SB_HTTP_MAX_HEADER_BYTES (64 * 1024) /* all of a response's header lines together */
#define SB_HTTP_MAX_REQUEST_BODY (16 * 1024 * 1024)

typedef struct sb_http_client_s sb_http_client_t;
typedef struct sb_http_call_s sb_http_call_t;

/* Backoff policy.  Zero fields take the defaults in brackets. */
typedef struct sb_http_retry_s {
    int max_attempts;            /* attempts in all, the first included; 0 or 1: no retry */
    uint64_t base_ms;            /* [500] the first wait before jitter; doubles per attempt */
    uint64_t cap_ms;             /* [30000] the longest wait before Retry-After */
    uint64_t max_retry_after_ms; /* [120000] a longer Retry-After gives up instead of waiting */
    /* Also retry transport errors that happen after the request may have reached the server
     * (a timeout waiting for the answer, a connection dropped mid-response).  Off by default: for a
     * request that is not idempotent, such a retry may do the thing twice. */
    bool after_sent;
} sb_http_retry_t;

typedef struct sb_http_request_s {
    const char *method;         /* "GET", "POST", "DELETE", ...; NULL: POST with a body, else GET */
    const char *url;            /* http:// or https:// only */
    const char *const *headers; /* "Name: value" lines, NULL-terminated; NULL for none */
    const char *body;           /* copied; may be NULL */
    size_t body_len;            /* at most SB_HTTP_MAX_REQUEST_BODY */
    const char *username;       /* HTTP basic auth when not NULL (never logged) */
    const char *password;
    uint64_t timeout_ms;          /* whole attempt; 0: SB_HTTP_DEFAULT_TIMEOUT_MS */
    size_t max_response;          /* response body bound; 0: SB_HTTP_DEFAULT_MAX_RESPONSE */
    const sb_http_retry_t *retry; /* copied; NULL: one attempt */
    /* A connection of its own, closed after: libcurl silently sends a request again when a reused
     * keep-alive connection turns out dead before any answer, so a request that must not be repeated
     * (sending a message) takes a fresh one. */
    bool fresh_connection;
} sb_http_request_t;

/* What came back, valid only during the callback. */
typedef struct sb_http_response_s {
    /* 0 when an HTTP answer arrived (whatever its status); else a transport error: SB_ETIMEOUT,
     * UV_ECONNREFUSED (nothing was sent), UV_EAI_NONAME (no such host), UV_ECONNRESET (the
     * connection failed before the request was sent), SB_EUNKNOWN (the connection was lost after
     * the request may have reached the server), SB_ETOOBIG (the answer exceeded max_response or
     * SB_HTTP_MAX_HEADER_BYTES), UV_EPROTO (TLS or protocol failure), SB_ESHUTDOWN (the loop is
     * stopping). */
    int error;
    const char *error_text; /* libcurl's detail for a transport error, else "" (never NULL) */
    bool sent;              /* the request may have reached the server */
    long status;            /* the HTTP status, 0 with an error */
    const char *body;       /* NUL-terminated (never NULL) */
    size_t body_len;
    int64_t retry_after_ms; /* from Retry-After (seconds or an HTTP date), -1 when absent */
    int attempts;           /* attempts made, this one included */
    const char *_headers;   /* the final answer's header lines */
    size_t _headers_len;
} sb_http_response_t;

/* Fires exactly once per started request, on the loop's thread, never from inside
 * sb_http_request.  The call handle is invalid from the moment the callback starts. */
typedef void (*sb_http_cb)(const sb_http_response_t *res, void *data);

/* The loop's client, created on first use.  Call on loop's own thread.  NULL when the loop is
 * stopping (or libcurl could not be initialised; logged). */
sb_http_client_t *sb_http_client_get(sb_loop_t *loop);

/* Starts req.  On success returns 0 and, if callp is not NULL, a handle for sb_http_cancel; cb
 * fires later.  On failure (SB_EINVAL for a bad method or URL, SB_ETOOBIG, SB_ESHUTDOWN, SB_ENOMEM)
 * cb never fires.  Everything req points to is copied before returning. */
int sb_http_request(sb_http_client_t *c, const sb_http_request_t *req, sb_http_cb cb, void *data,
                    sb_http_call_t **callp);

/* Abandons a request in flight (or waiting to retry): its callback will not fire, and its data may
 * be freed as soon as this returns.  Must not be called once the callback has started. */
void sb_http_cancel(sb_http_call_t *call);

/* The value of the response's last header called name (case-insensitive), NUL-terminated in buf
 * (truncated to buflen - 1 bytes), or NULL when there is none. */
const char *sb_http_response_header(const sb_http_response_t *res, const char *name, char *buf,
                                    size_t buflen);

/* The retry decision as a pure function.  attempt: the attempt that just ended (1 = the first);
 * rnd: a uniformly random 32-bit number for the jitter.  True to retry after *delay_ms: a
 * transport error (see after_sent), 5xx or 429, while attempts remain; the wait is
 * min(cap, base * 2^(attempt-1)), halved plus a random half ("equal jitter", so retries spread out
 * but never come back at once), and at least the answer's Retry-After. */
bool sb_http_retry_next(const sb_http_retry_t *policy, int attempt, const sb_http_response_t *res,
                        uint32_t rnd, uint64_t *delay_ms);

/* Parses a Retry-After value: delay-seconds or an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"),
 * the latter relative to now_ms (Unix milliseconds).  Milliseconds to wait (0 for a date in the
 * past), or -1 when v is malformed. */
int64_t sb_http_parse_retry_after(const char *v, int64_t now_ms);

/* True when libcurl resolves names without blocking (threaded resolver or c-ares). */
bool sb_http_async_dns(void);

/* Counters of the loop's client, for tests and metrics (calling thread's loop). */
typedef struct sb_http_stats_s {
    uint64_t started;  /* requests started (not attempts) */
    uint64_t attempts; /* attempts made, retries included */
    uint64_t retries;
    int in_flight; /* requests not yet completed */
    int sockets;   /* uv_poll handles open */
} sb_http_stats_t;
void sb_http_client_stats(const sb_http_client_t *c, sb_http_stats_t *out);

#endif
