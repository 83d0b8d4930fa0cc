/* libFuzzer driver for the voice webhook readers (src/http/webhooks_voice_parse.c) and client
 * identities (src/providers/twilio_voice.c).
 *
 * The first byte picks the reader: a Twilio voice form, our ids in a callback query, or an
 * identity.  What is accepted must hold what the handlers rely on (valid SIDs, known statuses,
 * bounded addresses, http(s) recording URLs, uuids); a refusal must name a field; an identity read
 * back must write out to the same text. */
#include "core/error.h"
#include "http/webhooks_voice.h"
#include "providers/twilio_voice.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check_form(const char *s, size_t n)
{
    sb_form_t f;
    if (sb_form_parse(s, n, &f) != 0)
        return;
    sb_wh_call_t c;
    const char *field = NULL;
    if (sb_wh_parse_call(&f, &c, &field) == 0) {
        if (strlen(c.call_sid) != 34 || strlen(c.account_sid) != 34 || c.from == NULL || c.to == NULL ||
            strlen(c.from) > SB_WH_VOICE_ADDR_MAX || strlen(c.to) > SB_WH_VOICE_ADDR_MAX)
            abort();
        if (c.recording_url != NULL && strncmp(c.recording_url, "http", 4) != 0)
            abort();
        if (c.recording_duration < -1)
            abort();
    } else if (field == NULL) {
        abort();
    }
    sb_form_free(&f);
}

static void check_ids(const char *s, size_t n)
{
    sb_wh_voice_ids_t ids;
    sb_wh_parse_voice_ids(s, n, &ids);
    const char *all[] = {ids.workspace, ids.call, ids.agent};
    for (int i = 0; i < 3; i++)
        if (all[i][0] != '\0' && strlen(all[i]) != SB_UUID_STRLEN)
            abort();
}

static void check_identity(const char *s)
{
    char ws[SB_UUID_STRLEN + 1], user[SB_UUID_STRLEN + 1], back[SB_VOICE_IDENTITY_LEN + 1];
    if (!sb_voice_identity_parse(s, ws, user))
        return;
    if (sb_voice_identity(ws, user, back) != 0)
        abort();
    const char *bare = strncmp(s, "client:", 7) == 0 ? s + 7 : s;
    if (strcmp(bare, back) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    char *s = malloc(size);
    if (s == NULL)
        return 0;
    memcpy(s, data + 1, size - 1);
    s[size - 1] = '\0';
    switch (data[0] % 3) {
    case 0:
        check_form(s, size - 1);
        break;
    case 1:
        check_ids(s, size - 1);
        break;
    default:
        check_identity(s);
        break;
    }
    free(s);
    return 0;
}
