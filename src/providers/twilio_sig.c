#include "providers/twilio_sig.h"

#include "core/buf.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- URL variants ------------------------------------------------------------------------------ */

/* Splits "scheme://[userinfo@]host[:port]rest" the way Twilio's node validator does (no
 * normalisation).  Returns false when url has no "scheme://". */
static bool split_url(const char *u, size_t n, size_t *scheme_end, size_t *host_start, size_t *port_start,
                      size_t *auth_end)
{
    size_t i = 0;
    if (n == 0 || !((u[0] | 0x20) >= 'a' && (u[0] | 0x20) <= 'z'))
        return false;
    for (i = 1; i < n; i++) {
        char c = u[i];
        if (!((c | 0x20) >= 'a' && (c | 0x20) <= 'z') && !(c >= '0' && c <= '9') && c != '+' && c != '.' &&
            c != '-')
            break;
    }
    if (n - i < 3 || memcmp(u + i, "://", 3) != 0)
        return false;
    *scheme_end = i + 3;
    size_t a = *scheme_end, e = a;
    while (e < n && u[e] != '/' && u[e] != '?' && u[e] != '#')
        e++;
    *auth_end = e;
    size_t h = a;
    for (size_t k = a; k < e; k++)
        if (u[k] == '@')
            h = k + 1;
    *host_start = h;
    size_t from = h;
    for (size_t k = h; k < e; k++)
        if (u[k] == ']')
            from = k + 1;
    *port_start = e;
    for (size_t k = from; k < e; k++) {
        if (u[k] == ':') {
            *port_start = k;
            break;
        }
    }
    return true;
}

void sb_twilio_sig_url_variants(const char *url, size_t url_len, char *without, size_t *without_len,
                                char *with, size_t *with_len)
{
    size_t se, hs, ps, ae;
    if (!split_url(url, url_len, &se, &hs, &ps, &ae)) {
        memcpy(without, url, url_len);
        memcpy(with, url, url_len);
        *without_len = *with_len = url_len;
        return;
    }
    /* without: drop [ps, ae) */
    memcpy(without, url, ps);
    memcpy(without + ps, url + ae, url_len - ae);
    *without_len = url_len - (ae - ps);
    /* with: unchanged when a port is there, else the scheme's default before the rest */
    if (ps < ae) {
        memcpy(with, url, url_len);
        *with_len = url_len;
        return;
    }
    bool https = se == 8 && strncasecmp(url, "https://", 8) == 0;
    const char *port = https ? ":443" : ":80";
    size_t pl = strlen(port);
    memcpy(with, url, ae);
    memcpy(with + ae, port, pl);
    memcpy(with + ae + pl, url + ae, url_len - ae);
    *with_len = url_len + pl;
}

/* ---- ordering ---------------------------------------------------------------------------------- */

/* Next UTF-16 code unit of valid UTF-8 s[*i..n); *pending carries a low surrogate between calls.
 * Returns -1 at the end. */
static int32_t next_unit(const unsigned char *s, size_t n, size_t *i, int32_t *pending)
{
    if (*pending >= 0) {
        int32_t u = *pending;
        *pending = -1;
        return u;
    }
    if (*i >= n)
        return -1;
    unsigned char c = s[*i];
    uint32_t cp;
    size_t len;
    if (c < 0x80) {
        cp = c;
        len = 1;
    } else if ((c & 0xE0) == 0xC0) {
        cp = c & 0x1F;
        len = 2;
    } else if ((c & 0xF0) == 0xE0) {
        cp = c & 0x0F;
        len = 3;
    } else {
        cp = c & 0x07;
        len = 4;
    }
    if (*i + len > n) /* cannot happen for valid UTF-8; fail safe by ending the string */
        len = n - *i;
    for (size_t k = 1; k < len; k++)
        cp = cp << 6 | (s[*i + k] & 0x3F);
    *i += len;
    if (cp >= 0x10000) {
        cp -= 0x10000;
        *pending = (int32_t)(0xDC00 + (cp & 0x3FF));
        return (int32_t)(0xD800 + (cp >> 10));
    }
    return (int32_t)cp;
}

/* Compares two UTF-8 strings as JavaScript compares strings, code unit by code unit. */
static int cmp_js_slow(const char *a, size_t an, const char *b, size_t bn)
{
    size_t i = 0, j = 0;
    int32_t pa = -1, pb = -1;
    for (;;) {
        int32_t x = next_unit((const unsigned char *)a, an, &i, &pa);
        int32_t y = next_unit((const unsigned char *)b, bn, &j, &pb);
        if (x != y)
            return x < y ? -1 : 1; /* -1 (the end) sorts first */
        if (x < 0)
            return 0;
    }
}

