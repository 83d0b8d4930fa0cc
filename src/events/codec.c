/* The event codec (see codec.h).
 *
 * Decoding uses a small hand-written msgpack reader rather than msgpack-c's unpacker.  The
 * unpacker builds a msgpack_object tree in a zone and sizes an array's or map's element vector
 * from its declared count before reading any element, so a 5-byte array32 header claiming 2^32
 * elements asks for tens of gigabytes; it also cannot write JSON without first building that
 * tree.  The reader below checks every declared length against the bytes actually left, walks the
 * input once, and writes JSON text straight into the caller's buffer with no allocation per value.
 * Encoding uses msgpack-c's packer, which already picks the smallest integer encoding. */
#include "events/codec.h"
#include "core/error.h"

#include <assert.h>
#include <float.h>
#include <math.h>
#include <msgpack.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- UTF-8 ------------------------------------------------------------------------------------ */

#define ONES8 0x0101010101010101ull
#define HIGH8 0x8080808080808080ull

/* Strict UTF-8 (Unicode 15, table 3-7): the second byte's range depends on the lead byte, which
 * is what excludes overlongs (C0, C1, E0 80..9F, F0 80..8F), surrogates (ED A0..BF) and code
 * points above U+10FFFF (F4 90.., F5..FF).  With allow_nul false, U+0000 is refused too. */
static bool utf8_scan(const uint8_t *s, size_t len, bool allow_nul)
{
    size_t i = 0;
    while (i < len) {
        /* ASCII runs dominate payloads: take them 8 bytes at a time. */
        while (len - i >= 8) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & HIGH8)
                break;
            if (!allow_nul && ((w - ONES8) & ~w & HIGH8))
                return false;
            i += 8;
        }
        if (i >= len)
            break;
        uint8_t c = s[i];
        if (c < 0x80) {
            if (c == 0 && !allow_nul)
                return false;
            i++;
            continue;
        }
        size_t n;
        uint8_t lo = 0x80, hi = 0xbf;
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            if (c == 0xe0)
                lo = 0xa0;
            else if (c == 0xed)
                hi = 0x9f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            if (c == 0xf0)
                lo = 0x90;
            else if (c == 0xf4)
                hi = 0x8f;
        } else {
            return false;
        }
        if (len - i - 1 < n)
            return false;
        if (s[i + 1] < lo || s[i + 1] > hi)
            return false;
        for (size_t k = 2; k <= n; k++)
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
        i += n + 1;
    }
    return true;
}

bool sb_utf8_is_valid(const char *s, size_t len)
{
    return utf8_scan((const uint8_t *)s, len, true);
}

/* ---- base64 ----------------------------------------------------------------------------------- */

static const char b64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static size_t b64_encoded_len(size_t n)
{
    return (n + 2) / 3 * 4;
}

/* Writes b64_encoded_len(n) bytes to dst. */
static void b64_encode_to(const uint8_t *src, size_t n, char *dst)
{
    size_t i = 0;
    for (; n - i >= 3; i += 3) {
        uint32_t v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8 | src[i + 2];
        *dst++ = b64_alphabet[v >> 18];
        *dst++ = b64_alphabet[(v >> 12) & 63];
        *dst++ = b64_alphabet[(v >> 6) & 63];
        *dst++ = b64_alphabet[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)src[i] << 16;
        *dst++ = b64_alphabet[v >> 18];
        *dst++ = b64_alphabet[(v >> 12) & 63];
        *dst++ = '=';
        *dst++ = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8;
        *dst++ = b64_alphabet[v >> 18];
        *dst++ = b64_alphabet[(v >> 12) & 63];
        *dst++ = b64_alphabet[(v >> 6) & 63];
        *dst++ = '=';
    }
}

/* Appends base64 of p[0..n), optionally in quotes.  SB_ENOMEM when the buffer cannot grow: n
 * may come from a peer. */
static int b64_append(sb_buf_t *out, const void *p, size_t n, bool quoted)
{
    size_t need = b64_encoded_len(n) + (quoted ? 2 : 0);
    if (n > SIZE_MAX / 2 || sb_buf_reserve(out, need) != 0)
        return SB_ENOMEM;
    char *dst = out->data + out->len;
    if (quoted)
        *dst++ = '"';
    b64_encode_to(p, n, dst);
    dst += b64_encoded_len(n);
    if (quoted)
        *dst++ = '"';
    out->len += need;
    out->data[out->len] = '\0';
    return 0;
}

void sb_base64_encode(const void *p, size_t n, sb_buf_t *out)
{
    if (b64_append(out, p, n, false) != 0) {
        fputs("fatal: out of memory\n", stderr);
        abort();
    }
}

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Strict: the padding, when present, must complete the last quantum, and the bits a short final
 * quantum leaves over must be zero, so each byte string has one accepted encoding (with or without
 * its padding). */
