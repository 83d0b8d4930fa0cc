/* The embedded PostgreSQL cluster: <data_dir>/pg/{data,run,postgresql.log}.
 *
 * Everything here blocks and forks: it runs from main or a command-line tool before any loop or
 * thread exists.  PostgreSQL's own tools do the work (initdb, pg_ctl); this file picks the
 * binaries, the account they run as and the paths, and turns their failures into one line. */
#include "db/cluster.h"
#include "core/error.h"
#include "core/log.h"
#include "db/cluster_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PG_PORT 5432
#define PG_SUPERUSER "switchboard"
#define PG_DATABASE "switchboard"
/* The socket file inside the socket directory; its full path must fit sockaddr_un.sun_path (108
 * bytes with the terminating NUL). */
#define SOCKET_FILE "/.s.PGSQL.5432"
#define SUN_PATH_MAX 107
#define START_TIMEOUT_S "120"
#define READY_TIMEOUT_MS 60000
/* postgresql.log is rotated (one old generation kept) at start once it grows past this. */
#define LOG_ROTATE_BYTES (16L * 1024 * 1024)

typedef struct {
    char base[PATH_MAX]; /* data_dir, absolute, without trailing slashes */
    char pg[PATH_MAX];   /* <base>/pg, owned by the account the cluster runs as */
    char data[PATH_MAX]; /* <pg>/data: the PostgreSQL data directory */
    char init[PATH_MAX]; /* <pg>/data.initdb: initdb's target, renamed to data once complete */
    char sock[PATH_MAX]; /* the socket directory: <pg>/run, or /tmp/sb-<hash> when that is too long */
    char log[PATH_MAX];  /* <pg>/postgresql.log: the server's output */
    char lock[PATH_MAX]; /* <pg>/cluster.lock: serialises start and stop across processes */
    bool sock_in_tmp;
} paths_t;

/* FNV-1a: a stable name for the fallback socket directory of one data directory. */
static uint64_t fnv1a(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    return h;
}

static int paths_init(paths_t *p, const char *data_dir, char *err, size_t errlen)
{
    memset(p, 0, sizeof(*p));
    if (data_dir == NULL || *data_dir == '\0')
        return sb__cluster_fail(err, errlen, "no data directory configured");
    if (data_dir[0] == '/') {
        if (!sb__path_fmt(p->base, "%s", data_dir))
            return sb__cluster_fail(err, errlen, "data directory path too long");
    } else {
        char cwd[PATH_MAX];
        if (getcwd(cwd, sizeof(cwd)) == NULL)
            return sb__cluster_fail(err, errlen, "cannot read the current directory: %s", strerror(errno));
        if (!sb__path_fmt(p->base, "%s/%s", cwd, data_dir))
            return sb__cluster_fail(err, errlen, "data directory path too long");
    }
    size_t n = strlen(p->base);
    while (n > 1 && p->base[n - 1] == '/')
        p->base[--n] = '\0';
    const char *b = strcmp(p->base, "/") == 0 ? "" : p->base;
    if (!sb__path_fmt(p->pg, "%s/pg", b) || !sb__path_fmt(p->data, "%s/data", p->pg) ||
        !sb__path_fmt(p->init, "%s/data.initdb", p->pg) ||
        !sb__path_fmt(p->log, "%s/postgresql.log", p->pg) ||
        !sb__path_fmt(p->lock, "%s/cluster.lock", p->pg) || !sb__path_fmt(p->sock, "%s/run", p->pg))
        return sb__cluster_fail(err, errlen, "data directory path too long: %s", p->base);
    if (strlen(p->sock) + strlen(SOCKET_FILE) > SUN_PATH_MAX) {
        /* Too long for a Unix socket address: use a short private directory named after the data
         * directory, so every process computes the same one. */
        snprintf(p->sock, sizeof(p->sock), "/tmp/sb-%016llx", (unsigned long long)fnv1a(p->pg));
        p->sock_in_tmp = true;
    }
    return 0;
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* Reads a small file into buf (NUL-terminated); -errno on failure. */
static int read_small(const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, buf, len - 1);
    int e = errno;
    close(fd);
    if (n < 0)
        return -e;
    buf[n] = '\0';
    return 0;
}

