#!/usr/bin/env bash
# The main job of `make run`: two versions of a real layer built from this machine's shared
# libraries (v2 = v1 with a few files changed, two removed and some added), compressed with zstd as
# a registry would hold them, ingested into a fresh embedded store. Prints what v2 cost in new bytes
# next to plain `zstd -3` of it, the bytes a client holding v1 would fetch, throughput, and proves
# the export is byte-exact (its sha256 equals the diff_id).
set -euo pipefail
tool=$(realpath "${1:?usage: run-demo.sh PATH_TO_STRATA [WORK_DIR]}")
work=${2:-build/demo}
budget_mib=${STRATA_DEMO_MIB:-400}
rm -rf "$work" && mkdir -p "$work/v1" "$work/v2"
work=$(realpath "$work")

# v1: the largest-first shared libraries of this machine, up to the budget.
mapfile -t libs < <(find /usr/lib/x86_64-linux-gnu /usr/lib -maxdepth 1 -type f -name '*.so*' \
  -printf '%s %p\n' 2>/dev/null | sort -k2 -u | sort -rn | awk -v cap=$((budget_mib << 20)) \
  '{ if (total + $1 <= cap) { total += $1; print $2 } }' | sort)
[ ${#libs[@]} -gt 3 ] || { echo "not enough shared libraries found on this machine" >&2; exit 1; }
for lib in "${libs[@]}"; do cp "$lib" "$work/v1/"; done
cp -r "$work/v1/." "$work/v2/"

# v2: patch bytes inside 3 files, append to 2, remove 2, add a few new programs.
mapfile -t names < <(cd "$work/v2" && ls | sort)
count=${#names[@]}
python3 - "$work/v2" "${names[$((count / 5))]}" "${names[$((count / 3))]}" "${names[$((count / 2))]}" <<'PY'
import os, sys
root = sys.argv[1]
for i, name in enumerate(sys.argv[2:]):
    path = os.path.join(root, name)
    with open(path, "r+b") as f:
        size = os.path.getsize(path)
        for k in range(4):
            f.seek(size * (k + 1) // 6)
            f.write(bytes([(i * 37 + k) & 0xFF]) * 512)
PY
printf 'strata demo patch level 2\n' >>"$work/v2/${names[1]}"
head -c 300000 /dev/urandom >>"$work/v2/${names[2]}"
rm -f "$work/v2/${names[3]}" "$work/v2/${names[4]}"
for program in /usr/bin/cmake /usr/bin/python3 /usr/bin/gdb; do
  [ -f "$program" ] && cp -L "$program" "$work/v2/"
done

make_layer() {  # deterministic tar, then zstd -3 like a registry's tar+zstd layer
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 --format=pax \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime -C "$work/$1" -cf "$work/$1.tar" .
  zstd -q -3 -T0 -f "$work/$1.tar" -o "$work/$1.tar.zst"
}
make_layer v1
make_layer v2

store="$work/store"
echo "== strata $("$tool" --version | awk '{print $2}'), kernel $("$tool" kernels --json | python3 -c 'import json,sys; print([k["name"] for k in json.load(sys.stdin)["kernels"] if k["active"]][0])')"
echo "== ingesting two versions of a ${budget_mib} MiB layer of this machine's shared libraries"
"$tool" ingest --store "$store" --json "$work/v1.tar.zst" >"$work/v1.json"
"$tool" ingest --store "$store" --json "$work/v2.tar.zst" >"$work/v2.json"
"$tool" export --store "$store" "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["diff_id"])' "$work/v2.json")" \
  -o "$work/v2.exported.tar" >/dev/null
python3 - "$work" <<'PY'
import hashlib, json, os, sys
work = sys.argv[1]
v1 = json.load(open(f"{work}/v1.json"))
v2 = json.load(open(f"{work}/v2.json"))
mib = lambda n: f"{n / 2**20:8.1f} MiB"
def line(label, r):
    print(f"{label:<4} tar {mib(r['tar_bytes'])}  blob {mib(r['input_bytes'])}  new chunks {r['new_chunks']:>6}"
          f"  stored +{mib(r['new_stored_bytes'])}  {r['mb_per_second']:7.0f} MB/s")
line("v1", v1)
line("v2", v2)
zstd_v2 = os.path.getsize(f"{work}/v2.tar.zst")
added = v2["new_stored_bytes"] + v2["recipe_bytes"]
print()
print(f"v2 as a plain zstd -3 layer:        {mib(zstd_v2)}  (what a registry stores and a client pulls today)")
print(f"v2 added to the strata store:       {mib(added)}  ({zstd_v2 / max(added, 1):.1f}x less)")
print(f"bytes a client holding v1 fetches:  {mib(v2['new_stored_bytes'])}  ({100 * v2['new_stored_bytes'] / max(zstd_v2, 1):.2f}% of the layer)")
total_tar = v1["tar_bytes"] + v2["tar_bytes"]
stored = v1["new_stored_bytes"] + v1["recipe_bytes"] + added
print(f"store dedup ratio (both layers):    {total_tar / max(stored, 1):.2f}x  ({mib(total_tar)} of tar in {mib(stored)})")
h = hashlib.sha256()
with open(f"{work}/v2.exported.tar", "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
        h.update(block)
exact = "sha256:" + h.hexdigest() == v2["diff_id"]
print(f"export of v2 byte-exact:            {'yes' if exact else 'NO'} ({v2['diff_id'][:19]}...)")
sys.exit(0 if exact else 1)
PY
echo
"$tool" stats --store "$store"
"$tool" verify --store "$store"
