/* GET /v1/workspaces/{ws}/contacts?q=&stage=&tag=&assignee=&limit=&cursor=  (the contacts read model)
 *
 * Newest first, in keyset pages over (created_at, id): a page continues strictly after the last
 * row of the previous one, so contacts created meanwhile (which sort first) never shift a page, and
 * none is skipped or repeated.  ?q= matches a substring of the name, phones (with or without '+')
 * and e-mails, case-insensitively; a q that reads as a phone number in the workspace's country also
 * matches that number however it was typed.  Filters combine with AND.  The read model follows the
 * log, so a contact created a moment ago may take a moment to be listed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/phone.h"
#include "http/api_int.h"

#define PAGE_DEFAULT 50
#define PAGE_MAX 200
#define Q_MAX 200

enum { F_Q = 1, F_PHONE = 2, F_STAGE = 4, F_TAG = 8, F_ASSIGNEE = 16 };

typedef struct {
    int limit;
    char limit_s[8], cursor_at_s[24];
    char cursor_id[SB_UUID_STRLEN + 1];
    char *like; /* the ?q= pattern, LIKE-escaped */
    char phone[SB_PHONE_MAX];
    char assignee[SB_UUID_STRLEN + 1];
    char sql[2048];
    char name[32];
} list_state_t;

static void list_cleanup(sb_api_call_t *c)
{
    list_state_t *st = c->data;
    free(st->like);
}

static const char select_sql[] =
    "SELECT coalesce(json_agg(json_build_object('id', c.id, 'name', c.name, 'phone', c.phones[1], 'email', "
    "c.emails[1], 'phones', c.phones, 'emails', c.emails, 'tags', c.tags, 'stage', c.stage, 'assignee_id', "
    "c.assignee_id, 'created_at', to_char(c.created_at AT TIME ZONE 'UTC', "
    "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "
    "'opted_out', c.opted_out) ORDER BY c.created_at DESC, c.id DESC), '[]')::text, count(*)::int, "
    "(extract(epoch FROM min(c.created_at)) * 1000000)::int8, "
    "(array_agg(c.id::text ORDER BY c.created_at, c.id))[1] "
    "FROM (SELECT * FROM contacts.contacts WHERE workspace_id = $1 "
    "AND (created_at, id) < ('epoch'::timestamptz + $2::int8 * interval '1 microsecond', $3::uuid)";

/* "%" + lower-cased q with LIKE's wildcards escaped + "%". */
static char *like_pattern(const char *q)
{
    size_t n = strlen(q);
    char *out = malloc(2 * n + 3);
    if (out == NULL)
        return NULL;
    char *o = out;
    *o++ = '%';
    for (const char *p = q; *p; p++) {
        if (*p == '%' || *p == '_' || *p == '\\')
            *o++ = '\\';
        *o++ = *p;
    }
    *o++ = '%';
    *o = '\0';
    return out;
}

static void listed(sb_api_call_t *c, int status, PGresult *const *results, int n)
{
    sb_api_reply_sql_page(c, results[0], 0, ((const list_state_t *)c->data)->limit);
}

static bool bad(sb_api_call_t *c, const char *field, const char *msg)
{
    sb_api_reply_error(c, 400, "invalid", msg, field);
    return false;
}

static bool short_text(sb_api_call_t *c, const char *v, const char *field, size_t max)
{
    if (v == NULL)
        return true;
    if (v[0] == '\x01' || v[0] == '\0' || sb__api_utf8_len(v) > max) {
        char msg[96];
        snprintf(msg, sizeof(msg), "%s must be 1 to %zu characters", field, max);
        return bad(c, field, msg);
    }
    return true;
}

