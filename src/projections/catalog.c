/* The projections catalog: the table that records each projection's checkpoint and build, and the
 * functions the runner calls to advance, install and swap (docs/projections.md).  Created by
 * sb_projections_prepare, which also installs projection files seen for the first time, so their
 * tables exist before the server answers requests.  Blocking libpq: for start-up and the CLI. */
#include "projections/pj_int.h"
#include "core/error.h"
#include "core/log.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The catalog, idempotent.  Runs under the install lock. */
static const char catalog_sql[] =
    "CREATE TABLE IF NOT EXISTS projection_state (\n"
    "    name                 text PRIMARY KEY,\n"
    "    state                text NOT NULL DEFAULT 'live' CHECK (state IN ('live', 'failed')),\n"
    "    hash                 text NOT NULL,\n"
    "    types                text[] NOT NULL DEFAULT '{}',\n"
    "    uses_metadata        boolean NOT NULL DEFAULT false,\n"
    "    position             bigint NOT NULL DEFAULT 0,\n"
    "    applied_at           timestamptz,\n"
    "    updated_at           timestamptz NOT NULL DEFAULT now(),\n"
    "    built_at             timestamptz,\n"
    "    error                text,\n"
    "    build_hash           text,\n"
    "    build_types          text[],\n"
    "    build_uses_metadata  boolean,\n"
    "    build_position       bigint,\n"
    "    build_started_at     timestamptz,\n"
    "    build_error          text,\n"
    "    rebuild_requested_at timestamptz\n"
    ");\n"
    /* One batch's checkpoint move, first statement of its transaction: it locks the rows, so a
     * second runner applying the same range waits, then finds the checkpoint moved and fails. */
    "CREATE OR REPLACE FUNCTION projection_advance(p_names text[], p_build boolean, p_from bigint, "
    "p_to bigint, p_applied_at timestamptz) RETURNS void LANGUAGE plpgsql AS $f$\n"
    "DECLARE n int;\n"
    "BEGIN\n"
    /* Rows locked in name order, as projection_swap does, so two transactions that move several
     * checkpoints never wait for each other in a cycle. */
    "    PERFORM 1 FROM projection_state WHERE name = ANY (p_names) ORDER BY name FOR UPDATE;\n"
    "    IF p_build THEN\n"
    "        UPDATE projection_state SET build_position = p_to, updated_at = now(), build_error = NULL\n"
    "         WHERE name = ANY (p_names) AND build_position = p_from AND build_hash IS NOT NULL;\n"
    "    ELSE\n"
    "        UPDATE projection_state SET position = p_to, applied_at = coalesce(p_applied_at, applied_at),\n"
    "               updated_at = now(), error = NULL\n"
    "         WHERE name = ANY (p_names) AND position = p_from AND state = 'live';\n"
    "    END IF;\n"
    "    GET DIAGNOSTICS n = ROW_COUNT;\n"
    "    IF n <> cardinality(p_names) THEN\n"
    "        RAISE EXCEPTION 'checkpoint of % is not at %: another runner moved it', "
    "array_to_string(p_names, ', '), p_from USING ERRCODE = '" SB_PJ_SQLSTATE_MOVED "';\n"
    "    END IF;\n"
    "END $f$;\n"
    /* Installs a projection's schema: live (first time: straight into the stable schema) or a
     * build (into <name>__build, replacing any earlier one).  Skips a live install someone else
     * finished first. */
    "CREATE OR REPLACE FUNCTION projection_install(p_name text, p_build boolean, p_hash text, "
    "p_types text[], p_uses_metadata boolean, p_script text) RETURNS text LANGUAGE plpgsql "
    "SET client_min_messages = warning AS $f$\n"
    "DECLARE r projection_state;\n"
    "BEGIN\n"
    "    PERFORM pg_advisory_xact_lock(" SB_PJ_INSTALL_LOCK ");\n"
    "    SELECT * INTO r FROM projection_state WHERE name = p_name FOR UPDATE;\n"
    "    IF NOT p_build THEN\n"
    "        IF FOUND AND r.state = 'live' THEN\n"
    "            RETURN 'exists';\n"
    "        END IF;\n"
    "        EXECUTE p_script;\n"
    "        INSERT INTO projection_state (name, state, hash, types, uses_metadata, position, built_at)\n"
    "        VALUES (p_name, 'live', p_hash, p_types, p_uses_metadata, 0, now())\n"
    "        ON CONFLICT (name) DO UPDATE SET state = 'live', hash = p_hash, types = p_types,\n"
    "            uses_metadata = p_uses_metadata, position = 0, applied_at = NULL, built_at = now(),\n"
    "            updated_at = now(), error = NULL, build_hash = NULL, build_types = NULL,\n"
    "            build_uses_metadata = NULL, build_position = NULL, build_started_at = NULL,\n"
    "            build_error = NULL, rebuild_requested_at = NULL;\n"
    "    ELSE\n"
    "        IF NOT FOUND OR r.state <> 'live' THEN\n"
    "            RAISE EXCEPTION 'projection %: no live tables to rebuild', p_name;\n"
    "        END IF;\n"
    "        EXECUTE p_script;\n"
    "        UPDATE projection_state SET build_hash = p_hash, build_types = p_types,\n"
    "            build_uses_metadata = p_uses_metadata, build_position = 0, build_started_at = now(),\n"
    "            build_error = NULL, rebuild_requested_at = NULL, updated_at = now()\n"
    "         WHERE name = p_name;\n"
    "    END IF;\n"
    "    RETURN 'installed';\n"
    "END $f$;\n"
    /* Records that installing hash failed, so the same file is not retried until it changes or a
     * rebuild is asked for. */
    "CREATE OR REPLACE FUNCTION projection_install_failed(p_name text, p_build boolean, p_hash text, "
    "p_error text) RETURNS void LANGUAGE plpgsql AS $f$\n"
    "BEGIN\n"
    "    IF NOT p_build THEN\n"
    "        INSERT INTO projection_state (name, state, hash, error) VALUES (p_name, 'failed', p_hash, "
    "p_error)\n"
    "        ON CONFLICT (name) DO UPDATE SET hash = p_hash, error = p_error, updated_at = now(),\n"
    "            rebuild_requested_at = NULL\n"
    "         WHERE projection_state.state = 'failed';\n"
    "    ELSE\n"
    "        UPDATE projection_state SET build_hash = p_hash, build_position = NULL, build_error = p_error,\n"
    "            build_started_at = NULL, rebuild_requested_at = NULL, updated_at = now()\n"
    "         WHERE name = p_name;\n"
    "    END IF;\n"
    "END $f$;\n"
    /* Swaps finished builds in, all in one transaction: reads of <name>.* see the old tables
     * until it commits and the new ones after.  The old schema is renamed, not dropped here, so
     * the swap never waits for readers still using the old tables. */
    "CREATE OR REPLACE FUNCTION projection_swap(p_names text[], p_position bigint) RETURNS void "
    "LANGUAGE plpgsql SET client_min_messages = warning AS $f$\n"
    "DECLARE r record; n int := 0;\n"
    "BEGIN\n"
    "    FOR r IN SELECT * FROM projection_state WHERE name = ANY (p_names) ORDER BY name FOR UPDATE LOOP\n"
    "        IF r.build_hash IS NULL OR r.build_position IS DISTINCT FROM p_position THEN\n"
    "            RAISE EXCEPTION 'projection %: the build is not at position %', r.name, p_position\n"
    "                USING ERRCODE = '" SB_PJ_SQLSTATE_MOVED "';\n"
    "        END IF;\n"
    "        IF r.position > p_position THEN\n"
    "            RAISE EXCEPTION 'projection %: the build (%) is behind the live tables (%)', r.name,\n"
    "                p_position, r.position USING ERRCODE = '" SB_PJ_SQLSTATE_BEHIND "';\n"
    "        END IF;\n"
    "        EXECUTE format('DROP SCHEMA IF EXISTS %I CASCADE', r.name || '__old');\n"
    "        EXECUTE format('ALTER SCHEMA %I RENAME TO %I', r.name, r.name || '__old');\n"
    "        EXECUTE format('ALTER SCHEMA %I RENAME TO %I', r.name || '__build', r.name);\n"
    /* No argument list: __apply is the only function of that name in the schema, whichever
     * generator made it (def.h: SB_PJ_GENERATOR). */
    "        EXECUTE format('ALTER FUNCTION %I.__apply SET search_path = %I, public', r.name, r.name);\n"
    "        UPDATE projection_state SET hash = r.build_hash, types = r.build_types,\n"
    "            uses_metadata = r.build_uses_metadata, position = p_position, applied_at = NULL,\n"
    "            built_at = now(), updated_at = now(), error = NULL, build_hash = NULL, build_types = NULL,\n"
    "            build_uses_metadata = NULL, build_position = NULL, build_started_at = NULL,\n"
    "            build_error = NULL\n"
    "         WHERE name = r.name;\n"
    "        n := n + 1;\n"
    "    END LOOP;\n"
    "    IF n <> cardinality(p_names) THEN\n"
    "        RAISE EXCEPTION 'projections % are not all in the catalog', array_to_string(p_names, ', ')\n"
    "            USING ERRCODE = '" SB_PJ_SQLSTATE_MOVED "';\n"
    "    END IF;\n"
    "END $f$;\n"
    /* Drops what the runner leaves behind: a replaced schema (<name>__old) or an abandoned build
     * (<name>__build).  Nothing else. */
    "CREATE OR REPLACE FUNCTION projection_drop(p_schema text) RETURNS void LANGUAGE plpgsql "
    "SET client_min_messages = warning AS $f$\n"
    "BEGIN\n"
    "    IF p_schema !~ '__(old|build)$' THEN\n"
    "        RAISE EXCEPTION 'projection_drop: % is not a schema the runner left behind', p_schema;\n"
    "    END IF;\n"
    "    EXECUTE format('DROP SCHEMA IF EXISTS %I CASCADE', p_schema);\n"
    "END $f$;\n"
    /* Runs what the projections' files deferred until their build caught up (-- @deferred: the
     * statements wait in <schema>.__deferred), each with its schema first on the search_path, and
     * drops the table.  A schema with nothing deferred is skipped. */
    "CREATE OR REPLACE FUNCTION projection_run_deferred(p_schemas text[]) RETURNS int LANGUAGE plpgsql "
    "SET client_min_messages = warning AS $f$\n"
    "DECLARE s text; q text; n int := 0;\n"
    "BEGIN\n"
    "    FOREACH s IN ARRAY p_schemas LOOP\n"
    "        IF to_regclass(format('%I.__deferred', s)) IS NULL THEN\n"
    "            CONTINUE;\n"
    "        END IF;\n"
    "        PERFORM set_config('search_path', format('%I, public', s), true);\n"
    "        FOR q IN EXECUTE format('SELECT sql FROM %I.__deferred', s) LOOP\n"
    "            EXECUTE q;\n"
    "        END LOOP;\n"
    "        EXECUTE format('DROP TABLE %I.__deferred', s);\n"
    "        n := n + 1;\n"
    "    END LOOP;\n"
    "    RETURN n;\n"
    "END $f$;\n"
    /* The events of a batch as rows, for @batch sections: FROM projection_events($1, ..., $8) e. */
    "CREATE OR REPLACE FUNCTION projection_events(bigint[], text[], text[], bigint[], uuid[], "
    "timestamptz[], jsonb[], jsonb[]) RETURNS TABLE (\"position\" bigint, stream text, type text, "
    "version bigint, workspace uuid, recorded_at timestamptz, payload jsonb, metadata jsonb) "
    "LANGUAGE sql IMMUTABLE PARALLEL SAFE AS\n"
    "$f$ SELECT * FROM unnest($1, $2, $3, $4, $5, $6, $7, $8) $f$;\n";

