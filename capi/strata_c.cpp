// The C ABI of include/strata/strata_c.h over the C++ API (only the public headers in
// include/strata/). Everything here guards the boundary: every entry point checks its pointers and
// struct sizes, resolves handles through a table of live objects (a handle is a never-reused
// number, so a closed or forged one is refused, never dereferenced), catches every exception and
// turns strata::Error values and callback failures into a status plus a message. Built into the
// shared libstrata.so.1 (capi/CMakeLists.txt), whose linker version script exports only strata_*.
#include "strata/strata_c.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "strata/chunker.h"
#include "strata/digest.h"
#include "strata/engine.h"
#include "strata/fastpull.h"
#include "strata/model_artifact.h"
#include "strata/oci.h"
#include "strata/recipe.h"
#include "strata/registry.h"
#include "strata/result.h"
#include "strata/store.h"
#include "strata/unpack.h"
#include "strata/version.h"

namespace {

using strata::ByteSpan;
using strata::Digest;
using strata::ErrorCode;
using strata::Result;

// ---- errors ----------------------------------------------------------------------------------

// Thrown inside this file only, caught by guarded() before the boundary.
struct Failure {
  std::int32_t code;
  std::string message;
};

[[noreturn]] void fail(std::int32_t code, std::string message) {
  throw Failure{code, std::move(message)};
}

std::int32_t code_of(ErrorCode code) {
  return static_cast<std::int32_t>(code);
}

[[noreturn]] void fail(const strata::Error& error) {
  fail(code_of(error.code), error.message);
}

template <typename T>
T take(Result<T>&& result) {
  if (!result.ok()) fail(result.error());
  return std::move(result).value();
}

void check(const Result<void>& result) {
  if (!result.ok()) fail(result.error());
}

void set_error(strata_error* err, std::int32_t code, std::string_view message) {
  if (err == nullptr) return;
  err->code = code;
  const std::size_t length = std::min(message.size(), sizeof err->message - 1);
  std::memcpy(err->message, message.data(), length);
  err->message[length] = '\0';
}

// Runs `body` with every exception turned into a status; `err` is checked first.
template <typename Body>
std::int32_t guarded(strata_error* err, Body&& body) noexcept {
  if (err != nullptr && err->struct_size < sizeof(strata_error)) {
    return STRATA_E_INVALID_ARGUMENT;  // too small to hold a message: nothing is written
  }
  std::int32_t code = STRATA_OK;
  try {
    body();
    set_error(err, STRATA_OK, "");
    return STRATA_OK;
  } catch (const Failure& failure) {
    code = failure.code;
    try {
      set_error(err, code, failure.message);
    } catch (...) {
    }
  } catch (const std::bad_alloc&) {
    code = STRATA_E_OUT_OF_MEMORY;
    set_error(err, code, "out of memory");
  } catch (const std::exception& exception) {
    code = STRATA_E_INTERNAL;
    set_error(err, code, exception.what());
  } catch (...) {
    code = STRATA_E_INTERNAL;
    set_error(err, code, "unknown exception");
  }
  return code;
}

// ---- structs crossing the boundary -------------------------------------------------------------

// Far above any version of any struct here: a larger struct_size is garbage, and scanning that
// many bytes for non-zero ones would read past what the caller owns.
constexpr std::size_t kMaxStructSize = 4096;

// An input struct: NULL gives the defaults; a smaller struct_size than ours is refused; a larger
// one (a newer caller) only when the bytes we do not know are all zero.
template <typename T>
T read_input(const T* in, const char* name) {
  T value{};
  value.struct_size = sizeof(T);
  if (in == nullptr) return value;
  if (in->struct_size > kMaxStructSize) {
    fail(STRATA_E_INVALID_ARGUMENT, std::string(name) + ": struct_size " +
                                        std::to_string(in->struct_size) + " is implausible");
  }
  if (in->struct_size < sizeof(T)) {
    fail(STRATA_E_INVALID_ARGUMENT, std::string(name) + ": struct_size " +
                                        std::to_string(in->struct_size) + " is smaller than " +
                                        std::to_string(sizeof(T)));
  }
  const auto* bytes = reinterpret_cast<const unsigned char*>(in);
  for (std::size_t i = sizeof(T); i < in->struct_size; ++i) {
    if (bytes[i] != 0) {
      fail(STRATA_E_UNSUPPORTED,
           std::string(name) + ": sets fields this library does not know (struct_size " +
               std::to_string(in->struct_size) + ", known " + std::to_string(sizeof(T)) + ")");
    }
  }
  std::memcpy(&value, in, sizeof(T));
  return value;
}

// An output struct (may be NULL when optional): checked before any work is done.
template <typename T>
void check_output(const T* out, const char* name, bool optional) {
  if (out == nullptr) {
    if (optional) return;
    fail(STRATA_E_INVALID_ARGUMENT, std::string(name) + " is NULL");
  }
  if (out->struct_size < sizeof(T)) {
    fail(STRATA_E_INVALID_ARGUMENT, std::string(name) + ": struct_size " +
                                        std::to_string(out->struct_size) + " is smaller than " +
                                        std::to_string(sizeof(T)));
  }
}

template <typename T>
void write_output(T* out, T value) {
  if (out == nullptr) return;
  value.struct_size = out->struct_size;
  std::memcpy(out, &value, sizeof(T));
}

template <std::size_t N>
void copy_string(char (&destination)[N], std::string_view text) {
  const std::size_t length = std::min(text.size(), N - 1);
  std::memcpy(destination, text.data(), length);
  destination[length] = '\0';
}

template <std::size_t N>
void copy_digest(char (&destination)[N], const Digest& digest) {
  copy_string(destination, digest.to_string());
}

const char* require_string(const char* text, const char* name) {
  if (text == nullptr) fail(STRATA_E_INVALID_ARGUMENT, std::string(name) + " is NULL");
  return text;
}

Digest parse_digest(const char* text, const char* name) {
  auto digest = Digest::parse(require_string(text, name));
  if (!digest.ok())
    fail(STRATA_E_INVALID_ARGUMENT, std::string(name) + ": " + digest.error().message);
  return *digest;
}

// ---- handles -----------------------------------------------------------------------------------

// Live objects by number. A handle is the number cast to a pointer type; numbers are never reused,
// so a closed handle stays unknown for ever. shared_ptr keeps an object alive for a call in flight
// while another thread closes its handle.
template <typename Object>
class HandleTable {
 public:
  std::uintptr_t add(std::shared_ptr<Object> object) {
    const std::lock_guard lock(mutex_);
    const std::uintptr_t id = next_id_;
    next_id_ += 8;  // keeps values aligned-looking, never 0
    objects_.emplace(id, std::move(object));
    return id;
  }
  std::shared_ptr<Object> find(std::uintptr_t id) {
    const std::lock_guard lock(mutex_);
    const auto found = objects_.find(id);
    return found == objects_.end() ? nullptr : found->second;
  }
  bool remove(std::uintptr_t id) {
    std::shared_ptr<Object> dropped;  // destroyed outside the lock
    const std::lock_guard lock(mutex_);
    const auto found = objects_.find(id);
    if (found == objects_.end()) return false;
    dropped = std::move(found->second);
    objects_.erase(found);
    return true;
  }

