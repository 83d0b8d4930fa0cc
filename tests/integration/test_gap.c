/* The gap test (docs/event-log.md): several writer processes, each with several appenders and many
 * commands in flight, append for a few seconds while an independent follower process records every
 * position it is given.  Midway the follower is killed with SIGKILL and restarted from its
 * checkpoint (the last position it wrote down).  Afterwards:
 *   - the follower saw strictly increasing positions, each once;
 *   - what it saw is exactly the set of positions in the log;
 *   - every command a writer had acknowledged is in the log with all of its events.
 * Conflicts are provoked on purpose (writers share streams and some commands name an expected
 * version), so conflicting commands must leave nothing behind; those versions are marked known
 * (sb_append_t.expected_known), so the stale ones are caught by the log's unique key and their
 * batches sent again (it checks that some were).  A writer's appenders share one queue (append.h):
 * it also checks that it never had two batches in flight at once. */
#include "core/clock.h"
#include "core/error.h"
#include "core/loop.h"
#include "core/uuid.h"
#include "events/append.h"
#include "events/follow.h"
#include "events/stream.h"
#include "testdb.h"

#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define WRITERS 3
#define APPENDERS 4  /* per writer process: separate connections, like separate loops */
#define IN_FLIGHT 64 /* commands in flight per appender */
#define SHARED_STREAMS 200
#define RUN_MS 4000

static char dir[256];
static const char *conninfo;

static void die(const char *what)
{
    fprintf(stderr, "test_gap: %s\n", what);
    exit(1);
}

/* ---- writer ------------------------------------------------------------------------------- */

typedef struct slot_s {
    sb_append_t a;
    sb_new_event_t ev[3];
    char stream[SB_STREAM_NAME_MAX];
    struct writer_s *w;
    sb_appender_t *ap;
    int shared; /* index into the shared streams, or -1 */
} slot_t;

typedef struct writer_s {
    sb_loop_t loop;
    sb_appender_t *aps[APPENDERS];
    slot_t slots[APPENDERS * IN_FLIGHT];
    sb_uuid_t shared[SHARED_STREAMS];
    int64_t known_version[SHARED_STREAMS];
    FILE *acks;
    uint64_t deadline_ns;
    int inflight;
    unsigned seed;
    long acked, conflicts, failed;
} writer_t;

static const char payload[] = {(char)0x81, (char)0xa1, 'n', 0x07};

static void submit(writer_t *w, slot_t *s);

static void on_ack(sb_append_t *a, int status)
{
    slot_t *s = a->data;
    writer_t *w = s->w;
    w->inflight--;
    int idx = s->shared;
    if (status == 0) {
        /* stream first..last nevents */
        fprintf(w->acks, "%s %lld %lld %d\n", a->stream, (long long)a->first_position,
                (long long)a->last_position, a->nevents);
        w->acked++;
    } else if (status == SB_ECONFLICT) {
        w->conflicts++;
    } else {
        w->failed++;
        fprintf(stderr, "writer: append failed: %s %s\n", sb_strerror(status), a->error ? a->error : "");
    }
    if (idx >= 0 && (status == 0 || status == SB_ECONFLICT))
        w->known_version[idx] = a->version;
    if (sb_clock_mono_ns() < w->deadline_ns)
        submit(w, s);
    else if (w->inflight == 0)
        uv_stop(&w->loop.uv);
}

