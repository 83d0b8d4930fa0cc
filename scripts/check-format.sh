#!/bin/sh
# Fails when a tracked C file does not follow .clang-format.
cd "$(dirname "$0")/.." || exit 1
files=$(git ls-files '*.c' '*.h' 2>/dev/null)
[ -n "$files" ] || exit 0
# shellcheck disable=SC2086
exec clang-format --dry-run -Werror $files
