/* The messaging service: per-loop parts, start and stop.  See messaging.h. */
#include "reactors/messaging.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "reactors/autoreply.h"
#include "reactors/calls.h"
#include "reactors/lease.h"
#include "reactors/messaging_int.h"
#include "reactors/outbox.h"
#include "reactors/scheduler.h"

static uint64_t env_u64(const char *name, uint64_t dflt)
{
    const char *v = getenv(name);
    char *end;
    if (v == NULL || v[0] == '\0')
        return dflt;
    unsigned long long n = strtoull(v, &end, 10);
    return *end == '\0' ? (uint64_t)n : dflt;
}

void sb_messaging_options_init(sb_messaging_options_t *o, const sb_config_t *cfg)
{
    memset(o, 0, sizeof(*o));
    o->cfg = cfg;
    o->reactors = true;
    o->reconcile_after_ms = env_u64("SWITCHBOARD_OUTBOX_RECONCILE_MS", 0);
    o->retry.base_ms = env_u64("SWITCHBOARD_OUTBOX_RETRY_BASE_MS", 0);
    o->retry.max_attempts = (int)env_u64("SWITCHBOARD_OUTBOX_ATTEMPTS", 0);
}

/* ---- the reactors, under the lease ------------------------------------------------------------- */

static void stop_reactors(sb__msg_loop_t *ml)
{
    sb_outbox_stop(ml->outbox);
    sb_scheduler_stop(ml->scheduler);
    sb_autoreply_stop(ml->autoreply);
    sb_calls_stop(ml->calls);
    ml->calls = NULL;
    ml->outbox = NULL;
    ml->scheduler = NULL;
    ml->autoreply = NULL;
}

static void on_lease(sb_lease_t *lease, bool held, void *data)
{
    sb__msg_loop_t *ml = data;
    if (!held) {
        sb_log_warn("messaging", "the reactors stop: the lease is lost");
        stop_reactors(ml);
        return;
    }
    sb_outbox_options_t oo = {.retry = ml->m->opts.retry,
                              .reconcile_after_ms = ml->m->opts.reconcile_after_ms};
    int rc = sb_outbox_start(&ml->outbox, &oo);
    if (rc == 0)
        rc = sb_scheduler_start(&ml->scheduler);
    if (rc == 0)
        rc = sb_autoreply_start(&ml->autoreply);
    if (rc == 0)
        rc = sb_calls_start(&ml->calls);
    if (rc != 0) {
        sb_log_error("messaging", "the reactors cannot start: %s", sb_strerror(rc));
        stop_reactors(ml);
        return;
    }
    sb_log_info("messaging", "the outbox, the scheduler, auto-replies and call control run in this process");
}

int sb_messaging_new(sb_messaging_t **out, const sb_messaging_options_t *o)
{
    *out = NULL;
    if (o->cfg == NULL || o->loops == NULL || o->loops->n <= 0 || o->follower == NULL || o->secrets == NULL)
        return SB_EINVAL;
    sb_messaging_t *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return SB_ENOMEM;
    m->opts = *o;
    if (m->opts.retry.max_attempts == 0)
        m->opts.retry.max_attempts = 6;
    m->conninfo = o->conninfo != NULL ? strdup(o->conninfo) : NULL;
    m->opts.conninfo = m->conninfo;
    m->nloops = o->loops->n;
    m->loops = calloc((size_t)m->nloops, sizeof(*m->loops));
    if (m->loops == NULL || (o->conninfo != NULL && m->conninfo == NULL)) {
        sb_messaging_free(m);
        return SB_ENOMEM;
    }
    *out = m;
    return 0;
}

static void on_loop_stop(sb_loop_t *loop, void *data)
{
    sb__msg_loop_t *ml = data;
    if (loop->index == 0) {
        stop_reactors(ml);
        sb_lease_stop(ml->lease, NULL, NULL);
        ml->lease = NULL;
        sb__inval_stop(ml);
    }
    sb__wsconf_loop_stop(ml);
}

int sb_messaging_loop_start(sb_messaging_t *m, sb_loop_t *loop)
{
    if (loop->index < 0 || loop->index >= m->nloops || m->loops[loop->index] != NULL)
        return SB_EINVAL;
    sb__msg_loop_t *ml = calloc(1, sizeof(*ml));
    if (ml == NULL)
        return SB_ENOMEM;
    ml->m = m;
    ml->loop = loop;
    sb__wsconf_loop_init(ml);
    if (ml->routes == NULL) {
        free(ml);
        return SB_ENOMEM;
    }
    int rc = sb_loop_on_stop(loop, on_loop_stop, ml);
    if (rc != 0) {
        sb__wsconf_loop_free(ml);
        free(ml);
        return rc;
    }
    m->loops[loop->index] = ml;
    loop->messaging = ml;
    if (loop->index == 0) {
        sb__inval_start(ml);
        if (m->opts.reactors && m->conninfo != NULL) {
            ml->lease = sb_lease_start(loop, m->conninfo, SB_MESSAGING_LEASE_KEY, "switchboard-messaging",
                                       1000, on_lease, ml);
            if (ml->lease == NULL)
                sb_log_error("messaging", "out of memory: the reactors do not run in this process");
        }
    }
    return 0;
}

void sb_messaging_free(sb_messaging_t *m)
{
    if (m == NULL)
        return;
    for (int i = 0; m->loops != NULL && i < m->nloops; i++) {
        sb__msg_loop_t *ml = m->loops[i];
        if (ml == NULL)
            continue;
        sb__wsconf_loop_free(ml); /* the loops themselves are gone by now */
        free(ml);
    }
    free(m->loops);
    free(m->conninfo);
    free(m);
}

sb_messaging_t *sb_messaging_current(void)
{
    sb__msg_loop_t *ml = sb__msg_loop();
    return ml != NULL ? ml->m : NULL;
}

const sb_config_t *sb_messaging_config(const sb_messaging_t *m)
{
    return m->opts.cfg;
}

sb_secrets_t *sb_messaging_secrets(const sb_messaging_t *m)
{
    return m->opts.secrets;
}

sb_loops_t *sb_messaging_loops(const sb_messaging_t *m)
{
    return m->opts.loops;
}
