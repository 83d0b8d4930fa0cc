/* The contact decider's inbound path alone, as the webhook benchmark drives it: many contacts'
 * states (each with a history of inbound messages, built interleaved as a live server builds them,
 * so that one state's objects are scattered over the heap), and ReceiveMessage commands on random
 * contacts decided in rounds of `batch` (the commands in flight) and evolved after the round, as a
 * commit returns them.  No I/O: this isolates the decider's CPU and cache misses, for A/B runs of
 * two builds and for callgrind (`--cache-sim=yes`).
 *
 *   bench_contact_inbound [--contacts N] [--history N] [--ops N] [--batch N] [--seed N] [--keep 1]
 *
 * Prints "contact_inbound: ... ns_per_op=..." for the measured phase. */
#include "actors/decider.h"
#include "actors/kinds.h"
#include "core/jalloc.h"
#include "core/uuid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    json_t *state;
    char id[SB_UUID_STRLEN + 1];
    char phone[24];
} contact_t;

/* Contacts are picked with random(), seeded by --seed: the same sequence for both builds of an A/B. */
static uint64_t next_rand(void)
{
    return (uint64_t)random();
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts); /* CPU time: the machine may be shared */
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A command as src/http/webhooks_twilio.c builds it. */
static json_t *receive_cmd(const contact_t *c, uint64_t n)
{
    char sid[40], mid[SB_UUID_STRLEN + 1];
    sb_uuid_t u;
    snprintf(sid, sizeof sid, "SM%032llx", (unsigned long long)n);
    sb_uuid_v4(&u);
    sb_uuid_format(&u, mid);
    json_t *cmd = json_object();
    json_object_set_new(cmd, "type", json_string("ReceiveMessage"));
    json_object_set_new(cmd, "message_id", json_string(mid));
    json_object_set_new(cmd, "channel", json_string("sms"));
    json_object_set_new(cmd, "from", json_string(c->phone));
    json_object_set_new(cmd, "to", json_string("+12125550100"));
    json_object_set_new(cmd, "body", json_string("Hello, is this still available?"));
    json_object_set_new(cmd, "provider_id", json_string(sid));
    json_object_set_new(cmd, "from_listed", json_true());
    return cmd;
}

static int64_t clock_us = 1763800000000000LL;

/* Decides cmd on c; the events go to out (the caller evolves and clears them). */
static void decide(const contact_t *c, const json_t *cmd, const json_t *context, sb_devents_t *out)
{
    char stream[SB_UUID_STRLEN + 16];
    snprintf(stream, sizeof stream, "contact-%s", c->id);
    sb_decide_ctx_t ctx = {.now_us = clock_us += 1000, .stream = stream, .id = c->id, .context = context};
    sb_derror_t err;
    memset(out, 0, sizeof *out);
    if (sb_kind_contact.decide(c->state, cmd, &ctx, out, &err) != 0 || out->n != 1) {
        fprintf(stderr, "contact_inbound: decide failed: %s %s\n", err.code, err.message);
        exit(1);
    }
}

static void evolve(contact_t *c, sb_devents_t *evs)
{
    for (int i = 0; i < evs->n; i++)
        sb_kind_contact.evolve(c->state, &evs->items[i]);
    sb_devents_clear(evs);
}

/* Rounds of `batch` commands on distinct random contacts: decided, then evolved. */
static void rounds(contact_t *cs, int ncontacts, long ops, int batch, const json_t *context, uint64_t *seq)
{
    int *pick = malloc(sizeof(int) * (size_t)batch);
    json_t **cmds = malloc(sizeof(json_t *) * (size_t)batch);
    sb_devents_t *evs = malloc(sizeof(sb_devents_t) * (size_t)batch);
    for (long done = 0; done < ops; done += batch) {
        int n = ops - done < batch ? (int)(ops - done) : batch;
        for (int i = 0; i < n; i++) {
            pick[i] = (int)(next_rand() % (uint64_t)ncontacts);
            for (int j = 0; j < i; j++)
                if (pick[j] == pick[i]) {
                    pick[i] = (int)(next_rand() % (uint64_t)ncontacts);
                    j = -1;
                }
            cmds[i] = receive_cmd(&cs[pick[i]], (*seq)++);
        }
        for (int i = 0; i < n; i++)
            decide(&cs[pick[i]], cmds[i], context, &evs[i]);
        for (int i = 0; i < n; i++)
            json_decref(cmds[i]);
        for (int i = 0; i < n; i++)
            evolve(&cs[pick[i]], &evs[i]);
    }
    free(pick);
    free(cmds);
    free(evs);
}

/* The measured phase, a function of its own for callgrind's --toggle-collect=measure. */
__attribute__((noinline)) static double measure(contact_t *cs, int ncontacts, long ops, int batch,
                                                const json_t *context, uint64_t *seq)
{
    double t0 = now_s();
    rounds(cs, ncontacts, ops, batch, context, seq);
    return now_s() - t0;
}

int main(int argc, char **argv)
{
    int ncontacts = 2000, history = 56, batch = 32, keep = 0;
    long ops = 200000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--contacts") == 0)
            ncontacts = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--history") == 0)
            history = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--ops") == 0)
            ops = atol(argv[i + 1]);
        else if (strcmp(argv[i], "--batch") == 0)
            batch = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--keep") == 0) /* 1: exit without freeing the states (profiles) */
            keep = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--seed") == 0)
            srandom((unsigned)strtoul(argv[i + 1], NULL, 10));
    }
    if (ncontacts < batch || batch < 1) {
        fprintf(stderr, "contact_inbound: --contacts must be at least --batch\n");
        return 2;
    }
    sb_jalloc_install();
    char ws[SB_UUID_STRLEN + 1];
    sb_uuid_t u;
    sb_uuid_v4(&u);
    sb_uuid_format(&u, ws);
    json_t *context =
        json_pack("{s:s, s:s, s:[], s:[]}", "workspace_id", ws, "default_country", "US", "members", "stages");
    contact_t *cs = calloc((size_t)ncontacts, sizeof *cs);
    for (int i = 0; i < ncontacts; i++) {
        contact_t *c = &cs[i];
        sb_uuid_v7(&u);
        sb_uuid_format(&u, c->id);
        snprintf(c->phone, sizeof c->phone, "+1415%03d%04d", 200 + i / 10000, i % 10000);
        c->state = sb_kind_contact.initial();
        sb_devent_t ev = {.type = "ContactCreated",
                          .data = json_pack("{s:s, s:s, s:n, s:[s], s:[], s:[], s:n, s:n, s:s}", "contact_id",
                                            c->id, "workspace_id", ws, "name", "phones", c->phone, "emails",
                                            "tags", "stage", "assignee_id", "created_at",
                                            "2026-11-22T07:00:00Z")};
        sb_kind_contact.evolve(c->state, &ev);
        json_decref(ev.data);
    }
    uint64_t seq = 1;
    /* The history, interleaved over the contacts as live traffic builds it. */
    rounds(cs, ncontacts, (long)ncontacts * history, batch, context, &seq);
    double secs = measure(cs, ncontacts, ops, batch, context, &seq);
    printf("contact_inbound: contacts=%d history=%d batch=%d ops=%ld ns_per_op=%.0f\n", ncontacts, history,
           batch, ops, secs * 1e9 / (double)ops);
    fflush(stdout);
    if (keep)
        _exit(0);
    for (int i = 0; i < ncontacts; i++)
        json_decref(cs[i].state);
    free(cs);
    json_decref(context);
    return 0;
}
