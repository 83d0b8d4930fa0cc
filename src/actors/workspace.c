/* The workspace decider: a business's settings and team.  docs/events.md lists its commands and
 * events.
 *
 * State: {"created", "workspace_id", "name", "owner_id", "default_country", "created_at",
 *         "members": {"<user id>": {"role", "email", "name"}},
 *         "twilio": null | {"account_sid", "api_key_sid", "twiml_app_sid", "secret_ref"},
 *         "numbers": {"<e164>": {"sid", "assigned_to"}}, "stages": ["Lead", ...],
 *         "auto_replies": {"<keyword>": "<reply>"}, "email_from", "email_from_name", "email_secret_ref"?,
 *         "parking_limit_seconds"} */
#include "actors/dutil.h"
#include "actors/kinds.h"
#include "core/error.h"

#include <ctype.h>
#include <string.h>

/* Bounds that keep one workspace's state small enough to load and snapshot quickly. */
#define MAX_MEMBERS 1000
#define MAX_NUMBERS 1000
#define MAX_STAGES 50
#define MAX_RULES 200
#define DEFAULT_PARKING_LIMIT 300

static const char *const roles[] = {"owner", "admin", "agent", NULL};

static json_t *ws_initial(void)
{
    return json_pack("{s:b, s:n, s:n, s:n, s:s, s:n, s:{}, s:n, s:{}, s:[], s:{}, s:n, s:n, s:i}", "created",
                     0, "workspace_id", "name", "owner_id", "default_country", "US", "created_at", "members",
                     "twilio", "numbers", "stages", "auto_replies", "email_from", "email_from_name",
                     "parking_limit_seconds", DEFAULT_PARKING_LIMIT);
}

/* ---- reading the state ---------------------------------------------------------------------- */

static const json_t *member(const json_t *state, const char *user_id)
{
    return user_id ? json_object_get(json_object_get(state, "members"), user_id) : NULL;
}

static const char *role_of(const json_t *state, const char *user_id)
{
    return sb__str(member(state, user_id), "role");
}

static int owner_count(const json_t *state)
{
    const char *k;
    const json_t *m;
    int n = 0;
    json_object_foreach((json_t *)json_object_get(state, "members"), k, m)
    {
        if (sb__eq(sb__str(m, "role"), "owner"))
            n++;
    }
    return n;
}

/* Settings and membership are managed by owners and admins; the system (no user) may do anything. */
static int need_manager(const json_t *state, const sb_decide_ctx_t *ctx, sb_derror_t *err)
{
    if (ctx->user_id == NULL)
        return 0;
    const char *role = role_of(state, ctx->user_id);
    if (role == NULL)
        return sb_reject(err, 403, "not_member", "", "you are not a member of this workspace");
    if (strcmp(role, "agent") == 0)
        return sb_reject(err, 403, "forbidden", "", "only owners and admins may do this");
    return 0;
}

/* Granting, revoking or touching the owner role takes an owner. */
static int need_owner(const json_t *state, const sb_decide_ctx_t *ctx, sb_derror_t *err)
{
    if (ctx->user_id == NULL || sb__eq(role_of(state, ctx->user_id), "owner"))
        return 0;
    return sb_reject(err, 403, "forbidden", "", "only owners may grant or revoke the owner role");
}

static int emit(sb_devents_t *out, const char *type, json_t *data)
{
    return sb_devents_add(out, type, data);
}

/* ---- field checks ----------------------------------------------------------------------------- */

static int need_country(const json_t *cmd, const char *key, bool required, char out[3], sb_derror_t *err)
{
    const char *c;
    SB_TRY(required ? sb__need_str(cmd, key, 1, 8, &c, err) : sb__opt_str(cmd, key, 1, 8, &c, err));
    if (c == NULL) {
        strcpy(out, "US");
        return 0;
    }
    if (strlen(c) != 2)
        return sb_reject(err, 400, "invalid_country", key, "%s must be an ISO 3166 alpha-2 code", key);
    out[0] = (char)toupper((unsigned char)c[0]);
    out[1] = (char)toupper((unsigned char)c[1]);
    out[2] = '\0';
    if (!sb_phone_country_known(out))
        return sb_reject(err, 400, "invalid_country", key, "unknown country %s", out);
    return 0;
}

