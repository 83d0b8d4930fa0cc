#include "actors/dutil.h"
#include "core/error.h"

#include <ctype.h>
#include <stdatomic.h>
#include <string.h>

const char *sb__str(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

bool sb__has(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    return v != NULL && !json_is_null(v);
}

size_t sb__utf8_chars(const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p & 0xC0) != 0x80)
            n++;
    return n;
}

bool sb__eq(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

bool sb__eq_ci(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcasecmp(a, b) == 0;
}

bool sb__is_uuid(const char *s)
{
    if (s == NULL || strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return false;
        } else if (!isxdigit((unsigned char)s[i])) {
            return false;
        }
    }
    return true;
}

bool sb__is_url(const char *s, size_t max)
{
    if (s == NULL)
        return false;
    size_t len = strlen(s);
    size_t scheme;
    if (strncmp(s, "https://", 8) == 0)
        scheme = 8;
    else if (strncmp(s, "http://", 7) == 0)
        scheme = 7;
    else
        return false;
    if (len <= scheme || len > max)
        return false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= 0x20 || *p == 0x7f)
            return false;
    return true;
}

/* bytes: s's length as jansson has it (a JSON string may hold a NUL; s's characters are counted up
 * to the first).  A string of at most max bytes has at most max characters, and one whose first
 * byte is not NUL has at least one: most strings are decided without counting (an inbound message's
 * body, up to 100,000 characters, on every webhook). */
static int check_len(const char *key, const char *s, size_t bytes, size_t min, size_t max, sb_derror_t *err)
{
    if (bytes <= max && (min == 0 || (min == 1 && s[0] != '\0')))
        return 0;
    size_t n = sb__utf8_chars(s);
    if (n < min || n > max) {
        if (min > 0 && n == 0)
            return sb_reject(err, 400, "required", key, "%s must not be empty", key);
        return sb_reject(err, 400, "invalid", key, "%s must be %zu to %zu characters", key, min, max);
    }
    return 0;
}

int sb__str_of(const json_t *v, const char *key, bool required, size_t min, size_t max, const char **out,
               sb_derror_t *err)
{
    *out = NULL;
    if (v == NULL || json_is_null(v))
        return required ? sb_reject(err, 400, "required", key, "%s is required", key) : 0;
    if (!json_is_string(v))
        return sb_reject(err, 400, "invalid", key, "%s must be a string", key);
    *out = json_string_value(v);
    return check_len(key, *out, json_string_length(v), min, max, err);
}

int sb__need_str(const json_t *cmd, const char *key, size_t min, size_t max, const char **out,
                 sb_derror_t *err)
{
    return sb__str_of(json_object_get(cmd, key), key, true, min, max, out, err);
}

/* One lookup of key, not sb__has's and then sb__need_str's: every decision reads a few optional
 * strings. */
int sb__opt_str(const json_t *cmd, const char *key, size_t min, size_t max, const char **out,
                sb_derror_t *err)
{
    return sb__str_of(json_object_get(cmd, key), key, false, min, max, out, err);
}

int sb__trimmed(const char *s, const char *field, size_t min, size_t max, json_t **out, sb_derror_t *err)
{
    size_t start = 0, end = strlen(s);
    *out = NULL;
    while (start < end && isspace((unsigned char)s[start]))
        start++;
    while (end > start && isspace((unsigned char)s[end - 1]))
        end--;
    json_t *t = json_stringn(s + start, end - start);
    if (t == NULL)
        return SB_ENOMEM;
    int rc = check_len(field, json_string_value(t), json_string_length(t), min, max, err);
    if (rc != 0) {
        json_decref(t);
        return rc;
    }
    *out = t;
    return 0;
}

int sb__need_text(const json_t *cmd, const char *key, size_t min, size_t max, json_t **out, sb_derror_t *err)
{
    const char *s;
    *out = NULL;
    SB_TRY(sb__need_str(cmd, key, 0, (size_t)-1, &s, err));
    return sb__trimmed(s, key, min, max, out, err);
}

