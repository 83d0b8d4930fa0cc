/* A workspace's messaging configuration, cached per loop.  See wsconf.h. */
#include "reactors/wsconf.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/kinds.h"
#include "actors/runtime.h"
#include "core/error.h"
#include "core/log.h"
#include "core/seal.h"
#include "reactors/messaging_int.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

typedef struct waiter_s {
    struct waiter_s *next;
    sb_wsconf_cb cb;
    void *data;
} waiter_t;

struct sb__wsc_load_s {
    sb__wsc_load_t *next;
    sb__msg_loop_t *ml;
    char ws[SB_UUID_STRLEN + 1];
    uint64_t seq_at_start;
    waiter_t *waiters;
    sb_wsconf_t *conf;
};

/* A cache hit answered on the next loop turn (callbacks never fire inside the call). */
typedef struct {
    sb_task_t task;
    sb_wsconf_cb cb;
    void *data;
    sb_wsconf_t *conf;
} deferred_t;

/* A route: the number's claim, then the workspace. */
typedef struct {
    sb__msg_loop_t *ml;
    char number[SB_PHONE_MAX];
    char ws[SB_UUID_STRLEN + 1];
    int flags;
    bool from_cache;
    uint64_t seq_at_start;
    sb_wsconf_cb cb;
    void *data;
} route_t;

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

uint64_t sb__msg_now_ms(const sb__msg_loop_t *ml)
{
    return uv_now(&ml->loop->uv);
}

sb__msg_loop_t *sb__msg_loop(void)
{
    sb_loop_t *l = sb_loop_current();
    return l != NULL ? l->messaging : NULL;
}

static bool canonical_uuid(const char *in, char out[SB_UUID_STRLEN + 1])
{
    sb_uuid_t u;
    if (in == NULL || strlen(in) != SB_UUID_STRLEN || sb_uuid_parse(in, SB_UUID_STRLEN, &u) != 0)
        return false;
    sb_uuid_format(&u, out);
    return true;
}

/* ---- entries ------------------------------------------------------------------------------------ */

static void conf_free(sb_wsconf_t *c)
{
    json_decref(c->state);
    json_decref(c->context);
    sb_seal_wipe(c, sizeof(*c));
    free(c);
}

void sb_wsconf_ref(const sb_wsconf_t *conf)
{
    ((sb_wsconf_t *)conf)->_refs++;
}

void sb_wsconf_unref(const sb_wsconf_t *conf)
{
    sb_wsconf_t *c = (sb_wsconf_t *)conf;
    if (c != NULL && --c->_refs == 0)
        conf_free(c);
}

static bool fresh(const sb__msg_loop_t *ml, uint64_t loaded_ms)
{
    return sb__msg_now_ms(ml) - loaded_ms < SB_WSCONF_TTL_MS;
}

static sb_wsconf_t **slot_of(sb__msg_loop_t *ml, const char *ws)
{
    return &ml->slots[hash_str(ws) & (SB__WSC_SLOTS - 1)];
}

static sb__route_slot_t *route_of(sb__msg_loop_t *ml, const char *number)
{
    return &ml->routes[hash_str(number) & (SB__ROUTE_SLOTS - 1)];
}

const sb_wsconf_t *sb_wsconf_peek(const char *workspace_id)
{
    sb__msg_loop_t *ml = sb__msg_loop();
    if (ml == NULL || ml->stopping || workspace_id == NULL)
        return NULL;
    sb_wsconf_t *c = *slot_of(ml, workspace_id);
    if (c == NULL || strcmp(c->workspace_id, workspace_id) != 0 || !fresh(ml, c->_loaded_ms))
        return NULL;
    return c;
}

bool sb_wsconf_may_reload(const sb_wsconf_t *conf)
{
    sb__msg_loop_t *ml = sb__msg_loop();
    return ml != NULL && sb__msg_now_ms(ml) - conf->_loaded_ms >= 1000;
}