static void submit(writer_t *w, slot_t *s)
{
    int r = rand_r(&w->seed);
    int nev = 1 + r % 3;
    s->a = (sb_append_t){0};
    if (r % 4 == 0) {
        /* A stream of its own. */
        sb_uuid_t id;
        sb_uuid_v7(&id);
        sb_stream_format("gap", &id, s->stream);
        s->a.expected_version = SB_VERSION_NO_STREAM;
        s->shared = -1;
    } else {
        int i = (r >> 8) % SHARED_STREAMS;
        s->shared = i;
        sb_stream_format("gap", &w->shared[i], s->stream);
        /* Some commands name the version this writer last knew: other writers make many of them
         * conflict. */
        s->a.expected_version = (r >> 4) % 5 == 0 ? w->known_version[i] : SB_VERSION_ANY;
        /* What it knows came from the log (an outcome): left to the unique key to check. */
        s->a.expected_known = true;
    }
    for (int k = 0; k < nev; k++)
        s->ev[k] = (sb_new_event_t){"GapTested", payload, sizeof(payload), NULL, 0};
    s->a.stream = s->stream;
    s->a.events = s->ev;
    s->a.nevents = nev;
    s->a.cb = on_ack;
    s->a.data = s;
    w->inflight++;
    sb_append(s->ap, &s->a);
}

static int run_writer(int id, const sb_uuid_t *shared)
{
    writer_t *w = calloc(1, sizeof(*w));
    char path[512];
    snprintf(path, sizeof(path), "%s/acks.%d", dir, id);
    w->acks = fopen(path, "w");
    if (w->acks == NULL)
        die("cannot write acks");
    memcpy(w->shared, shared, sizeof(w->shared));
    for (int i = 0; i < SHARED_STREAMS; i++)
        w->known_version[i] = SB_VERSION_ANY;
    w->seed = (unsigned)(id * 7919 + getpid());
    sb_loop_init_standalone(&w->loop);
    for (int i = 0; i < APPENDERS; i++)
        w->aps[i] = sb_appender_open(&w->loop.uv, conninfo);
    w->deadline_ns = sb_clock_mono_ns() + (uint64_t)RUN_MS * 1000000u;
    for (int i = 0; i < APPENDERS * IN_FLIGHT; i++) {
        w->slots[i].w = w;
        w->slots[i].ap = w->aps[i % APPENDERS];
        submit(w, &w->slots[i]);
    }
    uv_run(&w->loop.uv, UV_RUN_DEFAULT);
    /* The process's appenders share one queue: never two of its batches in flight at once (else one
     * waits in PostgreSQL for the log's lock with commands that could have joined the next). */
    sb_appender_stats_t st;
    uint64_t rechecks = 0;
    for (int i = 0; i < APPENDERS; i++) {
        sb_appender_get_stats(w->aps[i], &st);
        rechecks += st.rechecks;
    }
    long overlapped = st.process_in_flight_max != 1;
    if (overlapped)
        fprintf(stderr, "writer %d: %d batches in flight at once\n", id, st.process_in_flight_max);
    for (int i = 0; i < APPENDERS; i++)
        sb_appender_close(w->aps[i], NULL, NULL);
    sb_loop_close_standalone(&w->loop);
    fclose(w->acks);
    fprintf(stderr, "writer %d: acked %ld conflicts %ld failed %ld rechecked batches %llu\n", id, w->acked,
            w->conflicts, w->failed, (unsigned long long)rechecks);
    /* Stale known versions must have been caught by the key (and the batch sent again). */
    int rc = w->failed > 0 || w->acked == 0 || w->conflicts == 0 || rechecks == 0 || overlapped;
    free(w);
    return rc;
}

/* ---- follower ----------------------------------------------------------------------------- */

typedef struct {
    sb_loop_t loop;
    sb_pg_t *pg;
    sb_follower_t *f;
    sb_sub_t *sub;
    FILE *out;
    int64_t stop_at; /* exit once this position is seen (0: run until killed) */
    int64_t after;
} follower_t;

static void on_events(sb_sub_t *s, const sb_event_t *ev, int n, void *data)
{
    follower_t *fl = data;
    for (int i = 0; i < n; i++)
        fprintf(fl->out, "%lld\n", (long long)ev[i].position);
    /* The file is the checkpoint: flush per delivery so a kill loses at most a partial line. */
    fflush(fl->out);
    if (fl->stop_at > 0 && ev[n - 1].position >= fl->stop_at)
        uv_stop(&fl->loop.uv);
}

static void on_start(uv_timer_t *t)
{
    follower_t *fl = t->data;
    uv_timer_stop(t);
    fl->sub = sb_follower_subscribe(fl->f, fl->pg, fl->after, NULL, on_events, fl);
}

