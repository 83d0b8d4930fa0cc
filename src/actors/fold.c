#include "actors/fold.h"

json_t *sb_fold(const sb_kind_t *k, const sb_devent_t *events, int n)
{
    json_t *state = k->initial();
    if (state == NULL)
        return NULL;
    for (int i = 0; i < n; i++)
        k->evolve(state, &events[i]);
    return state;
}
