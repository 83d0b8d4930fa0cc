#include "core/phone.h"
#include "core/error.h"

#include <stdint.h>
#include <string.h>

/* Longest phone input we read: the longest sensible written form ("tel:" or "whatsapp:", an
 * international prefix, 15 digits, separators) fits with room to spare, and a bound keeps a
 * peer-supplied field from costing anything. */
#define PHONE_IN_MAX 64
/* Digits kept while scanning: a four-digit international prefix ("0011") plus 15. */
#define DIGITS_MAX 20

enum {
    NANP = 1,    /* North American rules: NXX area code and exchange */
    ZERO_OK = 2, /* the national number may start with 0 (Italy keeps its 0 in E.164) */
};

/* One country's dialling plan, as much of it as normalisation needs.  Lengths are of the national
 * significant number (what follows the country code in E.164), chosen to admit geographic and
 * mobile numbers while refusing numbers with a digit missing or added. */
typedef struct {
    char iso[3];
    char cc[4];
    char trunk;  /* national (trunk) prefix digit, or 0 for none */
    char idd[5]; /* international prefix used besides "00", or "" */
    uint8_t min, max;
    uint8_t flags;
} country_t;

/* Countries sharing a calling code (US/CA on +1, RU/KZ on +7) have identical rules here, so a
 * number read internationally may take whichever entry comes first.  No entry may have both a
 * '0' trunk prefix and ZERO_OK: normalising twice must give the same result. */
static const country_t countries[] = {
    {"US", "1", '1', "011", 10, 10, NANP},
    {"CA", "1", '1', "011", 10, 10, NANP},
    {"GB", "44", '0', "", 7, 10, 0},
    {"DE", "49", '0', "", 6, 13, 0},
    {"FR", "33", '0', "", 9, 9, 0},
    {"IT", "39", 0, "", 6, 11, ZERO_OK},
    {"ES", "34", 0, "", 9, 9, 0},
    {"PT", "351", 0, "", 9, 9, 0},
    {"NL", "31", '0', "", 9, 9, 0},
    {"BE", "32", '0', "", 8, 9, 0},
    {"IE", "353", '0', "", 7, 9, 0},
    {"AU", "61", '0', "0011", 9, 10, 0},
    {"NZ", "64", '0', "", 8, 10, 0},
    {"ZA", "27", '0', "", 9, 9, 0},
    {"IN", "91", '0', "", 10, 10, 0},
    {"SG", "65", 0, "", 8, 8, 0},
    {"HK", "852", 0, "", 8, 8, 0},
    {"JP", "81", '0', "010", 9, 10, 0},
    {"KR", "82", '0', "001", 8, 10, 0},
    {"CN", "86", '0', "", 9, 11, 0},
    {"SE", "46", '0', "", 7, 10, 0},
    {"NO", "47", 0, "", 8, 8, 0},
    {"DK", "45", 0, "", 8, 8, 0},
    {"FI", "358", '0', "", 6, 11, 0},
    {"CH", "41", '0', "", 9, 9, 0},
    {"AT", "43", '0', "", 7, 13, 0},
    {"PL", "48", 0, "", 9, 9, 0},
    {"IL", "972", '0', "", 8, 9, 0},
    {"AE", "971", '0', "", 8, 9, 0},
    {"BR", "55", '0', "", 10, 11, 0},
    /* Mexico dropped its trunk prefixes in 2019, but WhatsApp still writes mobiles as +52 1 …;
     * treating that 1 like NANP's optional 1 makes both forms compare equal. */
    {"MX", "52", '1', "", 10, 10, 0},
    {"RU", "7", '8', "810", 10, 10, 0},
    {"KZ", "7", '8', "810", 10, 10, 0},
    {"GR", "30", 0, "", 10, 10, 0},
    {"TR", "90", '0', "", 10, 10, 0},
    {"AR", "54", '0', "", 10, 11, 0},
    {"CO", "57", 0, "", 10, 10, 0},
    {"CL", "56", 0, "", 9, 9, 0},
    {"PH", "63", '0', "", 8, 10, 0},
    {"TH", "66", '0', "", 8, 9, 0},
    {"MY", "60", '0', "", 8, 10, 0},
    {"ID", "62", '0', "", 8, 12, 0},
    {"VN", "84", '0', "", 9, 10, 0},
    {"NG", "234", '0', "", 8, 10, 0},
    {"KE", "254", '0', "", 9, 9, 0},
    {"EG", "20", '0', "", 8, 10, 0},
    {"SA", "966", '0', "", 8, 9, 0},
    {"PK", "92", '0', "", 9, 10, 0},
    {"CZ", "420", 0, "", 9, 9, 0},
    {"RO", "40", '0', "", 9, 9, 0},
    {"UA", "380", '0', "", 9, 9, 0},
};

