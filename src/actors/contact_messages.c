/* Messages with a contact: sending, scheduling, delivery outcomes and inbound messages.
 *
 * Each message moves forward only:
 *   outbound: scheduled -> queued -> sent -> delivered -> read, or queued|sent -> failed|undelivered,
 *             or scheduled -> cancelled;
 *   inbound:  received -> read.
 * Provider callbacks arrive late, twice, or out of order; one that would move a message backwards or
 * sideways, or repeats what is known, decides nothing (zero events, not an error).
 *
 * State kept per contact (bounded; docs/events.md says why the bounds are safe):
 *   "messages": {"<id>": {"channel", "direction", "status", "provider_id", "content"?, "attempts"?,
 *       "attempted_at"?}} holding every
 *       pending message (scheduled or queued: the scheduler and the outbox will move each on; a
 *       scheduled one keeps its content, to queue at send time) and the newest settled ones.  An
 *       inbound message that is only received has {"channel", "direction": "inbound", "status":
 *       "received"}, one object per channel shared by every such entry of every contact (its
 *       provider id is in "provider_ids"; nothing reads it from the entry): most of a busy
 *       contact's entries, which then cost the state a key each rather than an object, and evolve
 *       no allocation.  Evolve copies a shared entry before changing it (own_entry);
 *   "settled": [ids], oldest first: messages that left pending, at most SB_CONTACT_SETTLED_WINDOW;
 *   "provider_ids": [ids], oldest first: recent inbound provider ids, for de-duplication;
 *   "provider_index": {"<id>": true | count}: the same ids as a set, so that the duplicate check is
 *       one lookup instead of a scan of up to SB_CONTACT_PROVIDER_WINDOW strings (true for an id the
 *       list holds once, the count when a log holds it more than once).  Evolve keeps the two in
 *       step; a state without the index (folded or snapshotted before it existed, or one with no
 *       inbound message yet) is checked against the list, and gets its index from the list with the
 *       next inbound message. */
#include "actors/contact_int.h"
#include "actors/dutil.h"
#include "core/error.h"

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#define MAX_MEDIA 10
#define URL_MAX 2048
#define BODY_MAX_CHARS 1600         /* SMS, MMS, WhatsApp and chat; Twilio's own limit */
#define EMAIL_BODY_MAX_CHARS 100000 /* e-mail carries longer text */
#define INBOUND_BODY_MAX_CHARS 100000
#define SCHEDULE_HORIZON_US (366LL * 24 * 3600 * 1000000)

static const char *const channels[] = {"sms", "mms", "whatsapp", "email", "chat", NULL};

/* The words every inbound message's event and state entry hold, made once (sb__const_str). */
static json_t *inbound_word(void)
{
    static json_t *_Atomic slot;
    return sb__const_str(&slot, "inbound");
}

static json_t *received_word(void)
{
    static json_t *_Atomic slot;
    return sb__const_str(&slot, "received");
}

/* The entry of a received inbound message on channel (one of channels[]): {"channel", "direction":
 * "inbound", "status": "received"}, made once per channel and never freed, with jansson's "not
 * counted" reference count like sb__const_str's words: shared by every such entry of every state,
 * on any loop, read-only (own_entry copies it before a change).  NULL for another channel, or when
 * memory ran out: the caller then makes an entry of its own. */
static json_t *received_entry(const char *channel)
{
    static json_t *_Atomic slots[sizeof channels / sizeof channels[0] - 1];
    size_t i = 0;
    while (channels[i] != NULL && strcmp(channels[i], channel) != 0)
        i++;
    if (channels[i] == NULL)
        return NULL;
    json_t *v = atomic_load_explicit(&slots[i], memory_order_acquire);
    if (v != NULL)
        return v;
    json_t *made = json_object();
    sb__put(&made, "channel", json_string_nocheck(channels[i]));
    sb__put(&made, "direction", inbound_word());
    sb__put(&made, "status", received_word());
    return sb__const_publish(&slots[i], made);
}

static bool is_shared_entry(const json_t *m)
{
    return m != NULL && m->refcount == (size_t)-1;
}

/* messages[id] (m) as the state's own object, to change: a shared entry (received_entry) is
 * replaced by a copy first.  NULL when m is NULL or the copy failed (the change is then lost, as
 * any change is when memory runs out). */
static json_t *own_entry(json_t *messages, const char *id, json_t *m)
{
    if (!is_shared_entry(m))
        return m;
    json_t *copy = json_deep_copy(m);
    if (copy == NULL || json_object_set_new_nocheck(messages, id, copy) != 0)
        return NULL;
    return copy;
}

/* v (a command's string) shared when its text is s (a normalised address that came in normalised:
 * the usual case), else a new string holding s. */
static json_t *same_or_new(const json_t *v, const char *s)
{
    if (json_is_string(v) && strcmp(json_string_value(v), s) == 0)
        return json_incref((json_t *)v);
    return json_string(s);
}
static const char *const statuses[] = {"sent", "delivered", "read", "failed", "undelivered", NULL};

/* ---- segments ------------------------------------------------------------------------------- */

