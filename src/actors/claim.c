/* The claim decider: a uniqueness claim on one key ("email:<addr>", "phone:<workspace>:<e164>",
 * "number:<e164>").  The stream id is a name-based uuid of the key, and the runtime appends with
 * expected versions, so two processes claiming the same key at once serialise on this stream: one
 * wins, the other reloads and sees the key taken.
 *
 * State: {"key", "owner", "claimed_at"} (owner null when free). */
#include "actors/dutil.h"
#include "actors/kinds.h"
#include "core/error.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

/* A fixed, random namespace: changing it would orphan every existing claim stream. */
const sb_uuid_t sb_claim_namespace = {
    {0x5b, 0x1e, 0x9c, 0x2a, 0x7d, 0x3f, 0x4e, 0x8b, 0x9a, 0x61, 0x0c, 0x2d, 0x4f, 0x6e, 0x8a, 0x10}};

void sb_claim_id(const char *key, sb_uuid_t *out)
{
    sb_uuid_from_name(out, &sb_claim_namespace, key, strlen(key));
}

void sb_claim_stream(const char *key, char out[SB_CLAIM_STREAM_LEN])
{
    sb_uuid_t id;
    char s[SB_UUID_STRLEN + 1];
    sb_claim_id(key, &id);
    sb_uuid_format(&id, s);
    snprintf(out, SB_CLAIM_STREAM_LEN, "claim-%s", s);
}

static json_t *claim_initial(void)
{
    return json_pack("{s:n, s:n, s:n}", "key", "owner", "claimed_at");
}

/* An owner is a stream name: "<category>-<uuid>". */
static int need_owner(const json_t *cmd, const char **owner, sb_derror_t *err)
{
    SB_TRY(sb__need_str(cmd, "owner", 1, 100, owner, err));
    const char *dash = strchr(*owner, '-');
    bool ok = dash != NULL && dash > *owner && sb__is_uuid(dash + 1);
    for (const char *p = *owner; ok && p < dash; p++)
        ok = islower((unsigned char)*p) || *p == '_';
    if (!ok)
        return sb_reject(err, 400, "invalid", "owner", "owner must be a stream name (<category>-<uuid>)");
    return 0;
}

static int dispatch(const json_t *state, const json_t *cmd, const char *type, const sb_decide_ctx_t *ctx,
                    sb_devents_t *out, sb_derror_t *err)
{
    const char *owner, *current = sb__str(state, "owner");
    if (strcmp(type, "Claim") == 0) {
        const char *key;
        SB_TRY(sb__need_str(cmd, "key", 1, 512, &key, err));
        SB_TRY(need_owner(cmd, &owner, err));
        if (ctx->id != NULL) {
            sb_uuid_t id;
            char s[SB_UUID_STRLEN + 1];
            sb_claim_id(key, &id);
            sb_uuid_format(&id, s);
            if (strcasecmp(s, ctx->id) != 0)
                return sb_reject(err, 400, "key_mismatch", "key",
                                 "this claim stream is not the key's stream");
        }
        const char *held = sb__str(state, "key");
        if (held != NULL && strcmp(held, key) != 0)
            return sb_reject(err, 400, "key_mismatch", "key", "this claim stream holds another key");
        if (current != NULL) {
            if (strcmp(current, owner) == 0)
                return 0; /* already ours */
            return sb_reject(err, 409, "taken", "key", "already claimed by %.100s", current);
        }
        char now[SB_RFC3339_LEN];
        sb__now(ctx, now);
        return sb_devents_add(out, "Claimed",
                              json_pack("{s:s, s:s, s:s}", "key", key, "owner", owner, "at", now));
    }
    if (strcmp(type, "Release") == 0) {
        SB_TRY(need_owner(cmd, &owner, err));
        if (current == NULL)
            return 0; /* already free */
        if (strcmp(current, owner) != 0)
            return sb_reject(err, 403, "not_owner", "owner", "claimed by %.100s, not by you", current);
        return sb_devents_add(out, "Released",
                              json_pack("{s:O, s:s}", "key", json_object_get(state, "key"), "owner", owner));
    }
    return sb_reject(err, 400, "unknown_command", "type", "unknown claim command %.60s", type);
}

static int claim_decide(const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx, sb_devents_t *out,
                        sb_derror_t *err)
{
    return sb__decide(dispatch, state, cmd, ctx, out, err);
}

static void claim_evolve(json_t *state, const sb_devent_t *ev)
{
    if (strcmp(ev->type, "Claimed") == 0) {
        sb__set(state, "key", json_object_get(ev->data, "key"));
        sb__set(state, "owner", json_object_get(ev->data, "owner"));
        sb__set(state, "claimed_at", json_object_get(ev->data, "at"));
    } else if (strcmp(ev->type, "Released") == 0) {
        /* The key stays: the stream is the key's forever. */
        json_object_set_new(state, "owner", json_null());
        json_object_set_new(state, "claimed_at", json_null());
    }
}

const sb_kind_t sb_kind_claim = {
    .category = "claim",
    .initial = claim_initial,
    .decide = claim_decide,
    .evolve = claim_evolve,
};
