/* The follower publishes what its own process's appenders commit as they hand it over (follow.h,
 * sb_follower_offer; append.h, sb_appender_set_follower), without reading it back, and every
 * subscriber still gets exactly the log: the same events, byte for byte (positions, versions,
 * recorded_at, workspace, payload, metadata), once, in order.  Also when something the appender did
 * not write lies between two of its batches: another process's append (its NOTIFY has no origin),
 * or positions a rolled-back transaction drew; the follower must then read the log. */
#include "core/clock.h"
#include "core/loop.h"
#include "core/uuid.h"
#include "events/append.h"
#include "events/follow.h"
#include "events/stream.h"
#include "sbtest.h"
#include "testdb.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WAIT_MS 10000
#define MAXSEEN 256
#define NCMD 6

static sb_loop_t loop;
static sb_follower_t *f;
static sb_appender_t *ap;
static sb_pg_t *pg;
static PGconn *db;
static uv_timer_t timer;
static const char *conninfo;

static char *seen[MAXSEEN];
static int nseen;
static int64_t sub_position;

typedef struct {
    sb_append_t a;
    sb_new_event_t ev[3];
    char stream[SB_STREAM_NAME_MAX];
    int status;
} cmd_t;

static cmd_t cmds[NCMD];
static int pending;
static uint64_t deadline;

static const char payload1[] = {(char)0x81, (char)0xa1, 'x', 0x01};
static const char payload2[] = {(char)0x81, (char)0xa1, 'y', (char)0xa3, 'a', 'b', 'c'};
static const char meta[] = {(char)0x81, (char)0xa1, 's', (char)0xa4, 't', 'e', 's', 't'};

static void hex(char *out, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", (unsigned char)p[i]);
    out[2 * n] = '\0';
}

/* One event as a line, the same shape as the log's rows in log_lines(). */
static char *event_line(const sb_event_t *e)
{
    char ws[SB_UUID_STRLEN + 1] = "";
    if (e->has_workspace)
        sb_uuid_format(&e->workspace, ws);
    char *ph = malloc(2 * e->payload_len + 1), *mh = malloc(2 * e->metadata_len + 1);
    hex(ph, e->payload, e->payload_len);
    hex(mh, e->metadata, e->metadata_len);
    char *line = NULL;
    if (asprintf(&line, "%" PRId64 "|%" PRId64 "|%s|%s|%s|%s|%s|%" PRId64, e->position, e->version, e->stream,
                 e->type, ws, ph, mh, e->recorded_at_us) < 0)
        line = NULL;
    free(ph);
    free(mh);
    return line;
}

static void on_events(sb_sub_t *s, const sb_event_t *ev, int n, void *data)
{
    (void)data;
    for (int i = 0; i < n; i++)
        if (nseen < MAXSEEN)
            seen[nseen++] = event_line(&ev[i]);
    sub_position = sb_sub_position(s);
}

static void on_done(sb_append_t *a, int status)
{
    cmd_t *c = a->data;
    c->status = status;
    if (--pending == 0)
        uv_stop(&loop.uv);
}

static int64_t want_position;
static bool want_head;
static bool (*want)(void); /* else the above */

static void on_tick(uv_timer_t *t)
{
    (void)t;
    bool done = want != NULL ? want() : want_head ? sb_follower_head(f) >= 0 : sub_position >= want_position;
    if (done || sb_clock_mono_ns() / 1000000 > deadline)
        uv_stop(&loop.uv);
}

/* Runs the loop until the condition on_tick checks holds (or the deadline passes). */
static void run_until(void)
{
    deadline = sb_clock_mono_ns() / 1000000 + WAIT_MS;
    uv_timer_start(&timer, on_tick, 5, 5);
    uv_run(&loop.uv, UV_RUN_DEFAULT);
    uv_timer_stop(&timer);
}

static int64_t max_position(void)
{
    PGresult *r = PQexec(db, "SELECT coalesce(max(position), 0) FROM events");
    int64_t p = PQresultStatus(r) == PGRES_TUPLES_OK ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : -1;
    PQclear(r);
    return p;
}

static void exec_ok(const char *sql)
{
    PGresult *r = PQexec(db, sql);
    if (!CHECK(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK))
        fprintf(stderr, "%s: %s", sql, PQerrorMessage(db));
    PQclear(r);
}

/* A batch of NCMD commands in one loop turn: new streams of one to three events, every other one in
 * a workspace, some with metadata; waits for every callback. */
