/* Shared by the integration tests of the actor layer on the real PostgreSQL (test_flows.c,
 * test_crash.c, test_fold.c), on tests/support/loopgroup.h: loop groups with database connections,
 * asks and flows waited for from the main thread, and reading the log with blocking libpq (main
 * thread only).  Everything here is static inline so that each test uses what it needs. */
#ifndef SB_TEST_FLOWS_HARNESS_H
#define SB_TEST_FLOWS_HARNESS_H

#include "actors/flows.h"
#include "actors/fold.h"
#include "actors/kinds.h"
#include "actors/runtime.h"
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
#include <unistd.h>

static char *h_conninfo;

/* ---- loop groups ------------------------------------------------------------------------------- */

/* n loops, each with a query connection, an appender and the runtime (rc copied; NULL: defaults). */
static inline sb_loops_t *h_group_new(int n, const sb_runtime_config_t *rc)
{
    return sbtest_group_new(n, rc, h_conninfo);
}

/* ---- asks -------------------------------------------------------------------------------------- */

/* An ask's outcome, copied for the main thread. */
typedef struct {
    int status;
    int64_t version;
    int nevents;
    char code[40];
    json_t *state; /* a private copy, or NULL */
} h_ask_t;

typedef struct {
    sb_loops_t *g;
    const char *stream;
    json_t *cmd; /* NULL: a read */
    sb_ask_opts_t opts;
    h_ask_t *out;
    sbtest_wait_t *w;
} h_ask_req_t;

static inline void h_on_ask(const sb_ask_reply_t *r, void *data)
{
    h_ask_req_t *q = data;
    q->out->status = r->status;
    q->out->version = r->version;
    q->out->nevents = r->nevents;
    snprintf(q->out->code, sizeof(q->out->code), "%s", r->err ? r->err->code : "");
    q->out->state = r->state ? json_deep_copy(r->state) : NULL;
    sbtest_wait_one(q->w);
}

static inline void h_do_ask(void *arg)
{
    h_ask_req_t *q = arg;
    int rc = q->cmd ? sb_actor_ask(q->g, q->stream, q->cmd, &q->opts, h_on_ask, q)
                    : sb_actor_get(q->g, q->stream, &q->opts, h_on_ask, q);
    if (rc != 0)
        abort();
}

/* One ask (cmd_json; NULL for a read) from loop 0, waited for.  opts may be NULL.  The caller
 * frees out.state. */
static inline h_ask_t h_ask(sb_loops_t *g, const char *stream, const char *cmd_json,
                            const sb_ask_opts_t *opts)
{
    h_ask_t out = {0};
    sbtest_wait_t w;
    sbtest_wait_init(&w, 1);
    h_ask_req_t q = {.g = g, .stream = stream, .out = &out, .w = &w};
    if (opts != NULL)
        q.opts = *opts;
    if (cmd_json != NULL) {
        q.cmd = json_loads(cmd_json, 0, NULL);
        if (q.cmd == NULL)
            abort();
    }
    sbtest_run_on(g->loops[0], h_do_ask, &q);
    sbtest_wait_all(&w);
    return out;
}

/* The stream's state read fresh from the log (refresh), and its version.  Caller frees. */
static inline json_t *h_state(sb_loops_t *g, const char *stream, int64_t *version)
{
    sb_ask_opts_t o = {.refresh = true};
    h_ask_t a = h_ask(g, stream, NULL, &o);
    if (version != NULL)
        *version = a.version;
    return a.state;
}

/* ---- flows ------------------------------------------------------------------------------------- */

/* A flow's outcome, copied for the main thread. */
typedef struct {
    int status;
    char code[40];
    char field[48];
    char message[200];
    char stream[SB_STREAM_NAME_MAX];
    char holder[SB_STREAM_NAME_MAX];
    bool created, precondition_failed;
    int64_t version;
    json_t *state;
} h_flow_t;

static inline void h_flow_free(h_flow_t *r)
{
    json_decref(r->state);
    r->state = NULL;
}

