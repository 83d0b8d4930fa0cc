/* libFuzzer driver for the svix signature check (Resend webhooks).
 *
 * Input: "secret\nid\ntimestamp\nsignatures\nbody" (the body is the rest, newlines included).  The
 * check must never crash and answer only its documented codes; when the secret is usable and the
 * id and timestamp are well-formed, our own signature must pass at that time and fail once the
 * body changes. */
#include "core/error.h"
#include "providers/svix.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *part(const char **p, const char *end, size_t *len, bool rest)
{
    const char *s = *p;
    const char *nl = !rest && s < end ? memchr(s, '\n', (size_t)(end - s)) : NULL;
    const char *e = nl ? nl : end;
    *len = (size_t)(e - s);
    *p = nl ? nl + 1 : end;
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data, *end = p + size;
    size_t kl, il, tl, sl, bl;
    const char *k = part(&p, end, &kl, false), *id = part(&p, end, &il, false),
               *ts = part(&p, end, &tl, false);
    const char *sigs = part(&p, end, &sl, false), *body = part(&p, end, &bl, true);
    char *secret = strndup(k, kl);
    int64_t now = 1700000000;
    int rc = sb_svix_verify(secret, id, il, ts, tl, sigs, sl, body, bl, now);
    if (rc != 0 && rc != SB_EINVAL && rc != SB_ETIMEOUT && rc != SB_EPERM)
        abort();

    char sig[SB_SVIX_SIG_LEN + 1];
    if (il > 0 && il <= SB_SVIX_MAX_ID && sb_svix_sign(secret, id, il, now, body, bl, sig) == 0) {
        char entry[3 + SB_SVIX_SIG_LEN + 1];
        snprintf(entry, sizeof entry, "v1,%s", sig);
        if (sb_svix_verify(secret, id, il, "1700000000", 10, entry, strlen(entry), body, bl, now) != 0)
            abort();
        char *b2 = malloc(bl + 1);
        memcpy(b2, body, bl);
        b2[bl] = 'x';
        if (sb_svix_verify(secret, id, il, "1700000000", 10, entry, strlen(entry), b2, bl + 1, now) !=
            SB_EPERM)
            abort();
        free(b2);
    }
    free(secret);
    return 0;
}
