/* The contact decider: a person a workspace talks to, the pipeline stage they are in, who works
 * them, their opt-outs, the team's notes on them, and (contact_messages.c) every message with them.
 * docs/events.md lists commands and events.
 *
 * Decisions read the workspace through ctx->context (sb_workspace_context): "default_country" for
 * national phone formats, "stages" and "members" to check stages, assignees, mentions and the acting
 * user (a user who is not a member is refused; NULL user_id is the system).
 *
 * State: {"created", "deleted", "contact_id", "workspace_id", "name", "phones", "emails", "tags",
 *         "stage", "assignee_id", "created_at", "opt_outs": {"sms": {"keyword", "at"}, ...},
 *         "messages": {...}, "settled": [...], "provider_ids": [...],
 *         "notes": {"<id>": {"author_id", "private", "created_at"}}} */
#include "actors/contact_int.h"
#include "actors/dutil.h"
#include "actors/kinds.h"
#include "core/error.h"

#include <ctype.h>
#include <string.h>

#define MAX_PHONES 10
#define MAX_EMAILS 10
#define MAX_TAGS 50
#define NOTE_MAX_CHARS 10000
#define MAX_MENTIONS 50
#define MAX_HANDLES 200

static const char *const optout_channels[] = {"sms", "mms", "whatsapp", "email", NULL};

static json_t *contact_initial(void)
{
    return json_pack(
        "{s:b, s:b, s:n, s:n, s:n, s:[], s:[], s:[], s:n, s:n, s:n, s:{}, s:{}, s:[], s:[], s:{}}", "created",
        0, "deleted", 0, "contact_id", "workspace_id", "name", "phones", "emails", "tags", "stage",
        "assignee_id", "created_at", "opt_outs", "messages", "settled", "provider_ids", "notes");
}

const char *sb__optout_group(const char *channel)
{
    if (sb__eq(channel, "sms") || sb__eq(channel, "mms"))
        return "sms";
    if (sb__eq(channel, "whatsapp"))
        return "whatsapp";
    if (sb__eq(channel, "email"))
        return "email";
    return NULL;
}

/* ---- field checks ------------------------------------------------------------------------------ */

/* Collects "phone" (a string) and "phones" (an array) into one normalised, de-duplicated list.
 * *out stays NULL when the command has neither. */
static int read_phones(const json_t *cmd, const sb_decide_ctx_t *ctx, json_t **out, sb_derror_t *err)
{
    const json_t *one = json_object_get(cmd, "phone"), *many = json_object_get(cmd, "phones");
    char e164[SB_PHONE_MAX];
    *out = NULL;
    if ((one == NULL || json_is_null(one)) && (many == NULL || json_is_null(many)))
        return 0;
    if (many != NULL && !json_is_null(many) && !json_is_array(many))
        return sb_reject(err, 400, "invalid", "phones", "phones must be an array of strings");
    if (one != NULL && !json_is_null(one) && !json_is_string(one))
        return sb_reject(err, 400, "invalid", "phone", "phone must be a string");
    json_t *list = json_array();
    size_t n = (one && json_is_string(one) ? 1 : 0) + json_array_size(many);
    for (size_t i = 0; i < n; i++) {
        bool single = one && json_is_string(one) && i == 0;
        const json_t *v = single ? one : json_array_get(many, i - (one && json_is_string(one) ? 1 : 0));
        const char *field = single ? "phone" : "phones";
        int rc = json_is_string(v) ? sb__phone(json_string_value(v), sb__ctx_country(ctx), field, e164, err)
                                   : sb_reject(err, 400, "invalid", field, "phones must be strings");
        if (rc != 0) {
            json_decref(list);
            return rc;
        }
        if (sb__array_find(list, e164, false) < 0)
            json_array_append_new(list, json_string(e164));
    }
    if (json_array_size(list) > MAX_PHONES) {
        json_decref(list);
        return sb_reject(err, 400, "invalid", "phones", "a contact has at most %d phone numbers", MAX_PHONES);
    }
    *out = list;
    return 0;
}

