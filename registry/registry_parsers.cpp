// Pure parsers for what an OCI registry sends and what a user configures: image references,
// "user:pass", WWW-Authenticate challenges (RFC 9110 §11.6.1, RFC 6750 §3), Link headers
// (RFC 8288), Content-Range and multipart/byteranges (RFC 9110 §14.4, §14.6), Retry-After
// (RFC 9110 §10.2.3) and Docker-style auth.json. Every input may be hostile: lengths are checked
// before use, nothing is allocated from a number the input claims. shared/specs/layer-formats.md
// §3.
#include <openssl/evp.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "strata/registry.h"

namespace strata::registry {
namespace {

constexpr std::size_t kMaxReferenceBytes = 4096;
constexpr std::size_t kMaxAuthFileBytes = std::size_t{1} << 20U;

bool is_token_char(char c) {
  // tchar of RFC 9110 §5.6.2.
  return std::isalnum(static_cast<unsigned char>(c)) != 0 ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_space(char c) {
  return c == ' ' || c == '\t';
}

std::string lowercase(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && (is_space(text.back()) || text.back() == '\r' || text.back() == '\n')) {
    text.remove_suffix(1);
  }
  return text;
}

Result<std::uint64_t> parse_decimal(std::string_view text, std::string_view what) {
  std::uint64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || end != text.data() + text.size()) {
    return make_error(ErrorCode::kCorruptInput, std::string(what) + ": '" +
                                                    std::string(text.substr(0, 64)) +
                                                    "' is not a decimal number that fits 64 bits");
  }
  return value;
}

// A quoted-string starting at text[pos] == '"'; advances pos past the closing quote.
Result<std::string> read_quoted(std::string_view text, std::size_t& pos) {
  std::string value;
  ++pos;
  while (pos < text.size()) {
    const char c = text[pos++];
    if (c == '"') return value;
    if (c == '\\') {
      if (pos >= text.size()) break;
      value.push_back(text[pos++]);
    } else {
      value.push_back(c);
    }
  }
  return make_error(ErrorCode::kCorruptInput, "WWW-Authenticate: unterminated quoted string");
}

bool valid_repository_component(std::string_view component) {
  if (component.empty()) return false;
  return std::all_of(component.begin(), component.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
  });
}

}  // namespace

// ---- references -------------------------------------------------------------------------------

std::string ImageReference::reference() const {
  if (!tag.empty()) return tag;
  return digest ? digest->to_string() : std::string("latest");
}

std::string ImageReference::to_string() const {
  std::string text = registry + "/" + repository;
  if (!tag.empty()) text += ":" + tag;
  if (digest) text += "@" + digest->to_string();
  return text;
}

Result<ImageReference> parse_image_reference(std::string_view text) {
  if (text.empty() || text.size() > kMaxReferenceBytes) {
    return make_error(ErrorCode::kInvalidArgument, "image reference is empty or too long");
  }
  ImageReference reference;
  std::string_view rest = text;
  if (const auto at = rest.find('@'); at != std::string_view::npos) {
    auto digest = Digest::parse(rest.substr(at + 1));
    if (!digest.ok()) {
      return make_error(ErrorCode::kInvalidArgument,
                        "image reference '" + std::string(text) + "': " + digest.error().message);
    }
    reference.digest = *digest;
    rest = rest.substr(0, at);
  }
  // A ':' after the last '/' starts the tag (a ':' before it belongs to host:port).
  const auto slash = rest.rfind('/');
  const auto colon = rest.rfind(':');
  if (colon != std::string_view::npos && (slash == std::string_view::npos || colon > slash)) {
    reference.tag = std::string(rest.substr(colon + 1));
    rest = rest.substr(0, colon);
    if (!oci::is_valid_tag(reference.tag)) {
      return make_error(ErrorCode::kInvalidArgument,
                        "image reference '" + std::string(text) + "': invalid tag");
    }
  }
  const auto first_slash = rest.find('/');
  const std::string_view first = rest.substr(0, first_slash);
  if (first_slash != std::string_view::npos &&
      (first.find('.') != std::string_view::npos || first.find(':') != std::string_view::npos ||
       first == "localhost")) {
    reference.registry = std::string(first);
    rest = rest.substr(first_slash + 1);
  } else {
    reference.registry = "docker.io";
    if (rest.find('/') == std::string_view::npos) reference.repository = "library/";
  }
  reference.repository += std::string(rest);
  std::string_view path = reference.repository;
  while (true) {
    const auto next = path.find('/');
    if (!valid_repository_component(path.substr(0, next))) {
      return make_error(ErrorCode::kInvalidArgument,
                        "image reference '" + std::string(text) + "': invalid repository name '" +
                            reference.repository + "' (lowercase a-z 0-9 . _ - and '/')");
    }
    if (next == std::string_view::npos) break;
    path = path.substr(next + 1);
  }
  if (reference.registry.empty()) {
    return make_error(ErrorCode::kInvalidArgument,
                      "image reference '" + std::string(text) + "': empty registry");
  }
  if (reference.tag.empty() && !reference.digest) reference.tag = "latest";
  return reference;
}

