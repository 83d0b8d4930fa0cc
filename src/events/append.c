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
    "  SELECT t.s, t.e, t.w, t.k, t.i"
    "  FROM unnest($1::text[], $2::int8[], $3::uuid[], $9::int8[]) WITH ORDINALITY AS t(s, e, w, k, i)"
    "), cur AS ("
    "  SELECT c.i, c.s, c.e, c.w,"
    "         COALESCE(c.k, (SELECT max(ev.version) FROM events ev WHERE ev.stream = c.s), 0) AS v"
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

enum { P_STREAMS, P_EXPECTED, P_WS, P_CMD, P_IDX, P_TYPES, P_PAYLOADS, P_META, P_KNOWN, NPARAMS };

/* The appenders of one process that write to the same database share one queue (a group): a
 * command any of them takes joins the next batch, whichever appender sends it, so the process
 * commits one batch at a time holding everything that arrived meanwhile, from every loop.
 *
 * Why one queue: the log's lock serialises commits anyway, so a second batch in flight would only
 * wait for it inside PostgreSQL, holding commands that could have joined one larger commit; and
 * with a queue per loop that took turns, a loop's commands waited for the other loops' batches
 * before their own (two commit cycles rather than one and a half, at the same batch size).
 *
 * Who sends: the group's sender.  An appender that queues a command while there is none becomes
 * it and sends on its loop's next iteration; when its batch returns it sends the next one at once
 * if commands are waiting (so PostgreSQL is not left idle while the loop answers the commands),
 * else the group has no sender until the next command.  A closing sender hands the role to another
 * member.  A command is called back on its own appender's loop: the sender posts the others'
 * outcomes to their owners (done lists, woken through sb_wake). */
typedef struct group_s group_t;
struct group_s {
    group_t *next;
    char *conninfo;
    uv_mutex_t lock;
    /* under lock */
    sb_append_t *head, *tail; /* waiting commands, in the order they were queued */
    sb_appender_t *sender;    /* sends the next batch; NULL: none until a command comes */
    sb_appender_t *members;   /* open appenders (sb_appender_open until their connection closed) */
    bool solo_mode;           /* after a whole-batch failure: one command per transaction a while */
    bool recheck;             /* the next batch reads every version (see known_version) */
    int solo_left;
    int in_flight, in_flight_max; /* batches sent and not yet returned */
};

static uv_once_t groups_once = UV_ONCE_INIT;
static uv_mutex_t groups_lock;
static group_t *groups;

struct sb_appender_s {
    uv_loop_t *loop;
    sb_pg_t *pg;
    group_t *g;
    uv_idle_t idle;
    sb_append_t *failed_head, *failed_tail; /* rejected before queueing: called back next tick */
    sb_append_t **batch;
    int nbatch;
    bool checked; /* the batch in flight reads every command's version (see known_version) */
    bool in_flight;
    uint64_t sent_ns; /* when the batch in flight was sent (uv_hrtime) */
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
    sb_wake_t wake; /* outcomes posted here, or the sender's role handed over */
    /* under g->lock */
    sb_appender_t *g_next;              /* the group's members */
    int nqueued;                        /* own commands in the group's queue */
    int outstanding;                    /* own commands in a batch, not yet called back */
    sb_append_t *done_head, *done_tail; /* own commands another member's batch carried */
    /* sb_appender_set_follower: committed batches go to it; the NOTIFY carries its origin */
    sb_follower_t *follower;
    const char *notify_values[1];
    sb_event_t *offer_events;
    int offer_cap;
    int *row_of; /* the batch's commands' first rows in the answer (see parse_answer) */
};

static void groups_init(void)
{
    if (uv_mutex_init(&groups_lock) != 0)
        abort();
}

