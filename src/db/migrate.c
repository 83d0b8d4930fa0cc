/* Schema migrations, applied with plain blocking libpq (never on a loop).
 *
 * Each file runs in its own transaction together with its schema_migrations row, so a file is
 * either applied and recorded or not at all.  A session-level advisory lock serialises concurrent
 * runs (several servers starting at once): the second waits, then finds nothing to apply. */
#include "db/migrate.h"
#include "core/error.h"
#include "core/log.h"
#include "db/cluster.h"

#include <libpq-fe.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Distinct from the event log's append lock (7318029347265501, schema/001_event_log.sql). */
#define MIGRATE_LOCK "7318029347265500"

#define CREATE_TABLE                                                                                         \
    "CREATE TABLE IF NOT EXISTS schema_migrations ("                                                         \
    " name text PRIMARY KEY,"                                                                                \
    " checksum text NOT NULL,"                                                                               \
    " applied_at timestamptz NOT NULL DEFAULT now())"

typedef struct {
    const sb_schema_file_t *file;
    char checksum[65]; /* sha256 of the file's text, hex */
    bool applied;
} plan_entry_t;

static int fail(int code, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(int code, char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return code;
}

/* libpq's messages end in a newline and may span lines; the first line is the message. */
static const char *first_line(char *msg)
{
    char *nl = strchr(msg, '\n');
    if (nl != NULL)
        *nl = '\0';
    return msg;
}

static void on_notice(void *arg, const char *message)
{
    (void)arg;
    sb_log_debug("migrate", "server notice: %s", message);
}

static int connect_db(const char *conninfo, PGconn **out, char *err, size_t errlen)
{
    PGconn *conn = PQconnectdb(conninfo);
    if (conn == NULL)
        return fail(SB_ENOMEM, err, errlen, "out of memory");
    if (PQstatus(conn) != CONNECTION_OK) {
        int rc = fail(SB_EDBDOWN, err, errlen, "cannot connect to the database: %s",
                      first_line(PQerrorMessage(conn)));
        PQfinish(conn);
        return rc;
    }
    PQsetNoticeProcessor(conn, on_notice, NULL);
    *out = conn;
    return 0;
}

/* Runs a statement that returns no rows we need; on failure writes "what: server message". */
static int exec_ok(PGconn *conn, const char *sql, const char *what, char *err, size_t errlen)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    int rc = 0;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
        rc = fail(SB_EDB, err, errlen, "%s: %s", what, msg ? msg : first_line(PQerrorMessage(conn)));
    }
    PQclear(res);
    return rc;
}

static void checksum_hex(const char *sql, char out[65])
{
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(digest, (const unsigned char *)sql, strlen(sql));
    sodium_bin2hex(out, 65, digest, sizeof(digest));
}

static int by_name(const void *a, const void *b)
{
    const plan_entry_t *x = a, *y = b;
    return strcmp(x->file->name, y->file->name);
}

/* Builds the plan: every file in name order, with its checksum and whether it is applied.  A file
 * applied with a different checksum was edited after the fact: that is an error, never silently
 * accepted.  *plan is allocated (caller frees) even when *n is 0. */
