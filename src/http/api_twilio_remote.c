/* The Twilio set-up's steps at Twilio (api_twilio_int.h): an API key that authenticates, a TwiML
 * app pointing at us, every number's voice and SMS pointing at us.  Each changes only what is not
 * right already; then sb__tws_seal records it. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "core/phone.h"
#include "http/api_twilio_int.h"

#define PAGE_SIZE 1000

/* ---- the numbers ------------------------------------------------------------------------------- */

static void update_next(sb_api_call_t *c);

static void on_number_updated(const sb_twilio_result_t *res, void *data)
{
    sb_api_call_t *c = sb__tws_answered(res, data, "configure a number");
    if (c == NULL)
        return;
    sb__tws_t *s = sb__tws_of(c);
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
    sb__tws_t *s = sb__tws_of(c);
    while (s->next < json_array_size(s->numbers)) {
        const json_t *n = json_array_get(s->numbers, s->next);
        const char *number = json_string_value(json_object_get(n, "number"));
        const char *sid = json_string_value(json_object_get(n, "sid"));
        if (differs(n, "voice_application_sid", s->app_sid) || differs(n, "sms_url", s->sms_url) ||
            differs(n, "sms_method", "POST")) {
            sb_twilio_number_update_t u = {
                .voice_application_sid = s->app_sid, .sms_url = s->sms_url, .sms_method = "POST"};
            json_object_set_new(s->report, number, json_string("configured"));
            sb__tws_started(c, sb_twilio_update_number(&s->key, sid, &u, on_number_updated, c, &s->pending));
            return;
        }
        json_object_set_new(s->report, number, json_string("unchanged"));
        s->next++;
    }
    sb__tws_seal(c);
}

static void list_page(sb_api_call_t *c, const char *page_uri);

static void on_numbers(const sb_twilio_result_t *res, void *data)
{
    sb_api_call_t *c = sb__tws_answered(res, data, "list the numbers");
    if (c == NULL)
        return;
    sb__tws_t *s = sb__tws_of(c);
    size_t i;
    const json_t *n;
    json_array_foreach(json_object_get(res->json, "incoming_phone_numbers"), i, n)
    {
        const char *number = json_string_value(json_object_get(n, "phone_number"));
        const char *sid = json_string_value(json_object_get(n, "sid"));
        if (json_array_size(s->numbers) >= SB__TWS_MAX_NUMBERS)
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
    if (res->next_page_uri != NULL && json_array_size(s->numbers) < SB__TWS_MAX_NUMBERS) {
        list_page(c, res->next_page_uri);
        return;
    }
    s->next = 0;
    update_next(c);
}

static void list_page(sb_api_call_t *c, const char *page_uri)
{
    sb__tws_t *s = sb__tws_of(c);
    sb__tws_started(c, sb_twilio_list_numbers(&s->key, PAGE_SIZE, page_uri, on_numbers, c, &s->pending));
}

/* ---- the TwiML app ---------------------------------------------------------------------------- */

static void on_app_ready(const sb_twilio_result_t *res, void *data)
{
    sb_api_call_t *c = sb__tws_answered(res, data, "configure the TwiML app");
    if (c == NULL)
        return;
    sb__tws_t *s = sb__tws_of(c);
    if (s->app_sid[0] == '\0')
        sb__tws_copy(s->app_sid, sizeof(s->app_sid), res->sid);
    if (!sb_twilio_sid_is_valid(s->app_sid, "AP")) {
        sb_api_reply_error(c, 502, "provider_error", "Twilio answered without an application sid", NULL);
        return;
    }
    list_page(c, NULL);
}

/* Makes app (a Twilio application's JSON) point at us, or creates one when app is NULL. */
static void fix_app(sb_api_call_t *c, const json_t *app)
{
    sb__tws_t *s = sb__tws_of(c);
    char name[64];
    sb__tws_name(c, name);
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
        sb__tws_copy(s->app_sid, sizeof(s->app_sid), json_string_value(json_object_get(app, "sid")));
        if (!differs(app, "voice_url", s->voice_url) && !differs(app, "voice_method", "POST") &&
            !differs(app, "status_callback", s->voice_status_url)) {
            list_page(c, NULL); /* already right */
            return;
        }
        a.friendly_name = NULL;
        rc = sb_twilio_update_app(&s->key, s->app_sid, &a, on_app_ready, c, &s->pending);
    }
    sb__tws_started(c, rc);
}

