// SHA-256 through OpenSSL 3's EVP interface. The EVP_MD is fetched once per process (implicit
// fetching per call costs more than hashing a small chunk); OpenSSL picks SHA-NI at run time.
#include "strata/digest.h"

#include <openssl/evp.h>

#include <cstring>

namespace strata {
namespace {

const EVP_MD* sha256_md() {
  static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return md != nullptr ? md : EVP_sha256();
}

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;  // uppercase is not canonical in OCI digests
}

}  // namespace

std::string to_hex(ByteSpan data) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string text(data.size() * 2, '0');
  for (std::size_t i = 0; i < data.size(); ++i) {
    text[2 * i] = kDigits[data[i] >> 4U];
    text[2 * i + 1] = kDigits[data[i] & 0x0FU];
  }
  return text;
}

Result<Digest> Digest::parse(std::string_view text) {
  constexpr std::string_view kPrefix = "sha256:";
  if (text.substr(0, kPrefix.size()) != kPrefix) {
    return make_error(ErrorCode::kInvalidArgument, "digest '" + std::string(text.substr(0, 80)) +
                                                       "' does not start with 'sha256:'");
  }
  const std::string_view hex = text.substr(kPrefix.size());
  if (hex.size() != kSize * 2) {
    return make_error(ErrorCode::kInvalidArgument,
                      "digest has " + std::to_string(hex.size()) + " hex digits, expected 64");
  }
  Bytes bytes{};
  for (std::size_t i = 0; i < kSize; ++i) {
    const int high = hex_value(hex[2 * i]);
    const int low = hex_value(hex[2 * i + 1]);
    if (high < 0 || low < 0) {
      return make_error(ErrorCode::kInvalidArgument,
                        "digest contains a character that is not lowercase hex at position " +
                            std::to_string(kPrefix.size() + 2 * i));
    }
    bytes[i] = static_cast<std::uint8_t>((high << 4) | low);
  }
  return Digest(bytes);
}

std::string Digest::hex() const {
  return to_hex(bytes_);
}

Digest sha256_of(ByteSpan data) {
  Digest::Bytes bytes{};
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), bytes.data(), &length, sha256_md(), nullptr);
  return Digest(bytes);
}

struct Sha256::State {
  EVP_MD_CTX* context = EVP_MD_CTX_new();
  ~State() { EVP_MD_CTX_free(context); }
  State() { EVP_DigestInit_ex(context, sha256_md(), nullptr); }
  State(const State&) = delete;
  State& operator=(const State&) = delete;
};

Sha256::Sha256() : state_(std::make_unique<State>()) {}
Sha256::~Sha256() = default;
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;

void Sha256::update(ByteSpan data) {
  if (!data.empty()) EVP_DigestUpdate(state_->context, data.data(), data.size());
}

Digest Sha256::finish() {
  Digest::Bytes bytes{};
  unsigned int length = 0;
  EVP_DigestFinal_ex(state_->context, bytes.data(), &length);
  EVP_DigestInit_ex(state_->context, sha256_md(), nullptr);
  return Digest(bytes);
}

}  // namespace strata
