/* The event codec, decoding: msgpack -> JSON text, UTF-8 validation, limits.  test_codec_encode.c
 * has JSON -> msgpack and base64. */
#include "core/error.h"
#include "events/codec.h"
#include "sbtest.h"

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ---------------------------------------------------------------------------------- */

/* Equal as JSON values, numbers compared by value (a JSON reader may give 1 or 1.0 for a number
 * the other side holds as the other kind). */
static bool tree_equal(json_t *a, json_t *b)
{
    if (json_is_number(a) && json_is_number(b)) {
        if (json_is_integer(a) && json_is_integer(b))
            return json_integer_value(a) == json_integer_value(b);
        return json_number_value(a) == json_number_value(b);
    }
    if (json_typeof(a) != json_typeof(b))
        return false;
    if (json_is_string(a))
        return json_string_length(a) == json_string_length(b) &&
               memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
    if (json_is_array(a)) {
        if (json_array_size(a) != json_array_size(b))
            return false;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!tree_equal(json_array_get(a, i), json_array_get(b, i)))
                return false;
        return true;
    }
    if (json_is_object(a)) {
        if (json_object_size(a) != json_object_size(b))
            return false;
        const char *k;
        json_t *v;
        json_object_foreach(a, k, v)
        {
            json_t *w = json_object_get(b, k);
            if (w == NULL || !tree_equal(v, w))
                return false;
        }
        return true;
    }
    return true; /* null, true, false */
}

/* Parses codec output with jansson: plainly, or, for integers beyond json_int_t (which jansson
 * refuses plainly), as reals. */
static json_t *parse_output(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &e);
    if (j == NULL && json_error_code(&e) == json_error_numeric_overflow)
        j = json_loads(text, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, &e);
    if (j == NULL)
        fprintf(stderr, "jansson: %s in %.200s\n", e.text, text);
    return j;
}

/* The jansson decoding of mp equals jansson's reading of its JSON text. */
static bool jansson_agrees(const char *mp, size_t len, const char *text)
{
    json_t *direct = NULL, *parsed = parse_output(text);
    char err[128];
    bool ok =
        parsed && sb_codec_to_jansson(mp, len, &direct, err, sizeof err) == 0 && tree_equal(direct, parsed);
    json_decref(direct);
    json_decref(parsed);
    return ok;
}

/* sb_codec_to_json, or sb_codec_to_json_sorted when sorted. */
static char *to_json_as(const char *mp, size_t len, bool sorted, int *rc)
{
    sb_buf_t b = SB_BUF_INIT;
    char err[128];
    *rc = (sorted ? sb_codec_to_json_sorted : sb_codec_to_json)(mp, len, &b, err, sizeof err);
    if (*rc) {
        sb_buf_free(&b);
        return NULL;
    }
    return sb_buf_steal(&b);
}

static char *to_json(const char *mp, size_t len, int *rc)
{
    return to_json_as(mp, len, false, rc);
}

static char *to_json_sorted(const char *mp, size_t len, int *rc)
{
    return to_json_as(mp, len, true, rc);
}

/* mp is a string literal of msgpack bytes. */
#define EXPECT_JSON_AS(mp, sorted, expected)                                                                 \
    do {                                                                                                     \
        int rc_;                                                                                             \
        char *s_ = to_json_as(mp, sizeof(mp) - 1, sorted, &rc_);                                             \
        if (CHECK_EQ_INT(rc_, 0)) {                                                                          \
            CHECK_EQ_STR(s_, expected);                                                                      \
            CHECK(jansson_agrees(mp, sizeof(mp) - 1, s_));                                                   \
        }                                                                                                    \
        free(s_);                                                                                            \
    } while (0)
#define EXPECT_JSON(mp, expected) EXPECT_JSON_AS(mp, false, expected)
#define EXPECT_SORTED(mp, expected) EXPECT_JSON_AS(mp, true, expected)

#define EXPECT_REJECT_LEN(mp, len, code)                                                                     \
    do {                                                                                                     \
        sb_buf_t b_ = SB_BUF_INIT;                                                                           \
        json_t *j_ = NULL;                                                                                   \
        char e_[128];                                                                                        \
        CHECK_EQ_INT(sb_codec_to_json(mp, len, &b_, e_, sizeof e_), code);                                   \
        CHECK(e_[0] != '\0');                                                                                \
        CHECK_EQ_INT(sb_codec_to_jansson(mp, len, &j_, e_, sizeof e_), code);                                \
        CHECK(j_ == NULL);                                                                                   \
        CHECK(!sb_codec_is_valid_map(mp, len));                                                              \
        sb_buf_free(&b_);                                                                                    \
        json_decref(j_);                                                                                     \
    } while (0)
#define EXPECT_REJECT(mp, code) EXPECT_REJECT_LEN(mp, sizeof(mp) - 1, code)

static int sbuf_write(void *data, const char *p, size_t n)
{
    sb_buf_append(data, p, n);
    return 0;
}

static char *json_of_double(double d, bool f32)
{
    sb_buf_t mp = SB_BUF_INIT;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &mp, sbuf_write);
    if (f32)
        msgpack_pack_float(&pk, (float)d);
    else
        msgpack_pack_double(&pk, d);
    int rc;
    char *s = to_json(mp.data, mp.len, &rc);
    if (rc == 0 && !jansson_agrees(mp.data, mp.len, s)) {
        free(s);
        s = NULL;
    }
    sb_buf_free(&mp);
    return s;
}

/* ---- scalars ---------------------------------------------------------------------------------- */

