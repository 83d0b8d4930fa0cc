/* The messaging service: per-loop parts, start and stop.  See messaging.h. */
#include "reactors/messaging.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "reactors/messaging_int.h"

void sb_messaging_options_init(sb_messaging_options_t *o, const sb_config_t *cfg)
{
    memset(o, 0, sizeof(*o));
    o->cfg = cfg;
    o->reactors = true;
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
    if (loop->index == 0)
        sb__inval_stop(ml);
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
    if (loop->index == 0)
        sb__inval_start(ml);
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
