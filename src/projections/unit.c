/* Units: a group of projections at one position, fed by one subscription; each batch is decoded
 * once and applied by the unit's lanes, one per partition, each in its own transaction on its own
 * connection, side by side (pj_int.h).
 *
 * While a batch is in flight the next one is collected, so decoding and the database overlap;
 * once it holds max_batch events the subscription pauses.  In each lane a batch is one pipelined
 * request of two statements, committed together at its Sync:
 *   1. projection_advance(names, build, from, to, applied_at): moves the lane's members'
 *      checkpoints from `from` to `to`, or raises if one is not at `from` (another runner got there
 *      first);
 *   2. SELECT m1.__apply($1..$8), m2.__apply($1..$8), ...: the events as eight binary arrays, the
 *      same bytes for every lane.
 * So the rows a batch writes and the checkpoints that say so commit or roll back together.  The
 * next batch goes out once every lane has finished this one; if a lane failed, the runner splits
 * the unit by where each member's checkpoint now is. */
#include "projections/pj_int.h"
#include "core/error.h"
#include "core/log.h"
#include "events/codec.h"

#include <arpa/inet.h>
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* PostgreSQL timestamps count microseconds from 2000-01-01 UTC. */
#define PG_EPOCH_US 946684800000000LL

static const uint32_t array_oids[8] = {SB_OID_INT8, SB_OID_TEXT,        SB_OID_TEXT,  SB_OID_INT8,
                                       SB_OID_UUID, SB_OID_TIMESTAMPTZ, SB_OID_JSONB, SB_OID_JSONB};

static void batch_reset(pj_batch_t *b)
{
    for (int i = 0; i < 8; i++)
        sb_pg_array_begin(&b->a[i], array_oids[i]);
    b->n = 0;
    b->last_position = 0;
    b->last_recorded_us = 0;
}

static void put32(char *p, uint32_t v)
{
    v = htonl(v);
    memcpy(p, &v, 4);
}

/* Appends msgpack as a binary jsonb element (version byte 1, then the JSON text), written straight
 * into the array's buffer.  Undecodable bytes become NULL: a malformed event must not stall the
 * projection, and handlers see the NULL. */
static void add_jsonb(sb_pg_array_t *a, const char *mp, size_t len, int64_t position)
{
    size_t at = a->buf.len;
    sb_buf_append(&a->buf, "\0\0\0\0\1", 5);
    char err[96];
    if (sb_codec_to_json(mp, len, &a->buf, err, sizeof(err)) != 0) {
        a->buf.len = at;
        sb_log_warn("projections",
                    "event %" PRId64 ": undecodable payload or metadata (%s); handlers get NULL", position,
                    err);
        sb_pg_array_add(a, NULL, -1);
        return;
    }
    put32(a->buf.data + at, (uint32_t)(a->buf.len - at - 4));
    a->count++;
}

static void batch_add(pj_batch_t *b, const sb_event_t *e, bool metadata)
{
    sb_pg_array_add_int8(&b->a[0], e->position);
    sb_pg_array_add(&b->a[1], e->stream, (int32_t)strlen(e->stream));
    sb_pg_array_add(&b->a[2], e->type, (int32_t)strlen(e->type));
    sb_pg_array_add_int8(&b->a[3], e->version);
    if (e->has_workspace)
        sb_pg_array_add(&b->a[4], e->workspace.b, 16);
    else
        sb_pg_array_add(&b->a[4], NULL, -1);
    sb_pg_array_add_int8(&b->a[5], e->recorded_at_us - PG_EPOCH_US);
    add_jsonb(&b->a[6], e->payload, e->payload_len, e->position);
    if (metadata)
        add_jsonb(&b->a[7], e->metadata, e->metadata_len, e->position);
    b->n++;
    b->last_position = e->position;
    b->last_recorded_us = e->recorded_at_us;
}

/* ---- membership ------------------------------------------------------------------------------ */

static void free_types(pj_unit_t *u)
{
    for (int i = 0; i < u->ntypes; i++)
        free(u->types[i]);
    free(u->types);
    u->types = NULL;
    u->ntypes = 0;
}

