#include "testdb.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/cluster.h"
#include "db/migrate.h"

static const char *data_dir(void)
{
    const char *dir = getenv("SWITCHBOARD_TEST_DATA_DIR");
    if (dir == NULL || *dir == '\0') {
        fprintf(stderr, "testdb: SWITCHBOARD_TEST_DATA_DIR is not set (run the test through ctest)\n");
        return NULL;
    }
    return dir;
}

static bool valid_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 63)
        return false;
    for (const char *s = name; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return false;
    return true;
}

static void quiet(void *arg, const char *message)
{
    (void)arg, (void)message; /* "database ... does not exist, skipping" */
}

/* Runs one statement on the cluster's maintenance database. */
static int admin_exec(const char *fmt, const char *name)
{
    const char *dir = data_dir();
    if (dir == NULL)
        return -1;
    if (!valid_name(name)) {
        fprintf(stderr, "testdb: invalid database name '%s'\n", name);
        return -1;
    }
    char *ci = sb_cluster_conninfo_db(dir, "postgres");
    if (ci == NULL)
        return -1;
    int rc = -1;
    PGconn *conn = PQconnectdb(ci);
    if (PQstatus(conn) != CONNECTION_OK) {
        fprintf(stderr, "testdb: cannot connect to the test cluster (is the pg fixture running?): %s",
                PQerrorMessage(conn));
        goto out;
    }
    PQsetNoticeProcessor(conn, quiet, NULL);
    char *ident = PQescapeIdentifier(conn, name, strlen(name));
    if (ident == NULL)
        goto out;
    char sql[256];
    snprintf(sql, sizeof(sql), fmt, ident);
    PQfreemem(ident);
    PGresult *res = PQexec(conn, sql);
    if (PQresultStatus(res) == PGRES_COMMAND_OK)
        rc = 0;
    else
        fprintf(stderr, "testdb: %s: %s", sql, PQerrorMessage(conn));
    PQclear(res);
out:
    PQfinish(conn);
    free(ci);
    return rc;
}

char *sbt_db_conninfo(const char *name)
{
    const char *dir = data_dir();
    return dir != NULL ? sb_cluster_conninfo_db(dir, name) : NULL;
}

int sbt_db_drop(const char *name)
{
    /* FORCE: a test that failed half-way may have left connections behind. */
    return admin_exec("DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
}

char *sbt_db_create(const char *name)
{
    if (sbt_db_drop(name) != 0 || admin_exec("CREATE DATABASE %s", name) != 0)
        return NULL;
    return sbt_db_conninfo(name);
}

int sbt_db_migrate(const char *conninfo)
{
    char err[1024];
    int n = sb_migrate(conninfo, NULL, err, sizeof(err));
    if (n < 0) {
        fprintf(stderr, "testdb: migrate: %s\n", err);
        return -1;
    }
    return n;
}
