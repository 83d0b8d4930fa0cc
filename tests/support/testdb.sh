#!/bin/sh
# Per-test databases in the shared test PostgreSQL, for shell tests (see testdb.h for C tests).
#   testdb.sh create NAME     drops NAME if it exists, creates it, prints its connection string
#   testdb.sh conninfo NAME   prints the connection string of database NAME
#   testdb.sh drop NAME       drops NAME if it exists
#   testdb.sh migrate CONNINFO  applies the schema (switchboard migrate) to that database
# Needs SWITCHBOARD_BIN and SWITCHBOARD_TEST_DATA_DIR, as ctest sets them.
set -eu
: "${SWITCHBOARD_BIN:?SWITCHBOARD_BIN is not set (run the test through ctest)}"
: "${SWITCHBOARD_TEST_DATA_DIR:?SWITCHBOARD_TEST_DATA_DIR is not set (run the test through ctest)}"

usage() {
    echo "usage: testdb.sh create|conninfo|drop NAME | migrate CONNINFO" >&2
    exit 2
}
[ $# -eq 2 ] || usage

conninfo() {
    SWITCHBOARD_DATA_DIR="$SWITCHBOARD_TEST_DATA_DIR" "$SWITCHBOARD_BIN" db conninfo "$1"
}

check_name() {
    case "$1" in
    '' | *[!A-Za-z0-9_]*)
        echo "testdb: invalid database name '$1'" >&2
        exit 2
        ;;
    esac
}

admin() {
    PGOPTIONS="-c client_min_messages=warning" psql "$(conninfo postgres)" -X -q -v ON_ERROR_STOP=1 -c "$1" >/dev/null
}

case "$1" in
create)
    check_name "$2"
    admin "DROP DATABASE IF EXISTS \"$2\" WITH (FORCE)"
    admin "CREATE DATABASE \"$2\""
    conninfo "$2"
    ;;
conninfo)
    check_name "$2"
    conninfo "$2"
    ;;
drop)
    check_name "$2"
    admin "DROP DATABASE IF EXISTS \"$2\" WITH (FORCE)"
    ;;
migrate)
    SWITCHBOARD_DATABASE_URL="$2" "$SWITCHBOARD_BIN" migrate
    ;;
*) usage ;;
esac
