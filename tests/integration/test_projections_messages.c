/* The messages read model when a log records one message twice: projections/messages.sql inserts a
 * batch's MessageReceived with a plain INSERT and, only when a unique key refuses one, inserts the
 * batch again skipping the rows already there.  Either way the first event of a message id, and
 * the first inbound message of a provider id, is the one kept, and the rest of the batch is not
 * lost.  Events are written straight into the log (the deciders would refuse the repeats).
 *
 * And live batches of inbound messages between replies: analytics.sql's response times take a
 * short path for a batch without replies (only contacts not yet waiting start to), the full one
 * for a batch with one; the inbox counts them all. */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/log.h"
#include "events/codec.h"
#include "sbtest.h"
#include "test_projections_support.h"

#define WS "0190a0f0-0000-7000-8000-000000000001"
#define C1 "0190a0f0-0000-7000-8000-0000000000c1"
#define C2 "0190a0f0-0000-7000-8000-0000000000c2"
#define M(n) "0190a0f0-0000-7000-8000-00000000000" #n

/* Appends an event of type to contact's stream, its payload given as JSON. */
static bool append(PGconn *c, const char *contact, const char *type, const char *json)
{
    char stream[64], version[32];
    snprintf(stream, sizeof(stream), "contact-%s", contact);
    snprintf(version, sizeof(version), "%lld", pjt_num(c, "SELECT count(*) + 1 FROM events"));
    sb_buf_t mp = SB_BUF_INIT;
    char err[128];
    bool ok = CHECK_EQ_INT(sb_codec_from_json_text(json, strlen(json), &mp, err, sizeof(err)), 0);
    const char *values[5] = {stream, version, type, mp.data, "\x80"};
    int lengths[5] = {0, 0, 0, (int)mp.len, 1};
    int formats[5] = {0, 0, 0, 1, 1};
    PGresult *r = PQexecParams(c,
                               "INSERT INTO events (stream, version, type, workspace_id, payload, metadata) "
                               "VALUES ($1, $2, $3, '" WS "', $4, $5)",
                               5, NULL, values, lengths, formats, 0);
    ok = ok && CHECK(PQresultStatus(r) == PGRES_COMMAND_OK);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        fprintf(stderr, "append: %s", PQresultErrorMessage(r));
    PQclear(r);
    sb_buf_free(&mp);
    return ok;
}

/* Appends, in one transaction (so that the runner sees them together), MessageReceived events:
 * each of n rows {contact, message id, provider id, body}. */
static bool receive(PGconn *c, const char *const (*msgs)[4], int n)
{
    bool ok = pjt_exec(c, "BEGIN");
    for (int i = 0; ok && i < n; i++) {
        char json[512];
        snprintf(
            json, sizeof(json),
            "{\"message_id\":\"%s\",\"channel\":\"sms\",\"direction\":\"inbound\",\"from\":\"+14155550100\","
            "\"to\":\"+14155550199\",\"body\":\"%s\",\"media_urls\":[],\"provider_id\":\"%s\","
            "\"received_at\":\"2026-11-22T00:00:0%dZ\"}",
            msgs[i][1], msgs[i][3], msgs[i][2], i);
        ok = append(c, msgs[i][0], "MessageReceived", json);
    }
    return pjt_exec(c, ok ? "COMMIT; SELECT pg_notify('sb_events', '')" : "ROLLBACK") && ok;
}

