// casync / desync chunk ids: SHA-512/256 of the uncompressed chunk (desync ChunkID,
// shared/specs/chunking.md §4.2-4.3), through OpenSSL's EVP interface ("SHA512-256").
#include <openssl/evp.h>

#include <array>
#include <memory>

#include "strata/chunker.h"

namespace strata {

std::string casync_chunk_id(ByteSpan bytes) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int size = 0;
  const std::unique_ptr<EVP_MD, decltype(&EVP_MD_free)> algorithm(
      EVP_MD_fetch(nullptr, "SHA512-256", nullptr), &EVP_MD_free);
  if (algorithm == nullptr ||
      EVP_Digest(bytes.data(), bytes.size(), digest.data(), &size, algorithm.get(), nullptr) != 1) {
    return {};  // OpenSSL without SHA-512/256: no id rather than a wrong one
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string text;
  text.reserve(2U * size);
  for (unsigned int i = 0; i < size; ++i) {
    text += kHex[digest[i] >> 4U];
    text += kHex[digest[i] & 15U];
  }
  return text;
}

}  // namespace strata
