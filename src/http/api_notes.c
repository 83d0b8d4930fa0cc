/* Notes on a contact:
 *   POST   /v1/workspaces/{ws}/contacts/{id}/notes {body, private?}   -> 201 note
 *   GET    /v1/workspaces/{ws}/contacts/{id}/notes?limit=&cursor=      -> page, oldest first (notes
 *                                                                         read model; a cached first
 *                                                                         page in gzip if accepted)
 *   PATCH  /v1/workspaces/{ws}/contacts/{id}/notes/{nid} {body}        -> note (author only)
 *   DELETE /v1/workspaces/{ws}/contacts/{id}/notes/{nid}               -> 204 (author only)
 * @mentions of members are recognised by the contact actor and stored with the note.  A private
 * note is its author's alone: to anyone else it does not exist (absent from lists, 404 by id). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/error.h"
#include "http/api_int.h"
#include "http/encoding.h"

#define NOTE_MAX_CHARS 10000
#define PAGE_DEFAULT 50
#define PAGE_MAX 200

typedef struct {
    char stream[16 + SB_UUID_STRLEN];
    char note_id[SB_UUID_STRLEN + 1];
    int64_t cursor_at;
    char cursor_id[SB_UUID_STRLEN + 1];
    char cursor_at_s[24], limit_s[8];
    int limit;
    sb_ask_opts_t opts;
    char *page; /* GET: the page's JSON text */
} note_state_t;

static void note_cleanup(sb_api_call_t *c)
{
    note_state_t *st = c->data;
    free(st->page);
}

static void reply_contact_error(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    if (reply->status == SB_EREJECTED && strcmp(reply->err->code, "unknown_note") == 0)
        sb_api_reply_error(c, 404, "note_not_found", "no such note", NULL);
    else
        sb__api_reply_contact_ask_error(c, reply);
}

static bool need_contact_id(sb_api_call_t *c, note_state_t *st)
{
    if (c->id[0] == '\0') {
        sb__api_reply_no_contact(c);
        return false;
    }
    memcpy(st->stream, "contact-", 8);
    memcpy(st->stream + 8, c->id, SB_UUID_STRLEN + 1);
    return true;
}

/* ---- POST ------------------------------------------------------------------------------------------------
 */

static void put_str_or_null(sb_buf_t *b, const json_t *v)
{
    if (json_is_string(v))
        sb_buf_put_json_string(b, json_string_value(v), json_string_length(v));
    else
        sb_buf_puts(b, "null");
}

/* The note object from its NoteAdded event, written directly rather than built as a tree and
 * dumped: id, contact_id, author_id, body, private, mentions, created_at (the event's time) and
 * edited_at (null), the keys a thread page's notes have (api_thread.c). */
static char *added_text(const char *contact_id, const json_t *ev)
{
    sb_buf_t b = SB_BUF_INIT;
    const json_t *body = json_object_get(ev, "body");
    if (sb_buf_reserve(&b, 384 + json_string_length(body)) != 0)
        return NULL;
    sb_buf_puts(&b, "{\"id\":");
    put_str_or_null(&b, json_object_get(ev, "note_id"));
    sb_buf_puts(&b, ",\"contact_id\":");
    sb_buf_put_json_string(&b, contact_id, strlen(contact_id));
    sb_buf_puts(&b, ",\"author_id\":");
    put_str_or_null(&b, json_object_get(ev, "author_id"));
    sb_buf_puts(&b, ",\"body\":");
    put_str_or_null(&b, body);
    sb_buf_puts(&b,
                json_is_true(json_object_get(ev, "private")) ? ",\"private\":true" : ",\"private\":false");
    sb_buf_puts(&b, ",\"mentions\":");
    const json_t *m = json_object_get(ev, "mentions");
    if (json_is_array(m)) {
        sb_buf_putc(&b, '[');
        for (size_t i = 0; i < json_array_size(m); i++) {
            if (i)
                sb_buf_putc(&b, ',');
            put_str_or_null(&b, json_array_get(m, i));
        }
        sb_buf_putc(&b, ']');
    } else {
        sb_buf_puts(&b, "null");
    }
    sb_buf_puts(&b, ",\"created_at\":");
    put_str_or_null(&b, json_object_get(ev, "at"));
    sb_buf_puts(&b, ",\"edited_at\":null}");
    return sb_buf_steal(&b);
}

