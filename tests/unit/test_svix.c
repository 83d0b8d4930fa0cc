/* Svix webhook signatures (Resend).  The expected signatures were computed with the npm package
 * svix 1.99.1 (pinned in package-lock.json): new Webhook(secret).sign(id, new Date(ts * 1000),
 * body); tests/e2e/providers_sig.test.mjs checks more, generated at random, against this code. */
#include "core/error.h"
#include "providers/svix.h"
#include "sbtest.h"

#include <stdio.h>
#include <string.h>

static const char *const SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
static const char *const ID = "msg_p5jXN8AQM9LWM0D4loKWxJek";
static const char *const BODY = "{\"test\": 2432232314}";
static const char *const SIG = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
#define TS 1614265330

static int verify(const char *secret, const char *id, const char *ts, const char *sigs, const char *body,
                  int64_t now)
{
    return sb_svix_verify(secret, id, strlen(id), ts, strlen(ts), sigs, strlen(sigs), body, strlen(body),
                          now);
}

static void test_vectors(void)
{
    CHECK_EQ_INT(verify(SECRET, ID, "1614265330", SIG, BODY, TS), 0);
    char out[SB_SVIX_SIG_LEN + 1];
    CHECK_EQ_INT(sb_svix_sign(SECRET, ID, strlen(ID), TS, BODY, strlen(BODY), out), 0);
    CHECK_EQ_STR(out, SIG + 3);
    /* A secret whose base64 has padding, and a body with UTF-8. */
    const char *s2 = "whsec_dGVzdC1zZWNyZXQtZm9yLXJlc2VuZC13ZWJob29rcw==";
    const char *b2 = "{\"type\":\"email.delivered\",\"data\":{\"email_id\":\"\xc3\xa9\"}}";
    CHECK_EQ_INT(
        verify(s2, "msg_2", "1700000000", "v1,bQdnK2gVUI0g8HVVbl3+y0s2SX6HM7h9P93HZVZ8BX8=", b2, 1700000000),
        0);
    /* The prefix is optional, as in svix's libraries. */
    CHECK_EQ_INT(verify(SECRET + 6, ID, "1614265330", SIG, BODY, TS), 0);
}

static void test_tolerance(void)
{
    CHECK_EQ_INT(verify(SECRET, ID, "1614265330", SIG, BODY, TS + 300), 0);
    CHECK_EQ_INT(verify(SECRET, ID, "1614265330", SIG, BODY, TS - 300), 0);
    CHECK_EQ_INT(verify(SECRET, ID, "1614265330", SIG, BODY, TS + 301), SB_ETIMEOUT);
    CHECK_EQ_INT(verify(SECRET, ID, "1614265330", SIG, BODY, TS - 301), SB_ETIMEOUT);
    CHECK_EQ_INT(verify(SECRET, ID, "1614265330", SIG, BODY, 0), SB_ETIMEOUT);
}

static void test_several_entries(void)
{
    char both[256];
    snprintf(both, sizeof both, "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= %s", SIG);
    CHECK_EQ_INT(verify(SECRET, ID, "1614265330", both, BODY, TS), 0);
    snprintf(both, sizeof both, "%s v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", SIG);
    CHECK_EQ_INT(verify(SECRET, ID, "1614265330", both, BODY, TS), 0);
    /* Other versions are ignored, even carrying the right bytes. */
    snprintf(both, sizeof both, "v2,%s", SIG + 3);
    CHECK_EQ_INT(verify(SECRET, ID, "1614265330", both, BODY, TS), SB_EPERM);
    snprintf(both, sizeof both, "v1a,%s", SIG + 3);
    CHECK_EQ_INT(verify(SECRET, ID, "1614265330", both, BODY, TS), SB_EPERM);
    /* The bare signature without "v1," is not an entry. */
    CHECK_EQ_INT(verify(SECRET, ID, "1614265330", SIG + 3, BODY, TS), SB_EPERM);
    CHECK_EQ_INT(verify(SECRET, ID, "1614265330", "v1, v1,", BODY, TS), SB_EPERM);
}

static void test_tampering(void)
{
    CHECK_EQ_INT(verify(SECRET, ID, "1614265330", SIG, "{\"test\": 2432232315}", TS), SB_EPERM);
    CHECK_EQ_INT(verify(SECRET, "msg_p5jXN8AQM9LWM0D4loKWxJeK", "1614265330", SIG, BODY, TS), SB_EPERM);
    CHECK_EQ_INT(verify(SECRET, ID, "1614265331", SIG, BODY, TS), SB_EPERM);
    CHECK_EQ_INT(verify("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSx", ID, "1614265330", SIG, BODY, TS), SB_EPERM);
    char bad[64];
    strcpy(bad, SIG);
    bad[10] ^= 1;
    CHECK_EQ_INT(verify(SECRET, ID, "1614265330", bad, BODY, TS), SB_EPERM);
}

static void test_malformed(void)
{
    CHECK_EQ_INT(verify(SECRET, ID, "", SIG, BODY, TS), SB_EINVAL);
    CHECK_EQ_INT(verify(SECRET, ID, "16142653x0", SIG, BODY, TS), SB_EINVAL);
    CHECK_EQ_INT(verify(SECRET, ID, "-1614265330", SIG, BODY, TS), SB_EINVAL);
    CHECK_EQ_INT(verify(SECRET, ID, " 1614265330", SIG, BODY, TS), SB_EINVAL);
    CHECK_EQ_INT(verify(SECRET, ID, "1614265330123", SIG, BODY, TS), SB_EINVAL);
    CHECK_EQ_INT(verify(SECRET, "", "1614265330", SIG, BODY, TS), SB_EINVAL);
    CHECK_EQ_INT(verify(SECRET, ID, "1614265330", "", BODY, TS), SB_EINVAL);
    CHECK_EQ_INT(verify("whsec_", ID, "1614265330", SIG, BODY, TS), SB_EINVAL);
    CHECK_EQ_INT(verify("whsec_not*base64", ID, "1614265330", SIG, BODY, TS), SB_EINVAL);
    CHECK_EQ_INT(verify(NULL, ID, "1614265330", SIG, BODY, TS), SB_EINVAL);
    char longid[SB_SVIX_MAX_ID + 2];
    memset(longid, 'a', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    CHECK_EQ_INT(verify(SECRET, longid, "1614265330", SIG, BODY, TS), SB_EINVAL);
    char out[SB_SVIX_SIG_LEN + 1];
    CHECK_EQ_INT(sb_svix_sign("whsec_%%%", ID, strlen(ID), TS, BODY, strlen(BODY), out), SB_EINVAL);
    CHECK_EQ_STR(out, "");
    /* An empty body is a body like any other. */
    CHECK_EQ_INT(sb_svix_sign(SECRET, ID, strlen(ID), TS, "", 0, out), 0);
    char entry[64];
    snprintf(entry, sizeof entry, "v1,%s", out);
    CHECK_EQ_INT(sb_svix_verify(SECRET, ID, strlen(ID), "1614265330", 10, entry, strlen(entry), NULL, 0, TS),
                 0);
}

int main(void)
{
    SBTEST_RUN(test_vectors);
    SBTEST_RUN(test_tolerance);
    SBTEST_RUN(test_several_entries);
    SBTEST_RUN(test_tampering);
    SBTEST_RUN(test_malformed);
    return sbtest_summary();
}
