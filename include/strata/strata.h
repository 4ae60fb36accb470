// The one header to include. Staged like zstd.h, from stable and simple to advanced:
//   1. vocabulary: Result/Error, byte buffers, SHA-256 digests
//   2. chunking: chunk_buffer() (simple), Chunker (explicit object, streaming feed/finish)
//   3. kernels: listing and forcing the SIMD implementation
//   4. model weights: safetensors/GGUF layouts and tensor-aware chunking (models.h)
#pragma once

#include "strata/buffer.h"
#include "strata/chunker.h"
#include "strata/digest.h"
#include "strata/kernels.h"
#include "strata/models.h"
#include "strata/result.h"
#include "strata/version.h"
