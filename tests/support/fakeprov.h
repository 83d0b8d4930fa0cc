/* The fake Twilio/Resend server (tests/fake_provider/server.mjs) for C tests: started with node on
 * a free loopback port, driven through its admin API (what it recorded, accounts, faults), with a
 * standalone loop and an HTTP client (providers/http_client.h) to talk to it.
 *
 * Everything runs on the calling thread: a test drives the loop with sbtest_run_until until the
 * callback it waits for has fired.  One fake at a time per process. */
#ifndef SB_TESTS_FAKEPROV_H
#define SB_TESTS_FAKEPROV_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "core/buf.h"
#include "core/loop.h"
#include "providers/http_client.h"

typedef struct {
    sb_loop_t loop; /* standalone, on this thread */
    sb_http_client_t *client;
    char url[128]; /* the fake's base URL, "http://127.0.0.1:<port>" */
    pid_t pid;
} sbtest_fake_t;

/* Sets up the loop and the client and starts the fake; false (with a message on stderr) when any
 * of it fails, after which sbtest_fake_stop is still to be called. */
bool sbtest_fake_start(sbtest_fake_t *f);
/* Closes the loop and stops the fake. */
void sbtest_fake_stop(sbtest_fake_t *f);

/* Runs f's loop until *done. */
void sbtest_run_until(sbtest_fake_t *f, const bool *done);

/* What an sb_http_request callback saw (sbtest_on_http fills it; data = the result). */
typedef struct {
    bool done;
    int error;
    long status;
    int attempts;
    bool sent;
    int64_t retry_after_ms;
    char *body;
    json_t *json; /* the body parsed, when it is JSON */
    uint64_t at;  /* the loop's time when the callback fired */
} sbtest_http_result_t;

void sbtest_on_http(const sb_http_response_t *r, void *data);
void sbtest_http_result_free(sbtest_http_result_t *r);

/* A call to the fake's admin API, waited for (the loop runs until it answers): its JSON answer
 * (the caller's reference) or NULL, with a failed check. */
json_t *sbtest_fake_admin(sbtest_fake_t *f, const char *method, const char *path, const char *json_body);
/* The requests the fake recorded on path (a new reference to the array). */
json_t *sbtest_fake_recorded(sbtest_fake_t *f, const char *path);
/* Injects a fault (the admin API's JSON spec). */
void sbtest_fake_fault(sbtest_fake_t *f, const char *spec);
/* Forgets every account, request, fault. */
void sbtest_fake_reset(sbtest_fake_t *f);
/* A registered account with n numbers; fills sid and token. */
void sbtest_fake_account(sbtest_fake_t *f, int numbers, char sid[64], char token[64]);
/* The form fields of a recorded request, as "k=v" lines appended to out. */
void sbtest_fake_form_lines(json_t *rec, sb_buf_t *out);

#endif
