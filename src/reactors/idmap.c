/* A small id -> pointer map.  See idmap.h. */
#include "reactors/idmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h ^ (h >> 29);
}

static size_t find(const sb_idmap_t *m, const char *key)
{
    size_t mask = m->cap - 1;
    for (size_t i = hash(key) & mask;; i = (i + 1) & mask)
        if (m->slots[i].key == NULL || strcmp(m->slots[i].key, key) == 0)
            return i;
}

void *sb_idmap_get(const sb_idmap_t *m, const char *key)
{
    if (m->n == 0)
        return NULL;
    size_t i = find(m, key);
    return m->slots[i].key != NULL ? m->slots[i].value : NULL;
}

static int grow(sb_idmap_t *m)
{
    size_t cap = m->cap ? m->cap * 2 : 64;
    sb_idmap_entry_t *old = m->slots;
    size_t oldcap = m->cap;
    m->slots = calloc(cap, sizeof(*m->slots));
    if (m->slots == NULL) {
        m->slots = old;
        return SB_ENOMEM;
    }
    m->cap = cap;
    for (size_t i = 0; i < oldcap; i++)
        if (old[i].key != NULL)
            m->slots[find(m, old[i].key)] = old[i];
    free(old);
    return 0;
}

int sb_idmap_put(sb_idmap_t *m, const char *key, void *value)
{
    if ((m->n + 1) * 4 > m->cap * 3 && grow(m) != 0) /* at most three quarters full */
        return SB_ENOMEM;
    size_t i = find(m, key);
    if (m->slots[i].key == NULL)
        m->n++;
    m->slots[i].key = key;
    m->slots[i].value = value;
    return 0;
}

void *sb_idmap_del(sb_idmap_t *m, const char *key)
{
    if (m->n == 0)
        return NULL;
    size_t mask = m->cap - 1, i = find(m, key);
    if (m->slots[i].key == NULL)
        return NULL;
    void *v = m->slots[i].value;
    m->slots[i].key = NULL;
    m->n--;
    /* Backward shift: move later entries of the run into the hole when their home allows it. */
    for (size_t j = (i + 1) & mask; m->slots[j].key != NULL; j = (j + 1) & mask) {
        size_t home = hash(m->slots[j].key) & mask;
        if (((j - home) & mask) >= ((j - i) & mask)) {
            m->slots[i] = m->slots[j];
            m->slots[j].key = NULL;
            i = j;
        }
    }
    return v;
}

void sb_idmap_free(sb_idmap_t *m)
{
    free(m->slots);
    m->slots = NULL;
    m->cap = m->n = 0;
}