/* The PostgreSQL major version a data directory was created by (data/PG_VERSION), 0 when it is not
 * initialised, or -errno when it cannot be read. */
static int data_version(const paths_t *p)
{
    char path[PATH_MAX], buf[32];
    if (!sb__path_fmt(path, "%s/PG_VERSION", p->data))
        return -ENAMETOOLONG;
    int r = read_small(path, buf, sizeof(buf));
    if (r == -ENOENT || r == -ENOTDIR)
        return 0;
    if (r < 0)
        return r;
    int v = atoi(buf);
    return v > 0 ? v : -EINVAL;
}

/* ---- postmaster.pid ------------------------------------------------------------------------- */

typedef struct {
    long pid;
    char sock[PATH_MAX]; /* line 5: the socket directory the server listens in */
    char state[16];      /* line 8: "starting", "ready", "stopping" */
} pidfile_t;

/* 0 and *pf filled, -ENOENT when there is none, other -errno when unreadable. */
static int pidfile_read(const paths_t *p, pidfile_t *pf)
{
    char path[PATH_MAX], buf[4096];
    memset(pf, 0, sizeof(*pf));
    if (!sb__path_fmt(path, "%s/postmaster.pid", p->data))
        return -ENAMETOOLONG;
    int r = read_small(path, buf, sizeof(buf));
    if (r < 0)
        return r;
    int line = 1;
    /* strtok_r would merge empty lines; walk them by hand so line numbers stay right. */
    for (char *s = buf; s != NULL && *s; line++) {
        char *nl = strchr(s, '\n');
        if (nl != NULL)
            *nl = '\0';
        if (line == 1)
            pf->pid = strtol(s, NULL, 10);
        else if (line == 5)
            snprintf(pf->sock, sizeof(pf->sock), "%s", s);
        else if (line == 8)
            snprintf(pf->state, sizeof(pf->state), "%.15s", s);
        s = nl != NULL ? nl + 1 : NULL;
    }
    char *sp = strchr(pf->state, ' ');
    if (sp != NULL)
        *sp = '\0';
    return pf->pid > 0 ? 0 : -EINVAL;
}

/* Is pid a live process?  A process that exited but was not yet reaped still answers kill(); it is
 * gone all the same (a postmaster's parent is init, and some inits reap slowly). */
static bool process_running(long pid)
{
    if (pid <= 0 || (kill((pid_t)pid, 0) != 0 && errno == ESRCH))
        return false;
    char path[64], stat[512];
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    if (read_small(path, stat, sizeof(stat)) == 0) {
        const char *paren = strrchr(stat, ')');
        if (paren != NULL && paren[1] == ' ' && paren[2] == 'Z')
            return false;
    }
    return true;
}

/* Is pid the postmaster of this data directory?  A postmaster.pid left by a crash may name a pid
 * that has since been reused by another process (common in containers, where pids restart from
 * 1): PostgreSQL itself would then refuse to start.  The postmaster's working directory is its data
 * directory, which tells the two apart; when it cannot be read we assume the server is ours. */
static bool postmaster_alive(const paths_t *p, long pid)
{
    if (!process_running(pid))
        return false;
    char link[64], cwd[PATH_MAX], real[PATH_MAX];
    snprintf(link, sizeof(link), "/proc/%ld/cwd", pid);
    ssize_t n = readlink(link, cwd, sizeof(cwd) - 1);
    if (n < 0)
        return errno != ENOENT;
    cwd[n] = '\0';
    if (realpath(p->data, real) == NULL)
        return true;
    return strcmp(cwd, real) == 0;
}

/* After a crash: removes postmaster.pid, and the socket's lock file if it names the same dead
 * postmaster (or no live process).  PostgreSQL would clear them itself unless the pid is a zombie
 * or was reused; the caller holds the cluster lock and knows this cluster's server is not running. */
