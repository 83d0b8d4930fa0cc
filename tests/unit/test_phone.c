/* Phone and e-mail normalisation: one table of inputs and expected results per function. */
#include "core/error.h"
#include "core/phone.h"

#include <stdio.h>
#include <string.h>

static int failures;

#define CHECK(cond, ...)                                                                                     \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            failures++;                                                                                      \
            fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                                                  \
            fprintf(stderr, __VA_ARGS__);                                                                    \
            fputc('\n', stderr);                                                                             \
        }                                                                                                    \
    } while (0)

/* want == NULL: the input must be refused with SB_EINVAL. */
typedef struct {
    const char *in;
    const char *country;
    const char *want;
} phone_case_t;

static const phone_case_t phone_cases[] = {
    /* International forms, whatever the default country. */
    {"+1 (415) 555-0100", "US", "+14155550100"},
    {"+14155550100", "US", "+14155550100"},
    {"+1 415 555 0100", "DE", "+14155550100"},
    {"+1.415.555.0100", "JP", "+14155550100"},
    {"(+44) 20 7946 0958", "US", "+442079460958"},
    {"00 44 20 7946 0958", "US", "+442079460958"},
    {"00 44 20 7946 0958", "FR", "+442079460958"},
    {"011 44 20 7946 0958", "US", "+442079460958"},
    {"011 44 20 7946 0958", "CA", "+442079460958"},
    {"+44 (0)20 7946 0958", "US", "+442079460958"},
    {"+1 1 415 555 0100", "US", "+14155550100"},
    {"+233 24 123 4567", "US", "+233241234567"}, /* code outside the table */
    /* Schemes and surrounding white space. */
    {"tel:+1-415-555-0100", "US", "+14155550100"},
    {"TEL:+14155550100", "GB", "+14155550100"},
    {"tel:4155550100", "US", "+14155550100"},
    {"whatsapp:+14155550100", "US", "+14155550100"},
    {"whatsapp:+5215512345678", "US", "+525512345678"},
    {"  +1 415 555 0100 \r\n", "US", "+14155550100"},
    {"+1/415/555/0100", "US", "+14155550100"},
    /* NANP national forms. */
    {"(415) 555-0100", "US", "+14155550100"},
    {"(415) 555-0100", NULL, "+14155550100"},
    {"1-415-555-0100", "US", "+14155550100"},
    {"415.555.0100", "us", "+14155550100"},
    {"(604) 555-0199", "CA", "+16045550199"},
    /* National forms, one country at a time. */
    {"020 7946 0958", "GB", "+442079460958"},
    {"07700 900123", "GB", "+447700900123"},
    {"0800 1111", "GB", "+448001111"},
    {"030 1234567", "DE", "+49301234567"},
    {"+49 (0)89 123456", "US", "+4989123456"},
    {"01 23 45 67 89", "FR", "+33123456789"},
    {"06.12.34.56.78", "FR", "+33612345678"},
    {"06 1234 5678", "IT", "+390612345678"},
    {"+39 06 1234 5678", "US", "+390612345678"},
    {"333 123 4567", "IT", "+393331234567"},
    {"612 34 56 78", "ES", "+34612345678"},
    {"912 345 678", "PT", "+351912345678"},
    {"06-12345678", "NL", "+31612345678"},
    {"0470 12 34 56", "BE", "+32470123456"},
    {"087 123 4567", "IE", "+353871234567"},
    {"0412 345 678", "AU", "+61412345678"},
    {"(02) 9374 4000", "AU", "+61293744000"},
    {"0011 44 20 7946 0958", "AU", "+442079460958"},
    {"021 123 4567", "NZ", "+64211234567"},
    {"082 123 4567", "ZA", "+27821234567"},
    {"098765 43210", "IN", "+919876543210"},
    {"9123 4567", "SG", "+6591234567"},
    {"9123 4567", "HK", "+85291234567"},
    {"090-1234-5678", "JP", "+819012345678"},
    {"010 1 415 555 0100", "JP", "+14155550100"},
    {"010-1234-5678", "KR", "+821012345678"},
    {"001 1 415 555 0100", "KR", "+14155550100"},
    {"138 0013 8000", "CN", "+8613800138000"},
    {"070-123 45 67", "SE", "+46701234567"},
    {"412 34 567", "NO", "+4741234567"},
    {"32 12 34 56", "DK", "+4532123456"},
    {"040 123 4567", "FI", "+358401234567"},
    {"044 668 18 00", "CH", "+41446681800"},
    {"0664 1234567", "AT", "+436641234567"},
    {"512 345 678", "PL", "+48512345678"},
    {"050-123-4567", "IL", "+972501234567"},
    {"050 123 4567", "AE", "+971501234567"},
    {"(11) 91234-5678", "BR", "+5511912345678"},
    {"011 91234 5678", "BR", "+5511912345678"},
    {"55 1234 5678", "MX", "+525512345678"},
    {"+52 1 55 1234 5678", "US", "+525512345678"},
    {"8 (495) 123-45-67", "RU", "+74951234567"},
    {"8 10 44 20 7946 0958", "RU", "+442079460958"},
    {"8 701 123 4567", "KZ", "+77011234567"},
    {"210 123 4567", "GR", "+302101234567"},
    {"0532 123 45 67", "TR", "+905321234567"},
    {"011 1234-5678", "AR", "+541112345678"},
    {"321 1234567", "CO", "+573211234567"},
    {"9 1234 5678", "CL", "+56912345678"},
    {"0917 123 4567", "PH", "+639171234567"},
    {"081 234 5678", "TH", "+66812345678"},
    {"012-345 6789", "MY", "+60123456789"},
    {"0812-3456-7890", "ID", "+6281234567890"},
    {"091 234 56 78", "VN", "+84912345678"},
    {"0803 123 4567", "NG", "+2348031234567"},
    {"0712 345678", "KE", "+254712345678"},
    {"010 1234 5678", "EG", "+201012345678"},
    {"050 123 4567", "SA", "+966501234567"},
    {"0301 2345678", "PK", "+923012345678"},
    {"601 123 456", "CZ", "+420601123456"},
    {"0712 345 678", "RO", "+40712345678"},
    {"050 123 4567", "UA", "+380501234567"},
    /* Too short or too long for the country. */
    {"(415) 555-010", "US", NULL},
    {"415 555 01000", "US", NULL},
    {"01 23 45 67 8", "FR", NULL},
    {"01 23 45 67 89 0", "FR", NULL},
    {"+44 20 7946 0958 1234 5", "US", NULL},
    {"+999 1234", "US", NULL},
    {"00", "GB", NULL},
    /* Digits in places the plan forbids. */
    {"(015) 555-0100", "US", NULL},
    {"(115) 555-0100", "US", NULL},
    {"415 155 0100", "US", NULL},
    {"0612345678", "ES", NULL},
    {"+44 00 20 7946 0958", "US", NULL},
    {"+0044 20 7946 0958", "US", NULL},
    {"00 0 123 456 789", "GB", NULL},
    /* Letters, extensions, other symbols. */
    {"1-800-FLOWERS", "US", NULL},
    {"+1 415 555 0100 x123", "US", NULL},
    {"+1 415 555 0100 ext. 5", "US", NULL},
    {"tel:+14155550100;ext=5", "US", NULL},
    {"+1 415 555 0100#", "US", NULL},
    {"*67 415 555 0100", "US", NULL},
    {"+1 415 555 0100, 2", "US", NULL},
    {"sms:+14155550100", "US", NULL},
    /* Shape: empty, plus signs, parentheses. */
    {"", "US", NULL},
    {"   ", "US", NULL},
    {"+", "US", NULL},
    {"tel:", "US", NULL},
    {"++14155550100", "US", NULL},
    {"1+4155550100", "US", NULL},
    {"(415 555-0100", "US", NULL},
    {"415) 555-0100", "US", NULL},
    {"((415)) 555-0100", "US", NULL},
    /* Unknown default country, even for an international number. */
    {"+14155550100", "XX", NULL},
    {"(415) 555-0100", "USA", NULL},
    {"(415) 555-0100", "", NULL},
};

