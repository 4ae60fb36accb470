// A weight blob pulled by its chunk index, with deltas where the model has a delta referrer
// (docs/MODEL_ARTIFACTS.md, docs/DELTA.md). Per window of about window_bytes of missing chunks:
// the chunks with a usable delta (listed in the referrer's index with the chunk's raw length, a
// delta smaller than the chunk, and a base the store holds whole) are fetched as merged ranges of
// the frames blob, decoded through their base (ChunkStore::read_chunk, SHA-256 checked) and the
// result hashed against the chunk digest before it is stored (as the delta itself where the base
// can serve, ChunkStore::put_delta_chunk) or written; the rest, and every delta that failed,
// come as merged ranges of the raw blob, each chunk hashed before it is stored. The window is then
// written in blob order. Ranges go out up to max_ranges_per_request per multi-range GET (RFC 9110
// §14.2), as image pulls do.
#include "registry/model_blob_pull.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <optional>
#include <set>

#include "core/base/file_io.h"
#include "strata/recipe.h"

namespace strata::model::detail {
namespace {

using fastpull::DeltaEntry;
using registry::ByteRange;

// Adds the time from construction to destruction to `slot`.
class StageTimer {
 public:
  explicit StageTimer(double& slot) : slot_(slot), start_(std::chrono::steady_clock::now()) {}
  ~StageTimer() {
    slot_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }
  StageTimer(const StageTimer&) = delete;
  StageTimer& operator=(const StageTimer&) = delete;

 private:
  double& slot_;
  std::chrono::steady_clock::time_point start_;
};

// Frames ranges closer than this are fetched as one (the bytes between are few; a request is not).
constexpr std::uint64_t kFramesGapBridge = 4096;

Result<void> read_all_at(int fd, std::uint64_t offset, MutableByteSpan out,
                         const std::string& path) {
  auto read = pread_all(fd, offset, out, path);
  if (!read.ok()) return std::move(read).error();
  if (*read != out.size()) return make_error(ErrorCode::kIo, "cannot read back " + path);
  return {};
}

// Ranges of one blob, each holding the listed chunks (indexes into the chunk index) back to back
// from `offset` on, possibly with gaps (frames ranges bridge small gaps).
struct RangePlan {
  std::vector<ByteRange> ranges;
  std::vector<std::vector<std::size_t>> members;
};

class IndexedBlobPull {
 public:
  IndexedBlobPull(const IndexedBlobSource& source, const oci::Descriptor& layer,
                  const ChunkIndex& index, std::string assembly, PulledModelFile& file,
                  StoreWriter writer, int fd)
      : source_(source),
        layer_(layer),
        chunks_(index.chunks),
        assembly_(std::move(assembly)),
        file_(file),
        writer_(std::move(writer)),
        fd_(fd) {
    const auto* deltas = source.deltas;
    if (deltas != nullptr && deltas->index) index_ = &*deltas->index;
  }

  Result<void> run() {
    std::size_t next = 0;
    while (next < chunks_.size()) {
      const std::size_t end = plan_window(next);
      STRATA_TRY(fetch_deltas());
      std::sort(plain_.begin(), plain_.end());
      STRATA_TRY(fetch_plain());
      STRATA_TRY(write_window(next, end));
      fetched_.clear();
      next = end;
    }
    return commit();
  }

 private:
  // The window: chunks from `next` until about window_bytes of them are missing; the missing ones
  // split into plain_ (fetched whole) and delta_ (fetched as deltas). Returns the window's end.
  std::size_t plan_window(std::size_t next) {
    plain_.clear();
    delta_.clear();
    std::size_t end = next;
    std::uint64_t missing_bytes = 0;
    std::set<Digest> wanted;
    while (end < chunks_.size() && (end == next || missing_bytes < source_.options.window_bytes)) {
      const ChunkIndexEntry& chunk = chunks_[end];
      if (!source_.store.contains(chunk.digest) && !written_at_.contains(chunk.digest) &&
          wanted.insert(chunk.digest).second) {
        missing_bytes += chunk.length;
        file_.bytes_fetched_without_deltas += chunk.length;
        if (const DeltaEntry* entry = usable_delta(chunk); entry != nullptr) {
          delta_.emplace_back(end, entry);
        } else {
          plain_.push_back(end);
        }
      }
      ++end;
    }
    return end;
  }

