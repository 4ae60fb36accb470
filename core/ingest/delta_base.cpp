// Base finding by path and per-chunk delta coding for ingest (core/ingest/delta_base.h, DESIGN.md
// §7). The base layer's paths come from its recipe alone: a ByteSource replays the recipe with
// chunk segments as zeros, which a TarReader parses exactly as the ingest parsed the real tar (pax
// and GNU long names are header bytes, always inline), so no base chunk is read to build the index.
// Coding reads one base chunk per new chunk through a byte-bounded cache.
#include "core/ingest/delta_base.h"

#include <algorithm>
#include <cstring>
#include <set>

#include "core/base/byte_source.h"
#include "formats/tar/tar_reader.h"
#include "strata/recipe.h"

namespace strata {
namespace {

// The layer's tar as its recipe describes it, with zeros where chunks go.
class RecipeHeaderSource final : public ByteSource {
 public:
  explicit RecipeHeaderSource(const Recipe& recipe) : recipe_(recipe) {}

  Result<std::size_t> read(MutableByteSpan out) override {
    const auto& segments = recipe_.segments();
    while (segment_ < segments.size() && within_ == segments[segment_].length) {
      ++segment_;
      within_ = 0;
    }
    if (segment_ == segments.size() || out.empty()) return std::size_t{0};
    const RecipeSegment& segment = segments[segment_];
    const auto count =
        static_cast<std::size_t>(std::min<std::uint64_t>(out.size(), segment.length - within_));
    if (segment.kind == RecipeSegmentKind::kRaw) {
      const ByteSpan raw = recipe_.raw_of(segment).subspan(within_, count);
      std::memcpy(out.data(), raw.data(), count);
    } else {
      std::memset(out.data(), 0, count);
    }
    within_ += count;
    return count;
  }

