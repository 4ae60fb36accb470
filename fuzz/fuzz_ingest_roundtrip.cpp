// Layer ingest round-trip target (shared/specs/reliability.md §5.1 fuzz_layer_ingest): arbitrary
// bytes are ingested as a layer blob (plain tar, gzip or zstd, detected) into a store under /tmp
// with small chunks and a 16 MiB cap. Whatever the input, nothing may crash, hang or leave a
// layer behind on failure. When the layer is accepted: exporting it must give exactly the
// decompressed input (DiffID preserved), and ingesting the same bytes again after removing the
// layer must record the same recipe bytes (ingest is deterministic). The store is gc'ed now and
// then so a long run stays small on disk.
#include <stdlib.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "formats/compress/layer_source.h"
#include "strata/engine.h"

namespace {

constexpr std::uint64_t kCap = 16U << 20U;

void check(bool condition) {
  if (!condition) std::abort();
}

struct Harness {
  std::string directory;
  std::unique_ptr<strata::ChunkStore> store;
  strata::IngestOptions options;
  std::uint64_t runs = 0;

  Harness() {
    char name[] = "/tmp/strata_fuzz_ingest_XXXXXX";
    check(::mkdtemp(name) != nullptr);
    directory = name;
    strata::StoreOptions store_options;
    store_options.create_if_missing = true;
    auto opened = strata::ChunkStore::open(directory + "/store", store_options);
    check(opened.ok());
    store = std::make_unique<strata::ChunkStore>(std::move(opened).value());
    options.chunker.min_size = 64;
    options.chunker.avg_size = 256;
    options.chunker.max_size = 1024;
    options.threads = 1;
    options.max_uncompressed_bytes = kCap;
  }
  ~Harness() {
    store.reset();
    std::error_code ignored;
    std::filesystem::remove_all(directory, ignored);
  }
};

std::vector<std::uint8_t> decompress(strata::ByteSpan blob) {
  strata::LayerSourceOptions options;
  options.max_uncompressed_bytes = kCap;
  auto source =
      strata::LayerSource::open(std::make_unique<strata::MemoryByteSource>(blob), options);
  check(source.ok());
  std::vector<std::uint8_t> out;
  std::vector<std::uint8_t> buffer(1U << 16U);
  while (true) {
    auto got = (*source)->read(buffer);
    check(got.ok());
    if (*got == 0) return out;
    out.insert(out.end(), buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(*got));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static Harness harness;
  const strata::ByteSpan blob(data, size);
  if (++harness.runs % 256 == 0) check(harness.store->gc().ok());
  auto layers_before = harness.store->list_layers();
  check(layers_before.ok());
  auto report = strata::ingest_layer_bytes(*harness.store, blob, harness.options);
  if (!report.ok()) {
    auto layers_after = harness.store->list_layers();
    check(layers_after.ok() && layers_after->size() == layers_before->size());
    return 0;
  }
  const std::vector<std::uint8_t> tar = decompress(blob);
  check(report->diff_id == strata::sha256_of(tar));
  std::vector<std::uint8_t> exported;
  auto exported_report = strata::export_layer_tar(
      *harness.store, report->diff_id, [&exported](strata::ByteSpan bytes) -> strata::Result<void> {
        exported.insert(exported.end(), bytes.begin(), bytes.end());
        return {};
      });
  check(exported_report.ok());
  check(exported == tar);
  auto first = harness.store->find_layer(report->diff_id);
  check(first.ok());
  check(harness.store->remove_layer(report->diff_id).ok());
  auto again = strata::ingest_layer_bytes(*harness.store, blob, harness.options);
  check(again.ok() && again->diff_id == report->diff_id);
  auto second = harness.store->find_layer(report->diff_id);
  check(second.ok() && second->recipe == first->recipe);
  check(harness.store->remove_layer(report->diff_id).ok());
  return 0;
}
