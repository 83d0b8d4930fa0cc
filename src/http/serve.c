/* `switchboard serve`: the orchestration of start-up and shutdown.
 *
 *   main thread                         each worker loop (its own thread)
 *   -----------                         ---------------------------------
 *   block SIGINT/SIGTERM (inherited)
 *   check the listen address, TLS
 *   start the embedded cluster?
 *   migrate
 *   bind one socket per loop
 *   start the loops  ----------------->  on_loop_start: db connection, appender, the follower
 *                                        (loop 0), HTTP context
 *   wait for every loop's report <-----  report
 *   sigwait
 *   sb_loops_stop  ------------------->  on_loop_stop: HTTP drains (grace period), then the
 *                                        follower, appender and database connection close
 *   sb_loops_join
 *   stop the cluster if we started it
 *
 * The database connection outlives HTTP on purpose: requests still in flight during the grace
 * period need it to finish. */
#include "http/serve.h"

#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "core/log.h"
#include "core/loop.h"
#include "actors/runtime.h"
#include "db/cluster.h"
#include "db/migrate.h"
#include "db/pg.h"
#include "db/secrets.h"
#include "events/append.h"
#include "events/follow.h"
#include "http/api.h"
#include "http/app.h"
#include "http/response.h"
#include "http/server.h"
#include "http/sse.h"
#include "http/api_messaging.h"
#include "http/webhooks.h"
#include "reactors/messaging.h"
#include "projections/projections.h"

typedef struct {
    sb_app_t app;
    sb_http_server_t *http;
    sb_api_t *api;
    sb_sse_t *sse;
    sb_secrets_t *secrets;
    sb_messaging_t *messaging;
    const char *conninfo;
    bool migrated;
    /* start-up reports from the loops */
    uv_mutex_t lock;
    uv_cond_t cond;
    int reported;
    int failed; /* first failure, 0 if none */
} serve_t;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: switchboard serve [options]\n\n"
            "Runs the server.  Without a database URL it starts the embedded PostgreSQL cluster under\n"
            "the data directory (and stops it on exit); it applies pending migrations, then serves the\n"
            "HTTP API (HTTP/1.1 and HTTP/2; HTTPS with --tls-cert/--tls-key) until SIGINT or SIGTERM.\n"
            "On a signal it stops accepting, lets in-flight requests finish (up to 10 s), and exits 0.\n"
            "\noptions (environment variable in brackets):\n%s",
            sb_config_flags_help);
}

/* Copies a libpq connection string with any password replaced by "***": the userinfo password
 * of a URL, and password=... in a URL query or a keyword/value string (quoted or not). */
static void redact_conninfo(const char *in, char *out, size_t cap)
{
    size_t o = 0;
#define PUT(c)                                                                                               \
    do {                                                                                                     \
        if (o + 1 < cap)                                                                                     \
            out[o++] = (c);                                                                                  \
    } while (0)
#define PUTS(s)                                                                                              \
    do {                                                                                                     \
        for (const char *q_ = (s); *q_; q_++)                                                                \
            PUT(*q_);                                                                                        \
    } while (0)
    const char *p = in;
    const char *scheme = strstr(in, "://");
    bool is_url = strncmp(in, "postgres://", 11) == 0 || strncmp(in, "postgresql://", 13) == 0;
    if (is_url && scheme != NULL) {
        const char *auth = scheme + 3;
        const char *auth_end = auth + strcspn(auth, "/?#");
        const char *at = NULL;
        for (const char *q = auth; q < auth_end; q++)
            if (*q == '@')
                at = q;
        for (; p < auth; p++)
            PUT(*p);
        if (at != NULL) {
            const char *colon = memchr(auth, ':', (size_t)(at - auth));
            for (; p < (colon ? colon : at); p++)
                PUT(*p);
            if (colon != NULL)
                PUTS(":***");
            p = at;
        }
    }
    while (*p) {
        /* a password key: at the start, after whitespace (keyword form) or after ? / & (URL) */
        bool at_key = p == in || p[-1] == ' ' || p[-1] == '\t' || p[-1] == '?' || p[-1] == '&';
        if (at_key && strncmp(p, "password", 8) == 0) {
            const char *q = p + 8;
            while (*q == ' ' || *q == '\t')
                q++;
            if (*q == '=') {
                q++;
                PUTS("password=***");
                while (!is_url && (*q == ' ' || *q == '\t'))
                    q++;
                if (!is_url && *q == '\'') {
                    for (q++; *q && *q != '\''; q++)
                        if (*q == '\\' && q[1])
                            q++;
                    if (*q == '\'')
                        q++;
                } else {
                    while (*q && *q != ' ' && *q != '\t' && *q != '&')
                        q++;
                }
                p = q;
                continue;
            }
        }
        PUT(*p);
        p++;
    }
    out[o] = '\0';
#undef PUT
#undef PUTS
}