Result<Credentials> parse_credentials(std::string_view text) {
  const auto colon = text.find(':');
  if (colon == std::string_view::npos || colon == 0) {
    return make_error(ErrorCode::kInvalidArgument, "credentials must be 'user:password'");
  }
  return Credentials{std::string(text.substr(0, colon)), std::string(text.substr(colon + 1))};
}

// ---- WWW-Authenticate -------------------------------------------------------------------------

Result<std::vector<AuthChallenge>> parse_www_authenticate(std::string_view header) {
  if (header.size() > kMaxHeaderValueBytes) {
    return make_error(ErrorCode::kLimitExceeded, "WWW-Authenticate header too long");
  }
  std::vector<AuthChallenge> challenges;
  std::size_t pos = 0;
  const auto skip_space = [&] {
    while (pos < header.size() && (is_space(header[pos]) || header[pos] == ',')) ++pos;
  };
  const auto read_token = [&] {
    const std::size_t start = pos;
    while (pos < header.size() && is_token_char(header[pos])) ++pos;
    return header.substr(start, pos - start);
  };
  skip_space();
  while (pos < header.size()) {
    const std::string_view scheme = read_token();
    if (scheme.empty()) {
      return make_error(ErrorCode::kCorruptInput,
                        "WWW-Authenticate: expected an auth scheme at " + std::to_string(pos));
    }
    AuthChallenge challenge;
    challenge.scheme = lowercase(scheme);
    // auth-params: name=value pairs separated by commas, until a token not followed by '='
    // (which starts the next challenge).
    while (true) {
      while (pos < header.size() && is_space(header[pos])) ++pos;
      const std::size_t param_start = pos;
      const std::string_view name = read_token();
      std::size_t after_name = pos;
      while (after_name < header.size() && is_space(header[after_name])) ++after_name;
      if (name.empty() || after_name >= header.size() || header[after_name] != '=') {
        pos = param_start;
        break;
      }
      pos = after_name + 1;
      while (pos < header.size() && is_space(header[pos])) ++pos;
      std::string value;
      if (pos < header.size() && header[pos] == '"') {
        auto quoted = read_quoted(header, pos);
        if (!quoted.ok()) return std::move(quoted).error();
        value = std::move(*quoted);
      } else {
        // A token (or token68 padding '=').
        const std::size_t start = pos;
        while (pos < header.size() &&
               (is_token_char(header[pos]) || header[pos] == '=' || header[pos] == '/')) {
          ++pos;
        }
        value = std::string(header.substr(start, pos - start));
      }
      challenge.params[lowercase(name)] = std::move(value);
      while (pos < header.size() && is_space(header[pos])) ++pos;
      if (pos < header.size() && header[pos] == ',') {
        ++pos;
        continue;
      }
      break;
    }
    challenges.push_back(std::move(challenge));
    if (challenges.size() > 64) {
      return make_error(ErrorCode::kLimitExceeded, "WWW-Authenticate: more than 64 challenges");
    }
    skip_space();
  }
  if (challenges.empty()) {
    return make_error(ErrorCode::kCorruptInput, "WWW-Authenticate: no challenge");
  }
  return challenges;
}

