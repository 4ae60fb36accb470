// Model fine-tunes stored as deltas against their base model (issue 16, DESIGN.md §7; core/model/
// model_delta_base.h): a fine-tune packaged with a delta base (found by tensor name) stores less
// than without, exports byte-exact and verifies clean; gc keeps the base's chunks while a delta
// needs them; a base chunk that is corrupt or missing makes reading the fine-tune fail with an
// error naming that chunk; a base named by digest that the store lacks is refused by name; a
// hostile fine-tune header (thousands of tiny tensors, a tensor with a base name but 2
// bytes, or offsets past the file) neither fails nor makes the tool's memory grow with it. The
// sqlite3 tool is required (scripts/install-deps.sh), as in test_delta_store.cpp.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>

#include "strata/strata.h"
#include "tests/layer_fixtures.h"
#include "tests/model/bf16.h"
#include "tests/test_support.h"

namespace strata {
namespace {

using test::from_bf16;
using test::to_bf16;

// Tensor "a" (BF16, 96 Ki values), "b" (F32, 24 Ki values), "c" (I8, 32 KiB) of normal weights;
// `tuned` moves every value of a and b by N(0, 0.02 std) and changes every 64th byte of c.
std::vector<std::uint8_t> model_file(bool tuned) {
  std::mt19937_64 random(11);
  std::normal_distribution<float> weight(0.0F, 0.02F);
  std::mt19937_64 noise_random(12);
  std::normal_distribution<float> noise(0.0F, 0.0004F);
  std::vector<std::uint8_t> data;
  for (int i = 0; i < 96 * 1024; ++i) {
    float value = from_bf16(to_bf16(weight(random)));
    if (tuned) value += noise(noise_random);
    const std::uint16_t half = to_bf16(value);
    data.push_back(static_cast<std::uint8_t>(half));
    data.push_back(static_cast<std::uint8_t>(half >> 8U));
  }
  for (int i = 0; i < 24 * 1024; ++i) {
    float value = weight(random);
    if (tuned) value += noise(noise_random);
    std::uint32_t bits = 0;
    std::memcpy(&bits, &value, 4);
    for (unsigned k = 0; k < 4; ++k) data.push_back(static_cast<std::uint8_t>(bits >> (8 * k)));
  }
  const auto bytes = test::splitmix64_bytes(13, 32 * 1024);
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    data.push_back(static_cast<std::uint8_t>(bytes[i] % 16 + (tuned && i % 64 == 0 ? 1 : 0)));
  }
  const std::string header =
      R"({"a":{"dtype":"BF16","shape":[96,1024],"data_offsets":[0,196608]},)"
      R"("b":{"dtype":"F32","shape":[24,1024],"data_offsets":[196608,294912]},)"
      R"("c":{"dtype":"I8","shape":[32768],"data_offsets":[294912,327680]}})";
  return test::safetensors_file(header, data);
}

ChunkerOptions small_chunks() {
  ChunkerOptions chunker;
  chunker.min_size = 2048;
  chunker.avg_size = 8192;
  chunker.max_size = 32768;
  return chunker;
}

struct Packaged {
  Digest file;  // the weight file's digest: its store layer
  model::PackageReport report;
};

Packaged package(const test::ScratchDir& scratch, ChunkStore& store, const std::string& name,
                 const std::vector<std::uint8_t>& bytes, model::ModelDeltaOptions delta = {}) {
  std::filesystem::create_directories(scratch.file(name));
  test::write_file(scratch.file(name + "/model.safetensors"), bytes);
  auto layout = oci::OciLayout::open_or_create(scratch.file("layout-" + name));
  EXPECT_TRUE(layout.ok());
  model::PackageOptions options;
  options.store = &store;
  options.chunker = small_chunks();
  options.delta = std::move(delta);
  auto report = model::package_model(scratch.file(name), *layout, "v", options);
  EXPECT_TRUE(report.ok()) << report.error().to_string();
  return Packaged{sha256_of(bytes), std::move(report).value()};
}

ChunkStore open_store(const std::string& path) {
  StoreOptions options;
  options.create_if_missing = true;
  auto store = ChunkStore::open(path, options);
  EXPECT_TRUE(store.ok());
  return std::move(store).value();
}

Result<std::vector<std::uint8_t>> export_file(const ChunkStore& store, const Digest& file) {
  std::vector<std::uint8_t> out;
  auto exported = export_layer_tar(store, file, [&out](ByteSpan bytes) -> Result<void> {
    out.insert(out.end(), bytes.begin(), bytes.end());
    return {};
  });
  if (!exported.ok()) return std::move(exported).error();
  return out;
}

model::ModelDeltaOptions auto_base() {
  model::ModelDeltaOptions delta;
  delta.base = model::ModelDeltaBaseKind::kNewest;
  return delta;
}

std::string query(const std::string& store, const std::string& sql) {
  const std::string out = store + "/query.out";
  const std::string command = "sqlite3 '" + store + "/index.db' \"" + sql + "\" > '" + out + "'";
  if (std::system(command.c_str()) != 0) return "<sqlite3 failed>";
  std::ifstream in(out);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text;
}

TEST(ModelDelta, FineTuneStoresLessExportsByteExactAndVerifiesClean) {
  test::ScratchDir scratch;
  const auto base = model_file(false);
  const auto tuned = model_file(true);
  ChunkStore plain = open_store(scratch.file("plain"));
  package(scratch, plain, "base", base);
  const Packaged without = package(scratch, plain, "tuned", tuned);
  EXPECT_EQ(without.report.delta_chunks, 0U);

  ChunkStore store = open_store(scratch.file("store"));
  const Packaged stored_base = package(scratch, store, "base", base);
  const Packaged with = package(scratch, store, "tuned", tuned, auto_base());
  ASSERT_EQ(with.report.delta_base_files, std::vector<Digest>{stored_base.file});
  EXPECT_GT(with.report.delta_chunks, 0U);
  // Every tensor changed, so nothing dedups: the saving is the deltas'.
  EXPECT_LT(with.report.new_stored_bytes * 10, without.report.new_stored_bytes * 7)
      << with.report.new_stored_bytes << " with deltas, " << without.report.new_stored_bytes
      << " without";

  auto exported = export_file(store, with.file);
  ASSERT_TRUE(exported.ok()) << exported.error().to_string();
  EXPECT_EQ(*exported, tuned);
  auto verified = store.verify();
  ASSERT_TRUE(verified.ok());
  EXPECT_TRUE(verified->clean()) << verified->problems.front();
  auto stats = store.stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->delta_chunks, with.report.delta_chunks);
}

