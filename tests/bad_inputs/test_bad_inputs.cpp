// Hostile-input suite (shared/specs/reliability.md §5.2): every case of tests/bad_inputs/cases.json
// is generated here from fixed bytes (so the suite needs no committed binaries and each case shows
// in code which byte is wrong), fed to its entry point (layer ingest, recipe parse, OCI layout
// verify, OCI JSON parse, pack record check) and must fail with the ErrorCode and the message
// fragment the manifest names. Ingest and layout cases also run the `strata` CLI (exit code 1 or
// 2 and one line on stderr). Around every case a scratch root holds the store, the input and an
// empty sentinel directory: afterwards nothing outside the store may have changed, the sentinel
// must be empty, and the store must verify clean with exactly its earlier layers. Cases whose
// expected code is "ok" are inputs strata must accept byte-exact (absolute paths, "..", symlink
// then write through it, hard links out of the tree): ingest keeps them verbatim, the tar reader
// flags them (TarEntry::unsafe_path / unsafe_link), and each is also unpacked (unpack_layers) into
// a scratch directory, which must refuse it with the expected error or keep every write inside.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "core/store/pack_record.h"
#include "formats/compress/layer_source.h"
#include "formats/tar/tar_reader.h"
#include "strata/strata.h"
#include "tests/layer_fixtures.h"

namespace strata {
namespace {

using Bytes = std::vector<std::uint8_t>;
using test::append;
using test::append_content;
using test::append_end;
using test::make_header;
using test::make_pax;
using test::pax_record;

// ---- building blocks ----------------------------------------------------------------------

Bytes bytes_of(const std::string& text) {
  return {text.begin(), text.end()};
}

// A small valid tar: one file "hello.txt" with `content`, and the two end blocks.
Bytes small_tar(const std::string& content = "hello, hostile world\n") {
  Bytes tar = make_header("hello.txt", '0', content.size());
  append_content(tar, content);
  append_end(tar);
  return tar;
}

// A header whose 12-byte size field is replaced by `field` (checksum recomputed).
Bytes header_with_size_field(const Bytes& field) {
  Bytes block = make_header("f", '0', 0);
  std::copy(field.begin(), field.end(), block.begin() + 124);
  test::set_checksum(block);
  return block;
}

Bytes compress(oci::LayerCompression compression, const Bytes& tar) {
  Bytes blob;
  oci::LayerWriterOptions options;
  options.compression = compression;
  auto writer = oci::LayerWriter::create(options, [&blob](ByteSpan bytes) -> Result<void> {
    blob.insert(blob.end(), bytes.begin(), bytes.end());
    return {};
  });
  if (!writer.ok()) throw std::runtime_error(writer.error().to_string());
  if (!writer->write(tar).ok() || !writer->finish().ok()) throw std::runtime_error("compress");
  return blob;
}

Bytes gzip(const Bytes& tar) {
  return compress(oci::LayerCompression::kGzip, tar);
}
Bytes zstd(const Bytes& tar) {
  return compress(oci::LayerCompression::kZstd, tar);
}

// One zstd frame by hand (RFC 8878 §3.1.1): magic, a frame header descriptor, optional window
// descriptor / dictionary id / content size bytes, then one raw last block holding `content`.
Bytes zstd_frame(std::uint8_t descriptor, const Bytes& header_fields, const Bytes& content,
                 const Bytes& checksum = {}) {
  Bytes frame = {0x28, 0xb5, 0x2f, 0xfd, descriptor};
  append(frame, header_fields);
  const std::uint32_t block_header = 1U | (static_cast<std::uint32_t>(content.size()) << 3U);
  frame.push_back(static_cast<std::uint8_t>(block_header));
  frame.push_back(static_cast<std::uint8_t>(block_header >> 8U));
  frame.push_back(static_cast<std::uint8_t>(block_header >> 16U));
  append(frame, content);
  append(frame, checksum);
  return frame;
}

Bytes concat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& part : parts) append(out, part);
  return out;
}

Bytes recipe_bytes() {
  RecipeBuilder builder;
  builder.add_raw(small_tar());
  builder.add_chunk(sha256_of(bytes_of("chunk")), 5);
  Recipe recipe = builder.finish();
  return serialize_recipe(recipe);
}

Bytes pack_record_bytes() {
  const Bytes raw = bytes_of("a chunk of data");
  Bytes record;
  pack_record::append_record(sha256_of(raw), Codec::kRaw, static_cast<std::uint32_t>(raw.size()),
                             raw, record);
  return record;
}

// ---- OCI layouts ----------------------------------------------------------------------------

