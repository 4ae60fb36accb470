// Names and formatting for strata's error codes (include/strata/result.h).
#include "strata/result.h"

namespace strata {

std::string_view error_code_name(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::kInvalidArgument: return "invalid_argument";
    case ErrorCode::kIo: return "io";
    case ErrorCode::kCorruptInput: return "corrupt_input";
    case ErrorCode::kUnsupported: return "unsupported";
    case ErrorCode::kLimitExceeded: return "limit_exceeded";
    case ErrorCode::kNotFound: return "not_found";
    case ErrorCode::kDigestMismatch: return "digest_mismatch";
    case ErrorCode::kUnsafePath: return "unsafe_path";
    case ErrorCode::kInternal: return "internal";
  }
  return "unknown";
}

std::string Error::to_string() const {
  std::string text(error_code_name(code));
  text += ": ";
  text += message;
  return text;
}

}  // namespace strata
