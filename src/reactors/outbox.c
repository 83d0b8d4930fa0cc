/* The outbox sender.  See outbox.h; the provider requests are in outbox_send.c.
 *
 * A job per queued message, steps one at a time (never two of one job at once):
 *
 *   begin -> the contact's state (still queued? attempts recorded?) -> the workspace's configuration
 *     -> [an attempt of unknown outcome: reconcile first] -> RecordSendAttempt -> provider request
 *     -> RecordMessageStatus (sent | failed)                 -> done
 *        \-> retryable: a timer, then another attempt (or a reconcile when the outcome is unknown)
 *
 * Jobs are kept in the order their MessageQueued events came (position order); the checkpoint is
 * just before the oldest job still open, or the subscription's position when none is. */
#include "reactors/outbox.h"

#include <stdlib.h>
#include <string.h>

#include "actors/runtime.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "events/codec.h"
#include "reactors/messaging_int.h"
#include "reactors/outbox_int.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#define TICK_MS 500
#define RETRY_LATER_MS 1000

/* ---- jobs -------------------------------------------------------------------------------------- */

static void on_job_timer_closed(uv_handle_t *h)
{
    sb__ob_job_t *j = container_of((uv_timer_t *)h, sb__ob_job_t, timer);
    sb_outbox_t *o = j->o;
    json_decref(j->msg);
    json_decref(j->known_pids);
    if (j->conf != NULL)
        sb_wsconf_unref(j->conf);
    free(j);
    o->nalive--;
    sb__ob_maybe_free(o);
}

/* Unlinks j and frees it (after its timer closes). */
static void job_free(sb__ob_job_t *j)
{
    sb_outbox_t *o = j->o;
    if (j->linked) {
        if (j->prev != NULL)
            j->prev->next = j->next;
        else
            o->head = j->next;
        if (j->next != NULL)
            j->next->prev = j->prev;
        else
            o->tail = j->prev;
        sb_idmap_del(&o->jobs, j->message_id);
        j->linked = false;
        o->njobs--;
    }
    uv_timer_stop(&j->timer);
    uv_close((uv_handle_t *)&j->timer, on_job_timer_closed);
    if (o->sub != NULL && o->paused && o->njobs <= o->opts.max_jobs / 2) {
        o->paused = false;
        sb_sub_resume(o->sub);
    }
}

void sb__ob_done(sb__ob_job_t *j)
{
    j->busy = false;
    job_free(j);
}

bool sb__ob_back(sb__ob_job_t *j)
{
    j->busy = false;
    if (j->o->stopping) {
        job_free(j);
        return false;
    }
    return true;
}

static void on_timer(uv_timer_t *t)
{
    sb__ob_job_t *j = container_of(t, sb__ob_job_t, timer);
    void (*next)(sb__ob_job_t *) = j->after_timer;
    j->after_timer = NULL;
    if (next != NULL && !j->o->stopping)
        next(j);
}

void sb__ob_later(sb__ob_job_t *j, uint64_t ms, void (*next)(sb__ob_job_t *j))
{
    j->after_timer = next;
    uv_timer_start(&j->timer, on_timer, ms, 0);
}

/* ---- recording outcomes -------------------------------------------------------------------------- */

static void record(sb__ob_job_t *j);

static void on_recorded(const sb_ask_reply_t *reply, void *data)
{
    sb__ob_job_t *j = data;
    if (!sb__ob_back(j))
        return;
    if (reply->status != 0 && reply->status != SB_EREJECTED) {
        sb__ob_later(j, RETRY_LATER_MS, record); /* the actor could not take it now */
        return;
    }
    bool sent = strcmp(j->status, "sent") == 0;
    if (reply->status == 0) {
        if (sent)
            j->o->stats.sent++;
        else
            j->o->stats.failed++;
    }
    if (sent)
        sb_log_debug("outbox", "message %s sent provider_id=%s", j->message_id, j->provider_id);
    else
        sb_log_info("outbox", "message %s failed code=%s: %s", j->message_id, j->code, j->error);
    sb__ob_done(j);
}

static void record(sb__ob_job_t *j)
{
    json_t *cmd = json_pack("{s:s, s:s, s:s}", "type", "RecordMessageStatus", "message_id", j->message_id,
                            "status", j->status);
    if (j->provider_id[0] != '\0')
        json_object_set_new(cmd, "provider_id", json_string(j->provider_id));
    if (j->code[0] != '\0')
        json_object_set_new(cmd, "error_code", json_string(j->code));
    if (j->error[0] != '\0')
        json_object_set_new(cmd, "error", json_string(j->error));
    char stream[16 + SB_UUID_STRLEN];
    snprintf(stream, sizeof(stream), "contact-%s", j->contact_id);
    sb_ask_opts_t opts = {.source = "reactor:outbox",
                          .correlation_id = j->message_id,
                          .workspace_id = j->workspace_id,
                          .skip_state = true,
                          .skip_event_data = true};
    j->busy = true;
    if (sb_actor_ask(sb_messaging_loops(sb_messaging_current()), stream, cmd, &opts, on_recorded, j) != 0) {
        j->busy = false;
        sb__ob_later(j, RETRY_LATER_MS, record);
    }
}