static void test_phone_table(void)
{
    for (size_t i = 0; i < sizeof phone_cases / sizeof phone_cases[0]; i++) {
        const phone_case_t *c = &phone_cases[i];
        char out[SB_PHONE_MAX];
        memset(out, 'z', sizeof out);
        int rc = sb_phone_normalize(c->in, strlen(c->in), c->country, out);
        if (c->want == NULL) {
            CHECK(rc == SB_EINVAL, "\"%s\" (%s): want SB_EINVAL, got %d \"%s\"", c->in,
                  c->country ? c->country : "NULL", rc, rc == 0 ? out : "");
            CHECK(out[0] == '\0', "\"%s\": out not cleared on error", c->in);
            continue;
        }
        CHECK(rc == 0 && strcmp(out, c->want) == 0, "\"%s\" (%s): want %s, got %d \"%s\"", c->in,
              c->country ? c->country : "NULL", c->want, rc, rc == 0 ? out : "");
        if (rc != 0)
            continue;
        CHECK(sb_phone_is_e164(out), "\"%s\" is not E.164", out);
        /* Normalising the output again must be a no-op, under any default country. */
        char again[SB_PHONE_MAX];
        rc = sb_phone_normalize(out, strlen(out), c->country, again);
        CHECK(rc == 0 && strcmp(again, out) == 0, "renormalising \"%s\" gave %d \"%s\"", out, rc, again);
        rc = sb_phone_normalize(out, strlen(out), "GB", again);
        CHECK(rc == 0 && strcmp(again, out) == 0, "renormalising \"%s\" (GB) gave %d", out, rc);
    }
}