static int read_emails(const json_t *cmd, json_t **out, sb_derror_t *err)
{
    const json_t *one = json_object_get(cmd, "email"), *many = json_object_get(cmd, "emails");
    char addr[SB_EMAIL_MAX];
    *out = NULL;
    if ((one == NULL || json_is_null(one)) && (many == NULL || json_is_null(many)))
        return 0;
    if (many != NULL && !json_is_null(many) && !json_is_array(many))
        return sb_reject(err, 400, "invalid", "emails", "emails must be an array of strings");
    if (one != NULL && !json_is_null(one) && !json_is_string(one))
        return sb_reject(err, 400, "invalid", "email", "email must be a string");
    json_t *list = json_array();
    size_t first = one && json_is_string(one) ? 1 : 0;
    size_t n = first + json_array_size(many);
    for (size_t i = 0; i < n; i++) {
        const json_t *v = i < first ? one : json_array_get(many, i - first);
        const char *field = i < first ? "email" : "emails";
        int rc = json_is_string(v) ? sb__email(json_string_value(v), field, addr, err)
                                   : sb_reject(err, 400, "invalid", field, "emails must be strings");
        if (rc != 0) {
            json_decref(list);
            return rc;
        }
        if (sb__array_find(list, addr, false) < 0)
            json_array_append_new(list, json_string(addr));
    }
    if (json_array_size(list) > MAX_EMAILS) {
        json_decref(list);
        return sb_reject(err, 400, "invalid", "emails", "a contact has at most %d e-mail addresses",
                         MAX_EMAILS);
    }
    *out = list;
    return 0;
}

/* A tag: trimmed, 1..64 characters, no control characters.  Returns a new json string. */
static int read_tag(const json_t *v, const char *field, json_t **out, sb_derror_t *err)
{
    json_t *t;
    if (v == NULL || json_is_null(v))
        return sb_reject(err, 400, "required", field, "%s is required", field);
    if (!json_is_string(v))
        return sb_reject(err, 400, "invalid", field, "tags are strings");
    SB_TRY(sb__trimmed(json_string_value(v), field, 1, 64, &t, err));
    for (const unsigned char *p = (const unsigned char *)json_string_value(t); *p; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            json_decref(t);
            return sb_reject(err, 400, "invalid", field, "tags must not contain control characters");
        }
    }
    *out = t;
    return 0;
}

/* Tags compare case-insensitively and keep the spelling first given. */
static int read_tags(const json_t *cmd, json_t **out, sb_derror_t *err)
{
    const json_t *many = json_object_get(cmd, "tags");
    *out = NULL;
    if (many == NULL || json_is_null(many))
        return 0;
    if (!json_is_array(many))
        return sb_reject(err, 400, "invalid", "tags", "tags must be an array of strings");
    json_t *list = json_array();
    for (size_t i = 0; i < json_array_size(many); i++) {
        json_t *t;
        int rc = read_tag(json_array_get(many, i), "tags", &t, err);
        if (rc != 0) {
            json_decref(list);
            return rc;
        }
        if (sb__array_find(list, json_string_value(t), true) < 0)
            json_array_append_new(list, t);
        else
            json_decref(t);
    }
    if (json_array_size(list) > MAX_TAGS) {
        json_decref(list);
        return sb_reject(err, 400, "invalid", "tags", "a contact has at most %d tags", MAX_TAGS);
    }
    *out = list;
    return 0;
}

/* A stage from the workspace's pipeline (null clears it); *out is the pipeline's spelling. */
static int read_stage(const json_t *cmd, const sb_decide_ctx_t *ctx, const char **out, sb_derror_t *err)
{
    const char *s;
    SB_TRY(sb__opt_str(cmd, "stage", 1, 200, &s, err));
    *out = NULL;
    if (s == NULL)
        return 0;
    const json_t *stages = json_object_get(ctx->context, "stages");
    int i = sb__array_find(stages, s, true);
    if (i < 0)
        return sb_reject(err, 400, "unknown_stage", "stage", "no stage named %.60s in this pipeline", s);
    *out = json_string_value(json_array_get(stages, (size_t)i));
    return 0;
}

static int read_assignee(const json_t *cmd, const sb_decide_ctx_t *ctx, const char **out, sb_derror_t *err)
{
    SB_TRY(sb__opt_uuid(cmd, "assignee_id", out, err));
    if (*out != NULL && sb__ctx_member(ctx, *out) == NULL)
        return sb_reject(err, 400, "unknown_member", "assignee_id",
                         "the assignee is not a member of this workspace");
    return 0;
}

/* ---- profile and pipeline ----------------------------------------------------------------------- */

