/* Projection files: names, parsing (sections, directives, strings and comments) and the installed
 * SQL.  Whether the SQL runs is the integration tests' business (test_projections.c). */
#include "projections/def.h"
#include "core/error.h"
#include "sbtest.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static sb_pj_def_t *parse(const char *name, const char *text, char *err, size_t errlen)
{
    sb_pj_def_t *d = NULL;
    int rc = sb_pj_parse(name, text, strlen(text), &d, err, errlen);
    if (rc != 0)
        return NULL;
    return d;
}

static void test_names(void)
{
    CHECK(sb_pj_name_is_valid("contacts"));
    CHECK(sb_pj_name_is_valid("a"));
    CHECK(sb_pj_name_is_valid("type_counts2"));
    CHECK(!sb_pj_name_is_valid(""));
    CHECK(!sb_pj_name_is_valid("Contacts"));
    CHECK(!sb_pj_name_is_valid("2fast"));
    CHECK(!sb_pj_name_is_valid("a__build")); /* the runner's suffixes */
    CHECK(!sb_pj_name_is_valid("trailing_"));
    CHECK(!sb_pj_name_is_valid("public"));
    CHECK(!sb_pj_name_is_valid("pg_stats"));
    CHECK(!sb_pj_name_is_valid("information_schema"));
    CHECK(!sb_pj_name_is_valid("has-dash"));
    CHECK(!sb_pj_name_is_valid("x123456789x123456789x123456789x1234567890")); /* 41 */
    CHECK(sb_pj_name_is_valid("x123456789x123456789x123456789x123456789"));   /* 40 */
}

static void test_sections(void)
{
    char err[256];
    const char *text = "-- A report.\n"
                       "CREATE TABLE t (id uuid PRIMARY KEY, n int);\n"
                       "-- @batch NoteAdded\n"
                       "INSERT INTO t SELECT 1;\n"
                       "-- @on ContactCreated, ContactUpdated\n"
                       "INSERT INTO t VALUES (right($2, 36)::uuid, 0)\n"
                       "  -- @mentions in a comment are not directives\n"
                       "ON CONFLICT DO NOTHING;\n"
                       "  -- @on NoteAdded\n"
                       "UPDATE t SET n = n + 1 WHERE $8->>'user_id' IS NOT NULL;\n"
                       "-- @batch ContactDeleted MessageSent\n"
                       "-- @batch NoteDeleted\n"
                       "DELETE FROM t;\n";
    sb_pj_def_t *d = parse("report", text, err, sizeof(err));
    if (!CHECK(d != NULL)) {
        fprintf(stderr, "  %s\n", err);
        return;
    }
    CHECK_EQ_STR(d->name, "report");
    CHECK_EQ_INT(strlen(d->hash), 64);
    CHECK(strstr(d->setup, "CREATE TABLE t") != NULL);
    CHECK(strstr(d->setup, "@batch") == NULL);
    if (CHECK_EQ_INT(d->nsections, 4)) {
        CHECK_EQ_INT(d->sections[0].kind, SB_PJ_BATCH);
        CHECK(!d->sections[0].after); /* before the first @on */
        CHECK_EQ_INT(d->sections[1].kind, SB_PJ_ON);
        CHECK_EQ_INT(d->sections[1].ntypes, 2);
        CHECK_EQ_STR(d->sections[1].types[1], "ContactUpdated");
        CHECK(strstr(d->sections[1].sql, "ON CONFLICT") != NULL); /* the @mentions comment stayed inside */
        CHECK_EQ_INT(d->sections[2].line, 9);
        CHECK_EQ_INT(d->sections[3].kind, SB_PJ_BATCH);
        CHECK(d->sections[3].after);
        CHECK_EQ_INT(d->sections[3].ntypes, 3); /* continued on the next line */
        CHECK_EQ_STR(d->sections[3].types[2], "NoteDeleted");
    }
    /* The union, sorted and distinct. */
    if (CHECK_EQ_INT(d->ntypes, 6)) {
        CHECK_EQ_STR(d->types[0], "ContactCreated");
        CHECK_EQ_STR(d->types[5], "NoteDeleted");
    }
    CHECK(d->uses_metadata);
    sb_pj_def_free(d);

    /* Same content, same hash; any change, another. */
    sb_pj_def_t *a = parse("x", "-- @on A\nSELECT 1;", err, sizeof(err));
    sb_pj_def_t *b = parse("y", "-- @on A\nSELECT 1;", err, sizeof(err));
    sb_pj_def_t *c = parse("x", "-- @on A\nSELECT 2;", err, sizeof(err));
    if (CHECK(a && b && c)) {
        CHECK_EQ_STR(a->hash, b->hash);
        CHECK(strcmp(a->hash, c->hash) != 0);
        /* The generator's version is part of it: not the bare file's SHA-256. */
        const char *text = "-- @on A\nSELECT 1;";
        unsigned char h[crypto_hash_sha256_BYTES];
        char bare[SB_PJ_HASH_LEN + 1];
        crypto_hash_sha256(h, (const unsigned char *)text, strlen(text));
        sodium_bin2hex(bare, sizeof(bare), h, sizeof(h));
        CHECK(strcmp(a->hash, bare) != 0);
        CHECK(!a->uses_metadata);
    }
    sb_pj_def_free(a);
    sb_pj_def_free(b);
    sb_pj_def_free(c);
}

