/* The actor runtime against the real PostgreSQL event log: many loops commanding one actor, two
 * processes commanding the same streams (no lost update), passivation and reactivation from a
 * snapshot, and a full mailbox.  The kind is a small "counter" defined here; the domain's kinds
 * have their own tests. */
#include "actors/kinds.h"
#include "actors/runtime.h"
#include "actors/runtime_store.h"
#include "core/clock.h"
#include "core/error.h"
#include "db/pg.h"
#include "events/append.h"
#include "events/codec.h"
#include "events/stream.h"
#include "loopgroup.h"
#include "sbtest.h"
#include "testdb.h"

#include <libpq-fe.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- the counter kind: Tag adds a tag; the state counts and lists them ------------------------- */

static json_t *k_initial(void)
{
    return json_pack("{s:i, s:[]}", "n", 0, "tags");
}

static int k_decide(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx, sb_devents_t *out,
                    sb_derror_t *err)
{
    (void)state, (void)ctx;
    const char *type = json_string_value(json_object_get(cmd, "type"));
    if (type != NULL && strcmp(type, "Tag") == 0)
        return sb_devents_add(out, "Tagged", json_pack("{s:O}", "tag", json_object_get(cmd, "tag")));
    return sb_reject(err, 400, "unknown_command", "type", "unknown command");
}

static void k_evolve(json_t *state, const sb_devent_t *ev)
{
    if (strcmp(ev->type, "Tagged") != 0)
        return;
    json_object_set_new(state, "n", json_integer(json_integer_value(json_object_get(state, "n")) + 1));
    json_array_append(json_object_get(state, "tags"), json_object_get(ev->data, "tag"));
}

static const sb_kind_t counter_kind = {"counter", k_initial, k_decide, k_evolve};

/* The counter, and the domain's kinds (the replay test uses the workspace). */
static const sb_kind_t *find_kind(const char *category)
{
    return strcmp(category, "counter") == 0 ? &counter_kind : sb_kind_find(category);
}

static void stream_name(char out[SB_STREAM_NAME_MAX], int i)
{
    snprintf(out, SB_STREAM_NAME_MAX, "counter-00000000-0000-4000-8000-%012d", i);
}

/* ---- loops with connections, appenders and the runtime --------------------------------------- */

static char *conninfo;

/* n loops, each with a query connection, an appender and the runtime with rc, resolving the
 * counter kind. */
static sb_loops_t *group_new(int n, const sb_runtime_config_t *rc)
{
    sb_runtime_config_t cfg = *rc;
    cfg.find_kind = find_kind;
    return sbtest_group_new(n, &cfg, conninfo);
}

/* Replies to a set of asks, collected for the main thread. */
typedef struct {
    _Atomic int pending;
    uv_sem_t done;
    uv_mutex_t mu;
    int ok, overload, conflict, other;
    json_t *acked; /* {stream: {tag: version}} */
    json_t *state; /* a private copy of the last reply's state */
} batch_t;

static void batch_init(batch_t *b, int n)
{
    memset(b, 0, sizeof(*b));
    atomic_store(&b->pending, n);
    uv_sem_init(&b->done, 0);
    uv_mutex_init(&b->mu);
    b->acked = json_object();
}

static void batch_free(batch_t *b)
{
    uv_sem_destroy(&b->done);
    uv_mutex_destroy(&b->mu);
    json_decref(b->acked);
    json_decref(b->state);
}

typedef struct {
    batch_t *b;
    char tag[64];
} ask_ctx_t;

