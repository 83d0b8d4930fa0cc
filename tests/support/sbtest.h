/* A tiny assertion helper for C tests.
 *
 * Checks record a failure (with file:line and the values involved, on stderr) and carry on, so one
 * run reports every broken expectation.  Each macro evaluates to true when the check passed, so a
 * test can stop early where going on would crash: `if (!CHECK(p != NULL)) return;`.
 * main() ends with `return sbtest_summary();`, which prints the tally and gives the exit code. */
#ifndef SB_TESTS_SBTEST_H
#define SB_TESTS_SBTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CHECK(cond) sbtest_check((cond) ? true : false, #cond, __FILE__, __LINE__)
#define CHECK_EQ_INT(a, b) sbtest_check_int((intmax_t)(a), (intmax_t)(b), #a, #b, __FILE__, __LINE__)
#define CHECK_EQ_UINT(a, b) sbtest_check_uint((uintmax_t)(a), (uintmax_t)(b), #a, #b, __FILE__, __LINE__)
/* NULL-safe; strings are compared with strcmp. */
#define CHECK_EQ_STR(a, b) sbtest_check_str((a), (b), #a, #b, __FILE__, __LINE__)
/* Byte strings of given lengths; differences are shown as hex around the first mismatch. */
#define CHECK_EQ_MEM(a, alen, b, blen) sbtest_check_mem((a), (alen), (b), (blen), #a, #b, __FILE__, __LINE__)

/* Runs fn, naming it in failure reports ("in test_foo"). */
#define SBTEST_RUN(fn) sbtest_run(#fn, fn)

bool sbtest_check(bool ok, const char *expr, const char *file, int line);
bool sbtest_check_int(intmax_t a, intmax_t b, const char *ea, const char *eb, const char *file, int line);
bool sbtest_check_uint(uintmax_t a, uintmax_t b, const char *ea, const char *eb, const char *file, int line);
bool sbtest_check_str(const char *a, const char *b, const char *ea, const char *eb, const char *file,
                      int line);
bool sbtest_check_mem(const void *a, size_t alen, const void *b, size_t blen, const char *ea, const char *eb,
                      const char *file, int line);
void sbtest_run(const char *name, void (*fn)(void));

/* Prints "<checks> checks, <failures> failed" and returns the process exit code (0 or 1). */
int sbtest_summary(void);

#endif