static void test_repeats(void)
{
    char *ci;
    const char *dir = SB_SOURCE_DIR "/projections";
    PGconn *c = pjt_db_open("pj_messages", dir, &ci);
    if (c == NULL)
        return;
    pjt_runner_t *r = pjt_start(ci, dir, 1, 2);

    static const char *const first[][4] = {{C1, M(1), "SM1", "one"}, {C1, M(2), "SM2", "two"}};
    CHECK(receive(c, first, 2));
    CHECK(pjt_wait_caught_up(c, 60));
    CHECK_EQ_INT(pjt_num(c, "SELECT count(*) FROM messages.messages"), 2);

    /* No repeat: the plain insert; then a batch with a provider id seen before (another contact,
     * another message id), a message id seen before, a provider id twice in the batch, and new
     * messages between them, which must all be kept. */
    static const char *const second[][4] = {
        {C2, M(3), "SM3", "three"},       {C2, M(4), "SM1", "repeated provider id"},
        {C2, M(1), "SM9", "repeated id"}, {C2, M(5), "SM5", "five"},
        {C1, M(6), "SM6", "six"},         {C1, M(7), "SM6", "provider id twice in the batch"},
    };
    CHECK(receive(c, second, 6));
    CHECK(pjt_wait_caught_up(c, 60));
    CHECK_EQ_INT(pjt_num(c, "SELECT count(*) FROM messages.messages"), 5);
    CHECK_EQ_INT(pjt_num(c, "SELECT count(*) FROM messages.messages WHERE body IN ('one', 'two', 'three', "
                            "'five', 'six')"),
                 5);
    CHECK_EQ_INT(pjt_num(c, "SELECT count(*) FROM messages.messages WHERE id = '" M(
                                1) "' AND contact_id = '" C1 "' AND provider_id = 'SM1'"),
                 1);
    /* The conversations count every event (they are the log's), whatever the messages kept. */
    CHECK_EQ_INT(pjt_num(c, "SELECT sum(messages) FROM conversations.conversations"), 8);

    /* Deleting a contact, in a batch with other events: its conversation goes, the scheduled
     * message it lists is cancelled at the deletion's time, the other contact's rows stay. */
    CHECK(pjt_exec(c, "BEGIN"));
    CHECK(append(c, C2, "MessageScheduled",
                 "{\"message_id\":\"" M(
                     8) "\",\"channel\":\"sms\",\"body\":\"later\",\"media_urls\":[],"
                        "\"created_at\":\"2026-11-22T00:01:00Z\",\"send_at\":\"2026-11-23T00:00:00Z\"}"));
    CHECK(pjt_exec(c, "COMMIT; SELECT pg_notify('sb_events', '')"));
    CHECK(pjt_wait_caught_up(c, 60));
    CHECK(pjt_exec(c, "BEGIN"));
    CHECK(append(
        c, C1, "MessageReceived",
        "{\"message_id\":\"" M(9) "\",\"channel\":\"sms\",\"body\":\"nine\",\"media_urls\":[],"
                                  "\"provider_id\":\"SM10\",\"received_at\":\"2026-11-22T00:02:00Z\"}"));
    CHECK(append(c, C2, "ContactDeleted", "{\"cancelled_message_ids\":[\"" M(8) "\"]}"));
    CHECK(pjt_exec(c, "COMMIT; SELECT pg_notify('sb_events', '')"));
    CHECK(pjt_wait_caught_up(c, 60));
    CHECK_EQ_INT(pjt_num(c, "SELECT count(*) FROM conversations.conversations WHERE contact_id = '" C2 "'"),
                 0);
    CHECK_EQ_INT(pjt_num(c, "SELECT messages FROM conversations.conversations WHERE contact_id = '" C1 "'"),
                 5);
    CHECK_EQ_INT(
        pjt_num(c, "SELECT count(*) FROM messages.messages m JOIN events e ON e.type = 'ContactDeleted' "
                   "WHERE m.id = '" M(8) "' AND m.status = 'cancelled' AND m.cancelled_at = e.recorded_at"),
        1);
    CHECK_EQ_INT(pjt_num(c, "SELECT count(*) FROM messages.messages"), 7);
    CHECK_EQ_INT(pjt_num(c, "SELECT count(*) FROM projection_state WHERE error IS NOT NULL"), 0);
    pjt_stop(r);
    pjt_db_close(c, ci, NULL);
}

/* Appends, in one transaction, a member's reply to contact (MessageQueued with an author) at time
 * at. */
static bool reply(PGconn *c, const char *contact, const char *id, const char *at)
{
    char json[512];
    snprintf(json, sizeof(json),
             "{\"message_id\":\"%s\",\"channel\":\"sms\",\"body\":\"reply\",\"media_urls\":[],"
             "\"author_id\":\"" C1 "\",\"created_at\":\"%s\"}",
             id, at);
    bool ok = pjt_exec(c, "BEGIN") && append(c, contact, "MessageQueued", json);
    return pjt_exec(c, ok ? "COMMIT; SELECT pg_notify('sb_events', '')" : "ROLLBACK") && ok;
}

/* Seconds from 2026-11-22T00:00:00Z to the time the query gives (-1 when it gives none). */
static long long at_seconds(PGconn *c, const char *query)
{
    char sql[512];
    snprintf(sql, sizeof(sql), "SELECT extract(epoch FROM (%s) - '2026-11-22T00:00:00Z')::bigint", query);
    return pjt_num(c, sql);
}