static void on_reply(const sb_ask_reply_t *r, void *data)
{
    ask_ctx_t *c = data;
    batch_t *b = c->b;
    uv_mutex_lock(&b->mu);
    if (r->status == 0) {
        b->ok++;
        if (r->nevents == 1) {
            json_t *m = json_object_get(b->acked, r->stream);
            if (m == NULL) {
                m = json_object();
                json_object_set_new(b->acked, r->stream, m);
            }
            json_object_set_new(m, c->tag, json_integer(r->events[0].version));
        }
        if (r->state != NULL) {
            json_decref(b->state);
            b->state = json_deep_copy(r->state);
        }
    } else if (r->status == SB_EOVERLOAD) {
        b->overload++;
    } else if (r->status == SB_ECONFLICT) {
        b->conflict++;
    } else {
        fprintf(stderr, "reply: %s %s %s\n", sb_errname(r->status), r->error ? r->error : "",
                r->err ? r->err->message : "");
        b->other++;
    }
    uv_mutex_unlock(&b->mu);
    free(c);
    if (atomic_fetch_sub(&b->pending, 1) == 1)
        uv_sem_post(&b->done);
}

/* One ask (or, with cmd NULL, a read) from loop 0, waited for; a copy of the reply's state in
 * *state.  0 when it succeeded. */
typedef struct {
    sb_loops_t *g;
    const char *stream, *cmd;
    const sb_ask_opts_t *opts;
    batch_t *b;
} one_t;

static void do_one(void *arg)
{
    one_t *o = arg;
    ask_ctx_t *c = calloc(1, sizeof(*c));
    c->b = o->b;
    snprintf(c->tag, sizeof(c->tag), "one");
    int r = o->cmd ? sb_actor_ask(o->g, o->stream, json_loads(o->cmd, 0, NULL), o->opts, on_reply, c)
                   : sb_actor_get(o->g, o->stream, o->opts, on_reply, c);
    if (r != 0)
        abort();
}

static int ask_opts(sb_loops_t *g, const char *stream, const char *cmd, const sb_ask_opts_t *opts,
                    json_t **state)
{
    batch_t b;
    batch_init(&b, 1);
    one_t o = {g, stream, cmd, opts, &b};
    sbtest_run_on(g->loops[0], do_one, &o);
    uv_sem_wait(&b.done);
    int ok = b.ok;
    if (state != NULL)
        *state = json_incref(b.state);
    batch_free(&b);
    return ok == 1 ? 0 : -1;
}

static int ask_one(sb_loops_t *g, const char *stream, const char *cmd, const char *user, json_t **state)
{
    sb_ask_opts_t opts = {.user_id = user, .source = "test"};
    return ask_opts(g, stream, cmd, &opts, state);
}

typedef struct {
    sb_loops_t *g;
    batch_t *b;
    int first_stream, nstreams, count;
    const char *prefix;
    const char *workspace;
    bool get;
    const char *contact;   /* when set: AddNote commands to this contact, the tag as note id */
    const json_t *context; /* for the contact's decisions */
} asks_t;

static void do_asks(void *arg)
{
    asks_t *a = arg;
    for (int i = 0; i < a->count; i++) {
        char s[SB_STREAM_NAME_MAX];
        stream_name(s, a->first_stream + i % a->nstreams);
        ask_ctx_t *c = calloc(1, sizeof(*c));
        c->b = a->b;
        snprintf(c->tag, sizeof(c->tag), "%s-%d-%d", a->prefix ? a->prefix : "t", sb_loop_current()->index,
                 i);
        int r;
        sb_ask_opts_t opts = {.source = "test",
                              .request_id = c->tag,
                              .workspace_id = a->workspace,
                              .context = a->context,
                              .skip_state = !a->get};
        if (a->contact != NULL) {
            sb_uuid_t id;
            sb_uuid_v7(&id);
            sb_uuid_format(&id, c->tag);
            r = sb_actor_ask(
                a->g, a->contact,
                json_pack("{s:s, s:s, s:s}", "type", "AddNote", "note_id", c->tag, "body", "a note"), &opts,
                on_reply, c);
        } else if (a->get)
            r = sb_actor_get(a->g, s, &opts, on_reply, c);
        else
            r = sb_actor_ask(a->g, s, json_pack("{s:s, s:s}", "type", "Tag", "tag", c->tag), &opts, on_reply,
                             c);
        if (r != 0)
            abort();
    }
}

