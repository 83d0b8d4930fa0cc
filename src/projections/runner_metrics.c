/* The runner's figures: copied on the runner's loop, read from any thread (/metrics, the API). */
#include "projections/runner_int.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- metrics --------------------------------------------------------------------------------- */

static int cmp_metric(const void *a, const void *b)
{
    return strcmp(((const metric_t *)a)->m.name, ((const metric_t *)b)->m.name);
}

void sb__pj_runner_publish_metrics(pj_runner_t *r)
{
    int n = 0;
    for (pj_member_t *m = r->members; m != NULL; m = m->next)
        n += !m->build;
    metric_t *ms = calloc((size_t)(n > 0 ? n : 1), sizeof(*ms));
    if (ms == NULL)
        abort();
    int64_t now = sb_clock_now_us();
    int64_t head = sb_follower_head(r->f);
    int k = 0;
    for (pj_member_t *m = r->members; m != NULL; m = m->next) {
        if (m->build)
            continue;
        metric_t *x = &ms[k++];
        snprintf(x->m.name, sizeof(x->m.name), "%s", m->name);
        pj_unit_t *u = m->unit;
        x->m.checkpoint = u != NULL ? sb__pj_unit_position(u) : m->start_at;
        x->m.failing = m->error != NULL;
        if (u != NULL) {
            if (head >= 0 && x->m.checkpoint >= head)
                u->caught_up_us = now;
            x->complete_us = u->committed_us > u->caught_up_us ? u->committed_us : u->caught_up_us;
        }
        if (x->complete_us == 0)
            x->complete_us = m->start_applied_us > 0 ? m->start_applied_us : r->activated_us;
        pj_member_t *bm = sb__pj_runner_find_member(r, m->name, true);
        if (bm != NULL) {
            x->m.building = true;
            x->m.build_position = bm->unit != NULL ? sb__pj_unit_position(bm->unit) : bm->start_at;
            x->m.failing |= bm->error != NULL;
        }
    }
    qsort(ms, (size_t)k, sizeof(*ms), cmp_metric);
    uv_mutex_lock(&r->mlock);
    free(r->metrics);
    r->metrics = ms;
    r->nmetrics = k;
    uv_mutex_unlock(&r->mlock);
}

int sb_projections_metrics(const sb_projections_t *p, sb_projection_metric_t *out, int cap)
{
    pj_runner_t *r = (pj_runner_t *)p;
    if (r->f == NULL)
        return 0;
    int64_t head = sb_follower_head(r->f);
    int64_t now = sb_clock_now_us();
    uv_mutex_lock(&r->mlock);
    int n = atomic_load(&r->active) ? r->nmetrics : 0;
    for (int i = 0; i < n && i < cap; i++) {
        out[i] = r->metrics[i].m;
        int64_t lag = head > out[i].checkpoint ? head - out[i].checkpoint : 0;
        out[i].lag_positions = lag;
        int64_t behind = now - r->metrics[i].complete_us;
        out[i].lag_seconds = lag > 0 && behind > 0 ? (double)behind / 1e6 : 0.0;
    }
    uv_mutex_unlock(&r->mlock);
    return n;
}