// Writes a one-layer image tagged "t" through the public API, letting `edit_config` and
// `edit_manifest` change the JSON objects before they are stored (their descriptors then
// match the edited bytes, so only the lie they contain is wrong).
void write_layout(const std::string& dir,
                  const std::function<void(nlohmann::json&)>& edit_config = {},
                  const std::function<void(nlohmann::json&)>& edit_manifest = {},
                  const Bytes& tar = small_tar()) {
  auto layout = oci::OciLayout::open_or_create(dir);
  if (!layout.ok()) throw std::runtime_error(layout.error().to_string());
  const Bytes blob = gzip(tar);
  auto layer = layout->write_blob(oci::kMediaTypeLayerTarGzip, blob);
  if (!layer.ok()) throw std::runtime_error(layer.error().to_string());
  oci::ImageConfig config;
  config.diff_ids.push_back(sha256_of(tar));
  auto config_json = nlohmann::json::parse(oci::write_image_config(config));
  if (edit_config) edit_config(config_json);
  const std::string config_text = config_json.dump();
  auto config_descriptor = layout->write_blob(
      oci::kMediaTypeImageConfig,
      ByteSpan(reinterpret_cast<const std::uint8_t*>(config_text.data()), config_text.size()));
  if (!config_descriptor.ok()) throw std::runtime_error(config_descriptor.error().to_string());
  oci::Manifest manifest;
  manifest.config = *config_descriptor;
  manifest.layers.push_back(*layer);
  auto manifest_json = nlohmann::json::parse(oci::write_manifest(manifest));
  if (edit_manifest) edit_manifest(manifest_json);
  const std::string manifest_text = manifest_json.dump();
  auto manifest_descriptor = layout->write_blob(
      oci::kMediaTypeImageManifest,
      ByteSpan(reinterpret_cast<const std::uint8_t*>(manifest_text.data()), manifest_text.size()));
  if (!manifest_descriptor.ok()) throw std::runtime_error(manifest_descriptor.error().to_string());
  if (!layout->set_tag("t", *manifest_descriptor).ok()) throw std::runtime_error("set_tag");
}

std::string blob_file(const std::string& dir, const std::string& digest) {
  return dir + "/blobs/sha256/" + digest.substr(7);
}

// The digest of the image's only layer.
std::string layer_digest_of(const std::string& dir) {
  auto layout = oci::OciLayout::open(dir);
  auto image = layout->load_image("t");
  return image->manifest.layers.at(0).digest.to_string();
}

std::string manifest_digest_of(const std::string& dir) {
  auto layout = oci::OciLayout::open(dir);
  return layout->index().manifests.at(0).digest.to_string();
}

void overwrite(const std::string& path, const Bytes& bytes) {
  std::filesystem::permissions(path, std::filesystem::perms::owner_write,
                               std::filesystem::perm_options::add);
  test::write_file(path, bytes);
}

// ---- the cases ------------------------------------------------------------------------------

struct CaseInput {
  Bytes bytes;  // byte entry points; layout cases fill the directory instead
};

using Generator = std::function<void(const std::string& layout_dir, CaseInput& input)>;

