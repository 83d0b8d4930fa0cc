/* Call control's parking-limit timers: see calls.h.
 *
 * At start: the parked calls of the calls read model and that projection's checkpoint, in one
 * statement (one snapshot: the projection stores its rows and its checkpoint in one transaction);
 * then the log from that checkpoint: CallParked arms a timer at parked_at + the workspace's
 * parking limit, CallUnparked, CallTransferred, CallCompleted and CallFailed disarm it.  When one is
 * due a ring job goes through the same path as the log's jobs (calls.c), which checks that the call
 * is still parked since that moment before ringing the parker.
 *
 * The parked calls are few (a lot holds at most 999 per workspace), so they are kept in a plain
 * array and the earliest is found by a scan; one uv_timer is armed for it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/dutil.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "events/codec.h"
#include "reactors/calls_int.h"
#include "reactors/messaging_int.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#define RETRY_MS 1000
#define LOAD_TRIES 10
#define DEFAULT_LIMIT_S 300

typedef struct {
    char call_id[SB_UUID_STRLEN + 1];
    char workspace_id[SB_UUID_STRLEN + 1];
    char parked_by[SB_UUID_STRLEN + 1]; /* "" when the system parked it */
    char parked_at[SB_RFC3339_LEN];
    int64_t parked_at_us;
    int64_t due_us; /* 0 until the workspace's limit is known */
} entry_t;

struct sb__cc_park_s {
    sb_calls_t *cc;
    sb_sub_t *sub;
    entry_t *items;
    size_t n, cap;
    uv_timer_t timer;
    bool timer_open;
    sb_pg_req_t req;
    bool loading;
    int load_failures;
    int limits_pending; /* configuration reads on their way */
    bool stopping;
};

static void arm(sb__cc_park_t *p);

static ssize_t find(const sb__cc_park_t *p, const char *call_id)
{
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->items[i].call_id, call_id) == 0)
            return (ssize_t)i;
    return -1;
}

static void remove_at(sb__cc_park_t *p, size_t i)
{
    p->items[i] = p->items[--p->n];
}

/* ---- limits: the workspace's parking_limit_seconds ---------------------------------------------- */

typedef struct {
    sb__cc_park_t *p;
    char workspace_id[SB_UUID_STRLEN + 1];
} limit_req_t;

static void set_limits(sb__cc_park_t *p, const char *ws, int64_t limit_s)
{
    for (size_t i = 0; i < p->n; i++)
        if (p->items[i].due_us == 0 && strcmp(p->items[i].workspace_id, ws) == 0)
            p->items[i].due_us = p->items[i].parked_at_us + limit_s * 1000000;
    arm(p);
}

static void free_park(sb__cc_park_t *p);

static void on_limit(int status, const sb_wsconf_t *conf, void *data)
{
    limit_req_t *r = data;
    sb__cc_park_t *p = r->p;
    p->limits_pending--;
    if (!p->stopping) {
        int64_t limit = DEFAULT_LIMIT_S;
        const json_t *v = status == 0 ? json_object_get(conf->context, "parking_limit_seconds") : NULL;
        if (json_is_integer(v) && json_integer_value(v) > 0)
            limit = json_integer_value(v);
        else if (status != 0)
            sb_log_warn("calls", "workspace %s: parking limit unknown (%s), using %d s", r->workspace_id,
                        sb_strerror(status), DEFAULT_LIMIT_S);
        set_limits(p, r->workspace_id, limit);
    }
    free(r);
    if (p->stopping)
        free_park(p);
}

static void need_limit(sb__cc_park_t *p, const char *ws)
{
    limit_req_t *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        set_limits(p, ws, DEFAULT_LIMIT_S);
        return;
    }
    r->p = p;
    snprintf(r->workspace_id, sizeof r->workspace_id, "%s", ws);
    p->limits_pending++;
    if (sb_wsconf_get(ws, 0, on_limit, r) != 0) {
        p->limits_pending--;
        free(r);
        set_limits(p, ws, DEFAULT_LIMIT_S);
    }
}

