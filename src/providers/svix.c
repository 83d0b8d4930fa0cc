#include "providers/svix.h"

#include "core/buf.h"
#include "core/error.h"
#include "events/codec.h"

#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define MAX_SECRET 1024

static int decode_secret(const char *secret, sb_buf_t *key)
{
    if (secret == NULL)
        return SB_EINVAL;
    size_t n = strlen(secret);
    if (n >= 6 && memcmp(secret, "whsec_", 6) == 0) {
        secret += 6;
        n -= 6;
    }
    if (n == 0 || n > MAX_SECRET)
        return SB_EINVAL;
    if (sb_base64_decode(secret, n, key) != 0 || key->len == 0)
        return SB_EINVAL;
    return 0;
}

static void sign_with_key(const sb_buf_t *key, const char *id, size_t id_len, int64_t ts, const char *body,
                          size_t body_len, char out[SB_SVIX_SIG_LEN + 1])
{
    crypto_auth_hmacsha256_state st;
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    char tsbuf[32];
    int tl = snprintf(tsbuf, sizeof tsbuf, "%lld", (long long)ts);
    crypto_auth_hmacsha256_init(&st, (const unsigned char *)key->data, key->len);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)id, id_len);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)".", 1);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)tsbuf, (size_t)tl);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)".", 1);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)body, body_len);
    crypto_auth_hmacsha256_final(&st, mac);
    sodium_memzero(&st, sizeof st);
    sodium_bin2base64(out, SB_SVIX_SIG_LEN + 1, mac, sizeof mac, sodium_base64_VARIANT_ORIGINAL);
}

int sb_svix_sign(const char *secret, const char *id, size_t id_len, int64_t timestamp, const char *body,
                 size_t body_len, char out[SB_SVIX_SIG_LEN + 1])
{
    sb_buf_t key = SB_BUF_INIT;
    int rc = decode_secret(secret, &key);
    if (rc == 0)
        sign_with_key(&key, id, id_len, timestamp, body, body_len, out);
    else
        out[0] = '\0';
    if (key.data)
        sodium_memzero(key.data, key.len);
    sb_buf_free(&key);
    return rc;
}

int sb_svix_verify(const char *secret, const char *id, size_t id_len, const char *timestamp, size_t ts_len,
                   const char *signatures, size_t sig_len, const char *body, size_t body_len, int64_t now)
{
    if (id == NULL || id_len == 0 || id_len > SB_SVIX_MAX_ID || timestamp == NULL || ts_len == 0 ||
        ts_len > 12 || signatures == NULL || sig_len == 0 || sig_len > SB_SVIX_MAX_HEADER ||
        (body == NULL && body_len > 0))
        return SB_EINVAL;
    int64_t ts = 0;
    for (size_t i = 0; i < ts_len; i++) {
        if (timestamp[i] < '0' || timestamp[i] > '9')
            return SB_EINVAL;
        ts = ts * 10 + (timestamp[i] - '0');
    }
    if (now - ts > SB_SVIX_TOLERANCE_S || ts - now > SB_SVIX_TOLERANCE_S)
        return SB_ETIMEOUT;

    sb_buf_t key = SB_BUF_INIT;
    int rc = decode_secret(secret, &key);
    if (rc != 0)
        goto out;
    char expect[SB_SVIX_SIG_LEN + 1];
    sign_with_key(&key, id, id_len, ts, body ? body : "", body_len, expect);

    /* Every entry is compared; svix's own libraries ignore versions other than v1. */
    bool ok = false;
    for (size_t i = 0; i < sig_len;) {
        const char *sp = memchr(signatures + i, ' ', sig_len - i);
        size_t end = sp ? (size_t)(sp - signatures) : sig_len;
        const char *e = signatures + i;
        size_t elen = end - i;
        if (elen == 3 + SB_SVIX_SIG_LEN && memcmp(e, "v1,", 3) == 0)
            ok |= sodium_memcmp(e + 3, expect, SB_SVIX_SIG_LEN) == 0;
        i = end + 1;
    }
    rc = ok ? 0 : SB_EPERM;
out:
    if (key.data)
        sodium_memzero(key.data, key.len);
    sb_buf_free(&key);
    return rc;
}
