/* The SSE request parser: resume positions (?after=, Last-Event-ID), filters, percent-decoding,
 * and the bounds on what a client may ask. */
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "http/sse_params.h"
#include "sbtest.h"

static int parse(const char *q, const char *lei, sb_sse_params_t *p, const char **field)
{
    char err[160];
    return sb_sse_params_parse(q, q ? strlen(q) : 0, lei, lei ? strlen(lei) : 0, p, field, err, sizeof(err));
}

static void test_empty(void)
{
    sb_sse_params_t p;
    const char *field;
    CHECK_EQ_INT(parse(NULL, NULL, &p, &field), 0);
    CHECK(!p.has_after);
    CHECK(p.token == NULL);
    CHECK_EQ_INT(p.ntypes + p.nstreams + p.ncategories, 0);
    sb_sse_params_free(&p);
    CHECK_EQ_INT(parse("", "", &p, &field), 0);
    CHECK(!p.has_after);
    sb_sse_params_free(&p);
}

static void test_resume(void)
{
    sb_sse_params_t p;
    const char *field;
    CHECK_EQ_INT(parse("after=42", NULL, &p, &field), 0);
    CHECK(p.has_after);
    CHECK_EQ_INT(p.after, 42);
    sb_sse_params_free(&p);
    /* Last-Event-ID (what EventSource sends back) wins over the URL's ?after=. */
    CHECK_EQ_INT(parse("after=42", " 1234 ", &p, &field), 0);
    CHECK_EQ_INT(p.after, 1234);
    sb_sse_params_free(&p);
    CHECK_EQ_INT(parse("after=0", NULL, &p, &field), 0);
    CHECK(p.has_after);
    CHECK_EQ_INT(p.after, 0);
    sb_sse_params_free(&p);
    const char *bad_after[] = {"after=",      "after=-1", "after=1e3",
                               "after=12x",   "after=+1", "after=1234567890123456789",
                               "after=%31%00"};
    for (size_t i = 0; i < sizeof(bad_after) / sizeof(bad_after[0]); i++) {
        CHECK_EQ_INT(parse(bad_after[i], NULL, &p, &field), SB_EINVAL);
        CHECK_EQ_STR(field, "after");
    }
    CHECK_EQ_INT(parse(NULL, "abc", &p, &field), SB_EINVAL);
    CHECK_EQ_STR(field, "Last-Event-ID");
    CHECK_EQ_INT(parse(NULL, "-5", &p, &field), SB_EINVAL);
    /* An empty Last-Event-ID means none. */
    CHECK_EQ_INT(parse("after=7", "  ", &p, &field), 0);
    CHECK_EQ_INT(p.after, 7);
    sb_sse_params_free(&p);
}

static void test_filters(void)
{
    sb_sse_params_t p;
    const char *field;
    const char *q =
        "types=ContactCreated,MessageReceived&streams=contact-0190a000-0000-7000-8000-000000000001"
        "&categories=contact%2Ccall&types=CallRinging&_=17000&access_token=a%2Bb+c";
    CHECK_EQ_INT(parse(q, NULL, &p, &field), 0);
    CHECK_EQ_INT(p.ntypes, 3);
    CHECK_EQ_STR(p.types[0], "ContactCreated");
    CHECK_EQ_STR(p.types[1], "MessageReceived");
    CHECK_EQ_STR(p.types[2], "CallRinging");
    CHECK_EQ_INT(p.nstreams, 1);
    CHECK_EQ_STR(p.streams[0], "contact-0190a000-0000-7000-8000-000000000001");
    CHECK_EQ_INT(p.ncategories, 2);
    CHECK_EQ_STR(p.categories[0], "contact");
    CHECK_EQ_STR(p.categories[1], "call");
    CHECK_EQ_STR(p.token, "a+b c");
    sb_sse_params_free(&p);
    /* Empty items and empty lists filter nothing. */
    CHECK_EQ_INT(parse("types=&categories=,contact,", NULL, &p, &field), 0);
    CHECK_EQ_INT(p.ntypes, 0);
    CHECK_EQ_INT(p.ncategories, 1);
    sb_sse_params_free(&p);

    struct {
        const char *q, *field;
    } bad[] = {
        {"types=Contact%0ACreated", "types"},
        {"types=1Bad", "types"},
        {"types=Bad-Name", "types"},
        {"streams=contact-nope", "streams"},
        {"streams=Contact-0190a000-0000-7000-8000-000000000001", "streams"},
        {"categories=Contact", "categories"},
        {"categories=a b", "categories"},
        {"types=%zz", "types"},
        {"types=%4", "types"},
        {"access_token=%00", "access_token"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK_EQ_INT(parse(bad[i].q, NULL, &p, &field), SB_EINVAL);
        CHECK_EQ_STR(field, bad[i].field);
    }
}

static void test_bounds(void)
{
    sb_sse_params_t p;
    const char *field;
    char q[SB_SSE_MAX_QUERY + 64];
    size_t n = (size_t)snprintf(q, sizeof(q), "types=");
    for (int i = 0; i < SB_SSE_MAX_ITEMS; i++)
        n += (size_t)snprintf(q + n, sizeof(q) - n, "T%d,", i);
    CHECK_EQ_INT(parse(q, NULL, &p, &field), 0);
    CHECK_EQ_INT(p.ntypes, SB_SSE_MAX_ITEMS);
    sb_sse_params_free(&p);
    snprintf(q + n, sizeof(q) - n, "One");
    CHECK_EQ_INT(parse(q, NULL, &p, &field), SB_EINVAL);
    CHECK_EQ_STR(field, "types");
    /* A type name longer than SB_SSE_MAX_TYPE. */
    n = (size_t)snprintf(q, sizeof(q), "types=");
    for (int i = 0; i <= SB_SSE_MAX_TYPE; i++)
        q[n++] = 'A';
    q[n] = '\0';
    CHECK_EQ_INT(parse(q, NULL, &p, &field), SB_EINVAL);
    /* The whole query. */
    memset(q, 'a', SB_SSE_MAX_QUERY + 1);
    q[SB_SSE_MAX_QUERY + 1] = '\0';
    CHECK_EQ_INT(parse(q, NULL, &p, &field), SB_EINVAL);
    CHECK_EQ_STR(field, "query");
}

int main(void)
{
    SBTEST_RUN(test_empty);
    SBTEST_RUN(test_resume);
    SBTEST_RUN(test_filters);
    SBTEST_RUN(test_bounds);
    return sbtest_summary();
}
