/* User flows: registration and e-mail changes with address claims, and finding a user by address
 * (flows.h). */
#include "actors/dutil.h"
#include "actors/flows_int.h"
#include "actors/kinds.h"
#include "core/error.h"
#include "core/phone.h"

#include <stdio.h>
#include <string.h>

#define MAX_RETRIES 5

static void email_taken(sb__flow_t *f, const sb_ask_reply_t *holder)
{
    /* The holder is another person's account: named in `holder` for the server, not in the
     * message a client reads. */
    snprintf(f->res_holder, sizeof(f->res_holder), "%s", holder->stream);
    sb__flow_reject(f, 409, "email_taken", "email", "an account with this e-mail address already exists");
}

static void taken(sb__flow_t *f, const char *value, const sb_ask_reply_t *holder)
{
    (void)value;
    email_taken(f, holder);
    sb__flow_settle(f);
}

/* Runs the user decider on state for f->cmd: false (the flow finished) on a rejection; otherwise
 * *email is the normalised address the decision carries (NULL when unchanged). */
static bool validate(sb__flow_t *f, const json_t *state, const char *event, json_t **email)
{
    sb_devents_t evs;
    sb_derror_t err;
    int rc = sb__flow_dry_run(f, &sb_kind_user, state, f->cmd, f->user_id, &evs, &err);
    *email = NULL;
    if (rc != 0) {
        if (rc == SB_EREJECTED)
            sb__flow_reject(f, err.status, err.code, err.field, "%s", err.message);
        else
            sb__flow_fail(f, rc, NULL);
        sb_devents_clear(&evs);
        sb__flow_settle(f);
        return false;
    }
    for (int i = 0; i < evs.n; i++)
        if (strcmp(evs.items[i].type, event) == 0 &&
            json_is_string(json_object_get(evs.items[i].data, "email")))
            *email = json_incref(json_object_get(evs.items[i].data, "email"));
    sb_devents_clear(&evs);
    return true;
}

static int new_id(const sb_flow_opts_t *opts, char id[SB_UUID_STRLEN + 1])
{
    sb_uuid_t u;
    if (opts != NULL && opts->id != NULL) {
        if (sb_uuid_parse(opts->id, strlen(opts->id), &u) != 0)
            return SB_EINVAL;
    } else {
        sb_uuid_v7(&u);
    }
    sb_uuid_format(&u, id);
    return 0;
}

/* ---- register ---------------------------------------------------------------------------------- */

static void register_on_exists(sb__flow_t *f, const sb_ask_reply_t *r)
{
    json_t *have = r->status == 0 ? sb__flow_listed(SB__SUBJECT_USER, r->state) : NULL;
    if (sb__flow_has(have, json_string_value(json_array_get(f->want, 0))))
        email_taken(f, r); /* another flow registered this id with our address first */
    /* else: the id was registered with another address; the already_registered rejection stands */
    json_decref(have);
    sb__flow_settle(f);
}

static void register_on_written(sb__flow_t *f, const sb_ask_reply_t *r)
{
    if (r->status == 0) {
        sb__flow_ok(f, r, true);
        sb__flow_finish(f);
        return;
    }
    sb__flow_fail_reply(f, r);
    if (r->status == SB_EREJECTED && r->err != NULL && sb__eq(r->err->code, "already_registered")) {
        sb__ask_x_t x = {.refresh = true};
        sb__flow_ask(f, f->stream, NULL, &x, register_on_exists);
        return;
    }
    sb__flow_settle(f);
}

static void register_write(sb__flow_t *f)
{
    sb__flow_ask(f, f->stream, json_deep_copy(f->cmd), NULL, register_on_written);
}

static const sb__flow_ops_t register_ops = {.claimed = register_write, .taken = taken, .adopt = true};

int sb_flow_user_register(sb_loops_t *g, const char *email, const char *name, const char *credential_ref,
                          const sb_flow_opts_t *opts, sb_flow_cb cb, void *data)
{
    char id[SB_UUID_STRLEN + 1];
    int rc;
    if (new_id(opts, id) != 0)
        return SB_EINVAL;
    sb__flow_t *f = sb__flow_new(g, opts, cb, data, &rc);
    if (f == NULL)
        return rc;
    f->ops = &register_ops;
    sb__flow_subject(f, SB__SUBJECT_USER, id);
    f->cmd = json_pack("{s:s, s:s?, s:s?, s:s?}", "type", "RegisterUser", "email", email, "name", name,
                       "credential_ref", credential_ref);
    json_t *initial = sb_kind_user.initial();
    if (f->cmd == NULL || initial == NULL) {
        json_decref(initial);
        sb__flow_discard(f);
        return SB_ENOMEM;
    }
    json_t *addr;
    bool ok = validate(f, initial, "UserRegistered", &addr);
    json_decref(initial);
    if (!ok)
        return 0; /* the rejection comes through cb */
    json_array_append_new(f->want, addr);
    sb__flow_claim(f);
    return 0;
}

/* ---- change e-mail ----------------------------------------------------------------------------- */

static void change_start(sb__flow_t *f);

static void change_on_written(sb__flow_t *f, const sb_ask_reply_t *r)
{
    if (r->status == 0) {
        sb__flow_ok(f, r, false);
        sb__flow_release_then_finish(f); /* the old address */
        return;
    }
    if (r->status == SB_ECONFLICT && r->precondition_failed && !f->check_version &&
        ++f->retries <= MAX_RETRIES) {
        change_start(f);
        return;
    }
    sb__flow_fail_reply(f, r);
    sb__flow_settle(f);
}

