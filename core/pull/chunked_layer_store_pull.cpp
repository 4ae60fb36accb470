// A chunked layer pulled straight into the chunk store (fastpull::pull_chunked_layer_into_store),
// in bounded memory. Facts: shared/specs/layer-formats.md §1.1 (a zstd:chunked chunk is its own
// zstd frame, so the fetched bytes are a ready store frame), §1.3 (tar-split lines rebuild the tar
// around the file bodies), §1.5/§1.6 (TOC chunks, offsets, endOffset), §2 (eStargz gzip members).
//
// The plan's ranges are cut at piece boundaries into batches (batched_blob.h: a few MiB of short
// ranges per multi-range GET, long runs streamed in requests of a few tens of MiB) fetched in blob
// order: pieces of a chunked blob are in tar order, so the tar is produced front to back and
// nothing holds the whole layer, only a few batches and the chunks being decoded. Every chunk is
// decoded and hashed against its TOC digest before it is put (that check is the store's P3), the
// tar against the diff_id (hashed on a thread of its own, diff_id_hasher.h), the TOC and tar-split
// against the tar's headers; the one commit that makes the layer visible writes its index rows
// while those last checks finish, and commits only once they hold. The TOC's file
// digests are not checked: with every chunk and the whole tar checked before commit they prove
// nothing more, and skipping them hashes each byte once besides the diff_id (a TOC whose chunks
// are right describes the tar exactly; a tar other than the config's fails the diff_id).
//
// Chunk boundaries: the recipe keeps the TOC's chunks (c/storage rollsum, ctr-remote, strata's
// own FastCDC: whatever cut the layer), not FastCDC cuts of its own. That is what makes the pull
// cheap (a zstd:chunked frame is stored as fetched, no re-chunking, no recompression), and the
// next pull of this image (or of a later version made by the same tool) plans against exactly the
// digests the store now holds. The price: a later local ingest of the same files cuts FastCDC
// chunks and dedups against these only where the boundaries agree (always, for layers strata
// wrote itself). eStargz chunks are gzip members, so they are decoded and compressed with zstd
// here (only the chunks: headers stay inline bytes).
#include <zstd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <future>
#include <unordered_map>
#include <utility>

#include "core/base/digest_hash.h"
#include "core/pull/batched_blob.h"
#include "core/pull/chunked_pull_checks.h"
#include "core/pull/diff_id_hasher.h"
#include "core/pull/piece_prefetch.h"
#include "core/pull/pull_stage_clock.h"
#include "formats/chunked/toc_json.h"
#include "strata/oci.h"
#include "strata/recipe.h"
#include "strata/store.h"
#include "strata/store_pull.h"

namespace strata::fastpull {
namespace {

// A TOC chunk over the store's kMaxStoredChunkBytes is stored as chunks of this size.
constexpr std::size_t kOversizeChunkSplitBytes = std::size_t{8} << 20U;
// Inline recipe bytes (headers, padding): entry-count bombs stop here (as LayerRecipeLimits).
constexpr std::uint64_t kMaxInlineBytes = std::uint64_t{256} << 20U;
constexpr std::size_t kZeroBlockBytes = std::size_t{1} << 20U;

// Serves the delta bytes of a plan's delta pieces from the frames blob (docs/DELTA.md). Deltas
// are asked for in piece order, so units are built in that order: an entry that starts at or
// shortly after the previous one's end joins its unit, any other (a repeat, an earlier offset)
// starts a new one; units are grouped into batches of at most `batch_bytes`, fetched one after
// the other (one RangeBatchFetcher call each), so one batch is held at a time.
class DeltaFeed {
 public:
  DeltaFeed(const DeltaPullSource* source, const PullPlan& plan, const StorePullOptions& options,
            StorePullReport& report)
      : source_(source), report_(report) {
    if (source_ == nullptr) return;
    const std::uint64_t limit = std::max<std::uint64_t>(options.batch_bytes, 1);
    const std::size_t max_ranges = std::max<std::size_t>(options.max_ranges_per_batch, 1);
    constexpr std::uint64_t kGapBridge = 4096;
    std::uint64_t batch_bytes = 0;
    for (const BlobPiece& piece : plan.pieces) {
      if (!piece.delta) continue;
      const DeltaEntry& entry = *piece.delta;
      if (!batches_.empty() && !batches_.back().empty()) {
        ByteRange& last = batches_.back().back();
        const std::uint64_t last_end = last.offset + last.length;
        const std::uint64_t grown = entry.offset + entry.length - last.offset;
        if (entry.offset >= last_end && entry.offset - last_end < kGapBridge &&
            batch_bytes - last.length + grown <= limit) {
          batch_bytes += grown - last.length;
          last.length = grown;
          continue;
        }
      }
      if (batches_.empty() || batches_.back().size() >= max_ranges ||
          batch_bytes + entry.length > limit) {
        batches_.emplace_back();
        batch_bytes = 0;
      }
      batches_.back().push_back(ByteRange{entry.offset, entry.length});
      batch_bytes += entry.length;
    }
  }

