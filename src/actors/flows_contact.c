/* Contact flows: create (or find) with phone claims, update phones, delete (flows.h). */
#include "actors/dutil.h"
#include "actors/flows_int.h"
#include "actors/kinds.h"
#include "core/error.h"

#include <stdio.h>
#include <string.h>

#define MAX_RETRIES 5 /* whole-flow restarts when the contact changed between read and write */

/* "phones" when the caller sent a list, else "phone". */
static const char *phone_field(const sb__flow_t *f)
{
    const json_t *many = json_object_get(f->fields, "phones");
    return many != NULL && !json_is_null(many) ? "phones" : "phone";
}

static int norm_uuid(const char *in, char out[SB_UUID_STRLEN + 1])
{
    sb_uuid_t u;
    if (in == NULL || sb_uuid_parse(in, strlen(in), &u) != 0)
        return SB_EINVAL;
    sb_uuid_format(&u, out);
    return 0;
}

static void read_workspace(sb__flow_t *f, bool refresh, sb__flow_step next)
{
    char ws[SB_STREAM_NAME_MAX];
    snprintf(ws, sizeof(ws), "workspace-%s", f->ws);
    sb__ask_x_t x = {.refresh = refresh};
    sb__flow_ask(f, ws, NULL, &x, next);
}

/* The workspace's reply: its context in f->context.  false when the flow finished (not found, an
 * error) or asked again (a stale "not found": read it fresh once). */
static bool take_workspace(sb__flow_t *f, const sb_ask_reply_t *r, sb__flow_step again)
{
    if (r->status != 0) {
        sb__flow_fail_reply(f, r);
        sb__flow_settle(f);
        return false;
    }
    if (!json_is_true(json_object_get(r->state, "created"))) {
        if (!f->ws_refreshed) {
            /* maybe created by another process since this one last read it */
            f->ws_refreshed = true;
            read_workspace(f, true, again);
            return false;
        }
        sb__flow_reject(f, 404, "workspace_not_found", "", "no such workspace");
        sb__flow_settle(f);
        return false;
    }
    json_decref(f->context);
    f->context = sb_workspace_context(r->state);
    if (f->context == NULL) {
        sb__flow_fail(f, SB_ENOMEM, NULL);
        sb__flow_settle(f);
        return false;
    }
    return true;
}

/* The command to send: the caller's fields with type (and workspace_id when creating). */
static json_t *command(sb__flow_t *f, const char *type, bool with_workspace)
{
    json_t *cmd = json_deep_copy(f->fields);
    if (cmd == NULL)
        return NULL;
    json_object_set_new(cmd, "type", json_string(type));
    if (with_workspace)
        json_object_set_new(cmd, "workspace_id", json_string(f->ws));
    else
        json_object_del(cmd, "workspace_id");
    return cmd;
}

/* Runs the contact decider on state for cmd without storing anything: its rejection ends the flow
 * (false); otherwise *phones is the normalised phone list it decided (NULL: unchanged). */
static bool validate(sb__flow_t *f, const json_t *state, const char *event, json_t **phones)
{
    sb_devents_t evs;
    sb_derror_t err;
    int rc = sb__flow_dry_run(f, &sb_kind_contact, state, f->cmd, f->user_id, &evs, &err);
    *phones = NULL;
    if (rc != 0) {
        if (rc == SB_EREJECTED) {
            sb__flow_reject(f, err.status, err.code, err.field, "%s", err.message);
        } else {
            sb__flow_fail(f, rc, NULL);
        }
        sb_devents_clear(&evs);
        sb__flow_settle(f);
        return false;
    }
    for (int i = 0; i < evs.n; i++)
        if (strcmp(evs.items[i].type, event) == 0 && json_object_get(evs.items[i].data, "phones") != NULL)
            *phones = sb__flow_sorted(json_object_get(evs.items[i].data, "phones"));
    sb_devents_clear(&evs);
    return true;
}

static void taken_by(sb__flow_t *f, const char *value, const sb_ask_reply_t *holder)
{
    snprintf(f->res_holder, sizeof(f->res_holder), "%s", holder->stream);
    const char *dash = strchr(holder->stream, '-');
    sb__flow_reject(f, 409, "phone_taken", phone_field(f), "%s belongs to contact %s", value,
                    dash ? dash + 1 : holder->stream);
}

