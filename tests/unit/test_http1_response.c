/* bench/http1_response.h, the load generator's response parser: every response read whole and in
 * pieces of every size (the way a socket delivers them), where each ends, and what it refuses. */
#include "../../bench/http1_response.h"
#include "sbtest.h"

#include <stdio.h>

/* Feeds s to a fresh parser `step` bytes at a time, keeping what it leaves unconsumed the way the
 * load generator does.  Returns 1 when done (*rest: the bytes after the response), 0 when it
 * needs more, -1 on error. */
static int feed(hr_t *p, const char *s, size_t step, size_t *rest)
{
    char buf[4096];
    size_t len = 0, given = 0, n = strlen(s);
    hr_reset(p);
    while (given < n || len > 0) {
        size_t k = n - given < step ? n - given : step;
        memcpy(buf + len, s + given, k);
        len += k;
        given += k;
        ssize_t used = hr_feed(p, buf, len);
        if (used < 0)
            return -1;
        len -= (size_t)used;
        memmove(buf, buf + used, len);
        if (hr_is_done(p)) {
            *rest = len + (n - given);
            return 1;
        }
        if (k == 0)
            return 0; /* nothing more to give and the parser wants more */
    }
    return 0;
}

/* The same outcome whatever the pieces. */
static void expect(const char *s, int result, int status, bool close, size_t rest)
{
    for (size_t step = 1; step <= strlen(s); step++) {
        hr_t p;
        size_t r = 0;
        int got = feed(&p, s, step, &r);
        char what[64];
        snprintf(what, sizeof(what), "pieces of %zu", step);
        if (!CHECK_EQ_INT(got, result)) {
            fprintf(stderr, "  %s: %s\n", what, p.err ? p.err : "-");
            return;
        }
        if (result == 1) {
            CHECK_EQ_INT(p.status, status);
            CHECK_EQ_INT(p.close, close);
            CHECK_EQ_UINT(r, rest);
        }
    }
}

static void test_lengths(void)
{
    expect("HTTP/1.1 200 OK\r\nContent-Length: 11\r\nContent-Type: text/xml\r\n\r\n<Response/>", 1, 200,
           false, 0);
    expect("HTTP/1.1 204 No Content\r\n\r\n", 1, 204, false, 0);
    expect("HTTP/1.1 404 Not Found\r\ncontent-length:0\r\n\r\n", 1, 404, false, 0);
    expect("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok", 1, 200, false, 0);
    /* A body shorter than announced is not a response yet. */
    expect("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc", 0, 0, false, 0);
    /* Bytes after the response are left to the caller (who treats them as an error). */
    expect("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP", 1, 200, false, 4);
}

static void test_chunked(void)
{
    expect("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1a;ext=1\r\n"
           "abcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n",
           1, 200, false, 0);
    expect("HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\nX-Trailer: yes\r\nY: 2\r\n\r\n", 1, 200,
           false, 0);
    /* The last chunk without its final empty line is not the end. */
    expect("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n", 0, 0, false, 0);
    expect("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n", -1, 0, false, 0);
    expect("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", -1, 0, false, 0);
    expect("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n", -1, 0, false, 0);
}

static void test_connection(void)
{
    expect("HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 0\r\n\r\n", 1, 200, true, 0);
    expect("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", 1, 200, true, 0);
    expect("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n", 1, 200, false, 0);
    /* Interim answers are skipped; the final one counts. */
    expect("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Busy\r\nContent-Length: 1\r\n\r\nx", 1, 503, false, 0);
}

static void test_until_close(void)
{
    const char *s = "HTTP/1.1 200 OK\r\nServer: x\r\n\r\nthe body runs until the connection ends";
    hr_t p;
    size_t rest = 0;
    CHECK_EQ_INT(feed(&p, s, 7, &rest), 0);
    CHECK(p.close);
    CHECK_EQ_INT(hr_eof(&p), 0);
    CHECK(hr_is_done(&p));
    /* A close anywhere else cuts the response short. */
    CHECK_EQ_INT(feed(&p, "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc", 5, &rest), 0);
    CHECK_EQ_INT(hr_eof(&p), -1);
    CHECK(p.err != NULL);
    hr_reset(&p);
    CHECK_EQ_INT(hr_eof(&p), -1);
}

static void test_refused(void)
{
    const char *bad[] = {
        "HTTP/2 200 OK\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/1.1 20 OK\r\n\r\n",
        "HTTP/1.1 099 Low\r\n\r\n",
        "ICY 200 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        "HTTP/1.1 200 OK\r\n: empty name\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        hr_t p;
        size_t rest;
        if (!CHECK_EQ_INT(feed(&p, bad[i], 4096, &rest), -1))
            fprintf(stderr, "  accepted: %s\n", bad[i]);
        else
            CHECK(p.err != NULL);
    }
}

int main(void)
{
    SBTEST_RUN(test_lengths);
    SBTEST_RUN(test_chunked);
    SBTEST_RUN(test_connection);
    SBTEST_RUN(test_until_close);
    SBTEST_RUN(test_refused);
    return sbtest_summary();
}
