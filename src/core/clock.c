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

/* Writes v as n decimal digits (v < 10^n). */
static void put_digits(char *out, int n, uint32_t v)
{
    for (int i = n - 1; i >= 0; i--) {
        out[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

/* By arithmetic (days to a civil date, after Howard Hinnant's days_from_civil inverse) rather than
 * gmtime_r + snprintf: every event's recorded time and many payload times go through here, and
 * those two cost more than the rest of recording a message.  Years outside 0000..9999, which the
 * fixed layout cannot hold, keep snprintf's output. */
size_t sb_clock_format_rfc3339(int64_t us, char out[SB_RFC3339_LEN])
{
    int64_t secs = us / 1000000;
    int64_t frac = us % 1000000;
    if (frac < 0) {
        frac += 1000000;
        secs -= 1;
    }
    int64_t days = secs / 86400, sod = secs % 86400;
    if (sod < 0) {
        sod += 86400;
        days -= 1;
    }
    days += 719468; /* from 0000-03-01 */
    int64_t era = (days >= 0 ? days : days - 146096) / 146097;
    int64_t doe = days - era * 146097;                                   /* [0, 146096] */
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);               /* [0, 365] */
    int64_t mp = (5 * doy + 2) / 153;                                    /* March = 0 */
    int64_t day = doy - (153 * mp + 2) / 5 + 1;
    int64_t month = mp < 10 ? mp + 3 : mp - 9;
    int64_t year = yoe + era * 400 + (month <= 2);
    if (year < 0 || year > 9999) {
        int n = snprintf(out, SB_RFC3339_LEN, "%04lld-%02d-%02dT%02d:%02d:%02d.%06dZ", (long long)year,
                         (int)month, (int)day, (int)(sod / 3600), (int)(sod / 60 % 60), (int)(sod % 60),
                         (int)frac);
        return n < 0 ? 0 : (size_t)n;
    }
    /* YYYY-MM-DDThh:mm:ss.uuuuuuZ */
    put_digits(out, 4, (uint32_t)year);
    out[4] = '-';
    put_digits(out + 5, 2, (uint32_t)month);
    out[7] = '-';
    put_digits(out + 8, 2, (uint32_t)day);
    out[10] = 'T';
    put_digits(out + 11, 2, (uint32_t)(sod / 3600));
    out[13] = ':';
    put_digits(out + 14, 2, (uint32_t)(sod / 60 % 60));
    out[16] = ':';
    put_digits(out + 17, 2, (uint32_t)(sod % 60));
    out[19] = '.';
    put_digits(out + 20, 6, (uint32_t)frac);
    out[26] = 'Z';
    out[27] = '\0';
    return 27;
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