/* ---- create ------------------------------------------------------------------------------------ */

static void create_on_exists(sb__flow_t *f, const sb_ask_reply_t *r)
{
    if (r->status != 0 || r->version == 0) {
        sb__flow_fail(f, r->status != 0 ? r->status : SB_ECONFLICT, r->error);
        sb__flow_settle(f);
        return;
    }
    /* Another flow wrote this contact first (it adopted our claims, or we adopted its): the number
     * is that contact's.  A contact that has none of our numbers is only an id the caller chose
     * twice: its contact_exists rejection (already in f) stands. */
    json_t *has = sb__flow_listed(SB__SUBJECT_CONTACT, r->state);
    const char *shared = NULL;
    for (size_t i = 0; i < json_array_size(f->want) && shared == NULL; i++)
        if (sb__flow_has(has, json_string_value(json_array_get(f->want, i))))
            shared = json_string_value(json_array_get(f->want, i));
    if (shared != NULL && f->mode == SB_FLOW_FIND_OR_CREATE)
        sb__flow_ok(f, r, false);
    else if (shared != NULL)
        taken_by(f, shared, r);
    json_decref(has);
    sb__flow_settle(f); /* releases what this flow claimed that the contact does not list */
}

static void create_on_written(sb__flow_t *f, const sb_ask_reply_t *r)
{
    if (r->status == 0) {
        sb__flow_ok(f, r, true);
        sb__flow_finish(f);
        return;
    }
    if (r->status == SB_EREJECTED && r->err != NULL && sb__eq(r->err->code, "contact_exists") &&
        json_array_size(f->want) > 0) {
        sb__flow_fail_reply(f, r);
        sb__ask_x_t x = {.refresh = true};
        sb__flow_ask(f, f->stream, NULL, &x, create_on_exists);
        return;
    }
    /* SB_EUNKNOWN included: settling reads the contact from the log, so a contact that was in fact
     * created keeps its claims. */
    sb__flow_fail_reply(f, r);
    sb__flow_settle(f);
}

static void create_write(sb__flow_t *f)
{
    sb__ask_x_t x = {.workspace_id = f->ws, .context = f->context};
    sb__flow_ask(f, f->stream, json_deep_copy(f->cmd), &x, create_on_written);
}

static void create_taken(sb__flow_t *f, const char *value, const sb_ask_reply_t *holder)
{
    if (f->mode == SB_FLOW_FIND_OR_CREATE && json_is_true(json_object_get(holder->state, "created")))
        sb__flow_ok(f, holder, false);
    else
        taken_by(f, value, holder);
    sb__flow_settle(f);
}

static const sb__flow_ops_t create_ops = {.claimed = create_write, .taken = create_taken, .adopt = true};

static void create_on_workspace(sb__flow_t *f, const sb_ask_reply_t *r)
{
    if (!take_workspace(f, r, create_on_workspace))
        return;
    json_t *phones;
    f->cmd = command(f, "CreateContact", true);
    if (f->cmd == NULL) {
        sb__flow_fail(f, SB_ENOMEM, NULL);
        sb__flow_finish(f);
        return;
    }
    json_t *initial = sb_kind_contact.initial();
    if (initial == NULL) {
        sb__flow_fail(f, SB_ENOMEM, NULL);
        sb__flow_finish(f);
        return;
    }
    bool ok = validate(f, initial, "ContactCreated", &phones);
    json_decref(initial);
    if (!ok)
        return;
    json_decref(f->want);
    f->want = phones ? phones : json_array();
    sb__flow_claim(f);
}

