// The remote store's catalogue blob (docs/remote-store.md "Catalogue"): one zstd frame, content
// size declared, of a little-endian binary form:
//   header := "STRATACT" u32 version(=1) u32 reserved(=0) u64 generation
//             u64 pack_count u64 chunk_count u64 layer_count
//   pack   := u8[32] sha256 u64 size
//   chunk  := u8[32] sha256 u32 pack u64 offset u32 stored_length u32 raw_length u8 codec
//   layer  := u8[32] diff_id u8[32] layer_digest u64 size i64 created
//             u16 media_type_length bytes u32 recipe_length bytes(serialize_recipe form)
// Chunk offsets point at pack records (core/store/pack_record.h); chunks sorted by digest, layers
// by diff_id. Decoding checks every count against the bytes present before reserving, so a hostile
// blob cannot make us allocate more than its (capped) decoded size.
#include <zstd.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <set>

#include "core/store/pack_record.h"
#include "strata/recipe.h"
#include "strata/remote_store.h"

namespace strata::registry {
namespace {

constexpr std::string_view kMagic = "STRATACT";
constexpr std::uint32_t kVersion = 1;
constexpr std::size_t kHeaderSize = 48;
constexpr std::size_t kPackEntrySize = 40;
constexpr std::size_t kChunkEntrySize = 53;
constexpr std::size_t kLayerEntryMinSize = 90;
constexpr std::size_t kMaxMediaTypeBytes = 255;
constexpr int kCatalogueZstdLevel = 6;

class Writer {
 public:
  void put_bytes(ByteSpan bytes) { out_.insert(out_.end(), bytes.begin(), bytes.end()); }
  void put_digest(const Digest& digest) { put_bytes(digest.bytes()); }
  template <typename T>
  void put(T value) {
    for (std::size_t i = 0; i < sizeof(T); ++i) {
      out_.push_back(static_cast<std::uint8_t>(static_cast<std::uint64_t>(value) >> (8U * i)));
    }
  }
  std::vector<std::uint8_t>& bytes() { return out_; }

 private:
  std::vector<std::uint8_t> out_;
};

// Reads fields in order; the first overrun is remembered (and later reads return zeros), so a
// caller checks failed() once per entry instead of after every field.
class Reader {
 public:
  explicit Reader(ByteSpan bytes) : bytes_(bytes) {}
  [[nodiscard]] std::size_t remaining() const { return bytes_.size() - position_; }
  [[nodiscard]] bool failed() const { return error_.has_value(); }
  [[nodiscard]] Error error() const { return *error_; }

  ByteSpan take(std::size_t count, std::string_view what) {
    if (failed()) return {};
    if (count > remaining()) {
      error_ =
          make_error(ErrorCode::kCorruptInput, "store catalogue truncated in " + std::string(what) +
                                                   " at byte " + std::to_string(position_));
      return {};
    }
    ByteSpan taken = bytes_.subspan(position_, count);
    position_ += count;
    return taken;
  }
  template <typename T>
  T get(std::string_view what) {
    const ByteSpan raw = take(sizeof(T), what);
    std::uint64_t value = 0;
    for (std::size_t i = 0; i < raw.size(); ++i) value |= std::uint64_t{raw[i]} << (8U * i);
    return static_cast<T>(value);
  }
  Digest get_digest(std::string_view what) {
    const ByteSpan raw = take(Digest::kSize, what);
    Digest::Bytes bytes{};
    if (!raw.empty()) std::memcpy(bytes.data(), raw.data(), bytes.size());
    return Digest(bytes);
  }

