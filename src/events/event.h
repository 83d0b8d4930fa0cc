/* An event as stored in the log (SPEC §4). */
#ifndef SB_EVENTS_EVENT_H
#define SB_EVENTS_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/uuid.h"

/* Expected-version sentinels for appends. */
#define SB_VERSION_ANY (-1)    /* append whatever the stream's version */
#define SB_VERSION_NO_STREAM 0 /* the stream must have no events yet */

/* A stored event, as readers receive it.  Strings and payload bytes are borrowed from the page or
 * batch that delivered it; copy what you keep. */
typedef struct sb_event_s {
    int64_t position;
    int64_t version;
    int64_t recorded_at_us;
    const char *stream;
    const char *type;
    bool has_workspace;
    sb_uuid_t workspace;
    const char *payload; /* msgpack map */
    size_t payload_len;
    const char *metadata; /* msgpack map */
    size_t metadata_len;
} sb_event_t;

/* An event to append: type and msgpack payload and metadata.  Borrowed until the append's
 * callback. */
typedef struct sb_new_event_s {
    const char *type;
    const char *payload;
    size_t payload_len;
    const char *metadata;
    size_t metadata_len;
} sb_new_event_t;

#endif
