/* A lease: one process per database at a time runs what holds it.
 *
 * The lease is a session-level PostgreSQL advisory lock taken on a connection of its own: it is
 * held for as long as that session lives, so a process that stops or dies gives it up without any
 * timeout of ours, and another process (trying every interval) takes it over.  A query now and then
 * notices a dead connection even when nothing else happens on it.
 *
 * Runs on one loop (the calling thread of sb_lease_start); the callback fires there with held true
 * once the lock is taken, and with held false when the connection is lost (the server has released
 * the lock then, or will once it notices the session is gone).  Whoever holds a lease must stop
 * acting on its behalf when told it is lost: another process may take over at once. */
#ifndef SB_REACTORS_LEASE_H
#define SB_REACTORS_LEASE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/loop.h"

typedef struct sb_lease_s sb_lease_t;

typedef void (*sb_lease_cb)(sb_lease_t *lease, bool held, void *data);

/* Starts trying to take advisory lock key on a new connection (conninfo, copied; name shows in
 * pg_stat_activity) every interval_ms.  NULL on allocation failure. */
sb_lease_t *sb_lease_start(sb_loop_t *loop, const char *conninfo, int64_t key, const char *name,
                           uint64_t interval_ms, sb_lease_cb cb, void *data);

/* Gives the lease up (closing the connection releases the lock) and frees it; cb never fires
 * again.  on_closed (may be NULL) fires once the connection is closed.  On the lease's loop. */
void sb_lease_stop(sb_lease_t *lease, void (*on_closed)(void *data), void *data);

bool sb_lease_held(const sb_lease_t *lease);

#endif
