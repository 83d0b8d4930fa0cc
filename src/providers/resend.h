/* Resend's REST API (SPEC §8): sending one email, asynchronously, on the calling loop's HTTP
 * client.
 *
 * POST {api_base}/emails with a JSON body {from, to: [...], subject, text?, html?, reply_to?},
 * "Authorization: Bearer <key>" and, when given, an Idempotency-Key header (Resend then answers a
 * retry with the first send's result instead of sending again).  Resend's error JSON
 * ({statusCode, name, message}) comes back as SB_EREJECTED with the name and message.  Calls and
 * callbacks follow http_client.h. */
#ifndef SB_PROVIDERS_RESEND_H
#define SB_PROVIDERS_RESEND_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "providers/http_client.h"

#define SB_RESEND_BASE_MAX 255
#define SB_RESEND_KEY_MAX 255
#define SB_RESEND_MAX_TO 50 /* Resend's limit of recipients per email */
#define SB_RESEND_IDEMPOTENCY_MAX 256

typedef struct sb_resend_s {
    sb_http_client_t *http;
    char api_base[SB_RESEND_BASE_MAX + 1]; /* without a trailing slash */
    char api_key[SB_RESEND_KEY_MAX + 1];
    const sb_http_retry_t *retry; /* NULL: one attempt; must outlive the client */
    uint64_t timeout_ms;          /* 0: SB_HTTP_DEFAULT_TIMEOUT_MS */
} sb_resend_t;

/* Copies api_base (e.g. cfg->resend_api_base) and the API key.  0 or SB_EINVAL. */
int sb_resend_init(sb_resend_t *rs, sb_http_client_t *http, const char *api_base, const char *api_key);

/* Wipes the key. */
void sb_resend_clear(sb_resend_t *rs);

/* A tag Resend keeps with the email and sends back in its webhook events ([A-Za-z0-9_-], at most
 * 256 characters each). */
typedef struct sb_resend_tag_s {
    const char *name;
    const char *value;
} sb_resend_tag_t;
#define SB_RESEND_MAX_TAGS 10

typedef struct sb_resend_email_s {
    const char *from; /* "Name <a@b>" or "a@b" */
    const char *const *to;
    size_t n_to; /* 1..SB_RESEND_MAX_TO */
    const char *subject;
    const char *text; /* at least one of text and html */
    const char *html;
    const char *reply_to;        /* NULL: none */
    const char *idempotency_key; /* NULL: none; printable ASCII, at most SB_RESEND_IDEMPOTENCY_MAX */
    const sb_resend_tag_t *tags; /* NULL: none */
    size_t n_tags;               /* at most SB_RESEND_MAX_TAGS */
} sb_resend_email_t;

typedef struct sb_resend_result_s {
    /* 0 for a 2xx answer with an id; SB_EREJECTED when Resend refused (name, message);
     * SB_ECODEC for a 2xx answer without an id; else a transport error (http_client.h). */
    int error;
    long status;
    const char *id;      /* the email's id on success */
    const char *name;    /* Resend's error name ("validation_error", ...), never NULL */
    const char *message; /* Resend's message or the transport error's text, never NULL */
    json_t *json;        /* the parsed answer (borrowed), may be NULL */
    const sb_http_response_t *http;
} sb_resend_result_t;

typedef void (*sb_resend_cb)(const sb_resend_result_t *res, void *data);
typedef struct sb_resend_req_s sb_resend_req_t;

/* Sends e.  0 and the callback later, or SB_EINVAL / SB_EUTF8 (a missing field, a string that is
 * not UTF-8, a bad idempotency key) / SB_ESHUTDOWN / SB_ENOMEM and no callback. */
int sb_resend_send(const sb_resend_t *rs, const sb_resend_email_t *e, sb_resend_cb cb, void *data,
                   sb_resend_req_t **reqp);

/* The callback will not fire; data may be freed once this returns. */
void sb_resend_cancel(sb_resend_req_t *req);

#endif