static int exec_ok(PGconn *c, const char *sql, char *err, size_t errlen)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    int rc = 0;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "%s", PQresultErrorMessage(r));
        size_t n = strlen(err);
        while (n > 0 && err[n - 1] == '\n')
            err[--n] = '\0';
        rc = SB_EDB;
    }
    PQclear(r);
    return rc;
}

PGconn *sb__pj_connect(const char *conninfo, char *err, size_t errlen)
{
    PGconn *c = PQconnectdb(conninfo);
    if (c == NULL || PQstatus(c) != CONNECTION_OK) {
        snprintf(err, errlen, "cannot connect to the database: %s", c ? PQerrorMessage(c) : "out of memory");
        size_t n = strlen(err);
        while (n > 0 && err[n - 1] == '\n')
            err[--n] = '\0';
        PQfinish(c);
        return NULL;
    }
    PQsetNoticeProcessor(c, NULL, NULL);
    exec_ok(c, "SET client_min_messages = warning", err, errlen);
    return c;
}

int sb__pj_ensure_catalog(PGconn *c, char *err, size_t errlen)
{
    int rc = exec_ok(c, "BEGIN", err, errlen);
    if (rc == 0)
        rc = exec_ok(c, "SELECT pg_advisory_xact_lock(" SB_PJ_INSTALL_LOCK ")", err, errlen);
    if (rc == 0)
        rc = exec_ok(c, catalog_sql, err, errlen);
    if (rc == 0)
        return exec_ok(c, "COMMIT", err, errlen);
    char ignore[8];
    exec_ok(c, "ROLLBACK", ignore, sizeof(ignore));
    return rc;
}

