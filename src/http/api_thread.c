/* A loop's cache of contacts' note threads: the first page of GET .../contacts/{id}/notes served
 * from memory, kept current by the follower.
 *
 * The notes read model answers a page in one SQL round trip, but that round trip is most of what a
 * read costs (a few thousand a second per loop connection, and the database shares the machine's
 * cores).  A thread's first page is what clients read again and again, so each loop keeps the first
 * THREAD_NOTES notes (oldest first, every author's, private ones included: pages filter by reader)
 * of the contacts it served lately, and applies NoteAdded, NoteEdited, NoteDeleted and
 * ContactDeleted from the follower as they commit.
 *
 * Why it stays exact: an entry is filled from one SQL statement that reads the notes together with
 * the notes projection's checkpoint C (one snapshot; the runner moves the checkpoint in the same
 * transaction as the rows), so the rows are exactly the effect of the log up to C.  The entry then
 * applies only events with positions above C.  Events above C that this loop's subscription
 * delivered before the fill completed would be missed, so each loop remembers, per contact (hashed),
 * the last position of a note event it saw; a fill is cached only when that is at most C, and is
 * otherwise served once and dropped (and the caller asks the contact's actor whether the contact
 * still exists before serving it: the event it is behind may be the deletion).  The contacts read
 * model, which says whether the contact is listed, keeps a checkpoint of its own (K): a deletion
 * this loop has followed above K makes the fill behind too, so a thread the notes read model has
 * already emptied is never kept for a contact the contacts read model still lists.  Events at or below C
 * arriving late (the subscription may lag the projection) are ignored.  Bounded: THREAD_SLOTS entries and
 * THREAD_BYTES per loop, least recently used first out.
 *
 * Each entry also keeps the last page it rendered (a page_t: limit, reader when private notes make
 * pages differ by reader, and the JSON text).  The same read again is answered with that text as
 * it is, shared by reference with every request sending it (no rendering, no copy); any event
 * applied to the entry forgets it.  Pages are counted in THREAD_BYTES like the notes.
 *
 * A page also keeps its gzip copy, made the first time a client that accepts gzip reads it
 * (http/encoding.h): later such reads send those bytes by reference too, so a cached page costs
 * no compression per request, and the copy goes with the page, never outliving its text. */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "events/codec.h"
#include "events/follow.h"
#include "http/api_int.h"
#include "http/encoding.h"

#define THREAD_NOTES 200         /* notes kept per contact: the largest page */
#define THREAD_SLOTS 8192        /* contacts per loop */
#define THREAD_BUCKETS 16384     /* hash buckets (power of two) */
#define THREAD_BYTES (64u << 20) /* rendered notes per loop */
#define RECENT_SLOTS 16384       /* last note-event and deletion positions per hashed contact */

typedef struct tnote_s {
    char id[SB_UUID_STRLEN + 1];
    char author[SB_UUID_STRLEN + 1]; /* "" for the system */
    bool priv;
    int64_t at_us;
    char *json; /* the note object, rendered */
    size_t len;
} tnote_t;

/* A rendered page, reference-counted: one reference held by its thread (until the thread changes
 * or goes), one by each request still sending it.  Touched only on the cache's loop. */
struct sb__api_page_s {
    int refs;
    int limit;
    bool per_reader; /* the thread holds private notes: reader says whose page this is */
    char reader[SB_UUID_STRLEN + 1];
    size_t len;
    char *gz; /* the text in gzip, or NULL (not made yet, not worth it, or out of memory) */
    size_t gz_len;
    bool gz_tried; /* gz was attempted: NULL stays NULL */
    char text[];
};
typedef sb__api_page_t page_t;

