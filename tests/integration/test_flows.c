/* The cross-actor flows (src/actors/flows.h) against the real PostgreSQL: contacts with phone
 * claims (create, find-or-create, update, delete, validation), crashed and stale claims taken over,
 * users with e-mail claims; and concurrency: 50 flows at once from every loop, and two processes on
 * one database, each time exactly one contact or user per number or address. */
#include "test_flows_harness.h"

#include "core/clock.h"

#include <sys/wait.h>

#define LOOPS 4
#define OWNER "00000000-0000-4000-8000-0000000000a1"
#define STRANGER "00000000-0000-4000-8000-0000000000a9"
#define WS "00000000-0000-4000-8000-0000000000b1"
#define CRED "sealed:v1:AAAA"
#define SHARED "00000000-0000-4000-8000-0000000000e5"

static sb_loops_t *g;

static void claim_stream_of(const char *key, char out[SB_CLAIM_STREAM_LEN])
{
    sb_claim_stream(key, out);
}

/* The owner of the phone claim for e164 in WS, as the log says ("" when free). */
static const char *phone_owner(const char *e164)
{
    static char owner[SB_STREAM_NAME_MAX];
    char key[128], cs[SB_CLAIM_STREAM_LEN];
    snprintf(key, sizeof(key), "phone:%s:%s", WS, e164);
    claim_stream_of(key, cs);
    json_t *st = h_fold_log(cs);
    const char *o = json_string_value(json_object_get(st, "owner"));
    snprintf(owner, sizeof(owner), "%s", o ? o : "");
    json_decref(st);
    return owner;
}

/* ContactCreated events in WS whose phones include e164. */
static long long contacts_with(const char *e164)
{
    json_t *all = json_array();
    PGresult *res = PQexecParams(
        h_db, "SELECT stream FROM events WHERE type = 'ContactCreated' AND workspace_id = $1::uuid", 1, NULL,
        (const char *[]){WS}, NULL, NULL, 0);
    for (int i = 0; i < PQntuples(res); i++)
        json_array_append_new(all, json_string(PQgetvalue(res, i, 0)));
    PQclear(res);
    long long n = 0;
    size_t i;
    json_t *s;
    json_array_foreach(all, i, s)
    {
        json_t *evs = h_log_events(json_string_value(s));
        json_t *phones = json_object_get(json_object_get(json_array_get(evs, 0), "data"), "phones");
        size_t k;
        json_t *p;
        json_array_foreach(phones, k, p) if (strcmp(json_string_value(p), e164) == 0) n++;
        json_decref(evs);
    }
    json_decref(all);
    return n;
}

static h_flow_t create(int op, const char *fields, const char *user)
{
    h_flow_req_t q = {
        .g = g, .op = op, .ws = WS, .fields = fields, .opts = {.user_id = user, .source = "test"}};
    return h_flow(q);
}

static void setup_workspace(void)
{
    sb_ask_opts_t o = {.user_id = OWNER, .source = "test"};
    h_ask_t a = h_ask(g, "workspace-" WS,
                      "{\"type\":\"CreateWorkspace\",\"name\":\"Flows Ltd\",\"default_country\":\"GB\","
                      "\"owner_email\":\"owner@example.com\"}",
                      &o);
    CHECK_EQ_INT(a.status, 0);
    json_decref(a.state);
    a = h_ask(g, "workspace-" WS, "{\"type\":\"AddPipelineStage\",\"name\":\"Lead\"}", &o);
    CHECK_EQ_INT(a.status, 0);
    json_decref(a.state);
}

/* ---- contacts, one at a time ------------------------------------------------------------------- */

