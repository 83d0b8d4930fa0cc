/* Non-blocking libpq on libuv: see pg.h.
 *
 * The connection is always in pipeline mode.  Requests move from `queue` (not yet sent) to
 * `flight` (sent, results pending) and complete in order when their Sync result arrives.  Results
 * are matched to statements with a per-request cursor over _expect[], which lists what PostgreSQL
 * will answer for the request: one result per PQsendPrepare and per statement, each followed by a
 * NULL separator, then PGRES_PIPELINE_SYNC. */
#include "db/pg.h"
#include "core/error.h"
#include "core/log.h"

#include <arpa/inet.h>
#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define SWEEP_MS 100
#define DRAIN_MS 5000 /* how long sb_pg_close waits for outstanding requests */

typedef struct poll_s {
    uv_poll_t h;
    sb_pg_t *pg;
} poll_t;

typedef struct listen_s {
    char *channel;
    sb_pg_notify_cb cb;
    void *data;
} listen_t;

enum { ST_WAITING, ST_CONNECTING, ST_READY, ST_CLOSED };

struct sb_pg_s {
    uv_loop_t *loop;
    char *conninfo;
    char *name;
    PGconn *conn;
    int state;
    poll_t *poll;
    int poll_fd;
    int poll_events;
    uv_timer_t retry_timer;
    uv_timer_t sweep_timer;
    sb_pg_req_t *queue_head, *queue_tail;
    sb_pg_req_t *flight_head, *flight_tail;
    int nqueued, nflight;
    uint64_t backoff_ms;
    uint64_t default_timeout_ms;
    char **prepared;
    int nprepared, capprepared;
    listen_t *listens;
    int nlistens;
    sb_pg_req_t listen_req; /* internal request that (re)issues LISTEN */
    char *listen_sql;
    bool listen_in_flight;
    sb_pg_state_cb state_cb;
    void *state_data;
    sb_pg_stats_t stats;
    /* The first error result of the request at the head of flight, kept until it completes. */
    struct {
        sb_pg_req_t *req;
        PGresult *res;
    } head_error;
    int failures_in_row;
    char errbuf[512];
    /* lifetime */
    int dispatch_depth;
    bool close_requested;
    bool drain_expired; /* closing: stop waiting for queued and in-flight requests */
    int handles_open;
    void (*on_closed)(void *data);
    void *closed_data;
};

static void start_connect(sb_pg_t *pg);
static void process_input(sb_pg_t *pg);
static void send_queued(sb_pg_t *pg);
static void update_poll(sb_pg_t *pg);
static void maybe_finalize(sb_pg_t *pg);

static uint64_t now_ms(sb_pg_t *pg)
{
    return uv_now(pg->loop);
}

static void copy_conn_error(sb_pg_t *pg)
{
    const char *m = pg->conn ? PQerrorMessage(pg->conn) : "cannot allocate connection";
    snprintf(pg->errbuf, sizeof(pg->errbuf), "%s", m && *m ? m : "connection lost");
    size_t n = strlen(pg->errbuf);
    while (n > 0 && (pg->errbuf[n - 1] == '\n' || pg->errbuf[n - 1] == ' '))
        pg->errbuf[--n] = '\0';
    for (size_t i = 0; i < n; i++)
        if (pg->errbuf[i] == '\n')
            pg->errbuf[i] = ' ';
}

/* ---- handles ------------------------------------------------------------------------------ */

static void on_handle_closed(uv_handle_t *h)
{
    sb_pg_t *pg = h->data;
    pg->handles_open--;
    maybe_finalize(pg);
}

static void on_poll_closed(uv_handle_t *h)
{
    poll_t *p = (poll_t *)h;
    sb_pg_t *pg = p->pg;
    free(p);
    pg->handles_open--;
    maybe_finalize(pg);
}

