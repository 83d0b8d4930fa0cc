/* Svix webhook signatures (how Resend signs its webhooks): pure functions, no I/O, no clock.
 *
 * A request carries svix-id, svix-timestamp (Unix seconds) and svix-signature: space-separated
 * entries "v1,<base64>", several when the endpoint's secret is being rotated.  The signature is
 * HMAC-SHA256, keyed with the base64 key of the endpoint secret "whsec_<base64>", over
 * "{id}.{timestamp}.{body}", in base64.  The timestamp must lie within five minutes of now either
 * way, so a captured request cannot be replayed later. */
#ifndef SB_PROVIDERS_SVIX_H
#define SB_PROVIDERS_SVIX_H

#include <stddef.h>
#include <stdint.h>

#define SB_SVIX_TOLERANCE_S 300
#define SB_SVIX_SIG_LEN 44 /* base64 of a 32-byte HMAC-SHA256 */
#define SB_SVIX_MAX_ID 256 /* svix ids are ~30 bytes; longer is refused */
#define SB_SVIX_MAX_HEADER 4096

/* Checks one delivery.  secret: "whsec_<base64>" (the prefix is optional, as in svix's libraries);
 * id, timestamp, signatures: the three headers' values; body: the raw request body; now: Unix
 * seconds.  0 when an entry "v1,<sig>" matches; SB_EINVAL for a malformed secret or header (empty,
 * too long, a timestamp that is not decimal digits); SB_ETIMEOUT when the timestamp is more than
 * SB_SVIX_TOLERANCE_S away from now; SB_EPERM when no v1 entry matches.  Comparisons are
 * constant-time. */
int sb_svix_verify(const char *secret, const char *id, size_t id_len, const char *timestamp, size_t ts_len,
                   const char *signatures, size_t sig_len, const char *body, size_t body_len, int64_t now);

/* Computes the v1 signature (base64, NUL-terminated, without the "v1," prefix) of id, timestamp and
 * body into out.  0, or SB_EINVAL for a malformed secret. */
int sb_svix_sign(const char *secret, const char *id, size_t id_len, int64_t timestamp, const char *body,
                 size_t body_len, char out[SB_SVIX_SIG_LEN + 1]);

#endif