static int create(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx, sb_devents_t *out,
                  sb_derror_t *err)
{
    const char *ws, *stage, *assignee;
    json_t *name = NULL, *phones = NULL, *emails = NULL, *tags = NULL;
    char now[SB_RFC3339_LEN];
    int rc;
    if (json_is_true(json_object_get(state, "created")))
        return sb_reject(err, 409, "contact_exists", "", "this contact already exists");
    if ((rc = sb__need_uuid(cmd, "workspace_id", &ws, err)) != 0 ||
        (rc = read_stage(cmd, ctx, &stage, err)) != 0 || (rc = read_assignee(cmd, ctx, &assignee, err)) != 0)
        return rc;
    if (sb__has(cmd, "name"))
        rc = sb__need_text(cmd, "name", 0, 200, &name, err);
    else
        name = json_string("");
    if (rc != 0 || (rc = read_phones(cmd, ctx, &phones, err)) != 0 ||
        (rc = read_emails(cmd, &emails, err)) != 0 || (rc = read_tags(cmd, &tags, err)) != 0)
        goto out_free;
    if (json_string_length(name) == 0 && json_array_size(phones) == 0 && json_array_size(emails) == 0) {
        rc = sb_reject(err, 400, "required", "name", "a contact needs a name, a phone or an e-mail");
        goto out_free;
    }
    sb__now(ctx, now);
    rc = sb_devents_add(out, "ContactCreated",
                        json_pack("{s:s?, s:s, s:O, s:o, s:o, s:o, s:s?, s:s?, s:s, s:s?}", "contact_id",
                                  ctx->id, "workspace_id", ws, "name", name, "phones",
                                  phones ? phones : json_array(), "emails", emails ? emails : json_array(),
                                  "tags", tags ? tags : json_array(), "stage", stage, "assignee_id", assignee,
                                  "created_at", now, "created_by", ctx->user_id));
    json_decref(name);
    return rc;
out_free:
    json_decref(name);
    json_decref(phones);
    json_decref(emails);
    json_decref(tags);
    return rc;
}

static int stage_event(const json_t *state, const char *to, const sb_decide_ctx_t *ctx, sb_devents_t *out)
{
    const char *from = sb__str(state, "stage");
    if (sb__eq(from, to))
        return 0;
    return sb_devents_add(out, "ContactStageChanged",
                          json_pack("{s:s?, s:s?, s:s?}", "from", from, "to", to, "by", ctx->user_id));
}

static int assign_event(const json_t *state, const char *to, const sb_decide_ctx_t *ctx, sb_devents_t *out)
{
    const char *from = sb__str(state, "assignee_id");
    if (sb__eq(from, to))
        return 0;
    return sb_devents_add(
        out, "ContactAssigned",
        json_pack("{s:s?, s:s?, s:s?}", "assignee_id", to, "from", from, "by", ctx->user_id));
}

/* Tag lists are equal when they hold the same tags in the same order (a reorder is a change). */
static bool same_list(const json_t *a, const json_t *b)
{
    return json_equal((json_t *)a, (json_t *)b) != 0;
}

/* PATCH: ContactUpdated with the fields that changed (name, phones, emails, tags as whole new
 * values), then ContactStageChanged / ContactAssigned when those moved. */
