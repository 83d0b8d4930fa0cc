/* Server-Sent Events: the clients and the hubs.  See sse.h for the design, sse_request.c for the
 * request (parsing, authorization) and sse_window.c for the shared window of messages.
 *
 * A client's invariant: every matching event with position <= c->pos has been handed to h2o.  It is
 * in one of three states:
 *   CATCHUP  reading pages of the log after pos (one read at a time, a few clients per loop at
 *            once), sending each page before reading the next;
 *   LIVE     taking messages from its workspace's ring (next_seq), which holds every event of the
 *            workspace above ws->floor; it needs pos >= ws->floor, and goes back to CATCHUP if
 *            the ring dropped messages it had not sent yet;
 *   WAIT     the hub cannot follow yet (the follower does not know the log's end): the tick
 *            retries; a stream that starts "now" sends nothing, not even `retry:`, until its
 *            position is set, so nothing a client appends after its first chunk can be missed.
 * A page that comes back short means the client has everything up to the hub's position when the
 * read was issued (the hub only learns of committed events), so it may go live from there with
 * no gap, and it skips ring messages at or below pos, so no duplicate either.
 *
 * h2o owns the request: a client is freed by h2o's stop callback (connection closed, stream
 * reset), or by us right after we end the response (h2o calls nothing more once a final send is
 * made).  Messages in flight are referenced until proceed or stop. */
#include "http/sse.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <h2o.h>
#include <h2o/http2.h>
#include <h2o/http2_internal.h>
#include <jansson.h>
#include <sodium.h>

#include "core/error.h"
#include "core/log.h"
#include "events/codec.h"
#include "events/read.h"
#include "http/auth_hook.h"
#include "http/response.h"
#include "http/sse_int.h"

#define PAGE_EVENTS 200
#define MAX_READS_PER_LOOP 16
#define READ_RETRY_MS 1000
/* After an authorizer that could not answer (database down), ask again this soon. */
#define RECHECK_RETRY_MS 5000

struct sse_read_s {
    sb_read_t r;
    sse_client_t *client; /* NULL once the client left */
    sse_hub_t *hub;
    int64_t head; /* the hub's position when the read was issued; -1 if it had none */
};

/* An authorization recheck in flight; it outlives a client that leaves meanwhile. */
typedef struct sse_recheck_s {
    sse_client_t *client; /* NULL once the client left */
} sse_recheck_t;

static void pump(sse_client_t *c);
static void client_free(sse_client_t *c);

static uint64_t now_ms(sse_hub_t *h)
{
    return uv_now(&h->loop->uv);
}

/* ---- options -------------------------------------------------------------------------------- */

static int env_ms(const char *name, uint64_t *v, uint64_t min, uint64_t max, char *err, size_t errlen)
{
    const char *s = getenv(name);
    if (s == NULL || *s == '\0')
        return 0;
    char *end;
    unsigned long long x = strtoull(s, &end, 10);
    if (*end != '\0' || s[0] == '-' || x < min || x > max) {
        snprintf(err, errlen, "%s must be a number between %llu and %llu", name, (unsigned long long)min,
                 (unsigned long long)max);
        return SB_EINVAL;
    }
    *v = x;
    return 0;
}

int sb_sse_options_init(sb_sse_options_t *o, char *err, size_t errlen)
{
    o->heartbeat_ms = 15000;
    o->send_timeout_ms = 60000;
    o->retry_ms = 2000;
    o->window_bytes = 8u << 20;
    o->reauth_ms = 30000;
    int rc = env_ms("SWITCHBOARD_SSE_HEARTBEAT_MS", &o->heartbeat_ms, 10, 3600000, err, errlen);
    if (rc == 0)
        rc = env_ms("SWITCHBOARD_SSE_SEND_TIMEOUT_MS", &o->send_timeout_ms, 100, 3600000, err, errlen);
    if (rc == 0)
        rc = env_ms("SWITCHBOARD_SSE_RETRY_MS", &o->retry_ms, 0, 3600000, err, errlen);
    if (rc == 0)
        rc = env_ms("SWITCHBOARD_SSE_REAUTH_MS", &o->reauth_ms, 100, 86400000, err, errlen);
    uint64_t window = o->window_bytes;
    if (rc == 0 &&
        (rc = env_ms("SWITCHBOARD_SSE_WINDOW_BYTES", &window, 16384, (uint64_t)1 << 32, err, errlen)) == 0)
        o->window_bytes = (size_t)window;
    return rc;
}