 private:
  ByteSpan bytes_;
  std::size_t position_ = 0;
  std::optional<Error> error_;
};

Error corrupt(std::string message) {
  return make_error(ErrorCode::kCorruptInput, "store catalogue: " + std::move(message));
}

// A count read from the header may not promise more entries than the remaining bytes can hold.
Result<std::size_t> checked_count(std::uint64_t count, std::size_t entry_size, const Reader& reader,
                                  std::string_view what) {
  if (count > reader.remaining() / entry_size) {
    return corrupt(std::to_string(count) + " " + std::string(what) + " cannot fit in the " +
                   std::to_string(reader.remaining()) + " bytes left");
  }
  return static_cast<std::size_t>(count);
}

Result<std::vector<std::uint8_t>> decompress_catalogue(ByteSpan blob,
                                                       std::uint64_t max_decoded_bytes) {
  if (blob.size() > kMaxCatalogueBlobBytes) {
    return make_error(
        ErrorCode::kLimitExceeded,
        "store catalogue blob of " + std::to_string(blob.size()) + " bytes exceeds the cap");
  }
  const unsigned long long declared = ZSTD_getFrameContentSize(blob.data(), blob.size());
  if (declared == ZSTD_CONTENTSIZE_ERROR) return corrupt("not a zstd frame");
  if (declared == ZSTD_CONTENTSIZE_UNKNOWN) {
    return corrupt("zstd frame does not declare its content size");
  }
  if (declared > max_decoded_bytes) {
    return make_error(ErrorCode::kLimitExceeded,
                      "store catalogue declares " + std::to_string(declared) +
                          " decoded bytes, above the cap of " + std::to_string(max_decoded_bytes));
  }
  if (declared < kHeaderSize) return corrupt("decoded size smaller than the header");
  std::vector<std::uint8_t> decoded(static_cast<std::size_t>(declared));
  const std::size_t got = ZSTD_decompress(decoded.data(), decoded.size(), blob.data(), blob.size());
  if (ZSTD_isError(got) != 0U) {
    return corrupt(std::string("zstd: ") + ZSTD_getErrorName(got));
  }
  if (got != decoded.size()) return corrupt("zstd frame shorter than its declared size");
  return decoded;
}

Result<void> check_layer_recipe(const StoreCatalogue& catalogue, const CatalogueLayer& layer) {
  auto recipe = parse_recipe(layer.recipe);
  if (!recipe.ok()) {
    return corrupt("layer " + layer.diff_id.to_string() + ": " + recipe.error().message);
  }
  if (recipe->total_size() != layer.size) {
    return corrupt("layer " + layer.diff_id.to_string() + ": recipe rebuilds " +
                   std::to_string(recipe->total_size()) + " bytes, the layer records " +
                   std::to_string(layer.size));
  }
  for (const Digest& chunk : recipe->distinct_chunks()) {
    if (catalogue.find_chunk(chunk) == nullptr) {
      return corrupt("layer " + layer.diff_id.to_string() + " needs chunk " + chunk.to_string() +
                     ", which no pack holds");
    }
  }
  return {};
}

}  // namespace

const CatalogueChunk* StoreCatalogue::find_chunk(const Digest& digest) const {
  const auto found = std::lower_bound(
      chunks.begin(), chunks.end(), digest,
      [](const CatalogueChunk& chunk, const Digest& wanted) { return chunk.digest < wanted; });
  return found != chunks.end() && found->digest == digest ? &*found : nullptr;
}

const CatalogueLayer* StoreCatalogue::find_layer(const Digest& digest) const {
  for (const CatalogueLayer& layer : layers) {
    if (layer.diff_id == digest || layer.layer_digest == digest) return &layer;
  }
  return nullptr;
}

Result<void> canonicalize_catalogue(StoreCatalogue& catalogue) {
  std::sort(catalogue.chunks.begin(), catalogue.chunks.end(),
            [](const CatalogueChunk& a, const CatalogueChunk& b) { return a.digest < b.digest; });
  std::sort(catalogue.layers.begin(), catalogue.layers.end(),
            [](const CatalogueLayer& a, const CatalogueLayer& b) { return a.diff_id < b.diff_id; });
  for (std::size_t i = 0; i < catalogue.chunks.size(); ++i) {
    if (catalogue.chunks[i].pack >= catalogue.packs.size()) {
      return make_error(ErrorCode::kInvalidArgument,
                        "catalogue chunk " + catalogue.chunks[i].digest.to_string() +
                            " names pack " + std::to_string(catalogue.chunks[i].pack) + " of " +
                            std::to_string(catalogue.packs.size()));
    }
    if (i > 0 && catalogue.chunks[i - 1].digest == catalogue.chunks[i].digest) {
      return make_error(
          ErrorCode::kInvalidArgument,
          "catalogue holds chunk " + catalogue.chunks[i].digest.to_string() + " twice");
    }
  }
  for (std::size_t i = 1; i < catalogue.layers.size(); ++i) {
    if (catalogue.layers[i - 1].diff_id == catalogue.layers[i].diff_id) {
      return make_error(
          ErrorCode::kInvalidArgument,
          "catalogue holds layer " + catalogue.layers[i].diff_id.to_string() + " twice");
    }
  }
  return {};
}

Result<void> merge_store_catalogue(StoreCatalogue& into, const StoreCatalogue& from) {
  std::map<Digest, std::uint32_t> pack_index;
  for (std::size_t i = 0; i < into.packs.size(); ++i) {
    pack_index.emplace(into.packs[i].digest, static_cast<std::uint32_t>(i));
  }
  std::vector<std::uint32_t> remap(from.packs.size());
  for (std::size_t i = 0; i < from.packs.size(); ++i) {
    const auto [entry, added] =
        pack_index.emplace(from.packs[i].digest, static_cast<std::uint32_t>(into.packs.size()));
    if (added) into.packs.push_back(from.packs[i]);
    remap[i] = entry->second;
  }
  std::vector<CatalogueChunk> new_chunks;
  for (const CatalogueChunk& chunk : from.chunks) {
    if (chunk.pack >= remap.size()) {
      return make_error(ErrorCode::kInvalidArgument,
                        "catalogue chunk " + chunk.digest.to_string() + " names a missing pack");
    }
    if (into.find_chunk(chunk.digest) != nullptr) continue;
    CatalogueChunk moved = chunk;
    moved.pack = remap[chunk.pack];
    new_chunks.push_back(moved);
  }
  into.chunks.insert(into.chunks.end(), new_chunks.begin(), new_chunks.end());
  std::set<Digest> layers;
  for (const CatalogueLayer& layer : into.layers) layers.insert(layer.diff_id);
  for (const CatalogueLayer& layer : from.layers) {
    if (layers.insert(layer.diff_id).second) into.layers.push_back(layer);
  }
  into.generation = std::max(into.generation, from.generation);
  return canonicalize_catalogue(into);
}

Result<std::vector<std::uint8_t>> encode_store_catalogue(const StoreCatalogue& catalogue) {
  Writer writer;
  writer.put_bytes(ByteSpan(reinterpret_cast<const std::uint8_t*>(kMagic.data()), kMagic.size()));
  writer.put<std::uint32_t>(kVersion);
  writer.put<std::uint32_t>(0);
  writer.put<std::uint64_t>(catalogue.generation);
  writer.put<std::uint64_t>(catalogue.packs.size());
  writer.put<std::uint64_t>(catalogue.chunks.size());
  writer.put<std::uint64_t>(catalogue.layers.size());
  for (const CataloguePack& pack : catalogue.packs) {
    writer.put_digest(pack.digest);
    writer.put<std::uint64_t>(pack.size);
  }
  for (const CatalogueChunk& chunk : catalogue.chunks) {
    writer.put_digest(chunk.digest);
    writer.put<std::uint32_t>(chunk.pack);
    writer.put<std::uint64_t>(chunk.offset);
    writer.put<std::uint32_t>(chunk.stored_length);
    writer.put<std::uint32_t>(chunk.raw_length);
    writer.put<std::uint8_t>(static_cast<std::uint8_t>(chunk.codec));
  }
  for (const CatalogueLayer& layer : catalogue.layers) {
    if (layer.media_type.size() > kMaxMediaTypeBytes ||
        layer.recipe.size() > std::numeric_limits<std::uint32_t>::max()) {
      return make_error(ErrorCode::kInvalidArgument,
                        "layer " + layer.diff_id.to_string() +
                            ": media type or recipe too long for the catalogue");
    }
    writer.put_digest(layer.diff_id);
    writer.put_digest(layer.layer_digest);
    writer.put<std::uint64_t>(layer.size);
    writer.put<std::int64_t>(layer.created_unix_seconds);
    writer.put<std::uint16_t>(static_cast<std::uint16_t>(layer.media_type.size()));
    writer.put_bytes(ByteSpan(reinterpret_cast<const std::uint8_t*>(layer.media_type.data()),
                              layer.media_type.size()));
    writer.put<std::uint32_t>(static_cast<std::uint32_t>(layer.recipe.size()));
    writer.put_bytes(layer.recipe);
  }
  const std::vector<std::uint8_t>& plain = writer.bytes();
  std::vector<std::uint8_t> frame(ZSTD_compressBound(plain.size()));
  const std::size_t size =
      ZSTD_compress(frame.data(), frame.size(), plain.data(), plain.size(), kCatalogueZstdLevel);
  if (ZSTD_isError(size) != 0U) {
    return make_error(ErrorCode::kInternal,
                      std::string("store catalogue: zstd: ") + ZSTD_getErrorName(size));
  }
  frame.resize(size);
  return frame;
}

Result<StoreCatalogue> decode_store_catalogue(ByteSpan blob, std::uint64_t max_decoded_bytes) {
  auto decoded = decompress_catalogue(blob, max_decoded_bytes);
  if (!decoded.ok()) return std::move(decoded).error();
  Reader reader(*decoded);
  const auto magic = reader.take(kMagic.size(), "magic");
  if (reader.failed()) return reader.error();
  if (std::memcmp(magic.data(), kMagic.data(), kMagic.size()) != 0) {
    return corrupt("bad magic (not a strata store catalogue)");
  }
  const auto version = reader.get<std::uint32_t>("version");
  if (version != kVersion) {
    return make_error(ErrorCode::kUnsupported,
                      "store catalogue version " + std::to_string(version) +
                          " (this strata reads " + std::to_string(kVersion) + ")");
  }
  const auto reserved = reader.get<std::uint32_t>("reserved");
  if (reserved != 0) return corrupt("reserved header field is not zero");
  StoreCatalogue catalogue;
  catalogue.generation = reader.get<std::uint64_t>("generation");
  const auto pack_count = reader.get<std::uint64_t>("pack count");
  const auto chunk_count = reader.get<std::uint64_t>("chunk count");
  const auto layer_count = reader.get<std::uint64_t>("layer count");
  if (reader.failed()) return reader.error();

  auto packs = checked_count(pack_count, kPackEntrySize, reader, "packs");
  if (!packs.ok()) return std::move(packs).error();
  catalogue.packs.reserve(*packs);
  for (std::size_t i = 0; i < *packs; ++i) {
    CataloguePack pack;
    pack.digest = reader.get_digest("pack digest");
    pack.size = reader.get<std::uint64_t>("pack size");
    if (reader.failed()) return reader.error();
    catalogue.packs.push_back(pack);
  }
  {
    std::vector<Digest> sorted;
    sorted.reserve(catalogue.packs.size());
    for (const CataloguePack& pack : catalogue.packs) sorted.push_back(pack.digest);
    std::sort(sorted.begin(), sorted.end());
    if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) {
      return corrupt("a pack is listed twice");
    }
  }