 private:
  std::mutex mutex_;
  std::unordered_map<std::uintptr_t, std::shared_ptr<Object>> objects_;
  std::uintptr_t next_id_;

 public:
  explicit HandleTable(std::uintptr_t first) : next_id_(first) {}
};

struct StoreObject {
  explicit StoreObject(strata::ChunkStore s) : store(std::move(s)) {}
  strata::ChunkStore store;
};

struct ChunkerObject {
  explicit ChunkerObject(strata::Chunker c, bool digests)
      : chunker(std::move(c)), with_digests(digests) {}
  std::mutex mutex;  // feed/finish/reset of one chunker are serialised
  strata::Chunker chunker;
  bool with_digests = false;
  bool poisoned = false;  // a callback failed: refuse until reset
};

// Leaked on purpose: handles may be closed from static destructors of the caller.
HandleTable<StoreObject>& stores() {
  static auto* table = new HandleTable<StoreObject>(0x10000);
  return *table;
}
HandleTable<ChunkerObject>& chunkers() {
  static auto* table = new HandleTable<ChunkerObject>(0x20000000);
  return *table;
}

std::shared_ptr<StoreObject> find_store(strata_store* handle) {
  auto object =
      handle == nullptr ? nullptr : stores().find(reinterpret_cast<std::uintptr_t>(handle));
  if (object == nullptr) fail(STRATA_E_BAD_HANDLE, "store handle is NULL, closed or unknown");
  return object;
}

std::shared_ptr<ChunkerObject> find_chunker(strata_chunker* handle) {
  auto object =
      handle == nullptr ? nullptr : chunkers().find(reinterpret_cast<std::uintptr_t>(handle));
  if (object == nullptr) fail(STRATA_E_BAD_HANDLE, "chunker handle is NULL, closed or unknown");
  return object;
}

// ---- callbacks -------------------------------------------------------------------------------

// Remembers the first callback failure of a call, so the C++ error it causes is reported as
// STRATA_E_CALLBACK with the callback's own story.
struct CallbackState {
  bool failed = false;
  std::string message;
  strata::Error note(std::string text) {
    if (!failed) {
      failed = true;
      message = std::move(text);
    }
    return strata::make_error(ErrorCode::kInvalidArgument, message);
  }
  void rethrow_if_failed() const {
    if (failed) fail(STRATA_E_CALLBACK, message);
  }
};

// ---- chunking --------------------------------------------------------------------------------

strata::ChunkerOptions to_chunker_options(const strata_chunker_options& in) {
  if (in.algorithm < STRATA_CHUNK_FASTCDC2016 || in.algorithm > STRATA_CHUNK_CASYNC) {
    fail(STRATA_E_INVALID_ARGUMENT,
         "chunker options: unknown algorithm " + std::to_string(in.algorithm));
  }
  strata::ChunkerOptions options;
  options.algorithm = static_cast<strata::ChunkAlgorithm>(in.algorithm);
  options.min_size = in.min_size;
  options.avg_size = in.avg_size;
  options.max_size = in.max_size;
  options.level = in.level;
  options.seed = in.seed;
  check(strata::validate(options));
  return options;
}

strata_chunker_options default_chunker_options(std::int32_t algorithm) {
  if (algorithm < STRATA_CHUNK_FASTCDC2016 || algorithm > STRATA_CHUNK_CASYNC) {
    fail(STRATA_E_INVALID_ARGUMENT, "unknown chunk algorithm " + std::to_string(algorithm));
  }
  const auto defaults =
      strata::default_chunker_options(static_cast<strata::ChunkAlgorithm>(algorithm));
  strata_chunker_options out{};
  out.struct_size = sizeof out;
  out.algorithm = algorithm;
  out.min_size = defaults.min_size;
  out.avg_size = defaults.avg_size;
  out.max_size = defaults.max_size;
  out.level = defaults.level;
  out.seed = defaults.seed;
  return out;
}

strata_chunker_options chunker_options_or_default(const strata_chunker_options* in) {
  if (in == nullptr) return default_chunker_options(STRATA_CHUNK_FASTCDC2020);
  return read_input(in, "chunker options");
}

// Calls the user's chunk callback; false when it failed.
bool deliver_chunk(strata_chunk_fn on_chunk, void* user, bool with_digests,
                   const strata::Chunk& chunk, ByteSpan bytes) {
  strata_chunk out{};
  out.struct_size = sizeof out;
  out.offset = chunk.offset;
  out.length = chunk.length;
  out.hash = chunk.hash;
  if (with_digests) copy_digest(out.digest, strata::sha256_of(bytes));
  return on_chunk(user, &out, bytes.data()) == 0;
}

std::int32_t chunker_step(strata_chunker* handle, const std::uint8_t* data, std::size_t length,
                          bool finish, strata_chunk_fn on_chunk, void* user, strata_error* err) {
  return guarded(err, [&] {
    auto object = find_chunker(handle);
    if (on_chunk == nullptr) fail(STRATA_E_INVALID_ARGUMENT, "chunk callback is NULL");
    if (data == nullptr && length != 0) fail(STRATA_E_INVALID_ARGUMENT, "data is NULL");
    const std::lock_guard lock(object->mutex);
    if (object->poisoned) {
      fail(STRATA_E_CALLBACK, "an earlier chunk callback failed: reset the chunker first");
    }
    bool failed = false;
    std::uint64_t failed_offset = 0;
    const strata::Chunker::Sink sink = [&](const strata::Chunk& chunk, ByteSpan bytes) {
      if (failed) return;
      if (!deliver_chunk(on_chunk, user, object->with_digests, chunk, bytes)) {
        failed = true;
        failed_offset = chunk.offset;
      }
    };
    if (finish) {
      object->chunker.finish(sink);
    } else {
      object->chunker.feed(ByteSpan(data, length), sink);
    }
    if (failed) {
      object->poisoned = true;
      fail(STRATA_E_CALLBACK, "chunk callback failed at offset " + std::to_string(failed_offset));
    }
  });
}

// ---- ingest -------------------------------------------------------------------------------------

strata::IngestOptions to_ingest_options(const strata_ingest_options& in) {
  strata::IngestOptions options;
  options.threads = in.threads;
  if (in.zstd_level != 0) {
    if (in.zstd_level < 1 || in.zstd_level > 19) {
      fail(STRATA_E_INVALID_ARGUMENT,
           "ingest options: zstd_level " + std::to_string(in.zstd_level) + " is outside 1..19");
    }
    options.zstd_level = in.zstd_level;
  }
  options.trust = in.trust_local != 0 ? strata::TrustMode::kLocal : strata::TrustMode::kVerify;
  if (in.max_tar_bytes != 0) options.max_uncompressed_bytes = in.max_tar_bytes;
  return options;
}

strata_ingest_report to_ingest_report(const strata::IngestReport& report) {
  strata_ingest_report out{};
  copy_digest(out.diff_id, report.diff_id);
  copy_digest(out.layer_digest, report.layer_digest);
  copy_string(out.compression, report.compression);
  out.input_bytes = report.input_bytes;
  out.tar_bytes = report.tar_bytes;
  out.entries = report.entries;
  out.chunks = report.chunks;
  out.new_chunks = report.new_chunks;
  out.new_stored_bytes = report.new_stored_bytes;
  out.already_present = report.already_present ? 1 : 0;
  return out;
}

std::string fd_path(int fd) {
  return "/proc/self/fd/" + std::to_string(fd);
}

void check_fd(int fd) {
  if (fd < 0 || ::fcntl(fd, F_GETFD) == -1) {
    fail(STRATA_E_INVALID_ARGUMENT, "file descriptor " + std::to_string(fd) + " is not open");
  }
}

std::int32_t ingest_from_path(strata_store* handle, const char* path, int fd, strata_read_fn read,
                              void* user, const strata_ingest_options* options,
                              strata_ingest_report* report, strata_error* err) {
  return guarded(err, [&] {
    auto object = find_store(handle);
    const auto in = read_input(options, "ingest options");
    check_output(report, "ingest report", true);
    const auto ingest_options = to_ingest_options(in);
    std::string source;
    int spool = -1;
    struct Closer {
      int& fd;
      ~Closer() {
        if (fd >= 0) ::close(fd);
      }
    } closer{spool};
    if (path != nullptr) {
      source = path;
    } else if (read == nullptr) {
      check_fd(fd);
      source = fd_path(fd);
    } else {
      // Spooled to an unlinked file beside the store: a callback that fails or lies never leaves
      // a half layer that happens to parse, and the ingest reads a file at its own pace.
      spool = ::open(object->store.path().c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
      if (spool < 0) {
        fail(STRATA_E_IO, "cannot create a temporary file in " + object->store.path() + ": " +
                              std::strerror(errno));
      }
      std::vector<std::uint8_t> buffer(std::size_t{1} << 20U);
      for (;;) {
        const std::int64_t got = read(user, buffer.data(), buffer.size());
        if (got < 0) fail(STRATA_E_CALLBACK, "read callback failed (" + std::to_string(got) + ")");
        if (static_cast<std::uint64_t>(got) > buffer.size()) {
          fail(STRATA_E_CALLBACK, "read callback returned " + std::to_string(got) +
                                      " bytes for a buffer of " + std::to_string(buffer.size()));
        }
        if (got == 0) break;
        std::size_t done = 0;
        while (done < static_cast<std::size_t>(got)) {
          const ssize_t wrote =
              ::write(spool, buffer.data() + done, static_cast<std::size_t>(got) - done);
          if (wrote < 0) {
            if (errno == EINTR) continue;
            fail(STRATA_E_IO, std::string("writing the temporary file: ") + std::strerror(errno));
          }
          done += static_cast<std::size_t>(wrote);
        }
      }
      source = fd_path(spool);
    }
    auto result = take(strata::ingest_layer_file(object->store, source, ingest_options));
    write_output(report, to_ingest_report(result));
  });
}

// ---- export -------------------------------------------------------------------------------------

using Sink = std::function<Result<void>(ByteSpan)>;

std::string json_escape(std::string_view text) {
  std::string out;
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", static_cast<unsigned>(c));
      out += escaped;
    } else {
      out += c;
    }
  }
  return out;
}

