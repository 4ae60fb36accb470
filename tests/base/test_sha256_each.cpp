// sha256_of_each and sha256_of_pair (strata/digest.h) on every SHA-256 kernel this CPU can run and
// on the forced OpenSSL fallback: the FIPS 180-4 / NIST example vectors ("abc", the 448- and
// 896-bit messages, a million 'a'), every pair of lengths 0..300 against sha256_of (OpenSSL),
// lengths at the padding edges (55/56, 63/64, 119/120) in odd counts, a 1 MiB message beside a
// 3-byte one, empty spans, unaligned inputs, inputs that end flush against a guard page, and
// digest spans longer than the inputs; and the pair kernel against the one-message kernel.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "simd/sha256_shani.h"
#include "tests/test_support.h"

namespace strata {
namespace {

ByteSpan bytes_of(std::string_view text) {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

// Makes one kernel (or, with "openssl", none: the fallback) active for a test's lifetime.
class KernelChoice {
 public:
  explicit KernelChoice(const std::string& name) : previous_(simd::active_sha256_kernel()) {
    for (const simd::Sha256Kernel& kernel : simd::built_sha256_kernels()) {
      if (name == kernel.name) found_ = &kernel;
    }
  }
  ~KernelChoice() { simd::set_active_sha256_kernel(previous_); }
  KernelChoice(const KernelChoice&) = delete;
  KernelChoice& operator=(const KernelChoice&) = delete;

  // Why the choice cannot run here, or "" after making it active.
  std::string activate(const std::string& name) {
    if (name != "openssl") {
      if (found_ == nullptr) return "kernel " + name + " is not built for this architecture";
      if (!simd::sha256_kernel_usable(*found_))
        return "this CPU lacks what kernel " + name + " needs";
    }
    simd::set_active_sha256_kernel(found_);
    return "";
  }

 private:
  const simd::Sha256Kernel* previous_;
  const simd::Sha256Kernel* found_ = nullptr;
};

class Sha256Each : public testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    const std::string why_not = choice_.activate(GetParam());
    if (!why_not.empty()) GTEST_SKIP() << why_not;
  }

  KernelChoice choice_{GetParam()};
};

// Hashes `inputs` with sha256_of_each and checks every digest against sha256_of.
void expect_each_matches(const std::vector<ByteSpan>& inputs) {
  std::vector<Digest> digests(inputs.size());
  sha256_of_each(inputs, digests);
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    ASSERT_EQ(digests[i], sha256_of(inputs[i]))
        << "input " << i << " of " << inputs.size() << ", " << inputs[i].size() << " bytes";
  }
}

TEST_P(Sha256Each, ForcedChoiceIsActive) {
  const simd::Sha256Kernel* active = simd::active_sha256_kernel();
  if (GetParam() == "openssl") {
    EXPECT_EQ(active, nullptr);
  } else {
    ASSERT_NE(active, nullptr);
    EXPECT_EQ(std::string(active->name), GetParam());
  }
}

TEST_P(Sha256Each, FipsExampleVectors) {
  const std::string million_a(1000000, 'a');
  const std::vector<ByteSpan> inputs = {
      bytes_of("abc"), bytes_of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
      bytes_of("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklm"
               "nopqrlmnopqrsmnopqrstnopqrstu"),
      bytes_of(million_a), ByteSpan{}};
  const std::vector<std::string> expected = {
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
      "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1",
      "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"};
  std::vector<Digest> digests(inputs.size());
  sha256_of_each(inputs, digests);
  for (std::size_t i = 0; i < inputs.size(); ++i) EXPECT_EQ(digests[i].hex(), expected[i]) << i;
  const auto [abc, million] = sha256_of_pair(inputs[0], inputs[3]);
  EXPECT_EQ(abc.hex(), expected[0]);
  EXPECT_EQ(million.hex(), expected[3]);
}

TEST_P(Sha256Each, EveryPairOfLengthsUpTo300) {
  constexpr std::size_t kMaxLength = 300;
  const auto data = test::splitmix64_bytes(17, 2 * kMaxLength);
  std::vector<Digest> expected;
  for (std::size_t n = 0; n <= kMaxLength; ++n) {
    expected.push_back(sha256_of(ByteSpan(data).subspan(0, n)));
  }
  for (std::size_t a = 0; a <= kMaxLength; ++a) {
    for (std::size_t b = 0; b <= kMaxLength; ++b) {
      const auto [da, db] =
          sha256_of_pair(ByteSpan(data).subspan(0, a), ByteSpan(data).subspan(kMaxLength, b));
      ASSERT_EQ(da, expected[a]) << a << " beside " << b;
      ASSERT_EQ(db, sha256_of(ByteSpan(data).subspan(kMaxLength, b))) << b << " beside " << a;
    }
  }
}

TEST_P(Sha256Each, PaddingEdgesInOddCounts) {
  const auto data = test::splitmix64_bytes(23, 4096);
  const std::vector<std::size_t> edges = {0,  1,   55,  56,  57,  63,  64,
                                          65, 119, 120, 121, 127, 128, 129};
  for (const std::size_t count : {1U, 3U, 7U, 15U}) {
    for (std::size_t first = 0; first < edges.size(); ++first) {
      std::vector<ByteSpan> inputs;
      for (std::size_t i = 0; i < count; ++i) {
        const std::size_t length = edges[(first + i) % edges.size()];
        inputs.push_back(ByteSpan(data).subspan(i * 150, length));
      }
      expect_each_matches(inputs);
    }
  }
}

