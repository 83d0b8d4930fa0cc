/* Parking slots (src/actors/park.h) against the real PostgreSQL: parks from every loop at once get
 * distinct slots; a slot held by a park that died between its claim and its write is refused, then
 * taken over once the claim is steal_after old; an unpark and the end of a call free their slot at
 * once; an unanswered unparking goes back to its old slot, or to a free one when that was taken. */
#include "test_flows_harness.h"

#include "actors/park.h"

#include <time.h>

#define LOOPS 4
#define OWNER "00000000-0000-4000-8000-0000000000a1"
#define WS "00000000-0000-4000-8000-0000000000c1"
#define NCALLS 20

static sb_loops_t *g;
static json_t *ctx; /* the workspace context */

/* ---- calls --------------------------------------------------------------------------------------- */

static void call_id(int i, char out[SB_UUID_STRLEN + 1])
{
    snprintf(out, SB_UUID_STRLEN + 1, "00000000-0000-4000-8000-%012d", 1000 + i);
}

static void call_stream(int i, char out[SB_STREAM_NAME_MAX])
{
    char id[SB_UUID_STRLEN + 1];
    call_id(i, id);
    snprintf(out, SB_STREAM_NAME_MAX, "call-%s", id);
}

static h_ask_t call_ask(int i, const char *cmd)
{
    char stream[SB_STREAM_NAME_MAX];
    call_stream(i, stream);
    sb_ask_opts_t o = {.context = ctx, .source = "test", .workspace_id = WS};
    return h_ask(g, stream, cmd, &o);
}

/* Call i, answered (in progress). */
static void live_call(int i)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd,
             "{\"type\":\"InitiateCall\",\"workspace_id\":\"" WS "\",\"direction\":\"inbound\","
             "\"from\":\"+1415555%04d\",\"to\":\"+14155550100\"}",
             i);
    h_ask_t a = call_ask(i, cmd);
    CHECK_EQ_INT(a.status, 0);
    json_decref(a.state);
    a = call_ask(i, "{\"type\":\"RecordCallStatus\",\"status\":\"in-progress\"}");
    CHECK_EQ_INT(a.status, 0);
    json_decref(a.state);
}

/* ---- parks --------------------------------------------------------------------------------------- */

typedef struct {
    int call, slot;
    const char *command;
    char unparked_at[48];
    int status;
    char code[40];
    int parked_slot; /* 0 when not parked */
    sbtest_wait_t *w;
} park_t;

static void on_parked(const sb_ask_reply_t *r, void *data)
{
    park_t *p = data;
    p->status = r->status;
    snprintf(p->code, sizeof p->code, "%s", r->err ? r->err->code : "");
    const json_t *parked = r->state ? json_object_get(r->state, "parked") : NULL;
    p->parked_slot = json_is_object(parked) ? (int)json_integer_value(json_object_get(parked, "slot")) : 0;
    sbtest_wait_one(p->w);
}

static void start_park(void *arg)
{
    park_t *p = arg;
    char id[SB_UUID_STRLEN + 1];
    call_id(p->call, id);
    sb_park_req_t req = {
        .workspace_id = WS,
        .call_id = id,
        .command = p->command ? p->command : "ParkCall",
        .slot = p->slot,
        .unparked_at = p->unparked_at,
        .opts = {.user_id = OWNER, .context = ctx, .source = "test"},
    };
    if (sb_park_call(g, &req, on_parked, p) != 0)
        abort();
}

/* n parks at once, spread over the loops; waits for all. */
static void parks(park_t *ps, int n)
{
    sbtest_wait_t w;
    sbtest_wait_init(&w, n);
    for (int i = 0; i < n; i++) {
        ps[i].w = &w;
        sbtest_run_on(g->loops[i % LOOPS], start_park, &ps[i]);
    }
    sbtest_wait_all(&w);
}

