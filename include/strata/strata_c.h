/* strata's stable C ABI: what a registry, a builder or a binding (Go, Python) needs from strata
 * without C++ types crossing the boundary. Chunk a buffer or a stream; open a chunk store; ingest
 * a layer (path, file descriptor or read callback); export a stored layer as tar, gzip, zstd,
 * zstd:chunked or eStargz (file descriptor or write callback); pull an image from a registry into
 * a store, or plan that pull; package, push and pull a model. Implemented in capi/strata_c.cpp over
 * the C++ API (the headers in include/strata/) and shipped as the shared library libstrata.so.1,
 * which exports exactly these functions (capi/exported_symbols.txt).
 *
 * Conventions, for every function:
 *   - The return value is a status: STRATA_OK (0) or one of the codes below. When `err` is not
 *     NULL it receives the same code and a message naming the problem (the message is cut to
 *     fit). Nothing prints, nothing aborts, no C++ exception crosses the boundary.
 *   - Handles are opaque values. A handle that was closed, never opened, or is NULL is refused
 *     with STRATA_E_BAD_HANDLE: using one after close is an error, never undefined behaviour.
 *     Handles may be used from several threads; closing one while another thread is inside a
 *     call on it is safe (the object lives until that call returns).
 *   - Every struct starts with `struct_size`, set by the caller to sizeof the struct it was
 *     compiled with (the STRATA_INIT macro does this). Smaller than the first version of the
 *     struct: STRATA_E_INVALID_ARGUMENT. Larger (a caller built against a newer header): accepted
 *     when the bytes this library does not know are all zero (inputs), else STRATA_E_UNSUPPORTED;
 *     outputs fill only the fields this library knows. Above 4096: STRATA_E_INVALID_ARGUMENT.
 *     Options pointers may be NULL (defaults).
 *   - Strings are NUL-terminated UTF-8. Digests are "sha256:<64 hex>" (STRATA_DIGEST_CHARS).
 *   - Callbacks return 0 for success; anything else stops the call with STRATA_E_CALLBACK. */
#ifndef STRATA_STRATA_C_H
#define STRATA_STRATA_C_H

#include <stddef.h>
#include <stdint.h>
#include <string.h> /* memset, for STRATA_INIT */

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define STRATA_C_API __attribute__((visibility("default")))
#else
#define STRATA_C_API
#endif

/* ABI version: the major changes only with an incompatible change (then the soname changes). */
#define STRATA_C_ABI_MAJOR 1
#define STRATA_C_ABI_MINOR 2

/* "sha256:" + 64 hex digits + NUL */
#define STRATA_DIGEST_CHARS 72
#define STRATA_ERROR_MESSAGE_CHARS 512

#define STRATA_INIT(value)               \
  do {                                   \
    memset(&(value), 0, sizeof(value));  \
    (value).struct_size = sizeof(value); \
  } while (0)

/* ---- status codes ----------------------------------------------------------------------------
 * 1..9 are strata::ErrorCode's values (include/strata/result.h); 64.. belong to the boundary. */
typedef enum strata_status {
  STRATA_OK = 0,
  STRATA_E_INVALID_ARGUMENT = 1, /* a parameter out of range, NULL or inconsistent */
  STRATA_E_IO = 2,               /* the operating system refused a read, write or open */
  STRATA_E_CORRUPT_INPUT = 3,    /* input bytes do not follow the format they claim */
  STRATA_E_UNSUPPORTED = 4,      /* valid input using a feature strata does not handle */
  STRATA_E_LIMIT_EXCEEDED = 5,   /* input larger than a configured cap */
  STRATA_E_NOT_FOUND = 6,        /* a named object (chunk, layer, tag) does not exist */
  STRATA_E_DIGEST_MISMATCH = 7,  /* content does not hash to the digest it was announced with */
  STRATA_E_UNSAFE_PATH = 8,      /* a path that would escape its destination */
  STRATA_E_INTERNAL = 9,         /* a broken invariant inside strata: a bug, reported */
  STRATA_E_BAD_HANDLE = 64,      /* NULL, closed or unknown handle */
  STRATA_E_CALLBACK = 65,        /* a caller's callback failed or broke its contract */
  STRATA_E_OUT_OF_MEMORY = 66
} strata_status;

typedef struct strata_error {
  size_t struct_size;
  int32_t code; /* a strata_status */
  char message[STRATA_ERROR_MESSAGE_CHARS];
} strata_error;