#define NCOUNTRIES (sizeof countries / sizeof countries[0])

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static char to_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static char to_upper(char c)
{
    return c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool has_prefix(const char *s, size_t n, const char *prefix)
{
    size_t pl = strlen(prefix);
    return pl > 0 && n >= pl && memcmp(s, prefix, pl) == 0;
}

static bool has_prefix_nocase(const char *s, size_t n, const char *prefix)
{
    size_t pl = strlen(prefix);
    if (n < pl)
        return false;
    for (size_t i = 0; i < pl; i++)
        if (to_lower(s[i]) != prefix[i])
            return false;
    return true;
}

static const country_t *find_iso(const char *code, bool any_case)
{
    if (code == NULL || code[0] == '\0' || code[1] == '\0' || code[2] != '\0')
        return NULL;
    char c0 = code[0], c1 = code[1];
    if (any_case) {
        c0 = to_upper(c0);
        c1 = to_upper(c1);
    }
    for (size_t i = 0; i < NCOUNTRIES; i++)
        if (countries[i].iso[0] == c0 && countries[i].iso[1] == c1)
            return &countries[i];
    return NULL;
}

/* Calling codes are prefix-free, so at most one code (up to shared ones) starts the digits. */
static const country_t *find_cc(const char *d, size_t n)
{
    for (size_t i = 0; i < NCOUNTRIES; i++)
        if (has_prefix(d, n, countries[i].cc))
            return &countries[i];
    return NULL;
}

bool sb_phone_country_known(const char *code)
{
    return find_iso(code, false) != NULL;
}

bool sb_phone_is_e164(const char *s)
{
    if (s == NULL || s[0] != '+' || s[1] < '1' || s[1] > '9')
        return false;
    size_t n = 0;
    while (is_digit(s[1 + n]))
        n++;
    return s[1 + n] == '\0' && n >= 8 && n <= 15;
}

/* Reduces in to its digits, refusing anything but digits, separators and one leading '+'. */
static int scan(const char *in, size_t len, char digits[DIGITS_MAX], size_t *ndigits, bool *plus)
{
    while (len > 0 && is_space(in[0])) {
        in++;
        len--;
    }
    while (len > 0 && is_space(in[len - 1]))
        len--;
    if (has_prefix_nocase(in, len, "tel:")) {
        in += 4;
        len -= 4;
    } else if (has_prefix_nocase(in, len, "whatsapp:")) {
        in += 9;
        len -= 9;
    }

    size_t n = 0;
    bool in_paren = false;
    *plus = false;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (is_digit(c)) {
            if (n == DIGITS_MAX)
                return SB_EINVAL;
            digits[n++] = c;
        } else if (c == '+') {
            /* "(+44) 20 …" is common, so a '+' may follow separators, but never a digit. */
            if (*plus || n > 0)
                return SB_EINVAL;
            *plus = true;
        } else if (c == '(') {
            if (in_paren)
                return SB_EINVAL;
            in_paren = true;
        } else if (c == ')') {
            if (!in_paren)
                return SB_EINVAL;
            in_paren = false;
        } else if (c != ' ' && c != '\t' && c != '.' && c != '-' && c != '/') {
            /* Letters (vanity numbers, "x123", "ext. 5"), '#', '*', ',' and ';' pauses, NUL. */
            return SB_EINVAL;
        }
    }
    if (in_paren || n == 0)
        return SB_EINVAL;
    *ndigits = n;
    return 0;
}

/* Checks a national significant number against c, dropping c's trunk prefix first. */
static int national(const country_t *c, const char **nsn, size_t *n)
{
    const char *d = *nsn;
    size_t len = *n;
    if (c->trunk == '0' && len > 0 && d[0] == '0') {
        d++;
        len--;
    } else if (c->trunk != 0 && c->trunk != '0' && len == (size_t)c->max + 1 && d[0] == c->trunk) {
        /* NANP's 1 (and Russia's 8) is optional, so it is a prefix only when a digit is extra. */
        d++;
        len--;
    }
    if (len < c->min || len > c->max)
        return SB_EINVAL;
    if (d[0] == '0' && !(c->flags & ZERO_OK))
        return SB_EINVAL;
    if ((c->flags & NANP) && (d[0] < '2' || d[3] < '2'))
        return SB_EINVAL;
    *nsn = d;
    *n = len;
    return 0;
}