static uint32_t next_cp(const unsigned char **p)
{
    const unsigned char *s = *p;
    uint32_t c = s[0];
    int n = 0;
    if (c >= 0xF0) {
        c &= 0x07;
        n = 3;
    } else if (c >= 0xE0) {
        c &= 0x0F;
        n = 2;
    } else if (c >= 0xC0) {
        c &= 0x1F;
        n = 1;
    }
    s++;
    for (int i = 0; i < n && (*s & 0xC0) == 0x80; i++, s++)
        c = (c << 6) | (*s & 0x3F);
    *p = s;
    return c;
}

/* Septets a code point takes in GSM 03.38 (default alphabet and its extension table), 0 if none. */
static int gsm_septets(uint32_t c)
{
    static const uint32_t basic[] = {
        '@',  0xA3,  '$',  0xA5,  0xE8,  0xE9,  0xF9,  0xEC,  0xF2,  0xC7,  '\n',  0xD8,  0xF8, '\r', 0xC5,
        0xE5, 0x394, '_',  0x3A6, 0x393, 0x39B, 0x3A9, 0x3A0, 0x3A8, 0x3A3, 0x398, 0x39E, 0xC6, 0xE6, 0xDF,
        0xC9, 0xA4,  0xA1, 0xC4,  0xD6,  0xD1,  0xDC,  0xA7,  0xBF,  0xE4,  0xF6,  0xF1,  0xFC, 0xE0,
    };
    static const uint32_t ext[] = {'^', '{', '}', '\\', '[', '~', ']', '|', 0x20AC, '\f'};
    if ((c >= ' ' && c <= '#') || (c >= '%' && c <= '?') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'))
        return 1;
    for (size_t i = 0; i < sizeof basic / sizeof basic[0]; i++)
        if (basic[i] == c)
            return 1;
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++)
        if (ext[i] == c)
            return 2;
    return 0;
}

/* Parts of `per` units each, never splitting one character's units, or 1 when all fit in `single`. */
static int parts(const char *body, bool gsm, int single, int per)
{
    int total = 0;
    for (const unsigned char *p = (const unsigned char *)body; *p;) {
        uint32_t c = next_cp(&p);
        total += gsm ? gsm_septets(c) : (c > 0xFFFF ? 2 : 1);
    }
    if (total <= single)
        return 1;
    int n = 1, used = 0;
    for (const unsigned char *p = (const unsigned char *)body; *p;) {
        uint32_t c = next_cp(&p);
        int w = gsm ? gsm_septets(c) : (c > 0xFFFF ? 2 : 1);
        if (used + w > per) {
            n++;
            used = 0;
        }
        used += w;
    }
    return n;
}

int sb__sms_segments(const char *body, const char **encoding)
{
    bool gsm = true;
    for (const unsigned char *p = (const unsigned char *)body; *p && gsm;)
        gsm = gsm_septets(next_cp(&p)) > 0;
    *encoding = gsm ? "gsm7" : "ucs2";
    return gsm ? parts(body, true, 160, 153) : parts(body, false, 70, 67);
}

/* ---- reading commands --------------------------------------------------------------------------- */

/* "media_urls" (an array, many) or "media_url" (one string, one): http(s) URLs, either NULL when
 * the command lacks it.  Always returns an array. */
static int read_media_of(const json_t *many, const json_t *one, json_t **out, sb_derror_t *err)
{
    json_t *list = json_array();
    *out = NULL;
    if (many != NULL && !json_is_null(many) && !json_is_array(many))
        goto bad;
    if (one != NULL && !json_is_null(one)) {
        if (!json_is_string(one))
            goto bad;
        json_array_append(list, (json_t *)one);
    }
    size_t i;
    const json_t *v;
    json_array_foreach(many, i, v)
    {
        if (!json_is_string(v))
            goto bad;
        json_array_append(list, (json_t *)v);
    }
    if (json_array_size(list) > MAX_MEDIA) {
        json_decref(list);
        return sb_reject(err, 400, "invalid", "media_urls", "at most %d media URLs", MAX_MEDIA);
    }
    json_array_foreach(list, i, v)
    {
        if (!sb__is_url(json_string_value(v), URL_MAX))
            goto bad;
    }
    *out = list;
    return 0;
bad:
    json_decref(list);
    return sb_reject(err, 400, "invalid", "media_urls", "media_urls must be http(s) URLs");
}

static int read_media(const json_t *cmd, json_t **out, sb_derror_t *err)
{
    return read_media_of(json_object_get(cmd, "media_urls"), json_object_get(cmd, "media_url"), out, err);
}

static bool is_phone_channel(const char *channel)
{
    return strcmp(channel, "sms") == 0 || strcmp(channel, "mms") == 0 || strcmp(channel, "whatsapp") == 0;
}

/* A message id in the command, and the message it names (NULL when unknown). */
static int read_message(const json_t *state, const json_t *cmd, const char **id, const json_t **m,
                        sb_derror_t *err)
{
    SB_TRY(sb__need_uuid(cmd, "message_id", id, err));
    *m = json_object_get(json_object_get(state, "messages"), *id);
    return 0;
}

static size_t pending_count(const json_t *state)
{
    size_t all = json_object_size(json_object_get(state, "messages"));
    size_t settled = json_array_size(json_object_get(state, "settled"));
    return all > settled ? all - settled : 0;
}

