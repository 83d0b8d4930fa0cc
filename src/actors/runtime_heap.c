/* The scheduled-command heap: a binary min-heap ordered by (at_us, seq).  One per loop, driving
 * one uv_timer set for its earliest entry (runtime.c). */
#include "actors/runtime_int.h"
#include "core/error.h"

#include <stdlib.h>

void sb__heap_init(sb__heap_t *h)
{
    h->items = NULL;
    h->n = 0;
    h->cap = 0;
    h->next_seq = 0;
}

void sb__heap_free(sb__heap_t *h)
{
    free(h->items);
    h->items = NULL;
    h->n = h->cap = 0;
}

static bool before(const sb__timer_t *a, const sb__timer_t *b)
{
    return a->at_us < b->at_us || (a->at_us == b->at_us && a->seq < b->seq);
}

int sb__heap_push(sb__heap_t *h, int64_t at_us, sb__msg_t *msg)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 16;
        sb__timer_t *items = realloc(h->items, cap * sizeof(*items));
        if (items == NULL)
            return SB_ENOMEM;
        h->items = items;
        h->cap = cap;
    }
    sb__timer_t t = {.at_us = at_us, .seq = h->next_seq++, .msg = msg};
    size_t i = h->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(&t, &h->items[parent]))
            break;
        h->items[i] = h->items[parent];
        i = parent;
    }
    h->items[i] = t;
    return 0;
}

const sb__timer_t *sb__heap_top(const sb__heap_t *h)
{
    return h->n ? &h->items[0] : NULL;
}

sb__msg_t *sb__heap_pop(sb__heap_t *h)
{
    if (h->n == 0)
        return NULL;
    sb__msg_t *msg = h->items[0].msg;
    sb__timer_t last = h->items[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && before(&h->items[c + 1], &h->items[c]))
            c++;
        if (!before(&h->items[c], &last))
            break;
        h->items[i] = h->items[c];
        i = c;
    }
    if (h->n > 0)
        h->items[i] = last;
    return msg;
}