static void test_scalars(void)
{
    EXPECT_JSON("\xc0", "null");
    EXPECT_JSON("\xc2", "false");
    EXPECT_JSON("\xc3", "true");
    EXPECT_REJECT("\xc1", SB_ECODEC);
    EXPECT_REJECT("", SB_ECODEC);
}

static void test_integer_widths(void)
{
    EXPECT_JSON("\x00", "0");
    EXPECT_JSON("\x7f", "127");
    EXPECT_JSON("\xe0", "-32");
    EXPECT_JSON("\xff", "-1");
    EXPECT_JSON("\xcc\x00", "0");
    EXPECT_JSON("\xcc\xff", "255");
    EXPECT_JSON("\xcd\xff\xff", "65535");
    EXPECT_JSON("\xce\xff\xff\xff\xff", "4294967295");
    EXPECT_JSON("\xcf\x00\x00\x00\x01\x00\x00\x00\x00", "4294967296");
    EXPECT_JSON("\xcf\x7f\xff\xff\xff\xff\xff\xff\xff", "9223372036854775807");
    EXPECT_JSON("\xcf\x80\x00\x00\x00\x00\x00\x00\x00", "9223372036854775808");
    EXPECT_JSON("\xcf\xff\xff\xff\xff\xff\xff\xff\xff", "18446744073709551615");
    EXPECT_JSON("\xd0\x80", "-128");
    EXPECT_JSON("\xd0\x7f", "127");
    EXPECT_JSON("\xd0\xff", "-1");
    EXPECT_JSON("\xd1\x80\x00", "-32768");
    EXPECT_JSON("\xd1\x7f\xff", "32767");
    EXPECT_JSON("\xd2\x80\x00\x00\x00", "-2147483648");
    EXPECT_JSON("\xd2\x7f\xff\xff\xff", "2147483647");
    EXPECT_JSON("\xd3\x80\x00\x00\x00\x00\x00\x00\x00", "-9223372036854775808");
    EXPECT_JSON("\xd3\x7f\xff\xff\xff\xff\xff\xff\xff", "9223372036854775807");
    EXPECT_JSON("\xd3\xff\xff\xff\xff\xff\xff\xff\xff", "-1");

    /* In a jansson tree: int64 exactly; beyond it, the nearest real. */
    json_t *j = NULL;
    char err[128];
    if (CHECK_EQ_INT(sb_codec_to_jansson("\xd3\x80\x00\x00\x00\x00\x00\x00\x00", 9, &j, err, sizeof err),
                     0)) {
        CHECK(json_is_integer(j) && json_integer_value(j) == INT64_MIN);
        json_decref(j);
    }
    if (CHECK_EQ_INT(sb_codec_to_jansson("\xcf\xff\xff\xff\xff\xff\xff\xff\xff", 9, &j, err, sizeof err),
                     0)) {
        CHECK(json_is_real(j) && json_real_value(j) == 18446744073709551615.0);
        json_decref(j);
    }

    /* Truncated fields of every width. */
    EXPECT_REJECT("\xcc", SB_ECODEC);
    EXPECT_REJECT("\xcd\xff", SB_ECODEC);
    EXPECT_REJECT("\xce\xff\xff\xff", SB_ECODEC);
    EXPECT_REJECT("\xcf\xff\xff\xff\xff\xff\xff\xff", SB_ECODEC);
    EXPECT_REJECT("\xd3\x80", SB_ECODEC);
    EXPECT_REJECT("\xca\x00\x00\x00", SB_ECODEC);
    EXPECT_REJECT("\xcb\x00\x00\x00\x00\x00\x00\x00", SB_ECODEC);
}

/* ---- floats ----------------------------------------------------------------------------------- */

static void expect_real(double d, bool f32, const char *expected, int line)
{
    char *s = json_of_double(d, f32);
    if (!sbtest_check_str(s, expected, "json", expected, __FILE__, line))
        fprintf(stderr, "  (for %.17g as %s)\n", d, f32 ? "float32" : "float64");
    free(s);
}
#define EXPECT_REAL(d, f32, expected) expect_real(d, f32, expected, __LINE__)

/* The fewest significant digits that read back as d, by brute force. */
static int shortest_digits(double d)
{
    char buf[40];
    for (int p = 1; p < 17; p++) {
        snprintf(buf, sizeof buf, "%.*g", p, d);
        if (strtod(buf, NULL) == d)
            return p;
    }
    return 17;
}

/* Significant digits of the mantissa: from the first non-zero digit to the last ("1.0" has one,
 * "123000.0" three). */
static int significant_digits(const char *s)
{
    int first = -1, last = -1, pos = 0;
    for (; *s && *s != 'e'; s++) {
        if (*s < '0' || *s > '9')
            continue;
        if (*s != '0') {
            if (first < 0)
                first = pos;
            last = pos;
        }
        pos++;
    }
    return first < 0 ? 1 : last - first + 1;
}

/* What the codec should write for a normal double: %.15g if that reads back (then it is the
 * shortest, see fmt_real), else %.16g or %.17g, with ".0" when it would look like an integer. */
