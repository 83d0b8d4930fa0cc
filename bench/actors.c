/* Actor runtime benchmarks.  Prints one "actors: <figure>" line per result, for
 * docs/benchmarks.md.
 *
 *   bench_actors [CONNINFO [SECONDS]] [cross] [commands] [activation] [memory] [--seconds N] [--loops N]
 *
 *   cross       asks between loops with no database (memory store, a no-op command): round trips
 *               and one-way messages per second
 *   commands    command -> commit -> reply against PostgreSQL at 1, 64 and 1,024 in flight:
 *               commands per second and latency p50/p99
 *   activation  activation latency p50/p99 of an actor with 10,000 events behind it, from its
 *               snapshot and (for comparison) by folding every event
 *   memory      RSS growth per active actor with 100,000 contacts active
 *
 * The database benchmarks use CONNINFO (a migrated database, as bench/run.sh gives), or else a
 * database of their own, switchboard_bench, dropped and created afresh next to
 * SWITCHBOARD_DATABASE_URL or in the embedded cluster under SWITCHBOARD_DATA_DIR.  Loops default to
 * SWITCHBOARD_THREADS (the number of CPUs).  Streams carry a random run id, so runs may share a
 * database. */
#include "actors/runtime.h"
#include "actors/runtime_store.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/error.h"
#include "core/log.h"
#include "db/cluster.h"
#include "db/migrate.h"
#include "db/pg.h"
#include "events/append.h"
#include "events/codec.h"
#include "events/stream.h"
#include "loopgroup.h"

#include <libpq-fe.h>
#include <malloc.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static double seconds = 3.0;
static int nloops = 2;

/* ---- a small kind: Tag keeps a count and the last few tags; Created copies a profile ------------ */

static json_t *k_initial(void)
{
    return json_pack("{s:i, s:[]}", "n", 0, "recent");
}

static int k_decide(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx, sb_devents_t *out,
                    sb_derror_t *err)
{
    (void)state, (void)ctx;
    const char *type = json_string_value(json_object_get(cmd, "type"));
    if (type != NULL && strcmp(type, "Noop") == 0)
        return 0;
    if (type != NULL && strcmp(type, "Tag") == 0)
        return sb_devents_add(out, "Tagged", json_pack("{s:O}", "tag", json_object_get(cmd, "tag")));
    return sb_reject(err, 400, "unknown_command", "type", "unknown command");
}

static void k_evolve(json_t *state, const sb_devent_t *ev)
{
    if (strcmp(ev->type, "Tagged") == 0) {
        json_object_set_new(state, "n", json_integer(json_integer_value(json_object_get(state, "n")) + 1));
        json_t *recent = json_object_get(state, "recent");
        json_array_append(recent, json_object_get(ev->data, "tag"));
        if (json_array_size(recent) > 10)
            json_array_remove(recent, 0);
    } else if (strcmp(ev->type, "ContactCreated") == 0) {
        json_object_update(state, ev->data);
    }
}

static const sb_kind_t bench_kind = {"benchc", k_initial, k_decide, k_evolve};

/* The memory figure uses the real contact kind when it is linked in. */
static const sb_kind_t *find_kind(const char *category)
{
    if (strcmp(category, "benchc") == 0)
        return &bench_kind;
    return sb_kind_find(category);
}

static unsigned run_id; /* a random uuid group, so that runs never meet in a shared database */

static void stream_name(char out[SB_STREAM_NAME_MAX], const char *category, int i)
{
    snprintf(out, SB_STREAM_NAME_MAX, "%s-00000000-%04x-4000-8000-%012d", category, run_id, i);
}

/* ---- loops ------------------------------------------------------------------------------------ */

static sb_memlog_t *memlog;
static char *conninfo; /* the bench database, when a benchmark needs one */

/* n loops running the runtime with rc, resolving the bench kind: against the bench database (db),
 * or on the memory store. */
static sb_loops_t *group_new(int n, const sb_runtime_config_t *rc, bool db)
{
    sb_runtime_config_t cfg = *rc;
    cfg.find_kind = find_kind;
    if (!db) {
        cfg.open_store = sb_memlog_open;
        cfg.store_arg = memlog;
    }
    return sbtest_group_new(n, &cfg, db ? conninfo : NULL);
}

