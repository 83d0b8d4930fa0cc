/* Twilio REST operations: each builds its form (Twilio's parameter names) and path, checks what it
 * can before anything goes out, and hands over to sb_twilio_request. */
#include "providers/form.h"
#include "providers/twilio.h"

#include "core/error.h"

#include <stdio.h>
#include <string.h>

#define MAX_MEDIA 10 /* Twilio's limit per message */

static bool present(const char *s)
{
    return s != NULL && s[0] != '\0';
}

static void add_opt(sb_buf_t *f, const char *name, const char *value)
{
    if (value != NULL)
        sb_form_add(f, name, value);
}

static int post(const sb_twilio_t *tw, const char *path, sb_buf_t *form, sb_twilio_cb cb, void *data,
                sb_twilio_req_t **reqp)
{
    int rc = sb_twilio_request(tw, "POST", path, form, cb, data, reqp);
    sb_buf_free(form);
    return rc;
}

int sb_twilio_send_message(const sb_twilio_t *tw, const sb_twilio_message_t *m, sb_twilio_cb cb, void *data,
                           sb_twilio_req_t **reqp)
{
    if (!present(m->to) || (present(m->from) == present(m->messaging_service_sid)) ||
        (!present(m->body) && m->n_media == 0) || m->n_media > MAX_MEDIA)
        return SB_EINVAL;
    sb_buf_t f = SB_BUF_INIT;
    sb_form_add(&f, "To", m->to);
    if (present(m->from))
        sb_form_add(&f, "From", m->from);
    else
        sb_form_add(&f, "MessagingServiceSid", m->messaging_service_sid);
    add_opt(&f, "Body", m->body);
    for (size_t i = 0; i < m->n_media; i++) {
        if (!present(m->media_urls[i])) {
            sb_buf_free(&f);
            return SB_EINVAL;
        }
        sb_form_add(&f, "MediaUrl", m->media_urls[i]);
    }
    add_opt(&f, "StatusCallback", m->status_callback);
    return post(tw, "Messages.json", &f, cb, data, reqp);
}

int sb_twilio_create_call(const sb_twilio_t *tw, const sb_twilio_call_t *c, sb_twilio_cb cb, void *data,
                          sb_twilio_req_t **reqp)
{
    if (!present(c->to) || !present(c->from) || present(c->url) == present(c->twiml) || c->timeout_s < 0 ||
        c->timeout_s > 600)
        return SB_EINVAL;
    sb_buf_t f = SB_BUF_INIT;
    sb_form_add(&f, "To", c->to);
    sb_form_add(&f, "From", c->from);
    if (present(c->url)) {
        sb_form_add(&f, "Url", c->url);
        add_opt(&f, "Method", c->method);
    } else {
        sb_form_add(&f, "Twiml", c->twiml);
    }
    if (present(c->status_callback)) {
        sb_form_add(&f, "StatusCallback", c->status_callback);
        sb_form_add(&f, "StatusCallbackMethod", "POST");
        for (size_t i = 0; i < c->n_events; i++)
            sb_form_add(&f, "StatusCallbackEvent", c->status_events[i]);
    }
    if (c->timeout_s > 0) {
        char t[16];
        snprintf(t, sizeof t, "%d", c->timeout_s);
        sb_form_add(&f, "Timeout", t);
    }
    return post(tw, "Calls.json", &f, cb, data, reqp);
}

int sb_twilio_update_call(const sb_twilio_t *tw, const char *call_sid, const sb_twilio_call_update_t *u,
                          sb_twilio_cb cb, void *data, sb_twilio_req_t **reqp)
{
    int n = present(u->twiml) + present(u->url) + (u->complete ? 1 : 0);
    if (!sb_twilio_sid_is_valid(call_sid, "CA") || n != 1)
        return SB_EINVAL;
    sb_buf_t f = SB_BUF_INIT;
    if (u->complete) {
        sb_form_add(&f, "Status", "completed");
    } else if (present(u->twiml)) {
        sb_form_add(&f, "Twiml", u->twiml);
    } else {
        sb_form_add(&f, "Url", u->url);
        add_opt(&f, "Method", u->method);
    }
    char path[64];
    snprintf(path, sizeof path, "Calls/%s.json", call_sid);
    return post(tw, path, &f, cb, data, reqp);
}

int sb_twilio_create_key(const sb_twilio_t *tw, const char *friendly_name, sb_twilio_cb cb, void *data,
                         sb_twilio_req_t **reqp)
{
    sb_buf_t f = SB_BUF_INIT;
    if (present(friendly_name))
        sb_form_add(&f, "FriendlyName", friendly_name);
    return post(tw, "Keys.json", &f, cb, data, reqp);
}

static void app_fields(sb_buf_t *f, const sb_twilio_app_t *a)
{
    add_opt(f, "FriendlyName", a->friendly_name);
    if (a->voice_url) {
        sb_form_add(f, "VoiceUrl", a->voice_url);
        sb_form_add(f, "VoiceMethod", a->voice_method ? a->voice_method : "POST");
    }
    if (a->status_callback) {
        sb_form_add(f, "StatusCallback", a->status_callback);
        sb_form_add(f, "StatusCallbackMethod",
                    a->status_callback_method ? a->status_callback_method : "POST");
    }
}

