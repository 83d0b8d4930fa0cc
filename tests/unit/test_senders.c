/* The loops' memory of senders (reactors/senders.h): senders whose keys share a set are all kept,
 * up to the set's ways, and the least recently used one makes room. */
#include "reactors/senders.h"
#include "sbtest.h"

#include <stdio.h>
#include <string.h>

static sb_uuid_t uuid_n(unsigned n)
{
    sb_uuid_t u;
    memset(&u, 0, sizeof(u));
    memcpy(u.b, &n, sizeof(n));
    return u;
}

/* count numbers that fall in set 0 of t, written into out. */
static void same_set(const sb__senders_t *t, const sb_uuid_t *ws, char out[][SB_PHONE_MAX], int count)
{
    int found = 0;
    for (unsigned i = 0; found < count && i < 10000000; i++) {
        char number[SB_PHONE_MAX];
        snprintf(number, sizeof(number), "+1415%07u", i % 10000000);
        if (sb__senders_set_of(t, ws, number) == 0)
            memcpy(out[found++], number, sizeof(number));
    }
}

static void test_colliding_senders(void)
{
    sb__senders_t *t = sb__senders_new(64);
    CHECK(t != NULL);
    sb_uuid_t ws = uuid_n(1), c;
    char numbers[SB__SENDERS_WAYS + 1][SB_PHONE_MAX];
    same_set(t, &ws, numbers, SB__SENDERS_WAYS + 1);
    /* A full set: every one of them is remembered (one entry per set would keep only the last). */
    for (unsigned i = 0; i < SB__SENDERS_WAYS; i++) {
        sb_uuid_t contact = uuid_n(100 + i);
        sb__senders_store(t, &ws, numbers[i], &contact);
    }
    for (unsigned i = 0; i < SB__SENDERS_WAYS; i++) {
        CHECK(sb__senders_peek(t, &ws, numbers[i], &c));
        CHECK_EQ_UINT(c.b[0], 100 + i);
    }
    /* Peeking the first again makes the second the least recently used: the newcomer takes its
     * place and nothing else's. */
    CHECK(sb__senders_peek(t, &ws, numbers[0], &c));
    sb_uuid_t contact = uuid_n(200);
    sb__senders_store(t, &ws, numbers[SB__SENDERS_WAYS], &contact);
    CHECK(!sb__senders_peek(t, &ws, numbers[1], &c));
    CHECK(sb__senders_peek(t, &ws, numbers[SB__SENDERS_WAYS], &c));
    CHECK_EQ_UINT(c.b[0], 200);
    CHECK(sb__senders_peek(t, &ws, numbers[0], &c));
    for (unsigned i = 2; i < SB__SENDERS_WAYS; i++)
        CHECK(sb__senders_peek(t, &ws, numbers[i], &c));
    /* Storing a known sender again moves it to another contact without taking another entry. */
    contact = uuid_n(250);
    sb__senders_store(t, &ws, numbers[0], &contact);
    CHECK(sb__senders_peek(t, &ws, numbers[0], &c));
    CHECK_EQ_UINT(c.b[0], 250);
    for (unsigned i = 2; i <= SB__SENDERS_WAYS; i++)
        CHECK(sb__senders_peek(t, &ws, numbers[i], &c));
    sb__senders_free(t);
}

static void test_keys(void)
{
    sb__senders_t *t = sb__senders_new(8);
    CHECK(t != NULL);
    CHECK(sb__senders_new(0) == NULL);
    CHECK(sb__senders_new(12) == NULL);
    sb_uuid_t ws1 = uuid_n(1), ws2 = uuid_n(2), contact = uuid_n(7), c;
    CHECK(!sb__senders_peek(t, &ws1, "+14155550100", &c));
    sb__senders_store(t, &ws1, "+14155550100", &contact);
    CHECK(sb__senders_peek(t, &ws1, "+14155550100", &c));
    CHECK_EQ_MEM(c.b, 16, contact.b, 16);
    /* The same number in another workspace is another sender. */
    CHECK(!sb__senders_peek(t, &ws2, "+14155550100", &c));
    CHECK(!sb__senders_peek(t, &ws1, "+14155550101", &c));
    /* Too long for an E.164 number: ignored. */
    sb__senders_store(t, &ws1, "+1415555010012345678", &contact);
    CHECK(!sb__senders_peek(t, &ws1, "+1415555010012345678", &c));
    sb__senders_forget(t, &ws1, "+14155550100");
    CHECK(!sb__senders_peek(t, &ws1, "+14155550100", &c));
    sb__senders_store(t, &ws2, "+14155550100", &contact);
    sb__senders_clear(t);
    CHECK(!sb__senders_peek(t, &ws2, "+14155550100", &c));
    sb__senders_free(t);
}

/* Many senders in a table that holds them all: each is found again with its own contact. */
static void test_capacity(void)
{
    enum { SETS = 2048, N = 1500 };
    sb__senders_t *t = sb__senders_new(SETS);
    sb_uuid_t ws = uuid_n(9), c;
    char number[SB_PHONE_MAX];
    for (unsigned i = 0; i < N; i++) {
        snprintf(number, sizeof(number), "+1212%07u", i);
        sb_uuid_t contact = uuid_n(i);
        sb__senders_store(t, &ws, number, &contact);
    }
    unsigned kept = 0;
    for (unsigned i = 0; i < N; i++) {
        snprintf(number, sizeof(number), "+1212%07u", i);
        if (sb__senders_peek(t, &ws, number, &c)) {
            unsigned id;
            memcpy(&id, c.b, sizeof(id));
            kept++;
            CHECK_EQ_UINT(id, i);
        }
    }
    /* 1,500 senders in 8,192 entries: a set overflows only by bad luck (about one sender lost on
     * average), where one entry per set in as many entries would lose about 130 of them. */
    CHECK(kept >= N - 5);
    sb__senders_free(t);
}

int main(void)
{
    SBTEST_RUN(test_keys);
    SBTEST_RUN(test_colliding_senders);
    SBTEST_RUN(test_capacity);
    return sbtest_summary();
}
