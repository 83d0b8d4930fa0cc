/* The actor runtime without a database: real worker loops (2 to 4 threads), the in-memory store,
 * and a trivial "counter" kind defined here.  Covers cross-loop ask/reply, ordering, mailbox
 * bounds, rejections, conflicts and retries, unknown outcomes, snapshots and passivation (idle
 * and memory budget), scheduled commands, and stopping with work in flight. */
#include "actors/runtime.h"
#include "actors/runtime_store.h"
#include "core/clock.h"
#include "core/error.h"
#include "events/stream.h"
#include "loopgroup.h"
#include "sbtest.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the counter kind ------------------------------------------------------------------------ */

static json_t *k_initial(void)
{
    return json_pack("{s:i, s:[]}", "n", 0, "tags");
}

static int k_decide(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx, sb_devents_t *out,
                    sb_derror_t *err)
{
    const char *type = json_string_value(json_object_get(cmd, "type"));
    if (type == NULL)
        return sb_reject(err, 400, "invalid_command", "type", "type is required");
    if (strcmp(type, "Inc") == 0) {
        json_int_t by = json_integer_value(json_object_get(cmd, "by"));
        return sb_devents_add(out, "Incremented", json_pack("{s:I}", "by", by ? by : 1));
    }
    if (strcmp(type, "Multi") == 0) {
        for (json_int_t i = 0; i < json_integer_value(json_object_get(cmd, "k")); i++)
            sb_devents_add(out, "Incremented", json_pack("{s:i}", "by", 1));
        return 0;
    }
    if (strcmp(type, "Tag") == 0)
        return sb_devents_add(out, "Tagged", json_pack("{s:O}", "tag", json_object_get(cmd, "tag")));
    if (strcmp(type, "Big") == 0) {
        char pad[2048];
        memset(pad, 'x', sizeof(pad) - 1);
        pad[sizeof(pad) - 1] = '\0';
        return sb_devents_add(out, "Tagged", json_pack("{s:s}", "tag", pad));
    }
    if (strcmp(type, "Noop") == 0)
        return 0;
    if (strcmp(type, "Join") == 0)
        return sb_devents_add(out, "Joined", json_pack("{s:O}", "workspace_id", json_object_get(cmd, "ws")));
    if (strcmp(type, "Fail") == 0)
        return sb_reject(err, 409, "nope", "", "refused at n=%lld",
                         (long long)json_integer_value(json_object_get(state, "n")));
    if (strcmp(type, "WhoAmI") == 0)
        return sb_reject(err, 403, "whoami", "", "%s|%s|%s", ctx->user_id ? ctx->user_id : "-", ctx->id,
                         json_string_value(json_object_get(ctx->context, "hint")));
    if (strcmp(type, "Refs") == 0) /* the context's reference count as decide sees it */
        return sb_reject(err, 409, "refs", "", "%zu", ctx->context != NULL ? ctx->context->refcount : 0);
    return sb_reject(err, 400, "unknown_command", "type", "unknown command");
}

static void k_evolve(json_t *state, const sb_devent_t *ev)
{
    if (strcmp(ev->type, "Incremented") == 0) {
        json_int_t n = json_integer_value(json_object_get(state, "n"));
        json_object_set_new(state, "n",
                            json_integer(n + json_integer_value(json_object_get(ev->data, "by"))));
        json_object_set_new(state, "last_version", json_integer(ev->version));
    } else if (strcmp(ev->type, "Tagged") == 0) {
        json_array_append(json_object_get(state, "tags"), json_object_get(ev->data, "tag"));
    } else if (strcmp(ev->type, "Joined") == 0) {
        json_object_set(state, "workspace_id", json_object_get(ev->data, "workspace_id"));
    }
}

static const sb_kind_t counter_kind = {"counter", k_initial, k_decide, k_evolve};

static const sb_kind_t *find_kind(const char *category)
{
    return strcmp(category, "counter") == 0 ? &counter_kind : NULL;
}

static void stream_name(char out[SB_STREAM_NAME_MAX], int i)
{
    snprintf(out, SB_STREAM_NAME_MAX, "counter-00000000-0000-4000-8000-%012d", i);
}

/* ---- harness: a loop group with the runtime on the memory store -------------------------------- */

static sb_memlog_t *memlog;

/* n loops running the runtime with rc on the memory store, resolving the counter kind. */
static sb_loops_t *group_new(int n, const sb_runtime_config_t *rc)
{
    sb_runtime_config_t cfg = *rc;
    cfg.find_kind = find_kind;
    cfg.open_store = sb_memlog_open;
    cfg.store_arg = memlog;
    return sbtest_group_new(n, &cfg, NULL);
}

/* A set of asks whose replies are collected; the main thread waits for all of them. */
typedef struct {
    _Atomic int pending;
    uv_sem_t done;
    _Atomic int
        by_status[32]; /* index: 0 ok, 1 rejected, 2 overload, 3 conflict, 4 unknown, 5 shutdown, 6 other */
    _Atomic int wrong_loop;
    _Atomic int precondition;
    _Atomic int64_t max_version;
    uv_mutex_t mu;
    json_t *last_state;     /* from the reply with the highest version */
    json_t *rejected_state; /* from the last rejection */
    json_t *versions;       /* every acknowledged version, per stream: {stream: [v...]} */
    char last_message[256];
    int last_attempts;
} batch_t;