static void added(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    note_state_t *st = c->data;
    if (reply->status != 0) {
        reply_contact_error(c, reply);
        return;
    }
    /* Notes live on the contact's stream: its version is what If-Match on the note compares. */
    sb_api_etag(c, reply->version);
    char loc[160];
    snprintf(loc, sizeof(loc), "/v1/workspaces/%s/contacts/%s/notes/%s", c->ws_id, c->id, st->note_id);
    sb_api_header(c, "location", loc);
    if (reply->nevents > 0) {
        char *text = added_text(c->id, reply->events[0].data);
        if (text == NULL)
            sb_api_reply_errcode(c, SB_ENOMEM, NULL);
        else
            sb_api_reply_raw(c, 201, text);
        return;
    }
    json_t *note;
    {
        /* A retry (same Idempotency-Key) of a note that was stored: answer with what we know. */
        const json_t *n = json_object_get(json_object_get(reply->state, "notes"), st->note_id);
        note =
            json_pack("{s:s, s:s, s:O?, s:O?, s:b, s:[], s:O?, s:n}", "id", st->note_id, "contact_id", c->id,
                      "author_id", json_object_get(n, "author_id"), "body", json_object_get(c->body, "body"),
                      "private", json_is_true(json_object_get(n, "private")), "mentions", "created_at",
                      json_object_get(n, "created_at"), "edited_at");
    }
    sb_api_reply_json(c, 201, note);
}

static void add_keyed(sb_api_call_t *c)
{
    note_state_t *st = c->data;
    sb_api_new_id(c, "note", st->note_id);
    json_t *priv = json_object_get(c->body, "private");
    sb_ask_opts_t o;
    sb_api_ask_opts(c, &o);
    /* The event says all a first answer needs; a retry's answer reads the state (a contact's state
     * can be large). */
    o.skip_state = !sb_api_has_idempotency_key(c);
    sb_api_ask(c, st->stream,
               json_pack("{s:s, s:s, s:O, s:b}", "type", "AddNote", "note_id", st->note_id, "body",
                         json_object_get(c->body, "body"), "private", json_is_true(priv)),
               &o, added);
}

static void add_loaded(sb_api_call_t *c)
{
    static const char *const fields[] = {"body", "private", NULL};
    note_state_t *st = c->data;
    const char *body;
    if (!need_contact_id(c, st) || !sb_api_read_body(c, fields) ||
        !sb__api_body_str(c, "body", true, 1, NOTE_MAX_CHARS, &body))
        return;
    json_t *priv = json_object_get(c->body, "private");
    if (priv != NULL && !json_is_boolean(priv) && !json_is_null(priv)) {
        sb_api_reply_error(c, 400, "invalid", "private must be true or false", "private");
        return;
    }
    sb_api_idempotent(c, add_keyed);
}

static int on_add(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_api_workspace(sb_api_begin(req, params, sizeof(note_state_t)), SB_ROLE_AGENT, add_loaded);
    return 0;
}

/* ---- GET (the notes read model, and each loop's thread cache)
 * ----------------------------------------------- */

/* The contact must be a live contact of this workspace (else 404).  The first page comes from the
 * loop's thread cache when it can (api_thread.c); otherwise one round trip reads the contacts read
 * model and the notes, with the notes projection's checkpoint for the cache. */
static const char contact_sql[] = "SELECT 1 FROM contacts.contacts WHERE id = $1 AND workspace_id = $2";
#define NOTE_COLUMNS                                                                                         \
    "n.id::text, n.author_id::text, n.body, n.private, array_to_json(n.mentions)::text, "                    \
    "(extract(epoch FROM n.created_at) * 1000000)::int8, (extract(epoch FROM n.edited_at) * 1000000)::int8"
/* For a fill: the contacts read model's checkpoint with its answer (sb__api_threads_fill). */
static const char fill_contact_sql[] =
    "SELECT (SELECT position FROM projection_state WHERE name = 'contacts'), "
    "EXISTS (SELECT 1 FROM contacts.contacts WHERE id = $1 AND workspace_id = $2)";
static const char fill_sql[] =
    "SELECT cp.position, " NOTE_COLUMNS " FROM (SELECT position FROM projection_state "
    "WHERE name = 'notes') cp LEFT JOIN LATERAL (SELECT * FROM notes.notes "
    "WHERE contact_id = $1 AND workspace_id = $2 ORDER BY created_at, id LIMIT 201) n "
    "ON true ORDER BY n.created_at, n.id";
static const char page_sql[] =
    "SELECT " NOTE_COLUMNS " FROM notes.notes n WHERE contact_id = $1 AND workspace_id = $2 "
    "AND (NOT private OR author_id = $3) AND (created_at, id) > ('epoch'::timestamptz + "
    "$4::int8 * interval '1 microsecond', $5::uuid) ORDER BY created_at, id LIMIT $6::int";

static void reply_page(sb_api_call_t *c)
{
    note_state_t *st = c->data;
    char *text = st->page;
    st->page = NULL;
    sb_api_reply_raw(c, 200, text);
}

