/* `switchboard replay STREAM [--at POS | --as-of TIME]`: time travel.  Folds the stream's kind's
 * evolve over its events up to a log position or a recorded time (the same fold the actors run)
 * and prints the state as JSON. */
#ifndef SB_ACTORS_REPLAY_H
#define SB_ACTORS_REPLAY_H

#include "core/config.h"

/* argv[0] is "replay".  Returns the exit code: 0, 1 (runtime failure, or no such stream), 2 (bad
 * usage). */
int sb_cmd_replay(sb_config_t *cfg, int argc, char **argv);

#endif
