/* The runner: the lease, reconciling the catalog with what runs, installs, swaps and metrics.
 * Units (unit.c) do the applying.  Everything here runs on the runner's loop, except
 * sb_projections_metrics / _is_active (any thread) and reading projection files (the libuv thread
 * pool, so the loop never waits for the disk).
 *
 *   standby --(pg_try_advisory_lock)--> active --(lease connection lost)--> standby
 *
 * Active, the runner reconciles every two seconds, at once on a NOTIFY from the CLI, and in full
 * at activation: it reads the catalog (and the files, in full or when a rebuild is asked for) and
 * starts what should run.  Live projections join units by (partition, position), builds likewise;
 * installs go one at a time over the control connection.  A unit that has caught up first runs
 * what its files deferred until then (-- @deferred: read indexes).  A build unit that has caught
 * up is then swapped in: it and the live units of its projections are held (no new batch), and once none
 * has a batch in flight and the build is at or past every live checkpoint, projection_swap
 * renames the schemas in one transaction.  Anything unexpected (a checkpoint moved under us, a
 * commit whose outcome is unknown) restarts every unit from the catalog: the checkpoints make that
 * safe.  A projection whose handlers fail is split into a unit of its own and retried with
 * backoff, so it never holds the others back. */
#include "projections/runner_int.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void reconcile(pj_runner_t *r, bool full);
static void activate(pj_runner_t *r);
static void maybe_stopped(pj_runner_t *r);
static void swap_try(pj_runner_t *r, pj_unit_t *b);
static void run_ops(pj_runner_t *r);

/* ---- small helpers --------------------------------------------------------------------------- */

sb_follower_t *sb__pj_runner_follower(pj_runner_t *r)
{
    return r->f;
}

sb_loop_t *sb__pj_runner_loop(pj_runner_t *r)
{
    return r->loop;
}

const char *sb__pj_runner_conninfo(pj_runner_t *r)
{
    return r->conninfo;
}

int sb__pj_runner_max_batch(pj_runner_t *r)
{
    return r->max_batch;
}

uint64_t sb__pj_runner_linger_ms(pj_runner_t *r)
{
    return r->linger_ms;
}

void sb__pj_runner_count_batch(pj_runner_t *r, int n)
{
    atomic_fetch_add(&r->batches, 1);
    atomic_fetch_add(&r->events, (uint64_t)n);
}

void sb__pj_runner_count_busy(pj_runner_t *r, uint64_t busy_ns, uint64_t wait_ns)
{
    atomic_fetch_add(&r->apply_ns, busy_ns);
    atomic_fetch_add(&r->lane_wait_ns, wait_ns);
}

void sb__pj_runner_count_ahead(pj_runner_t *r)
{
    atomic_fetch_add(&r->ahead, 1);
}

void sb__pj_runner_count_linger(pj_runner_t *r, uint64_t waited_ms)
{
    atomic_fetch_add(&r->lingered, 1);
    atomic_fetch_add(&r->lingered_ms, waited_ms);
}

/* The linger asked for: the option, or (< 0) SWITCHBOARD_PROJECTIONS_LINGER_MS or the default. */
static uint64_t linger_of(int asked)
{
    if (asked >= 0)
        return (uint64_t)(asked > SB_PROJECTIONS_MAX_LINGER_MS ? SB_PROJECTIONS_MAX_LINGER_MS : asked);
    const char *v = getenv("SWITCHBOARD_PROJECTIONS_LINGER_MS");
    if (v == NULL || *v == '\0')
        return SB_PROJECTIONS_DEFAULT_LINGER_MS;
    char *end;
    long ms = strtol(v, &end, 10);
    if (*end != '\0' || ms < 0 || ms > SB_PROJECTIONS_MAX_LINGER_MS) {
        sb_log_warn("projections", "SWITCHBOARD_PROJECTIONS_LINGER_MS=%s is not 0 to %d (ms); using %d", v,
                    SB_PROJECTIONS_MAX_LINGER_MS, SB_PROJECTIONS_DEFAULT_LINGER_MS);
        return SB_PROJECTIONS_DEFAULT_LINGER_MS;
    }
    return (uint64_t)ms;
}

/* Splits "a,b,c" into a fresh array. */
static char **split_types(const char *s, int *n)
{
    *n = 0;
    if (s == NULL || *s == '\0')
        return NULL;
    int cap = 1;
    for (const char *p = s; *p; p++)
        cap += *p == ',';
    char **out = calloc((size_t)cap, sizeof(*out));
    if (out == NULL)
        abort();
    const char *p = s;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l > 0 && (out[(*n)++] = strndup(p, l)) == NULL)
            abort();
        p += l + (e != NULL);
    }
    return out;
}

static char **copy_types(char *const *types, int n)
{
    char **out = n > 0 ? calloc((size_t)n, sizeof(*out)) : NULL;
    if (n > 0 && out == NULL)
        abort();
    for (int i = 0; i < n; i++)
        if ((out[i] = strdup(types[i])) == NULL)
            abort();
    return out;
}

