/* Auto-replies (SPEC §5): an inbound message whose body contains a workspace's keyword — a whole
 * word, case-insensitively — gets that rule's reply, at most once per contact per rule per (UTC)
 * day.
 *
 * A reactor: it follows MessageReceived from its checkpoint ("autoreply" in the checkpoints
 * table), reads the workspace's rules (reactors/wsconf.h) and sends the reply with SendMessage on
 * the channel the message came in on (an MMS is answered by SMS), from the number it was sent to.
 * The reply's message id is a name-based uuid of (contact, keyword, day), so a second match that day
 * — or the same event seen again after a restart — names the same message and the contact decides
 * nothing.  Carrier keywords (STOP, START, HELP, ...) are reserved for consent and never rules.
 * A contact who opted out gets nothing (SendMessage refuses).
 *
 * Runs on one loop while the messaging lease is held (messaging.h). */
#ifndef SB_REACTORS_AUTOREPLY_H
#define SB_REACTORS_AUTOREPLY_H

#include <stddef.h>
#include <stdint.h>

#include "core/uuid.h"

typedef struct sb_autoreply_s sb_autoreply_t;

/* Starts on the calling loop (which runs the messaging service).  0 or a negative code. */
int sb_autoreply_start(sb_autoreply_t **out);
/* Stops; replies on their way finish and are then dropped.  It frees itself. */
void sb_autoreply_stop(sb_autoreply_t *a);

/* The keywords of rules (an object {"keyword": reply}) that body contains as whole words
 * ([A-Za-z0-9] runs, compared case-insensitively), in the order of their first appearance, at most
 * max of them, into out (pointers to the rules' keys).  Pure; for tests.  Returns how many. */
size_t sb_autoreply_match(const char *body, const void *rules, const char **out, size_t max);

/* The reply's message id for (contact, keyword, day "YYYY-MM-DD"). */
void sb_autoreply_message_id(const char *contact_id, const char *keyword, const char *day,
                             char out[SB_UUID_STRLEN + 1]);

#endif
