/* The router's pattern parsing, matching, specificity, 405/Allow and percent-decoding. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "http/router.h"

static int failures;

#define CHECK(cond)                                                                                          \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);                         \
            failures++;                                                                                      \
        }                                                                                                    \
    } while (0)

/* Distinct handlers so a test can tell which route was chosen. */
static int h_a(h2o_req_t *req, const sb_route_params_t *p, void *d)
{
    return 0;
}
static int h_b(h2o_req_t *req, const sb_route_params_t *p, void *d)
{
    return 0;
}

static int match(const sb_router_t *r, const char *method, const char *path, sb_route_match_t *m)
{
    return sb_router_match(r, method, strlen(method), path, strlen(path), m);
}

static const char *route_pattern(const sb_router_t *r, const sb_route_match_t *m)
{
    const sb_route_t *rt = sb_router_route(r, m->route);
    return rt ? rt->pattern : "(none)";
}

static int param_is(const sb_route_match_t *m, const char *name, const char *want)
{
    for (int i = 0; i < m->params.n; i++)
        if (strcmp(m->params.names[i], name) == 0)
            return m->params.lens[i] == strlen(want) && memcmp(m->params.values[i], want, strlen(want)) == 0;
    return 0;
}

static void test_bad_patterns(void)
{
    sb_router_t *r = sb_router_new();
    const char *bad[] = {"",       "v1/x",     "/v1//x", "/v1/x/", "/{}",     "/{a",     "/a}", "/{1a}",
                         "/{a-b}", "/{a}/{a}", "/x%20y", "/x?y",   "/{a}{b}", "/a/{b}c", "/x y"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = sb_router_add(r, "GET", bad[i], h_a, NULL);
        if (rc != SB_EINVAL)
            fprintf(stderr, "pattern '%s' accepted\n", bad[i]);
        CHECK(rc == SB_EINVAL);
    }
    CHECK(sb_router_add(r, "get", "/x", h_a, NULL) == SB_EINVAL);
    CHECK(sb_router_add(r, "", "/x", h_a, NULL) == SB_EINVAL);
    CHECK(sb_router_add(r, "GET", "/x", NULL, NULL) == SB_EINVAL);
    /* 17 segments is one too many */
    CHECK(sb_router_add(r, "GET", "/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a", h_a, NULL) == SB_EINVAL);
    CHECK(sb_router_add(r, "GET", "/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a", h_a, NULL) == 0);
    /* nine placeholders is one too many */
    CHECK(sb_router_add(r, "GET", "/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}", h_a, NULL) == SB_EINVAL);
    CHECK(sb_router_count(r) == 1);
    sb_router_free(r);
}