typedef struct {
    batch_t *b;
    sb_loop_t *caller;
} ask_ctx_t;

static int status_slot(int st)
{
    switch (st) {
    case 0:
        return 0;
    case SB_EREJECTED:
        return 1;
    case SB_EOVERLOAD:
        return 2;
    case SB_ECONFLICT:
        return 3;
    case SB_EUNKNOWN:
        return 4;
    case SB_ESHUTDOWN:
        return 5;
    case SB_ENOTFOUND:
        return 7;
    default:
        return 6;
    }
}

static void batch_init(batch_t *b, int n)
{
    memset(b, 0, sizeof(*b));
    atomic_store(&b->pending, n);
    uv_sem_init(&b->done, 0);
    uv_mutex_init(&b->mu);
    b->versions = json_object();
}

static void batch_wait(batch_t *b)
{
    uv_sem_wait(&b->done);
}

static void batch_free(batch_t *b)
{
    uv_sem_destroy(&b->done);
    uv_mutex_destroy(&b->mu);
    json_decref(b->last_state);
    json_decref(b->rejected_state);
    json_decref(b->versions);
}

static int got(batch_t *b, int status)
{
    return atomic_load(&b->by_status[status_slot(status)]);
}

static void on_reply(const sb_ask_reply_t *r, void *data)
{
    ask_ctx_t *c = data;
    batch_t *b = c->b;
    if (sb_loop_current() != c->caller)
        atomic_fetch_add(&b->wrong_loop, 1);
    atomic_fetch_add(&b->by_status[status_slot(r->status)], 1);
    if (r->precondition_failed)
        atomic_fetch_add(&b->precondition, 1);
    uv_mutex_lock(&b->mu);
    if (r->status == 0 && r->nevents > 0) {
        json_t *list = json_object_get(b->versions, r->stream);
        if (list == NULL) {
            list = json_array();
            json_object_set_new(b->versions, r->stream, list);
        }
        for (int i = 0; i < r->nevents; i++) {
            json_array_append_new(list, json_integer(r->events[i].version));
            CHECK(r->events[i].position > 0);
        }
    }
    if (r->status == 0 && r->state != NULL && r->version >= atomic_load(&b->max_version)) {
        atomic_store(&b->max_version, r->version);
        json_decref(b->last_state);
        b->last_state = json_deep_copy(r->state); /* the main thread reads it: a private copy */
    }
    if (r->status == SB_EREJECTED) {
        json_decref(b->rejected_state);
        b->rejected_state = json_deep_copy(r->state);
    }
    if (r->err != NULL)
        snprintf(b->last_message, sizeof(b->last_message), "%s:%s", r->err->code, r->err->message);
    b->last_attempts = r->attempts;
    uv_mutex_unlock(&b->mu);
    free(c);
    if (atomic_fetch_sub(&b->pending, 1) == 1)
        uv_sem_post(&b->done);
}

typedef struct {
    sb_loops_t *g;
    batch_t *b;
    int first_stream, nstreams, count;
    const char *cmd_json;
    bool get;
    const sb_ask_opts_t *opts;
} asks_t;

/* On a loop: sends count asks round-robin over the streams. */
static void do_asks(void *arg)
{
    asks_t *a = arg;
    for (int i = 0; i < a->count; i++) {
        char s[SB_STREAM_NAME_MAX];
        stream_name(s, a->first_stream + i % a->nstreams);
        ask_ctx_t *c = malloc(sizeof(*c));
        c->b = a->b;
        c->caller = sb_loop_current();
        int r;
        if (a->get)
            r = sb_actor_get(a->g, s, a->opts, on_reply, c);
        else
            r = sb_actor_ask(a->g, s, json_loads(a->cmd_json, 0, NULL), a->opts, on_reply, c);
        if (!CHECK_EQ_INT(r, 0))
            free(c);
    }
}

/* Sends asks from loop `from` and waits for every reply. */
static void ask_and_wait(sb_loops_t *g, int from, batch_t *b, int stream, int count, const char *cmd)
{
    batch_init(b, count);
    asks_t a = {.g = g, .b = b, .first_stream = stream, .nstreams = 1, .count = count, .cmd_json = cmd};
    sbtest_run_on(g->loops[from], do_asks, &a);
    batch_wait(b);
}

static json_t *get_state(sb_loops_t *g, int stream, int64_t *version)
{
    batch_t b;
    batch_init(&b, 1);
    asks_t a = {.g = g, .b = &b, .first_stream = stream, .nstreams = 1, .count = 1, .get = true};
    sbtest_run_on(g->loops[0], do_asks, &a);
    batch_wait(&b);
    json_t *s = json_incref(b.last_state);
    if (version)
        *version = atomic_load(&b.max_version);
    batch_free(&b);
    return s;
}

static json_int_t state_n(const json_t *s)
{
    return json_integer_value(json_object_get(s, "n"));
}

/* ---- tests --------------------------------------------------------------------------------- */

