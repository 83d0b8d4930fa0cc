/* Resend's e-mail events (POST /webhooks/resend), delivered and signed by svix.
 *
 * The workspace is named by the URL we give it (?workspace=<id>, shown by the e-mail set-up), or
 * else by the tags we attach to every e-mail we send; either way nothing is believed until the svix
 * signature verifies with that workspace's webhook secret.  The message is named by the tags too
 * (message_id, contact_id), so no lookup is needed:
 *
 *   email.sent / delivered / opened / clicked / bounced / failed -> RecordMessageStatus
 *   email.complained -> OptOutContact (channel email): a spam complaint means stop e-mailing
 *   anything else (delivery_delayed, contact.*, domain.*) -> 200, nothing stored */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "core/log.h"
#include "http/webhooks_int.h"
#include "http/webhooks_parse.h"
#include "providers/form.h"
#include "providers/svix.h"
#include "reactors/messaging.h"
#include "reactors/wsconf.h"

typedef struct {
    sb__wh_t h;
    json_t *doc;
    sb_wh_email_t ev;
    char ws[SB_UUID_STRLEN + 1];
    /* the svix headers and the raw body, copied: the request may go while the secret is read */
    char id[SB_SVIX_MAX_ID + 1];
    char ts[32];
    char *sigs;
    size_t sigs_len;
    char *body;
    size_t body_len;
} rwh_t;

static void rwh_free(rwh_t *r)
{
    sb__wh_detach(&r->h);
    json_decref(r->doc);
    free(r->sigs);
    free(r->body);
    free(r);
}

static void forbidden(rwh_t *r, const char *why)
{
    sb_log_info("webhooks", "resend event refused: %s id=%s", why, r->h.request_id);
    sb__wh_reply_error(&r->h, 403, "invalid_signature", "the request could not be verified", NULL);
    rwh_free(r);
}

static void on_done(const sb_ask_reply_t *reply, void *data)
{
    rwh_t *r = data;
    bool settled = reply->status == 0 || (reply->status == SB_EREJECTED && reply->err != NULL &&
                                          (reply->err->status == 404 || reply->err->status == 409));
    if (settled) {
        SB__WH_COUNT(email_events);
        sb__wh_reply_ok(&r->h);
    } else {
        sb__wh_reply_ask_error(&r->h, reply);
    }
    rwh_free(r);
}

static void record(rwh_t *r, const sb_wsconf_t *conf)
{
    const sb_wh_email_t *ev = &r->ev;
    if (ev->kind == SB_WH_EMAIL_IGNORED || !ev->has_ids ||
        strcmp(ev->ids.workspace, conf->workspace_id) != 0) {
        if (ev->kind != SB_WH_EMAIL_IGNORED)
            sb_log_info("webhooks", "resend %s for %s without our tags: ignored", ev->type, ev->email_id);
        SB__WH_COUNT(email_events);
        sb__wh_reply_ok(&r->h);
        rwh_free(r);
        return;
    }
    json_t *cmd;
    if (ev->kind == SB_WH_EMAIL_COMPLAINED)
        cmd =
            json_pack("{s:s, s:s, s:s}", "type", "OptOutContact", "channel", "email", "keyword", "complaint");
    else
        cmd = json_pack("{s:s, s:s, s:s, s:s, s:s?, s:s?}", "type", "RecordMessageStatus", "message_id",
                        ev->ids.message, "status", ev->status, "provider_id", ev->email_id, "error_code",
                        ev->error_code, "error", ev->error);
    char stream[SB_UUID_STRLEN + 16];
    snprintf(stream, sizeof(stream), "contact-%s", ev->ids.contact);
    sb_ask_opts_t opts = {
        .context = conf->context,
        .correlation_id = r->h.request_id,
        .request_id = r->h.request_id,
        .source = "webhook:resend",
        .workspace_id = conf->workspace_id,
        .skip_state = true,
        .skip_event_data = true,
    };
    int rc = cmd != NULL
                 ? sb_actor_ask(sb_messaging_loops(sb_messaging_current()), stream, cmd, &opts, on_done, r)
                 : SB_ENOMEM;
    if (rc != 0) {
        sb__wh_reply_errcode(&r->h, rc);
        rwh_free(r);
    }
}

static void verify(rwh_t *r, const sb_wsconf_t *conf)
{
    if (conf->resend_webhook_secret[0] == '\0') {
        forbidden(r, "the workspace has no Resend webhook secret");
        return;
    }
    int rc = sb_svix_verify(conf->resend_webhook_secret, r->id, strlen(r->id), r->ts, strlen(r->ts), r->sigs,
                            r->sigs_len, r->body, r->body_len, (int64_t)time(NULL));
    if (rc != 0) {
        forbidden(r, rc == SB_ETIMEOUT ? "svix-timestamp is too old or too new"
                                       : "svix-signature does not match");
        return;
    }
    record(r, conf);
}

