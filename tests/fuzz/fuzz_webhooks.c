/* libFuzzer driver for the webhook readers (src/http/webhooks_parse.c).
 *
 * The first byte picks the reader: a Twilio form (inbound message and status callback), our ids in
 * a StatusCallback query, or a Resend event as JSON.  Whatever is accepted must hold what the
 * handlers rely on: E.164 addresses, a known channel, at most ten http(s) media URLs, a known status,
 * uuids for our ids; a refusal must name a field. */
#include "core/error.h"
#include "core/phone.h"
#include "http/webhooks_parse.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check_form(const char *s, size_t n)
{
    sb_form_t f;
    if (sb_form_parse(s, n, &f) != 0)
        return;
    sb_wh_inbound_t m;
    const char *field = NULL;
    if (sb_wh_parse_inbound(&f, &m, &field) == 0) {
        if (!sb_phone_is_e164(m.from) || !sb_phone_is_e164(m.to) || m.n_media < 0 ||
            m.n_media > SB_WH_MAX_MEDIA)
            abort();
        if (strcmp(m.channel, "sms") != 0 && strcmp(m.channel, "mms") != 0 &&
            strcmp(m.channel, "whatsapp") != 0)
            abort();
        for (int i = 0; i < m.n_media; i++)
            if (m.media[i] == NULL || strncmp(m.media[i], "http", 4) != 0)
                abort();
        if (m.body == NULL || m.message_sid == NULL || strlen(m.account_sid) != 34)
            abort();
    } else if (field == NULL) {
        abort();
    }
    sb_wh_status_t st;
    field = NULL;
    if (sb_wh_parse_status(&f, &st, &field) == 0) {
        if (st.twilio_status == NULL || (st.from[0] != '\0' && !sb_phone_is_e164(st.from)))
            abort();
    } else if (field == NULL) {
        abort();
    }
    sb_form_free(&f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    switch (data[0] % 3) {
    case 0:
        check_form(s, n);
        break;
    case 1: {
        sb_wh_ids_t ids;
        if (sb_wh_parse_ids(s, n, &ids)) {
            sb_uuid_t u;
            if (sb_uuid_parse(ids.workspace, SB_UUID_STRLEN, &u) != 0 ||
                sb_uuid_parse(ids.message, SB_UUID_STRLEN, &u) != 0)
                abort();
        } else if (ids.message[0] != '\0') {
            abort();
        }
        break;
    }
    default: {
        json_t *j = json_loadb(s, n, JSON_DECODE_ANY, NULL);
        if (j == NULL)
            return 0;
        sb_wh_email_t e;
        const char *field = NULL;
        if (sb_wh_parse_email(j, &e, &field) == 0) {
            if (e.kind == SB_WH_EMAIL_STATUS && e.status == NULL)
                abort();
            if (e.kind != SB_WH_EMAIL_IGNORED && e.email_id == NULL)
                abort();
        } else if (field == NULL) {
            abort();
        }
        json_decref(j);
        break;
    }
    }
    return 0;
}
