#include "core/config.h"
#include "core/error.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char sb_config_flags_help[] =
    "  --database-url URL   libpq connection string (SWITCHBOARD_DATABASE_URL; default: embedded cluster)\n"
    "  --data-dir DIR       state directory (SWITCHBOARD_DATA_DIR; default ./var)\n"
    "  --listen HOST:PORT   listen address (SWITCHBOARD_LISTEN; default 127.0.0.1:8080)\n"
    "  --threads N          event-loop threads (SWITCHBOARD_THREADS; default: CPUs)\n"
    "  --public-url URL     URL Twilio reaches us at (SWITCHBOARD_PUBLIC_URL)\n"
    "  --tls-cert FILE      serve HTTPS with this certificate (SWITCHBOARD_TLS_CERT)\n"
    "  --tls-key FILE       its private key (SWITCHBOARD_TLS_KEY)\n"
    "  --log LEVEL          error, warn, info or debug (SWITCHBOARD_LOG; default info)\n";

static char *dup_or_null(const char *s)
{
    return s && *s ? strdup(s) : NULL;
}

static void set_str(char **slot, const char *value)
{
    free(*slot);
    *slot = dup_or_null(value);
}

static int parse_listen(sb_config_t *cfg, const char *v, char *err, size_t errlen)
{
    const char *colon = strrchr(v, ':');
    if (colon == NULL || colon == v) {
        snprintf(err, errlen, "invalid listen address '%s': expected host:port", v);
        return SB_EINVAL;
    }
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || port < 0 || port > 65535 || end == colon + 1) {
        snprintf(err, errlen, "invalid listen port in '%s'", v);
        return SB_EINVAL;
    }
    free(cfg->listen_host);
    cfg->listen_host = strndup(v, (size_t)(colon - v));
    cfg->listen_port = (int)port;
    return 0;
}

static int parse_threads(sb_config_t *cfg, const char *v, char *err, size_t errlen)
{
    char *end;
    long n = strtol(v, &end, 10);
    if (*end != '\0' || end == v || n < 1 || n > 256) {
        snprintf(err, errlen, "invalid thread count '%s': expected 1..256", v);
        return SB_EINVAL;
    }
    cfg->threads = (int)n;
    return 0;
}

static int parse_positive(int *slot, const char *name, const char *v, char *err, size_t errlen)
{
    char *end;
    long n = strtol(v, &end, 10);
    if (*end != '\0' || end == v || n < 1 || n > 86400 * 365) {
        snprintf(err, errlen, "invalid %s '%s'", name, v);
        return SB_EINVAL;
    }
    *slot = (int)n;
    return 0;
}

/* Applies one setting by its flag name; shared by the environment and argv paths. */
static int apply(sb_config_t *cfg, const char *name, const char *v, char *err, size_t errlen)
{
    if (strcmp(name, "database-url") == 0)
        set_str(&cfg->database_url, v);
    else if (strcmp(name, "data-dir") == 0)
        set_str(&cfg->data_dir, v);
    else if (strcmp(name, "listen") == 0)
        return parse_listen(cfg, v, err, errlen);
    else if (strcmp(name, "threads") == 0)
        return parse_threads(cfg, v, err, errlen);
    else if (strcmp(name, "public-url") == 0)
        set_str(&cfg->public_url, v);
    else if (strcmp(name, "master-key") == 0)
        set_str(&cfg->master_key, v);
    else if (strcmp(name, "tls-cert") == 0)
        set_str(&cfg->tls_cert, v);
    else if (strcmp(name, "tls-key") == 0)
        set_str(&cfg->tls_key, v);
    else if (strcmp(name, "twilio-api-base") == 0)
        set_str(&cfg->twilio_api_base, v);
    else if (strcmp(name, "resend-api-base") == 0)
        set_str(&cfg->resend_api_base, v);
    else if (strcmp(name, "projections-dir") == 0)
        set_str(&cfg->projections_dir, v);
    else if (strcmp(name, "actor-idle-seconds") == 0)
        return parse_positive(&cfg->actor_idle_seconds, name, v, err, errlen);
    else if (strcmp(name, "log") == 0) {
        if (sb_log_parse_level(v, &cfg->log_level) != 0) {
            snprintf(err, errlen, "invalid log level '%s': expected error, warn, info or debug", v);
            return SB_EINVAL;
        }
    } else
        return 1; /* not ours */
    return 0;
}