int sb__uuid_of(const json_t *v, const char *key, const char **out, sb_derror_t *err)
{
    SB_TRY(sb__str_of(v, key, true, 1, 64, out, err));
    if (!sb__is_uuid(*out))
        return sb_reject(err, 400, "invalid", key, "%s must be a uuid", key);
    return 0;
}

int sb__need_uuid(const json_t *cmd, const char *key, const char **out, sb_derror_t *err)
{
    return sb__uuid_of(json_object_get(cmd, key), key, out, err);
}

int sb__opt_uuid(const json_t *cmd, const char *key, const char **out, sb_derror_t *err)
{
    *out = NULL;
    if (!sb__has(cmd, key))
        return 0;
    return sb__need_uuid(cmd, key, out, err);
}

int sb__need_enum(const json_t *cmd, const char *key, const char *const *values, const char **out,
                  sb_derror_t *err)
{
    return sb__enum_of(json_object_get(cmd, key), key, values, out, err);
}

int sb__enum_of(const json_t *v, const char *key, const char *const *values, const char **out,
                sb_derror_t *err)
{
    SB_TRY(sb__str_of(v, key, true, 1, 64, out, err));
    for (const char *const *v = values; *v; v++) {
        if (strcmp(*v, *out) == 0) {
            *out = *v; /* static storage: safe to keep */
            return 0;
        }
    }
    return sb_reject(err, 400, "invalid", key, "%s is not one of the allowed values", key);
}

int sb__opt_bool(const json_t *cmd, const char *key, bool dflt, bool *out, sb_derror_t *err)
{
    const json_t *v = json_object_get(cmd, key);
    *out = dflt;
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_boolean(v))
        return sb_reject(err, 400, "invalid", key, "%s must be true or false", key);
    *out = json_is_true(v);
    return 0;
}

int sb__opt_time(const json_t *cmd, const char *key, bool *present, int64_t *us, sb_derror_t *err)
{
    const char *s;
    *present = false;
    SB_TRY(sb__opt_str(cmd, key, 1, 64, &s, err));
    if (s == NULL)
        return 0;
    if (sb_clock_parse_rfc3339(s, us) != 0)
        return sb_reject(err, 400, "invalid", key, "%s must be an RFC 3339 time", key);
    *present = true;
    return 0;
}

void sb__now(const sb_decide_ctx_t *ctx, char out[SB_RFC3339_LEN])
{
    sb_clock_format_rfc3339(ctx->now_us, out);
}

int64_t sb__time_us(const char *rfc3339)
{
    int64_t us = 0;
    if (rfc3339 == NULL || sb_clock_parse_rfc3339(rfc3339, &us) != 0)
        return 0;
    return us;
}

const char *sb__ctx_country(const sb_decide_ctx_t *ctx)
{
    const char *c = sb__str(ctx->context, "default_country");
    return c ? c : "US";
}

const json_t *sb__ctx_member(const sb_decide_ctx_t *ctx, const char *user_id)
{
    const json_t *members = json_object_get(ctx->context, "members");
    size_t i;
    const json_t *m;
    if (user_id == NULL)
        return NULL;
    json_array_foreach(members, i, m)
    {
        if (sb__eq(sb__str(m, "user_id"), user_id))
            return m;
    }
    return NULL;
}

int sb__need_actor_member(const sb_decide_ctx_t *ctx, sb_derror_t *err)
{
    if (ctx->user_id == NULL || sb__ctx_member(ctx, ctx->user_id) != NULL)
        return 0;
    return sb_reject(err, 403, "not_member", "", "you are not a member of this workspace");
}

bool sb__other_workspace(const json_t *state, const sb_decide_ctx_t *ctx)
{
    const char *mine = sb__str(state, "workspace_id");
    const char *theirs = sb__str(ctx->context, "workspace_id");
    return mine != NULL && theirs != NULL && strcmp(mine, theirs) != 0;
}

int sb__phone(const char *in, const char *country, const char *field, char out[SB_PHONE_MAX],
              sb_derror_t *err)
{
    if (in == NULL || sb_phone_normalize(in, strlen(in), country, out) != 0)
        return sb_reject(err, 400, "invalid_phone", field, "%s is not a valid phone number", field);
    return 0;
}

