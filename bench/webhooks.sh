#!/bin/sh
# Inbound webhook throughput (issue 6): signed Twilio messaging webhooks (distinct MessageSids, from
# many contacts) against the real server, each answered only after its MessageReceived committed;
# the load generator (bench/webhook_load.c, closed-loop HTTP/1.1 keep-alive) reports webhooks/s with
# p50/p90/p99 latency.  The baseline, in the same run and database: pgbench inserting the same event
# rows (the payload and metadata the server stored) one per transaction.  Prints key=value lines.
#
#   phase new:  the first message from each of CONTACTS numbers (a contact found-or-created by the
#               flows: claim, CreateContact, then ReceiveMessage);
#   phase main: messages from those contacts (the common case), for SECONDS.
#
# Usage: bench/webhooks.sh BUILD_DIR CONNINFO [SECONDS]   (bench/run.sh calls it)
# Needs pgbench, psql, curl, node (the fake Twilio, twilio's signing helper), BUILD/bench_webhook_load.
# BENCH_WEBHOOK_CLIENT=wrk: wrk + bench/webhooks.lua instead (cross-checks); BENCH_WEBHOOK_LUA: another
# wrk script.
set -eu
BUILD=$1
DB=$2
SECS=${3:-10}
BIN=${BENCH_WEBHOOK_BIN:-$BUILD/switchboard} # BENCH_WEBHOOK_BIN: another binary (A/B runs)
CONTACTS=${BENCH_WEBHOOK_CONTACTS:-2000}
CONNS=${BENCH_WEBHOOK_CONNS:-64}
THREADS=${BENCH_WEBHOOK_THREADS:-$(nproc)}
CLIENT=${BENCH_WEBHOOK_CLIENT:-load}
# The load generator's threads: one loop keeps up with the server at a few µs per request; wrk's
# Lua costs several times more and had two.
case "$CLIENT" in
load) CLIENT_THREADS=${BENCH_WEBHOOK_CLIENT_THREADS:-1} ;;
wrk) CLIENT_THREADS=${BENCH_WEBHOOK_CLIENT_THREADS:-${BENCH_WEBHOOK_WRK_THREADS:-2}} ;;
*) echo "webhooks: BENCH_WEBHOOK_CLIENT is load or wrk" >&2; exit 1 ;;
esac
LOAD=${BENCH_WEBHOOK_LOAD_BIN:-$BUILD/bench_webhook_load} # another build's, e.g. when BUILD is an older tree
MAX_RATE=${BENCH_WEBHOOK_MAX_RATE:-30000} # requests generated for the main phase: MAX_RATE * SECONDS
PUBLIC=https://bench.example.com
ROOT=$(cd "$(dirname "$0")/.." && pwd)

tools="pgbench psql curl node"
[ "$CLIENT" = load ] || tools="wrk $tools"
for tool in $tools; do
    command -v "$tool" >/dev/null || { echo "webhooks: $tool not found (scripts/deps.sh bench)" >&2; exit 1; }
done
[ "$CLIENT" = wrk ] || [ -x "$LOAD" ] || { echo "webhooks: $LOAD not built (BENCH_WEBHOOK_LOAD_BIN, or BENCH_WEBHOOK_CLIENT=wrk)" >&2; exit 1; }

