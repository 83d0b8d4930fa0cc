/* bench/webhook_load: the closed-loop HTTP/1.1 load generator of bench/webhooks.sh.
 *
 *   bench_webhook_load [-c CONNS] [-t THREADS] [-d SECONDS] [-g GRACE_SECONDS] [-p PATH] FILE URL
 *
 * FILE holds one pre-signed webhook a line, "<X-Twilio-Signature>\t<form body>"
 * (bench/webhooks_gen.mjs); every line becomes one complete POST, formatted before the timed phase.
 * CONNS keep-alive connections to URL (http://HOST:PORT), spread over THREADS libuv loops, each send
 * the next line's request only once the previous answer is complete (no pipelining, like Twilio and
 * wrk), until SECONDS have passed or the file is done; every line is sent at most once.  Answers
 * still outstanding then are waited for (GRACE_SECONDS at most; those left count as timeouts), so
 * every request sent is either answered or counted as an error.
 *
 * Prints one line of key=value pairs: requests (complete answers), duration_s, requests_per_s,
 * errors_status (answers other than 2xx), errors_connect/read/write/parse/timeout (requests without
 * an answer, and failed connections: never hidden), the mean and percentiles of the latency from a
 * log-bucketed histogram (1.6 % resolution) and the same corrected the way wrk 4 corrects its own
 * (corr_*, see wrk_correct), and the client's own CPU time during the timed phase (getrusage), in
 * clock ticks like wrk's figure, in µs, and in µs per request.  A connection the server closes is
 * reopened.  Exits 0 once it has reported, failures or not; 2 on bad usage or an unreadable file. */
#include "http1_response.h"

#include <netdb.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <uv.h>

#define RBUF_SIZE 16384 /* a response head must fit */
#define HIST_SUB 64     /* sub-buckets per power of two: 1/64 resolution */
#define HIST_LEN (40 * HIST_SUB)

enum { C_CONNECTING, C_IDLE, C_WAITING, C_CLOSING, C_DONE };
enum { E_CONNECT, E_READ, E_WRITE, E_PARSE, E_TIMEOUT, E_COUNT };
static const char *const error_names[E_COUNT] = {"connect", "read", "write", "parse", "timeout"};

typedef struct worker_s worker_t;

typedef struct conn_s {
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    uv_write_t write_req;
    uv_timer_t retry; /* after a refused connection */
    worker_t *w;
    int state;
    bool reopen; /* on close: connect again (false once the run is over) */
    uint64_t t0;
    hr_t resp;
    size_t len;
    char buf[RBUF_SIZE];
} conn_t;

struct worker_s {
    uv_loop_t loop;
    uv_timer_t grace;
    uv_thread_t thread;
    conn_t *conns;
    int nconns, open; /* open: connections not yet C_DONE (their handles may still be closing) */
    bool stopping;
    uint64_t requests, non2xx, errors[E_COUNT];
    uint64_t hist[HIST_LEN], max_ns, sum_ns;
};

static struct sockaddr_storage addr;
static char *reqs;    /* every request, back to back */
static size_t *reqof; /* request i is reqs[reqof[i]..reqof[i + 1]) */
static size_t nreqs;
static _Atomic size_t next_req;
static _Atomic bool exhausted;
static uint64_t deadline_ns, grace_ms;

static void conn_open(conn_t *c);
static void conn_send(conn_t *c);

static int hist_index(uint64_t v)
{
    if (v < 2 * HIST_SUB)
        return (int)v;
    int shift = 63 - __builtin_clzll(v) - 6; /* v >> shift is in [64, 128) */
    int i = shift * HIST_SUB + (int)(v >> shift);
    return i < HIST_LEN ? i : HIST_LEN - 1;
}

static double hist_value(int i) /* the middle of bucket i */
{
    if (i < 2 * HIST_SUB)
        return i;
    int shift = i / HIST_SUB - 1;
    uint64_t lo = (uint64_t)(i - shift * HIST_SUB) << shift;
    return (double)lo + (double)((1ull << shift) - 1) / 2;
}

static double percentile_ms(const uint64_t *hist, uint64_t total, uint64_t max_ns, double pct)
{
    if (total == 0)
        return 0;
    uint64_t want = (uint64_t)((double)total * pct / 100.0 + 0.999999), seen = 0;
    for (int i = 0; i < HIST_LEN; i++) {
        if ((seen += hist[i]) >= want) {
            double v = hist_value(i);
            return (v > (double)max_ns ? (double)max_ns : v) / 1e6;
        }
    }
    return (double)max_ns / 1e6;
}