/* Every loop sends to streams on every loop; replies come home; per stream the acknowledged
 * versions are exactly 1..count, and the store agrees. */
static void test_cross_loop(int nloops)
{
    sb_runtime_config_t rc = {0};
    sb_loops_t *g = group_new(nloops, &rc);
    enum { STREAMS = 16, PER_LOOP = 400 };
    int base = 100000 + nloops * 1000;
    batch_t b;
    batch_init(&b, nloops * PER_LOOP);
    asks_t *a = calloc((size_t)nloops, sizeof(*a));
    for (int i = 0; i < nloops; i++) {
        a[i] = (asks_t){.g = g,
                        .b = &b,
                        .first_stream = base,
                        .nstreams = STREAMS,
                        .count = PER_LOOP,
                        .cmd_json = "{\"type\":\"Inc\"}"};
        sbtest_run_on(g->loops[i], do_asks, &a[i]);
    }
    batch_wait(&b);
    CHECK(got(&b, 0) == nloops * PER_LOOP);
    CHECK(atomic_load(&b.wrong_loop) == 0);
    int total = 0;
    for (int s = 0; s < STREAMS; s++) {
        char name[SB_STREAM_NAME_MAX];
        stream_name(name, base + s);
        json_t *list = json_object_get(b.versions, name);
        size_t n = json_array_size(list);
        total += (int)n;
        /* contiguous and unique: sort by presence */
        char *seen = calloc(n + 1, 1);
        size_t i;
        json_t *v;
        json_array_foreach(list, i, v)
        {
            json_int_t x = json_integer_value(v);
            CHECK(x >= 1 && (size_t)x <= n && !seen[x]);
            if (x >= 1 && (size_t)x <= n)
                seen[x] = 1;
        }
        free(seen);
        CHECK(sb_memlog_version(memlog, name) == (int64_t)n);
        json_t *st = get_state(g, base + s, NULL);
        CHECK(state_n(st) == (json_int_t)n);
        json_decref(st);
    }
    CHECK(total == nloops * PER_LOOP);
    sb_runtime_stats_t stats;
    sb_runtime_get_stats(g, &stats);
    CHECK(stats.active == STREAMS);
    CHECK(stats.activations == STREAMS);
    CHECK(stats.appends == (uint64_t)(nloops * PER_LOOP));
    CHECK(stats.commands == (uint64_t)(nloops * PER_LOOP + STREAMS));
    batch_free(&b);
    free(a);
    sbtest_group_free(g);
}

typedef struct {
    sb_loops_t *g;
    batch_t *b;
    json_t *cmds;
} order_t;

static void send_all(void *arg)
{
    order_t *o = arg;
    char s[SB_STREAM_NAME_MAX];
    stream_name(s, 2000);
    for (size_t i = 0; i < json_array_size(o->cmds); i++) {
        ask_ctx_t *c = malloc(sizeof(*c));
        c->b = o->b;
        c->caller = sb_loop_current();
        sb_actor_ask(o->g, s, json_incref(json_array_get(o->cmds, i)), NULL, on_reply, c);
    }
}

/* Asks from one loop to one actor are handled in the order they were sent. */
static void test_order(void)
{
    sb_runtime_config_t rc = {0};
    sb_loops_t *g = group_new(3, &rc);
    batch_t b;
    batch_init(&b, 200);
    json_t *cmds = json_array();
    for (int i = 0; i < 200; i++)
        json_array_append_new(cmds, json_pack("{s:s, s:i}", "type", "Tag", "tag", i));
    order_t o = {g, &b, cmds}; /* one task sends all 200 */
    sbtest_run_on(g->loops[1], send_all, &o);
    batch_wait(&b);
    CHECK(got(&b, 0) == 200);
    json_t *st = get_state(g, 2000, NULL);
    json_t *tags = json_object_get(st, "tags");
    CHECK(json_array_size(tags) == 200);
    for (size_t i = 0; i < json_array_size(tags); i++)
        CHECK(json_integer_value(json_array_get(tags, i)) == (json_int_t)i);
    json_decref(st);
    json_decref(cmds);
    batch_free(&b);
    sbtest_group_free(g);
}

/* A full mailbox answers SB_EOVERLOAD at once.  All asks are sent from the owner loop in one
 * task, so they all arrive while the actor is still activating. */
static void test_mailbox_full(void)
{
    sb_runtime_config_t rc = {.mailbox_capacity = 8};
    sb_loops_t *g = group_new(1, &rc);
    batch_t b;
    ask_and_wait(g, 0, &b, 3000, 20, "{\"type\":\"Inc\"}");
    CHECK(got(&b, 0) == 8);
    CHECK(got(&b, SB_EOVERLOAD) == 12);
    sb_runtime_stats_t stats;
    sb_runtime_get_stats(g, &stats);
    CHECK(stats.mailbox_full == 12);
    char name[SB_STREAM_NAME_MAX];
    stream_name(name, 3000);
    CHECK(sb_memlog_version(memlog, name) == 8);
    batch_free(&b);
    sbtest_group_free(g);
}

typedef struct {
    sb_loops_t *g;
    batch_t *b;
} bad_t;

