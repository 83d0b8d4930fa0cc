/* An in-memory actor store for tests and benchmarks: streams of JSON events and snapshots in one
 * process-wide map under a mutex, with the log's rules (contiguous versions, expected-version
 * checks, a global position).  Each loop's store completes its operations from a uv_idle handle
 * on the next loop iteration, so callbacks never fire inside the call, as with the database.
 * Values cross threads only as deep copies. */
#include "actors/runtime_store.h"
#include "core/clock.h"
#include "core/error.h"

#include <stdlib.h>
#include <string.h>
#include <uv.h>

struct sb_memlog_s {
    uv_mutex_t mu;
    json_t *streams; /* name -> {"events": [{type, data, version, position, recorded_at}], "snapshot": ...} */
    int64_t position;
    uint64_t snapshot_writes, snapshot_hits;
    int fail_n;
    int fail_status;
    bool fail_stored;
};

enum { OP_SNAPSHOT, OP_READ, OP_APPEND };

typedef struct mop_s {
    struct mop_s *next;
    int kind;
    void *data;
    union {
        sb_rt_snapshot_cb snapshot;
        sb_rt_page_cb page;
        sb_rt_append_cb append;
    } cb;
    int64_t version; /* read: after this version; append: expected */
    int limit;
    json_t *events; /* append: [{type, data}] copies */
    bool has_workspace;
    sb_uuid_t workspace;
    char stream[];
} mop_t;

typedef struct mstore_s {
    sb_rt_store_t base;
    sb_memlog_t *m;
    uv_idle_t idle;
    mop_t *head, *tail;
} mstore_t;

sb_memlog_t *sb_memlog_new(void)
{
    sb_memlog_t *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    if (uv_mutex_init(&m->mu) != 0) {
        free(m);
        return NULL;
    }
    m->streams = json_object();
    return m;
}

void sb_memlog_free(sb_memlog_t *m)
{
    if (m == NULL)
        return;
    json_decref(m->streams);
    uv_mutex_destroy(&m->mu);
    free(m);
}

/* The stream's record, created when create is set; under the mutex. */
static json_t *stream_get(sb_memlog_t *m, const char *stream, bool create)
{
    json_t *s = json_object_get(m->streams, stream);
    if (s == NULL && create) {
        s = json_pack("{s:[]}", "events");
        json_object_set_new(m->streams, stream, s);
    }
    return s;
}

static int64_t stream_version(json_t *s)
{
    return s ? (int64_t)json_array_size(json_object_get(s, "events")) : 0;
}

/* Appends copies of events ([{type, data}]) when the version matches; under the mutex. */
static int append_locked(sb_memlog_t *m, const char *stream, int64_t expected, json_t *events,
                         const sb_uuid_t *workspace, sb_rt_append_res_t *res)
{
    char ws[SB_UUID_STRLEN + 1] = "";
    if (workspace != NULL)
        sb_uuid_format(workspace, ws);
    json_t *s = stream_get(m, stream, true);
    int64_t v = stream_version(s);
    res->version = v;
    if (expected != SB_VERSION_ANY && expected != v)
        return SB_ECONFLICT;
    json_t *arr = json_object_get(s, "events");
    int64_t now = sb_clock_now_us();
    size_t i;
    json_t *e;
    json_array_foreach(events, i, e)
    {
        m->position++;
        json_t *rec = json_pack("{s:O, s:O, s:I, s:I, s:I}", "type", json_object_get(e, "type"), "data",
                                json_object_get(e, "data"), "version", (json_int_t)(v + 1 + (int64_t)i),
                                "position", (json_int_t)m->position, "recorded_at", (json_int_t)now);
        if (workspace != NULL)
            json_object_set_new(rec, "workspace", json_string(ws));
        json_array_append_new(arr, rec);
        if (i == 0)
            res->first_position = m->position;
    }
    res->last_position = m->position;
    res->version = v + (int64_t)json_array_size(events);
    res->recorded_at_us = now;
    return 0;
}

int64_t sb_memlog_version(sb_memlog_t *m, const char *stream)
{
    uv_mutex_lock(&m->mu);
    int64_t v = stream_version(stream_get(m, stream, false));
    uv_mutex_unlock(&m->mu);
    return v;
}