pj_member_t *sb__pj_runner_find_member(pj_runner_t *r, const char *name, bool build)
{
    for (pj_member_t *m = r->members; m != NULL; m = m->next)
        if (m->build == build && strcmp(m->name, name) == 0)
            return m;
    return NULL;
}

static const sb_pj_def_t *find_def(pj_runner_t *r, const char *name)
{
    for (int i = 0; i < r->ndefs; i++)
        if (strcmp(r->defs[i]->name, name) == 0)
            return r->defs[i];
    return NULL;
}

static const row_t *find_row(pj_runner_t *r, const char *name)
{
    for (int i = 0; i < r->nrows; i++)
        if (strcmp(r->rows[i].name, name) == 0)
            return &r->rows[i];
    return NULL;
}

/* Partitions spread projections over connections by cost (-- @cost in each file, or the default):
 * the lanes of a unit apply each batch side by side, the unit reads no faster than its slowest
 * lane applies, so the heaviest lane sets the pace (sb__pj_assign_partitions).  Every projection the runner
 * knows (catalog rows and files) is placed, so the answer is the same on every call for the same set of
 * projections.  A member keeps the partition it was given when it was created. */
static int partition_of(pj_runner_t *r, const char *name)
{
    int cap = r->nrows + r->ndefs, n = 0, found = 0;
    const char **names = calloc((size_t)(cap > 0 ? cap : 1), sizeof(*names));
    double *costs = calloc((size_t)(cap > 0 ? cap : 1), sizeof(*costs));
    int *parts = calloc((size_t)(cap > 0 ? cap : 1), sizeof(*parts));
    if (names == NULL || costs == NULL || parts == NULL)
        abort();
    for (int i = 0; i < r->nrows; i++) {
        const sb_pj_def_t *d = find_def(r, r->rows[i].name);
        names[n] = r->rows[i].name;
        costs[n++] = d != NULL ? d->cost : SB_PJ_DEFAULT_COST;
    }
    for (int i = 0; i < r->ndefs; i++) {
        if (find_row(r, r->defs[i]->name) == NULL) {
            names[n] = r->defs[i]->name;
            costs[n++] = r->defs[i]->cost;
        }
    }
    sb__pj_assign_partitions(names, costs, n, r->partitions, parts);
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            found = parts[i];
    free(names);
    free(costs);
    free(parts);
    return found;
}

static pj_member_t *member_new(pj_runner_t *r, const char *name, bool build, char **types, int ntypes,
                               bool uses_metadata, int64_t start_at, int64_t applied_us)
{
    pj_member_t *m = calloc(1, sizeof(*m));
    if (m == NULL)
        abort();
    m->r = r;
    snprintf(m->name, sizeof(m->name), "%s", name);
    snprintf(m->schema, sizeof(m->schema), build ? "%s__build" : "%s", name);
    m->build = build;
    m->types = types;
    m->ntypes = ntypes;
    m->uses_metadata = uses_metadata;
    m->partition = partition_of(r, name);
    m->start_at = start_at;
    m->start_applied_us = applied_us;
    m->next = r->members;
    r->members = m;
    m->fresh_next = r->fresh;
    r->fresh = m;
    return m;
}

static void free_strings(char **items, int n)
{
    for (int i = 0; i < n; i++)
        free(items[i]);
    free(items);
}

void sb__pj_member_set_payload(pj_member_t *m, const sb_pj_def_t *d)
{
    free_strings(m->payload_types, m->npayload_types);
    free_strings(m->payload_keys, m->npayload_keys);
    m->payload_types = copy_types(d->payload_types, d->npayload_types);
    m->npayload_types = d->npayload_types;
    m->payload_keys = d->payload_keys != NULL ? copy_types(d->payload_keys, d->npayload_keys) : NULL;
    m->npayload_keys = d->npayload_keys;
    m->payload_known = true;
}

static void member_free(pj_member_t *m)
{
    free_strings(m->payload_types, m->npayload_types);
    free_strings(m->payload_keys, m->npayload_keys);
    for (int i = 0; i < m->ntypes; i++)
        free(m->types[i]);
    free(m->types);
    free(m->error);
    free(m);
}

/* Drops a member: out of its unit (closing the unit if it empties) and out of the runner. */
static void member_drop(pj_runner_t *r, pj_member_t *m)
{
    pj_unit_t *u = m->unit;
    if (u != NULL) {
        sb__pj_unit_remove(u, m);
        if (u->nmembers == 0)
            sb__pj_unit_close(u);
    }
    for (pj_member_t **pp = &r->members; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == m) {
            *pp = m->next;
            break;
        }
    }
    for (pj_member_t **pp = &r->fresh; *pp != NULL; pp = &(*pp)->fresh_next) {
        if (*pp == m) {
            *pp = m->fresh_next;
            break;
        }
    }
    member_free(m);
}

static pj_unit_t *unit_new(pj_runner_t *r, bool build, int64_t position, int64_t applied_us)
{
    pj_unit_t *u = sb__pj_unit_new(r, build, position);
    u->committed_us = applied_us;
    u->next = r->units;
    r->units = u;
    return u;
}