static bool opted_out(const json_t *state, const char *channel)
{
    const char *group = sb__optout_group(channel);
    return group != NULL && json_object_get(json_object_get(state, "opt_outs"), group) != NULL;
}

/* The recipient of an outbound message: `to` when given (it must be one of the contact's addresses
 * for the channel), else the contact's first; NULL for chat. */
static int recipient(const json_t *state, const json_t *cmd, const char *channel, const sb_decide_ctx_t *ctx,
                     char out[SB_EMAIL_MAX], sb_derror_t *err)
{
    const char *to;
    bool phone = is_phone_channel(channel);
    out[0] = '\0';
    if (strcmp(channel, "chat") == 0)
        return 0;
    const json_t *known = json_object_get(state, phone ? "phones" : "emails");
    SB_TRY(sb__opt_str(cmd, "to", 1, 320, &to, err));
    if (to == NULL) {
        if (json_array_size(known) == 0)
            return phone ? sb_reject(err, 409, "no_phone", "to", "this contact has no phone number")
                         : sb_reject(err, 409, "no_email", "to", "this contact has no e-mail address");
        strcpy(out, json_string_value(json_array_get(known, 0)));
        return 0;
    }
    SB_TRY(phone ? sb__phone(to, sb__ctx_country(ctx), "to", out, err) : sb__email(to, "to", out, err));
    if (sb__array_find(known, out, false) < 0)
        return sb_reject(err, 400, "unknown_recipient", "to", "to is not one of this contact's addresses");
    return 0;
}

static int sender(const json_t *cmd, const char *channel, const sb_decide_ctx_t *ctx, char out[SB_EMAIL_MAX],
                  sb_derror_t *err)
{
    const char *from;
    out[0] = '\0';
    SB_TRY(sb__opt_str(cmd, "from", 1, 320, &from, err));
    if (from == NULL || strcmp(channel, "chat") == 0)
        return 0;
    if (is_phone_channel(channel))
        return sb__phone(from, sb__ctx_country(ctx), "from", out, err);
    return sb__email(from, "from", out, err);
}

/* ---- commands ----------------------------------------------------------------------------------- */

static int send(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx, sb_devents_t *out,
                sb_derror_t *err)
{
    const char *id, *channel, *body, *subject;
    const json_t *m;
    json_t *media;
    char to[SB_EMAIL_MAX], from[SB_EMAIL_MAX], now[SB_RFC3339_LEN], at[SB_RFC3339_LEN];
    bool has_at;
    int64_t send_at;

    SB_TRY(read_message(state, cmd, &id, &m, err));
    if (m != NULL)
        return 0; /* a retry of a message already decided (ids come from the caller, unique) */
    SB_TRY(sb__need_enum(cmd, "channel", channels, &channel, err));
    bool email = strcmp(channel, "email") == 0;
    SB_TRY(sb__need_str(cmd, "body", 0, email ? EMAIL_BODY_MAX_CHARS : BODY_MAX_CHARS, &body, err));
    SB_TRY(sb__opt_str(cmd, "subject", 0, 998, &subject, err));
    if (subject != NULL && (!email || strpbrk(subject, "\r\n") != NULL))
        return sb_reject(err, 400, "invalid", "subject", "subject is a single line, for e-mail only");
    SB_TRY(sb__opt_time(cmd, "send_at", &has_at, &send_at, err));
    if (has_at && send_at > ctx->now_us + SCHEDULE_HORIZON_US)
        return sb_reject(err, 400, "invalid", "send_at", "send_at is more than a year ahead");
    SB_TRY(sender(cmd, channel, ctx, from, err));
    SB_TRY(recipient(state, cmd, channel, ctx, to, err));
    SB_TRY(read_media(cmd, &media, err));
    if (body[0] == '\0' && (email || json_array_size(media) == 0)) {
        json_decref(media);
        return sb_reject(err, 400, "required", "body", "body must not be empty");
    }
    /* An SMS with pictures is an MMS. */
    if (strcmp(channel, "sms") == 0 && json_array_size(media) > 0)
        channel = "mms";
    if (opted_out(state, channel)) {
        json_decref(media);
        return sb_reject(err, 409, "opted_out", "channel", "this contact opted out of %s", channel);
    }
    if (pending_count(state) >= SB_CONTACT_MAX_PENDING) {
        json_decref(media);
        return sb_reject(err, 409, "too_many_pending", "", "too many messages waiting to go out");
    }
    const char *encoding = NULL;
    int segments = 1;
    if (strcmp(channel, "sms") == 0)
        segments = sb__sms_segments(body, &encoding);
    bool scheduled = has_at && send_at > ctx->now_us;
    sb__now(ctx, now);
    if (scheduled)
        sb_clock_format_rfc3339(send_at, at);
    json_t *data = json_pack("{s:s, s:s, s:s, s:s?, s:s?, s:s, s:o, s:s?, s:i, s:s?, s:s?, s:s, s:s?}",
                             "message_id", id, "channel", channel, "direction", "outbound", "to",
                             to[0] ? to : NULL, "from", from[0] ? from : NULL, "body", body, "media_urls",
                             media, "subject", subject, "segments", segments, "encoding", encoding,
                             "author_id", ctx->user_id, "created_at", now, "send_at", scheduled ? at : NULL);
    return sb_devents_add(out, scheduled ? "MessageScheduled" : "MessageQueued", data);
}