int sb_flow_contact_create(sb_loops_t *g, const char *workspace_id, const json_t *fields, sb_flow_mode_t mode,
                           const sb_flow_opts_t *opts, sb_flow_cb cb, void *data)
{
    char ws[SB_UUID_STRLEN + 1], id[SB_UUID_STRLEN + 1];
    if (!json_is_object(fields) || norm_uuid(workspace_id, ws) != 0 ||
        (mode != SB_FLOW_CREATE && mode != SB_FLOW_FIND_OR_CREATE))
        return SB_EINVAL;
    if (opts != NULL && opts->id != NULL) {
        if (norm_uuid(opts->id, id) != 0)
            return SB_EINVAL;
    } else {
        sb_uuid_t u;
        sb_uuid_v7(&u);
        sb_uuid_format(&u, id);
    }
    int rc;
    sb__flow_t *f = sb__flow_new(g, opts, cb, data, &rc);
    if (f == NULL)
        return rc;
    f->ops = &create_ops;
    f->mode = mode;
    memcpy(f->ws, ws, sizeof(ws));
    sb__flow_subject(f, SB__SUBJECT_CONTACT, id);
    f->fields = json_deep_copy(fields);
    if (f->fields == NULL) {
        sb__flow_discard(f);
        return SB_ENOMEM;
    }
    read_workspace(f, false, create_on_workspace);
    return 0;
}

/* ---- update and delete ------------------------------------------------------------------------ */

static void update_start(sb__flow_t *f);

/* Checks the contact read at the start of an update or delete; false when the flow finished. */
static bool take_contact(sb__flow_t *f, const sb_ask_reply_t *r, sb__flow_step again)
{
    if (r->status != 0) {
        sb__flow_fail_reply(f, r);
        sb__flow_settle(f);
        return false;
    }
    const json_t *st = r->state;
    /* Missing, or older than the version the caller saw: maybe another process wrote it since
     * this one last read it.  Read it from the log once. */
    bool behind = !json_is_true(json_object_get(st, "created")) ||
                  (f->check_version && r->version < sb__flow_newest_expected(f));
    if (behind && !f->refreshed) {
        f->refreshed = true;
        sb__ask_x_t x = {.refresh = true};
        sb__flow_ask(f, f->stream, NULL, &x, again);
        return false;
    }
    if (!json_is_true(json_object_get(st, "created")) || !sb__eq_ci(sb__str(st, "workspace_id"), f->ws)) {
        sb__flow_reject(f, 404, "contact_not_found", "", "no such contact");
        sb__flow_settle(f);
        return false;
    }
    if (json_is_true(json_object_get(st, "deleted"))) {
        sb__flow_reject(f, 404, "contact_deleted", "", "this contact was deleted");
        sb__flow_settle(f);
        return false;
    }
    if (f->check_version && !sb__flow_version_matches(f, r->version)) {
        sb__flow_fail(f, SB_ECONFLICT, NULL);
        f->precondition_failed = true;
        f->version = r->version;
        snprintf(f->res_stream, sizeof(f->res_stream), "%s", f->stream);
        sb__flow_settle(f);
        return false;
    }
    f->base_version = r->version;
    f->expected_version = r->version; /* the one of a list that matched: later steps check it */
    json_decref(f->current);
    f->current = json_incref(r->state);
    json_decref(f->listed);
    f->listed = sb__flow_listed(SB__SUBJECT_CONTACT, st);
    return true;
}

static void update_on_written(sb__flow_t *f, const sb_ask_reply_t *r)
{
    if (r->status == 0) {
        sb__flow_ok(f, r, false);
        sb__flow_release_then_finish(f); /* the numbers it no longer has */
        return;
    }
    if (r->status == SB_ECONFLICT && r->precondition_failed && !f->check_version) {
        /* It changed since we read it (the phones we diffed against may be stale): start over.
         * Claims taken so far stay the contact's and are found again, or settled at the end. */
        if (++f->retries <= MAX_RETRIES) {
            update_start(f);
            return;
        }
        sb__flow_fail(f, SB_ECONFLICT, "the contact kept changing");
        sb__flow_settle(f);
        return;
    }
    sb__flow_fail_reply(f, r);
    sb__flow_settle(f);
}

static void update_write(sb__flow_t *f)
{
    sb__ask_x_t x = {.workspace_id = f->ws,
                     .context = f->context,
                     .check_version = true,
                     .expected_version = f->base_version};
    sb__flow_ask(f, f->stream, json_deep_copy(f->cmd), &x, update_on_written);
}

static void update_taken(sb__flow_t *f, const char *value, const sb_ask_reply_t *holder)
{
    taken_by(f, value, holder);
    sb__flow_settle(f);
}

static const sb__flow_ops_t update_ops = {.claimed = update_write, .taken = update_taken, .adopt = false};

