// C side of the Go package's callbacks: strata_c.h wants C function pointers, Go can export only
// functions, so these trampolines pass the cgo.Handle of a Go io.Reader / io.Writer (as the
// callback's `user` value) to the exported Go functions stratagoRead / stratagoWrite.
#include <stdint.h>

#include "_cgo_export.h"
#include "strata/strata_c.h"

static int64_t strata_go_read(void* user, uint8_t* buffer, size_t capacity) {
  return stratagoRead((uintptr_t)user, buffer, capacity);
}

static int32_t strata_go_write(void* user, const uint8_t* data, size_t length) {
  return stratagoWrite((uintptr_t)user, (uint8_t*)data, length);
}

int32_t strata_go_ingest_reader(strata_store* store, uintptr_t handle,
                                const strata_ingest_options* options, strata_ingest_report* report,
                                strata_error* err) {
  return strata_ingest_reader(store, strata_go_read, (void*)handle, options, report, err);
}

int32_t strata_go_export_writer(strata_store* store, const char* layer,
                                const strata_export_options* options, uintptr_t handle,
                                strata_export_report* report, strata_error* err) {
  return strata_export_writer(store, layer, options, strata_go_write, (void*)handle, report, err);
}
