/* Server-Sent Events: the request (SPEC §6).  GET/HEAD /v1/workspaces/{ws}/events/stream is parsed
 * (filters, ?after, Last-Event-ID, ?access_token) and authorized, then handed to the hub of the
 * request's loop (sse.c, sse_stream_start); sb_sse_serve does the same for a caller that has
 * authorized the request itself (the website chat's visitor stream). */
#include "http/sse.h"

#include <stdlib.h>
#include <string.h>

#include <h2o.h>

#include "core/error.h"
#include "http/auth_hook.h"
#include "http/response.h"
#include "http/sse_int.h"

static void on_pending_dispose(void *p)
{
    sse_start_t *pd = p;
    if (pd->params_owned)
        sb_sse_params_free(&pd->params);
}

/* The stream's parameters from the query and Last-Event-ID: 1 when parsed (pd owns them), 0 after
 * answering 400, or a negative code for the router to answer. */
static int parse(h2o_req_t *req, sse_start_t *pd, const char *query, size_t qlen)
{
    const char *lei = NULL;
    size_t lei_len = 0;
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("last-event-id"), -1);
    if (i >= 0) {
        lei = req->headers.entries[i].value.base;
        lei_len = req->headers.entries[i].value.len;
    }
    const char *field = NULL;
    char err[160];
    int rc = sb_sse_params_parse(query, qlen, lei, lei_len, &pd->params, &field, err, sizeof(err));
    if (rc == SB_EINVAL) {
        sb_http_send_error(req, 400, "invalid_argument", err, field);
        return 0;
    }
    if (rc != 0)
        return rc;
    pd->params_owned = true;
    return 1;
}

static void on_authorized(h2o_req_t *req, sb_http_auth_result_t result, const sb_uuid_t *user, void *data)
{
    sse_start_t *pd = data;
    if (result != SB_HTTP_AUTH_OK) {
        sb_http_send_auth_error(req, result);
        return;
    }
    if (user != NULL) {
        pd->has_user = true;
        pd->user = *user;
    }
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"))) {
        sb_http_send_body(req, 200, "text/event-stream; charset=utf-8", "", 0);
        return;
    }
    sse_stream_start(req, pd);
}

static int on_stream_req(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_sse_t *sse = data;
    const char *ws = sb_route_param(params, "ws");
    sse_start_t *pd = h2o_mem_alloc_shared(&req->pool, sizeof(*pd), on_pending_dispose);
    memset(pd, 0, sizeof(*pd));
    pd->sse = sse;
    if (ws == NULL || sb_uuid_parse(ws, strlen(ws), &pd->ws) != 0) {
        sb_http_send_error(req, 400, "invalid_argument", "the workspace id must be a UUID", "ws");
        return 0;
    }
    const char *query = NULL;
    size_t qlen = 0;
    if (req->query_at != SIZE_MAX) {
        query = req->path.base + req->query_at + 1;
        qlen = req->path.len - req->query_at - 1;
    }
    int rc = parse(req, pd, query, qlen);
    if (rc != 1)
        return rc;
    pd->recheck = true;
    pd->auth_epoch = sb_http_auth_epoch();
    sb_http_authorize_workspace(req, &pd->ws, pd->params.token, true, on_authorized, pd);
    return 0;
}

int sb_sse_serve(sb_sse_t *sse, h2o_req_t *req, const sb_uuid_t *workspace, const char *query, size_t qlen)
{
    sse_start_t *pd = h2o_mem_alloc_shared(&req->pool, sizeof(*pd), on_pending_dispose);
    memset(pd, 0, sizeof(*pd));
    pd->sse = sse;
    pd->ws = *workspace;
    int rc = parse(req, pd, query, qlen);
    if (rc != 1)
        return rc;
    on_authorized(req, SB_HTTP_AUTH_OK, NULL, pd);
    return 0;
}

int sse_routes(sb_router_t *router, sb_sse_t *sse)
{
    return sb_router_add(router, "GET", "/v1/workspaces/{ws}/events/stream", on_stream_req, sse);
}
