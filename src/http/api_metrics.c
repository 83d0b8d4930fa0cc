/* GET /metrics: Prometheus text format (version 0.0.4).
 *
 *   switchboard_http_requests_total{method,route,status}      counter
 *   switchboard_http_request_duration_seconds{method,route}   histogram
 *   switchboard_http_response_bytes_total{method,route}       counter
 *   switchboard_events_appended_total, _append_commands_total, _append_conflicts_total,
 *   _append_batches_total, _append_failures_total,
 *   _append_rechecks_total                                    counters (every loop's appender)
 *   switchboard_append_commit_seconds                         histogram (batches: sent to answered)
 *   switchboard_follower_offers_published_total, _read_total  counters (the follower: appended
 *                                                             batches published as handed over, or
 *                                                             read back from the log);
 *   switchboard_follower_others                               gauge (another process follows: NOTIFY)
 *   switchboard_actors_active                                 gauge; activations, passivations,
 *                                                             mailbox_full, commands, rejected ...
 *   switchboard_db_connections{role="query"|"append"}         gauge (connected now)
 *   switchboard_db_requests_total, _db_errors_total, _db_reconnects_total
 *   switchboard_auth_* and switchboard_idempotent_replays_total
 *   switchboard_projection_* {projection} (checkpoint, lag in events and seconds, failing,
 *   rebuilding; docs/projections.md) and switchboard_sse_* when those subsystems run.
 *   switchboard_reactors_leader, switchboard_outbox_*, switchboard_scheduler_*, switchboard_calls_*
 *                                                             the messaging reactors and call control
 *                                                             (sampled on loop 0 once a second)
 * Per-loop database figures are sampled on each loop once a second (its connections' counters are
 * the loop's own), so they may be a second old; everything else is read live. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/runtime.h"
#include "core/buf.h"
#include "db/pg.h"
#include "events/append.h"
#include "events/follow.h"
#include "http/api_int.h"
#include "http/response.h"
#include "http/server.h"
#include "http/sse.h"
#include "projections/projections.h"
#include "reactors/messaging.h"

#define SAMPLE_MS 1000

/* ---- per-loop sampling ------------------------------------------------------------------------------ */

static void store(_Atomic uint64_t *a, uint64_t v)
{
    atomic_store_explicit(a, v, memory_order_relaxed);
}

static void sample(sb__api_loop_t *l)
{
    sb_loop_t *loop = l->loop;
    if (loop->appender != NULL) {
        sb_appender_stats_t as;
        sb_appender_get_stats(loop->appender, &as);
        store(&l->sample.events, as.events);
        store(&l->sample.commands, as.commands);
        store(&l->sample.conflicts, as.conflicts);
        store(&l->sample.batches, as.batches);
        store(&l->sample.failures, as.failures);
        store(&l->sample.rechecks, as.rechecks);
        for (int k = 0; k <= SB_APPEND_LATENCY_BUCKETS; k++)
            store(&l->sample.commit_latency[k], as.commit_latency[k]);
        store(&l->sample.commit_latency_sum_us, as.commit_latency_sum_us);
        atomic_store_explicit(&l->sample.appender_connected, 1, memory_order_relaxed);
    }
    if (loop->db != NULL) {
        sb_pg_stats_t ps;
        sb_pg_get_stats(loop->db, &ps);
        store(&l->sample.db_requests, ps.requests);
        store(&l->sample.db_errors, ps.errors);
        store(&l->sample.db_reconnects, ps.reconnects);
        atomic_store_explicit(&l->sample.db_connected, ps.connected ? 1 : 0, memory_order_relaxed);
    }
}

static void on_sample(uv_timer_t *t)
{
    sample(t->data);
}

void sb__api_sampler_start(sb__api_loop_t *l)
{
    uv_timer_init(&l->loop->uv, &l->sampler);
    l->sampler.data = l;
    sample(l);
    uv_timer_start(&l->sampler, on_sample, SAMPLE_MS, SAMPLE_MS);
    uv_unref((uv_handle_t *)&l->sampler);
}

