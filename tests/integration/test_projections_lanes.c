/* Lanes of a unit do not wait for each other: each applies the unit's batches in order and moves on
 * to the next as soon as it has committed its own (src/projections/unit.c).  Two projections in
 * two partitions (placed by their declared cost): `slow` sleeps in every batch, `quick` does not.
 * Asserted on the runner's counters and the catalog, not on timing:
 *   - catching up in several batches, the quick lane started batches before the slow lane had
 *     committed the one before (sb_projections_stats.lanes_ahead), and every event is applied
 *     exactly once by both;
 *   - a handler of the slow lane failing while the quick lane is batches ahead: the unit splits by
 *     where each lane is, the quick projection goes on to the end of the log and the failing one
 *     stays just before the event it fails on, each event applied exactly once. */
#include "test_projections_support.h"

#include <sys/stat.h>

/* The follower reads the log in pages of SB_FOLLOW_PAGE events, and a unit takes them a page at a
 * time at least: several pages, several batches. */
#define TICKS (4 * SB_FOLLOW_PAGE)
#define MAX_BATCH SB_FOLLOW_PAGE

static const char slow_sql[] =
    "-- @cost 10\n"
    "CREATE TABLE seen (n bigint NOT NULL);\n"
    "INSERT INTO seen VALUES (0);\n"
    "-- @batch Tick\n"
    "UPDATE seen SET n = n + (SELECT count(*) FROM unnest($3) AS t WHERE t = 'Tick');\n"
    "PERFORM pg_sleep(0.1);\n"
    "-- @on Boom\n"
    "UPDATE seen SET n = n / (SELECT count(*) - count(*) FROM seen)::int;\n";

static const char quick_sql[] =
    "-- @cost 1\n"
    "CREATE TABLE seen (n bigint NOT NULL);\n"
    "INSERT INTO seen VALUES (0);\n"
    "-- @batch Tick\n"
    "UPDATE seen SET n = n + (SELECT count(*) FROM unnest($3) AS t WHERE t = 'Tick');\n";

static pjt_runner_t *start(const char *ci, const char *d)
{
    sb_projections_options_t o = {.conninfo = ci, .dir = d, .partitions = 2, .max_batch = MAX_BATCH};
    return pjt_start_with(&o, 1);
}

/* n Tick events (or one Boom), appended in one transaction; the follower is woken as by an
 * appender. */
static void append(PGconn *c, int n, const char *type)
{
    char sql[512];
    snprintf(sql, sizeof(sql),
             "INSERT INTO events (stream, version, type, payload, metadata) SELECT 'tick-' || "
             "gen_random_uuid(), 1, '%s', '\\x80'::bytea, '\\x80'::bytea FROM generate_series(1, %d); "
             "SELECT pg_notify('sb_events', '')",
             type, n);
    CHECK(pjt_exec(c, sql));
}

static bool wait_for(PGconn *c, const char *sql, long long want)
{
    uint64_t end = sb_clock_mono_ns() + 60000000000ull;
    while (sb_clock_mono_ns() < end) {
        if (pjt_num(c, sql) == want)
            return true;
        usleep(10 * 1000);
    }
    fprintf(stderr, "waited in vain for %s = %lld (%lld)\n", sql, want, pjt_num(c, sql));
    return false;
}

static void test_lanes(void)
{
    char tmpl[] = "/tmp/sb_lanes_XXXXXX";
    char *d = mkdtemp(tmpl);
    if (!CHECK(d != NULL))
        return;
    pjt_write_file(d, "slow", slow_sql);
    pjt_write_file(d, "quick", quick_sql);
    char *ci;
    PGconn *c = pjt_db_open("pj_lanes", d, &ci);
    if (c == NULL)
        return;

    /* Catching up, a page or so per batch: the quick lane runs ahead of the slow one. */
    append(c, TICKS, "Tick");
    pjt_runner_t *r = start(ci, d);
    CHECK(wait_for(
        c, "SELECT count(*) FROM projection_state WHERE position = (SELECT max(position) FROM events)", 2));
    CHECK(pjt_wait_caught_up(c, 30));
    sb_projections_stats_t st;
    sb_projections_stats(r->p, &st);
    fprintf(stderr, "%llu batches, %llu started ahead; lane wait %.2f of %.2f s\n",
            (unsigned long long)st.batches, (unsigned long long)st.lanes_ahead, (double)st.lane_wait_us / 1e6,
            (double)st.apply_us / 1e6);
    CHECK(st.batches >= 3);
    CHECK(st.lanes_ahead > 0);
    CHECK_EQ_INT(pjt_num(c, "SELECT n FROM slow.seen"), TICKS);
    CHECK_EQ_INT(pjt_num(c, "SELECT n FROM quick.seen"), TICKS);
    sb_buf_t text = SB_BUF_INIT;
    sb_projections_metrics_text(r->p, &text);
    CHECK(strstr(text.data, "switchboard_projections_lane_ahead_batches_total ") != NULL);
    sb_buf_free(&text);
    pjt_stop(r);

    /* The slow lane fails midway while the quick one is ahead: each goes on from where it is. */
    append(c, TICKS / 2, "Tick");
    append(c, 1, "Boom");
    long long boom = pjt_num(c, "SELECT max(position) FROM events");
    append(c, TICKS / 2, "Tick");
    r = start(ci, d);
    CHECK(wait_for(c,
                   "SELECT count(*) FROM projection_state WHERE name = 'quick' AND position = "
                   "(SELECT max(position) FROM events)",
                   1));
    CHECK(wait_for(c, "SELECT count(*) FROM projection_state WHERE name = 'slow' AND error IS NOT NULL", 1));
    pjt_stop(r);
    CHECK_EQ_INT(pjt_num(c, "SELECT n FROM quick.seen"), 2 * TICKS);
    long long at = pjt_num(c, "SELECT position FROM projection_state WHERE name = 'slow'");
    CHECK(at < boom);
    /* Every Tick up to its checkpoint applied once, none after. */
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM events WHERE type = 'Tick' AND position <= %lld", at);
    CHECK_EQ_INT(pjt_num(c, "SELECT n FROM slow.seen"), pjt_num(c, sql));
    CHECK(pjt_num(c, "SELECT n FROM slow.seen") >= TICKS);

    pjt_db_close(c, ci, d);
}

int main(void)
{
    sb_log_set_level(SB_LOG_WARN);
    SBTEST_RUN(test_lanes);
    return sbtest_summary();
}
