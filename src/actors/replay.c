/* `switchboard replay`: the state of one stream as of a position or a time, folded with the kind's
 * evolve from its events (or from its latest snapshot, when that lies before the bound).  Runs a
 * standalone loop on the main thread with one query connection, through the actor store, so it
 * reads exactly what an activating actor reads. */
#include "actors/replay.h"
#include "actors/decider.h"
#include "actors/runtime_store.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "core/loop.h"
#include "db/cluster.h"
#include "db/pg.h"
#include "events/stream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGE 1000

static const char usage[] =
    "usage: switchboard replay STREAM [--at POS | --as-of TIME] [--no-snapshot]\n"
    "\n"
    "Prints the state of STREAM (e.g. contact-<uuid>) as JSON, folded from its events.\n"
    "  --at POS        only events at log positions <= POS\n"
    "  --as-of TIME    only events recorded at or before TIME (RFC 3339, or YYYY-MM-DD)\n"
    "  --no-snapshot   fold every event from the start instead of starting at a snapshot\n"
    "Without a bound, the current state.  A summary line (version, position) goes to stderr.\n";

typedef struct replay_s {
    sb_rt_store_t *store;
    const sb_kind_t *kind;
    const char *stream;
    int64_t at;    /* 0 = no bound */
    int64_t as_of; /* 0 = no bound */
    bool use_snapshot;
    json_t *state;
    int64_t version, position;
    int64_t folded;
    bool found; /* the stream has a snapshot or any event */
    bool done;
    int status;
    char error[256];
} replay_t;

static void finish(replay_t *r, int status, const char *error)
{
    r->status = status;
    if (error != NULL)
        snprintf(r->error, sizeof(r->error), "%s", error);
    r->done = true;
}

static void read_next(replay_t *r);

static void on_page(void *data, int status, const sb_rt_event_t *events, int n, bool more, const char *error)
{
    replay_t *r = data;
    if (status != 0) {
        finish(r, status, error);
        return;
    }
    if (n > 0)
        r->found = true;
    for (int i = 0; i < n; i++) {
        const sb_rt_event_t *e = &events[i];
        /* Versions grow with positions and (nearly) with time within a stream: stop at the first
         * event past the bound. */
        if ((r->at > 0 && e->position > r->at) || (r->as_of > 0 && e->ev.recorded_at_us > r->as_of)) {
            finish(r, 0, NULL);
            return;
        }
        r->kind->evolve(r->state, &e->ev);
        r->version = e->ev.version;
        r->position = e->position;
        r->folded++;
    }
    if (more && n > 0)
        read_next(r);
    else
        finish(r, 0, NULL);
}

static void read_next(replay_t *r)
{
    r->store->ops->read_events(r->store, r->stream, r->version, PAGE, on_page, r);
}

static void start_from_scratch(replay_t *r)
{
    json_decref(r->state);
    r->state = r->kind->initial();
    r->version = r->position = 0;
    if (r->state == NULL) {
        finish(r, SB_ENOMEM, NULL);
        return;
    }
    read_next(r);
}

static void on_snapshot(void *data, int status, json_t *state, int64_t version, int64_t position,
                        const char *error)
{
    replay_t *r = data;
    if (status != 0) {
        finish(r, status, error);
        return;
    }
    if (state != NULL && (r->at == 0 || position <= r->at)) {
        r->found = true;
        r->state = state;
        r->version = version;
        r->position = position;
        read_next(r);
        return;
    }
    if (state != NULL)
        r->found = true; /* the stream exists, but its snapshot is past the bound */
    json_decref(state);
    start_from_scratch(r);
}

static int parse_args(int argc, char **argv, replay_t *r, bool *help)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            *help = true;
            return 0;
        }
        if (strcmp(a, "--no-snapshot") == 0) {
            r->use_snapshot = false;
        } else if (strcmp(a, "--at") == 0 || strcmp(a, "--as-of") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "switchboard replay: %s needs a value\n", a);
                return SB_EINVAL;
            }
            const char *v = argv[++i];
            if (strcmp(a, "--at") == 0) {
                char *end;
                long long pos = strtoll(v, &end, 10);
                if (*v == '\0' || *end != '\0' || pos <= 0) {
                    fprintf(stderr,
                            "switchboard replay: invalid position '%s': expected a positive integer\n", v);
                    return SB_EINVAL;
                }
                r->at = pos;
            } else if (sb_clock_parse_rfc3339(v, &r->as_of) != 0 || r->as_of <= 0) {
                fprintf(stderr, "switchboard replay: invalid time '%s': expected RFC 3339 or YYYY-MM-DD\n",
                        v);
                return SB_EINVAL;
            }
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "switchboard replay: unknown option '%s'\n", a);
            return SB_EINVAL;
        } else if (r->stream == NULL) {
            r->stream = a;
        } else {
            fprintf(stderr, "switchboard replay: unexpected argument '%s'\n", a);
            return SB_EINVAL;
        }
    }
    if (r->stream == NULL) {
        fputs(usage, stderr);
        return SB_EINVAL;
    }
    if (r->at > 0 && r->as_of > 0) {
        fprintf(stderr, "switchboard replay: give --at or --as-of, not both\n");
        return SB_EINVAL;
    }
    return 0;
}