void sb__api_sampler_stop(sb__api_loop_t *l)
{
    uv_close((uv_handle_t *)&l->sampler, NULL);
}

/* ---- the exposition ----------------------------------------------------------------------------------- */

static void help(sb_buf_t *b, const char *name, const char *type, const char *text)
{
    sb_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

/* A label value: route patterns and methods are ours, but escape as the format asks anyway. */
static void label(sb_buf_t *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            sb_buf_putc(b, '\\');
        if (*s == '\n') {
            sb_buf_puts(b, "\\n");
            continue;
        }
        sb_buf_putc(b, *s);
    }
}

static void route_labels(sb_buf_t *b, const sb_route_t *rt)
{
    sb_buf_puts(b, "method=\"");
    label(b, rt != NULL ? rt->method : "");
    sb_buf_puts(b, "\",route=\"");
    label(b, rt != NULL ? rt->pattern : "unmatched");
    sb_buf_putc(b, '"');
}

static void http_metrics(sb_buf_t *b, sb_api_t *api)
{
    sb_http_server_t *srv = api->app->http;
    int n = sb_router_count(api->router);
    sb_http_route_stats_t *st = calloc((size_t)n + 1, sizeof(*st));
    if (st == NULL)
        return;
    for (int r = -1; r < n; r++)
        sb_http_server_stats(srv, r, &st[r + 1]);

    help(b, "switchboard_http_requests_total", "counter", "HTTP responses by route and status.");
    for (int r = -1; r < n; r++) {
        const sb_route_t *rt = sb_router_route(api->router, r);
        for (int s = 0; s < SB_HTTP_STATUS_SLOTS; s++) {
            if (st[r + 1].status[s] == 0)
                continue;
            sb_buf_puts(b, "switchboard_http_requests_total{");
            route_labels(b, rt);
            if (sb_http_status_slot_codes[s] != 0)
                sb_buf_printf(b, ",status=\"%d\"} %" PRIu64 "\n", sb_http_status_slot_codes[s],
                              st[r + 1].status[s]);
            else
                sb_buf_printf(b, ",status=\"other\"} %" PRIu64 "\n", st[r + 1].status[s]);
        }
    }
    help(b, "switchboard_http_request_duration_seconds", "histogram",
         "Time from the request's arrival to its last byte, by route.");
    for (int r = -1; r < n; r++) {
        const sb_route_t *rt = sb_router_route(api->router, r);
        uint64_t cum = 0, total = 0;
        for (int k = 0; k <= SB_HTTP_LATENCY_BUCKETS; k++)
            total += st[r + 1].latency[k];
        if (total == 0)
            continue;
        for (int k = 0; k < SB_HTTP_LATENCY_BUCKETS; k++) {
            cum += st[r + 1].latency[k];
            sb_buf_puts(b, "switchboard_http_request_duration_seconds_bucket{");
            route_labels(b, rt);
            sb_buf_printf(b, ",le=\"%g\"} %" PRIu64 "\n", (double)sb_http_latency_bounds_us[k] / 1e6, cum);
        }
        sb_buf_puts(b, "switchboard_http_request_duration_seconds_bucket{");
        route_labels(b, rt);
        sb_buf_printf(b, ",le=\"+Inf\"} %" PRIu64 "\n", total);
        sb_buf_puts(b, "switchboard_http_request_duration_seconds_sum{");
        route_labels(b, rt);
        sb_buf_printf(b, "} %.6f\n", (double)st[r + 1].latency_sum_us / 1e6);
        sb_buf_puts(b, "switchboard_http_request_duration_seconds_count{");
        route_labels(b, rt);
        sb_buf_printf(b, "} %" PRIu64 "\n", total);
    }
    help(b, "switchboard_http_response_bytes_total", "counter", "Bytes sent in responses, by route.");
    for (int r = -1; r < n; r++) {
        if (st[r + 1].bytes_sent == 0)
            continue;
        sb_buf_puts(b, "switchboard_http_response_bytes_total{");
        route_labels(b, sb_router_route(api->router, r));
        sb_buf_printf(b, "} %" PRIu64 "\n", st[r + 1].bytes_sent);
    }
    free(st);
}