/* Twilio sids: a two-letter prefix and 32 hex digits. */
static int need_sid(const json_t *cmd, const char *key, const char *prefix, bool required, const char **out,
                    sb_derror_t *err)
{
    SB_TRY(required ? sb__need_str(cmd, key, 1, 64, out, err) : sb__opt_str(cmd, key, 1, 64, out, err));
    if (*out == NULL)
        return 0;
    const char *s = *out;
    bool ok = strlen(s) == 34 && strncmp(s, prefix, 2) == 0;
    for (int i = 2; ok && i < 34; i++)
        ok = isxdigit((unsigned char)s[i]) != 0;
    if (!ok)
        return sb_reject(err, 400, "invalid", key, "%s must be %s followed by 32 hex digits", key, prefix);
    return 0;
}

static int need_number(const json_t *state, const json_t *cmd, char out[SB_PHONE_MAX], sb_derror_t *err)
{
    const char *n;
    SB_TRY(sb__need_str(cmd, "number", 1, 64, &n, err));
    return sb__phone(n, sb__str(state, "default_country"), "number", out, err);
}

/* A user id that must name a current member (or null when nullable). */
static int need_member_ref(const json_t *state, const json_t *cmd, const char *key, bool nullable,
                           const char **out, sb_derror_t *err)
{
    SB_TRY(nullable ? sb__opt_uuid(cmd, key, out, err) : sb__need_uuid(cmd, key, out, err));
    if (*out != NULL && member(state, *out) == NULL)
        return sb_reject(err, 400, "unknown_member", key, "%s is not a member of this workspace", key);
    return 0;
}

static int need_keyword(const json_t *cmd, char out[33], sb_derror_t *err)
{
    const char *k;
    SB_TRY(sb__need_str(cmd, "keyword", 1, 32, &k, err));
    size_t n = strlen(k);
    if (n > 32)
        return sb_reject(err, 400, "invalid", "keyword", "keyword must be one word of letters and digits");
    for (size_t i = 0; i < n; i++) {
        if (!isalnum((unsigned char)k[i]))
            return sb_reject(err, 400, "invalid", "keyword",
                             "keyword must be one word of letters and digits");
        out[i] = (char)tolower((unsigned char)k[i]);
    }
    out[n] = '\0';
    return 0;
}

/* ---- commands ----------------------------------------------------------------------------------- */

static int create(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx, sb_devents_t *out,
                  sb_derror_t *err)
{
    if (json_is_true(json_object_get(state, "created")))
        return sb_reject(err, 409, "workspace_exists", "", "this workspace already exists");
    const char *owner = ctx->user_id, *owner_name, *email_in;
    if (owner == NULL)
        SB_TRY(sb__need_uuid(cmd, "owner_id", &owner, err));
    else if (!sb__is_uuid(owner))
        return sb_reject(err, 400, "invalid", "owner_id", "the acting user id must be a uuid");
    char country[3], email[SB_EMAIL_MAX], now[SB_RFC3339_LEN];
    json_t *name;
    SB_TRY(sb__need_str(cmd, "owner_email", 1, 254, &email_in, err));
    SB_TRY(sb__email(email_in, "owner_email", email, err));
    SB_TRY(sb__opt_str(cmd, "owner_name", 0, 200, &owner_name, err));
    SB_TRY(need_country(cmd, "default_country", false, country, err));
    SB_TRY(sb__need_text(cmd, "name", 1, 200, &name, err));
    sb__now(ctx, now);
    SB_TRY(emit(out, "WorkspaceCreated",
                json_pack("{s:s?, s:o, s:s, s:s, s:s}", "workspace_id", ctx->id, "name", name, "owner_id",
                          owner, "default_country", country, "created_at", now)));
    return emit(out, "MemberAdded",
                json_pack("{s:s, s:s, s:s, s:s?, s:s}", "user_id", owner, "role", "owner", "email", email,
                          "name", owner_name, "added_by", owner));
}

