/* Lanes of a unit do not wait for each other: each applies the unit's batches in order and moves on
 * to the next as soon as it has committed its own (src/projections/unit.c).  Two projections in
 * two partitions (placed by their declared cost): `slow` sleeps in every batch, `quick` does not.
 * Asserted on the runner's counters and the catalog, not on timing:
 *   - catching up in several batches, the quick lane started batches before the slow lane had
 *     committed the one before (sb_projections_stats.lanes_ahead), and every event is applied
 *     exactly once by both;
 *   - a handler of the slow lane failing while the quick lane is batches ahead: the unit splits by
 *     where each lane is, the quick projection goes on to the end of the log and the failing one
 *     stays just before the event it fails on, each event applied exactly once.
 * And a lane calls a projection's __apply only for a batch holding one of its types: with two
 * projections in one lane, one taking Tick and one Boom, the Boom one is called once, for the one
 * batch that holds a Boom (pg_stat_user_functions, with track_functions on).  And it sends each
 * payload only as far as the projections it calls read it (test_payloads), and the streams' ids,
 * parsed once, as $9 (test_stream_ids). */
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

static const char booms_sql[] =
    "CREATE TABLE seen (n bigint NOT NULL);\n"
    "INSERT INTO seen VALUES (0);\n"
    "-- @batch Boom\n"
    "UPDATE seen SET n = n + (SELECT count(*) FROM unnest($3) AS t WHERE t = 'Boom');\n";

