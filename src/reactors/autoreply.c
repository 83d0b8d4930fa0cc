/* Auto-replies.  See autoreply.h.
 *
 * Inbound messages are handled one at a time, in log order; most match no rule and take no I/O at
 * all (the workspace's rules are in the loop's configuration cache).  The checkpoint is just before
 * the oldest message not yet handled. */
#include "reactors/autoreply.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "actors/runtime.h"
#include "core/error.h"
#include "core/log.h"
#include "events/codec.h"
#include "reactors/messaging_int.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#define MAX_MATCHES 3
#define MAX_QUEUED 4096
#define TICK_MS 1000
#define RETRY_MS 1000
#define KEYWORD_MAX 32

static const sb_uuid_t reply_ns = {
    {0x3d, 0x8f, 0x52, 0x1c, 0x9e, 0x07, 0x4b, 0x6a, 0xb1, 0x2e, 0x58, 0xc4, 0x70, 0x19, 0xa3, 0x66}};

typedef struct item_s {
    struct item_s *next;
    int64_t position;
    char contact[SB_UUID_STRLEN + 1];
    char workspace[SB_UUID_STRLEN + 1];
    json_t *msg;
    const char *kw[MAX_MATCHES];
    size_t nkw, next_kw;
    bool matched;
    sb_wsconf_t *conf;
} item_t;

struct sb_autoreply_s {
    sb_loop_t *loop;
    sb_sub_t *sub;
    bool paused;
    item_t *head, *tail;
    int queued;
    bool busy;
    int64_t saved, saving_at;
    bool saving;
    sb_pg_req_t req;
    const char *params[1];
    char param[24];
    uv_timer_t tick;
    bool tick_open;
    bool stopping;
};

/* ---- matching ------------------------------------------------------------------------------------ */

size_t sb_autoreply_match(const char *body, const void *rules_v, const char **out, size_t max)
{
    const json_t *rules = rules_v;
    size_t n = 0;
    if (body == NULL || json_object_size(rules) == 0)
        return 0;
    for (const char *p = body; *p && n < max;) {
        while (*p && !isalnum((unsigned char)*p))
            p++;
        const char *w = p;
        while (*p && isalnum((unsigned char)*p))
            p++;
        size_t len = (size_t)(p - w);
        if (len == 0 || len > KEYWORD_MAX)
            continue;
        char word[KEYWORD_MAX + 1];
        for (size_t i = 0; i < len; i++)
            word[i] = (char)tolower((unsigned char)w[i]);
        word[len] = '\0';
        /* Rules are stored under their keyword's own (lower-case) spelling: the key is the rule's. */
        const char *key;
        const json_t *v;
        json_object_foreach((json_t *)rules, key, v)
        {
            if (strcmp(key, word) != 0 || !json_is_string(v))
                continue;
            bool seen = false;
            for (size_t i = 0; i < n; i++)
                seen = seen || strcmp(out[i], key) == 0;
            if (!seen)
                out[n++] = key;
            break;
        }
    }
    return n;
}

void sb_autoreply_message_id(const char *contact_id, const char *keyword, const char *day,
                             char out[SB_UUID_STRLEN + 1])
{
    char name[256];
    int n = snprintf(name, sizeof(name), "autoreply:%s:%s:%s", contact_id, keyword, day);
    sb_uuid_t u;
    sb_uuid_from_name(&u, &reply_ns, name,
                      n < 0                      ? 0
                      : (size_t)n < sizeof(name) ? (size_t)n
                                                 : sizeof(name) - 1);
    sb_uuid_format(&u, out);
}

/* ---- the queue ------------------------------------------------------------------------------------ */

static void pump(sb_autoreply_t *a);

static void maybe_free(sb_autoreply_t *a)
{
    if (!a->stopping || a->busy || a->saving || a->tick_open)
        return;
    for (item_t *it = a->head, *next; it != NULL; it = next) {
        next = it->next;
        json_decref(it->msg);
        if (it->conf != NULL)
            sb_wsconf_unref(it->conf);
        free(it);
    }
    free(a);
}