static void test_phone_bounds(void)
{
    char in[80], out[SB_PHONE_MAX];
    /* 64 bytes is the longest input read; one byte more is refused however harmless. */
    memset(in, ' ', sizeof in);
    memcpy(in, "+14155550100", 12);
    CHECK(sb_phone_normalize(in, 64, "US", out) == 0 && strcmp(out, "+14155550100") == 0, "64 bytes");
    CHECK(sb_phone_normalize(in, 65, "US", out) == SB_EINVAL, "65 bytes accepted");
    /* The length is honoured: bytes after len are never read, and a NUL inside len is refused. */
    CHECK(sb_phone_normalize("+14155550100999", 12, "US", out) == 0 && strcmp(out, "+14155550100") == 0,
          "len not honoured");
    CHECK(sb_phone_normalize("+1415\0"
                             "5550100",
                             13, "US", out) == SB_EINVAL,
          "embedded NUL accepted");
    CHECK(sb_phone_normalize(NULL, 0, "US", out) == SB_EINVAL, "NULL input");
    /* Twenty-one digits overflow the scan buffer's bound, not memory. */
    const char *many = "+123456789012345678901";
    CHECK(sb_phone_normalize(many, strlen(many), "US", out) == SB_EINVAL, "21 digits");
}

static void test_phone_predicates(void)
{
    CHECK(sb_phone_is_e164("+14155550100"), "+14155550100");
    CHECK(sb_phone_is_e164("+12345678"), "8 digits");
    CHECK(sb_phone_is_e164("+123456789012345"), "15 digits");
    CHECK(!sb_phone_is_e164("+1234567"), "7 digits");
    CHECK(!sb_phone_is_e164("+1234567890123456"), "16 digits");
    CHECK(!sb_phone_is_e164("+04155550100"), "leading 0");
    CHECK(!sb_phone_is_e164("14155550100"), "no plus");
    CHECK(!sb_phone_is_e164("+1415555010a"), "letter");
    CHECK(!sb_phone_is_e164("+1 4155550100"), "space");
    CHECK(!sb_phone_is_e164(""), "empty");
    CHECK(!sb_phone_is_e164(NULL), "NULL");

    CHECK(sb_phone_country_known("US"), "US");
    CHECK(sb_phone_country_known("GB"), "GB");
    CHECK(sb_phone_country_known("UA"), "UA");
    CHECK(!sb_phone_country_known("gb"), "lower case");
    CHECK(!sb_phone_country_known("XX"), "XX");
    CHECK(!sb_phone_country_known("USA"), "USA");
    CHECK(!sb_phone_country_known("U"), "U");
    CHECK(!sb_phone_country_known(""), "empty");
    CHECK(!sb_phone_country_known(NULL), "NULL");
}

typedef struct {
    const char *in;
    const char *want;
} email_case_t;