static void change_write(sb__flow_t *f)
{
    sb__ask_x_t x = {.check_version = true, .expected_version = f->base_version};
    sb__flow_ask(f, f->stream, json_deep_copy(f->cmd), &x, change_on_written);
}

static const sb__flow_ops_t change_ops = {.claimed = change_write, .taken = taken, .adopt = false};

static void change_on_user(sb__flow_t *f, const sb_ask_reply_t *r)
{
    if (r->status != 0) {
        sb__flow_fail_reply(f, r);
        sb__flow_settle(f);
        return;
    }
    bool behind = !json_is_true(json_object_get(r->state, "registered")) ||
                  (f->check_version && r->version < sb__flow_newest_expected(f));
    if (behind && !f->refreshed) { /* maybe written by another process since: read it fresh */
        f->refreshed = true;
        sb__ask_x_t x = {.refresh = true};
        sb__flow_ask(f, f->stream, NULL, &x, change_on_user);
        return;
    }
    if (!json_is_true(json_object_get(r->state, "registered"))) {
        sb__flow_reject(f, 404, "user_not_found", "", "no such user");
        sb__flow_settle(f);
        return;
    }
    if (f->check_version && !sb__flow_version_matches(f, r->version)) {
        sb__flow_fail_reply(f, r);
        sb__flow_fail(f, SB_ECONFLICT, NULL);
        f->precondition_failed = true;
        sb__flow_settle(f);
        return;
    }
    f->base_version = r->version;
    json_decref(f->listed);
    f->listed = sb__flow_listed(SB__SUBJECT_USER, r->state);
    json_t *addr;
    if (!validate(f, r->state, "UserProfileUpdated", &addr))
        return;
    if (addr == NULL) { /* the same address: nothing to do */
        sb__flow_ok(f, r, false);
        sb__flow_settle(f);
        return;
    }
    json_array_clear(f->want);
    json_array_append_new(f->want, addr);
    json_decref(f->drop);
    f->drop = sb__flow_minus(f->listed, f->want);
    sb__flow_claim(f);
}

static void change_start(sb__flow_t *f)
{
    f->refreshed = false;
    f->relied_since = INT64_MAX;
    sb__flow_ask(f, f->stream, NULL, NULL, change_on_user);
}

int sb_flow_user_change_email(sb_loops_t *g, const char *user_id, const char *email,
                              const sb_flow_opts_t *opts, sb_flow_cb cb, void *data)
{
    sb_uuid_t u;
    char id[SB_UUID_STRLEN + 1];
    int rc;
    if (user_id == NULL || sb_uuid_parse(user_id, strlen(user_id), &u) != 0)
        return SB_EINVAL;
    sb_uuid_format(&u, id);
    sb__flow_t *f = sb__flow_new(g, opts, cb, data, &rc);
    if (f == NULL)
        return rc;
    f->ops = &change_ops;
    sb__flow_subject(f, SB__SUBJECT_USER, id);
    f->cmd = json_pack("{s:s, s:s?}", "type", "UpdateProfile", "email", email);
    if (f->cmd == NULL) {
        sb__flow_discard(f);
        return SB_ENOMEM;
    }
    change_start(f);
    return 0;
}

/* ---- find -------------------------------------------------------------------------------------- */

static void find_on_user(sb__flow_t *f, const sb_ask_reply_t *r)
{
    json_t *have = r->status == 0 ? sb__flow_listed(SB__SUBJECT_USER, r->state) : NULL;
    if (r->status != 0)
        sb__flow_fail_reply(f, r);
    else if (sb__flow_has(have, json_string_value(json_array_get(f->want, 0))))
        sb__flow_ok(f, r, false);
    else
        sb__flow_reject(f, 404, "user_not_found", "email", "no user has this e-mail address");
    json_decref(have);
    sb__flow_finish(f);
}

static void find_on_claim(sb__flow_t *f, const sb_ask_reply_t *r)
{
    const char *owner = r->status == 0 ? sb__str(r->state, "owner") : NULL;
    if (r->status != 0) {
        sb__flow_fail_reply(f, r);
    } else if (owner == NULL || strncmp(owner, "user-", 5) != 0 || strlen(owner) >= SB_STREAM_NAME_MAX) {
        sb__flow_reject(f, 404, "user_not_found", "email", "no user has this e-mail address");
    } else {
        sb__ask_x_t x = {.refresh = true};
        sb__flow_ask(f, owner, NULL, &x, find_on_user);
        return;
    }
    sb__flow_finish(f);
}

int sb_flow_user_find(sb_loops_t *g, const char *email, const sb_flow_opts_t *opts, sb_flow_cb cb, void *data)
{
    int rc;
    sb__flow_t *f = sb__flow_new(g, opts, cb, data, &rc);
    if (f == NULL)
        return rc;
    char addr[SB_EMAIL_MAX], key[SB_EMAIL_MAX + 8], cs[SB_CLAIM_STREAM_LEN];
    if (email == NULL || sb_email_normalize(email, strlen(email), addr) != 0) {
        sb__flow_reject(f, 400, "invalid_email", "email", "not an e-mail address");
        sb__flow_finish(f);
        return 0;
    }
    json_array_append_new(f->want, json_string(addr));
    snprintf(key, sizeof(key), "email:%s", addr);
    sb_claim_stream(key, cs);
    sb__ask_x_t x = {.refresh = true};
    sb__flow_ask(f, cs, NULL, &x, find_on_claim);
    return 0;
}
