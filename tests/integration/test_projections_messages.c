/* The messages read model when a log records one message twice: projections/messages.sql inserts a
 * batch's MessageReceived with a plain INSERT and, only when a unique key refuses one, inserts the
 * batch again skipping the rows already there.  Either way the first event of a message id, and
 * the first inbound message of a provider id, is the one kept, and the rest of the batch is not
 * lost.  Events are written straight into the log (the deciders would refuse the repeats). */
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

int main(void)
{
    sb_log_set_level(SB_LOG_WARN);
    SBTEST_RUN(test_repeats);
    return sbtest_summary();
}
