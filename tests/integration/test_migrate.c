/* Migrations against the shared test PostgreSQL: applied once then "nothing to apply", recorded in
 * schema_migrations, the event log's tables and indexes exist, a failing file rolls back alone and
 * is named in the error, an edited applied file is refused, concurrent runs apply each file once. */
#include <libpq-fe.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "db/migrate.h"
#include "testdb.h"

static int failures;

#define CHECK(cond)                                                                                          \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);                         \
            failures++;                                                                                      \
        }                                                                                                    \
    } while (0)

static size_t count_files(const sb_schema_file_t *files)
{
    size_t n = 0;
    while (files[n].name != NULL)
        n++;
    return n;
}

/* Runs sb_migrate_files with the report captured into *report (caller frees). */
static int migrate_capture(const char *ci, const sb_schema_file_t *files, char **report, char *err,
                           size_t errlen)
{
    size_t len = 0;
    FILE *f = open_memstream(report, &len);
    if (f == NULL)
        abort();
    int rc = sb_migrate_files(ci, files, f, err, errlen);
    fclose(f);
    return rc;
}

/* The single value of a one-row query, as text (caller frees), or NULL. */
static char *query_value(const char *ci, const char *sql)
{
    PGconn *conn = PQconnectdb(ci);
    char *out = NULL;
    if (PQstatus(conn) == CONNECTION_OK) {
        PGresult *res = PQexec(conn, sql);
        if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
            out = strdup(PQgetvalue(res, 0, 0));
        else if (PQresultStatus(res) != PGRES_TUPLES_OK)
            fprintf(stderr, "query failed: %s: %s", sql, PQerrorMessage(conn));
        PQclear(res);
    } else {
        fprintf(stderr, "connect failed: %s", PQerrorMessage(conn));
    }
    PQfinish(conn);
    return out;
}

static bool query_is(const char *ci, const char *sql, const char *want)
{
    char *got = query_value(ci, sql);
    bool ok = got != NULL && strcmp(got, want) == 0;
    if (!ok)
        fprintf(stderr, "  %s\n  got '%s', want '%s'\n", sql, got ? got : "(null)", want);
    free(got);
    return ok;
}

static void test_apply_once(void)
{
    char *ci = sbt_db_create("integ_migrate_once");
    CHECK(ci != NULL);
    if (ci == NULL)
        return;
    char err[1024] = "";
    size_t nfiles = count_files(sb_schema_files);
    CHECK(nfiles >= 1);
    CHECK(strcmp(sb_schema_files[0].name, "001_event_log.sql") == 0);

    CHECK(sb_migrate_is_current(ci, err, sizeof(err)) == 0);

    char *report = NULL;
    int n = migrate_capture(ci, sb_schema_files, &report, err, sizeof(err));
    if (n < 0)
        fprintf(stderr, "migrate: %s\n", err);
    CHECK(n == (int)nfiles);
    /* One line per file, in name order. */
    char *expect = NULL;
    size_t elen = 0;
    FILE *e = open_memstream(&expect, &elen);
    for (size_t i = 0; i < nfiles; i++)
        fprintf(e, "applied %s\n", sb_schema_files[i].name);
    fclose(e);
    CHECK(report != NULL && strcmp(report, expect) == 0);
    free(expect);
    free(report);

    report = NULL;
    CHECK(migrate_capture(ci, sb_schema_files, &report, err, sizeof(err)) == 0);
    CHECK(report != NULL && strcmp(report, "nothing to apply\n") == 0);
    free(report);
    CHECK(sb_migrate_is_current(ci, err, sizeof(err)) == 1);

    /* The bookkeeping: one row per file, a sha256 checksum, a time. */
    char want[32];
    snprintf(want, sizeof(want), "%zu", nfiles);
    CHECK(query_is(ci, "SELECT count(*) FROM schema_migrations", want));
    CHECK(query_is(ci, "SELECT min(name) FROM schema_migrations", "001_event_log.sql"));
    CHECK(query_is(
        ci, "SELECT bool_and(checksum ~ '^[0-9a-f]{64}$' AND applied_at <= now()) FROM schema_migrations",
        "t"));

    /* The event log as 001 defines it. */
    CHECK(query_is(
        ci, "SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes WHERE tablename = 'events'",
        "events_category_position,events_pkey,events_recorded_at,events_stream_version,"
        "events_workspace_position"));
    CHECK(query_is(
        ci, "SELECT count(*) FROM pg_tables WHERE tablename IN ('events', 'snapshots', 'checkpoints')", "3"));
    CHECK(query_is(
        ci, "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'events'::regclass AND NOT tgisinternal", "2"));
    free(ci);
    CHECK(sbt_db_drop("integ_migrate_once") == 0);
}

