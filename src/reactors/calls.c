/* Call control: jobs, their order, the checkpoint.  See calls.h; the Twilio side of each job is in
 * calls_act.c, the parking timers in calls_park.c.
 *
 *   event -> job -> (wait for the call's earlier job) -> the call's state (refreshed) -> the
 *   workspace's configuration -> sb__cc_act -> requests -> done -> the call's next job
 *
 * The checkpoint is just before the oldest job still open, or the subscription's position when
 * none is: what is behind it has been done. */
#include "reactors/calls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "events/codec.h"
#include "reactors/calls_int.h"
#include "reactors/messaging_int.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#define TICK_MS 500
#define RETRY_LATER_MS 1000
#define MAX_TRIES 30 /* reads and records that keep failing: about half a minute, then give up */
#define MAX_JOBS 256

static const char *const types[] = {"CallInitiated",   "CallParked",         "CallUnparked",
                                    "CallTransferred", "CallTransferFailed", "CallHangupRequested"};

/* ---- jobs -------------------------------------------------------------------------------------- */

static void start(sb__cc_job_t *j);

static void on_job_closed(uv_handle_t *h)
{
    sb__cc_job_t *j = container_of((uv_timer_t *)h, sb__cc_job_t, timer);
    sb_calls_t *cc = j->cc;
    json_decref(j->data);
    json_decref(j->state);
    free(j->leg_twiml);
    if (j->conf != NULL)
        sb_wsconf_unref(j->conf);
    free(j);
    cc->nalive--;
    sb__cc_maybe_free(cc);
}

static void job_free(sb__cc_job_t *j)
{
    sb_calls_t *cc = j->cc;
    char call_id[SB_UUID_STRLEN + 1];
    bool was_running = j->running;
    memcpy(call_id, j->call_id, sizeof call_id);
    if (j->running) {
        sb_idmap_del(&cc->running, j->call_id);
        j->running = false;
    }
    sb__cc_job_t *next = j->next;
    if (j->linked) {
        if (j->prev != NULL)
            j->prev->next = j->next;
        else
            cc->head = j->next;
        if (j->next != NULL)
            j->next->prev = j->prev;
        else
            cc->tail = j->prev;
        j->linked = false;
        cc->njobs--;
    }
    if (j->tw != NULL) {
        sb_twilio_cancel(j->tw);
        j->tw = NULL;
    }
    uv_timer_stop(&j->timer);
    uv_close((uv_handle_t *)&j->timer, on_job_closed);
    if (cc->stopping)
        return;
    /* The call's next job, in order. */
    if (was_running) {
        for (sb__cc_job_t *n = next; n != NULL; n = n->next) {
            if (strcmp(n->call_id, call_id) == 0) {
                start(n);
                break;
            }
        }
    }
    if (cc->sub != NULL && cc->paused && cc->njobs <= MAX_JOBS / 2) {
        cc->paused = false;
        sb_sub_resume(cc->sub);
    }
}

void sb__cc_done(sb__cc_job_t *j)
{
    j->busy = false;
    job_free(j);
}

bool sb__cc_back(sb__cc_job_t *j)
{
    j->busy = false;
    if (j->cc->stopping) {
        job_free(j);
        return false;
    }
    return true;
}

static void on_timer(uv_timer_t *t)
{
    sb__cc_job_t *j = container_of(t, sb__cc_job_t, timer);
    void (*next)(sb__cc_job_t *) = j->after_timer;
    j->after_timer = NULL;
    if (next != NULL && !j->cc->stopping)
        next(j);
}

void sb__cc_later(sb__cc_job_t *j, uint64_t ms, void (*next)(sb__cc_job_t *j))
{
    if (++j->tries > MAX_TRIES) {
        sb_log_error("calls", "call %s: giving up on %s after %d tries", j->call_id, j->type, j->tries - 1);
        j->cc->stats.failures++;
        sb__cc_done(j);
        return;
    }
    j->after_timer = next;
    uv_timer_start(&j->timer, on_timer, ms, 0);
}