TEST(ModelDelta, ABaseNamedByDigestIsUsedAndAMissingOneRefusedByName) {
  test::ScratchDir scratch;
  ChunkStore store = open_store(scratch.file("store"));
  const Packaged base = package(scratch, store, "base", model_file(false));
  model::ModelDeltaOptions named;
  named.base = model::ModelDeltaBaseKind::kFiles;
  named.files = {base.file};
  const Packaged tuned = package(scratch, store, "tuned", model_file(true), named);
  EXPECT_GT(tuned.report.delta_chunks, 0U);

  const Digest absent = sha256_of(test::splitmix64_bytes(99, 10));
  named.files = {absent};
  std::filesystem::create_directories(scratch.file("other"));
  test::write_file(scratch.file("other/model.safetensors"), model_file(true));
  auto layout = oci::OciLayout::open_or_create(scratch.file("layout-other"));
  ASSERT_TRUE(layout.ok());
  model::PackageOptions options;
  options.store = &store;
  options.delta = named;
  auto refused = model::package_model(scratch.file("other"), *layout, "v", options);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find(absent.to_string()), std::string::npos)
      << refused.error().message;
}

TEST(ModelDelta, GcKeepsTheBaseWhileTheFineTuneNeedsIt) {
  test::ScratchDir scratch;
  ChunkStore store = open_store(scratch.file("store"));
  const auto tuned_bytes = model_file(true);
  const Packaged base = package(scratch, store, "base", model_file(false));
  const Packaged tuned = package(scratch, store, "tuned", tuned_bytes, auto_base());
  ASSERT_GT(tuned.report.delta_chunks, 0U);

  ASSERT_TRUE(store.remove_layer(base.file).ok());
  auto collected = store.gc();
  ASSERT_TRUE(collected.ok()) << collected.error().to_string();
  auto stats = store.stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_GT(stats->chunks, stats->referenced_chunks) << "bases with no layer stay";
  auto exported = export_file(store, tuned.file);
  ASSERT_TRUE(exported.ok()) << exported.error().to_string();
  EXPECT_EQ(*exported, tuned_bytes);
  auto verified = store.verify();
  ASSERT_TRUE(verified.ok());
  EXPECT_TRUE(verified->clean()) << verified->problems.front();

  ASSERT_TRUE(store.remove_layer(tuned.file).ok());
  ASSERT_TRUE(store.gc().ok());
  stats = store.stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->chunks, 0U);
}

