#include "core/clock.h"
#include "core/error.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

int64_t sb_clock_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

uint64_t sb_clock_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

size_t sb_clock_format_rfc3339(int64_t us, char out[SB_RFC3339_LEN])
{
    time_t secs = (time_t)(us / 1000000);
    int64_t frac = us % 1000000;
    if (frac < 0) {
        frac += 1000000;
        secs -= 1;
    }
    struct tm tm;
    gmtime_r(&secs, &tm);
    int n = snprintf(out, SB_RFC3339_LEN, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)frac);
    return n < 0 ? 0 : (size_t)n;
}

static int digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return SB_EINVAL;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

int sb_clock_parse_rfc3339(const char *s, int64_t *us)
{
    const char *p = s;
    int Y, M, D, h = 0, m = 0, sec = 0;
    if (digits(&p, 4, &Y) || *p++ != '-' || digits(&p, 2, &M) || *p++ != '-' || digits(&p, 2, &D))
        return SB_EINVAL;
    int64_t frac_us = 0;
    int offset_min = 0;
    if (*p != '\0') {
        if (*p != 'T' && *p != 't' && *p != ' ')
            return SB_EINVAL;
        p++;
        if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &m) || *p++ != ':' || digits(&p, 2, &sec))
            return SB_EINVAL;
        if (*p == '.') {
            p++;
            int n = 0;
            int64_t scale = 100000;
            while (*p >= '0' && *p <= '9') {
                if (n < 6) {
                    frac_us += (*p - '0') * scale;
                    scale /= 10;
                }
                p++;
                n++;
            }
            if (n == 0)
                return SB_EINVAL;
        }
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int sign = *p == '-' ? -1 : 1;
            int oh, om;
            p++;
            if (digits(&p, 2, &oh) || *p++ != ':' || digits(&p, 2, &om))
                return SB_EINVAL;
            offset_min = sign * (oh * 60 + om);
        } else {
            return SB_EINVAL;
        }
        if (*p != '\0')
            return SB_EINVAL;
    }
    if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60)
        return SB_EINVAL;
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = Y - 1900;
    tm.tm_mon = M - 1;
    tm.tm_mday = D;
    tm.tm_hour = h;
    tm.tm_min = m;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    *us = ((int64_t)t - (int64_t)offset_min * 60) * 1000000 + frac_us;
    return 0;
}