void sb__cc_ask(sb__cc_job_t *j, json_t *cmd, void (*cb)(const sb_ask_reply_t *, void *))
{
    char stream[8 + SB_UUID_STRLEN];
    snprintf(stream, sizeof stream, "call-%s", j->call_id);
    sb_ask_opts_t opts = {.source = "reactor:calls",
                          .correlation_id = j->call_id,
                          .workspace_id = j->workspace_id,
                          .context = j->conf != NULL ? j->conf->context : NULL,
                          .skip_event_data = true};
    j->busy = true;
    int rc = sb_actor_ask(sb_messaging_loops(sb_messaging_current()), stream, cmd, &opts, cb, j);
    if (rc != 0) {
        j->busy = false;
        sb_log_error("calls", "call %s: cannot ask the call: %s", j->call_id, sb_strerror(rc));
        sb__cc_done(j);
    }
}

/* ---- the start of a job: state, then configuration ------------------------------------------------ */

static void begin(sb__cc_job_t *j);

static void on_conf(int status, const sb_wsconf_t *conf, void *data)
{
    sb__cc_job_t *j = data;
    if (!sb__cc_back(j))
        return;
    if (status == SB_ENOTFOUND || status == SB_EPERM) {
        sb_log_warn("calls", "call %s: the workspace's configuration cannot be read: %s", j->call_id,
                    sb_strerror(status));
        sb__cc_done(j);
        return;
    }
    if (status != 0) {
        sb__cc_later(j, RETRY_LATER_MS, begin);
        return;
    }
    if (j->conf != NULL)
        sb_wsconf_unref(j->conf);
    j->conf = conf;
    sb_wsconf_ref(conf);
    sb__cc_act(j); /* which also decides what to do without Twilio */
}

static void on_state(const sb_ask_reply_t *reply, void *data)
{
    sb__cc_job_t *j = data;
    if (!sb__cc_back(j))
        return;
    if (reply->status != 0 || reply->state == NULL) {
        sb__cc_later(j, RETRY_LATER_MS, begin);
        return;
    }
    json_decref(j->state);
    j->state = json_incref(reply->state);
    if (!json_is_true(json_object_get(j->state, "created"))) {
        sb__cc_done(j);
        return;
    }
    j->busy = true;
    if (sb_wsconf_get(j->workspace_id, 0, on_conf, j) != 0) {
        j->busy = false;
        sb__cc_later(j, RETRY_LATER_MS, begin);
    }
}

static void begin(sb__cc_job_t *j)
{
    char stream[8 + SB_UUID_STRLEN];
    snprintf(stream, sizeof stream, "call-%s", j->call_id);
    /* refresh: the call may have moved on in another process. */
    sb_ask_opts_t opts = {.source = "reactor:calls", .refresh = true, .skip_event_data = true};
    j->busy = true;
    if (sb_actor_get(sb_messaging_loops(sb_messaging_current()), stream, &opts, on_state, j) != 0) {
        j->busy = false;
        sb__cc_later(j, RETRY_LATER_MS, begin);
    }
}

static void start(sb__cc_job_t *j)
{
    j->running = true;
    if (sb_idmap_put(&j->cc->running, j->call_id, j) != 0) {
        j->running = false;
        sb_log_error("calls", "out of memory: call %s's %s is dropped", j->call_id, j->type);
        sb__cc_done(j);
        return;
    }
    begin(j);
}

void sb__cc_add(sb_calls_t *cc, int64_t position, int64_t version, const char *type, const char *call_id,
                const char *workspace_id, json_t *data)
{
    sb__cc_job_t *j = calloc(1, sizeof(*j));
    if (j == NULL) {
        json_decref(data);
        sb_log_error("calls", "out of memory: call %s's %s is dropped", call_id, type);
        return;
    }
    j->cc = cc;
    j->position = position;
    j->version = version;
    snprintf(j->type, sizeof j->type, "%s", type);
    snprintf(j->call_id, sizeof j->call_id, "%s", call_id);
    snprintf(j->workspace_id, sizeof j->workspace_id, "%s", workspace_id);
    j->data = data;
    uv_timer_init(&cc->loop->uv, &j->timer);
    cc->nalive++;
    j->linked = true;
    j->prev = cc->tail;
    if (cc->tail != NULL)
        cc->tail->next = j;
    else
        cc->head = j;
    cc->tail = j;
    cc->njobs++;
    cc->stats.jobs++;
    if (sb_idmap_get(&cc->running, j->call_id) == NULL)
        start(j);
}

