/* kill -9 under load, then restart on the same database.
 *
 * A child process runs the runtime on several loops and keeps commands flowing to many contacts
 * (notes, tags, stage changes, assignments) and find-or-create flows for a small pool of numbers,
 * writing each acknowledged event's (stream, version, type, mark) to a file as its reply arrives.
 * The parent kills it with SIGKILL mid-run, then starts a runtime of its own on the database:
 *   - every acknowledged event is in the log, at its version, with its type and mark;
 *   - every stream's versions run 1..n without a gap;
 *   - every stream's reactivated state (snapshot, then events) equals the fold of its events;
 *   - no number is listed by two live contacts, and a listed number's claim is its contact's;
 *   - find-or-create for every pool number then ends with one contact per number, taking over
 *     whatever claims the crash left behind;
 *   - the streams carry on at the next version. */
#include "test_flows_harness.h"

#include "core/clock.h"
#include "core/phone.h"
#include "core/uuid.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define LOOPS 4
#define NCONTACTS 40
#define NPOOL 12
#define IN_FLIGHT 24    /* operations outstanding per loop */
#define KILL_AFTER 3000 /* acknowledged events before the kill */
#define OWNER "00000000-0000-4000-8000-0000000000a1"
#define MEMBER "00000000-0000-4000-8000-0000000000a2"
#define WS "00000000-0000-4000-8000-0000000000d1"

static sb_loops_t *g;
static const char *const stages[] = {"Lead", "Won", "Lost"};

static void contact_name(int i, char out[SB_STREAM_NAME_MAX])
{
    snprintf(out, SB_STREAM_NAME_MAX, "contact-00000000-0000-4000-8000-0000000005%02d", i);
}

static void pool_phone(int i, char out[SB_PHONE_MAX])
{
    snprintf(out, SB_PHONE_MAX, "+1415555%04u", (2000u + (unsigned)i) % 10000u);
}

/* ---- the child: load until killed -------------------------------------------------------------- */

typedef struct {
    uint64_t rng;
    json_t *context;
    int fd;
} driver_t;

static driver_t drivers[LOOPS];

typedef struct {
    driver_t *d;
    char mark[64];
} op_t;

static uint64_t rnd(driver_t *d)
{
    d->rng ^= d->rng << 13;
    d->rng ^= d->rng >> 7;
    d->rng ^= d->rng << 17;
    return d->rng;
}

static void ack(driver_t *d, const char *stream, int64_t version, const char *type, const char *mark)
{
    char line[256];
    int n = snprintf(line, sizeof(line), "%s %lld %s %s\n", stream, (long long)version, type, mark);
    /* one write per line, O_APPEND: lines never interleave (a test may block its loop on a file) */
    if (write(d->fd, line, (size_t)n) != n)
        abort();
}

static void next_op(driver_t *d);

static void on_reply(const sb_ask_reply_t *r, void *data)
{
    op_t *op = data;
    for (int i = 0; r->status == 0 && i < r->nevents; i++)
        ack(op->d, r->stream, r->events[i].version, r->events[i].type, op->mark);
    driver_t *d = op->d;
    free(op);
    next_op(d);
}

static void on_flow(const sb_flow_result_t *res, void *data)
{
    op_t *op = data;
    if (res->status == 0 && res->created)
        ack(op->d, res->stream, 1, "ContactCreated", "-");
    driver_t *d = op->d;
    free(op);
    next_op(d);
}