static void send_bad(void *arg)
{
    bad_t *x = arg;
    ask_ctx_t *c = malloc(sizeof(*c));
    c->b = x->b;
    c->caller = sb_loop_current();
    if (sb_actor_ask(x->g, "nosuchkind-00000000-0000-4000-8000-000000000001",
                     json_pack("{s:s}", "type", "Inc"), NULL, on_reply, c) != 0)
        abort();
}

/* Rejections, no-ops, several events per command, the decide context, bad input. */
static void test_decisions(void)
{
    sb_runtime_config_t rc = {0};
    sb_loops_t *g = group_new(2, &rc);
    char name[SB_STREAM_NAME_MAX];
    stream_name(name, 4000);
    batch_t b;

    ask_and_wait(g, 0, &b, 4000, 1, "{\"type\":\"Multi\",\"k\":3}");
    CHECK(got(&b, 0) == 1);
    CHECK(atomic_load(&b.max_version) == 3);
    CHECK(state_n(b.last_state) == 3);
    CHECK(json_array_size(json_object_get(b.versions, name)) == 3);
    batch_free(&b);

    ask_and_wait(g, 1, &b, 4000, 1, "{\"type\":\"Fail\"}");
    CHECK(got(&b, SB_EREJECTED) == 1);
    CHECK(strcmp(b.last_message, "nope:refused at n=3") == 0);
    batch_free(&b);

    ask_and_wait(g, 1, &b, 4000, 1, "{\"type\":\"Noop\"}");
    CHECK(got(&b, 0) == 1);
    CHECK(atomic_load(&b.max_version) == 3); /* unchanged, nothing appended */
    batch_free(&b);
    CHECK(sb_memlog_version(memlog, name) == 3);

    /* context, user and id reach decide */
    batch_init(&b, 1);
    json_t *ctxj = json_pack("{s:s}", "hint", "h1");
    sb_ask_opts_t opts = {.user_id = "u-1", .context = ctxj, .source = "test"};
    asks_t a = {.g = g,
                .b = &b,
                .first_stream = 4000,
                .nstreams = 1,
                .count = 1,
                .cmd_json = "{\"type\":\"WhoAmI\"}",
                .opts = &opts};
    sbtest_run_on(g->loops[0], do_asks, &a);
    batch_wait(&b);
    json_decref(ctxj);
    CHECK(strcmp(b.last_message, "whoami:u-1|00000000-0000-4000-8000-000000004000|h1") == 0);
    batch_free(&b);

    /* a context is referenced for the ask, or lent (context_borrowed): then decide sees the
     * caller's only reference, and the caller's value is whole after the reply */
    for (int lent = 0; lent < 2; lent++) {
        batch_init(&b, 1);
        ctxj = json_pack("{s:s}", "hint", "h2");
        sb_ask_opts_t o = {.context = ctxj, .context_borrowed = lent, .source = "test"};
        asks_t ra = {.g = g,
                     .b = &b,
                     .first_stream = 4001,
                     .nstreams = 1,
                     .count = 1,
                     .cmd_json = "{\"type\":\"Refs\"}",
                     .opts = &o};
        sbtest_run_on(g->loops[0], do_asks, &ra);
        batch_wait(&b);
        CHECK_EQ_STR(b.last_message, lent ? "refs:1" : "refs:2");
        CHECK(ctxj->refcount == 1 && strcmp(json_string_value(json_object_get(ctxj, "hint")), "h2") == 0);
        json_decref(ctxj);
        batch_free(&b);
    }

    /* If-Match, decided only at the expected version: one version (the stream is at 3), then a list
     * of versions (the stream is at 4, listed or not) */
    static const struct {
        int64_t expected, more[2];
        int nmore;
        int64_t after; /* the version the ask leaves, 0: refused (412) */
    } conds[] = {{3, {0}, 0, 4}, {3, {0}, 0, 0}, {9, {4, 1}, 2, 5}, {9, {3, 1}, 2, 0}};
    for (size_t k = 0; k < sizeof(conds) / sizeof(conds[0]); k++) {
        batch_init(&b, 1);
        sb_ask_opts_t im = {
            .check_version = true, .expected_version = conds[k].expected, .n_more_versions = conds[k].nmore};
        memcpy(im.more_versions, conds[k].more, sizeof(conds[k].more));
        asks_t ia = {.g = g,
                     .b = &b,
                     .first_stream = 4000,
                     .nstreams = 1,
                     .count = 1,
                     .cmd_json = "{\"type\":\"Inc\"}",
                     .opts = &im};
        sbtest_run_on(g->loops[k % 2], do_asks, &ia);
        batch_wait(&b);
        if (conds[k].after != 0)
            CHECK(got(&b, 0) == 1 && atomic_load(&b.max_version) == conds[k].after);
        else
            CHECK(got(&b, SB_ECONFLICT) == 1 && atomic_load(&b.precondition) == 1);
        batch_free(&b);
    }
    CHECK(sb_memlog_version(memlog, name) == 5);

    /* unknown category: answered, not refused synchronously */
    batch_init(&b, 1);
    bad_t bad = {g, &b};
    sbtest_run_on(g->loops[0], send_bad, &bad);
    batch_wait(&b);
    CHECK(got(&b, SB_ENOTFOUND) == 1);
    batch_free(&b);

    /* synchronous refusals: no callback, cmd released (ASan would see a leak otherwise) */
    CHECK(sb_actor_ask(g, "counter-nope", json_object(), NULL, NULL, NULL) == SB_EINVAL);
    CHECK(sb_actor_ask(g, name, json_array(), NULL, NULL, NULL) == SB_EINVAL);
    CHECK(sb_actor_ask(g, name, json_object(), NULL, on_reply, NULL) == SB_EINVAL); /* not on a loop */
    char longs[400];
    memset(longs, 'a', sizeof(longs) - 1);
    longs[sizeof(longs) - 1] = '\0';
    sb_ask_opts_t big = {.request_id = longs};
    CHECK(sb_actor_ask(g, name, json_object(), &big, NULL, NULL) == SB_EINVAL);
    sb_ask_opts_t badws = {.workspace_id = "not-a-uuid"};
    CHECK(sb_actor_ask(g, name, json_object(), &badws, NULL, NULL) == SB_EINVAL);
    sbtest_group_free(g);
}

