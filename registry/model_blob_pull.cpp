// A weight blob pulled by its chunk index, with deltas where the model has a delta referrer
// (docs/MODEL_ARTIFACTS.md, docs/DELTA.md). Per window of about window_bytes of missing chunks: the
// chunks with a usable delta (listed in the referrer's index with the chunk's raw length, a delta
// smaller than the chunk, and a base the store holds whole) come as merged ranges of the frames
// blob, the rest as merged ranges of the raw blob; the ranges are cut into batches of at most
// batch_bytes and max_ranges_per_request ranges (one multi-range GET each, RFC 9110 §14.2) and
// fetch_jobs batches are in flight at once on the client's connection pool. The thread that fetched
// a batch checks each chunk's SHA-256 (a delta after decoding it through its base, read from the
// store), compresses it and decodes it back (the store's put check, done there: put_verified_*),
// stores it (the write session is shared under a lock) and writes it at its offset in the file
// (pwrite, core/base/file_io.h); a delta that fails is fetched whole in a second round. The window
// then goes through the blob's SHA-256 in blob order, in slices of window_bytes whose held chunks
// (in the store, or written by an earlier window) are read, checked and written at their offsets
// on fetch_jobs threads first. Bytes held stay near twice window_bytes whatever the blob's size.
#include "registry/model_blob_pull.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <set>

#include "core/base/file_io.h"
#include "registry/parallel_work.h"
#include "strata/recipe.h"

namespace strata::model::detail {
namespace {

using fastpull::DeltaEntry;

// Frames ranges closer than this are fetched as one (the bytes between are few; a request is not).
constexpr std::uint64_t kFramesGapBridge = 4096;

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

// Ranges of one blob fetched in one request, each holding the listed chunks (indexes into the
// window's plain list or delta list) from its offset on, possibly with gaps (frames ranges bridge
// small gaps).
struct Batch {
  bool frames = false;  // ranges of the delta frames blob, else of the raw blob
  std::vector<ByteRange> ranges;
  std::vector<std::vector<std::size_t>> members;
  std::uint64_t bytes = 0;
};

// One window's fetching state, shared by the fetch threads under `mutex`.
struct Window {
  std::vector<std::size_t> plain;                                // chunk indexes, fetched whole
  std::vector<std::pair<std::size_t, const DeltaEntry*>> delta;  // chunk indexes with a delta
  std::mutex mutex;
  // Verified chunks by digest: their bytes (in `storage`) and the chunk written with them.
  std::map<Digest, std::pair<ByteSpan, std::size_t>> fetched;
  std::vector<std::vector<std::uint8_t>> storage;
  std::vector<std::size_t> fallen_back;  // deltas that failed: their chunks come whole
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
      Window window;
      const std::size_t end = plan_window(next, window);
      std::vector<Batch> batches = plan_frames(window);
      std::sort(window.plain.begin(), window.plain.end());
      append_plain_batches(window.plain, batches);
      STRATA_TRY(run_batches(window, batches));
      if (!window.fallen_back.empty()) {
        std::sort(window.fallen_back.begin(), window.fallen_back.end());
        std::vector<Batch> whole;
        append_plain_batches(window.fallen_back, whole);
        STRATA_TRY(run_batches(window, whole));
      }
      STRATA_TRY(assemble_window(next, end, window));
      next = end;
    }
    return commit();
  }

 private:
  // The window: chunks from `next` until about window_bytes of them are missing; the missing ones
  // split into plain (fetched whole) and delta (fetched as deltas). Returns the window's end.
  std::size_t plan_window(std::size_t next, Window& window) {
    std::size_t end = next;
    std::uint64_t missing_bytes = 0;
    while (end < chunks_.size() && (end == next || missing_bytes < source_.options.window_bytes)) {
      const ChunkIndexEntry& chunk = chunks_[end];
      if (!source_.store.contains(chunk.digest) && requested_.emplace(chunk.digest, end).second) {
        missing_bytes += chunk.length;
        file_.bytes_fetched_without_deltas += chunk.length;
        if (const DeltaEntry* entry = usable_delta(chunk); entry != nullptr) {
          window.delta.emplace_back(end, entry);
        } else {
          window.plain.push_back(end);
        }
      }
      ++end;
    }
    return end;
  }

