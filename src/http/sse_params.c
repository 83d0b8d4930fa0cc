/* Parsing an SSE request's resume position and filters: see sse_params.h. */
#include "http/sse_params.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "events/stream.h"
#include "providers/form.h"

int sb_sse_parse_position(const char *s, size_t len, int64_t *out)
{
    if (len == 0 || len > 18)
        return SB_EINVAL;
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return SB_EINVAL;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

static bool is_type_name(const char *s, size_t len)
{
    if (len == 0 || len > SB_SSE_MAX_TYPE)
        return false;
    if (!((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z')))
        return false;
    for (size_t i = 1; i < len; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return true;
}

enum { LIST_TYPES, LIST_STREAMS, LIST_CATEGORIES };

/* Splits value (decoded, NUL-terminated, writable) on commas into the list; empty items are
 * skipped so "types=" or a trailing comma mean nothing. */
static int add_items(sb_sse_params_t *p, int which, char *value, const char **field, char *err, size_t errlen)
{
    static const char *const names[] = {"types", "streams", "categories"};
    const char **items = which == LIST_TYPES ? p->types : which == LIST_STREAMS ? p->streams : p->categories;
    int *n = which == LIST_TYPES ? &p->ntypes : which == LIST_STREAMS ? &p->nstreams : &p->ncategories;
    char *s = value;
    for (;;) {
        char *comma = strchr(s, ',');
        size_t len = comma != NULL ? (size_t)(comma - s) : strlen(s);
        if (comma != NULL)
            *comma = '\0';
        if (len > 0) {
            bool ok;
            if (which == LIST_TYPES) {
                ok = is_type_name(s, len);
            } else if (which == LIST_STREAMS) {
                sb_stream_name_t sn;
                ok = sb_stream_parse(s, len, &sn) == 0;
            } else {
                ok = sb_stream_category_is_valid(s, len);
            }
            if (!ok) {
                *field = names[which];
                snprintf(err, errlen, "invalid %s item '%.*s'",
                         which == LIST_TYPES     ? "event type"
                         : which == LIST_STREAMS ? "stream name"
                                                 : "category",
                         (int)(len > 80 ? 80 : len), s);
                return SB_EINVAL;
            }
            if (*n == SB_SSE_MAX_ITEMS) {
                *field = names[which];
                snprintf(err, errlen, "at most %d %s", SB_SSE_MAX_ITEMS, names[which]);
                return SB_EINVAL;
            }
            items[(*n)++] = s;
        }
        if (comma == NULL)
            return 0;
        s = comma + 1;
    }
}

static bool key_is(const char *k, size_t klen, const char *name)
{
    return strlen(name) == klen && memcmp(k, name, klen) == 0;
}

int sb_sse_params_parse(const char *query, size_t len, const char *last_event_id, size_t lei_len,
                        sb_sse_params_t *out, const char **field, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    *field = NULL;
    if (query == NULL)
        len = 0;
    if (len > SB_SSE_MAX_QUERY) {
        *field = "query";
        snprintf(err, errlen, "query string longer than %d bytes", SB_SSE_MAX_QUERY);
        return SB_EINVAL;
    }
    /* Every decoded value fits in the query's own length (decoding never grows), plus a NUL per
     * parameter. */
    out->_buf = malloc(len + 1);
    if (out->_buf == NULL)
        return SB_ENOMEM;
    char *w = out->_buf;
    int rc = SB_EINVAL;
    const char *p = query, *end = query + len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pend = amp != NULL ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pend - p));
        const char *k = p;
        size_t klen = (size_t)((eq != NULL ? eq : pend) - p);
        const char *v = eq != NULL ? eq + 1 : pend;
        size_t vlen = (size_t)(pend - v);
        p = amp != NULL ? amp + 1 : end;

        int list = -1;
        if (key_is(k, klen, "types"))
            list = LIST_TYPES;
        else if (key_is(k, klen, "streams"))
            list = LIST_STREAMS;
        else if (key_is(k, klen, "categories"))
            list = LIST_CATEGORIES;
        else if (!key_is(k, klen, "after") && !key_is(k, klen, "access_token"))
            continue;
        size_t n;
        if (sb_form_decode(v, vlen, w, &n) != 0) {
            *field = key_is(k, klen, "after")          ? "after"
                     : key_is(k, klen, "access_token") ? "access_token"
                                                       : NULL;
            if (*field == NULL)
                *field = list == LIST_TYPES ? "types" : list == LIST_STREAMS ? "streams" : "categories";
            snprintf(err, errlen, "malformed percent-encoding");
            goto fail;
        }
        char *value = w;
        w += n + 1;
        if (list >= 0) {
            if ((rc = add_items(out, list, value, field, err, errlen)) != 0)
                goto fail;
            rc = SB_EINVAL;
        } else if (key_is(k, klen, "after")) {
            if (sb_sse_parse_position(value, (size_t)n, &out->after) != 0) {
                *field = "after";
                snprintf(err, errlen, "after must be an event position (a non-negative integer)");
                goto fail;
            }
            out->has_after = true;
        } else {
            out->token = value;
        }
    }
    if (last_event_id != NULL) {
        /* EventSource sends back the last id we gave it, verbatim; trim stray blanks. */
        while (lei_len > 0 && (last_event_id[0] == ' ' || last_event_id[0] == '\t')) {
            last_event_id++;
            lei_len--;
        }
        while (lei_len > 0 && (last_event_id[lei_len - 1] == ' ' || last_event_id[lei_len - 1] == '\t'))
            lei_len--;
        if (lei_len > 0) {
            if (sb_sse_parse_position(last_event_id, lei_len, &out->after) != 0) {
                *field = "Last-Event-ID";
                snprintf(err, errlen, "Last-Event-ID must be an event position (a non-negative integer)");
                goto fail;
            }
            out->has_after = true;
        }
    }
    return 0;

fail:
    free(out->_buf);
    memset(out, 0, sizeof(*out));
    return rc;
}

void sb_sse_params_free(sb_sse_params_t *p)
{
    free(p->_buf);
    p->_buf = NULL;
}
