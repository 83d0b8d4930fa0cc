#!/bin/bash
# The HTTP server and `switchboard serve`, driven with curl: HTTP/1.1, HTTP/2 with prior knowledge,
# TLS with ALPN h2, /healthz and /readyz, the JSON error shape for 404/405/413/431, X-Request-Id,
# the access log, password redaction, graceful shutdown (an in-flight request finishes, an idle
# keep-alive connection does not hold the exit, the port is free again), a port already in use,
# and the embedded default (no database URL: the server starts and stops its own cluster).
# Bash, not sh: it holds raw connections open with /dev/tcp.
set -eu
: "${SWITCHBOARD_BIN:?SWITCHBOARD_BIN is not set (run through ctest)}"
: "${SWITCHBOARD_SOURCE_DIR:?SWITCHBOARD_SOURCE_DIR is not set (run through ctest)}"
B=$SWITCHBOARD_BIN
SRC=$SWITCHBOARD_SOURCE_DIR
unset SWITCHBOARD_DATABASE_URL SWITCHBOARD_LISTEN SWITCHBOARD_TLS_CERT SWITCHBOARD_TLS_KEY
export SWITCHBOARD_PG_FSYNC=off SWITCHBOARD_THREADS=2 SWITCHBOARD_LOG=info
# h2o's per-thread buffer caches are unreachable once a loop thread exits (see tests/lsan.supp).
case "${LSAN_OPTIONS:-}" in
*suppressions=*) ;;
*) export LSAN_OPTIONS="suppressions=$SRC/tests/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}" ;;
esac