/* ---- the hub's subscription ----------------------------------------------------------------- */

static int64_t hub_pos(const sse_hub_t *h)
{
    return h->sub != NULL ? sb_sub_position(h->sub) : -1;
}

static void end_revoked(sse_client_t *c, const char *why);

/* A member removed from a workspace loses its streams of it at once, on every loop of every
 * process (each follows the log). */
static void on_member_removed(sse_hub_t *h, const sb_event_t *ev)
{
    sse_ws_t *ws = sse_ws_find(h, &ev->workspace);
    if (ws == NULL || ws->nclients == 0)
        return;
    json_t *payload = NULL;
    char err[96];
    if (sb_codec_to_jansson(ev->payload, ev->payload_len, &payload, err, sizeof(err)) != 0)
        return;
    const char *uid = json_string_value(json_object_get(payload, "user_id"));
    sb_uuid_t user;
    if (uid != NULL && sb_uuid_parse(uid, strlen(uid), &user) == 0) {
        for (sse_client_t *c = ws->clients, *next; c != NULL; c = next) {
            next = c->wnext;
            if (c->has_user && memcmp(c->user.b, user.b, sizeof(user.b)) == 0)
                end_revoked(c, "its user was removed from the workspace");
        }
    }
    json_decref(payload);
}

static void on_events(sb_sub_t *s, const sb_event_t *events, int n, void *data)
{
    sse_hub_t *h = data;
    for (int i = 0; i < n; i++)
        if (events[i].has_workspace && strcmp(events[i].type, "MemberRemoved") == 0 &&
            strncmp(events[i].stream, "workspace-", 10) == 0)
            on_member_removed(h, &events[i]);
    if (!sse_window_add(h, events, n))
        return;
    sse_window_trim(h);
    /* Wake the idle live clients of the workspaces that got messages.  A send never frees a
     * client synchronously, but pump may end one, so take the next link first. */
    for (int i = 0; i < n; i++) {
        if (!events[i].has_workspace)
            continue;
        sse_ws_t *ws = sse_ws_find(h, &events[i].workspace);
        if (ws == NULL || ws->count == 0 ||
            sse_ws_at(ws, ws->first_seq + ws->count - 1)->pos != events[i].position)
            continue; /* not the workspace's newest message: its clients are woken for a later one */
        for (sse_client_t *c = ws->clients, *next; c != NULL; c = next) {
            next = c->wnext;
            if (c->state == CLIENT_LIVE && !c->sending)
                pump(c);
        }
    }
}

/* Subscribes the hub at the follower's head.  False while the follower does not know it yet. */
static bool hub_follow(sse_hub_t *h)
{
    if (h->sub != NULL)
        return true;
    if (h->stopping)
        return false;
    sb_follower_t *f = h->sse->app->follower;
    int64_t head = sb_follower_head(f);
    if (head < 0 || h->loop->db == NULL)
        return false;
    h->sub = sb_follower_subscribe(f, h->loop->db, head, NULL, on_events, h);
    if (h->sub == NULL)
        return false;
    /* Every ring starts empty, complete from here on. */
    for (uint32_t i = 0; i < h->nbuckets; i++)
        for (sse_ws_t *w = h->buckets[i]; w != NULL; w = w->hnext)
            if (w->nclients > 0)
                w->floor = head;
    return true;
}

/* ---- sending -------------------------------------------------------------------------------- */

static void release_inflight(sse_client_t *c)
{
    for (int i = 0; i < c->ninflight; i++)
        sse_msg_unref(c->hub, c->inflight[i]);
    c->ninflight = 0;
    free(c->chunk);
    c->chunk = NULL;
}

static void do_send(sse_client_t *c, h2o_iovec_t *iov, size_t n)
{
    sse_hub_t *h = c->hub;
    c->sending = true;
    c->send_started = now_ms(h);
    c->last_write = c->send_started;
    h2o_send(c->req, iov, n, H2O_SEND_STATE_IN_PROGRESS);
}