// Stores base + fine-tune with deltas in `dir`; returns the fine-tune's digest and one
// (base, delta) pair of chunk digests in hex.
struct DeltaPair {
  Digest tuned;
  std::string base_hex;
  std::string delta_hex;
};

DeltaPair store_pair(const test::ScratchDir& scratch, const std::string& dir) {
  ChunkStore store = open_store(dir);
  package(scratch, store, "base", model_file(false));
  DeltaPair pair;
  pair.tuned = package(scratch, store, "tuned", model_file(true), auto_base()).file;
  pair.base_hex = query(dir, "SELECT lower(hex(base)) FROM chunk_bases LIMIT 1");
  pair.delta_hex = query(
      dir, "SELECT lower(hex(digest)) FROM chunk_bases WHERE base = x'" + pair.base_hex + "'");
  return pair;
}

TEST(ModelDelta, ACorruptOrMissingBaseChunkIsNamed) {
  ASSERT_TRUE(std::system("sqlite3 -version >/dev/null 2>&1") == 0)
      << "sqlite3 is not installed (scripts/install-deps.sh)";
  test::ScratchDir scratch;
  const std::string corrupt_dir = scratch.file("corrupt");
  const DeltaPair corrupt = store_pair(scratch, corrupt_dir);
  ASSERT_EQ(corrupt.base_hex.size(), 64U);
  const std::string pack = query(corrupt_dir,
                                 "SELECT p.name FROM chunks c JOIN packs p ON p.id = c.pack_id "
                                 "WHERE c.digest = x'" +
                                     corrupt.base_hex + "'");
  const std::string offset = query(
      corrupt_dir, "SELECT offset + 60 FROM chunks WHERE digest = x'" + corrupt.base_hex + "'");
  {
    std::fstream file(corrupt_dir + "/packs/" + pack,
                      std::ios::in | std::ios::out | std::ios::binary);
    ASSERT_TRUE(file.good());
    file.seekg(std::stoll(offset));
    char byte = 0;
    file.read(&byte, 1);
    byte = static_cast<char>(byte ^ 0x40);
    file.seekp(std::stoll(offset));
    file.write(&byte, 1);
  }
  {
    auto store = ChunkStore::open(corrupt_dir);
    ASSERT_TRUE(store.ok());
    auto exported = export_file(*store, corrupt.tuned);
    ASSERT_FALSE(exported.ok());
    EXPECT_NE(exported.error().message.find("sha256:" + corrupt.base_hex), std::string::npos)
        << exported.error().message;
  }

  const std::string missing_dir = scratch.file("missing");
  const DeltaPair missing = store_pair(scratch, missing_dir);
  ASSERT_EQ(query(missing_dir, "DELETE FROM chunks WHERE digest = x'" + missing.base_hex + "'"),
            "");
  auto store = ChunkStore::open(missing_dir);
  ASSERT_TRUE(store.ok());
  auto exported = export_file(*store, missing.tuned);
  ASSERT_FALSE(exported.ok());
  EXPECT_NE(exported.error().message.find("sha256:" + missing.delta_hex), std::string::npos)
      << exported.error().message;
}

