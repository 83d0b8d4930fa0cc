/* Given-when-then tables for the deciders, and the fold property test.  Header-only, included by
 * tests/unit/test_{workspace,user,contact,call,claim}.c.
 *
 * JSON in the tables is written with single quotes (turned into double quotes before parsing) so the
 * tables stay readable; ids are string-literal macros pasted in. */
#ifndef SB_TEST_DECIDER_HARNESS_H
#define SB_TEST_DECIDER_HARNESS_H

#include "actors/decider.h"
#include "actors/fold.h"
#include "actors/kinds.h"
#include "core/clock.h"
#include "core/error.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int h_failures, h_checks;
static bool h_quiet; /* run_property says nothing about a run that passed */

#define CHECK(cond)                                                                                          \
    do {                                                                                                     \
        h_checks++;                                                                                          \
        if (!(cond)) {                                                                                       \
            h_failures++;                                                                                    \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);                         \
        }                                                                                                    \
    } while (0)

#define OWNER "00000000-0000-7000-8000-000000000001"
#define ADMIN "00000000-0000-7000-8000-000000000002"
#define AGENT "00000000-0000-7000-8000-000000000003"
#define OWNER2 "00000000-0000-7000-8000-000000000004"
#define STRANGER "00000000-0000-7000-8000-000000000009"
#define WS "11111111-1111-7111-8111-111111111111"
#define CONTACT "22222222-2222-7222-8222-222222222222"
#define CALL "33333333-3333-7333-8333-333333333333"
#define M1 "44444444-4444-7444-8444-000000000001"
#define M2 "44444444-4444-7444-8444-000000000002"
#define M3 "44444444-4444-7444-8444-000000000003"
#define N1 "55555555-5555-7555-8555-000000000001"
#define N2 "55555555-5555-7555-8555-000000000002"
#define T0 "2026-03-01T12:00:00.000000Z" /* the default command time */

/* A workspace context with an owner, an admin and an agent, and a three-stage pipeline. */
#define MEMBERS_CTX                                                                                          \
    "{'workspace_id': '" WS "', 'default_country': 'US', 'stages': ['Lead', 'Qualified', 'Won'], "           \
    "'members': [{'user_id': '" OWNER "', 'role': 'owner', 'name': 'Olivia Owner', 'email': "                \
    "'olivia@example.com'}, {'user_id': '" ADMIN "', 'role': 'admin', 'name': 'Adam Admin', 'email': "       \
    "'adam@example.com'}, {'user_id': '" AGENT "', 'role': 'agent', 'name': 'Ana Agent', 'email': "          \
    "'ana.a@example.com'}]}"

/* Table rows leave the trailing optional fields out. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

typedef struct dcase_s {
    const char *name;
    const char *given;  /* [['Type', {data}], ...] or NULL */
    const char *cmd;    /* {'type': ..., ...} */
    const char *user;   /* acting user id, or NULL for the system */
    const char *expect; /* [['Type', {subset of data}], ...] (exactly these events, in order), or
                           {'error': [status, 'code']} or {'error': [status, 'code', 'field']} */
    const char *ctx;    /* context override, or NULL for the file's default */
    const char *now;    /* RFC 3339 command time, or NULL for T0 */
} dcase_t;

/* Parses single-quoted JSON; aborts on a malformed table (a bug in the test, not the code). */
static json_t *jq(const char *text)
{
    char *s = strdup(text);
    for (char *p = s; *p; p++)
        if (*p == '\'')
            *p = '"';
    json_error_t e;
    json_t *j = json_loads(s, JSON_DECODE_ANY, &e);
    if (j == NULL) {
        fprintf(stderr, "bad test json (%s) at %d: %s\n", e.text, e.position, text);
        abort();
    }
    free(s);
    return j;
}

static char *dump(const json_t *j)
{
    return json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY);
}

/* Events from [['Type', {data}], ...]; types point into the parsed array, which must outlive them. */
static int given_events(json_t *given, sb_devent_t *evs, int max)
{
    int n = 0;
    size_t i;
    json_t *pair;
    json_array_foreach(given, i, pair)
    {
        if (n >= max)
            abort();
        evs[n].type = json_string_value(json_array_get(pair, 0));
        evs[n].data = json_array_get(pair, 1);
        evs[n].version = n + 1;
        evs[n].recorded_at_us = 0;
        n++;
    }
    return n;
}

static int64_t h_time(const char *s)
{
    int64_t us = 0;
    if (sb_clock_parse_rfc3339(s, &us) != 0)
        abort();
    return us;
}

/* Runs one case: fold the given events, decide, compare with the expectation.  Also checks that
 * decide leaves the state untouched, that a rejection leaves no events, and that the decided events
 * evolve without trouble. */