typedef struct {
    h_flow_t *out;
    sbtest_wait_t *w;
} h_flow_ctx_t;

static inline void h_on_flow(const sb_flow_result_t *res, void *data)
{
    h_flow_ctx_t *c = data;
    h_flow_t *o = c->out;
    o->status = res->status;
    if (res->err != NULL) {
        snprintf(o->code, sizeof(o->code), "%s", res->err->code);
        snprintf(o->field, sizeof(o->field), "%s", res->err->field);
        snprintf(o->message, sizeof(o->message), "%s", res->err->message);
    }
    snprintf(o->stream, sizeof(o->stream), "%s", res->stream ? res->stream : "");
    snprintf(o->holder, sizeof(o->holder), "%s", res->holder ? res->holder : "");
    o->created = res->created;
    o->precondition_failed = res->precondition_failed;
    o->version = res->version;
    o->state = res->state ? json_deep_copy(res->state) : NULL;
    sbtest_wait_t *w = c->w;
    free(c);
    sbtest_wait_one(w);
}

/* What to start: one of the flows, with its arguments. */
enum { H_CREATE, H_FIND, H_UPDATE, H_DELETE, H_REGISTER, H_CHANGE_EMAIL, H_FIND_USER };

typedef struct {
    sb_loops_t *g;
    int op;
    const char *ws, *id; /* workspace; contact or user id */
    const char *fields;  /* JSON text (create, update); the e-mail for the user flows */
    const char *name, *credential_ref;
    sb_flow_opts_t opts;
    h_flow_t *out; /* count results */
    int count;
    sbtest_wait_t *w;
} h_flow_req_t;

static inline void h_start_flows(void *arg)
{
    h_flow_req_t *q = arg;
    for (int i = 0; i < q->count; i++) {
        h_flow_ctx_t *c = calloc(1, sizeof(*c));
        c->out = &q->out[i];
        c->w = q->w;
        json_t *fields = q->op <= H_UPDATE && q->fields ? json_loads(q->fields, 0, NULL) : NULL;
        int rc = SB_EINVAL;
        switch (q->op) {
        case H_CREATE:
        case H_FIND:
            rc = sb_flow_contact_create(q->g, q->ws, fields,
                                        q->op == H_FIND ? SB_FLOW_FIND_OR_CREATE : SB_FLOW_CREATE, &q->opts,
                                        h_on_flow, c);
            break;
        case H_UPDATE:
            rc = sb_flow_contact_update(q->g, q->ws, q->id, fields, &q->opts, h_on_flow, c);
            break;
        case H_DELETE:
            rc = sb_flow_contact_delete(q->g, q->ws, q->id, &q->opts, h_on_flow, c);
            break;
        case H_REGISTER:
            rc = sb_flow_user_register(q->g, q->fields, q->name, q->credential_ref, &q->opts, h_on_flow, c);
            break;
        case H_CHANGE_EMAIL:
            rc = sb_flow_user_change_email(q->g, q->id, q->fields, &q->opts, h_on_flow, c);
            break;
        case H_FIND_USER:
            rc = sb_flow_user_find(q->g, q->fields, &q->opts, h_on_flow, c);
            break;
        }
        json_decref(fields);
        if (rc != 0) {
            fprintf(stderr, "flow refused synchronously: %s\n", sb_errname(rc));
            abort();
        }
    }
}

/* Starts q->count flows on each of the loops [0, nloops) at once (out has nloops * count slots)
 * and waits for every result. */
static inline void h_flows(h_flow_req_t *q, int nloops)
{
    sbtest_wait_t w;
    sbtest_wait_init(&w, nloops * q->count);
    h_flow_req_t *per = calloc((size_t)nloops, sizeof(*per));
    for (int i = 0; i < nloops; i++) {
        per[i] = *q;
        per[i].out = q->out + (size_t)i * (size_t)q->count;
        per[i].w = &w;
        sbtest_run_on(q->g->loops[i], h_start_flows, &per[i]);
    }
    sbtest_wait_all(&w);
    free(per);
}

