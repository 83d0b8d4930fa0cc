/* The SSE hub's window of recent messages: formatting events once per loop, the per-workspace
 * rings that live clients read from and the byte budget that bounds them.  See sse.h for the
 * design. */
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "events/codec.h"
#include "http/sse_int.h"

/* ---- formatting --------------------------------------------------------------------------- */

/* An event type goes on the `event:` line and into JSON: only plain identifier characters are
 * written as they are (the log's types are PascalCase; anything else would break the framing). */
static bool is_safe_type(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++) {
        char c = *s;
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '.' || c == '-'))
            return false;
    }
    return true;
}

int sse_format_event(const sb_event_t *ev, sb_buf_t *out)
{
    int rc = 0;
    bool safe = is_safe_type(ev->type);
    sb_buf_printf(out, "id: %lld\n", (long long)ev->position);
    if (safe)
        sb_buf_printf(out, "event: %s\n", ev->type);
    sb_buf_printf(out, "data: {\"position\":%lld,\"stream\":", (long long)ev->position);
    if (sb_utf8_is_valid(ev->stream, strlen(ev->stream)))
        sb_buf_put_json_string(out, ev->stream, strlen(ev->stream));
    else
        sb_buf_puts(out, "null");
    sb_buf_puts(out, ",\"type\":");
    if (safe)
        sb_buf_put_json_string(out, ev->type, strlen(ev->type));
    else
        sb_buf_puts(out, "null");
    sb_buf_printf(out, ",\"version\":%lld,\"workspace\":", (long long)ev->version);
    if (ev->has_workspace) {
        char u[SB_UUID_STRLEN + 1];
        sb_uuid_format(&ev->workspace, u);
        sb_buf_printf(out, "\"%s\"", u);
    } else {
        sb_buf_puts(out, "null");
    }
    char ts[SB_RFC3339_LEN];
    sb_clock_format_rfc3339(ev->recorded_at_us, ts);
    sb_buf_printf(out, ",\"recorded_at\":\"%s\",\"data\":", ts);
    char err[128];
    /* The codec leaves out as it was on failure, so a bad payload becomes null, not half a map. */
    if (sb_codec_to_json(ev->payload, ev->payload_len, out, err, sizeof(err)) != 0) {
        sb_log_warn("sse", "event %lld: payload not shown: %s", (long long)ev->position, err);
        sb_buf_puts(out, "null");
        rc = SB_ECODEC;
    }
    sb_buf_puts(out, ",\"metadata\":");
    if (ev->metadata_len == 0) {
        sb_buf_puts(out, "{}");
    } else if (sb_codec_to_json(ev->metadata, ev->metadata_len, out, err, sizeof(err)) != 0) {
        sb_log_warn("sse", "event %lld: metadata not shown: %s", (long long)ev->position, err);
        sb_buf_puts(out, "null");
        rc = SB_ECODEC;
    }
    sb_buf_puts(out, "}\n\n");
    return rc;
}

/* ---- messages ----------------------------------------------------------------------------- */

static sse_msg_t *msg_new(sse_hub_t *h, const sb_event_t *ev)
{
    h->scratch.len = 0;
    sse_format_event(ev, &h->scratch);
    size_t tlen = strlen(ev->type) + 1, slen = strlen(ev->stream) + 1;
    sse_msg_t *m = malloc(sizeof(*m) + tlen + slen + h->scratch.len);
    if (m == NULL)
        return NULL;
    m->refs = 1;
    m->pos = ev->position;
    m->ws = NULL;
    char *p = m->bytes;
    memcpy(p, ev->type, tlen);
    m->type = p;
    p += tlen;
    memcpy(p, ev->stream, slen);
    m->stream = p;
    p += slen;
    const char *dash = strchr(ev->stream, '-');
    m->catlen = (uint32_t)(dash != NULL ? (size_t)(dash - ev->stream) : slen - 1);
    memcpy(p, h->scratch.data, h->scratch.len);
    m->text = p;
    m->len = (uint32_t)h->scratch.len;
    /* A one-off giant event should not pin a giant scratch buffer for the loop's lifetime. */
    if (h->scratch.cap > SSE_CHUNK_BYTES * 4)
        sb_buf_free(&h->scratch);
    return m;
}

