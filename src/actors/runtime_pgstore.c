/* The actor store on PostgreSQL: snapshots (table snapshots) and stream reads on a loop's query
 * connection, appends through its group-commit appender.  Payloads, metadata and snapshot states
 * are msgpack maps (src/events/codec.h). */
#include "actors/runtime_int.h"
#include "actors/runtime_store.h"
#include "core/buf.h"
#include "core/error.h"
#include "core/log.h"
#include "events/codec.h"
#include "events/read.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

typedef struct pgstore_s {
    sb_rt_store_t base;
    sb_pg_t *pg;
    sb_appender_t *ap;
} pgstore_t;

static const char SQL_SNAPSHOT_LOAD[] = "SELECT version, position, state FROM snapshots WHERE stream = $1";

/* Only ever moves a snapshot forward: two processes may both write one for the same stream. */
static const char SQL_SNAPSHOT_SAVE[] =
    "INSERT INTO snapshots (stream, version, position, state) VALUES ($1, $2, $3, $4) "
    "ON CONFLICT (stream) DO UPDATE SET version = EXCLUDED.version, position = EXCLUDED.position, "
    "state = EXCLUDED.state, taken_at = now() WHERE snapshots.version < EXCLUDED.version";

static int64_t be64(const char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | (uint8_t)p[i];
    return (int64_t)v;
}

/* ---- snapshots ------------------------------------------------------------------------------ */

typedef struct snap_load_s {
    sb_pg_req_t req;
    sb_rt_snapshot_cb cb;
    void *data;
    const char *params[1];
    char stream[];
} snap_load_t;

static void on_snapshot_loaded(sb_pg_req_t *req, int status)
{
    snap_load_t *op = req->data;
    json_t *state = NULL;
    int64_t version = 0, position = 0;
    if (status == 0 && PQntuples(req->results[0]) == 1) {
        PGresult *res = req->results[0];
        if (PQgetlength(res, 0, 0) == 8 && PQgetlength(res, 0, 1) == 8) {
            version = be64(PQgetvalue(res, 0, 0));
            position = be64(PQgetvalue(res, 0, 1));
        }
        char err[128];
        if (version <= 0 ||
            sb_codec_to_jansson(PQgetvalue(res, 0, 2), (size_t)PQgetlength(res, 0, 2), &state, err,
                                sizeof(err)) != 0 ||
            !json_is_object(state)) {
            /* A snapshot is only a cache: fold the whole stream instead. */
            sb_log_warn("actors", "ignoring an unreadable snapshot stream=%s", op->stream);
            json_decref(state);
            state = NULL;
            version = position = 0;
        }
    }
    op->cb(op->data, status, state, version, position, status == SB_EDB ? req->error : NULL);
    free(op);
}

static void pg_load_snapshot(sb_rt_store_t *s, const char *stream, sb_rt_snapshot_cb cb, void *data)
{
    pgstore_t *ps = (pgstore_t *)s;
    size_t len = strlen(stream);
    snap_load_t *op = calloc(1, sizeof(*op) + len + 1);
    if (op == NULL)
        abort();
    memcpy(op->stream, stream, len + 1);
    op->cb = cb;
    op->data = data;
    op->params[0] = op->stream;
    sb_pg_req_init(&op->req, SQL_SNAPSHOT_LOAD, 1, op->params, on_snapshot_loaded, op);
    op->req.stmts[0].name = "sb_rt_snapshot_load";
    op->req.stmts[0].result_format = 1;
    sb_pg_submit(ps->pg, &op->req);
}

typedef struct snap_save_s {
    sb_pg_req_t req;
    sb_buf_t state;
    const char *params[4];
    int lengths[4];
    int formats[4];
    char version[24];
    char position[24];
    char stream[];
} snap_save_t;

