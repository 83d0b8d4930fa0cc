/* The running server's shared parts, for handlers and subsystems on any loop.
 *
 * serve.c builds one sb_app_t before the loops start and frees it after they have all stopped;
 * while they run it is read-only except for the fields each subsystem owns.  Reach it from a loop
 * with sb_app_current(). */
#ifndef SB_HTTP_APP_H
#define SB_HTTP_APP_H

#include "core/config.h"
#include "core/loop.h"
#include "events/follow.h"

typedef struct sb_http_server_s sb_http_server_t;

typedef struct sb_app_s {
    const sb_config_t *cfg;
    const char *conninfo;
    sb_loops_t *loops;
    sb_follower_t *follower; /* runs on loop 0; every loop may subscribe */
    sb_http_server_t *http;
    /* Subsystems above the event log keep their process-wide state here. */
    void *runtime;     /* src/actors */
    void *projections; /* src/projections */
    void *sse;         /* src/http/sse.c */
    void *api;         /* src/http/api.c */
    void *reactors;    /* src/reactors */
    void *secrets;     /* src/db/secrets.h: the sealed-secrets service (the master key) */
} sb_app_t;

/* The app of the calling loop's group, or NULL off the worker loops. */
sb_app_t *sb_app_current(void);

#endif