/* A new unit at position for the n members ms (no longer in any unit), subscribing after
 * delay_ms.  NULL when n is 0. */
pj_unit_t *sb__pj_runner_unit_of(pj_runner_t *r, bool build, pj_member_t **ms, int n, int64_t position,
                                 int64_t applied_us, uint64_t delay_ms)
{
    if (n == 0)
        return NULL;
    pj_unit_t *v = unit_new(r, build, position, applied_us);
    for (int i = 0; i < n; i++)
        sb__pj_unit_add(v, ms[i]);
    sb__pj_unit_start_later(v, delay_ms);
    return v;
}

void sb__pj_runner_unit_closed(pj_runner_t *r, pj_unit_t *u)
{
    for (pj_unit_t **pp = &r->units; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == u) {
            *pp = u->next;
            break;
        }
    }
    maybe_stopped(r);
}

/* Groups the members created by this reconcile into units by (kind, partition, position) and
 * starts them. */
static void start_fresh(pj_runner_t *r)
{
    pj_unit_t **made = NULL;
    int nmade = 0;
    pj_member_t *m = r->fresh;
    r->fresh = NULL;
    for (; m != NULL; m = m->fresh_next) {
        pj_unit_t *u = NULL;
        for (int i = 0; i < nmade && u == NULL; i++)
            if (made[i]->build == m->build && made[i]->committed == m->start_at)
                u = made[i];
        if (u == NULL) {
            pj_unit_t **p = realloc(made, (size_t)(nmade + 1) * sizeof(*p));
            if (p == NULL)
                abort();
            made = p;
            u = made[nmade++] = unit_new(r, m->build, m->start_at, m->start_applied_us);
        }
        sb__pj_unit_add(u, m);
    }
    for (int i = 0; i < nmade; i++)
        sb__pj_unit_start(made[i]);
    free(made);
}

/* A statement on the control connection whose outcome only needs logging. */
static void on_chore(sb_pg_req_t *req, int status)
{
    chore_t *c = req->data;
    /* Closing the connection at shutdown fails what is in flight; a later start redoes it. */
    if (status != 0 && status != SB_ESHUTDOWN && status != SB_EUNKNOWN)
        sb_log_warn("projections", "%s failed: %s", c->what, req->error ? req->error : sb_strerror(status));
    for (int i = 0; i < 4; i++)
        free(c->params[i]);
    free(c);
}

void sb__pj_runner_chore(pj_runner_t *r, const char *what, const char *sql, int nparams,
                         const char *const *params)
{
    chore_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        abort();
    snprintf(c->what, sizeof(c->what), "%s", what);
    for (int i = 0; i < nparams && i < 4; i++) {
        if (params[i] != NULL && (c->params[i] = strdup(params[i])) == NULL)
            abort();
        c->values[i] = c->params[i];
    }
    sb_pg_req_init(&c->req, sql, nparams, c->values, on_chore, c);
    sb_pg_submit(r->ctl, &c->req);
}

/* ---- holds and swaps ------------------------------------------------------------------------- */

/* Recomputes which units are held: every build unit waiting to be swapped in, and the live units
 * of its projections.  Units no longer held get going again. */
void sb__pj_runner_update_holds(pj_runner_t *r)
{
    for (pj_unit_t *u = r->units; u != NULL; u = u->next) {
        u->was_held = u->held;
        u->held = false;
    }
    for (pj_unit_t *b = r->units; b != NULL; b = b->next) {
        if (!b->swap_pending || b->closing)
            continue;
        b->held = true;
        for (int i = 0; i < b->nmembers; i++) {
            pj_member_t *lm = sb__pj_runner_find_member(r, b->members[i]->name, false);
            if (lm != NULL && lm->unit != NULL)
                lm->unit->held = true;
        }
    }
    for (pj_unit_t *u = r->units; u != NULL; u = u->next)
        if (u->was_held && !u->held)
            sb__pj_unit_kick(u, false);
}

static void on_swapped(sb_pg_req_t *req, int status)
{
    pj_unit_t *b = req->data;
    pj_runner_t *r = b->r;
    b->swap_in_flight = false;
    if (b->closing || r->state != ST_ACTIVE)
        return;
    if (status != 0) {
        if (req->sqlstate == NULL || strcmp(req->sqlstate, SB_PJ_SQLSTATE_BEHIND) != 0)
            sb_log_warn("projections", "swapping in %.*s failed, trying again: %s",
                        (int)strlen(b->p_names) - 2, b->p_names + 1,
                        req->error ? req->error : sb_strerror(status));
        b->swap_pending = false; /* asked again at its next commit */
        sb__pj_runner_update_holds(r);
        return;
    }
    for (int i = 0; i < b->nmembers; i++) {
        pj_member_t *m = b->members[i];
        pj_member_t *lm = sb__pj_runner_find_member(r, m->name, false);
        if (lm != NULL)
            member_drop(r, lm);
        sb_log_info("projections", "%s: rebuilt and swapped in at position %" PRId64, m->name, b->committed);
        char old[SB_PJ_NAME_MAX + 8];
        snprintf(old, sizeof(old), "%s__old", m->name);
        const char *p[1] = {old};
        /* The old tables go in their own transaction: it may wait for readers still using them,
         * and nothing waits for it. */
        sb__pj_runner_chore(r, "dropping the replaced tables",
                            "SELECT set_config('lock_timeout', '30s', true), projection_drop($1)", 1, p);
    }
    sb__pj_unit_promote(b);
    b->swap_pending = false;
    sb__pj_runner_update_holds(r);
    sb__pj_unit_kick(b, false);
    sb__pj_runner_publish_metrics(r);
}