static void counter(sb_buf_t *b, const char *name, const char *text, uint64_t v)
{
    help(b, name, "counter", text);
    sb_buf_printf(b, "%s %" PRIu64 "\n", name, v);
}

static void gauge(sb_buf_t *b, const char *name, const char *text, uint64_t v)
{
    help(b, name, "gauge", text);
    sb_buf_printf(b, "%s %" PRIu64 "\n", name, v);
}

static uint64_t load(_Atomic uint64_t *a)
{
    return atomic_load_explicit(a, memory_order_relaxed);
}

static void log_metrics(sb_buf_t *b, sb_api_t *api, sb_loop_t *self)
{
    uint64_t ev = 0, cmd = 0, conf = 0, bat = 0, fail = 0, rechk = 0, dbreq = 0, dberr = 0, dbrec = 0;
    uint64_t lat[SB_APPEND_LATENCY_BUCKETS + 1] = {0}, lat_sum_us = 0;
    int conn_q = 0, conn_a = 0;
    for (int i = 0; i < api->nloops; i++) {
        sb__api_loop_t *l = api->loops[i];
        if (l == NULL)
            continue;
        if (l->loop == self)
            sample(l); /* this loop's figures can be fresh */
        ev += load(&l->sample.events);
        cmd += load(&l->sample.commands);
        conf += load(&l->sample.conflicts);
        bat += load(&l->sample.batches);
        fail += load(&l->sample.failures);
        rechk += load(&l->sample.rechecks);
        for (int k = 0; k <= SB_APPEND_LATENCY_BUCKETS; k++)
            lat[k] += load(&l->sample.commit_latency[k]);
        lat_sum_us += load(&l->sample.commit_latency_sum_us);
        dbreq += load(&l->sample.db_requests);
        dberr += load(&l->sample.db_errors);
        dbrec += load(&l->sample.db_reconnects);
        conn_q += atomic_load_explicit(&l->sample.db_connected, memory_order_relaxed);
        conn_a += atomic_load_explicit(&l->sample.appender_connected, memory_order_relaxed);
    }
    counter(b, "switchboard_events_appended_total", "Events appended to the log by this process.", ev);
    counter(b, "switchboard_append_commands_total", "Append commands (one per decided command).", cmd);
    counter(b, "switchboard_append_conflicts_total", "Appends refused for an unexpected stream version.",
            conf);
    counter(b, "switchboard_append_batches_total", "Group-commit transactions.", bat);
    counter(b, "switchboard_append_failures_total", "Append commands that failed.", fail);
    counter(b, "switchboard_append_rechecks_total",
            "Batches sent again with every stream version read, after the log's key refused a version "
            "assumed known (another process appended to one of its streams).",
            rechk);
    help(b, "switchboard_append_commit_seconds", "histogram",
         "Group-commit transactions by the time from sending to the answer (the commit's flush included).");
    uint64_t cum = 0;
    for (int k = 0; k < SB_APPEND_LATENCY_BUCKETS; k++) {
        cum += lat[k];
        sb_buf_printf(b, "switchboard_append_commit_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
                      (double)sb_append_latency_bounds_us[k] / 1e6, cum);
    }
    cum += lat[SB_APPEND_LATENCY_BUCKETS];
    sb_buf_printf(b, "switchboard_append_commit_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n", cum);
    sb_buf_printf(b, "switchboard_append_commit_seconds_sum %.6f\n", (double)lat_sum_us / 1e6);
    sb_buf_printf(b, "switchboard_append_commit_seconds_count %" PRIu64 "\n", cum);
    help(b, "switchboard_db_connections", "gauge", "Database connections of the worker loops that are up.");
    sb_buf_printf(b, "switchboard_db_connections{role=\"query\"} %d\n", conn_q);
    sb_buf_printf(b, "switchboard_db_connections{role=\"append\"} %d\n", conn_a);
    if (api->app->follower != NULL) {
        uint64_t published, read;
        sb_follower_offer_stats(api->app->follower, &published, &read);
        counter(b, "switchboard_follower_offers_published_total",
                "Committed batches the follower published as the appenders handed them over.", published);
        counter(
            b, "switchboard_follower_offers_read_total",
            "Appends the follower read back from the log instead (a gap before them, or unknown outcome).",
            read);
        gauge(b, "switchboard_follower_others",
              "1 while another process's follower is connected to the database (the appenders NOTIFY then).",
              sb_follower_others(api->app->follower) ? 1 : 0);
    }
    counter(b, "switchboard_db_requests_total", "Requests on the loops' query connections.", dbreq);
    counter(b, "switchboard_db_errors_total", "Failed requests on the loops' query connections.", dberr);
    counter(b, "switchboard_db_reconnects_total", "Reconnections of the loops' query connections.", dbrec);
}