static void add(sb__cc_park_t *p, const char *call_id, const char *ws, const char *parked_by,
                const char *parked_at)
{
    int64_t at_us = 0;
    if (call_id == NULL || ws == NULL || parked_at == NULL || sb_clock_parse_rfc3339(parked_at, &at_us) != 0)
        return;
    ssize_t i = find(p, call_id);
    if (i < 0) {
        if (p->n == p->cap) {
            size_t cap = p->cap ? p->cap * 2 : 16;
            entry_t *items = realloc(p->items, cap * sizeof(*items));
            if (items == NULL) {
                sb_log_error("calls", "out of memory: call %s's parking limit is not watched", call_id);
                return;
            }
            p->items = items;
            p->cap = cap;
        }
        i = (ssize_t)p->n++;
    }
    entry_t *e = &p->items[i];
    memset(e, 0, sizeof(*e));
    snprintf(e->call_id, sizeof e->call_id, "%s", call_id);
    snprintf(e->workspace_id, sizeof e->workspace_id, "%s", ws);
    snprintf(e->parked_by, sizeof e->parked_by, "%s", parked_by ? parked_by : "");
    snprintf(e->parked_at, sizeof e->parked_at, "%s", parked_at);
    e->parked_at_us = at_us;
    p->cc->stats.parked = p->n;
    need_limit(p, ws);
}

/* ---- the timer ---------------------------------------------------------------------------------- */

static void on_due(uv_timer_t *t)
{
    sb__cc_park_t *p = container_of(t, sb__cc_park_t, timer);
    int64_t now = sb_clock_now_us();
    for (size_t i = 0; i < p->n;) {
        entry_t *e = &p->items[i];
        if (e->due_us == 0 || e->due_us > now) {
            i++;
            continue;
        }
        /* Rung once per parking: a call parked again gets a timer of its own. */
        if (e->parked_by[0] != '\0') {
            json_t *d = json_pack("{s:s, s:s}", "parked_by", e->parked_by, "parked_at", e->parked_at);
            if (d != NULL)
                sb__cc_add(p->cc, 0, 0, SB__CC_RING, e->call_id, e->workspace_id, d);
        }
        remove_at(p, i);
    }
    p->cc->stats.parked = p->n;
    arm(p);
}

static void arm(sb__cc_park_t *p)
{
    int64_t first = 0;
    for (size_t i = 0; i < p->n; i++)
        if (p->items[i].due_us != 0 && (first == 0 || p->items[i].due_us < first))
            first = p->items[i].due_us;
    uv_timer_stop(&p->timer);
    if (first == 0 || p->stopping)
        return;
    int64_t wait = first - sb_clock_now_us();
    uv_timer_start(&p->timer, on_due, wait > 0 ? (uint64_t)(wait + 999) / 1000 : 0, 0);
}

/* ---- following the log ---------------------------------------------------------------------------- */

static void on_events(sb_sub_t *s, const sb_event_t *events, int n, void *data)
{
    sb__cc_park_t *p = data;
    for (int i = 0; i < n; i++) {
        const sb_event_t *ev = &events[i];
        if (strncmp(ev->stream, "call-", 5) != 0 || strlen(ev->stream) != 5 + SB_UUID_STRLEN)
            continue;
        const char *call_id = ev->stream + 5;
        if (strcmp(ev->type, "CallParked") != 0) {
            ssize_t k = find(p, call_id);
            if (k >= 0)
                remove_at(p, (size_t)k);
            continue;
        }
        json_t *d = NULL;
        if (!ev->has_workspace || sb_codec_to_jansson(ev->payload, ev->payload_len, &d, NULL, 0) != 0)
            continue;
        char ws[SB_UUID_STRLEN + 1];
        sb_uuid_format(&ev->workspace, ws);
        add(p, call_id, ws, sb__str(d, "parked_by"), sb__str(d, "parked_at"));
        json_decref(d);
    }
    p->cc->stats.parked = p->n;
    arm(p);
}

