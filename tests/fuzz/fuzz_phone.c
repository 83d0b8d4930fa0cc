/* libFuzzer driver for sb_phone_normalize and sb_email_normalize.
 *
 * The first byte picks the default country (including NULL and an unknown one); the rest goes to
 * both functions as is.  Whatever is accepted must be E.164 (or a plausible address) and must
 * normalise to itself again. */
#include "core/error.h"
#include "core/phone.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *const defaults[] = {NULL, "US", "GB", "DE", "IT", "AU", "JP",
                                       "KR", "RU", "MX", "BR", "gb", "XX"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const char *country = defaults[data[0] % (sizeof defaults / sizeof defaults[0])];
    const char *in = (const char *)data + 1;
    size_t len = size - 1;

    char out[SB_PHONE_MAX], again[SB_PHONE_MAX];
    int rc = sb_phone_normalize(in, len, country, out);
    if (rc == 0) {
        if (!sb_phone_is_e164(out))
            abort();
        if (sb_phone_normalize(out, strlen(out), country, again) != 0 || strcmp(out, again) != 0)
            abort();
        /* E.164 input does not depend on the default country. */
        if (sb_phone_normalize(out, strlen(out), "US", again) != 0 || strcmp(out, again) != 0)
            abort();
    } else if (rc != SB_EINVAL || out[0] != '\0') {
        abort();
    }

    char email[SB_EMAIL_MAX], email2[SB_EMAIL_MAX];
    rc = sb_email_normalize(in, len, email);
    if (rc == 0) {
        size_t n = strlen(email);
        if (n == 0 || n > 254 || strchr(email, '@') == NULL)
            abort();
        for (size_t i = 0; i < n; i++)
            if (email[i] >= 'A' && email[i] <= 'Z')
                abort();
        if (sb_email_normalize(email, n, email2) != 0 || strcmp(email, email2) != 0)
            abort();
    } else if (rc != SB_EINVAL || email[0] != '\0') {
        abort();
    }
    return 0;
}
