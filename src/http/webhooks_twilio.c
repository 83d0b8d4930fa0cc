/* Twilio's messaging webhooks: inbound messages and status callbacks (SPEC §7).
 *
 * Inbound:  form -> route by To (the number's claim; reactors/wsconf.h) -> AccountSid and
 *           X-Twilio-Signature against the workspace's credentials -> the contact for From, found or
 *           created (actors/flows.h: exactly one, however many first messages arrive at once, in
 *           any process), or remembered by the loop from an earlier message (wsconf.h, senders) ->
 *           ReceiveMessage with from_listed (the contact refuses a number it no longer has, and
 *           the flow finds the number's contact again) -> 200 TwiML once committed.
 * Status:   form -> our ids from the StatusCallback URL (?w=&c=&m=, signed with it) -> AccountSid
 *           and signature -> RecordMessageStatus -> 200 once committed.
 *
 * The message id of an inbound message is named by its MessageSid, so Twilio's retries name the
 * same message and the contact decider records it once.  A signature that does not verify against
 * a cached configuration is checked once more against a fresh read (the token may just have
 * changed) before the 403. */
#include <stdlib.h>
#include <string.h>

#include "actors/dutil.h"
#include "actors/flows.h"
#include "core/error.h"
#include "core/log.h"
#include "http/response.h"
#include "http/webhooks_int.h"
#include "http/webhooks_parse.h"
#include "providers/twilio_sig.h"
#include "reactors/messaging.h"
#include "reactors/wsconf.h"

typedef enum { KIND_INBOUND, KIND_STATUS } kind_t;

typedef struct {
    sb__wh_signed_t s; /* first: the state is freed through it */
    sb_wh_inbound_t in;
    sb_wh_status_t st;
    sb_wh_ids_t ids;
    bool has_ids;
    int tries;
    char message_id[SB_UUID_STRLEN + 1];
    char contact_id[SB_UUID_STRLEN + 1];
} twh_t;

static void twh_free(twh_t *t)
{
    sb__wh_signed_free(&t->s);
}

static int parse(sb__wh_signed_t *s, const char **field)
{
    twh_t *t = (twh_t *)s;
    return s->kind == KIND_INBOUND ? sb_wh_parse_inbound(&s->form, &t->in, field)
                                   : sb_wh_parse_status(&s->form, &t->st, field);
}

static void forbidden(twh_t *t, const char *why)
{
    sb_log_info("webhooks", "twilio %s refused: %s id=%s", t->s.kind == KIND_INBOUND ? "message" : "status",
                why, t->s.h.request_id);
    sb__wh_reply_error(&t->s.h, 403, "invalid_signature", "the request could not be verified", NULL);
    twh_free(t);
}

/* "contact-<id>" into out (id a formatted UUID, or shorter): what snprintf made, without formatting. */
static void contact_stream(const char *id, char out[SB_UUID_STRLEN + 16])
{
    size_t n = strnlen(id, SB_UUID_STRLEN);
    memcpy(out, "contact-", 8);
    memcpy(out + 8, id, n);
    out[8 + n] = '\0';
}

/* ---- inbound ------------------------------------------------------------------------------------ */

static void find_contact(twh_t *t);

static void on_received(const sb_ask_reply_t *reply, void *data)
{
    twh_t *t = data;
    if (t->s.h.req == NULL) {
        twh_free(t);
        return;
    }
    if (reply->status == 0) {
        SB__WH_COUNT(inbound);
        sb__wh_reply_twiml(&t->s.h);
        twh_free(t);
        return;
    }
    /* Deleted, or the number moved to another contact, between finding (or remembering) and
     * recording: find (or create) the number's contact again. */
    if (reply->status == SB_EREJECTED && reply->err != NULL &&
        (reply->err->status == 404 || strcmp(reply->err->code, "sender_not_listed") == 0) && t->tries < 3) {
        sb_wsconf_sender_forget(t->s.conf->workspace_id, t->in.from);
        find_contact(t);
        return;
    }
    sb__wh_reply_ask_error(&t->s.h, reply);
    twh_free(t);
}

