#!/bin/sh
# The embedded cluster, driven through `switchboard db` and `switchboard migrate` in fresh data
# directories of its own (not the shared test cluster): first start, reuse, stop, crash recovery,
# stale pid files, running as root, long paths, and the errors for missing binaries and unusable
# data directories.
set -eu
: "${SWITCHBOARD_BIN:?SWITCHBOARD_BIN is not set (run through ctest)}"
B=$SWITCHBOARD_BIN
unset SWITCHBOARD_DATABASE_URL SWITCHBOARD_PG_BIN
export SWITCHBOARD_PG_FSYNC=off

tmp=$(mktemp -d)
# The server's account must be able to pass through (mktemp makes it 0700).
chmod 755 "$tmp"
started_dirs=""
sleeper=""
cleanup() {
    for d in $started_dirs; do SWITCHBOARD_DATA_DIR=$d "$B" db stop >/dev/null 2>&1 || true; done
    [ -z "$sleeper" ] || kill "$sleeper" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# run CMD...: sets $out (stdout), $err (stderr) and $rc.
run() {
    rc=0
    out=$("$@" 2>"$tmp/stderr") || rc=$?
    err=$(cat "$tmp/stderr")
}

expect_rc() {
    [ "$rc" -eq "$1" ] || fail "$2: exit $rc, want $1 (stdout: $out; stderr: $err)"
}

# An error is one line on stderr, prefixed, containing the given text.
expect_error() {
    expect_rc 1 "$2"
    [ "$(printf '%s\n' "$err" | grep -c .)" -eq 1 ] || fail "$2: want one line on stderr, got: $err"
    case "$err" in
    "switchboard: "*"$1"*) ;;
    *) fail "$2: stderr '$err' does not say '$1'" ;;
    esac
}

# Pids of processes whose working directory is $1: a postmaster and all its children live in
# their data directory.
procs_in() {
    real=$(cd "$1" && pwd -P)
    for p in /proc/[0-9]*; do
        [ "$(readlink "$p/cwd" 2>/dev/null)" = "$real" ] && echo "${p#/proc/}"
    done
    return 0
}

# Is pid running?  A zombie is not: our parent may be an init that reaps slowly.
alive() {
    # The state follows the last ')' of /proc/PID/stat (the command name may contain one).
    st=$(sed -n 's/^.*) \(.\).*$/\1/p' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$st" ] && [ "$st" != Z ]
}

wait_gone() {
    i=0
    while [ -n "$(procs_in "$1")" ]; do
        i=$((i + 1))
        [ $i -lt 200 ] || fail "processes still running in $1: $(procs_in "$1")"
        sleep 0.05
    done
}

D=$tmp/var
export SWITCHBOARD_DATA_DIR="$D"

# --- usage ---
run "$B" db
expect_rc 2 "db without a command"
run "$B" db bogus
expect_rc 2 "db bogus"
run "$B" db start extra
expect_rc 2 "db start extra"
run "$B" db status --help
expect_rc 0 "db status --help"
case "$out" in *"usage: switchboard db status"*) ;; *) fail "db status --help: $out" ;; esac
run "$B" migrate --bogus
expect_rc 2 "migrate --bogus"

# --- first start ---
run "$B" db status
expect_rc 0 "status before init"
[ "$out" = "not initialised" ] || fail "status before init: '$out'"
[ ! -e "$D/pg" ] || fail "db status created $D/pg"

started_dirs="$D"
run "$B" db start
expect_rc 0 "first start"
case "$out" in "started: running pid="*) ;; *) fail "first start said: $out" ;; esac
run "$B" db status
expect_rc 0 "status when running"
pid=$(printf '%s' "$out" | sed -n 's/^running pid=\([0-9]*\) socket=.*/\1/p')
[ -n "$pid" ] || fail "status when running: '$out'"
[ "$out" = "running pid=$pid socket=$D/pg/run" ] || fail "status when running: '$out'"
alive "$pid" || fail "postmaster $pid is not running"

