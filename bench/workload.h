/* A synthetic but realistic event log, decided by the real deciders (src/actors): workspaces with
 * members, stages and numbers; contacts; messages in and out with their status callbacks, reads,
 * scheduled sends; notes; calls through ringing, answering, parking and hanging up.  Every event
 * is what the domain itself decides, so projections are exercised on real payloads.
 *
 * Header-only (static functions), shared by bench/projections.c and the projection tests.  The
 * simulation is deterministic for a seed.  Events collect in a wl_t and wl_flush appends them to
 * the log with plain libpq (bulk, blocking: for tools and tests, never a loop). */
#ifndef SB_BENCH_WORKLOAD_H
#define SB_BENCH_WORKLOAD_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/kinds.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/uuid.h"
#include "db/pg.h"
#include "events/codec.h"

#define WL_MEMBERS 4 /* per workspace: an owner and three agents */

typedef struct wl_actor_s {
    char stream[64];
    char id[SB_UUID_STRLEN + 1];
    json_t *state;
    int64_t version;
    int ws; /* workspace index; -1 for users */
    char phone[20];
    int step; /* calls: how far along */
    bool gone;
} wl_actor_t;

typedef struct wl_msg_s {
    int contact;
    char id[SB_UUID_STRLEN + 1];
    int step; /* outbound: 0 queued, 1 sent, 2 delivered */
} wl_msg_t;

typedef struct wl_list_s {
    wl_msg_t *items;
    int n, cap;
} wl_list_t;

typedef struct wl_s {
    unsigned seed;
    unsigned tag; /* in e-mail addresses, so runs with different seeds do not collide */
    int64_t now_us;
    wl_actor_t *users;
    int nusers;
    wl_actor_t *workspaces;
    json_t **contexts;
    int nworkspaces;
    wl_actor_t *contacts;
    int ncontacts, capcontacts;
    wl_actor_t *calls;
    int ncalls, capcalls;
    wl_list_t outbound, unread, scheduled, notes, live_calls;
    long phones;
    /* counters the tests check read models against */
    long events, rejected, contacts_created, contacts_deleted, messages_in, messages_out;
    /* the pending events, as the columns of the bulk insert */
    sb_pg_array_t cols[5];
    int pending;
    sb_buf_t mp;
} wl_t;

static inline unsigned wl_rand(wl_t *w)
{
    /* xorshift32: deterministic, no global state */
    unsigned x = w->seed;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return w->seed = x;
}

static inline int wl_pick(wl_t *w, int n)
{
    return n > 0 ? (int)(wl_rand(w) % (unsigned)n) : 0;
}

static inline void wl_list_push(wl_list_t *l, int contact, const char *id, int step)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 256;
        l->items = realloc(l->items, (size_t)l->cap * sizeof(*l->items));
        if (l->items == NULL)
            abort();
    }
    wl_msg_t *m = &l->items[l->n++];
    m->contact = contact;
    snprintf(m->id, sizeof(m->id), "%s", id);
    m->step = step;
}

static inline void wl_list_take(wl_list_t *l, int i)
{
    l->items[i] = l->items[--l->n];
}

static inline void wl_actor_init(wl_actor_t *a, const char *category, const sb_kind_t *kind, int ws)
{
    memset(a, 0, sizeof(*a));
    sb_uuid_t u;
    sb_uuid_v7(&u); /* as the API makes them: time-ordered */
    sb_uuid_format(&u, a->id);
    snprintf(a->stream, sizeof(a->stream), "%s-%s", category, a->id);
    a->state = kind->initial();
    a->ws = ws;
}

static inline void wl_new_id(char out[SB_UUID_STRLEN + 1])
{
    sb_uuid_t u;
    sb_uuid_v7(&u);
    sb_uuid_format(&u, out);
}

