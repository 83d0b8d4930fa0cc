/* The presence decider: the presence of a workspace's members, as the workspace sees it, so that
 * presence changes are events of the workspace (its SSE stream, its event page) although presence
 * itself is a person's (the user stream's UserPresenceChanged, which routing reads).
 *
 * Stream "presence-<workspace id>".  One command, sent by the presence API for each workspace of
 * the person whose presence changed (docs/voice.md, "Presence"):
 *
 *   NotePresence {user_id, presence: online | away | offline}
 *     -> MemberPresenceChanged {workspace_id, user_id, presence, from, at}  (none when the same)
 *
 * Only the person (or the system) notes their own presence (403 forbidden otherwise).
 *
 * State: {"workspace_id", "members": {"<user id>": "<presence>"}} */
#include "actors/dutil.h"
#include "actors/kinds.h"
#include "core/error.h"

#include <string.h>

/* Removed members keep their last entry (a returning member's "from" stays right); the bound keeps
 * the state small whatever the churn. */
#define MAX_ENTRIES 5000

static const char *const presences[] = {"online", "away", "offline", NULL};

static json_t *presence_initial(void)
{
    return json_pack("{s:n, s:{}}", "workspace_id", "members");
}

static int dispatch(const json_t *state, const json_t *cmd, const char *type, const sb_decide_ctx_t *ctx,
                    sb_devents_t *out, sb_derror_t *err)
{
    if (strcmp(type, "NotePresence") != 0)
        return sb_reject(err, 400, "unknown_command", "type", "unknown presence command %.60s", type);
    const char *user, *presence;
    SB_TRY(sb__need_uuid(cmd, "user_id", &user, err));
    SB_TRY(sb__need_enum(cmd, "presence", presences, &presence, err));
    if (ctx->user_id != NULL && !sb__eq_ci(ctx->user_id, user))
        return sb_reject(err, 403, "forbidden", "user_id", "only a person notes their own presence");
    if (ctx->id == NULL || !sb__is_uuid(ctx->id))
        return sb_reject(err, 400, "invalid", "", "a presence stream is named after its workspace");
    const json_t *members = json_object_get(state, "members");
    const char *from = sb__str(members, user);
    if (sb__eq(from, presence))
        return 0;
    if (from == NULL && json_object_size(members) >= MAX_ENTRIES)
        return sb_reject(err, 409, "limit_reached", "user_id", "too many members' presences");
    char now[SB_RFC3339_LEN];
    sb__now(ctx, now);
    return sb_devents_add(out, "MemberPresenceChanged",
                          json_pack("{s:s, s:s, s:s, s:s?, s:s}", "workspace_id", ctx->id, "user_id", user,
                                    "presence", presence, "from", from, "at", now));
}

static int presence_decide(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx,
                           sb_devents_t *out, sb_derror_t *err)
{
    return sb__decide(dispatch, state, cmd, ctx, out, err);
}

static void presence_evolve(json_t *state, const sb_devent_t *ev)
{
    if (strcmp(ev->type, "MemberPresenceChanged") != 0)
        return;
    const char *user = sb__str(ev->data, "user_id");
    if (json_is_null(json_object_get(state, "workspace_id")))
        sb__set(state, "workspace_id", json_object_get(ev->data, "workspace_id"));
    if (user != NULL)
        sb__set(json_object_get(state, "members"), user, json_object_get(ev->data, "presence"));
}

const sb_kind_t sb_kind_presence = {
    .category = "presence",
    .initial = presence_initial,
    .decide = presence_decide,
    .evolve = presence_evolve,
};
