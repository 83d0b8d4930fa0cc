/* The user decider: an account (sign-up, profile, presence).  E-mail uniqueness across the system
 * is a claim stream ("email:<addr>", src/actors/claim.c) the caller takes before registering.
 *
 * State: {"registered", "user_id", "email", "name", "credential_ref", "registered_at",
 *         "presence", "presence_changed_at"} */
#include "actors/dutil.h"
#include "actors/kinds.h"
#include "core/error.h"

#include <string.h>

static const char *const presences[] = {"online", "away", "offline", NULL};

static json_t *user_initial(void)
{
    return json_pack("{s:b, s:n, s:n, s:n, s:n, s:n, s:s, s:n}", "registered", 0, "user_id", "email", "name",
                     "credential_ref", "registered_at", "presence", "offline", "presence_changed_at");
}

/* The log keeps only a reference to the credential (e.g. a sealed password hash, or a key into a
 * secret store).  Refuse what is plainly a bare password hash so a caller's mistake never writes one
 * into the log. */
static int need_credential(const json_t *cmd, const char **ref, sb_derror_t *err)
{
    static const char *const bare[] = {"$argon2", "$2a$",    "$2b$", "$2y$", "$scrypt$",
                                       "$7$",     "$pbkdf2", "$6$",  "$5$"};
    SB_TRY(sb__need_str(cmd, "credential_ref", 1, 1024, ref, err));
    for (size_t i = 0; i < sizeof bare / sizeof bare[0]; i++)
        if (strncmp(*ref, bare[i], strlen(bare[i])) == 0)
            return sb_reject(err, 400, "credential_not_sealed", "credential_ref",
                             "credential_ref looks like a bare password hash; seal it first");
    return 0;
}

/* Only the user themself, or the system, changes an account. */
static int need_self(const sb_decide_ctx_t *ctx, sb_derror_t *err)
{
    if (ctx->user_id == NULL || sb__eq(ctx->user_id, ctx->id))
        return 0;
    return sb_reject(err, 403, "forbidden", "", "only the user may change this account");
}

static int dispatch(const json_t *state, const json_t *cmd, const char *type, const sb_decide_ctx_t *ctx,
                    sb_devents_t *out, sb_derror_t *err)
{
    bool registered = json_is_true(json_object_get(state, "registered"));
    char now[SB_RFC3339_LEN], email[SB_EMAIL_MAX];
    sb__now(ctx, now);

    if (strcmp(type, "RegisterUser") == 0) {
        const char *email_in, *ref;
        json_t *name;
        if (registered)
            return sb_reject(err, 409, "already_registered", "", "this user is already registered");
        SB_TRY(sb__need_str(cmd, "email", 1, 254, &email_in, err));
        SB_TRY(sb__email(email_in, "email", email, err));
        SB_TRY(need_credential(cmd, &ref, err));
        SB_TRY(sb__need_text(cmd, "name", 1, 200, &name, err));
        return sb_devents_add(out, "UserRegistered",
                              json_pack("{s:s?, s:s, s:o, s:s, s:s}", "user_id", ctx->id, "email", email,
                                        "name", name, "credential_ref", ref, "registered_at", now));
    }

    bool known = strcmp(type, "ChangePresence") == 0 || strcmp(type, "UpdateProfile") == 0 ||
                 strcmp(type, "ChangeCredential") == 0;
    if (!known)
        return sb_reject(err, 400, "unknown_command", "type", "unknown user command %.60s", type);
    if (!registered)
        return sb_reject(err, 404, "user_not_found", "", "no such user");
    SB_TRY(need_self(ctx, err));

    if (strcmp(type, "ChangePresence") == 0) {
        const char *p;
        SB_TRY(sb__need_enum(cmd, "presence", presences, &p, err));
        const char *from = sb__str(state, "presence");
        if (sb__eq(from, p))
            return 0;
        return sb_devents_add(out, "UserPresenceChanged",
                              json_pack("{s:s, s:s?, s:s}", "presence", p, "from", from, "at", now));
    }
    if (strcmp(type, "ChangeCredential") == 0) {
        const char *ref;
        SB_TRY(need_credential(cmd, &ref, err));
        if (sb__eq(ref, sb__str(state, "credential_ref")))
            return 0;
        return sb_devents_add(out, "UserCredentialChanged",
                              json_pack("{s:s, s:s}", "credential_ref", ref, "at", now));
    }
    /* UpdateProfile: the payload carries only what changed.  A new e-mail must be claimed by the
     * caller first (and the old claim released after). */
    json_t *changed = json_object();
    int rc = 0;
    if (sb__has(cmd, "name")) {
        json_t *name;
        if ((rc = sb__need_text(cmd, "name", 1, 200, &name, err)) != 0)
            goto fail;
        if (sb__eq(json_string_value(name), sb__str(state, "name")))
            json_decref(name);
        else
            json_object_set_new(changed, "name", name);
    }
    if (sb__has(cmd, "email")) {
        const char *in;
        if ((rc = sb__need_str(cmd, "email", 1, 254, &in, err)) != 0 ||
            (rc = sb__email(in, "email", email, err)) != 0)
            goto fail;
        if (!sb__eq(email, sb__str(state, "email")))
            json_object_set_new(changed, "email", json_string(email));
    }
    if (json_object_size(changed) == 0) {
        json_decref(changed);
        return 0;
    }
    return sb_devents_add(out, "UserProfileUpdated", changed);
fail:
    json_decref(changed);
    return rc;
}

static int user_decide(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx, sb_devents_t *out,
                       sb_derror_t *err)
{
    return sb__decide(dispatch, state, cmd, ctx, out, err);
}

static void user_evolve(json_t *state, const sb_devent_t *ev)
{
    const json_t *d = ev->data;
    if (strcmp(ev->type, "UserRegistered") == 0) {
        json_object_set_new(state, "registered", json_true());
        sb__set(state, "user_id", json_object_get(d, "user_id"));
        sb__set(state, "email", json_object_get(d, "email"));
        sb__set(state, "name", json_object_get(d, "name"));
        sb__set(state, "credential_ref", json_object_get(d, "credential_ref"));
        sb__set(state, "registered_at", json_object_get(d, "registered_at"));
    } else if (strcmp(ev->type, "UserPresenceChanged") == 0) {
        sb__set(state, "presence", json_object_get(d, "presence"));
        sb__set(state, "presence_changed_at", json_object_get(d, "at"));
    } else if (strcmp(ev->type, "UserCredentialChanged") == 0) {
        sb__set(state, "credential_ref", json_object_get(d, "credential_ref"));
    } else if (strcmp(ev->type, "UserProfileUpdated") == 0) {
        if (json_object_get(d, "name") != NULL)
            sb__set(state, "name", json_object_get(d, "name"));
        if (json_object_get(d, "email") != NULL)
            sb__set(state, "email", json_object_get(d, "email"));
    }
}

const sb_kind_t sb_kind_user = {
    .category = "user",
    .initial = user_initial,
    .decide = user_decide,
    .evolve = user_evolve,
};
