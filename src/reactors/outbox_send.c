/* The outbox's provider requests: Twilio's Messages.json, Resend's /emails, and reconciling an
 * attempt of unknown outcome with Twilio's list of messages.  See outbox.h. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "providers/form.h"
#include "reactors/messaging_int.h"
#include "reactors/outbox_int.h"

#define MAX_MEDIA 10
#define RECONCILE_MARGIN_US (300LL * 1000000) /* clocks differ; Twilio's dates are to the second */

static const char *str(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static bool same(const char *a, const char *b)
{
    return a != NULL && b != NULL && strcmp(a, b) == 0;
}

bool sb__ob_is_twilio(const sb__ob_job_t *j)
{
    const char *ch = str(j->msg, "channel");
    return ch != NULL && (strcmp(ch, "sms") == 0 || strcmp(ch, "mms") == 0 || strcmp(ch, "whatsapp") == 0);
}

void sb__ob_cancel_request(sb__ob_job_t *j)
{
    if (j->tw != NULL)
        sb_twilio_cancel(j->tw);
    if (j->rs != NULL)
        sb_resend_cancel(j->rs);
    j->tw = NULL;
    j->rs = NULL;
}

static const sb_config_t *cfg(void)
{
    return sb_messaging_config(sb_messaging_current());
}

/* The retry decision for an attempt that did not succeed; after_sent because the outbox knows what
 * to do about a request that may have arrived (reconcile), unlike a blind retry. */
static bool retry_after(const sb__ob_job_t *j, const sb_http_response_t *h, uint64_t *delay_ms)
{
    sb_http_retry_t policy = j->o->opts.retry;
    policy.after_sent = true;
    return h != NULL && sb_http_retry_next(&policy, j->attempts, h, randombytes_random(), delay_ms);
}

/* "whatsapp:" + number for WhatsApp, the number otherwise. */
static void address(const sb__ob_job_t *j, const char *number, char *out, size_t cap)
{
    bool wa = strcmp(str(j->msg, "channel"), "whatsapp") == 0;
    snprintf(out, cap, "%s%s", wa ? "whatsapp:" : "", number);
}

static const char *sender(const sb__ob_job_t *j)
{
    const char *from = str(j->msg, "from");
    return from != NULL && from[0] != '\0' ? from : j->conf->first_number;
}

static bool twilio_client(sb__ob_job_t *j, sb_twilio_t *tw)
{
    sb_http_client_t *http = sb_http_client_get(j->o->loop);
    const sb_wsconf_t *c = j->conf;
    if (http == NULL || sb_twilio_init(tw, http, cfg()->twilio_api_base, c->account_sid, c->auth_token) != 0)
        return false;
    if (c->api_key_sid[0] != '\0' && c->api_key_secret[0] != '\0' &&
        sb_twilio_use_api_key(tw, c->api_key_sid, c->api_key_secret) != 0)
        return false;
    return true;
}

/* ---- Twilio ---------------------------------------------------------------------------------------- */

static void on_twilio(const sb_twilio_result_t *res, void *data)
{
    sb__ob_job_t *j = data;
    j->tw = NULL;
    if (res->error == 0 && res->sid != NULL) {
        j->unknown = false;
        sb__ob_sent(j, res->sid);
        return;
    }
    /* Twilio said no (a bad number, an unverified sender...): final.  429 is "later", not "no". */
    if (res->error == SB_EREJECTED && res->status >= 400 && res->status < 500 && res->status != 429) {
        char code[32];
        snprintf(code, sizeof(code), "%d", res->code != 0 ? res->code : (int)res->status);
        j->unknown = false;
        sb__ob_failed(j, code, res->message);
        return;
    }
    const sb_http_response_t *h = res->http;
    /* A 5xx or 429 answer means Twilio made nothing; a transport error after the request went out,
     * or a 2xx we cannot read, means it may have. */
    bool ambiguous = h == NULL || (h->error != 0 && h->sent) || res->error == SB_ECODEC;
    j->unknown = ambiguous;
    uint64_t delay = 0;
    if (retry_after(j, h, &delay)) {
        j->o->stats.retries++;
        sb_log_info("outbox", "message %s: attempt %d failed (%s), again in %llu ms", j->message_id,
                    j->attempts, res->message, (unsigned long long)delay);
        sb__ob_later(j, delay, ambiguous ? sb__ob_reconcile : sb__ob_attempt);
        return;
    }
    if (ambiguous) {
        j->final = true;
        sb__ob_reconcile(j);
        return;
    }
    char code[32];
    if (res->status > 0)
        snprintf(code, sizeof(code), "http_%ld", res->status);
    else
        snprintf(code, sizeof(code), "provider_unavailable");
    sb__ob_failed(j, code, res->message);
}

static void send_twilio(sb__ob_job_t *j)
{
    const sb_wsconf_t *c = j->conf;
    if (!c->twilio) {
        sb__ob_failed(j, "not_configured", "Twilio is not set up for the workspace");
        return;
    }
    const char *from = sender(j), *to = str(j->msg, "to");
    if (from == NULL || from[0] == '\0' || to == NULL) {
        sb__ob_failed(j, "no_sender", "the workspace has no number to send from");
        return;
    }
    char to_a[32], from_a[32], callback[1024];
    address(j, to, to_a, sizeof(to_a));
    address(j, from, from_a, sizeof(from_a));
    snprintf(callback, sizeof(callback), "%s/webhooks/twilio/messaging/status?w=%s&c=%s&m=%s",
             cfg()->public_url, j->workspace_id, j->contact_id, j->message_id);
    const char *media[MAX_MEDIA];
    size_t n = 0;
    size_t i;
    const json_t *v;
    json_array_foreach(json_object_get(j->msg, "media_urls"), i, v)
    {
        if (n < MAX_MEDIA && json_is_string(v))
            media[n++] = json_string_value(v);
    }
    const char *body = str(j->msg, "body");
    sb_twilio_message_t m = {.to = to_a,
                             .from = from_a,
                             .body = body != NULL && body[0] != '\0' ? body : NULL,
                             .media_urls = media,
                             .n_media = n,
                             .status_callback = callback};
    sb_twilio_t tw;
    memset(&tw, 0, sizeof(tw));
    bool ok = twilio_client(j, &tw);
    tw.fresh_connection = true; /* never a silent second send by libcurl (http_client.h) */
    int rc = ok ? sb_twilio_send_message(&tw, &m, on_twilio, j, &j->tw) : SB_ESHUTDOWN;
    sb_twilio_clear(&tw);
    if (rc == SB_EINVAL || rc == SB_EUTF8 || rc == SB_ETOOBIG) {
        j->unknown = false; /* nothing went out */
        sb__ob_failed(j, "invalid", "the message cannot be sent as it is");
    } else if (rc != 0) {
        sb__ob_later(j, 1000, sb__ob_reconcile); /* the loop is stopping or out of memory */
    }
}

/* ---- reconciling with Twilio's list ------------------------------------------------------------------- */

/* Twilio's dates: "Sat, 21 Nov 2026 16:00:00 +0000".  Microseconds, or 0 when unreadable. */
static int64_t rfc2822_us(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    if (s == NULL || strptime(s, "%a, %d %b %Y %H:%M:%S %z", &tm) == NULL)
        return 0;
    long off = tm.tm_gmtoff;
    return ((int64_t)timegm(&tm) - off) * 1000000;
}

static void on_list(const sb_twilio_result_t *res, void *data)
{
    sb__ob_job_t *j = data;
    j->tw = NULL;
    if (res->error != 0) {
        uint64_t wait = 1000ull << (j->reconciles < 5 ? j->reconciles : 5);
        j->reconciles++;
        sb_log_warn("outbox", "message %s: cannot look it up at Twilio (%s): again in %llu ms", j->message_id,
                    res->message, (unsigned long long)wait);
        sb__ob_later(j, wait, sb__ob_reconcile);
        return;
    }
    char to_a[32], from_a[32];
    address(j, str(j->msg, "to"), to_a, sizeof(to_a));
    address(j, sender(j), from_a, sizeof(from_a));
    const char *body = str(j->msg, "body");
    size_t i;
    const json_t *m;
    const char *found = NULL;
    json_array_foreach(json_object_get(res->json, "messages"), i, m)
    {
        const char *sid = str(m, "sid"), *b = str(m, "body");
        int64_t created = rfc2822_us(str(m, "date_created"));
        if (sid == NULL || json_object_get(j->known_pids, sid) != NULL)
            continue;
        if (!same(str(m, "to"), to_a) || !same(str(m, "from"), from_a) ||
            !same(b != NULL ? b : "", body != NULL ? body : ""))
            continue;
        if (created != 0 && created < j->attempted_at_us - RECONCILE_MARGIN_US)
            continue;
        found = sid;
        break;
    }
    j->unknown = false;
    if (found != NULL) {
        j->o->stats.reconciled++;
        sb_log_info("outbox", "message %s: found at Twilio as %s after an attempt of unknown outcome",
                    j->message_id, found);
        sb__ob_sent(j, found);
    } else if (j->final) {
        sb__ob_failed(j, "provider_unavailable", "the provider could not be reached");
    } else {
        sb__ob_attempt(j); /* it never arrived: send it */
    }
}

void sb__ob_reconcile(sb__ob_job_t *j)
{
    int64_t due = j->attempted_at_us + (int64_t)j->o->opts.reconcile_after_ms * 1000;
    int64_t now = sb_clock_now_us();
    if (due > now) {
        /* The request may still be on its way: wait until it cannot be. */
        sb__ob_later(j, (uint64_t)((due - now) / 1000) + 1, sb__ob_reconcile);
        return;
    }
    if (j->conf == NULL || !j->conf->twilio) {
        sb__ob_failed(j, "not_configured", "Twilio is not set up for the workspace");
        return;
    }
    char to_a[32], from_a[32], date[16];
    address(j, str(j->msg, "to"), to_a, sizeof(to_a));
    address(j, sender(j), from_a, sizeof(from_a));
    /* A day before the attempt: DateSent is a date in UTC, and clocks differ. */
    time_t day = (time_t)(j->attempted_at_us / 1000000) - 86400;
    struct tm tm;
    gmtime_r(&day, &tm);
    strftime(date, sizeof(date), "%Y-%m-%d", &tm);
    sb_buf_t path = SB_BUF_INIT;
    sb_buf_puts(&path, "Messages.json?");
    sb_form_add(&path, "To", to_a);
    sb_form_add(&path, "From", from_a);
    sb_form_add(&path, "DateSent>", date);
    sb_form_add(&path, "PageSize", "200");
    sb_twilio_t tw;
    memset(&tw, 0, sizeof(tw));
    int rc = twilio_client(j, &tw) ? sb_twilio_request(&tw, "GET", path.data, NULL, on_list, j, &j->tw)
                                   : SB_ESHUTDOWN;
    sb_twilio_clear(&tw);
    sb_buf_free(&path);
    if (rc != 0)
        sb__ob_later(j, 1000, sb__ob_reconcile);
}

/* ---- Resend ------------------------------------------------------------------------------------------ */

static void on_resend(const sb_resend_result_t *res, void *data)
{
    sb__ob_job_t *j = data;
    j->rs = NULL;
    j->unknown = false; /* the Idempotency-Key makes a resend safe: nothing to reconcile */
    if (res->error == 0 && res->id != NULL) {
        sb__ob_sent(j, res->id);
        return;
    }
    if (res->error == SB_EREJECTED && res->status >= 400 && res->status < 500 && res->status != 429) {
        sb__ob_failed(j, res->name[0] ? res->name : "rejected", res->message);
        return;
    }
    uint64_t delay = 0;
    if (retry_after(j, res->http, &delay)) {
        j->o->stats.retries++;
        sb__ob_later(j, delay, sb__ob_attempt);
        return;
    }
    sb__ob_failed(j, res->status > 0 ? "provider_error" : "provider_unavailable", res->message);
}

static void send_email(sb__ob_job_t *j)
{
    const sb_wsconf_t *c = j->conf;
    const char *to = str(j->msg, "to");
    if (c->email_from[0] == '\0' || c->resend_key[0] == '\0') {
        sb__ob_failed(j, "not_configured", "e-mail is not set up for the workspace");
        return;
    }
    if (to == NULL) {
        sb__ob_failed(j, "invalid", "the message has no recipient");
        return;
    }
    sb_http_client_t *http = sb_http_client_get(j->o->loop);
    sb_resend_t rs;
    memset(&rs, 0, sizeof(rs));
    char from[512];
    if (c->email_from_name[0] != '\0')
        snprintf(from, sizeof(from), "%s <%s>", c->email_from_name, c->email_from);
    else
        snprintf(from, sizeof(from), "%s", c->email_from);
    const char *subject = str(j->msg, "subject");
    const sb_resend_tag_t tags[] = {
        {"message_id", j->message_id}, {"contact_id", j->contact_id}, {"workspace_id", j->workspace_id}};
    sb_resend_email_t e = {.from = from,
                           .to = &to,
                           .n_to = 1,
                           .subject = subject != NULL && subject[0] != '\0' ? subject : "(no subject)",
                           .text = str(j->msg, "body"),
                           .idempotency_key = j->message_id,
                           .tags = tags,
                           .n_tags = 3};
    int rc = http != NULL && sb_resend_init(&rs, http, cfg()->resend_api_base, c->resend_key) == 0
                 ? sb_resend_send(&rs, &e, on_resend, j, &j->rs)
                 : SB_ESHUTDOWN;
    sb_resend_clear(&rs);
    if (rc == SB_EINVAL || rc == SB_EUTF8) {
        j->unknown = false;
        sb__ob_failed(j, "invalid", "the e-mail cannot be sent as it is");
    } else if (rc != 0) {
        sb__ob_later(j, 1000, sb__ob_attempt);
    }
}

void sb__ob_send(sb__ob_job_t *j)
{
    const char *ch = str(j->msg, "channel");
    if (ch != NULL && strcmp(ch, "chat") == 0) {
        /* Chat needs no provider: the visitor's stream shows it once it is in the log. */
        char pid[8 + SB_UUID_STRLEN];
        snprintf(pid, sizeof(pid), "chat:%s", j->message_id);
        j->unknown = false;
        sb__ob_sent(j, pid);
    } else if (ch != NULL && strcmp(ch, "email") == 0) {
        send_email(j);
    } else if (sb__ob_is_twilio(j)) {
        send_twilio(j);
    } else {
        j->unknown = false;
        sb__ob_failed(j, "invalid", "unknown channel");
    }
}
