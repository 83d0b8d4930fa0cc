/* Sealing secrets at rest: the master key and libsodium's secretbox.  See seal.h. */
#include "core/seal.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"

#define VERSION 1
#define NONCE crypto_secretbox_NONCEBYTES
#define MAC crypto_secretbox_MACBYTES
#define CONTEXT_MAX 255

_Static_assert(SB_SEAL_KEY_BYTES == crypto_secretbox_KEYBYTES, "secretbox key size");
_Static_assert(SB_SEAL_OVERHEAD == 1 + NONCE + MAC, "sealed layout");

struct sb_seal_key_s {
    uint8_t key[SB_SEAL_KEY_BYTES];
    char id[SB_SEAL_KEY_ID_LEN + 1];
};

static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err != NULL && errlen > 0)
        vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return code;
}

void sb_seal_wipe(void *p, size_t n)
{
    sodium_memzero(p, n);
}

sb_seal_key_t *sb_seal_key_from_bytes(const uint8_t key[SB_SEAL_KEY_BYTES])
{
    static const char label[] = "switchboard key id v1";
    uint8_t id[SB_SEAL_KEY_ID_LEN / 2];
    if (sodium_init() < 0)
        return NULL;
    sb_seal_key_t *k = sodium_malloc(sizeof(*k));
    if (k == NULL)
        return NULL;
    memcpy(k->key, key, SB_SEAL_KEY_BYTES);
    crypto_generichash(id, sizeof(id), (const uint8_t *)label, sizeof(label) - 1, k->key, sizeof(k->key));
    sodium_bin2hex(k->id, sizeof(k->id), id, sizeof(id));
    return k;
}

void sb_seal_key_free(sb_seal_key_t *k)
{
    if (k != NULL)
        sodium_free(k); /* wipes */
}

const char *sb_seal_key_id(const sb_seal_key_t *k)
{
    return k->id;
}

/* ---- reading a key ------------------------------------------------------------------------------ */

/* Decodes s (64 hex digits, or base64 of 32 bytes in any of libsodium's four variants) into key. */
static bool decode_key(const char *s, size_t n, uint8_t key[SB_SEAL_KEY_BYTES])
{
    static const int variants[] = {sodium_base64_VARIANT_ORIGINAL, sodium_base64_VARIANT_ORIGINAL_NO_PADDING,
                                   sodium_base64_VARIANT_URLSAFE, sodium_base64_VARIANT_URLSAFE_NO_PADDING};
    size_t len;
    const char *end;
    while (n > 0 && (s[0] == ' ' || s[0] == '\t' || s[0] == '\r' || s[0] == '\n'))
        s++, n--;
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        n--;
    if (n == 2 * SB_SEAL_KEY_BYTES && sodium_hex2bin(key, SB_SEAL_KEY_BYTES, s, n, NULL, &len, &end) == 0 &&
        len == SB_SEAL_KEY_BYTES && end == s + n)
        return true;
    for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
        uint8_t tmp[SB_SEAL_KEY_BYTES + 8];
        if (sodium_base642bin(tmp, sizeof(tmp), s, n, NULL, &len, &end, variants[i]) == 0 && end == s + n &&
            len == SB_SEAL_KEY_BYTES) {
            memcpy(key, tmp, SB_SEAL_KEY_BYTES);
            sodium_memzero(tmp, sizeof(tmp));
            return true;
        }
        sodium_memzero(tmp, sizeof(tmp));
    }
    return false;
}

/* Reads an existing key file.  0, SB_ENOTFOUND when there is none, else an error with err set. */
static int read_key_file(const char *path, uint8_t key[SB_SEAL_KEY_BYTES], char *err, size_t errlen)
{
    char text[2 * SB_SEAL_KEY_BYTES + 4];
    struct stat st;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return SB_ENOTFOUND;
        return fail(err, errlen, -errno, "cannot open the master key file %s: %s", path, strerror(errno));
    }
    int rc = 0;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = fail(err, errlen, SB_EINVAL, "the master key file %s is not a regular file", path);
        goto out;
    }
    if ((st.st_mode & 077) != 0) {
        rc = fail(err, errlen, SB_EPERM,
                  "the master key file %s is readable by others (mode %03o): chmod 600 it", path,
                  (unsigned)(st.st_mode & 0777));
        goto out;
    }
    ssize_t n = read(fd, text, sizeof(text));
    if (n < 0) {
        rc = fail(err, errlen, -errno, "cannot read the master key file %s: %s", path, strerror(errno));
        goto out;
    }
    if (!decode_key(text, (size_t)n, key))
        rc = fail(err, errlen, SB_EINVAL, "the master key file %s does not hold a 32-byte key in hex", path);
out:
    sodium_memzero(text, sizeof(text));
    close(fd);
    return rc;
}

/* mkdir -p dir (mode 0700 for what it creates).  0 or -errno. */
static int make_dirs(const char *dir)
{
    char p[4096];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof(p))
        return -ENAMETOOLONG;
    memcpy(p, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != '\0')
            continue;
        char c = p[i];
        p[i] = '\0';
        if (mkdir(p, 0700) != 0 && errno != EEXIST)
            return -errno;
        p[i] = c;
    }
    return 0;
}

/* Creates path with a fresh key, atomically: the key is written to a private temporary file, then
 * linked into place, so a concurrent starter either wins or finds the complete file.  0, SB_EEXIST
 * when another process created it first, or an error with err set. */
