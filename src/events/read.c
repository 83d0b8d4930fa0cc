/* Reading the log in pages: see read.h. */
#include "events/read.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/error.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EVENT_COLUMNS                                                                                        \
    "position, version, (extract(epoch FROM recorded_at) * 1000000)::int8, stream, type, "                   \
    "workspace_id, payload, metadata"

static int64_t get_int8(const char *p)
{
    uint32_t hi, lo;
    memcpy(&hi, p, 4);
    memcpy(&lo, p + 4, 4);
    return (int64_t)(((uint64_t)ntohl(hi) << 32) | ntohl(lo));
}

/* Appends a PostgreSQL text-array literal of the given strings, each double-quoted. */
static void put_array_literal(sb_buf_t *b, const char *const *items, int n)
{
    sb_buf_putc(b, '{');
    for (int i = 0; i < n; i++) {
        if (i > 0)
            sb_buf_putc(b, ',');
        sb_buf_putc(b, '"');
        for (const char *p = items[i]; *p; p++) {
            if (*p == '"' || *p == '\\')
                sb_buf_putc(b, '\\');
            sb_buf_putc(b, *p);
        }
        sb_buf_putc(b, '"');
    }
    sb_buf_putc(b, '}');
}

static char *xstrdup_printf_ts(int64_t us)
{
    char ts[SB_RFC3339_LEN];
    sb_clock_format_rfc3339(us, ts);
    return strdup(ts);
}

char *sb_log_filter_sql(const sb_log_filter_t *f, int first_param, char **params, int *nparams)
{
    sb_buf_t sql = SB_BUF_INIT;
    sb_buf_puts(&sql, "");
    if (f == NULL)
        return sb_buf_steal(&sql);
    int k = first_param;
    if (f->to_position > 0) {
        char v[24];
        snprintf(v, sizeof(v), "%lld", (long long)f->to_position);
        params[(*nparams)++] = strdup(v);
        sb_buf_printf(&sql, " AND position <= $%d", k++);
    }
    if (f->since_us != 0) {
        params[(*nparams)++] = xstrdup_printf_ts(f->since_us);
        sb_buf_printf(&sql, " AND recorded_at >= $%d::timestamptz", k++);
    }
    if (f->until_us != 0) {
        params[(*nparams)++] = xstrdup_printf_ts(f->until_us);
        sb_buf_printf(&sql, " AND recorded_at < $%d::timestamptz", k++);
    }
    if (f->has_workspace) {
        char u[SB_UUID_STRLEN + 1];
        sb_uuid_format(&f->workspace, u);
        params[(*nparams)++] = strdup(u);
        sb_buf_printf(&sql, " AND workspace_id = $%d::uuid", k++);
    }
    const struct {
        const char *const *items;
        int n;
        const char *column;
    } lists[] = {{f->streams, f->nstreams, "stream"},
                 {f->categories, f->ncategories, "category"},
                 {f->types, f->ntypes, "type"}};
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        if (lists[i].n <= 0)
            continue;
        sb_buf_t lit = SB_BUF_INIT;
        put_array_literal(&lit, lists[i].items, lists[i].n);
        params[(*nparams)++] = sb_buf_steal(&lit);
        sb_buf_printf(&sql, " AND %s = ANY($%d::text[])", lists[i].column, k++);
    }
    return sb_buf_steal(&sql);
}

static const char *const *copy_list(const char *const *items, int n, bool *ok)
{
    if (n <= 0)
        return NULL;
    char **out = calloc((size_t)n, sizeof(*out));
    if (out == NULL) {
        *ok = false;
        return NULL;
    }
    for (int i = 0; i < n; i++)
        if ((out[i] = strdup(items[i])) == NULL)
            *ok = false;
    return (const char *const *)out;
}

static void free_list(const char *const *items, int n)
{
    if (items == NULL)
        return;
    for (int i = 0; i < n; i++)
        free((char *)items[i]);
    free((void *)items);
}

sb_log_filter_t *sb_log_filter_copy(const sb_log_filter_t *f)
{
    sb_log_filter_t *c = malloc(sizeof(*c));
    if (c == NULL)
        return NULL;
    *c = *f;
    bool ok = true;
    c->streams = copy_list(f->streams, f->nstreams, &ok);
    c->categories = copy_list(f->categories, f->ncategories, &ok);
    c->types = copy_list(f->types, f->ntypes, &ok);
    if (!ok) {
        sb_log_filter_free(c);
        return NULL;
    }
    return c;
}

void sb_log_filter_free(sb_log_filter_t *f)
{
    if (f == NULL)
        return;
    free_list(f->streams, f->nstreams);
    free_list(f->categories, f->ncategories);
    free_list(f->types, f->ntypes);
    free(f);
}

/* Whether s (len bytes, not NUL-terminated at len: a stream's category) is one of the items.  One
 * pass over each item, and most differ at their first byte: the follower runs this for every
 * event and every subscriber's list of types. */
static bool in_list(const char *const *items, int n, const char *s, size_t len)
{
    for (int i = 0; i < n; i++) {
        const char *it = items[i];
        if (len == 0 ? it[0] == '\0' : it[0] == s[0] && strncmp(it, s, len) == 0 && it[len] == '\0')
            return true;
    }
    return false;
}

