/* Pagination cursors (http/api.h): pure, so unit tests and the fuzzer reach them alone. */
#include <stdint.h>
#include <string.h>

#include <sodium.h>

#include "core/error.h"
#include "core/uuid.h"
#include "http/api.h"

/* A cursor is 24 bytes, base64url without padding (32 characters): the time, big-endian, then the
 * uuid's bytes.  Opaque to clients; decoding checks the length exactly. */
void sb_api_cursor_encode(int64_t at_us, const char *id, char out[SB_API_CURSOR_MAX])
{
    unsigned char raw[24];
    uint64_t v = (uint64_t)at_us;
    for (int i = 7; i >= 0; i--, v >>= 8)
        raw[i] = (unsigned char)(v & 0xff);
    sb_uuid_t u = {{0}};
    sb_uuid_parse(id, strlen(id), &u);
    memcpy(raw + 8, u.b, 16);
    sodium_bin2base64(out, SB_API_CURSOR_MAX, raw, sizeof(raw), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

int sb_api_cursor_decode(const char *s, int64_t *at_us, char id[SB_UUID_STRLEN + 1])
{
    unsigned char raw[24];
    size_t n, len = strlen(s);
    /* Checked here: libsodium's decoder accepts some bytes above 0x7f as if they were base64. */
    if (len != 32 || strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != 32 ||
        sodium_base642bin(raw, sizeof(raw), s, len, NULL, &n, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        n != sizeof(raw))
        return SB_EINVAL;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | raw[i];
    sb_uuid_t u;
    memcpy(u.b, raw + 8, 16);
    sb_uuid_format(&u, id);
    *at_us = (int64_t)v;
    return 0;
}