  auto chunks = checked_count(chunk_count, kChunkEntrySize, reader, "chunks");
  if (!chunks.ok()) return std::move(chunks).error();
  catalogue.chunks.reserve(*chunks);
  for (std::size_t i = 0; i < *chunks; ++i) {
    CatalogueChunk chunk;
    chunk.digest = reader.get_digest("chunk digest");
    chunk.pack = reader.get<std::uint32_t>("chunk pack");
    chunk.offset = reader.get<std::uint64_t>("chunk offset");
    chunk.stored_length = reader.get<std::uint32_t>("chunk stored length");
    chunk.raw_length = reader.get<std::uint32_t>("chunk raw length");
    const auto codec = reader.get<std::uint8_t>("chunk codec");
    if (reader.failed()) return reader.error();
    const std::string name = "chunk " + chunk.digest.to_string();
    if (i > 0 && !(catalogue.chunks.back().digest < chunk.digest)) {
      return corrupt(name + " is out of order or repeated");
    }
    if (codec > static_cast<std::uint8_t>(Codec::kByteGrouped)) {
      return corrupt(name + " has unknown codec " + std::to_string(codec));
    }
    chunk.codec = static_cast<Codec>(codec);
    if (chunk.pack >= catalogue.packs.size()) {
      return corrupt(name + " names pack " + std::to_string(chunk.pack) + " of " +
                     std::to_string(catalogue.packs.size()));
    }
    if (chunk.raw_length > kMaxStoredChunkBytes || chunk.stored_length > kMaxStoredChunkBytes) {
      return make_error(ErrorCode::kLimitExceeded,
                        "store catalogue: " + name + " is larger than a chunk may be");
    }
    const std::uint64_t pack_size = catalogue.packs[chunk.pack].size;
    const std::uint64_t record = pack_record::record_size(chunk.stored_length);
    if (chunk.offset < pack_record::kFileHeaderSize || chunk.offset > pack_size ||
        record > pack_size - chunk.offset) {
      return corrupt(name + " lies outside its pack (offset " + std::to_string(chunk.offset) +
                     ", pack of " + std::to_string(pack_size) + " bytes)");
    }
    catalogue.chunks.push_back(chunk);
  }

