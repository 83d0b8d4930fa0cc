#include "http/response.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/error.h"
#include "core/log.h"
#include "core/uuid.h"
#include "events/codec.h"
#include "http/http_int.h"

#define MAX_REQUEST_ID 128

/* ---- per-request state ---------------------------------------------------------------------- */

static void reqstate_setup_ostream(h2o_req_prefilter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    h2o_setup_next_prefilter(self, req, slot);
}

sb__http_reqstate_t *sb__http_reqstate(h2o_req_t *req, bool create)
{
    for (h2o_req_prefilter_t *p = req->prefilters; p != NULL; p = p->next)
        if (p->on_setup_ostream == reqstate_setup_ostream)
            return (sb__http_reqstate_t *)p;
    if (!create)
        return NULL;
    sb__http_reqstate_t *st = (sb__http_reqstate_t *)h2o_add_prefilter(req, sizeof(*st));
    st->super.on_setup_ostream = reqstate_setup_ostream;
    st->route = -1;
    st->responded = false;
    st->request_id = NULL;
    return st;
}

static bool is_sane_request_id(const char *s, size_t len)
{
    if (len == 0 || len > MAX_REQUEST_ID)
        return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] < 0x21 || s[i] > 0x7e)
            return false;
    return true;
}

const char *sb_http_request_id(h2o_req_t *req)
{
    sb__http_reqstate_t *st = sb__http_reqstate(req, true);
    if (st->request_id != NULL)
        return st->request_id;
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-request-id"), -1);
    if (i >= 0 && is_sane_request_id(req->headers.entries[i].value.base, req->headers.entries[i].value.len)) {
        h2o_iovec_t v = req->headers.entries[i].value;
        st->request_id = h2o_strdup(&req->pool, v.base, v.len).base;
    } else {
        sb_uuid_t u;
        sb_uuid_v7(&u);
        char *id = h2o_mem_alloc_pool(&req->pool, SB_UUID_STRLEN + 1);
        sb_uuid_format(&u, id);
        st->request_id = id;
    }
    return st->request_id;
}

bool sb_http_responded(h2o_req_t *req)
{
    sb__http_reqstate_t *st = sb__http_reqstate(req, false);
    return st != NULL && st->responded;
}

/* ---- sending --------------------------------------------------------------------------------- */

/* Our responses are sent whole in one final h2o_send, like h2o_send_inline: no proceed callback
 * is ever needed, and a shared static generator carries no state. */
static h2o_generator_t oneshot_generator = {NULL, NULL};

static bool is_head(h2o_req_t *req)
{
    return h2o_memis(req->input.method.base, req->input.method.len, H2O_STRLIT("HEAD"));
}

/* The HTTP/1.1 reason phrase (HTTP/2 has none). */
static const char *reason_phrase(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return status < 400 ? "OK" : "Error";
    }
}

static void add_retry_after(h2o_req_t *req, int status)
{
    if ((status == 429 || status == 503) && h2o_find_header(&req->res.headers, H2O_TOKEN_RETRY_AFTER, -1) < 0)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
}

static void send_iovec(h2o_req_t *req, int status, const char *content_type, h2o_iovec_t body)
{
    sb__http_reqstate_t *st = sb__http_reqstate(req, true);
    if (st->responded) {
        /* A handler bug; answering twice would trip h2o's assertions. */
        sb_log_error("http", "request answered twice id=%s status=%d", sb_http_request_id(req), status);
        return;
    }
    st->responded = true;
    req->res.status = status;
    req->res.reason = reason_phrase(status);
    add_retry_after(req, status);
    /* 204 and 304 carry neither a body nor a Content-Length (RFC 9110 §8.6). */
    bool bodiless = status == 204 || status == 304;
    req->res.content_length = bodiless ? SIZE_MAX : body.len;
    if (content_type != NULL && !bodiless)
        h2o_set_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, content_type,
                       strlen(content_type), 1);
    h2o_start_response(req, &oneshot_generator);
    if (body.len == 0 || bodiless || is_head(req))
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
    else
        h2o_send(req, &body, 1, H2O_SEND_STATE_FINAL);
}

