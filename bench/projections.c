/* Projection catch-up: how fast every read model in projections/ builds from a log of 1,000,000
 * realistic events (bench/workload.h: the real deciders' events, mostly messages).
 *
 *   bench_projections CONNINFO SECONDS [EVENTS] [PARTITIONS]
 *
 * Makes its own database next to CONNINFO's (<db>_projections, dropped first), appends the events,
 * then starts a runner and times it from start until every projection's checkpoint reaches the
 * log's end.  SECONDS bounds that wait.  Prints key=value lines. */
#include "../bench/workload.h"
#include "core/log.h"
#include "core/loop.h"
#include "db/migrate.h"
#include "events/follow.h"
#include "projections/projections.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

typedef struct {
    sb_follower_t *f;
    sb_projections_t *p;
} runner_t;

static void on_stop(sb_loop_t *loop, void *data)
{
    runner_t *r = data;
    sb_projections_stop(r->p, NULL, NULL);
    sb_follower_stop(r->f);
}

static void on_start(sb_loop_t *loop, void *data)
{
    runner_t *r = data;
    if (sb_follower_start(r->f, loop) != 0 || sb_projections_start(r->p, loop, r->f) != 0) {
        fprintf(stderr, "bench_projections: cannot start the runner\n");
        exit(1);
    }
    sb_loop_on_stop(loop, on_stop, r);
}

static long long num(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    long long v = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0)
                      ? strtoll(PQgetvalue(r, 0, 0), NULL, 10)
                      : -1;
    PQclear(r);
    return v;
}

/* The current WAL insert position, as text (empty when the query fails). */
static void wal_point(PGconn *c, char *out, size_t cap)
{
    PGresult *r = PQexec(c, "SELECT pg_current_wal_insert_lsn()");
    snprintf(out, cap, "%s", PQresultStatus(r) == PGRES_TUPLES_OK ? PQgetvalue(r, 0, 0) : "0/0");
    PQclear(r);
}

/* CONNINFO with its database replaced by dbname (caller frees). */
static char *with_db(const char *conninfo, const char *dbname, char *base_db, size_t cap)
{
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &err);
    if (opts == NULL) {
        fprintf(stderr, "bench_projections: %s\n", err ? err : "bad conninfo");
        exit(2);
    }
    sb_buf_t b = SB_BUF_INIT;
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
        if (strcmp(o->keyword, "dbname") == 0) {
            snprintf(base_db, cap, "%s", o->val ? o->val : "postgres");
            continue;
        }
        if (o->val == NULL)
            continue;
        sb_buf_printf(&b, "%s='", o->keyword);
        for (const char *p = o->val; *p; p++) {
            if (*p == '\'' || *p == '\\')
                sb_buf_putc(&b, '\\');
            sb_buf_putc(&b, *p);
        }
        sb_buf_puts(&b, "' ");
    }
    sb_buf_printf(&b, "dbname='%s'", dbname);
    PQconninfoFree(opts);
    return sb_buf_steal(&b);
}