void sb__wsconf_invalidate(sb__msg_loop_t *ml, const char *workspace, const char *const *numbers)
{
    ml->inval_seq++;
    if (workspace != NULL) {
        sb_wsconf_t **slot = slot_of(ml, workspace);
        if (*slot != NULL && strcmp((*slot)->workspace_id, workspace) == 0) {
            sb_wsconf_unref(*slot);
            *slot = NULL;
        }
    } else {
        for (int i = 0; i < SB__WSC_SLOTS; i++) {
            sb_wsconf_unref(ml->slots[i]);
            ml->slots[i] = NULL;
        }
    }
    if (workspace == NULL && ml->senders != NULL)
        sb__senders_clear(ml->senders);
    if (ml->routes == NULL)
        return;
    if (workspace == NULL) {
        memset(ml->routes, 0, sizeof(*ml->routes) * SB__ROUTE_SLOTS);
        return;
    }
    for (int i = 0; i < SB__ROUTE_SLOTS; i++)
        if (strcmp(ml->routes[i].workspace, workspace) == 0)
            ml->routes[i].number[0] = '\0';
    for (const char *const *n = numbers; n != NULL && *n != NULL; n++) {
        sb__route_slot_t *r = route_of(ml, *n);
        if (strcmp(r->number, *n) == 0)
            r->number[0] = '\0';
    }
}

void sb_wsconf_forget(const char *workspace_id)
{
    sb__msg_loop_t *ml = sb__msg_loop();
    char ws[SB_UUID_STRLEN + 1];
    if (ml == NULL)
        return;
    if (workspace_id == NULL)
        sb__wsconf_invalidate(ml, NULL, NULL);
    else if (canonical_uuid(workspace_id, ws))
        sb__wsconf_invalidate(ml, ws, NULL);
}

/* ---- reading a workspace -------------------------------------------------------------------------- */

/* The value of "name=" in a sealed bundle of "name=value" lines, into out.  false when absent or
 * too long. */
static bool bundle_field(const char *v, size_t len, const char *name, char *out, size_t cap)
{
    size_t n = strlen(name);
    const char *end = v + len;
    for (const char *p = v; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl != NULL ? nl : end;
        if ((size_t)(le - p) > n && memcmp(p, name, n) == 0 && p[n] == '=') {
            size_t vl = (size_t)(le - p) - n - 1;
            if (vl == 0 || vl >= cap)
                return false;
            memcpy(out, p + n + 1, vl);
            out[vl] = '\0';
            return true;
        }
        p = le + 1;
    }
    return false;
}

static void finish(sb__wsc_load_t *load, int status);

static void on_email_secret(int status, const char *value, size_t len, void *data)
{
    sb__wsc_load_t *load = data;
    sb_wsconf_t *c = load->conf;
    if (status == 0 && !bundle_field(value, len, "api_key", c->resend_key, sizeof(c->resend_key)))
        status = SB_ECODEC;
    if (status == 0)
        bundle_field(value, len, "webhook_secret", c->resend_webhook_secret,
                     sizeof(c->resend_webhook_secret));
    if (status == SB_ENOTFOUND) /* the secret was replaced meanwhile: read the workspace again */
        status = SB_ECONFLICT;
    finish(load, status);
}

static void next_email(sb__wsc_load_t *load)
{
    const char *ref = json_string_value(json_object_get(load->conf->state, "email_secret_ref"));
    sb__msg_loop_t *ml = load->ml;
    if (ref == NULL || ml->stopping) {
        finish(load, ml->stopping ? SB_ESHUTDOWN : 0);
        return;
    }
    int rc = sb_secrets_get(ml->m->opts.secrets, ml->loop->db, ref, on_email_secret, load);
    if (rc != 0)
        finish(load, rc);
}

static void on_twilio_secret(int status, const char *value, size_t len, void *data)
{
    sb__wsc_load_t *load = data;
    sb_wsconf_t *c = load->conf;
    if (status == 0 && !bundle_field(value, len, "auth_token", c->auth_token, sizeof(c->auth_token)))
        status = SB_ECODEC;
    if (status == 0 && c->api_key_sid[0] != '\0' &&
        !bundle_field(value, len, "api_key_secret", c->api_key_secret, sizeof(c->api_key_secret)))
        status = SB_ECODEC;
    if (status == SB_ENOTFOUND)
        status = SB_ECONFLICT;
    if (status != 0) {
        if (status == SB_ECODEC)
            sb_log_error("messaging", "workspace %s: its sealed Twilio credentials are incomplete", load->ws);
        finish(load, status);
        return;
    }
    next_email(load);
}

