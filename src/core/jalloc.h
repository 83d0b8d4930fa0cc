/* jansson's allocator: per-thread free lists of small blocks in front of malloc.
 *
 * Every command, event and actor state is a jansson tree of small blocks (an inbound webhook makes
 * and frees about 70: objects, hash tables, pairs, strings), made on one loop and often freed on
 * another.  glibc keeps only 7 free blocks of a size per thread before it takes the slower paths
 * (its arena, under a lock when the block came from another thread's arena), and a loop turn that
 * handles tens of requests frees far more than that.  These lists keep up to SB_JALLOC_KEEP blocks
 * of each 16-byte size class up to SB_JALLOC_MAX_SIZE per thread, and hand them back first.
 *
 * The blocks are malloc's own (a list only holds blocks malloc gave out, of at least the class's
 * size), so free() may release any block jansson returns (json_dumps's text, for one), and a block
 * malloc gave jansson before the lists were installed may come back through them.  A thread's lists
 * are released when it ends.  Under AddressSanitizer a listed block is poisoned (but for the link in
 * its first bytes), so a use after free is still reported. */
#ifndef SB_CORE_JALLOC_H
#define SB_CORE_JALLOC_H

#include <stddef.h>

#define SB_JALLOC_MAX_SIZE 512 /* larger blocks go straight to malloc and free */
#define SB_JALLOC_KEEP 512     /* blocks kept per size class and thread */

/* Makes jansson allocate through the lists (json_set_alloc_funcs).  Call once at start-up, before
 * other threads use jansson. */
void sb_jalloc_install(void);

/* The allocator itself (what jansson is given); exposed for tests. */
void *sb_jalloc_malloc(size_t n);
void sb_jalloc_free(void *p);
/* Blocks the calling thread's lists hold now (all classes). */
size_t sb_jalloc_cached(void);

#endif