// The largest resident set of any child this process waited for, in KiB.
long children_max_rss_kib() {
  rusage usage{};
  getrusage(RUSAGE_CHILDREN, &usage);
  return usage.ru_maxrss;
}

TEST(ModelDelta, AHostileFineTuneHeaderKeepsTheToolsMemoryBounded) {
  test::ScratchDir scratch;
  const std::string store = scratch.file("store");
  std::filesystem::create_directories(scratch.file("base"));
  test::write_file(scratch.file("base/model.safetensors"), model_file(false));
  auto packaged = test::run_tool("model package " + scratch.file("base") + " --layout " +
                                 scratch.file("layout") + " --tag base --store " + store +
                                 " --avg-chunk 4096 --json");
  ASSERT_EQ(packaged.exit_code, 0) << packaged.err;

  // 1: five thousand 2-byte tensors, one of them "a" (a base name, 192 KiB there).
  std::string header = "{";
  std::vector<std::uint8_t> data;
  for (int i = 0; i < 5000; ++i) {
    header.append(i == 0 ? "\"a" : ",\"t");
    if (i != 0) header.append(std::to_string(i));
    header.append(R"(":{"dtype":"BF16","shape":[1],"data_offsets":[)");
    header.append(std::to_string(2 * i));
    header.append(",");
    header.append(std::to_string(2 * i + 2));
    header.append("]}");
    data.push_back(static_cast<std::uint8_t>(i));
    data.push_back(static_cast<std::uint8_t>(i >> 8));
  }
  header += "}";
  const auto many = test::safetensors_file(header, data);
  // 2: "a" claims bytes past the end of the file (the parser refuses; chunked as plain bytes).
  const auto tuned = model_file(true);
  std::uint64_t header_length = 0;
  for (unsigned i = 0; i < 8; ++i) header_length |= std::uint64_t{tuned[i]} << (8U * i);
  const std::vector<std::uint8_t> tensor_bytes(tuned.begin() + 8 + static_cast<long>(header_length),
                                               tuned.end());
  const auto past = test::safetensors_file(
      R"({"a":{"dtype":"BF16","shape":[96,1024],"data_offsets":[0,196608]},)"
      R"("b":{"dtype":"F32","shape":[24,1024],"data_offsets":[196608,294912]},)"
      R"("c":{"dtype":"I8","shape":[999999704320],"data_offsets":[294912,999999999232]}})",
      tensor_bytes);

  int index = 0;
  for (const std::vector<std::uint8_t>* hostile : {&many, &past}) {
    const std::string dir = scratch.file("hostile" + std::to_string(index));
    std::filesystem::create_directories(dir);
    test::write_file(dir + "/model.safetensors", *hostile);
    const long before = children_max_rss_kib();
    auto result = test::run_tool("model package " + dir + " --layout " + scratch.file("layout") +
                                 " --tag h" + std::to_string(index) + " --store " + store +
                                 " --avg-chunk 4096 --delta-base auto --json");
    ASSERT_EQ(result.exit_code, 0) << result.err;
    // The file is a few MiB at most; the tool may use a few times its libraries' working set,
    // never anything that scales with what the header claims.
    const long after = children_max_rss_kib();
    EXPECT_LT(std::max(before, after), 256L * 1024) << "peak RSS in KiB, case " << index;
    auto opened = ChunkStore::open(store);
    ASSERT_TRUE(opened.ok());
    auto exported = export_file(*opened, sha256_of(*hostile));
    ASSERT_TRUE(exported.ok()) << exported.error().to_string();
    EXPECT_EQ(*exported, *hostile);
    ++index;
  }
}

}  // namespace
}  // namespace strata
