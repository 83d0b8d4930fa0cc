/* Twilio set-up, per workspace (SPEC §5):
 *
 *   PUT    /v1/workspaces/{ws}/twilio {account_sid, auth_token}   (admin) -> 200 the configuration
 *   GET    /v1/workspaces/{ws}/twilio                             (agent) -> 200 the configuration
 *   DELETE /v1/workspaces/{ws}/twilio                             (admin) -> 204
 *
 * PUT checks the credentials against Twilio, then makes the account right, step by step, each step
 * changing only what is not right already (so a second PUT changes nothing):
 *
 *   1. the account answers with these credentials (GET Accounts/{sid}.json) and is active;
 *   2. an API key: the one recorded, if it still authenticates, else a new one (Keys.json);
 *   3. a TwiML app whose voice URL and status callback point at us: the one recorded, else one
 *      found by its name ("Switchboard <ws>"), else a new one; updated only where it differs;
 *   4. every number of the account (IncomingPhoneNumbers.json, all pages) with its voice on the app
 *      and its SMS at our messaging webhook; updated only where it differs;
 *   5. the secrets sealed (auth token and API key secret, db/secrets.h) when they changed, and
 *      ConfigureTwilio (TwilioConfigured only when something changed);
 *   6. each number claimed for the workspace ("number:<e164>", so it routes to one workspace) and
 *      recorded (AddPhoneNumber); numbers the account no longer has removed and released;
 *   7. the workspace's older sealed credentials deleted.
 *
 * DELETE undoes it: the numbers' voice and SMS settings cleared, the app and the key deleted at
 * Twilio (best effort: the workspace is cleared even when Twilio cannot be reached), ClearTwilio,
 * the claims released, the secrets deleted.  Nothing here ever answers or logs a secret. */
#include <stdlib.h>
#include <string.h>

#include "actors/kinds.h"
#include "core/error.h"
#include "core/log.h"
#include "core/phone.h"
#include "core/seal.h"
#include "db/secrets.h"
#include "http/api_messaging.h"
#include "providers/twilio.h"
#include "reactors/messaging.h"
#include "reactors/wsconf.h"

#define MAX_NUMBERS 1000
#define PAGE_SIZE 1000

typedef struct {
    bool deleting;
    sb_twilio_t tw;  /* the account's credentials */
    sb_twilio_t key; /* the API key's, once known */
    sb_twilio_req_t *pending;
    char account_sid[SB_TWILIO_SID_LEN + 1];
    char token[SB_TWILIO_SECRET_MAX + 1];
    bool same_account; /* the account already configured */
    char old_ref[SB_SECRET_REF_LEN + 1];
    char old_token[SB_TWILIO_SECRET_MAX + 1];
    char old_key_sid[SB_TWILIO_SID_LEN + 1];
    char old_key_secret[SB_TWILIO_SECRET_MAX + 1];
    char old_app_sid[SB_TWILIO_SID_LEN + 1];
    char key_sid[SB_TWILIO_SID_LEN + 1];
    char key_secret[SB_TWILIO_SECRET_MAX + 1];
    char app_sid[SB_TWILIO_SID_LEN + 1];
    char new_ref[SB_SECRET_REF_LEN + 1];
    char voice_url[512], voice_status_url[512], sms_url[512];
    json_t
        *numbers;   /* the account's: [{"number", "sid", "voice_application_sid", "sms_url", "sms_method"}] */
    json_t *report; /* {"<e164>": "configured" | "unchanged" | "taken" | "invalid"} */
    json_t *stale;  /* numbers recorded but no longer on the account */
    size_t next;
    json_t *state; /* the workspace state after the last command */
    int64_t version;
} setup_t;

static setup_t *st_of(sb_api_call_t *c)
{
    return c->data;
}

static void cleanup(sb_api_call_t *c)
{
    setup_t *s = st_of(c);
    if (s->pending != NULL)
        sb_twilio_cancel(s->pending);
    s->pending = NULL;
    sb_twilio_clear(&s->tw);
    sb_twilio_clear(&s->key);
    json_decref(s->numbers);
    json_decref(s->report);
    json_decref(s->stale);
    json_decref(s->state);
    /* wipe the secrets held during the set-up */
    sb_seal_wipe(s->token, sizeof(s->token));
    sb_seal_wipe(s->old_token, sizeof(s->old_token));
    sb_seal_wipe(s->old_key_secret, sizeof(s->old_key_secret));
    sb_seal_wipe(s->key_secret, sizeof(s->key_secret));
}

/* A step's callback after an outside call: carry on only while the client waits. */
static bool gone(sb_api_call_t *c)
{
    if (sb_api_alive(c))
        return false;
    sb_api_reply_errcode(c, SB_ESHUTDOWN, NULL); /* frees the call; nothing is sent */
    return true;
}

