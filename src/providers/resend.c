#include "providers/resend.h"

#include "core/buf.h"
#include "core/error.h"
#include "core/log.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sb_resend_req_s {
    sb_http_call_t *call;
    sb_resend_cb cb;
    void *data;
};

static bool copy_str(char *dst, size_t cap, const char *src)
{
    if (src == NULL || src[0] == '\0' || strlen(src) >= cap)
        return false;
    strcpy(dst, src);
    return true;
}

int sb_resend_init(sb_resend_t *rs, sb_http_client_t *http, const char *api_base, const char *api_key)
{
    memset(rs, 0, sizeof(*rs));
    if (!copy_str(rs->api_base, sizeof rs->api_base, api_base) ||
        !copy_str(rs->api_key, sizeof rs->api_key, api_key))
        goto bad;
    for (const char *p = rs->api_key; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            goto bad; /* it goes into a header line */
    size_t n = strlen(rs->api_base);
    while (n > 0 && rs->api_base[n - 1] == '/')
        rs->api_base[--n] = '\0';
    if (n == 0)
        goto bad;
    rs->http = http;
    return 0;
bad:
    sb_resend_clear(rs);
    return SB_EINVAL;
}

void sb_resend_clear(sb_resend_t *rs)
{
    sodium_memzero(rs->api_key, sizeof rs->api_key);
}

void sb_resend_cancel(sb_resend_req_t *req)
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
    sb_resend_req_t *req = d;
    sb_resend_cb cb = req->cb;
    void *data = req->data;
    free(req);

    sb_resend_result_t res = {.name = "", .message = "", .status = r->status, .http = r};
    char text[64];
    if (r->error != 0) {
        res.error = r->error;
        res.message = r->error_text;
        cb(&res, data);
        return;
    }
    json_error_t jerr;
    json_t *j = r->body_len > 0 ? json_loadb(r->body, r->body_len, 0, &jerr) : NULL;
    res.json = j;
    if (r->status >= 200 && r->status <= 299) {
        res.id = json_str(j, "id");
        if (res.id == NULL) {
            res.error = SB_ECODEC;
            res.message = "resend answered without an email id";
        }
    } else {
        res.error = SB_EREJECTED;
        const char *name = json_str(j, "name"), *m = json_str(j, "message");
        if (name)
            res.name = name;
        if (m) {
            res.message = m;
        } else {
            snprintf(text, sizeof text, "HTTP %ld", r->status);
            res.message = text;
        }
        sb_log_info("resend", "email refused status=%ld name=%s", r->status, res.name);
    }
    cb(&res, data);
    json_decref(j);
}

/* Resend's rule for tag names and values: ASCII letters, digits, '_' and '-', 1..256 of them. */
static bool tag_is_valid(const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;
    if (n == 0 || n > 256)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
              s[i] == '_' || s[i] == '-'))
            return false;
    return true;
}

/* json_string refuses invalid UTF-8 (NULL); the caller reports SB_EUTF8. */
static int set_str(json_t *o, const char *key, const char *v)
{
    json_t *s = json_string(v);
    if (s == NULL)
        return SB_EUTF8;
    json_object_set_new(o, key, s);
    return 0;
}

int sb_resend_send(const sb_resend_t *rs, const sb_resend_email_t *e, sb_resend_cb cb, void *data,
                   sb_resend_req_t **reqp)
{
    if (rs->http == NULL)
        return SB_ESHUTDOWN;
    if (cb == NULL || e->from == NULL || e->subject == NULL || e->n_to == 0 || e->n_to > SB_RESEND_MAX_TO ||
        (e->text == NULL && e->html == NULL))
        return SB_EINVAL;
    if (e->idempotency_key != NULL) {
        size_t n = strlen(e->idempotency_key);
        if (n == 0 || n > SB_RESEND_IDEMPOTENCY_MAX)
            return SB_EINVAL;
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)e->idempotency_key[i] < 0x21 || (unsigned char)e->idempotency_key[i] > 0x7e)
                return SB_EINVAL;
    }
    if (e->n_tags > SB_RESEND_MAX_TAGS || (e->n_tags > 0 && e->tags == NULL))
        return SB_EINVAL;
    for (size_t i = 0; i < e->n_tags; i++)
        if (!tag_is_valid(e->tags[i].name) || !tag_is_valid(e->tags[i].value))
            return SB_EINVAL;
    int rc = 0;
    json_t *o = json_object();
    json_t *to = json_array();
    if (o == NULL || to == NULL)
        abort();
    json_object_set_new(o, "to", to);
    for (size_t i = 0; i < e->n_to; i++) {
        json_t *s = e->to[i] ? json_string(e->to[i]) : NULL;
        if (s == NULL) {
            rc = e->to[i] ? SB_EUTF8 : SB_EINVAL;
            goto out_json;
        }
        json_array_append_new(to, s);
    }
    if ((rc = set_str(o, "from", e->from)) != 0 || (rc = set_str(o, "subject", e->subject)) != 0 ||
        (e->text && (rc = set_str(o, "text", e->text)) != 0) ||
        (e->html && (rc = set_str(o, "html", e->html)) != 0) ||
        (e->reply_to && (rc = set_str(o, "reply_to", e->reply_to)) != 0))
        goto out_json;
    if (e->n_tags > 0) {
        json_t *tags = json_array();
        for (size_t i = 0; i < e->n_tags; i++)
            json_array_append_new(
                tags, json_pack("{s:s, s:s}", "name", e->tags[i].name, "value", e->tags[i].value));
        json_object_set_new(o, "tags", tags);
    }

    char *body = json_dumps(o, JSON_COMPACT);
    if (body == NULL)
        abort();
    sb_buf_t auth = SB_BUF_INIT, idem = SB_BUF_INIT, url = SB_BUF_INIT;
    sb_buf_printf(&auth, "Authorization: Bearer %s", rs->api_key);
    if (e->idempotency_key)
        sb_buf_printf(&idem, "Idempotency-Key: %s", e->idempotency_key);
    sb_buf_printf(&url, "%s/emails", rs->api_base);
    const char *headers[] = {"Content-Type: application/json", "Accept: application/json", auth.data,
                             e->idempotency_key ? idem.data : NULL, NULL};
    sb_resend_req_t *req = calloc(1, sizeof(*req));
    if (req == NULL) {
        rc = SB_ENOMEM;
        goto out_bufs;
    }
    req->cb = cb;
    req->data = data;
    sb_http_request_t hr = {
        .method = "POST",
        .url = url.data,
        .headers = headers,
        .body = body,
        .body_len = strlen(body),
        .timeout_ms = rs->timeout_ms,
        .retry = rs->retry,
    };
    rc = sb_http_request(rs->http, &hr, on_http, req, &req->call);
    if (rc != 0)
        free(req);
    else if (reqp)
        *reqp = req;
out_bufs:
    sodium_memzero(auth.data, auth.len);
    sb_buf_free(&auth);
    sb_buf_free(&idem);
    sb_buf_free(&url);
    free(body);
out_json:
    json_decref(o);
    return rc;
}