static bool matches(const sse_client_t *c, const sse_msg_t *m)
{
    const sb_sse_params_t *f = c->filter;
    if (f == NULL)
        return true;
    bool ok = f->ntypes == 0;
    for (int i = 0; !ok && i < f->ntypes; i++)
        ok = strcmp(f->types[i], m->type) == 0;
    if (!ok)
        return false;
    ok = f->nstreams == 0;
    for (int i = 0; !ok && i < f->nstreams; i++)
        ok = strcmp(f->streams[i], m->stream) == 0;
    if (!ok)
        return false;
    ok = f->ncategories == 0;
    for (int i = 0; !ok && i < f->ncategories; i++)
        ok = strlen(f->categories[i]) == m->catlen && memcmp(f->categories[i], m->stream, m->catlen) == 0;
    return ok;
}

/* Sends what the ring holds for a live client.  False when the ring no longer has what it needs. */
static bool send_live(sse_client_t *c)
{
    sse_ws_t *ws = c->ws;
    if (c->next_seq < ws->first_seq || c->pos < ws->floor)
        return false;
    h2o_iovec_t iov[SSE_MAX_IOV];
    size_t n = 0, bytes = 0;
    uint64_t end = ws->first_seq + ws->count;
    while (c->next_seq < end && n < SSE_MAX_IOV && bytes < SSE_CHUNK_BYTES) {
        sse_msg_t *m = sse_ws_at(ws, c->next_seq++);
        if (m->pos <= c->pos)
            continue;
        c->pos = m->pos;
        if (!matches(c, m))
            continue;
        m->refs++;
        c->inflight[c->ninflight++] = m;
        iov[n++] = h2o_iovec_init(m->text, m->len);
        bytes += m->len;
    }
    if (n > 0) {
        sse_bump(&c->hub->counters->events_sent, (int64_t)n);
        do_send(c, iov, n);
    }
    return true;
}

/* Ends the response now: no send may be in flight.  Frees the client (h2o calls nothing more). */
static void finish(sse_client_t *c, h2o_send_state_t state)
{
    h2o_req_t *req = c->req;
    c->req = NULL;
    client_free(c);
    h2o_send(req, NULL, 0, state);
}

static void goto_live(sse_client_t *c)
{
    c->state = CLIENT_LIVE;
    c->next_seq = sse_ws_seek(c->ws, c->pos);
}

/* ---- catch-up reads ------------------------------------------------------------------------- */

static void issue_read(sse_client_t *c);

static void next_queued_read(sse_hub_t *h)
{
    while (h->rq_head != NULL && h->reads < MAX_READS_PER_LOOP) {
        sse_client_t *c = h->rq_head;
        h->rq_head = c->qnext;
        if (h->rq_head == NULL)
            h->rq_tail = NULL;
        c->qnext = NULL;
        c->queued = false;
        issue_read(c);
    }
}

static void hub_maybe_free(sse_hub_t *h);

static void on_read(sb_read_t *rr, int status, const sb_event_page_t *page)
{
    sse_read_t *r = (sse_read_t *)rr;
    sse_hub_t *h = r->hub;
    sse_client_t *c = r->client;
    h->reads--;
    if (c == NULL) {
        free(r);
        if (h->closing)
            hub_maybe_free(h);
        else
            next_queued_read(h);
        return;
    }
    c->read = NULL;
    int64_t head = r->head;
    sse_bump(&h->counters->catchup_reads, 1);
    if (status != 0) {
        sb_log_warn("sse", "catch-up read failed: %s%s%s", sb_strerror(status), rr->error ? ": " : "",
                    rr->error ? rr->error : "");
        free(r);
        c->retry_read_at = now_ms(h) + READ_RETRY_MS;
        next_queued_read(h);
        if (c->ending)
            pump(c); /* shutting down or the client left: end it rather than retry */
        return;
    }
    free(r);
    sb_buf_t out = SB_BUF_INIT;
    int used = 0;
    while (used < page->n && out.len < SSE_CHUNK_BYTES) {
        sse_format_event(&page->events[used], &out);
        c->pos = page->events[used].position;
        used++;
    }
    c->more = page->more || used < page->n;
    if (!c->more && head > c->pos)
        c->pos = head;
    if (!c->more && head >= 0 && c->pos >= c->ws->floor)
        goto_live(c);
    else if (!c->more && head < 0 && !hub_follow(h))
        c->state = CLIENT_WAIT; /* caught up, but cannot follow yet: the tick retries */
    next_queued_read(h);
    if (c->ending) {
        sb_buf_free(&out);
        pump(c);
        return;
    }
    if (out.len > 0) {
        sse_bump(&h->counters->events_sent, used);
        c->chunk = sb_buf_steal(&out);
        h2o_iovec_t iov = h2o_iovec_init(c->chunk, strlen(c->chunk));
        do_send(c, &iov, 1);
        return;
    }
    sb_buf_free(&out);
    pump(c);
}

