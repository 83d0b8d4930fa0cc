/* Appending and reading the log against PostgreSQL: per-command atomicity, conflicts inside one
 * batch, isolation of a failing command, validation, reads by stream and by filters, and two
 * appenders' commands sharing a batch. */
#include "core/clock.h"
#include "core/error.h"
#include "core/loop.h"
#include "core/uuid.h"
#include "events/append.h"
#include "events/read.h"
#include "events/stream.h"
#include "sbtest.h"
#include "testdb.h"

#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

#define MAXCMD 128

static sb_loop_t loop;
static sb_appender_t *ap, *ap2;
static sb_pg_t *pg;
static PGconn *db;
static const char *ci_global;

typedef struct {
    sb_append_t a;
    sb_new_event_t ev[SB_APPEND_MAX_EVENTS + 1];
    char stream[SB_STREAM_NAME_MAX];
    int status;
    bool done;
} cmd_t;

static cmd_t cmds[MAXCMD];
static int pending;

static const char payload[] = {(char)0x81, (char)0xa1, 'x', 0x01};

static void on_done(sb_append_t *a, int status)
{
    cmd_t *c = a->data;
    c->status = status;
    c->done = true;
    if (--pending == 0)
        uv_stop(&loop.uv);
}

static void new_stream(cmd_t *c, const char *category)
{
    sb_uuid_t id;
    sb_uuid_v7(&id);
    sb_stream_format(category, &id, c->stream);
}

/* Prepares command i on stream (copied) with n events of type, expecting version expected. */
static cmd_t *prep(int i, const char *stream, int n, const char *type, int64_t expected)
{
    cmd_t *c = &cmds[i];
    memset(c, 0, sizeof(*c));
    if (stream != NULL)
        snprintf(c->stream, sizeof(c->stream), "%s", stream);
    else
        new_stream(c, "thing");
    for (int k = 0; k < n && k <= SB_APPEND_MAX_EVENTS; k++)
        c->ev[k] = (sb_new_event_t){type, payload, sizeof(payload), NULL, 0};
    c->a.stream = c->stream;
    c->a.expected_version = expected;
    c->a.events = c->ev;
    c->a.nevents = n;
    c->a.cb = on_done;
    c->a.data = c;
    return c;
}

/* Submits commands 0..n-1 in one loop turn (so they share a batch) and waits for every answer. */
static void run(int n)
{
    pending = n;
    for (int i = 0; i < n; i++)
        sb_append(ap, &cmds[i].a);
    uv_run(&loop.uv, UV_RUN_DEFAULT);
}

static long count(const char *sql_where)
{
    char q[512];
    snprintf(q, sizeof(q), "SELECT count(*) FROM events WHERE %s", sql_where);
    PGresult *r = PQexec(db, q);
    long n = PQresultStatus(r) == PGRES_TUPLES_OK ? atol(PQgetvalue(r, 0, 0)) : -1;
    PQclear(r);
    return n;
}

static long count_stream(const char *stream)
{
    char w[128];
    snprintf(w, sizeof(w), "stream = '%.100s'", stream);
    return count(w);
}

static void test_append_and_conflict(void)
{
    cmd_t *c = prep(0, NULL, 2, "ThingMade", SB_VERSION_NO_STREAM);
    run(1);
    CHECK_EQ_INT(c->status, 0);
    CHECK_EQ_INT(c->a.version, 2);
    CHECK(c->a.first_position > 0 && c->a.last_position >= c->a.first_position);
    CHECK(c->a.recorded_at_us > 0);
    char stream[SB_STREAM_NAME_MAX];
    strcpy(stream, c->stream);

    /* A wrong expected version stores nothing and reports the current one. */
    long before = count("true");
    c = prep(0, stream, 1, "ThingChanged", 1);
    run(1);
    CHECK_EQ_INT(c->status, SB_ECONFLICT);
    CHECK_EQ_INT(c->a.version, 2);
    CHECK_EQ_INT(count("true"), before);

    /* "No stream" on an existing stream is a conflict too. */
    c = prep(0, stream, 1, "ThingChanged", SB_VERSION_NO_STREAM);
    run(1);
    CHECK_EQ_INT(c->status, SB_ECONFLICT);

    /* A three-event command that conflicts stores none of its three events. */
    c = prep(0, stream, 3, "ThingChanged", 5);
    run(1);
    CHECK_EQ_INT(c->status, SB_ECONFLICT);
    CHECK_EQ_INT(count_stream(stream), 2);

    /* The right version appends, contiguously. */
    c = prep(0, stream, 3, "ThingChanged", 2);
    run(1);
    CHECK_EQ_INT(c->status, 0);
    CHECK_EQ_INT(c->a.version, 5);
    CHECK_EQ_INT(c->a.last_position - c->a.first_position >= 2, 1);
    CHECK_EQ_INT(count_stream(stream), 5);

    /* Any version appends after whatever is there. */
    c = prep(0, stream, 1, "ThingChanged", SB_VERSION_ANY);
    run(1);
    CHECK_EQ_INT(c->status, 0);
    CHECK_EQ_INT(c->a.version, 6);
}