int sb_base64_decode(const char *s, size_t n, sb_buf_t *out)
{
    const unsigned char *u = (const unsigned char *)s;
    if (n > 0 && u[n - 1] == '=') {
        if (n % 4 != 0)
            return SB_EINVAL;
        n -= (n >= 2 && u[n - 2] == '=') ? 2 : 1;
    }
    if (n % 4 == 1)
        return SB_EINVAL;
    size_t start = out->len;
    if (sb_buf_reserve(out, n / 4 * 3 + 2) != 0)
        return SB_ENOMEM;
    uint8_t *dst = (uint8_t *)out->data + start;
    uint32_t acc = 0;
    size_t i = 0;
    for (; i < n; i++) {
        int v = b64_value(u[i]);
        if (v < 0)
            goto fail_restore;
        acc = acc << 6 | (uint32_t)v;
        if (i % 4 == 3) {
            *dst++ = (uint8_t)(acc >> 16);
            *dst++ = (uint8_t)(acc >> 8);
            *dst++ = (uint8_t)acc;
            acc = 0;
        }
    }
    switch (n % 4) {
    case 2:
        if (acc & 0xf)
            goto fail_restore;
        *dst++ = (uint8_t)(acc >> 4);
        break;
    case 3:
        if (acc & 0x3)
            goto fail_restore;
        *dst++ = (uint8_t)(acc >> 10);
        *dst++ = (uint8_t)(acc >> 2);
        break;
    }
    out->len = (size_t)(dst - (uint8_t *)out->data);
    out->data[out->len] = '\0';
    return 0;

fail_restore:
    out->data[start] = '\0'; /* the bytes written so far were past out->len */
    return SB_EINVAL;
}

/* ---- numbers as text -------------------------------------------------------------------------- */

/* Decimal digits of v (with a minus sign if neg) at the end of buf[24]; returns the start. */
static char *fmt_u64(char buf[24], uint64_t v, bool neg)
{
    char *p = buf + 24;
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    if (neg)
        *--p = '-';
    return p;
}

/* The common case of fmt_real, without printf: a double in [1e-4, 1e15) that is exactly
 * m / 10^k, as read by strtod, for an integer m below 10^15 (prices, scores, percentages).  For
 * such m and k both m and 10^k are exact doubles, so the division is correctly rounded just as
 * strtod is (Clinger's fast path), and the smallest k that works gives the shortest decimal.  The
 * text is the same as fmt_real's slow path gives: %.15g writes these in positional notation, and
 * by the DBL_DIG argument below it finds the same digits.  Returns 0 when d is not such a number. */
static size_t fmt_real_fast(char buf[40], double d)
{
    double a = fabs(d);
    if (!(a >= 1e-4 && a < 1e15))
        return 0;
    /* If a k-digit decimal fits, a * 10^k is within a hundredth of its digits (15 digits are
     * far coarser than a double's 53 bits), so rounding it finds them. */
    uint64_t scale = 1;
    for (int k = 0; k <= 19; k++, scale *= 10) {
        double scaled = a * (double)scale;
        if (scaled >= 1e15)
            return 0;
        double m = nearbyint(scaled);
        if (m / (double)scale != a)
            continue;
        char *p = buf, num[24];
        if (d < 0)
            *p++ = '-';
        uint64_t u = (uint64_t)m, frac = u % scale;
        char *ip = fmt_u64(num, u / scale, false);
        memcpy(p, ip, (size_t)(num + 24 - ip));
        p += num + 24 - ip;
        *p++ = '.';
        if (k == 0)
            *p++ = '0';
        for (int i = k - 1; i >= 0; i--, frac /= 10)
            p[i] = (char)('0' + frac % 10);
        p += k;
        *p = '\0';
        return (size_t)(p - buf);
    }
    return 0;
}

/* The shortest "%.*g" text that reads back as d (as a float when is_f32), with ".0" added when it
 * would otherwise look like an integer, so JSON readers keep it a real.  d must be finite.
 *
 * For normal numbers the search starts at DBL_DIG / FLT_DIG digits: any decimal of that many digits
 * survives a trip through the binary format and back, so if a shorter decimal reads back as d then
 * the DBL_DIG-digit rendering is that decimal (trailing zeros stripped by %g) and the first try
 * is already shortest.  Most values take one snprintf and one strtod.  Subnormals have fewer
 * significant bits and search from one digit.  (At an exact power of two, where the rounding
 * interval is lopsided, the result can be one digit longer than the minimum; it still reads back
 * exactly.)  printf and strtod follow LC_NUMERIC: the process must stay in the "C" locale, which
 * it does as long as nothing calls setlocale. */