static char *names_literal(pj_member_t *const *ms, int n)
{
    sb_buf_t names = SB_BUF_INIT;
    sb_buf_putc(&names, '{');
    for (int i = 0; i < n; i++)
        sb_buf_printf(&names, "%s%s", i ? "," : "", ms[i]->name);
    sb_buf_putc(&names, '}');
    return sb_buf_steal(&names);
}

static void refresh_lane(pj_lane_t *l)
{
    l->uses_metadata = false;
    sb_buf_t sql = SB_BUF_INIT;
    sb_buf_puts(&sql, "SELECT ");
    for (int i = 0; i < l->nmembers; i++) {
        l->uses_metadata |= l->members[i]->uses_metadata;
        if (i > 0)
            sb_buf_puts(&sql, ", ");
        sb_pj_quote_ident(&sql, l->members[i]->schema);
        sb_buf_puts(&sql, ".\"__apply\"($1, $2, $3, $4, $5, $6, $7, $8)");
    }
    free(l->apply_sql);
    l->apply_sql = sb_buf_steal(&sql);
    /* A new name, so the connection prepares the new text (a prepared statement is per name). */
    snprintf(l->stmt_name, sizeof(l->stmt_name), "sb_pj_apply_%d_%d_%d", l->u->id, l->partition, ++l->gen);
    free(l->p_names);
    l->p_names = names_literal(l->members, l->nmembers);
}

/* Recomputes the union of types and the lanes' statements after a membership or schema change. */
static void refresh(pj_unit_t *u)
{
    free_types(u);
    u->uses_metadata = false;
    for (int i = 0; i < u->nmembers; i++) {
        pj_member_t *m = u->members[i];
        u->uses_metadata |= m->uses_metadata;
        for (int k = 0; k < m->ntypes; k++) {
            bool dup = false;
            for (int j = 0; j < u->ntypes && !dup; j++)
                dup = strcmp(u->types[j], m->types[k]) == 0;
            if (dup)
                continue;
            char **p = realloc(u->types, (size_t)(u->ntypes + 1) * sizeof(*p));
            if (p == NULL || (p[u->ntypes] = strdup(m->types[k])) == NULL)
                abort(); /* a few short strings */
            u->types = p;
            u->ntypes++;
        }
    }
    for (int i = 0; i < u->nlanes; i++)
        refresh_lane(u->lanes[i]);
    free(u->p_names);
    u->p_names = names_literal(u->members, u->nmembers);
}

static int next_id;

pj_unit_t *sb__pj_unit_new(pj_runner_t *r, bool build, int64_t position)
{
    pj_unit_t *u = calloc(1, sizeof(*u));
    if (u == NULL)
        abort();
    u->r = r;
    u->id = ++next_id;
    u->build = build;
    u->committed = position;
    u->acc = &u->bufs[0];
    u->fly = &u->bufs[1];
    batch_reset(u->acc);
    batch_reset(u->fly);
    sb_loop_t *loop = sb__pj_runner_loop(r);
    char name[64];
    snprintf(name, sizeof(name), "projections-%d-read", u->id);
    u->rpg = sb_pg_open(&loop->uv, sb__pj_runner_conninfo(r), name);
    if (u->rpg == NULL)
        abort();
    uv_timer_init(&loop->uv, &u->timer);
    u->timer.data = u;
    uv_timer_init(&loop->uv, &u->linger);
    u->linger.data = u;
    u->p_names = strdup("{}");
    if (u->p_names == NULL)
        abort();
    return u;
}

static pj_lane_t *lane_for(pj_unit_t *u, int partition)
{
    for (int i = 0; i < u->nlanes; i++)
        if (u->lanes[i]->partition == partition)
            return u->lanes[i];
    /* More partitions than lanes cannot happen (partitions are at most SB_PJ_MAX_LANES). */
    assert(u->nlanes < SB_PJ_MAX_LANES);
    pj_lane_t *l = calloc(1, sizeof(*l));
    if (l == NULL)
        abort();
    l->u = u;
    l->partition = partition;
    char name[64];
    snprintf(name, sizeof(name), "projections-%d-%d", u->id, partition);
    l->pg = sb_pg_open(&sb__pj_runner_loop(u->r)->uv, sb__pj_runner_conninfo(u->r), name);
    if (l->pg == NULL)
        abort();
    /* A batch waits for the connection rather than failing while the database restarts. */
    sb_pg_set_default_timeout(l->pg, 60000);
    u->lanes[u->nlanes++] = l;
    return l;
}

