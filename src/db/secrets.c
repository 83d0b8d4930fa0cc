/* Secrets at rest: sealed values in the secrets table.  See secrets.h. */
#include "db/secrets.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"

struct sb_secrets_s {
    sb_seal_key_t *key;
};

typedef enum { OP_PUT, OP_GET, OP_DELETE } op_kind_t;

/* One operation in flight: the request and everything its parameters point to. */
typedef struct {
    sb_pg_req_t req;
    sb_secrets_t *s;
    op_kind_t kind;
    union {
        sb_secrets_put_cb put;
        sb_secrets_get_cb get;
        sb_secrets_done_cb done;
    } cb;
    void *data;
    char ref[SB_SECRET_REF_LEN + 1];
    char id[SB_UUID_STRLEN + 1];
    char workspace[SB_UUID_STRLEN + 1];
    char kind_name[SB_SECRET_KIND_MAX + 1];
    char keep[SB_UUID_STRLEN + 1];
    const char *params[5];
    int lengths[5];
    int formats[5];
    uint8_t *sealed;
    size_t sealed_len;
} op_t;

int sb_secrets_new(const sb_config_t *cfg, sb_secrets_t **out, char *err, size_t errlen)
{
    sb_seal_key_t *key;
    sb_seal_key_source_t source;
    *out = NULL;
    int rc = sb_seal_key_load(cfg->master_key, cfg->data_dir, &key, &source, err, errlen);
    if (rc != 0)
        return rc;
    *out = sb_secrets_from_key(key);
    if (*out == NULL) {
        snprintf(err, errlen, "out of memory");
        return SB_ENOMEM;
    }
    if (source == SB_SEAL_GENERATED)
        sb_log_warn("secrets",
                    "generated a master key file=%s/%s key_id=%s: keep it safe, secrets sealed "
                    "under it cannot be opened without it",
                    cfg->data_dir, SB_SEAL_KEY_FILE, sb_seal_key_id(key));
    else
        sb_log_info("secrets", "master key from %s key_id=%s",
                    source == SB_SEAL_FROM_ENV ? "SWITCHBOARD_MASTER_KEY" : "the data directory",
                    sb_seal_key_id(key));
    return 0;
}

sb_secrets_t *sb_secrets_from_key(sb_seal_key_t *key)
{
    sb_secrets_t *s = key != NULL ? calloc(1, sizeof(*s)) : NULL;
    if (s == NULL) {
        sb_seal_key_free(key);
        return NULL;
    }
    s->key = key;
    return s;
}

void sb_secrets_free(sb_secrets_t *s)
{
    if (s == NULL)
        return;
    sb_seal_key_free(s->key);
    free(s);
}

const char *sb_secrets_key_id(const sb_secrets_t *s)
{
    return sb_seal_key_id(s->key);
}

bool sb_secret_ref_parse(const char *ref, sb_uuid_t *id)
{
    sb_uuid_t tmp;
    if (ref == NULL || strncmp(ref, SB_SECRET_REF_PREFIX, 7) != 0 || strlen(ref) != SB_SECRET_REF_LEN)
        return false;
    return sb_uuid_parse(ref + 7, SB_UUID_STRLEN, id != NULL ? id : &tmp) == 0;
}

static bool kind_is_valid(const char *k)
{
    size_t n = k != NULL ? strlen(k) : 0;
    if (n == 0 || n > SB_SECRET_KIND_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((k[i] >= 'a' && k[i] <= 'z') || (k[i] >= '0' && k[i] <= '9') || k[i] == '_'))
            return false;
    return true;
}

/* Copies a uuid string into out, canonical (lower case).  false when it is not one. */
static bool copy_uuid(const char *in, char out[SB_UUID_STRLEN + 1])
{
    sb_uuid_t u;
    if (in == NULL || strlen(in) != SB_UUID_STRLEN || sb_uuid_parse(in, SB_UUID_STRLEN, &u) != 0)
        return false;
    sb_uuid_format(&u, out);
    return true;
}

static void op_free(op_t *op)
{
    if (op->sealed != NULL) {
        sb_seal_wipe(op->sealed, op->sealed_len);
        free(op->sealed);
    }
    free(op);
}

