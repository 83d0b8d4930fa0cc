/* Answering API requests: JSON bodies, SPEC §5's error shape, request ids, JSON request bodies.
 *
 * Every function here runs on the loop that owns the request and answers it at most once: after a
 * send the request belongs to h2o again.  Bodies are copied or adopted, so callers keep nothing
 * alive.  Errors look like
 *
 *   {"error": {"code": "not_found", "message": "no route for GET /v1/x", "field": null}}
 *
 * with codes that are stable, lowercase identifiers (the same words the logs use). */
#ifndef SB_HTTP_RESPONSE_H
#define SB_HTTP_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>

#include <h2o.h>
#include <jansson.h>

/* Sends body as application/json with status.  Takes the reference to body (NULL sends an empty
 * body). */
void sb_http_send_json(h2o_req_t *req, int status, json_t *body);

/* Sends len bytes, copied, with the given content type (NULL: no Content-Type).  Like every
 * sender here, a 429 or 503 gets "Retry-After: 1" unless the response already has one. */
void sb_http_send_body(h2o_req_t *req, int status, const char *content_type, const char *body, size_t len);

/* Sends len bytes of body, a malloc'd buffer the request takes over (freed with it; NULL: empty),
 * without copying: for large bodies built elsewhere. */
void sb_http_send_owned(h2o_req_t *req, int status, const char *content_type, char *body, size_t len);

/* Sends len bytes of body without copying or taking it over: body stays the caller's, who keeps it
 * alive and unchanged until release(data) runs.  That happens exactly once, when h2o disposes of
 * the request (the body has been written, or the client went away), never inside this call.  For
 * bodies shared by many requests (a cache's reference-counted text). */
void sb_http_send_borrowed(h2o_req_t *req, int status, const char *content_type, const char *body, size_t len,
                           void (*release)(void *data), void *data);

/* Sends {"error":{"code","message","field"}} with status.  code NULL picks the usual code for the
 * status (404 -> "not_found", ...); field may be NULL (sent as null).  429 and 503 get
 * "Retry-After: 1" unless a Retry-After header is already set on the response. */
void sb_http_send_error(h2o_req_t *req, int status, const char *code, const char *message, const char *field);

/* Sends the error matching a negative SB_E* or UV_E* code (SB_EINVAL -> 400 "invalid_argument",
 * SB_ENOTFOUND -> 404, SB_ECONFLICT -> 409, SB_ETOOBIG -> 413, SB_EOVERLOAD / SB_EDBDOWN /
 * SB_ESHUTDOWN -> 503, anything unknown -> 500 "internal"), naming field if given. */
void sb_http_send_errcode(h2o_req_t *req, int err, const char *field);

/* The status sb_http_send_errcode would use for err. */
int sb_http_status_for(int err);

/* The default error code word for an HTTP status ("not_found" for 404, "internal" for 500). */
const char *sb_http_status_code_word(int status);

/* The request's id: the client's X-Request-Id when it is 1..128 printable ASCII characters without
 * spaces, else a fresh UUID.  Stable for the request's lifetime (lives in its pool); every response
 * carries it back in X-Request-Id. */
const char *sb_http_request_id(h2o_req_t *req);

/* Adds a response header (name lowercase; both strings copied). */
void sb_http_add_header(h2o_req_t *req, const char *name, const char *value);

/* The default message for an HTTP status ("not found" for 404, "error" when none is known). */
const char *sb_http_status_message(int status);

/* The error shape's text, {"error":{"code","message","field"}} (field NULL: null), malloc'd (caller
 * frees).  A message or field that cannot be encoded (invalid UTF-8) gives a generic body of the
 * same shape; NULL only when out of memory. */
char *sb_http_error_text(const char *code, const char *message, const char *field);

/* Why a request body is not an acceptable JSON object: the status (415 or 400), the error code
 * and a message (static, or in msg). */
typedef struct sb_http_body_problem_s {
    int status;
    const char *code;
    const char *message;
    char msg[256];
} sb_http_body_problem_t;

/* Parses the request body as a JSON object without answering: the Content-Type must be
 * application/json (415 "unsupported_media_type"), the body non-empty, valid UTF-8, well-formed
 * JSON without duplicate keys, an object, and nested at most max_depth deep (400 "invalid_json" or
 * "invalid_utf8", with the parser's position for malformed JSON).  Returns 0 and *out (caller
 * decrefs), or SB_EINVAL with *why filled in. */
int sb_http_parse_json_object(h2o_req_t *req, int max_depth, json_t **out, sb_http_body_problem_t *why);

/* Parses the request body as a JSON object (sb_http_parse_json_object, 32 levels deep at most).  On
 * success returns 0 and *out (caller decrefs).  Otherwise answers the request itself with the
 * problem and returns SB_EINVAL, which a handler may simply return: the router sends nothing more
 * for a request already answered. */
int sb_http_read_json_object(h2o_req_t *req, json_t **out);

/* True once the request has been answered through one of the functions above. */
bool sb_http_responded(h2o_req_t *req);

#endif