static void on_conf(int status, const sb_wsconf_t *conf, void *data)
{
    rwh_t *r = data;
    if (r->h.req == NULL) {
        rwh_free(r);
        return;
    }
    if (status == SB_ENOTFOUND || status == SB_EPERM) {
        forbidden(r, status == SB_ENOTFOUND ? "no such workspace" : "the credentials cannot be opened");
        return;
    }
    if (status != 0) {
        sb__wh_reply_errcode(&r->h, status);
        rwh_free(r);
        return;
    }
    verify(r, conf);
}

/* The workspace from ?workspace=<uuid>, else NULL. */
static bool query_workspace(h2o_req_t *req, char out[SB_UUID_STRLEN + 1])
{
    sb_form_t f = SB_FORM_INIT;
    bool ok = false;
    if (req->query_at == SIZE_MAX)
        return false;
    const char *q = req->path.base + req->query_at + 1;
    size_t n = req->path.len - req->query_at - 1;
    if (n > 0 && n < 512 && sb_form_parse(q, n, &f) == 0) {
        const char *w = sb_form_get(&f, "workspace");
        sb_uuid_t u;
        if (w != NULL && strlen(w) == SB_UUID_STRLEN && sb_uuid_parse(w, SB_UUID_STRLEN, &u) == 0) {
            sb_uuid_format(&u, out);
            ok = true;
        }
    }
    sb_form_free(&f);
    return ok;
}

static bool copy_header(h2o_req_t *req, const char *name, char *out, size_t cap)
{
    size_t n;
    const char *v = sb__wh_header(req, name, &n);
    if (v == NULL || n == 0 || n >= cap)
        return false;
    memcpy(out, v, n);
    out[n] = '\0';
    return true;
}

static int on_resend(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb__wh_t tmp = {0};
    tmp.req = req;
    if (!sb__wh_content_type_is(req, "application/json")) {
        sb__wh_reply_error(&tmp, 415, NULL, "expected content-type application/json", NULL);
        return 0;
    }
    rwh_t *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        sb__wh_reply_errcode(&tmp, SB_ENOMEM);
        return 0;
    }
    sb__wh_attach(&r->h, req, data);
    size_t n;
    const char *sigs = sb__wh_header(req, "svix-signature", &n);
    if (!copy_header(req, "svix-id", r->id, sizeof(r->id)) ||
        !copy_header(req, "svix-timestamp", r->ts, sizeof(r->ts)) || sigs == NULL || n == 0 ||
        n > SB_SVIX_MAX_HEADER) {
        forbidden(r, "svix headers are missing");
        return 0;
    }
    json_error_t jerr;
    r->doc = json_loadb(req->entity.base != NULL ? req->entity.base : "", req->entity.len,
                        JSON_REJECT_DUPLICATES, &jerr);
    const char *field = NULL;
    if (r->doc == NULL || sb_wh_parse_email(r->doc, &r->ev, &field) != 0) {
        sb__wh_reply_error(&r->h, 400, "invalid",
                           r->doc == NULL ? "the body is not JSON" : "the event is malformed", field);
        rwh_free(r);
        return 0;
    }
    r->sigs = malloc(n + 1);
    r->body = malloc(req->entity.len + 1);
    if (r->sigs == NULL || r->body == NULL) {
        sb__wh_reply_errcode(&r->h, SB_ENOMEM);
        rwh_free(r);
        return 0;
    }
    memcpy(r->sigs, sigs, n);
    r->sigs[n] = '\0';
    r->sigs_len = n;
    if (req->entity.len > 0)
        memcpy(r->body, req->entity.base, req->entity.len);
    r->body[req->entity.len] = '\0';
    r->body_len = req->entity.len;
    if (!query_workspace(req, r->ws)) {
        if (!r->ev.has_ids) {
            forbidden(r, "no workspace named (no ?workspace= and no tags)");
            return 0;
        }
        memcpy(r->ws, r->ev.ids.workspace, sizeof(r->ws));
    }
    const sb_wsconf_t *conf = sb_wsconf_peek(r->ws);
    if (conf != NULL) {
        verify(r, conf);
        return 0;
    }
    int rc = sb_wsconf_get(r->ws, 0, on_conf, r);
    if (rc != 0) {
        sb__wh_reply_errcode(&r->h, rc);
        rwh_free(r);
    }
    return 0;
}

int sb__wh_resend_routes(sb_router_t *r, const sb_config_t *cfg)
{
    return sb_router_add(r, "POST", "/webhooks/resend", on_resend, (void *)cfg);
}