static void drop_poll(sb_pg_t *pg)
{
    if (pg->poll == NULL)
        return;
    uv_poll_stop(&pg->poll->h);
    uv_close((uv_handle_t *)&pg->poll->h, on_poll_closed);
    pg->poll = NULL;
    pg->poll_fd = -1;
    pg->poll_events = 0;
}

static void on_poll(uv_poll_t *h, int status, int events);

static int watch(sb_pg_t *pg, int events)
{
    int fd = PQsocket(pg->conn);
    if (fd < 0)
        return SB_EDBDOWN;
    if (pg->poll != NULL && pg->poll_fd != fd)
        drop_poll(pg);
    if (pg->poll == NULL) {
        poll_t *p = malloc(sizeof(*p));
        if (p == NULL)
            return SB_ENOMEM;
        int r = uv_poll_init(pg->loop, &p->h, fd);
        if (r != 0) {
            free(p);
            return r;
        }
        p->pg = pg;
        p->h.data = pg;
        pg->poll = p;
        pg->poll_fd = fd;
        pg->poll_events = 0;
        pg->handles_open++;
    }
    if (events != pg->poll_events) {
        int r = uv_poll_start(&pg->poll->h, events, on_poll);
        if (r != 0)
            return r;
        pg->poll_events = events;
    }
    return 0;
}

/* ---- completing requests ----------------------------------------------------------------- */

static void clear_results(sb_pg_req_t *req, PGresult *errres)
{
    for (int i = 0; i < SB_PG_MAX_STMTS; i++) {
        if (req->results[i] != NULL) {
            PQclear(req->results[i]);
            req->results[i] = NULL;
        }
    }
    if (errres != NULL)
        PQclear(errres);
}

static void finish(sb_pg_t *pg, sb_pg_req_t *req, int status, PGresult *errres)
{
    if (status != 0)
        pg->stats.errors++;
    /* The callback may reuse req for a new request: free this one's results from a copy. */
    PGresult *results[SB_PG_MAX_STMTS];
    memcpy(results, req->results, sizeof(results));
    pg->dispatch_depth++;
    req->cb(req, status);
    pg->dispatch_depth--;
    for (int i = 0; i < SB_PG_MAX_STMTS; i++)
        if (results[i] != NULL)
            PQclear(results[i]);
    if (errres != NULL)
        PQclear(errres);
}

static void fail_list(sb_pg_t *pg, sb_pg_req_t **head, sb_pg_req_t **tail, int *count, int status,
                      const char *msg)
{
    sb_pg_req_t *r = *head;
    *head = *tail = NULL;
    *count = 0;
    while (r != NULL) {
        sb_pg_req_t *next = r->_next;
        r->_next = NULL;
        if (r == &pg->listen_req) {
            pg->listen_in_flight = false;
            clear_results(r, NULL);
        } else {
            r->error = msg;
            r->sqlstate = NULL;
            PGresult *er = NULL;
            if (pg->head_error.req == r) {
                er = pg->head_error.res;
                pg->head_error.req = NULL;
                pg->head_error.res = NULL;
            }
            finish(pg, r, status, er);
        }
        r = next;
    }
}

/* ---- connection lifecycle ---------------------------------------------------------------- */

static void on_retry(uv_timer_t *t)
{
    sb_pg_t *pg = t->data;
    if (pg->state == ST_WAITING && !pg->close_requested)
        start_connect(pg);
}

static void schedule_retry(sb_pg_t *pg)
{
    uint64_t delay = pg->backoff_ms;
    uint32_t rnd = 0;
    if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
        rnd = (uint32_t)now_ms(pg);
    delay = delay / 2 + rnd % (delay / 2 + 1); /* jitter: 50-100% of the backoff */
    pg->backoff_ms = pg->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : pg->backoff_ms * 2;
    uv_timer_start(&pg->retry_timer, on_retry, delay, 0);
}

/* The connection broke or could not be made: everything sent is in doubt, everything queued
 * waits for the next attempt. */