/* The command's constant words, made once (sb__const_str): in->channel is one of three literals. */
static json_t *const_word(const char *s)
{
    static json_t *_Atomic type;
    static json_t *_Atomic sms;
    static json_t *_Atomic mms;
    static json_t *_Atomic whatsapp;
    if (strcmp(s, "ReceiveMessage") == 0)
        return sb__const_str(&type, s);
    if (strcmp(s, "sms") == 0)
        return sb__const_str(&sms, s);
    if (strcmp(s, "mms") == 0)
        return sb__const_str(&mms, s);
    if (strcmp(s, "whatsapp") == 0)
        return sb__const_str(&whatsapp, s);
    return json_string_nocheck(s);
}

static void receive(twh_t *t)
{
    const sb_wh_inbound_t *in = &t->in;
    /* The form parser checked that every value is UTF-8 (sb_form_parse), so the strings go in
     * unchecked: json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:s, s:b}") would check each again and
     * parse its format on every webhook.  Same keys, same order, but for "media_urls", which a message
     * without media leaves out: the decider reads no list as an empty one (the event has
     * "media_urls": [] either way), and eight keys fit the object's first hash table where nine
     * made jansson grow it, an allocation and a rehash on nearly every webhook. */
    json_t *media = NULL;
    if (in->n_media > 0) {
        media = json_array();
        for (int i = 0; i < in->n_media && media != NULL; i++)
            if (json_array_append_new(media, json_string_nocheck(in->media[i])) != 0) {
                json_decref(media);
                media = NULL;
            }
    }
    json_t *cmd = json_object();
    sb__put(&cmd, "type", const_word("ReceiveMessage"));
    sb__put(&cmd, "message_id", json_string_nocheck(t->message_id));
    sb__put(&cmd, "channel", const_word(in->channel));
    sb__put(&cmd, "from", json_string_nocheck(in->from));
    sb__put(&cmd, "to", json_string_nocheck(in->to));
    sb__put(&cmd, "body", json_string_nocheck(in->body));
    if (in->n_media > 0)
        sb__put(&cmd, "media_urls", media);
    sb__put(&cmd, "provider_id", json_string_nocheck(in->message_sid));
    /* from_listed: the contact refuses the message unless the number is still one of its own (the
     * contact may have been named by the loop's memory of senders, or have changed since the flow
     * found it); on_received then finds the number's contact again. */
    sb__put(&cmd, "from_listed", json_true());
    char stream[SB_UUID_STRLEN + 16];
    contact_stream(t->contact_id, stream);
    sb_ask_opts_t opts = {
        .context = t->s.conf->context,
        .context_borrowed = true, /* t holds its conf, and the conf its context, until the callback */
        .correlation_id = t->s.h.request_id,
        .request_id = t->s.h.request_id,
        .source = "webhook:twilio",
        .workspace_id = t->s.conf->workspace_id,
        .skip_state = true,
        .skip_event_data = true,
    };
    int rc = cmd != NULL ? sb_actor_ask(sb_messaging_loops(sb_messaging_current()), stream, cmd, &opts,
                                        on_received, t)
                         : SB_ENOMEM;
    if (rc != 0) {
        sb__wh_reply_errcode(&t->s.h, rc);
        twh_free(t);
    }
}

static void on_contact(const sb_flow_result_t *res, void *data)
{
    twh_t *t = data;
    if (t->s.h.req == NULL) {
        twh_free(t);
        return;
    }
    if (res->status != 0 || res->id == NULL) {
        if (res->status == SB_EREJECTED && res->err != NULL)
            sb__wh_reply_error(&t->s.h, res->err->status == 404 ? 503 : res->err->status, res->err->code,
                               res->err->message, res->err->field[0] ? res->err->field : NULL);
        else
            sb__wh_reply_errcode(&t->s.h, res->status != 0 ? res->status : SB_EINVAL);
        twh_free(t);
        return;
    }
    snprintf(t->contact_id, sizeof(t->contact_id), "%s", res->id);
    sb_wsconf_sender_remember(t->s.conf->workspace_id, t->in.from, t->contact_id);
    receive(t);
}

