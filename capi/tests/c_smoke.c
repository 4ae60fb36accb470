/* The C ABI from a C99 program (include/strata/strata_c.h compiled as C, -pedantic -Werror):
 * version, chunking a buffer, a store opened, a layer ingested from a read callback and exported
 * as zstd:chunked through a write callback, and a closed handle refused. Exits non-zero on any
 * failure. Usage: c_smoke SCRATCH_DIR TAR_FILE */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strata/strata_c.h"

static int fail(const char* what, const strata_error* err) {
  fprintf(stderr, "FAIL %s: %s %s\n", what, strata_status_name(err->code), err->message);
  return 1;
}

static int32_t count_chunk(void* user, const strata_chunk* chunk, const uint8_t* bytes) {
  (void)bytes;
  *(uint64_t*)user += chunk->length;
  return 0;
}

static int64_t read_file(void* user, uint8_t* buffer, size_t capacity) {
  size_t n = fread(buffer, 1, capacity, (FILE*)user);
  return ferror((FILE*)user) ? -1 : (int64_t)n;
}

static int32_t count_bytes(void* user, const uint8_t* data, size_t length) {
  (void)data;
  *(uint64_t*)user += length;
  return 0;
}

int main(int argc, char** argv) {
  strata_error err;
  strata_store_options store_options;
  strata_store* store = NULL;
  strata_ingest_report ingest;
  strata_export_report exported;
  strata_store_stats stats;
  static uint8_t data[1 << 20];
  uint64_t total = 0;
  uint64_t written = 0;
  size_t i;
  FILE* tar;
  char path[4096];

  if (argc != 3) return 2;
  STRATA_INIT(err);
  if (strata_abi_version() / 1000 != STRATA_C_ABI_MAJOR) return 1;
  for (i = 0; i < sizeof data; ++i) data[i] = (uint8_t)(i * 2654435761u >> 13);
  if (strata_chunk_buffer(data, sizeof data, NULL, count_chunk, &total, &err) != STRATA_OK) {
    return fail("chunk", &err);
  }
  if (total != sizeof data) return 1;

  snprintf(path, sizeof path, "%s/store", argv[1]);
  STRATA_INIT(store_options);
  store_options.create_if_missing = 1;
  if (strata_store_open(path, &store_options, &store, &err) != STRATA_OK) return fail("open", &err);
  tar = fopen(argv[2], "rb");
  if (tar == NULL) return 1;
  STRATA_INIT(ingest);
  if (strata_ingest_reader(store, read_file, tar, NULL, &ingest, &err) != STRATA_OK) {
    return fail("ingest", &err);
  }
  fclose(tar);
  STRATA_INIT(exported);
  if (strata_export_writer(store, ingest.diff_id, NULL, count_bytes, &written, &exported, &err) !=
      STRATA_OK) {
    return fail("export", &err);
  }
  if (written != exported.size || strcmp(exported.diff_id, ingest.diff_id) != 0) return 1;
  if (strata_store_close(store, &err) != STRATA_OK) return fail("close", &err);
  STRATA_INIT(stats);
  if (strata_store_stats_get(store, &stats, &err) != STRATA_E_BAD_HANDLE) return 1;
  printf("ok: %s -> %s (%llu bytes)\n", ingest.diff_id, exported.digest,
         (unsigned long long)exported.size);
  return 0;
}