static void on_done(sb_pg_req_t *req, int status)
{
    op_t *op = req->data;
    switch (op->kind) {
    case OP_PUT:
        if (status != 0)
            sb_log_warn("secrets", "store failed: %s", req->error != NULL ? req->error : sb_strerror(status));
        op->cb.put(status, status == 0 ? op->ref : NULL, op->data);
        break;
    case OP_DELETE: {
        int n = status == 0 ? atoi(PQcmdTuples(req->results[0])) : 0;
        op->cb.done(status, n, op->data);
        break;
    }
    case OP_GET: {
        PGresult *r = req->results[0];
        if (status != 0) {
            op->cb.get(status, NULL, 0, op->data);
            break;
        }
        if (PQntuples(r) != 1) {
            op->cb.get(SB_ENOTFOUND, NULL, 0, op->data);
            break;
        }
        const char *key_id = PQgetvalue(r, 0, 0);
        int key_id_len = PQgetlength(r, 0, 0);
        if (key_id_len != SB_SEAL_KEY_ID_LEN ||
            memcmp(key_id, sb_seal_key_id(op->s->key), SB_SEAL_KEY_ID_LEN) != 0) {
            sb_log_error("secrets", "%s was sealed under another master key key_id=%.*s (this server has %s)",
                         op->ref, key_id_len > 64 ? 64 : key_id_len, key_id, sb_seal_key_id(op->s->key));
            op->cb.get(SB_EPERM, NULL, 0, op->data);
            break;
        }
        size_t n = (size_t)PQgetlength(r, 0, 1);
        char *plain = malloc(n + 1);
        size_t len = 0;
        int rc = plain == NULL ? SB_ENOMEM
                               : sb_seal_open(op->s->key, op->ref, (const uint8_t *)PQgetvalue(r, 0, 1), n,
                                              plain, &len);
        if (rc != 0) {
            if (rc != SB_ENOMEM)
                sb_log_error("secrets", "%s does not open: %s", op->ref, sb_strerror(rc));
            op->cb.get(rc, NULL, 0, op->data);
        } else {
            plain[len] = '\0';
            op->cb.get(0, plain, len, op->data);
        }
        if (plain != NULL) {
            sb_seal_wipe(plain, n + 1);
            free(plain);
        }
        break;
    }
    }
    op_free(op);
}

static op_t *op_new(sb_secrets_t *s, op_kind_t kind, void *data)
{
    op_t *op = calloc(1, sizeof(*op));
    if (op == NULL)
        return NULL;
    op->s = s;
    op->kind = kind;
    op->data = data;
    return op;
}

int sb_secrets_put(sb_secrets_t *s, sb_pg_t *pg, const char *workspace_id, const char *kind,
                   const void *value, size_t len, sb_secrets_put_cb cb, void *data)
{
    static const char sql[] = "INSERT INTO secrets (ref, workspace_id, kind, key_id, sealed) "
                              "VALUES ($1::uuid, $2::uuid, $3, $4, $5)";
    sb_uuid_t u;
    if (len == 0 || len > SB_SEAL_MAX_VALUE || value == NULL || !kind_is_valid(kind) || cb == NULL)
        return SB_EINVAL;
    op_t *op = op_new(s, OP_PUT, data);
    if (op == NULL)
        return SB_ENOMEM;
    op->cb.put = cb;
    if (workspace_id != NULL && !copy_uuid(workspace_id, op->workspace)) {
        op_free(op);
        return SB_EINVAL;
    }
    sb_uuid_v4(&u); /* random: a reference says nothing about when it was made */
    sb_uuid_format(&u, op->id);
    snprintf(op->ref, sizeof(op->ref), SB_SECRET_REF_PREFIX "%s", op->id);
    snprintf(op->kind_name, sizeof(op->kind_name), "%s", kind);
    op->sealed_len = sb_seal_len(len);
    op->sealed = malloc(op->sealed_len);
    int rc = op->sealed == NULL ? SB_ENOMEM : sb_seal(s->key, op->ref, value, len, op->sealed);
    if (rc != 0) {
        op_free(op);
        return rc;
    }
    op->params[0] = op->id;
    op->params[1] = workspace_id != NULL ? op->workspace : NULL;
    op->params[2] = op->kind_name;
    op->params[3] = sb_seal_key_id(s->key);
    op->params[4] = (const char *)op->sealed;
    op->lengths[4] = (int)op->sealed_len;
    op->formats[4] = 1;
    sb_pg_req_init(&op->req, sql, 5, op->params, on_done, op);
    op->req.stmts[0].name = "sb_secrets_put";
    op->req.stmts[0].lengths = op->lengths;
    op->req.stmts[0].formats = op->formats;
    sb_pg_submit(pg, &op->req);
    return 0;
}