static inline void wl_init(wl_t *w, unsigned seed, int64_t start_us)
{
    memset(w, 0, sizeof(*w));
    w->seed = seed ? seed : 1;
    w->tag = seed % 10000;
    w->now_us = start_us;
    static const uint32_t oids[5] = {SB_OID_TEXT, SB_OID_INT8, SB_OID_TEXT, SB_OID_UUID, SB_OID_BYTEA};
    for (int i = 0; i < 5; i++)
        sb_pg_array_begin(&w->cols[i], oids[i]);
}

static inline void wl_emit(wl_t *w, const wl_actor_t *a, const char *type, const json_t *data)
{
    sb_buf_reset(&w->mp);
    if (sb_codec_from_jansson(data, &w->mp) != 0)
        abort();
    sb_pg_array_add(&w->cols[0], a->stream, (int32_t)strlen(a->stream));
    sb_pg_array_add_int8(&w->cols[1], a->version);
    sb_pg_array_add(&w->cols[2], type, (int32_t)strlen(type));
    if (a->ws >= 0) {
        sb_uuid_t u;
        sb_uuid_parse(w->workspaces[a->ws].id, SB_UUID_STRLEN, &u);
        sb_pg_array_add(&w->cols[3], u.b, 16);
    } else {
        sb_pg_array_add(&w->cols[3], NULL, -1);
    }
    sb_pg_array_add(&w->cols[4], w->mp.data, (int32_t)w->mp.len);
    w->pending++;
    w->events++;
}

/* Runs cmd (consumed) against actor a, as user (NULL: the system), emitting and folding what it
 * decides.  Returns the number of events, or -1 when the domain refused. */
static inline int wl_do(wl_t *w, wl_actor_t *a, const sb_kind_t *kind, json_t *cmd, const char *user)
{
    sb_decide_ctx_t ctx = {.now_us = w->now_us,
                           .stream = a->stream,
                           .id = a->id,
                           .user_id = user,
                           .context = a->ws >= 0 && kind != &sb_kind_workspace ? w->contexts[a->ws] : NULL};
    sb_devents_t out = {0};
    sb_derror_t err;
    int rc = kind->decide(a->state, cmd, &ctx, &out, &err);
    json_decref(cmd);
    if (rc != 0) {
        w->rejected++;
        return -1;
    }
    for (int i = 0; i < out.n; i++) {
        a->version++;
        out.items[i].version = a->version;
        out.items[i].recorded_at_us = w->now_us;
        wl_emit(w, a, out.items[i].type, out.items[i].data);
        kind->evolve(a->state, &out.items[i]);
    }
    int n = out.n;
    sb_devents_clear(&out);
    /* Simulated time: a few seconds between decisions, so a big log spans weeks. */
    w->now_us += 1000000 + (int64_t)wl_pick(w, 9000000);
    return n;
}

static inline const char *wl_member(wl_t *w, int ws)
{
    return w->users[ws * WL_MEMBERS + wl_pick(w, WL_MEMBERS)].id;
}

static inline void wl_refresh_context(wl_t *w, int ws)
{
    json_decref(w->contexts[ws]);
    w->contexts[ws] = sb_workspace_context(w->workspaces[ws].state);
}

