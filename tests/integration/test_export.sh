#!/bin/sh
# `switchboard events export|tail` against a real log: formats, every filter, bad usage, constant
# memory on a large log, and tail following live appends.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${SWITCHBOARD_BIN:?run through ctest}
DB=$("$HERE/../support/testdb.sh" create export)
"$HERE/../support/testdb.sh" migrate "$DB" >/dev/null
export SWITCHBOARD_DATABASE_URL="$DB" SWITCHBOARD_LOG=warn
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail() {
    echo "FAIL: $*" >&2
    exit 1
}
q() { psql -X -q -At -v ON_ERROR_STOP=1 "$DB" -c "$1"; }

WS_A=11111111-1111-4111-8111-111111111111
WS_B=22222222-2222-4222-8222-222222222222
# N events over 100 streams, alternating contact/call categories and two workspaces. The payload
# is the msgpack map {"n": i, "s": "é\"\n"} (int32 and a string needing JSON escapes).
insert() { # FROM TO
    q "INSERT INTO events (stream, version, type, workspace_id, payload, metadata)
       SELECT CASE WHEN i % 2 = 0 THEN 'contact-' ELSE 'call-' END
                || '00000000-0000-4000-8000-' || lpad((i % 100)::text, 12, '0'),
              i / 100 + 1,
              CASE WHEN i % 4 < 2 THEN 'ContactCreated' ELSE 'NoteAdded' END,
              CASE WHEN i % 3 = 0 THEN '$WS_A'::uuid ELSE '$WS_B'::uuid END,
              '\\x82a16ed2'::bytea || int4send(i) || '\\xa173a4c3a9220a'::bytea,
              '\\x81a6736f75726365a474657374'::bytea
       FROM generate_series($1, $2) AS i"
}
insert 0 999

# JSON Lines: every line parses, fields and escapes survive, positions increase.
"$BIN" events export >"$TMP/all.jsonl"
[ "$(wc -l <"$TMP/all.jsonl")" -eq 1000 ] || fail "export wrote $(wc -l <"$TMP/all.jsonl") lines, want 1000"
node -e '
const lines = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n");
let last = 0;
for (const l of lines) {
  const e = JSON.parse(l);
  for (const k of ["position","recorded_at","workspace","stream","version","type","data","metadata"])
    if (!(k in e)) throw new Error("missing " + k);
  if (e.position <= last) throw new Error("order");
  last = e.position;
  if (typeof e.data.n !== "number" || e.data.s !== "é\"\n") throw new Error("payload " + l);
  if (e.metadata.source !== "test") throw new Error("metadata");
  if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z$/.test(e.recorded_at)) throw new Error("time");
}' "$TMP/all.jsonl" || fail "jsonl content"

# CSV: a header and one quoted record per event (the payload holds a newline: quoted).
"$BIN" events export --format csv --output "$TMP/all.csv"
head -1 "$TMP/all.csv" | grep -q '^position,recorded_at,workspace,stream,version,type,data,metadata' || fail "csv header"
node -e '
const t = require("fs").readFileSync(process.argv[1], "utf8");
let rows = [], f = [], cur = "", q = false;
for (let i = 0; i < t.length; i++) {
  const c = t[i];
  if (q) { if (c === "\"" && t[i+1] === "\"") { cur += "\""; i++; } else if (c === "\"") q = false; else cur += c; }
  else if (c === "\"") q = true;
  else if (c === ",") { f.push(cur); cur = ""; }
  else if (c === "\r") {}
  else if (c === "\n") { f.push(cur); rows.push(f); f = []; cur = ""; }
  else cur += c;
}
if (rows.length !== 1001) throw new Error("rows " + rows.length);
for (const r of rows.slice(1)) { if (r.length !== 8) throw new Error("cols"); JSON.parse(r[6]); JSON.parse(r[7]); }
' "$TMP/all.csv" || fail "csv content"