static void swap_try(pj_runner_t *r, pj_unit_t *b)
{
    if (!b->swap_pending || b->in_flight || b->swap_in_flight || b->closing)
        return;
    bool behind = false;
    for (int i = 0; i < b->nmembers; i++) {
        pj_member_t *lm = sb__pj_runner_find_member(r, b->members[i]->name, false);
        if (lm == NULL || lm->unit == NULL)
            continue;
        if (lm->unit->in_flight)
            return; /* asked again when it commits */
        if (lm->unit->committed > b->committed)
            behind = true;
    }
    if (behind) {
        /* The live tables have seen events the build has not applied yet: one more batch. */
        sb__pj_unit_kick(b, true);
        return;
    }
    snprintf(b->swap_to, sizeof(b->swap_to), "%" PRId64, b->committed);
    b->swap_values[0] = b->p_names;
    b->swap_values[1] = b->swap_to;
    sb_pg_req_init(&b->swap_req, "SELECT projection_swap($1::text[], $2::int8)", 2, b->swap_values,
                   on_swapped, b);
    b->swap_in_flight = true;
    sb_pg_submit(b->lanes[0]->pg, &b->swap_req);
}

void sb__pj_runner_committed(pj_runner_t *r, pj_unit_t *u)
{
    if (u->closing || r->state != ST_ACTIVE)
        return;
    int64_t head = sb_follower_head(r->f);
    bool caught_up = head >= 0 && sb__pj_unit_position(u) >= head;
    /* Caught up: first what the files deferred (indexes for reads), then, for a build, the swap. */
    if (caught_up && !u->deferred_done)
        sb__pj_unit_run_deferred(u);
    if (u->build && !u->swap_pending && caught_up && u->deferred_done) {
        u->swap_pending = true;
        sb_log_info("projections", "%.*s: the rebuild caught up at position %" PRId64 "; swapping it in",
                    (int)strlen(u->p_names) - 2, u->p_names + 1, u->committed);
        sb__pj_runner_update_holds(r);
    }
    for (pj_unit_t *b = r->units; b != NULL; b = b->next)
        if (b->swap_pending)
            swap_try(r, b);
    sb__pj_runner_publish_metrics(r);
}

/* Closes every unit and forgets every member; the next activation rebuilds them from the
 * catalog. */
void sb__pj_runner_restart_all(pj_runner_t *r, int to_state, const char *why)
{
    if (why != NULL)
        sb_log_warn("projections", "restarting every projection from its checkpoint: %s", why);
    r->state = to_state;
    for (pj_unit_t *u = r->units; u != NULL; u = u->next)
        sb__pj_unit_close(u);
    while (r->members != NULL)
        member_drop(r, r->members);
    r->fresh = NULL;
    for (op_t *o = r->ops; o != NULL;) {
        op_t *next = o->next;
        free(o);
        o = next;
    }
    r->ops = r->ops_tail = NULL;
    sb__pj_runner_publish_metrics(r);
}

/* ---- reconciling ----------------------------------------------------------------------------- */

static void free_rows(pj_runner_t *r)
{
    for (int i = 0; i < r->nrows; i++) {
        free(r->rows[i].types);
        free(r->rows[i].build_types);
    }
    free(r->rows);
    r->rows = NULL;
    r->nrows = 0;
}

static void finish_reconcile(pj_runner_t *r)
{
    r->reconciling = false;
    if (r->state == ST_ACTIVE && r->again) {
        bool full = r->full_again;
        r->again = r->full_again = false;
        reconcile(r, full);
        return;
    }
    maybe_stopped(r);
}

static void push_op(pj_runner_t *r, int kind, const sb_pj_def_t *def, bool build, const char *name)
{
    op_t *o = calloc(1, sizeof(*o));
    if (o == NULL)
        abort();
    o->kind = kind;
    o->def = def;
    o->build = build;
    snprintf(o->name, sizeof(o->name), "%s", name);
    if (r->ops_tail != NULL)
        r->ops_tail->next = o;
    else
        r->ops = o;
    r->ops_tail = o;
}