static int rename_ws(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx, sb_devents_t *out,
                     sb_derror_t *err)
{
    json_t *name;
    SB_TRY(need_manager(state, ctx, err));
    SB_TRY(sb__need_text(cmd, "name", 1, 200, &name, err));
    if (sb__eq(json_string_value(name), sb__str(state, "name"))) {
        json_decref(name);
        return 0;
    }
    return emit(out, "WorkspaceRenamed", json_pack("{s:o}", "name", name));
}

static int add_member(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx, sb_devents_t *out,
                      sb_derror_t *err)
{
    const char *uid, *role, *email_in, *name;
    char email[SB_EMAIL_MAX];
    SB_TRY(need_manager(state, ctx, err));
    SB_TRY(sb__need_uuid(cmd, "user_id", &uid, err));
    SB_TRY(sb__need_enum(cmd, "role", roles, &role, err));
    SB_TRY(sb__need_str(cmd, "email", 1, 254, &email_in, err));
    SB_TRY(sb__email(email_in, "email", email, err));
    SB_TRY(sb__opt_str(cmd, "name", 0, 200, &name, err));
    if (strcmp(role, "owner") == 0)
        SB_TRY(need_owner(state, ctx, err));
    const char *current = role_of(state, uid);
    if (current != NULL) {
        if (strcmp(current, role) == 0)
            return 0; /* a repeat */
        return sb_reject(err, 409, "already_member", "user_id",
                         "already a member as %s; change the role instead", current);
    }
    if (json_object_size(json_object_get(state, "members")) >= MAX_MEMBERS)
        return sb_reject(err, 409, "limit_reached", "", "a workspace has at most %d members", MAX_MEMBERS);
    return emit(out, "MemberAdded",
                json_pack("{s:s, s:s, s:s, s:s?, s:s?}", "user_id", uid, "role", role, "email", email, "name",
                          name, "added_by", ctx->user_id));
}

static int remove_member(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx,
                         sb_devents_t *out, sb_derror_t *err)
{
    const char *uid;
    SB_TRY(sb__need_uuid(cmd, "user_id", &uid, err));
    /* Anyone may leave; removing someone else takes a manager, and removing an owner an owner. */
    if (!sb__eq(uid, ctx->user_id))
        SB_TRY(need_manager(state, ctx, err));
    const char *role = role_of(state, uid);
    if (role == NULL)
        return sb_reject(err, 404, "unknown_member", "user_id", "no such member");
    if (strcmp(role, "owner") == 0) {
        if (!sb__eq(uid, ctx->user_id))
            SB_TRY(need_owner(state, ctx, err));
        if (owner_count(state) <= 1)
            return sb_reject(err, 409, "last_owner", "user_id", "the last owner cannot be removed");
    }
    return emit(out, "MemberRemoved",
                json_pack("{s:s, s:s, s:s?}", "user_id", uid, "role", role, "removed_by", ctx->user_id));
}

static int change_role(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx, sb_devents_t *out,
                       sb_derror_t *err)
{
    const char *uid, *role;
    SB_TRY(need_manager(state, ctx, err));
    SB_TRY(sb__need_uuid(cmd, "user_id", &uid, err));
    SB_TRY(sb__need_enum(cmd, "role", roles, &role, err));
    const char *current = role_of(state, uid);
    if (current == NULL)
        return sb_reject(err, 404, "unknown_member", "user_id", "no such member");
    if (strcmp(current, role) == 0)
        return 0;
    if (strcmp(current, "owner") == 0 || strcmp(role, "owner") == 0)
        SB_TRY(need_owner(state, ctx, err));
    if (strcmp(current, "owner") == 0 && owner_count(state) <= 1)
        return sb_reject(err, 409, "last_owner", "role", "the last owner cannot be demoted");
    return emit(out, "MemberRoleChanged",
                json_pack("{s:s, s:s, s:s, s:s?}", "user_id", uid, "from", current, "to", role, "changed_by",
                          ctx->user_id));
}

