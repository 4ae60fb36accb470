// strata's version, for the tool's --version and for consumers that check at compile time.
#pragma once

#define STRATA_VERSION_MAJOR 0
#define STRATA_VERSION_MINOR 1
#define STRATA_VERSION_PATCH 0
#define STRATA_VERSION_STRING "0.1.0"

namespace strata {
inline constexpr const char* kVersion = STRATA_VERSION_STRING;
}  // namespace strata