const std::map<std::string, Generator>& generators() {
  static const std::map<std::string, Generator> all = [] {
    std::map<std::string, Generator> cases;
    const auto bytes = [&cases](const std::string& id, std::function<Bytes()> make) {
      cases[id] = [make = std::move(make)](const std::string&, CaseInput& in) {
        in.bytes = make();
      };
    };

    // Compression layer (§5.2 items 1-18).
    bytes("empty_input", [] { return Bytes{}; });
    bytes("gzip_header_only", [] {
      Bytes blob = gzip(small_tar());
      blob.resize(10);
      return blob;
    });
    bytes("gzip_truncated_mid_deflate", [] {
      const Bytes content = test::splitmix64_bytes(1, 4096);
      Bytes tar = make_header("random", '0', content.size());
      append(tar, content);
      append_end(tar);
      Bytes blob = gzip(tar);
      blob.resize(blob.size() / 2);
      return blob;
    });
    bytes("gzip_bad_crc", [] {
      Bytes blob = gzip(small_tar());
      blob[blob.size() - 8] ^= 0x01U;
      return blob;
    });
    bytes("gzip_bad_isize", [] {
      Bytes blob = gzip(small_tar());
      blob[blob.size() - 4] ^= 0x01U;
      return blob;
    });
    bytes("gzip_trailing_garbage", [] {
      return concat({gzip(small_tar()), bytes_of("garbage!")});
    });
    bytes("gzip_bomb_over_cap", [] {
      Bytes tar = make_header("zeros", '0', 8U << 20U);
      tar.resize(tar.size() + (8U << 20U), 0);
      append_end(tar);
      return gzip(tar);
    });
    bytes("zstd_bomb_over_cap", [] {
      Bytes tar = make_header("zeros", '0', 8U << 20U);
      tar.resize(tar.size() + (8U << 20U), 0);
      append_end(tar);
      return zstd(tar);
    });
    bytes("zstd_window_log_31", [] {
      // Window descriptor 0xA8: exponent 21, windowLog 10 + 21 = 31 (2 GiB).
      return zstd_frame(0x00, {0xA8}, small_tar());
    });
    bytes("zstd_content_size_lie", [] {
      // Single segment, 1-byte Frame_Content_Size = 1, but the block holds 2048 bytes.
      return zstd_frame(0x20, {0x01}, small_tar());
    });
    bytes("zstd_needs_dictionary", [] {
      // Dictionary_ID_flag 1: a one-byte dictionary id 7 that strata does not have.
      return zstd_frame(0x21, {0x07, 0x00}, small_tar());
    });
    bytes("zstd_bad_checksum", [] {
      // Content_Checksum_flag set; the 4 checksum bytes are wrong.
      return zstd_frame(0x04, {0x58}, small_tar(), {0xde, 0xad, 0xbe, 0xef});
    });
    bytes("zstd_truncated", [] {
      const Bytes content = test::splitmix64_bytes(2, 8192);
      Bytes tar = make_header("random", '0', content.size());
      append(tar, content);
      append_end(tar);
      Bytes blob = zstd(tar);
      blob.resize(blob.size() - 100);
      return blob;
    });
    bytes("zstd_skippable_claims_4gib", [] {
      return concat({{0x50, 0x2a, 0x4d, 0x18, 0xff, 0xff, 0xff, 0xff}, Bytes(10, 0x41)});
    });
    bytes("zstd_trailing_garbage", [] {
      return concat({zstd(small_tar()), bytes_of("garbage!")});
    });
    bytes("xz_blob", [] { return concat({{0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00}, Bytes(600, 0)}); });
    bytes("bzip2_blob", [] { return concat({bytes_of("BZh91AY&SY"), Bytes(600, 0)}); });
    bytes("lz4_blob", [] { return concat({{0x04, 0x22, 0x4d, 0x18}, Bytes(600, 0)}); });

    // Tar structure (§5.2 items 19-41).
    bytes("tar_checksum_wrong", [] {
      Bytes tar = small_tar();
      tar[0] = 'H';  // name changed after the checksum was computed
      return tar;
    });
    bytes("tar_size_non_octal", [] {
      return concat({header_with_size_field(bytes_of("0000000009z\0")), Bytes(1024, 0)});
    });
    bytes("tar_size_base256_negative", [] {
      Bytes field(12, 0xff);  // base-256, sign bit set: -1
      return concat({header_with_size_field(field), Bytes(1024, 0)});
    });
    bytes("tar_size_base256_over_2_63", [] {
      Bytes field(12, 0);
      field[0] = 0x80;
      field[3] = 0x80;  // 2^63 in the remaining 95 bits
      return concat({header_with_size_field(field), Bytes(1024, 0)});
    });
    bytes("tar_size_8gib_nothing_follows", [] {
      // 8 GiB - 1: the largest size 11 octal digits hold.
      return concat({make_header("big", '0', (8ULL << 30U) - 1), Bytes(1024, 0)});
    });
    bytes("tar_truncated_in_data", [] {
      Bytes tar = make_header("f", '0', 1000);
      tar.resize(tar.size() + 700, 'x');
      return tar;
    });
    bytes("tar_truncated_in_padding", [] {
      Bytes tar = make_header("f", '0', 1000);
      tar.resize(tar.size() + 1010, 'x');
      return tar;
    });
    bytes("tar_truncated_in_header", [] {
      Bytes tar = small_tar();
      tar.resize(1024 + 300);
      std::fill(tar.begin() + 1024, tar.end(), 'h');
      return tar;
    });
    bytes("accept_bytes_after_end_blocks", [] {
      return concat({small_tar(), make_header("after-end", '0', 0)});
    });
    bytes("pax_size_lie_past_end", [] {
      // ustar size 0, pax size 1 MiB: the body would be 1 MiB, but only 512 bytes follow.
      return concat(
          {make_pax(pax_record("size", "1048576")), make_header("f", '0', 0), Bytes(512, 'x')});
    });
    bytes("pax_size_non_decimal", [] {
      return concat(
          {make_pax(pax_record("size", "12ab")), make_header("f", '0', 0), Bytes(1024, 0)});
    });
    bytes("pax_size_negative", [] {
      return concat({make_pax(pax_record("size", "-1")), make_header("f", '0', 0), Bytes(1024, 0)});
    });
    bytes("pax_record_length_too_big", [] {
      return concat({make_pax("99 path=x\n"), make_header("f", '0', 0), Bytes(1024, 0)});
    });
    bytes("pax_record_length_too_small", [] {
      return concat({make_pax("5 path=abcdef\n"), make_header("f", '0', 0), Bytes(1024, 0)});
    });
    bytes("pax_record_length_not_decimal", [] {
      return concat({make_pax("1x path=abc\n"), make_header("f", '0', 0), Bytes(1024, 0)});
    });
    bytes("pax_record_length_zero", [] {
      return concat({make_pax("0 \n"), make_header("f", '0', 0), Bytes(1024, 0)});
    });
    bytes("pax_record_missing_newline", [] {
      return concat({make_pax("11 path=abc"), make_header("f", '0', 0), Bytes(1024, 0)});
    });
    bytes("pax_record_missing_equals", [] {
      return concat({make_pax("9 pathab\n"), make_header("f", '0', 0), Bytes(1024, 0)});
    });
    bytes("pax_path_with_nul", [] {
      return concat({make_pax(pax_record("path", std::string("a\0b", 3))), make_header("f", '0', 0),
                     Bytes(1024, 0)});
    });
    bytes("pax_header_over_1mib", [] {
      const std::string records = pax_record("comment", std::string((1U << 20U) + 10, 'c'));
      return concat({make_pax(records), make_header("f", '0', 0), Bytes(1024, 0)});
    });
    bytes("pax_header_without_entry", [] { return concat({make_pax(pax_record("path", "x"))}); });
    bytes("gnu_longname_without_entry", [] {
      Bytes tar = make_header("././@LongLink", 'L', 12);
      append_content(tar, "a-long-name");
      append_end(tar);
      return tar;
    });
    bytes("gnu_longname_truncated", [] {
      Bytes tar = make_header("././@LongLink", 'L', 300);
      append(tar, Bytes(100, 'n'));
      return tar;
    });
    bytes("gnu_sparse_entry", [] {
      Bytes tar = make_header("sparse", 'S', 0);
      append_end(tar);
      return tar;
    });
    bytes("pax_gnu_sparse_huge_map", [] {
      const std::string records = pax_record("GNU.sparse.major", "1") +
                                  pax_record("GNU.sparse.minor", "0") +
                                  pax_record("GNU.sparse.realsize", "4611686018427387904");
      return concat({make_pax(records), make_header("sparse", '0', 0), Bytes(1024, 0)});
    });
    bytes("pax_gnu_sparse_0_1_map", [] {
      const std::string records = pax_record("GNU.sparse.map", "0,99999999999999,5,1");
      return concat({make_pax(records), make_header("sparse", '0', 0), Bytes(1024, 0)});
    });
    bytes("pax_path_over_64kib", [] {
      const std::string records = pax_record("path", std::string(70000, 'p'));
      return concat({make_pax(records), make_header("f", '0', 0), Bytes(1024, 0)});
    });
    bytes("pax_size_over_entry_cap", [] {
      // 2^41 bytes: over the 1 TiB per-entry cap, refused before reading on.
      return concat({make_pax(pax_record("size", "2199023255552")), make_header("f", '0', 0),
                     Bytes(1024, 0)});
    });
    bytes("hardlink_with_data_desyncs", [] {
      // A hard link carries no content whatever its size says (Go): the 512 "data" bytes are
      // read as the next header, whose checksum fails (CVE-2016-5418 class: never written).
      Bytes tar = make_header("link", '1', 512, "target");
      append(tar, Bytes(512, 'A'));
      append_end(tar);
      return tar;
    });
    bytes("pax_size_shorter_than_data", [] {
      // Overlapping entries: pax size 10 claims the body ends early; the rest of the real body
      // is then read as a header and refused.
      Bytes tar = make_pax(pax_record("size", "10"));
      append(tar, make_header("f", '0', 1024));
      append(tar, Bytes(1024, 'B'));
      append_end(tar);
      return tar;
    });
    bytes("tar_non_zero_end_padding_then_header", [] {
      Bytes tar = small_tar();
      tar.resize(tar.size() - 1024 + 512);  // one zero block ...
      append(tar, Bytes(512, 'Z'));         // ... then garbage where the second should be
      return tar;
    });
    bytes("tar_mode_garbage", [] {
      Bytes block = make_header("f", '0', 0);
      std::copy_n("zzzzzzz", 7, block.begin() + 100);
      test::set_checksum(block);
      return concat({block, Bytes(1024, 0)});
    });
    bytes("accept_uid_base256_negative", [] {
      Bytes block = make_header("f", '0', 0);
      std::fill_n(block.begin() + 108, 8, 0xff);
      test::set_checksum(block);
      return concat({block, Bytes(1024, 0)});
    });
    bytes("tar_mtime_base256_2_94", [] {
      Bytes block = make_header("f", '0', 0);
      std::fill_n(block.begin() + 136, 12, 0);
      block[136] = 0x80;
      block[137] = 0x40;  // 2^94: far over 2^63
      test::set_checksum(block);
      return concat({block, Bytes(1024, 0)});
    });

    // Accepted byte-exact and flagged by ingest; `unpack` refuses or confines them.
    bytes("accept_absolute_path", [] {
      Bytes tar = make_header("/etc/passwd", '0', 5);
      append_content(tar, "root\n");
      append_end(tar);
      return tar;
    });
    bytes("accept_dotdot_path", [] {
      Bytes tar = make_header("a/../../x", '0', 3);
      append_content(tar, "xyz");
      append_end(tar);
      return tar;
    });
    bytes("accept_symlink_then_write_through", [] {
      Bytes tar = make_header("l", '2', 0, "../../host");
      append(tar, make_header("l/authorized_keys", '0', 4));
      append_content(tar, "key\n");
      append_end(tar);
      return tar;
    });
    bytes("accept_hardlink_out_of_tree", [] {
      Bytes tar = make_header("shadow", '1', 0, "/etc/shadow");
      append(tar, make_header("up", '1', 0, "../x"));
      append_end(tar);
      return tar;
    });
    // Unpack breakouts (reliability.md §1a), unpacked by the test into <scratch>/u/n/unpack, so
    // "../../.." from a link there resolves, unconfined, to the scratch root itself.
    bytes("accept_symlink_to_root_then_write", [] {
      Bytes tar = make_header("l", '2', 0, "/");
      append(tar, make_header("l/input.bin", '0', 4));
      append_content(tar, "pwn\n");
      append_end(tar);
      return tar;
    });
    bytes("accept_whiteout_through_symlink", [] {
      Bytes tar = make_header("l", '2', 0, "../../..");
      append(tar, make_header("l/.wh.sentinel", '0', 0));
      append(tar, make_header("l/.wh.input.bin", '0', 0));
      append_end(tar);
      return tar;
    });
    bytes("accept_opaque_whiteout_through_symlink", [] {
      Bytes tar = make_header("l", '2', 0, "../../..");
      append(tar, make_header("l/sentinel/.wh..wh..opq", '0', 0));
      append_end(tar);
      return tar;
    });
    bytes("accept_directory_over_symlink", [] {
      Bytes tar = make_header("d", '2', 0, "../../../sentinel");
      Bytes directory = make_header("d/", '5');
      test::set_octal(directory, 100, 8, 0777);
      test::set_checksum(directory);
      append(tar, directory);
      append_end(tar);
      return tar;
    });
    bytes("accept_hardlink_through_symlink", [] {
      Bytes tar = make_header("l", '2', 0, "../../..");
      append(tar, make_header("stolen", '1', 0, "l/input.bin"));
      append_end(tar);
      return tar;
    });
    bytes("accept_root_replaced_by_symlink", [] {
      Bytes tar = make_header("./", '2', 0, "/");
      append(tar, make_header("input.bin", '0', 4));
      append_content(tar, "pwn\n");
      append_end(tar);
      return tar;
    });
    bytes("accept_duplicate_entries", [] {
      Bytes tar = make_header("dup", '0', 3);
      append_content(tar, "one");
      append(tar, make_header("dup", '0', 3));
      append_content(tar, "two");
      append_end(tar);
      return tar;
    });
    bytes("accept_pax_path_non_utf8", [] {
      Bytes tar = make_pax(pax_record("path", "bad\xff\xfe-utf8"));
      append(tar, make_header("f", '0', 1));
      append_content(tar, "u");
      append_end(tar);
      return tar;
    });
    bytes("accept_gzip_two_members", [] {
      const Bytes tar = small_tar();
      const Bytes half(tar.begin(), tar.begin() + 1024);
      const Bytes rest(tar.begin() + 1024, tar.end());
      return concat({gzip(half), gzip(rest)});
    });

    bytes("accept_empty_tar", [] { return Bytes(1024, 0); });
    bytes("accept_gzip_100k_empty_members", [] {
      // 100,000 empty gzip members, then one holding the tar (CVE-2022-30631: no recursion).
      const Bytes empty_member = gzip({});
      Bytes blob;
      blob.reserve(empty_member.size() * 100000 + 256);
      for (int i = 0; i < 100000; ++i) append(blob, empty_member);
      append(blob, gzip(small_tar()));
      return blob;
    });

    // Recipes.
    bytes("recipe_empty", [] { return Bytes{}; });
    bytes("recipe_bad_magic", [] {
      Bytes recipe = recipe_bytes();
      recipe[0] = 'X';
      return recipe;
    });
    bytes("recipe_truncated", [] {
      Bytes recipe = recipe_bytes();
      recipe.resize(recipe.size() / 2);
      return recipe;
    });
    bytes("recipe_checksum_flip", [] {
      Bytes recipe = recipe_bytes();
      recipe.back() ^= 0x80U;
      return recipe;
    });
    bytes("recipe_body_flip", [] {
      Bytes recipe = recipe_bytes();
      recipe[recipe.size() / 2] ^= 0x01U;
      return recipe;
    });
    bytes("recipe_trailing_byte", [] { return concat({recipe_bytes(), {0x00}}); });

    // Pack records.
    bytes("pack_record_truncated", [] {
      Bytes record = pack_record_bytes();
      record.erase(record.end() - 3, record.end());
      return record;
    });
    bytes("pack_record_bad_magic", [] {
      Bytes record = pack_record_bytes();
      record[0] ^= 0xffU;
      return record;
    });
    bytes("pack_record_payload_flip", [] {
      Bytes record = pack_record_bytes();
      record[pack_record::kRecordHeaderSize + 2] ^= 0x04U;
      return record;
    });
    bytes("pack_record_stored_length_lie", [] {
      Bytes record = pack_record_bytes();
      record[12] = 0xff;  // stored_length low byte: now larger than the record
      return record;
    });

    // OCI JSON (manifest parse).
    bytes("manifest_truncated_json", [] {
      std::string text =
          R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:)";
      return bytes_of(text);
    });
    bytes("manifest_uppercase_digest", [] {
      return bytes_of(
          R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"SHA256:)" +
          std::string(64, 'A') + R"(","size":2},"layers":[]})");
    });
    bytes("manifest_digest_path_traversal", [] {
      return bytes_of(
          R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:../../../../etc/passwd","size":2},"layers":[]})");
    });
    bytes("manifest_negative_size", [] {
      return bytes_of(
          R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:)" +
          std::string(64, 'a') + R"(","size":-5},"layers":[]})");
    });
    bytes("manifest_is_an_index", [] { return bytes_of(R"({"schemaVersion":2,"manifests":[]})"); });

    // OCI layouts on disk.
    cases["layout_blob_digest_mismatch"] = [](const std::string& dir, CaseInput&) {
      write_layout(dir);
      const std::string path = blob_file(dir, layer_digest_of(dir));
      Bytes blob = test::read_file(path);
      blob[blob.size() / 2] ^= 0x01U;
      overwrite(path, blob);
    };
    cases["layout_blob_truncated"] = [](const std::string& dir, CaseInput&) {
      write_layout(dir);
      const std::string path = blob_file(dir, layer_digest_of(dir));
      Bytes blob = test::read_file(path);
      blob.resize(blob.size() - 5);
      overwrite(path, blob);
    };
    cases["layout_manifest_layer_size_larger"] = [](const std::string& dir, CaseInput&) {
      write_layout(dir, {}, [](nlohmann::json& manifest) {
        manifest["layers"][0]["size"] = manifest["layers"][0]["size"].get<std::uint64_t>() + 1;
      });
    };
    cases["layout_manifest_layer_size_smaller"] = [](const std::string& dir, CaseInput&) {
      write_layout(dir, {}, [](nlohmann::json& manifest) {
        manifest["layers"][0]["size"] = manifest["layers"][0]["size"].get<std::uint64_t>() - 1;
      });
    };
    cases["layout_config_size_wrong"] = [](const std::string& dir, CaseInput&) {
      write_layout(dir, {}, [](nlohmann::json& manifest) {
        manifest["config"]["size"] = manifest["config"]["size"].get<std::uint64_t>() + 7;
      });
    };
    cases["layout_diff_id_mismatch"] = [](const std::string& dir, CaseInput&) {
      write_layout(dir, [](nlohmann::json& config) {
        config["rootfs"]["diff_ids"][0] = sha256_of(bytes_of("other")).to_string();
      });
    };
    cases["layout_diff_ids_count"] = [](const std::string& dir, CaseInput&) {
      write_layout(dir, [](nlohmann::json& config) {
        config["rootfs"]["diff_ids"].push_back(sha256_of(bytes_of("x")).to_string());
      });
    };
    cases["layout_media_type_says_zstd_bytes_are_gzip"] = [](const std::string& dir, CaseInput&) {
      write_layout(dir, {}, [](nlohmann::json& manifest) {
        manifest["layers"][0]["mediaType"] = std::string(oci::kMediaTypeLayerTarZstd);
      });
    };
    cases["layout_index_json_truncated"] = [](const std::string& dir, CaseInput&) {
      write_layout(dir);
      Bytes index = test::read_file(dir + "/index.json");
      index.resize(index.size() / 2);
      overwrite(dir + "/index.json", index);
    };
    cases["layout_manifest_blob_truncated"] = [](const std::string& dir, CaseInput&) {
      write_layout(dir);
      const std::string path = blob_file(dir, manifest_digest_of(dir));
      Bytes manifest = test::read_file(path);
      manifest.resize(manifest.size() / 2);
      overwrite(path, manifest);
    };
    cases["layout_version_wrong"] = [](const std::string& dir, CaseInput&) {
      write_layout(dir);
      overwrite(dir + "/oci-layout", bytes_of(R"({"imageLayoutVersion":"9.9.9"})"));
    };
    cases["layout_layer_blob_missing"] = [](const std::string& dir, CaseInput&) {
      write_layout(dir);
      std::filesystem::remove(blob_file(dir, layer_digest_of(dir)));
    };

    // A store whose index.db was truncated or lost: `dir` becomes a store holding one layer,
    // closed (so its WAL is checkpointed into index.db), then damaged.
    const auto broken_store = [&cases](const std::string& id,
                                       std::function<void(const std::string&)> damage) {
      cases[id] = [damage = std::move(damage)](const std::string& dir, CaseInput&) {
        {
          StoreOptions options;
          options.create_if_missing = true;
          auto store = ChunkStore::open(dir, options);
          if (!store.ok()) throw std::runtime_error(store.error().to_string());
          IngestOptions ingest;
          ingest.threads = 1;
          if (!ingest_layer_bytes(*store, small_tar(std::string(5000, 's')), ingest).ok()) {
            throw std::runtime_error("cannot ingest into " + dir);
          }
        }
        if (std::filesystem::exists(dir + "/index.db-wal")) {
          throw std::runtime_error("the closed store kept its WAL");
        }
        damage(dir + "/index.db");
      };
    };
    broken_store("store_index_truncated_to_zero",
                 [](const std::string& index) { std::filesystem::resize_file(index, 0); });
    broken_store("store_index_missing",
                 [](const std::string& index) { std::filesystem::remove(index); });
    broken_store("store_index_truncated_half", [](const std::string& index) {
      std::filesystem::resize_file(index, std::filesystem::file_size(index) / 2);
    });
    return cases;
  }();
  return all;
}