/* Users, workspaces with their members, stages, numbers, an auto-reply and Twilio. */
static inline void wl_setup(wl_t *w, int nworkspaces)
{
    w->nworkspaces = nworkspaces;
    w->nusers = nworkspaces * WL_MEMBERS;
    w->users = calloc((size_t)w->nusers, sizeof(*w->users));
    w->workspaces = calloc((size_t)nworkspaces, sizeof(*w->workspaces));
    w->contexts = calloc((size_t)nworkspaces, sizeof(*w->contexts));
    if (w->users == NULL || w->workspaces == NULL || w->contexts == NULL)
        abort();
    for (int i = 0; i < w->nusers; i++) {
        wl_actor_t *u = &w->users[i];
        wl_actor_init(u, "user", &sb_kind_user, -1);
        char email[64], name[32];
        snprintf(email, sizeof(email), "user%d.%u@example.com", i, w->tag);
        snprintf(name, sizeof(name), "User %d", i);
        wl_do(w, u, &sb_kind_user,
              json_pack("{s:s, s:s, s:s, s:s}", "type", "RegisterUser", "email", email, "name", name,
                        "credential_ref", "sealed:v1:workload"),
              u->id);
        wl_do(w, u, &sb_kind_user, json_pack("{s:s, s:s}", "type", "ChangePresence", "presence", "online"),
              u->id);
    }
    static const char *const stages[] = {"Lead", "Qualified", "Proposal", "Customer"};
    for (int k = 0; k < nworkspaces; k++) {
        wl_actor_t *ws = &w->workspaces[k];
        wl_actor_init(ws, "workspace", &sb_kind_workspace, k);
        const char *owner = w->users[k * WL_MEMBERS].id;
        char name[32], owner_email[64];
        snprintf(name, sizeof(name), "Business %d", k);
        snprintf(owner_email, sizeof(owner_email), "user%d.%u@example.com", k * WL_MEMBERS, w->tag);
        wl_do(w, ws, &sb_kind_workspace,
              json_pack("{s:s, s:s, s:s, s:s}", "type", "CreateWorkspace", "name", name, "owner_email",
                        owner_email, "default_country", "US"),
              owner);
        for (int m = 1; m < WL_MEMBERS; m++) {
            char email[64];
            snprintf(email, sizeof(email), "user%d.%u@example.com", k * WL_MEMBERS + m, w->tag);
            wl_do(w, ws, &sb_kind_workspace,
                  json_pack("{s:s, s:s, s:s, s:s}", "type", "AddMember", "user_id",
                            w->users[k * WL_MEMBERS + m].id, "role", m == 1 ? "admin" : "agent", "email",
                            email),
                  owner);
        }
        for (size_t s = 0; s < sizeof(stages) / sizeof(stages[0]); s++)
            wl_do(w, ws, &sb_kind_workspace,
                  json_pack("{s:s, s:s}", "type", "AddPipelineStage", "name", stages[s]), owner);
        char number[20], sid[40];
        snprintf(number, sizeof(number), "+1628%07d", 2000000 + k);
        snprintf(sid, sizeof(sid), "PN%032d", k);
        wl_do(w, ws, &sb_kind_workspace,
              json_pack("{s:s, s:s, s:s}", "type", "ConfigureTwilio", "account_sid",
                        "AC00000000000000000000000000000001", "secret_ref", "sealed:v1:twilio"),
              owner);
        wl_do(w, ws, &sb_kind_workspace,
              json_pack("{s:s, s:s, s:s, s:s}", "type", "AddPhoneNumber", "number", number, "sid", sid,
                        "assigned_to", w->users[k * WL_MEMBERS + 2].id),
              owner);
        wl_do(w, ws, &sb_kind_workspace,
              json_pack("{s:s, s:s, s:s}", "type", "SetAutoReplyRule", "keyword", "hours", "reply",
                        "We are open 9 to 5."),
              owner);
        wl_refresh_context(w, k);
    }
}