static size_t fmt_real(char buf[40], double d, bool is_f32)
{
    size_t fast = is_f32 ? 0 : fmt_real_fast(buf, d);
    if (fast)
        return fast;
    int lo = is_f32 ? FLT_DIG : DBL_DIG, hi = is_f32 ? 9 : 17;
    if (is_f32 ? fabsf((float)d) < FLT_MIN : fabs(d) < DBL_MIN)
        lo = 1;
    int n = 0;
    for (int prec = lo; prec <= hi; prec++) {
        n = snprintf(buf, 40, "%.*g", prec, d);
        if (prec == hi)
            break;
        if (is_f32 ? strtof(buf, NULL) == (float)d : strtod(buf, NULL) == d)
            break;
    }
    if (strpbrk(buf, ".e") == NULL) {
        buf[n++] = '.';
        buf[n++] = '0';
        buf[n] = '\0';
    }
    return (size_t)n;
}

/* ---- the msgpack reader ----------------------------------------------------------------------- */

typedef enum {
    K_NIL,
    K_BOOL,
    K_UINT, /* every non-negative integer, whatever its encoding */
    K_NEG,  /* negative integers */
    K_F32,
    K_F64,
    K_STR,
    K_BIN,
    K_EXT,
    K_ARRAY,
    K_MAP,
    K_BAD, /* 0xc1, never used */
} kind_t;

typedef struct tok_s {
    kind_t kind;
    bool b;
    uint64_t u;    /* K_UINT; the element count for K_ARRAY and K_MAP */
    int64_t i;     /* K_NEG */
    double d;      /* K_F32 (exactly widened) and K_F64 */
    const char *p; /* K_STR, K_BIN, K_EXT: the bytes, borrowed from the input */
    size_t len;
} tok_t;

/* A map entry written by emit_sorted_map: where its `"key":value` text is in out, and where its key's
 * text is (a string key's bytes in the input; another key's text, which needs no escaping, in out
 * just after the opening quote). */
typedef struct ent_s {
    size_t off, len;
    size_t key_off, key_len;
    bool key_in_input;
} ent_t;

#define RD_LOCAL_ENTS 32

typedef struct rd_s {
    const uint8_t *base, *p, *end;
    char *err;
    size_t errlen;
    sb_buf_t scratch; /* the jansson builder's base64 */
    bool sort_keys;   /* sb_codec_to_json_sorted */
    /* A stack of the entries of the maps being written (sorted keys): in ents_local until it
     * outgrows it, so a payload of a few maps costs no allocation. */
    ent_t *ents;
    size_t nents, ents_cap;
    ent_t ents_local[RD_LOCAL_ENTS];
} rd_t;

static void rd_init(rd_t *r, const char *mp, size_t len, char *err, size_t errlen)
{
    r->base = r->p = (const uint8_t *)mp;
    r->end = r->base + len;
    r->err = err;
    r->errlen = errlen;
    r->scratch = (sb_buf_t)SB_BUF_INIT;
    r->sort_keys = false;
    r->ents = r->ents_local;
    r->nents = 0;
    r->ents_cap = RD_LOCAL_ENTS;
    if (err && errlen)
        err[0] = '\0';
}

static int rd_fail(rd_t *r, int code, const uint8_t *at, const char *what)
{
    if (r->err && r->errlen)
        snprintf(r->err, r->errlen, "%s at byte %zu", what, (size_t)(at - r->base));
    return code;
}

static uint64_t be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* The type bytes 0xc0..0xdf: the kind, and the width of the field after the type byte (the value
 * of a number, the length of a str/bin/ext, the count of a container).  A fixext has no length
 * field; its data length is fixlen. */
