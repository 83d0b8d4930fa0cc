/* The webhooks' shared parts: pending state tied to the request, answers, counters.  See
 * webhooks.h. */
#include "http/webhooks.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/error.h"
#include "core/loop.h"
#include "core/log.h"
#include "http/response.h"
#include "http/webhooks_int.h"

sb__wh_stats_t sb__wh_stats[SB__WH_STAT_SLOTS];

sb__wh_stats_t *sb__wh_stats_here(void)
{
    sb_loop_t *l = sb_loop_current();
    return &sb__wh_stats[l != NULL && l->index >= 0 ? l->index % SB__WH_STAT_SLOTS : 0];
}

struct sb__wh_link_s {
    sb__wh_t *w;
};

static void on_dispose(void *p)
{
    sb__wh_link_t *l = p;
    if (l->w != NULL) {
        l->w->req = NULL;
        l->w->link = NULL;
    }
}

void sb__wh_attach(sb__wh_t *w, h2o_req_t *req, const sb_config_t *cfg)
{
    w->req = req;
    w->cfg = cfg;
    w->link = h2o_mem_alloc_shared(&req->pool, sizeof(*w->link), on_dispose);
    w->link->w = w;
    /* Cut to fit, as snprintf would, without formatting. */
    const char *id = sb_http_request_id(req);
    size_t n = strnlen(id, sizeof(w->request_id) - 1);
    memcpy(w->request_id, id, n);
    w->request_id[n] = '\0';
}

void sb__wh_detach(sb__wh_t *w)
{
    if (w->link != NULL)
        w->link->w = NULL;
    w->link = NULL;
    w->req = NULL;
}

bool sb__wh_content_type_is(h2o_req_t *req, const char *type)
{
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_CONTENT_TYPE, -1);
    if (i < 0)
        return false;
    h2o_iovec_t v = req->headers.entries[i].value;
    size_t n = strlen(type);
    if (v.len < n || strncasecmp(v.base, type, n) != 0)
        return false;
    return v.len == n || v.base[n] == ';' || v.base[n] == ' ';
}

bool sb__wh_read_form(sb__wh_t *w, sb_form_t *form)
{
    if (!sb__wh_content_type_is(w->req, "application/x-www-form-urlencoded")) {
        sb__wh_reply_error(w, 415, NULL, "expected content-type application/x-www-form-urlencoded", NULL);
        return false;
    }
    const h2o_iovec_t body = w->req->entity;
    int rc = sb_form_parse(body.base != NULL ? body.base : "", body.len, form);
    if (rc != 0) {
        sb__wh_reply_error(w, rc == SB_ETOOBIG ? 413 : 400, "invalid_form",
                           rc == SB_EUTF8 ? "the body is not UTF-8" : "the body is not a valid form", NULL);
        return false;
    }
    return true;
}

bool sb__wh_read_signature(sb__wh_t *w, char *sig, size_t cap, size_t *sig_len, char **url, size_t *url_len)
{
    size_t n;
    const char *s = sb__wh_header(w->req, "x-twilio-signature", &n);
    if (s == NULL || n == 0 || n >= cap) {
        sb__wh_reply_error(w, 403, "invalid_signature", "X-Twilio-Signature is missing", NULL);
        return false;
    }
    memcpy(sig, s, n);
    sig[n] = '\0';
    *sig_len = n;
    if ((*url = sb__wh_url(w->req, w->cfg, url_len)) == NULL) {
        sb__wh_reply_errcode(w, SB_ENOMEM);
        return false;
    }
    return true;
}

void *sb__wh_begin_signed(h2o_req_t *req, const sb_config_t *cfg, size_t size, int kind,
                          sb__wh_parse_cb parse)
{
    sb__wh_signed_t *s = calloc(1, size);
    if (s == NULL) {
        sb__wh_t tmp = {.req = req};
        sb__wh_reply_errcode(&tmp, SB_ENOMEM);
        return NULL;
    }
    s->kind = kind;
    sb__wh_attach(&s->h, req, cfg);
    if (!sb__wh_read_form(&s->h, &s->form))
        goto fail;
    const char *field = NULL;
    if (parse != NULL && parse(s, &field) != 0) {
        sb__wh_reply_malformed(&s->h, field);
        goto fail;
    }
    if (!sb__wh_read_signature(&s->h, s->sig, sizeof(s->sig), &s->sig_len, &s->url, &s->url_len))
        goto fail;
    return s;
fail:
    sb__wh_signed_free(s);
    return NULL;
}