void sb__pj_unit_add(pj_unit_t *u, pj_member_t *m)
{
    pj_member_t **p = realloc(u->members, (size_t)(u->nmembers + 1) * sizeof(*p));
    if (p == NULL)
        abort();
    u->members = p;
    u->members[u->nmembers++] = m;
    m->unit = u;
    pj_lane_t *l = lane_for(u, m->partition);
    p = realloc(l->members, (size_t)(l->nmembers + 1) * sizeof(*p));
    if (p == NULL)
        abort();
    l->members = p;
    l->members[l->nmembers++] = m;
    u->deferred_done = false; /* the newcomer may have some */
    refresh(u);
}

static void remove_from(pj_member_t **ms, int *n, pj_member_t *m)
{
    for (int i = 0; i < *n; i++) {
        if (ms[i] == m) {
            memmove(&ms[i], &ms[i + 1], (size_t)(*n - i - 1) * sizeof(*ms));
            (*n)--;
            return;
        }
    }
}

void sb__pj_unit_remove(pj_unit_t *u, pj_member_t *m)
{
    remove_from(u->members, &u->nmembers, m);
    for (int i = 0; i < u->nlanes; i++)
        remove_from(u->lanes[i]->members, &u->lanes[i]->nmembers, m);
    if (m->unit == u)
        m->unit = NULL;
    refresh(u);
}

/* ---- applying -------------------------------------------------------------------------------- */

int64_t sb__pj_unit_position(const pj_unit_t *u)
{
    /* Events the filter skipped count as applied once nothing is pending. */
    if (u->sub != NULL && !u->in_flight && u->acc->n == 0) {
        int64_t p = sb_sub_position(u->sub);
        return p > u->committed ? p : u->committed;
    }
    return u->committed;
}

static void on_applied(sb_pg_req_t *req, int status);

static void submit_lane(pj_lane_t *l)
{
    pj_unit_t *u = l->u;
    pj_batch_t *b = u->fly;
    snprintf(l->p_from, sizeof(l->p_from), "%" PRId64, u->committed);
    snprintf(l->p_to, sizeof(l->p_to), "%" PRId64, u->flight_to);
    l->adv_values[0] = l->p_names;
    l->adv_values[1] = u->build ? "t" : "f";
    l->adv_values[2] = l->p_from;
    l->adv_values[3] = l->p_to;
    l->adv_values[4] = NULL;
    if (b->n > 0) {
        /* Seconds since the epoch, which timestamptz reads from text via to_timestamp. */
        snprintf(l->p_at, sizeof(l->p_at), "%" PRId64 ".%06" PRId64, b->last_recorded_us / 1000000,
                 b->last_recorded_us % 1000000);
        l->adv_values[4] = l->p_at;
    }
    memset(&l->req, 0, sizeof(l->req));
    /* synchronous_commit off: a crash may lose the last batches, but each with its checkpoint,
     * so they are simply applied again; the commit need not wait for the disk. */
    sb_pg_req_init(&l->req,
                   "SELECT set_config('synchronous_commit', 'off', true), projection_advance($1::text[], "
                   "$2::boolean, $3::int8, $4::int8, to_timestamp($5::float8))",
                   5, l->adv_values, on_applied, l);
    l->req.stmts[0].name = "sb_pj_advance";
    if (b->n > 0) {
        for (int i = 0; i < 8; i++) {
            /* Metadata only to lanes whose projections read it: less for the server to parse. */
            bool skip = i == 7 && !l->uses_metadata;
            l->apply_values[i] = skip ? NULL : u->fly_values[i];
            l->apply_lengths[i] = skip ? 0 : u->fly_lengths[i];
            l->apply_formats[i] = 1;
        }
        sb_pg_stmt_t st = {.name = l->stmt_name,
                           .sql = l->apply_sql,
                           .nparams = 8,
                           .values = l->apply_values,
                           .lengths = l->apply_lengths,
                           .formats = l->apply_formats};
        sb_pg_req_add(&l->req, &st);
    }
    l->status = 0;
    l->sqlstate[0] = '\0';
    free(l->error);
    l->error = NULL;
    l->in_flight = true;
    u->lanes_in_flight++;
    sb_pg_submit(l->pg, &l->req);
}