static void reference_real(char buf[48], double d)
{
    for (int p = DBL_DIG; p <= 17; p++) {
        snprintf(buf, 40, "%.*g", p, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    if (strpbrk(buf, ".e") == NULL)
        strcat(buf, ".0");
}

static uint64_t xorshift(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* Decimals with up to 15 digits (the printf-free path, and around its edges): the text is the
 * reference text. */
static void test_decimal_floats(void)
{
    EXPECT_REAL(12.75, false, "12.75");
    EXPECT_REAL(-0.0001, false, "-0.0001");
    EXPECT_REAL(0.00012345, false, "0.00012345");
    EXPECT_REAL(9.9e-05, false, "9.9e-05");
    EXPECT_REAL(999999999999999.0, false, "999999999999999.0");
    EXPECT_REAL(1e15, false, "1e+15");
    EXPECT_REAL(100.5, false, "100.5");
    EXPECT_REAL(1234567.0, false, "1234567.0");
    EXPECT_REAL(0.1 + 0.7, false, "0.7999999999999999");

    uint64_t x = 0x243f6a8885a308d3ull;
    int bad = 0;
    for (int i = 0; i < 20000 && bad < 5; i++) {
        char dec[48], want[48];
        uint64_t m = xorshift(&x) % 1000000000000000ull >> (xorshift(&x) % 50);
        int k = (int)(xorshift(&x) % 20);
        snprintf(dec, sizeof dec, "%s%" PRIu64 "e-%d", xorshift(&x) & 1 ? "-" : "", m, k);
        double d = strtod(dec, NULL);
        if (fabs(d) < DBL_MIN)
            continue;
        reference_real(want, d);
        char *got = json_of_double(d, false);
        if (!CHECK(got && strcmp(got, want) == 0)) {
            fprintf(stderr, "  %s: got %s, want %s\n", dec, got ? got : "NULL", want);
            bad++;
        }
        free(got);
    }
}

static void test_floats(void)
{
    EXPECT_REAL(0.1, false, "0.1");
    EXPECT_REAL(1.0, false, "1.0");
    EXPECT_REAL(-2.5, false, "-2.5");
    EXPECT_REAL(0.0, false, "0.0");
    EXPECT_REAL(-0.0, false, "-0.0");
    EXPECT_REAL(1e300, false, "1e+300");
    EXPECT_REAL(1e16, false, "1e+16");
    EXPECT_REAL(123456789012.0, false, "123456789012.0");
    EXPECT_REAL(0.3, false, "0.3");
    EXPECT_REAL(0.1 + 0.2, false, "0.30000000000000004");
    EXPECT_REAL(DBL_MAX, false, "1.7976931348623157e+308");
    EXPECT_REAL(DBL_MIN, false, "2.2250738585072014e-308");
    EXPECT_REAL(4.9406564584124654e-324, false, "5e-324"); /* smallest subnormal */
    EXPECT_REAL(NAN, false, "null");
    EXPECT_REAL(INFINITY, false, "null");
    EXPECT_REAL(-INFINITY, false, "null");

    EXPECT_REAL(0.1, true, "0.1");
    EXPECT_REAL(16777216.0, true, "16777216.0");
    EXPECT_REAL(-0.0, true, "-0.0");
    EXPECT_REAL(FLT_MAX, true, "3.4028235e+38");
    EXPECT_REAL(1.401298464324817e-45, true, "1e-45"); /* smallest float32 subnormal */
    EXPECT_REAL(NAN, true, "null");
    EXPECT_REAL(-INFINITY, true, "null");

    /* A float32 in a jansson tree holds what its text says. */
    json_t *j = NULL;
    char err[128];
    if (CHECK_EQ_INT(sb_codec_to_jansson("\xca\x3d\xcc\xcc\xcd", 5, &j, err, sizeof err), 0)) {
        CHECK(json_is_real(j) && json_real_value(j) == 0.1);
        json_decref(j);
    }

    /* Random bit patterns: the text reads back exactly, with the fewest digits that do (powers of
     * two excepted, see fmt_real). */
    uint64_t x = 0x9e3779b97f4a7c15ull;
    int bad = 0;
    for (int i = 0; i < 20000 && bad < 5; i++) {
        xorshift(&x);
        double d;
        memcpy(&d, &x, 8);
        if (!isfinite(d) || (x & 0xfffffffffffffull) == 0)
            continue;
        char *s = json_of_double(d, false);
        if (!CHECK(s != NULL)) {
            bad++;
            continue;
        }
        char want[48];
        reference_real(want, d);
        bool ok = strtod(s, NULL) == d && significant_digits(s) <= shortest_digits(d) &&
                  (fabs(d) < DBL_MIN || strcmp(s, want) == 0);
        if (!CHECK(ok)) {
            fprintf(stderr, "  %.17g -> %s (shortest %d digits)\n", d, s, shortest_digits(d));
            bad++;
        }
        free(s);
    }
}

/* ---- strings ---------------------------------------------------------------------------------- */

static void test_strings(void)
{
    EXPECT_JSON("\xa0", "\"\"");
    EXPECT_JSON("\xa3"
                "abc",
                "\"abc\"");
    EXPECT_JSON("\xd9\x03"
                "abc",
                "\"abc\"");
    EXPECT_JSON("\xda\x00\x03"
                "abc",
                "\"abc\"");
    EXPECT_JSON("\xdb\x00\x00\x00\x03"
                "abc",
                "\"abc\"");
    /* Quotes, backslash and every control character are escaped; '/' and DEL need not be. */
    EXPECT_JSON("\xab"
                "a\"b\\c\n\t\x01\x1f/\x7f",
                "\"a\\\"b\\\\c\\n\\t\\u0001\\u001f/\x7f\"");
    EXPECT_JSON("\xa2\r\b", "\"\\r\\u0008\"");
    /* Multi-byte UTF-8 passes through. */
    EXPECT_JSON("\xab"
                "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xc2\x80",
                "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xc2\x80\"");

    EXPECT_REJECT("\xa2\xc0\x80", SB_EUTF8);         /* overlong NUL */
    EXPECT_REJECT("\xa3\xe0\x80\xaf", SB_EUTF8);     /* overlong '/' */
    EXPECT_REJECT("\xa4\xf0\x80\x80\xaf", SB_EUTF8); /* overlong '/' */
    EXPECT_REJECT("\xa3\xed\xa0\x80", SB_EUTF8);     /* surrogate U+D800 */
    EXPECT_REJECT("\xa3\xed\xbf\xbf", SB_EUTF8);     /* surrogate U+DFFF */
    EXPECT_REJECT("\xa4\xf4\x90\x80\x80", SB_EUTF8); /* U+110000 */
    EXPECT_REJECT("\xa2\xe2\x82", SB_EUTF8);         /* truncated sequence */
    EXPECT_REJECT("\xa3"
                  "a\xe2"
                  "b",
                  SB_EUTF8); /* lead byte then ASCII */
    EXPECT_REJECT("\xa1\xff", SB_EUTF8);
    EXPECT_REJECT("\xa1\x80", SB_EUTF8); /* lone continuation */
    EXPECT_REJECT("\xa3"
                  "a\0b",
                  SB_EUTF8); /* U+0000: C strings downstream */
    /* U+0000 anywhere in a long string, inside and after the 8-byte ASCII runs. */
    for (size_t at = 0; at < 20; at++) {
        char mp[21] = "\xb4xxxxxxxxxxxxxxxxxxxx";
        mp[1 + at] = '\0';
        sb_buf_t b = SB_BUF_INIT;
        char err[128];
        if (!CHECK_EQ_INT(sb_codec_to_json(mp, sizeof mp, &b, err, sizeof err), SB_EUTF8))
            fprintf(stderr, "  nul at %zu\n", at);
        sb_buf_free(&b);
    }
    /* A bad key is as bad as a bad value. */
    EXPECT_REJECT("\x81\xa1\xff\x01", SB_EUTF8);
    /* Length beyond the input. */
    EXPECT_REJECT("\xa5"
                  "abc",
                  SB_ECODEC);
    EXPECT_REJECT("\xd9", SB_ECODEC);
    EXPECT_REJECT("\xda\x00", SB_ECODEC);
}

static void test_utf8(void)
{
    static const char *valid[] = {
        "",
        "a",
        "\x7f",
        "\xc2\x80",
        "\xdf\xbf",
        "\xe0\xa0\x80",
        "\xed\x9f\xbf",
        "\xee\x80\x80",
        "\xef\xbf\xbf",
        "\xf0\x90\x80\x80",
        "\xf4\x8f\xbf\xbf",
    };
    static const char *invalid[] = {
        "\x80",
        "\xbf",
        "\xc0\x80",
        "\xc1\xbf",
        "\xc2",
        "\xc2\x7f",
        "\xc2\xc0",
        "\xe0\x80\x80",
        "\xe0\x9f\xbf",
        "\xe1\x80",
        "\xed\xa0\x80",
        "\xed\xbf\xbf",
        "\xf0\x80\x80\x80",
        "\xf0\x8f\xbf\xbf",
        "\xf4\x90\x80\x80",
        "\xf5\x80\x80\x80",
        "\xf8\x88\x80\x80\x80",
        "\xfe",
        "\xff",
        "\xe2\x82",
        "\xf0\x9f\x98",
    };
    for (size_t i = 0; i < sizeof valid / sizeof *valid; i++)
        if (!CHECK(sb_utf8_is_valid(valid[i], strlen(valid[i]))))
            fprintf(stderr, "  valid[%zu]\n", i);
    for (size_t i = 0; i < sizeof invalid / sizeof *invalid; i++)
        if (!CHECK(!sb_utf8_is_valid(invalid[i], strlen(invalid[i]))))
            fprintf(stderr, "  invalid[%zu]\n", i);
    /* NUL is valid UTF-8 (only the codec refuses it in strings). */
    CHECK(sb_utf8_is_valid("a\0b", 3));

    /* A bad byte at every offset of a long ASCII run, through the 8-byte fast path and after. */
    char s[40];
    for (size_t at = 0; at < sizeof s; at++) {
        memset(s, 'x', sizeof s);
        CHECK(sb_utf8_is_valid(s, sizeof s));
        s[at] = (char)0xff;
        if (!CHECK(!sb_utf8_is_valid(s, sizeof s)))
            fprintf(stderr, "  bad byte at %zu\n", at);
        /* A sequence cut by the end of the input. */
        memset(s, 'x', sizeof s);
        s[at] = (char)0xe2;
        if (at + 1 < sizeof s)
            s[at + 1] = (char)0x82;
        CHECK(!sb_utf8_is_valid(s, at + 2 <= sizeof s ? at + 2 : sizeof s));
    }
}

static void test_large_string(void)
{
    size_t n = 1 << 20;
    char *mp = malloc(n + 5);
    if (!CHECK(mp != NULL))
        return;
    mp[0] = (char)0xdb;
    mp[1] = (char)(n >> 24);
    mp[2] = (char)(n >> 16);
    mp[3] = (char)(n >> 8);
    mp[4] = (char)n;
    for (size_t i = 0; i < n; i++)
        mp[5 + i] = (char)('a' + i % 26);
    memcpy(mp + 5 + n - 4, "\xf0\x9f\x98\x80", 4); /* ends on a 4-byte sequence */

    sb_buf_t out = SB_BUF_INIT;
    char err[128];
    if (CHECK_EQ_INT(sb_codec_to_json(mp, n + 5, &out, err, sizeof err), 0)) {
        CHECK_EQ_UINT(out.len, n + 2);
        CHECK(out.data[0] == '"' && out.data[n + 1] == '"');
        CHECK(memcmp(out.data + 1, mp + 5, n) == 0);
    }
    json_t *j = NULL;
    if (CHECK_EQ_INT(sb_codec_to_jansson(mp, n + 5, &j, err, sizeof err), 0)) {
        CHECK_EQ_UINT(json_string_length(j), n);
        json_decref(j);
    }
    /* The same string one byte short. */
    CHECK_EQ_INT(sb_codec_to_json(mp, n + 4, &out, err, sizeof err), SB_ECODEC);
    sb_buf_free(&out);
    free(mp);
}

/* ---- bin and ext ------------------------------------------------------------------------------ */

static void test_bin_ext(void)
{
    EXPECT_JSON("\xc4\x00", "\"\"");
    EXPECT_JSON("\xc4\x03"
                "abc",
                "\"YWJj\"");
    EXPECT_JSON("\xc5\x00\x02\xff\x00", "\"/wA=\"");
    EXPECT_JSON("\xc6\x00\x00\x00\x01\xfb", "\"+w==\"");
    EXPECT_JSON("\xd4\x01\x00", "\"AA==\"");                 /* fixext 1 */
    EXPECT_JSON("\xd5\x01\x00\x01", "\"AAE=\"");             /* fixext 2 */
    EXPECT_JSON("\xd6\xff\x00\x00\x00\x01", "\"AAAAAQ==\""); /* fixext 4, timestamp type */
    EXPECT_JSON("\xd7\x01"
                "abcdefgh",
                "\"YWJjZGVmZ2g=\"");
    EXPECT_JSON("\xd8\x01"
                "abcdefghijklmnop",
                "\"YWJjZGVmZ2hpamtsbW5vcA==\"");
    EXPECT_JSON("\xc7\x00\x05", "\"\"");
    EXPECT_JSON("\xc8\x00\x01\x05z", "\"eg==\"");
    EXPECT_JSON("\xc9\x00\x00\x00\x01\x05z", "\"eg==\"");
    /* Binary need not be UTF-8. */
    EXPECT_JSON("\xc4\x02\xff\xfe", "\"//4=\"");

    EXPECT_REJECT("\xc4\x02"
                  "a",
                  SB_ECODEC);
    EXPECT_REJECT("\xd4\x01", SB_ECODEC); /* fixext 1 without data */
    EXPECT_REJECT("\xd4", SB_ECODEC);     /* without type */
    EXPECT_REJECT("\xc7\x01", SB_ECODEC); /* ext 8 without type */
    EXPECT_REJECT("\xd8\x01"
                  "abc",
                  SB_ECODEC);
}

/* ---- containers ------------------------------------------------------------------------------- */

static void test_containers(void)
{
    EXPECT_JSON("\x80", "{}");
    EXPECT_JSON("\x90", "[]");
    EXPECT_JSON("\xde\x00\x00", "{}");
    EXPECT_JSON("\xdf\x00\x00\x00\x00", "{}");
    EXPECT_JSON("\xdc\x00\x00", "[]");
    EXPECT_JSON("\xdd\x00\x00\x00\x00", "[]");
    EXPECT_JSON("\x93\x01\xa1x\xc0", "[1,\"x\",null]");
    EXPECT_JSON("\x82\xa1"
                "a\x91\x80\xa1"
                "b\xc3",
                "{\"a\":[{}],\"b\":true}");
    EXPECT_JSON("\xde\x00\x01\xa1k\xdc\x00\x01\x02", "{\"k\":[2]}");

    /* Integer and boolean keys are written as text. */
    EXPECT_JSON("\x81\x01\xc3", "{\"1\":true}");
    EXPECT_JSON("\x81\xd0\x85\x00", "{\"-123\":0}");
    EXPECT_JSON("\x81\xcf\xff\xff\xff\xff\xff\xff\xff\xff\x00", "{\"18446744073709551615\":0}");
    EXPECT_JSON("\x82\xc3\x01\xc2\x02", "{\"true\":1,\"false\":2}");
    /* Other keys are refused. */
    EXPECT_REJECT("\x81\xc0\x01", SB_ECODEC);                 /* nil */
    EXPECT_REJECT("\x81\xca\x00\x00\x00\x00\x01", SB_ECODEC); /* float32 */
    EXPECT_REJECT("\x81\xcb\x00\x00\x00\x00\x00\x00\x00\x00\x01", SB_ECODEC);
    EXPECT_REJECT("\x81\x90\x01", SB_ECODEC); /* array */
    EXPECT_REJECT("\x81\x80\x01", SB_ECODEC); /* map */
    EXPECT_REJECT("\x81\xc4\x01"
                  "a\x01",
                  SB_ECODEC);                         /* bin */
    EXPECT_REJECT("\x81\xd4\x01\x00\x01", SB_ECODEC); /* ext */

    /* A repeated key stays in the text; the jansson tree keeps the last value, as jansson's own
     * parser does. */
    EXPECT_JSON("\x82\xa1"
                "a\x01\xa1"
                "a\x02",
                "{\"a\":1,\"a\":2}");

    /* Counts beyond the input. */
    EXPECT_REJECT("\x92\x01", SB_ECODEC);
    EXPECT_REJECT("\x81\xa1"
                  "a",
                  SB_ECODEC);
    EXPECT_REJECT("\xdc\x00", SB_ECODEC);
    EXPECT_REJECT("\xdf\x00\x00\x00", SB_ECODEC);
}

/* Huge declared lengths are refused at once, with nothing allocated for them (ASan would report an
 * oversized allocation). */
static void test_huge_lengths(void)
{
    EXPECT_REJECT("\xdb\xff\xff\xff\xff"
                  "abc",
                  SB_ECODEC);
    EXPECT_REJECT("\xc6\xff\xff\xff\xff"
                  "abc",
                  SB_ECODEC);
    EXPECT_REJECT("\xc9\xff\xff\xff\xff\x01"
                  "abc",
                  SB_ECODEC);
    EXPECT_REJECT("\xdd\xff\xff\xff\xff\x01\x02", SB_ECODEC);
    /* Refused at the header that lies, not after reading what follows. */
    char err[128];
    sb_buf_t out = SB_BUF_INIT;
    CHECK_EQ_INT(sb_codec_to_json("\x92\xdd\xff\xff\xff\xff\x01\x02", 8, &out, err, sizeof err), SB_ECODEC);
    CHECK_EQ_STR(err, "truncated at byte 1");
    CHECK_EQ_INT(sb_codec_to_json("\xdf\x00\x00\x00\x02\x01\x02\x03", 8, &out, err, sizeof err), SB_ECODEC);
    CHECK_EQ_STR(err, "truncated at byte 0");
    sb_buf_free(&out);
    EXPECT_REJECT("\xdf\xff\xff\xff\xff\xa1"
                  "a\x01",
                  SB_ECODEC);
    EXPECT_REJECT("\x81\xa1"
                  "a\xdb\xff\xff\xff\xff",
                  SB_ECODEC);
}

static char *nested(int depth, bool maps, size_t *len)
{
    sb_buf_t b = SB_BUF_INIT;
    for (int i = 0; i < depth; i++)
        sb_buf_append(&b, maps ? "\x81\xa1k" : "\x91", maps ? 3 : 1);
    sb_buf_putc(&b, 0x07);
    *len = b.len;
    return sb_buf_steal(&b);
}

static void test_depth(void)
{
    for (int maps = 0; maps <= 1; maps++) {
        size_t len;
        char *at = nested(SB_CODEC_MAX_DEPTH, maps, &len);
        int rc;
        char *s = to_json(at, len, &rc);
        if (CHECK_EQ_INT(rc, 0)) {
            CHECK(jansson_agrees(at, len, s));
            CHECK(maps == 0 || sb_codec_is_valid_map(at, len));

            /* The same tree back through jansson encodes to the same bytes. */
            json_t *j = NULL;
            char err[128];
            sb_buf_t re = SB_BUF_INIT;
            if (CHECK_EQ_INT(sb_codec_to_jansson(at, len, &j, err, sizeof err), 0)) {
                CHECK_EQ_INT(sb_codec_from_jansson(j, &re), 0);
                CHECK_EQ_MEM(re.data, re.len, at, len);
                json_decref(j);
            }
            sb_buf_free(&re);
        }
        free(s);
        free(at);

        char *past = nested(SB_CODEC_MAX_DEPTH + 1, maps, &len);
        EXPECT_REJECT_LEN(past, len, SB_ECODEC);
        free(past);

        /* Far past the limit: refused before the recursion gets anywhere. */
        char *deep = nested(100000, maps, &len);
        EXPECT_REJECT_LEN(deep, len, SB_ECODEC);
        free(deep);
    }

    /* The same limit when encoding. */
    json_t *root = json_array(), *inner = root;
    for (int i = 1; i < SB_CODEC_MAX_DEPTH; i++) {
        json_t *a = json_array();
        json_array_append_new(inner, a);
        inner = a;
    }
    sb_buf_t out = SB_BUF_INIT;
    CHECK_EQ_INT(sb_codec_from_jansson(root, &out), 0);
    json_array_append_new(inner, json_object());
    sb_buf_reset(&out);
    CHECK_EQ_INT(sb_codec_from_jansson(root, &out), SB_ECODEC);
    CHECK_EQ_UINT(out.len, 0);
    json_decref(root);
    sb_buf_free(&out);

    /* And from JSON text. */
    sb_buf_t text = SB_BUF_INIT;
    char err[128];
    sb_buf_puts(&text, "{\"a\":");
    for (int i = 1; i < SB_CODEC_MAX_DEPTH; i++)
        sb_buf_putc(&text, '[');
    for (int i = 1; i < SB_CODEC_MAX_DEPTH; i++)
        sb_buf_putc(&text, ']');
    sb_buf_putc(&text, '}');
    CHECK_EQ_INT(sb_codec_from_json_text(text.data, text.len, &out, err, sizeof err), 0);
    sb_buf_reset(&text);
    sb_buf_puts(&text, "{\"a\":");
    for (int i = 0; i < SB_CODEC_MAX_DEPTH; i++)
        sb_buf_putc(&text, '[');
    for (int i = 0; i < SB_CODEC_MAX_DEPTH; i++)
        sb_buf_putc(&text, ']');
    sb_buf_putc(&text, '}');
    sb_buf_reset(&out);
    CHECK_EQ_INT(sb_codec_from_json_text(text.data, text.len, &out, err, sizeof err), SB_ECODEC);
    CHECK(strstr(err, "deep") != NULL);
    sb_buf_free(&text);
    sb_buf_free(&out);
}

/* ---- whole inputs ----------------------------------------------------------------------------- */

/* A map using every type. */
static void sample(sb_buf_t *mp)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, mp, sbuf_write);
    msgpack_pack_map(&pk, 12);
    msgpack_pack_str_with_body(&pk, "nil", 3);
    msgpack_pack_nil(&pk);
    msgpack_pack_str_with_body(&pk, "t", 1);
    msgpack_pack_true(&pk);
    msgpack_pack_str_with_body(&pk, "u64", 3);
    msgpack_pack_uint64(&pk, UINT64_MAX);
    msgpack_pack_str_with_body(&pk, "i64", 3);
    msgpack_pack_int64(&pk, INT64_MIN);
    msgpack_pack_str_with_body(&pk, "f32", 3);
    msgpack_pack_float(&pk, 1.5f);
    msgpack_pack_str_with_body(&pk, "f64", 3);
    msgpack_pack_double(&pk, -0.25);
    msgpack_pack_str_with_body(&pk, "s", 1);
    msgpack_pack_str_with_body(&pk, "h\xc3\xa9", 3);
    msgpack_pack_str_with_body(&pk, "bin", 3);
    msgpack_pack_bin_with_body(&pk, "\x01\x02", 2);
    msgpack_pack_str_with_body(&pk, "ext", 3);
    msgpack_pack_ext_with_body(&pk, "abc", 3, 7);
    msgpack_pack_str_with_body(&pk, "arr", 3);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_int(&pk, -300);
    msgpack_pack_map(&pk, 0);
    msgpack_pack_int(&pk, 42);
    msgpack_pack_str_with_body(&pk, "int key", 7);
    msgpack_pack_false(&pk);
    msgpack_pack_int(&pk, 1);
}

static void test_sample(void)
{
    /* As it comes, and sorted as jsonb sorts keys (sb_codec_to_json_sorted). */
    static const char *const want[2] = {
        "{\"nil\":null,\"t\":true,\"u64\":18446744073709551615,\"i64\":-9223372036854775808,"
        "\"f32\":1.5,\"f64\":-0.25,\"s\":\"h\xc3\xa9\",\"bin\":\"AQI=\",\"ext\":\"YWJj\","
        "\"arr\":[-300,{}],\"42\":\"int key\",\"false\":1}",
        "{\"s\":\"h\xc3\xa9\",\"t\":true,\"42\":\"int key\",\"arr\":[-300,{}],\"bin\":\"AQI=\","
        "\"ext\":\"YWJj\",\"f32\":1.5,\"f64\":-0.25,\"i64\":-9223372036854775808,"
        "\"nil\":null,\"u64\":18446744073709551615,\"false\":1}"};
    sb_buf_t mp = SB_BUF_INIT;
    sample(&mp);
    for (int sorted = 0; sorted <= 1; sorted++) {
        int rc;
        char *s = to_json_as(mp.data, mp.len, sorted, &rc);
        CHECK_EQ_INT(rc, 0);
        CHECK_EQ_STR(s, want[sorted]);
        CHECK(s && jansson_agrees(mp.data, mp.len, s));
        free(s);
    }
    CHECK(sb_codec_is_valid_map(mp.data, mp.len));

    /* Every strict prefix is truncated. */
    for (size_t n = 0; n < mp.len; n++) {
        sb_buf_t out = SB_BUF_INIT;
        json_t *j = NULL;
        char err[128];
        if (!CHECK_EQ_INT(sb_codec_to_json(mp.data, n, &out, err, sizeof err), SB_ECODEC))
            fprintf(stderr, "  prefix of %zu bytes\n", n);
        CHECK(strstr(err, "truncated") != NULL);
        CHECK_EQ_INT(sb_codec_to_jansson(mp.data, n, &j, err, sizeof err), SB_ECODEC);
        CHECK(!sb_codec_is_valid_map(mp.data, n));
        sb_buf_free(&out);
    }

    /* Trailing bytes. */
    sb_buf_t more = SB_BUF_INIT;
    sb_buf_append(&more, mp.data, mp.len);
    sb_buf_putc(&more, 0);
    EXPECT_REJECT_LEN(more.data, more.len, SB_ECODEC);
    EXPECT_REJECT("\xc0\xc0", SB_ECODEC);
    EXPECT_REJECT("\x80\x80", SB_ECODEC);
    char err[128];
    sb_buf_t out = SB_BUF_INIT;
    sb_codec_to_json(more.data, more.len, &out, err, sizeof err);
    CHECK(strstr(err, "trailing") != NULL);

    /* A failure leaves what the buffer held before. */
    sb_buf_reset(&out);
    sb_buf_puts(&out, "kept");
    CHECK_EQ_INT(sb_codec_to_json(mp.data, mp.len - 1, &out, err, sizeof err), SB_ECODEC);
    CHECK_EQ_STR(out.data, "kept");
    CHECK_EQ_INT(sb_codec_to_json("\xc3", 1, &out, err, sizeof err), 0);
    CHECK_EQ_STR(out.data, "kepttrue");

    sb_buf_free(&out);
    sb_buf_free(&more);
    sb_buf_free(&mp);
}

/* sb_codec_to_json_sorted: the same values, every map's keys in jsonb's order (shorter first, then
 * bytewise on the raw key, escapes aside), a repeated key after the earlier one, nested maps
 * sorted too; the same refusals. */
static void test_sorted_keys(void)
{
    EXPECT_SORTED("\x80", "{}");
    EXPECT_SORTED("\x81\xa1z\x01", "{\"z\":1}");
    EXPECT_SORTED("\x83\xa2"
                  "bb\x01\xa1"
                  "c\x02\xa2"
                  "ab\x03",
                  "{\"c\":2,\"ab\":3,\"bb\":1}");
    /* Nested maps (in arrays too) are sorted; arrays keep their order; integer and boolean keys
     * sort by their text. */
    EXPECT_SORTED("\x83\xa2zz\x92\x82\xa1y\x01\xa1x\x02\x03\xa1m\x82\xa3"
                  "abc\xc0\xa2"
                  "ab\xc3\x0a\xc2",
                  "{\"m\":{\"ab\":true,\"abc\":null},\"10\":false,\"zz\":[{\"x\":2,\"y\":1},3]}");
    EXPECT_SORTED("\x82\xc3\x01\xc2\x02", "{\"true\":1,\"false\":2}");
    /* By the raw key: "a\"" (2 bytes, written with an escape) comes before "aa". */
    EXPECT_SORTED("\x82\xa2"
                  "aa\x01\xa2"
                  "a\"\x02",
                  "{\"a\\\"\":2,\"aa\":1}");
    /* A repeated key stays after the earlier one, so the last value still wins when read. */
    EXPECT_SORTED("\x83\xa1"
                  "b\x01\xa2"
                  "aa\x02\xa1"
                  "b\x03",
                  "{\"b\":1,\"b\":3,\"aa\":2}");

    /* (The sample sorted: test_sample.)  Every strict prefix of it is refused, and a failure leaves
     * the buffer as it was. */
    sb_buf_t mp = SB_BUF_INIT;
    sample(&mp);
    int rc;
    char *s;
    sb_buf_t out = SB_BUF_INIT;
    char err[128];
    for (size_t n = 0; n < mp.len; n++) {
        sb_buf_reset(&out);
        sb_buf_puts(&out, "kept");
        CHECK_EQ_INT(sb_codec_to_json_sorted(mp.data, n, &out, err, sizeof err), SB_ECODEC);
        CHECK_EQ_STR(out.data, "kept");
    }
    CHECK_EQ_INT(sb_codec_to_json_sorted("\x81\x80\x01", 3, &out, err, sizeof err), SB_ECODEC);
    sb_buf_free(&out);
    sb_buf_free(&mp);

    /* More entries than the reader keeps without allocating: 40 keys in reverse, the last one's
     * value a map of 40 more. */
    sb_buf_t big = SB_BUF_INIT, bigwant = SB_BUF_INIT;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &big, sbuf_write);
    msgpack_pack_map(&pk, 40);
    for (int i = 39; i >= 0; i--) {
        char k[8];
        int n = snprintf(k, sizeof k, "k%02d", i);
        msgpack_pack_str_with_body(&pk, k, (size_t)n);
        if (i > 0) {
            msgpack_pack_int(&pk, i);
            continue;
        }
        msgpack_pack_map(&pk, 40);
        for (int j = 39; j >= 0; j--) {
            n = snprintf(k, sizeof k, "n%02d", j);
            msgpack_pack_str_with_body(&pk, k, (size_t)n);
            msgpack_pack_int(&pk, j);
        }
    }
    sb_buf_puts(&bigwant, "{\"k00\":{");
    for (int j = 0; j < 40; j++)
        sb_buf_printf(&bigwant, "%s\"n%02d\":%d", j ? "," : "", j, j);
    sb_buf_putc(&bigwant, '}');
    for (int i = 1; i < 40; i++)
        sb_buf_printf(&bigwant, ",\"k%02d\":%d", i, i);
    sb_buf_putc(&bigwant, '}');
    s = to_json_sorted(big.data, big.len, &rc);
    if (CHECK_EQ_INT(rc, 0))
        CHECK_EQ_STR(s, bigwant.data);
    free(s);
    sb_buf_free(&big);
    sb_buf_free(&bigwant);

    /* The deepest nesting allowed, a map of two keys to sort at every level (so every level's
     * entries wait under the next ones'), and one more level refused. */
    sb_buf_t deep = SB_BUF_INIT, want = SB_BUF_INIT;
    for (int i = 0; i < SB_CODEC_MAX_DEPTH; i++) {
        sb_buf_append(&deep, "\x82\xa1z\x01\xa1k", 6);
        sb_buf_puts(&want, "{\"k\":");
    }
    sb_buf_putc(&deep, 0x07);
    sb_buf_putc(&want, '7');
    for (int i = 0; i < SB_CODEC_MAX_DEPTH; i++)
        sb_buf_puts(&want, ",\"z\":1}");
    s = to_json_sorted(deep.data, deep.len, &rc);
    if (CHECK_EQ_INT(rc, 0))
        CHECK_EQ_STR(s, want.data);
    free(s);
    sb_buf_free(&deep);
    sb_buf_free(&want);
    size_t len;
    char *at = nested(SB_CODEC_MAX_DEPTH + 1, 1, &len);
    s = to_json_sorted(at, len, &rc);
    CHECK_EQ_INT(rc, SB_ECODEC);
    free(s);
    free(at);
}