/* The scheduler's tick: a due scheduled message is queued with the content it was scheduled with.
 * If the contact opted out in the meantime it fails instead, so it never stays pending forever. */
static int dispatch_scheduled(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx,
                              sb_devents_t *out, sb_derror_t *err)
{
    const char *id;
    const json_t *m;
    char now[SB_RFC3339_LEN];
    SB_TRY(read_message(state, cmd, &id, &m, err));
    if (m == NULL)
        return sb_reject(err, 404, "unknown_message", "message_id", "no such message");
    const char *status = sb__str(m, "status");
    if (sb__eq(status, "cancelled"))
        return sb_reject(err, 409, "message_cancelled", "message_id", "this message was cancelled");
    if (!sb__eq(status, "scheduled"))
        return 0; /* already dispatched */
    sb__now(ctx, now);
    if (opted_out(state, sb__str(m, "channel")))
        return sb_devents_add(out, "MessageFailed",
                              json_pack("{s:s, s:s, s:s, s:s, s:n, s:s}", "message_id", id, "status",
                                        "failed", "code", "opted_out", "error",
                                        "the contact opted out before send time", "provider_id", "at", now));
    json_t *data = json_deep_copy(json_object_get(m, "content"));
    if (data == NULL)
        data = json_object();
    json_object_set_new(data, "message_id", json_string(id));
    json_object_set_new(data, "queued_at", json_string(now));
    return sb_devents_add(out, "MessageQueued", data);
}

static int cancel_scheduled(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx,
                            sb_devents_t *out, sb_derror_t *err)
{
    const char *id;
    const json_t *m;
    char now[SB_RFC3339_LEN];
    SB_TRY(read_message(state, cmd, &id, &m, err));
    if (m == NULL)
        return sb_reject(err, 404, "unknown_message", "message_id", "no such message");
    const char *status = sb__str(m, "status");
    if (sb__eq(status, "cancelled"))
        return 0;
    if (!sb__eq(status, "scheduled"))
        return sb_reject(err, 409, "not_scheduled", "message_id",
                         "only a scheduled message can be cancelled (it is %s)", status ? status : "unknown");
    sb__now(ctx, now);
    return sb_devents_add(out, "MessageScheduleCancelled",
                          json_pack("{s:s, s:s?, s:s}", "message_id", id, "by", ctx->user_id, "at", now));
}

/* How far along a message is; a status update only ever moves it further. */
static int rank(const char *status)
{
    static const char *const order[] = {"scheduled", "queued", "sent", "delivered", "read"};
    for (int i = 0; i < 5; i++)
        if (sb__eq(status, order[i]))
            return i;
    return 5; /* failed, undelivered, cancelled: final */
}

static int record_status(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx,
                         sb_devents_t *out, sb_derror_t *err)
{
    const char *id, *status, *pid, *error;
    const json_t *m;
    char now[SB_RFC3339_LEN], code[32] = "";
    SB_TRY(read_message(state, cmd, &id, &m, err));
    SB_TRY(sb__need_enum(cmd, "status", statuses, &status, err));
    SB_TRY(sb__opt_str(cmd, "provider_id", 1, 128, &pid, err));
    SB_TRY(sb__opt_str(cmd, "error", 1, 500, &error, err));
    const json_t *c = json_object_get(cmd, "error_code");
    if (json_is_integer(c))
        snprintf(code, sizeof code, "%lld", (long long)json_integer_value(c));
    else if (json_is_string(c) && json_string_length(c) < sizeof code)
        snprintf(code, sizeof code, "%s", json_string_value(c));
    else if (c != NULL && !json_is_null(c))
        return sb_reject(err, 400, "invalid", "error_code",
                         "error_code must be a short string or an integer");
    if (m == NULL)
        return sb_reject(err, 404, "unknown_message", "message_id", "no such message");

    const char *cur = sb__str(m, "status");
    bool inbound = sb__eq(sb__str(m, "direction"), "inbound");
    sb__now(ctx, now);
    if (inbound) {
        if (strcmp(status, "read") != 0)
            return sb_reject(err, 409, "invalid_transition", "status", "an inbound message can only be read");
        if (!sb__eq(cur, "received"))
            return 0;
        return sb_devents_add(out, "MessageRead",
                              json_pack("{s:s, s:n, s:s?, s:s}", "message_id", id, "provider_id", "by",
                                        ctx->user_id, "at", now));
    }
    if (sb__eq(cur, "scheduled") || sb__eq(cur, "cancelled"))
        return sb_reject(err, 409, "invalid_transition", "status", "a %s message has not been sent", cur);
    if (sb__eq(cur, "failed") || sb__eq(cur, "undelivered"))
        return 0; /* final */
    int from = rank(cur);
    bool failure = strcmp(status, "failed") == 0 || strcmp(status, "undelivered") == 0;
    /* A failure after delivery is a stale callback; so is any status not ahead of the current. */
    if (failure ? from > rank("sent") : rank(status) <= from)
        return 0;
    const char *known_pid = sb__str(m, "provider_id");
    if (pid == NULL)
        pid = known_pid;
    if (strcmp(status, "sent") == 0) {
        if (pid == NULL)
            return sb_reject(err, 400, "required", "provider_id", "a sent message needs the provider's id");
        return sb_devents_add(out, "MessageSent",
                              json_pack("{s:s, s:s, s:s}", "message_id", id, "provider_id", pid, "at", now));
    }
    if (failure)
        return sb_devents_add(out, "MessageFailed",
                              json_pack("{s:s, s:s, s:s?, s:s?, s:s?, s:s}", "message_id", id, "status",
                                        status, "code", code[0] ? code : NULL, "error", error, "provider_id",
                                        pid, "at", now));
    return sb_devents_add(out, strcmp(status, "delivered") == 0 ? "MessageDelivered" : "MessageRead",
                          json_pack("{s:s, s:s?, s:s}", "message_id", id, "provider_id", pid, "at", now));
}