static void test_create_and_taken(void)
{
    /* national numbers read in the workspace's country (GB), claimed in E.164 */
    h_flow_t a =
        create(H_CREATE, "{\"name\":\"Ann\",\"phones\":[\"07700 900123\",\"+44 7700 900124\"]}", OWNER);
    CHECK_EQ_INT(a.status, 0);
    CHECK(a.created);
    CHECK_EQ_INT(a.version, 1);
    CHECK_EQ_STR(json_string_value(json_array_get(json_object_get(a.state, "phones"), 0)), "+447700900123");
    CHECK_EQ_STR(phone_owner("+447700900123"), a.stream);
    CHECK_EQ_STR(phone_owner("+447700900124"), a.stream);

    /* the same number, written another way: 409 naming Ann */
    h_flow_t b = create(H_CREATE, "{\"name\":\"Bob\",\"phone\":\"+447700900123\"}", OWNER);
    CHECK_EQ_INT(b.status, SB_EREJECTED);
    CHECK_EQ_STR(b.code, "phone_taken");
    CHECK_EQ_STR(b.field, "phone");
    CHECK_EQ_STR(b.holder, a.stream);
    CHECK(strstr(b.message, strchr(a.stream, '-') + 1) != NULL);
    CHECK_EQ_INT(contacts_with("+447700900123"), 1);

    /* several numbers, one of them Ann's: nothing is claimed for the others (looked at first) */
    h_flow_t c =
        create(H_CREATE, "{\"name\":\"Cy\",\"phones\":[\"+447700900125\",\"+447700900124\"]}", OWNER);
    CHECK_EQ_STR(c.code, "phone_taken");
    CHECK_EQ_STR(c.field, "phones");
    CHECK_EQ_STR(phone_owner("+447700900125"), "");

    /* find-or-create: Ann */
    h_flow_t d = create(H_FIND, "{\"phone\":\"+447700900124\"}", NULL);
    CHECK_EQ_INT(d.status, 0);
    CHECK(!d.created);
    CHECK_EQ_STR(d.stream, a.stream);
    CHECK_EQ_STR(json_string_value(json_object_get(d.state, "name")), "Ann");

    /* an id the caller chose that exists already: contact_exists, and the number is let go */
    h_flow_req_t dup = {.g = g,
                        .op = H_CREATE,
                        .ws = WS,
                        .fields = "{\"name\":\"Dup\",\"phone\":\"+447700900126\"}",
                        .opts = {.user_id = OWNER, .id = strchr(a.stream, '-') + 1}};
    h_flow_t x = h_flow(dup);
    CHECK_EQ_STR(x.code, "contact_exists");
    CHECK_EQ_STR(phone_owner("+447700900126"), "");
    h_flow_free(&x);

    /* a contact without phones needs no claim */
    h_flow_t e = create(H_CREATE, "{\"name\":\"Dee\",\"email\":\"dee@example.com\"}", OWNER);
    CHECK_EQ_INT(e.status, 0);
    CHECK(e.created);
    h_flow_free(&a);
    h_flow_free(&b);
    h_flow_free(&c);
    h_flow_free(&d);
    h_flow_free(&e);
}

static void test_validation(void)
{
    h_flow_t r = create(H_CREATE, "{\"name\":\"X\",\"phone\":\"not a number\"}", OWNER);
    CHECK_EQ_STR(r.code, "invalid_phone");
    h_flow_free(&r);
    /* refused before claiming: the valid number stays free */
    r = create(H_CREATE, "{\"name\":\"X\",\"phone\":\"+447700900199\",\"stage\":\"Nope\"}", OWNER);
    CHECK_EQ_STR(r.code, "unknown_stage");
    CHECK_EQ_STR(phone_owner("+447700900199"), "");
    h_flow_free(&r);
    r = create(H_CREATE, "{\"name\":\"X\",\"phone\":\"+447700900199\"}", STRANGER);
    CHECK_EQ_STR(r.code, "not_member");
    h_flow_free(&r);
    h_flow_req_t q = {
        .g = g, .op = H_CREATE, .ws = "00000000-0000-4000-8000-0000000000ff", .fields = "{\"name\":\"X\"}"};
    r = h_flow(q);
    CHECK_EQ_INT(r.status, SB_EREJECTED);
    CHECK_EQ_STR(r.code, "workspace_not_found");
    h_flow_free(&r);
    /* refused synchronously: bad ids, not an object; the callback never fires */
    json_t *fields = json_object();
    CHECK_EQ_INT(sb_flow_contact_create(g, "nope", fields, SB_FLOW_CREATE, NULL, h_on_flow, NULL), SB_EINVAL);
    CHECK_EQ_INT(sb_flow_contact_create(g, WS, fields, SB_FLOW_CREATE, NULL, h_on_flow, NULL),
                 SB_EINVAL); /* no loop */
    json_decref(fields);
}