static int make_plan(PGconn *conn, const sb_schema_file_t *files, plan_entry_t **plan, size_t *n, char *err,
                     size_t errlen)
{
    size_t count = 0;
    while (files[count].name != NULL)
        count++;
    plan_entry_t *p = calloc(count + 1, sizeof(*p));
    if (p == NULL)
        return fail(SB_ENOMEM, err, errlen, "out of memory");
    for (size_t i = 0; i < count; i++) {
        p[i].file = &files[i];
        checksum_hex(files[i].sql, p[i].checksum);
    }
    qsort(p, count, sizeof(*p), by_name);

    int rc = 0;
    PGresult *res = PQexec(conn, "SELECT to_regclass('schema_migrations') IS NOT NULL");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = fail(SB_EDB, err, errlen, "cannot read schema_migrations: %s", first_line(PQerrorMessage(conn)));
        goto out_clear;
    }
    bool have_table = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    res = NULL;
    if (!have_table)
        goto out_done;
    res = PQexec(conn, "SELECT name, checksum FROM schema_migrations ORDER BY name");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = fail(SB_EDB, err, errlen, "cannot read schema_migrations: %s", first_line(PQerrorMessage(conn)));
        goto out_clear;
    }
    for (int r = 0; r < PQntuples(res); r++) {
        const char *name = PQgetvalue(res, r, 0), *sum = PQgetvalue(res, r, 1);
        size_t i = 0;
        while (i < count && strcmp(p[i].file->name, name) != 0)
            i++;
        if (i == count) {
            sb_log_warn("migrate",
                        "the database has a migration this binary does not know name=%s "
                        "(applied by a newer version?)",
                        name);
            continue;
        }
        if (strcmp(p[i].checksum, sum) != 0) {
            rc = fail(SB_ECONFLICT, err, errlen,
                      "migration %s was changed after it was applied (checksum differs): "
                      "restore it and add a new migration instead",
                      name);
            goto out_clear;
        }
        p[i].applied = true;
    }
out_done:
    *plan = p;
    *n = count;
    p = NULL;
out_clear:
    PQclear(res);
    free(p);
    return rc;
}

/* 1-based line of a 1-based character position in sql (UTF-8), as the server reports positions. */
static int line_of(const char *sql, long pos)
{
    int line = 1;
    long chars = 0;
    for (const unsigned char *s = (const unsigned char *)sql; *s; s++) {
        if ((*s & 0xC0) == 0x80)
            continue;
        if (++chars >= pos)
            break;
        if (*s == '\n')
            line++;
    }
    return line;
}

/* Runs one migration and records it, in one transaction. */
static int apply_one(PGconn *conn, const plan_entry_t *e, char *err, size_t errlen)
{
    const char *name = e->file->name;
    int rc = exec_ok(conn, "BEGIN", name, err, errlen);
    if (rc != 0)
        return rc;
    PGresult *res = PQexec(conn, e->file->sql);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) {
        const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
        const char *pos = PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION);
        const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
        char where[32] = "";
        if (pos != NULL)
            snprintf(where, sizeof(where), " at line %d", line_of(e->file->sql, atol(pos)));
        rc = fail(SB_EDB, err, errlen, "migration %s failed%s: %s%s%s", name, where,
                  msg ? msg : first_line(PQerrorMessage(conn)), detail ? " (" : "", detail ? detail : "");
        if (detail != NULL && strlen(err) + 1 < errlen)
            strcat(err, ")");
        PQclear(res);
        goto out_rollback;
    }
    PQclear(res);

    const char *params[2] = {name, e->checksum};
    res = PQexecParams(conn, "INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)", 2, NULL,
                       params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        rc = fail(SB_EDB, err, errlen, "cannot record migration %s: %s", name,
                  first_line(PQerrorMessage(conn)));
        PQclear(res);
        goto out_rollback;
    }
    PQclear(res);
    /* COMMIT reports deferred-constraint failures. */
    char what[256];
    snprintf(what, sizeof(what), "migration %s failed at commit", name);
    return exec_ok(conn, "COMMIT", what, err, errlen);

out_rollback:
    PQclear(PQexec(conn, "ROLLBACK"));
    return rc;
}