# Filters, each checked against SQL over the same table.
count() { "$BIN" events export "$@" | wc -l; }
first=$(q "SELECT min(position) FROM events")
[ "$(count --type NoteAdded)" -eq "$(q "SELECT count(*) FROM events WHERE type='NoteAdded'")" ] || fail "--type"
[ "$(count --type NoteAdded,ContactCreated)" -eq 1000 ] || fail "--type list"
[ "$(count --category call)" -eq 500 ] || fail "--category"
[ "$(count --workspace $WS_A)" -eq "$(q "SELECT count(*) FROM events WHERE workspace_id='$WS_A'")" ] || fail "--workspace"
[ "$(count --stream contact-00000000-0000-4000-8000-000000000004)" -eq 10 ] || fail "--stream"
[ "$(count --from $((first + 10)) --to $((first + 19)))" -eq 10 ] || fail "--from/--to"
[ "$(count --since 2000-01-01 --until 2000-01-02)" -eq 0 ] || fail "--since/--until (empty)"
[ "$(count --since 2000-01-01T00:00:00Z)" -eq 1000 ] || fail "--since"
[ "$(count --category contact --type ContactCreated --workspace $WS_B)" -eq \
  "$(q "SELECT count(*) FROM events WHERE category='contact' AND type='ContactCreated' AND workspace_id='$WS_B'")" ] ||
    fail "combined filters"

# Bad usage: exit 2 and one line on stderr; nothing on stdout.
for args in "export --from x" "export --format xml" "export --workspace nope" "export --stream bad" \
    "export --bogus 1" "frobnicate" "export --since yesterday"; do
    set +e
    # shellcheck disable=SC2086
    "$BIN" events $args >"$TMP/out" 2>"$TMP/err"
    rc=$?
    set -e
    [ $rc -eq 2 ] || fail "'events $args' exited $rc, want 2"
    [ ! -s "$TMP/out" ] || fail "'events $args' wrote to stdout"
    [ "$(wc -l <"$TMP/err")" -eq 1 ] || fail "'events $args' stderr: $(cat "$TMP/err")"
done

# Constant memory: the peak RSS exporting 200,000 events stays close to exporting 1,000.
peak() { # runs export, returns the peak RSS in kB
    # AddressSanitizer's quarantine keeps freed memory resident on purpose; turn it off here.
    ASAN_OPTIONS="${ASAN_OPTIONS:-}:quarantine_size_mb=0" "$BIN" events export --output /dev/null &
    pid=$!
    hwm=0
    while kill -0 $pid 2>/dev/null; do
        v=$(sed -n 's/^VmHWM:[^0-9]*\([0-9]*\).*/\1/p' /proc/$pid/status 2>/dev/null || true)
        [ -n "$v" ] && hwm=$v
    done
    wait $pid || fail "export failed"
    echo "$hwm"
}
small=$(peak)
insert 1000 200999
big=$(peak)
echo "peak RSS: 1,000 events ${small} kB; 201,000 events ${big} kB"
[ "$big" -lt $((small + 32768)) ] || fail "export memory grew with the log: $small kB -> $big kB"

# tail: starts after a given position, prints new events as they commit, filtered, until SIGTERM.
end=$(q "SELECT max(position) FROM events")
"$BIN" events tail --from $((end + 1)) --category contact >"$TMP/tail" 2>"$TMP/tail.err" &
tail_pid=$!
insert 201000 201049
deadline=$(($(date +%s) + 20))
while [ "$(wc -l <"$TMP/tail")" -lt 25 ]; do
    [ "$(date +%s)" -lt $deadline ] || fail "tail printed $(wc -l <"$TMP/tail") of 25 events"
    kill -0 $tail_pid || fail "tail exited: $(cat "$TMP/tail.err")"
done
kill -TERM $tail_pid
wait $tail_pid || fail "tail did not exit 0 on SIGTERM"
[ "$(wc -l <"$TMP/tail")" -eq 25 ] || fail "tail printed $(wc -l <"$TMP/tail") lines, want 25"
node -e '
const ls = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map(JSON.parse);
let last = Number(process.argv[2]);
for (const e of ls) { if (!e.stream.startsWith("contact-") || e.position <= last) throw new Error(JSON.stringify(e)); last = e.position; }
' "$TMP/tail" "$end" || fail "tail content"

"$HERE/../support/testdb.sh" drop export
echo "ok"