static inline int wl_add_contact(wl_t *w)
{
    if (w->ncontacts == w->capcontacts) {
        w->capcontacts = w->capcontacts ? w->capcontacts * 2 : 1024;
        w->contacts = realloc(w->contacts, (size_t)w->capcontacts * sizeof(*w->contacts));
        if (w->contacts == NULL)
            abort();
    }
    int ws = wl_pick(w, w->nworkspaces);
    wl_actor_t *c = &w->contacts[w->ncontacts];
    wl_actor_init(c, "contact", &sb_kind_contact, ws);
    snprintf(c->phone, sizeof(c->phone), "+14152%06ld", w->phones++ % 1000000);
    static const char *const first[] = {"Ana", "Bo", "Chen", "Dara", "Eli", "Femi", "Gus", "Hana"};
    static const char *const last[] = {"Smith", "Garcia", "Okafor", "Nguyen", "Müller", "Rossi"};
    char name[64], email[80];
    snprintf(name, sizeof(name), "%s %s %d", first[wl_pick(w, 8)], last[wl_pick(w, 6)], w->ncontacts);
    snprintf(email, sizeof(email), "contact%d.%u@example.net", w->ncontacts, w->tag);
    json_t *cmd = json_pack("{s:s, s:s, s:s, s:s, s:s, s:[s]}", "type", "CreateContact", "workspace_id",
                            w->workspaces[ws].id, "name", name, "phone", c->phone, "email", email, "tags",
                            wl_pick(w, 3) == 0 ? "VIP" : "new");
    if (wl_pick(w, 2) == 0)
        json_object_set_new(cmd, "stage", json_string("Lead"));
    if (wl_do(w, c, &sb_kind_contact, cmd, wl_member(w, ws)) < 0) {
        json_decref(c->state);
        return -1;
    }
    w->contacts_created++;
    return w->ncontacts++;
}

/* A live contact, or -1. */
static inline int wl_contact(wl_t *w)
{
    for (int tries = 0; tries < 8 && w->ncontacts > 0; tries++) {
        int i = wl_pick(w, w->ncontacts);
        if (!w->contacts[i].gone)
            return i;
    }
    return -1;
}

static inline void wl_message_step(wl_t *w)
{
    if (w->outbound.n == 0)
        return;
    int i = wl_pick(w, w->outbound.n);
    wl_msg_t *m = &w->outbound.items[i];
    wl_actor_t *c = &w->contacts[m->contact];
    const char *status;
    char pid[48] = "";
    int r = wl_pick(w, 100);
    if (m->step == 0) {
        status = r < 3 ? "failed" : "sent";
        snprintf(pid, sizeof(pid), "SM%.30s", m->id);
    } else if (m->step == 1) {
        status = r < 8 ? "undelivered" : "delivered";
    } else {
        status = "read";
    }
    json_t *cmd =
        json_pack("{s:s, s:s, s:s}", "type", "RecordMessageStatus", "message_id", m->id, "status", status);
    if (pid[0])
        json_object_set_new(cmd, "provider_id", json_string(pid));
    if (strcmp(status, "failed") == 0 || strcmp(status, "undelivered") == 0) {
        json_object_set_new(cmd, "error_code", json_string("30003"));
        json_object_set_new(cmd, "error", json_string("Unreachable destination handset"));
    }
    wl_do(w, c, &sb_kind_contact, cmd, NULL);
    m->step++;
    bool done = strcmp(status, "failed") == 0 || strcmp(status, "undelivered") == 0 || m->step > 2 ||
                (m->step == 2 && wl_pick(w, 10) != 0);
    if (done)
        wl_list_take(&w->outbound, i);
}

