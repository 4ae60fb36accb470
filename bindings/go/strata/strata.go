// Package strata is the Go binding of strata's C ABI (include/strata/strata_c.h, libstrata.so.1)
// through cgo: open a chunk store, ingest a layer (path, *os.File or io.Reader), write a stored
// layer as tar, gzip, zstd, zstd:chunked or eStargz (to an *os.File or an io.Writer), package,
// push and pull a model. It is the shape of a registry's push hook or a builder's exporter: a
// layer in, its zstd:chunked form and annotations out, chunks deduplicated in the store. Errors
// are *Error carrying the C status code. Build with CGO_CFLAGS=-I<strata>/include and
// CGO_LDFLAGS=-L<dir of libstrata.so> (bindings/go/CMakeLists.txt sets both for go test).
package strata

/*
#cgo LDFLAGS: -l:libstrata.so.1
#include <stdlib.h>
#include "strata/strata_c.h"

int32_t strata_go_ingest_reader(strata_store* store, uintptr_t handle,
                                const strata_ingest_options* options, strata_ingest_report* report,
                                strata_error* err);
int32_t strata_go_export_writer(strata_store* store, const char* layer,
                                const strata_export_options* options, uintptr_t handle,
                                strata_export_report* report, strata_error* err);
*/
import "C"

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/cgo"
	"unsafe"
)

// Status codes of the C ABI.
const (
	InvalidArgument = 1
	IO              = 2
	CorruptInput    = 3
	Unsupported     = 4
	LimitExceeded   = 5
	NotFound        = 6
	DigestMismatch  = 7
	UnsafePath      = 8
	Internal        = 9
	BadHandle       = 64
	Callback        = 65
	OutOfMemory     = 66
)

// Error is a failed strata call: the C status and its message; Cause is what a Go callback
// (reader or writer) returned when that made the call fail.
type Error struct {
	Code    int
	Name    string
	Message string
	Cause   error
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("strata: %s: %s (%v)", e.Name, e.Message, e.Cause)
	}
	return fmt.Sprintf("strata: %s: %s", e.Name, e.Message)
}

func (e *Error) Unwrap() error { return e.Cause }

func newError() *C.strata_error {
	err := (*C.strata_error)(C.calloc(1, C.size_t(unsafe.Sizeof(C.strata_error{}))))
	err.struct_size = C.size_t(unsafe.Sizeof(C.strata_error{}))
	return err
}

func check(code C.int32_t, err *C.strata_error, cause error) error {
	defer C.free(unsafe.Pointer(err))
	if code == 0 {
		return nil
	}
	return &Error{Code: int(code), Name: C.GoString(C.strata_status_name(code)),
		Message: C.GoString(&err.message[0]), Cause: cause}
}

// Version is the library's version; ABIVersion is major*1000+minor of its C ABI.
func Version() string    { return C.GoString(C.strata_version_string()) }
func ABIVersion() uint32 { return uint32(C.strata_abi_version()) }

// Store is an open chunk store. Methods after Close fail with BadHandle.
type Store struct {
	handle *C.strata_store
}

// Open opens the store at path, creating it when create is set.
func Open(path string, create bool) (*Store, error) {
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var options C.strata_store_options
	options.struct_size = C.size_t(unsafe.Sizeof(options))
	if create {
		options.create_if_missing = 1
	}
	store := &Store{}
	err := newError()
	if e := check(C.strata_store_open(cpath, &options, &store.handle, err), err, nil); e != nil {
		return nil, e
	}
	return store, nil
}

// Close closes the store; the handle stays refused afterwards.
func (s *Store) Close() error {
	err := newError()
	return check(C.strata_store_close(s.handle, err), err, nil)
}

// Stats of the store.
type Stats struct{ Chunks, Layers, RawBytes, StoredBytes, Packs uint64 }

func (s *Store) Stats() (Stats, error) {
	var out C.strata_store_stats
	out.struct_size = C.size_t(unsafe.Sizeof(out))
	err := newError()
	if e := check(C.strata_store_stats_get(s.handle, &out, err), err, nil); e != nil {
		return Stats{}, e
	}
	return Stats{uint64(out.chunks), uint64(out.layers), uint64(out.raw_bytes),
		uint64(out.stored_bytes), uint64(out.packs)}, nil
}

// IngestReport describes one ingest.
type IngestReport struct {
	DiffID, LayerDigest, Compression string
	InputBytes, TarBytes, Chunks     uint64
	NewChunks, NewStoredBytes        uint64
	AlreadyPresent                   bool
}