static json_t *get_state(sb_loops_t *g, int stream)
{
    batch_t b;
    batch_init(&b, 1);
    asks_t a = {.g = g, .b = &b, .first_stream = stream, .nstreams = 1, .count = 1, .get = true};
    sbtest_run_on(g->loops[0], do_asks, &a);
    uv_sem_wait(&b.done);
    json_t *s = json_incref(b.state);
    batch_free(&b);
    return s;
}

/* ---- reading the log directly (blocking libpq on the main thread) ---------------------------------- */

static PGconn *db;

/* The stream's events as [{version, tag}], where tag is the payload's key field. */
static json_t *log_events_key(const char *stream, const char *key)
{
    const char *params[1] = {stream};
    PGresult *res = PQexecParams(db, "SELECT version, payload FROM events WHERE stream = $1 ORDER BY version",
                                 1, NULL, params, NULL, NULL, 1);
    json_t *out = json_array();
    if (!CHECK(PQresultStatus(res) == PGRES_TUPLES_OK))
        fprintf(stderr, "log_events: %s", PQerrorMessage(db));
    for (int i = 0; i < PQntuples(res); i++) {
        int64_t v = 0;
        const unsigned char *p = (const unsigned char *)PQgetvalue(res, i, 0);
        for (int k = 0; k < 8; k++)
            v = (v << 8) | p[k];
        json_t *payload = NULL;
        char err[128];
        if (!CHECK(sb_codec_to_jansson(PQgetvalue(res, i, 1), (size_t)PQgetlength(res, i, 1), &payload, err,
                                       sizeof(err)) == 0)) {
            fprintf(stderr, "log_events: bad payload: %s\n", err);
            continue;
        }
        json_array_append_new(
            out, json_pack("{s:I, s:O*}", "version", (json_int_t)v, "tag", json_object_get(payload, key)));
        json_decref(payload);
    }
    PQclear(res);
    return out;
}

static int64_t snapshot_version(const char *stream)
{
    const char *params[1] = {stream};
    PGresult *res =
        PQexecParams(db, "SELECT version FROM snapshots WHERE stream = $1", 1, NULL, params, NULL, NULL, 0);
    int64_t v = PQntuples(res) == 1 ? atoll(PQgetvalue(res, 0, 0)) : 0;
    PQclear(res);
    return v;
}

/* The log has versions 1..n of stream with no gap, and holds every acknowledged tag at the version
 * its reply reported.  Returns n. */
static int check_log_key(const char *stream, json_t *acked, const char *key);

static int check_log(const char *stream, json_t *acked)
{
    return check_log_key(stream, acked, "tag");
}

static int check_log_key(const char *stream, json_t *acked, const char *key)
{
    json_t *evs = log_events_key(stream, key);
    size_t i;
    json_t *e;
    json_array_foreach(evs, i, e)
        CHECK(json_integer_value(json_object_get(e, "version")) == (json_int_t)i + 1);
    json_t *by_tag = json_object();
    json_array_foreach(evs, i, e)
        json_object_set(by_tag, json_string_value(json_object_get(e, "tag")), json_object_get(e, "version"));
    const char *tag;
    json_t *v;
    json_object_foreach(acked, tag, v)
    {
        json_t *in_log = json_object_get(by_tag, tag);
        CHECK(in_log != NULL && json_integer_value(in_log) == json_integer_value(v));
    }
    int n = (int)json_array_size(evs);
    json_decref(by_tag);
    json_decref(evs);
    return n;
}

/* ---- tests --------------------------------------------------------------------------------- */

/* 500 commands sent at once from every loop to one actor: all acknowledged, versions 1..500 with
 * no gap, each acknowledged command in the log at the version it was told. */
