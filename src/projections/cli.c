/* `switchboard projections list | status [NAME...] | rebuild NAME... | --all` (SPEC §3).
 *
 * list and status read the catalog and the files with blocking libpq (this is not a server loop).
 * rebuild marks the projections for rebuilding in the catalog and wakes the runner; if no process
 * holds the runner's lease (no server runs), it runs a runner itself, in a worker-loop thread, for
 * as long as the rebuild takes.  Either way it reports progress on stderr until every requested
 * projection has been swapped in, and exits 0, or 1 when a rebuild fails. */
#include "projections/pj_int.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "db/cluster.h"
#include "events/follow.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *out)
{
    fputs("usage: switchboard projections list\n"
          "       switchboard projections status [NAME...]\n"
          "       switchboard projections rebuild NAME... | --all\n\n"
          "Read models are built from the event log by the SQL files in the projections directory\n"
          "(docs/projections.md).\n\n"
          "  list      each projection with its state, checkpoint and lag (events behind the log)\n"
          "  status    the same in detail: lag in seconds, rebuild progress, errors, and which process\n"
          "            runs the projections\n"
          "  rebuild   builds the named projections (or all) again from position 0 into fresh tables\n"
          "            while the current ones keep serving reads, and swaps them in once caught up.\n"
          "            A running server does the work; without one this command does.  Progress goes\n"
          "            to stderr; it returns when every rebuild is swapped in.\n"
          "\noptions (environment variable in brackets):\n",
          out);
    fputs(sb_config_flags_help, out);
}

/* ---- catalog snapshots -------------------------------------------------------------------------- */

typedef struct info_s {
    char name[SB_PJ_NAME_MAX + 1];
    bool in_catalog, has_file, changed, live, building, build_failed, requested;
    int64_t position, build_position;
    double lag_seconds;
    char error[512], build_error[512];
    char built_at[40], updated_at[40], build_started_at[40];
    char file[600];
} info_t;

typedef struct snap_s {
    info_t *items;
    int n;
    int64_t head;
    bool catalog;
    char runner[300];
} snap_t;

static info_t *snap_find(snap_t *s, const char *name)
{
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->items[i].name, name) == 0)
            return &s->items[i];
    return NULL;
}

static info_t *snap_add(snap_t *s, const char *name)
{
    info_t *i = snap_find(s, name);
    if (i != NULL)
        return i;
    info_t *p = realloc(s->items, (size_t)(s->n + 1) * sizeof(*p));
    if (p == NULL)
        abort();
    s->items = p;
    i = &s->items[s->n++];
    memset(i, 0, sizeof(*i));
    snprintf(i->name, sizeof(i->name), "%s", name);
    return i;
}

static int cmp_info(const void *a, const void *b)
{
    return strcmp(((const info_t *)a)->name, ((const info_t *)b)->name);
}

static void copy_field(char *out, size_t cap, PGresult *r, int row, int col)
{
    snprintf(out, cap, "%s", PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col));
}

