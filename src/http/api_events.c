/* The workspace's event log:
 *   GET /v1/workspaces/{ws}/events?after=POS&limit=N
 *     -> {"items": [{position, stream, type, version, workspace, recorded_at, data, metadata}],
 *         "next_cursor": "<position>" | null}
 * in position order, the same event shape as the SSE stream.  next_cursor is the position to pass
 * as ?after= for the next page (null once the page is the end of the log so far); positions only
 * grow, so paging is stable while new events arrive.  Any member may read (agents included). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "events/codec.h"
#include "events/read.h"
#include "http/api_int.h"

#define PAGE_DEFAULT 100
#define PAGE_MAX 1000

typedef struct {
    sb_read_t read;
    sb_api_call_t *c;
    int64_t after;
    int limit;
} events_state_t;

static int put_event(sb_buf_t *b, const sb_event_t *ev)
{
    char ws[SB_UUID_STRLEN + 1], at[SB_RFC3339_LEN], err[96];
    sb_clock_format_rfc3339(ev->recorded_at_us, at);
    sb_buf_printf(b, "{\"position\":%" PRId64 ",\"stream\":", ev->position);
    sb_buf_put_json_string(b, ev->stream, strlen(ev->stream));
    sb_buf_puts(b, ",\"type\":");
    sb_buf_put_json_string(b, ev->type, strlen(ev->type));
    sb_buf_printf(b, ",\"version\":%" PRId64 ",\"workspace\":", ev->version);
    if (ev->has_workspace) {
        sb_uuid_format(&ev->workspace, ws);
        sb_buf_printf(b, "\"%s\"", ws);
    } else {
        sb_buf_puts(b, "null");
    }
    sb_buf_printf(b, ",\"recorded_at\":\"%s\",\"data\":", at);
    int rc = sb_codec_to_json(ev->payload, ev->payload_len, b, err, sizeof(err));
    sb_buf_puts(b, ",\"metadata\":");
    if (rc == 0)
        rc = sb_codec_to_json(ev->metadata, ev->metadata_len, b, err, sizeof(err));
    sb_buf_putc(b, '}');
    if (rc != 0)
        sb_log_error("api", "event %" PRId64 " does not decode: %s", ev->position, err);
    return rc;
}

static void on_page(sb_read_t *r, int status, const sb_event_page_t *page)
{
    events_state_t *st = r->data;
    sb_api_call_t *c = st->c;
    if (!sb_api_alive(c)) {
        sb__api_drop(c);
        return;
    }
    if (status != 0) {
        if (status == SB_EDB)
            sb_log_error("api", "event read failed id=%s: %s", c->request_id, r->error ? r->error : "?");
        sb_api_reply_errcode(c, status, NULL);
        return;
    }
    sb_buf_t b = SB_BUF_INIT;
    sb_buf_puts(&b, "{\"items\":[");
    for (int i = 0; i < page->n; i++) {
        if (i)
            sb_buf_putc(&b, ',');
        if (put_event(&b, &page->events[i]) != 0) {
            sb_buf_free(&b);
            sb_api_reply_error(c, 500, "internal", "an event could not be decoded", NULL);
            return;
        }
    }
    sb_buf_puts(&b, "],\"next_cursor\":");
    if (page->more)
        sb_buf_printf(&b, "\"%" PRId64 "\"}", page->scanned_to);
    else
        sb_buf_puts(&b, "null}");
    sb_api_reply_raw(c, 200, sb_buf_steal(&b));
}

static void list_loaded(sb_api_call_t *c)
{
    events_state_t *st = c->data;
    if (!sb_api_page_limit(c, PAGE_DEFAULT, PAGE_MAX, &st->limit))
        return;
    const char *after = sb_api_query(c, "after");
    if (after == NULL)
        after = sb_api_query(c, "cursor");
    st->after = 0;
    if (after != NULL) {
        char *end;
        errno = 0;
        long long v = strtoll(after, &end, 10);
        if (*after == '\0' || *end != '\0' || errno == ERANGE || v < 0 || after[0] == '+' ||
            after[0] == '-' || after[0] == ' ') {
            sb_api_reply_error(c, 400, "invalid", "after must be a position (a non-negative integer)",
                               "after");
            return;
        }
        st->after = v;
    }
    sb_log_filter_t f = {.has_workspace = true};
    sb_uuid_parse(c->ws_id, SB_UUID_STRLEN, &f.workspace);
    st->c = c;
    if (c->loop->db == NULL) {
        sb_api_reply_errcode(c, SB_EDBDOWN, NULL);
        return;
    }
    sb_read_log(c->loop->db, &st->read, st->after, &f, st->limit, on_page, st);
}

static int on_list(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_api_workspace(sb_api_begin(req, params, sizeof(events_state_t)), SB_ROLE_AGENT, list_loaded);
    return 0;
}

int sb__api_event_routes(sb_router_t *r, sb_api_t *api)
{
    return sb_router_add(r, "GET", "/v1/workspaces/{ws}/events", on_list, api);
}