/* The group of conninfo's appenders, ap its new member; NULL on allocation failure. */
static group_t *group_join(sb_appender_t *ap, const char *conninfo)
{
    uv_once(&groups_once, groups_init);
    uv_mutex_lock(&groups_lock);
    group_t *g = groups;
    while (g != NULL && strcmp(g->conninfo, conninfo) != 0)
        g = g->next;
    if (g == NULL && (g = calloc(1, sizeof(*g))) != NULL) {
        if ((g->conninfo = strdup(conninfo)) == NULL || uv_mutex_init(&g->lock) != 0) {
            free(g->conninfo);
            free(g);
            g = NULL;
        } else {
            g->next = groups;
            groups = g;
        }
    }
    if (g != NULL) {
        uv_mutex_lock(&g->lock);
        ap->g_next = g->members;
        g->members = ap;
        uv_mutex_unlock(&g->lock);
    }
    uv_mutex_unlock(&groups_lock);
    return g;
}

/* ap leaves its group for good (nothing of its is queued, in flight or to be called back); the
 * group itself stays, for the process's next appenders to the same database. */
static void group_leave(sb_appender_t *ap)
{
    group_t *g = ap->g;
    uv_mutex_lock(&g->lock);
    sb_appender_t **pp = &g->members;
    while (*pp != NULL && *pp != ap)
        pp = &(*pp)->g_next;
    if (*pp == ap)
        *pp = ap->g_next;
    if (g->sender == ap)
        g->sender = NULL;
    uv_mutex_unlock(&g->lock);
}

/* Under g->lock: the sender's role goes to an open member other than ap if commands wait (woken to
 * send them), else to nobody. */
static void hand_over_locked(group_t *g, sb_appender_t *ap)
{
    g->sender = NULL;
    if (g->head == NULL)
        return;
    for (sb_appender_t *m = g->members; m != NULL; m = m->g_next)
        if (m != ap && !m->closing) {
            g->sender = m;
            sb_wake_send(&m->wake);
            return;
        }
}

const uint32_t sb_append_latency_bounds_us[SB_APPEND_LATENCY_BUCKETS] = {
    500, 1000, 2000, 5000, 10000, 20000, 50000, 100000, 250000, 500000, 1000000, 2500000};

static const uint32_t array_oids[NPARAMS] = {SB_OID_TEXT,  SB_OID_INT8,  SB_OID_UUID,
                                             SB_OID_INT4,  SB_OID_INT4,  SB_OID_TEXT,
                                             SB_OID_BYTEA, SB_OID_BYTEA, SB_OID_INT8};

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

/* Under g->lock: takes *pp out of the group's queue (prev: the command before it, NULL at its
 * head). */
static sb_append_t *unlink_locked(group_t *g, sb_append_t **pp, sb_append_t *prev)
{
    sb_append_t *a = *pp;
    *pp = a->_next;
    if (g->tail == a)
        g->tail = prev;
    a->_next = NULL;
    return a;
}

/* Under g->lock: the next batch from the group's queue into ap->batch.  Commands go in order, but
 * at most one per stream: a second command for a stream waits for the next batch so that its
 * version check sees the first one's events, and everything behind it for that stream waits too,
 * which keeps each stream's commands in order. */
static void take_batch_locked(sb_appender_t *ap)
{
    group_t *g = ap->g;
    ap->gen++;
    if (ap->gen == 0) {
        memset(ap->seen_gen, 0, sizeof(ap->seen_gen));
        ap->gen = 1;
    }
    int limit = g->solo_mode ? 1 : MAX_BATCH_COMMANDS;
    size_t bytes = 0;
    ap->nbatch = 0;
    sb_append_t **pp = &g->head;
    sb_append_t *prev = NULL;
    while (*pp != NULL && ap->nbatch < limit && bytes < MAX_BATCH_BYTES) {
        sb_append_t *a = *pp;
        if (!mark_stream(ap, a->stream)) {
            prev = a;
            pp = &a->_next;
            continue;
        }
        unlink_locked(g, pp, prev);
        a->_owner->nqueued--;
        a->_owner->outstanding++;
        ap->batch[ap->nbatch++] = a;
        bytes += command_bytes(a);
    }
    ap->checked = g->solo_mode || g->recheck;
    if (ap->nbatch > 0) {
        g->recheck = false;
        if (g->solo_mode && --g->solo_left <= 0)
            g->solo_mode = false;
    }
}

