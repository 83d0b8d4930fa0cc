/* A stand-in for klib's khash.h, which h2o's <h2o/http2_internal.h> includes but Debian's
 * libh2o-dev does not ship.  src/http/sse.c needs that header only for h2o_http2_stream_reset and
 * the connection's write buffer (to reset one stalled HTTP/2 stream); it never touches the
 * connection's stream table.  So this declares just enough for the header to compile: the table
 * is an opaque pointer as far as the connection's layout goes, and the lookup helpers below are
 * used only by an inline function of that header that nothing here calls.  If a real khash.h is
 * installed next to h2o's headers, it is found first and this file is unused. */
#ifndef SB_KHASH_STANDIN_H
#define SB_KHASH_STANDIN_H

#include <stdint.h>

typedef uint32_t khint_t;
typedef khint_t khiter_t;

#define khash_t(name) kh_##name##_t
#define KHASH_MAP_INIT_INT64(name, vtype)                                                                    \
    typedef struct kh_##name##_s {                                                                           \
        khint_t n_buckets;                                                                                   \
        vtype *vals;                                                                                         \
    } kh_##name##_t;                                                                                         \
    khint_t kh_get_##name(const kh_##name##_t *h, int64_t key);
#define kh_get(name, h, k) kh_get_##name(h, k)
#define kh_end(h) ((h)->n_buckets)
#define kh_val(h, x) ((h)->vals[x])

#endif