static void copy_sid(const json_t *obj, const char *key, char out[SB_TWILIO_SID_LEN + 1])
{
    const char *v = json_string_value(json_object_get(obj, key));
    snprintf(out, SB_TWILIO_SID_LEN + 1, "%s", v != NULL && strlen(v) == SB_TWILIO_SID_LEN ? v : "");
}

/* The configuration in a workspace's state; secrets are read next. */
static sb_wsconf_t *conf_from_state(const char *ws, json_t *state, int64_t version)
{
    sb_wsconf_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->_refs = 1;
    snprintf(c->workspace_id, sizeof(c->workspace_id), "%s", ws);
    c->version = version;
    c->state = json_incref(state);
    c->context = sb_workspace_context(state);
    const char *country = json_string_value(json_object_get(state, "default_country"));
    snprintf(c->default_country, sizeof(c->default_country), "%s", country != NULL ? country : "US");
    const json_t *tw = json_object_get(state, "twilio");
    if (json_is_object(tw)) {
        copy_sid(tw, "account_sid", c->account_sid);
        copy_sid(tw, "api_key_sid", c->api_key_sid);
        copy_sid(tw, "twiml_app_sid", c->twiml_app_sid);
        c->twilio = c->account_sid[0] != '\0';
    }
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)json_object_get(state, "numbers"), k, v)
    {
        if (sb_phone_is_e164(k) && (c->first_number[0] == '\0' || strcmp(k, c->first_number) < 0))
            snprintf(c->first_number, sizeof(c->first_number), "%s", k);
    }
    const char *from = json_string_value(json_object_get(state, "email_from"));
    const char *name = json_string_value(json_object_get(state, "email_from_name"));
    snprintf(c->email_from, sizeof(c->email_from), "%s", from != NULL ? from : "");
    snprintf(c->email_from_name, sizeof(c->email_from_name), "%s", name != NULL ? name : "");
    return c;
}

static void on_state(const sb_ask_reply_t *reply, void *data)
{
    sb__wsc_load_t *load = data;
    sb__msg_loop_t *ml = load->ml;
    if (ml->stopping) {
        finish(load, SB_ESHUTDOWN);
        return;
    }
    if (reply->status != 0) {
        finish(load, reply->status);
        return;
    }
    if (reply->version == 0 || reply->state == NULL ||
        !json_is_true(json_object_get(reply->state, "created"))) {
        finish(load, SB_ENOTFOUND);
        return;
    }
    load->conf = conf_from_state(load->ws, reply->state, reply->version);
    if (load->conf == NULL) {
        finish(load, SB_ENOMEM);
        return;
    }
    const char *ref =
        json_string_value(json_object_get(json_object_get(reply->state, "twilio"), "secret_ref"));
    if (!load->conf->twilio || ref == NULL) {
        next_email(load);
        return;
    }
    int rc = sb_secrets_get(ml->m->opts.secrets, ml->loop->db, ref, on_twilio_secret, load);
    if (rc != 0)
        finish(load, rc);
}

static void finish(sb__wsc_load_t *load, int status)
{
    sb__msg_loop_t *ml = load->ml;
    for (sb__wsc_load_t **p = &ml->loads; *p != NULL; p = &(*p)->next) {
        if (*p == load) {
            *p = load->next;
            break;
        }
    }
    sb_wsconf_t *c = status == 0 ? load->conf : NULL;
    if (c != NULL) {
        c->_loaded_ms = sb__msg_now_ms(ml);
        /* Keep it only if nothing was invalidated while it was read (it may predate the change). */
        if (!ml->stopping && ml->inval_seq == load->seq_at_start && atomic_load(&ml->m->cache_live)) {
            sb_wsconf_t **slot = slot_of(ml, c->workspace_id);
            if (*slot != NULL)
                sb_wsconf_unref(*slot);
            *slot = c;
            c->_refs++;
        }
    } else if (status != SB_ENOTFOUND && status != SB_ESHUTDOWN) {
        sb_log_warn("messaging", "cannot read workspace %s: %s", load->ws, sb_strerror(status));
    }
    for (waiter_t *w = load->waiters, *next; w != NULL; w = next) {
        next = w->next;
        w->cb(status, c, w->data);
        free(w);
    }
    sb_wsconf_unref(load->conf);
    free(load);
}

