/* application/x-www-form-urlencoded: parsing (strict, bounded) and encoding. */
#include "core/error.h"
#include "events/codec.h"
#include "providers/form.h"
#include "sbtest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse(const char *s, sb_form_t *f)
{
    return sb_form_parse(s, strlen(s), f);
}

static void test_basic(void)
{
    sb_form_t f;
    if (!CHECK_EQ_INT(parse("a=1&b=two&c=", &f), 0))
        return;
    CHECK_EQ_UINT(f.n, 3);
    CHECK_EQ_STR(f.fields[0].name, "a");
    CHECK_EQ_STR(f.fields[0].value, "1");
    CHECK_EQ_STR(f.fields[1].name, "b");
    CHECK_EQ_STR(f.fields[1].value, "two");
    CHECK_EQ_STR(f.fields[2].name, "c");
    CHECK_EQ_STR(f.fields[2].value, "");
    CHECK_EQ_UINT(f.fields[1].value_len, 3);
    CHECK_EQ_STR(sb_form_get(&f, "b"), "two");
    CHECK(sb_form_get(&f, "B") == NULL); /* names are case-sensitive */
    sb_form_free(&f);
}

static void test_decoding(void)
{
    sb_form_t f;
    if (!CHECK_EQ_INT(parse("Body=Hello+world%21+%2B1&To=%2B15551234567&e=%c3%A9%C3%A9&x%20y=a%3Db=c", &f),
                      0))
        return;
    CHECK_EQ_STR(sb_form_get(&f, "Body"), "Hello world! +1");
    CHECK_EQ_STR(sb_form_get(&f, "To"), "+15551234567");
    CHECK_EQ_STR(sb_form_get(&f, "e"), "\xc3\xa9\xc3\xa9");
    CHECK_EQ_STR(sb_form_get(&f, "x y"), "a=b=c"); /* only the first '=' splits */
    sb_form_free(&f);
}

static void test_repeated_and_empty(void)
{
    sb_form_t f;
    if (!CHECK_EQ_INT(parse("&&MediaUrl=b&Body=x&&MediaUrl=a&flag&=v&", &f), 0))
        return;
    CHECK_EQ_UINT(f.n, 5);
    CHECK_EQ_UINT(sb_form_count(&f, "MediaUrl"), 2);
    CHECK_EQ_STR(f.fields[0].value, "b"); /* arrival order is kept */
    CHECK_EQ_STR(f.fields[2].value, "a");
    CHECK_EQ_STR(f.fields[3].name, "flag");
    CHECK_EQ_STR(f.fields[3].value, "");
    CHECK_EQ_STR(f.fields[4].name, "");
    CHECK_EQ_STR(f.fields[4].value, "v");
    sb_form_free(&f);

    CHECK_EQ_INT(parse("", &f), 0);
    CHECK_EQ_UINT(f.n, 0);
    sb_form_free(&f);
    CHECK_EQ_INT(parse("&&&", &f), 0);
    CHECK_EQ_UINT(f.n, 0);
    sb_form_free(&f);
    CHECK_EQ_INT(sb_form_parse(NULL, 0, &f), 0);
    CHECK_EQ_UINT(f.n, 0);
}

static void test_malformed(void)
{
    static const struct {
        const char *in;
        int rc;
    } cases[] = {
        {"a=%", SB_EINVAL},        {"a=%4", SB_EINVAL},          {"a=%zz", SB_EINVAL},
        {"a=%G1", SB_EINVAL},      {"%=1", SB_EINVAL},           {"a=1&b=%0", SB_EINVAL},
        {"a=%00", SB_EINVAL},      {"%00=a", SB_EINVAL},         {"a=%C3%28", SB_EUTF8},
        {"a=%ED%A0%80", SB_EUTF8}, {"a=%C0%AF", SB_EUTF8},       {"a=\xff", SB_EUTF8},
        {"\xc3=1", SB_EUTF8},      {"a=%F4%90%80%80", SB_EUTF8}, {"ok=1&a=%E2%82", SB_EUTF8},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sb_form_t f = {(sb_form_field_t *)1, 99};
        int rc = parse(cases[i].in, &f);
        if (!CHECK_EQ_INT(rc, cases[i].rc))
            fprintf(stderr, "  input: %s\n", cases[i].in);
        CHECK(f.fields == NULL && f.n == 0); /* nothing to free after an error */
    }
}