static void list_loaded(sb_api_call_t *c)
{
    list_state_t *st = c->data;
    if (!sb_api_page_limit(c, PAGE_DEFAULT, PAGE_MAX, &st->limit))
        return;
    const char *q = sb_api_query(c, "q"), *stage = sb_api_query(c, "stage"), *tag = sb_api_query(c, "tag"),
               *assignee = sb_api_query(c, "assignee"), *cur = sb_api_query(c, "cursor");
    if (!short_text(c, q, "q", Q_MAX) || !short_text(c, stage, "stage", 64) || !short_text(c, tag, "tag", 64))
        return;
    if (assignee != NULL && !sb__api_uuid(assignee, st->assignee)) {
        bad(c, "assignee", "assignee must be a member's id");
        return;
    }
    int64_t at = INT64_MAX / 2; /* no cursor: after the end of time */
    snprintf(st->cursor_id, sizeof(st->cursor_id), "ffffffff-ffff-ffff-ffff-ffffffffffff");
    if (cur != NULL && sb_api_cursor_decode(cur, &at, st->cursor_id) != 0) {
        bad(c, "cursor", "cursor is not one this API gave out");
        return;
    }
    if (cur == NULL)
        at = 253402300799LL * 1000000; /* 9999-12-31T23:59:59Z */
    snprintf(st->cursor_at_s, sizeof(st->cursor_at_s), "%lld", (long long)at);
    snprintf(st->limit_s, sizeof(st->limit_s), "%d", st->limit);

    /* One prepared statement per combination of filters, so each gets a plan that uses its index. */
    sb_api_sql_t q1 = {st->name, st->sql, 3, {c->ws_id, st->cursor_at_s, st->cursor_id}};
    int flags = 0;
    size_t off = (size_t)snprintf(st->sql, sizeof(st->sql), "%s", select_sql);
#define PARAM(v) (q1.params[q1.nparams] = (v), ++q1.nparams)
    if (q != NULL) {
        st->like = like_pattern(q);
        if (st->like == NULL) {
            sb_api_reply_errcode(c, SB_ENOMEM, NULL);
            return;
        }
        int i = PARAM(st->like);
        if (sb_phone_normalize(q, strlen(q), sb__api_str(c->ws_state, "default_country"), st->phone) == 0) {
            int k = PARAM(st->phone);
            off += (size_t)snprintf(st->sql + off, sizeof(st->sql) - off,
                                    " AND (search LIKE lower($%d) OR phones @> ARRAY[$%d::text])", i, k);
            flags |= F_Q | F_PHONE;
        } else {
            off += (size_t)snprintf(st->sql + off, sizeof(st->sql) - off, " AND search LIKE lower($%d)", i);
            flags |= F_Q;
        }
    }
    if (stage != NULL) {
        int i = PARAM(stage);
        off += (size_t)snprintf(st->sql + off, sizeof(st->sql) - off, " AND lower(stage) = lower($%d)", i);
        flags |= F_STAGE;
    }
    if (tag != NULL) {
        int i = PARAM(tag);
        off +=
            (size_t)snprintf(st->sql + off, sizeof(st->sql) - off, " AND tag_keys @> ARRAY[lower($%d)]", i);
        flags |= F_TAG;
    }
    if (assignee != NULL) {
        int i = PARAM(st->assignee);
        off += (size_t)snprintf(st->sql + off, sizeof(st->sql) - off, " AND assignee_id = $%d::uuid", i);
        flags |= F_ASSIGNEE;
    }
    int i = PARAM(st->limit_s);
#undef PARAM
    snprintf(st->sql + off, sizeof(st->sql) - off, " ORDER BY created_at DESC, id DESC LIMIT $%d::int) c", i);
    snprintf(st->name, sizeof(st->name), "api_contacts_list_%d", flags);
    sb_api_sql(c, &q1, 1, false, listed);
}

static int on_list(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_api_call_t *c = sb_api_begin(req, params, sizeof(list_state_t));
    c->cleanup = list_cleanup;
    sb_api_workspace(c, SB_ROLE_AGENT, list_loaded);
    return 0;
}

int sb__api_contact_list_routes(sb_router_t *r, sb_api_t *api)
{
    return sb_router_add(r, "GET", "/v1/workspaces/{ws}/contacts", on_list, api);
}