static void on_snapshot_saved(sb_pg_req_t *req, int status)
{
    snap_save_t *op = req->data;
    if (status != 0 && status != SB_ESHUTDOWN)
        sb_log_warn("actors", "snapshot not saved stream=%s error=%s%s%s", op->stream, sb_errname(status),
                    req->error ? " detail=" : "", req->error ? req->error : "");
    sb_buf_free(&op->state);
    free(op);
}

static void pg_save_snapshot(sb_rt_store_t *s, const char *stream, int64_t version, int64_t position,
                             const json_t *state)
{
    pgstore_t *ps = (pgstore_t *)s;
    size_t len = strlen(stream);
    snap_save_t *op = calloc(1, sizeof(*op) + len + 1);
    if (op == NULL)
        return; /* best effort */
    memcpy(op->stream, stream, len + 1);
    if (sb_codec_from_jansson(state, &op->state) != 0) {
        sb_log_warn("actors", "snapshot not encodable stream=%s", stream);
        sb_buf_free(&op->state);
        free(op);
        return;
    }
    snprintf(op->version, sizeof(op->version), "%lld", (long long)version);
    snprintf(op->position, sizeof(op->position), "%lld", (long long)position);
    op->params[0] = op->stream;
    op->params[1] = op->version;
    op->params[2] = op->position;
    op->params[3] = op->state.data;
    op->lengths[3] = (int)op->state.len;
    op->formats[3] = 1;
    sb_pg_req_init(&op->req, SQL_SNAPSHOT_SAVE, 4, op->params, on_snapshot_saved, op);
    op->req.stmts[0].name = "sb_rt_snapshot_save";
    op->req.stmts[0].lengths = op->lengths;
    op->req.stmts[0].formats = op->formats;
    sb_pg_submit(ps->pg, &op->req);
}

/* ---- reading ------------------------------------------------------------------------------- */

typedef struct read_op_s {
    sb_read_t r;
    sb_rt_page_cb cb;
    void *data;
    char stream[];
} read_op_t;

static void on_read(sb_read_t *r, int status, const sb_event_page_t *page)
{
    read_op_t *op = container_of(r, read_op_t, r);
    if (status != 0) {
        op->cb(op->data, status, NULL, 0, false, r->error);
        free(op);
        return;
    }
    int n = page->n;
    sb_rt_event_t *evs = calloc(n > 0 ? (size_t)n : 1, sizeof(*evs));
    char err[160];
    int decoded = 0;
    status = evs ? 0 : SB_ENOMEM;
    for (; status == 0 && decoded < n; decoded++) {
        const sb_event_t *e = &page->events[decoded];
        char why[128];
        status = sb_codec_to_jansson(e->payload, e->payload_len, &evs[decoded].ev.data, why, sizeof(why));
        if (status != 0) {
            snprintf(err, sizeof(err), "event version %lld: %s", (long long)e->version, why);
            break;
        }
        evs[decoded].ev.type = e->type;
        evs[decoded].ev.version = e->version;
        evs[decoded].ev.recorded_at_us = e->recorded_at_us;
        evs[decoded].position = e->position;
    }
    if (status == 0)
        op->cb(op->data, 0, evs, n, page->more, NULL);
    else
        op->cb(op->data, status, NULL, 0, false, status == SB_ENOMEM ? NULL : err);
    for (int i = 0; evs && i < decoded; i++)
        json_decref(evs[i].ev.data);
    free(evs);
    free(op);
}

static void pg_read_events(sb_rt_store_t *s, const char *stream, int64_t after_version, int limit,
                           sb_rt_page_cb cb, void *data)
{
    pgstore_t *ps = (pgstore_t *)s;
    size_t len = strlen(stream);
    read_op_t *op = calloc(1, sizeof(*op) + len + 1);
    if (op == NULL)
        abort();
    memcpy(op->stream, stream, len + 1);
    op->cb = cb;
    op->data = data;
    sb_read_stream(ps->pg, &op->r, op->stream, after_version, limit, on_read, NULL);
}

