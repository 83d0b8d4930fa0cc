#include "core/buf.h"
#include "core/error.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ONES8 0x0101010101010101ull
#define HIGH8 0x8080808080808080ull

int sb_buf_reserve(sb_buf_t *b, size_t extra)
{
    if (extra > SIZE_MAX / 2 - b->len)
        return SB_ENOMEM;
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (p == NULL)
        return SB_ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

static inline void must_reserve(sb_buf_t *b, size_t extra)
{
    /* The common case, inline: room for extra bytes and the NUL (cap > len whenever data is set). */
    if (b->cap > b->len && b->cap - b->len > extra)
        return;
    if (sb_buf_reserve(b, extra) != 0) {
        fputs("fatal: out of memory\n", stderr);
        abort();
    }
}

void sb_buf_append(sb_buf_t *b, const void *p, size_t n)
{
    must_reserve(b, n);
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void sb_buf_puts(sb_buf_t *b, const char *s)
{
    sb_buf_append(b, s, strlen(s));
}

void sb_buf_putc(sb_buf_t *b, char c)
{
    must_reserve(b, 1);
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
}

void sb_buf_printf(sb_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    must_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* Whether the 8 bytes at s hold one that needs an escape: below 0x20, '"' or '\\' (the usual word
 * tests: a byte below n; a zero byte in w ^ c). */
static inline bool needs_escape8(const char *s)
{
    uint64_t w;
    memcpy(&w, s, 8);
    uint64_t q = w ^ (ONES8 * '"'), bs = w ^ (ONES8 * '\\');
    return (((w - ONES8 * 0x20) & ~w) | ((q - ONES8) & ~q) | ((bs - ONES8) & ~bs)) & HIGH8;
}

void sb_buf_put_json_string(sb_buf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    must_reserve(b, n + 2);
    /* Most strings need no escape at all: checked 8 bytes at a time, then copied whole. */
    size_t i = 0;
    while (n - i >= 8 && !needs_escape8(s + i))
        i += 8;
    for (; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == '"' || c == '\\')
            break;
    }
    if (i == n) {
        char *o = b->data + b->len;
        o[0] = '"';
        memcpy(o + 1, s, n);
        o[n + 1] = '"';
        b->len += n + 2;
        b->data[b->len] = '\0';
        return;
    }
    sb_buf_putc(b, '"');
    size_t run = 0;
    for (; i < n; i++) {
        /* Step over runs that need no escape 8 bytes at a time. */
        while (n - i >= 8 && !needs_escape8(s + i))
            i += 8;
        if (i >= n)
            break;
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        sb_buf_append(b, s + run, i - run);
        run = i + 1;
        switch (c) {
        case '"':
            sb_buf_append(b, "\\\"", 2);
            break;
        case '\\':
            sb_buf_append(b, "\\\\", 2);
            break;
        case '\n':
            sb_buf_append(b, "\\n", 2);
            break;
        case '\r':
            sb_buf_append(b, "\\r", 2);
            break;
        case '\t':
            sb_buf_append(b, "\\t", 2);
            break;
        default: {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            sb_buf_append(b, esc, 6);
        }
        }
    }
    sb_buf_append(b, s + run, n - run);
    sb_buf_putc(b, '"');
}

void sb_buf_reset(sb_buf_t *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void sb_buf_free(sb_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *sb_buf_steal(sb_buf_t *b)
{
    if (b->data == NULL)
        return strdup("");
    char *p = b->data;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}