  auto layers = checked_count(layer_count, kLayerEntryMinSize, reader, "layers");
  if (!layers.ok()) return std::move(layers).error();
  catalogue.layers.reserve(*layers);
  for (std::size_t i = 0; i < *layers; ++i) {
    CatalogueLayer layer;
    layer.diff_id = reader.get_digest("layer diff_id");
    layer.layer_digest = reader.get_digest("layer digest");
    layer.size = reader.get<std::uint64_t>("layer size");
    layer.created_unix_seconds = reader.get<std::int64_t>("layer created");
    const auto media_length = reader.get<std::uint16_t>("layer media type length");
    if (reader.failed()) return reader.error();
    if (media_length > kMaxMediaTypeBytes) {
      return corrupt("layer " + layer.diff_id.to_string() + ": media type too long");
    }
    const auto media = reader.take(media_length, "layer media type");
    layer.media_type.assign(media.begin(), media.end());
    const auto recipe_length = reader.get<std::uint32_t>("layer recipe length");
    const auto recipe = reader.take(recipe_length, "layer recipe");
    if (reader.failed()) return reader.error();
    layer.recipe.assign(recipe.begin(), recipe.end());
    if (i > 0 && !(catalogue.layers.back().diff_id < layer.diff_id)) {
      return corrupt("layer " + layer.diff_id.to_string() + " is out of order or repeated");
    }
    STRATA_TRY(check_layer_recipe(catalogue, layer));
    catalogue.layers.push_back(std::move(layer));
  }
  if (reader.remaining() != 0) {
    return corrupt(std::to_string(reader.remaining()) + " trailing bytes after the last layer");
  }
  return catalogue;
}

}  // namespace strata::registry