static void find_contact(twh_t *t)
{
    t->tries++;
    json_t *fields = json_pack("{s:s}", "phone", t->in.from);
    if (fields != NULL && t->in.profile_name != NULL)
        json_object_set_new(fields, "name", json_string(t->in.profile_name));
    sb_flow_opts_t opts = {
        .correlation_id = t->s.h.request_id,
        .request_id = t->s.h.request_id,
        .source = "webhook:twilio",
    };
    int rc = fields != NULL
                 ? sb_flow_contact_create(sb_messaging_loops(sb_messaging_current()), t->s.conf->workspace_id,
                                          fields, SB_FLOW_FIND_OR_CREATE, &opts, on_contact, t)
                 : SB_ENOMEM;
    json_decref(fields);
    if (rc != 0) {
        sb__wh_reply_errcode(&t->s.h, rc);
        twh_free(t);
    }
}

/* ---- status ------------------------------------------------------------------------------------- */

static void on_recorded(const sb_ask_reply_t *reply, void *data)
{
    twh_t *t = data;
    if (t->s.h.req == NULL) {
        twh_free(t);
        return;
    }
    /* A status for a message we no longer know, or one that does not move it forward, is still an
     * answer Twilio should not retry. */
    bool settled = reply->status == 0 || (reply->status == SB_EREJECTED && reply->err != NULL &&
                                          (reply->err->status == 404 || reply->err->status == 409));
    if (settled) {
        if (reply->status != 0)
            sb_log_debug("webhooks", "status %s for message %s recorded nothing: %s", t->st.twilio_status,
                         t->ids.message, reply->err->code);
        SB__WH_COUNT(statuses);
        sb__wh_reply_ok(&t->s.h);
    } else {
        sb__wh_reply_ask_error(&t->s.h, reply);
    }
    twh_free(t);
}

static void record_status(twh_t *t)
{
    const sb_wh_status_t *st = &t->st;
    if (st->status == NULL || !t->has_ids) {
        /* Twilio's intermediate states record nothing; a callback without our ids names no message
         * we sent (we always give them), so there is nothing to record either. */
        if (st->status != NULL)
            sb_log_info("webhooks", "status %s for %s without our ids: ignored", st->twilio_status,
                        st->message_sid);
        SB__WH_COUNT(statuses);
        sb__wh_reply_ok(&t->s.h);
        twh_free(t);
        return;
    }
    json_t *cmd = json_pack("{s:s, s:s, s:s, s:s, s:s?, s:s?}", "type", "RecordMessageStatus", "message_id",
                            t->ids.message, "status", st->status, "provider_id", st->message_sid,
                            "error_code", st->error_code, "error", st->error);
    char stream[SB_UUID_STRLEN + 16];
    contact_stream(t->ids.contact, stream);
    sb_ask_opts_t opts = {
        .context = t->s.conf->context,
        .context_borrowed = true, /* t holds its conf, and the conf its context, until the callback */
        .correlation_id = t->s.h.request_id,
        .request_id = t->s.h.request_id,
        .source = "webhook:twilio",
        .workspace_id = t->s.conf->workspace_id,
        .skip_state = true,
        .skip_event_data = true,
    };
    int rc = cmd != NULL ? sb_actor_ask(sb_messaging_loops(sb_messaging_current()), stream, cmd, &opts,
                                        on_recorded, t)
                         : SB_ENOMEM;
    if (rc != 0) {
        sb__wh_reply_errcode(&t->s.h, rc);
        twh_free(t);
    }
}

/* ---- verification --------------------------------------------------------------------------------- */

static void on_conf(int status, const sb_wsconf_t *conf, void *data);

static bool reload(twh_t *t)
{
    if (t->s.reloaded)
        return false;
    t->s.reloaded = true;
    int rc = t->has_ids ? sb_wsconf_get(t->ids.workspace, SB_WSCONF_RELOAD, on_conf, t)
                        : sb_wsconf_route(t->s.kind == KIND_INBOUND ? t->in.to : t->st.from, SB_WSCONF_RELOAD,
                                          on_conf, t);
    return rc == 0;
}

