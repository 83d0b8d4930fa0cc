/* Projections end to end (docs/projections.md), on a log the real deciders wrote (bench/workload.h):
 *
 *  - exactly once: a runner is killed with SIGKILL several times while it catches up (and, once,
 *    while a second runner stands by for the lease), restarted each time; at the end every read
 *    model equals a from-scratch build of the same log in another database, table by table, and
 *    the counts agree with what the workload did;
 *  - rebuild under write load: while writers append and readers query the read models (plain and
 *    prepared statements), every projection is rebuilt and swapped in; no read fails, and the
 *    result equals a from-scratch build;
 *  - files: a projection file added later is built from position 0 and queryable; a changed file
 *    is rebuilt into the new shape while the old tables keep answering; a file that does not
 *    install, and one whose handler fails, stall only themselves, with the error in the catalog;
 *  - small batches: a log applied live as it grows a few events per transaction (batches of a few
 *    events, many with inbound messages only, which take analytics.sql's short path) equals a
 *    build in batches of thousands, table by table.
 */
#include "../../bench/workload.h"
#include "test_projections_support.h"

#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

static char *dir; /* the built-in projection files */

static int64_t ref_start_us = 1767225600000000LL; /* 2026-01-01 */

/* Builds the reference: a fresh database with a copy of src's log, every projection built from
 * scratch by a runner that never stops on the way. */
static PGconn *reference(PGconn *src, const char *name, const char *pdir)
{
    char *ci = sbt_db_create(name);
    if (ci == NULL || sbt_db_migrate(ci) < 0)
        abort();
    PGconn *c = pjt_connect(ci);
    CHECK(pjt_copy_log(src, c));
    char err[512];
    CHECK_EQ_INT(sb_projections_prepare(ci, pdir, err, sizeof(err)), 0);
    pjt_runner_t *r = pjt_start(ci, pdir, 1, 2);
    CHECK(pjt_wait_caught_up(c, 120));
    pjt_stop(r);
    /* The read indexes the files defer (-- @deferred) exist once the build caught up. */
    CHECK_EQ_INT(pjt_num(c, "SELECT count(*) FROM pg_indexes WHERE (schemaname, indexname) IN "
                            "(('messages', 'messages_thread'), ('contacts', 'contacts_search'), "
                            "('conversations', 'conversations_inbox'), ('calls', 'calls_live'))"),
                 4);
    free(ci);
    return c;
}

/* The workload's own counts against the read models. */
static void check_counts(PGconn *c, const wl_t *w)
{
    CHECK_EQ_INT(pjt_num(c, "SELECT count(*) FROM contacts.contacts"),
                 w->contacts_created - w->contacts_deleted);
    CHECK_EQ_INT(pjt_num(c, "SELECT count(*) FROM contacts.versions"),
                 w->contacts_created - w->contacts_deleted);
    CHECK_EQ_INT(pjt_num(c, "SELECT count(*) FROM messages.messages WHERE direction = 'inbound'"),
                 w->messages_in);
    CHECK_EQ_INT(pjt_num(c, "SELECT sum(messages) FROM analytics.messages_daily WHERE direction = 'inbound'"),
                 w->messages_in);
    /* Messages by day counted once each; statuses as often as messages reached them. */
    CHECK_EQ_INT(
        pjt_num(c, "SELECT count(*) FROM (SELECT workspace_id, (coalesce(queued_at, created_at) AT TIME ZONE "
                   "'UTC')::date AS day, channel, direction, count(*) AS n FROM messages.messages "
                   "WHERE direction = 'inbound' OR queued_at IS NOT NULL GROUP BY 1, 2, 3, 4) m "
                   "FULL JOIN analytics.messages_daily d USING (workspace_id, day, channel, direction) "
                   "WHERE m.n IS DISTINCT FROM d.messages"),
        0);
    CHECK_EQ_INT(
        pjt_num(c, "SELECT count(*) FROM (SELECT CASE type WHEN 'MessageSent' THEN 'sent' WHEN "
                   "'MessageDelivered' THEN 'delivered' WHEN 'MessageQueued' THEN 'queued' WHEN "
                   "'MessageReceived' THEN 'received' END AS status, count(*) AS n FROM events WHERE type IN "
                   "('MessageSent', 'MessageDelivered', 'MessageQueued', 'MessageReceived') GROUP BY 1) e "
                   "FULL JOIN (SELECT status, sum(messages) AS n FROM analytics.status_daily WHERE status IN "
                   "('sent', 'delivered', 'queued', 'received') GROUP BY 1) d USING (status) "
                   "WHERE e.n IS DISTINCT FROM d.n"),
        0);
    CHECK_EQ_INT(pjt_num(c, "SELECT sum(messages) FROM analytics.status_daily WHERE status IN ('failed', "
                            "'undelivered')") -
                     pjt_num(c, "SELECT count(*) FROM events WHERE type = 'MessageFailed'"),
                 0);
    /* The ETag is the stream's version. */
    CHECK_EQ_INT(
        pjt_num(c, "SELECT count(*) FROM contacts.versions v JOIN (SELECT right(stream, 36)::uuid AS id, "
                   "max(version) AS version FROM events WHERE stream LIKE 'contact-%' GROUP BY 1) e "
                   "USING (id) WHERE v.version <> e.version"),
        0);
    CHECK_EQ_INT(
        pjt_num(c, "SELECT count(*) FROM conversations.conversations c JOIN (SELECT contact_id, count(*) "
                   "FILTER (WHERE direction = 'inbound' AND status = 'received') AS unread FROM "
                   "messages.messages GROUP BY 1) m USING (contact_id) WHERE c.unread <> m.unread"),
        0);
    CHECK(pjt_num(c, "SELECT count(*) FROM analytics.responses") > 0);
    CHECK(pjt_num(c, "SELECT count(*) FROM calls.calls") > 0);
    CHECK_EQ_INT(pjt_num(c, "SELECT count(*) FROM projection_state WHERE error IS NOT NULL"), 0);
}

