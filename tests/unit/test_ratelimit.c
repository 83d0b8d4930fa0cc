/* Token buckets for public endpoints: bursts, refill, Retry-After, separate keys, a full table. */
#include <stdio.h>

#include "http/ratelimit.h"
#include "sbtest.h"

static void test_burst_and_refill(void)
{
    sb_ratelimit_t *rl = sb_ratelimit_new(6, 3, 64); /* one every 10 s, 3 at once */
    if (!CHECK(rl != NULL))
        return;
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(sb_ratelimit_take(rl, "addr:a", 1000), 0);
    CHECK_EQ_INT(sb_ratelimit_take(rl, "addr:a", 1000), 10); /* the next in 10 s */
    CHECK_EQ_INT(sb_ratelimit_take(rl, "addr:b", 1000), 0);  /* another key has its own bucket */
    CHECK_EQ_INT(sb_ratelimit_take(rl, "addr:a", 6000), 5);  /* half earned */
    CHECK_EQ_INT(sb_ratelimit_take(rl, "addr:a", 11000), 0); /* one earned, spent */
    CHECK(sb_ratelimit_take(rl, "addr:a", 11000) > 0);
    /* Idle for long: back to the burst, not beyond it. */
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(sb_ratelimit_take(rl, "addr:a", 10000000), 0);
    CHECK(sb_ratelimit_take(rl, "addr:a", 10000000) > 0);
    /* A clock that goes backwards earns nothing and breaks nothing. */
    CHECK(sb_ratelimit_take(rl, "addr:a", 5) > 0);
    sb_ratelimit_free(rl);
}

static void test_bounded_table(void)
{
    sb_ratelimit_t *rl = sb_ratelimit_new(1, 1, 8);
    if (!CHECK(rl != NULL))
        return;
    /* Many more keys than entries: each new key is served (it takes an old entry's place). */
    char key[32];
    int refused = 0;
    for (int i = 0; i < 10000; i++) {
        snprintf(key, sizeof(key), "addr:10.0.%d.%d", i / 256, i % 256);
        refused += sb_ratelimit_take(rl, key, (uint64_t)i) != 0;
    }
    CHECK_EQ_INT(refused, 0);
    /* The most recent key is still remembered and limited. */
    CHECK(sb_ratelimit_take(rl, key, 10000) > 0);
    sb_ratelimit_free(rl);
}

static void test_bad_arguments(void)
{
    CHECK(sb_ratelimit_new(0, 1, 8) == NULL);
    CHECK(sb_ratelimit_new(1, 0, 8) == NULL);
    CHECK(sb_ratelimit_new(1, 1, 2) == NULL);
    sb_ratelimit_free(NULL);
}

int main(void)
{
    SBTEST_RUN(test_burst_and_refill);
    SBTEST_RUN(test_bounded_table);
    SBTEST_RUN(test_bad_arguments);
    return sbtest_summary();
}