/* Reads the catalog, the log's head and the lease holder, and the files of dir. */
static int snapshot(PGconn *c, const char *dir, snap_t *s, char *err, size_t errlen)
{
    memset(s, 0, sizeof(*s));
    PGresult *r = PQexec(c, "SELECT to_regclass('projection_state') IS NOT NULL, "
                            "(SELECT coalesce(max(position), 0) FROM events)");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "%s", PQresultErrorMessage(r));
        PQclear(r);
        return SB_EDB;
    }
    s->catalog = PQgetvalue(r, 0, 0)[0] == 't';
    s->head = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    PQclear(r);
    if (s->catalog) {
        r = PQexec(
            c, "SELECT name, state, hash, position, build_hash IS NOT NULL AND build_position IS NOT NULL, "
               "coalesce(build_position, 0), build_hash IS NOT NULL AND build_position IS NULL, "
               "rebuild_requested_at IS NOT NULL, coalesce(error, ''), coalesce(build_error, ''), "
               "to_char(built_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
               "to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
               "to_char(build_started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
               "coalesce(extract(epoch FROM clock_timestamp() - (SELECT e.recorded_at FROM events e "
               "WHERE e.position > s.position ORDER BY e.position LIMIT 1)), 0), build_hash "
               "FROM projection_state s ORDER BY name");
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            snprintf(err, errlen, "%s", PQresultErrorMessage(r));
            PQclear(r);
            return SB_EDB;
        }
        for (int k = 0; k < PQntuples(r); k++) {
            info_t *i = snap_add(s, PQgetvalue(r, k, 0));
            i->in_catalog = true;
            i->live = strcmp(PQgetvalue(r, k, 1), "live") == 0;
            copy_field(i->file, sizeof(i->file), r, k, 2); /* the hash, for now */
            i->position = strtoll(PQgetvalue(r, k, 3), NULL, 10);
            i->building = PQgetvalue(r, k, 4)[0] == 't';
            i->build_position = strtoll(PQgetvalue(r, k, 5), NULL, 10);
            i->build_failed = PQgetvalue(r, k, 6)[0] == 't';
            i->requested = PQgetvalue(r, k, 7)[0] == 't';
            copy_field(i->error, sizeof(i->error), r, k, 8);
            copy_field(i->build_error, sizeof(i->build_error), r, k, 9);
            copy_field(i->built_at, sizeof(i->built_at), r, k, 10);
            copy_field(i->updated_at, sizeof(i->updated_at), r, k, 11);
            copy_field(i->build_started_at, sizeof(i->build_started_at), r, k, 12);
            i->lag_seconds = strtod(PQgetvalue(r, k, 13), NULL);
        }
        PQclear(r);
        /* The lease: a session-level advisory lock on a 64-bit key (high and low halves).  Advisory
         * locks belong to a database, and pg_locks shows every database's: a runner of another
         * database on the same cluster is not ours. */
        r = PQexec(c, "SELECT a.pid, coalesce(nullif(a.application_name, ''), '?'), "
                      "coalesce(host(a.client_addr), 'local'), "
                      "to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
                      "FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                      "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
                      "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                      "AND l.classid = (" SB_PJ_LEASE_LOCK "::bigint >> 32)::oid "
                      "AND l.objid = (" SB_PJ_LEASE_LOCK "::bigint & 4294967295)::oid");
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0)
            snprintf(s->runner, sizeof(s->runner), "database session pid %s (%s, %s), since %s",
                     PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2), PQgetvalue(r, 0, 3));
        PQclear(r);
    }
    /* The files: which exist, and which differ from what the live tables were built from. */
    sb_pj_def_t **defs = NULL;
    int n = 0;
    char lerr[512];
    if (sb_pj_load_dir(dir, &defs, &n, NULL, NULL, lerr, sizeof(lerr)) != 0)
        fprintf(stderr, "switchboard: %s\n", lerr);
    for (int k = 0; k < n; k++) {
        info_t *i = snap_add(s, defs[k]->name);
        i->has_file = true;
        i->changed = i->in_catalog && strcmp(i->file, defs[k]->hash) != 0;
        snprintf(i->file, sizeof(i->file), "%s", defs[k]->path);
    }
    for (int k = 0; k < s->n; k++)
        if (!s->items[k].has_file)
            s->items[k].file[0] = '\0';
    sb_pj_defs_free(defs, n);
    qsort(s->items, (size_t)s->n, sizeof(*s->items), cmp_info);
    return 0;
}

static const char *state_of(const info_t *i)
{
    if (!i->in_catalog)
        return "new";
    if (!i->live)
        return "failed";
    if (i->building)
        return "rebuilding";
    return "live";
}

/* ---- connecting ----------------------------------------------------------------------------------- */

typedef struct cli_s {
    sb_config_t *cfg;
    bool cluster_started;
    char *conninfo;
    PGconn *c;
} cli_t;

static int cli_open(cli_t *x, sb_config_t *cfg)
{
    char err[512];
    x->cfg = cfg;
    if (cfg->database_url == NULL &&
        sb_cluster_start(cfg->data_dir, &x->cluster_started, err, sizeof(err)) != 0) {
        fprintf(stderr, "switchboard: %s\n", err);
        return 1;
    }
    x->conninfo = sb_db_conninfo(cfg);
    if (x->conninfo == NULL) {
        fprintf(stderr, "switchboard: out of memory\n");
        return 1;
    }
    x->c = sb__pj_connect(x->conninfo, err, sizeof(err));
    if (x->c == NULL) {
        fprintf(stderr, "switchboard: %s\n", err);
        return 1;
    }
    return 0;
}

