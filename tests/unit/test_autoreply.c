/* Auto-reply matching: whole words, case-insensitive, each rule once, in order of appearance; reply
 * ids by contact, keyword and day. */
#include "reactors/autoreply.h"
#include "sbtest.h"

#include <jansson.h>
#include <string.h>

static void test_match(void)
{
    json_t *rules = json_pack("{s:s, s:s, s:s}", "hours", "8 to 6", "price", "from $50", "24h", "yes");
    const char *kw[3];
    static const struct {
        const char *body;
        const char *want[3];
        size_t n;
    } cases[] = {
        {"What are your HOURS?", {"hours"}, 1},
        {"hours", {"hours"}, 1},
        {"office-hours, please", {"hours"}, 1},
        {"Price and hours? hours!", {"price", "hours"}, 2},
        {"are you open 24h", {"24h"}, 1},
        {"happyhours", {0}, 0}, /* not a whole word */
        {"hoursly", {0}, 0},    /* nor a prefix */
        {"hour", {0}, 0},       /* nor a part */
        {"", {0}, 0},
        {"¿horas? hours\xc2\xa0now", {"hours"}, 1}, /* non-ASCII separates words */
        {"24H PRICE hours", {"24h", "price", "hours"}, 3},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = sb_autoreply_match(cases[i].body, rules, kw, 3);
        if (!CHECK_EQ_UINT(n, cases[i].n))
            continue;
        for (size_t k = 0; k < n; k++)
            CHECK_EQ_STR(kw[k], cases[i].want[k]);
    }
    /* at most max */
    CHECK_EQ_UINT(sb_autoreply_match("24h price hours", rules, kw, 2), 2);
    /* no rules, no body */
    json_t *none = json_object();
    CHECK_EQ_UINT(sb_autoreply_match("hours", none, kw, 3), 0);
    CHECK_EQ_UINT(sb_autoreply_match(NULL, rules, kw, 3), 0);
    json_decref(none);
    json_decref(rules);
}

static void test_ids(void)
{
    char a[SB_UUID_STRLEN + 1], b[SB_UUID_STRLEN + 1], c[SB_UUID_STRLEN + 1], d[SB_UUID_STRLEN + 1];
    const char *contact = "0190a0b0-0000-7000-8000-000000000001";
    sb_autoreply_message_id(contact, "hours", "2026-03-01", a);
    sb_autoreply_message_id(contact, "hours", "2026-03-01", b);
    sb_autoreply_message_id(contact, "hours", "2026-03-02", c);
    sb_autoreply_message_id(contact, "price", "2026-03-01", d);
    CHECK_EQ_STR(a, b);
    CHECK(strcmp(a, c) != 0);
    CHECK(strcmp(a, d) != 0);
}

int main(void)
{
    SBTEST_RUN(test_match);
    SBTEST_RUN(test_ids);
    return sbtest_summary();
}
