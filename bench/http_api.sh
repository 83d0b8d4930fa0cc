#!/bin/sh
# HTTP API throughput: h2load (HTTP/2, cleartext with prior knowledge) and wrk (HTTP/1.1) against
#   trivial  GET /healthz: a handler that answers a static body, the ceiling for this binary; the
#            request carries the same authorization header as the read (the handler ignores it),
#            so the two requests cost the HTTP layer alike and the ratio is the handlers' own
#            (BENCH_HTTP_TRIVIAL_AUTH=0 sends it without, as runs before 2026-11-21 21:00 did);
#   read     GET .../contacts/{id}/notes?limit=20: a contact's thread (token check, workspace
#            membership, the first page: from the loop's thread cache, which the follower keeps
#            current, after the first read from the notes read model); both it and the trivial
#            request send "accept-encoding: gzip, deflate, br" as browsers do
#            (BENCH_HTTP_ACCEPT_ENCODING), so the read gets the cached page's gzip copy (5.7 kB of
#            JSON in about 0.6 kB) from builds that have one;
#   read_identity  the same read with "accept-encoding: identity": the plain 5.7 kB;
#   write    POST .../contacts/{id}/notes: a command decided by the contact actor and committed to
#            the log (group commit) before the 201, spread over 500 contacts;
# all in one run of one server, so the ratios compare like with like.  Prints key=value lines,
# with the server's and the load generator's CPU time per request for each run (h2load's warm-up
# second left out of both).
#
# Usage: bench/http_api.sh BUILD_DIR CONNINFO [SECONDS]   (bench/run.sh calls it)
# Environment: BENCH_HTTP_ROUNDS (3: the reads alternate with the trivial handler in this many runs
# of SECONDS/ROUNDS each), BENCH_HTTP_LOG (warn; info writes the access log), BENCH_HTTP_THREADS,
# BENCH_HTTP_CONTACTS, BENCH_H2_CONNS, BENCH_H2_STREAMS, BENCH_H1_CONNS, BENCH_HTTP_TRIVIAL_AUTH,
# BENCH_HTTP_ACCEPT_ENCODING (the read's and the trivial request's; empty: no such header),
# BENCH_HTTP_WRITES (1; 0 leaves out the write phases, for short A/B runs of the reads).
# Needs h2load (nghttp2-client), wrk, curl and node (to pick a free port).
set -eu
BUILD=$1
DB=$2
SECS=${3:-10}
BIN=$BUILD/switchboard
CONTACTS=${BENCH_HTTP_CONTACTS:-500}
THREADS=${BENCH_HTTP_THREADS:-$(nproc)}
H2_CONNS=${BENCH_H2_CONNS:-32}
H2_STREAMS=${BENCH_H2_STREAMS:-8}
H1_CONNS=${BENCH_H1_CONNS:-128}
# warn: no access log, as in every figure in docs/benchmarks.md; info (serve's default) writes one
# access-log line per request to the server's log file.
LOG=${BENCH_HTTP_LOG:-warn}

for tool in h2load wrk curl node; do
    command -v "$tool" >/dev/null || { echo "http_api: $tool not found (scripts/deps.sh bench)" >&2; exit 1; }
done

tmp=$(mktemp -d)
port=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
SWITCHBOARD_DATABASE_URL="$DB" SWITCHBOARD_LISTEN="127.0.0.1:$port" SWITCHBOARD_THREADS="$THREADS" \
    SWITCHBOARD_LOG="$LOG" "$BIN" serve >"$tmp/server.log" 2>&1 &
