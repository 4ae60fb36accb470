#!/usr/bin/env bash
# Function-size lint (ctest `function_size`, label `lint`; DESIGN.md §2 "functions read in one
# screen"): runs clang-tidy 14 with only readability-function-size, LineThreshold 150 (lines of a
# function body, blank lines and comments included), over every library and tool .cpp (core/,
# formats/, simd/, registry/, tools/, capi/; not tests) listed in the build's
# compile_commands.json, files in parallel. Every function over the threshold fails the check,
# except the ones listed in scripts/function_size_allowlist.txt (path:function, a stop-gap for
# code another branch is splitting). Usage: check_function_size.sh BUILD_DIR [JOBS]
set -euo pipefail

readonly line_threshold=150
build_dir=$(cd "${1:?usage: check_function_size.sh BUILD_DIR [JOBS]}" && pwd)
jobs=${2:-$(nproc)}
root=$(cd "$(dirname "$0")/.." && pwd)
allowlist="$root/scripts/function_size_allowlist.txt"

clang_tidy=$(command -v clang-tidy-14 || command -v clang-tidy || true)
if [ -z "$clang_tidy" ]; then
  echo "clang-tidy not found (Debian package clang-tidy; scripts/install-deps.sh installs it)" >&2
  exit 1
fi
if [ ! -f "$build_dir/compile_commands.json" ]; then
  echo "$build_dir/compile_commands.json missing (CMAKE_EXPORT_COMPILE_COMMANDS)" >&2
  exit 1
fi

files=$(python3 - "$build_dir/compile_commands.json" "$root" <<'PY'
import json, os, sys
root = sys.argv[2] + "/"
seen = set()
for entry in json.load(open(sys.argv[1])):
    path = os.path.normpath(os.path.join(entry["directory"], entry["file"]))
    rel = path[len(root):] if path.startswith(root) else ""
    if rel.split("/")[0] in {"core", "formats", "simd", "registry", "tools", "capi"} \
            and "/tests/" not in rel and rel.endswith(".cpp") and rel not in seen:
        seen.add(rel)
        print(path)
PY
)
[ -n "$files" ] || { echo "no library or tool sources in compile_commands.json" >&2; exit 1; }

config="{Checks: '-*,readability-function-size', WarningsAsErrors: '*',
  CheckOptions: [{key: readability-function-size.LineThreshold, value: $line_threshold}]}"
# -Wno-error: the compile flags are gcc's; a warning only clang gives must not read as a finding.
output=$(printf '%s\n' $files | xargs -P "$jobs" -n 4 "$clang_tidy" -p "$build_dir" --quiet \
  --extra-arg=-Wno-error --config="$config" 2>&1 || true)

allowed=()
if [ -f "$allowlist" ]; then
  while IFS= read -r line; do
    line=${line%%#*}
    line=${line//[[:space:]]/}
    [ -n "$line" ] && allowed+=("$line")
  done <"$allowlist"
fi

failures=0
used=()
show_notes=false
while IFS= read -r line; do
  if [[ "$line" != *"error:"* ]]; then
    # clang-tidy's notes under a finding say how far over it is ("N lines including ...").
    if $show_notes && [[ "$line" == *"note:"* ]]; then echo "$line"; fi
    continue
  fi
  show_notes=false
  if [[ "$line" =~ ^$root/([^:]+):[0-9]+:[0-9]+:\ error:\ function\ \'([^\']+)\'\ exceeds ]]; then
    key="${BASH_REMATCH[1]}:${BASH_REMATCH[2]}"
    for entry in "${allowed[@]}"; do
      if [ "$entry" = "$key" ]; then
        used+=("$key")
        continue 2
      fi
    done
  fi
  echo "$line"
  show_notes=true
  failures=$((failures + 1))
done <<<"$output"

for entry in "${allowed[@]}"; do
  if ! printf '%s\n' "${used[@]}" | grep -qxF "$entry"; then
    echo "note: $entry is under $line_threshold lines now: remove it from $allowlist"
  fi
done
count=$(printf '%s\n' $files | wc -l)
if [ "$failures" -ne 0 ]; then
  echo "$failures finding(s) in $count files: split each function over $line_threshold lines" \
    "into named steps (clang-tidy readability-function-size)" >&2
  exit 1
fi
echo "function size: $count files, every function within $line_threshold lines" \
  "(${#used[@]} allow-listed)"