static void ws_stream(const sb_api_call_t *c, char out[16 + SB_UUID_STRLEN])
{
    snprintf(out, 16 + SB_UUID_STRLEN, "workspace-%s", c->ws_id);
}

static void copy_str(char *out, size_t cap, const char *v)
{
    snprintf(out, cap, "%s", v != NULL ? v : "");
}

/* Twilio's failure as our answer: bad credentials are the caller's (400), the rest Twilio's (502). */
static void reply_twilio_error(sb_api_call_t *c, const sb_twilio_result_t *res, const char *what)
{
    char msg[300];
    if (res->error == SB_EREJECTED && (res->status == 401 || res->status == 403 || res->code == 20003)) {
        sb_api_reply_error(c, 400, "invalid_credentials", "Twilio refused these credentials", "auth_token");
        return;
    }
    if (res->error == SB_EREJECTED && res->status == 404 && strcmp(what, "account") == 0) {
        sb_api_reply_error(c, 400, "unknown_account", "Twilio has no such account", "account_sid");
        return;
    }
    if (res->error == SB_EREJECTED)
        snprintf(msg, sizeof(msg), "Twilio refused to %s: %d %s", what, res->code, res->message);
    else
        snprintf(msg, sizeof(msg), "Twilio could not be reached to %s: %s", what, res->message);
    sb_log_warn("api", "twilio set-up: %s id=%s", msg, c->request_id);
    sb_api_reply_error(c, 502, res->error == SB_EREJECTED ? "provider_error" : "provider_unavailable", msg,
                       NULL);
}

/* The configuration as GET answers it (never a secret). */
static json_t *config_json(const sb_api_call_t *c, const json_t *state, const json_t *report)
{
    const sb_config_t *cfg = sb_messaging_config(sb_messaging_current());
    const json_t *tw = json_object_get(state, "twilio");
    json_t *numbers = json_array();
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)json_object_get(state, "numbers"), k, v)
    {
        json_array_append_new(numbers,
                              json_pack("{s:s, s:O?, s:O?}", "number", k, "sid", json_object_get(v, "sid"),
                                        "assigned_to", json_object_get(v, "assigned_to")));
    }
    char sms[512], voice[512], status[512];
    snprintf(sms, sizeof(sms), "%s/webhooks/twilio/messaging", cfg->public_url);
    snprintf(voice, sizeof(voice), "%s/webhooks/twilio/voice", cfg->public_url);
    snprintf(status, sizeof(status), "%s/webhooks/twilio/messaging/status", cfg->public_url);
    json_t *out = json_pack("{s:b, s:O?, s:O?, s:O?, s:o, s:{s:s, s:s, s:s}}", "configured",
                            json_is_object(tw), "account_sid", json_object_get(tw, "account_sid"),
                            "api_key_sid", json_object_get(tw, "api_key_sid"), "twiml_app_sid",
                            json_object_get(tw, "twiml_app_sid"), "numbers", numbers, "webhooks", "messaging",
                            sms, "messaging_status", status, "voice", voice);
    if (report != NULL)
        json_object_set(out, "changes", (json_t *)report);
    return out;
}

/* ---- GET ---------------------------------------------------------------------------------------------- */

static void got(sb_api_call_t *c)
{
    sb_api_etag(c, c->ws_version);
    sb_api_reply_json(c, 200, config_json(c, c->ws_state, NULL));
}

static int on_get(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_api_workspace(sb_api_begin(req, params, sizeof(setup_t)), SB_ROLE_AGENT, got);
    return 0;
}

/* ---- PUT: the end -----------------------------------------------------------------------------------------
 */

static void on_old_deleted(int status, int deleted, void *data)
{
    sb_api_call_t *c = data;
    setup_t *s = st_of(c);
    if (status != 0) /* left for the next set-up to delete */
        sb_log_warn("api", "twilio set-up: older secrets not deleted: %s", sb_strerror(status));
    sb_wsconf_forget(c->ws_id);
    sb_api_etag(c, s->version);
    sb_api_reply_json(c, 200, config_json(c, s->state, s->report));
}

static void finish_put(sb_api_call_t *c)
{
    setup_t *s = st_of(c);
    sb_messaging_t *m = sb_messaging_current();
    int rc = sb_secrets_delete(sb_messaging_secrets(m), c->loop->db, c->ws_id, "twilio", s->new_ref,
                               on_old_deleted, c);
    if (rc != 0)
        on_old_deleted(rc, 0, c);
}

/* ---- PUT: recording the numbers -------------------------------------------------------------------------
 */

