/* Token buckets in a fixed, 4-way set-associative table: see ratelimit.h. */
#include "http/ratelimit.h"

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <uv.h>

#define WAYS 4
#define KEY_MAX 72

typedef struct {
    char key[KEY_MAX]; /* "" when free */
    double tokens;
    uint64_t at_ms; /* when tokens was last brought up to date */
} entry_t;

struct sb_ratelimit_s {
    uv_mutex_t lock;
    double per_ms, burst;
    size_t sets;
    entry_t *entries; /* sets * WAYS */
};

sb_ratelimit_t *sb_ratelimit_new(int per_minute, int burst, size_t entries)
{
    if (per_minute < 1 || burst < 1 || entries < WAYS)
        return NULL;
    sb_ratelimit_t *rl = calloc(1, sizeof(*rl));
    if (rl == NULL)
        return NULL;
    rl->sets = (entries + WAYS - 1) / WAYS;
    rl->entries = calloc(rl->sets * WAYS, sizeof(entry_t));
    if (rl->entries == NULL || uv_mutex_init(&rl->lock) != 0) {
        free(rl->entries);
        free(rl);
        return NULL;
    }
    rl->per_ms = per_minute / 60000.0;
    rl->burst = burst;
    return rl;
}

void sb_ratelimit_free(sb_ratelimit_t *rl)
{
    if (rl == NULL)
        return;
    uv_mutex_destroy(&rl->lock);
    free(rl->entries);
    free(rl);
}

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

int sb_ratelimit_take(sb_ratelimit_t *rl, const char *key, uint64_t now_ms)
{
    char k[KEY_MAX];
    snprintf(k, sizeof(k), "%s", key);
    entry_t *set = rl->entries + (hash(k) % rl->sets) * WAYS;
    int wait = 0;

    uv_mutex_lock(&rl->lock);
    entry_t *e = NULL, *victim = &set[0];
    for (int i = 0; i < WAYS; i++) {
        if (strcmp(set[i].key, k) == 0) {
            e = &set[i];
            break;
        }
        if (set[i].key[0] == '\0' || (victim->key[0] != '\0' && set[i].at_ms < victim->at_ms))
            victim = &set[i];
    }
    if (e == NULL) {
        e = victim;
        snprintf(e->key, sizeof(e->key), "%s", k);
        e->tokens = rl->burst;
        e->at_ms = now_ms;
    }
    if (now_ms > e->at_ms) {
        e->tokens += (double)(now_ms - e->at_ms) * rl->per_ms;
        if (e->tokens > rl->burst)
            e->tokens = rl->burst;
        e->at_ms = now_ms;
    }
    if (e->tokens >= 1.0) {
        e->tokens -= 1.0;
    } else {
        double ms = (1.0 - e->tokens) / rl->per_ms;
        wait = (int)ceil(ms / 1000.0 - 1e-9);
        if (wait < 1)
            wait = 1;
    }
    uv_mutex_unlock(&rl->lock);
    return wait;
}

void sb_ratelimit_client_key(h2o_req_t *req, char *out, size_t cap)
{
    struct sockaddr_storage ss;
    socklen_t len = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    snprintf(out, cap, "addr:unknown");
    if (len == 0 || (ss.ss_family != AF_INET && ss.ss_family != AF_INET6))
        return;
    char ip[INET6_ADDRSTRLEN];
    const void *a = ss.ss_family == AF_INET6 ? (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr
                                             : (const void *)&((struct sockaddr_in *)&ss)->sin_addr;
    if (inet_ntop(ss.ss_family, a, ip, sizeof(ip)) != NULL)
        snprintf(out, cap, "addr:%s", ip);
}
