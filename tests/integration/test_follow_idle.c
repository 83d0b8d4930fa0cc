/* A caught-up subscriber reaches the follower's head on an idle log (follow.h), even when its
 * filter matches none of the last events:
 *   - one subscribed before the follower knows the log's end (its catch-up read cannot say how far
 *     it reached), which the follower's start-up batch must bring to the head;
 *   - one subscribed afterwards;
 *   - one whose filter matches nothing at all.
 * Each must also have been given exactly the matching events, once, in order.  Nothing is
 * appended while they wait: only the follower can move them. */
#include "core/clock.h"
#include "core/loop.h"
#include "events/follow.h"
#include "sbtest.h"
#include "testdb.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WAIT_MS 10000

static const char *conninfo;

typedef struct {
    sb_sub_t *sub;
    int64_t seen[64];
    int nseen;
} rec_t;

typedef struct {
    sb_loop_t loop;
    sb_pg_t *pg;
    sb_follower_t *f;
    uv_timer_t timer;
    int64_t head;
    rec_t early, late, none;
    int64_t head_at_early;
    uint64_t deadline;
    int phase;
} ctx_t;

static void on_events(sb_sub_t *s, const sb_event_t *ev, int n, void *data)
{
    rec_t *r = data;
    for (int i = 0; i < n; i++)
        if (r->nseen < 64)
            r->seen[r->nseen++] = ev[i].position;
}

static const char *const types_a[] = {"ItemAdded"};
static const char *const types_z[] = {"NeverHappens"};

static void on_tick(uv_timer_t *t)
{
    ctx_t *c = t->data;
    if (c->phase == 0) {
        /* Right after the follower started: it cannot know the log's end yet (that takes a query). */
        c->head_at_early = sb_follower_head(c->f);
        sb_log_filter_t fa = {.types = types_a, .ntypes = 1};
        c->early.sub = sb_follower_subscribe(c->f, c->pg, 0, &fa, on_events, &c->early);
        c->phase = 1;
        return;
    }
    if (c->phase == 1 && sb_follower_head(c->f) >= 0) {
        sb_log_filter_t fa = {.types = types_a, .ntypes = 1};
        sb_log_filter_t fz = {.types = types_z, .ntypes = 1};
        c->late.sub = sb_follower_subscribe(c->f, c->pg, 0, &fa, on_events, &c->late);
        c->none.sub = sb_follower_subscribe(c->f, c->pg, 0, &fz, on_events, &c->none);
        c->phase = 2;
        return;
    }
    bool done = c->phase == 2 && sb_sub_position(c->early.sub) == c->head &&
                sb_sub_position(c->late.sub) == c->head && sb_sub_position(c->none.sub) == c->head;
    if (done || sb_clock_mono_ns() / 1000000 > c->deadline)
        uv_stop(&c->loop.uv);
}

static void exec_ok(PGconn *db, const char *sql)
{
    PGresult *r = PQexec(db, sql);
    if (!CHECK(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK))
        fprintf(stderr, "%s: %s", sql, PQerrorMessage(db));
    PQclear(r);
}

static void check_seen(const rec_t *r, const int64_t *want, int nwant)
{
    CHECK_EQ_INT(r->nseen, nwant);
    for (int i = 0; i < r->nseen && i < nwant; i++)
        CHECK_EQ_INT(r->seen[i], want[i]);
}

static void test_idle_head(void)
{
    PGconn *db = PQconnectdb(conninfo);
    if (!CHECK(PQstatus(db) == CONNECTION_OK))
        return;
    /* Five matching events, then five others: the log ends with events the filters skip. */
    exec_ok(db,
            "INSERT INTO events (stream, version, type, payload, metadata) "
            "SELECT 'item-' || gen_random_uuid(), 1, CASE WHEN g <= 5 THEN 'ItemAdded' ELSE 'ItemSeen' END, "
            "'\\x80'::bytea, '\\x80'::bytea FROM generate_series(1, 10) g");
    PGresult *r = PQexec(db, "SELECT max(position) FROM events");
    int64_t head = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    r = PQexec(db, "SELECT position FROM events WHERE type = 'ItemAdded' ORDER BY position");
    int64_t want[5];
    int nwant = PQntuples(r);
    CHECK_EQ_INT(nwant, 5);
    for (int i = 0; i < nwant && i < 5; i++)
        want[i] = strtoll(PQgetvalue(r, i, 0), NULL, 10);
    PQclear(r);

    ctx_t c;
    memset(&c, 0, sizeof(c));
    c.head = head;
    c.deadline = sb_clock_mono_ns() / 1000000 + WAIT_MS;
    sb_loop_init_standalone(&c.loop);
    c.pg = sb_pg_open(&c.loop.uv, conninfo, "follow-idle-test");
    c.f = sb_follower_new(conninfo, 1);
    CHECK(c.pg != NULL && c.f != NULL);
    CHECK_EQ_INT(sb_follower_start(c.f, &c.loop), 0);
    uv_timer_init(&c.loop.uv, &c.timer);
    c.timer.data = &c;
    uv_timer_start(&c.timer, on_tick, 0, 10);
    uv_run(&c.loop.uv, UV_RUN_DEFAULT);

    CHECK(c.head_at_early < 0); /* the case the start-up batch is for */
    CHECK_EQ_INT(c.phase, 2);
    if (c.early.sub != NULL)
        CHECK_EQ_INT(sb_sub_position(c.early.sub), head);
    if (c.late.sub != NULL)
        CHECK_EQ_INT(sb_sub_position(c.late.sub), head);
    if (c.none.sub != NULL)
        CHECK_EQ_INT(sb_sub_position(c.none.sub), head);
    check_seen(&c.early, want, nwant);
    check_seen(&c.late, want, nwant);
    CHECK_EQ_INT(c.none.nseen, 0);

    uv_timer_stop(&c.timer);
    uv_close((uv_handle_t *)&c.timer, NULL);
    rec_t *subs[3] = {&c.early, &c.late, &c.none};
    for (int i = 0; i < 3; i++)
        if (subs[i]->sub != NULL)
            sb_sub_close(subs[i]->sub);
    sb_follower_stop(c.f);
    sb_pg_close(c.pg, NULL, NULL);
    sb_loop_close_standalone(&c.loop);
    sb_follower_free(c.f);
    PQfinish(db);
}

int main(void)
{
    char *ci = sbt_db_create("follow_idle");
    if (ci == NULL || sbt_db_migrate(ci) < 0)
        return 1;
    conninfo = ci;
    SBTEST_RUN(test_idle_head);
    sbt_db_drop("follow_idle");
    free(ci);
    return sbtest_summary();
}
