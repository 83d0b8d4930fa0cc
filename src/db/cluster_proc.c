/* Running PostgreSQL's tools for the embedded cluster: finding the binaries, choosing the account
 * they run as, and running them with their output captured.  Blocking; main and CLI only. */
#include "db/cluster_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PG_LIB_DIR "/usr/lib/postgresql"
#define BINARIES_MISSING "postgresql server binaries not found"

/* ---- running PostgreSQL's tools ------------------------------------------------------------- */

/* Appends to a buffer that keeps the last cap-1 bytes: the end of a tool's output says why it
 * failed. */
static void tail_append(char *buf, size_t cap, size_t *len, const char *data, size_t n)
{
    if (n >= cap - 1) {
        data += n - (cap - 1);
        n = cap - 1;
    }
    if (*len + n > cap - 1) {
        size_t drop = *len + n - (cap - 1);
        memmove(buf, buf + drop, *len - drop);
        *len -= drop;
    }
    memcpy(buf + *len, data, n);
    *len += n;
    buf[*len] = '\0';
}

static void close_from(int lowfd)
{
    if (close_range((unsigned)lowfd, ~0U, 0) == 0)
        return;
    long max = sysconf(_SC_OPEN_MAX);
    if (max < 0 || max > 65536)
        max = 65536;
    for (int fd = lowfd; fd < max; fd++)
        close(fd);
}

typedef int (*child_fn)(void *arg);

/* Runs fn(arg) in a child process, as ra's account, with stdout and stderr captured into out (its
 * tail).  The child starts in / with only fds 0-2 open: a server it starts must not inherit our
 * descriptors (a test runner's pipe held open by the postmaster would never see EOF).  Returns
 * the child's exit status, 128+signal when killed, or -errno when it could not be run. */