static const struct {
    const char *env;
    const char *flag;
} env_map[] = {
    {"SWITCHBOARD_DATABASE_URL", "database-url"},
    {"SWITCHBOARD_DATA_DIR", "data-dir"},
    {"SWITCHBOARD_LISTEN", "listen"},
    {"SWITCHBOARD_THREADS", "threads"},
    {"SWITCHBOARD_PUBLIC_URL", "public-url"},
    {"SWITCHBOARD_MASTER_KEY", "master-key"},
    {"SWITCHBOARD_TLS_CERT", "tls-cert"},
    {"SWITCHBOARD_TLS_KEY", "tls-key"},
    {"SWITCHBOARD_TWILIO_API_BASE", "twilio-api-base"},
    {"SWITCHBOARD_RESEND_API_BASE", "resend-api-base"},
    {"SWITCHBOARD_PROJECTIONS_DIR", "projections-dir"},
    {"SWITCHBOARD_ACTOR_IDLE_SECONDS", "actor-idle-seconds"},
    {"SWITCHBOARD_LOG", "log"},
};

int sb_config_load(sb_config_t *cfg, int *argc, char **argv, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->listen_host = strdup("127.0.0.1");
    cfg->listen_port = 8080;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    cfg->threads = cpus > 0 ? (int)cpus : 1;
    cfg->log_level = SB_LOG_INFO;
    cfg->actor_idle_seconds = 300;
    cfg->data_dir = strdup("var");
    cfg->public_url = strdup("http://127.0.0.1:8080");
    cfg->twilio_api_base = strdup("https://api.twilio.com");
    cfg->resend_api_base = strdup("https://api.resend.com");
    cfg->projections_dir = strdup(SB_SOURCE_DIR "/projections");

    for (size_t i = 0; i < sizeof(env_map) / sizeof(env_map[0]); i++) {
        const char *v = getenv(env_map[i].env);
        if (v != NULL && *v != '\0') {
            int r = apply(cfg, env_map[i].flag, v, err, errlen);
            if (r < 0)
                return r;
        }
    }

    int out = 1;
    for (int i = 1; i < *argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            argv[out++] = argv[i];
            continue;
        }
        char name[64];
        const char *value = NULL;
        const char *eq = strchr(a + 2, '=');
        size_t nlen = eq ? (size_t)(eq - (a + 2)) : strlen(a + 2);
        if (nlen >= sizeof(name)) {
            argv[out++] = argv[i];
            continue;
        }
        memcpy(name, a + 2, nlen);
        name[nlen] = '\0';
        static const char *const ours[] = {
            "database-url",    "data-dir",           "listen",  "threads",         "public-url",
            "master-key",      "tls-cert",           "tls-key", "twilio-api-base", "resend-api-base",
            "projections-dir", "actor-idle-seconds", "log"};
        int known = 0;
        for (size_t k = 0; k < sizeof(ours) / sizeof(ours[0]); k++)
            if (strcmp(name, ours[k]) == 0)
                known = 1;
        if (!known) {
            argv[out++] = argv[i];
            continue;
        }
        if (eq != NULL) {
            value = eq + 1;
        } else {
            if (i + 1 >= *argc) {
                snprintf(err, errlen, "option --%s needs a value", name);
                return SB_EINVAL;
            }
            value = argv[++i];
        }
        int r = apply(cfg, name, value, err, errlen);
        if (r < 0)
            return r;
    }
    argv[out] = NULL;
    *argc = out;

    if (cfg->data_dir[0] != '/') {
        char cwd[PATH_MAX];
        if (getcwd(cwd, sizeof(cwd)) == NULL) {
            snprintf(err, errlen, "cannot read the current directory");
            return SB_EINVAL;
        }
        char *abs = NULL;
        if (asprintf(&abs, "%s/%s", cwd, cfg->data_dir) < 0)
            return SB_ENOMEM;
        free(cfg->data_dir);
        cfg->data_dir = abs;
    }
    size_t pl = strlen(cfg->public_url);
    while (pl > 0 && cfg->public_url[pl - 1] == '/')
        cfg->public_url[--pl] = '\0';
    if ((cfg->tls_cert == NULL) != (cfg->tls_key == NULL)) {
        snprintf(err, errlen, "SWITCHBOARD_TLS_CERT and SWITCHBOARD_TLS_KEY must be set together");
        return SB_EINVAL;
    }
    sb_log_set_level(cfg->log_level);
    return 0;
}

void sb_config_free(sb_config_t *cfg)
{
    free(cfg->database_url);
    free(cfg->data_dir);
    free(cfg->listen_host);
    free(cfg->public_url);
    free(cfg->master_key);
    free(cfg->tls_cert);
    free(cfg->tls_key);
    free(cfg->twilio_api_base);
    free(cfg->resend_api_base);
    free(cfg->projections_dir);
    memset(cfg, 0, sizeof(*cfg));
}
