/* The event codec: payloads and metadata are stored as msgpack maps and shown as JSON.
 *
 * Every msgpack type converts to JSON: strings (validated UTF-8), integers of every width, floats
 * (NaN and infinities, which JSON lacks, become null), booleans, nil, arrays, maps (string keys;
 * integer and boolean keys are written as their decimal/literal text), and binary and extension
 * data as base64 strings.  Malformed msgpack, invalid UTF-8, trailing bytes and nesting deeper than
 * SB_CODEC_MAX_DEPTH are rejected with an error, never a crash.
 *
 * Details of the mapping:
 * - Depth counts containers: a top-level map is depth 1; SB_CODEC_MAX_DEPTH nested maps/arrays are
 *   accepted, one more is refused (decoding and encoding alike).
 * - Strings (and string keys) may not contain U+0000: the rest of the system handles strings as C
 *   strings, and jansson's parser refuses "\u0000" too, so nothing written can fail to read back.
 * - Integers are written exactly.  Those above INT64_MAX (only a uint64 can hold them) are valid
 *   JSON that jansson reads only with JSON_DECODE_INT_AS_REAL; in a jansson tree they are reals.
 * - Floats are written with the fewest digits that read back as the same float32/float64, and
 *   always as reals ("1.0", "-0.0", "1e+300").  A float32 in a jansson tree holds the double its
 *   text reads as (0.1f gives 0.1).
 * - Extension data becomes base64 of its bytes; the extension type is dropped.
 * - Map keys other than strings, integers and booleans (nil, floats, bin, ext, arrays, maps) are
 *   refused.  A repeated key is kept in JSON text; in a jansson tree the last value wins.
 * - On failure the output buffers are left as they were before the call. */
#ifndef SB_EVENTS_CODEC_H
#define SB_EVENTS_CODEC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"

#define SB_CODEC_MAX_DEPTH 64

/* Appends the JSON text of the msgpack value in mp[0..len) to out.  The whole input must be one
 * value.  0, or SB_ECODEC / SB_EUTF8 with a short reason in err (out is then left as it was;
 * older callers reset it anyway). */
int sb_codec_to_json(const char *mp, size_t len, sb_buf_t *out, char *err, size_t errlen);

/* The same, with every map's keys in the order PostgreSQL keeps a jsonb object's (shorter keys
 * first, then bytewise; a repeated key stays after the earlier one): a server parsing the text as
 * jsonb then finds each object's keys already sorted, which saves it the sort.  The projections
 * runner sends payloads this way. */
int sb_codec_to_json_sorted(const char *mp, size_t len, sb_buf_t *out, char *err, size_t errlen);

/* Decodes msgpack into a jansson value (same rules as above; binary becomes a base64 string).
 * On success *out is a new reference. */
int sb_codec_to_jansson(const char *mp, size_t len, json_t **out, char *err, size_t errlen);

/* Appends the msgpack encoding of a jansson value to out (objects become maps, integers the
 * smallest msgpack integer, reals float64).  0, SB_ECODEC (depth) or SB_EUTF8 (a string built with
 * json_stringn or a _nocheck constructor holding U+0000 or invalid UTF-8). */
int sb_codec_from_jansson(const json_t *j, sb_buf_t *out);

/* Parses JSON text (which must be an object) and encodes it as a msgpack map.  0, or SB_ECODEC /
 * SB_EUTF8 with the reason in err. */
int sb_codec_from_json_text(const char *json, size_t len, sb_buf_t *out, char *err, size_t errlen);

/* True when mp[0..len) is exactly one well-formed msgpack map satisfying the rules above. */
bool sb_codec_is_valid_map(const char *mp, size_t len);

/* True when s[0..len) is valid UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF). */
bool sb_utf8_is_valid(const char *s, size_t len);

/* Standard base64 with padding, appended to out. */
void sb_base64_encode(const void *p, size_t n, sb_buf_t *out);
/* Decodes standard base64 (padding optional, no whitespace, unused trailing bits zero) into out;
 * 0, SB_EINVAL or SB_ENOMEM. */
int sb_base64_decode(const char *s, size_t n, sb_buf_t *out);

#endif
