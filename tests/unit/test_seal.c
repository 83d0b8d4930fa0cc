/* Sealing secrets: the master key's forms and file, and secretbox under per-context subkeys. */
#include "core/error.h"
#include "core/seal.h"
#include "sbtest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char hex_key[] = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

static char tmpdir[256];

static sb_seal_key_t *key_of(const char *text)
{
    sb_seal_key_t *k = NULL;
    char err[256] = "";
    int rc = sb_seal_key_load(text, NULL, &k, NULL, err, sizeof(err));
    return rc == 0 ? k : NULL;
}

static void test_key_forms(void)
{
    sb_seal_key_t *a = key_of(hex_key);
    /* the same 32 bytes in base64, standard and URL-safe, padded or not, and with whitespace */
    sb_seal_key_t *b = key_of("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=");
    sb_seal_key_t *c = key_of("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8");
    sb_seal_key_t *d = key_of("  000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F\n");
    if (!CHECK(a != NULL && b != NULL && c != NULL && d != NULL))
        goto out;
    CHECK_EQ_STR(sb_seal_key_id(a), sb_seal_key_id(b));
    CHECK_EQ_STR(sb_seal_key_id(a), sb_seal_key_id(c));
    CHECK_EQ_STR(sb_seal_key_id(a), sb_seal_key_id(d));
    CHECK_EQ_INT(strlen(sb_seal_key_id(a)), SB_SEAL_KEY_ID_LEN);
    /* the id is not the key */
    CHECK(strstr(hex_key, sb_seal_key_id(a)) == NULL);

    const char *bad[] = {"",
                         "short",
                         "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e",
                         "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f00",
                         "zz0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
                         "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8fHw==",
                         "correct horse battery staple"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        sb_seal_key_t *k = NULL;
        char err[256] = "";
        CHECK_EQ_INT(sb_seal_key_load(bad[i], NULL, &k, NULL, err, sizeof(err)), SB_EINVAL);
        CHECK(k == NULL);
        CHECK(strstr(err, "SWITCHBOARD_MASTER_KEY") != NULL);
        /* the message never echoes the value */
        CHECK(bad[i][0] == '\0' || strstr(err, bad[i]) == NULL);
    }
out:
    sb_seal_key_free(a);
    sb_seal_key_free(b);
    sb_seal_key_free(c);
    sb_seal_key_free(d);
}

static void test_key_file(void)
{
    char dir[512], path[600], err[256];
    snprintf(dir, sizeof(dir), "%s/data/nested", tmpdir);
    snprintf(path, sizeof(path), "%s/%s", dir, SB_SEAL_KEY_FILE);
    sb_seal_key_t *k1 = NULL, *k2 = NULL, *k3 = NULL;
    sb_seal_key_source_t src = SB_SEAL_FROM_ENV;

    /* first run: generated, mode 0600, in a directory made for it */
    if (!CHECK_EQ_INT(sb_seal_key_load(NULL, dir, &k1, &src, err, sizeof(err)), 0))
        return;
    CHECK_EQ_INT(src, SB_SEAL_GENERATED);
    struct stat st;
    CHECK(stat(path, &st) == 0);
    CHECK_EQ_INT(st.st_mode & 0777, 0600);
    CHECK_EQ_INT(st.st_size, 65);

    /* second run: the same key, read back */
    CHECK_EQ_INT(sb_seal_key_load(NULL, dir, &k2, &src, err, sizeof(err)), 0);
    CHECK_EQ_INT(src, SB_SEAL_FROM_FILE);
    if (k2 != NULL)
        CHECK_EQ_STR(sb_seal_key_id(k1), sb_seal_key_id(k2));

    /* no temporary files left behind */
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "test $(ls -A '%s' | wc -l) -eq 1", dir);
    CHECK_EQ_INT(system(cmd), 0);

    /* a file others can read is refused, naming the fix */
    chmod(path, 0644);
    CHECK_EQ_INT(sb_seal_key_load(NULL, dir, &k3, NULL, err, sizeof(err)), SB_EPERM);
    CHECK(strstr(err, "chmod 600") != NULL);
    CHECK(k3 == NULL);

    /* a damaged file is refused, not replaced */
    chmod(path, 0600);
    FILE *f = fopen(path, "w");
    if (f != NULL) {
        fputs("not a key\n", f);
        fclose(f);
    }
    CHECK_EQ_INT(sb_seal_key_load(NULL, dir, &k3, NULL, err, sizeof(err)), SB_EINVAL);
    CHECK(k3 == NULL);

    /* the environment wins over the file */
    CHECK_EQ_INT(sb_seal_key_load(hex_key, dir, &k3, &src, err, sizeof(err)), 0);
    CHECK_EQ_INT(src, SB_SEAL_FROM_ENV);
    sb_seal_key_free(k1);
    sb_seal_key_free(k2);
    sb_seal_key_free(k3);
}