  Result<ByteSpan> bytes_of(std::uint64_t offset, std::uint64_t end) {
    for (;;) {
      for (std::size_t i = 0; i < units_.size(); ++i) {
        const ByteRange& unit = units_[i];
        if (offset >= unit.offset && end <= unit.offset + unit.length) {
          return ByteSpan(bytes_[i]).subspan(offset - unit.offset, end - offset);
        }
      }
      if (source_ == nullptr || next_ >= batches_.size()) {
        return make_error(ErrorCode::kInvalidArgument,
                          "plan does not fetch the delta at offset " + std::to_string(offset));
      }
      STRATA_TRY(fetch_next());
    }
  }

 private:
  Result<void> fetch_next() {
    const std::vector<ByteRange>& units = batches_[next_++];
    units_.clear();
    bytes_.clear();
    std::uint64_t total = 0;
    for (const ByteRange& unit : units) {
      if (unit.offset > source_->frames_size || unit.length > source_->frames_size - unit.offset) {
        return make_error(ErrorCode::kCorruptInput, "delta range outside the frames blob");
      }
      total += unit.length;
    }
    auto fetched = source_->fetch(units);
    if (!fetched) return std::move(fetched).error();
    STRATA_TRY(detail::check_fetched_ranges(units, *fetched, "delta range"));
    units_ = units;
    bytes_ = std::move(*fetched);
    ++report_.batches;
    report_.fetched_bytes += total;
    report_.delta_fetched_bytes += total;
    report_.max_batch_bytes = std::max(report_.max_batch_bytes, total);
    return {};
  }

  const DeltaPullSource* source_;
  StorePullReport& report_;
  std::vector<std::vector<ByteRange>> batches_;
  std::size_t next_ = 0;
  std::vector<ByteRange> units_;
  std::vector<std::vector<std::uint8_t>> bytes_;
};

// Replays a recipe's shape for the tar reader: inline bytes as recorded, chunk content as zeros
// (the reader only skips file bodies), so the headers can be checked without the chunks.
class RecipeShapeSource final : public ByteSource {
 public:
  explicit RecipeShapeSource(const Recipe& recipe) : recipe_(recipe) {}

  Result<std::size_t> read(MutableByteSpan out) override {
    const auto& segments = recipe_.segments();
    while (segment_ < segments.size() && done_ == segments[segment_].length) {
      ++segment_;
      done_ = 0;
    }
    if (segment_ == segments.size() || out.empty()) return std::size_t{0};
    const RecipeSegment& segment = segments[segment_];
    const auto n =
        static_cast<std::size_t>(std::min<std::uint64_t>(out.size(), segment.length - done_));
    if (segment.kind == RecipeSegmentKind::kRaw) {
      const ByteSpan raw = recipe_.raw_of(segment).subspan(done_, n);
      std::copy(raw.begin(), raw.end(), out.begin());
    } else {
      std::fill_n(out.begin(), n, std::uint8_t{0});
    }
    done_ += n;
    return n;
  }

  Result<std::uint64_t> skip(std::uint64_t count) override {
    const auto& segments = recipe_.segments();
    std::uint64_t skipped = 0;
    while (skipped < count && segment_ < segments.size()) {
      const std::uint64_t n = std::min(count - skipped, segments[segment_].length - done_);
      skipped += n;
      done_ += n;
      if (done_ == segments[segment_].length) {
        ++segment_;
        done_ = 0;
      }
    }
    return skipped;
  }

