/* An incremental HTTP/1.1 response parser for bench/webhook_load.c: the status, where the body
 * ends (Content-Length, chunked, or the connection's close) and whether the connection stays open.
 * Bodies are skipped, not kept.  Pure: no I/O, no allocation (tests/unit/test_http1_response.c).
 *
 * The caller owns the buffer: it appends what it reads, calls hr_feed on everything not yet
 * consumed, drops the consumed bytes and keeps the rest for the next call.  A head (or a chunk-size
 * or trailer line) is parsed only once it is whole, so a buffer that is full without hr_feed
 * consuming anything holds a head too large for it: the caller's error.  Anything this parser does
 * not support (obsolete line folding, a transfer coding other than chunked) is an error, never
 * guessed at. */
#ifndef SB_BENCH_HTTP1_RESPONSE_H
#define SB_BENCH_HTTP1_RESPONSE_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

enum { HR_HEAD, HR_BODY, HR_CHUNK_SIZE, HR_CHUNK_DATA, HR_CHUNK_END, HR_TRAILER, HR_UNTIL_CLOSE, HR_DONE };

typedef struct hr_s {
    int state;
    int status;    /* the final response's status, once the head is parsed */
    bool close;    /* the connection ends after this response */
    uint64_t left; /* body or chunk bytes still to skip */
    const char *err;
} hr_t;

static inline void hr_reset(hr_t *p)
{
    *p = (hr_t){.state = HR_HEAD};
}

static inline bool hr_is_done(const hr_t *p)
{
    return p->state == HR_DONE;
}

static bool hr_ieq(const char *a, size_t alen, const char *lit)
{
    size_t n = strlen(lit);
    if (alen != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = a[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != lit[i])
            return false;
    }
    return true;
}

static const char *hr_find_crlf(const char *s, size_t len)
{
    const char *cr = len > 1 ? memchr(s, '\r', len - 1) : NULL;
    while (cr != NULL && cr[1] != '\n') {
        size_t off = (size_t)(cr - s) + 1;
        cr = off < len - 1 ? memchr(cr + 1, '\r', len - 1 - off) : NULL;
    }
    return cr;
}

static int hr_fail(hr_t *p, const char *why)
{
    p->err = why;
    return -1;
}

/* Each token of a comma-separated Connection value. */
static void hr_connection(const char *v, size_t n, bool *close, bool *keep_alive)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t b = i;
        while (i < n && v[i] != ',' && v[i] != ' ' && v[i] != '\t')
            i++;
        if (hr_ieq(v + b, i - b, "close"))
            *close = true;
        else if (hr_ieq(v + b, i - b, "keep-alive"))
            *keep_alive = true;
    }
}

/* Parses a whole head, s[0..len) without its final empty line.  Returns 0, or -1. */
static int hr_head(hr_t *p, const char *s, size_t len)
{
    const char *end = s + len;
    const char *eol = hr_find_crlf(s, len + 2); /* the head's final CRLF follows s[len - 1] */
    if (eol == NULL || eol - s < 12 || memcmp(s, "HTTP/1.", 7) != 0 || (s[7] != '0' && s[7] != '1') ||
        s[8] != ' ')
        return hr_fail(p, "malformed status line");
    bool http10 = s[7] == '0';
    int status = 0;
    for (int i = 9; i < 12; i++) {
        if (s[i] < '0' || s[i] > '9')
            return hr_fail(p, "malformed status code");
        status = status * 10 + (s[i] - '0');
    }
    if (status < 100 || (eol - s > 12 && s[12] != ' '))
        return hr_fail(p, "malformed status code");
    bool chunked = false, close = false, keep_alive = false, have_length = false;
    uint64_t length = 0;
    const char *line = eol + 2;
    while (line < end) {
        const char *next = hr_find_crlf(line, (size_t)(end - line) + 2);
        const char *colon = memchr(line, ':', (size_t)(next - line));
        if (*line == ' ' || *line == '\t')
            return hr_fail(p, "obsolete header line folding");
        if (colon == NULL || colon == line)
            return hr_fail(p, "malformed header line");
        const char *v = colon + 1, *ve = next;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        size_t name_len = (size_t)(colon - line), vlen = (size_t)(ve - v);
        if (hr_ieq(line, name_len, "content-length")) {
            uint64_t n = 0;
            if (vlen == 0 || vlen > 18)
                return hr_fail(p, "bad content-length");
            for (size_t i = 0; i < vlen; i++) {
                if (v[i] < '0' || v[i] > '9')
                    return hr_fail(p, "bad content-length");
                n = n * 10 + (uint64_t)(v[i] - '0');
            }
            if (have_length && n != length)
                return hr_fail(p, "conflicting content-length");
            have_length = true;
            length = n;
        } else if (hr_ieq(line, name_len, "transfer-encoding")) {
            if (!hr_ieq(v, vlen, "chunked"))
                return hr_fail(p, "unsupported transfer-encoding");
            chunked = true;
        } else if (hr_ieq(line, name_len, "connection")) {
            hr_connection(v, vlen, &close, &keep_alive);
        }
        line = next + 2;
    }
    p->status = status;
    p->close = close || (http10 && !keep_alive);
    if (status < 200 || status == 204 || status == 304) /* no body (never a HEAD request here) */
        p->state = status < 200 ? HR_HEAD : HR_DONE;
    else if (chunked)
        p->state = HR_CHUNK_SIZE;
    else if (have_length)
        p->state = length > 0 ? HR_BODY : HR_DONE, p->left = length;
    else
        p->state = HR_UNTIL_CLOSE, p->close = true;
    return 0;
}