static void test_is_valid_map(void)
{
    CHECK(sb_codec_is_valid_map("\x80", 1));
    CHECK(sb_codec_is_valid_map("\x81\xa1"
                                "a\x90",
                                4));
    CHECK(!sb_codec_is_valid_map("", 0));
    CHECK(!sb_codec_is_valid_map("\x90", 1));
    CHECK(!sb_codec_is_valid_map("\xc0", 1));
    CHECK(!sb_codec_is_valid_map("\xa1"
                                 "a",
                                 2));
    CHECK(!sb_codec_is_valid_map("\x81\xa1"
                                 "a\xa1\xff",
                                 5));
    CHECK(!sb_codec_is_valid_map("\x81\xc0\x01", 3));
}

int main(void)
{
    SBTEST_RUN(test_scalars);
    SBTEST_RUN(test_integer_widths);
    SBTEST_RUN(test_floats);
    SBTEST_RUN(test_decimal_floats);
    SBTEST_RUN(test_strings);
    SBTEST_RUN(test_utf8);
    SBTEST_RUN(test_large_string);
    SBTEST_RUN(test_bin_ext);
    SBTEST_RUN(test_containers);
    SBTEST_RUN(test_huge_lengths);
    SBTEST_RUN(test_depth);
    SBTEST_RUN(test_sample);
    SBTEST_RUN(test_sorted_keys);
    SBTEST_RUN(test_is_valid_map);
    return sbtest_summary();
}