void sb_http_send_body(h2o_req_t *req, int status, const char *content_type, const char *body, size_t len)
{
    h2o_iovec_t b = len ? h2o_strdup(&req->pool, body, len) : h2o_iovec_init(NULL, 0);
    send_iovec(req, status, content_type, b);
}

static void free_adopted(void *p)
{
    free(*(char **)p);
}

/* Hands a malloc'd buffer to the request without copying: a pool-managed holder frees it when the
 * request is disposed.  NULL gives an empty body. */
static h2o_iovec_t adopt(h2o_req_t *req, char *body, size_t len)
{
    if (body == NULL)
        return h2o_iovec_init(NULL, 0);
    char **holder = h2o_mem_alloc_shared(&req->pool, sizeof(*holder), free_adopted);
    *holder = body;
    return h2o_iovec_init(body, len);
}

void sb_http_send_owned(h2o_req_t *req, int status, const char *content_type, char *body, size_t len)
{
    send_iovec(req, status, content_type, adopt(req, body, len));
}

typedef struct {
    void (*release)(void *data);
    void *data;
} borrowed_t;

static void release_borrowed(void *p)
{
    borrowed_t *b = p;
    b->release(b->data);
}

void sb_http_send_borrowed(h2o_req_t *req, int status, const char *content_type, const char *body, size_t len,
                           void (*release)(void *data), void *data)
{
    /* Registered before sending, so the body is released with the request even if send_iovec
     * refuses to answer twice. */
    borrowed_t *b = h2o_mem_alloc_shared(&req->pool, sizeof(*b), release_borrowed);
    b->release = release;
    b->data = data;
    send_iovec(req, status, content_type, h2o_iovec_init(body, len));
}

void sb_http_send_json(h2o_req_t *req, int status, json_t *body)
{
    h2o_iovec_t b = h2o_iovec_init(NULL, 0);
    if (body != NULL) {
        char *text = json_dumps(body, JSON_COMPACT);
        b = adopt(req, text, text != NULL ? strlen(text) : 0);
        json_decref(body);
        if (b.base == NULL) {
            sb_http_send_error(req, 500, "internal", "response could not be encoded", NULL);
            return;
        }
    }
    send_iovec(req, status, "application/json", b);
}

static const struct {
    int status;
    const char *code;
    const char *message;
} status_words[] = {
    {400, "bad_request", "bad request"},
    {401, "unauthorized", "authentication required"},
    {403, "forbidden", "not permitted"},
    {404, "not_found", "not found"},
    {405, "method_not_allowed", "method not allowed"},
    {406, "not_acceptable", "not acceptable"},
    {408, "request_timeout", "request timed out"},
    {409, "conflict", "conflict"},
    {410, "gone", "gone"},
    {411, "length_required", "length required"},
    {412, "precondition_failed", "precondition failed"},
    {413, "payload_too_large", "request body too large"},
    {414, "uri_too_long", "request path too long"},
    {415, "unsupported_media_type", "unsupported content type"},
    {416, "range_not_satisfiable", "range not satisfiable"},
    {417, "expectation_failed", "unsupported expectation"},
    {422, "unprocessable", "request rejected"},
    {429, "rate_limited", "too many requests"},
    {431, "headers_too_large", "request headers too large"},
    {500, "internal", "internal error"},
    {501, "not_implemented", "not implemented"},
    {502, "bad_gateway", "bad gateway"},
    {503, "unavailable", "service unavailable"},
    {504, "timeout", "timed out"},
};

static int status_index(int status)
{
    for (size_t i = 0; i < sizeof(status_words) / sizeof(status_words[0]); i++)
        if (status_words[i].status == status)
            return (int)i;
    return -1;
}

const char *sb_http_status_code_word(int status)
{
    int i = status_index(status);
    if (i >= 0)
        return status_words[i].code;
    return status >= 500 ? "internal" : "bad_request";
}

const char *sb_http_status_message(int status)
{
    int i = status_index(status);
    return i >= 0 ? status_words[i].message : "error";
}

static const char fallback_error[] =
    "{\"error\":{\"code\":\"internal\",\"message\":\"error\",\"field\":null}}";

