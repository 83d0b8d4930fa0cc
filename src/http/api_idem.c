/* Idempotency-Key (http/api.h, sb_api_idempotent).
 *
 * Keys live in api_idempotency (schema/003_api_auth.sql), per user, with a fingerprint of the
 * request (SHA-256 of method, path and body) and, once answered, the response (status, the headers
 * a client relies on, body).  A key is claimed by inserting its row before the command runs, so two
 * concurrent requests with one key cannot both run: the second sees the row in flight (409).  A
 * row left in flight by a crash, or by a client that disconnected before its command finished, is
 * taken over after a minute; the retry then runs again, and since the ids a call creates derive from
 * the key (sb_api_new_id), the actor sees a repeat and stores nothing twice.
 *
 * Only success is remembered: an error stored nothing, so its key is released and a retry runs
 * again.  Rows older than the TTL (24 h) are purged a few at a time by later requests. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "core/uuid.h"
#include "http/api_int.h"
#include "http/response.h"

#define MAX_KEY 255
#define STALE_SECONDS "60"

/* A fixed namespace for ids derived from idempotency keys. */
static const sb_uuid_t idem_namespace = {
    {0x3c, 0x71, 0x0e, 0x5d, 0x92, 0x4b, 0x4f, 0x1a, 0xb6, 0x27, 0x58, 0xe0, 0x1d, 0xc4, 0x93, 0x6f}};

struct sb__api_idem_s {
    char key[MAX_KEY + 1];
    char fp_hex[65];
    json_t *headers; /* recorded for a replay */
    bool owned;      /* the row is ours (in flight) */
};

typedef struct {
    sb_pg_req_t req;
    sb_api_call_t *c;
    const char *values[6];
    char ttl[24];
    char status[8];
    char *headers;
    void (*deliver)(sb_api_call_t *c);
} idem_op_t;

void sb__api_idem_free(struct sb__api_idem_s *idem)
{
    if (idem == NULL)
        return;
    json_decref(idem->headers);
    free(idem);
}

void sb__api_idem_header(sb_api_call_t *c, const char *name, const char *value)
{
    if (c->_idem->headers == NULL)
        c->_idem->headers = json_object();
    json_object_set_new(c->_idem->headers, name, json_string(value));
}

bool sb_api_has_idempotency_key(const sb_api_call_t *c)
{
    return c->_idem != NULL;
}

void sb_api_new_id(const sb_api_call_t *c, const char *purpose, char out[SB_UUID_STRLEN + 1])
{
    sb_uuid_t u;
    if (c->_idem != NULL) {
        char name[SB_UUID_STRLEN + MAX_KEY + 80];
        int n = snprintf(name, sizeof(name), "%s\n%s\n%s", c->user_id, c->_idem->key, purpose);
        sb_uuid_from_name(&u, &idem_namespace, name, (size_t)n);
    } else {
        sb_uuid_v7(&u);
    }
    sb_uuid_format(&u, out);
}

/* ---- claiming the key ---------------------------------------------------------------------------- */

static const char claim_sql[] =
    "INSERT INTO api_idempotency AS i (user_id, key, fingerprint) VALUES ($1, $2, decode($3, 'hex')) "
    "ON CONFLICT (user_id, key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, status = NULL, headers = "
    "NULL, "
    "body = NULL, created_at = now(), completed_at = NULL "
    "WHERE (i.status IS NULL AND i.created_at < now() - interval '" STALE_SECONDS " seconds') "
    "OR i.created_at < now() - make_interval(secs => $4::int) RETURNING 1";
static const char lookup_sql[] =
    "SELECT status, headers::text, body, encode(fingerprint, 'hex') FROM api_idempotency "
    "WHERE user_id = $1 AND key = $2";
static const char purge_sql[] =
    "DELETE FROM api_idempotency WHERE ctid = ANY (ARRAY(SELECT ctid FROM api_idempotency "
    "WHERE created_at < now() - make_interval(secs => $1::int) LIMIT 100))";

static void replay(sb_api_call_t *c, PGresult *r)
{
    int status = atoi(PQgetvalue(r, 0, 0));
    if (!PQgetisnull(r, 0, 1)) {
        json_t *h = json_loads(PQgetvalue(r, 0, 1), 0, NULL);
        const char *k;
        json_t *v;
        json_object_foreach(h, k, v)
        {
            if (json_is_string(v))
                sb_http_add_header(c->req, k, json_string_value(v));
        }
        json_decref(h);
    }
    sb_http_add_header(c->req, "idempotent-replayed", "true");
    atomic_fetch_add_explicit(&c->api->idempotent_replays, 1, memory_order_relaxed);
    c->_resp.status = status;
    if (!PQgetisnull(r, 0, 2)) {
        c->_resp.len = (size_t)PQgetlength(r, 0, 2);
        c->_resp.body = malloc(c->_resp.len + 1);
        if (c->_resp.body == NULL) {
            sb_api_reply_errcode(c, SB_ENOMEM, NULL);
            return;
        }
        memcpy(c->_resp.body, PQgetvalue(r, 0, 2), c->_resp.len + 1);
    }
    sb__api_idem_free(c->_idem);
    c->_idem = NULL;
    /* Sent as stored: a replay is the first answer again, not a new decision. */
    sb_http_send_body(c->req, status, c->_resp.body ? "application/json" : NULL, c->_resp.body, c->_resp.len);
    sb__api_drop(c);
}