static void record_next(sb_api_call_t *c);

static void keep_state(setup_t *s, const sb_ask_reply_t *reply)
{
    if (reply->state != NULL) {
        json_decref(s->state);
        s->state = json_incref(reply->state);
        s->version = reply->version;
    }
}

static void on_number_added(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    setup_t *s = st_of(c);
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
    setup_t *s = st_of(c);
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
    char stream[16 + SB_UUID_STRLEN];
    ws_stream(c, stream);
    sb_ask_opts_t o;
    sb_api_ask_opts(c, &o);
    o.context = NULL;
    sb_api_ask(c, stream,
               json_pack("{s:s, s:s, s:O}", "type", "AddPhoneNumber", "number", number, "sid",
                         json_object_get(n, "sid")),
               &o, on_number_added);
}

static void claim_ask(sb_api_call_t *c, const char *number, const char *type, sb_api_ask_cb cb)
{
    char key[8 + SB_PHONE_MAX], stream[SB_CLAIM_STREAM_LEN], owner[16 + SB_UUID_STRLEN];
    snprintf(key, sizeof(key), "number:%s", number);
    sb_claim_stream(key, stream);
    ws_stream(c, owner);
    sb_ask_opts_t o;
    sb_api_ask_opts(c, &o);
    o.context = NULL;
    o.workspace_id = NULL;
    json_t *cmd = strcmp(type, "Claim") == 0
                      ? json_pack("{s:s, s:s, s:s}", "type", type, "key", key, "owner", owner)
                      : json_pack("{s:s, s:s}", "type", type, "owner", owner);
    sb_api_ask(c, stream, cmd, &o, cb);
}

static void release_next(sb_api_call_t *c);

static void on_released(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    setup_t *s = st_of(c);
    if (reply->status != 0 && reply->status != SB_EREJECTED) {
        sb_api_reply_ask_error(c, reply);
        return;
    }
    json_array_remove(s->stale, 0);
    release_next(c);
}

static void on_number_removed(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    setup_t *s = st_of(c);
    if (reply->status != 0 && reply->status != SB_EREJECTED) {
        sb_api_reply_ask_error(c, reply);
        return;
    }
    keep_state(s, reply);
    const char *number = json_string_value(json_array_get(s->stale, 0));
    json_object_set_new(s->report, number, json_string("removed"));
    claim_ask(c, number, "Release", on_released);
}

/* Numbers recorded that the account no longer has: removed, then released. */
static void release_next(sb_api_call_t *c)
{
    setup_t *s = st_of(c);
    if (json_array_size(s->stale) == 0) {
        finish_put(c);
        return;
    }
    char stream[16 + SB_UUID_STRLEN];
    ws_stream(c, stream);
    sb_ask_opts_t o;
    sb_api_ask_opts(c, &o);
    o.context = NULL;
    if (s->deleting) {
        claim_ask(c, json_string_value(json_array_get(s->stale, 0)), "Release", on_released);
        return;
    }
    sb_api_ask(c, stream,
               json_pack("{s:s, s:O}", "type", "RemovePhoneNumber", "number", json_array_get(s->stale, 0)),
               &o, on_number_removed);
}

static void record_next(sb_api_call_t *c)
{
    setup_t *s = st_of(c);
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
    release_next(c);
}

/* ---- PUT: sealing and recording the configuration ----------------------------------------------------- */

static void on_configured(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    setup_t *s = st_of(c);
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
    setup_t *s = st_of(c);
    char stream[16 + SB_UUID_STRLEN];
    ws_stream(c, stream);
    sb_ask_opts_t o;
    sb_api_ask_opts(c, &o);
    o.context = NULL;
    sb_api_ask(c, stream,
               json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", "ConfigureTwilio", "account_sid",
                         s->account_sid, "api_key_sid", s->key_sid, "twiml_app_sid", s->app_sid, "secret_ref",
                         s->new_ref),
               &o, on_configured);
}

static void on_sealed(int status, const char *ref, void *data)
{
    sb_api_call_t *c = data;
    if (gone(c))
        return;
    if (status != 0) {
        sb_api_reply_errcode(c, status, NULL);
        return;
    }
    copy_str(st_of(c)->new_ref, sizeof(st_of(c)->new_ref), ref);
    configure(c);
}

static void seal(sb_api_call_t *c)
{
    setup_t *s = st_of(c);
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
    if (rc != 0)
        sb_api_reply_errcode(c, rc, NULL);
}

/* ---- PUT: the numbers at Twilio
 * ------------------------------------------------------------------------------- */

static void update_next(sb_api_call_t *c);