 private:
  const Recipe& recipe_;
  std::size_t segment_ = 0;
  std::uint64_t done_ = 0;
};

// With headers from the decoded blob (no tar-split used), a tar-split, when the layer has one,
// must still rebuild the tar: its segments must be the recipe's inline bytes at the same places
// and its files must cover exactly the chunk content (the bodies are checked by chunk digests
// and the diff_id, so the CRC-64s are not recomputed).
Result<void> check_tar_split_against_recipe(ByteSpan tar_split, const Recipe& recipe) {
  const auto& segments = recipe.segments();
  std::size_t index = 0;
  std::uint64_t done = 0;  // bytes of segments[index] consumed
  const auto skip_empty = [&] {
    while (index < segments.size() && done == segments[index].length) {
      ++index;
      done = 0;
    }
  };
  auto walked =
      detail::for_each_tar_split_line(tar_split, [&](detail::TarSplitLine& line) -> Result<void> {
        if (line.type == 2) {
          ByteSpan rest(line.payload);
          while (!rest.empty()) {
            skip_empty();
            if (index == segments.size() || segments[index].kind != RecipeSegmentKind::kRaw) {
              return make_error(ErrorCode::kCorruptInput,
                                line.where() + "segment does not match the tar's headers");
            }
            const ByteSpan raw = recipe.raw_of(segments[index]).subspan(done);
            const std::size_t n = std::min(raw.size(), rest.size());
            if (!std::equal(rest.begin(), rest.begin() + static_cast<std::ptrdiff_t>(n),
                            raw.begin())) {
              return make_error(ErrorCode::kCorruptInput,
                                line.where() + "segment differs from the tar's bytes");
            }
            rest = rest.subspan(n);
            done += n;
          }
          return {};
        }
        std::uint64_t left = line.file.size;
        while (left != 0) {
          skip_empty();
          if (index == segments.size() || segments[index].kind != RecipeSegmentKind::kChunk) {
            return make_error(ErrorCode::kCorruptInput, line.where() + "'" + line.file.name +
                                                            "' is not file content in the tar");
          }
          const std::uint64_t n = std::min(left, segments[index].length - done);
          left -= n;
          done += n;
        }
        return {};
      });
  if (!walked) return walked;
  skip_empty();
  if (index != segments.size()) {
    return make_error(ErrorCode::kCorruptInput, "tar-split ends before the tar does");
  }
  return {};
}

class StorePull {
 public:
  StorePull(ChunkStore& store, StoreWriter writer, const ChunkedLayerToc& layer,
            const PullPlan& plan, const StorePullOptions& options, detail::PiecePrefetch& prefetch,
            DeltaFeed& deltas, StorePullReport& report)
      : store_(store),
        writer_(std::move(writer)),
        layer_(layer),
        plan_(plan),
        options_(options),
        prefetch_(prefetch),
        deltas_(deltas),
        report_(report) {
    for (const BlobPiece& piece : plan_.pieces) {
      if (piece.repeat) ++held_[piece.digest].uses;
    }
  }

  Result<void> run(const Digest& expected_diff_id) {
    if (plan_.headers_from_tar_split) {
      STRATA_TRY(run_from_tar_split());
    } else {
      STRATA_TRY(run_from_pieces());
    }
    Recipe recipe = builder_.finish();
    // The recipe's bytes (its body in one zstd frame) are made on another thread, and the tar's
    // headers checked and its digest finished on a third, while this one writes the layer's index
    // rows: the transaction commits only once both checks hold, so nothing is kept unless the
    // digest is the diff_id it must be (the error reported first) and the headers are the TOC's.
    recipe.set_diff_id(expected_diff_id);
    auto serialized =
        std::async(std::launch::async, [&recipe] { return serialize_recipe(recipe); });
    auto verified = std::async(std::launch::async, [&]() -> Result<void> {
      const auto start = std::chrono::steady_clock::now();
      const Result<std::uint64_t> checked = check_headers(recipe);
      report_.stages.check +=
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      const Digest diff_id = diff_id_.finish();
      report_.stages.diff_id = diff_id_.hash_seconds();
      report_.diff_id = diff_id;
      if (diff_id != expected_diff_id) {
        return make_error(ErrorCode::kDigestMismatch, "rebuilt layer " + diff_id.to_string() +
                                                          " differs from diff_id " +
                                                          expected_diff_id.to_string());
      }
      if (!checked) return checked.error();
      report_.entries_checked = *checked;
      return {};
    });
    report_.tar_bytes = recipe.total_size();
    LayerRecord record;
    record.diff_id = expected_diff_id;       // committed only once the tar's digest is this
    record.layer_digest = expected_diff_id;  // the blob's digest is unverified here
    record.media_type =
        options_.media_type.empty() ? std::string(oci::kMediaTypeLayerTar) : options_.media_type;
    record.size = recipe.total_size();
    const std::vector<Digest> chunks = recipe.distinct_chunks();
    auto committing = clock_.enter(&PullStageTimes::commit);
    auto committed =
        writer_.commit_layer(record, chunks, [&]() -> Result<std::vector<std::uint8_t>> {
          STRATA_TRY(verified.get());
          return serialized.get();
        });
    if (!committed) {
      // A commit that failed before it asked for the checks still reports a bad layer first.
      if (verified.valid()) STRATA_TRY(verified.get());
      return std::move(committed).error();
    }
    report_.already_present = committed->already_present;
    report_.new_chunks = committed->new_chunks;
    report_.new_stored_bytes = committed->new_stored_bytes;
    return {};
  }

 private:
  // The TOC (and a tar-split the rebuild did not follow) against the rebuilt tar's headers, read
  // from the recipe: the entries checked.
  Result<std::uint64_t> check_headers(const Recipe& recipe) {
    RecipeShapeSource shape(recipe);
    auto entries = detail::read_tar_entries(shape);
    if (!entries) return std::move(entries).error();
    auto checked = detail::check_toc_against_entries(layer_, *entries);
    if (!checked) return std::move(checked).error();
    if (!plan_.headers_from_tar_split && !layer_.tar_split.empty()) {
      STRATA_TRY(check_tar_split_against_recipe(layer_.tar_split, recipe));
    }
    return *checked;
  }