/* The outbox, just before it asks a provider to send: records the attempt, so that after a crash
 * the next outbox knows the provider may already have the message and reconciles before sending
 * again.  The attempt number must be the next one: two outboxes (a lease changing hands) cannot
 * both own one attempt. */
static int record_attempt(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx,
                          sb_devents_t *out, sb_derror_t *err)
{
    const char *id;
    const json_t *m;
    char now[SB_RFC3339_LEN];
    SB_TRY(read_message(state, cmd, &id, &m, err));
    const json_t *a = json_object_get(cmd, "attempt");
    if (!json_is_integer(a) || json_integer_value(a) < 1 || json_integer_value(a) > 1000)
        return sb_reject(err, 400, "invalid", "attempt", "attempt must be an integer from 1 to 1000");
    if (m == NULL)
        return sb_reject(err, 404, "unknown_message", "message_id", "no such message");
    if (!sb__eq(sb__str(m, "status"), "queued"))
        return sb_reject(err, 409, "not_queued", "message_id", "the message is %s, not waiting to be sent",
                         sb__str(m, "status") ? sb__str(m, "status") : "unknown");
    if (opted_out(state, sb__str(m, "channel")))
        return sb_reject(err, 409, "opted_out", "channel", "the contact opted out of %s",
                         sb__str(m, "channel"));
    json_int_t done = json_integer_value(json_object_get(m, "attempts"));
    if (json_integer_value(a) != done + 1)
        return sb_reject(err, 409, "attempt_conflict", "attempt", "attempt %lld was recorded already",
                         (long long)done);
    sb__now(ctx, now);
    return sb_devents_add(
        out, "MessageSendAttempted",
        json_pack("{s:s, s:I, s:s}", "message_id", id, "attempt", json_integer_value(a), "at", now));
}

/* Whether pid is one of the recent inbound provider ids (see the state's description above). */
static bool provider_seen(const json_t *state, const char *pid)
{
    const json_t *index = json_object_get(state, "provider_index");
    if (json_is_object(index))
        return json_object_get(index, pid) != NULL;
    return sb__array_find(json_object_get(state, "provider_ids"), pid, false) >= 0;
}

/* The fields a ReceiveMessage command may carry, NULL for those it lacks. */
typedef struct {
    const json_t *id, *channel, *from, *to, *body, *pid, *subject, *listed, *media_many, *media_one;
} inbound_fields_t;

#define KEY_IS(k, n, lit) ((n) == sizeof(lit) - 1 && memcmp((k), (lit), sizeof(lit) - 1) == 0)

/* Finds them in one walk over the command's keys, rather than a hash and a table lookup for each
 * of the ten names (an inbound message's command has about nine keys, every one of them either
 * read here or "type").  The same result as json_object_get for each name: a key matches when its
 * length and bytes are the name's, and an object holds a key once. */
static void inbound_fields(const json_t *cmd, inbound_fields_t *f)
{
    memset(f, 0, sizeof *f);
    for (void *it = json_object_iter((json_t *)cmd); it != NULL;
         it = json_object_iter_next((json_t *)cmd, it)) {
        const char *k = json_object_iter_key(it);
        size_t n = json_object_iter_key_len(it);
        const json_t *v = json_object_iter_value(it);
        const json_t **slot = NULL;
        switch (n) {
        case 2:
            slot = KEY_IS(k, n, "to") ? &f->to : NULL;
            break;
        case 4:
            slot = KEY_IS(k, n, "from") ? &f->from : KEY_IS(k, n, "body") ? &f->body : NULL;
            break;
        case 7:
            slot = KEY_IS(k, n, "channel") ? &f->channel : KEY_IS(k, n, "subject") ? &f->subject : NULL;
            break;
        case 9:
            slot = KEY_IS(k, n, "media_url") ? &f->media_one : NULL;
            break;
        case 10:
            slot = KEY_IS(k, n, "message_id") ? &f->id : KEY_IS(k, n, "media_urls") ? &f->media_many : NULL;
            break;
        case 11:
            slot = KEY_IS(k, n, "provider_id") ? &f->pid : KEY_IS(k, n, "from_listed") ? &f->listed : NULL;
            break;
        default:
            break;
        }
        if (slot != NULL)
            *slot = v;
    }
}