static void test_many_to_one(void)
{
    enum { LOOPS = 4, PER_LOOP = 125 };
    sb_runtime_config_t rc = {0};
    sb_loops_t *g = group_new(LOOPS, &rc);
    batch_t b;
    batch_init(&b, LOOPS * PER_LOOP);
    asks_t a[LOOPS];
    for (int i = 0; i < LOOPS; i++) {
        a[i] = (asks_t){.g = g,
                        .b = &b,
                        .first_stream = 1,
                        .nstreams = 1,
                        .count = PER_LOOP,
                        .prefix = "m",
                        .workspace = "00000000-0000-4000-8000-0000000000aa"};
        sbtest_run_on(g->loops[i], do_asks, &a[i]);
    }
    uv_sem_wait(&b.done);
    CHECK(b.ok == LOOPS * PER_LOOP);
    char name[SB_STREAM_NAME_MAX];
    stream_name(name, 1);
    json_t *acked = json_object_get(b.acked, name);
    CHECK(json_object_size(acked) == LOOPS * PER_LOOP);
    CHECK(check_log(name, acked) == LOOPS * PER_LOOP);
    /* stored under the caller's workspace, with the metadata the asks gave */
    const char *params[1] = {name};
    PGresult *res = PQexecParams(db,
                                 "SELECT count(*) FROM events WHERE stream = $1 AND "
                                 "workspace_id = '00000000-0000-4000-8000-0000000000aa'",
                                 1, NULL, params, NULL, NULL, 0);
    CHECK(PQntuples(res) == 1 && atoi(PQgetvalue(res, 0, 0)) == LOOPS * PER_LOOP);
    PQclear(res);
    res = PQexecParams(db, "SELECT metadata FROM events WHERE stream = $1 AND version = 1", 1, NULL, params,
                       NULL, NULL, 1);
    json_t *meta = NULL;
    char err[128];
    CHECK(PQntuples(res) == 1 && sb_codec_to_jansson(PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0),
                                                     &meta, err, sizeof(err)) == 0);
    CHECK(json_is_string(json_object_get(meta, "request_id")) &&
          json_is_null(json_object_get(meta, "user_id")) &&
          strcmp(json_string_value(json_object_get(meta, "source")), "test") == 0);
    json_decref(meta);
    PQclear(res);
    json_t *st = get_state(g, 1);
    CHECK(json_integer_value(json_object_get(st, "n")) == LOOPS * PER_LOOP);
    json_decref(st);
    batch_free(&b);
    sbtest_group_free(g);
}

/* The same with the domain's contact kind: a workspace, its context, a contact, then 500 notes
 * added at once from every loop.  The events are stored under the workspace the contact's state
 * names. */
static void test_contact_500(void)
{
    enum { LOOPS = 4, PER_LOOP = 125 };
    const char *ws = "workspace-00000000-0000-4000-8000-0000000000c1";
    const char *contact = "contact-00000000-0000-4000-8000-0000000000c2";
    const char *owner = "00000000-0000-4000-8000-0000000000c3";
    sb_runtime_config_t rc = {0};
    sb_loops_t *g = group_new(LOOPS, &rc);
    json_t *wstate = NULL;
    CHECK(ask_one(g, ws,
                  "{\"type\":\"CreateWorkspace\",\"name\":\"Notes Inc\",\"owner_email\":\"o@example.com\"}",
                  owner, &wstate) == 0);
    json_t *ctx = sb_workspace_context(wstate);
    json_decref(wstate);
    char create[256];
    snprintf(create, sizeof(create), "{\"type\":\"CreateContact\",\"workspace_id\":\"%s\",\"name\":\"Pat\"}",
             ws + strlen("workspace-"));
    sb_ask_opts_t copts = {.context = ctx, .source = "test"};
    CHECK(ask_opts(g, contact, create, &copts, NULL) == 0);

    batch_t b;
    batch_init(&b, LOOPS * PER_LOOP);
    asks_t a[LOOPS];
    for (int i = 0; i < LOOPS; i++) {
        a[i] =
            (asks_t){.g = g, .b = &b, .count = PER_LOOP, .nstreams = 1, .contact = contact, .context = ctx};
        sbtest_run_on(g->loops[i], do_asks, &a[i]);
    }
    uv_sem_wait(&b.done);
    CHECK(b.ok == LOOPS * PER_LOOP);
    json_t *acked = json_object_get(b.acked, contact);
    CHECK(json_object_size(acked) == LOOPS * PER_LOOP);
    CHECK(check_log_key(contact, acked, "note_id") == 1 + LOOPS * PER_LOOP);
    json_t *st = NULL;
    CHECK(ask_one(g, contact, NULL, NULL, &st) == 0);
    CHECK(json_object_size(json_object_get(st, "notes")) == LOOPS * PER_LOOP);
    json_decref(st);
    const char *params[2] = {contact, ws + strlen("workspace-")};
    PGresult *res =
        PQexecParams(db, "SELECT count(*) FROM events WHERE stream = $1 AND workspace_id = $2::uuid", 2, NULL,
                     params, NULL, NULL, 0);
    CHECK(PQntuples(res) == 1 && atoi(PQgetvalue(res, 0, 0)) == 1 + LOOPS * PER_LOOP);
    PQclear(res);
    batch_free(&b);
    json_decref(ctx);
    sbtest_group_free(g);
}