static void list_contact_got(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    if (reply->status != 0) {
        reply_contact_error(c, reply);
        return;
    }
    const json_t *s = reply->state;
    if (!sb__api_is_live_contact(c, s)) {
        sb__api_reply_no_contact(c);
        return;
    }
    reply_page(c);
}

/* The page is ready (st->page); the contact check decides whether it is the answer. */
static void page_ready(sb_api_call_t *c, bool contact_listed)
{
    note_state_t *st = c->data;
    if (st->page == NULL) {
        sb_api_reply_errcode(c, SB_ENOMEM, NULL);
        return;
    }
    if (contact_listed) {
        reply_page(c);
        return;
    }
    /* Not (yet) in the contacts read model: a contact created a moment ago may still be on its way
     * there, so the actor, which is always current, decides between 404 and this page. */
    sb_api_get(c, st->stream, list_contact_got);
}

static void paged(sb_api_call_t *c, int status, PGresult *const *results, int n)
{
    note_state_t *st = c->data;
    st->page = sb__api_notes_page(results[1], c->id, st->limit);
    page_ready(c, PQntuples(results[0]) == 1);
}

static void run_page_query(sb_api_call_t *c)
{
    note_state_t *st = c->data;
    snprintf(st->cursor_at_s, sizeof(st->cursor_at_s), "%lld", (long long)st->cursor_at);
    snprintf(st->limit_s, sizeof(st->limit_s), "%d", st->limit);
    sb_api_sql_t q[2] = {
        {"api_notes_contact", contact_sql, 2, {c->id, c->ws_id}},
        {"api_notes_page",
         page_sql,
         6,
         {c->id, c->ws_id, c->user_id, st->cursor_at_s, st->cursor_id, st->limit_s}},
    };
    sb_api_sql(c, q, 2, false, paged);
}

static void filled(sb_api_call_t *c, int status, PGresult *const *results, int n)
{
    note_state_t *st = c->data;
    PGresult *r0 = results[0];
    bool listed = PQntuples(r0) == 1 && PQgetvalue(r0, 0, 1)[0] == 't', oom, behind;
    int64_t listed_at =
        PQntuples(r0) == 1 && !PQgetisnull(r0, 0, 0) ? strtoll(PQgetvalue(r0, 0, 0), NULL, 10) : -1;
    st->page = sb__api_threads_fill(sb__api_loop(c)->threads, c->id, c->ws_id, c->user_id, st->limit,
                                    results[1], listed, listed_at, &oom, &behind);
    if (st->page == NULL && !oom) {
        /* More than the cached window holds, and too few of them visible to this reader: the
         * first page, filtered by the database. */
        st->cursor_at = -62135596800LL * 1000000; /* 0001-01-01, before every note */
        snprintf(st->cursor_id, sizeof(st->cursor_id), "00000000-0000-0000-0000-000000000000");
        run_page_query(c);
        return;
    }
    /* The read model is behind what this loop has followed for the contact (perhaps its deletion):
     * the actor, which is always current, decides between 404 and this page. */
    page_ready(c, listed && !behind);
}

static void list_loaded(sb_api_call_t *c)
{
    note_state_t *st = c->data;
    if (!need_contact_id(c, st) || !sb_api_page_limit(c, PAGE_DEFAULT, PAGE_MAX, &st->limit))
        return;
    /* A cached first page may be sent in gzip (below): every answer here says the representation
     * depends on Accept-Encoding, so shared caches keep the variants apart. */
    sb_http_vary_coding(c->req);
    const char *cur = sb_api_query(c, "cursor");
    if (cur != NULL) {
        if (sb_api_cursor_decode(cur, &st->cursor_at, st->cursor_id) != 0) {
            sb_api_reply_error(c, 400, "invalid", "cursor is not one this API gave out", "cursor");
            return;
        }
        char *text = sb__api_threads_page_after(sb__api_loop(c)->threads, c->id, c->ws_id, c->user_id,
                                                st->limit, st->cursor_at, st->cursor_id);
        if (text != NULL) {
            sb_api_reply_raw(c, 200, text);
            return;
        }
        run_page_query(c);
        return;
    }
    /* The cached page in gzip when the client takes it: compressed once per page by the cache,
     * then sent by reference like the text.  No ETag here, so none has to differ by coding. */
    bool gzip = sb_http_accepts_gzip(c->req);
    sb__api_page_t *pg =
        sb__api_threads_page(sb__api_loop(c)->threads, c->id, c->ws_id, c->user_id, st->limit, gzip);
    if (pg != NULL) {
        size_t len;
        const char *body = gzip ? sb__api_page_gzip(pg, &len) : NULL;
        if (body != NULL)
            sb_http_gzip_coding(c->req);
        else
            body = sb__api_page_text(pg, &len);
        sb_api_reply_borrowed(c, 200, body, len, sb__api_page_release, pg);
        return;
    }
    sb_api_sql_t q[2] = {
        {"api_notes_fill_contact", fill_contact_sql, 2, {c->id, c->ws_id}},
        {"api_notes_fill", fill_sql, 2, {c->id, c->ws_id}},
    };
    sb_api_sql(c, q, 2, false, filled);
}

