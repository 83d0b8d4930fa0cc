/* libFuzzer driver for sb_sse_params_parse: the query string and Last-Event-ID of an SSE request.
 *
 * The input is split at its first newline: the query before it, the Last-Event-ID after (no
 * newline: no header).  Whatever parses must respect the documented bounds and give valid names. */
#include "events/stream.h"
#include "http/sse_params.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    const char *nl = memchr(in, '\n', size);
    size_t qlen = nl != NULL ? (size_t)(nl - in) : size;
    const char *lei = nl != NULL ? nl + 1 : NULL;
    size_t lei_len = nl != NULL ? size - qlen - 1 : 0;
    sb_sse_params_t p;
    const char *field;
    char err[160];
    if (sb_sse_params_parse(in, qlen, lei, lei_len, &p, &field, err, sizeof(err)) != 0)
        return 0;
    if (p.ntypes > SB_SSE_MAX_ITEMS || p.nstreams > SB_SSE_MAX_ITEMS || p.ncategories > SB_SSE_MAX_ITEMS)
        abort();
    if (p.has_after && p.after < 0)
        abort();
    for (int i = 0; i < p.nstreams; i++) {
        sb_stream_name_t sn;
        if (sb_stream_parse(p.streams[i], strlen(p.streams[i]), &sn) != 0)
            abort();
    }
    for (int i = 0; i < p.ncategories; i++)
        if (!sb_stream_category_is_valid(p.categories[i], strlen(p.categories[i])))
            abort();
    for (int i = 0; i < p.ntypes; i++)
        if (strlen(p.types[i]) == 0 || strlen(p.types[i]) > SB_SSE_MAX_TYPE ||
            strpbrk(p.types[i], "\r\n:") != NULL)
            abort();
    sb_sse_params_free(&p);
    return 0;
}
