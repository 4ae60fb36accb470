// The C ABI (include/strata/strata_c.h) through the shared libstrata.so.1, as a registry, a builder
// or a binding calls it: chunking (one buffer, streamed), a store, ingest from a path, a file
// descriptor and a read callback, export of a stored layer in every layer format (checked by
// re-ingesting it, and the tar byte for byte), image pulls from a registry and from a layout, and
// a model packaged, served and pulled with only the chunks a store lacks. Then bad input across
// the boundary: NULL pointers, wrong struct sizes, handles used after close or forged, callbacks
// that fail or return too much. Every one must give a status and a message, never a crash (this
// suite also runs under ASan). The registry is tests/hostile_registry.h serving an OCI layout;
// tars come from GNU tar.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "strata/strata_c.h"
#include "tests/hostile_registry.h"
#include "tests/test_support.h"

namespace {

namespace fs = std::filesystem;

class Scratch {
 public:
  Scratch() {
    char name[] = "/tmp/strata_capi_test_XXXXXX";
    if (mkdtemp(name) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = name;
  }
  ~Scratch() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  [[nodiscard]] std::string operator/(const std::string& name) const { return path_ + "/" + name; }
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  std::string path_;
};

void write_bytes(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

void write_text(const std::string& path, const std::string& text) {
  write_bytes(path, std::vector<std::uint8_t>(text.begin(), text.end()));
}

bool shell(const std::string& command) {
  const std::string line = "(" + command + ") >/dev/null 2>&1";
  return std::system(line.c_str()) == 0;
}

// A layer tar of a few files (one big enough for several chunks), made by GNU tar.
std::string make_layer_tar(const Scratch& scratch, const std::string& name, std::uint64_t seed) {
  const std::string root = scratch / (name + ".root");
  fs::create_directories(root + "/etc");
  write_bytes(root + "/big.bin", strata::test::splitmix64_bytes(seed, 600000));
  write_bytes(root + "/etc/small", strata::test::splitmix64_bytes(seed + 1, 3000));
  write_text(root + "/etc/hello", "hello\n");
  const std::string tar = scratch / (name + ".tar");
  EXPECT_TRUE(shell("tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C '" + root +
                    "' -cf '" + tar + "' ."));
  return tar;
}

std::string error_text(const strata_error& err) {
  return std::string(strata_status_name(err.code)) + ": " + err.message;
}

strata_error new_error() {
  strata_error err;
  STRATA_INIT(err);
  return err;
}

struct StoreFixture {
  explicit StoreFixture(const std::string& path) {
    strata_store_options options;
    STRATA_INIT(options);
    options.create_if_missing = 1;
    strata_error err = new_error();
    EXPECT_EQ(strata_store_open(path.c_str(), &options, &store, &err), STRATA_OK)
        << error_text(err);
  }
  ~StoreFixture() { strata_store_close(store, nullptr); }
  StoreFixture(const StoreFixture&) = delete;
  StoreFixture& operator=(const StoreFixture&) = delete;
  strata_store* store = nullptr;
};

struct Collected {
  std::vector<strata_chunk> chunks;
  std::uint64_t bytes = 0;
  int fail_at = -1;  // fail on this chunk index
};

std::int32_t collect_chunk(void* user, const strata_chunk* chunk, const std::uint8_t* bytes) {
  auto* collected = static_cast<Collected*>(user);
  if (static_cast<int>(collected->chunks.size()) == collected->fail_at) return 7;
  collected->chunks.push_back(*chunk);
  collected->bytes += chunk->length;
  (void)bytes;
  return 0;
}

std::int32_t append_bytes(void* user, const std::uint8_t* data, std::size_t length) {
  auto* out = static_cast<std::vector<std::uint8_t>*>(user);
  out->insert(out->end(), data, data + length);
  return 0;
}

std::int32_t failing_write(void*, const std::uint8_t*, std::size_t) {
  return -3;
}

struct Reader {
  std::vector<std::uint8_t> bytes;
  std::size_t offset = 0;
  std::size_t step = 70000;
  int mode = 0;  // 0: honest, 1: fail after the first read, 2: return more than asked
};

std::int64_t read_bytes(void* user, std::uint8_t* buffer, std::size_t capacity) {
  auto* reader = static_cast<Reader*>(user);
  if (reader->mode == 1 && reader->offset > 0) return -1;
  if (reader->mode == 2) return static_cast<std::int64_t>(capacity) + 1;
  const std::size_t n = std::min({capacity, reader->step, reader->bytes.size() - reader->offset});
  std::memcpy(buffer, reader->bytes.data() + reader->offset, n);
  reader->offset += n;
  return static_cast<std::int64_t>(n);
}

std::vector<std::uint8_t> export_bytes(strata_store* store, const char* layer, std::int32_t format,
                                       strata_export_report& report) {
  strata_export_options options;
  STRATA_INIT(options);
  options.format = format;
  STRATA_INIT(report);
  std::vector<std::uint8_t> out;
  strata_error err = new_error();
  EXPECT_EQ(strata_export_writer(store, layer, &options, append_bytes, &out, &report, &err),
            STRATA_OK)
      << error_text(err);
  return out;
}

strata_ingest_report ingest_file(strata_store* store, const std::string& path) {
  strata_ingest_report report;
  STRATA_INIT(report);
  strata_error err = new_error();
  EXPECT_EQ(strata_ingest_path(store, path.c_str(), nullptr, &report, &err), STRATA_OK)
      << error_text(err);
  return report;
}

// ---- happy paths
// ---------------------------------------------------------------------------------

TEST(CApi, VersionAndNames) {
  EXPECT_EQ(strata_abi_version(), STRATA_C_ABI_MAJOR * 1000U + STRATA_C_ABI_MINOR);
  EXPECT_STRNE(strata_version_string(), "");
  EXPECT_STREQ(strata_status_name(STRATA_E_NOT_FOUND), "not_found");
  EXPECT_STREQ(strata_status_name(STRATA_E_BAD_HANDLE), "bad_handle");
  EXPECT_STREQ(strata_status_name(12345), "unknown");
}

TEST(CApi, ChunkBufferEqualsStreamingChunker) {
  const auto data = strata::test::splitmix64_bytes(42, 3U << 20U);
  strata_chunker_options options;
  STRATA_INIT(options);
  strata_error err = new_error();
  ASSERT_EQ(strata_chunker_options_init(&options, STRATA_CHUNK_FASTCDC2020, &err), STRATA_OK);
  EXPECT_EQ(options.avg_size, 64U << 10U);
  options.with_digests = 1;
  Collected whole;
  ASSERT_EQ(strata_chunk_buffer(data.data(), data.size(), &options, collect_chunk, &whole, &err),
            STRATA_OK)
      << error_text(err);
  EXPECT_GT(whole.chunks.size(), 10U);
  EXPECT_EQ(whole.bytes, data.size());
  EXPECT_EQ(std::strlen(whole.chunks[0].digest), 71U);

  strata_chunker* chunker = nullptr;
  ASSERT_EQ(strata_chunker_open(&options, &chunker, &err), STRATA_OK) << error_text(err);
  Collected streamed;
  for (std::size_t offset = 0; offset < data.size(); offset += 100003) {
    const std::size_t n = std::min<std::size_t>(100003, data.size() - offset);
    ASSERT_EQ(strata_chunker_feed(chunker, data.data() + offset, n, collect_chunk, &streamed, &err),
              STRATA_OK);
  }
  ASSERT_EQ(strata_chunker_finish(chunker, collect_chunk, &streamed, &err), STRATA_OK);
  ASSERT_EQ(streamed.chunks.size(), whole.chunks.size());
  for (std::size_t i = 0; i < whole.chunks.size(); ++i) {
    EXPECT_EQ(streamed.chunks[i].offset, whole.chunks[i].offset);
    EXPECT_EQ(streamed.chunks[i].length, whole.chunks[i].length);
    EXPECT_STREQ(streamed.chunks[i].digest, whole.chunks[i].digest);
  }
  EXPECT_EQ(strata_chunker_close(chunker, &err), STRATA_OK);
}

TEST(CApi, IngestThreeWaysAndExportEveryFormat) {
  Scratch scratch;
  const std::string tar = make_layer_tar(scratch, "layer", 7);
  ASSERT_TRUE(shell("gzip -n -k '" + tar + "'"));
  StoreFixture fixture(scratch / "store");
  strata_store* store = fixture.store;

  const auto by_path = ingest_file(store, tar);
  EXPECT_EQ(by_path.already_present, 0U);
  EXPECT_GT(by_path.new_chunks, 0U);
  EXPECT_STREQ(by_path.compression, "none");

  strata_error err = new_error();
  strata_ingest_report by_fd;
  STRATA_INIT(by_fd);
  const int fd = ::open((tar + ".gz").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(strata_ingest_fd(store, fd, nullptr, &by_fd, &err), STRATA_OK) << error_text(err);
  ::close(fd);
  EXPECT_STREQ(by_fd.diff_id, by_path.diff_id);
  EXPECT_STREQ(by_fd.compression, "gzip");
  EXPECT_EQ(by_fd.already_present, 1U);

  Reader reader;
  reader.bytes = strata::test::read_file(tar);
  strata_ingest_report by_reader;
  STRATA_INIT(by_reader);
  ASSERT_EQ(strata_ingest_reader(store, read_bytes, &reader, nullptr, &by_reader, &err), STRATA_OK)
      << error_text(err);
  EXPECT_STREQ(by_reader.diff_id, by_path.diff_id);

  EXPECT_EQ(strata_store_has_layer(store, by_path.diff_id, &err), STRATA_OK);
  strata_store_stats stats;
  STRATA_INIT(stats);
  ASSERT_EQ(strata_store_stats_get(store, &stats, &err), STRATA_OK);
  EXPECT_EQ(stats.layers, 1U);

  // tar: byte for byte.
  strata_export_report report;
  const auto tar_out = export_bytes(store, by_path.diff_id, STRATA_FORMAT_TAR, report);
  EXPECT_EQ(tar_out, reader.bytes);
  EXPECT_STREQ(report.digest, by_path.diff_id);

  // Every compressed format ingests back to the same layer (eStargz: a new tar, new diff_id).
  const std::int32_t formats[] = {STRATA_FORMAT_GZIP, STRATA_FORMAT_ZSTD,
                                  STRATA_FORMAT_ZSTD_CHUNKED, STRATA_FORMAT_ZSTD_CHUNKED_V1,
                                  STRATA_FORMAT_ESTARGZ};
  for (const std::int32_t format : formats) {
    SCOPED_TRACE(format);
    const auto blob = export_bytes(store, by_path.diff_id, format, report);
    EXPECT_EQ(report.size, blob.size());
    const std::string path = scratch / ("out" + std::to_string(format));
    write_bytes(path, blob);
    StoreFixture other(scratch / ("check" + std::to_string(format)));
    const auto back = ingest_file(other.store, path);
    EXPECT_STREQ(back.layer_digest, report.digest);
    EXPECT_STREQ(back.diff_id, report.diff_id);
    if (format == STRATA_FORMAT_ESTARGZ) {
      EXPECT_STRNE(report.diff_id, by_path.diff_id);
      EXPECT_NE(std::string(report.annotations_json).find("toc.digest"), std::string::npos);
    } else {
      EXPECT_STREQ(report.diff_id, by_path.diff_id);
    }
    if (format == STRATA_FORMAT_ZSTD_CHUNKED) {
      EXPECT_NE(std::string(report.annotations_json)
                    .find("io.github.containers.zstd-chunked.manifest-checksum"),
                std::string::npos)
          << report.annotations_json;
    }
  }

  // Export to a file descriptor equals the callback's bytes.
  const std::string fd_out = scratch / "fd.zst";
  const int out = ::open(fd_out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  ASSERT_GE(out, 0);
  strata_export_report fd_report;
  STRATA_INIT(fd_report);
  ASSERT_EQ(strata_export_fd(store, by_path.diff_id, nullptr, out, &fd_report, &err), STRATA_OK)
      << error_text(err);
  ::close(out);
  EXPECT_EQ(strata::test::read_file(fd_out),
            export_bytes(store, by_path.diff_id, STRATA_FORMAT_ZSTD_CHUNKED, report));
}

std::vector<std::uint8_t> safetensors_file(const std::vector<std::string>& names) {
  std::string header = "{\"__metadata__\":{\"format\":\"pt\"}";
  std::vector<std::uint8_t> data;
  std::uint64_t seed = 1;
  for (const std::string& name : names) {
    const auto bytes = strata::test::splitmix64_bytes(seed++, 65536);
    header += ",\"" + name + "\":{\"dtype\":\"F32\",\"shape\":[16384],\"data_offsets\":[" +
              std::to_string(data.size()) + "," + std::to_string(data.size() + bytes.size()) + "]}";
    data.insert(data.end(), bytes.begin(), bytes.end());
  }
  header += "}";
  while (header.size() % 8 != 0) header += ' ';
  std::string out;
  for (unsigned i = 0; i < 8; ++i) out += static_cast<char>(header.size() >> (8U * i));
  out += header;
  out.append(reinterpret_cast<const char*>(data.data()), data.size());
  return {out.begin(), out.end()};
}

TEST(CApi, ModelPackageServeAndPullOnlyMissingChunks) {
  Scratch scratch;
  fs::create_directories(scratch / "model");
  write_bytes(scratch / "model/model.safetensors", safetensors_file({"a", "b", "c", "d"}));
  write_text(scratch / "model/config.json", "{}");
  StoreFixture packager(scratch / "packager-store");
  strata_model_package_options options;
  STRATA_INIT(options);
  options.store = packager.store;
  strata_model_package_report packaged;
  STRATA_INIT(packaged);
  strata_error err = new_error();
  ASSERT_EQ(strata_model_package((scratch / "model").c_str(), (scratch / "layout").c_str(), "v1",
                                 &options, &packaged, &err),
            STRATA_OK)
      << error_text(err);
  EXPECT_EQ(packaged.files, 2U);
  EXPECT_EQ(packaged.weight_files, 1U);

  // The layout tags the chunk index manifest itself with the referrers fallback tag; a registry
  // holds an index of referrers under it (what strata_model_push writes), so serve one.
  const auto layout_index =
      nlohmann::json::parse(strata::test::read_file(scratch / "layout/index.json"));
  const std::string fallback = "sha256-" + std::string(packaged.manifest_digest).substr(7);
  nlohmann::json referrers = {{"schemaVersion", 2},
                              {"mediaType", "application/vnd.oci.image.index.v1+json"},
                              {"manifests", nlohmann::json::array()}};
  for (const auto& entry : layout_index["manifests"]) {
    if (entry["annotations"]["org.opencontainers.image.ref.name"] == fallback) {
      referrers["manifests"].push_back(
          {{"mediaType", entry["mediaType"]},
           {"digest", entry["digest"]},
           {"size", entry["size"]},
           {"artifactType", "application/vnd.strata.model.chunk-index.v1+json"}});
    }
  }
  ASSERT_EQ(referrers["manifests"].size(), 1U);
  strata::testing::HostileRegistry registry(strata::testing::serve_layout(
      scratch / "layout", {},
      {{fallback, {"application/vnd.oci.image.index.v1+json", referrers.dump()}}}));
  const std::string reference = registry.host() + "/models/m:v1";
  strata_registry_options remote;
  STRATA_INIT(remote);
  remote.plain_http = 1;

  // A store that has every chunk (it packaged them) fetches none.
  strata_model_pull_report warm;
  STRATA_INIT(warm);
  ASSERT_EQ(strata_model_pull(packager.store, reference.c_str(), &remote,
                              (scratch / "out-warm").c_str(), &warm, &err),
            STRATA_OK)
      << error_text(err);
  EXPECT_EQ(warm.chunks_fetched, 0U);
  EXPECT_LT(warm.bytes_fetched, warm.total_bytes / 10);
  EXPECT_STREQ(warm.manifest_digest, packaged.manifest_digest);

  // An empty store fetches all of them; the file arrives intact.
  StoreFixture cold(scratch / "cold-store");
  strata_model_pull_report pulled;
  STRATA_INIT(pulled);
  ASSERT_EQ(strata_model_pull(cold.store, reference.c_str(), &remote,
                              (scratch / "out-cold").c_str(), &pulled, &err),
            STRATA_OK)
      << error_text(err);
  EXPECT_GT(pulled.chunks, 0U);
  EXPECT_EQ(pulled.chunks_fetched, pulled.chunks);
  EXPECT_GT(pulled.bytes_fetched, warm.bytes_fetched);
  EXPECT_EQ(strata::test::read_file(scratch / "out-cold/model.safetensors"),
            strata::test::read_file(scratch / "model/model.safetensors"));
}

TEST(CApi, ImagePullFromRegistryAndLayout) {
  const std::string layout = strata::test::testdata_path("oci/layouts/zstd-chunked-skopeo");
  strata::testing::HostileRegistry registry(strata::testing::serve_layout(layout));
  Scratch scratch;
  StoreFixture fixture(scratch / "store");
  strata_registry_options remote;
  STRATA_INIT(remote);
  remote.plain_http = 1;
  strata_pull_report first;
  STRATA_INIT(first);
  strata_error err = new_error();
  ASSERT_EQ(strata_image_pull(fixture.store, (registry.host() + "/img:v1").c_str(), &remote,
                              nullptr, &first, &err),
            STRATA_OK)
      << error_text(err);
  EXPECT_GT(first.layers, 0U);
  EXPECT_EQ(first.layers_chunked, first.layers);
  strata_pull_report second;
  STRATA_INIT(second);
  ASSERT_EQ(strata_image_pull(fixture.store, (registry.host() + "/img:v2").c_str(), &remote,
                              nullptr, &second, &err),
            STRATA_OK)
      << error_text(err);
  EXPECT_GT(second.chunks_local, 0U);

  // The same images as a layout: v1 and v2 are held now, so the plan fetches no chunk.
  strata_pull_plan plan;
  STRATA_INIT(plan);
  ASSERT_EQ(strata_layout_pull(fixture.store, layout.c_str(), "v2", 0, &plan, &err), STRATA_OK)
      << error_text(err);
  EXPECT_EQ(plan.chunks_missing, 0U);
  StoreFixture fresh(scratch / "fresh");
  ASSERT_EQ(strata_layout_pull(fresh.store, layout.c_str(), "v1", 1, &plan, &err), STRATA_OK)
      << error_text(err);
  EXPECT_GT(plan.chunks_missing, 0U);
  strata_store_stats stats;
  STRATA_INIT(stats);
  ASSERT_EQ(strata_store_stats_get(fresh.store, &stats, &err), STRATA_OK);
  EXPECT_EQ(stats.layers, plan.layers);
}

// The rootfs of a pull (ABI minor 2), checked against the entries of the layer's TOC as skopeo
// wrote it (shared/testdata/oci/extracted): every file with its size, the symlink with its target.
TEST(CApi, ImagePullUnpackWritesTheRootfsOrNothing) {
  const std::string layout = strata::test::testdata_path("oci/layouts/zstd-chunked-skopeo");
  strata::testing::HostileRegistry registry(strata::testing::serve_layout(layout));
  Scratch scratch;
  StoreFixture fixture(scratch / "store");
  strata_registry_options remote;
  STRATA_INIT(remote);
  remote.plain_http = 1;
  strata_pull_report pulled;
  STRATA_INIT(pulled);
  strata_unpack_report unpacked;
  STRATA_INIT(unpacked);
  strata_error err = new_error();
  const std::string rootfs = scratch / "rootfs";
  ASSERT_EQ(strata_image_pull_unpack(fixture.store, (registry.host() + "/img:v1").c_str(), &remote,
                                     nullptr, rootfs.c_str(), &pulled, &unpacked, &err),
            STRATA_OK)
      << error_text(err);
  EXPECT_EQ(unpacked.layers, pulled.layers);
  std::ifstream toc_file(
      strata::test::testdata_path("oci/extracted/zstd-chunked-skopeo/v1.layer0.toc.json"));
  const auto toc = nlohmann::json::parse(toc_file);
  std::uint64_t files = 0;
  for (const auto& entry : toc["entries"]) {
    const std::string path = rootfs + "/" + entry["name"].get<std::string>();
    if (entry["type"] == "reg") {
      ++files;
      ASSERT_TRUE(std::filesystem::is_regular_file(path)) << path;
      EXPECT_EQ(std::filesystem::file_size(path), entry.value("size", 0U)) << path;
    } else if (entry["type"] == "symlink") {
      EXPECT_EQ(std::filesystem::read_symlink(path), entry["linkName"].get<std::string>());
    }
  }
  EXPECT_EQ(unpacked.files, files);
  EXPECT_GT(unpacked.bytes_written, 0U);

  // A non-empty directory: refused before anything is fetched, left as it was.
  EXPECT_EQ(strata_image_pull_unpack(fixture.store, (registry.host() + "/img:v2").c_str(), &remote,
                                     nullptr, rootfs.c_str(), nullptr, nullptr, &err),
            STRATA_E_INVALID_ARGUMENT);
  EXPECT_NE(std::string(err.message).find("is not empty"), std::string::npos) << err.message;
  // An unknown tag: an error, and nothing at the directory or beside it.
  const std::string missing = scratch / "missing";
  EXPECT_NE(strata_image_pull_unpack(fixture.store, (registry.host() + "/img:nope").c_str(),
                                     &remote, nullptr, missing.c_str(), nullptr, nullptr, &err),
            STRATA_OK);
  for (const auto& entry : std::filesystem::directory_iterator(scratch.path())) {
    EXPECT_EQ(entry.path().filename().string().rfind("missing", 0), std::string::npos)
        << entry.path();
  }
  EXPECT_EQ(strata_image_pull_unpack(fixture.store, (registry.host() + "/img:v1").c_str(), &remote,
                                     nullptr, nullptr, nullptr, nullptr, &err),
            STRATA_E_INVALID_ARGUMENT);
}

struct LayerPlans {
  std::vector<strata_layer_plan> layers;
  int fail_at = -1;  // fail on this layer index
};

std::int32_t collect_layer_plan(void* user, const strata_layer_plan* layer) {
  auto* plans = static_cast<LayerPlans*>(user);
  if (static_cast<int>(plans->layers.size()) == plans->fail_at) return 5;
  plans->layers.push_back(*layer);
  return 0;
}

strata_image_plan plan_pull(strata_store* store, const std::string& reference,
                            const strata_registry_options& remote, LayerPlans& plans) {
  strata_image_plan plan;
  STRATA_INIT(plan);
  strata_error err = new_error();
  EXPECT_EQ(strata_image_pull_plan(store, reference.c_str(), &remote, nullptr, collect_layer_plan,
                                   &plans, &plan, &err),
            STRATA_OK)
      << error_text(err);
  return plan;
}

TEST(CApi, ImagePullPlanFromRegistryPredictsThePull) {
  const std::string layout = strata::test::testdata_path("oci/layouts/zstd-chunked-skopeo");
  strata::testing::HostileRegistry registry(strata::testing::serve_layout(layout));
  Scratch scratch;
  StoreFixture fixture(scratch / "store");
  strata_registry_options remote;
  STRATA_INIT(remote);
  remote.plain_http = 1;
  const std::string v1 = registry.host() + "/img:v1";
  const std::string v2 = registry.host() + "/img:v2";

  // Cold: every layer chunked, every chunk missing, and the same plan as the layout planner's.
  LayerPlans cold_layers;
  const strata_image_plan cold = plan_pull(fixture.store, v1, remote, cold_layers);
  LayerPlans cold_v2_layers;
  const strata_image_plan cold_v2 = plan_pull(fixture.store, v2, remote, cold_v2_layers);
  ASSERT_GT(cold.layers, 0U);
  ASSERT_EQ(cold_layers.layers.size(), cold.layers);
  EXPECT_EQ(cold.layers_chunked, cold.layers);
  EXPECT_EQ(cold.layers_already_present, 0U);
  EXPECT_GT(cold.chunks_missing, 0U);
  EXPECT_EQ(cold.chunks_local + cold.chunks_missing, cold.chunks);
  EXPECT_GT(cold.image_bytes, 0U);
  EXPECT_GE(cold.plan_bytes, cold.image_bytes);
  std::uint64_t layer_bytes = 0;
  std::uint64_t fetch_bytes = 0;
  for (std::size_t i = 0; i < cold_layers.layers.size(); ++i) {
    const strata_layer_plan& layer = cold_layers.layers[i];
    EXPECT_EQ(layer.index, i);
    EXPECT_EQ(std::string(layer.chunked_format), "zstd:chunked-v1");  // skopeo: no tar-split
    EXPECT_STREQ(layer.whole_reason, "");
    EXPECT_EQ(std::string(layer.digest).substr(0, 7), "sha256:");
    EXPECT_EQ(std::string(layer.diff_id).size(), 71U);
    EXPECT_GT(layer.ranges, 0U);
    EXPECT_GT(layer.metadata_bytes, 0U);
    EXPECT_GT(layer.fetch_bytes, layer.metadata_bytes);
    layer_bytes += layer.size;
    fetch_bytes += layer.fetch_bytes;
  }
  EXPECT_EQ(cold.layer_bytes, layer_bytes);
  EXPECT_EQ(cold.fetch_bytes, fetch_bytes);
  strata_pull_plan from_layout;
  STRATA_INIT(from_layout);
  strata_error err = new_error();
  ASSERT_EQ(strata_layout_pull(fixture.store, layout.c_str(), "v1", 0, &from_layout, &err),
            STRATA_OK)
      << error_text(err);
  EXPECT_EQ(cold.chunks, from_layout.chunks);
  EXPECT_EQ(cold.chunks_missing, from_layout.chunks_missing);
  EXPECT_EQ(cold.fetch_bytes, from_layout.fetch_bytes);

  // Planning only reads the store; the pull then fetches exactly the planned chunks.
  strata_store_stats stats;
  STRATA_INIT(stats);
  ASSERT_EQ(strata_store_stats_get(fixture.store, &stats, &err), STRATA_OK);
  EXPECT_EQ(stats.chunks, 0U);
  strata_pull_report pulled;
  STRATA_INIT(pulled);
  ASSERT_EQ(strata_image_pull(fixture.store, v1.c_str(), &remote, nullptr, &pulled, &err),
            STRATA_OK)
      << error_text(err);
  EXPECT_EQ(pulled.chunks_fetched, cold.chunks_missing);
  EXPECT_EQ(pulled.chunks_local, cold.chunks_local);

  // v2 against v1's chunks: more are local now (zeros count as local even in an empty store),
  // less is fetched, and the pull agrees.
  LayerPlans warm_layers;
  const strata_image_plan warm = plan_pull(fixture.store, v2, remote, warm_layers);
  EXPECT_GT(warm.chunks_local, cold_v2.chunks_local);
  EXPECT_LT(warm.fetch_bytes, cold_v2.fetch_bytes);
  STRATA_INIT(pulled);
  ASSERT_EQ(strata_image_pull(fixture.store, v2.c_str(), &remote, nullptr, &pulled, &err),
            STRATA_OK)
      << error_text(err);
  EXPECT_EQ(pulled.chunks_fetched, warm.chunks_missing);
  EXPECT_EQ(pulled.chunks_local, warm.chunks_local);

  // v1 once more: every layer is in the store, nothing to fetch; whole_layers changes nothing.
  LayerPlans again_layers;
  const strata_image_plan again = plan_pull(fixture.store, v1, remote, again_layers);
  EXPECT_EQ(again.layers_already_present, again.layers);
  EXPECT_EQ(again.fetch_bytes, 0U);
  for (const auto& layer : again_layers.layers) EXPECT_EQ(layer.already_present, 1U);

  // Whole layers on a fresh store: each layer's size, with the reason.
  StoreFixture fresh(scratch / "fresh");
  strata_pull_options whole;
  STRATA_INIT(whole);
  whole.whole_layers = 1;
  LayerPlans whole_layers;
  strata_image_plan whole_plan;
  STRATA_INIT(whole_plan);
  ASSERT_EQ(strata_image_pull_plan(fresh.store, v1.c_str(), &remote, &whole, collect_layer_plan,
                                   &whole_layers, &whole_plan, &err),
            STRATA_OK)
      << error_text(err);
  EXPECT_EQ(whole_plan.fetch_bytes, whole_plan.layer_bytes);
  EXPECT_EQ(whole_plan.layers_chunked, 0U);
  for (const auto& layer : whole_layers.layers) {
    EXPECT_STREQ(layer.whole_reason, "partial pull turned off");
    EXPECT_EQ(layer.fetch_bytes, layer.size);
  }
}

// ---- bad input across the boundary
// ----------------------------------------------------------------

TEST(CApiBadInput, NullPointers) {
  strata_error err = new_error();
  strata_store* store = nullptr;
  EXPECT_EQ(strata_store_open(nullptr, nullptr, &store, &err), STRATA_E_INVALID_ARGUMENT);
  EXPECT_NE(std::string(err.message).find("NULL"), std::string::npos) << err.message;
  EXPECT_EQ(strata_store_open("/tmp", nullptr, nullptr, &err), STRATA_E_INVALID_ARGUMENT);
  EXPECT_EQ(strata_chunk_buffer(nullptr, 10, nullptr, collect_chunk, nullptr, &err),
            STRATA_E_INVALID_ARGUMENT);
  const std::uint8_t byte = 0;
  EXPECT_EQ(strata_chunk_buffer(&byte, 1, nullptr, nullptr, nullptr, &err),
            STRATA_E_INVALID_ARGUMENT);
  Collected none;
  EXPECT_EQ(strata_chunk_buffer(nullptr, 0, nullptr, collect_chunk, &none, &err), STRATA_OK);
  EXPECT_EQ(strata_chunker_open(nullptr, nullptr, &err), STRATA_E_INVALID_ARGUMENT);
  EXPECT_EQ(strata_chunker_options_init(nullptr, 0, &err), STRATA_E_INVALID_ARGUMENT);
  EXPECT_EQ(strata_model_package(nullptr, nullptr, nullptr, nullptr, nullptr, &err),
            STRATA_E_INVALID_ARGUMENT);
  EXPECT_EQ(strata_model_pull(nullptr, nullptr, nullptr, nullptr, nullptr, &err),
            STRATA_E_BAD_HANDLE);
  EXPECT_EQ(strata_model_push(nullptr, "t", "r", nullptr, nullptr, &err),
            STRATA_E_INVALID_ARGUMENT);
  // A NULL error pointer is allowed: the status alone comes back.
  EXPECT_EQ(strata_store_close(nullptr, nullptr), STRATA_E_BAD_HANDLE);

  Scratch scratch;
  StoreFixture fixture(scratch / "store");
  EXPECT_EQ(strata_ingest_path(fixture.store, nullptr, nullptr, nullptr, &err),
            STRATA_E_INVALID_ARGUMENT);
  EXPECT_EQ(strata_ingest_reader(fixture.store, nullptr, nullptr, nullptr, nullptr, &err),
            STRATA_E_INVALID_ARGUMENT);
  EXPECT_EQ(
      strata_export_writer(fixture.store, nullptr, nullptr, append_bytes, nullptr, nullptr, &err),
      STRATA_E_INVALID_ARGUMENT);
  EXPECT_EQ(
      strata_export_writer(fixture.store, "sha256:00", nullptr, nullptr, nullptr, nullptr, &err),
      STRATA_E_INVALID_ARGUMENT);
  EXPECT_EQ(strata_store_stats_get(fixture.store, nullptr, &err), STRATA_E_INVALID_ARGUMENT);
  EXPECT_EQ(strata_store_has_layer(fixture.store, nullptr, &err), STRATA_E_INVALID_ARGUMENT);
  EXPECT_EQ(strata_image_pull(fixture.store, nullptr, nullptr, nullptr, nullptr, &err),
            STRATA_E_INVALID_ARGUMENT);
  EXPECT_EQ(strata_layout_pull(fixture.store, nullptr, "v1", 0, nullptr, &err),
            STRATA_E_INVALID_ARGUMENT);
}

TEST(CApiBadInput, WrongStructSizes) {
  // An error struct too small to hold a message is refused and left alone.
  strata_error small;
  std::memset(&small, 0x5a, sizeof small);
  small.struct_size = 4;
  EXPECT_EQ(strata_store_close(nullptr, &small), STRATA_E_INVALID_ARGUMENT);
  EXPECT_EQ(small.message[0], 0x5a);

  strata_error err = new_error();
  strata_chunker_options options;
  STRATA_INIT(options);
  ASSERT_EQ(strata_chunker_options_init(&options, STRATA_CHUNK_FASTCDC2020, &err), STRATA_OK);
  const std::uint8_t data[4096] = {};
  Collected chunks;
  options.struct_size = sizeof options - 8;
  EXPECT_EQ(strata_chunk_buffer(data, sizeof data, &options, collect_chunk, &chunks, &err),
            STRATA_E_INVALID_ARGUMENT);
  EXPECT_NE(std::string(err.message).find("struct_size"), std::string::npos) << err.message;
  options.struct_size = 0;
  EXPECT_EQ(strata_chunker_options_init(&options, STRATA_CHUNK_XET, &err),
            STRATA_E_INVALID_ARGUMENT);

  // A newer caller's larger struct: fine while the fields we do not know are zero.
  struct Newer {
    strata_chunker_options base;
    std::uint64_t future_field;
  } newer{};
  newer.base.struct_size = sizeof newer;
  ASSERT_EQ(strata_chunker_options_init(&newer.base, STRATA_CHUNK_FASTCDC2020, &err), STRATA_OK);
  EXPECT_EQ(newer.base.struct_size, sizeof newer);
  EXPECT_EQ(strata_chunk_buffer(data, sizeof data, &newer.base, collect_chunk, &chunks, &err),
            STRATA_OK)
      << error_text(err);
  newer.base.struct_size = SIZE_MAX;  // garbage: refused without reading past the struct
  EXPECT_EQ(strata_chunk_buffer(data, sizeof data, &newer.base, collect_chunk, &chunks, &err),
            STRATA_E_INVALID_ARGUMENT);
  newer.base.struct_size = sizeof newer;
  newer.future_field = 1;
  EXPECT_EQ(strata_chunk_buffer(data, sizeof data, &newer.base, collect_chunk, &chunks, &err),
            STRATA_E_UNSUPPORTED);

  // Output structs too small are refused before any work.
  Scratch scratch;
  StoreFixture fixture(scratch / "store");
  strata_store_stats stats;
  STRATA_INIT(stats);
  stats.struct_size = 1;
  EXPECT_EQ(strata_store_stats_get(fixture.store, &stats, &err), STRATA_E_INVALID_ARGUMENT);
  const std::string tar = make_layer_tar(scratch, "layer", 3);
  strata_ingest_report report;
  STRATA_INIT(report);
  report.struct_size = sizeof report / 2;
  EXPECT_EQ(strata_ingest_path(fixture.store, tar.c_str(), nullptr, &report, &err),
            STRATA_E_INVALID_ARGUMENT);
  STRATA_INIT(stats);
  ASSERT_EQ(strata_store_stats_get(fixture.store, &stats, &err), STRATA_OK);
  EXPECT_EQ(stats.layers, 0U);
  strata_ingest_options ingest;
  STRATA_INIT(ingest);
  ingest.struct_size = 3;
  EXPECT_EQ(strata_ingest_path(fixture.store, tar.c_str(), &ingest, nullptr, &err),
            STRATA_E_INVALID_ARGUMENT);
  strata_export_options exporting;
  STRATA_INIT(exporting);
  exporting.format = 99;
  const auto layer = ingest_file(fixture.store, tar);
  std::vector<std::uint8_t> sink;
  EXPECT_EQ(strata_export_writer(fixture.store, layer.diff_id, &exporting, append_bytes, &sink,
                                 nullptr, &err),
            STRATA_E_INVALID_ARGUMENT);
  EXPECT_NE(std::string(err.message).find("format"), std::string::npos);
  strata_chunker_options bad_sizes;
  STRATA_INIT(bad_sizes);
  bad_sizes.min_size = 100;
  bad_sizes.avg_size = 10;
  bad_sizes.max_size = 5;
  EXPECT_EQ(strata_chunk_buffer(data, sizeof data, &bad_sizes, collect_chunk, &chunks, &err),
            STRATA_E_INVALID_ARGUMENT);
}

TEST(CApiBadInput, HandlesAfterCloseAndForged) {
  Scratch scratch;
  strata_error err = new_error();
  strata_store* store = nullptr;
  strata_store_options options;
  STRATA_INIT(options);
  options.create_if_missing = 1;
  ASSERT_EQ(strata_store_open((scratch / "store").c_str(), &options, &store, &err), STRATA_OK);
  EXPECT_EQ(strata_store_close(store, &err), STRATA_OK);
  EXPECT_EQ(strata_store_close(store, &err), STRATA_E_BAD_HANDLE);
  strata_store_stats stats;
  STRATA_INIT(stats);
  EXPECT_EQ(strata_store_stats_get(store, &stats, &err), STRATA_E_BAD_HANDLE);
  EXPECT_STREQ(strata_status_name(err.code), "bad_handle");
  EXPECT_EQ(strata_ingest_path(store, "/dev/null", nullptr, nullptr, &err), STRATA_E_BAD_HANDLE);
  // A store reopened after close gets a new handle; the old one stays dead.
  strata_store* again = nullptr;
  ASSERT_EQ(strata_store_open((scratch / "store").c_str(), &options, &again, &err), STRATA_OK);
  EXPECT_NE(again, store);
  EXPECT_EQ(strata_store_stats_get(store, &stats, &err), STRATA_E_BAD_HANDLE);
  EXPECT_EQ(strata_store_stats_get(again, &stats, &err), STRATA_OK);
  // Forged handles, including a chunker handle passed as a store.
  strata_chunker* chunker = nullptr;
  ASSERT_EQ(strata_chunker_open(nullptr, &chunker, &err), STRATA_OK);
  EXPECT_EQ(strata_store_stats_get(reinterpret_cast<strata_store*>(chunker), &stats, &err),
            STRATA_E_BAD_HANDLE);
  EXPECT_EQ(strata_store_stats_get(reinterpret_cast<strata_store*>(0xdeadbeef), &stats, &err),
            STRATA_E_BAD_HANDLE);
  EXPECT_EQ(strata_chunker_close(chunker, &err), STRATA_OK);
  EXPECT_EQ(strata_chunker_feed(chunker, nullptr, 0, collect_chunk, nullptr, &err),
            STRATA_E_BAD_HANDLE);
  EXPECT_EQ(strata_chunker_reset(chunker, &err), STRATA_E_BAD_HANDLE);
  EXPECT_EQ(strata_chunker_close(chunker, &err), STRATA_E_BAD_HANDLE);
  // A model package naming a closed store.
  strata_model_package_options package;
  STRATA_INIT(package);
  package.store = store;
  EXPECT_EQ(strata_model_package(scratch.path().c_str(), (scratch / "l").c_str(), "v1", &package,
                                 nullptr, &err),
            STRATA_E_BAD_HANDLE);
  EXPECT_EQ(strata_store_close(again, &err), STRATA_OK);
}

TEST(CApiBadInput, CallbacksThatFailOrLie) {
  const auto data = strata::test::splitmix64_bytes(9, 1U << 20U);
  strata_error err = new_error();
  Collected failing;
  failing.fail_at = 2;
  EXPECT_EQ(strata_chunk_buffer(data.data(), data.size(), nullptr, collect_chunk, &failing, &err),
            STRATA_E_CALLBACK);
  EXPECT_EQ(failing.chunks.size(), 2U);

  // A streaming chunker whose callback failed refuses work until reset.
  strata_chunker* chunker = nullptr;
  ASSERT_EQ(strata_chunker_open(nullptr, &chunker, &err), STRATA_OK);
  Collected streamed;
  streamed.fail_at = 0;
  EXPECT_EQ(strata_chunker_feed(chunker, data.data(), data.size(), collect_chunk, &streamed, &err),
            STRATA_E_CALLBACK);
  streamed.fail_at = -1;
  EXPECT_EQ(strata_chunker_finish(chunker, collect_chunk, &streamed, &err), STRATA_E_CALLBACK);
  EXPECT_NE(std::string(err.message).find("reset"), std::string::npos) << err.message;
  ASSERT_EQ(strata_chunker_reset(chunker, &err), STRATA_OK);
  ASSERT_EQ(strata_chunker_feed(chunker, data.data(), data.size(), collect_chunk, &streamed, &err),
            STRATA_OK);
  ASSERT_EQ(strata_chunker_finish(chunker, collect_chunk, &streamed, &err), STRATA_OK);
  EXPECT_EQ(streamed.bytes, data.size());
  strata_chunker_close(chunker, nullptr);

  Scratch scratch;
  StoreFixture fixture(scratch / "store");
  const std::string tar = make_layer_tar(scratch, "layer", 5);
  Reader reader;
  reader.bytes = strata::test::read_file(tar);
  reader.mode = 1;
  EXPECT_EQ(strata_ingest_reader(fixture.store, read_bytes, &reader, nullptr, nullptr, &err),
            STRATA_E_CALLBACK);
  reader.offset = 0;
  reader.mode = 2;
  EXPECT_EQ(strata_ingest_reader(fixture.store, read_bytes, &reader, nullptr, nullptr, &err),
            STRATA_E_CALLBACK);
  EXPECT_NE(std::string(err.message).find("returned"), std::string::npos) << err.message;
  strata_store_stats stats;
  STRATA_INIT(stats);
  ASSERT_EQ(strata_store_stats_get(fixture.store, &stats, &err), STRATA_OK);
  EXPECT_EQ(stats.layers, 0U);  // nothing of a failed read was committed

  const auto layer = ingest_file(fixture.store, tar);
  for (const std::int32_t format : {STRATA_FORMAT_TAR, STRATA_FORMAT_GZIP, STRATA_FORMAT_ZSTD,
                                    STRATA_FORMAT_ZSTD_CHUNKED, STRATA_FORMAT_ESTARGZ}) {
    strata_export_options options;
    STRATA_INIT(options);
    options.format = format;
    EXPECT_EQ(strata_export_writer(fixture.store, layer.diff_id, &options, failing_write, nullptr,
                                   nullptr, &err),
              STRATA_E_CALLBACK)
        << format;
    EXPECT_NE(std::string(err.message).find("write callback"), std::string::npos) << err.message;
  }
}

TEST(CApiBadInput, BadValuesGiveCodesAndMessages) {
  Scratch scratch;
  StoreFixture fixture(scratch / "store");
  strata_error err = new_error();
  std::vector<std::uint8_t> sink;
  EXPECT_EQ(strata_export_writer(fixture.store, "not-a-digest", nullptr, append_bytes, &sink,
                                 nullptr, &err),
            STRATA_E_INVALID_ARGUMENT);
  const std::string missing = "sha256:" + std::string(64, 'a');
  EXPECT_EQ(strata_export_writer(fixture.store, missing.c_str(), nullptr, append_bytes, &sink,
                                 nullptr, &err),
            STRATA_E_NOT_FOUND);
  EXPECT_EQ(strata_store_has_layer(fixture.store, missing.c_str(), &err), STRATA_E_NOT_FOUND);
  EXPECT_EQ(strata_ingest_fd(fixture.store, -1, nullptr, nullptr, &err), STRATA_E_INVALID_ARGUMENT);
  EXPECT_EQ(strata_ingest_fd(fixture.store, 987654, nullptr, nullptr, &err),
            STRATA_E_INVALID_ARGUMENT);
  EXPECT_EQ(strata_export_fd(fixture.store, missing.c_str(), nullptr, -5, nullptr, &err),
            STRATA_E_INVALID_ARGUMENT);
  write_text(scratch / "garbage", std::string(3000, 'x'));
  EXPECT_NE(
      strata_ingest_path(fixture.store, (scratch / "garbage").c_str(), nullptr, nullptr, &err),
      STRATA_OK);
  EXPECT_STRNE(err.message, "");
  EXPECT_EQ(strata_ingest_path(fixture.store, (scratch / "absent").c_str(), nullptr, nullptr, &err),
            STRATA_E_IO);
  strata_store* store = nullptr;
  EXPECT_EQ(strata_store_open((scratch / "nope").c_str(), nullptr, &store, &err),
            STRATA_E_NOT_FOUND)
      << error_text(err);
  EXPECT_EQ(store, nullptr);
  strata_chunker_options options;
  STRATA_INIT(options);
  EXPECT_EQ(strata_chunker_options_init(&options, 42, &err), STRATA_E_INVALID_ARGUMENT);
  strata_registry_options remote;
  STRATA_INIT(remote);
  remote.plain_http = 1;
  remote.username = "only-a-user";
  EXPECT_EQ(strata_model_pull(fixture.store, "127.0.0.1:1/m:v1", &remote, nullptr, nullptr, &err),
            STRATA_E_INVALID_ARGUMENT);
  EXPECT_EQ(strata_model_pull(fixture.store, "::bad ref::", nullptr, nullptr, nullptr, &err),
            STRATA_E_INVALID_ARGUMENT);
}

TEST(CApiBadInput, ImagePullPlanRefusesBadReferencesRegistriesAndManifests) {
  const std::string layout = strata::test::testdata_path("oci/layouts/zstd-chunked-skopeo");
  const std::string manifest_path =
      layout + "/blobs/sha256/0002f95622e007222b8bec8ffeb9591ba98f19987250eb8f9a96ac649000d3e1";
  const auto v1 = strata::test::read_file(manifest_path);
  const std::string v1_text(v1.begin(), v1.end());
  const auto manifest = nlohmann::json::parse(v1_text);
  // A manifest naming a config the registry answers with other bytes.
  const std::string config_digest = "sha256:" + std::string(64, 'c');
  nlohmann::json config_lie = manifest;
  config_lie["config"]["digest"] = config_digest;
  // The v1 manifest with its layer's TOC annotation claiming 2^50 bytes past the blob's end: the
  // layer's digest is honest, its TOC position is not.
  nlohmann::json toc_lie = manifest;
  toc_lie["layers"][0]["annotations"]["io.containers.zstd-chunked.manifest-position"] =
      "643687:1125899906842624:1125899906842624:1";
  const std::string media_type = "application/vnd.oci.image.manifest.v1+json";
  strata::testing::HostileRegistry registry(strata::testing::serve_layout(
      layout, {{config_digest, "{\"not\":\"the config\"}"}},
      {{"garbage", {media_type, "{\"schemaVersion\":2,\"lie\":true}"}},
       {"toc-lie", {media_type, toc_lie.dump()}},
       {"config-lie", {media_type, config_lie.dump()}}}));
  Scratch scratch;
  StoreFixture fixture(scratch / "store");
  strata_registry_options remote;
  STRATA_INIT(remote);
  remote.plain_http = 1;
  strata_error err = new_error();
  strata_image_plan plan;
  STRATA_INIT(plan);
  const auto plan_of = [&](const std::string& reference, strata_layer_plan_fn on_layer,
                           void* user) {
    STRATA_INIT(plan);
    return strata_image_pull_plan(fixture.store, reference.c_str(), &remote, nullptr, on_layer,
                                  user, &plan, &err);
  };
  const std::string host = registry.host();

  // A TOC that lies is not an error: the layer is planned whole, with the reason.
  LayerPlans lied;
  ASSERT_EQ(plan_of(host + "/img:toc-lie", collect_layer_plan, &lied), STRATA_OK)
      << error_text(err);
  ASSERT_EQ(lied.layers.size(), 1U);
  EXPECT_EQ(lied.layers[0].chunked, 0U);
  EXPECT_NE(std::string(lied.layers[0].whole_reason).find("TOC"), std::string::npos)
      << lied.layers[0].whole_reason;
  EXPECT_GE(lied.layers[0].fetch_bytes, lied.layers[0].size);
  EXPECT_LT(lied.layers[0].fetch_bytes, 2 * lied.layers[0].size);

  EXPECT_EQ(plan_of(host + "/img:garbage", nullptr, nullptr), STRATA_E_CORRUPT_INPUT)
      << error_text(err);
  EXPECT_EQ(plan_of(host + "/img:config-lie", nullptr, nullptr), STRATA_E_DIGEST_MISMATCH)
      << error_text(err);
  EXPECT_EQ(plan_of(host + "/img:absent", nullptr, nullptr), STRATA_E_NOT_FOUND) << error_text(err);
  const std::string wrong_digest = host + "/img:v1@sha256:" + std::string(64, 'b');
  EXPECT_EQ(plan_of(wrong_digest, nullptr, nullptr), STRATA_E_DIGEST_MISMATCH) << error_text(err);
  EXPECT_EQ(plan_of("::bad ref::", nullptr, nullptr), STRATA_E_INVALID_ARGUMENT);
  EXPECT_STRNE(err.message, "");
  // Port 1 on loopback: nothing listens.
  EXPECT_EQ(plan_of("127.0.0.1:1/img:v1", nullptr, nullptr), STRATA_E_IO) << error_text(err);
  EXPECT_STRNE(err.message, "");

  // The boundary: a failing callback, NULL and closed handles, NULL reference, a short struct.
  LayerPlans failing;
  failing.fail_at = 0;
  EXPECT_EQ(plan_of(host + "/img:v1", collect_layer_plan, &failing), STRATA_E_CALLBACK);
  EXPECT_NE(std::string(err.message).find("layer plan callback"), std::string::npos) << err.message;
  EXPECT_EQ(strata_image_pull_plan(nullptr, (host + "/img:v1").c_str(), &remote, nullptr, nullptr,
                                   nullptr, &plan, &err),
            STRATA_E_BAD_HANDLE);
  EXPECT_EQ(strata_image_pull_plan(fixture.store, nullptr, &remote, nullptr, nullptr, nullptr,
                                   &plan, &err),
            STRATA_E_INVALID_ARGUMENT);
  plan.struct_size = sizeof plan - 8;
  EXPECT_EQ(strata_image_pull_plan(fixture.store, (host + "/img:v1").c_str(), &remote, nullptr,
                                   nullptr, nullptr, &plan, &err),
            STRATA_E_INVALID_ARGUMENT);
  strata_store* closed = nullptr;
  strata_store_options create;
  STRATA_INIT(create);
  create.create_if_missing = 1;
  ASSERT_EQ(strata_store_open((scratch / "closed").c_str(), &create, &closed, &err), STRATA_OK);
  ASSERT_EQ(strata_store_close(closed, &err), STRATA_OK);
  EXPECT_EQ(strata_image_pull_plan(closed, (host + "/img:v1").c_str(), &remote, nullptr, nullptr,
                                   nullptr, nullptr, &err),
            STRATA_E_BAD_HANDLE);
}

}  // namespace
