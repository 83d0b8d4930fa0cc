/* Units: a group of projections at one position, fed by one subscription; each batch is decoded
 * once and applied by the unit's lanes, one per partition, each in its own transaction on its own
 * connection, side by side (pj_int.h).
 *
 * While batches are in flight the next one is collected, so decoding and the database overlap;
 * once it holds max_batch events the subscription pauses.  It is sealed when some lane is ready
 * for it: each lane applies the sealed batches in order and starts the next as soon as it has
 * committed its own, never waiting for the other lanes (up to SB_PJ_BATCHES - 1 sealed, so a lane
 * runs at most SB_PJ_BATCHES - 2 batches ahead of the slowest).  In each lane a batch is one pipelined
 * request of two statements, committed together at its Sync:
 *   1. projection_advance(names, build, from, to, applied_at): moves the lane's members'
 *      checkpoints from `from` to `to`, or raises if one is not at `from` (another runner got there
 *      first);
 *   2. SELECT CASE WHEN $10[1] THEN m1.__apply($1..$9) END, CASE WHEN $10[2] THEN m2.__apply(...)
 *      END, ...: the events as nine binary arrays (docs/projections.md's eight and the streams'
 *      ids), the same bytes for every lane but the payloads (cut to what the lane reads), and which
 *      members take any of the batch's types (the others are not called at all).
 * So the rows a batch writes and the checkpoints that say so commit or roll back together, and each
 * lane's checkpoint is its own (`from` is where that lane is).  A sealed batch's buffers are reused
 * once every lane has committed it; u->committed is then where every lane is at least, and with
 * nothing sealed (!in_flight: held units, the deferred set-up, a swap wait for that) all lanes are
 * there.  If a lane fails, no lane gets another batch; once none is in flight the runner splits the
 * unit by where each lane's checkpoint is (runner_failed.c). */
#include "projections/pj_int.h"
#include "core/error.h"
#include "core/log.h"
#include "core/uuid.h"
#include "events/codec.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* PostgreSQL timestamps count microseconds from 2000-01-01 UTC. */
#define PG_EPOCH_US 946684800000000LL

static const uint32_t array_oids[SB_PJ_ARRAYS] = {SB_OID_INT8,  SB_OID_TEXT,  SB_OID_TEXT,
                                                  SB_OID_INT8,  SB_OID_UUID,  SB_OID_TIMESTAMPTZ,
                                                  SB_OID_JSONB, SB_OID_JSONB, SB_OID_UUID};

static void batch_reset(pj_batch_t *b)
{
    for (int i = 0; i < SB_PJ_ARRAYS; i++)
        sb_pg_array_begin(&b->a[i], array_oids[i]);
    b->n = 0;
    b->ntypes = 0;
    b->types_all = false;
    sb_buf_reset(&b->types_lit);
    b->last_position = 0;
    b->last_recorded_us = 0;
}

static void put32(char *p, uint32_t v)
{
    v = htonl(v);
    memcpy(p, &v, 4);
}

/* Appends msgpack as a binary jsonb element (version byte 1, then the JSON text), written straight
 * into the array's buffer.  The keys come in jsonb's own order, so each lane's server finds every
 * object sorted and skips sorting it (the lanes parse every payload; the sort was ~1.5% of their
 * CPU).  Undecodable bytes become NULL: a malformed event must not stall the projection, and
 * handlers see the NULL. */