/* Many commands in one batch, every third one conflicting: the others all commit, in one
 * transaction. */
static void test_batch_with_conflicts(void)
{
    int n = 90;
    sb_appender_stats_t s0, s1;
    for (int i = 0; i < n; i++) {
        int64_t expected = i % 3 == 0 ? 7 : SB_VERSION_NO_STREAM; /* 7: these streams are new */
        prep(i, NULL, 1 + i % 3, "ThingMade", expected);
    }
    sb_appender_get_stats(ap, &s0);
    run(n);
    sb_appender_get_stats(ap, &s1);
    CHECK_EQ_INT((long)(s1.batches - s0.batches), 1);
    int ok = 0, conflicts = 0;
    for (int i = 0; i < n; i++) {
        if (i % 3 == 0) {
            CHECK_EQ_INT(cmds[i].status, SB_ECONFLICT);
            CHECK_EQ_INT(count_stream(cmds[i].stream), 0);
            conflicts++;
        } else {
            CHECK_EQ_INT(cmds[i].status, 0);
            CHECK_EQ_INT(count_stream(cmds[i].stream), 1 + i % 3);
            CHECK_EQ_INT(cmds[i].a.version, 1 + i % 3);
            ok++;
        }
    }
    CHECK_EQ_INT(ok, 60);
    CHECK_EQ_INT(conflicts, 30);

    /* Two commands for one stream in one turn: the second waits for the first's events, so both
     * succeed in order. */
    prep(0, NULL, 1, "ThingMade", SB_VERSION_NO_STREAM);
    prep(1, cmds[0].stream, 1, "ThingChanged", 1);
    run(2);
    CHECK_EQ_INT(cmds[0].status, 0);
    CHECK_EQ_INT(cmds[1].status, 0);
    CHECK_EQ_INT(cmds[1].a.version, 2);
}

/* A command the database refuses (here: a trigger that rejects one event type) fails alone: its
 * batch is retried one command per transaction. */
static void test_failing_command_isolated(void)
{
    PGresult *r =
        PQexec(db, "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS "
                   "$$ BEGIN IF NEW.type = 'Poisoned' THEN RAISE EXCEPTION 'poisoned event'; END IF; "
                   "RETURN NEW; END $$;"
                   "CREATE TRIGGER poison BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION poison()");
    CHECK(PQresultStatus(r) == PGRES_COMMAND_OK);
    PQclear(r);
    int n = 20;
    for (int i = 0; i < n; i++)
        prep(i, NULL, 2, i == 7 ? "Poisoned" : "ThingMade", SB_VERSION_NO_STREAM);
    run(n);
    for (int i = 0; i < n; i++) {
        if (i == 7) {
            CHECK_EQ_INT(cmds[i].status, SB_EDB);
            CHECK_EQ_INT(count_stream(cmds[i].stream), 0);
        } else {
            CHECK_EQ_INT(cmds[i].status, 0);
            CHECK_EQ_INT(count_stream(cmds[i].stream), 2);
        }
    }
    PQclear(PQexec(db, "DROP TRIGGER poison ON events; DROP FUNCTION poison()"));
}

