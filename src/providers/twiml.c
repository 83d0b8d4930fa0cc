/* TwiML writer: see twiml.h. */
#include "providers/twiml.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

void sb_twiml_escape(sb_buf_t *b, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        switch (*p) {
        case '&':
            sb_buf_puts(b, "&amp;");
            break;
        case '<':
            sb_buf_puts(b, "&lt;");
            break;
        case '>':
            sb_buf_puts(b, "&gt;");
            break;
        case '"':
            sb_buf_puts(b, "&quot;");
            break;
        case '\'':
            sb_buf_puts(b, "&apos;");
            break;
        default:
            if (*p >= 0x20 || *p == '\t' || *p == '\n' || *p == '\r')
                sb_buf_putc(b, (char)*p);
            break;
        }
    }
}

void sb_twiml_init(sb_twiml_t *t)
{
    memset(t, 0, sizeof(*t));
    sb_buf_puts(&t->out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response>");
}

static void put_attrs(sb_twiml_t *t, va_list ap)
{
    for (;;) {
        const char *name = va_arg(ap, const char *);
        if (name == NULL)
            break;
        const char *value = va_arg(ap, const char *);
        if (value == NULL)
            continue;
        sb_buf_putc(&t->out, ' ');
        sb_buf_puts(&t->out, name);
        sb_buf_puts(&t->out, "=\"");
        sb_twiml_escape(&t->out, value);
        sb_buf_putc(&t->out, '"');
    }
}

void sb_twiml_open(sb_twiml_t *t, const char *name, ...)
{
    if (t->depth == SB_TWIML_MAX_DEPTH) {
        t->error = SB_EINVAL;
        return;
    }
    t->stack[t->depth++] = name;
    sb_buf_putc(&t->out, '<');
    sb_buf_puts(&t->out, name);
    va_list ap;
    va_start(ap, name);
    put_attrs(t, ap);
    va_end(ap);
    sb_buf_putc(&t->out, '>');
}

void sb_twiml_close(sb_twiml_t *t, const char *name)
{
    if (t->depth == 0 || strcmp(t->stack[t->depth - 1], name) != 0) {
        t->error = SB_EINVAL;
        return;
    }
    t->depth--;
    sb_buf_puts(&t->out, "</");
    sb_buf_puts(&t->out, name);
    sb_buf_putc(&t->out, '>');
}

void sb_twiml_leaf(sb_twiml_t *t, const char *name, const char *text, ...)
{
    sb_buf_putc(&t->out, '<');
    sb_buf_puts(&t->out, name);
    va_list ap;
    va_start(ap, text);
    put_attrs(t, ap);
    va_end(ap);
    if (text == NULL) {
        sb_buf_puts(&t->out, "/>");
        return;
    }
    sb_buf_putc(&t->out, '>');
    sb_twiml_escape(&t->out, text);
    sb_buf_puts(&t->out, "</");
    sb_buf_puts(&t->out, name);
    sb_buf_putc(&t->out, '>');
}

int sb_twiml_finish(sb_twiml_t *t, char **xml, size_t *len)
{
    int rc = t->error != 0 ? t->error : (t->depth != 0 ? SB_EINVAL : 0);
    if (rc != 0) {
        sb_twiml_discard(t);
        return rc;
    }
    sb_buf_puts(&t->out, "</Response>");
    *len = t->out.len;
    *xml = sb_buf_steal(&t->out);
    memset(t, 0, sizeof(*t));
    return 0;
}

void sb_twiml_discard(sb_twiml_t *t)
{
    sb_buf_free(&t->out);
    memset(t, 0, sizeof(*t));
}
