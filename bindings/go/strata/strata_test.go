// Tests of the Go binding through libstrata.so.1: a layer ingested and written in its
// zstd:chunked form (to an io.Writer and to a file, checked by ingesting it into another store),
// the shape of a registry push hook or a builder's exporter; a model packaged, pushed to
// docker-registry and pulled with only the chunks a store lacks (skipped without
// docker-registry); and errors with the C status code: a closed store, a reader and a writer that
// fail, a missing layer.
package strata

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

func randomBytes(seed int64, n int) []byte {
	out := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(out)
	return out
}

func layerTar(t *testing.T) []byte {
	var buf bytes.Buffer
	w := tar.NewWriter(&buf)
	files := []struct {
		name string
		data []byte
	}{{"big.bin", randomBytes(1, 600000)}, {"etc/hello", []byte("hello\n")}, {"etc/small", randomBytes(2, 3000)}}
	for _, f := range files {
		if err := w.WriteHeader(&tar.Header{Name: f.name, Mode: 0644, Size: int64(len(f.data)), ModTime: time.Unix(0, 0), Format: tar.FormatPAX}); err != nil {
			t.Fatal(err)
		}
		w.Write(f.data)
	}
	w.Close()
	return buf.Bytes()
}

func open(t *testing.T, path string) *Store {
	store, err := Open(path, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store
}

func code(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return -1
}

func TestIngestAndWriteZstdChunked(t *testing.T) {
	if ABIVersion()/1000 != 1 || Version() == "" {
		t.Fatal("version")
	}
	dir := t.TempDir()
	layer := layerTar(t)
	store := open(t, filepath.Join(dir, "store"))
	ingested, err := store.IngestReader(bytes.NewReader(layer))
	if err != nil {
		t.Fatal(err)
	}
	if ingested.NewChunks == 0 || ingested.Compression != "none" {
		t.Fatalf("ingest report %+v", ingested)
	}
	// A push hook: the layer's zstd:chunked blob to a writer, descriptor fields in the report.
	var blob bytes.Buffer
	report, err := store.Export(ingested.DiffID, FormatZstdChunked, &blob)
	if err != nil {
		t.Fatal(err)
	}
	if uint64(blob.Len()) != report.Size || report.DiffID != ingested.DiffID {
		t.Fatalf("export report %+v for %d bytes", report, blob.Len())
	}
	if _, ok := report.Annotations["io.github.containers.zstd-chunked.manifest-checksum"]; !ok {
		t.Fatalf("annotations %v", report.Annotations)
	}
	// The same blob to a file, read back by another store as the same layer.
	path := filepath.Join(dir, "layer.zst")
	f, _ := os.Create(path)
	fileReport, err := store.ExportFile(ingested.DiffID, FormatZstdChunked, f)
	f.Close()
	if err != nil || fileReport.Digest != report.Digest {
		t.Fatalf("export to file: %v %+v", err, fileReport)
	}
	other := open(t, filepath.Join(dir, "other"))
	back, err := other.IngestPath(path)
	if err != nil || back.DiffID != ingested.DiffID || back.LayerDigest != report.Digest || back.Compression != "zstd" {
		t.Fatalf("re-ingest: %v %+v", err, back)
	}
	f, _ = os.Open(path)
	again, err := other.IngestFile(f)
	f.Close()
	if err != nil || !again.AlreadyPresent {
		t.Fatalf("ingest from file: %v %+v", err, again)
	}
	var tarOut bytes.Buffer
	if _, err := other.Export(back.DiffID, FormatTar, &tarOut); err != nil || !bytes.Equal(tarOut.Bytes(), layer) {
		t.Fatalf("tar export: %v", err)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

type failingReader struct{ n int }

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n > 0 {
		return 0, errors.New("connection reset")
	}
	r.n++
	return copy(p, make([]byte, 100)), nil
}

func TestErrorsCarryTheCode(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(filepath.Join(dir, "absent"), false); code(err) != NotFound && code(err) != IO {
		t.Fatalf("open absent: %v", err)
	}
	store := open(t, filepath.Join(dir, "store"))
	if _, err := store.IngestReader(&failingReader{}); code(err) != Callback || !errors.Is(err, err.(*Error).Cause) || err.(*Error).Cause.Error() != "connection reset" {
		t.Fatalf("failing reader: %v", err)
	}
	if _, err := store.Export("sha256:"+string(bytes.Repeat([]byte("a"), 64)), FormatTar, io.Discard); code(err) != NotFound {
		t.Fatalf("missing layer: %v", err)
	}
	if _, err := store.Export("nonsense", FormatTar, io.Discard); code(err) != InvalidArgument {
		t.Fatalf("bad digest: %v", err)
	}
	ingested, err := store.IngestReader(bytes.NewReader(layerTar(t)))
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []int{FormatTar, FormatGzip, FormatZstdChunked, FormatEstargz} {
		if _, err := store.Export(ingested.DiffID, format, failingWriter{}); code(err) != Callback {
			t.Fatalf("failing writer, format %d: %v", format, err)
		}
	}
	if _, err := store.Export(ingested.DiffID, 42, io.Discard); code(err) != InvalidArgument {
		t.Fatalf("unknown format: %v", err)
	}
	store.Close()
	if _, err := store.Stats(); code(err) != BadHandle {
		t.Fatalf("stats after close: %v", err)
	}
	if err := store.Close(); code(err) != BadHandle {
		t.Fatalf("double close: %v", err)
	}
}

func writeSafetensors(t *testing.T, path string) {
	header := map[string]any{"__metadata__": map[string]string{"format": "pt"}}
	var data []byte
	for i, name := range []string{"a", "b", "c", "d"} {
		tensor := randomBytes(int64(10+i), 65536)
		header[name] = map[string]any{"dtype": "F32", "shape": []int{16384}, "data_offsets": []int{len(data), len(data) + len(tensor)}}
		data = append(data, tensor...)
	}
	text, _ := json.Marshal(header)
	for len(text)%8 != 0 {
		text = append(text, ' ')
	}
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(text)))
	out = append(append(out, text...), data...)
	if err := os.WriteFile(path, out, 0644); err != nil {
		t.Fatal(err)
	}
}