/* Batches of inbound messages alone (each its own batch: the runner is idle when it commits),
 * with replies between them: a contact starts waiting at its first unanswered message and keeps
 * that time through later ones; a reply ends the wait with its response time; a message after it
 * starts a new wait. */
static void test_waiting(void)
{
    char *ci;
    const char *dir = SB_SOURCE_DIR "/projections";
    PGconn *c = pjt_db_open("pj_waiting", dir, &ci);
    if (c == NULL)
        return;
    pjt_runner_t *r = pjt_start(ci, dir, 1, 2);

    /* C1 waits from second 0 (receive() stamps the i-th message of a batch at second i). */
    static const char *const b1[][4] = {{C1, M(1), "SM1", "one"}, {C1, M(2), "SM2", "two"}};
    CHECK(receive(c, b1, 2));
    CHECK(pjt_wait_caught_up(c, 60));
    CHECK_EQ_INT(at_seconds(c, "SELECT since FROM analytics.awaiting WHERE contact_id = '" C1 "'"), 0);
    /* C2 starts waiting at its first message (second 0); C1, already waiting, keeps second 0 (its
     * message here is at second 2). */
    static const char *const b2[][4] = {
        {C2, M(3), "SM3", "three"}, {C2, M(4), "SM4", "four"}, {C1, M(5), "SM5", "five"}};
    CHECK(receive(c, b2, 3));
    CHECK(pjt_wait_caught_up(c, 60));
    CHECK_EQ_INT(at_seconds(c, "SELECT since FROM analytics.awaiting WHERE contact_id = '" C1 "'"), 0);
    CHECK_EQ_INT(at_seconds(c, "SELECT since FROM analytics.awaiting WHERE contact_id = '" C2 "'"), 0);
    /* A reply to C1 at minute 1: answered after 60 s, C1 no longer waits, C2 still does. */
    CHECK(reply(c, C1, M(6), "2026-11-22T00:01:00Z"));
    CHECK(pjt_wait_caught_up(c, 60));
    CHECK_EQ_INT(pjt_num(c, "SELECT count(*) FROM analytics.responses"), 1);
    CHECK_EQ_INT(pjt_num(c, "SELECT seconds::bigint FROM analytics.responses WHERE contact_id = '" C1 "'"),
                 60);
    CHECK_EQ_INT(pjt_num(c, "SELECT count(*) FROM analytics.awaiting"), 1);
    /* C1 writes again (second 1 of its batch): a new wait, from then. */
    static const char *const b3[][4] = {{C2, M(7), "SM7", "seven"}, {C1, M(8), "SM8", "eight"}};
    CHECK(receive(c, b3, 2));
    CHECK(pjt_wait_caught_up(c, 60));
    CHECK_EQ_INT(at_seconds(c, "SELECT since FROM analytics.awaiting WHERE contact_id = '" C1 "'"), 1);
    CHECK_EQ_INT(at_seconds(c, "SELECT since FROM analytics.awaiting WHERE contact_id = '" C2 "'"), 0);
    CHECK_EQ_INT(pjt_num(c, "SELECT count(*) FROM analytics.awaiting"), 2);

    /* The inbox, batch by batch: C1 has 4 inbound messages (none read) and the reply, and
     * its last message is the eighth. */
    CHECK_EQ_INT(pjt_num(c, "SELECT messages FROM conversations.conversations WHERE contact_id = '" C1 "'"),
                 5);
    CHECK_EQ_INT(pjt_num(c, "SELECT unread FROM conversations.conversations WHERE contact_id = '" C1 "'"), 4);
    CHECK_EQ_INT(pjt_num(c, "SELECT count(*) FROM conversations.conversations WHERE contact_id = '" C1
                            "' AND last_message_id = '" M(8) "' AND last_direction = 'inbound'"),
                 1);
    CHECK_EQ_INT(pjt_num(c, "SELECT messages FROM conversations.conversations WHERE contact_id = '" C2 "'"),
                 3);
    CHECK_EQ_INT(pjt_num(c, "SELECT count(*) FROM projection_state WHERE error IS NOT NULL"), 0);
    pjt_stop(r);
    pjt_db_close(c, ci, NULL);
}

int main(void)
{
    sb_log_set_level(SB_LOG_WARN);
    SBTEST_RUN(test_repeats);
    SBTEST_RUN(test_waiting);
    return sbtest_summary();
}