static void append_batch(void)
{
    sb_uuid_t ws;
    sb_uuid_v4(&ws);
    for (int i = 0; i < NCMD; i++) {
        cmd_t *c = &cmds[i];
        memset(c, 0, sizeof(*c));
        sb_uuid_t id;
        sb_uuid_v7(&id);
        sb_stream_format(i % 2 ? "thing" : "other", &id, c->stream);
        int n = 1 + i % 3;
        for (int k = 0; k < n; k++)
            c->ev[k] = (sb_new_event_t){k % 2 ? "ThingChanged" : "ThingMade", k % 2 ? payload2 : payload1,
                                        k % 2 ? sizeof(payload2) : sizeof(payload1), i % 3 == 1 ? meta : NULL,
                                        i % 3 == 1 ? sizeof(meta) : 0};
        c->a.stream = c->stream;
        c->a.expected_version = SB_VERSION_NO_STREAM;
        c->a.has_workspace = i % 2 == 0;
        c->a.workspace = ws;
        c->a.events = c->ev;
        c->a.nevents = n;
        c->a.cb = on_done;
        c->a.data = c;
    }
    pending = NCMD;
    for (int i = 0; i < NCMD; i++)
        sb_append(ap, &cmds[i].a);
    uv_run(&loop.uv, UV_RUN_DEFAULT);
    for (int i = 0; i < NCMD; i++)
        CHECK_EQ_INT(cmds[i].status, 0);
}

/* Waits until the subscriber has reached the log's end. */
static void wait_delivered(void)
{
    want_head = false;
    want_position = max_position();
    run_until();
    CHECK_EQ_INT(sub_position, want_position);
}

/* The log after `after`, line by line as event_line() writes them, compared with what was seen. */
static void check_seen_is_log(int64_t after)
{
    char q[512];
    snprintf(q, sizeof(q),
             "SELECT position || '|' || version || '|' || stream || '|' || type || '|' || "
             "coalesce(workspace_id::text, '') || '|' || encode(payload, 'hex') || '|' || encode(metadata, "
             "'hex') || "
             "'|' || (extract(epoch FROM recorded_at) * 1000000)::int8 FROM events WHERE position > %" PRId64
             " ORDER BY position",
             after);
    PGresult *r = PQexec(db, q);
    if (!CHECK(PQresultStatus(r) == PGRES_TUPLES_OK)) {
        PQclear(r);
        return;
    }
    CHECK_EQ_INT(nseen, PQntuples(r));
    for (int i = 0; i < nseen && i < PQntuples(r); i++)
        if (!CHECK(seen[i] != NULL && strcmp(seen[i], PQgetvalue(r, i, 0)) == 0))
            fprintf(stderr, "event %d: seen %s, log %s\n", i, seen[i] ? seen[i] : "(null)",
                    PQgetvalue(r, i, 0));
    PQclear(r);
}

static void test_offers(void)
{
    /* The follower first learns the log's end (offers before that are read from the log). */
    want_head = true;
    run_until();
    int64_t start = sb_follower_head(f);
    CHECK(start >= 0);
    sb_sub_t *sub = sb_follower_subscribe(f, pg, start, NULL, on_events, NULL);
    CHECK(sub != NULL);
    sub_position = start;

    /* Three batches of this process's appender: published as handed over, none read back. */
    for (int b = 0; b < 3; b++) {
        append_batch();
        wait_delivered();
    }
    uint64_t published, read;
    sb_follower_offer_stats(f, &published, &read);
    CHECK_EQ_INT(published, 3);
    CHECK_EQ_INT(read, 0);

    /* Another process's append, then ours: a position between the head and our batch, which the
     * follower must read (its NOTIFY carries no origin). */
    exec_ok("BEGIN; SELECT sb_lock_log(); "
            "INSERT INTO events (stream, version, type, payload, metadata) "
            "VALUES ('item-' || gen_random_uuid(), 1, 'ItemAdded', '\\x80'::bytea, '\\x80'::bytea); "
            "SELECT pg_notify('sb_events', ''); COMMIT");
    append_batch();
    wait_delivered();

    /* Positions drawn by a transaction that rolled back: a gap before our next batch. */
    exec_ok(
        "BEGIN; INSERT INTO events (stream, version, type, payload, metadata) "
        "VALUES ('item-' || gen_random_uuid(), 1, 'ItemAdded', '\\x80'::bytea, '\\x80'::bytea); ROLLBACK");
    append_batch();
    wait_delivered();
    append_batch(); /* and back to offers */
    wait_delivered();

    uint64_t published2, read2;
    sb_follower_offer_stats(f, &published2, &read2);
    CHECK(read2 >= 1);               /* the gaps were read, not skipped */
    CHECK(published2 >= 4);          /* at least the last batch again as handed over */
    CHECK_EQ_INT(nseen, 6 * 12 + 1); /* six batches of 12 events, and the other process's one */
    check_seen_is_log(start);
    if (sub != NULL)
        sb_sub_close(sub);
}