static void actor_metrics(sb_buf_t *b, sb_api_t *api)
{
    sb_runtime_stats_t rs = {0};
    sb_runtime_get_stats(api->app->loops, &rs);
    gauge(b, "switchboard_actors_active", "Actors in memory now.", rs.active);
    counter(b, "switchboard_actor_activations_total", "Actor activations.", rs.activations);
    counter(b, "switchboard_actor_passivations_total", "Actor passivations.", rs.passivations);
    counter(b, "switchboard_actor_commands_total", "Commands and reads handled by actors.", rs.commands);
    counter(b, "switchboard_actor_rejections_total", "Commands the domain refused.", rs.rejected);
    counter(b, "switchboard_actor_mailbox_full_total", "Asks refused because a mailbox was full.",
            rs.mailbox_full);
    counter(b, "switchboard_actor_retries_total", "Decisions repeated after an append conflict.", rs.retries);
    gauge(b, "switchboard_actor_memory_bytes", "Estimated bytes of actor state.", rs.memory);
}

static void api_metrics(sb_buf_t *b, sb_api_t *api)
{
    uint64_t t[5] = {0};
    for (int i = 0; i < api->nloops; i++) {
        /* Counters of other loops, read without a lock: a moment old at worst. */
        uint64_t one[5];
        sb__api_threads_stats(api->loops[i] != NULL ? api->loops[i]->threads : NULL, one);
        for (int k = 0; k < 5; k++)
            t[k] += one[k];
    }
    counter(b, "switchboard_thread_cache_hits_total", "Note-thread pages served from the loops' caches.",
            t[0]);
    counter(b, "switchboard_thread_cache_misses_total", "Note-thread first pages read from the database.",
            t[1]);
    counter(b, "switchboard_thread_cache_fills_total", "Threads cached after a read.", t[2]);
    gauge(b, "switchboard_thread_cache_entries", "Threads cached now.", t[4]);
    counter(b, "switchboard_auth_signups_total", "Accounts created.", load(&api->signups));
    counter(b, "switchboard_auth_logins_total", "Successful logins.", load(&api->logins));
    counter(b, "switchboard_auth_login_failures_total", "Failed logins.", load(&api->login_failures));
    counter(b, "switchboard_auth_login_rate_limited_total", "Logins refused by the failure limits.",
            load(&api->login_rate_limited));
    counter(b, "switchboard_idempotent_replays_total", "Responses replayed for a repeated Idempotency-Key.",
            load(&api->idempotent_replays));
    counter(b, "switchboard_auth_signup_rate_limited_total", "Sign-ups refused by the per-address limit.",
            load(&api->signup_rate_limited));
    counter(b, "switchboard_chat_rate_limited_total",
            "Website chat sessions and messages refused by the per-address and per-visitor limits.",
            load(&api->chat_rate_limited));
}