/* Snapshots are written every K events and on passivation; an actor reactivated from its snapshot
 * has the same state; a fresh runtime (empty memory) gets there from the snapshot too. */
static void test_snapshot_reactivation(void)
{
    sb_runtime_config_t rc = {.snapshot_every = 10, .snapshot_on_passivate = 1};
    sb_loops_t *g = group_new(2, &rc);
    char name[SB_STREAM_NAME_MAX];
    stream_name(name, 2);
    batch_t b;
    batch_init(&b, 25);
    asks_t a = {.g = g, .b = &b, .first_stream = 2, .nstreams = 1, .count = 25, .prefix = "s"};
    sbtest_run_on(g->loops[0], do_asks, &a);
    uv_sem_wait(&b.done);
    CHECK(b.ok == 25);
    batch_free(&b);
    json_t *before = get_state(g, 2);
    /* Snapshot writes are asynchronous and best effort: poll for the one at version 20. */
    uint64_t deadline = sb_clock_mono_ns() + 5000000000ull;
    while (snapshot_version(name) < 20 && sb_clock_mono_ns() < deadline)
        usleep(2000);
    CHECK(snapshot_version(name) == 20);
    CHECK(sbtest_passivate_all(g) == 1);
    while (snapshot_version(name) < 25 && sb_clock_mono_ns() < deadline)
        usleep(2000);
    CHECK(snapshot_version(name) == 25);
    json_t *after = get_state(g, 2);
    CHECK(json_equal(before, after));
    sb_runtime_stats_t stats;
    sb_runtime_get_stats(g, &stats);
    CHECK(stats.activations == 2 && stats.passivations == 1);
    json_decref(after);
    sbtest_group_free(g);

    /* A new runtime: the snapshot (version 25) plus nothing after it. */
    g = group_new(3, &rc);
    after = get_state(g, 2);
    CHECK(json_equal(before, after));
    json_decref(after);
    /* and it carries on at version 26 */
    batch_init(&b, 1);
    a = (asks_t){.g = g, .b = &b, .first_stream = 2, .nstreams = 1, .count = 1, .prefix = "s2"};
    sbtest_run_on(g->loops[1], do_asks, &a);
    uv_sem_wait(&b.done);
    CHECK(b.ok == 1);
    CHECK(json_integer_value(json_object_get(json_object_get(b.acked, name), "s2-1-0")) == 26);
    batch_free(&b);
    json_decref(before);
    sbtest_group_free(g);
}

/* A full mailbox answers SB_EOVERLOAD at once: every ask is sent from the owner loop in one task,
 * so they all arrive while the actor is still loading from the database. */