static void test_quoting(void)
{
    char err[256];
    /* Directive-looking lines inside strings, dollar quotes and block comments are SQL. */
    const char *text = "CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $body$\n"
                       "-- @on NotADirective\n"
                       "SELECT 'x' $body$;\n"
                       "/* a comment\n"
                       "-- @on AlsoNot\n"
                       "/* nested */ still comment */\n"
                       "SELECT 'it''s\n"
                       "-- @on StillAString';\n"
                       "SELECT E'back\\'slash\n"
                       "-- @on InAnEString';\n"
                       "-- @on Real\n"
                       "SELECT '$8', \"$8\"; -- $8 only in strings, identifiers and comments\n";
    sb_pj_def_t *d = parse("q", text, err, sizeof(err));
    if (!CHECK(d != NULL)) {
        fprintf(stderr, "  %s\n", err);
        return;
    }
    if (CHECK_EQ_INT(d->nsections, 1))
        CHECK_EQ_STR(d->sections[0].types[0], "Real");
    CHECK(!d->uses_metadata);
    CHECK(strstr(d->setup, "StillAString") != NULL);
    sb_pj_def_free(d);
}

static void expect_error(const char *name, const char *text, const char *needle)
{
    char err[256] = "";
    sb_pj_def_t *d = NULL;
    int rc = sb_pj_parse(name, text, strlen(text), &d, err, sizeof(err));
    CHECK_EQ_INT(rc, SB_EINVAL);
    CHECK(d == NULL);
    if (!CHECK(strstr(err, needle) != NULL))
        fprintf(stderr, "  error was: %s\n", err);
}

static void test_errors(void)
{
    expect_error("Bad", "-- @on A\nSELECT 1;", "cannot name a projection");
    expect_error("x", "CREATE TABLE t (x int);\n", "no '-- @on Type'");
    expect_error("x", "-- @onn ContactCreated\nSELECT 1;", "line 1: unknown directive '@onn'");
    expect_error("x", "-- @on\nSELECT 1;", "line 1: @on names no event type");
    expect_error("x", "-- @on contactCreated\nSELECT 1;", "'contactCreated' is not an event type");
    expect_error("x", "SELECT 1;\n-- @on A\n  -- just a comment\n\n-- @on B\nSELECT 1;",
                 "line 2: the section has no statements");
    expect_error("x", "-- @on A\nSELECT 'open", "ends inside a string");
    expect_error("x", "-- @on A\nSELECT $$open", "ends inside a dollar-quoted string");
    expect_error("x", "/* open\n-- @on A\nSELECT 1;", "ends inside a comment");
    char nul[] = "-- @on A\nSELECT 1;\0";
    char err[128];
    sb_pj_def_t *d = NULL;
    CHECK_EQ_INT(sb_pj_parse("x", nul, sizeof(nul) - 1, &d, err, sizeof(err)), SB_EINVAL);
    /* A directive of another kind right after a directive ends the first, which is empty. */
    expect_error("x", "-- @on A\n-- @batch B\nSELECT 1;", "line 1: the section has no statements");
}

