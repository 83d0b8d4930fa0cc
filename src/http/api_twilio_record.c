/* The Twilio set-up's steps in our log (api_twilio_int.h): the secrets sealed, ConfigureTwilio,
 * each number claimed for the workspace and recorded, numbers gone from the account removed and
 * released, the older secrets deleted.  DELETE ends here too, releasing every number. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "actors/kinds.h"
#include "core/log.h"
#include "core/phone.h"
#include "core/seal.h"
#include "http/api_twilio_int.h"
#include "reactors/messaging.h"
#include "reactors/wsconf.h"

/* ---- the end ------------------------------------------------------------------------------------ */

static void on_secrets_deleted(int status, int deleted, void *data)
{
    (void)deleted;
    sb_api_call_t *c = data;
    sb__tws_t *s = sb__tws_of(c);
    if (status != 0) /* left for the next set-up to delete */
        sb_log_warn("api", "twilio %s: secrets not deleted: %s", s->deleting ? "clear" : "set-up",
                    sb_strerror(status));
    sb_wsconf_forget(c->ws_id);
    if (s->deleting) {
        sb_api_reply_json(c, 204, NULL);
        return;
    }
    sb_api_etag(c, s->version);
    sb_api_reply_json(c, 200, sb__tws_config_json(c, s->state, s->report));
}

/* The workspace's sealed Twilio secrets deleted: all of them after a DELETE, the older ones after
 * a PUT. */
static void finish(sb_api_call_t *c)
{
    sb__tws_t *s = sb__tws_of(c);
    int rc = sb_secrets_delete(sb_messaging_secrets(sb_messaging_current()), c->loop->db, c->ws_id, "twilio",
                               s->deleting ? NULL : s->new_ref, on_secrets_deleted, c);
    if (rc != 0)
        on_secrets_deleted(rc, 0, c);
}

/* ---- the numbers' claims ------------------------------------------------------------------------ */

static void record_next(sb_api_call_t *c);

static void keep_state(sb__tws_t *s, const sb_ask_reply_t *reply)
{
    if (reply->state != NULL) {
        json_decref(s->state);
        s->state = json_incref(reply->state);
        s->version = reply->version;
    }
}

static void on_number_added(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    sb__tws_t *s = sb__tws_of(c);
    const json_t *n = json_array_get(s->numbers, s->next);
    const char *number = json_string_value(json_object_get(n, "number"));
    if (reply->status != 0) {
        if (reply->status != SB_EREJECTED) {
            sb_api_reply_ask_error(c, reply);
            return;
        }
        json_object_set_new(s->report, number, json_string(reply->err->code));
    }
    keep_state(s, reply);
    s->next++;
    record_next(c);
}

static void on_claimed(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    sb__tws_t *s = sb__tws_of(c);
    const json_t *n = json_array_get(s->numbers, s->next);
    const char *number = json_string_value(json_object_get(n, "number"));
    if (reply->status == SB_EREJECTED) { /* another workspace has it */
        json_object_set_new(s->report, number, json_string("taken"));
        s->next++;
        record_next(c);
        return;
    }
    if (reply->status != 0) {
        sb_api_reply_ask_error(c, reply);
        return;
    }
    sb__tws_ask_workspace(c,
                          json_pack("{s:s, s:s, s:O}", "type", "AddPhoneNumber", "number", number, "sid",
                                    json_object_get(n, "sid")),
                          false, on_number_added);
}

static void claim_ask(sb_api_call_t *c, const char *number, const char *type, sb_api_ask_cb cb)
{
    char key[8 + SB_PHONE_MAX], stream[SB_CLAIM_STREAM_LEN], owner[16 + SB_UUID_STRLEN];
    snprintf(key, sizeof(key), "number:%s", number);
    sb_claim_stream(key, stream);
    sb__tws_ws_stream(c, owner);
    sb_ask_opts_t o;
    sb_api_ask_opts(c, &o);
    o.context = NULL;
    o.workspace_id = NULL;
    json_t *cmd = strcmp(type, "Claim") == 0
                      ? json_pack("{s:s, s:s, s:s}", "type", type, "key", key, "owner", owner)
                      : json_pack("{s:s, s:s}", "type", type, "owner", owner);
    sb_api_ask(c, stream, cmd, &o, cb);
}