typedef struct thread_s {
    char contact[SB_UUID_STRLEN + 1];
    char ws[SB_UUID_STRLEN + 1];
    int64_t base;  /* the projection checkpoint it was filled at */
    bool complete; /* holds every note of the contact (else the first THREAD_NOTES) */
    int n, cap;
    tnote_t *notes;
    size_t bytes; /* notes' rendered text and slots, and the page */
    page_t *page; /* the last page rendered, or NULL */
    struct thread_s *hnext;
    struct thread_s *prev, *next; /* LRU, most recent first */
} thread_t;

struct sb__api_threads_s {
    thread_t *buckets[THREAD_BUCKETS];
    thread_t lru; /* sentinel */
    int count;
    size_t bytes;
    int64_t recent[RECENT_SLOTS];
    int64_t gone[RECENT_SLOTS]; /* the last ContactDeleted's position per hashed contact */
    sb_sub_t *sub;
    int64_t start; /* the subscription delivers every event after this position */
    /* Until the follower knows where the log ends, subscribing would replay every note ever
     * written: this timer waits for that first. */
    uv_timer_t wait;
    bool waiting;
    sb_loop_t *loop;
    sb_follower_t *follower;
    /* Read by /metrics on other loops: written here only, relaxed. */
    _Atomic uint64_t hits, misses, fills, skipped, entries;
};

static void bump(_Atomic uint64_t *a)
{
    atomic_store_explicit(a, atomic_load_explicit(a, memory_order_relaxed) + 1, memory_order_relaxed);
}

static uint32_t hash_id(const char *id)
{
    uint32_t h = 2166136261u;
    for (; *id; id++)
        h = (h ^ (uint8_t)*id) * 16777619u;
    return h;
}

/* ---- rendering ---------------------------------------------------------------------------------------- */

static void put_time(sb_buf_t *b, int64_t us)
{
    char t[SB_RFC3339_LEN];
    sb_clock_format_rfc3339(us, t);
    sb_buf_printf(b, "\"%s\"", t);
}

/* The API's note object (the same keys as POST's answer). */
static char *render(const char *id, const char *contact, const char *author, const char *body, bool priv,
                    const char *mentions_json, int64_t at_us, int64_t edited_us, size_t *len)
{
    sb_buf_t b = SB_BUF_INIT;
    sb_buf_printf(&b, "{\"id\":\"%s\",\"contact_id\":\"%s\",\"author_id\":", id, contact);
    if (author != NULL && *author)
        sb_buf_printf(&b, "\"%s\"", author);
    else
        sb_buf_puts(&b, "null");
    sb_buf_puts(&b, ",\"body\":");
    sb_buf_put_json_string(&b, body, strlen(body));
    sb_buf_printf(&b, ",\"private\":%s,\"mentions\":%s,\"created_at\":", priv ? "true" : "false",
                  mentions_json != NULL && *mentions_json ? mentions_json : "[]");
    put_time(&b, at_us);
    sb_buf_puts(&b, ",\"edited_at\":");
    if (edited_us != INT64_MIN)
        put_time(&b, edited_us);
    else
        sb_buf_puts(&b, "null");
    sb_buf_putc(&b, '}');
    *len = b.len;
    return sb_buf_steal(&b);
}

static void note_free(tnote_t *n)
{
    free(n->json);
    n->json = NULL;
}

/* A note from a query row whose columns, from col, are: id, author_id, body, private, mentions (JSON
 * text), created_at and edited_at in microseconds. */
static bool row_note(PGresult *r, int i, int col, const char *contact, tnote_t *n)
{
    snprintf(n->id, sizeof(n->id), "%s", PQgetvalue(r, i, col));
    snprintf(n->author, sizeof(n->author), "%s", PQgetisnull(r, i, col + 1) ? "" : PQgetvalue(r, i, col + 1));
    n->priv = PQgetvalue(r, i, col + 3)[0] == 't';
    n->at_us = strtoll(PQgetvalue(r, i, col + 5), NULL, 10);
    n->json = render(
        n->id, contact, n->author, PQgetvalue(r, i, col + 2), n->priv, PQgetvalue(r, i, col + 4), n->at_us,
        PQgetisnull(r, i, col + 6) ? INT64_MIN : strtoll(PQgetvalue(r, i, col + 6), NULL, 10), &n->len);
    return n->json != NULL;
}

