/* jansson's allocator (src/core/jalloc.c): blocks come back from the thread's lists by size class,
 * each list keeps at most SB_JALLOC_KEEP, blocks from plain malloc may come through and blocks it
 * gave out may go to plain free, a thread's lists are released when it ends (LeakSanitizer, which
 * the tests run under, reports them otherwise), and jansson works through it. */
#include "core/jalloc.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sbtest.h"

static void test_reuse_by_class(void)
{
    size_t before = sb_jalloc_cached();
    for (size_t n = 1; n <= SB_JALLOC_MAX_SIZE + 100; n += 7) {
        char *p = sb_jalloc_malloc(n);
        if (!CHECK(p != NULL))
            return;
        memset(p, 0xab, n); /* the whole size is usable */
        sb_jalloc_free(p);
        char *q = sb_jalloc_malloc(n);
        /* Small blocks come back from the list; large ones went to free(). */
        if (n <= SB_JALLOC_MAX_SIZE)
            CHECK(q == p);
        memset(q, 0xcd, n);
        sb_jalloc_free(q);
    }
    CHECK(sb_jalloc_cached() > before);
    /* Sizes of one class share blocks: 33..48 bytes. */
    char *p = sb_jalloc_malloc(40);
    sb_jalloc_free(p);
    CHECK(sb_jalloc_malloc(48) == p);
    sb_jalloc_free(p);
    CHECK(sb_jalloc_malloc(33) == p);
    sb_jalloc_free(p);
}

static void test_bounded(void)
{
    enum { N = SB_JALLOC_KEEP + 50 };
    static void *blocks[N];
    for (int i = 0; i < N; i++)
        blocks[i] = sb_jalloc_malloc(200);
    size_t before = sb_jalloc_cached();
    for (int i = 0; i < N; i++)
        sb_jalloc_free(blocks[i]);
    size_t added = sb_jalloc_cached() - before;
    CHECK(added <= SB_JALLOC_KEEP);
    CHECK(added >= 50); /* the class's list had room for at least the 50 extra */
}

static void test_foreign_blocks(void)
{
    /* A block malloc gave someone else comes through (in the class its usable size allows)... */
    char *m = malloc(20);
    memset(m, 1, 20);
    sb_jalloc_free(m);
    char *q = sb_jalloc_malloc(16);
    CHECK(q == m);
    memset(q, 2, 16);
    /* ...and a block from the lists may go to plain free. */
    free(q);
    char *big = malloc(5000);
    sb_jalloc_free(big);
    sb_jalloc_free(NULL);
    free(sb_jalloc_malloc(0));
}

static void *thread_main(void *arg)
{
    (void)arg;
    void *blocks[64];
    for (int i = 0; i < 64; i++)
        blocks[i] = sb_jalloc_malloc((size_t)(16 + i * 7));
    for (int i = 0; i < 64; i++)
        sb_jalloc_free(blocks[i]);
    return (void *)sb_jalloc_cached();
}

static void test_thread_lists(void)
{
    /* Each thread has its own lists; they go when it ends (a leak report otherwise). */
    for (int round = 0; round < 3; round++) {
        pthread_t t;
        void *cached = NULL;
        if (!CHECK(pthread_create(&t, NULL, thread_main, NULL) == 0))
            return;
        pthread_join(t, &cached);
        CHECK((size_t)cached == 64);
    }
}

static void test_jansson(void)
{
    sb_jalloc_install();
    for (int round = 0; round < 1000; round++) {
        json_t *o =
            json_pack("{s:s, s:i, s:[s, s], s:{s:b}}", "a", "text", "b", round, "c", "x", "y", "d", "e", 1);
        if (!CHECK(o != NULL))
            return;
        for (int i = 0; i < 40; i++) {
            char k[16];
            snprintf(k, sizeof k, "k%d", i);
            json_object_set_new(o, k, json_integer(i));
        }
        char *text = json_dumps(o, JSON_COMPACT);
        CHECK(text != NULL && strstr(text, "\"k39\":39") != NULL);
        free(text); /* a block jansson allocated, released with plain free */
        json_decref(o);
    }
}

int main(void)
{
    SBTEST_RUN(test_reuse_by_class);
    SBTEST_RUN(test_bounded);
    SBTEST_RUN(test_foreign_blocks);
    SBTEST_RUN(test_thread_lists);
    SBTEST_RUN(test_jansson);
    return sbtest_summary();
}