/* ---- appending ----------------------------------------------------------------------------- */

#define APPEND_BUF_START 1024

typedef struct append_op_s {
    sb_append_t a;
    sb_task_t task; /* to fail asynchronously when the events cannot be encoded */
    sb_rt_append_cb cb;
    void *data;
    sb_buf_t buf; /* metadata, then each payload */
    int status;
    sb_new_event_t events[SB_MAX_EVENTS_PER_COMMAND];
} append_op_t;

/* The metadata map, with every key present (nil when unknown) so readers see one shape, written
 * straight into b: the bytes msgpack_pack_map, msgpack_pack_str and msgpack_pack_nil would write
 * (checked against them in tests/unit/test_runtime_parts.c), without a packer callback per piece
 * (eight strings on every command).  SB_ENOMEM when b cannot grow; SB_ECODEC, as the appender's
 * own check of the map would, when a value is not UTF-8 (the appender does not check it again: see
 * encoded_checked). */
int sb__rt_pack_meta(sb_buf_t *b, const sb_rt_meta_t *m)
{
    static const char *const keys[5] = {"correlation_id", "causation_id", "user_id", "request_id", "source"};
    static const size_t key_lens[5] = {14, 12, 7, 10, 6}; /* each a fixstr: 0xa0 | length */
    const char *vals[5] = {m->correlation_id, m->causation_id, m->user_id, m->request_id, m->source};
    size_t lens[5], total = 1;
    for (int i = 0; i < 5; i++) {
        lens[i] = vals[i] != NULL ? strlen(vals[i]) : 0;
        if (vals[i] != NULL && !sb_utf8_is_valid(vals[i], lens[i]))
            return SB_ECODEC;
        total += 1 + key_lens[i] + 5 + lens[i]; /* 5: the longest header (str32), or nil */
    }
    /* One reservation, then plain stores: the map is about 150 bytes, and a buffer growing to it
     * append by append reallocated three times. */
    if (sb_buf_reserve(b, total) != 0)
        return SB_ENOMEM;
    unsigned char *o = (unsigned char *)b->data + b->len;
    *o++ = 0x85; /* fixmap of 5 */
    for (int i = 0; i < 5; i++) {
        *o++ = (unsigned char)(0xa0 | key_lens[i]);
        memcpy(o, keys[i], key_lens[i]);
        o += key_lens[i];
        size_t n = lens[i];
        if (vals[i] == NULL) {
            *o++ = 0xc0; /* nil */
            continue;
        }
        if (n < 32) {
            *o++ = (unsigned char)(0xa0 | n);
        } else if (n < 256) {
            *o++ = 0xd9;
            *o++ = (unsigned char)n;
        } else if (n < 65536) {
            *o++ = 0xda;
            *o++ = (unsigned char)(n >> 8);
            *o++ = (unsigned char)n;
        } else {
            *o++ = 0xdb;
            *o++ = (unsigned char)(n >> 24);
            *o++ = (unsigned char)(n >> 16);
            *o++ = (unsigned char)(n >> 8);
            *o++ = (unsigned char)n;
        }
        memcpy(o, vals[i], n);
        o += n;
    }
    b->len = (size_t)((char *)o - b->data);
    b->data[b->len] = '\0';
    return 0;
}

static void on_appended(sb_append_t *a, int status)
{
    append_op_t *op = container_of(a, append_op_t, a);
    sb_rt_append_res_t res = {
        .status = status,
        .version = a->version,
        .first_position = a->first_position,
        .last_position = a->last_position,
        .recorded_at_us = a->recorded_at_us,
        .error = a->error,
    };
    op->cb(op->data, &res);
    sb_buf_free(&op->buf);
    free(op);
}

static void on_encode_failed(sb_task_t *t)
{
    append_op_t *op = container_of(t, append_op_t, task);
    sb_rt_append_res_t res = {.status = op->status, .error = "event payload cannot be encoded"};
    op->cb(op->data, &res);
    sb_buf_free(&op->buf);
    free(op);
}

