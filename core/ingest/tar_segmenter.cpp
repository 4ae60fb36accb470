// Tar stream to recipe segments (core/ingest/tar_segmenter.h), one tar event per call. Entry
// content of every entry that has content (regular files, and opaque content of unknown types) is
// chunked, regular files tensor-aware when they are model files; header groups, padding and end
// blocks stay inline, bounded by LayerRecipeLimits::max_raw_bytes; trailing bytes after the end
// blocks stay inline up to max_inline_trailing_bytes and are chunked as a plain stream past it.
#include "core/ingest/tar_segmenter.h"

#include <chrono>
#include <string>
#include <utility>

namespace strata {

TarSegmenter::TarSegmenter(ByteSource& tar, EntryContentChunker chunker,
                           const LayerRecipeLimits& limits, TarReadBuffers* buffers)
    : reader_(tar, limits.tar, buffers),
      chunker_(std::move(chunker)),
      limits_(limits),
      chunk_sink_([this](ByteSpan bytes, std::uint32_t width, std::uint32_t phase) {
        emit_chunk(bytes, width, phase);
      }) {}

double TarSegmenter::cut_wall_seconds() const noexcept {
  return static_cast<double>(cut_nanoseconds_) / 1e9;
}

double TarSegmenter::cut_scan_cpu_seconds() const noexcept {
  return chunker_.scan_cpu_seconds();
}

Result<bool> TarSegmenter::next(TarSegmentSink& sink) {
  if (done_) return false;
  sink_ = &sink;
  sink_error_ = Result<void>();
  auto event = reader_.next();
  if (!event.ok()) return std::move(event).error();
  switch (event->kind) {
    case TarEventKind::kHeader:
      ++entries_;
      entry_ = event->entry;
      content_left_ = entry_->size;
      content_size_ = content_left_;
      file_offset_ = 0;
      chunker_.begin_entry(content_left_, entry_->type == TarEntryType::kRegular);
      sink.begin_entry(*entry_);
      STRATA_TRY(add_raw(event->bytes));
      break;
    case TarEventKind::kContent: STRATA_TRY(add_content(event->bytes)); break;
    case TarEventKind::kPadding:
    case TarEventKind::kEndOfArchive: STRATA_TRY(add_raw(event->bytes)); break;
    case TarEventKind::kTrailingBytes: STRATA_TRY(add_trailing(event->bytes)); break;
    case TarEventKind::kDone:
      STRATA_TRY(finish_trailing());
      done_ = true;
      return false;
  }
  return true;
}

Result<void> TarSegmenter::add_raw(ByteSpan bytes) {
  raw_bytes_ += bytes.size();
  if (raw_bytes_ > limits_.max_raw_bytes) {
    return make_error(ErrorCode::kLimitExceeded, "layer recipe needs more than " +
                                                     std::to_string(limits_.max_raw_bytes) +
                                                     " inline bytes (tar headers and padding)");
  }
  return sink_->add_raw(bytes);
}

Result<void> TarSegmenter::add_content(ByteSpan bytes) {
  const auto started = std::chrono::steady_clock::now();
  auto cut = [&]() -> Result<void> {
    content_left_ -= bytes.size();
    // The entry's last piece is cut in place to its end, so its tail is never buffered.
    if (content_left_ == 0) return chunker_.finish(bytes, chunk_sink_);
    // Other pieces are cut in place up to their last certain cut; the reader hands the rest out
    // again joined to what follows (lent buffers only), so the chunker buffers nothing.
    auto consumed = chunker_.feed_certain(bytes, chunk_sink_);
    if (!consumed.ok()) return std::move(consumed).error();
    const std::size_t rest = bytes.size() - *consumed;
    if (rest == 0) return {};
    if (reader_.give_back(rest)) {
      content_left_ += rest;
      return {};
    }
    return chunker_.feed(bytes.subspan(*consumed), chunk_sink_);
  }();
  cut_nanoseconds_ +=
      static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                     std::chrono::steady_clock::now() - started)
                                     .count());
  STRATA_TRY(cut);
  return sink_error_;
}

Result<void> TarSegmenter::add_trailing(ByteSpan bytes) {
  if (!trailing_chunked_ && trailing_.size() + bytes.size() <= limits_.max_inline_trailing_bytes) {
    trailing_.insert(trailing_.end(), bytes.begin(), bytes.end());
    return {};
  }
  if (!trailing_chunked_) {
    trailing_chunked_ = true;
    entry_ = nullptr;
    content_size_ = 0;
    file_offset_ = 0;
    chunker_.begin_plain_stream();
    STRATA_TRY(chunker_.feed(trailing_, chunk_sink_));
    trailing_.clear();
  }
  STRATA_TRY(chunker_.feed(bytes, chunk_sink_));
  return sink_error_;
}

Result<void> TarSegmenter::finish_trailing() {
  if (!trailing_chunked_) return add_raw(trailing_);
  STRATA_TRY(chunker_.finish(chunk_sink_));
  return sink_error_;
}

void TarSegmenter::emit_chunk(ByteSpan bytes, std::uint32_t element_width,
                              std::uint32_t element_phase) {
  if (!sink_error_.ok()) return;  // the sink failed: later chunks of this call are dropped
  TarChunk chunk;
  chunk.bytes = bytes;
  chunk.element_width = element_width;
  chunk.element_phase = element_phase;
  chunk.entry = entry_;
  chunk.file_offset = file_offset_;
  chunk.file_size = content_size_;
  file_offset_ += bytes.size();
  sink_error_ = sink_->add_chunk(chunk);
}

}  // namespace strata