  // The referrer's delta for `chunk` when it can be used: same raw length, smaller than the chunk,
  // and a base the store holds (committed, so it can also serve as the stored delta's base; the
  // index's parser already refused a base that is itself a delta of the index).
  const DeltaEntry* usable_delta(const ChunkIndexEntry& chunk) const {
    if (index_ == nullptr) return nullptr;
    const DeltaEntry* entry = index_->find(chunk.digest);
    // A delta coded against a prefix of several chunks (index schemaVersion 2, image referrers)
    // is not decoded here: the chunk comes whole.
    if (entry == nullptr || entry->raw_length != chunk.length || entry->length >= chunk.length ||
        entry->base == chunk.digest || !entry->prefix.empty() ||
        !source_.store.contains(entry->base)) {
      return nullptr;
    }
    return entry;
  }

  // Starts a new batch in `batches` when the last one is full (ranges or bytes).
  Batch& batch_for(std::vector<Batch>& batches, bool frames, std::uint64_t adding) const {
    const std::size_t per_request =
        std::max<std::size_t>(1, source_.options.max_ranges_per_request);
    if (batches.empty() || batches.back().frames != frames ||
        batches.back().ranges.size() >= per_request ||
        batches.back().bytes + adding > source_.options.batch_bytes) {
      batches.push_back(Batch{frames, {}, {}, 0});
    }
    return batches.back();
  }

  // Merged frames ranges, in push order (the order this pull asks for them): an entry joins the
  // previous range when it starts at or shortly after its end and the batch has room.
  std::vector<Batch> plan_frames(const Window& window) const {
    std::vector<Batch> batches;
    for (std::size_t d = 0; d < window.delta.size(); ++d) {
      const DeltaEntry& entry = *window.delta[d].second;
      if (!batches.empty() && !batches.back().ranges.empty()) {
        Batch& last_batch = batches.back();
        ByteRange& last = last_batch.ranges.back();
        const std::uint64_t last_end = last.offset + last.length;
        const std::uint64_t grown = entry.offset + entry.length - last.offset - last.length;
        if (entry.offset >= last_end && entry.offset - last_end < kFramesGapBridge &&
            last_batch.bytes + grown <= source_.options.batch_bytes) {
          last.length += grown;
          last_batch.bytes += grown;
          last_batch.members.back().push_back(d);
          continue;
        }
      }
      Batch& batch = batch_for(batches, true, entry.length);
      batch.ranges.push_back(ByteRange{entry.offset, entry.length});
      batch.members.push_back({d});
      batch.bytes += entry.length;
    }
    return batches;
  }

  // `chunks` (sorted indexes) as merged ranges of the raw blob: adjacent chunks share a range while
  // the batch has room.
  void append_plain_batches(const std::vector<std::size_t>& chunks,
                            std::vector<Batch>& batches) const {
    const std::size_t first_plain = batches.size();
    for (const std::size_t i : chunks) {
      const ChunkIndexEntry& chunk = chunks_[i];
      if (batches.size() > first_plain) {
        Batch& last_batch = batches.back();
        ByteRange& last = last_batch.ranges.back();
        if (last.offset + last.length == chunk.offset &&
            last_batch.bytes + chunk.length <= source_.options.batch_bytes) {
          last.length += chunk.length;
          last_batch.bytes += chunk.length;
          last_batch.members.back().push_back(i);
          continue;
        }
      }
      Batch& batch = batch_for(batches, false, chunk.length);
      batch.ranges.push_back(ByteRange{chunk.offset, chunk.length});
      batch.members.push_back({i});
      batch.bytes += chunk.length;
    }
  }

  Result<void> run_batches(Window& window, const std::vector<Batch>& batches) {
    return registry::detail::run_parallel(
        batches.size(), source_.options.fetch_jobs,
        [&](std::size_t b) { return run_batch(window, batches[b]); });
  }