static const struct {
    uint8_t kind, width, fixlen;
} types[] = {
    {K_NIL, 0, 0},   {K_BAD, 0, 0},   {K_BOOL, 0, 0}, {K_BOOL, 0, 0}, /* c0: nil, (unused), false, true */
    {K_BIN, 1, 0},   {K_BIN, 2, 0},   {K_BIN, 4, 0},                  /* c4: bin 8/16/32 */
    {K_EXT, 1, 0},   {K_EXT, 2, 0},   {K_EXT, 4, 0},                  /* c7: ext 8/16/32 */
    {K_F32, 4, 0},   {K_F64, 8, 0},                                   /* ca: float 32/64 */
    {K_UINT, 1, 0},  {K_UINT, 2, 0},  {K_UINT, 4, 0}, {K_UINT, 8, 0}, /* cc: uint 8..64 */
    {K_NEG, 1, 0},   {K_NEG, 2, 0},   {K_NEG, 4, 0},  {K_NEG, 8, 0},  /* d0: int 8..64 */
    {K_EXT, 0, 1},   {K_EXT, 0, 2},   {K_EXT, 0, 4},  {K_EXT, 0, 8},  /* d4: fixext 1..8 */
    {K_EXT, 0, 16},                                                   /* d8: fixext 16 */
    {K_STR, 1, 0},   {K_STR, 2, 0},   {K_STR, 4, 0},                  /* d9: str 8/16/32 */
    {K_ARRAY, 2, 0}, {K_ARRAY, 4, 0}, {K_MAP, 2, 0},  {K_MAP, 4, 0},  /* dc: array, map 16/32 */
};
_Static_assert(sizeof types / sizeof types[0] == 0xe0 - 0xc0, "one entry per type byte c0..df");

/* Reads the next value's header into t: a scalar whole, a string/bin/ext with its bytes (checked
 * against what is left of the input, strings validated), a container with its count. */
static int rd_next(rd_t *r, tok_t *t)
{
    const uint8_t *at = r->p;
    if (r->p == r->end)
        return rd_fail(r, SB_ECODEC, at, "truncated");
    uint8_t c = *r->p++;
    memset(t, 0, sizeof *t);

    if (c <= 0x7f) { /* positive fixint */
        t->kind = K_UINT;
        t->u = c;
        return 0;
    }
    if (c >= 0xe0) { /* negative fixint */
        t->kind = K_NEG;
        t->i = (int8_t)c;
        return 0;
    }
    if (c <= 0x9f) { /* fixmap, fixarray */
        t->kind = c <= 0x8f ? K_MAP : K_ARRAY;
        t->u = c & 0x0f;
        goto container;
    }
    if (c <= 0xbf) { /* fixstr */
        t->kind = K_STR;
        t->len = c & 0x1f;
        goto bytes;
    }

    t->kind = types[c - 0xc0].kind;
    size_t w = types[c - 0xc0].width;
    if (t->kind == K_BAD)
        return rd_fail(r, SB_ECODEC, at, "unused type byte 0xc1");
    if ((size_t)(r->end - r->p) < w)
        return rd_fail(r, SB_ECODEC, at, "truncated");
    uint64_t v = be(r->p, w);
    r->p += w;

    switch (t->kind) {
    case K_BOOL:
        t->b = c == 0xc3;
        return 0;
    case K_UINT:
        t->u = v;
        return 0;
    case K_NEG: {
        /* Sign-extend from w bytes; a signed encoding of a non-negative number is a K_UINT. */
        uint64_t sign = 1ull << (8 * w - 1);
        int64_t s = w == 8 ? (int64_t)v : (int64_t)(v ^ sign) - (int64_t)sign;
        if (s >= 0) {
            t->kind = K_UINT;
            t->u = (uint64_t)s;
        } else {
            t->i = s;
        }
        return 0;
    }
    case K_F32: {
        uint32_t bits = (uint32_t)v;
        float f;
        memcpy(&f, &bits, 4);
        t->d = f;
        return 0;
    }
    case K_F64:
        memcpy(&t->d, &v, 8);
        return 0;
    case K_ARRAY:
    case K_MAP:
        t->u = v;
        goto container;
    case K_EXT:
        t->len = w ? (size_t)v : types[c - 0xc0].fixlen;
        /* The type byte is shown nowhere (the data alone becomes base64) but must be there. */
        if (r->p == r->end)
            return rd_fail(r, SB_ECODEC, at, "truncated");
        r->p++;
        goto bytes;
    case K_STR:
    case K_BIN:
        t->len = (size_t)v;
        goto bytes;
    default:
        return 0; /* K_NIL */
    }

bytes:
    if (t->len > (size_t)(r->end - r->p))
        return rd_fail(r, SB_ECODEC, at, "truncated");
    t->p = (const char *)r->p;
    r->p += t->len;
    if (t->kind == K_STR && !utf8_scan((const uint8_t *)t->p, t->len, false))
        return rd_fail(r, SB_EUTF8, at,
                       memchr(t->p, 0, t->len) ? "nul character in string" : "invalid utf-8 in string");
    return 0;

container:
    /* Every element takes at least one byte: a count beyond what is left is a lie, refused
     * before anything is built for it. */
    if (t->u > (size_t)(r->end - r->p) / (t->kind == K_MAP ? 2 : 1))
        return rd_fail(r, SB_ECODEC, at, "truncated");
    return 0;
}

static int check_container(rd_t *r, int depth)
{
    if (depth >= SB_CODEC_MAX_DEPTH)
        return rd_fail(r, SB_ECODEC, r->p - 1, "nested too deeply");
    return 0;
}