static void remove_stale_locks(const paths_t *p, long stale_pid)
{
    char path[PATH_MAX], buf[64];
    if (sb__path_fmt(path, "%s/postmaster.pid", p->data)) {
        sb_log_warn("db", "removing a stale postmaster.pid pid=%ld", stale_pid);
        unlink(path);
    }
    if (sb__path_fmt(path, "%s%s.lock", p->sock, SOCKET_FILE) && read_small(path, buf, sizeof(buf)) == 0) {
        long pid = strtol(buf, NULL, 10);
        if (pid == stale_pid || !process_running(pid))
            unlink(path);
    }
}

/* ---- directories ---------------------------------------------------------------------------- */

/* mkdir -p: the directories above path get 0755 (less the umask), path itself mode. */
static int mkdir_p(const char *path, mode_t mode, char *err, size_t errlen)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s", path);
    for (char *s = tmp + 1;; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char c = *s;
        *s = '\0';
        if (mkdir(tmp, c == '\0' ? mode : 0755) != 0 && errno != EEXIST)
            return sb__cluster_fail(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
        if (!is_dir(tmp))
            return sb__cluster_fail(err, errlen, "%s is in the way: it is not a directory", tmp);
        *s = c;
        if (c == '\0')
            return 0;
    }
}

/* nftw passes no user data; these calls only run single-threaded, from main. */
static uid_t chown_uid;
static gid_t chown_gid;

static int chown_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)flag, (void)ftw;
    if ((st->st_uid != chown_uid || st->st_gid != chown_gid) && lchown(path, chown_uid, chown_gid) != 0)
        return -1;
    return 0;
}