static void test_install_sql(void)
{
    char err[256];
    const char *text = "CREATE TABLE t (n int)\n"
                       "-- @batch B\n"
                       "INSERT INTO t SELECT count(*) FROM unnest($3) -- no semicolon, then a comment\n"
                       "-- @on A C\n"
                       "INSERT INTO t VALUES ($$ $section$ $$::text::int);\n"
                       "-- @on C\n"
                       "DELETE FROM t\n";
    sb_pj_def_t *d = parse("demo", text, err, sizeof(err));
    if (!CHECK(d != NULL))
        return;
    sb_buf_t out = SB_BUF_INIT;
    sb_pj_install_sql(d, "demo__build", true, &out);
    const char *s = out.data;
    CHECK(strstr(s, "DROP SCHEMA IF EXISTS \"demo__build\" CASCADE;") == s);
    CHECK(strstr(s, "CREATE SCHEMA \"demo__build\";\nSET LOCAL search_path = \"demo__build\", public;") !=
          NULL);
    /* The set-up's last statement is closed before the functions. */
    CHECK(strstr(s, "CREATE TABLE t (n int)\n\n;") != NULL);
    /* Three sections, the dispatcher with the schema on its search_path and generic plans. */
    CHECK(strstr(s, "CREATE FUNCTION \"__section_2\"(bigint, text, text, bigint, uuid, timestamptz, jsonb, "
                    "jsonb, uuid)") != NULL);
    CHECK(strstr(s, "CREATE FUNCTION \"__section_3\"") != NULL);
    CHECK(strstr(s, "SET plan_cache_mode = force_generic_plan SET search_path = \"demo__build\", public") !=
          NULL);
    /* The body of section 2 holds "$section$", so its tag is another. */
    CHECK(strstr(s, "$section1$") != NULL);
    /* A section whose last statement lacks ';' gets one, after its trailing comment. */
    CHECK(strstr(s, "-- no semicolon, then a comment\n\n;\nEND") != NULL);
    CHECK(strstr(s, "DELETE FROM t\n\n;\nEND") != NULL);
    /* The per-event pass takes only A and C; C runs both of its sections, in file order. */
    CHECK(strstr(s, "WHERE e.ty = ANY (ARRAY['A','C']::text[])") != NULL);
    const char *c = strstr(s, "WHEN 2 THEN");
    if (CHECK(c != NULL)) {
        const char *s2 = strstr(c, "\"__section_2\"");
        const char *s3 = strstr(c, "\"__section_3\"");
        CHECK(s2 != NULL && s3 != NULL && s2 < s3);
    }
    /* The batch section (written before any @on) runs before the per-event pass. */
    CHECK(strstr(s, "\"__section_1\"(p_position") < strstr(s, "FOR i, k, t, e_position"));
    /* Plans: the dispatcher and @on sections run generic plans; a batch section switches to custom
     * plans itself for a batch of more than 1000 events (undone by its SET attribute when it
     * returns), so the dispatcher's call of it stays generic and hands it the arrays uncopied. */
    CHECK(strstr(s,
                 "CREATE FUNCTION \"__section_1\"(bigint[], text[], text[], bigint[], uuid[], timestamptz[], "
                 "jsonb[], jsonb[], uuid[]) RETURNS void LANGUAGE plpgsql SET plan_cache_mode = "
                 "force_generic_plan AS "
                 "$section$\nBEGIN IF cardinality($3) > 1000 THEN PERFORM set_config('plan_cache_mode', "
                 "'force_custom_plan', true); END IF;\nINSERT INTO t SELECT") != NULL);
    CHECK(strstr(s, "jsonb, uuid) RETURNS void LANGUAGE plpgsql AS $section1$\nBEGIN\nINSERT") != NULL);
    /* Once: only the batch section switches; the dispatcher never does. */
    const char *custom = strstr(s, "'force_custom_plan'");
    if (CHECK(custom != NULL))
        CHECK(strstr(custom + 1, "'force_custom_plan'") == NULL);
    CHECK(strstr(s, "large") == NULL);
    CHECK(strstr(s, "'projection %s: %s: %s', 'demo'") != NULL);
    /* A batch with none of the file's types returns before the block whose EXCEPTION clause opens
     * a subtransaction: the check comes first (against the batch's distinct types, the batch's
     * types when the caller left them out), then that block, closed before the function ends. */
    const char *gate =
        strstr(s, "BEGIN\n    IF p_types IS NULL THEN\n        p_types := p_type;\n    END IF;\n"
                  "    IF NOT p_types && ARRAY['A','B','C']::text[] THEN\n        RETURN;\n"
                  "    END IF;\nBEGIN\n");
    CHECK(gate != NULL && gate < strstr(s, "EXCEPTION WHEN OTHERS"));
    CHECK(strstr(s, "SQLERRM);\nEND;\nEND\n$sb_apply$;") != NULL);
    sb_buf_free(&out);

    /* Live installs do not drop anything. */
    sb_pj_install_sql(d, "demo", false, &out);
    CHECK(strstr(out.data, "DROP SCHEMA") == NULL);
    sb_buf_free(&out);
    sb_pj_def_free(d);

    sb_buf_t q = SB_BUF_INIT;
    sb_pj_quote_ident(&q, "a\"b");
    sb_pj_quote_literal(&q, "it's");
    CHECK_EQ_STR(q.data, "\"a\"\"b\"'it''s'");
    sb_buf_free(&q);
}

