#!/bin/sh
# `make bench`: runs every benchmark against a throwaway PostgreSQL started by the binary's own
# `db start` (fsync on, default settings), and prints the figures docs/benchmarks.md reports.
# Usage: bench/run.sh BUILD_DIR [SECONDS]
#   BENCH_ONLY="webhooks http_api ..." runs only those sections (disk, append, sse, http_api, webhooks,
#   and the bench_* binaries by name without the prefix).
set -eu
cd "$(dirname "$0")/.."
BUILD=${1:-build-release}
SECS=${2:-${BENCH_SECONDS:-10}}
BIN=$BUILD/switchboard
case "$BUILD" in /*) ;; *) BUILD="$PWD/$BUILD" ;; esac # an absolute BUILD (another tree's build) as it is
export SWITCHBOARD_DATA_DIR="$BUILD/benchdata"
export SWITCHBOARD_LOG=warn

"$BIN" db start >/dev/null
trap '"$BIN" db stop >/dev/null' EXIT INT TERM
BASE=$("$BIN" db conninfo)
# Fresh database for every run.
BASE=$(printf '%s' "$BASE" | sed 's/dbname=[^ ]*//')
PSQL_ADMIN="$BASE dbname=postgres"
psql -X -q "$PSQL_ADMIN" -c "DROP DATABASE IF EXISTS bench" -c "CREATE DATABASE bench"
DB="$BASE dbname=bench"
SWITCHBOARD_DATABASE_URL="$DB" "$BIN" migrate >/dev/null

echo "# machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
echo "# cpu: $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1)"
echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ), $SECS s per run, PostgreSQL $(psql -X -At "$DB" -c 'SHOW server_version')"

# Each section starts from a clean cluster: CHECKPOINT writes out what the sections before it left
# dirty, so their write-back does not land in its figures (backends evicting dirty buffers, commits
# waiting on a disk busy with a checkpoint).
settle() { psql -X -q "$PSQL_ADMIN" -c CHECKPOINT; }

want() { [ -z "${BENCH_ONLY:-}" ] || case " $BENCH_ONLY " in *" $1 "*) true ;; *) false ;; esac; }

# First, the disk every commit waits on (bench/disk.c): its stalls set the floor of the
# latency-corrected p99s below.
if want disk; then
    echo "## disk (8 kB write + fdatasync, one at a time, idle machine)"
    "$BUILD/bench_disk" "$DB" "$SECS" || echo "(bench_disk failed)"
fi

if want append; then
echo "## append (group commit, single-event commands)"
for n in 1 16 256 1024; do
    "$BUILD/bench_append" "$DB" "$n" "$SECS" "$(nproc)"
done