static void on_deferred(sb_task_t *task)
{
    deferred_t *d = container_of(task, deferred_t, task);
    d->cb(0, d->conf, d->data);
    sb_wsconf_unref(d->conf);
    free(d);
}

int sb_wsconf_get(const char *workspace_id, int flags, sb_wsconf_cb cb, void *data)
{
    sb__msg_loop_t *ml = sb__msg_loop();
    char ws[SB_UUID_STRLEN + 1];
    if (ml == NULL || cb == NULL || !canonical_uuid(workspace_id, ws))
        return SB_EINVAL;
    if (ml->stopping)
        return SB_ESHUTDOWN;
    if (!(flags & SB_WSCONF_RELOAD)) {
        const sb_wsconf_t *hit = sb_wsconf_peek(ws);
        if (hit != NULL) {
            deferred_t *d = malloc(sizeof(*d));
            if (d == NULL)
                return SB_ENOMEM;
            d->task.cb = on_deferred;
            d->cb = cb;
            d->data = data;
            d->conf = (sb_wsconf_t *)hit;
            sb_wsconf_ref(hit);
            sb_loop_post(ml->loop, &d->task);
            return 0;
        }
    }
    waiter_t *w = malloc(sizeof(*w));
    if (w == NULL)
        return SB_ENOMEM;
    w->cb = cb;
    w->data = data;
    /* One read per workspace at a time: a reload joins a read that started after the caller's
     * reason to reload only if one is in flight, which is as fresh as a new one would be. */
    for (sb__wsc_load_t *l = ml->loads; l != NULL; l = l->next) {
        if (strcmp(l->ws, ws) == 0) {
            w->next = l->waiters;
            l->waiters = w;
            return 0;
        }
    }
    sb__wsc_load_t *load = calloc(1, sizeof(*load));
    if (load == NULL) {
        free(w);
        return SB_ENOMEM;
    }
    load->ml = ml;
    memcpy(load->ws, ws, sizeof(ws));
    load->seq_at_start = ml->inval_seq;
    load->waiters = w;
    w->next = NULL;
    char stream[SB_UUID_STRLEN + 16];
    snprintf(stream, sizeof(stream), "workspace-%s", ws);
    /* refresh: a cache miss reads what other processes wrote, too (entries then stay current
     * through the follower's invalidations). */
    sb_ask_opts_t opts = {.source = "messaging", .skip_event_data = true, .refresh = true};
    int rc = sb_actor_get(ml->m->opts.loops, stream, &opts, on_state, load);
    if (rc != 0) {
        free(w);
        free(load);
        return rc;
    }
    load->next = ml->loads;
    ml->loads = load;
    return 0;
}

/* ---- routes ------------------------------------------------------------------------------------------ */

static int route_lookup(route_t *r);

static void on_route_conf(int status, const sb_wsconf_t *conf, void *data)
{
    route_t *r = data;
    /* The claim names the workspace, and the workspace must list the number: a number being moved
     * between workspaces is in neither until the move is complete. */
    if (status == 0 && json_object_get(json_object_get(conf->state, "numbers"), r->number) == NULL)
        status = SB_ENOTFOUND;
    if (status == SB_ENOTFOUND && r->from_cache && !r->ml->stopping) {
        /* The cached route may be out of date: ask the claim. */
        r->from_cache = false;
        r->flags |= SB_WSCONF_RELOAD;
        if (route_lookup(r) == 0)
            return;
    }
    r->cb(status, status == 0 ? conf : NULL, r->data);
    free(r);
}

