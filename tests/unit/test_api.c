/* The API's pure helpers: pagination cursors (opaque, exact round trip, strict decoding) and roles. */
#include <string.h>

#include "core/error.h"
#include "http/api.h"
#include "http/api_int.h"
#include "sbtest.h"

static void test_cursor_round_trip(void)
{
    static const int64_t times[] = {0, 1, -1, 1763700000123456LL, INT64_MAX / 2, -62135596800LL * 1000000};
    static const char *const ids[] = {"00000000-0000-0000-0000-000000000000",
                                      "01a1fec5-760f-75bd-abee-1a4c09b1c820",
                                      "ffffffff-ffff-ffff-ffff-ffffffffffff"};
    for (size_t i = 0; i < sizeof times / sizeof times[0]; i++) {
        for (size_t k = 0; k < sizeof ids / sizeof ids[0]; k++) {
            char c[SB_API_CURSOR_MAX], id[SB_UUID_STRLEN + 1];
            int64_t at = 42;
            sb_api_cursor_encode(times[i], ids[k], c);
            CHECK_EQ_UINT(strlen(c), 32);
            CHECK(strspn(c, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == 32);
            CHECK_EQ_INT(sb_api_cursor_decode(c, &at, id), 0);
            CHECK_EQ_INT(at, times[i]);
            CHECK_EQ_STR(id, ids[k]);
        }
    }
}

static void test_cursor_rejects(void)
{
    char c[SB_API_CURSOR_MAX], id[SB_UUID_STRLEN + 1];
    int64_t at;
    sb_api_cursor_encode(1763700000123456LL, "01a1fec5-760f-75bd-abee-1a4c09b1c820", c);
    static const char *const bad[] = {"", "x", "garbage", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                                      "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                                      "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA+/",
                                      "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA..",
                                      /* a byte libsodium's decoder alone would take (found by fuzzing) */
                                      "AAZFmF9u2dUBofrFdg92vav\322GkwJscgg"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_EQ_INT(sb_api_cursor_decode(bad[i], &at, id), SB_EINVAL);
    char longer[80];
    snprintf(longer, sizeof longer, "%sA", c);
    CHECK_EQ_INT(sb_api_cursor_decode(longer, &at, id), SB_EINVAL);
    c[31] = '\0';
    CHECK_EQ_INT(sb_api_cursor_decode(c, &at, id), SB_EINVAL);
}

static void test_roles(void)
{
    CHECK_EQ_INT(sb_role_parse("owner"), SB_ROLE_OWNER);
    CHECK_EQ_INT(sb_role_parse("admin"), SB_ROLE_ADMIN);
    CHECK_EQ_INT(sb_role_parse("agent"), SB_ROLE_AGENT);
    CHECK_EQ_INT(sb_role_parse("Owner"), SB_ROLE_NONE);
    CHECK_EQ_INT(sb_role_parse(""), SB_ROLE_NONE);
    CHECK_EQ_INT(sb_role_parse(NULL), SB_ROLE_NONE);
    CHECK(SB_ROLE_OWNER > SB_ROLE_ADMIN && SB_ROLE_ADMIN > SB_ROLE_AGENT && SB_ROLE_AGENT > SB_ROLE_NONE);
    for (int r = SB_ROLE_NONE; r <= SB_ROLE_OWNER; r++)
        CHECK_EQ_INT(sb_role_parse(sb_role_name((sb_role_t)r)), r);
}

/* Path ids: canonical lowercase passes as it is, other case is lower-cased, anything else is no id. */
static void test_uuid_param(void)
{
    char out[SB_UUID_STRLEN + 1];
    CHECK(sb__api_uuid("01a1fec5-760f-75bd-abee-1a4c09b1c820", out));
    CHECK_EQ_STR(out, "01a1fec5-760f-75bd-abee-1a4c09b1c820");
    CHECK(sb__api_uuid("01A1FEC5-760F-75BD-ABEE-1A4C09B1C820", out));
    CHECK_EQ_STR(out, "01a1fec5-760f-75bd-abee-1a4c09b1c820");
    static const char *const bad[] = {
        "",
        "01a1fec5-760f-75bd-abee-1a4c09b1c82",   /* short */
        "01a1fec5-760f-75bd-abee-1a4c09b1c8200", /* long */
        "01a1fec5x760f-75bd-abee-1a4c09b1c820",  /* separator */
        "01a1fec5-760f-75bd-abee-1a4c09b1c82g",  /* not hex */
        "01a1fec5-760f-75bd-abee1-a4c09b1c820",  /* hyphen moved */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(!sb__api_uuid(bad[i], out));
    CHECK(!sb__api_uuid(NULL, out));
}

/* Every byte of a token is checked: each position, each byte value outside base64url. */
static void test_token_wellformed(void)
{
    char tok[SB__API_TOKEN_LEN + 1];
    uint8_t hash[32];
    sb__api_token_new(tok, hash);
    CHECK(sb__api_token_is_wellformed(tok, SB__API_TOKEN_LEN));
    CHECK(!sb__api_token_is_wellformed(tok, SB__API_TOKEN_LEN - 1));
    CHECK(!sb__api_token_is_wellformed("sbt_", 4));
    char t[SB__API_TOKEN_LEN + 1];
    memcpy(t, tok, sizeof(t));
    t[0] = 'S';
    CHECK(!sb__api_token_is_wellformed(t, SB__API_TOKEN_LEN));
    static const char base64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    int rejected = 0, accepted = 0;
    for (int pos = 4; pos < SB__API_TOKEN_LEN; pos++) {
        for (int b = 0; b < 256; b++) {
            memcpy(t, tok, sizeof(t));
            t[pos] = (char)b;
            bool want = b != 0 && strchr(base64url, b) != NULL;
            bool got = sb__api_token_is_wellformed(t, SB__API_TOKEN_LEN);
            CHECK(got == want);
            rejected += !got;
            accepted += got;
        }
    }
    CHECK_EQ_INT(accepted, 43 * 64);
    CHECK_EQ_INT(rejected, 43 * 192);
}

int main(void)
{
    SBTEST_RUN(test_cursor_round_trip);
    SBTEST_RUN(test_cursor_rejects);
    SBTEST_RUN(test_roles);
    SBTEST_RUN(test_uuid_param);
    SBTEST_RUN(test_token_wellformed);
    return sbtest_summary();
}
