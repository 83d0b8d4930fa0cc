/* Twilio REST: credentials, the request/answer plumbing and Twilio's error JSON.  The operations'
 * forms are in twilio_ops.c. */
#include "providers/twilio.h"

#include "core/error.h"
#include "core/log.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sb_twilio_req_s {
    sb_http_call_t *call;
    sb_twilio_cb cb;
    void *data;
};

bool sb_twilio_sid_is_valid(const char *s, const char *prefix)
{
    if (s == NULL || strlen(s) != SB_TWILIO_SID_LEN)
        return false;
    if (prefix ? strncmp(s, prefix, 2) != 0 : !(s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z'))
        return false;
    for (int i = 2; i < SB_TWILIO_SID_LEN; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return false;
    }
    return true;
}

static bool copy_str(char *dst, size_t cap, const char *src)
{
    if (src == NULL || src[0] == '\0' || strlen(src) >= cap)
        return false;
    strcpy(dst, src);
    return true;
}

int sb_twilio_init(sb_twilio_t *tw, sb_http_client_t *http, const char *api_base, const char *account_sid,
                   const char *auth_token)
{
    memset(tw, 0, sizeof(*tw));
    if (!sb_twilio_sid_is_valid(account_sid, "AC") ||
        !copy_str(tw->api_base, sizeof tw->api_base, api_base) ||
        !copy_str(tw->secret, sizeof tw->secret, auth_token))
        goto bad;
    size_t n = strlen(tw->api_base);
    while (n > 0 && tw->api_base[n - 1] == '/')
        tw->api_base[--n] = '\0';
    if (n == 0)
        goto bad;
    strcpy(tw->account_sid, account_sid);
    strcpy(tw->username, account_sid);
    tw->http = http;
    return 0;
bad:
    sb_twilio_clear(tw);
    return SB_EINVAL;
}

int sb_twilio_use_api_key(sb_twilio_t *tw, const char *key_sid, const char *key_secret)
{
    if (!sb_twilio_sid_is_valid(key_sid, "SK") || key_secret == NULL || key_secret[0] == '\0' ||
        strlen(key_secret) > SB_TWILIO_SECRET_MAX)
        return SB_EINVAL;
    strcpy(tw->username, key_sid);
    sodium_memzero(tw->secret, sizeof tw->secret);
    strcpy(tw->secret, key_secret);
    return 0;
}

void sb_twilio_clear(sb_twilio_t *tw)
{
    sodium_memzero(tw->secret, sizeof tw->secret);
}

void sb_twilio_cancel(sb_twilio_req_t *req)
{
    if (req == NULL)
        return;
    sb_http_cancel(req->call);
    free(req);
}

static const char *json_str(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static void on_http(const sb_http_response_t *r, void *d)
{
    sb_twilio_req_t *req = d;
    sb_twilio_cb cb = req->cb;
    void *data = req->data;
    free(req);

    sb_twilio_result_t res = {.message = "", .more_info = "", .http = r};
    char text[64];
    res.status = r->status;
    if (r->error != 0) {
        res.error = r->error;
        res.message = r->error_text;
        cb(&res, data);
        return;
    }
    json_t *j = NULL;
    if (r->body_len > 0) {
        json_error_t jerr;
        j = json_loadb(r->body, r->body_len, 0, &jerr);
    }
    bool ok = r->status >= 200 && r->status <= 299;
    if (ok && r->body_len > 0 && !json_is_object(j)) {
        res.error = SB_ECODEC;
        res.message = "twilio answered with something that is not a JSON object";
    } else if (ok) {
        res.json = j;
        res.sid = json_str(j, "sid");
        res.resource_status = json_str(j, "status");
        res.next_page_uri = json_str(j, "next_page_uri");
    } else {
        res.error = SB_EREJECTED;
        res.json = j;
        const json_t *code = json_object_get(j, "code");
        if (json_is_integer(code) && json_integer_value(code) > 0 && json_integer_value(code) < 1000000)
            res.code = (int)json_integer_value(code);
        const char *m = json_str(j, "message");
        if (m != NULL) {
            res.message = m;
        } else {
            snprintf(text, sizeof text, "HTTP %ld", r->status);
            res.message = text;
        }
        const char *more = json_str(j, "more_info");
        if (more != NULL)
            res.more_info = more;
        sb_log_info("twilio", "request refused status=%ld code=%d", r->status, res.code);
    }
    cb(&res, data);
    json_decref(j);
}

/* A path under the account, or a next_page_uri that must stay under it. */
static int build_url(const sb_twilio_t *tw, const char *path, sb_buf_t *url)
{
    if (path == NULL || path[0] == '\0')
        return SB_EINVAL;
    for (const char *p = path; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || *p == '#' || *p == '\\')
            return SB_EINVAL;
    if (strstr(path, "..") != NULL)
        return SB_EINVAL;
    sb_buf_puts(url, tw->api_base);
    if (path[0] == '/') {
        /* Only the account's own resources: Accounts/{sid}.json and what lies under it. */
        char prefix[64];
        int pl = snprintf(prefix, sizeof prefix, "/" SB_TWILIO_API_VERSION "/Accounts/%s", tw->account_sid);
        if (strncmp(path, prefix, (size_t)pl) != 0 ||
            (path[pl] != '/' && strncmp(path + pl, ".json", 5) != 0))
            return SB_EINVAL;
        sb_buf_puts(url, path);
    } else {
        sb_buf_printf(url, "/" SB_TWILIO_API_VERSION "/Accounts/%s/%s", tw->account_sid, path);
    }
    return 0;
}

int sb_twilio_request(const sb_twilio_t *tw, const char *method, const char *path, const sb_buf_t *form,
                      sb_twilio_cb cb, void *data, sb_twilio_req_t **reqp)
{
    if (tw->http == NULL || cb == NULL)
        return tw->http == NULL ? SB_ESHUTDOWN : SB_EINVAL;
    sb_buf_t url = SB_BUF_INIT;
    int rc = build_url(tw, path, &url);
    if (rc != 0)
        goto out;
    sb_twilio_req_t *req = calloc(1, sizeof(*req));
    if (req == NULL) {
        rc = SB_ENOMEM;
        goto out;
    }
    req->cb = cb;
    req->data = data;
    static const char *const form_headers[] = {"Content-Type: application/x-www-form-urlencoded",
                                               "Accept: application/json", NULL};
    static const char *const plain_headers[] = {"Accept: application/json", NULL};
    bool has_form = form != NULL;
    sb_http_request_t hr = {
        .method = method,
        .url = url.data,
        .headers = has_form ? form_headers : plain_headers,
        .body = has_form ? (form->data ? form->data : "") : NULL,
        .body_len = has_form ? form->len : 0,
        .username = tw->username,
        .password = tw->secret,
        .timeout_ms = tw->timeout_ms,
        .max_response = SB_TWILIO_MAX_RESPONSE,
        .retry = tw->retry,
        .fresh_connection = tw->fresh_connection,
    };
    rc = sb_http_request(tw->http, &hr, on_http, req, &req->call);
    if (rc != 0) {
        free(req);
        goto out;
    }
    if (reqp)
        *reqp = req;
out:
    sb_buf_free(&url);
    return rc;
}