// startRegistry runs docker-registry on a free loopback port; returns host:port.
func startRegistry(t *testing.T, dir string) string {
	binary, err := exec.LookPath("docker-registry")
	if err != nil {
		t.Skip("docker-registry is not installed (scripts/install-deps.sh installs it)")
	}
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := listener.Addr().(*net.TCPAddr).Port
	listener.Close()
	config := filepath.Join(dir, "registry.yml")
	os.WriteFile(config, []byte(fmt.Sprintf("version: 0.1\nlog: {level: warn}\nstorage: {filesystem: {rootdirectory: %s}}\nhttp: {addr: 127.0.0.1:%d}\n", filepath.Join(dir, "registry"), port)), 0644)
	cmd := exec.Command(binary, "serve", config)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	host := fmt.Sprintf("127.0.0.1:%d", port)
	for i := 0; i < 100; i++ {
		if response, err := http.Get("http://" + host + "/v2/"); err == nil {
			response.Body.Close()
			return host
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("docker-registry did not start")
	return ""
}

func TestModelPullOnlyMissingChunks(t *testing.T) {
	dir := t.TempDir()
	host := startRegistry(t, dir)
	os.MkdirAll(filepath.Join(dir, "model"), 0755)
	writeSafetensors(t, filepath.Join(dir, "model", "model.safetensors"))
	os.WriteFile(filepath.Join(dir, "model", "config.json"), []byte("{}"), 0644)
	packager := open(t, filepath.Join(dir, "packager"))
	digest, err := ModelPackage(filepath.Join(dir, "model"), filepath.Join(dir, "layout"), "v1", packager)
	if err != nil {
		t.Fatal(err)
	}
	registry := Registry{PlainHTTP: true}
	reference := host + "/models/m:v1"
	if pushed, err := ModelPush(filepath.Join(dir, "layout"), "v1", reference, registry); err != nil || pushed != digest {
		t.Fatalf("push: %v %s", err, pushed)
	}
	warm, err := packager.ModelPull(reference, registry, "")
	if err != nil || warm.ChunksFetched != 0 || warm.BytesFetched >= warm.TotalBytes/10 {
		t.Fatalf("warm pull: %v %+v", err, warm)
	}
	cold := open(t, filepath.Join(dir, "cold"))
	pulled, err := cold.ModelPull(reference, registry, filepath.Join(dir, "out"))
	if err != nil || pulled.Chunks == 0 || pulled.ChunksFetched != pulled.Chunks {
		t.Fatalf("cold pull: %v %+v", err, pulled)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "out", "model.safetensors"))
	want, _ := os.ReadFile(filepath.Join(dir, "model", "model.safetensors"))
	if !bytes.Equal(got, want) {
		t.Fatal("pulled file differs")
	}
}
