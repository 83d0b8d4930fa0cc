/* Payloads cut down to declared keys (src/projections/payload.c): the runner's own JSON, members
 * kept in order, values of every kind skipped whole, anything it cannot walk left to the caller. */
#include "projections/pj_int.h"
#include "sbtest.h"

#include <string.h>

static bool keep_ab(const char *key, size_t n, void *data)
{
    (void)data;
    return (n == 1 && (key[0] == 'a' || key[0] == 'b')) || (n == 4 && memcmp(key, "keep", 4) == 0);
}

/* The result of keeping a, b and keep of json, or "FAIL". */
static void expect(const char *json, const char *want)
{
    sb_buf_t out = SB_BUF_INIT;
    sb_buf_puts(&out, "<");
    bool ok = sb__pj_json_keep(json, strlen(json), keep_ab, NULL, &out);
    sb_buf_putc(&out, '\0');
    const char *got = ok ? out.data + 1 : "FAIL";
    if (ok)
        CHECK(out.data[0] == '<'); /* appended after what was there */
    if (!CHECK_EQ_STR(got, want))
        fprintf(stderr, "  for %s\n", json);
    if (!ok)
        CHECK_EQ_STR(out.data, "<"); /* left as it was */
    sb_buf_free(&out);
}

static void test_keep(void)
{
    expect("{}", "{}");
    expect("{\"a\":1}", "{\"a\":1}");
    expect("{\"x\":1}", "{}");
    expect("{\"a\":1,\"x\":2,\"b\":3}", "{\"a\":1,\"b\":3}");
    expect("{\"x\":2,\"b\":\"y\"}", "{\"b\":\"y\"}");
    /* Values of every kind, skipped or kept whole, nested brackets and quotes inside strings. */
    expect("{\"a\":null,\"x\":{\"a\":[1,{\"b\":\"}]\"}],\"q\":\"\\\"}\"},\"b\":true,\"keep\":[[],{}],"
           "\"y\":-1.5e3,\"z\":\"a\\\\\"}",
           "{\"a\":null,\"b\":true,\"keep\":[[],{}]}");
    /* Spaces as jsonb's text has them. */
    expect("{ \"a\" : 1 , \"x\" : [ 1, 2 ] , \"b\" : \"y\" }", "{\"a\" : 1,\"b\" : \"y\"}");
    /* A key written with escapes is not a plain key. */
    expect("{\"\\u0061\":1,\"a\":2}", "{\"a\":2}");
    /* Repeated keys stay, in order (jsonb keeps the last). */
    expect("{\"a\":1,\"a\":2}", "{\"a\":1,\"a\":2}");
    /* Not an object, or cut short: the caller sends it whole. */
    expect("[1]", "FAIL");
    expect("\"a\"", "FAIL");
    expect("", "FAIL");
    expect("{\"a\":1", "FAIL");
    expect("{\"a\":\"1}", "FAIL");
    expect("{\"a\" 1}", "FAIL");
    expect("{\"a\":[1,2}", "FAIL");
    expect("{\"a\":1,}", "FAIL");
}

int main(void)
{
    SBTEST_RUN(test_keep);
    return sbtest_summary();
}
