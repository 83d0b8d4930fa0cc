/* What a failed batch means: a projection named by its error goes on alone after a backoff, a
 * transient failure is retried, anything else restarts every unit from the catalog. */
#include "projections/runner_int.h"
#include "core/error.h"
#include "core/log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- failures -------------------------------------------------------------------------------- */

/* The member a dispatcher error names ("projection NAME: ..."), if it is among ms. */
static pj_member_t *blamed(pj_member_t *const *ms, int count, const char *error)
{
    if (error == NULL || strncmp(error, "projection ", 11) != 0)
        return NULL;
    const char *name = error + 11;
    size_t n = strcspn(name, ":");
    for (int i = 0; i < count; i++)
        if (strlen(ms[i]->name) == n && memcmp(ms[i]->name, name, n) == 0)
            return ms[i];
    return NULL;
}

static bool is_transient(int status, const char *sqlstate)
{
    /* Not connected in time (nothing was sent), or a deadlock, a serialization failure, a lock or
     * statement timeout: the batch did not commit and can simply be tried again. */
    if (status == SB_EDBDOWN)
        return true;
    return status == SB_EDB && sqlstate != NULL &&
           (strncmp(sqlstate, "40", 2) == 0 || strcmp(sqlstate, "55P03") == 0 ||
            strcmp(sqlstate, "57014") == 0);
}

/* Members that go on together: a new unit at position, starting after delay_ms. */
typedef struct group_s {
    pj_member_t **ms;
    int n;
    int64_t position, applied_us;
    uint64_t delay_ms;
    bool alone; /* a projection whose handler failed */
} group_t;

/* Adds m to the group at (position, delay_ms), or to a new one; cap is the most members a group
 * can hold. */
static void group_add(group_t *g, int *ngroups, int cap, pj_member_t *m, int64_t position, int64_t applied_us,
                      uint64_t delay_ms)
{
    group_t *to = NULL;
    for (int i = 0; i < *ngroups && to == NULL; i++)
        if (!g[i].alone && g[i].position == position && g[i].delay_ms == delay_ms)
            to = &g[i];
    if (to == NULL) {
        to = &g[(*ngroups)++];
        if ((to->ms = calloc((size_t)cap + 1, sizeof(*to->ms))) == NULL)
            abort();
        to->position = position;
        to->applied_us = applied_us;
        to->delay_ms = delay_ms;
    }
    to->ms[to->n++] = m;
}

void sb__pj_runner_unit_failed(pj_runner_t *r, pj_unit_t *u)
{
    if (r->state != ST_ACTIVE)
        return;
    /* Anything but a failure that names its projection, or a transient one, and we cannot know
     * what committed: restart everything from the catalog. */
    for (int i = 0; i < u->nlanes; i++) {
        pj_lane_t *l = u->lanes[i];
        if (l->status == 0 || is_transient(l->status, l->sqlstate))
            continue;
        if (l->status == SB_ESHUTDOWN)
            return;
        bool named = l->status == SB_EDB && strcmp(l->sqlstate, SB_PJ_SQLSTATE_MOVED) != 0 &&
                     blamed(l->members, l->nmembers, l->error) != NULL;
        if (!named) {
            char why[600];
            snprintf(why, sizeof(why), "%s: %s", sb_strerror(l->status), l->error ? l->error : "no detail");
            sb__pj_runner_restart_all(r, ST_RESTARTING, why);
            return;
        }
    }
    /* Each lane is at its own checkpoint (lanes apply batches at their own pace, and a lane that
     * failed is where it was before the batch that failed).  The unit splits accordingly: the
     * members of lanes at the same position that did not fail go on together; those of a lane
     * that failed go on from its checkpoint, a projection whose handler failed alone, after a
     * backoff. */
    int n = u->nmembers, ngroups = 0;
    group_t *g = calloc((size_t)(n + u->nlanes) * 2 + 1, sizeof(*g));
    if (g == NULL)
        abort();
    for (int i = 0; i < u->nlanes; i++) {
        pj_lane_t *l = u->lanes[i];
        pj_member_t *m = l->status != 0 && !is_transient(l->status, l->sqlstate)
                             ? blamed(l->members, l->nmembers, l->error)
                             : NULL;
        bool transient = l->status != 0 && m == NULL;
        if (transient)
            sb_log_warn("projections", "%.*s: a batch rolled back (%s%s%s); trying again",
                        (int)strlen(l->p_names) - 2, l->p_names + 1, l->sqlstate, l->sqlstate[0] ? ": " : "",
                        l->error ? l->error : "?");
        if (m != NULL) {
            m->failures++;
            free(m->error);
            if ((m->error = strdup(l->error)) == NULL)
                abort();
            if (m->failures == 1 || m->failures % 20 == 0)
                sb_log_error("projections", "%s%s stalls at position %" PRId64 " (attempt %d): %s", m->name,
                             m->build ? " (rebuild)" : "", l->committed, m->failures, l->error);
            const char *p[2] = {m->name, l->error};
            sb__pj_runner_chore(r, "recording a projection error",
                                m->build ? "UPDATE projection_state SET build_error = $2 WHERE name = $1"
                                         : "UPDATE projection_state SET error = $2 WHERE name = $1",
                                2, p);
            uint64_t delay = RETRY_MIN_MS;
            for (int k = 1; k < m->failures && delay < RETRY_MAX_MS; k++)
                delay *= 2;
            group_t *b = &g[ngroups++];
            b->ms = calloc(1, sizeof(*b->ms));
            if (b->ms == NULL)
                abort();
            b->ms[b->n++] = m;
            b->position = l->committed;
            b->applied_us = l->committed_us;
            b->delay_ms = delay > RETRY_MAX_MS ? RETRY_MAX_MS : delay;
            b->alone = true;
        }
        for (int k = 0; k < l->nmembers; k++)
            if (l->members[k] != m)
                group_add(g, &ngroups, n, l->members[k], l->committed, l->committed_us,
                          transient ? RETRY_MIN_MS : 0);
    }
    bool build = u->build;
    sb__pj_unit_close(u);
    for (int i = 0; i < ngroups; i++) {
        sb__pj_runner_unit_of(r, build, g[i].ms, g[i].n, g[i].position, g[i].applied_us, g[i].delay_ms);
        free(g[i].ms);
    }
    free(g);
    sb__pj_runner_update_holds(r);
    sb__pj_runner_publish_metrics(r);
}
