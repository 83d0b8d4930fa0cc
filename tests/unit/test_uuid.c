/* UUIDs (src/core/uuid.c): version and variant bits, the time prefix of v7, no repeats within a
 * thread, across threads (each draws from its own random pool), or between a parent and a child
 * forked with bytes left in the parent's pool. */
#include "core/uuid.h"

#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sbtest.h"

#define PER_THREAD 20000

static int cmp_uuid(const void *a, const void *b)
{
    return memcmp(a, b, sizeof(sb_uuid_t));
}

/* Sorts n ids and counts adjacent equal pairs. */
static int repeats(sb_uuid_t *ids, size_t n)
{
    qsort(ids, n, sizeof(*ids), cmp_uuid);
    int r = 0;
    for (size_t i = 1; i < n; i++)
        r += memcmp(&ids[i - 1], &ids[i], sizeof(sb_uuid_t)) == 0;
    return r;
}

static void test_bits(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    uint64_t before = (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
    sb_uuid_t u;
    sb_uuid_v7(&u);
    gettimeofday(&tv, NULL);
    uint64_t after = (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
    uint64_t ms = 0;
    for (int i = 0; i < 6; i++)
        ms = ms << 8 | u.b[i];
    CHECK(ms >= before && ms <= after);
    CHECK_EQ_INT(u.b[6] >> 4, 7);
    CHECK_EQ_INT(u.b[8] >> 6, 2);
    sb_uuid_v4(&u);
    CHECK_EQ_INT(u.b[6] >> 4, 4);
    CHECK_EQ_INT(u.b[8] >> 6, 2);
    char s[SB_UUID_STRLEN + 1];
    sb_uuid_format(&u, s);
    sb_uuid_t back;
    CHECK(sb_uuid_parse(s, SB_UUID_STRLEN, &back) == 0 && memcmp(&back, &u, sizeof(u)) == 0);
}

static void *make_ids(void *arg)
{
    sb_uuid_t *out = arg;
    for (int i = 0; i < PER_THREAD; i++)
        if (i % 2)
            sb_uuid_v4(&out[i]);
        else
            sb_uuid_v7(&out[i]);
    return NULL;
}

static void test_threads(void)
{
    sb_uuid_t *ids = calloc(3 * PER_THREAD, sizeof(*ids));
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, make_ids, ids + (size_t)(i + 1) * PER_THREAD);
    make_ids(ids);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    /* The random part alone (bytes 6..15, bits included) must not repeat either. */
    sb_uuid_t *rand = calloc(3 * PER_THREAD, sizeof(*rand));
    for (size_t i = 0; i < 3 * PER_THREAD; i++)
        memcpy(rand[i].b, ids[i].b + 6, 10);
    CHECK_EQ_INT(repeats(ids, 3 * PER_THREAD), 0);
    CHECK_EQ_INT(repeats(rand, 3 * PER_THREAD), 0);
    free(rand);
    free(ids);
}

/* The parent has drawn from its pool, so bytes are left in it; a child forked now must not hand out
 * the ids the parent hands out next. */
static void test_fork(void)
{
    sb_uuid_t first;
    sb_uuid_v4(&first);
    int fds[2];
    if (!CHECK(pipe(fds) == 0))
        return;
    pid_t pid = fork();
    if (pid == 0) {
        sb_uuid_t mine[8];
        for (int i = 0; i < 8; i++)
            sb_uuid_v4(&mine[i]);
        ssize_t w = write(fds[1], mine, sizeof(mine));
        _exit(w == (ssize_t)sizeof(mine) ? 0 : 1);
    }
    close(fds[1]);
    sb_uuid_t parent[8], child[8];
    for (int i = 0; i < 8; i++)
        sb_uuid_v4(&parent[i]);
    size_t got = 0;
    while (got < sizeof(child)) {
        ssize_t r = read(fds[0], (char *)child + got, sizeof(child) - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (!CHECK(got == sizeof(child) && WIFEXITED(status) && WEXITSTATUS(status) == 0))
        return;
    sb_uuid_t all[16];
    memcpy(all, parent, sizeof(parent));
    memcpy(all + 8, child, sizeof(child));
    CHECK_EQ_INT(repeats(all, 16), 0);
}

/* The parser accepts exactly 8-4-4-4-12 hex digits, either case: every byte value at every position
 * of a valid id, against a by-the-rules reference. */
static int ref_hex(unsigned char c)
{
    static const char digits[] = "0123456789abcdef";
    const char *p = c != 0 ? strchr(digits, tolower(c)) : NULL;
    return p != NULL ? (int)(p - digits) : -1;
}

static bool ref_parse(const char *s, size_t len, sb_uuid_t *out)
{
    if (len != SB_UUID_STRLEN)
        return false;
    int j = 0;
    for (size_t i = 0; i < len;) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return false;
            i++;
            continue;
        }
        int hi = ref_hex((unsigned char)s[i]), lo = ref_hex((unsigned char)s[i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out->b[j++] = (uint8_t)(hi << 4 | lo);
        i += 2;
    }
    return true;
}

static void test_parse(void)
{
    char s[SB_UUID_STRLEN + 1] = "0189abcd-Ef01-7234-9a6B-cdef01234567";
    int bad = 0;
    for (int pos = 0; pos < SB_UUID_STRLEN && bad < 5; pos++) {
        char keep = s[pos];
        for (int c = 0; c < 256; c++) {
            s[pos] = (char)c;
            sb_uuid_t got, want;
            memset(&got, 0xAA, sizeof(got));
            memset(&want, 0x55, sizeof(want));
            bool ok = ref_parse(s, SB_UUID_STRLEN, &want);
            int rc = sb_uuid_parse(s, SB_UUID_STRLEN, &got);
            if (!CHECK_EQ_INT(rc == 0, ok) || (ok && !CHECK(memcmp(&got, &want, sizeof(got)) == 0)))
                bad++;
            if (!ok) {
                sb_uuid_t fill;
                memset(&fill, 0xAA, sizeof(fill));
                CHECK(memcmp(&got, &fill, sizeof(got)) == 0); /* untouched on failure */
            }
        }
        s[pos] = keep;
    }
    sb_uuid_t u;
    CHECK(sb_uuid_parse(s, SB_UUID_STRLEN - 1, &u) != 0);
    CHECK(sb_uuid_parse("0189abcd0ef010723409a6b0cdef01234567", 36, &u) != 0);
}

/* Name-based ids are version 5 UUIDs: RFC 4122's DNS namespace and "python.org" give what Python's
 * uuid.uuid5 gives, the same on every call and on every thread. */
static void test_from_name(void)
{
    sb_uuid_t ns, id;
    const char *dns = "6ba7b810-9dad-11d1-80b4-00c04fd430c8";
    if (!CHECK_EQ_INT(sb_uuid_parse(dns, strlen(dns), &ns), 0))
        return;
    char s[SB_UUID_STRLEN + 1];
    for (int i = 0; i < 3; i++) {
        sb_uuid_from_name(&id, &ns, "python.org", strlen("python.org"));
        sb_uuid_format(&id, s);
        CHECK_EQ_STR(s, "886313e1-3b8a-5372-9b90-0c9aee199e5d");
    }
}

/* Each thread hashes in a context it keeps (src/core/uuid.c): an id must not depend on what the
 * context hashed before (other names, other namespaces), on any thread; the threads' contexts are
 * freed when they end (LeakSanitizer reports them otherwise). */
static void *names_on_thread(void *arg)
{
    int *bad = arg;
    sb_uuid_t dns, url, a, b;
    const char *d = "6ba7b810-9dad-11d1-80b4-00c04fd430c8", *u = "6ba7b811-9dad-11d1-80b4-00c04fd430c8";
    if (sb_uuid_parse(d, strlen(d), &dns) != 0 || sb_uuid_parse(u, strlen(u), &url) != 0) {
        (*bad)++;
        return NULL;
    }
    char s[SB_UUID_STRLEN + 1];
    for (int i = 0; i < 200; i++) {
        sb_uuid_from_name(&a, &dns, "python.org", strlen("python.org"));
        sb_uuid_format(&a, s);
        *bad += strcmp(s, "886313e1-3b8a-5372-9b90-0c9aee199e5d") != 0;
        /* Python: uuid.uuid5(uuid.NAMESPACE_URL, "http://python.org/") */
        sb_uuid_from_name(&b, &url, "http://python.org/", strlen("http://python.org/"));
        sb_uuid_format(&b, s);
        *bad += strcmp(s, "4c565f0d-3f5a-5890-b41b-20cf47701c5e") != 0;
        sb_uuid_from_name(&b, &dns, "", 0);
        sb_uuid_format(&b, s);
        *bad += strcmp(s, "4ebd0208-8328-5d69-8c44-ec50939c0967") != 0;
    }
    return NULL;
}

static void test_from_name_threads(void)
{
    int bad[3] = {0, 0, 0};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        CHECK_EQ_INT(pthread_create(&t[i], NULL, names_on_thread, &bad[i + 1]), 0);
    names_on_thread(&bad[0]);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(bad[i], 0);
}

int main(void)
{
    SBTEST_RUN(test_parse);
    SBTEST_RUN(test_from_name);
    SBTEST_RUN(test_from_name_threads);
    SBTEST_RUN(test_bits);
    SBTEST_RUN(test_threads);
    SBTEST_RUN(test_fork);
    return sbtest_summary();
}