static void connection_lost(sb_pg_t *pg)
{
    bool was_ready = pg->state == ST_READY;
    copy_conn_error(pg);
    if (pg->failures_in_row++ == 0)
        sb_log_warn("db", "%s: connection %s: %s", pg->name, was_ready ? "lost" : "failed", pg->errbuf);
    drop_poll(pg);
    if (pg->conn != NULL) {
        PQfinish(pg->conn);
        pg->conn = NULL;
    }
    pg->state = ST_WAITING;
    pg->nprepared = 0;
    for (int i = 0; i < pg->capprepared; i++) {
        free(pg->prepared[i]);
        pg->prepared[i] = NULL;
    }
    pg->stats.connected = false;
    fail_list(pg, &pg->flight_head, &pg->flight_tail, &pg->nflight, SB_EUNKNOWN, pg->errbuf);
    if (was_ready && pg->state_cb != NULL) {
        pg->dispatch_depth++;
        pg->state_cb(pg, false, pg->state_data);
        pg->dispatch_depth--;
    }
    if (!pg->close_requested)
        schedule_retry(pg);
    maybe_finalize(pg);
}

static void issue_listens(sb_pg_t *pg);

static void became_ready(sb_pg_t *pg)
{
    if (PQsetnonblocking(pg->conn, 1) != 0 || PQenterPipelineMode(pg->conn) != 1) {
        connection_lost(pg);
        return;
    }
    if (pg->failures_in_row > 0) {
        sb_log_info("db", "%s: connected after %d failed attempts", pg->name, pg->failures_in_row);
        pg->stats.reconnects++;
    } else {
        sb_log_debug("db", "%s: connected", pg->name);
    }
    pg->failures_in_row = 0;
    pg->backoff_ms = BACKOFF_MIN_MS;
    pg->state = ST_READY;
    pg->stats.connected = true;
    issue_listens(pg);
    if (pg->state_cb != NULL) {
        pg->dispatch_depth++;
        pg->state_cb(pg, true, pg->state_data);
        pg->dispatch_depth--;
        if (pg->close_requested || pg->state != ST_READY) {
            maybe_finalize(pg);
            return;
        }
    }
    send_queued(pg);
}

static void connect_poll(sb_pg_t *pg)
{
    PostgresPollingStatusType st = PQconnectPoll(pg->conn);
    switch (st) {
    case PGRES_POLLING_OK:
        if (watch(pg, UV_READABLE) != 0) {
            connection_lost(pg);
            return;
        }
        became_ready(pg);
        return;
    case PGRES_POLLING_READING:
        if (watch(pg, UV_READABLE) != 0)
            connection_lost(pg);
        return;
    case PGRES_POLLING_WRITING:
        if (watch(pg, UV_WRITABLE) != 0)
            connection_lost(pg);
        return;
    default:
        connection_lost(pg);
        return;
    }
}

static void start_connect(sb_pg_t *pg)
{
    pg->conn = PQconnectStart(pg->conninfo);
    if (pg->conn == NULL || PQstatus(pg->conn) == CONNECTION_BAD) {
        connection_lost(pg);
        return;
    }
    pg->state = ST_CONNECTING;
    /* libpq asks for "writing" first: the socket is connecting. */
    if (watch(pg, UV_WRITABLE) != 0)
        connection_lost(pg);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    sb_pg_t *pg = h->data;
    if (pg->poll == NULL || &pg->poll->h != h)
        return; /* a stale handle being closed */
    if (pg->state == ST_CONNECTING) {
        connect_poll(pg);
        return;
    }
    if (pg->state != ST_READY)
        return;
    if (status < 0) {
        connection_lost(pg);
        return;
    }
    if (events & UV_WRITABLE) {
        int r = PQflush(pg->conn);
        if (r < 0) {
            connection_lost(pg);
            return;
        }
    }
    if (events & UV_READABLE) {
        if (PQconsumeInput(pg->conn) == 0) {
            connection_lost(pg);
            return;
        }
        process_input(pg);
        if (pg->state != ST_READY)
            return;
    }
    update_poll(pg);
}