  // Current zstd:chunked: the tar-split gives every header and padding byte; file bodies are the
  // TOC's chunks in order, and every tar-split file must end on a chunk boundary.
  Result<void> run_from_tar_split() {
    std::size_t index = 0;
    const auto next_chunk_piece = [&]() -> const BlobPiece* {
      while (index < plan_.pieces.size()) {
        const BlobPiece& piece = plan_.pieces[index++];
        if (piece.is_chunk || piece.chunk_prefix) return &piece;
      }
      return nullptr;
    };
    auto walked = detail::for_each_tar_split_line(
        layer_.tar_split, [&](detail::TarSplitLine& line) -> Result<void> {
          if (line.type == 2) return add_inline(line.payload);
          std::uint64_t left = line.file.size;
          while (left != 0) {
            const BlobPiece* piece = next_chunk_piece();
            if (piece == nullptr) {
              return make_error(ErrorCode::kCorruptInput,
                                line.where() + "'" + line.file.name +
                                    "' needs more content than the TOC's files hold");
            }
            if (piece->chunk_size > left) {
              return make_error(ErrorCode::kCorruptInput, line.where() + "'" + line.file.name +
                                                              "' ends inside a TOC chunk of '" +
                                                              piece->name + "'");
            }
            STRATA_TRY(take_chunk_piece(*piece, false));
            left -= piece->chunk_size;
          }
          return {};
        });
    if (!walked) return walked;
    if (next_chunk_piece() != nullptr) {
      return make_error(ErrorCode::kCorruptInput,
                        "tar-split uses less content than the TOC's files hold");
    }
    return {};
  }

  // zstd:chunked without a tar-split, and eStargz: the gap pieces decode to the tar's headers.
  Result<void> run_from_pieces() {
    for (const BlobPiece& piece : plan_.pieces) {
      if (piece.is_chunk || piece.chunk_prefix) {
        STRATA_TRY(take_chunk_piece(piece, true));
      } else if (piece.local) {  // the eStargz TOC member, fetched with the TOC
        auto unit = next_piece(piece);
        if (!unit) return std::move(unit).error();
        STRATA_TRY(detail::decode_blob_piece(layer_.format, layer_.tail_member, kMaxInlineBytes,
                                             piece.offset,
                                             [&](ByteSpan bytes) { return add_inline(bytes); }));
      } else {
        auto unit = next_piece(piece);
        if (!unit) return std::move(unit).error();
        auto decoding = clock_.enter(&PullStageTimes::decode);
        STRATA_TRY(detail::decode_blob_piece(layer_.format, (*unit)->fetched.bytes, kMaxInlineBytes,
                                             piece.offset,
                                             [&](ByteSpan out) { return add_inline(out); }));
      }
    }
    return {};
  }

  Result<void> add_inline(ByteSpan bytes) {
    inline_bytes_ += bytes.size();
    if (inline_bytes_ > kMaxInlineBytes) {
      return make_error(ErrorCode::kLimitExceeded, "layer needs more than " +
                                                       std::to_string(kMaxInlineBytes) +
                                                       " inline bytes (tar headers and padding)");
    }
    diff_id_.add_copy(bytes);
    builder_.add_raw(bytes);
    return {};
  }

  // One TOC chunk: from the store, made (zeros) or decoded from its fetched piece. A prefix piece
  // (eStargz, zstd:chunked v1) decodes to the chunk followed by tar bytes, kept inline when
  // `keep_trailing` (the tar-split has them otherwise).
  Result<void> take_chunk_piece(const BlobPiece& piece, bool keep_trailing) {
    auto unit = next_piece(piece);
    if (!unit) return std::move(unit).error();
    detail::PreparedPiece& prepared = **unit;
    begin_chunk(piece);
    if (prepared.ready && !piece.zeros) {  // decoded and checked ahead (piece_prefetch.h)
      chunk_verified_ = true;
      const ByteSpan raw = prepared.raw_bytes();
      STRATA_TRY(feed_chunk(raw, std::move(prepared.raw)));
      if (piece.local) ++report_.local_chunks;
      return finish_chunk(prepared.frame);
    }
    if (piece.local && piece.zeros) {
      static const auto zeros = std::make_shared<const std::vector<std::uint8_t>>(kZeroBlockBytes);
      for (std::uint64_t left = piece.chunk_size; left != 0;) {
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(left, zeros->size()));
        STRATA_TRY(feed_chunk(ByteSpan(*zeros).first(n), zeros));
        left -= n;
      }
      ++report_.local_chunks;
      return finish_chunk({});
    }
    if (piece.local) {
      auto reading = clock_.enter(&PullStageTimes::local);
      auto chunk = store_.read_chunk(piece.digest);
      if (!chunk) return std::move(chunk).error();
      chunk_verified_ = true;  // read_chunk checked its SHA-256 against the digest
      auto raw = std::make_shared<std::vector<std::uint8_t>>(std::move(*chunk));
      STRATA_TRY(feed_chunk(*raw, raw));
      ++report_.local_chunks;
      return finish_chunk({});
    }
    if (piece.repeat) return take_repeat_piece(piece);
    if (piece.delta) {
      auto taken = take_delta_piece(piece);
      if (!taken) return std::move(taken).error();
      if (*taken) return {};
      // The delta did not give the chunk: its own piece of the layer blob instead.
      auto whole = [&] {
        auto waiting = clock_.enter(&PullStageTimes::fetch_wait);
        return options_.deltas->fetch_chunk(piece.offset, piece.end - piece.offset);
      }();
      if (!whole) return std::move(whole).error();
      if (whole->size() != piece.end - piece.offset) {
        return make_error(ErrorCode::kIo, chunk_error("came back short"));
      }
      ++report_.delta_fallbacks;
      report_.fetched_bytes += whole->size();
      return take_fetched_piece(piece, *whole, keep_trailing);
    }
    return take_fetched_piece(piece, prepared.fetched.bytes, keep_trailing);
  }

