/* UUIDs: the ids of workspaces, contacts, calls and users (the uuid part of their stream names). */
#ifndef SB_CORE_UUID_H
#define SB_CORE_UUID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sb_uuid_s {
    uint8_t b[16];
} sb_uuid_t;

#define SB_UUID_STRLEN 36 /* without the NUL */

/* A version 7 UUID (unix-millisecond prefix, random rest): time-ordered, so B-tree inserts stay
 * local.  Thread-safe. */
void sb_uuid_v7(sb_uuid_t *out);
/* A version 4 (random) UUID. */
void sb_uuid_v4(sb_uuid_t *out);
/* A version 5-style name-based UUID (SHA-1 of namespace and name): the same inputs always give the
 * same id.  Used for claim streams (e.g. a phone number within a workspace). */
void sb_uuid_from_name(sb_uuid_t *out, const sb_uuid_t *ns, const char *name, size_t len);
/* Writes 36 lowercase hex characters and a NUL into out (37 bytes). */
void sb_uuid_format(const sb_uuid_t *u, char out[SB_UUID_STRLEN + 1]);
/* Parses the canonical 8-4-4-4-12 form, either case; 0 or SB_EINVAL. */
int sb_uuid_parse(const char *s, size_t len, sb_uuid_t *out);
bool sb_uuid_is_nil(const sb_uuid_t *u);

#endif
