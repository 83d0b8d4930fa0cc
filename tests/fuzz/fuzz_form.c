/* libFuzzer driver for the application/x-www-form-urlencoded parser (webhook bodies).
 *
 * Whatever is accepted must be well-formed (NUL-free UTF-8 names and values whose lengths match),
 * and encoding the fields again with sb_form_add must parse back to the same fields. */
#include "core/error.h"
#include "events/codec.h"
#include "providers/form.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sb_form_t f;
    int rc = sb_form_parse((const char *)data, size, &f);
    if (rc != 0) {
        if (f.fields != NULL || f.n != 0)
            abort();
        if (rc != SB_EINVAL && rc != SB_EUTF8 && rc != SB_ETOOBIG)
            abort();
        return 0;
    }
    if (f.n > SB_FORM_MAX_FIELDS)
        abort();
    sb_buf_t enc = SB_BUF_INIT;
    for (size_t i = 0; i < f.n; i++) {
        const sb_form_field_t *x = &f.fields[i];
        if (strlen(x->name) != x->name_len || strlen(x->value) != x->value_len)
            abort();
        if (!sb_utf8_is_valid(x->name, x->name_len) || !sb_utf8_is_valid(x->value, x->value_len))
            abort();
        sb_form_add(&enc, x->name, x->value);
    }
    sb_form_t g;
    if (enc.len <= SB_FORM_MAX_BYTES) {
        if (sb_form_parse(enc.data ? enc.data : "", enc.len, &g) != 0)
            abort();
        /* Every field encodes to a non-empty piece ("name=value", at least "="), so none is lost. */
        if (g.n != f.n)
            abort();
        for (size_t i = 0; i < f.n; i++)
            if (strcmp(f.fields[i].name, g.fields[i].name) != 0 ||
                strcmp(f.fields[i].value, g.fields[i].value) != 0)
                abort();
        sb_form_free(&g);
    }
    sb_buf_free(&enc);
    sb_form_free(&f);
    return 0;
}