static int bad_key(rd_t *r, const uint8_t *at)
{
    return rd_fail(r, SB_ECODEC, at, "map key must be a string, integer or boolean");
}

/* ---- msgpack -> JSON text --------------------------------------------------------------------- */

static int put_string(sb_buf_t *out, const char *p, size_t len)
{
    if (sb_buf_reserve(out, len + 2) != 0)
        return SB_ENOMEM;
    sb_buf_put_json_string(out, p, len);
    return 0;
}

/* Writes a map key (always a JSON string). */
/* Writes a map key; *e (when not NULL) learns where its text is. */
static int emit_key(rd_t *r, sb_buf_t *out, ent_t *e)
{
    const uint8_t *at = r->p;
    tok_t t;
    int rc = rd_next(r, &t);
    if (rc)
        return rc;
    char num[24];
    if (e != NULL) {
        e->key_in_input = t.kind == K_STR;
        e->key_off = t.kind == K_STR ? (size_t)((const uint8_t *)t.p - r->base) : out->len + 1;
    }
    switch (t.kind) {
    case K_STR:
        if (e != NULL)
            e->key_len = t.len;
        return put_string(out, t.p, t.len);
    case K_UINT:
    case K_NEG: {
        char *s = fmt_u64(num, t.kind == K_UINT ? t.u : 0 - (uint64_t)t.i, t.kind == K_NEG);
        if (e != NULL)
            e->key_len = (size_t)(num + 24 - s);
        sb_buf_putc(out, '"');
        sb_buf_append(out, s, (size_t)(num + 24 - s));
        sb_buf_putc(out, '"');
        return 0;
    }
    case K_BOOL:
        if (e != NULL)
            e->key_len = t.b ? 4 : 5;
        sb_buf_puts(out, t.b ? "\"true\"" : "\"false\"");
        return 0;
    default:
        return bad_key(r, at);
    }
}

/* depth: the number of containers around this value. */
static int emit(rd_t *r, sb_buf_t *out, int depth);

static const char *ent_key(const rd_t *r, const sb_buf_t *out, const ent_t *e)
{
    return e->key_in_input ? (const char *)r->base + e->key_off : out->data + e->key_off;
}

/* PostgreSQL's order for a jsonb object's keys: shorter first, then bytewise. */
static int ent_cmp(const rd_t *r, const sb_buf_t *out, const ent_t *a, const ent_t *b)
{
    if (a->key_len != b->key_len)
        return a->key_len < b->key_len ? -1 : 1;
    return memcmp(ent_key(r, out, a), ent_key(r, out, b), a->key_len);
}

static int push_ent(rd_t *r, const ent_t *e)
{
    if (r->nents == r->ents_cap) {
        size_t cap = r->ents_cap * 2;
        ent_t *p = r->ents == r->ents_local ? malloc(cap * sizeof(*p)) : realloc(r->ents, cap * sizeof(*p));
        if (p == NULL)
            return rd_fail(r, SB_ENOMEM, r->p, "out of memory");
        if (r->ents == r->ents_local)
            memcpy(p, r->ents_local, sizeof(r->ents_local));
        r->ents = p;
        r->ents_cap = cap;
    }
    r->ents[r->nents++] = *e;
    return 0;
}

/* Writes a map's n entries (after its '{') with the keys in jsonb's order: each entry is written
 * as it comes; unless they came in order, they are then written again, sorted, after the map's
 * text, and that is moved into its place (a stable sort: a repeated key keeps its place after the
 * earlier one, so the text reads as it would have, the last value winning).  The entries sit on
 * r->ents, a stack shared with the nested maps, which are finished (and sorted) before this one
 * sorts.  The stack holds one entry per key read so far: bounded by the input's size. */