static void pop(sb_autoreply_t *a)
{
    item_t *it = a->head;
    a->head = it->next;
    if (a->head == NULL)
        a->tail = NULL;
    a->queued--;
    json_decref(it->msg);
    if (it->conf != NULL)
        sb_wsconf_unref(it->conf);
    free(it);
    if (a->paused && a->sub != NULL && a->queued < MAX_QUEUED / 2) {
        a->paused = false;
        sb_sub_resume(a->sub);
    }
}

static void on_retry(uv_timer_t *t);

static void retry_later(sb_autoreply_t *a)
{
    /* The tick timer doubles as the retry timer: one item at a time, so one timer is enough. */
    uv_timer_start(&a->tick, on_retry, RETRY_MS, TICK_MS);
}

static void send_next(sb_autoreply_t *a);

static void on_sent(const sb_ask_reply_t *reply, void *data)
{
    sb_autoreply_t *a = data;
    a->busy = false;
    if (a->stopping) {
        maybe_free(a);
        return;
    }
    item_t *it = a->head;
    if (reply->status != 0 && reply->status != SB_EREJECTED) {
        retry_later(a); /* the actor could not take it now */
        return;
    }
    if (reply->status == 0 && reply->nevents > 0)
        sb_log_debug("autoreply", "replied to contact %s (%s)", it->contact, it->kw[it->next_kw]);
    it->next_kw++;
    send_next(a);
}

/* Sends the reply for the head item's next matched keyword, or moves on. */
static void send_next(sb_autoreply_t *a)
{
    item_t *it = a->head;
    if (it->next_kw >= it->nkw) {
        pop(a);
        pump(a);
        return;
    }
    const char *kw = it->kw[it->next_kw];
    const char *reply =
        json_string_value(json_object_get(json_object_get(it->conf->state, "auto_replies"), kw));
    const char *channel = json_string_value(json_object_get(it->msg, "channel"));
    const char *received = json_string_value(json_object_get(it->msg, "received_at"));
    char day[11] = "";
    if (received != NULL && strlen(received) >= 10)
        memcpy(day, received, 10);
    if (reply == NULL || channel == NULL || day[0] == '\0') {
        it->next_kw++;
        send_next(a);
        return;
    }
    char mid[SB_UUID_STRLEN + 1], stream[16 + SB_UUID_STRLEN];
    sb_autoreply_message_id(it->contact, kw, day, mid);
    snprintf(stream, sizeof(stream), "contact-%s", it->contact);
    bool chat = strcmp(channel, "chat") == 0;
    json_t *cmd = json_pack("{s:s, s:s, s:s, s:s}", "type", "SendMessage", "message_id", mid, "channel",
                            strcmp(channel, "mms") == 0 ? "sms" : channel, "body", reply);
    if (!chat) {
        /* Back to the number that wrote, from the number it wrote to. */
        json_object_set(cmd, "to", json_object_get(it->msg, "from"));
        json_object_set(cmd, "from", json_object_get(it->msg, "to"));
    }
    sb_ask_opts_t opts = {.context = it->conf->context,
                          .source = "reactor:autoreply",
                          .correlation_id = json_string_value(json_object_get(it->msg, "message_id")),
                          .causation_id = json_string_value(json_object_get(it->msg, "message_id")),
                          .workspace_id = it->workspace,
                          .skip_state = true,
                          .skip_event_data = true};
    a->busy = true;
    if (sb_actor_ask(sb_messaging_loops(sb_messaging_current()), stream, cmd, &opts, on_sent, a) != 0) {
        a->busy = false;
        retry_later(a);
    }
}