func ingestReport(r *C.strata_ingest_report) IngestReport {
	return IngestReport{C.GoString(&r.diff_id[0]), C.GoString(&r.layer_digest[0]),
		C.GoString(&r.compression[0]), uint64(r.input_bytes), uint64(r.tar_bytes),
		uint64(r.chunks), uint64(r.new_chunks), uint64(r.new_stored_bytes), r.already_present != 0}
}

func newIngestReport() C.strata_ingest_report {
	var r C.strata_ingest_report
	r.struct_size = C.size_t(unsafe.Sizeof(r))
	return r
}

// IngestPath ingests the layer blob (tar, tar+gzip, tar+zstd) at path.
func (s *Store) IngestPath(path string) (IngestReport, error) {
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	report := newIngestReport()
	err := newError()
	if e := check(C.strata_ingest_path(s.handle, cpath, nil, &report, err), err, nil); e != nil {
		return IngestReport{}, e
	}
	return ingestReport(&report), nil
}

// IngestFile ingests from an open file (from its start) or a pipe.
func (s *Store) IngestFile(f *os.File) (IngestReport, error) {
	report := newIngestReport()
	err := newError()
	code := C.strata_ingest_fd(s.handle, C.int(f.Fd()), nil, &report, err)
	runtime.KeepAlive(f)
	if e := check(code, err, nil); e != nil {
		return IngestReport{}, e
	}
	return ingestReport(&report), nil
}

type readerState struct {
	r   io.Reader
	err error
}

//export stratagoRead
func stratagoRead(handle C.uintptr_t, buffer *C.uint8_t, capacity C.size_t) C.int64_t {
	state := cgo.Handle(handle).Value().(*readerState)
	out := unsafe.Slice((*byte)(unsafe.Pointer(buffer)), int(capacity))
	for {
		n, err := state.r.Read(out)
		if n > len(out) {
			state.err = fmt.Errorf("reader returned %d bytes for a buffer of %d", n, len(out))
			return C.int64_t(n)
		}
		if n > 0 {
			return C.int64_t(n)
		}
		if err == io.EOF {
			return 0
		}
		if err != nil {
			state.err = err
			return -1
		}
	}
}

// IngestReader ingests the layer blob read from r (spooled beside the store first).
func (s *Store) IngestReader(r io.Reader) (IngestReport, error) {
	state := &readerState{r: r}
	handle := cgo.NewHandle(state)
	defer handle.Delete()
	report := newIngestReport()
	err := newError()
	code := C.strata_go_ingest_reader(s.handle, C.uintptr_t(handle), nil, &report, err)
	if e := check(code, err, state.err); e != nil {
		return IngestReport{}, e
	}
	return ingestReport(&report), nil
}

// Layer formats of Export.
const (
	FormatTar           = 0
	FormatGzip          = 1
	FormatZstd          = 2
	FormatZstdChunked   = 3
	FormatZstdChunkedV1 = 4
	FormatEstargz       = 5
)

// ExportReport describes the blob written: what a manifest's layer descriptor needs.
type ExportReport struct {
	MediaType   string
	Digest      string
	Size        uint64
	DiffID      string
	TarBytes    uint64
	Annotations map[string]string
}

func exportReport(r *C.strata_export_report) (ExportReport, error) {
	out := ExportReport{MediaType: C.GoString(&r.media_type[0]), Digest: C.GoString(&r.digest[0]),
		Size: uint64(r.size), DiffID: C.GoString(&r.diff_id[0]), TarBytes: uint64(r.tar_bytes)}
	if err := json.Unmarshal([]byte(C.GoString(&r.annotations_json[0])), &out.Annotations); err != nil {
		return ExportReport{}, err
	}
	return out, nil
}

func exportOptions(format int) C.strata_export_options {
	var options C.strata_export_options
	options.struct_size = C.size_t(unsafe.Sizeof(options))
	options.format = C.int32_t(format)
	return options
}

type writerState struct {
	w   io.Writer
	err error
}

//export stratagoWrite
func stratagoWrite(handle C.uintptr_t, data *C.uint8_t, length C.size_t) C.int32_t {
	state := cgo.Handle(handle).Value().(*writerState)
	bytes := unsafe.Slice((*byte)(unsafe.Pointer(data)), int(length))
	if _, err := state.w.Write(bytes); err != nil {
		state.err = err
		return -1
	}
	return 0
}

// Export writes the stored layer (diff_id or blob digest) in `format` to w.
func (s *Store) Export(layer string, format int, w io.Writer) (ExportReport, error) {
	clayer := C.CString(layer)
	defer C.free(unsafe.Pointer(clayer))
	options := exportOptions(format)
	state := &writerState{w: w}
	handle := cgo.NewHandle(state)
	defer handle.Delete()
	var report C.strata_export_report
	report.struct_size = C.size_t(unsafe.Sizeof(report))
	err := newError()
	code := C.strata_go_export_writer(s.handle, clayer, &options, C.uintptr_t(handle), &report, err)
	if e := check(code, err, state.err); e != nil {
		return ExportReport{}, e
	}
	return exportReport(&report)
}