static void pg_append(sb_rt_store_t *s, const sb_rt_append_req_t *req, sb_rt_append_cb cb, void *data)
{
    pgstore_t *ps = (pgstore_t *)s;
    append_op_t *op = calloc(1, sizeof(*op));
    if (op == NULL)
        abort();
    op->cb = cb;
    op->data = data;
    int n = req->nevents;
    size_t offs[SB_MAX_EVENTS_PER_COMMAND + 1];
    /* Room for the metadata and a usual payload (an inbound message's: about 400 bytes) at once:
     * an empty buffer grown by each append reallocated four times on every command. */
    int status = sb_buf_reserve(&op->buf, APPEND_BUF_START);
    if (status == 0)
        status = sb__rt_pack_meta(&op->buf, &req->meta);
    size_t meta_len = op->buf.len;
    if (status == 0 && (n < 1 || n > SB_MAX_EVENTS_PER_COMMAND))
        status = SB_EINVAL;
    for (int i = 0; status == 0 && i < n; i++) {
        offs[i] = op->buf.len;
        if (req->events[i].data != NULL && !json_is_object(req->events[i].data))
            status = SB_ECODEC; /* a payload is a map (the appender's check, which is skipped) */
        else if (req->events[i].data != NULL)
            status = sb_codec_from_jansson(req->events[i].data, &op->buf);
        else
            sb_buf_putc(&op->buf, (char)0x80); /* an empty map */
        offs[i + 1] = op->buf.len;
    }
    if (status != 0 || ps->ap == NULL) {
        /* Never call back inside the call: finish on the next turn of this loop. */
        op->status = status != 0 ? status : SB_EINVAL;
        op->task.cb = on_encode_failed;
        sb_loop_post(sb_loop_current(), &op->task);
        return;
    }
    /* Pointers only now: the buffer may have moved while it grew. */
    for (int i = 0; i < n; i++) {
        op->events[i].type = req->events[i].type;
        op->events[i].payload = op->buf.data + offs[i];
        op->events[i].payload_len = offs[i + 1] - offs[i];
        op->events[i].metadata = op->buf.data;
        op->events[i].metadata_len = meta_len;
    }
    op->a.stream = req->stream;
    op->a.expected_version = req->expected_version;
    op->a.expected_known = true; /* the actor's version: read from the log or committed (runtime_store.h) */
    op->a.has_workspace = req->has_workspace;
    op->a.workspace = req->workspace;
    op->a.events = op->events;
    op->a.nevents = n;
    op->a.cb = on_appended;
    op->a.data = op;
    op->a.encoded_checked = true; /* sb__rt_pack_meta and sb_codec_from_jansson checked every string */
    sb_append(ps->ap, &op->a);
}

static void pg_close(sb_rt_store_t *s)
{
    free(s);
}

static const sb_rt_store_ops_t pgstore_ops = {
    .load_snapshot = pg_load_snapshot,
    .read_events = pg_read_events,
    .append = pg_append,
    .save_snapshot = pg_save_snapshot,
    .close = pg_close,
};

sb_rt_store_t *sb_rt_pgstore_new(sb_pg_t *pg, sb_appender_t *ap)
{
    if (pg == NULL)
        return NULL;
    pgstore_t *ps = calloc(1, sizeof(*ps));
    if (ps == NULL)
        return NULL;
    ps->base.ops = &pgstore_ops;
    ps->pg = pg;
    ps->ap = ap;
    return &ps->base;
}

sb_rt_store_t *sb_rt_pgstore_open(sb_loop_t *loop, void *arg)
{
    if (loop->db == NULL || loop->appender == NULL) {
        sb_log_error("actors", "loop %d has no database connection or appender", loop->index);
        return NULL;
    }
    return sb_rt_pgstore_new(loop->db, loop->appender);
}
