// strata_store_stress: drives a chunk store from separate processes for the crash and concurrency
// tests (tests/store/crash_test.sh, tests/store/store_concurrency_test.sh;
// shared/specs/reliability.md §5.3 F5, F9, F10). Layers are built from a shared pool of
// pseudo-random chunks, so processes with different seeds overlap; a layer's diff_id is the SHA-256
// of its chunks' concatenation and its recipe is the list of chunk digests, so `check` can rebuild
// every layer and compare.
//
//   strata_store_stress ingest <store> <seed> <layers> [remove_every [delta]]
//       prints "committed <diff_id>" after each commit and "removing <diff_id>" before a removal;
//       with `delta`, a layer's new chunks are near-copies of pool chunks stored as deltas of them
//       (so gc races bases: a commit whose base was collected is refused and redone whole)
//   strata_store_stress check <store> [log...]
//       verify must be clean, every layer must rebuild to its diff_id, and every layer a log
//       says was committed (and not being removed) must be present
//   strata_store_stress gc <store> <rounds>
//   strata_store_stress watch <store> <rounds>
//       check (without logs) repeatedly while other processes write, remove and collect
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "strata/store.h"

namespace {

using strata::ByteSpan;
using strata::Digest;

constexpr std::uint64_t kChunkPool = 160;

std::uint64_t next_splitmix(std::uint64_t& state) {
  state += 0x9E3779B97F4A7C15ULL;
  std::uint64_t z = state;
  z = (z ^ (z >> 30U)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27U)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31U);
}

// Chunk `id` of the pool: 1-8 KiB, half of it repeated so zstd compresses it.
std::vector<std::uint8_t> pool_chunk(std::uint64_t id) {
  std::uint64_t state = id * 7919 + 1;
  const std::size_t size = 1024 + next_splitmix(state) % 7168;
  std::vector<std::uint8_t> bytes(size);
  for (std::size_t i = 0; i < size / 2; ++i) {
    bytes[i] = static_cast<std::uint8_t>(next_splitmix(state));
  }
  for (std::size_t i = size / 2; i < size; ++i) bytes[i] = bytes[i - size / 2];
  return bytes;
}

int fail(const std::string& message) {
  std::fprintf(stderr, "strata_store_stress: %s\n", message.c_str());
  return 1;
}

strata::Result<strata::ChunkStore> open_store(const std::string& path) {
  strata::StoreOptions options;
  options.create_if_missing = true;
  options.max_pack_bytes = 64 * 1024;  // small, so runs cross pack boundaries
  return strata::ChunkStore::open(path, options);
}

// A chunk new to one layer: random bytes, or with `delta` a pool chunk with a few bytes changed,
// so it can be stored as a delta against that pool chunk (its base).
std::vector<std::uint8_t> new_chunk(std::uint64_t id, std::uint64_t base_id, bool delta) {
  if (!delta) return pool_chunk(id);
  auto bytes = pool_chunk(base_id);
  std::uint64_t state = id;
  for (int edit = 0; edit < 4; ++edit) {
    bytes[next_splitmix(state) % bytes.size()] ^= static_cast<std::uint8_t>(1 + edit);
  }
  return bytes;
}

// Puts one chunk: a repeat by digest only, a delta against `base` when allowed and the store can
// serve it as a base (committed, stored whole), else whole.
strata::Result<void> put_one(strata::StoreWriter& writer, const Digest& digest, ByteSpan raw,
                             const std::vector<std::uint8_t>* base_raw) {
  if (writer.contains(digest)) return writer.put_chunk(digest, {}, {}, strata::Codec::kZstd);
  if (base_raw != nullptr) {
    const ByteSpan base(base_raw->data(), base_raw->size());
    std::vector<std::uint8_t> coded;
    STRATA_TRY(strata::compress_chunk_delta_into(raw, base, 3, coded));
    auto put = writer.put_delta_chunk(digest, raw, ByteSpan(coded.data(), coded.size()),
                                      strata::Codec::kZstdDelta, strata::sha256_of(base), base);
    if (put.ok() || put.error().code != strata::ErrorCode::kInvalidArgument) return put;
  }
  auto frame = strata::compress_chunk_zstd(raw, 3);
  if (!frame.ok()) return std::move(frame).error();
  return writer.put_chunk(digest, raw, ByteSpan(frame->data(), frame->size()),
                          strata::Codec::kZstd);
}