char *sb__api_notes_page(PGresult *r, const char *contact, int limit)
{
    sb_buf_t b = SB_BUF_INIT;
    sb_buf_puts(&b, "{\"items\":[");
    int rows = PQntuples(r);
    tnote_t n = {0};
    for (int i = 0; i < rows; i++) {
        note_free(&n);
        if (!row_note(r, i, 0, contact, &n)) {
            sb_buf_free(&b);
            return NULL;
        }
        if (i)
            sb_buf_putc(&b, ',');
        sb_buf_append(&b, n.json, n.len);
    }
    sb_buf_puts(&b, "],\"next_cursor\":");
    if (rows == limit && rows > 0) {
        char cur[SB_API_CURSOR_MAX];
        sb_api_cursor_encode(n.at_us, n.id, cur);
        sb_buf_printf(&b, "\"%s\"}", cur);
    } else {
        sb_buf_puts(&b, "null}");
    }
    note_free(&n);
    return sb_buf_steal(&b);
}

/* ---- entries ------------------------------------------------------------------------------------------ */

static void lru_unlink(thread_t *t)
{
    t->prev->next = t->next;
    t->next->prev = t->prev;
}

static void lru_front(sb__api_threads_t *c, thread_t *t)
{
    t->next = c->lru.next;
    t->prev = &c->lru;
    c->lru.next->prev = t;
    c->lru.next = t;
}

static thread_t *find(sb__api_threads_t *c, const char *contact)
{
    for (thread_t *t = c->buckets[hash_id(contact) % THREAD_BUCKETS]; t != NULL; t = t->hnext)
        if (strcmp(t->contact, contact) == 0)
            return t;
    return NULL;
}

void sb__api_page_release(void *p)
{
    page_t *pg = p;
    if (--pg->refs == 0) {
        free(pg->gz);
        free(pg);
    }
}

const char *sb__api_page_text(const sb__api_page_t *p, size_t *len)
{
    *len = p->len;
    return p->text;
}

const char *sb__api_page_gzip(const sb__api_page_t *p, size_t *len)
{
    *len = p->gz_len;
    return p->gz;
}

/* Forgets t's page (requests still sending it keep it alive). */
static void forget_page(sb__api_threads_t *c, thread_t *t)
{
    if (t->page == NULL)
        return;
    t->bytes -= t->page->len + t->page->gz_len;
    c->bytes -= t->page->len + t->page->gz_len;
    sb__api_page_release(t->page);
    t->page = NULL;
}

static void drop(sb__api_threads_t *c, thread_t *t)
{
    forget_page(c, t);
    thread_t **pp = &c->buckets[hash_id(t->contact) % THREAD_BUCKETS];
    while (*pp != t)
        pp = &(*pp)->hnext;
    *pp = t->hnext;
    lru_unlink(t);
    for (int i = 0; i < t->n; i++)
        note_free(&t->notes[i]);
    free(t->notes);
    c->bytes -= t->bytes;
    c->count--;
    atomic_store_explicit(&c->entries, (uint64_t)c->count, memory_order_relaxed);
    free(t);
}

/* Room for one more note; false on allocation failure. */
static bool reserve(thread_t *t)
{
    if (t->n < t->cap)
        return true;
    int cap = t->cap ? t->cap * 2 : 8;
    if (cap > THREAD_NOTES)
        cap = THREAD_NOTES;
    tnote_t *p = realloc(t->notes, (size_t)cap * sizeof(*p));
    if (p == NULL)
        return false;
    t->bytes += (size_t)(cap - t->cap) * sizeof(*p);
    t->notes = p;
    t->cap = cap;
    return true;
}