static void test_seal_open(void)
{
    sb_seal_key_t *k = key_of(hex_key);
    uint8_t other_bytes[SB_SEAL_KEY_BYTES];
    memset(other_bytes, 7, sizeof(other_bytes));
    sb_seal_key_t *other = sb_seal_key_from_bytes(other_bytes);
    if (!CHECK(k != NULL && other != NULL))
        return;
    const char secret[] = "0123456789abcdef0123456789abcdef";
    const size_t n = sizeof(secret) - 1;
    uint8_t sealed[256], sealed2[256];
    char out[256];
    size_t out_len = 99;

    CHECK_EQ_INT(sb_seal(k, "secret:a", secret, n, sealed), 0);
    CHECK_EQ_INT(sealed[0], 1);
    /* the plain text is nowhere in the sealed bytes */
    CHECK(memmem(sealed, sb_seal_len(n), "0123456789", 10) == NULL);
    CHECK_EQ_INT(sb_seal_open(k, "secret:a", sealed, sb_seal_len(n), out, &out_len), 0);
    CHECK_EQ_MEM(out, out_len, secret, n);

    /* a fresh nonce every time */
    CHECK_EQ_INT(sb_seal(k, "secret:a", secret, n, sealed2), 0);
    CHECK(memcmp(sealed, sealed2, sb_seal_len(n)) != 0);

    /* another context, another key, any changed byte, a cut: nothing opens */
    CHECK_EQ_INT(sb_seal_open(k, "secret:b", sealed, sb_seal_len(n), out, &out_len), SB_EPERM);
    CHECK_EQ_INT(sb_seal_open(other, "secret:a", sealed, sb_seal_len(n), out, &out_len), SB_EPERM);
    for (size_t i = 1; i < sb_seal_len(n); i++) {
        sealed[i] ^= 0x01;
        if (sb_seal_open(k, "secret:a", sealed, sb_seal_len(n), out, &out_len) != SB_EPERM)
            CHECK(!"a flipped bit went unnoticed");
        sealed[i] ^= 0x01;
    }
    CHECK_EQ_INT(sb_seal_open(k, "secret:a", sealed, sb_seal_len(n) - 1, out, &out_len), SB_EPERM);
    CHECK_EQ_INT(sb_seal_open(k, "secret:a", sealed, SB_SEAL_OVERHEAD - 1, out, &out_len), SB_ECODEC);
    sealed[0] = 2;
    CHECK_EQ_INT(sb_seal_open(k, "secret:a", sealed, sb_seal_len(n), out, &out_len), SB_ECODEC);
    CHECK_EQ_INT(out_len, 0);

    /* bad arguments */
    CHECK_EQ_INT(sb_seal(k, "", secret, n, sealed), SB_EINVAL);
    CHECK_EQ_INT(sb_seal(k, NULL, secret, n, sealed), SB_EINVAL);
    uint8_t *big = malloc(sb_seal_len(SB_SEAL_MAX_VALUE + 1));
    if (big != NULL) {
        CHECK_EQ_INT(sb_seal(k, "c", big, SB_SEAL_MAX_VALUE + 1, big), SB_EINVAL);
        free(big);
    }
    /* an empty value seals and opens */
    CHECK_EQ_INT(sb_seal(k, "c", "", 0, sealed), 0);
    CHECK_EQ_INT(sb_seal_open(k, "c", sealed, SB_SEAL_OVERHEAD, out, &out_len), 0);
    CHECK_EQ_INT(out_len, 0);
    sb_seal_key_free(k);
    sb_seal_key_free(other);
}

int main(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/sb_test_seal.XXXXXX");
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    SBTEST_RUN(test_key_forms);
    SBTEST_RUN(test_key_file);
    SBTEST_RUN(test_seal_open);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return sbtest_summary();
}