void sse_msg_unref(sse_hub_t *h, sse_msg_t *m)
{
    (void)h;
    if (--m->refs == 0)
        free(m);
}

/* ---- workspaces --------------------------------------------------------------------------- */

static uint32_t ws_hash(const sb_uuid_t *id)
{
    /* FNV-1a over the 16 bytes: v7 ids share their leading time bytes, so mix all of them. */
    uint32_t x = 2166136261u;
    for (int i = 0; i < 16; i++)
        x = (x ^ id->b[i]) * 16777619u;
    return x;
}

sse_ws_t *sse_ws_find(sse_hub_t *h, const sb_uuid_t *id)
{
    if (h->nbuckets == 0)
        return NULL;
    for (sse_ws_t *w = h->buckets[ws_hash(id) & (h->nbuckets - 1)]; w != NULL; w = w->hnext)
        if (memcmp(w->id.b, id->b, 16) == 0)
            return w;
    return NULL;
}

static int ws_grow(sse_hub_t *h)
{
    uint32_t n = h->nbuckets ? h->nbuckets * 2 : 64;
    sse_ws_t **b = calloc(n, sizeof(*b));
    if (b == NULL)
        return SB_ENOMEM;
    for (uint32_t i = 0; i < h->nbuckets; i++) {
        for (sse_ws_t *w = h->buckets[i], *next; w != NULL; w = next) {
            next = w->hnext;
            uint32_t k = ws_hash(&w->id) & (n - 1);
            w->hnext = b[k];
            b[k] = w;
        }
    }
    free(h->buckets);
    h->buckets = b;
    h->nbuckets = n;
    return 0;
}

sse_ws_t *sse_ws_get(sse_hub_t *h, const sb_uuid_t *id)
{
    sse_ws_t *w = sse_ws_find(h, id);
    if (w != NULL)
        return w;
    if (h->nws >= h->nbuckets && ws_grow(h) != 0)
        return NULL;
    w = calloc(1, sizeof(*w));
    if (w == NULL)
        return NULL;
    w->id = *id;
    w->floor = INT64_MAX;
    uint32_t k = ws_hash(id) & (h->nbuckets - 1);
    w->hnext = h->buckets[k];
    h->buckets[k] = w;
    h->nws++;
    return w;
}

/* Removes the oldest message from ws's ring (it stays in the window until evicted there). */
static void ring_pop(sse_ws_t *ws)
{
    sse_msg_t *m = ws->ring[ws->start];
    ws->floor = m->pos;
    m->ws = NULL;
    ws->start = (ws->start + 1) & (ws->cap - 1);
    ws->count--;
    ws->first_seq++;
}

static bool ring_push(sse_ws_t *ws, sse_msg_t *m)
{
    if (ws->count == ws->cap) {
        if (ws->cap >= SSE_WS_RING_MAX) {
            ring_pop(ws);
        } else {
            uint32_t ncap = ws->cap ? ws->cap * 2 : 16;
            sse_msg_t **r = malloc(ncap * sizeof(*r));
            if (r == NULL)
                return false;
            for (uint32_t i = 0; i < ws->count; i++)
                r[i] = ws->ring[(ws->start + i) & (ws->cap - 1)];
            free(ws->ring);
            ws->ring = r;
            ws->cap = ncap;
            ws->start = 0;
        }
    }
    ws->ring[(ws->start + ws->count) & (ws->cap - 1)] = m;
    ws->count++;
    m->ws = ws;
    return true;
}

void sse_ws_reset(sse_hub_t *h, sse_ws_t *ws)
{
    (void)h;
    while (ws->count > 0)
        ring_pop(ws);
    ws->floor = INT64_MAX;
}