static int update(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx, sb_devents_t *out,
                  sb_derror_t *err)
{
    json_t *changed = json_object(), *v = NULL;
    const char *stage = NULL, *assignee = NULL;
    int rc = 0;
    if (sb__has(cmd, "name")) {
        if ((rc = sb__need_text(cmd, "name", 0, 200, &v, err)) != 0)
            goto out_free;
        if (!sb__eq(json_string_value(v), sb__str(state, "name")))
            json_object_set(changed, "name", v);
        json_decref(v);
    }
    if ((rc = read_phones(cmd, ctx, &v, err)) != 0)
        goto out_free;
    if (v != NULL && !same_list(v, json_object_get(state, "phones")))
        json_object_set(changed, "phones", v);
    json_decref(v);
    if ((rc = read_emails(cmd, &v, err)) != 0)
        goto out_free;
    if (v != NULL && !same_list(v, json_object_get(state, "emails")))
        json_object_set(changed, "emails", v);
    json_decref(v);
    if ((rc = read_tags(cmd, &v, err)) != 0)
        goto out_free;
    if (v != NULL && !same_list(v, json_object_get(state, "tags")))
        json_object_set(changed, "tags", v);
    json_decref(v);
    bool has_stage = json_object_get(cmd, "stage") != NULL;
    bool has_assignee = json_object_get(cmd, "assignee_id") != NULL;
    if ((has_stage && (rc = read_stage(cmd, ctx, &stage, err)) != 0) ||
        (has_assignee && (rc = read_assignee(cmd, ctx, &assignee, err)) != 0))
        goto out_free;

    /* The result must still name the person somehow. */
    const json_t *name =
        json_object_get(changed, "name") ? json_object_get(changed, "name") : json_object_get(state, "name");
    const json_t *phones = json_object_get(changed, "phones") ? json_object_get(changed, "phones")
                                                              : json_object_get(state, "phones");
    const json_t *emails = json_object_get(changed, "emails") ? json_object_get(changed, "emails")
                                                              : json_object_get(state, "emails");
    if (json_string_length(name) == 0 && json_array_size(phones) == 0 && json_array_size(emails) == 0) {
        rc = sb_reject(err, 400, "invalid", "name", "a contact needs a name, a phone or an e-mail");
        goto out_free;
    }
    if (json_object_size(changed) > 0) {
        json_object_set_new(changed, "by", ctx->user_id ? json_string(ctx->user_id) : json_null());
        rc = sb_devents_add(out, "ContactUpdated", changed);
        changed = NULL;
        if (rc != 0)
            return rc;
    }
    json_decref(changed);
    if (has_stage)
        SB_TRY(stage_event(state, stage, ctx, out));
    if (has_assignee)
        SB_TRY(assign_event(state, assignee, ctx, out));
    return 0;
out_free:
    json_decref(changed);
    return rc;
}

static int change_stage(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx, sb_devents_t *out,
                        sb_derror_t *err)
{
    const char *stage;
    if (json_object_get(cmd, "stage") == NULL)
        return sb_reject(err, 400, "required", "stage", "stage is required (null clears it)");
    SB_TRY(read_stage(cmd, ctx, &stage, err));
    return stage_event(state, stage, ctx, out);
}

static int assign(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx, sb_devents_t *out,
                  sb_derror_t *err)
{
    const char *assignee;
    if (json_object_get(cmd, "assignee_id") == NULL)
        return sb_reject(err, 400, "required", "assignee_id", "assignee_id is required (null unassigns)");
    SB_TRY(read_assignee(cmd, ctx, &assignee, err));
    return assign_event(state, assignee, ctx, out);
}

static int tag(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx, sb_devents_t *out,
               sb_derror_t *err)
{
    json_t *t;
    SB_TRY(read_tag(json_object_get(cmd, "tag"), "tag", &t, err));
    const json_t *tags = json_object_get(state, "tags");
    if (sb__array_find(tags, json_string_value(t), true) >= 0) {
        json_decref(t);
        return 0;
    }
    if (json_array_size(tags) >= MAX_TAGS) {
        json_decref(t);
        return sb_reject(err, 409, "limit_reached", "tag", "a contact has at most %d tags", MAX_TAGS);
    }
    return sb_devents_add(out, "ContactTagged", json_pack("{s:o, s:s?}", "tag", t, "by", ctx->user_id));
}

static int untag(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx, sb_devents_t *out,
                 sb_derror_t *err)
{
    json_t *t;
    SB_TRY(read_tag(json_object_get(cmd, "tag"), "tag", &t, err));
    const json_t *tags = json_object_get(state, "tags");
    int i = sb__array_find(tags, json_string_value(t), true);
    json_decref(t);
    if (i < 0)
        return 0;
    return sb_devents_add(
        out, "ContactUntagged",
        json_pack("{s:O, s:s?}", "tag", json_array_get(tags, (size_t)i), "by", ctx->user_id));
}

static int delete_contact(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx,
                          sb_devents_t *out, sb_derror_t *err)
{
    /* Scheduled messages die with the contact.  One event, listing them, whatever their number. */
    json_t *cancelled = json_array();
    const char *id;
    const json_t *m;
    json_object_foreach((json_t *)json_object_get(state, "messages"), id, m)
    {
        if (sb__eq(sb__str(m, "status"), "scheduled"))
            json_array_append_new(cancelled, json_string(id));
    }
    char now[SB_RFC3339_LEN];
    sb__now(ctx, now);
    return sb_devents_add(
        out, "ContactDeleted",
        json_pack("{s:o, s:s?, s:s}", "cancelled_message_ids", cancelled, "by", ctx->user_id, "at", now));
}