static int configure_twilio(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx,
                            sb_devents_t *out, sb_derror_t *err)
{
    const char *account, *key, *app, *ref;
    SB_TRY(need_manager(state, ctx, err));
    SB_TRY(need_sid(cmd, "account_sid", "AC", true, &account, err));
    SB_TRY(need_sid(cmd, "api_key_sid", "SK", false, &key, err));
    SB_TRY(need_sid(cmd, "twiml_app_sid", "AP", false, &app, err));
    SB_TRY(sb__need_str(cmd, "secret_ref", 1, 512, &ref, err));
    /* A bare auth token is 32 hex digits: refuse it, so a caller's mistake never puts a secret in
     * the log. */
    size_t n = strlen(ref), hex = 0;
    for (size_t i = 0; i < n; i++)
        hex += isxdigit((unsigned char)ref[i]) != 0;
    if (n == 32 && hex == 32)
        return sb_reject(err, 400, "secret_not_sealed", "secret_ref",
                         "secret_ref looks like a raw auth token; pass a reference to the sealed secret");
    const json_t *t = json_object_get(state, "twilio");
    if (json_is_object(t) && sb__eq(sb__str(t, "account_sid"), account) &&
        sb__eq(sb__str(t, "api_key_sid"), key) && sb__eq(sb__str(t, "twiml_app_sid"), app) &&
        sb__eq(sb__str(t, "secret_ref"), ref))
        return 0;
    return emit(out, "TwilioConfigured",
                json_pack("{s:s, s:s?, s:s?, s:s}", "account_sid", account, "api_key_sid", key,
                          "twiml_app_sid", app, "secret_ref", ref));
}

static int clear_twilio(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx, sb_devents_t *out,
                        sb_derror_t *err)
{
    SB_TRY(need_manager(state, ctx, err));
    const json_t *numbers = json_object_get(state, "numbers");
    if (json_is_null(json_object_get(state, "twilio")) && json_object_size(numbers) == 0)
        return 0;
    /* One event however many numbers: it implies PhoneNumberRemoved for each listed number (a
     * command may decide at most SB_MAX_EVENTS_PER_COMMAND events). */
    json_t *list = json_array();
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)numbers, k, v)
    {
        json_array_append_new(list, json_string(k));
    }
    return emit(out, "TwilioCleared", json_pack("{s:o}", "numbers", list));
}

static int add_number(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx, sb_devents_t *out,
                      sb_derror_t *err)
{
    char number[SB_PHONE_MAX];
    const char *sid, *assignee;
    SB_TRY(need_manager(state, ctx, err));
    SB_TRY(need_number(state, cmd, number, err));
    SB_TRY(need_sid(cmd, "sid", "PN", true, &sid, err));
    SB_TRY(need_member_ref(state, cmd, "assigned_to", true, &assignee, err));
    const json_t *numbers = json_object_get(state, "numbers");
    const json_t *cur = json_object_get(numbers, number);
    if (cur != NULL) {
        /* Twilio set-up re-lists every number: the same number and sid again is a repeat (which
         * leaves any assignment made since alone). */
        if (sb__eq(sb__str(cur, "sid"), sid))
            return 0;
        return sb_reject(err, 409, "number_exists", "number", "%s is already in this workspace", number);
    }
    if (json_object_size(numbers) >= MAX_NUMBERS)
        return sb_reject(err, 409, "limit_reached", "", "a workspace has at most %d numbers", MAX_NUMBERS);
    return emit(out, "PhoneNumberAdded",
                json_pack("{s:s, s:s, s:s?}", "number", number, "sid", sid, "assigned_to", assignee));
}

static int remove_number(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx,
                         sb_devents_t *out, sb_derror_t *err)
{
    char number[SB_PHONE_MAX];
    SB_TRY(need_manager(state, ctx, err));
    SB_TRY(need_number(state, cmd, number, err));
    const json_t *cur = json_object_get(json_object_get(state, "numbers"), number);
    if (cur == NULL)
        return sb_reject(err, 404, "unknown_number", "number", "%s is not in this workspace", number);
    return emit(out, "PhoneNumberRemoved",
                json_pack("{s:s, s:s?}", "number", number, "sid", sb__str(cur, "sid")));
}

