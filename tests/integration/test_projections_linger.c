/* The linger (sb_projections_options_t.linger_ms, SWITCHBOARD_PROJECTIONS_LINGER_MS): live, a
 * batch that collected while the previous one was applied waits for more events before going out,
 * so a busy log is applied in fewer, larger batches; an event arriving on an idle runner is applied
 * at once.  Asserted on the runner's batch counters (sb_projections_stats), not on timing:
 *   - a lone event after idle: one batch, and it did not linger;
 *   - a burst of events, each appended in its own transaction (so they reach the runner a few at a
 *     time, as webhooks do): applied in a handful of batches, at least one of which lingered —
 *     without the linger each few events are a batch of their own;
 *   - with the linger off (0), the same burst never lingers.
 * Every event is applied exactly once either way (a tally of them equals the log's). */
#include "test_projections_support.h"

#include <sys/stat.h>

#define BURST 200
#define LINGER_MS 1000

/* Counts Tick events a batch at a time.  Each batch takes a while (as a batch of a busy log does),
 * so the burst's events arrive while one is applied. */
static const char tally[] =
    "CREATE TABLE seen (n bigint NOT NULL);\n"
    "INSERT INTO seen VALUES (0);\n"
    "-- @batch Tick\n"
    "UPDATE seen SET n = n + (SELECT count(*) FROM unnest($3) AS t WHERE t = 'Tick');\n"
    "PERFORM pg_sleep(0.02);\n";

static pjt_runner_t *start(const char *ci, const char *d, int linger_ms)
{
    sb_projections_options_t o = {.conninfo = ci, .dir = d, .partitions = 1, .linger_ms = linger_ms};
    return pjt_start_with(&o, 1);
}

/* One Tick in its own transaction, waking the follower as an appender does. */
static void append_tick(PGconn *c)
{
    CHECK(pjt_exec(c, "INSERT INTO events (stream, version, type, payload, metadata) VALUES "
                      "('tick-' || gen_random_uuid(), 1, 'Tick', '\\x80'::bytea, '\\x80'::bytea); "
                      "SELECT pg_notify('sb_events', '')"));
}

static bool wait_seen(PGconn *c, long long n)
{
    uint64_t end = sb_clock_mono_ns() + 60000000000ull;
    while (sb_clock_mono_ns() < end) {
        if (pjt_num(c, "SELECT n FROM tally.seen") == n &&
            pjt_num(c, "SELECT position FROM projection_state WHERE name = 'tally'") ==
                pjt_num(c, "SELECT max(position) FROM events"))
            return true;
        usleep(5 * 1000);
    }
    return false;
}

/* The runner's counters once they include `events` applied events: they move on the runner's loop
 * after the commit that made the rows visible, so a reader of the read model can be ahead of them. */
static void wait_stats(const pjt_runner_t *r, uint64_t events, sb_projections_stats_t *s)
{
    uint64_t end = sb_clock_mono_ns() + 30000000000ull;
    for (;;) {
        sb_projections_stats(r->p, s);
        if (s->events >= events || sb_clock_mono_ns() >= end)
            return;
        usleep(2 * 1000);
    }
}

/* The other sessions of this database by niceness (from /proc: PostgreSQL on this host): how
 * many run at niceness nice, and how many of those are not the read models' lanes (a lane's
 * session last ran a batch's statements, or the deferred set-up, which runs on a lane).  Lanes
 * are counted rather than exactly one expected: a unit the runner retired closes its lane, whose
 * session may still be on its way out when the count is taken on a loaded machine.  False when
 * the test's connection is not over a Unix socket (the sessions are not ours to see). */
static bool sessions_at_nice(PGconn *c, int nice, int *niced, int *niced_others)
{
    *niced = *niced_others = 0;
    const char *host = PQhost(c);
    if (host == NULL || host[0] != '/')
        return false;
    PGresult *r = PQexec(c, "SELECT pid, query LIKE '%projection_advance%' OR query LIKE '%__apply%' "
                            "OR query LIKE '%projection_run_deferred%' "
                            "FROM pg_stat_activity WHERE datname = current_database() "
                            "AND pid <> pg_backend_pid()");
    for (int i = 0; PQresultStatus(r) == PGRES_TUPLES_OK && i < PQntuples(r); i++) {
        char path[64], buf[1024];
        snprintf(path, sizeof(path), "/proc/%s/stat", PQgetvalue(r, i, 0));
        FILE *f = fopen(path, "r");
        size_t len = f != NULL ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
        if (f != NULL)
            fclose(f);
        buf[len] = '\0';
        /* after "(comm)": state is field 3, nice field 19 */
        const char *p = strrchr(buf, ')');
        int field = 2;
        while (p != NULL && *p != '\0' && field < 19) {
            p = strchr(p + 1, ' ');
            field++;
        }
        if (p != NULL && atoi(p + 1) == nice) {
            (*niced)++;
            if (strcmp(PQgetvalue(r, i, 1), "t") != 0)
                (*niced_others)++;
        }
    }
    PQclear(r);
    return true;
}

