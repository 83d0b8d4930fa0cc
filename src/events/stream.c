#include "events/stream.h"
#include "core/error.h"

#include <assert.h>
#include <string.h>

bool sb_stream_category_is_valid(const char *category, size_t len)
{
    if (len == 0 || len >= SB_CATEGORY_MAX)
        return false;
    if (category[0] < 'a' || category[0] > 'z')
        return false;
    for (size_t i = 1; i < len; i++) {
        char c = category[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return true;
}

int sb_stream_parse(const char *s, size_t len, sb_stream_name_t *out)
{
    /* The uuid has a fixed length and the category cannot contain '-', so the split is at a
     * fixed distance from the end. */
    if (len < 1 + 1 + SB_UUID_STRLEN || len > SB_STREAM_NAME_MAX - 1)
        return SB_EINVAL;
    size_t clen = len - SB_UUID_STRLEN - 1;
    const char *id = s + clen + 1;
    if (s[clen] != '-' || !sb_stream_category_is_valid(s, clen))
        return SB_EINVAL;
    for (size_t i = 0; i < SB_UUID_STRLEN; i++)
        if (id[i] >= 'A' && id[i] <= 'F')
            return SB_EINVAL;
    sb_uuid_t u;
    if (sb_uuid_parse(id, SB_UUID_STRLEN, &u) != 0)
        return SB_EINVAL;
    memcpy(out->category, s, clen);
    out->category[clen] = '\0';
    out->id = u;
    return 0;
}

size_t sb_stream_format(const char *category, const sb_uuid_t *id, char out[SB_STREAM_NAME_MAX])
{
    /* Callers pass categories they own (constants or parsed names); an over-long one is a bug,
     * cut short rather than allowed to overrun out. */
    size_t clen = strnlen(category, SB_CATEGORY_MAX - 1);
    assert(sb_stream_category_is_valid(category, clen) && category[clen] == '\0');
    memcpy(out, category, clen);
    out[clen] = '-';
    sb_uuid_format(id, out + clen + 1);
    return clen + 1 + SB_UUID_STRLEN;
}

uint64_t sb_stream_hash(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a 64-bit offset basis and prime */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}