// ---- Link -------------------------------------------------------------------------------------

Result<std::optional<std::string>> parse_next_link(std::string_view header) {
  if (header.size() > kMaxHeaderValueBytes) {
    return make_error(ErrorCode::kLimitExceeded, "Link header too long");
  }
  std::size_t pos = 0;
  while (pos < header.size()) {
    const auto open = header.find('<', pos);
    if (open == std::string_view::npos) break;
    const auto close = header.find('>', open);
    if (close == std::string_view::npos) {
      return make_error(ErrorCode::kCorruptInput, "Link header: '<' without '>'");
    }
    const std::string_view target = header.substr(open + 1, close - open - 1);
    // Parameters run to the next link (a ',' outside quotes) or the end.
    std::size_t end = close + 1;
    bool quoted = false;
    while (end < header.size() && (quoted || header[end] != ',')) {
      if (header[end] == '"') quoted = !quoted;
      ++end;
    }
    const std::string params = lowercase(header.substr(close + 1, end - close - 1));
    std::string compact;
    for (char c : params) {
      if (!is_space(c) && c != '"') compact.push_back(c);
    }
    // rel may hold several space-separated types; "next" alone is what registries send.
    if (compact.find(";rel=next") != std::string::npos) {
      if (target.empty()) return make_error(ErrorCode::kCorruptInput, "Link header: empty target");
      return std::optional<std::string>(std::string(target));
    }
    pos = end + 1;
  }
  return std::optional<std::string>();
}

// ---- ranges -----------------------------------------------------------------------------------

Result<ContentRange> parse_content_range(std::string_view header) {
  std::string_view text = trim(header);
  constexpr std::string_view kUnit = "bytes ";
  if (text.size() < kUnit.size() || lowercase(text.substr(0, kUnit.size())) != kUnit) {
    return make_error(ErrorCode::kCorruptInput,
                      "Content-Range '" + std::string(text.substr(0, 64)) + "': not 'bytes '");
  }
  text.remove_prefix(kUnit.size());
  const auto dash = text.find('-');
  const auto slash = text.find('/');
  if (dash == std::string_view::npos || slash == std::string_view::npos || dash > slash) {
    return make_error(ErrorCode::kCorruptInput, "Content-Range: expected 'first-last/length'");
  }
  ContentRange range;
  auto first = parse_decimal(text.substr(0, dash), "Content-Range first byte");
  if (!first.ok()) return std::move(first).error();
  auto last = parse_decimal(text.substr(dash + 1, slash - dash - 1), "Content-Range last byte");
  if (!last.ok()) return std::move(last).error();
  range.first = *first;
  range.last = *last;
  if (range.last < range.first) {
    return make_error(ErrorCode::kCorruptInput, "Content-Range: last byte before first");
  }
  const std::string_view length = text.substr(slash + 1);
  if (length != "*") {
    auto complete = parse_decimal(length, "Content-Range length");
    if (!complete.ok()) return std::move(complete).error();
    if (range.last >= *complete) {
      return make_error(ErrorCode::kCorruptInput, "Content-Range: range ends past the length");
    }
    range.complete_length = *complete;
  }
  return range;
}

