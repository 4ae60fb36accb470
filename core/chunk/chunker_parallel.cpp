// Parallel chunking of one buffer with output identical to the sequential chunker. Every
// algorithm here restarts its hash at each chunk start, so the cuts that follow a true cut depend
// only on the bytes after it. Parts are chunked independently from their first byte; the serial
// join walks the true chain of cuts and, as soon as it lands on a cut a part also found, takes
// that part's remaining cuts. Where the two never meet it keeps cutting sequentially, so the
// result is exact for any data (shared/specs/chunking.md §4.1 xet re-sync, §4.3 desync's
// degenerate zero-filled case, §7.4). Parts start at multiples of max_size: zero-filled data, whose
// only cuts fall at max-size multiples, then meets at once.
#include <tbb/info.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <algorithm>

#include "strata/chunker.h"

namespace strata {
namespace {

// Parts hold many chunks, so a join costs little next to the work of a part.
constexpr std::size_t kMinChunksPerPart = 64;
// More parts than threads keeps every thread busy when parts take unequal time.
constexpr std::size_t kPartsPerThread = 4;

// Chunks of data from `begin` until a chunk starts at or after `end` (or the data ends).
std::vector<Chunk> chunk_part(const Chunker& chunker, ByteSpan data, std::size_t begin,
                              std::size_t end) {
  std::vector<Chunk> chunks;
  std::size_t position = begin;
  while (position < end && position < data.size()) {
    Chunk chunk = chunker.cut(data.subspan(position), true);
    chunk.offset = position;
    chunks.push_back(chunk);
    position += chunk.length;
  }
  return chunks;
}

}  // namespace

Result<std::vector<Chunk>> chunk_buffer_parallel(ByteSpan data, const ChunkerOptions& options,
                                                 unsigned threads) {
  auto created = Chunker::create(options);
  if (!created.ok()) return std::move(created).error();
  const Chunker& chunker = *created;
  if (threads == 0) threads = static_cast<unsigned>(tbb::info::default_concurrency());
  const std::size_t max_size = options.max_size;
  const std::size_t wanted_parts = std::size_t{threads} * kPartsPerThread;
  std::size_t part_size = (data.size() / wanted_parts + max_size - 1) / max_size * max_size;
  part_size = std::max(part_size, kMinChunksPerPart * max_size);
  const std::size_t part_count = (data.size() + part_size - 1) / part_size;
  if (threads <= 1 || part_count < 2) return chunk_buffer(data, options);

  std::vector<std::vector<Chunk>> parts(part_count);
  // More threads than the machine runs only adds switching (and TBB warns about it).
  const auto hardware = static_cast<unsigned>(std::max(1, tbb::info::default_concurrency()));
  tbb::task_arena arena(static_cast<int>(std::min(threads, hardware)));
  arena.execute([&] {
    tbb::parallel_for(std::size_t{0}, part_count, [&](std::size_t part) {
      parts[part] = chunk_part(chunker, data, part * part_size, (part + 1) * part_size);
    });
  });

  std::vector<Chunk> chunks;
  std::size_t position = 0;  // always a true cut
  for (std::size_t part = 0; part < part_count && position < data.size(); ++part) {
    const std::vector<Chunk>& found = parts[part];
    const std::size_t part_end = (part + 1) * part_size;
    while (position < part_end && position < data.size()) {
      const auto match = std::lower_bound(
          found.begin(), found.end(), position,
          [](const Chunk& chunk, std::size_t offset) { return chunk.offset < offset; });
      if (match != found.end() && match->offset == position) {
        chunks.insert(chunks.end(), match, found.end());
        position = found.back().offset + found.back().length;
        break;
      }
      Chunk chunk = chunker.cut(data.subspan(position), true);
      chunk.offset = position;
      chunks.push_back(chunk);
      position += chunk.length;
    }
  }
  return chunks;
}

}  // namespace strata