void sse_ws_sweep(sse_hub_t *h)
{
    for (uint32_t i = 0; i < h->nbuckets; i++) {
        sse_ws_t **pp = &h->buckets[i];
        while (*pp != NULL) {
            sse_ws_t *w = *pp;
            if (w->nclients > 0) {
                pp = &w->hnext;
                continue;
            }
            sse_ws_reset(h, w);
            *pp = w->hnext;
            free(w->ring);
            free(w);
            h->nws--;
        }
    }
}

void sse_ws_free_all(sse_hub_t *h)
{
    sse_ws_sweep(h);
    free(h->buckets);
    h->buckets = NULL;
    h->nbuckets = 0;
}

uint64_t sse_ws_seek(const sse_ws_t *ws, int64_t pos)
{
    /* Positions grow along the ring: binary search for the first one above pos. */
    uint32_t lo = 0, hi = ws->count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (ws->ring[(ws->start + mid) & (ws->cap - 1)]->pos <= pos)
            lo = mid + 1;
        else
            hi = mid;
    }
    return ws->first_seq + lo;
}

/* ---- the window --------------------------------------------------------------------------- */

static bool fifo_push(sse_hub_t *h, sse_msg_t *m)
{
    if (h->fcount == h->fcap) {
        uint32_t ncap = h->fcap ? h->fcap * 2 : 256;
        sse_msg_t **f = malloc(ncap * sizeof(*f));
        if (f == NULL)
            return false;
        for (uint32_t i = 0; i < h->fcount; i++)
            f[i] = h->fifo[(h->fstart + i) & (h->fcap - 1)];
        free(h->fifo);
        h->fifo = f;
        h->fcap = ncap;
        h->fstart = 0;
    }
    h->fifo[(h->fstart + h->fcount) & (h->fcap - 1)] = m;
    h->fcount++;
    h->fbytes += m->len;
    return true;
}

static void fifo_pop(sse_hub_t *h)
{
    sse_msg_t *m = h->fifo[h->fstart];
    h->fstart = (h->fstart + 1) & (h->fcap - 1);
    h->fcount--;
    h->fbytes -= m->len;
    /* The window is in position order and so is each ring, so a message still in its ring is that
     * ring's oldest. */
    if (m->ws != NULL)
        ring_pop(m->ws);
    sse_msg_unref(h, m);
}

bool sse_window_add(sse_hub_t *h, const sb_event_t *events, int n)
{
    bool grew = false;
    for (int i = 0; i < n; i++) {
        const sb_event_t *ev = &events[i];
        if (!ev->has_workspace)
            continue;
        sse_ws_t *ws = sse_ws_find(h, &ev->workspace);
        if (ws == NULL || ws->nclients == 0 || ws->floor == INT64_MAX)
            continue;
        sse_msg_t *m = msg_new(h, ev);
        if (m == NULL || !fifo_push(h, m)) {
            /* Out of memory: leave a hole the ring's clients will fill from the log. */
            if (m != NULL)
                free(m);
            sse_ws_reset(h, ws);
            ws->floor = ev->position;
            continue;
        }
        if (!ring_push(ws, m)) {
            sse_ws_reset(h, ws);
            ws->floor = ev->position;
            continue;
        }
        grew = true;
    }
    return grew;
}

void sse_window_trim(sse_hub_t *h)
{
    while (h->fcount > 0 && (h->fbytes > h->sse->opts.window_bytes || h->fcount > SSE_WINDOW_MAX))
        fifo_pop(h);
    atomic_store_explicit(&h->counters->window_bytes, h->fbytes, memory_order_relaxed);
}

void sse_window_free(sse_hub_t *h)
{
    while (h->fcount > 0)
        fifo_pop(h);
    free(h->fifo);
    h->fifo = NULL;
    h->fcap = 0;
    sb_buf_free(&h->scratch);
}