/* Decides what should run from the rows (and, when loaded this round, the files). */
static void act(pj_runner_t *r, bool defs_fresh)
{
    for (int i = 0; i < r->nrows; i++) {
        const row_t *row = &r->rows[i];
        pj_member_t *lm = sb__pj_runner_find_member(r, row->name, false);
        pj_member_t *bm = sb__pj_runner_find_member(r, row->name, true);
        const sb_pj_def_t *def = defs_fresh ? find_def(r, row->name) : NULL;
        if (row->requested && defs_fresh && def == NULL) {
            push_op(r, OP_NO_FILE, NULL, false, row->name);
            continue;
        }
        if (!row->live) {
            if (def != NULL && (row->requested || strcmp(def->hash, row->hash) != 0))
                push_op(r, OP_INSTALL, def, false, row->name);
            else if (r->full && def != NULL)
                sb_log_warn("projections", "%s is not running: installing it failed earlier (%s)", row->name,
                            "see projections status");
            continue;
        }
        if (lm == NULL) {
            int n;
            char **types = split_types(row->types, &n);
            lm =
                member_new(r, row->name, false, types, n, row->uses_metadata, row->position, row->applied_us);
        }
        /* Only the file the live tables were built from says what their functions read. */
        if (!lm->payload_known && def != NULL && strcmp(def->hash, row->hash) == 0)
            sb__pj_member_set_payload(lm, def);
        bool want_build = def != NULL && (row->requested || (r->full && strcmp(def->hash, row->hash) != 0));
        bool same = row->has_build && def != NULL && strcmp(row->build_hash, def->hash) == 0;
        if (want_build && !row->requested && same && (row->build_running || row->build_failed)) {
            if (row->build_failed) {
                if (r->full)
                    sb_log_warn("projections",
                                "%s: the rebuild of this version failed earlier; "
                                "see projections status",
                                row->name);
                continue;
            }
            want_build = false; /* resume it, below */
        }
        if (want_build) {
            if (bm != NULL) {
                if (bm->unit != NULL && (bm->unit->swap_pending || bm->unit->swap_in_flight)) {
                    r->again = true; /* let the swap finish first */
                    continue;
                }
                member_drop(r, bm);
            }
            push_op(r, OP_INSTALL, def, true, row->name);
            continue;
        }
        if (row->has_build && row->build_running && bm == NULL) {
            if (r->full && def != NULL && strcmp(def->hash, row->build_hash) != 0 &&
                strcmp(def->hash, row->hash) == 0) {
                /* The file went back to the live version: the build is for nothing. */
                push_op(r, OP_CANCEL_BUILD, NULL, true, row->name);
                continue;
            }
            int n;
            char **types = split_types(row->build_types, &n);
            bm = member_new(r, row->name, true, types, n, row->build_uses_metadata, row->build_position, 0);
            if (def != NULL && strcmp(def->hash, row->build_hash) == 0)
                sb__pj_member_set_payload(bm, def);
        }
    }
    if (defs_fresh) {
        for (int i = 0; i < r->ndefs; i++)
            if (find_row(r, r->defs[i]->name) == NULL)
                push_op(r, OP_INSTALL, r->defs[i], false, r->defs[i]->name);
    }
    /* Members whose row is gone (an operator deleted the projection) stop. */
    for (pj_member_t *m = r->members, *next; m != NULL; m = next) {
        next = m->next;
        if (find_row(r, m->name) == NULL) {
            sb_log_info("projections", "%s left the catalog; it stops", m->name);
            member_drop(r, m);
        }
    }
    run_ops(r);
}

static void on_op(sb_pg_req_t *req, int status)
{
    pj_runner_t *r = req->data;
    op_t *o = r->op;
    r->op = NULL;
    free(r->op_script);
    free(r->op_types);
    r->op_script = r->op_types = NULL;
    if (r->state != ST_ACTIVE) {
        free(o);
        finish_reconcile(r);
        return;
    }
    if (o->kind == OP_INSTALL) {
        if (status == 0 && strcmp(PQgetvalue(req->results[0], 0, 0), "installed") == 0) {
            const sb_pj_def_t *d = o->def;
            pj_member_t *m = member_new(r, d->name, o->build, copy_types(d->types, d->ntypes), d->ntypes,
                                        d->uses_metadata, 0, 0);
            sb__pj_member_set_payload(m, d);
            if (o->build)
                sb_log_info("projections", "%s: rebuilding from position 0 into %s__build", d->name, d->name);
            else
                sb_log_info("projections", "%s: installed; building from position 0", d->name);
        } else if (status == 0) {
            r->again = true; /* someone else installed it: pick it up from the catalog */
        } else if (status == SB_EDB) {
            sb_log_error("projections", "cannot install %s%s: %s", o->def->name, o->build ? " (rebuild)" : "",
                         req->error ? req->error : "?");
            const char *p[4] = {o->def->name, o->build ? "t" : "f", o->def->hash,
                                req->error ? req->error : "?"};
            sb__pj_runner_chore(r, "recording an install failure",
                                "SELECT projection_install_failed($1, $2::boolean, $3, $4)", 4, p);
        } else {
            r->again = true;
        }
    } else if (status != 0) {
        sb_log_warn("projections", "%s: %s", o->name, req->error ? req->error : sb_strerror(status));
    }
    free(o);
    run_ops(r);
}