  // The piece from the pipeline ahead, with its fetched bytes (and, when it could be, decoded).
  Result<std::unique_ptr<detail::PreparedPiece>> next_piece(const BlobPiece& piece) {
    auto waiting = clock_.enter(&PullStageTimes::fetch_wait);
    return prefetch_.next(static_cast<std::size_t>(&piece - plan_.pieces.data()));
  }

  // A chunk an earlier piece of this layer brought (apply_delta_index marked it `repeat`): its
  // raw bytes, kept when that piece was checked, are used again and dropped after the last use.
  Result<void> take_repeat_piece(const BlobPiece& piece) {
    const auto held = held_.find(piece.digest);
    if (held == held_.end() || !held->second.raw || held->second.raw->size() != piece.chunk_size) {
      return make_error(ErrorCode::kInvalidArgument,
                        chunk_error("is a repeat of a chunk the plan does not bring before it"));
    }
    chunk_verified_ = true;  // hashed when it was first taken
    STRATA_TRY(feed_chunk(*held->second.raw, held->second.raw));
    ++report_.repeat_chunks;
    if (--held->second.uses == 0) held_.erase(held);
    return finish_chunk({});
  }

  // A chunk coded as a delta (docs/DELTA.md): its bytes from the frames blob, decoded with its
  // base's raw bytes from the store, and checked against the chunk's SHA-256 before a byte of it
  // reaches the tar. False (nothing fed) when that fails and the chunk can be fetched whole;
  // without a way to fetch it, an error naming the chunk and its base.
  Result<bool> take_delta_piece(const BlobPiece& piece) {
    const DeltaEntry& entry = *piece.delta;
    auto coded = [&] {
      auto waiting = clock_.enter(&PullStageTimes::fetch_wait);
      return deltas_.bytes_of(entry.offset, entry.offset + entry.length);
    }();
    if (!coded) return std::move(coded).error();
    auto decoding = clock_.enter(&PullStageTimes::decode);
    std::string problem;
    auto base = entry.prefix.empty() ? store_.read_chunk(entry.base) : joined_prefix(entry);
    Result<std::vector<std::uint8_t>> raw = make_error(ErrorCode::kCorruptInput, "not decoded");
    if (!base) {
      problem = base.error().message;
    } else {
      raw = decompress_delta_chunk(entry.codec, *coded, *base, piece.chunk_size);
      if (!raw) {
        problem = raw.error().message;
      } else if (const Digest got = sha256_of(*raw); got != piece.digest) {
        problem = "decodes to bytes hashing to " + got.to_string();
      }
    }
    if (!problem.empty()) {
      if (!options_.deltas || !options_.deltas->fetch_chunk) {
        return make_error(ErrorCode::kCorruptInput, "chunk " + piece.digest.to_string() + " of '" +
                                                        piece.name + "': delta against base " +
                                                        entry.base.to_string() + ": " + problem);
      }
      return false;
    }
    chunk_verified_ = true;  // hashed just above
    auto shared = std::make_shared<std::vector<std::uint8_t>>(std::move(*raw));
    STRATA_TRY(feed_chunk(*shared, shared));
    // A delta against a prefix of several chunks has no single base to be stored against: the
    // chunk is then stored whole.
    delta_store_ = entry.prefix.empty() ? &entry : nullptr;
    delta_coded_ = *coded;
    delta_base_raw_ = std::move(*base);
    ++report_.delta_chunks;
    STRATA_TRY(finish_chunk({}));
    return true;
  }