static void test_update_and_delete(void)
{
    h_flow_t a =
        create(H_CREATE, "{\"name\":\"Eve\",\"phones\":[\"+447700900201\",\"+447700900202\"]}", OWNER);
    CHECK_EQ_INT(a.status, 0);
    const char *id = strchr(a.stream, '-') + 1;
    h_flow_t other = create(H_CREATE, "{\"name\":\"Fay\",\"phone\":\"+447700900209\"}", OWNER);
    CHECK_EQ_INT(other.status, 0);

    /* replace 201 by 203: 203 claimed, 201 released, 202 kept */
    h_flow_req_t q = {.g = g,
                      .op = H_UPDATE,
                      .ws = WS,
                      .id = id,
                      .fields = "{\"phones\":[\"+447700900202\",\"07700 900203\"],\"name\":\"Eve 2\"}",
                      .opts = {.user_id = OWNER}};
    h_flow_t u = h_flow(q);
    CHECK_EQ_INT(u.status, 0);
    CHECK_EQ_INT(u.version, 2);
    CHECK_EQ_STR(json_string_value(json_object_get(u.state, "name")), "Eve 2");
    CHECK_EQ_STR(phone_owner("+447700900203"), a.stream);
    CHECK_EQ_STR(phone_owner("+447700900202"), a.stream);
    CHECK_EQ_STR(phone_owner("+447700900201"), "");
    h_flow_free(&u);

    /* a number Fay has: 409, nothing changes, nothing is left claimed */
    q.fields = "{\"phones\":[\"+447700900202\",\"+447700900209\",\"+447700900204\"]}";
    u = h_flow(q);
    CHECK_EQ_STR(u.code, "phone_taken");
    CHECK_EQ_STR(u.holder, other.stream);
    CHECK_EQ_STR(phone_owner("+447700900204"), "");
    int64_t v;
    json_t *st = h_state(g, a.stream, &v);
    CHECK_EQ_INT(v, 2);
    json_decref(st);
    h_flow_free(&u);

    /* If-Match */
    q.fields = "{\"name\":\"Eve 3\"}";
    q.opts.check_version = true;
    q.opts.expected_version = 1;
    u = h_flow(q);
    CHECK_EQ_INT(u.status, SB_ECONFLICT);
    CHECK(u.precondition_failed);
    CHECK_EQ_INT(u.version, 2);
    h_flow_free(&u);
    q.opts.expected_version = 2;
    u = h_flow(q);
    CHECK_EQ_INT(u.status, 0);
    h_flow_free(&u);
    /* a list: any listed version matches (now 3) */
    q.fields = "{\"name\":\"Eve 4\"}";
    q.opts.expected_version = 1;
    q.opts.n_more_versions = 2;
    q.opts.more_versions[0] = 2;
    q.opts.more_versions[1] = 9;
    u = h_flow(q);
    CHECK_EQ_INT(u.status, SB_ECONFLICT);
    CHECK(u.precondition_failed);
    h_flow_free(&u);
    q.opts.more_versions[1] = 3;
    u = h_flow(q);
    CHECK_EQ_INT(u.status, 0);
    CHECK_EQ_INT(u.version, 4);
    h_flow_free(&u);
    q.opts.n_more_versions = 0;

    /* another workspace's contact: 404 */
    q.ws = "00000000-0000-4000-8000-0000000000ff";
    q.opts.check_version = false;
    u = h_flow(q);
    CHECK_EQ_STR(u.code, "contact_not_found");
    h_flow_free(&u);

    /* 201, now free, can be someone else's */
    h_flow_t b = create(H_CREATE, "{\"name\":\"Gus\",\"phone\":\"+447700900201\"}", OWNER);
    CHECK_EQ_INT(b.status, 0);
    h_flow_free(&b);

    /* delete: the numbers are released and can be taken again */
    h_flow_req_t d = {.g = g, .op = H_DELETE, .ws = WS, .id = id, .opts = {.user_id = OWNER}};
    u = h_flow(d);
    CHECK_EQ_INT(u.status, 0);
    CHECK(json_is_true(json_object_get(u.state, "deleted")));
    CHECK_EQ_STR(phone_owner("+447700900202"), "");
    CHECK_EQ_STR(phone_owner("+447700900203"), "");
    h_flow_free(&u);
    u = h_flow(d);
    CHECK_EQ_STR(u.code, "contact_deleted");
    h_flow_free(&u);
    b = create(H_FIND, "{\"phone\":\"+447700900203\"}", NULL);
    CHECK_EQ_INT(b.status, 0);
    CHECK(b.created);
    CHECK(strcmp(b.stream, a.stream) != 0);
    h_flow_free(&b);
    h_flow_free(&a);
    h_flow_free(&other);
}