static const char *event_workspace(const char *stream, int version)
{
    static char out[64];
    json_t *evs = sb_memlog_events(memlog, stream);
    const char *ws =
        json_string_value(json_object_get(json_array_get(evs, (size_t)version - 1), "workspace"));
    snprintf(out, sizeof(out), "%s", ws ? ws : "-");
    json_decref(evs);
    return out;
}

/* Which workspace events are stored under: the state's, the creating event's, the caller's. */
static void test_workspace(void)
{
    sb_runtime_config_t rc = {0};
    sb_loops_t *g = group_new(2, &rc);
    const char *wa = "00000000-0000-4000-8000-00000000000a", *wb = "00000000-0000-4000-8000-00000000000b";
    char s1[SB_STREAM_NAME_MAX], s2[SB_STREAM_NAME_MAX];
    stream_name(s1, 4500);
    stream_name(s2, 4501);
    batch_t b;
    sb_ask_opts_t ob = {.workspace_id = wb};
    char join[128];
    snprintf(join, sizeof(join), "{\"type\":\"Join\",\"ws\":\"%s\"}", wa);
    asks_t a = {
        .g = g, .b = &b, .first_stream = 4500, .nstreams = 1, .count = 1, .cmd_json = join, .opts = &ob};
    batch_init(&b, 1);
    sbtest_run_on(g->loops[0], do_asks, &a);
    batch_wait(&b);
    batch_free(&b);
    CHECK(strcmp(event_workspace(s1, 1), wa) == 0); /* the creating event's */
    a.cmd_json = "{\"type\":\"Inc\"}";
    batch_init(&b, 1);
    sbtest_run_on(g->loops[1], do_asks, &a);
    batch_wait(&b);
    batch_free(&b);
    CHECK(strcmp(event_workspace(s1, 2), wa) == 0); /* the state's, over the caller's */
    a.first_stream = 4501;
    batch_init(&b, 1);
    sbtest_run_on(g->loops[1], do_asks, &a);
    batch_wait(&b);
    batch_free(&b);
    CHECK(strcmp(event_workspace(s2, 1), wb) == 0); /* the caller's */
    a.opts = NULL;
    batch_init(&b, 1);
    sbtest_run_on(g->loops[1], do_asks, &a);
    batch_wait(&b);
    batch_free(&b);
    CHECK(strcmp(event_workspace(s2, 2), "-") == 0); /* none */
    sbtest_group_free(g);
}

/* Another writer appends behind the actor's back: the next command conflicts, reloads, decides
 * again and succeeds; persistent conflicts give up after max_attempts. */
static void test_conflicts(void)
{
    sb_runtime_config_t rc = {.max_attempts = 3};
    sb_loops_t *g = group_new(2, &rc);
    char name[SB_STREAM_NAME_MAX];
    stream_name(name, 5000);
    batch_t b;
    ask_and_wait(g, 0, &b, 5000, 5, "{\"type\":\"Inc\"}");
    CHECK(got(&b, 0) == 5);
    batch_free(&b);
    CHECK(sb_memlog_append_external(memlog, name, 5, "Incremented", json_pack("{s:i}", "by", 100)) == 0);
    ask_and_wait(g, 1, &b, 5000, 1, "{\"type\":\"Inc\"}");
    CHECK(got(&b, 0) == 1);
    CHECK(b.last_attempts == 2);
    CHECK(atomic_load(&b.max_version) == 7);
    CHECK(state_n(b.last_state) == 106);
    batch_free(&b);
    sb_runtime_stats_t stats;
    sb_runtime_get_stats(g, &stats);
    CHECK(stats.conflicts == 1 && stats.retries == 1);

    sb_memlog_fail_next(memlog, 10, SB_ECONFLICT, false);
    ask_and_wait(g, 1, &b, 5000, 1, "{\"type\":\"Inc\"}");
    CHECK(got(&b, SB_ECONFLICT) == 1);
    CHECK(b.last_attempts == 3);
    batch_free(&b);
    sb_memlog_fail_next(memlog, 0, 0, false);

    /* Unknown outcome, and the events were in fact stored: the reply says unknown, the actor
     * reloads, and the next command continues from the stored version. */
    sb_memlog_fail_next(memlog, 1, SB_EUNKNOWN, true);
    ask_and_wait(g, 0, &b, 5000, 1, "{\"type\":\"Inc\"}");
    CHECK(got(&b, SB_EUNKNOWN) == 1);
    batch_free(&b);
    ask_and_wait(g, 0, &b, 5000, 1, "{\"type\":\"Inc\"}");
    CHECK(got(&b, 0) == 1);
    CHECK(b.last_attempts == 1);
    CHECK(atomic_load(&b.max_version) == 9);
    CHECK(state_n(b.last_state) == 108);
    batch_free(&b);
    CHECK(sb_memlog_version(memlog, name) == 9);
    /* A plain storage error stores nothing and leaves the actor usable. */
    sb_memlog_fail_next(memlog, 1, SB_EDBDOWN, false);
    ask_and_wait(g, 0, &b, 5000, 2, "{\"type\":\"Inc\"}");
    CHECK(got(&b, SB_EDBDOWN) == 1 && got(&b, 0) == 1);
    CHECK(atomic_load(&b.max_version) == 10);
    batch_free(&b);
    sbtest_group_free(g);
}