/* Sends fly (already swapped in) to every lane with members. */
static void submit(pj_unit_t *u)
{
    pj_batch_t *b = u->fly;
    for (int i = 0; i < 8; i++) {
        if (i == 7 && !u->uses_metadata) {
            u->fly_values[i] = NULL;
            u->fly_lengths[i] = 0;
        } else {
            sb_pg_array_finish(&b->a[i], &u->fly_values[i], &u->fly_lengths[i]);
        }
    }
    u->in_flight = true;
    u->sent_ns = uv_hrtime();
    u->first_done_ns = 0;
    for (int i = 0; i < u->nlanes; i++)
        if (u->lanes[i]->nmembers > 0)
            submit_lane(u->lanes[i]);
    if (u->lanes_in_flight == 0)
        u->in_flight = false; /* no members: nothing to do */
}

/* Starts applying what has been collected; with nothing collected, records how far the filter
 * skipped (so lag and restarts start from there).  Does nothing while a batch is in flight. */
static void flush(pj_unit_t *u, bool force, bool skipped_only_ok)
{
    if (u->in_flight || u->deferring || (u->held && !force) || u->closing || u->sub == NULL ||
        u->nmembers == 0)
        return;
    int64_t to = sb_sub_position(u->sub);
    if (u->acc->n > 0 && u->acc->last_position > to)
        to = u->acc->last_position;
    if (u->acc->n == 0 && (!skipped_only_ok || to <= u->committed))
        return;
    if (u->lingering) {
        u->lingering = false;
        uv_timer_stop(&u->linger);
        sb__pj_runner_count_linger(u->r, uv_now(&sb__pj_runner_loop(u->r)->uv) - u->linger_from_ms);
    }
    pj_batch_t *t = u->fly;
    u->fly = u->acc;
    u->acc = t;
    batch_reset(u->acc);
    u->flight_to = to;
    submit(u);
}

void sb__pj_unit_kick(pj_unit_t *u, bool force)
{
    if (u->lingering && !force)
        return; /* its timer sends it */
    flush(u, force, true);
}

static void on_linger(uv_timer_t *t)
{
    pj_unit_t *u = t->data;
    flush(u, false, false);
    /* Held or deferring: the batch goes out when that ends, like any other. */
    if (u->lingering) {
        u->lingering = false;
        sb__pj_runner_count_linger(u->r, uv_now(&sb__pj_runner_loop(u->r)->uv) - u->linger_from_ms);
    }
}

/* The batch just applied, events collected meanwhile: the log is busy, so rather than sending
 * them at once (a batch of a few events pays the same fixed costs as one of hundreds: the
 * round trip, the statements' planning, each section's set-up), wait until linger_ms after the
 * first of them arrived, or until max_batch of them, whichever comes first.  Only live (the
 * subscription within a batch of the follower's head): while catching up they are full anyway.  An event
 * arriving on an idle unit goes out at once (on_events): the linger never delays a lone event.
 * True when it waits. */
static bool linger(pj_unit_t *u)
{
    uint64_t ms = sb__pj_runner_linger_ms(u->r);
    if (ms == 0 || u->acc->n == 0 || u->acc->n >= sb__pj_runner_max_batch(u->r) || u->held || u->deferring ||
        u->closing || u->sub == NULL)
        return false;
    /* Catching up (more than a full batch still to read): the next batch fills up anyway. */
    int64_t head = sb_follower_head(sb__pj_runner_follower(u->r));
    if (head < 0 || head - sb_sub_position(u->sub) > sb__pj_runner_max_batch(u->r))
        return false;
    uint64_t now = uv_now(&sb__pj_runner_loop(u->r)->uv);
    uint64_t due = u->acc_first_ms + ms;
    if (due <= now)
        return false;
    u->lingering = true;
    u->linger_from_ms = now;
    uv_timer_start(&u->linger, on_linger, due - now, 0);
    return true;
}