static void update_poll(sb_pg_t *pg)
{
    if (pg->state != ST_READY)
        return;
    int r = PQflush(pg->conn);
    if (r < 0) {
        connection_lost(pg);
        return;
    }
    if (watch(pg, UV_READABLE | (r == 1 ? UV_WRITABLE : 0)) != 0)
        connection_lost(pg);
}

/* ---- results ------------------------------------------------------------------------------ */

static void forget_prepared(sb_pg_t *pg, const char *name)
{
    for (int i = 0; i < pg->nprepared; i++) {
        if (strcmp(pg->prepared[i], name) == 0) {
            free(pg->prepared[i]);
            pg->prepared[i] = pg->prepared[pg->nprepared - 1];
            pg->prepared[pg->nprepared - 1] = NULL;
            pg->nprepared--;
            return;
        }
    }
}

static void complete_head(sb_pg_t *pg)
{
    sb_pg_req_t *req = pg->flight_head;
    pg->flight_head = req->_next;
    if (pg->flight_head == NULL)
        pg->flight_tail = NULL;
    pg->nflight--;
    req->_next = NULL;
    PGresult *er = NULL;
    if (pg->head_error.req == req) {
        er = pg->head_error.res;
        pg->head_error.req = NULL;
        pg->head_error.res = NULL;
    }
    if (req == &pg->listen_req) {
        pg->listen_in_flight = false;
        if (er != NULL)
            sb_log_warn("db", "%s: LISTEN failed: %s", pg->name, req->error ? req->error : "?");
        clear_results(req, er);
        return;
    }
    pg->stats.requests++;
    finish(pg, req, er != NULL ? SB_EDB : 0, er);
}

static void handle_result(sb_pg_t *pg, sb_pg_req_t *req, PGresult *res)
{
    ExecStatusType st = PQresultStatus(res);
    int slot = req->_cursor < req->_nexpect ? req->_expect[req->_cursor] : 0;
    bool failed = st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE || st == PGRES_NONFATAL_ERROR;
    if (slot < 0 && (failed || st == PGRES_PIPELINE_ABORTED))
        forget_prepared(pg, req->stmts[-1 - slot].name);
    if (failed) {
        if (pg->head_error.req != req) {
            pg->head_error.req = req;
            pg->head_error.res = res;
            const char *m = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
            req->error = m ? m : PQresultErrorMessage(res);
            req->sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);
            req->failed_stmt = slot < 0 ? -1 - slot : slot;
            return;
        }
        PQclear(res);
        return;
    }
    if (st == PGRES_PIPELINE_ABORTED || slot < 0) {
        PQclear(res);
        return;
    }
    if (req->results[slot] != NULL)
        PQclear(req->results[slot]);
    req->results[slot] = res;
}

static void dispatch_notifies(sb_pg_t *pg)
{
    PGnotify *n;
    while (pg->state == ST_READY && (n = PQnotifies(pg->conn)) != NULL) {
        for (int i = 0; i < pg->nlistens; i++) {
            if (strcmp(pg->listens[i].channel, n->relname) == 0) {
                pg->dispatch_depth++;
                pg->listens[i].cb(pg, n->relname, n->extra, pg->listens[i].data);
                pg->dispatch_depth--;
            }
        }
        PQfreemem(n);
    }
}