int sb_secrets_get(sb_secrets_t *s, sb_pg_t *pg, const char *ref, sb_secrets_get_cb cb, void *data)
{
    static const char sql[] = "SELECT key_id, sealed FROM secrets WHERE ref = $1::uuid";
    if (!sb_secret_ref_parse(ref, NULL) || cb == NULL)
        return SB_EINVAL;
    op_t *op = op_new(s, OP_GET, data);
    if (op == NULL)
        return SB_ENOMEM;
    op->cb.get = cb;
    copy_uuid(ref + 7, op->id);
    snprintf(op->ref, sizeof(op->ref), SB_SECRET_REF_PREFIX "%s", op->id);
    op->params[0] = op->id;
    sb_pg_req_init(&op->req, sql, 1, op->params, on_done, op);
    op->req.stmts[0].name = "sb_secrets_get";
    op->req.stmts[0].result_format = 1; /* the sealed bytes as they are; key_id is text either way */
    sb_pg_submit(pg, &op->req);
    return 0;
}

int sb_secrets_delete(sb_secrets_t *s, sb_pg_t *pg, const char *workspace_id, const char *kind,
                      const char *keep, sb_secrets_done_cb cb, void *data)
{
    static const char sql[] =
        "DELETE FROM secrets WHERE workspace_id = $1::uuid AND ($2::text IS NULL OR kind = $2) "
        "AND ($3::uuid IS NULL OR ref <> $3::uuid)";
    if (cb == NULL || (kind != NULL && !kind_is_valid(kind)) ||
        (keep != NULL && !sb_secret_ref_parse(keep, NULL)))
        return SB_EINVAL;
    op_t *op = op_new(s, OP_DELETE, data);
    if (op == NULL)
        return SB_ENOMEM;
    op->cb.done = cb;
    if (!copy_uuid(workspace_id, op->workspace)) {
        op_free(op);
        return SB_EINVAL;
    }
    if (kind != NULL)
        snprintf(op->kind_name, sizeof(op->kind_name), "%s", kind);
    if (keep != NULL)
        copy_uuid(keep + 7, op->keep);
    op->params[0] = op->workspace;
    op->params[1] = kind != NULL ? op->kind_name : NULL;
    op->params[2] = keep != NULL ? op->keep : NULL;
    sb_pg_req_init(&op->req, sql, 3, op->params, on_done, op);
    op->req.stmts[0].name = "sb_secrets_delete";
    sb_pg_submit(pg, &op->req);
    return 0;
}

/* ---- tokens ------------------------------------------------------------------------------------- */

#define TOKEN_VALUE_MAX 512

int sb_secrets_seal_token(const sb_secrets_t *s, const char *context, const void *value, size_t len,
                          char *out, size_t cap)
{
    uint8_t sealed[SB_SEAL_OVERHEAD + TOKEN_VALUE_MAX];
    if (len > TOKEN_VALUE_MAX ||
        cap < sodium_base64_ENCODED_LEN(sb_seal_len(len), sodium_base64_VARIANT_URLSAFE_NO_PADDING))
        return SB_EINVAL;
    int rc = sb_seal(s->key, context, value, len, sealed);
    if (rc != 0)
        return rc;
    sodium_bin2base64(out, cap, sealed, sb_seal_len(len), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(sealed, sizeof(sealed));
    return 0;
}

int sb_secrets_open_token(const sb_secrets_t *s, const char *context, const char *token, size_t token_len,
                          char *out, size_t cap, size_t *len)
{
    uint8_t sealed[SB_SEAL_OVERHEAD + TOKEN_VALUE_MAX];
    size_t n = 0;
    const char *end;
    *len = 0;
    if (token_len == 0 || token_len > SB_SECRETS_TOKEN_MAX ||
        sodium_base642bin(sealed, sizeof(sealed), token, token_len, NULL, &n, &end,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        end != token + token_len)
        return SB_EINVAL;
    if (n < SB_SEAL_OVERHEAD || n - SB_SEAL_OVERHEAD >= cap)
        return SB_EINVAL;
    int rc = sb_seal_open(s->key, context, sealed, n, out, len);
    if (rc != 0)
        return rc == SB_ECODEC ? SB_EINVAL : rc;
    out[*len] = '\0';
    return 0;
}