/* wrk 4 "corrects" the latencies it reports for coordinated omission: with `expected` the mean time
 * between one connection's requests, every answer slower than twice that adds phantom answers at its
 * latency less 1, 2, ... times `expected` (the requests an open-loop client would have sent in the
 * meantime).  This does the same on a copy of the histogram (out), so that the two clients' figures
 * can be set side by side; the plain percentiles are what the answers took.  Returns the count of
 * answers, phantoms included, and adds the phantoms' latencies to *sum_ns. */
static uint64_t wrk_correct(const uint64_t *hist, uint64_t *out, uint64_t expected_ns, double *sum_ns)
{
    uint64_t total = 0;
    memcpy(out, hist, HIST_LEN * sizeof(*out));
    for (int i = 0; i < HIST_LEN; i++) {
        total += hist[i];
        double v = hist_value(i), e = (double)expected_ns;
        if (hist[i] == 0 || expected_ns == 0 || v < 2 * e)
            continue;
        for (double m = v - e; m > e; m -= e) {
            out[hist_index((uint64_t)m)] += hist[i];
            total += hist[i];
            *sum_ns += m * (double)hist[i];
        }
    }
    return total;
}

static void conn_finish(conn_t *c)
{
    worker_t *w = c->w;
    c->state = C_DONE;
    if (--w->open == 0)
        uv_close((uv_handle_t *)&w->grace, NULL);
}

static void on_retry_closed(uv_handle_t *h)
{
    conn_finish(h->data);
}

static void on_closed(uv_handle_t *h)
{
    conn_t *c = h->data;
    if (c->reopen && !c->w->stopping) {
        conn_open(c);
        return;
    }
    uv_close((uv_handle_t *)&c->retry, on_retry_closed);
}

/* Closes the connection; it is reopened (and sends its next request) unless the run is over. */
static void conn_close(conn_t *c, bool reopen)
{
    if (c->state == C_CLOSING || c->state == C_DONE)
        return;
    c->state = C_CLOSING;
    c->reopen = reopen;
    uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static void conn_error(conn_t *c, int kind, const char *what, int status)
{
    worker_t *w = c->w;
    /* Say what went wrong the first time, count every time. */
    if (w->errors[kind]++ == 0)
        fprintf(stderr, "webhook_load: %s error: %s\n", error_names[kind],
                status ? uv_strerror(status) : what);
    conn_close(c, true);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    conn_t *c = h->data;
    *buf = uv_buf_init(c->buf + c->len, (unsigned)(sizeof(c->buf) - c->len));
}

static void on_response(conn_t *c)
{
    worker_t *w = c->w;
    uint64_t now = uv_hrtime(), ns = now - c->t0;
    w->requests++;
    w->non2xx += c->resp.status < 200 || c->resp.status > 299;
    w->hist[hist_index(ns)]++;
    w->sum_ns += ns;
    if (ns > w->max_ns)
        w->max_ns = ns;
    if (c->len > 0) {
        /* Bytes after a complete answer, when nothing more was asked: the exchange is broken. */
        conn_error(c, E_PARSE, "data after the response", 0);
        return;
    }
    c->state = C_IDLE;
    if (c->resp.close)
        conn_close(c, true);
    else
        conn_send(c);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    conn_t *c = s->data;
    if (nread == UV_EOF) {
        if (c->state != C_WAITING)
            conn_close(c, true); /* an idle keep-alive connection the server closed: not an error */
        else if (hr_eof(&c->resp) == 0)
            on_response(c); /* the body ended with the connection; on_response reopens it */
        else
            conn_error(c, E_READ,
                       c->len == 0 && c->resp.state == HR_HEAD ? "closed before an answer" : c->resp.err, 0);
        return;
    }
    if (nread < 0) {
        conn_error(c, E_READ, NULL, (int)nread);
        return;
    }
    if (nread == 0)
        return;
    if (c->state != C_WAITING) {
        conn_error(c, E_PARSE, "data without a request", 0);
        return;
    }
    c->len += (size_t)nread;
    ssize_t used = hr_feed(&c->resp, c->buf, c->len);
    if (used < 0) {
        conn_error(c, E_PARSE, c->resp.err, 0);
        return;
    }
    c->len -= (size_t)used;
    memmove(c->buf, c->buf + used, c->len);
    if (hr_is_done(&c->resp))
        on_response(c);
    else if (c->len == sizeof(c->buf))
        conn_error(c, E_PARSE, "response head larger than the buffer", 0);
}

static void on_written(uv_write_t *req, int status)
{
    if (status < 0 && status != UV_ECANCELED)
        conn_error(req->data, E_WRITE, NULL, status);
}

/* Sends the next request of the file, or ends the connection when time is up or the file done. */
static void conn_send(conn_t *c)
{
    worker_t *w = c->w;
    uint64_t now = uv_hrtime();
    if (w->stopping || now >= deadline_ns) {
        conn_close(c, false);
        return;
    }
    size_t i = atomic_fetch_add_explicit(&next_req, 1, memory_order_relaxed);
    if (i >= nreqs) {
        atomic_store(&exhausted, true);
        conn_close(c, false);
        return;
    }
    uv_buf_t b = uv_buf_init(reqs + reqof[i], (unsigned)(reqof[i + 1] - reqof[i]));
    hr_reset(&c->resp);
    c->state = C_WAITING;
    c->t0 = now;
    /* A request is a few hundred bytes: the socket takes it at once, no write request needed. */
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n == (int)b.len)
        return;
    if (n < 0 && n != UV_EAGAIN) {
        conn_error(c, E_WRITE, NULL, n);
        return;
    }
    if (n > 0)
        b = uv_buf_init(b.base + n, b.len - (unsigned)n);
    int rc = uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &b, 1, on_written);
    if (rc != 0)
        conn_error(c, E_WRITE, NULL, rc);
}

