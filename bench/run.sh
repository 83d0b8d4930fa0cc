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
# One run per connection count (BENCH_WEBHOOK_CONNS_LIST): 64 is the reference; more connections make
# larger append transactions, so the rate rises until the CPU or the p99 bound stops it.
for conns in ${BENCH_WEBHOOK_CONNS_LIST:-64 192}; do
    settle
    echo "## webhooks, $conns connections (signed inbound Twilio messages, acknowledged after commit; pgbench baseline)"
    BENCH_WEBHOOK_CONNS=$conns bench/webhooks.sh "$BUILD" "$DB" "$SECS" || echo "(webhooks failed)"
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
