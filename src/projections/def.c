/* Projection files: parsing and the SQL installed for them (see def.h and docs/projections.md). */
#include "projections/def.h"
#include "core/error.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <uv.h>

/* ---- a small SQL scanner --------------------------------------------------------------------
 * Just enough of PostgreSQL's lexical rules to know, at each byte, whether we are inside a
 * string, a quoted identifier, a dollar-quoted body or a comment: directives are only recognised
 * outside them, and so are parameter references and the statement-ending semicolon. */

enum { S_TOP, S_SQUOTE, S_ESTRING, S_DQUOTE, S_DOLLAR, S_LINE, S_BLOCK };

typedef struct {
    const char *s;
    size_t n;
    size_t i;
    int state;
    int depth;       /* block comment nesting */
    const char *tag; /* dollar-quote tag, including both '$' */
    size_t taglen;
} scan_t;

static bool ident_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '$' || (unsigned char)c >= 0x80;
}

/* Length of a dollar-quote opener at s[i] ("$$" or "$tag$"), or 0. */
static size_t dollar_tag(const char *s, size_t n, size_t i)
{
    if (s[i] != '$')
        return 0;
    size_t j = i + 1;
    if (j < n && (isalpha((unsigned char)s[j]) || s[j] == '_' || (unsigned char)s[j] >= 0x80)) {
        while (j < n && (isalnum((unsigned char)s[j]) || s[j] == '_' || (unsigned char)s[j] >= 0x80))
            j++;
    }
    if (j < n && s[j] == '$')
        return j + 1 - i;
    return 0;
}

/* Advances over one byte (or one token where needed).  Returns true when s[i] (before the step)
 * was significant SQL at the top level: not whitespace, not inside a comment or quote opener. */
static bool scan_step(scan_t *sc, bool *significant)
{
    const char *s = sc->s;
    size_t n = sc->n, i = sc->i;
    *significant = false;
    if (i >= n)
        return false;
    char c = s[i];
    switch (sc->state) {
    case S_TOP:
        if (c == '-' && i + 1 < n && s[i + 1] == '-') {
            sc->state = S_LINE;
            sc->i += 2;
            return true;
        }
        if (c == '/' && i + 1 < n && s[i + 1] == '*') {
            sc->state = S_BLOCK;
            sc->depth = 1;
            sc->i += 2;
            return true;
        }
        *significant = !isspace((unsigned char)c);
        if (c == '\'') {
            bool e = i > 0 && (s[i - 1] == 'E' || s[i - 1] == 'e') && (i < 2 || !ident_char(s[i - 2]));
            sc->state = e ? S_ESTRING : S_SQUOTE;
        } else if (c == '"') {
            sc->state = S_DQUOTE;
        } else if (c == '$' && (i == 0 || !ident_char(s[i - 1]))) {
            size_t t = dollar_tag(s, n, i);
            if (t > 0) {
                sc->state = S_DOLLAR;
                sc->tag = s + i;
                sc->taglen = t;
                sc->i += t;
                return true;
            }
        }
        sc->i++;
        return true;
    case S_SQUOTE:
    case S_ESTRING:
        if (sc->state == S_ESTRING && c == '\\' && i + 1 < n) {
            sc->i += 2;
            return true;
        }
        if (c == '\'') {
            if (i + 1 < n && s[i + 1] == '\'') {
                sc->i += 2;
                return true;
            }
            sc->state = S_TOP;
        }
        sc->i++;
        return true;
    case S_DQUOTE:
        if (c == '"') {
            if (i + 1 < n && s[i + 1] == '"') {
                sc->i += 2;
                return true;
            }
            sc->state = S_TOP;
        }
        sc->i++;
        return true;
    case S_DOLLAR:
        if (c == '$' && n - i >= sc->taglen && memcmp(s + i, sc->tag, sc->taglen) == 0) {
            sc->state = S_TOP;
            sc->i += sc->taglen;
            return true;
        }
        sc->i++;
        return true;
    case S_LINE:
        if (c == '\n')
            sc->state = S_TOP;
        sc->i++;
        return true;
    case S_BLOCK:
        if (c == '*' && i + 1 < n && s[i + 1] == '/') {
            if (--sc->depth == 0)
                sc->state = S_TOP;
            sc->i += 2;
            return true;
        }
        if (c == '/' && i + 1 < n && s[i + 1] == '*') {
            sc->depth++;
            sc->i += 2;
            return true;
        }
        sc->i++;
        return true;
    }
    return false;
}

/* The last significant byte of sql (outside comments and whitespace), or 0 when there is none. */
static char last_significant(const char *sql)
{
    scan_t sc = {.s = sql, .n = strlen(sql), .state = S_TOP};
    char last = 0;
    bool sig;
    size_t at = 0;
    while ((at = sc.i, scan_step(&sc, &sig)))
        if (sig)
            last = sql[at];
    /* A string or body still open at the end: whatever it is, it is not a semicolon. */
    if (sc.state != S_TOP && sc.state != S_LINE)
        return 'x';
    return last;
}

/* True when sql references parameter $k (a single digit) outside strings and comments. */
static bool mentions_param(const char *sql, char k)
{
    scan_t sc = {.s = sql, .n = strlen(sql), .state = S_TOP};
    bool sig;
    size_t at = 0;
    while ((at = sc.i, scan_step(&sc, &sig)))
        if (sig && sql[at] == '$' && at + 1 < sc.n && sql[at + 1] == k &&
            (at + 2 >= sc.n || !isdigit((unsigned char)sql[at + 2])))
            return true;
    return false;
}

/* ---- names and quoting ----------------------------------------------------------------------- */

bool sb_pj_name_is_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > SB_PJ_NAME_MAX || !(name[0] >= 'a' && name[0] <= 'z') || name[n - 1] == '_')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
        if (c == '_' && name[i + 1] == '_')
            return false;
    }
    if (strcmp(name, "public") == 0 || strcmp(name, "information_schema") == 0 ||
        strncmp(name, "pg_", 3) == 0)
        return false;
    return true;
}

static bool type_is_valid(const char *t, size_t n)
{
    if (n == 0 || n > 100 || !isupper((unsigned char)t[0]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)t[i]) && t[i] != '_')
            return false;
    return true;
}

