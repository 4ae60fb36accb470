#!/usr/bin/env bash
# Compares the functions libstrata.so exports (nm -D --defined-only, version suffixes and the
# version node itself dropped, sorted) with the committed list capi/exported_symbols.txt, so any
# change of the C ABI's surface is a deliberate edit of that list. Usage: SO LIST
set -euo pipefail
so=${1:?usage: check_exported_symbols.sh LIBSTRATA_SO EXPORTED_SYMBOLS_TXT}
list=${2:?usage: check_exported_symbols.sh LIBSTRATA_SO EXPORTED_SYMBOLS_TXT}
actual=$(nm -D --defined-only "$so" | awk '$2 != "A" { sub(/@.*/, "", $3); print $3 }' | LC_ALL=C sort -u)
expected=$(grep -v '^#' "$list" | sed '/^$/d' | LC_ALL=C sort -u)
if [ "$actual" != "$expected" ]; then
  echo "FAIL: exported symbols of $so differ from $list (< exported, > listed):"
  diff <(echo "$actual") <(echo "$expected") || true
  exit 1
fi
echo "ok: $(echo "$actual" | wc -l) exported symbols match $list"
