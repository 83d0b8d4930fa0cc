/* The loops' memory of senders (wsconf.h, "Senders"): which contact a number's messages to a
 * workspace were last filed under.  Internal to src/reactors; one table per loop, touched only on
 * that loop's thread.
 *
 * Set-associative (SB__SENDERS_WAYS entries per set, the least recently used one makes room):
 * with one entry per set, two busy senders whose keys fall on the same slot would take it from
 * each other on every message, and every one of their messages would run the find-or-create flow
 * (about 6% of the messages of 2,000 senders in 32,768 slots).  Only a hint: nothing is ever read
 * from the database. */
#ifndef SB_REACTORS_SENDERS_H
#define SB_REACTORS_SENDERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/phone.h"
#include "core/uuid.h"

#define SB__SENDERS_WAYS 4

typedef struct sb__senders_s sb__senders_t;

/* A table of nsets * SB__SENDERS_WAYS entries (nsets a power of two); NULL on allocation failure
 * or a bad nsets. */
sb__senders_t *sb__senders_new(size_t nsets);
void sb__senders_free(sb__senders_t *t);
/* Forgets every entry. */
void sb__senders_clear(sb__senders_t *t);
/* true with the contact when (workspace, number) is remembered; marks it recently used. */
bool sb__senders_peek(sb__senders_t *t, const sb_uuid_t *ws, const char *number, sb_uuid_t *contact);
/* Remembers contact for (workspace, number) (number: at most SB_PHONE_MAX - 1 bytes, else
 * ignored), replacing its entry or the set's least recently used one. */
void sb__senders_store(sb__senders_t *t, const sb_uuid_t *ws, const char *number, const sb_uuid_t *contact);
void sb__senders_forget(sb__senders_t *t, const sb_uuid_t *ws, const char *number);
/* The set (workspace, number) falls in (for tests). */
size_t sb__senders_set_of(const sb__senders_t *t, const sb_uuid_t *ws, const char *number);

#endif