static int cli_close(cli_t *x, int rc)
{
    char err[512];
    if (x->c != NULL)
        PQfinish(x->c);
    free(x->conninfo);
    if (x->cluster_started && sb_cluster_stop(x->cfg->data_dir, err, sizeof(err)) != 0) {
        fprintf(stderr, "switchboard: %s\n", err);
        rc = 1;
    }
    return rc;
}

/* ---- list and status ---------------------------------------------------------------------------- */

static int cmd_list(sb_config_t *cfg)
{
    cli_t x = {0};
    if (cli_open(&x, cfg) != 0)
        return cli_close(&x, 1);
    snap_t s;
    char err[512];
    if (snapshot(x.c, cfg->projections_dir, &s, err, sizeof(err)) != 0) {
        fprintf(stderr, "switchboard: %s\n", err);
        return cli_close(&x, 1);
    }
    printf("%-20s %-11s %12s %10s  %s\n", "NAME", "STATE", "CHECKPOINT", "LAG", "FILE");
    for (int k = 0; k < s.n; k++) {
        const info_t *i = &s.items[k];
        char ck[24] = "-", lag[24] = "-";
        if (i->in_catalog && i->live) {
            snprintf(ck, sizeof(ck), "%" PRId64, i->position);
            snprintf(lag, sizeof(lag), "%" PRId64, s.head > i->position ? s.head - i->position : 0);
        }
        printf("%-20s %-11s %12s %10s  %s%s\n", i->name, state_of(i), ck, lag,
               i->has_file ? i->file : "(no file)",
               i->changed ? " (changed: rebuilt when a runner starts)" : "");
    }
    free(s.items);
    return cli_close(&x, 0);
}

static bool selected(char **names, int n, const char *name)
{
    if (n == 0)
        return true;
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return true;
    return false;
}

static int cmd_status(sb_config_t *cfg, char **names, int nnames)
{
    cli_t x = {0};
    if (cli_open(&x, cfg) != 0)
        return cli_close(&x, 1);
    snap_t s;
    char err[512];
    if (snapshot(x.c, cfg->projections_dir, &s, err, sizeof(err)) != 0) {
        fprintf(stderr, "switchboard: %s\n", err);
        return cli_close(&x, 1);
    }
    printf("log head: %" PRId64 "\n", s.head);
    printf("runner:   %s\n", s.runner[0] ? s.runner : "none (no server is running the projections)");
    printf("files:    %s\n", cfg->projections_dir);
    int shown = 0;
    for (int k = 0; k < s.n; k++) {
        const info_t *i = &s.items[k];
        if (!selected(names, nnames, i->name))
            continue;
        shown++;
        printf("\n%s: %s\n", i->name, state_of(i));
        printf("  file:        %s%s\n", i->has_file ? i->file : "(no file: the tables stay until dropped)",
               i->changed ? " (changed since the live tables were built)" : "");
        if (!i->in_catalog) {
            printf("  not installed yet: a runner or `projections rebuild %s` builds it\n", i->name);
            continue;
        }
        if (i->live) {
            int64_t lag = s.head > i->position ? s.head - i->position : 0;
            printf("  checkpoint:  %" PRId64 "\n", i->position);
            printf("  lag:         %" PRId64 " events, %.1f s\n", lag, lag > 0 ? i->lag_seconds : 0.0);
            printf("  built:       %s\n", i->built_at[0] ? i->built_at : "-");
            printf("  updated:     %s\n", i->updated_at);
        }
        if (i->building) {
            double pct = s.head > 0 ? 100.0 * (double)i->build_position / (double)s.head : 100.0;
            printf("  rebuilding:  %" PRId64 " of %" PRId64 " (%.0f%%), started %s\n", i->build_position,
                   s.head, pct > 100 ? 100 : pct, i->build_started_at);
        }
        if (i->requested)
            printf("  rebuild:     requested, waiting for the runner\n");
        if (i->error[0])
            printf("  error:       %s\n", i->error);
        if (i->build_error[0])
            printf("  %s %s\n", i->build_failed ? "build failed:" : "build error:", i->build_error);
    }
    for (int k = 0; k < nnames; k++) {
        if (snap_find(&s, names[k]) == NULL) {
            fprintf(stderr, "switchboard: no projection named '%s'\n", names[k]);
            free(s.items);
            return cli_close(&x, 2);
        }
    }
    if (shown == 0)
        printf("\nno projections (no files in %s)\n", cfg->projections_dir);
    free(s.items);
    return cli_close(&x, 0);
}

