#!/usr/bin/env bash
# Fault injection against the real `strata` CLI (shared/specs/reliability.md §5.3 F1, F2, F4, F5;
# DESIGN.md §3 "Nothing lost"). Source layers are tars of /usr/lib files made at test time
# (three overlapping layers of about 15-25 MiB, one of them gzip'ed), their SHA-256 kept.
#   (a) kill -9 of `strata ingest` at a random moment (fixed seed), and of `strata gc` beside it
#       or alone; after every kill `strata verify` must be clean, no layer listed before may
#       disappear, and every layer `strata ls` lists must export byte-identical to its source.
#   (b) disk full: a store on an 8 MiB tmpfs (or, where mounting is refused, a file-size limit
#       via `ulimit -f` with SIGXFSZ ignored, so writes fail with EFBIG): the ingest that does not
#       fit (12 MB of random bytes) fails with one line naming the write and ENOSPC, the store verifies, the earlier layer exports intact.
#   (c) STRATA_FAULT=fsync_fail:N / write_fail:N: the ingest fails with one line naming the
#       failed fsync / write, nothing
#       new becomes visible, the same ingest then succeeds.
#   (d) bit flips in pack files and in index.db of a copy of the store: verify reports every
#       pack flip, and export either refuses (no output file) or writes the exact source bytes.
#   (e) index.db flips on a small store, classified live (SQLite reads something else) or dead:
#       counts of each and of those verify reported; no export is ever wrong.
# Iterations: 20 kills by default, STRATA_LONG_FAULTS=1 for 100 (STRATA_FAULT_ITERATIONS=N sets
# any count; STRATA_INDEX_FLIPS=N the flips of (e), 60 by default, 300 long);
# STRATA_FAULT_NO_MOUNT=1 forces the ulimit fallback for (b).
# Usage: fault_injection.sh <strata tool> <work dir>
set -euo pipefail

strata=$1
work=$2
iterations=${STRATA_FAULT_ITERATIONS:-20}
[[ ${STRATA_LONG_FAULTS:-0} == 1 ]] && iterations=100
RANDOM=20261125

rm -rf "$work"
mkdir -p "$work/src"
mounted=
cleanup() { [[ -n $mounted ]] && umount "$mounted" 2>/dev/null || true; }
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# ---- source layers -------------------------------------------------------------------------
# Files of /usr/lib in name order, cut into three windows that overlap by half, so later layers
# dedup against earlier ones.
mapfile -t files < <(cd /usr/lib && find . -type f -size +16k -size -4M 2>/dev/null | LC_ALL=C sort |
  head -n 600)
