/* Internal to the contact decider, which spans contact.c (profile, pipeline, opt-outs, notes) and
 * contact_messages.c (messages). */
#ifndef SB_ACTORS_CONTACT_INT_H
#define SB_ACTORS_CONTACT_INT_H

#include "actors/decider.h"

#include <stdbool.h>

/* Bounds on a contact's state (docs/events.md explains why they are safe). */
#define SB_CONTACT_SETTLED_WINDOW 256   /* settled messages kept, newest */
#define SB_CONTACT_PROVIDER_WINDOW 1024 /* inbound provider ids kept, newest */
#define SB_CONTACT_MAX_PENDING 500      /* scheduled + queued messages at once */
#define SB_CONTACT_MAX_NOTES 2000

/* Decides a message command (SendMessage, DispatchScheduledMessage, CancelScheduledMessage,
 * RecordMessageStatus, ReceiveMessage, RecordSendAttempt) on a created contact; deleted is the
 * state's "deleted" (the caller has read it).  Returns 1 when type is not a message command, else
 * as decide. */
int sb__contact_message_decide(const json_t *state, bool deleted, const json_t *cmd, const char *type,
                               const sb_decide_ctx_t *ctx, sb_devents_t *out, sb_derror_t *err);
/* Applies a message event; false when ev is not one. */
bool sb__contact_message_evolve(json_t *state, const sb_devent_t *ev);

/* The opt-out group of a channel: "sms" for sms and mms, "whatsapp", "email", or NULL (chat). */
const char *sb__optout_group(const char *channel);

/* SMS segments for body: GSM-7 (160 septets alone, 153 per part; the extension characters take two
 * septets and never straddle parts) or, when any character is outside GSM-7, UCS-2 (70 code units
 * alone, 67 per part; surrogate pairs never straddle).  *encoding is "gsm7" or "ucs2".  An empty
 * body is one segment. */
int sb__sms_segments(const char *body, const char **encoding);

#endif
