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

#include "core/base/byte_source.h"
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

namespace strata::test {

// One 512-byte ustar header with a valid checksum; fields are written as octal text.
struct HeaderSpec {
  std::string name = "file";
  char typeflag = '0';
  std::uint64_t size = 0;
  std::string linkname;
  std::string magic = std::string(
      "ustar\0"
      "00",
      8);
};

inline void set_octal(std::vector<std::uint8_t>& block, std::size_t offset, std::size_t length,
                      std::uint64_t value) {
  std::string text(length - 1, '0');
  for (std::size_t i = length - 1; i-- > 0;) {
    text[i] = static_cast<char>('0' + (value & 7U));
    value >>= 3U;
  }
  std::copy(text.begin(), text.end(), block.begin() + static_cast<std::ptrdiff_t>(offset));
  block[offset + length - 1] = 0;
}

inline void set_checksum(std::vector<std::uint8_t>& block) {
  std::fill(block.begin() + 148, block.begin() + 156, ' ');
  unsigned sum = 0;
  for (const std::uint8_t byte : block) sum += byte;
  set_octal(block, 148, 7, sum);
  block[155] = ' ';
}

// One 512-byte POSIX ustar header with a valid checksum; fields are written as octal text.
inline std::vector<std::uint8_t> make_header(const std::string& name, char typeflag = '0',
                                             std::uint64_t size = 0,
                                             const std::string& linkname = "") {
  const std::string magic(
      "ustar\0"
      "00",
      8);
  std::vector<std::uint8_t> block(512, 0);
  std::copy(name.begin(),
            name.begin() + static_cast<std::ptrdiff_t>(std::min<std::size_t>(name.size(), 100)),
            block.begin());
  set_octal(block, 100, 8, 0644);
  set_octal(block, 108, 8, 0);
  set_octal(block, 116, 8, 0);
  set_octal(block, 124, 12, size);
  set_octal(block, 136, 12, 1700000000);
  block[156] = static_cast<std::uint8_t>(typeflag);
  std::copy(linkname.begin(), linkname.end(), block.begin() + 157);
  std::copy(magic.begin(), magic.end(), block.begin() + 257);
  set_checksum(block);
  return block;
}

inline void append(std::vector<std::uint8_t>& out, const std::vector<std::uint8_t>& bytes) {
  out.insert(out.end(), bytes.begin(), bytes.end());
}

// Content padded to 512 bytes.
inline void append_content(std::vector<std::uint8_t>& out, const std::string& content) {
  out.insert(out.end(), content.begin(), content.end());
  out.resize((out.size() + 511) / 512 * 512, 0);
}

inline void append_end(std::vector<std::uint8_t>& out) {
  out.resize(out.size() + 1024, 0);
}

// A pax record "<len> key=value\n" with a correct length.
inline std::string pax_record(const std::string& key, const std::string& value) {
  const std::size_t body = key.size() + value.size() + 3;  // ' ', '=', '\n'
  std::size_t length = body + 1;
  while (std::to_string(length).size() + body != length) ++length;
  return std::to_string(length) + " " + key + "=" + value + "\n";
}

// An 'x' (or 'g') header with its records, padded.
inline std::vector<std::uint8_t> make_pax(const std::string& records, char typeflag = 'x') {
  std::vector<std::uint8_t> out = make_header("PaxHeaders/file", typeflag, records.size());
  append_content(out, records);
  return out;
}

// Fills `root` with a deterministic tree: nested directories, files of random sizes (some
// empty, some spanning several 1 MiB reader blocks), long names (over 100 bytes, which ustar
// cannot hold in one component) when asked, symlinks, hard links.
inline void make_random_tree(const std::string& root, std::uint64_t seed, int files,
                             bool long_names = true) {
  std::uint64_t state = seed;
  const auto next = [&state] {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return state >> 33U;
  };
  std::filesystem::create_directories(root);
  std::vector<std::string> paths;
  for (int i = 0; i < files; ++i) {
    std::string directory = root;
    const auto depth = next() % 4;
    for (std::uint64_t d = 0; d < depth; ++d)
      directory += std::string("/d") + std::to_string(next() % 3);
    std::filesystem::create_directories(directory);
    std::string name = std::string("f") + std::to_string(i);
    if (next() % 5 == 0 && long_names) name += std::string(90 + next() % 80, 'n');
    const std::string path = directory + "/" + name;
    const std::size_t sizes[] = {0, 1, 511, 512, 513, 4096, 70000, 300000, 2500000};
    const std::size_t size = sizes[next() % 9];
    write_file(path, splitmix64_bytes(next(), size));
    paths.push_back(path);
    if (next() % 6 == 0) {
      std::filesystem::create_symlink(name, directory + std::string("/sym") + std::to_string(i));
    }
    if (next() % 7 == 0)
      std::filesystem::create_hard_link(path, directory + std::string("/hard") + std::to_string(i));
  }
}

}  // namespace strata::test
