/* libFuzzer driver: the query of call control's TwiML URLs (src/http/webhooks_calls.c), read
 * before any signature is checked.  It must never read past the query nor crash, and what it
 * accepts must be what we write: two uuids and the optional fields in their formats. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/http/webhooks_calls.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size heap copy: ASan catches any read past the end. */
    char *q = malloc(size ? size : 1);
    if (q == NULL)
        return 0;
    memcpy(q, data, size);
    cwh_t t;
    memset(&t, 0, sizeof(t));
    if (parse_query(&t, q, size)) {
        if (strlen(t.ws) != SB_UUID_STRLEN || strlen(t.call) != SB_UUID_STRLEN)
            abort();
        if (t.agent[0] != '\0' && strlen(t.agent) != SB_UUID_STRLEN)
            abort();
        if (t.transfer < 0 || t.stage < 0 || strlen(t.unparked_at) >= sizeof t.unparked_at)
            abort();
    }
    free(q);
    return 0;
}