/* ---- crashed and stale claims -------------------------------------------------------------- */

/* Claims key for owner directly, as a flow that crashed right after its claim would have. */
static void claim_only(const char *e164, const char *owner)
{
    char key[128], cs[SB_CLAIM_STREAM_LEN], cmd[256];
    snprintf(key, sizeof(key), "phone:%s:%s", WS, e164);
    claim_stream_of(key, cs);
    snprintf(cmd, sizeof(cmd), "{\"type\":\"Claim\",\"key\":\"%s\",\"owner\":\"%s\"}", key, owner);
    h_ask_t a = h_ask(g, cs, cmd, NULL);
    CHECK_EQ_INT(a.status, 0);
    json_decref(a.state);
}

/* The claim's age reaches ms (the wall clock, as the flows measure it). */
static void age_until(int64_t claimed_us, int64_t ms)
{
    while (sb_clock_now_us() - claimed_us < ms * 1000)
        usleep(10000);
}

static void test_orphans(void)
{
    /* A flow crashed between its claim and its contact: a fresh claim is adopted, the contact
     * created under the crashed flow's id. */
    const char *x = "contact-00000000-0000-4000-8000-0000000000c1";
    claim_only("+447700900301", x);
    h_flow_t r = create(H_FIND, "{\"phone\":\"+447700900301\"}", NULL);
    CHECK_EQ_INT(r.status, 0);
    CHECK(r.created);
    CHECK_EQ_STR(r.stream, x);
    h_flow_free(&r);
    r = create(H_CREATE, "{\"name\":\"Late\",\"phone\":\"+447700900301\"}", OWNER);
    CHECK_EQ_STR(r.code, "phone_taken");
    CHECK_EQ_STR(r.holder, x);
    h_flow_free(&r);

    /* Short timing for the rest: adopt under 1 s, take over from 2 s. */
    CHECK_EQ_INT(sb_flow_set_claim_timing(1000000, 2000000), 0);

    /* an old orphan is taken over: the new contact gets its own id */
    const char *y = "contact-00000000-0000-4000-8000-0000000000c2";
    int64_t t0 = sb_clock_now_us();
    claim_only("+447700900302", y);
    age_until(t0, 2100);
    r = create(H_CREATE, "{\"name\":\"New\",\"phone\":\"+447700900302\"}", OWNER);
    CHECK_EQ_INT(r.status, 0);
    CHECK(strcmp(r.stream, y) != 0);
    CHECK_EQ_STR(phone_owner("+447700900302"), r.stream);
    h_flow_free(&r);

    /* between the two: the flow waits until the claim may be taken over */
    const char *z = "contact-00000000-0000-4000-8000-0000000000c3";
    t0 = sb_clock_now_us();
    claim_only("+447700900303", z);
    age_until(t0, 1100);
    r = create(H_FIND, "{\"phone\":\"+447700900303\"}", NULL);
    CHECK_EQ_INT(r.status, 0);
    CHECK(r.created);
    CHECK(strcmp(r.stream, z) != 0);
    CHECK(sb_clock_now_us() - t0 >= 2000000);
    h_flow_free(&r);

    /* an update flow never adopts: a fresh orphan is "taken" (it is being created) */
    h_flow_t k = create(H_CREATE, "{\"name\":\"Kim\",\"phone\":\"+447700900310\"}", OWNER);
    CHECK_EQ_INT(k.status, 0);
    claim_only("+447700900304", "contact-00000000-0000-4000-8000-0000000000c4");
    h_flow_req_t q = {.g = g,
                      .op = H_UPDATE,
                      .ws = WS,
                      .id = strchr(k.stream, '-') + 1,
                      .fields = "{\"phones\":[\"+447700900310\",\"+447700900304\"]}"};
    r = h_flow(q);
    CHECK_EQ_STR(r.code, "phone_taken");
    h_flow_free(&r);

    /* A deleted contact whose claim was never released (a crash after DeleteContact): free. */
    sb_ask_opts_t o = {.user_id = OWNER};
    json_t *ctx = NULL;
    {
        json_t *ws = h_state(g, "workspace-" WS, NULL);
        ctx = sb_workspace_context(ws);
        json_decref(ws);
    }
    o.context = ctx;
    h_ask_t a = h_ask(g, k.stream, "{\"type\":\"DeleteContact\"}", &o);
    CHECK_EQ_INT(a.status, 0);
    json_decref(a.state);
    CHECK_EQ_STR(phone_owner("+447700900310"), k.stream);
    r = create(H_CREATE, "{\"name\":\"After Kim\",\"phone\":\"+447700900310\"}", OWNER);
    CHECK_EQ_INT(r.status, 0);
    CHECK_EQ_STR(phone_owner("+447700900310"), r.stream);
    h_flow_free(&r);
    h_flow_free(&k);

    /* A live contact that dropped a number without releasing it (a crash after its update):
     * taken while young, taken over once old. */
    t0 = sb_clock_now_us();
    h_flow_t l =
        create(H_CREATE, "{\"name\":\"Lou\",\"phones\":[\"+447700900320\",\"+447700900321\"]}", OWNER);
    CHECK_EQ_INT(l.status, 0);
    a = h_ask(g, l.stream, "{\"type\":\"UpdateContact\",\"phones\":[\"+447700900321\"]}", &o);
    CHECK_EQ_INT(a.status, 0);
    json_decref(a.state);
    if (sb_clock_now_us() - t0 < 900000) {
        r = create(H_CREATE, "{\"name\":\"Mo\",\"phone\":\"+447700900320\"}", OWNER);
        CHECK_EQ_STR(r.code, "phone_taken");
        h_flow_free(&r);
    }
    age_until(t0, 2100);
    r = create(H_CREATE, "{\"name\":\"Mo\",\"phone\":\"+447700900320\"}", OWNER);
    CHECK_EQ_INT(r.status, 0);
    CHECK_EQ_STR(phone_owner("+447700900320"), r.stream);
    h_flow_free(&r);
    h_flow_free(&l);
    json_decref(ctx);
    CHECK_EQ_INT(sb_flow_set_claim_timing(5000000, 10000000), 0);
}

