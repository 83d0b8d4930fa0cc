/* Secrets at rest against PostgreSQL: stored sealed (the plain text is nowhere in the table), read
 * back, refused under another master key or when moved to another row or changed, deleted by
 * workspace and kind. */
#include "core/error.h"
#include "core/loop.h"
#include "core/seal.h"
#include "db/secrets.h"
#include "sbtest.h"
#include "testdb.h"

#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

static sb_loop_t loop;
static sb_pg_t *pg;
static PGconn *db;

static const char ws[] = "0190a0b0-0000-7000-8000-000000000001";
static const char ws2[] = "0190a0b0-0000-7000-8000-000000000002";
static const char token[] = "f00dfeedf00dfeedf00dfeedf00dfeed";

typedef struct {
    bool done;
    int status;
    char ref[SB_SECRET_REF_LEN + 1];
    char value[256];
    size_t len;
    int deleted;
} result_t;

static void on_put(int status, const char *ref, void *data)
{
    result_t *r = data;
    r->done = true;
    r->status = status;
    if (ref != NULL)
        snprintf(r->ref, sizeof(r->ref), "%s", ref);
    uv_stop(&loop.uv);
}

static void on_get(int status, const char *value, size_t len, void *data)
{
    result_t *r = data;
    r->done = true;
    r->status = status;
    r->len = len;
    if (value != NULL && len < sizeof(r->value))
        memcpy(r->value, value, len + 1);
    uv_stop(&loop.uv);
}

static void on_del(int status, int deleted, void *data)
{
    result_t *r = data;
    r->done = true;
    r->status = status;
    r->deleted = deleted;
    uv_stop(&loop.uv);
}

static void wait_for(result_t *r)
{
    while (!r->done)
        uv_run(&loop.uv, UV_RUN_DEFAULT);
}

static result_t put(sb_secrets_t *s, const char *w, const char *kind, const char *value)
{
    result_t r = {0};
    if (!CHECK_EQ_INT(sb_secrets_put(s, pg, w, kind, value, strlen(value), on_put, &r), 0))
        return r;
    wait_for(&r);
    return r;
}

static result_t get(sb_secrets_t *s, const char *ref)
{
    result_t r = {0};
    if (!CHECK_EQ_INT(sb_secrets_get(s, pg, ref, on_get, &r), 0))
        return r;
    wait_for(&r);
    return r;
}

static int exec_ok(const char *sql)
{
    PGresult *res = PQexec(db, sql);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;
    if (!ok)
        fprintf(stderr, "%s: %s\n", sql, PQerrorMessage(db));
    PQclear(res);
    return ok;
}

static sb_secrets_t *service(uint8_t fill)
{
    uint8_t key[SB_SEAL_KEY_BYTES];
    memset(key, fill, sizeof(key));
    return sb_secrets_from_key(sb_seal_key_from_bytes(key));
}