/* Runs the queued operations one at a time, then starts what they created. */
static void run_ops(pj_runner_t *r)
{
    if (r->op != NULL)
        return;
    op_t *o = r->ops;
    if (o == NULL) {
        start_fresh(r);
        sb__pj_runner_update_holds(r);
        sb__pj_runner_publish_metrics(r);
        finish_reconcile(r);
        return;
    }
    r->ops = o->next;
    if (r->ops == NULL)
        r->ops_tail = NULL;
    r->op = o;
    memset(&r->op_req, 0, sizeof(r->op_req));
    if (o->kind == OP_INSTALL) {
        const sb_pj_def_t *d = o->def;
        sb_buf_t script = SB_BUF_INIT, types = SB_BUF_INIT;
        char schema[SB_PJ_NAME_MAX + 16];
        snprintf(schema, sizeof(schema), o->build ? "%s__build" : "%s", d->name);
        sb_pj_install_sql(d, schema, o->build, &script);
        sb__pj_text_array(&types, d->types, d->ntypes);
        r->op_script = sb_buf_steal(&script);
        r->op_types = sb_buf_steal(&types);
        r->op_values[0] = d->name;
        r->op_values[1] = o->build ? "t" : "f";
        r->op_values[2] = d->hash;
        r->op_values[3] = r->op_types;
        r->op_values[4] = d->uses_metadata ? "t" : "f";
        r->op_values[5] = r->op_script;
        sb_pg_req_init(&r->op_req,
                       "SELECT projection_install($1, $2::boolean, $3, $4::text[], $5::boolean, $6)", 6,
                       r->op_values, on_op, r);
    } else if (o->kind == OP_CANCEL_BUILD) {
        r->op_values[0] = o->name;
        sb_pg_req_init(&r->op_req, "SELECT projection_drop($1 || '__build')", 1, r->op_values, on_op, r);
        sb_pg_stmt_t st = {.sql =
                               "UPDATE projection_state SET build_hash = NULL, build_types = NULL, "
                               "build_uses_metadata = NULL, build_position = NULL, build_started_at = NULL, "
                               "build_error = NULL WHERE name = $1",
                           .nparams = 1,
                           .values = r->op_values};
        sb_pg_req_add(&r->op_req, &st);
        sb_log_info("projections", "%s: dropping a rebuild its file no longer asks for", o->name);
    } else {
        r->op_values[0] = o->name;
        sb_log_error("projections", "cannot rebuild %s: no %s/%s.sql", o->name, r->dir, o->name);
        sb_pg_req_init(&r->op_req,
                       "UPDATE projection_state SET rebuild_requested_at = NULL, "
                       "build_error = 'no projection file of that name' WHERE name = $1",
                       1, r->op_values, on_op, r);
    }
    sb_pg_submit(r->ctl, &r->op_req);
}

static void log_bad_file(const char *file, const char *msg, void *data)
{
    sb_log_error("projections", "skipping %s: %s", file, msg);
}

/* On a thread-pool thread: the files (logging is thread-safe). */
static void on_loaded_work(uv_work_t *w)
{
    load_t *l = w->data;
    l->rc = sb_pj_load_dir(l->dir, &l->defs, &l->n, log_bad_file, NULL, l->err, sizeof(l->err));
}

static void on_loaded(uv_work_t *w, int status)
{
    load_t *l = w->data;
    pj_runner_t *r = l->r;
    r->loading = false;
    if (r->state != ST_ACTIVE || status != 0) {
        sb_pj_defs_free(l->defs, l->n);
        free(l->dir);
        free(l);
        finish_reconcile(r);
        return;
    }
    if (l->rc != 0)
        sb_log_warn("projections", "%s", l->err);
    /* Units keep pointers to member data only, never to definitions, so the old ones can go. */
    sb_pj_defs_free(r->defs, r->ndefs);
    r->defs = l->defs;
    r->ndefs = l->n;
    free(l->dir);
    free(l);
    act(r, true);
}

static void on_catalog(sb_pg_req_t *req, int status)
{
    pj_runner_t *r = req->data;
    if (r->state != ST_ACTIVE) {
        finish_reconcile(r);
        return;
    }
    if (status != 0) {
        sb_log_warn("projections", "cannot read the catalog: %s",
                    req->error ? req->error : sb_strerror(status));
        finish_reconcile(r);
        return;
    }
    free_rows(r);
    PGresult *res = req->results[0];
    int n = PQntuples(res);
    r->rows = calloc((size_t)(n > 0 ? n : 1), sizeof(row_t));
    if (r->rows == NULL)
        abort();
    bool requested = false;
    for (int i = 0; i < n; i++) {
        row_t *w = &r->rows[r->nrows++];
        snprintf(w->name, sizeof(w->name), "%s", PQgetvalue(res, i, 0));
        w->live = strcmp(PQgetvalue(res, i, 1), "live") == 0;
        snprintf(w->hash, sizeof(w->hash), "%s", PQgetvalue(res, i, 2));
        w->types = strdup(PQgetvalue(res, i, 3));
        w->uses_metadata = PQgetvalue(res, i, 4)[0] == 't';
        w->position = strtoll(PQgetvalue(res, i, 5), NULL, 10);
        w->applied_us = PQgetisnull(res, i, 6) ? 0 : strtoll(PQgetvalue(res, i, 6), NULL, 10);
        w->has_build = !PQgetisnull(res, i, 7);
        snprintf(w->build_hash, sizeof(w->build_hash), "%s", PQgetvalue(res, i, 7));
        w->build_types = strdup(PQgetvalue(res, i, 8));
        w->build_uses_metadata = PQgetvalue(res, i, 9)[0] == 't';
        w->build_running = !PQgetisnull(res, i, 10);
        w->build_position = w->build_running ? strtoll(PQgetvalue(res, i, 10), NULL, 10) : 0;
        w->build_failed = PQgetvalue(res, i, 11)[0] == 't' && !w->build_running;
        w->requested = PQgetvalue(res, i, 12)[0] == 't';
        if (w->types == NULL || w->build_types == NULL)
            abort();
        requested |= w->requested;
    }
    if (!r->full && !requested) {
        act(r, false);
        return;
    }
    load_t *l = calloc(1, sizeof(*l));
    if (l == NULL || (l->dir = strdup(r->dir)) == NULL)
        abort();
    l->r = r;
    l->work.data = l;
    r->loading = true;
    if (uv_queue_work(&r->loop->uv, &l->work, on_loaded_work, on_loaded) != 0) {
        r->loading = false;
        free(l->dir);
        free(l);
        finish_reconcile(r);
    }
}