static void test_failure_and_edit(void)
{
    char *ci = sbt_db_create("integ_migrate_fail");
    CHECK(ci != NULL);
    if (ci == NULL)
        return;
    char err[1024] = "";
    /* Out of order on purpose: they must run by name. */
    const sb_schema_file_t files[] = {
        {"003_bad.sql", "CREATE TABLE t_bad (x int);\nSELECT no_such_column FROM t_bad;\n"},
        {"001_event_log.sql", sb_schema_files[0].sql},
        {"002_ok.sql", "CREATE TABLE t_ok (x int);"},
        {NULL, NULL},
    };
    char *report = NULL;
    int n = migrate_capture(ci, files, &report, err, sizeof(err));
    CHECK(n == SB_EDB);
    CHECK(report != NULL && strcmp(report, "applied 001_event_log.sql\napplied 002_ok.sql\n") == 0);
    free(report);
    /* The server's message, the file and the line, on one line. */
    CHECK(strstr(err, "003_bad.sql") != NULL);
    CHECK(strstr(err, "no_such_column") != NULL);
    CHECK(strstr(err, "line 2") != NULL);
    CHECK(strchr(err, '\n') == NULL);
    /* 003 rolled back as a whole, 001 and 002 stayed. */
    CHECK(query_is(ci, "SELECT to_regclass('t_bad') IS NULL AND to_regclass('t_ok') IS NOT NULL", "t"));
    CHECK(query_is(ci, "SELECT string_agg(name, ',' ORDER BY name) FROM schema_migrations",
                   "001_event_log.sql,002_ok.sql"));

    /* An applied file edited afterwards: refused, naming it, and nothing else is applied. */
    const sb_schema_file_t edited[] = {
        {"001_event_log.sql", sb_schema_files[0].sql},
        {"002_ok.sql", "CREATE TABLE t_ok (x int, y int);"},
        {"004_new.sql", "CREATE TABLE t_new (x int);"},
        {NULL, NULL},
    };
    report = NULL;
    err[0] = '\0';
    n = migrate_capture(ci, edited, &report, err, sizeof(err));
    CHECK(n == SB_ECONFLICT);
    CHECK(strstr(err, "002_ok.sql") != NULL);
    CHECK(strstr(err, "checksum") != NULL);
    CHECK(report != NULL && strcmp(report, "") == 0);
    free(report);
    CHECK(query_is(ci, "SELECT to_regclass('t_new') IS NULL", "t"));

    /* The real schema checks the same way. */
    CHECK(sb_migrate_is_current(ci, err, sizeof(err)) == (count_files(sb_schema_files) == 1 ? 1 : 0));
    free(ci);
    CHECK(sbt_db_drop("integ_migrate_fail") == 0);
}

typedef struct {
    const char *ci;
    int rc;
    char err[512];
} runner_t;

static void *run_migrate(void *arg)
{
    runner_t *r = arg;
    r->rc = sb_migrate(r->ci, NULL, r->err, sizeof(r->err));
    return NULL;
}

static void test_concurrent(void)
{
    char *ci = sbt_db_create("integ_migrate_conc");
    CHECK(ci != NULL);
    if (ci == NULL)
        return;
    enum { N = 6 };
    runner_t runners[N];
    pthread_t threads[N];
    for (int i = 0; i < N; i++) {
        runners[i] = (runner_t){.ci = ci};
        CHECK(pthread_create(&threads[i], NULL, run_migrate, &runners[i]) == 0);
    }
    int total = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(threads[i], NULL);
        if (runners[i].rc < 0)
            fprintf(stderr, "runner %d: %s\n", i, runners[i].err);
        CHECK(runners[i].rc >= 0);
        total += runners[i].rc > 0 ? runners[i].rc : 0;
    }
    /* Each file applied exactly once across all the runners. */
    CHECK(total == (int)count_files(sb_schema_files));
    free(ci);
    CHECK(sbt_db_drop("integ_migrate_conc") == 0);
}

static void test_unreachable(void)
{
    char err[512] = "";
    int rc =
        sb_migrate("host=/nonexistent-sb-dir port=5432 dbname=x connect_timeout=2", NULL, err, sizeof(err));
    CHECK(rc == SB_EDBDOWN);
    CHECK(strncmp(err, "cannot connect to the database", 30) == 0);
    CHECK(strchr(err, '\n') == NULL);
}

int main(void)
{
    test_apply_once();
    test_failure_and_edit();
    test_concurrent();
    test_unreachable();
    if (failures != 0) {
        fprintf(stderr, "test_migrate: %d check(s) failed\n", failures);
        return 1;
    }
    puts("test_migrate: ok");
    return 0;
}