static const email_case_t email_cases[] = {
    {"alice@example.com", "alice@example.com"},
    {"  Alice@Example.COM \r\n", "alice@example.com"},
    {"First.Last+tag@Sub.Example.co.uk", "first.last+tag@sub.example.co.uk"},
    {"o'brien@example.ie", "o'brien@example.ie"},
    {"a_b-c=d@xn--bcher-kva.example", "a_b-c=d@xn--bcher-kva.example"},
    {"x@1st.example9.org", "x@1st.example9.org"},
    {"", NULL},
    {"   ", NULL},
    {"no-at.example.com", NULL},
    {"a@@example.com", NULL},
    {"a@b@example.com", NULL},
    {"@example.com", NULL},
    {"alice@", NULL},
    {"alice@localhost", NULL},
    {"alice@example..com", NULL},
    {"alice@.example.com", NULL},
    {"alice@example.com.", NULL},
    {".alice@example.com", NULL},
    {"alice.@example.com", NULL},
    {"al..ice@example.com", NULL},
    {"al ice@example.com", NULL},
    {"alice@exa mple.com", NULL},
    {"alice@-example.com", NULL},
    {"alice@example-.com", NULL},
    {"alice@exam_ple.com", NULL},
    {"alice@1.2.3.4", NULL},
    {"alice@[192.0.2.1]", NULL},
    {"\"quoted\"@example.com", NULL},
    {"a,b@example.com", NULL},
    {"Alice <alice@example.com>", NULL},
    {"alice@example.com\r\nBcc: eve@example.org", NULL},
    {"al\tice@example.com", NULL},
    {"\xc3\xa5lice@example.com", NULL},
};

static void fill(char *buf, char c, size_t n)
{
    memset(buf, c, n);
    buf[n] = '\0';
}

static void test_email(void)
{
    for (size_t i = 0; i < sizeof email_cases / sizeof email_cases[0]; i++) {
        const email_case_t *c = &email_cases[i];
        char out[SB_EMAIL_MAX];
        int rc = sb_email_normalize(c->in, strlen(c->in), out);
        if (c->want == NULL) {
            CHECK(rc == SB_EINVAL && out[0] == '\0', "\"%s\": want SB_EINVAL, got %d \"%s\"", c->in, rc,
                  rc == 0 ? out : "");
            continue;
        }
        CHECK(rc == 0 && strcmp(out, c->want) == 0, "\"%s\": want %s, got %d \"%s\"", c->in, c->want, rc,
              rc == 0 ? out : "");
        char again[SB_EMAIL_MAX];
        CHECK(sb_email_normalize(out, strlen(out), again) == 0 && strcmp(again, out) == 0,
              "renormalising \"%s\"", out);
    }

    /* Length limits: 64-byte local part, 63-byte label, 254 bytes in all. */
    char in[400], out[SB_EMAIL_MAX];
    fill(in, 'a', 64);
    strcat(in, "@example.com");
    CHECK(sb_email_normalize(in, strlen(in), out) == 0, "64-byte local part refused");
    fill(in, 'a', 65);
    strcat(in, "@example.com");
    CHECK(sb_email_normalize(in, strlen(in), out) == SB_EINVAL, "65-byte local part accepted");
    strcpy(in, "a@");
    fill(in + 2, 'b', 63);
    strcat(in, ".com");
    CHECK(sb_email_normalize(in, strlen(in), out) == 0, "63-byte label refused");
    strcpy(in, "a@");
    fill(in + 2, 'b', 64);
    strcat(in, ".com");
    CHECK(sb_email_normalize(in, strlen(in), out) == SB_EINVAL, "64-byte label accepted");

    /* "a@", four 60-byte labels, then "ddddx.io": exactly 254 bytes, then one more. */
    size_t n = 0;
    n += (size_t)sprintf(in + n, "a@");
    for (int l = 0; l < 4; l++) {
        fill(in + n, 'c', 60);
        n += 60;
        in[n++] = '.';
    }
    fill(in + n, 'd', 254 - 4 - n);
    n = strlen(in);
    memcpy(in + n, "x.io", 5);
    n += 4;
    CHECK(n == 254, "built %zu bytes", n);
    CHECK(sb_email_normalize(in, n, out) == 0 && strlen(out) == 254, "254 bytes refused");
    memmove(in + 1, in, n + 1);
    in[0] = 'z';
    CHECK(sb_email_normalize(in, n + 1, out) == SB_EINVAL, "255 bytes accepted");
    /* Trailing white space does not count against the limit. */
    memmove(in, in + 1, n + 1);
    memcpy(in + n, "   ", 4);
    CHECK(sb_email_normalize(in, n + 3, out) == 0, "trimmed 254 bytes refused");
    CHECK(sb_email_normalize(NULL, 0, out) == SB_EINVAL, "NULL input");
}

int main(void)
{
    test_phone_table();
    test_phone_bounds();
    test_phone_predicates();
    test_email();
    size_t ncases = sizeof phone_cases / sizeof phone_cases[0] + sizeof email_cases / sizeof email_cases[0];
    if (failures != 0) {
        fprintf(stderr, "test_phone: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_phone: ok (%zu table cases)\n", ncases);
    return 0;
}
