/* Shared by the embedded cluster's files (cluster.c, cluster_proc.c); not a public contract. */
#ifndef SB_DB_CLUSTER_INTERNAL_H
#define SB_DB_CLUSTER_INTERNAL_H

#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

#include "core/error.h"

#define SB__PG_BINARIES_HINT "(install the postgresql package)"

/* Who PostgreSQL runs as.  switch_user only when we are root: the server refuses to run as root. */
typedef struct sb__runas_s {
    bool switch_user;
    uid_t uid;
    gid_t gid;
    char name[64];
    gid_t groups[64];
    int ngroups;
} sb__runas_t;

/* Where initdb, pg_ctl and postgres are. */
typedef struct sb__pgbin_s {
    char dir[PATH_MAX];
    int major; /* 0 when not yet known */
} sb__pgbin_t;

/* Writes one line into err and returns SB_ECLUSTER. */
static inline int sb__cluster_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline int sb__cluster_fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return SB_ECLUSTER;
}

/* snprintf into a PATH_MAX buffer; false when it does not fit. */
static inline bool sb__path_fmt(char *dst, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline bool sb__path_fmt(char *dst, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(dst, PATH_MAX, fmt, ap);
    va_end(ap);
    return n >= 0 && n < PATH_MAX;
}

/* Runs the program argv[0] as ra's account (ra NULL or !switch_user: as ourselves), in /, with
 * only fds 0-2 open, stdout and stderr captured into out (its tail, NUL-terminated).  Returns the
 * exit status, 128+signal when killed, or -errno when it could not be started. */
int sb__pg_run(const sb__runas_t *ra, char *const argv[], char *out, size_t outlen);
/* The same, with env ("NAME=value" strings, NULL-terminated; NULL for none) added to the program's
 * environment where ours does not set the name already. */
int sb__pg_run_env(const sb__runas_t *ra, char *const argv[], const char *const env[], char *out,
                   size_t outlen);

/* The most telling line of a tool's output or a server log: the last one naming an error, else the
 * last line, starting at the severity ("FATAL:  ...") for log lines. */
void sb__pg_pick_line(const char *out, char *line, size_t len);

/* Finds initdb, pg_ctl and postgres: in $SWITCHBOARD_PG_BIN if set, else the highest version under
 * /usr/lib/postgresql/<ver>/bin, or exactly version want when want > 0 (an existing cluster).
 * 0, or SB_ECLUSTER with one line in err. */
int sb__pg_find_binaries(int want, sb__pgbin_t *bin, char *err, size_t errlen);

/* The account the server runs as, for the data directory datadir (which may not exist yet). */
int sb__pg_runas_resolve(const char *datadir, sb__runas_t *ra, char *err, size_t errlen);

/* When switching users: checks that ra's account can traverse every directory down to target and
 * write in it; otherwise one line naming the directory in its way. */
int sb__pg_check_reachable(const sb__runas_t *ra, const char *target, char *err, size_t errlen);

#endif