static inline void wl_call_step(wl_t *w)
{
    if (w->live_calls.n == 0 || wl_pick(w, 4) == 0) {
        int ci = wl_contact(w);
        if (ci < 0)
            return;
        wl_actor_t *c = &w->contacts[ci];
        if (w->ncalls == w->capcalls) {
            w->capcalls = w->capcalls ? w->capcalls * 2 : 256;
            w->calls = realloc(w->calls, (size_t)w->capcalls * sizeof(*w->calls));
            if (w->calls == NULL)
                abort();
        }
        wl_actor_t *call = &w->calls[w->ncalls];
        wl_actor_init(call, "call", &sb_kind_call, c->ws);
        char number[20];
        snprintf(number, sizeof(number), "+1628%07d", 2000000 + c->ws);
        bool inbound = wl_pick(w, 2) == 0;
        if (wl_do(w, call, &sb_kind_call,
                  json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "type", "InitiateCall", "workspace_id",
                            w->workspaces[c->ws].id, "direction", inbound ? "inbound" : "outbound", "from",
                            inbound ? c->phone : number, "to", inbound ? number : c->phone, "contact_id",
                            c->id),
                  NULL) < 0) {
            json_decref(call->state);
            return;
        }
        wl_list_push(&w->live_calls, w->ncalls++, call->id, 0);
        return;
    }
    int i = wl_pick(w, w->live_calls.n);
    wl_msg_t *lc = &w->live_calls.items[i];
    wl_actor_t *call = &w->calls[lc->contact];
    char sid[40] = "CA"; /* CA and 32 hex digits: the call's id without its dashes */
    size_t k = 2;
    for (const char *p = call->id; *p && k < 34; p++)
        if (*p != '-')
            sid[k++] = *p;
    sid[k] = '\0';
    json_t *cmd = NULL;
    bool end = false;
    int r = wl_pick(w, 100);
    switch (lc->step) {
    case 0:
        cmd = json_pack("{s:s, s:s, s:s}", "type", "RecordCallStatus", "status", "ringing", "call_sid", sid);
        break;
    case 1:
        if (r < 25) {
            cmd =
                json_pack("{s:s, s:s}", "type", "RecordCallStatus", "status", r < 12 ? "no-answer" : "busy");
            end = true;
        } else {
            cmd = json_pack("{s:s, s:s}", "type", "AnswerCall", "agent_id", wl_member(w, call->ws));
        }
        break;
    case 2:
        if (r < 20) {
            cmd = json_pack("{s:s}", "type", "ParkCall");
            json_t *ctx = w->contexts[call->ws];
            json_object_set_new(ctx, "parked_slots", json_array());
        } else {
            cmd = json_pack("{s:s, s:s}", "type", "RecordCallStatus", "status", "completed");
            end = true;
        }
        break;
    case 3:
        cmd = json_pack("{s:s, s:s}", "type", "UnparkCall", "agent_id", wl_member(w, call->ws));
        break;
    default:
        cmd = json_pack("{s:s, s:s}", "type", "RecordCallStatus", "status", "completed");
        end = true;
        break;
    }
    wl_do(w, call, &sb_kind_call, cmd, NULL);
    json_object_del(w->contexts[call->ws], "parked_slots");
    lc->step = lc->step == 2 && !end ? (r < 20 ? 3 : 4) : lc->step + 1;
    if (end)
        wl_list_take(&w->live_calls, i);
}