static int receive(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx, sb_devents_t *out,
                   sb_derror_t *err)
{
    const char *id, *channel, *from_in, *to_in, *body, *pid, *subject;
    json_t *media;
    char from[SB_EMAIL_MAX], to[SB_EMAIL_MAX], now[SB_RFC3339_LEN];
    /* Every inbound message comes this way: each field is found once, checked in the order the
     * other commands check theirs (the same error for the same bad command), and shared with the
     * event below. */
    inbound_fields_t f;
    inbound_fields(cmd, &f);
    const json_t *v_id = f.id, *v_channel = f.channel, *v_from = f.from, *v_to = f.to, *v_body = f.body,
                 *v_pid = f.pid, *v_subject = f.subject;
    SB_TRY(sb__uuid_of(v_id, "message_id", &id, err));
    const json_t *m = json_object_get(json_object_get(state, "messages"), id);
    SB_TRY(sb__enum_of(v_channel, "channel", channels, &channel, err));
    SB_TRY(sb__str_of(v_from, "from", true, 1, 320, &from_in, err));
    SB_TRY(sb__str_of(v_to, "to", false, 1, 320, &to_in, err));
    SB_TRY(sb__str_of(v_body, "body", true, 0, INBOUND_BODY_MAX_CHARS, &body, err));
    SB_TRY(sb__str_of(v_pid, "provider_id", false, 1, 128, &pid, err));
    SB_TRY(sb__str_of(v_subject, "subject", false, 0, 998, &subject, err));
    bool phone = is_phone_channel(channel);
    to[0] = '\0';
    if (phone) {
        const char *country = sb__ctx_country(ctx);
        SB_TRY(sb__phone(from_in, country, "from", from, err));
        if (to_in != NULL)
            SB_TRY(sb__phone(to_in, country, "to", to, err));
    } else if (strcmp(channel, "email") == 0) {
        SB_TRY(sb__email(from_in, "from", from, err));
        if (to_in != NULL)
            SB_TRY(sb__email(to_in, "to", to, err));
    } else {
        if (strlen(from_in) >= sizeof from || (to_in != NULL && strlen(to_in) >= sizeof to))
            return sb_reject(err, 400, "invalid", "from", "from and to are at most %zu bytes",
                             sizeof from - 1);
        strcpy(from, from_in);
        if (to_in != NULL)
            strcpy(to, to_in);
    }
    const json_t *listed = f.listed;
    if (listed != NULL && !json_is_boolean(listed))
        return sb_reject(err, 400, "invalid", "from_listed", "from_listed must be a boolean");
    if (m != NULL || (pid != NULL && provider_seen(state, pid)))
        return 0; /* the provider retried */
    /* from_listed: the sender named this contact from a hint (the webhooks' per-loop memory of
     * senders) that may be out of date; the contact's own numbers decide. */
    if (json_is_true(listed) &&
        (strcmp(channel, "chat") == 0 ||
         sb__array_find(json_object_get(state, phone ? "phones" : "emails"), from, !phone) < 0))
        return sb_reject(err, 409, "sender_not_listed", "from", "the sender is not one of the contact's %s",
                         phone ? "numbers" : "addresses");
    SB_TRY(read_media_of(f.media_many, f.media_one, &media, err));
    if (body[0] == '\0' && json_array_size(media) == 0 && subject == NULL) {
        json_decref(media);
        return sb_reject(err, 400, "required", "body", "an inbound message needs a body or media");
    }
    sb__now(ctx, now);
    /* The payload json_pack("{s:s, s:s, s:s, s:s, s:s?, s:s, s:o, s:s?, s:s?, s:s}") would build, in
     * the same key order, sharing the command's strings (the body above all) instead of copying and
     * checking them again: every inbound message comes this way. */
    json_t *data = json_object();
    sb__put(&data, "message_id", sb__copy(v_id));
    sb__put(&data, "channel", sb__copy(v_channel));
    sb__put(&data, "direction", inbound_word());
    sb__put(&data, "from", same_or_new(v_from, from));
    sb__put(&data, "to", to[0] ? same_or_new(v_to, to) : json_null());
    sb__put(&data, "body", sb__copy(v_body));
    sb__put(&data, "media_urls", media);
    sb__put(&data, "subject", subject ? sb__copy(v_subject) : json_null());
    sb__put(&data, "provider_id", pid ? sb__copy(v_pid) : json_null());
    sb__put(&data, "received_at", json_string_nocheck(now));
    SB_TRY(sb_devents_add(out, "MessageReceived", data));
    /* Carrier keywords (STOP, START...) change the contact's consent in the same decision. */
    const char *group = sb__optout_group(channel);
    if (!phone || group == NULL)
        return 0;
    int kw = sb__keyword_kind(body, strlen(body));
    if (kw != SB_KW_OPT_OUT && kw != SB_KW_OPT_IN)
        return 0; /* the usual message: the opt-outs, cold memory, are not read */
    bool is_out = opted_out(state, channel);
    if ((kw == SB_KW_OPT_OUT && !is_out) || (kw == SB_KW_OPT_IN && is_out)) {
        char word[16] = "";
        const char *b = body;
        while (*b == ' ' || *b == '\t' || *b == '\r' || *b == '\n')
            b++;
        for (size_t i = 0; i + 1 < sizeof word && b[i] && b[i] != ' ' && b[i] != '\r' && b[i] != '\n'; i++)
            word[i] = (char)((b[i] >= 'A' && b[i] <= 'Z') ? b[i] + 32 : b[i]);
        return sb_devents_add(out, kw == SB_KW_OPT_OUT ? "ContactOptedOut" : "ContactOptedIn",
                              json_pack("{s:s, s:s, s:s, s:n, s:s}", "channel", group, "keyword", word,
                                        "message_id", id, "by", "at", now));
    }
    return 0;
}

