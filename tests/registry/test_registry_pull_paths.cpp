// Where image and model pulls put files, against a small registry in this process (the
// hostile-registry fixture, answers looked up by path; Range is ignored, so every blob comes
// whole with a 200). Image pull: the download directory is a fresh private one, never
// a predictable name another user could have planted a symlink in, and it is gone afterwards.
// Model pull: file paths that leave --out ('..', absolute, through a symlinked directory, or
// through a directory swapped for a symlink while the pull runs) never get a byte written
// outside --out. Rests on registry/image_transfer.cpp and registry/model_transfer.cpp using
// core/safe_path.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <mutex>
#include <set>

#include "strata/model_artifact.h"
#include "strata/registry.h"
#include "strata/strata.h"
#include "tests/hostile_registry.h"
#include "tests/layer_fixtures.h"

namespace strata {
namespace {

namespace fs = std::filesystem;

// Answers GET and HEAD by path; `before` runs in the server thread before the answer is sent.
// Answers GET and HEAD by path over the shared fixture (tests/hostile_registry.h); `before` runs
// in the server thread before a GET is answered.
class LoopbackRegistry {
 public:
  struct Route {
    std::string content_type;
    std::string body;
    std::function<void()> before;
  };

  LoopbackRegistry() = default;
  LoopbackRegistry(const LoopbackRegistry&) = delete;
  LoopbackRegistry& operator=(const LoopbackRegistry&) = delete;

  void add(const std::string& path, Route route) {
    std::lock_guard lock(mutex_);
    routes_[path] = std::move(route);
  }
  // A blob under /v2/<repository>/blobs/<digest>; returns its digest.
  Digest add_blob(const std::string& repository, const std::string& bytes,
                  std::function<void()> before = {}) {
    const Digest digest = sha256_of(as_bytes(bytes));
    add("/v2/" + repository + "/blobs/" + digest.to_string(),
        Route{"application/octet-stream", bytes, std::move(before)});
    return digest;
  }
  void start() {
    server_ = std::make_unique<testing::HostileRegistry>(
        [this](const testing::SeenRequest& request) { return answer(request); });
  }
  [[nodiscard]] std::string host() const { return server_->host(); }

  static ByteSpan as_bytes(const std::string& text) {
    return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
  }

 private:
  testing::Reply answer(const testing::SeenRequest& request) {
    Route route;
    {
      std::lock_guard lock(mutex_);
      const auto found = routes_.find(request.target);
      if (found == routes_.end()) {
        testing::Reply missing;
        missing.status = 404;
        missing.headers = {{"Content-Type", "application/json"}};
        missing.body = R"({"errors":[{"code":"NOT_FOUND","message":"no"}]})";
        return missing;
      }
      route = found->second;
    }
    if (route.before && request.method == "GET") route.before();
    testing::Reply reply;
    reply.headers = {{"Content-Type", route.content_type}};
    reply.body = std::move(route.body);
    return reply;
  }

  std::mutex mutex_;
  std::map<std::string, Route> routes_;
  std::unique_ptr<testing::HostileRegistry> server_;  // last: stops before the routes go
};

registry::ClientOptions quick_options() {
  registry::ClientOptions options;
  options.plain_http = true;
  options.retry.initial_backoff = std::chrono::milliseconds(10);
  options.retry.max_attempts = 2;
  options.connect_timeout = std::chrono::seconds(2);
  options.stall_timeout = std::chrono::seconds(2);
  return options;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::set<std::string> entries_of(const std::string& directory) {
  std::set<std::string> names;
  for (const auto& entry : fs::directory_iterator(directory)) {
    names.insert(entry.path().filename().string());
  }
  return names;
}

std::string descriptor_json(std::string_view media_type, const Digest& digest, std::size_t size,
                            const std::string& annotations = "") {
  std::string json = R"({"mediaType":")" + std::string(media_type) + R"(","digest":")" +
                     digest.to_string() + R"(","size":)" + std::to_string(size);
  if (!annotations.empty()) json += R"(,"annotations":)" + annotations;
  return json + "}";
}

// ---- image pull: the work directory ------------------------------------------------------------

struct ServedImage {
  Digest manifest_digest;
  Digest layer_digest;
};

// One uncompressed tar layer under t/img:v1; `diff_id` overrides the config's (to make it fail).
ServedImage serve_image(LoopbackRegistry& server, const std::optional<Digest>& diff_id = {}) {
  std::vector<std::uint8_t> tar = test::make_header("hello.txt", '0', 6);
  test::append_content(tar, "hello\n");
  test::append_end(tar);
  const std::string layer(tar.begin(), tar.end());
  const Digest layer_digest = server.add_blob("t/img", layer);
  const std::string config = R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layers",)"
                             R"("diff_ids":[")" +
                             diff_id.value_or(layer_digest).to_string() + R"("]}})";
  const Digest config_digest = server.add_blob("t/img", config);
  const std::string manifest =
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":)" +
      descriptor_json("application/vnd.oci.image.config.v1+json", config_digest, config.size()) +
      R"(,"layers":[)" +
      descriptor_json("application/vnd.oci.image.layer.v1.tar", layer_digest, layer.size()) + "]}";
  server.add("/v2/t/img/manifests/v1",
             {"application/vnd.oci.image.manifest.v1+json", manifest, {}});
  return {sha256_of(LoopbackRegistry::as_bytes(manifest)), layer_digest};
}