static void handle(sb_autoreply_t *a, const sb_wsconf_t *conf)
{
    item_t *it = a->head;
    const json_t *rules = json_object_get(conf->state, "auto_replies");
    it->nkw =
        sb_autoreply_match(json_string_value(json_object_get(it->msg, "body")), rules, it->kw, MAX_MATCHES);
    if (it->nkw == 0) {
        pop(a);
        return;
    }
    it->conf = (sb_wsconf_t *)conf;
    sb_wsconf_ref(conf);
    /* it->kw points into conf's state, which the item now keeps alive. */
    send_next(a);
}

static void on_conf(int status, const sb_wsconf_t *conf, void *data)
{
    sb_autoreply_t *a = data;
    a->busy = false;
    if (a->stopping) {
        maybe_free(a);
        return;
    }
    if (status == SB_ENOTFOUND) {
        pop(a);
    } else if (status != 0) {
        retry_later(a);
        return;
    } else {
        handle(a, conf);
        if (a->busy)
            return;
    }
    pump(a);
}

static void pump(sb_autoreply_t *a)
{
    while (!a->busy && !a->stopping && a->head != NULL) {
        item_t *it = a->head;
        const sb_wsconf_t *conf = sb_wsconf_peek(it->workspace);
        if (conf == NULL) {
            a->busy = true;
            if (sb_wsconf_get(it->workspace, 0, on_conf, a) != 0) {
                a->busy = false;
                retry_later(a);
            }
            return;
        }
        handle(a, conf);
    }
}

static void on_retry(uv_timer_t *t)
{
    sb_autoreply_t *a = container_of(t, sb_autoreply_t, tick);
    if (a->stopping || a->busy || a->head == NULL)
        return;
    if (a->head->conf != NULL)
        send_next(a);
    else
        pump(a);
}

/* ---- following the log, the checkpoint ----------------------------------------------------------------- */

static void on_events(sb_sub_t *s, const sb_event_t *events, int n, void *data)
{
    sb_autoreply_t *a = data;
    for (int i = 0; i < n; i++) {
        const sb_event_t *ev = &events[i];
        json_t *p = NULL;
        if (strcmp(ev->type, "MessageReceived") != 0 || strlen(ev->stream) != 8 + SB_UUID_STRLEN ||
            !ev->has_workspace)
            continue;
        char ws[SB_UUID_STRLEN + 1];
        sb_uuid_format(&ev->workspace, ws);
        /* Nothing waiting ahead of it and the workspace's rules at hand: a workspace without rules
         * (most of them) needs no decoding at all; pump would drop the message at once. */
        const sb_wsconf_t *conf = a->head == NULL ? sb_wsconf_peek(ws) : NULL;
        if (conf != NULL && json_object_size(json_object_get(conf->state, "auto_replies")) == 0)
            continue;
        if (sb_codec_to_jansson(ev->payload, ev->payload_len, &p, NULL, 0) != 0)
            continue;
        const char *ch = json_string_value(json_object_get(p, "channel"));
        const char *body = json_string_value(json_object_get(p, "body"));
        if (ch == NULL || strcmp(ch, "email") == 0 || body == NULL || body[0] == '\0') {
            json_decref(p);
            continue;
        }
        item_t *it = calloc(1, sizeof(*it));
        if (it == NULL) {
            json_decref(p);
            sb_log_error("autoreply", "out of memory: event %lld skipped", (long long)ev->position);
            continue;
        }
        it->position = ev->position;
        it->msg = p;
        memcpy(it->contact, ev->stream + 8, SB_UUID_STRLEN);
        memcpy(it->workspace, ws, sizeof(ws));
        if (a->tail != NULL)
            a->tail->next = it;
        else
            a->head = it;
        a->tail = it;
        a->queued++;
    }
    if (a->queued >= MAX_QUEUED && !a->paused) {
        a->paused = true;
        sb_sub_pause(s);
    }
    pump(a);
}

static void on_saved(sb_pg_req_t *req, int status)
{
    sb_autoreply_t *a = req->data;
    a->saving = false;
    if (status == 0)
        a->saved = a->saving_at;
    maybe_free(a);
}

