// `strata build` and `strata inspect` end to end: --json reports agree between the two and with
// the blobs on disk; building twice gives identical digests; the mtime (option or
// SOURCE_DATE_EPOCH) changes them; tar, tar.gz and tar.zst inputs (made by GNU tar, gzip, zstd)
// give the tar's own sha256 as diff_id; bad arguments and damaged layouts fail with clear lines.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/cli_build_helpers.h"

namespace strata {
namespace {

using test::TempDir;

using test::make_build_source;
using test::run_tool_json;

TEST(CliBuild, BuildThenInspectAgree) {
  TempDir temp;
  make_build_source(temp / "src");
  const auto built = run_tool_json("build " + (temp / "src") + " " + (temp / "src") + " --layout " +
                                   (temp / "layout") + " --tag v1 --format zstd --json");
  ASSERT_EQ(built["layers"].size(), 2U);
  const auto inspected = run_tool_json("inspect " + (temp / "layout") + ":v1 --json --verify");
  EXPECT_EQ(inspected["manifest"]["digest"], built["manifest_digest"]);
  EXPECT_EQ(inspected["config"]["digest"], built["config_digest"]);
  EXPECT_EQ(inspected["os"], "linux");
  EXPECT_EQ(inspected["architecture"], "amd64");
  EXPECT_EQ(inspected["verified"], true);
  for (std::size_t i = 0; i < 2; ++i) {
    const auto& layer = inspected["layers"][i];
    EXPECT_EQ(layer["digest"], built["layers"][i]["digest"]);
    EXPECT_EQ(layer["diff_id"], built["layers"][i]["diff_id"]);
    EXPECT_EQ(layer["format"], "zstd");
    const std::string blob =
        temp / ("layout/blobs/sha256/" + layer["digest"].get<std::string>().substr(7));
    EXPECT_EQ(layer["size"].get<std::uint64_t>(), std::filesystem::file_size(blob));
    EXPECT_EQ(sha256_of(test::read_file(blob)).to_string(), layer["digest"]);
  }
  // The index entry is tagged, the config lists both diff_ids and one history entry per layer.
  const auto index = nlohmann::json::parse(test::read_text(temp / "layout/index.json"));
  EXPECT_EQ(index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"], "v1");
  const auto config = nlohmann::json::parse(test::read_text(
      temp / ("layout/blobs/sha256/" + built["config_digest"].get<std::string>().substr(7))));
  EXPECT_EQ(config["rootfs"]["diff_ids"][1], built["layers"][1]["diff_id"]);
  EXPECT_EQ(config["history"].size(), 2U);
  EXPECT_EQ(config["created"], "1970-01-01T00:00:00Z");
  const auto text = test::run_tool("inspect " + (temp / "layout") + ":v1");
  EXPECT_EQ(text.exit_code, 0);
  EXPECT_NE(text.out.find("2 layers"), std::string::npos) << text.out;
  // A layout holding one image needs no tag.
  const auto untagged = run_tool_json("inspect " + (temp / "layout") + " --json");
  EXPECT_EQ(untagged["manifest"]["digest"], built["manifest_digest"]);
}

TEST(CliBuild, SameInputSameDigests) {
  TempDir temp;
  make_build_source(temp / "src");
  for (const std::string format : {"tar", "gzip", "gzip-zlib", "zstd"}) {
    SCOPED_TRACE(format);
    const std::string common = "build " + (temp / "src") + " --tag t --json --format " + format;
    const auto first = run_tool_json(common + " --layout " + (temp / ("a-" + format)));
    const auto second = run_tool_json(common + " --layout " + (temp / ("b-" + format)));
    EXPECT_EQ(first["manifest_digest"], second["manifest_digest"]);
    EXPECT_EQ(first["layers"][0]["digest"], second["layers"][0]["digest"]);
    if (format == "tar") {
      EXPECT_EQ(first["layers"][0]["digest"], first["layers"][0]["diff_id"]);
    }
  }
  const auto base =
      run_tool_json("build " + (temp / "src") + " --tag t --json --layout " + (temp / "base"));
  const auto epoch =
      run_tool_json("build " + (temp / "src") + " --tag t --json --layout " + (temp / "epoch"),
                    "SOURCE_DATE_EPOCH=1700000000");
  const auto option =
      run_tool_json("build " + (temp / "src") + " --tag t --json --mtime 1700000000 " +
                    "--layout " + (temp / "option"));
  EXPECT_NE(base["layers"][0]["diff_id"], epoch["layers"][0]["diff_id"]);
  EXPECT_EQ(epoch["manifest_digest"], option["manifest_digest"]);
}

TEST(CliBuild, TarInputsKeepTheirDiffId) {
  TempDir temp;
  make_build_source(temp / "src");
  ASSERT_EQ(test::shell("tar --sort=name --format=pax -C " + (temp / "src") + " -cf " +
                        (temp / "layer.tar") + " . && gzip -kn " + (temp / "layer.tar") +
                        " && zstd -q " + (temp / "layer.tar")),
            0);
  const std::string diff_id = sha256_of(test::read_file(temp / "layer.tar")).to_string();
  for (const std::string name : {"layer.tar", "layer.tar.gz", "layer.tar.zst"}) {
    SCOPED_TRACE(name);
    const auto built = run_tool_json("build " + (temp / name) + " --layout " + (temp / "layout") +
                                     " --tag t --json");
    EXPECT_EQ(built["layers"][0]["diff_id"], diff_id);
    EXPECT_EQ(built["layers"][0]["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip");
  }
}

TEST(CliBuild, ErrorsAreClear) {
  TempDir temp;
  make_build_source(temp / "src");
  auto result = test::run_tool("build " + (temp / "src") + " --layout " + (temp / "l") +
                               " --tag t --format lz4");
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("unknown --format 'lz4'"), std::string::npos) << result.err;
  result = test::run_tool("build " + (temp / "src") + " --layout " + (temp / "l") +
                          " --tag t --level 9");
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("outside 0..3"), std::string::npos) << result.err;
  result = test::run_tool("build " + (temp / "nope") + " --layout " + (temp / "l") + " --tag t");
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find(temp / "nope"), std::string::npos) << result.err;
  result = test::run_tool("build " + (temp / "src") + " --layout " + (temp / "l") + " --tag .bad");
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("not a valid tag"), std::string::npos) << result.err;

  const auto built =
      run_tool_json("build " + (temp / "src") + " --layout " + (temp / "l") + " --tag t --json");
  result = test::run_tool("inspect " + (temp / "l") + ":missing");
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("tag 'missing' not found"), std::string::npos) << result.err;
  // Swap the layer for other bytes: inspect still reads the JSON, --verify names the blob.
  const std::string layer = built["layers"][0]["digest"];
  const std::string blob = temp / ("l/blobs/sha256/" + layer.substr(7));
  std::string content = test::read_text(blob);
  content[content.size() - 3] = static_cast<char>(content[content.size() - 3] ^ 1);
  test::write_text(blob, content);
  EXPECT_EQ(test::run_tool("inspect " + (temp / "l") + ":t").exit_code, 0);
  result = test::run_tool("inspect " + (temp / "l") + ":t --verify");
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find(layer), std::string::npos) << result.err;
}

}  // namespace
}  // namespace strata