void sb_projections_metrics_text(const sb_projections_t *p, sb_buf_t *out)
{
    sb_projection_metric_t m[128];
    int n = sb_projections_metrics(p, m, 128);
    if (n > 128)
        n = 128;
    static const struct {
        const char *name, *help;
    } series[] = {
        {"switchboard_projection_checkpoint", "Position up to which every event is applied."},
        {"switchboard_projection_lag_events", "Events in the log after the checkpoint."},
        {"switchboard_projection_lag_seconds",
         "Seconds since the read model was last complete (0 when caught up)."},
        {"switchboard_projection_failing", "1 while the projection's handlers fail and are retried."},
        {"switchboard_projection_rebuilding", "1 while a rebuild of the projection is under way."},
    };
    for (size_t k = 0; k < sizeof(series) / sizeof(series[0]); k++) {
        sb_buf_printf(out, "# HELP %s %s\n# TYPE %s gauge\n", series[k].name, series[k].help, series[k].name);
        for (int i = 0; i < n; i++) {
            sb_buf_printf(out, "%s{projection=\"%s\"} ", series[k].name, m[i].name);
            switch (k) {
            case 0:
                sb_buf_printf(out, "%" PRId64 "\n", m[i].checkpoint);
                break;
            case 1:
                sb_buf_printf(out, "%" PRId64 "\n", m[i].lag_positions);
                break;
            case 2:
                sb_buf_printf(out, "%.3f\n", m[i].lag_seconds);
                break;
            case 3:
                sb_buf_printf(out, "%d\n", m[i].failing ? 1 : 0);
                break;
            default:
                sb_buf_printf(out, "%d\n", m[i].building ? 1 : 0);
                break;
            }
        }
    }
    sb_buf_printf(out,
                  "# HELP switchboard_projections_active 1 in the process that holds the projections lease.\n"
                  "# TYPE switchboard_projections_active gauge\nswitchboard_projections_active %d\n",
                  sb_projections_is_active(p) ? 1 : 0);
    sb_projections_stats_t st;
    sb_projections_stats(p, &st);
    sb_buf_printf(
        out,
        "# HELP switchboard_projections_batches_total Batches of events the projections committed.\n"
        "# TYPE switchboard_projections_batches_total counter\nswitchboard_projections_batches_total "
        "%" PRIu64 "\n"
        "# HELP switchboard_projections_events_applied_total Events in those batches.\n"
        "# TYPE switchboard_projections_events_applied_total counter\n"
        "switchboard_projections_events_applied_total %" PRIu64 "\n"
        "# HELP switchboard_projections_lingered_batches_total Batches that waited for more events "
        "(SWITCHBOARD_PROJECTIONS_LINGER_MS).\n"
        "# TYPE switchboard_projections_lingered_batches_total counter\n"
        "switchboard_projections_lingered_batches_total %" PRIu64 "\n"
        "# HELP switchboard_projections_linger_seconds_total Time those batches waited.\n"
        "# TYPE switchboard_projections_linger_seconds_total counter\n"
        "switchboard_projections_linger_seconds_total %.3f\n"
        "# HELP switchboard_projections_apply_seconds_total Time some lane of a unit was applying "
        "a batch.\n"
        "# TYPE switchboard_projections_apply_seconds_total counter\n"
        "switchboard_projections_apply_seconds_total %.3f\n"
        "# HELP switchboard_projections_lane_wait_seconds_total Of that, time another lane of the "
        "unit was idle.\n"
        "# TYPE switchboard_projections_lane_wait_seconds_total counter\n"
        "switchboard_projections_lane_wait_seconds_total %.3f\n"
        "# HELP switchboard_projections_lane_ahead_batches_total Batches a lane started before "
        "another lane of its unit had committed the one before.\n"
        "# TYPE switchboard_projections_lane_ahead_batches_total counter\n"
        "switchboard_projections_lane_ahead_batches_total %" PRIu64 "\n"
        "# HELP switchboard_projections_linger_seconds The longest a live batch waits for more events.\n"
        "# TYPE switchboard_projections_linger_seconds gauge\nswitchboard_projections_linger_seconds "
        "%.3f\n",
        st.batches, st.events, st.lingered, (double)st.linger_ms / 1000.0, (double)st.apply_us / 1e6,
        (double)st.lane_wait_us / 1e6, st.lanes_ahead, (double)st.linger_setting_ms / 1000.0);
}

void sb_projections_stats(const sb_projections_t *p, sb_projections_stats_t *out)
{
    pj_runner_t *r = (pj_runner_t *)p;
    out->batches = atomic_load(&r->batches);
    out->events = atomic_load(&r->events);
    out->lingered = atomic_load(&r->lingered);
    out->linger_ms = atomic_load(&r->lingered_ms);
    out->linger_setting_ms = (int)r->linger_ms;
    out->apply_us = atomic_load(&r->apply_ns) / 1000;
    out->lane_wait_us = atomic_load(&r->lane_wait_ns) / 1000;
    out->lanes_ahead = atomic_load(&r->ahead);
}

bool sb_projections_is_active(const sb_projections_t *p)
{
    return atomic_load(&((pj_runner_t *)p)->active);
}
