/* Time: wall-clock microseconds since the epoch, monotonic time, and RFC 3339 UTC formatting. */
#ifndef SB_CORE_CLOCK_H
#define SB_CORE_CLOCK_H

#include <stddef.h>
#include <stdint.h>

/* Microseconds since 1970-01-01 UTC (wall clock). */
int64_t sb_clock_now_us(void);
/* Monotonic nanoseconds, for latency measurement. */
uint64_t sb_clock_mono_ns(void);

#define SB_RFC3339_LEN 32
/* "2026-11-21T13:54:00.123456Z" (microseconds) into out; returns the length. */
size_t sb_clock_format_rfc3339(int64_t us, char out[SB_RFC3339_LEN]);
/* Parses RFC 3339 with optional fraction and a Z or ±hh:mm offset, or a bare date
 * (YYYY-MM-DD = midnight UTC); 0 or SB_EINVAL. */
int sb_clock_parse_rfc3339(const char *s, int64_t *us);

#endif