pid=$!
cleanup() {
    kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
U="http://127.0.0.1:$port"
for _ in $(seq 100); do
    curl -sf "$U/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done

# Set-up in one node process, 16 requests at a time: a user, a workspace, the contacts, the read
# thread's 20 notes; then it waits until the notes read model has caught up.  Prints the token and
# the thread's path, and writes one note URL per contact to write_uris.
setup=$(node - "$U" "$CONTACTS" "$tmp/write_uris" <<'EOF'
const [url, contacts, out] = process.argv.slice(2);
const fs = require('fs');
async function call(method, path, token, body) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const r = await fetch(url + path, { method, headers, body: body && JSON.stringify(body) });
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${await r.text()}`);
  return r.json();
}
async function pool(n, width, fn) {
  const res = new Array(n);
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < n) { const i = next++; res[i] = await fn(i); }
  }));
  return res;
}
(async () => {
  const email = `bench-${process.hrtime.bigint()}@example.com`;
  const { token } = await call('POST', '/v1/auth/signup', null, { email, password: 'benchmark secret', name: 'Bench' });
  const ws = (await call('POST', '/v1/workspaces', token, { name: 'Bench' })).id;
  const ids = await pool(+contacts, 16, async (i) => (await call('POST', `/v1/workspaces/${ws}/contacts`, token, { name: `Contact ${i + 1}` })).id);
  const paths = ids.map((id) => `/v1/workspaces/${ws}/contacts/${id}/notes`);
  fs.writeFileSync(out, paths.map((p) => url + p).join('\n') + '\n');
  const thread = paths[0];
  for (let i = 1; i <= 20; i++) await call('POST', thread, token, { body: `note ${i}: called back about the quote` });
  for (let k = 0; k < 100; k++) {
    if ((await call('GET', `${thread}?limit=20`, token)).items.length === 20) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  console.log(`${token} ${thread}`);
})().catch((e) => { console.error(`http_api: set-up failed: ${e.message}`); process.exit(1); });
EOF
)
TOKEN=${setup%% *}
THREAD=${setup#* }
A="authorization: Bearer $TOKEN"
J='content-type: application/json'
echo '{"body":"benchmark note: customer asked for a callback tomorrow morning"}' >"$tmp/note.json"
cat >"$tmp/write.lua" <<EOF
local paths = {}
for line in io.lines("$tmp/write_uris") do paths[#paths + 1] = string.sub(line, string.len("$U") + 1) end
local n = 0
local body = io.open("$tmp/note.json"):read("*a")
request = function()
    n = n + 1
    return wrk.format("POST", paths[(n % #paths) + 1], {["content-type"] = "application/json", ["authorization"] = "Bearer $TOKEN"}, body)
end
EOF
AE=${BENCH_HTTP_ACCEPT_ENCODING-gzip, deflate, br}
cat >"$tmp/read.lua" <<EOF
wrk.headers["authorization"] = "Bearer $TOKEN"
EOF
cp "$tmp/read.lua" "$tmp/identity.lua"
echo 'wrk.headers["accept-encoding"] = "identity"' >>"$tmp/identity.lua"
[ -z "$AE" ] || echo "wrk.headers[\"accept-encoding\"] = \"$AE\"" >>"$tmp/read.lua"
cat >"$tmp/done.lua" <<'EOF'
done = function(summary, latency, requests)
    local bad = summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
    io.write(string.format("RESULT rps=%.0f p50_ms=%.2f p99_ms=%.2f errors=%d requests=%d\n", summary.requests / (summary.duration / 1e6),
        latency:percentile(50) / 1000, latency:percentile(99) / 1000, bad, summary.requests))
end
EOF
cat "$tmp/done.lua" >>"$tmp/write.lua"
cat "$tmp/done.lua" >>"$tmp/read.lua"
cat "$tmp/done.lua" >>"$tmp/identity.lua"
TRIVIAL_AUTH=${BENCH_HTTP_TRIVIAL_AUTH:-1}
# The positional parameters were read into variables above: they become the read's extra headers
# for h2load ("$@"), which the trivial request shares (with or without authorization).
if [ -n "$AE" ]; then set -- -H "accept-encoding: $AE"; else set --; fi
if [ "$TRIVIAL_AUTH" = 1 ]; then
    cp "$tmp/read.lua" "$tmp/trivial.lua" # read.lua: the headers, then done()
    TRIVIAL_H2_AUTH=$A
else
    : >"$tmp/trivial.lua"
    [ -z "$AE" ] || echo "wrk.headers[\"accept-encoding\"] = \"$AE\"" >"$tmp/trivial.lua"
    cat "$tmp/done.lua" >>"$tmp/trivial.lua"
    TRIVIAL_H2_AUTH=
fi
# What the read answers with these headers, and with identity: its coding and bytes on the wire
# (the last of a few reads on new connections: each loop's cache answers its first read from the
# database, uncompressed).
wire() { # accept-encoding value
    for _ in 1 2 3 4 5 6; do
        curl -s -D "$tmp/wire.h" -o "$tmp/wire.b" -H "$A" -H "accept-encoding: $1" "$U$THREAD?limit=20"
    done
    enc=$(tr -d '\r' <"$tmp/wire.h" | sed -n 's/^content-encoding: *//ip')
    echo "encoding=${enc:-identity} bytes=$(wc -c <"$tmp/wire.b")"
}
echo "# read: accept-encoding \"$AE\" -> $(wire "$AE"); identity -> $(wire identity)"

# The server's CPU time (user + system, in clock ticks) so far: with the requests a run completed,
# the server's CPU per request, which a busy machine distorts less than the rates.  The load
# generator's CPU per request too (from the shell's `times`: the children it waited for), since
# client and server share the two cores: a handler's rate is bound by the sum.
HZ=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
cpu_us() { # ticks before, requests
    node -e "console.log($2 > 0 ? (($(ticks "$pid") - $1) * 1e6 / $HZ / $2).toFixed(1) : 0)"
}
# `times` prints the shell's own times, then its children's ("0m1.230000s 0m0.450000s"); it must
# run in this shell, not in a $(...) subshell, hence the variable.
children_s() {
    times >"$tmp/times"
    CHILDREN_S=$(sed -n '2{s/m/ /g;s/s//g;p}' "$tmp/times" | awk '{print $1 * 60 + $2 + $3 * 60 + $4}')
}
client_us() { # children seconds before, the client's ticks not to count (its warm-up), requests
    children_s
    node -e "console.log($3 > 0 ? (($CHILDREN_S - $1 - $2 / $HZ) * 1e6 / $3).toFixed(1) : 0)"
}

# h2load: prints "finished in ..., N req/s", status codes and request times.  Each run lasts D
# seconds after a warm-up second (not counted in its rate, nor here in either side's CPU) and adds
# its rate to SUM_<proto>_<name>.
h2() { # name, then h2load arguments
    name=$1
    shift
    children_s
    c0=$CHILDREN_S
    h2load -t 1 -c "$H2_CONNS" -m "$H2_STREAMS" -D "$D" --warm-up-time=1 "$@" >"$tmp/h2load.out" 2>&1 &
    hp=$!
    sleep 1
    t0=$(ticks "$pid")
    warm=$(ticks "$hp")
    wait "$hp" || true
    out=$(cat "$tmp/h2load.out")
    done_=$(printf '%s\n' "$out" | sed -n 's/^requests: .* \([0-9]*\) done.*/\1/p')
    client_us "$c0" "$warm" "${done_:-0}" >"$tmp/client_us"
    rps=$(printf '%s\n' "$out" | sed -n 's/^finished in [^,]*, \([0-9.]*\) req\/s.*/\1/p')
    rps=${rps%.*}
    ok=$(printf '%s\n' "$out" | sed -n 's/^status codes: \([0-9]*\) 2xx.*/\1/p')
    mean=$(printf '%s\n' "$out" | sed -n 's/^time for request: *[^ ]* *[^ ]* *\([0-9.]*[mu]*s\).*/\1/p')
    echo "http $name proto=h2 tool=h2load conns=$H2_CONNS streams=$H2_STREAMS seconds=$D rps=${rps:-0} non_2xx=$((${done_:-0} - ${ok:-0})) mean_latency=$mean server_cpu_us_per_req=$(cpu_us "$t0" "${done_:-0}") client_cpu_us_per_req=$(cat "$tmp/client_us")"
    eval "SUM_h2_$name=\$((\${SUM_h2_$name:-0} + ${rps:-0}))"
}
h1() { # name, lua script, url
    children_s
    c0=$CHILDREN_S
    t0=$(ticks "$pid")
    out=$(wrk -t 1 -c "$H1_CONNS" -d "${D}s" -s "$2" "$3" 2>&1)
    line=$(printf '%s\n' "$out" | sed -n 's/^RESULT //p')
    rps=$(printf '%s\n' "$line" | sed -n 's/^rps=\([0-9]*\).*/\1/p')
    n=$(printf '%s\n' "$line" | sed -n 's/.* requests=\([0-9]*\).*/\1/p')
    client_us "$c0" 0 "${n:-0}" >"$tmp/client_us"
    echo "http $1 proto=h1 tool=wrk conns=$H1_CONNS seconds=$D $line server_cpu_us_per_req=$(cpu_us "$t0" "${n:-0}") client_cpu_us_per_req=$(cat "$tmp/client_us")"
    eval "SUM_h1_$1=\$((\${SUM_h1_$1:-0} + ${rps:-0}))"
}

echo "# server threads=$THREADS log=$LOG, one load-generator thread; $CONTACTS contacts take the writes; the read returns 20 notes; trivial_auth=$TRIVIAL_AUTH"
# Reads before writes: the write phases leave the projections runner busy catching up for a while.
# The trivial handler and the read alternate in ROUNDS short runs, so a change in the machine's load
# (it may be shared) hits both alike; each ratio is of the rates summed over the rounds.
ROUNDS=${BENCH_HTTP_ROUNDS:-3}
D=$((SECS / ROUNDS))
[ "$D" -ge 2 ] || D=2
for _ in $(seq "$ROUNDS"); do
    h1 trivial "$tmp/trivial.lua" "$U/healthz"
    h1 read "$tmp/read.lua" "$U$THREAD?limit=20"
    h1 read_identity "$tmp/identity.lua" "$U$THREAD?limit=20"
    h2 trivial ${TRIVIAL_H2_AUTH:+-H "$TRIVIAL_H2_AUTH"} "$@" "$U/healthz"
    h2 read -H "$A" "$@" "$U$THREAD?limit=20"
    h2 read_identity -H "$A" -H "accept-encoding: identity" "$U$THREAD?limit=20"
done
WRITES=${BENCH_HTTP_WRITES:-1}
if [ "$WRITES" = 1 ]; then
    D=$SECS
    h1 write "$tmp/write.lua" "$U/"
    h2 write -H "$A" -H "$J" -d "$tmp/note.json" -i "$tmp/write_uris"
fi
ratio() { node -e "console.log(($1 / $2).toFixed(2))"; }
for p in h1 h2; do
    eval "t=\$SUM_${p}_trivial r=\$SUM_${p}_read i=\$SUM_${p}_read_identity"
    echo "http trivial proto=$p rounds=$ROUNDS mean_rps=$((t / ROUNDS))"
    echo "http read proto=$p rounds=$ROUNDS mean_rps=$((r / ROUNDS))"
    echo "http read_identity proto=$p rounds=$ROUNDS mean_rps=$((i / ROUNDS))"
    echo "http read_vs_trivial proto=$p ratio=$(ratio "$r" "$t") target=0.50"
    echo "http read_identity_vs_trivial proto=$p ratio=$(ratio "$i" "$t")"
done
if [ "$WRITES" = 1 ]; then
    echo "http write proto=h1 rps=$SUM_h1_write target=10000"
    echo "http write proto=h2 rps=$SUM_h2_write target=10000"
fi
if grep -q " error " "$tmp/server.log"; then
    echo "# server errors:"
    grep " error " "$tmp/server.log" | head -5
fi