/* The __apply calls the statistics counted for projection name's schema (-1 when none yet). */
static long long apply_calls(PGconn *c, const char *name)
{
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT coalesce((SELECT calls FROM pg_stat_user_functions WHERE schemaname = '%s' AND "
             "funcname = '__apply'), -1)",
             name);
    return pjt_num(c, sql);
}

static void test_calls(void)
{
    char tmpl[] = "/tmp/sb_lanes_XXXXXX";
    char *d = mkdtemp(tmpl);
    if (!CHECK(d != NULL))
        return;
    pjt_write_file(d, "quick", quick_sql);
    pjt_write_file(d, "booms", booms_sql);
    char *ci;
    PGconn *c = pjt_db_open("pj_calls", d, &ci);
    if (c == NULL)
        return;
    /* The lane's session counts its functions' calls (it reads the setting when it connects). */
    CHECK(pjt_exec(c, "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET track_functions = ''pl''', "
                      "current_database()); END $$"));
    /* One partition: both projections in one lane, so one session counts both (and reports them
     * together when it ends). */
    sb_projections_options_t o = {.conninfo = ci, .dir = d, .partitions = 1, .max_batch = MAX_BATCH};
    pjt_runner_t *r = pjt_start_with(&o, 1);
    append(c, 3 * SB_FOLLOW_PAGE, "Tick");
    CHECK(pjt_wait_caught_up(c, 30));
    append(c, 1, "Boom");
    CHECK(pjt_wait_caught_up(c, 30));
    sb_projections_stats_t st;
    sb_projections_stats(r->p, &st);
    pjt_stop(r);
    CHECK(wait_for(c, "SELECT count(*) FROM pg_stat_user_functions WHERE funcname = '__apply'", 2));
    fprintf(stderr, "%llu batches; __apply called %lld times (quick), %lld (booms)\n",
            (unsigned long long)st.batches, apply_calls(c, "quick"), apply_calls(c, "booms"));
    CHECK(st.batches >= 2);
    CHECK_EQ_INT(apply_calls(c, "booms"), 1);
    CHECK_EQ_INT(apply_calls(c, "quick"), (long long)st.batches - 1);
    CHECK_EQ_INT(pjt_num(c, "SELECT n FROM quick.seen"), 3 * SB_FOLLOW_PAGE);
    CHECK_EQ_INT(pjt_num(c, "SELECT n FROM booms.seen"), 1);
    pjt_db_close(c, ci, d);
}

/* A lane sends each payload only as far as the projections it calls read it: `keys` declares the
 * one key it reads (-- @payload a) and records every payload its sections see; `counts` takes the
 * same types but never mentions $7.  So in their lane a Pay event's payload is cut down to its
 * "a", and an Other event's (which `keys` does not take) is NULL.  With `whole` added to the lane
 * (it reads Pay payloads and declares nothing) the payloads go whole. */
static const char keys_sql[] = "-- @payload a\n"
                               "CREATE TABLE seen (type text, payload text);\n"
                               "-- @batch Pay\n"
                               "INSERT INTO seen SELECT type, payload::text\n"
                               "  FROM (SELECT unnest($3) AS type, unnest($7) AS payload) AS e;\n";

static const char counts_sql[] = "CREATE TABLE seen (n bigint NOT NULL);\n"
                                 "INSERT INTO seen VALUES (0);\n"
                                 "-- @batch Pay Other\n"
                                 "UPDATE seen SET n = n + cardinality($3);\n";

static const char whole_sql[] =
    "CREATE TABLE seen (payload text);\n"
    "-- @batch Pay\n"
    "INSERT INTO seen SELECT payload FROM (SELECT unnest($3) AS type, unnest($7)::text "
    "AS payload) AS e WHERE type = 'Pay';\n";

/* Opens database db with the projection files in d, has one runner with one lane apply the events
 * events_sql inserts (in one transaction: one batch), and stops it.  The connection, or NULL. */
static PGconn *one_lane_run(const char *db, const char *d, const char *events_sql, char **ci)
{
    PGconn *c = pjt_db_open(db, d, ci);
    if (c == NULL)
        return NULL;
    sb_projections_options_t o = {.conninfo = *ci, .dir = d, .partitions = 1, .max_batch = MAX_BATCH};
    pjt_runner_t *r = pjt_start_with(&o, 1);
    char sql[2048];
    snprintf(sql, sizeof(sql),
             "INSERT INTO events (stream, version, type, payload, metadata) VALUES %s; "
             "SELECT pg_notify('sb_events', '')",
             events_sql);
    CHECK(pjt_exec(c, sql));
    CHECK(pjt_wait_caught_up(c, 30));
    pjt_stop(r);
    return c;
}

static void payloads_run(bool with_whole)
{
    char tmpl[] = "/tmp/sb_lanes_XXXXXX";
    char *d = mkdtemp(tmpl);
    if (!CHECK(d != NULL))
        return;
    pjt_write_file(d, "keys", keys_sql);
    pjt_write_file(d, "counts", counts_sql);
    if (with_whole)
        pjt_write_file(d, "whole", whole_sql);
    char *ci;
    /* {"a": 1, "b": "x"} and {"b": "y"} in msgpack, in one transaction: one batch, both types. */
    PGconn *c = one_lane_run(with_whole ? "pj_payloads_whole" : "pj_payloads", d,
                             "('p-1', 1, 'Pay', '\\x82a16101a162a178'::bytea, '\\x80'::bytea), "
                             "('p-2', 1, 'Other', '\\x81a162a179'::bytea, '\\x80'::bytea), "
                             "('p-3', 1, 'Pay', '\\x81a162a17a'::bytea, '\\x80'::bytea)",
                             &ci);
    if (c == NULL)
        return;
    CHECK_EQ_INT(pjt_num(c, "SELECT n FROM counts.seen"), 3);
    CHECK_EQ_INT(pjt_num(c, "SELECT count(*) FROM keys.seen"), 3);
    CHECK_EQ_INT(pjt_num(c, "SELECT count(*) FROM keys.seen WHERE type = 'Other' AND payload IS NULL"), 1);
    if (!with_whole) {
        CHECK_EQ_INT(
            pjt_num(c, "SELECT count(*) FROM keys.seen WHERE type = 'Pay' AND payload = '{\"a\": 1}'"), 1);
        CHECK_EQ_INT(pjt_num(c, "SELECT count(*) FROM keys.seen WHERE type = 'Pay' AND payload = '{}'"), 1);
    } else {
        CHECK_EQ_INT(pjt_num(c, "SELECT count(*) FROM keys.seen WHERE type = 'Pay' AND payload = "
                                "'{\"a\": 1, \"b\": \"x\"}'"),
                     1);
        CHECK_EQ_INT(
            pjt_num(c, "SELECT count(*) FROM keys.seen WHERE type = 'Pay' AND payload = '{\"b\": \"z\"}'"),
            1);
        CHECK_EQ_INT(pjt_num(c, "SELECT count(*) FROM whole.seen WHERE payload = '{\"b\": \"z\"}'"), 1);
    }
    pjt_db_close(c, ci, d);
}

static void test_payloads(void)
{
    payloads_run(false);
    payloads_run(true);
}

/* $9, the uuid a stream's name ends with: the same in @batch and @on sections, NULL when the last
 * 36 characters are not a uuid in the 8-4-4-4-12 form; and a dispatcher called without it (as for
 * a member whose file the runner does not know) works out the same ids. */
static const char ids_sql[] =
    "CREATE TABLE seen (stream text, id uuid, how text);\n"
    "-- @batch Id\n"
    "INSERT INTO seen SELECT stream, id, 'batch'\n"
    "  FROM (SELECT unnest($2) AS stream, unnest($3) AS type, unnest($9) AS id) AS e\n"
    " WHERE type = 'Id';\n"
    "-- @on Id\n"
    "INSERT INTO seen VALUES ($2, $9, 'on');\n";

/* What `right(stream, 36)::uuid` gives where the tail is a canonical uuid, else NULL. */
#define IDS_RULE                                                                                             \
    "CASE WHEN right(stream, 36) ~ "                                                                         \
    "'^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$' "                       \
    "THEN right(stream, 36)::uuid END"

static void test_stream_ids(void)
{
    char tmpl[] = "/tmp/sb_lanes_XXXXXX";
    char *d = mkdtemp(tmpl);
    if (!CHECK(d != NULL))
        return;
    pjt_write_file(d, "ids", ids_sql);
    char *ci;
    PGconn *c = one_lane_run("pj_stream_ids", d,
                             "('contact-0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b', 1, 'Id', '\\x80', '\\x80'), "
                             "('call-0190A1B2-C3D4-7E5F-8A9B-0C1D2E3F4A5C', 1, 'Id', '\\x80', '\\x80'), "
                             "('0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5d', 1, 'Id', '\\x80', '\\x80'), "
                             "('claim-not-a-uuid', 1, 'Id', '\\x80', '\\x80'), "
                             "('x-0190a1b2c3d47e5f8a9b0c1d2e3f4a5b0000', 1, 'Id', '\\x80', '\\x80'), "
                             "('contact-0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5g', 1, 'Id', '\\x80', '\\x80')",
                             &ci);
    if (c == NULL)
        return;
    CHECK_EQ_INT(pjt_num(c, "SELECT count(*) FROM ids.seen"), 12);
    CHECK_EQ_INT(pjt_num(c, "SELECT count(*) FROM ids.seen WHERE id IS NOT NULL"), 6);
    CHECK_EQ_INT(pjt_num(c, "SELECT count(*) FROM ids.seen WHERE id IS NOT DISTINCT FROM " IDS_RULE), 12);
    CHECK_EQ_INT(
        pjt_num(c, "SELECT count(*) FROM ids.seen WHERE id = '0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c'"), 2);
    /* Called the old way, with eight arrays. */
    CHECK(pjt_exec(c, "DELETE FROM ids.seen; SELECT ids.__apply(array_agg(position ORDER BY position), "
                      "array_agg(stream ORDER BY position), array_agg(type ORDER BY position), "
                      "array_agg(version ORDER BY position), array_agg(workspace_id ORDER BY position), "
                      "array_agg(recorded_at ORDER BY position), array_agg(NULL::jsonb), "
                      "array_agg(NULL::jsonb)) FROM events"));
    CHECK_EQ_INT(pjt_num(c, "SELECT count(*) FROM ids.seen WHERE id IS NOT NULL"), 6);
    CHECK_EQ_INT(pjt_num(c, "SELECT count(*) FROM ids.seen WHERE id IS NOT DISTINCT FROM " IDS_RULE), 12);
    pjt_db_close(c, ci, d);
}

int main(void)
{
    sb_log_set_level(SB_LOG_WARN);
    SBTEST_RUN(test_lanes);
    SBTEST_RUN(test_calls);
    SBTEST_RUN(test_payloads);
    SBTEST_RUN(test_stream_ids);
    return sbtest_summary();
}
