/* Folding events into state: what activation, `switchboard replay` and the tests do. */
#ifndef SB_ACTORS_FOLD_H
#define SB_ACTORS_FOLD_H

#include "actors/decider.h"

/* k's initial state with events[0..n) applied in order.  Caller owns the result (NULL only on
 * allocation failure).  The events are only read. */
json_t *sb_fold(const sb_kind_t *k, const sb_devent_t *events, int n);

#endif