int sb__contact_message_decide(const json_t *state, bool deleted, const json_t *cmd, const char *type,
                               const sb_decide_ctx_t *ctx, sb_devents_t *out, sb_derror_t *err)
{
    if (strcmp(type, "RecordMessageStatus") == 0)
        return record_status(state, cmd, ctx, out, err);
    int (*fn)(const json_t *, const json_t *, const sb_decide_ctx_t *, sb_devents_t *, sb_derror_t *) = NULL;
    if (strcmp(type, "ReceiveMessage") == 0) /* first: the usual command */
        fn = receive;
    else if (strcmp(type, "SendMessage") == 0)
        fn = send;
    else if (strcmp(type, "DispatchScheduledMessage") == 0)
        fn = dispatch_scheduled;
    else if (strcmp(type, "CancelScheduledMessage") == 0)
        fn = cancel_scheduled;
    else if (strcmp(type, "RecordSendAttempt") == 0)
        fn = record_attempt;
    else
        return 1;
    if (deleted)
        return sb_reject(err, 404, "contact_deleted", "", "this contact was deleted");
    return fn(state, cmd, ctx, out, err);
}

/* ---- evolve ------------------------------------------------------------------------------------- */

static bool is_pending(const char *status)
{
    return sb__eq(status, "scheduled") || sb__eq(status, "queued");
}

/* Records that message id left pending, and forgets the oldest settled messages past the window.
 * idv, when not NULL, is id as a JSON string (the event's), shared rather than copied. */
static void settle(json_t *state, json_t *messages, const char *id, const json_t *idv)
{
    json_t *settled = json_object_get(state, "settled");
    json_array_append_new(settled, idv != NULL ? json_incref((json_t *)idv) : json_string(id));
    while (json_array_size(settled) > SB_CONTACT_SETTLED_WINDOW) {
        const char *old = json_string_value(json_array_get(settled, 0));
        if (old != NULL)
            json_object_del(messages, old);
        json_array_remove(settled, 0);
    }
}

/* Moves message id to status; settles it if it was pending and no longer is. */
static void move(json_t *state, const char *id, const char *status, const json_t *pid)
{
    json_t *messages = json_object_get(state, "messages");
    json_t *m = own_entry(messages, id, json_object_get(messages, id));
    if (m == NULL)
        return; /* forgotten (settled long ago) */
    bool was_pending = is_pending(sb__str(m, "status"));
    json_object_set_new(m, "status", json_string(status));
    if (pid != NULL && json_is_string(pid))
        sb__set(m, "provider_id", pid);
    if (!is_pending(status))
        json_object_del(m, "content");
    if (was_pending && !is_pending(status))
        settle(state, messages, id, NULL);
}

/* index[pid] counts pid's entries in the list: true for one, an integer from two.  Both return
 * false when memory ran out (the caller then drops the index, which the list replaces). */
static bool index_add(json_t *index, const char *pid)
{
    const json_t *v = json_object_get(index, pid);
    json_int_t n = v == NULL ? 0 : json_is_integer(v) ? json_integer_value(v) : 1;
    return json_object_set_new_nocheck(index, pid, n == 0 ? json_true() : json_integer(n + 1)) == 0;
}

static bool index_drop(json_t *index, const char *pid)
{
    const json_t *v = json_object_get(index, pid);
    if (v == NULL)
        return false; /* the list has an id the index lacks: out of step */
    json_int_t n = json_is_integer(v) ? json_integer_value(v) : 1;
    if (n <= 1)
        return json_object_del(index, pid) == 0;
    return json_object_set_new_nocheck(index, pid, n == 2 ? json_true() : json_integer(n - 1)) == 0;
}

/* The state's index of the list, made from the list when the state has none yet; NULL when it
 * cannot be made (the decider then reads the list). */
static json_t *provider_index(json_t *state, const json_t *ids)
{
    json_t *index = json_object_get(state, "provider_index");
    if (json_is_object(index))
        return index;
    index = json_object();
    if (index == NULL || json_object_set_new(state, "provider_index", index) != 0)
        return NULL;
    size_t i;
    const json_t *v;
    json_array_foreach(ids, i, v)
    {
        if (json_is_string(v) && !index_add(index, json_string_value(v))) {
            json_object_del(state, "provider_index");
            return NULL;
        }
    }
    return index;
}

