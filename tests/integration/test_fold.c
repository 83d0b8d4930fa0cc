/* Live state equals the fold of the log.  Random command sequences (seeded: SB_FOLD_SEED, printed)
 * go through the runtime to every kind at once (a workspace, contacts, calls, users, claims), from
 * every loop; afterwards, for each stream, the live actor's state equals sb_fold of its stored
 * events (decoded from msgpack), compared as canonical JSON; and so does the state each actor is
 * reactivated with from its snapshot after passivation. */
#include "test_flows_harness.h"

#include "core/clock.h"

#define LOOPS 4
#define ROUNDS 150
#define NCONTACTS 6
#define NCALLS 4
#define NUSERS 4
#define NCLAIMS 3
#define NMEMBERS 5
#define NSTREAMS (1 + NCONTACTS + NCALLS + NUSERS + NCLAIMS)

static const char *const WS_ID = "00000000-0000-4000-8000-0000000000f1";
static sb_loops_t *g;
static uint64_t rng;

static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static int pick(int n)
{
    return (int)(next_rand() % (uint64_t)n);
}

static const char *pick_of(const char *const *a, int n)
{
    return a[pick(n)];
}

static void member_id(int i, char out[SB_UUID_STRLEN + 1])
{
    snprintf(out, SB_UUID_STRLEN + 1, "00000000-0000-4000-8000-0000000001%02d", i);
}

static void new_id(char out[SB_UUID_STRLEN + 1])
{
    sb_uuid_t u;
    sb_uuid_v7(&u);
    sb_uuid_format(&u, out);
}

static void hex32(char out[33])
{
    for (int i = 0; i < 32; i++)
        out[i] = "0123456789abcdef"[pick(16)];
    out[32] = '\0';
}

/* One stream under test: what it is, and the ids its commands may refer to. */
typedef struct {
    char name[SB_STREAM_NAME_MAX];
    char kind; /* 'w', 'c', 'k' (call), 'u', 'l' (claim) */
    char key[96];
    json_t *ids; /* notes / messages it has been told about */
    int index;
    bool user_self; /* users act on their own account */
} stream_t;

static stream_t streams[NSTREAMS];

static const char *const stages[] = {"Lead", "Qualified", "Won", "Lost"};
static const char *const keywords[] = {"hours", "price", "where"};
static const char *const numbers[] = {"+14155550201", "+14155550202", "+14155550203"};

static const char *remember(stream_t *s)
{
    char id[SB_UUID_STRLEN + 1];
    new_id(id);
    json_array_append_new(s->ids, json_string(id));
    return json_string_value(json_array_get(s->ids, json_array_size(s->ids) - 1));
}

static const char *recall(stream_t *s)
{
    size_t n = json_array_size(s->ids);
    if (n == 0)
        return remember(s);
    return json_string_value(
        json_array_get(s->ids, (size_t)pick((int)(n < 20 ? n : 20)) + (n < 20 ? 0 : n - 20)));
}

