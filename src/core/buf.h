/* A growable byte buffer.  Owns its memory; sb_buf_free releases it.  Appends abort on allocation
 * failure only for small sizes: sb_buf_reserve returns SB_ENOMEM so peer-controlled sizes can be
 * refused cleanly. */
#ifndef SB_CORE_BUF_H
#define SB_CORE_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sb_buf_s {
    char *data;
    size_t len;
    size_t cap;
} sb_buf_t;

#define SB_BUF_INIT                                                                                          \
    {                                                                                                        \
        NULL, 0, 0                                                                                           \
    }

/* Ensures room for extra more bytes (plus a terminating NUL).  0 or SB_ENOMEM. */
int sb_buf_reserve(sb_buf_t *b, size_t extra);
void sb_buf_append(sb_buf_t *b, const void *p, size_t n);
void sb_buf_puts(sb_buf_t *b, const char *s);
void sb_buf_putc(sb_buf_t *b, char c);
void sb_buf_printf(sb_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as a JSON string literal, quotes included (s must be valid UTF-8). */
void sb_buf_put_json_string(sb_buf_t *b, const char *s, size_t n);
void sb_buf_reset(sb_buf_t *b);
void sb_buf_free(sb_buf_t *b);
/* Hands the bytes to the caller (NUL-terminated, caller frees) and resets the buffer. */
char *sb_buf_steal(sb_buf_t *b);

#endif
