/* PostgreSQL restarts mid-run: the appender reconnects by itself, and nothing acknowledged is lost.
 *
 * A private cluster (this test stops and starts it, so it cannot share the suite's) takes
 * single-event commands, each on a fresh stream, 32 in flight.  Midway the cluster is stopped
 * (fast shutdown, which kills sessions) and started again.  Afterwards every command answered 0
 * must be in the log, every command answered "not sent" (SB_EDBDOWN, SB_ESHUTDOWN) must not be,
 * commands answered SB_EUNKNOWN may be either, and commands must have been acknowledged again after
 * the restart. */
#include "core/clock.h"
#include "core/error.h"
#include "core/loop.h"
#include "core/uuid.h"
#include "db/cluster.h"
#include "db/migrate.h"
#include "events/append.h"
#include "events/stream.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define IN_FLIGHT 32
#define RUN_MS 5000

typedef struct {
    uv_timer_t retry;
    sb_append_t a;
    sb_new_event_t ev;
    char stream[SB_STREAM_NAME_MAX];
} slot_t;

static sb_loop_t loop;
static sb_appender_t *ap;
static slot_t slots[IN_FLIGHT];
static FILE *out;
static uint64_t deadline;
static int inflight;
static const char payload[] = {(char)0x81, (char)0xa1, 'k', 0x01};

static void submit(slot_t *s);

static void on_retry(uv_timer_t *t)
{
    submit((slot_t *)t);
}

static void on_done(sb_append_t *a, int status)
{
    slot_t *s = a->data;
    /* stream status monotonic-ms */
    fprintf(out, "%s %d %llu\n", a->stream, status, (unsigned long long)(sb_clock_mono_ns() / 1000000));
    inflight--;
    if (sb_clock_mono_ns() < deadline) {
        if (status != 0)
            uv_timer_start(&s->retry, on_retry, 5, 0); /* the database is away: back off a little */
        else
            submit(s);
    } else if (inflight == 0) {
        uv_stop(&loop.uv);
    }
}

static void submit(slot_t *s)
{
    sb_uuid_t id;
    sb_uuid_v7(&id);
    sb_stream_format("restart", &id, s->stream);
    s->ev = (sb_new_event_t){"RestartTested", payload, sizeof(payload), NULL, 0};
    s->a = (sb_append_t){.stream = s->stream,
                         .expected_version = SB_VERSION_NO_STREAM,
                         .events = &s->ev,
                         .nevents = 1,
                         .cb = on_done,
                         .data = s};
    inflight++;
    sb_append(ap, &s->a);
}

static int writer(const char *conninfo, const char *path)
{
    out = fopen(path, "w");
    sb_loop_init_standalone(&loop);
    ap = sb_appender_open(&loop.uv, conninfo);
    deadline = sb_clock_mono_ns() + (uint64_t)RUN_MS * 1000000u;
    for (int i = 0; i < IN_FLIGHT; i++) {
        uv_timer_init(&loop.uv, &slots[i].retry);
        submit(&slots[i]);
    }
    uv_run(&loop.uv, UV_RUN_DEFAULT);
    for (int i = 0; i < IN_FLIGHT; i++)
        uv_close((uv_handle_t *)&slots[i].retry, NULL);
    sb_appender_close(ap, NULL, NULL);
    sb_loop_close_standalone(&loop);
    fclose(out);
    return 0;
}

static int run_db(const char *bin, const char *what)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "'%s' db %s >/dev/null", bin, what);
    return system(cmd);
}

