// Pieces shared by the two chunked-layer rebuilds (core/pull/pull_plan.cpp: the whole tar in
// memory; core/pull/chunked_layer_store_pull.cpp: streamed into the chunk store): decoding one blob
// piece (a zstd frame run, or gzip members for eStargz, shared/specs/layer-formats.md §1.1, §2) and
// the TOC-against-tar check (the c/storage consistency rule, containers/storage#2014). Internal.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "core/base/byte_source.h"
#include "formats/tar/tar_reader.h"
#include "strata/pull_plan.h"

namespace strata::fastpull::detail {

// Decodes `bytes` (zstd frames, or gzip members for eStargz) and hands the output to `sink` in
// blocks; more than `cap` bytes of output, a truncated frame or a decode error is an error naming
// the piece's blob offset `at`.
Result<void> decode_blob_piece(ChunkedFormat format, ByteSpan bytes, std::uint64_t cap,
                               std::uint64_t at, const ByteSink& sink);

// Every header of the tar in `tar`, in order (pax 'g' headers included).
Result<std::vector<TarEntry>> read_tar_entries(ByteSource& tar);

// The TOC must list exactly these entries (names, types, sizes, link names; zstd:chunked also
// mode, uid, gid); returns how many were compared.
Result<std::uint64_t> check_toc_against_entries(const ChunkedLayerToc& layer,
                                                std::span<const TarEntry> entries);

// Fills plan.ranges, plan.requests and plan.fetch_bytes from plan.pieces: every piece that is not
// local and does not come as a delta, merged across gaps below options.gap_bridge_bytes.
void fill_plan_ranges(PullPlan& plan, const PullPlanOptions& options);

}  // namespace strata::fastpull::detail