/* Snapshots every K events and on passivation; reactivation from the snapshot gives the same
 * state as before. */
static void test_snapshots(void)
{
    sb_runtime_config_t rc = {.snapshot_every = 10, .snapshot_on_passivate = 1};
    sb_loops_t *g = group_new(2, &rc);
    uint64_t writes0, hits0, writes, hits;
    sb_memlog_counts(memlog, &writes0, &hits0);
    batch_t b;
    ask_and_wait(g, 0, &b, 6000, 25, "{\"type\":\"Inc\",\"by\":2}");
    batch_free(&b);
    ask_and_wait(g, 0, &b, 6000, 3, "{\"type\":\"Tag\",\"tag\":\"t\"}");
    batch_free(&b);
    sb_memlog_counts(memlog, &writes, &hits);
    CHECK(writes - writes0 == 2); /* at versions 10 and 20 */
    int64_t v1;
    json_t *before = get_state(g, 6000, &v1);
    CHECK(v1 == 28 && state_n(before) == 50);
    CHECK(sbtest_passivate_all(g) == 1);
    sb_runtime_stats_t stats;
    sb_runtime_get_stats(g, &stats);
    CHECK(stats.active == 0 && stats.passivations == 1 && stats.memory == 0);
    sb_memlog_counts(memlog, &writes, &hits);
    CHECK(writes - writes0 == 3); /* and on passivation, at 28 */
    int64_t v2;
    json_t *after = get_state(g, 6000, &v2);
    sb_memlog_counts(memlog, &writes, &hits);
    CHECK(hits - hits0 >= 1);
    CHECK(v2 == v1);
    CHECK(json_equal(before, after));
    json_decref(before);
    json_decref(after);
    /* and it carries on from there */
    ask_and_wait(g, 1, &b, 6000, 1, "{\"type\":\"Inc\"}");
    CHECK(atomic_load(&b.max_version) == 29 && state_n(b.last_state) == 51);
    batch_free(&b);
    sbtest_group_free(g);
}

/* With an interval, a busy actor skips its every-K snapshots until the interval has passed or 10 K
 * events are not in one; passivation still writes one, and reactivation finds the same state. */
static void test_snapshot_interval(void)
{
    sb_runtime_config_t rc = {
        .snapshot_every = 10, .snapshot_on_passivate = 1, .snapshot_interval_ms = 3600000};
    sb_loops_t *g = group_new(2, &rc);
    uint64_t writes0, hits0, writes, hits;
    sb_memlog_counts(memlog, &writes0, &hits0);
    batch_t b;
    ask_and_wait(g, 0, &b, 6100, 95, "{\"type\":\"Inc\"}");
    batch_free(&b);
    sb_memlog_counts(memlog, &writes, &hits);
    CHECK(writes - writes0 == 0); /* 95 events, within the interval */
    ask_and_wait(g, 1, &b, 6100, 10, "{\"type\":\"Inc\"}");
    batch_free(&b);
    sb_memlog_counts(memlog, &writes, &hits);
    CHECK(writes - writes0 == 1); /* at 100 = 10 K */
    int64_t v1;
    json_t *before = get_state(g, 6100, &v1);
    CHECK(v1 == 105 && state_n(before) == 105);
    CHECK(sbtest_passivate_all(g) == 1);
    sb_memlog_counts(memlog, &writes, &hits);
    CHECK(writes - writes0 == 2); /* and on passivation, at 105 */
    int64_t v2;
    json_t *after = get_state(g, 6100, &v2);
    CHECK(v2 == v1 && json_equal(before, after));
    json_decref(before);
    json_decref(after);
    sbtest_group_free(g);
}

/* Idle actors are passivated by the sweep; a memory budget keeps the number of active actors
 * bounded, least recently used first. */