static void issue_read(sse_client_t *c)
{
    sse_hub_t *h = c->hub;
    if (h->reads >= MAX_READS_PER_LOOP) {
        c->queued = true;
        if (h->rq_tail != NULL)
            h->rq_tail->qnext = c;
        else
            h->rq_head = c;
        h->rq_tail = c;
        return;
    }
    sse_read_t *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        c->retry_read_at = now_ms(h) + READ_RETRY_MS;
        return;
    }
    r->client = c;
    r->hub = h;
    r->head = hub_pos(h);
    sb_log_debug("sse", "catch-up read after position %lld (hub at %lld)", (long long)c->pos,
                 (long long)r->head);
    c->read = r;
    c->retry_read_at = 0;
    h->reads++;
    sb_log_filter_t f = {0};
    f.has_workspace = true;
    f.workspace = c->ws->id;
    if (c->filter != NULL) {
        f.types = c->filter->types;
        f.ntypes = c->filter->ntypes;
        f.streams = c->filter->streams;
        f.nstreams = c->filter->nstreams;
        f.categories = c->filter->categories;
        f.ncategories = c->filter->ncategories;
    }
    sb_read_log(h->loop->db, &r->r, c->pos, &f, PAGE_EVENTS, on_read, r);
}

static void unqueue(sse_client_t *c)
{
    sse_hub_t *h = c->hub;
    sse_client_t **pp = &h->rq_head, *prev = NULL;
    while (*pp != NULL && *pp != c) {
        prev = *pp;
        pp = &(*pp)->qnext;
    }
    if (*pp == c) {
        *pp = c->qnext;
        if (h->rq_tail == c)
            h->rq_tail = prev;
    }
    c->queued = false;
    c->qnext = NULL;
}

/* ---- the client's driver -------------------------------------------------------------------- */

/* Sends whatever is due, if nothing is in flight. */
static void pump(sse_client_t *c)
{
    if (c->ending && c->queued)
        unqueue(c);
    if (c->sending || c->read != NULL || c->queued)
        return;
    if (c->ending) {
        finish(c, H2O_SEND_STATE_FINAL);
        return;
    }
    if (c->state == CLIENT_WAIT) {
        if (!hub_follow(c->hub))
            return;
        if (c->pos < 0) {
            c->pos = hub_pos(c->hub);
            goto_live(c);
        } else {
            c->state = CLIENT_CATCHUP;
        }
    }
    if (c->hello_pending) {
        /* Only now, with its position set: what the client appends after reading this is after it. */
        c->hello_pending = false;
        h2o_iovec_t iov = h2o_iovec_init(c->chunk, strlen(c->chunk));
        do_send(c, &iov, 1);
        return;
    }
    if (c->state == CLIENT_LIVE) {
        if (send_live(c))
            return;
        c->state = CLIENT_CATCHUP; /* fell out of the window: back to the log */
    }
    if (c->retry_read_at == 0)
        issue_read(c);
}

static void on_proceed(h2o_generator_t *gen, h2o_req_t *req)
{
    sse_client_t *c = (sse_client_t *)gen;
    c->sending = false;
    release_inflight(c);
    pump(c);
}

