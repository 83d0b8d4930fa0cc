#include "http/encoding.h"

#include <stdlib.h>
#include <string.h>

#include <zlib.h>

/* What an Accept-Encoding list said about gzip so far (several fields make one list). */
typedef struct {
    bool gzip_listed, gzip_refused;
    bool star_listed, star_refused;
} accept_t;

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Whether the weight text [p, e) is a well-formed qvalue above 0 (RFC 9110 §12.4.2):
 * "0" ["." 0*3DIGIT] or "1" ["." 0*3"0"]. */
static bool weight_positive(const char *p, const char *e)
{
    if (p == e || (*p != '0' && *p != '1'))
        return false;
    bool one = *p++ == '1', positive = one;
    if (p == e)
        return positive;
    if (*p++ != '.' || e - p > 3)
        return false;
    for (; p < e; p++) {
        if (*p < '0' || *p > '9' || (one && *p != '0'))
            return false;
        positive = positive || *p != '0';
    }
    return positive;
}

/* Scans one field value's elements: coding *(OWS ";" OWS parameter), separated by commas. */
static void scan(const char *v, size_t len, accept_t *st)
{
    const char *p = v, *end = v + len;
    while (p < end) {
        const char *e = memchr(p, ',', (size_t)(end - p));
        if (e == NULL)
            e = end;
        const char *s = p;
        while (s < e && is_ows(*s))
            s++;
        const char *t = s;
        while (t < e && *t != ';' && !is_ows(*t))
            t++;
        bool positive = true; /* no weight: 1 */
        for (const char *q = t; q < e;) {
            if (*q++ != ';')
                continue;
            while (q < e && is_ows(*q))
                q++;
            const char *next = q;
            while (next < e && *next != ';')
                next++;
            const char *ve = next;
            while (ve > q && is_ows(ve[-1]))
                ve--;
            if (ve - q >= 2 && (q[0] == 'q' || q[0] == 'Q') && q[1] == '=')
                positive = weight_positive(q + 2, ve);
            q = next;
        }
        size_t n = (size_t)(t - s);
        if (h2o_lcstris(s, n, H2O_STRLIT("gzip")) || h2o_lcstris(s, n, H2O_STRLIT("x-gzip"))) {
            st->gzip_listed = true;
            st->gzip_refused = st->gzip_refused || !positive;
        } else if (n == 1 && *s == '*') {
            st->star_listed = true;
            st->star_refused = st->star_refused || !positive;
        }
        if (e == end)
            break;
        p = e + 1;
    }
}

static bool verdict(const accept_t *st)
{
    if (st->gzip_listed)
        return !st->gzip_refused;
    return st->star_listed && !st->star_refused;
}

bool sb_http_gzip_acceptable(const char *value, size_t len)
{
    accept_t st = {0};
    scan(value, len, &st);
    return verdict(&st);
}

bool sb_http_accepts_gzip(h2o_req_t *req)
{
    if (req == NULL)
        return false;
    accept_t st = {0};
    for (ssize_t i = -1; (i = h2o_find_header(&req->headers, H2O_TOKEN_ACCEPT_ENCODING, i)) != -1;)
        scan(req->headers.entries[i].value.base, req->headers.entries[i].value.len, &st);
    return verdict(&st);
}

void sb_http_vary_coding(h2o_req_t *req)
{
    if (req != NULL)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_VARY, NULL, H2O_STRLIT("accept-encoding"));
}

void sb_http_gzip_coding(h2o_req_t *req)
{
    if (req != NULL)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_ENCODING, NULL, H2O_STRLIT("gzip"));
}

char *sb_http_gzip(const char *in, size_t len, size_t *out_len)
{
    if (len < SB_HTTP_GZIP_MIN || len > SB_HTTP_GZIP_MAX)
        return NULL;
    /* A window no larger than the input, and a smaller hash for small inputs: zlib allocates and
     * clears both per stream, which for a few kB costs more than the compression itself. */
    int wbits = 9;
    while (wbits < 15 && ((size_t)1 << wbits) < len)
        wbits++;
    z_stream z;
    memset(&z, 0, sizeof(z));
    int level = len <= (64u << 10) ? 6 : 1;
    if (deflateInit2(&z, level, Z_DEFLATED, 16 + wbits, wbits < 14 ? 6 : 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return NULL;
    uLong cap = deflateBound(&z, (uLong)len);
    char *out = malloc(cap);
    int rc = Z_MEM_ERROR;
    if (out != NULL) {
        z.next_in = (Bytef *)in;
        z.avail_in = (uInt)len;
        z.next_out = (Bytef *)out;
        z.avail_out = (uInt)cap;
        rc = deflate(&z, Z_FINISH);
    }
    size_t n = z.total_out;
    deflateEnd(&z);
    if (rc != Z_STREAM_END || n >= len) {
        free(out);
        return NULL;
    }
    char *fit = realloc(out, n); /* kept for long: give back deflateBound's slack */
    *out_len = n;
    return fit != NULL ? fit : out;
}
