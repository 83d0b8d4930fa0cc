/* Workspace authorization behind a pluggable authorizer: see auth_hook.h.
 *
 * A check outlives its request when the client leaves first, so it is heap-allocated and linked
 * both ways: the request's pool holds a small link whose dispose callback detaches the check, and
 * finish frees the check (calling the handler only if the request is still there). */
#include "http/auth_hook.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/log.h"
#include "http/response.h"

#define MAX_TOKEN 4096

static sb_http_authorizer_t authorizer;
static bool have_authorizer;

typedef struct link_s {
    sb_http_auth_check_t *check; /* NULL once finished */
} link_t;

struct sb_http_auth_check_s {
    h2o_req_t *req; /* NULL once the request is gone */
    link_t *link;
    sb_http_auth_cb cb;
    sb_http_recheck_cb recheck_cb; /* instead of cb: a check without a request */
    void *data;
    char token[]; /* NUL-terminated */
};

static _Atomic uint64_t revocations;

void sb_http_set_authorizer(const sb_http_authorizer_t *a)
{
    if (a != NULL)
        authorizer = *a;
    have_authorizer = a != NULL;
}

bool sb_http_has_authorizer(void)
{
    return have_authorizer;
}

static void on_link_dispose(void *p)
{
    link_t *l = p;
    if (l->check != NULL)
        l->check->req = NULL;
}

void sb_http_auth_finish(sb_http_auth_check_t *c, sb_http_auth_result_t result, const sb_uuid_t *user_id)
{
    if (c->recheck_cb != NULL) {
        sb_http_recheck_cb rcb = c->recheck_cb;
        void *rdata = c->data;
        sodium_memzero(c->token, strlen(c->token));
        free(c);
        rcb(result, result == SB_HTTP_AUTH_OK ? user_id : NULL, rdata);
        return;
    }
    h2o_req_t *req = c->req;
    if (req != NULL)
        c->link->check = NULL;
    sb_http_auth_cb cb = c->cb;
    void *data = c->data;
    free(c);
    if (req != NULL)
        cb(req, result, result == SB_HTTP_AUTH_OK ? user_id : NULL, data);
}

/* The bearer token of the Authorization header: its length and start, or 0 when absent or not a
 * Bearer credential. */
static size_t header_token(h2o_req_t *req, const char **out)
{
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
    if (i < 0)
        return 0;
    const h2o_iovec_t *v = &req->headers.entries[i].value;
    const char *s = v->base;
    size_t n = v->len;
    if (n < 7 || strncasecmp(s, "bearer ", 7) != 0)
        return 0;
    s += 7;
    n -= 7;
    while (n > 0 && *s == ' ') {
        s++;
        n--;
    }
    while (n > 0 && s[n - 1] == ' ')
        n--;
    *out = s;
    return n;
}

/* The token to check: the Authorization header's, else query_token when allowed.  0 when none. */
static size_t request_token(h2o_req_t *req, const char *query_token, bool allow_query, const char **out)
{
    const char *token = NULL;
    size_t len = header_token(req, &token);
    if (len == 0 && allow_query && query_token != NULL) {
        token = query_token;
        len = strlen(query_token);
    }
    *out = token;
    return len;
}

char *sb_http_request_token(h2o_req_t *req, const char *query_token, bool allow_query)
{
    const char *token = NULL;
    size_t len = request_token(req, query_token, allow_query, &token);
    if (len == 0 || len > MAX_TOKEN || memchr(token, '\0', len) != NULL)
        return NULL;
    return strndup(token, len);
}

void sb_http_recheck_workspace(const char *token, const sb_uuid_t *workspace, sb_http_recheck_cb cb,
                               void *data)
{
    size_t len = token != NULL ? strlen(token) : 0;
    if (len == 0 || len > MAX_TOKEN) {
        cb(SB_HTTP_AUTH_UNAUTHENTICATED, NULL, data);
        return;
    }
    sb_http_auth_check_t *c = have_authorizer ? calloc(1, sizeof(*c) + len + 1) : NULL;
    if (c == NULL) {
        cb(SB_HTTP_AUTH_UNAVAILABLE, NULL, data);
        return;
    }
    c->recheck_cb = cb;
    c->data = data;
    memcpy(c->token, token, len + 1);
    authorizer.check(c, c->token, workspace, authorizer.data);
}

void sb_http_auth_revoked(void)
{
    atomic_fetch_add(&revocations, 1);
}

uint64_t sb_http_auth_epoch(void)
{
    return atomic_load(&revocations);
}

void sb_http_authorize_workspace(h2o_req_t *req, const sb_uuid_t *workspace, const char *query_token,
                                 bool allow_query, sb_http_auth_cb cb, void *data)
{
    const char *token = NULL;
    size_t len = request_token(req, query_token, allow_query, &token);
    if (len == 0 || len > MAX_TOKEN || memchr(token, '\0', len) != NULL) {
        cb(req, SB_HTTP_AUTH_UNAUTHENTICATED, NULL, data);
        return;
    }
    if (!have_authorizer) {
        sb_log_error("http", "no authorizer installed: refusing a workspace request");
        cb(req, SB_HTTP_AUTH_UNAVAILABLE, NULL, data);
        return;
    }
    sb_http_auth_check_t *c = malloc(sizeof(*c) + len + 1);
    if (c == NULL) {
        cb(req, SB_HTTP_AUTH_UNAVAILABLE, NULL, data);
        return;
    }
    c->req = req;
    c->cb = cb;
    c->recheck_cb = NULL;
    c->data = data;
    memcpy(c->token, token, len);
    c->token[len] = '\0';
    c->link = h2o_mem_alloc_shared(&req->pool, sizeof(link_t), on_link_dispose);
    c->link->check = c;
    authorizer.check(c, c->token, workspace, authorizer.data);
}

void sb_http_send_auth_error(h2o_req_t *req, sb_http_auth_result_t result)
{
    switch (result) {
    case SB_HTTP_AUTH_OK:
        break;
    case SB_HTTP_AUTH_UNAUTHENTICATED:
        sb_http_add_header(req, "www-authenticate", "Bearer");
        sb_http_send_error(req, 401, "unauthorized", "a valid bearer token is required", NULL);
        break;
    case SB_HTTP_AUTH_FORBIDDEN:
        sb_http_send_error(req, 403, "forbidden", "not a member of this workspace", NULL);
        break;
    case SB_HTTP_AUTH_NOT_FOUND:
        sb_http_send_error(req, 404, "workspace_not_found", "no such workspace", NULL);
        break;
    case SB_HTTP_AUTH_UNAVAILABLE:
        sb_http_send_error(req, 503, "unavailable", "cannot check authorization now", NULL);
        break;
    }
}
