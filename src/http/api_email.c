/* E-mail set-up, per workspace: the sender address and the Resend key (SPEC §5, §8):
 *
 *   PUT    /v1/workspaces/{ws}/email {from, from_name?, api_key, webhook_secret?}  (admin) -> 200
 *   GET    /v1/workspaces/{ws}/email                                                (agent) -> 200
 *   DELETE /v1/workspaces/{ws}/email                                                (admin) -> 204
 *
 * The key and the webhook secret (Resend's "whsec_..." for /webhooks/resend) are sealed together
 * (db/secrets.h, kind "resend"); the log's EmailSenderSet carries the reference.  A PUT with the same
 * values changes nothing.  Answers never carry a secret; they give the webhook URL to paste into
 * Resend, which names the workspace. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "core/phone.h"
#include "core/seal.h"
#include "db/secrets.h"
#include "http/api_int.h"
#include "http/api_messaging.h"
#include "providers/svix.h"
#include "reactors/messaging.h"
#include "reactors/wsconf.h"

#define KEY_MAX 255

typedef struct {
    char from[SB_EMAIL_MAX];
    char key[KEY_MAX + 1];
    char hook[KEY_MAX + 1];
    char ref[SB_SECRET_REF_LEN + 1];
    json_t *state;
    int64_t version;
} email_t;

static void cleanup(sb_api_call_t *c)
{
    email_t *e = c->data;
    json_decref(e->state);
    sb_seal_wipe(e->key, sizeof(e->key));
    sb_seal_wipe(e->hook, sizeof(e->hook));
}

static json_t *email_json(const sb_api_call_t *c, const json_t *state)
{
    const sb_config_t *cfg = sb_messaging_config(sb_messaging_current());
    char hook[512];
    snprintf(hook, sizeof(hook), "%s/webhooks/resend?workspace=%s", cfg->public_url, c->ws_id);
    const json_t *from = json_object_get(state, "email_from");
    return json_pack("{s:b, s:O?, s:O?, s:s}", "configured",
                     json_is_string(from) && json_is_string(json_object_get(state, "email_secret_ref")),
                     "from", from, "from_name", json_object_get(state, "email_from_name"), "webhook_url",
                     hook);
}

static void ws_stream(const sb_api_call_t *c, char out[16 + SB_UUID_STRLEN])
{
    snprintf(out, 16 + SB_UUID_STRLEN, "workspace-%s", c->ws_id);
}

/* ---- GET -------------------------------------------------------------------------------------- */

static void got(sb_api_call_t *c)
{
    sb_api_etag(c, c->ws_version);
    sb_api_reply_json(c, 200, email_json(c, c->ws_state));
}

static int on_get(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_api_workspace(sb_api_begin(req, params, sizeof(email_t)), SB_ROLE_AGENT, got);
    return 0;
}

/* ---- PUT -------------------------------------------------------------------------------------- */

static void on_old_deleted(int status, int deleted, void *data)
{
    sb_api_call_t *c = data;
    email_t *e = c->data;
    if (status != 0)
        sb_log_warn("api", "e-mail set-up: older secrets not deleted: %s", sb_strerror(status));
    sb_wsconf_forget(c->ws_id);
    sb_api_etag(c, e->version);
    sb_api_reply_json(c, 200, email_json(c, e->state));
}

static void set(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    email_t *e = c->data;
    if (reply->status != 0) {
        sb_api_reply_ask_error(c, reply);
        return;
    }
    e->state = json_incref(reply->state);
    e->version = reply->version;
    int rc = sb_secrets_delete(sb_messaging_secrets(sb_messaging_current()), c->loop->db, c->ws_id, "resend",
                               e->ref, on_old_deleted, c);
    if (rc != 0)
        on_old_deleted(rc, 0, c);
}

static void record(sb_api_call_t *c)
{
    email_t *e = c->data;
    char stream[16 + SB_UUID_STRLEN];
    ws_stream(c, stream);
    sb_ask_opts_t o;
    sb_api_ask_opts(c, &o);
    o.context = NULL;
    json_t *cmd =
        json_pack("{s:s, s:O, s:O?, s:s}", "type", "SetEmailSender", "from", json_object_get(c->body, "from"),
                  "from_name", json_object_get(c->body, "from_name"), "secret_ref", e->ref);
    sb_api_ask(c, stream, cmd, &o, set);
}

static void on_sealed(int status, const char *ref, void *data)
{
    sb_api_call_t *c = data;
    if (!sb_api_alive(c)) {
        sb_api_reply_errcode(c, SB_ESHUTDOWN, NULL);
        return;
    }
    if (status != 0) {
        sb_api_reply_errcode(c, status, NULL);
        return;
    }
    snprintf(((email_t *)c->data)->ref, SB_SECRET_REF_LEN + 1, "%s", ref);
    record(c);
}

static void seal(sb_api_call_t *c)
{
    email_t *e = c->data;
    char bundle[2 * KEY_MAX + 64];
    int n = snprintf(bundle, sizeof(bundle), "api_key=%s\nwebhook_secret=%s\n", e->key, e->hook);
    int rc = sb_secrets_put(sb_messaging_secrets(sb_messaging_current()), c->loop->db, c->ws_id, "resend",
                            bundle, (size_t)n, on_sealed, c);
    sb_seal_wipe(bundle, sizeof(bundle));
    if (rc != 0)
        sb_api_reply_errcode(c, rc, NULL);
}

/* The value of "name=" in a sealed bundle, into out ("" when absent). */
static void field(const char *v, size_t len, const char *name, char *out, size_t cap)
{
    size_t n = strlen(name);
    out[0] = '\0';
    for (const char *p = v, *end = v + len; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl != NULL ? nl : end;
        size_t l = (size_t)(le - p);
        if (l > n && memcmp(p, name, n) == 0 && p[n] == '=' && l - n - 1 < cap) {
            memcpy(out, p + n + 1, l - n - 1);
            out[l - n - 1] = '\0';
        }
        p = le + 1;
    }
}

