/* Content codings of responses (RFC 9110 §8.4, §12.5.3): whether a client accepts gzip, and gzip
 * itself.
 *
 * Only what the server keeps compressed is sent compressed (the thread cache's pages, api_thread.c):
 * compressing a response for one request costs more CPU than the bytes it saves are worth on a
 * nearby network (docs/api/README.md, "Compression"). */
#ifndef SB_HTTP_ENCODING_H
#define SB_HTTP_ENCODING_H

#include <stdbool.h>
#include <stddef.h>

#include <h2o.h>

/* Bodies shorter than this are sent as they are: the gzip framing (18 bytes) and the client's
 * inflate cost more than the few hundred bytes saved. */
#define SB_HTTP_GZIP_MIN 1024
/* Bodies longer than this are sent as they are: compressing them would hold the loop too long (about
 * half a millisecond of CPU at 256 KiB, level 1, on the machines in docs/benchmarks.md). */
#define SB_HTTP_GZIP_MAX (256u << 10)

/* Whether one Accept-Encoding field value (len bytes, not NUL-terminated) makes gzip acceptable:
 * "gzip" or "x-gzip" listed with a weight above 0, or, when neither is listed, "*" with a weight
 * above 0.  Codings are matched case-insensitively; a gzip weight of 0 ("gzip;q=0", "q=0.000")
 * refuses it even with "*"; a malformed weight counts as 0 (identity is always safe to send). */
bool sb_http_gzip_acceptable(const char *value, size_t len);

/* Whether req's Accept-Encoding fields (all of them, as one list) make gzip acceptable.  A request
 * without the field gets identity: RFC 9110 would allow any coding, but clients that send no
 * Accept-Encoding are usually not prepared to decode one.  req NULL: false. */
bool sb_http_accepts_gzip(h2o_req_t *req);

/* Vary: Accept-Encoding (the response's coding depends on it), and Content-Encoding: gzip (the
 * body is gzip).  Static values, nothing copied: for answers sent many times a second.  req NULL:
 * nothing. */
void sb_http_vary_coding(h2o_req_t *req);
void sb_http_gzip_coding(h2o_req_t *req);

/* len bytes of in compressed with gzip (the zlib library, RFC 1952 framing): a malloc'd buffer the
 * caller frees and its length in *out_len, or NULL when the result would not be smaller than the
 * input, len is outside SB_HTTP_GZIP_MIN..SB_HTTP_GZIP_MAX, or memory ran out.  CPU-bound: about
 * 25 µs for 5.7 kB of JSON (level 6), 0.3 ms for 64 KiB, then level 1 up to about 0.5 ms at the
 * maximum: for bodies compressed once and sent many times. */
char *sb_http_gzip(const char *in, size_t len, size_t *out_len);

#endif