static void process_input(sb_pg_t *pg)
{
    while (pg->state == ST_READY && pg->flight_head != NULL && !PQisBusy(pg->conn)) {
        sb_pg_req_t *req = pg->flight_head;
        PGresult *res = PQgetResult(pg->conn);
        if (res == NULL) {
            req->_cursor++;
            continue;
        }
        if (PQresultStatus(res) == PGRES_PIPELINE_SYNC) {
            PQclear(res);
            complete_head(pg);
            continue;
        }
        if (PQstatus(pg->conn) == CONNECTION_BAD) {
            PQclear(res);
            connection_lost(pg);
            return;
        }
        handle_result(pg, req, res);
    }
    if (pg->state == ST_READY && pg->flight_head == NULL && !PQisBusy(pg->conn)) {
        /* Outside any request the server may still report a fatal error (e.g. admin shutdown). */
        if (PQstatus(pg->conn) == CONNECTION_BAD) {
            connection_lost(pg);
            return;
        }
    }
    dispatch_notifies(pg);
    if (pg->state == ST_READY && pg->nqueued > 0)
        send_queued(pg);
    maybe_finalize(pg);
}

/* ---- sending ------------------------------------------------------------------------------ */

static bool is_prepared(sb_pg_t *pg, const char *name)
{
    for (int i = 0; i < pg->nprepared; i++)
        if (strcmp(pg->prepared[i], name) == 0)
            return true;
    return false;
}

static int remember_prepared(sb_pg_t *pg, const char *name)
{
    if (pg->nprepared == pg->capprepared) {
        int cap = pg->capprepared ? pg->capprepared * 2 : 16;
        char **p = realloc(pg->prepared, (size_t)cap * sizeof(*p));
        if (p == NULL)
            return SB_ENOMEM;
        for (int i = pg->capprepared; i < cap; i++)
            p[i] = NULL;
        pg->prepared = p;
        pg->capprepared = cap;
    }
    pg->prepared[pg->nprepared] = strdup(name);
    if (pg->prepared[pg->nprepared] == NULL)
        return SB_ENOMEM;
    pg->nprepared++;
    return 0;
}

/* Sends one request's statements and its Sync.  false when the connection refused them. */
static bool send_one(sb_pg_t *pg, sb_pg_req_t *req)
{
    req->_nexpect = 0;
    req->_cursor = 0;
    for (int i = 0; i < req->nstmts; i++) {
        const sb_pg_stmt_t *s = &req->stmts[i];
        if (s->name != NULL && !is_prepared(pg, s->name)) {
            if (!PQsendPrepare(pg->conn, s->name, s->sql, s->nparams, NULL))
                return false;
            req->_expect[req->_nexpect++] = (signed char)(-1 - i);
            if (remember_prepared(pg, s->name) != 0)
                return false;
        }
        int ok = s->name != NULL ? PQsendQueryPrepared(pg->conn, s->name, s->nparams, s->values, s->lengths,
                                                       s->formats, s->result_format)
                                 : PQsendQueryParams(pg->conn, s->sql, s->nparams, NULL, s->values,
                                                     s->lengths, s->formats, s->result_format);
        if (!ok)
            return false;
        req->_expect[req->_nexpect++] = (signed char)i;
    }
    return PQpipelineSync(pg->conn) == 1;
}

static void send_queued(sb_pg_t *pg)
{
    while (pg->state == ST_READY && pg->queue_head != NULL) {
        sb_pg_req_t *req = pg->queue_head;
        pg->queue_head = req->_next;
        if (pg->queue_head == NULL)
            pg->queue_tail = NULL;
        pg->nqueued--;
        req->_next = NULL;
        /* In flight before sending, so a failure below fails it as "unknown" with the rest. */
        if (pg->flight_tail)
            pg->flight_tail->_next = req;
        else
            pg->flight_head = req;
        pg->flight_tail = req;
        pg->nflight++;
        if (!send_one(pg, req)) {
            connection_lost(pg);
            return;
        }
    }
    update_poll(pg);
}

