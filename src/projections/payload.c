/* Payloads cut down to the keys a lane's projections read (docs/projections.md, "-- @payload").
 *
 * Every lane's session parses every payload it is sent, and PostgreSQL 15's JSON parser costs
 * about 80 instructions a byte (it copies strings a character at a time): for the analytics lane,
 * which reads two keys of an inbound message, nearly all of that parsing was for keys nothing
 * reads.  The runner knows each projection's declared keys, and which event types' payloads its
 * sections read at all, and sends each lane only what its called projections need. */
#include "projections/pj_int.h"

#include <string.h>

static size_t skip_space(const char *s, size_t n, size_t i)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

/* s[i] is a '"': the index just past the closing quote, or n when there is none.  memchr finds
 * each candidate quote (a payload is mostly strings: a loop a byte at a time cost the runner about
 * 10 instructions a byte); one preceded by an odd run of backslashes is escaped. */
static size_t skip_string(const char *s, size_t n, size_t i)
{
    for (i++; i < n;) {
        const char *q = memchr(s + i, '"', n - i);
        if (q == NULL)
            return n;
        size_t at = (size_t)(q - s), b = at;
        while (b > i && s[b - 1] == '\\')
            b--;
        if ((at - b) % 2 == 0)
            return at + 1;
        i = at + 1;
    }
    return n;
}

/* The index just past the value that starts at s[i], or n when it does not end. */
static size_t skip_value(const char *s, size_t n, size_t i)
{
    if (i >= n)
        return n;
    if (s[i] == '"')
        return skip_string(s, n, i);
    if (s[i] == '{' || s[i] == '[') {
        int depth = 0;
        while (i < n) {
            char c = s[i];
            if (c == '"') {
                i = skip_string(s, n, i);
                continue;
            }
            if (c == '{' || c == '[')
                depth++;
            else if ((c == '}' || c == ']') && --depth == 0)
                return i + 1;
            i++;
        }
        return n;
    }
    /* A number, true, false or null. */
    while (i < n && s[i] != ',' && s[i] != '}' && s[i] != ']' && s[i] != ' ' && s[i] != '\t' &&
           s[i] != '\n' && s[i] != '\r')
        i++;
    return i;
}

bool sb__pj_json_keep(const char *json, size_t len, bool (*keep)(const char *key, size_t n, void *data),
                      void *data, sb_buf_t *out)
{
    size_t start = out->len;
    size_t i = skip_space(json, len, 0);
    if (i >= len || json[i] != '{')
        return false;
    sb_buf_putc(out, '{');
    bool first = true;
    i = skip_space(json, len, i + 1);
    if (i < len && json[i] == '}')
        goto done;
    for (;;) {
        if (i >= len || json[i] != '"')
            goto bad;
        size_t key = i;
        size_t key_end = skip_string(json, len, i);
        if (key_end >= len)
            goto bad;
        i = skip_space(json, len, key_end);
        if (i >= len || json[i] != ':')
            goto bad;
        i = skip_value(json, len, skip_space(json, len, i + 1));
        if (i >= len)
            goto bad;
        /* The key as written, without its quotes: a declared key never needs escaping, so a key
         * written with escapes is never one of them. */
        if (keep(json + key + 1, key_end - key - 2, data)) {
            if (!first)
                sb_buf_putc(out, ',');
            sb_buf_append(out, json + key, i - key);
            first = false;
        }
        i = skip_space(json, len, i);
        if (i < len && json[i] == ',') {
            i = skip_space(json, len, i + 1);
            continue;
        }
        if (i < len && json[i] == '}')
            break;
        goto bad;
    }
done:
    sb_buf_putc(out, '}');
    return true;
bad:
    out->len = start;
    return false;
}