  // One batch on this thread: fetched, each chunk checked, stored and written at its offset.
  Result<void> run_batch(Window& window, const Batch& batch) {
    ModelPullStages stages;
    const Digest& blob = batch.frames ? source_.deltas->frames.digest : layer_.digest;
    std::optional<StageTimer> fetching(std::in_place, stages.fetch);
    auto bodies = fetch_batch(blob, batch);
    fetching.reset();
    Result<void> taken;
    if (!bodies.ok()) {
      if (!batch.frames) taken = std::move(bodies).error();
      // A frames blob that cannot be fetched sends the batch's deltas whole: a referrer never fails
      // a pull.
      std::lock_guard lock(window.mutex);
      for (const auto& members : batch.members) {
        for (const std::size_t d : members) {
          if (batch.frames) fall_back(window, window.delta[d].first, bodies.error().message);
        }
      }
    } else {
      taken = batch.frames ? take_deltas(window, batch, *bodies, stages)
                           : take_chunks(window, batch, *bodies, stages);
    }
    std::lock_guard lock(window.mutex);
    file_.stages += stages;
    return taken;
  }

  // The batch's ranges of `blob`, each checked for its length.
  Result<std::vector<std::vector<std::uint8_t>>> fetch_batch(const Digest& blob,
                                                             const Batch& batch) {
    auto bodies = source_.client.fetch_ranges(source_.repository, blob, batch.ranges);
    const std::string where = file_.path + ": blob " + blob.to_string() + ", " +
                              std::to_string(batch.ranges.size()) + " ranges from offset " +
                              std::to_string(batch.ranges.front().offset);
    if (!bodies.ok()) return make_error(bodies.error().code, where + ": " + bodies.error().message);
    if (bodies->size() != batch.ranges.size()) {
      return make_error(ErrorCode::kCorruptInput,
                        where + ": " + std::to_string(bodies->size()) + " ranges came");
    }
    std::uint64_t received = 0;
    for (std::size_t r = 0; r < batch.ranges.size(); ++r) {
      const ByteRange& range = batch.ranges[r];
      received += (*bodies)[r].size();
      if ((*bodies)[r].size() != range.length) {
        return make_error(ErrorCode::kCorruptInput,
                          file_.path + ": range at " + std::to_string(range.offset) + " of " +
                              blob.to_string() + " came back with " +
                              std::to_string((*bodies)[r].size()) + " bytes");
      }
    }
    std::lock_guard lock(window_counters_mutex_);
    file_.bytes_fetched += received;
    if (blob != layer_.digest) file_.delta_bytes_fetched += received;
    return bodies;
  }

  // Whole chunks: SHA-256 checked, compressed, stored, written at their offsets; the bodies then
  // stay with the window until it is hashed.
  Result<void> take_chunks(Window& window, const Batch& batch,
                           std::vector<std::vector<std::uint8_t>>& bodies,
                           ModelPullStages& stages) {
    std::vector<std::pair<std::size_t, ByteSpan>> taken;
    for (std::size_t r = 0; r < batch.ranges.size(); ++r) {
      std::size_t at = 0;
      for (const std::size_t i : batch.members[r]) {
        const ChunkIndexEntry& chunk = chunks_[i];
        const ByteSpan bytes = ByteSpan(bodies[r]).subspan(at, chunk.length);
        at += chunk.length;
        STRATA_TRY(verify_chunk(i, bytes, stages));
        STRATA_TRY(store_chunk(window, chunk.digest, bytes, stages));
        STRATA_TRY(write_chunk(chunk, bytes, stages));
        taken.emplace_back(i, bytes);
      }
    }
    std::lock_guard lock(window.mutex);
    for (const auto& [i, bytes] : taken)
      window.fetched.emplace(chunks_[i].digest, std::pair{bytes, i});
    file_.chunks_fetched += taken.size();
    for (auto& body : bodies) window.storage.push_back(std::move(body));
    return {};
  }

  Result<void> verify_chunk(std::size_t i, ByteSpan bytes, ModelPullStages& stages) const {
    const StageTimer verifying(stages.verify);
    const ChunkIndexEntry& chunk = chunks_[i];
    if (sha256_of(bytes) != chunk.digest) {
      return make_error(ErrorCode::kDigestMismatch,
                        file_.path + ": chunk " + std::to_string(i) + " at offset " +
                            std::to_string(chunk.offset) + " of " + layer_.digest.to_string() +
                            " does not hash to " + chunk.digest.to_string() +
                            " as its chunk index says");
    }
    return {};
  }

