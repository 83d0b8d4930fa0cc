/* Internal to src/http: per-request state shared by the server, the router dispatch and the
 * response helpers.  Not for handlers. */
#ifndef SB_HTTP_INT_H
#define SB_HTTP_INT_H

#include <stdbool.h>

#include <h2o.h>

/* Hangs off the request as an h2o prefilter (the one per-request extension point h2o 2.2 offers),
 * so it lives in the request's pool and dies with it. */
typedef struct sb__http_reqstate_s {
    h2o_req_prefilter_t super;
    int route;      /* index in the router, or -1 when no route matched */
    bool responded; /* answered through http/response.h */
    const char *request_id;
} sb__http_reqstate_t;

/* The request's state, created on first use when create is set (else NULL when absent). */
sb__http_reqstate_t *sb__http_reqstate(h2o_req_t *req, bool create);

/* Registers the response filter on pathconf: adds X-Request-Id to every response and rewrites
 * h2o's own plain-text error responses (413 from the body limit, 400 for broken chunking, ...)
 * into the JSON error shape. */
void sb__http_register_filter(h2o_pathconf_t *pathconf);

#endif
