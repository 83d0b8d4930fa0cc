/* Live updates: GET /v1/workspaces/{ws}/events/stream as Server-Sent Events (SPEC §6).
 *
 * Each event is one message:
 *
 *   id: 1234
 *   event: ContactCreated
 *   data: {"position":1234,"stream":"contact-…","type":"ContactCreated","version":1,
 *          "workspace":"…","recorded_at":"2026-…Z","data":{…},"metadata":{…}}
 *
 * (data is one line).  The stream starts with `retry:` and a comment line goes out whenever a
 * client has been sent nothing for the heartbeat interval.  Resume with Last-Event-ID or ?after=;
 * filter with ?types=, ?streams=, ?categories= (sse_params.h).  Only members of the workspace may
 * subscribe (auth_hook.h; ?access_token= is accepted for browsers), and only while they are: a
 * stream ends when its user is removed from the workspace (MemberRemoved, seen in the log), when a
 * logout in this process revokes tokens, or when a periodic check (reauth_ms) finds its token
 * expired or revoked or its user no longer a member.
 *
 * How it scales (docs/sse.md): each loop has one hub, subscribed once to the process's follower.
 * The hub formats each event of a workspace that has clients on its loop once, into a bounded
 * per-loop window of recent messages shared by reference, and hands it to that workspace's clients.
 * A client holds only its position and the messages of its one send in flight; h2o's proceed
 * callback is the backpressure signal.  A client that resumes from an older position, or falls out
 * of the window because it reads slowly, is fed from the log in pages (on the loop's connection,
 * a few reads at a time per loop) until it reaches the window again.  A client whose send has not
 * completed within the send timeout is disconnected; nobody else waits for it.
 *
 * Life cycle, mirroring the HTTP server's:
 *   main thread: sb_sse_create (registers the route; before sb_http_server_listen);
 *   each loop:   sb_sse_loop_start after sb_http_start;
 *                sb_sse_loop_stop before sb_http_stop (ends every stream on the loop);
 *                sb_sse_loop_close once HTTP has stopped (frees the loop's hub);
 *   main thread: sb_sse_free after the loops are joined. */
#ifndef SB_HTTP_SSE_H
#define SB_HTTP_SSE_H

#include <stddef.h>
#include <stdint.h>

#include "core/loop.h"
#include "http/app.h"
#include "http/router.h"

typedef struct sb_sse_s sb_sse_t;

typedef struct sb_sse_options_s {
    uint64_t heartbeat_ms;    /* comment line after this much silence; SWITCHBOARD_SSE_HEARTBEAT_MS, 15000 */
    uint64_t send_timeout_ms; /* drop a client whose send is stuck this long; SWITCHBOARD_SSE_SEND_TIMEOUT_MS,
                                 60000 */
    uint64_t retry_ms;        /* the `retry:` sent to clients; SWITCHBOARD_SSE_RETRY_MS, 2000 */
    size_t window_bytes; /* per loop: recent messages kept for live clients; SWITCHBOARD_SSE_WINDOW_BYTES,
                            8 MiB */
    uint64_t reauth_ms;  /* how often a stream's token and membership are checked again;
                            SWITCHBOARD_SSE_REAUTH_MS, 30000 */
} sb_sse_options_t;

/* Defaults, overridden by the environment variables above.  0, or SB_EINVAL with one line in err
 * for a malformed value. */
int sb_sse_options_init(sb_sse_options_t *o, char *err, size_t errlen);

/* Creates the service for nloops loops of app (whose follower it subscribes to once the loops run)
 * and registers the route on router.  0 or a negative code. */
int sb_sse_create(sb_sse_t **out, sb_app_t *app, sb_router_t *router, int nloops, const sb_sse_options_t *o);

/* Per loop, on its thread (see the life cycle above).  start returns 0 or a negative code. */
int sb_sse_loop_start(sb_sse_t *sse, sb_loop_t *loop);
void sb_sse_loop_stop(sb_sse_t *sse, sb_loop_t *loop);
void sb_sse_loop_close(sb_sse_t *sse, sb_loop_t *loop);

void sb_sse_free(sb_sse_t *sse);

typedef struct sb_sse_stats_s {
    uint64_t clients;       /* connected now */
    uint64_t accepted;      /* streams started since start-up */
    uint64_t dropped_slow;  /* disconnected because a send stalled past the timeout */
    uint64_t events_sent;   /* SSE messages handed to h2o */
    uint64_t catchup_reads; /* pages read from the log for clients behind the live window */
    uint64_t window_bytes;  /* bytes of formatted messages held in the loops' windows */
    uint64_t revoked;       /* streams ended because their authorization was withdrawn */
} sb_sse_stats_t;

/* Sums every loop's counters.  Any thread, at any time between create and free. */
void sb_sse_get_stats(const sb_sse_t *sse, sb_sse_stats_t *out);

/* Serves req (on its loop, after sb_sse_loop_start) as an event stream of workspace, for a request
 * its caller has authorized by other means (the website chat's visitor tokens): query is the
 * stream's parameters as ?types=, ?streams=, ?categories=, ?after= give them (the caller builds it,
 * so it decides what the client sees), and Last-Event-ID is read from req.  Answers req itself (400
 * for malformed parameters) and returns 0, or a negative code without answering. */
int sb_sse_serve(sb_sse_t *sse, h2o_req_t *req, const sb_uuid_t *workspace, const char *query, size_t qlen);

/* SSE clients connected now, for /metrics (switchboard_sse_clients). */
uint64_t sb_sse_clients(const sb_sse_t *sse);

#endif