/* Releases everything the client holds and unlinks it.  The request is not touched. */
static void client_free(sse_client_t *c)
{
    sse_hub_t *h = c->hub;
    release_inflight(c);
    if (c->read != NULL)
        c->read->client = NULL;
    if (c->recheck != NULL)
        c->recheck->client = NULL;
    if (c->token != NULL) {
        sodium_memzero(c->token, strlen(c->token));
        free(c->token);
    }
    if (c->queued)
        unqueue(c);
    sse_ws_t *ws = c->ws;
    if (c->wprev)
        c->wprev->wnext = c->wnext;
    else
        ws->clients = c->wnext;
    if (c->wnext)
        c->wnext->wprev = c->wprev;
    if (--ws->nclients == 0)
        sse_ws_reset(h, ws);
    if (c->aprev)
        c->aprev->anext = c->anext;
    else
        h->clients = c->anext;
    if (c->anext)
        c->anext->aprev = c->aprev;
    h->nclients--;
    sse_bump(&h->counters->clients, -1);
    if (c->filter != NULL) {
        sb_sse_params_free(c->filter);
        free(c->filter);
    }
    free(c);
}

static void on_stop(h2o_generator_t *gen, h2o_req_t *req)
{
    sse_client_t *c = (sse_client_t *)gen;
    sb_log_debug("sse", "client left at position %lld", (long long)c->pos);
    client_free(c);
}

/* Disconnects a client whose send has not completed in time, without waiting for it. */
static void drop_stalled(sse_client_t *c)
{
    h2o_req_t *req = c->req;
    sse_bump(&c->hub->counters->dropped_slow, 1);
    sb_log_info("sse", "dropping a client that stopped reading (position %lld, HTTP/%s)", (long long)c->pos,
                req->version >= 0x200 ? "2" : "1.1");
    if (req->version >= 0x200) {
        /* Reset just this stream (the connection's other streams go on): tell the peer, then close
         * it as if the peer had reset it.  h2o calls our stop, now or once its writer is done. */
        h2o_http2_conn_t *conn = (h2o_http2_conn_t *)req->conn;
        h2o_http2_stream_t *stream = H2O_STRUCT_FROM_MEMBER(h2o_http2_stream_t, req, req);
        h2o_http2_encode_rst_stream_frame(&conn->_write.buf, stream->stream_id, -H2O_HTTP2_ERROR_CANCEL);
        h2o_http2_conn_request_write(conn);
        h2o_http2_stream_reset(conn, stream);
        return;
    }
    /* HTTP/1: the write in flight fails once the socket is shut down, and h2o closes the
     * connection, calling our stop. */
    h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
    int fd = sock != NULL ? h2o_socket_get_fd(sock) : -1;
    if (fd >= 0)
        shutdown(fd, SHUT_RDWR);
}

/* h2o 2.2 does not read an HTTP/1.1 connection while it sends a response, so a client that closes
 * its end is not noticed until a write fails.  The tick peeks at the socket instead (MSG_PEEK
 * consumes nothing and leaves libuv's view of the stream alone, so the write that ends the
 * response fails or completes normally and h2o closes the connection).  Reading through libuv
 * would not do: after a reset it marks the stream unwritable, and h2o 2.2 ignores the synchronous
 * error of the next write, which would leave the connection open for good. */