// One layer drawn from `state`: half its chunks from the shared pool, half new to it. With
// `delta`, new chunks are stored as deltas of pool chunks where the store allows it.
strata::Result<Digest> ingest_layer(strata::ChunkStore& store, std::uint64_t seed,
                                    std::uint64_t state, int layer_index, bool delta) {
  auto writer = store.writer();
  if (!writer.ok()) return std::move(writer).error();
  const std::size_t count = 4 + next_splitmix(state) % 12;
  std::vector<Digest> digests;
  std::vector<std::uint8_t> recipe;
  strata::Sha256 diff_id;
  for (std::size_t i = 0; i < count; ++i) {
    const std::uint64_t draw = next_splitmix(state);
    const bool shared = draw % 2 == 0;
    const std::uint64_t id =
        shared ? draw % kChunkPool
               : kChunkPool + seed * 1000000 + static_cast<std::uint64_t>(layer_index) * 100 + i;
    // Shared draws are even, so they only ever store even pool ids: a base is one of those.
    const std::uint64_t base_id = (draw >> 1U) % (kChunkPool / 2) * 2;
    const auto raw = shared ? pool_chunk(id) : new_chunk(id, base_id, delta);
    const auto base_raw = pool_chunk(base_id);
    const ByteSpan raw_span(raw.data(), raw.size());
    const Digest digest = strata::sha256_of(raw_span);
    diff_id.update(raw_span);
    recipe.insert(recipe.end(), digest.bytes().begin(), digest.bytes().end());
    digests.push_back(digest);
    STRATA_TRY(put_one(*writer, digest, raw_span, delta && !shared ? &base_raw : nullptr));
  }
  strata::LayerRecord layer;
  layer.diff_id = diff_id.finish();
  layer.layer_digest = layer.diff_id;
  layer.media_type = "application/vnd.oci.image.layer.v1.tar";
  layer.recipe = std::move(recipe);
  layer.size = 0;
  STRATA_TRY(writer->commit_layer(layer, digests));
  return layer.diff_id;
}

int ingest(const std::string& path, std::uint64_t seed, int layers, int remove_every, bool delta) {
  auto store = open_store(path);
  if (!store.ok()) return fail(store.error().to_string());
  std::uint64_t state = seed * 104729 + 17;
  std::vector<Digest> committed;
  for (int layer_index = 0; layer_index < layers; ++layer_index) {
    const std::uint64_t layer_state = next_splitmix(state);
    auto diff_id = ingest_layer(*store, seed, layer_state, layer_index, delta);
    if (!diff_id.ok() && delta && diff_id.error().message.find("base") != std::string::npos) {
      // A gc elsewhere collected a base between put and commit: the commit refused the delta
      // (nothing was made visible); the same layer again, its new chunks whole.
      std::fprintf(stderr, "retrying whole: %s\n", diff_id.error().to_string().c_str());
      diff_id = ingest_layer(*store, seed, layer_state, layer_index, false);
    }
    if (!diff_id.ok()) return fail(diff_id.error().to_string());
    std::printf("committed %s\n", diff_id->to_string().c_str());
    std::fflush(stdout);
    committed.push_back(*diff_id);
    if (remove_every > 0 && committed.size() >= 2 &&
        layer_index % remove_every == remove_every - 1) {
      const Digest victim = committed[committed.size() - 2];
      std::printf("removing %s\n", victim.to_string().c_str());
      std::fflush(stdout);
      auto removed = store->remove_layer(victim);
      if (!removed.ok() && removed.error().code != strata::ErrorCode::kNotFound) {
        return fail(removed.error().to_string());
      }
    }
  }
  return 0;
}