char *sb_http_error_text(const char *code, const char *message, const char *field)
{
    /* "s?" writes null for a NULL field.  json_pack fails only on invalid UTF-8 (from a caller's
     * message or field) or memory: then the generic body still has the right shape. */
    json_t *v = json_pack("{s:{s:s,s:s,s:s?}}", "error", "code", code, "message", message, "field", field);
    char *text = v != NULL ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    if (text == NULL)
        text = strdup(fallback_error);
    return text;
}

static h2o_iovec_t error_body(h2o_req_t *req, const char *code, const char *message, const char *field)
{
    char *text = sb_http_error_text(code, message, field);
    if (text == NULL)
        return h2o_iovec_init(fallback_error, sizeof(fallback_error) - 1);
    return adopt(req, text, strlen(text));
}

void sb_http_send_error(h2o_req_t *req, int status, const char *code, const char *message, const char *field)
{
    if (code == NULL)
        code = sb_http_status_code_word(status);
    if (message == NULL)
        message = sb_http_status_message(status);
    send_iovec(req, status, "application/json", error_body(req, code, message, field));
}

static const struct {
    int err;
    int status;
    const char *code;
} err_map[] = {
    {SB_EINVAL, 400, "invalid_argument"},      {SB_ECODEC, 400, "malformed"},
    {SB_EUTF8, 400, "invalid_utf8"},           {SB_EPERM, 403, "forbidden"},
    {SB_ENOTFOUND, 404, "not_found"},          {SB_ECONFLICT, 409, "conflict"},
    {SB_EEXIST, 409, "already_exists"},        {SB_ETOOBIG, 413, "payload_too_large"},
    {SB_EREJECTED, 422, "rejected"},           {SB_EOVERLOAD, 503, "overloaded"},
    {SB_EDBDOWN, 503, "database_unavailable"}, {SB_ESHUTDOWN, 503, "shutting_down"},
    {SB_EUNKNOWN, 503, "outcome_unknown"},     {SB_ETIMEOUT, 504, "timeout"},
};

static int err_index(int err)
{
    for (size_t i = 0; i < sizeof(err_map) / sizeof(err_map[0]); i++)
        if (err_map[i].err == err)
            return (int)i;
    return -1;
}

int sb_http_status_for(int err)
{
    int i = err_index(err);
    return i >= 0 ? err_map[i].status : 500;
}

void sb_http_send_errcode(h2o_req_t *req, int err, const char *field)
{
    int i = err_index(err);
    if (i < 0) {
        /* Internal detail stays in the log, tied to the response by the request id. */
        sb_log_error("http", "internal error id=%s err=%s", sb_http_request_id(req), sb_errname(err));
        sb_http_send_error(req, 500, "internal", "internal error", field);
        return;
    }
    sb_http_send_error(req, err_map[i].status, err_map[i].code, sb_strerror(err), field);
}

void sb_http_add_header(h2o_req_t *req, const char *name, const char *value)
{
    size_t nlen = strlen(name);
    h2o_iovec_t n = h2o_strdup(&req->pool, name, nlen);
    h2o_iovec_t v = h2o_strdup(&req->pool, value, strlen(value));
    h2o_add_header_by_str(&req->pool, &req->res.headers, n.base, n.len, 1, NULL, v.base, v.len);
}

/* ---- JSON request bodies --------------------------------------------------------------------- */

static bool is_json_content_type(h2o_req_t *req)
{
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_CONTENT_TYPE, -1);
    if (i < 0)
        return false;
    h2o_iovec_t v = req->headers.entries[i].value;
    static const char want[] = "application/json";
    size_t n = sizeof(want) - 1;
    if (v.len < n || strncasecmp(v.base, want, n) != 0)
        return false;
    return v.len == n || v.base[n] == ';' || v.base[n] == ' ';
}

static bool too_deep(const json_t *v, int depth, int max)
{
    if (depth > max)
        return true;
    const char *k;
    size_t i;
    json_t *m;
    if (json_is_object(v)) {
        json_object_foreach((json_t *)v, k, m)
        {
            if (too_deep(m, depth + 1, max))
                return true;
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, m)
        {
            if (too_deep(m, depth + 1, max))
                return true;
        }
    }
    return false;
}

