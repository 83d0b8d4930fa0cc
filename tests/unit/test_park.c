/* Parking slot claims (actors/park.h): when a claim on a slot is in force, judged from its holder's
 * state; the slot keys. */
#include <jansson.h>
#include <string.h>

#include "actors/park.h"
#include "sbtest.h"

#define T0 "2026-03-01T12:00:00.000000Z"
#define T0_US 1772366400000000LL /* T0 */
#define SEC 1000000LL
#define STEAL (10 * SEC)

static json_t *claim_at(const char *at)
{
    return json_pack("{s:s, s:s, s:s}", "key", "slot:x:3", "owner", "call-x", "claimed_at", at);
}

static json_t *call(const char *status)
{
    return json_pack("{s:b, s:s, s:n}", "created", 1, "status", status, "parked");
}

static bool judge(const json_t *claim, const json_t *holder, int64_t now)
{
    return sb_park_claim_in_force(claim, holder, 3, now, STEAL);
}

static void test_parked_holder(void)
{
    json_t *c = claim_at(T0), *h = call("parked");
    json_object_set_new(h, "parked",
                        json_pack("{s:i, s:s, s:s}", "slot", 3, "parked_by", "u", "parked_at", T0));
    CHECK(judge(c, h, T0_US + 3600 * SEC)); /* parked in that slot: in force however old */
    json_object_set_new(json_object_get(h, "parked"), "slot", json_integer(4));
    CHECK(!judge(c, h, T0_US + SEC)); /* parked elsewhere: over */
    json_decref(c);
    json_decref(h);
}

static void test_ended_holder(void)
{
    json_t *c = claim_at(T0);
    static const char *const ends[] = {"completed", "busy", "no-answer", "failed", "cancelled"};
    for (size_t i = 0; i < sizeof ends / sizeof ends[0]; i++) {
        json_t *h = call(ends[i]);
        CHECK(!judge(c, h, T0_US + 1));
        json_decref(h);
    }
    json_t *none = json_pack("{s:b}", "created", 0);
    CHECK(!judge(c, none, T0_US + 1));
    json_decref(none);
    json_decref(c);
}

static void test_in_flight_and_crashed(void)
{
    json_t *c = claim_at(T0), *h = call("in-progress");
    CHECK(judge(c, h, T0_US + SEC));       /* the park is being written: in force */
    CHECK(judge(c, h, T0_US + STEAL - 1)); /* ... until steal_after */
    CHECK(!judge(c, h, T0_US + STEAL));    /* its flow died: over */
    json_object_set_new(h, "left_lot_at", json_string("2026-03-01T11:59:00.000000Z"));
    CHECK(judge(c, h, T0_US + SEC)); /* left the lot before this claim: the claim is a new park's */
    json_object_set_new(h, "left_lot_at", json_string("2026-03-01T12:00:01.000000Z"));
    CHECK(!judge(c, h, T0_US + 2 * SEC)); /* unparked after the claim: its parking is over at once */
    json_decref(c);
    json_decref(h);
}

static void test_free_claim_and_keys(void)
{
    json_t *c = json_pack("{s:s, s:n, s:n}", "key", "slot:x:3", "owner", "claimed_at");
    json_t *h = call("in-progress");
    CHECK(!judge(c, h, T0_US));
    json_decref(c);
    json_decref(h);
    char key[SB_PARK_KEY_MAX];
    sb_park_slot_key("0190aaaa-bbbb-7ccc-8ddd-eeeeffff0009", 999, key);
    CHECK_EQ_STR(key, "slot:0190aaaa-bbbb-7ccc-8ddd-eeeeffff0009:999");
    CHECK(sb_park_set_timing(0, 1) != 0);
    CHECK(sb_park_set_timing(2, 1) != 0);
    CHECK(sb_park_set_timing(5 * SEC, STEAL) == 0);
}

int main(void)
{
    SBTEST_RUN(test_parked_holder);
    SBTEST_RUN(test_ended_holder);
    SBTEST_RUN(test_in_flight_and_crashed);
    SBTEST_RUN(test_free_claim_and_keys);
    return sbtest_summary();
}