  // A chunk whose SHA-256 was checked, compressed and decoded back (the store's put check,
  // shared/specs/reliability.md P3, done here on this thread), then put into the shared session.
  Result<void> store_chunk(Window& window, const Digest& digest, ByteSpan raw,
                           ModelPullStages& stages) {
    const StageTimer storing(stages.store);
    auto stored = compress_chunk_zstd(raw, source_.options.zstd_level);
    if (!stored.ok()) return std::move(stored).error();
    auto decoded = decompress_chunk(Codec::kZstd, *stored, raw.size());
    if (!decoded.ok() || !std::equal(decoded->begin(), decoded->end(), raw.begin(), raw.end())) {
      return make_error(ErrorCode::kCorruptInput,
                        "chunk " + digest.to_string() + " does not decode back after compression");
    }
    std::lock_guard lock(window.mutex);
    return writer_.put_verified_chunk(digest, raw, *stored, Codec::kZstd);
  }

  Result<void> write_chunk(const ChunkIndexEntry& chunk, ByteSpan bytes,
                           ModelPullStages& stages) const {
    const StageTimer writing(stages.write);
    return pwrite_all(fd_, chunk.offset, bytes, assembly_);
  }

  // A batch of deltas: each decoded through its base and checked, stored, written; one that fails
  // comes whole in the window's second round.
  Result<void> take_deltas(Window& window, const Batch& batch,
                           const std::vector<std::vector<std::uint8_t>>& bodies,
                           ModelPullStages& stages) {
    for (std::size_t r = 0; r < batch.ranges.size(); ++r) {
      for (const std::size_t d : batch.members[r]) {
        const auto& [i, entry] = window.delta[d];
        const ByteSpan coded =
            ByteSpan(bodies[r]).subspan(entry->offset - batch.ranges[r].offset, entry->length);
        STRATA_TRY(take_delta(window, i, *entry, coded, stages));
      }
    }
    return {};
  }

  // Caller holds window.mutex.
  void fall_back(Window& window, std::size_t i, const std::string& problem) {
    window.fallen_back.push_back(i);
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
                                                 std::vector<std::uint8_t>& base_raw,
                                                 ModelPullStages& stages) const {
    const std::string against = "delta against " + entry.base.to_string();
    std::optional<StageTimer> decoding(std::in_place, stages.decode);
    auto base = source_.store.read_chunk(entry.base);
    if (!base.ok()) return make_error(base.error().code, against + ": " + base.error().message);
    auto raw = decompress_delta_chunk(entry.codec, coded, *base, chunk.length);
    if (!raw.ok()) return make_error(raw.error().code, against + ": " + raw.error().message);
    decoding.reset();
    const StageTimer verifying(stages.verify);
    if (const Digest got = sha256_of(*raw); got != chunk.digest) {
      return make_error(ErrorCode::kDigestMismatch,
                        against + " decodes to bytes hashing to " + got.to_string());
    }
    base_raw = std::move(*base);
    return raw;
  }

  // One delta: decoded, stored (as the delta itself where the base can serve, else whole) and
  // written; a delta that does not give its chunk falls back (a write that fails is an error).
  Result<void> take_delta(Window& window, std::size_t i, const DeltaEntry& entry, ByteSpan coded,
                          ModelPullStages& stages) {
    const ChunkIndexEntry& chunk = chunks_[i];
    std::vector<std::uint8_t> base;
    auto raw = decode_delta(chunk, entry, coded, base, stages);
    if (!raw.ok()) {
      std::lock_guard lock(window.mutex);
      fall_back(window, i, raw.error().message);
      return {};
    }
    bool as_delta = false;
    {
      // decode_delta decoded `coded` through the base to `raw` and hashed it: the put's check.
      const StageTimer storing(stages.store);
      std::lock_guard lock(window.mutex);
      as_delta =
          writer_.put_verified_delta_chunk(chunk.digest, *raw, coded, entry.codec, entry.base, base)
              .ok();
    }
    // The base cannot serve as a stored delta's base (kInvalidArgument): stored whole instead.
    if (!as_delta && !store_chunk(window, chunk.digest, *raw, stages).ok()) {
      std::lock_guard lock(window.mutex);
      fall_back(window, i, "cannot store the decoded chunk");
      return {};
    }
    STRATA_TRY(write_chunk(chunk, *raw, stages));
    std::lock_guard lock(window.mutex);
    if (as_delta) ++file_.delta_stored_chunks;
    ++file_.delta_chunks;
    ++file_.chunks_fetched;
    window.fetched.emplace(chunk.digest, std::pair{ByteSpan(*raw), i});
    window.storage.push_back(std::move(*raw));
    return {};
  }

