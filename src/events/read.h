/* Reading the log: one stream by version, or the whole log by position with filters.  Both are
 * asynchronous, on a loop's sb_pg_t, and return one page at a time so memory stays bounded. */
#ifndef SB_EVENTS_READ_H
#define SB_EVENTS_READ_H

#include <stdbool.h>
#include <stdint.h>

#include "db/pg.h"
#include "events/event.h"

/* Which events of the log to read.  Zero/NULL fields do not filter. */
typedef struct sb_log_filter_s {
    int64_t to_position; /* inclusive upper bound; 0 = none */
    int64_t since_us;    /* recorded_at >= since; 0 = none */
    int64_t until_us;    /* recorded_at < until; 0 = none */
    bool has_workspace;
    sb_uuid_t workspace;
    const char *const *streams; /* exact stream names */
    int nstreams;
    const char *const *categories;
    int ncategories;
    const char *const *types;
    int ntypes;
} sb_log_filter_t;

typedef struct sb_read_s sb_read_t;

/* A page of events, valid during the callback only.  more is true when the page was full (there
 * may be more after the last event); scanned_to is the position to continue after. */
typedef struct sb_event_page_s {
    sb_event_t *events;
    int n;
    bool more;
    int64_t scanned_to;
} sb_event_page_t;

/* status 0 with the page, or a negative code (error holds the server message for SB_EDB). */
typedef void (*sb_read_cb)(sb_read_t *r, int status, const sb_event_page_t *page);

struct sb_read_s {
    sb_read_cb cb;
    void *data;
    const char *error; /* valid during the callback */
    /* internal */
    sb_pg_req_t _req;
    char *_params[12];
    int _nparams;
    int _limit;
    char *_sql;
    sb_event_t *_events;
};

/* Reads up to limit events with position > after matching f (f may be NULL), in position order.
 * The filter is copied; r is owned by the caller and must stay alive until cb. */
void sb_read_log(sb_pg_t *pg, sb_read_t *r, int64_t after, const sb_log_filter_t *f, int limit, sb_read_cb cb,
                 void *data);

/* Reads up to limit events of stream with version > after_version, in version order. */
void sb_read_stream(sb_pg_t *pg, sb_read_t *r, const char *stream, int64_t after_version, int limit,
                    sb_read_cb cb, void *data);

/* Builds the WHERE clause and parameters for f, for tools that run their own queries; the
 * parameter values are appended to params (caller frees each).  Returns the SQL fragment
 * (" AND ..."), caller frees. */
char *sb_log_filter_sql(const sb_log_filter_t *f, int first_param, char **params, int *nparams);

/* A deep copy of f (NULL on allocation failure); free with sb_log_filter_free. */
sb_log_filter_t *sb_log_filter_copy(const sb_log_filter_t *f);
void sb_log_filter_free(sb_log_filter_t *f);

/* True when ev matches f. */
bool sb_log_filter_match(const sb_log_filter_t *f, const sb_event_t *ev);

#endif