static void on_number_updated(const sb_twilio_result_t *res, void *data)
{
    sb_api_call_t *c = data;
    setup_t *s = st_of(c);
    s->pending = NULL;
    if (gone(c))
        return;
    if (res->error != 0) {
        reply_twilio_error(c, res, "configure a number");
        return;
    }
    s->next++;
    update_next(c);
}

static bool differs(const json_t *n, const char *key, const char *want)
{
    const char *v = json_string_value(json_object_get(n, key));
    return v == NULL || strcmp(v, want) != 0;
}

static void update_next(sb_api_call_t *c)
{
    setup_t *s = st_of(c);
    while (s->next < json_array_size(s->numbers)) {
        const json_t *n = json_array_get(s->numbers, s->next);
        const char *number = json_string_value(json_object_get(n, "number"));
        const char *sid = json_string_value(json_object_get(n, "sid"));
        if (differs(n, "voice_application_sid", s->app_sid) || differs(n, "sms_url", s->sms_url) ||
            differs(n, "sms_method", "POST")) {
            sb_twilio_number_update_t u = {
                .voice_application_sid = s->app_sid, .sms_url = s->sms_url, .sms_method = "POST"};
            json_object_set_new(s->report, number, json_string("configured"));
            int rc = sb_twilio_update_number(&s->key, sid, &u, on_number_updated, c, &s->pending);
            if (rc != 0)
                sb_api_reply_errcode(c, rc, NULL);
            return;
        }
        json_object_set_new(s->report, number, json_string("unchanged"));
        s->next++;
    }
    seal(c);
}

static void list_page(sb_api_call_t *c, const char *page_uri);

static void on_numbers(const sb_twilio_result_t *res, void *data)
{
    sb_api_call_t *c = data;
    setup_t *s = st_of(c);
    s->pending = NULL;
    if (gone(c))
        return;
    if (res->error != 0) {
        reply_twilio_error(c, res, "list the numbers");
        return;
    }
    size_t i;
    const json_t *n;
    json_array_foreach(json_object_get(res->json, "incoming_phone_numbers"), i, n)
    {
        const char *number = json_string_value(json_object_get(n, "phone_number"));
        const char *sid = json_string_value(json_object_get(n, "sid"));
        if (json_array_size(s->numbers) >= MAX_NUMBERS)
            break;
        if (number == NULL || sid == NULL || !sb_phone_is_e164(number) ||
            !sb_twilio_sid_is_valid(sid, "PN")) {
            if (number != NULL && strlen(number) < 64)
                json_object_set_new(s->report, number, json_string("invalid"));
            continue;
        }
        json_array_append_new(s->numbers,
                              json_pack("{s:s, s:s, s:O?, s:O?, s:O?}", "number", number, "sid", sid,
                                        "voice_application_sid", json_object_get(n, "voice_application_sid"),
                                        "sms_url", json_object_get(n, "sms_url"), "sms_method",
                                        json_object_get(n, "sms_method")));
    }
    if (res->next_page_uri != NULL && json_array_size(s->numbers) < MAX_NUMBERS) {
        list_page(c, res->next_page_uri);
        return;
    }
    s->next = 0;
    update_next(c);
}

static void list_page(sb_api_call_t *c, const char *page_uri)
{
    setup_t *s = st_of(c);
    int rc = sb_twilio_list_numbers(&s->key, PAGE_SIZE, page_uri, on_numbers, c, &s->pending);
    if (rc != 0)
        sb_api_reply_errcode(c, rc, NULL);
}

/* ---- PUT: the TwiML app
 * ------------------------------------------------------------------------------------ */

static void on_app_ready(const sb_twilio_result_t *res, void *data)
{
    sb_api_call_t *c = data;
    setup_t *s = st_of(c);
    s->pending = NULL;
    if (gone(c))
        return;
    if (res->error != 0) {
        reply_twilio_error(c, res, "configure the TwiML app");
        return;
    }
    if (s->app_sid[0] == '\0')
        copy_str(s->app_sid, sizeof(s->app_sid), res->sid);
    if (!sb_twilio_sid_is_valid(s->app_sid, "AP")) {
        sb_api_reply_error(c, 502, "provider_error", "Twilio answered without an application sid", NULL);
        return;
    }
    list_page(c, NULL);
}