static int cmp_desc(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_projections CONNINFO SECONDS [EVENTS] [PARTITIONS]\n");
        return 2;
    }
    int seconds = atoi(argv[2]);
    long events = argc > 3 ? atol(argv[3]) : 1000000;
    int partitions = argc > 4 ? atoi(argv[4]) : 2;
    if (seconds < 60)
        seconds = 60; /* the catch-up takes what it takes; SECONDS only bounds a stuck run */
    sb_log_set_level(SB_LOG_WARN);

    char base[256], name[300];
    char *admin = with_db(argv[1], "postgres", base, sizeof(base));
    snprintf(name, sizeof(name), "%s_projections", base);
    PGconn *a = PQconnectdb(admin);
    if (PQstatus(a) != CONNECTION_OK) {
        fprintf(stderr, "bench_projections: %s", PQerrorMessage(a));
        return 1;
    }
    /* BENCH_REUSE_LOG=1 keeps the generated log in a template database (<db>_projections_log_N) and
     * copies it for every run: A/B comparisons then skip the minutes of generating it. */
    bool reuse = getenv("BENCH_REUSE_LOG") != NULL && strcmp(getenv("BENCH_REUSE_LOG"), "1") == 0;
    char tmpl[340];
    snprintf(tmpl, sizeof(tmpl), "%s_projections_log_%ld", base, events);
    char sql[1024];
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)", name);
    PQclear(PQexec(a, sql));
    bool have_tmpl = false;
    if (reuse) {
        snprintf(sql, sizeof(sql), "SELECT count(*) FROM pg_database WHERE datname = '%s'", tmpl);
        have_tmpl = num(a, sql) == 1;
    }
    if (have_tmpl)
        snprintf(sql, sizeof(sql), "CREATE DATABASE \"%s\" TEMPLATE \"%s\" STRATEGY FILE_COPY", name, tmpl);
    else
        snprintf(sql, sizeof(sql), "CREATE DATABASE \"%s\"", name);
    PQclear(PQexec(a, sql));
    char *ci = with_db(argv[1], name, base, sizeof(base));
    char err[512];
    const char *dir =
        getenv("BENCH_PROJECTIONS_DIR") ? getenv("BENCH_PROJECTIONS_DIR") : SB_SOURCE_DIR "/projections";
    if (sb_migrate(ci, NULL, err, sizeof(err)) < 0) {
        fprintf(stderr, "bench_projections: %s\n", err);
        return 1;
    }

    PGconn *c = PQconnectdb(ci);
    wl_t w;
    wl_init(&w, 42, 1767225600000000LL);
    uint64_t t0 = sb_clock_mono_ns();
    double gen_s = 0, gen_cpu = 0;
    if (!have_tmpl) {
        wl_setup(&w, 20);
        if (wl_generate(&w, c, events - w.events, 10000) != 0)
            return 1;
        gen_s = (double)(sb_clock_mono_ns() - t0) / 1e9;
        struct rusage gru;
        getrusage(RUSAGE_SELF, &gru);
        gen_cpu = (double)gru.ru_utime.tv_sec + (double)gru.ru_utime.tv_usec / 1e6 +
                  (double)gru.ru_stime.tv_sec + (double)gru.ru_stime.tv_usec / 1e6;
        PQclear(PQexec(c, "VACUUM ANALYZE events"));
        if (reuse) {
            PQfinish(c);
            snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS \"%s\"", tmpl);
            PQclear(PQexec(a, sql));
            snprintf(sql, sizeof(sql), "ALTER DATABASE \"%s\" RENAME TO \"%s\"", name, tmpl);
            PQclear(PQexec(a, sql));
            snprintf(sql, sizeof(sql), "CREATE DATABASE \"%s\" TEMPLATE \"%s\" STRATEGY FILE_COPY", name,
                     tmpl);
            PGresult *cr = PQexec(a, sql);
            if (PQresultStatus(cr) != PGRES_COMMAND_OK) {
                fprintf(stderr, "bench_projections: %s", PQerrorMessage(a));
                return 1;
            }
            PQclear(cr);
            c = PQconnectdb(ci);
        }
    }
    PQfinish(a);
    if (sb_projections_prepare(ci, dir, err, sizeof(err)) != 0) {
        fprintf(stderr, "bench_projections: %s\n", err);
        return 1;
    }
    /* The generated log's pages are written out before the clock starts, so the catch-up's
     * backends do not write them back as they evict (a copied template is checkpointed already). */
    PQclear(PQexec(c, "CHECKPOINT"));
    long long total = num(c, "SELECT count(*) FROM events");
    long long head = num(c, "SELECT max(position) FROM events");

    runner_t r;
    r.f = sb_follower_new(ci, 1);
    int max_batch = getenv("BENCH_MAX_BATCH") ? atoi(getenv("BENCH_MAX_BATCH")) : 0;
    sb_projections_options_t o = {
        .conninfo = ci, .dir = dir, .partitions = partitions, .max_batch = max_batch};
    r.p = sb_projections_new(&o);
    sb_loops_t loops;
    if (r.f == NULL || r.p == NULL || sb_loops_init(&loops, 1, on_start, &r) != 0) {
        fprintf(stderr, "bench_projections: cannot set up the runner\n");
        return 1;
    }
    char behind[256];
    snprintf(behind, sizeof(behind),
             "SELECT (SELECT count(*) FROM projection_state WHERE state = 'live' AND position < %lld) + "
             "(SELECT count(*) FROM pg_class WHERE relname = '__deferred' AND relkind = 'r')",
             head);
    /* What the catch-up writes: WAL (full-page images after a checkpoint cost the backends a copy
     * and a CRC of 8 kB each) and the checkpoints that ran meanwhile.  pg_waldump --stats over the
     * printed LSN range splits the WAL by kind. */
    char lsn0[64];
    wal_point(c, lsn0, sizeof(lsn0));
    long long ckpt0 = num(c, "SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter");
    long long bwrite0 = num(c, "SELECT buffers_backend FROM pg_stat_bgwriter");
    long long fpi0 = num(c, "SELECT wal_fpi FROM pg_stat_wal");
    t0 = sb_clock_mono_ns();
    sb_loops_start(&loops);
    uint64_t deadline = t0 + (uint64_t)seconds * 1000000000ull;
    long long left = -1;
    while (sb_clock_mono_ns() < deadline && (left = num(c, behind)) != 0)
        usleep(20 * 1000);
    double run_s = (double)(sb_clock_mono_ns() - t0) / 1e9;
    long long slowest = num(c, "SELECT min(position) FROM projection_state WHERE state = 'live'");
    char lsn1[64];
    wal_point(c, lsn1, sizeof(lsn1));
    /* CPU spent by the database sessions of this database (the runner's; ours is idle) and by this
     * process (its runner thread): a figure that holds on a busy machine, where wall time does not. */
    double db_cpu = 0, sess[64];
    unsigned long long minflt = 0;
    int nsess = 0;
    PGresult *pr = PQexec(c, "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                             "AND pid <> pg_backend_pid()");
    long hz = sysconf(_SC_CLK_TCK);
    for (int i = 0; PQresultStatus(pr) == PGRES_TUPLES_OK && i < PQntuples(pr); i++) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%s/stat", PQgetvalue(pr, i, 0));
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        char line[1024];
        if (fgets(line, sizeof(line), f) != NULL) {
            const char *p = strrchr(line, ')');
            unsigned long ut = 0, st = 0, mf = 0;
            /* fields after the command: state ppid pgrp session tty tpgid flags minflt cminflt
             * majflt cmajflt utime stime */
            if (p != NULL &&
                sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %lu %*u %*u %*u %lu %lu", &mf, &ut, &st) == 3) {
                db_cpu += (double)(ut + st) / (double)hz;
                minflt += mf;
                if (nsess < 64)
                    sess[nsess++] = (double)(ut + st) / (double)hz;
            }
        }
        fclose(f);
    }
    PQclear(pr);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double self_cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                      (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6 - gen_cpu;
    sb_projections_stats_t st;
    sb_projections_stats(r.p, &st);
    sb_loops_stop(&loops);
    sb_loops_join(&loops);
    sb_projections_free(r.p);
    sb_follower_free(r.f);
    /* Sessions report their WAL counters when they end: wait (5 s at most) for the runner's. */
    for (int i = 0; i < 250 && num(c, "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                                      "current_database() AND pid <> pg_backend_pid()") > 0;
         i++)
        usleep(20 * 1000);
    long long fpi = num(c, "SELECT wal_fpi FROM pg_stat_wal") - fpi0;

    printf("projections_events=%lld\n", total);
    printf("projections_generate_seconds=%.1f\n", gen_s);
    printf("projections_partitions=%d\n", partitions);
    printf("projections_read_models=%lld\n",
           num(c, "SELECT count(*) FROM projection_state WHERE state = 'live'"));
    if (left != 0) {
        printf("projections_catchup=incomplete after %.1f s (slowest at %lld of %lld)\n", run_s, slowest,
               head);
        PQfinish(c);
        return 1;
    }
    printf("projections_catchup_seconds=%.2f\n", run_s);
    printf("projections_catchup_events_per_s=%.0f\n", (double)total / run_s);
    /* The database's CPU is read just before the runner stops (its sessions end with it). */
    printf("projections_db_cpu_seconds=%.2f\n", db_cpu);
    printf("projections_runner_cpu_seconds=%.2f\n", self_cpu);
    /* Minor page faults of those sessions: memory a backend returns to the system after a batch
     * and faults in again for the next (malloc settings, docs/operations.md). */
    printf("projections_db_page_faults=%llu\n", minflt);
    /* Each session's share, largest first: the lanes lead.  lane_wait is time one lane of a unit
     * was idle while another applied (at the end of the log, or when it ran out of batches in
     * hand); lanes_ahead counts batches a lane started before the other had committed the one
     * before. */
    qsort(sess, (size_t)nsess, sizeof(*sess), cmp_desc);
    printf("projections_batches=%llu (%.0f events each)\n", (unsigned long long)st.batches,
           st.batches > 0 ? (double)st.events / (double)st.batches : 0.0);
    printf("projections_apply_seconds=%.2f lane_wait_seconds=%.2f lanes_ahead=%llu\n",
           (double)st.apply_us / 1e6, (double)st.lane_wait_us / 1e6, (unsigned long long)st.lanes_ahead);
    printf("projections_session_cpu_seconds=");
    for (int i = 0; i < nsess && i < 4; i++)
        printf("%s%.2f", i ? "," : "", sess[i]);
    printf("\n");
    printf("projections_cpu_us_per_event=%.1f\n", (db_cpu + self_cpu) * 1e6 / (double)total);
    char walsql[256];
    snprintf(walsql, sizeof(walsql), "SELECT pg_wal_lsn_diff('%s', '%s')::bigint", lsn1, lsn0);
    long long wal = num(c, walsql);
    printf("projections_wal_bytes_per_event=%.0f (%s..%s) full_page_images=%lld checkpoints=%lld "
           "backend_buffer_writes=%lld\n",
           wal >= 0 ? (double)wal / (double)total : -1.0, lsn0, lsn1, fpi,
           num(c, "SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter") - ckpt0,
           num(c, "SELECT buffers_backend FROM pg_stat_bgwriter") - bwrite0);
    printf("projections_events_per_s_2_idle_cores=%.0f\n", 2.0 * (double)total / (db_cpu + self_cpu));
    PQfinish(c);
    wl_free(&w);
    free(ci);
    free(admin);
    return 0;
}
