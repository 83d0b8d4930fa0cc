/* Process configuration: SPEC §2's environment variables, overridable by --flags.
 *
 * Loaded once in main before any thread starts, then read-only; every thread may read it. */
#ifndef SB_CORE_CONFIG_H
#define SB_CORE_CONFIG_H

#include <stddef.h>

#include "core/log.h"

typedef struct sb_config_s {
    char *database_url;       /* SWITCHBOARD_DATABASE_URL / --database-url; NULL means the embedded cluster */
    char *data_dir;           /* SWITCHBOARD_DATA_DIR / --data-dir; default "./var", made absolute */
    char *listen_host;        /* from SWITCHBOARD_LISTEN / --listen "host:port"; default 127.0.0.1 */
    int listen_port;          /* default 8080 */
    int threads;              /* SWITCHBOARD_THREADS / --threads; default: number of CPUs */
    char *public_url;         /* SWITCHBOARD_PUBLIC_URL / --public-url, without a trailing slash */
    char *master_key;         /* SWITCHBOARD_MASTER_KEY; NULL: read or generated under data_dir */
    char *tls_cert;           /* SWITCHBOARD_TLS_CERT / --tls-cert; NULL: plain HTTP */
    char *tls_key;            /* SWITCHBOARD_TLS_KEY / --tls-key */
    char *twilio_api_base;    /* SWITCHBOARD_TWILIO_API_BASE; default https://api.twilio.com */
    char *resend_api_base;    /* SWITCHBOARD_RESEND_API_BASE; default https://api.resend.com */
    char *projections_dir;    /* SWITCHBOARD_PROJECTIONS_DIR; default: projections/ of the source tree */
    sb_log_level_t log_level; /* SWITCHBOARD_LOG / --log */
    int actor_idle_seconds;   /* SWITCHBOARD_ACTOR_IDLE_SECONDS: passivate after this idle time; 300 */
} sb_config_t;

/* Fills *cfg from the environment and defaults, then consumes the recognised --flags from argv
 * (both "--flag value" and "--flag=value"), compacting argv and updating *argc.  Unrecognised
 * arguments stay for the command to parse.  On a bad value returns SB_EINVAL and writes one line
 * into err. */
int sb_config_load(sb_config_t *cfg, int *argc, char **argv, char *err, size_t errlen);

void sb_config_free(sb_config_t *cfg);

/* Help text listing the common flags, for `switchboard help`. */
extern const char sb_config_flags_help[];

#endif