static void test_deferred(void)
{
    char err[256];
    /* @deferred sections anywhere (here between handlers and at the end) collect, in file order,
     * the set-up that waits for the build to catch up; they are no handlers and take no types. */
    const char *text = "CREATE TABLE t (n int, s text);\n"
                       "-- @on A\n"
                       "INSERT INTO t VALUES (($7->>'n')::int, $2);\n"
                       "-- @deferred\n"
                       "CREATE INDEX t_s ON t (s)\n"
                       "-- @batch B\n"
                       "DELETE FROM t;\n"
                       "-- @deferred\n"
                       "-- it's a comment with a quote\n"
                       "CREATE INDEX t_n ON t (n);\n";
    sb_pj_def_t *d = parse("demo", text, err, sizeof(err));
    if (!CHECK(d != NULL)) {
        fprintf(stderr, "%s\n", err);
        return;
    }
    CHECK_EQ_INT(d->ntypes, 2);
    CHECK(!d->uses_metadata);
    if (CHECK(d->deferred != NULL)) {
        const char *i1 = strstr(d->deferred, "CREATE INDEX t_s ON t (s)\n\n;");
        const char *i2 = strstr(d->deferred, "CREATE INDEX t_n ON t (n);");
        CHECK(i1 != NULL && i2 != NULL && i1 < i2);
        CHECK(strstr(d->deferred, "DELETE") == NULL);
    }
    sb_buf_t out = SB_BUF_INIT;
    sb_pj_install_sql(d, "demo", false, &out);
    /* Not run at install: kept in the schema (quotes doubled), and no function is made of it. */
    CHECK(strstr(out.data, "CREATE TABLE \"__deferred\" (sql text NOT NULL);") != NULL);
    CHECK(strstr(out.data, "INSERT INTO \"__deferred\" VALUES ('CREATE INDEX t_s") != NULL);
    CHECK(strstr(out.data, "it''s a comment") != NULL);
    CHECK(strstr(out.data, "\"__section_1\"") != NULL && strstr(out.data, "\"__section_3\"") != NULL);
    CHECK(strstr(out.data, "\"__section_2\"") == NULL && strstr(out.data, "\"__section_4\"") == NULL);
    /* Its only batch section runs after the per-event pass, and switches to custom plans itself. */
    const char *loop = strstr(out.data, "FOR i, k, t, e_position");
    CHECK(loop != NULL && loop < strstr(out.data, "\"__section_3\"(p_"));
    CHECK(strstr(out.data,
                 "\"__section_3\"(bigint[], text[], text[], bigint[], uuid[], timestamptz[], jsonb[], "
                 "jsonb[], uuid[]) RETURNS void LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS "
                 "$section$\nBEGIN IF cardinality($3) > 1000 THEN") != NULL);
    /* The per-event pass hands the handler the elements of the arrays it reads ($2, $7; the type
     * always) and NULL for the others, so the arrays no handler reads are not walked. */
    CHECK(strstr(out.data, "PERFORM \"__section_1\"(NULL::bigint, e_stream, t, NULL::bigint, NULL::uuid, "
                           "NULL::timestamptz, e_payload, NULL::jsonb, NULL::uuid);") != NULL);
    /* The pass's query walks those two arrays (and the types) once, and no other. */
    CHECK(strstr(out.data,
                 "IN SELECT e.ord, array_position(ARRAY['A']::text[], e.ty), e.ty, NULL::bigint, "
                 "e.v2, NULL::bigint, NULL::uuid, NULL::timestamptz, e.v7, NULL::jsonb, NULL::uuid "
                 "FROM (SELECT generate_series(1, cardinality(p_type)) AS ord, unnest(p_type) AS ty, "
                 "unnest(p_stream) AS v2, unnest(p_payload) AS v7) AS e WHERE") != NULL);
    /* Only the error message reads the others (the event that failed). */
    CHECK(strstr(out.data, "p_position[i]") > strstr(out.data, "EXCEPTION WHEN OTHERS"));
    CHECK(strstr(out.data, "p_type[i]") > strstr(out.data, "EXCEPTION WHEN OTHERS"));
    sb_buf_free(&out);
    sb_pj_def_free(d);

    /* Without one, nothing is deferred. */
    d = parse("demo", "CREATE TABLE t (n int);\n-- @on A\nDELETE FROM t;\n", err, sizeof(err));
    if (CHECK(d != NULL)) {
        CHECK(d->deferred == NULL);
        sb_pj_install_sql(d, "demo", false, &out);
        CHECK(strstr(out.data, "__deferred") == NULL);
        sb_buf_free(&out);
        sb_pj_def_free(d);
    }
    expect_error("x", "-- @deferred\nCREATE INDEX i ON t (n);", "no '-- @on Type'");
    expect_error("x", "-- @on A\nSELECT 1;\n-- @deferred A\nSELECT 1;", "@deferred takes no event types");
}