/* Text-array literal of strings ({"a","b"}). */
void sb__pj_text_array(sb_buf_t *out, char *const *items, int n)
{
    sb_buf_putc(out, '{');
    for (int i = 0; i < n; i++) {
        if (i > 0)
            sb_buf_putc(out, ',');
        sb_buf_putc(out, '"');
        for (const char *p = items[i]; *p; p++) {
            if (*p == '"' || *p == '\\')
                sb_buf_putc(out, '\\');
            sb_buf_putc(out, *p);
        }
        sb_buf_putc(out, '"');
    }
    sb_buf_putc(out, '}');
}

int sb__pj_install_blocking(PGconn *c, const sb_pj_def_t *d, bool build, char *err, size_t errlen)
{
    sb_buf_t script = SB_BUF_INIT, types = SB_BUF_INIT;
    char schema[SB_PJ_NAME_MAX + 16];
    snprintf(schema, sizeof(schema), build ? "%s__build" : "%s", d->name);
    sb_pj_install_sql(d, schema, build, &script);
    sb__pj_text_array(&types, d->types, d->ntypes);
    const char *params[6] = {d->name,    build ? "t" : "f", d->hash, types.data, d->uses_metadata ? "t" : "f",
                             script.data};
    PGresult *r =
        PQexecParams(c, "SELECT projection_install($1, $2, $3, $4, $5, $6)", 6, NULL, params, NULL, NULL, 0);
    int rc = 0;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "%s",
                 PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY)
                     ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY)
                     : PQresultErrorMessage(r));
        rc = SB_EDB;
    } else if (strcmp(PQgetvalue(r, 0, 0), "exists") == 0) {
        rc = SB_EEXIST;
    }
    PQclear(r);
    if (rc == SB_EDB) {
        const char *fp[4] = {d->name, build ? "t" : "f", d->hash, err};
        r = PQexecParams(c, "SELECT projection_install_failed($1, $2, $3, $4)", 4, NULL, fp, NULL, NULL, 0);
        PQclear(r);
    }
    sb_buf_free(&script);
    sb_buf_free(&types);
    return rc;
}