/* "invalid_argument", "bad_handle", ...; "unknown" for a value that is not a status. */
STRATA_C_API const char* strata_status_name(int32_t code);
/* STRATA_C_ABI_MAJOR * 1000 + STRATA_C_ABI_MINOR of the library loaded. */
STRATA_C_API uint32_t strata_abi_version(void);
/* The library's version, e.g. "0.1.0". */
STRATA_C_API const char* strata_version_string(void);

/* ---- callbacks ------------------------------------------------------------------------------ */

/* Fills up to `capacity` bytes at `buffer`; returns the count, 0 at the end, negative on error.
 * Returning more than `capacity` is an error (STRATA_E_CALLBACK). */
typedef int64_t (*strata_read_fn)(void* user, uint8_t* buffer, size_t capacity);
/* Takes `length` bytes; returns 0 on success. */
typedef int32_t (*strata_write_fn)(void* user, const uint8_t* data, size_t length);

/* ---- 1. chunking ---------------------------------------------------------------------------- */

typedef enum strata_chunk_algorithm {
  STRATA_CHUNK_FASTCDC2016 = 0,
  STRATA_CHUNK_FASTCDC2020 = 1,
  STRATA_CHUNK_XET = 2,
  STRATA_CHUNK_CASYNC = 3
} strata_chunk_algorithm;

typedef struct strata_chunker_options {
  size_t struct_size;
  int32_t algorithm; /* strata_chunk_algorithm */
  uint32_t min_size; /* bytes; strata_chunker_options_init sets the algorithm's defaults */
  uint32_t avg_size;
  uint32_t max_size;
  uint32_t level; /* FastCDC normalization 0..3 */
  uint64_t seed;
  uint32_t with_digests; /* non-zero: each chunk's SHA-256 is computed (strata_chunk.digest) */
} strata_chunker_options;

/* Sets struct_size and the defaults of `algorithm` (FastCDC 16/64/256 KiB level 1, ...). */
STRATA_C_API int32_t strata_chunker_options_init(strata_chunker_options* options, int32_t algorithm,
                                                 strata_error* err);

typedef struct strata_chunk {
  size_t struct_size;
  uint64_t offset; /* from the start of the stream */
  uint32_t length;
  uint64_t hash;                    /* rolling hash at the cut */
  char digest[STRATA_DIGEST_CHARS]; /* SHA-256 when with_digests, else "" */
} strata_chunk;

/* Called once per chunk, in order; `bytes` (chunk->length bytes) are valid during the call. */
typedef int32_t (*strata_chunk_fn)(void* user, const strata_chunk* chunk, const uint8_t* bytes);

/* All chunks of one buffer (`data` may be NULL only when `length` is 0). */
STRATA_C_API int32_t strata_chunk_buffer(const uint8_t* data, size_t length,
                                         const strata_chunker_options* options,
                                         strata_chunk_fn on_chunk, void* user, strata_error* err);

/* A streaming chunker: the chunks of feed(a), feed(b), finish() equal chunk_buffer(a + b). */
typedef struct strata_chunker strata_chunker;
STRATA_C_API int32_t strata_chunker_open(const strata_chunker_options* options,
                                         strata_chunker** out, strata_error* err);
/* Chunks whose end is certain are given to `on_chunk` now, the rest at finish. After a callback
 * failure the chunker refuses feed/finish until strata_chunker_reset. */
STRATA_C_API int32_t strata_chunker_feed(strata_chunker* chunker, const uint8_t* data,
                                         size_t length, strata_chunk_fn on_chunk, void* user,
                                         strata_error* err);
STRATA_C_API int32_t strata_chunker_finish(strata_chunker* chunker, strata_chunk_fn on_chunk,
                                           void* user, strata_error* err);
/* Forgets buffered bytes; offsets restart at 0. */
STRATA_C_API int32_t strata_chunker_reset(strata_chunker* chunker, strata_error* err);
STRATA_C_API int32_t strata_chunker_close(strata_chunker* chunker, strata_error* err);

/* ---- 2. the chunk store --------------------------------------------------------------------- */

typedef struct strata_store strata_store;

typedef struct strata_store_options {
  size_t struct_size;
  uint32_t create_if_missing;
} strata_store_options;

STRATA_C_API int32_t strata_store_open(const char* path, const strata_store_options* options,
                                       strata_store** out, strata_error* err);
STRATA_C_API int32_t strata_store_close(strata_store* store, strata_error* err);

