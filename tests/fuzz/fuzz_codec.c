/* libFuzzer driver for the event codec (src/events/codec.c).
 *
 * The input goes, as is, to both msgpack decoders: they must agree on accepting it, and whatever
 * they accept must give JSON text that jansson reads back as the tree sb_codec_to_jansson built,
 * and that tree must encode to msgpack that decodes to the same tree again.  The same bytes also
 * go to the JSON text encoder, the UTF-8 validator (checked against jansson's) and the base64
 * decoder (which must accept only canonical text). */
#include "core/error.h"
#include "events/codec.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Equal as JSON values, numbers compared by value. */
static int tree_equal(json_t *a, json_t *b)
{
    if (json_is_number(a) && json_is_number(b)) {
        if (json_is_integer(a) && json_is_integer(b))
            return json_integer_value(a) == json_integer_value(b);
        return json_number_value(a) == json_number_value(b);
    }
    if (json_typeof(a) != json_typeof(b))
        return 0;
    switch (json_typeof(a)) {
    case JSON_STRING:
        return json_string_length(a) == json_string_length(b) &&
               memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
    case JSON_ARRAY:
        if (json_array_size(a) != json_array_size(b))
            return 0;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!tree_equal(json_array_get(a, i), json_array_get(b, i)))
                return 0;
        return 1;
    case JSON_OBJECT: {
        if (json_object_size(a) != json_object_size(b))
            return 0;
        const char *k;
        size_t klen;
        json_t *v;
        json_object_keylen_foreach(a, k, klen, v)
        {
            json_t *w = json_object_getn(b, k, klen);
            if (w == NULL || !tree_equal(v, w))
                return 0;
        }
        return 1;
    }
    default:
        return 1;
    }
}

/* Integers beyond json_int_t are valid JSON that jansson reads only as reals. */
static json_t *parse_text(const char *text, size_t len)
{
    json_error_t e;
    json_t *j = json_loadb(text, len, JSON_DECODE_ANY, &e);
    if (j == NULL && json_error_code(&e) == json_error_numeric_overflow)
        j = json_loadb(text, len, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, &e);
    return j;
}

static void check_msgpack(const char *mp, size_t size)
{
    sb_buf_t text = SB_BUF_INIT, again = SB_BUF_INIT;
    json_t *tree = NULL, *parsed = NULL, *tree2 = NULL;
    char err[128];

    int rc = sb_codec_to_json(mp, size, &text, err, sizeof err);
    int rc2 = sb_codec_to_jansson(mp, size, &tree, err, sizeof err);
    if (rc != rc2)
        abort();
    bool is_map =
        size > 0 && (((uint8_t)mp[0] & 0xf0) == 0x80 || (uint8_t)mp[0] == 0xde || (uint8_t)mp[0] == 0xdf);
    if (sb_codec_is_valid_map(mp, size) != (rc == 0 && is_map))
        abort();
    if (rc != 0) {
        if ((rc != SB_ECODEC && rc != SB_EUTF8) || text.len != 0 || tree != NULL || err[0] == '\0')
            abort();
        goto out;
    }
    if ((parsed = parse_text(text.data, text.len)) == NULL || !tree_equal(tree, parsed))
        abort();
    if (sb_codec_from_jansson(tree, &again) != 0)
        abort();
    if (sb_codec_to_jansson(again.data, again.len, &tree2, err, sizeof err) != 0 || !tree_equal(tree, tree2))
        abort();
out:
    json_decref(tree);
    json_decref(parsed);
    json_decref(tree2);
    sb_buf_free(&text);
    sb_buf_free(&again);
}

static void check_json_text(const char *s, size_t size)
{
    sb_buf_t mp = SB_BUF_INIT, text = SB_BUF_INIT;
    char err[128];
    int rc = sb_codec_from_json_text(s, size, &mp, err, sizeof err);
    if (rc == 0) {
        json_t *in = json_loadb(s, size, 0, NULL), *out = NULL;
        if (!sb_codec_is_valid_map(mp.data, mp.len) ||
            sb_codec_to_json(mp.data, mp.len, &text, err, sizeof err))
            abort();
        if (in == NULL || (out = parse_text(text.data, text.len)) == NULL || !tree_equal(in, out))
            abort();
        json_decref(in);
        json_decref(out);
    } else if ((rc != SB_ECODEC && rc != SB_EUTF8) || mp.len != 0) {
        abort();
    }
    sb_buf_free(&mp);
    sb_buf_free(&text);
}

static void check_utf8_and_base64(const char *s, size_t size)
{
    /* jansson validates strings strictly too (and, like sb_utf8_is_valid, allows U+0000). */
    json_t *str = json_stringn(s, size);
    if (sb_utf8_is_valid(s, size) != (str != NULL))
        abort();
    json_decref(str);

    sb_buf_t raw = SB_BUF_INIT, enc = SB_BUF_INIT;
    if (sb_base64_decode(s, size, &raw) == 0) {
        sb_base64_encode(raw.data, raw.len, &enc);
        size_t n = size;
        while (n > 0 && enc.len > n && enc.data[n] == '=')
            n++;
        if (enc.len != n || memcmp(enc.data, s, size) != 0)
            abort();
    } else if (raw.len != 0) {
        abort();
    }
    sb_buf_free(&raw);
    sb_buf_free(&enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    check_msgpack(s, size);
    check_json_text(s, size);
    check_utf8_and_base64(s, size);
    return 0;
}
