/* RFC 3339 formatting (src/core/clock.c): the arithmetic formatter against gmtime_r + snprintf, the
 * layout it replaced, over edges (epoch, leap days, century rules, negative times, the ends of years
 * 0000 and 9999, years the layout cannot hold) and a spread of random instants; and a round trip
 * through the parser. */
#include "core/clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sbtest.h"

/* What sb_clock_format_rfc3339 wrote before it did the arithmetic itself. */
static void reference(int64_t us, char out[SB_RFC3339_LEN])
{
    time_t secs = (time_t)(us / 1000000);
    int64_t frac = us % 1000000;
    if (frac < 0) {
        frac += 1000000;
        secs -= 1;
    }
    struct tm tm;
    gmtime_r(&secs, &tm);
    char full[128]; /* room for any int fields; cut to SB_RFC3339_LEN - 1 as snprintf into out did */
    snprintf(full, sizeof(full), "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)frac);
    size_t n = strlen(full);
    if (n > SB_RFC3339_LEN - 1)
        n = SB_RFC3339_LEN - 1;
    memcpy(out, full, n);
    out[n] = '\0';
}

static bool same(int64_t us)
{
    char a[SB_RFC3339_LEN], b[SB_RFC3339_LEN];
    memset(a, 'x', sizeof(a));
    size_t n = sb_clock_format_rfc3339(us, a);
    reference(us, b);
    bool ok = CHECK_EQ_STR(a, b);
    ok = CHECK_EQ_UINT(n, strlen(b)) && ok;
    if (!ok)
        fprintf(stderr, "  at us=%lld\n", (long long)us);
    return ok;
}

#define S 1000000LL

static void test_edges(void)
{
    const int64_t at[] = {
        0,
        1,
        -1,
        999999,
        -999999,
        -1000000,
        -1000001,
        86399 * S + 999999,
        86400 * S,
        -86400 * S,
        951782400 * S,             /* 2000-02-29 */
        951868800 * S - 1,         /* 2000-02-29 23:59:59.999999 */
        4107542400 * S,            /* 2100-03-01 (2100 is not a leap year) */
        4107456000 * S - 1,        /* 2100-02-28 23:59:59.999999 */
        1795300440 * S + 123456,   /* 2026-11-21T22:34:00.123456Z */
        -62167219200 * S,          /* 0000-01-01 */
        -62167219200 * S - 1,      /* year -1 */
        253402300799 * S + 999999, /* 9999-12-31T23:59:59.999999 */
        253402300800 * S,          /* 10000-01-01 */
        -2208988800 * S,           /* 1900-01-01 */
        -12219292800 * S,          /* 1582-10-15 */
    };
    for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++)
        same(at[i]);
}

static void test_random(void)
{
    /* A fixed seed: the same instants every run; every day of four centuries is likely covered. */
    uint64_t x = 0x9e3779b97f4a7c15ull;
    int bad = 0;
    for (int i = 0; i < 200000 && bad < 5; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        /* years 0000..9999 */
        int64_t span = 253402300800LL + 62167219200LL;
        int64_t us = ((int64_t)(x % (uint64_t)span) - 62167219200LL) * S + (int64_t)(x >> 40) % S;
        if (!same(us))
            bad++;
    }
}

static void test_round_trip(void)
{
    char t[SB_RFC3339_LEN];
    int64_t now = sb_clock_now_us(), back = 0;
    sb_clock_format_rfc3339(now, t);
    CHECK_EQ_INT(sb_clock_parse_rfc3339(t, &back), 0);
    CHECK_EQ_INT(back, now);
}

int main(void)
{
    SBTEST_RUN(test_edges);
    SBTEST_RUN(test_random);
    SBTEST_RUN(test_round_trip);
    return sbtest_summary();
}