typedef struct strata_store_stats {
  size_t struct_size;
  uint64_t chunks;
  uint64_t layers;
  uint64_t raw_bytes;
  uint64_t stored_bytes;
  uint64_t packs;
} strata_store_stats;
STRATA_C_API int32_t strata_store_stats_get(strata_store* store, strata_store_stats* out,
                                            strata_error* err);

/* STRATA_OK when the store holds the layer (by diff_id or a blob digest it was ingested from),
 * STRATA_E_NOT_FOUND when not. */
STRATA_C_API int32_t strata_store_has_layer(strata_store* store, const char* digest,
                                            strata_error* err);

/* ---- 3. ingest ------------------------------------------------------------------------------ */

typedef struct strata_ingest_options {
  size_t struct_size;
  uint32_t threads;       /* 0: one per hardware thread */
  int32_t zstd_level;     /* 0: 3 */
  uint32_t trust_local;   /* non-zero: TrustMode::kLocal (trusted local input only) */
  uint64_t max_tar_bytes; /* 0: 64 GiB (bomb protection) */
} strata_ingest_options;

typedef struct strata_ingest_report {
  size_t struct_size;
  char diff_id[STRATA_DIGEST_CHARS];      /* SHA-256 of the uncompressed tar */
  char layer_digest[STRATA_DIGEST_CHARS]; /* SHA-256 of the blob as read */
  char compression[16];                   /* "none" | "gzip" | "zstd" */
  uint64_t input_bytes;
  uint64_t tar_bytes;
  uint64_t entries;
  uint64_t chunks;
  uint64_t new_chunks;
  uint64_t new_stored_bytes;
  uint32_t already_present;
} strata_ingest_report;

/* A layer blob (tar, tar+gzip, tar+zstd) at `path`. `report` may be NULL. */
STRATA_C_API int32_t strata_ingest_path(strata_store* store, const char* path,
                                        const strata_ingest_options* options,
                                        strata_ingest_report* report, strata_error* err);
/* From an open file descriptor (a file, read from its start; or a pipe). Not closed here. */
STRATA_C_API int32_t strata_ingest_fd(strata_store* store, int fd,
                                      const strata_ingest_options* options,
                                      strata_ingest_report* report, strata_error* err);
/* From a read callback, called on the caller's thread until it returns 0. The bytes are spooled
 * to an unlinked temporary file in the store's directory first, so a callback that fails or
 * returns more than asked (STRATA_E_CALLBACK) never leaves anything of the layer committed. */
STRATA_C_API int32_t strata_ingest_reader(strata_store* store, strata_read_fn read, void* user,
                                          const strata_ingest_options* options,
                                          strata_ingest_report* report, strata_error* err);

/* ---- 4. export ------------------------------------------------------------------------------ */

typedef enum strata_layer_format {
  STRATA_FORMAT_TAR = 0,
  STRATA_FORMAT_GZIP = 1,
  STRATA_FORMAT_ZSTD = 2,
  STRATA_FORMAT_ZSTD_CHUNKED = 3,
  STRATA_FORMAT_ZSTD_CHUNKED_V1 = 4,
  STRATA_FORMAT_ESTARGZ = 5
} strata_layer_format;

typedef struct strata_export_options {
  size_t struct_size;
  int32_t format;   /* strata_layer_format */
  int32_t level;    /* 0: the format's default */
  uint32_t threads; /* 0: one per hardware thread */
} strata_export_options;

typedef struct strata_export_report {
  size_t struct_size;
  char media_type[128];
  char digest[STRATA_DIGEST_CHARS];  /* of the blob written */
  uint64_t size;                     /* of the blob written */
  char diff_id[STRATA_DIGEST_CHARS]; /* of its tar (eStargz: the new tar's) */
  uint64_t tar_bytes;
  /* The layer annotations a manifest needs (zstd:chunked, eStargz), as one JSON object; "{}" for
   * the other formats. */
  char annotations_json[2048];
} strata_export_report;

/* Writes the stored layer `layer` (its diff_id or a blob digest it was ingested from) in the
 * format options->format (NULL: zstd:chunked) to `fd` (not closed) or `write`. Every chunk is
 * verified; the tar must hash to the recorded diff_id. */
STRATA_C_API int32_t strata_export_fd(strata_store* store, const char* layer,
                                      const strata_export_options* options, int fd,
                                      strata_export_report* report, strata_error* err);
STRATA_C_API int32_t strata_export_writer(strata_store* store, const char* layer,
                                          const strata_export_options* options,
                                          strata_write_fn write, void* user,
                                          strata_export_report* report, strata_error* err);

