/* sbtest_append: appends events to the log through the real group-commit appender, for tests and
 * benchmarks that need events to flow while there is no write API to make them.
 *
 *   sbtest_append CONNINFO --workspace UUID[,UUID...] [options]
 *     --count N           events to append (default 1)
 *     --streams LIST      stream names to cycle through (default: one new contact-<uuid>)
 *     --new-streams K     K fresh streams, categories cycling through --categories (with several
 *                         workspaces, stream i belongs to workspace i mod W; default K = W)
 *     --categories LIST   categories for --new-streams (default contact)
 *     --types LIST        event types to cycle through (default ContactUpdated)
 *     --rate R            events per second (default: as fast as the log takes them)
 *     --in-flight C       commands outstanding at once (default 1: strictly one after another)
 *     --payload-bytes B   pad each payload with B bytes of text (default 0)
 *     --print             print "POSITION STREAM TYPE" for each committed event, in commit order
 *     --latency           at the end, print "append_latency_ms p50=.. p99=.. max=.." on stderr: from
 *                         submission to the appender's callback (the commit), per event
 *     --commit-log FILE   write "SEQ COMMIT_US" per committed event to FILE (wall-clock microseconds
 *                         when the appender's callback ran), for receivers to split their latency
 *
 * Each event is one command (one event) on its stream, with payload {"seq": i, "sent_us": wall
 * clock microseconds at submission, "pad": "..."} and metadata {"source": "sbtest_append"}; the
 * receiver of an event can compute append-to-delivery latency from sent_us.  Exits 0 once every
 * event is committed, 1 if any append failed. */
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/loop.h"
#include "core/uuid.h"
#include "events/append.h"
#include "events/stream.h"

#define MAX_LIST 256
#define MAX_WS 20000

typedef struct slot_s {
    sb_append_t a;
    sb_new_event_t ev;
    msgpack_sbuffer payload;
    long seq;
    int64_t sent_us;
} slot_t;

static sb_loop_t loop;
static sb_appender_t *ap;
static uv_timer_t timer;
static sb_uuid_t workspaces[MAX_WS];
static int nws;
static char *streams[MAX_WS];
static int nstreams;
static char *types[MAX_LIST];
static int ntypes;
static long count = 1, submitted, done, failures;
static double rate;
static int in_flight = 1, outstanding;
static size_t pad;
static char *padding;
static int print, latency;
static uint32_t *latencies_us; /* with --latency: one per committed event */
static FILE *commit_log;
static long nlatencies;
static uint64_t start_ns;
static slot_t *slots;
static int nfree;
static slot_t **free_slots;
static bool *stream_busy;
static char metadata[32];
static size_t metadata_len;

static int split(char *s, char **out, int max)
{
    int n = 0;
    for (char *tok = strtok(s, ","); tok != NULL && n < max; tok = strtok(NULL, ","))
        out[n++] = tok;
    return n;
}