echo "## baseline: pgbench inserting the same rows (same columns and indexes, no log lock)"
psql -X -q "$DB" -c "CREATE TABLE bench_events (LIKE events INCLUDING DEFAULTS INCLUDING INDEXES INCLUDING GENERATED)"
tmp=$(mktemp -d)
cat >"$tmp/one.sql" <<'SQL'
INSERT INTO bench_events (stream, version, type, payload, metadata)
VALUES ('bench-' || gen_random_uuid(), 1, 'BenchAppended', '\x82a4626f6479a568656c6c6fa16e2a'::bytea, '\x80'::bytea);
SQL
cat >"$tmp/hundred.sql" <<'SQL'
INSERT INTO bench_events (stream, version, type, payload, metadata)
SELECT 'bench-' || gen_random_uuid(), 1, 'BenchAppended', '\x82a4626f6479a568656c6c6fa16e2a'::bytea, '\x80'::bytea
FROM generate_series(1, 100);
SQL
one=$(pgbench -n -c 32 -j "$(nproc)" -T "$SECS" -f "$tmp/one.sql" "$DB" 2>/dev/null | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
hun=$(pgbench -n -c 32 -j "$(nproc)" -T "$SECS" -f "$tmp/hundred.sql" "$DB" 2>/dev/null | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
echo "pgbench one_row_per_tx clients=32 rows_per_s=${one%.*}"
echo "pgbench hundred_rows_per_tx clients=32 rows_per_s=$(echo "$hun * 100" | bc | cut -d. -f1)"
rm -rf "$tmp"
fi

if want sse; then
settle
echo "## sse (append -> delivery latency while appending 5,000 events/s; server memory per idle client)"
# A database of its own: the append section leaves millions of rows whose aftermath (autovacuum,
# checkpoints, the read models skipping them) would otherwise land in these latency figures.
psql -X -q "$DB" -c "DROP DATABASE IF EXISTS bench_sse" -c "CREATE DATABASE bench_sse"
SSE_DB="$DB dbname=bench_sse"
node bench/sse.mjs "$BUILD" "$SSE_DB" --clients 1000,10000 --seconds "$SECS" --proto h1 || echo "(sse h1 failed)"
node bench/sse.mjs "$BUILD" "$SSE_DB" --clients 1000,10000 --seconds "$SECS" --proto h2 || echo "(sse h2 failed)"
fi

if want http_api; then
settle
echo "## http api (h2load and wrk: a trivial handler, a contact's thread, adding a note)"
bench/http_api.sh "$BUILD" "$DB" "$SECS" || echo "(http api failed)"
fi

if want webhooks; then
# Per connection count (BENCH_WEBHOOK_CONNS_LIST): 64 is the reference; more connections make larger
# append transactions, so the rate rises until the CPU or the p99 bound stops it.  Each count runs
# BENCH_WEBHOOK_REPEAT times (3 by default), each a whole run of its own (a new server, workspace and
# baseline), and a summary line names the run with the median rate: the host's speed moves by a
# sixth from one minute to the next, and one 10-second window is a sample of the host as much as of
# the code.
repeat=${BENCH_WEBHOOK_REPEAT:-3}
for conns in ${BENCH_WEBHOOK_CONNS_LIST:-64 192}; do
    echo "## webhooks, $conns connections (signed inbound Twilio messages, acknowledged after commit; pgbench baseline)"
    runs=$(mktemp)
    for run in $(seq "$repeat"); do
        settle
        [ "$repeat" = 1 ] || echo "### run $run of $repeat"
        ok=true
        BENCH_WEBHOOK_CONNS=$conns bench/webhooks.sh "$BUILD" "$DB" "$SECS" >"$runs.one" || ok=false
        cat "$runs.one"
        cat "$runs.one" >>"$runs"
        $ok || echo "(webhooks failed)"
    done
    # rate, p99, corrected p99 and baseline of each run, in order; the median by rate (the lower
    # middle one for an even count).
    awk -v conns="$conns" '
        /^webhooks phase=main / {
            n++
            for (i = 1; i <= NF; i++) {
                split($i, kv, "=")
                if (kv[1] == "webhooks_per_s") rate[n] = kv[2]
                if (kv[1] == "p99_ms") p99[n] = kv[2]
                if (kv[1] == "corr_p99_ms") cp99[n] = kv[2]
            }
        }
        /^pgbench same_rows / { for (i = 1; i <= NF; i++) if ($i ~ /^rows_per_s=/) { split($i, kv, "="); base[n] = kv[2] } }
        END {
            if (n == 0) exit
            for (i = 1; i <= n; i++) ord[i] = i
            for (i = 2; i <= n; i++)
                for (j = i; j > 1 && rate[ord[j - 1]] + 0 > rate[ord[j]] + 0; j--) { t = ord[j]; ord[j] = ord[j - 1]; ord[j - 1] = t }
            m = ord[int((n + 1) / 2)]
            list = ""; plist = ""
            for (i = 1; i <= n; i++) { list = list (i > 1 ? "," : "") rate[i]; plist = plist (i > 1 ? "," : "") p99[i] }
            printf "webhooks summary conns=%s runs=%d per_s=%s p99_ms=%s median_run=%d median_per_s=%s median_p99_ms=%s median_corr_p99_ms=%s median_run_pgbench_rows_per_s=%s\n",
                conns, n, list, plist, m, rate[m], p99[m], cp99[m], base[m]
        }' "$runs"
    rm -f "$runs" "$runs.one"
done
fi

for b in "$BUILD"/bench_*; do
    case "$b" in */bench_append | */bench_webhook_load | */bench_disk) continue ;; esac # run by their sections
    [ -x "$b" ] || continue
    want "${b##*/bench_}" || continue
    settle
    echo "## $(basename "$b")"
    "$b" "$DB" "$SECS" || echo "($(basename "$b") failed)"
done