/* Known versions.  A command's version check reads the stream's version (an index probe and a heap
 * visit, a fifth of the appender's work in a profile).  When the stream is known to be at least at
 * the expected version — a new stream (SB_VERSION_NO_STREAM), or sb_append_t.expected_known —
 * the check is left to the log's unique (stream, version) key instead: the next event's version is
 * then free exactly when nobody appended since.  A taken version fails the whole batch (a unique
 * violation), which then goes again with every version read, so that the command that lost gets
 * its conflict and the others are stored.  Returns the version to assume, or -1 to read it. */
static int64_t known_version(const sb_appender_t *ap, const sb_append_t *a)
{
    if (ap->checked)
        return -1;
    if (a->expected_version == SB_VERSION_NO_STREAM || (a->expected_known && a->expected_version > 0))
        return a->expected_version;
    return -1;
}

/* Sends the next batch when ap is the group's sender, has none in flight and commands wait; a
 * sender with nothing to send gives the role up, a closing one hands it over. */
static void try_send(sb_appender_t *ap)
{
    group_t *g = ap->g;
    if (ap->in_flight || ap->pg == NULL)
        return;
    uv_mutex_lock(&g->lock);
    if (g->sender != ap) {
        uv_mutex_unlock(&g->lock);
        return;
    }
    if (ap->closing) {
        hand_over_locked(g, ap);
        uv_mutex_unlock(&g->lock);
        return;
    }
    take_batch_locked(ap);
    if (ap->nbatch == 0) {
        g->sender = NULL;
        uv_mutex_unlock(&g->lock);
        return;
    }
    if (++g->in_flight > g->in_flight_max)
        g->in_flight_max = g->in_flight;
    uv_mutex_unlock(&g->lock);

    for (int p = 0; p < NPARAMS; p++)
        sb_pg_array_begin(&ap->arr[p], array_oids[p]);
    for (int i = 0; i < ap->nbatch; i++) {
        sb_append_t *a = ap->batch[i];
        int ci = i + 1;
        sb_pg_array_add(&ap->arr[P_STREAMS], a->stream, (int32_t)strlen(a->stream));
        sb_pg_array_add_int8(&ap->arr[P_EXPECTED], a->expected_version);
        int64_t known = known_version(ap, a);
        if (known >= 0)
            sb_pg_array_add_int8(&ap->arr[P_KNOWN], known);
        else
            sb_pg_array_add(&ap->arr[P_KNOWN], NULL, -1);
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
    ap->sent_ns = uv_hrtime();
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

/* Records command i's outcome in it, for its callback (which may run on another loop, after this
 * batch's results are gone: a failure's message is copied for those). */
static void set_outcome(sb_appender_t *ap, int i, PGresult *res, sb_pg_req_t *req, int status)
{
    sb_append_t *a = ap->batch[i];
    a->error = NULL;
    if (status != 0) {
        a->_status = status;
        if (req->error != NULL && a->_owner != ap) {
            a->_error_copy = strdup(req->error);
            a->error = a->_error_copy != NULL ? a->_error_copy : "database error";
        } else {
            a->error = req->error;
        }
        return;
    }
    int row = ap->row_of[i];
    int64_t v = field_int(res, row, 1);
    if (PQgetvalue(res, row, 2)[0] != 't') {
        a->version = v;
        a->_status = SB_ECONFLICT;
        return;
    }
    a->first_position = field_int(res, row, 3);
    a->last_position = field_int(res, row + a->nevents - 1, 3);
    a->version = v + a->nevents;
    a->recorded_at_us = 0; /* the latest of its events' */
    for (int k = 0; k < a->nevents; k++) {
        int64_t at = field_int(res, row + k, 4);
        if (at > a->recorded_at_us)
            a->recorded_at_us = at;
    }
    a->_status = 0;
}

/* Calls back one of ap's own commands, on ap's loop. */
static void finish_command(sb_appender_t *ap, sb_append_t *a)
{
    char *copy = a->_error_copy;
    a->_next = NULL;
    a->_error_copy = NULL;
    complete(ap, a, a->_status);
    free(copy);
}

/* One clock read per batch, not per command. */
static void count_latency(sb_appender_t *ap)
{
    uint64_t us = (uv_hrtime() - ap->sent_ns) / 1000;
    int k = 0;
    while (k < SB_APPEND_LATENCY_BUCKETS && us > sb_append_latency_bounds_us[k])
        k++;
    ap->stats.commit_latency[k]++;
    ap->stats.commit_latency_sum_us += us;
}

static void on_batch_done(sb_pg_req_t *req, int status)
{
    sb_appender_t *ap = req->data;
    group_t *g = ap->g;
    int n = ap->nbatch;
    ap->in_flight = false;
    count_latency(ap);
    PGresult *res = status == 0 ? req->results[1] : NULL;
    if (status == 0 && (res == NULL || !parse_answer(ap, res, n))) {
        sb_log_error("append", "batch answered %d unexpected rows for %d commands", res ? PQntuples(res) : -1,
                     n);
        status = SB_EUNKNOWN;
    }
    /* Before the next batch goes, so that the follower takes this one's offer first (out of
     * order, the later one would make it read the log). */
    if (ap->follower != NULL) {
        if (status == 0)
            offer_committed(ap, res, n);
        else
            sb_follower_offer(ap->follower, NULL); /* it may have committed: read to find out */
    }
    /* A version assumed known was taken (see known_version): the batch goes again, reading every
     * version.  Any other failure of a batch: one command per transaction, to find the culprit. */
    bool recheck =
        status == SB_EDB && !ap->checked && req->sqlstate != NULL && strcmp(req->sqlstate, "23505") == 0;
    bool retry = recheck || (status == SB_EDB && n > 1);
    if (recheck)
        ap->stats.rechecks++;
    else if (retry)
        sb_log_warn("append", "batch of %d failed (%s: %s); retrying one command per transaction", n,
                    req->sqlstate ? req->sqlstate : "?", req->error ? req->error : "?");
    if (!retry)
        for (int i = 0; i < n; i++)
            set_outcome(ap, i, res, req, status);

    /* The outcomes go to their owners: ap's own are called back below, the others posted. */
    sb_append_t *mine = NULL, **mine_tail = &mine;
    uv_mutex_lock(&g->lock);
    g->in_flight--;
    if (retry) {
        /* Everything back at the front of the queue, to go again. */
        for (int i = n - 1; i >= 0; i--) {
            sb_append_t *a = ap->batch[i];
            a->_next = g->head;
            g->head = a;
            if (g->tail == NULL)
                g->tail = a;
            a->_owner->nqueued++;
            a->_owner->outstanding--;
        }
        if (recheck) {
            g->recheck = true;
        } else {
            g->solo_mode = true;
            g->solo_left = n;
        }
    } else {
        for (int i = 0; i < n; i++) {
            sb_append_t *a = ap->batch[i];
            sb_appender_t *owner = a->_owner;
            owner->outstanding--;
            a->_next = NULL;
            if (owner == ap) {
                *mine_tail = a;
                mine_tail = &a->_next;
                continue;
            }
            if (owner->done_tail != NULL) {
                owner->done_tail->_next = a;
            } else {
                owner->done_head = a;
                sb_wake_send(&owner->wake); /* under the lock: the owner cannot be closing it */
            }
            owner->done_tail = a;
        }
    }
    /* Commands waiting: the next batch goes at once, while this loop calls these back. */
    bool again = g->head != NULL && !ap->closing;
    if (!again)
        hand_over_locked(g, ap);
    uv_mutex_unlock(&g->lock);
    ap->nbatch = 0;
    if (again)
        try_send(ap);
    while (mine != NULL) {
        sb_append_t *next = mine->_next;
        finish_command(ap, mine);
        mine = next;
    }
    if (ap->closing)
        kick(ap);
}

static void on_pg_closed(void *data);

/* A closing appender fails its queued commands, and closes its connection once nothing of its is
 * in flight or still to be called back. */
static void close_step(sb_appender_t *ap)
{
    group_t *g = ap->g;
    sb_append_t *mine = NULL, **mine_tail = &mine;
    uv_mutex_lock(&g->lock);
    sb_append_t **pp = &g->head, *prev = NULL;
    while (*pp != NULL) {
        if ((*pp)->_owner == ap) {
            *mine_tail = unlink_locked(g, pp, prev);
            mine_tail = &(*mine_tail)->_next;
        } else {
            prev = *pp;
            pp = &prev->_next;
        }
    }
    ap->nqueued = 0;
    if (g->sender == ap && !ap->in_flight)
        hand_over_locked(g, ap);
    bool idle = !ap->in_flight && ap->outstanding == 0 && ap->done_head == NULL;
    uv_mutex_unlock(&g->lock);
    while (mine != NULL) {
        sb_append_t *next = mine->_next;
        mine->_next = NULL;
        mine->error = "shutting down";
        complete(ap, mine, SB_ESHUTDOWN);
        mine = next;
    }
    if (idle && ap->pg != NULL) {
        sb_pg_t *pg = ap->pg;
        ap->pg = NULL;
        sb_pg_close(pg, on_pg_closed, ap);
    }
}

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
    if (ap->closing)
        close_step(ap);
    else
        try_send(ap);
}

/* Outcomes another member's batch carried, or the sender's role handed over. */
static void on_wake(sb_wake_t *w)
{
    sb_appender_t *ap = w->data;
    uv_mutex_lock(&ap->g->lock);
    sb_append_t *a = ap->done_head;
    ap->done_head = ap->done_tail = NULL;
    uv_mutex_unlock(&ap->g->lock);
    while (a != NULL) {
        sb_append_t *next = a->_next;
        finish_command(ap, a);
        a = next;
    }
    if (ap->closing)
        kick(ap);
    else
        try_send(ap);
}

/* Runs on the next loop iteration, after everything decided in this one has been queued. */
static void kick(sb_appender_t *ap)
{
    uv_idle_start(&ap->idle, on_idle);
}

void sb_append(sb_appender_t *ap, sb_append_t *a)
{
    a->_next = NULL;
    a->_owner = ap;
    a->_error_copy = NULL;
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
    group_t *g = ap->g;
    uv_mutex_lock(&g->lock);
    if (g->tail)
        g->tail->_next = a;
    else
        g->head = a;
    g->tail = a;
    ap->nqueued++;
    bool send = g->sender == NULL;
    if (send)
        g->sender = ap;
    uv_mutex_unlock(&g->lock);
    if (send)
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
    sb_appender_t *ap = calloc(1, sizeof(*ap));
    if (ap == NULL)
        return NULL;
    ap->batch = calloc(MAX_BATCH_COMMANDS, sizeof(*ap->batch));
    ap->row_of = calloc(MAX_BATCH_COMMANDS, sizeof(*ap->row_of));
    ap->wake.data = ap;
    if (ap->batch == NULL || ap->row_of == NULL || sb_wake_init(loop, &ap->wake, on_wake) != 0)
        goto fail;
    uv_unref(sb_wake_handle(&ap->wake)); /* wakes the loop, never keeps it alive */
    ap->pg = sb_pg_open(loop, conninfo, "appender");
    if (ap->pg == NULL || (ap->g = group_join(ap, conninfo)) == NULL)
        goto fail_wake;
    ap->loop = loop;
    ap->gen = 1;
    ap->notify_values[0] = "";
    for (int p = 0; p < NPARAMS; p++)
        sb_pg_array_begin(&ap->arr[p], array_oids[p]);
    uv_idle_init(loop, &ap->idle);
    ap->idle.data = ap;
    return ap;

fail_wake:
    if (ap->pg != NULL)
        sb_pg_close(ap->pg, NULL, NULL);
    sb_wake_close(&ap->wake, free_unopened); /* frees ap once the loop has closed it */
    return NULL;
fail:
    free(ap->row_of);
    free(ap->batch);
    free(ap);
    return NULL;
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
    group_leave(ap); /* nobody wakes it from now on: its wake-up can close */
    sb_wake_close(&ap->wake, on_wake_closed);
}

void sb_appender_close(sb_appender_t *ap, void (*on_closed)(void *data), void *data)
{
    if (ap->closing)
        return;
    uv_mutex_lock(&ap->g->lock); /* members read it when they hand the sender's role over */
    ap->closing = true;
    uv_mutex_unlock(&ap->g->lock);
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
    uv_mutex_lock(&ap->g->lock);
    out->queued = ap->nqueued;
    out->process_in_flight_max = ap->g->in_flight_max;
    uv_mutex_unlock(&ap->g->lock);
}
