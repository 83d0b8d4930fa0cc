/* The note-thread cache (src/http/api_thread.c): a thread fed NoteAdded / NoteEdited / NoteDeleted
 * events must always hold exactly the first notes of the contact, in (created_at, id) order, as the
 * read model would answer them.  A random walk of events is checked against a plain model after
 * every step; when the cache gives a thread up (it cannot stay exact), it is refilled from the
 * model, as the API refills from the database. */
#include "../../src/http/api_thread.c"

#include <stdio.h>

#include <zlib.h>

#include "events/codec.h"
#include "sbtest.h"

#define CONTACT "22222222-2222-7222-8222-222222222222"
#define WS "11111111-1111-7111-8111-111111111111"
#define AUTHOR "00000000-0000-7000-8000-000000000001"
#define MAX_MODEL 400

typedef struct {
    char id[SB_UUID_STRLEN + 1];
    int64_t at;
    char body[32];
    bool live;
} mnote_t;

static mnote_t model[MAX_MODEL];
static int nmodel;
static int64_t position = 100;
static uint64_t rng = 88172645463325252ULL;

static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static int cmp_model(const void *a, const void *b)
{
    const mnote_t *x = a, *y = b;
    return note_cmp(x->at, x->id, y->at, y->id);
}

/* The live notes in page order. */
static int sorted_live(mnote_t *out)
{
    int n = 0;
    for (int i = 0; i < nmodel; i++)
        if (model[i].live)
            out[n++] = model[i];
    qsort(out, (size_t)n, sizeof(*out), cmp_model);
    return n;
}

static void deliver(sb__api_threads_t *c, const char *type, json_t *payload)
{
    sb_buf_t mp = SB_BUF_INIT;
    sb_codec_from_jansson(payload, &mp);
    json_decref(payload);
    sb_event_t ev = {.position = ++position,
                     .version = position,
                     .stream = "contact-" CONTACT,
                     .type = type,
                     .payload = mp.data,
                     .payload_len = mp.len};
    on_events(NULL, &ev, 1, c);
    sb_buf_free(&mp);
}

static json_t *at_json(int64_t us)
{
    char t[SB_RFC3339_LEN];
    sb_clock_format_rfc3339(us, t);
    return json_string(t);
}

/* Fills the thread from the model as the API does from the database (checkpoint = position). */
static void refill(sb__api_threads_t *c)
{
    thread_t *old = find(c, CONTACT);
    if (old != NULL)
        drop(c, old);
    mnote_t live[MAX_MODEL];
    int n = sorted_live(live);
    thread_t *t = calloc(1, sizeof(*t));
    snprintf(t->contact, sizeof(t->contact), CONTACT);
    snprintf(t->ws, sizeof(t->ws), WS);
    t->base = position;
    t->complete = n <= THREAD_NOTES;
    for (int i = 0; i < n && i < THREAD_NOTES; i++) {
        reserve(t);
        tnote_t *x = &t->notes[t->n++];
        snprintf(x->id, sizeof(x->id), "%.*s", (int)sizeof(x->id) - 1, live[i].id);
        snprintf(x->author, sizeof(x->author), AUTHOR);
        x->at_us = live[i].at;
        x->priv = false;
        x->json = render(x->id, CONTACT, AUTHOR, live[i].body, false, "[]", x->at_us, INT64_MIN, &x->len);
        t->bytes += x->len;
    }
    insert(c, t);
}

static void check(sb__api_threads_t *c, int step)
{
    thread_t *t = find(c, CONTACT);
    if (t == NULL)
        return; /* given up: the next read refills */
    mnote_t live[MAX_MODEL];
    int n = sorted_live(live);
    if (t->complete)
        CHECK_EQ_INT(t->n, n < THREAD_NOTES ? n : THREAD_NOTES);
    else
        CHECK(t->n <= THREAD_NOTES && n > t->n - 1);
    CHECK(t->n <= n);
    for (int i = 0; i < t->n && i < n; i++) {
        if (!CHECK_EQ_STR(t->notes[i].id, live[i].id)) {
            fprintf(stderr, "step %d, note %d of %d\n", step, i, t->n);
            return;
        }
        char want[64];
        snprintf(want, sizeof(want), "\"body\":\"%s\"", live[i].body);
        CHECK(strstr(t->notes[i].json, want) != NULL);
    }
    size_t bytes = (size_t)t->cap * sizeof(tnote_t);
    for (int i = 0; i < t->n; i++)
        bytes += t->notes[i].len;
    CHECK_EQ_UINT(t->bytes, bytes);
    CHECK_EQ_UINT(c->bytes, t->bytes);
}

