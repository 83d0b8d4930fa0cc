/* libFuzzer driver for the API's pagination cursors (sb_api_cursor_decode): any text a client
 * sends as ?cursor= is either refused or decodes to a cursor that encodes back to the same text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "http/api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char in[128], id[SB_UUID_STRLEN + 1], again[SB_API_CURSOR_MAX];
    if (size >= sizeof(in))
        return 0;
    memcpy(in, data, size);
    in[size] = '\0';
    int64_t at;
    int rc = sb_api_cursor_decode(in, &at, id);
    if (rc == 0) {
        sb_api_cursor_encode(at, id, again);
        if (strcmp(again, in) != 0)
            abort();
    } else if (rc != SB_EINVAL) {
        abort();
    }
    return 0;
}
