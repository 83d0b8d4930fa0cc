/* A small map from ids (NUL-terminated strings, e.g. uuids) to pointers: open addressing with
 * linear probing and backward-shift deletion, growing as needed.  Keys are borrowed: each must live
 * in the value it maps to (or otherwise outlive its entry).  Single-threaded. */
#ifndef SB_REACTORS_IDMAP_H
#define SB_REACTORS_IDMAP_H

#include <stddef.h>

typedef struct sb_idmap_entry_s {
    const char *key; /* NULL: empty */
    void *value;
} sb_idmap_entry_t;

typedef struct sb_idmap_s {
    sb_idmap_entry_t *slots;
    size_t cap; /* a power of two, or 0 */
    size_t n;
} sb_idmap_t;

#define SB_IDMAP_INIT                                                                                        \
    {                                                                                                        \
        NULL, 0, 0                                                                                           \
    }

/* The value of key, or NULL. */
void *sb_idmap_get(const sb_idmap_t *m, const char *key);
/* Maps key (borrowed) to value, replacing any value it had.  0 or SB_ENOMEM. */
int sb_idmap_put(sb_idmap_t *m, const char *key, void *value);
/* Removes key; returns its value, or NULL when absent. */
void *sb_idmap_del(sb_idmap_t *m, const char *key);
void sb_idmap_free(sb_idmap_t *m);

#endif