json_t *sb_memlog_events(sb_memlog_t *m, const char *stream)
{
    json_t *out = json_array();
    uv_mutex_lock(&m->mu);
    json_t *s = stream_get(m, stream, false);
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(s, "events"), i, e) json_array_append_new(out, json_deep_copy(e));
    uv_mutex_unlock(&m->mu);
    return out;
}

int sb_memlog_append_external(sb_memlog_t *m, const char *stream, int64_t expected, const char *type,
                              json_t *data)
{
    json_t *events = json_pack("[{s:s, s:o}]", "type", type, "data", data);
    sb_rt_append_res_t res;
    uv_mutex_lock(&m->mu);
    int r = append_locked(m, stream, expected, events, NULL, &res);
    uv_mutex_unlock(&m->mu);
    json_decref(events);
    return r;
}

void sb_memlog_counts(sb_memlog_t *m, uint64_t *snapshot_writes, uint64_t *snapshot_hits)
{
    uv_mutex_lock(&m->mu);
    *snapshot_writes = m->snapshot_writes;
    *snapshot_hits = m->snapshot_hits;
    uv_mutex_unlock(&m->mu);
}

void sb_memlog_fail_next(sb_memlog_t *m, int n, int status, bool stored)
{
    uv_mutex_lock(&m->mu);
    m->fail_n = n;
    m->fail_status = status;
    m->fail_stored = stored;
    uv_mutex_unlock(&m->mu);
}

/* ---- the per-loop store ------------------------------------------------------------------- */

static void run_snapshot(mstore_t *ms, mop_t *op)
{
    json_t *state = NULL;
    int64_t version = 0, position = 0;
    uv_mutex_lock(&ms->m->mu);
    json_t *snap = json_object_get(stream_get(ms->m, op->stream, false), "snapshot");
    if (snap != NULL) {
        state = json_deep_copy(json_object_get(snap, "state"));
        version = json_integer_value(json_object_get(snap, "version"));
        position = json_integer_value(json_object_get(snap, "position"));
        ms->m->snapshot_hits++;
    }
    uv_mutex_unlock(&ms->m->mu);
    op->cb.snapshot(op->data, 0, state, version, position, NULL);
}

static void run_read(mstore_t *ms, mop_t *op)
{
    json_t *copies = json_array();
    uv_mutex_lock(&ms->m->mu);
    json_t *arr = json_object_get(stream_get(ms->m, op->stream, false), "events");
    size_t total = json_array_size(arr);
    size_t from = op->version < 0 ? 0 : (size_t)op->version;
    for (size_t i = from; i < total && json_array_size(copies) < (size_t)op->limit; i++)
        json_array_append_new(copies, json_deep_copy(json_array_get(arr, i)));
    bool more = from + json_array_size(copies) < total;
    uv_mutex_unlock(&ms->m->mu);
    size_t n = json_array_size(copies);
    sb_rt_event_t *evs = calloc(n ? n : 1, sizeof(*evs));
    if (evs == NULL) {
        json_decref(copies);
        op->cb.page(op->data, SB_ENOMEM, NULL, 0, false, NULL);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(copies, i);
        evs[i].ev.type = json_string_value(json_object_get(e, "type"));
        evs[i].ev.data = json_object_get(e, "data");
        evs[i].ev.version = json_integer_value(json_object_get(e, "version"));
        evs[i].ev.recorded_at_us = json_integer_value(json_object_get(e, "recorded_at"));
        evs[i].position = json_integer_value(json_object_get(e, "position"));
    }
    op->cb.page(op->data, 0, evs, (int)n, more, NULL);
    free(evs);
    json_decref(copies);
}

static void run_append(mstore_t *ms, mop_t *op)
{
    sb_rt_append_res_t res;
    memset(&res, 0, sizeof(res));
    uv_mutex_lock(&ms->m->mu);
    sb_memlog_t *m = ms->m;
    if (m->fail_n > 0) {
        m->fail_n--;
        res.status = m->fail_status;
        if (m->fail_stored) {
            sb_rt_append_res_t ignored;
            (void)append_locked(m, op->stream, op->version, op->events,
                                op->has_workspace ? &op->workspace : NULL, &ignored);
        }
        res.error = "injected failure";
    } else {
        res.status = append_locked(m, op->stream, op->version, op->events,
                                   op->has_workspace ? &op->workspace : NULL, &res);
    }
    uv_mutex_unlock(&ms->m->mu);
    op->cb.append(op->data, &res);
}

