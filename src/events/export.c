/* `switchboard events export|tail`: the log for analysts (SPEC §3).
 *
 * Both run a standalone loop on the main thread.  export reads the log in pages of PAGE events by
 * position, writing each page before asking for the next, so memory stays constant however large
 * the log.  tail subscribes to a follower and prints events as they commit. */
#include "events/export.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "db/cluster.h"
#include "events/codec.h"
#include "events/follow.h"
#include "events/read.h"
#include "events/stream.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PAGE 2000
#define MAX_LIST 64

enum { FMT_JSONL, FMT_CSV };

typedef struct exporter_s {
    sb_loop_t loop;
    sb_pg_t *pg;
    sb_read_t read;
    sb_log_filter_t filter;
    const char *types[MAX_LIST];
    char *types_buf;
    const char *stream_one[1];
    const char *category_one[1];
    int64_t after;
    int format;
    FILE *out;
    bool tty;
    uint64_t count;
    uint64_t last_progress_ns;
    int rc;
    sb_buf_t line;
    sb_buf_t json;
    /* tail */
    sb_follower_t *follower;
    sb_sub_t *sub;
    uv_signal_t sigint, sigterm;
    bool tail;
    bool from_given;
} exporter_t;

static const char export_help[] =
    "usage: switchboard events export [--from POS] [--to POS] [--since TIME] [--until TIME]\n"
    "                                 [--workspace ID] [--stream NAME] [--category C] [--type T,...]\n"
    "                                 [--format jsonl|csv] [--output FILE]\n"
    "       switchboard events tail [--from POS] [filters as above] [--format jsonl|csv]\n"
    "\n"
    "export streams the event log, decoded, in position order: one JSON object per line (jsonl, the\n"
    "default) or CSV with a header row.  Fields: position, recorded_at, workspace, stream, version,\n"
    "type, data, metadata.  --from and --to are inclusive positions; --since and --until take RFC 3339\n"
    "times or dates (until is exclusive).  A progress line goes to stderr when it is a terminal.\n"
    "tail prints events as they are committed, from the end of the log (or after --from - 1), until\n"
    "interrupted.\n";

static void put_csv_field(sb_buf_t *b, const char *s, size_t n)
{
    sb_buf_putc(b, '"');
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"')
            sb_buf_putc(b, '"');
        sb_buf_putc(b, s[i]);
    }
    sb_buf_putc(b, '"');
}

/* Formats one event into x->line; 0 or a codec error. */
static int format_event(exporter_t *x, const sb_event_t *e)
{
    char ts[SB_RFC3339_LEN], ws[SB_UUID_STRLEN + 1], err[128];
    sb_clock_format_rfc3339(e->recorded_at_us, ts);
    if (e->has_workspace)
        sb_uuid_format(&e->workspace, ws);
    sb_buf_t *b = &x->line;
    sb_buf_reset(b);
    if (x->format == FMT_JSONL) {
        sb_buf_printf(b, "{\"position\":%lld,\"recorded_at\":\"%s\",\"workspace\":", (long long)e->position,
                      ts);
        if (e->has_workspace)
            sb_buf_printf(b, "\"%s\"", ws);
        else
            sb_buf_puts(b, "null");
        sb_buf_puts(b, ",\"stream\":");
        sb_buf_put_json_string(b, e->stream, strlen(e->stream));
        sb_buf_printf(b, ",\"version\":%lld,\"type\":", (long long)e->version);
        sb_buf_put_json_string(b, e->type, strlen(e->type));
        sb_buf_puts(b, ",\"data\":");
        int r = sb_codec_to_json(e->payload, e->payload_len, b, err, sizeof(err));
        if (r != 0)
            goto bad;
        sb_buf_puts(b, ",\"metadata\":");
        r = sb_codec_to_json(e->metadata, e->metadata_len, b, err, sizeof(err));
        if (r != 0)
            goto bad;
        sb_buf_puts(b, "}\n");
        return 0;
    }
    sb_buf_printf(b, "%lld,%s,%s,", (long long)e->position, ts, e->has_workspace ? ws : "");
    put_csv_field(b, e->stream, strlen(e->stream));
    sb_buf_printf(b, ",%lld,", (long long)e->version);
    put_csv_field(b, e->type, strlen(e->type));
    for (int part = 0; part < 2; part++) {
        sb_buf_reset(&x->json);
        const char *mp = part == 0 ? e->payload : e->metadata;
        size_t len = part == 0 ? e->payload_len : e->metadata_len;
        if (sb_codec_to_json(mp, len, &x->json, err, sizeof(err)) != 0)
            goto bad;
        sb_buf_putc(b, ',');
        put_csv_field(b, x->json.data, x->json.len);
    }
    sb_buf_puts(b, "\r\n");
    return 0;
bad:
    sb_log_error("export", "cannot decode event at position %lld: %s", (long long)e->position, err);
    return SB_ECODEC;
}