// The tar of a stored layer pulled piece by piece from its recipe (each chunk read and verified
// by the store), hashed on the way.
class RecipeTarReader {
 public:
  RecipeTarReader(const strata::ChunkStore& store, const strata::Recipe& recipe)
      : store_(store), recipe_(recipe) {}

  Result<std::size_t> read(strata::MutableByteSpan out) {
    std::size_t done = 0;
    const auto& segments = recipe_.segments();
    while (done < out.size() && index_ < segments.size()) {
      const auto& segment = segments[index_];
      ByteSpan bytes;
      if (segment.kind == strata::RecipeSegmentKind::kRaw) {
        bytes = recipe_.raw_of(segment);
      } else {
        if (!chunk_loaded_) {
          auto chunk = store_.read_chunk(segment.digest);
          if (!chunk.ok()) return std::move(chunk).error();
          if (chunk->size() != segment.length) {
            return strata::make_error(ErrorCode::kCorruptInput,
                                      "chunk " + segment.digest.to_string() + " has " +
                                          std::to_string(chunk->size()) + " bytes, recipe says " +
                                          std::to_string(segment.length));
          }
          chunk_ = std::move(*chunk);
          chunk_loaded_ = true;
        }
        bytes = chunk_;
      }
      const std::size_t take_bytes =
          std::min<std::size_t>(bytes.size() - offset_, out.size() - done);
      std::memcpy(out.data() + done, bytes.data() + offset_, take_bytes);
      hash_.update(bytes.subspan(offset_, take_bytes));
      done += take_bytes;
      offset_ += take_bytes;
      if (offset_ == bytes.size()) {
        ++index_;
        offset_ = 0;
        chunk_loaded_ = false;
        chunk_.clear();
      }
    }
    tar_bytes_ += done;
    return done;
  }