static void next_op(driver_t *d)
{
    op_t *op = calloc(1, sizeof(*op));
    op->d = d;
    int what = (int)(rnd(d) % 20);
    if (what == 0) {
        char phone[SB_PHONE_MAX];
        pool_phone((int)(rnd(d) % NPOOL), phone);
        json_t *fields = json_pack("{s:s}", "phone", phone);
        sb_flow_opts_t fo = {.source = "webhook"};
        int rc = sb_flow_contact_create(g, WS, fields, SB_FLOW_FIND_OR_CREATE, &fo, on_flow, op);
        json_decref(fields);
        if (rc != 0)
            abort();
        return;
    }
    char stream[SB_STREAM_NAME_MAX];
    contact_name((int)(rnd(d) % NCONTACTS), stream);
    json_t *cmd;
    if (what < 8) {
        sb_uuid_t u;
        sb_uuid_v7(&u);
        sb_uuid_format(&u, op->mark);
        cmd = json_pack("{s:s, s:s, s:s}", "type", "AddNote", "note_id", op->mark, "body", "crash test note");
    } else if (what < 13) {
        snprintf(op->mark, sizeof(op->mark), "t%d", (int)(rnd(d) % 30));
        cmd = json_pack("{s:s, s:s}", "type", rnd(d) % 3 ? "TagContact" : "UntagContact", "tag", op->mark);
    } else if (what < 17) {
        int s = (int)(rnd(d) % 4);
        snprintf(op->mark, sizeof(op->mark), "%s", s < 3 ? stages[s] : "null");
        cmd = json_pack("{s:s, s:s?}", "type", "ChangeStage", "stage", s < 3 ? stages[s] : NULL);
    } else {
        int s = (int)(rnd(d) % 3);
        const char *who = s == 0 ? OWNER : s == 1 ? MEMBER : NULL;
        snprintf(op->mark, sizeof(op->mark), "%s", who ? who : "null");
        cmd = json_pack("{s:s, s:s?}", "type", "AssignContact", "assignee_id", who);
    }
    sb_ask_opts_t o = {.user_id = OWNER, .context = d->context, .source = "test", .skip_state = true};
    if (sb_actor_ask(g, stream, cmd, &o, on_reply, op) != 0)
        abort();
}

static void start_driver(void *arg)
{
    driver_t *d = arg;
    for (int i = 0; i < IN_FLIGHT; i++)
        next_op(d);
}

static void setup(void)
{
    sb_ask_opts_t o = {.user_id = OWNER};
    const char *cmds[] = {
        "{\"type\":\"CreateWorkspace\",\"name\":\"Crash Co\",\"owner_email\":\"o@example.com\"}",
        "{\"type\":\"AddMember\",\"user_id\":\"" MEMBER "\",\"role\":\"agent\",\"email\":\"m@example.com\"}",
        "{\"type\":\"AddPipelineStage\",\"name\":\"Lead\"}",
        "{\"type\":\"AddPipelineStage\",\"name\":\"Won\"}",
        "{\"type\":\"AddPipelineStage\",\"name\":\"Lost\"}",
    };
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        h_ask_t a = h_ask(g, "workspace-" WS, cmds[i], &o);
        if (a.status != 0)
            abort();
        json_decref(a.state);
    }
    for (int i = 0; i < NCONTACTS; i++) {
        char fields[128];
        snprintf(fields, sizeof(fields), "{\"name\":\"C%d\",\"phone\":\"+1415555%04d\"}", i, 1000 + i);
        char id[SB_STREAM_NAME_MAX];
        contact_name(i, id);
        h_flow_req_t q = {
            .g = g, .op = H_CREATE, .ws = WS, .fields = fields, .opts = {.user_id = OWNER, .id = id + 8}};
        h_flow_t r = h_flow(q);
        if (r.status != 0)
            abort();
        h_flow_free(&r);
    }
}

static void child_main(const char *ackpath)
{
    sb_runtime_config_t rc = {
        .snapshot_every = 7, .snapshot_on_passivate = 1, .idle_ms = 300, .sweep_ms = 50};
    g = h_group_new(LOOPS, &rc);
    setup();
    json_t *ws = h_state(g, "workspace-" WS, NULL);
    json_t *context = sb_workspace_context(ws);
    json_decref(ws);
    int fd = open(ackpath, O_WRONLY | O_APPEND);
    if (fd < 0)
        abort();
    for (int i = 0; i < LOOPS; i++) {
        drivers[i] =
            (driver_t){.rng = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1) ^ (uint64_t)sb_clock_now_us(),
                       .context = context,
                       .fd = fd};
        sbtest_run_on(g->loops[i], start_driver, &drivers[i]);
    }
    for (;;)
        pause(); /* until SIGKILL */
}

/* ---- the parent ------------------------------------------------------------------------------ */

static long count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    long n = 0;
    int c;
    while (f != NULL && (c = getc(f)) != EOF)
        n += c == '\n';
    if (f)
        fclose(f);
    return n;
}

