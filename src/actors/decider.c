/* The decider contract's shared pieces: event lists, rejections and the kind registry. */
#include "actors/decider.h"
#include "actors/kinds.h"
#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int sb_devents_add(sb_devents_t *list, const char *type, json_t *data)
{
    if (data == NULL || list->n >= SB_MAX_EVENTS_PER_COMMAND) {
        json_decref(data);
        return SB_ENOMEM;
    }
    sb_devent_t *ev = &list->items[list->n++];
    ev->type = type;
    ev->data = data;
    ev->version = 0;
    ev->recorded_at_us = 0;
    return 0;
}

void sb_devents_clear(sb_devents_t *list)
{
    for (int i = 0; i < list->n; i++) {
        json_decref(list->items[i].data);
        list->items[i].data = NULL;
    }
    list->n = 0;
}

int sb_reject(sb_derror_t *err, int status, const char *code, const char *field, const char *fmt, ...)
{
    if (err != NULL) {
        err->status = status;
        snprintf(err->code, sizeof err->code, "%s", code ? code : "");
        snprintf(err->field, sizeof err->field, "%s", field ? field : "");
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return SB_EREJECTED;
}

static const sb_kind_t *const all_kinds[] = {
    &sb_kind_workspace, &sb_kind_user, &sb_kind_contact, &sb_kind_call, &sb_kind_claim, &sb_kind_presence,
};

const sb_kind_t *sb_kind_find(const char *category)
{
    if (category == NULL)
        return NULL;
    for (size_t i = 0; i < sizeof all_kinds / sizeof all_kinds[0]; i++)
        if (strcmp(all_kinds[i]->category, category) == 0)
            return all_kinds[i];
    return NULL;
}