  // The referrer's delta for `chunk` when it can be used: same raw length, smaller than the
  // chunk, and a base the store holds (committed, so it can also serve as the stored delta's
  // base; the index's parser already refused a base that is itself a delta of the index).
  const DeltaEntry* usable_delta(const ChunkIndexEntry& chunk) const {
    if (index_ == nullptr) return nullptr;
    const DeltaEntry* entry = index_->find(chunk.digest);
    if (entry == nullptr || entry->raw_length != chunk.length || entry->length >= chunk.length ||
        entry->base == chunk.digest || !source_.store.contains(entry->base)) {
      return nullptr;
    }
    return entry;
  }

  // Merged frames ranges, in push order (the order this pull asks for them): an entry joins the
  // previous range when it starts at or shortly after its end.
  RangePlan plan_frames() const {
    RangePlan plan;
    for (std::size_t d = 0; d < delta_.size(); ++d) {
      const DeltaEntry& entry = *delta_[d].second;
      if (!plan.ranges.empty()) {
        ByteRange& last = plan.ranges.back();
        const std::uint64_t last_end = last.offset + last.length;
        if (entry.offset >= last_end && entry.offset - last_end < kFramesGapBridge) {
          last.length = entry.offset + entry.length - last.offset;
          plan.members.back().push_back(d);
          continue;
        }
      }
      plan.ranges.push_back(ByteRange{entry.offset, entry.length});
      plan.members.push_back({d});
    }
    return plan;
  }

  // Fetches `plan`'s ranges of `blob`, max_ranges_per_request per request; `take(r, body)` gets
  // each range's bytes (their length checked).
  template <typename Take>
  Result<void> fetch_ranges(const Digest& blob, const RangePlan& plan, Take&& take) {
    const std::size_t per_request =
        std::max<std::size_t>(1, source_.options.max_ranges_per_request);
    for (std::size_t first = 0; first < plan.ranges.size(); first += per_request) {
      const std::size_t count = std::min(per_request, plan.ranges.size() - first);
      std::optional<StageTimer> fetching(std::in_place, file_.stages.fetch);
      auto bodies = source_.client.fetch_ranges(
          source_.repository, blob, std::span<const ByteRange>(plan.ranges).subspan(first, count));
      fetching.reset();
      if (!bodies.ok()) return std::move(bodies).error();
      if (bodies->size() != count) {
        return make_error(ErrorCode::kCorruptInput, file_.path + ": " + std::to_string(count) +
                                                        " ranges of " + blob.to_string() +
                                                        " asked, " +
                                                        std::to_string(bodies->size()) + " came");
      }
      for (std::size_t r = 0; r < count; ++r) {
        const ByteRange& range = plan.ranges[first + r];
        const std::vector<std::uint8_t>& body = (*bodies)[r];
        if (body.size() != range.length) {
          return make_error(ErrorCode::kCorruptInput, file_.path + ": range at " +
                                                          std::to_string(range.offset) + " of " +
                                                          blob.to_string() + " came back with " +
                                                          std::to_string(body.size()) + " bytes");
        }
        file_.bytes_fetched += body.size();
        STRATA_TRY(take(first + r, ByteSpan(body)));
      }
    }
    return {};
  }

  // The window's deltas; each one that does not give its chunk joins plain_. A frames blob that
  // cannot be fetched at all sends every delta of the window there too: a referrer never fails a
  // pull.
  Result<void> fetch_deltas() {
    if (delta_.empty()) return {};
    const RangePlan plan = plan_frames();
    const std::uint64_t before = file_.bytes_fetched;
    auto fetched = fetch_ranges(
        source_.deltas->frames.digest, plan, [&](std::size_t r, ByteSpan body) -> Result<void> {
          for (const std::size_t d : plan.members[r]) {
            const DeltaEntry& entry = *delta_[d].second;
            take_delta(delta_[d].first, entry,
                       body.subspan(entry.offset - plan.ranges[r].offset, entry.length));
          }
          return {};
        });
    file_.delta_bytes_fetched += file_.bytes_fetched - before;
    if (!fetched.ok()) {
      // What did arrive was taken; the rest comes whole.
      for (const auto& [i, entry] : delta_) {
        if (!fetched_.contains(chunks_[i].digest)) {
          fall_back(i, "frames blob: " + fetched.error().message);
        }
      }
    }
    return {};
  }