Result<std::string> parse_multipart_boundary(std::string_view content_type) {
  if (content_type.size() > kMaxHeaderValueBytes) {
    return make_error(ErrorCode::kLimitExceeded, "Content-Type too long");
  }
  const auto semicolon = content_type.find(';');
  if (lowercase(trim(content_type.substr(0, semicolon))) != "multipart/byteranges") {
    return make_error(ErrorCode::kUnsupported, "Content-Type '" +
                                                   std::string(content_type.substr(0, 80)) +
                                                   "' is not multipart/byteranges");
  }
  std::size_t pos = semicolon;
  while (pos != std::string_view::npos && pos < content_type.size()) {
    ++pos;
    const auto next = content_type.find(';', pos);
    const std::string_view param = trim(content_type.substr(pos, next - pos));
    const auto equals = param.find('=');
    if (equals != std::string_view::npos &&
        lowercase(trim(param.substr(0, equals))) == "boundary") {
      std::string_view value = trim(param.substr(equals + 1));
      if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
        value = value.substr(1, value.size() - 2);
      }
      // RFC 2046 §5.1.1: 1 to 70 characters.
      if (value.empty() || value.size() > 70) {
        return make_error(ErrorCode::kCorruptInput, "multipart boundary must be 1-70 characters");
      }
      return std::string(value);
    }
    pos = next;
  }
  return make_error(ErrorCode::kCorruptInput, "multipart/byteranges without a boundary");
}

Result<std::vector<BytePart>> parse_multipart_byteranges(ByteSpan body, std::string_view boundary,
                                                         std::optional<std::uint64_t> blob_size) {
  if (boundary.empty()) return make_error(ErrorCode::kCorruptInput, "empty multipart boundary");
  const std::string_view text(reinterpret_cast<const char*>(body.data()), body.size());
  const std::string delimiter = "--" + std::string(boundary);
  std::vector<BytePart> parts;
  // The first delimiter may follow a preamble; every later one follows the CRLF after a part.
  std::size_t pos = text.find(delimiter);
  if (pos == std::string_view::npos) {
    return make_error(ErrorCode::kCorruptInput, "multipart body: boundary not found");
  }
  while (true) {
    pos += delimiter.size();
    if (text.substr(pos, 2) == "--") return parts;  // close delimiter
    // Transport padding, then CRLF.
    while (pos < text.size() && is_space(text[pos])) ++pos;
    if (text.substr(pos, 2) != "\r\n") {
      return make_error(ErrorCode::kCorruptInput,
                        "multipart body: no CRLF after boundary at " + std::to_string(pos));
    }
    pos += 2;
    if (parts.size() >= kMaxMultipartParts) {
      return make_error(
          ErrorCode::kLimitExceeded,
          "multipart body: more than " + std::to_string(kMaxMultipartParts) + " parts");
    }
    const auto headers_end = text.find("\r\n\r\n", pos);
    if (headers_end == std::string_view::npos || headers_end - pos > kMaxHeaderValueBytes) {
      return make_error(ErrorCode::kCorruptInput,
                        "multipart body: part headers not terminated at " + std::to_string(pos));
    }
    std::optional<ContentRange> range;
    std::string_view headers = text.substr(pos, headers_end - pos);
    while (!headers.empty()) {
      const auto eol = headers.find("\r\n");
      const std::string_view line = headers.substr(0, eol);
      const auto colon = line.find(':');
      if (colon != std::string_view::npos &&
          lowercase(trim(line.substr(0, colon))) == "content-range") {
        auto parsed = parse_content_range(line.substr(colon + 1));
        if (!parsed.ok()) return std::move(parsed).error();
        range = *parsed;
      }
      if (eol == std::string_view::npos) break;
      headers.remove_prefix(eol + 2);
    }
    if (!range) {
      return make_error(ErrorCode::kCorruptInput, "multipart part without Content-Range");
    }
    if (blob_size && (range->last >= *blob_size ||
                      (range->complete_length && *range->complete_length != *blob_size))) {
      return make_error(ErrorCode::kCorruptInput,
                        "multipart part range " + std::to_string(range->first) + "-" +
                            std::to_string(range->last) + " does not fit the blob's " +
                            std::to_string(*blob_size) + " bytes");
    }
    const std::size_t data_start = headers_end + 4;
    const std::uint64_t length = range->last - range->first + 1;
    if (length > text.size() - data_start) {
      return make_error(ErrorCode::kCorruptInput,
                        "multipart part claims " + std::to_string(length) + " bytes, body has " +
                            std::to_string(text.size() - data_start) + " left");
    }
    const auto data_length = static_cast<std::size_t>(length);
    parts.push_back(BytePart{*range, body.subspan(data_start, data_length)});
    pos = data_start + data_length;
    if (text.substr(pos, 2) != "\r\n" || text.substr(pos + 2, delimiter.size()) != delimiter) {
      return make_error(
          ErrorCode::kCorruptInput,
          "multipart body: part data not followed by the boundary at " + std::to_string(pos));
    }
    pos += 2;
  }
}

