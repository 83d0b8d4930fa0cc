/* The pure parts of the HTTP client: the retry decision, Retry-After, header lookup. */
#include "providers/http_client.h"

#include "core/error.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#define DEFAULT_BASE_MS 500
#define DEFAULT_CAP_MS 30000
#define DEFAULT_MAX_RETRY_AFTER_MS 120000

static bool transient_error(int error)
{
    switch (error) {
    case SB_ETIMEOUT:
    case SB_EUNKNOWN:
    case UV_ECONNREFUSED:
    case UV_ECONNRESET:
    case UV_EAI_NONAME:
    case UV_EAI_AGAIN:
    case UV_EPROTO:
    case UV_EIO:
        return true;
    default: /* SB_ETOOBIG, SB_EINVAL, SB_ESHUTDOWN, UV_ECANCELED: retrying changes nothing */
        return false;
    }
}

bool sb_http_retry_next(const sb_http_retry_t *p, int attempt, const sb_http_response_t *res, uint32_t rnd,
                        uint64_t *delay_ms)
{
    *delay_ms = 0;
    if (p == NULL || attempt < 1 || attempt >= p->max_attempts)
        return false;
    if (res->error != 0) {
        if (!transient_error(res->error) || (res->sent && !p->after_sent))
            return false;
    } else if (!(res->status >= 500 && res->status <= 599) && res->status != 429) {
        return false;
    }
    uint64_t base = p->base_ms ? p->base_ms : DEFAULT_BASE_MS;
    uint64_t cap = p->cap_ms ? p->cap_ms : DEFAULT_CAP_MS;
    uint64_t max_ra = p->max_retry_after_ms ? p->max_retry_after_ms : DEFAULT_MAX_RETRY_AFTER_MS;
    uint64_t exp = base;
    for (int i = 1; i < attempt && exp < cap; i++)
        exp *= 2;
    if (exp > cap)
        exp = cap;
    uint64_t half = exp / 2;
    uint64_t delay = (exp - half) + (half ? (uint64_t)rnd % (half + 1) : 0);
    if (res->error == 0 && res->retry_after_ms >= 0) {
        if ((uint64_t)res->retry_after_ms > max_ra)
            return false; /* the server asks for a longer pause than we are willing to hold on */
        if ((uint64_t)res->retry_after_ms > delay)
            delay = (uint64_t)res->retry_after_ms;
    }
    *delay_ms = delay;
    return true;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian); Howard Hinnant's days_from_civil. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int64_t sb_http_parse_retry_after(const char *v, int64_t now_ms)
{
    if (v == NULL)
        return -1;
    while (*v == ' ' || *v == '\t')
        v++;
    size_t n = strlen(v);
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    if (n == 0)
        return -1;
    if (isdigit((unsigned char)v[0])) {
        int64_t s = 0;
        for (size_t i = 0; i < n; i++) {
            if (!isdigit((unsigned char)v[i]) || i >= 10)
                return -1;
            s = s * 10 + (v[i] - '0');
        }
        return s * 1000;
    }
    /* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" (29 bytes), the only form RFC 9110 asks senders
     * to use. */
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    if (n != 29 || v[3] != ',' || v[4] != ' ' || v[7] != ' ' || v[11] != ' ' || v[16] != ' ' ||
        v[19] != ':' || v[22] != ':' || v[25] != ' ' || memcmp(v + 26, "GMT", 3) != 0)
        return -1;
    int day = digits(v + 5, 2), year = digits(v + 12, 4);
    int hh = digits(v + 17, 2), mm = digits(v + 20, 2), ss = digits(v + 23, 2);
    int mon = -1;
    for (int i = 0; i < 12; i++)
        if (memcmp(v + 8, months[i], 3) == 0)
            mon = i + 1;
    if (day < 1 || day > 31 || year < 1970 || mon < 0 || hh < 0 || hh > 23 || mm < 0 || mm > 59 || ss < 0 ||
        ss > 60)
        return -1;
    int64_t t = (days_from_civil(year, mon, day) * 86400 + hh * 3600 + mm * 60 + ss) * 1000;
    return t > now_ms ? t - now_ms : 0;
}

const char *sb_http_response_header(const sb_http_response_t *res, const char *name, char *buf, size_t buflen)
{
    const char *found = NULL;
    size_t found_len = 0;
    size_t nlen = strlen(name);
    const char *p = res->_headers, *end = res->_headers + res->_headers_len;
    while (p != NULL && p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = eol ? eol : end;
        size_t len = (size_t)(line_end - p);
        if (len > nlen && p[nlen] == ':' && strncasecmp(p, name, nlen) == 0) {
            const char *v = p + nlen + 1;
            while (v < line_end && (*v == ' ' || *v == '\t'))
                v++;
            const char *ve = line_end;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            found = v;
            found_len = (size_t)(ve - v);
        }
        p = eol ? eol + 1 : end;
    }
    if (found == NULL || buflen == 0)
        return NULL;
    if (found_len > buflen - 1)
        found_len = buflen - 1;
    memcpy(buf, found, found_len);
    buf[found_len] = '\0';
    return buf;
}