static int create_key_file(const char *dir, const char *path, uint8_t key[SB_SEAL_KEY_BYTES], char *err,
                           size_t errlen)
{
    char tmp[4200], text[2 * SB_SEAL_KEY_BYTES + 2];
    int rc = 0;
    if ((rc = make_dirs(dir)) != 0)
        return fail(err, errlen, rc, "cannot create the data directory %s: %s", dir, strerror(-rc));
    snprintf(tmp, sizeof(tmp), "%s.%ld.%08x.tmp", path, (long)getpid(), (unsigned)randombytes_random());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return fail(err, errlen, -errno, "cannot create the master key file in %s: %s", dir, strerror(errno));
    randombytes_buf(key, SB_SEAL_KEY_BYTES);
    sodium_bin2hex(text, sizeof(text), key, SB_SEAL_KEY_BYTES);
    text[2 * SB_SEAL_KEY_BYTES] = '\n';
    size_t len = 2 * SB_SEAL_KEY_BYTES + 1;
    if (write(fd, text, len) != (ssize_t)len || fsync(fd) != 0) {
        rc = fail(err, errlen, -errno, "cannot write the master key file in %s: %s", dir, strerror(errno));
        close(fd);
        goto out_unlink;
    }
    close(fd);
    if (link(tmp, path) != 0) {
        rc = errno == EEXIST ? SB_EEXIST
                             : fail(err, errlen, -errno, "cannot create %s: %s", path, strerror(errno));
        goto out_unlink;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd); /* the new name survives a crash */
        close(dfd);
    }
out_unlink:
    unlink(tmp);
    sodium_memzero(text, sizeof(text));
    return rc;
}

int sb_seal_key_load(const char *master_key, const char *data_dir, sb_seal_key_t **out,
                     sb_seal_key_source_t *source, char *err, size_t errlen)
{
    uint8_t key[SB_SEAL_KEY_BYTES];
    sb_seal_key_source_t src = SB_SEAL_FROM_ENV;
    int rc;
    *out = NULL;
    if (sodium_init() < 0)
        return fail(err, errlen, SB_ENOMEM, "libsodium cannot initialise");
    if (master_key != NULL) {
        if (!decode_key(master_key, strlen(master_key), key))
            return fail(err, errlen, SB_EINVAL,
                        "SWITCHBOARD_MASTER_KEY must be 32 bytes as 64 hex digits or base64");
    } else {
        char path[4096];
        if (data_dir == NULL || data_dir[0] == '\0')
            return fail(err, errlen, SB_EINVAL, "no master key and no data directory to keep one in");
        if ((size_t)snprintf(path, sizeof(path), "%s/%s", data_dir, SB_SEAL_KEY_FILE) >= sizeof(path))
            return fail(err, errlen, SB_EINVAL, "the data directory path is too long");
        src = SB_SEAL_FROM_FILE;
        rc = read_key_file(path, key, err, errlen);
        if (rc == SB_ENOTFOUND) {
            src = SB_SEAL_GENERATED;
            rc = create_key_file(data_dir, path, key, err, errlen);
            if (rc == SB_EEXIST) { /* another process won the race: use its key */
                src = SB_SEAL_FROM_FILE;
                rc = read_key_file(path, key, err, errlen);
            }
        }
        if (rc != 0) {
            sodium_memzero(key, sizeof(key));
            return rc;
        }
    }
    *out = sb_seal_key_from_bytes(key);
    sodium_memzero(key, sizeof(key));
    if (*out == NULL)
        return fail(err, errlen, SB_ENOMEM, "out of memory");
    if (source != NULL)
        *source = src;
    return 0;
}

/* ---- sealing -------------------------------------------------------------------------------------- */

/* The subkey for one context: BLAKE2b keyed with the master key over a labelled context. */
static int subkey(const sb_seal_key_t *k, const char *context, uint8_t out[SB_SEAL_KEY_BYTES])
{
    static const char label[] = "switchboard seal v1:";
    crypto_generichash_state st;
    size_t n = context != NULL ? strlen(context) : 0;
    if (n == 0 || n > CONTEXT_MAX)
        return SB_EINVAL;
    crypto_generichash_init(&st, k->key, sizeof(k->key), SB_SEAL_KEY_BYTES);
    crypto_generichash_update(&st, (const uint8_t *)label, sizeof(label) - 1);
    crypto_generichash_update(&st, (const uint8_t *)context, n);
    crypto_generichash_final(&st, out, SB_SEAL_KEY_BYTES);
    sodium_memzero(&st, sizeof(st));
    return 0;
}

int sb_seal(const sb_seal_key_t *k, const char *context, const void *value, size_t len, uint8_t *out)
{
    uint8_t sk[SB_SEAL_KEY_BYTES];
    if (len > SB_SEAL_MAX_VALUE || (value == NULL && len > 0) || subkey(k, context, sk) != 0)
        return SB_EINVAL;
    out[0] = VERSION;
    randombytes_buf(out + 1, NONCE);
    crypto_secretbox_easy(out + 1 + NONCE, value != NULL ? value : (const void *)"", len, out + 1, sk);
    sodium_memzero(sk, sizeof(sk));
    return 0;
}

int sb_seal_open(const sb_seal_key_t *k, const char *context, const uint8_t *sealed, size_t sealed_len,
                 void *out, size_t *out_len)
{
    uint8_t sk[SB_SEAL_KEY_BYTES];
    *out_len = 0;
    if (sealed == NULL || sealed_len < SB_SEAL_OVERHEAD || sealed[0] != VERSION ||
        sealed_len - SB_SEAL_OVERHEAD > SB_SEAL_MAX_VALUE)
        return SB_ECODEC;
    if (subkey(k, context, sk) != 0)
        return SB_EINVAL;
    int rc = crypto_secretbox_open_easy(out, sealed + 1 + NONCE, sealed_len - 1 - NONCE, sealed + 1, sk);
    sodium_memzero(sk, sizeof(sk));
    if (rc != 0)
        return SB_EPERM;
    *out_len = sealed_len - SB_SEAL_OVERHEAD;
    return 0;
}