static void test_cost(void)
{
    char err[256];
    /* Without one, the default; with one, its number; the line stays in the SQL as a comment and
     * starts no section. */
    sb_pj_def_t *d =
        parse("x", "CREATE TABLE t (n int);\n-- @on A\nINSERT INTO t VALUES (1);", err, sizeof(err));
    if (CHECK(d != NULL))
        CHECK(d->cost == SB_PJ_DEFAULT_COST);
    sb_pj_def_free(d);
    d = parse("x", "-- @cost 12.5\nCREATE TABLE t (n int);\n-- @on A\nINSERT INTO t VALUES (1);", err,
              sizeof(err));
    if (CHECK(d != NULL)) {
        CHECK(d->cost == 12.5);
        CHECK_EQ_INT(d->nsections, 1);
        CHECK(strstr(d->setup, "CREATE TABLE t") != NULL);
    }
    sb_pj_def_free(d);
    /* Anywhere, even inside a section (the section goes on), and 0 is a cost. */
    d = parse("x",
              "CREATE TABLE t (n int);\n-- @on A\nINSERT INTO t VALUES (1);\n  -- @cost 0\nINSERT INTO t "
              "VALUES (2);",
              err, sizeof(err));
    if (CHECK(d != NULL)) {
        CHECK(d->cost == 0);
        CHECK_EQ_INT(d->nsections, 1);
        CHECK(strstr(d->sections[0].sql, "VALUES (2)") != NULL);
    }
    sb_pj_def_free(d);
    /* Inside a string it is text. */
    d = parse("x",
              "CREATE TABLE t (s text DEFAULT '\n-- @cost 5\n');\n-- @on A\nINSERT INTO t VALUES (DEFAULT);",
              err, sizeof(err));
    if (CHECK(d != NULL))
        CHECK(d->cost == SB_PJ_DEFAULT_COST);
    sb_pj_def_free(d);
    expect_error("x", "-- @cost\n-- @on A\nSELECT 1;", "line 1: @cost takes one number");
    expect_error("x", "-- @cost -1\n-- @on A\nSELECT 1;", "line 1: @cost takes one number");
    expect_error("x", "-- @cost 1e3\n-- @on A\nSELECT 1;", "line 1: @cost takes one number");
    expect_error("x", "-- @cost 3 4\n-- @on A\nSELECT 1;", "line 1: @cost takes one number");
    expect_error("x", "-- @cost 2000000\n-- @on A\nSELECT 1;", "line 1: @cost takes one number");
    expect_error("x", "-- @cost 1..2\n-- @on A\nSELECT 1;", "line 1: @cost takes one number");
    expect_error("x", "-- @cost 1\n-- @on A\nSELECT 1;\n-- @cost 2\n", "line 4: a second @cost");
    /* "@costs" is a word of its own: a plain comment. */
    d = parse("x", "-- @costs are high\n-- @on A\nINSERT INTO t VALUES (1);", err, sizeof(err));
    if (CHECK(d != NULL))
        CHECK(d->cost == SB_PJ_DEFAULT_COST);
    sb_pj_def_free(d);
}