  // The raw bytes of a delta's prefix chunks (DeltaEntry::prefix) back to back, each checked by
  // read_chunk, at most the store's chunk limit in all.
  Result<std::vector<std::uint8_t>> joined_prefix(const DeltaEntry& entry) const {
    std::vector<std::uint8_t> joined;
    for (const Digest& part : entry.prefix) {
      auto bytes = store_.read_chunk(part);
      if (!bytes) return std::move(bytes).error();
      if (joined.size() + bytes->size() > kMaxStoredChunkBytes) {
        return make_error(
            ErrorCode::kLimitExceeded,
            "prefix chunks add up to more than " + std::to_string(kMaxStoredChunkBytes) + " bytes");
      }
      joined.insert(joined.end(), bytes->begin(), bytes->end());
    }
    return joined;
  }

  Result<void> take_fetched_piece(const BlobPiece& piece, ByteSpan bytes, bool keep_trailing) {
    const auto sink_rest = [&](ByteSpan out) -> Result<void> {
      return keep_trailing ? add_inline(out) : Result<void>{};
    };
    if (layer_.format != ChunkedFormat::kEstargz) {
      // The first frame is the chunk's own when it declares the chunk's size: it is decoded in
      // one call, checked, and stored as fetched. A frame without a size gets it in its header
      // and is tried the same way; when it turns out to hold more or less than the chunk (some
      // writers put the next tar headers in the chunk's frame) the piece takes the general path.
      const std::size_t frame = ZSTD_findFrameCompressedSize(bytes.data(), bytes.size());
      const unsigned long long declared = ZSTD_getFrameContentSize(bytes.data(), bytes.size());
      const bool sized = declared == piece.chunk_size;
      Result<std::vector<std::uint8_t>> raw = make_error(ErrorCode::kUnsupported, "not tried");
      auto decoding = clock_.enter(&PullStageTimes::decode);
      if (ZSTD_isError(frame) == 0U && piece.chunk_size <= kMaxStoredChunkBytes &&
          (sized ||
           (declared == ZSTD_CONTENTSIZE_UNKNOWN &&
            detail::with_content_size(bytes.first(frame), piece.chunk_size, sized_frame_)))) {
        raw = decompress_chunk(Codec::kZstd, sized ? bytes.first(frame) : ByteSpan(sized_frame_),
                               piece.chunk_size);
        if (!raw && sized) {
          return make_error(raw.error().code, "chunk of '" + piece.name + "' at chunkOffset " +
                                                  std::to_string(piece.chunk_offset) + ": " +
                                                  raw.error().message);
        }
      }
      if (raw) {
        const ByteSpan frame_bytes = sized ? bytes.first(frame) : ByteSpan(sized_frame_);
        auto shared = std::make_shared<std::vector<std::uint8_t>>(std::move(*raw));
        STRATA_TRY(feed_chunk(*shared, shared));
        STRATA_TRY(finish_chunk(frame_bytes));
        // Whatever follows the chunk's frame in its piece: tar headers (prefix piece) or nothing.
        return detail::decode_blob_piece(layer_.format, bytes.subspan(frame),
                                         piece.is_chunk ? 0 : kMaxInlineBytes, piece.offset + frame,
                                         sink_rest);
      }
    }
    const std::uint64_t cap =
        piece.is_chunk ? piece.chunk_size : piece.chunk_size + kMaxInlineBytes;
    std::uint64_t seen = 0;
    auto decoding = clock_.enter(&PullStageTimes::decode);
    auto decoded = detail::decode_blob_piece(
        layer_.format, bytes, cap, piece.offset, [&](ByteSpan out) -> Result<void> {
          const auto to_chunk = static_cast<std::size_t>(
              std::min<std::uint64_t>(out.size(), piece.chunk_size - seen));
          seen += to_chunk;
          if (to_chunk != 0) STRATA_TRY(feed_chunk(out.first(to_chunk)));
          if (to_chunk == out.size()) return {};
          // The trailing tar bytes may only start once the chunk is complete: finish it first.
          if (!chunk_finished_) STRATA_TRY(finish_chunk({}));
          return sink_rest(out.subspan(to_chunk));
        });
    if (!decoded) return decoded;
    return chunk_finished_ ? Result<void>{} : finish_chunk({});
  }

  void begin_chunk(const BlobPiece& piece) {
    chunk_ = &piece;
    chunk_seen_ = 0;
    chunk_finished_ = false;
    chunk_verified_ = false;
    chunk_hash_ = Sha256();
    chunk_bytes_.clear();
    chunk_whole_.reset();
    split_ = piece.chunk_size > kMaxStoredChunkBytes;
  }