static void test_bounds(void)
{
    sb_buf_t b = SB_BUF_INIT;
    for (int i = 0; i < SB_FORM_MAX_FIELDS; i++)
        sb_buf_printf(&b, "%sk%d=v", i ? "&" : "", i);
    sb_form_t f;
    CHECK_EQ_INT(sb_form_parse(b.data, b.len, &f), 0);
    CHECK_EQ_UINT(f.n, SB_FORM_MAX_FIELDS);
    sb_form_free(&f);
    sb_buf_puts(&b, "&one=more");
    CHECK_EQ_INT(sb_form_parse(b.data, b.len, &f), SB_ETOOBIG);
    /* Empty pieces do not count against the limit. */
    sb_buf_reset(&b);
    for (int i = 0; i < 1000; i++)
        sb_buf_putc(&b, '&');
    sb_buf_puts(&b, "a=1");
    CHECK_EQ_INT(sb_form_parse(b.data, b.len, &f), 0);
    CHECK_EQ_UINT(f.n, 1);
    sb_form_free(&f);

    char *big = malloc(SB_FORM_MAX_BYTES + 1);
    memset(big, 'a', SB_FORM_MAX_BYTES + 1);
    big[0] = 'x';
    big[1] = '=';
    CHECK_EQ_INT(sb_form_parse(big, SB_FORM_MAX_BYTES, &f), 0);
    CHECK_EQ_UINT(f.fields[0].value_len, SB_FORM_MAX_BYTES - 2);
    sb_form_free(&f);
    CHECK_EQ_INT(sb_form_parse(big, SB_FORM_MAX_BYTES + 1, &f), SB_ETOOBIG);
    free(big);
    sb_buf_free(&b);
}

/* An inbound MMS as Twilio posts it. */
static void test_twilio_webhook(void)
{
    const char *body =
        "ToCountry=US&MediaContentType0=image%2Fjpeg&ToState=CA&SmsMessageSid=MM0123456789abcdef"
        "0123456789abcdef&NumMedia=1&ToCity=&FromZip=94105&SmsSid=MM0123456789abcdef0123456789abcd"
        "ef&FromState=CA&SmsStatus=received&FromCity=SAN+FRANCISCO&Body=Photo+of+the+leak+%F0%9F%"
        "93%B7&FromCountry=US&To=%2B14155550100&MessagingServiceSid=&ToZip=&NumSegments=1&Message"
        "Sid=MM0123456789abcdef0123456789abcdef&AccountSid=AC0123456789abcdef0123456789abcdef&From"
        "=%2B14155550199&MediaUrl0=https%3A%2F%2Fapi.twilio.com%2F2010-04-01%2FAccounts%2FAC01%2FM"
        "essages%2FMM01%2FMedia%2FME01&ApiVersion=2010-04-01";
    sb_form_t f;
    if (!CHECK_EQ_INT(parse(body, &f), 0))
        return;
    CHECK_EQ_STR(sb_form_get(&f, "Body"), "Photo of the leak \xF0\x9F\x93\xB7");
    CHECK_EQ_STR(sb_form_get(&f, "From"), "+14155550199");
    CHECK_EQ_STR(sb_form_get(&f, "MediaUrl0"),
                 "https://api.twilio.com/2010-04-01/Accounts/AC01/Messages/MM01/Media/ME01");
    CHECK_EQ_STR(sb_form_get(&f, "MessagingServiceSid"), "");
    CHECK_EQ_STR(sb_form_get(&f, "NumMedia"), "1");
    sb_form_free(&f);
}

static void test_encode(void)
{
    sb_buf_t b = SB_BUF_INIT;
    sb_form_add(&b, "To", "+15551234567");
    sb_form_add(&b, "Body", "a b&c=d+\xc3\xa9*-._~/?%");
    sb_form_add(&b, "MediaUrl", "https://x.example/1.jpg");
    sb_form_add(&b, "MediaUrl", "https://x.example/2.jpg");
    sb_form_add(&b, "Empty", NULL);
    CHECK_EQ_STR(b.data,
                 "To=%2B15551234567&Body=a+b%26c%3Dd%2B%C3%A9*-._%7E%2F%3F%25"
                 "&MediaUrl=https%3A%2F%2Fx.example%2F1.jpg&MediaUrl=https%3A%2F%2Fx.example%2F2.jpg&Empty=");
    sb_form_t f;
    if (CHECK_EQ_INT(sb_form_parse(b.data, b.len, &f), 0)) {
        CHECK_EQ_UINT(f.n, 5);
        CHECK_EQ_STR(f.fields[1].value, "a b&c=d+\xc3\xa9*-._~/?%");
        CHECK_EQ_STR(f.fields[3].value, "https://x.example/2.jpg");
        sb_form_free(&f);
    }
    sb_buf_free(&b);
}

/* Every byte but NUL, as a value and as a name, survives encode + parse (valid UTF-8 only). */
static void test_roundtrip_bytes(void)
{
    char s[2] = {0, 0};
    for (int c = 1; c < 0x80; c++) {
        s[0] = (char)c;
        sb_buf_t b = SB_BUF_INIT;
        sb_form_add(&b, s, s);
        sb_form_t f;
        if (CHECK_EQ_INT(sb_form_parse(b.data, b.len, &f), 0) && CHECK_EQ_UINT(f.n, 1)) {
            CHECK_EQ_STR(f.fields[0].name, s);
            CHECK_EQ_STR(f.fields[0].value, s);
        }
        sb_form_free(&f);
        sb_buf_free(&b);
    }
}

