/* The API router: method + path pattern -> handler, with {params} captured from path segments.
 *
 * Patterns are absolute paths whose segments are either literals or `{name}` placeholders, e.g.
 * "/v1/workspaces/{ws}/contacts/{id}".  A placeholder matches one whole, non-empty segment.  When
 * several patterns match a path the most specific wins: the one whose first placeholder comes
 * latest ("/contacts/search" beats "/contacts/{id}").  Patterns that differ only in placeholder
 * names are the same resource; registering a method twice on one resource is an error.
 *
 * A router is built once on the main thread before any loop starts, then only read: matching is
 * thread-safe and allocation-free.  Matching is pure (no h2o, no I/O), so it is unit-tested
 * directly; the server does the percent-decoding of captured values and the dispatch. */
#ifndef SB_HTTP_ROUTER_H
#define SB_HTTP_ROUTER_H

#include <stddef.h>

#include <h2o.h>

#define SB_ROUTE_MAX_SEGMENTS 16
#define SB_ROUTE_MAX_PARAMS 8

/* Values captured by a match.  names[i] belong to the router; values[i] point into the request:
 * raw slices of the path after sb_router_match, decoded NUL-terminated strings in the request's
 * pool by the time a handler sees them. */
typedef struct sb_route_params_s {
    int n;
    const char *names[SB_ROUTE_MAX_PARAMS];
    const char *values[SB_ROUTE_MAX_PARAMS];
    size_t lens[SB_ROUTE_MAX_PARAMS];
} sb_route_params_t;

/* The captured value of the placeholder `name`, or NULL when the route has none by that name. */
const char *sb_route_param(const sb_route_params_t *params, const char *name);

/* A handler.  Runs on the loop that received the request.  It must answer the request exactly
 * once, now or later on the same loop (e.g. with sb_http_send_json from http/response.h), and then
 * return 0; or, without having answered, return a negative SB_E* / UV_E* code, which the server
 * turns into the matching JSON error (SB_EINVAL -> 400, SB_ENOTFOUND -> 404, ...).
 *
 * A handler that answers later must not outlive the request: an HTTP/2 client may reset its
 * stream, and h2o then disposes the request (and its pool) at once.  Allocate the pending state's
 * link to the request with h2o_mem_alloc_shared(&req->pool, ..., on_dispose) and let on_dispose
 * mark the request gone, so the late reply is dropped instead of touching freed memory. */
typedef int (*sb_route_cb)(h2o_req_t *req, const sb_route_params_t *params, void *data);

typedef struct sb_route_s {
    const char *method;  /* "GET", "POST", ... */
    const char *pattern; /* as registered */
    sb_route_cb cb;
    void *data;
} sb_route_t;

typedef struct sb_router_s sb_router_t;

sb_router_t *sb_router_new(void);
void sb_router_free(sb_router_t *r);

/* Registers method + pattern.  The strings are copied; data is passed to cb untouched.  0, or
 * SB_EINVAL for a malformed method or pattern (not starting with '/', an empty or unbalanced
 * placeholder, too many segments or placeholders), SB_EEXIST when the resource already has that
 * method, SB_ENOMEM. */
int sb_router_add(sb_router_t *r, const char *method, const char *pattern, sb_route_cb cb, void *data);

enum {
    SB_ROUTE_FOUND = 0,
    SB_ROUTE_NOT_FOUND = 1,          /* no pattern matches the path */
    SB_ROUTE_METHOD_NOT_ALLOWED = 2, /* a pattern matches, but not with this method */
};

typedef struct sb_route_match_s {
    int route;                /* index of the matched route (SB_ROUTE_FOUND), else -1 */
    int resource;             /* the matching resource (FOUND and METHOD_NOT_ALLOWED), else -1 */
    sb_route_params_t params; /* raw, undecoded slices of path */
} sb_route_match_t;

/* Matches a request.  path is the path without its query string.  HEAD falls back to the GET
 * route of a resource that has no HEAD route of its own.  Returns one of the SB_ROUTE_* values
 * and fills *m. */
int sb_router_match(const sb_router_t *r, const char *method, size_t method_len, const char *path,
                    size_t path_len, sb_route_match_t *m);

/* The Allow header value for a resource, e.g. "GET, HEAD, POST".  Owned by the router. */
const char *sb_router_allow(const sb_router_t *r, int resource);

int sb_router_count(const sb_router_t *r);
const sb_route_t *sb_router_route(const sb_router_t *r, int index);

/* Percent-decodes one path segment into out (at least len + 1 bytes), NUL-terminated; *outlen gets
 * the decoded length.  0, or SB_EINVAL for a malformed escape or an encoded NUL. */
int sb_router_decode(const char *in, size_t len, char *out, size_t *outlen);

#endif
