/* X-Twilio-Signature: vectors from Twilio's own node library, URL variants, tampering.
 *
 * The expected signatures below were computed with the npm package twilio 6.2.0 (the version
 * package-lock.json pins): getExpectedTwilioSignature(token, url, params) from
 * twilio/lib/webhooks/webhooks, with token "12345678901234567890123456789012" and params as a
 * plain object (a repeated name as an array).  tests/e2e/providers_sig.test.mjs checks many more,
 * generated at random, against this binary's --oracle mode (see oracle() at the end).
 *
 * With --oracle, this binary reads JSON requests, one per line, on stdin and answers one JSON line
 * each on stdout:
 *   {"op":"twilio_check","token","url","body","sig"}  -> {"valid": bool}
 *   {"op":"twilio_compute","token","url","body"}      -> {"sig": "..."}  (body: the raw form)
 *   {"op":"svix","secret","id","ts","sigs","body","now"} -> {"rc": "OK" | error name}
 *   {"op":"token","account_sid","key_sid","secret","identity","app_sid","incoming","now","ttl"}
 *                                                      -> {"token": "..."} | {"rc": error name} */
#include "core/error.h"
#include "providers/form.h"
#include "providers/svix.h"
#include "providers/twilio_sig.h"
#include "providers/twilio_token.h"
#include "sbtest.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const TOKEN = "12345678901234567890123456789012";

/* The body is given form-encoded, as Twilio would post it. */
static bool check(const char *url, const char *body, const char *sig)
{
    sb_form_t f;
    if (sb_form_parse(body, strlen(body), &f) != 0)
        return false;
    bool ok = sb_twilio_sig_check(TOKEN, url, strlen(url), &f, sig, strlen(sig));
    sb_form_free(&f);
    return ok;
}

static void compute(const char *url, const char *body, char out[SB_TWILIO_SIG_LEN + 1])
{
    sb_form_t f;
    out[0] = '\0';
    if (!CHECK_EQ_INT(sb_form_parse(body, strlen(body), &f), 0))
        return;
    sb_twilio_sig_compute(TOKEN, url, strlen(url), &f, out);
    sb_form_free(&f);
}

static const struct {
    const char *url;
    const char *body;
    const char *sig;
} vectors[] = {
    /* Twilio's documentation example. */
    {"https://mycompany.com/myapp.php?foo=1&bar=2",
     "CallSid=CA1234567890ABCDE&Caller=%2B12349013030&Digits=1234&From=%2B12349013030&To=%2B18005551212",
     "ywaPmaw4i7u6NcKlNoz8UEm3vLY="},
    /* No parameters: the URL alone. */
    {"http://127.0.0.1:8080/webhooks/twilio/messaging", "", "y9c3yTclrm9pv83yoflEEFirf8k="},
    /* A repeated name: its distinct values, sorted. */
    {"https://sb.example.com/webhooks/twilio/messaging",
     "MediaUrl=https%3A%2F%2Fb.example%2F2&MediaUrl=https%3A%2F%2Fa.example%2F1&MediaUrl=https%3A%2F%2Fb."
     "example%2F2"
     "&Body=x&From=%2B15550001111",
     "QKHWnNp8KGhi2KLGlUvdgbxdx8E="},
    /* Case-sensitive name order (B < Ab < Body < a < b) and UTF-8 values. */
    {"https://sb.example.com/webhooks/twilio/messaging",
     "a=1&B=2&b=3&Ab=4&Body=H%C3%A9llo+w%C3%B6rld+%F0%9F%91%8B+%26+%3D+%2B+%25",
     "d3BPDlpLDJQ3HU+6MzY8Q94yC8g="},
    /* JavaScript's order: U+1F600 (a surrogate pair) sorts before U+FFFD, unlike byte order. */
    {"https://sb.example.com/w", "a%F0%9F%98%80=emoji&a%EF%BF%BD=replacement",
     "DW+KNMPw/1gxiB8J9V8hnn3yz68="},
};

static void test_vectors(void)
{
    for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
        char sig[SB_TWILIO_SIG_LEN + 1];
        compute(vectors[i].url, vectors[i].body, sig);
        CHECK_EQ_STR(sig, vectors[i].sig);
        CHECK(check(vectors[i].url, vectors[i].body, vectors[i].sig));
    }
}

/* Keys at, below and above SHA-1's 64-byte block (a longer key is hashed first; RFC 2104), against
 * HMAC-SHA1 computed with Python's hmac module over "https://sb.example.com/w" + "a" + "1". */