static int assign_number(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx,
                         sb_devents_t *out, sb_derror_t *err)
{
    char number[SB_PHONE_MAX];
    const char *uid;
    SB_TRY(need_manager(state, ctx, err));
    SB_TRY(need_number(state, cmd, number, err));
    SB_TRY(need_member_ref(state, cmd, "user_id", true, &uid, err));
    const json_t *cur = json_object_get(json_object_get(state, "numbers"), number);
    if (cur == NULL)
        return sb_reject(err, 404, "unknown_number", "number", "%s is not in this workspace", number);
    const char *from = sb__str(cur, "assigned_to");
    if (sb__eq(from, uid))
        return 0;
    return emit(out, "PhoneNumberAssigned",
                json_pack("{s:s, s:s?, s:s?}", "number", number, "assigned_to", uid, "from", from));
}

static int add_stage(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx, sb_devents_t *out,
                     sb_derror_t *err)
{
    json_t *name;
    SB_TRY(need_manager(state, ctx, err));
    const json_t *stages = json_object_get(state, "stages");
    size_t count = json_array_size(stages);
    json_int_t pos = (json_int_t)count;
    const json_t *p = json_object_get(cmd, "position");
    if (p != NULL && !json_is_null(p)) {
        if (!json_is_integer(p) || json_integer_value(p) < 0 || json_integer_value(p) > (json_int_t)count)
            return sb_reject(err, 400, "invalid", "position", "position must be 0 to %zu", count);
        pos = json_integer_value(p);
    }
    SB_TRY(sb__need_text(cmd, "name", 1, 64, &name, err));
    if (sb__array_find(stages, json_string_value(name), true) >= 0) {
        json_decref(name);
        return sb_reject(err, 409, "stage_exists", "name", "a stage with this name exists");
    }
    if (count >= MAX_STAGES) {
        json_decref(name);
        return sb_reject(err, 409, "limit_reached", "", "a pipeline has at most %d stages", MAX_STAGES);
    }
    return emit(out, "PipelineStageAdded", json_pack("{s:o, s:I}", "name", name, "position", pos));
}

static int remove_stage(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx, sb_devents_t *out,
                        sb_derror_t *err)
{
    const char *name;
    SB_TRY(need_manager(state, ctx, err));
    SB_TRY(sb__need_str(cmd, "name", 1, 200, &name, err));
    const json_t *stages = json_object_get(state, "stages");
    int i = sb__array_find(stages, name, true);
    if (i < 0)
        return sb_reject(err, 404, "unknown_stage", "name", "no such stage");
    return emit(out, "PipelineStageRemoved",
                json_pack("{s:O, s:i}", "name", json_array_get(stages, (size_t)i), "position", i));
}

static int set_rule(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx, sb_devents_t *out,
                    sb_derror_t *err)
{
    char kw[33];
    const char *reply;
    SB_TRY(need_manager(state, ctx, err));
    SB_TRY(need_keyword(cmd, kw, err));
    SB_TRY(sb__need_str(cmd, "reply", 1, 1600, &reply, err));
    /* Carrier keywords belong to opt-out handling: a rule must not answer STOP with marketing. */
    if (sb__keyword_kind(kw, strlen(kw)) != SB_KW_NONE)
        return sb_reject(err, 400, "reserved_keyword", "keyword", "%s is a reserved carrier keyword", kw);
    const json_t *rules = json_object_get(state, "auto_replies");
    const char *cur = sb__str(rules, kw);
    if (sb__eq(cur, reply))
        return 0;
    if (cur == NULL && json_object_size(rules) >= MAX_RULES)
        return sb_reject(err, 409, "limit_reached", "", "a workspace has at most %d auto-replies", MAX_RULES);
    return emit(out, "AutoReplyRuleSet", json_pack("{s:s, s:s}", "keyword", kw, "reply", reply));
}

