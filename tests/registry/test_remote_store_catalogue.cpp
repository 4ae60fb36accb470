// The remote store's catalogue blob (docs/remote-store.md "Catalogue"): the bytes are checked
// against an encoder written here from the documented layout (not from the library's code), round
// trips are exact, and hostile or truncated catalogues end in an error naming the problem, within
// the size caps. Also the registry://HOST/REPO locations the tool accepts.
#include <gtest/gtest.h>

#include <cstdlib>

#include "strata/strata.h"

namespace strata::registry {
namespace {

Digest digest_of(std::string_view text) {
  return sha256_of(ByteSpan(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
}

// A catalogue of two packs, three chunks and two layers whose recipes use them.
StoreCatalogue sample_catalogue() {
  StoreCatalogue catalogue;
  catalogue.generation = 7;
  catalogue.packs = {{digest_of("pack-a"), 16 + 56 + 100 + 56 + 40},
                     {digest_of("pack-b"), 16 + 56 + 300}};
  catalogue.chunks = {
      {digest_of("chunk-1"), 0, 16, 100, 4096, Codec::kZstd},
      {digest_of("chunk-2"), 0, 16 + 56 + 100, 40, 40, Codec::kRaw},
      {digest_of("chunk-3"), 1, 16, 300, 9000, Codec::kByteGrouped},
  };
  const std::vector<std::pair<std::string, std::vector<std::size_t>>> layers = {
      {"layer one", {0, 1}}, {"layer two", {1, 2, 1}}};
  for (const auto& [name, chunks] : layers) {
    RecipeBuilder builder;
    builder.add_raw(ByteSpan(reinterpret_cast<const std::uint8_t*>(name.data()), name.size()));
    for (const std::size_t index : chunks) {
      builder.add_chunk(catalogue.chunks[index].digest, catalogue.chunks[index].raw_length);
    }
    const Recipe recipe = builder.finish();
    CatalogueLayer layer;
    layer.diff_id = digest_of(name);
    layer.layer_digest = digest_of(name + ".gz");
    layer.media_type = "application/vnd.oci.image.layer.v1.tar+gzip";
    layer.size = recipe.total_size();
    layer.created_unix_seconds = 1700000000;
    layer.recipe = serialize_recipe(recipe);
    catalogue.layers.push_back(std::move(layer));
  }
  EXPECT_TRUE(canonicalize_catalogue(catalogue).ok());
  return catalogue;
}

// The documented layout, written independently of store_catalogue.cpp.
class LayoutWriter {
 public:
  template <typename T>
  LayoutWriter& le(T value) {
    for (std::size_t i = 0; i < sizeof(T); ++i) {
      bytes.push_back(static_cast<std::uint8_t>(static_cast<std::uint64_t>(value) >> (8 * i)));
    }
    return *this;
  }
  LayoutWriter& raw(ByteSpan data) {
    bytes.insert(bytes.end(), data.begin(), data.end());
    return *this;
  }
  LayoutWriter& text(std::string_view data) {
    return raw(ByteSpan(reinterpret_cast<const std::uint8_t*>(data.data()), data.size()));
  }
  std::vector<std::uint8_t> bytes;
};

std::vector<std::uint8_t> layout_of(const StoreCatalogue& catalogue) {
  LayoutWriter out;
  out.text("STRATACT").le<std::uint32_t>(1).le<std::uint32_t>(0).le(catalogue.generation);
  out.le<std::uint64_t>(catalogue.packs.size())
      .le<std::uint64_t>(catalogue.chunks.size())
      .le<std::uint64_t>(catalogue.layers.size());
  for (const CataloguePack& pack : catalogue.packs) out.raw(pack.digest.bytes()).le(pack.size);
  for (const CatalogueChunk& chunk : catalogue.chunks) {
    out.raw(chunk.digest.bytes()).le(chunk.pack).le(chunk.offset).le(chunk.stored_length);
    out.le(chunk.raw_length).le(static_cast<std::uint8_t>(chunk.codec));
  }
  for (const CatalogueLayer& layer : catalogue.layers) {
    out.raw(layer.diff_id.bytes()).raw(layer.layer_digest.bytes()).le(layer.size);
    out.le(layer.created_unix_seconds).le(static_cast<std::uint16_t>(layer.media_type.size()));
    out.text(layer.media_type).le(static_cast<std::uint32_t>(layer.recipe.size()));
    out.raw(layer.recipe);
  }
  return out.bytes;
}

std::vector<std::uint8_t> blob_of(const std::vector<std::uint8_t>& layout) {
  auto frame = compress_chunk_zstd(layout, 3);
  EXPECT_TRUE(frame.ok());
  return *frame;
}

Error decode_error(const std::vector<std::uint8_t>& layout) {
  auto decoded = decode_store_catalogue(blob_of(layout));
  EXPECT_FALSE(decoded.ok());
  return decoded.ok() ? Error{} : decoded.error();
}

TEST(StoreCatalogue, EncodesTheDocumentedLayoutAndRoundTrips) {
  const StoreCatalogue catalogue = sample_catalogue();
  auto blob = encode_store_catalogue(catalogue);
  ASSERT_TRUE(blob.ok()) << blob.error().to_string();
  const std::vector<std::uint8_t> layout = layout_of(catalogue);
  auto plain = decompress_chunk(Codec::kZstd, *blob, layout.size());
  ASSERT_TRUE(plain.ok()) << plain.error().to_string();
  EXPECT_EQ(*plain, layout);

  auto decoded = decode_store_catalogue(*blob);
  ASSERT_TRUE(decoded.ok()) << decoded.error().to_string();
  EXPECT_EQ(*decoded, catalogue);
  // A blob made by another zstd encoder (another level) decodes the same.
  auto other = decode_store_catalogue(blob_of(layout));
  ASSERT_TRUE(other.ok()) << other.error().to_string();
  EXPECT_EQ(*other, catalogue);
}

TEST(StoreCatalogue, EmptyCatalogueRoundTrips) {
  StoreCatalogue empty;
  auto blob = encode_store_catalogue(empty);
  ASSERT_TRUE(blob.ok());
  auto decoded = decode_store_catalogue(*blob);
  ASSERT_TRUE(decoded.ok()) << decoded.error().to_string();
  EXPECT_EQ(*decoded, empty);
}

TEST(StoreCatalogue, LookupsFindChunksAndLayersByEitherDigest) {
  const StoreCatalogue catalogue = sample_catalogue();
  for (const CatalogueChunk& chunk : catalogue.chunks) {
    ASSERT_NE(catalogue.find_chunk(chunk.digest), nullptr);
    EXPECT_EQ(*catalogue.find_chunk(chunk.digest), chunk);
  }
  EXPECT_EQ(catalogue.find_chunk(digest_of("absent")), nullptr);
  EXPECT_EQ(catalogue.find_layer(digest_of("layer two"))->diff_id, digest_of("layer two"));
  EXPECT_EQ(catalogue.find_layer(digest_of("layer two.gz"))->diff_id, digest_of("layer two"));
  EXPECT_EQ(catalogue.find_layer(digest_of("layer three")), nullptr);
}

TEST(StoreCatalogue, CanonicalizeRefusesRepeatsAndDanglingPacks) {
  StoreCatalogue repeated = sample_catalogue();
  repeated.chunks.push_back(repeated.chunks.front());
  EXPECT_EQ(canonicalize_catalogue(repeated).error().code, ErrorCode::kInvalidArgument);
  StoreCatalogue dangling = sample_catalogue();
  dangling.chunks.front().pack = 2;
  EXPECT_EQ(canonicalize_catalogue(dangling).error().code, ErrorCode::kInvalidArgument);
}

TEST(StoreCatalogue, EveryTruncationIsAClearError) {
  const std::vector<std::uint8_t> layout = layout_of(sample_catalogue());
  for (std::size_t size = 0; size < layout.size(); ++size) {
    const std::vector<std::uint8_t> cut(layout.begin(),
                                        layout.begin() + static_cast<std::ptrdiff_t>(size));
    auto decoded = decode_store_catalogue(blob_of(cut));
    ASSERT_FALSE(decoded.ok()) << "prefix of " << size << " bytes decoded";
    EXPECT_EQ(decoded.error().code, ErrorCode::kCorruptInput) << decoded.error().to_string();
    EXPECT_NE(decoded.error().message.find("catalogue"), std::string::npos);
  }
  // Truncating the zstd frame itself.
  auto blob = encode_store_catalogue(sample_catalogue());
  ASSERT_TRUE(blob.ok());
  for (std::size_t size = 0; size < blob->size(); ++size) {
    EXPECT_FALSE(decode_store_catalogue(ByteSpan(*blob).first(size)).ok()) << size;
  }
}

TEST(StoreCatalogue, TrailingBytesAndBadHeadersAreRefused) {
  std::vector<std::uint8_t> layout = layout_of(sample_catalogue());
  layout.push_back(0);
  EXPECT_NE(decode_error(layout).message.find("trailing"), std::string::npos);

  std::vector<std::uint8_t> magic = layout_of(sample_catalogue());
  magic[0] = 'X';
  EXPECT_NE(decode_error(magic).message.find("magic"), std::string::npos);

  std::vector<std::uint8_t> version = layout_of(sample_catalogue());
  version[8] = 2;
  EXPECT_EQ(decode_error(version).code, ErrorCode::kUnsupported);

  const std::vector<std::uint8_t> text = {'n', 'o', 't', ' ', 'z', 's', 't', 'd'};
  EXPECT_EQ(decode_store_catalogue(text).error().code, ErrorCode::kCorruptInput);
}

TEST(StoreCatalogue, HugeCountsAreRefusedBeforeAllocating) {
  for (const std::size_t field : {24U, 32U, 40U}) {  // pack, chunk and layer counts
    std::vector<std::uint8_t> layout = layout_of(sample_catalogue());
    for (std::size_t i = 0; i < 8; ++i) layout[field + i] = 0xFF;
    const Error error = decode_error(layout);
    EXPECT_EQ(error.code, ErrorCode::kCorruptInput);
    EXPECT_NE(error.message.find("cannot fit"), std::string::npos) << error.message;
  }
}

TEST(StoreCatalogue, SizeCapsAreEnforced) {
  const std::vector<std::uint8_t> blob = blob_of(layout_of(sample_catalogue()));
  auto capped = decode_store_catalogue(blob, 64);
  ASSERT_FALSE(capped.ok());
  EXPECT_EQ(capped.error().code, ErrorCode::kLimitExceeded);
  // A frame that declares an absurd size (a bomb) is refused from its header alone.
  std::vector<std::uint8_t> zeros(std::size_t{2} << 20U, 0);
  auto bomb = compress_chunk_zstd(zeros, 1);
  ASSERT_TRUE(bomb.ok());
  auto refused = decode_store_catalogue(*bomb, std::uint64_t{1} << 20U);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ErrorCode::kLimitExceeded);
}

TEST(StoreCatalogue, InconsistentEntriesAreRefused) {
  const auto refused_with = [](const StoreCatalogue& catalogue, std::string_view words) {
    const Error error = decode_error(layout_of(catalogue));
    EXPECT_NE(error.message.find(words), std::string::npos) << error.message;
  };
  StoreCatalogue unsorted = sample_catalogue();
  std::swap(unsorted.chunks[0], unsorted.chunks[1]);
  refused_with(unsorted, "out of order");

  StoreCatalogue outside = sample_catalogue();
  outside.chunks[0].offset = outside.packs[0].size - 10;
  refused_with(outside, "outside its pack");

  StoreCatalogue header_overlap = sample_catalogue();
  header_overlap.chunks[0].offset = 4;
  refused_with(header_overlap, "outside its pack");

  StoreCatalogue bad_pack = sample_catalogue();
  bad_pack.chunks[2].pack = 9;
  refused_with(bad_pack, "names pack 9");

  StoreCatalogue bad_codec = sample_catalogue();
  bad_codec.chunks[1].codec = static_cast<Codec>(7);
  refused_with(bad_codec, "unknown codec");

  StoreCatalogue twice = sample_catalogue();
  twice.packs[1].digest = twice.packs[0].digest;
  refused_with(twice, "listed twice");

  StoreCatalogue missing_chunk = sample_catalogue();
  missing_chunk.chunks.erase(missing_chunk.chunks.begin() + 1);
  const Error missing = decode_error(layout_of(missing_chunk));
  EXPECT_NE(missing.message.find("which no pack holds"), std::string::npos) << missing.message;

  StoreCatalogue wrong_size = sample_catalogue();
  wrong_size.layers[0].size += 1;
  refused_with(wrong_size, "recipe rebuilds");

  StoreCatalogue garbled = sample_catalogue();
  garbled.layers[1].recipe.back() ^= 0x01U;
  const Error recipe = decode_error(layout_of(garbled));
  EXPECT_EQ(recipe.code, ErrorCode::kCorruptInput);
  EXPECT_NE(recipe.message.find(garbled.layers[1].diff_id.to_string()), std::string::npos);
}

// Two publications that started from the same generation: each added a pack and a layer, and
// both packed chunk-3 (each in its own pack).
void make_concurrent_publications(StoreCatalogue& left, StoreCatalogue& right) {
  const StoreCatalogue base = sample_catalogue();
  left = base;
  right = base;
  const auto add = [](StoreCatalogue& catalogue, std::string_view pack, std::string_view chunk,
                      std::string_view layer_name) {
    const auto pack_index = static_cast<std::uint32_t>(catalogue.packs.size());
    catalogue.packs.push_back({digest_of(pack), 16 + 56 + 10 + 56 + 10});
    catalogue.chunks.push_back({digest_of(chunk), pack_index, 16, 10, 10, Codec::kRaw});
    catalogue.chunks.push_back({digest_of("chunk-3"), pack_index, 16 + 66, 10, 10, Codec::kRaw});
    RecipeBuilder builder;
    builder.add_chunk(digest_of(chunk), 10);
    const Recipe recipe = builder.finish();
    catalogue.layers.push_back({digest_of(layer_name), digest_of(layer_name), "tar",
                                recipe.total_size(), 1, serialize_recipe(recipe)});
    catalogue.generation += 1;
  };
  // chunk-3 lives only in the new packs here.
  const auto is_chunk_3 = [](const CatalogueChunk& chunk) {
    return chunk.digest == digest_of("chunk-3");
  };
  ASSERT_EQ(std::erase_if(left.chunks, is_chunk_3), 1U);
  ASSERT_EQ(std::erase_if(right.chunks, is_chunk_3), 1U);
  left.layers.clear();
  right.layers.clear();
  add(left, "pack-left", "chunk-left", "layer left");
  add(right, "pack-right", "chunk-right", "layer right");
  EXPECT_TRUE(canonicalize_catalogue(left).ok());
  EXPECT_TRUE(canonicalize_catalogue(right).ok());
}

TEST(StoreCatalogue, MergeIsAUnionInEitherOrder) {
  StoreCatalogue left;
  StoreCatalogue right;
  make_concurrent_publications(left, right);
  ASSERT_FALSE(HasFatalFailure());
  StoreCatalogue left_first = left;
  ASSERT_TRUE(merge_store_catalogue(left_first, right).ok());
  StoreCatalogue right_first = right;
  ASSERT_TRUE(merge_store_catalogue(right_first, left).ok());
  for (const StoreCatalogue* merged : {&left_first, &right_first}) {
    EXPECT_EQ(merged->packs.size(), 4U);  // pack-a and pack-b once, both new packs
    EXPECT_EQ(merged->layers.size(), 2U);
    EXPECT_NE(merged->find_layer(digest_of("layer left")), nullptr);
    EXPECT_NE(merged->find_layer(digest_of("layer right")), nullptr);
    // Every chunk points into a pack that holds it, at the offset that pack recorded.
    for (const CatalogueChunk& chunk : merged->chunks) {
      const Digest& pack = merged->packs[chunk.pack].digest;
      const StoreCatalogue& source = merged == &left_first ? left : right;
      const StoreCatalogue& other = merged == &left_first ? right : left;
      const CatalogueChunk* original = source.find_chunk(chunk.digest);
      if (original == nullptr) original = other.find_chunk(chunk.digest);
      ASSERT_NE(original, nullptr);
      const StoreCatalogue& owner = source.find_chunk(chunk.digest) != nullptr ? source : other;
      EXPECT_EQ(owner.packs[original->pack].digest, pack);
      EXPECT_EQ(original->offset, chunk.offset);
    }
    // The union encodes and decodes (every layer's chunks are present).
    auto blob = encode_store_catalogue(*merged);
    ASSERT_TRUE(blob.ok());
    auto decoded = decode_store_catalogue(*blob);
    ASSERT_TRUE(decoded.ok()) << decoded.error().to_string();
    EXPECT_EQ(*decoded, *merged);
  }
  // The same chunks and layers whichever came first (pack numbering may differ).
  std::vector<Digest> left_chunks;
  std::vector<Digest> right_chunks;
  for (const CatalogueChunk& chunk : left_first.chunks) left_chunks.push_back(chunk.digest);
  for (const CatalogueChunk& chunk : right_first.chunks) right_chunks.push_back(chunk.digest);
  EXPECT_EQ(left_chunks, right_chunks);
  EXPECT_EQ(left_first.layers, right_first.layers);
  // Merging again changes nothing.
  StoreCatalogue twice = left_first;
  ASSERT_TRUE(merge_store_catalogue(twice, right).ok());
  EXPECT_EQ(twice, left_first);
}

TEST(RemoteStoreLocation, ParsesRegistryUrls) {
  auto location = parse_remote_store_location("registry://127.0.0.1:5000/team/store");
  ASSERT_TRUE(location.ok()) << location.error().to_string();
  EXPECT_EQ(location->registry, "127.0.0.1:5000");
  EXPECT_EQ(location->repository, "team/store");
  EXPECT_TRUE(names_remote_store("registry://x/y"));
  EXPECT_FALSE(names_remote_store("/var/lib/store"));
  for (const char* bad :
       {"registry://", "registry://host", "registry://host/", "registry:///repo",
        "registry://host/Upper", "registry://host/a/../b", "registry://host/a//b",
        "registry://host/a/", "registry://ho st/repo", "/dir", "registry://host/-a"}) {
    auto refused = parse_remote_store_location(bad);
    ASSERT_FALSE(refused.ok()) << bad;
    EXPECT_EQ(refused.error().code, ErrorCode::kInvalidArgument);
  }
}

TEST(RemoteStoreLocation, DefaultCacheFollowsXdgCacheHome) {
  const RemoteStoreLocation location{"127.0.0.1:5000", "team/store"};
  ASSERT_EQ(::setenv("XDG_CACHE_HOME", "/tmp/cache-home", 1), 0);
  auto directory = default_remote_cache_directory(location);
  ASSERT_TRUE(directory.ok());
  EXPECT_EQ(*directory, "/tmp/cache-home/strata/remote/127.0.0.1_5000/team/store");
}

}  // namespace
}  // namespace strata::registry