/* The percent-decoding byte by byte, as the parser did before it copied plain runs a word at a
 * time: the reference the parser must agree with on any input. */
static int plain_hex(unsigned char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

static int plain_decode(const char *s, size_t len, char *out, size_t *out_len)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            if (len - i < 3 || plain_hex((unsigned char)s[i + 1]) < 0 ||
                plain_hex((unsigned char)s[i + 2]) < 0)
                return SB_EINVAL;
            c = (unsigned char)(plain_hex((unsigned char)s[i + 1]) << 4 | plain_hex((unsigned char)s[i + 2]));
            i += 2;
        }
        if (c == '\0')
            return SB_EINVAL;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    *out_len = o;
    return 0;
}

/* One field "name=value" parsed both ways: the same status, and on success the same bytes.
 * False at the first difference. */
static bool check_one(const char *in, size_t len)
{
    const char *eq = memchr(in, '=', len);
    size_t nlen = eq != NULL ? (size_t)(eq - in) : len;
    char name[128], value[128] = "";
    size_t name_len = 0, value_len = 0;
    int want = plain_decode(in, nlen, name, &name_len);
    if (want == 0 && eq != NULL)
        want = plain_decode(eq + 1, len - nlen - 1, value, &value_len);
    if (want == 0 && (!sb_utf8_is_valid(name, name_len) || !sb_utf8_is_valid(value, value_len)))
        want = SB_EUTF8;
    sb_form_t f;
    int got = sb_form_parse(in, len, &f);
    if (!CHECK_EQ_INT(got, want)) {
        fprintf(stderr, "  input: %.*s\n", (int)len, in);
        sb_form_free(&f);
        return false;
    }
    bool ok = true;
    if (got == 0 && (ok = CHECK_EQ_UINT(f.n, 1))) {
        ok =
            CHECK(f.fields[0].name_len == name_len && memcmp(f.fields[0].name, name, name_len + 1) == 0) &&
            CHECK(f.fields[0].value_len == value_len && memcmp(f.fields[0].value, value, value_len + 1) == 0);
    }
    sb_form_free(&f);
    char out[128];
    size_t out_len = 0;
    want = plain_decode(in, len, name, &name_len);
    got = sb_form_decode(in, len, out, &out_len);
    if (!CHECK_EQ_INT(got, want))
        return false;
    return ok && (got != 0 || CHECK(out_len == name_len && memcmp(out, name, out_len + 1) == 0));
}

/* Random pieces (up to 100 bytes, no '&') over an alphabet rich in what the decoder treats apart:
 * '%' with good and bad hex, '+', NUL, bytes of every UTF-8 length and broken ones, long plain runs
 * (the word-at-a-time path) and runs ending at every offset. */
static void test_decode_matches_plain(void)
{
    static const char *const atoms[] = {"a",
                                        "Z9",
                                        "abcdefgh",
                                        "SM0123456789abcdef",
                                        "%",
                                        "%4",
                                        "%41",
                                        "%2b",
                                        "%2B",
                                        "%zz",
                                        "%00",
                                        "%c3",
                                        "%A9",
                                        "%e2%82%ac",
                                        "+",
                                        "=",
                                        "\xc3\xa9",
                                        "\xe2\x82\xac",
                                        "\xc3",
                                        "\xff",
                                        "\x80",
                                        "\xf0\x9f\x98\x80",
                                        "%f0%9f%98%80",
                                        "%ed%a0%80",
                                        " ",
                                        "~.-_*"};
    const size_t natoms = sizeof atoms / sizeof atoms[0];
    unsigned seed = 12345;
    char in[128];
    for (int round = 0; round < 50000; round++) {
        size_t len = 0;
        seed = seed * 1103515245u + 12345u;
        size_t pieces = (seed >> 16) % 12;
        for (size_t p = 0; p < pieces; p++) {
            seed = seed * 1103515245u + 12345u;
            const char *a = atoms[(seed >> 16) % natoms];
            size_t n = strlen(a);
            if (len + n > 100)
                break;
            memcpy(in + len, a, n);
            len += n;
        }
        seed = seed * 1103515245u + 12345u;
        if ((seed >> 16) % 16 == 0 && len > 0)
            in[(seed >> 20) % len] = '\0'; /* a raw NUL somewhere */
        if (len == 0)
            continue; /* an empty piece is no field (test_repeated_and_empty) */
        if (!check_one(in, len))
            return;
    }
}

int main(void)
{
    SBTEST_RUN(test_basic);
    SBTEST_RUN(test_decoding);
    SBTEST_RUN(test_repeated_and_empty);
    SBTEST_RUN(test_malformed);
    SBTEST_RUN(test_bounds);
    SBTEST_RUN(test_twilio_webhook);
    SBTEST_RUN(test_encode);
    SBTEST_RUN(test_roundtrip_bytes);
    SBTEST_RUN(test_decode_matches_plain);
    return sbtest_summary();
}
