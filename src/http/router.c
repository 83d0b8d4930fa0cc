#include "http/router.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

#define MAX_METHOD_LEN 16
#define MAX_NAME_LEN 32

typedef struct {
    bool is_param;
    const char *text; /* literal text or placeholder name; points into the route's pattern copy */
    size_t len;
} segment_t;

typedef struct {
    sb_route_t pub;
    char *pattern_buf; /* the pattern, with every '/' and '}' replaced by NUL so names are C strings */
    int nseg;
    segment_t seg[SB_ROUTE_MAX_SEGMENTS];
    int nparams;
    int param_seg[SB_ROUTE_MAX_PARAMS]; /* which segment each placeholder captures */
    int resource;
    size_t method_len;
    int next_in_resource; /* the resource's next route (by registration), or -1 */
} route_t;

/* A resource: one shape, one or more methods.  Matching walks the resources with as many segments
 * as the path (a chain per segment count), then the matched resource's own routes for the method,
 * instead of every route twice. */
typedef struct {
    char *allow;
    int first_route;    /* the route that created it: its segments are the resource's shape */
    int last_route;     /* where the next method of this resource is chained */
    int next_same_nseg; /* the next resource with as many segments, or -1 */
} resource_t;

struct sb_router_s {
    route_t *routes;
    int n, cap;
    resource_t *resources;
    int nres, rescap;
    int first_by_nseg[SB_ROUTE_MAX_SEGMENTS + 1]; /* -1 when none */
    int last_by_nseg[SB_ROUTE_MAX_SEGMENTS + 1];
};

sb_router_t *sb_router_new(void)
{
    sb_router_t *r = calloc(1, sizeof(sb_router_t));
    if (r == NULL)
        return NULL;
    for (int i = 0; i <= SB_ROUTE_MAX_SEGMENTS; i++)
        r->first_by_nseg[i] = r->last_by_nseg[i] = -1;
    return r;
}

void sb_router_free(sb_router_t *r)
{
    if (r == NULL)
        return;
    for (int i = 0; i < r->n; i++) {
        free((char *)r->routes[i].pub.method);
        free((char *)r->routes[i].pub.pattern);
        free(r->routes[i].pattern_buf);
    }
    for (int i = 0; i < r->nres; i++)
        free(r->resources[i].allow);
    free(r->routes);
    free(r->resources);
    free(r);
}

static bool is_valid_method(const char *m)
{
    size_t n = strlen(m);
    if (n == 0 || n > MAX_METHOD_LEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if (m[i] < 'A' || m[i] > 'Z')
            return false;
    return true;
}

static bool is_name_char(char c, bool first)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')
        return true;
    return !first && c >= '0' && c <= '9';
}

/* Characters a literal segment may hold: RFC 3986 pchar without '%' (literals are compared with
 * the raw path, so an escape in a pattern could never match reliably). */
static bool is_literal_char(char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return strchr("-._~!$&'()*+,;=:@", c) != NULL && c != '\0';
}

/* Splits rt->pattern_buf (a copy of the pattern) into segments in place. */
static int parse_pattern(route_t *rt)
{
    char *p = rt->pattern_buf;
    if (p[0] != '/')
        return SB_EINVAL;
    rt->nseg = 0;
    rt->nparams = 0;
    if (p[1] == '\0')
        return 0; /* "/" has no segments */
    p++;
    for (;;) {
        char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == 0 || rt->nseg == SB_ROUTE_MAX_SEGMENTS)
            return SB_EINVAL;
        segment_t *s = &rt->seg[rt->nseg];
        if (p[0] == '{') {
            if (len < 3 || p[len - 1] != '}' || len - 2 > MAX_NAME_LEN || rt->nparams == SB_ROUTE_MAX_PARAMS)
                return SB_EINVAL;
            for (size_t i = 1; i < len - 1; i++)
                if (!is_name_char(p[i], i == 1))
                    return SB_EINVAL;
            p[len - 1] = '\0';
            s->is_param = true;
            s->text = p + 1;
            s->len = len - 2;
            for (int k = 0; k < rt->nparams; k++)
                if (strcmp(rt->seg[rt->param_seg[k]].text, s->text) == 0)
                    return SB_EINVAL; /* a name used twice */
            rt->param_seg[rt->nparams++] = rt->nseg;
        } else {
            for (size_t i = 0; i < len; i++)
                if (!is_literal_char(p[i]))
                    return SB_EINVAL;
            s->is_param = false;
            s->text = p;
            s->len = len;
        }
        rt->nseg++;
        if (end == NULL)
            return 0;
        *end = '\0';
        p = end + 1;
    }
}