void sb__ob_sent(sb__ob_job_t *j, const char *provider_id)
{
    snprintf(j->status, sizeof(j->status), "sent");
    snprintf(j->provider_id, sizeof(j->provider_id), "%s", provider_id);
    j->code[0] = j->error[0] = '\0';
    record(j);
}

void sb__ob_failed(sb__ob_job_t *j, const char *code, const char *error)
{
    snprintf(j->status, sizeof(j->status), "failed");
    j->provider_id[0] = '\0';
    snprintf(j->code, sizeof(j->code), "%s", code != NULL ? code : "");
    /* Not valid UTF-8 (a provider's text cut short): keep the code only. */
    snprintf(j->error, sizeof(j->error), "%s", error != NULL ? error : "");
    json_t *probe = json_string(j->error);
    if (probe == NULL)
        j->error[0] = '\0';
    json_decref(probe);
    record(j);
}

/* ---- attempts ------------------------------------------------------------------------------------ */

static void begin(sb__ob_job_t *j);

static void on_attempt(const sb_ask_reply_t *reply, void *data)
{
    sb__ob_job_t *j = data;
    if (!sb__ob_back(j))
        return;
    if (reply->status == 0) {
        j->attempts++;
        j->attempted_at_us = sb_clock_now_us();
        j->unknown = true; /* until the provider answers */
        j->o->stats.attempts++;
        sb__ob_send(j);
        return;
    }
    if (reply->status != SB_EREJECTED || reply->err == NULL) {
        sb__ob_later(j, RETRY_LATER_MS, sb__ob_attempt);
        return;
    }
    const char *code = reply->err->code;
    if (strcmp(code, "opted_out") == 0)
        sb__ob_failed(j, "opted_out", "the contact opted out before it was sent");
    else if (strcmp(code, "contact_deleted") == 0)
        sb__ob_failed(j, "contact_deleted", "the contact was deleted before it was sent");
    else if (strcmp(code, "attempt_conflict") == 0)
        sb__ob_later(j, RETRY_LATER_MS, begin); /* another outbox recorded it: read again */
    else
        sb__ob_done(j); /* not_queued, unknown_message: nothing left to do */
}

void sb__ob_attempt(sb__ob_job_t *j)
{
    if (j->attempts >= j->o->opts.retry.max_attempts) {
        sb__ob_failed(j, "provider_unavailable", "the provider could not be reached");
        return;
    }
    char stream[16 + SB_UUID_STRLEN];
    snprintf(stream, sizeof(stream), "contact-%s", j->contact_id);
    json_t *cmd = json_pack("{s:s, s:s, s:i}", "type", "RecordSendAttempt", "message_id", j->message_id,
                            "attempt", j->attempts + 1);
    sb_ask_opts_t opts = {.source = "reactor:outbox",
                          .correlation_id = j->message_id,
                          .workspace_id = j->workspace_id,
                          .skip_state = true,
                          .skip_event_data = true};
    j->busy = true;
    if (sb_actor_ask(sb_messaging_loops(sb_messaging_current()), stream, cmd, &opts, on_attempt, j) != 0) {
        j->busy = false;
        sb__ob_later(j, RETRY_LATER_MS, sb__ob_attempt);
    }
}

/* ---- the start of a job ------------------------------------------------------------------------------ */

static void on_conf(int status, const sb_wsconf_t *conf, void *data)
{
    sb__ob_job_t *j = data;
    if (!sb__ob_back(j))
        return;
    if (status == SB_ENOTFOUND) {
        sb__ob_failed(j, "not_configured", "the workspace does not exist");
        return;
    }
    if (status != 0) {
        sb__ob_later(j, RETRY_LATER_MS, begin);
        return;
    }
    if (j->conf != NULL)
        sb_wsconf_unref(j->conf);
    j->conf = conf;
    sb_wsconf_ref(conf);
    /* An attempt whose outcome nobody knows (a crash, a lost lease) may have reached Twilio. */
    if (j->unknown && sb__ob_is_twilio(j)) {
        sb__ob_reconcile(j);
        return;
    }
    sb__ob_attempt(j);
}