static void log_bad_file(const char *file, const char *msg, void *data)
{
    sb_log_error("projections", "skipping %s: %s", file, msg);
}

int sb_projections_prepare(const char *conninfo, const char *dir, char *err, size_t errlen)
{
    PGconn *c = sb__pj_connect(conninfo, err, errlen);
    if (c == NULL)
        return SB_EDBDOWN;
    int rc = sb__pj_ensure_catalog(c, err, errlen);
    if (rc != 0) {
        char tmp[512];
        snprintf(tmp, sizeof(tmp), "cannot create the projections catalog: %s", err);
        snprintf(err, errlen, "%s", tmp);
        PQfinish(c);
        return rc;
    }
    sb_pj_def_t **defs = NULL;
    int n = 0;
    char derr[512];
    if (sb_pj_load_dir(dir, &defs, &n, log_bad_file, NULL, derr, sizeof(derr)) != 0) {
        /* No directory means no projections to add; the catalog's ones keep running. */
        sb_log_warn("projections", "%s", derr);
    }
    /* Install what the catalog has never seen, or saw fail with another version of the file. */
    PGresult *r = PQexec(c, "SELECT name, state, hash FROM projection_state");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "cannot read the projections catalog: %s", PQresultErrorMessage(r));
        PQclear(r);
        sb_pj_defs_free(defs, n);
        PQfinish(c);
        return SB_EDB;
    }
    for (int i = 0; i < n; i++) {
        bool known = false;
        for (int k = 0; k < PQntuples(r); k++) {
            if (strcmp(PQgetvalue(r, k, 0), defs[i]->name) != 0)
                continue;
            known =
                strcmp(PQgetvalue(r, k, 1), "live") == 0 || strcmp(PQgetvalue(r, k, 2), defs[i]->hash) == 0;
        }
        if (known)
            continue;
        char ierr[1024];
        int irc = sb__pj_install_blocking(c, defs[i], false, ierr, sizeof(ierr));
        if (irc == 0)
            sb_log_info("projections", "installed %s (new; it builds from position 0)", defs[i]->name);
        else if (irc != SB_EEXIST)
            sb_log_error("projections", "cannot install %s: %s", defs[i]->name, ierr);
    }
    PQclear(r);
    sb_pj_defs_free(defs, n);
    PQfinish(c);
    return 0;
}