static void on_claim(const sb_ask_reply_t *reply, void *data)
{
    route_t *r = data;
    sb__msg_loop_t *ml = r->ml;
    int status = ml->stopping ? SB_ESHUTDOWN : reply->status;
    const char *owner = status == 0 ? json_string_value(json_object_get(reply->state, "owner")) : NULL;
    if (status == 0 &&
        (owner == NULL || strncmp(owner, "workspace-", 10) != 0 || !canonical_uuid(owner + 10, r->ws)))
        status = SB_ENOTFOUND;
    if (status == 0 && ml->inval_seq == r->seq_at_start && atomic_load(&ml->m->cache_live)) {
        sb__route_slot_t *slot = route_of(ml, r->number);
        memcpy(slot->number, r->number, sizeof(slot->number));
        memcpy(slot->workspace, r->ws, sizeof(slot->workspace));
        slot->loaded_ms = sb__msg_now_ms(ml);
    }
    if (status == 0)
        status = sb_wsconf_get(r->ws, r->flags, on_route_conf, r);
    if (status != 0) {
        r->cb(status, NULL, r->data);
        free(r);
    }
}

static int route_lookup(route_t *r)
{
    sb__msg_loop_t *ml = r->ml;
    if (!(r->flags & SB_WSCONF_RELOAD)) {
        sb__route_slot_t *slot = route_of(ml, r->number);
        if (strcmp(slot->number, r->number) == 0 && fresh(ml, slot->loaded_ms)) {
            memcpy(r->ws, slot->workspace, sizeof(r->ws));
            r->from_cache = true;
            return sb_wsconf_get(r->ws, r->flags, on_route_conf, r);
        }
    }
    char key[8 + SB_PHONE_MAX], stream[SB_CLAIM_STREAM_LEN];
    snprintf(key, sizeof(key), "number:%s", r->number);
    sb_claim_stream(key, stream);
    r->seq_at_start = ml->inval_seq;
    /* refresh: a cache miss reads what other processes wrote, too (entries then stay current
     * through the follower's invalidations). */
    sb_ask_opts_t opts = {.source = "messaging", .skip_event_data = true, .refresh = true};
    return sb_actor_get(ml->m->opts.loops, stream, &opts, on_claim, r);
}

const sb_wsconf_t *sb_wsconf_route_peek(const char *e164)
{
    sb__msg_loop_t *ml = sb__msg_loop();
    if (ml == NULL || ml->stopping || ml->routes == NULL || e164 == NULL)
        return NULL;
    sb__route_slot_t *slot = route_of(ml, e164);
    if (strcmp(slot->number, e164) != 0 || !fresh(ml, slot->loaded_ms))
        return NULL;
    const sb_wsconf_t *c = sb_wsconf_peek(slot->workspace);
    if (c == NULL || json_object_get(json_object_get(c->state, "numbers"), e164) == NULL)
        return NULL;
    return c;
}

int sb_wsconf_route(const char *e164, int flags, sb_wsconf_cb cb, void *data)
{
    sb__msg_loop_t *ml = sb__msg_loop();
    if (ml == NULL || cb == NULL || e164 == NULL || !sb_phone_is_e164(e164))
        return SB_EINVAL;
    if (ml->stopping)
        return SB_ESHUTDOWN;
    route_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return SB_ENOMEM;
    r->ml = ml;
    snprintf(r->number, sizeof(r->number), "%s", e164);
    r->flags = flags;
    r->cb = cb;
    r->data = data;
    int rc = route_lookup(r);
    if (rc != 0)
        free(r);
    return rc;
}

/* ---- senders --------------------------------------------------------------------------------------------
 */

static bool parse_uuid(const char *s, sb_uuid_t *out)
{
    return s != NULL && strlen(s) == SB_UUID_STRLEN && sb_uuid_parse(s, SB_UUID_STRLEN, out) == 0;
}