static int opt(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx, sb_devents_t *out,
               sb_derror_t *err, bool out_not_in)
{
    const char *channel, *keyword;
    SB_TRY(sb__need_enum(cmd, "channel", optout_channels, &channel, err));
    SB_TRY(sb__opt_str(cmd, "keyword", 1, 32, &keyword, err));
    const char *group = sb__optout_group(channel);
    bool is_out = json_object_get(json_object_get(state, "opt_outs"), group) != NULL;
    if (is_out == out_not_in)
        return 0;
    char now[SB_RFC3339_LEN];
    sb__now(ctx, now);
    return sb_devents_add(out, out_not_in ? "ContactOptedOut" : "ContactOptedIn",
                          json_pack("{s:s, s:s?, s:n, s:s?, s:s}", "channel", group, "keyword", keyword,
                                    "message_id", "by", ctx->user_id, "at", now));
}

/* ---- notes ---------------------------------------------------------------------------------- */

/* The handle a note's "@handle" names a member by: the part of their e-mail before '@', or their
 * name without white space; case-insensitive. */
static bool handle_matches(const json_t *m, const char *h, size_t n)
{
    const char *email = sb__str(m, "email"), *name = sb__str(m, "name");
    if (email != NULL) {
        const char *at = strchr(email, '@');
        if (at != NULL && (size_t)(at - email) == n && strncasecmp(email, h, n) == 0)
            return true;
    }
    if (name != NULL) {
        size_t i = 0;
        for (const char *p = name; *p; p++) {
            if (isspace((unsigned char)*p))
                continue;
            if (i >= n || tolower((unsigned char)*p) != tolower((unsigned char)h[i]))
                return false;
            i++;
        }
        return i == n && n > 0;
    }
    return false;
}

static bool is_handle_char(char c)
{
    return isalnum((unsigned char)c) || c == '.' || c == '_' || c == '-';
}

/* Member ids mentioned in body, once each, in order of first mention.  An '@' inside a word (an
 * e-mail address) is not a mention; a handle's trailing punctuation ("@ana.") is dropped. */
static json_t *mentions(const char *body, const sb_decide_ctx_t *ctx)
{
    json_t *ids = json_array();
    const json_t *members = json_object_get(ctx->context, "members");
    int looked =
        0; /* handles compared against every member: bounded, so a note of "@a @a @a ..." stays cheap */
    for (const char *p = body; *p && json_array_size(ids) < MAX_MENTIONS && looked < MAX_HANDLES; p++) {
        if (*p != '@' || (p > body && (is_handle_char(p[-1]) || p[-1] == '@' || p[-1] == '+')))
            continue;
        const char *h = p + 1;
        size_t n = 0;
        while (is_handle_char(h[n]))
            n++;
        while (n > 0 && (h[n - 1] == '.' || h[n - 1] == '-' || h[n - 1] == '_'))
            n--;
        if (n == 0)
            continue;
        looked++;
        size_t i;
        const json_t *m;
        json_array_foreach(members, i, m)
        {
            const char *uid = sb__str(m, "user_id");
            if (uid != NULL && handle_matches(m, h, n) && sb__array_find(ids, uid, false) < 0) {
                json_array_append_new(ids, json_string(uid));
                break;
            }
        }
        p = h + n - 1;
    }
    return ids;
}

static int add_note(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx, sb_devents_t *out,
                    sb_derror_t *err)
{
    const char *id, *body;
    bool priv;
    SB_TRY(sb__need_uuid(cmd, "note_id", &id, err));
    SB_TRY(sb__need_str(cmd, "body", 1, NOTE_MAX_CHARS, &body, err));
    SB_TRY(sb__opt_bool(cmd, "private", false, &priv, err));
    const json_t *notes = json_object_get(state, "notes");
    if (json_object_get(notes, id) != NULL)
        return 0; /* a retry */
    if (json_object_size(notes) >= SB_CONTACT_MAX_NOTES)
        return sb_reject(err, 409, "limit_reached", "", "a contact has at most %d notes",
                         SB_CONTACT_MAX_NOTES);
    char now[SB_RFC3339_LEN];
    sb__now(ctx, now);
    return sb_devents_add(out, "NoteAdded",
                          json_pack("{s:s, s:s?, s:s, s:b, s:o, s:s}", "note_id", id, "author_id",
                                    ctx->user_id, "body", body, "private", priv, "mentions",
                                    mentions(body, ctx), "at", now));
}