static bool http1_client_left(const sse_client_t *c)
{
    if (c->fd < 0)
        return false;
    char b;
    ssize_t r = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static int http1_fd(h2o_req_t *req)
{
    if (req->version >= 0x200)
        return -1;
    h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
    return sock != NULL ? h2o_socket_get_fd(sock) : -1;
}

/* ---- authorization while the stream lasts -------------------------------------------------- */

/* Ends a stream whose authorization was withdrawn: nothing new is sent (a send in flight
 * completes) and the response ends cleanly.  An EventSource then reconnects and is refused. */
static void end_revoked(sse_client_t *c, const char *why)
{
    if (c->ending)
        return;
    sb_log_info("sse", "ending a stream at position %lld: %s", (long long)c->pos, why);
    sse_bump(&c->hub->counters->revoked, 1);
    c->ending = true;
    pump(c);
}

/* The time to the next periodic check: the interval less up to a quarter of it, varying by
 * client, so streams that started together (reconnects after a restart) are not all checked in
 * one tick. */
static uint64_t recheck_in(const sse_client_t *c)
{
    uint64_t every = c->hub->sse->opts.reauth_ms;
    uint64_t spread = every / 4;
    return every - (spread > 0 ? (uint64_t)(((uintptr_t)c >> 4) * 2654435761u) % spread : 0);
}

static void on_rechecked(sb_http_auth_result_t result, const sb_uuid_t *user, void *data)
{
    sse_recheck_t *r = data;
    sse_client_t *c = r->client;
    free(r);
    if (c == NULL)
        return; /* the client left meanwhile */
    c->recheck = NULL;
    uint64_t now = now_ms(c->hub);
    switch (result) {
    case SB_HTTP_AUTH_OK:
        if (c->has_user && user != NULL && memcmp(c->user.b, user->b, sizeof(user->b)) != 0) {
            end_revoked(c, "its token names another user");
            return;
        }
        c->recheck_at = now + recheck_in(c);
        return;
    case SB_HTTP_AUTH_UNAVAILABLE:
        /* Not an answer: keep the stream and ask again soon. */
        c->recheck_at = now + (RECHECK_RETRY_MS < recheck_in(c) ? RECHECK_RETRY_MS : recheck_in(c));
        return;
    case SB_HTTP_AUTH_UNAUTHENTICATED:
        end_revoked(c, "its token expired or was revoked");
        return;
    default:
        end_revoked(c, "its user is no longer a member of the workspace");
        return;
    }
}

/* Asks the authorizer about c's token again.  May end (and free) c before returning. */
static void recheck(sse_client_t *c, uint64_t epoch)
{
    sse_recheck_t *r = malloc(sizeof(*r));
    if (r == NULL) {
        c->recheck_at = now_ms(c->hub) + RECHECK_RETRY_MS;
        return;
    }
    r->client = c;
    c->recheck = r;
    c->auth_epoch = epoch;
    c->recheck_at = UINT64_MAX; /* until answered */
    sb_http_recheck_workspace(c->token, &c->ws->id, on_rechecked, r);
}

/* ---- a stream's start (sse_request.c has the request) ---------------------------------------- */

void sse_stream_start(h2o_req_t *req, sse_start_t *pd)
{
    sse_hub_t *h = pd->sse->hubs[sb_loop_current()->index];
    if (h->stopping) {
        sb_http_send_error(req, 503, "shutting_down", "the server is shutting down", NULL);
        return;
    }
    bool filtered = pd->params.ntypes > 0 || pd->params.nstreams > 0 || pd->params.ncategories > 0;
    sse_client_t *c = calloc(1, sizeof(*c));
    sb_sse_params_t *filter = filtered ? malloc(sizeof(*filter)) : NULL;
    sse_ws_t *ws = c != NULL && (filter != NULL || !filtered) ? sse_ws_get(h, &pd->ws) : NULL;
    if (ws == NULL) {
        free(c);
        free(filter);
        sb_http_send_errcode(req, SB_ENOMEM, NULL);
        return;
    }
    if (filter != NULL) {
        /* The client keeps the filter lists (they point into the params' block); not the token
         * (read below while the params still own it). */
        *filter = pd->params;
        filter->token = NULL;
        pd->params_owned = false;
    }
    c->gen.proceed = on_proceed;
    c->gen.stop = on_stop;
    c->req = req;
    c->hub = h;
    c->ws = ws;
    c->filter = filter;
    if (pd->recheck) {
        c->token = sb_http_request_token(req, pd->params.token, true);
        c->has_user = pd->has_user;
        c->user = pd->user;
        c->auth_epoch = pd->auth_epoch;
        c->recheck_at = now_ms(h) + recheck_in(c);
    }
    if (ws->nclients++ == 0)
        ws->floor = h->sub != NULL ? hub_pos(h) : INT64_MAX;
    c->wnext = ws->clients;
    if (ws->clients)
        ws->clients->wprev = c;
    ws->clients = c;
    c->anext = h->clients;
    if (h->clients)
        h->clients->aprev = c;
    h->clients = c;
    h->nclients++;
    sse_bump(&h->counters->clients, 1);
    sse_bump(&h->counters->accepted, 1);

    /* Where to start: after the resume position, else at the live head. */
    if (pd->params.has_after) {
        c->pos = pd->params.after;
        c->state = CLIENT_CATCHUP;
    } else if (hub_follow(h)) {
        c->pos = hub_pos(h);
        if (ws->floor == INT64_MAX)
            ws->floor = c->pos;
        goto_live(c);
    } else {
        c->pos = -1;
        c->state = CLIENT_WAIT;
    }

    req->res.status = 200;
    req->res.reason = "OK";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("text/event-stream; charset=utf-8"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                   H2O_STRLIT("no-cache, no-transform"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-accel-buffering"), 0, NULL,
                          H2O_STRLIT("no"));
    /* An SSE response never ends by itself; its connection is not reused afterwards. */
    req->http1_is_persistent = 0;
    h2o_start_response(req, &c->gen);
    c->fd = http1_fd(req);

    /* The first chunk: the reconnection delay, once.  Its proceed starts the events flowing. */
    char *hello = malloc(48);
    if (hello == NULL) {
        finish(c, H2O_SEND_STATE_ERROR);
        return;
    }
    int n = snprintf(hello, 48, "retry: %llu\n\n", (unsigned long long)h->sse->opts.retry_ms);
    c->chunk = hello;
    if (c->state == CLIENT_WAIT) {
        /* A stream "from now" whose start the hub cannot place yet (the follower does not know
         * the log's end): nothing goes out, not even this, until the tick can set its position.
         * A client that took the first chunk as "subscribed" and then appended must not miss
         * what it appended. */
        c->hello_pending = true;
        return;
    }
    h2o_iovec_t iov = h2o_iovec_init(hello, (size_t)n);
    do_send(c, &iov, 1);
}

/* ---- the hub's tick: heartbeats, stalled sends, retries ------------------------------------- */

static void on_tick(uv_timer_t *t)
{
    sse_hub_t *h = t->data;
    const sb_sse_options_t *o = &h->sse->opts;
    uint64_t now = now_ms(h);
    static const char heartbeat[] = ":\n\n";
    uint64_t epoch = sb_http_auth_epoch();
    for (sse_client_t *c = h->clients, *next; c != NULL; c = next) {
        next = c->anext;
        if (c->token != NULL && c->recheck == NULL && !c->ending &&
            (c->auth_epoch != epoch || now >= c->recheck_at)) {
            recheck(c, epoch); /* may end c: nothing more for it this tick */
            continue;
        }
        if (c->sending) {
            if (now - c->send_started >= o->send_timeout_ms)
                drop_stalled(c);
            continue;
        }
        if (http1_client_left(c)) {
            sb_log_debug("sse", "client closed its connection at position %lld", (long long)c->pos);
            if (c->read == NULL && !c->queued) {
                finish(c, H2O_SEND_STATE_ERROR);
                continue;
            }
            c->ending = true; /* once the read in flight is back */
            continue;
        }
        if (c->state == CLIENT_WAIT || (c->retry_read_at != 0 && now >= c->retry_read_at)) {
            c->retry_read_at = 0;
            pump(c);
            if (c->sending)
                continue;
        }
        if (c->read == NULL && !c->queued && !c->hello_pending && now - c->last_write >= o->heartbeat_ms) {
            h2o_iovec_t iov = h2o_iovec_init(heartbeat, sizeof(heartbeat) - 1);
            do_send(c, &iov, 1);
        }
    }
    sse_ws_sweep(h);
}

/* ---- life cycle ----------------------------------------------------------------------------- */

int sb_sse_create(sb_sse_t **out, sb_app_t *app, sb_router_t *router, int n, const sb_sse_options_t *o)
{
    *out = NULL;
    if (n <= 0)
        return SB_EINVAL;
    sb_sse_t *sse = calloc(1, sizeof(*sse));
    if (sse == NULL)
        return SB_ENOMEM;
    sse->app = app;
    sse->opts = *o;
    sse->nhubs = n;
    sse->hubs = calloc((size_t)n, sizeof(*sse->hubs));
    sse->counters = calloc((size_t)n, sizeof(*sse->counters));
    if (sse->hubs == NULL || sse->counters == NULL) {
        free(sse->hubs);
        free(sse->counters);
        free(sse);
        return SB_ENOMEM;
    }
    int rc = sse_routes(router, sse);
    if (rc != 0) {
        free(sse->hubs);
        free(sse->counters);
        free(sse);
        return rc;
    }
    *out = sse;
    return 0;
}

int sb_sse_loop_start(sb_sse_t *sse, sb_loop_t *loop)
{
    if (loop->index < 0 || loop->index >= sse->nhubs)
        return SB_EINVAL;
    sse_hub_t *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return SB_ENOMEM;
    h->sse = sse;
    h->loop = loop;
    h->counters = &sse->counters[loop->index];
    uint64_t tick = sse->opts.heartbeat_ms / 4;
    if (tick > sse->opts.send_timeout_ms / 4)
        tick = sse->opts.send_timeout_ms / 4;
    if (tick > 1000)
        tick = 1000;
    if (tick < 5)
        tick = 5;
    uv_timer_init(&loop->uv, &h->timer);
    h->timer.data = h;
    h->timer_open = true;
    uv_timer_start(&h->timer, on_tick, tick, tick);
    sse->hubs[loop->index] = h;
    return 0;
}

void sb_sse_loop_stop(sb_sse_t *sse, sb_loop_t *loop)
{
    sse_hub_t *h = loop->index < sse->nhubs ? sse->hubs[loop->index] : NULL;
    if (h == NULL || h->stopping)
        return;
    h->stopping = true;
    for (sse_client_t *c = h->clients, *next; c != NULL; c = next) {
        next = c->anext;
        c->ending = true;
        pump(c); /* finishes it now unless a send or read is in flight */
    }
    if (h->sub != NULL) {
        sb_sub_close(h->sub);
        h->sub = NULL;
    }
}

static void hub_free_now(sse_hub_t *h)
{
    sse_window_free(h);
    sse_ws_free_all(h);
    free(h);
}

static void hub_maybe_free(sse_hub_t *h)
{
    if (h->closing && !h->timer_open && h->reads == 0)
        hub_free_now(h);
}

static void on_timer_closed(uv_handle_t *t)
{
    sse_hub_t *h = t->data;
    h->timer_open = false;
    hub_maybe_free(h);
}

void sb_sse_loop_close(sb_sse_t *sse, sb_loop_t *loop)
{
    sse_hub_t *h = loop->index < sse->nhubs ? sse->hubs[loop->index] : NULL;
    if (h == NULL)
        return;
    sb_sse_loop_stop(sse, loop);
    /* HTTP has stopped, so h2o has disposed every request and every client is gone. */
    if (h->nclients != 0)
        sb_log_error("sse", "%d client(s) left at close", h->nclients);
    sse->hubs[loop->index] = NULL;
    h->closing = true;
    uv_timer_stop(&h->timer);
    uv_close((uv_handle_t *)&h->timer, on_timer_closed);
}

void sb_sse_free(sb_sse_t *sse)
{
    if (sse == NULL)
        return;
    free(sse->hubs);
    free(sse->counters);
    free(sse);
}

void sb_sse_get_stats(const sb_sse_t *sse, sb_sse_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    for (int i = 0; i < sse->nhubs; i++) {
        const sse_counters_t *k = &sse->counters[i];
        out->clients += atomic_load_explicit(&k->clients, memory_order_relaxed);
        out->accepted += atomic_load_explicit(&k->accepted, memory_order_relaxed);
        out->dropped_slow += atomic_load_explicit(&k->dropped_slow, memory_order_relaxed);
        out->events_sent += atomic_load_explicit(&k->events_sent, memory_order_relaxed);
        out->catchup_reads += atomic_load_explicit(&k->catchup_reads, memory_order_relaxed);
        out->window_bytes += atomic_load_explicit(&k->window_bytes, memory_order_relaxed);
        out->revoked += atomic_load_explicit(&k->revoked, memory_order_relaxed);
    }
}

uint64_t sb_sse_clients(const sb_sse_t *sse)
{
    sb_sse_stats_t s;
    sb_sse_get_stats(sse, &s);
    return s.clients;
}