/* ---- rebuild ---------------------------------------------------------------------------------- */

typedef struct local_s {
    sb_loops_t loops;
    sb_follower_t *f;
    sb_projections_t *p;
} local_t;

static void local_stop(sb_loop_t *loop, void *data)
{
    local_t *l = data;
    sb_projections_stop(l->p, NULL, NULL);
    sb_follower_stop(l->f);
}

static void local_start(sb_loop_t *loop, void *data)
{
    local_t *l = data;
    if (sb_follower_start(l->f, loop) != 0 || sb_projections_start(l->p, loop, l->f) != 0) {
        sb_log_error("projections", "cannot start a runner");
        return;
    }
    sb_loop_on_stop(loop, local_stop, l);
}

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    interrupted = sig;
}

static int cmd_rebuild(sb_config_t *cfg, char **names, int nnames, bool all)
{
    cli_t x = {0};
    char err[512];
    if (cli_open(&x, cfg) != 0)
        return cli_close(&x, 1);
    /* Which files to rebuild.  Unknown names are a usage error. */
    sb_pj_def_t **defs = NULL;
    int ndefs = 0;
    if (sb_pj_load_dir(cfg->projections_dir, &defs, &ndefs, NULL, NULL, err, sizeof(err)) != 0) {
        fprintf(stderr, "switchboard: %s\n", err);
        return cli_close(&x, 1);
    }
    char **want = calloc((size_t)(all ? ndefs : nnames) + 1, sizeof(*want));
    int nwant = 0;
    if (want == NULL)
        abort();
    for (int i = 0; i < (all ? ndefs : nnames); i++) {
        const char *n = all ? defs[i]->name : names[i];
        bool found = false;
        for (int k = 0; k < ndefs && !found; k++)
            found = strcmp(defs[k]->name, n) == 0;
        if (!found) {
            char e[512];
            sb_pj_def_t *d = NULL;
            int rc = sb_pj_load(cfg->projections_dir, n, &d, e, sizeof(e));
            fprintf(stderr, "switchboard: %s\n", rc == UV_ENOENT ? "no such projection file" : e);
            if (rc == UV_ENOENT)
                fprintf(stderr, "switchboard: (looked for %s/%s.sql)\n", cfg->projections_dir, n);
            sb_pj_def_free(d);
            free(want);
            sb_pj_defs_free(defs, ndefs);
            return cli_close(&x, 2);
        }
        want[nwant++] = (char *)n;
    }
    if (nwant == 0) {
        fprintf(stderr, "switchboard: no projection files in %s\n", cfg->projections_dir);
        free(want);
        sb_pj_defs_free(defs, ndefs);
        return cli_close(&x, 1);
    }
    /* From now on, what is (re)built counts as done (a file seen for the first time is installed
     * just below, and builds from 0 without being asked). */
    PGresult *r = PQexec(x.c, "SELECT now()");
    char t0[64];
    snprintf(t0, sizeof(t0), "%s", PQresultStatus(r) == PGRES_TUPLES_OK ? PQgetvalue(r, 0, 0) : "now");
    PQclear(r);
    /* The catalog, and any file seen for the first time installed: those build from 0 already. */
    snap_t before;
    if (sb__pj_ensure_catalog(x.c, err, sizeof(err)) != 0 ||
        snapshot(x.c, cfg->projections_dir, &before, err, sizeof(err)) != 0 ||
        sb_projections_prepare(x.conninfo, cfg->projections_dir, err, sizeof(err)) != 0) {
        fprintf(stderr, "switchboard: %s\n", err);
        free(want);
        sb_pj_defs_free(defs, ndefs);
        return cli_close(&x, 1);
    }
    bool ok = true;
    for (int i = 0; i < nwant && ok; i++) {
        info_t *b = snap_find(&before, want[i]);
        if (b == NULL || !b->in_catalog)
            continue; /* installed just now by prepare: it builds from 0 as a new projection */
        const char *p[2] = {want[i], t0};
        r = PQexecParams(x.c,
                         "UPDATE projection_state SET rebuild_requested_at = $2, build_error = NULL "
                         "WHERE name = $1",
                         2, NULL, p, NULL, NULL, 0);
        ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok)
            fprintf(stderr, "switchboard: %s", PQresultErrorMessage(r));
        PQclear(r);
    }
    PQclear(PQexec(x.c, "NOTIFY " SB_PJ_NOTIFY_CHANNEL));
    free(before.items);
    if (!ok) {
        free(want);
        sb_pj_defs_free(defs, ndefs);
        return cli_close(&x, 1);
    }

    /* Nobody runs the projections: run them here until the rebuilds are done. */
    snap_t s;
    local_t *local = NULL;
    if (snapshot(x.c, cfg->projections_dir, &s, err, sizeof(err)) == 0 && s.runner[0] == '\0') {
        fprintf(stderr, "no server is running the projections: rebuilding here\n");
        local = calloc(1, sizeof(*local));
        sb_projections_options_t o = {.conninfo = x.conninfo, .dir = cfg->projections_dir};
        if (local == NULL || (local->f = sb_follower_new(x.conninfo, 1)) == NULL ||
            (local->p = sb_projections_new(&o)) == NULL ||
            sb_loops_init(&local->loops, 1, local_start, local) != 0 || sb_loops_start(&local->loops) != 0) {
            fprintf(stderr, "switchboard: cannot start a runner\n");
            free(want);
            sb_pj_defs_free(defs, ndefs);
            return cli_close(&x, 1);
        }
    } else if (s.runner[0] != '\0') {
        fprintf(stderr, "the runner (%s) rebuilds; waiting\n", s.runner);
    }
    free(s.items);

    struct sigaction sa = {0}, old_int, old_term;
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    int rc = 0;
    uint64_t started = sb_clock_mono_ns(), last_print = 0;
    int64_t *last_pos = calloc((size_t)nwant, sizeof(*last_pos));
    uint64_t *failing_since = calloc((size_t)nwant, sizeof(*failing_since));
    bool *done = calloc((size_t)nwant, sizeof(*done));
    if (last_pos == NULL || failing_since == NULL || done == NULL)
        abort();
    for (;;) {
        if (interrupted) {
            fprintf(stderr, "interrupted: the rebuilds %s\n",
                    local ? "stop here and resume when a runner starts" : "go on in the server");
            rc = 1;
            break;
        }
        if (snapshot(x.c, cfg->projections_dir, &s, err, sizeof(err)) != 0) {
            fprintf(stderr, "switchboard: %s\n", err);
            rc = 1;
            break;
        }
        uint64_t now = sb_clock_mono_ns();
        bool print = now - last_print >= 1000000000ull;
        int left = 0;
        for (int i = 0; i < nwant; i++) {
            info_t *in = snap_find(&s, want[i]);
            if (done[i] || in == NULL)
                continue;
            /* Done: swapped in (or installed) since we asked, no build or request pending, and the
             * live tables caught up with the log. */
            bool fresh = in->in_catalog && in->live && in->built_at[0] && !in->building && !in->requested &&
                         !in->build_failed;
            if (fresh) {
                r = PQexecParams(x.c,
                                 "SELECT built_at >= $2::timestamptz FROM projection_state WHERE name = $1",
                                 2, NULL, (const char *const[]){want[i], t0}, NULL, NULL, 0);
                fresh = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
                        PQgetvalue(r, 0, 0)[0] == 't';
                PQclear(r);
            }
            if (fresh && in->position >= s.head) {
                done[i] = true;
                fprintf(stderr, "%s: rebuilt and swapped in at position %" PRId64 "\n", in->name,
                        in->position);
                continue;
            }
            const char *failure = in->build_failed        ? in->build_error
                                  : !in->live             ? in->error
                                  : in->build_error[0]    ? in->build_error
                                  : fresh && in->error[0] ? in->error
                                                          : NULL;
            if (failure != NULL) {
                if (failing_since[i] == 0)
                    failing_since[i] = now;
                /* A definite failure at once; a handler that keeps failing after a few retries. */
                if (in->build_failed || !in->live || now - failing_since[i] > 15000000000ull) {
                    fprintf(stderr, "%s: rebuild failed: %s\n", in->name, failure);
                    done[i] = true;
                    rc = 1;
                    continue;
                }
            } else {
                failing_since[i] = 0;
            }
            left++;
            if (print) {
                int64_t pos = in->building ? in->build_position : in->position;
                double secs = last_print ? (double)(now - last_print) / 1e9 : 0;
                double rate = secs > 0 ? (double)(pos - last_pos[i]) / secs : 0;
                double pct = s.head > 0 ? 100.0 * (double)pos / (double)s.head : 100;
                if (in->requested || (!in->building && !fresh))
                    fprintf(stderr, "%s: waiting for the runner\n", in->name);
                else if (rate > 0)
                    fprintf(stderr, "%s: %s %" PRId64 "/%" PRId64 " (%.0f%%), %.0f events/s\n", in->name,
                            in->building ? "rebuilding" : "building", pos, s.head, pct > 100 ? 100 : pct,
                            rate);
                else
                    fprintf(stderr, "%s: %s %" PRId64 "/%" PRId64 " (%.0f%%)\n", in->name,
                            in->building ? "rebuilding" : "building", pos, s.head, pct > 100 ? 100 : pct);
                last_pos[i] = pos;
            }
        }
        free(s.items);
        if (print)
            last_print = now;
        if (left == 0)
            break;
        usleep(200 * 1000);
    }
    if (rc == 0)
        fprintf(stderr, "done in %.1f s\n", (double)(sb_clock_mono_ns() - started) / 1e9);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (local != NULL) {
        sb_loops_stop(&local->loops);
        sb_loops_join(&local->loops);
        sb_projections_free(local->p);
        sb_follower_free(local->f);
        free(local);
    }
    free(last_pos);
    free(failing_since);
    free(done);
    free(want);
    sb_pj_defs_free(defs, ndefs);
    return cli_close(&x, rc);
}

