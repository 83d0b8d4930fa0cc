/* Twilio Voice access tokens: byte for byte against Twilio's node library, field by field, and the
 * signature recomputed here.
 *
 * EXPECTED was made with the npm packages twilio 6.2.0 and jsonwebtoken 9.0.3 (pinned in
 * package-lock.json), Date.now fixed at 1700000000 s:
 *   t = new AccessToken(ACCOUNT, KEY, SECRET, {identity: IDENTITY});
 *   t.addGrant(new AccessToken.VoiceGrant({incomingAllow: true, outgoingApplicationSid: APP}));
 *   t.toJwt()
 * tests/e2e/providers_sig.test.mjs checks tokens for random identities and times the same way, and
 * verifies them with jsonwebtoken. */
#include "core/error.h"
#include "events/codec.h"
#include "providers/twilio_token.h"
#include "sbtest.h"

#include <jansson.h>
#include <sodium.h>
#include <string.h>

#define ACCOUNT "AC0123456789abcdef0123456789abcdef"
#define KEY "SK0123456789abcdef0123456789abcdef"
#define SECRET "api-key-secret-0123456789abcdef"
#define APP "AP0123456789abcdef0123456789abcdef"
#define IDENTITY "agent \"ann\" <ann@example.com>\n"
#define NOW 1700000000

static const char *const EXPECTED =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsImN0eSI6InR3aWxpby1mcGE7dj0xIn0."
    "eyJqdGkiOiJTSzAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWJjZGVmLTE3MDAwMDAwMDAiLCJncmFudHMiOnsiaWRlbnRpdHkiOiJh"
    "Z2VudCBcImFublwiIDxhbm5AZXhhbXBsZS5jb20-XG4iLCJ2b2ljZSI6eyJpbmNvbWluZyI6eyJhbGxvdyI6dHJ1ZX0sIm91dGdvaW5n"
    "Ijp7ImFwcGxpY2F0aW9uX3NpZCI6IkFQMDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWYifX19LCJpYXQiOjE3MDAwMDAwMDAs"
    "ImV4cCI6MTcwMDAwMzYwMCwiaXNzIjoiU0swMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZiIsInN1YiI6IkFDMDEyMzQ1Njc4"
    "OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWYifQ."
    "DbAFhYLtgYp0uQ0R_62Q_yKjtzF_SjSA_nK1oN-oS5Y";

static sb_twilio_token_t params(void)
{
    sb_twilio_token_t t = {
        .account_sid = ACCOUNT,
        .api_key_sid = KEY,
        .api_key_secret = SECRET,
        .identity = IDENTITY,
        .application_sid = APP,
        .incoming = true,
    };
    return t;
}

/* Decodes one base64url segment into a jansson value (or raw bytes when raw is not NULL). */
static json_t *segment(const char *tok, int which, sb_buf_t *raw)
{
    const char *p = tok;
    for (int i = 0; i < which; i++)
        p = strchr(p, '.') + 1;
    const char *end = strchr(p, '.');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    unsigned char bin[1024];
    size_t len = 0;
    if (sodium_base642bin(bin, sizeof bin, p, n, NULL, &len, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
        return NULL;
    if (raw) {
        sb_buf_append(raw, bin, len);
        return NULL;
    }
    json_error_t err;
    return json_loadb((const char *)bin, len, 0, &err);
}

static void test_matches_node(void)
{
    sb_twilio_token_t t = params();
    sb_buf_t out = SB_BUF_INIT;
    if (CHECK_EQ_INT(sb_twilio_token_make(&t, NOW, &out), 0))
        CHECK_EQ_STR(out.data, EXPECTED);
    sb_buf_free(&out);
}

static void test_fields(void)
{
    sb_twilio_token_t t = params();
    t.identity = "alice";
    t.ttl = 600;
    sb_buf_t out = SB_BUF_INIT;
    sb_buf_puts(&out, "prefix:"); /* appends */
    if (!CHECK_EQ_INT(sb_twilio_token_make(&t, 1800000000, &out), 0))
        return;
    const char *tok = out.data + 7;
    CHECK(strncmp(out.data, "prefix:", 7) == 0);
    json_t *h = segment(tok, 0, NULL), *c = segment(tok, 1, NULL);
    if (CHECK(h != NULL && c != NULL)) {
        CHECK_EQ_STR(json_string_value(json_object_get(h, "typ")), "JWT");
        CHECK_EQ_STR(json_string_value(json_object_get(h, "alg")), "HS256");
        CHECK_EQ_STR(json_string_value(json_object_get(h, "cty")), "twilio-fpa;v=1");
        CHECK_EQ_UINT(json_object_size(h), 3);
        CHECK_EQ_STR(json_string_value(json_object_get(c, "iss")), KEY);
        CHECK_EQ_STR(json_string_value(json_object_get(c, "sub")), ACCOUNT);
        CHECK_EQ_STR(json_string_value(json_object_get(c, "jti")), KEY "-1800000000");
        CHECK_EQ_INT(json_integer_value(json_object_get(c, "iat")), 1800000000);
        CHECK_EQ_INT(json_integer_value(json_object_get(c, "exp")), 1800000600);
        json_t *g = json_object_get(c, "grants");
        CHECK_EQ_STR(json_string_value(json_object_get(g, "identity")), "alice");
        json_t *v = json_object_get(g, "voice");
        CHECK(json_is_true(json_object_get(json_object_get(v, "incoming"), "allow")));
        CHECK_EQ_STR(json_string_value(json_object_get(json_object_get(v, "outgoing"), "application_sid")),
                     APP);
    }
    json_decref(h);
    json_decref(c);

    /* The signature: HMAC-SHA256 of "header.claims" with the key's secret. */
    const char *dot2 = strrchr(tok, '.');
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, (const unsigned char *)SECRET, strlen(SECRET));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)tok, (size_t)(dot2 - tok));
    crypto_auth_hmacsha256_final(&st, mac);
    sb_buf_t sig = SB_BUF_INIT;
    segment(tok, 2, &sig);
    CHECK_EQ_MEM(sig.data, sig.len, mac, sizeof mac);
    sb_buf_free(&sig);
    sb_buf_free(&out);
}