Result<std::vector<std::vector<std::uint8_t>>> extract_ranges(std::span<const BytePart> parts,
                                                              std::span<const ByteRange> ranges) {
  std::vector<std::vector<std::uint8_t>> out;
  out.reserve(ranges.size());
  for (const ByteRange& range : ranges) {
    const BytePart* covering = nullptr;
    for (const BytePart& part : parts) {
      if (range.length == 0 ||
          (part.range.first <= range.offset && range.offset + range.length - 1 <= part.range.last &&
           range.offset + range.length > range.offset)) {
        covering = &part;
        break;
      }
    }
    if (covering == nullptr) {
      return make_error(ErrorCode::kCorruptInput, "range response does not cover bytes " +
                                                      std::to_string(range.offset) + "+" +
                                                      std::to_string(range.length));
    }
    if (range.length == 0) {
      out.emplace_back();
      continue;
    }
    const auto start = static_cast<std::size_t>(range.offset - covering->range.first);
    const auto bytes = covering->bytes.subspan(start, static_cast<std::size_t>(range.length));
    out.emplace_back(bytes.begin(), bytes.end());
  }
  return out;
}

// ---- Retry-After ------------------------------------------------------------------------------

std::optional<std::chrono::seconds> parse_retry_after(std::string_view header,
                                                      std::chrono::system_clock::time_point now) {
  const std::string_view text = trim(header);
  if (text.empty() || text.size() > 64) return std::nullopt;
  if (std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    auto value = parse_decimal(text, "Retry-After");
    if (!value.ok()) return std::nullopt;
    constexpr std::uint64_t kOneDay = 86400;
    return std::chrono::seconds(static_cast<std::int64_t>(std::min(*value, kOneDay)));
  }
  // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT".
  std::tm parts{};
  std::istringstream stream{std::string(text)};
  stream.imbue(std::locale::classic());
  stream >> std::get_time(&parts, "%a, %d %b %Y %H:%M:%S GMT");
  if (stream.fail()) return std::nullopt;
  // In whole seconds: a far-future date (year 9395) overflows system_clock's nanoseconds.
  const std::int64_t delta = static_cast<std::int64_t>(timegm(&parts)) -
                             static_cast<std::int64_t>(std::chrono::system_clock::to_time_t(now));
  constexpr std::int64_t kOneDay = 86400;
  return std::chrono::seconds(std::clamp<std::int64_t>(delta, 0, kOneDay));
}

// ---- auth.json --------------------------------------------------------------------------------

