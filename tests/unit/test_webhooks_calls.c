/* The query of call control's TwiML URLs (src/http/webhooks_calls.c): ours when well-formed, and
 * anything else refused before a signature is even looked at. */
#include <stdlib.h>
#include <string.h>

#include "../../src/http/webhooks_calls.c"
#include "sbtest.h"

#define W "0190aaaa-bbbb-7ccc-8ddd-eeeeffff0001"
#define C "0190aaaa-bbbb-7ccc-8ddd-eeeeffff0002"

static bool parse(const char *q, cwh_t *t)
{
    memset(t, 0, sizeof(*t));
    /* Not NUL-terminated where the query ends, as in a request's path. */
    size_t n = strlen(q);
    char *buf = malloc(n + 8);
    memcpy(buf, q, n);
    memcpy(buf + n, "XYZ0123", 8);
    bool ok = parse_query(t, buf, n);
    free(buf);
    return ok;
}

static void test_good(void)
{
    cwh_t t;
    CHECK(parse("w=" W "&c=" C, &t));
    CHECK_EQ_STR(t.ws, W);
    CHECK_EQ_STR(t.call, C);
    CHECK_EQ_INT(t.transfer, 0);
    CHECK(parse("w=" W "&c=" C "&t=3&s=1", &t));
    CHECK_EQ_INT(t.transfer, 3);
    CHECK_EQ_INT(t.stage, 1);
    CHECK(parse("w=" W "&c=" C "&a=" W, &t));
    CHECK_EQ_STR(t.agent, W);
    CHECK(parse("w=" W "&c=" C "&u=2026-03-01T12:00:00.000000Z", &t));
    CHECK_EQ_STR(t.unparked_at, "2026-03-01T12:00:00.000000Z");
}

static void test_bad(void)
{
    static const char *const bad[] = {
        "",                                                           /* nothing */
        "w=" W,                                                       /* no call */
        "c=" C,                                                       /* no workspace */
        "w=" W "&c=" C "&x=1",                                        /* unknown key */
        "w=" W "&c=" C "&",                                           /* empty pair */
        "w=" W "&c=0190AAAA-bbbb-7ccc-8ddd-eeeeffff0002",             /* upper case: not one we wrote */
        "w=" W "&c=" C "x",                                           /* too long */
        "w=" W "&c=" C "&t=",                                         /* empty number */
        "w=" W "&c=" C "&t=1234567",                                  /* too long a number */
        "w=" W "&c=" C "&t=-1",                                       /* not digits */
        "w=" W "&c=" C "&u=2026-03-01T12:00:00%20Z",                  /* escapes are not ours */
        "w=" W "&c=" C "&u=0123456789012345678901234567890123456789", /* too long */
        "ww=" W "&c=" C,                                              /* key of two letters */
        "w" W "&c=" C,                                                /* no '=' */
        "w=" W "&&c=" C,                                              /* empty pair between */
    };
    cwh_t t;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (!CHECK(!parse(bad[i], &t)))
            fprintf(stderr, "  accepted: %s\n", bad[i]);
    }
}

int main(void)
{
    SBTEST_RUN(test_good);
    SBTEST_RUN(test_bad);
    return sbtest_summary();
}