  void fall_back(std::size_t i, const std::string& problem) {
    if (std::find(plain_.begin(), plain_.end(), i) != plain_.end()) return;
    plain_.push_back(i);
    ++file_.delta_fallbacks;
    if (file_.delta_fallback_reason.empty()) {
      file_.delta_fallback_reason = "chunk " + chunks_[i].digest.to_string() + " at offset " +
                                    std::to_string(chunks_[i].offset) + ": " + problem;
    }
  }

  // A delta decoded with its base's raw bytes (returned in `base_raw`) and hashed against the
  // chunk's digest; the error says what failed.
  Result<std::vector<std::uint8_t>> decode_delta(const ChunkIndexEntry& chunk,
                                                 const DeltaEntry& entry, ByteSpan coded,
                                                 std::vector<std::uint8_t>& base_raw) const {
    const std::string against = "delta against " + entry.base.to_string();
    auto base = source_.store.read_chunk(entry.base);
    if (!base.ok()) return make_error(base.error().code, against + ": " + base.error().message);
    auto raw = decompress_delta_chunk(entry.codec, coded, *base, chunk.length);
    if (!raw.ok()) return make_error(raw.error().code, against + ": " + raw.error().message);
    if (const Digest got = sha256_of(*raw); got != chunk.digest) {
      return make_error(ErrorCode::kDigestMismatch,
                        against + " decodes to bytes hashing to " + got.to_string());
    }
    base_raw = std::move(*base);
    return raw;
  }

  // One delta: decoded, stored (as the delta itself where the base can serve, else whole); on any
  // failure the chunk comes whole from the blob instead.
  void take_delta(std::size_t i, const DeltaEntry& entry, ByteSpan coded) {
    const ChunkIndexEntry& chunk = chunks_[i];
    std::vector<std::uint8_t> base;
    auto raw = [&] {
      const StageTimer decoding(file_.stages.decode);
      return decode_delta(chunk, entry, coded, base);
    }();
    if (!raw.ok()) {
      fall_back(i, raw.error().message);
      return;
    }
    const StageTimer storing(file_.stages.store);
    if (writer_.put_delta_chunk(chunk.digest, *raw, coded, entry.codec, entry.base, base).ok()) {
      ++file_.delta_stored_chunks;
    } else {
      // The base cannot serve as a stored delta's base (kInvalidArgument): stored whole instead.
      auto stored = compress_chunk_zstd(*raw, source_.options.zstd_level);
      if (!stored.ok() || !writer_.put_chunk(chunk.digest, *raw, *stored, Codec::kZstd).ok()) {
        fall_back(i, "cannot store the decoded chunk");
        return;
      }
    }
    ++file_.delta_chunks;
    ++file_.chunks_fetched;
    fetched_.emplace(chunk.digest, std::move(*raw));
  }

  // plain_ (sorted) as merged ranges of the raw blob: adjacent chunks become one range.
  Result<void> fetch_plain() {
    RangePlan plan;
    for (const std::size_t i : plain_) {
      ByteRange* last = plan.ranges.empty() ? nullptr : &plan.ranges.back();
      if (last != nullptr && last->offset + last->length == chunks_[i].offset) {
        last->length += chunks_[i].length;
        plan.members.back().push_back(i);
      } else {
        plan.ranges.push_back(ByteRange{chunks_[i].offset, chunks_[i].length});
        plan.members.push_back({i});
      }
    }
    return fetch_ranges(layer_.digest, plan, [&](std::size_t r, ByteSpan body) -> Result<void> {
      std::size_t at = 0;
      for (const std::size_t i : plan.members[r]) {
        const ChunkIndexEntry& chunk = chunks_[i];
        const ByteSpan bytes = body.subspan(at, chunk.length);
        at += chunk.length;
        std::optional<StageTimer> verifying(std::in_place, file_.stages.verify);
        if (sha256_of(bytes) != chunk.digest) {
          return make_error(ErrorCode::kDigestMismatch,
                            file_.path + ": chunk " + std::to_string(i) + " at offset " +
                                std::to_string(chunk.offset) + " does not hash to " +
                                chunk.digest.to_string() + " as its chunk index says");
        }
        verifying.reset();
        const StageTimer storing(file_.stages.store);
        auto stored = compress_chunk_zstd(bytes, source_.options.zstd_level);
        if (!stored.ok()) return std::move(stored).error();
        STRATA_TRY(writer_.put_chunk(chunk.digest, bytes, *stored, Codec::kZstd));
        ++file_.chunks_fetched;
        fetched_.emplace(chunk.digest, std::vector<std::uint8_t>(bytes.begin(), bytes.end()));
      }
      return {};
    });
  }