static void on_events(sb_sub_t *s, const sb_event_t *events, int n, void *data)
{
    pj_unit_t *u = data;
    if (n > 0 && u->acc->n == 0)
        u->acc_first_ms = uv_now(&sb__pj_runner_loop(u->r)->uv);
    for (int i = 0; i < n; i++)
        batch_add(u->acc, &events[i], u->uses_metadata);
    if (u->lingering && u->acc->n < sb__pj_runner_max_batch(u->r))
        return; /* its timer sends it; a full batch goes out at once, below */
    if (!u->in_flight && !u->held && !u->deferring) {
        flush(u, false, false);
        return;
    }
    if (u->acc->n >= sb__pj_runner_max_batch(u->r) && !u->paused) {
        u->paused = true;
        sb_sub_pause(s);
    }
}

static void on_applied(sb_pg_req_t *req, int status)
{
    pj_lane_t *l = req->data;
    pj_unit_t *u = l->u;
    l->in_flight = false;
    u->lanes_in_flight--;
    if (status != 0) {
        l->status = status;
        snprintf(l->sqlstate, sizeof(l->sqlstate), "%s", req->sqlstate ? req->sqlstate : "");
        l->error = strdup(req->error ? req->error : sb_strerror(status));
    }
    if (u->first_done_ns == 0)
        u->first_done_ns = uv_hrtime();
    if (u->lanes_in_flight > 0)
        return; /* the others first */
    u->in_flight = false;
    if (u->closing)
        return;
    bool failed = false;
    for (int i = 0; i < u->nlanes; i++)
        failed |= u->lanes[i]->status != 0;
    if (failed) {
        sb__pj_runner_unit_failed(u->r, u);
        return;
    }
    u->committed = u->flight_to;
    if (u->fly->n > 0) {
        u->committed_us = u->fly->last_recorded_us;
        uint64_t now = uv_hrtime();
        sb__pj_runner_count_batch(u->r, u->fly->n, now - u->sent_ns, now - u->first_done_ns);
    }
    for (int i = 0; i < u->nmembers; i++) {
        pj_member_t *m = u->members[i];
        if (m->error != NULL) {
            sb_log_info("projections", "%s%s: applying again after %d failures", m->name,
                        m->build ? " (build)" : "", m->failures);
            free(m->error);
            m->error = NULL;
            m->failures = 0;
        }
    }
    sb__pj_runner_committed(u->r, u);
    if (u->closing)
        return;
    if (u->paused && u->acc->n < sb__pj_runner_max_batch(u->r)) {
        u->paused = false;
        sb_sub_resume(u->sub);
    }
    if (!linger(u))
        flush(u, false, false);
}

/* ---- deferred set-up -------------------------------------------------------------------------- */

#define DEFERRED_RETRY_MS 5000

static void on_deferred(sb_pg_req_t *req, int status)
{
    pj_lane_t *l = req->data;
    pj_unit_t *u = l->u;
    u->deferring_lanes--;
    if (!u->closing) {
        if (status != 0) {
            u->deferred_failed = true;
            sb_log_warn("projections", "%.*s: the deferred set-up failed, trying again in %d s: %s",
                        (int)strlen(l->d_schemas) - 2, l->d_schemas + 1, DEFERRED_RETRY_MS / 1000,
                        req->error ? req->error : sb_strerror(status));
        } else if (strtol(PQgetvalue(req->results[0], 0, 0), NULL, 10) > 0) {
            sb_log_info("projections", "%.*s: caught up; ran the deferred set-up",
                        (int)strlen(l->d_schemas) - 2, l->d_schemas + 1);
        }
    }
    if (u->deferring_lanes > 0 || u->closing)
        return;
    u->deferring = false;
    if (u->deferred_failed)
        u->deferred_retry_at = uv_now(&sb__pj_runner_loop(u->r)->uv) + DEFERRED_RETRY_MS;
    else
        u->deferred_done = true;
    sb__pj_runner_committed(u->r, u);
    if (!u->closing)
        flush(u, false, true);
}