/* ---- concurrency in one process ------------------------------------------------------------ */

enum { PER_LOOP = 13 }; /* 52 flows from 4 loops */

static void test_concurrent_contacts(void)
{
    h_flow_t out[LOOPS * PER_LOOP];
    memset(out, 0, sizeof(out));
    h_flow_req_t q = {.g = g,
                      .op = H_FIND,
                      .ws = WS,
                      .fields = "{\"phone\":\"+447700900401\"}",
                      .out = out,
                      .count = PER_LOOP,
                      .opts = {.source = "webhook"}};
    h_flows(&q, LOOPS);
    int ok = 0, created = 0;
    for (int i = 0; i < LOOPS * PER_LOOP; i++) {
        ok += out[i].status == 0;
        created += out[i].created;
        if (out[i].status != 0)
            fprintf(stderr, "find-or-create: %s %s\n", sb_errname(out[i].status), out[i].code);
        CHECK_EQ_STR(out[i].stream, out[0].stream);
        h_flow_free(&out[i]);
    }
    CHECK_EQ_INT(ok, LOOPS * PER_LOOP);
    CHECK_EQ_INT(created, 1);
    CHECK_EQ_INT(contacts_with("+447700900401"), 1);
    CHECK_EQ_STR(phone_owner("+447700900401"), out[0].stream);

    memset(out, 0, sizeof(out));
    q.op = H_CREATE;
    q.fields = "{\"name\":\"Same\",\"phone\":\"+447700900402\"}";
    q.opts.user_id = OWNER;
    h_flows(&q, LOOPS);
    int taken = 0;
    const char *winner = NULL;
    ok = 0;
    for (int i = 0; i < LOOPS * PER_LOOP; i++) {
        if (out[i].status == 0) {
            ok++;
            winner = out[i].stream;
        } else if (out[i].status == SB_EREJECTED && strcmp(out[i].code, "phone_taken") == 0) {
            taken++;
        } else {
            fprintf(stderr, "create: %s %s\n", sb_errname(out[i].status), out[i].code);
        }
    }
    CHECK_EQ_INT(ok, 1);
    CHECK_EQ_INT(taken, LOOPS * PER_LOOP - 1);
    for (int i = 0; winner && i < LOOPS * PER_LOOP; i++) {
        if (out[i].status != 0)
            CHECK_EQ_STR(out[i].holder, winner);
        h_flow_free(&out[i]);
    }
    CHECK_EQ_INT(contacts_with("+447700900402"), 1);
}

/* ---- users --------------------------------------------------------------------------------- */

