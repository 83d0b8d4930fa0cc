#!/bin/sh
# Builds and runs the libFuzzer drivers: every tests/fuzz/fuzz_<name>.c, each on its seed corpus
# tests/fuzz/corpus/<name>/ (optional), for FUZZ_SECONDS (default 10) seconds.
#
# Usage: tests/fuzz/run.sh [BUILD_DIR [NAME...]]
#   BUILD_DIR  where objects, binaries, working corpora and crash artifacts go (default build-fuzz)
#   NAME       run only these drivers (e.g. `codec` for fuzz_codec.c)
# Environment: FUZZ_SECONDS, CC (default clang), FUZZ_JOBS (parallel compiles, default nproc).
#
# All of src/ except main.c is compiled once, with sanitizers and coverage instrumentation, into a
# static archive; each driver links against it, so the linker takes only the objects that driver
# reaches.  A new driver needs nothing here: drop in fuzz_<name>.c and corpus/<name>/.
# libFuzzer adds the inputs it finds to BUILD_DIR/corpus/<name>, never to the committed seeds; a
# crash leaves BUILD_DIR/artifacts/<name>-crash-*, which reproduces with
# `BUILD_DIR/fuzz_<name> FILE`.  Exits non-zero if anything fails to build or any driver fails.
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-build-fuzz}
[ $# -gt 0 ] && shift
case "$out" in /*) ;; *) out="$(pwd)/$out" ;; esac
seconds=${FUZZ_SECONDS:-10}
cc=${CC:-clang}
jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 2)}

if ! command -v "$cc" >/dev/null 2>&1; then
    echo "fuzz: $cc not found (scripts/deps.sh test installs clang and libclang-rt-14-dev)" >&2
    exit 1
fi

# The project's libraries that pkg-config knows here (the CMake build requires all of them).
pkgs=""
for p in libuv libh2o libpq msgpack libcurl libsodium jansson openssl; do
    pkg-config --exists "$p" 2>/dev/null && pkgs="$pkgs $p"
done
# shellcheck disable=SC2086
pkg_cflags=$(pkg-config --cflags $pkgs)
# shellcheck disable=SC2086
pkg_libs=$(pkg-config --libs $pkgs)

san="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
cflags="-std=c11 -D_GNU_SOURCE -g -O1 -Wall -Wextra -Wno-unused-parameter $san -I$root/src"
# The quotes are meant literally: config.c pastes SB_SOURCE_DIR into a C string.
# shellcheck disable=SC2089
cflags="$cflags -DSB_SOURCE_DIR=\"$root\" $pkg_cflags"
# shellcheck disable=SC2090
export cc cflags

mkdir -p "$out/obj" "$out/corpus" "$out/artifacts"

# ---- the archive -------------------------------------------------------------------------------
# An object is rebuilt when missing or older than its source or than any header under src/.
newest_header=$(find "$root/src" -name '*.h' -newer "$out/obj/.stamp" 2>/dev/null | head -n 1 || true)
[ -f "$out/obj/.stamp" ] || newest_header=rebuild
srcs=$(cd "$root" && find src -name '*.c' ! -path src/main.c | sort)
stale=""
objs=""
for s in $srcs; do
    o="$out/obj/$(echo "$s" | tr / _ | sed 's/\.c$/.o/')"
    objs="$objs $o"
    if [ -n "$newest_header" ] || [ ! -f "$o" ] || [ -n "$(find "$root/$s" -newer "$o")" ]; then
        stale="$stale $s:$o"
    fi
done
if [ -n "$stale" ]; then
    echo "fuzz: compiling $(echo "$stale" | wc -w | tr -d ' ') source file(s)" >&2
    # shellcheck disable=SC2016,SC2086
    if ! printf '%s\n' $stale | (cd "$root" && xargs -P "$jobs" -I{} sh -c '
            s=${1%%:*}; o=${1#*:}
            # shellcheck disable=SC2086
            $cc $cflags -fsanitize=fuzzer-no-link -c "$s" -o "$o.tmp" && mv "$o.tmp" "$o"' _ {}); then
        echo "fuzz: compiling src/ failed" >&2
        exit 1
    fi
fi
touch "$out/obj/.stamp"
lib="$out/libswitchboard-fuzz.a"
rm -f "$lib"
# shellcheck disable=SC2086
ar rcs "$lib" $objs

# ---- the drivers -------------------------------------------------------------------------------
if [ $# -gt 0 ]; then
    names="$*"
else
    names=$(find "$root/tests/fuzz" -maxdepth 1 -name 'fuzz_*.c' | sed 's|.*/fuzz_||; s/\.c$//' | sort)
fi
[ -n "$names" ] || { echo "fuzz: no drivers in tests/fuzz" >&2; exit 0; }

failed=""
for name in $names; do
    src="$root/tests/fuzz/fuzz_$name.c"
    bin="$out/fuzz_$name"
    if [ ! -f "$src" ]; then
        echo "fuzz: no driver tests/fuzz/fuzz_$name.c" >&2
        failed="$failed $name"
        continue
    fi
    # shellcheck disable=SC2086,SC2090
    if ! $cc $cflags -fsanitize=fuzzer "$src" -o "$bin" "$lib" $pkg_libs -lpthread -lm; then
        echo "fuzz: building fuzz_$name failed" >&2
        failed="$failed $name"
        continue
    fi
    work="$out/corpus/$name"
    seeds="$root/tests/fuzz/corpus/$name"
    mkdir -p "$work"
    [ -d "$seeds" ] || seeds=""
    log="$out/fuzz_$name.log"
    echo "fuzz: $name for ${seconds}s" >&2
    # shellcheck disable=SC2086
    if "$bin" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$out/artifacts/$name-" "$work" $seeds >"$log" 2>&1; then
        grep -E '^stat::number_of_executed_units' "$log" | sed "s/^/fuzz: $name: /" >&2 || true
    else
        echo "fuzz: $name FAILED (log: $log)" >&2
        tail -n 60 "$log" >&2
        failed="$failed $name"
    fi
done

if [ -n "$failed" ]; then
    echo "fuzz: failed:$failed" >&2
    exit 1
fi
echo "fuzz: all passed" >&2