static void add_jsonb(sb_pg_array_t *a, const char *mp, size_t len, int64_t position)
{
    size_t at = a->buf.len;
    sb_buf_append(&a->buf, "\0\0\0\0\1", 5);
    char err[96];
    if (sb_codec_to_json_sorted(mp, len, &a->buf, err, sizeof(err)) != 0) {
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

/* Remembers type among the batch's distinct types (nearly always the first compared), and which of
 * them the event has. */
static void batch_note_type(pj_batch_t *b, const char *type)
{
    if (b->types_all)
        return;
    if (b->n >= b->tix_cap) {
        int cap = b->tix_cap > 0 ? b->tix_cap * 2 : 256;
        uint8_t *p = realloc(b->tix, (size_t)cap);
        if (p == NULL)
            abort(); /* a byte an event */
        b->tix = p;
        b->tix_cap = cap;
    }
    for (int i = b->ntypes - 1; i >= 0; i--)
        if (strcmp(b->types[i], type) == 0) {
            b->tix[b->n] = (uint8_t)i;
            return;
        }
    if (b->ntypes == SB_PJ_BATCH_TYPES || strlen(type) > SB_PJ_BATCH_TYPE_MAX) {
        b->types_all = true;
        return;
    }
    b->tix[b->n] = (uint8_t)b->ntypes;
    snprintf(b->types[b->ntypes++], sizeof(b->types[0]), "%s", type);
}

/* Whether the batch holds an event of a type m takes. */
static bool batch_wants(const pj_batch_t *b, const pj_member_t *m)
{
    if (b->types_all)
        return true;
    for (int i = 0; i < b->ntypes; i++)
        for (int k = 0; k < m->ntypes; k++)
            if (strcmp(b->types[i], m->types[k]) == 0)
                return true;
    return false;
}

static bool has_string(char *const *items, int n, const char *s)
{
    for (int i = 0; i < n; i++)
        if (strcmp(items[i], s) == 0)
            return true;
    return false;
}

/* What a lane's session needs of the payloads of one type's events: none of them (no called member
 * reads them), every key, or the keys some members declared. */
enum { NEED_NONE, NEED_KEYS, NEED_ALL };
#define NEED_MEMBERS 16
/* A lane with more members sends every payload whole. */
#define SB_PJ_MAX_LANE_MEMBERS 64
typedef struct {
    int need;
    int nm;
    const pj_member_t *m[NEED_MEMBERS];
} need_t;

static need_t lane_need(const pj_lane_t *l, const bool *called, const char *type)
{
    need_t nd = {.need = NEED_NONE};
    for (int i = 0; i < l->nmembers; i++) {
        const pj_member_t *m = l->members[i];
        if (!called[i] || !has_string(m->types, m->ntypes, type))
            continue;
        if (!m->payload_known)
            return (need_t){.need = NEED_ALL};
        /* A section is handed only its own types' payloads: none of m's reads this type's. */
        if (!has_string(m->payload_types, m->npayload_types, type))
            continue;
        if (m->payload_keys == NULL || nd.nm == NEED_MEMBERS)
            return (need_t){.need = NEED_ALL};
        nd.need = NEED_KEYS;
        nd.m[nd.nm++] = m;
    }
    return nd;
}

static bool need_keeps(const char *key, size_t n, void *data)
{
    const need_t *nd = data;
    for (int i = 0; i < nd->nm; i++)
        if (sb_pj_sorted_has(nd->m[i]->payload_keys, nd->m[i]->npayload_keys, key, n))
            return true;
    return false;
}

static uint32_t get32(const char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return ntohl(v);
}

/* The payloads array for lane l and batch b: b's own when the members l calls (called) need all of
 * every payload, else a copy in l->payloads with, for each event, its payload whole, cut down to
 * the keys its type's readers declared, or NULL when no called member reads its type's payloads.
 * Cutting costs the runner a walk over the JSON; it saves the lane's session parsing the rest. */
static void lane_payloads(pj_lane_t *l, const pj_batch_t *b, const bool *called, const char **value,
                          int *length)
{
    *value = b->values[6];
    *length = b->lengths[6];
    if (b->types_all || b->n == 0)
        return;
    need_t needs[SB_PJ_BATCH_TYPES];
    bool all = true;
    for (int t = 0; t < b->ntypes; t++) {
        needs[t] = lane_need(l, called, b->types[t]);
        all &= needs[t].need == NEED_ALL;
    }
    if (all)
        return;
    sb_pg_array_t *a = &l->payloads;
    sb_pg_array_begin(a, SB_OID_JSONB);
    const char *p = b->values[6] + 20; /* past the header of a one-dimensional array */
    for (int i = 0; i < b->n; i++) {
        int32_t len = (int32_t)get32(p);
        const char *elem = p + 4;
        p += 4 + (len > 0 ? len : 0);
        const need_t *nd = &needs[b->tix[i]];
        if (len < 0 || nd->need == NEED_NONE) {
            sb_pg_array_add(a, NULL, -1);
            continue;
        }
        if (nd->need == NEED_ALL || len < 1) {
            sb_pg_array_add(a, elem, len);
            continue;
        }
        /* A binary jsonb: version byte 1, then the text. */
        size_t at = a->buf.len;
        sb_buf_append(&a->buf, "\0\0\0\0\1", 5);
        if (!sb__pj_json_keep(elem + 1, (size_t)len - 1, need_keeps, (void *)nd, &a->buf)) {
            a->buf.len = at;
            sb_pg_array_add(a, elem, len);
            continue;
        }
        put32(a->buf.data + at, (uint32_t)(a->buf.len - at - 4));
        a->count++;
    }
    sb_pg_array_finish(a, value, length);
}

static void batch_add(pj_batch_t *b, const sb_event_t *e, bool metadata)
{
    batch_note_type(b, e->type);
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
    /* The id the stream's name ends with, parsed once here rather than by every section that needs
     * it (`right(stream, 36)::uuid`: PostgreSQL's uuid_in calls strtoul for each byte, and a live
     * inbound message's was parsed four times in the lanes). */
    size_t slen = strlen(e->stream);
    sb_uuid_t id;
    if (slen >= SB_UUID_STRLEN && sb_uuid_parse(e->stream + slen - SB_UUID_STRLEN, SB_UUID_STRLEN, &id) == 0)
        sb_pg_array_add(&b->a[8], id.b, 16);
    else
        sb_pg_array_add(&b->a[8], NULL, -1);
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

/* Members whose dispatcher the lane hands the streams' ids. */
static int lane_with_ids(const pj_lane_t *l)
{
    int n = 0;
    for (int i = 0; i < l->nmembers; i++)
        n += l->members[i]->payload_known;
    return n;
}

static void refresh_lane(pj_lane_t *l)
{
    l->uses_metadata = false;
    l->with_ids = lane_with_ids(l);
    sb_buf_t sql = SB_BUF_INIT;
    sb_buf_puts(&sql, "SELECT ");
    for (int i = 0; i < l->nmembers; i++) {
        l->uses_metadata |= l->members[i]->uses_metadata;
        if (i > 0)
            sb_buf_puts(&sql, ", ");
        /* Not called at all for a batch without its types ($11: submit_lane). */
        sb_buf_printf(&sql, "CASE WHEN ($11::boolean[])[%d] THEN ", i + 1);
        sb_pj_quote_ident(&sql, l->members[i]->schema);
        /* The streams' ids and the distinct types only to a dispatcher known to take them
         * (pj_member_t.payload_known): an older generator's has eight parameters, and this one's
         * works them out when left out. */
        sb_buf_printf(&sql, ".\"__apply\"($1, $2, $3, $4, $5, $6, $7, $8%s) END",
                      l->members[i]->payload_known ? ", s.ids, s.types" : "");
    }
    /* $9 and $10 are referenced (and typed) even when no member takes them. */
    sb_buf_puts(&sql, " FROM (SELECT $9::uuid[] AS ids, $10::text[] AS types) AS s");
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
    for (int i = 0; i < SB_PJ_BATCHES; i++)
        batch_reset(&u->bufs[i]);
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

/* The niceness of the lanes' database sessions: SWITCHBOARD_PROJECTIONS_NICE (0 to 19), else
 * SB_PJ_DEFAULT_NICE. */
static int lane_nice(void)
{
    const char *v = getenv("SWITCHBOARD_PROJECTIONS_NICE");
    if (v == NULL || *v == '\0')
        return SB_PJ_DEFAULT_NICE;
    char *end;
    long n = strtol(v, &end, 10);
    if (*end != '\0' || n < 0 || n > 19) {
        sb_log_warn("projections", "SWITCHBOARD_PROJECTIONS_NICE=%s is not 0 to 19; using %d", v,
                    SB_PJ_DEFAULT_NICE);
        return SB_PJ_DEFAULT_NICE;
    }
    return (int)n;
}

/* A lane's session is background work: when PostgreSQL runs on this host (a Unix socket), its
 * server process is given a lower CPU priority, so that under load the sessions serving requests,
 * appends and live streams go first and the read models take what is left (all of it when
 * nothing else runs: a catch-up is as fast).  Best effort: another user's PostgreSQL refuses
 * (EPERM), and nothing else depends on it. */
static void on_lane_state(sb_pg_t *pg, bool connected, void *data)
{
    (void)data;
    int nice = connected ? lane_nice() : 0;
    int pid = nice > 0 ? sb_pg_local_backend_pid(pg) : 0;
    if (pid > 0 && setpriority(PRIO_PROCESS, (id_t)pid, nice) != 0)
        sb_log_debug("projections", "the read models' session %d keeps its priority: %s", pid,
                     strerror(errno));
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
    l->committed = u->committed;
    l->committed_us = u->committed_us;
    l->applied = u->next_seq;
    char name[64];
    snprintf(name, sizeof(name), "projections-%d-%d", u->id, partition);
    l->pg = sb_pg_open(&sb__pj_runner_loop(u->r)->uv, sb__pj_runner_conninfo(u->r), name);
    if (l->pg == NULL)
        abort();
    /* A batch waits for the connection rather than failing while the database restarts. */
    sb_pg_set_default_timeout(l->pg, 60000);
    sb_pg_set_state_cb(l->pg, on_lane_state, l);
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

/* Time with some lane applying, and of it time with some other lane idle (the lanes with members
 * are the ones that count).  Called before lanes_in_flight changes. */
static void account(pj_unit_t *u)
{
    uint64_t now = uv_hrtime();
    if (u->lanes_in_flight > 0) {
        int active = 0;
        for (int i = 0; i < u->nlanes; i++)
            active += u->lanes[i]->nmembers > 0;
        uint64_t d = now - u->busy_from_ns;
        sb__pj_runner_count_busy(u->r, d, u->lanes_in_flight < active ? d : 0);
    }
    u->busy_from_ns = now;
}

/* The sealed batch l applies next, or NULL. */
static pj_batch_t *next_for(const pj_unit_t *u, const pj_lane_t *l)
{
    if (u->nsealed == 0 || l->applied < u->sealed[0]->seq)
        return NULL;
    uint64_t k = l->applied - u->sealed[0]->seq;
    return k < (uint64_t)u->nsealed ? u->sealed[k] : NULL;
}

/* A lane with members, nothing in flight and nothing sealed left to apply. */
static bool has_idle_lane(const pj_unit_t *u)
{
    for (int i = 0; i < u->nlanes; i++) {
        const pj_lane_t *l = u->lanes[i];
        if (l->nmembers > 0 && !l->in_flight && next_for(u, l) == NULL)
            return true;
    }
    return false;
}

static void on_applied(sb_pg_req_t *req, int status);

/* Sends batch b to lane l: from the lane's own checkpoint to b->to. */
static void submit_lane(pj_lane_t *l, pj_batch_t *b)
{
    pj_unit_t *u = l->u;
    /* Another lane has not committed the batch before this one yet: the lanes do not wait for each
     * other (counted, so a test can see it). */
    for (int i = 0; i < u->nlanes; i++)
        if (u->lanes[i] != l && u->lanes[i]->nmembers > 0 && u->lanes[i]->applied < b->seq) {
            sb__pj_runner_count_ahead(u->r);
            break;
        }
    snprintf(l->p_from, sizeof(l->p_from), "%" PRId64, l->committed);
    snprintf(l->p_to, sizeof(l->p_to), "%" PRId64, b->to);
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
        /* A member's file became known since the statement was made (sb__pj_member_set_payload):
         * its dispatcher takes the ids now.  Nothing of the lane's is in flight here. */
        if (lane_with_ids(l) != l->with_ids)
            refresh_lane(l);
        for (int i = 0; i < SB_PJ_ARRAYS; i++) {
            /* Metadata only to lanes whose projections read it: less for the server to parse;
             * the streams' ids only to lanes that hand them to someone. */
            bool skip = (i == 7 && !l->uses_metadata) || (i == 8 && l->with_ids == 0);
            l->apply_values[i] = skip ? NULL : b->values[i];
            l->apply_lengths[i] = skip ? 0 : b->lengths[i];
            l->apply_formats[i] = 1;
        }
        sb_buf_t calls = SB_BUF_INIT;
        sb_buf_putc(&calls, '{');
        bool called[SB_PJ_MAX_LANE_MEMBERS];
        bool fits = l->nmembers <= SB_PJ_MAX_LANE_MEMBERS;
        for (int i = 0; i < l->nmembers; i++) {
            bool c = batch_wants(b, l->members[i]);
            if (fits)
                called[i] = c;
            if (i > 0)
                sb_buf_putc(&calls, ',');
            sb_buf_putc(&calls, c ? 't' : 'f');
        }
        sb_buf_putc(&calls, '}');
        if (fits)
            lane_payloads(l, b, called, &l->apply_values[6], &l->apply_lengths[6]);
        free(l->p_calls);
        l->p_calls = sb_buf_steal(&calls);
        l->apply_values[SB_PJ_ARRAYS] = b->types_all ? NULL : b->types_lit.data;
        l->apply_lengths[SB_PJ_ARRAYS] = 0;
        l->apply_formats[SB_PJ_ARRAYS] = 0;
        l->apply_values[SB_PJ_ARRAYS + 1] = l->p_calls;
        l->apply_lengths[SB_PJ_ARRAYS + 1] = 0;
        l->apply_formats[SB_PJ_ARRAYS + 1] = 0;
        sb_pg_stmt_t st = {.name = l->stmt_name,
                           .sql = l->apply_sql,
                           .nparams = SB_PJ_ARRAYS + 2,
                           .values = l->apply_values,
                           .lengths = l->apply_lengths,
                           .formats = l->apply_formats};
        sb_pg_req_add(&l->req, &st);
    }
    l->status = 0;
    l->sqlstate[0] = '\0';
    free(l->error);
    l->error = NULL;
    account(u);
    l->in_flight = true;
    l->fly = b;
    u->lanes_in_flight++;
    sb_pg_submit(l->pg, &l->req);
}

/* Gives every lane with nothing in flight the next sealed batch it has not applied. */
static void feed(pj_unit_t *u)
{
    if (u->failing || u->closing)
        return;
    for (int i = 0; i < u->nlanes; i++) {
        pj_lane_t *l = u->lanes[i];
        pj_batch_t *b;
        if (l->nmembers > 0 && !l->in_flight && (b = next_for(u, l)) != NULL)
            submit_lane(l, b);
    }
}

/* Seals what has been collected into a batch and hands it to the idle lanes; with nothing
 * collected, records how far the filter skipped (so lag and restarts start from there).  Does
 * nothing while every lane is busy (collecting goes on meanwhile), or when SB_PJ_BATCHES - 1
 * batches are already sealed (the slowest lane has to commit the oldest first). */
static void flush(pj_unit_t *u, bool force, bool skipped_only_ok)
{
    if (u->deferring || u->failing || (u->held && !force) || u->closing || u->sub == NULL ||
        u->nmembers == 0 || u->nsealed >= SB_PJ_BATCHES - 1 || !has_idle_lane(u))
        return;
    int64_t to = sb_sub_position(u->sub);
    if (u->acc->n > 0 && u->acc->last_position > to)
        to = u->acc->last_position;
    int64_t last = u->nsealed > 0 ? u->sealed[u->nsealed - 1]->to : u->committed;
    if (u->acc->n == 0 && (!skipped_only_ok || to <= last))
        return;
    if (u->lingering) {
        u->lingering = false;
        uv_timer_stop(&u->linger);
        sb__pj_runner_count_linger(u->r, uv_now(&sb__pj_runner_loop(u->r)->uv) - u->linger_from_ms);
    }
    pj_batch_t *b = u->acc;
    for (int i = 0; i < SB_PJ_ARRAYS; i++) {
        if (i == 7 && !u->uses_metadata) {
            b->values[i] = NULL;
            b->lengths[i] = 0;
        } else {
            sb_pg_array_finish(&b->a[i], &b->values[i], &b->lengths[i]);
        }
    }
    if (!b->types_all) {
        char *types[SB_PJ_BATCH_TYPES];
        for (int i = 0; i < b->ntypes; i++)
            types[i] = b->types[i];
        sb__pj_text_array(&b->types_lit, types, b->ntypes);
    }
    b->seq = u->next_seq++;
    b->to = to;
    u->sealed[u->nsealed++] = b;
    u->in_flight = true;
    /* A buffer neither collecting nor sealed collects next (there is one: nsealed was below
     * SB_PJ_BATCHES - 1). */
    for (int i = 0; i < SB_PJ_BATCHES; i++) {
        pj_batch_t *f = &u->bufs[i];
        bool used = f == b;
        for (int k = 0; k < u->nsealed && !used; k++)
            used = u->sealed[k] == f;
        if (!used) {
            u->acc = f;
            break;
        }
    }
    assert(u->acc != b);
    batch_reset(u->acc);
    feed(u);
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

/* A lane is ready for more, events collected meanwhile: the log is busy, so rather than sending
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

/* A lane may be idle with events collected: seal them now, or linger. */
static void next_batch(pj_unit_t *u)
{
    if (u->lingering || u->failing || u->nsealed >= SB_PJ_BATCHES - 1 || !has_idle_lane(u))
        return;
    if (!linger(u))
        flush(u, false, false);
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
    if (!u->held && !u->deferring) {
        if (!u->in_flight || u->lingering)
            flush(u, false, false); /* an idle unit sends at once */
        else
            next_batch(u); /* a lane that found nothing to do when it finished */
    }
    if (u->acc->n >= sb__pj_runner_max_batch(u->r) && !u->paused) {
        u->paused = true;
        sb_sub_pause(s);
    }
}

/* Frees (for reuse) the oldest sealed batches every lane has committed; u->committed follows. */
static void retire(pj_unit_t *u)
{
    while (u->nsealed > 0) {
        pj_batch_t *b = u->sealed[0];
        for (int i = 0; i < u->nlanes; i++) {
            pj_lane_t *l = u->lanes[i];
            if ((l->in_flight && l->fly == b) || (l->nmembers > 0 && l->applied <= b->seq))
                return;
        }
        u->committed = b->to;
        if (b->n > 0) {
            u->committed_us = b->last_recorded_us;
            sb__pj_runner_count_batch(u->r, b->n);
        }
        memmove(&u->sealed[0], &u->sealed[1], (size_t)(u->nsealed - 1) * sizeof(*u->sealed));
        u->nsealed--;
    }
    u->in_flight = false;
}

static void on_applied(sb_pg_req_t *req, int status)
{
    pj_lane_t *l = req->data;
    pj_unit_t *u = l->u;
    pj_batch_t *b = l->fly;
    account(u);
    l->in_flight = false;
    l->fly = NULL;
    u->lanes_in_flight--;
    if (u->closing)
        return;
    if (status != 0) {
        l->status = status;
        snprintf(l->sqlstate, sizeof(l->sqlstate), "%s", req->sqlstate ? req->sqlstate : "");
        l->error = strdup(req->error ? req->error : sb_strerror(status));
        u->failing = true;
    } else {
        l->committed = b->to;
        if (b->n > 0)
            l->committed_us = b->last_recorded_us;
        l->applied = b->seq + 1;
        for (int i = 0; i < l->nmembers; i++) {
            pj_member_t *m = l->members[i];
            if (m->error != NULL) {
                sb_log_info("projections", "%s%s: applying again after %d failures", m->name,
                            m->build ? " (build)" : "", m->failures);
                free(m->error);
                m->error = NULL;
                m->failures = 0;
            }
        }
    }
    if (u->failing) {
        /* The other lanes finish what they have in flight, then the runner splits the unit by where
         * each lane's checkpoint is. */
        if (u->lanes_in_flight == 0)
            sb__pj_runner_unit_failed(u->r, u);
        return;
    }
    retire(u);
    sb__pj_runner_committed(u->r, u);
    if (u->closing)
        return;
    if (u->paused && u->acc->n < sb__pj_runner_max_batch(u->r)) {
        u->paused = false;
        sb_sub_resume(u->sub);
    }
    feed(u);
    next_batch(u);
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
    sb_pg_array_free(&l->payloads);
    free(l->p_calls);
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
    for (int i = 0; i < SB_PJ_BATCHES; i++) {
        for (int k = 0; k < SB_PJ_ARRAYS; k++)
            sb_pg_array_free(&u->bufs[i].a[k]);
        sb_buf_free(&u->bufs[i].types_lit);
        free(u->bufs[i].tix);
    }
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
