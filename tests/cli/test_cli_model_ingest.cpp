// `strata ingest` on a layer holding a safetensors file: the --json report counts the model file
// and its byte-grouped chunks; --no-model-aware chunks it like any file; --byte-grouping off keeps
// tensor cuts but plain zstd; a bad --byte-grouping value is refused with a clear line. Export of
// each store gives the tar back (its sha256 is the diff_id). The tar is made by GNU tar.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "tests/layer_fixtures.h"
#include "tests/test_support.h"

namespace strata {
namespace {

// One F32 and one BF16 tensor of smooth, weight-like values (shared/specs/models.md §3 layout).
std::vector<std::uint8_t> small_safetensors() {
  const std::size_t f32_elements = 60'000;
  const std::size_t bf16_elements = 80'000;
  std::vector<std::uint8_t> data;
  for (std::size_t i = 0; i < f32_elements + bf16_elements; ++i) {
    const float value = 0.05F * static_cast<float>(std::sin(0.37 * static_cast<double>(i)) *
                                                   std::cos(0.011 * static_cast<double>(i)));
    std::uint32_t bits = 0;
    std::memcpy(&bits, &value, 4);
    const unsigned width = i < f32_elements ? 4 : 2;
    if (width == 2) bits >>= 16U;
    for (unsigned k = 0; k < width; ++k) data.push_back(static_cast<std::uint8_t>(bits >> (8 * k)));
  }
  const std::size_t f32_bytes = f32_elements * 4;
  std::string header = "{\"a\":{\"dtype\":\"F32\",\"shape\":[" + std::to_string(f32_elements) +
                       "],\"data_offsets\":[0," + std::to_string(f32_bytes) +
                       "]},\"b\":{\"dtype\":\"BF16\",\"shape\":[" + std::to_string(bf16_elements) +
                       "],\"data_offsets\":[" + std::to_string(f32_bytes) + "," +
                       std::to_string(data.size()) + "]}}";
  return test::safetensors_file(header, data);
}

nlohmann::json ingest_json(const std::string& arguments) {
  const auto result = test::run_tool("ingest --json " + arguments);
  EXPECT_EQ(result.exit_code, 0) << result.err;
  const auto parsed = nlohmann::json::parse(result.out, nullptr, false);
  EXPECT_FALSE(parsed.is_discarded()) << result.out;
  return parsed;
}

TEST(CliModelIngest, ReportsModelFilesAndHonoursTheFlags) {
  test::ScratchDir dir;
  std::filesystem::create_directories(dir.file("src"));
  test::write_file(dir.file("src/model.safetensors"), small_safetensors());
  ASSERT_TRUE(test::shell(dir.path(), "tar --format=pax -cf layer.tar -C src ."));
  const std::string tar = dir.file("layer.tar");

  const auto aware = ingest_json("--store " + dir.file("s1") + " " + tar);
  EXPECT_EQ(aware["model_files"], 1);
  EXPECT_GT(aware["byte_grouped_chunks"].get<int>(), 0);
  const auto plain = ingest_json("--store " + dir.file("s2") + " --no-model-aware " + tar);
  EXPECT_EQ(plain["model_files"], 0);
  EXPECT_EQ(plain["byte_grouped_chunks"], 0);
  const auto zstd_only = ingest_json("--store " + dir.file("s3") + " --byte-grouping off " + tar);
  EXPECT_EQ(zstd_only["model_files"], 1);
  EXPECT_EQ(zstd_only["byte_grouped_chunks"], 0);
  EXPECT_LT(aware["new_stored_bytes"].get<std::uint64_t>(),
            zstd_only["new_stored_bytes"].get<std::uint64_t>());
  EXPECT_EQ(aware["diff_id"], plain["diff_id"]);

  const std::string expected = sha256_of(test::read_file(tar)).to_string();
  for (const char* store : {"s1", "s2", "s3"}) {
    const std::string out = dir.file(std::string(store) + ".tar");
    const auto exported = test::run_tool("export --store " + dir.file(store) + " " +
                                         aware["diff_id"].get<std::string>() + " -o " + out);
    ASSERT_EQ(exported.exit_code, 0) << exported.err;
    EXPECT_EQ(sha256_of(test::read_file(out)).to_string(), expected) << store;
  }

  const auto refused =
      test::run_tool("ingest --store " + dir.file("s4") + " --byte-grouping maybe " + tar);
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.err.find("--byte-grouping"), std::string::npos) << refused.err;
}

}  // namespace
}  // namespace strata