/* Checks the request against conf; carries on, reloads once (may_reload: conf is a cached entry
 * old enough that reading it again is worth it), or answers 403. */
static void verify(twh_t *t, const sb_wsconf_t *conf, bool may_reload)
{
    const char *account = t->s.kind == KIND_INBOUND ? t->in.account_sid : t->st.account_sid;
    const char *why = NULL;
    if (!conf->twilio)
        why = "twilio is not configured for the workspace";
    else if (strcmp(conf->account_sid, account) != 0)
        why = "AccountSid is not the workspace's account";
    else if (!sb_twilio_sig_check(conf->auth_token, t->s.url, t->s.url_len, &t->s.form, t->s.sig,
                                  t->s.sig_len))
        why = "X-Twilio-Signature does not match";
    if (why != NULL) {
        if (!may_reload || !reload(t))
            forbidden(t, why);
        return;
    }
    t->s.conf = conf;
    sb_wsconf_ref(conf);
    if (t->s.kind == KIND_STATUS) {
        record_status(t);
        return;
    }
    sb_wh_inbound_message_id("twilio", t->in.message_sid, t->message_id);
    /* A sender seen before on this loop: straight to its contact (one ask, no claim reads). */
    if (sb_wsconf_sender_peek(conf->workspace_id, t->in.from, t->contact_id)) {
        receive(t);
        return;
    }
    find_contact(t);
}

static void on_conf(int status, const sb_wsconf_t *conf, void *data)
{
    twh_t *t = data;
    if (t->s.h.req == NULL) {
        twh_free(t);
        return;
    }
    if (status == SB_ENOTFOUND || status == SB_EPERM) {
        forbidden(t, status == SB_ENOTFOUND ? "no workspace has the number"
                                            : "the credentials cannot be opened");
        return;
    }
    if (status != 0) {
        sb__wh_reply_errcode(&t->s.h, status);
        twh_free(t);
        return;
    }
    t->s.reloaded = true;
    verify(t, conf, false);
}

/* Finds the configuration: cached (answered now), else read (answered in on_conf). */
static void route(twh_t *t)
{
    const sb_wsconf_t *conf;
    int rc;
    if (t->has_ids) {
        conf = sb_wsconf_peek(t->ids.workspace);
        rc = conf != NULL ? 0 : sb_wsconf_get(t->ids.workspace, 0, on_conf, t);
    } else {
        const char *number = t->s.kind == KIND_INBOUND ? t->in.to : t->st.from;
        if (number[0] == '\0') {
            forbidden(t, "no number to route by");
            return;
        }
        conf = sb_wsconf_route_peek(number);
        rc = conf != NULL ? 0 : sb_wsconf_route(number, 0, on_conf, t);
    }
    if (conf != NULL) {
        verify(t, conf, sb_wsconf_may_reload(conf));
    } else if (rc != 0) {
        sb__wh_reply_errcode(&t->s.h, rc);
        twh_free(t);
    }
}

/* ---- handlers ------------------------------------------------------------------------------------- */

static int on_inbound(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    twh_t *t = sb__wh_begin_signed(req, data, sizeof(twh_t), KIND_INBOUND, parse);
    if (t != NULL)
        route(t);
    return 0;
}

static int on_status(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    twh_t *t = sb__wh_begin_signed(req, data, sizeof(twh_t), KIND_STATUS, parse);
    if (t == NULL)
        return 0;
    if (req->query_at != SIZE_MAX)
        t->has_ids =
            sb_wh_parse_ids(req->path.base + req->query_at + 1, req->path.len - req->query_at - 1, &t->ids);
    route(t);
    return 0;
}

int sb__wh_twilio_routes(sb_router_t *r, const sb_config_t *cfg)
{
    int rc = sb_router_add(r, "POST", "/webhooks/twilio/messaging", on_inbound, (void *)cfg);
    if (rc == 0)
        rc = sb_router_add(r, "POST", "/webhooks/twilio/messaging/status", on_status, (void *)cfg);
    return rc;
}