static void insert(sb__api_threads_t *c, thread_t *t)
{
    thread_t *old = find(c, t->contact);
    if (old != NULL)
        drop(c, old);
    while (c->lru.prev != &c->lru && (c->count >= THREAD_SLOTS || c->bytes + t->bytes > THREAD_BYTES))
        drop(c, c->lru.prev);
    uint32_t h = hash_id(t->contact) % THREAD_BUCKETS;
    t->hnext = c->buckets[h];
    c->buckets[h] = t;
    lru_front(c, t);
    c->count++;
    atomic_store_explicit(&c->entries, (uint64_t)c->count, memory_order_relaxed);
    c->bytes += t->bytes;
}

/* Orders notes as the read model pages them: (created_at, id). */
static int note_cmp(int64_t at_a, const char *id_a, int64_t at_b, const char *id_b)
{
    if (at_a != at_b)
        return at_a < at_b ? -1 : 1;
    return strcmp(id_a, id_b);
}

/* ---- applying followed events -------------------------------------------------------------------------- */

static int find_note(const thread_t *t, const char *id)
{
    for (int i = 0; i < t->n; i++)
        if (strcmp(t->notes[i].id, id) == 0)
            return i;
    return -1;
}

static const char *jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* Applies one event to t; false when t can no longer be kept exact (drop it). */
static bool apply(sb__api_threads_t *c, thread_t *t, const sb_event_t *ev)
{
    if (strcmp(ev->type, "ContactDeleted") == 0)
        return false;
    json_t *d = NULL;
    char err[64];
    if (sb_codec_to_jansson(ev->payload, ev->payload_len, &d, err, sizeof(err)) != 0)
        return false;
    bool keep = true;
    const char *id = jstr(d, "note_id");
    int64_t at = 0;
    if (id == NULL || sb_clock_parse_rfc3339(jstr(d, "at") ? jstr(d, "at") : "", &at) != 0) {
        keep = false;
    } else if (strcmp(ev->type, "NoteAdded") == 0) {
        if (find_note(t, id) < 0) {
            int pos = t->n;
            while (pos > 0 && note_cmp(at, id, t->notes[pos - 1].at_us, t->notes[pos - 1].id) < 0)
                pos--;
            if (pos == t->n && (!t->complete || t->n == THREAD_NOTES)) {
                /* After every note held, and the window is full: beyond the first page's reach. */
                t->complete = false;
            } else {
                if (t->n == THREAD_NOTES) {
                    /* The last note leaves the window (pos < t->n: the new one sorts before it). */
                    t->bytes -= t->notes[t->n - 1].len;
                    c->bytes -= t->notes[t->n - 1].len;
                    note_free(&t->notes[--t->n]);
                    t->complete = false;
                }
                size_t before = t->bytes;
                if (!reserve(t)) {
                    keep = false;
                } else {
                    char *mentions = json_dumps(json_object_get(d, "mentions"), JSON_COMPACT);
                    tnote_t n = {0};
                    snprintf(n.id, sizeof(n.id), "%s", id);
                    snprintf(n.author, sizeof(n.author), "%s",
                             jstr(d, "author_id") ? jstr(d, "author_id") : "");
                    n.priv = json_is_true(json_object_get(d, "private"));
                    n.at_us = at;
                    n.json = render(n.id, t->contact, n.author, jstr(d, "body") ? jstr(d, "body") : "",
                                    n.priv, mentions, at, INT64_MIN, &n.len);
                    free(mentions);
                    memmove(&t->notes[pos + 1], &t->notes[pos], (size_t)(t->n - pos) * sizeof(tnote_t));
                    t->notes[pos] = n;
                    t->n++;
                    t->bytes += n.len;
                }
                c->bytes += t->bytes - before;
            }
        }
    } else if (strcmp(ev->type, "NoteEdited") == 0) {
        int i = find_note(t, id);
        if (i >= 0) {
            tnote_t *n = &t->notes[i];
            char *mentions = json_dumps(json_object_get(d, "mentions"), JSON_COMPACT);
            size_t len;
            char *json = render(n->id, t->contact, n->author, jstr(d, "body") ? jstr(d, "body") : "", n->priv,
                                mentions, n->at_us, at, &len);
            free(mentions);
            t->bytes += len - n->len;
            c->bytes += len - n->len;
            free(n->json);
            n->json = json;
            n->len = len;
        }
    } else if (strcmp(ev->type, "NoteDeleted") == 0) {
        int i = find_note(t, id);
        if (i >= 0) {
            if (!t->complete) {
                keep = false; /* the next note beyond the window would move in: refill */
            } else {
                t->bytes -= t->notes[i].len;
                c->bytes -= t->notes[i].len;
                note_free(&t->notes[i]);
                memmove(&t->notes[i], &t->notes[i + 1], (size_t)(t->n - i - 1) * sizeof(tnote_t));
                t->n--;
            }
        }
    }
    json_decref(d);
    return keep;
}