  Digest finish() { return hash_.finish(); }
  [[nodiscard]] std::uint64_t tar_bytes() const { return tar_bytes_; }

 private:
  const strata::ChunkStore& store_;
  const strata::Recipe& recipe_;
  std::size_t index_ = 0;
  std::size_t offset_ = 0;
  bool chunk_loaded_ = false;
  std::vector<std::uint8_t> chunk_;
  strata::Sha256 hash_;
  std::uint64_t tar_bytes_ = 0;
};

strata_export_report export_chunked(const strata::ChunkStore& store, const Digest& layer,
                                    strata::fastpull::ChunkedFormat format, int level,
                                    const Sink& sink) {
  auto record = take(store.find_layer(layer));
  auto recipe = take(strata::parse_recipe(record.recipe));
  std::vector<strata::fastpull::TarChunk> chunks;
  std::uint64_t offset = 0;
  for (const auto& segment : recipe.segments()) {
    if (segment.kind == strata::RecipeSegmentKind::kChunk) {
      chunks.push_back({offset, segment.length, segment.digest});
    }
    offset += segment.length;
  }
  RecipeTarReader reader(store, recipe);
  const strata::fastpull::TarStreamReader tar = [&](strata::MutableByteSpan out) {
    return reader.read(out);
  };
  strata::fastpull::ChunkedWriteOptions options;
  options.format = format;
  if (level != 0) options.level = level;
  strata::fastpull::ChunkedWriteReport written;
  if (format == strata::fastpull::ChunkedFormat::kEstargz) {
    written = take(strata::fastpull::stream_estargz_layer(tar, chunks, options, sink));
  } else {
    const strata::fastpull::ChunkFrameProvider frames =
        [&](const Digest& digest, ByteSpan) -> Result<std::vector<std::uint8_t>> {
      auto stored = store.read_stored_chunk(digest);
      if (!stored.ok() || stored->codec != strata::Codec::kZstd) {
        return std::vector<std::uint8_t>{};  // the writer compresses the chunk itself
      }
      return std::move(stored->bytes);
    };
    written = take(strata::fastpull::stream_zstd_chunked_layer(tar, chunks, frames, options, sink));
  }
  const Digest replayed = reader.finish();
  if (replayed != record.diff_id) {
    fail(STRATA_E_DIGEST_MISMATCH, "layer " + layer.to_string() + " replays to " +
                                       replayed.to_string() + ", recorded diff_id " +
                                       record.diff_id.to_string());
  }
  strata_export_report out{};
  copy_string(out.media_type, written.media_type);
  copy_digest(out.digest, written.digest);
  out.size = written.size;
  copy_digest(out.diff_id, written.diff_id);
  out.tar_bytes = written.uncompressed_size;
  std::string json = "{";
  for (const auto& [key, value] : written.annotations) {
    if (json.size() > 1) json += ',';
    json += '"' + json_escape(key) + "\":\"" + json_escape(value) + '"';
  }
  json += '}';
  if (json.size() >= sizeof out.annotations_json) {
    fail(STRATA_E_LIMIT_EXCEEDED, "layer annotations do not fit the report");
  }
  copy_string(out.annotations_json, json);
  return out;
}