/* ---- the loops ------------------------------------------------------------------------------ */

static bool is_ready(sb_loop_t *loop, void *data, const char **why)
{
    serve_t *s = data;
    if (!s->migrated) {
        *why = "migrations pending";
        return false;
    }
    if (loop->db == NULL || !sb_pg_is_connected(loop->db)) {
        *why = "database unavailable";
        return false;
    }
    return true;
}

static void report(serve_t *s, int rc)
{
    uv_mutex_lock(&s->lock);
    if (rc != 0 && s->failed == 0)
        s->failed = rc;
    s->reported++;
    uv_cond_signal(&s->cond);
    uv_mutex_unlock(&s->lock);
}

sb_app_t *sb_app_current(void)
{
    sb_loop_t *loop = sb_loop_current();
    return loop != NULL && loop->group != NULL ? loop->group->app : NULL;
}

/* Closes what on_loop_start opened below HTTP, in reverse order. */
static void close_loop_parts(sb_loop_t *loop, serve_t *s)
{
    if (loop->index == 0 && s->app.projections != NULL)
        sb_projections_stop(s->app.projections, NULL, NULL);
    if (loop->index == 0 && s->app.follower != NULL)
        sb_follower_stop(s->app.follower);
    if (loop->appender != NULL) {
        sb_appender_close(loop->appender, NULL, NULL);
        loop->appender = NULL;
    }
    if (loop->db != NULL) {
        sb_pg_close(loop->db, NULL, NULL);
        loop->db = NULL;
    }
}

static void on_http_stopped(sb_loop_t *loop, void *data)
{
    serve_t *s = data;
    sb_sse_loop_close(s->sse, loop);
    close_loop_parts(loop, data);
}

static void on_loop_stop(sb_loop_t *loop, void *data)
{
    serve_t *s = data;
    sb_api_loop_stop(s->api, loop);
    sb_sse_loop_stop(s->sse, loop); /* ends the event streams, which would hold HTTP's drain */
    sb_http_stop(loop, on_http_stopped, data);
}

static void on_loop_start(sb_loop_t *loop, void *data)
{
    serve_t *s = data;
    int rc = SB_ENOMEM;
    loop->db = sb_pg_open(&loop->uv, s->conninfo, "query");
    loop->appender = sb_appender_open(&loop->uv, s->conninfo);
    if (loop->db != NULL && loop->appender != NULL) {
        sb_appender_set_follower(loop->appender, s->app.follower);
        rc = loop->index == 0 ? sb_follower_start(s->app.follower, loop) : 0;
    }
    /* Subsystems above the event log start here, in dependency order.  Each registers its own
     * stop hook; hooks run latest first, so they stop before the log's parts close. */
    if (rc == 0) {
        /* A contact taking notes or messages all day has a state of tens of kilobytes; packing it
         * every 100 events was a seventh of the server's CPU per note under load.  Busy actors
         * snapshot at most every 30 s (or every 1,000 events); passivation still writes one. */
        sb_runtime_config_t rtc = {.snapshot_interval_ms = 30000};
        sb_runtime_config_from(&rtc, s->app.cfg);
        rc = sb_runtime_start(loop, &rtc);
    }
    /* The projections runner (loop 0; stopped in close_loop_parts, before the follower). */
    if (rc == 0 && loop->index == 0)
        rc = sb_projections_start(s->app.projections, loop, s->app.follower);
    /* Messaging (the workspace configuration cache the webhooks read, and the reactors that send
     * and schedule): after the runtime, before the API and HTTP. */
    if (rc == 0)
        rc = sb_messaging_loop_start(s->messaging, loop);
    if (rc == 0)
        rc = sb_api_loop_start(s->api, loop);
    if (rc == 0)
        rc = sb_http_start(loop, s->http);
    if (rc == 0)
        rc = sb_sse_loop_start(s->sse, loop);
    if (rc == 0)
        rc = sb_loop_on_stop(loop, on_loop_stop, s);
    if (rc != 0) {
        sb_api_loop_stop(s->api, loop);
        sb_http_stop(loop, NULL, NULL);
        sb_sse_loop_close(s->sse, loop);
        close_loop_parts(loop, s);
    }
    report(s, rc);
}

/* ---- main thread ---------------------------------------------------------------------------- */

/* A SIGINT or SIGTERM that arrived while we were starting (they are blocked, so they wait). */
static int pending_signal(const sigset_t *set)
{
    struct timespec zero = {0, 0};
    int sig = sigtimedwait(set, NULL, &zero);
    return sig > 0 ? sig : 0;
}