/* Makes app (a Twilio application's JSON) point at us, or creates one when app is NULL. */
static void fix_app(sb_api_call_t *c, const json_t *app)
{
    setup_t *s = st_of(c);
    char name[64];
    snprintf(name, sizeof(name), "Switchboard %s", c->ws_id);
    sb_twilio_app_t a = {.friendly_name = name,
                         .voice_url = s->voice_url,
                         .voice_method = "POST",
                         .status_callback = s->voice_status_url,
                         .status_callback_method = "POST"};
    int rc;
    if (app == NULL) {
        s->app_sid[0] = '\0';
        rc = sb_twilio_create_app(&s->key, &a, on_app_ready, c, &s->pending);
    } else {
        copy_str(s->app_sid, sizeof(s->app_sid), json_string_value(json_object_get(app, "sid")));
        if (!differs(app, "voice_url", s->voice_url) && !differs(app, "voice_method", "POST") &&
            !differs(app, "status_callback", s->voice_status_url)) {
            list_page(c, NULL); /* already right */
            return;
        }
        a.friendly_name = NULL;
        rc = sb_twilio_update_app(&s->key, s->app_sid, &a, on_app_ready, c, &s->pending);
    }
    if (rc != 0)
        sb_api_reply_errcode(c, rc, NULL);
}

static void on_apps_listed(const sb_twilio_result_t *res, void *data)
{
    sb_api_call_t *c = data;
    st_of(c)->pending = NULL;
    if (gone(c))
        return;
    if (res->error != 0) {
        reply_twilio_error(c, res, "list the TwiML apps");
        return;
    }
    const json_t *apps = json_object_get(res->json, "applications");
    fix_app(c, json_array_size(apps) > 0 ? json_array_get(apps, 0) : NULL);
}

static void find_app_by_name(sb_api_call_t *c)
{
    setup_t *s = st_of(c);
    char name[64];
    snprintf(name, sizeof(name), "Switchboard %s", c->ws_id);
    int rc = sb_twilio_list_apps(&s->key, name, NULL, on_apps_listed, c, &s->pending);
    if (rc != 0)
        sb_api_reply_errcode(c, rc, NULL);
}

static void on_old_app(const sb_twilio_result_t *res, void *data)
{
    sb_api_call_t *c = data;
    st_of(c)->pending = NULL;
    if (gone(c))
        return;
    if (res->error == SB_EREJECTED && res->status == 404) {
        find_app_by_name(c); /* deleted at Twilio meanwhile */
        return;
    }
    if (res->error != 0) {
        reply_twilio_error(c, res, "read the TwiML app");
        return;
    }
    fix_app(c, res->json);
}

static void ensure_app(sb_api_call_t *c)
{
    setup_t *s = st_of(c);
    if (s->same_account && s->old_app_sid[0] != '\0') {
        char path[64];
        snprintf(path, sizeof(path), "Applications/%s.json", s->old_app_sid);
        int rc = sb_twilio_request(&s->key, "GET", path, NULL, on_old_app, c, &s->pending);
        if (rc != 0)
            sb_api_reply_errcode(c, rc, NULL);
        return;
    }
    find_app_by_name(c);
}

/* ---- PUT: the API key
 * ------------------------------------------------------------------------------------------ */

static void use_key(sb_api_call_t *c)
{
    setup_t *s = st_of(c);
    int rc = sb_twilio_init(&s->key, s->tw.http, s->tw.api_base, s->account_sid, s->token);
    if (rc == 0)
        rc = sb_twilio_use_api_key(&s->key, s->key_sid, s->key_secret);
    if (rc != 0) {
        sb_api_reply_error(c, 502, "provider_error", "Twilio gave an unusable API key", NULL);
        return;
    }
    ensure_app(c);
}

static void on_key_created(const sb_twilio_result_t *res, void *data)
{
    sb_api_call_t *c = data;
    setup_t *s = st_of(c);
    s->pending = NULL;
    if (gone(c))
        return;
    if (res->error != 0) {
        reply_twilio_error(c, res, "create an API key");
        return;
    }
    const char *secret = json_string_value(json_object_get(res->json, "secret"));
    if (res->sid == NULL || !sb_twilio_sid_is_valid(res->sid, "SK") || secret == NULL || secret[0] == '\0' ||
        strlen(secret) > SB_TWILIO_SECRET_MAX || strchr(secret, '\n') != NULL) {
        sb_api_reply_error(c, 502, "provider_error", "Twilio answered without a usable API key", NULL);
        return;
    }
    copy_str(s->key_sid, sizeof(s->key_sid), res->sid);
    copy_str(s->key_secret, sizeof(s->key_secret), secret);
    use_key(c);
}

static void create_key(sb_api_call_t *c)
{
    setup_t *s = st_of(c);
    char name[64];
    snprintf(name, sizeof(name), "Switchboard %s", c->ws_id);
    int rc = sb_twilio_create_key(&s->tw, name, on_key_created, c, &s->pending);
    if (rc != 0)
        sb_api_reply_errcode(c, rc, NULL);
}