static void on_pg_closed(void *data)
{
    *(bool *)data = true;
}

/* Runs the fold on a standalone loop; 0 or a negative code with r->error. */
static int run(replay_t *r, const char *conninfo)
{
    sb_loop_t loop;
    int rc = sb_loop_init_standalone(&loop);
    if (rc != 0)
        return rc;
    sb_pg_t *pg = sb_pg_open(&loop.uv, conninfo, "replay");
    if (pg == NULL) {
        sb_loop_close_standalone(&loop);
        return SB_ENOMEM;
    }
    r->store = sb_rt_pgstore_new(pg, NULL);
    if (r->store == NULL) {
        rc = SB_ENOMEM;
        goto out_close_pg;
    }
    /* A time bound cannot use the snapshot: it does not record when its last event was stored. */
    if (r->use_snapshot && r->as_of == 0)
        r->store->ops->load_snapshot(r->store, r->stream, on_snapshot, r);
    else
        start_from_scratch(r);
    while (!r->done && uv_run(&loop.uv, UV_RUN_ONCE) != 0)
        ;
    rc = r->done ? r->status : SB_EDBDOWN;
    r->store->ops->close(r->store);
out_close_pg:;
    bool closed = false;
    sb_pg_close(pg, on_pg_closed, &closed);
    while (!closed && uv_run(&loop.uv, UV_RUN_ONCE) != 0)
        ;
    sb_loop_close_standalone(&loop);
    return rc;
}

int sb_cmd_replay(sb_config_t *cfg, int argc, char **argv)
{
    sb_log_set_level(cfg->log_level);
    replay_t r = {.use_snapshot = true};
    bool help = false;
    if (parse_args(argc, argv, &r, &help) != 0)
        return 2;
    if (help) {
        fputs(usage, stdout);
        return 0;
    }
    sb_stream_name_t sn;
    if (sb_stream_parse(r.stream, strlen(r.stream), &sn) != 0) {
        fprintf(stderr, "switchboard replay: invalid stream name '%s': expected <category>-<uuid>\n",
                r.stream);
        return 2;
    }
    r.kind = sb_kind_find(sn.category);
    if (r.kind == NULL) {
        fprintf(stderr, "switchboard replay: no actor kind for category '%s'\n", sn.category);
        return 2;
    }

    bool started = false;
    char err[512];
    if (cfg->database_url == NULL && sb_cluster_start(cfg->data_dir, &started, err, sizeof(err)) != 0) {
        fprintf(stderr, "switchboard replay: %s\n", err);
        return 1;
    }
    char *conninfo = sb_db_conninfo(cfg);
    int rc = conninfo ? run(&r, conninfo) : SB_ENOMEM;
    free(conninfo);
    if (started && sb_cluster_stop(cfg->data_dir, err, sizeof(err)) != 0)
        fprintf(stderr, "switchboard replay: %s\n", err);

    int exit_code = 0;
    if (rc != 0) {
        fprintf(stderr, "switchboard replay: %s%s%s\n", sb_strerror(rc), r.error[0] ? ": " : "", r.error);
        exit_code = 1;
    } else if (!r.found) {
        fprintf(stderr, "switchboard replay: stream %s has no events\n", r.stream);
        exit_code = 1;
    } else {
        char *text = json_dumps(r.state, JSON_INDENT(2) | JSON_SORT_KEYS);
        if (text == NULL) {
            fprintf(stderr, "switchboard replay: %s\n", sb_strerror(SB_ENOMEM));
            exit_code = 1;
        } else {
            printf("%s\n", text);
            free(text);
            fprintf(stderr, "replay: %s version=%lld position=%lld events_folded=%lld\n", r.stream,
                    (long long)r.version, (long long)r.position, (long long)r.folded);
        }
    }
    json_decref(r.state);
    return exit_code;
}