// ---- the manifest ---------------------------------------------------------------------------

struct Case {
  std::string id;
  std::string entry;     // ingest | recipe | pack-record | oci-manifest | oci-layout
  std::string code;      // error_code_name(), or "ok" for inputs that must be accepted
  std::string fragment;  // must appear in the message (or, for "ok", a TarEntry flag)
  bool cli = false;      // also run through the strata tool
  std::uint64_t max_uncompressed_bytes = 0;  // ingest cap for bomb cases (0: default)
  std::string unpack;           // accepted layers: "ok" or the error code unpack_layers gives
  std::string unpack_fragment;  // and what its message must contain
};

// gtest prints a failing parameter by its id.
void PrintTo(const Case& c, std::ostream* out) {
  *out << c.id;
}

std::vector<Case> load_cases() {
  const auto text =
      test::read_file(std::string(STRATA_SOURCE_DIR) + "/tests/bad_inputs/cases.json");
  const auto json = nlohmann::json::parse(text.begin(), text.end());
  std::vector<Case> cases;
  for (const auto& item : json.at("cases")) {
    Case c;
    c.id = item.at("id").get<std::string>();
    c.entry = item.at("entry").get<std::string>();
    c.code = item.at("code").get<std::string>();
    c.fragment = item.at("fragment").get<std::string>();
    c.cli = item.value("cli", false);
    c.max_uncompressed_bytes = item.value("max_uncompressed_bytes", std::uint64_t{0});
    c.unpack = item.value("unpack", std::string());
    c.unpack_fragment = item.value("unpack_fragment", std::string());
    cases.push_back(c);
  }
  return cases;
}