static void test_payload(void)
{
    char err[256];
    /* Without a declaration: every key.  The types whose payloads its sections read are those of
     * the sections that mention $7 (not B's, whose section reads the stream only). */
    sb_pj_def_t *d =
        parse("x",
              "CREATE TABLE t (s text);\n-- @batch A C\nINSERT INTO t SELECT unnest($7)->>'k';\n"
              "-- @on B\nINSERT INTO t VALUES ($2);\n-- @on C D\nINSERT INTO t VALUES ($7->>'j');\n",
              err, sizeof(err));
    if (CHECK(d != NULL)) {
        CHECK(d->payload_keys == NULL);
        CHECK_EQ_INT(d->npayload_keys, 0);
        if (CHECK_EQ_INT(d->npayload_types, 3)) {
            CHECK_EQ_STR(d->payload_types[0], "A");
            CHECK_EQ_STR(d->payload_types[1], "C");
            CHECK_EQ_STR(d->payload_types[2], "D");
        }
    } else {
        fprintf(stderr, "  %s\n", err);
    }
    sb_pj_def_free(d);
    /* Declared on several lines, anywhere, sorted and distinct; the lines stay comments and start
     * no section; keys of the metadata ($8) and in comments or strings need no declaration, keys
     * in helper functions' bodies do. */
    const char *text = "-- @payload k, b\n"
                       "CREATE FUNCTION f(p jsonb) RETURNS text LANGUAGE sql AS $$ SELECT p->>'in_body' $$;\n"
                       "CREATE TABLE t (s text DEFAULT '->>''nokey''');\n"
                       "-- @batch A\n"
                       "INSERT INTO t SELECT f(p) || (p -> 'b') || (p->>'k') || $8->>'meta' || $8 ? 'm2'\n"
                       "  -- p->>'in_comment'\n"
                       "  FROM unnest($7) AS p WHERE p ? 'k';\n"
                       "  -- @payload in_body k\n"
                       "INSERT INTO t VALUES ('x');\n";
    d = parse("x", text, err, sizeof(err));
    if (CHECK(d != NULL)) {
        if (CHECK_EQ_INT(d->npayload_keys, 3)) {
            CHECK_EQ_STR(d->payload_keys[0], "b");
            CHECK_EQ_STR(d->payload_keys[1], "in_body");
            CHECK_EQ_STR(d->payload_keys[2], "k");
        }
        CHECK_EQ_INT(d->nsections, 1);
        CHECK(strstr(d->sections[0].sql, "VALUES ('x')") != NULL);
        CHECK_EQ_INT(d->npayload_types, 1);
    } else {
        fprintf(stderr, "  %s\n", err);
    }
    sb_pj_def_free(d);
    /* A key read but not declared, by each operator, in a section or the set-up. */
    expect_error("x", "-- @payload a\n-- @batch A\nSELECT unnest($7)->>'b';",
                 "the @batch section at line 2 reads payload key 'b'");
    expect_error("x", "-- @payload a\n-- @on A\nSELECT $7 -> 'b';",
                 "the @on section at line 2 reads payload key 'b'");
    expect_error("x", "-- @payload a\n-- @on A\nSELECT $7 ? 'b';", "reads payload key 'b'");
    expect_error(
        "x",
        "-- @payload a\nCREATE FUNCTION f(p jsonb) RETURNS text LANGUAGE sql AS $$ SELECT p->>'b' $$;\n"
        "-- @on A\nSELECT f($7);",
        "the set-up reads payload key 'b'");
    expect_error("x", "-- @payload a\n-- @on A\nSELECT $7->>'it''s';", "reads payload key 'it'");
    expect_error("x", "-- @payload\n-- @on A\nSELECT 1;", "line 1: @payload lists the payload keys");
    expect_error("x", "-- @payload a-b\n-- @on A\nSELECT 1;", "line 1: @payload key 'a-b' is not a name");
    expect_error("x", "-- @payload 1a\n-- @on A\nSELECT 1;", "line 1: @payload key '1a' is not a name");
    /* "@payloads" is a word of its own: a plain comment. */
    d = parse("x", "-- @payloads are big\n-- @on A\nSELECT 1;", err, sizeof(err));
    if (CHECK(d != NULL))
        CHECK(d->payload_keys == NULL);
    sb_pj_def_free(d);
    /* The built-in files parse, their lint included. */
    sb_pj_def_t **defs = NULL;
    int n = 0;
    CHECK_EQ_INT(sb_pj_load_dir(SB_SOURCE_DIR "/projections", &defs, &n, NULL, NULL, err, sizeof(err)), 0);
    CHECK(n >= 11);
    bool declared = false;
    for (int i = 0; i < n; i++)
        if (strcmp(defs[i]->name, "analytics") == 0)
            declared = defs[i]->payload_keys != NULL;
    CHECK(declared);
    sb_pj_defs_free(defs, n);
}