static json_t *workspace_cmd(int round)
{
    char m[SB_UUID_STRLEN + 1], h[33], text[128];
    member_id(1 + pick(NMEMBERS - 1), m);
    if (round == 0)
        return json_pack("{s:s, s:s, s:s, s:s}", "type", "CreateWorkspace", "name", "Fold", "owner_email",
                         "m0@example.com", "default_country", "US");
    switch (pick(16)) {
    case 0:
        snprintf(text, sizeof(text), "Fold %d", round);
        return json_pack("{s:s, s:s}", "type", "RenameWorkspace", "name", text);
    case 1:
    case 2:
        snprintf(text, sizeof(text), "%.8s@example.com", m + 28);
        return json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", "AddMember", "user_id", m, "role",
                         pick_of((const char *[]){"admin", "agent", "owner"}, 3), "email", text, "name",
                         "Mem");
    case 3:
        return json_pack("{s:s, s:s}", "type", "RemoveMember", "user_id", m);
    case 4:
        return json_pack("{s:s, s:s, s:s}", "type", "ChangeMemberRole", "user_id", m, "role",
                         pick_of((const char *[]){"admin", "agent"}, 2));
    case 5:
    case 6:
        return json_pack("{s:s, s:s}", "type", "AddPipelineStage", "name", pick_of(stages, 4));
    case 7:
        return json_pack("{s:s, s:s}", "type", "RemovePipelineStage", "name", pick_of(stages, 4));
    case 8:
        snprintf(text, sizeof(text), "reply %d", round);
        return json_pack("{s:s, s:s, s:s}", "type", "SetAutoReplyRule", "keyword", pick_of(keywords, 3),
                         "reply", text);
    case 9:
        return json_pack("{s:s, s:s}", "type", "RemoveAutoReplyRule", "keyword", pick_of(keywords, 3));
    case 10:
        return json_pack("{s:s, s:s}", "type", "ChangeDefaultCountry", "default_country",
                         pick_of((const char *[]){"US", "GB", "DE"}, 3));
    case 11:
        return json_pack("{s:s, s:i}", "type", "SetParkingLimit", "seconds", 10 + pick(1000));
    case 12: {
        const char *num = pick_of(numbers, 3);
        snprintf(text, sizeof(text), "PN%032d", (int)(num[11] - '0'));
        return json_pack("{s:s, s:s, s:s}", "type", "AddPhoneNumber", "number", num, "sid", text);
    }
    case 13:
        return json_pack("{s:s, s:s, s:s?}", "type", "AssignPhoneNumber", "number", pick_of(numbers, 3),
                         "user_id", pick(2) ? m : NULL);
    case 14:
        hex32(h);
        snprintf(text, sizeof(text), "AC%s", h);
        return json_pack("{s:s, s:s, s:s}", "type", "ConfigureTwilio", "account_sid", text, "secret_ref",
                         "sealed:v1:abc");
    default:
        return pick(3) ? json_pack("{s:s, s:s}", "type", "RemovePhoneNumber", "number", pick_of(numbers, 3))
                       : json_pack("{s:s}", "type", "ClearTwilio");
    }
}

static json_t *contact_cmd(stream_t *s, int round)
{
    char m[SB_UUID_STRLEN + 1], text[128], h[33];
    member_id(pick(NMEMBERS), m);
    if (round == 0)
        return json_pack("{s:s, s:s, s:s, s:[s], s:[s]}", "type", "CreateContact", "workspace_id", WS_ID,
                         "name", "Cal", "phones", "+14155550300", "emails", "cal@example.com");
    if (round == ROUNDS - 1 && s->index == 0)
        return json_pack("{s:s}", "type", "DeleteContact");
    switch (pick(18)) {
    case 0:
        snprintf(text, sizeof(text), "Cal %d", round);
        return json_pack("{s:s, s:s, s:[s, s]}", "type", "UpdateContact", "name", text, "tags", "a", "b");
    case 1:
        snprintf(text, sizeof(text), "+1415555%04d", 300 + pick(20));
        return json_pack("{s:s, s:[s]}", "type", "UpdateContact", "phones", text);
    case 2:
        return json_pack("{s:s, s:s?}", "type", "ChangeStage", "stage", pick(4) ? pick_of(stages, 4) : NULL);
    case 3:
        return json_pack("{s:s, s:s?}", "type", "AssignContact", "assignee_id", pick(3) ? m : NULL);
    case 4:
        snprintf(text, sizeof(text), "t%d", pick(20));
        return json_pack("{s:s, s:s}", "type", pick(3) ? "TagContact" : "UntagContact", "tag", text);
    case 5:
        return json_pack("{s:s, s:s, s:s?}", "type", pick(2) ? "OptOutContact" : "OptInContact", "channel",
                         pick_of((const char *[]){"sms", "whatsapp", "email"}, 3), "keyword",
                         pick(2) ? "STOP" : NULL);
    case 6:
    case 7:
        return json_pack("{s:s, s:s, s:s, s:b}", "type", "AddNote", "note_id", remember(s), "body",
                         "ping @m0 and @nobody", "private", pick(2));
    case 8:
        return json_pack("{s:s, s:s, s:s}", "type", pick(2) ? "EditNote" : "DeleteNote", "note_id", recall(s),
                         "body", "edited");
    case 9:
    case 10: {
        const char *ch = pick_of((const char *[]){"sms", "email", "chat", "whatsapp"}, 4);
        char at[SB_RFC3339_LEN];
        sb_clock_format_rfc3339(sb_clock_now_us() + 86400000000LL, at);
        return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s?}", "type", "SendMessage", "message_id", remember(s),
                         "channel", ch, "body", "hello there", "subject", "Hi", "send_at",
                         pick(3) ? NULL : at);
    }
    case 11:
    case 12:
        hex32(h);
        snprintf(text, sizeof(text), "SM%s", h);
        return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "type", "ReceiveMessage", "message_id",
                         remember(s), "channel", "sms", "from", "+14155550300", "body",
                         pick_of((const char *[]){"hi", "STOP", "START", "price?"}, 4), "provider_id", text);
    case 13:
    case 14:
        hex32(h);
        snprintf(text, sizeof(text), "SM%s", h);
        return json_pack("{s:s, s:s, s:s, s:s}", "type", "RecordMessageStatus", "message_id", recall(s),
                         "status",
                         pick_of((const char *[]){"sent", "delivered", "read", "failed", "undelivered"}, 5),
                         "provider_id", text);
    case 15:
        return json_pack("{s:s, s:s}", "type",
                         pick(2) ? "CancelScheduledMessage" : "DispatchScheduledMessage", "message_id",
                         recall(s));
    default:
        return json_pack("{s:s, s:[s, s]}", "type", "UpdateContact", "emails", "cal@example.com",
                         "x@example.com");
    }
}