static void issue_listens(sb_pg_t *pg)
{
    if (pg->nlistens == 0 || pg->listen_in_flight)
        return;
    free(pg->listen_sql);
    size_t len = 1;
    for (int i = 0; i < pg->nlistens; i++)
        len += strlen(pg->listens[i].channel) + 16;
    pg->listen_sql = malloc(len);
    if (pg->listen_sql == NULL)
        return;
    pg->listen_sql[0] = '\0';
    for (int i = 0; i < pg->nlistens; i++) {
        strcat(pg->listen_sql, "LISTEN \"");
        strcat(pg->listen_sql, pg->listens[i].channel);
        strcat(pg->listen_sql, "\";");
    }
    /* LISTEN statements are simple queries; in pipeline mode they must go one statement at a
     * time, so the request holds one per channel. */
    memset(&pg->listen_req, 0, sizeof(pg->listen_req));
    char *p = pg->listen_sql;
    for (int i = 0; i < pg->nlistens && i < SB_PG_MAX_STMTS; i++) {
        char *semi = strchr(p, ';');
        *semi = '\0';
        pg->listen_req.stmts[i].sql = p;
        p = semi + 1;
    }
    pg->listen_req.nstmts = pg->nlistens < SB_PG_MAX_STMTS ? pg->nlistens : SB_PG_MAX_STMTS;
    pg->listen_in_flight = true;
    /* Ahead of everything queued, so notifications flow before queries that rely on them. */
    pg->listen_req._next = pg->queue_head;
    pg->queue_head = &pg->listen_req;
    if (pg->queue_tail == NULL)
        pg->queue_tail = &pg->listen_req;
    pg->nqueued++;
}

/* ---- deadlines ---------------------------------------------------------------------------- */

static void on_sweep(uv_timer_t *t)
{
    sb_pg_t *pg = t->data;
    if (pg->state == ST_READY || pg->queue_head == NULL)
        return;
    uint64_t now = now_ms(pg);
    sb_pg_req_t *expired = NULL, **tail = &expired;
    sb_pg_req_t **pp = &pg->queue_head;
    pg->queue_tail = NULL;
    while (*pp != NULL) {
        sb_pg_req_t *r = *pp;
        if (r != &pg->listen_req && r->_deadline <= now) {
            *pp = r->_next;
            r->_next = NULL;
            *tail = r;
            tail = &r->_next;
            pg->nqueued--;
        } else {
            pg->queue_tail = r;
            pp = &r->_next;
        }
    }
    while (expired != NULL) {
        sb_pg_req_t *next = expired->_next;
        expired->_next = NULL;
        expired->error = pg->errbuf[0] ? pg->errbuf : "database unavailable";
        finish(pg, expired, SB_EDBDOWN, NULL);
        expired = next;
    }
    maybe_finalize(pg);
}

/* ---- public ------------------------------------------------------------------------------- */

sb_pg_t *sb_pg_open(uv_loop_t *loop, const char *conninfo, const char *name)
{
    sb_pg_t *pg = calloc(1, sizeof(*pg));
    if (pg == NULL)
        return NULL;
    pg->loop = loop;
    pg->conninfo = strdup(conninfo);
    pg->name = strdup(name ? name : "db");
    if (pg->conninfo == NULL || pg->name == NULL) {
        free(pg->conninfo);
        free(pg->name);
        free(pg);
        return NULL;
    }
    pg->poll_fd = -1;
    pg->backoff_ms = BACKOFF_MIN_MS;
    pg->default_timeout_ms = 5000;
    pg->state = ST_WAITING;
    uv_timer_init(loop, &pg->retry_timer);
    uv_timer_init(loop, &pg->sweep_timer);
    pg->retry_timer.data = pg;
    pg->sweep_timer.data = pg;
    pg->handles_open = 2;
    uv_timer_start(&pg->sweep_timer, on_sweep, SWEEP_MS, SWEEP_MS);
    uv_unref((uv_handle_t *)&pg->sweep_timer);
    start_connect(pg);
    return pg;
}