/* payload field an acknowledged event's mark is checked against */
static const char *mark_field(const char *type)
{
    if (strcmp(type, "NoteAdded") == 0)
        return "note_id";
    if (strcmp(type, "ContactTagged") == 0 || strcmp(type, "ContactUntagged") == 0)
        return "tag";
    if (strcmp(type, "ContactStageChanged") == 0)
        return "to";
    if (strcmp(type, "ContactAssigned") == 0)
        return "assignee_id";
    return NULL;
}

static void check_acks(const char *path, json_t *logs)
{
    FILE *f = fopen(path, "r");
    if (!CHECK(f != NULL))
        return;
    char stream[SB_STREAM_NAME_MAX + 8], type[64], mark[80];
    long long version;
    int n = 0, bad = 0;
    while (fscanf(f, "%76s %lld %63s %79s", stream, &version, type, mark) == 4) {
        n++;
        json_t *evs = json_object_get(logs, stream);
        if (evs == NULL) {
            evs = h_log_events(stream);
            json_object_set_new(logs, stream, evs);
        }
        json_t *e = json_array_get(evs, (size_t)(version - 1));
        const char *field = mark_field(type);
        const json_t *v = e ? json_object_get(json_object_get(e, "data"), field ? field : "") : NULL;
        bool ok = e != NULL && json_integer_value(json_object_get(e, "version")) == version &&
                  strcmp(json_string_value(json_object_get(e, "type")), type) == 0 &&
                  (field == NULL ||
                   (json_is_null(v) ? strcmp(mark, "null") == 0
                                    : json_is_string(v) && strcmp(json_string_value(v), mark) == 0));
        if (!ok && bad++ < 10)
            fprintf(stderr, "acknowledged but not in the log: %s %lld %s %s\n", stream, version, type, mark);
    }
    fclose(f);
    fprintf(stderr, "crash: %d acknowledged events checked\n", n);
    CHECK(n >= KILL_AFTER);
    CHECK_EQ_INT(bad, 0);
}

/* Live contacts (created, not deleted) that list phone, from their folds; *holder gets one. */
static int live_with(json_t *contacts, const char *phone, char holder[SB_STREAM_NAME_MAX])
{
    int n = 0;
    size_t i;
    json_t *s;
    json_array_foreach(contacts, i, s)
    {
        json_t *st = h_fold_log(json_string_value(s));
        bool live =
            json_is_true(json_object_get(st, "created")) && !json_is_true(json_object_get(st, "deleted"));
        size_t k;
        json_t *p;
        json_array_foreach(json_object_get(st, "phones"), k,
                           p) if (live && strcmp(json_string_value(p), phone) == 0)
        {
            n++;
            snprintf(holder, SB_STREAM_NAME_MAX, "%s", json_string_value(s));
        }
        json_decref(st);
    }
    return n;
}

static const char *claim_owner(const char *phone)
{
    static char owner[SB_STREAM_NAME_MAX];
    char key[128], cs[SB_CLAIM_STREAM_LEN];
    snprintf(key, sizeof(key), "phone:%s:%s", WS, phone);
    sb_claim_stream(key, cs);
    json_t *st = h_fold_log(cs);
    const char *o = json_string_value(json_object_get(st, "owner"));
    snprintf(owner, sizeof(owner), "%s", o ? o : "");
    json_decref(st);
    return owner;
}

static json_t *streams_of(const char *category)
{
    const char *params[1] = {category};
    PGresult *res = PQexecParams(h_db, "SELECT DISTINCT stream FROM events WHERE category = $1", 1, NULL,
                                 params, NULL, NULL, 0);
    json_t *out = json_array();
    for (int i = 0; i < PQntuples(res); i++)
        json_array_append_new(out, json_string(PQgetvalue(res, i, 0)));
    PQclear(res);
    return out;
}