static void update_on_workspace(sb__flow_t *f, const sb_ask_reply_t *r)
{
    if (!take_workspace(f, r, update_on_workspace))
        return;
    json_t *phones;
    json_decref(f->cmd);
    f->cmd = command(f, "UpdateContact", false);
    if (f->cmd == NULL) {
        sb__flow_fail(f, SB_ENOMEM, NULL);
        sb__flow_settle(f);
        return;
    }
    if (!validate(f, f->current, "ContactUpdated", &phones))
        return;
    json_decref(f->want);
    json_decref(f->drop);
    f->want = phones ? sb__flow_minus(phones, f->listed) : json_array();
    f->drop = phones ? sb__flow_minus(f->listed, phones) : json_array();
    json_decref(phones);
    sb__flow_claim(f);
}

static void update_on_contact(sb__flow_t *f, const sb_ask_reply_t *r)
{
    if (take_contact(f, r, update_on_contact))
        read_workspace(f, false, update_on_workspace);
}

static void update_start(sb__flow_t *f)
{
    f->refreshed = f->ws_refreshed = false;
    f->relied_since = INT64_MAX;
    sb__flow_ask(f, f->stream, NULL, NULL, update_on_contact);
}

static sb__flow_t *existing(sb_loops_t *g, const char *workspace_id, const char *contact_id,
                            const sb_flow_opts_t *opts, sb_flow_cb cb, void *data, int *rc)
{
    char ws[SB_UUID_STRLEN + 1], id[SB_UUID_STRLEN + 1];
    if (norm_uuid(workspace_id, ws) != 0 || norm_uuid(contact_id, id) != 0) {
        *rc = SB_EINVAL;
        return NULL;
    }
    sb__flow_t *f = sb__flow_new(g, opts, cb, data, rc);
    if (f == NULL)
        return NULL;
    memcpy(f->ws, ws, sizeof(ws));
    sb__flow_subject(f, SB__SUBJECT_CONTACT, id);
    return f;
}

int sb_flow_contact_update(sb_loops_t *g, const char *workspace_id, const char *contact_id,
                           const json_t *fields, const sb_flow_opts_t *opts, sb_flow_cb cb, void *data)
{
    int rc;
    if (!json_is_object(fields))
        return SB_EINVAL;
    sb__flow_t *f = existing(g, workspace_id, contact_id, opts, cb, data, &rc);
    if (f == NULL)
        return rc;
    f->ops = &update_ops;
    f->fields = json_deep_copy(fields);
    if (f->fields == NULL) {
        sb__flow_discard(f);
        return SB_ENOMEM;
    }
    update_start(f);
    return 0;
}

static void delete_on_written(sb__flow_t *f, const sb_ask_reply_t *r)
{
    if (r->status != 0) {
        sb__flow_fail_reply(f, r);
        sb__flow_finish(f);
        return;
    }
    sb__flow_ok(f, r, false);
    json_decref(f->drop);
    f->drop = sb__flow_sorted(json_object_get(r->state, "phones")); /* a deleted contact keeps its list */
    sb__flow_release_then_finish(f);
}

static void delete_on_workspace(sb__flow_t *f, const sb_ask_reply_t *r)
{
    if (!take_workspace(f, r, delete_on_workspace))
        return;
    sb__ask_x_t x = {.workspace_id = f->ws,
                     .context = f->context,
                     .check_version = f->check_version,
                     .expected_version = f->expected_version};
    sb__flow_ask(f, f->stream, json_pack("{s:s}", "type", "DeleteContact"), &x, delete_on_written);
}

static void delete_on_contact(sb__flow_t *f, const sb_ask_reply_t *r)
{
    if (take_contact(f, r, delete_on_contact))
        read_workspace(f, false, delete_on_workspace);
}

static const sb__flow_ops_t delete_ops = {.claimed = NULL, .taken = NULL, .adopt = false};

int sb_flow_contact_delete(sb_loops_t *g, const char *workspace_id, const char *contact_id,
                           const sb_flow_opts_t *opts, sb_flow_cb cb, void *data)
{
    int rc;
    sb__flow_t *f = existing(g, workspace_id, contact_id, opts, cb, data, &rc);
    if (f == NULL)
        return rc;
    f->ops = &delete_ops;
    sb__flow_ask(f, f->stream, NULL, NULL, delete_on_contact);
    return 0;
}
