/* `switchboard events export|tail`: the log for analysts, decoded to JSON Lines or CSV. */
#ifndef SB_EVENTS_EXPORT_H
#define SB_EVENTS_EXPORT_H

#include "core/config.h"

/* argv[0] is "events".  Returns the exit code. */
int sb_cmd_events(sb_config_t *cfg, int argc, char **argv);

#endif