static void test_key_lengths(void)
{
    static const struct {
        const char *key, *sig;
    } keys[] = {
        {"kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk", "Eh+sVUXufagu4sM0Y767uT/zk5U="},
        {"kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk", "n26ArX5Gx72t3lBFSHm43JrqfCA="},
        {"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdefxy"
         "z",
         "WuPSLt8qNLwvhlW/91q3Eu/kEsw="},
    };
    const char *url = "https://sb.example.com/w";
    sb_form_t f;
    if (!CHECK_EQ_INT(sb_form_parse("a=1", 3, &f), 0))
        return;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        char sig[SB_TWILIO_SIG_LEN + 1];
        sb_twilio_sig_compute(keys[i].key, url, strlen(url), &f, sig);
        CHECK_EQ_STR(sig, keys[i].sig);
        CHECK(sb_twilio_sig_check(keys[i].key, url, strlen(url), &f, keys[i].sig, SB_TWILIO_SIG_LEN));
        CHECK(!sb_twilio_sig_check(keys[(i + 1) % 3].key, url, strlen(url), &f, keys[i].sig,
                                   SB_TWILIO_SIG_LEN));
    }
    sb_form_free(&f);
}

/* Each thread keeps the keyed states of its last few tokens: more tokens than that, in turn and out
 * of order, on two threads, each signature computed on a cold state first, must still match its
 * own token alone. */
#define CACHE_KEYS 10

static char cache_sigs[CACHE_KEYS][SB_TWILIO_SIG_LEN + 1];

static void cache_key(int i, char key[40])
{
    snprintf(key, 40, "%032d", i * 7919);
}

static void *cache_round(void *arg)
{
    const char *url = "https://sb.example.com/webhooks/twilio/messaging";
    sb_form_t f;
    if (!CHECK_EQ_INT(sb_form_parse("Body=hi&From=%2B15550001111", 27, &f), 0))
        return NULL;
    for (int round = 0; round < 3; round++) {
        for (int n = 0; n < CACHE_KEYS; n++) {
            int i = round == 1 ? CACHE_KEYS - 1 - n : (n * 3 + round) % CACHE_KEYS;
            char key[40], other[40], sig[SB_TWILIO_SIG_LEN + 1];
            cache_key(i, key);
            cache_key((i + 1) % CACHE_KEYS, other);
            sb_twilio_sig_compute(key, url, strlen(url), &f, sig);
            CHECK_EQ_STR(sig, cache_sigs[i]);
            CHECK(sb_twilio_sig_check(key, url, strlen(url), &f, cache_sigs[i], SB_TWILIO_SIG_LEN));
            CHECK(!sb_twilio_sig_check(other, url, strlen(url), &f, cache_sigs[i], SB_TWILIO_SIG_LEN));
        }
    }
    sb_form_free(&f);
    return arg;
}

static void test_key_cache(void)
{
    const char *url = "https://sb.example.com/webhooks/twilio/messaging";
    sb_form_t f;
    if (!CHECK_EQ_INT(sb_form_parse("Body=hi&From=%2B15550001111", 27, &f), 0))
        return;
    /* Cold: each token is new to this thread, so its state is keyed afresh. */
    for (int i = 0; i < CACHE_KEYS; i++) {
        char key[40];
        cache_key(i, key);
        sb_twilio_sig_compute(key, url, strlen(url), &f, cache_sigs[i]);
        for (int j = 0; j < i; j++)
            CHECK(strcmp(cache_sigs[i], cache_sigs[j]) != 0);
    }
    sb_form_free(&f);
    pthread_t th;
    if (!CHECK_EQ_INT(pthread_create(&th, NULL, cache_round, NULL), 0))
        return;
    cache_round(NULL);
    pthread_join(th, NULL);
}

