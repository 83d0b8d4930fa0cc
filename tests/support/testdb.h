/* Per-test databases in the shared test PostgreSQL.
 *
 * ctest's "pg" fixture (tests/testpg.sh) starts one embedded cluster in $SWITCHBOARD_TEST_DATA_DIR
 * for the whole run; each test makes its own database in it, named after the test, so tests can
 * run in parallel without seeing each other's data.  These calls block (plain libpq): use them in
 * a test's set-up, not on a loop.  On failure they print the reason to stderr. */
#ifndef SBT_TESTDB_H
#define SBT_TESTDB_H

/* Drops the database name if it exists (disconnecting anyone still in it) and creates it afresh.
 * name: letters, digits and underscores, at most 63.  Returns its libpq connection string (caller
 * frees), or NULL. */
char *sbt_db_create(const char *name);

/* The connection string of database name in the shared cluster (caller frees), or NULL. */
char *sbt_db_conninfo(const char *name);

/* Drops the database name if it exists.  0 or -1. */
int sbt_db_drop(const char *name);

/* Applies the schema (sb_migrate) to the database at conninfo.  The number of migrations applied
 * (>= 0), or -1. */
int sbt_db_migrate(const char *conninfo);

#endif
