/* switchboard_test: `switchboard serve` with a static, test-only authorizer, for end-to-end tests
 * of workspace-scoped endpoints (SSE) until the real auth subsystem lands.  This is a test
 * facility: it is built from tests/support, never part of the switchboard binary, which refuses
 * every workspace request until a real authorizer is installed (src/http/auth_hook.h).
 *
 *   SBTEST_AUTH_TOKENS="TOKEN:WORKSPACE_UUID,TOKEN:*,..." switchboard_test [serve options]
 *
 * A token listed with a workspace is a member of it; with * a member of every workspace; any other
 * token is unauthenticated (401); a known token asking for a workspace it lacks is forbidden (403).
 * Answers come back on a later loop turn, as a real (database-backed) authorizer's would. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "core/config.h"
#include "core/loop.h"
#include "core/uuid.h"
#include "http/auth_hook.h"
#include "http/serve.h"

#define MAX_GRANTS 256

typedef struct {
    char *token;
    bool any;
    sb_uuid_t ws;
} grant_t;

static grant_t grants[MAX_GRANTS];
static int ngrants;

typedef struct {
    uv_timer_t timer;
    sb_http_auth_check_t *check;
    sb_http_auth_result_t result;
} answer_t;

static void on_answer_closed(uv_handle_t *h)
{
    free(h->data);
}

static void on_answer(uv_timer_t *t)
{
    answer_t *a = t->data;
    sb_http_auth_finish(a->check, a->result, NULL);
    uv_close((uv_handle_t *)&a->timer, on_answer_closed);
}

static void check(sb_http_auth_check_t *c, const char *token, const sb_uuid_t *ws, void *data)
{
    bool known = false, member = false;
    for (int i = 0; i < ngrants; i++) {
        if (strcmp(grants[i].token, token) != 0)
            continue;
        known = true;
        if (grants[i].any || memcmp(grants[i].ws.b, ws->b, 16) == 0)
            member = true;
    }
    sb_http_auth_result_t r = member  ? SB_HTTP_AUTH_OK
                              : known ? SB_HTTP_AUTH_FORBIDDEN
                                      : SB_HTTP_AUTH_UNAUTHENTICATED;
    answer_t *a = malloc(sizeof(*a));
    if (a == NULL) {
        sb_http_auth_finish(c, SB_HTTP_AUTH_UNAVAILABLE, NULL);
        return;
    }
    a->check = c;
    a->result = r;
    uv_timer_init(&sb_loop_current()->uv, &a->timer);
    a->timer.data = a;
    uv_timer_start(&a->timer, on_answer, 0, 0);
}

static int parse_grants(const char *spec)
{
    char *s = strdup(spec);
    for (char *item = strtok(s, ","); item != NULL; item = strtok(NULL, ",")) {
        char *colon = strrchr(item, ':');
        if (colon == NULL || colon == item || ngrants == MAX_GRANTS)
            return -1;
        *colon = '\0';
        grant_t *g = &grants[ngrants++];
        g->token = item;
        const char *w = colon + 1;
        if (strcmp(w, "*") == 0)
            g->any = true;
        else if (sb_uuid_parse(w, strlen(w), &g->ws) != 0)
            return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *spec = getenv("SBTEST_AUTH_TOKENS");
    if (spec == NULL || parse_grants(spec) != 0) {
        fprintf(stderr, "switchboard_test: set SBTEST_AUTH_TOKENS=TOKEN:WORKSPACE_UUID|*,...\n");
        return 2;
    }
    sb_http_authorizer_t a = {check, NULL};
    sb_http_set_authorizer(&a);
    /* The same start-up as `switchboard serve [options]`. */
    argv[0] = "serve";
    sb_config_t cfg;
    char err[512];
    int n = argc;
    if (sb_config_load(&cfg, &n, argv, err, sizeof(err)) != 0) {
        fprintf(stderr, "switchboard_test: %s\n", err);
        sb_config_free(&cfg);
        return 2;
    }
    int rc = sb_cmd_serve(&cfg, n, argv);
    sb_config_free(&cfg);
    return rc;
}