void sb_pj_quote_ident(sb_buf_t *out, const char *s)
{
    sb_buf_putc(out, '"');
    for (; *s; s++) {
        if (*s == '"')
            sb_buf_putc(out, '"');
        sb_buf_putc(out, *s);
    }
    sb_buf_putc(out, '"');
}

void sb_pj_quote_literal(sb_buf_t *out, const char *s)
{
    sb_buf_putc(out, '\'');
    for (; *s; s++) {
        if (*s == '\'')
            sb_buf_putc(out, '\'');
        sb_buf_putc(out, *s);
    }
    sb_buf_putc(out, '\'');
}

/* ---- parsing --------------------------------------------------------------------------------- */

void sb_pj_def_free(sb_pj_def_t *d)
{
    if (d == NULL)
        return;
    for (int i = 0; i < d->nsections; i++) {
        for (int k = 0; k < d->sections[i].ntypes; k++)
            free(d->sections[i].types[k]);
        free(d->sections[i].types);
        free(d->sections[i].sql);
    }
    free(d->sections);
    for (int k = 0; k < d->ntypes; k++)
        free(d->types[k]);
    free(d->types);
    for (int k = 0; k < d->npayload_types; k++)
        free(d->payload_types[k]);
    free(d->payload_types);
    for (int k = 0; k < d->npayload_keys; k++)
        free(d->payload_keys[k]);
    free(d->payload_keys);
    free(d->setup);
    free(d->deferred);
    free(d->name);
    free(d->path);
    free(d);
}

void sb_pj_defs_free(sb_pj_def_t **defs, int n)
{
    for (int i = 0; i < n; i++)
        sb_pj_def_free(defs[i]);
    free(defs);
}

static char *dup_range(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p != NULL) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

static bool only_space_and_comments(const char *sql)
{
    return last_significant(sql) == 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The next word of a directive's list (words separated by blanks or commas) from line[*i]: true
 * with it at line[*start..*i), false at the end of the line. */
static bool next_word(const char *line, size_t n, size_t *i, size_t *start)
{
    while (*i < n && (isspace((unsigned char)line[*i]) || line[*i] == ','))
        (*i)++;
    if (*i >= n)
        return false;
    *start = *i;
    while (*i < n && !isspace((unsigned char)line[*i]) && line[*i] != ',')
        (*i)++;
    return true;
}

/* Is the comment text line[0..n) (after "--") a directive?  "@on" and "@batch" always are; another
 * "@word" is treated as a misspelt directive (an error) when event types follow it, and as a plain
 * comment ("-- @mentions are stored") otherwise. */
static bool is_directive(const char *line, size_t n)
{
    size_t i = 0;
    while (i < n && (line[i] == ' ' || line[i] == '\t'))
        i++;
    if (i >= n || line[i] != '@')
        return false;
    size_t w = ++i;
    while (i < n && isalpha((unsigned char)line[i]))
        i++;
    if (i == w || (i < n && !isspace((unsigned char)line[i]) && line[i] != ','))
        return false;
    if ((i - w == 2 && memcmp(line + w, "on", 2) == 0) || (i - w == 5 && memcmp(line + w, "batch", 5) == 0) ||
        (i - w == 8 && memcmp(line + w, "deferred", 8) == 0))
        return true;
    int types = 0;
    for (size_t t; next_word(line, n, &i, &t);) {
        if (!type_is_valid(line + t, i - t))
            return false;
        types++;
    }
    return types > 0;
}

/* Is the comment text line[0..n) (after "--") the no-section directive word ("@cost N", "@payload
 * key ...")?  The line stays in the SQL as a comment. */
static bool is_word(const char *line, size_t n, const char *word)
{
    size_t i = 0, w = strlen(word);
    while (i < n && (line[i] == ' ' || line[i] == '\t'))
        i++;
    return n - i >= w && memcmp(line + i, word, w) == 0 &&
           (n - i == w || isspace((unsigned char)line[i + w]));
}

/* Reads the number of a cost hint into d->cost; at most one per file. */
static int parse_cost(const char *line, size_t n, int lineno, sb_pj_def_t *d, bool *seen, char *err,
                      size_t errlen)
{
    if (*seen) {
        snprintf(err, errlen, "line %d: a second @cost (a file has at most one)", lineno);
        return SB_EINVAL;
    }
    *seen = true;
    const char *at = memchr(line, '@', n);
    char num[32];
    size_t k = (size_t)(at + 5 - line), len = 0;
    while (k < n && isspace((unsigned char)line[k]))
        k++;
    while (k < n && !isspace((unsigned char)line[k]) && len < sizeof(num) - 1)
        num[len++] = line[k++];
    num[len] = '\0';
    while (k < n && isspace((unsigned char)line[k]))
        k++;
    char *end = NULL;
    double v = len > 0 ? strtod(num, &end) : -1;
    /* Digits and a point only: no signs, exponents, inf or nan. */
    bool plain = len > 0 && strspn(num, "0123456789.") == len;
    if (!plain || end == NULL || *end != '\0' || k < n || !(v >= 0 && v <= SB_PJ_MAX_COST)) {
        snprintf(err, errlen, "line %d: @cost takes one number from 0 to %d (a relative weight)", lineno,
                 SB_PJ_MAX_COST);
        return SB_EINVAL;
    }
    d->cost = v;
    return 0;
}

int sb_pj_sorted_find(char *const *items, int count, const char *s, size_t n, bool *found)
{
    int lo = 0, hi = count;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        int c = strncmp(items[mid], s, n);
        if (c == 0 && items[mid][n] == '\0') {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid; /* greater, or longer with s as its prefix */
    }
    *found = false;
    return lo;
}

bool sb_pj_sorted_has(char *const *items, int count, const char *s, size_t n)
{
    bool found;
    sb_pj_sorted_find(items, count, s, n, &found);
    return found;
}

/* Adds a copy of s[0..n) to the sorted, distinct list *items (of *count). */
static int add_sorted(char ***items, int *count, const char *s, size_t n)
{
    bool found;
    int at = sb_pj_sorted_find(*items, *count, s, n, &found);
    if (found)
        return 0;
    char **p = realloc(*items, (size_t)(*count + 1) * sizeof(*p));
    if (p == NULL)
        return SB_ENOMEM;
    *items = p;
    char *copy = dup_range(s, n);
    if (copy == NULL)
        return SB_ENOMEM;
    memmove(p + at + 1, p + at, (size_t)(*count - at) * sizeof(*p));
    p[at] = copy;
    (*count)++;
    return 0;
}

static bool payload_key_is_valid(const char *s, size_t n)
{
    if (n == 0 || n > SB_PJ_PAYLOAD_KEY_MAX || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_'))
            return false;
    return true;
}

/* Reads the keys of a payload declaration into d->payload_keys. */
static int parse_payload(const char *line, size_t n, int lineno, sb_pj_def_t *d, char *err, size_t errlen)
{
    const char *at = memchr(line, '@', n);
    size_t i = (size_t)(at + 8 - line);
    int keys = 0;
    for (size_t k; next_word(line, n, &i, &k);) {
        if (!payload_key_is_valid(line + k, i - k)) {
            snprintf(err, errlen,
                     "line %d: @payload key '%.*s' is not a name ([A-Za-z_][A-Za-z0-9_]*, at most %d bytes)",
                     lineno, (int)(i - k), line + k, SB_PJ_PAYLOAD_KEY_MAX);
            return SB_EINVAL;
        }
        if (d->npayload_keys >= SB_PJ_MAX_PAYLOAD_KEYS) {
            snprintf(err, errlen, "line %d: more than %d @payload keys", lineno, SB_PJ_MAX_PAYLOAD_KEYS);
            return SB_EINVAL;
        }
        int rc = add_sorted(&d->payload_keys, &d->npayload_keys, line + k, i - k);
        if (rc != 0)
            return rc;
        keys++;
    }
    if (keys == 0) {
        snprintf(err, errlen, "line %d: @payload lists the payload keys the file reads (at least one)",
                 lineno);
        return SB_EINVAL;
    }
    return 0;
}

/* A file that declares its payload keys: finds the first key its SQL reads by name (`->'k'`,
 * `->>'k'`, `? 'k'`, not after `$8`, the metadata) that the declaration leaves out, into key.
 * Comments and strings are skipped, but not dollar-quoted text, which holds helper functions'
 * bodies.  A safety net for the usual ways of reading a key, not a proof: a file that reads its
 * payloads whole must not declare keys (docs/projections.md). */
static bool undeclared_key(const sb_pj_def_t *d, const char *s, char *key, size_t keylen)
{
    size_t n = strlen(s);
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '-' && i + 1 < n && s[i + 1] == '-') {
            while (i < n && s[i] != '\n')
                i++;
            continue;
        }
        if (c == '/' && i + 1 < n && s[i + 1] == '*') {
            int depth = 1;
            for (i += 2; i < n && depth > 0; i++) {
                if (s[i] == '*' && i + 1 < n && s[i + 1] == '/')
                    depth--, i++;
                else if (s[i] == '/' && i + 1 < n && s[i + 1] == '*')
                    depth++, i++;
            }
            i--;
            continue;
        }
        if (c == '\'' || c == '"') {
            for (i++; i < n && !(s[i] == c && !(i + 1 < n && s[i + 1] == c)); i++)
                if (s[i] == c)
                    i++; /* a doubled quote */
            continue;
        }
        size_t op = 0;
        if (c == '-' && i + 1 < n && s[i + 1] == '>')
            op = i + 2 < n && s[i + 2] == '>' ? 3 : 2;
        else if (c == '?')
            op = 1;
        if (op == 0)
            continue;
        size_t b = i;
        while (b > 0 && isspace((unsigned char)s[b - 1]))
            b--;
        bool metadata =
            b >= 2 && s[b - 2] == '$' && s[b - 1] == '8' && (b < 3 || !isdigit((unsigned char)s[b - 3]));
        size_t k = i + op;
        while (k < n && isspace((unsigned char)s[k]))
            k++;
        i = k - 1;
        if (k >= n || s[k] != '\'')
            continue;
        size_t e = k + 1;
        while (e < n && s[e] != '\'')
            e++;
        bool quoted = e + 1 < n && s[e + 1] == '\''; /* a '' inside: no plain key */
        if (!metadata &&
            (quoted || !sb_pj_sorted_has(d->payload_keys, d->npayload_keys, s + k + 1, e - k - 1))) {
            snprintf(key, keylen, "%.*s", (int)(e - k - 1 > 60 ? 60 : e - k - 1), s + k + 1);
            return true;
        }
    }
    return false;
}