static void on_idle(uv_idle_t *h)
{
    mstore_t *ms = h->data;
    /* Take the whole list: operations started by these callbacks run on the next iteration. */
    mop_t *op = ms->head;
    ms->head = ms->tail = NULL;
    uv_idle_stop(&ms->idle);
    while (op != NULL) {
        mop_t *next = op->next;
        if (op->kind == OP_SNAPSHOT)
            run_snapshot(ms, op);
        else if (op->kind == OP_READ)
            run_read(ms, op);
        else
            run_append(ms, op);
        json_decref(op->events);
        free(op);
        op = next;
    }
}

static mop_t *op_new(mstore_t *ms, int kind, const char *stream, void *data)
{
    size_t len = strlen(stream);
    mop_t *op = calloc(1, sizeof(*op) + len + 1);
    if (op == NULL)
        abort(); /* a test store */
    op->kind = kind;
    op->data = data;
    memcpy(op->stream, stream, len + 1);
    if (ms->tail)
        ms->tail->next = op;
    else
        ms->head = op;
    ms->tail = op;
    uv_idle_start(&ms->idle, on_idle);
    return op;
}

static void m_load_snapshot(sb_rt_store_t *s, const char *stream, sb_rt_snapshot_cb cb, void *data)
{
    mop_t *op = op_new((mstore_t *)s, OP_SNAPSHOT, stream, data);
    op->cb.snapshot = cb;
}

static void m_read_events(sb_rt_store_t *s, const char *stream, int64_t after_version, int limit,
                          sb_rt_page_cb cb, void *data)
{
    mop_t *op = op_new((mstore_t *)s, OP_READ, stream, data);
    op->cb.page = cb;
    op->version = after_version;
    op->limit = limit > 0 ? limit : 1;
}

static void m_append(sb_rt_store_t *s, const sb_rt_append_req_t *req, sb_rt_append_cb cb, void *data)
{
    mop_t *op = op_new((mstore_t *)s, OP_APPEND, req->stream, data);
    op->cb.append = cb;
    op->version = req->expected_version;
    op->has_workspace = req->has_workspace;
    op->workspace = req->workspace;
    op->events = json_array();
    for (int i = 0; i < req->nevents; i++)
        json_array_append_new(
            op->events, json_pack("{s:s, s:o}", "type", req->events[i].type, "data",
                                  req->events[i].data ? json_deep_copy(req->events[i].data) : json_object()));
}

static void m_save_snapshot(sb_rt_store_t *s, const char *stream, int64_t version, int64_t position,
                            const json_t *state)
{
    mstore_t *ms = (mstore_t *)s;
    json_t *copy = json_deep_copy(state);
    uv_mutex_lock(&ms->m->mu);
    json_t *rec = stream_get(ms->m, stream, true);
    json_t *old = json_object_get(rec, "snapshot");
    if (old == NULL || json_integer_value(json_object_get(old, "version")) < version) {
        json_object_set_new(rec, "snapshot",
                            json_pack("{s:o, s:I, s:I}", "state", copy, "version", (json_int_t)version,
                                      "position", (json_int_t)position));
        copy = NULL;
    }
    ms->m->snapshot_writes++;
    uv_mutex_unlock(&ms->m->mu);
    json_decref(copy);
}

static void on_idle_closed(uv_handle_t *h)
{
    free(h->data);
}

static void m_close(sb_rt_store_t *s)
{
    mstore_t *ms = (mstore_t *)s;
    uv_close((uv_handle_t *)&ms->idle, on_idle_closed);
}

static const sb_rt_store_ops_t memlog_ops = {
    .load_snapshot = m_load_snapshot,
    .read_events = m_read_events,
    .append = m_append,
    .save_snapshot = m_save_snapshot,
    .close = m_close,
};

sb_rt_store_t *sb_memlog_open(sb_loop_t *loop, void *arg)
{
    mstore_t *ms = calloc(1, sizeof(*ms));
    if (ms == NULL)
        return NULL;
    ms->base.ops = &memlog_ops;
    ms->m = arg;
    uv_idle_init(&loop->uv, &ms->idle);
    ms->idle.data = ms;
    return &ms->base;
}
