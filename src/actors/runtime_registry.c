/* A loop's actors by stream name: open addressing with linear probing and backward-shift deletion
 * (no tombstones, so lookups stay short however many actors come and go).
 *
 * The stream hash also picks the owning loop (hash % loops), so on one loop the hash's low bits are
 * all alike; slots are chosen from the high bits of a multiplicative remix instead. */
#include "actors/runtime_int.h"
#include "core/error.h"

#include <stdlib.h>
#include <string.h>

#define MIN_CAP 64

static size_t slot_of(uint64_t hash, size_t cap)
{
    /* Fibonacci hashing: the top log2(cap) bits of hash * 2^64/phi. */
    int bits = __builtin_ctzll((unsigned long long)cap);
    return (size_t)((hash * 0x9E3779B97F4A7C15ull) >> (64 - bits));
}

void sb__registry_init(sb__registry_t *r)
{
    r->slots = NULL;
    r->cap = 0;
    r->n = 0;
}

void sb__registry_free(sb__registry_t *r)
{
    free(r->slots);
    sb__registry_init(r);
}

sb__actor_t *sb__registry_find(const sb__registry_t *r, uint64_t hash, const char *stream, size_t len)
{
    if (r->n == 0)
        return NULL;
    size_t mask = r->cap - 1;
    for (size_t i = slot_of(hash, r->cap);; i = (i + 1) & mask) {
        const sb__reg_slot_t *s = &r->slots[i];
        if (s->actor == NULL)
            return NULL;
        if (s->hash == hash && s->actor->stream_len == len && memcmp(s->actor->stream, stream, len) == 0)
            return s->actor;
    }
}

static void place(sb__reg_slot_t *slots, size_t cap, uint64_t hash, sb__actor_t *a)
{
    size_t mask = cap - 1;
    size_t i = slot_of(hash, cap);
    while (slots[i].actor != NULL)
        i = (i + 1) & mask;
    slots[i].hash = hash;
    slots[i].actor = a;
}

static int resize(sb__registry_t *r, size_t cap)
{
    sb__reg_slot_t *slots = calloc(cap, sizeof(*slots));
    if (slots == NULL)
        return SB_ENOMEM;
    for (size_t i = 0; i < r->cap; i++)
        if (r->slots[i].actor != NULL)
            place(slots, cap, r->slots[i].hash, r->slots[i].actor);
    free(r->slots);
    r->slots = slots;
    r->cap = cap;
    return 0;
}

int sb__registry_add(sb__registry_t *r, sb__actor_t *a)
{
    /* Load factor at most 3/4: linear probing degrades quickly beyond that. */
    if ((r->n + 1) * 4 > r->cap * 3) {
        int rc = resize(r, r->cap ? r->cap * 2 : MIN_CAP);
        if (rc != 0)
            return rc;
    }
    place(r->slots, r->cap, a->hash, a);
    r->n++;
    return 0;
}

void sb__registry_remove(sb__registry_t *r, sb__actor_t *a)
{
    size_t mask = r->cap - 1;
    size_t i = slot_of(a->hash, r->cap);
    while (r->slots[i].actor != a) {
        /* a must be present: reaching an empty slot would mean a corrupt table */
        if (r->slots[i].actor == NULL)
            abort();
        i = (i + 1) & mask;
    }
    /* Backward shift: pull later members of the probe run into the hole when their home slot lies
     * at or before it (cyclically), so every remaining entry stays reachable from its home. */
    size_t hole = i;
    for (size_t j = (i + 1) & mask; r->slots[j].actor != NULL; j = (j + 1) & mask) {
        size_t home = slot_of(r->slots[j].hash, r->cap);
        size_t dist_j = (j - home) & mask;    /* how far j is from its home */
        size_t dist_hole = (j - hole) & mask; /* how far j is from the hole */
        if (dist_hole <= dist_j) {
            r->slots[hole] = r->slots[j];
            hole = j;
        }
    }
    r->slots[hole].actor = NULL;
    r->slots[hole].hash = 0;
    r->n--;
    /* Shrink when mostly empty so a burst of activations does not pin memory forever. */
    if (r->cap > MIN_CAP && r->n * 8 < r->cap)
        (void)resize(r, r->cap / 2); /* on failure the bigger table simply stays */
}

void sb__registry_each(const sb__registry_t *r, void (*fn)(sb__actor_t *a, void *arg), void *arg)
{
    for (size_t i = 0; i < r->cap; i++)
        if (r->slots[i].actor != NULL)
            fn(r->slots[i].actor, arg);
}