static void test_passivation(void)
{
    sb_runtime_config_t rc = {.idle_ms = 100, .sweep_ms = 20};
    sb_loops_t *g = group_new(2, &rc);
    batch_t b;
    batch_init(&b, 50);
    asks_t a = {
        .g = g, .b = &b, .first_stream = 7000, .nstreams = 50, .count = 50, .cmd_json = "{\"type\":\"Inc\"}"};
    sbtest_run_on(g->loops[0], do_asks, &a);
    batch_wait(&b);
    batch_free(&b);
    sb_runtime_stats_t stats;
    sb_runtime_get_stats(g, &stats);
    CHECK(stats.active == 50);
    /* Wait for the sweep (a deadline, not a guess: the condition is polled). */
    uint64_t deadline = sb_clock_mono_ns() + 5000000000ull;
    do {
        usleep(10000);
        sb_runtime_get_stats(g, &stats);
    } while (stats.active > 0 && sb_clock_mono_ns() < deadline);
    CHECK(stats.active == 0 && stats.passivations == 50);
    sbtest_group_free(g);

    /* Budget: each "Big" event adds ~2 KiB; a 64 KiB budget per loop holds a few dozen actors. */
    sb_runtime_config_t rb = {.memory_budget = 64 * 1024};
    g = group_new(2, &rb);
    batch_init(&b, 400);
    a = (asks_t){.g = g,
                 .b = &b,
                 .first_stream = 8000,
                 .nstreams = 400,
                 .count = 400,
                 .cmd_json = "{\"type\":\"Big\"}"};
    sbtest_run_on(g->loops[1], do_asks, &a);
    batch_wait(&b);
    CHECK(got(&b, 0) == 400);
    batch_free(&b);
    sb_runtime_get_stats(g, &stats);
    CHECK(stats.memory <= 2 * 64 * 1024);
    CHECK(stats.active < 100 && stats.active > 0);
    CHECK(stats.passivations == 400 - stats.active);
    /* the most recently used are the ones kept: the last stream is still active */
    sbtest_group_free(g);
}

/* Scheduled commands: delivered at their time, in time order, activating a passivated actor.  The
 * times are 100 ms apart so that the order holds even when this thread is preempted for a while
 * between two schedules on a loaded machine (one already due arrives at once, before the others). */
static void test_schedule(void)
{
    sb_runtime_config_t rc = {0};
    sb_loops_t *g = group_new(2, &rc);
    char name[SB_STREAM_NAME_MAX];
    stream_name(name, 9000);
    int64_t now = sb_clock_now_us();
    CHECK(sb_actor_schedule(g, name, now + 300000, json_pack("{s:s, s:s}", "type", "Tag", "tag", "c"),
                            NULL) == 0);
    CHECK(sb_actor_schedule(g, name, now + 100000, json_pack("{s:s, s:s}", "type", "Tag", "tag", "a"),
                            NULL) == 0);
    CHECK(sb_actor_schedule(g, name, now + 200000, json_pack("{s:s, s:s}", "type", "Tag", "tag", "b"),
                            NULL) == 0);
    CHECK(sb_actor_schedule(g, name, now - 1000, json_pack("{s:s, s:s}", "type", "Tag", "tag", "0"), NULL) ==
          0);
    CHECK(sb_actor_schedule(g, "bad", now, json_object(), NULL) == SB_EINVAL);
    uint64_t deadline = sb_clock_mono_ns() + 5000000000ull;
    while (sb_memlog_version(memlog, name) < 4 && sb_clock_mono_ns() < deadline)
        usleep(5000);
    CHECK(sb_clock_now_us() - now >= 300000);
    json_t *st = get_state(g, 9000, NULL);
    json_t *want = json_pack("[s,s,s,s]", "0", "a", "b", "c");
    CHECK(json_equal(json_object_get(st, "tags"), want));
    json_decref(want);
    json_decref(st);
    /* A pending timer does not keep the actor, and fires into a fresh activation. */
    CHECK(sb_actor_schedule(g, name, sb_clock_now_us() + 50000,
                            json_pack("{s:s, s:s}", "type", "Tag", "tag", "d"), NULL) == 0);
    CHECK(sbtest_passivate_all(g) == 1);
    sb_runtime_stats_t stats;
    sb_runtime_get_stats(g, &stats);
    CHECK(stats.timers == 1 && stats.active == 0);
    while (sb_memlog_version(memlog, name) < 5 && sb_clock_mono_ns() < deadline)
        usleep(5000);
    st = get_state(g, 9000, NULL);
    CHECK(json_array_size(json_object_get(st, "tags")) == 5);
    json_decref(st);
    /* A timer still pending at stop is dropped cleanly (ASan checks the memory). */
    CHECK(sb_actor_schedule(g, name, sb_clock_now_us() + 3600 * 1000000ll, json_pack("{s:s}", "type", "Inc"),
                            NULL) == 0);
    sbtest_group_free(g);
}

/* Stopping with asks queued and appends in flight: every ask is answered, those answered 0 are
 * in the store and those answered SB_ESHUTDOWN are not. */