static int run(sb_config_t *cfg, const sigset_t *signals)
{
    char err[512];
    int exit_code = 1;
    bool cluster_started = false;
    char *conninfo = NULL;
    serve_t s = {0};

    sb_http_options_t opts;
    sb_http_options_init(&opts, cfg);
    if (sb_http_server_create(&s.http, &opts, err, sizeof(err)) != 0) {
        fprintf(stderr, "switchboard: %s\n", err);
        return 1;
    }
    /* GET /metrics is the API's (http/api_metrics.c), which includes the projections' progress. */

    if (cfg->database_url == NULL) {
        sb_log_info("serve", "starting the embedded cluster data_dir=%s", cfg->data_dir);
        if (sb_cluster_start(cfg->data_dir, &cluster_started, err, sizeof(err)) != 0) {
            fprintf(stderr, "switchboard: %s\n", err);
            goto out_http;
        }
    }
    conninfo = sb_db_conninfo(cfg);
    if (conninfo == NULL) {
        fprintf(stderr, "switchboard: out of memory\n");
        goto out_cluster;
    }
    if (cfg->database_url != NULL) {
        char safe[512];
        redact_conninfo(conninfo, safe, sizeof(safe));
        sb_log_info("serve", "database %s", safe);
    } else {
        sb_log_info("serve", "database embedded cluster at %s/pg (%s)", cfg->data_dir,
                    cluster_started ? "started" : "already running");
    }

    int applied = sb_migrate(conninfo, NULL, err, sizeof(err));
    if (applied < 0) {
        fprintf(stderr, "switchboard: migration failed: %s\n", err);
        goto out_conninfo;
    }
    if (applied > 0)
        sb_log_info("serve", "migrations applied count=%d", applied);
    else
        sb_log_info("serve", "schema up to date");
    /* Read models: the catalog, and tables for projection files seen for the first time, exist
     * before the first request; building them is the runner's (whichever process holds its lease). */
    if (sb_projections_prepare(conninfo, cfg->projections_dir, err, sizeof(err)) != 0) {
        fprintf(stderr, "switchboard: projections: %s\n", err);
        goto out_conninfo;
    }
    s.migrated = true;
    s.conninfo = conninfo;

    /* The master key: read (or generated on first run) before anything may need a secret. */
    if (sb_secrets_new(cfg, &s.secrets, err, sizeof(err)) != 0) {
        fprintf(stderr, "switchboard: %s\n", err);
        goto out_conninfo;
    }
    s.app.secrets = s.secrets;

    int sig = pending_signal(signals);
    if (sig != 0) {
        sb_log_info("serve", "received %s during start-up, stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
        exit_code = 0;
        goto out_conninfo;
    }

    /* The API's routes, registered before the router freezes. */
    sb_api_options_t api_opts;
    if (sb_api_options_init(&api_opts, err, sizeof(err)) != 0) {
        fprintf(stderr, "switchboard: %s\n", err);
        goto out_conninfo;
    }
    if (sb_api_create(&s.api, &s.app, sb_http_server_router(s.http), cfg->threads, &api_opts) != 0) {
        fprintf(stderr, "switchboard: cannot set up the API\n");
        goto out_conninfo;
    }
    if (sb_api_messaging_routes(sb_http_server_router(s.http), s.api) != 0 ||
        sb_webhooks_register(sb_http_server_router(s.http), cfg) != 0) {
        fprintf(stderr, "switchboard: cannot register the messaging routes\n");
        goto out_conninfo;
    }

    sb_sse_options_t sse_opts;
    if (sb_sse_options_init(&sse_opts, err, sizeof(err)) != 0) {
        fprintf(stderr, "switchboard: %s\n", err);
        goto out_conninfo;
    }
    if (sb_sse_create(&s.sse, &s.app, sb_http_server_router(s.http), cfg->threads, &sse_opts) != 0) {
        fprintf(stderr, "switchboard: out of memory\n");
        goto out_conninfo;
    }
    s.app.sse = s.sse;

    if (sb_http_server_listen(s.http, cfg->threads, err, sizeof(err)) != 0) {
        fprintf(stderr, "switchboard: %s\n", err);
        goto out_conninfo;
    }
    sb_http_server_set_ready_cb(s.http, is_ready, &s);

    /* Writes to a socket the peer closed must fail with EPIPE, not kill the process.  Set only
     * now so the cluster's child processes keep the default disposition. */
    signal(SIGPIPE, SIG_IGN);

    uv_mutex_init(&s.lock);
    uv_cond_init(&s.cond);
    sb_loops_t loops;
    s.app.cfg = cfg;
    s.app.conninfo = conninfo;
    s.app.loops = &loops;
    s.app.http = s.http;
    s.app.follower = sb_follower_new(conninfo, cfg->threads);
    sb_projections_options_t popts = {.conninfo = conninfo, .dir = cfg->projections_dir, .linger_ms = -1};
    s.app.projections = sb_projections_new(&popts);
    int rc = s.app.follower != NULL && s.app.projections != NULL
                 ? sb_loops_init(&loops, cfg->threads, on_loop_start, &s)
                 : SB_ENOMEM;
    loops.app = &s.app;
    if (rc == 0) {
        sb_messaging_options_t mo;
        sb_messaging_options_init(&mo, cfg);
        mo.conninfo = conninfo;
        mo.loops = &loops;
        mo.follower = s.app.follower;
        mo.secrets = s.secrets;
        rc = sb_messaging_new(&s.messaging, &mo);
        s.app.reactors = s.messaging;
    }
    if (rc != 0) {
        fprintf(stderr, "switchboard: cannot create the worker loops: %s\n", sb_strerror(rc));
        goto out_sync;
    }
    rc = sb_loops_start(&loops);
    if (rc != 0) {
        /* Some threads may run and others not: sb_loops_join cannot wait for that group, and
         * returning would free what the running ones use.  Stop what we started, and leave. */
        fprintf(stderr, "switchboard: cannot start the worker loops: %s\n", sb_strerror(rc));
        if (cluster_started)
            sb_cluster_stop(cfg->data_dir, err, sizeof(err));
        _exit(1);
    }
    uv_mutex_lock(&s.lock);
    while (s.reported < cfg->threads)
        uv_cond_wait(&s.cond, &s.lock);
    rc = s.failed;
    uv_mutex_unlock(&s.lock);

    if (rc == 0) {
        bool v6 = strchr(cfg->listen_host, ':') != NULL && cfg->listen_host[0] != '[';
        sb_log_info("serve", "listening on %s://%s%s%s:%d threads=%d public_url=%s",
                    sb_http_server_is_tls(s.http) ? "https" : "http", v6 ? "[" : "", cfg->listen_host,
                    v6 ? "]" : "", sb_http_server_port(s.http), cfg->threads, cfg->public_url);
        if (sigwait(signals, &sig) != 0)
            sig = SIGTERM;
        sb_log_info("serve", "received %s, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
        exit_code = 0;
    } else {
        fprintf(stderr, "switchboard: a worker loop failed to start: %s\n", sb_strerror(rc));
    }
    sb_loops_stop(&loops);
    sb_loops_join(&loops);
    if (exit_code == 0)
        sb_log_info("serve", "stopped");

out_sync:
    sb_messaging_free(s.messaging);
    sb_projections_free(s.app.projections);
    sb_follower_free(s.app.follower);
    uv_cond_destroy(&s.cond);
    uv_mutex_destroy(&s.lock);
out_conninfo:
    sb_sse_free(s.sse);
    sb_secrets_free(s.secrets);
    sb_api_free(s.api);
    free(conninfo);
out_cluster:
    if (cluster_started) {
        if (sb_cluster_stop(cfg->data_dir, err, sizeof(err)) != 0) {
            fprintf(stderr, "switchboard: %s\n", err);
            exit_code = 1;
        } else {
            sb_log_info("serve", "embedded cluster stopped");
        }
    }
out_http:
    sb_http_server_free(s.http);
    return exit_code;
}

/* glibc's defaults adapt the mmap threshold to the largest block freed and give the top of every
 * arena back to the kernel once 128 KiB of it is free.  A request-serving loop allocates and frees
 * blocks of a few kilobytes to a few hundred (page texts, h2o's buffers, libpq results) over and
 * over, so the heap kept shrinking and growing again, and each regrowth paid page faults and zeroed
 * pages: a fifth of the server's CPU per cached HTTP/2 read in a profile.  Fixed thresholds keep up
 * to TRIM of free memory per arena instead (one arena per busy thread); blocks of MMAP and more
 * (none on a hot path: bodies are at most 1 MiB) still come from mmap and go back at once. */
static void tune_malloc(void)
{
    enum { MMAP = 4 << 20, TRIM = 32 << 20, PAD = 4 << 20 };
    mallopt(M_MMAP_THRESHOLD, MMAP);
    mallopt(M_TRIM_THRESHOLD, TRIM);
    mallopt(M_TOP_PAD, PAD);
}

int sb_cmd_serve(sb_config_t *cfg, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
        fprintf(stderr, "switchboard serve: unknown argument '%s'\n", argv[i]);
        usage(stderr);
        return 2;
    }
    /* Blocked before any thread or child exists, so every thread inherits the mask and only
     * sigwait below ever takes these signals; one arriving during start-up waits its turn. */
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, NULL);
    tune_malloc();
    return run(cfg, &signals);
}