int sb_migrate_files(const char *conninfo, const sb_schema_file_t *files, FILE *report, char *err,
                     size_t errlen)
{
    PGconn *conn = NULL;
    plan_entry_t *plan = NULL;
    size_t n = 0;
    if (sodium_init() < 0)
        return fail(SB_ENOMEM, err, errlen, "cannot initialise libsodium");
    int rc = connect_db(conninfo, &conn, err, errlen);
    if (rc != 0)
        return rc;
    /* Waits for any other process migrating this database, then holds it off until we are done. */
    rc = exec_ok(conn, "SELECT pg_advisory_lock(" MIGRATE_LOCK ")", "cannot take the migration lock", err,
                 errlen);
    if (rc != 0)
        goto out_finish;
    rc = exec_ok(conn, CREATE_TABLE, "cannot create schema_migrations", err, errlen);
    if (rc == 0)
        rc = make_plan(conn, files, &plan, &n, err, errlen);
    int applied = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (plan[i].applied)
            continue;
        rc = apply_one(conn, &plan[i], err, errlen);
        if (rc != 0)
            break;
        applied++;
        if (report == NULL)
            sb_log_info("migrate", "applied name=%s", plan[i].file->name);
        else {
            fprintf(report, "applied %s\n", plan[i].file->name);
            fflush(report);
        }
    }
    if (rc == 0 && applied == 0 && report != NULL) {
        fputs("nothing to apply\n", report);
        fflush(report);
    }
    /* Closing the session releases the lock too; unlocking first is just tidier for poolers. */
    PQclear(PQexec(conn, "SELECT pg_advisory_unlock(" MIGRATE_LOCK ")"));
    if (rc == 0)
        rc = applied;
out_finish:
    free(plan);
    PQfinish(conn);
    return rc;
}

int sb_migrate(const char *conninfo, FILE *report, char *err, size_t errlen)
{
    return sb_migrate_files(conninfo, sb_schema_files, report, err, errlen);
}

int sb_migrate_is_current(const char *conninfo, char *err, size_t errlen)
{
    PGconn *conn = NULL;
    plan_entry_t *plan = NULL;
    size_t n = 0;
    if (sodium_init() < 0)
        return fail(SB_ENOMEM, err, errlen, "cannot initialise libsodium");
    int rc = connect_db(conninfo, &conn, err, errlen);
    if (rc != 0)
        return rc;
    rc = make_plan(conn, sb_schema_files, &plan, &n, err, errlen);
    if (rc == 0) {
        rc = 1;
        for (size_t i = 0; i < n; i++)
            if (!plan[i].applied)
                rc = 0;
    }
    free(plan);
    PQfinish(conn);
    return rc;
}

static const char migrate_usage[] =
    "usage: switchboard migrate [--database-url URL] [--data-dir DIR]\n"
    "\n"
    "Applies the schema migrations compiled into this binary (schema/NNN_name.sql), in name order,\n"
    "each in its own transaction, and records them in the schema_migrations table.  Prints one\n"
    "'applied NAME' line per file, or 'nothing to apply'.  Safe to run again and from several\n"
    "processes at once.  A migration edited after it was applied is reported as an error.\n"
    "\n"
    "Uses SWITCHBOARD_DATABASE_URL when set; otherwise starts the embedded cluster for the duration\n"
    "(and stops it again if it was not already running).\n";

int sb_cmd_migrate(sb_config_t *cfg, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(migrate_usage, stdout);
            return 0;
        }
    }
    if (argc > 1) {
        fprintf(stderr, "switchboard: migrate: unexpected argument '%s' (see 'switchboard migrate --help')\n",
                argv[1]);
        return 2;
    }
    char err[1024];
    bool started = false;
    if (cfg->database_url == NULL && sb_cluster_start(cfg->data_dir, &started, err, sizeof(err)) != 0) {
        fprintf(stderr, "switchboard: %s\n", err);
        if (started) /* it came up but the database could not be made: leave nothing behind */
            sb_cluster_stop(cfg->data_dir, err, sizeof(err));
        return 1;
    }
    int code = 0;
    char *conninfo = sb_db_conninfo(cfg);
    if (conninfo == NULL) {
        fprintf(stderr, "switchboard: out of memory\n");
        code = 1;
    } else if (sb_migrate(conninfo, stdout, err, sizeof(err)) < 0) {
        fprintf(stderr, "switchboard: %s\n", err);
        code = 1;
    }
    free(conninfo);
    if (started && sb_cluster_stop(cfg->data_dir, err, sizeof(err)) != 0) {
        fprintf(stderr, "switchboard: %s\n", err);
        code = 1;
    }
    return code;
}