static void remember_provider_id(json_t *state, const json_t *pid)
{
    json_t *ids = json_object_get(state, "provider_ids");
    if (!json_is_string(pid) || !json_is_array(ids))
        return;
    json_t *index = provider_index(state, ids);
    if (json_array_append_new(ids, json_incref((json_t *)pid)) != 0) /* a string: shared, not copied */
        return;
    bool ok = index == NULL || index_add(index, json_string_value(pid));
    while (json_array_size(ids) > SB_CONTACT_PROVIDER_WINDOW) {
        const char *old = json_string_value(json_array_get(ids, 0));
        if (ok && index != NULL && old != NULL)
            ok = index_drop(index, old);
        json_array_remove(ids, 0);
    }
    if (!ok)
        json_object_del(state, "provider_index"); /* out of step: the list alone is right */
}

/* MessageReceived (most events by far): its three fields found in one walk over the event's keys
 * (see inbound_fields), the entry added, the message settled and its provider id remembered. */
static void evolve_received(json_t *state, const json_t *d)
{
    const json_t *idv = NULL, *chv = NULL, *pidv = NULL;
    for (void *it = json_object_iter((json_t *)d); it != NULL; it = json_object_iter_next((json_t *)d, it)) {
        const char *k = json_object_iter_key(it);
        size_t n = json_object_iter_key_len(it);
        if (KEY_IS(k, n, "message_id"))
            idv = json_object_iter_value(it);
        else if (KEY_IS(k, n, "channel"))
            chv = json_object_iter_value(it);
        else if (KEY_IS(k, n, "provider_id"))
            pidv = json_object_iter_value(it);
    }
    const char *id = json_string_value(idv);
    if (id == NULL)
        return;
    json_t *messages = json_object_get(state, "messages");
    if (json_object_get(messages, id) != NULL)
        return;
    const char *channel = json_string_value(chv);
    json_t *entry = channel != NULL ? received_entry(channel) : NULL;
    if (entry == NULL) { /* a channel this version does not know, as the log has it */
        entry = json_object();
        sb__put(&entry, "channel", sb__copy(chv));
        sb__put(&entry, "direction", inbound_word());
        sb__put(&entry, "status", received_word());
    }
    /* id is a string of the event, UTF-8 already (the decider's or the codec's check): not
     * checked again on every inbound message. */
    json_object_set_new_nocheck(messages, id, entry);
    settle(state, messages, id, idv);
    remember_provider_id(state, pidv);
}

bool sb__contact_message_evolve(json_t *state, const sb_devent_t *ev)
{
    const json_t *d = ev->data;
    const char *t = ev->type;
    if (strcmp(t, "MessageReceived") == 0) {
        evolve_received(state, d);
        return true;
    }
    const json_t *idv = json_object_get(d, "message_id");
    const char *id = json_string_value(idv);
    json_t *messages = json_object_get(state, "messages");

    if (strcmp(t, "ContactDeleted") == 0) {
        size_t i;
        const json_t *v;
        json_array_foreach(json_object_get(d, "cancelled_message_ids"), i, v)
        {
            if (json_is_string(v))
                move(state, json_string_value(v), "cancelled", NULL);
        }
        return false; /* contact.c marks the contact deleted */
    }
    if (strncmp(t, "Message", 7) != 0)
        return false;
    if (id == NULL)
        return true;
    json_t *m = json_object_get(messages, id);
    if (strcmp(t, "MessageScheduled") == 0 || (strcmp(t, "MessageQueued") == 0 && m == NULL)) {
        if (m != NULL)
            return true;
        json_t *entry = json_pack("{s:o, s:s, s:s, s:n}", "channel", sb__copy(json_object_get(d, "channel")),
                                  "direction", "outbound", "status",
                                  strcmp(t, "MessageScheduled") == 0 ? "scheduled" : "queued", "provider_id");
        if (strcmp(t, "MessageScheduled") == 0) {
            json_t *content = json_deep_copy(d);
            json_object_del(content, "message_id");
            json_object_set_new(entry, "content", content);
        }
        json_object_set_new(messages, id, entry);
    } else if (strcmp(t, "MessageQueued") == 0) {
        /* Dispatched at send time: the event carries the content now, the state need not. */
        if (sb__eq(sb__str(m, "status"), "scheduled")) {
            move(state, id, "queued", NULL); /* m is not shared: a shared entry is "received" */
            json_object_del(m, "content");
        }
    } else if (strcmp(t, "MessageSendAttempted") == 0) {
        m = own_entry(messages, id, m);
        if (m != NULL && json_is_integer(json_object_get(d, "attempt"))) {
            json_object_set(m, "attempts", json_object_get(d, "attempt"));
            sb__set(m, "attempted_at", json_object_get(d, "at"));
        }
    } else if (strcmp(t, "MessageScheduleCancelled") == 0) {
        move(state, id, "cancelled", NULL);
    } else if (strcmp(t, "MessageSent") == 0) {
        move(state, id, "sent", json_object_get(d, "provider_id"));
    } else if (strcmp(t, "MessageDelivered") == 0) {
        move(state, id, "delivered", json_object_get(d, "provider_id"));
    } else if (strcmp(t, "MessageRead") == 0) {
        move(state, id, "read", json_object_get(d, "provider_id"));
    } else if (strcmp(t, "MessageFailed") == 0) {
        const char *s = sb__str(d, "status");
        move(state, id, sb__eq(s, "undelivered") ? "undelivered" : "failed",
             json_object_get(d, "provider_id"));
    }
    return true;
}