/* Same resource: same segments, placeholders at the same places (their names may differ). */
static bool same_shape(const route_t *a, const route_t *b)
{
    if (a->nseg != b->nseg)
        return false;
    for (int i = 0; i < a->nseg; i++) {
        if (a->seg[i].is_param != b->seg[i].is_param)
            return false;
        if (!a->seg[i].is_param &&
            (a->seg[i].len != b->seg[i].len || memcmp(a->seg[i].text, b->seg[i].text, a->seg[i].len) != 0))
            return false;
    }
    return true;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Rebuilds the Allow value of one resource from its routes. */
static int build_allow(sb_router_t *r, int res)
{
    const char *methods[64];
    int n = 0;
    bool has_get = false, has_head = false;
    size_t total = 0;
    for (int i = 0; i < r->n && n < 63; i++) {
        if (r->routes[i].resource != res)
            continue;
        const char *m = r->routes[i].pub.method;
        methods[n++] = m;
        total += strlen(m) + 2;
        has_get |= strcmp(m, "GET") == 0;
        has_head |= strcmp(m, "HEAD") == 0;
    }
    if (has_get && !has_head) {
        methods[n++] = "HEAD";
        total += 6;
    }
    qsort(methods, (size_t)n, sizeof(methods[0]), cmp_str);
    char *allow = malloc(total + 1);
    if (allow == NULL)
        return SB_ENOMEM;
    size_t off = 0;
    for (int i = 0; i < n; i++)
        off += (size_t)sprintf(allow + off, "%s%s", i ? ", " : "", methods[i]);
    allow[off] = '\0';
    free(r->resources[res].allow);
    r->resources[res].allow = allow;
    return 0;
}

/* Chains route i (just added) into its resource, and a new resource into its segment count. */
static void link_route(sb_router_t *r, int i, bool new_resource)
{
    route_t *rt = &r->routes[i];
    resource_t *res = &r->resources[rt->resource];
    if (new_resource) {
        res->first_route = res->last_route = i;
        res->next_same_nseg = -1;
        if (r->last_by_nseg[rt->nseg] < 0)
            r->first_by_nseg[rt->nseg] = rt->resource;
        else
            r->resources[r->last_by_nseg[rt->nseg]].next_same_nseg = rt->resource;
        r->last_by_nseg[rt->nseg] = rt->resource;
        return;
    }
    r->routes[res->last_route].next_in_resource = i;
    res->last_route = i;
}

int sb_router_add(sb_router_t *r, const char *method, const char *pattern, sb_route_cb cb, void *data)
{
    if (method == NULL || pattern == NULL || cb == NULL || !is_valid_method(method))
        return SB_EINVAL;
    route_t rt = {0};
    bool new_resource = false;
    rt.pattern_buf = strdup(pattern);
    if (rt.pattern_buf == NULL)
        return SB_ENOMEM;
    int rc = parse_pattern(&rt);
    if (rc != 0)
        goto fail_parse;

    rt.resource = -1;
    for (int i = 0; i < r->n; i++) {
        if (!same_shape(&r->routes[i], &rt))
            continue;
        if (strcmp(r->routes[i].pub.method, method) == 0) {
            rc = SB_EEXIST;
            goto fail_parse;
        }
        rt.resource = r->routes[i].resource;
    }
    rc = SB_ENOMEM;
    if (r->n == r->cap) {
        int cap = r->cap ? r->cap * 2 : 32;
        route_t *routes = realloc(r->routes, (size_t)cap * sizeof(*routes));
        if (routes == NULL)
            goto fail_parse;
        r->routes = routes;
        r->cap = cap;
    }
    if (rt.resource < 0) {
        if (r->nres == r->rescap) {
            int cap = r->rescap ? r->rescap * 2 : 32;
            resource_t *res = realloc(r->resources, (size_t)cap * sizeof(*res));
            if (res == NULL)
                goto fail_parse;
            r->resources = res;
            r->rescap = cap;
        }
        r->resources[r->nres].allow = NULL;
        rt.resource = r->nres++;
        new_resource = true;
    }
    rt.method_len = strlen(method);
    rt.next_in_resource = -1;
    rt.pub.method = strdup(method);
    rt.pub.pattern = strdup(pattern);
    if (rt.pub.method == NULL || rt.pub.pattern == NULL)
        goto fail_copy;
    rt.pub.cb = cb;
    rt.pub.data = data;
    r->routes[r->n++] = rt;
    if (build_allow(r, rt.resource) != 0) {
        r->n--;
        goto fail_copy;
    }
    link_route(r, r->n - 1, new_resource);
    return 0;

fail_copy:
    if (new_resource)
        r->nres--;
    free((char *)rt.pub.method);
    free((char *)rt.pub.pattern);
fail_parse:
    free(rt.pattern_buf);
    return rc;
}

int sb_router_match(const sb_router_t *r, const char *method, size_t method_len, const char *path,
                    size_t path_len, sb_route_match_t *m)
{
    m->route = -1;
    m->resource = -1;
    m->params.n = 0;
    if (path_len == 0 || path[0] != '/')
        return SB_ROUTE_NOT_FOUND;

    /* Split the path into segments ("/" has none; "/a/" has "a" and ""). */
    const char *seg[SB_ROUTE_MAX_SEGMENTS];
    size_t seglen[SB_ROUTE_MAX_SEGMENTS];
    int nseg = 0;
    if (path_len > 1) {
        const char *p = path + 1, *end = path + path_len;
        for (;;) {
            if (nseg == SB_ROUTE_MAX_SEGMENTS)
                return SB_ROUTE_NOT_FOUND;
            const char *slash = memchr(p, '/', (size_t)(end - p));
            seg[nseg] = p;
            seglen[nseg] = (size_t)((slash ? slash : end) - p);
            nseg++;
            if (slash == NULL)
                break;
            p = slash + 1;
        }
    }

    /* The most specific matching resource: a placeholder at segment i sets bit (15 - i) of its
     * key, so the lowest key is the one whose first placeholder comes latest.  Two matching
     * resources cannot have equal keys: they would have the same shape, hence be one resource. */
    uint32_t best_key = UINT32_MAX;
    int best = -1;
    for (int res = r->first_by_nseg[nseg]; res >= 0; res = r->resources[res].next_same_nseg) {
        const route_t *rt = &r->routes[r->resources[res].first_route];
        uint32_t key = 0;
        int k;
        for (k = 0; k < nseg; k++) {
            const segment_t *s = &rt->seg[k];
            if (s->is_param) {
                if (seglen[k] == 0)
                    break;
                key |= 1u << (SB_ROUTE_MAX_SEGMENTS - 1 - k);
            } else if (s->len != seglen[k] || s->text[0] != seg[k][0] ||
                       memcmp(s->text, seg[k], s->len) != 0) {
                break;
            }
        }
        if (k == nseg && key < best_key) {
            best_key = key;
            best = res;
        }
    }
    if (best < 0)
        return SB_ROUTE_NOT_FOUND;
    m->resource = best;

    const route_t *found = NULL, *get = NULL;
    for (int i = r->resources[best].first_route; i >= 0; i = r->routes[i].next_in_resource) {
        const route_t *rt = &r->routes[i];
        const char *rm = rt->pub.method;
        if (rt->method_len == method_len && memcmp(rm, method, method_len) == 0) {
            found = rt;
            break;
        }
        if (rt->method_len == 3 && memcmp(rm, "GET", 3) == 0)
            get = rt;
    }
    if (found == NULL && method_len == 4 && memcmp(method, "HEAD", 4) == 0)
        found = get;
    if (found == NULL)
        return SB_ROUTE_METHOD_NOT_ALLOWED;

    m->route = (int)(found - r->routes);
    m->params.n = found->nparams;
    for (int i = 0; i < found->nparams; i++) {
        int s = found->param_seg[i];
        m->params.names[i] = found->seg[s].text;
        m->params.values[i] = seg[s];
        m->params.lens[i] = seglen[s];
    }
    return SB_ROUTE_FOUND;
}

const char *sb_router_allow(const sb_router_t *r, int resource)
{
    if (resource < 0 || resource >= r->nres)
        return "";
    return r->resources[resource].allow;
}

int sb_router_count(const sb_router_t *r)
{
    return r->n;
}

const sb_route_t *sb_router_route(const sb_router_t *r, int index)
{
    if (index < 0 || index >= r->n)
        return NULL;
    return &r->routes[index].pub;
}

const char *sb_route_param(const sb_route_params_t *params, const char *name)
{
    for (int i = 0; i < params->n; i++)
        if (strcmp(params->names[i], name) == 0)
            return params->values[i];
    return NULL;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int sb_router_decode(const char *in, size_t len, char *out, size_t *outlen)
{
    /* The common case, a segment without escapes or NULs, is one copy (memchr scans fast). */
    if (memchr(in, '%', len) == NULL && memchr(in, '\0', len) == NULL) {
        memcpy(out, in, len);
        out[len] = '\0';
        *outlen = len;
        return 0;
    }
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == '%') {
            int hi, lo;
            if (len - i < 3)
                return SB_EINVAL;
            if ((hi = hexval(in[i + 1])) < 0 || (lo = hexval(in[i + 2])) < 0)
                return SB_EINVAL;
            c = (char)(hi << 4 | lo);
            i += 2;
        }
        if (c == '\0')
            return SB_EINVAL;
        out[o++] = c;
    }
    out[o] = '\0';
    *outlen = o;
    return 0;
}