static void follow(sb__cc_park_t *p, int64_t from)
{
    static const char *const categories[] = {"call"};
    static const char *const types[] = {"CallParked", "CallUnparked", "CallTransferred", "CallCompleted",
                                        "CallFailed"};
    sb_log_filter_t f = {.categories = categories, .ncategories = 1, .types = types, .ntypes = 5};
    p->sub =
        sb_follower_subscribe(sb_messaging_current()->opts.follower, p->cc->loop->db, from, &f, on_events, p);
    if (p->sub == NULL)
        sb_log_error("calls", "cannot follow parked calls: out of memory");
}

static void load(sb__cc_park_t *p);

static void on_retry(uv_timer_t *t)
{
    load(container_of(t, sb__cc_park_t, timer));
}

static void on_loaded(sb_pg_req_t *req, int status)
{
    sb__cc_park_t *p = req->data;
    p->loading = false;
    if (p->stopping) {
        free_park(p);
        return;
    }
    PGresult *r = req->results[0];
    if (status != 0 || PQntuples(r) == 0) {
        if (++p->load_failures >= LOAD_TRIES) {
            sb_log_warn("calls", "the calls read model cannot be read (%s): reading the log from the start",
                        status != 0 && req->error ? req->error : "no checkpoint");
            follow(p, 0);
            return;
        }
        uv_timer_start(&p->timer, on_retry, RETRY_MS, 0);
        return;
    }
    int64_t from = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    for (int i = 0; i < PQntuples(r); i++) {
        if (PQgetisnull(r, i, 1))
            continue; /* the checkpoint's row when nothing is parked */
        add(p, PQgetvalue(r, i, 1), PQgetvalue(r, i, 2), PQgetisnull(r, i, 3) ? NULL : PQgetvalue(r, i, 3),
            PQgetvalue(r, i, 4));
    }
    sb_log_info("calls", "parking: %zu parked calls from the read model at position %lld", p->n,
                (long long)from);
    follow(p, from);
}

static void load(sb__cc_park_t *p)
{
    p->loading = true;
    sb_pg_req_init(&p->req,
                   "SELECT p.position, c.id, c.workspace_id, c.parked_by, "
                   "to_char(c.parked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') "
                   "FROM projection_state p LEFT JOIN calls.calls c ON c.status = 'parked' "
                   "AND c.parked_at IS NOT NULL WHERE p.name = 'calls' AND p.state = 'live'",
                   0, NULL, on_loaded, p);
    sb_pg_submit(p->cc->loop->db, &p->req);
}

/* ---- start and stop --------------------------------------------------------------------------------- */

static void free_park(sb__cc_park_t *p)
{
    if (p->loading || p->timer_open || p->limits_pending > 0)
        return;
    sb_calls_t *cc = p->cc;
    free(p->items);
    free(p);
    cc->park = NULL;
    sb__cc_maybe_free(cc);
}

static void on_timer_closed(uv_handle_t *h)
{
    sb__cc_park_t *p = container_of((uv_timer_t *)h, sb__cc_park_t, timer);
    p->timer_open = false;
    free_park(p);
}

int sb__cc_park_start(sb_calls_t *cc)
{
    sb__cc_park_t *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return SB_ENOMEM;
    p->cc = cc;
    uv_timer_init(&cc->loop->uv, &p->timer);
    p->timer_open = true;
    cc->park = p;
    load(p);
    return 0;
}

void sb__cc_park_stop(sb_calls_t *cc)
{
    sb__cc_park_t *p = cc->park;
    if (p == NULL || p->stopping)
        return;
    p->stopping = true;
    if (p->sub != NULL) {
        sb_sub_close(p->sub);
        p->sub = NULL;
    }
    uv_timer_stop(&p->timer);
    uv_close((uv_handle_t *)&p->timer, on_timer_closed);
}

bool sb__cc_park_alive(const sb_calls_t *cc)
{
    return cc->park != NULL;
}