/* ---- exactly once across SIGKILL ----------------------------------------------------------------- */

static const char *child_ci;
static const char *child_dir;

static int child_main(void)
{
    PGconn *c = pjt_connect(child_ci);
    pjt_runner_t *r = pjt_start(child_ci, child_dir, 1, 2);
    /* Run until killed, or until caught up. */
    bool done = pjt_wait_caught_up(c, 240);
    pjt_stop(r);
    PQfinish(c);
    return done ? 0 : 3;
}

static pid_t spawn_runner(void)
{
    fflush(NULL);
    pid_t p = fork();
    if (p == 0)
        _exit(child_main());
    return p;
}

static long long slowest(PGconn *c)
{
    return pjt_num(c, "SELECT min(position) FROM projection_state WHERE state = 'live'");
}

static void test_exactly_once(void)
{
    char *ci;
    PGconn *c = pjt_db_open("pj_once", dir, &ci);
    if (c == NULL)
        return;
    wl_t w;
    wl_init(&w, 11, ref_start_us);
    wl_setup(&w, 4);
    CHECK_EQ_INT(wl_generate(&w, c, 40000, 2000), 0);
    long long head = pjt_num(c, "SELECT max(position) FROM events");
    child_ci = ci;
    child_dir = dir;

    /* Kill the runner at about 15%, 40% and 65% of the way; once with a second runner standing by,
     * which must take the lease over. */
    static const double marks[] = {0.15, 0.40, 0.65};
    int kills = 0;
    for (size_t k = 0; k < sizeof(marks) / sizeof(marks[0]); k++) {
        pid_t a = spawn_runner();
        pid_t b = k == 1 ? spawn_runner() : 0;
        uint64_t end = sb_clock_mono_ns() + 120000000000ull;
        while (slowest(c) < (long long)(marks[k] * (double)head) && sb_clock_mono_ns() < end)
            usleep(2000);
        /* Kill whichever holds the lease (the other, if any, stands by). */
        kill(a, SIGKILL);
        waitpid(a, NULL, 0);
        kills++;
        if (b != 0) {
            /* The stand-by takes over and finishes; kill it too once it has made progress. */
            long long at = slowest(c);
            while (slowest(c) <= at + 2000 && slowest(c) < head && sb_clock_mono_ns() < end)
                usleep(2000);
            CHECK(slowest(c) > at);
            kill(b, SIGKILL);
            waitpid(b, NULL, 0);
            kills++;
        }
        fprintf(stderr, "killed runners %d times; slowest projection at %lld of %lld\n", kills, slowest(c),
                head);
    }
    pid_t last = spawn_runner();
    int status = 0;
    waitpid(last, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(pjt_caught_up(c));

    check_counts(c, &w);
    PGconn *ref = reference(c, "pj_once_ref", dir);
    int tables = pjt_compare(c, ref);
    CHECK(tables >= 15);
    fprintf(stderr, "exactly once: %d tables equal a from-scratch build (%lld events)\n", tables, head);
    PQfinish(ref);
    wl_free(&w);
    pjt_db_close(c, ci, NULL);
}

/* ---- rebuild under write load ------------------------------------------------------------------- */

typedef struct load_s {
    const char *ci;
    _Atomic bool stop;
    _Atomic long reads, read_errors, writes, reads_during_build;
    _Atomic bool building;
    wl_t *w;
} load_t;

static void *writer_main(void *data)
{
    load_t *l = data;
    PGconn *c = pjt_connect(l->ci);
    while (!atomic_load(&l->stop)) {
        if (wl_generate(l->w, c, 300, 300) != 0)
            break;
        atomic_fetch_add(&l->writes, 300);
        usleep(20 * 1000);
    }
    PQfinish(c);
    return NULL;
}

static void *reader_main(void *data)
{
    load_t *l = data;
    PGconn *c = pjt_connect(l->ci);
    /* A prepared statement too: it must follow the swap to the new tables. */
    PGresult *r =
        PQprepare(c, "thread",
                  "SELECT m.id, m.status, c.name, v.version FROM messages.messages m "
                  "JOIN contacts.contacts c ON c.id = m.contact_id JOIN contacts.versions v ON v.id = c.id "
                  "ORDER BY m.created_at DESC LIMIT 20",
                  0, NULL);
    PQclear(r);
    static const char *const queries[] = {
        "SELECT count(*) FROM contacts.contacts WHERE search LIKE '%ana%'",
        "SELECT * FROM conversations.conversations ORDER BY last_message_at DESC LIMIT 20",
        "SELECT status, count(*) FROM messages.messages GROUP BY status",
        "SELECT day, sum(messages) FROM analytics.messages_daily GROUP BY day ORDER BY day",
        "SELECT * FROM calls.board",
        "SELECT stage, contacts FROM pipeline.counts",
        "SELECT count(*) FROM notes.notes",
    };
    int i = 0;
    while (!atomic_load(&l->stop)) {
        PGresult *q = i % 8 == 7 ? PQexecPrepared(c, "thread", 0, NULL, NULL, NULL, 0)
                                 : PQexec(c, queries[i % 8 < 7 ? i % 8 : 0]);
        if (PQresultStatus(q) != PGRES_TUPLES_OK) {
            fprintf(stderr, "reader: %s", PQresultErrorMessage(q));
            atomic_fetch_add(&l->read_errors, 1);
        } else {
            atomic_fetch_add(&l->reads, 1);
            if (atomic_load(&l->building))
                atomic_fetch_add(&l->reads_during_build, 1);
        }
        PQclear(q);
        i++;
    }
    PQfinish(c);
    return NULL;
}

static void test_rebuild_under_load(void)
{
    char *ci;
    PGconn *c = pjt_db_open("pj_rebuild", dir, &ci);
    if (c == NULL)
        return;
    wl_t w;
    wl_init(&w, 23, ref_start_us);
    wl_setup(&w, 3);
    CHECK_EQ_INT(wl_generate(&w, c, 20000, 5000), 0);
    pjt_runner_t *r = pjt_start(ci, dir, 2, 2);
    CHECK(pjt_wait_caught_up(c, 120));

    load_t l = {.ci = ci, .w = &w};
    pthread_t wt, rt;
    pthread_create(&wt, NULL, writer_main, &l);
    pthread_create(&rt, NULL, reader_main, &l);
    usleep(300 * 1000);

    /* What `projections rebuild --all` does. */
    CHECK(pjt_exec(c, "CREATE TEMP TABLE asked AS SELECT now() AS at"));
    CHECK(pjt_exec(c, "UPDATE projection_state SET rebuild_requested_at = (SELECT at FROM asked)"));
    CHECK(pjt_exec(c, "NOTIFY sb_projections"));
    atomic_store(&l.building, true);
    uint64_t end = sb_clock_mono_ns() + 120000000000ull;
    bool swapped = false;
    while (sb_clock_mono_ns() < end) {
        long long pending =
            pjt_num(c, "SELECT count(*) FROM projection_state WHERE rebuild_requested_at IS NOT NULL "
                       "OR build_hash IS NOT NULL OR built_at < (SELECT at FROM asked)");
        if (pending == 0 &&
            pjt_num(c, "SELECT count(*) FROM pg_namespace WHERE nspname LIKE '%\\_\\_build'") == 0) {
            swapped = true;
            break;
        }
        /* Metrics while it runs: one entry per live projection, never negative. */
        sb_projection_metric_t m[32];
        int n = sb_projections_metrics(r->p, m, 32);
        CHECK_EQ_INT(n, 11);
        for (int i = 0; i < n && i < 32; i++)
            CHECK(m[i].lag_positions >= 0 && m[i].lag_seconds >= 0);
        usleep(20 * 1000);
    }
    atomic_store(&l.building, false);
    CHECK(swapped);
    usleep(300 * 1000); /* writes go on a little after the swap */
    atomic_store(&l.stop, true);
    pthread_join(wt, NULL);
    pthread_join(rt, NULL);
    CHECK(pjt_wait_caught_up(c, 120));

    /* Caught up: every projection reports no lag. */
    sb_projection_metric_t m[32];
    uint64_t until = sb_clock_mono_ns() + 5000000000ull;
    int n = 0;
    bool zero = false;
    while (!zero && sb_clock_mono_ns() < until) {
        n = sb_projections_metrics(r->p, m, 32);
        zero = n == 11;
        for (int i = 0; i < n && i < 32; i++)
            zero &= m[i].lag_positions == 0 && m[i].lag_seconds == 0 && !m[i].building && !m[i].failing;
        usleep(50 * 1000);
    }
    CHECK(zero);
    pjt_stop(r);

    fprintf(stderr,
            "rebuild under load: %ld reads (%ld during the rebuild), %ld errors, %ld events written\n",
            atomic_load(&l.reads), atomic_load(&l.reads_during_build), atomic_load(&l.read_errors),
            atomic_load(&l.writes));
    CHECK_EQ_INT(atomic_load(&l.read_errors), 0);
    CHECK(atomic_load(&l.reads_during_build) > 10);
    CHECK(atomic_load(&l.writes) > 0);
    check_counts(c, &w);
    PGconn *ref = reference(c, "pj_rebuild_ref", dir);
    CHECK(pjt_compare(c, ref) >= 15);
    PQfinish(ref);
    wl_free(&w);
    pjt_db_close(c, ci, NULL);
}

/* ---- projection files: added, changed, broken ------------------------------------------------- */

static void copy_builtin(const char *d, const char *name)
{
    char from[1024];
    snprintf(from, sizeof(from), "%s/%s.sql", dir, name);
    FILE *f = fopen(from, "r");
    if (f == NULL)
        abort();
    sb_buf_t b = SB_BUF_INIT;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        sb_buf_append(&b, chunk, n);
    fclose(f);
    sb_buf_putc(&b, '\0');
    pjt_write_file(d, name, b.data);
    sb_buf_free(&b);
}

/* An analyst's report: events per type and day. */
static const char type_counts_v1[] = "-- events per type\n"
                                     "CREATE TABLE counts (type text PRIMARY KEY, n bigint NOT NULL);\n"
                                     "-- @on NoteAdded MessageReceived CallInitiated\n"
                                     "INSERT INTO counts VALUES ($3, 1)\n"
                                     "ON CONFLICT (type) DO UPDATE SET n = counts.n + 1;\n";
static const char type_counts_v2[] =
    "-- events per type, and the last position\n"
    "CREATE TABLE counts (type text PRIMARY KEY, n bigint NOT NULL, last bigint);\n"
    "-- @on NoteAdded MessageReceived CallInitiated ContactCreated\n"
    "INSERT INTO counts VALUES ($3, 1, $1)\n"
    "ON CONFLICT (type) DO UPDATE SET n = counts.n + 1, last = excluded.last;\n";

static long long counts_mismatch(PGconn *c, const char *types)
{
    char sql[1024];
    snprintf(
        sql, sizeof(sql),
        "SELECT count(*) FROM (SELECT type, count(*) AS n FROM events WHERE type IN (%s) GROUP BY type) e "
        "FULL JOIN type_counts.counts c USING (type) WHERE e.n IS DISTINCT FROM c.n",
        types);
    return pjt_num(c, sql);
}

static void run_until_caught_up(const char *ci, const char *d, PGconn *c)
{
    pjt_runner_t *r = pjt_start(ci, d, 1, 2);
    CHECK(pjt_wait_caught_up(c, 120));
    pjt_stop(r);
}

static void test_files(void)
{
    char tmpl[] = "/tmp/sb_projections_XXXXXX";
    char *d = mkdtemp(tmpl);
    if (!CHECK(d != NULL))
        return;
    copy_builtin(d, "notes");
    copy_builtin(d, "contacts");
    char *ci, err[512];
    PGconn *c = pjt_db_open("pj_files", d, &ci);
    if (c == NULL)
        return;
    wl_t w;
    wl_init(&w, 31, ref_start_us);
    wl_setup(&w, 2);
    CHECK_EQ_INT(wl_generate(&w, c, 8000, 4000), 0);
    run_until_caught_up(ci, d, c);
    CHECK_EQ_INT(pjt_num(c, "SELECT count(*) FROM projection_state"), 2);

    /* Added: built from position 0 when a runner starts (the server's prepare installs it). */
    pjt_write_file(d, "type_counts", type_counts_v1);
    CHECK_EQ_INT(sb_projections_prepare(ci, d, err, sizeof(err)), 0);
    CHECK_EQ_INT(pjt_num(c, "SELECT count(*) FROM type_counts.counts"), 0); /* queryable at once, empty */
    run_until_caught_up(ci, d, c);
    CHECK_EQ_INT(counts_mismatch(c, "'NoteAdded', 'MessageReceived', 'CallInitiated'"), 0);
    CHECK(pjt_num(c, "SELECT sum(n) FROM type_counts.counts") > 100);

    /* Changed: rebuilt into the new shape while the old tables answer; then swapped in. */
    pjt_write_file(d, "type_counts", type_counts_v2);
    CHECK_EQ_INT(wl_generate(&w, c, 2000, 2000), 0);
    pjt_runner_t *r = pjt_start(ci, d, 1, 2);
    bool old_shape_answered = false;
    uint64_t end = sb_clock_mono_ns() + 60000000000ull;
    while (sb_clock_mono_ns() < end) {
        if (pjt_num(c, "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'type_counts' "
                       "AND table_name = 'counts' AND column_name = 'last'") == 1)
            break;
        old_shape_answered |= pjt_num(c, "SELECT count(*) FROM type_counts.counts") > 0;
        usleep(1000);
    }
    CHECK(old_shape_answered);
    CHECK(pjt_wait_caught_up(c, 60));
    pjt_stop(r);
    CHECK_EQ_INT(counts_mismatch(c, "'NoteAdded', 'MessageReceived', 'CallInitiated', 'ContactCreated'"), 0);
    CHECK_EQ_INT(pjt_num(c, "SELECT count(*) FROM type_counts.counts WHERE last IS NULL"), 0);
    CHECK_EQ_INT(pjt_num(c, "SELECT count(*) FROM pg_namespace WHERE nspname = 'type_counts__build'"), 0);

    /* Broken: one that does not install, one whose handler fails midway.  The others go on. */
    pjt_write_file(d, "broken_setup",
                   "CREATE TABLE t (x int);\nCREATE INDEX ON t (nosuchcolumn);\n"
                   "-- @on NoteAdded\nINSERT INTO t VALUES (1);\n");
    pjt_write_file(d, "broken_handler",
                   "CREATE TABLE t (n int);\n"
                   "-- @on MessageReceived\n"
                   "INSERT INTO t VALUES (1);\n"
                   "-- @on CallInitiated\n"
                   "INSERT INTO t VALUES (1 / (SELECT count(*) - count(*) FROM t)::int);\n");
    CHECK_EQ_INT(sb_projections_prepare(ci, d, err, sizeof(err)), 0);
    CHECK_EQ_INT(wl_generate(&w, c, 2000, 2000), 0);
    /* Two partitions: the failing projection shares a unit at first, and a lane of its own; the
     * other lane commits the batches the failing one rolls back, and the unit splits. */
    r = pjt_start(ci, d, 1, 2);
    end = sb_clock_mono_ns() + 60000000000ull;
    while (sb_clock_mono_ns() < end &&
           pjt_num(c,
                   "SELECT count(*) FROM projection_state WHERE state = 'live' AND name <> 'broken_handler' "
                   "AND position < (SELECT max(position) FROM events)") != 0)
        usleep(20 * 1000);
    while (
        sb_clock_mono_ns() < end &&
        pjt_num(
            c, "SELECT count(*) FROM projection_state WHERE name = 'broken_handler' AND error IS NOT NULL") ==
            0)
        usleep(20 * 1000);
    sb_projection_metric_t m[8];
    int n = sb_projections_metrics(r->p, m, 8);
    bool failing_reported = false;
    for (int i = 0; i < n && i < 8; i++)
        if (strcmp(m[i].name, "broken_handler") == 0)
            failing_reported = m[i].failing && m[i].lag_positions > 0;
    pjt_stop(r);
    CHECK(failing_reported);
    CHECK_EQ_INT(
        pjt_num(c, "SELECT count(*) FROM projection_state WHERE state = 'failed' AND name = 'broken_setup' "
                   "AND error LIKE '%nosuchcolumn%'"),
        1);
    CHECK_EQ_INT(
        pjt_num(c, "SELECT count(*) FROM projection_state WHERE name = 'broken_handler' "
                   "AND error LIKE 'projection broken_handler: event % (CallInitiated %division by zero%'"),
        1);
    /* Its checkpoint stopped before the failing event, with every event up to it applied. */
    CHECK_EQ_INT(pjt_num(c, "SELECT count(*) FROM broken_handler.t") -
                     pjt_num(c, "SELECT count(*) FROM events WHERE type = 'MessageReceived' AND position <= "
                                "(SELECT position FROM projection_state WHERE name = 'broken_handler')"),
                 0);
    CHECK_EQ_INT(pjt_num(c, "SELECT count(*) FROM events WHERE type = 'CallInitiated' AND position <= "
                            "(SELECT position FROM projection_state WHERE name = 'broken_handler')"),
                 0);
    CHECK_EQ_INT(counts_mismatch(c, "'NoteAdded', 'MessageReceived', 'CallInitiated', 'ContactCreated'"), 0);
    /* The tables the swap replaced are gone (dropped after the swap, or when the next runner
     * started if the first stopped before it could). */
    CHECK_EQ_INT(pjt_num(c, "SELECT count(*) FROM pg_namespace WHERE nspname LIKE '%\\_\\_old'"), 0);

    wl_free(&w);
    pjt_db_close(c, ci, d);
}

/* ---- small batches ---------------------------------------------------------------------------- */

static void test_small_batches(void)
{
    char *ci;
    PGconn *c = pjt_db_open("pj_small", dir, &ci);
    if (c == NULL)
        return;
    wl_t w;
    wl_init(&w, 23, ref_start_us);
    wl_setup(&w, 3);
    CHECK_EQ_INT(wl_generate(&w, c, 300, 300), 0);
    /* Live: the log grows a few events per transaction while the runner applies it, each batch
     * what arrived while the lanes applied the one before (no linger). */
    pjt_runner_t *r = pjt_start(ci, dir, 1, 2);
    CHECK(pjt_wait_caught_up(c, 60));
    for (int i = 0; i < 1200; i++)
        if (!CHECK_EQ_INT(wl_generate(&w, c, 5, 5), 0) || !pjt_exec(c, "SELECT pg_notify('sb_events', '')"))
            break;
    CHECK(pjt_wait_caught_up(c, 240));
    sb_projections_stats_t st;
    sb_projections_stats(r->p, &st);
    pjt_stop(r);
    long long events = pjt_num(c, "SELECT count(*) FROM events");
    fprintf(stderr, "small batches: %llu batches of %llu events\n", (unsigned long long)st.batches,
            (unsigned long long)st.events);
    CHECK(st.batches >= 100 && st.events / st.batches < 60);
    CHECK(events >= 6300);
    /* Some of them hold no reply, others do (the full path of the response times). */
    CHECK(pjt_num(c, "SELECT count(*) FROM analytics.responses") > 0);
    check_counts(c, &w);
    PGconn *ref = reference(c, "pj_small_ref", dir);
    int tables = pjt_compare(c, ref);
    CHECK(tables >= 15);
    fprintf(stderr, "small batches: %d tables equal a build in large batches (%lld events)\n", tables,
            events);
    PQfinish(ref);
    wl_free(&w);
    pjt_db_close(c, ci, NULL);
}

int main(void)
{
    const char *src = getenv("SWITCHBOARD_SOURCE_DIR");
    if (src == NULL)
        src = SB_SOURCE_DIR;
    dir = malloc(strlen(src) + 32);
    sprintf(dir, "%s/projections", src);
    sb_log_set_level(SB_LOG_WARN);
    /* First, while this process has no threads: it forks. */
    /* PJT_ONLY=name runs one test (when chasing a failure). */
    const char *only = getenv("PJT_ONLY");
    if (only == NULL || strstr("test_exactly_once", only))
        SBTEST_RUN(test_exactly_once);
    if (only == NULL || strstr("test_rebuild_under_load", only))
        SBTEST_RUN(test_rebuild_under_load);
    if (only == NULL || strstr("test_files", only))
        SBTEST_RUN(test_files);
    if (only == NULL || strstr("test_small_batches", only))
        SBTEST_RUN(test_small_batches);
    free(dir);
    return sbtest_summary();
}
