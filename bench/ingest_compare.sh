#!/usr/bin/env bash
# Side-by-side ingest benchmark (issue "Dedup engine"): a real layer v1 of this machine's files
# (default 1 GiB, mostly new to the store) and its next version v2 (about 95 % unchanged: some files
# patched, some appended to, a few removed, new ones added), measured in one run against
# `zstd -3 -T2` on the same tars and `casync make` into a casync store at the same chunk sizes.
# Reports MB/s, peak RSS and bytes stored for v2, with ratios, the time per GB of each ingest step,
# and the cut step with the scalar kernel against the default (STRATA_BENCH_CUT_RUNS=3). Usage:
#   bench/ingest_compare.sh [PATH_TO_STRATA] [WORK_DIR]      (STRATA_BENCH_MIB=1024 by default)
set -euo pipefail
tool=$(realpath "${1:-build/tools/strata}")
work=${2:-build/bench-ingest}
size_mib=${STRATA_BENCH_MIB:-1024}
threads=${STRATA_BENCH_THREADS:-2}
for needed in zstd casync /usr/bin/time python3 tar; do
  command -v "$needed" >/dev/null || { echo "missing $needed (make deps installs it)" >&2; exit 1; }
done
rm -rf "$work" && mkdir -p "$work/v1"
work=$(realpath "$work")

echo "== building v1 (${size_mib} MiB of this machine's files) and v2" >&2
find /usr/lib /usr/share /usr/bin -type f -size +16k -printf '%s %p\n' 2>/dev/null | sort -k2 |
  awk -v cap=$((size_mib << 20)) '{ if (total + $1 <= cap) { total += $1; print $2 } }' >"$work/files.txt"
