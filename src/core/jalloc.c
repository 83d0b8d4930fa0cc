/* jansson's allocator: per-thread free lists in front of malloc (see jalloc.h). */
#include "core/jalloc.h"

#include <jansson.h>
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define NCLASS (SB_JALLOC_MAX_SIZE / 16 + 1) /* class c holds blocks of at least 16 * c bytes */

typedef struct block_s {
    struct block_s *next;
} block_t;

typedef struct {
    block_t *head[NCLASS];
    uint32_t n[NCLASS];
    bool registered; /* the thread's key is set, so its lists are released when it ends */
} cache_t;

static _Thread_local cache_t cache;
static pthread_key_t key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static bool key_ok;

static void release(void *arg)
{
    cache_t *c = arg;
    for (int i = 0; i < NCLASS; i++) {
        while (c->head[i] != NULL) {
            block_t *b = c->head[i];
            c->head[i] = b->next;
            UNPOISON(b, (size_t)i * 16);
            free(b);
        }
        c->n[i] = 0;
    }
    c->registered = false;
}

static void make_key(void)
{
    key_ok = pthread_key_create(&key, release) == 0;
}

void *sb_jalloc_malloc(size_t n)
{
    if (n > SB_JALLOC_MAX_SIZE)
        return malloc(n);
    size_t c = n == 0 ? 1 : (n + 15) >> 4;
    block_t *b = cache.head[c];
    if (b == NULL)
        return malloc(c << 4);
    cache.head[c] = b->next;
    cache.n[c]--;
    UNPOISON(b, c << 4);
    return b;
}

void sb_jalloc_free(void *p)
{
    if (p == NULL)
        return;
    /* The class from the block itself: malloc(16 * c) leaves at least 16 * c usable bytes (16 * c + 8
     * with glibc, exactly 16 * c under AddressSanitizer), and so does any block of a class's size or
     * more, whoever asked for it. */
    size_t c = malloc_usable_size(p) >> 4;
    if (c == 0 || c >= NCLASS || cache.n[c] >= SB_JALLOC_KEEP) {
        free(p);
        return;
    }
    if (!cache.registered) {
        pthread_once(&key_once, make_key);
        if (!key_ok || pthread_setspecific(key, &cache) != 0) {
            free(p); /* no way to release the lists at the thread's end: keep none */
            return;
        }
        cache.registered = true;
    }
    block_t *b = p;
    b->next = cache.head[c];
    cache.head[c] = b;
    cache.n[c]++;
    POISON((char *)p + sizeof(block_t), (c << 4) - sizeof(block_t));
}

size_t sb_jalloc_cached(void)
{
    size_t n = 0;
    for (int i = 0; i < NCLASS; i++)
        n += cache.n[i];
    return n;
}

void sb_jalloc_install(void)
{
    json_set_alloc_funcs(sb_jalloc_malloc, sb_jalloc_free);
}