strata_export_report export_layer(const strata::ChunkStore& store, const Digest& layer,
                                  const strata_export_options& in, const Sink& sink) {
  switch (in.format) {
    case STRATA_FORMAT_TAR: {
      std::uint64_t size = 0;
      auto report = take(strata::export_layer_tar(
          store, layer,
          [&](ByteSpan bytes) {
            size += bytes.size();
            return sink(bytes);
          },
          in.threads));
      strata_export_report out{};
      copy_string(out.media_type, "application/vnd.oci.image.layer.v1.tar");
      copy_digest(out.digest, report.diff_id);
      out.size = size;
      copy_digest(out.diff_id, report.diff_id);
      out.tar_bytes = report.tar_bytes;
      copy_string(out.annotations_json, "{}");
      return out;
    }
    case STRATA_FORMAT_GZIP:
    case STRATA_FORMAT_ZSTD: {
      strata::oci::LayerWriterOptions options;
      options.compression = in.format == STRATA_FORMAT_GZIP ? strata::oci::LayerCompression::kGzip
                                                            : strata::oci::LayerCompression::kZstd;
      if (in.level != 0) options.level = in.level;
      auto writer = take(strata::oci::LayerWriter::create(options, sink));
      auto report = take(strata::export_layer_tar(
          store, layer, [&](ByteSpan bytes) { return writer.write(bytes); }, in.threads));
      auto digests = take(writer.finish());
      if (digests.diff_id != report.diff_id) {
        fail(STRATA_E_INTERNAL, "layer writer hashed another tar than the export wrote");
      }
      strata_export_report out{};
      copy_string(out.media_type, digests.media_type);
      copy_digest(out.digest, digests.digest);
      out.size = digests.size;
      copy_digest(out.diff_id, digests.diff_id);
      out.tar_bytes = digests.uncompressed_size;
      copy_string(out.annotations_json, "{}");
      return out;
    }
    case STRATA_FORMAT_ZSTD_CHUNKED:
      return export_chunked(store, layer, strata::fastpull::ChunkedFormat::kZstdChunked, in.level,
                            sink);
    case STRATA_FORMAT_ZSTD_CHUNKED_V1:
      return export_chunked(store, layer, strata::fastpull::ChunkedFormat::kZstdChunkedV1, in.level,
                            sink);
    case STRATA_FORMAT_ESTARGZ:
      return export_chunked(store, layer, strata::fastpull::ChunkedFormat::kEstargz, in.level,
                            sink);
    default:
      fail(STRATA_E_INVALID_ARGUMENT,
           "export options: unknown format " + std::to_string(in.format));
  }
}

std::int32_t export_with(strata_store* handle, const char* layer,
                         const strata_export_options* options, int fd, strata_write_fn write,
                         void* user, strata_export_report* report, strata_error* err) {
  return guarded(err, [&] {
    auto object = find_store(handle);
    const Digest digest = parse_digest(layer, "layer digest");
    strata_export_options in{};
    if (options == nullptr) {
      in.struct_size = sizeof in;
      in.format = STRATA_FORMAT_ZSTD_CHUNKED;
    } else {
      in = read_input(options, "export options");
    }
    check_output(report, "export report", true);
    CallbackState callback;
    Sink sink;
    {
      if (write == nullptr) {
        check_fd(fd);
        sink = [fd](ByteSpan bytes) -> Result<void> {
          std::size_t done = 0;
          while (done < bytes.size()) {
            const ssize_t wrote = ::write(fd, bytes.data() + done, bytes.size() - done);
            if (wrote < 0) {
              if (errno == EINTR) continue;
              return strata::make_error(
                  ErrorCode::kIo,
                  "writing to file descriptor " + std::to_string(fd) + ": " + std::strerror(errno));
            }
            done += static_cast<std::size_t>(wrote);
          }
          return {};
        };
      } else {
        sink = [&](ByteSpan bytes) -> Result<void> {
          const std::int32_t rc = write(user, bytes.data(), bytes.size());
          if (rc != 0) return callback.note("write callback failed (" + std::to_string(rc) + ")");
          return {};
        };
      }
    }
    try {
      write_output(report, export_layer(object->store, digest, in, sink));
    } catch (const Failure&) {
      callback.rethrow_if_failed();
      throw;
    }
  });
}

// ---- registries ---------------------------------------------------------------------------------

struct Remote {
  strata::registry::ImageReference reference;
  strata::registry::RegistryClient client;
};

Remote connect(const char* reference_text, const strata_registry_options* options) {
  auto reference =
      strata::registry::parse_image_reference(require_string(reference_text, "reference"));
  if (!reference.ok()) fail(STRATA_E_INVALID_ARGUMENT, reference.error().message);
  const auto in = read_input(options, "registry options");
  strata::registry::ClientOptions client_options;
  client_options.plain_http = in.plain_http != 0;
  client_options.tls_verify = in.tls_skip_verify == 0;
  if (in.username != nullptr || in.password != nullptr) {
    if (in.username == nullptr || in.password == nullptr) {
      fail(STRATA_E_INVALID_ARGUMENT, "registry options: username and password go together");
    }
    client_options.credentials = strata::registry::Credentials{in.username, in.password};
  } else {
    client_options.credentials = take(strata::registry::load_credentials(reference->registry));
  }
  auto client = take(strata::registry::RegistryClient::create(reference->registry, client_options));
  return Remote{std::move(*reference), std::move(client)};
}

strata::registry::PullOptions pull_options_of(const strata_pull_options& in) {
  strata::registry::PullOptions pull;
  pull.partial = in.whole_layers == 0;
  if (in.jobs != 0) pull.jobs = in.jobs;
  if (in.os != nullptr) pull.os = in.os;
  if (in.architecture != nullptr) pull.architecture = in.architecture;
  return pull;
}

strata_pull_report to_pull_report(const strata::registry::PullReport& result) {
  strata_pull_report out{};
  copy_digest(out.manifest_digest, result.manifest_digest);
  out.layers = result.layers.size();
  for (const auto& layer : result.layers) {
    out.layers_already_present += layer.already_present ? 1 : 0;
    out.layers_chunked += layer.chunked ? 1 : 0;
    out.chunks_local += layer.chunks_local;
    out.chunks_fetched += layer.chunks_fetched;
    out.new_chunks += layer.new_chunks;
  }
  out.layer_bytes = result.layer_bytes;
  out.bytes_fetched = result.bytes_fetched;
  return out;
}

}  // namespace

// ================================================================================================
// Exported functions.
// ================================================================================================

