/* The event codec, encoding: jansson -> msgpack (the smallest encoding of each value), JSON text
 * -> msgpack and back, and base64.  test_codec.c has decoding. */
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

/* ---- encoding --------------------------------------------------------------------------------- */

static void expect_packed(json_t *j, const char *expected, size_t len, int line)
{
    sb_buf_t out = SB_BUF_INIT;
    int rc = sb_codec_from_jansson(j, &out);
    if (sbtest_check_int(rc, 0, "sb_codec_from_jansson", "0", __FILE__, line))
        sbtest_check_mem(out.data, out.len, expected, len, "packed", "expected", __FILE__, line);
    sb_buf_free(&out);
    json_decref(j);
}
#define EXPECT_PACKED(j, bytes) expect_packed(j, bytes, sizeof(bytes) - 1, __LINE__)

static void test_from_jansson(void)
{
    EXPECT_PACKED(json_null(), "\xc0");
    EXPECT_PACKED(json_true(), "\xc3");
    EXPECT_PACKED(json_false(), "\xc2");
    /* The smallest encoding at each boundary. */
    EXPECT_PACKED(json_integer(0), "\x00");
    EXPECT_PACKED(json_integer(127), "\x7f");
    EXPECT_PACKED(json_integer(128), "\xcc\x80");
    EXPECT_PACKED(json_integer(255), "\xcc\xff");
    EXPECT_PACKED(json_integer(256), "\xcd\x01\x00");
    EXPECT_PACKED(json_integer(65535), "\xcd\xff\xff");
    EXPECT_PACKED(json_integer(65536), "\xce\x00\x01\x00\x00");
    EXPECT_PACKED(json_integer(4294967295), "\xce\xff\xff\xff\xff");
    EXPECT_PACKED(json_integer(4294967296), "\xcf\x00\x00\x00\x01\x00\x00\x00\x00");
    EXPECT_PACKED(json_integer(INT64_MAX), "\xcf\x7f\xff\xff\xff\xff\xff\xff\xff");
    EXPECT_PACKED(json_integer(-1), "\xff");
    EXPECT_PACKED(json_integer(-32), "\xe0");
    EXPECT_PACKED(json_integer(-33), "\xd0\xdf");
    EXPECT_PACKED(json_integer(-128), "\xd0\x80");
    EXPECT_PACKED(json_integer(-129), "\xd1\xff\x7f");
    EXPECT_PACKED(json_integer(-32768), "\xd1\x80\x00");
    EXPECT_PACKED(json_integer(-32769), "\xd2\xff\xff\x7f\xff");
    EXPECT_PACKED(json_integer(-2147483648LL), "\xd2\x80\x00\x00\x00");
    EXPECT_PACKED(json_integer(-2147483649LL), "\xd3\xff\xff\xff\xff\x7f\xff\xff\xff");
    EXPECT_PACKED(json_integer(INT64_MIN), "\xd3\x80\x00\x00\x00\x00\x00\x00\x00");
    EXPECT_PACKED(json_real(1.5), "\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00");
    EXPECT_PACKED(json_real(1.0), "\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00");
    EXPECT_PACKED(json_string(""), "\xa0");
    EXPECT_PACKED(json_string("h\xc3\xa9"), "\xa3h\xc3\xa9");
    EXPECT_PACKED(json_pack("[i,s,{}]", 1, "x"), "\x93\x01\xa1x\x80");
    EXPECT_PACKED(json_pack("{s:i,s:[]}", "a", 1, "b"), "\x82\xa1"
                                                        "a\x01\xa1"
                                                        "b\x90");

    /* A 40-byte string takes str8. */
    char s40[41];
    memset(s40, 'z', 40);
    s40[40] = '\0';
    sb_buf_t out = SB_BUF_INIT;
    json_t *j = json_string(s40);
    CHECK_EQ_INT(sb_codec_from_jansson(j, &out), 0);
    CHECK(out.len == 42 && (unsigned char)out.data[0] == 0xd9 && out.data[1] == 40);
    json_decref(j);

    /* Strings the decoder would refuse are refused here too, leaving out as it was. */
    sb_buf_reset(&out);
    sb_buf_puts(&out, "kept");
    j = json_stringn("a\0b", 3);
    CHECK_EQ_INT(sb_codec_from_jansson(j, &out), SB_EUTF8);
    CHECK_EQ_STR(out.data, "kept");
    json_decref(j);
    j = json_pack("{s:s#}", "k", "a\0b", 3);
    CHECK_EQ_INT(sb_codec_from_jansson(j, &out), SB_EUTF8);
    json_decref(j);
    j = json_stringn_nocheck("\xff", 1);
    CHECK_EQ_INT(sb_codec_from_jansson(j, &out), SB_EUTF8);
    json_decref(j);
    j = json_object();
    json_object_setn_new_nocheck(j, "\xc0\x80", 2, json_null());
    CHECK_EQ_INT(sb_codec_from_jansson(j, &out), SB_EUTF8);
    json_decref(j);
    CHECK_EQ_STR(out.data, "kept");
    sb_buf_free(&out);
}