 private:
  const Recipe& recipe_;
  std::size_t segment_ = 0;
  std::uint64_t within_ = 0;
};

}  // namespace

Result<DeltaBaseIndex> DeltaBaseIndex::build(const ChunkStore& store, const Digest& layer) {
  auto record = store.find_layer(layer);
  if (!record.ok()) return std::move(record).error();
  auto recipe = parse_recipe(record->recipe);
  if (!recipe.ok()) {
    return make_error(recipe.error().code, "delta base layer " + record->diff_id.to_string() +
                                               ": " + recipe.error().message);
  }
  return from_recipe(*recipe);
}

Result<DeltaBaseIndex> DeltaBaseIndex::from_recipe(const Recipe& recipe) {
  struct Content {
    std::string path;
    std::uint64_t start = 0;  // tar offset of the first content byte
    std::uint64_t size = 0;
  };
  std::vector<Content> contents;
  RecipeHeaderSource source(recipe);
  TarReader reader(source);
  while (true) {
    auto event = reader.next();
    if (!event.ok()) return std::move(event).error();
    if (event->kind == TarEventKind::kDone) break;
    if (event->kind == TarEventKind::kHeader && event->entry->type == TarEntryType::kRegular &&
        event->entry->size > 0) {
      contents.push_back(
          Content{event->entry->path, event->offset + event->bytes.size(), event->entry->size});
    }
  }
  DeltaBaseIndex index;
  std::unordered_map<std::string, std::size_t> filled_from;  // path -> entry its chunks are from
  std::size_t next = 0;
  std::uint64_t offset = 0;
  for (const RecipeSegment& segment : recipe.segments()) {
    const std::uint64_t start = offset;
    offset += segment.length;
    if (segment.kind != RecipeSegmentKind::kChunk) continue;
    while (next < contents.size() && contents[next].start + contents[next].size <= start) ++next;
    if (next == contents.size() || start < contents[next].start) continue;
    // A later entry of the same path replaces an earlier one, as it would on extraction.
    File& file = index.files_[contents[next].path];
    const auto [owner, first] = filled_from.try_emplace(contents[next].path, next);
    if (first || owner->second != next) {
      owner->second = next;
      file = File{contents[next].size, {}};
    }
    file.chunks.push_back(FileChunk{start - contents[next].start, segment.length, segment.digest});
  }
  return index;
}

const DeltaBaseIndex::File* DeltaBaseIndex::find(std::string_view path) const {
  const auto found = files_.find(std::string(path));
  return found == files_.end() ? nullptr : &found->second;
}

const DeltaBaseIndex::FileChunk* DeltaBaseIndex::pick(const File& file, std::uint64_t offset,
                                                      std::uint64_t length,
                                                      std::uint64_t new_size) {
  if (file.chunks.empty()) return nullptr;
  const auto scale = [&](std::uint64_t value) {
    if (new_size == 0) return std::uint64_t{0};
    return static_cast<std::uint64_t>(static_cast<long double>(value) * file.size / new_size);
  };
  const std::uint64_t begin = scale(offset);
  const std::uint64_t end = std::max(begin + 1, scale(offset + length));
  // The last chunk starting at or before `begin`, then its successors while they still overlap.
  auto at = std::upper_bound(
      file.chunks.begin(), file.chunks.end(), begin,
      [](std::uint64_t value, const FileChunk& chunk) { return value < chunk.offset; });
  if (at != file.chunks.begin()) --at;
  const FileChunk* best = &*at;
  std::uint64_t best_overlap = 0;
  for (; at != file.chunks.end() && at->offset < end; ++at) {
    const std::uint64_t overlap =
        std::min(end, at->offset + at->length) - std::max(begin, at->offset);
    if (overlap > best_overlap) {
      best_overlap = overlap;
      best = &*at;
    }
  }
  return best;
}

Result<std::shared_ptr<const DeltaBaseChunk>> DeltaBaseCache::get(const Digest& digest) {
  {
    std::lock_guard lock(mutex_);
    const auto found = entries_.find(digest);
    if (found != entries_.end()) {
      order_.splice(order_.begin(), order_, found->second.position);
      return found->second.base;
    }
  }
  auto read = store_.read_delta_base(digest);  // outside the lock: reads run in parallel
  if (!read.ok()) return std::move(read).error();
  auto base = std::make_shared<const DeltaBaseChunk>(std::move(read).value());
  std::lock_guard lock(mutex_);
  if (entries_.count(digest) != 0) return base;
  order_.push_front(digest);
  entries_.emplace(digest, Entry{base, order_.begin()});
  bytes_ += base->raw.size();
  while (bytes_ > max_bytes_ && order_.size() > 1) {
    const auto last = entries_.find(order_.back());
    bytes_ -= last->second.base->raw.size();
    entries_.erase(last);
    order_.pop_back();
  }
  return base;
}

Result<const SketchIndex*> DeltaCoder::layer_sketches() {
  std::lock_guard lock(sketch_mutex_);
  if (layer_index_built_) return layer_index_ ? &*layer_index_ : nullptr;
  layer_index_built_ = true;
  SketchIndex index(options_.sketch_index_chunks);
  if (options_.sketch_layer != Digest()) {
    auto kept = store_.layer_sketches(options_.sketch_layer, options_.sketch_index_chunks);
    if (!kept.ok()) return std::move(kept).error();
    if (!kept->empty()) {
      for (const auto& [digest, words] : *kept) {
        ChunkSketch sketch;
        sketch.super = words.super;
        sketch.empty = false;
        index.add(digest, sketch);
      }
      layer_index_.emplace(std::move(index));
      return &*layer_index_;
    }
  }
  std::set<Digest> seen;
  std::uint64_t bytes = 0;
  for (const auto& [path, file] : index_.all_files()) {
    for (const DeltaBaseIndex::FileChunk& chunk : file.chunks) {
      if (bytes + chunk.length > options_.sketch_index_bytes ||
          index.chunks() >= options_.sketch_index_chunks) {
        break;
      }
      if (!seen.insert(chunk.digest).second) continue;
      auto base = store_.read_delta_base(chunk.digest);
      if (!base.ok()) continue;  // a base that cannot serve is not a candidate
      bytes += base->raw.size();
      index.add(chunk.digest, sketch_of(ByteSpan(base->raw)));
    }
  }
  layer_index_.emplace(std::move(index));
  return &*layer_index_;
}

std::size_t DeltaCoder::sketch_index_chunks() const {
  return layer_index_ ? layer_index_->chunks() : 0;
}

Result<const Digest*> DeltaCoder::choose_base(const DeltaBaseIndex::File* file,
                                              std::uint64_t offset, std::uint64_t file_size,
                                              ByteSpan raw, bool& by_sketch) {
  by_sketch = false;
  if (file == nullptr) {
    if (!options_.sketches || options_.sketch_index_chunks == 0) return nullptr;
    auto index = layer_sketches();
    if (!index.ok()) return std::move(index).error();
    by_sketch = true;
    return *index == nullptr ? nullptr : (*index)->best(sketch_of(raw));
  }
  const DeltaBaseIndex::FileChunk* chunk =
      DeltaBaseIndex::pick(*file, offset, raw.size(), file_size);
  return chunk == nullptr ? nullptr : &chunk->digest;
}

Result<std::optional<DeltaCoded>> DeltaCoder::code(const DeltaBaseIndex::File* file,
                                                   std::uint64_t offset, std::uint64_t file_size,
                                                   ByteSpan raw, std::uint32_t element_width,
                                                   std::uint32_t element_phase) {
  bool by_sketch = false;
  auto chosen = choose_base(file, offset, file_size, raw, by_sketch);
  if (!chosen.ok()) return std::move(chosen).error();
  if (*chosen == nullptr) return std::optional<DeltaCoded>();
  auto base = cache_.get(**chosen);
  // A base that cannot be read (gone, corrupt) only means no delta for this chunk.
  if (!base.ok()) return std::optional<DeltaCoded>();
  const ByteSpan base_raw((*base)->raw.data(), (*base)->raw.size());
  DeltaCoded coded;
  coded.base = *base;
  coded.by_sketch = by_sketch;
  if (element_width == 2 || element_width == 4) {
    auto encoded =
        encode_chunk_xor_grouped(raw, base_raw, element_width, element_phase, options_.level);
    if (!encoded.ok()) return std::move(encoded).error();
    coded.codec = Codec::kXorByteGrouped;
    coded.stored = std::move(encoded).value();
  } else {
    STRATA_TRY(compress_chunk_delta_into(raw, base_raw, options_.level, coded.stored));
    coded.codec = Codec::kZstdDelta;
  }
  return std::optional<DeltaCoded>(std::move(coded));
}

Result<std::optional<DeltaCoded>> DeltaCoder::encode(const DeltaBaseIndex::File* file,
                                                     std::uint64_t offset, std::uint64_t file_size,
                                                     ByteSpan raw, std::uint32_t element_width,
                                                     std::uint32_t element_phase,
                                                     const PlainCoder& code_plain) {
  auto coded = code(file, offset, file_size, raw, element_width, element_phase);
  if (!coded.ok()) return std::move(coded).error();
  std::optional<DeltaCoded>& delta = *coded;
  const auto keep = [&]() {
    if (delta->by_sketch) ++sketch_based_;
    return std::move(coded);
  };
  if (delta) {
    // The plain size the base predicts: this chunk's size at the base's own compression ratio.
    const DeltaBaseChunk& base = *delta->base;
    const double predicted_plain = base.raw.empty() ? 0.0
                                                    : static_cast<double>(raw.size()) *
                                                          static_cast<double>(base.stored_size) /
                                                          static_cast<double>(base.raw.size());
    if (static_cast<double>(delta->stored.size()) < options_.plain_skip_ratio * predicted_plain) {
      ++plain_skipped_;
      return keep();
    }
  }
  auto plain_size = code_plain();
  if (!plain_size.ok()) return std::move(plain_size).error();
  if (!delta || static_cast<double>(delta->stored.size()) >=
                    options_.max_ratio * static_cast<double>(*plain_size)) {
    return std::optional<DeltaCoded>();
  }
  return keep();
}

Result<PutChunkOutcome> put_new_chunk(StoreWriter& writer, const Digest& digest, ByteSpan raw,
                                      ByteSpan stored, Codec codec, const DeltaBaseChunk* base,
                                      int level) {
  if (base == nullptr) {
    STRATA_TRY(writer.put_chunk(digest, raw, stored, codec));
    return PutChunkOutcome{codec, stored.size()};
  }
  auto put = writer.put_delta_chunk(digest, raw, stored, codec, base->digest, ByteSpan(base->raw));
  if (put.ok()) return PutChunkOutcome{codec, stored.size()};
  if (put.error().code != ErrorCode::kInvalidArgument) return std::move(put).error();
  auto whole = compress_chunk_zstd(raw, level);
  if (!whole.ok()) return std::move(whole).error();
  STRATA_TRY(writer.put_chunk(digest, raw, *whole, Codec::kZstd));
  return PutChunkOutcome{Codec::kZstd, whole->size()};
}

}  // namespace strata