static void test_random_walk(void)
{
    sb__api_threads_t *c = calloc(1, sizeof(*c));
    c->lru.next = c->lru.prev = &c->lru;
    c->sub = (sb_sub_t *)1; /* pretend to be subscribed; never dereferenced here */
    int64_t now = 1763700000000000LL;
    refill(c);
    for (int step = 0; step < 6000; step++) {
        uint64_t r = next_rand() % 100;
        int live_count = 0;
        for (int i = 0; i < nmodel; i++)
            live_count += model[i].live;
        if ((r < 60 || live_count == 0) && nmodel < MAX_MODEL) {
            mnote_t *m = &model[nmodel++];
            sb_uuid_t u;
            sb_uuid_v4(&u);
            sb_uuid_format(&u, m->id);
            /* Mostly later than every note, sometimes earlier (clock skew between processes),
             * sometimes the same microsecond (ties break on the id). */
            uint64_t k = next_rand() % 10;
            m->at = k < 7 ? (now += 1000) : k < 9 ? now - (int64_t)(next_rand() % 1000000) : now;
            snprintf(m->body, sizeof(m->body), "b%d", step);
            m->live = true;
            deliver(c, "NoteAdded",
                    json_pack("{s:s, s:s, s:s, s:b, s:[], s:o}", "note_id", m->id, "author_id", AUTHOR,
                              "body", m->body, "private", 0, "mentions", "at", at_json(m->at)));
        } else if (r < 80 && live_count > 0) {
            int i;
            do
                i = (int)(next_rand() % (uint64_t)nmodel);
            while (!model[i].live);
            snprintf(model[i].body, sizeof(model[i].body), "e%d", step);
            deliver(c, "NoteEdited",
                    json_pack("{s:s, s:s, s:[], s:s, s:o}", "note_id", model[i].id, "body", model[i].body,
                              "mentions", "by", AUTHOR, "at", at_json(now)));
        } else if (live_count > 0) {
            int i;
            do
                i = (int)(next_rand() % (uint64_t)nmodel);
            while (!model[i].live);
            model[i].live = false;
            deliver(c, "NoteDeleted",
                    json_pack("{s:s, s:s, s:o}", "note_id", model[i].id, "by", AUTHOR, "at", at_json(now)));
        }
        if (nmodel == MAX_MODEL) {
            /* compact: forget deleted notes so the walk can go on */
            int k = 0;
            for (int i = 0; i < nmodel; i++)
                if (model[i].live)
                    model[k++] = model[i];
            nmodel = k;
        }
        check(c, step);
        if (find(c, CONTACT) == NULL)
            refill(c);
    }
    /* Events at or before the fill's checkpoint are already in the rows: ignored. */
    thread_t *t = find(c, CONTACT);
    int before = t->n;
    int64_t saved = position;
    position = t->base - 1;
    deliver(c, "NoteAdded",
            json_pack("{s:s, s:s, s:s, s:b, s:[], s:o}", "note_id", "99999999-9999-4999-8999-999999999999",
                      "author_id", AUTHOR, "body", "old", "private", 0, "mentions", "at", at_json(0)));
    CHECK_EQ_INT(find(c, CONTACT)->n, before);
    position = saved;
    deliver(c, "ContactDeleted",
            json_pack("{s:[], s:s, s:s}", "cancelled_message_ids", "by", AUTHOR, "at", "x"));
    CHECK(find(c, CONTACT) == NULL);
    c->sub = NULL;
    sb__api_threads_free(c);
}

/* A cache (pretending to be subscribed) holding the contact's thread, without notes. */
static sb__api_threads_t *empty_thread(void)
{
    sb__api_threads_t *c = calloc(1, sizeof(*c));
    c->lru.next = c->lru.prev = &c->lru;
    c->sub = (sb_sub_t *)1;
    nmodel = 0;
    refill(c);
    return c;
}

/* Drops the thread, checks that the cache's byte count returns to 0, and frees the cache. */
static void free_emptied(sb__api_threads_t *c)
{
    drop(c, find(c, CONTACT));
    CHECK_EQ_UINT(c->bytes, 0);
    c->sub = NULL;
    sb__api_threads_free(c);
}

/* The cache's page for reader as a string of its own (NULL on a miss). */
static char *page_copy(sb__api_threads_t *c, const char *reader, int limit)
{
    sb__api_page_t *p = sb__api_threads_page(c, CONTACT, WS, reader, limit, false);
    if (p == NULL)
        return NULL;
    size_t len;
    const char *text = sb__api_page_text(p, &len);
    CHECK_EQ_UINT(strlen(text), len);
    char *copy = strdup(text);
    sb__api_page_release(p);
    return copy;
}