  // The bytes of chunk `i` that this window did not fetch: from an earlier window's part of the
  // file (checked again), or from the store.
  Result<ByteSpan> held_chunk(std::size_t i, std::vector<std::uint8_t>& buffer) const {
    const ChunkIndexEntry& chunk = chunks_[i];
    if (const auto earlier = requested_.find(chunk.digest);
        earlier != requested_.end() && earlier->second != i) {
      buffer.resize(chunk.length);
      auto read = pread_all(fd_, chunks_[earlier->second].offset, buffer, assembly_);
      if (!read.ok()) return std::move(read).error();
      if (*read != chunk.length || sha256_of(buffer) != chunk.digest) {
        return make_error(
            ErrorCode::kDigestMismatch,
            assembly_ + " changed while being written (chunk " + std::to_string(i) + ")");
      }
      return ByteSpan(buffer);
    }
    auto read = source_.store.read_chunk(chunk.digest);
    if (!read.ok()) return std::move(read).error();
    if (read->size() != chunk.length) {
      return make_error(ErrorCode::kCorruptInput,
                        file_.path + ": chunk " + std::to_string(i) + " has " +
                            std::to_string(read->size()) + " bytes in the store, " +
                            std::to_string(chunk.length) + " in the index");
    }
    buffer = std::move(*read);
    return ByteSpan(buffer);
  }

  // The window in blob order through the blob's SHA-256, in slices of about window_bytes (held
  // chunks are not counted in the window's missing bytes, so memory is bounded here).
  Result<void> assemble_window(std::size_t next, std::size_t end, const Window& window) {
    std::size_t from = next;
    while (from < end) {
      std::size_t to = from;
      std::uint64_t bytes = 0;
      while (to < end &&
             (to == from || bytes + chunks_[to].length <= source_.options.window_bytes)) {
        bytes += chunks_[to].length;
        ++to;
      }
      STRATA_TRY(assemble_slice(from, to, window));
      from = to;
    }
    return {};
  }

  // Chunks [from, to): those this window did not fetch (held by the store or an earlier window) are
  // read, checked and written at their offsets on fetch_jobs threads; then every chunk goes through
  // the blob's SHA-256 in order, and repeats of a fetched chunk are written.
  Result<void> assemble_slice(std::size_t from, std::size_t to, const Window& window) {
    std::vector<std::vector<std::uint8_t>> held(to - from);
    std::vector<std::size_t> to_read;
    for (std::size_t i = from; i < to; ++i) {
      if (!window.fetched.contains(chunks_[i].digest)) to_read.push_back(i);
    }
    {
      const StageTimer local(file_.stages.local);
      STRATA_TRY(registry::detail::run_parallel(
          to_read.size(), source_.options.fetch_jobs, [&](std::size_t k) -> Result<void> {
            const std::size_t i = to_read[k];
            auto got = held_chunk(i, held[i - from]);
            if (!got.ok()) return std::move(got).error();
            return pwrite_all(fd_, chunks_[i].offset, *got, assembly_);
          }));
    }
    for (std::size_t i = from; i < to; ++i) {
      const ChunkIndexEntry& chunk = chunks_[i];
      ByteSpan bytes = held[i - from];
      const auto got = window.fetched.find(chunk.digest);
      if (got != window.fetched.end()) bytes = got->second.first;
      {
        const StageTimer hashing(file_.stages.blob_hash);
        blob_hash_.update(bytes);
      }
      if (got != window.fetched.end() && got->second.second != i) {
        const StageTimer local(file_.stages.local);
        STRATA_TRY(pwrite_all(fd_, chunk.offset, bytes, assembly_));
      }
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
  // Chunks asked for so far (by this or an earlier window): the index that fetched each.
  std::map<Digest, std::size_t> requested_;
  std::mutex window_counters_mutex_;  // bytes_fetched and delta_bytes_fetched
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