/* Parses the directive whose text (after "--") is line[0..n): fills sec's kind and types. */
static int parse_directive(const char *line, size_t n, int lineno, sb_pj_section_t *sec, char *err,
                           size_t errlen)
{
    size_t i = 0;
    while (i < n && isspace((unsigned char)line[i]))
        i++;
    i++; /* '@' */
    size_t w = i;
    while (i < n && isalpha((unsigned char)line[i]))
        i++;
    if (i - w == 2 && memcmp(line + w, "on", 2) == 0) {
        sec->kind = SB_PJ_ON;
    } else if (i - w == 5 && memcmp(line + w, "batch", 5) == 0) {
        sec->kind = SB_PJ_BATCH;
    } else if (i - w == 8 && memcmp(line + w, "deferred", 8) == 0) {
        sec->kind = SB_PJ_DEFERRED;
    } else {
        snprintf(err, errlen, "line %d: unknown directive '@%.*s' (expected @on, @batch or @deferred)",
                 lineno, (int)(i - w), line + w);
        return SB_EINVAL;
    }
    sec->line = lineno;
    if (sec->kind == SB_PJ_DEFERRED) {
        while (i < n && isspace((unsigned char)line[i]))
            i++;
        if (i < n) {
            snprintf(err, errlen, "line %d: @deferred takes no event types", lineno);
            return SB_EINVAL;
        }
        return 0;
    }
    for (size_t t; next_word(line, n, &i, &t);) {
        if (!type_is_valid(line + t, i - t)) {
            snprintf(err, errlen, "line %d: '%.*s' is not an event type (PascalCase, letters and digits)",
                     lineno, (int)(i - t), line + t);
            return SB_EINVAL;
        }
        bool dup = false;
        for (int k = 0; k < sec->ntypes; k++)
            if (strlen(sec->types[k]) == i - t && memcmp(sec->types[k], line + t, i - t) == 0)
                dup = true;
        if (dup)
            continue;
        if (sec->ntypes >= SB_PJ_MAX_TYPES) {
            snprintf(err, errlen, "line %d: too many event types", lineno);
            return SB_EINVAL;
        }
        char **p = realloc(sec->types, (size_t)(sec->ntypes + 1) * sizeof(*p));
        if (p == NULL)
            return SB_ENOMEM;
        sec->types = p;
        if ((sec->types[sec->ntypes] = dup_range(line + t, i - t)) == NULL)
            return SB_ENOMEM;
        sec->ntypes++;
    }
    if (sec->ntypes == 0) {
        snprintf(err, errlen, "line %d: @%s names no event type", lineno,
                 sec->kind == SB_PJ_ON ? "on" : "batch");
        return SB_EINVAL;
    }
    return 0;
}