static void on_old_key_checked(const sb_twilio_result_t *res, void *data)
{
    sb_api_call_t *c = data;
    setup_t *s = st_of(c);
    s->pending = NULL;
    if (gone(c))
        return;
    if (res->error == 0) {
        memcpy(s->key_sid, s->old_key_sid, sizeof(s->key_sid));
        memcpy(s->key_secret, s->old_key_secret, sizeof(s->key_secret));
        use_key(c);
        return;
    }
    if (res->error == SB_EREJECTED && (res->status == 401 || res->status == 403)) {
        create_key(c); /* the key was deleted or revoked */
        return;
    }
    reply_twilio_error(c, res, "check the API key");
}

static void ensure_key(sb_api_call_t *c)
{
    setup_t *s = st_of(c);
    if (s->same_account && s->old_key_sid[0] != '\0' && s->old_key_secret[0] != '\0') {
        sb_twilio_t probe;
        int rc = sb_twilio_init(&probe, s->tw.http, s->tw.api_base, s->account_sid, s->token);
        if (rc == 0)
            rc = sb_twilio_use_api_key(&probe, s->old_key_sid, s->old_key_secret);
        if (rc == 0)
            rc = sb_twilio_fetch_account(&probe, on_old_key_checked, c, &s->pending);
        sb_twilio_clear(&probe); /* the request holds its own copy */
        if (rc != 0)
            sb_api_reply_errcode(c, rc, NULL);
        return;
    }
    create_key(c);
}

/* ---- PUT: the start
 * ----------------------------------------------------------------------------------------------- */

static void bundle_field(const char *v, size_t len, const char *name, char *out, size_t cap)
{
    size_t n = strlen(name);
    out[0] = '\0';
    for (const char *p = v, *end = v + len; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl != NULL ? nl : end;
        if ((size_t)(le - p) > n && memcmp(p, name, n) == 0 && p[n] == '=' &&
            (size_t)(le - p) - n - 1 < cap) {
            memcpy(out, p + n + 1, (size_t)(le - p) - n - 1);
            out[(le - p) - n - 1] = '\0';
        }
        p = le + 1;
    }
}

static void on_old_secret(int status, const char *value, size_t len, void *data)
{
    sb_api_call_t *c = data;
    setup_t *s = st_of(c);
    if (gone(c))
        return;
    if (status == 0) {
        bundle_field(value, len, "auth_token", s->old_token, sizeof(s->old_token));
        bundle_field(value, len, "api_key_secret", s->old_key_secret, sizeof(s->old_key_secret));
    } else {
        /* unreadable (another master key, deleted): set up afresh */
        sb_log_warn("api", "twilio set-up: the recorded credentials cannot be opened (%s): making new ones",
                    sb_strerror(status));
        s->old_ref[0] = '\0';
    }
    ensure_key(c);
}

static void on_account(const sb_twilio_result_t *res, void *data)
{
    sb_api_call_t *c = data;
    setup_t *s = st_of(c);
    s->pending = NULL;
    if (gone(c))
        return;
    if (res->error != 0) {
        reply_twilio_error(c, res, "account");
        return;
    }
    if (res->resource_status != NULL && strcmp(res->resource_status, "active") != 0) {
        sb_api_reply_error(c, 400, "account_inactive", "the Twilio account is not active", "account_sid");
        return;
    }
    const json_t *tw = json_object_get(c->ws_state, "twilio");
    const char *old_sid = json_string_value(json_object_get(tw, "account_sid"));
    s->same_account = old_sid != NULL && strcmp(s->account_sid, old_sid) == 0;
    if (s->same_account) {
        copy_str(s->old_key_sid, sizeof(s->old_key_sid),
                 json_string_value(json_object_get(tw, "api_key_sid")));
        copy_str(s->old_app_sid, sizeof(s->old_app_sid),
                 json_string_value(json_object_get(tw, "twiml_app_sid")));
        const char *ref = json_string_value(json_object_get(tw, "secret_ref"));
        if (sb_secret_ref_parse(ref, NULL)) {
            copy_str(s->old_ref, sizeof(s->old_ref), ref);
            int rc = sb_secrets_get(sb_messaging_secrets(sb_messaging_current()), c->loop->db, ref,
                                    on_old_secret, c);
            if (rc != 0)
                sb_api_reply_errcode(c, rc, NULL);
            return;
        }
    }
    ensure_key(c);
}

static bool printable_token(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n > SB_TWILIO_SECRET_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)t[i] <= ' ' || (unsigned char)t[i] >= 0x7f)
            return false;
    return true;
}

