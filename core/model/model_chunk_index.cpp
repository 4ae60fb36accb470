// The chunk index of a model weight blob (include/strata/model_package.h §2 gives the byte
// layout): the offsets, lengths and SHA-256 of each chunk and the chunker parameters that cut
// them, so a client can fetch only the ranges of a raw blob it lacks (shared/specs/models.md §8).
// Parsing trusts nothing: the chunk count must match the bytes present before anything is
// allocated, and the lengths must tile the blob exactly.
#include <cstring>

#include "strata/model_package.h"

namespace strata::model {
namespace {

constexpr std::size_t kHeaderBytes = 88;
constexpr std::size_t kEntryBytes = 4 + Digest::kSize;
constexpr std::uint32_t kFlagTensorAware = 1;

void put_u32(std::vector<std::uint8_t>& out, std::uint32_t value) {
  for (unsigned i = 0; i < 4; ++i) out.push_back(static_cast<std::uint8_t>(value >> (8U * i)));
}
void put_u64(std::vector<std::uint8_t>& out, std::uint64_t value) {
  for (unsigned i = 0; i < 8; ++i) out.push_back(static_cast<std::uint8_t>(value >> (8U * i)));
}
void put_digest(std::vector<std::uint8_t>& out, const Digest& digest) {
  for (const std::uint8_t byte : digest.bytes()) out.push_back(byte);
}
std::uint32_t get_u32(const std::uint8_t* at) {
  std::uint32_t value = 0;
  for (unsigned i = 0; i < 4; ++i) value |= static_cast<std::uint32_t>(at[i]) << (8U * i);
  return value;
}
std::uint64_t get_u64(const std::uint8_t* at) {
  std::uint64_t value = 0;
  for (unsigned i = 0; i < 8; ++i) value |= static_cast<std::uint64_t>(at[i]) << (8U * i);
  return value;
}

Error corrupt(const std::string& what) {
  return make_error(ErrorCode::kCorruptInput, "chunk index: " + what);
}

}  // namespace

std::vector<std::uint8_t> serialize_chunk_index(const ChunkIndex& index) {
  std::vector<std::uint8_t> out(kChunkIndexMagic.begin(), kChunkIndexMagic.end());
  out.reserve(kHeaderBytes + index.chunks.size() * kEntryBytes);
  put_u32(out, kChunkIndexVersion);
  put_u32(out, index.tensor_aware ? kFlagTensorAware : 0U);
  out.push_back(static_cast<std::uint8_t>(index.chunker.algorithm));
  out.push_back(static_cast<std::uint8_t>(index.chunker.level));
  out.push_back(0);
  out.push_back(0);
  put_u32(out, index.chunker.min_size);
  put_u32(out, index.chunker.avg_size);
  put_u32(out, index.chunker.max_size);
  put_u64(out, index.chunker.seed);
  put_u64(out, index.blob_size);
  put_digest(out, index.blob_digest);
  put_u64(out, index.chunks.size());
  for (const ChunkIndexEntry& chunk : index.chunks) {
    put_u32(out, chunk.length);
    put_digest(out, chunk.digest);
  }
  return out;
}

Result<ChunkIndex> parse_chunk_index(ByteSpan bytes) {
  if (bytes.size() < kHeaderBytes) {
    return corrupt(std::to_string(bytes.size()) + " bytes, shorter than its " +
                   std::to_string(kHeaderBytes) + "-byte header");
  }
  const std::uint8_t* data = bytes.data();
  if (std::memcmp(data, kChunkIndexMagic.data(), kChunkIndexMagic.size()) != 0) {
    return corrupt("bad magic (not a strata chunk index)");
  }
  if (const std::uint32_t version = get_u32(data + 8); version != kChunkIndexVersion) {
    return make_error(ErrorCode::kUnsupported, "chunk index: version " + std::to_string(version) +
                                                   " (this strata reads " +
                                                   std::to_string(kChunkIndexVersion) + ")");
  }
  const std::uint32_t flags = get_u32(data + 12);
  if ((flags & ~kFlagTensorAware) != 0) return corrupt("unknown flags " + std::to_string(flags));
  ChunkIndex index;
  index.tensor_aware = (flags & kFlagTensorAware) != 0;
  if (data[16] > static_cast<std::uint8_t>(ChunkAlgorithm::kCasync)) {
    return corrupt("unknown chunk algorithm " + std::to_string(data[16]));
  }
  if (data[18] != 0 || data[19] != 0) return corrupt("reserved bytes are not zero");
  index.chunker.algorithm = static_cast<ChunkAlgorithm>(data[16]);
  index.chunker.level = data[17];
  index.chunker.min_size = get_u32(data + 20);
  index.chunker.avg_size = get_u32(data + 24);
  index.chunker.max_size = get_u32(data + 28);
  index.chunker.seed = get_u64(data + 32);
  if (auto valid = validate(index.chunker); !valid.ok()) {
    return corrupt("chunker parameters: " + valid.error().message);
  }
  index.blob_size = get_u64(data + 40);
  Digest::Bytes digest_bytes{};
  std::memcpy(digest_bytes.data(), data + 48, Digest::kSize);
  index.blob_digest = Digest(digest_bytes);
  const std::uint64_t count = get_u64(data + 80);
  const std::size_t body = bytes.size() - kHeaderBytes;
  if (body % kEntryBytes != 0 || count != body / kEntryBytes) {
    return corrupt("says " + std::to_string(count) + " chunks but holds " + std::to_string(body) +
                   " bytes of entries (" + std::to_string(kEntryBytes) + " each)");
  }
  index.chunks.resize(static_cast<std::size_t>(count));
  std::uint64_t offset = 0;
  for (std::size_t i = 0; i < index.chunks.size(); ++i) {
    const std::uint8_t* entry = data + kHeaderBytes + i * kEntryBytes;
    ChunkIndexEntry& chunk = index.chunks[i];
    chunk.length = get_u32(entry);
    if (chunk.length == 0 || chunk.length > index.chunker.max_size) {
      return corrupt("chunk " + std::to_string(i) + " has length " + std::to_string(chunk.length) +
                     " (allowed 1.." + std::to_string(index.chunker.max_size) + ")");
    }
    std::memcpy(digest_bytes.data(), entry + 4, Digest::kSize);
    chunk.digest = Digest(digest_bytes);
    chunk.offset = offset;
    offset += chunk.length;  // <= count x 16 MiB: cannot overflow
    if (offset > index.blob_size) {
      return corrupt("chunk " + std::to_string(i) + " ends at " + std::to_string(offset) +
                     ", past the blob's " + std::to_string(index.blob_size) + " bytes");
    }
  }
  if (offset != index.blob_size) {
    return corrupt("chunks cover " + std::to_string(offset) + " bytes of a " +
                   std::to_string(index.blob_size) + "-byte blob");
  }
  return index;
}

}  // namespace strata::model