static int on_list(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_api_call_t *c = sb_api_begin(req, params, sizeof(note_state_t));
    c->cleanup = note_cleanup;
    sb_api_workspace(c, SB_ROLE_AGENT, list_loaded);
    return 0;
}

/* ---- PATCH / DELETE one note
 * --------------------------------------------------------------------------------- */

static void edited(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    note_state_t *st = c->data;
    if (reply->status != 0) {
        reply_contact_error(c, reply);
        return;
    }
    const json_t *n = json_object_get(json_object_get(reply->state, "notes"), st->note_id);
    const json_t *ev = reply->nevents > 0 ? reply->events[0].data : NULL;
    sb_api_etag(c, reply->version);
    sb_api_reply_json(c, 200,
                      json_pack("{s:s, s:s, s:O?, s:O?, s:b, s:O?, s:O?, s:O?}", "id", st->note_id,
                                "contact_id", c->id, "author_id", json_object_get(n, "author_id"), "body",
                                json_object_get(c->body, "body"), "private",
                                json_is_true(json_object_get(n, "private")), "mentions",
                                json_object_get(ev, "mentions"), "created_at",
                                json_object_get(n, "created_at"), "edited_at", json_object_get(ev, "at")));
}

static void removed(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    if (reply->status != 0) {
        reply_contact_error(c, reply);
        return;
    }
    sb_api_reply_json(c, 204, NULL);
}

/* The note must exist on a live contact of this workspace, and a private one be the caller's:
 * anything else is 404, so nobody learns of another's private note. */
static void one_got(sb_api_call_t *c, const sb_ask_reply_t *reply)
{
    note_state_t *st = c->data;
    if (reply->status != 0) {
        reply_contact_error(c, reply);
        return;
    }
    const json_t *s = reply->state;
    if (!sb__api_is_live_contact(c, s)) {
        sb__api_reply_no_contact(c);
        return;
    }
    const json_t *n = json_object_get(json_object_get(s, "notes"), st->note_id);
    const char *author = sb__api_str(n, "author_id");
    if (n == NULL ||
        (json_is_true(json_object_get(n, "private")) && (author == NULL || strcmp(author, c->user_id)))) {
        sb_api_reply_error(c, 404, "note_not_found", "no such note", NULL);
        return;
    }
    bool is_delete = c->req->method.len == 6;
    json_t *cmd = is_delete ? json_pack("{s:s, s:s}", "type", "DeleteNote", "note_id", st->note_id)
                            : json_pack("{s:s, s:s, s:O}", "type", "EditNote", "note_id", st->note_id, "body",
                                        json_object_get(c->body, "body"));
    sb_api_ask(c, st->stream, cmd, &st->opts, is_delete ? removed : edited);
}

static void one_loaded(sb_api_call_t *c)
{
    static const char *const fields[] = {"body", NULL};
    note_state_t *st = c->data;
    if (!need_contact_id(c, st))
        return;
    if (!sb__api_uuid(c->sub, st->note_id)) {
        sb_api_reply_error(c, 404, "note_not_found", "no such note", NULL);
        return;
    }
    sb_api_ask_opts(c, &st->opts);
    if (!sb_api_if_match(c, &st->opts))
        return;
    const char *body;
    bool is_delete = c->req->method.len == 6;
    if (!is_delete &&
        (!sb_api_read_body(c, fields) || !sb__api_body_str(c, "body", true, 1, NOTE_MAX_CHARS, &body)))
        return;
    sb_api_get(c, st->stream, one_got);
}

static int on_one(h2o_req_t *req, const sb_route_params_t *params, void *data)
{
    sb_api_workspace(sb_api_begin(req, params, sizeof(note_state_t)), SB_ROLE_AGENT, one_loaded);
    return 0;
}

int sb__api_note_routes(sb_router_t *r, sb_api_t *api)
{
    int rc;
    if ((rc = sb_router_add(r, "POST", "/v1/workspaces/{ws}/contacts/{id}/notes", on_add, api)) != 0 ||
        (rc = sb_router_add(r, "GET", "/v1/workspaces/{ws}/contacts/{id}/notes", on_list, api)) != 0 ||
        (rc = sb_router_add(r, "PATCH", "/v1/workspaces/{ws}/contacts/{id}/notes/{nid}", on_one, api)) != 0 ||
        (rc = sb_router_add(r, "DELETE", "/v1/workspaces/{ws}/contacts/{id}/notes/{nid}", on_one, api)) != 0)
        return rc;
    return 0;
}