static void on_released(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    sb__tws_t *s = sb__tws_of(c);
    if (reply->status != 0 && reply->status != SB_EREJECTED) {
        sb_api_reply_ask_error(c, reply);
        return;
    }
    json_array_remove(s->stale, 0);
    sb__tws_release_stale(c);
}

static void on_number_removed(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    sb__tws_t *s = sb__tws_of(c);
    if (reply->status != 0 && reply->status != SB_EREJECTED) {
        sb_api_reply_ask_error(c, reply);
        return;
    }
    keep_state(s, reply);
    const char *number = json_string_value(json_array_get(s->stale, 0));
    json_object_set_new(s->report, number, json_string("removed"));
    claim_ask(c, number, "Release", on_released);
}

void sb__tws_release_stale(sb_api_call_t *c)
{
    sb__tws_t *s = sb__tws_of(c);
    if (json_array_size(s->stale) == 0) {
        finish(c);
        return;
    }
    if (s->deleting) {
        claim_ask(c, json_string_value(json_array_get(s->stale, 0)), "Release", on_released);
        return;
    }
    sb__tws_ask_workspace(
        c, json_pack("{s:s, s:O}", "type", "RemovePhoneNumber", "number", json_array_get(s->stale, 0)), false,
        on_number_removed);
}

static void record_next(sb_api_call_t *c)
{
    sb__tws_t *s = sb__tws_of(c);
    while (s->next < json_array_size(s->numbers)) {
        const json_t *n = json_array_get(s->numbers, s->next);
        const char *number = json_string_value(json_object_get(n, "number"));
        const char *status = json_string_value(json_object_get(s->report, number));
        if (status == NULL || strcmp(status, "invalid") != 0) {
            claim_ask(c, number, "Claim", on_claimed);
            return;
        }
        s->next++;
    }
    /* the numbers recorded that the account no longer has */
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)json_object_get(s->state, "numbers"), k, v)
    {
        bool present = false;
        size_t i;
        const json_t *n;
        json_array_foreach(s->numbers, i, n)
        {
            if (strcmp(json_string_value(json_object_get(n, "number")), k) == 0)
                present = true;
        }
        if (!present)
            json_array_append_new(s->stale, json_string(k));
    }
    sb__tws_release_stale(c);
}

/* ---- sealing and ConfigureTwilio --------------------------------------------------------------- */

static void on_configured(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    sb__tws_t *s = sb__tws_of(c);
    if (reply->status != 0) {
        sb_api_reply_ask_error(c, reply);
        return;
    }
    keep_state(s, reply);
    s->next = 0;
    record_next(c);
}

static void configure(sb_api_call_t *c)
{
    sb__tws_t *s = sb__tws_of(c);
    sb__tws_ask_workspace(c,
                          json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", "ConfigureTwilio", "account_sid",
                                    s->account_sid, "api_key_sid", s->key_sid, "twiml_app_sid", s->app_sid,
                                    "secret_ref", s->new_ref),
                          false, on_configured);
}

static void on_sealed(int status, const char *ref, void *data)
{
    sb_api_call_t *c = data;
    if (sb__tws_gone(c))
        return;
    if (status != 0) {
        sb_api_reply_errcode(c, status, NULL);
        return;
    }
    sb__tws_copy(sb__tws_of(c)->new_ref, sizeof(sb__tws_of(c)->new_ref), ref);
    configure(c);
}

void sb__tws_seal(sb_api_call_t *c)
{
    sb__tws_t *s = sb__tws_of(c);
    if (s->old_ref[0] != '\0' && s->same_account && strcmp(s->token, s->old_token) == 0 &&
        strcmp(s->key_sid, s->old_key_sid) == 0) {
        memcpy(s->new_ref, s->old_ref, sizeof(s->new_ref)); /* nothing to seal anew */
        configure(c);
        return;
    }
    char bundle[2 * SB_TWILIO_SECRET_MAX + 64];
    int n = snprintf(bundle, sizeof(bundle), "auth_token=%s\napi_key_secret=%s\n", s->token, s->key_secret);
    int rc = sb_secrets_put(sb_messaging_secrets(sb_messaging_current()), c->loop->db, c->ws_id, "twilio",
                            bundle, (size_t)n, on_sealed, c);
    sb_seal_wipe(bundle, sizeof(bundle));
    sb__tws_started(c, rc);
}