static void pack_str(msgpack_packer *pk, const char *s, size_t n)
{
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void submit_more(void);

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void on_appended(sb_append_t *a, int status)
{
    slot_t *s = a->data;
    outstanding--;
    done++;
    stream_busy[s->seq % nstreams] = false;
    if (status != 0) {
        fprintf(stderr, "sbtest_append: event %ld: %s%s%s\n", s->seq, sb_strerror(status),
                a->error ? ": " : "", a->error ? a->error : "");
        failures++;
    } else {
        if (print)
            printf("%lld %s %s\n", (long long)a->first_position, a->stream, s->ev.type);
        int64_t now = sb_clock_now_us();
        if (commit_log != NULL)
            fprintf(commit_log, "%ld %lld\n", s->seq, (long long)now);
        if (latencies_us != NULL) {
            int64_t us = now - s->sent_us;
            latencies_us[nlatencies++] = us < 0 ? 0 : us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
        }
    }
    free_slots[nfree++] = s;
    if (done == count) {
        uv_timer_stop(&timer);
        uv_close((uv_handle_t *)&timer, NULL);
        sb_appender_close(ap, NULL, NULL);
        return;
    }
    submit_more();
}

/* Submits while the rate, the in-flight limit and the streams allow.  A stream has one command
 * outstanding at a time, so each stream's events commit in seq order. */
static void submit_more(void)
{
    double elapsed = (double)(sb_clock_mono_ns() - start_ns) / 1e9;
    while (submitted < count && outstanding < in_flight && nfree > 0) {
        if (rate > 0 && (double)submitted >= elapsed * rate + 1)
            return; /* the timer comes back */
        if (stream_busy[submitted % nstreams])
            return;
        slot_t *s = free_slots[--nfree];
        s->seq = submitted++;
        stream_busy[s->seq % nstreams] = true;
        s->payload.size = 0;
        msgpack_packer pk;
        msgpack_packer_init(&pk, &s->payload, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, pad > 0 ? 3 : 2);
        pack_str(&pk, "seq", 3);
        msgpack_pack_int64(&pk, s->seq);
        pack_str(&pk, "sent_us", 7);
        s->sent_us = sb_clock_now_us();
        msgpack_pack_int64(&pk, s->sent_us);
        if (pad > 0) {
            pack_str(&pk, "pad", 3);
            pack_str(&pk, padding, pad);
        }
        s->ev = (sb_new_event_t){types[s->seq % ntypes], s->payload.data, s->payload.size, metadata,
                                 metadata_len};
        memset(&s->a, 0, sizeof(s->a));
        s->a.stream = streams[s->seq % nstreams];
        s->a.expected_version = SB_VERSION_ANY;
        s->a.has_workspace = true;
        s->a.workspace = workspaces[(s->seq % nstreams) % nws];
        s->a.events = &s->ev;
        s->a.nevents = 1;
        s->a.cb = on_appended;
        s->a.data = s;
        outstanding++;
        sb_append(ap, &s->a);
    }
}

static void on_timer(uv_timer_t *t)
{
    submit_more();
}

static void usage(void)
{
    fprintf(stderr,
            "usage: sbtest_append CONNINFO --workspace UUID [--count N] [--streams LIST | --new-streams K "
            "[--categories LIST]] [--types LIST] [--rate R] [--in-flight C] [--payload-bytes B] "
            "[--print] [--latency] [--commit-log FILE]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        usage();
    const char *conninfo = argv[1];
    bool have_ws = false;
    int new_streams = 0;
    static char *cats[MAX_LIST] = {"contact"};
    int ncats = 1;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--print") == 0) {
            print = 1;
            continue;
        }
        if (strcmp(a, "--latency") == 0) {
            latency = 1;
            continue;
        }
        if (strcmp(a, "--commit-log") == 0 && v != NULL) {
            if ((commit_log = fopen(v, "w")) == NULL) {
                perror(v);
                return 2;
            }
            i++;
            continue;
        }
        if (v == NULL)
            usage();
        i++;
        if (strcmp(a, "--workspace") == 0) {
            static char *ws[MAX_WS];
            int n = split(strdup(v), ws, MAX_WS);
            have_ws = n > 0;
            for (int k = 0; k < n; k++)
                have_ws = have_ws && sb_uuid_parse(ws[k], strlen(ws[k]), &workspaces[nws++]) == 0;
        } else if (strcmp(a, "--count") == 0)
            count = atol(v);
        else if (strcmp(a, "--streams") == 0)
            nstreams = split(strdup(v), streams, MAX_WS);
        else if (strcmp(a, "--new-streams") == 0)
            new_streams = atoi(v);
        else if (strcmp(a, "--categories") == 0)
            ncats = split(strdup(v), cats, MAX_LIST);
        else if (strcmp(a, "--types") == 0)
            ntypes = split(strdup(v), types, MAX_LIST);
        else if (strcmp(a, "--rate") == 0)
            rate = atof(v);
        else if (strcmp(a, "--in-flight") == 0)
            in_flight = atoi(v);
        else if (strcmp(a, "--payload-bytes") == 0)
            pad = (size_t)atol(v);
        else
            usage();
    }
    if (!have_ws || count < 0 || in_flight < 1 || new_streams < 0 || new_streams > MAX_WS || ncats < 1)
        usage();
    if (nstreams == 0) {
        int k = new_streams > 0 ? new_streams : nws;
        for (int i = 0; i < k; i++) {
            sb_uuid_t id;
            sb_uuid_v7(&id);
            streams[i] = malloc(SB_STREAM_NAME_MAX); /* reachable from the static array */
            sb_stream_format(cats[i % ncats], &id, streams[i]);
        }
        nstreams = k;
    }
    if (ntypes == 0)
        types[ntypes++] = "ContactUpdated";
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (count == 0)
        return 0;

    padding = malloc(pad + 1);
    memset(padding, 'x', pad);
    /* {"source": "sbtest_append"} */
    msgpack_sbuffer mb;
    msgpack_sbuffer_init(&mb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &mb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    pack_str(&pk, "source", 6);
    pack_str(&pk, "sbtest_append", 13);
    memcpy(metadata, mb.data, mb.size);
    metadata_len = mb.size;
    msgpack_sbuffer_destroy(&mb);

    slots = calloc((size_t)in_flight, sizeof(*slots));
    free_slots = calloc((size_t)in_flight, sizeof(*free_slots));
    stream_busy = calloc((size_t)nstreams, sizeof(*stream_busy));
    for (int i = 0; i < in_flight; i++) {
        msgpack_sbuffer_init(&slots[i].payload);
        free_slots[nfree++] = &slots[i];
    }
    if (sb_loop_init_standalone(&loop) != 0)
        return 1;
    sb_loop_set_current(&loop);
    ap = sb_appender_open(&loop.uv, conninfo);
    if (ap == NULL)
        return 1;
    uv_timer_init(&loop.uv, &timer);
    uv_timer_start(&timer, on_timer, 1, 1);
    if (latency && (latencies_us = malloc((size_t)count * sizeof(*latencies_us))) == NULL)
        return 1;
    start_ns = sb_clock_mono_ns();
    submit_more();
    uv_run(&loop.uv, UV_RUN_DEFAULT);
    if (latency && nlatencies > 0) {
        qsort(latencies_us, (size_t)nlatencies, sizeof(*latencies_us), cmp_u32);
        fprintf(stderr, "append_latency_ms p50=%.2f p99=%.2f max=%.2f\n",
                latencies_us[nlatencies / 2] / 1000.0, latencies_us[nlatencies * 99 / 100] / 1000.0,
                latencies_us[nlatencies - 1] / 1000.0);
    }
    free(latencies_us);
    if (commit_log != NULL && fclose(commit_log) != 0)
        failures++;
    sb_loop_close_standalone(&loop);
    for (int i = 0; i < in_flight; i++)
        msgpack_sbuffer_destroy(&slots[i].payload);
    free(slots);
    free(free_slots);
    free(stream_busy);
    free(padding);
    return failures == 0 ? 0 : 1;
}