extern "C" {

const char* strata_status_name(std::int32_t code) {
  switch (code) {
    case STRATA_OK: return "ok";
    case STRATA_E_INVALID_ARGUMENT: return "invalid_argument";
    case STRATA_E_IO: return "io";
    case STRATA_E_CORRUPT_INPUT: return "corrupt_input";
    case STRATA_E_UNSUPPORTED: return "unsupported";
    case STRATA_E_LIMIT_EXCEEDED: return "limit_exceeded";
    case STRATA_E_NOT_FOUND: return "not_found";
    case STRATA_E_DIGEST_MISMATCH: return "digest_mismatch";
    case STRATA_E_UNSAFE_PATH: return "unsafe_path";
    case STRATA_E_INTERNAL: return "internal";
    case STRATA_E_BAD_HANDLE: return "bad_handle";
    case STRATA_E_CALLBACK: return "callback";
    case STRATA_E_OUT_OF_MEMORY: return "out_of_memory";
    default: return "unknown";
  }
}

std::uint32_t strata_abi_version(void) {
  return STRATA_C_ABI_MAJOR * 1000U + STRATA_C_ABI_MINOR;
}

const char* strata_version_string(void) {
  return STRATA_VERSION_STRING;
}

std::int32_t strata_chunker_options_init(strata_chunker_options* options, std::int32_t algorithm,
                                         strata_error* err) {
  return guarded(err, [&] {
    if (options == nullptr) fail(STRATA_E_INVALID_ARGUMENT, "chunker options is NULL");
    const std::size_t size = options->struct_size;
    if (size < sizeof(strata_chunker_options)) {
      fail(STRATA_E_INVALID_ARGUMENT, "chunker options: struct_size " + std::to_string(size) +
                                          " is smaller than " +
                                          std::to_string(sizeof(strata_chunker_options)));
    }
    write_output(options, default_chunker_options(algorithm));
  });
}

std::int32_t strata_chunk_buffer(const std::uint8_t* data, std::size_t length,
                                 const strata_chunker_options* options, strata_chunk_fn on_chunk,
                                 void* user, strata_error* err) {
  return guarded(err, [&] {
    if (data == nullptr && length != 0) fail(STRATA_E_INVALID_ARGUMENT, "data is NULL");
    if (on_chunk == nullptr) fail(STRATA_E_INVALID_ARGUMENT, "chunk callback is NULL");
    const auto in = chunker_options_or_default(options);
    const auto chunker_options = to_chunker_options(in);
    const ByteSpan bytes(data, length);
    const auto chunks = take(strata::chunk_buffer(bytes, chunker_options));
    for (const auto& chunk : chunks) {
      if (!deliver_chunk(on_chunk, user, in.with_digests != 0, chunk,
                         bytes.subspan(chunk.offset, chunk.length))) {
        fail(STRATA_E_CALLBACK, "chunk callback failed at offset " + std::to_string(chunk.offset));
      }
    }
  });
}

std::int32_t strata_chunker_open(const strata_chunker_options* options, strata_chunker** out,
                                 strata_error* err) {
  return guarded(err, [&] {
    if (out == nullptr) fail(STRATA_E_INVALID_ARGUMENT, "out is NULL");
    *out = nullptr;
    const auto in = chunker_options_or_default(options);
    auto chunker = take(strata::Chunker::create(to_chunker_options(in)));
    auto object = std::make_shared<ChunkerObject>(std::move(chunker), in.with_digests != 0);
    *out = reinterpret_cast<strata_chunker*>(chunkers().add(std::move(object)));
  });
}

std::int32_t strata_chunker_feed(strata_chunker* chunker, const std::uint8_t* data,
                                 std::size_t length, strata_chunk_fn on_chunk, void* user,
                                 strata_error* err) {
  return chunker_step(chunker, data, length, false, on_chunk, user, err);
}

std::int32_t strata_chunker_finish(strata_chunker* chunker, strata_chunk_fn on_chunk, void* user,
                                   strata_error* err) {
  return chunker_step(chunker, nullptr, 0, true, on_chunk, user, err);
}

std::int32_t strata_chunker_reset(strata_chunker* chunker, strata_error* err) {
  return guarded(err, [&] {
    auto object = find_chunker(chunker);
    const std::lock_guard lock(object->mutex);
    object->chunker.reset();
    object->poisoned = false;
  });
}

std::int32_t strata_chunker_close(strata_chunker* chunker, strata_error* err) {
  return guarded(err, [&] {
    if (chunker == nullptr || !chunkers().remove(reinterpret_cast<std::uintptr_t>(chunker))) {
      fail(STRATA_E_BAD_HANDLE, "chunker handle is NULL, closed or unknown");
    }
  });
}

std::int32_t strata_store_open(const char* path, const strata_store_options* options,
                               strata_store** out, strata_error* err) {
  return guarded(err, [&] {
    if (out == nullptr) fail(STRATA_E_INVALID_ARGUMENT, "out is NULL");
    *out = nullptr;
    const std::string directory = require_string(path, "store path");
    const auto in = read_input(options, "store options");
    strata::StoreOptions store_options;
    store_options.create_if_missing = in.create_if_missing != 0;
    auto store = take(strata::ChunkStore::open(directory, store_options));
    auto object = std::make_shared<StoreObject>(std::move(store));
    *out = reinterpret_cast<strata_store*>(stores().add(std::move(object)));
  });
}

std::int32_t strata_store_close(strata_store* store, strata_error* err) {
  return guarded(err, [&] {
    if (store == nullptr || !stores().remove(reinterpret_cast<std::uintptr_t>(store))) {
      fail(STRATA_E_BAD_HANDLE, "store handle is NULL, closed or unknown");
    }
  });
}

std::int32_t strata_store_stats_get(strata_store* store, strata_store_stats* out,
                                    strata_error* err) {
  return guarded(err, [&] {
    auto object = find_store(store);
    check_output(out, "store stats", false);
    const auto stats = take(object->store.stats());
    strata_store_stats value{};
    value.chunks = stats.chunks;
    value.layers = stats.layers;
    value.raw_bytes = stats.raw_bytes;
    value.stored_bytes = stats.stored_bytes;
    value.packs = stats.packs;
    write_output(out, value);
  });
}

std::int32_t strata_store_has_layer(strata_store* store, const char* digest, strata_error* err) {
  return guarded(err, [&] {
    auto object = find_store(store);
    const Digest layer = parse_digest(digest, "layer digest");
    (void)take(object->store.find_layer(layer));
  });
}

std::int32_t strata_ingest_path(strata_store* store, const char* path,
                                const strata_ingest_options* options, strata_ingest_report* report,
                                strata_error* err) {
  if (path == nullptr) {
    return guarded(err, [] { fail(STRATA_E_INVALID_ARGUMENT, "path is NULL"); });
  }
  return ingest_from_path(store, path, -1, nullptr, nullptr, options, report, err);
}

std::int32_t strata_ingest_fd(strata_store* store, int fd, const strata_ingest_options* options,
                              strata_ingest_report* report, strata_error* err) {
  return ingest_from_path(store, nullptr, fd, nullptr, nullptr, options, report, err);
}

std::int32_t strata_ingest_reader(strata_store* store, strata_read_fn read, void* user,
                                  const strata_ingest_options* options,
                                  strata_ingest_report* report, strata_error* err) {
  if (read == nullptr) {
    return guarded(err, [] { fail(STRATA_E_INVALID_ARGUMENT, "read callback is NULL"); });
  }
  return ingest_from_path(store, nullptr, -1, read, user, options, report, err);
}

std::int32_t strata_export_fd(strata_store* store, const char* layer,
                              const strata_export_options* options, int fd,
                              strata_export_report* report, strata_error* err) {
  return export_with(store, layer, options, fd, nullptr, nullptr, report, err);
}

std::int32_t strata_export_writer(strata_store* store, const char* layer,
                                  const strata_export_options* options, strata_write_fn write,
                                  void* user, strata_export_report* report, strata_error* err) {
  if (write == nullptr) {
    return guarded(err, [] { fail(STRATA_E_INVALID_ARGUMENT, "write callback is NULL"); });
  }
  return export_with(store, layer, options, -1, write, user, report, err);
}

std::int32_t strata_image_pull(strata_store* store, const char* reference,
                               const strata_registry_options* registry,
                               const strata_pull_options* options, strata_pull_report* report,
                               strata_error* err) {
  return guarded(err, [&] {
    auto object = find_store(store);
    const auto in = read_input(options, "pull options");
    check_output(report, "pull report", true);
    auto remote = connect(reference, registry);
    auto result = take(strata::registry::pull_image(remote.client, remote.reference, &object->store,
                                                    nullptr, "", pull_options_of(in)));
    write_output(report, to_pull_report(result));
  });
}

std::int32_t strata_image_pull_unpack(strata_store* store, const char* reference,
                                      const strata_registry_options* registry,
                                      const strata_pull_options* options, const char* directory,
                                      strata_pull_report* report, strata_unpack_report* unpacked,
                                      strata_error* err) {
  return guarded(err, [&] {
    auto object = find_store(store);
    const auto in = read_input(options, "pull options");
    const std::string target = require_string(directory, "directory");
    check_output(report, "pull report", true);
    check_output(unpacked, "unpack report", true);
    auto remote = connect(reference, registry);
    // Before anything is fetched: the directory must be empty or absent.
    auto build = take(strata::RootfsBuild::begin(object->store, target));
    auto pull = pull_options_of(in);
    pull.layer_stored = [&build](std::size_t index, const Digest& diff_id) {
      build.layer_ready(index, diff_id);
    };
    // A failed pull drops `build` (as the exception leaves), and with it the partial tree.
    auto result = take(strata::registry::pull_image(remote.client, remote.reference, &object->store,
                                                    nullptr, "", pull));
    std::vector<Digest> diff_ids;
    for (const auto& layer : result.layers) diff_ids.push_back(layer.diff_id);
    const auto tree = take(build.finish(diff_ids));
    write_output(report, to_pull_report(result));
    strata_unpack_report out{};
    out.layers = tree.layers;
    out.entries = tree.entries;
    out.files = tree.files;
    out.directories = tree.directories;
    out.symlinks = tree.symlinks;
    out.hard_links = tree.hard_links;
    out.whiteouts = tree.whiteouts;
    out.bytes_written = tree.bytes_written;
    out.seconds = tree.seconds;
    write_output(unpacked, out);
  });
}

std::int32_t strata_image_pull_plan(strata_store* store, const char* reference,
                                    const strata_registry_options* registry,
                                    const strata_pull_options* options,
                                    strata_layer_plan_fn on_layer, void* user,
                                    strata_image_plan* plan, strata_error* err) {
  return guarded(err, [&] {
    auto object = find_store(store);
    const auto in = read_input(options, "pull options");
    check_output(plan, "image plan", true);
    auto remote = connect(reference, registry);
    strata::registry::PullOptions pull;
    pull.partial = in.whole_layers == 0;
    if (in.jobs != 0) pull.jobs = in.jobs;
    if (in.os != nullptr) pull.os = in.os;
    if (in.architecture != nullptr) pull.architecture = in.architecture;
    auto result = take(
        strata::registry::plan_image_pull(remote.client, remote.reference, object->store, pull));
    strata_image_plan out{};
    copy_digest(out.manifest_digest, result.manifest_digest);
    out.layers = result.layers.size();
    for (std::size_t i = 0; i < result.layers.size(); ++i) {
      const auto& layer = result.layers[i];
      out.layers_already_present += layer.already_present ? 1 : 0;
      out.layers_chunked += layer.chunked ? 1 : 0;
      out.chunks += layer.chunks;
      out.chunks_local += layer.chunks_local;
      out.chunks_missing += layer.chunks_missing;
      if (on_layer == nullptr) continue;
      strata_layer_plan item{};
      item.struct_size = sizeof item;
      item.index = static_cast<std::uint32_t>(i);
      copy_digest(item.digest, layer.descriptor.digest);
      copy_digest(item.diff_id, layer.diff_id);
      item.size = layer.descriptor.size;
      item.already_present = layer.already_present ? 1 : 0;
      item.chunked = layer.chunked ? 1 : 0;
      copy_string(item.chunked_format, layer.chunked_format);
      copy_string(item.whole_reason, layer.whole_reason);
      item.fetch_bytes = layer.fetch_bytes;
      item.metadata_bytes = layer.metadata_bytes;
      item.chunks = layer.chunks;
      item.chunks_local = layer.chunks_local;
      item.chunks_missing = layer.chunks_missing;
      item.ranges = layer.ranges;
      const std::int32_t rc = on_layer(user, &item);
      if (rc != 0) {
        fail(STRATA_E_CALLBACK, "layer plan callback failed (" + std::to_string(rc) +
                                    ") at layer " + std::to_string(i));
      }
    }
    out.layer_bytes = result.layer_bytes;
    out.fetch_bytes = result.fetch_bytes;
    out.image_bytes = result.image_bytes;
    out.plan_bytes = result.wire.bytes_received;
    write_output(plan, out);
  });
}

std::int32_t strata_layout_pull(strata_store* store, const char* layout, const char* tag,
                                std::uint32_t run, strata_pull_plan* plan, strata_error* err) {
  return guarded(err, [&] {
    auto object = find_store(store);
    const std::string directory = require_string(layout, "layout");
    const std::string name = tag == nullptr ? "" : tag;
    check_output(plan, "pull plan", true);
    auto plans = take(strata::fastpull::plan_image_pull(object->store, directory, name));
    strata_pull_plan out{};
    out.layers = plans.size();
    for (const auto& layer : plans) {
      if (layer.chunked) {
        ++out.layers_chunked;
        out.chunks += layer.plan.chunks;
        out.chunks_local += layer.plan.local_chunks;
        out.chunks_missing += layer.plan.missing_chunks;
        out.fetch_bytes += layer.plan.total_bytes();
      } else {
        out.fetch_bytes += layer.size;
      }
    }
    if (run != 0) (void)take(strata::fastpull::pull_layout_image(object->store, directory, name));
    write_output(plan, out);
  });
}

std::int32_t strata_model_package(const char* source, const char* layout, const char* tag,
                                  const strata_model_package_options* options,
                                  strata_model_package_report* report, strata_error* err) {
  return guarded(err, [&] {
    const std::string source_path = require_string(source, "source");
    const std::string layout_path = require_string(layout, "layout");
    const std::string name = require_string(tag, "tag");
    const auto in = read_input(options, "model package options");
    check_output(report, "model package report", true);
    strata::model::PackageOptions package;
    if (in.format == STRATA_MODEL_DOCKER) {
      package.format = strata::model::ArtifactFormat::kDocker;
    } else if (in.format == STRATA_MODEL_MODELPACK) {
      package.format = strata::model::ArtifactFormat::kModelPack;
    } else {
      fail(STRATA_E_INVALID_ARGUMENT,
           "model package options: unknown format " + std::to_string(in.format));
    }
    std::shared_ptr<StoreObject> store;
    if (in.store != nullptr) {
      store = find_store(in.store);
      package.store = &store->store;
    }
    package.threads = in.threads;
    auto oci_layout = take(strata::oci::OciLayout::open_or_create(layout_path));
    auto result = take(strata::model::package_model(source_path, oci_layout, name, package));
    strata_model_package_report out{};
    copy_digest(out.manifest_digest, result.manifest.digest);
    out.files = result.files.size();
    for (const auto& file : result.files) out.weight_files += file.weight ? 1 : 0;
    out.total_bytes = result.total_bytes;
    out.weight_bytes = result.weight_bytes;
    write_output(report, out);
  });
}

std::int32_t strata_model_push(const char* layout, const char* tag, const char* reference,
                               const strata_registry_options* registry,
                               strata_model_push_report* report, strata_error* err) {
  return guarded(err, [&] {
    const std::string layout_path = require_string(layout, "layout");
    const std::string name = require_string(tag, "tag");
    check_output(report, "model push report", true);
    auto remote = connect(reference, registry);
    auto oci_layout = take(strata::oci::OciLayout::open(layout_path));
    auto result =
        take(strata::model::push_model(remote.client, oci_layout, name, remote.reference));
    strata_model_push_report out{};
    copy_digest(out.manifest_digest, result.manifest_digest);
    out.blobs_uploaded = result.blobs_uploaded;
    out.blobs_skipped = result.blobs_skipped;
    out.bytes_uploaded = result.bytes_uploaded;
    write_output(report, out);
  });
}

std::int32_t strata_model_pull(strata_store* store, const char* reference,
                               const strata_registry_options* registry, const char* out_directory,
                               strata_model_pull_report* report, strata_error* err) {
  return guarded(err, [&] {
    auto object = find_store(store);
    check_output(report, "model pull report", true);
    auto remote = connect(reference, registry);
    strata::model::ModelPullOptions pull;
    if (out_directory != nullptr) pull.out_directory = out_directory;
    auto result =
        take(strata::model::pull_model(remote.client, remote.reference, object->store, pull));
    strata_model_pull_report out{};
    copy_digest(out.manifest_digest, result.manifest_digest);
    out.files = result.files.size();
    out.total_bytes = result.total_bytes;
    out.bytes_fetched = result.bytes_fetched;
    for (const auto& file : result.files) {
      out.chunks += file.chunks;
      out.chunks_fetched += file.chunks_fetched;
    }
    write_output(report, out);
  });
}

}  // extern "C"