static park_t park(int call, int slot)
{
    park_t p = {.call = call, .slot = slot};
    parks(&p, 1);
    return p;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The owner of slot n's claim, as the log says ("" when free). */
static const char *slot_owner(int n)
{
    static char owner[SB_STREAM_NAME_MAX];
    char key[SB_PARK_KEY_MAX], cs[SB_CLAIM_STREAM_LEN];
    sb_park_slot_key(WS, n, key);
    sb_claim_stream(key, cs);
    json_t *st = h_fold_log(cs);
    const char *o = json_string_value(json_object_get(st, "owner"));
    snprintf(owner, sizeof owner, "%s", o ? o : "");
    json_decref(st);
    return owner;
}

/* ---- tests --------------------------------------------------------------------------------------- */

static void test_concurrent(void)
{
    park_t ps[NCALLS];
    memset(ps, 0, sizeof ps);
    for (int i = 0; i < NCALLS; i++) {
        live_call(i);
        ps[i].call = i;
    }
    parks(ps, NCALLS);
    bool seen[NCALLS + 1] = {false};
    for (int i = 0; i < NCALLS; i++) {
        CHECK_EQ_INT(ps[i].status, 0);
        CHECK(ps[i].parked_slot >= 1 && ps[i].parked_slot <= NCALLS); /* the lowest free ones */
        if (ps[i].parked_slot >= 1 && ps[i].parked_slot <= NCALLS) {
            CHECK(!seen[ps[i].parked_slot]);
            seen[ps[i].parked_slot] = true;
            char stream[SB_STREAM_NAME_MAX];
            call_stream(i, stream);
            CHECK_EQ_STR(slot_owner(ps[i].parked_slot), stream);
        }
    }
    /* parking a parked call again: nothing, same slot */
    park_t again = park(0, 0);
    CHECK_EQ_INT(again.status, 0);
    CHECK_EQ_INT(again.parked_slot, ps[0].parked_slot);
    /* a slot held: 409 slot_taken, and nothing changes */
    live_call(100);
    park_t taken = park(100, ps[3].parked_slot);
    CHECK_EQ_INT(taken.status, SB_EREJECTED);
    CHECK_EQ_STR(taken.code, "slot_taken");
    char s3[SB_STREAM_NAME_MAX];
    call_stream(3, s3);
    CHECK_EQ_STR(slot_owner(ps[3].parked_slot), s3);
    /* the next automatic pick is past the lot */
    park_t next = park(100, 0);
    CHECK_EQ_INT(next.status, 0);
    CHECK_EQ_INT(next.parked_slot, NCALLS + 1);
}

static void test_unpark_and_end_free_at_once(void)
{
    /* call 3 unparked: its slot is free for a call asking for it by name, at once */
    int slot = park(3, 0).parked_slot;
    h_ask_t a = call_ask(3, "{\"type\":\"UnparkCall\",\"agent_id\":\"" OWNER "\"}");
    CHECK_EQ_INT(a.status, 0);
    const char *at = json_string_value(json_object_get(json_object_get(a.state, "last_unpark"), "at"));
    char unparked_at[48];
    snprintf(unparked_at, sizeof unparked_at, "%s", at ? at : "");
    json_decref(a.state);
    live_call(101);
    park_t p = park(101, slot);
    CHECK_EQ_INT(p.status, 0);
    CHECK_EQ_INT(p.parked_slot, slot);

    /* 3's unparking agent did not answer: back to the lot, not to its old slot (101 has it) */
    park_t back = {.call = 3, .command = "ReturnToLot"};
    snprintf(back.unparked_at, sizeof back.unparked_at, "%s", unparked_at);
    parks(&back, 1);
    CHECK_EQ_INT(back.status, 0);
    CHECK(back.parked_slot != slot && back.parked_slot >= 1);
    char s3[SB_STREAM_NAME_MAX];
    call_stream(3, s3);
    CHECK_EQ_STR(slot_owner(back.parked_slot), s3);
    /* the same report again: nothing */
    parks(&back, 1);
    CHECK_EQ_INT(back.status, 0);

    /* 101 hangs up while parked: its slot is free at once */
    a = call_ask(101, "{\"type\":\"RecordCallStatus\",\"status\":\"completed\"}");
    CHECK_EQ_INT(a.status, 0);
    json_decref(a.state);
    live_call(102);
    p = park(102, slot);
    CHECK_EQ_INT(p.status, 0);
    CHECK_EQ_INT(p.parked_slot, slot);

    /* unparked, then unanswered, with its old slot free: back to that slot */
    a = call_ask(102, "{\"type\":\"UnparkCall\",\"agent_id\":\"" OWNER "\"}");
    CHECK_EQ_INT(a.status, 0);
    at = json_string_value(json_object_get(json_object_get(a.state, "last_unpark"), "at"));
    park_t home = {.call = 102, .command = "ReturnToLot"};
    snprintf(home.unparked_at, sizeof home.unparked_at, "%s", at ? at : "");
    json_decref(a.state);
    parks(&home, 1);
    CHECK_EQ_INT(home.status, 0);
    CHECK_EQ_INT(home.parked_slot, slot);
}

/* A park that died between its claim and its write: the claim (a Claimed event with no CallParked
 * after it) holds the slot until it is steal_after old, then it is taken over. */
static void test_crashed_park(void)
{
    CHECK_EQ_INT(sb_park_set_timing(300000, 600000), 0);
    int slot = 500;
    live_call(200);
    live_call(201);
    char key[SB_PARK_KEY_MAX], cs[SB_CLAIM_STREAM_LEN], cmd[256], holder[SB_STREAM_NAME_MAX];
    sb_park_slot_key(WS, slot, key);
    sb_claim_stream(key, cs);
    call_stream(200, holder);
    snprintf(cmd, sizeof cmd, "{\"type\":\"Claim\",\"key\":\"%s\",\"owner\":\"%s\"}", key, holder);
    sb_ask_opts_t o = {.source = "test", .workspace_id = WS};
    h_ask_t a = h_ask(g, cs, cmd, &o);
    CHECK_EQ_INT(a.status, 0);
    CHECK_EQ_INT(a.nevents, 1);
    json_decref(a.state);

    park_t p = park(201, slot);
    CHECK_EQ_INT(p.status, SB_EREJECTED);
    CHECK_EQ_STR(p.code, "slot_taken");
    sleep_ms(700); /* past steal_after: what is tested is the expiry itself */
    p = park(201, slot);
    CHECK_EQ_INT(p.status, 0);
    CHECK_EQ_INT(p.parked_slot, slot);
    char mine[SB_STREAM_NAME_MAX];
    call_stream(201, mine);
    CHECK_EQ_STR(slot_owner(slot), mine);
    /* the crashed park's call, asking for that slot now: 201 has it */
    p = park(200, slot);
    CHECK_EQ_STR(p.code, "slot_taken");
    CHECK_EQ_INT(sb_park_set_timing(5000000, 10000000), 0);
}

int main(void)
{
    h_conninfo = sbt_db_create("test_park");
    if (h_conninfo == NULL || sbt_db_migrate(h_conninfo) < 0)
        return 1;
    h_db_connect();
    g = h_group_new(LOOPS, NULL);
    sb_ask_opts_t o = {.user_id = OWNER, .source = "test"};
    h_ask_t a = h_ask(
        g, "workspace-" WS,
        "{\"type\":\"CreateWorkspace\",\"name\":\"Lot Ltd\",\"owner_email\":\"owner@example.com\"}", &o);
    CHECK_EQ_INT(a.status, 0);
    ctx = sb_workspace_context(a.state);
    json_decref(a.state);
    SBTEST_RUN(test_concurrent);
    SBTEST_RUN(test_unpark_and_end_free_at_once);
    SBTEST_RUN(test_crashed_park);
    sbtest_group_free(g);
    json_decref(ctx);
    PQfinish(h_db);
    free(h_conninfo);
    return sbtest_summary();
}