static void on_apps_listed(const sb_twilio_result_t *res, void *data)
{
    sb_api_call_t *c = sb__tws_answered(res, data, "list the TwiML apps");
    if (c == NULL)
        return;
    const json_t *apps = json_object_get(res->json, "applications");
    fix_app(c, json_array_size(apps) > 0 ? json_array_get(apps, 0) : NULL);
}

static void find_app_by_name(sb_api_call_t *c)
{
    sb__tws_t *s = sb__tws_of(c);
    char name[64];
    sb__tws_name(c, name);
    sb__tws_started(c, sb_twilio_list_apps(&s->key, name, NULL, on_apps_listed, c, &s->pending));
}

static void on_old_app(const sb_twilio_result_t *res, void *data)
{
    sb_api_call_t *c = sb__tws_answered(res, data, NULL);
    if (c == NULL)
        return;
    if (res->error == SB_EREJECTED && res->status == 404) {
        find_app_by_name(c); /* deleted at Twilio meanwhile */
        return;
    }
    if (res->error != 0) {
        sb__tws_reply_twilio_error(c, res, "read the TwiML app");
        return;
    }
    fix_app(c, res->json);
}

static void ensure_app(sb_api_call_t *c)
{
    sb__tws_t *s = sb__tws_of(c);
    if (s->same_account && s->old_app_sid[0] != '\0') {
        char path[64];
        snprintf(path, sizeof(path), "Applications/%s.json", s->old_app_sid);
        sb__tws_started(c, sb_twilio_request(&s->key, "GET", path, NULL, on_old_app, c, &s->pending));
        return;
    }
    find_app_by_name(c);
}

/* ---- the API key ------------------------------------------------------------------------------ */

static void use_key(sb_api_call_t *c)
{
    sb__tws_t *s = sb__tws_of(c);
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
    sb_api_call_t *c = sb__tws_answered(res, data, "create an API key");
    if (c == NULL)
        return;
    sb__tws_t *s = sb__tws_of(c);
    const char *secret = json_string_value(json_object_get(res->json, "secret"));
    if (res->sid == NULL || !sb_twilio_sid_is_valid(res->sid, "SK") || secret == NULL || secret[0] == '\0' ||
        strlen(secret) > SB_TWILIO_SECRET_MAX || strchr(secret, '\n') != NULL) {
        sb_api_reply_error(c, 502, "provider_error", "Twilio answered without a usable API key", NULL);
        return;
    }
    sb__tws_copy(s->key_sid, sizeof(s->key_sid), res->sid);
    sb__tws_copy(s->key_secret, sizeof(s->key_secret), secret);
    use_key(c);
}

static void create_key(sb_api_call_t *c)
{
    sb__tws_t *s = sb__tws_of(c);
    char name[64];
    sb__tws_name(c, name);
    sb__tws_started(c, sb_twilio_create_key(&s->tw, name, on_key_created, c, &s->pending));
}

static void on_old_key_checked(const sb_twilio_result_t *res, void *data)
{
    sb_api_call_t *c = sb__tws_answered(res, data, NULL);
    if (c == NULL)
        return;
    sb__tws_t *s = sb__tws_of(c);
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
    sb__tws_reply_twilio_error(c, res, "check the API key");
}

void sb__tws_ensure_key(sb_api_call_t *c)
{
    sb__tws_t *s = sb__tws_of(c);
    if (s->same_account && s->old_key_sid[0] != '\0' && s->old_key_secret[0] != '\0') {
        sb_twilio_t probe;
        int rc = sb_twilio_init(&probe, s->tw.http, s->tw.api_base, s->account_sid, s->token);
        if (rc == 0)
            rc = sb_twilio_use_api_key(&probe, s->old_key_sid, s->old_key_secret);
        if (rc == 0)
            rc = sb_twilio_fetch_account(&probe, on_old_key_checked, c, &s->pending);
        sb_twilio_clear(&probe); /* the request holds its own copy */
        sb__tws_started(c, rc);
        return;
    }
    create_key(c);
}