static void test_mailbox_full(void)
{
    sb_runtime_config_t rc = {.mailbox_capacity = 4};
    sb_loops_t *g = group_new(1, &rc);
    batch_t b;
    batch_init(&b, 50);
    asks_t a = {.g = g, .b = &b, .first_stream = 3, .nstreams = 1, .count = 50, .prefix = "o"};
    sbtest_run_on(g->loops[0], do_asks, &a);
    uv_sem_wait(&b.done);
    CHECK(b.ok == 4);
    CHECK(b.overload == 46);
    sb_runtime_stats_t stats;
    sb_runtime_get_stats(g, &stats);
    CHECK(stats.mailbox_full == 46);
    char name[SB_STREAM_NAME_MAX];
    stream_name(name, 3);
    CHECK(check_log(name, json_object_get(b.acked, name)) == 4);
    batch_free(&b);
    sbtest_group_free(g);
}

/* Two processes, each with its own loops and connections, command the same streams at the same
 * time.  Optimistic concurrency makes them conflict, reload and retry: every acknowledged command
 * is in the log at the version it was told, versions have no gaps, and the log holds nothing
 * that was not acknowledged. */
enum { TP_STREAMS = 4, TP_PER_LOOP = 150, TP_LOOPS = 2 };

typedef struct {
    int ok, conflict, other;
    uint64_t conflicts, retries;
} tp_result_t;

static tp_result_t run_contender(const char *prefix, json_t **acked)
{
    sb_runtime_config_t rc = {.max_attempts = 50, .snapshot_every = -1};
    sb_loops_t *g = group_new(TP_LOOPS, &rc);
    batch_t b;
    batch_init(&b, TP_LOOPS * TP_PER_LOOP);
    asks_t a[TP_LOOPS];
    for (int i = 0; i < TP_LOOPS; i++) {
        a[i] = (asks_t){.g = g,
                        .b = &b,
                        .first_stream = 10,
                        .nstreams = TP_STREAMS,
                        .count = TP_PER_LOOP,
                        .prefix = prefix};
        sbtest_run_on(g->loops[i], do_asks, &a[i]);
    }
    uv_sem_wait(&b.done);
    sb_runtime_stats_t stats;
    sb_runtime_get_stats(g, &stats);
    tp_result_t r = {b.ok, b.conflict, b.other, stats.conflicts, stats.retries};
    if (acked)
        *acked = json_incref(b.acked);
    batch_free(&b);
    sbtest_group_free(g);
    return r;
}