static void reconcile(pj_runner_t *r, bool full)
{
    if (r->state != ST_ACTIVE)
        return;
    if (r->reconciling) {
        r->again = true;
        r->full_again |= full;
        return;
    }
    r->reconciling = true;
    r->full = full;
    sb_pg_req_init(&r->cat_req,
                   "SELECT name, state, hash, array_to_string(types, ','), uses_metadata, position, "
                   "(extract(epoch FROM applied_at) * 1000000)::int8, build_hash, "
                   "coalesce(array_to_string(build_types, ','), ''), coalesce(build_uses_metadata, false), "
                   "build_position, build_error IS NOT NULL, rebuild_requested_at IS NOT NULL "
                   "FROM projection_state ORDER BY name",
                   0, NULL, on_catalog, r);
    sb_pg_submit(r->ctl, &r->cat_req);
}

/* ---- the lease ------------------------------------------------------------------------------- */

static void activate(pj_runner_t *r)
{
    r->state = ST_ACTIVE;
    atomic_store(&r->active, true);
    r->activated_us = sb_clock_now_us();
    sb_log_info("projections", "this process runs the projections (dir=%s)", r->dir);
    /* Tables a swap replaced but could not drop (readers held them, or the process stopped). */
    sb__pj_runner_chore(
        r, "dropping replaced tables",
        "SELECT projection_drop(s.nspname) FROM (SELECT set_config('lock_timeout', '30s', true)) AS t, "
        "pg_namespace s JOIN projection_state p ON s.nspname = p.name || '__old'",
        0, NULL);
    reconcile(r, true);
}

static void on_lease(sb_pg_req_t *req, int status)
{
    pj_runner_t *r = req->data;
    r->lease_in_flight = false;
    if (r->state != ST_STANDBY || status != 0)
        return;
    if (PQgetvalue(req->results[0], 0, 0)[0] == 't')
        activate(r);
}

static void on_heartbeat(sb_pg_req_t *req, int status)
{
    pj_runner_t *r = req->data;
    r->lease_in_flight = false;
}

static void on_named(sb_pg_req_t *req, int status)
{
    free(req);
}

static void on_lease_state(sb_pg_t *pg, bool connected, void *data)
{
    pj_runner_t *r = data;
    if (connected) {
        /* So `projections status` (pg_stat_activity) can say which process holds the lease. */
        sb_pg_req_t *req = calloc(1, sizeof(*req));
        if (req == NULL)
            return;
        sb_pg_req_init(req, "SELECT set_config('application_name', $1, false)", 1, r->app_name_values,
                       on_named, req);
        sb_pg_submit(pg, req);
        return;
    }
    if (r->state != ST_ACTIVE && r->state != ST_RESTARTING)
        return;
    /* The session held the lock: without it another process may already run the projections. */
    atomic_store(&r->active, false);
    sb__pj_runner_restart_all(r, ST_STANDBY, "the lease connection was lost");
}

static void on_notify(sb_pg_t *pg, const char *channel, const char *payload, void *data)
{
    pj_runner_t *r = data;
    if (r->state == ST_ACTIVE)
        reconcile(r, false);
}

static void on_tick(uv_timer_t *t)
{
    pj_runner_t *r = t->data;
    r->ticks++;
    switch (r->state) {
    case ST_STANDBY:
        if (r->ticks % 4 == 1 && !r->lease_in_flight && r->units == NULL) {
            r->lease_in_flight = true;
            sb_pg_req_init(&r->lease_req, "SELECT pg_try_advisory_lock(" SB_PJ_LEASE_LOCK ")", 0, NULL,
                           on_lease, r);
            sb_pg_submit(r->lease, &r->lease_req);
        }
        break;
    case ST_RESTARTING:
        if (r->units == NULL && !r->reconciling && !r->loading)
            activate(r);
        break;
    case ST_ACTIVE:
        /* A query now and then notices a dead lease connection even when nothing else uses it. */
        if (r->ticks % 4 == 0 && !r->lease_in_flight) {
            r->lease_in_flight = true;
            sb_pg_req_init(&r->lease_req, "SELECT 1", 0, NULL, on_heartbeat, r);
            sb_pg_submit(r->lease, &r->lease_req);
        }
        if (r->ticks % 8 == 0)
            reconcile(r, false);
        for (pj_unit_t *u = r->units; u != NULL; u = u->next) {
            sb__pj_unit_kick(u, false);
            sb__pj_runner_committed(r, u);
        }
        sb__pj_runner_publish_metrics(r);
        break;
    default:
        break;
    }
}