static void on_retry(uv_timer_t *t)
{
    conn_open(t->data);
}

static void on_connected(uv_connect_t *req, int status)
{
    conn_t *c = req->data;
    if (status == UV_ECANCELED)
        return;
    if (status < 0) {
        /* Refused: count it, and try again a little later rather than spin on a server that is down. */
        if (c->w->errors[E_CONNECT]++ == 0)
            fprintf(stderr, "webhook_load: connect error: %s\n", uv_strerror(status));
        c->state = C_CLOSING;
        c->reopen = false;
        uv_close((uv_handle_t *)&c->tcp, NULL);
        if (!c->w->stopping && uv_hrtime() < deadline_ns) {
            c->state = C_IDLE;
            uv_timer_start(&c->retry, on_retry, 100, 0);
        } else {
            uv_close((uv_handle_t *)&c->retry, on_retry_closed);
        }
        return;
    }
    int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc != 0) {
        conn_error(c, E_READ, NULL, rc);
        return;
    }
    c->state = C_IDLE;
    conn_send(c);
}

static void conn_open(conn_t *c)
{
    uv_tcp_init(&c->w->loop, &c->tcp);
    c->tcp.data = c;
    c->connect_req.data = c;
    c->write_req.data = c;
    c->len = 0;
    c->state = C_CONNECTING;
    uv_tcp_nodelay(&c->tcp, 1);
    int rc = uv_tcp_connect(&c->connect_req, &c->tcp, (const struct sockaddr *)&addr, on_connected);
    if (rc != 0) {
        fprintf(stderr, "webhook_load: connect: %s\n", uv_strerror(rc));
        c->w->errors[E_CONNECT]++;
        c->reopen = false;
        c->state = C_CLOSING;
        uv_close((uv_handle_t *)&c->tcp, on_closed);
    }
}

/* The run is over and GRACE_SECONDS have passed: what is still unanswered timed out. */
static void on_grace(uv_timer_t *t)
{
    worker_t *w = t->data;
    w->stopping = true;
    for (int i = 0; i < w->nconns; i++) {
        conn_t *c = &w->conns[i];
        if (c->state == C_WAITING)
            w->errors[E_TIMEOUT]++;
        if (c->state == C_IDLE && uv_is_active((uv_handle_t *)&c->retry)) {
            uv_timer_stop(&c->retry);
            uv_close((uv_handle_t *)&c->retry, on_retry_closed);
            c->state = C_CLOSING;
        } else {
            conn_close(c, false);
        }
    }
}