static int remove_rule(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx, sb_devents_t *out,
                       sb_derror_t *err)
{
    char kw[33];
    SB_TRY(need_manager(state, ctx, err));
    SB_TRY(need_keyword(cmd, kw, err));
    if (json_object_get(json_object_get(state, "auto_replies"), kw) == NULL)
        return sb_reject(err, 404, "unknown_rule", "keyword", "no auto-reply for %s", kw);
    return emit(out, "AutoReplyRuleRemoved", json_pack("{s:s}", "keyword", kw));
}

static int change_country(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx,
                          sb_devents_t *out, sb_derror_t *err)
{
    char country[3];
    SB_TRY(need_manager(state, ctx, err));
    SB_TRY(need_country(cmd, "default_country", true, country, err));
    const char *from = sb__str(state, "default_country");
    if (sb__eq(from, country))
        return 0;
    return emit(out, "DefaultCountryChanged", json_pack("{s:s?, s:s}", "from", from, "to", country));
}

static int set_email_sender(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx,
                            sb_devents_t *out, sb_derror_t *err)
{
    const char *in, *name;
    char from[SB_EMAIL_MAX];
    SB_TRY(need_manager(state, ctx, err));
    SB_TRY(sb__need_str(cmd, "from", 1, 254, &in, err));
    SB_TRY(sb__email(in, "from", from, err));
    SB_TRY(sb__opt_str(cmd, "from_name", 1, 100, &name, err));
    if (name != NULL && strpbrk(name, "<>\"\r\n") != NULL)
        return sb_reject(err, 400, "invalid", "from_name",
                         "from_name must not contain <, >, quotes or newlines");
    /* The Resend key (and webhook secret), sealed: a reference, never a key ("re_..."). */
    const char *ref;
    SB_TRY(sb__opt_str(cmd, "secret_ref", 1, 512, &ref, err));
    if (ref != NULL && strncmp(ref, "secret:", 7) != 0)
        return sb_reject(err, 400, "secret_not_sealed", "secret_ref",
                         "secret_ref must be a reference to a sealed secret (secret:...)");
    if (sb__eq(sb__str(state, "email_from"), from) && sb__eq(sb__str(state, "email_from_name"), name) &&
        (ref == NULL || sb__eq(sb__str(state, "email_secret_ref"), ref)))
        return 0;
    return emit(out, "EmailSenderSet",
                json_pack("{s:s, s:s?, s:s?}", "from", from, "from_name", name, "secret_ref", ref));
}

static int clear_email_sender(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx,
                              sb_devents_t *out, sb_derror_t *err)
{
    SB_TRY(need_manager(state, ctx, err));
    if (sb__str(state, "email_from") == NULL && sb__str(state, "email_secret_ref") == NULL)
        return 0;
    return emit(out, "EmailSenderCleared", json_object());
}

static int set_parking_limit(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx,
                             sb_devents_t *out, sb_derror_t *err)
{
    SB_TRY(need_manager(state, ctx, err));
    const json_t *s = json_object_get(cmd, "seconds");
    if (s == NULL || json_is_null(s))
        return sb_reject(err, 400, "required", "seconds", "seconds is required");
    if (!json_is_integer(s) || json_integer_value(s) < 10 || json_integer_value(s) > 86400)
        return sb_reject(err, 400, "invalid", "seconds", "seconds must be 10 to 86400");
    json_int_t secs = json_integer_value(s);
    if (json_integer_value(json_object_get(state, "parking_limit_seconds")) == secs)
        return 0;
    return emit(out, "ParkingLimitSet", json_pack("{s:I}", "seconds", secs));
}

typedef int (*handler_fn)(const json_t *, const json_t *, const sb_decide_ctx_t *, sb_devents_t *,
                          sb_derror_t *);

static const struct {
    const char *type;
    handler_fn fn;
} handlers[] = {
    {"RenameWorkspace", rename_ws},         {"AddMember", add_member},
    {"RemoveMember", remove_member},        {"ChangeMemberRole", change_role},
    {"ConfigureTwilio", configure_twilio},  {"ClearTwilio", clear_twilio},
    {"AddPhoneNumber", add_number},         {"RemovePhoneNumber", remove_number},
    {"AssignPhoneNumber", assign_number},   {"AddPipelineStage", add_stage},
    {"RemovePipelineStage", remove_stage},  {"SetAutoReplyRule", set_rule},
    {"RemoveAutoReplyRule", remove_rule},   {"ChangeDefaultCountry", change_country},
    {"SetEmailSender", set_email_sender},   {"ClearEmailSender", clear_email_sender},
    {"SetParkingLimit", set_parking_limit},
};