static json_t *call_cmd(int round)
{
    char m[SB_UUID_STRLEN + 1], text[128], h[33];
    member_id(pick(NMEMBERS), m);
    if (round == 0)
        return json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", "InitiateCall", "workspace_id", WS_ID,
                         "direction", pick(2) ? "inbound" : "outbound", "from", "+14155550400", "to",
                         "+14155550401");
    switch (pick(9)) {
    case 0:
    case 1:
    case 2:
        hex32(h);
        snprintf(text, sizeof(text), "CA%s", h);
        return json_pack("{s:s, s:s, s:s?}", "type", "RecordCallStatus", "status",
                         pick_of((const char *[]){"queued", "initiated", "ringing", "in-progress",
                                                  "completed", "busy", "no-answer", "failed", "canceled"},
                                 9),
                         "call_sid", pick(4) ? NULL : text);
    case 3:
        return json_pack("{s:s, s:s}", "type", "AnswerCall", "agent_id", m);
    case 4:
        return json_pack("{s:s, s:i}", "type", "ParkCall", "slot", 1 + pick(5));
    case 5:
        return json_pack("{s:s, s:s}", "type", "UnparkCall", "agent_id", m);
    case 6:
        return json_pack("{s:s, s:s, s:s}", "type", "TransferCall", "mode", pick(2) ? "cold" : "warm",
                         "to_agent", m);
    case 7:
        return json_pack("{s:s}", "type", "HangupCall");
    default:
        snprintf(text, sizeof(text), "https://rec.example.com/%d.mp3", round);
        return json_pack("{s:s, s:s, s:i}", "type", "RecordCallRecording", "url", text, "duration_seconds",
                         pick(600));
    }
}

static json_t *user_cmd(stream_t *s, int round)
{
    char text[128];
    if (round == 0) {
        snprintf(text, sizeof(text), "user%d@example.com", s->index);
        return json_pack("{s:s, s:s, s:s, s:s}", "type", "RegisterUser", "email", text, "name", "Una",
                         "credential_ref", "sealed:v1:one");
    }
    switch (pick(4)) {
    case 0:
        return json_pack("{s:s, s:s}", "type", "ChangePresence", "presence",
                         pick_of((const char *[]){"online", "away", "offline"}, 3));
    case 1:
        snprintf(text, sizeof(text), "Una %d", round);
        return json_pack("{s:s, s:s}", "type", "UpdateProfile", "name", text);
    case 2:
        snprintf(text, sizeof(text), "user%d.%d@example.com", s->index, pick(3));
        return json_pack("{s:s, s:s}", "type", "UpdateProfile", "email", text);
    default:
        snprintf(text, sizeof(text), "sealed:v1:%d", pick(4));
        return json_pack("{s:s, s:s}", "type", "ChangeCredential", "credential_ref", text);
    }
}

