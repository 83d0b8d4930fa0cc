/* Group commit: see append.h and docs/event-log.md.
 *
 * A batch is one pipelined request of three statements that PostgreSQL runs as one implicit
 * transaction, committed at the request's Sync:
 *   1. SELECT sb_lock_log()      the log's advisory lock, held until commit;
 *   2. the batch INSERT          checks every command's expected version against the stream's
 *                                current version (read after the lock, so no other appender can
 *                                move it) and inserts the events of the commands that pass;
 *   3. SELECT pg_notify(...)     wakes the followers of other processes once the transaction
 *                                commits (left out while there are none: sb_follower_others).
 * The INSERT reports per command whether it was stored, so a conflict fails only its command, and
 * each stored event's position and recorded_at, so that the batch can be handed to this process's
 * follower (sb_appender_set_follower) without being read back.
 * Should the batch fail as a whole (e.g. a writer that bypasses the lock hits the unique key),
 * its commands are retried one per transaction, so only the culprit fails. */
#include "events/append.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "core/wake.h"
#include "db/pg.h"
#include "events/codec.h"
#include "events/follow.h"
#include "events/stream.h"

#include <stdlib.h>
#include <string.h>

#define MAX_BATCH_COMMANDS 2000
#define MAX_BATCH_BYTES (8 * 1024 * 1024)
#define SEEN_SLOTS 4096 /* power of two, > 2 * MAX_BATCH_COMMANDS */

static const char batch_sql[] =
    "WITH c AS ("
    "  SELECT t.s, t.e, t.w, t.i"
    "  FROM unnest($1::text[], $2::int8[], $3::uuid[]) WITH ORDINALITY AS t(s, e, w, i)"
    "), cur AS ("
    "  SELECT c.i, c.s, c.e, c.w,"
    "         COALESCE((SELECT max(ev.version) FROM events ev WHERE ev.stream = c.s), 0) AS v"
    "  FROM c"
    "), ins AS ("
    "  INSERT INTO events (stream, version, type, workspace_id, payload, metadata)"
    "  SELECT cur.s, cur.v + x.k, x.t, cur.w, x.p, x.m"
    "  FROM unnest($4::int4[], $5::int4[], $6::text[], $7::bytea[], $8::bytea[]) AS x(ci, k, t, p, m)"
    "  JOIN cur ON cur.i = x.ci"
    "  WHERE cur.e < 0 OR cur.e = cur.v"
    "  ORDER BY x.ci, x.k"
    "  RETURNING stream, position, recorded_at"
    ")"
    " SELECT cur.i, cur.v, (cur.e < 0 OR cur.e = cur.v), ins.position,"
    "        (extract(epoch FROM ins.recorded_at) * 1000000)::int8"
    " FROM cur LEFT JOIN ins ON ins.stream = cur.s ORDER BY cur.i, ins.position";

enum { P_STREAMS, P_EXPECTED, P_WS, P_CMD, P_IDX, P_TYPES, P_PAYLOADS, P_META, NPARAMS };

struct sb_appender_s {
    uv_loop_t *loop;
    sb_pg_t *pg;
    uv_idle_t idle;
    sb_append_t *queue_head, *queue_tail;
    int nqueued;
    sb_append_t *failed_head, *failed_tail; /* rejected before sending: called back next tick */
    sb_append_t **batch;
    int nbatch;
    bool in_flight;
    bool solo_mode; /* after a whole-batch failure: one command per transaction for a while */
    int solo_left;
    sb_pg_req_t req;
    sb_pg_array_t arr[NPARAMS];
    const char *values[NPARAMS];
    int lengths[NPARAMS];
    int formats[NPARAMS];
    uint32_t seen[SEEN_SLOTS]; /* stream hashes of the batch being built (0 = empty) */
    uint32_t seen_gen[SEEN_SLOTS];
    uint32_t gen;
    sb_appender_stats_t stats;
    bool closing;
    void (*on_closed)(void *data);
    void *closed_data;
    /* the process's turn (see take_turn): under turn_lock */
    sb_wake_t turn_wake;
    bool turn_waiting, turn_given;
    sb_appender_t *turn_next;
    /* sb_appender_set_follower: committed batches go to it; the NOTIFY carries its origin */
    sb_follower_t *follower;
    const char *notify_values[1];
    sb_event_t *offer_events;
    int offer_cap;
    int *row_of; /* the batch's commands' first rows in the answer (see parse_answer) */
};