tmp=$(mktemp -d)
# The embedded cluster's account must be able to pass through (mktemp makes it 0700).
chmod 755 "$tmp"
pids=""
embedded_dir=""
cleanup() {
    for p in $pids; do kill -KILL "$p" 2>/dev/null || true; done
    [ -z "$embedded_dir" ] || SWITCHBOARD_DATA_DIR=$embedded_dir "$B" db stop >/dev/null 2>&1 || true
    "$SRC/tests/support/testdb.sh" drop test_http >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    for f in "$tmp"/*.log; do
        [ -e "$f" ] || continue
        echo "--- $f" >&2
        tail -n 40 "$f" >&2
    done
    exit 1
}

now_ms() {
    echo $(($(date +%s%N) / 1000000))
}

# start NAME ARGS...: runs `switchboard serve ARGS` in the background, logging to $tmp/NAME.log,
# and waits until it listens.  Sets $pid and $port.
start() {
    local name=$1
    shift
    "$B" serve "$@" >"$tmp/$name.log" 2>&1 &
    pid=$!
    pids="$pids $pid"
    local deadline=$(($(now_ms) + 120000))
    until grep -q "serve: listening on" "$tmp/$name.log"; do
        kill -0 "$pid" 2>/dev/null || fail "$name: the server exited before listening"
        [ "$(now_ms)" -lt "$deadline" ] || fail "$name: not listening after 120 s"
        sleep 0.05
    done
    port=$(sed -n 's/.*serve: listening on https\{0,1\}:\/\/127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$tmp/$name.log")
    [ -n "$port" ] || fail "$name: no port in the start-up log"
}

# stop NAME PID MAX_MS: SIGTERM, then expects exit 0 within MAX_MS.  Sets $elapsed (ms).
stop() {
    local t0 rc=0
    t0=$(now_ms)
    kill -TERM "$2"
    wait "$2" || rc=$?
    elapsed=$(($(now_ms) - t0))
    pids=$(echo "$pids" | sed "s/ $2\b//")
    [ "$rc" -eq 0 ] || fail "$1: exit status $rc after SIGTERM, want 0"
    [ "$elapsed" -le "$3" ] || fail "$1: took ${elapsed} ms to exit, want <= $3"
}

# req ARGS...: curl; sets $code, $ver (the HTTP version curl used), $size (body bytes received),
# $body and $headers.
req() {
    local out
    out=$(curl -s -o "$tmp/body" -D "$tmp/headers" -w '%{http_code} %{http_version} %{size_download}' "$@") || true
    read -r code ver size <<<"$out"
    body=$(cat "$tmp/body" 2>/dev/null || true)
    headers=$(tr -d '\r' <"$tmp/headers" 2>/dev/null || true)
}

expect() {
    [ "$code" = "$1" ] || fail "$2: status $code, want $1 (body: $body)"
}

expect_body() {
    [ "$body" = "$1" ] || fail "$2: body '$body', want '$1'"
}

header() {
    printf '%s\n' "$headers" | sed -n "s/^$1: //Ip" | tail -n 1
}

wait_ready() {
    local deadline=$(($(now_ms) + 60000))
    while :; do
        req "$@"
        [ "$code" = 200 ] && return 0
        [ "$(now_ms)" -lt "$deadline" ] || fail "/readyz still $code after 60 s (body: $body)"
        sleep 0.05
    done
}

# ---- against the shared test PostgreSQL ------------------------------------------------------
conninfo=$("$SRC/tests/support/testdb.sh" create test_http)
# A password the server must never log (trust authentication ignores it).
secret="sekrit-$$"
case "$conninfo" in
*://*?*) dburl="$conninfo&password=$secret" ;;
*://*) dburl="$conninfo?password=$secret" ;;
*) dburl="$conninfo password='$secret x'" ;;
esac

start main --database-url "$dburl" --listen 127.0.0.1:0
main_pid=$pid
main_port=$port
U=http://127.0.0.1:$main_port

req "$U/healthz"
expect 200 "healthz over HTTP/1.1"
expect_body '{"status":"ok"}' "healthz"
[ "$ver" = 1.1 ] || fail "healthz: HTTP version $ver, want 1.1"
[ "$(header content-type)" = application/json ] || fail "healthz: content-type '$(header content-type)'"

req --http2-prior-knowledge "$U/healthz"
expect 200 "healthz over h2c"
[ "$ver" = 2 ] || fail "healthz with --http2-prior-knowledge: HTTP version $ver, want 2"
expect_body '{"status":"ok"}' "healthz over h2c"

# The server migrated the fresh database itself; readiness follows the loop's connection.
wait_ready "$U/readyz"
expect_body '{"status":"ok"}' "readyz"
wait_ready --http2-prior-knowledge "$U/readyz"

req --head "$U/healthz"
expect 200 "HEAD healthz"
[ "$size" = 0 ] || fail "HEAD healthz: $size body bytes were sent"
[ "$(header content-length)" = 15 ] || fail "HEAD healthz: content-length '$(header content-length)'"

req "$U/v1/no/such/thing?x=1"
expect 404 "unknown route"
expect_body '{"error":{"code":"not_found","message":"no such resource","field":null}}' "unknown route"
[ "$(header content-type)" = application/json ] || fail "404: content-type '$(header content-type)'"
req --http2-prior-knowledge "$U/nope"
expect 404 "unknown route over h2c"

req -X DELETE "$U/healthz"
expect 405 "wrong method"
[ "$(header allow)" = "GET, HEAD" ] || fail "405: Allow '$(header allow)', want 'GET, HEAD'"
case "$body" in
'{"error":{"code":"method_not_allowed",'*'"field":null}}') ;;
*) fail "405 body: $body" ;;
esac

# Request ids: a sane one is echoed, a missing or insane one replaced by a fresh UUID.
req -H "X-Request-Id: test-req-42" "$U/healthz"
[ "$(header x-request-id)" = test-req-42 ] || fail "X-Request-Id not echoed: '$(header x-request-id)'"
req "$U/healthz"
id=$(header x-request-id)
printf '%s' "$id" | grep -Eq '^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$' ||
    fail "generated request id '$id' is not a UUIDv7"
long=$(printf 'x%.0s' $(seq 129))
req -H "X-Request-Id: $long" "$U/healthz"
[ "$(header x-request-id)" != "$long" ] || fail "a 129-character request id was accepted"
req -H "X-Request-Id: a b" "$U/healthz"
[ "$(header x-request-id)" != "a b" ] || fail "a request id with a space was accepted"
req --http2-prior-knowledge -H "X-Request-Id: h2-req-7" "$U/nope"
[ "$(header x-request-id)" = h2-req-7 ] || fail "X-Request-Id not echoed over h2c"

# Bodies over the limit (1 MiB): 413 in the JSON shape, whether announced or chunked.
head -c 1100000 /dev/zero >"$tmp/big"
req -X POST -H "Content-Type: application/json" --data-binary "@$tmp/big" "$U/healthz"
expect 413 "oversized body"
expect_body '{"error":{"code":"payload_too_large","message":"request body too large","field":null}}' "413"
[ -n "$(header x-request-id)" ] || fail "413 without X-Request-Id"
req -X POST -H "Transfer-Encoding: chunked" --data-binary "@$tmp/big" "$U/healthz"
expect 413 "oversized chunked body"
# A body within the limit reaches routing (405 here, since /healthz takes no POST).
req -X POST --data-binary '{}' "$U/healthz"
expect 405 "small body"

# Headers over the limit (32 KiB): 431.
big_header=$(head -c 40000 /dev/zero | tr '\0' a)
req -H "X-Filler: $big_header" "$U/healthz"
expect 431 "oversized headers"
case "$body" in '{"error":{"code":"headers_too_large",'*) ;; *) fail "431 body: $body" ;; esac

# A second server on the same port: one clear line, exit 1.
rc=0
"$B" serve --database-url "$dburl" --listen "127.0.0.1:$main_port" >"$tmp/second.out" 2>"$tmp/second.err" || rc=$?
[ "$rc" -eq 1 ] || fail "second server on a used port: exit $rc, want 1"
[ "$(grep -c . "$tmp/second.err")" -eq 1 ] || fail "second server: want one line, got: $(cat "$tmp/second.err")"
grep -q "^switchboard: cannot listen on 127.0.0.1:$main_port: address already in use$" "$tmp/second.err" ||
    fail "second server: $(cat "$tmp/second.err")"

# Graceful shutdown.  An idle keep-alive connection must not hold the exit; a request still
# arriving when the signal comes is answered (and told the connection closes).
exec 3<>"/dev/tcp/127.0.0.1/$main_port"
printf 'GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n' >&3
IFS= read -r -t 10 status_line <&3 || fail "keep-alive request: no response"
case "$status_line" in "HTTP/1.1 200 OK"*) ;; *) fail "keep-alive request: $status_line" ;; esac
exec 4<>"/dev/tcp/127.0.0.1/$main_port"
printf 'GET /healthz HTTP/1.1\r\nHost: t\r\nX-Request-Id: inflight\r\nContent-Length: 10\r\n\r\n12345' >&4
t0=$(now_ms)
kill -TERM "$main_pid"
deadline=$(($(now_ms) + 10000))
until grep -q "serve: received SIGTERM" "$tmp/main.log"; do
    [ "$(now_ms)" -lt "$deadline" ] || fail "the server did not log the signal"
    sleep 0.02
done
printf '67890' >&4
response=$(timeout 10 cat <&4 | tr -d '\r') || true
exec 4>&-
case "$response" in "HTTP/1.1 200 OK"*) ;; *) fail "in-flight request after SIGTERM: '$response'" ;; esac
printf '%s\n' "$response" | grep -qi '^connection: close$' || fail "in-flight response without Connection: close"
rc=0
wait "$main_pid" || rc=$?
elapsed=$(($(now_ms) - t0))
pids=$(echo "$pids" | sed "s/ $main_pid\b//")
exec 3>&-
[ "$rc" -eq 0 ] || fail "main: exit status $rc after SIGTERM, want 0"
# Well inside the 10 s grace period: nothing waited for the idle connection.
[ "$elapsed" -le 6000 ] || fail "main: took ${elapsed} ms to exit"
grep -q "serve: stopped" "$tmp/main.log" || fail "no 'stopped' line"

# The log: one access line per request, the start-up facts, and never the password.
grep -q 'http: GET /healthz 200 bytes=15 ms=[0-9.]* proto=1.1 id=test-req-42$' "$tmp/main.log" ||
    fail "no access-log line for the request with id test-req-42"
grep -q 'http: GET /nope 404 bytes=[0-9]* ms=[0-9.]* proto=2 id=h2-req-7$' "$tmp/main.log" ||
    fail "no access-log line for the h2c 404"
grep -q 'http: GET /v1/no/such/thing 404 ' "$tmp/main.log" || fail "access log: the query string was not stripped"
grep -q 'http: GET /healthz 200 .* id=inflight$' "$tmp/main.log" || fail "no access-log line for the in-flight request"
grep -q "serve: listening on http://127.0.0.1:$main_port threads=2 public_url=" "$tmp/main.log" ||
    fail "start-up line without the address, threads or public URL"
grep -q "serve: database .*password=\*\*\*" "$tmp/main.log" || fail "the database line does not show a redacted password"
if grep -q "$secret" "$tmp/main.log"; then fail "the database password appears in the log"; fi

# ---- TLS with ALPN --------------------------------------------------------------------------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj "/CN=localhost" \
    -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" -keyout "$tmp/key.pem" -out "$tmp/cert.pem" \
    >/dev/null 2>&1 || fail "openssl could not make a certificate"
start tls --database-url "$conninfo" --listen 127.0.0.1:0 --tls-cert "$tmp/cert.pem" --tls-key "$tmp/key.pem"
tls_pid=$pid
grep -q "serve: listening on https://" "$tmp/tls.log" || fail "TLS server does not say https"
T=https://127.0.0.1:$port
req --cacert "$tmp/cert.pem" --http2 "$T/healthz"
expect 200 "healthz over TLS"
[ "$ver" = 2 ] || fail "TLS with ALPN: HTTP version $ver, want 2"
req --cacert "$tmp/cert.pem" --http1.1 "$T/readyz"
[ "$ver" = 1.1 ] || fail "TLS with ALPN http/1.1: HTTP version $ver"
req --cacert "$tmp/cert.pem" "$T/nope"
expect 404 "unknown route over TLS"
req "http://127.0.0.1:$port/healthz"
[ "$code" = 000 ] || fail "plain HTTP on the TLS port answered $code"
stop tls "$tls_pid" 10000

rc=0
"$B" serve --database-url "$conninfo" --listen 127.0.0.1:0 --tls-cert "$tmp/nope.pem" --tls-key "$tmp/key.pem" \
    >/dev/null 2>"$tmp/badtls.err" || rc=$?
[ "$rc" -eq 1 ] || fail "missing certificate: exit $rc, want 1"
grep -q "^switchboard: cannot load TLS certificate '$tmp/nope.pem'" "$tmp/badtls.err" ||
    fail "missing certificate: $(cat "$tmp/badtls.err")"

# ---- the embedded default, on the port the first server freed --------------------------------
embedded_dir=$tmp/var
start embedded --data-dir "$embedded_dir" --listen "127.0.0.1:$main_port"
emb_pid=$pid
[ "$port" = "$main_port" ] || fail "embedded server listens on $port, not $main_port"
wait_ready "http://127.0.0.1:$port/readyz"
grep -q "serve: database embedded cluster at $embedded_dir/pg (started)" "$tmp/embedded.log" ||
    fail "embedded: no database line"
# Readiness follows the database: down while the cluster is stopped, back once it returns.
SWITCHBOARD_DATA_DIR=$embedded_dir "$B" db stop >/dev/null 2>&1 || fail "embedded: db stop failed"
deadline=$(($(now_ms) + 30000))
while :; do
    req "http://127.0.0.1:$port/readyz"
    [ "$code" = 503 ] && break
    [ "$(now_ms)" -lt "$deadline" ] || fail "/readyz still $code with the database stopped"
    sleep 0.05
done
expect_body '{"error":{"code":"not_ready","message":"database unavailable","field":null}}' "readyz while down"
[ "$(header retry-after)" = 1 ] || fail "503 from /readyz without Retry-After"
req "http://127.0.0.1:$port/healthz"
expect 200 "healthz with the database stopped"
SWITCHBOARD_DATA_DIR=$embedded_dir "$B" db start >/dev/null 2>&1 || fail "embedded: db start failed"
wait_ready "http://127.0.0.1:$port/readyz"
stop embedded "$emb_pid" 20000
grep -q "serve: embedded cluster stopped" "$tmp/embedded.log" || fail "embedded: the cluster was not stopped"
real=$(cd "$embedded_dir/pg/data" && pwd -P)
for p in /proc/[0-9]*; do
    if [ "$(readlink "$p/cwd" 2>/dev/null)" = "$real" ]; then
        st=$(sed -n 's/^.*) \(.\).*$/\1/p' "$p/stat" 2>/dev/null) || continue
        [ "$st" = Z ] || fail "a postgres process (${p#/proc/}) still runs in $real"
    fi
done
embedded_dir=""

# ---- usage ----------------------------------------------------------------------------------
rc=0
"$B" serve --help >"$tmp/help.out" 2>&1 || rc=$?
[ "$rc" -eq 0 ] && grep -q "usage: switchboard serve" "$tmp/help.out" || fail "serve --help: exit $rc"
rc=0
"$B" serve bogus >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 2 ] || fail "serve with a stray argument: exit $rc, want 2"

echo "ok"
