#include "core/uuid.h"
#include "core/error.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/time.h>

static void fill(uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t r = getrandom(p, n, 0);
        if (r > 0) {
            p += r;
            n -= (size_t)r;
        }
    }
}

/* Each thread draws from its own pool, refilled POOL bytes at a time: one getrandom call per 25
 * version 7 ids instead of one each (a request id and the ids of what it creates, on every request).
 * Bytes handed out are wiped from the pool; a forked child empties its pool first, so parent and
 * child never hand out the same bytes. */
#define POOL 256
static __thread uint8_t pool[POOL];
static __thread size_t pool_left;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void empty_pool(void)
{
    memset(pool, 0, sizeof(pool));
    pool_left = 0;
}

static void register_atfork(void)
{
    pthread_atfork(NULL, NULL, empty_pool);
}

static void random_bytes(uint8_t *p, size_t n)
{
    pthread_once(&atfork_once, register_atfork);
    if (n > POOL) {
        fill(p, n);
        return;
    }
    if (pool_left < n) {
        fill(pool, POOL);
        pool_left = POOL;
    }
    uint8_t *src = pool + (POOL - pool_left);
    memcpy(p, src, n);
    memset(src, 0, n);
    pool_left -= n;
}

void sb_uuid_v4(sb_uuid_t *out)
{
    random_bytes(out->b, 16);
    out->b[6] = (uint8_t)((out->b[6] & 0x0f) | 0x40);
    out->b[8] = (uint8_t)((out->b[8] & 0x3f) | 0x80);
}

void sb_uuid_v7(sb_uuid_t *out)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    uint64_t ms = (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
    random_bytes(out->b + 6, 10);
    for (int i = 0; i < 6; i++)
        out->b[i] = (uint8_t)(ms >> (40 - 8 * i));
    out->b[6] = (uint8_t)((out->b[6] & 0x0f) | 0x70);
    out->b[8] = (uint8_t)((out->b[8] & 0x3f) | 0x80);
}

/* SHA-1 fetched once: EVP_sha1() makes every EVP_DigestInit_ex look the implementation up by name
 * (as costly as hashing a short name; an inbound message's id is named by its MessageSid).  Each
 * thread hashes in a context of its own, made on first use and kept: a context made and freed per
 * id cost two allocations and frees, and a reference taken and dropped on the digest (an atomic
 * both loops write).  The pthread key's destructor frees a thread's context when the thread ends;
 * the thread-local pointer is the leak checkers' root until then. */
static EVP_MD *sha1_md;
static pthread_key_t sha1_key;
static pthread_once_t sha1_once = PTHREAD_ONCE_INIT;
static _Thread_local EVP_MD_CTX *sha1_ctx;

static void free_ctx(void *p)
{
    EVP_MD_CTX_free(p);
}

static void fetch_sha1(void)
{
    sha1_md = EVP_MD_fetch(NULL, "SHA1", NULL); /* kept for the process's life */
    if (pthread_key_create(&sha1_key, free_ctx) != 0)
        abort();
}

void sb_uuid_from_name(sb_uuid_t *out, const sb_uuid_t *ns, const char *name, size_t len)
{
    uint8_t digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    EVP_MD_CTX *ctx = sha1_ctx;
    if (ctx == NULL) {
        pthread_once(&sha1_once, fetch_sha1);
        ctx = EVP_MD_CTX_new();
        if (ctx == NULL || pthread_setspecific(sha1_key, ctx) != 0)
            abort();
        sha1_ctx = ctx;
    }
    /* Without a context or the digest there is no name-based id at all: the same inputs must
     * always give the same id, so there is no fallback. */
    if (sha1_md == NULL || !EVP_DigestInit_ex(ctx, sha1_md, NULL) || !EVP_DigestUpdate(ctx, ns->b, 16) ||
        !EVP_DigestUpdate(ctx, name, len) || !EVP_DigestFinal_ex(ctx, digest, &dlen))
        abort();
    memcpy(out->b, digest, 16);
    out->b[6] = (uint8_t)((out->b[6] & 0x0f) | 0x50);
    out->b[8] = (uint8_t)((out->b[8] & 0x3f) | 0x80);
}

void sb_uuid_format(const sb_uuid_t *u, char out[SB_UUID_STRLEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    char *p = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *p++ = '-';
        *p++ = hex[u->b[i] >> 4];
        *p++ = hex[u->b[i] & 15];
    }
    *p = '\0';
}

/* A hex digit's value plus one; 0 for anything else.  Table-driven: every command names its stream
 * and workspace by uuid, and a webhook parses five of them. */
static const uint8_t hex1[256] = {
    ['0'] = 1,  ['1'] = 2,  ['2'] = 3,  ['3'] = 4,  ['4'] = 5,  ['5'] = 6,  ['6'] = 7,  ['7'] = 8,
    ['8'] = 9,  ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
    ['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16,
};

int sb_uuid_parse(const char *s, size_t len, sb_uuid_t *out)
{
    /* Where each byte's two digits start in 8-4-4-4-12. */
    static const uint8_t at[16] = {0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34};
    if (len != SB_UUID_STRLEN || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-')
        return SB_EINVAL;
    sb_uuid_t u;
    bool bad = false;
    for (int i = 0; i < 16; i++) {
        unsigned hi = hex1[(unsigned char)s[at[i]]], lo = hex1[(unsigned char)s[at[i] + 1]];
        bad |= hi == 0 || lo == 0;
        u.b[i] = (uint8_t)((hi - 1) << 4 | (lo - 1));
    }
    if (bad)
        return SB_EINVAL;
    *out = u;
    return 0;
}

bool sb_uuid_is_nil(const sb_uuid_t *u)
{
    static const uint8_t zero[16];
    return memcmp(u->b, zero, 16) == 0;
}
