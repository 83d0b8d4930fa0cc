/* Content codings (src/http/encoding.c): which Accept-Encoding values make gzip acceptable
 * (RFC 9110 §12.5.3, weights §12.4.2), and gzip that inflates back to its input. */
#include "http/encoding.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "sbtest.h"

/* What browsers, fetch and curl --compressed send, and other ways of taking gzip. */
static const char *const accepted[] = {
    "gzip, deflate, br",        "gzip, deflate, br, zstd", "deflate, gzip", "GZip", "x-gzip",
    "gzip;q=0.5, identity;q=1", "gzip ; q=1.000",          "gzip;Q=0.001",  "*",    "br;q=1, *;q=0.1",
    "identity;q=0, gzip",       "gzip;foo=bar;q=0.8",
};
/* Absent, refused by weight, only other codings; a malformed weight counts as 0 (identity is
 * always safe). */
static const char *const refused[] = {
    "",           "identity",      "br, deflate", "gzip;q=0",   "gzip;q=0.000", "gzip ;q=0 , deflate",
    "*;q=0",      "gzip;q=0, *",   "*, gzip;q=0", "gzipx",      "xgzip",        "gzip;q=2",
    "gzip;q=1.5", "gzip;q=0.0001", "gzip;q=",     "gzip;q=abc", ",,;",
};

static void test_accept(void)
{
    for (size_t i = 0; i < sizeof(accepted) / sizeof(accepted[0]); i++)
        if (!CHECK(sb_http_gzip_acceptable(accepted[i], strlen(accepted[i]))))
            fprintf(stderr, "  not accepted: \"%s\"\n", accepted[i]);
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
        if (!CHECK(!sb_http_gzip_acceptable(refused[i], strlen(refused[i]))))
            fprintf(stderr, "  accepted: \"%s\"\n", refused[i]);
    /* Not NUL-terminated: the length bounds the scan. */
    CHECK(sb_http_gzip_acceptable("gzip;q=0", 4));
    CHECK(!sb_http_gzip_acceptable("gzip", 3));
}

static void test_gzip(void)
{
    size_t n = 0, len = 0;
    char *in = malloc(SB_HTTP_GZIP_MAX + 1);
    while (n + 100 < SB_HTTP_GZIP_MAX)
        n += (size_t)snprintf(in + n, 100, "{\"id\":%zu,\"body\":\"note %zu about the order\"},", n, n % 97);
    size_t sizes[] = {SB_HTTP_GZIP_MIN, 5700, 70000, n};
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        char *gz = sb_http_gzip(in, sizes[k], &len);
        if (!CHECK(gz != NULL))
            continue;
        CHECK(len < sizes[k] / 2);
        CHECK((unsigned char)gz[0] == 0x1f && (unsigned char)gz[1] == 0x8b); /* the gzip magic */
        char *back = malloc(sizes[k] + 1);
        uLongf back_len = (uLongf)sizes[k] + 1;
        z_stream z;
        memset(&z, 0, sizeof(z));
        CHECK(inflateInit2(&z, 16 + 15) == Z_OK);
        z.next_in = (Bytef *)gz;
        z.avail_in = (uInt)len;
        z.next_out = (Bytef *)back;
        z.avail_out = (uInt)back_len;
        CHECK(inflate(&z, Z_FINISH) == Z_STREAM_END);
        CHECK_EQ_UINT(z.total_out, sizes[k]);
        CHECK(memcmp(back, in, sizes[k]) == 0);
        inflateEnd(&z);
        free(back);
        free(gz);
    }
    /* Outside the bounds, or not smaller: none. */
    CHECK(sb_http_gzip(in, SB_HTTP_GZIP_MIN - 1, &len) == NULL);
    CHECK(sb_http_gzip(in, SB_HTTP_GZIP_MAX + 1, &len) == NULL);
    unsigned char *noise = malloc(4096);
    uint64_t x = 88172645463325252ULL;
    for (int i = 0; i < 4096; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        noise[i] = (unsigned char)x;
    }
    CHECK(sb_http_gzip((const char *)noise, 4096, &len) == NULL);
    free(noise);
    free(in);
}

int main(void)
{
    SBTEST_RUN(test_accept);
    SBTEST_RUN(test_gzip);
    return sbtest_summary();
}