// ExportFile writes the stored layer in `format` to f.
func (s *Store) ExportFile(layer string, format int, f *os.File) (ExportReport, error) {
	clayer := C.CString(layer)
	defer C.free(unsafe.Pointer(clayer))
	options := exportOptions(format)
	var report C.strata_export_report
	report.struct_size = C.size_t(unsafe.Sizeof(report))
	err := newError()
	code := C.strata_export_fd(s.handle, clayer, &options, C.int(f.Fd()), &report, err)
	runtime.KeepAlive(f)
	if e := check(code, err, nil); e != nil {
		return ExportReport{}, e
	}
	return exportReport(&report)
}

// Registry says how to reach a registry.
type Registry struct {
	PlainHTTP     bool
	TLSSkipVerify bool
	Username      string // empty: credentials from auth.json files, if any
	Password      string
}

// registryOptions fills C options; free releases the C strings.
func (r Registry) options() (C.strata_registry_options, func()) {
	var options C.strata_registry_options
	options.struct_size = C.size_t(unsafe.Sizeof(options))
	if r.PlainHTTP {
		options.plain_http = 1
	}
	if r.TLSSkipVerify {
		options.tls_skip_verify = 1
	}
	var strings []*C.char
	if r.Username != "" || r.Password != "" {
		options.username = C.CString(r.Username)
		options.password = C.CString(r.Password)
		strings = append(strings, options.username, options.password)
	}
	return options, func() {
		for _, s := range strings {
			C.free(unsafe.Pointer(s))
		}
	}
}

// ModelPackage packages source (a directory or a .gguf file) into the OCI layout tagged tag,
// ingesting its weights into store when not nil.
func ModelPackage(source, layout, tag string, store *Store) (string, error) {
	csource, clayout, ctag := C.CString(source), C.CString(layout), C.CString(tag)
	defer C.free(unsafe.Pointer(csource))
	defer C.free(unsafe.Pointer(clayout))
	defer C.free(unsafe.Pointer(ctag))
	var options C.strata_model_package_options
	options.struct_size = C.size_t(unsafe.Sizeof(options))
	if store != nil {
		options.store = store.handle
	}
	var report C.strata_model_package_report
	report.struct_size = C.size_t(unsafe.Sizeof(report))
	err := newError()
	code := C.strata_model_package(csource, clayout, ctag, &options, &report, err)
	if e := check(code, err, nil); e != nil {
		return "", e
	}
	return C.GoString(&report.manifest_digest[0]), nil
}

// ModelPush pushes the model tagged tag in layout (and its chunk index) to reference.
func ModelPush(layout, tag, reference string, registry Registry) (string, error) {
	clayout, ctag, creference := C.CString(layout), C.CString(tag), C.CString(reference)
	defer C.free(unsafe.Pointer(clayout))
	defer C.free(unsafe.Pointer(ctag))
	defer C.free(unsafe.Pointer(creference))
	options, free := registry.options()
	defer free()
	var report C.strata_model_push_report
	report.struct_size = C.size_t(unsafe.Sizeof(report))
	err := newError()
	code := C.strata_model_push(clayout, ctag, creference, &options, &report, err)
	if e := check(code, err, nil); e != nil {
		return "", e
	}
	return C.GoString(&report.manifest_digest[0]), nil
}

// ModelPullReport describes a model pull.
type ModelPullReport struct {
	ManifestDigest                  string
	Files, TotalBytes, BytesFetched uint64
	Chunks, ChunksFetched           uint64
}

// ModelPull pulls the model at reference into the store (and its files into outDirectory unless
// empty), fetching only the chunks the store lacks.
func (s *Store) ModelPull(reference string, registry Registry, outDirectory string) (ModelPullReport, error) {
	creference := C.CString(reference)
	defer C.free(unsafe.Pointer(creference))
	var cout *C.char
	if outDirectory != "" {
		cout = C.CString(outDirectory)
		defer C.free(unsafe.Pointer(cout))
	}
	options, free := registry.options()
	defer free()
	var report C.strata_model_pull_report
	report.struct_size = C.size_t(unsafe.Sizeof(report))
	err := newError()
	code := C.strata_model_pull(s.handle, creference, &options, cout, &report, err)
	if e := check(code, err, nil); e != nil {
		return ModelPullReport{}, e
	}
	return ModelPullReport{C.GoString(&report.manifest_digest[0]), uint64(report.files),
		uint64(report.total_bytes), uint64(report.bytes_fetched), uint64(report.chunks),
		uint64(report.chunks_fetched)}, nil
}
