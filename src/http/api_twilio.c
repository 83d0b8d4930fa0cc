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

#include "core/error.h"
#include "core/log.h"
#include "core/seal.h"
#include "http/api_messaging.h"
#include "http/api_twilio_int.h"
#include "reactors/messaging.h"
#include "reactors/wsconf.h"

/* ---- shared by the steps (api_twilio_int.h) ------------------------------------------------------ */

static void cleanup(sb_api_call_t *c)
{
    sb__tws_t *s = sb__tws_of(c);
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

bool sb__tws_gone(sb_api_call_t *c)
{
    if (sb_api_alive(c))
        return false;
    sb_api_reply_errcode(c, SB_ESHUTDOWN, NULL); /* frees the call; nothing is sent */
    return true;
}

sb_api_call_t *sb__tws_answered(const sb_twilio_result_t *res, void *data, const char *what)
{
    sb_api_call_t *c = data;
    sb__tws_of(c)->pending = NULL;
    if (sb__tws_gone(c))
        return NULL;
    if (what != NULL && res->error != 0) {
        sb__tws_reply_twilio_error(c, res, what);
        return NULL;
    }
    return c;
}

void sb__tws_started(sb_api_call_t *c, int rc)
{
    if (rc != 0)
        sb_api_reply_errcode(c, rc, NULL);
}

void sb__tws_ws_stream(const sb_api_call_t *c, char out[16 + SB_UUID_STRLEN])
{
    snprintf(out, 16 + SB_UUID_STRLEN, "workspace-%s", c->ws_id);
}

void sb__tws_ask_workspace(sb_api_call_t *c, json_t *cmd, bool if_match, sb_api_ask_cb cb)
{
    char stream[16 + SB_UUID_STRLEN];
    sb__tws_ws_stream(c, stream);
    sb_ask_opts_t o;
    sb_api_ask_opts(c, &o);
    o.context = NULL;
    if (if_match && !sb_api_if_match(c, &o)) {
        json_decref(cmd);
        return;
    }
    sb_api_ask(c, stream, cmd, &o, cb);
}

void sb__tws_name(const sb_api_call_t *c, char out[64])
{
    snprintf(out, 64, "Switchboard %s", c->ws_id);
}

void sb__tws_reply_twilio_error(sb_api_call_t *c, const sb_twilio_result_t *res, const char *what)
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
json_t *sb__tws_config_json(const sb_api_call_t *c, const json_t *state, const json_t *report)
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

/* ---- GET ---------------------------------------------------------------------------------------- */

static void got(sb_api_call_t *c)
{
    sb_api_etag(c, c->ws_version);
    sb_api_reply_json(c, 200, sb__tws_config_json(c, c->ws_state, NULL));
}

static int on_get(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_api_workspace(sb_api_begin(req, params, sizeof(sb__tws_t)), SB_ROLE_AGENT, got);
    return 0;
}

/* ---- PUT: the start ---------------------------------------------------------------------------- */

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
    sb__tws_t *s = sb__tws_of(c);
    if (sb__tws_gone(c))
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
    sb__tws_ensure_key(c);
}

static void on_account(const sb_twilio_result_t *res, void *data)
{
    sb_api_call_t *c = sb__tws_answered(res, data, "account");
    if (c == NULL)
        return;
    sb__tws_t *s = sb__tws_of(c);
    if (res->resource_status != NULL && strcmp(res->resource_status, "active") != 0) {
        sb_api_reply_error(c, 400, "account_inactive", "the Twilio account is not active", "account_sid");
        return;
    }
    const json_t *tw = json_object_get(c->ws_state, "twilio");
    const char *old_sid = json_string_value(json_object_get(tw, "account_sid"));
    s->same_account = old_sid != NULL && strcmp(s->account_sid, old_sid) == 0;
    if (s->same_account) {
        sb__tws_copy(s->old_key_sid, sizeof(s->old_key_sid),
                     json_string_value(json_object_get(tw, "api_key_sid")));
        sb__tws_copy(s->old_app_sid, sizeof(s->old_app_sid),
                     json_string_value(json_object_get(tw, "twiml_app_sid")));
        const char *ref = json_string_value(json_object_get(tw, "secret_ref"));
        if (sb_secret_ref_parse(ref, NULL)) {
            sb__tws_copy(s->old_ref, sizeof(s->old_ref), ref);
            sb__tws_started(c, sb_secrets_get(sb_messaging_secrets(sb_messaging_current()), c->loop->db, ref,
                                              on_old_secret, c));
            return;
        }
    }
    sb__tws_ensure_key(c);
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

static sb__tws_t *start(sb_api_call_t *c)
{
    sb__tws_t *s = sb__tws_of(c);
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
    sb__tws_t *s = start(c);
    sb__tws_copy(s->account_sid, sizeof(s->account_sid), sid);
    sb__tws_copy(s->token, sizeof(s->token), token);
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
    sb_api_workspace(sb_api_begin(req, params, sizeof(sb__tws_t)), SB_ROLE_ADMIN, put_loaded);
    return 0;
}

/* ---- DELETE ------------------------------------------------------------------------------------- */

static void on_cleared(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    if (reply->status != 0) {
        sb_api_reply_ask_error(c, reply);
        return;
    }
    sb__tws_release_stale(c);
}

static void clear_locally(sb_api_call_t *c)
{
    sb__tws_ask_workspace(c, json_pack("{s:s}", "type", "ClearTwilio"), true, on_cleared);
}

static void del_step(sb_api_call_t *c);

static void on_del_twilio(const sb_twilio_result_t *res, void *data)
{
    sb_api_call_t *c = sb__tws_answered(res, data, NULL);
    if (c == NULL)
        return;
    sb__tws_t *s = sb__tws_of(c);
    if (res->error != 0 && !(res->error == SB_EREJECTED && res->status == 404))
        sb_log_warn("api", "twilio clear: Twilio did not undo a setting (%s): clearing the workspace anyway",
                    res->message);
    s->next++;
    del_step(c);
}

/* Undoes at Twilio, one request at a time: each number's settings, then the app, then the key. */
static void del_step(sb_api_call_t *c)
{
    sb__tws_t *s = sb__tws_of(c);
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
    sb__tws_t *s = sb__tws_of(c);
    if (sb__tws_gone(c))
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
    sb__tws_t *s = start(c);
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
    sb__tws_copy(s->account_sid, sizeof(s->account_sid),
                 json_string_value(json_object_get(tw, "account_sid")));
    sb__tws_copy(s->old_key_sid, sizeof(s->old_key_sid),
                 json_string_value(json_object_get(tw, "api_key_sid")));
    sb__tws_copy(s->old_app_sid, sizeof(s->old_app_sid),
                 json_string_value(json_object_get(tw, "twiml_app_sid")));
    const char *ref = json_string_value(json_object_get(tw, "secret_ref"));
    int rc = sb_secret_ref_parse(ref, NULL) ? sb_secrets_get(sb_messaging_secrets(sb_messaging_current()),
                                                             c->loop->db, ref, on_del_secret, c)
                                            : SB_EINVAL;
    if (rc != 0)
        clear_locally(c);
}

static int on_delete(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_api_workspace(sb_api_begin(req, params, sizeof(sb__tws_t)), SB_ROLE_ADMIN, del_loaded);
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