static int run_follower(int64_t after, int64_t stop_at)
{
    follower_t fl = {0};
    char path[512];
    snprintf(path, sizeof(path), "%s/seen", dir);
    fl.out = fopen(path, "a");
    fl.after = after;
    fl.stop_at = stop_at;
    sb_loop_init_standalone(&fl.loop);
    fl.pg = sb_pg_open(&fl.loop.uv, conninfo, "follower-test");
    fl.f = sb_follower_new(conninfo, 1);
    sb_follower_start(fl.f, &fl.loop);
    uv_timer_t t;
    uv_timer_init(&fl.loop.uv, &t);
    t.data = &fl;
    uv_timer_start(&t, on_start, 0, 0);
    uv_run(&fl.loop.uv, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&t, NULL);
    if (fl.sub)
        sb_sub_close(fl.sub);
    sb_follower_stop(fl.f);
    sb_pg_close(fl.pg, NULL, NULL);
    sb_loop_close_standalone(&fl.loop);
    sb_follower_free(fl.f);
    fclose(fl.out);
    return 0;
}

/* The checkpoint after a kill: the last complete line of the seen file (a torn line is cut). */
static int64_t recover_checkpoint(void)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/seen", dir);
    FILE *f = fopen(path, "r+");
    if (f == NULL)
        return 0;
    int64_t last = 0;
    long good = 0;
    char line[64];
    while (fgets(line, sizeof(line), f) != NULL) {
        size_t n = strlen(line);
        if (n == 0 || line[n - 1] != '\n')
            break;
        last = strtoll(line, NULL, 10);
        good = ftell(f);
    }
    fclose(f);
    if (truncate(path, good) != 0)
        die("truncate");
    return last;
}

static pid_t spawn(int (*fn)(void))
{
    fflush(NULL);
    pid_t p = fork();
    if (p == 0)
        _exit(fn());
    return p;
}