/* A reader sees their own private notes and nobody else's; a full page has a cursor. */
static void test_page_privacy(void)
{
    sb__api_threads_t *c = empty_thread();
    static const char *const authors[] = {"00000000-0000-7000-8000-00000000000a",
                                          "00000000-0000-7000-8000-00000000000b"};
    for (int i = 0; i < 6; i++) {
        char id[SB_UUID_STRLEN + 1];
        snprintf(id, sizeof(id), "00000000-0000-7000-8000-%012d", i);
        deliver(c, "NoteAdded",
                json_pack("{s:s, s:s, s:s, s:b, s:[], s:o}", "note_id", id, "author_id", authors[i % 2],
                          "body", "x", "private", i >= 4, "mentions", "at", at_json(1000000 + i)));
    }
    char *a = page_copy(c, authors[0], 10);
    char *b = page_copy(c, authors[1], 10);
    char *two = page_copy(c, authors[1], 2);
    if (CHECK(a != NULL && b != NULL && two != NULL)) {
        CHECK(strstr(a, "000000000004") != NULL && strstr(a, "000000000005") == NULL);
        CHECK(strstr(b, "000000000005") != NULL && strstr(b, "000000000004") == NULL);
        CHECK(strstr(a, "\"next_cursor\":null") != NULL);
        CHECK(strstr(two, "\"next_cursor\":\"") != NULL);
        json_t *j = json_loads(a, 0, NULL);
        CHECK(j != NULL && json_array_size(json_object_get(j, "items")) == 5);
        json_decref(j);
    }
    CHECK(sb__api_threads_page(c, CONTACT, "99999999-9999-7999-8999-999999999999", authors[0], 10, false) ==
          NULL);
    free(a);
    free(b);
    free(two);
    c->sub = NULL;
    sb__api_threads_free(c);
}

/* The rendered page is kept and shared while the thread does not change: a request still sending
 * it keeps it alive after the thread moves on; the next read renders the change. */
static void test_page_shared(void)
{
    sb__api_threads_t *c = empty_thread();
    static const char *const readers[] = {"00000000-0000-7000-8000-00000000000a",
                                          "00000000-0000-7000-8000-00000000000b"};
    char id[SB_UUID_STRLEN + 1];
    for (int i = 0; i < 3; i++) {
        snprintf(id, sizeof(id), "00000000-0000-7000-8000-%012d", i);
        deliver(c, "NoteAdded",
                json_pack("{s:s, s:s, s:s, s:b, s:[], s:o}", "note_id", id, "author_id", readers[0], "body",
                          "x", "private", 0, "mentions", "at", at_json(1000000 + i)));
    }
    thread_t *t = find(c, CONTACT);
    size_t bytes = t->bytes;
    /* No private notes: every reader gets the same page, rendered once. */
    sb__api_page_t *p1 = sb__api_threads_page(c, CONTACT, WS, readers[0], 10, false);
    sb__api_page_t *p2 = sb__api_threads_page(c, CONTACT, WS, readers[1], 10, false);
    CHECK(p1 != NULL && p1 == p2);
    CHECK_EQ_INT(p1->refs, 3);
    CHECK_EQ_UINT(t->bytes, bytes + p1->len);
    CHECK_EQ_UINT(c->bytes, t->bytes);
    /* Another limit is another page. */
    sb__api_page_t *p3 = sb__api_threads_page(c, CONTACT, WS, readers[1], 2, false);
    CHECK(p3 != NULL && p3 != p1 && strstr(p3->text, "\"next_cursor\":\"") != NULL);
    CHECK_EQ_INT(p1->refs, 2); /* the thread let go of it: the two requests hold it */
    sb__api_page_release(p2);
    /* A change forgets the page; the one still being sent stays intact. */
    snprintf(id, sizeof(id), "00000000-0000-7000-8000-%012d", 3);
    deliver(c, "NoteAdded",
            json_pack("{s:s, s:s, s:s, s:b, s:[], s:o}", "note_id", id, "author_id", readers[1], "body", "y",
                      "private", 1, "mentions", "at", at_json(1000003)));
    CHECK(t->page == NULL);
    CHECK(strstr(p1->text, id) == NULL && strstr(p1->text, "\"items\":[{") != NULL);
    sb__api_page_release(p1);
    sb__api_page_release(p3);
    /* Now a private note makes pages differ by reader. */
    sb__api_page_t *a = sb__api_threads_page(c, CONTACT, WS, readers[0], 10, false);
    sb__api_page_t *b = sb__api_threads_page(c, CONTACT, WS, readers[1], 10, false);
    if (CHECK(a != NULL && b != NULL)) {
        CHECK(a != b);
        CHECK(strstr(a->text, id) == NULL);
        CHECK(strstr(b->text, id) != NULL);
        sb__api_page_t *b2 = sb__api_threads_page(c, CONTACT, WS, readers[1], 10, false);
        CHECK(b2 == b);
        sb__api_page_release(b2);
        sb__api_page_release(a);
        sb__api_page_release(b);
    }
    free_emptied(c);
}

