/* The loops' memory of senders: see senders.h. */
#include "reactors/senders.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t hash; /* of (workspace, number); compared first */
    uint32_t used; /* the table's clock when last stored or peeked; 0 = empty */
    char number[SB_PHONE_MAX];
    sb_uuid_t workspace;
    sb_uuid_t contact;
} entry_t;

struct sb__senders_s {
    size_t mask; /* nsets - 1 */
    uint32_t clock;
    entry_t *entries; /* nsets * SB__SENDERS_WAYS, set by set */
};

/* FNV-1a over the number and the workspace. */
static uint64_t key_hash(const sb_uuid_t *ws, const char *number)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *p = number; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    for (size_t i = 0; i < sizeof(ws->b); i++)
        h = (h ^ ws->b[i]) * 1099511628211ull;
    return h;
}

static entry_t *set_at(const sb__senders_t *t, uint64_t h)
{
    return &t->entries[(h & t->mask) * SB__SENDERS_WAYS];
}

static entry_t *find(const sb__senders_t *t, uint64_t h, const sb_uuid_t *ws, const char *number)
{
    entry_t *set = set_at(t, h);
    for (int i = 0; i < SB__SENDERS_WAYS; i++) {
        entry_t *e = &set[i];
        if (e->used != 0 && e->hash == h && strcmp(e->number, number) == 0 &&
            memcmp(&e->workspace, ws, sizeof(*ws)) == 0)
            return e;
    }
    return NULL;
}

/* The clock only orders entries within a set; on wrap-around every entry restarts at 1. */
static uint32_t tick(sb__senders_t *t)
{
    if (++t->clock == 0) {
        for (size_t i = 0; i < (t->mask + 1) * SB__SENDERS_WAYS; i++)
            if (t->entries[i].used != 0)
                t->entries[i].used = 1;
        t->clock = 2;
    }
    return t->clock;
}

sb__senders_t *sb__senders_new(size_t nsets)
{
    if (nsets == 0 || (nsets & (nsets - 1)) != 0)
        return NULL;
    sb__senders_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->entries = calloc(nsets * SB__SENDERS_WAYS, sizeof(entry_t));
    if (t->entries == NULL) {
        free(t);
        return NULL;
    }
    t->mask = nsets - 1;
    return t;
}

void sb__senders_free(sb__senders_t *t)
{
    if (t == NULL)
        return;
    free(t->entries);
    free(t);
}

void sb__senders_clear(sb__senders_t *t)
{
    memset(t->entries, 0, (t->mask + 1) * SB__SENDERS_WAYS * sizeof(entry_t));
    t->clock = 0;
}

bool sb__senders_peek(sb__senders_t *t, const sb_uuid_t *ws, const char *number, sb_uuid_t *contact)
{
    entry_t *e = find(t, key_hash(ws, number), ws, number);
    if (e == NULL)
        return false;
    e->used = tick(t);
    *contact = e->contact;
    return true;
}

void sb__senders_store(sb__senders_t *t, const sb_uuid_t *ws, const char *number, const sb_uuid_t *contact)
{
    size_t len = strlen(number);
    if (len == 0 || len >= SB_PHONE_MAX)
        return;
    uint64_t h = key_hash(ws, number);
    entry_t *e = find(t, h, ws, number);
    if (e == NULL) {
        /* An empty entry, else the least recently used. */
        entry_t *set = set_at(t, h);
        e = &set[0];
        for (int i = 0; i < SB__SENDERS_WAYS && e->used != 0; i++)
            if (set[i].used < e->used)
                e = &set[i];
        e->hash = h;
        memcpy(e->number, number, len + 1);
        e->workspace = *ws;
    }
    e->contact = *contact;
    e->used = tick(t);
}

void sb__senders_forget(sb__senders_t *t, const sb_uuid_t *ws, const char *number)
{
    entry_t *e = find(t, key_hash(ws, number), ws, number);
    if (e != NULL)
        memset(e, 0, sizeof(*e));
}

size_t sb__senders_set_of(const sb__senders_t *t, const sb_uuid_t *ws, const char *number)
{
    return (size_t)(key_hash(ws, number) & t->mask);
}