static void progress(exporter_t *x, int64_t position, bool final)
{
    if (!x->tty)
        return;
    uint64_t now = sb_clock_mono_ns();
    if (!final && now - x->last_progress_ns < 500000000u)
        return;
    x->last_progress_ns = now;
    fprintf(stderr, "\rexported %llu events (position %lld)%s", (unsigned long long)x->count,
            (long long)position, final ? "\n" : "");
}

static int write_events(exporter_t *x, const sb_event_t *ev, int n)
{
    for (int i = 0; i < n; i++) {
        if (format_event(x, &ev[i]) != 0)
            return SB_ECODEC;
        if (fwrite(x->line.data, 1, x->line.len, x->out) != x->line.len)
            return UV_EPIPE;
        x->count++;
    }
    if (x->tail && fflush(x->out) != 0)
        return UV_EPIPE;
    return 0;
}

static void fail_write(exporter_t *x, int r)
{
    if (r == UV_EPIPE && errno == EPIPE) {
        x->rc = 0; /* the reader went away (e.g. `| head`): not an error */
    } else if (r == UV_EPIPE) {
        fprintf(stderr, "switchboard: cannot write output: %s\n", strerror(errno));
        x->rc = 1;
    } else {
        x->rc = 1;
    }
}

static void on_page(sb_read_t *r, int status, const sb_event_page_t *page)
{
    exporter_t *x = r->data;
    if (status != 0) {
        fprintf(stderr, "switchboard: reading the log failed: %s\n",
                r->error ? r->error : sb_strerror(status));
        x->rc = 1;
        return;
    }
    int w = write_events(x, page->events, page->n);
    if (w != 0) {
        fail_write(x, w);
        return;
    }
    if (page->n > 0)
        x->after = page->scanned_to;
    progress(x, x->after, !page->more);
    if (page->more)
        sb_read_log(x->pg, &x->read, x->after, &x->filter, PAGE, on_page, x);
    else
        uv_stop(&x->loop.uv); /* the connection's handles would keep the loop running */
}

static void on_tail(sb_sub_t *s, const sb_event_t *ev, int n, void *data)
{
    exporter_t *x = data;
    int w = write_events(x, ev, n);
    if (w != 0) {
        fail_write(x, w);
        uv_stop(&x->loop.uv);
    }
}

static void on_signal(uv_signal_t *h, int signum)
{
    exporter_t *x = h->data;
    uv_stop(&x->loop.uv);
}

static int split_types(exporter_t *x, const char *v)
{
    free(x->types_buf);
    x->types_buf = strdup(v);
    x->filter.ntypes = 0;
    for (char *save = NULL, *t = strtok_r(x->types_buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (x->filter.ntypes == MAX_LIST)
            return SB_EINVAL;
        x->types[x->filter.ntypes++] = t;
    }
    x->filter.types = x->types;
    return x->filter.ntypes > 0 ? 0 : SB_EINVAL;
}

static int parse_pos(const char *v, int64_t *out)
{
    char *end;
    long long n = strtoll(v, &end, 10);
    if (*v == '\0' || *end != '\0' || n < 0)
        return SB_EINVAL;
    *out = n;
    return 0;
}

/* Parses the filters shared by export and tail.  2 on bad usage (message printed), 0 otherwise. */
static int parse_args(exporter_t *x, int argc, char **argv, const char **output)
{
    int64_t from = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(export_help, stdout);
            return 1;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "switchboard: unknown option or missing value: %s\n", a);
            return 2;
        }
        const char *v = argv[++i];
        int bad = 0;
        if (strcmp(a, "--from") == 0)
            bad = parse_pos(v, &from) || from < 1;
        else if (strcmp(a, "--to") == 0)
            bad = parse_pos(v, &x->filter.to_position) || x->filter.to_position < 1;
        else if (strcmp(a, "--since") == 0)
            bad = sb_clock_parse_rfc3339(v, &x->filter.since_us);
        else if (strcmp(a, "--until") == 0)
            bad = sb_clock_parse_rfc3339(v, &x->filter.until_us);
        else if (strcmp(a, "--workspace") == 0) {
            bad = sb_uuid_parse(v, strlen(v), &x->filter.workspace);
            x->filter.has_workspace = true;
        } else if (strcmp(a, "--stream") == 0) {
            sb_stream_name_t sn;
            bad = sb_stream_parse(v, strlen(v), &sn);
            x->stream_one[0] = v;
            x->filter.streams = x->stream_one;
            x->filter.nstreams = 1;
        } else if (strcmp(a, "--category") == 0) {
            bad = !sb_stream_category_is_valid(v, strlen(v));
            x->category_one[0] = v;
            x->filter.categories = x->category_one;
            x->filter.ncategories = 1;
        } else if (strcmp(a, "--type") == 0)
            bad = split_types(x, v);
        else if (strcmp(a, "--format") == 0) {
            if (strcmp(v, "jsonl") == 0)
                x->format = FMT_JSONL;
            else if (strcmp(v, "csv") == 0)
                x->format = FMT_CSV;
            else
                bad = 1;
        } else if (strcmp(a, "--output") == 0 && !x->tail)
            *output = v;
        else {
            fprintf(stderr, "switchboard: unknown option '%s' (see 'switchboard events --help')\n", a);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "switchboard: invalid value for %s: '%s'\n", a, v);
            return 2;
        }
    }
    x->after = from > 0 ? from - 1 : 0;
    x->from_given = from > 0;
    return 0;
}