static int run_child(const sb__runas_t *ra, child_fn fn, void *arg, char *out, size_t outlen)
{
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0)
        return -errno;
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(pfd[0]);
        close(pfd[1]);
        return -e;
    }
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(pfd[1], 1) < 0 || dup2(pfd[1], 2) < 0)
            _exit(125);
        close_from(3);
        if (ra != NULL && ra->switch_user) {
            if (setgroups((size_t)ra->ngroups, ra->groups) != 0 || setgid(ra->gid) != 0 ||
                setuid(ra->uid) != 0) {
                dprintf(2, "cannot switch to the %s account: %s\n", ra->name, strerror(errno));
                _exit(126);
            }
        }
        if (chdir("/") != 0)
            _exit(125);
        /* English messages: they are shown to the user and searched for. */
        setenv("LC_ALL", "C", 1);
        _exit(fn(arg));
    }
    close(pfd[1]);
    size_t len = 0;
    if (out != NULL && outlen > 0)
        out[0] = '\0';
    char chunk[1024];
    for (;;) {
        ssize_t n = read(pfd[0], chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (out != NULL && outlen > 1)
            tail_append(out, outlen, &len, chunk, (size_t)n);
    }
    close(pfd[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return -errno;
    }
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return 128 + WTERMSIG(status);
}

typedef struct exec_args_s {
    char *const *argv;
    const char *const *env;
} exec_args_t;

static int exec_argv(void *arg)
{
    const exec_args_t *a = arg;
    /* Defaults for the program's environment: a variable the caller's environment already sets
     * keeps its value. */
    for (const char *const *e = a->env; e != NULL && *e != NULL; e++) {
        const char *eq = strchr(*e, '=');
        char name[64];
        if (eq == NULL || (size_t)(eq - *e) >= sizeof(name))
            continue;
        memcpy(name, *e, (size_t)(eq - *e));
        name[eq - *e] = '\0';
        setenv(name, eq + 1, 0);
    }
    execv(a->argv[0], a->argv);
    dprintf(2, "cannot run %s: %s\n", a->argv[0], strerror(errno));
    return 127;
}

void sb__pg_pick_line(const char *out, char *line, size_t len)
{
    static const char *const marks[] = {"FATAL:", "PANIC:", "ERROR:", "error:", "could not", "cannot"};
    const char *best = NULL, *last = NULL;
    size_t best_n = 0, last_n = 0;
    for (const char *s = out; *s;) {
        const char *e = strchr(s, '\n');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        while (n > 0 && (s[n - 1] == '\r' || s[n - 1] == ' '))
            n--;
        if (n > 0) {
            last = s;
            last_n = n;
            for (size_t i = 0; i < sizeof(marks) / sizeof(marks[0]); i++) {
                const char *m = strstr(s, marks[i]);
                if (m != NULL && m < s + n) {
                    best = s;
                    best_n = n;
                    break;
                }
            }
        }
        s = e ? e + 1 : s + n;
    }
    if (best == NULL) {
        best = last;
        best_n = last_n;
    }
    if (best == NULL) {
        snprintf(line, len, "no output");
        return;
    }
    /* Server log lines start with a timestamp and pid; the message starts at the severity. */
    for (size_t i = 0; i < 3; i++) {
        const char *m = strstr(best, marks[i]);
        if (m != NULL && m < best + best_n) {
            best_n -= (size_t)(m - best);
            best = m;
            break;
        }
    }
    snprintf(line, len, "%.*s", (int)best_n, best);
}

int sb__pg_run(const sb__runas_t *ra, char *const argv[], char *out, size_t outlen)
{
    return sb__pg_run_env(ra, argv, NULL, out, outlen);
}

int sb__pg_run_env(const sb__runas_t *ra, char *const argv[], const char *const env[], char *out,
                   size_t outlen)
{
    exec_args_t a = {.argv = argv, .env = env};
    return run_child(ra, exec_argv, &a, out, outlen);
}

/* ---- binaries ------------------------------------------------------------------------------- */

static bool has_binaries(const char *dir)
{
    static const char *const names[] = {"initdb", "pg_ctl", "postgres"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char path[PATH_MAX];
        if (!sb__path_fmt(path, "%s/%s", dir, names[i]) || access(path, X_OK) != 0)
            return false;
    }
    return true;
}

/* The major version of the binaries in dir, from `postgres -V` ("postgres (PostgreSQL) 15.5 …"). */
static int binaries_version(const char *dir)
{
    char path[PATH_MAX], out[512];
    if (!sb__path_fmt(path, "%s/postgres", dir))
        return 0;
    char *argv[] = {path, "-V", NULL};
    if (sb__pg_run(NULL, argv, out, sizeof(out)) != 0)
        return 0;
    const char *v = strstr(out, ") ");
    return v != NULL ? atoi(v + 2) : 0;
}

/* Finds initdb, pg_ctl and postgres: in $SWITCHBOARD_PG_BIN if set, else the highest version in
 * /usr/lib/postgresql/<ver>/bin, or exactly version want when want > 0 (an existing cluster). */
int sb__pg_find_binaries(int want, sb__pgbin_t *bin, char *err, size_t errlen)
{
    memset(bin, 0, sizeof(*bin));
    const char *env = getenv("SWITCHBOARD_PG_BIN");
    if (env != NULL && *env != '\0') {
        if (!has_binaries(env))
            return sb__cluster_fail(err, errlen,
                                    BINARIES_MISSING " in SWITCHBOARD_PG_BIN=%s " SB__PG_BINARIES_HINT, env);
        snprintf(bin->dir, sizeof(bin->dir), "%s", env);
        if (want > 0) {
            bin->major = binaries_version(env);
            if (bin->major != want)
                return sb__cluster_fail(
                    err, errlen, "the cluster needs PostgreSQL %d but the binaries in %s are version %d",
                    want, env, bin->major);
        }
        return 0;
    }
    DIR *d = opendir(PG_LIB_DIR);
    int best = 0, installed = 0;
    if (d != NULL) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            char *end;
            long v = strtol(de->d_name, &end, 10);
            if (end == de->d_name || *end != '\0' || v <= 0 || v > 1000)
                continue;
            char dir[PATH_MAX];
            if (!sb__path_fmt(dir, PG_LIB_DIR "/%s/bin", de->d_name) || !has_binaries(dir))
                continue;
            if (v > installed)
                installed = (int)v;
            if ((want > 0 && v == want) || (want == 0 && v > best))
                best = (int)v;
        }
        closedir(d);
    }
    if (installed == 0)
        return sb__cluster_fail(err, errlen, BINARIES_MISSING " " SB__PG_BINARIES_HINT);
    if (best == 0)
        return sb__cluster_fail(
            err, errlen,
            "the cluster was created by PostgreSQL %d, whose server binaries are not installed "
            "(installed: %d; install postgresql-%d or upgrade the cluster with pg_upgrade)",
            want, installed, want);
    snprintf(bin->dir, sizeof(bin->dir), PG_LIB_DIR "/%d/bin", best);
    bin->major = best;
    return 0;
}

