/* bench/append: single-event commands through the group-commit appender.
 *
 *   bench_append CONNINFO IN_FLIGHT SECONDS [LOOPS]
 *
 * Keeps IN_FLIGHT commands outstanding (spread over LOOPS threads, each with its own loop and
 * appender, like the server's worker loops) for SECONDS, each command one event on a fresh stream,
 * and prints one line: commands/s, and p50/p99/max latency from submission to the commit's
 * acknowledgement. */
#include "core/clock.h"
#include "core/error.h"
#include "core/loop.h"
#include "core/uuid.h"
#include "events/append.h"
#include "events/stream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct slot_s {
    sb_append_t a;
    sb_new_event_t ev;
    char stream[SB_STREAM_NAME_MAX];
    uint64_t t0;
    struct worker_s *w;
} slot_t;

typedef struct worker_s {
    sb_loop_t *loop;
    sb_appender_t *ap;
    slot_t *slots;
    int nslots;
    int inflight;
    uint64_t deadline;
    uint32_t *lat_us;
    size_t nlat, caplat;
    long failures;
} worker_t;

static const char payload[] = {(char)0x82, (char)0xa4, 'b', 'o', 'd',        'y', (char)0xa5, 'h',
                               'e',        'l',        'l', 'o', (char)0xa1, 'n', 0x2a};
static const char *conninfo;
static int total_inflight;
static int seconds;
static sb_loops_t loops;
static worker_t *workers;
static _Atomic int running;

static void submit(worker_t *w, slot_t *s);

static void on_done(sb_append_t *a, int status)
{
    slot_t *s = a->data;
    worker_t *w = s->w;
    uint64_t now = sb_clock_mono_ns();
    w->inflight--;
    if (status != 0) {
        w->failures++;
    } else {
        if (w->nlat == w->caplat) {
            w->caplat = w->caplat ? w->caplat * 2 : 1 << 16;
            w->lat_us = realloc(w->lat_us, w->caplat * sizeof(*w->lat_us));
        }
        w->lat_us[w->nlat++] = (uint32_t)((now - s->t0) / 1000);
    }
    if (now < w->deadline)
        submit(w, s);
    else if (w->inflight == 0) {
        sb_appender_close(w->ap, NULL, NULL);
        w->ap = NULL;
        atomic_fetch_sub(&running, 1);
    }
}

static void submit(worker_t *w, slot_t *s)
{
    sb_uuid_t id;
    sb_uuid_v7(&id);
    sb_stream_format("bench", &id, s->stream);
    s->ev = (sb_new_event_t){"BenchAppended", payload, sizeof(payload), NULL, 0};
    s->a = (sb_append_t){.stream = s->stream,
                         .expected_version = SB_VERSION_NO_STREAM,
                         .events = &s->ev,
                         .nevents = 1,
                         .cb = on_done,
                         .data = s};
    s->t0 = sb_clock_mono_ns();
    w->inflight++;
    sb_append(w->ap, &s->a);
}

static void on_start(sb_loop_t *loop, void *data)
{
    worker_t *w = &workers[loop->index];
    w->loop = loop;
    w->ap = sb_appender_open(&loop->uv, conninfo);
    w->nslots = total_inflight / loops.n + (loop->index < total_inflight % loops.n);
    w->slots = calloc((size_t)(w->nslots ? w->nslots : 1), sizeof(slot_t));
    w->deadline = sb_clock_mono_ns() + (uint64_t)seconds * 1000000000u;
    for (int i = 0; i < w->nslots; i++) {
        w->slots[i].w = w;
        submit(w, &w->slots[i]);
    }
    if (w->nslots == 0) {
        sb_appender_close(w->ap, NULL, NULL);
        w->ap = NULL;
        atomic_fetch_sub(&running, 1);
    }
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: bench_append CONNINFO IN_FLIGHT SECONDS [LOOPS]\n");
        return 2;
    }
    conninfo = argv[1];
    total_inflight = atoi(argv[2]);
    seconds = atoi(argv[3]);
    int nloops = argc > 4 ? atoi(argv[4]) : 1;
    if (nloops > total_inflight)
        nloops = total_inflight;
    workers = calloc((size_t)nloops, sizeof(worker_t));
    atomic_store(&running, nloops);
    uint64_t t0 = sb_clock_mono_ns();
    sb_loops_init(&loops, nloops, on_start, NULL);
    sb_loops_start(&loops);
    /* The loops end on their own once every command is answered; poll for that from here. */
    while (atomic_load(&running) > 0)
        uv_sleep(20);
    double elapsed = (double)(sb_clock_mono_ns() - t0) / 1e9;
    sb_loops_stop(&loops);
    sb_loops_join(&loops);

    size_t n = 0;
    long failures = 0;
    for (int i = 0; i < nloops; i++)
        n += workers[i].nlat, failures += workers[i].failures;
    uint32_t *all = malloc((n ? n : 1) * sizeof(*all));
    size_t k = 0;
    for (int i = 0; i < nloops; i++) {
        memcpy(all + k, workers[i].lat_us, workers[i].nlat * sizeof(*all));
        k += workers[i].nlat;
        free(workers[i].lat_us);
        free(workers[i].slots);
    }
    qsort(all, n, sizeof(*all), cmp_u32);
    double p50 = n ? all[n / 2] / 1000.0 : 0, p99 = n ? all[(size_t)(n * 0.99)] / 1000.0 : 0;
    double mx = n ? all[n - 1] / 1000.0 : 0;
    printf("append in_flight=%d loops=%d commands=%zu failures=%ld seconds=%.1f commands_per_s=%.0f "
           "p50_ms=%.2f p99_ms=%.2f max_ms=%.2f\n",
           total_inflight, nloops, n, failures, elapsed, n / elapsed, p50, p99, mx);
    free(all);
    free(workers);
    return failures > 0;
}