static void test_match(void)
{
    sb_router_t *r = sb_router_new();
    CHECK(sb_router_add(r, "GET", "/", h_a, NULL) == 0);
    CHECK(sb_router_add(r, "GET", "/healthz", h_a, NULL) == 0);
    CHECK(sb_router_add(r, "GET", "/v1/workspaces/{ws}/contacts", h_a, NULL) == 0);
    CHECK(sb_router_add(r, "POST", "/v1/workspaces/{ws}/contacts", h_b, NULL) == 0);
    CHECK(sb_router_add(r, "GET", "/v1/workspaces/{ws}/contacts/{id}", h_a, NULL) == 0);
    CHECK(sb_router_add(r, "PATCH", "/v1/workspaces/{ws}/contacts/{id}", h_b, NULL) == 0);
    /* same resource under another placeholder name */
    CHECK(sb_router_add(r, "DELETE", "/v1/workspaces/{w}/contacts/{cid}", h_b, NULL) == 0);
    CHECK(sb_router_add(r, "GET", "/v1/workspaces/{ws}/contacts/{id}", h_b, NULL) == SB_EEXIST);

    sb_route_match_t m;
    CHECK(match(r, "GET", "/", &m) == SB_ROUTE_FOUND);
    CHECK(strcmp(route_pattern(r, &m), "/") == 0 && m.params.n == 0);
    CHECK(match(r, "GET", "/healthz", &m) == SB_ROUTE_FOUND);
    CHECK(strcmp(route_pattern(r, &m), "/healthz") == 0);
    CHECK(match(r, "GET", "/healthz/", &m) == SB_ROUTE_NOT_FOUND);
    CHECK(m.route == -1 && m.resource == -1);
    CHECK(match(r, "GET", "/healthzz", &m) == SB_ROUTE_NOT_FOUND);
    CHECK(match(r, "GET", "", &m) == SB_ROUTE_NOT_FOUND);
    CHECK(match(r, "GET", "*", &m) == SB_ROUTE_NOT_FOUND);

    CHECK(match(r, "GET", "/v1/workspaces/w1/contacts/c9", &m) == SB_ROUTE_FOUND);
    CHECK(sb_router_route(r, m.route)->cb == h_a);
    CHECK(m.params.n == 2 && param_is(&m, "ws", "w1") && param_is(&m, "id", "c9"));
    CHECK(match(r, "PATCH", "/v1/workspaces/w1/contacts/c9", &m) == SB_ROUTE_FOUND);
    CHECK(sb_router_route(r, m.route)->cb == h_b);
    /* the DELETE route names its placeholders differently */
    CHECK(match(r, "DELETE", "/v1/workspaces/w1/contacts/c9", &m) == SB_ROUTE_FOUND);
    CHECK(param_is(&m, "w", "w1") && param_is(&m, "cid", "c9") && !param_is(&m, "id", "c9"));
    CHECK(match(r, "POST", "/v1/workspaces/w1/contacts", &m) == SB_ROUTE_FOUND);
    CHECK(sb_router_route(r, m.route)->cb == h_b && param_is(&m, "ws", "w1"));

    /* a placeholder never matches an empty segment, nor spans a slash */
    CHECK(match(r, "GET", "/v1/workspaces//contacts", &m) == SB_ROUTE_NOT_FOUND);
    CHECK(match(r, "GET", "/v1/workspaces/w1/contacts/", &m) == SB_ROUTE_NOT_FOUND);
    CHECK(match(r, "GET", "/v1/workspaces/a/b/contacts", &m) == SB_ROUTE_NOT_FOUND);
    /* methods compare exactly */
    CHECK(match(r, "get", "/healthz", &m) == SB_ROUTE_METHOD_NOT_ALLOWED);
    CHECK(match(r, "GETX", "/healthz", &m) == SB_ROUTE_METHOD_NOT_ALLOWED);
    sb_router_free(r);
}

static void test_method_not_allowed(void)
{
    sb_router_t *r = sb_router_new();
    CHECK(sb_router_add(r, "POST", "/v1/things", h_a, NULL) == 0);
    CHECK(sb_router_add(r, "GET", "/v1/things", h_a, NULL) == 0);
    CHECK(sb_router_add(r, "PUT", "/v1/things/{id}", h_a, NULL) == 0);
    CHECK(sb_router_add(r, "DELETE", "/v1/things/{id}", h_a, NULL) == 0);

    sb_route_match_t m;
    CHECK(match(r, "DELETE", "/v1/things", &m) == SB_ROUTE_METHOD_NOT_ALLOWED);
    CHECK(m.route == -1 && m.resource >= 0);
    CHECK(strcmp(sb_router_allow(r, m.resource), "GET, HEAD, POST") == 0);
    CHECK(match(r, "GET", "/v1/things/x", &m) == SB_ROUTE_METHOD_NOT_ALLOWED);
    CHECK(strcmp(sb_router_allow(r, m.resource), "DELETE, PUT") == 0);
    /* HEAD is served by GET where there is one, and only there */
    CHECK(match(r, "HEAD", "/v1/things", &m) == SB_ROUTE_FOUND);
    CHECK(strcmp(sb_router_route(r, m.route)->method, "GET") == 0);
    CHECK(match(r, "HEAD", "/v1/things/x", &m) == SB_ROUTE_METHOD_NOT_ALLOWED);
    sb_router_free(r);
}

