// The one header to include. Staged like zstd.h, from stable and simple to advanced:
//   1. vocabulary: Result/Error, byte buffers, SHA-256 digests
//   2. chunking: chunk_buffer() (simple), Chunker (explicit object, streaming feed/finish)
//   3. kernels: listing and forcing the SIMD implementation
//   4. layer recipes: the exact segment list of a layer tar, its replay and binary form
//   5. the chunk store (packs + SQLite index) and the engine that ingests and exports layers
//   6. OCI: image JSON, the image layout, layer writers, deterministic directory tars
//   7. model weights: safetensors/GGUF layouts and tensor-aware chunking (models.h)
//   8. registry: the OCI distribution client, image push and pull, remote stores
#pragma once

#include "strata/buffer.h"
#include "strata/chunked_layer.h"
#include "strata/chunker.h"
#include "strata/digest.h"
#include "strata/engine.h"
#include "strata/fastpull.h"
#include "strata/kernels.h"
#include "strata/model_artifact.h"
#include "strata/model_formats.h"
#include "strata/model_package.h"
#include "strata/models.h"
#include "strata/oci.h"
#include "strata/recipe.h"
#include "strata/registry.h"
#include "strata/remote_store.h"
#include "strata/result.h"
#include "strata/store.h"
#include "strata/unpack.h"
#include "strata/version.h"