static int emit(const char *cc, size_t cclen, const char *nsn, size_t n, char out[SB_PHONE_MAX])
{
    if (cclen + n < 8 || cclen + n > 15 || cc[0] == '0')
        return SB_EINVAL;
    out[0] = '+';
    memcpy(out + 1, cc, cclen);
    memcpy(out + 1 + cclen, nsn, n);
    out[1 + cclen + n] = '\0';
    return 0;
}

static int normalize(const char *in, size_t len, const char *default_country, char out[SB_PHONE_MAX])
{
    const country_t *home = find_iso(default_country != NULL ? default_country : "US", true);
    if (home == NULL || in == NULL || len > PHONE_IN_MAX)
        return SB_EINVAL;

    char digits[DIGITS_MAX];
    size_t n;
    bool plus;
    int rc = scan(in, len, digits, &n, &plus);
    if (rc != 0)
        return rc;

    const char *d = digits;
    if (!plus) {
        /* The home country's own international prefix first: Australia's "0011" would otherwise
         * read as "00" followed by +1.  "00" is international everywhere in the table, since no
         * national number there starts with it. */
        size_t skip = 0;
        if (has_prefix(d, n, home->idd))
            skip = strlen(home->idd);
        else if (has_prefix(d, n, "00"))
            skip = 2;
        if (skip == 0) {
            rc = national(home, &d, &n);
            if (rc != 0)
                return rc;
            return emit(home->cc, strlen(home->cc), d, n, out);
        }
        d += skip;
        n -= skip;
    }

    const country_t *c = find_cc(d, n);
    if (c == NULL) {
        /* A code outside the table: E.164's own bounds are all we can check. */
        return emit(d, n, "", 0, out);
    }
    size_t cclen = strlen(c->cc);
    const char *nsn = d + cclen;
    size_t nn = n - cclen;
    rc = national(c, &nsn, &nn);
    if (rc != 0)
        return rc;
    return emit(c->cc, cclen, nsn, nn, out);
}

int sb_phone_normalize(const char *in, size_t len, const char *default_country, char out[SB_PHONE_MAX])
{
    int rc = normalize(in, len, default_country, out);
    if (rc != 0)
        out[0] = '\0';
    return rc;
}

/* RFC 5322 atext: what an unquoted local part may hold besides letters, digits and dots.  Quoted
 * local parts are refused: nobody types them, and they could smuggle ',' or '<' into headers. */
static bool is_atext(char c)
{
    return (c >= 'a' && c <= 'z') || is_digit(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

static bool is_domain_char(char c)
{
    return (c >= 'a' && c <= 'z') || is_digit(c) || c == '-';
}

static int email_normalize(const char *in, size_t len, char out[SB_EMAIL_MAX])
{
    if (in == NULL)
        return SB_EINVAL;
    while (len > 0 && is_space(in[0])) {
        in++;
        len--;
    }
    while (len > 0 && is_space(in[len - 1]))
        len--;
    if (len == 0 || len > SB_EMAIL_MAX - 1)
        return SB_EINVAL;

    size_t at = len;
    for (size_t i = 0; i < len; i++) {
        char c = to_lower(in[i]);
        out[i] = c;
        if (c == '@') {
            if (at != len)
                return SB_EINVAL;
            at = i;
        }
    }
    out[len] = '\0';
    /* RFC 5321 limits the local part to 64 bytes. */
    if (at == len || at == 0 || at > 64)
        return SB_EINVAL;

    for (size_t i = 0; i < at; i++) {
        char c = out[i];
        if (c == '.') {
            if (i == 0 || i + 1 == at || out[i + 1] == '.')
                return SB_EINVAL;
        } else if (!is_atext(c)) {
            return SB_EINVAL;
        }
    }

    /* Domain: dot-separated labels of letters, digits and inner hyphens, at least two labels, a
     * top-level label that is not all digits (so "a@1.2.3.4" is refused). */
    size_t labels = 0, start = at + 1;
    bool tld_alpha = false;
    for (size_t i = at + 1; i <= len; i++) {
        if (i < len && out[i] != '.') {
            if (!is_domain_char(out[i]))
                return SB_EINVAL;
            continue;
        }
        size_t ll = i - start;
        if (ll == 0 || ll > 63 || out[start] == '-' || out[i - 1] == '-')
            return SB_EINVAL;
        labels++;
        tld_alpha = false;
        for (size_t k = start; k < i; k++)
            if (!is_digit(out[k]))
                tld_alpha = true;
        start = i + 1;
    }
    if (labels < 2 || !tld_alpha)
        return SB_EINVAL;
    return 0;
}

int sb_email_normalize(const char *in, size_t len, char out[SB_EMAIL_MAX])
{
    int rc = email_normalize(in, len, out);
    if (rc != 0)
        out[0] = '\0';
    return rc;
}
