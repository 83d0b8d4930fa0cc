/* Secrets at rest: the `secrets` table (schema/004_secrets.sql) holds values sealed under the
 * master key (core/seal.h); the event log, read models and API answers hold only references,
 * "secret:<uuid>".  A Twilio auth token or API key secret is never written anywhere in plain text.
 *
 * Each value is sealed with its own reference as the context, so a ciphertext copied into another
 * row does not open, and each row records the id of the master key that sealed it, so a server
 * started with another key says so instead of reporting damage.
 *
 * The service is process-wide (made before the loops start, freed after they stop); the operations
 * run on the calling loop's database connection, never block, and call back once on that loop
 * (never from inside the call).  Plain texts handed to callbacks are wiped when they return.
 * Nothing here logs a value. */
#ifndef SB_DB_SECRETS_H
#define SB_DB_SECRETS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/config.h"
#include "core/seal.h"
#include "core/uuid.h"
#include "db/pg.h"

#define SB_SECRET_REF_PREFIX "secret:"
#define SB_SECRET_REF_LEN (7 + SB_UUID_STRLEN) /* without the NUL */
#define SB_SECRET_KIND_MAX 32

typedef struct sb_secrets_s sb_secrets_t;

/* Loads the master key (cfg->master_key, else <cfg->data_dir>/master.key, generated on first run;
 * core/seal.h) and makes the service.  Blocking file I/O: call before the loops start.  0, or a
 * negative code with one line in err. */
int sb_secrets_new(const sb_config_t *cfg, sb_secrets_t **out, char *err, size_t errlen);

/* A service over key (ownership taken, even on failure), for tests and tools.  NULL on allocation
 * failure. */
sb_secrets_t *sb_secrets_from_key(sb_seal_key_t *key);

void sb_secrets_free(sb_secrets_t *s);

/* The master key's id (safe to log). */
const char *sb_secrets_key_id(const sb_secrets_t *s);

/* True when ref is "secret:" followed by a uuid (lower or upper case); *id gets the uuid when id is
 * not NULL. */
bool sb_secret_ref_parse(const char *ref, sb_uuid_t *id);

/* status 0 with the new reference ("secret:<uuid>", valid during the call), or a database error
 * (SB_EDB, SB_EDBDOWN, SB_EUNKNOWN, SB_ESHUTDOWN: pg.h). */
typedef void (*sb_secrets_put_cb)(int status, const char *ref, void *data);

/* Seals value[0..len) (1..SB_SEAL_MAX_VALUE bytes; copied) under a new reference and stores it,
 * labelled with its workspace (a uuid string, or NULL) and kind ("twilio", "resend", ...: 1..32
 * of [a-z0-9_]).  0 and cb later, or SB_EINVAL / SB_ENOMEM at once (no callback). */
int sb_secrets_put(sb_secrets_t *s, sb_pg_t *pg, const char *workspace_id, const char *kind,
                   const void *value, size_t len, sb_secrets_put_cb cb, void *data);

/* status 0 with the plain text (value[len] is a NUL; wiped after the call), or SB_ENOTFOUND (no
 * such row: deleted), SB_EPERM (sealed under another master key: the message names both key ids in
 * the log), SB_ECODEC (damaged), or a database error.  value is NULL unless status is 0. */
typedef void (*sb_secrets_get_cb)(int status, const char *value, size_t len, void *data);

/* Reads and opens ref.  0 and cb later, or SB_EINVAL (not a reference) / SB_ENOMEM at once. */
int sb_secrets_get(sb_secrets_t *s, sb_pg_t *pg, const char *ref, sb_secrets_get_cb cb, void *data);

/* status 0 (with the number of rows deleted) or a database error. */
typedef void (*sb_secrets_done_cb)(int status, int deleted, void *data);

/* Deletes the workspace's secrets of kind (NULL: every kind) except keep (a reference, or NULL):
 * what a replaced or cleared configuration leaves behind.  0 and cb later, or SB_EINVAL /
 * SB_ENOMEM at once. */
int sb_secrets_delete(sb_secrets_t *s, sb_pg_t *pg, const char *workspace_id, const char *kind,
                      const char *keep, sb_secrets_done_cb cb, void *data);

/* Tokens: value sealed under the master key for context (the token opens only with the same
 * context), as URL-safe base64 without padding, into out (cap bytes).  For bearer tokens that need
 * no table (the website chat's visitor tokens).  0, or SB_EINVAL (a value over 512 bytes, out too
 * small). */
#define SB_SECRETS_TOKEN_MAX 1024
int sb_secrets_seal_token(const sb_secrets_t *s, const char *context, const void *value, size_t len,
                          char *out, size_t cap);
/* Opens a token sealed by sb_secrets_seal_token for context into out (cap bytes, NUL-terminated).
 * 0, or SB_EPERM (not ours, another context, changed), SB_EINVAL (not a token, too long). */
int sb_secrets_open_token(const sb_secrets_t *s, const char *context, const char *token, size_t token_len,
                          char *out, size_t cap, size_t *len);

#endif