static int chown_tree(const char *path, uid_t uid, gid_t gid)
{
    chown_uid = uid;
    chown_gid = gid;
    return nftw(path, chown_entry, 32, FTW_PHYS);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int remove_tree(const char *path)
{
    return nftw(path, remove_entry, 32, FTW_DEPTH | FTW_PHYS);
}

/* Makes a directory that only the server's account may use (mode 0700).  Under /tmp anyone can
 * make directories: one we did not create must belong to that account or to root. */
static int private_dir(const char *path, const sb__runas_t *ra, bool in_tmp, char *err, size_t errlen)
{
    bool created = mkdir(path, 0700) == 0;
    if (!created && errno != EEXIST)
        return sb__cluster_fail(err, errlen, "cannot create %s: %s", path, strerror(errno));
    struct stat st;
    if (lstat(path, &st) != 0)
        return sb__cluster_fail(err, errlen, "cannot read %s: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return sb__cluster_fail(err, errlen, "%s is in the way: it is not a directory", path);
    if (st.st_uid != ra->uid) {
        if (in_tmp && !created && st.st_uid != 0)
            return sb__cluster_fail(err, errlen, "%s belongs to another user (uid %u): remove it", path,
                                    (unsigned)st.st_uid);
        if (geteuid() != 0) {
            struct passwd *pw = getpwuid(st.st_uid);
            return sb__cluster_fail(err, errlen, "%s belongs to %s: run as that user or as root", path,
                                    pw != NULL ? pw->pw_name : "another user");
        }
        if (chown(path, ra->uid, ra->gid) != 0)
            return sb__cluster_fail(err, errlen, "cannot give %s to the %s account: %s", path, ra->name,
                                    strerror(errno));
    }
    if ((st.st_mode & 07777) != 0700 && chmod(path, 0700) != 0)
        return sb__cluster_fail(err, errlen, "cannot set the mode of %s: %s", path, strerror(errno));
    return 0;
}

/* Creates <data_dir> and <data_dir>/pg, owned by the server's account, and checks it can reach
 * them. */
static int prepare_dirs(const paths_t *p, const sb__runas_t *ra, char *err, size_t errlen)
{
    struct stat st;
    if (stat(p->base, &st) == 0 && !S_ISDIR(st.st_mode))
        return sb__cluster_fail(err, errlen, "data directory %s is not a directory", p->base);
    int r = mkdir_p(p->base, 0700, err, errlen);
    if (r != 0)
        return r;
    if (access(p->base, W_OK | X_OK) != 0) {
        int e = errno;
        struct passwd *pw = stat(p->base, &st) == 0 && st.st_uid != geteuid() ? getpwuid(st.st_uid) : NULL;
        if (pw != NULL)
            return sb__cluster_fail(err, errlen,
                                    "data directory %s belongs to %s: run as that user or as root", p->base,
                                    pw->pw_name);
        return sb__cluster_fail(err, errlen, "data directory %s is not writable: %s", p->base, strerror(e));
    }
    if (ra->switch_user && stat(p->base, &st) == 0 && st.st_uid == geteuid() && !(st.st_mode & S_IXOTH)) {
        /* Our own data directory: let the server's account pass through it (not list it). */
        if (chmod(p->base, (st.st_mode & 07777) | S_IXOTH) != 0)
            return sb__cluster_fail(err, errlen, "cannot set the mode of %s: %s", p->base, strerror(errno));
    }
    if (lstat(p->pg, &st) == 0 && !S_ISDIR(st.st_mode))
        return sb__cluster_fail(err, errlen, "%s is in the way: it is not a directory", p->pg);
    r = private_dir(p->pg, ra, false, err, errlen);
    if (r != 0)
        return r;
    if (ra->switch_user && is_dir(p->data) && stat(p->data, &st) == 0 && st.st_uid != ra->uid &&
        chown_tree(p->pg, ra->uid, ra->gid) != 0)
        return sb__cluster_fail(err, errlen, "cannot give %s to the %s account: %s", p->pg, ra->name,
                                strerror(errno));
    return sb__pg_check_reachable(ra, p->pg, err, errlen);
}

/* ---- configuration -------------------------------------------------------------------------- */

static bool fsync_disabled(void)
{
    const char *v = getenv("SWITCHBOARD_PG_FSYNC");
    return v != NULL && (strcmp(v, "off") == 0 || strcmp(v, "0") == 0 || strcmp(v, "false") == 0);
}

static void conf_quote(FILE *f, const char *s)
{
    fputc('\'', f);
    for (; *s; s++) {
        if (*s == '\'')
            fputc('\'', f);
        fputc(*s, f);
    }
    fputc('\'', f);
}

/* Writes <data>/switchboard.conf, included at the end of postgresql.conf.  Rewritten at every start
 * so the socket directory follows the data directory if it moves; ALTER SYSTEM still overrides
 * it (postgresql.auto.conf is read last). */
static int write_conf(const paths_t *p, const char *datadir, const sb__runas_t *ra, char *err, size_t errlen)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    if (!sb__path_fmt(path, "%s/switchboard.conf", datadir) ||
        !sb__path_fmt(tmp, "%s/switchboard.conf.tmp", datadir))
        return sb__cluster_fail(err, errlen, "data directory path too long");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return sb__cluster_fail(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
    if (ra->switch_user && fchown(fd, ra->uid, ra->gid) != 0) {
        close(fd);
        return sb__cluster_fail(err, errlen, "cannot give %s to the %s account: %s", tmp, ra->name,
                                strerror(errno));
    }
    FILE *f = fdopen(fd, "w");
    if (f == NULL) {
        close(fd);
        return sb__cluster_fail(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
    }
    fputs("# Written by switchboard at every start: change settings with ALTER SYSTEM instead.\n"
          "# Unix socket only, in a directory only the server's account (and root) can enter.\n"
          "listen_addresses = ''\n",
          f);
    fprintf(f, "port = %d\nunix_socket_directories = ", PG_PORT);
    conf_quote(f, p->sock);
    fputs("\nunix_socket_permissions = 0700\n"
          "# A small development server: room for several server processes' pools and parallel tests.\n"
          "max_connections = 200\n"
          "shared_buffers = 128MB\n"
          "effective_cache_size = 512MB\n"
          "work_mem = 8MB\n"
          "maintenance_work_mem = 64MB\n"
          "wal_buffers = 16MB\n"
          "max_wal_size = 1GB\n"
          "checkpoint_completion_target = 0.9\n"
          "random_page_cost = 1.1\n"
          "timezone = 'UTC'\n"
          "log_timezone = 'UTC'\n"
          "lc_messages = 'C'\n"
          "log_min_messages = warning\n"
          "log_line_prefix = '%m [%p] %q%u@%d '\n",
          f);
    if (fsync_disabled())
        fputs("# SWITCHBOARD_PG_FSYNC=off (tests): a crash of the machine may corrupt this cluster.\n"
              "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n",
              f);
    bool ok = fflush(f) == 0 && ferror(f) == 0;
    if (fclose(f) != 0)
        ok = false;
    if (!ok || rename(tmp, path) != 0)
        return sb__cluster_fail(err, errlen, "cannot write %s: %s", path, strerror(errno));
    return 0;
}

static int initdb(const paths_t *p, const sb__pgbin_t *bin, const sb__runas_t *ra, char *err, size_t errlen)
{
    /* A partial initdb (killed, disk full) must never look like a cluster: build it aside and
     * rename it into place once complete. */
    if (exists(p->init) && remove_tree(p->init) != 0)
        return sb__cluster_fail(err, errlen, "cannot remove the unfinished %s: %s", p->init, strerror(errno));
    if (exists(p->data)) {
        if (rmdir(p->data) != 0)
            return sb__cluster_fail(err, errlen, "%s exists but is not a postgresql cluster: move it away",
                                    p->data);
    }
    sb_log_info("db", "creating the embedded cluster dir=%s", p->data);
    char tool[PATH_MAX], out[4096];
    if (!sb__path_fmt(tool, "%s/initdb", bin->dir))
        return sb__cluster_fail(err, errlen, "binaries path too long");
    /* Trust on the local socket only: its directory is mode 0700, so only the server's account
     * and root can reach it.  No TCP at all (listen_addresses = ''). */
    char *argv[] = {tool,
                    "-D",
                    (char *)p->init,
                    "-U",
                    PG_SUPERUSER,
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--auth-local=trust",
                    "--auth-host=reject",
                    "--no-instructions",
                    fsync_disabled() ? "--no-sync" : NULL,
                    NULL};
    int rc = sb__pg_run(ra, argv, out, sizeof(out));
    if (rc != 0) {
        char line[512];
        sb__pg_pick_line(out, line, sizeof(line));
        remove_tree(p->init);
        return sb__cluster_fail(err, errlen, "initdb failed: %s", line);
    }
    char conf[PATH_MAX];
    if (!sb__path_fmt(conf, "%s/postgresql.conf", p->init))
        return sb__cluster_fail(err, errlen, "data directory path too long");
    FILE *f = fopen(conf, "a");
    if (f == NULL)
        return sb__cluster_fail(err, errlen, "cannot append to %s: %s", conf, strerror(errno));
    fputs("\n# Switchboard's settings (socket, tuning): see switchboard.conf.\n"
          "include_if_exists = 'switchboard.conf'\n",
          f);
    if (fclose(f) != 0)
        return sb__cluster_fail(err, errlen, "cannot append to %s: %s", conf, strerror(errno));
    if (rename(p->init, p->data) != 0)
        return sb__cluster_fail(err, errlen, "cannot rename %s to %s: %s", p->init, p->data, strerror(errno));
    return 0;
}

/* ---- connection strings --------------------------------------------------------------------- */

static void ci_append(char *buf, size_t len, const char *key, const char *value)
{
    size_t n = strlen(buf);
    int w = snprintf(buf + n, len - n, "%s%s='", n > 0 ? " " : "", key);
    if (w < 0 || (size_t)w >= len - n)
        return;
    n += (size_t)w;
    for (const char *s = value; *s && n + 3 < len; s++) {
        if (*s == '\'' || *s == '\\')
            buf[n++] = '\\';
        buf[n++] = *s;
    }
    if (n + 1 < len)
        buf[n++] = '\'';
    buf[n] = '\0';
}

static char *make_conninfo(const char *sock, const char *dbname)
{
    size_t len = 2 * strlen(sock) + 2 * strlen(dbname) + 96;
    char *buf = calloc(1, len);
    if (buf == NULL)
        return NULL;
    char port[16];
    snprintf(port, sizeof(port), "%d", PG_PORT);
    ci_append(buf, len, "host", sock);
    ci_append(buf, len, "port", port);
    ci_append(buf, len, "user", PG_SUPERUSER);
    ci_append(buf, len, "dbname", dbname);
    return buf;
}

/* The socket directory in use: the running server's (postmaster.pid records it), else computed. */
static const char *current_sock(const paths_t *p, pidfile_t *pf)
{
    if (pidfile_read(p, pf) == 0 && pf->sock[0] == '/' && postmaster_alive(p, pf->pid))
        return pf->sock;
    return p->sock;
}

char *sb_cluster_conninfo_db(const char *data_dir, const char *dbname)
{
    paths_t p;
    pidfile_t pf;
    char err[256];
    if (paths_init(&p, data_dir, err, sizeof(err)) != 0)
        return NULL;
    return make_conninfo(current_sock(&p, &pf), dbname);
}

char *sb_cluster_conninfo(const char *data_dir)
{
    return sb_cluster_conninfo_db(data_dir, PG_DATABASE);
}

char *sb_db_conninfo(const sb_config_t *cfg)
{
    if (cfg->database_url != NULL && cfg->database_url[0] != '\0')
        return strdup(cfg->database_url);
    return sb_cluster_conninfo(cfg->data_dir);
}

/* ---- start, stop, status -------------------------------------------------------------------- */

static int lock_cluster(const paths_t *p, const sb__runas_t *ra, char *err, size_t errlen)
{
    int fd = open(p->lock, O_RDONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return sb__cluster_fail(err, errlen, "cannot open %s: %s", p->lock, strerror(errno));
    if (ra->switch_user && fchown(fd, ra->uid, ra->gid) != 0) {
        /* harmless: the lock works whoever owns the file */
    }
    while (flock(fd, LOCK_EX) != 0) {
        if (errno != EINTR) {
            int e = errno;
            close(fd);
            return sb__cluster_fail(err, errlen, "cannot lock %s: %s", p->lock, strerror(e));
        }
    }
    return fd;
}

static void unlock_cluster(int fd)
{
    if (fd >= 0)
        close(fd); /* releases the flock */
}

/* Waits for the server to accept connections, then creates the switchboard database if absent. */
static int ensure_database(const char *sock, char *err, size_t errlen)
{
    char *ci = make_conninfo(sock, "postgres");
    if (ci == NULL)
        return sb__cluster_fail(err, errlen, "out of memory");
    int rc = 0;
    struct timespec step = {0, 50 * 1000 * 1000};
    for (int waited = 0; PQping(ci) != PQPING_OK; waited += 50) {
        if (waited >= READY_TIMEOUT_MS) {
            rc = sb__cluster_fail(
                err, errlen, "the embedded cluster is running but not accepting connections on %s", sock);
            goto out_free;
        }
        nanosleep(&step, NULL);
    }
    PGconn *conn = PQconnectdb(ci);
    if (PQstatus(conn) != CONNECTION_OK) {
        char *nl = strchr(PQerrorMessage(conn), '\n');
        if (nl != NULL)
            *nl = '\0';
        rc =
            sb__cluster_fail(err, errlen, "cannot connect to the embedded cluster: %s", PQerrorMessage(conn));
        goto out_finish;
    }
    PGresult *res = PQexec(conn, "SELECT 1 FROM pg_database WHERE datname = '" PG_DATABASE "'");
    bool present = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
    PQclear(res);
    if (!present) {
        res = PQexec(conn, "CREATE DATABASE " PG_DATABASE);
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        /* 42P04: another process created it first. */
        if (PQresultStatus(res) != PGRES_COMMAND_OK && (state == NULL || strcmp(state, "42P04") != 0)) {
            const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
            rc = sb__cluster_fail(err, errlen, "cannot create the " PG_DATABASE " database: %s",
                                  msg ? msg : PQerrorMessage(conn));
        } else {
            sb_log_info("db", "created database " PG_DATABASE);
        }
        PQclear(res);
    }
out_finish:
    PQfinish(conn);
out_free:
    free(ci);
    return rc;
}

static off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : 0;
}

/* The first error the server logged since offset: why it did not start. */
static void log_reason(const char *log, off_t from, char *line, size_t len)
{
    char buf[8192];
    int fd = open(log, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(line, len, "no server log (%s)", strerror(errno));
        return;
    }
    off_t size = lseek(fd, 0, SEEK_END);
    off_t at = size - from > (off_t)sizeof(buf) - 1 ? size - (off_t)sizeof(buf) + 1 : from;
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, at);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    sb__pg_pick_line(buf, line, len);
}

/* glibc malloc settings for every process of the cluster (pg_ctl passes its environment on to the
 * server, and the server to its backends).  By default glibc hands a large free block back to the
 * kernel as soon as it is freed (above a threshold that grows only to the size of the last large
 * block freed), so a backend that allocates a few tens of MB for each statement and frees them at
 * its end — the read models' batches: each batch's arrays, and the copies planning makes of them —
 * maps, faults in and unmaps those pages again for every batch, a page fault per 4 kB.  Here:
 * blocks under 32 MB come from the heap, up to 64 MB of free heap is kept, and the heap grows 16 MB
 * at a time.  What a backend keeps is at most what it used at its peak, plus those 64 MB, and goes
 * when it exits.  Defaults only: a MALLOC_* variable already in our environment is passed on as
 * it is (docs/operations.md). */
static const char *const pg_malloc_env[] = {
    "MALLOC_MMAP_THRESHOLD_=33554432", "MALLOC_TRIM_THRESHOLD_=67108864", "MALLOC_TOP_PAD_=16777216", NULL};

static int pg_ctl_start(const paths_t *p, const sb__pgbin_t *bin, const sb__runas_t *ra, char *err,
                        size_t errlen)
{
    if (file_size(p->log) > LOG_ROTATE_BYTES) {
        char old[PATH_MAX];
        if (sb__path_fmt(old, "%s.1", p->log))
            rename(p->log, old);
    }
    off_t from = file_size(p->log);
    char tool[PATH_MAX], out[4096];
    if (!sb__path_fmt(tool, "%s/pg_ctl", bin->dir))
        return sb__cluster_fail(err, errlen, "binaries path too long");
    char *argv[] = {tool, "start",         "-w", "-t",           START_TIMEOUT_S,
                    "-D", (char *)p->data, "-l", (char *)p->log, NULL};
    int rc = sb__pg_run_env(ra, argv, pg_malloc_env, out, sizeof(out));
    if (rc != 0) {
        char line[512];
        if (strstr(out, "Examine the log output") != NULL || strstr(out, "could not start server") != NULL)
            log_reason(p->log, from, line, sizeof(line));
        else
            sb__pg_pick_line(out, line, sizeof(line));
        return sb__cluster_fail(err, errlen, "postgresql did not start: %s (log: %s)", line, p->log);
    }
    return 0;
}

int sb_cluster_start(const char *data_dir, bool *started, char *err, size_t errlen)
{
    paths_t p;
    sb__runas_t ra;
    sb__pgbin_t bin;
    pidfile_t pf;
    *started = false;
    int rc = paths_init(&p, data_dir, err, errlen);
    if (rc != 0)
        return rc;
    rc = sb__pg_runas_resolve(p.data, &ra, err, errlen);
    if (rc != 0)
        return rc;
    rc = prepare_dirs(&p, &ra, err, errlen);
    if (rc != 0)
        return rc;
    int lock = lock_cluster(&p, &ra, err, errlen);
    if (lock < 0)
        return lock;

    int version = data_version(&p);
    if (version < 0) {
        rc = sb__cluster_fail(err, errlen, "cannot read %s/PG_VERSION: %s", p.data, strerror(-version));
        goto out_unlock;
    }
    int r = pidfile_read(&p, &pf);
    if (r == 0 && postmaster_alive(&p, pf.pid)) {
        sb_log_debug("db", "embedded cluster already running pid=%ld", pf.pid);
        rc = ensure_database(pf.sock[0] == '/' ? pf.sock : p.sock, err, errlen);
        goto out_unlock;
    }
    if (r == 0 || r == -EINVAL) /* left by a crash */
        remove_stale_locks(&p, pf.pid);
    rc = sb__pg_find_binaries(version, &bin, err, errlen);
    if (rc != 0)
        goto out_unlock;
    if (version == 0) {
        rc = initdb(&p, &bin, &ra, err, errlen);
        if (rc != 0)
            goto out_unlock;
    }
    rc = private_dir(p.sock, &ra, p.sock_in_tmp, err, errlen);
    if (rc == 0)
        rc = write_conf(&p, p.data, &ra, err, errlen);
    if (rc == 0)
        rc = pg_ctl_start(&p, &bin, &ra, err, errlen);
    if (rc != 0)
        goto out_unlock;
    *started = true;
    sb_log_info("db", "embedded cluster started socket=%s", p.sock);
    rc = ensure_database(p.sock, err, errlen);
out_unlock:
    unlock_cluster(lock);
    return rc;
}

int sb_cluster_stop(const char *data_dir, char *err, size_t errlen)
{
    paths_t p;
    sb__runas_t ra;
    sb__pgbin_t bin;
    pidfile_t pf;
    int rc = paths_init(&p, data_dir, err, errlen);
    if (rc != 0)
        return rc;
    if (!is_dir(p.pg))
        return 0;
    rc = sb__pg_runas_resolve(p.data, &ra, err, errlen);
    if (rc != 0)
        return rc;
    int lock = lock_cluster(&p, &ra, err, errlen);
    if (lock < 0)
        return lock;
    int r = pidfile_read(&p, &pf);
    if (r == -EACCES) {
        rc = sb__cluster_fail(
            err, errlen, "cannot read %s: permission denied (run as the cluster's owner or root)", p.data);
        goto out_unlock;
    }
    if (r != 0 || !postmaster_alive(&p, pf.pid))
        goto out_unlock;
    int version = data_version(&p);
    rc = sb__pg_find_binaries(version > 0 ? version : 0, &bin, err, errlen);
    if (rc != 0)
        goto out_unlock;
    char tool[PATH_MAX], out[4096];
    if (!sb__path_fmt(tool, "%s/pg_ctl", bin.dir)) {
        rc = sb__cluster_fail(err, errlen, "binaries path too long");
        goto out_unlock;
    }
    char *argv[] = {tool, "stop", "-w", "-t", START_TIMEOUT_S, "-m", "fast", "-D", p.data, NULL};
    int status = sb__pg_run(&ra, argv, out, sizeof(out));
    if (status != 0) {
        char line[512];
        sb__pg_pick_line(out, line, sizeof(line));
        rc = sb__cluster_fail(err, errlen, "cannot stop the embedded cluster: %s", line);
        goto out_unlock;
    }
    sb_log_info("db", "embedded cluster stopped");
    if (p.sock_in_tmp)
        rmdir(p.sock); /* empty once the server removed its socket; harmless if not */
out_unlock:
    unlock_cluster(lock);
    return rc;
}

int sb_cluster_status(const char *data_dir, char *out, size_t outlen)
{
    paths_t p;
    pidfile_t pf;
    int rc = paths_init(&p, data_dir, out, outlen);
    if (rc != 0)
        return rc;
    struct stat st;
    if (stat(p.base, &st) == 0 && !S_ISDIR(st.st_mode))
        return sb__cluster_fail(out, outlen, "data directory %s is not a directory", p.base);
    if (lstat(p.pg, &st) == 0 && !S_ISDIR(st.st_mode))
        return sb__cluster_fail(out, outlen, "%s is in the way: it is not a directory", p.pg);
    int version = data_version(&p);
    if (version == -EACCES)
        return sb__cluster_fail(
            out, outlen, "cannot read %s: permission denied (run as the cluster's owner or root)", p.data);
    if (version < 0)
        return sb__cluster_fail(out, outlen, "cannot read %s/PG_VERSION: %s", p.data, strerror(-version));
    if (version == 0) {
        snprintf(out, outlen, "not initialised");
        return 0;
    }
    if (pidfile_read(&p, &pf) != 0 || !postmaster_alive(&p, pf.pid)) {
        snprintf(out, outlen, "stopped");
        return 0;
    }
    snprintf(out, outlen, "running pid=%ld socket=%s%s%s", pf.pid, pf.sock[0] ? pf.sock : p.sock,
             pf.state[0] && strcmp(pf.state, "ready") != 0 ? " state=" : "",
             pf.state[0] && strcmp(pf.state, "ready") != 0 ? pf.state : "");
    return 1;
}