/* Ends the section being collected at text[from..to). */
static int close_section(sb_pj_def_t *d, sb_pj_section_t *cur, const char *text, size_t from, size_t to,
                         char *err, size_t errlen)
{
    char *sql = dup_range(text + from, to - from);
    if (sql == NULL)
        return SB_ENOMEM;
    if (cur == NULL) {
        d->setup = sql;
        return 0;
    }
    if (only_space_and_comments(sql)) {
        snprintf(err, errlen, "line %d: the section has no statements", cur->line);
        free(sql);
        return SB_EINVAL;
    }
    cur->sql = sql;
    return 0;
}

int sb_pj_parse(const char *name, const char *text, size_t len, sb_pj_def_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!sb_pj_name_is_valid(name)) {
        snprintf(err, errlen,
                 "'%s' cannot name a projection (a-z, 0-9 and single underscores, starting with a letter, "
                 "at most %d characters)",
                 name, SB_PJ_NAME_MAX);
        return SB_EINVAL;
    }
    if (len > SB_PJ_MAX_FILE) {
        snprintf(err, errlen, "the file is larger than %d bytes", SB_PJ_MAX_FILE);
        return SB_EINVAL;
    }
    if (memchr(text, '\0', len) != NULL) {
        snprintf(err, errlen, "the file contains a NUL byte");
        return SB_EINVAL;
    }
    sb_pj_def_t *d = calloc(1, sizeof(*d));
    if (d == NULL || (d->name = strdup(name)) == NULL) {
        free(d);
        return SB_ENOMEM;
    }
    /* The file's text after the generator's version (def.h): either changing rebuilds it. */
    static const char generator[] = "switchboard projections generator " SB_PJ_GENERATOR "\n";
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const unsigned char *)generator, sizeof(generator) - 1);
    crypto_hash_sha256_update(&st, (const unsigned char *)text, len);
    crypto_hash_sha256_final(&st, h);
    sodium_bin2hex(d->hash, sizeof(d->hash), h, sizeof(h));

    int rc = 0;
    sb_pj_section_t *cur = NULL; /* NULL: the set-up */
    size_t body = 0;             /* where the current part's text starts */
    int lineno = 1;
    bool seen_on = false, seen_cost = false;
    d->cost = SB_PJ_DEFAULT_COST;
    scan_t sc = {.s = text, .n = len, .state = S_TOP};
    bool sig;
    size_t line_start = 0;
    while (sc.i < len) {
        size_t at = sc.i;
        int state = sc.state;
        if (state == S_TOP && text[at] == '-' && at + 1 < len && text[at + 1] == '-') {
            /* A comment at the start of a line (after blanks) may be a directive. */
            bool at_line_start = true;
            for (size_t k = line_start; k < at; k++)
                if (!isspace((unsigned char)text[k]))
                    at_line_start = false;
            size_t eol = at;
            while (eol < len && text[eol] != '\n')
                eol++;
            if (at_line_start && is_word(text + at + 2, eol - at - 2, "@cost") &&
                (rc = parse_cost(text + at + 2, eol - at - 2, lineno, d, &seen_cost, err, errlen)) != 0)
                goto fail;
            bool payload = at_line_start && is_word(text + at + 2, eol - at - 2, "@payload");
            if (payload && (rc = parse_payload(text + at + 2, eol - at - 2, lineno, d, err, errlen)) != 0)
                goto fail;
            if (!payload && at_line_start && is_directive(text + at + 2, eol - at - 2)) {
                /* A directive right after another of the same kind continues its list of types. */
                bool blank = true;
                for (size_t j = body; j < line_start && blank; j++)
                    blank = isspace((unsigned char)text[j]);
                sb_pj_section_t probe = {0};
                if (cur != NULL && blank &&
                    (rc = parse_directive(text + at + 2, eol - at - 2, lineno, &probe, err, errlen)) == 0 &&
                    probe.kind == cur->kind) {
                    for (int t = 0; t < probe.ntypes; t++) {
                        bool dup = false;
                        for (int j = 0; j < cur->ntypes && !dup; j++)
                            dup = strcmp(cur->types[j], probe.types[t]) == 0;
                        if (dup || cur->ntypes >= SB_PJ_MAX_TYPES) {
                            free(probe.types[t]);
                            continue;
                        }
                        char **p = realloc(cur->types, (size_t)(cur->ntypes + 1) * sizeof(*p));
                        if (p == NULL) {
                            free(probe.types[t]);
                            rc = SB_ENOMEM;
                            continue;
                        }
                        cur->types = p;
                        cur->types[cur->ntypes++] = probe.types[t];
                    }
                    free(probe.types);
                    if (rc != 0)
                        goto fail;
                    body = eol < len ? eol + 1 : eol;
                    sc.i = body;
                    line_start = body;
                    lineno++;
                    continue;
                }
                for (int t = 0; t < probe.ntypes; t++)
                    free(probe.types[t]);
                free(probe.types);
                if (rc == SB_ENOMEM || (rc != 0 && cur != NULL && blank))
                    goto fail;
                rc = 0;
                if ((rc = close_section(d, cur, text, body, line_start, err, errlen)) != 0)
                    goto fail;
                if (d->nsections >= SB_PJ_MAX_SECTIONS) {
                    snprintf(err, errlen, "line %d: too many sections", lineno);
                    rc = SB_EINVAL;
                    goto fail;
                }
                sb_pj_section_t *p = realloc(d->sections, (size_t)(d->nsections + 1) * sizeof(*p));
                if (p == NULL) {
                    rc = SB_ENOMEM;
                    goto fail;
                }
                d->sections = p;
                cur = &d->sections[d->nsections++];
                memset(cur, 0, sizeof(*cur));
                if ((rc = parse_directive(text + at + 2, eol - at - 2, lineno, cur, err, errlen)) != 0)
                    goto fail;
                if (cur->kind == SB_PJ_ON)
                    seen_on = true;
                else
                    cur->after = seen_on;
                body = eol < len ? eol + 1 : eol;
                sc.i = body;
                line_start = body;
                lineno++;
                continue;
            }
        }
        scan_step(&sc, &sig);
        for (size_t k = at; k < sc.i; k++) {
            if (text[k] == '\n') {
                lineno++;
                line_start = k + 1;
            }
        }
    }
    if (sc.state != S_TOP && sc.state != S_LINE) {
        snprintf(err, errlen, "line %d: the file ends inside a %s", lineno,
                 sc.state == S_BLOCK    ? "comment"
                 : sc.state == S_DOLLAR ? "dollar-quoted string"
                 : sc.state == S_DQUOTE ? "quoted identifier"
                                        : "string");
        rc = SB_EINVAL;
        goto fail;
    }
    if ((rc = close_section(d, cur, text, body, len, err, errlen)) != 0)
        goto fail;
    /* The deferred set-up, in file order, each part ended so the next starts a statement. */
    sb_buf_t deferred = SB_BUF_INIT;
    int nhandlers = 0;
    for (int i = 0; i < d->nsections; i++) {
        if (d->sections[i].kind != SB_PJ_DEFERRED) {
            nhandlers++;
            continue;
        }
        sb_buf_puts(&deferred, d->sections[i].sql);
        if (last_significant(d->sections[i].sql) != ';')
            sb_buf_puts(&deferred, "\n;");
        sb_buf_puts(&deferred, "\n");
    }
    if (deferred.len > 0)
        d->deferred = sb_buf_steal(&deferred);
    sb_buf_free(&deferred);
    if (nhandlers == 0) {
        snprintf(err, errlen,
                 "no '-- @on Type' or '-- @batch Type' section: the projection handles no event");
        rc = SB_EINVAL;
        goto fail;
    }

    /* The union of the types, sorted and distinct. */
    for (int i = 0; i < d->nsections; i++) {
        for (int k = 0; k < d->sections[i].ntypes; k++) {
            const char *t = d->sections[i].types[k];
            bool dup = false;
            for (int j = 0; j < d->ntypes; j++)
                if (strcmp(d->types[j], t) == 0)
                    dup = true;
            if (dup)
                continue;
            if (d->ntypes >= SB_PJ_MAX_TYPES) {
                snprintf(err, errlen, "more than %d event types", SB_PJ_MAX_TYPES);
                rc = SB_EINVAL;
                goto fail;
            }
            char **p = realloc(d->types, (size_t)(d->ntypes + 1) * sizeof(*p));
            if (p == NULL || (p[d->ntypes] = strdup(t)) == NULL) {
                if (p != NULL)
                    d->types = p;
                rc = SB_ENOMEM;
                goto fail;
            }
            d->types = p;
            d->ntypes++;
        }
        if (d->sections[i].kind != SB_PJ_DEFERRED && mentions_param(d->sections[i].sql, '8'))
            d->uses_metadata = true;
        if (d->sections[i].kind != SB_PJ_DEFERRED && mentions_param(d->sections[i].sql, '7'))
            for (int k = 0; k < d->sections[i].ntypes; k++) {
                const char *t = d->sections[i].types[k];
                if ((rc = add_sorted(&d->payload_types, &d->npayload_types, t, strlen(t))) != 0)
                    goto fail;
            }
    }
    qsort(d->types, (size_t)d->ntypes, sizeof(*d->types), cmp_str);
    if (d->payload_keys != NULL) {
        char key[64];
        const char *where = NULL;
        int line = 0;
        if (undeclared_key(d, d->setup, key, sizeof(key)))
            where = "the set-up";
        for (int i = 0; i < d->nsections && where == NULL; i++)
            if (d->sections[i].kind != SB_PJ_DEFERRED &&
                undeclared_key(d, d->sections[i].sql, key, sizeof(key))) {
                where = d->sections[i].kind == SB_PJ_ON ? "the @on section at line"
                                                        : "the @batch section at line";
                line = d->sections[i].line;
            }
        if (where != NULL) {
            if (line > 0)
                snprintf(err, errlen, "%s %d reads payload key '%s', which no -- @payload line lists", where,
                         line, key);
            else
                snprintf(err, errlen, "%s reads payload key '%s', which no -- @payload line lists", where,
                         key);
            rc = SB_EINVAL;
            goto fail;
        }
    }
    *out = d;
    return 0;