static void test_two_processes(void)
{
    int go[2], res[2];
    if (pipe(go) != 0 || pipe(res) != 0)
        abort();
    fflush(NULL);
    pid_t child = fork();
    if (child == 0) {
        close(go[1]);
        close(res[0]);
        char c;
        if (read(go[0], &c, 1) != 1)
            _exit(3);
        json_t *acked = NULL;
        tp_result_t r = run_contender("child", &acked);
        char *text = json_dumps(acked, JSON_COMPACT);
        size_t len = strlen(text);
        int ok = write(res[1], &r, sizeof(r)) == (ssize_t)sizeof(r) && write(res[1], &len, sizeof(len)) > 0 &&
                 write(res[1], text, len) == (ssize_t)len;
        free(text);
        json_decref(acked);
        free(conninfo);
        exit(ok ? 0 : 4);
    }
    close(go[0]);
    close(res[1]);
    /* Both start together: the child on the byte, the parent right after sending it. */
    if (write(go[1], "x", 1) != 1)
        abort();
    json_t *mine = NULL;
    tp_result_t pr = run_contender("parent", &mine);
    tp_result_t cr;
    size_t len = 0;
    CHECK(read(res[0], &cr, sizeof(cr)) == (ssize_t)sizeof(cr));
    CHECK(read(res[0], &len, sizeof(len)) == (ssize_t)sizeof(len));
    char *text = calloc(1, len + 1);
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(res[0], text + got, len - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    int status = 0;
    waitpid(child, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    json_t *theirs = json_loads(text, 0, NULL);
    db = PQconnectdb(conninfo);
    if (PQstatus(db) != CONNECTION_OK) {
        fprintf(stderr, "connect: %s", PQerrorMessage(db));
        exit(1);
    }
    free(text);
    close(go[1]);
    close(res[0]);
    fprintf(stderr,
            "two processes: parent ok=%d conflicts=%llu retries=%llu gave_up=%d; child ok=%d conflicts=%llu "
            "retries=%llu gave_up=%d\n",
            pr.ok, (unsigned long long)pr.conflicts, (unsigned long long)pr.retries, pr.conflict, cr.ok,
            (unsigned long long)cr.conflicts, (unsigned long long)cr.retries, cr.conflict);
    CHECK(pr.other == 0 && cr.other == 0);
    CHECK(pr.ok + pr.conflict == TP_LOOPS * TP_PER_LOOP);
    CHECK(cr.ok + cr.conflict == TP_LOOPS * TP_PER_LOOP);
    CHECK(pr.conflicts + cr.conflicts > 0); /* they did contend */
    int total = 0;
    for (int s = 0; s < TP_STREAMS; s++) {
        char name[SB_STREAM_NAME_MAX];
        stream_name(name, 10 + s);
        json_t *both = json_object();
        json_object_update(both, json_object_get(mine, name));
        json_object_update(both, json_object_get(theirs, name));
        int n = check_log(name, both);
        CHECK(n == (int)json_object_size(both)); /* nothing stored that was not acknowledged */
        total += n;
        json_decref(both);
    }
    CHECK(total == pr.ok + cr.ok);
    json_decref(mine);
    json_decref(theirs);
}

/* ---- switchboard replay ------------------------------------------------------------------------ */

/* Runs `switchboard replay ARGS` against the test database: the exit code, stdout parsed as JSON
 * (NULL if it is not), and stderr's text. */
static int replay(const char *args, json_t **out, char *errtext, size_t errlen)
{
    const char *bin = getenv("SWITCHBOARD_BIN");
    char errfile[] = "/tmp/sb_replay_err_XXXXXX";
    int fd = mkstemp(errfile);
    if (bin == NULL || fd < 0)
        abort();
    close(fd);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "%s replay %s 2>%s", bin, args, errfile);
    FILE *p = popen(cmd, "r");
    sb_buf_t text = SB_BUF_INIT;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), p)) > 0)
        sb_buf_append(&text, chunk, n);
    int status = pclose(p);
    if (out != NULL)
        *out = text.data ? json_loads(text.data, 0, NULL) : NULL;
    sb_buf_free(&text);
    FILE *e = fopen(errfile, "r");
    size_t m = e ? fread(errtext, 1, errlen - 1, e) : 0;
    errtext[m] = '\0';
    if (e)
        fclose(e);
    unlink(errfile);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int64_t position_of(const char *stream, int version)
{
    char v[16];
    snprintf(v, sizeof(v), "%d", version);
    const char *params[2] = {stream, v};
    PGresult *res = PQexecParams(db, "SELECT position FROM events WHERE stream = $1 AND version = $2", 2,
                                 NULL, params, NULL, NULL, 0);
    int64_t pos = PQntuples(res) == 1 ? atoll(PQgetvalue(res, 0, 0)) : 0;
    PQclear(res);
    return pos;
}

/* Time travel: the workspace's state at a position, now (from its snapshot, or folding every event),
 * before it existed; and the command's errors. */