Result<registry::PullReport> pull_into_store(const LoopbackRegistry& server, ChunkStore& store,
                                             const std::string& work_directory) {
  auto client = registry::RegistryClient::create(server.host(), quick_options());
  if (!client.ok()) return std::move(client).error();
  registry::ImageReference source;
  source.registry = server.host();
  source.repository = "t/img";
  source.tag = "v1";
  registry::PullOptions options;
  options.jobs = 1;
  options.work_directory = work_directory;
  return registry::pull_image(*client, source, &store, nullptr, "", options);
}

ChunkStore new_store(const std::string& path) {
  StoreOptions options;
  options.create_if_missing = true;
  auto store = ChunkStore::open(path, options);
  EXPECT_TRUE(store.ok()) << store.error().to_string();
  return std::move(store).value();
}

TEST(RegistryPullPaths, PlantedPredictableWorkDirectoryIsNotUsed) {
  test::ScratchDir scratch;
  LoopbackRegistry server;
  const ServedImage image = serve_image(server);
  server.start();
  // Another user's plant: the directory name the pull used to pick, holding a symlink where the
  // layer's partial download would go, aimed at a file of the victim's.
  const std::string work = scratch.file("work");
  const std::string planted =
      "strata-pull-" + std::to_string(::getpid()) + "-" + image.manifest_digest.hex().substr(0, 12);
  fs::create_directories(work + "/" + planted);
  const std::string victim = scratch.file("victim");
  std::ofstream(victim) << "precious";
  fs::create_symlink(victim, work + "/" + planted + "/" + image.layer_digest.hex() + ".partial");

  ChunkStore store = new_store(scratch.file("store"));
  auto pulled = pull_into_store(server, store, work);
  ASSERT_TRUE(pulled.ok()) << pulled.error().to_string();
  EXPECT_TRUE(read_text(victim) == "precious") << "the pull wrote through the planted symlink";
  EXPECT_TRUE(store.find_layer(image.layer_digest).ok());
  // The plant is not the pull's to remove; the pull's own directory is gone.
  EXPECT_EQ(entries_of(work), std::set<std::string>{planted});
}

TEST(RegistryPullPaths, WorkDirectoryIsRemovedAfterThePull) {
  test::ScratchDir scratch;
  const std::string work = scratch.file("work");
  fs::create_directories(work);
  {
    LoopbackRegistry server;
    serve_image(server);
    server.start();
    ChunkStore store = new_store(scratch.file("store"));
    auto pulled = pull_into_store(server, store, work);
    ASSERT_TRUE(pulled.ok()) << pulled.error().to_string();
    EXPECT_TRUE(entries_of(work).empty());
  }
  {
    // A layer that does not decompress to the config's diff_id: the pull fails, and still
    // leaves nothing behind.
    LoopbackRegistry server;
    serve_image(server, sha256_of(LoopbackRegistry::as_bytes("something else")));
    server.start();
    ChunkStore store = new_store(scratch.file("store2"));
    auto pulled = pull_into_store(server, store, work);
    ASSERT_FALSE(pulled.ok());
    EXPECT_EQ(pulled.error().code, ErrorCode::kDigestMismatch) << pulled.error().to_string();
    EXPECT_TRUE(entries_of(work).empty());
  }
}

// ---- model pull: file paths under --out --------------------------------------------------------

// A Docker model artifact under t/model:v1 whose files are (path, content) pairs, named by the
// file-path annotation; `before` runs before the first file's blob is served.
void serve_model(LoopbackRegistry& server,
                 const std::vector<std::pair<std::string, std::string>>& files,
                 std::function<void()> before = {}) {
  const std::string config = R"({"config":{"format":"safetensors"}})";
  const Digest config_digest = server.add_blob("t/model", config);
  std::string layers;
  for (const auto& [path, content] : files) {
    const Digest digest = server.add_blob("t/model", content, layers.empty() ? before : nullptr);
    if (!layers.empty()) layers += ",";
    layers += descriptor_json(
        model::kMediaTypeDockerLicense, digest, content.size(),
        R"({")" + std::string(model::kAnnotationFilePath) + R"(":")" + path + R"("})");
  }
  const std::string manifest =
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":)" +
      descriptor_json(model::kMediaTypeDockerConfigV01, config_digest, config.size()) +
      R"(,"layers":[)" + layers + "]}";
  server.add("/v2/t/model/manifests/v1",
             {"application/vnd.oci.image.manifest.v1+json", manifest, {}});
}