void sb__pj_unit_run_deferred(pj_unit_t *u)
{
    if (u->deferred_done || u->deferring || u->in_flight || u->closing ||
        uv_now(&sb__pj_runner_loop(u->r)->uv) < u->deferred_retry_at)
        return;
    u->deferring = true;
    u->deferred_failed = false;
    for (int i = 0; i < u->nlanes; i++) {
        pj_lane_t *l = u->lanes[i];
        if (l->nmembers == 0)
            continue;
        /* On each lane's own connection: the tables are its members', written only there. */
        sb_buf_t b = SB_BUF_INIT;
        sb_buf_putc(&b, '{');
        for (int k = 0; k < l->nmembers; k++)
            sb_buf_printf(&b, "%s%s", k ? "," : "", l->members[k]->schema);
        sb_buf_putc(&b, '}');
        free(l->d_schemas);
        l->d_schemas = sb_buf_steal(&b);
        l->d_values[0] = l->d_schemas;
        memset(&l->dreq, 0, sizeof(l->dreq));
        sb_pg_req_init(&l->dreq, "SELECT projection_run_deferred($1::text[])", 1, l->d_values, on_deferred,
                       l);
        u->deferring_lanes++;
        sb_pg_submit(l->pg, &l->dreq);
    }
    if (u->deferring_lanes == 0) {
        u->deferring = false;
        u->deferred_done = true;
    }
}

/* ---- lifecycle ------------------------------------------------------------------------------- */

void sb__pj_unit_start(pj_unit_t *u)
{
    if (u->closing || u->sub != NULL)
        return;
    /* Even before the follower knows the log's end: the follower brings a caught-up subscription
     * to its head once it does, so the checkpoint also counts the events the filter skipped up to
     * the end of an idle log. */
    sb_log_filter_t filter = {.types = (const char *const *)u->types, .ntypes = u->ntypes};
    u->sub = sb_follower_subscribe(sb__pj_runner_follower(u->r), u->rpg, u->committed, &filter, on_events, u);
    if (u->sub == NULL)
        abort();
    u->caught_up_us = 0;
}

static void on_start_timer(uv_timer_t *t)
{
    sb__pj_unit_start(t->data);
}

void sb__pj_unit_start_later(pj_unit_t *u, uint64_t delay_ms)
{
    if (delay_ms == 0)
        sb__pj_unit_start(u);
    else
        uv_timer_start(&u->timer, on_start_timer, delay_ms, 0);
}

void sb__pj_unit_promote(pj_unit_t *u)
{
    u->build = false;
    for (int i = 0; i < u->nmembers; i++) {
        u->members[i]->build = false;
        snprintf(u->members[i]->schema, sizeof(u->members[i]->schema), "%s", u->members[i]->name);
    }
    refresh(u);
}

static void free_lane(pj_lane_t *l)
{
    free(l->members);
    free(l->d_schemas);
    free(l->apply_sql);
    free(l->p_names);
    free(l->error);
    free(l);
}

static void on_part_closed(void *data)
{
    pj_unit_t *u = data;
    if (--u->pending_closes > 0)
        return;
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 8; k++)
            sb_pg_array_free(&u->bufs[i].a[k]);
    for (int i = 0; i < u->nlanes; i++)
        free_lane(u->lanes[i]);
    free_types(u);
    free(u->p_names);
    free(u->members);
    sb__pj_runner_unit_closed(u->r, u);
    free(u);
}

static void on_timer_closed(uv_handle_t *h)
{
    on_part_closed(h->data);
}

void sb__pj_unit_close(pj_unit_t *u)
{
    if (u->closing)
        return;
    u->closing = true;
    if (u->sub != NULL) {
        sb_sub_close(u->sub);
        u->sub = NULL;
    }
    for (int i = 0; i < u->nmembers; i++)
        if (u->members[i]->unit == u)
            u->members[i]->unit = NULL;
    u->nmembers = 0;
    for (int i = 0; i < u->nlanes; i++)
        u->lanes[i]->nmembers = 0;
    u->pending_closes = 3 + u->nlanes;
    uv_timer_stop(&u->timer);
    uv_close((uv_handle_t *)&u->timer, on_timer_closed);
    u->lingering = false;
    uv_timer_stop(&u->linger);
    uv_close((uv_handle_t *)&u->linger, on_timer_closed);
    sb_pg_close(u->rpg, on_part_closed, u);
    for (int i = 0; i < u->nlanes; i++)
        sb_pg_close(u->lanes[i]->pg, on_part_closed, u);
}
