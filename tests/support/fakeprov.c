/* See fakeprov.h. */
#include "fakeprov.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sbtest.h"

static sbtest_fake_t *current; /* for the time sbtest_on_http records */

static bool spawn(sbtest_fake_t *f)
{
    int out[2], in[2];
    if (pipe(out) != 0 || pipe(in) != 0)
        return false;
    f->pid = fork();
    if (f->pid == 0) {
        dup2(out[1], 1);
        dup2(in[0], 0);
        close(out[0]);
        close(in[1]);
        execlp("node", "node", SB_SOURCE_DIR "/tests/fake_provider/server.mjs", "--port", "0", (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    close(in[0]);
    /* in[1] stays open for our lifetime: the fake exits when it closes (when we exit). */
    FILE *fp = fdopen(out[0], "r");
    char line[256];
    if (fp == NULL || fgets(line, sizeof line, fp) == NULL) {
        fprintf(stderr, "fake provider did not start (is node installed?)\n");
        return false;
    }
    json_error_t err;
    json_t *j = json_loads(line, 0, &err);
    const char *url = json_string_value(json_object_get(j, "url"));
    bool ok = url != NULL && strlen(url) < sizeof f->url;
    if (ok)
        strcpy(f->url, url);
    json_decref(j);
    return ok;
}

bool sbtest_fake_start(sbtest_fake_t *f)
{
    memset(f, 0, sizeof(*f));
    f->pid = -1;
    if (sb_loop_init_standalone(&f->loop) != 0) {
        fprintf(stderr, "no loop\n");
        return false;
    }
    current = f;
    f->client = sb_http_client_get(&f->loop);
    return f->client != NULL && spawn(f);
}

void sbtest_fake_stop(sbtest_fake_t *f)
{
    sb_loop_close_standalone(&f->loop);
    if (f->pid > 0) {
        kill(f->pid, SIGTERM);
        waitpid(f->pid, NULL, 0);
    }
    current = NULL;
}

void sbtest_run_until(sbtest_fake_t *f, const bool *done)
{
    while (!*done)
        uv_run(&f->loop.uv, UV_RUN_ONCE);
}

void sbtest_on_http(const sb_http_response_t *r, void *data)
{
    sbtest_http_result_t *res = data;
    res->done = true;
    res->error = r->error;
    res->status = r->status;
    res->attempts = r->attempts;
    res->sent = r->sent;
    res->retry_after_ms = r->retry_after_ms;
    res->body = strdup(r->body);
    json_error_t err;
    res->json = r->body_len ? json_loadb(r->body, r->body_len, 0, &err) : NULL;
    res->at = current != NULL ? uv_now(&current->loop.uv) : 0;
}

void sbtest_http_result_free(sbtest_http_result_t *r)
{
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof(*r));
}

json_t *sbtest_fake_admin(sbtest_fake_t *f, const char *method, const char *path, const char *json_body)
{
    char url[1024];
    snprintf(url, sizeof url, "%s%s", f->url, path);
    static const char *const headers[] = {"Content-Type: application/json", NULL};
    sb_http_request_t req = {.method = method,
                             .url = url,
                             .headers = headers,
                             .body = json_body,
                             .body_len = json_body ? strlen(json_body) : 0};
    sbtest_http_result_t r = {0};
    if (!CHECK_EQ_INT(sb_http_request(f->client, &req, sbtest_on_http, &r, NULL), 0))
        return NULL;
    sbtest_run_until(f, &r.done);
    CHECK_EQ_INT(r.error, 0);
    json_t *j = json_incref(r.json);
    sbtest_http_result_free(&r);
    return j;
}

json_t *sbtest_fake_recorded(sbtest_fake_t *f, const char *path)
{
    char p[256];
    snprintf(p, sizeof p, "/__admin/requests?path=%s", path);
    json_t *j = sbtest_fake_admin(f, "GET", p, NULL);
    json_t *list = json_incref(json_object_get(j, "requests"));
    json_decref(j);
    return list;
}

void sbtest_fake_fault(sbtest_fake_t *f, const char *spec)
{
    json_decref(sbtest_fake_admin(f, "POST", "/__admin/faults", spec));
}

void sbtest_fake_reset(sbtest_fake_t *f)
{
    json_decref(sbtest_fake_admin(f, "POST", "/__admin/reset", NULL));
}

void sbtest_fake_account(sbtest_fake_t *f, int numbers, char sid[64], char token[64])
{
    char body[64];
    snprintf(body, sizeof body, "{\"numbers\": %d}", numbers);
    json_t *a = sbtest_fake_admin(f, "POST", "/__admin/accounts", body);
    snprintf(sid, 64, "%s", json_string_value(json_object_get(a, "sid")));
    snprintf(token, 64, "%s", json_string_value(json_object_get(a, "token")));
    json_decref(a);
}

void sbtest_fake_form_lines(json_t *rec, sb_buf_t *out)
{
    size_t i;
    json_t *pair;
    json_array_foreach(json_object_get(rec, "form"), i, pair)
    {
        sb_buf_printf(out, "%s=%s\n", json_string_value(json_array_get(pair, 0)),
                      json_string_value(json_array_get(pair, 1)));
    }
}
