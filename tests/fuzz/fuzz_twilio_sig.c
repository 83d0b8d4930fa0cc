/* libFuzzer driver for the X-Twilio-Signature check.
 *
 * Input: "token\nurl\nbody\nsignature" (missing parts are empty).  The check must never crash on
 * any of them; the signature we compute for (url, body) must pass the check, and the same signature
 * with one character changed must not; the URL variants stay within their documented sizes. */
#include "providers/form.h"
#include "providers/twilio_sig.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *part(const char **p, const char *end, size_t *len)
{
    const char *s = *p;
    const char *nl = s < end ? memchr(s, '\n', (size_t)(end - s)) : NULL;
    const char *e = nl ? nl : end;
    *len = (size_t)(e - s);
    *p = nl ? nl + 1 : end;
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data, *end = p + size;
    size_t tl, ul, bl, sl;
    const char *t = part(&p, end, &tl), *u = part(&p, end, &ul), *b = part(&p, end, &bl),
               *s = part(&p, end, &sl);
    char *token = strndup(t, tl);
    char *url = malloc(ul + 1);
    memcpy(url, u, ul);
    url[ul] = '\0';

    char *wo = malloc(ul + 8), *w = malloc(ul + 8);
    size_t wol, wl;
    sb_twilio_sig_url_variants(url, ul, wo, &wol, w, &wl);
    if (wol > ul || wl > ul + 4)
        abort();
    free(wo);
    free(w);

    sb_form_t f;
    if (sb_form_parse(b, bl, &f) == 0) {
        (void)sb_twilio_sig_check(token, url, ul, &f, s, sl);
        if (token[0] != '\0') {
            char sig[SB_TWILIO_SIG_LEN + 1];
            sb_twilio_sig_compute(token, url, ul, &f, sig);
            if (strlen(sig) != SB_TWILIO_SIG_LEN ||
                !sb_twilio_sig_check(token, url, ul, &f, sig, SB_TWILIO_SIG_LEN))
                abort();
            sig[size % SB_TWILIO_SIG_LEN] = sig[size % SB_TWILIO_SIG_LEN] == 'A' ? 'B' : 'A';
            if (sb_twilio_sig_check(token, url, ul, &f, sig, SB_TWILIO_SIG_LEN)) {
                /* Only possible if the changed signature is that of another URL variant or order:
                 * astronomically unlikely for HMAC-SHA1; treat as a bug. */
                abort();
            }
        }
        sb_form_free(&f);
    }
    free(url);
    free(token);
    return 0;
}