static void test_replay(void)
{
    const char *ws = "workspace-00000000-0000-4000-8000-0000000000e1";
    const char *owner = "00000000-0000-4000-8000-0000000000f1";
    sb_runtime_config_t rc = {.snapshot_every = 2};
    sb_loops_t *g = group_new(2, &rc);
    CHECK(ask_one(g, ws,
                  "{\"type\":\"CreateWorkspace\",\"name\":\"Acme\",\"owner_email\":\"owner@example.com\","
                  "\"default_country\":\"US\"}",
                  owner, NULL) == 0);
    CHECK(ask_one(g, ws, "{\"type\":\"RenameWorkspace\",\"name\":\"Acme 2\"}", owner, NULL) == 0);
    CHECK(ask_one(g, ws, "{\"type\":\"RenameWorkspace\",\"name\":\"Acme 3\"}", owner, NULL) == 0);
    json_t *now = NULL;
    CHECK(ask_one(g, ws, NULL, NULL, &now) == 0);
    sbtest_group_free(g);
    uint64_t deadline = sb_clock_mono_ns() + 5000000000ull;
    while (snapshot_version(ws) < 4 && sb_clock_mono_ns() < deadline)
        usleep(2000);
    CHECK(snapshot_version(ws) == 4);
    setenv("SWITCHBOARD_DATABASE_URL", conninfo, 1);
    setenv("SWITCHBOARD_LOG", "warn", 1);

    char args[256], err[1024];
    json_t *st = NULL;
    /* now, from the snapshot: nothing left to fold */
    snprintf(args, sizeof(args), "%s", ws);
    CHECK(replay(args, &st, err, sizeof(err)) == 0);
    CHECK(st != NULL && json_equal(st, now));
    CHECK(strstr(err, "version=4") != NULL && strstr(err, "events_folded=0") != NULL);
    json_decref(st);
    /* now, folding every event */
    snprintf(args, sizeof(args), "%s --no-snapshot", ws);
    CHECK(replay(args, &st, err, sizeof(err)) == 0);
    CHECK(st != NULL && json_equal(st, now));
    CHECK(strstr(err, "events_folded=4") != NULL);
    json_decref(st);
    /* at version 3's position: the snapshot (version 4) is past it */
    snprintf(args, sizeof(args), "%s --at %lld", ws, (long long)position_of(ws, 3));
    CHECK(replay(args, &st, err, sizeof(err)) == 0);
    CHECK(strcmp(json_string_value(json_object_get(st, "name")), "Acme 2") == 0);
    CHECK(strstr(err, "version=3") != NULL);
    json_decref(st);
    /* as of a time before it existed: the initial state */
    snprintf(args, sizeof(args), "%s --as-of 2000-01-01", ws);
    CHECK(replay(args, &st, err, sizeof(err)) == 0);
    CHECK(json_is_false(json_object_get(st, "created")));
    json_decref(st);
    /* as of now: the same as the actor */
    char t[SB_RFC3339_LEN];
    sb_clock_format_rfc3339(sb_clock_now_us(), t);
    snprintf(args, sizeof(args), "%s --as-of %s", ws, t);
    CHECK(replay(args, &st, err, sizeof(err)) == 0);
    CHECK(st != NULL && json_equal(st, now));
    json_decref(st);
    /* errors: usage (2), no such stream (1) */
    CHECK(replay("", NULL, err, sizeof(err)) == 2);
    CHECK(replay("not-a-stream", NULL, err, sizeof(err)) == 2);
    CHECK(replay("nosuchkind-00000000-0000-4000-8000-0000000000e1", NULL, err, sizeof(err)) == 2);
    snprintf(args, sizeof(args), "%s --at 5 --as-of 2000-01-01", ws);
    CHECK(replay(args, NULL, err, sizeof(err)) == 2);
    snprintf(args, sizeof(args), "%s --at soon", ws);
    CHECK(replay(args, NULL, err, sizeof(err)) == 2);
    CHECK(replay("workspace-00000000-0000-4000-8000-0000000000e2", NULL, err, sizeof(err)) == 1);
    CHECK(strstr(err, "has no events") != NULL);
    json_decref(now);
}

int main(void)
{
    conninfo = sbt_db_create("test_actors");
    if (conninfo == NULL || sbt_db_migrate(conninfo) < 0)
        return 1;
    /* First, while this process has no threads and no connection yet: fork. */
    test_two_processes();
    test_many_to_one();
    test_contact_500();
    test_snapshot_reactivation();
    test_mailbox_full();
    test_replay();
    PQfinish(db);
    free(conninfo);
    return sbtest_summary();
}
