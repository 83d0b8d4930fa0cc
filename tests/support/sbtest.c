#include "sbtest.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static _Atomic unsigned long checks, failures; /* checks may run on any thread */
static const char *current;                    /* the test SBTEST_RUN is in, for reports */

static void report(const char *file, int line)
{
    failures++;
    fprintf(stderr, "%s:%d: FAIL%s%s: ", file, line, current ? " in " : "", current ? current : "");
}

bool sbtest_check(bool ok, const char *expr, const char *file, int line)
{
    checks++;
    if (!ok) {
        report(file, line);
        fprintf(stderr, "%s\n", expr);
    }
    return ok;
}

bool sbtest_check_int(intmax_t a, intmax_t b, const char *ea, const char *eb, const char *file, int line)
{
    checks++;
    if (a == b)
        return true;
    report(file, line);
    fprintf(stderr, "%s == %s: %" PRIdMAX " != %" PRIdMAX "\n", ea, eb, a, b);
    return false;
}

bool sbtest_check_uint(uintmax_t a, uintmax_t b, const char *ea, const char *eb, const char *file, int line)
{
    checks++;
    if (a == b)
        return true;
    report(file, line);
    fprintf(stderr, "%s == %s: %" PRIuMAX " != %" PRIuMAX "\n", ea, eb, a, b);
    return false;
}

bool sbtest_check_str(const char *a, const char *b, const char *ea, const char *eb, const char *file,
                      int line)
{
    checks++;
    if (a == b || (a && b && strcmp(a, b) == 0))
        return true;
    report(file, line);
    fprintf(stderr, "%s == %s:\n  got:      %s%s%s\n  expected: %s%s%s\n", ea, eb, a ? "\"" : "",
            a ? a : "NULL", a ? "\"" : "", b ? "\"" : "", b ? b : "NULL", b ? "\"" : "");
    return false;
}

static void hex_window(const char *label, const unsigned char *p, size_t len, size_t at)
{
    size_t from = at > 8 ? at - 8 : 0, to = at + 8 < len ? at + 8 : len;
    fprintf(stderr, "  %s (%zu bytes) [%zu..%zu):", label, len, from, to);
    for (size_t i = from; i < to; i++)
        fprintf(stderr, " %02x", p[i]);
    fputc('\n', stderr);
}

bool sbtest_check_mem(const void *a, size_t alen, const void *b, size_t blen, const char *ea, const char *eb,
                      const char *file, int line)
{
    checks++;
    if (alen == blen && (alen == 0 || memcmp(a, b, alen) == 0))
        return true;
    const unsigned char *pa = a, *pb = b;
    size_t at = 0;
    while (at < alen && at < blen && pa[at] == pb[at])
        at++;
    report(file, line);
    fprintf(stderr, "%s == %s: first difference at byte %zu\n", ea, eb, at);
    hex_window("got", pa, alen, at);
    hex_window("expected", pb, blen, at);
    return false;
}

void sbtest_run(const char *name, void (*fn)(void))
{
    unsigned long before = failures;
    current = name;
    fn();
    current = NULL;
    if (failures != before)
        fprintf(stderr, "%s: %lu failure(s)\n", name, failures - before);
}

int sbtest_summary(void)
{
    fprintf(stderr, "%lu checks, %lu failed\n", checks, failures);
    return failures == 0 && checks > 0 ? 0 : 1;
}
