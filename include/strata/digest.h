// SHA-256 content digests as OCI writes them ("sha256:<64 lowercase hex>"), computed with OpenSSL's
// EVP interface (SHA-NI where the CPU has it). Sha256 is the streaming form used for diff_ids and
// blob digests; sha256_of() is the one-shot form used per chunk, sha256_of_each() the form for many
// chunks at once (two messages interleaved on SHA-NI where the CPU has it).
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "strata/buffer.h"
#include "strata/result.h"

namespace strata {

class Digest {
 public:
  static constexpr std::size_t kSize = 32;
  using Bytes = std::array<std::uint8_t, kSize>;

  Digest() = default;
  explicit Digest(const Bytes& bytes) : bytes_(bytes) {}

  // Accepts exactly "sha256:" followed by 64 lowercase hex digits (the OCI canonical form).
  static Result<Digest> parse(std::string_view text);

  [[nodiscard]] const Bytes& bytes() const noexcept { return bytes_; }
  [[nodiscard]] std::string hex() const;
  [[nodiscard]] std::string to_string() const { return "sha256:" + hex(); }

  friend auto operator<=>(const Digest&, const Digest&) = default;

 private:
  Bytes bytes_{};
};

[[nodiscard]] Digest sha256_of(ByteSpan data);

// digests[i] = sha256_of(inputs[i]) for every i below min(inputs.size(), digests.size()) (give
// spans of equal size; digests past the inputs are left as they are). Where the CPU has SHA-NI it
// compresses two messages at once, which the SHA unit's latency leaves room for: many chunk-sized
// inputs hash faster than with one sha256_of call each. Elsewhere it is those calls.
void sha256_of_each(std::span<const ByteSpan> inputs, std::span<Digest> digests);

// {sha256_of(a), sha256_of(b)}, the two hashed at once as in sha256_of_each.
[[nodiscard]] std::pair<Digest, Digest> sha256_of_pair(ByteSpan a, ByteSpan b);

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(ByteSpan data);
  // Returns the digest and resets the state for reuse.
  Digest finish();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// Lowercase hex of arbitrary bytes.
[[nodiscard]] std::string to_hex(ByteSpan data);

}  // namespace strata