// ---- the oracle -----------------------------------------------------------------------------

// Every path under `root` (but not under one of `skips`) with its size and mode: what
// "nothing else was written" is checked against.
std::map<std::string, std::pair<std::uintmax_t, unsigned>> snapshot(
    const std::string& root, const std::vector<std::string>& skips) {
  std::map<std::string, std::pair<std::uintmax_t, unsigned>> files;
  for (auto it = std::filesystem::recursive_directory_iterator(root);
       it != std::filesystem::recursive_directory_iterator(); ++it) {
    const std::string path = it->path().string();
    if (std::any_of(skips.begin(), skips.end(),
                    [&path](const std::string& skip) { return path.rfind(skip, 0) == 0; })) {
      it.disable_recursion_pending();
      continue;
    }
    struct stat info {};
    ::lstat(path.c_str(), &info);
    files[path] = {it->is_regular_file() ? it->file_size() : 0, info.st_mode};
  }
  return files;
}

std::vector<std::string> layer_ids(const ChunkStore& store) {
  auto layers = store.list_layers();
  EXPECT_TRUE(layers.ok());
  std::vector<std::string> ids;
  if (layers.ok()) {
    for (const LayerRecord& layer : *layers) ids.push_back(layer.diff_id.to_string());
  }
  return ids;
}

