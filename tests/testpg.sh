#!/bin/sh
# The shared PostgreSQL for `make test`: ctest runs `testpg.sh start` as the setup of the "pg"
# fixture and `testpg.sh stop` as its cleanup.  It is the binary's own embedded cluster (dogfood),
# in $SWITCHBOARD_TEST_DATA_DIR, created fresh for every run.  Tests make their own databases in it
# with tests/support/testdb.{c,sh}.
set -eu
: "${SWITCHBOARD_BIN:?SWITCHBOARD_BIN is not set (run through ctest)}"
: "${SWITCHBOARD_TEST_DATA_DIR:?SWITCHBOARD_TEST_DATA_DIR is not set (run through ctest)}"
export SWITCHBOARD_DATA_DIR="$SWITCHBOARD_TEST_DATA_DIR"
unset SWITCHBOARD_DATABASE_URL
# Throwaway data: durability buys nothing here and costs seconds.
export SWITCHBOARD_PG_FSYNC=off
pidfile="$SWITCHBOARD_TEST_DATA_DIR/pg/data/postmaster.pid"

# Is pid running?  A zombie is not: the postmaster's parent is init, which may reap slowly.
alive() {
    # The state follows the last ')' of /proc/PID/stat (the command name may contain one).
    st=$(sed -n 's/^.*) \(.\).*$/\1/p' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$st" ] && [ "$st" != Z ]
}

# The postmaster's pid, if one is recorded and alive.
postmaster() {
    [ -r "$pidfile" ] || return 1
    pid=$(head -n 1 "$pidfile")
    [ -n "$pid" ] && alive "$pid" && echo "$pid"
}

case "${1:-}" in
start)
    if [ -e "$SWITCHBOARD_TEST_DATA_DIR" ]; then
        # Left by an interrupted run: stop its server before wiping it.
        "$SWITCHBOARD_BIN" db stop >/dev/null 2>&1 || true
        if pid=$(postmaster); then
            echo "testpg: a server from an earlier run is still running (pid $pid); stopping it" >&2
            kill -INT "$pid"
            while alive "$pid"; do sleep 0.1; done
        fi
        rm -rf "$SWITCHBOARD_TEST_DATA_DIR"
    fi
    "$SWITCHBOARD_BIN" db start
    "$SWITCHBOARD_BIN" db status | grep -q '^running ' || {
        echo "testpg: the cluster did not come up" >&2
        exit 1
    }
    ;;
stop)
    pid=$(postmaster) || pid=""
    sock=$("$SWITCHBOARD_BIN" db conninfo | sed -n "s/^host='\([^']*\)'.*/\1/p")
    "$SWITCHBOARD_BIN" db stop
    status=$("$SWITCHBOARD_BIN" db status)
    if [ "$status" != stopped ]; then
        echo "testpg: after db stop the cluster says: $status" >&2
        exit 1
    fi
    # pg_ctl waited for the postmaster; make sure no process of it outlived it.
    if [ -n "$pid" ] && alive "$pid"; then
        echo "testpg: postmaster $pid is still running" >&2
        exit 1
    fi
    # Every server process works in the data directory.
    real=$(cd "$SWITCHBOARD_TEST_DATA_DIR/pg/data" && pwd -P)
    for p in /proc/[0-9]*; do
        if [ "$(readlink "$p/cwd" 2>/dev/null)" = "$real" ] && alive "${p#/proc/}"; then
            echo "testpg: server process ${p#/proc/} is still running" >&2
            exit 1
        fi
    done
    if [ -n "$sock" ] && [ -e "$sock/.s.PGSQL.5432" ]; then
        echo "testpg: the server's socket is still there" >&2
        exit 1
    fi
    ;;
*)
    echo "usage: testpg.sh start|stop" >&2
    exit 2
    ;;
esac