static void worker_run(void *arg)
{
    worker_t *w = arg;
    uv_loop_init(&w->loop);
    uv_timer_init(&w->loop, &w->grace);
    w->grace.data = w;
    uint64_t now = uv_hrtime();
    uint64_t until_end = deadline_ns > now ? (deadline_ns - now) / 1000000 : 0;
    uv_timer_start(&w->grace, on_grace, until_end + grace_ms, 0);
    uv_unref((uv_handle_t *)&w->grace); /* the connections keep the loop alive, not the timer */
    w->open = w->nconns;
    for (int i = 0; i < w->nconns; i++) {
        conn_t *c = &w->conns[i];
        c->w = w;
        uv_timer_init(&w->loop, &c->retry);
        c->retry.data = c;
        conn_open(c);
    }
    if (w->nconns == 0)
        uv_close((uv_handle_t *)&w->grace, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    uv_loop_close(&w->loop);
}

/* Formats every line of the file as a request.  Returns 0, or -1 after saying why. */
static int load_requests(const char *file, const char *path, const char *host)
{
    FILE *f = fopen(file, "rb");
    if (f == NULL) {
        perror(file);
        return -1;
    }
    char *line = NULL;
    size_t cap = 0, used = 0, cap_reqs = 1 << 20, cap_of = 1024;
    ssize_t n;
    reqs = malloc(cap_reqs);
    reqof = malloc(cap_of * sizeof(*reqof));
    if (reqs == NULL || reqof == NULL)
        goto fail;
    while ((n = getline(&line, &cap, f)) > 0) {
        if (line[n - 1] == '\n')
            line[--n] = '\0';
        if (n == 0)
            continue;
        char *tab = memchr(line, '\t', (size_t)n);
        if (tab == NULL) {
            fprintf(stderr, "%s:%zu: no tab between the signature and the body\n", file, nreqs + 1);
            goto fail;
        }
        size_t body_len = (size_t)(line + n - tab - 1);
        size_t need = (size_t)n + strlen(path) + strlen(host) + 200;
        if (used + need > cap_reqs) {
            while (used + need > cap_reqs)
                cap_reqs *= 2;
            char *r = realloc(reqs, cap_reqs);
            if (r == NULL)
                goto fail;
            reqs = r;
        }
        if (nreqs + 2 > cap_of) {
            size_t *o = realloc(reqof, (cap_of *= 2) * sizeof(*reqof));
            if (o == NULL)
                goto fail;
            reqof = o;
        }
        reqof[nreqs++] = used;
        used += (size_t)snprintf(
            reqs + used, cap_reqs - used,
            "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            "X-Twilio-Signature: %.*s\r\nContent-Length: %zu\r\n\r\n%s",
            path, host, (int)(tab - line), line, body_len, tab + 1);
    }
    reqof[nreqs] = used;
    free(line);
    fclose(f);
    return 0;
fail:
    fprintf(stderr, "webhook_load: cannot load %s\n", file);
    free(line);
    fclose(f);
    return -1;
}

/* http://HOST:PORT[/]: resolved once, before the run. */
static int parse_url(const char *url, char *host, size_t hostlen)
{
    if (strncmp(url, "http://", 7) != 0) {
        fprintf(stderr, "webhook_load: %s: only http:// URLs\n", url);
        return -1;
    }
    snprintf(host, hostlen, "%s", url + 7);
    char *slash = strchr(host, '/');
    if (slash != NULL)
        *slash = '\0';
    char *colon = strrchr(host, ':');
    if (colon == NULL || host[0] == '[') {
        fprintf(stderr, "webhook_load: %s: give the port (IPv4 or a name)\n", url);
        return -1;
    }
    char name[256];
    snprintf(name, sizeof(name), "%.*s", (int)(colon - host), host);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    int rc = getaddrinfo(name, colon + 1, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "webhook_load: %s: %s\n", name, gai_strerror(rc));
        return -1;
    }
    memcpy(&addr, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

int main(int argc, char **argv)
{
    int conns = 64, threads = 1, opt;
    double seconds = 10, grace = 10;
    const char *path = "/webhooks/twilio/messaging";
    while ((opt = getopt(argc, argv, "c:t:d:g:p:")) != -1) {
        switch (opt) {
        case 'c':
            conns = atoi(optarg);
            break;
        case 't':
            threads = atoi(optarg);
            break;
        case 'd':
            seconds = atof(optarg);
            break;
        case 'g':
            grace = atof(optarg);
            break;
        case 'p':
            path = optarg;
            break;
        default:
            goto usage;
        }
    }
    if (argc - optind != 2 || conns < 1 || threads < 1 || seconds <= 0 || grace < 0)
        goto usage;
    if (threads > conns)
        threads = conns;
    char host[256];
    if (parse_url(argv[optind + 1], host, sizeof(host)) != 0)
        return 2;
    signal(SIGPIPE, SIG_IGN); /* a peer's reset is a counted error, not the end of the run */
    double cpu_setup0 = cpu_s();
    if (load_requests(argv[optind], path, host) != 0)
        return 2;
    double cpu0 = cpu_s();

    worker_t *workers = calloc((size_t)threads, sizeof(*workers));
    conn_t *all = calloc((size_t)conns, sizeof(*all));
    if (workers == NULL || all == NULL)
        return 2;
    grace_ms = (uint64_t)(grace * 1000);
    uint64_t t0 = uv_hrtime();
    deadline_ns = t0 + (uint64_t)(seconds * 1e9);
    for (int i = 0, k = 0; i < threads; i++) {
        workers[i].conns = all + k;
        workers[i].nconns = conns / threads + (i < conns % threads);
        k += workers[i].nconns;
        uv_thread_create(&workers[i].thread, worker_run, &workers[i]);
    }
    uint64_t total = 0, non2xx = 0, errors[E_COUNT] = {0}, max_ns = 0, sum_ns = 0;
    uint64_t *hist = calloc(HIST_LEN, sizeof(*hist));
    for (int i = 0; i < threads; i++) {
        worker_t *w = &workers[i];
        uv_thread_join(&w->thread);
        total += w->requests;
        non2xx += w->non2xx;
        for (int e = 0; e < E_COUNT; e++)
            errors[e] += w->errors[e];
        for (int h = 0; h < HIST_LEN; h++)
            hist[h] += w->hist[h];
        max_ns = w->max_ns > max_ns ? w->max_ns : max_ns;
        sum_ns += w->sum_ns;
    }
    double cpu = cpu_s() - cpu0;
    /* The run lasts until every connection is closed: past the deadline by the answers that were
     * still outstanding then (each connection's last, at most). */
    double dur = (double)(uv_hrtime() - t0) / 1e9;
    long hz = sysconf(_SC_CLK_TCK);
    printf("load requests=%llu duration_s=%.2f requests_per_s=%.0f errors_status=%llu",
           (unsigned long long)total, dur, dur > 0 ? (double)total / dur : 0, (unsigned long long)non2xx);
    for (int e = 0; e < E_COUNT; e++)
        printf(" errors_%s=%llu", error_names[e], (unsigned long long)errors[e]);
    printf(" mean_ms=%.2f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f",
           total ? (double)sum_ns / (double)total / 1e6 : 0, percentile_ms(hist, total, max_ns, 50),
           percentile_ms(hist, total, max_ns, 90), percentile_ms(hist, total, max_ns, 99),
           (double)max_ns / 1e6);
    printf(" workers_cpu_ticks=%.0f workers_cpu_us=%.0f cpu_us_per_request=%.2f setup_cpu_s=%.2f",
           cpu * (double)hz, cpu * 1e6, total ? cpu * 1e6 / (double)total : 0, cpu0 - cpu_setup0);
    printf(" file_done=%d conns=%d threads=%d", (int)atomic_load(&exhausted), conns, threads);
    uint64_t per_conn = total / (uint64_t)conns, *corr = calloc(HIST_LEN, sizeof(*corr));
    double corr_sum = (double)sum_ns;
    uint64_t corr_total = wrk_correct(hist, corr, per_conn ? (uint64_t)(dur * 1e9) / per_conn : 0, &corr_sum);
    printf(" corr_mean_ms=%.2f corr_p50_ms=%.2f corr_p90_ms=%.2f corr_p99_ms=%.2f\n",
           corr_total ? corr_sum / (double)corr_total / 1e6 : 0, percentile_ms(corr, corr_total, max_ns, 50),
           percentile_ms(corr, corr_total, max_ns, 90), percentile_ms(corr, corr_total, max_ns, 99));
    free(corr);
    uint64_t failed = 0;
    for (int e = 0; e < E_COUNT; e++)
        failed += errors[e];
    if (failed + non2xx > 0)
        fprintf(stderr, "webhook_load: %llu answers other than 2xx, %llu errors (see errors_*)\n",
                (unsigned long long)non2xx, (unsigned long long)failed);
    free(hist);
    free(all);
    free(workers);
    free(reqs);
    free(reqof);
    return 0;
usage:
    fprintf(stderr, "usage: bench_webhook_load [-c CONNS] [-t THREADS] [-d SECONDS] [-g GRACE_SECONDS] "
                    "[-p PATH] FILE http://HOST:PORT\n");
    return 2;
}