TEST_P(Sha256Each, LargeBesideSmall) {
  const auto big = test::splitmix64_bytes(29, 1U << 20U);
  const auto small = test::splitmix64_bytes(31, 3);
  expect_each_matches({big, small});
  expect_each_matches({small, big});
  expect_each_matches({big, small, big, ByteSpan{}, small, ByteSpan(big).subspan(5, 70000)});
}

TEST_P(Sha256Each, ChunkSizedMixes) {
  const auto data = test::splitmix64_bytes(37, 1U << 20U);
  std::mt19937_64 random(41);
  for (const std::size_t count : {2U, 3U, 7U, 33U}) {
    std::vector<ByteSpan> inputs;
    for (std::size_t i = 0; i < count; ++i) {
      const std::size_t length = random() % (300U << 10U);
      inputs.push_back(ByteSpan(data).subspan(random() % (data.size() - length), length));
    }
    expect_each_matches(inputs);
  }
}

TEST_P(Sha256Each, UnalignedInputs) {
  const auto data = test::splitmix64_bytes(43, 8192);
  for (std::size_t offset = 1; offset < 16; ++offset) {
    expect_each_matches({ByteSpan(data).subspan(offset, 1000 + offset),
                         ByteSpan(data).subspan(4096 + 2 * offset, 1000 - offset),
                         ByteSpan(data).subspan(3 * offset, 64 * offset)});
  }
}

TEST_P(Sha256Each, EmptySpans) {
  sha256_of_each({}, {});
  const std::vector<ByteSpan> inputs(5);  // five empty messages
  expect_each_matches(inputs);
  // Digests past the inputs are left as they were.
  const Digest marker = sha256_of(bytes_of("marker"));
  std::vector<Digest> digests(3, marker);
  const std::vector<ByteSpan> one = {bytes_of("abc")};
  sha256_of_each(one, digests);
  EXPECT_EQ(digests[0], sha256_of(bytes_of("abc")));
  EXPECT_EQ(digests[1], marker);
  EXPECT_EQ(digests[2], marker);
}

// Every usable kernel's pair form, from arbitrary (not initial) states, equals its one-message
// form run on each message alone, for block counts 0..9.
TEST(Sha256Kernels, PairEqualsOneMessageAlone) {
  const auto data = test::splitmix64_bytes(53, 2 * 9 * 64 + 1);
  const std::uint8_t* a = data.data() + 1;  // unaligned
  const std::uint8_t* b = data.data() + 1 + 9 * 64;
  int checked = 0;
  for (const simd::Sha256Kernel& kernel : simd::built_sha256_kernels()) {
    if (!simd::sha256_kernel_usable(kernel)) continue;
    ++checked;
    std::mt19937 random(59);
    for (std::size_t count = 0; count <= 9; ++count) {
      std::array<std::uint32_t, 8> pair_a{};
      std::array<std::uint32_t, 8> pair_b{};
      for (auto& word : pair_a) word = static_cast<std::uint32_t>(random());
      for (auto& word : pair_b) word = static_cast<std::uint32_t>(random());
      std::array<std::uint32_t, 8> alone_a = pair_a;
      std::array<std::uint32_t, 8> alone_b = pair_b;
      kernel.compress_pair(pair_a.data(), a, pair_b.data(), b, count);
      kernel.compress(alone_a.data(), a, count);
      kernel.compress(alone_b.data(), b, count);
      EXPECT_EQ(pair_a, alone_a) << kernel.name << ", " << count << " blocks";
      EXPECT_EQ(pair_b, alone_b) << kernel.name << ", " << count << " blocks";
    }
  }
  if (checked == 0) GTEST_SKIP() << "no SHA-256 kernel is usable on this CPU (no SHA-NI)";
}

// Messages whose last byte is the last readable byte before a PROT_NONE page: a kernel that read
// past its input would fault.
TEST_P(Sha256Each, InputsFlushAgainstAGuardPage) {
  const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  void* mapping =
      mmap(nullptr, 3 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(mapping, MAP_FAILED);
  auto* bytes = static_cast<std::uint8_t*>(mapping);
  const auto fill = test::splitmix64_bytes(47, page);
  std::memcpy(bytes, fill.data(), page);
  std::memcpy(bytes + 2 * page, fill.data(), page);
  ASSERT_EQ(mprotect(bytes + page, page, PROT_NONE), 0);
  for (const std::size_t length : {1U, 55U, 64U, 100U, 128U, 1000U}) {
    expect_each_matches({ByteSpan(bytes + page - length, length), ByteSpan(bytes + 2 * page, 300),
                         ByteSpan(bytes + page - 2 * length / 3, 2 * length / 3)});
  }
  munmap(mapping, 3 * page);
}

INSTANTIATE_TEST_SUITE_P(Kernels, Sha256Each, testing::Values("openssl", "shani", "shani_avx512"),
                         [](const testing::TestParamInfo<std::string>& param) {
                           return param.param;
                         });

}  // namespace
}  // namespace strata
