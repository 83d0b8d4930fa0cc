/* DEV ONLY - NOT COMMITTED: stand-ins until other modules land. */
#include "actors/decider.h"
#include "core/error.h"
#include "db/pg.h"
#include "events/append.h"
#include "events/codec.h"
#include "events/read.h"
#include "events/stream.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sb_devents_add(sb_devents_t *l, const char *type, json_t *data)
{
    if (l->n >= SB_MAX_EVENTS_PER_COMMAND) {
        json_decref(data);
        return SB_ENOMEM;
    }
    l->items[l->n].type = type;
    l->items[l->n].data = data;
    l->items[l->n].version = 0;
    l->items[l->n].recorded_at_us = 0;
    l->n++;
    return 0;
}
void sb_devents_clear(sb_devents_t *l)
{
    for (int i = 0; i < l->n; i++)
        json_decref(l->items[i].data);
    l->n = 0;
}
int sb_reject(sb_derror_t *err, int status, const char *code, const char *field, const char *fmt, ...)
{
    err->status = status;
    snprintf(err->code, sizeof err->code, "%s", code);
    snprintf(err->field, sizeof err->field, "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return SB_EREJECTED;
}
const sb_kind_t *sb_kind_find(const char *c)
{
    (void)c;
    return NULL;
}
#include "http/serve.h"
int sb_cmd_serve(sb_config_t *cfg, int argc, char **argv)
{
    return 1;
}
