// Content units for the chunked-layer writers (content_unit_assembler.h): the next unit is the
// caller's chunk starting exactly where the last unit ended, or else uncovered content up to the
// next chunk, the file's end or kMaxContentUnitBytes, whichever comes first.
#include "formats/chunked/content_unit_assembler.h"

#include <algorithm>
#include <utility>

namespace strata::fastpull::detail {

ContentUnitAssembler::ContentUnitAssembler(std::span<const TarChunk> chunks)
    : chunks_([chunks](std::size_t index, std::uint64_t horizon) -> const TarChunk* {
        if (index >= chunks.size() || chunks[index].tar_offset >= horizon) return nullptr;
        return &chunks[index];
      }) {}

void ContentUnitAssembler::begin_file(std::uint64_t tar_offset, std::uint64_t size) {
  file_start_ = tar_offset;
  file_size_ = size;
  done_ = 0;
  buffer_.clear();
  plan_unit();
}

void ContentUnitAssembler::plan_unit() {
  const std::uint64_t at = file_start_ + done_;
  const std::uint64_t remaining = file_size_ - done_;
  std::uint64_t limit = std::min(remaining, kMaxContentUnitBytes);
  // Only chunks starting before the horizon can shape this unit, so a streaming lookup need not
  // know anything further ahead.
  const std::uint64_t horizon = at + limit;
  unit_digest_ = nullptr;
  const TarChunk* next = nullptr;
  for (;;) {
    next = chunks_(next_chunk_, horizon);
    if (next == nullptr) break;
    if (next->tar_offset < at) {
      ++next_chunk_;
      continue;
    }
    if (next->tar_offset != at) break;
    ++next_chunk_;
    if (next->length != 0 && next->length <= remaining && next->length <= kMaxContentUnitBytes) {
      unit_length_ = next->length;
      unit_digest_ = &next->digest;
      return;
    }
  }
  if (next != nullptr && next->tar_offset - at < limit) limit = next->tar_offset - at;
  unit_length_ = limit;
}

Result<void> ContentUnitAssembler::hand_out(ByteSpan raw, const ContentUnitHandler& handler) {
  ContentUnit unit;
  unit.raw = raw;
  unit.file_offset = done_;
  unit.digest = unit_digest_;
  unit.last = done_ + raw.size() == file_size_;
  STRATA_TRY(handler(unit));
  done_ += raw.size();
  if (done_ < file_size_) plan_unit();
  return {};
}

Result<void> ContentUnitAssembler::add(ByteSpan content, const ContentUnitHandler& handler) {
  if (content.size() > file_size_ - done_ - buffer_.size()) {
    return make_error(ErrorCode::kInvalidArgument, "content runs past the file's size");
  }
  while (!content.empty()) {
    if (buffer_.empty() && content.size() >= unit_length_) {
      const auto length = static_cast<std::size_t>(unit_length_);
      STRATA_TRY(hand_out(content.first(length), handler));
      content = content.subspan(length);
      continue;
    }
    const std::size_t take = std::min<std::uint64_t>(content.size(), unit_length_ - buffer_.size());
    buffer_.insert(buffer_.end(), content.begin(),
                   content.begin() + static_cast<std::ptrdiff_t>(take));
    content = content.subspan(take);
    if (buffer_.size() == unit_length_) {
      STRATA_TRY(hand_out(buffer_, handler));
      buffer_.clear();
    }
  }
  return {};
}

}  // namespace strata::fastpull::detail