static void run_case(const sb_kind_t *k, const dcase_t *c, const char *default_ctx, const char *id)
{
    json_t *given = c->given ? jq(c->given) : json_array();
    json_t *cmd = jq(c->cmd);
    json_t *expect = jq(c->expect);
    json_t *ctxj = c->ctx ? jq(c->ctx) : (default_ctx ? jq(default_ctx) : NULL);
    sb_devent_t evs[64];
    int n = given_events(given, evs, 64);
    json_t *state = sb_fold(k, evs, n);
    char *before = dump(state);
    char stream[128];
    snprintf(stream, sizeof stream, "%s-%s", k->category, id);
    sb_decide_ctx_t ctx = {
        .now_us = h_time(c->now ? c->now : T0),
        .stream = stream,
        .id = id,
        .user_id = c->user,
        .context = ctxj,
    };
    sb_devents_t out = {.n = 0};
    sb_derror_t err;
    memset(&err, 0, sizeof err);
    int rc = k->decide(state, cmd, &ctx, &out, &err);
    char *after = dump(state);
    bool ok = true;
    if (strcmp(before, after) != 0) {
        fprintf(stderr, "[%s] decide modified the state\n", c->name);
        ok = false;
    }
    json_t *want_err = json_object_get(expect, "error");
    if (want_err != NULL) {
        int status = (int)json_integer_value(json_array_get(want_err, 0));
        const char *code = json_string_value(json_array_get(want_err, 1));
        const char *field = json_string_value(json_array_get(want_err, 2)); /* optional */
        if (rc != SB_EREJECTED || err.status != status || strcmp(err.code, code) != 0 || out.n != 0 ||
            (field != NULL && strcmp(err.field, field) != 0)) {
            fprintf(stderr, "[%s] want error %d %s %s, got rc %d: %d %s field '%s' (%s) with %d events\n",
                    c->name, status, code, field ? field : "", rc, err.status, err.code, err.field,
                    err.message, out.n);
            for (int i = 0; i < out.n; i++) {
                char *d = dump(out.items[i].data);
                fprintf(stderr, "    %s %s\n", out.items[i].type, d);
                free(d);
            }
            ok = false;
        }
    } else if (rc != 0) {
        fprintf(stderr, "[%s] want events, got rc %d: %d %s (%s) field '%s'\n", c->name, rc, err.status,
                err.code, err.message, err.field);
        ok = false;
    } else {
        size_t want = json_array_size(expect);
        if ((size_t)out.n != want) {
            fprintf(stderr, "[%s] want %zu events, got %d\n", c->name, want, out.n);
            ok = false;
        }
        for (size_t i = 0; i < want && (int)i < out.n; i++) {
            json_t *w = json_array_get(expect, i);
            const char *type = json_string_value(json_array_get(w, 0));
            if (strcmp(type, out.items[i].type) != 0) {
                fprintf(stderr, "[%s] event %zu: want %s, got %s\n", c->name, i, type, out.items[i].type);
                ok = false;
                continue;
            }
            const char *key;
            json_t *val;
            json_object_foreach(json_array_get(w, 1), key, val)
            {
                json_t *got = json_object_get(out.items[i].data, key);
                if (got == NULL || !json_equal(got, val)) {
                    char *g = got ? dump(got) : strdup("(absent)"), *v = dump(val);
                    fprintf(stderr, "[%s] event %zu %s.%s: want %s, got %s\n", c->name, i, type, key, v, g);
                    free(g);
                    free(v);
                    ok = false;
                }
            }
        }
        if (!ok)
            for (int i = 0; i < out.n; i++) {
                char *d = dump(out.items[i].data);
                fprintf(stderr, "    got %s %s\n", out.items[i].type, d);
                free(d);
            }
        for (int i = 0; i < out.n; i++)
            k->evolve(state, &out.items[i]);
    }
    h_checks++;
    if (!ok)
        h_failures++;
    sb_devents_clear(&out);
    free(before);
    free(after);
    json_decref(state);
    json_decref(given);
    json_decref(cmd);
    json_decref(expect);
    json_decref(ctxj);
}

static void run_cases(const sb_kind_t *k, const dcase_t *cases, size_t n, const char *default_ctx,
                      const char *id)
{
    for (size_t i = 0; i < n; i++)
        run_case(k, &cases[i], default_ctx, id);
}

/* ---- the fold property ------------------------------------------------------------------------ */

/* xorshift64*: a seeded PRNG so a failure reproduces. */
static uint64_t h_rng_state;
static void h_seed(uint64_t s)
{
    h_rng_state = s ? s : 0x9E3779B97F4A7C15ull;
}
static uint32_t h_rand(uint32_t n)
{
    h_rng_state ^= h_rng_state >> 12;
    h_rng_state ^= h_rng_state << 25;
    h_rng_state ^= h_rng_state >> 27;
    return (uint32_t)((h_rng_state * 0x2545F4914F6CDD1Dull) >> 33) % (n ? n : 1);
}

/* Generates the next command from the live state (the caller owns it), and the acting user. */
typedef json_t *(*h_gen_fn)(const json_t *state, int step, const char **user);