static int emit_sorted_map(rd_t *r, sb_buf_t *out, uint64_t n, int depth)
{
    size_t base = r->nents, start = out->len;
    int rc = 0;
    for (uint64_t i = 0; i < n && rc == 0; i++) {
        if (i)
            sb_buf_putc(out, ',');
        ent_t e = {.off = out->len};
        if ((rc = emit_key(r, out, &e)) != 0)
            break;
        sb_buf_putc(out, ':');
        if ((rc = emit(r, out, depth + 1)) != 0)
            break;
        e.len = out->len - e.off;
        rc = push_ent(r, &e); /* a nested map's entries went above these i and are gone again */
    }
    ent_t *ents = r->ents + base;
    bool sorted = true;
    for (uint64_t i = 1; rc == 0 && i < n && sorted; i++)
        sorted = ent_cmp(r, out, &ents[i - 1], &ents[i]) <= 0;
    if (rc == 0 && !sorted) {
        /* Insertion sort: maps are small (an event's payload has a dozen keys or so). */
        for (uint64_t i = 1; i < n; i++) {
            ent_t e = ents[i];
            uint64_t j = i;
            for (; j > 0 && ent_cmp(r, out, &ents[j - 1], &e) > 0; j--)
                ents[j] = ents[j - 1];
            ents[j] = e;
        }
        size_t len = out->len - start;
        if (sb_buf_reserve(out, len) != 0) {
            rc = rd_fail(r, SB_ENOMEM, r->p, "out of memory");
        } else {
            char *at = out->data + out->len;
            for (uint64_t i = 0; i < n; i++) {
                if (i)
                    *at++ = ',';
                memcpy(at, out->data + ents[i].off, ents[i].len);
                at += ents[i].len;
            }
            memmove(out->data + start, out->data + start + len, len);
            out->data[out->len] = '\0';
        }
    }
    r->nents = base;
    return rc;
}

static int emit(rd_t *r, sb_buf_t *out, int depth)
{
    tok_t t;
    int rc = rd_next(r, &t);
    if (rc)
        return rc;
    char num[40];
    switch (t.kind) {
    case K_NIL:
        sb_buf_append(out, "null", 4);
        return 0;
    case K_BOOL:
        sb_buf_puts(out, t.b ? "true" : "false");
        return 0;
    case K_UINT:
    case K_NEG: {
        /* Written exactly, even above INT64_MAX (valid JSON; jansson reads those only with
         * JSON_DECODE_INT_AS_REAL). */
        char *s = fmt_u64(num, t.kind == K_UINT ? t.u : 0 - (uint64_t)t.i, t.kind == K_NEG);
        sb_buf_append(out, s, (size_t)(num + 24 - s));
        return 0;
    }
    case K_F32:
    case K_F64:
        if (!isfinite(t.d)) {
            sb_buf_append(out, "null", 4);
            return 0;
        }
        sb_buf_append(out, num, fmt_real(num, t.d, t.kind == K_F32));
        return 0;
    case K_STR:
        return put_string(out, t.p, t.len);
    case K_BIN:
    case K_EXT:
        return b64_append(out, t.p, t.len, true);
    case K_ARRAY:
        if ((rc = check_container(r, depth)))
            return rc;
        sb_buf_putc(out, '[');
        for (uint64_t i = 0; i < t.u; i++) {
            if (i)
                sb_buf_putc(out, ',');
            if ((rc = emit(r, out, depth + 1)))
                return rc;
        }
        sb_buf_putc(out, ']');
        return 0;
    case K_MAP:
        if ((rc = check_container(r, depth)))
            return rc;
        sb_buf_putc(out, '{');
        if (r->sort_keys && t.u > 1)
            rc = emit_sorted_map(r, out, t.u, depth);
        else
            for (uint64_t i = 0; i < t.u && rc == 0; i++) {
                if (i)
                    sb_buf_putc(out, ',');
                if ((rc = emit_key(r, out, NULL)) == 0) {
                    sb_buf_putc(out, ':');
                    rc = emit(r, out, depth + 1);
                }
            }
        if (rc)
            return rc;
        sb_buf_putc(out, '}');
        return 0;
    case K_BAD: /* rd_next refuses it */
        break;
    }
    return rd_fail(r, SB_ECODEC, r->p, "unused type byte 0xc1");
}

static int rd_finish(rd_t *r, int rc)
{
    if (rc == 0 && r->p != r->end)
        rc = rd_fail(r, SB_ECODEC, r->p, "trailing bytes after the value");
    sb_buf_free(&r->scratch);
    if (r->ents != r->ents_local)
        free(r->ents);
    return rc;
}

static int to_json(const char *mp, size_t len, sb_buf_t *out, bool sort_keys, char *err, size_t errlen)
{
    rd_t r;
    rd_init(&r, mp, len, err, errlen);
    r.sort_keys = sort_keys;
    size_t start = out->len;
    int rc = rd_finish(&r, emit(&r, out, 0));
    if (rc && out->data) {
        out->len = start;
        out->data[start] = '\0';
    }
    return rc;
}

int sb_codec_to_json(const char *mp, size_t len, sb_buf_t *out, char *err, size_t errlen)
{
    return to_json(mp, len, out, false, err, errlen);
}

int sb_codec_to_json_sorted(const char *mp, size_t len, sb_buf_t *out, char *err, size_t errlen)
{
    return to_json(mp, len, out, true, err, errlen);
}

/* ---- msgpack -> jansson ----------------------------------------------------------------------- */

