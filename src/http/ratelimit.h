/* Rate limits for public endpoints: a token bucket per key (a client address, a visitor), in this
 * process's memory, shared by every loop.
 *
 * Each key may spend `burst` requests at once and earns `per_minute` more a minute.  The table has
 * a fixed number of entries (set at creation), so a peer sending from many addresses costs memory
 * bounded by that size: a key that does not fit takes the place of the least recently limited
 * entry of its set (4-way), which then starts afresh — a forgiving choice, never a lock-out of the
 * innocent.  Limits are per process: with N processes behind a balancer a client may get up to N
 * times the rate (docs/operations.md).
 *
 * Thread-safe (one mutex; a take is a hash, a few compares and a bit of arithmetic). */
#ifndef SB_HTTP_RATELIMIT_H
#define SB_HTTP_RATELIMIT_H

#include <h2o.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sb_ratelimit_s sb_ratelimit_t;

/* per_minute >= 1, burst >= 1, entries >= 4 (rounded up to a multiple of 4).  NULL on allocation
 * failure. */
sb_ratelimit_t *sb_ratelimit_new(int per_minute, int burst, size_t entries);
void sb_ratelimit_free(sb_ratelimit_t *rl);

/* Spends one request for key at now_ms (a monotonic clock).  0 when allowed; otherwise the whole
 * seconds (>= 1) until one is earned, for Retry-After. */
int sb_ratelimit_take(sb_ratelimit_t *rl, const char *key, uint64_t now_ms);

/* "addr:<ip>" of the request's peer ("addr:unknown" when the socket has none); cap >=
 * INET6_ADDRSTRLEN + 8 holds any. */
void sb_ratelimit_client_key(h2o_req_t *req, char *out, size_t cap);

#endif