typedef struct h_log_s {
    sb_devent_t *items;
    char **dumps; /* each payload as first decided: stored events never change */
    int n, cap;
} h_log_t;

static void h_log_push(h_log_t *log, const char *type, json_t *data)
{
    if (log->n == log->cap) {
        log->cap = log->cap ? log->cap * 2 : 256;
        log->items = realloc(log->items, (size_t)log->cap * sizeof *log->items);
        log->dumps = realloc(log->dumps, (size_t)log->cap * sizeof *log->dumps);
    }
    log->dumps[log->n] = dump(data);
    log->items[log->n].type = type;
    log->items[log->n].data = data;
    log->items[log->n].version = log->n + 1;
    log->items[log->n].recorded_at_us = 0;
    log->n++;
}

static void h_log_free(h_log_t *log)
{
    for (int i = 0; i < log->n; i++) {
        json_decref(log->items[i].data);
        free(log->dumps[i]);
    }
    free(log->items);
    free(log->dumps);
}

/* Runs `steps` generated commands, evolving the live state event by event, and checks that folding
 * every emitted event from scratch (as stored, and as read back after a JSON round trip, the way the
 * log returns them) gives the same state, at checkpoints and at the end.  Returns how many commands
 * decided at least one event. */
static int run_property(const sb_kind_t *k, h_gen_fn gen, const char *ctx_text, const char *id, int steps,
                        uint64_t seed, size_t max_state_bytes)
{
    h_seed(seed);
    json_t *ctxj = ctx_text ? jq(ctx_text) : NULL;
    json_t *state = k->initial();
    h_log_t log = {0};
    int productive = 0;
    char stream[128];
    snprintf(stream, sizeof stream, "%s-%s", k->category, id);
    int64_t now = h_time(T0);
    size_t largest = 0;
    for (int step = 0; step < steps; step++) {
        const char *user = NULL;
        json_t *cmd = gen(state, step, &user);
        now += 1000000 + (int64_t)h_rand(60) * 1000000;
        sb_decide_ctx_t ctx = {.now_us = now, .stream = stream, .id = id, .user_id = user, .context = ctxj};
        sb_devents_t out = {.n = 0};
        sb_derror_t err;
        int rc = k->decide(state, cmd, &ctx, &out, &err);
        CHECK(rc == 0 || rc == SB_EREJECTED);
        if (rc == 0 && out.n > 0)
            productive++;
        for (int i = 0; i < out.n; i++) {
            k->evolve(state, &out.items[i]);
            h_log_push(&log, out.items[i].type, out.items[i].data); /* the log owns it now */
            out.items[i].data = NULL;
        }
        out.n = 0;
        json_decref(cmd);
        if (step % 250 == 249 || step == steps - 1) {
            json_t *folded = sb_fold(k, log.items, log.n);
            char *a = dump(state), *b = dump(folded);
            CHECK(strcmp(a, b) == 0);
            if (strcmp(a, b) != 0)
                fprintf(stderr, "step %d: live state\n  %s\nfolded state\n  %s\n", step, a, b);
            if (strlen(a) > largest)
                largest = strlen(a);
            free(a);
            free(b);
            json_decref(folded);
        }
    }
    /* Evolving never changed an event it was given (state and events share no container). */
    int changed = 0;
    for (int i = 0; i < log.n; i++) {
        char *now_dump = dump(log.items[i].data);
        if (strcmp(now_dump, log.dumps[i]) != 0 && changed++ == 0)
            fprintf(stderr, "event %d (%s) changed after it was decided:\n  %s\n  %s\n", i, log.items[i].type,
                    log.dumps[i], now_dump);
        free(now_dump);
    }
    CHECK(changed == 0);
    /* As read back from the log: every payload re-parsed. */
    sb_devent_t *copy = calloc((size_t)log.n + 1, sizeof *copy);
    for (int i = 0; i < log.n; i++) {
        char *s = dump(log.items[i].data);
        copy[i] = log.items[i];
        copy[i].data = json_loads(s, 0, NULL);
        free(s);
    }
    json_t *folded = sb_fold(k, copy, log.n);
    char *a = dump(state), *b = dump(folded);
    CHECK(strcmp(a, b) == 0);
    CHECK(largest <= max_state_bytes);
    if (largest > max_state_bytes)
        fprintf(stderr, "state grew to %zu bytes (bound %zu)\n", largest, max_state_bytes);
    if (!h_quiet)
        fprintf(stderr, "%s property: %d steps, %d productive, %d events, largest state %zu bytes\n",
                k->category, steps, productive, log.n, largest);
    free(a);
    free(b);
    json_decref(folded);
    for (int i = 0; i < log.n; i++)
        json_decref(copy[i].data);
    free(copy);
    h_log_free(&log);
    json_decref(state);
    json_decref(ctxj);
    return productive;
}

static int h_finish(const char *name)
{
    fprintf(stderr, "%s: %d checks, %d failed\n", name, h_checks, h_failures);
    return h_failures == 0 ? 0 : 1;
}

#endif