int main(void)
{
    const char *bin = getenv("SWITCHBOARD_BIN");
    if (bin == NULL) {
        fprintf(stderr, "SWITCHBOARD_BIN is not set (run through ctest)\n");
        return 1;
    }
    char dir[256], path[300], err[512];
    snprintf(dir, sizeof(dir), "/tmp/sb-restart.%d", getpid());
    if (mkdir(dir, 0755) != 0)
        return 1;
    setenv("SWITCHBOARD_DATA_DIR", dir, 1);
    setenv("SWITCHBOARD_PG_FSYNC", "off", 1);
    int failed = 0;
    if (run_db(bin, "start") != 0) {
        fprintf(stderr, "cannot start a private cluster\n");
        return 1;
    }
    char *conninfo = sb_cluster_conninfo(dir);
    if (sb_migrate(conninfo, NULL, err, sizeof(err)) < 0) {
        fprintf(stderr, "migrate: %s\n", err);
        failed = 1;
        goto out;
    }
    snprintf(path, sizeof(path), "%s/answers", dir);
    fflush(NULL);
    pid_t child = fork();
    if (child == 0)
        _exit(writer(conninfo, path));

    usleep(RUN_MS * 1000 / 4);
    if (run_db(bin, "stop") != 0)
        failed = 1;
    uint64_t down_ms = sb_clock_mono_ns() / 1000000;
    usleep(500 * 1000);
    if (run_db(bin, "start") != 0)
        failed = 1;
    uint64_t up_ms = sb_clock_mono_ns() / 1000000;
    int st;
    waitpid(child, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        failed = 1;

    /* Load the answers into a table and compare with the log in SQL. */
    PGconn *db = PQconnectdb(conninfo);
    PQclear(PQexec(db, "CREATE TEMP TABLE answers (stream text, status int, at bigint)"));
    PQclear(PQexec(db, "COPY answers FROM STDIN"));
    FILE *f = fopen(path, "r");
    char line[256];
    while (f && fgets(line, sizeof(line), f) != NULL) {
        for (char *p = line; *p; p++)
            if (*p == ' ')
                *p = '\t';
        PQputCopyData(db, line, (int)strlen(line));
    }
    if (f)
        fclose(f);
    PQputCopyEnd(db, NULL);
    PQclear(PQgetResult(db));
    char q[1024];
    snprintf(q, sizeof(q),
             "SELECT count(*) FILTER (WHERE a.status = 0),"
             "       count(*) FILTER (WHERE a.status = 0 AND a.at > %llu),"
             "       count(*) FILTER (WHERE a.status <> 0 AND a.status <> %d),"
             "       count(*) FILTER (WHERE a.status = %d),"
             "       count(*) FILTER (WHERE a.status = 0 AND e.stream IS NULL),"
             "       count(*) FILTER (WHERE a.status <> 0 AND a.status <> %d AND e.stream IS NOT NULL)"
             " FROM answers a LEFT JOIN events e ON e.stream = a.stream",
             (unsigned long long)up_ms, SB_EUNKNOWN, SB_EUNKNOWN, SB_EUNKNOWN);
    PGresult *r = PQexec(db, q);
    long v[6] = {0};
    if (PQresultStatus(r) == PGRES_TUPLES_OK)
        for (int i = 0; i < 6; i++)
            v[i] = atol(PQgetvalue(r, 0, i));
    else
        fprintf(stderr, "%s", PQerrorMessage(db));
    PQclear(r);
    PQfinish(db);
    long acked = v[0], acked_after = v[1], not_sent = v[2], unknown = v[3], lost = v[4], phantom = v[5];
    fprintf(
        stderr,
        "acked %ld (%ld after the restart), not sent %ld, unknown %ld; lost %ld, stored though failed %ld; "
        "down for %llu ms\n",
        acked, acked_after, not_sent, unknown, lost, phantom, (unsigned long long)(up_ms - down_ms));
    if (acked == 0 || acked_after == 0 || lost != 0 || phantom != 0 || not_sent + unknown == 0)
        failed = 1;
out:
    free(conninfo);
    if (run_db(bin, "stop") != 0)
        failed = 1;
    if (!failed) {
        char cmd[400];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            failed = 1;
    }
    fprintf(stderr, "%s\n", failed ? "FAIL" : "ok");
    return failed;
}
