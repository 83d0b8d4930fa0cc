/* Internal helpers shared by the deciders (src/actors/<kind>.c): reading and validating command
 * fields, the acting user's role, and text measures.  All pure.  Every validating reader returns 0,
 * or SB_EREJECTED with err filled (400, naming the field). */
#ifndef SB_ACTORS_DUTIL_H
#define SB_ACTORS_DUTIL_H

#include "actors/decider.h"
#include "core/clock.h"
#include "core/phone.h"

#include <stdbool.h>
#include <stddef.h>

/* obj[key] as a string, or NULL when absent, null or not a string. */
const char *sb__str(const json_t *obj, const char *key);
/* True when obj has key with a non-null value. */
bool sb__has(const json_t *obj, const char *key);

/* Unicode code points in s (s is valid UTF-8: jansson guarantees it). */
size_t sb__utf8_chars(const char *s);
/* ASCII case-insensitive equality (NULL equals only NULL). */
bool sb__eq_ci(const char *a, const char *b);
bool sb__eq(const char *a, const char *b);
bool sb__is_uuid(const char *s);
/* http:// or https:// URL without spaces or control characters, at most max bytes. */
bool sb__is_url(const char *s, size_t max);

/* A required string field of min..max code points.  The result borrows from cmd. */
int sb__need_str(const json_t *cmd, const char *key, size_t min, size_t max, const char **out,
                 sb_derror_t *err);
/* Optional: absent or null gives *out = NULL. */
int sb__opt_str(const json_t *cmd, const char *key, size_t min, size_t max, const char **out,
                sb_derror_t *err);
/* s (field names it in errors) trimmed of surrounding white space, of min..max code points; a new
 * json string in *out. */
int sb__trimmed(const char *s, const char *field, size_t min, size_t max, json_t **out, sb_derror_t *err);
/* Like sb__need_str, after trimming surrounding white space; returns a new json string in *out. */
int sb__need_text(const json_t *cmd, const char *key, size_t min, size_t max, json_t **out, sb_derror_t *err);
int sb__need_uuid(const json_t *cmd, const char *key, const char **out, sb_derror_t *err);
int sb__opt_uuid(const json_t *cmd, const char *key, const char **out, sb_derror_t *err);
/* One of values (a NULL-terminated list). */
int sb__need_enum(const json_t *cmd, const char *key, const char *const *values, const char **out,
                  sb_derror_t *err);
/* The same checks on v, cmd[key] already looked up (NULL when absent), for a decider that reads a
 * field more than once (a hot path looks each key up once): sb__str_of is sb__need_str when
 * required, else sb__opt_str. */
int sb__str_of(const json_t *v, const char *key, bool required, size_t min, size_t max, const char **out,
               sb_derror_t *err);
int sb__uuid_of(const json_t *v, const char *key, const char **out, sb_derror_t *err);
int sb__enum_of(const json_t *v, const char *key, const char *const *values, const char **out,
                sb_derror_t *err);
/* Optional boolean, dflt when absent. */
int sb__opt_bool(const json_t *cmd, const char *key, bool dflt, bool *out, sb_derror_t *err);
/* An RFC 3339 time; returns microseconds. */
int sb__opt_time(const json_t *cmd, const char *key, bool *present, int64_t *us, sb_derror_t *err);

/* The command's time as RFC 3339, and a stored RFC 3339 string back to microseconds (0 if bad). */
void sb__now(const sb_decide_ctx_t *ctx, char out[SB_RFC3339_LEN]);
int64_t sb__time_us(const char *rfc3339);

/* Context of a workspace-scoped decision (see sb_workspace_context in kinds.h). */
const char *sb__ctx_country(const sb_decide_ctx_t *ctx);
/* The member object {"user_id", "role", ...} for user_id in ctx->context, or NULL. */
const json_t *sb__ctx_member(const sb_decide_ctx_t *ctx, const char *user_id);
/* A non-system actor must be a member of the workspace: 403 not_member otherwise. */
int sb__need_actor_member(const sb_decide_ctx_t *ctx, sb_derror_t *err);
/* True when ctx->context names a workspace other than the one state belongs to: a command sent in
 * one workspace's context to another workspace's actor, which the kind answers as unknown (404),
 * so one workspace's ids reveal nothing to another's members.  False when either side has no
 * workspace (the system without context, an actor not created yet). */