int sb_twilio_create_app(const sb_twilio_t *tw, const sb_twilio_app_t *a, sb_twilio_cb cb, void *data,
                         sb_twilio_req_t **reqp)
{
    if (!present(a->friendly_name))
        return SB_EINVAL;
    sb_buf_t f = SB_BUF_INIT;
    app_fields(&f, a);
    return post(tw, "Applications.json", &f, cb, data, reqp);
}

int sb_twilio_update_app(const sb_twilio_t *tw, const char *app_sid, const sb_twilio_app_t *a,
                         sb_twilio_cb cb, void *data, sb_twilio_req_t **reqp)
{
    if (!sb_twilio_sid_is_valid(app_sid, "AP"))
        return SB_EINVAL;
    sb_buf_t f = SB_BUF_INIT;
    app_fields(&f, a);
    if (f.len == 0) {
        sb_buf_free(&f);
        return SB_EINVAL;
    }
    char path[64];
    snprintf(path, sizeof path, "Applications/%s.json", app_sid);
    return post(tw, path, &f, cb, data, reqp);
}

int sb_twilio_delete_app(const sb_twilio_t *tw, const char *app_sid, sb_twilio_cb cb, void *data,
                         sb_twilio_req_t **reqp)
{
    if (!sb_twilio_sid_is_valid(app_sid, "AP"))
        return SB_EINVAL;
    char path[64];
    snprintf(path, sizeof path, "Applications/%s.json", app_sid);
    return sb_twilio_request(tw, "DELETE", path, NULL, cb, data, reqp);
}

int sb_twilio_list_apps(const sb_twilio_t *tw, const char *friendly_name, const char *page_uri,
                        sb_twilio_cb cb, void *data, sb_twilio_req_t **reqp)
{
    if (page_uri != NULL)
        return page_uri[0] == '/' ? sb_twilio_request(tw, "GET", page_uri, NULL, cb, data, reqp) : SB_EINVAL;
    sb_buf_t q = SB_BUF_INIT;
    if (present(friendly_name))
        sb_form_add(&q, "FriendlyName", friendly_name);
    sb_buf_t path = SB_BUF_INIT;
    sb_buf_printf(&path, "Applications.json%s%s", q.len ? "?" : "", q.len ? q.data : "");
    int rc = sb_twilio_request(tw, "GET", path.data, NULL, cb, data, reqp);
    sb_buf_free(&q);
    sb_buf_free(&path);
    return rc;
}

int sb_twilio_list_numbers(const sb_twilio_t *tw, unsigned page_size, const char *page_uri, sb_twilio_cb cb,
                           void *data, sb_twilio_req_t **reqp)
{
    if (page_uri != NULL)
        return page_uri[0] == '/' ? sb_twilio_request(tw, "GET", page_uri, NULL, cb, data, reqp) : SB_EINVAL;
    if (page_size > 1000)
        return SB_EINVAL;
    char path[64];
    if (page_size > 0)
        snprintf(path, sizeof path, "IncomingPhoneNumbers.json?PageSize=%u", page_size);
    else
        snprintf(path, sizeof path, "IncomingPhoneNumbers.json");
    return sb_twilio_request(tw, "GET", path, NULL, cb, data, reqp);
}

int sb_twilio_update_number(const sb_twilio_t *tw, const char *number_sid, const sb_twilio_number_update_t *u,
                            sb_twilio_cb cb, void *data, sb_twilio_req_t **reqp)
{
    if (!sb_twilio_sid_is_valid(number_sid, "PN") ||
        (u->voice_application_sid != NULL && u->voice_application_sid[0] != '\0' &&
         !sb_twilio_sid_is_valid(u->voice_application_sid, "AP")))
        return SB_EINVAL;
    sb_buf_t f = SB_BUF_INIT;
    add_opt(&f, "VoiceApplicationSid", u->voice_application_sid);
    if (u->sms_url) {
        sb_form_add(&f, "SmsUrl", u->sms_url);
        sb_form_add(&f, "SmsMethod", u->sms_method ? u->sms_method : "POST");
    }
    add_opt(&f, "StatusCallback", u->status_callback);
    if (f.len == 0) {
        sb_buf_free(&f);
        return SB_EINVAL;
    }
    char path[80];
    snprintf(path, sizeof path, "IncomingPhoneNumbers/%s.json", number_sid);
    return post(tw, path, &f, cb, data, reqp);
}

int sb_twilio_fetch_account(const sb_twilio_t *tw, sb_twilio_cb cb, void *data, sb_twilio_req_t **reqp)
{
    /* The account's own resource is Accounts/{sid}.json, one level above the others. */
    char path[80];
    snprintf(path, sizeof path, "/" SB_TWILIO_API_VERSION "/Accounts/%s.json", tw->account_sid);
    return sb_twilio_request(tw, "GET", path, NULL, cb, data, reqp);
}