/* The same by bytes where that is the same thing.  UTF-8's byte order is code point order, which
 * is UTF-16's order except between a character above U+FFFF (lead byte F0..F4, a surrogate pair
 * D800..DFFF in UTF-16) and one in U+E000..U+FFFF (lead byte EE or EF).  Before the first
 * difference the strings agree; a difference inside a character compares two characters of the
 * same lead byte, hence the same kind; only a difference at two such lead bytes needs the code
 * units (and a prefix sorts first either way). */
static int cmp_js(const char *a, size_t an, const char *b, size_t bn)
{
    size_t n = an < bn ? an : bn, i = 0;
    while (i < n && a[i] == b[i])
        i++;
    if (i == n)
        return an < bn ? -1 : an > bn;
    unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
    if ((x >= 0xee && y >= 0xee) && ((x >= 0xf0) != (y >= 0xf0)))
        return cmp_js_slow(a, an, b, bn);
    return x < y ? -1 : 1;
}

typedef struct {
    const sb_form_field_t *f;
    size_t index;
} ref_t;

static int by_name_then_value(const void *pa, const void *pb)
{
    const ref_t *a = pa, *b = pb;
    int c = cmp_js(a->f->name, a->f->name_len, b->f->name, b->f->name_len);
    if (c == 0)
        c = cmp_js(a->f->value, a->f->value_len, b->f->value, b->f->value_len);
    if (c == 0)
        c = a->index < b->index ? -1 : a->index > b->index;
    return c;
}

static int by_name_then_arrival(const void *pa, const void *pb)
{
    const ref_t *a = pa, *b = pb;
    int c = cmp_js(a->f->name, a->f->name_len, b->f->name, b->f->name_len);
    if (c == 0)
        c = a->index < b->index ? -1 : a->index > b->index;
    return c;
}

/* A webhook's handful of fields sorted in place, without qsort's general machinery (a merge sort
 * through a buffer and a call per comparison: most of this file's cost after the hashing); qsort
 * past SMALL_SORT, so that a request with many fields costs n log n comparisons, not n^2.  Both
 * orders are total (the index breaks ties), so either sort gives the same order. */
#define SMALL_SORT 16

static void sort_refs(ref_t *refs, size_t n, int (*cmp)(const void *, const void *))
{
    if (n > SMALL_SORT) {
        qsort(refs, n, sizeof(*refs), cmp);
        return;
    }
    for (size_t i = 1; i < n; i++) {
        ref_t r = refs[i];
        size_t j = i;
        for (; j > 0 && cmp(&refs[j - 1], &r) > 0; j--)
            refs[j] = refs[j - 1];
        refs[j] = r;
    }
}

/* ---- signing ----------------------------------------------------------------------------------- */

/* The parameter part of the signed string, in one of the two orders. */
static void params_string(const sb_form_t *params, bool library_order, sb_buf_t *out)
{
    if (params == NULL || params->n == 0)
        return;
    ref_t *refs = malloc(params->n * sizeof(*refs));
    if (refs == NULL)
        abort(); /* at most SB_FORM_MAX_FIELDS small entries */
    for (size_t i = 0; i < params->n; i++) {
        refs[i].f = &params->fields[i];
        refs[i].index = i;
    }
    sort_refs(refs, params->n, library_order ? by_name_then_value : by_name_then_arrival);
    size_t total = 0;
    for (size_t i = 0; i < params->n; i++)
        total += params->fields[i].name_len + params->fields[i].value_len;
    if (sb_buf_reserve(out, total) != 0)
        abort(); /* at most a request body's size */
    for (size_t i = 0; i < params->n; i++) {
        const sb_form_field_t *f = refs[i].f;
        if (library_order && i > 0) {
            const sb_form_field_t *p = refs[i - 1].f;
            if (p->name_len == f->name_len && p->value_len == f->value_len &&
                memcmp(p->name, f->name, f->name_len) == 0 && memcmp(p->value, f->value, f->value_len) == 0)
                continue; /* the libraries take a repeated name's distinct values */
        }
        memcpy(out->data + out->len, f->name, f->name_len);
        memcpy(out->data + out->len + f->name_len, f->value, f->value_len);
        out->len += f->name_len + f->value_len;
    }
    out->data[out->len] = '\0';
    free(refs);
}

/* HMAC-SHA1 (RFC 2104) over SHA-1 states keyed once: the inner and outer pads absorbed, copied for
 * each message.  By hand rather than through OpenSSL's HMAC(), which fetches the digest and the
 * MAC by name on every call (a provider lookup that cost more than the hashing itself on the
 * webhook path); the digest is fetched once per process.
 *
 * Each thread keeps the keyed states of the last few keys it used (a loop answers webhooks for a
 * handful of workspaces at a time), so that a webhook does not allocate, key and free three
 * contexts.  HMAC depends on the key only through K0 (the key zero-padded to a block, or its
 * digest when longer), so a state is found by its K0; they are wiped when evicted and when the
 * thread ends. */