fail:
    sb_pj_def_free(d);
    return rc;
}

/* ---- files ----------------------------------------------------------------------------------- */

static int read_file(const char *path, char **text, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        int e = errno;
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(e));
        return e == ENOENT ? UV_ENOENT : uv_translate_sys_error(e);
    }
    sb_buf_t b = SB_BUF_INIT;
    char chunk[65536];
    size_t n;
    int rc = 0;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (b.len + n > SB_PJ_MAX_FILE) {
            snprintf(err, errlen, "%s is larger than %d bytes", path, SB_PJ_MAX_FILE);
            rc = SB_EINVAL;
            break;
        }
        sb_buf_append(&b, chunk, n);
    }
    if (rc == 0 && ferror(f)) {
        snprintf(err, errlen, "cannot read %s", path);
        rc = SB_EINVAL;
    }
    fclose(f);
    if (rc != 0) {
        sb_buf_free(&b);
        return rc;
    }
    *len = b.len;
    sb_buf_putc(&b, '\0');
    *text = sb_buf_steal(&b);
    return 0;
}

int sb_pj_load(const char *dir, const char *name, sb_pj_def_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!sb_pj_name_is_valid(name)) {
        snprintf(err, errlen, "'%s' cannot name a projection", name);
        return SB_EINVAL;
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s.sql", dir, name);
    char *text = NULL;
    size_t len = 0;
    int rc = read_file(path, &text, &len, err, errlen);
    if (rc != 0)
        return rc;
    char perr[400];
    rc = sb_pj_parse(name, text, len, out, perr, sizeof(perr));
    free(text);
    if (rc == SB_EINVAL)
        snprintf(err, errlen, "%s: %s", path, perr);
    else if (rc != 0)
        snprintf(err, errlen, "%s: %s", path, sb_strerror(rc));
    if (rc == 0 && ((*out)->path = strdup(path)) == NULL) {
        sb_pj_def_free(*out);
        *out = NULL;
        return SB_ENOMEM;
    }
    return rc;
}

