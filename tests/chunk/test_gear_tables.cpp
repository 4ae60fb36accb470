// The embedded FastCDC tables equal the reference file (shared/testdata/cdc/fastcdc2020_tables.txt)
// and the gear table re-derives from its definition: the first 8 bytes (big-endian) of MD5 over
// 64 copies of the byte value. Each mask b has exactly b one-bits, none above bit 47.
#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <bit>
#include <fstream>
#include <map>
#include <sstream>

#include "core/chunk/fastcdc_tables.h"
#include "tests/test_support.h"

namespace strata {
namespace {

std::map<std::string, std::vector<std::uint64_t>> load_reference_tables() {
  std::ifstream in(test::testdata_path("cdc/fastcdc2020_tables.txt"));
  std::map<std::string, std::vector<std::uint64_t>> tables;
  std::string line;
  std::string current;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    if (line[0] == '[') {
      std::istringstream(line.substr(1)) >> current;
      continue;
    }
    tables[current].push_back(std::stoull(line, nullptr, 16));
  }
  return tables;
}

TEST(GearTables, MatchReferenceFile) {
  const auto tables = load_reference_tables();
  ASSERT_EQ(tables.at("GEAR").size(), fastcdc::kGearTable.size());
  ASSERT_EQ(tables.at("MASKS").size(), fastcdc::kMasks.size());
  for (std::size_t i = 0; i < 256; ++i) {
    EXPECT_EQ(tables.at("GEAR")[i], fastcdc::kGearTable[i]) << i;
    EXPECT_EQ(tables.at("GEAR_LS")[i], fastcdc::kGearTable[i] << 1U) << i;
  }
  for (std::size_t i = 0; i < fastcdc::kMasks.size(); ++i) {
    EXPECT_EQ(tables.at("MASKS")[i], fastcdc::kMasks[i]) << i;
  }
}

TEST(GearTables, GearDerivesFromMd5) {
  const EVP_MD* md5 = EVP_md5();
  for (int value = 0; value < 256; ++value) {
    std::array<std::uint8_t, 64> input{};
    input.fill(static_cast<std::uint8_t>(value));
    std::array<std::uint8_t, 16> out{};
    unsigned int length = 0;
    ASSERT_EQ(1, EVP_Digest(input.data(), input.size(), out.data(), &length, md5, nullptr));
    std::uint64_t expected = 0;
    for (int i = 0; i < 8; ++i) expected = (expected << 8U) | out[static_cast<std::size_t>(i)];
    EXPECT_EQ(fastcdc::kGearTable[static_cast<std::size_t>(value)], expected) << value;
  }
}

TEST(GearTables, MaskPopcountsAndSpan) {
  for (std::size_t bits = 5; bits < fastcdc::kMasks.size(); ++bits) {
    EXPECT_EQ(std::popcount(fastcdc::kMasks[bits]), static_cast<int>(bits));
    EXPECT_LT(fastcdc::kMasks[bits], std::uint64_t{1} << 48U);
  }
}

}  // namespace
}  // namespace strata
