/* The runtime's data structures on their own: the stream registry (open addressing with
 * backward-shift deletion), the scheduled-command heap, and the metadata map's encoding. */
#include "actors/runtime_int.h"
#include "core/buf.h"
#include "core/error.h"
#include "events/stream.h"

#include <msgpack.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;
#define CHECK(c)                                                                                             \
    do {                                                                                                     \
        if (!(c)) {                                                                                          \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);                            \
            failures++;                                                                                      \
        }                                                                                                    \
    } while (0)

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static sb__actor_t *mk_actor(int i, uint64_t forced_hash, bool force)
{
    char name[SB_STREAM_NAME_MAX];
    int len = snprintf(name, sizeof(name), "contact-%08x-0000-4000-8000-%012x", (unsigned)i, (unsigned)i);
    sb__actor_t *a = calloc(1, sizeof(*a) + (size_t)len + 1);
    memcpy(a->stream, name, (size_t)len + 1);
    a->stream_len = (size_t)len;
    a->hash = force ? forced_hash : sb_stream_hash(name, (size_t)len);
    return a;
}

/* Every present actor is found, every removed one is not, under random adds and removes; then the
 * same with every hash equal (one long probe run: the worst case for backward shifts) and with
 * hashes that share their low bits (what one loop of several sees). */
static void test_registry_mode(int mode)
{
    enum { N = 5000 };
    sb__registry_t r;
    sb__registry_init(&r);
    sb__actor_t **all = calloc(N, sizeof(*all));
    bool *in = calloc(N, sizeof(*in));
    int n = mode == 1 ? 300 : N;
    for (int i = 0; i < n; i++) {
        if (mode == 0)
            all[i] = mk_actor(i, 0, false);
        else if (mode == 1)
            all[i] = mk_actor(i, 42, true);
        else
            all[i] = mk_actor(i, next_rand() << 4, true); /* low 4 bits all zero */
    }
    size_t count = 0;
    for (int round = 0; round < 20 * n; round++) {
        int i = (int)(next_rand() % (uint64_t)n);
        sb__actor_t *found = sb__registry_find(&r, all[i]->hash, all[i]->stream, all[i]->stream_len);
        CHECK(found == (in[i] ? all[i] : NULL));
        if (in[i] && next_rand() % 3 != 0) {
            sb__registry_remove(&r, all[i]);
            in[i] = false;
            count--;
        } else if (!in[i]) {
            CHECK(sb__registry_add(&r, all[i]) == 0);
            in[i] = true;
            count++;
        }
        CHECK(r.n == count);
    }
    for (int i = 0; i < n; i++) {
        sb__actor_t *found = sb__registry_find(&r, all[i]->hash, all[i]->stream, all[i]->stream_len);
        CHECK(found == (in[i] ? all[i] : NULL));
    }
    /* Same hash, different name: never confused. */
    if (mode == 0 && in[0]) {
        char other[SB_STREAM_NAME_MAX];
        memcpy(other, all[0]->stream, all[0]->stream_len + 1);
        other[all[0]->stream_len - 1] ^= 1;
        CHECK(sb__registry_find(&r, all[0]->hash, other, all[0]->stream_len) == NULL);
    }
    for (int i = 0; i < n; i++) {
        if (in[i])
            sb__registry_remove(&r, all[i]);
    }
    CHECK(r.n == 0);
    CHECK(r.cap <= 64 || r.cap < (size_t)n); /* shrank back */
    for (int i = 0; i < n; i++)
        free(all[i]);
    free(all);
    free(in);
    sb__registry_free(&r);
}

static void count_each(sb__actor_t *a, void *arg)
{
    (void)a;
    (*(int *)arg)++;
}

static void test_registry_each(void)
{
    sb__registry_t r;
    sb__registry_init(&r);
    sb__actor_t *a[10];
    for (int i = 0; i < 10; i++) {
        a[i] = mk_actor(i, 0, false);
        sb__registry_add(&r, a[i]);
    }
    int n = 0;
    sb__registry_each(&r, count_each, &n);
    CHECK(n == 10);
    for (int i = 0; i < 10; i++) {
        sb__registry_remove(&r, a[i]);
        free(a[i]);
    }
    sb__registry_free(&r);
}

