/* The embedded PostgreSQL cluster (SPEC §1): created on first use under <data_dir>/pg, listening
 * on a Unix socket only, started and stopped with the server.  When the process runs as root the
 * cluster runs as the unprivileged `postgres` account (PostgreSQL refuses root).
 *
 * These calls block (they run initdb and pg_ctl): use them from main or a command-line tool before
 * any loop starts, never on a loop thread. */
#ifndef SB_DB_CLUSTER_H
#define SB_DB_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>

#include "core/config.h"

/* The libpq connection string for the configured database: cfg->database_url, or the embedded
 * cluster's socket.  Caller frees. */
char *sb_db_conninfo(const sb_config_t *cfg);

/* The embedded cluster's connection string for data_dir (its switchboard database).  Caller frees;
 * NULL only when out of memory or the path is too long. */
char *sb_cluster_conninfo(const char *data_dir);

/* The same for another database of the embedded cluster (tests create one per test).  Caller
 * frees. */
char *sb_cluster_conninfo_db(const char *data_dir, const char *dbname);

/* Creates the cluster if absent (initdb), starts it if not running, waits until it accepts
 * connections and makes sure the switchboard database exists.  *started is set when this call
 * started the server (so the caller knows to stop it).  0, or SB_ECLUSTER with one line in err
 * (e.g. "postgresql server binaries not found (install the postgresql package)"). */
int sb_cluster_start(const char *data_dir, bool *started, char *err, size_t errlen);

/* Stops a running cluster (fast shutdown) and waits for it to exit.  0 when stopped or not
 * running; SB_ECLUSTER with err otherwise. */
int sb_cluster_stop(const char *data_dir, char *err, size_t errlen);

/* Writes a one-line status ("running pid=… socket=…", "stopped", "not initialised") into out.
 * Returns 1 when running, 0 when not, or SB_ECLUSTER. */
int sb_cluster_status(const char *data_dir, char *out, size_t outlen);

/* `switchboard db start|stop|status`: argv[0] is "db".  Returns the exit code (0, 1, or 2). */
int sb_cmd_db(sb_config_t *cfg, int argc, char **argv);

#endif
