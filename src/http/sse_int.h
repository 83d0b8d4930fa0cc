/* Internal to the SSE module (sse.c, sse_window.c): the hub, its window of recent messages, the
 * per-workspace rings and the clients; sse_request.c parses and authorizes the request.  Everything here
 * lives on one loop and is touched only on that loop's thread; only the counters are read from elsewhere. */
#ifndef SB_HTTP_SSE_INT_H
#define SB_HTTP_SSE_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <h2o.h>

#include "core/buf.h"
#include "core/uuid.h"
#include "events/follow.h"
#include "http/sse.h"
#include "http/router.h"
#include "http/sse_params.h"

/* At most this many messages (iovecs) and about this many bytes go into one send. */
#define SSE_MAX_IOV 16
#define SSE_CHUNK_BYTES (64 * 1024)
/* A workspace's ring holds at most this many recent messages. */
#define SSE_WS_RING_MAX 4096
/* The window holds at most this many messages per loop (besides the byte budget). */
#define SSE_WINDOW_MAX 65536

typedef struct sse_hub_s sse_hub_t;
typedef struct sse_ws_s sse_ws_t;
typedef struct sse_client_s sse_client_t;

/* One event formatted as an SSE message: immutable once built, shared by reference between the
 * window and the sends in flight. */
typedef struct sse_msg_s {
    int refs;
    int64_t pos;
    sse_ws_t *ws; /* the workspace whose ring holds it; NULL once out of that ring */
    const char *type;
    const char *stream;
    uint32_t catlen; /* the category is the first catlen bytes of stream */
    uint32_t len;    /* bytes of text */
    const char *text;
    char bytes[]; /* type, stream, text */
} sse_msg_t;

/* A workspace with clients on this loop, and its ring of recent messages.  The ring holds every
 * event of the workspace with floor < position <= the hub's position; messages get sequence
 * numbers first_seq, first_seq + 1, ... in position order. */
struct sse_ws_s {
    sb_uuid_t id;
    sse_ws_t *hnext; /* hash chain */
    sse_client_t *clients;
    int nclients;
    int64_t floor; /* INT64_MAX until the hub knows its position */
    sse_msg_t **ring;
    uint32_t cap, start, count;
    uint64_t first_seq;
};

typedef struct sse_read_s sse_read_t;

enum { CLIENT_CATCHUP, CLIENT_LIVE, CLIENT_WAIT };

struct sse_client_s {
    h2o_generator_t gen; /* h2o calls proceed/stop with it */
    h2o_req_t *req;
    sse_hub_t *hub;
    sse_ws_t *ws;
    sse_client_t *wprev, *wnext; /* in ws->clients */
    sse_client_t *aprev, *anext; /* in hub->clients */
    sse_client_t *qnext;         /* in the hub's queue of clients waiting for a read slot */
    sb_sse_params_t *filter;     /* NULL when the client takes every event of the workspace */
    int64_t pos;                 /* every matching event <= pos has been sent (or queued to h2o) */
    uint64_t next_seq;           /* live: the next message of ws's ring to look at */
    int state;
    bool sending;           /* a send is in flight: wait for proceed */
    bool queued;            /* waiting for a read slot */
    bool ending;            /* finish the response once the send in flight completes */
    bool more;              /* catch-up: the log has more after pos */
    bool hello_pending;     /* the first chunk (retry:) waits for the position to be set */
    uint64_t send_started;  /* loop ms */
    uint64_t last_write;    /* loop ms */
    uint64_t retry_read_at; /* loop ms; 0 = none */
    sse_read_t *read;       /* catch-up read in flight */
    sse_msg_t *inflight[SSE_MAX_IOV];
    int ninflight;
    char *chunk; /* catch-up text in flight (malloc'd) */
    int fd;      /* HTTP/1: the connection's socket, probed for the client leaving; else -1 */
    /* authorization, checked again while the stream lasts (NULL token: authorized elsewhere,
     * sb_sse_serve, and not rechecked) */
    char *token;
    bool has_user;
    sb_uuid_t user;
    uint64_t recheck_at;           /* loop ms */
    uint64_t auth_epoch;           /* sb_http_auth_epoch() when last checked */
    struct sse_recheck_s *recheck; /* in flight */
};

