#!/bin/bash
# `switchboard projections list|status|rebuild` and the server's runner, end to end: a rebuild with
# no server (the command runs the projections itself), bad usage, a server that builds a new
# projection and answers GET /metrics, a changed file rebuilt by the running server while the
# command waits, and two servers on one database where only the lease holder runs projections and
# the other takes over when the holder is killed.
set -eu
: "${SWITCHBOARD_BIN:?SWITCHBOARD_BIN is not set (run through ctest)}"
: "${SWITCHBOARD_SOURCE_DIR:?SWITCHBOARD_SOURCE_DIR is not set (run through ctest)}"
B=$SWITCHBOARD_BIN
SRC=$SWITCHBOARD_SOURCE_DIR
unset SWITCHBOARD_LISTEN SWITCHBOARD_TLS_CERT SWITCHBOARD_TLS_KEY
export SWITCHBOARD_THREADS=2 SWITCHBOARD_LOG=info
case "${LSAN_OPTIONS:-}" in
*suppressions=*) ;;
*) export LSAN_OPTIONS="suppressions=$SRC/tests/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}" ;;
esac

tmp=$(mktemp -d)
pids=""
cleanup() {
    for p in $pids; do kill -KILL "$p" 2>/dev/null || true; done
    "$SRC/tests/support/testdb.sh" drop test_projections_cli >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*" >&2
    for f in "$tmp"/*.log "$tmp"/*.err; do
        [ -e "$f" ] || continue
        echo "--- $f ($(wc -l <"$f") lines: the first 5 and the last 30)" >&2
        head -n 5 "$f" >&2
        echo "..." >&2
        tail -n 30 "$f" >&2
    done
    exit 1
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }

DB=$("$SRC/tests/support/testdb.sh" create test_projections_cli)
"$SRC/tests/support/testdb.sh" migrate "$DB" >/dev/null
export SWITCHBOARD_DATABASE_URL="$DB" SWITCHBOARD_PROJECTIONS_DIR="$tmp/projections"
q() { psql -X -q -At -v ON_ERROR_STOP=1 "$DB" -c "$1"; }

mkdir "$tmp/projections"
cat >"$tmp/projections/pings.sql" <<'SQL'
-- One row per Pinged event.
CREATE TABLE pings (n int PRIMARY KEY, stream text NOT NULL);
-- @on Pinged
INSERT INTO pings VALUES (($7->>'n')::int, $2);
SQL
cat >"$tmp/projections/ping_total.sql" <<'SQL'
-- How many pings, a batch at a time.
CREATE TABLE total (k int PRIMARY KEY, n bigint NOT NULL);
-- @batch Pinged
INSERT INTO total AS t
SELECT 1, count(*) FROM unnest($3) AS e(type) WHERE type = 'Pinged' HAVING count(*) > 0
ON CONFLICT (k) DO UPDATE SET n = t.n + excluded.n;
SQL
# N events Pinged {"n": i} (msgpack: a map of one, "n", int32) on 10 streams.
insert() { # FROM TO
    q "INSERT INTO events (stream, version, type, payload, metadata)
       SELECT 'ping-00000000-0000-4000-8000-' || lpad((i % 10)::text, 12, '0'), i / 10 + 1, 'Pinged',
              '\\x81a16ed2'::bytea || int4send(i), '\\x80'::bytea
       FROM generate_series($1, $2) AS i"
}
insert 0 1999

# ---- no server -------------------------------------------------------------------------------
"$B" projections list >"$tmp/list.out" 2>"$tmp/list.err" || fail "list: exit $?"
grep -q '^pings  *new  *- *- .*/pings.sql$' "$tmp/list.out" || fail "list before any runner: $(cat "$tmp/list.out")"

timeout 120 "$B" projections rebuild --all >"$tmp/rebuild.out" 2>"$tmp/rebuild.err" || fail "rebuild --all without a server: exit $?"
grep -q "no server is running the projections: rebuilding here" "$tmp/rebuild.err" || fail "rebuild did not run the projections itself"
grep -q "^done in" "$tmp/rebuild.err" || fail "rebuild did not finish"
[ "$(q 'SELECT count(*) FROM pings.pings')" = 2000 ] || fail "pings: $(q 'SELECT count(*) FROM pings.pings') rows, want 2000"
[ "$(q 'SELECT n FROM ping_total.total')" = 2000 ] || fail "ping_total: $(q 'SELECT n FROM ping_total.total'), want 2000"
head=$(q "SELECT max(position) FROM events")

"$B" projections status pings >"$tmp/status.out" 2>&1 || fail "status: exit $?"
grep -q "^  checkpoint:  $head\$" "$tmp/status.out" || fail "status checkpoint: $(cat "$tmp/status.out")"
grep -q "^  lag:         0 events, 0.0 s\$" "$tmp/status.out" || fail "status lag: $(cat "$tmp/status.out")"
grep -q "^runner:   none" "$tmp/status.out" || fail "status runner: $(cat "$tmp/status.out")"

# Rebuilding again gives the same tables (and a rebuild of what is there swaps, not appends).
timeout 120 "$B" projections rebuild pings ping_total 2>"$tmp/rebuild2.err" || fail "second rebuild: exit $?"
grep -q "^pings: rebuilt and swapped in at position $head\$" "$tmp/rebuild2.err" || fail "second rebuild: $(cat "$tmp/rebuild2.err")"
[ "$(q 'SELECT count(*) FROM pings.pings')" = 2000 ] || fail "pings after a rebuild"
[ "$(q 'SELECT n FROM ping_total.total')" = 2000 ] || fail "ping_total after a rebuild"
[ "$(q "SELECT count(*) FROM pg_namespace WHERE nspname LIKE '%\_\_build'")" = 0 ] || fail "a build schema is left"

# Bad usage: exit 2, one line on stderr first.
for args in "rebuild" "rebuild nosuch" "rebuild BadName" "rebuild pings --all" "status Bad-Name" "frobnicate" "list extra"; do
    rc=0
    # shellcheck disable=SC2086
    timeout 60 "$B" projections $args >/dev/null 2>"$tmp/usage.err" || rc=$?
    [ "$rc" = 2 ] || fail "projections $args: exit $rc, want 2"
done
"$B" projections --help | grep -q "rebuild NAME... | --all" || fail "help"

# ---- a server -----------------------------------------------------------------------------------
# start NAME: a server in the background (log in $tmp/NAME.log); sets $pid and $port.
start() {
    "$B" serve --listen 127.0.0.1:0 >"$tmp/$1.log" 2>&1 &
    pid=$!
    pids="$pids $pid"
    local deadline=$(($(now_ms) + 120000))
    until grep -q "serve: listening on" "$tmp/$1.log"; do
        kill -0 "$pid" 2>/dev/null || fail "$1: exited before listening"
        [ "$(now_ms)" -lt "$deadline" ] || fail "$1: not listening after 120 s"
        sleep 0.05
    done
    port=$(sed -n 's/.*serve: listening on http:\/\/127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$tmp/$1.log")
}
metric() { # PORT NAME -> value
    curl -s --max-time 10 "http://127.0.0.1:$1/metrics" | sed -n "s/^$2 //p"
}
wait_metric() { # PORT NAME VALUE
    local deadline=$(($(now_ms) + 60000))
    until [ "$(metric "$1" "$2")" = "$3" ]; do
        [ "$(now_ms)" -lt "$deadline" ] || fail "metric $2 is '$(metric "$1" "$2")', want $3"
        sleep 0.05
    done
}

# A file added while nothing runs: the server installs it and builds it from 0.
cat >"$tmp/projections/ping_streams.sql" <<'SQL'
CREATE TABLE streams (stream text PRIMARY KEY, pings int NOT NULL);
-- @on Pinged
INSERT INTO streams AS s VALUES ($2, 1) ON CONFLICT (stream) DO UPDATE SET pings = s.pings + 1;
SQL
start a
pid_a=$pid
port_a=$port
insert 2000 2999
head=$(q "SELECT max(position) FROM events")
wait_metric "$port_a" 'switchboard_projections_active' 1
# (The lag metric is relative to what the server's follower has seen, which these inserts do not
# announce: wait for the checkpoint itself.)
wait_metric "$port_a" 'switchboard_projection_checkpoint{projection="pings"}' "$head"
wait_metric "$port_a" 'switchboard_projection_checkpoint{projection="ping_streams"}' "$head"
wait_metric "$port_a" 'switchboard_projection_lag_events{projection="pings"}' 0
[ "$(q 'SELECT count(*) FROM pings.pings')" = 3000 ] || fail "pings live: $(q 'SELECT count(*) FROM pings.pings')"
[ "$(q 'SELECT sum(pings) FROM ping_streams.streams')" = 3000 ] || fail "ping_streams built from 0"
curl -s --max-time 10 "http://127.0.0.1:$port_a/metrics" | grep -q '^# TYPE switchboard_projection_lag_seconds gauge$' || fail "metrics text"
[ "$(metric "$port_a" 'switchboard_projection_lag_seconds{projection="pings"}')" = 0.000 ] || fail "lag seconds when caught up"

# A changed file, rebuilt by the server while the command waits; reads of the old shape go on.
cat >"$tmp/projections/pings.sql" <<'SQL'
-- One row per Pinged event, with its position now.
CREATE TABLE pings (n int PRIMARY KEY, stream text NOT NULL, position bigint NOT NULL);
-- @on Pinged
INSERT INTO pings VALUES (($7->>'n')::int, $2, $1);
SQL
"$B" projections list | grep -q '^pings .*(changed' || fail "list does not flag the changed file"
timeout 120 "$B" projections rebuild pings 2>"$tmp/rebuild3.err" || fail "rebuild with a server: exit $?"
grep -q "the runner (.*switchboard projections pid=$pid_a.*) rebuilds; waiting" "$tmp/rebuild3.err" || fail "rebuild did not leave it to the server: $(cat "$tmp/rebuild3.err")"
[ "$(q 'SELECT count(*) FROM pings.pings WHERE position IS NOT NULL')" = 3000 ] || fail "pings rebuilt in the new shape"
# The command returns once the catalog shows the swap, which commits before the server logs it.
deadline=$(($(now_ms) + 30000))
until grep -q "pings: rebuilt and swapped in" "$tmp/a.log"; do
    [ "$(now_ms)" -lt "$deadline" ] || fail "the server did not log the swap"
    sleep 0.05
done

# Two servers: only the lease holder runs projections; killing it hands them over.
start b
pid_b=$pid
port_b=$port
sleep 1.5
[ "$(metric "$port_b" switchboard_projections_active)" = 0 ] || fail "the second server runs projections too"
[ "$(metric "$port_a" switchboard_projections_active)" = 1 ] || fail "the first server stopped running projections"
kill -KILL "$pid_a"
wait "$pid_a" 2>/dev/null || true
pids=$(echo "$pids" | sed "s/ $pid_a\b//")
insert 3000 3999
head=$(q "SELECT max(position) FROM events")
wait_metric "$port_b" switchboard_projections_active 1
wait_metric "$port_b" 'switchboard_projection_checkpoint{projection="pings"}' "$head"
wait_metric "$port_b" 'switchboard_projection_checkpoint{projection="ping_total"}' "$head"
[ "$(q 'SELECT count(*) FROM pings.pings')" = 4000 ] || fail "after the take-over: $(q 'SELECT count(*) FROM pings.pings') pings"
[ "$(q 'SELECT n FROM ping_total.total')" = 4000 ] || fail "after the take-over: total $(q 'SELECT n FROM ping_total.total')"
"$B" projections status >"$tmp/status2.out" 2>&1 || fail "status after the take-over: exit $?"
grep -q "^runner:   .*switchboard projections pid=$pid_b" "$tmp/status2.out" || fail "status names the new runner (a was $pid_a, b is $pid_b): $(cat "$tmp/status2.out")"

kill -TERM "$pid_b"
deadline=$(($(now_ms) + 60000))
while kill -0 "$pid_b" 2>/dev/null; do
    [ "$(now_ms)" -lt "$deadline" ] || fail "server b still running 60 s after SIGTERM"
    sleep 0.05
done
rc=0
wait "$pid_b" || rc=$?
pids=$(echo "$pids" | sed "s/ $pid_b\b//")
[ "$rc" = 0 ] || fail "server b: exit $rc after SIGTERM"
echo "ok"
