/* Internal to the webhook handlers (webhooks_twilio.c, webhooks_resend.c): a request's pending
 * state that survives the request's disposal, and the shared answers. */
#ifndef SB_HTTP_WEBHOOKS_INT_H
#define SB_HTTP_WEBHOOKS_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include <h2o.h>

#include "actors/runtime.h"
#include "core/config.h"
#include "http/webhooks.h"
#include "providers/form.h"
#include "reactors/wsconf.h"

typedef struct sb__wh_link_s sb__wh_link_t;

/* The head of every handler's pending state (heap-allocated: an HTTP/2 reset disposes the request,
 * and its pool, at once, while an actor's answer may still be on its way). */
typedef struct sb__wh_s {
    h2o_req_t *req; /* NULL once h2o has disposed the request */
    sb__wh_link_t *link;
    const sb_config_t *cfg;
    char request_id[132];
} sb__wh_t;

/* The head of a Twilio-signed webhook's pending state (messaging, voice, call control): the form,
 * what the signature covers, and the workspace's configuration once verified. */
typedef struct {
    sb__wh_t h;
    int kind; /* the handler's own enum */
    sb_form_t form;
    char *url; /* the URL the signature covers (malloc'd) */
    size_t url_len;
    char sig[64]; /* X-Twilio-Signature */
    size_t sig_len;
    const sb_wsconf_t *conf; /* referenced once verified, else NULL */
    bool reloaded;
} sb__wh_signed_t;

/* Reads s->form's fields into the rest of the state s heads; nonzero, with *field the culprit (or
 * NULL), answers 400 (sb__wh_reply_malformed). */
typedef int (*sb__wh_parse_cb)(sb__wh_signed_t *s, const char **field);

/* Allocates a zeroed state of size bytes headed by an sb__wh_signed_t of kind, ties it to req,
 * reads the form (415/413/400), parses it with parse (if not NULL; 400), then reads the signature
 * and its URL (403 without one).  NULL once it has answered (500 when out of memory). */
void *sb__wh_begin_signed(h2o_req_t *req, const sb_config_t *cfg, size_t size, int kind,
                          sb__wh_parse_cb parse);
/* Unties s from its request, releases what the head holds and frees the whole state. */
void sb__wh_signed_free(sb__wh_signed_t *s);

/* Ties w to req: when h2o disposes req, w->req becomes NULL. */
void sb__wh_attach(sb__wh_t *w, h2o_req_t *req, const sb_config_t *cfg);
/* Unties w (call before freeing it while the request may still be alive). */
void sb__wh_detach(sb__wh_t *w);

/* True when req's Content-Type is type (parameters after ';' ignored; case-insensitive). */
bool sb__wh_content_type_is(h2o_req_t *req, const char *type);

/* The value of request header name (lowercase), or NULL; *len gets its length. */
const char *sb__wh_header(h2o_req_t *req, const char *name, size_t *len);

/* The form of a Twilio request into *form: 415 for another content type, 413 or 400 for a body
 * that is not a form (answered through w, which must be attached).  False when it answered. */
bool sb__wh_read_form(sb__wh_t *w, sb_form_t *form);
/* X-Twilio-Signature into sig (cap bytes; *sig_len) and the URL it must sign (*url, malloc'd, the
 * caller frees it; *url_len).  False, having answered 403 (no signature) or 500, otherwise. */
bool sb__wh_read_signature(sb__wh_t *w, char *sig, size_t cap, size_t *sig_len, char **url, size_t *url_len);

/* The URL Twilio requested: cfg->public_url + the path and query as received.  malloc'd; NULL on
 * allocation failure. */
char *sb__wh_url(h2o_req_t *req, const sb_config_t *cfg, size_t *len);

/* Answers: Twilio's empty TwiML; an empty 200; errors in SPEC §5's shape (counted). */
void sb__wh_reply_twiml(sb__wh_t *w);
void sb__wh_reply_ok(sb__wh_t *w);
void sb__wh_reply_error(sb__wh_t *w, int status, const char *code, const char *message, const char *field);
/* 400 invalid "<field> is missing or malformed" for a form field. */
void sb__wh_reply_malformed(sb__wh_t *w, const char *field);
/* The answer for a failed ask: the decider's rejection, or 503 / 500 for the runtime's failures. */
void sb__wh_reply_ask_error(sb__wh_t *w, const sb_ask_reply_t *reply);
/* The answer for a negative code (SB_EOVERLOAD, SB_EDBDOWN ... -> 503; others 500). */
void sb__wh_reply_errcode(sb__wh_t *w, int err);

/* Counters (webhooks.h), one cache line per loop: a counter both loops incremented was a line each
 * wrote on every webhook.  A loop counts in slot index % SB__WH_STAT_SLOTS (threads off the loops in
 * slot 0); slots stay atomic since loops of different groups, or past the slots, may share one.
 * sb_webhooks_get_stats adds them up. */
#define SB__WH_STAT_SLOTS 16
typedef struct {
    _Alignas(64) _Atomic unsigned long long inbound;
    _Atomic unsigned long long statuses, email_events, forbidden, malformed, failed;
} sb__wh_stats_t;
extern sb__wh_stats_t sb__wh_stats[SB__WH_STAT_SLOTS];
sb__wh_stats_t *sb__wh_stats_here(void);
#define SB__WH_COUNT(field) atomic_fetch_add_explicit(&sb__wh_stats_here()->field, 1, memory_order_relaxed)

/* Route registration per file. */
int sb__wh_twilio_routes(sb_router_t *r, const sb_config_t *cfg);
int sb__wh_resend_routes(sb_router_t *r, const sb_config_t *cfg);
int sb__wh_voice_routes(sb_router_t *r, const sb_config_t *cfg);
int sb__wh_calls_routes(sb_router_t *r, const sb_config_t *cfg); /* webhooks_calls.c */

#endif