static void test_port_variants(void)
{
    /* Signed (by twilio 6.2.0) over the URL without a port, then with :443. */
    const char *noport = "9PJyi5S/vQksj3rQyvCsuRdSSgk=", *port = "JjCB0V+Z5s8yUQGR40h+yE08Bfo=";
    CHECK(check("https://sb.example.com/webhooks/twilio/voice?x=1", "CallSid=CA1", noport));
    CHECK(check("https://sb.example.com:443/webhooks/twilio/voice?x=1", "CallSid=CA1", noport));
    CHECK(check("https://sb.example.com/webhooks/twilio/voice?x=1", "CallSid=CA1", port));
    CHECK(check("https://sb.example.com:443/webhooks/twilio/voice?x=1", "CallSid=CA1", port));
    /* The query is part of what is signed. */
    CHECK(!check("https://sb.example.com/webhooks/twilio/voice?x=2", "CallSid=CA1", noport));
    CHECK(!check("https://sb.example.com/webhooks/twilio/voice", "CallSid=CA1", noport));

    char a[128], b[128];
    size_t al, bl;
    static const struct {
        const char *in, *without, *with;
    } cases[] = {
        {"https://h.example/p?q", "https://h.example/p?q", "https://h.example:443/p?q"},
        {"http://h.example", "http://h.example", "http://h.example:80"},
        {"HTTPS://h.example:8443/p", "HTTPS://h.example/p", "HTTPS://h.example:8443/p"},
        {"http://user:pw@h.example:8080/x", "http://user:pw@h.example/x", "http://user:pw@h.example:8080/x"},
        {"http://[::1]:8080/x", "http://[::1]/x", "http://[::1]:8080/x"},
        {"http://[::1]/x", "http://[::1]/x", "http://[::1]:80/x"},
        {"http://h.example?x=a:b", "http://h.example?x=a:b", "http://h.example:80?x=a:b"},
        {"not a url", "not a url", "not a url"},
        {"", "", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sb_twilio_sig_url_variants(cases[i].in, strlen(cases[i].in), a, &al, b, &bl);
        CHECK_EQ_MEM(a, al, cases[i].without, strlen(cases[i].without));
        CHECK_EQ_MEM(b, bl, cases[i].with, strlen(cases[i].with));
    }
}

static void test_tampering(void)
{
    const char *url = vectors[0].url, *body = vectors[0].body, *sig = vectors[0].sig;
    CHECK(check(url, body, sig));
    /* A changed, added or missing parameter, another URL, another token. */
    CHECK(!check(
        url,
        "CallSid=CA1234567890ABCDE&Caller=%2B12349013030&Digits=1235&From=%2B12349013030&To=%2B18005551212",
        sig));
    CHECK(!check(url,
                 "CallSid=CA1234567890ABCDE&Caller=%2B12349013030&Digits=1234&From=%2B12349013030&To=%"
                 "2B18005551212&X=1",
                 sig));
    CHECK(
        !check(url, "CallSid=CA1234567890ABCDE&Caller=%2B12349013030&Digits=1234&From=%2B12349013030", sig));
    CHECK(!check("https://mycompany.com/myapp.php?foo=1&bar=3", body, sig));
    CHECK(!check("http://mycompany.com/myapp.php?foo=1&bar=2", body, sig));
    sb_form_t f;
    sb_form_parse(body, strlen(body), &f);
    CHECK(!sb_twilio_sig_check("12345678901234567890123456789013", url, strlen(url), &f, sig, strlen(sig)));
    CHECK(!sb_twilio_sig_check("", url, strlen(url), &f, sig, strlen(sig)));
    CHECK(!sb_twilio_sig_check(NULL, url, strlen(url), &f, sig, strlen(sig)));
    /* A signature of the wrong length, empty, or one bit off. */
    CHECK(!sb_twilio_sig_check(TOKEN, url, strlen(url), &f, sig, strlen(sig) - 1));
    CHECK(!sb_twilio_sig_check(TOKEN, url, strlen(url), &f, "", 0));
    CHECK(!sb_twilio_sig_check(TOKEN, url, strlen(url), &f, NULL, 0));
    char bad[SB_TWILIO_SIG_LEN + 1];
    memcpy(bad, sig, sizeof bad);
    bad[5] ^= 1;
    CHECK(!sb_twilio_sig_check(TOKEN, url, strlen(url), &f, bad, strlen(bad)));
    /* Texts that are not the signature's but decode to its bytes (the check compares bytes): the
     * last character with an unused bit set, the padding missing or changed, another alphabet. */
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    memcpy(bad, sig, sizeof bad);
    const char *at = strchr(b64, bad[26]);
    if (CHECK(at != NULL && ((at - b64) & 3) == 0)) {
        for (int low = 1; low < 4; low++) {
            bad[26] = b64[(at - b64) | low];
            CHECK(!sb_twilio_sig_check(TOKEN, url, strlen(url), &f, bad, strlen(bad)));
        }
    }
    memcpy(bad, sig, sizeof bad);
    bad[27] = 'A';
    CHECK(!sb_twilio_sig_check(TOKEN, url, strlen(url), &f, bad, strlen(bad)));
    memcpy(bad, sig, sizeof bad);
    bad[27] = '\0';
    CHECK(!sb_twilio_sig_check(TOKEN, url, strlen(url), &f, bad, SB_TWILIO_SIG_LEN));
    /* Parameter order in the body does not matter. */
    sb_form_free(&f);
    CHECK(check(
        url,
        "To=%2B18005551212&From=%2B12349013030&Digits=1234&Caller=%2B12349013030&CallSid=CA1234567890ABCDE",
        sig));
    /* Moving a value between names does. */
    CHECK(
        !check(url,
               "CallSid=CA1234567890ABCDE&Caller=%2B12349013030&Digits=&From=%2B12349013030&To=%2B18005551212"
               "1234",
               sig));
}

/* A repeated name signed in arrival order (every value, stable by name) is accepted too. */
static void test_repeated_arrival_order(void)
{
    const char *url = "https://sb.example.com/webhooks/twilio/messaging";
    /* HMAC over url + "Body" "x" "MediaUrl" "b" "MediaUrl" "a" "MediaUrl" "b", computed here. */
    sb_form_t f;
    const char *body = "MediaUrl=b&Body=x&MediaUrl=a&MediaUrl=b";
    sb_form_parse(body, strlen(body), &f);
    sb_form_t one = SB_FORM_INIT;
    /* The signed string as one parameter-less URL: same HMAC input. */
    const char *signed_str =
        "https://sb.example.com/webhooks/twilio/messagingBodyxMediaUrlbMediaUrlaMediaUrlb";
    char sig[SB_TWILIO_SIG_LEN + 1];
    sb_twilio_sig_compute(TOKEN, signed_str, strlen(signed_str), &one, sig);
    CHECK(sb_twilio_sig_check(TOKEN, url, strlen(url), &f, sig, strlen(sig)));
    /* And the libraries' form (distinct values, sorted): Body x MediaUrl a MediaUrl b. */
    const char *lib_str = "https://sb.example.com/webhooks/twilio/messagingBodyxMediaUrlaMediaUrlb";
    sb_twilio_sig_compute(TOKEN, lib_str, strlen(lib_str), &one, sig);
    CHECK(sb_twilio_sig_check(TOKEN, url, strlen(url), &f, sig, strlen(sig)));
    char direct[SB_TWILIO_SIG_LEN + 1];
    sb_twilio_sig_compute(TOKEN, url, strlen(url), &f, direct);
    CHECK_EQ_STR(direct, sig);
    /* Any other order is not. */
    const char *other = "https://sb.example.com/webhooks/twilio/messagingBodyxMediaUrlaMediaUrlbMediaUrlb";
    sb_twilio_sig_compute(TOKEN, other, strlen(other), &one, sig);
    CHECK(!sb_twilio_sig_check(TOKEN, url, strlen(url), &f, sig, strlen(sig)));
    sb_form_free(&f);
}

static int by_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Forms of 1 to 40 fields in shuffled order (both sides of the sort's switch to qsort at 16):
 * the signature is the HMAC of the URL and the fields sorted by name (ASCII names, where
 * JavaScript's order is byte order), with a repeated name's values sorted too. */
static void test_field_counts(void)
{
    const char *url = "https://sb.example.com/webhooks/twilio/messaging";
    unsigned seed = 777;
    for (int n = 1; n <= 40; n++) {
        char pairs[40][32];
        const char *sorted[40];
        for (int i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            /* names k00..k19: from n > 20 on, some repeat, with values telling them apart */
            snprintf(pairs[i], sizeof pairs[i], "k%02d=v%05u", i % 20, (seed >> 16) % 100000);
            sorted[i] = pairs[i];
        }
        for (int i = n - 1; i > 0; i--) { /* shuffle */
            seed = seed * 1103515245u + 12345u;
            int j = (int)((seed >> 16) % (unsigned)(i + 1));
            char tmp[32];
            memcpy(tmp, pairs[i], sizeof tmp);
            memcpy(pairs[i], pairs[j], sizeof tmp);
            memcpy(pairs[j], tmp, sizeof tmp);
        }
        char body[40 * 33] = "", signed_str[40 * 32 + 64];
        for (int i = 0; i < n; i++) {
            if (i > 0)
                strcat(body, "&");
            strcat(body, pairs[i]);
        }
        qsort(sorted, (size_t)n, sizeof(sorted[0]), by_str); /* "k03=v1" < "k03=v2": name, then value */
        snprintf(signed_str, sizeof signed_str, "%s", url);
        for (int i = 0; i < n; i++) { /* "kNN=vVVVVV" signs as "kNNvVVVVV" */
            strncat(signed_str, sorted[i], 3);
            strcat(signed_str, sorted[i] + 4);
        }
        sb_form_t one = SB_FORM_INIT;
        char want[SB_TWILIO_SIG_LEN + 1], got[SB_TWILIO_SIG_LEN + 1];
        sb_twilio_sig_compute(TOKEN, signed_str, strlen(signed_str), &one, want);
        compute(url, body, got);
        if (!CHECK_EQ_STR(got, want) || !CHECK(check(url, body, want))) {
            fprintf(stderr, "  %d fields: %s\n", n, body);
            return;
        }
    }
}

/* ---- the oracle for the end-to-end cross-check ------------------------------------------------- */

static const char *jstr(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static void oracle_line(json_t *in, json_t *out)
{
    const char *op = jstr(in, "op");
    if (strcmp(op, "twilio_check") == 0 || strcmp(op, "twilio_compute") == 0) {
        const char *body = jstr(in, "body"), *url = jstr(in, "url"), *token = jstr(in, "token");
        sb_form_t f;
        int rc = sb_form_parse(body, strlen(body), &f);
        if (rc != 0) {
            json_object_set_new(out, "rc", json_string(sb_errname(rc)));
            return;
        }
        if (op[7] == 'c' && op[8] == 'h') {
            const char *sig = jstr(in, "sig");
            json_object_set_new(
                out, "valid",
                json_boolean(sb_twilio_sig_check(token, url, strlen(url), &f, sig, strlen(sig))));
        } else {
            char sig[SB_TWILIO_SIG_LEN + 1];
            sb_twilio_sig_compute(token, url, strlen(url), &f, sig);
            json_object_set_new(out, "sig", json_string(sig));
        }
        sb_form_free(&f);
    } else if (strcmp(op, "svix") == 0) {
        const char *id = jstr(in, "id"), *ts = jstr(in, "ts"), *sigs = jstr(in, "sigs"),
                   *body = jstr(in, "body");
        int rc = sb_svix_verify(jstr(in, "secret"), id, strlen(id), ts, strlen(ts), sigs, strlen(sigs), body,
                                strlen(body), json_integer_value(json_object_get(in, "now")));
        json_object_set_new(out, "rc", json_string(rc == 0 ? "OK" : sb_errname(rc)));
    } else if (strcmp(op, "token") == 0) {
        sb_twilio_token_t t = {
            .account_sid = jstr(in, "account_sid"),
            .api_key_sid = jstr(in, "key_sid"),
            .api_key_secret = jstr(in, "secret"),
            .identity = jstr(in, "identity"),
            .application_sid = json_object_get(in, "app_sid") ? jstr(in, "app_sid") : NULL,
            .incoming = json_is_true(json_object_get(in, "incoming")),
            .ttl = (int)json_integer_value(json_object_get(in, "ttl")),
        };
        sb_buf_t tok = SB_BUF_INIT;
        int rc = sb_twilio_token_make(&t, json_integer_value(json_object_get(in, "now")), &tok);
        if (rc == 0)
            json_object_set_new(out, "token", json_string(tok.data));
        else
            json_object_set_new(out, "rc", json_string(sb_errname(rc)));
        sb_buf_free(&tok);
    } else {
        json_object_set_new(out, "rc", json_string("unknown op"));
    }
}

static int oracle(void)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, stdin)) > 0) {
        json_error_t err;
        json_t *in = json_loadb(line, (size_t)n, 0, &err);
        json_t *out = json_object();
        if (in == NULL)
            json_object_set_new(out, "rc", json_string("bad json"));
        else
            oracle_line(in, out);
        char *s = json_dumps(out, JSON_COMPACT);
        printf("%s\n", s);
        fflush(stdout);
        free(s);
        json_decref(out);
        json_decref(in);
    }
    free(line);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--oracle") == 0)
        return oracle();
    SBTEST_RUN(test_vectors);
    SBTEST_RUN(test_key_lengths);
    SBTEST_RUN(test_key_cache);
    SBTEST_RUN(test_port_variants);
    SBTEST_RUN(test_tampering);
    SBTEST_RUN(test_repeated_arrival_order);
    SBTEST_RUN(test_field_counts);
    return sbtest_summary();
}