/* One operation, chosen at random with weights that make messages the bulk of the log. */
static inline void wl_step(wl_t *w)
{
    int r = wl_pick(w, 1000);
    int ci = wl_contact(w);
    if (ci < 0 || r < 40) {
        wl_add_contact(w);
        return;
    }
    wl_actor_t *c = &w->contacts[ci];
    const char *by = wl_member(w, c->ws);
    char id[SB_UUID_STRLEN + 1];
    if (r < 70) { /* profile and pipeline */
        static const char *const stages[] = {"Lead", "Qualified", "Proposal", "Customer"};
        static const char *const tags[] = {"VIP", "vip", "late-payer", "referral", "spring"};
        json_t *cmd;
        switch (r % 5) {
        case 0:
            cmd = json_pack("{s:s, s:s}", "type", "ChangeStage", "stage", stages[wl_pick(w, 4)]);
            break;
        case 1:
            cmd = json_pack("{s:s, s:s}", "type", "TagContact", "tag", tags[wl_pick(w, 5)]);
            break;
        case 2:
            cmd = json_pack("{s:s, s:s}", "type", "UntagContact", "tag", tags[wl_pick(w, 5)]);
            break;
        case 3:
            cmd = json_pack("{s:s, s:s}", "type", "AssignContact", "assignee_id", by);
            break;
        default: {
            char name[48];
            snprintf(name, sizeof(name), "Renamed %d", ci);
            cmd = json_pack("{s:s, s:s}", "type", "UpdateContact", "name", name);
            break;
        }
        }
        wl_do(w, c, &sb_kind_contact, cmd, by);
    } else if (r < 270) { /* inbound */
        wl_new_id(id);
        char pid[48];
        snprintf(pid, sizeof(pid), "SMin%.30s", id);
        const char *body =
            wl_pick(w, 400) == 0 ? "STOP" : "Hi, is the quote still valid? Can we talk tomorrow?";
        if (wl_do(w, c, &sb_kind_contact,
                  json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "type", "ReceiveMessage", "message_id", id,
                            "channel", "sms", "from", c->phone, "body", body, "provider_id", pid),
                  NULL) > 0) {
            w->messages_in++;
            wl_list_push(&w->unread, ci, id, 0);
        }
    } else if (r < 450) { /* outbound */
        wl_new_id(id);
        int ch = wl_pick(w, 10);
        json_t *cmd =
            json_pack("{s:s, s:s, s:s, s:s}", "type", "SendMessage", "message_id", id, "channel",
                      ch < 7   ? "sms"
                      : ch < 9 ? "email"
                               : "whatsapp",
                      "body", "Thanks for reaching out! Your appointment is confirmed for Tuesday at 10am.");
        if (ch >= 7 && ch < 9)
            json_object_set_new(cmd, "subject", json_string("Your appointment"));
        if (wl_do(w, c, &sb_kind_contact, cmd, by) > 0) {
            w->messages_out++;
            wl_list_push(&w->outbound, ci, id, 0);
        }
    } else if (r < 800) {
        wl_message_step(w);
    } else if (r < 850) { /* a member reads an inbound message */
        if (w->unread.n > 0) {
            int i = wl_pick(w, w->unread.n);
            wl_msg_t *m = &w->unread.items[i];
            wl_actor_t *mc = &w->contacts[m->contact];
            wl_do(w, mc, &sb_kind_contact,
                  json_pack("{s:s, s:s, s:s}", "type", "RecordMessageStatus", "message_id", m->id, "status",
                            "read"),
                  wl_member(w, mc->ws));
            wl_list_take(&w->unread, i);
        }
    } else if (r < 870) { /* scheduling */
        if (w->scheduled.n > 0 && wl_pick(w, 2) == 0) {
            int i = wl_pick(w, w->scheduled.n);
            wl_msg_t *m = &w->scheduled.items[i];
            bool cancel = wl_pick(w, 4) == 0;
            wl_do(w, &w->contacts[m->contact], &sb_kind_contact,
                  json_pack("{s:s, s:s}", "type",
                            cancel ? "CancelScheduledMessage" : "DispatchScheduledMessage", "message_id",
                            m->id),
                  cancel ? by : NULL);
            if (!cancel)
                wl_list_push(&w->outbound, m->contact, m->id, 0);
            wl_list_take(&w->scheduled, i);
        } else {
            wl_new_id(id);
            char at[SB_RFC3339_LEN];
            sb_clock_format_rfc3339(w->now_us + 3600 * 1000000LL, at);
            if (wl_do(w, c, &sb_kind_contact,
                      json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", "SendMessage", "message_id", id,
                                "channel", "sms", "body", "Reminder: your appointment is tomorrow.",
                                "send_at", at),
                      by) > 0)
                wl_list_push(&w->scheduled, ci, id, 0);
        }
    } else if (r < 920) { /* notes */
        if (w->notes.n > 0 && wl_pick(w, 4) == 0) {
            int i = wl_pick(w, w->notes.n);
            wl_msg_t *n = &w->notes.items[i];
            wl_actor_t *nc = &w->contacts[n->contact];
            /* As its author (the system may too): edit or delete. */
            bool del = wl_pick(w, 3) == 0;
            wl_do(w, nc, &sb_kind_contact,
                  del ? json_pack("{s:s, s:s}", "type", "DeleteNote", "note_id", n->id)
                      : json_pack("{s:s, s:s, s:s}", "type", "EditNote", "note_id", n->id, "body",
                                  "Called back; left a voicemail."),
                  NULL);
            if (del)
                wl_list_take(&w->notes, i);
        } else {
            wl_new_id(id);
            char body[128];
            snprintf(body, sizeof(body), "Spoke with them about the quote, @user%d.%u follows up.",
                     c->ws * WL_MEMBERS + 1, w->tag);
            if (wl_do(w, c, &sb_kind_contact,
                      json_pack("{s:s, s:s, s:s, s:b}", "type", "AddNote", "note_id", id, "body", body,
                                "private", wl_pick(w, 5) == 0),
                      by) > 0)
                wl_list_push(&w->notes, ci, id, 0);
        }
    } else if (r < 998) {
        wl_call_step(w);
    } else { /* a contact is deleted */
        if (wl_do(w, c, &sb_kind_contact, json_pack("{s:s}", "type", "DeleteContact"), by) > 0) {
            c->gone = true;
            w->contacts_deleted++;
        }
    }
}

