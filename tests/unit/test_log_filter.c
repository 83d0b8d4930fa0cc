/* sb_log_filter_match: what the follower asks of every event for every subscriber.  Checked
 * against a plain restatement of the rules over random filters and events built from names that
 * share prefixes (so an item that is a prefix of the name, or the name a prefix of the item, is
 * common), then a few cases by hand. */
#include "events/read.h"
#include "sbtest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Names that are prefixes of one another, empty, or differ only in their last byte. */
static const char *const names[] = {"",
                                    "c",
                                    "co",
                                    "con",
                                    "contact",
                                    "contacts",
                                    "contacu",
                                    "Message",
                                    "MessageRead",
                                    "MessageReceived",
                                    "MessageReceivedX",
                                    "MessageSent",
                                    "call",
                                    "calls",
                                    "user"};
#define NNAMES (int)(sizeof names / sizeof names[0])

static bool plain_in(const char *const *items, int n, const char *s, size_t len)
{
    for (int i = 0; i < n; i++)
        if (strlen(items[i]) == len && memcmp(items[i], s, len) == 0)
            return true;
    return false;
}

/* The rules as docs/event-log.md states them, written the simplest way. */
static bool plain_match(const sb_log_filter_t *f, const sb_event_t *ev)
{
    if (f->to_position > 0 && ev->position > f->to_position)
        return false;
    if (f->since_us != 0 && ev->recorded_at_us < f->since_us)
        return false;
    if (f->until_us != 0 && ev->recorded_at_us >= f->until_us)
        return false;
    if (f->has_workspace && (!ev->has_workspace || memcmp(f->workspace.b, ev->workspace.b, 16) != 0))
        return false;
    if (f->nstreams > 0 && !plain_in(f->streams, f->nstreams, ev->stream, strlen(ev->stream)))
        return false;
    if (f->ncategories > 0) {
        const char *dash = strchr(ev->stream, '-');
        size_t len = dash != NULL ? (size_t)(dash - ev->stream) : strlen(ev->stream);
        if (!plain_in(f->categories, f->ncategories, ev->stream, len))
            return false;
    }
    if (f->ntypes > 0 && !plain_in(f->types, f->ntypes, ev->type, strlen(ev->type)))
        return false;
    return true;
}

static int pick(int n)
{
    return rand() % n;
}

static void test_matches_plain_rules(void)
{
    srand(7);
    char streams[NNAMES][48];
    const char *stream_items[4], *category_items[4], *type_items[4];
    for (int i = 0; i < NNAMES; i++)
        snprintf(streams[i], sizeof streams[i], "%s-0190a7c4-1b2c-7d3e-8f4a-5b6c7d8e9f00", names[i]);
    long matched = 0, total = 0;
    int failures = 0;
    for (int round = 0; round < 200000 && failures < 5; round++) {
        sb_log_filter_t f = {0};
        f.nstreams = pick(3) == 0 ? pick(4) : 0;
        for (int i = 0; i < f.nstreams; i++)
            stream_items[i] = pick(2) ? streams[pick(NNAMES)] : names[pick(NNAMES)];
        f.streams = stream_items;
        f.ncategories = pick(2) == 0 ? pick(4) : 0;
        for (int i = 0; i < f.ncategories; i++)
            category_items[i] = names[pick(NNAMES)];
        f.categories = category_items;
        f.ntypes = pick(2) == 0 ? pick(4) : 0;
        for (int i = 0; i < f.ntypes; i++)
            type_items[i] = names[pick(NNAMES)];
        f.types = type_items;
        f.to_position = pick(4) == 0 ? 1 + pick(10) : 0;
        f.has_workspace = pick(4) == 0;
        f.workspace.b[0] = (unsigned char)pick(2);

        sb_event_t ev = {0};
        ev.position = 1 + pick(10);
        /* A stream with a category, or a bare name (no dash: the whole name is its category). */
        ev.stream = pick(4) ? streams[pick(NNAMES)] : names[pick(NNAMES)];
        ev.type = names[pick(NNAMES)];
        ev.has_workspace = pick(2);
        ev.workspace.b[0] = (unsigned char)pick(2);

        bool want = plain_match(&f, &ev), got = sb_log_filter_match(&f, &ev);
        total++;
        matched += want;
        if (!CHECK(got == want)) {
            failures++;
            fprintf(stderr, "  stream %s type %s: want %d\n", ev.stream, ev.type, want);
        }
    }
    /* The random cases reach both answers. */
    CHECK(matched > total / 20);
    CHECK(matched < total - total / 20);
}

static void test_by_hand(void)
{
    const char *types[] = {"MessageReceived", "MessageSent"};
    const char *categories[] = {"contact"};
    sb_log_filter_t f = {.types = types, .ntypes = 2, .categories = categories, .ncategories = 1};
    sb_event_t ev = {
        .position = 1, .stream = "contact-0190a7c4-1b2c-7d3e-8f4a-5b6c7d8e9f00", .type = "MessageReceived"};
    CHECK(sb_log_filter_match(&f, &ev));
    ev.type = "MessageReceivedX"; /* an item is a prefix of the type */
    CHECK(!sb_log_filter_match(&f, &ev));
    ev.type = "Message"; /* the type is a prefix of an item */
    CHECK(!sb_log_filter_match(&f, &ev));
    ev.type = "MessageSent";
    CHECK(sb_log_filter_match(&f, &ev));
    ev.stream = "contacts-0190a7c4-1b2c-7d3e-8f4a-5b6c7d8e9f00";
    CHECK(!sb_log_filter_match(&f, &ev));
    ev.stream = "contact"; /* no id: the whole name is the category */
    CHECK(sb_log_filter_match(&f, &ev));
    CHECK(sb_log_filter_match(NULL, &ev));
}

int main(void)
{
    SBTEST_RUN(test_matches_plain_rules);
    SBTEST_RUN(test_by_hand);
    return sbtest_summary();
}
