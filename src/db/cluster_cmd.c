/* `switchboard db start|stop|status|conninfo`. */
#include "db/cluster.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- switchboard db ------------------------------------------------------------------------- */

static const char db_usage[] =
    "usage: switchboard db start|stop|status|conninfo [--help]\n"
    "\n"
    "Manages the embedded PostgreSQL cluster in <data dir>/pg (--data-dir, SWITCHBOARD_DATA_DIR;\n"
    "default ./var).  It listens on a Unix socket only; when run as root it runs as the postgres\n"
    "account.\n"
    "\n"
    "  start      create the cluster on first use, start it, create the switchboard database\n"
    "  stop       stop it (fast shutdown: open sessions are disconnected)\n"
    "  status     print 'running pid=... socket=...', 'stopped' or 'not initialised'\n"
    "  conninfo   print the libpq connection string of the embedded cluster (e.g. for psql)\n";

static const struct {
    const char *name;
    const char *help;
} db_commands[] = {
    {"start", "usage: switchboard db start\n\n"
              "Creates the embedded cluster on first use (initdb), starts it, waits until it accepts\n"
              "connections and creates the switchboard database.  Does nothing when it is already\n"
              "running.  Server binaries: /usr/lib/postgresql/<version>/bin, or SWITCHBOARD_PG_BIN.\n"},
    {"stop", "usage: switchboard db stop\n\n"
             "Stops the embedded cluster (fast shutdown) and waits for it to exit.  Does nothing when it\n"
             "is not running.\n"},
    {"status", "usage: switchboard db status\n\n"
               "Prints 'running pid=... socket=...', 'stopped' or 'not initialised'.\n"},
    {"conninfo", "usage: switchboard db conninfo [DBNAME]\n\n"
                 "Prints the libpq connection string of the embedded cluster, for its switchboard\n"
                 "database or DBNAME: psql \"$(switchboard db conninfo)\".\n"},
};

static bool is_help(const char *a)
{
    return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0;
}

int sb_cmd_db(sb_config_t *cfg, int argc, char **argv)
{
    if (argc >= 2 && is_help(argv[1])) {
        fputs(db_usage, stdout);
        return 0;
    }
    if (argc < 2) {
        fputs(db_usage, stderr);
        return 2;
    }
    const char *sub = argv[1];
    size_t i = 0, n = sizeof(db_commands) / sizeof(db_commands[0]);
    while (i < n && strcmp(db_commands[i].name, sub) != 0)
        i++;
    if (i == n) {
        fprintf(stderr, "switchboard: db: unknown command '%s' (start, stop, status or conninfo)\n", sub);
        return 2;
    }
    for (int a = 2; a < argc; a++) {
        if (is_help(argv[a])) {
            fputs(db_commands[i].help, stdout);
            return 0;
        }
    }
    int max_args = strcmp(sub, "conninfo") == 0 ? 4 : 3;
    if (argc >= max_args || (argc == 3 && argv[2][0] == '-')) {
        fprintf(stderr, "switchboard: db %s: unexpected argument '%s'\n", sub, argv[argc - 1]);
        return 2;
    }

    char err[1024];
    if (strcmp(sub, "conninfo") == 0) {
        char *ci =
            argc == 3 ? sb_cluster_conninfo_db(cfg->data_dir, argv[2]) : sb_cluster_conninfo(cfg->data_dir);
        if (ci == NULL) {
            fprintf(stderr, "switchboard: data directory path too long\n");
            return 1;
        }
        puts(ci);
        free(ci);
        return 0;
    }
    if (strcmp(sub, "status") == 0) {
        int r = sb_cluster_status(cfg->data_dir, err, sizeof(err));
        if (r < 0) {
            fprintf(stderr, "switchboard: %s\n", err);
            return 1;
        }
        puts(err);
        return 0;
    }
    if (cfg->database_url != NULL)
        fprintf(stderr, "switchboard: note: SWITCHBOARD_DATABASE_URL is set; the server uses that "
                        "database, not the embedded cluster\n");
    if (strcmp(sub, "start") == 0) {
        bool started;
        if (sb_cluster_start(cfg->data_dir, &started, err, sizeof(err)) != 0) {
            fprintf(stderr, "switchboard: %s\n", err);
            return 1;
        }
        char status[PATH_MAX + 64];
        if (sb_cluster_status(cfg->data_dir, status, sizeof(status)) < 0)
            snprintf(status, sizeof(status), "running");
        printf("%s: %s\n", started ? "started" : "already running", status);
        return 0;
    }
    /* stop */
    char before[PATH_MAX + 64];
    int was = sb_cluster_status(cfg->data_dir, before, sizeof(before));
    if (sb_cluster_stop(cfg->data_dir, err, sizeof(err)) != 0) {
        fprintf(stderr, "switchboard: %s\n", err);
        return 1;
    }
    puts(was == 1 ? "stopped" : "not running");
    return 0;
}