bool sb_log_filter_match(const sb_log_filter_t *f, const sb_event_t *ev)
{
    if (f == NULL)
        return true;
    if (f->to_position > 0 && ev->position > f->to_position)
        return false;
    if (f->since_us != 0 && ev->recorded_at_us < f->since_us)
        return false;
    if (f->until_us != 0 && ev->recorded_at_us >= f->until_us)
        return false;
    if (f->has_workspace && (!ev->has_workspace || memcmp(f->workspace.b, ev->workspace.b, 16) != 0))
        return false;
    if (f->nstreams > 0 && !in_list(f->streams, f->nstreams, ev->stream, strlen(ev->stream)))
        return false;
    if (f->ncategories > 0) {
        const char *dash = strchr(ev->stream, '-');
        size_t len = dash ? (size_t)(dash - ev->stream) : strlen(ev->stream);
        if (!in_list(f->categories, f->ncategories, ev->stream, len))
            return false;
    }
    if (f->ntypes > 0 && !in_list(f->types, f->ntypes, ev->type, strlen(ev->type)))
        return false;
    return true;
}

static void release(sb_read_t *r)
{
    for (int i = 0; i < r->_nparams; i++)
        free(r->_params[i]);
    r->_nparams = 0;
    free(r->_sql);
    r->_sql = NULL;
    free(r->_events);
    r->_events = NULL;
}

/* Decodes a binary-format result of EVENT_COLUMNS into events. */
static int decode_rows(PGresult *res, sb_event_t **out)
{
    int n = PQntuples(res);
    if (n == 0) {
        *out = NULL;
        return 0;
    }
    sb_event_t *ev = calloc((size_t)n, sizeof(*ev));
    if (ev == NULL)
        return SB_ENOMEM;
    for (int i = 0; i < n; i++) {
        ev[i].position = get_int8(PQgetvalue(res, i, 0));
        ev[i].version = get_int8(PQgetvalue(res, i, 1));
        ev[i].recorded_at_us = get_int8(PQgetvalue(res, i, 2));
        ev[i].stream = PQgetvalue(res, i, 3);
        ev[i].type = PQgetvalue(res, i, 4);
        ev[i].has_workspace = !PQgetisnull(res, i, 5) && PQgetlength(res, i, 5) == 16;
        if (ev[i].has_workspace)
            memcpy(ev[i].workspace.b, PQgetvalue(res, i, 5), 16);
        ev[i].payload = PQgetvalue(res, i, 6);
        ev[i].payload_len = (size_t)PQgetlength(res, i, 6);
        ev[i].metadata = PQgetvalue(res, i, 7);
        ev[i].metadata_len = (size_t)PQgetlength(res, i, 7);
    }
    *out = ev;
    return n;
}

static void on_rows(sb_pg_req_t *req, int status)
{
    sb_read_t *r = req->data;
    sb_event_page_t page = {0};
    sb_event_t *events = NULL;
    r->error = req->error;
    if (status == 0) {
        int n = decode_rows(req->results[0], &events);
        if (n < 0) {
            status = n;
        } else {
            page.events = events;
            page.n = n;
            page.more = n >= r->_limit;
            page.scanned_to = n > 0 ? events[n - 1].position : 0;
        }
    }
    release(r);
    /* The callback may start the next read with r; the rows stay valid until it returns. */
    r->cb(r, status, status == 0 ? &page : NULL);
    free(events);
}

/* name: a prepared statement's name for SQL that never varies (planned once per connection: the
 * follower and the actors' loads run these all the time), or NULL. */
static void submit(sb_pg_t *pg, sb_read_t *r, const char *name)
{
    sb_pg_req_init(&r->_req, r->_sql, r->_nparams, (const char *const *)r->_params, on_rows, r);
    r->_req.stmts[0].name = name;
    r->_req.stmts[0].result_format = 1;
    sb_pg_submit(pg, &r->_req);
}

void sb_read_log(sb_pg_t *pg, sb_read_t *r, int64_t after, const sb_log_filter_t *f, int limit, sb_read_cb cb,
                 void *data)
{
    r->cb = cb;
    r->data = data;
    r->error = NULL;
    r->_nparams = 0;
    r->_events = NULL;
    char v[24];
    snprintf(v, sizeof(v), "%lld", (long long)after);
    r->_params[r->_nparams++] = strdup(v);
    char *where = sb_log_filter_sql(f, 2, r->_params, &r->_nparams);
    r->_limit = limit;
    snprintf(v, sizeof(v), "%d", limit);
    int limit_param = r->_nparams + 1;
    r->_params[r->_nparams++] = strdup(v);
    sb_buf_t sql = SB_BUF_INIT;
    sb_buf_printf(
        &sql, "SELECT " EVENT_COLUMNS " FROM events WHERE position > $1::int8%s ORDER BY position LIMIT $%d",
        where, limit_param);
    bool plain = where[0] == '\0';
    free(where);
    r->_sql = sb_buf_steal(&sql);
    submit(pg, r, plain ? "sb_read_log" : NULL);
}

void sb_read_stream(sb_pg_t *pg, sb_read_t *r, const char *stream, int64_t after_version, int limit,
                    sb_read_cb cb, void *data)
{
    r->cb = cb;
    r->data = data;
    r->error = NULL;
    r->_nparams = 0;
    r->_events = NULL;
    char v[24];
    r->_params[r->_nparams++] = strdup(stream);
    snprintf(v, sizeof(v), "%lld", (long long)after_version);
    r->_params[r->_nparams++] = strdup(v);
    r->_limit = limit;
    snprintf(v, sizeof(v), "%d", limit);
    r->_params[r->_nparams++] = strdup(v);
    r->_sql = strdup("SELECT " EVENT_COLUMNS " FROM events WHERE stream = $1 AND version > $2::int8"
                     " ORDER BY version LIMIT $3");
    submit(pg, r, "sb_read_stream");
}
