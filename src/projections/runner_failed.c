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
    /* The lanes that committed are at flight_to; the others are where they were.  The unit splits
     * accordingly, and a projection whose handler failed goes on alone, after a backoff. */
    int n = u->nmembers, nok = 0, nlate = 0, nbad = 0;
    pj_member_t **ok = calloc((size_t)n + 1, sizeof(*ok)), **late = calloc((size_t)n + 1, sizeof(*late));
    pj_member_t **bad = calloc((size_t)u->nlanes + 1, sizeof(*bad));
    uint64_t *bad_delay = calloc((size_t)u->nlanes + 1, sizeof(*bad_delay));
    if (ok == NULL || late == NULL || bad == NULL || bad_delay == NULL)
        abort();
    bool transient = false;
    for (int i = 0; i < u->nlanes; i++) {
        pj_lane_t *l = u->lanes[i];
        pj_member_t *m = l->status != 0 && !is_transient(l->status, l->sqlstate)
                             ? blamed(l->members, l->nmembers, l->error)
                             : NULL;
        if (l->status != 0 && m == NULL) {
            transient = true;
            sb_log_warn("projections", "%.*s: a batch rolled back (%s%s%s); trying again",
                        (int)strlen(l->p_names) - 2, l->p_names + 1, l->sqlstate, l->sqlstate[0] ? ": " : "",
                        l->error ? l->error : "?");
        }
        if (m != NULL) {
            m->failures++;
            free(m->error);
            if ((m->error = strdup(l->error)) == NULL)
                abort();
            if (m->failures == 1 || m->failures % 20 == 0)
                sb_log_error("projections", "%s%s stalls at position %" PRId64 " (attempt %d): %s", m->name,
                             m->build ? " (rebuild)" : "", u->committed, m->failures, l->error);
            const char *p[2] = {m->name, l->error};
            sb__pj_runner_chore(r, "recording a projection error",
                                m->build ? "UPDATE projection_state SET build_error = $2 WHERE name = $1"
                                         : "UPDATE projection_state SET error = $2 WHERE name = $1",
                                2, p);
            uint64_t delay = RETRY_MIN_MS;
            for (int k = 1; k < m->failures && delay < RETRY_MAX_MS; k++)
                delay *= 2;
            bad_delay[nbad] = delay > RETRY_MAX_MS ? RETRY_MAX_MS : delay;
            bad[nbad++] = m;
        }
        for (int k = 0; k < l->nmembers; k++) {
            if (l->members[k] == m)
                continue;
            if (l->status == 0)
                ok[nok++] = l->members[k];
            else
                late[nlate++] = l->members[k];
        }
    }
    int64_t from = u->committed, to = u->flight_to;
    int64_t from_us = u->committed_us, to_us = u->fly->n > 0 ? u->fly->last_recorded_us : u->committed_us;
    bool build = u->build;
    sb__pj_unit_close(u);
    sb__pj_runner_unit_of(r, build, ok, nok, to, to_us, 0);
    sb__pj_runner_unit_of(r, build, late, nlate, from, from_us, transient ? RETRY_MIN_MS : 0);
    for (int i = 0; i < nbad; i++)
        sb__pj_runner_unit_of(r, build, &bad[i], 1, from, from_us, bad_delay[i]);
    free(ok);
    free(late);
    free(bad);
    free(bad_delay);
    sb__pj_runner_update_holds(r);
    sb__pj_runner_publish_metrics(r);
}
