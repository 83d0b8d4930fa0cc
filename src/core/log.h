/* Logging: one line per record on stderr, written with a single write(2) so lines from several
 * threads never interleave.  Format:
 *
 *   2026-11-21T13:54:00.123Z info  db: connected socket=/var/run/pg
 *
 * The subsystem names where the line comes from; the rest is a short lowercase message followed by
 * key=value details.  Never log secrets (passwords, tokens, auth headers, connection passwords). */
#ifndef SB_CORE_LOG_H
#define SB_CORE_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

typedef enum { SB_LOG_ERROR = 0, SB_LOG_WARN = 1, SB_LOG_INFO = 2, SB_LOG_DEBUG = 3 } sb_log_level_t;

/* Sets the threshold; records above it are dropped.  Safe to call before threads start. */
void sb_log_set_level(sb_log_level_t level);
sb_log_level_t sb_log_get_level(void);

/* Parses "error", "warn", "info", "debug"; returns 0 or SB_EINVAL. */
int sb_log_parse_level(const char *s, sb_log_level_t *out);

bool sb_log_enabled(sb_log_level_t level);

void sb_log(sb_log_level_t level, const char *subsystem, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void sb_logv(sb_log_level_t level, const char *subsystem, const char *fmt, va_list ap);

/* For callers that write many records at once (the HTTP access log): sb_log_format writes one
 * record exactly as sb_log would (newline included, at most SB_LOG_LINE_MAX bytes) into out and
 * returns its length, or 0 when level is disabled; sb_log_write writes whole records with one
 * write(2).  Batches of at most SB_LOG_BATCH_MAX bytes (PIPE_BUF) stay atomic on a pipe, so they
 * never interleave with other threads' records either. */
#define SB_LOG_LINE_MAX 2048
#define SB_LOG_BATCH_MAX 4096
size_t sb_log_format(char *out, sb_log_level_t level, const char *subsystem, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void sb_log_write(const char *records, size_t len);

#define sb_log_error(sub, ...) sb_log(SB_LOG_ERROR, sub, __VA_ARGS__)
#define sb_log_warn(sub, ...) sb_log(SB_LOG_WARN, sub, __VA_ARGS__)
#define sb_log_info(sub, ...) sb_log(SB_LOG_INFO, sub, __VA_ARGS__)
#define sb_log_debug(sub, ...)                                                                               \
    do {                                                                                                     \
        if (sb_log_enabled(SB_LOG_DEBUG))                                                                    \
            sb_log(SB_LOG_DEBUG, sub, __VA_ARGS__);                                                          \
    } while (0)

#endif