namespace {

// The host part of an auth.json key: "https://host:5000/v1/" -> "host:5000".
std::string auth_key_host(std::string_view key) {
  if (const auto scheme = key.find("://"); scheme != std::string_view::npos) {
    key.remove_prefix(scheme + 3);
  }
  return std::string(key.substr(0, key.find('/')));
}

bool registry_matches(std::string_view key, std::string_view registry) {
  const std::string host = auth_key_host(key);
  if (host == registry) return true;
  // Docker Hub's credentials are stored under its v1 index name.
  return registry == "docker.io" && (host == "index.docker.io" || host == "registry-1.docker.io");
}

Result<std::string> decode_base64(std::string_view text) {
  if (text.size() % 4 != 0 || text.size() > kMaxTokenBytes) {
    return make_error(ErrorCode::kCorruptInput, "auth.json: 'auth' is not base64");
  }
  std::string out(text.size() / 4 * 3, '\0');
  const int written = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                      reinterpret_cast<const unsigned char*>(text.data()),
                                      static_cast<int>(text.size()));
  if (written < 0) return make_error(ErrorCode::kCorruptInput, "auth.json: 'auth' is not base64");
  // EVP_DecodeBlock counts the padding as zero bytes.
  std::size_t length = static_cast<std::size_t>(written);
  if (text.size() >= 1 && text.back() == '=') --length;
  if (text.size() >= 2 && text[text.size() - 2] == '=') --length;
  out.resize(length);
  return out;
}

}  // namespace

Result<std::optional<Credentials>> parse_auth_json(ByteSpan json, std::string_view registry) {
  if (json.size() > kMaxAuthFileBytes) {
    return make_error(ErrorCode::kLimitExceeded, "auth.json larger than 1 MiB");
  }
  const auto document = nlohmann::json::parse(json.begin(), json.end(), nullptr, false);
  if (document.is_discarded() || !document.is_object()) {
    return make_error(ErrorCode::kCorruptInput, "auth.json is not a JSON object");
  }
  const auto auths = document.find("auths");
  if (auths == document.end()) return std::optional<Credentials>();
  if (!auths->is_object()) {
    return make_error(ErrorCode::kCorruptInput, "auth.json: 'auths' is not an object");
  }
  for (const auto& [key, entry] : auths->items()) {
    if (!registry_matches(key, registry)) continue;
    if (!entry.is_object()) {
      return make_error(ErrorCode::kCorruptInput, "auth.json: entry '" + key + "' not an object");
    }
    const auto auth = entry.find("auth");
    if (auth == entry.end()) continue;  // e.g. a credential helper entry
    if (!auth->is_string()) {
      return make_error(ErrorCode::kCorruptInput, "auth.json: '" + key + "'.auth not a string");
    }
    auto decoded = decode_base64(auth->get<std::string>());
    if (!decoded.ok()) return std::move(decoded).error();
    auto credentials = parse_credentials(*decoded);
    if (!credentials.ok()) {
      return make_error(ErrorCode::kCorruptInput,
                        "auth.json: '" + key + "'.auth does not decode to user:password");
    }
    return std::optional<Credentials>(std::move(*credentials));
  }
  return std::optional<Credentials>();
}

Result<std::optional<Credentials>> load_credentials(std::string_view registry) {
  std::vector<std::string> candidates;
  if (const char* file = std::getenv("REGISTRY_AUTH_FILE"); file != nullptr && *file != '\0') {
    candidates.emplace_back(file);
  }
  if (const char* runtime = std::getenv("XDG_RUNTIME_DIR"); runtime != nullptr && *runtime) {
    candidates.push_back(std::string(runtime) + "/containers/auth.json");
  }
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
    candidates.push_back(std::string(home) + "/.docker/config.json");
  }
  for (const std::string& path : candidates) {
    std::ifstream file(path, std::ios::binary);
    if (!file) continue;
    std::vector<std::uint8_t> bytes;
    char block[65536];
    while (file.read(block, sizeof block) || file.gcount() > 0) {
      bytes.insert(bytes.end(), block, block + file.gcount());
      if (bytes.size() > kMaxAuthFileBytes) {
        return make_error(ErrorCode::kLimitExceeded, path + ": larger than 1 MiB");
      }
    }
    auto credentials = parse_auth_json(bytes, registry);
    if (!credentials.ok()) {
      return make_error(credentials.error().code, path + ": " + credentials.error().message);
    }
    if (*credentials) return credentials;
  }
  return std::optional<Credentials>();
}

}  // namespace strata::registry
