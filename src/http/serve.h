/* `switchboard serve`: starts the embedded cluster when no database is configured, migrates, runs
 * the worker loops with their database connections, appenders and h2o contexts, and shuts down
 * gracefully on SIGINT/SIGTERM (stop accepting, finish in-flight requests, stop what it started). */
#ifndef SB_HTTP_SERVE_H
#define SB_HTTP_SERVE_H

#include "core/config.h"

/* argv[0] is "serve".  Returns the exit code. */
int sb_cmd_serve(sb_config_t *cfg, int argc, char **argv);

#endif