static void on_tail_start(uv_timer_t *t);

int sb_cmd_events(sb_config_t *cfg, int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
        fputs(export_help, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    exporter_t x;
    memset(&x, 0, sizeof(x));
    if (strcmp(argv[1], "tail") == 0)
        x.tail = true;
    else if (strcmp(argv[1], "export") != 0) {
        fprintf(stderr, "switchboard: unknown events command '%s' (export or tail)\n", argv[1]);
        return 2;
    }
    const char *output = NULL;
    int pr = parse_args(&x, argc, argv, &output);
    if (pr != 0) {
        free(x.types_buf);
        return pr == 1 ? 0 : 2;
    }
    bool explicit_from = x.from_given;

    char err[512];
    bool started = false;
    if (cfg->database_url == NULL && sb_cluster_start(cfg->data_dir, &started, err, sizeof(err)) != 0) {
        fprintf(stderr, "switchboard: %s\n", err);
        free(x.types_buf);
        return 1;
    }
    x.out = stdout;
    if (output != NULL && (x.out = fopen(output, "w")) == NULL) {
        fprintf(stderr, "switchboard: cannot open %s: %s\n", output, strerror(errno));
        x.rc = 1;
        goto out_cluster;
    }
    signal(SIGPIPE, SIG_IGN);
    x.tty = !x.tail && isatty(STDERR_FILENO);
    if (x.format == FMT_CSV)
        fputs("position,recorded_at,workspace,stream,version,type,data,metadata\r\n", x.out);

    char *conninfo = sb_db_conninfo(cfg);
    sb_loop_init_standalone(&x.loop);
    x.pg = sb_pg_open(&x.loop.uv, conninfo, "export");
    uv_timer_t start_timer;
    if (!x.tail) {
        sb_read_log(x.pg, &x.read, x.after, &x.filter, PAGE, on_page, &x);
        uv_run(&x.loop.uv, UV_RUN_DEFAULT);
    } else {
        x.follower = sb_follower_new(conninfo, 1);
        sb_follower_start(x.follower, &x.loop);
        uv_signal_init(&x.loop.uv, &x.sigint);
        uv_signal_init(&x.loop.uv, &x.sigterm);
        x.sigint.data = x.sigterm.data = &x;
        uv_signal_start(&x.sigint, on_signal, SIGINT);
        uv_signal_start(&x.sigterm, on_signal, SIGTERM);
        /* Without --from, start at the end of the log: wait until the follower knows it. */
        uv_timer_init(&x.loop.uv, &start_timer);
        start_timer.data = &x;
        if (explicit_from)
            sb_log_debug("export", "tailing after position %lld", (long long)x.after);
        x.after = explicit_from ? x.after : -1;
        uv_timer_start(&start_timer, on_tail_start, 0, 20);
        uv_run(&x.loop.uv, UV_RUN_DEFAULT);
        uv_close((uv_handle_t *)&start_timer, NULL);
        uv_close((uv_handle_t *)&x.sigint, NULL);
        uv_close((uv_handle_t *)&x.sigterm, NULL);
        if (x.sub)
            sb_sub_close(x.sub);
        sb_follower_stop(x.follower);
    }
    sb_pg_close(x.pg, NULL, NULL);
    sb_loop_close_standalone(&x.loop);
    sb_follower_free(x.follower);
    free(conninfo);
    if (fflush(x.out) != 0 && x.rc == 0 && errno != EPIPE) {
        fprintf(stderr, "switchboard: cannot write output: %s\n", strerror(errno));
        x.rc = 1;
    }
    if (x.out != stdout)
        fclose(x.out);
out_cluster:
    if (started && sb_cluster_stop(cfg->data_dir, err, sizeof(err)) != 0)
        fprintf(stderr, "switchboard: %s\n", err);
    sb_buf_free(&x.line);
    sb_buf_free(&x.json);
    free(x.types_buf);
    return x.rc;
}

static void on_tail_start(uv_timer_t *t)
{
    exporter_t *x = t->data;
    int64_t after = x->after;
    if (after < 0) {
        after = sb_follower_head(x->follower);
        if (after < 0)
            return; /* not yet known */
    }
    uv_timer_stop(t);
    x->sub = sb_follower_subscribe(x->follower, x->pg, after, &x->filter, on_tail, x);
    if (x->sub == NULL) {
        fprintf(stderr, "switchboard: out of memory\n");
        x->rc = 1;
        uv_stop(&x->loop.uv);
    }
}