static setup_t *start(sb_api_call_t *c)
{
    setup_t *s = st_of(c);
    const sb_config_t *cfg = sb_messaging_config(sb_messaging_current());
    c->cleanup = cleanup;
    s->numbers = json_array();
    s->report = json_object();
    s->stale = json_array();
    s->state = json_incref(c->ws_state);
    s->version = c->ws_version;
    snprintf(s->voice_url, sizeof(s->voice_url), "%s/webhooks/twilio/voice", cfg->public_url);
    snprintf(s->voice_status_url, sizeof(s->voice_status_url), "%s/webhooks/twilio/voice/status",
             cfg->public_url);
    snprintf(s->sms_url, sizeof(s->sms_url), "%s/webhooks/twilio/messaging", cfg->public_url);
    return s;
}

static void put_loaded(sb_api_call_t *c)
{
    static const char *const fields[] = {"account_sid", "auth_token", NULL};
    if (sb_messaging_current() == NULL) {
        sb_api_reply_errcode(c, SB_ESHUTDOWN, NULL);
        return;
    }
    if (!sb_api_read_body(c, fields))
        return;
    const char *sid = json_string_value(json_object_get(c->body, "account_sid"));
    const char *token = json_string_value(json_object_get(c->body, "auth_token"));
    if (sid == NULL || !sb_twilio_sid_is_valid(sid, "AC")) {
        sb_api_reply_error(c, 400, sid == NULL ? "required" : "invalid",
                           "account_sid must be AC and 32 hex digits", "account_sid");
        return;
    }
    if (token == NULL || !printable_token(token)) {
        sb_api_reply_error(c, 400, token == NULL ? "required" : "invalid",
                           "auth_token must be 1..128 printable characters", "auth_token");
        return;
    }
    setup_t *s = start(c);
    copy_str(s->account_sid, sizeof(s->account_sid), sid);
    copy_str(s->token, sizeof(s->token), token);
    sb_http_client_t *http = sb_http_client_get(c->loop);
    const sb_config_t *cfg = sb_messaging_config(sb_messaging_current());
    int rc = http != NULL ? sb_twilio_init(&s->tw, http, cfg->twilio_api_base, s->account_sid, s->token)
                          : SB_ESHUTDOWN;
    if (rc == 0)
        rc = sb_twilio_fetch_account(&s->tw, on_account, c, &s->pending);
    if (rc != 0)
        sb_api_reply_errcode(c, rc, NULL);
}

static int on_put(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_api_workspace(sb_api_begin(req, params, sizeof(setup_t)), SB_ROLE_ADMIN, put_loaded);
    return 0;
}

/* ---- DELETE
 * -------------------------------------------------------------------------------------------------------- */

static void on_secrets_deleted(int status, int deleted, void *data)
{
    sb_api_call_t *c = data;
    if (status != 0)
        sb_log_warn("api", "twilio clear: secrets not deleted: %s", sb_strerror(status));
    sb_wsconf_forget(c->ws_id);
    sb_api_reply_json(c, 204, NULL);
}

static void del_release_next(sb_api_call_t *c);

static void on_del_released(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    setup_t *s = st_of(c);
    if (reply->status != 0 && reply->status != SB_EREJECTED) {
        sb_api_reply_ask_error(c, reply);
        return;
    }
    json_array_remove(s->stale, 0);
    del_release_next(c);
}

static void del_release_next(sb_api_call_t *c)
{
    setup_t *s = st_of(c);
    if (json_array_size(s->stale) > 0) {
        claim_ask(c, json_string_value(json_array_get(s->stale, 0)), "Release", on_del_released);
        return;
    }
    int rc = sb_secrets_delete(sb_messaging_secrets(sb_messaging_current()), c->loop->db, c->ws_id, "twilio",
                               NULL, on_secrets_deleted, c);
    if (rc != 0)
        on_secrets_deleted(rc, 0, c);
}

static void on_cleared(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    if (reply->status != 0) {
        sb_api_reply_ask_error(c, reply);
        return;
    }
    del_release_next(c);
}

static void clear_locally(sb_api_call_t *c)
{
    char stream[16 + SB_UUID_STRLEN];
    ws_stream(c, stream);
    sb_ask_opts_t o;
    sb_api_ask_opts(c, &o);
    o.context = NULL;
    if (!sb_api_if_match(c, &o))
        return;
    sb_api_ask(c, stream, json_pack("{s:s}", "type", "ClearTwilio"), &o, on_cleared);
}

static void del_step(sb_api_call_t *c);

static void on_del_twilio(const sb_twilio_result_t *res, void *data)
{
    sb_api_call_t *c = data;
    setup_t *s = st_of(c);
    s->pending = NULL;
    if (gone(c))
        return;
    if (res->error != 0 && !(res->error == SB_EREJECTED && res->status == 404))
        sb_log_warn("api", "twilio clear: Twilio did not undo a setting (%s): clearing the workspace anyway",
                    res->message);
    s->next++;
    del_step(c);
}