#define SHA1_BLOCK 64
#define SHA1_LEN 20
#define KEY_SLOTS 4

static EVP_MD *sha1_md;
static pthread_key_t thread_key;
static pthread_once_t sha1_once = PTHREAD_ONCE_INIT;

typedef struct {
    EVP_MD_CTX *inner, *outer; /* the pads absorbed; NULL until the slot is first used */
    unsigned char k0[SHA1_BLOCK];
    bool keyed;
    uint64_t used;
} keyed_t;

typedef struct {
    EVP_MD_CTX *work;
    keyed_t slots[KEY_SLOTS];
    uint64_t tick;
} thread_hmac_t;

/* Also a root for leak checkers: the pthread key's destructor frees it when the thread ends. */
static _Thread_local thread_hmac_t *thread_hmac;

static void thread_hmac_free(void *p)
{
    thread_hmac_t *t = p;
    for (int i = 0; i < KEY_SLOTS; i++) {
        EVP_MD_CTX_free(t->slots[i].inner);
        EVP_MD_CTX_free(t->slots[i].outer);
    }
    EVP_MD_CTX_free(t->work);
    sodium_memzero(t, sizeof(*t));
    free(t);
}

static void init_once(void)
{
    sha1_md = EVP_MD_fetch(NULL, "SHA1", NULL); /* kept for the process's life */
    if (pthread_key_create(&thread_key, thread_hmac_free) != 0)
        abort();
}

/* Failing here means OpenSSL cannot hash SHA-1 at all (or memory ran out for a few small
 * contexts): a broken process, not bad input. */
static void must(int ok)
{
    if (!ok)
        abort();
}

static thread_hmac_t *thread_state(void)
{
    if (thread_hmac != NULL)
        return thread_hmac;
    pthread_once(&sha1_once, init_once);
    must(sha1_md != NULL);
    thread_hmac_t *t = calloc(1, sizeof(*t));
    must(t != NULL);
    t->work = EVP_MD_CTX_new();
    must(t->work != NULL && pthread_setspecific(thread_key, t) == 0);
    thread_hmac = t;
    return t;
}

/* The keyed states for key: this thread's, or absorbed now into the least recently used slot. */
static const keyed_t *hmac_key(thread_hmac_t *t, const char *key, size_t key_len)
{
    unsigned char k0[SHA1_BLOCK] = {0}, pad[SHA1_BLOCK];
    if (key_len > SHA1_BLOCK) {
        unsigned int n = 0;
        must(EVP_Digest(key, key_len, k0, &n, sha1_md, NULL));
    } else {
        memcpy(k0, key, key_len);
    }
    keyed_t *k = &t->slots[0];
    for (int i = 0; i < KEY_SLOTS; i++) {
        keyed_t *s = &t->slots[i];
        if (s->keyed && memcmp(s->k0, k0, SHA1_BLOCK) == 0) {
            s->used = ++t->tick;
            sodium_memzero(k0, sizeof(k0));
            return s;
        }
        if (!s->keyed || (k->keyed && s->used < k->used))
            k = s;
    }
    if (k->inner == NULL) {
        k->inner = EVP_MD_CTX_new();
        k->outer = EVP_MD_CTX_new();
        must(k->inner != NULL && k->outer != NULL);
    }
    for (int i = 0; i < SHA1_BLOCK; i++)
        pad[i] = k0[i] ^ 0x36;
    must(EVP_DigestInit_ex(k->inner, sha1_md, NULL) && EVP_DigestUpdate(k->inner, pad, SHA1_BLOCK));
    for (int i = 0; i < SHA1_BLOCK; i++)
        pad[i] = k0[i] ^ 0x5c;
    must(EVP_DigestInit_ex(k->outer, sha1_md, NULL) && EVP_DigestUpdate(k->outer, pad, SHA1_BLOCK));
    memcpy(k->k0, k0, SHA1_BLOCK);
    k->keyed = true;
    k->used = ++t->tick;
    sodium_memzero(k0, sizeof(k0));
    sodium_memzero(pad, sizeof(pad));
    return k;
}

/* The HMAC of url followed by ps, into md. */
static void mac(thread_hmac_t *t, const keyed_t *k, const char *url, size_t url_len, const char *ps,
                size_t ps_len, unsigned char md[SHA1_LEN])
{
    unsigned char ih[SHA1_LEN];
    unsigned int n = 0;
    must(EVP_MD_CTX_copy_ex(t->work, k->inner) && EVP_DigestUpdate(t->work, url, url_len) &&
         EVP_DigestUpdate(t->work, ps, ps_len) && EVP_DigestFinal_ex(t->work, ih, &n));
    must(EVP_MD_CTX_copy_ex(t->work, k->outer) && EVP_DigestUpdate(t->work, ih, SHA1_LEN) &&
         EVP_DigestFinal_ex(t->work, md, &n));
}