/* ---- following the log ------------------------------------------------------------------------------ */

static void on_events(sb_sub_t *s, const sb_event_t *events, int n, void *data)
{
    sb_calls_t *cc = data;
    for (int i = 0; i < n; i++) {
        const sb_event_t *ev = &events[i];
        json_t *p = NULL;
        if (strncmp(ev->stream, "call-", 5) != 0 || strlen(ev->stream) != 5 + SB_UUID_STRLEN ||
            !ev->has_workspace || sb_codec_to_jansson(ev->payload, ev->payload_len, &p, NULL, 0) != 0) {
            sb_log_error("calls", "event %lld is not a call event we can act on", (long long)ev->position);
            continue;
        }
        /* Most calls never need call control: inbound calls (and browser calls) arrive with their
         * CallSid, and a cold transfer's way back is the <Dial> action's answer.  No job for them. */
        const char *dir = json_string_value(json_object_get(p, "direction"));
        const char *mode = json_string_value(json_object_get(p, "mode"));
        if ((strcmp(ev->type, "CallInitiated") == 0 && (dir == NULL || strcmp(dir, "outbound") != 0 ||
                                                        json_is_string(json_object_get(p, "call_sid")))) ||
            (strcmp(ev->type, "CallTransferFailed") == 0 && (mode == NULL || strcmp(mode, "warm") != 0))) {
            json_decref(p);
            continue;
        }
        char ws[SB_UUID_STRLEN + 1];
        sb_uuid_format(&ev->workspace, ws);
        sb__cc_add(cc, ev->position, ev->version, ev->type, ev->stream + 5, ws, p);
    }
    if (cc->njobs >= MAX_JOBS && !cc->paused) {
        cc->paused = true;
        sb_sub_pause(s);
    }
}

static int64_t checkpoint_now(const sb_calls_t *cc)
{
    for (const sb__cc_job_t *j = cc->head; j != NULL; j = j->next)
        if (j->position > 0)
            return j->position - 1;
    return cc->sub != NULL ? sb_sub_position(cc->sub) : cc->saved;
}

static void on_saved(sb_pg_req_t *req, int status)
{
    sb_calls_t *cc = req->data;
    cc->saving = false;
    if (status == 0)
        cc->saved = cc->saving_at;
    else
        sb_log_warn("calls", "checkpoint not saved: %s",
                    req->error != NULL ? req->error : sb_strerror(status));
    sb__cc_maybe_free(cc);
}

static void save_checkpoint(sb_calls_t *cc)
{
    int64_t cp = checkpoint_now(cc);
    if (cc->saving || cp <= cc->saved || cc->loop->db == NULL)
        return;
    cc->saving = true;
    cc->saving_at = cp;
    snprintf(cc->param, sizeof cc->param, "%lld", (long long)cp);
    cc->params[0] = cc->param;
    sb_pg_req_init(&cc->req,
                   "INSERT INTO checkpoints (name, position) VALUES ('calls', $1) "
                   "ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = now()",
                   1, cc->params, on_saved, cc);
    cc->req.stmts[0].name = "sb_calls_checkpoint";
    sb_pg_submit(cc->loop->db, &cc->req);
}

static void on_tick(uv_timer_t *t)
{
    save_checkpoint(container_of(t, sb_calls_t, tick));
}

static void load(sb_calls_t *cc);

static void on_load_again(uv_timer_t *t)
{
    load(container_of(t, sb_calls_t, tick));
}

