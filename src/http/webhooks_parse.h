/* What Twilio and Resend post to our webhooks, read into plain structs (SPEC §7).  Pure functions,
 * no I/O: the handlers (webhooks_twilio.c, webhooks_resend.c) check signatures, route and record;
 * these only read and validate, so every rule about the parameters is unit-tested and fuzzed.
 *
 * Results borrow from their input (the parsed form, or the JSON document): they live as long as it
 * does.  A failure names the offending parameter in *field, for the 400 answer. */
#ifndef SB_HTTP_WEBHOOKS_PARSE_H
#define SB_HTTP_WEBHOOKS_PARSE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/phone.h"
#include "core/uuid.h"
#include "providers/form.h"

#define SB_WH_MAX_MEDIA 10 /* Twilio's limit per message */
#define SB_WH_URL_MAX 2048

/* An inbound SMS, MMS or WhatsApp message (POST /webhooks/twilio/messaging). */
typedef struct sb_wh_inbound_s {
    const char *message_sid; /* MessageSid (or SmsMessageSid, SmsSid): "SM..."/"MM..." */
    const char *account_sid; /* "AC..." */
    const char *channel;     /* "sms", "mms" (media attached) or "whatsapp" (whatsapp: addresses) */
    char from[SB_PHONE_MAX]; /* E.164, without any whatsapp: prefix */
    char to[SB_PHONE_MAX];   /* our number, E.164 */
    const char *body;        /* "" when absent */
    const char *media[SB_WH_MAX_MEDIA];
    int n_media;
    const char *profile_name; /* WhatsApp's ProfileName, or NULL */
} sb_wh_inbound_t;

/* Reads an inbound message.  0, or SB_EINVAL with *field naming the parameter that is missing or
 * malformed: a SID that is not two letters and 32 hex digits, From/To that are not E.164 (a short
 * code or alphanumeric sender cannot be filed under a contact), whatsapp: on one side only,
 * NumMedia not 0..10 or a MediaUrlN missing or not http(s). */
int sb_wh_parse_inbound(const sb_form_t *f, sb_wh_inbound_t *out, const char **field);

/* A MessageStatus callback (POST /webhooks/twilio/messaging/status). */
typedef struct sb_wh_status_s {
    const char *message_sid;
    const char *account_sid;
    /* What it means for the contact decider's RecordMessageStatus: "sent", "delivered", "read",
     * "failed", "undelivered"; NULL for Twilio's intermediate states (accepted, queued, sending,
     * scheduled, receiving, received), which record nothing. */
    const char *status;
    const char *twilio_status; /* MessageStatus as sent */
    const char *error_code;    /* ErrorCode (digits), or NULL */
    const char *error;         /* ErrorMessage, or NULL */
    char from[SB_PHONE_MAX];   /* our number ("" when absent or not a phone number) */
} sb_wh_status_t;

/* Reads a status callback.  0, or SB_EINVAL with *field set (MessageSid, AccountSid or
 * MessageStatus missing or malformed, an unknown MessageStatus, an ErrorCode that is not 1..10
 * digits). */
int sb_wh_parse_status(const sb_form_t *f, sb_wh_status_t *out, const char **field);

/* The identifiers we put in the StatusCallback URL's query when sending ("?w=<workspace>&c=<contact>
 * &m=<message>"), read back.  True when all three are present and are uuids (lower-cased into the
 * buffers).  query: the raw query string without '?', query_len bytes. */
typedef struct sb_wh_ids_s {
    char workspace[SB_UUID_STRLEN + 1];
    char contact[SB_UUID_STRLEN + 1];
    char message[SB_UUID_STRLEN + 1];
} sb_wh_ids_t;
bool sb_wh_parse_ids(const char *query, size_t query_len, sb_wh_ids_t *out);

/* A Resend (svix-delivered) e-mail event: {"type": "email.delivered", "created_at", "data":
 * {"email_id", "from", "to": [...], "subject", "tags": {...} | [{"name", "value"}]}}. */
typedef enum sb_wh_email_kind_e {
    SB_WH_EMAIL_IGNORED = 0, /* a type that records nothing (email.delivery_delayed, ...) */
    SB_WH_EMAIL_STATUS,      /* status names RecordMessageStatus's status */
    SB_WH_EMAIL_COMPLAINED,  /* the recipient marked it as spam: opt them out of e-mail */
} sb_wh_email_kind_t;

typedef struct sb_wh_email_s {
    const char *type;     /* "email.delivered", ... */
    const char *email_id; /* Resend's id (our provider id) */
    sb_wh_email_kind_t kind;
    const char *status;     /* with SB_WH_EMAIL_STATUS: sent, delivered, read, undelivered */
    const char *error_code; /* "bounced" for a bounce, else NULL */
    const char *error;      /* the bounce's message, or NULL */
    const char *to;         /* the first recipient, or NULL */
    /* Our ids from the email's tags (message_id, contact_id, workspace_id) when present. */
    bool has_ids;
    sb_wh_ids_t ids;
} sb_wh_email_t;

/* Reads a Resend event (doc: the parsed body, borrowed).  0, or SB_EINVAL with *field set. */
int sb_wh_parse_email(const json_t *doc, sb_wh_email_t *out, const char **field);

/* The message id we give an inbound provider message: a name-based uuid of "<provider>:<sid>", so a
 * provider's retry names the same message however long after, in any process. */
void sb_wh_inbound_message_id(const char *provider, const char *sid, char out[SB_UUID_STRLEN + 1]);

#endif