static void test_json_text(void)
{
    /* Text -> msgpack -> text is the identity for text written the codec's way. */
    static const char *texts[] = {
        "{}",
        "{\"a\":1,\"b\":[true,false,null],\"c\":\"x\\\"y\\\\z\\n\\u0001\"}",
        "{\"n\":-9223372036854775808,\"m\":9223372036854775807,\"r\":1.5,\"z\":-0.0,\"one\":1.0}",
        "{\"u\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\",\"e\":{\"f\":{\"g\":[[],{}]}}}",
        "{\"small\":1e-07,\"big\":1.7976931348623157e+308,\"third\":0.3333333333333333}",
    };
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        sb_buf_t mp = SB_BUF_INIT, back = SB_BUF_INIT;
        char err[128];
        if (CHECK_EQ_INT(sb_codec_from_json_text(texts[i], strlen(texts[i]), &mp, err, sizeof err), 0)) {
            CHECK(sb_codec_is_valid_map(mp.data, mp.len));
            CHECK_EQ_INT(sb_codec_to_json(mp.data, mp.len, &back, err, sizeof err), 0);
            CHECK_EQ_STR(back.data, texts[i]);
        }
        sb_buf_free(&mp);
        sb_buf_free(&back);
    }

    /* Escapes in the text become bytes; the text written back uses the codec's escapes. */
    sb_buf_t mp = SB_BUF_INIT, back = SB_BUF_INIT;
    char err[128];
    const char *in = " { \"k\" : \"\\u00e9\\/\\b\" } ";
    CHECK_EQ_INT(sb_codec_from_json_text(in, strlen(in), &mp, err, sizeof err), 0);
    CHECK_EQ_MEM(mp.data, mp.len, "\x81\xa1k\xa4\xc3\xa9/\b", 8);
    CHECK_EQ_INT(sb_codec_to_json(mp.data, mp.len, &back, err, sizeof err), 0);
    CHECK_EQ_STR(back.data, "{\"k\":\"\xc3\xa9/\\u0008\"}");
    sb_buf_free(&mp);
    sb_buf_free(&back);

    struct {
        const char *text;
        int code;
    } bad[] = {
        {"", SB_ECODEC},
        {"{", SB_ECODEC},
        {"{\"a\":}", SB_ECODEC},
        {"[1,2]", SB_ECODEC},
        {"\"s\"", SB_ECODEC},
        {"1", SB_ECODEC},
        {"{} {}", SB_ECODEC},
        {"{\"a\":NaN}", SB_ECODEC},
        {"{\"a\":\"\\u0000\"}", SB_ECODEC},
        {"{\"a\":\"\xff\"}", SB_EUTF8},
        {"{\"a\":\"\xed\xa0\x80\"}", SB_EUTF8},
        {"{\"\xc0\x80\":1}", SB_EUTF8},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        sb_buf_t out = SB_BUF_INIT;
        err[0] = '\0';
        if (!CHECK_EQ_INT(sb_codec_from_json_text(bad[i].text, strlen(bad[i].text), &out, err, sizeof err),
                          bad[i].code))
            fprintf(stderr, "  for %s\n", bad[i].text);
        CHECK(err[0] != '\0');
        CHECK_EQ_UINT(out.len, 0);
        sb_buf_free(&out);
    }
    /* The length bounds the text: no NUL terminator is needed or read. */
    CHECK_EQ_INT(sb_codec_from_json_text("{}garbage", 2, &mp, err, sizeof err), 0);
    CHECK_EQ_MEM(mp.data, mp.len, "\x80", 1);
    sb_buf_free(&mp);
}

/* ---- base64 ----------------------------------------------------------------------------------- */

static void test_base64(void)
{
    /* RFC 4648 §10. */
    static const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *coded[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (size_t i = 0; i < 7; i++) {
        sb_buf_t b = SB_BUF_INIT;
        sb_base64_encode(plain[i], strlen(plain[i]), &b);
        CHECK_EQ_STR(b.len ? b.data : "", coded[i]);
        sb_buf_reset(&b);
        CHECK_EQ_INT(sb_base64_decode(coded[i], strlen(coded[i]), &b), 0);
        CHECK_EQ_MEM(b.data, b.len, plain[i], strlen(plain[i]));
        /* Padding is optional. */
        sb_buf_reset(&b);
        size_t n = strlen(coded[i]);
        while (n && coded[i][n - 1] == '=')
            n--;
        CHECK_EQ_INT(sb_base64_decode(coded[i], n, &b), 0);
        CHECK_EQ_MEM(b.data, b.len, plain[i], strlen(plain[i]));
        sb_buf_free(&b);
    }

    static const char *invalid[] = {
        "Z",    "Zg=",  "Zg=a", "Zm9vZ", "Zh==",     "Zm9=", "Zm9v\n",    "Zm 9",
        "Zm-_", "====", "=",    "Zg===", "Zg==Zg==", "Zm=v", "Zm9vYmFy=", "\xffZm9",
    };
    for (size_t i = 0; i < sizeof invalid / sizeof *invalid; i++) {
        sb_buf_t b = SB_BUF_INIT;
        if (!CHECK_EQ_INT(sb_base64_decode(invalid[i], strlen(invalid[i]), &b), SB_EINVAL))
            fprintf(stderr, "  for \"%s\"\n", invalid[i]);
        sb_buf_free(&b);
    }

    /* Every byte value, every length up to 300, appended after what the buffer held. */
    unsigned char raw[300];
    for (size_t i = 0; i < sizeof raw; i++)
        raw[i] = (unsigned char)(i * 167 + 13);
    for (size_t n = 0; n <= sizeof raw; n++) {
        sb_buf_t enc = SB_BUF_INIT, dec = SB_BUF_INIT;
        sb_base64_encode(raw, n, &enc);
        CHECK_EQ_UINT(enc.len, (n + 2) / 3 * 4);
        sb_buf_puts(&dec, "pre");
        CHECK_EQ_INT(sb_base64_decode(enc.data, enc.len, &dec), 0);
        CHECK(dec.len == n + 3 && memcmp(dec.data, "pre", 3) == 0 && memcmp(dec.data + 3, raw, n) == 0);
        sb_buf_free(&enc);
        sb_buf_free(&dec);
    }
}

int main(void)
{
    SBTEST_RUN(test_from_jansson);
    SBTEST_RUN(test_json_text);
    SBTEST_RUN(test_base64);
    return sbtest_summary();
}
