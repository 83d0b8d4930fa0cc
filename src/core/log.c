#include "core/log.h"
#include "core/error.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static _Atomic int threshold = SB_LOG_INFO;

static const char *const level_names[] = {"error", "warn ", "info ", "debug"};

void sb_log_set_level(sb_log_level_t level)
{
    atomic_store(&threshold, (int)level);
}

sb_log_level_t sb_log_get_level(void)
{
    return (sb_log_level_t)atomic_load(&threshold);
}

bool sb_log_enabled(sb_log_level_t level)
{
    return (int)level <= atomic_load(&threshold);
}

int sb_log_parse_level(const char *s, sb_log_level_t *out)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (sb_log_level_t)i;
            return 0;
        }
    }
    return SB_EINVAL;
}

/* Formats one record, newline included, into line (SB_LOG_LINE_MAX bytes); returns its length. */
static size_t format_record(char *line, sb_log_level_t level, const char *subsystem, const char *fmt,
                            va_list ap)
{
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, SB_LOG_LINE_MAX, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s %s: ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000),
                     level_names[level], subsystem);
    if (n < 0 || n >= SB_LOG_LINE_MAX - 2)
        return 0;
    int m = vsnprintf(line + n, SB_LOG_LINE_MAX - (size_t)n - 1, fmt, ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > SB_LOG_LINE_MAX - 2)
        len = SB_LOG_LINE_MAX - 2;
    /* Newlines inside a record would split it; replace them. */
    for (size_t i = (size_t)n; i < len; i++)
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    line[len++] = '\n';
    return len;
}

void sb_logv(sb_log_level_t level, const char *subsystem, const char *fmt, va_list ap)
{
    if (!sb_log_enabled(level))
        return;
    char line[SB_LOG_LINE_MAX];
    size_t len = format_record(line, level, subsystem, fmt, ap);
    if (len > 0)
        sb_log_write(line, len);
}

size_t sb_log_format(char *out, sb_log_level_t level, const char *subsystem, const char *fmt, ...)
{
    if (!sb_log_enabled(level))
        return 0;
    va_list ap;
    va_start(ap, fmt);
    size_t len = format_record(out, level, subsystem, fmt, ap);
    va_end(ap);
    return len;
}

void sb_log_write(const char *records, size_t len)
{
    ssize_t w = write(STDERR_FILENO, records, len);
    (void)w;
}

void sb_log(sb_log_level_t level, const char *subsystem, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sb_logv(level, subsystem, fmt, ap);
    va_end(ap);
}
