#!/usr/bin/env bash
# The main job of `make run` at this stage: chunk real files of this machine (its shared
# libraries) with strata's FastCDC chunker and show what a user wants to see: chunks, sizes, how
# many chunks repeat across the files, and throughput.
set -euo pipefail
tool=${1:?usage: run-demo.sh PATH_TO_STRATA}

mapfile -t files < <(find /usr/lib/x86_64-linux-gnu -maxdepth 1 -type f -name '*.so*' -size +1M \
  | sort | head -n 40)
if [ ${#files[@]} -eq 0 ]; then
  mapfile -t files < <(find /usr/bin -type f -size +200k | sort | head -n 40)
fi
echo "== strata $("$tool" --version | awk '{print $2}') — kernels on this CPU"
"$tool" kernels
echo
echo "== chunking ${#files[@]} shared libraries of this machine (FastCDC 2020, 16/64/256 KiB)"
json=$(mktemp)
trap 'rm -f "$json"' EXIT
"$tool" chunk --json "${files[@]}" >"$json"
python3 - "$json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
seen = {}
total = 0
for f in report["files"]:
    for c in f["chunk_list"]:
        total += c["length"]
        seen.setdefault(c["digest"], c["length"])
unique = sum(seen.values())
chunks = sum(f["chunks"] for f in report["files"])
seconds = sum(f["seconds"] for f in report["files"])
print(f"{'file':<52} {'size':>10} {'chunks':>7} {'mean':>8}")
for f in report["files"]:
    print(f"{f['path'][-52:]:<52} {f['bytes']/2**20:>8.1f}Mi {f['chunks']:>7} {f['mean_size']/1024:>6.1f}Ki")
print()
print(f"input        {total/2**20:.1f} MiB in {chunks} chunks ({len(seen)} distinct)")
print(f"unique bytes {unique/2**20:.1f} MiB -> dedup ratio {total/max(unique,1):.3f}x")
print(f"throughput   {total/1e6/max(seconds,1e-9):.0f} MB/s (chunking + SHA-256 per chunk, kernel {report['kernel']})")
PY