  // The chunk's next bytes, handed to the diff_id's thread too. `owner`, when given, keeps
  // `bytes` alive and unchanged: a whole chunk fed at once with one is then neither copied for the
  // diff_id nor for the store put.
  Result<void> feed_chunk(ByteSpan bytes, std::shared_ptr<const void> owner = {}) {
    if (bytes.size() > chunk_->chunk_size - chunk_seen_) {
      return make_error(ErrorCode::kCorruptInput,
                        chunk_error("decompresses to more than " +
                                    std::to_string(chunk_->chunk_size) + " bytes"));
    }
    chunk_seen_ += bytes.size();
    {
      auto hashing = clock_.enter(&PullStageTimes::hash);
      if (!chunk_verified_) chunk_hash_.update(bytes);
    }
    auto storing = clock_.enter(&PullStageTimes::store);
    if (owner && bytes.size() == chunk_->chunk_size && !split_) {
      chunk_whole_ = bytes;
      chunk_owner_ = owner;
    } else {
      chunk_bytes_.insert(chunk_bytes_.end(), bytes.begin(), bytes.end());
    }
    if (owner) {
      diff_id_.add(bytes, std::move(owner));
    } else {
      diff_id_.add_copy(bytes);
    }
    if (split_) {
      while (chunk_bytes_.size() >= kOversizeChunkSplitBytes) {
        STRATA_TRY(store_piece(ByteSpan(chunk_bytes_).first(kOversizeChunkSplitBytes)));
        chunk_bytes_.erase(
            chunk_bytes_.begin(),
            chunk_bytes_.begin() + static_cast<std::ptrdiff_t>(kOversizeChunkSplitBytes));
      }
    }
    return {};
  }

  Result<void> finish_chunk(ByteSpan fetched_frame) {
    chunk_finished_ = true;
    const BlobPiece& piece = *chunk_;
    if (chunk_seen_ != piece.chunk_size) {
      return make_error(ErrorCode::kCorruptInput,
                        chunk_error("decompresses to " + std::to_string(chunk_seen_) +
                                    " bytes, not " + std::to_string(piece.chunk_size)));
    }
    auto hashing = clock_.enter(&PullStageTimes::hash);
    if (!chunk_verified_ && chunk_hash_.finish() != piece.digest) {
      return make_error(ErrorCode::kDigestMismatch,
                        chunk_error("does not match its digest " + piece.digest.to_string()));
    }
    if (split_) {
      if (!chunk_bytes_.empty()) STRATA_TRY(store_piece(chunk_bytes_));
    } else {
      const ByteSpan raw = chunk_whole_ ? *chunk_whole_ : ByteSpan(chunk_bytes_);
      if (const auto held = held_.find(piece.digest); held != held_.end() && !held->second.raw) {
        // Later pieces repeat this chunk.
        held->second.raw =
            std::make_shared<const std::vector<std::uint8_t>>(raw.begin(), raw.end());
      }
      STRATA_TRY(store_chunk(piece.digest, raw, fetched_frame));
      builder_.add_chunk(piece.digest, piece.chunk_size);
    }
    chunk_bytes_.clear();
    chunk_whole_.reset();
    chunk_owner_.reset();
    return {};
  }

  // A part of an oversized chunk: a chunk of its own, named by its own digest.
  Result<void> store_piece(ByteSpan raw) {
    const Digest digest = [&] {
      auto hashing = clock_.enter(&PullStageTimes::hash);
      return sha256_of(raw);
    }();
    STRATA_TRY(store_chunk(digest, raw, {}));
    builder_.add_chunk(digest, raw.size());
    return {};
  }

  Result<void> store_chunk(const Digest& digest, ByteSpan raw, ByteSpan frame) {
    auto storing = clock_.enter(&PullStageTimes::store);
    const DeltaEntry* delta = std::exchange(delta_store_, nullptr);
    if (writer_.contains(digest)) return {};
    if (delta != nullptr && delta->chunk == digest) {
      // Kept as the fetched delta when the base can serve as one (stored whole, not the chunk);
      // otherwise (kInvalidArgument) the chunk is stored whole like any other.
      auto put = writer_.put_delta_chunk(digest, raw, delta_coded_, delta->codec, delta->base,
                                         delta_base_raw_);
      if (put) {
        ++report_.delta_stored_chunks;
        return {};
      }
      if (put.error().code != ErrorCode::kInvalidArgument) return put;
    }
    if (!frame.empty()) {
      STRATA_TRY(writer_.put_verified_chunk(digest, raw, frame, Codec::kZstd));
      ++report_.adopted_frames;
      return {};
    }
    STRATA_TRY(compress_chunk_zstd_into(raw, options_.zstd_level, compressed_));
    STRATA_TRY(writer_.put_verified_chunk(digest, raw, compressed_, Codec::kZstd));
    ++report_.compressed_chunks;
    return {};
  }

  [[nodiscard]] std::string chunk_error(const std::string& what) const {
    return "chunk of '" + chunk_->name + "' at chunkOffset " +
           std::to_string(chunk_->chunk_offset) + " " + what;
  }

