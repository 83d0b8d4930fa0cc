/* JSON string quoting (sb_buf_put_json_string, src/core/buf.c), which steps over runs of bytes that
 * need no escape a word at a time: checked against the byte-at-a-time rule it replaced, on every
 * byte value at every offset of a word and on random strings rich in the bytes the word test looks
 * for (the control characters, '"', '\\', bytes above 0x7f and their neighbours). */
#include "core/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sbtest.h"

/* The quoting rule, one byte at a time, as the function wrote it before the word test. */
static void reference(sb_buf_t *b, const char *s, size_t n)
{
    sb_buf_putc(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"')
            sb_buf_puts(b, "\\\"");
        else if (c == '\\')
            sb_buf_puts(b, "\\\\");
        else if (c == '\n')
            sb_buf_puts(b, "\\n");
        else if (c == '\r')
            sb_buf_puts(b, "\\r");
        else if (c == '\t')
            sb_buf_puts(b, "\\t");
        else if (c < 0x20)
            sb_buf_printf(b, "\\u%04x", c);
        else
            sb_buf_putc(b, (char)c);
    }
    sb_buf_putc(b, '"');
}

static bool same(const char *s, size_t n)
{
    sb_buf_t want = SB_BUF_INIT, got = SB_BUF_INIT;
    reference(&want, s, n);
    sb_buf_puts(&got, "x"); /* not at the buffer's start */
    sb_buf_put_json_string(&got, s, n);
    bool ok = CHECK_EQ_MEM(got.data + 1, got.len - 1, want.data, want.len);
    sb_buf_free(&want);
    sb_buf_free(&got);
    return ok;
}

/* Each byte value alone in a run of plain text, at each offset around a word or two. */
static void test_every_byte_everywhere(void)
{
    char s[24];
    for (int c = 0; c < 256; c++) {
        for (size_t at = 0; at < sizeof s; at++) {
            memset(s, 'a', sizeof s);
            s[at] = (char)c;
            for (size_t n = at + 1; n <= sizeof s; n += 7)
                if (!same(s, n))
                    return;
        }
    }
}

static void test_random(void)
{
    /* The bytes the word test separates, and their neighbours. */
    static const unsigned char pool[] = {0x00, 0x01, 0x08, 0x09, 0x0a, 0x0d, 0x1f, 0x20, 0x21, 0x22,
                                         0x23, 0x5b, 0x5c, 0x5d, 0x7e, 0x7f, 0x80, 0x9f, 0xa0, 0xa2,
                                         0xdc, 0xff, 'a',  'b',  'z',  '0',  ' ',  'A',  '{'};
    srand(7);
    char s[80];
    for (int round = 0; round < 200000; round++) {
        size_t n = (size_t)(rand() % (int)sizeof s);
        int plain = rand() % 4; /* mostly plain text in some rounds, mostly special in others */
        for (size_t i = 0; i < n; i++)
            s[i] = rand() % 4 < plain ? (char)('a' + rand() % 26) : (char)pool[(size_t)rand() % sizeof pool];
        if (!same(s, n))
            return;
    }
}

static void test_examples(void)
{
    sb_buf_t b = SB_BUF_INIT;
    const char *text = "Hello \"world\"\\ and a long enough tail\n\x01";
    sb_buf_put_json_string(&b, text, strlen(text));
    CHECK_EQ_STR(b.data, "\"Hello \\\"world\\\"\\\\ and a long enough tail\\n\\u0001\"");
    sb_buf_reset(&b);
    sb_buf_put_json_string(&b, "", 0);
    CHECK_EQ_STR(b.data, "\"\"");
    sb_buf_free(&b);
}

int main(void)
{
    SBTEST_RUN(test_examples);
    SBTEST_RUN(test_every_byte_everywhere);
    SBTEST_RUN(test_random);
    return sbtest_summary();
}