static int body_problem(sb_http_body_problem_t *why, int status, const char *code, const char *message)
{
    why->status = status;
    why->code = code;
    why->message = message;
    return SB_EINVAL;
}

int sb_http_parse_json_object(h2o_req_t *req, int max_depth, json_t **out, sb_http_body_problem_t *why)
{
    *out = NULL;
    if (!is_json_content_type(req))
        return body_problem(why, 415, "unsupported_media_type", "expected content-type application/json");
    if (req->entity.base == NULL || req->entity.len == 0)
        return body_problem(why, 400, "invalid_json", "a JSON object body is required");
    if (!sb_utf8_is_valid(req->entity.base, req->entity.len))
        return body_problem(why, 400, "invalid_utf8", "the body is not valid UTF-8");
    json_error_t jerr;
    /* Nesting is refused by depth below; jansson's own limit (2048) bounds the parser's stack. */
    json_t *v = json_loadb(req->entity.base, req->entity.len, JSON_REJECT_DUPLICATES, &jerr);
    if (v == NULL) {
        snprintf(why->msg, sizeof(why->msg), "invalid JSON at line %d column %d: %s", jerr.line, jerr.column,
                 jerr.text);
        return body_problem(why, 400, "invalid_json", why->msg);
    }
    if (!json_is_object(v)) {
        json_decref(v);
        return body_problem(why, 400, "invalid_json", "the body must be a JSON object");
    }
    if (too_deep(v, 1, max_depth)) {
        json_decref(v);
        return body_problem(why, 400, "invalid_json", "the body nests too deeply");
    }
    *out = v;
    return 0;
}

int sb_http_read_json_object(h2o_req_t *req, json_t **out)
{
    sb_http_body_problem_t why;
    int rc = sb_http_parse_json_object(req, 32, out, &why);
    if (rc != 0)
        sb_http_send_error(req, why.status, why.code, why.message, NULL);
    return rc;
}

/* ---- the response filter --------------------------------------------------------------------- */

typedef struct {
    h2o_ostream_t super;
    h2o_iovec_t body;
} json_error_ostream_t;

/* Replaces h2o's plain-text body (sent whole in one call, empty for HEAD) with ours. */
static void json_error_send(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs, size_t bufcnt,
                            h2o_send_state_t state)
{
    json_error_ostream_t *o = (json_error_ostream_t *)self;
    if (bufcnt != 0 && o->body.base != NULL) {
        h2o_iovec_t b = o->body;
        o->body.base = NULL;
        h2o_ostream_send_next(self, req, &b, 1, state);
    } else {
        h2o_ostream_send_next(self, req, NULL, 0, state);
    }
}

/* An error generated by h2o itself rather than by a handler: h2o_send_error_generic always labels
 * its body with exactly this content type. */
static bool is_h2o_error(h2o_req_t *req)
{
    if (req->res.status < 400 || sb_http_responded(req))
        return false;
    ssize_t i = h2o_find_header(&req->res.headers, H2O_TOKEN_CONTENT_TYPE, -1);
    return i >= 0 && h2o_memis(req->res.headers.entries[i].value.base, req->res.headers.entries[i].value.len,
                               H2O_STRLIT("text/plain; charset=utf-8"));
}

static void filter_setup_ostream(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    const char *id = sb_http_request_id(req);
    h2o_set_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-request-id"), 0, id, strlen(id), 1);
    if (is_h2o_error(req)) {
        int status = req->res.status;
        h2o_iovec_t body =
            error_body(req, sb_http_status_code_word(status), sb_http_status_message(status), NULL);
        h2o_set_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, H2O_STRLIT("application/json"),
                       1);
        add_retry_after(req, status);
        req->res.content_length = body.len;
        json_error_ostream_t *o = (json_error_ostream_t *)h2o_add_ostream(req, sizeof(*o), slot);
        o->super.do_send = json_error_send;
        o->body = body;
        slot = &o->super.next;
    }
    h2o_setup_next_ostream(req, slot);
}

void sb__http_register_filter(h2o_pathconf_t *pathconf)
{
    h2o_filter_t *f = h2o_create_filter(pathconf, sizeof(*f));
    f->on_setup_ostream = filter_setup_ostream;
}
