/* Phone numbers in E.164 (+<country code><national number>, at most 15 digits) and e-mail
 * addresses, normalised so that equal numbers and addresses compare equal as strings. */
#ifndef SB_CORE_PHONE_H
#define SB_CORE_PHONE_H

#include <stdbool.h>
#include <stddef.h>

#define SB_PHONE_MAX 17 /* '+', 15 digits, NUL */

/* Normalises in (any common written form: "+1 (415) 555-0100", "00 44 20 7946 0958",
 * "(415) 555-0100", "020 7946 0958", "tel:+14155550100", a "whatsapp:" prefix) to E.164 in out.
 * National formats are read with default_country (ISO 3166 alpha-2, e.g. "US", "GB"; NULL = "US"),
 * dropping that country's trunk prefix.  Returns 0, or SB_EINVAL when in is not a plausible phone
 * number (letters, too few or too many digits, unknown country). */
int sb_phone_normalize(const char *in, size_t len, const char *default_country, char out[SB_PHONE_MAX]);

/* True when s is already E.164: '+' then 8 to 15 digits, the first not 0. */
bool sb_phone_is_e164(const char *s);

/* True when code is an ISO 3166 alpha-2 country this module knows (upper case). */
bool sb_phone_country_known(const char *code);

#define SB_EMAIL_MAX 255
/* Lower-cases and trims an e-mail address into out and checks its shape (one '@', a non-empty
 * local part, a dotted domain, no spaces or control characters, at most 254 bytes).  0 or
 * SB_EINVAL. */
int sb_email_normalize(const char *in, size_t len, char out[SB_EMAIL_MAX]);

#endif
