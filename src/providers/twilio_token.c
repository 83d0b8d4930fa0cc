#include "providers/twilio_token.h"

#include "core/error.h"
#include "events/codec.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

/* A JSON string literal as JavaScript's JSON.stringify writes it (so our bytes equal the node
 * library's): short escapes for \b \f \n \r \t, \u00xx for other control characters, UTF-8 as is. */
static void put_js_string(sb_buf_t *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    sb_buf_putc(b, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        switch (c) {
        case '"':
            sb_buf_puts(b, "\\\"");
            break;
        case '\\':
            sb_buf_puts(b, "\\\\");
            break;
        case '\b':
            sb_buf_puts(b, "\\b");
            break;
        case '\f':
            sb_buf_puts(b, "\\f");
            break;
        case '\n':
            sb_buf_puts(b, "\\n");
            break;
        case '\r':
            sb_buf_puts(b, "\\r");
            break;
        case '\t':
            sb_buf_puts(b, "\\t");
            break;
        default:
            if (c < 0x20) {
                char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
                sb_buf_append(b, esc, 6);
            } else {
                sb_buf_putc(b, (char)c);
            }
        }
    }
    sb_buf_putc(b, '"');
}

static void put_b64url(sb_buf_t *out, const void *p, size_t n)
{
    size_t cap = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    if (sb_buf_reserve(out, cap) != 0)
        abort(); /* a token is a few hundred bytes */
    sodium_bin2base64(out->data + out->len, cap, p, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    out->len += strlen(out->data + out->len);
}

static bool valid_str(const char *s, size_t max)
{
    if (s == NULL)
        return false;
    size_t n = strlen(s);
    return n > 0 && n <= max && sb_utf8_is_valid(s, n);
}

int sb_twilio_token_make(const sb_twilio_token_t *t, int64_t now, sb_buf_t *out)
{
    int ttl = t->ttl ? t->ttl : SB_TWILIO_TOKEN_TTL;
    if (!valid_str(t->account_sid, 64) || !valid_str(t->api_key_sid, 64) || t->api_key_secret == NULL ||
        t->api_key_secret[0] == '\0' || !valid_str(t->identity, SB_TWILIO_IDENTITY_MAX) ||
        (t->application_sid != NULL && !valid_str(t->application_sid, 64)) || ttl < 1 || ttl > 86400)
        return SB_EINVAL;

    static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"cty\":\"twilio-fpa;v=1\"}";
    sb_buf_t claims = SB_BUF_INIT;
    sb_buf_puts(&claims, "{\"jti\":");
    sb_buf_t jti = SB_BUF_INIT;
    sb_buf_printf(&jti, "%s-%lld", t->api_key_sid, (long long)now);
    put_js_string(&claims, jti.data);
    sb_buf_free(&jti);
    sb_buf_puts(&claims, ",\"grants\":{\"identity\":");
    put_js_string(&claims, t->identity);
    sb_buf_puts(&claims, ",\"voice\":{");
    if (t->incoming)
        sb_buf_puts(&claims, "\"incoming\":{\"allow\":true}");
    if (t->application_sid) {
        if (t->incoming)
            sb_buf_putc(&claims, ',');
        sb_buf_puts(&claims, "\"outgoing\":{\"application_sid\":");
        put_js_string(&claims, t->application_sid);
        sb_buf_putc(&claims, '}');
    }
    sb_buf_printf(&claims, "}},\"iat\":%lld,\"exp\":%lld,\"iss\":", (long long)now, (long long)(now + ttl));
    put_js_string(&claims, t->api_key_sid);
    sb_buf_puts(&claims, ",\"sub\":");
    put_js_string(&claims, t->account_sid);
    sb_buf_putc(&claims, '}');

    size_t start = out->len;
    put_b64url(out, header, sizeof header - 1);
    sb_buf_putc(out, '.');
    put_b64url(out, claims.data, claims.len);
    sb_buf_free(&claims);

    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, (const unsigned char *)t->api_key_secret, strlen(t->api_key_secret));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)out->data + start, out->len - start);
    crypto_auth_hmacsha256_final(&st, mac);
    sodium_memzero(&st, sizeof st);
    sb_buf_putc(out, '.');
    put_b64url(out, mac, sizeof mac);
    return 0;
}