/* Invalid commands fail with a clear code, store nothing, and do not disturb the valid one. */
static void test_validation(void)
{
    long before = count("true");
    prep(0, "not a stream", 1, "ThingMade", SB_VERSION_ANY);
    prep(1, NULL, 0, "ThingMade", SB_VERSION_ANY);
    prep(2, NULL, SB_APPEND_MAX_EVENTS + 1, "ThingMade", SB_VERSION_ANY);
    prep(3, NULL, 1, "lowercase", SB_VERSION_ANY);
    cmd_t *bad = prep(4, NULL, 1, "ThingMade", SB_VERSION_ANY);
    static const char truncated[] = {(char)0x81, (char)0xa1, 'x'};
    bad->ev[0].payload = truncated;
    bad->ev[0].payload_len = sizeof(truncated);
    cmd_t *arr = prep(5, NULL, 1, "ThingMade", SB_VERSION_ANY);
    static const char array[] = {(char)0x91, 0x01};
    arr->ev[0].payload = array;
    arr->ev[0].payload_len = sizeof(array);
    prep(6, NULL, 1, "ThingMade", SB_VERSION_ANY);
    prep(7, "Thing-00000000-0000-4000-8000-000000000001", 1, "ThingMade", SB_VERSION_ANY);
    run(8);
    CHECK_EQ_INT(cmds[0].status, SB_EINVAL);
    CHECK_EQ_INT(cmds[1].status, SB_EINVAL);
    CHECK_EQ_INT(cmds[2].status, SB_EINVAL);
    CHECK_EQ_INT(cmds[3].status, SB_EINVAL);
    CHECK_EQ_INT(cmds[4].status, SB_ECODEC);
    CHECK_EQ_INT(cmds[5].status, SB_ECODEC);
    CHECK_EQ_INT(cmds[6].status, 0);
    CHECK_EQ_INT(cmds[7].status, SB_EINVAL);
    CHECK_EQ_INT(count("true"), before + 1);
}

/* ---- reads ------------------------------------------------------------------------------- */

typedef struct {
    sb_read_t r;
    int status;
    int n;
    bool more;
    int64_t positions[64];
    int64_t versions[64];
    char types[64][32];
} got_t;

static void on_read(sb_read_t *r, int status, const sb_event_page_t *page)
{
    got_t *g = r->data;
    g->status = status;
    if (status == 0) {
        g->n = page->n;
        g->more = page->more;
        for (int i = 0; i < page->n && i < 64; i++) {
            g->positions[i] = page->events[i].position;
            g->versions[i] = page->events[i].version;
            snprintf(g->types[i], sizeof(g->types[i]), "%s", page->events[i].type);
        }
    }
    uv_stop(&loop.uv);
}

static long query_long(const char *sql)
{
    PGresult *r = PQexec(db, sql);
    long n = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 ? atol(PQgetvalue(r, 0, 0)) : -1;
    PQclear(r);
    return n;
}

/* Versions the caller knows (and new streams) are checked by the log's unique key instead of a
 * read: a stale one fails the batch, which goes again with every version read, so only the stale
 * command gets its conflict. */
