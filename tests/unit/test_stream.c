/* Stream names: "<category>-<uuid>". */
#include "core/error.h"
#include "events/stream.h"
#include "sbtest.h"

#include <stdio.h>
#include <string.h>

#define UUID "0190a7c4-1b2c-7d3e-8f4a-5b6c7d8e9f00"

static int parse(const char *s, sb_stream_name_t *out)
{
    return sb_stream_parse(s, strlen(s), out);
}

static void test_parse_valid(void)
{
    sb_stream_name_t n;
    if (CHECK_EQ_INT(parse("contact-" UUID, &n), 0)) {
        CHECK_EQ_STR(n.category, "contact");
        static const unsigned char want[16] = {0x01, 0x90, 0xa7, 0xc4, 0x1b, 0x2c, 0x7d, 0x3e,
                                               0x8f, 0x4a, 0x5b, 0x6c, 0x7d, 0x8e, 0x9f, 0x00};
        CHECK_EQ_MEM(n.id.b, 16, want, 16);
    }

    static const char *ok[] = {
        "a-" UUID,
        "workspace-" UUID,
        "call_log2-" UUID,
        "z0_-" UUID,
        "abcdefghijklmnopqrstuvwxyz01234-" UUID, /* 31 characters */
        "user-00000000-0000-0000-0000-000000000000",
        "user-ffffffff-ffff-ffff-ffff-ffffffffffff",
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        if (!CHECK_EQ_INT(parse(ok[i], &n), 0)) {
            fprintf(stderr, "  for %s\n", ok[i]);
            continue;
        }
        /* Formatting gives the same name back. */
        char out[SB_STREAM_NAME_MAX];
        size_t len = sb_stream_format(n.category, &n.id, out);
        CHECK_EQ_UINT(len, strlen(ok[i]));
        CHECK_EQ_STR(out, ok[i]);
    }
}

static void test_parse_invalid(void)
{
    static const char *bad[] = {
        "",
        "contact",
        "contact-",
        "-" UUID,        /* empty category */
        "contact" UUID,  /* missing dash */
        "contact_" UUID, /* wrong separator */
        "contact-"
        "0190A7C4-1b2c-7d3e-8f4a-5b6c7d8e9f00", /* upper-case hex */
        "contact-"
        "0190a7c4-1b2c-7d3e-8f4a-5b6c7d8e9F00",
        "contact-"
        "0190a7c4-1b2c-7d3e-8f4a-5b6c7d8e9f0", /* uuid one short */
        "contact-"
        "0190a7c4-1b2c-7d3e-8f4a-5b6c7d8e9f000", /* one long: "contact-0" category */
        "contact-"
        "0190a7c41b2c7d3e8f4a5b6c7d8e9f00", /* no dashes */
        "contact-"
        "0190a7c4-1b2c-7d3e-8f4a5-b6c7d8e9f00", /* dash misplaced */
        "contact-"
        "0190a7c4-1b2c-7d3e-8f4a-5b6c7d8e9g00", /* not hex */
        "contact-"
        "{190a7c4-1b2c-7d3e-8f4a-5b6c7d8e9f0}",
        "Contact-" UUID,  /* upper-case category */
        "1contact-" UUID, /* starts with a digit */
        "_contact-" UUID, /* starts with an underscore */
        "con-tact-" UUID, /* dash in the category */
        "con.tact-" UUID,
        "con tact-" UUID,
        "caf\xc3\xa9-" UUID,
        "abcdefghijklmnopqrstuvwxyz012345-" UUID, /* 32 characters */
        " contact-" UUID,
        "contact-" UUID " ",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        sb_stream_name_t n;
        if (!CHECK_EQ_INT(parse(bad[i], &n), SB_EINVAL))
            fprintf(stderr, "  for \"%s\"\n", bad[i]);
    }

    /* The length is what counts, not a terminator: an embedded NUL is just a bad character. */
    sb_stream_name_t n;
    const char with_nul[] = "con\0act-" UUID;
    CHECK_EQ_INT(sb_stream_parse(with_nul, sizeof with_nul - 1, &n), SB_EINVAL);
    const char *longer = "contact-" UUID "trailing";
    CHECK_EQ_INT(sb_stream_parse(longer, strlen("contact-" UUID), &n), 0);
    CHECK_EQ_STR(n.category, "contact");
}

