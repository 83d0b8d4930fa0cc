/* The reactors' id map against a model: random puts, gets and deletes. */
#include "reactors/idmap.h"
#include "sbtest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N 3000

static void test_model(void)
{
    static char keys[N][16];
    static int present[N];
    sb_idmap_t m = SB_IDMAP_INIT;
    srand(7);
    for (int i = 0; i < N; i++)
        snprintf(keys[i], sizeof(keys[i]), "k%d", i);
    for (int step = 0; step < 200000; step++) {
        int k = rand() % N;
        switch (rand() % 3) {
        case 0:
            CHECK_EQ_INT(sb_idmap_put(&m, keys[k], &present[k]), 0);
            present[k] = 1;
            break;
        case 1: {
            void *v = sb_idmap_del(&m, keys[k]);
            if (v != (present[k] ? &present[k] : NULL))
                CHECK(!"del returned the wrong value");
            present[k] = 0;
            break;
        }
        default:
            if (sb_idmap_get(&m, keys[k]) != (present[k] ? &present[k] : NULL))
                CHECK(!"get disagrees with the model");
        }
    }
    size_t n = 0;
    for (int i = 0; i < N; i++) {
        n += present[i] != 0;
        if (sb_idmap_get(&m, keys[i]) != (present[i] ? &present[i] : NULL))
            CHECK(!"final get disagrees with the model");
    }
    CHECK_EQ_UINT(m.n, n);
    sb_idmap_free(&m);
    CHECK(sb_idmap_get(&m, "k1") == NULL);
    CHECK(sb_idmap_del(&m, "k1") == NULL);
}

int main(void)
{
    SBTEST_RUN(test_model);
    return sbtest_summary();
}