  // The window in order, from this round's fetch, the file itself, or the store.
  Result<void> write_window(std::size_t next, std::size_t end) {
    std::vector<std::uint8_t> reread;
    for (std::size_t i = next; i < end; ++i) {
      const ChunkIndexEntry& chunk = chunks_[i];
      ByteSpan bytes;
      std::vector<std::uint8_t> from_store;
      std::optional<StageTimer> local;
      if (const auto got = fetched_.find(chunk.digest); got != fetched_.end()) {
        bytes = got->second;
        written_at_.emplace(chunk.digest, chunk.offset);
      } else if (const auto earlier = written_at_.find(chunk.digest);
                 earlier != written_at_.end()) {
        local.emplace(file_.stages.local);
        reread.resize(chunk.length);
        STRATA_TRY(read_all_at(fd_, earlier->second, reread, assembly_));
        if (sha256_of(reread) != chunk.digest) {
          return make_error(
              ErrorCode::kDigestMismatch,
              assembly_ + " changed while being written (chunk " + std::to_string(i) + ")");
        }
        bytes = reread;
      } else {
        local.emplace(file_.stages.local);
        auto read = source_.store.read_chunk(chunk.digest);
        if (!read.ok()) return std::move(read).error();
        if (read->size() != chunk.length) {
          return make_error(ErrorCode::kCorruptInput,
                            file_.path + ": chunk " + std::to_string(i) + " has " +
                                std::to_string(read->size()) + " bytes in the store, " +
                                std::to_string(chunk.length) + " in the index");
        }
        from_store = std::move(*read);
        bytes = from_store;
      }
      local.reset();
      {
        const StageTimer hashing(file_.stages.blob_hash);
        blob_hash_.update(bytes);
      }
      const StageTimer writing(file_.stages.write);
      STRATA_TRY(write_all(fd_, bytes, assembly_));
    }
    return {};
  }

  // The assembled file must be the layer's blob; then it becomes a store layer.
  Result<void> commit() {
    const Digest digest = blob_hash_.finish();
    if (digest != layer_.digest) {
      return make_error(ErrorCode::kDigestMismatch,
                        file_.path + ": assembled file hashes to " + digest.to_string() +
                            ", the manifest says " + layer_.digest.to_string());
    }
    const StageTimer committing(file_.stages.commit);
    if (::fsync(fd_) != 0) {
      return make_error(ErrorCode::kIo, "cannot fsync " + assembly_ + ": " + std::strerror(errno));
    }
    RecipeBuilder builder;
    for (const ChunkIndexEntry& chunk : chunks_) builder.add_chunk(chunk.digest, chunk.length);
    Recipe recipe = builder.finish();
    recipe.set_diff_id(layer_.digest);
    LayerRecord record;
    record.diff_id = layer_.digest;
    record.layer_digest = layer_.digest;
    record.media_type = layer_.media_type;
    record.recipe = serialize_recipe(recipe);
    record.size = layer_.size;
    auto committed = writer_.commit_layer(record, recipe.distinct_chunks());
    if (!committed.ok()) return std::move(committed).error();
    return {};
  }

  const IndexedBlobSource& source_;
  const oci::Descriptor& layer_;
  const std::vector<ChunkIndexEntry>& chunks_;
  const std::string assembly_;
  PulledModelFile& file_;
  StoreWriter writer_;
  const int fd_;
  const fastpull::DeltaIndex* index_ = nullptr;
  Sha256 blob_hash_;
  std::map<Digest, std::uint64_t> written_at_;  // chunks fetched earlier: where the file has them
  std::vector<std::size_t> plain_;
  std::vector<std::pair<std::size_t, const DeltaEntry*>> delta_;
  std::map<Digest, std::vector<std::uint8_t>> fetched_;  // this window's chunks, by digest
};

}  // namespace

Result<void> pull_indexed_blob(const IndexedBlobSource& source, const oci::Descriptor& layer,
                               const ChunkIndex& index, const std::string& assembly,
                               PulledModelFile& file) {
  auto writer = source.store.writer();
  if (!writer.ok()) return std::move(writer).error();
  const int fd = ::open(assembly.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    return make_error(ErrorCode::kIo, "cannot create " + assembly + ": " + std::strerror(errno));
  }
  const FileDescriptor out(fd);
  IndexedBlobPull pull(source, layer, index, assembly, file, std::move(*writer), fd);
  return pull.run();
}

}  // namespace strata::model::detail