static void test_known_versions(void)
{
    sb_appender_stats_t s0, s1;
    cmd_t *c = prep(0, NULL, 2, "ThingMade", SB_VERSION_NO_STREAM);
    cmd_t *d = prep(1, NULL, 1, "ThingMade", SB_VERSION_NO_STREAM);
    run(2);
    CHECK_EQ_INT(c->status, 0);
    CHECK_EQ_INT(d->status, 0);
    char s[SB_STREAM_NAME_MAX], t[SB_STREAM_NAME_MAX];
    strcpy(s, c->stream);
    strcpy(t, d->stream);

    /* Right: stored without a recheck. */
    sb_appender_get_stats(ap, &s0);
    c = prep(0, s, 1, "ThingChanged", 2);
    c->a.expected_known = true;
    run(1);
    sb_appender_get_stats(ap, &s1);
    CHECK_EQ_INT(c->status, 0);
    CHECK_EQ_INT(c->a.version, 3);
    CHECK_EQ_INT((int)(s1.rechecks - s0.rechecks), 0);

    /* Stale (s is at 3), next to a right one and a new stream: one recheck, one conflict. */
    s0 = s1;
    c = prep(0, s, 2, "ThingChanged", 2);
    c->a.expected_known = true;
    d = prep(1, t, 1, "ThingChanged", 1);
    d->a.expected_known = true;
    cmd_t *e = prep(2, NULL, 1, "ThingMade", SB_VERSION_NO_STREAM);
    cmd_t *f = prep(3, s, 1, "ThingChanged", SB_VERSION_NO_STREAM); /* s exists */
    run(4);
    sb_appender_get_stats(ap, &s1);
    CHECK_EQ_INT(c->status, SB_ECONFLICT);
    CHECK_EQ_INT(c->a.version, 3);
    CHECK_EQ_INT(f->status, SB_ECONFLICT); /* same stream as c: the batch after, checked by the key */
    CHECK_EQ_INT(d->status, 0);
    CHECK_EQ_INT(d->a.version, 2);
    CHECK_EQ_INT(e->status, 0);
    CHECK_EQ_INT(count_stream(s), 3);
    CHECK_EQ_INT(count_stream(t), 2);
    CHECK_EQ_INT(count_stream(e->stream), 1);
    CHECK_EQ_INT((int)(s1.rechecks - s0.rechecks), 2);
    CHECK_EQ_INT((int)(s1.failures - s0.failures), 0);
}

static void on_closed(void *data)
{
    *(bool *)data = true;
}

/* Holds the log's lock in this session until the command submitted to a is in PostgreSQL waiting
 * for it (pending: the commands that will be called back, this one included). */
static void hold_batch_of(sb_appender_t *a, cmd_t *c, int npending)
{
    PGresult *r = PQexec(db, "BEGIN; SELECT sb_lock_log()");
    CHECK_EQ_INT(PQresultStatus(r), PGRES_TUPLES_OK);
    PQclear(r);
    pending = npending;
    sb_append(a, &c->a);
    long waiting = 0;
    for (uint64_t end = sb_clock_mono_ns() + 5000000000ull; waiting != 1 && sb_clock_mono_ns() < end;) {
        uv_run(&loop.uv, UV_RUN_NOWAIT);
        waiting = query_long("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted");
    }
    CHECK_EQ_INT(waiting, 1);
}

/* The appenders of a process share one queue: while a batch is in flight, commands submitted to
 * two appenders go out together, in one transaction, and each is called back by its own. */