/* ---- the account the server runs as --------------------------------------------------------- */

static int runas_from_passwd(sb__runas_t *ra, const struct passwd *pw)
{
    ra->switch_user = true;
    ra->uid = pw->pw_uid;
    ra->gid = pw->pw_gid;
    snprintf(ra->name, sizeof(ra->name), "%s", pw->pw_name);
    int n = (int)(sizeof(ra->groups) / sizeof(ra->groups[0]));
    if (getgrouplist(pw->pw_name, pw->pw_gid, ra->groups, &n) < 0) {
        ra->groups[0] = pw->pw_gid;
        n = 1;
    }
    ra->ngroups = n;
    return 0;
}

/* Not root: ourselves.  Root: the owner of an existing cluster if that is not root (a cluster a
 * developer created keeps working under sudo), else the `postgres` account. */
int sb__pg_runas_resolve(const char *datadir, sb__runas_t *ra, char *err, size_t errlen)
{
    memset(ra, 0, sizeof(*ra));
    if (geteuid() != 0) {
        ra->uid = geteuid();
        ra->gid = getegid();
        return 0;
    }
    struct stat st;
    if (stat(datadir, &st) == 0 && st.st_uid != 0) {
        struct passwd *pw = getpwuid(st.st_uid);
        if (pw != NULL)
            return runas_from_passwd(ra, pw);
        ra->switch_user = true;
        ra->uid = st.st_uid;
        ra->gid = st.st_gid;
        snprintf(ra->name, sizeof(ra->name), "uid %u", (unsigned)st.st_uid);
        ra->groups[0] = st.st_gid;
        ra->ngroups = 1;
        return 0;
    }
    struct passwd *pw = getpwnam("postgres");
    if (pw == NULL)
        return sb__cluster_fail(
            err, errlen,
            "running as root needs the 'postgres' account to run postgresql " SB__PG_BINARIES_HINT);
    if (pw->pw_uid == 0)
        return sb__cluster_fail(err, errlen,
                                "the 'postgres' account is root; postgresql refuses to run as root");
    return runas_from_passwd(ra, pw);
}

typedef struct {
    const char *target;
    char denied[PATH_MAX];
} reach_t;

/* In the child, as the server's account: can it traverse every directory down to target and
 * write in target? */
static int reach_check(void *arg)
{
    reach_t *r = arg;
    char prefix[PATH_MAX];
    snprintf(prefix, sizeof(prefix), "%s", r->target);
    for (char *s = prefix + 1;; s++) {
        if (*s == '/' || *s == '\0') {
            char c = *s;
            *s = '\0';
            if (access(prefix, X_OK) != 0) {
                dprintf(1, "%s\n", prefix);
                return 1;
            }
            *s = c;
            if (c == '\0')
                break;
        }
    }
    if (access(r->target, W_OK | X_OK) != 0) {
        dprintf(1, "%s\n", r->target);
        return 2;
    }
    return 0;
}

int sb__pg_check_reachable(const sb__runas_t *ra, const char *target, char *err, size_t errlen)
{
    if (!ra->switch_user)
        return 0;
    reach_t r = {.target = target};
    int rc = run_child(ra, reach_check, &r, r.denied, sizeof(r.denied));
    char *nl = strchr(r.denied, '\n');
    if (nl != NULL)
        *nl = '\0';
    if (rc == 1)
        return sb__cluster_fail(
            err, errlen,
            "the %s account cannot reach %s: %s is not traversable by it (e.g. chmod o+x %s, "
            "or use a data directory elsewhere)",
            ra->name, target, r.denied, r.denied);
    if (rc == 2)
        return sb__cluster_fail(err, errlen, "the %s account cannot write in %s", ra->name, target);
    if (rc != 0)
        return sb__cluster_fail(err, errlen, "cannot check access for the %s account: %s", ra->name,
                                r.denied);
    return 0;
}
