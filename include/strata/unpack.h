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

}  // namespace strata