/* ---- 5. registries: image pull, model package / push / pull --------------------------------- */

typedef struct strata_registry_options {
  size_t struct_size;
  uint32_t plain_http; /* http:// instead of https:// */
  uint32_t tls_skip_verify;
  const char* username; /* NULL: credentials from auth.json files, if any */
  const char* password;
} strata_registry_options;

typedef struct strata_pull_options {
  size_t struct_size;
  uint32_t whole_layers;    /* non-zero: never pull chunked layers by range */
  uint32_t jobs;            /* 0: 4 */
  const char* os;           /* NULL: "linux" */
  const char* architecture; /* NULL: "amd64" */
} strata_pull_options;

typedef struct strata_pull_report {
  size_t struct_size;
  char manifest_digest[STRATA_DIGEST_CHARS];
  uint64_t layers;
  uint64_t layers_already_present;
  uint64_t layers_chunked; /* pulled by range requests */
  uint64_t layer_bytes;    /* sum of the layers' sizes */
  uint64_t bytes_fetched;  /* blob bytes received */
  uint64_t chunks_local;
  uint64_t chunks_fetched;
  uint64_t new_chunks;
} strata_pull_report;

/* Pulls "host[:port]/repo[:tag][@digest]" into `store`: chunked layers (zstd:chunked, eStargz)
 * by range requests for only the chunks the store lacks, others whole. */
STRATA_C_API int32_t strata_image_pull(strata_store* store, const char* reference,
                                       const strata_registry_options* registry,
                                       const strata_pull_options* options,
                                       strata_pull_report* report, strata_error* err);

typedef struct strata_unpack_report {
  size_t struct_size;
  uint64_t layers;
  uint64_t entries; /* tar entries read, whiteouts included */
  uint64_t files;
  uint64_t directories;
  uint64_t symlinks;
  uint64_t hard_links;
  uint64_t whiteouts; /* ".wh.<name>" and ".wh..wh..opq" applied */
  uint64_t bytes_written;
  double seconds; /* applying layers, mostly while later layers were still being fetched */
} strata_unpack_report;

/* strata_image_pull, and the image's rootfs written into `directory` (ABI minor 2): each layer is
 * applied as soon as it and every layer below it are in `store`, while later ones are fetched,
 * with the OCI whiteout rules and never a write outside the tree (entries or hard links with ".."
 * or an absolute path are refused; devices are skipped). `directory` must be absent or an empty
 * directory; the tree is built in "<directory>.partial-<hex>" beside it and renamed into place
 * only once every layer is applied and its diff_id verified: after any failure nothing is at
 * `directory` and the partial tree is gone. `report` and `unpacked` may be NULL. */
STRATA_C_API int32_t strata_image_pull_unpack(strata_store* store, const char* reference,
                                              const strata_registry_options* registry,
                                              const strata_pull_options* options,
                                              const char* directory, strata_pull_report* report,
                                              strata_unpack_report* unpacked, strata_error* err);

typedef struct strata_pull_plan {
  size_t struct_size;
  uint64_t layers;
  uint64_t layers_chunked;
  uint64_t chunks;
  uint64_t chunks_local;
  uint64_t chunks_missing;
  uint64_t fetch_bytes; /* ranges the pull would fetch, metadata included; whole layers' sizes */
} strata_pull_plan;

/* Plans the pull of image `tag` of the OCI layout directory `layout` against `store`, and with
 * `run` non-zero runs it (layers rebuilt, checked and ingested). */
STRATA_C_API int32_t strata_layout_pull(strata_store* store, const char* layout, const char* tag,
                                        uint32_t run, strata_pull_plan* plan, strata_error* err);

/* One layer of a registry pull plan (strata_image_pull_plan). */
typedef struct strata_layer_plan {
  size_t struct_size;
  uint32_t index;                    /* the layer's position in the manifest, from 0 */
  char digest[STRATA_DIGEST_CHARS];  /* the layer blob, as the manifest names it */
  char diff_id[STRATA_DIGEST_CHARS]; /* of its tar, from the image config */
  uint64_t size;                     /* of the blob */
  uint32_t already_present;          /* the store holds the layer: nothing is fetched */
  uint32_t chunked;                  /* fetched by range requests for the missing chunks only */
  char chunked_format[32];           /* "zstd:chunked", "zstd:chunked-v1", "estargz"; "" whole */
  char whole_reason[256];            /* why the layer would be fetched whole ("" otherwise) */
  /* Blob bytes the pull would fetch for this layer: 0 when present, `size` when whole, else the
   * TOC reads plus the planned ranges. */
  uint64_t fetch_bytes;
  uint64_t metadata_bytes; /* footer / TOC / tar-split, read by the planning itself */
  uint64_t chunks;         /* chunked layers: chunks the TOC names, */
  uint64_t chunks_local;   /* those the store has (or zeros made locally), */
  uint64_t chunks_missing; /* and those fetched */
  uint64_t ranges;         /* merged byte ranges fetched */
} strata_layer_plan;

