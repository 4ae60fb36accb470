// A hash for Digest keys in unordered containers (the store's known-chunk set, the ingest's
// claimed chunks). A digest is SHA-256 output, uniformly distributed, so its first eight bytes
// already make a good hash; nothing is mixed.
#pragma once

#include <cstddef>
#include <cstring>

#include "strata/digest.h"

namespace strata {

struct DigestHash {
  std::size_t operator()(const Digest& digest) const noexcept {
    std::size_t value = 0;
    std::memcpy(&value, digest.bytes().data(), sizeof(value));
    return value;
  }
};

}  // namespace strata