/* Undoes at Twilio, one request at a time: each number's settings, then the app, then the key. */
static void del_step(sb_api_call_t *c)
{
    setup_t *s = st_of(c);
    size_t nn = json_array_size(s->numbers);
    int rc = 0;
    if (s->next < nn) {
        const json_t *n = json_array_get(s->numbers, s->next);
        sb_twilio_number_update_t u = {.voice_application_sid = "", .sms_url = ""};
        rc = sb_twilio_update_number(&s->tw, json_string_value(json_object_get(n, "sid")), &u, on_del_twilio,
                                     c, &s->pending);
    } else if (s->next == nn && s->old_app_sid[0] != '\0') {
        rc = sb_twilio_delete_app(&s->tw, s->old_app_sid, on_del_twilio, c, &s->pending);
    } else if (s->next <= nn + 1 && s->old_key_sid[0] != '\0') {
        char path[64];
        snprintf(path, sizeof(path), "Keys/%s.json", s->old_key_sid);
        s->next = nn + 1;
        rc = sb_twilio_request(&s->tw, "DELETE", path, NULL, on_del_twilio, c, &s->pending);
    } else {
        clear_locally(c);
        return;
    }
    if (rc != 0) {
        sb_log_warn("api", "twilio clear: %s: clearing the workspace anyway", sb_strerror(rc));
        clear_locally(c);
    }
}

static void on_del_secret(int status, const char *value, size_t len, void *data)
{
    sb_api_call_t *c = data;
    setup_t *s = st_of(c);
    if (gone(c))
        return;
    char token[SB_TWILIO_SECRET_MAX + 1];
    sb_http_client_t *http = sb_http_client_get(c->loop);
    const sb_config_t *cfg = sb_messaging_config(sb_messaging_current());
    if (status == 0)
        bundle_field(value, len, "auth_token", token, sizeof(token));
    if (status != 0 || http == NULL ||
        sb_twilio_init(&s->tw, http, cfg->twilio_api_base, s->account_sid, token) != 0) {
        sb_log_warn("api", "twilio clear: the credentials cannot be used (%s): clearing the workspace only",
                    sb_strerror(status != 0 ? status : SB_EINVAL));
        sb_seal_wipe(token, sizeof(token));
        clear_locally(c);
        return;
    }
    sb_seal_wipe(token, sizeof(token));
    s->next = 0;
    del_step(c);
}

static void del_loaded(sb_api_call_t *c)
{
    if (sb_messaging_current() == NULL) {
        sb_api_reply_errcode(c, SB_ESHUTDOWN, NULL);
        return;
    }
    setup_t *s = start(c);
    s->deleting = true;
    const json_t *tw = json_object_get(c->ws_state, "twilio");
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)json_object_get(c->ws_state, "numbers"), k, v)
    {
        json_array_append_new(s->numbers,
                              json_pack("{s:s, s:O?}", "number", k, "sid", json_object_get(v, "sid")));
        json_array_append_new(s->stale, json_string(k));
    }
    if (!json_is_object(tw)) {
        clear_locally(c);
        return;
    }
    copy_str(s->account_sid, sizeof(s->account_sid), json_string_value(json_object_get(tw, "account_sid")));
    copy_str(s->old_key_sid, sizeof(s->old_key_sid), json_string_value(json_object_get(tw, "api_key_sid")));
    copy_str(s->old_app_sid, sizeof(s->old_app_sid), json_string_value(json_object_get(tw, "twiml_app_sid")));
    const char *ref = json_string_value(json_object_get(tw, "secret_ref"));
    int rc = sb_secret_ref_parse(ref, NULL) ? sb_secrets_get(sb_messaging_secrets(sb_messaging_current()),
                                                             c->loop->db, ref, on_del_secret, c)
                                            : SB_EINVAL;
    if (rc != 0)
        clear_locally(c);
}

static int on_delete(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_api_workspace(sb_api_begin(req, params, sizeof(setup_t)), SB_ROLE_ADMIN, del_loaded);
    return 0;
}

int sb__api_twilio_routes(sb_router_t *r, sb_api_t *api)
{
    int rc;
    if ((rc = sb_router_add(r, "GET", "/v1/workspaces/{ws}/twilio", on_get, api)) != 0 ||
        (rc = sb_router_add(r, "PUT", "/v1/workspaces/{ws}/twilio", on_put, api)) != 0 ||
        (rc = sb_router_add(r, "DELETE", "/v1/workspaces/{ws}/twilio", on_delete, api)) != 0)
        return rc;
    return 0;
}