tmp=$(mktemp -d)
# The fake exits when its stdin closes: hold a pipe open for as long as the benchmark runs.
mkfifo "$tmp/fake.in"
node "$ROOT/tests/fake_provider/server.mjs" --port 0 >"$tmp/fake.json" <"$tmp/fake.in" &
fake=$!
exec 3>"$tmp/fake.in"
port=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
pid=""
cleanup() {
    set +e # all of it, whatever fails (a server's exit status, a process already gone)
    [ -z "$pid" ] || { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; }
    exec 3>&-
    kill "$fake" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
for _ in $(seq 100); do [ -s "$tmp/fake.json" ] && break; sleep 0.1; done
FAKE=$(node -e "console.log(JSON.parse(require('fs').readFileSync('$tmp/fake.json','utf8')).url)")

SWITCHBOARD_DATABASE_URL="$DB" SWITCHBOARD_LISTEN="127.0.0.1:$port" SWITCHBOARD_THREADS="$THREADS" \
    SWITCHBOARD_PUBLIC_URL="$PUBLIC" SWITCHBOARD_TWILIO_API_BASE="$FAKE" SWITCHBOARD_RESEND_API_BASE="$FAKE" \
    SWITCHBOARD_MASTER_KEY="$(node -e "console.log(require('crypto').randomBytes(32).toString('hex'))")" \
    SWITCHBOARD_LOG=warn "$BIN" serve >"$tmp/server.log" 2>&1 &
pid=$!
U="http://127.0.0.1:$port"
for _ in $(seq 100); do
    curl -sf "$U/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done

json() { node -e "let d='';process.stdin.on('data',c=>d+=c).on('end',()=>console.log(JSON.parse(d)$1))"; }
J='content-type: application/json'
TOKEN=$(curl -sf -XPOST "$U/v1/auth/signup" -H "$J" \
    -d "{\"email\":\"bench-$(date +%s%N)@example.com\",\"password\":\"benchmark secret\",\"name\":\"Bench\"}" | json .token)
A="authorization: Bearer $TOKEN"
WS=$(curl -sf -XPOST "$U/v1/workspaces" -H "$J" -H "$A" -d '{"name":"Bench"}' | json .id)
# A number of its own for each run: the fake numbers its accounts from the same start every time it
# starts, and a number another run's workspace holds in this database is "taken" (routed there).
NUMBER=+15552$(printf '%06d' $(($(date +%s%N) / 1000 % 1000000)))
curl -sf -XPOST "$FAKE/__admin/accounts" -H "$J" -d "{\"numbers\":[\"$NUMBER\"]}" >"$tmp/acct.json"
SID=$(json .sid <"$tmp/acct.json")
TW=$(json .token <"$tmp/acct.json")
TO=$(json ".numbers[0].phone_number" <"$tmp/acct.json")
curl -sf -XPUT "$U/v1/workspaces/$WS/twilio" -H "$J" -H "$A" -d "{\"account_sid\":\"$SID\",\"auth_token\":\"$TW\"}" >/dev/null

node "$ROOT/bench/webhooks_gen.mjs" "$tmp/new.txt" "$CONTACTS" "$CONTACTS" "$SID" "$TW" "$TO" "$PUBLIC" +1415
node "$ROOT/bench/webhooks_gen.mjs" "$tmp/main.txt" $((MAX_RATE * SECS)) "$CONTACTS" "$SID" "$TW" "$TO" "$PUBLIC" +1415

count() { psql -X -At "$DB" -c "SELECT count(*) FROM events WHERE workspace_id = '$WS' AND type = '$1'"; }
# The load generator's own CPU time (user + system, seconds) goes to $tmp/client.cpu: the subshell's
# `times` prints its own times, then its children's.  It includes reading and formatting the file.
# Prints the client's key=value line, "wrk" or "load" first.
run_client() { # file seconds
    (
        if [ "$CLIENT" = load ]; then
            "$LOAD" -c "$CONNS" -t "$CLIENT_THREADS" -d "$2" "$1" "$U" >"$tmp/client.out" 2>"$tmp/client.err"
        else
            WEBHOOKS_FILE=$1 WEBHOOKS_THREADS=$CLIENT_THREADS wrk -t "$CLIENT_THREADS" -c "$CONNS" -d "${2}s" \
                -s "${BENCH_WEBHOOK_LUA:-$ROOT/bench/webhooks.lua}" "$U" >"$tmp/client.out" 2>"$tmp/client.err"
        fi
        times >"$tmp/client.times"
    )
    sed -n '2{s/m/ /g;s/s//g;p}' "$tmp/client.times" | awk '{print $1 * 60 + $2 + $3 * 60 + $4}' >"$tmp/client.cpu"
    grep -E '^(wrk|load) ' "$tmp/client.out" || { cat "$tmp/client.out" "$tmp/client.err" >&2; return 1; }
    # Failed requests are reported in the line (errors_*), and said here so they are not missed.
    errors=$(grep -E '^(wrk|load) ' "$tmp/client.out" | tr ' ' '\n' | sed -n 's/^errors_[a-z]*=//p' | awk '{s += $1} END {print s + 0}')
    [ "$errors" = 0 ] || { echo "webhooks: $errors failed requests (errors_*):" >&2; head -5 "$tmp/client.err" >&2; }
}

# Phase new: every contact's first message, a fixed amount of work.  bench_webhook_load stops when
# the file is done (the time given is only a bound, for a server that stalls); wrk runs until its
# time is up even then, so the rate is measured from the log, the same way for both: the first and
# last MessageReceived.
if [ "$CLIENT" = load ]; then new_secs=$((CONTACTS / 100 + 60)); else new_secs=$((CONTACTS / 1000 + 3)); fi
run_client "$tmp/new.txt" "$new_secs" >"$tmp/new.out"
created=$(count ContactCreated)
secs_new=$(psql -X -At "$DB" -c "SELECT extract(epoch FROM max(recorded_at) - min(recorded_at)) FROM events WHERE workspace_id = '$WS' AND type = 'MessageReceived'")
echo "webhooks phase=new contacts=$CONTACTS contacts_created=$created received=$(count MessageReceived) per_s=$(echo "$(count MessageReceived) / $secs_new" | bc) client=$CLIENT $(sed -E 's/^(wrk|load) //' "$tmp/new.out")"

# CPU accounting, which holds on a shared machine where wall-clock rates do not: the server's and
# the database's (the postmaster's children: appenders, queries, the follower, the read models)
# CPU time over the main phase, in clock ticks.
HZ=$(getconf CLK_TCK)
PGDATA_DIR=$(psql -X -At "$DB" -c "SHOW data_directory")
pg_pids() { pm=$(head -1 "$PGDATA_DIR/postmaster.pid"); echo "$pm"; ps -o pid= --ppid "$pm"; }
ticks() { for p in "$@"; do awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null; done | awk '{s += $1} END {print s + 0}'; }
head_pos() { psql -X -At "$DB" -c "SELECT coalesce(max(position), 0) FROM events"; }
# Waits (at most 120 s) until every read model has applied the log up to position $1.
projections_at() {
    for _ in $(seq 1200); do
        [ "$(psql -X -At "$DB" -c "SELECT to_regclass('projection_state') IS NULL OR (SELECT coalesce(min(position), $1) >= $1 FROM projection_state)")" = t ] && return 0
        sleep 0.1
    done
    return 1
}
projections_at "$(head_pos)" || true

before=$(count MessageReceived)
pos0=$(head_pos)
lsn0=$(psql -X -At "$DB" -c "SELECT pg_current_wal_lsn()")
# The read models' batches in the phase (their size sets the lanes' per-event share of fixed costs).
pj_metric() { curl -sf "$U/metrics" 2>/dev/null | sed -n "s/^switchboard_projections_$1 \([0-9]*\)$/\1/p"; }
pjb0=$(pj_metric batches_total)
pje0=$(pj_metric events_applied_total)
# The group commits' latency histogram (buckets "le count"). /metrics samples each loop's appender
# once a second: the snapshots are taken a second after the traffic before them stopped.
commit_hist() { curl -sf "$U/metrics" 2>/dev/null | sed -n 's/^switchboard_append_commit_seconds_bucket{le="\([^"]*\)"} \([0-9]*\)$/\1 \2/p'; }
sleep 1.1
commit_hist >"$tmp/commit0"
cpu0_server=$(ticks "$pid")
cpu0_pg=$(ticks $(pg_pids))
# Each PostgreSQL process's ticks, to split the phase's CPU by role (below).
per_pid() { for p in $(pg_pids); do awk -v p="$p" '{print p, $14 + $15}' "/proc/$p/stat" 2>/dev/null; done; }
per_pid >"$tmp/pids0"
# BENCH_WEBHOOK_PERF=FILE: a profile of the main phase's middle, system-wide (perf record -a), or of
# the server alone with BENCH_WEBHOOK_PERF_SERVER=1; more perf options in BENCH_WEBHOOK_PERF_ARGS
# (e.g. "--call-graph dwarf").
prof=""
if [ -n "${BENCH_WEBHOOK_PERF:-}" ]; then
    target="-a"
    [ -z "${BENCH_WEBHOOK_PERF_SERVER:-}" ] || target="-p $pid"
    # shellcheck disable=SC2086
    (sleep 1 && perf record -q $target ${BENCH_WEBHOOK_PERF_ARGS:-} -o "$BENCH_WEBHOOK_PERF" -- sleep $((SECS - 2)) >/dev/null 2>&1) &
    prof=$!
fi
run_client "$tmp/main.txt" "$SECS" >"$tmp/main.out"
[ -z "$prof" ] || wait "$prof"
cpu1_server=$(ticks "$pid")
pjb1=$(pj_metric batches_total)
pje1=$(pj_metric events_applied_total)
cpu1_pg=$(ticks $(pg_pids))
per_pid >"$tmp/pids1"
# Which process is which: the read models' lease by its name, a server's connection by the
# statement it last ran (lanes apply batches, appenders end on the NOTIFY, the follower and the
# units' readers read the log by position), the rest by PostgreSQL's backend type.
psql -X -At -F' ' "$DB" -c "SELECT pid, CASE WHEN application_name LIKE 'switchboard projections%' THEN 'lease'
    WHEN query LIKE '%__apply%' OR query LIKE '%projection_advance%' THEN 'lanes'
    WHEN query LIKE '%pg_notify(''sb_events''%' OR query LIKE 'WITH c AS%' OR query LIKE '%sb_lock_log%' THEN 'appender'
    WHEN query LIKE '%FROM events WHERE position > %' OR query LIKE 'LISTEN%' THEN 'log_readers'
    WHEN backend_type = 'client backend' THEN 'other_client'
    ELSE replace(backend_type, ' ', '_') END FROM pg_stat_activity" >"$tmp/roles" 2>/dev/null || true
t_caught=$(date +%s.%N)
projections_at "$(head_pos)" || echo "webhooks: the read models did not catch up within 120 s" >&2
t_caught=$(echo "$(date +%s.%N) - $t_caught" | bc)
cpu2_server=$(ticks "$pid")
cpu2_pg=$(ticks $(pg_pids))
after=$(count MessageReceived)
line=$(sed -E 's/^(wrk|load) //' "$tmp/main.out")
case "$line" in *file_done=1*) echo "webhooks: the request file ran out before the time was up: raise BENCH_WEBHOOK_MAX_RATE" >&2 ;; esac
reqs=$(printf '%s' "$line" | sed -n 's/.*requests=\([0-9]*\).*/\1/p')
dur=$(printf '%s' "$line" | sed -n 's/.*duration_s=\([0-9.]*\).*/\1/p')
errs=$(printf '%s' "$line" | sed -n 's/.*errors_status=\([0-9]*\).*/\1/p')
echo "webhooks phase=main conns=$CONNS server_threads=$THREADS client=$CLIENT client_threads=$CLIENT_THREADS webhooks_per_s=$(echo "$reqs / $dur" | bc) acknowledged=$((reqs - errs)) stored=$((after - before)) $line"
[ $((after - before)) -ge $((reqs - errs)) ] || echo "webhooks: FEWER MESSAGES STORED THAN ACKNOWLEDGED" >&2
# Per stored message: during the phase, and including the read models' catch-up after it.
n=$((after - before))
[ "$n" -gt 0 ] || { echo "webhooks: no message stored in the main phase" >&2; exit 1; }
us() { echo "$1 * 1000000 / $HZ / $n" | bc; }
srv=$(us $((cpu1_server - cpu0_server)))
pg=$(us $((cpu1_pg - cpu0_pg)))
srv_all=$(us $((cpu2_server - cpu0_server)))
pg_all=$(us $((cpu2_pg - cpu0_pg)))
client=$(echo "$(cat "$tmp/client.cpu") * 1000000 / $n" | bc)
# The load generator during the phase alone, without its set-up (reading and formatting or splitting
# the request file before the run starts): bench_webhook_load's getrusage over the run, in µs; wrk's
# worker threads (bench/webhooks.lua's done()), in clock ticks.
wus=$(printf '%s' "$line" | sed -n 's/.*workers_cpu_us=\([0-9]*\).*/\1/p')
wticks=$(printf '%s' "$line" | sed -n 's/.*workers_cpu_ticks=\([0-9]*\).*/\1/p')
if [ -n "$wus" ]; then client_run=$(echo "$wus / $n" | bc); else client_run=$(us "${wticks:-0}"); fi
echo "webhooks cpu_us_per_webhook server=$srv postgres=$pg client=$client_run client_incl_setup=$client with_read_models_caught_up: server=$srv_all postgres=$pg_all catch_up_s=$(printf '%.1f' "$t_caught") two_idle_cores_per_s=$(echo "2000000 / ($srv_all + $pg_all)" | bc)"