static void test_specificity(void)
{
    sb_router_t *r = sb_router_new();
    /* registration order must not matter: the specific route is added last */
    CHECK(sb_router_add(r, "GET", "/c/{id}", h_a, NULL) == 0);
    CHECK(sb_router_add(r, "GET", "/{x}/search", h_a, NULL) == 0);
    CHECK(sb_router_add(r, "GET", "/c/search", h_b, NULL) == 0);
    CHECK(sb_router_add(r, "GET", "/{a}/{b}", h_a, NULL) == 0);

    sb_route_match_t m;
    CHECK(match(r, "GET", "/c/search", &m) == SB_ROUTE_FOUND);
    CHECK(strcmp(route_pattern(r, &m), "/c/search") == 0 && m.params.n == 0);
    CHECK(match(r, "GET", "/c/42", &m) == SB_ROUTE_FOUND);
    CHECK(strcmp(route_pattern(r, &m), "/c/{id}") == 0 && param_is(&m, "id", "42"));
    CHECK(match(r, "GET", "/d/search", &m) == SB_ROUTE_FOUND);
    CHECK(strcmp(route_pattern(r, &m), "/{x}/search") == 0 && param_is(&m, "x", "d"));
    CHECK(match(r, "GET", "/d/e", &m) == SB_ROUTE_FOUND);
    CHECK(strcmp(route_pattern(r, &m), "/{a}/{b}") == 0 && param_is(&m, "a", "d") && param_is(&m, "b", "e"));
    /* the most specific resource decides the method: no fallback to a less specific one */
    CHECK(match(r, "POST", "/c/search", &m) == SB_ROUTE_METHOD_NOT_ALLOWED);
    CHECK(strcmp(sb_router_allow(r, m.resource), "GET, HEAD") == 0);
    sb_router_free(r);
}

static void test_limits(void)
{
    sb_router_t *r = sb_router_new();
    CHECK(sb_router_add(r, "GET", "/{a}", h_a, NULL) == 0);
    sb_route_match_t m;
    /* more segments than any route can have: not found, no overflow */
    char path[200] = "";
    for (int i = 0; i < 40; i++)
        strcat(path, "/x");
    CHECK(match(r, "GET", path, &m) == SB_ROUTE_NOT_FOUND);
    /* the path length passed is honoured: no reading past it */
    const char buf[] = "/abc/def";
    CHECK(sb_router_match(r, "GET", 3, buf, 4, &m) == SB_ROUTE_FOUND);
    CHECK(param_is(&m, "a", "abc"));
    sb_router_free(r);
}

static void test_decode(void)
{
    char out[64];
    size_t n;
    CHECK(sb_router_decode("abc", 3, out, &n) == 0 && n == 3 && strcmp(out, "abc") == 0);
    CHECK(sb_router_decode("a%20b", 5, out, &n) == 0 && n == 3 && strcmp(out, "a b") == 0);
    CHECK(sb_router_decode("%2F%2f", 6, out, &n) == 0 && strcmp(out, "//") == 0);
    CHECK(sb_router_decode("%C3%A9", 6, out, &n) == 0 && n == 2 && (unsigned char)out[0] == 0xC3);
    CHECK(sb_router_decode("", 0, out, &n) == 0 && n == 0 && out[0] == '\0');
    CHECK(sb_router_decode("%", 1, out, &n) == SB_EINVAL);
    CHECK(sb_router_decode("a%2", 3, out, &n) == SB_EINVAL);
    CHECK(sb_router_decode("%zz", 3, out, &n) == SB_EINVAL);
    CHECK(sb_router_decode("%00", 3, out, &n) == SB_EINVAL);
    CHECK(sb_router_decode("a\0b", 3, out, &n) == SB_EINVAL); /* a raw NUL, without an escape */
    /* the length bounds the input even when a '%' sits right after it */
    CHECK(sb_router_decode("ab%41", 2, out, &n) == 0 && strcmp(out, "ab") == 0);
    CHECK(sb_router_decode("ab%41", 4, out, &n) == SB_EINVAL);
}

int main(void)
{
    test_bad_patterns();
    test_match();
    test_method_not_allowed();
    test_specificity();
    test_limits();
    test_decode();
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("router: ok\n");
    return 0;
}
