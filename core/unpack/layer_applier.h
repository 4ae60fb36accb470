// The layer applier of core/unpack (internal, not installed): applies one layer's uncompressed tar
// after another under a safe_path::RootDirectory with the OCI changeset rules
// (shared/specs/layer-formats.md §3 "Layer media types": an entry replaces what was at its path,
// ".wh.<name>" deletes <name> of lower layers, ".wh..wh..opq" hides every lower-layer entry of
// its directory), and streams a stored layer's tar into it through the one recipe reader
// (core/store/recipe_reader.h) with its diff_id checked at the end. Shared by the one-shot unpacks
// (layer_unpack.cpp) and the staged rootfs build of `strata pull --unpack` (rootfs_build.cpp).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/base/byte_source.h"
#include "core/base/safe_path.h"
#include "core/store/recipe_reader.h"
#include "formats/tar/tar_reader.h"
#include "strata/unpack.h"

namespace strata::unpack_detail {

// Applies one layer after another; state that spans layers (directory metadata applied at the
// end) lives here, state of one layer (what it created, for opaque whiteouts) is reset per layer.
class LayerApplier {
 public:
  LayerApplier(const safe_path::RootDirectory& root, const UnpackOptions& options,
               UnpackReport& report);

  // One layer's uncompressed tar stream.
  Result<void> apply_tar(ByteSource& tar);
  // Modes and mtimes of every directory, deepest first.
  Result<void> finish_directories();

 private:
  struct DirectoryMetadata {
    mode_t mode = 0755;
    timespec mtime{};
  };
  struct OpenFile {
    safe_path::FileDescriptor fd;
    std::string path;
  };

  Result<void> apply_entry(const TarEntry& entry);
  Result<void> apply_whiteout(const std::vector<std::string>& components);
  Result<void> apply_opaque(const std::vector<std::string>& components);
  Result<void> write_content(ByteSpan bytes);
  Result<void> close_file();
  Result<void> set_xattrs(int fd, const TarEntry& entry, const std::string& path);
  Result<void> set_owner_at(const safe_path::ResolvedParent& parent, const TarEntry& entry,
                            const std::string& path);
  // Removes whatever is at the parent's `name` unless it is a directory and `keep_directory`.
  Result<bool> clear_path(const safe_path::ResolvedParent& parent, const std::string& path,
                          bool keep_directory);
  void forget_directories_under(const std::string& path);
  bool created_in_this_layer(const std::string& path) const;

  const safe_path::RootDirectory& root_;
  const UnpackOptions& options_;
  UnpackReport& report_;
  bool as_root_;
  std::set<std::string> created_;  // paths (symlinks resolved) this layer created
  std::map<std::string, DirectoryMetadata> directories_;
  OpenFile file_;
  TarEntry file_entry_;  // metadata of the open file (the reader's entry moves on)
};

struct StoreLayerRead {
  StoreChunkCheck check = StoreChunkCheck::kFull;
  unsigned read_ahead = 0;  // RecipeReaderOptions::read_ahead
  bool by_diff_id = false;  // `layer` is a diff_id (else a diff_id or a blob digest)
  // Checked before each read: when set, the read fails (kIo: "unpack cancelled").
  const std::atomic<bool>* cancel = nullptr;
};

// The stored layer `layer` (a diff_id or a blob digest it was ingested from) replayed from its
// recipe straight into `applier` (no thread, no file: the applier pulls the reader's pieces), the
// tar's SHA-256 taken on the way (the bytes after the end blocks included) and checked against the
// layer's recorded diff_id: a mismatch is kDigestMismatch, after the applier has written.
Result<void> apply_store_layer(LayerApplier& applier, const ChunkStore& store, const Digest& layer,
                               const StoreLayerRead& read);

}  // namespace strata::unpack_detail
