#include "providers/form.h"

#include "core/error.h"
#include "events/codec.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

#define ONES8 0x0101010101010101ull
#define HIGH8 0x8080808080808080ull

/* Whether any byte of w is zero (exact as a yes/no; which byte is not needed here). */
static inline uint64_t has_zero(uint64_t w)
{
    return (w - ONES8) & ~w & HIGH8;
}

/* How many bytes of a little-endian word come before its first flagged byte (its high bit set in
 * special, which is not 0).  Exact for has_zero's flags too: a false flag sits only above a true
 * one. */
static inline size_t first_flagged(uint64_t special)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return (size_t)__builtin_ctzll(special) >> 3;
#else
    (void)special;
    return 0; /* the byte-by-byte way from here */
#endif
}

/* sb_form_decode, also telling whether the decoded bytes are all ASCII (then valid UTF-8 without a
 * scan).  Plain bytes (not '%', '+', NUL or >= 0x80: most of a webhook's form, ids, numbers and
 * words) are found 8 at a time and copied together, up to the first other byte, which goes the
 * byte-by-byte way.  Same
 * output and errors as the plain loop, for any input (tests/unit/test_form.c compares them). */
static int decode(const char *s, size_t len, char *out, size_t *out_len, bool *ascii)
{
    size_t o = 0;
    unsigned char high = 0; /* the bytes decoded one by one, OR'ed: plain bytes are ASCII */
    for (size_t i = 0; i < len;) {
        if (len - i >= 8) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            uint64_t special =
                (w & HIGH8) | has_zero(w) | has_zero(w ^ (ONES8 * '%')) | has_zero(w ^ (ONES8 * '+'));
            /* The bytes before the first special one are plain: copied together (all 8 stored, o + 8 <=
             * i + 8 <= len, the rest overwritten next). */
            size_t plain = special == 0 ? 8 : first_flagged(special);
            memcpy(out + o, &w, 8);
            o += plain;
            i += plain;
            if (plain == 8)
                continue;
        }
        unsigned char c = (unsigned char)s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            if (len - i < 3)
                goto bad;
            int hi = hexval((unsigned char)s[i + 1]), lo = hexval((unsigned char)s[i + 2]);
            if (hi < 0 || lo < 0)
                goto bad;
            c = (unsigned char)(hi << 4 | lo);
            i += 2;
        }
        if (c == '\0')
            goto bad;
        high |= c;
        out[o++] = (char)c;
        i++;
    }
    out[o] = '\0';
    *out_len = o;
    *ascii = high < 0x80;
    return 0;
bad:
    out[0] = '\0';
    *out_len = 0;
    return SB_EINVAL;
}

int sb_form_decode(const char *s, size_t len, char *out, size_t *out_len)
{
    bool ascii;
    return decode(s, len, out, out_len, &ascii);
}

int sb_form_parse(const char *s, size_t len, sb_form_t *out)
{
    out->fields = NULL;
    out->n = 0;
    if (len > SB_FORM_MAX_BYTES)
        return SB_ETOOBIG;

    /* First pass: count the non-empty pieces, so one allocation holds the field array and every
     * decoded string (decoding never grows a piece; each field adds two NULs). */
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        const char *amp = memchr(s + i, '&', len - i);
        size_t end = amp ? (size_t)(amp - s) : len;
        if (end > i)
            n++;
        i = end + 1;
    }
    if (n > SB_FORM_MAX_FIELDS)
        return SB_ETOOBIG;
    if (n == 0)
        return 0;

    size_t arr = n * sizeof(sb_form_field_t);
    char *mem = malloc(arr + len + 2 * n);
    if (mem == NULL)
        return SB_ENOMEM;
    sb_form_field_t *fields = (sb_form_field_t *)mem;
    char *store = mem + arr;
    size_t k = 0;
    int rc = 0;
    for (size_t i = 0; i < len;) {
        const char *amp = memchr(s + i, '&', len - i);
        size_t end = amp ? (size_t)(amp - s) : len;
        if (end > i) {
            const char *piece = s + i;
            size_t plen = end - i;
            const char *eq = memchr(piece, '=', plen);
            size_t nlen = eq ? (size_t)(eq - piece) : plen;
            const char *v = eq ? eq + 1 : piece + plen;
            size_t vlen = eq ? plen - nlen - 1 : 0;
            sb_form_field_t *f = &fields[k++];
            bool name_ascii, value_ascii;
            f->name = store;
            if ((rc = decode(piece, nlen, store, &f->name_len, &name_ascii)) != 0)
                goto fail;
            store += f->name_len + 1;
            f->value = store;
            if ((rc = decode(v, vlen, store, &f->value_len, &value_ascii)) != 0)
                goto fail;
            store += f->value_len + 1;
            if ((!name_ascii && !sb_utf8_is_valid(f->name, f->name_len)) ||
                (!value_ascii && !sb_utf8_is_valid(f->value, f->value_len))) {
                rc = SB_EUTF8;
                goto fail;
            }
        }
        i = end + 1;
    }
    out->fields = fields;
    out->n = n;
    return 0;
fail:
    free(mem);
    return rc;
}

void sb_form_free(sb_form_t *f)
{
    free(f->fields); /* the strings live in the same allocation */
    f->fields = NULL;
    f->n = 0;
}

const char *sb_form_get(const sb_form_t *f, const char *name)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->fields[i].name, name) == 0)
            return f->fields[i].value;
    return NULL;
}

size_t sb_form_count(const sb_form_t *f, const char *name)
{
    size_t c = 0;
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->fields[i].name, name) == 0)
            c++;
    return c;
}

static void encode(sb_buf_t *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '*' ||
            c == '-' || c == '.' || c == '_') {
            sb_buf_putc(b, (char)c);
        } else if (c == ' ') {
            sb_buf_putc(b, '+');
        } else {
            char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
            sb_buf_append(b, esc, 3);
        }
    }
}

void sb_form_add(sb_buf_t *b, const char *name, const char *value)
{
    if (b->len > 0)
        sb_buf_putc(b, '&');
    encode(b, name);
    sb_buf_putc(b, '=');
    encode(b, value ? value : "");
}
