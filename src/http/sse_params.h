/* What a client asks of an SSE stream (SPEC §6): where to resume and which events it wants.
 *
 *   GET /v1/workspaces/{ws}/events/stream?after=POS&types=A,B&streams=S1,S2&categories=c1,c2
 *                                        &access_token=TOKEN
 *   Last-Event-ID: POS
 *
 * Parsing is pure (no h2o, no I/O) so it is unit-tested and fuzzed directly.  Values are
 * percent-decoded ('+' is a space, as in forms); a list may also be given by repeating its
 * parameter.  Unknown parameters are ignored (browsers' cache busters).  Last-Event-ID, which an
 * EventSource sends on reconnection, wins over ?after=.  Every size is bounded: at most
 * SB_SSE_MAX_ITEMS per list, SB_SSE_MAX_QUERY bytes of query. */
#ifndef SB_HTTP_SSE_PARAMS_H
#define SB_HTTP_SSE_PARAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SB_SSE_MAX_ITEMS 32
#define SB_SSE_MAX_QUERY 8192
#define SB_SSE_MAX_TYPE 64 /* bytes of an event type name */

typedef struct sb_sse_params_s {
    bool has_after;
    int64_t after;     /* resume after this position (>= 0) */
    const char *token; /* ?access_token=, decoded; NULL when absent */
    int ntypes, nstreams, ncategories;
    const char *types[SB_SSE_MAX_ITEMS];
    const char *streams[SB_SSE_MAX_ITEMS];
    const char *categories[SB_SSE_MAX_ITEMS];
    char *_buf; /* every string above points into this block */
} sb_sse_params_t;

/* Parses query (the bytes after '?', NULL or len 0 for none) and the Last-Event-ID header value
 * (NULL when absent).  0 with *out filled (free with sb_sse_params_free), or SB_EINVAL with the
 * offending parameter's name in *field and a short reason in err (out then holds nothing to free),
 * or SB_ENOMEM. */
int sb_sse_params_parse(const char *query, size_t len, const char *last_event_id, size_t lei_len,
                        sb_sse_params_t *out, const char **field, char *err, size_t errlen);

void sb_sse_params_free(sb_sse_params_t *p);

/* Parses a non-negative decimal position (at most 18 digits, no sign, no spaces).  0 or
 * SB_EINVAL. */
int sb_sse_parse_position(const char *s, size_t len, int64_t *out);

#endif