/* A float32 becomes the double nearest its shortest decimal text, so the tree holds what a JSON
 * reader of sb_codec_to_json's output would (0.1f gives 0.1, not 0.100000001490116). */
static double f32_as_shown(double d)
{
    char num[40];
    fmt_real(num, d, true);
    return strtod(num, NULL);
}

static int build(rd_t *r, json_t **out, int depth);

static int build_map(rd_t *r, uint64_t n, json_t *obj, int depth)
{
    for (uint64_t i = 0; i < n; i++) {
        const uint8_t *at = r->p;
        tok_t k;
        int rc = rd_next(r, &k);
        if (rc)
            return rc;
        char num[24];
        const char *key;
        size_t klen;
        switch (k.kind) {
        case K_STR:
            key = k.p;
            klen = k.len;
            break;
        case K_UINT:
        case K_NEG:
            key = fmt_u64(num, k.kind == K_UINT ? k.u : 0 - (uint64_t)k.i, k.kind == K_NEG);
            klen = (size_t)(num + 24 - key);
            break;
        case K_BOOL:
            key = k.b ? "true" : "false";
            klen = strlen(key);
            break;
        default:
            return bad_key(r, at);
        }
        json_t *v = NULL;
        if ((rc = build(r, &v, depth + 1)))
            return rc;
        /* Keys were validated by rd_next; a repeated key keeps its last value, as jansson's
         * parser does with the JSON text. */
        if (json_object_setn_new_nocheck(obj, key, klen, v) != 0)
            return rd_fail(r, SB_ENOMEM, at, "out of memory");
    }
    return 0;
}

static int build(rd_t *r, json_t **out, int depth)
{
    const uint8_t *at = r->p;
    tok_t t;
    int rc = rd_next(r, &t);
    if (rc)
        return rc;
    json_t *j = NULL;
    switch (t.kind) {
    case K_NIL:
        j = json_null();
        break;
    case K_BOOL:
        j = json_boolean(t.b);
        break;
    case K_UINT:
        /* json_int_t is 64-bit signed: larger values can only be approximated as reals. */
        j = t.u > INT64_MAX ? json_real((double)t.u) : json_integer((json_int_t)t.u);
        break;
    case K_NEG:
        j = json_integer((json_int_t)t.i);
        break;
    case K_F32:
    case K_F64:
        if (!isfinite(t.d))
            j = json_null();
        else
            j = json_real(t.kind == K_F32 ? f32_as_shown(t.d) : t.d);
        break;
    case K_STR:
        j = json_stringn_nocheck(t.p, t.len);
        break;
    case K_BIN:
    case K_EXT:
        sb_buf_reset(&r->scratch);
        if (b64_append(&r->scratch, t.p, t.len, false) != 0)
            return rd_fail(r, SB_ENOMEM, at, "out of memory");
        j = json_stringn_nocheck(r->scratch.data, r->scratch.len);
        break;
    case K_ARRAY:
        if ((rc = check_container(r, depth)))
            return rc;
        if ((j = json_array()) == NULL)
            break;
        for (uint64_t i = 0; i < t.u; i++) {
            json_t *v = NULL;
            if ((rc = build(r, &v, depth + 1)) == 0 && json_array_append_new(j, v) != 0)
                rc = rd_fail(r, SB_ENOMEM, at, "out of memory");
            if (rc) {
                json_decref(j);
                return rc;
            }
        }
        break;
    case K_MAP:
        if ((rc = check_container(r, depth)))
            return rc;
        if ((j = json_object()) == NULL)
            break;
        if ((rc = build_map(r, t.u, j, depth))) {
            json_decref(j);
            return rc;
        }
        break;
    case K_BAD: /* rd_next refuses it */
        return rd_fail(r, SB_ECODEC, at, "unused type byte 0xc1");
    }
    if (j == NULL)
        return rd_fail(r, SB_ENOMEM, at, "out of memory");
    *out = j;
    return 0;
}

int sb_codec_to_jansson(const char *mp, size_t len, json_t **out, char *err, size_t errlen)
{
    rd_t r;
    rd_init(&r, mp, len, err, errlen);
    json_t *j = NULL;
    int rc = rd_finish(&r, build(&r, &j, 0));
    if (rc) {
        json_decref(j);
        return rc;
    }
    *out = j;
    return 0;
}

/* ---- validation only -------------------------------------------------------------------------- */