/* Only a note's author may change it (the system may too). */
static int own_note(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx, const char **id,
                    sb_derror_t *err)
{
    SB_TRY(sb__need_uuid(cmd, "note_id", id, err));
    const json_t *note = json_object_get(json_object_get(state, "notes"), *id);
    if (note == NULL)
        return sb_reject(err, 404, "unknown_note", "note_id", "no such note");
    if (ctx->user_id != NULL && !sb__eq(sb__str(note, "author_id"), ctx->user_id))
        return sb_reject(err, 403, "not_author", "note_id", "only the note's author may change it");
    return 0;
}

static int edit_note(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx, sb_devents_t *out,
                     sb_derror_t *err)
{
    const char *id, *body;
    SB_TRY(own_note(state, cmd, ctx, &id, err));
    SB_TRY(sb__need_str(cmd, "body", 1, NOTE_MAX_CHARS, &body, err));
    char now[SB_RFC3339_LEN];
    sb__now(ctx, now);
    return sb_devents_add(out, "NoteEdited",
                          json_pack("{s:s, s:s, s:o, s:s?, s:s}", "note_id", id, "body", body, "mentions",
                                    mentions(body, ctx), "by", ctx->user_id, "at", now));
}

static int delete_note(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx, sb_devents_t *out,
                       sb_derror_t *err)
{
    const char *id;
    SB_TRY(own_note(state, cmd, ctx, &id, err));
    char now[SB_RFC3339_LEN];
    sb__now(ctx, now);
    return sb_devents_add(out, "NoteDeleted",
                          json_pack("{s:s, s:s?, s:s}", "note_id", id, "by", ctx->user_id, "at", now));
}

/* ---- dispatch ------------------------------------------------------------------------------- */

typedef int (*handler_fn)(const json_t *, const json_t *, const sb_decide_ctx_t *, sb_devents_t *,
                          sb_derror_t *);

static int opt_out(const json_t *s, const json_t *c, const sb_decide_ctx_t *x, sb_devents_t *o,
                   sb_derror_t *e)
{
    return opt(s, c, x, o, e, true);
}

static int opt_in(const json_t *s, const json_t *c, const sb_decide_ctx_t *x, sb_devents_t *o, sb_derror_t *e)
{
    return opt(s, c, x, o, e, false);
}

static const struct {
    const char *type;
    handler_fn fn;
} handlers[] = {
    {"UpdateContact", update},  {"ChangeStage", change_stage}, {"AssignContact", assign},
    {"TagContact", tag},        {"UntagContact", untag},       {"DeleteContact", delete_contact},
    {"OptOutContact", opt_out}, {"OptInContact", opt_in},      {"AddNote", add_note},
    {"EditNote", edit_note},    {"DeleteNote", delete_note},
};

static int dispatch(const json_t *state, const json_t *cmd, const char *type, const sb_decide_ctx_t *ctx,
                    sb_devents_t *out, sb_derror_t *err)
{
    SB_TRY(sb__need_actor_member(ctx, err));
    if (strcmp(type, "CreateContact") == 0)
        return create(state, cmd, ctx, out, err);
    handler_fn fn = NULL;
    for (size_t i = 0; i < sizeof handlers / sizeof handlers[0] && fn == NULL; i++)
        if (strcmp(handlers[i].type, type) == 0)
            fn = handlers[i].fn;
    bool created = json_is_true(json_object_get(state, "created"));
    bool deleted = json_is_true(json_object_get(state, "deleted"));
    if (created && sb__other_workspace(state, ctx))
        return sb_reject(err, 404, "contact_not_found", "", "no such contact");
    if (fn != NULL) {
        if (!created)
            return sb_reject(err, 404, "contact_not_found", "", "no such contact");
        if (deleted)
            return sb_reject(err, 404, "contact_deleted", "", "this contact was deleted");
        return fn(state, cmd, ctx, out, err);
    }
    /* Message commands: outcomes of messages already sent (RecordMessageStatus) still land on a
     * deleted contact, since they are facts about the past; contact_messages.c checks the rest. */
    if (!created && strcmp(type, "SendMessage") != 0 && strcmp(type, "ReceiveMessage") != 0 &&
        strcmp(type, "DispatchScheduledMessage") != 0 && strcmp(type, "CancelScheduledMessage") != 0 &&
        strcmp(type, "RecordMessageStatus") != 0)
        return sb_reject(err, 400, "unknown_command", "type", "unknown contact command %.60s", type);
    if (!created)
        return sb_reject(err, 404, "contact_not_found", "", "no such contact");
    int rc = sb__contact_message_decide(state, deleted, cmd, type, ctx, out, err);
    if (rc == 1)
        return sb_reject(err, 400, "unknown_command", "type", "unknown contact command %.60s", type);
    return rc;
}

