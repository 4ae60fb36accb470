// Fixtures for the layer-input suites (tar reader, layer source, recipes): a scratch directory,
// shell commands run with the real GNU tar / gzip / zstd binaries (independent producers of the
// bytes under test), reading whole ByteSources, and the OCI reference layers of
// shared/testdata/oci with their expected digests.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "formats/byte_source.h"
#include "tests/test_support.h"

namespace strata::test {

class ScratchDir {
 public:
  ScratchDir() {
    char name[] = "/tmp/strata_layer_test_XXXXXX";
    if (mkdtemp(name) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = name;
  }
  ~ScratchDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Runs `command` with /bin/sh inside `directory`; true on exit status 0.
inline bool shell(const std::string& directory, const std::string& command) {
  const std::string line = "cd '" + directory + "' && (" + command + ") >/dev/null 2>&1";
  return std::system(line.c_str()) == 0;
}

inline void write_file(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

inline Result<std::vector<std::uint8_t>> read_all(ByteSource& source) {
  std::vector<std::uint8_t> bytes;
  std::vector<std::uint8_t> buffer(1U << 16U);
  while (true) {
    auto got = source.read(buffer);
    if (!got.ok()) return std::move(got).error();
    if (*got == 0) return bytes;
    bytes.insert(bytes.end(), buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(*got));
  }
}

struct ReferenceLayer {
  std::string name;  // "layout:tag"
  std::string blob_path;
  std::string media_type;
  std::string layer_digest;
  std::uint64_t layer_size = 0;
  std::string diff_id;
  std::uint64_t uncompressed_size = 0;
};

// Every layer listed in shared/testdata/oci/expected.json.
inline std::vector<ReferenceLayer> reference_layers() {
  const auto text = read_file(testdata_path("oci/expected.json"));
  const auto json = nlohmann::json::parse(text.begin(), text.end());
  std::vector<ReferenceLayer> layers;
  for (const auto& [name, entry] : json.items()) {
    ReferenceLayer layer;
    layer.name = name;
    const std::string layout = name.substr(0, name.find(':'));
    layer.layer_digest = entry.at("layer_digest").get<std::string>();
    layer.blob_path = testdata_path("oci/layouts/" + layout + "/blobs/sha256/" +
                                    layer.layer_digest.substr(std::string("sha256:").size()));
    layer.media_type = entry.at("layer_mediaType").get<std::string>();
    layer.layer_size = entry.at("layer_size").get<std::uint64_t>();
    layer.diff_id = entry.at("diff_id").get<std::string>();
    layer.uncompressed_size = entry.at("uncompressed_size").get<std::uint64_t>();
    layers.push_back(layer);
  }
  return layers;
}

}  // namespace strata::test