static void on_state(const sb_ask_reply_t *reply, void *data)
{
    sb__ob_job_t *j = data;
    if (!sb__ob_back(j))
        return;
    if (reply->status != 0 || reply->state == NULL) {
        sb__ob_later(j, RETRY_LATER_MS, begin);
        return;
    }
    const json_t *messages = json_object_get(reply->state, "messages");
    const json_t *m = json_object_get(messages, j->message_id);
    const char *status = json_string_value(json_object_get(m, "status"));
    if (status == NULL || strcmp(status, "queued") != 0) {
        sb__ob_done(j); /* sent, failed, forgotten: someone finished it */
        return;
    }
    j->attempts = (int)json_integer_value(json_object_get(m, "attempts"));
    const char *at = json_string_value(json_object_get(m, "attempted_at"));
    int64_t at_us = 0;
    if (at != NULL)
        sb_clock_parse_rfc3339(at, &at_us);
    j->attempted_at_us = at_us;
    j->unknown = j->attempts > 0;
    /* The provider ids this contact already has: a message found at Twilio with one of them is
     * another message, not ours. */
    json_decref(j->known_pids);
    j->known_pids = json_object();
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)messages, k, v)
    {
        const char *pid = json_string_value(json_object_get(v, "provider_id"));
        if (pid != NULL)
            json_object_set_new(j->known_pids, pid, json_true());
    }
    j->busy = true;
    int rc = sb_wsconf_get(j->workspace_id, 0, on_conf, j);
    if (rc != 0) {
        j->busy = false;
        sb__ob_later(j, RETRY_LATER_MS, begin);
    }
}

static void begin(sb__ob_job_t *j)
{
    char stream[16 + SB_UUID_STRLEN];
    snprintf(stream, sizeof(stream), "contact-%s", j->contact_id);
    /* refresh: another process's outbox may have recorded an attempt or an outcome. */
    sb_ask_opts_t opts = {.source = "reactor:outbox", .refresh = true, .skip_event_data = true};
    j->busy = true;
    if (sb_actor_get(sb_messaging_loops(sb_messaging_current()), stream, &opts, on_state, j) != 0) {
        j->busy = false;
        sb__ob_later(j, RETRY_LATER_MS, begin);
    }
}

/* A job for a MessageQueued event. */
static void add_job(sb_outbox_t *o, const sb_event_t *ev)
{
    json_t *p = NULL;
    if (strncmp(ev->stream, "contact-", 8) != 0 || strlen(ev->stream) != 8 + SB_UUID_STRLEN ||
        !ev->has_workspace || sb_codec_to_jansson(ev->payload, ev->payload_len, &p, NULL, 0) != 0) {
        sb_log_error("outbox", "event %lld is not a message we can send", (long long)ev->position);
        return;
    }
    const char *mid = json_string_value(json_object_get(p, "message_id"));
    if (mid == NULL || strlen(mid) != SB_UUID_STRLEN || sb_idmap_get(&o->jobs, mid) != NULL) {
        json_decref(p);
        return;
    }
    sb__ob_job_t *j = calloc(1, sizeof(*j));
    if (j == NULL) {
        json_decref(p);
        sb_log_error("outbox", "out of memory: message %s waits for the next start", mid);
        return;
    }
    j->o = o;
    j->msg = p;
    j->position = ev->position;
    memcpy(j->message_id, mid, SB_UUID_STRLEN);
    memcpy(j->contact_id, ev->stream + 8, SB_UUID_STRLEN);
    sb_uuid_format(&ev->workspace, j->workspace_id);
    uv_timer_init(&o->loop->uv, &j->timer);
    o->nalive++;
    if (sb_idmap_put(&o->jobs, j->message_id, j) != 0) {
        job_free(j);
        return;
    }
    j->linked = true;
    j->prev = o->tail;
    if (o->tail != NULL)
        o->tail->next = j;
    else
        o->head = j;
    o->tail = j;
    o->njobs++;
    o->stats.jobs++;
    begin(j);
}

/* ---- following the log -------------------------------------------------------------------------------- */

static void on_events(sb_sub_t *s, const sb_event_t *events, int n, void *data)
{
    sb_outbox_t *o = data;
    for (int i = 0; i < n; i++)
        if (strcmp(events[i].type, "MessageQueued") == 0)
            add_job(o, &events[i]);
    if (o->njobs >= o->opts.max_jobs && !o->paused) {
        o->paused = true;
        sb_sub_pause(s);
    }
}

static int64_t checkpoint_now(const sb_outbox_t *o)
{
    if (o->head != NULL)
        return o->head->position - 1;
    return o->sub != NULL ? sb_sub_position(o->sub) : o->saved;
}

static void on_saved(sb_pg_req_t *req, int status)
{
    sb_outbox_t *o = req->data;
    o->saving = false;
    if (status == 0)
        o->saved = o->saving_at;
    else
        sb_log_warn("outbox", "checkpoint not saved: %s",
                    req->error != NULL ? req->error : sb_strerror(status));
    sb__ob_maybe_free(o);
}

