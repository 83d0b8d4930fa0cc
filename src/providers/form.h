/* application/x-www-form-urlencoded: the parser for the bodies Twilio posts to our webhooks, and
 * the encoder for the bodies we post to Twilio's REST API.
 *
 * Pure functions: no I/O, no globals.  The parser is strict because its input comes from the
 * network: a '%' not followed by two hex digits, a decoded NUL, invalid UTF-8 (after decoding),
 * more than SB_FORM_MAX_FIELDS fields or more than SB_FORM_MAX_BYTES of input are errors, never
 * guesses.  Empty pieces ("a=1&&b=2", a trailing '&') are skipped, as browsers and Twilio's own
 * libraries do; a piece without '=' is a name with an empty value. */
#ifndef SB_PROVIDERS_FORM_H
#define SB_PROVIDERS_FORM_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"

/* Twilio's largest webhooks (an MMS with ten media, a WhatsApp message with a long body) have
 * fewer than 60 fields and a few KiB; these bounds leave room without letting a peer make us
 * allocate much. */
#define SB_FORM_MAX_FIELDS 256
#define SB_FORM_MAX_BYTES (128 * 1024)

typedef struct sb_form_field_s {
    const char *name; /* decoded, NUL-terminated, valid UTF-8 */
    size_t name_len;
    const char *value; /* decoded, NUL-terminated, valid UTF-8 */
    size_t value_len;
} sb_form_field_t;

/* The fields in the order they were received (repeated names stay repeated).  All strings point
 * into one allocation that sb_form_free releases. */
typedef struct sb_form_s {
    sb_form_field_t *fields;
    size_t n;
} sb_form_t;

#define SB_FORM_INIT                                                                                         \
    {                                                                                                        \
        NULL, 0                                                                                              \
    }

/* Parses s[0..len).  0, or SB_ETOOBIG (too many bytes or fields), SB_EINVAL (bad percent-escape or a
 * decoded NUL), SB_EUTF8 (a name or value is not UTF-8), SB_ENOMEM.  On error *out is empty and
 * needs no free; on success the caller frees it with sb_form_free. */
int sb_form_parse(const char *s, size_t len, sb_form_t *out);

void sb_form_free(sb_form_t *f);

/* The first value of name, or NULL. */
const char *sb_form_get(const sb_form_t *f, const char *name);

/* How many fields carry name. */
size_t sb_form_count(const sb_form_t *f, const char *name);

/* Appends name=value, encoded, to b ('&' first unless b is empty): letters, digits and "*-._" as
 * they are, space as '+', every other byte as %XX. */
void sb_form_add(sb_buf_t *b, const char *name, const char *value);

/* Percent-decodes one component ('+' is a space) into out, which must hold len + 1 bytes; writes
 * the decoded length to *out_len and a terminating NUL.  0 or SB_EINVAL (bad escape or NUL). */
int sb_form_decode(const char *s, size_t len, char *out, size_t *out_len);

#endif
