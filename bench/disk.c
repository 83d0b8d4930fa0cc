/* The disk under the benchmarks' cluster: how long one small durable write takes.
 *
 * Every acknowledged webhook, append or note waits for a commit, and a commit waits for
 * PostgreSQL's WAL flush: a write of a few kB and an fdatasync.  This probe does the same on an
 * idle machine — 8 kB written at the next offset of a 16 MB file, then fdatasync, one at a time —
 * and prints the latency percentiles and how many flushes took over 20 and 100 ms.  A flush that
 * stalls for 150 ms stalls every commit behind it, which no software above the disk can hide, and
 * shows in the latency-corrected p99 of the runs that follow; run.sh prints this first so that a
 * run's figures can be read against the disk it had.
 *
 * Usage: bench_disk [CONNINFO (ignored)] [SECONDS]   in $SWITCHBOARD_DATA_DIR (or the current
 * directory).  Prints key=value. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BLOCK 8192
#define FILE_BYTES (16 * 1024 * 1024)
#define MAX_SAMPLES 2000000

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    double secs = argc > 2 ? atof(argv[2]) / 2 : 5; /* half a run's length: it only sets the scene */
    if (secs < 1)
        secs = 1;
    const char *dir = getenv("SWITCHBOARD_DATA_DIR");
    char path[4096];
    snprintf(path, sizeof(path), "%s/bench_disk.probe", dir != NULL && dir[0] != '\0' ? dir : ".");
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "bench_disk: cannot create %s: %s\n", path, strerror(errno));
        return 1;
    }
    double *lat = malloc(MAX_SAMPLES * sizeof(*lat));
    static char block[BLOCK];
    memset(block, 'x', sizeof(block));
    int rc = 1;
    if (lat == NULL)
        goto done;
    size_t n = 0;
    off_t off = 0;
    double end = now_ms() + secs * 1e3;
    while (n < MAX_SAMPLES) {
        double t = now_ms();
        if (t >= end)
            break;
        if (pwrite(fd, block, BLOCK, off) != BLOCK || fdatasync(fd) != 0) {
            fprintf(stderr, "bench_disk: %s: %s\n", path, strerror(errno));
            goto done;
        }
        lat[n++] = now_ms() - t;
        off = (off + BLOCK) % FILE_BYTES;
    }
    if (n == 0)
        goto done;
    size_t over20 = 0, over100 = 0;
    for (size_t i = 0; i < n; i++) {
        over20 += lat[i] > 20;
        over100 += lat[i] > 100;
    }
    qsort(lat, n, sizeof(*lat), cmp_double);
    printf(
        "disk write_8k_fdatasync seconds=%.0f flushes=%zu p50_ms=%.2f p99_ms=%.2f p999_ms=%.2f max_ms=%.1f "
        "over_20ms=%zu over_100ms=%zu\n",
        secs, n, lat[n / 2], lat[n * 99 / 100], lat[n * 999 / 1000], lat[n - 1], over20, over100);
    rc = 0;
done:
    free(lat);
    close(fd);
    unlink(path);
    return rc;
}
