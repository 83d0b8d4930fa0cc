/* Workspace authorization for HTTP handlers, behind a pluggable authorizer.
 *
 * A handler that serves a workspace's data asks sb_http_authorize_workspace() whether the caller
 * is a member.  The answer comes from the process's authorizer, which the auth subsystem installs
 * at start-up (it knows tokens, users and memberships).  Until one is installed every request is
 * refused (SB_HTTP_AUTH_UNAVAILABLE, 503): a workspace's data is never served unchecked.
 *
 * The token is taken from `Authorization: Bearer <token>`, or, where the handler allows it, from
 * the `access_token` query parameter (a browser's EventSource cannot set headers).  Tokens are
 * never logged. */
#ifndef SB_HTTP_AUTH_HOOK_H
#define SB_HTTP_AUTH_HOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <h2o.h>

#include "core/uuid.h"

typedef enum sb_http_auth_result_e {
    SB_HTTP_AUTH_OK = 0,          /* the token's user is a member of the workspace */
    SB_HTTP_AUTH_UNAUTHENTICATED, /* no token, or one that names no valid session: 401 */
    SB_HTTP_AUTH_FORBIDDEN,       /* a valid user who is not a member (or no such workspace): 403 */
    SB_HTTP_AUTH_UNAVAILABLE,     /* cannot decide now (database down, no authorizer): 503 */
    SB_HTTP_AUTH_NOT_FOUND,       /* a valid user, but no such workspace for them: 404, so another
                                     workspace's id reveals nothing (the API's authorizer) */
} sb_http_auth_result_t;

/* One pending check, owned by this module.  Valid from the authorizer's check call until its
 * sb_http_auth_finish. */
typedef struct sb_http_auth_check_s sb_http_auth_check_t;

/* The authorizer's side. */
typedef struct sb_http_authorizer_s {
    /* Decides whether the bearer of token (NUL-terminated, 1..4096 bytes, valid until finish) is a
     * member of workspace.  Runs on the request's loop and must call sb_http_auth_finish exactly
     * once, on that loop, from inside this call or later.  The request may be gone by then (the
     * client left); finish copes with that. */
    void (*check)(sb_http_auth_check_t *check, const char *token, const sb_uuid_t *workspace, void *data);
    void *data;
} sb_http_authorizer_t;

/* Installs the process's authorizer (copied), or removes it with NULL.  Call before the loops
 * start: loops read it without locking. */
void sb_http_set_authorizer(const sb_http_authorizer_t *a);

/* True once an authorizer is installed (a test tool may install its own before serve starts; the
 * API then leaves it in place). */
bool sb_http_has_authorizer(void);

/* Ends a check.  user_id (may be NULL) is the authenticated user, passed on to the handler. */
void sb_http_auth_finish(sb_http_auth_check_t *check, sb_http_auth_result_t result, const sb_uuid_t *user_id);

/* The handler's side: the outcome, with the user when result is SB_HTTP_AUTH_OK (else NULL). */
typedef void (*sb_http_auth_cb)(h2o_req_t *req, sb_http_auth_result_t result, const sb_uuid_t *user_id,
                                void *data);

/* Checks that the caller of req is a member of workspace.  The token comes from the Authorization
 * header, else from query_token when allow_query is set (the handler passes the decoded
 * ?access_token= value, or NULL).  cb fires exactly once while req is alive (possibly before this
 * returns), and never if req is disposed first (an HTTP/2 reset, a closed connection). */
void sb_http_authorize_workspace(h2o_req_t *req, const sb_uuid_t *workspace, const char *query_token,
                                 bool allow_query, sb_http_auth_cb cb, void *data);

/* Answers req with the error for result: 401 (with WWW-Authenticate: Bearer), 403, 404 or 503. */
void sb_http_send_auth_error(h2o_req_t *req, sb_http_auth_result_t result);

/* ---- long-lived authorizations (event streams) ---- */

/* The token sb_http_authorize_workspace would check for req (same rules), as a fresh NUL-terminated
 * copy the caller frees (and should wipe), or NULL when there is none. */
char *sb_http_request_token(h2o_req_t *req, const char *query_token, bool allow_query);

typedef void (*sb_http_recheck_cb)(sb_http_auth_result_t result, const sb_uuid_t *user_id, void *data);

/* Asks the authorizer again, without a request, whether the bearer of token is still a member of
 * workspace (a stream authorized when it started may outlive the session or the membership).  On
 * the calling loop; cb fires exactly once, possibly before this returns. */
void sb_http_recheck_workspace(const char *token, const sb_uuid_t *workspace, sb_http_recheck_cb cb,
                               void *data);

/* Says that credentials were revoked in this process (a logout): long-lived authorizations should
 * be checked again now rather than at their next periodic check.  Any thread. */
void sb_http_auth_revoked(void);

/* Counts sb_http_auth_revoked calls: a holder of long-lived authorizations compares it with the
 * value it last saw.  Any thread. */
uint64_t sb_http_auth_epoch(void);

#endif