/* ---- lifecycle ------------------------------------------------------------------------------- */

sb_projections_t *sb_projections_new(const sb_projections_options_t *o)
{
    pj_runner_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->conninfo = strdup(o->conninfo);
    r->dir = strdup(o->dir);
    r->partitions = o->partitions > 0 ? o->partitions : DEFAULT_PARTITIONS;
    if (r->partitions > SB_PJ_MAX_LANES)
        r->partitions = SB_PJ_MAX_LANES;
    r->max_batch = o->max_batch > 0 ? o->max_batch : DEFAULT_MAX_BATCH;
    r->linger_ms = linger_of(o->linger_ms);
    if (r->conninfo == NULL || r->dir == NULL || uv_mutex_init(&r->mlock) != 0) {
        free(r->conninfo);
        free(r->dir);
        free(r);
        return NULL;
    }
    atomic_init(&r->active, false);
    atomic_init(&r->batches, 0);
    atomic_init(&r->events, 0);
    atomic_init(&r->lingered, 0);
    atomic_init(&r->lingered_ms, 0);
    atomic_init(&r->apply_ns, 0);
    atomic_init(&r->lane_wait_ns, 0);
    atomic_init(&r->ahead, 0);
    r->state = ST_NEW;
    char host[64] = "?";
    gethostname(host, sizeof(host) - 1);
    snprintf(r->app_name, sizeof(r->app_name), "switchboard projections pid=%d host=%.40s", (int)getpid(),
             host);
    r->app_name_values[0] = r->app_name;
    return r;
}

int sb_projections_start(sb_projections_t *p, sb_loop_t *loop, sb_follower_t *f)
{
    pj_runner_t *r = p;
    r->loop = loop;
    r->f = f;
    r->lease = sb_pg_open(&loop->uv, r->conninfo, "projections-lease");
    r->ctl = sb_pg_open(&loop->uv, r->conninfo, "projections-control");
    if (r->lease == NULL || r->ctl == NULL) {
        if (r->lease)
            sb_pg_close(r->lease, NULL, NULL);
        if (r->ctl)
            sb_pg_close(r->ctl, NULL, NULL);
        r->lease = r->ctl = NULL;
        return SB_ENOMEM;
    }
    sb_pg_set_state_cb(r->lease, on_lease_state, r);
    sb_pg_listen(r->lease, SB_PJ_NOTIFY_CHANNEL, on_notify, r);
    uv_timer_init(&loop->uv, &r->tick);
    r->tick.data = r;
    r->state = ST_STANDBY;
    /* The first attempt at once, then every tick. */
    uv_timer_start(&r->tick, on_tick, 0, TICK_MS);
    return 0;
}

static void maybe_stopped(pj_runner_t *r)
{
    if (r->state != ST_STOPPING || r->closing_parts > 0 || r->units != NULL || r->loading || r->reconciling)
        return;
    r->state = ST_STOPPED;
    if (r->on_stopped != NULL)
        r->on_stopped(r->stopped_data);
}

static void on_part_closed(void *data)
{
    pj_runner_t *r = data;
    r->closing_parts--;
    maybe_stopped(r);
}

static void on_tick_closed(uv_handle_t *h)
{
    on_part_closed(h->data);
}

void sb_projections_stop(sb_projections_t *p, void (*on_stopped)(void *data), void *data)
{
    pj_runner_t *r = p;
    r->on_stopped = on_stopped;
    r->stopped_data = data;
    if (r->state == ST_NEW || r->state == ST_STOPPED || r->state == ST_STOPPING) {
        if (r->state != ST_STOPPING) {
            r->state = ST_STOPPED;
            if (on_stopped != NULL)
                on_stopped(data);
        }
        return;
    }
    atomic_store(&r->active, false);
    sb__pj_runner_restart_all(r, ST_STOPPING, NULL);
    r->closing_parts = 3;
    uv_timer_stop(&r->tick);
    uv_close((uv_handle_t *)&r->tick, on_tick_closed);
    sb_pg_close(r->lease, on_part_closed, r);
    sb_pg_close(r->ctl, on_part_closed, r);
}

void sb_projections_free(sb_projections_t *p)
{
    pj_runner_t *r = p;
    if (r == NULL)
        return;
    free_rows(r);
    sb_pj_defs_free(r->defs, r->ndefs);
    free(r->metrics);
    uv_mutex_destroy(&r->mlock);
    free(r->conninfo);
    free(r->dir);
    free(r);
}