/* Called once per layer, in manifest order; `layer` is valid during the call. */
typedef int32_t (*strata_layer_plan_fn)(void* user, const strata_layer_plan* layer);

typedef struct strata_image_plan {
  size_t struct_size;
  char manifest_digest[STRATA_DIGEST_CHARS]; /* the image manifest (an index resolved) */
  uint64_t layers;
  uint64_t layers_already_present;
  uint64_t layers_chunked;
  uint64_t chunks;
  uint64_t chunks_local;
  uint64_t chunks_missing;
  uint64_t layer_bytes; /* sum of the layers' sizes */
  uint64_t fetch_bytes; /* sum of the layers' fetch_bytes */
  uint64_t image_bytes; /* manifest (index included) and config, which a pull fetches too */
  uint64_t plan_bytes;  /* what the planning itself received (image_bytes and the TOC reads) */
} strata_image_plan;

/* Which bytes a pull of "host[:port]/repo[:tag][@digest]" into `store` would fetch, without
 * fetching a layer: the manifest and config are fetched, and each chunked layer's TOC (range
 * requests) to plan it against the store, as strata_image_pull does before it fetches. The store
 * is only read. `options` as for strata_image_pull (whole_layers, os, architecture, jobs).
 * `on_layer` (may be NULL) gets each layer's plan; `plan` (may be NULL) the totals. */
STRATA_C_API int32_t strata_image_pull_plan(strata_store* store, const char* reference,
                                            const strata_registry_options* registry,
                                            const strata_pull_options* options,
                                            strata_layer_plan_fn on_layer, void* user,
                                            strata_image_plan* plan, strata_error* err);

typedef enum strata_model_format {
  STRATA_MODEL_DOCKER = 0,
  STRATA_MODEL_MODELPACK = 1
} strata_model_format;

typedef struct strata_model_package_options {
  size_t struct_size;
  int32_t format;      /* strata_model_format */
  strata_store* store; /* weights also ingested here; NULL: none */
  uint32_t threads;
} strata_model_package_options;

typedef struct strata_model_package_report {
  size_t struct_size;
  char manifest_digest[STRATA_DIGEST_CHARS];
  uint64_t files;
  uint64_t weight_files;
  uint64_t total_bytes;
  uint64_t weight_bytes;
} strata_model_package_report;

/* Packages `source` (a directory or a .gguf file) into the OCI layout `layout` tagged `tag`. */
STRATA_C_API int32_t strata_model_package(const char* source, const char* layout, const char* tag,
                                          const strata_model_package_options* options,
                                          strata_model_package_report* report, strata_error* err);

typedef struct strata_model_push_report {
  size_t struct_size;
  char manifest_digest[STRATA_DIGEST_CHARS];
  uint64_t blobs_uploaded;
  uint64_t blobs_skipped;
  uint64_t bytes_uploaded;
} strata_model_push_report;

STRATA_C_API int32_t strata_model_push(const char* layout, const char* tag, const char* reference,
                                       const strata_registry_options* registry,
                                       strata_model_push_report* report, strata_error* err);

typedef struct strata_model_pull_report {
  size_t struct_size;
  char manifest_digest[STRATA_DIGEST_CHARS];
  uint64_t files;
  uint64_t total_bytes;   /* sum of the layers' sizes */
  uint64_t bytes_fetched; /* blob bytes received */
  uint64_t chunks;
  uint64_t chunks_fetched;
} strata_model_pull_report;

/* Pulls the model `reference` into `store` (and its files into `out_directory` unless NULL):
 * only the chunks the store lacks are fetched. */
STRATA_C_API int32_t strata_model_pull(strata_store* store, const char* reference,
                                       const strata_registry_options* registry,
                                       const char* out_directory, strata_model_pull_report* report,
                                       strata_error* err);

#ifdef __cplusplus
}
#endif

#endif /* STRATA_STRATA_C_H */
