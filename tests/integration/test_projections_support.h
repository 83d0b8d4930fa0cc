/* Helpers for the projection tests: run a runner in worker-loop threads, wait for it to catch up,
 * copy a log into a fresh database, and compare read models table by table.  Header-only; the
 * tests are separate binaries. */
#ifndef SB_TEST_PROJECTIONS_SUPPORT_H
#define SB_TEST_PROJECTIONS_SUPPORT_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/loop.h"
#include "events/follow.h"
#include "projections/projections.h"
#include "sbtest.h"
#include "testdb.h"

typedef struct pjt_runner_s {
    sb_loops_t loops;
    sb_follower_t *f;
    sb_projections_t *p;
    const char *conninfo;
    int started;
} pjt_runner_t;

static inline void pjt_on_start(sb_loop_t *loop, void *data)
{
    pjt_runner_t *t = data;
    if (loop->index != 0)
        return;
    if (sb_follower_start(t->f, loop) != 0 || sb_projections_start(t->p, loop, t->f) != 0) {
        fprintf(stderr, "pjt: cannot start the runner\n");
        abort();
    }
}

static inline void pjt_on_stop_runner(sb_loop_t *loop, void *data)
{
    pjt_runner_t *t = data;
    sb_projections_stop(t->p, NULL, NULL);
    sb_follower_stop(t->f);
}

static inline void pjt_on_start_hooks(sb_loop_t *loop, void *data)
{
    pjt_on_start(loop, data);
    if (loop->index == 0)
        sb_loop_on_stop(loop, pjt_on_stop_runner, data);
}

/* Starts a runner with options o (follower and projections on loop 0 of nloops). */
static inline pjt_runner_t *pjt_start_with(const sb_projections_options_t *o, int nloops)
{
    pjt_runner_t *t = calloc(1, sizeof(*t));
    t->conninfo = o->conninfo;
    t->f = sb_follower_new(o->conninfo, nloops);
    t->p = sb_projections_new(o);
    if (t->f == NULL || t->p == NULL || sb_loops_init(&t->loops, nloops, pjt_on_start_hooks, t) != 0 ||
        sb_loops_start(&t->loops) != 0) {
        fprintf(stderr, "pjt: cannot start loops\n");
        abort();
    }
    return t;
}

/* Starts a runner (follower and projections on loop 0 of nloops). */
static inline pjt_runner_t *pjt_start(const char *conninfo, const char *dir, int nloops, int partitions)
{
    sb_projections_options_t o = {.conninfo = conninfo, .dir = dir, .partitions = partitions};
    return pjt_start_with(&o, nloops);
}

/* Writes dir/name.sql (a projection file). */
static inline void pjt_write_file(const char *dir, const char *name, const char *text)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s.sql", dir, name);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        abort();
    fputs(text, f);
    fclose(f);
}

static inline void pjt_stop(pjt_runner_t *t)
{
    sb_loops_stop(&t->loops);
    sb_loops_join(&t->loops);
    sb_projections_free(t->p);
    sb_follower_free(t->f);
    free(t);
}

static inline PGconn *pjt_connect(const char *conninfo)
{
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "pjt: %s", PQerrorMessage(c));
        abort();
    }
    PQclear(PQexec(c, "SET client_min_messages = warning"));
    return c;
}

/* A fresh, migrated database called name with the catalog prepared for the files of dir (their
 * tables installed), and a connection to it; *ci gets its conninfo (the caller frees it).  NULL,
 * with the failure counted, when any step fails. */
static inline PGconn *pjt_db_open(const char *name, const char *dir, char **ci)
{
    *ci = sbt_db_create(name);
    if (!CHECK(*ci != NULL) || !CHECK(sbt_db_migrate(*ci) >= 0))
        return NULL;
    char err[512];
    if (!CHECK_EQ_INT(sb_projections_prepare(*ci, dir, err, sizeof(err)), 0))
        return NULL;
    return pjt_connect(*ci);
}

/* Undoes pjt_db_open's connection and conninfo, and removes dir (a test's own files) if given. */
static inline void pjt_db_close(PGconn *c, char *ci, const char *dir)
{
    PQfinish(c);
    free(ci);
    if (dir != NULL) {
        char cmd[512];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        CHECK_EQ_INT(system(cmd), 0);
    }
}