static void test_category(void)
{
    CHECK(sb_stream_category_is_valid("a", 1));
    CHECK(sb_stream_category_is_valid("contact", 7));
    CHECK(sb_stream_category_is_valid("a_1", 3));
    CHECK(sb_stream_category_is_valid("abcdefghijklmnopqrstuvwxyz01234", 31));
    CHECK(!sb_stream_category_is_valid("abcdefghijklmnopqrstuvwxyz012345", 32));
    CHECK(!sb_stream_category_is_valid("", 0));
    CHECK(!sb_stream_category_is_valid("9", 1));
    CHECK(!sb_stream_category_is_valid("_", 1));
    CHECK(!sb_stream_category_is_valid("aB", 2));
    CHECK(!sb_stream_category_is_valid("a-b", 3));
    CHECK(!sb_stream_category_is_valid("a\0", 2));
    /* Only len characters are looked at. */
    CHECK(sb_stream_category_is_valid("ab-", 2));
}

static void test_format(void)
{
    for (int i = 0; i < 100; i++) {
        sb_uuid_t id;
        sb_uuid_v7(&id);
        char out[SB_STREAM_NAME_MAX];
        size_t len = sb_stream_format("call", &id, out);
        CHECK_EQ_UINT(len, 4 + 1 + SB_UUID_STRLEN);
        CHECK_EQ_UINT(strlen(out), len);
        sb_stream_name_t n;
        if (CHECK_EQ_INT(sb_stream_parse(out, len, &n), 0)) {
            CHECK_EQ_STR(n.category, "call");
            CHECK_EQ_MEM(n.id.b, 16, id.b, 16);
        }
    }
    /* The longest name fills the buffer exactly. */
    char out[SB_STREAM_NAME_MAX];
    sb_uuid_t id;
    sb_uuid_v4(&id);
    size_t len = sb_stream_format("abcdefghijklmnopqrstuvwxyz01234", &id, out);
    CHECK_EQ_UINT(len, SB_STREAM_NAME_MAX - 1);
    CHECK(out[len] == '\0');
}

static void test_hash(void)
{
    /* FNV-1a 64 reference values. */
    CHECK_EQ_UINT(sb_stream_hash("", 0), 0xcbf29ce484222325ull);
    CHECK_EQ_UINT(sb_stream_hash("a", 1), 0xaf63dc4c8601ec8cull);
    CHECK_EQ_UINT(sb_stream_hash("foobar", 6), 0x85944171f73967e8ull);
    const char *s = "contact-" UUID;
    CHECK_EQ_UINT(sb_stream_hash(s, strlen(s)), sb_stream_hash(s, strlen(s)));
    CHECK(sb_stream_hash(s, strlen(s)) != sb_stream_hash(s, strlen(s) - 1));

    /* Spread over loops: 4000 stream names (fixed, so the test cannot flake) over 8 owners land
     * within 20% of even. */
    int counts[8] = {0};
    sb_uuid_t ns = {{0}};
    for (int i = 0; i < 4000; i++) {
        sb_uuid_t id;
        char seed[16];
        sb_uuid_from_name(&id, &ns, seed, (size_t)snprintf(seed, sizeof seed, "%d", i));
        char name[SB_STREAM_NAME_MAX];
        size_t len = sb_stream_format("contact", &id, name);
        counts[sb_stream_hash(name, len) % 8]++;
    }
    for (int i = 0; i < 8; i++)
        CHECK(counts[i] > 400 && counts[i] < 600);
}

int main(void)
{
    SBTEST_RUN(test_parse_valid);
    SBTEST_RUN(test_parse_invalid);
    SBTEST_RUN(test_category);
    SBTEST_RUN(test_format);
    SBTEST_RUN(test_hash);
    return sbtest_summary();
}