int sb_cmd_projections(sb_config_t *cfg, int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *sub = argv[1];
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
    }
    if (strcmp(sub, "list") == 0) {
        if (argc != 2) {
            fprintf(stderr, "switchboard projections list: takes no arguments\n");
            return 2;
        }
        return cmd_list(cfg);
    }
    if (strcmp(sub, "status") == 0) {
        for (int i = 2; i < argc; i++) {
            if (argv[i][0] == '-' || !sb_pj_name_is_valid(argv[i])) {
                fprintf(stderr, "switchboard projections status: '%s' is not a projection name\n", argv[i]);
                return 2;
            }
        }
        return cmd_status(cfg, argv + 2, argc - 2);
    }
    if (strcmp(sub, "rebuild") == 0) {
        bool all = false;
        int n = 0;
        for (int i = 2; i < argc; i++) {
            if (strcmp(argv[i], "--all") == 0) {
                all = true;
            } else if (argv[i][0] == '-' || !sb_pj_name_is_valid(argv[i])) {
                fprintf(stderr, "switchboard projections rebuild: '%s' is not a projection name\n", argv[i]);
                return 2;
            } else {
                argv[2 + n++] = argv[i];
            }
        }
        if (all == (n > 0)) {
            fprintf(stderr, "switchboard projections rebuild: name the projections, or --all\n");
            usage(stderr);
            return 2;
        }
        return cmd_rebuild(cfg, argv + 2, n, all);
    }
    fprintf(stderr, "switchboard projections: unknown command '%s'\n", sub);
    usage(stderr);
    return 2;
}
