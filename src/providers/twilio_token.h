/* Twilio Voice access tokens (the JWT a browser's Twilio Voice SDK connects with): a pure function
 * of its inputs and the time, no I/O.
 *
 * The token is HS256-signed with the API key's secret, header {"alg":"HS256","typ":"JWT",
 * "cty":"twilio-fpa;v=1"}, claims jti "{keySid}-{now}", grants {identity, voice: {incoming:
 * {allow: true}, outgoing: {application_sid}}}, iat now, exp now + ttl, iss the API key SID, sub the
 * account SID.  Fields and their order are those of Twilio's node library (AccessToken with a
 * VoiceGrant, signed by jsonwebtoken), so for the same time both produce the same bytes. */
#ifndef SB_PROVIDERS_TWILIO_TOKEN_H
#define SB_PROVIDERS_TWILIO_TOKEN_H

#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"

#define SB_TWILIO_TOKEN_TTL 3600
#define SB_TWILIO_IDENTITY_MAX 121 /* Twilio's limit for a Voice client identity */

typedef struct sb_twilio_token_s {
    const char *account_sid;     /* sub */
    const char *api_key_sid;     /* iss, and the jti's prefix */
    const char *api_key_secret;  /* the HMAC key; never logged */
    const char *identity;        /* the client's identity (UTF-8, 1..SB_TWILIO_IDENTITY_MAX bytes) */
    const char *application_sid; /* the TwiML app outgoing calls use; NULL: no outgoing grant */
    bool incoming;               /* allow incoming calls to identity */
    int ttl;                     /* seconds; 0 means SB_TWILIO_TOKEN_TTL */
} sb_twilio_token_t;

/* Appends the signed token for time now (Unix seconds) to out.  0, or SB_EINVAL (a missing field,
 * an identity that is empty, too long or not UTF-8, a ttl out of 1..86400: Twilio's maximum is 24
 * hours). */
int sb_twilio_token_make(const sb_twilio_token_t *t, int64_t now, sb_buf_t *out);

#endif