tar --files-from="$work/files.txt" -cf - 2>/dev/null | tar -C "$work/v1" -xf -
cp -a "$work/v1" "$work/v2"
python3 - "$work/v2" <<'PY'
import os, random, sys
root = sys.argv[1]
rng = random.Random(2026)
files = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs)
total = sum(os.path.getsize(f) for f in files)
changed = 0
# Patch bytes inside ~2 % of the files, append to ~1 %, remove ~1 %, add new data ~2 % of the bytes.
for path in rng.sample(files, max(1, len(files) // 50)):
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        for _ in range(3):
            f.seek(rng.randrange(max(size - 256, 1)))
            f.write(rng.randbytes(256))
    changed += 768
for path in rng.sample(files, max(1, len(files) // 100)):
    with open(path, "ab") as f:
        f.write(rng.randbytes(4096))
for path in rng.sample(files, max(1, len(files) // 100)):
    if os.path.exists(path):
        os.remove(path)
added = 0
while added < total // 50:
    data = bytes(rng.randrange(64) for _ in range(1 << 16)) * rng.randrange(1, 16)
    with open(os.path.join(root, f"new-{added}.bin"), "wb") as f:
        f.write(data)
    added += len(data)
PY
for v in v1 v2; do
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 --format=pax \
    --pax-option=delete=atime,delete=ctime -C "$work/$v" -cf "$work/$v.tar" .
  rm -rf "${work:?}/$v"
done

measure() {  # label, command...: prints "seconds peak_kib" after running the command
  local label=$1; shift
  /usr/bin/time -f '%e %M' -o "$work/$label.time" "$@" >"$work/$label.out" 2>"$work/$label.err"
}
sync
measure zstd_v1 zstd -q -3 -T"$threads" -f "$work/v1.tar" -o "$work/v1.tar.zst"
measure zstd_v2 zstd -q -3 -T"$threads" -f "$work/v2.tar" -o "$work/v2.tar.zst"
measure strata_v1 "$tool" ingest --json --threads "$threads" --store "$work/store" "$work/v1.tar"
cp -a "$work/store" "$work/store-trust"
cp -a "$work/store" "$work/store-delta"
measure strata_v2 "$tool" ingest --json --threads "$threads" --store "$work/store" "$work/v2.tar"
measure strata_v2_delta "$tool" ingest --json --threads "$threads" --delta-base auto \
  --store "$work/store-delta" "$work/v2.tar"
measure strata_v2_trust "$tool" ingest --json --threads "$threads" --trust local \
  --store "$work/store-trust" "$work/v2.tar"
# The cut step's kernel in the same sitting: v1 ingested again into the store that holds it (no
# compression, so little else competes for the cores), alternating the scalar kernel and the
# measured default, STRATA_BENCH_CUT_RUNS times each; compared by the scans' thread CPU time.
cut_runs=${STRATA_BENCH_CUT_RUNS:-3}
default_kernel=$(env -u STRATA_KERNEL "$tool" kernels --json | python3 -c \
  'import json, sys; print(next(k["name"] for k in json.load(sys.stdin)["kernels"] if k["active"]))')
for run in $(seq "$cut_runs"); do
  STRATA_KERNEL=scalar "$tool" ingest --json --threads "$threads" --store "$work/store" \
    "$work/v1.tar" >"$work/cut_scalar_$run.out"
  env -u STRATA_KERNEL "$tool" ingest --json --threads "$threads" --store "$work/store" \
    "$work/v1.tar" >"$work/cut_default_$run.out"
done
mkdir -p "$work/castore"
measure casync_v1 casync make --compression=zstd --chunk-size=16384:65536:262144 \
  --store="$work/castore" "$work/v1.caibx" "$work/v1.tar"
casync_after_v1=$(du -sb "$work/castore" | cut -f1)
measure casync_v2 casync make --compression=zstd --chunk-size=16384:65536:262144 \
  --store="$work/castore" "$work/v2.caibx" "$work/v2.tar"
casync_after_v2=$(du -sb "$work/castore" | cut -f1)

python3 - "$work" "$casync_after_v1" "$casync_after_v2" "$threads" "$cut_runs" "$default_kernel" <<'PY'
import json, os, statistics, sys
work, ca1, ca2, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
cut_runs, default_kernel = int(sys.argv[5]), sys.argv[6]
def timing(label):
    seconds, kib = open(f"{work}/{label}.time").read().split()[-2:]
    return float(seconds), int(kib)
size = {v: os.path.getsize(f"{work}/{v}.tar") for v in ("v1", "v2")}
rows = []
for label, version in [("zstd_v1", "v1"), ("zstd_v2", "v2"), ("casync_v1", "v1"), ("casync_v2", "v2"),
                       ("strata_v1", "v1"), ("strata_v2", "v2"), ("strata_v2_delta", "v2"),
                       ("strata_v2_trust", "v2")]:
    seconds, kib = timing(label)
    rows.append((label, version, size[version] / 1e6 / seconds, kib / 1024, seconds))
speed = {r[0]: r[2] for r in rows}
print(f"layer v1 {size['v1'] / 2**20:.0f} MiB, v2 {size['v2'] / 2**20:.0f} MiB (tar); {threads} threads; one run")
print(f"{'run':<18}{'MB/s':>9}{'peak RSS MiB':>14}{'seconds':>9}{'vs zstd -3 -T' + threads:>16}")
for label, version, mbps, rss, seconds in rows:
    print(f"{label:<18}{mbps:9.0f}{rss:14.0f}{seconds:9.2f}{mbps / speed['zstd_' + version]:15.2f}x")
v2 = json.loads(open(f"{work}/strata_v2.out").read())
v2t = json.loads(open(f"{work}/strata_v2_trust.out").read())
v2d = json.loads(open(f"{work}/strata_v2_delta.out").read())
zstd_v2 = os.path.getsize(f"{work}/v2.tar.zst")
strata_v2_bytes = v2["new_stored_bytes"] + v2["recipe_bytes"]
print()
print(f"v2 bytes stored: strata {strata_v2_bytes / 2**20:.1f} MiB, casync store growth "
      f"{(ca2 - ca1) / 2**20:.1f} MiB, zstd -3 of v2 {zstd_v2 / 2**20:.1f} MiB")
print(f"ratios: strata v2 / zstd -T{threads} speed {speed['strata_v2'] / speed['zstd_v2']:.2f}x, "
      f"with --delta-base auto {speed['strata_v2_delta'] / speed['zstd_v2']:.2f}x "
      f"({v2d['delta_chunks']} of {v2d['new_chunks']} new chunks as deltas, "
      f"{(v2d['new_stored_bytes'] + v2d['recipe_bytes']) / 2**20:.1f} MiB stored), "
      f"with --trust local {speed['strata_v2_trust'] / speed['zstd_v2']:.2f}x "
      f"({v2t['fingerprint_hits']} chunks by fingerprint), strata v2 / casync v2 "
      f"{speed['strata_v2'] / speed['casync_v2']:.2f}x, strata v1 / zstd -T{threads} "
      f"{speed['strata_v1'] / speed['zstd_v1']:.2f}x; v2 bytes strata / casync "
      f"{strata_v2_bytes / max(ca2 - ca1, 1):.2f}")
print()
print("strata seconds per GB of tar, by step (reliability.md §5: the cost of P3 is 'verify'): wall")
print("seconds of each step's calls summed over threads, except cut_scan_cpu: the thread CPU time of")
print("the chunker's scans alone (cut_wall, the old 'cut', adds what the chunker buffers and the")
print("listing of chunks in batches)")
steps = ["read_and_cut", "cut_wall", "cut_scan_cpu", "hash", "compress", "verify", "write", "commit"]
print(f"{'run':<18}" + "".join(f"{s:>14}" for s in steps))
for label in ("strata_v1", "strata_v2", "strata_v2_delta", "strata_v2_trust"):
    r = json.loads(open(f"{work}/{label}.out").read())
    gb = r["tar_bytes"] / 1e9
    print(f"{label:<18}" + "".join(f"{r['stage_seconds'][s] / gb:14.3f}" for s in steps))

def cut_step(kernel, key):
    values = []
    for run in range(1, cut_runs + 1):
        r = json.loads(open(f"{work}/cut_{kernel}_{run}.out").read())
        values.append(r["stage_seconds"][key] / (r["tar_bytes"] / 1e9))
    return values
print()
print(f"cut step of v1 (re-ingest, {cut_runs} alternating runs each), seconds per GB, median [runs]:")
for key in ("cut_scan_cpu", "cut_wall"):
    scalar, chosen = cut_step("scalar", key), cut_step("default", key)
    print(f"  {key:<13} scalar {statistics.median(scalar):.3f} {[round(v, 3) for v in scalar]}, "
          f"{default_kernel} {statistics.median(chosen):.3f} {[round(v, 3) for v in chosen]}: "
          f"scalar / {default_kernel} {statistics.median(scalar) / max(statistics.median(chosen), 1e-9):.2f}x")
PY