static json_t *claim_cmd(stream_t *s)
{
    char owner[SB_STREAM_NAME_MAX];
    snprintf(owner, sizeof(owner), "%s", streams[1 + pick(NCONTACTS)].name);
    if (pick(3))
        return json_pack("{s:s, s:s, s:s}", "type", "Claim", "key", s->key, "owner", owner);
    return json_pack("{s:s, s:s}", "type", "Release", "owner", owner);
}

/* ---- one round: a command to every stream at once, from every loop ----------------------------- */

typedef struct {
    _Atomic int ok, rejected, other, events;
} tally_t;

typedef struct {
    json_t *cmd;
    char user[SB_UUID_STRLEN + 1];
    bool system;
    int stream;
} pending_t;

typedef struct {
    pending_t *p;
    int n;
    const json_t *context;
    tally_t *t;
    sbtest_wait_t *w;
} round_part_t;

typedef struct {
    tally_t *t;
    sbtest_wait_t *w;
} reply_ctx_t;

static void on_round_reply(const sb_ask_reply_t *r, void *data)
{
    reply_ctx_t *c = data;
    if (r->status == 0)
        atomic_fetch_add(&c->t->ok, 1);
    else if (r->status == SB_EREJECTED)
        atomic_fetch_add(&c->t->rejected, 1);
    else {
        fprintf(stderr, "ask failed: %s %s %s\n", r->stream, sb_errname(r->status), r->error ? r->error : "");
        atomic_fetch_add(&c->t->other, 1);
    }
    atomic_fetch_add(&c->t->events, r->nevents);
    sbtest_wait_t *w = c->w;
    free(c);
    sbtest_wait_one(w);
}

static void start_part(void *arg)
{
    round_part_t *rp = arg;
    for (int i = 0; i < rp->n; i++) {
        pending_t *p = &rp->p[i];
        stream_t *s = &streams[p->stream];
        reply_ctx_t *c = malloc(sizeof(*c));
        c->t = rp->t;
        c->w = rp->w;
        sb_ask_opts_t o = {.user_id = p->system ? NULL : p->user,
                           .context = s->kind == 'c' || s->kind == 'k' ? rp->context : NULL,
                           .source = "test",
                           .workspace_id = s->kind == 'l' ? WS_ID : NULL,
                           .skip_state = true};
        if (sb_actor_ask(g, s->name, p->cmd, &o, on_round_reply, c) != 0)
            abort();
    }
}

static void run_round(int round, tally_t *t)
{
    json_t *ws = h_state(g, streams[0].name, NULL);
    json_t *context = sb_workspace_context(ws);
    json_decref(ws);
    pending_t p[NSTREAMS];
    for (int i = 0; i < NSTREAMS; i++) {
        stream_t *s = &streams[i];
        p[i].stream = i;
        p[i].system = pick(5) == 0;
        member_id(0, p[i].user); /* the owner */
        switch (s->kind) {
        case 'w':
            p[i].system = false;
            p[i].cmd = workspace_cmd(round);
            break;
        case 'c':
            p[i].cmd = contact_cmd(s, round);
            break;
        case 'k':
            p[i].cmd = call_cmd(round);
            break;
        case 'u':
            snprintf(p[i].user, sizeof(p[i].user), "%s", strchr(s->name, '-') + 1);
            p[i].cmd = user_cmd(s, round);
            break;
        default:
            p[i].cmd = claim_cmd(s);
            break;
        }
    }
    /* the workspace's creation first: the others' first commands need its context */
    int first = round == 0 ? 1 : 0;
    if (round == 0) {
        sb_ask_opts_t o = {.user_id = p[0].user};
        char *text = json_dumps(p[0].cmd, 0);
        h_ask_t a = h_ask(g, streams[0].name, text, &o);
        CHECK_EQ_INT(a.status, 0);
        json_decref(a.state);
        free(text);
        json_decref(p[0].cmd);
        json_decref(context);
        ws = h_state(g, streams[0].name, NULL);
        context = sb_workspace_context(ws);
        json_decref(ws);
    }
    sbtest_wait_t w;
    sbtest_wait_init(&w, NSTREAMS - first);
    round_part_t parts[LOOPS];
    int per = (NSTREAMS - first + LOOPS - 1) / LOOPS;
    for (int l = 0; l < LOOPS; l++) {
        int from = first + l * per, to = from + per > NSTREAMS ? NSTREAMS : from + per;
        parts[l] = (round_part_t){
            .p = &p[from], .n = to > from ? to - from : 0, .context = context, .t = t, .w = &w};
        if (parts[l].n > 0)
            sbtest_run_on(g->loops[l], start_part, &parts[l]);
    }
    sbtest_wait_all(&w);
    json_decref(context);
}