static h_flow_t user_flow(int op, const char *email, const char *id)
{
    h_flow_req_t q = {.g = g, .op = op, .fields = email, .id = id, .name = "Uma", .credential_ref = CRED};
    return h_flow(q);
}

/* Registered users whose address (folded from the log) is email. */
static long long users_with(const char *email)
{
    PGresult *res = PQexec(h_db, "SELECT stream FROM events WHERE type = 'UserRegistered'");
    long long n = 0;
    for (int i = 0; i < PQntuples(res); i++) {
        json_t *st = h_fold_log(PQgetvalue(res, i, 0));
        const char *have = json_string_value(json_object_get(st, "email"));
        if (have != NULL && strcmp(have, email) == 0)
            n++;
        json_decref(st);
    }
    PQclear(res);
    return n;
}

static void test_users(void)
{
    h_flow_t a = user_flow(H_REGISTER, "Uma@Example.com", NULL);
    CHECK_EQ_INT(a.status, 0);
    CHECK(a.created);
    CHECK_EQ_STR(json_string_value(json_object_get(a.state, "email")), "uma@example.com");
    h_flow_t b = user_flow(H_REGISTER, "uma@example.COM", NULL);
    CHECK_EQ_STR(b.code, "email_taken");
    CHECK_EQ_STR(b.holder, a.stream);
    h_flow_free(&b);
    b = user_flow(H_REGISTER, "not-an-address", NULL);
    CHECK_EQ_STR(b.code, "invalid_email");
    h_flow_free(&b);
    h_flow_req_t q = {.g = g,
                      .op = H_REGISTER,
                      .fields = "x@example.com",
                      .name = "X",
                      .credential_ref = "$argon2id$v=19$m=1"};
    b = h_flow(q);
    CHECK_EQ_STR(b.code, "credential_not_sealed");
    h_flow_free(&b);

    b = user_flow(H_FIND_USER, "UMA@example.com", NULL);
    CHECK_EQ_INT(b.status, 0);
    CHECK_EQ_STR(b.stream, a.stream);
    h_flow_free(&b);
    b = user_flow(H_FIND_USER, "nobody@example.com", NULL);
    CHECK_EQ_STR(b.code, "user_not_found");
    h_flow_free(&b);

    /* change of address: the new one is claimed, the old one freed */
    const char *id = strchr(a.stream, '-') + 1;
    h_flow_req_t c = {
        .g = g, .op = H_CHANGE_EMAIL, .id = id, .fields = "uma2@example.com", .opts = {.user_id = id}};
    b = h_flow(c);
    CHECK_EQ_INT(b.status, 0);
    CHECK_EQ_STR(json_string_value(json_object_get(b.state, "email")), "uma2@example.com");
    h_flow_free(&b);
    b = user_flow(H_FIND_USER, "uma2@example.com", NULL);
    CHECK_EQ_STR(b.stream, a.stream);
    h_flow_free(&b);
    b = user_flow(H_FIND_USER, "uma@example.com", NULL);
    CHECK_EQ_STR(b.code, "user_not_found");
    h_flow_free(&b);
    b = user_flow(H_REGISTER, "uma@example.com", NULL);
    CHECK_EQ_INT(b.status, 0);
    /* and the new owner's address cannot be taken by the first user */
    c.fields = "uma@example.com";
    h_flow_t d = h_flow(c);
    CHECK_EQ_STR(d.code, "email_taken");
    CHECK_EQ_STR(d.holder, b.stream);
    h_flow_free(&d);
    /* someone else may not change it */
    c.opts.user_id = STRANGER;
    c.fields = "uma3@example.com";
    d = h_flow(c);
    CHECK_EQ_STR(d.code, "forbidden");
    h_flow_free(&d);
    h_flow_free(&b);
    h_flow_free(&a);

    /* 52 registrations of one address at once: one user */
    h_flow_t out[LOOPS * PER_LOOP];
    memset(out, 0, sizeof(out));
    h_flow_req_t many = {.g = g,
                         .op = H_REGISTER,
                         .fields = "rush@example.com",
                         .name = "Rush",
                         .credential_ref = CRED,
                         .out = out,
                         .count = PER_LOOP};
    h_flows(&many, LOOPS);
    int ok = 0, taken = 0;
    for (int i = 0; i < LOOPS * PER_LOOP; i++) {
        ok += out[i].status == 0;
        taken += out[i].status == SB_EREJECTED && strcmp(out[i].code, "email_taken") == 0;
        h_flow_free(&out[i]);
    }
    CHECK_EQ_INT(ok, 1);
    CHECK_EQ_INT(taken, LOOPS * PER_LOOP - 1);
    CHECK_EQ_INT(users_with("rush@example.com"), 1);
}

