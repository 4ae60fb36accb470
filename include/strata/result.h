// Errors as values: every fallible strata call returns Result<T>, which holds either a T or an
// Error (a stable code plus a message that names the problem). The library never prints and never
// aborts; callers decide how to report. Modelled on std::expected (C++23), kept to C++20.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace strata {

// Stable error codes: numeric values are part of the ABI and of the tool's --json output.
enum class ErrorCode : std::uint8_t {
  kInvalidArgument = 1,  // a parameter out of range or inconsistent
  kIo = 2,               // the operating system refused a read, write or open
  kCorruptInput = 3,     // input bytes do not follow the format they claim
  kUnsupported = 4,      // valid input using a feature strata does not handle
  kLimitExceeded = 5,    // input larger than a configured cap (bombs, absurd sizes)
  kNotFound = 6,         // a named object (chunk, layer, kernel, tag) does not exist
  kDigestMismatch = 7,   // content does not hash to the digest it was announced with
  kUnsafePath = 8,       // a path that would escape its destination
  kInternal = 9,         // a broken invariant inside strata: a bug, reported rather than aborting
};

// Short machine-readable name of a code, e.g. "corrupt_input".
std::string_view error_code_name(ErrorCode code) noexcept;

struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;

  // "corrupt_input: tar header checksum mismatch at offset 512"
  [[nodiscard]] std::string to_string() const;
};

[[nodiscard]] inline Error make_error(ErrorCode code, std::string message) {
  return Error{code, std::move(message)};
}

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value)
      : state_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  Result(Error error) : state_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  [[nodiscard]] bool ok() const noexcept { return state_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  // Precondition: ok(). Checked in builds with assertions.
  T& value() & { return std::get<0>(state_); }
  const T& value() const& { return std::get<0>(state_); }
  T&& value() && { return std::get<0>(std::move(state_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  // Precondition: !ok().
  const Error& error() const& { return std::get<1>(state_); }
  Error&& error() && { return std::get<1>(std::move(state_)); }

 private:
  std::variant<T, Error> state_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), failed_(true) {}  // NOLINT: implicit by design

  [[nodiscard]] bool ok() const noexcept { return !failed_; }
  explicit operator bool() const noexcept { return ok(); }
  const Error& error() const& { return error_; }
  Error&& error() && { return std::move(error_); }

 private:
  Error error_;
  bool failed_ = false;
};

// Propagates an error from an expression returning Result<...>.
#define STRATA_TRY(expr)                            \
  do {                                              \
    auto strata_try_result_ = (expr);               \
    if (!strata_try_result_.ok()) {                 \
      return std::move(strata_try_result_).error(); \
    }                                               \
  } while (false)

}  // namespace strata