static int contact_decide(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx,
                          sb_devents_t *out, sb_derror_t *err)
{
    return sb__decide(dispatch, state, cmd, ctx, out, err);
}

/* ---- evolve ------------------------------------------------------------------------------------- */

static void contact_evolve(json_t *state, const sb_devent_t *ev)
{
    const json_t *d = ev->data;
    const char *t = ev->type;
    if (sb__contact_message_evolve(state, ev))
        return; /* a message event (ContactDeleted goes on below after its messages) */
    if (strcmp(t, "ContactCreated") == 0) {
        static const char *const keys[] = {"name",        "phones",     "emails",       "tags",      "stage",
                                           "assignee_id", "created_at", "workspace_id", "contact_id"};
        json_object_set_new(state, "created", json_true());
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
            if (json_object_get(d, keys[i]) != NULL)
                sb__set(state, keys[i], json_object_get(d, keys[i]));
    } else if (strcmp(t, "ContactUpdated") == 0) {
        static const char *const keys[] = {"name", "phones", "emails", "tags"};
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
            if (json_object_get(d, keys[i]) != NULL)
                sb__set(state, keys[i], json_object_get(d, keys[i]));
    } else if (strcmp(t, "ContactStageChanged") == 0) {
        sb__set(state, "stage", json_object_get(d, "to"));
    } else if (strcmp(t, "ContactAssigned") == 0) {
        sb__set(state, "assignee_id", json_object_get(d, "assignee_id"));
    } else if (strcmp(t, "ContactTagged") == 0) {
        json_t *tags = json_object_get(state, "tags");
        const char *tg = sb__str(d, "tag");
        if (tg != NULL && sb__array_find(tags, tg, true) < 0)
            json_array_append_new(tags, json_string(tg));
    } else if (strcmp(t, "ContactUntagged") == 0) {
        json_t *tags = json_object_get(state, "tags");
        int i = sb__array_find(tags, sb__str(d, "tag"), true);
        if (i >= 0)
            json_array_remove(tags, (size_t)i);
    } else if (strcmp(t, "ContactDeleted") == 0) {
        /* contact_messages.c has already cancelled the scheduled messages it lists. */
        json_object_set_new(state, "deleted", json_true());
    } else if (strcmp(t, "ContactOptedOut") == 0) {
        const char *ch = sb__str(d, "channel");
        if (ch != NULL)
            json_object_set_new(json_object_get(state, "opt_outs"), ch,
                                json_pack("{s:o, s:o}", "keyword", sb__copy(json_object_get(d, "keyword")),
                                          "at", sb__copy(json_object_get(d, "at"))));
    } else if (strcmp(t, "ContactOptedIn") == 0) {
        const char *ch = sb__str(d, "channel");
        if (ch != NULL)
            json_object_del(json_object_get(state, "opt_outs"), ch);
    } else if (strcmp(t, "NoteAdded") == 0) {
        const char *id = sb__str(d, "note_id");
        if (id != NULL)
            json_object_set_new(json_object_get(state, "notes"), id,
                                json_pack("{s:o, s:o, s:o}", "author_id",
                                          sb__copy(json_object_get(d, "author_id")), "private",
                                          sb__copy(json_object_get(d, "private")), "created_at",
                                          sb__copy(json_object_get(d, "at"))));
    } else if (strcmp(t, "NoteDeleted") == 0) {
        const char *id = sb__str(d, "note_id");
        if (id != NULL)
            json_object_del(json_object_get(state, "notes"), id);
    }
}

const sb_kind_t sb_kind_contact = {
    .category = "contact",
    .initial = contact_initial,
    .decide = contact_decide,
    .evolve = contact_evolve,
};
