// Unpacking images into a directory: layers applied bottom first with the OCI changeset rules
// (shared/specs/layer-formats.md: an entry replaces what was at its path; ".wh.<name>" deletes
// <name> from lower layers; ".wh..wh..opq" hides every lower-layer entry of its directory), and
// never a write outside the destination (shared/specs/reliability.md §1a):
//   - an entry path or hard-link target that is absolute or has a ".." component is refused
//     (kUnsafePath) — strata does not guess what a hostile path meant;
//   - every directory on the way is resolved under the destination with symlinks followed as if
//     it were "/" (".." stops there), so a symlink from one layer redirects a later write only
//     inside the destination; the entry's own name is never followed (replaced, not written
//     through);
//   - hard links must name an existing non-directory inside the destination;
//   - character and block devices are skipped unless `devices` is set (then mknod needs root);
//   - modes, mtimes (pax fractions included) and fifos always; owners only as root; xattrs as far
//     as the kernel lets this process (refusals counted, not fatal); none on symlinks.
// Directory modes and mtimes are applied after the last layer (so a read-only directory can
// still be filled), re-resolved without following the final component.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "strata/digest.h"
#include "strata/oci.h"
#include "strata/result.h"
#include "strata/store.h"

namespace strata {

struct UnpackOptions {
  bool devices = false;                                 // mknod char/block devices (root only)
  std::uint64_t max_uncompressed_bytes = 64ULL << 30U;  // per layer (bombs)
};

struct UnpackReport {
  std::uint64_t layers = 0;
  std::uint64_t entries = 0;  // tar entries read, whiteouts included
  std::uint64_t files = 0;
  std::uint64_t directories = 0;
  std::uint64_t symlinks = 0;
  std::uint64_t hard_links = 0;
  std::uint64_t whiteouts = 0;  // .wh.<name> and opaque markers applied
  std::uint64_t bytes_written = 0;
  std::uint64_t devices_skipped = 0;
  std::uint64_t xattrs_skipped = 0;  // refused by the kernel (EPERM, ENOTSUP) or on a symlink
  double seconds = 0;                // RootfsBuild: time spent applying layers (its own thread)
};

// Applies layer blobs (tar, tar+gzip or tar+zstd: detected from their bytes), first = bottom, into
// `directory` (created when missing). On error the directory holds what was applied so far.
Result<UnpackReport> unpack_layers(const std::vector<std::string>& layer_paths,
                                   const std::string& directory, const UnpackOptions& options = {});

// The image `tag` of a layout: manifest, config and every layer are verified first (digests,
// sizes, diff_ids: OciLayout::verify_image), then its layers are unpacked in order.
Result<UnpackReport> unpack_image(const oci::OciLayout& layout, std::string_view tag,
                                  const std::string& directory, const UnpackOptions& options = {});

// Layers of a chunk store (each named by diff_id or by a blob digest it was ingested from), first =
// bottom: each is replayed from its recipe, every chunk re-hashed as it is read, straight into the
// unpacker; a chunk or diff_id that fails its check ends the unpack with that error.
Result<UnpackReport> unpack_store_layers(const ChunkStore& store, const std::vector<Digest>& layers,
                                         const std::string& directory,
                                         const UnpackOptions& options = {});

// A rootfs built from store layers as they arrive, for `strata pull --unpack DIR`: a pull commits
// its layers in any order (several in flight), and each is applied as soon as it and every layer
// below it are in the store, on a thread of the build's own, while later layers are still being
// fetched. Nothing that looks like DIR exists until the image is complete:
//   - DIR must be absent or an empty directory (checked by begin(), before anything is fetched);
//   - the tree is built in "<DIR>.partial-<16 hex>" beside it (same parent, so the final step is
//     one rename; mode 0700 while it is built, 0755 once done);
//   - each layer's tar streams from the store through the one recipe reader into the unpacker (no
//     tar file), and its SHA-256 must equal the diff_id the layer was announced with; chunks are
//     decoded and their record checksums checked, not hashed again (the diff_id covers them);
//   - finish() renames the tree to DIR only when every layer of the image is applied and verified;
//     any error, or a build dropped without finish(), removes the partial directory.
class RootfsBuild {
 public:
  // Called on the build's thread after each layer is applied: layers done so far.
  using LayerDoneFn = std::function<void(std::size_t layers_done)>;

  // `store` must outlive the build. The parent of `directory` is created when missing.
  static Result<RootfsBuild> begin(const ChunkStore& store, const std::string& directory,
                                   const UnpackOptions& options = {}, LayerDoneFn layer_done = {});
  RootfsBuild(RootfsBuild&&) noexcept;
  RootfsBuild& operator=(RootfsBuild&&) noexcept;
  RootfsBuild(const RootfsBuild&) = delete;
  RootfsBuild& operator=(const RootfsBuild&) = delete;
  ~RootfsBuild();  // without a successful finish(): stops and removes the partial directory

  // Layer `index` (0 = bottom) is in the store as `diff_id`. Thread-safe; returns at once.
  void layer_ready(std::size_t index, const Digest& diff_id);
  // The image's layers, bottom first (any not announced by layer_ready are announced now; one
  // announced with another diff_id is an error): waits until all are applied, sets directory
  // modes and times, and renames the tree to DIR. The first error of any layer, the partial
  // directory then removed. Once only. (A process killed mid-way leaves "<DIR>.partial-<hex>"
  // behind, never DIR.)
  Result<UnpackReport> finish(const std::vector<Digest>& diff_ids);

  // Where the tree is being built ("<DIR>.partial-<16 hex>").
  [[nodiscard]] const std::string& partial_directory() const;

  struct Impl;

 private:
  explicit RootfsBuild(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace strata