int sb_pj_load_dir(const char *dir, sb_pj_def_t ***out, int *n,
                   void (*on_error)(const char *file, const char *msg, void *data), void *data, char *err,
                   size_t errlen)
{
    *out = NULL;
    *n = 0;
    DIR *dh = opendir(dir);
    if (dh == NULL) {
        int e = errno;
        snprintf(err, errlen, "cannot read the projections directory %s: %s", dir, strerror(e));
        return uv_translate_sys_error(e);
    }
    char **names = NULL;
    int nnames = 0, rc = 0;
    struct dirent *de;
    while ((de = readdir(dh)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l < 5 || strcmp(de->d_name + l - 4, ".sql") != 0 || de->d_name[0] == '.')
            continue;
        char **p = realloc(names, (size_t)(nnames + 1) * sizeof(*p));
        if (p == NULL || (p[nnames] = dup_range(de->d_name, l - 4)) == NULL) {
            if (p != NULL)
                names = p;
            rc = SB_ENOMEM;
            break;
        }
        names = p;
        nnames++;
    }
    closedir(dh);
    if (rc == 0)
        qsort(names, (size_t)nnames, sizeof(*names), cmp_str);
    sb_pj_def_t **defs = rc == 0 && nnames > 0 ? calloc((size_t)nnames, sizeof(*defs)) : NULL;
    if (rc == 0 && nnames > 0 && defs == NULL)
        rc = SB_ENOMEM;
    for (int i = 0; rc == 0 && i < nnames; i++) {
        char msg[600];
        sb_pj_def_t *d = NULL;
        int r = sb_pj_load(dir, names[i], &d, msg, sizeof(msg));
        if (r == SB_ENOMEM) {
            rc = r;
        } else if (r != 0) {
            if (on_error != NULL)
                on_error(names[i], msg, data);
        } else {
            defs[(*n)++] = d;
        }
    }
    for (int i = 0; i < nnames; i++)
        free(names[i]);
    free(names);
    if (rc != 0) {
        sb_pj_defs_free(defs, *n);
        *n = 0;
        snprintf(err, errlen, "%s", sb_strerror(rc));
        return rc;
    }
    *out = defs;
    return 0;
}

/* ---- the installed SQL ----------------------------------------------------------------------- */

/* A dollar-quote tag that does not occur in body. */
static void body_tag(const char *body, const char *base, char *tag, size_t cap)
{
    snprintf(tag, cap, "$%s$", base);
    for (int k = 1; strstr(body, tag) != NULL; k++)
        snprintf(tag, cap, "$%s%d$", base, k);
}

/* prologue: statements put on the BEGIN line (so the section's own line numbers stay those of
 * its first line), or NULL. */
static void put_body(sb_buf_t *out, const char *sql, const char *base, const char *prologue)
{
    char tag[64];
    body_tag(sql, base, tag, sizeof(tag));
    sb_buf_printf(out, "%s\nBEGIN%s%s\n%s", tag, prologue ? " " : "", prologue ? prologue : "", sql);
    /* PL/pgSQL wants each statement ended, and refuses an empty one. */
    if (last_significant(sql) != ';')
        sb_buf_puts(out, "\n;");
    sb_buf_printf(out, "\nEND\n%s", tag);
}

/* A section's parameters: docs/projections.md's $1..$8, and $9, the id the stream's name ends with. */
#define NPARAMS 9
static const char scalar_args[] = "bigint, text, text, bigint, uuid, timestamptz, jsonb, jsonb, uuid";
static const char array_args[] =
    "bigint[], text[], text[], bigint[], uuid[], timestamptz[], jsonb[], jsonb[], uuid[]";
static const char batch_args[] = "p_position, p_stream, p_type, p_version, p_workspace, p_recorded_at, "
                                 "p_payload, p_metadata, p_stream_id";
/* The per-event pass: the loop's variables, each array's name, and its element's type. */
static const char *const event_var[NPARAMS] = {"e_position", "e_stream",    "t",
                                               "e_version",  "e_workspace", "e_recorded_at",
                                               "e_payload",  "e_metadata",  "e_stream_id"};
static const char *const event_array[NPARAMS] = {"p_position", "p_stream",    "p_type",
                                                 "p_version",  "p_workspace", "p_recorded_at",
                                                 "p_payload",  "p_metadata",  "p_stream_id"};
static const char *const event_type[NPARAMS] = {"bigint",      "text",  "text",  "bigint", "uuid",
                                                "timestamptz", "jsonb", "jsonb", "uuid"};

/* An @on section's arguments: the event's values of the parameters the section reads, NULL for
 * the others (the pass fetches only what some handler reads: see sb_pj_install_sql). */
static void put_event_args(sb_buf_t *out, const char *sql)
{
    for (int j = 0; j < NPARAMS; j++) {
        if (j > 0)
            sb_buf_puts(out, ", ");
        if (j == 2 || mentions_param(sql, (char)('1' + j)))
            sb_buf_puts(out, event_var[j]);
        else
            sb_buf_printf(out, "NULL::%s", event_type[j]);
    }
}

/* ARRAY['A','B']::text[]: event types as a text array literal. */
static void put_types(sb_buf_t *out, char *const *types, int n)
{
    sb_buf_puts(out, "ARRAY[");
    for (int k = 0; k < n; k++) {
        if (k > 0)
            sb_buf_putc(out, ',');
        sb_pj_quote_literal(out, types[k]);
    }
    sb_buf_puts(out, "]::text[]");
}

/* Emits the calls of one group of batch sections (those before the per-event pass, or after it).
 * The calls themselves run generic plans, whatever the batch's size: see
 * sb_pj_install_sql. */
static void put_batch_calls(sb_buf_t *out, const sb_pj_def_t *d, bool after, bool any_on)
{
    for (int s = 0; s < d->nsections; s++) {
        const sb_pj_section_t *sec = &d->sections[s];
        if (sec->kind != SB_PJ_BATCH || (any_on && sec->after != after) || (!any_on && after))
            continue;
        sb_buf_printf(out, "    sect := 'the @batch section at line %d';\n    IF p_types && ", sec->line);
        put_types(out, sec->types, sec->ntypes);
        sb_buf_printf(out, " THEN\n        PERFORM \"__section_%d\"(%s);\n    END IF;\n", s + 1, batch_args);
    }
}