static void test_stop(void)
{
    sb_runtime_config_t rc = {0};
    sb_loops_t *g = group_new(1, &rc);
    batch_t b;
    batch_init(&b, 300);
    asks_t a = {.g = g,
                .b = &b,
                .first_stream = 10000,
                .nstreams = 10,
                .count = 300,
                .cmd_json = "{\"type\":\"Inc\"}"};
    sbtest_run_on(g->loops[0], do_asks, &a);
    /* Let some of them be handled first: wait until the first commits show up. */
    char first[SB_STREAM_NAME_MAX];
    stream_name(first, 10000);
    uint64_t deadline = sb_clock_mono_ns() + 5000000000ull;
    while (sb_memlog_version(memlog, first) < 2 && sb_clock_mono_ns() < deadline)
        usleep(100);
    sb_loops_stop(g);
    batch_wait(&b);
    sb_loops_join(g);
    free(g);
    int ok = got(&b, 0), shut = got(&b, SB_ESHUTDOWN);
    CHECK(ok + shut == 300);
    CHECK(ok > 0);
    int64_t stored = 0;
    for (int i = 0; i < 10; i++) {
        char s[SB_STREAM_NAME_MAX];
        stream_name(s, 10000 + i);
        stored += sb_memlog_version(memlog, s);
    }
    CHECK(stored == ok);
    batch_free(&b);
}

/* Another process appends behind the actor's back.  A plain read answers from the actor's state;
 * with refresh it reads the log first.  A rejection carries the state it was refused on. */
static void test_refresh(void)
{
    sb_runtime_config_t rc = {0};
    sb_loops_t *g = group_new(2, &rc);
    char name[SB_STREAM_NAME_MAX];
    stream_name(name, 11000);
    batch_t b;
    ask_and_wait(g, 0, &b, 11000, 2, "{\"type\":\"Inc\"}");
    batch_free(&b);
    CHECK(sb_memlog_append_external(memlog, name, 2, "Incremented", json_pack("{s:i}", "by", 40)) == 0);
    int64_t v;
    json_t *st = get_state(g, 11000, &v);
    CHECK(v == 2 && state_n(st) == 2); /* stale, as documented */
    json_decref(st);

    sb_ask_opts_t fresh = {.refresh = true};
    for (int round = 0; round < 2; round++) {
        /* the second round: nothing new, the read still happens and changes nothing */
        batch_init(&b, 3);
        asks_t a = {
            .g = g, .b = &b, .first_stream = 11000, .nstreams = 1, .count = 3, .get = true, .opts = &fresh};
        sbtest_run_on(g->loops[1], do_asks, &a);
        batch_wait(&b);
        CHECK(got(&b, 0) == 3);
        CHECK(atomic_load(&b.max_version) == 3 && state_n(b.last_state) == 42);
        batch_free(&b);
    }

    /* a rejection decided on the fresh state, which the reply carries */
    CHECK(sb_memlog_append_external(memlog, name, 3, "Incremented", json_pack("{s:i}", "by", 1)) == 0);
    batch_init(&b, 1);
    asks_t f = {.g = g,
                .b = &b,
                .first_stream = 11000,
                .nstreams = 1,
                .count = 1,
                .cmd_json = "{\"type\":\"Fail\"}",
                .opts = &fresh};
    sbtest_run_on(g->loops[0], do_asks, &f);
    batch_wait(&b);
    CHECK(got(&b, SB_EREJECTED) == 1);
    CHECK(strcmp(b.last_message, "nope:refused at n=43") == 0);
    CHECK(state_n(b.rejected_state) == 43);
    batch_free(&b);
    /* If-Match naming a version another process wrote: read first, then decide (not 412) */
    CHECK(sb_memlog_append_external(memlog, name, 4, "Incremented", json_pack("{s:i}", "by", 1)) == 0);
    batch_init(&b, 1);
    sb_ask_opts_t im = {.check_version = true, .expected_version = 5};
    asks_t ia = {.g = g,
                 .b = &b,
                 .first_stream = 11000,
                 .nstreams = 1,
                 .count = 1,
                 .cmd_json = "{\"type\":\"Inc\"}",
                 .opts = &im};
    sbtest_run_on(g->loops[1], do_asks, &ia);
    batch_wait(&b);
    CHECK(got(&b, 0) == 1 && atomic_load(&b.max_version) == 6 && state_n(b.last_state) == 45);
    batch_free(&b);
    /* ... and one behind it is refused at once */
    batch_init(&b, 1);
    im.expected_version = 5;
    sbtest_run_on(g->loops[1], do_asks, &ia);
    batch_wait(&b);
    CHECK(got(&b, SB_ECONFLICT) == 1 && atomic_load(&b.precondition) == 1);
    batch_free(&b);
    /* without refresh, a rejection carries the actor's (now current) state too */
    ask_and_wait(g, 1, &b, 11000, 1, "{\"type\":\"Fail\"}");
    CHECK(b.rejected_state != NULL && state_n(b.rejected_state) == 45);
    batch_free(&b);
    sbtest_group_free(g);
}

int main(void)
{
    memlog = sb_memlog_new();
    test_cross_loop(2);
    test_cross_loop(4);
    test_order();
    test_mailbox_full();
    test_decisions();
    test_workspace();
    test_conflicts();
    test_snapshots();
    test_snapshot_interval();
    test_passivation();
    test_schedule();
    test_stop();
    test_refresh();
    sb_memlog_free(memlog);
    return sbtest_summary();
}