  ChunkStore& store_;
  StoreWriter writer_;
  const ChunkedLayerToc& layer_;
  const PullPlan& plan_;
  const StorePullOptions& options_;
  detail::PiecePrefetch& prefetch_;
  DeltaFeed& deltas_;
  StorePullReport& report_;
  RecipeBuilder builder_;
  // The delta the current chunk came from, for store_chunk (set by take_delta_piece).
  const DeltaEntry* delta_store_ = nullptr;
  ByteSpan delta_coded_;
  std::vector<std::uint8_t> delta_base_raw_;
  detail::DiffIdHasher diff_id_;
  std::uint64_t inline_bytes_ = 0;
  // The chunk being taken.
  const BlobPiece* chunk_ = nullptr;
  std::uint64_t chunk_seen_ = 0;
  bool chunk_finished_ = false;
  bool chunk_verified_ = false;
  bool split_ = false;
  Sha256 chunk_hash_;
  std::vector<std::uint8_t> chunk_bytes_;  // the chunk so far, when fed in parts
  std::optional<ByteSpan> chunk_whole_;    // or the whole chunk, fed at once with its owner
  std::shared_ptr<const void> chunk_owner_;
  std::vector<std::uint8_t> compressed_;
  std::vector<std::uint8_t> sized_frame_;
  detail::StageClock clock_{report_.stages};
  // Chunks that later `repeat` pieces use: their raw bytes once taken, and the uses left.
  struct Held {
    std::size_t uses = 0;
    std::shared_ptr<const std::vector<std::uint8_t>> raw;
  };
  std::unordered_map<Digest, Held, DigestHash> held_;
};

}  // namespace

PullStageTimes& PullStageTimes::operator+=(const PullStageTimes& other) {
  fetch_wait += other.fetch_wait;
  decode += other.decode;
  hash += other.hash;
  diff_id += other.diff_id;
  local += other.local;
  store += other.store;
  check += other.check;
  commit += other.commit;
  fetch += other.fetch;
  prepare += other.prepare;
  toc += other.toc;
  download += other.download;
  ingest += other.ingest;
  return *this;
}

Result<StorePullReport> pull_chunked_layer_into_store(ChunkStore& store,
                                                      const ChunkedLayerToc& layer,
                                                      const PullPlan& plan,
                                                      const RangeBatchFetcher& fetch,
                                                      const Digest& expected_diff_id,
                                                      const StorePullOptions& options) {
  if (options.zstd_level < 1 || options.zstd_level > 19) {
    return make_error(ErrorCode::kInvalidArgument,
                      "zstd level " + std::to_string(options.zstd_level) + " is outside 1..19");
  }
  // The plan's sizes come from the TOC: held to the planner's limits again here (a plan built with
  // other options, or by hand) before a byte is fetched or a zero generated.
  const PullPlanOptions limits;
  std::uint64_t chunk_bytes = 0;
  for (const BlobPiece& piece : plan.pieces) {
    if (!piece.is_chunk && !piece.chunk_prefix) continue;
    if (piece.zeros && piece.chunk_size > limits.max_zeros_chunk_bytes) {
      return make_error(ErrorCode::kLimitExceeded, "zeros chunk of '" + piece.name.substr(0, 256) +
                                                       "' is " + std::to_string(piece.chunk_size) +
                                                       " bytes, over the limit");
    }
    if (piece.chunk_size > limits.max_tar_bytes - chunk_bytes) {
      return make_error(
          ErrorCode::kLimitExceeded,
          "TOC chunks add up to more than " + std::to_string(limits.max_tar_bytes) + " bytes");
    }
    chunk_bytes += piece.chunk_size;
  }
  auto batches = detail::batches_of(plan, options);
  if (!batches) return std::move(batches).error();
  StorePullReport report;
  detail::BatchedBlob blob(
      fetch, options.stream, std::move(*batches), layer.blob_size,
      options.prefetch ? std::max<std::size_t>(options.batches_in_flight, 1) : 0, report);
  if (plan.delta_chunks != 0 && options.deltas == nullptr) {
    return make_error(ErrorCode::kInvalidArgument, "plan has delta pieces but no delta source");
  }
  DeltaFeed deltas(options.deltas, plan, options, report);
  // The pieces the rebuild takes, in its order: with headers from the tar-split only the chunks.
  std::vector<std::size_t> order;
  for (std::size_t i = 0; i < plan.pieces.size(); ++i) {
    const BlobPiece& piece = plan.pieces[i];
    if (!plan.headers_from_tar_split || piece.is_chunk || piece.chunk_prefix) order.push_back(i);
  }
  Result<void> ran;
  {
    blob.start();
    detail::PiecePrefetch prefetch(store, layer, plan, std::move(order), blob.source());
    // The write session's lease is committed (a sync) while the first batches are on their way.
    auto writer = store.writer();
    if (writer) {
      StorePull pull(store, std::move(*writer), layer, plan, options, prefetch, deltas, report);
      ran = pull.run(expected_diff_id);
    } else {
      ran = std::move(writer).error();
    }
    report.stages.prepare = prefetch.prepare_seconds();
  }  // the pipeline stops here, before the report is read
  report.stages.fetch = blob.fetch_seconds();
  if (!ran) return std::move(ran).error();
  return report;
}

}  // namespace strata::fastpull