static void test_grants_optional(void)
{
    sb_twilio_token_t t = params();
    t.incoming = false;
    sb_buf_t out = SB_BUF_INIT;
    CHECK_EQ_INT(sb_twilio_token_make(&t, NOW, &out), 0);
    json_t *c = segment(out.data, 1, NULL);
    json_t *v = json_object_get(json_object_get(c, "grants"), "voice");
    CHECK(json_object_get(v, "incoming") == NULL);
    CHECK(json_object_get(v, "outgoing") != NULL);
    json_decref(c);
    sb_buf_reset(&out);
    t.incoming = true;
    t.application_sid = NULL;
    CHECK_EQ_INT(sb_twilio_token_make(&t, NOW, &out), 0);
    c = segment(out.data, 1, NULL);
    v = json_object_get(json_object_get(c, "grants"), "voice");
    CHECK(json_object_get(v, "incoming") != NULL);
    CHECK(json_object_get(v, "outgoing") == NULL);
    CHECK_EQ_INT(json_integer_value(json_object_get(c, "exp")), NOW + 3600);
    json_decref(c);
    sb_buf_free(&out);
}

static void test_invalid(void)
{
    sb_buf_t out = SB_BUF_INIT;
    sb_twilio_token_t t = params();
    t.identity = "";
    CHECK_EQ_INT(sb_twilio_token_make(&t, NOW, &out), SB_EINVAL);
    t.identity = NULL;
    CHECK_EQ_INT(sb_twilio_token_make(&t, NOW, &out), SB_EINVAL);
    t.identity = "bad \xff utf8";
    CHECK_EQ_INT(sb_twilio_token_make(&t, NOW, &out), SB_EINVAL);
    char longid[SB_TWILIO_IDENTITY_MAX + 2];
    memset(longid, 'x', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    t.identity = longid;
    CHECK_EQ_INT(sb_twilio_token_make(&t, NOW, &out), SB_EINVAL);
    longid[SB_TWILIO_IDENTITY_MAX] = '\0';
    CHECK_EQ_INT(sb_twilio_token_make(&t, NOW, &out), 0);
    t = params();
    t.api_key_secret = "";
    CHECK_EQ_INT(sb_twilio_token_make(&t, NOW, &out), SB_EINVAL);
    t = params();
    t.account_sid = NULL;
    CHECK_EQ_INT(sb_twilio_token_make(&t, NOW, &out), SB_EINVAL);
    t = params();
    t.ttl = 86401;
    CHECK_EQ_INT(sb_twilio_token_make(&t, NOW, &out), SB_EINVAL);
    t.ttl = -1;
    CHECK_EQ_INT(sb_twilio_token_make(&t, NOW, &out), SB_EINVAL);
    sb_buf_free(&out);
}

int main(void)
{
    SBTEST_RUN(test_matches_node);
    SBTEST_RUN(test_fields);
    SBTEST_RUN(test_grants_optional);
    SBTEST_RUN(test_invalid);
    return sbtest_summary();
}