static void test_partitions(void)
{
    /* The built-in files' costs: two partitions of about the same weight (23.7 and 23.6), where
     * alternating in name order gave 22.1 against 25.2. */
    const char *names[] = {"analytics", "calls",    "contacts", "conversations", "members",   "messages",
                           "notes",     "pipeline", "routing",  "scheduled",     "workspaces"};
    double costs[] = {11.5, 2.6, 7.7, 5.9, 0.3, 13.6, 1.8, 1.5, 0.3, 1.6, 0.5};
    int n = 11, out[11];
    sb__pj_assign_partitions(names, costs, n, 2, out);
    double load[2] = {0, 0};
    for (int i = 0; i < n; i++) {
        CHECK(out[i] == 0 || out[i] == 1);
        load[out[i]] += costs[i];
    }
    CHECK(load[0] - load[1] < 0.5 && load[1] - load[0] < 0.5);
    CHECK_EQ_INT(out[5], 0); /* messages, the heaviest, first */
    CHECK_EQ_INT(out[0], 1); /* analytics then on the other */
    CHECK(out[2] == out[0]); /* contacts joins the lighter: analytics */
    /* The same set in another order: the same answer. */
    const char *rev_names[11];
    double rev_costs[11];
    int rev[11];
    for (int i = 0; i < n; i++) {
        rev_names[i] = names[n - 1 - i];
        rev_costs[i] = costs[n - 1 - i];
    }
    sb__pj_assign_partitions(rev_names, rev_costs, n, 2, rev);
    for (int i = 0; i < n; i++)
        CHECK_EQ_INT(rev[n - 1 - i], out[i]);
    /* Equal costs (files without @cost): by name, round the partitions. */
    const char *same[] = {"d", "b", "a", "c"};
    double ones[] = {1, 1, 1, 1};
    int o3[4];
    sb__pj_assign_partitions(same, ones, 4, 3, o3);
    CHECK_EQ_INT(o3[2], 0); /* a */
    CHECK_EQ_INT(o3[1], 1); /* b */
    CHECK_EQ_INT(o3[3], 2); /* c */
    CHECK_EQ_INT(o3[0], 0); /* d */
    /* One partition: everything in it. */
    sb__pj_assign_partitions(names, costs, n, 1, out);
    for (int i = 0; i < n; i++)
        CHECK_EQ_INT(out[i], 0);
}

int main(void)
{
    SBTEST_RUN(test_names);
    SBTEST_RUN(test_sections);
    SBTEST_RUN(test_quoting);
    SBTEST_RUN(test_errors);
    SBTEST_RUN(test_install_sql);
    SBTEST_RUN(test_deferred);
    SBTEST_RUN(test_cost);
    SBTEST_RUN(test_payload);
    SBTEST_RUN(test_partitions);
    return sbtest_summary();
}