bool sb__other_workspace(const json_t *state, const sb_decide_ctx_t *ctx);

/* Normalises a phone number (field names it in errors): 400 invalid_phone. */
int sb__phone(const char *in, const char *country, const char *field, char out[SB_PHONE_MAX],
              sb_derror_t *err);
int sb__email(const char *in, const char *field, char out[SB_EMAIL_MAX], sb_derror_t *err);

/* The index of s in a JSON array of strings (case-insensitively when ci), or -1. */
int sb__array_find(const json_t *array, const char *s, bool ci);

/* A copy of v, or JSON null when v is NULL.  Evolve copies what it keeps from an event, and decide
 * copies what it puts in an event from the state, so that state and stored events never share a
 * mutable container: objects and arrays are deep-copied; strings, numbers, booleans and null are
 * shared (a new reference), since nothing changes a scalar in place (no code calls json_string_set
 * and the like) and jansson's reference counts are atomic — so a message body is not copied from
 * command to event to state. */
json_t *sb__copy(const json_t *v);
/* obj[key] = a copy of v (null when v is NULL). */
void sb__set(json_t *obj, const char *key, const json_t *v);
/* Hot-path object building, for payloads json_pack would build: json_pack parses its format and
 * copies and checks every string, where these take values the caller already holds or made.
 * sb__put sets (*obj)[key] = v, stealing v; key is a literal (not checked).  When *obj or v is NULL
 * (a failed allocation) it releases both and leaves *obj NULL, so a chain of puts ends with the
 * object or NULL, like json_pack. */
void sb__put(json_t **obj, const char *key, json_t *v);
/* A constant JSON string (one of the words every inbound command, event or state entry holds:
 * "inbound", "received", "ReceiveMessage"...), made once per process and never freed: its reference
 * count is jansson's "not counted" value ((size_t)-1, as json_true() has), so json_incref and
 * json_decref leave it alone — no allocation per use, and no atomic write on a line both loops
 * share.  slot is the caller's cache (a static, zero at start); s a literal.  The result may be
 * put in any object (sb__put steals nothing from it) and compares, copies and encodes like any
 * string.  NULL when memory ran out. */
json_t *sb__const_str(json_t *_Atomic *slot, const char *s);
/* Publishes made (a new value, stolen) as the constant in *slot, as sb__const_str does for a word:
 * its reference count becomes "not counted", and when another thread published first, made is
 * released and theirs returned.  For constant containers (an object every state may share), which
 * nothing may change: whoever would change one copies it first (json_deep_copy; a constant is known
 * by refcount == (size_t)-1).  NULL when made is NULL and nothing was published. */
json_t *sb__const_publish(json_t *_Atomic *slot, json_t *made);

/* Carrier keywords (Twilio's defaults): SB_KW_OPT_OUT for STOP, STOPALL, UNSUBSCRIBE, CANCEL, END,
 * QUIT, REVOKE, OPTOUT; SB_KW_OPT_IN for START, YES, UNSTOP; SB_KW_HELP for HELP, INFO; else
 * SB_KW_NONE.  Case-insensitive; word is the whole (trimmed) text. */
enum { SB_KW_NONE, SB_KW_OPT_OUT, SB_KW_OPT_IN, SB_KW_HELP };
int sb__keyword_kind(const char *word, size_t len);

/* Runs decide through a kind's dispatcher and restores out on failure (so a rejection never leaves
 * half a decision behind). */
typedef int (*sb__decide_fn)(const json_t *state, const json_t *cmd, const char *type,
                             const sb_decide_ctx_t *ctx, sb_devents_t *out, sb_derror_t *err);
int sb__decide(sb__decide_fn fn, const json_t *state, const json_t *cmd, const sb_decide_ctx_t *ctx,
               sb_devents_t *out, sb_derror_t *err);

/* Appends an event (or propagates SB_ENOMEM): for `TRY(emit(out, "X", json_pack(...)))`. */
#define SB_TRY(expr)                                                                                         \
    do {                                                                                                     \
        int sb_try_rc_ = (expr);                                                                             \
        if (sb_try_rc_ != 0)                                                                                 \
            return sb_try_rc_;                                                                               \
    } while (0)

#endif