void expect_error(const Error& error, const Case& c) {
  EXPECT_EQ(error_code_name(error.code), c.code) << error.to_string();
  EXPECT_NE(error.message.find(c.fragment), std::string::npos)
      << "message '" << error.message << "' lacks '" << c.fragment << "'";
}

template <typename T>
void expect_result(const Result<T>& result, const Case& c) {
  if (result.ok()) {
    ADD_FAILURE() << c.id << " was accepted";
    return;
  }
  expect_error(result.error(), c);
}

// The CLI turns the error into exit code 1 (2 for invalid_argument) and exactly one stderr line.
void expect_cli_error(const test::CommandResult& run, const Case& c) {
  EXPECT_EQ(run.exit_code, c.code == "invalid_argument" ? 2 : 1) << run.err;
  EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << run.err;
  EXPECT_NE(run.err.find(c.fragment), std::string::npos) << run.err;
}

bool tool_built() {
  return std::string(STRATA_TOOL_PATH).size() > 0;
}

// Flags the tar reader raises over the (uncompressed) layer.
std::set<std::string> tar_flags(const Bytes& blob) {
  std::set<std::string> flags;
  auto source = LayerSource::open(std::make_unique<MemoryByteSource>(blob));
  if (!source.ok()) return flags;
  TarReader reader(**source);
  while (true) {
    auto event = reader.next();
    if (!event.ok() || event->kind == TarEventKind::kDone) break;
    if (event->kind != TarEventKind::kHeader) continue;
    if (event->entry->unsafe_path) flags.insert("unsafe_path");
    if (event->entry->unsafe_link) flags.insert("unsafe_link");
  }
  return flags;
}