/* ---- two processes ----------------------------------------------------------------------------- */

/* What one process saw: per number, the contact every find-or-create answered ("" if they
 * disagreed or failed), and how many creates and registrations succeeded. */
typedef struct {
    char found[3][SB_STREAM_NAME_MAX];
    int created_found, create_ok, create_taken, register_ok, register_taken, other;
} contender_t;

static const char *const race_phones[3] = {"+447700900501", "+447700900502", "+447700900503"};

static void contend(contender_t *c)
{
    enum { N = 8 };
    h_flow_t out[LOOPS * N];
    memset(c, 0, sizeof(*c));
    for (int p = 0; p < 3; p++) {
        char fields[64];
        snprintf(fields, sizeof(fields), "{\"phone\":\"%s\"}", race_phones[p]);
        memset(out, 0, sizeof(out));
        h_flow_req_t q = {.g = g, .op = H_FIND, .ws = WS, .fields = fields, .out = out, .count = N};
        h_flows(&q, LOOPS);
        snprintf(c->found[p], sizeof(c->found[p]), "%s", out[0].stream);
        for (int i = 0; i < LOOPS * N; i++) {
            if (out[i].status != 0 || strcmp(out[i].stream, out[0].stream) != 0) {
                fprintf(stderr, "pid %d find-or-create: %s %s %s\n", getpid(), sb_errname(out[i].status),
                        out[i].code, out[i].stream);
                c->found[p][0] = '\0';
                c->other++;
            }
            c->created_found += out[i].created;
            h_flow_free(&out[i]);
        }
    }
    memset(out, 0, sizeof(out));
    h_flow_req_t q = {.g = g,
                      .op = H_CREATE,
                      .ws = WS,
                      .fields = "{\"name\":\"Race\",\"phone\":\"+447700900510\"}",
                      .out = out,
                      .count = N,
                      .opts = {.user_id = OWNER}};
    h_flows(&q, LOOPS);
    for (int i = 0; i < LOOPS * N; i++) {
        if (out[i].status == 0)
            c->create_ok++;
        else if (strcmp(out[i].code, "phone_taken") == 0)
            c->create_taken++;
        else
            c->other++;
        h_flow_free(&out[i]);
    }
    memset(out, 0, sizeof(out));
    h_flow_req_t r = {.g = g,
                      .op = H_REGISTER,
                      .fields = "race@example.com",
                      .name = "Race",
                      .credential_ref = CRED,
                      .out = out,
                      .count = N};
    h_flows(&r, LOOPS);
    for (int i = 0; i < LOOPS * N; i++) {
        if (out[i].status == 0)
            c->register_ok++;
        else if (strcmp(out[i].code, "email_taken") == 0)
            c->register_taken++;
        else
            c->other++;
        h_flow_free(&out[i]);
    }
}