/* Counters any thread may read (relaxed atomics, written by the hub's loop only). */
typedef struct sse_counters_s {
    _Atomic uint64_t clients, accepted, dropped_slow, events_sent, catchup_reads, window_bytes, revoked;
} sse_counters_t;

struct sse_hub_s {
    sb_sse_t *sse;
    sb_loop_t *loop;
    sb_sub_t *sub; /* the hub's subscription to the follower, once a client came */
    uv_timer_t timer;
    bool timer_open;
    bool stopping;
    bool closing; /* free once the timer is closed and no read is in flight */
    int reads;    /* catch-up reads in flight */
    sse_client_t *rq_head, *rq_tail;
    sse_client_t *clients;
    int nclients;
    /* workspaces with clients: chained hash */
    sse_ws_t **buckets;
    uint32_t nbuckets, nws;
    /* the window: every message held, oldest first, for the byte budget */
    sse_msg_t **fifo;
    uint32_t fcap, fstart, fcount;
    size_t fbytes;
    sb_buf_t scratch;
    sse_counters_t *counters; /* this loop's slot in sse->counters */
    int rechecks;             /* authorization rechecks in flight */
};

struct sb_sse_s {
    sb_app_t *app;
    sb_sse_options_t opts;
    int nhubs;
    sse_hub_t **hubs;         /* each set and cleared by its own loop */
    sse_counters_t *counters; /* one per loop, alive until sb_sse_free */
};

/* ---- sse_window.c ------------------------------------------------------------------------ */

/* What a stream starts from, once its request is parsed and authorized (sse_request.c). */
typedef struct {
    sb_sse_t *sse;
    sb_uuid_t ws;
    sb_sse_params_t params;
    bool params_owned;
    bool recheck;        /* authorized by a token, to be checked again while the stream lasts */
    uint64_t auth_epoch; /* sb_http_auth_epoch() before the authorization */
    bool has_user;
    sb_uuid_t user;
} sse_start_t;

/* Starts st's stream on the request's loop: the response's headers and first chunk, then events
 * from st->params.after or the live head.  Takes st's filter lists (params_owned false). */
void sse_stream_start(h2o_req_t *req, sse_start_t *st);

/* Registers the stream's route (sse_request.c); sse must outlive the router. */
int sse_routes(sb_router_t *router, sb_sse_t *sse);

/* Appends the SSE text of ev to out (id, event, data lines and the blank line).  0, or a
 * negative code when ev's payload cannot be shown (then a message with "data":null is written
 * anyway, so the client still sees the event). */
int sse_format_event(const sb_event_t *ev, sb_buf_t *out);

sse_ws_t *sse_ws_find(sse_hub_t *h, const sb_uuid_t *id);
/* Finds or creates the workspace's entry; NULL on allocation failure. */
sse_ws_t *sse_ws_get(sse_hub_t *h, const sb_uuid_t *id);
/* Drops the ring of a workspace that has no clients left (its entry is freed by sse_ws_sweep). */
void sse_ws_reset(sse_hub_t *h, sse_ws_t *ws);
/* Frees the entries of workspaces without clients. */
void sse_ws_sweep(sse_hub_t *h);
void sse_ws_free_all(sse_hub_t *h);

/* The message with sequence number seq (first_seq <= seq < first_seq + count). */
static inline sse_msg_t *sse_ws_at(const sse_ws_t *ws, uint64_t seq)
{
    return ws->ring[(ws->start + (uint32_t)(seq - ws->first_seq)) & (ws->cap - 1)];
}
/* The sequence number of the first message after pos (first_seq + count when none). */
uint64_t sse_ws_seek(const sse_ws_t *ws, int64_t pos);

/* Adds the events of a follower batch to the rings of the workspaces that have clients.  Returns
 * true when some ring grew. */
bool sse_window_add(sse_hub_t *h, const sb_event_t *events, int n);
/* Evicts the oldest messages while the window is over its budget. */
void sse_window_trim(sse_hub_t *h);
void sse_window_free(sse_hub_t *h);

void sse_msg_unref(sse_hub_t *h, sse_msg_t *m);

static inline void sse_bump(_Atomic uint64_t *c, int64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + (uint64_t)n,
                          memory_order_relaxed);
}

#endif
