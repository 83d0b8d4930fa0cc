/* X-Twilio-Signature (SPEC §7): pure functions, no I/O.
 *
 * Twilio signs each webhook request with HMAC-SHA1, keyed with the account's auth token, over the
 * URL it requested (our SWITCHBOARD_PUBLIC_URL + path + query, exactly as sent) followed by every
 * POST parameter's name and value, sorted by name; the header is the digest in base64.
 *
 * What "sorted" means for a repeated name is not in Twilio's prose; its official libraries (node,
 * python) take that name's distinct values sorted.  We accept that form, and also every value in
 * the order received (the stable sort of all parameters by name) when a name repeats.  Names and
 * values sort as JavaScript strings do (UTF-16 code units), which equals byte order except for
 * characters above U+FFFF against U+E000..U+FFFF.
 *
 * As Twilio's validators do, the URL is tried as given without its port and with the scheme's
 * default port added (Twilio may sign either, depending on how the URL was configured). */
#ifndef SB_PROVIDERS_TWILIO_SIG_H
#define SB_PROVIDERS_TWILIO_SIG_H

#include <stdbool.h>
#include <stddef.h>

#include "providers/form.h"

#define SB_TWILIO_SIG_LEN 28 /* base64 of a 20-byte HMAC-SHA1 digest */

/* Computes the signature of url (url_len bytes) and params the way Twilio's libraries do (distinct
 * values of a repeated name sorted) into out, NUL-terminated.  params may be NULL (no body). */
void sb_twilio_sig_compute(const char *auth_token, const char *url, size_t url_len, const sb_form_t *params,
                           char out[SB_TWILIO_SIG_LEN + 1]);

/* True when sig (sig_len bytes, the X-Twilio-Signature header) is a valid signature of url and
 * params under auth_token, trying the URL without its port and with the default port, each with
 * both orders for repeated names (see above).  Comparisons are constant-time.  An empty token or
 * signature is never valid. */
bool sb_twilio_sig_check(const char *auth_token, const char *url, size_t url_len, const sb_form_t *params,
                         const char *sig, size_t sig_len);

/* The URL variants the check tries, exposed for tests: writes url without its port (if any) to
 * without and with the scheme's default port (if it had none) to with; each buffer holds
 * url_len + 7 bytes.  An URL that is not "scheme://authority..." is copied unchanged to both. */
void sb_twilio_sig_url_variants(const char *url, size_t url_len, char *without, size_t *without_len,
                                char *with, size_t *with_len);

#endif