/* The heap pops in (time, insertion) order whatever the insertion order. */
static void test_heap(void)
{
    enum { N = 20000 };
    sb__heap_t h;
    sb__heap_init(&h);
    CHECK(sb__heap_top(&h) == NULL);
    CHECK(sb__heap_pop(&h) == NULL);
    sb__msg_t *msgs = calloc(N, sizeof(*msgs));
    for (int i = 0; i < N; i++) {
        msgs[i].at_us = (int64_t)(next_rand() % 1000); /* many equal times */
        msgs[i].attempts = i;                          /* insertion order */
        CHECK(sb__heap_push(&h, msgs[i].at_us, &msgs[i]) == 0);
    }
    CHECK(h.n == N);
    int64_t last_at = -1;
    int last_seq = -1;
    for (int i = 0; i < N; i++) {
        const sb__timer_t *top = sb__heap_top(&h);
        CHECK(top != NULL && top->msg->at_us == top->at_us);
        sb__msg_t *m = sb__heap_pop(&h);
        CHECK(m->at_us >= last_at);
        if (m->at_us == last_at)
            CHECK(m->attempts > last_seq);
        last_at = m->at_us;
        last_seq = m->attempts;
    }
    CHECK(sb__heap_pop(&h) == NULL);
    /* Interleaved pushes and pops keep the order too. */
    int64_t floor = 0;
    for (int i = 0; i < N; i++) {
        if (i % 3 == 2) {
            sb__msg_t *m = sb__heap_pop(&h);
            CHECK(m->at_us >= floor);
            floor = m->at_us;
        } else {
            msgs[i].at_us = floor + (int64_t)(next_rand() % 500);
            sb__heap_push(&h, msgs[i].at_us, &msgs[i]);
        }
    }
    sb__heap_free(&h);
    free(msgs);
}

static void test_json_size(void)
{
    json_t *small = json_pack("{s:s}", "a", "b");
    json_t *big = json_pack("{s:s, s:[i,i,i,{s:s}]}", "name", "a fairly long string value here", "list", 1, 2,
                            3, "k", "v");
    CHECK(sb__json_size(small) > 0);
    CHECK(sb__json_size(big) > sb__json_size(small));
    CHECK(sb__json_size(json_true()) == 0);
    json_decref(small);
    json_decref(big);
}

/* sb__rt_pack_meta writes what msgpack-c's packer writes for the same map (the bytes the log held
 * before it wrote them itself), for values of every string header size and absent ones, and
 * refuses a value that is not UTF-8. */
static int pk_write(void *data, const char *p, size_t n)
{
    sb_buf_append(data, p, n);
    return 0;
}

static void packer_meta(sb_buf_t *b, const char *const vals[5])
{
    static const char *const keys[5] = {"correlation_id", "causation_id", "user_id", "request_id", "source"};
    msgpack_packer pk;
    msgpack_packer_init(&pk, b, pk_write);
    msgpack_pack_map(&pk, 5);
    for (int i = 0; i < 5; i++) {
        msgpack_pack_str(&pk, strlen(keys[i]));
        msgpack_pack_str_body(&pk, keys[i], strlen(keys[i]));
        if (vals[i] == NULL) {
            msgpack_pack_nil(&pk);
        } else {
            msgpack_pack_str(&pk, strlen(vals[i]));
            msgpack_pack_str_body(&pk, vals[i], strlen(vals[i]));
        }
    }
}

static void test_pack_meta(void)
{
    static const size_t lens[] = {0, 1, 31, 32, 255, 256, 65535, 65536, 70000};
    const size_t nlens = sizeof lens / sizeof lens[0];
    char *texts[sizeof lens / sizeof lens[0]];
    for (size_t i = 0; i < nlens; i++) {
        texts[i] = malloc(lens[i] + 1);
        for (size_t j = 0; j < lens[i]; j++)
            texts[i][j] = (char)('a' + (j % 26));
        texts[i][lens[i]] = '\0';
    }
    for (int round = 0; round < 300; round++) {
        const char *vals[5];
        for (int k = 0; k < 5; k++) {
            uint64_t r = next_rand() % (nlens + 1);
            vals[k] = r == nlens ? NULL : texts[r];
        }
        if (round == 0)
            vals[0] = vals[1] = vals[2] = vals[3] = vals[4] = NULL;
        if (round == 1) { /* what a webhook's command carries */
            vals[0] = vals[3] = "0193a5b2-7c1d-7e4f-8a9b-0c1d2e3f4a5b";
            vals[1] = vals[2] = NULL;
            vals[4] = "webhook:twilio";
        }
        sb_rt_meta_t m = {vals[0], vals[1], vals[2], vals[3], vals[4]};
        sb_buf_t a = SB_BUF_INIT, b = SB_BUF_INIT;
        CHECK(sb__rt_pack_meta(&a, &m) == 0);
        packer_meta(&b, vals);
        CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
        sb_buf_free(&a);
        sb_buf_free(&b);
    }
    sb_rt_meta_t bad = {.correlation_id = "ok", .source = "caf\xc3("};
    sb_buf_t a = SB_BUF_INIT;
    CHECK(sb__rt_pack_meta(&a, &bad) == SB_ECODEC);
    sb_buf_free(&a);
    for (size_t i = 0; i < nlens; i++)
        free(texts[i]);
}

int main(void)
{
    test_registry_mode(0);
    test_registry_mode(1);
    test_registry_mode(2);
    test_registry_each();
    test_heap();
    test_json_size();
    test_pack_meta();
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("ok\n");
    return 0;
}