ci=$("$B" db conninfo)
[ "$(psql "$ci" -XAtc "SELECT current_user || ',' || current_database()")" = "switchboard,switchboard" ] ||
    fail "cannot use the switchboard database as switchboard"
[ -z "$(psql "$ci" -XAtc 'SHOW listen_addresses')" ] || fail "the cluster listens on TCP"
[ "$(stat -c %a "$D/pg/run")" = 700 ] || fail "socket directory mode is $(stat -c %a "$D/pg/run")"
psql "$ci" -Xqc 'CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)' || fail "cannot write"

owner=$(stat -c %U "/proc/$pid")
if [ "$(id -u)" -eq 0 ]; then
    [ "$owner" = postgres ] || fail "as root the server runs as '$owner', want postgres"
    [ "$(stat -c %U "$D/pg/data")" = postgres ] || fail "as root the data belongs to $(stat -c %U "$D/pg/data")"
else
    [ "$owner" = "$(id -un)" ] || fail "the server runs as '$owner', want $(id -un)"
fi

# The server gets Switchboard's malloc settings (docs/operations.md); its backends are forked from
# it (their own /proc/PID/environ holds their process titles instead).
env_of() { tr '\0' '\n' <"/proc/$1/environ"; }
env_of "$pid" | grep -qx 'MALLOC_TRIM_THRESHOLD_=67108864' || fail "the postmaster has no MALLOC_TRIM_THRESHOLD_"
env_of "$pid" | grep -qx 'MALLOC_MMAP_THRESHOLD_=33554432' || fail "the postmaster has no MALLOC_MMAP_THRESHOLD_"

# --- a second start is a no-op ---
run "$B" db start
expect_rc 0 "second start"
[ "$out" = "already running: running pid=$pid socket=$D/pg/run" ] || fail "second start said: $out"

# --- stop ---
run "$B" db stop
expect_rc 0 "stop"
[ "$out" = stopped ] || fail "stop said: $out"
! alive "$pid" || fail "postmaster $pid survived db stop"
[ -z "$(procs_in "$D/pg/data")" ] || fail "processes left in the data directory: $(procs_in "$D/pg/data")"
[ ! -e "$D/pg/run/.s.PGSQL.5432" ] || fail "socket left behind"
run "$B" db status
[ "$out" = stopped ] || fail "status after stop: '$out'"
run "$B" db stop
expect_rc 0 "second stop"
[ "$out" = "not running" ] || fail "second stop said: $out"

# --- reuse across restarts ---
# (A malloc setting of our own environment is passed on instead of Switchboard's default.)
run env MALLOC_TRIM_THRESHOLD_=1048576 "$B" db start
expect_rc 0 "restart"
case "$out" in "started: "*) ;; *) fail "restart said: $out" ;; esac
pid=$(head -n 1 "$D/pg/data/postmaster.pid")
env_of "$pid" | grep -qx 'MALLOC_TRIM_THRESHOLD_=1048576' || fail "our MALLOC_TRIM_THRESHOLD_ was not kept"
env_of "$pid" | grep -qx 'MALLOC_TOP_PAD_=16777216' || fail "the postmaster has no MALLOC_TOP_PAD_"
[ "$(psql "$("$B" db conninfo)" -XAtc 'SELECT x FROM kept')" = 42 ] || fail "data lost across a restart"

# --- crash: a stale postmaster.pid must not prevent start ---
pid=$(head -n 1 "$D/pg/data/postmaster.pid")
kill -KILL "$pid"
wait_gone "$D/pg/data"
[ -e "$D/pg/data/postmaster.pid" ] || fail "expected a stale postmaster.pid after kill -9"
run "$B" db status
[ "$out" = stopped ] || fail "status after a crash: '$out'"
run "$B" db start
expect_rc 0 "start after a crash"
[ "$(psql "$("$B" db conninfo)" -XAtc 'SELECT x FROM kept')" = 42 ] || fail "data lost in crash recovery"
run "$B" db stop
expect_rc 0 "stop after crash recovery"