static void on_loaded(sb_pg_req_t *req, int status)
{
    sb_calls_t *cc = req->data;
    cc->saving = false;
    if (cc->stopping) {
        sb__cc_maybe_free(cc);
        return;
    }
    if (status != 0) {
        sb_log_warn("calls", "cannot read the checkpoint (%s): trying again",
                    req->error != NULL ? req->error : sb_strerror(status));
        uv_timer_start(&cc->tick, on_load_again, RETRY_LATER_MS, 0);
        return;
    }
    int64_t from = 0;
    if (PQntuples(req->results[0]) == 1)
        from = strtoll(PQgetvalue(req->results[0], 0, 0), NULL, 10);
    cc->saved = from;
    static const char *const categories[] = {"call"};
    sb_log_filter_t f = {
        .categories = categories, .ncategories = 1, .types = types, .ntypes = sizeof types / sizeof types[0]};
    sb_messaging_t *m = sb_messaging_current();
    cc->sub = sb_follower_subscribe(m->opts.follower, cc->loop->db, cc->saved, &f, on_events, cc);
    if (cc->sub == NULL) {
        sb_log_error("calls", "cannot follow the log: out of memory");
        return;
    }
    sb_log_info("calls", "running from position %lld", (long long)cc->saved);
    uv_timer_start(&cc->tick, on_tick, TICK_MS, TICK_MS);
}

static void load(sb_calls_t *cc)
{
    cc->saving = true; /* the request slot is in use */
    sb_pg_req_init(&cc->req, "SELECT position FROM checkpoints WHERE name = 'calls'", 0, NULL, on_loaded, cc);
    sb_pg_submit(cc->loop->db, &cc->req);
}

/* ---- start and stop ---------------------------------------------------------------------------------- */

static void on_tick_closed(uv_handle_t *h)
{
    sb_calls_t *cc = container_of((uv_timer_t *)h, sb_calls_t, tick);
    cc->tick_open = false;
    sb__cc_maybe_free(cc);
}

void sb__cc_maybe_free(sb_calls_t *cc)
{
    if (!cc->stopping || cc->nalive > 0 || cc->saving || cc->tick_open || sb__cc_park_alive(cc))
        return;
    sb_idmap_free(&cc->running);
    free(cc);
}

int sb_calls_start(sb_calls_t **out)
{
    sb_loop_t *loop = sb_loop_current();
    *out = NULL;
    if (loop == NULL || loop->db == NULL || sb_messaging_current() == NULL)
        return SB_EINVAL;
    sb_calls_t *cc = calloc(1, sizeof(*cc));
    if (cc == NULL)
        return SB_ENOMEM;
    cc->loop = loop;
    /* Creating a leg is not idempotent: retried only when the request never left.  Redirects and
     * hang-ups are: retried after any failure. */
    cc->create_retry = (sb_http_retry_t){.max_attempts = 4, .base_ms = 500, .cap_ms = 4000};
    cc->update_retry =
        (sb_http_retry_t){.max_attempts = 4, .base_ms = 500, .cap_ms = 4000, .after_sent = true};
    int rc = sb__cc_park_start(cc);
    if (rc != 0) {
        free(cc);
        return rc;
    }
    uv_timer_init(&loop->uv, &cc->tick);
    cc->tick_open = true;
    load(cc);
    *out = cc;
    return 0;
}

void sb_calls_stop(sb_calls_t *cc)
{
    if (cc == NULL || cc->stopping)
        return;
    cc->stopping = true;
    save_checkpoint(cc);
    if (cc->sub != NULL) {
        sb_sub_close(cc->sub);
        cc->sub = NULL;
    }
    sb__cc_park_stop(cc);
    for (sb__cc_job_t *j = cc->head, *next; j != NULL; j = next) {
        next = j->next;
        if (j->tw != NULL) {
            sb_twilio_cancel(j->tw);
            j->tw = NULL;
            j->busy = false;
        }
        if (!j->busy)
            job_free(j); /* else its pending callback frees it */
    }
    uv_timer_stop(&cc->tick);
    uv_close((uv_handle_t *)&cc->tick, on_tick_closed);
}

void sb_calls_get_stats(const sb_calls_t *cc, sb_calls_stats_t *out)
{
    *out = cc->stats;
    out->checkpoint = cc->saved;
}
