/* Projections end to end: smoke. */
#include "../../bench/workload.h"
#include "test_projections_support.h"

static char *dir;

static void test_smoke(void)
{
    char *ci = sbt_db_create("pj_smoke");
    if (!CHECK(ci != NULL) || !CHECK(sbt_db_migrate(ci) >= 0))
        return;
    char err[512];
    CHECK_EQ_INT(sb_projections_prepare(ci, dir, err, sizeof(err)), 0);
    PGconn *c = pjt_connect(ci);
    wl_t w;
    wl_init(&w, 7, 1767225600000000LL);
    wl_setup(&w, 3);
    CHECK_EQ_INT(wl_generate(&w, c, 20000, 5000), 0);
    uint64_t t0 = sb_clock_mono_ns();
    pjt_runner_t *r = pjt_start(ci, dir, 2, 2);
    CHECK(pjt_wait_caught_up(c, 60));
    fprintf(stderr, "rejected %ld\n", w.rejected);
    fprintf(stderr, "caught up with %ld events in %.2f s\n", w.events, (double)(sb_clock_mono_ns() - t0) / 1e9);
    pjt_stop(r);
    CHECK_EQ_INT(pjt_num(c, "SELECT count(*) FROM contacts.contacts"), w.contacts_created - w.contacts_deleted);
    CHECK_EQ_INT(pjt_num(c, "SELECT count(*) FROM messages.messages WHERE direction = 'inbound'"), w.messages_in);
    PGresult *res = PQexec(c, "SELECT name, position, error FROM projection_state ORDER BY name");
    for (int i = 0; i < PQntuples(res); i++)
        fprintf(stderr, "  %s %s %s\n", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), PQgetvalue(res, i, 2));
    PQclear(res);
    PQfinish(c);
    wl_free(&w);
    free(ci);
}

int main(void)
{
    const char *src = getenv("SWITCHBOARD_SOURCE_DIR");
    if (src == NULL)
        src = SB_SOURCE_DIR;
    dir = malloc(strlen(src) + 32);
    sprintf(dir, "%s/projections", src);
    SBTEST_RUN(test_smoke);
    free(dir);
    return sbtest_summary();
}