int sb__email(const char *in, const char *field, char out[SB_EMAIL_MAX], sb_derror_t *err)
{
    if (in == NULL || sb_email_normalize(in, strlen(in), out) != 0)
        return sb_reject(err, 400, "invalid_email", field, "%s is not a valid e-mail address", field);
    return 0;
}

int sb__array_find(const json_t *array, const char *s, bool ci)
{
    size_t i;
    const json_t *v;
    json_array_foreach(array, i, v)
    {
        const char *x = json_string_value(v);
        if (x != NULL && (ci ? sb__eq_ci(x, s) : sb__eq(x, s)))
            return (int)i;
    }
    return -1;
}

int sb__decide(sb__decide_fn fn, const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx,
               sb_devents_t *out, sb_derror_t *err)
{
    int start = out->n;
    const char *type = sb__str(cmd, "type");
    int rc;
    if (!json_is_object(cmd) || type == NULL)
        rc = sb_reject(err, 400, "required", "type", "a command needs a type");
    else
        rc = fn(state, cmd, type, ctx, out, err);
    if (rc != 0) {
        while (out->n > start) {
            out->n--;
            json_decref(out->items[out->n].data);
            out->items[out->n].data = NULL;
        }
    }
    return rc;
}

json_t *sb__copy(const json_t *v)
{
    if (v == NULL)
        return json_null();
    if (json_is_object(v) || json_is_array(v))
        return json_deep_copy(v);
    return json_incref((json_t *)v);
}

void sb__set(json_t *obj, const char *key, const json_t *v)
{
    json_object_set_new(obj, key, sb__copy(v));
}

void sb__put(json_t **obj, const char *key, json_t *v)
{
    if (*obj == NULL) {
        json_decref(v);
        return;
    }
    /* json_object_set_new_nocheck releases v when it fails. */
    if (v == NULL || json_object_set_new_nocheck(*obj, key, v) != 0) {
        json_decref(*obj);
        *obj = NULL;
    }
}

json_t *sb__const_str(json_t *_Atomic *slot, const char *s)
{
    json_t *v = atomic_load_explicit(slot, memory_order_acquire);
    return v != NULL ? v : sb__const_publish(slot, json_string_nocheck(s));
}

json_t *sb__const_publish(json_t *_Atomic *slot, json_t *made)
{
    json_t *v = NULL;
    if (made == NULL)
        return atomic_load_explicit(slot, memory_order_acquire);
    made->refcount = (size_t)-1;
    /* Two loops may race to make it: the first one published wins, the other is dropped. */
    if (atomic_compare_exchange_strong_explicit(slot, &v, made, memory_order_acq_rel, memory_order_acquire))
        return made;
    made->refcount = 1;
    json_decref(made);
    return v;
}

int sb__keyword_kind(const char *word, size_t len)
{
    static const struct {
        const char *word;
        int kind;
    } words[] = {
        {"stop", SB_KW_OPT_OUT},   {"stopall", SB_KW_OPT_OUT}, {"unsubscribe", SB_KW_OPT_OUT},
        {"cancel", SB_KW_OPT_OUT}, {"end", SB_KW_OPT_OUT},     {"quit", SB_KW_OPT_OUT},
        {"revoke", SB_KW_OPT_OUT}, {"optout", SB_KW_OPT_OUT},  {"start", SB_KW_OPT_IN},
        {"yes", SB_KW_OPT_IN},     {"unstop", SB_KW_OPT_IN},   {"help", SB_KW_HELP},
        {"info", SB_KW_HELP},
    };
    while (len > 0 && isspace((unsigned char)word[0])) {
        word++;
        len--;
    }
    while (len > 0 && isspace((unsigned char)word[len - 1]))
        len--;
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strlen(words[i].word) == len && strncasecmp(words[i].word, word, len) == 0)
            return words[i].kind;
    return SB_KW_NONE;
}