/* Turns.  The appenders of one process commit one batch at a time: a batch that waits in
 * PostgreSQL for the log's lock while a sibling's commits holds commands that could have joined
 * the next batch, and two half batches cost the database twice the per-commit work of one.  So an
 * appender with commands sends only when no sibling has a batch in flight; otherwise it waits for
 * its turn, which the sibling hands over when its commit returns (waiters in arrival order).  The
 * log's lock still orders commits across processes. */
static uv_once_t turn_once = UV_ONCE_INIT;
static uv_mutex_t turn_lock;
static int turn_in_flight, turn_in_flight_max; /* batches sent and not yet returned */
static bool turn_busy;                         /* a batch is in flight, or a turn was handed over */
static sb_appender_t *turn_head, *turn_tail;   /* appenders waiting for their turn */

static void turn_init(void)
{
    if (uv_mutex_init(&turn_lock) != 0)
        abort();
}

static const uint32_t array_oids[NPARAMS] = {SB_OID_TEXT, SB_OID_INT8, SB_OID_UUID,  SB_OID_INT4,
                                             SB_OID_INT4, SB_OID_TEXT, SB_OID_BYTEA, SB_OID_BYTEA};

static void kick(sb_appender_t *ap);

/* An empty msgpack map, used when a command has no metadata. */
static const char empty_map[] = {(char)0x80};

static bool type_is_valid(const char *t)
{
    size_t n = t ? strlen(t) : 0;
    if (n == 0 || n > 64 || t[0] < 'A' || t[0] > 'Z')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = t[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
            return false;
    }
    return true;
}

static int validate(const sb_append_t *a)
{
    sb_stream_name_t sn;
    if (a->stream == NULL || sb_stream_parse(a->stream, strlen(a->stream), &sn) != 0)
        return SB_EINVAL;
    if (a->nevents < 1 || a->nevents > SB_APPEND_MAX_EVENTS || a->events == NULL)
        return SB_EINVAL;
    if (a->expected_version < SB_VERSION_ANY)
        return SB_EINVAL;
    for (int i = 0; i < a->nevents; i++) {
        const sb_new_event_t *e = &a->events[i];
        if (!type_is_valid(e->type))
            return SB_EINVAL;
        if (e->payload_len + e->metadata_len > SB_APPEND_MAX_EVENT_BYTES)
            return SB_ETOOBIG;
        if (a->encoded_checked)
            continue;
        if (!sb_codec_is_valid_map(e->payload, e->payload_len))
            return SB_ECODEC;
        if (e->metadata_len > 0 && !sb_codec_is_valid_map(e->metadata, e->metadata_len))
            return SB_ECODEC;
    }
    return 0;
}

static size_t command_bytes(const sb_append_t *a)
{
    size_t n = strlen(a->stream) + 64;
    for (int i = 0; i < a->nevents; i++)
        n += a->events[i].payload_len + a->events[i].metadata_len + strlen(a->events[i].type) + 32;
    return n;
}

static void complete(sb_appender_t *ap, sb_append_t *a, int status)
{
    if (status == 0) {
        ap->stats.commands++;
        ap->stats.events += (uint64_t)a->nevents;
    } else if (status == SB_ECONFLICT) {
        ap->stats.conflicts++;
    } else {
        ap->stats.failures++;
    }
    a->cb(a, status);
}

