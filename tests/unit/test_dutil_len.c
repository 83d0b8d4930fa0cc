/* The deciders' string length rule (sb__str_of, sb__trimmed): min..max characters, counted up to the
 * first NUL, whatever shortcut the check takes.  Compared with that rule counted here, over random
 * strings of ASCII and multi-byte characters, NULs inside, and bounds around their lengths. */
#include "actors/dutil.h"
#include "core/error.h"
#include "sbtest.h"

#include <stdlib.h>
#include <string.h>

/* The rule: characters (bytes other than continuation bytes) before the first NUL. */
static size_t chars_to_nul(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static const char *const pieces[] = {"a", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", " ", "\0"};

int main(void)
{
    srand(7);
    char buf[64];
    int cases = 0;
    for (int round = 0; round < 20000; round++) {
        size_t len = 0;
        int npieces = rand() % 9;
        for (int i = 0; i < npieces; i++) {
            const char *p = pieces[rand() % 6];
            size_t pl = p[0] == '\0' ? 1 : strlen(p);
            memcpy(buf + len, p, pl);
            len += pl;
        }
        json_t *v = json_stringn_nocheck(buf, len);
        if (!CHECK(v != NULL))
            return 1;
        size_t chars = chars_to_nul(json_string_value(v));
        for (size_t min = 0; min <= 3; min++)
            for (size_t max = min; max <= 10; max++) {
                sb_derror_t err;
                const char *out;
                int rc = sb__str_of(v, "f", true, min, max, &out, &err);
                bool ok = chars >= min && chars <= max;
                if (!CHECK_EQ_INT(rc, ok ? 0 : SB_EREJECTED)) {
                    json_decref(v);
                    return sbtest_summary();
                }
                if (!ok)
                    CHECK_EQ_STR(err.code, min > 0 && chars == 0 ? "required" : "invalid");
                cases++;
            }
        json_decref(v);
    }
    /* sb__trimmed: the same rule after trimming */
    json_t *t;
    sb_derror_t err;
    CHECK_EQ_INT(sb__trimmed("  \xc3\xa9\xc3\xa9  ", "f", 2, 2, &t, &err), 0);
    json_decref(t);
    CHECK_EQ_INT(sb__trimmed("  \xc3\xa9\xc3\xa9\xc3\xa9 ", "f", 1, 2, &t, &err), SB_EREJECTED);
    CHECK_EQ_INT(sb__trimmed("   ", "f", 1, 5, &t, &err), SB_EREJECTED);
    CHECK_EQ_STR(err.code, "required");
    CHECK(cases > 100000);
    return sbtest_summary();
}