Bytes decompressed(const Bytes& blob) {
  auto source = LayerSource::open(std::make_unique<MemoryByteSource>(blob));
  if (!source.ok()) return {};
  auto bytes = test::read_all(**source);
  return bytes.ok() ? std::move(bytes).value() : Bytes{};
}

class BadInput : public testing::TestWithParam<Case> {};

TEST_P(BadInput, FailsWithTheExpectedErrorAndTouchesNothing) {
  const Case& c = GetParam();
  const auto generator = generators().find(c.id);
  ASSERT_NE(generator, generators().end()) << "no generator for " << c.id;

  test::ScratchDir scratch;
  const std::string store_dir = scratch.file("store");
  const std::string sentinel = scratch.file("sentinel");
  std::filesystem::create_directories(sentinel);
  StoreOptions store_options;
  store_options.create_if_missing = true;
  auto store = ChunkStore::open(store_dir, store_options);
  ASSERT_TRUE(store.ok()) << store.error().to_string();
  IngestOptions options;
  options.threads = 2;
  auto baseline = ingest_layer_bytes(*store, small_tar("baseline layer\n"), options);
  ASSERT_TRUE(baseline.ok()) << baseline.error().to_string();
  const auto layers_before = layer_ids(*store);

  CaseInput input;
  const std::string layout_dir = scratch.file("layout");
  generator->second(layout_dir, input);
  const std::string input_path = scratch.file("input.bin");
  test::write_file(input_path, input.bytes);
  // The store and, for store-open cases, the damaged copy are destinations strata may write.
  const std::string writable = c.entry == "store-open" ? layout_dir : store_dir;
  // Accepted layers are also unpacked, deep enough that "../../.." from there is the scratch root.
  const std::string unpack_dir = scratch.file("u/n/unpack");
  std::filesystem::create_directories(unpack_dir);
  const std::vector<std::string> destinations = {store_dir, writable, unpack_dir};
  const auto files_before = snapshot(scratch.path(), destinations);
  if (c.max_uncompressed_bytes != 0) options.max_uncompressed_bytes = c.max_uncompressed_bytes;

  bool accepted_layer = false;
  if (c.entry == "ingest" && c.code == "ok") {
    auto report = ingest_layer_file(*store, input_path, options);
    ASSERT_TRUE(report.ok()) << report.error().to_string();
    accepted_layer = true;
    const Bytes tar = decompressed(input.bytes);
    EXPECT_EQ(report->diff_id, sha256_of(tar));
    Bytes exported;
    auto exported_report =
        export_layer_tar(*store, report->diff_id, [&exported](ByteSpan bytes) -> Result<void> {
          exported.insert(exported.end(), bytes.begin(), bytes.end());
          return {};
        });
    ASSERT_TRUE(exported_report.ok()) << exported_report.error().to_string();
    EXPECT_EQ(exported, tar) << "accepted input must export byte-exact";
    if (c.fragment != "none") {
      EXPECT_TRUE(tar_flags(input.bytes).count(c.fragment))
          << "tar reader must flag " << c.fragment;
    }
    ASSERT_FALSE(c.unpack.empty()) << "accepted cases name their unpack outcome";
    auto unpacked = unpack_layers({input_path}, unpack_dir);
    if (c.unpack == "ok") {
      EXPECT_TRUE(unpacked.ok()) << unpacked.error().to_string();
    } else if (unpacked.ok()) {
      ADD_FAILURE() << c.id << " was unpacked";
    } else {
      EXPECT_EQ(error_code_name(unpacked.error().code), c.unpack) << unpacked.error().to_string();
      EXPECT_NE(unpacked.error().message.find(c.unpack_fragment), std::string::npos)
          << unpacked.error().message;
    }
  } else if (c.entry == "ingest") {
    expect_result(ingest_layer_file(*store, input_path, options), c);
    if (c.cli && tool_built() && c.max_uncompressed_bytes == 0) {
      expect_cli_error(test::run_tool("ingest --store '" + store_dir + "' '" + input_path + "'"),
                       c);
    }
  } else if (c.entry == "recipe") {
    expect_result(parse_recipe(input.bytes), c);
  } else if (c.entry == "pack-record") {
    expect_result(pack_record::check_record(input.bytes), c);
  } else if (c.entry == "oci-manifest") {
    expect_result(oci::parse_manifest(input.bytes), c);
  } else if (c.entry == "store-open") {
    // As `strata ingest` opens a store: creating it when missing.
    auto broken = ChunkStore::open(layout_dir, store_options);
    if (!broken.ok()) {
      expect_error(broken.error(), c);
    } else {
      auto report = broken->verify();
      if (report.ok() && report->clean()) ADD_FAILURE() << c.id << " opened and verified clean";
      if (!report.ok()) expect_error(report.error(), c);
    }
    if (c.cli && tool_built()) {
      expect_cli_error(test::run_tool("ls --store '" + layout_dir + "'"), c);
    }
  } else if (c.entry == "oci-layout") {
    auto layout = oci::OciLayout::open(layout_dir);
    if (!layout.ok()) {
      expect_error(layout.error(), c);
    } else {
      expect_result(layout->verify_image("t"), c);
    }
    if (c.cli && tool_built()) {
      expect_cli_error(test::run_tool("inspect --verify '" + layout_dir + ":t'"), c);
    }
  } else {
    FAIL() << "unknown entry point " << c.entry;
  }

  EXPECT_EQ(snapshot(scratch.path(), destinations), files_before)
      << "files outside the store changed";
  EXPECT_TRUE(std::filesystem::is_empty(sentinel));
  auto verified = store->verify();
  ASSERT_TRUE(verified.ok()) << verified.error().to_string();
  EXPECT_TRUE(verified->clean());
  const auto layers_after = layer_ids(*store);
  EXPECT_EQ(layers_after.size(), layers_before.size() + (accepted_layer ? 1U : 0U));
  EXPECT_TRUE(std::equal(layers_before.begin(), layers_before.end(), layers_after.begin()));
}

INSTANTIATE_TEST_SUITE_P(Manifest, BadInput, testing::ValuesIn(load_cases()),
                         [](const testing::TestParamInfo<Case>& case_info) {
                           return case_info.param.id;
                         });

TEST(BadInputManifest, EveryGeneratorHasACaseAndThereAreAtLeastFifty) {
  const auto cases = load_cases();
  std::set<std::string> ids;
  for (const Case& c : cases) EXPECT_TRUE(ids.insert(c.id).second) << "duplicate " << c.id;
  for (const auto& [id, generator] : generators()) EXPECT_TRUE(ids.count(id)) << id;
  EXPECT_GE(cases.size(), 50U);
}

}  // namespace
}  // namespace strata