static void sleep_s(double s)
{
    usleep((useconds_t)(s * 1e6));
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(uint64_t *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return (double)v[i] / 1e3; /* ns -> us */
}

/* ---- a driver: every sending loop keeps `window` asks in flight until told to stop ------------- */

#define MAX_SAMPLES (1 << 20)

typedef struct sender_s {
    sb_loops_t *g;
    int loop;
    int window;
    const char *category;
    int first, nstreams, next; /* streams first .. first+nstreams-1, round robin */
    const int *targets;        /* or an explicit list of stream numbers */
    int ntargets;
    json_t *cmd; /* shared, or NULL: a fresh Tag command per ask */
    bool get;
    _Atomic bool stop;
    _Atomic uint64_t done;
    _Atomic int in_flight;
    _Atomic uint64_t errors;
    uint64_t *samples; /* latencies (ns), the first MAX_SAMPLES after sampling starts */
    _Atomic size_t nsamples;
    _Atomic bool sampling;
} sender_t;

typedef struct {
    sender_t *s;
    uint64_t t0;
} inflight_t;

static void send_one(sender_t *s);

static void on_done(const sb_ask_reply_t *r, void *data)
{
    inflight_t *f = data;
    sender_t *s = f->s;
    if (r->status != 0)
        atomic_fetch_add_explicit(&s->errors, 1, memory_order_relaxed);
    if (atomic_load_explicit(&s->sampling, memory_order_relaxed) && s->samples) {
        size_t i = atomic_load_explicit(&s->nsamples, memory_order_relaxed);
        if (i < MAX_SAMPLES) {
            s->samples[i] = sb_clock_mono_ns() - f->t0;
            atomic_store_explicit(&s->nsamples, i + 1, memory_order_relaxed);
        }
    }
    free(f);
    atomic_store_explicit(&s->done, atomic_load_explicit(&s->done, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    if (atomic_load_explicit(&s->stop, memory_order_relaxed))
        atomic_fetch_sub(&s->in_flight, 1);
    else
        send_one(s);
}

static void send_one(sender_t *s)
{
    char name[SB_STREAM_NAME_MAX];
    int n = s->targets ? s->targets[s->next++ % s->ntargets] : s->first + s->next++ % s->nstreams;
    stream_name(name, s->category, n);
    inflight_t *f = malloc(sizeof(*f));
    f->s = s;
    f->t0 = s->samples ? sb_clock_mono_ns() : 0;
    sb_ask_opts_t opts = {.skip_state = true, .skip_event_data = true, .source = "bench"};
    int r;
    if (s->get) {
        r = sb_actor_get(s->g, name, &opts, on_done, f);
    } else {
        json_t *cmd = s->cmd ? json_incref(s->cmd) : json_pack("{s:s, s:i}", "type", "Tag", "tag", s->next);
        r = sb_actor_ask(s->g, name, cmd, &opts, on_done, f);
    }
    if (r != 0)
        abort();
}

static void start_sender(void *arg)
{
    sender_t *s = arg;
    atomic_store(&s->in_flight, s->window);
    for (int i = 0; i < s->window; i++)
        send_one(s);
}

/* Runs the senders for warm-up then `seconds`; returns completed asks per second, fills the
 * latency percentiles when sampled. */
static double drive(sender_t *ss, int n, double warm, double secs, double *p50, double *p99)
{
    for (int i = 0; i < n; i++)
        if (ss[i].window > 0)
            sbtest_run_on(ss[i].g->loops[ss[i].loop], start_sender, &ss[i]);
    sleep_s(warm);
    uint64_t d0 = 0, d1 = 0;
    for (int i = 0; i < n; i++) {
        d0 += atomic_load(&ss[i].done);
        atomic_store(&ss[i].sampling, true);
    }
    uint64_t t0 = sb_clock_mono_ns();
    sleep_s(secs);
    for (int i = 0; i < n; i++) {
        atomic_store(&ss[i].sampling, false);
        d1 += atomic_load(&ss[i].done);
    }
    double elapsed = (double)(sb_clock_mono_ns() - t0) / 1e9;
    for (int i = 0; i < n; i++)
        atomic_store(&ss[i].stop, true);
    for (int i = 0; i < n; i++)
        while (atomic_load(&ss[i].in_flight) > 0)
            usleep(1000);
    if (p50 != NULL) {
        size_t total = 0;
        for (int i = 0; i < n; i++)
            total += atomic_load(&ss[i].nsamples);
        uint64_t *all = malloc((total ? total : 1) * sizeof(*all));
        size_t k = 0;
        for (int i = 0; i < n; i++) {
            size_t m = atomic_load(&ss[i].nsamples);
            if (ss[i].samples)
                memcpy(all + k, ss[i].samples, m * sizeof(*all));
            k += m;
        }
        qsort(all, k, sizeof(*all), cmp_u64);
        *p50 = pct(all, k, 0.50);
        *p99 = pct(all, k, 0.99);
        free(all);
    }
    uint64_t errors = 0;
    for (int i = 0; i < n; i++)
        errors += atomic_load(&ss[i].errors);
    if (errors)
        fprintf(stderr, "bench: %llu asks failed\n", (unsigned long long)errors);
    return (double)(d1 - d0) / elapsed;
}

/* Activates streams [first, first+n) with reads, `window` at a time, and waits. */
static void activate(sb_loops_t *g, const char *category, int first, int n)
{
    sender_t s = {.g = g,
                  .loop = 0,
                  .window = n < 1000 ? n : 1000,
                  .category = category,
                  .first = first,
                  .nstreams = n,
                  .get = true};
    sbtest_run_on(g->loops[0], start_sender, &s);
    while (atomic_load(&s.done) < (uint64_t)n)
        usleep(1000);
    atomic_store(&s.stop, true);
    while (atomic_load(&s.in_flight) > 0)
        usleep(1000);
}

/* ---- cross-loop messaging -------------------------------------------------------------------------- */

static void bench_cross(void)
{
    sb_runtime_config_t rc = {.idle_ms = 3600 * 1000};
    sb_loops_t *g = group_new(nloops, &rc, false);
    enum { STREAMS = 4096, WINDOW = 2048 };
    activate(g, "benchc", 0, STREAMS);
    /* Each loop asks only actors owned by another loop. */
    sender_t *ss = calloc((size_t)nloops, sizeof(*ss));
    int **targets = calloc((size_t)nloops, sizeof(*targets));
    for (int i = 0; i < nloops; i++) {
        targets[i] = malloc(STREAMS * sizeof(int));
        int k = 0;
        for (int s = 0; s < STREAMS; s++) {
            char name[SB_STREAM_NAME_MAX];
            stream_name(name, "benchc", s);
            if (sb_loops_pick(g, sb_stream_hash(name, strlen(name))) == (i + 1) % nloops)
                targets[i][k++] = s;
        }
        ss[i] = (sender_t){.g = g,
                           .loop = i,
                           .window = WINDOW,
                           .category = "benchc",
                           .targets = targets[i],
                           .ntargets = k,
                           .cmd = json_pack("{s:s}", "type", "Noop")};
    }
    double rate = drive(ss, nloops, 0.5, seconds, NULL, NULL);
    printf(
        "actors cross_loop store=memory command=noop loops=%d in_flight_per_loop=%d round_trips_per_s=%.0f "
        "messages_per_s=%.0f\n",
        nloops, WINDOW, rate, 2 * rate);
    for (int i = 0; i < nloops; i++) {
        json_decref(ss[i].cmd);
        free(targets[i]);
    }
    free(targets);
    free(ss);
    sbtest_group_free(g);
}

/* ---- the bench database ---------------------------------------------------------------------------- */

/* conninfo with dbname replaced (libpq's expand_dbname: later keywords override the string). */
static PGconn *connect_to(const char *base, const char *dbname)
{
    const char *keys[] = {"dbname", "dbname", NULL};
    const char *vals[] = {base, dbname, NULL};
    return PQconnectdbParams(keys, vals, 1);
}

static char *bench_conninfo(const char *base)
{
    PQconninfoOption *opts = PQconninfoParse(base, NULL);
    if (opts == NULL)
        return NULL;
    sb_buf_t b = SB_BUF_INIT;
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
        const char *v = strcmp(o->keyword, "dbname") == 0 ? "switchboard_bench" : o->val;
        if (v == NULL)
            continue;
        sb_buf_printf(&b, "%s='", o->keyword);
        for (const char *p = v; *p; p++) {
            if (*p == '\'' || *p == '\\')
                sb_buf_putc(&b, '\\');
            sb_buf_putc(&b, *p);
        }
        sb_buf_puts(&b, "' ");
    }
    if (strstr(b.data ? b.data : "", "dbname=") == NULL)
        sb_buf_puts(&b, "dbname='switchboard_bench'");
    PQconninfoFree(opts);
    return sb_buf_steal(&b);
}

static void quiet(void *arg, const char *message)
{
    (void)arg, (void)message; /* "database ... does not exist, skipping" */
}

static bool cluster_started;
static sb_config_t cfg;

static int setup_db(void)
{
    if (conninfo != NULL)
        return 0;
    char err[512];
    if (cfg.database_url == NULL && sb_cluster_start(cfg.data_dir, &cluster_started, err, sizeof(err)) != 0) {
        fprintf(stderr, "bench: %s\n", err);
        return -1;
    }
    char *base = sb_db_conninfo(&cfg);
    PGconn *admin = connect_to(base, "postgres");
    if (PQstatus(admin) != CONNECTION_OK) {
        fprintf(stderr, "bench: cannot connect: %s", PQerrorMessage(admin));
        PQfinish(admin);
        free(base);
        return -1;
    }
    PQsetNoticeProcessor(admin, quiet, NULL);
    PQclear(PQexec(admin, "DROP DATABASE IF EXISTS switchboard_bench WITH (FORCE)"));
    PGresult *res = PQexec(admin, "CREATE DATABASE switchboard_bench");
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        fprintf(stderr, "bench: create database: %s", PQerrorMessage(admin));
    PQclear(res);
    PQfinish(admin);
    conninfo = ok ? bench_conninfo(base) : NULL;
    free(base);
    if (conninfo == NULL || sb_migrate(conninfo, NULL, err, sizeof(err)) < 0) {
        fprintf(stderr, "bench: migrate: %s\n", err);
        return -1;
    }
    return 0;
}

/* ---- commands end to end ----------------------------------------------------------------------- */

static void bench_commands(void)
{
    if (setup_db() != 0)
        return;
    sb_runtime_config_t rc = {.idle_ms = 3600 * 1000};
    sb_loops_t *g = group_new(nloops, &rc, true);
    enum { STREAMS = 20000 };
    activate(g, "benchc", 0, STREAMS);
    static const int windows[] = {1, 64, 1024};
    for (size_t w = 0; w < sizeof(windows) / sizeof(windows[0]); w++) {
        int window = windows[w];
        sender_t *ss = calloc((size_t)nloops, sizeof(*ss));
        for (int i = 0; i < nloops; i++) {
            /* The window split over the loops; distinct streams so an actor rarely waits for
             * itself. */
            int share = window / nloops + (i < window % nloops);
            ss[i] = (sender_t){.g = g,
                               .loop = i,
                               .window = share,
                               .category = "benchc",
                               .first = i * (STREAMS / nloops),
                               .nstreams = STREAMS / nloops,
                               .samples = malloc(MAX_SAMPLES * sizeof(uint64_t))};
        }
        double p50, p99;
        double rate = drive(ss, nloops, 0.5, seconds, &p50, &p99);
        printf(
            "actors commands_end_to_end loops=%d in_flight=%d commands_per_s=%.0f p50_us=%.0f p99_us=%.0f\n",
            nloops, window, rate, p50, p99);
        fflush(stdout);
        for (int i = 0; i < nloops; i++)
            free(ss[i].samples);
        free(ss);
    }
    sbtest_group_free(g);
}

/* ---- activation -------------------------------------------------------------------------------- */

typedef struct {
    sb_loops_t *g;
    const char *category;
    int stream;
    uv_sem_t done;
    uint64_t t0, ns;
    int status;
} one_t;

static void on_one(const sb_ask_reply_t *r, void *data)
{
    one_t *o = data;
    o->ns = sb_clock_mono_ns() - o->t0;
    o->status = r->status;
    uv_sem_post(&o->done);
}

static void ask_one(void *arg)
{
    one_t *o = arg;
    char name[SB_STREAM_NAME_MAX];
    stream_name(name, o->category, o->stream);
    o->t0 = sb_clock_mono_ns();
    sb_ask_opts_t opts = {.skip_state = true};
    if (sb_actor_get(o->g, name, &opts, on_one, o) != 0)
        abort();
}

/* Reads one stream and returns the latency (ns) from the ask to the reply. */
static uint64_t timed_get(sb_loops_t *g, int stream)
{
    one_t o = {.g = g, .category = "benchc", .stream = stream};
    uv_sem_init(&o.done, 0);
    char name[SB_STREAM_NAME_MAX];
    stream_name(name, "benchc", stream);
    sbtest_run_on(g->loops[sb_loops_pick(g, sb_stream_hash(name, strlen(name)))], ask_one, &o);
    uv_sem_wait(&o.done);
    uv_sem_destroy(&o.done);
    if (o.status != 0)
        fprintf(stderr, "bench: activation failed: %s\n", sb_errname(o.status));
    return o.ns;
}

static void bench_activation(void)
{
    enum { STREAMS = 50, EVENTS = 10000, ROUNDS = 10 };
    if (setup_db() != 0)
        return;
    /* The streams' events, written straight into the log (one statement per stream). */
    PGconn *c = PQconnectdb(conninfo);
    sb_buf_t payload = SB_BUF_INIT;
    json_t *p = json_pack("{s:s}", "tag", "a tag of a realistic length");
    sb_codec_from_jansson(p, &payload);
    json_decref(p);
    for (int s = 0; s < STREAMS; s++) {
        char name[SB_STREAM_NAME_MAX];
        stream_name(name, "benchc", 100000 + s);
        const char *vals[2] = {name, payload.data};
        int lens[2] = {0, (int)payload.len};
        int fmts[2] = {0, 1};
        PGresult *res =
            PQexecParams(c,
                         "INSERT INTO events (stream, version, type, payload, metadata) "
                         "SELECT $1, g, 'Tagged', $2, '\\x80'::bytea FROM generate_series(1, 10000) g",
                         2, NULL, vals, lens, fmts, 0);
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
            fprintf(stderr, "bench: insert: %s", PQerrorMessage(c));
        PQclear(res);
    }
    sb_buf_free(&payload);

    sb_runtime_config_t rc = {.idle_ms = 3600 * 1000, .snapshot_on_passivate = 1, .read_page = 1000};
    sb_loops_t *g = group_new(nloops, &rc, true);
    /* First activations fold every event; passivating then writes each stream's snapshot. */
    uint64_t fold[STREAMS];
    for (int s = 0; s < STREAMS; s++)
        fold[s] = timed_get(g, 100000 + s);
    sbtest_passivate_all(g);
    for (int tries = 0; tries < 500; tries++) {
        PGresult *res = PQexec(c, "SELECT count(*) FROM snapshots WHERE version = 10000");
        int n = atoi(PQgetvalue(res, 0, 0));
        PQclear(res);
        if (n == STREAMS)
            break;
        usleep(10000);
    }
    uint64_t snap[STREAMS * ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        for (int s = 0; s < STREAMS; s++)
            snap[r * STREAMS + s] = timed_get(g, 100000 + s);
        sbtest_passivate_all(g);
    }
    qsort(fold, STREAMS, sizeof(uint64_t), cmp_u64);
    qsort(snap, STREAMS * ROUNDS, sizeof(uint64_t), cmp_u64);
    printf("actors activation events_behind=%d from=snapshot samples=%d p50_us=%.0f p99_us=%.0f\n", EVENTS,
           STREAMS * ROUNDS, pct(snap, STREAMS * ROUNDS, 0.5), pct(snap, STREAMS * ROUNDS, 0.99));
    printf("actors activation events_behind=%d from=fold samples=%d p50_us=%.0f p99_us=%.0f\n", EVENTS,
           STREAMS, pct(fold, STREAMS, 0.5), pct(fold, STREAMS, 0.99));
    PQfinish(c);
    sbtest_group_free(g);
}

/* ---- memory per actor -------------------------------------------------------------------------- */

static long rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, resident = 0;
    if (f == NULL)
        return 0;
    if (fscanf(f, "%ld %ld", &size, &resident) != 2)
        resident = 0;
    fclose(f);
    return resident * sysconf(_SC_PAGESIZE);
}

static void bench_memory(void)
{
    enum { ACTORS = 100000 };
    /* Contacts when the contact kind is linked in, else the bench kind with the same profile. */
    const char *category = sb_kind_find("contact") ? "contact" : "benchc";
    for (int i = 0; i < ACTORS; i++) {
        char name[SB_STREAM_NAME_MAX], email[64], phone[32], cname[48];
        stream_name(name, category, i);
        snprintf(email, sizeof(email), "someone.%d@example.com", i);
        snprintf(phone, sizeof(phone), "+1555%07d", i);
        snprintf(cname, sizeof(cname), "Contact Number %d", i);
        json_t *d =
            json_pack("{s:s, s:s, s:s, s:[s], s:[s], s:[s,s], s:s, s:n, s:s, s:s}", "contact_id",
                      name + strlen(category) + 1, "workspace_id", "00000000-0000-4000-8000-000000000001",
                      "name", cname, "phones", phone, "emails", email, "tags", "lead", "vip", "stage", "new",
                      "assignee_id", "created_at", "2026-11-21T12:00:00.000000Z", "created_by",
                      "00000000-0000-4000-8000-000000000002");
        sb_memlog_append_external(memlog, name, 0, "ContactCreated", d);
    }
    sb_runtime_config_t rc = {.idle_ms = 3600 * 1000, .memory_budget = (size_t)1 << 40};
    sb_loops_t *g = group_new(nloops, &rc, false);
    malloc_trim(0);
    long before = rss_bytes();
    activate(g, category, 0, ACTORS);
    malloc_trim(0);
    long after = rss_bytes();
    sb_runtime_stats_t st;
    sb_runtime_get_stats(g, &st);
    printf("actors memory kind=%s active=%llu rss_bytes_per_actor=%.0f estimated_bytes_per_actor=%.0f\n",
           category, (unsigned long long)st.active, (double)(after - before) / (double)st.active,
           (double)st.memory / (double)st.active);
    sbtest_group_free(g);
}

int main(int argc, char **argv)
{
    char err[256];
    if (sb_config_load(&cfg, &argc, argv, err, sizeof(err)) != 0) {
        fprintf(stderr, "bench: %s\n", err);
        return 2;
    }
    sb_log_set_level(SB_LOG_WARN);
    nloops = cfg.threads;
    bool all = true, want[4] = {false, false, false, false};
    static const char *const names[4] = {"cross", "commands", "activation", "memory"};
    int positional = 0;
    for (int i = 1; i < argc; i++) {
        /* bench/run.sh passes CONNINFO SECONDS: a fresh, migrated database */
        if (positional == 0 && (strchr(argv[i], '=') != NULL || strncmp(argv[i], "postgres", 8) == 0)) {
            conninfo = strdup(argv[i]);
            positional++;
            continue;
        }
        if (positional == 1 && argv[i][0] >= '0' && argv[i][0] <= '9') {
            seconds = atof(argv[i]);
            positional++;
            continue;
        }
        if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            seconds = atof(argv[++i]);
            continue;
        }
        if (strcmp(argv[i], "--loops") == 0 && i + 1 < argc) {
            nloops = atoi(argv[++i]);
            continue;
        }
        bool known = false;
        for (int k = 0; k < 4; k++)
            if (strcmp(argv[i], names[k]) == 0)
                want[k] = known = true;
        if (!known) {
            fprintf(stderr,
                    "usage: bench_actors [CONNINFO [SECONDS]] [cross] [commands] [activation] [memory] "
                    "[--seconds N] [--loops N]\n");
            return 2;
        }
        all = false;
    }
    if (nloops < 1 || seconds <= 0) {
        fprintf(stderr, "bench: --loops and --seconds must be positive\n");
        return 2;
    }
    sb_uuid_t u;
    sb_uuid_v4(&u);
    run_id = (unsigned)u.b[0] << 8 | u.b[1];
    memlog = sb_memlog_new();
    if (all || want[0])
        bench_cross();
    fflush(stdout);
    if (all || want[1])
        bench_commands();
    fflush(stdout);
    if (all || want[2])
        bench_activation();
    fflush(stdout);
    if (all || want[3])
        bench_memory();
    fflush(stdout);
    sb_memlog_free(memlog);
    free(conninfo);
    if (cluster_started && sb_cluster_stop(cfg.data_dir, err, sizeof(err)) != 0)
        fprintf(stderr, "bench: %s\n", err);
    sb_config_free(&cfg);
    return 0;
}
