// A raw model-weight file (safetensors, GGUF or anything else) read once: its bytes go to a sink
// (a layout blob), its chunks (tensor-aware when the header parses, shared/specs/models.md §3) are
// hashed into a chunk index, and, with a store, new chunks are compressed into it and the file is
// committed as a store layer whose recipe is the chunk list (diff_id = the file's SHA-256), so a
// later package or pull of a related model finds the shared chunks. With a delta base (a fine-tune
// ingested against its base model, core/model/model_delta_base.h), tensors the base also holds are
// cut where the base was cut and their new chunks are stored as deltas when that is smaller.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "strata/model_package.h"
#include "strata/models.h"
#include "strata/store.h"

namespace strata::model {

class ModelDeltaBase;

struct WeightIngestOptions {
  ChunkerOptions chunker;
  ChunkStore* store = nullptr;
  std::string media_type;  // recorded with the store layer
  int zstd_level = 3;
  unsigned threads = 0;
  // Base tensors to delta-code new chunks against (needs `store`; may be null), and how
  // (ModelDeltaOptions::base and files are not read here).
  const ModelDeltaBase* delta_base = nullptr;
  ModelDeltaOptions delta;
};

struct WeightIngestResult {
  ChunkIndex index;
  std::optional<ModelLayout> layout;  // the parsed header, when it parsed
  std::uint64_t new_chunks = 0;
  std::uint64_t new_raw_bytes = 0;
  std::uint64_t new_stored_bytes = 0;
  std::uint64_t delta_chunks = 0;  // new chunks stored as a delta against a base chunk
  std::uint64_t delta_stored_bytes = 0;
};

// Reads the file at `path`; `copy` (may be empty) receives all its bytes in order.
Result<WeightIngestResult> ingest_weight_file(const std::string& path,
                                              const WeightIngestOptions& options,
                                              const std::function<Result<void>(ByteSpan)>& copy);

// Parses the model header of the file at `path` (reading a growing prefix); nullopt when the file
// is not a model file strata can parse.
std::optional<ModelLayout> read_model_header(const std::string& path);

}  // namespace strata::model
