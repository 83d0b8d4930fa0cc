/* Reading Twilio's and Resend's webhook requests.  See webhooks_parse.h. */
#include "http/webhooks_parse.h"

#include <string.h>

#include "core/error.h"
#include "providers/twilio.h"

static const char WHATSAPP[] = "whatsapp:";
#define WHATSAPP_LEN (sizeof(WHATSAPP) - 1)

/* A fixed namespace for inbound message ids (random, chosen once). */
static const sb_uuid_t inbound_ns = {
    {0x5b, 0x0e, 0x6c, 0x8a, 0x2f, 0x41, 0x4d, 0x93, 0x9a, 0x57, 0x13, 0xc2, 0x80, 0x6e, 0xd4, 0x1f}};

static int bad(const char **field, const char *name)
{
    *field = name;
    return SB_EINVAL;
}

static bool is_url(const char *s)
{
    size_t n = strlen(s);
    if (n > SB_WH_URL_MAX || !(strncmp(s, "https://", 8) == 0 || strncmp(s, "http://", 7) == 0))
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f)
            return false;
    return n > 8;
}

/* Reads an address parameter: "+E164" or "whatsapp:+E164".  Sets *whatsapp. */
static bool read_address(const char *v, char out[SB_PHONE_MAX], bool *whatsapp)
{
    *whatsapp = strncmp(v, WHATSAPP, WHATSAPP_LEN) == 0;
    if (*whatsapp)
        v += WHATSAPP_LEN;
    if (!sb_phone_is_e164(v))
        return false;
    strcpy(out, v);
    return true;
}

