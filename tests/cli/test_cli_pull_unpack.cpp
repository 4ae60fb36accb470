// `strata pull REF --unpack DIR` (issue 17) end to end against registries started here
// (tests/hostile_registry.h): a two-layer image with a whiteout and an opaque directory
// (shared/specs/layer-formats.md §3) pulls to exactly the tree `strata unpack LAYOUT:TAG` gives
// from the same layout (file bytes, types, modes, link counts, symlink targets, mtimes), for a
// chunked image (range pulls) and a gzip one (whole blobs); and the bad-input rule: an entry or a
// hard link leaving the rootfs is refused, a registry failing mid-pull and a non-empty DIR are
// errors, and after any failure nothing is at DIR, no "DIR.partial-*" or "DIR.store-*" is left
// beside it, and nothing outside changed.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "strata/oci.h"
#include "tests/cli_build_helpers.h"
#include "tests/hostile_registry.h"
#include "tests/layer_fixtures.h"
#include "tests/oci_test_helpers.h"
#include "tests/test_support.h"
#include "tests/tree_snapshot.h"

namespace strata {
namespace {

using testing::HostileRegistry;
using testing::serve_layout;

using test::describe_tree;

// Names in `parent` that start with `prefix` (left-over partial trees or scratch stores).
std::vector<std::string> names_starting(const std::string& parent, const std::string& prefix) {
  std::vector<std::string> found;
  for (const auto& entry : std::filesystem::directory_iterator(parent)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(prefix, 0) == 0) found.push_back(name);
  }
  return found;
}

void expect_nothing_at(const std::string& parent, const std::string& name) {
  EXPECT_FALSE(std::filesystem::exists(parent + "/" + name)) << name << " was left behind";
  EXPECT_TRUE(names_starting(parent, name + ".").empty())
      << "left beside " << name << ": " << names_starting(parent, name + ".").front();
}

// lower: a random tree plus what the upper layer deletes; upper: ".wh.gone", an opaque "opq/",
// a replaced file, a new file in the opaque directory.
void build_two_layer_image(const test::ScratchDir& scratch, const std::string& layout,
                           const std::string& format) {
  const std::string lower = scratch.file("lower");
  const std::string upper = scratch.file("upper");
  test::make_random_tree(lower, 11, 30);
  test::write_file(lower + "/gone", {'g'});
  std::filesystem::create_directories(lower + "/opq/sub");
  test::write_file(lower + "/opq/old", {'o'});
  test::write_file(lower + "/opq/sub/older", {'o'});
  test::write_file(lower + "/keep.txt", {'k'});
  std::filesystem::create_directories(upper + "/opq");
  test::write_file(upper + "/.wh.gone", {});
  test::write_file(upper + "/opq/.wh..wh..opq", {});
  test::write_file(upper + "/opq/new", {'n'});
  test::write_file(upper + "/keep.txt", {'K', '2'});
  const auto built = test::run_tool("build '" + lower + "' '" + upper + "' --layout '" + layout +
                                    "' --tag t --format " + format + " --mtime 1600000000");
  ASSERT_EQ(built.exit_code, 0) << built.err;
}

class PullUnpack : public ::testing::TestWithParam<std::string> {};

TEST_P(PullUnpack, GivesTheTreeStrataUnpackGivesFromTheLayout) {
  test::ScratchDir scratch;
  const std::string layout = scratch.file("layout");
  ASSERT_NO_FATAL_FAILURE(build_two_layer_image(scratch, layout, GetParam()));
  const std::string expected_root = scratch.file("expected");
  const auto reference = test::run_tool("unpack '" + layout + ":t' '" + expected_root + "'");
  ASSERT_EQ(reference.exit_code, 0) << reference.err;

  HostileRegistry registry(serve_layout(layout));
  const std::string rootfs = scratch.file("out/rootfs");  // its parent is created
  const auto report = test::run_tool_json("pull " + registry.host() + "/app/x:t --unpack '" +
                                          rootfs + "' --insecure --json");
  ASSERT_TRUE(report.contains("unpack")) << report.dump();
  EXPECT_EQ(report["unpack"]["layers"], 2);
  EXPECT_GE(report["unpack"]["whiteouts"].get<int>(), 2);
  EXPECT_GT(report["unpack"]["bytes_written"].get<long long>(), 0);
  EXPECT_TRUE(report["unpack"]["stages"].contains("unpack_s"));
  EXPECT_EQ(report["layers"][0]["chunked"].get<bool>(), GetParam() == "zstd:chunked");

  const auto expected = describe_tree(expected_root);
  const auto actual = describe_tree(rootfs);
  EXPECT_GT(expected.size(), 30U);
  EXPECT_EQ(actual, expected);
  EXPECT_FALSE(actual.count("/gone"));
  EXPECT_FALSE(actual.count("/opq/old"));
  EXPECT_FALSE(actual.count("/opq/sub"));
  EXPECT_EQ(actual.at("/opq/new").content, "n");
  EXPECT_EQ(actual.at("/keep.txt").content, "K2");
  struct stat info {};
  ASSERT_EQ(::stat(rootfs.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 07777U, 0755U);
  // The scratch store (no --store given) is gone, and no partial tree is left.
  EXPECT_TRUE(names_starting(scratch.file("out"), "rootfs.").empty());
}

INSTANTIATE_TEST_SUITE_P(Formats, PullUnpack, ::testing::Values("zstd:chunked", "gzip"));

TEST(PullUnpackInto, AnEmptyDirectoryAndAGivenStore) {
  test::ScratchDir scratch;
  const std::string layout = scratch.file("layout");
  ASSERT_NO_FATAL_FAILURE(build_two_layer_image(scratch, layout, "zstd:chunked"));
  HostileRegistry registry(serve_layout(layout));
  const std::string rootfs = scratch.file("rootfs");
  std::filesystem::create_directories(rootfs);
  const std::string store = scratch.file("store");
  const auto pulled = test::run_tool("pull " + registry.host() + "/app/x:t --store '" + store +
                                     "' --unpack '" + rootfs + "' --insecure");
  ASSERT_EQ(pulled.exit_code, 0) << pulled.err;
  EXPECT_NE(pulled.out.find("unpacked 2 layers into"), std::string::npos) << pulled.out;
  EXPECT_EQ(test::read_text(rootfs + "/keep.txt"), "K2");
  // The layers stay in the given store.
  const auto listed = test::run_tool("ls --store '" + store + "'");
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_EQ(std::count(listed.out.begin(), listed.out.end(), '\n'), 2) << listed.out;
}

TEST(PullUnpackInto, ANonEmptyDirectoryIsRefusedBeforeAnythingIsFetched) {
  test::ScratchDir scratch;
  const std::string layout = scratch.file("layout");
  ASSERT_NO_FATAL_FAILURE(build_two_layer_image(scratch, layout, "gzip"));
  HostileRegistry registry(serve_layout(layout));
  const std::string rootfs = scratch.file("rootfs");
  std::filesystem::create_directories(rootfs);
  test::write_file(rootfs + "/mine", {'m'});
  const auto pulled =
      test::run_tool("pull " + registry.host() + "/app/x:t --unpack '" + rootfs + "' --insecure");
  EXPECT_EQ(pulled.exit_code, 2);  // a bad parameter, as the tool counts them
  EXPECT_NE(pulled.err.find("is not empty"), std::string::npos) << pulled.err;
  EXPECT_EQ(std::count(pulled.err.begin(), pulled.err.end(), '\n'), 1) << pulled.err;
  EXPECT_EQ(test::read_text(rootfs + "/mine"), "m");
  EXPECT_EQ(names_starting(scratch.path(), "rootfs"), std::vector<std::string>{"rootfs"});
  EXPECT_TRUE(registry.requests().empty()) << registry.requests().size() << " requests";
}

// A layout whose image is `layers` (plain tar blobs) on top of each other.
void write_tar_image(const std::string& directory,
                     const std::vector<std::vector<std::uint8_t>>& layers) {
  auto layout = oci::OciLayout::open_or_create(directory);
  ASSERT_TRUE(layout.ok()) << layout.error().to_string();
  oci::ImageConfig config;
  oci::Manifest manifest;
  for (const auto& tar : layers) {
    auto written = layout->write_blob(oci::kMediaTypeLayerTar, tar);
    ASSERT_TRUE(written.ok()) << written.error().to_string();
    config.diff_ids.push_back(written->digest);
    manifest.layers.push_back(*written);
  }
  const std::string config_bytes = oci::write_image_config(config);
  manifest.config = *layout->write_blob(oci::kMediaTypeImageConfig, test::bytes_of(config_bytes));
  const std::string manifest_bytes = oci::write_manifest(manifest);
  auto written = layout->write_blob(oci::kMediaTypeImageManifest, test::bytes_of(manifest_bytes));
  ASSERT_TRUE(written.ok());
  ASSERT_TRUE(layout->set_tag("t", *written).ok());
}

std::vector<std::uint8_t> tar_of(const std::vector<std::vector<std::uint8_t>>& entries) {
  std::vector<std::uint8_t> tar;
  for (const auto& entry : entries) test::append(tar, entry);
  test::append_end(tar);
  return tar;
}

std::vector<std::uint8_t> file_entry(const std::string& name, const std::string& content) {
  std::vector<std::uint8_t> out = test::make_header(name, '0', content.size());
  test::append_content(out, content);
  return out;
}

// The layouts of the escape cases: the bottom layer is fine, the top one leaves the rootfs.
struct Escape {
  std::string name;
  std::vector<std::uint8_t> top;
};

std::vector<Escape> escapes() {
  return {{"dot-dot entry", tar_of({file_entry("../../outside/planted", "evil")})},
          {"absolute entry", tar_of({file_entry("/tmp/strata-pull-unpack-planted", "evil")})},
          {"hard link out", tar_of({test::make_header("steal", '1', 0, "../../outside/secret")})}};
}

TEST(PullUnpackEscape, AnEntryLeavingTheRootfsIsRefusedAndNothingIsLeft) {
  for (const Escape& escape : escapes()) {
    SCOPED_TRACE(escape.name);
    test::ScratchDir scratch;
    const std::string outside = scratch.file("outside");
    std::filesystem::create_directories(outside);
    test::write_file(outside + "/secret", {'k', 'e', 'e', 'p'});
    const std::string layout = scratch.file("layout");
    ASSERT_NO_FATAL_FAILURE(
        write_tar_image(layout, {tar_of({file_entry("etc/hello", "hi\n")}), escape.top}));
    HostileRegistry registry(serve_layout(layout));
    const std::string parent = scratch.file("deep/er");
    const auto pulled = test::run_tool("pull " + registry.host() + "/app/x:t --unpack '" + parent +
                                       "/rootfs' --insecure --jobs 1");
    EXPECT_EQ(pulled.exit_code, 1) << pulled.out;
    EXPECT_NE(pulled.err.find("layer 1"), std::string::npos) << pulled.err;
    EXPECT_TRUE(pulled.err.find("unsafe") != std::string::npos ||
                pulled.err.find("..") != std::string::npos ||
                pulled.err.find("absolute") != std::string::npos)
        << pulled.err;
    expect_nothing_at(parent, "rootfs");
    EXPECT_FALSE(std::filesystem::exists(outside + "/planted"));
    EXPECT_FALSE(std::filesystem::exists("/tmp/strata-pull-unpack-planted"));
    EXPECT_EQ(test::read_text(outside + "/secret"), "keep");
    EXPECT_EQ(std::filesystem::hard_link_count(outside + "/secret"), 1U);
  }
}

// An absolute symlink is content: a later write through it lands inside the rootfs (resolved as
// if the rootfs were "/"), never at the absolute path outside.
TEST(PullUnpackEscape, AnAbsoluteSymlinkResolvesInsideTheRootfs) {
  test::ScratchDir scratch;
  const std::string outside = scratch.file("outside");
  std::filesystem::create_directories(outside);
  const std::string layout = scratch.file("layout");
  ASSERT_NO_FATAL_FAILURE(
      write_tar_image(layout, {tar_of({test::make_header("link", '2', 0, outside)}),
                               tar_of({file_entry("link/planted", "evil")})}));
  HostileRegistry registry(serve_layout(layout));
  const std::string rootfs = scratch.file("rootfs");
  const auto pulled =
      test::run_tool("pull " + registry.host() + "/app/x:t --unpack '" + rootfs + "' --insecure");
  ASSERT_EQ(pulled.exit_code, 0) << pulled.err;
  EXPECT_FALSE(std::filesystem::exists(outside + "/planted"));
  EXPECT_EQ(test::read_text(rootfs + outside + "/planted"), "evil");
}

TEST(PullUnpackFailure, ARegistryFailingMidPullLeavesNoDirectory) {
  test::ScratchDir scratch;
  const std::string layout = scratch.file("layout");
  ASSERT_NO_FATAL_FAILURE(write_tar_image(
      layout, {tar_of({file_entry("etc/hello", "hi\n")}), tar_of({file_entry("b", "second")})}));
  auto opened = oci::OciLayout::open(layout);
  ASSERT_TRUE(opened.ok());
  auto image = opened->load_image("t");
  ASSERT_TRUE(image.ok());
  const std::string failing = image->manifest.layers[1].digest.to_string();
  auto served = serve_layout(layout);
  // With --jobs 1, layer 1 is asked for once layer 0 is in the store: the build is then writing
  // layer 0 into the partial tree, which the handler waits to see (at most 10 s) before failing.
  std::atomic<bool> saw_partial_tree{false};
  HostileRegistry registry([&](const testing::SeenRequest& request) {
    if (request.target.find(failing) == std::string::npos) return served(request);
    for (int i = 0; i < 1000 && !saw_partial_tree; ++i) {
      for (const std::string& name : names_starting(scratch.path(), "rootfs.partial-")) {
        if (std::filesystem::exists(scratch.file(name + "/etc/hello"))) saw_partial_tree = true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return testing::error_reply(404, "BLOB_UNKNOWN", "gone mid-pull");
  });
  const std::string rootfs = scratch.file("rootfs");
  const auto pulled = test::run_tool("pull " + registry.host() + "/app/x:t --unpack '" + rootfs +
                                     "' --insecure --jobs 1");
  EXPECT_EQ(pulled.exit_code, 1) << pulled.out;
  EXPECT_NE(pulled.err.find(failing), std::string::npos) << pulled.err;
  EXPECT_TRUE(saw_partial_tree) << "layer 0 was not unpacked while layer 1 was fetched";
  expect_nothing_at(scratch.path(), "rootfs");
}

}  // namespace
}  // namespace strata
