/* Non-blocking PostgreSQL connections driven by a libuv loop.
 *
 * One sb_pg_t is one libpq connection in pipeline mode, owned by one loop and used only on that
 * loop's thread.  The socket is watched with uv_poll; nothing here ever blocks.  Requests are
 * pipelined: each is a short list of statements sent back to back and closed by one Sync, and
 * many requests may be in flight at once; their callbacks fire in submission order.
 *
 * A request's statements run as one implicit transaction, committed when PostgreSQL reaches the
 * request's Sync, so a callback with status 0 means the whole request committed.  A statement that
 * fails rolls back its request and skips the rest of it; other requests are unaffected.  (Do not
 * send BEGIN/COMMIT yourself: a failure inside an explicit block would leave the session in an
 * aborted transaction.)
 *
 * When the server goes away the connection reconnects with exponential backoff (100 ms doubling
 * to 5 s, with jitter).  Requests submitted while disconnected wait for the reconnect up to their
 * deadline; requests already sent when the connection broke fail with SB_EUNKNOWN, since they may
 * or may not have run. */
#ifndef SB_DB_PG_H
#define SB_DB_PG_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

typedef struct sb_pg_s sb_pg_t;
typedef struct sb_pg_req_s sb_pg_req_t;

#define SB_PG_MAX_STMTS 8

/* One statement.  Pointers are borrowed: they must stay valid until the request's callback. */
typedef struct sb_pg_stmt_s {
    const char *name; /* prepared-statement name, or NULL to send the text unnamed each time */
    const char *sql;
    int nparams;
    const char *const *values;
    const int *lengths; /* NULL when every parameter is text */
    const int *formats; /* NULL when every parameter is text; 1 = binary */
    int result_format;  /* 0 text, 1 binary */
} sb_pg_stmt_t;

/* Fires once per request, on the connection's loop, never from inside sb_pg_submit.
 *   status 0:            every statement succeeded; req->results[i] holds statement i's result.
 *   status SB_EDB:       a statement failed; req->error and req->sqlstate say why (the server's
 *                        message), req->failed_stmt which one; later statements did not run.
 *   status SB_EUNKNOWN:  the connection broke after the request was sent.
 *   status SB_EDBDOWN:   not connected before the deadline; nothing was sent.
 *   status SB_ESHUTDOWN: the connection is closing; nothing was sent.
 * Results and error strings belong to the connection and are freed when the callback returns. */
typedef void (*sb_pg_cb)(sb_pg_req_t *req, int status);

struct sb_pg_req_s {
    /* set by the caller */
    sb_pg_stmt_t stmts[SB_PG_MAX_STMTS];
    int nstmts;
    sb_pg_cb cb;
    void *data;
    uint64_t timeout_ms; /* how long to wait for a connection; 0 = the connection's default */
    /* set for the callback */
    PGresult *results[SB_PG_MAX_STMTS];
    const char *error;
    const char *sqlstate;
    int failed_stmt;
    /* internal */
    sb_pg_req_t *_next;
    uint64_t _deadline;
    int _nexpect;                             /* results still to come: prepares + statements */
    int _cursor;                              /* index into _expect */
    signed char _expect[2 * SB_PG_MAX_STMTS]; /* >= 0: statement index; -1 - i: prepare of statement i */
};

/* Called once the connection is (re)established and ready, e.g. to LISTEN again or re-read what
 * may have been missed; and with connected=false when it is lost. */
typedef void (*sb_pg_state_cb)(sb_pg_t *pg, bool connected, void *data);
/* Called for each NOTIFY received on a channel this connection listens to. */
typedef void (*sb_pg_notify_cb)(sb_pg_t *pg, const char *channel, const char *payload, void *data);

typedef struct sb_pg_stats_s {
    uint64_t requests;
    uint64_t errors;
    uint64_t reconnects;
    int in_flight;
    int queued;
    bool connected;
} sb_pg_stats_t;

/* Creates a connection on loop and starts connecting.  conninfo is copied.  Returns NULL on
 * allocation failure only: connection errors are retried in the background (and logged once per
 * outage, with the server's message). */
sb_pg_t *sb_pg_open(uv_loop_t *loop, const char *conninfo, const char *name);

/* Closes the connection.  When connected, requests already submitted are still sent and answered
 * (for at most 5 s); then, or at once when not connected, whatever is left fails: queued requests
 * with SB_ESHUTDOWN, in-flight ones with SB_EUNKNOWN (their callbacks fire before the memory is
 * released).  A request submitted while closing is sent if the connection is still draining, else
 * failed with SB_ESHUTDOWN.  on_closed, if given, fires once everything
 * is released. */
void sb_pg_close(sb_pg_t *pg, void (*on_closed)(void *data), void *data);

/* Queues req.  The caller owns req and must keep it alive until req->cb fires. */
void sb_pg_submit(sb_pg_t *pg, sb_pg_req_t *req);

/* Fills req for a single text-parameter statement (the common case). */
void sb_pg_req_init(sb_pg_req_t *req, const char *sql, int nparams, const char *const *values, sb_pg_cb cb,
                    void *data);
/* Adds one more statement to req; returns its index, or -1 when req is full. */
int sb_pg_req_add(sb_pg_req_t *req, const sb_pg_stmt_t *stmt);

void sb_pg_set_state_cb(sb_pg_t *pg, sb_pg_state_cb cb, void *data);
/* LISTENs on channel now and after every reconnect; cb fires for each notification. */
void sb_pg_listen(sb_pg_t *pg, const char *channel, sb_pg_notify_cb cb, void *data);
/* Default wait for a connection before a request fails with SB_EDBDOWN (initially 5000 ms). */
void sb_pg_set_default_timeout(sb_pg_t *pg, uint64_t ms);

bool sb_pg_is_connected(const sb_pg_t *pg);
/* The server process serving the connection when it is to this host over a Unix socket (so the
 * process is ours to see), else 0: not connected, or a TCP connection, whose pid may name a
 * process of another machine. */
int sb_pg_local_backend_pid(const sb_pg_t *pg);
void sb_pg_get_stats(const sb_pg_t *pg, sb_pg_stats_t *out);

/* Binary encoders for array parameters (the appender sends its batch as arrays). */
#include "core/buf.h"
typedef struct sb_pg_array_s {
    sb_buf_t buf;
    uint32_t elem_oid;
    int32_t count;
    bool has_null;
} sb_pg_array_t;
/* Starts (or restarts, reusing its memory) an array of elem_oid elements.  a must be zeroed
 * before its first use. */
void sb_pg_array_begin(sb_pg_array_t *a, uint32_t elem_oid);
void sb_pg_array_add(sb_pg_array_t *a, const void *elem,
                     int32_t len); /* len -1 = NULL; ints in host order are converted */
void sb_pg_array_add_int8(sb_pg_array_t *a, int64_t v);
void sb_pg_array_add_int4(sb_pg_array_t *a, int32_t v);
/* Finishes the encoding: the out and len results point into a->buf until sb_pg_array_free. */
void sb_pg_array_finish(sb_pg_array_t *a, const char **out, int *len);
void sb_pg_array_free(sb_pg_array_t *a);

#define SB_OID_BOOL 16
#define SB_OID_BYTEA 17
#define SB_OID_INT8 20
#define SB_OID_INT4 23
#define SB_OID_TEXT 25
#define SB_OID_UUID 2950

#endif
