/* Projection files (projections/NAME.sql) and the SQL the runner installs for them.
 *
 * A file is set-up SQL (tables, indexes, views, helper functions) followed by sections, each
 * introduced by a directive line at the start of a line outside any string or comment:
 *
 *   -- @on TypeA TypeB       statements run once per event of these types, in position order,
 *                            with the event as $1..$9 (docs/projections.md lists them; $9 is
 *                            the uuid the stream's name ends with)
 *   -- @batch TypeA TypeB    statements run once per batch holding any event of these types,
 *                            with the batch's events as nine arrays in $1..$9
 *   -- @deferred             set-up run once the projection, built from position 0, has caught
 *                            up with the log (before a rebuild is swapped in): indexes only
 *                            reads use, far cheaper built once than maintained row by row
 *   -- @cost N               (once, anywhere; no section) the projection's relative cost: the
 *                            runner spreads projections over its partitions by it
 *   -- @payload key ...      (anywhere, may repeat; no section) the only top-level payload keys
 *                            the file's SQL reads: the runner may hand its sections payloads
 *                            holding just those (and the lint below checks ->'k', ->>'k', ? 'k')
 *
 * Batch sections written before the first @on section run before the per-event pass, the others
 * after it.  Any other "-- @word" directive is an error, so a typo never silently drops a handler.
 *
 * Installing a projection into a schema creates the schema, runs the set-up with the schema first
 * on the search_path, and creates one PL/pgSQL function per section plus the dispatcher
 * <schema>.__apply(positions, streams, types, versions, workspaces, recorded_ats, payloads,
 * metadatas[, stream_ids[, distinct_types]]), which runs the sections over one batch (stream_ids
 * left out or NULL: it works them out from the streams; distinct_types: it uses types).  The dispatcher's
 * search_path is a function attribute naming its schema, so it can be called from any session. */
#ifndef SB_PROJECTIONS_DEF_H
#define SB_PROJECTIONS_DEF_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"

#define SB_PJ_NAME_MAX 40 /* bytes of a projection name, without the NUL */
#define SB_PJ_HASH_LEN 64 /* hex SHA-256 */
/* The version of the SQL the runner generates from a file (the sections' functions, the
 * dispatcher): part of every file's hash, so a release that changes it rebuilds every read model
 * once, in shadow tables swapped in as for an edited file, instead of leaving tables installed by
 * an older release with the older functions.  Bump it with any change to what sb_pj_install_sql
 * writes.  2: batches of at most SB_PJ_GENERIC_MAX_EVENTS run generic plans.  3: the per-event
 * pass reads only the arrays its handlers read, in its query (no subscripts).  4: a batch with
 * none of the file's types returns before the dispatcher's subtransaction.  5: batch sections
 * switch to custom plans themselves (the dispatcher's calls of them stay generic plans).  6: $9,
 * the streams' ids, a ninth array the runner parses once, and the batch's distinct types for the
 * dispatcher's tests of which sections to run (its two last parameters, both optional). */
#define SB_PJ_GENERATOR "6"
#define SB_PJ_MAX_TYPES 256 /* distinct event types one projection handles */
#define SB_PJ_MAX_SECTIONS 256
#define SB_PJ_MAX_FILE (4 << 20)
/* -- @cost: the weight of a file that declares none, and the largest one may declare.  The built-in
 * files declare about the microseconds of database CPU they cost per event of a typical log. */
#define SB_PJ_DEFAULT_COST 1.0
#define SB_PJ_MAX_COST 1000000
/* A batch of more events than this plans its @batch sections afresh (custom plans); a smaller one
 * runs the generic plans its session keeps (sb_pj_install_sql). */
#define SB_PJ_GENERIC_MAX_EVENTS 1000

enum { SB_PJ_ON = 1, SB_PJ_BATCH = 2, SB_PJ_DEFERRED = 3 };

typedef struct sb_pj_section_s {
    int kind;   /* SB_PJ_ON or SB_PJ_BATCH */
    bool after; /* a batch section that runs after the per-event pass */
    int line;   /* of its directive, for messages */
    char **types;
    int ntypes;
    char *sql;
} sb_pj_section_t;

