/* Voice identities and queue names.  See twilio_voice.h. */
#include "providers/twilio_voice.h"

#include <string.h>

#include "core/error.h"

/* 32 lowercase hex digits of a uuid string; false when s is not a uuid. */
static bool hex_of(const char *s, char out[33])
{
    sb_uuid_t u;
    if (s == NULL || sb_uuid_parse(s, strlen(s), &u) != 0)
        return false;
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        out[2 * i] = digits[u.b[i] >> 4];
        out[2 * i + 1] = digits[u.b[i] & 15];
    }
    out[32] = '\0';
    return true;
}

/* 32 lowercase hex digits back to a uuid string. */
static bool uuid_of(const char *hex, char out[SB_UUID_STRLEN + 1])
{
    for (int i = 0; i < 32; i++)
        if (!((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f')))
            return false;
    char *o = out;
    for (int i = 0; i < 32; i++) {
        if (i == 8 || i == 12 || i == 16 || i == 20)
            *o++ = '-';
        *o++ = hex[i];
    }
    *o = '\0';
    return true;
}

int sb_voice_identity(const char *workspace_id, const char *user_id, char out[SB_VOICE_IDENTITY_LEN + 1])
{
    char w[33], u[33];
    if (!hex_of(workspace_id, w) || !hex_of(user_id, u))
        return SB_EINVAL;
    out[0] = 'w';
    memcpy(out + 1, w, 32);
    memcpy(out + 33, "_u", 2);
    memcpy(out + 35, u, 32);
    out[SB_VOICE_IDENTITY_LEN] = '\0';
    return 0;
}

bool sb_voice_identity_parse(const char *s, char workspace_id[SB_UUID_STRLEN + 1],
                             char user_id[SB_UUID_STRLEN + 1])
{
    if (s == NULL)
        return false;
    if (strncmp(s, "client:", 7) == 0)
        s += 7;
    if (strlen(s) != SB_VOICE_IDENTITY_LEN || s[0] != 'w' || s[33] != '_' || s[34] != 'u')
        return false;
    return uuid_of(s + 1, workspace_id) && uuid_of(s + 35, user_id);
}

int sb_voice_queue(const char *workspace_id, char out[SB_VOICE_QUEUE_LEN + 1])
{
    char w[33];
    if (!hex_of(workspace_id, w))
        return SB_EINVAL;
    memcpy(out, "ws_", 3);
    memcpy(out + 3, w, 33);
    return 0;
}