static sb_uuid_t shared_ids[SHARED_STREAMS];
static int writer_id;
static int writer_main(void)
{
    return run_writer(writer_id, shared_ids);
}
static int64_t follower_after, follower_stop;
static int follower_main(void)
{
    return run_follower(follower_after, follower_stop);
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

int main(void)
{
    snprintf(dir, sizeof(dir), "%s/gap.%d", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", getpid());
    if (mkdir(dir, 0700) != 0)
        die("mkdir");
    char *ci = sbt_db_create("gap");
    if (ci == NULL || sbt_db_migrate(ci) < 0)
        die("cannot create the test database");
    conninfo = ci;
    for (int i = 0; i < SHARED_STREAMS; i++)
        sb_uuid_v4(&shared_ids[i]);

    follower_after = 0;
    follower_stop = 0;
    pid_t fol = spawn(follower_main);
    pid_t writers[WRITERS];
    for (int i = 0; i < WRITERS; i++) {
        writer_id = i;
        writers[i] = spawn(writer_main);
    }
    /* Midway, kill the follower outright and restart it from its checkpoint. */
    usleep(RUN_MS * 1000 / 2);
    kill(fol, SIGKILL);
    waitpid(fol, NULL, 0);
    follower_after = recover_checkpoint();
    fprintf(stderr, "follower killed at checkpoint %lld; restarting\n", (long long)follower_after);

    int failed = 0;
    for (int i = 0; i < WRITERS; i++) {
        int st;
        waitpid(writers[i], &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "writer %d failed (status %d)\n", i, st);
            failed = 1;
        }
    }
    /* Writers are done: the log is final.  The restarted follower runs to its end. */
    PGconn *db = PQconnectdb(conninfo);
    PGresult *r = PQexec(db, "SELECT position FROM events ORDER BY position");
    int nlog = PQntuples(r);
    int64_t *logpos = malloc(sizeof(int64_t) * (size_t)(nlog + 1));
    for (int i = 0; i < nlog; i++)
        logpos[i] = strtoll(PQgetvalue(r, i, 0), NULL, 10);
    PQclear(r);
    follower_stop = nlog > 0 ? logpos[nlog - 1] : 0;
    if (nlog == 0 || follower_stop <= follower_after) {
        fprintf(stderr, "nothing written after the kill (log %d events)\n", nlog);
        failed = 1;
    }
    fol = spawn(follower_main);
    int st;
    waitpid(fol, &st, 0);

    /* What the follower saw, in order. */
    char path[512];
    snprintf(path, sizeof(path), "%s/seen", dir);
    FILE *f = fopen(path, "r");
    int64_t *seen = malloc(sizeof(int64_t) * (size_t)(nlog + 16));
    int nseen = 0;
    char line[64];
    while (f && fgets(line, sizeof(line), f) != NULL) {
        if (nseen >= nlog + 16) {
            fprintf(stderr, "follower saw more events than the log holds\n");
            failed = 1;
            break;
        }
        seen[nseen++] = strtoll(line, NULL, 10);
    }
    if (f)
        fclose(f);
    for (int i = 1; i < nseen; i++) {
        if (seen[i] <= seen[i - 1]) {
            fprintf(stderr, "order broken: %lld after %lld\n", (long long)seen[i], (long long)seen[i - 1]);
            failed = 1;
            break;
        }
    }
    if (nseen != nlog) {
        fprintf(stderr, "follower saw %d events, the log holds %d\n", nseen, nlog);
        failed = 1;
    } else {
        for (int i = 0; i < nlog; i++) {
            if (seen[i] != logpos[i]) {
                fprintf(stderr, "follower saw %lld where the log has %lld\n", (long long)seen[i],
                        (long long)logpos[i]);
                failed = 1;
                break;
            }
        }
    }
    /* Every acknowledged command is in the log with all its events, in its stream. */
    long acks = 0;
    for (int w = 0; w < WRITERS && !failed; w++) {
        snprintf(path, sizeof(path), "%s/acks.%d", dir, w);
        f = fopen(path, "r");
        char stream[SB_STREAM_NAME_MAX];
        long long first, last;
        int nev;
        while (f && fscanf(f, "%63s %lld %lld %d", stream, &first, &last, &nev) == 4) {
            acks++;
            int64_t key = first;
            int64_t *hit = bsearch(&key, logpos, (size_t)nlog, sizeof(int64_t), cmp64);
            if (hit == NULL || last - first + 1 < nev) {
                fprintf(stderr, "acknowledged command at %lld is missing\n", first);
                failed = 1;
                break;
            }
            char q[256];
            snprintf(q, sizeof(q),
                     "SELECT count(*) FROM events WHERE stream = '%s' AND position BETWEEN %lld AND %lld",
                     stream, first, last);
            r = PQexec(db, q);
            if (atoi(PQgetvalue(r, 0, 0)) != nev) {
                fprintf(stderr, "command at %lld: %s events, expected %d\n", first, PQgetvalue(r, 0, 0), nev);
                failed = 1;
            }
            PQclear(r);
            if (failed)
                break;
        }
        if (f)
            fclose(f);
    }
    /* Versions are contiguous in every stream: a conflicting command left nothing behind. */
    r = PQexec(db, "SELECT count(*) FROM (SELECT stream FROM events GROUP BY stream"
                   " HAVING max(version) <> count(*) OR min(version) <> 1) s");
    if (atoi(PQgetvalue(r, 0, 0)) != 0) {
        fprintf(stderr, "%s streams have holes in their versions\n", PQgetvalue(r, 0, 0));
        failed = 1;
    }
    PQclear(r);
    PQfinish(db);
    fprintf(stderr, "log %d events, follower saw %d, %ld acknowledged commands checked: %s\n", nlog, nseen,
            acks, failed ? "FAIL" : "ok");
    free(seen);
    free(logpos);
    if (!failed) {
        char cmd[600];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            failed = 1;
        sbt_db_drop("gap");
    }
    free(ci);
    return failed;
}