# PostgreSQL's CPU in the main phase by role, µs per stored message (a process that is in neither
# snapshot, e.g. the postmaster, counts as "other").
roles=$(awk -v hz="$HZ" -v n="$n" 'FILENAME ~ /roles$/ {role[$1] = $2; next}
    FILENAME ~ /pids0$/ {t0[$1] = $2; next}
    {r = ($1 in role) ? role[$1] : "other"; d[r] += $2 - (($1 in t0) ? t0[$1] : 0)}
    END {for (r in d) printf " %s=%d", r, d[r] * 1000000 / hz / n}' "$tmp/roles" "$tmp/pids0" "$tmp/pids1")
echo "webhooks postgres_us_per_webhook_by_role$roles"
# The group commit's batches (events per append transaction: the rows' xmin) and the WAL written per
# stored message, from the phase's start to the read models' catch-up.
psql -X -At -F' ' "$DB" -c "SELECT 'webhooks append_batches=' || count(DISTINCT xmin::text) || ' events_per_batch=' ||
    round(count(*)::numeric / greatest(count(DISTINCT xmin::text), 1), 1) || ' wal_bytes_per_webhook=' ||
    round(pg_wal_lsn_diff(pg_current_wal_lsn(), '$lsn0') / $n) FROM events WHERE position > $pos0"

# The commits of the phase by latency, from the histogram's buckets (so each figure is a bucket's
# upper bound, "le"): a commit over 100 ms is a stall every request behind it waited out too (the
# disk's flush: see ## disk), which is what a latency-corrected p99 above the rest reflects.
sleep 1.1
commit_hist >"$tmp/commit1"
awk 'NR == FNR {c0[$1] = $2; next}
    {le[++k] = $1; cum[k] = $2 - c0[$1]}
    END {n = cum[k]; if (n <= 0) exit
         for (i = 1; i <= k; i++) {
             if (p50 == "" && cum[i] >= 0.5 * n) p50 = le[i]
             if (p99 == "" && cum[i] >= 0.99 * n) p99 = le[i]
             if (mx == "" && cum[i] >= n) mx = le[i]
             if (le[i] == "0.1") over = n - cum[i]
         }
         printf "webhooks commits=%d commit_p50_le_ms=%s commit_p99_le_ms=%s commit_max_le_ms=%s commits_over_100ms=%d\n",
             n, (p50 == "+Inf" ? p50 : p50 * 1000), (p99 == "+Inf" ? p99 : p99 * 1000), (mx == "+Inf" ? mx : mx * 1000), over}' \
    "$tmp/commit0" "$tmp/commit1"

# The follower's offers (appended batches handed over by this process's appenders), when reported.
offers=$(curl -sf "$U/metrics" 2>/dev/null | sed -n 's/^switchboard_follower_offers_\([a-z]*\)_total \([0-9]*\)$/ \1=\2/p' | tr -d '\n')
[ -z "$offers" ] || echo "webhooks follower_offers$offers"
[ -z "${pjb0:-}" ] || [ -z "${pjb1:-}" ] || [ "$pjb1" -le "$pjb0" ] ||
    echo "webhooks projection_batches=$((pjb1 - pjb0)) events_per_projection_batch=$(((pje1 - pje0) / (pjb1 - pjb0)))"

# The baseline: the same rows, one per transaction, straight into a copy of the events table.
psql -X -q "$DB" -c "DROP TABLE IF EXISTS bench_webhook_events" \
    -c "CREATE TABLE bench_webhook_events (LIKE events INCLUDING DEFAULTS INCLUDING INDEXES INCLUDING GENERATED)"
row=$(psql -X -At -F' ' "$DB" -c "SELECT encode(payload, 'hex'), encode(metadata, 'hex') FROM events WHERE workspace_id = '$WS' AND type = 'MessageReceived' ORDER BY position DESC LIMIT 1")
cat >"$tmp/one.sql" <<SQL
INSERT INTO bench_webhook_events (stream, version, type, workspace_id, payload, metadata)
VALUES ('contact-' || gen_random_uuid(), 1, 'MessageReceived', '$WS', '\\x${row% *}'::bytea, '\\x${row#* }'::bytea);
SQL
# As many clients as connections, up to 128: the cluster's max_connections (200) holds the server's
# sessions too, and pgbench's rate is flat from 64 clients on (9,120/s at 64, 9,018/s at 128).
pgb_clients=$((CONNS < 128 ? CONNS : 128))
tps=$(pgbench -n -c "$pgb_clients" -j "$(nproc)" -T "$SECS" -f "$tmp/one.sql" "$DB" 2>/dev/null | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
echo "pgbench same_rows one_row_per_tx clients=$pgb_clients rows_per_s=${tps%.*}"
grep -E 'error|warn' "$tmp/server.log" | head -5 || true
