/* Stream names: "<category>-<uuid>" (SPEC §4).  The category is 1 to 31 characters of [a-z0-9_]
 * starting with a letter; the uuid is canonical lowercase 8-4-4-4-12 hex. */
#ifndef SB_EVENTS_STREAM_H
#define SB_EVENTS_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/uuid.h"

#define SB_CATEGORY_MAX 32                                        /* with the NUL */
#define SB_STREAM_NAME_MAX (SB_CATEGORY_MAX + SB_UUID_STRLEN + 1) /* category, '-', uuid, NUL */

typedef struct sb_stream_name_s {
    char category[SB_CATEGORY_MAX];
    sb_uuid_t id;
} sb_stream_name_t;

/* Parses s[0..len).  0 or SB_EINVAL (upper-case hex is refused so each stream has one name). */
int sb_stream_parse(const char *s, size_t len, sb_stream_name_t *out);
/* Writes "<category>-<uuid>" into out; returns its length. */
size_t sb_stream_format(const char *category, const sb_uuid_t *id, char out[SB_STREAM_NAME_MAX]);
/* True when category is well-formed. */
bool sb_stream_category_is_valid(const char *category, size_t len);
/* A stable 64-bit hash of the name (FNV-1a), used to pick the loop that owns a stream's actor. */
uint64_t sb_stream_hash(const char *s, size_t len);

#endif