/* The first value of a one-row query, as a number (-1 on error or NULL). */
static inline long long pjt_num(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    long long v = -1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
        v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    else if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fprintf(stderr, "pjt: %s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    return v;
}

static inline bool pjt_exec(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok)
        fprintf(stderr, "pjt: %s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    return ok;
}

/* True once every live projection is at the log's end with no build or request pending, and
 * what the files deferred until then (-- @deferred: the read indexes) has run. */
static inline bool pjt_caught_up(PGconn *c)
{
    return pjt_num(c, "SELECT count(*) FROM projection_state WHERE state = 'live' AND ("
                      "position < (SELECT coalesce(max(position), 0) FROM events) "
                      "OR (build_hash IS NOT NULL AND build_position IS NOT NULL) "
                      "OR rebuild_requested_at IS NOT NULL)") == 0 &&
           pjt_num(c, "SELECT count(*) FROM pg_class WHERE relname = '__deferred' AND relkind = 'r'") == 0;
}

/* Waits (polling) until pjt_caught_up, at most timeout_s.  True if it happened. */
static inline bool pjt_wait_caught_up(PGconn *c, int timeout_s)
{
    uint64_t end = sb_clock_mono_ns() + (uint64_t)timeout_s * 1000000000ull;
    while (sb_clock_mono_ns() < end) {
        if (pjt_caught_up(c))
            return true;
        usleep(50 * 1000);
    }
    return false;
}

/* Copies the event log of from into to (same schema), preserving positions. */
static inline bool pjt_copy_log(PGconn *from, PGconn *to)
{
    PGresult *r =
        PQexec(from, "COPY (SELECT position, stream, version, type, workspace_id, payload, metadata, "
                     "recorded_at FROM events ORDER BY position) TO STDOUT (FORMAT binary)");
    if (PQresultStatus(r) != PGRES_COPY_OUT)
        return false;
    PQclear(r);
    PGresult *w = PQexec(to, "COPY events (position, stream, version, type, workspace_id, payload, metadata, "
                             "recorded_at) FROM STDIN (FORMAT binary)");
    if (PQresultStatus(w) != PGRES_COPY_IN)
        return false;
    PQclear(w);
    char *buf;
    int n;
    while ((n = PQgetCopyData(from, &buf, 0)) > 0) {
        PQputCopyData(to, buf, n);
        PQfreemem(buf);
    }
    PQclear(PQgetResult(from));
    PQputCopyEnd(to, NULL);
    w = PQgetResult(to);
    bool ok = PQresultStatus(w) == PGRES_COMMAND_OK;
    if (!ok)
        fprintf(stderr, "pjt: copy: %s", PQresultErrorMessage(w));
    PQclear(w);
    return ok && pjt_exec(to, "SELECT setval('events_position_seq', (SELECT max(position) FROM events))");
}

/* Compares every table of every live projection in databases a and b, row by row (as text, in a
 * canonical order).  Checks fail naming the table that differs.  Returns the number of tables. */
static inline int pjt_compare(PGconn *a, PGconn *b)
{
    PGresult *t =
        PQexec(a, "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                  "JOIN projection_state s ON s.name = n.nspname WHERE c.relkind = 'r' "
                  "ORDER BY 1, 2");
    int tables = 0;
    for (int i = 0; i < PQntuples(t); i++) {
        char sql[512];
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) || ':' || coalesce(md5(string_agg(x::text, E'\\n' ORDER BY x::text)), '') "
                 "FROM \"%s\".\"%s\" x",
                 PQgetvalue(t, i, 0), PQgetvalue(t, i, 1));
        PGresult *ra = PQexec(a, sql), *rb = PQexec(b, sql);
        const char *va =
            PQresultStatus(ra) == PGRES_TUPLES_OK ? PQgetvalue(ra, 0, 0) : PQresultErrorMessage(ra);
        const char *vb =
            PQresultStatus(rb) == PGRES_TUPLES_OK ? PQgetvalue(rb, 0, 0) : PQresultErrorMessage(rb);
        if (!CHECK_EQ_STR(va, vb))
            fprintf(stderr, "  table %s.%s differs\n", PQgetvalue(t, i, 0), PQgetvalue(t, i, 1));
        PQclear(ra);
        PQclear(rb);
        tables++;
    }
    PQclear(t);
    return tables;
}

#endif