static void save_checkpoint(sb_outbox_t *o)
{
    int64_t cp = checkpoint_now(o);
    if (o->saving || cp <= o->saved || o->loop->db == NULL)
        return;
    o->saving = true;
    o->saving_at = cp;
    snprintf(o->param, sizeof(o->param), "%lld", (long long)cp);
    o->params[0] = o->param;
    sb_pg_req_init(&o->req,
                   "INSERT INTO checkpoints (name, position) VALUES ('outbox', $1) "
                   "ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = now()",
                   1, o->params, on_saved, o);
    o->req.stmts[0].name = "sb_outbox_checkpoint";
    sb_pg_submit(o->loop->db, &o->req);
}

static void on_tick(uv_timer_t *t)
{
    sb_outbox_t *o = container_of(t, sb_outbox_t, tick);
    save_checkpoint(o);
}

static void load(sb_outbox_t *o);

static void on_load_again(uv_timer_t *t)
{
    load(container_of(t, sb_outbox_t, tick));
}

static void on_loaded(sb_pg_req_t *req, int status)
{
    sb_outbox_t *o = req->data;
    o->saving = false;
    if (o->stopping) {
        sb__ob_maybe_free(o);
        return;
    }
    if (status != 0) {
        sb_log_warn("outbox", "cannot read the checkpoint (%s): trying again",
                    req->error != NULL ? req->error : sb_strerror(status));
        uv_timer_start(&o->tick, on_load_again, RETRY_LATER_MS, 0);
        return;
    }
    int64_t from = 0;
    if (PQntuples(req->results[0]) == 1)
        from = strtoll(PQgetvalue(req->results[0], 0, 0), NULL, 10);
    o->saved = from;
    static const char *const categories[] = {"contact"};
    static const char *const types[] = {"MessageQueued"};
    sb_log_filter_t f = {.categories = categories, .ncategories = 1, .types = types, .ntypes = 1};
    sb_messaging_t *m = sb_messaging_current();
    o->sub = sb_follower_subscribe(m->opts.follower, o->loop->db, from, &f, on_events, o);
    if (o->sub == NULL) {
        sb_log_error("outbox", "cannot follow the log: out of memory");
        return;
    }
    sb_log_info("outbox", "running from position %lld", (long long)from);
    uv_timer_start(&o->tick, on_tick, TICK_MS, TICK_MS);
}

static void load(sb_outbox_t *o)
{
    o->saving = true; /* the request slot is in use */
    sb_pg_req_init(&o->req, "SELECT position FROM checkpoints WHERE name = 'outbox'", 0, NULL, on_loaded, o);
    sb_pg_submit(o->loop->db, &o->req);
}

/* ---- start and stop --------------------------------------------------------------------------------------
 */

static void on_tick_closed(uv_handle_t *h)
{
    sb_outbox_t *o = container_of((uv_timer_t *)h, sb_outbox_t, tick);
    o->tick_open = false;
    sb__ob_maybe_free(o);
}

void sb__ob_maybe_free(sb_outbox_t *o)
{
    if (!o->stopping || o->nalive > 0 || o->saving || o->tick_open)
        return;
    sb_idmap_free(&o->jobs);
    free(o);
}

int sb_outbox_start(sb_outbox_t **out, const sb_outbox_options_t *opts)
{
    sb_loop_t *loop = sb_loop_current();
    *out = NULL;
    if (loop == NULL || loop->db == NULL || sb_messaging_current() == NULL)
        return SB_EINVAL;
    sb_outbox_t *o = calloc(1, sizeof(*o));
    if (o == NULL)
        return SB_ENOMEM;
    o->loop = loop;
    o->opts = *opts;
    if (o->opts.max_jobs <= 0)
        o->opts.max_jobs = 512;
    if (o->opts.reconcile_after_ms == 0)
        o->opts.reconcile_after_ms = 60000;
    if (o->opts.retry.max_attempts <= 0)
        o->opts.retry.max_attempts = 6;
    uv_timer_init(&loop->uv, &o->tick);
    o->tick_open = true;
    load(o);
    *out = o;
    return 0;
}

void sb_outbox_stop(sb_outbox_t *o)
{
    if (o == NULL || o->stopping)
        return;
    o->stopping = true;
    save_checkpoint(o); /* what is done is done: the next outbox need not look at it again */
    if (o->sub != NULL) {
        sb_sub_close(o->sub);
        o->sub = NULL;
    }
    for (sb__ob_job_t *j = o->head, *next; j != NULL; j = next) {
        next = j->next;
        sb__ob_cancel_request(j);
        if (!j->busy)
            job_free(j); /* else its pending callback frees it */
    }
    uv_timer_stop(&o->tick);
    uv_close((uv_handle_t *)&o->tick, on_tick_closed);
}

void sb_outbox_get_stats(const sb_outbox_t *o, sb_outbox_stats_t *out)
{
    *out = o->stats;
    out->checkpoint = o->saved;
}