static void test_appenders_share_batches(void)
{
    sb_appender_stats_t a0, a1, b0, b1;
    sb_appender_get_stats(ap, &a0);
    sb_appender_get_stats(ap2, &b0);
    /* A batch in flight, held in PostgreSQL by the log's lock, which this session takes. */
    hold_batch_of(ap, prep(0, NULL, 1, "ThingMade", SB_VERSION_NO_STREAM), 11);
    /* Meanwhile five commands come to each appender. */
    for (int i = 1; i <= 10; i++) {
        prep(i, NULL, 2, "ThingMade", SB_VERSION_NO_STREAM);
        sb_append(i % 2 ? ap : ap2, &cmds[i].a);
    }
    /* The held batch waits at least 30 ms in PostgreSQL: its answer takes that long. */
    uint64_t held_until = sb_clock_mono_ns() + 30000000ull;
    while (sb_clock_mono_ns() < held_until)
        uv_run(&loop.uv, UV_RUN_NOWAIT);
    CHECK_EQ_INT(cmds[0].done, 0);
    PQclear(PQexec(db, "COMMIT"));
    uv_run(&loop.uv, UV_RUN_DEFAULT);
    CHECK_EQ_INT(pending, 0);
    char in[40 * 11 + 64] = "stream IN (", *p = in + strlen(in);
    for (int i = 1; i <= 10; i++) {
        CHECK_EQ_INT(cmds[i].status, 0);
        p += sprintf(p, "%s'%s'", i > 1 ? "," : "", cmds[i].stream);
    }
    strcpy(p, ")");
    char q[sizeof(in) * 2 + 256];
    snprintf(q, sizeof(q), "SELECT count(DISTINCT xmin::text) FROM events WHERE %s", in);
    CHECK_EQ_INT(query_long(q), 1); /* one transaction */
    snprintf(q, sizeof(q), "SELECT count(*) FROM events WHERE %s", in);
    CHECK_EQ_INT(query_long(q), 20);
    snprintf(q, sizeof(q),
             "SELECT count(*) FROM events WHERE stream = '%s' AND xmin IN (SELECT xmin FROM events WHERE %s)",
             cmds[0].stream, in);
    CHECK_EQ_INT(query_long(q), 0); /* not the held batch's */
    sb_appender_get_stats(ap, &a1);
    sb_appender_get_stats(ap2, &b1);
    CHECK_EQ_INT((int)(a1.commands - a0.commands), 6);
    CHECK_EQ_INT((int)(b1.commands - b0.commands), 5);
    CHECK_EQ_INT((int)(a1.batches - a0.batches + b1.batches - b0.batches), 2);
    CHECK_EQ_INT(a1.process_in_flight_max, 1);
    /* Both batches are in the commit-latency histogram, the held one in a bucket above 20 ms. */
    uint64_t counted = 0, slow = 0;
    for (int k = 0; k <= SB_APPEND_LATENCY_BUCKETS; k++) {
        uint64_t d =
            a1.commit_latency[k] - a0.commit_latency[k] + b1.commit_latency[k] - b0.commit_latency[k];
        counted += d;
        if (k > 0 && sb_append_latency_bounds_us[k - 1] >= 20000)
            slow += d;
    }
    CHECK_EQ_INT((int)counted, 2);
    CHECK(slow >= 1);
    CHECK(a1.commit_latency_sum_us - a0.commit_latency_sum_us + b1.commit_latency_sum_us -
              b0.commit_latency_sum_us >=
          30000);
}

/* An appender closing while its batch is in flight fails its queued commands, lets the batch
 * finish, and hands the sending over: another appender's queued command still goes. */
static void test_sender_closing(void)
{
    sb_appender_t *ap3 = sb_appender_open(&loop.uv, ci_global);
    CHECK(ap3 != NULL);
    bool closed = false;
    hold_batch_of(ap3, prep(0, NULL, 1, "ThingMade", SB_VERSION_NO_STREAM), 3);
    sb_append(ap, &prep(1, NULL, 1, "ThingMade", SB_VERSION_NO_STREAM)->a);
    sb_append(ap3, &prep(2, NULL, 1, "ThingMade", SB_VERSION_NO_STREAM)->a);
    sb_appender_close(ap3, on_closed, &closed);
    for (int i = 0; i < 3; i++)
        uv_run(&loop.uv, UV_RUN_NOWAIT);
    CHECK_EQ_INT(cmds[2].done, 1);
    CHECK_EQ_INT(cmds[2].status, SB_ESHUTDOWN);
    CHECK_EQ_INT(cmds[0].done, 0);
    PQclear(PQexec(db, "COMMIT"));
    while (pending > 0 || !closed)
        uv_run(&loop.uv, UV_RUN_ONCE);
    CHECK_EQ_INT(cmds[0].status, 0);
    CHECK_EQ_INT(cmds[1].status, 0);
    CHECK_EQ_INT(count_stream(cmds[1].stream), 1);
    CHECK_EQ_INT(count_stream(cmds[2].stream), 0);
}