/* Forks first (this process has no threads yet); both sides start their loops, meet, then race. */
static void test_two_processes(void)
{
    int ready[2], go[2], res[2];
    if (pipe(ready) != 0 || pipe(go) != 0 || pipe(res) != 0)
        abort();
    fflush(NULL);
    pid_t child = fork();
    if (child == 0) {
        char b;
        if (read(go[0], &b, 1) != 1) /* the parent made the workspace */
            _exit(3);
        g = h_group_new(LOOPS, NULL);
        if (write(ready[1], "r", 1) != 1 || read(go[0], &b, 1) != 1)
            _exit(3);
        contender_t c;
        contend(&c);
        int ok = write(res[1], &c, sizeof(c)) == (ssize_t)sizeof(c);
        /* then, on cue, a registration the parent's actors have not seen */
        ok = ok && read(go[0], &b, 1) == 1;
        h_flow_t late = user_flow(H_REGISTER, "late@example.com", NULL);
        ok = ok && late.status == 0;
        h_flow_free(&late);
        /* and a change to a contact the parent holds in memory */
        h_flow_req_t q = {
            .g = g, .op = H_UPDATE, .ws = WS, .id = SHARED, .fields = "{\"name\":\"By the child\"}"};
        late = h_flow(q);
        ok = ok && late.status == 0 && write(ready[1], &late.version, sizeof(late.version)) > 0;
        h_flow_free(&late);
        sbtest_group_free(g);
        free(h_conninfo);
        _exit(ok ? 0 : 4);
    }
    g = h_group_new(LOOPS, NULL);
    setup_workspace();
    char b;
    if (write(go[1], "w", 1) != 1 || read(ready[0], &b, 1) != 1 || write(go[1], "g", 1) != 1)
        abort();
    contender_t mine, theirs;
    contend(&mine);
    CHECK_EQ_INT(read(res[0], &theirs, sizeof(theirs)), (int)sizeof(theirs));
    /* This process looks an address up (nobody has it), the other registers it, this one looks
     * again: found, although its actors hold the old state (the flow reads through). */
    h_flow_t f = user_flow(H_FIND_USER, "late@example.com", NULL);
    CHECK_EQ_STR(f.code, "user_not_found");
    h_flow_free(&f);
    h_flow_req_t sq = {.g = g,
                       .op = H_CREATE,
                       .ws = WS,
                       .fields = "{\"name\":\"Shared\"}",
                       .opts = {.user_id = OWNER, .id = SHARED}};
    f = h_flow(sq);
    CHECK_EQ_INT(f.status, 0);
    h_flow_free(&f);
    int64_t theirs_v = 0;
    if (write(go[1], "l", 1) != 1 || read(ready[0], &theirs_v, sizeof(theirs_v)) != sizeof(theirs_v))
        abort();
    f = user_flow(H_FIND_USER, "late@example.com", NULL);
    CHECK_EQ_INT(f.status, 0);
    h_flow_free(&f);
    /* If-Match with the version the other process made: accepted (not 412 from a stale actor) */
    CHECK_EQ_INT(theirs_v, 2);
    h_flow_req_t uq = {.g = g,
                       .op = H_UPDATE,
                       .ws = WS,
                       .id = SHARED,
                       .fields = "{\"name\":\"By the parent\"}",
                       .opts = {.user_id = OWNER, .check_version = true, .expected_version = theirs_v}};
    f = h_flow(uq);
    CHECK_EQ_INT(f.status, 0);
    CHECK_EQ_INT(f.version, 3);
    h_flow_free(&f);
    int status = 0;
    waitpid(child, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    fprintf(stderr,
            "two processes: created by find-or-create parent=%d child=%d; create ok %d+%d taken %d+%d; "
            "register ok %d+%d taken %d+%d\n",
            mine.created_found, theirs.created_found, mine.create_ok, theirs.create_ok, mine.create_taken,
            theirs.create_taken, mine.register_ok, theirs.register_ok, mine.register_taken,
            theirs.register_taken);
    CHECK_EQ_INT(mine.other + theirs.other, 0);
    for (int p = 0; p < 3; p++) {
        CHECK(mine.found[p][0] != '\0');
        CHECK_EQ_STR(mine.found[p], theirs.found[p]);
        CHECK_EQ_INT(contacts_with(race_phones[p]), 1);
    }
    CHECK_EQ_INT(mine.created_found + theirs.created_found, 3);
    CHECK_EQ_INT(mine.create_ok + theirs.create_ok, 1);
    CHECK_EQ_INT(mine.create_taken + theirs.create_taken, 2 * LOOPS * 8 - 1);
    CHECK_EQ_INT(contacts_with("+447700900510"), 1);
    CHECK_EQ_INT(mine.register_ok + theirs.register_ok, 1);
    CHECK_EQ_INT(users_with("race@example.com"), 1);
    close(ready[0]);
    close(ready[1]);
    close(go[0]);
    close(go[1]);
    close(res[0]);
    close(res[1]);
}

int main(void)
{
    h_conninfo = sbt_db_create("test_flows");
    if (h_conninfo == NULL || sbt_db_migrate(h_conninfo) < 0)
        return 1;
    h_db_connect();
    SBTEST_RUN(test_two_processes); /* first: it forks, and the group it starts serves the rest */
    SBTEST_RUN(test_create_and_taken);
    SBTEST_RUN(test_validation);
    SBTEST_RUN(test_update_and_delete);
    SBTEST_RUN(test_orphans);
    SBTEST_RUN(test_concurrent_contacts);
    SBTEST_RUN(test_users);
    sbtest_group_free(g);
    PQfinish(h_db);
    free(h_conninfo);
    return sbtest_summary();
}