((${#files[@]} >= 60)) || fail "not enough files under /usr/lib"
make_layer() { # name first count
  (cd /usr/lib && tar --format=pax --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
    -cf "$work/src/$1.tar" "${files[@]:$2:$3}")
}
third=$((${#files[@]} / 3))
make_layer l1 0 "$third"
make_layer l2 $((third / 2)) "$third"
make_layer l3 "$third" "$third"
gzip -1 -c "$work/src/l3.tar" >"$work/src/l3.tar.gz"
declare -A source_of # diff_id -> source tar
for name in l1 l2 l3; do
  source_of["sha256:$(sha256sum "$work/src/$name.tar" | cut -d' ' -f1)"]=$work/src/$name.tar
done
inputs=("$work/src/l1.tar" "$work/src/l2.tar" "$work/src/l3.tar.gz")
echo "sources: $(du -ch "$work"/src/l?.tar | tail -1 | cut -f1) in 3 tars of ${#files[@]} files"

# Checks a store: verify clean, every listed layer exports to its source bytes, and every layer
# in $2 (a file of diff_ids seen before) is still listed. Writes the listing to $3.
check_store() { # store seen_file listing_out
  "$strata" verify --store "$1" >"$work/verify.out" 2>&1 || {
    cat "$work/verify.out" >&2
    fail "verify of $1 not clean"
  }
  "$strata" ls --store "$1" | awk '{print $1}' >"$3"
  if [[ -s $2 ]]; then
    while read -r seen; do grep -qx "$seen" "$3" || fail "layer $seen was lost"; done <"$2"
  fi
  while read -r diff_id; do
    [[ -n ${source_of[$diff_id]:-} ]] || fail "unknown layer $diff_id listed"
    "$strata" export --store "$1" "$diff_id" -o "$work/export.tar" >/dev/null
    cmp -s "$work/export.tar" "${source_of[$diff_id]}" || fail "export of $diff_id differs"
    exports_checked=$((exports_checked + 1))
  done <"$3"
  rm -f "$work/export.tar"
}

exports_checked=0
sleep_ms() { sleep "$(printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)))"; }

# ---- (a) kill -9 during ingest and gc -----------------------------------------------------
store=$work/store
# One undisturbed ingest in a scratch store gives the time window the kills are spread over.
start=$(date +%s%N)
"$strata" ingest --store "$work/timing" "${inputs[0]}" >/dev/null
window_ms=$((($(date +%s%N) - start) / 1000000 * 2 / 3 + 20))
rm -rf "$work/timing"
: >"$work/seen"
finished=0
for ((i = 1; i <= iterations; i++)); do
  input=${inputs[$((RANDOM % 3))]}
  delay_ms=$((RANDOM % window_ms))
  "$strata" ingest --store "$store" "$input" >/dev/null 2>"$work/ingest.err" &
  pid=$!
  gc_pid=
  if ((i % 3 == 0)); then
    "$strata" gc --store "$store" >/dev/null 2>"$work/gc.err" &
    gc_pid=$!
  fi
  sleep_ms "$delay_ms"
  kill -9 "$pid" 2>/dev/null || true
  status=0
  wait "$pid" 2>/dev/null || status=$?
  if [[ -n $gc_pid ]]; then
    kill -9 "$gc_pid" 2>/dev/null || true
    gc_status=0
    wait "$gc_pid" 2>/dev/null || gc_status=$?
    # A gc that opened the store before ingest created it fails cleanly (exit 1).
    [[ $gc_status == 0 || $gc_status == 137 || $gc_status == 1 ]] ||
      fail "round $i: gc exited $gc_status: $(cat "$work/gc.err")"
  fi
  [[ $status == 0 || $status == 137 ]] || fail "round $i: ingest exited $status: $(cat "$work/ingest.err")"
  ((status == 0)) && finished=$((finished + 1))
  # A kill before the store's index.db exists leaves a directory that is not a store yet (verify
  # says so; the next ingest creates the store in it), so only a store with an index is checked.
  [[ -f $store/index.db ]] || continue
  check_store "$store" "$work/seen" "$work/listing"
  cp "$work/listing" "$work/seen"
  # Once all three layers are in, ingests only dedup: every seventh round starts a fresh store
  # so later kills land on writes again.
  if ((i % 7 == 0)); then
    rm -rf "$store"
    : >"$work/seen"
    continue
  fi
  # Every fourth round a gc alone is killed at a random moment too.
  if ((i % 4 == 0)); then
    "$strata" gc --store "$store" >/dev/null 2>&1 &
    gc_pid=$!
    sleep_ms $((RANDOM % 300))
    kill -9 "$gc_pid" 2>/dev/null || true
    wait "$gc_pid" 2>/dev/null || true
    check_store "$store" "$work/seen" "$work/listing"
  fi
done
"$strata" gc --store "$store" >/dev/null
check_store "$store" "$work/seen" "$work/listing"
echo "kill -9: $iterations ingest kills ($finished finished first, fresh store every 7th round)," \
  "$((iterations / 3)) gc kills beside them, $((iterations / 4)) gc kills alone; verify clean and" \
  "no listed layer lost after each, $exports_checked exports byte-identical to their sources"

# ---- (b) disk full ---------------------------------------------------------------------------
full=$work/full
mkdir -p "$full"
if [[ -z ${STRATA_FAULT_NO_MOUNT:-} ]] && mount -t tmpfs -o size=8m tmpfs "$full" 2>/dev/null; then
  mounted=$full
  limit_note="8 MiB tmpfs"
  small_cmd=()
else
  limit_note="ulimit -f 8192 (RLIMIT_FSIZE, SIGXFSZ ignored)"
  small_cmd=(bash -c 'trap "" XFSZ; ulimit -f 8192; exec "$@"' _)
fi
head -c 300000 /dev/urandom >"$work/small.bin"
head -c 12000000 /dev/urandom >"$work/big.bin"
(cd "$work" && tar --format=pax --mtime=@0 --owner=0 --group=0 -cf "$work/src/big.tar" big.bin)
(cd "$work" && tar --format=pax --mtime=@0 --owner=0 --group=0 -cf "$work/src/small.tar" small.bin)
source_of["sha256:$(sha256sum "$work/src/small.tar" | cut -d' ' -f1)"]=$work/src/small.tar
"${small_cmd[@]}" "$strata" ingest --store "$full/store" "$work/src/small.tar" >/dev/null
status=0
"${small_cmd[@]}" "$strata" ingest --store "$full/store" "$work/src/big.tar" >/dev/null \
  2>"$work/full.err" || status=$?
[[ $status == 1 ]] || fail "disk-full ingest exited $status"
[[ $(wc -l <"$work/full.err") == 1 ]] || fail "disk-full stderr is not one line: $(cat "$work/full.err")"
grep -qE "^strata: error: cannot write .*: (No space left on device|File too large)$" \
  "$work/full.err" || fail "disk-full error does not name the write and ENOSPC/EFBIG: $(cat "$work/full.err")"
"$strata" ls --store "$full/store" | awk '{print $1}' >"$work/full.seen"
[[ $(wc -l <"$work/full.seen") == 1 ]] || fail "disk full: expected only the small layer listed"
check_store "$full/store" "$work/full.seen" "$work/listing"
echo "disk full ($limit_note): $(cat "$work/full.err"); store verifies, earlier layer intact"
cleanup
mounted=

# ---- (c) fsync failure and torn pack writes ---------------------------------------------------
faults=$work/faults
"$strata" ingest --store "$faults" "$work/src/small.tar" >/dev/null
"$strata" ls --store "$faults" | awk '{print $1}' >"$work/faults.seen"
for fault in fsync_fail:1 write_fail:1 write_fail:3 fsync_fail:2; do
  status=0
  STRATA_FAULT=$fault "$strata" ingest --store "$faults" "$work/src/l1.tar" >/dev/null \
    2>"$work/fault.err" || status=$?
  [[ $status == 1 ]] || fail "STRATA_FAULT=$fault: ingest exited $status"
  [[ $(wc -l <"$work/fault.err") == 1 ]] || fail "STRATA_FAULT=$fault: stderr $(cat "$work/fault.err")"
  grep -qE "^strata: error: .*(${fault%%_*}).*(injected|failed)" "$work/fault.err" ||
    fail "STRATA_FAULT=$fault: error does not name the failed ${fault%%_*}: $(cat "$work/fault.err")"
  check_store "$faults" "$work/faults.seen" "$work/listing"
  [[ $(wc -l <"$work/listing") == 1 ]] || fail "STRATA_FAULT=$fault: a layer became visible"
  echo "STRATA_FAULT=$fault: $(cat "$work/fault.err")"
done
"$strata" ingest --store "$faults" "$work/src/l1.tar" >/dev/null
check_store "$faults" "$work/faults.seen" "$work/listing"
[[ $(wc -l <"$work/listing") == 2 ]] || fail "ingest after the faults did not commit"

# ---- (d) bit flips in packs and index.db ---------------------------------------------------
flip_byte() { # file offset
  local byte
  byte=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
  printf "$(printf '\\%03o' $((byte ^ 0x10)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
# Exports every layer of a store; each must fail (no output file left) or match its source.
# Prints how many exports refused.
exports_never_wrong() { # store
  local refused=0 diff_id
  while read -r diff_id; do
    rm -f "$work/flip.tar"
    if "$strata" export --store "$1" "$diff_id" -o "$work/flip.tar" >/dev/null 2>&1; then
      cmp -s "$work/flip.tar" "${source_of[$diff_id]}" || fail "export served wrong bytes for $diff_id"
    else
      [[ ! -e $work/flip.tar ]] || fail "a refused export left $work/flip.tar behind"
      refused=$((refused + 1))
    fi
  done < <(awk '{print $1}' "$work/flip.layers")
  echo "$refused"
}
# gc first, so every pack byte after the file header belongs to a live record.
"$strata" gc --store "$faults" >/dev/null
"$strata" ls --store "$faults" >"$work/flip.layers"
pack_flips=0
pack_refusals=0
for ((k = 0; k < 8; k++)); do
  rm -rf "$work/flipped" && cp -a "$faults" "$work/flipped"
  mapfile -t packs < <(find "$work/flipped/packs" -type f -size +1k | LC_ALL=C sort)
  pack=${packs[$((RANDOM % ${#packs[@]}))]}
  size=$(stat -c %s "$pack")
  offset=$((16 + (RANDOM * 32768 + RANDOM) % (size - 16)))
  flip_byte "$pack" "$offset"
  "$strata" verify --store "$work/flipped" >"$work/flip.verify" 2>&1 &&
    fail "verify missed a flipped byte at $offset of $pack"
  pack_refusals=$((pack_refusals + $(exports_never_wrong "$work/flipped")))
  pack_flips=$((pack_flips + 1))
done
index_flips=0
index_detected=0
for ((k = 0; k < 8; k++)); do
  rm -rf "$work/flipped" && cp -a "$faults" "$work/flipped"
  size=$(stat -c %s "$work/flipped/index.db")
  flip_byte "$work/flipped/index.db" $((100 + (RANDOM * 32768 + RANDOM) % (size - 100)))
  if ! "$strata" verify --store "$work/flipped" >/dev/null 2>&1; then
    index_detected=$((index_detected + 1))
  fi
  exports_never_wrong "$work/flipped" >/dev/null
  index_flips=$((index_flips + 1))
done
echo "bit flips: $pack_flips in packs (all reported by verify, $pack_refusals exports refused," \
  "none wrong); $index_flips in index.db ($index_detected reported by verify, no export wrong)"

# ---- (e) index.db flips, classified ---------------------------------------------------------
# A small two-layer store, so each flip costs little. A flip either changes what SQLite reads
# (the `.dump` of the flipped copy differs from the original's, or SQLite refuses the file) or
# lands in dead space (free pages, gaps in a page): verify must report every flip that changes a
# recipe, a digest or a chunk location; exports must never be wrong whatever verify said. The
# undetected live flips are listed with the first dump line they changed.
small="$work/small"
make_layer s1 0 30
make_layer s2 15 30
for name in s1 s2; do
  source_of["sha256:$(sha256sum "$work/src/$name.tar" | cut -d' ' -f1)"]=$work/src/$name.tar
  "$strata" ingest --store "$small" "$work/src/$name.tar" >/dev/null
done
"$strata" gc --store "$small" >/dev/null
"$strata" verify --store "$small" >/dev/null || fail "the small store does not verify"
"$strata" ls --store "$small" >"$work/flip.layers"
dump_index() { # index.db -> its SQL dump on stdout (from a private copy: sqlite3 writes -shm)
  rm -rf "$work/dump" && mkdir "$work/dump" && cp "$1" "$work/dump/index.db"
  sqlite3 "$work/dump/index.db" .dump 2>&1 || echo "sqlite3 refused the file"
}
dump_index "$small/index.db" >"$work/index.original.sql"
index_rounds=${STRATA_INDEX_FLIPS:-60}
[[ ${STRATA_LONG_FAULTS:-0} == 1 ]] && index_rounds=300
live=0 live_detected=0 dead=0 dead_detected=0 index_refusals=0
: >"$work/undetected"
for ((k = 0; k < index_rounds; k++)); do
  rm -rf "$work/flipped" && cp -a "$small" "$work/flipped"
  size=$(stat -c %s "$work/flipped/index.db")
  offset=$(((RANDOM * 32768 + RANDOM) % size))
  flip_byte "$work/flipped/index.db" "$offset"
  dump_index "$work/flipped/index.db" >"$work/index.flipped.sql"
  detected=0
  "$strata" verify --store "$work/flipped" >/dev/null 2>&1 || detected=1
  if cmp -s "$work/index.original.sql" "$work/index.flipped.sql"; then
    dead=$((dead + 1)) dead_detected=$((dead_detected + detected))
  else
    live=$((live + 1)) live_detected=$((live_detected + detected))
    if ((detected == 0)); then
      echo "offset $offset: $(diff "$work/index.original.sql" "$work/index.flipped.sql" |
        grep '^>' | head -1 | cut -c1-160)" >>"$work/undetected"
    fi
  fi
  index_refusals=$((index_refusals + $(exports_never_wrong "$work/flipped")))
done
echo "index.db flips: $index_rounds; $live changed what SQLite reads ($live_detected reported by" \
  "verify), $dead in dead space ($dead_detected reported); $index_refusals exports refused, none wrong"
if [[ -s $work/undetected ]]; then
  echo "live flips verify did not report:"
  cat "$work/undetected"
fi
rm -rf "$work"
echo "fault injection passed"