Result<model::ModelPullReport> pull_model_into(const LoopbackRegistry& server, ChunkStore& store,
                                               const std::string& out) {
  auto client = registry::RegistryClient::create(server.host(), quick_options());
  if (!client.ok()) return std::move(client).error();
  registry::ImageReference source;
  source.registry = server.host();
  source.repository = "t/model";
  source.tag = "v1";
  model::ModelPullOptions options;
  options.out_directory = out;
  return model::pull_model(*client, source, store, options);
}

TEST(RegistryPullPaths, ModelFilesLandUnderOutWithTheirDirectories) {
  test::ScratchDir scratch;
  LoopbackRegistry server;
  serve_model(server, {{"LICENSE", "licence text"}, {"tokenizer/vocab.txt", "a b c"}});
  server.start();
  ChunkStore store = new_store(scratch.file("store"));
  const std::string out = scratch.file("out");
  auto pulled = pull_model_into(server, store, out);
  ASSERT_TRUE(pulled.ok()) << pulled.error().to_string();
  EXPECT_EQ(read_text(out + "/LICENSE"), "licence text");
  EXPECT_EQ(read_text(out + "/tokenizer/vocab.txt"), "a b c");
  EXPECT_EQ(entries_of(out), (std::set<std::string>{"LICENSE", "tokenizer"}))
      << "the pull left temporary files in --out";
}

TEST(RegistryPullPaths, ModelFilePathsThatLeaveOutAreRefused) {
  for (const std::string path :
       {"../escape", "/tmp/strata-absolute-escape", "a/../../escape", "./LICENSE", "a//b"}) {
    SCOPED_TRACE(path);
    test::ScratchDir scratch;
    LoopbackRegistry server;
    serve_model(server, {{path, "payload"}});
    server.start();
    ChunkStore store = new_store(scratch.file("store"));
    const std::string out = scratch.file("out/inner");
    auto pulled = pull_model_into(server, store, out);
    ASSERT_FALSE(pulled.ok());
    EXPECT_EQ(pulled.error().code, ErrorCode::kUnsafePath) << pulled.error().to_string();
    EXPECT_NE(pulled.error().message.find(path), std::string::npos) << pulled.error().message;
    EXPECT_FALSE(fs::exists(scratch.file("out/escape")));
    EXPECT_FALSE(fs::exists(scratch.file("escape")));
    EXPECT_FALSE(fs::exists("/tmp/strata-absolute-escape"));
  }
}

TEST(RegistryPullPaths, ModelFileUnderASymlinkedDirectoryIsRefused) {
  test::ScratchDir scratch;
  LoopbackRegistry server;
  serve_model(server, {{"sub/weights.bin", "payload"}});
  server.start();
  ChunkStore store = new_store(scratch.file("store"));
  const std::string out = scratch.file("out");
  const std::string outside = scratch.file("outside");
  fs::create_directories(out);
  fs::create_directories(outside);
  fs::create_directory_symlink(outside, out + "/sub");
  auto pulled = pull_model_into(server, store, out);
  ASSERT_FALSE(pulled.ok());
  EXPECT_EQ(pulled.error().code, ErrorCode::kUnsafePath) << pulled.error().to_string();
  EXPECT_NE(pulled.error().message.find("sub"), std::string::npos) << pulled.error().message;
  EXPECT_TRUE(entries_of(outside).empty());
}

TEST(RegistryPullPaths, ModelDirectorySwappedForASymlinkMidPullIsRefused) {
  test::ScratchDir scratch;
  const std::string out = scratch.file("out");
  const std::string outside = scratch.file("outside");
  fs::create_directories(out + "/sub");
  LoopbackRegistry server;
  // While the file downloads, out/sub moves outside --out and a symlink to it takes its place.
  serve_model(server, {{"sub/weights.bin", "payload"}}, [&] {
    fs::rename(out + "/sub", outside);
    fs::create_directory_symlink(outside, out + "/sub");
  });
  server.start();
  ChunkStore store = new_store(scratch.file("store"));
  auto pulled = pull_model_into(server, store, out);
  EXPECT_FALSE(fs::exists(outside + "/weights.bin")) << "the file was written outside --out";
  ASSERT_FALSE(pulled.ok());
  EXPECT_EQ(pulled.error().code, ErrorCode::kUnsafePath) << pulled.error().to_string();
  EXPECT_EQ(entries_of(out), std::set<std::string>{"sub"}) << "temporary files left in --out";
}

}  // namespace
}  // namespace strata