static void on_claimed(sb_api_call_t *c, int status, PGresult *const *results, int n)
{
    if (PQntuples(results[0]) == 1) {
        c->_idem->owned = true;
        sb_api_step_cb next = c->_next;
        c->_next = NULL;
        next(c);
        return;
    }
    PGresult *r = results[1];
    if (PQntuples(r) != 1) { /* deleted between the two statements: cannot happen in one transaction */
        sb_api_reply_error(c, 409, "idempotency_in_progress", "a request with this key is in progress",
                           "Idempotency-Key");
        return;
    }
    if (strcmp(PQgetvalue(r, 0, 3), c->_idem->fp_hex) != 0) {
        sb__api_idem_free(c->_idem);
        c->_idem = NULL;
        sb_api_reply_error(c, 422, "idempotency_key_reused",
                           "this Idempotency-Key was used with a different request", "Idempotency-Key");
        return;
    }
    if (PQgetisnull(r, 0, 0)) {
        sb__api_idem_free(c->_idem);
        c->_idem = NULL;
        sb_api_reply_error(c, 409, "idempotency_in_progress", "a request with this key is still in progress",
                           "Idempotency-Key");
        return;
    }
    replay(c, r);
}

void sb_api_idempotent(sb_api_call_t *c, sb_api_step_cb next)
{
    ssize_t i = h2o_find_header_by_str(&c->req->headers, H2O_STRLIT("idempotency-key"), -1);
    if (i < 0) {
        next(c);
        return;
    }
    h2o_iovec_t v = c->req->headers.entries[i].value;
    bool ok = v.len >= 1 && v.len <= MAX_KEY;
    for (size_t k = 0; ok && k < v.len; k++)
        ok = v.base[k] >= 0x20 && v.base[k] < 0x7f;
    if (!ok) {
        sb_api_reply_error(c, 400, "invalid", "Idempotency-Key must be 1 to 255 printable ASCII characters",
                           "Idempotency-Key");
        return;
    }
    struct sb__api_idem_s *idem = calloc(1, sizeof(*idem));
    if (idem == NULL) {
        sb_api_reply_errcode(c, SB_ENOMEM, NULL);
        return;
    }
    memcpy(idem->key, v.base, v.len);
    crypto_hash_sha256_state st;
    uint8_t fp[32];
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const uint8_t *)c->req->method.base, c->req->method.len);
    crypto_hash_sha256_update(&st, (const uint8_t *)"\n", 1);
    crypto_hash_sha256_update(&st, (const uint8_t *)c->req->path.base, c->req->path.len);
    crypto_hash_sha256_update(&st, (const uint8_t *)"\n", 1);
    if (c->req->entity.base != NULL)
        crypto_hash_sha256_update(&st, (const uint8_t *)c->req->entity.base, c->req->entity.len);
    crypto_hash_sha256_final(&st, fp);
    sb__api_hex(fp, 32, idem->fp_hex);
    c->_idem = idem;
    c->_next = next;

    char ttl[24];
    snprintf(ttl, sizeof(ttl), "%lld", (long long)c->api->opts.idempotency_ttl_s);
    sb_api_sql_t q[3] = {
        {"api_idem_claim", claim_sql, 4, {c->user_id, idem->key, idem->fp_hex, ttl}},
        {"api_idem_lookup", lookup_sql, 2, {c->user_id, idem->key}},
        {"api_idem_purge", purge_sql, 1, {ttl}},
    };
    /* Purge expired keys now and then: every 64th keyed request on average. */
    int n = randombytes_uniform(64) == 0 ? 3 : 2;
    sb_api_sql(c, q, n, false, on_claimed);
}

/* ---- finishing ---------------------------------------------------------------------------------------- */

static const char store_sql[] =
    "UPDATE api_idempotency SET status = $3::int, headers = $4::jsonb, body = $5, "
    "completed_at = now() WHERE user_id = $1 AND key = $2";
static const char release_sql[] =
    "DELETE FROM api_idempotency WHERE user_id = $1 AND key = $2 AND status IS NULL";

static void on_finished(sb_pg_req_t *req, int status)
{
    idem_op_t *op = req->data;
    if (status != 0)
        sb_log_warn("api", "idempotency key not %s id=%s: %s",
                    req->stmts[0].sql == store_sql ? "stored" : "released", op->c->request_id,
                    req->error ? req->error : sb_strerror(status));
    void (*deliver)(sb_api_call_t *) = op->deliver;
    sb_api_call_t *c = op->c;
    free(op->headers);
    free(op);
    deliver(c);
}

void sb__api_idem_finish(sb_api_call_t *c, int status, void (*deliver)(sb_api_call_t *c))
{
    struct sb__api_idem_s *idem = c->_idem;
    if (!idem->owned || c->loop->db == NULL) {
        deliver(c);
        return;
    }
    idem_op_t *op = calloc(1, sizeof(*op));
    if (op == NULL) {
        deliver(c);
        return;
    }
    op->c = c;
    op->deliver = deliver;
    op->values[0] = c->user_id;
    op->values[1] = idem->key;
    if (status >= 200 && status < 300) {
        snprintf(op->status, sizeof(op->status), "%d", status);
        op->headers = idem->headers != NULL ? json_dumps(idem->headers, JSON_COMPACT) : NULL;
        op->values[2] = op->status;
        op->values[3] = op->headers;
        op->values[4] = c->_resp.body;
        sb_pg_req_init(&op->req, store_sql, 5, op->values, on_finished, op);
        op->req.stmts[0].name = "api_idem_store";
    } else {
        sb_pg_req_init(&op->req, release_sql, 2, op->values, on_finished, op);
        op->req.stmts[0].name = "api_idem_release";
    }
    sb_pg_submit(c->loop->db, &op->req);
}