typedef struct sb_pj_def_s {
    char *name;
    char *path; /* where it was read from, or NULL */
    char hash[SB_PJ_HASH_LEN + 1];
    char *setup;
    char *deferred; /* the @deferred sections' statements, or NULL */
    sb_pj_section_t *sections;
    int nsections;
    char **types; /* every type any section takes: sorted, distinct */
    int ntypes;
    bool uses_metadata; /* some section mentions $8: the runner converts metadata only then */
    double cost;        /* -- @cost N, or SB_PJ_DEFAULT_COST */
    /* The types some section that mentions $7 takes (sorted, distinct): a section is handed the
     * payloads of its own types' events only, so the others' may be left out (NULL) for it. */
    char **payload_types;
    int npayload_types;
    /* -- @payload: the top-level keys its SQL reads (sorted, distinct), when declared (payload_keys
     * NULL: every key, the payloads as they are). */
    char **payload_keys;
    int npayload_keys;
} sb_pj_def_t;

#define SB_PJ_MAX_PAYLOAD_KEYS 256
#define SB_PJ_PAYLOAD_KEY_MAX 63 /* bytes of a declared key: [A-Za-z_][A-Za-z0-9_]* */

/* True when name can name a projection: [a-z][a-z0-9_]*, at most SB_PJ_NAME_MAX bytes, no "__"
 * (the runner's own suffixes use it), not ending in "_", and not a schema PostgreSQL reserves
 * (public, information_schema, pg_*). */
bool sb_pj_name_is_valid(const char *name);

/* Parses the text of projection `name`.  0 with *out (free with sb_pj_def_free), or SB_EINVAL with
 * one line in err naming the line at fault, or SB_ENOMEM. */
int sb_pj_parse(const char *name, const char *text, size_t len, sb_pj_def_t **out, char *err, size_t errlen);

/* Reads and parses dir/name.sql.  As sb_pj_parse; UV_ENOENT when the file does not exist. */
int sb_pj_load(const char *dir, const char *name, sb_pj_def_t **out, char *err, size_t errlen);

/* Every *.sql in dir, sorted by name.  Files that fail to parse are reported through on_error (if
 * given) and skipped.  0 with *out (an array of *n, free with sb_pj_defs_free) or a negative code
 * with err filled when the directory cannot be read. */
int sb_pj_load_dir(const char *dir, sb_pj_def_t ***out, int *n,
                   void (*on_error)(const char *file, const char *msg, void *data), void *data, char *err,
                   size_t errlen);

void sb_pj_def_free(sb_pj_def_t *d);
void sb_pj_defs_free(sb_pj_def_t **defs, int n);

/* Appends to out the SQL script that (re)creates schema with d's tables and functions: drops the
 * schema first when replace is set.  The script runs inside the caller's transaction and leaves
 * search_path changed for it (SET LOCAL). */
void sb_pj_install_sql(const sb_pj_def_t *d, const char *schema, bool replace, sb_buf_t *out);

/* Spreads n projections (names, costs: their -- @cost) over partitions: out[i] is names[i]'s, in
 * [0, partitions).  Largest cost first (ties by name), each on the partition with the least cost
 * so far (ties: the lowest), so the same set gives the same answer in any order.  For the
 * runner. */
void sb__pj_assign_partitions(const char *const *names, const double *costs, int n, int partitions, int *out);

/* Where s[0..n) is (*found) or would go in items, a list sorted by strcmp: its index. */
int sb_pj_sorted_find(char *const *items, int count, const char *s, size_t n, bool *found);
bool sb_pj_sorted_has(char *const *items, int count, const char *s, size_t n);

/* Appends s as a double-quoted SQL identifier / a single-quoted SQL literal. */
void sb_pj_quote_ident(sb_buf_t *out, const char *s);
void sb_pj_quote_literal(sb_buf_t *out, const char *s);

#endif