/* Adds the stream to the batch's seen-set; false when it is already there. */
static bool mark_stream(sb_appender_t *ap, const char *stream)
{
    uint32_t h = (uint32_t)sb_stream_hash(stream, strlen(stream));
    if (h == 0)
        h = 1;
    uint32_t i = h & (SEEN_SLOTS - 1);
    for (;;) {
        if (ap->seen_gen[i] != ap->gen) {
            ap->seen_gen[i] = ap->gen;
            ap->seen[i] = h;
            return true;
        }
        if (ap->seen[i] == h)
            return false; /* same stream, or a hash collision: either way wait for the next batch */
        i = (i + 1) & (SEEN_SLOTS - 1);
    }
}

static void on_batch_done(sb_pg_req_t *req, int status);

/* true when ap may send now; else it is queued for its turn (turn_wake fires when it comes). */
static bool take_turn(sb_appender_t *ap)
{
    bool go = false;
    uv_mutex_lock(&turn_lock);
    if (ap->turn_given) {
        ap->turn_given = false;
        go = true;
    } else if (!turn_busy) {
        turn_busy = true;
        go = true;
    } else if (!ap->turn_waiting) {
        ap->turn_waiting = true;
        ap->turn_next = NULL;
        if (turn_tail != NULL)
            turn_tail->turn_next = ap;
        else
            turn_head = ap;
        turn_tail = ap;
    }
    uv_mutex_unlock(&turn_lock);
    return go;
}

/* Hands the turn to the first waiting appender, or frees it.  batch_done: a batch returned (called
 * before its callbacks: the caller asks again for a turn of its own afterwards, behind the
 * waiters); else an unused turn is passed on. */
static void give_turn(bool batch_done)
{
    uv_mutex_lock(&turn_lock);
    if (batch_done)
        turn_in_flight--;
    sb_appender_t *w = turn_head;
    if (w != NULL) {
        turn_head = w->turn_next;
        if (turn_head == NULL)
            turn_tail = NULL;
        w->turn_waiting = false;
        w->turn_given = true;
        sb_wake_send(&w->turn_wake);
    } else {
        turn_busy = false;
    }
    uv_mutex_unlock(&turn_lock);
}

/* Passes on a turn ap was given but has no use for. */
static void drop_turn(sb_appender_t *ap)
{
    uv_mutex_lock(&turn_lock);
    bool pass = ap->turn_given;
    ap->turn_given = false;
    uv_mutex_unlock(&turn_lock);
    if (pass)
        give_turn(false);
}

/* A closing appender leaves the queue, and passes on a turn it was given but will not use. */
static void leave_turns(sb_appender_t *ap)
{
    bool pass = false;
    uv_mutex_lock(&turn_lock);
    if (ap->turn_waiting) {
        sb_appender_t **pp = &turn_head, *prev = NULL;
        while (*pp != ap) {
            prev = *pp;
            pp = &(*pp)->turn_next;
        }
        *pp = ap->turn_next;
        if (turn_tail == ap)
            turn_tail = prev;
        ap->turn_waiting = false;
    }
    pass = ap->turn_given;
    ap->turn_given = false;
    uv_mutex_unlock(&turn_lock);
    if (pass)
        give_turn(false);
}