static void test_crash(void)
{
    char ackpath[] = "/tmp/sb_crash_acks_XXXXXX";
    int fd = mkstemp(ackpath);
    if (fd < 0)
        abort();
    close(fd);
    fflush(NULL);
    pid_t child = fork();
    if (child == 0)
        child_main(ackpath);

    uint64_t deadline = sb_clock_mono_ns() + 180ull * 1000000000ull;
    long n = 0;
    int status = 0;
    while ((n = count_lines(ackpath)) < KILL_AFTER && sb_clock_mono_ns() < deadline &&
           waitpid(child, &status, WNOHANG) == 0)
        usleep(20000);
    CHECK(kill(child, SIGKILL) == 0);
    waitpid(child, &status, 0);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    fprintf(stderr, "crash: killed the child after %ld acknowledged events\n", n);

    h_db_connect();
    json_t *logs = json_object();
    check_acks(ackpath, logs);
    json_decref(logs);
    unlink(ackpath);

    /* versions without gaps, in every stream */
    CHECK_EQ_INT(h_sql_count("SELECT count(*) FROM (SELECT stream FROM events GROUP BY stream "
                             "HAVING count(*) <> max(version)) gaps",
                             0, NULL),
                 0);

    sb_runtime_config_t rc = {.snapshot_every = 7};
    g = h_group_new(LOOPS, &rc);
    /* every stream's state on reactivation equals the fold of its events */
    PGresult *res = PQexec(h_db, "SELECT DISTINCT stream FROM events");
    int compared = 0;
    for (int i = 0; i < PQntuples(res); i++) {
        const char *s = PQgetvalue(res, i, 0);
        h_ask_t live = h_ask(g, s, NULL, NULL);
        json_t *fold = h_fold_log(s);
        CHECK(live.status == 0 && h_same_json(live.state, fold, s));
        compared++;
        json_decref(live.state);
        json_decref(fold);
    }
    PQclear(res);
    long long snaps = h_sql_count("SELECT count(*) FROM snapshots", 0, NULL);
    fprintf(stderr, "crash: %d streams reactivated and compared (%lld had snapshots)\n", compared, snaps);
    CHECK(snaps > 0);

    /* uniqueness survived the crash */
    json_t *contacts = streams_of("contact");
    char phone[SB_PHONE_MAX], holder[SB_STREAM_NAME_MAX];
    for (int i = 0; i < NPOOL; i++) {
        pool_phone(i, phone);
        int k = live_with(contacts, phone, holder);
        CHECK(k <= 1);
        if (k == 1)
            CHECK_EQ_STR(claim_owner(phone), holder);
    }
    json_decref(contacts);

    /* recovery: one contact per pool number, whatever the crash left (short timing so that
     * claims the child took just before dying can be taken over quickly) */
    CHECK_EQ_INT(sb_flow_set_claim_timing(1000000, 2000000), 0);
    for (int i = 0; i < NPOOL; i++) {
        char fields[64];
        pool_phone(i, phone);
        snprintf(fields, sizeof(fields), "{\"phone\":\"%s\"}", phone);
        h_flow_t out[LOOPS * 2];
        memset(out, 0, sizeof(out));
        h_flow_req_t q = {.g = g, .op = H_FIND, .ws = WS, .fields = fields, .out = out, .count = 2};
        h_flows(&q, LOOPS);
        for (int k = 0; k < LOOPS * 2; k++) {
            CHECK_EQ_INT(out[k].status, 0);
            CHECK_EQ_STR(out[k].stream, out[0].stream);
            h_flow_free(&out[k]);
        }
        contacts = streams_of("contact");
        CHECK_EQ_INT(live_with(contacts, phone, holder), 1);
        CHECK_EQ_STR(holder, out[0].stream);
        CHECK_EQ_STR(claim_owner(phone), holder);
        json_decref(contacts);
    }

    /* the streams carry on */
    char c0[SB_STREAM_NAME_MAX];
    contact_name(0, c0);
    long long max = h_sql_count("SELECT max(version) FROM events WHERE stream = $1", 1, (const char *[]){c0});
    json_t *ws = h_state(g, "workspace-" WS, NULL);
    json_t *context = sb_workspace_context(ws);
    json_decref(ws);
    sb_ask_opts_t o = {.user_id = OWNER, .context = context};
    h_ask_t a = h_ask(g, c0, "{\"type\":\"TagContact\",\"tag\":\"after the crash\"}", &o);
    CHECK_EQ_INT(a.status, 0);
    CHECK_EQ_INT(a.version, max + 1);
    json_decref(a.state);
    json_decref(context);
    sbtest_group_free(g);
}

int main(void)
{
    h_conninfo = sbt_db_create("test_crash");
    if (h_conninfo == NULL || sbt_db_migrate(h_conninfo) < 0)
        return 1;
    SBTEST_RUN(test_crash);
    PQfinish(h_db);
    free(h_conninfo);
    return sbtest_summary();
}