# A stale postmaster.pid naming a live process that is not this cluster's postmaster (pids are
# reused, e.g. after a container restart): PostgreSQL alone would refuse to start.
sleep 300 &
sleeper=$!
printf '%s\n%s\n0\n5432\n%s\n\n0 0\nready\n' "$sleeper" "$D/pg/data" "$D/pg/run" >"$D/pg/data/postmaster.pid"
run "$B" db status
[ "$out" = stopped ] || fail "status with a reused pid: '$out'"
run "$B" db start
expect_rc 0 "start with a reused pid in postmaster.pid"
alive "$sleeper" || fail "db start killed the unrelated process"
kill "$sleeper"
sleeper=""

# --- migrate: uses a running cluster and leaves it running ---
run "$B" migrate
expect_rc 0 "migrate on a running cluster"
[ "$(printf '%s\n' "$out" | head -n 1)" = "applied 001_event_log.sql" ] || fail "migrate said: $out"
run "$B" migrate
[ "$out" = "nothing to apply" ] || fail "second migrate said: $out"
run "$B" db status
case "$out" in "running "*) ;; *) fail "migrate stopped a cluster it did not start: $out" ;; esac
run "$B" db stop
# ... and starts a stopped one for the duration only.
run "$B" migrate
expect_rc 0 "migrate on a stopped cluster"
[ "$out" = "nothing to apply" ] || fail "migrate on a stopped cluster said: $out"
run "$B" db status
[ "$out" = stopped ] || fail "migrate left the cluster running: $out"
wait_gone "$D/pg/data"

# --- a data directory whose socket path is too long for a Unix socket ---
long=$tmp/$(printf '%0100d' 0)
started_dirs="$started_dirs $long"
run env SWITCHBOARD_DATA_DIR=$long "$B" db start
expect_rc 0 "start with a long data directory"
ci=$(SWITCHBOARD_DATA_DIR=$long "$B" db conninfo)
sock=$(printf '%s' "$ci" | sed -n "s/^host='\([^']*\)'.*/\1/p")
case "$sock" in /tmp/sb-*) ;; *) fail "long data directory: socket in '$sock'" ;; esac
[ "$(psql "$ci" -XAtc 'SELECT 1')" = 1 ] || fail "cannot connect through $sock"
run env SWITCHBOARD_DATA_DIR=$long "$B" db stop
expect_rc 0 "stop with a long data directory"
[ ! -e "$sock" ] || fail "socket directory $sock left behind"

# --- errors: one clear line, exit 1 ---
mkdir "$tmp/nobin"
run env SWITCHBOARD_PG_BIN=$tmp/nobin SWITCHBOARD_DATA_DIR=$tmp/fresh "$B" db start
expect_error "postgresql server binaries not found" "missing binaries"

echo "not a directory" >"$tmp/afile"
run env SWITCHBOARD_DATA_DIR=$tmp/afile "$B" db start
expect_error "is not a directory" "a file as the data directory"
run env SWITCHBOARD_DATA_DIR=$tmp/afile "$B" db status
expect_error "is not a directory" "status of a file as the data directory"
mkdir "$tmp/pgfile" && echo x >"$tmp/pgfile/pg"
run env SWITCHBOARD_DATA_DIR=$tmp/pgfile "$B" db start
expect_error "is not a directory" "a file in place of the pg directory"

mkdir -p "$tmp/old/pg/data" && echo 14 >"$tmp/old/pg/data/PG_VERSION"
run env SWITCHBOARD_DATA_DIR=$tmp/old "$B" db start
expect_error "created by PostgreSQL 14" "a cluster of another version"

if [ "$(id -u)" -eq 0 ]; then
    # The postgres account cannot pass through a 0700 directory of root's.
    mkdir -m 700 "$tmp/closed"
    SWITCHBOARD_DATA_DIR=$tmp/closed/var run "$B" db start
    expect_error "cannot reach" "data directory behind a closed parent"
    case "$err" in *"$tmp/closed is not traversable"*) ;; *) fail "the error does not name $tmp/closed: $err" ;; esac
fi

echo "test_cluster: ok"