void sb_pj_install_sql(const sb_pj_def_t *d, const char *schema, bool replace, sb_buf_t *out)
{
    if (replace) {
        sb_buf_puts(out, "DROP SCHEMA IF EXISTS ");
        sb_pj_quote_ident(out, schema);
        sb_buf_puts(out, " CASCADE;\n");
    }
    sb_buf_puts(out, "CREATE SCHEMA ");
    sb_pj_quote_ident(out, schema);
    sb_buf_puts(out, ";\nSET LOCAL search_path = ");
    sb_pj_quote_ident(out, schema);
    sb_buf_puts(out, ", public;\n");
    /* The set-up as written, closed so that what follows starts a new statement. */
    sb_buf_puts(out, d->setup);
    if (last_significant(d->setup) != 0 && last_significant(d->setup) != ';')
        sb_buf_puts(out, "\n;");
    sb_buf_puts(out, "\n");

    if (d->deferred != NULL) {
        /* Run once the build has caught up (projection_run_deferred, by the runner): until then
         * the statements wait in the schema itself, so they go wherever the schema goes. */
        sb_buf_puts(out,
                    "CREATE TABLE \"__deferred\" (sql text NOT NULL);\nINSERT INTO \"__deferred\" VALUES (");
        sb_pj_quote_literal(out, d->deferred);
        sb_buf_puts(out, ");\n");
    }

    bool any_on = false;
    bool reads[NPARAMS] = {false}; /* the parameters some @on section reads */
    bool ids = false;              /* some section reads $9 */
    for (int s = 0; s < d->nsections; s++) {
        const sb_pj_section_t *sec = &d->sections[s];
        if (sec->kind == SB_PJ_DEFERRED)
            continue;
        any_on |= sec->kind == SB_PJ_ON;
        ids |= mentions_param(sec->sql, '9');
        for (int j = 0; j < NPARAMS && sec->kind == SB_PJ_ON; j++)
            reads[j] |= mentions_param(sec->sql, (char)('1' + j));
        if (sec->kind == SB_PJ_ON) {
            /* Runs the dispatcher's generic plans. */
            sb_buf_printf(out, "CREATE FUNCTION \"__section_%d\"(%s) RETURNS void LANGUAGE plpgsql AS ",
                          s + 1, scalar_args);
            put_body(out, sec->sql, "section", NULL);
        } else {
            /* A large batch (a catch-up's thousands of events) plans the section's statements
             * afresh, since only a custom plan knows how many events the arrays hold (a generic
             * plan guesses ten, and joins over thousands become nested loops); a small one (live,
             * a few hundred events at most) runs the generic plans the session keeps, as planning
             * would cost more than running them: at 20 events a batch, a fifth of the database's
             * time went to planning.  The switch is the section's own, undone when it returns (the
             * SET attribute), so the dispatcher's call of it stays a generic plan: a custom plan of
             * that call would copy all eight arrays twice (into the plan as constants, then the
             * plan into the plan cache) and the section a third time on entry (the arrays would
             * come in flat, and PL/pgSQL expands every flat array argument), where the generic one
             * hands the section the dispatcher's expanded arrays, read-only, without a copy. */
            char prologue[160];
            snprintf(
                prologue, sizeof(prologue),
                "IF cardinality($3) > %d THEN PERFORM set_config('plan_cache_mode', 'force_custom_plan', "
                "true); END IF;",
                SB_PJ_GENERIC_MAX_EVENTS);
            sb_buf_printf(out,
                          "CREATE FUNCTION \"__section_%d\"(%s) RETURNS void LANGUAGE plpgsql SET "
                          "plan_cache_mode = force_generic_plan AS ",
                          s + 1, array_args);
            put_body(out, sec->sql, "section", prologue);
        }
        sb_buf_puts(out, ";\n");
    }

    /* The dispatcher.  Its EXCEPTION block names the event (or section) that failed in the error
     * the runner reports; it costs one subtransaction per batch, not per event.  Generic plans:
     * a handler runs thousands of times with different parameters, and planning an INSERT into a
     * table with several indexes can cost more than running it, which custom plans would do on
     * every call when the planner finds them no dearer.  (Batch sections switch to custom plans
     * themselves, for large batches: above.) */
    sb_buf_puts(out,
                "CREATE FUNCTION \"__apply\"(p_position bigint[], p_stream text[], p_type text[], "
                "p_version bigint[], p_workspace uuid[], p_recorded_at timestamptz[], p_payload jsonb[], "
                "p_metadata jsonb[], p_stream_id uuid[] DEFAULT NULL, p_types text[] DEFAULT NULL) RETURNS "
                "void LANGUAGE plpgsql SET "
                "plan_cache_mode = force_generic_plan SET search_path = ");
    sb_pj_quote_ident(out, schema);
    sb_buf_puts(out, ", public AS $sb_apply$\nDECLARE\n    i int := 0;\n    k int;\n    t text;\n");
    for (int j = 0; j < NPARAMS; j++)
        if (j != 2)
            sb_buf_printf(out, "    %s %s;\n", event_var[j], event_type[j]);
    sb_buf_puts(out, "    sect text := '';\nBEGIN\n");
    /* p_types: the batch's distinct types, which the runner noted as it collected the batch, so
     * that each test of the batch's types below (which sections to run) compares a handful of
     * strings rather than every event's type: the tests that fail, most of them for a burst of
     * inbound messages, compared each event's type with each of the section's (arrayoverlap), some
     * 4,000 instructions per inbound message over the lanes.  A caller that leaves them out gets
     * the batch's types instead, as before. */
    sb_buf_puts(out, "    IF p_types IS NULL THEN\n        p_types := p_type;\n    END IF;\n");
    /* A batch with none of the projection's types (live, most batches for most projections: a
     * burst of inbound messages means nothing to notes or calls) returns before the block below,
     * whose EXCEPTION clause would open a subtransaction on entry. */
    if (d->ntypes > 0) {
        sb_buf_puts(out, "    IF NOT p_types && ");
        put_types(out, d->types, d->ntypes);
        sb_buf_puts(out, " THEN\n        RETURN;\n    END IF;\n");
    }
    if (ids) {
        /* The runner parses the ids once, in C, and hands them over; a caller that leaves them out
         * (a runner that does not know this file's version yet) gets the same ones worked out
         * here, by the same rule: the stream name's last 36 characters, when they are a uuid in
         * the 8-4-4-4-12 form. */
        sb_buf_puts(
            out,
            "    IF p_stream_id IS NULL THEN\n        p_stream_id := ARRAY(SELECT CASE WHEN right(s, 36) ~ "
            "'^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$' THEN "
            "right(s, 36)::uuid END FROM unnest(p_stream) WITH ORDINALITY AS x(s, o) ORDER BY o);\n"
            "    END IF;\n");
    }
    sb_buf_puts(out, "BEGIN\n");
    put_batch_calls(out, d, false, any_on);
    if (any_on) {
        /* The per-event pass visits only the events some @on section takes: the filtering and the
         * type-to-branch mapping are done set-wise in C by the query, so events of other types
         * (most of a batch, for many projections) cost nothing here.  The query also reads the
         * events' values, of the arrays some handler reads only, in one sequential walk: a
         * subscript (p_payload[i]) would deconstruct the whole array, every element, once per call,
         * and the pass runs in most batches (a ContactDeleted is enough). */
        sb_buf_t list = SB_BUF_INIT;
        int nhandled = 0;
        sb_buf_puts(&list, "ARRAY[");
        for (int k = 0; k < d->ntypes; k++) {
            bool handled = false;
            for (int s = 0; s < d->nsections && !handled; s++)
                for (int j = 0; j < d->sections[s].ntypes && d->sections[s].kind == SB_PJ_ON && !handled; j++)
                    handled = strcmp(d->sections[s].types[j], d->types[k]) == 0;
            if (!handled)
                continue;
            if (nhandled++ > 0)
                sb_buf_putc(&list, ',');
            sb_pj_quote_literal(&list, d->types[k]);
        }
        sb_buf_puts(&list, "]::text[]");
        sb_buf_printf(out, "    sect := '';\n    IF p_types && %s THEN\n    FOR i, k, t", list.data);
        for (int j = 0; j < NPARAMS; j++)
            if (j != 2)
                sb_buf_printf(out, ", %s", event_var[j]);
        sb_buf_printf(out, " IN SELECT e.ord, array_position(%s, e.ty), e.ty", list.data);
        for (int j = 0; j < NPARAMS; j++) {
            if (j == 2)
                continue;
            if (reads[j])
                sb_buf_printf(out, ", e.v%d", j + 1);
            else
                sb_buf_printf(out, ", NULL::%s", event_type[j]);
        }
        sb_buf_puts(out,
                    " FROM (SELECT generate_series(1, cardinality(p_type)) AS ord, unnest(p_type) AS ty");
        for (int j = 0; j < NPARAMS; j++)
            if (j != 2 && reads[j])
                sb_buf_printf(out, ", unnest(%s) AS v%d", event_array[j], j + 1);
        sb_buf_printf(out, ") AS e WHERE e.ty = ANY (%s) ORDER BY e.ord LOOP\n        CASE k\n", list.data);
        int branch = 0;
        for (int k = 0; k < d->ntypes; k++) {
            const char *type = d->types[k];
            bool handled = false;
            for (int s = 0; s < d->nsections && !handled; s++)
                for (int j = 0; j < d->sections[s].ntypes && d->sections[s].kind == SB_PJ_ON && !handled; j++)
                    handled = strcmp(d->sections[s].types[j], type) == 0;
            if (!handled)
                continue;
            sb_buf_printf(out, "        WHEN %d THEN\n", ++branch);
            for (int s = 0; s < d->nsections; s++) {
                const sb_pj_section_t *sec = &d->sections[s];
                if (sec->kind != SB_PJ_ON)
                    continue;
                for (int j = 0; j < sec->ntypes; j++)
                    if (strcmp(sec->types[j], type) == 0) {
                        sb_buf_printf(out, "            PERFORM \"__section_%d\"(", s + 1);
                        put_event_args(out, sec->sql);
                        sb_buf_puts(out, ");\n");
                    }
            }
        }
        sb_buf_puts(out, "        END CASE;\n    END LOOP;\n    END IF;\n    i := 0;\n");
        sb_buf_free(&list);
    }
    put_batch_calls(out, d, true, any_on);
    sb_buf_puts(out,
                "EXCEPTION WHEN OTHERS THEN\n    RAISE EXCEPTION USING ERRCODE = SQLSTATE, MESSAGE = format("
                "'projection %s: %s: %s', ");
    sb_pj_quote_literal(out, d->name);
    sb_buf_puts(out, ", CASE WHEN i > 0 THEN format('event %s (%s %s v%s)', p_position[i], p_type[i], "
                     "p_stream[i], p_version[i]) ELSE sect END, SQLERRM);\nEND;\nEND\n$sb_apply$;\n");
}