static void sse_metrics(sb_buf_t *b, sb_api_t *api)
{
    sb_sse_t *sse = api->app->sse;
    if (sse == NULL)
        return;
    sb_sse_stats_t st;
    sb_sse_get_stats(sse, &st);
    gauge(b, "switchboard_sse_clients", "Event streams connected now.", st.clients);
    counter(b, "switchboard_sse_streams_total", "Event streams started.", st.accepted);
    counter(b, "switchboard_sse_dropped_slow_total", "Event streams dropped because a send stalled.",
            st.dropped_slow);
    counter(b, "switchboard_sse_events_sent_total", "SSE messages sent.", st.events_sent);
}

static void reactor_metrics(sb_buf_t *b)
{
    sb_messaging_t *m = sb_messaging_current();
    if (m == NULL)
        return;
    sb_messaging_stats_t s;
    sb_messaging_get_stats(m, &s);
    gauge(b, "switchboard_reactors_leader", "1 while this process holds the lease and runs the reactors.",
          s.leader);
    counter(b, "switchboard_outbox_jobs_total", "Outbox jobs started.", s.outbox_jobs);
    counter(b, "switchboard_outbox_sent_total", "Messages the providers accepted.", s.outbox_sent);
    counter(b, "switchboard_outbox_failed_total", "Messages that failed for good.", s.outbox_failed);
    counter(b, "switchboard_outbox_attempts_total", "Send attempts, retries included.", s.outbox_attempts);
    counter(b, "switchboard_outbox_retries_total", "Send attempts after the first.", s.outbox_retries);
    counter(b, "switchboard_outbox_reconciled_total", "Sends of unknown outcome looked up at the provider.",
            s.outbox_reconciled);
    gauge(b, "switchboard_scheduler_pending", "Scheduled messages waiting for their time.",
          s.scheduler_pending);
    counter(b, "switchboard_scheduler_dispatched_total", "Scheduled messages dispatched.",
            s.scheduler_dispatched);
    counter(b, "switchboard_calls_jobs_total", "Call control jobs started (events acted on, parking rings).",
            s.calls_jobs);
    gauge(b, "switchboard_calls_jobs_pending", "Call control jobs waiting or running.", s.calls_pending);
    counter(b, "switchboard_calls_requests_total",
            "Twilio requests call control made (calls and live updates).", s.calls_requests);
    counter(b, "switchboard_calls_retries_total", "Attempts of call control's requests after the first.",
            s.calls_retries);
    counter(b, "switchboard_calls_failures_total", "Call control requests and jobs that failed for good.",
            s.calls_failures);
    counter(b, "switchboard_calls_parking_rings_total", "Parkers rung for a call parked past the limit.",
            s.calls_rung);
    gauge(b, "switchboard_calls_parked", "Calls parked now (call control's parking-limit timers).",
          s.calls_parked);
}

static int on_metrics(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_api_t *api = data;
    sb_buf_t b = SB_BUF_INIT;
    http_metrics(&b, api);
    log_metrics(&b, api, sb_loop_current());
    actor_metrics(&b, api);
    api_metrics(&b, api);
    sse_metrics(&b, api);
    reactor_metrics(&b);
    if (api->app->projections != NULL)
        sb_projections_metrics_text(api->app->projections, &b);
    sb_http_send_body(req, 200, "text/plain; version=0.0.4; charset=utf-8", b.data ? b.data : "", b.len);
    sb_buf_free(&b);
    return 0;
}

int sb__api_metrics_routes(sb_router_t *r, sb_api_t *api)
{
    return sb_router_add(r, "GET", "/metrics", on_metrics, api);
}