void sb__wh_signed_free(sb__wh_signed_t *s)
{
    sb__wh_detach(&s->h);
    sb_form_free(&s->form);
    free(s->url);
    if (s->conf != NULL)
        sb_wsconf_unref(s->conf);
    free(s);
}

const char *sb__wh_header(h2o_req_t *req, const char *name, size_t *len)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < req->headers.size; i++) {
        const h2o_header_t *h = &req->headers.entries[i];
        if (h->name->len == n && strncasecmp(h->name->base, name, n) == 0) {
            *len = h->value.len;
            return h->value.base;
        }
    }
    *len = 0;
    return NULL;
}

char *sb__wh_url(h2o_req_t *req, const sb_config_t *cfg, size_t *len)
{
    size_t base = strlen(cfg->public_url);
    char *url = malloc(base + req->path.len + 1);
    if (url == NULL)
        return NULL;
    memcpy(url, cfg->public_url, base);
    memcpy(url + base, req->path.base, req->path.len);
    url[base + req->path.len] = '\0';
    *len = base + req->path.len;
    return url;
}

void sb__wh_reply_twiml(sb__wh_t *w)
{
    static const char twiml[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>";
    if (w->req == NULL)
        return;
    sb_http_send_body(w->req, 200, "text/xml", twiml, sizeof(twiml) - 1);
}

void sb__wh_reply_ok(sb__wh_t *w)
{
    if (w->req == NULL)
        return;
    sb_http_send_body(w->req, 200, NULL, "", 0);
}

void sb__wh_reply_error(sb__wh_t *w, int status, const char *code, const char *message, const char *field)
{
    if (status == 403)
        SB__WH_COUNT(forbidden);
    else if (status == 400 || status == 415)
        SB__WH_COUNT(malformed);
    else if (status >= 500)
        SB__WH_COUNT(failed);
    if (w->req == NULL)
        return;
    sb_http_send_error(w->req, status, code, message, field);
}

void sb__wh_reply_malformed(sb__wh_t *w, const char *field)
{
    char msg[96];
    snprintf(msg, sizeof(msg), "%s is missing or malformed", field != NULL ? field : "a field");
    sb__wh_reply_error(w, 400, "invalid", msg, field);
}

void sb__wh_reply_errcode(sb__wh_t *w, int err)
{
    /* Failures that pass: the provider retries, and the retry stores nothing twice. */
    bool transient = err == SB_EOVERLOAD || err == SB_EDBDOWN || err == SB_ESHUTDOWN || err == SB_EUNKNOWN ||
                     err == SB_ETIMEOUT || err == SB_ECONFLICT || err == SB_EDB;
    if (!transient)
        sb_log_error("webhooks", "request failed: %s id=%s", sb_strerror(err), w->request_id);
    sb__wh_reply_error(w, transient ? 503 : 500, NULL, sb_strerror(err), NULL);
}

void sb__wh_reply_ask_error(sb__wh_t *w, const sb_ask_reply_t *reply)
{
    if (reply->status == SB_EREJECTED && reply->err != NULL) {
        const sb_derror_t *e = reply->err;
        sb__wh_reply_error(w, e->status, e->code, e->message, e->field[0] ? e->field : NULL);
        return;
    }
    sb__wh_reply_errcode(w, reply->status);
}

int sb_webhooks_register(sb_router_t *r, const sb_config_t *cfg)
{
    int rc = sb__wh_twilio_routes(r, cfg);
    if (rc == 0)
        rc = sb__wh_resend_routes(r, cfg);
    if (rc == 0)
        rc = sb__wh_voice_routes(r, cfg);
    if (rc == 0)
        rc = sb__wh_calls_routes(r, cfg);
    return rc;
}

void sb_webhooks_get_stats(sb_webhooks_stats_t *out)
{
    *out = (sb_webhooks_stats_t){0};
    for (int i = 0; i < SB__WH_STAT_SLOTS; i++) {
        sb__wh_stats_t *s = &sb__wh_stats[i];
        out->inbound += atomic_load_explicit(&s->inbound, memory_order_relaxed);
        out->statuses += atomic_load_explicit(&s->statuses, memory_order_relaxed);
        out->email_events += atomic_load_explicit(&s->email_events, memory_order_relaxed);
        out->forbidden += atomic_load_explicit(&s->forbidden, memory_order_relaxed);
        out->malformed += atomic_load_explicit(&s->malformed, memory_order_relaxed);
        out->failed += atomic_load_explicit(&s->failed, memory_order_relaxed);
    }
}