static void on_events(sb_sub_t *s, const sb_event_t *events, int n, void *data)
{
    sb__api_threads_t *c = data;
    for (int i = 0; i < n; i++) {
        const sb_event_t *ev = &events[i];
        if (strncmp(ev->stream, "contact-", 8) != 0)
            continue;
        const char *contact = ev->stream + 8;
        uint32_t slot = hash_id(contact) % RECENT_SLOTS;
        if (ev->position > c->recent[slot])
            c->recent[slot] = ev->position;
        if (ev->position > c->gone[slot] && strcmp(ev->type, "ContactDeleted") == 0)
            c->gone[slot] = ev->position;
        thread_t *t = find(c, contact);
        if (t == NULL || ev->position <= t->base)
            continue;
        forget_page(c, t);
        if (!apply(c, t, ev))
            drop(c, t);
    }
}

/* ---- the loop's cache -----------------------------------------------------------------------------------
 */

static void subscribe(sb__api_threads_t *c, int64_t head)
{
    static const char *const types[] = {"NoteAdded", "NoteEdited", "NoteDeleted", "ContactDeleted"};
    sb_log_filter_t f = {.types = types, .ntypes = 4};
    c->start = head;
    c->sub = sb_follower_subscribe(c->follower, c->loop->db, head, &f, on_events, c);
    if (c->sub == NULL)
        sb_log_warn("api", "cannot follow notes: threads are read from the database");
}

static void on_wait(uv_timer_t *t)
{
    sb__api_threads_t *c = t->data;
    int64_t head = sb_follower_head(c->follower);
    if (head < 0)
        return;
    uv_timer_stop(&c->wait);
    subscribe(c, head);
}

sb__api_threads_t *sb__api_threads_start(sb_loop_t *loop, sb_follower_t *follower)
{
    sb__api_threads_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->lru.next = c->lru.prev = &c->lru;
    c->loop = loop;
    c->follower = follower;
    if (follower == NULL || loop->db == NULL)
        return c; /* never fed: the cache stays empty and every read goes to the database */
    int64_t head = sb_follower_head(follower);
    if (head >= 0) {
        subscribe(c, head);
        return c;
    }
    uv_timer_init(&loop->uv, &c->wait);
    c->wait.data = c;
    c->waiting = true;
    uv_timer_start(&c->wait, on_wait, 20, 20);
    return c;
}

void sb__api_threads_stop(sb__api_threads_t *c)
{
    if (c == NULL)
        return;
    if (c->waiting) {
        uv_close((uv_handle_t *)&c->wait, NULL); /* the memory stays until sb__api_threads_free */
        c->waiting = false;
    }
    if (c->sub != NULL)
        sb_sub_close(c->sub);
    c->sub = NULL;
    while (c->lru.next != &c->lru)
        drop(c, c->lru.next);
}

void sb__api_threads_free(sb__api_threads_t *c)
{
    if (c != NULL)
        sb__api_threads_stop(c);
    free(c);
}

bool sb__api_threads_enabled(const sb__api_threads_t *c)
{
    return c != NULL && c->sub != NULL;
}