bool sb_wsconf_sender_peek(const char *workspace_id, const char *e164, char contact_id[SB_UUID_STRLEN + 1])
{
    sb__msg_loop_t *ml = sb__msg_loop();
    sb_uuid_t ws;
    if (ml == NULL || ml->stopping || ml->senders == NULL || e164 == NULL || !parse_uuid(workspace_id, &ws))
        return false;
    sb_uuid_t contact;
    if (!sb__senders_peek(ml->senders, &ws, e164, &contact))
        return false;
    sb_uuid_format(&contact, contact_id);
    return true;
}

static void sender_store(sb__msg_loop_t *ml, const sb_uuid_t *ws, const char *e164, const sb_uuid_t *contact)
{
    if (ml->stopping)
        return;
    if (ml->senders == NULL && (ml->senders = sb__senders_new(SB__SENDER_SETS)) == NULL)
        return; /* only a hint */
    sb__senders_store(ml->senders, ws, e164, contact);
}

/* A sender learnt on one loop, told to another: the next message may arrive on any loop. */
typedef struct {
    sb_task_t task;
    sb__msg_loop_t *ml;
    struct {
        char number[SB_PHONE_MAX];
        sb_uuid_t workspace;
        sb_uuid_t contact;
    } s;
} sender_task_t;

static void on_sender(sb_task_t *task)
{
    sender_task_t *st = container_of(task, sender_task_t, task);
    sender_store(st->ml, &st->s.workspace, st->s.number, &st->s.contact);
    free(st);
}

void sb_wsconf_sender_remember(const char *workspace_id, const char *e164, const char *contact_id)
{
    sb__msg_loop_t *ml = sb__msg_loop();
    sb_uuid_t ws, contact;
    if (ml == NULL || ml->stopping || e164 == NULL || !sb_phone_is_e164(e164) ||
        !parse_uuid(workspace_id, &ws) || !parse_uuid(contact_id, &contact))
        return;
    sender_store(ml, &ws, e164, &contact);
    sb_messaging_t *m = ml->m;
    for (int k = 0; k < m->nloops; k++) {
        sb__msg_loop_t *other = m->loops[k];
        if (other == NULL || other == ml)
            continue;
        sender_task_t *st = malloc(sizeof(*st));
        if (st == NULL)
            continue; /* that loop finds the contact itself */
        st->task.cb = on_sender;
        st->ml = other;
        snprintf(st->s.number, sizeof(st->s.number), "%s", e164);
        st->s.workspace = ws;
        st->s.contact = contact;
        sb_loop_post(other->loop, &st->task);
    }
}

void sb_wsconf_sender_forget(const char *workspace_id, const char *e164)
{
    sb__msg_loop_t *ml = sb__msg_loop();
    sb_uuid_t ws;
    if (ml == NULL || ml->senders == NULL || e164 == NULL || !parse_uuid(workspace_id, &ws))
        return;
    sb__senders_forget(ml->senders, &ws, e164);
}

/* ---- per loop ------------------------------------------------------------------------------------------ */

void sb__wsconf_loop_init(sb__msg_loop_t *ml)
{
    ml->routes = calloc(SB__ROUTE_SLOTS, sizeof(*ml->routes));
}

void sb__wsconf_loop_stop(sb__msg_loop_t *ml)
{
    ml->stopping = true;
    sb__wsconf_invalidate(ml, NULL, NULL);
}

void sb__wsconf_loop_free(sb__msg_loop_t *ml)
{
    /* Reads still in flight when the loop ended: their requests are gone with it. */
    for (sb__wsc_load_t *l = ml->loads, *next; l != NULL; l = next) {
        next = l->next;
        for (waiter_t *w = l->waiters, *wn; w != NULL; w = wn) {
            wn = w->next;
            free(w);
        }
        sb_wsconf_unref(l->conf);
        free(l);
    }
    ml->loads = NULL;
    for (int i = 0; i < SB__WSC_SLOTS; i++) {
        sb_wsconf_unref(ml->slots[i]);
        ml->slots[i] = NULL;
    }
    free(ml->routes);
    ml->routes = NULL;
    sb__senders_free(ml->senders);
    ml->senders = NULL;
}
