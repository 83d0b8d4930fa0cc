/* Keeping every loop's workspace configurations current: loop 0 follows the log's workspace events
 * (written by any process) and tells each loop which workspace, and which numbers, to forget.
 * Workspace events are rare (set-up, members, settings), so one task per event and loop is cheap. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "events/codec.h"
#include "reactors/messaging_int.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#define MAX_NUMBERS 16 /* a TwilioCleared lists every number: past this, forget all routes */

typedef struct {
    sb_task_t task;
    sb__msg_loop_t *ml;
    char ws[SB_UUID_STRLEN + 1];
    bool all_routes;
    int n;
    char numbers[MAX_NUMBERS][SB_PHONE_MAX];
} inval_t;

static void on_inval(sb_task_t *task)
{
    inval_t *iv = container_of(task, inval_t, task);
    const char *list[MAX_NUMBERS + 1];
    for (int i = 0; i < iv->n; i++)
        list[i] = iv->numbers[i];
    list[iv->n] = NULL;
    if (!iv->ml->stopping) {
        sb__wsconf_invalidate(iv->ml, iv->ws, list);
        if (iv->all_routes && iv->ml->routes != NULL)
            memset(iv->ml->routes, 0, sizeof(*iv->ml->routes) * SB__ROUTE_SLOTS);
    }
    free(iv);
}

/* The numbers an event names (PhoneNumberAdded/Removed/Assigned: "number"; TwilioCleared:
 * "numbers"), into iv. */
static void numbers_of(const sb_event_t *ev, inval_t *iv)
{
    bool one = strncmp(ev->type, "PhoneNumber", 11) == 0, many = strcmp(ev->type, "TwilioCleared") == 0;
    json_t *p = NULL;
    if ((!one && !many) || sb_codec_to_jansson(ev->payload, ev->payload_len, &p, NULL, 0) != 0)
        return;
    if (one) {
        const char *n = json_string_value(json_object_get(p, "number"));
        if (n != NULL && strlen(n) < SB_PHONE_MAX)
            strcpy(iv->numbers[iv->n++], n);
    } else {
        size_t i;
        const json_t *v;
        json_array_foreach(json_object_get(p, "numbers"), i, v)
        {
            const char *n = json_string_value(v);
            if (iv->n == MAX_NUMBERS) {
                iv->all_routes = true;
                break;
            }
            if (n != NULL && strlen(n) < SB_PHONE_MAX)
                strcpy(iv->numbers[iv->n++], n);
        }
    }
    json_decref(p);
}

static void on_events(sb_sub_t *s, const sb_event_t *events, int n, void *data)
{
    sb__msg_loop_t *ml = data;
    sb_messaging_t *m = ml->m;
    for (int i = 0; i < n; i++) {
        const sb_event_t *ev = &events[i];
        if (strncmp(ev->stream, "workspace-", 10) != 0 || strlen(ev->stream) != 10 + SB_UUID_STRLEN)
            continue;
        inval_t proto = {0};
        memcpy(proto.ws, ev->stream + 10, SB_UUID_STRLEN);
        numbers_of(ev, &proto);
        for (int k = 0; k < m->nloops; k++) {
            sb__msg_loop_t *target = m->loops[k];
            if (target == NULL)
                continue;
            inval_t *iv = malloc(sizeof(*iv));
            if (iv == NULL) {
                /* Cannot tell that loop: its entries expire with their TTL. */
                sb_log_error("messaging", "out of memory invalidating workspace %s", proto.ws);
                continue;
            }
            *iv = proto;
            iv->ml = target;
            iv->task.cb = on_inval;
            sb_loop_post(target->loop, &iv->task);
        }
    }
}

static bool subscribe(sb__msg_loop_t *ml)
{
    sb_messaging_t *m = ml->m;
    int64_t head = sb_follower_head(m->opts.follower);
    if (head < 0 || ml->loop->db == NULL)
        return false;
    static const char *const categories[] = {"workspace"};
    sb_log_filter_t filter = {.categories = categories, .ncategories = 1};
    ml->inval_sub = sb_follower_subscribe(m->opts.follower, ml->loop->db, head, &filter, on_events, ml);
    if (ml->inval_sub == NULL)
        return false;
    /* From here on no change goes unnoticed: entries read now may be kept. */
    atomic_store(&m->cache_live, true);
    return true;
}

static void on_timer(uv_timer_t *t)
{
    sb__msg_loop_t *ml = container_of(t, sb__msg_loop_t, inval_timer);
    if (ml->stopping || subscribe(ml))
        uv_timer_stop(t);
}

void sb__inval_start(sb__msg_loop_t *ml)
{
    if (subscribe(ml))
        return;
    uv_timer_init(&ml->loop->uv, &ml->inval_timer);
    ml->inval_timer_open = true;
    uv_timer_start(&ml->inval_timer, on_timer, 20, 20);
}

void sb__inval_stop(sb__msg_loop_t *ml)
{
    atomic_store(&ml->m->cache_live, false);
    if (ml->inval_sub != NULL) {
        sb_sub_close(ml->inval_sub);
        ml->inval_sub = NULL;
    }
    if (ml->inval_timer_open) {
        uv_timer_stop(&ml->inval_timer);
        uv_close((uv_handle_t *)&ml->inval_timer, NULL);
        ml->inval_timer_open = false;
    }
}
