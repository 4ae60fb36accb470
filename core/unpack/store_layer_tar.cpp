// A stored layer's tar streamed into the layer applier (core/unpack/layer_applier.h): the one
// recipe reader (core/store/recipe_reader.h) is wrapped as the ByteSource the tar reader pulls
// from, so the tar is never a file and never whole in memory (the reader's batches in flight are),
// and no thread or pipe sits between the store and the unpack. The tar's SHA-256 is taken as it
// passes and checked against the layer's recorded diff_id (the recipe invariant of DESIGN.md §3:
// the replayed bytes are the layer's tar byte for byte).
#include <array>

#include "core/unpack/layer_applier.h"

namespace strata::unpack_detail {
namespace {

class StoredLayerTar final : public ByteSource {
 public:
  StoredLayerTar(const Recipe& recipe, const ChunkStore& store, const StoreLayerRead& read)
      : reader_(recipe, store_chunks(store, read.check), reader_options(read)),
        cancel_(read.cancel) {}

  Result<std::size_t> read(MutableByteSpan out) override {
    if (cancel_ != nullptr && cancel_->load()) {
      return make_error(ErrorCode::kIo, "unpack cancelled");
    }
    auto count = reader_.read(out);
    if (!count.ok()) return std::move(count).error();
    hash_.update(ByteSpan(out.data(), *count));
    return *count;
  }

  // Reads what the applier left (nothing, normally: the tar reader reads to the end), then the
  // digest of the whole tar.
  Result<Digest> finish() {
    std::array<std::uint8_t, 64U << 10U> rest{};
    while (true) {
      auto count = read(MutableByteSpan(rest.data(), rest.size()));
      if (!count.ok()) return std::move(count).error();
      if (*count == 0) return hash_.finish();
    }
  }

 private:
  static RecipeReaderOptions reader_options(const StoreLayerRead& read) {
    RecipeReaderOptions options;
    options.read_ahead = read.read_ahead;
    return options;
  }

  RecipeReader reader_;
  const std::atomic<bool>* cancel_;
  Sha256 hash_;
};

}  // namespace

Result<void> apply_store_layer(LayerApplier& applier, const ChunkStore& store, const Digest& layer,
                               const StoreLayerRead& read) {
  auto record = read.by_diff_id ? store.find_layer_by_diff_id(layer) : store.find_layer(layer);
  if (!record.ok()) return std::move(record).error();
  auto recipe = parse_recipe(record->recipe);
  if (!recipe.ok()) {
    return make_error(recipe.error().code, "recipe of layer " + record->diff_id.to_string() + ": " +
                                               recipe.error().message);
  }
  StoredLayerTar tar(*recipe, store, read);
  // A failed read (a chunk that fails its check) reaches the applier as its error.
  STRATA_TRY(applier.apply_tar(tar));
  auto digest = tar.finish();
  if (!digest.ok()) return std::move(digest).error();
  if (*digest != record->diff_id) {
    return make_error(
        ErrorCode::kDigestMismatch,
        "the tar of layer " + record->diff_id.to_string() + " hashes to " + digest->to_string());
  }
  return {};
}

}  // namespace strata::unpack_detail