/* A received signature (28 characters) into the 20 bytes it encodes; false unless it is exactly
 * what base64 (standard alphabet, padded) makes of 20 bytes, so that the bytes are equal exactly
 * when the texts would be: 27 characters of the alphabet, the last with its two unused bits clear,
 * then '='.  The request's own header, so read in variable time: only the comparison with the
 * expected MAC must take constant time (sodium_memcmp).  Checking this way rather than encoding
 * each expected MAC saves libsodium's constant-time encoder, a tenth of the check's cost. */
static bool decode_sig(const char *sig, unsigned char out[SHA1_LEN])
{
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    if (sig[SB_TWILIO_SIG_LEN - 1] != '=')
        return false;
    for (size_t i = 0; i < SB_TWILIO_SIG_LEN - 1; i++) {
        unsigned char c = (unsigned char)sig[i];
        int v = c >= 'A' && c <= 'Z'   ? c - 'A'
                : c >= 'a' && c <= 'z' ? c - 'a' + 26
                : c >= '0' && c <= '9' ? c - '0' + 52
                : c == '+'             ? 62
                : c == '/'             ? 63
                                       : -1;
        if (v < 0)
            return false;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    return o == SHA1_LEN && acc == 0; /* 162 bits read, 160 used: the 2 left over must be 0 */
}

void sb_twilio_sig_compute(const char *auth_token, const char *url, size_t url_len, const sb_form_t *params,
                           char out[SB_TWILIO_SIG_LEN + 1])
{
    sb_buf_t ps = SB_BUF_INIT;
    params_string(params, true, &ps);
    thread_hmac_t *t = thread_state();
    unsigned char md[SHA1_LEN];
    mac(t, hmac_key(t, auth_token, strlen(auth_token)), url, url_len, ps.data ? ps.data : "", ps.len, md);
    sodium_bin2base64(out, SB_TWILIO_SIG_LEN + 1, md, SHA1_LEN, sodium_base64_VARIANT_ORIGINAL);
    sb_buf_free(&ps);
}

static bool has_repeated_name(const sb_form_t *params)
{
    if (params == NULL)
        return false;
    for (size_t i = 0; i < params->n; i++)
        for (size_t j = i + 1; j < params->n; j++)
            if (params->fields[i].name_len == params->fields[j].name_len &&
                memcmp(params->fields[i].name, params->fields[j].name, params->fields[i].name_len) == 0)
                return true;
    return false;
}

bool sb_twilio_sig_check(const char *auth_token, const char *url, size_t url_len, const sb_form_t *params,
                         const char *sig, size_t sig_len)
{
    unsigned char given[SHA1_LEN];
    if (auth_token == NULL || auth_token[0] == '\0' || sig == NULL || sig_len != SB_TWILIO_SIG_LEN ||
        !decode_sig(sig, given))
        return false; /* no MAC is written so: it matches none */
    char *without = malloc(2 * (url_len + 8));
    if (without == NULL)
        abort();
    char *with = without + url_len + 8;
    size_t wo_len, w_len;
    sb_twilio_sig_url_variants(url, url_len, without, &wo_len, with, &w_len);

    sb_buf_t lib = SB_BUF_INIT, arrival = SB_BUF_INIT;
    params_string(params, true, &lib);
    bool repeated = has_repeated_name(params);
    if (repeated)
        params_string(params, false, &arrival);

    const char *urls[2] = {without, with};
    size_t lens[2] = {wo_len, w_len};
    bool ok = false;
    thread_hmac_t *t = thread_state();
    const keyed_t *k = hmac_key(t, auth_token, strlen(auth_token));
    /* Each comparison is constant-time, and a signature that matches no candidate is compared with
     * every one of them.  Stopping at the first match only tells, by its timing, which accepted form
     * a valid signature has: nothing about the token, and nothing its sender did not know. */
    for (int u = 0; u < 2 && !ok; u++) {
        for (int order = 0; order < (repeated ? 2 : 1) && !ok; order++) {
            const sb_buf_t *ps = order == 0 ? &lib : &arrival;
            unsigned char expect[SHA1_LEN];
            mac(t, k, urls[u], lens[u], ps->data ? ps->data : "", ps->len, expect);
            ok = sodium_memcmp(expect, given, SHA1_LEN) == 0;
        }
    }
    sb_buf_free(&lib);
    sb_buf_free(&arrival);
    free(without);
    return ok;
}