/* Consumes what it can of buf[0..len): returns the bytes consumed (0 when it needs more to go on),
 * or -1 with p->err set.  Stops at the end of the response (hr_is_done); bytes after it are left. */
static ssize_t hr_feed(hr_t *p, const char *buf, size_t len)
{
    size_t off = 0;
    for (;;) {
        const char *s = buf + off, *eol;
        size_t n = len - off;
        switch (p->state) {
        case HR_HEAD: {
            const char *e = n >= 4 ? memmem(s, n, "\r\n\r\n", 4) : NULL;
            if (e == NULL)
                return (ssize_t)off;
            if (hr_head(p, s, (size_t)(e - s)) != 0)
                return -1;
            off += (size_t)(e - s) + 4; /* an interim 1xx head leaves the state at HR_HEAD */
            break;
        }
        case HR_BODY:
        case HR_CHUNK_DATA: {
            size_t take = n < p->left ? n : (size_t)p->left;
            off += take;
            p->left -= take;
            if (p->left > 0)
                return (ssize_t)off;
            p->state = p->state == HR_BODY ? HR_DONE : HR_CHUNK_END;
            break;
        }
        case HR_CHUNK_SIZE: {
            if ((eol = hr_find_crlf(s, n)) == NULL)
                return n > 1024 ? hr_fail(p, "chunk-size line too long") : (ssize_t)off;
            uint64_t size = 0;
            size_t i = 0, line = (size_t)(eol - s);
            for (; i < line && i < 16; i++) {
                char c = s[i];
                int d = c >= '0' && c <= '9'   ? c - '0'
                        : c >= 'a' && c <= 'f' ? c - 'a' + 10
                        : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                               : -1;
                if (d < 0)
                    break;
                size = size * 16 + (uint64_t)d;
            }
            if (i == 0 || i == 16 || (i < line && s[i] != ';' && s[i] != ' ' && s[i] != '\t'))
                return hr_fail(p, "malformed chunk size");
            off += line + 2;
            p->left = size;
            p->state = size > 0 ? HR_CHUNK_DATA : HR_TRAILER;
            break;
        }
        case HR_CHUNK_END:
            if (n < 2)
                return (ssize_t)off;
            if (s[0] != '\r' || s[1] != '\n')
                return hr_fail(p, "chunk not followed by CRLF");
            off += 2;
            p->state = HR_CHUNK_SIZE;
            break;
        case HR_TRAILER:
            if ((eol = hr_find_crlf(s, n)) == NULL)
                return (ssize_t)off;
            off += (size_t)(eol - s) + 2;
            if (eol == s)
                p->state = HR_DONE;
            break;
        case HR_UNTIL_CLOSE:
            return (ssize_t)len;
        default:
            return (ssize_t)off;
        }
    }
}

/* The peer closed the connection: 0 if that ends the response (a body delimited by the close),
 * -1 (p->err set) if the response was cut short. */
static inline int hr_eof(hr_t *p)
{
    if (p->state == HR_UNTIL_CLOSE) {
        p->state = HR_DONE;
        return 0;
    }
    return p->state == HR_DONE ? 0 : hr_fail(p, "connection closed before the response ended");
}

#endif