/* Waits (at most 30 s) until no other session of this database is left: a stopped runner's
 * sessions end as their server processes see the connections close. */
static bool wait_no_sessions(PGconn *c)
{
    uint64_t end = sb_clock_mono_ns() + 30000000000ull;
    while (sb_clock_mono_ns() < end) {
        if (pjt_num(c, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                       "AND pid <> pg_backend_pid()") == 0)
            return true;
        usleep(10 * 1000);
    }
    return false;
}

static void test_linger(void)
{
    char tmpl[] = "/tmp/sb_linger_XXXXXX";
    char *d = mkdtemp(tmpl);
    if (!CHECK(d != NULL))
        return;
    pjt_write_file(d, "tally", tally);
    char *ci;
    PGconn *c = pjt_db_open("pj_linger", d, &ci);
    if (c == NULL)
        return;

    pjt_runner_t *r = start(ci, d, LINGER_MS);
    uint64_t end = sb_clock_mono_ns() + 30000000000ull;
    while (!sb_projections_is_active(r->p) && sb_clock_mono_ns() < end)
        usleep(10 * 1000);
    CHECK(sb_projections_is_active(r->p));
    CHECK(pjt_wait_caught_up(c, 30));
    sb_projections_stats_t s0, s1, s2;
    sb_projections_stats(r->p, &s0);
    CHECK_EQ_INT(s0.linger_setting_ms, LINGER_MS);

    /* A lone event after idle goes out at once: one batch, no linger. */
    append_tick(c);
    CHECK(wait_seen(c, 1));
    wait_stats(r, s0.events + 1, &s1);
    CHECK_EQ_INT((long long)(s1.batches - s0.batches), 1);
    CHECK_EQ_INT((long long)(s1.events - s0.events), 1);
    CHECK_EQ_INT((long long)(s1.lingered - s0.lingered), 0);
    /* The lane's session (one partition: one lane, opened for its first batch) runs at the default
     * niceness, and no session other than a lane does. */
    int niced, niced_others;
    bool local = sessions_at_nice(c, 10, &niced, &niced_others);
    if (local) {
        CHECK(niced >= 1);
        CHECK_EQ_INT(niced_others, 0);
    }

    /* A burst: the first event goes out at once, the rest collect while it is applied and linger. */
    uint64_t t0 = sb_clock_mono_ns();
    for (int i = 0; i < BURST; i++)
        append_tick(c);
    uint64_t took_ms = (sb_clock_mono_ns() - t0) / 1000000;
    CHECK(wait_seen(c, 1 + BURST));
    wait_stats(r, s1.events + BURST, &s2);
    long long batches = (long long)(s2.batches - s1.batches);
    fprintf(stderr, "burst of %d in %llu ms: %lld batches, %llu lingered\n", BURST,
            (unsigned long long)took_ms, batches, (unsigned long long)(s2.lingered - s1.lingered));
    CHECK_EQ_INT((long long)(s2.events - s1.events), BURST);
    CHECK(s2.lingered > s1.lingered);
    /* Each batch but the first waits until LINGER_MS after its first event: however slowly the
     * burst was appended, at most one batch per LINGER_MS of it, and the first. */
    CHECK(batches <= 2 + (long long)(took_ms / LINGER_MS) + 1);
    sb_buf_t text = SB_BUF_INIT;
    sb_projections_metrics_text(r->p, &text);
    CHECK(strstr(text.data, "switchboard_projections_lingered_batches_total ") != NULL);
    CHECK(strstr(text.data, "switchboard_projections_linger_seconds 1.000\n") != NULL);
    sb_buf_free(&text);
    pjt_stop(r);
    CHECK(wait_no_sessions(c));

    /* Off: the same burst never lingers.  (And SWITCHBOARD_PROJECTIONS_NICE=0 leaves the lane's
     * session as it is.) */
    setenv("SWITCHBOARD_PROJECTIONS_NICE", "0", 1);
    r = start(ci, d, 0);
    end = sb_clock_mono_ns() + 30000000000ull;
    while (!sb_projections_is_active(r->p) && sb_clock_mono_ns() < end)
        usleep(10 * 1000);
    CHECK(pjt_wait_caught_up(c, 30));
    for (int i = 0; i < BURST; i++)
        append_tick(c);
    CHECK(wait_seen(c, 1 + 2 * BURST));
    wait_stats(r, BURST, &s0);
    CHECK_EQ_INT(s0.linger_setting_ms, 0);
    CHECK_EQ_INT((long long)s0.lingered, 0);
    CHECK_EQ_INT((long long)s0.events, BURST);
    if (local && CHECK(sessions_at_nice(c, 10, &niced, &niced_others)))
        CHECK_EQ_INT(niced, 0);
    unsetenv("SWITCHBOARD_PROJECTIONS_NICE");
    fprintf(stderr, "linger off: burst of %d in %llu batches\n", BURST, (unsigned long long)s0.batches);
    pjt_stop(r);

    pjt_db_close(c, ci, d);
}

int main(void)
{
    sb_log_set_level(SB_LOG_WARN);
    SBTEST_RUN(test_linger);
    return sbtest_summary();
}
