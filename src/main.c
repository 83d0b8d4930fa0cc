/* switchboard: command-line dispatch only.  Each command lives with its subsystem. */
#include <stdio.h>
#include <string.h>

#include "actors/replay.h"
#include "core/config.h"
#include "core/jalloc.h"
#include "db/cluster.h"
#include "db/migrate.h"
#include "events/export.h"
#include "http/serve.h"
#include "projections/projections.h"

typedef struct {
    const char *name;
    int (*run)(sb_config_t *cfg, int argc, char **argv);
    const char *summary;
} command_t;

static const command_t commands[] = {
    {"serve", sb_cmd_serve, "run the server (the default main job)"},
    {"migrate", sb_cmd_migrate, "apply schema migrations; idempotent; reports what it applied"},
    {"db", sb_cmd_db, "start, stop or show the status of the embedded PostgreSQL cluster"},
    {"events", sb_cmd_events, "export the event log, or tail it live"},
    {"replay", sb_cmd_replay, "print a stream's state folded from its events, as of a position or time"},
    {"projections", sb_cmd_projections,
     "list read models with their checkpoint and lag; rebuild them from the log"},
};

static void usage(FILE *out)
{
    fputs("usage: switchboard <command> [options]\n\ncommands:\n", out);
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "  %-12s %s\n", "help", "show this help, or a command's: switchboard help <command>");
    fprintf(out, "\ncommon options (environment variable in brackets):\n%s", sb_config_flags_help);
    fputs("\nexit codes: 0 success, 1 runtime failure, 2 bad usage\n", out);
}

int main(int argc, char **argv)
{
    sb_jalloc_install(); /* before any jansson value is made */
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *name = argv[1];
    if (strcmp(name, "help") == 0 || strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
        if (argc >= 3) {
            for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
                if (strcmp(commands[i].name, argv[2]) == 0) {
                    char *args[] = {argv[2], "--help", NULL};
                    sb_config_t cfg;
                    char err[256];
                    int n = 2;
                    if (sb_config_load(&cfg, &n, args, err, sizeof(err)) != 0)
                        return 2;
                    int rc = commands[i].run(&cfg, n, args);
                    sb_config_free(&cfg);
                    return rc;
                }
            }
            fprintf(stderr, "switchboard: unknown command '%s'\n", argv[2]);
            return 2;
        }
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(commands[i].name, name) != 0)
            continue;
        sb_config_t cfg;
        char err[512];
        int n = argc - 1;
        if (sb_config_load(&cfg, &n, argv + 1, err, sizeof(err)) != 0) {
            fprintf(stderr, "switchboard: %s\n", err);
            sb_config_free(&cfg);
            return 2;
        }
        int rc = commands[i].run(&cfg, n, argv + 1);
        sb_config_free(&cfg);
        return rc;
    }
    fprintf(stderr, "switchboard: unknown command '%s' (see 'switchboard help')\n", name);
    return 2;
}