static void compare_all(const char *when)
{
    for (int i = 0; i < NSTREAMS; i++) {
        h_ask_t live = h_ask(g, streams[i].name, NULL, NULL);
        json_t *fold = h_fold_log(streams[i].name);
        char what[160];
        snprintf(what, sizeof(what), "%.70s (%.60s)", streams[i].name, when);
        CHECK(live.status == 0 && h_same_json(live.state, fold, what));
        json_decref(live.state);
        json_decref(fold);
    }
}

static void test_fold(void)
{
    const char *env = getenv("SB_FOLD_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 10) : (uint64_t)sb_clock_now_us();
    rng = seed ? seed : 1;
    fprintf(stderr, "fold: seed %llu (SB_FOLD_SEED to repeat)\n", (unsigned long long)seed);

    int k = 0;
    snprintf(streams[k].name, SB_STREAM_NAME_MAX, "workspace-%s", WS_ID);
    streams[k++].kind = 'w';
    for (int i = 0; i < NCONTACTS; i++, k++) {
        snprintf(streams[k].name, SB_STREAM_NAME_MAX, "contact-00000000-0000-4000-8000-0000000002%02d", i);
        streams[k].kind = 'c';
        streams[k].index = i;
    }
    for (int i = 0; i < NCALLS; i++, k++) {
        snprintf(streams[k].name, SB_STREAM_NAME_MAX, "call-00000000-0000-4000-8000-0000000003%02d", i);
        streams[k].kind = 'k';
    }
    for (int i = 0; i < NUSERS; i++, k++) {
        snprintf(streams[k].name, SB_STREAM_NAME_MAX, "user-00000000-0000-4000-8000-0000000004%02d", i);
        streams[k].kind = 'u';
        streams[k].index = i;
    }
    for (int i = 0; i < NCLAIMS; i++, k++) {
        snprintf(streams[k].key, sizeof(streams[k].key), "phone:%s:+1415555050%d", WS_ID, i);
        sb_claim_stream(streams[k].key, streams[k].name);
        streams[k].kind = 'l';
    }
    for (int i = 0; i < NSTREAMS; i++)
        streams[i].ids = json_array();

    tally_t t = {0};
    for (int round = 0; round < ROUNDS; round++)
        run_round(round, &t);
    fprintf(stderr, "fold: %d commands stored %d events, %d rejected\n", atomic_load(&t.ok),
            atomic_load(&t.events), atomic_load(&t.rejected));
    CHECK_EQ_INT(atomic_load(&t.other), 0);
    /* not a vacuous run: most commands did something, and every kind's events are in the log */
    CHECK(atomic_load(&t.events) > NSTREAMS * ROUNDS / 3);
    long long types = h_sql_count("SELECT count(DISTINCT type) FROM events", 0, NULL);
    fprintf(stderr, "fold: %lld distinct event types\n", types);
    CHECK(types >= 40);

    compare_all("live");
    sbtest_passivate_all(g);
    sb_runtime_stats_t st;
    sb_runtime_get_stats(g, &st);
    CHECK_EQ_UINT(st.active, 0);
    compare_all("reactivated from snapshots");
    for (int i = 0; i < NSTREAMS; i++)
        json_decref(streams[i].ids);
}

int main(void)
{
    h_conninfo = sbt_db_create("test_fold");
    if (h_conninfo == NULL || sbt_db_migrate(h_conninfo) < 0)
        return 1;
    h_db_connect();
    sb_runtime_config_t rc = {.snapshot_every = 5, .snapshot_on_passivate = 1};
    g = h_group_new(LOOPS, &rc);
    SBTEST_RUN(test_fold);
    sbtest_group_free(g);
    PQfinish(h_db);
    free(h_conninfo);
    return sbtest_summary();
}