void sb__api_threads_stats(const sb__api_threads_t *c, uint64_t out[5])
{
    memset(out, 0, 5 * sizeof(*out));
    if (c == NULL)
        return;
    out[0] = atomic_load_explicit(&c->hits, memory_order_relaxed);
    out[1] = atomic_load_explicit(&c->misses, memory_order_relaxed);
    out[2] = atomic_load_explicit(&c->fills, memory_order_relaxed);
    out[3] = atomic_load_explicit(&c->skipped, memory_order_relaxed);
    out[4] = atomic_load_explicit(&c->entries, memory_order_relaxed);
}

/* ---- pages ------------------------------------------------------------------------------------------------
 */

/* The index of t's first note after the cursor (after_id NULL: the first note). */
static int first_after(const thread_t *t, int64_t after_at, const char *after_id)
{
    int i = 0;
    if (after_id != NULL)
        while (i < t->n && note_cmp(t->notes[i].at_us, t->notes[i].id, after_at, after_id) <= 0)
            i++;
    return i;
}

/* Renders reader's page of limit notes after the cursor (after_id NULL: the first page) from t: the
 * JSON text, or NULL when t cannot answer (an incomplete thread with too few notes after the cursor
 * visible to the reader). */
static char *page(const thread_t *t, const char *reader, int limit, int64_t after_at, const char *after_id)
{
    sb_buf_t b = SB_BUF_INIT;
    size_t need = 96;
    int from = first_after(t, after_at, after_id);
    for (int i = from, k = 0; i < t->n && k < limit; i++)
        if (!t->notes[i].priv || strcmp(t->notes[i].author, reader) == 0) {
            need += t->notes[i].len + 1;
            k++;
        }
    if (sb_buf_reserve(&b, need) != 0)
        return NULL;
    sb_buf_puts(&b, "{\"items\":[");
    int shown = 0;
    const tnote_t *last = NULL;
    for (int i = from; i < t->n && shown < limit; i++) {
        const tnote_t *n = &t->notes[i];
        if (n->priv && strcmp(n->author, reader) != 0)
            continue;
        if (shown++)
            sb_buf_putc(&b, ',');
        sb_buf_append(&b, n->json, n->len);
        last = n;
    }
    if (shown < limit && !t->complete) {
        sb_buf_free(&b);
        return NULL;
    }
    sb_buf_puts(&b, "],\"next_cursor\":");
    if (shown == limit && last != NULL) {
        char cur[SB_API_CURSOR_MAX];
        sb_api_cursor_encode(last->at_us, last->id, cur);
        sb_buf_printf(&b, "\"%s\"}", cur);
    } else {
        sb_buf_puts(&b, "null}");
    }
    return sb_buf_steal(&b);
}

/* The page t's reader would get, rendered and kept as t's page; NULL when t cannot answer it or
 * memory ran out. */
static page_t *render_page(sb__api_threads_t *c, thread_t *t, const char *reader, int limit)
{
    char *text = page(t, reader, limit, 0, NULL);
    if (text == NULL)
        return NULL;
    size_t len = strlen(text);
    page_t *pg = malloc(sizeof(*pg) + len + 1);
    if (pg == NULL) {
        free(text);
        return NULL;
    }
    memcpy(pg->text, text, len + 1);
    free(text);
    pg->refs = 1;
    pg->len = len;
    pg->gz = NULL;
    pg->gz_len = 0;
    pg->gz_tried = false;
    pg->limit = limit;
    pg->per_reader = false;
    for (int i = 0; i < t->n && !pg->per_reader; i++)
        pg->per_reader = t->notes[i].priv;
    snprintf(pg->reader, sizeof(pg->reader), "%s", pg->per_reader ? reader : "");
    forget_page(c, t);
    t->page = pg;
    t->bytes += len;
    c->bytes += len;
    return pg;
}