/* One flow from loop 0. */
static inline h_flow_t h_flow(h_flow_req_t q)
{
    h_flow_t out = {0};
    q.out = &out;
    q.count = 1;
    h_flows(&q, 1);
    return out;
}

/* ---- the log, read with blocking libpq (main thread) ------------------------------------------- */

static PGconn *h_db;

static inline void h_db_connect(void)
{
    h_db = PQconnectdb(h_conninfo);
    if (PQstatus(h_db) != CONNECTION_OK) {
        fprintf(stderr, "connect: %s", PQerrorMessage(h_db));
        exit(1);
    }
}

static inline int64_t h_be64(const char *p)
{
    uint64_t v = 0;
    for (int k = 0; k < 8; k++)
        v = (v << 8) | (uint8_t)p[k];
    return (int64_t)v;
}

/* A stream's stored events, decoded: [{"type", "version", "data"}] (caller frees). */
static inline json_t *h_log_events(const char *stream)
{
    const char *params[1] = {stream};
    PGresult *res =
        PQexecParams(h_db, "SELECT version, type, payload FROM events WHERE stream = $1 ORDER BY version", 1,
                     NULL, params, NULL, NULL, 1);
    json_t *out = json_array();
    if (!CHECK(PQresultStatus(res) == PGRES_TUPLES_OK))
        fprintf(stderr, "h_log_events: %s", PQerrorMessage(h_db));
    for (int i = 0; i < PQntuples(res); i++) {
        json_t *payload = NULL;
        char err[128];
        if (!CHECK(sb_codec_to_jansson(PQgetvalue(res, i, 2), (size_t)PQgetlength(res, i, 2), &payload, err,
                                       sizeof(err)) == 0))
            continue;
        json_array_append_new(out, json_pack("{s:s, s:I, s:o}", "type", PQgetvalue(res, i, 1), "version",
                                             (json_int_t)h_be64(PQgetvalue(res, i, 0)), "data", payload));
    }
    PQclear(res);
    return out;
}

/* The fold of a stream's stored events with its kind (caller frees). */
static inline json_t *h_fold_log(const char *stream)
{
    char category[SB_CATEGORY_MAX];
    const char *dash = strchr(stream, '-');
    snprintf(category, sizeof(category), "%.*s", (int)(dash - stream), stream);
    const sb_kind_t *k = sb_kind_find(category);
    if (k == NULL)
        abort();
    json_t *evs = h_log_events(stream);
    size_t n = json_array_size(evs);
    sb_devent_t *items = calloc(n ? n : 1, sizeof(*items));
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(evs, i);
        /* the catalogue's names are static in the kinds; the fold only compares them */
        items[i].type = json_string_value(json_object_get(e, "type"));
        items[i].data = json_object_get(e, "data");
        items[i].version = json_integer_value(json_object_get(e, "version"));
    }
    json_t *state = sb_fold(k, items, (int)n);
    free(items);
    json_decref(evs);
    return state;
}

/* A single SQL number. */
static inline long long h_sql_count(const char *sql, int nparams, const char *const *params)
{
    PGresult *res = PQexecParams(h_db, sql, nparams, NULL, params, NULL, NULL, 0);
    long long n = -1;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        n = atoll(PQgetvalue(res, 0, 0));
    else
        fprintf(stderr, "h_sql_count: %s", PQerrorMessage(h_db));
    PQclear(res);
    return n;
}

/* Canonical text of a JSON value (sorted keys), for comparisons that print what differs. */
static inline char *h_canon(const json_t *j)
{
    return j ? json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY) : strdup("(null)");
}

static inline bool h_same_json(const json_t *a, const json_t *b, const char *what)
{
    char *ta = h_canon(a), *tb = h_canon(b);
    bool same = strcmp(ta, tb) == 0;
    if (!same)
        fprintf(stderr, "%s differs:\n  live: %.2000s\n  fold: %.2000s\n", what, ta, tb);
    free(ta);
    free(tb);
    return same;
}

#endif