static int dispatch(const json_t *state, const json_t *cmd, const char *type, const sb_decide_ctx_t *ctx,
                    sb_devents_t *out, sb_derror_t *err)
{
    if (strcmp(type, "CreateWorkspace") == 0)
        return create(state, cmd, ctx, out, err);
    for (size_t i = 0; i < sizeof handlers / sizeof handlers[0]; i++) {
        if (strcmp(handlers[i].type, type) == 0) {
            if (!json_is_true(json_object_get(state, "created")))
                return sb_reject(err, 404, "workspace_not_found", "", "no such workspace");
            return handlers[i].fn(state, cmd, ctx, out, err);
        }
    }
    return sb_reject(err, 400, "unknown_command", "type", "unknown workspace command %.60s", type);
}

static int ws_decide(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx, sb_devents_t *out,
                     sb_derror_t *err)
{
    return sb__decide(dispatch, state, cmd, ctx, out, err);
}

/* ---- evolve ------------------------------------------------------------------------------------- */

static void ws_evolve(json_t *state, const sb_devent_t *ev)
{
    const json_t *d = ev->data;
    const char *t = ev->type;
    json_t *members = json_object_get(state, "members");
    json_t *numbers = json_object_get(state, "numbers");
    json_t *stages = json_object_get(state, "stages");
    json_t *rules = json_object_get(state, "auto_replies");

    if (strcmp(t, "WorkspaceCreated") == 0) {
        json_object_set_new(state, "created", json_true());
        sb__set(state, "workspace_id", json_object_get(d, "workspace_id"));
        sb__set(state, "name", json_object_get(d, "name"));
        sb__set(state, "owner_id", json_object_get(d, "owner_id"));
        sb__set(state, "default_country", json_object_get(d, "default_country"));
        sb__set(state, "created_at", json_object_get(d, "created_at"));
    } else if (strcmp(t, "WorkspaceRenamed") == 0) {
        sb__set(state, "name", json_object_get(d, "name"));
    } else if (strcmp(t, "MemberAdded") == 0) {
        const char *uid = sb__str(d, "user_id");
        if (uid != NULL)
            json_object_set_new(members, uid,
                                json_pack("{s:o, s:o, s:o}", "role", sb__copy(json_object_get(d, "role")),
                                          "email", sb__copy(json_object_get(d, "email")), "name",
                                          sb__copy(json_object_get(d, "name"))));
    } else if (strcmp(t, "MemberRemoved") == 0) {
        const char *uid = sb__str(d, "user_id");
        if (uid == NULL)
            return;
        json_object_del(members, uid);
        /* A number assigned to someone who left falls back to the workspace queue. */
        const char *k;
        json_t *v;
        json_object_foreach(numbers, k, v)
        {
            if (sb__eq(sb__str(v, "assigned_to"), uid))
                json_object_set_new(v, "assigned_to", json_null());
        }
    } else if (strcmp(t, "MemberRoleChanged") == 0) {
        json_t *m = json_object_get(members, sb__str(d, "user_id") ? sb__str(d, "user_id") : "");
        if (m != NULL)
            sb__set(m, "role", json_object_get(d, "to"));
    } else if (strcmp(t, "TwilioConfigured") == 0) {
        json_object_set_new(state, "twilio",
                            json_pack("{s:o, s:o, s:o, s:o}", "account_sid",
                                      sb__copy(json_object_get(d, "account_sid")), "api_key_sid",
                                      sb__copy(json_object_get(d, "api_key_sid")), "twiml_app_sid",
                                      sb__copy(json_object_get(d, "twiml_app_sid")), "secret_ref",
                                      sb__copy(json_object_get(d, "secret_ref"))));
    } else if (strcmp(t, "TwilioCleared") == 0) {
        json_object_set_new(state, "twilio", json_null());
        json_object_clear(numbers);
    } else if (strcmp(t, "PhoneNumberAdded") == 0) {
        const char *n = sb__str(d, "number");
        if (n != NULL)
            json_object_set_new(numbers, n,
                                json_pack("{s:o, s:o}", "sid", sb__copy(json_object_get(d, "sid")),
                                          "assigned_to", sb__copy(json_object_get(d, "assigned_to"))));
    } else if (strcmp(t, "PhoneNumberRemoved") == 0) {
        if (sb__str(d, "number") != NULL)
            json_object_del(numbers, sb__str(d, "number"));
    } else if (strcmp(t, "PhoneNumberAssigned") == 0) {
        json_t *n = json_object_get(numbers, sb__str(d, "number") ? sb__str(d, "number") : "");
        if (n != NULL)
            sb__set(n, "assigned_to", json_object_get(d, "assigned_to"));
    } else if (strcmp(t, "PipelineStageAdded") == 0) {
        const char *name = sb__str(d, "name");
        if (name == NULL || sb__array_find(stages, name, true) >= 0)
            return;
        json_int_t pos = json_integer_value(json_object_get(d, "position"));
        if (pos < 0 || pos > (json_int_t)json_array_size(stages))
            pos = (json_int_t)json_array_size(stages);
        json_array_insert_new(stages, (size_t)pos, json_string(name));
    } else if (strcmp(t, "PipelineStageRemoved") == 0) {
        int i = sb__array_find(stages, sb__str(d, "name"), true);
        if (i >= 0)
            json_array_remove(stages, (size_t)i);
    } else if (strcmp(t, "AutoReplyRuleSet") == 0) {
        if (sb__str(d, "keyword") != NULL)
            sb__set(rules, sb__str(d, "keyword"), json_object_get(d, "reply"));
    } else if (strcmp(t, "AutoReplyRuleRemoved") == 0) {
        if (sb__str(d, "keyword") != NULL)
            json_object_del(rules, sb__str(d, "keyword"));
    } else if (strcmp(t, "DefaultCountryChanged") == 0) {
        sb__set(state, "default_country", json_object_get(d, "to"));
    } else if (strcmp(t, "EmailSenderSet") == 0) {
        sb__set(state, "email_from", json_object_get(d, "from"));
        sb__set(state, "email_from_name", json_object_get(d, "from_name"));
        if (json_is_string(json_object_get(d, "secret_ref")))
            sb__set(state, "email_secret_ref", json_object_get(d, "secret_ref"));
    } else if (strcmp(t, "EmailSenderCleared") == 0) {
        json_object_set_new(state, "email_from", json_null());
        json_object_set_new(state, "email_from_name", json_null());
        json_object_del(state, "email_secret_ref");
    } else if (strcmp(t, "ParkingLimitSet") == 0) {
        sb__set(state, "parking_limit_seconds", json_object_get(d, "seconds"));
    }
}

const sb_kind_t sb_kind_workspace = {
    .category = "workspace",
    .initial = ws_initial,
    .decide = ws_decide,
    .evolve = ws_evolve,
};

json_t *sb_workspace_context(const json_t *ws)
{
    json_t *members = json_array();
    const char *uid;
    const json_t *m;
    json_object_foreach((json_t *)json_object_get(ws, "members"), uid, m)
    {
        json_array_append_new(members, json_pack("{s:s, s:o, s:o, s:o}", "user_id", uid, "role",
                                                 sb__copy(json_object_get(m, "role")), "name",
                                                 sb__copy(json_object_get(m, "name")), "email",
                                                 sb__copy(json_object_get(m, "email"))));
    }
    return json_pack("{s:o, s:o, s:o, s:o, s:o}", "workspace_id",
                     sb__copy(json_object_get(ws, "workspace_id")), "default_country",
                     sb__copy(json_object_get(ws, "default_country")), "members", members, "stages",
                     sb__copy(json_object_get(ws, "stages")), "parking_limit_seconds",
                     sb__copy(json_object_get(ws, "parking_limit_seconds")));
}