// Verifies `store` and rebuilds every layer. With `racing`, other processes are still writing:
// a layer removed (and its chunks collected) between listing and reading is skipped.
int check_store(strata::ChunkStore& store, bool racing, std::set<Digest>& present,
                std::uint64_t& chunks_checked) {
  auto report = store.verify();
  if (!report.ok()) return fail(report.error().to_string());
  for (const std::string& problem : report->problems) {
    std::fprintf(stderr, "verify: %s\n", problem.c_str());
  }
  if (!report->clean()) return fail("verify found problems");
  chunks_checked = report->chunks_checked;

  auto layers = store.list_layers();
  if (!layers.ok()) return fail(layers.error().to_string());
  for (const strata::LayerRecord& listed : *layers) {
    auto layer = store.find_layer(listed.diff_id);
    if (!layer.ok()) {
      if (racing && layer.error().code == strata::ErrorCode::kNotFound) continue;
      return fail(layer.error().to_string());
    }
    if (layer->recipe.size() % Digest::kSize != 0) return fail("recipe has a torn digest list");
    strata::Sha256 rebuilt;
    bool vanished = false;
    for (std::size_t offset = 0; offset < layer->recipe.size(); offset += Digest::kSize) {
      Digest::Bytes bytes{};
      std::copy_n(layer->recipe.begin() + static_cast<std::ptrdiff_t>(offset), Digest::kSize,
                  bytes.begin());
      auto raw = store.read_chunk(Digest(bytes));
      if (!raw.ok()) {
        if (racing && raw.error().code == strata::ErrorCode::kNotFound &&
            !store.find_layer(listed.diff_id).ok()) {
          vanished = true;
          break;
        }
        return fail("layer " + listed.diff_id.to_string() + ": " + raw.error().to_string());
      }
      rebuilt.update(ByteSpan(raw->data(), raw->size()));
    }
    if (vanished) continue;
    if (rebuilt.finish() != listed.diff_id) {
      return fail("layer " + listed.diff_id.to_string() + " does not rebuild to its diff_id");
    }
    present.insert(listed.diff_id);
  }
  return 0;
}

int watch(const std::string& path, int rounds) {
  auto store = open_store(path);
  if (!store.ok()) return fail(store.error().to_string());
  for (int round = 0; round < rounds; ++round) {
    std::set<Digest> present;
    std::uint64_t chunks_checked = 0;
    if (check_store(*store, true, present, chunks_checked) != 0) return 1;
  }
  return 0;
}

int check(const std::string& path, const std::vector<std::string>& logs) {
  auto store = strata::ChunkStore::open(path);
  if (!store.ok()) return fail(store.error().to_string());
  std::set<Digest> present;
  std::uint64_t chunks_checked = 0;
  if (check_store(*store, false, present, chunks_checked) != 0) return 1;

  std::set<std::string> committed;
  std::set<std::string> removing;
  for (const std::string& log : logs) {
    std::ifstream in(log);
    std::string verb;
    std::string digest;
    while (in >> verb >> digest) {
      (verb == "committed" ? committed : removing).insert(digest);
    }
  }
  for (const std::string& text : committed) {
    if (removing.count(text) != 0) continue;
    auto digest = Digest::parse(text);
    if (!digest.ok()) continue;  // a line torn by kill -9 while printing
    if (present.count(*digest) == 0) return fail("committed layer " + text + " is missing");
  }
  std::printf("ok: %zu layers rebuilt, %llu chunks verified\n", present.size(),
              static_cast<unsigned long long>(chunks_checked));
  return 0;
}

int collect(const std::string& path, int rounds) {
  auto store = open_store(path);
  if (!store.ok()) return fail(store.error().to_string());
  for (int round = 0; round < rounds; ++round) {
    auto report = store->gc();
    if (!report.ok()) return fail(report.error().to_string());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  if (args.size() >= 4 && args[0] == "ingest") {
    return ingest(args[1], std::strtoull(args[2].c_str(), nullptr, 10), std::atoi(args[3].c_str()),
                  args.size() >= 5 ? std::atoi(args[4].c_str()) : 0,
                  args.size() >= 6 && args[5] == "delta");
  }
  if (args.size() >= 2 && args[0] == "check") {
    return check(args[1], std::vector<std::string>(args.begin() + 2, args.end()));
  }
  if (args.size() >= 3 && args[0] == "gc") return collect(args[1], std::atoi(args[2].c_str()));
  if (args.size() >= 3 && args[0] == "watch") return watch(args[1], std::atoi(args[2].c_str()));
  return fail(
      "usage: ingest <store> <seed> <layers> [remove_every [delta]] | check <store> [log...] | "
      "gc <store> <rounds> | watch <store> <rounds>");
}