static void on_old(int status, const char *value, size_t len, void *data)
{
    sb_api_call_t *c = data;
    email_t *e = c->data;
    if (!sb_api_alive(c)) {
        sb_api_reply_errcode(c, SB_ESHUTDOWN, NULL);
        return;
    }
    if (status == 0) {
        char key[KEY_MAX + 1], hook[KEY_MAX + 1];
        field(value, len, "api_key", key, sizeof(key));
        field(value, len, "webhook_secret", hook, sizeof(hook));
        bool same = strcmp(key, e->key) == 0 && strcmp(hook, e->hook) == 0;
        sb_seal_wipe(key, sizeof(key));
        sb_seal_wipe(hook, sizeof(hook));
        if (same) {
            record(c); /* the sealed secrets are right: keep their reference */
            return;
        }
    }
    e->ref[0] = '\0';
    seal(c);
}

static bool printable(const char *s, size_t max)
{
    size_t n = s != NULL ? strlen(s) : 0;
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
            return false;
    return true;
}

static void put_loaded(sb_api_call_t *c)
{
    static const char *const fields[] = {"from", "from_name", "api_key", "webhook_secret", NULL};
    email_t *e = c->data;
    c->cleanup = cleanup;
    if (sb_messaging_current() == NULL) {
        sb_api_reply_errcode(c, SB_ESHUTDOWN, NULL);
        return;
    }
    if (!sb_api_read_body(c, fields))
        return;
    const char *from = sb__api_str(c->body, "from");
    if (from == NULL || sb_email_normalize(from, strlen(from), e->from) != 0) {
        sb_api_reply_error(c, 400, from == NULL ? "required" : "invalid_email",
                           "from must be an e-mail address", "from");
        return;
    }
    const json_t *name = json_object_get(c->body, "from_name");
    if (name != NULL && !json_is_null(name) && !json_is_string(name)) {
        sb_api_reply_error(c, 400, "invalid", "from_name must be a string", "from_name");
        return;
    }
    const char *key = sb__api_str(c->body, "api_key");
    if (!printable(key, KEY_MAX)) {
        sb_api_reply_error(c, 400, key == NULL ? "required" : "invalid",
                           "api_key must be 1..255 printable characters", "api_key");
        return;
    }
    const char *hook = sb__api_str(c->body, "webhook_secret");
    char probe[SB_SVIX_SIG_LEN + 1];
    if (hook != NULL && (!printable(hook, KEY_MAX) || sb_svix_sign(hook, "x", 1, 0, "", 0, probe) != 0)) {
        sb_api_reply_error(c, 400, "invalid", "webhook_secret must be Resend's whsec_... signing secret",
                           "webhook_secret");
        return;
    }
    snprintf(e->key, sizeof(e->key), "%s", key);
    snprintf(e->hook, sizeof(e->hook), "%s", hook != NULL ? hook : "");
    const char *old = sb__api_str(c->ws_state, "email_secret_ref");
    if (sb_secret_ref_parse(old, NULL)) {
        snprintf(e->ref, sizeof(e->ref), "%s", old);
        int rc = sb_secrets_get(sb_messaging_secrets(sb_messaging_current()), c->loop->db, old, on_old, c);
        if (rc != 0)
            sb_api_reply_errcode(c, rc, NULL);
        return;
    }
    seal(c);
}

static int on_put(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_api_workspace(sb_api_begin(req, params, sizeof(email_t)), SB_ROLE_ADMIN, put_loaded);
    return 0;
}

/* ---- DELETE ------------------------------------------------------------------------------------- */

static void on_deleted(int status, int deleted, void *data)
{
    sb_api_call_t *c = data;
    if (status != 0)
        sb_log_warn("api", "e-mail clear: secrets not deleted: %s", sb_strerror(status));
    sb_wsconf_forget(c->ws_id);
    sb_api_reply_json(c, 204, NULL);
}

static void cleared(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    if (reply->status != 0) {
        sb_api_reply_ask_error(c, reply);
        return;
    }
    int rc = sb_secrets_delete(sb_messaging_secrets(sb_messaging_current()), c->loop->db, c->ws_id, "resend",
                               NULL, on_deleted, c);
    if (rc != 0)
        on_deleted(rc, 0, c);
}

static void del_loaded(sb_api_call_t *c)
{
    if (sb_messaging_current() == NULL) {
        sb_api_reply_errcode(c, SB_ESHUTDOWN, NULL);
        return;
    }
    char stream[16 + SB_UUID_STRLEN];
    ws_stream(c, stream);
    sb_ask_opts_t o;
    sb_api_ask_opts(c, &o);
    o.context = NULL;
    if (!sb_api_if_match(c, &o))
        return;
    sb_api_ask(c, stream, json_pack("{s:s}", "type", "ClearEmailSender"), &o, cleared);
}

static int on_delete(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_api_workspace(sb_api_begin(req, params, sizeof(email_t)), SB_ROLE_ADMIN, del_loaded);
    return 0;
}

int sb__api_email_routes(sb_router_t *r, sb_api_t *api)
{
    int rc;
    if ((rc = sb_router_add(r, "GET", "/v1/workspaces/{ws}/email", on_get, api)) != 0 ||
        (rc = sb_router_add(r, "PUT", "/v1/workspaces/{ws}/email", on_put, api)) != 0 ||
        (rc = sb_router_add(r, "DELETE", "/v1/workspaces/{ws}/email", on_delete, api)) != 0)
        return rc;
    return 0;
}
