/* Appending to the event log with group commit.
 *
 * Each loop has one appender with its own connection; a process's appenders to one database share
 * one queue and commit one batch at a time (see sb_appender_open).  A command is a list of events
 * for one stream with the version the stream is expected to be at.  Commands submitted while a
 * commit is in flight wait, on every loop, and go to PostgreSQL together in the next transaction
 * (one pipelined round trip: BEGIN, the log lock, one INSERT for the whole batch, NOTIFY, COMMIT),
 * so throughput grows with concurrency.  Each command is atomic: all of its events are stored or none.  A
 * command whose expected version does not match gets SB_ECONFLICT and stores nothing, without failing the
 * others in its batch.  Callbacks fire only after COMMIT succeeded (or failed).
 *
 * Ordering: every append transaction holds one advisory lock from before its version checks to its
 * commit, so positions are drawn in commit order and a reader following the log by position never
 * skips an event (docs/event-log.md). */
#ifndef SB_EVENTS_APPEND_H
#define SB_EVENTS_APPEND_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "events/event.h"

typedef struct sb_appender_s sb_appender_t;
typedef struct sb_append_s sb_append_t;
typedef struct sb_follower_s sb_follower_t;

/* The outcome of one command.
 *   status 0:            stored; first_position..last_position, new version = version.
 *   status SB_ECONFLICT: nothing stored; version holds the stream's current version.
 *   status SB_EUNKNOWN:  the connection broke during COMMIT: the command may or may not be stored
 *                        (read the stream to find out).
 *   other negative:      nothing stored (SB_EDB with message, SB_EDBDOWN, SB_ESHUTDOWN, SB_EINVAL). */
typedef void (*sb_append_cb)(sb_append_t *a, int status);

struct sb_append_s {
    /* set by the caller; borrowed until the callback */
    const char *stream;       /* "<category>-<uuid>" */
    int64_t expected_version; /* SB_VERSION_ANY, SB_VERSION_NO_STREAM, or the current version */
    bool has_workspace;
    sb_uuid_t workspace;
    const sb_new_event_t *events;
    int nevents; /* 1..SB_APPEND_MAX_EVENTS */
    sb_append_cb cb;
    void *data;
    /* The payloads and metadata were just encoded by this process from values it checked
     * (sb_codec_from_jansson checks every string as the decoder would): they are not read through
     * again to validate them.  False (the default): every map is checked. */
    bool encoded_checked;
    /* The stream is known to have reached expected_version (> 0): the caller read that version
     * from the log or had an append to it committed (the log never loses an event).  The appender
     * then leaves the version check to the log's unique (stream, version) key rather than reading
     * the stream's version; a conflict costs the batch a second attempt.  Never set it for a
     * version that was not read or committed: an expected version beyond the stream's would leave
     * a gap in its versions.  (A new stream, SB_VERSION_NO_STREAM, is checked that way always.) */
    bool expected_known;
    /* set for the callback */
    int64_t first_position;
    int64_t last_position;
    int64_t version;
    int64_t recorded_at_us;
    const char *error; /* server message for SB_EDB; valid during the callback */
    /* internal */
    sb_append_t *_next;
    sb_appender_t *_owner; /* the appender it was submitted to, which calls it back */
    int _status;
    char *_error_copy; /* error, copied for a callback on another loop than the batch's */
};

#define SB_APPEND_MAX_EVENTS 64
#define SB_APPEND_MAX_EVENT_BYTES (1024 * 1024) /* payload + metadata per event */

/* The time a batch takes from being sent to its answer (the commit included), in buckets of these
 * upper bounds (µs); one more bucket counts the batches slower than the last. */
#define SB_APPEND_LATENCY_BUCKETS 12
extern const uint32_t sb_append_latency_bounds_us[SB_APPEND_LATENCY_BUCKETS];

typedef struct sb_appender_stats_s {
    uint64_t commands;
    uint64_t events;
    uint64_t conflicts;
    uint64_t batches;
    uint64_t failures;
    uint64_t notifies; /* batches that sent a NOTIFY (see sb_appender_set_follower) */
    uint64_t rechecks; /* batches sent again because a version assumed known was taken */
    /* The batches this appender sent, by the time to their answer (sb_append_latency_bounds_us),
     * and the sum of those times: a commit that stalls (the disk's flush) holds every command of
     * the process behind it, so this is where a stall in the requests' latency shows its cause. */
    uint64_t commit_latency[SB_APPEND_LATENCY_BUCKETS + 1];
    uint64_t commit_latency_sum_us;
    int queued;
    /* The most batches the appenders of its group (the process's, to its database) ever had in
     * flight at once: 1, as they share one queue (see sb_appender_open). */
    int process_in_flight_max;
} sb_appender_stats_t;

/* Creates the appender for loop with its own connection.  NULL on allocation failure.  The
 * appenders of one process with the same conninfo form a group with one queue: a command submitted
 * to any of them joins the group's next batch, which one of them (the one whose batch just returned,
 * or the first to get a command while none was in flight) sends on its connection, so the process
 * commits one batch at a time holding every command that arrived meanwhile, from every loop (the
 * log's lock serialises commits anyway; a second batch waiting in PostgreSQL for it would only split
 * what could be one commit in two).  Each command is still called back on its own appender's
 * loop. */
sb_appender_t *sb_appender_open(uv_loop_t *loop, const char *conninfo);
/* Fails queued commands with SB_ESHUTDOWN, lets the in-flight batch finish, then closes. */
void sb_appender_close(sb_appender_t *ap, void (*on_closed)(void *data), void *data);

/* Submits a command; call on the appender's loop.  The callback fires later, never inside this
 * call.  Invalid commands (bad stream name, no events, too many or too big events, malformed
 * payload) fail with SB_EINVAL from the callback. */
void sb_append(sb_appender_t *ap, sb_append_t *a);

/* Hands every batch this appender commits to f, the follower of its process (events/follow.h,
 * sb_follower_offer), which then need not read it back from the log, and makes its NOTIFY carry
 * f's origin so that f ignores it; the NOTIFY is sent only while f says another process follows
 * the log (sb_follower_others), whose followers read the log on it as before.  Call on the
 * appender's loop before its first sb_append; f must outlive the appender's last callback. */
void sb_appender_set_follower(sb_appender_t *ap, sb_follower_t *f);

void sb_appender_get_stats(const sb_appender_t *ap, sb_appender_stats_t *out);

#endif
