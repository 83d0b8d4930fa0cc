/* Sealing secrets at rest (SPEC §2: SWITCHBOARD_MASTER_KEY): Twilio auth tokens, API key secrets,
 * Resend keys.
 *
 * One 32-byte master key per deployment: SWITCHBOARD_MASTER_KEY (64 hex digits, or base64 of 32
 * bytes), or else the file <data dir>/master.key, generated on first run with mode 0600.  It lives
 * in libsodium's guarded memory (sodium_malloc: locked, never swapped, wiped on free).
 *
 * A value is sealed with libsodium's secretbox (XSalsa20-Poly1305, a random 24-byte nonce) under a
 * subkey derived from the master key and the value's context (the reference it is stored under):
 * a ciphertext copied into another row does not open there.  Sealed form:
 *
 *   version (1 byte, 1) | nonce (24) | MAC (16) | ciphertext (as long as the value)
 *
 * Everything but key loading is pure (no I/O, no clock); every function is thread-safe. */
#ifndef SB_CORE_SEAL_H
#define SB_CORE_SEAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SB_SEAL_KEY_BYTES 32
#define SB_SEAL_KEY_ID_LEN 16 /* hex characters of the key's id */
#define SB_SEAL_OVERHEAD (1 + 24 + 16)
#define SB_SEAL_MAX_VALUE 65536 /* the largest value sealed; secrets are far smaller */
#define SB_SEAL_KEY_FILE "master.key"

typedef struct sb_seal_key_s sb_seal_key_t;

/* Where a key came from. */
typedef enum sb_seal_key_source_e {
    SB_SEAL_FROM_ENV = 0, /* SWITCHBOARD_MASTER_KEY */
    SB_SEAL_FROM_FILE,    /* <data dir>/master.key, existing */
    SB_SEAL_GENERATED,    /* <data dir>/master.key, created by this call */
} sb_seal_key_source_t;

/* Loads the master key: from master_key when not NULL (64 hex digits or base64, standard or
 * URL-safe, padded or not, of exactly 32 bytes; surrounding whitespace ignored), else from
 * data_dir/master.key, which is created (mode 0600, the directory made if needed) with a random key
 * when it does not exist.  Two processes starting at once agree on one key (the file appears
 * atomically: written aside, then linked into place).  An existing file must hold exactly the key in
 * hex (a trailing newline allowed) and must not be readable by group or others.  Blocking file I/O:
 * call at start-up, before the loops run.  0 with *out (free with sb_seal_key_free) and *source (may
 * be NULL), or SB_EINVAL / SB_EPERM / a UV_E* code with one line in err that never contains the
 * key. */
int sb_seal_key_load(const char *master_key, const char *data_dir, sb_seal_key_t **out,
                     sb_seal_key_source_t *source, char *err, size_t errlen);

/* A key from raw bytes (tests, tools).  NULL on allocation failure. */
sb_seal_key_t *sb_seal_key_from_bytes(const uint8_t key[SB_SEAL_KEY_BYTES]);

/* Wipes and frees k (NULL is fine). */
void sb_seal_key_free(sb_seal_key_t *k);

/* The key's id: 16 hex characters of a keyed hash, safe to store and log, so a row sealed under
 * another key is told apart from a damaged one.  Owned by k. */
const char *sb_seal_key_id(const sb_seal_key_t *k);

/* The sealed length of a value of len bytes. */
static inline size_t sb_seal_len(size_t len)
{
    return len + SB_SEAL_OVERHEAD;
}

/* Seals value[0..len) for context (e.g. "secret:<uuid>", 1..255 bytes) into out, which holds
 * sb_seal_len(len) bytes.  0, or SB_EINVAL (no context, a value over SB_SEAL_MAX_VALUE). */
int sb_seal(const sb_seal_key_t *k, const char *context, const void *value, size_t len, uint8_t *out);

/* Opens sealed[0..sealed_len) for context into out (room for sealed_len - SB_SEAL_OVERHEAD bytes;
 * *out_len gets the length).  0, or SB_ECODEC when it is not a sealed value of ours (too short, an
 * unknown version), SB_EPERM when it does not authenticate (another key, another context, changed
 * bytes); out holds nothing useful then. */
int sb_seal_open(const sb_seal_key_t *k, const char *context, const uint8_t *sealed, size_t sealed_len,
                 void *out, size_t *out_len);

/* Zeroes n bytes in a way the compiler keeps (sodium_memzero). */
void sb_seal_wipe(void *p, size_t n);

#endif