static void send_batch(sb_appender_t *ap)
{
    ap->gen++;
    if (ap->gen == 0) {
        memset(ap->seen_gen, 0, sizeof(ap->seen_gen));
        ap->gen = 1;
    }
    for (int p = 0; p < NPARAMS; p++)
        sb_pg_array_begin(&ap->arr[p], array_oids[p]);
    int limit = ap->solo_mode ? 1 : MAX_BATCH_COMMANDS;
    size_t bytes = 0;
    ap->nbatch = 0;
    /* Take commands in order, but at most one per stream: a second command for a stream waits
     * for the next batch so that its version check sees the first one's events.  Everything
     * behind it for that stream waits too, which keeps each stream's commands in order. */
    sb_append_t **pp = &ap->queue_head;
    sb_append_t *prev = NULL;
    while (*pp != NULL && ap->nbatch < limit && bytes < MAX_BATCH_BYTES) {
        sb_append_t *a = *pp;
        if (!mark_stream(ap, a->stream)) {
            prev = a;
            pp = &a->_next;
            continue;
        }
        *pp = a->_next;
        if (ap->queue_tail == a)
            ap->queue_tail = prev;
        a->_next = NULL;
        ap->nqueued--;
        ap->batch[ap->nbatch++] = a;
        bytes += command_bytes(a);
        int ci = ap->nbatch;
        sb_pg_array_add(&ap->arr[P_STREAMS], a->stream, (int32_t)strlen(a->stream));
        sb_pg_array_add_int8(&ap->arr[P_EXPECTED], a->expected_version);
        if (a->has_workspace)
            sb_pg_array_add(&ap->arr[P_WS], a->workspace.b, 16);
        else
            sb_pg_array_add(&ap->arr[P_WS], NULL, -1);
        for (int k = 0; k < a->nevents; k++) {
            const sb_new_event_t *e = &a->events[k];
            sb_pg_array_add_int4(&ap->arr[P_CMD], ci);
            sb_pg_array_add_int4(&ap->arr[P_IDX], k + 1);
            sb_pg_array_add(&ap->arr[P_TYPES], e->type, (int32_t)strlen(e->type));
            sb_pg_array_add(&ap->arr[P_PAYLOADS], e->payload, (int32_t)e->payload_len);
            if (e->metadata_len > 0)
                sb_pg_array_add(&ap->arr[P_META], e->metadata, (int32_t)e->metadata_len);
            else
                sb_pg_array_add(&ap->arr[P_META], empty_map, 1);
        }
    }
    if (ap->solo_mode && --ap->solo_left <= 0)
        ap->solo_mode = false;
    for (int p = 0; p < NPARAMS; p++) {
        sb_pg_array_finish(&ap->arr[p], &ap->values[p], &ap->lengths[p]);
        ap->formats[p] = 1;
    }
    memset(&ap->req, 0, sizeof(ap->req));
    ap->req.stmts[0] = (sb_pg_stmt_t){.name = "sb_lock_log", .sql = "SELECT sb_lock_log()"};
    ap->req.stmts[1] = (sb_pg_stmt_t){.name = "sb_append_batch",
                                      .sql = batch_sql,
                                      .nparams = NPARAMS,
                                      .values = ap->values,
                                      .lengths = ap->lengths,
                                      .formats = ap->formats};
    ap->req.stmts[2] = (sb_pg_stmt_t){.name = "sb_notify_events",
                                      .sql = "SELECT pg_notify('sb_events', $1)",
                                      .nparams = 1,
                                      .values = ap->notify_values};
    /* The NOTIFY is for other processes' followers only (ours takes the batch as an offer). */
    ap->req.nstmts = ap->follower == NULL || sb_follower_others(ap->follower) ? 3 : 2;
    if (ap->req.nstmts == 3)
        ap->stats.notifies++;
    ap->req.cb = on_batch_done;
    ap->req.data = ap;
    ap->in_flight = true;
    ap->stats.batches++;
    uv_mutex_lock(&turn_lock);
    if (++turn_in_flight > turn_in_flight_max)
        turn_in_flight_max = turn_in_flight;
    uv_mutex_unlock(&turn_lock);
    uint64_t now = sb_clock_mono_ns();
    for (int i = 0; i < ap->nbatch; i++)
        ap->batch[i]->_submitted_ns = ap->batch[i]->_submitted_ns ? ap->batch[i]->_submitted_ns : now;
    sb_pg_submit(ap->pg, &ap->req);
}