static void save(sb_autoreply_t *a)
{
    int64_t cp = a->head != NULL  ? a->head->position - 1
                 : a->sub != NULL ? sb_sub_position(a->sub)
                                  : a->saved;
    if (a->saving || cp <= a->saved)
        return;
    a->saving = true;
    a->saving_at = cp;
    snprintf(a->param, sizeof(a->param), "%lld", (long long)cp);
    a->params[0] = a->param;
    sb_pg_req_init(&a->req,
                   "INSERT INTO checkpoints (name, position) VALUES ('autoreply', $1) "
                   "ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = now()",
                   1, a->params, on_saved, a);
    a->req.stmts[0].name = "sb_autoreply_checkpoint";
    sb_pg_submit(a->loop->db, &a->req);
}

static void on_tick(uv_timer_t *t)
{
    sb_autoreply_t *a = container_of(t, sb_autoreply_t, tick);
    save(a);
}

static void load(sb_autoreply_t *a);

static void on_load_again(uv_timer_t *t)
{
    load(container_of(t, sb_autoreply_t, tick));
}

static void on_loaded(sb_pg_req_t *req, int status)
{
    sb_autoreply_t *a = req->data;
    a->saving = false;
    if (a->stopping) {
        maybe_free(a);
        return;
    }
    if (status != 0) {
        uv_timer_start(&a->tick, on_load_again, RETRY_MS, 0);
        return;
    }
    /* First run: from the log's end; replying to old messages now would surprise everyone. */
    int64_t from = sb_follower_head(sb_messaging_current()->opts.follower);
    if (PQntuples(req->results[0]) == 1)
        from = strtoll(PQgetvalue(req->results[0], 0, 0), NULL, 10);
    if (from < 0) {
        uv_timer_start(&a->tick, on_load_again, 100, 0); /* the follower does not know the end yet */
        return;
    }
    a->saved = from;
    static const char *const categories[] = {"contact"};
    static const char *const types[] = {"MessageReceived"};
    sb_log_filter_t f = {.categories = categories, .ncategories = 1, .types = types, .ntypes = 1};
    a->sub =
        sb_follower_subscribe(sb_messaging_current()->opts.follower, a->loop->db, from, &f, on_events, a);
    if (a->sub == NULL)
        sb_log_error("autoreply", "cannot follow the log: out of memory");
    uv_timer_start(&a->tick, on_tick, TICK_MS, TICK_MS);
}

static void load(sb_autoreply_t *a)
{
    a->saving = true;
    sb_pg_req_init(&a->req, "SELECT position FROM checkpoints WHERE name = 'autoreply'", 0, NULL, on_loaded,
                   a);
    sb_pg_submit(a->loop->db, &a->req);
}

int sb_autoreply_start(sb_autoreply_t **out)
{
    sb_loop_t *loop = sb_loop_current();
    *out = NULL;
    if (loop == NULL || loop->db == NULL || sb_messaging_current() == NULL)
        return SB_EINVAL;
    sb_autoreply_t *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return SB_ENOMEM;
    a->loop = loop;
    uv_timer_init(&loop->uv, &a->tick);
    a->tick_open = true;
    load(a);
    *out = a;
    return 0;
}

static void on_tick_closed(uv_handle_t *h)
{
    sb_autoreply_t *a = container_of((uv_timer_t *)h, sb_autoreply_t, tick);
    a->tick_open = false;
    maybe_free(a);
}

void sb_autoreply_stop(sb_autoreply_t *a)
{
    if (a == NULL || a->stopping)
        return;
    save(a);
    a->stopping = true;
    if (a->sub != NULL) {
        sb_sub_close(a->sub);
        a->sub = NULL;
    }
    uv_timer_stop(&a->tick);
    uv_close((uv_handle_t *)&a->tick, on_tick_closed);
}