/* ---- spreading projections over partitions ---------------------------------------------------- */

typedef struct {
    const char *name;
    double cost;
    int at;
} weighed_t;

static int cmp_weighed(const void *a, const void *b)
{
    const weighed_t *x = a, *y = b;
    if (x->cost != y->cost)
        return x->cost > y->cost ? -1 : 1;
    return strcmp(x->name, y->name);
}

void sb__pj_assign_partitions(const char *const *names, const double *costs, int n, int partitions, int *out)
{
    if (partitions < 1)
        partitions = 1;
    weighed_t *w = calloc((size_t)(n > 0 ? n : 1), sizeof(*w));
    double *load = calloc((size_t)partitions, sizeof(*load));
    if (w == NULL || load == NULL)
        abort(); /* a few dozen entries */
    for (int i = 0; i < n; i++)
        w[i] = (weighed_t){names[i], costs[i], i};
    /* Largest first, each on the least loaded partition so far (ties: the lowest): within 4/3 of
     * the best split, and for a handful of projections usually the best. */
    qsort(w, (size_t)n, sizeof(*w), cmp_weighed);
    for (int i = 0; i < n; i++) {
        int best = 0;
        for (int p = 1; p < partitions; p++)
            if (load[p] < load[best])
                best = p;
        load[best] += w[i].cost;
        out[w[i].at] = best;
    }
    free(w);
    free(load);
}