static int skip(rd_t *r, int depth)
{
    tok_t t;
    int rc = rd_next(r, &t);
    if (rc)
        return rc;
    if (t.kind != K_ARRAY && t.kind != K_MAP)
        return 0;
    if ((rc = check_container(r, depth)))
        return rc;
    for (uint64_t i = 0; i < t.u; i++) {
        if (t.kind == K_MAP) {
            const uint8_t *at = r->p;
            tok_t k;
            if ((rc = rd_next(r, &k)))
                return rc;
            if (k.kind != K_STR && k.kind != K_UINT && k.kind != K_NEG && k.kind != K_BOOL)
                return bad_key(r, at);
        }
        if ((rc = skip(r, depth + 1)))
            return rc;
    }
    return 0;
}

bool sb_codec_is_valid_map(const char *mp, size_t len)
{
    if (len == 0)
        return false;
    uint8_t c = (uint8_t)mp[0];
    if (!((c >= 0x80 && c <= 0x8f) || c == 0xde || c == 0xdf))
        return false;
    rd_t r;
    rd_init(&r, mp, len, NULL, 0);
    return rd_finish(&r, skip(&r, 0)) == 0;
}

/* ---- jansson -> msgpack ----------------------------------------------------------------------- */

static int buf_write(void *data, const char *p, size_t n)
{
    sb_buf_append(data, p, n);
    return 0;
}

/* Strings are checked as the decoder would check them, so whatever is written can be read back:
 * jansson's own constructors validate UTF-8, but json_stringn and the _nocheck variants let
 * U+0000 or unchecked bytes through. */
static int pack_str(msgpack_packer *pk, const char *s, size_t n)
{
    if (n > UINT32_MAX)
        return SB_ECODEC;
    if (!utf8_scan((const uint8_t *)s, n, false))
        return SB_EUTF8;
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
    return 0;
}

static int pack(msgpack_packer *pk, const json_t *j, int depth)
{
    int rc;
    switch (json_typeof(j)) {
    case JSON_NULL:
        msgpack_pack_nil(pk);
        return 0;
    case JSON_TRUE:
        msgpack_pack_true(pk);
        return 0;
    case JSON_FALSE:
        msgpack_pack_false(pk);
        return 0;
    case JSON_INTEGER:
        msgpack_pack_int64(pk, (int64_t)json_integer_value(j));
        return 0;
    case JSON_REAL:
        msgpack_pack_double(pk, json_real_value(j));
        return 0;
    case JSON_STRING:
        return pack_str(pk, json_string_value(j), json_string_length(j));
    case JSON_ARRAY: {
        size_t n = json_array_size(j);
        if (depth >= SB_CODEC_MAX_DEPTH || n > UINT32_MAX)
            return SB_ECODEC;
        msgpack_pack_array(pk, n);
        for (size_t i = 0; i < n; i++)
            if ((rc = pack(pk, json_array_get(j, i), depth + 1)))
                return rc;
        return 0;
    }
    case JSON_OBJECT: {
        size_t n = json_object_size(j);
        if (depth >= SB_CODEC_MAX_DEPTH || n > UINT32_MAX)
            return SB_ECODEC;
        msgpack_pack_map(pk, n);
        const char *key;
        size_t klen;
        json_t *v;
        /* The iteration macro wants a non-const object; it does not modify it. */
        json_t *obj = (json_t *)j;
        json_object_keylen_foreach(obj, key, klen, v)
        {
            if ((rc = pack_str(pk, key, klen)) || (rc = pack(pk, v, depth + 1)))
                return rc;
        }
        return 0;
    }
    }
    return SB_ECODEC;
}

int sb_codec_from_jansson(const json_t *j, sb_buf_t *out)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, buf_write);
    size_t start = out->len;
    int rc = j ? pack(&pk, j, 0) : SB_EINVAL;
    if (rc && out->data) {
        out->len = start;
        out->data[start] = '\0';
    }
    return rc;
}

int sb_codec_from_json_text(const char *json, size_t len, sb_buf_t *out, char *err, size_t errlen)
{
    json_error_t jerr;
    int rc = 0;
    if (err && errlen)
        err[0] = '\0';
    json_t *j = json_loadb(json, len, 0, &jerr);
    if (j == NULL) {
        if (err && errlen)
            snprintf(err, errlen, "%s at line %d column %d", jerr.text, jerr.line, jerr.column);
        return json_error_code(&jerr) == json_error_invalid_utf8 ? SB_EUTF8 : SB_ECODEC;
    }
    if (!json_is_object(j)) {
        if (err && errlen)
            snprintf(err, errlen, "not a json object");
        rc = SB_ECODEC;
        goto out_decref;
    }
    rc = sb_codec_from_jansson(j, out);
    if (rc && err && errlen)
        snprintf(err, errlen, "%s", rc == SB_EUTF8 ? "invalid utf-8 in string" : "nested too deeply");
out_decref:
    json_decref(j);
    return rc;
}
