/* TwiML: the XML Twilio reads to decide what a call does next (the answer to a voice webhook, the
 * Twiml parameter of Calls.json and of a live-call update).
 *
 * A small writer over sb_buf_t: elements are opened and closed in order, attributes are given as
 * NULL-terminated name/value pairs, and every value and text is escaped, so a caller can pass what
 * a peer sent (a From number, a body) without thinking about XML.  The writer checks nesting:
 * sb_twiml_finish fails if an element is still open or one was closed out of order.
 *
 *     sb_twiml_t t;
 *     sb_twiml_init(&t);
 *     sb_twiml_open(&t, "Dial", "timeout", "20", "action", url, NULL);
 *     sb_twiml_leaf(&t, "Client", "agent_42", NULL);
 *     sb_twiml_close(&t, "Dial");
 *     char *xml = NULL; size_t len = 0;
 *     if (sb_twiml_finish(&t, &xml, &len) == 0) { ... free(xml); }
 *
 * gives <?xml version="1.0" encoding="UTF-8"?><Response><Dial timeout="20" action="...">
 * <Client>agent_42</Client></Dial></Response> (without the line breaks).
 */
#ifndef SB_PROVIDERS_TWIML_H
#define SB_PROVIDERS_TWIML_H

#include <stddef.h>

#include "core/buf.h"

#define SB_TWIML_MAX_DEPTH 8

typedef struct sb_twiml_s {
    sb_buf_t out;
    const char *stack[SB_TWIML_MAX_DEPTH]; /* the open elements' names (static strings) */
    int depth;
    int error; /* the first misuse (SB_EINVAL), reported by finish */
} sb_twiml_t;

/* Starts a document: the XML declaration and <Response>. */
void sb_twiml_init(sb_twiml_t *t);

/* Opens <name attr="value" ...>; the varargs are const char * name, value pairs ending with NULL.
 * A pair whose value is NULL is skipped (optional attributes).  name must outlive the writer (a
 * string literal). */
void sb_twiml_open(sb_twiml_t *t, const char *name, ...) __attribute__((sentinel));

/* Closes the innermost element, which must be name. */
void sb_twiml_close(sb_twiml_t *t, const char *name);

/* <name attrs...>text</name>, or <name attrs.../> when text is NULL. */
void sb_twiml_leaf(sb_twiml_t *t, const char *name, const char *text, ...) __attribute__((sentinel));

/* Closes </Response> and hands the document to the caller (NUL-terminated; the caller frees it).
 * 0, or SB_EINVAL when elements were misnested (nothing is handed over).  The writer is reset
 * either way. */
int sb_twiml_finish(sb_twiml_t *t, char **xml, size_t *len);

/* Frees a writer that will not be finished. */
void sb_twiml_discard(sb_twiml_t *t);

/* Appends s escaped for XML text and attribute values (& < > " ').  Bytes that XML 1.0 forbids
 * (control characters other than tab, LF, CR) are dropped. */
void sb_twiml_escape(sb_buf_t *b, const char *s);

#endif