/* text inflated from gzip (malloc'd, NUL-terminated), or NULL when it is not valid gzip. */
static char *gunzip(const char *gz, size_t len)
{
    size_t cap = 1 << 20;
    char *out = malloc(cap + 1);
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (out == NULL || inflateInit2(&z, 16 + 15) != Z_OK) {
        free(out);
        return NULL;
    }
    z.next_in = (Bytef *)gz;
    z.avail_in = (uInt)len;
    z.next_out = (Bytef *)out;
    z.avail_out = (uInt)cap;
    int rc = inflate(&z, Z_FINISH);
    size_t n = z.total_out;
    inflateEnd(&z);
    if (rc != Z_STREAM_END) {
        free(out);
        return NULL;
    }
    out[n] = '\0';
    return out;
}

static void add_note(sb__api_threads_t *c, int i, const char *body)
{
    char id[SB_UUID_STRLEN + 1];
    snprintf(id, sizeof(id), "00000000-0000-7000-8000-%012d", i);
    deliver(c, "NoteAdded",
            json_pack("{s:s, s:s, s:s, s:b, s:[], s:o}", "note_id", id, "author_id", AUTHOR, "body", body,
                      "private", 0, "mentions", "at", at_json(1000000 + i)));
}

/* A page's gzip copy is made on the first read that asks for it, decodes to exactly the page's
 * text, is counted in the cache's bytes, and goes with the page when the thread changes: the
 * next gzip read carries the change.  Small pages get none. */
static void test_page_gzip(void)
{
    sb__api_threads_t *c = empty_thread();
    add_note(c, 0, "short");
    thread_t *t = find(c, CONTACT);
    sb__api_page_t *small = sb__api_threads_page(c, CONTACT, WS, AUTHOR, 20, true);
    size_t len = 0;
    if (CHECK(small != NULL)) {
        CHECK(small->len < SB_HTTP_GZIP_MIN);
        CHECK(sb__api_page_gzip(small, &len) == NULL);
        sb__api_page_release(small);
    }
    for (int i = 1; i < 20; i++)
        add_note(c, i, "called back about the quote; the customer wants delivery on Tuesday morning");
    /* Identity readers alone never pay for compression. */
    sb__api_page_t *plain = sb__api_threads_page(c, CONTACT, WS, AUTHOR, 20, false);
    if (CHECK(plain != NULL)) {
        CHECK(sb__api_page_gzip(plain, &len) == NULL);
        sb__api_page_release(plain);
    }
    size_t before = t->bytes;
    sb__api_page_t *p = sb__api_threads_page(c, CONTACT, WS, AUTHOR, 20, true);
    const char *gz = p != NULL ? sb__api_page_gzip(p, &len) : NULL;
    if (CHECK(gz != NULL)) {
        CHECK(p == plain); /* the same page, now with its copy */
        CHECK(len < p->len / 3);
        CHECK_EQ_UINT(t->bytes, before + len);
        CHECK_EQ_UINT(c->bytes, t->bytes);
        char *text = gunzip(gz, len);
        CHECK(text != NULL && strlen(text) == p->len && memcmp(text, p->text, p->len) == 0);
        free(text);
        /* Compressed once: the next gzip read shares the same bytes. */
        sb__api_page_t *again = sb__api_threads_page(c, CONTACT, WS, AUTHOR, 20, true);
        size_t len2;
        CHECK(again == p && sb__api_page_gzip(again, &len2) == gz && len2 == len);
        sb__api_page_release(again);
    }
    /* A new note: the page and its copy are forgotten (the request sending them keeps them); the
     * next gzip read decodes to the new page. */
    add_note(c, 20, "a note after the page was compressed");
    CHECK(t->page == NULL);
    CHECK_EQ_UINT(c->bytes, t->bytes);
    sb__api_page_t *q = sb__api_threads_page(c, CONTACT, WS, AUTHOR, 21, true);
    const char *gz2 = q != NULL ? sb__api_page_gzip(q, &len) : NULL;
    if (CHECK(gz2 != NULL)) {
        char *text = gunzip(gz2, len);
        CHECK(text != NULL && strstr(text, "a note after the page was compressed") != NULL);
        CHECK(text != NULL && strlen(text) == q->len && memcmp(text, q->text, q->len) == 0);
        free(text);
        sb__api_page_release(q);
    }
    if (p != NULL) {
        char *old = gunzip(gz, p->gz_len);
        CHECK(old != NULL && strstr(old, "a note after") == NULL);
        free(old);
        sb__api_page_release(p);
    }
    free_emptied(c);
}

int main(void)
{
    SBTEST_RUN(test_random_walk);
    SBTEST_RUN(test_page_privacy);
    SBTEST_RUN(test_page_shared);
    SBTEST_RUN(test_page_gzip);
    return sbtest_summary();
}