static void test_round_trip(void)
{
    sb_secrets_t *s = service(1), *other = service(2);
    result_t r = put(s, ws, "twilio", token);
    if (!CHECK_EQ_INT(r.status, 0))
        goto out;
    CHECK(sb_secret_ref_parse(r.ref, NULL));

    result_t g = get(s, r.ref);
    CHECK_EQ_INT(g.status, 0);
    CHECK_EQ_STR(g.value, token);
    CHECK_EQ_INT(g.len, strlen(token));

    /* the table holds neither the token nor its hex */
    PGresult *res =
        PQexec(db, "SELECT count(*) FROM secrets WHERE position('f00dfeed'::bytea IN sealed) > 0 "
                   "OR encode(sealed, 'hex') LIKE '%66303064%' OR encode(sealed, 'escape') LIKE '%f00d%'");
    CHECK_EQ_STR(PQgetvalue(res, 0, 0), "0");
    PQclear(res);

    /* another master key: refused as such (not as damage) */
    g = get(other, r.ref);
    CHECK_EQ_INT(g.status, SB_EPERM);
    CHECK_EQ_INT(g.len, 0);

    /* a sealed value moved into another row does not open there */
    result_t r2 = put(s, ws, "twilio", "something else");
    char sql[1024];
    snprintf(sql, sizeof(sql),
             "UPDATE secrets SET sealed = (SELECT sealed FROM secrets WHERE ref = '%s') WHERE ref = '%s'",
             r.ref + 7, r2.ref + 7);
    CHECK(exec_ok(sql));
    g = get(s, r2.ref);
    CHECK_EQ_INT(g.status, SB_EPERM);

    /* a changed byte */
    snprintf(sql, sizeof(sql),
             "UPDATE secrets SET sealed = set_byte(sealed, 30, get_byte(sealed, 30) # 1) WHERE ref = '%s'",
             r.ref + 7);
    CHECK(exec_ok(sql));
    CHECK_EQ_INT(get(s, r.ref).status, SB_EPERM);

    /* unknown references, and strings that are not references */
    CHECK_EQ_INT(get(s, "secret:0190a0b0-0000-7000-8000-0000000000ff").status, SB_ENOTFOUND);
    result_t x = {0};
    CHECK_EQ_INT(sb_secrets_get(s, pg, token, on_get, &x), SB_EINVAL);
    CHECK_EQ_INT(sb_secrets_get(s, pg, "secret:nope", on_get, &x), SB_EINVAL);
    CHECK_EQ_INT(sb_secrets_put(s, pg, ws, "Bad Kind", "v", 1, on_put, &x), SB_EINVAL);
    CHECK_EQ_INT(sb_secrets_put(s, pg, "not-a-uuid", "twilio", "v", 1, on_put, &x), SB_EINVAL);
    CHECK_EQ_INT(sb_secrets_put(s, pg, ws, "twilio", "", 0, on_put, &x), SB_EINVAL);
    CHECK(!x.done);
out:
    sb_secrets_free(s);
    sb_secrets_free(other);
}

static void test_delete(void)
{
    sb_secrets_t *s = service(3);
    CHECK(exec_ok("DELETE FROM secrets"));
    result_t a = put(s, ws, "twilio", "one");
    result_t b = put(s, ws, "twilio", "two");
    result_t c = put(s, ws, "resend", "three");
    result_t d = put(s, ws2, "twilio", "four");

    /* replace: every twilio secret of ws but the one kept */
    result_t r = {0};
    CHECK_EQ_INT(sb_secrets_delete(s, pg, ws, "twilio", b.ref, on_del, &r), 0);
    wait_for(&r);
    CHECK_EQ_INT(r.status, 0);
    CHECK_EQ_INT(r.deleted, 1);
    CHECK_EQ_INT(get(s, a.ref).status, SB_ENOTFOUND);
    CHECK_EQ_STR(get(s, b.ref).value, "two");
    CHECK_EQ_STR(get(s, c.ref).value, "three");

    /* clear: every secret of ws, any kind; the other workspace keeps its own */
    r = (result_t){0};
    CHECK_EQ_INT(sb_secrets_delete(s, pg, ws, NULL, NULL, on_del, &r), 0);
    wait_for(&r);
    CHECK_EQ_INT(r.deleted, 2);
    CHECK_EQ_INT(get(s, b.ref).status, SB_ENOTFOUND);
    CHECK_EQ_STR(get(s, d.ref).value, "four");
    sb_secrets_free(s);
}

int main(void)
{
    char *ci = sbt_db_create("secrets");
    if (ci == NULL || sbt_db_migrate(ci) < 0)
        return 1;
    db = PQconnectdb(ci);
    sb_loop_init_standalone(&loop);
    pg = sb_pg_open(&loop.uv, ci, "test");
    SBTEST_RUN(test_round_trip);
    SBTEST_RUN(test_delete);
    sb_pg_close(pg, NULL, NULL);
    sb_loop_close_standalone(&loop);
    PQfinish(db);
    sbt_db_drop("secrets");
    free(ci);
    return sbtest_summary();
}