static void test_reads(void)
{
    /* A stream of 5 events in a workspace, another stream in another workspace. */
    sb_uuid_t ws1, ws2;
    sb_uuid_v4(&ws1);
    sb_uuid_v4(&ws2);
    cmd_t *a = prep(0, NULL, 5, "ThingMade", SB_VERSION_NO_STREAM);
    a->a.has_workspace = true;
    a->a.workspace = ws1;
    a->ev[2].type = "ThingChanged";
    cmd_t *b = prep(1, NULL, 2, "ThingMade", SB_VERSION_NO_STREAM);
    new_stream(b, "other");
    b->a.has_workspace = true;
    b->a.workspace = ws2;
    run(2);
    CHECK_EQ_INT(a->status, 0);
    CHECK_EQ_INT(b->status, 0);

    got_t g = {0};
    sb_read_stream(pg, &g.r, a->stream, 2, 100, on_read, &g);
    uv_run(&loop.uv, UV_RUN_DEFAULT);
    CHECK_EQ_INT(g.status, 0);
    CHECK_EQ_INT(g.n, 3);
    CHECK_EQ_INT(g.versions[0], 3);
    CHECK_EQ_STR(g.types[0], "ThingChanged");

    /* Paging: limit 2 says there may be more. */
    sb_read_stream(pg, &g.r, a->stream, 0, 2, on_read, &g);
    uv_run(&loop.uv, UV_RUN_DEFAULT);
    CHECK_EQ_INT(g.n, 2);
    CHECK(g.more);

    /* The log by position with filters. */
    int64_t after = a->a.first_position - 1;
    sb_log_filter_t f = {.has_workspace = true, .workspace = ws1};
    sb_read_log(pg, &g.r, after, &f, 100, on_read, &g);
    uv_run(&loop.uv, UV_RUN_DEFAULT);
    CHECK_EQ_INT(g.n, 5);
    for (int i = 1; i < g.n; i++)
        CHECK(g.positions[i] > g.positions[i - 1]);

    const char *types[] = {"ThingChanged"};
    f = (sb_log_filter_t){.types = types, .ntypes = 1};
    sb_read_log(pg, &g.r, after, &f, 100, on_read, &g);
    uv_run(&loop.uv, UV_RUN_DEFAULT);
    CHECK_EQ_INT(g.n, 1);

    const char *cats[] = {"other"};
    f = (sb_log_filter_t){.categories = cats, .ncategories = 1};
    sb_read_log(pg, &g.r, after, &f, 100, on_read, &g);
    uv_run(&loop.uv, UV_RUN_DEFAULT);
    CHECK_EQ_INT(g.n, 2);

    const char *streams[] = {a->stream, b->stream};
    f = (sb_log_filter_t){.streams = streams, .nstreams = 2, .to_position = a->a.first_position + 1};
    sb_read_log(pg, &g.r, after, &f, 100, on_read, &g);
    uv_run(&loop.uv, UV_RUN_DEFAULT);
    CHECK_EQ_INT(g.n, 2);

    f = (sb_log_filter_t){.since_us = sb_clock_now_us() + 3600ll * 1000000};
    sb_read_log(pg, &g.r, after, &f, 100, on_read, &g);
    uv_run(&loop.uv, UV_RUN_DEFAULT);
    CHECK_EQ_INT(g.n, 0);
    f = (sb_log_filter_t){.since_us = a->a.recorded_at_us - 60ll * 1000000,
                          .until_us = sb_clock_now_us() + 1000000};
    sb_read_log(pg, &g.r, after, &f, 100, on_read, &g);
    uv_run(&loop.uv, UV_RUN_DEFAULT);
    CHECK_EQ_INT(g.n, 7);
}

int main(void)
{
    char *ci = sbt_db_create("append");
    if (ci == NULL || sbt_db_migrate(ci) < 0)
        return 1;
    db = PQconnectdb(ci);
    ci_global = ci;
    sb_loop_init_standalone(&loop);
    ap = sb_appender_open(&loop.uv, ci);
    ap2 = sb_appender_open(&loop.uv, ci);
    pg = sb_pg_open(&loop.uv, ci, "test");
    SBTEST_RUN(test_append_and_conflict);
    SBTEST_RUN(test_batch_with_conflicts);
    SBTEST_RUN(test_failing_command_isolated);
    SBTEST_RUN(test_validation);
    SBTEST_RUN(test_reads);
    SBTEST_RUN(test_known_versions);
    SBTEST_RUN(test_appenders_share_batches);
    SBTEST_RUN(test_sender_closing);
    sb_appender_close(ap, NULL, NULL);
    sb_appender_close(ap2, NULL, NULL);
    sb_pg_close(pg, NULL, NULL);
    sb_loop_close_standalone(&loop);
    PQfinish(db);
    sbt_db_drop("append");
    free(ci);
    return sbtest_summary();
}