static int64_t field_int(PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return 0;
    return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

/* The answer has one row per stored event (command number, the stream's version before, whether
 * the command passed, position, recorded_at), in command then position order, and one row with no
 * position for a command that stored nothing.  Records where each command's rows start; false when
 * the answer has another shape. */
static bool parse_answer(sb_appender_t *ap, PGresult *res, int n)
{
    int rows = PQntuples(res), row = 0;
    if (PQnfields(res) != 5)
        return false;
    for (int i = 0; i < n; i++) {
        if (row >= rows || field_int(res, row, 0) != i + 1)
            return false;
        ap->row_of[i] = row;
        bool ok = PQgetvalue(res, row, 2)[0] == 't';
        int k = ok ? ap->batch[i]->nevents : 1;
        if (row + k > rows || field_int(res, row + k - 1, 0) != i + 1)
            return false;
        for (int j = 0; ok && j < k; j++)
            if (PQgetisnull(res, row + j, 3) ||
                (j > 0 && field_int(res, row + j, 3) != field_int(res, row, 3) + j))
                return false;
        row += k;
    }
    return row == rows;
}

/* The stored events of a committed batch, for the follower: in position order, which is the
 * batch's command order (the INSERT draws positions in that order, under the log's lock).  Only a
 * gap-free run is offered as it is (NULL otherwise: the follower reads the log). */
static sb_batch_t *offerable(sb_appender_t *ap, PGresult *res, int n, int total)
{
    if (total > ap->offer_cap) {
        sb_event_t *p = realloc(ap->offer_events, (size_t)total * sizeof(*p));
        if (p == NULL)
            return NULL;
        ap->offer_events = p;
        ap->offer_cap = total;
    }
    int m = 0;
    for (int i = 0; i < n; i++) {
        const sb_append_t *a = ap->batch[i];
        int row = ap->row_of[i];
        if (PQgetvalue(res, row, 2)[0] != 't')
            continue;
        int64_t v = field_int(res, row, 1);
        for (int k = 0; k < a->nevents; k++) {
            const sb_new_event_t *ne = &a->events[k];
            int64_t pos = field_int(res, row + k, 3);
            if (m > 0 && pos != ap->offer_events[m - 1].position + 1)
                return NULL;
            ap->offer_events[m++] = (sb_event_t){
                .position = pos,
                .version = v + k + 1,
                .recorded_at_us = field_int(res, row + k, 4),
                .stream = a->stream,
                .type = ne->type,
                .has_workspace = a->has_workspace,
                .workspace = a->workspace,
                .payload = ne->payload,
                .payload_len = ne->payload_len,
                .metadata = ne->metadata_len > 0 ? ne->metadata : empty_map,
                .metadata_len = ne->metadata_len > 0 ? ne->metadata_len : 1,
            };
        }
    }
    return m > 0 ? sb_batch_copy(ap->offer_events[0].position - 1, ap->offer_events, m) : NULL;
}

static void offer_committed(sb_appender_t *ap, PGresult *res, int n)
{
    int total = PQntuples(res) - n; /* one row per stored event, one per command that stored none */
    for (int i = 0; i < n; i++)
        if (PQgetvalue(res, ap->row_of[i], 2)[0] == 't')
            total++;
    if (total == 0)
        return; /* nothing stored (conflicts only): nothing to follow */
    sb_follower_offer(ap->follower, offerable(ap, res, n, total)); /* NULL: it reads the log */
}

static void on_batch_done(sb_pg_req_t *req, int status)
{
    sb_appender_t *ap = req->data;
    int n = ap->nbatch;
    ap->in_flight = false;
    ap->nbatch = 0;
    PGresult *res = status == 0 ? req->results[1] : NULL;
    if (status == 0 && (res == NULL || !parse_answer(ap, res, n))) {
        sb_log_error("append", "batch answered %d unexpected rows for %d commands", res ? PQntuples(res) : -1,
                     n);
        status = SB_EUNKNOWN;
    }
    /* Before the turn passes on, so that this batch's offer reaches the follower before the next
     * one's (out of order, the later one would make it read the log). */
    if (ap->follower != NULL) {
        if (status == 0)
            offer_committed(ap, res, n);
        else
            sb_follower_offer(ap->follower, NULL); /* it may have committed: read to find out */
    }
    give_turn(true);
    if (status == SB_EDB && n > 1) {
        /* Find the culprit: requeue everything at the front, to go one per transaction. */
        sb_log_warn("append", "batch of %d failed (%s: %s); retrying one command per transaction", n,
                    req->sqlstate ? req->sqlstate : "?", req->error ? req->error : "?");
        for (int i = n - 1; i >= 0; i--) {
            sb_append_t *a = ap->batch[i];
            a->_next = ap->queue_head;
            ap->queue_head = a;
            if (ap->queue_tail == NULL)
                ap->queue_tail = a;
            ap->nqueued++;
        }
        ap->solo_mode = true;
        ap->solo_left = n;
        kick(ap);
        return;
    }
    for (int i = 0; i < n; i++) {
        sb_append_t *a = ap->batch[i];
        if (status != 0) {
            a->error = req->error;
            complete(ap, a, status);
            continue;
        }
        int row = ap->row_of[i];
        int64_t v = field_int(res, row, 1);
        bool ok = PQgetvalue(res, row, 2)[0] == 't';
        a->error = NULL;
        if (ok) {
            a->first_position = field_int(res, row, 3);
            a->last_position = field_int(res, row + a->nevents - 1, 3);
            a->version = v + a->nevents;
            a->recorded_at_us = 0; /* the latest of its events' */
            for (int k = 0; k < a->nevents; k++) {
                int64_t at = field_int(res, row + k, 4);
                if (at > a->recorded_at_us)
                    a->recorded_at_us = at;
            }
            complete(ap, a, 0);
        } else {
            a->version = v;
            complete(ap, a, SB_ECONFLICT);
        }
    }
    if (ap->closing && !ap->in_flight) {
        kick(ap);
        return;
    }
    if (ap->nqueued > 0)
        kick(ap);
}

static void on_pg_closed(void *data);

static void on_idle(uv_idle_t *h)
{
    sb_appender_t *ap = h->data;
    uv_idle_stop(&ap->idle);
    while (ap->failed_head != NULL) {
        sb_append_t *a = ap->failed_head;
        ap->failed_head = a->_next;
        if (ap->failed_head == NULL)
            ap->failed_tail = NULL;
        a->_next = NULL;
        complete(ap, a, a->version < 0 ? (int)a->version : SB_EINVAL);
    }
    if (ap->closing) {
        while (ap->queue_head != NULL) {
            sb_append_t *a = ap->queue_head;
            ap->queue_head = a->_next;
            a->_next = NULL;
            a->error = "shutting down";
            complete(ap, a, SB_ESHUTDOWN);
        }
        ap->queue_tail = NULL;
        ap->nqueued = 0;
        leave_turns(ap);
        if (!ap->in_flight && ap->pg != NULL) {
            sb_pg_t *pg = ap->pg;
            ap->pg = NULL;
            sb_pg_close(pg, on_pg_closed, ap);
        }
        return;
    }
    if (ap->in_flight || ap->queue_head == NULL) {
        drop_turn(ap); /* cannot happen (a waiter has commands and none in flight): never keep one */
        return;
    }
    if (take_turn(ap))
        send_batch(ap);
}

static void on_turn(sb_wake_t *w)
{
    on_idle(&((sb_appender_t *)w->data)->idle);
}

/* Sends on the next loop iteration, after everything decided in this turn has been queued. */
static void kick(sb_appender_t *ap)
{
    uv_idle_start(&ap->idle, on_idle);
}

void sb_append(sb_appender_t *ap, sb_append_t *a)
{
    a->_next = NULL;
    a->_submitted_ns = 0;
    a->error = NULL;
    a->first_position = a->last_position = 0;
    int r = ap->closing ? SB_ESHUTDOWN : validate(a);
    if (r != 0) {
        a->version = r; /* carries the code to on_idle */
        if (ap->failed_tail)
            ap->failed_tail->_next = a;
        else
            ap->failed_head = a;
        ap->failed_tail = a;
        kick(ap);
        return;
    }
    a->version = 0;
    if (ap->queue_tail)
        ap->queue_tail->_next = a;
    else
        ap->queue_head = a;
    ap->queue_tail = a;
    ap->nqueued++;
    if (!ap->in_flight)
        kick(ap);
}

static void free_unopened(sb_wake_t *w)
{
    sb_appender_t *ap = w->data;
    free(ap->row_of);
    free(ap->batch);
    free(ap);
}

sb_appender_t *sb_appender_open(uv_loop_t *loop, const char *conninfo)
{
    uv_once(&turn_once, turn_init);
    sb_appender_t *ap = calloc(1, sizeof(*ap));
    if (ap == NULL)
        return NULL;
    ap->batch = calloc(MAX_BATCH_COMMANDS, sizeof(*ap->batch));
    ap->row_of = calloc(MAX_BATCH_COMMANDS, sizeof(*ap->row_of));
    ap->turn_wake.data = ap;
    if (ap->batch == NULL || ap->row_of == NULL || sb_wake_init(loop, &ap->turn_wake, on_turn) != 0) {
        free(ap->row_of);
        free(ap->batch);
        free(ap);
        return NULL;
    }
    ap->pg = sb_pg_open(loop, conninfo, "appender");
    if (ap->pg == NULL) {
        sb_wake_close(&ap->turn_wake, free_unopened); /* frees ap once the loop has closed it */
        return NULL;
    }
    ap->loop = loop;
    ap->gen = 1;
    ap->notify_values[0] = "";
    for (int p = 0; p < NPARAMS; p++)
        sb_pg_array_begin(&ap->arr[p], array_oids[p]);
    uv_idle_init(loop, &ap->idle);
    ap->idle.data = ap;
    uv_unref(sb_wake_handle(&ap->turn_wake)); /* wakes the loop, never keeps it alive */
    return ap;
}

static void on_idle_closed(uv_handle_t *h)
{
    sb_appender_t *ap = h->data;
    void (*cb)(void *) = ap->on_closed;
    void *data = ap->closed_data;
    for (int p = 0; p < NPARAMS; p++)
        sb_pg_array_free(&ap->arr[p]);
    free(ap->offer_events);
    free(ap->row_of);
    free(ap->batch);
    free(ap);
    if (cb)
        cb(data);
}

static void on_wake_closed(sb_wake_t *w)
{
    sb_appender_t *ap = w->data;
    uv_close((uv_handle_t *)&ap->idle, on_idle_closed);
}

static void on_pg_closed(void *data)
{
    sb_appender_t *ap = data;
    leave_turns(ap); /* nobody hands it a turn from now on: its wake-up can close */
    sb_wake_close(&ap->turn_wake, on_wake_closed);
}

void sb_appender_close(sb_appender_t *ap, void (*on_closed)(void *data), void *data)
{
    if (ap->closing)
        return;
    ap->closing = true;
    ap->on_closed = on_closed;
    ap->closed_data = data;
    kick(ap);
}

void sb_appender_set_follower(sb_appender_t *ap, sb_follower_t *f)
{
    ap->follower = f;
    ap->notify_values[0] = f != NULL ? sb_follower_origin(f) : "";
}

void sb_appender_get_stats(const sb_appender_t *ap, sb_appender_stats_t *out)
{
    *out = ap->stats;
    out->queued = ap->nqueued;
    uv_mutex_lock(&turn_lock);
    out->process_in_flight_max = turn_in_flight_max;
    uv_mutex_unlock(&turn_lock);
}