void sb_pg_submit(sb_pg_t *pg, sb_pg_req_t *req)
{
    req->_next = NULL;
    req->error = NULL;
    req->sqlstate = NULL;
    req->failed_stmt = -1;
    memset(req->results, 0, sizeof(req->results));
    req->_deadline = now_ms(pg) + (req->timeout_ms ? req->timeout_ms : pg->default_timeout_ms);
    /* While closing, a request is still taken: sent if the connection drains, otherwise failed
     * with SB_ESHUTDOWN when the connection is released (never from inside this call). */
    if (pg->queue_tail)
        pg->queue_tail->_next = req;
    else
        pg->queue_head = req;
    pg->queue_tail = req;
    pg->nqueued++;
    /* Pipeline mode lets us send while earlier results are still being read, even from inside a
     * callback. */
    if (pg->state == ST_READY)
        send_queued(pg);
}

void sb_pg_req_init(sb_pg_req_t *req, const char *sql, int nparams, const char *const *values, sb_pg_cb cb,
                    void *data)
{
    memset(req, 0, sizeof(*req));
    req->stmts[0].sql = sql;
    req->stmts[0].nparams = nparams;
    req->stmts[0].values = values;
    req->nstmts = 1;
    req->cb = cb;
    req->data = data;
}

int sb_pg_req_add(sb_pg_req_t *req, const sb_pg_stmt_t *stmt)
{
    if (req->nstmts >= SB_PG_MAX_STMTS)
        return -1;
    req->stmts[req->nstmts] = *stmt;
    return req->nstmts++;
}

void sb_pg_set_state_cb(sb_pg_t *pg, sb_pg_state_cb cb, void *data)
{
    pg->state_cb = cb;
    pg->state_data = data;
}

void sb_pg_listen(sb_pg_t *pg, const char *channel, sb_pg_notify_cb cb, void *data)
{
    listen_t *l = realloc(pg->listens, (size_t)(pg->nlistens + 1) * sizeof(*l));
    if (l == NULL)
        return;
    pg->listens = l;
    pg->listens[pg->nlistens].channel = strdup(channel);
    pg->listens[pg->nlistens].cb = cb;
    pg->listens[pg->nlistens].data = data;
    pg->nlistens++;
    if (pg->state == ST_READY) {
        issue_listens(pg);
        send_queued(pg);
    }
}

void sb_pg_set_default_timeout(sb_pg_t *pg, uint64_t ms)
{
    pg->default_timeout_ms = ms;
}

bool sb_pg_is_connected(const sb_pg_t *pg)
{
    return pg->state == ST_READY;
}

int sb_pg_local_backend_pid(const sb_pg_t *pg)
{
    if (pg->state != ST_READY || pg->conn == NULL)
        return 0;
    const char *host = PQhost(pg->conn);
    return host != NULL && host[0] == '/' ? PQbackendPID(pg->conn) : 0;
}

void sb_pg_get_stats(const sb_pg_t *pg, sb_pg_stats_t *out)
{
    *out = pg->stats;
    out->in_flight = pg->nflight;
    out->queued = pg->nqueued;
    out->connected = pg->state == ST_READY;
}

static void teardown(sb_pg_t *pg)
{
    uv_timer_stop(&pg->retry_timer);
    uv_timer_stop(&pg->sweep_timer);
    fail_list(pg, &pg->queue_head, &pg->queue_tail, &pg->nqueued, SB_ESHUTDOWN, "connection closing");
    fail_list(pg, &pg->flight_head, &pg->flight_tail, &pg->nflight, SB_EUNKNOWN, "connection closed");
    drop_poll(pg);
    if (pg->conn != NULL) {
        PQfinish(pg->conn);
        pg->conn = NULL;
    }
    pg->state = ST_CLOSED;
    uv_close((uv_handle_t *)&pg->retry_timer, on_handle_closed);
    uv_close((uv_handle_t *)&pg->sweep_timer, on_handle_closed);
}

static void on_drain_timeout(uv_timer_t *t)
{
    sb_pg_t *pg = t->data;
    pg->drain_expired = true;
    maybe_finalize(pg);
}