static sb_follower_t *f2;
static int64_t sub2_position;

static void on_events2(sb_sub_t *s, const sb_event_t *ev, int n, void *data)
{
    (void)ev, (void)n, (void)data;
    sub2_position = sb_sub_position(s);
}

static bool alone(void)
{
    return !sb_follower_others(f);
}

static bool not_alone(void)
{
    return sb_follower_others(f) && sb_follower_others(f2);
}

static bool both_delivered(void)
{
    return sub_position >= want_position && sub2_position >= want_position;
}

/* No NOTIFY while no other process follows the log; one per batch as soon as another does. */
static void test_notify_only_for_others(void)
{
    sb_sub_t *sub = sb_follower_subscribe(f, pg, sb_follower_head(f), NULL, on_events, NULL);
    CHECK(sub != NULL);
    want = alone;
    run_until();
    CHECK(!sb_follower_others(f));
    sb_appender_stats_t st0, st1, st2;
    sb_appender_get_stats(ap, &st0);
    append_batch();
    want = NULL;
    wait_delivered();
    sb_appender_get_stats(ap, &st1);
    CHECK_EQ_INT(st1.batches, st0.batches + 1);
    CHECK_EQ_INT(st1.notifies, st0.notifies);

    /* Another follower (as another process's would be): both see each other within a second or so,
     * and from then on every batch notifies. */
    f2 = sb_follower_new(conninfo, 1);
    sb_pg_t *pg2 = sb_pg_open(&loop.uv, conninfo, "follow-offers-test-2");
    if (!CHECK(f2 != NULL && pg2 != NULL && sb_follower_start(f2, &loop) == 0))
        return;
    want = not_alone;
    run_until();
    CHECK(sb_follower_others(f));
    CHECK(sb_follower_others(f2));
    sb_sub_t *sub2 = sb_follower_subscribe(f2, pg2, max_position(), NULL, on_events2, NULL);
    append_batch();
    want = both_delivered;
    want_position = max_position();
    run_until();
    want = NULL;
    CHECK_EQ_INT(sub_position, want_position);
    CHECK_EQ_INT(sub2_position, want_position);
    sb_appender_get_stats(ap, &st2);
    CHECK_EQ_INT(st2.notifies, st1.notifies + 1);
    if (sub2 != NULL)
        sb_sub_close(sub2);
    if (sub != NULL)
        sb_sub_close(sub);
    sb_follower_stop(f2);
    sb_pg_close(pg2, NULL, NULL);
}

int main(void)
{
    char *ci = sbt_db_create("follow_offers");
    if (ci == NULL || sbt_db_migrate(ci) < 0)
        return 1;
    conninfo = ci;
    db = PQconnectdb(ci);
    sb_loop_init_standalone(&loop);
    sb_loop_set_current(&loop);
    uv_timer_init(&loop.uv, &timer);
    f = sb_follower_new(ci, 1);
    ap = sb_appender_open(&loop.uv, ci);
    pg = sb_pg_open(&loop.uv, ci, "follow-offers-test");
    if (!CHECK(f != NULL && ap != NULL && pg != NULL && sb_follower_start(f, &loop) == 0))
        return sbtest_summary();
    sb_appender_set_follower(ap, f);
    SBTEST_RUN(test_offers);
    SBTEST_RUN(test_notify_only_for_others);
    uv_close((uv_handle_t *)&timer, NULL);
    sb_appender_close(ap, NULL, NULL);
    sb_follower_stop(f);
    sb_pg_close(pg, NULL, NULL);
    sb_loop_close_standalone(&loop);
    sb_follower_free(f);
    sb_follower_free(f2);
    for (int i = 0; i < nseen; i++)
        free(seen[i]);
    PQfinish(db);
    sbt_db_drop("follow_offers");
    free(ci);
    return sbtest_summary();
}