static bool is_digits(const char *s, size_t min, size_t max)
{
    size_t n = strlen(s);
    if (n < min || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* The fields an inbound message's form may carry, each the value sb_form_get would return for
 * its name (the first field of that name), NULL when absent. */
typedef struct {
    const char *message_sid, *sms_message_sid, *sms_sid, *account_sid, *from, *to, *body, *num_media,
        *profile;
    const char *media[SB_WH_MAX_MEDIA]; /* MediaUrl0..9 */
} inbound_fields_t;

static void keep_first(const char **slot, const char *value)
{
    if (*slot == NULL)
        *slot = value;
}

#define NAME_IS(fl, lit)                                                                                     \
    ((fl)->name_len == sizeof(lit) - 1 && memcmp((fl)->name, (lit), sizeof(lit) - 1) == 0)

/* Finds them in one pass over the form (a webhook has about twenty fields) instead of a scan of
 * the form per name.  A name matches on its length and bytes, which is strcmp's answer: the
 * parser refuses a decoded NUL, so a name's length is its strlen. */
static void inbound_fields(const sb_form_t *f, inbound_fields_t *in)
{
    memset(in, 0, sizeof *in);
    for (size_t i = 0; i < f->n; i++) {
        const sb_form_field_t *fl = &f->fields[i];
        const char *v = fl->value;
        switch (fl->name_len) {
        case 2:
            if (NAME_IS(fl, "To"))
                keep_first(&in->to, v);
            break;
        case 4:
            if (NAME_IS(fl, "From"))
                keep_first(&in->from, v);
            else if (NAME_IS(fl, "Body"))
                keep_first(&in->body, v);
            break;
        case 6:
            if (NAME_IS(fl, "SmsSid"))
                keep_first(&in->sms_sid, v);
            break;
        case 8:
            if (NAME_IS(fl, "NumMedia"))
                keep_first(&in->num_media, v);
            break;
        case 9:
            if (memcmp(fl->name, "MediaUrl", 8) == 0 && fl->name[8] >= '0' && fl->name[8] <= '9')
                keep_first(&in->media[fl->name[8] - '0'], v);
            break;
        case 10:
            if (NAME_IS(fl, "MessageSid"))
                keep_first(&in->message_sid, v);
            else if (NAME_IS(fl, "AccountSid"))
                keep_first(&in->account_sid, v);
            break;
        case 11:
            if (NAME_IS(fl, "ProfileName"))
                keep_first(&in->profile, v);
            break;
        case 13:
            if (NAME_IS(fl, "SmsMessageSid"))
                keep_first(&in->sms_message_sid, v);
            break;
        default:
            break;
        }
    }
}

int sb_wh_parse_inbound(const sb_form_t *f, sb_wh_inbound_t *out, const char **field)
{
    memset(out, 0, sizeof(*out));
    *field = NULL;
    inbound_fields_t in;
    inbound_fields(f, &in);
    const char *sid = in.message_sid;
    const char *name = "MessageSid";
    if (sid == NULL && (sid = in.sms_message_sid) != NULL)
        name = "SmsMessageSid";
    if (sid == NULL && (sid = in.sms_sid) != NULL)
        name = "SmsSid";
    if (sid == NULL || !sb_twilio_sid_is_valid(sid, NULL))
        return bad(field, name);
    out->message_sid = sid;
    out->account_sid = in.account_sid;
    if (out->account_sid == NULL || !sb_twilio_sid_is_valid(out->account_sid, "AC"))
        return bad(field, "AccountSid");

    const char *from = in.from, *to = in.to;
    bool wa_from, wa_to;
    if (from == NULL || !read_address(from, out->from, &wa_from))
        return bad(field, "From");
    if (to == NULL || !read_address(to, out->to, &wa_to))
        return bad(field, "To");
    if (wa_from != wa_to)
        return bad(field, "To"); /* one side on WhatsApp, the other not: not a message Twilio sends */

    const char *body = in.body;
    out->body = body != NULL ? body : "";

    const char *num = in.num_media;
    int n = 0;
    if (num != NULL) {
        if (!is_digits(num, 1, 2))
            return bad(field, "NumMedia");
        n = (num[0] - '0') * (num[1] ? 10 : 1) + (num[1] ? num[1] - '0' : 0);
        if (n > SB_WH_MAX_MEDIA)
            return bad(field, "NumMedia");
    }
    for (int i = 0; i < n; i++) {
        static const char *const names[SB_WH_MAX_MEDIA] = {"MediaUrl0", "MediaUrl1", "MediaUrl2", "MediaUrl3",
                                                           "MediaUrl4", "MediaUrl5", "MediaUrl6", "MediaUrl7",
                                                           "MediaUrl8", "MediaUrl9"};
        const char *u = in.media[i];
        if (u == NULL || !is_url(u))
            return bad(field, names[i]);
        out->media[i] = u;
    }
    out->n_media = n;
    out->channel = wa_from ? "whatsapp" : n > 0 ? "mms" : "sms";
    const char *profile = in.profile;
    out->profile_name = wa_from && profile != NULL && profile[0] != '\0' ? profile : NULL;
    return 0;
}

int sb_wh_parse_status(const sb_form_t *f, sb_wh_status_t *out, const char **field)
{
    /* Twilio's MessageStatus values, and what each records. */
    static const struct {
        const char *twilio, *status;
    } map[] = {
        {"accepted", NULL},     {"scheduled", NULL},        {"queued", NULL},
        {"sending", NULL},      {"receiving", NULL},        {"received", NULL},
        {"sent", "sent"},       {"delivered", "delivered"}, {"partially_delivered", "delivered"},
        {"read", "read"},       {"failed", "failed"},       {"undelivered", "undelivered"},
        {"canceled", "failed"},
    };
    memset(out, 0, sizeof(*out));
    *field = NULL;
    const char *sid = sb_form_get(f, "MessageSid");
    const char *name = "MessageSid";
    if (sid == NULL && (sid = sb_form_get(f, "SmsSid")) != NULL)
        name = "SmsSid";
    if (sid == NULL || !sb_twilio_sid_is_valid(sid, NULL))
        return bad(field, name);
    out->message_sid = sid;
    out->account_sid = sb_form_get(f, "AccountSid");
    if (out->account_sid == NULL || !sb_twilio_sid_is_valid(out->account_sid, "AC"))
        return bad(field, "AccountSid");
    const char *st = sb_form_get(f, "MessageStatus");
    if (st == NULL)
        st = sb_form_get(f, "SmsStatus");
    size_t i;
    for (i = 0; st != NULL && i < sizeof(map) / sizeof(map[0]); i++)
        if (strcmp(st, map[i].twilio) == 0)
            break;
    if (st == NULL || i == sizeof(map) / sizeof(map[0]))
        return bad(field, "MessageStatus");
    out->twilio_status = st;
    out->status = map[i].status;
    const char *code = sb_form_get(f, "ErrorCode");
    if (code != NULL && code[0] != '\0') {
        if (!is_digits(code, 1, 10))
            return bad(field, "ErrorCode");
        out->error_code = code;
    }
    if (strcmp(st, "canceled") == 0 && out->error_code == NULL)
        out->error_code = "canceled";
    const char *msg = sb_form_get(f, "ErrorMessage");
    if (msg != NULL && msg[0] != '\0')
        out->error = msg;
    const char *from = sb_form_get(f, "From");
    bool wa;
    if (from == NULL || !read_address(from, out->from, &wa))
        out->from[0] = '\0';
    return 0;
}

static bool copy_uuid(const char *s, char out[SB_UUID_STRLEN + 1])
{
    sb_uuid_t u;
    if (s == NULL || strlen(s) != SB_UUID_STRLEN || sb_uuid_parse(s, SB_UUID_STRLEN, &u) != 0)
        return false;
    sb_uuid_format(&u, out);
    return true;
}

bool sb_wh_parse_ids(const char *query, size_t query_len, sb_wh_ids_t *out)
{
    sb_form_t f = SB_FORM_INIT;
    memset(out, 0, sizeof(*out));
    if (query == NULL || query_len == 0 || query_len > 1024 || sb_form_parse(query, query_len, &f) != 0)
        return false;
    bool ok = sb_form_count(&f, "w") == 1 && sb_form_count(&f, "c") == 1 && sb_form_count(&f, "m") == 1 &&
              copy_uuid(sb_form_get(&f, "w"), out->workspace) &&
              copy_uuid(sb_form_get(&f, "c"), out->contact) && copy_uuid(sb_form_get(&f, "m"), out->message);
    sb_form_free(&f);
    if (!ok)
        memset(out, 0, sizeof(*out));
    return ok;
}

/* A tag's value from "tags": {"name": "value"} or [{"name": ..., "value": ...}]. */
static const char *tag(const json_t *tags, const char *name)
{
    if (json_is_object(tags))
        return json_string_value(json_object_get(tags, name));
    size_t i;
    const json_t *t;
    json_array_foreach(tags, i, t)
    {
        const char *n = json_string_value(json_object_get(t, "name"));
        if (n != NULL && strcmp(n, name) == 0)
            return json_string_value(json_object_get(t, "value"));
    }
    return NULL;
}

int sb_wh_parse_email(const json_t *doc, sb_wh_email_t *out, const char **field)
{
    static const struct {
        const char *type;
        sb_wh_email_kind_t kind;
        const char *status;
    } map[] = {
        {"email.sent", SB_WH_EMAIL_STATUS, "sent"},
        {"email.delivered", SB_WH_EMAIL_STATUS, "delivered"},
        {"email.opened", SB_WH_EMAIL_STATUS, "read"},
        {"email.clicked", SB_WH_EMAIL_STATUS, "read"}, /* a click implies it was opened */
        {"email.bounced", SB_WH_EMAIL_STATUS, "undelivered"},
        {"email.failed", SB_WH_EMAIL_STATUS, "failed"},
        {"email.complained", SB_WH_EMAIL_COMPLAINED, NULL},
    };
    memset(out, 0, sizeof(*out));
    *field = NULL;
    if (!json_is_object(doc))
        return bad(field, "type");
    out->type = json_string_value(json_object_get(doc, "type"));
    if (out->type == NULL || strlen(out->type) > 64)
        return bad(field, "type");
    const json_t *data = json_object_get(doc, "data");
    if (!json_is_object(data))
        return bad(field, "data");
    out->email_id = json_string_value(json_object_get(data, "email_id"));
    if (strncmp(out->type, "email.", 6) != 0) {
        out->kind = SB_WH_EMAIL_IGNORED; /* contact.*, domain.*: not about a message */
        return 0;
    }
    if (out->email_id == NULL || out->email_id[0] == '\0' || strlen(out->email_id) > 128)
        return bad(field, "data.email_id");
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        if (strcmp(out->type, map[i].type) == 0) {
            out->kind = map[i].kind;
            out->status = map[i].status;
        }
    }
    if (strcmp(out->type, "email.bounced") == 0) {
        out->error_code = "bounced";
        const json_t *b = json_object_get(data, "bounce");
        const char *m = json_string_value(json_object_get(b, "message"));
        out->error = m != NULL && m[0] != '\0' ? m : "the message bounced";
    }
    const json_t *to = json_object_get(data, "to");
    out->to = json_is_array(to) ? json_string_value(json_array_get(to, 0)) : json_string_value(to);
    const json_t *tags = json_object_get(data, "tags");
    out->has_ids = copy_uuid(tag(tags, "workspace_id"), out->ids.workspace) &&
                   copy_uuid(tag(tags, "contact_id"), out->ids.contact) &&
                   copy_uuid(tag(tags, "message_id"), out->ids.message);
    if (!out->has_ids)
        memset(&out->ids, 0, sizeof(out->ids));
    return 0;
}

void sb_wh_inbound_message_id(const char *provider, const char *sid, char out[SB_UUID_STRLEN + 1])
{
    /* "provider:sid", cut at 255 bytes as snprintf into this buffer cut it (the ids already
     * recorded were named so); copied by hand: formatting was a fifth of this function's cost. */
    char name[256];
    const size_t cap = sizeof(name) - 1;
    size_t n = strlen(provider);
    if (n > cap)
        n = cap;
    memcpy(name, provider, n);
    if (n < cap)
        name[n++] = ':';
    size_t take = strlen(sid);
    if (take > cap - n)
        take = cap - n;
    memcpy(name + n, sid, take);
    n += take;
    sb_uuid_t u;
    sb_uuid_from_name(&u, &inbound_ns, name, n);
    sb_uuid_format(&u, out);
}