void sb_pg_close(sb_pg_t *pg, void (*on_closed)(void *data), void *data)
{
    if (pg->close_requested)
        return;
    pg->close_requested = true;
    pg->on_closed = on_closed;
    pg->closed_data = data;
    /* Connected with work outstanding: let it finish (bounded), so a shutdown does not turn
     * requests that were about to succeed into failures. */
    if (pg->state == ST_READY && pg->nqueued + pg->nflight > 0)
        uv_timer_start(&pg->retry_timer, on_drain_timeout, DRAIN_MS, 0);
    maybe_finalize(pg);
}

static void maybe_finalize(sb_pg_t *pg)
{
    if (!pg->close_requested || pg->dispatch_depth > 0)
        return;
    if (pg->state != ST_CLOSED) {
        if (pg->state == ST_READY && pg->nqueued + pg->nflight > 0 && !pg->drain_expired)
            return; /* draining: process_input calls back here as requests complete */
        teardown(pg);
        return;
    }
    if (pg->handles_open > 0)
        return;
    /* Requests submitted after teardown. */
    pg->dispatch_depth++;
    fail_list(pg, &pg->queue_head, &pg->queue_tail, &pg->nqueued, SB_ESHUTDOWN, "connection closed");
    pg->dispatch_depth--;
    void (*cb)(void *) = pg->on_closed;
    void *data = pg->closed_data;
    for (int i = 0; i < pg->capprepared; i++)
        free(pg->prepared[i]);
    free(pg->prepared);
    for (int i = 0; i < pg->nlistens; i++)
        free(pg->listens[i].channel);
    free(pg->listens);
    free(pg->listen_sql);
    free(pg->conninfo);
    free(pg->name);
    free(pg);
    if (cb != NULL)
        cb(data);
}

/* ---- binary arrays ----------------------------------------------------------------------- */

void sb_pg_array_begin(sb_pg_array_t *a, uint32_t elem_oid)
{
    sb_buf_reset(&a->buf); /* keeps the memory of an earlier use */
    a->count = 0;
    a->has_null = false;
    a->elem_oid = elem_oid;
    /* Room for the header, written by finish: ndim, has_null, oid, size, lbound. */
    static const char zero[20];
    sb_buf_append(&a->buf, zero, sizeof(zero));
}

static void put32(char *p, uint32_t v)
{
    v = htonl(v);
    memcpy(p, &v, 4);
}

void sb_pg_array_add(sb_pg_array_t *a, const void *elem, int32_t len)
{
    char hdr[4];
    put32(hdr, (uint32_t)len);
    sb_buf_append(&a->buf, hdr, 4);
    if (len > 0)
        sb_buf_append(&a->buf, elem, (size_t)len);
    if (len < 0)
        a->has_null = true;
    a->count++;
}

void sb_pg_array_add_int8(sb_pg_array_t *a, int64_t v)
{
    char b[8];
    put32(b, (uint32_t)((uint64_t)v >> 32));
    put32(b + 4, (uint32_t)v);
    sb_pg_array_add(a, b, 8);
}

void sb_pg_array_add_int4(sb_pg_array_t *a, int32_t v)
{
    char b[4];
    put32(b, (uint32_t)v);
    sb_pg_array_add(a, b, 4);
}

void sb_pg_array_finish(sb_pg_array_t *a, const char **out, int *len)
{
    char *p = a->buf.data;
    if (a->count == 0) {
        /* An empty array has no dimensions: a 12-byte header. */
        put32(p + 8, 0);
        put32(p + 12, 0);
        put32(p + 16, a->elem_oid);
        *out = p + 8;
        *len = 12;
        return;
    }
    put32(p, 1);
    put32(p + 4, a->has_null ? 1 : 0);
    put32(p + 8, a->elem_oid);
    put32(p + 12, (uint32_t)a->count);
    put32(p + 16, 1);
    *out = p;
    *len = (int)a->buf.len;
}

void sb_pg_array_free(sb_pg_array_t *a)
{
    sb_buf_free(&a->buf);
}
