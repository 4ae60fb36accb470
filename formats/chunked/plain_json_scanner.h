// A scanner for the plain JSON that layer tools write (TOCs, tar-split lines): it reads strings
// without escapes, ASCII only, integers without fraction or exponent, null, and the punctuation
// between them, and says "no" to anything else (an escape, a non-ASCII byte, a float, a boolean,
// 19 or more digits). Callers use it as a fast path and hand any line or document it refuses to
// nlohmann-json, which parses all of JSON, checks UTF-8 and names the problem; so whatever this
// scanner accepts must read exactly as nlohmann reads it (RFC 8259 §6, §7).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace strata::fastpull::detail {

class PlainJsonScanner {
 public:
  explicit PlainJsonScanner(std::string_view text) : text_(text) {}

  [[nodiscard]] bool at_end() {
    skip_space();
    return pos_ == text_.size();
  }
  // The next non-space character is `c`.
  [[nodiscard]] bool at(char c) {
    skip_space();
    return pos_ < text_.size() && text_[pos_] == c;
  }
  // Takes `c` if it is next (after spaces).
  bool take(char c) {
    if (!at(c)) return false;
    ++pos_;
    return true;
  }
  bool null() {
    skip_space();
    if (text_.substr(pos_, 4) != "null") return false;
    pos_ += 4;
    return ends_value();
  }
  // A string without escapes, control characters or bytes past ASCII.
  bool string(std::string_view& value) {
    if (!take('"')) return false;
    const std::size_t start = pos_;
    for (; pos_ < text_.size(); ++pos_) {
      const auto c = static_cast<unsigned char>(text_[pos_]);
      if (c == '"') {
        value = text_.substr(start, pos_ - start);
        ++pos_;
        return true;
      }
      if (c == '\\' || c < 0x20U || c >= 0x80U) return false;
    }
    return false;
  }
  // Digits without a sign, fraction, exponent or leading zero; at most 18 of them.
  bool unsigned_number(std::uint64_t& value) {
    skip_space();
    const std::size_t start = pos_;
    value = 0;
    while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
      value = value * 10 + static_cast<std::uint64_t>(text_[pos_] - '0');
      ++pos_;
    }
    const std::size_t digits = pos_ - start;
    if (digits == 0 || digits > 18 || (digits > 1 && text_[start] == '0')) return false;
    return ends_value();
  }
  // An integer with an optional minus sign (nlohmann reads "-0" as the integer 0).
  bool signed_number(std::int64_t& value) {
    const bool negative = take('-');
    if (negative && (pos_ == text_.size() || text_[pos_] < '0' || text_[pos_] > '9')) return false;
    std::uint64_t magnitude = 0;
    if (!unsigned_number(magnitude)) return false;
    value = negative ? -static_cast<std::int64_t>(magnitude) : static_cast<std::int64_t>(magnitude);
    return true;
  }
  // Skips one value that is a string, an integer or null (anything else: false).
  bool skip_simple_value() {
    std::string_view text;
    std::int64_t number = 0;
    if (at('"')) return string(text);
    if (at('n')) return null();
    return signed_number(number);
  }

 private:
  void skip_space() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' ||
                                   text_[pos_] == '\n' || text_[pos_] == '\r')) {
      ++pos_;
    }
  }
  // A literal or number must be followed by a delimiter, never by more of a token.
  bool ends_value() {
    if (pos_ == text_.size()) return true;
    const char c = text_[pos_];
    return c == ',' || c == '}' || c == ']' || c == ' ' || c == '\t' || c == '\n' || c == '\r';
  }

  std::string_view text_;
  std::size_t pos_ = 0;
};

}  // namespace strata::fastpull::detail