/* Gives t's page pg its gzip copy, once (see the top of this file). */
static void compress_page(sb__api_threads_t *c, thread_t *t, page_t *pg)
{
    pg->gz_tried = true;
    pg->gz = sb_http_gzip(pg->text, pg->len, &pg->gz_len);
    if (pg->gz == NULL)
        pg->gz_len = 0;
    t->bytes += pg->gz_len;
    c->bytes += pg->gz_len;
}

sb__api_page_t *sb__api_threads_page(sb__api_threads_t *c, const char *contact, const char *ws,
                                     const char *reader, int limit, bool gzip)
{
    thread_t *t = c != NULL ? find(c, contact) : NULL;
    if (t == NULL || strcmp(t->ws, ws) != 0) {
        if (c != NULL)
            bump(&c->misses);
        return NULL;
    }
    page_t *pg = t->page;
    if (pg == NULL || pg->limit != limit || (pg->per_reader && strcmp(pg->reader, reader) != 0))
        pg = render_page(c, t, reader, limit);
    if (pg == NULL) {
        bump(&c->misses);
        return NULL;
    }
    if (gzip && !pg->gz_tried)
        compress_page(c, t, pg);
    bump(&c->hits);
    lru_unlink(t);
    lru_front(c, t);
    pg->refs++;
    return pg;
}

char *sb__api_threads_page_after(sb__api_threads_t *c, const char *contact, const char *ws,
                                 const char *reader, int limit, int64_t after_at, const char *after_id)
{
    thread_t *t = c != NULL ? find(c, contact) : NULL;
    char *text = t != NULL && strcmp(t->ws, ws) == 0 ? page(t, reader, limit, after_at, after_id) : NULL;
    if (c != NULL)
        bump(text != NULL ? &c->hits : &c->misses);
    return text;
}

/* Builds a thread from the fill query's rows (columns: the checkpoint, then a note as row_note
 * reads it; one row of NULL note columns for a contact without notes), answers the reader's first
 * page from it, and keeps it when that is safe.  Returns the page text (caller frees), or NULL when
 * the thread cannot answer it (see page) or memory ran out; *oom tells which. */
char *sb__api_threads_fill(sb__api_threads_t *c, const char *contact, const char *ws, const char *reader,
                           int limit, PGresult *r, bool listed, int64_t listed_at, bool *oom, bool *behind)
{
    *oom = true;
    *behind = false;
    thread_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    snprintf(t->contact, sizeof(t->contact), "%s", contact);
    snprintf(t->ws, sizeof(t->ws), "%s", ws);
    int rows = PQntuples(r);
    t->base = rows > 0 && !PQgetisnull(r, 0, 0) ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : -1;
    t->complete = true;
    for (int i = 0; i < rows; i++) {
        if (PQgetisnull(r, i, 1))
            continue; /* the checkpoint row of a contact without notes */
        if (t->n == THREAD_NOTES) {
            t->complete = false;
            break;
        }
        if (!reserve(t) || !row_note(r, i, 1, contact, &t->notes[t->n])) {
            for (int k = 0; k < t->n; k++)
                note_free(&t->notes[k]);
            free(t->notes);
            free(t);
            return NULL;
        }
        t->bytes += t->notes[t->n].len;
        t->n++;
    }
    *oom = false;
    char *text = page(t, reader, limit, 0, NULL);
    /* Cache only what is provably current (see the top of this file). */
    uint32_t slot = hash_id(contact) % RECENT_SLOTS;
    *behind = c != NULL && c->sub != NULL && (c->recent[slot] > t->base || c->gone[slot] > listed_at);
    bool keep = listed && c != NULL && c->sub != NULL && t->base >= c->start && !*behind;
    if (keep && text != NULL) {
        insert(c, t);
        bump(&c->fills);
        return text;
    }
    if (c != NULL)
        bump(&c->skipped);
    for (int i = 0; i < t->n; i++)
        note_free(&t->notes[i]);
    free(t->notes);
    free(t);
    return text;
}