/* Appends the pending events to the log in one statement.  0, or -1 with the error on stderr. */
static inline int wl_flush(wl_t *w, PGconn *conn)
{
    if (w->pending == 0)
        return 0;
    const char *values[5];
    int lengths[5], formats[5] = {1, 1, 1, 1, 1};
    for (int i = 0; i < 5; i++)
        sb_pg_array_finish(&w->cols[i], &values[i], &lengths[i]);
    PGresult *r = PQexecParams(conn,
                               "INSERT INTO events (stream, version, type, workspace_id, payload, metadata) "
                               "SELECT s, v, t, ws, p, '\\x81a6736f75726365a8776f726b6c6f6164'::bytea "
                               "FROM unnest($1::text[], $2::int8[], $3::text[], $4::uuid[], $5::bytea[]) "
                               "AS x(s, v, t, ws, p)",
                               5, NULL, values, lengths, formats, 0);
    int rc = 0;
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        fprintf(stderr, "workload: insert failed: %s", PQresultErrorMessage(r));
        rc = -1;
    }
    PQclear(r);
    static const uint32_t oids[5] = {SB_OID_TEXT, SB_OID_INT8, SB_OID_TEXT, SB_OID_UUID, SB_OID_BYTEA};
    for (int i = 0; i < 5; i++)
        sb_pg_array_begin(&w->cols[i], oids[i]);
    w->pending = 0;
    return rc;
}

/* Runs steps until at least n more events exist, appending them to the log every `chunk` events.
 * 0 or -1. */
static inline int wl_generate(wl_t *w, PGconn *conn, long n, int chunk)
{
    long target = w->events + n;
    while (w->events < target) {
        wl_step(w);
        if (w->pending >= chunk && wl_flush(w, conn) != 0)
            return -1;
    }
    return wl_flush(w, conn);
}

static inline void wl_free_actors(wl_actor_t *a, int n)
{
    for (int i = 0; i < n; i++)
        json_decref(a[i].state);
    free(a);
}

static inline void wl_free(wl_t *w)
{
    wl_free_actors(w->users, w->nusers);
    wl_free_actors(w->workspaces, w->nworkspaces);
    for (int i = 0; i < w->nworkspaces; i++)
        json_decref(w->contexts[i]);
    free(w->contexts);
    wl_free_actors(w->contacts, w->ncontacts);
    wl_free_actors(w->calls, w->ncalls);
    free(w->outbound.items);
    free(w->unread.items);
    free(w->scheduled.items);
    free(w->notes.items);
    free(w->live_calls.items);
    for (int i = 0; i < 5; i++)
        sb_pg_array_free(&w->cols[i]);
    sb_buf_free(&w->mp);
}

#endif
