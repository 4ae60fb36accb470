// TarReader: archives written by GNU tar (gnu, ustar, pax formats; long names and links, hard
// and symbolic links, devices or fifos, empty files, xattr records, 10 KiB record padding) are
// read with the same entry list `tar -tf` prints and the same content as the files on disk, and
// the event bytes put back together equal the archive; hand-made headers pin the Go
// archive/tar interpretation rules; malformed archives fail with the right code and message.
// Buffers lent by the caller (TarReadBuffers) give the same events, and the bytes of every event
// but header groups stay where they were handed out.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <list>
#include <map>
#include <sstream>

#include "formats/tar/tar_reader.h"
#include "tests/layer_fixtures.h"

namespace strata {
namespace {

using test::append;
using test::append_content;
using test::append_end;
using test::make_header;
using test::make_pax;
using test::pax_record;

// Hands out at most `step` bytes per read (cycling through smaller sizes), to cross every
// buffer boundary the reader has.
class TrickleByteSource final : public ByteSource {
 public:
  TrickleByteSource(ByteSpan bytes, std::size_t step) : bytes_(bytes), step_(step) {}
  Result<std::size_t> read(MutableByteSpan out) override {
    const std::size_t want = 1 + (calls_++ * 7919) % step_;
    const std::size_t count = std::min({out.size(), want, bytes_.size() - position_});
    std::copy_n(bytes_.begin() + static_cast<std::ptrdiff_t>(position_), count, out.begin());
    position_ += count;
    return count;
  }

 private:
  ByteSpan bytes_;
  std::size_t step_;
  std::size_t position_ = 0;
  std::size_t calls_ = 0;
};

struct ParsedTar {
  std::vector<TarEntry> entries;
  std::vector<std::vector<std::uint8_t>> contents;  // one per entry
  std::vector<std::uint8_t> reassembled;            // every event's bytes, in order
  std::uint64_t end_offset = 0;                     // offset of the end-of-archive blocks
  std::uint64_t trailing_bytes = 0;
  bool saw_end = false;
};

Result<ParsedTar> parse(ByteSource& source, const TarLimits& limits = {}) {
  TarReader reader(source, limits);
  ParsedTar parsed;
  while (true) {
    auto event = reader.next();
    if (!event.ok()) return std::move(event).error();
    EXPECT_EQ(event->offset, parsed.reassembled.size());
    parsed.reassembled.insert(parsed.reassembled.end(), event->bytes.begin(), event->bytes.end());
    switch (event->kind) {
      case TarEventKind::kHeader:
        parsed.entries.push_back(*event->entry);
        parsed.contents.emplace_back();
        break;
      case TarEventKind::kContent:
        parsed.contents.back().insert(parsed.contents.back().end(), event->bytes.begin(),
                                      event->bytes.end());
        break;
      case TarEventKind::kPadding: EXPECT_LT(event->bytes.size(), 512U); break;
      case TarEventKind::kEndOfArchive:
        parsed.saw_end = true;
        parsed.end_offset = event->offset;
        break;
      case TarEventKind::kTrailingBytes: parsed.trailing_bytes += event->bytes.size(); break;
      case TarEventKind::kDone:
        EXPECT_EQ(reader.offset(), parsed.reassembled.size());
        return parsed;
    }
  }
}

Result<ParsedTar> parse_bytes(const std::vector<std::uint8_t>& bytes,
                              const TarLimits& limits = {}) {
  MemoryByteSource source(bytes);
  return parse(source, limits);
}

void expect_error(const Result<ParsedTar>& result, ErrorCode code, const std::string& fragment) {
  ASSERT_FALSE(result.ok()) << "expected an error containing '" << fragment << "'";
  EXPECT_EQ(result.error().code, code) << result.error().to_string();
  EXPECT_NE(result.error().message.find(fragment), std::string::npos) << result.error().to_string();
}

std::vector<std::string> lines_of(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

// Checks a GNU-tar-made archive: entry names equal `tar -tf`, regular file content equals the
// file under `root`, and the events reassemble the archive, in one read and in trickled reads.
void check_against_gnu_tar(const test::ScratchDir& scratch, const std::string& tar_name,
                           const std::string& root) {
  const auto bytes = test::read_file(scratch.file(tar_name));
  auto parsed = parse_bytes(bytes);
  ASSERT_TRUE(parsed.ok()) << parsed.error().to_string();
  EXPECT_EQ(parsed->reassembled, bytes);
  EXPECT_TRUE(parsed->saw_end);
  ASSERT_TRUE(test::shell(scratch.path(), "tar -tf " + tar_name + " > listing.txt"));
  const auto listing = lines_of(scratch.file("listing.txt"));
  std::vector<std::string> paths;
  for (std::size_t i = 0; i < parsed->entries.size(); ++i) {
    const TarEntry& entry = parsed->entries[i];
    if (entry.type == TarEntryType::kGlobalHeader) continue;
    paths.push_back(entry.path);
    if (entry.type == TarEntryType::kRegular) {
      EXPECT_EQ(parsed->contents[i], test::read_file(root + "/" + entry.path)) << entry.path;
    } else {
      EXPECT_TRUE(parsed->contents[i].empty()) << entry.path;
    }
  }
  EXPECT_EQ(paths, listing);

  TrickleByteSource trickle(bytes, 1500);
  auto trickled = parse(trickle);
  ASSERT_TRUE(trickled.ok()) << trickled.error().to_string();
  EXPECT_EQ(trickled->reassembled, bytes);
  ASSERT_EQ(trickled->entries.size(), parsed->entries.size());
  for (std::size_t i = 0; i < parsed->entries.size(); ++i) {
    EXPECT_EQ(trickled->entries[i].path, parsed->entries[i].path);
    EXPECT_EQ(trickled->contents[i], parsed->contents[i]);
  }
}

// Differential check against an independent parser, Python's tarfile: every entry's name,
// type, size, link name, mode, owner, mtime, device numbers and xattrs must agree.
void check_against_python_tarfile(const test::ScratchDir& scratch, const std::string& tar_name) {
  const std::string script =
      "import json,sys,tarfile\n"
      "kinds={b'0':'0',b'\\0':'0',b'7':'0',b'1':'1',b'2':'2',b'3':'3',b'4':'4',b'5':'5',b'6':'6'}\n"
      "for t in tarfile.open(sys.argv[1]):\n"
      "  x={k[13:]:v for k,v in t.pax_headers.items() if k.startswith('SCHILY.xattr.')}\n"
      "  print(json.dumps([t.name,kinds.get(t.type,'?'),t.size if t.isreg() else 0,t.linkname,"
      "t.mode,t.uid,t.gid,int(t.mtime),t.devmajor,t.devminor,x]))\n";
  test::write_file(scratch.file("list.py"),
                   std::vector<std::uint8_t>(script.begin(), script.end()));
  ASSERT_TRUE(test::shell(scratch.path(), "python3 list.py " + tar_name + " > python.txt"));
  const auto lines = lines_of(scratch.file("python.txt"));
  auto parsed = parse_bytes(test::read_file(scratch.file(tar_name)));
  ASSERT_TRUE(parsed.ok()) << parsed.error().to_string();
  std::vector<const TarEntry*> entries;
  for (const TarEntry& entry : parsed->entries) {
    if (entry.type != TarEntryType::kGlobalHeader) entries.push_back(&entry);
  }
  ASSERT_EQ(entries.size(), lines.size());
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const TarEntry& entry = *entries[i];
    const auto expected = nlohmann::json::parse(lines[i]);
    std::string name = entry.path;
    while (name.size() > 1 && name.back() == '/') name.pop_back();  // tarfile strips it
    EXPECT_EQ(name, expected[0].get<std::string>());
    const char kind = "0123456"[static_cast<int>(entry.type)];
    EXPECT_EQ(std::string(1, kind), expected[1].get<std::string>()) << name;
    EXPECT_EQ(entry.size, expected[2].get<std::uint64_t>()) << name;
    EXPECT_EQ(entry.link_path, expected[3].get<std::string>()) << name;
    EXPECT_EQ(entry.mode, expected[4].get<std::int64_t>()) << name;
    EXPECT_EQ(entry.uid, expected[5].get<std::int64_t>()) << name;
    EXPECT_EQ(entry.gid, expected[6].get<std::int64_t>()) << name;
    EXPECT_EQ(entry.mtime, expected[7].get<std::int64_t>()) << name;
    if (entry.type == TarEntryType::kCharDevice || entry.type == TarEntryType::kBlockDevice) {
      EXPECT_EQ(entry.dev_major, expected[8].get<std::int64_t>()) << name;
      EXPECT_EQ(entry.dev_minor, expected[9].get<std::int64_t>()) << name;
    }
    std::map<std::string, std::string> xattrs(entry.xattrs.begin(), entry.xattrs.end());
    using XattrMap = std::map<std::string, std::string>;
    EXPECT_EQ(xattrs, expected[10].get<XattrMap>()) << name;
  }
}

class TarReaderGnuTar : public ::testing::TestWithParam<std::string> {
 protected:
  test::ScratchDir scratch_;
};

TEST_P(TarReaderGnuTar, LongNamesLinksAndEmptyFiles) {
  const std::string format = GetParam();
  const std::string root = scratch_.file("root");
  // ustar holds at most a 155-byte prefix plus a 100-byte name; gnu and pax hold any length.
  // Two components, so ustar can split it into prefix and name.
  const std::string long_dir = std::string(80, 'a') + "/" + std::string(60, 'b');
  const std::string long_name = format == "ustar" ? std::string(60, 'n') : std::string(180, 'n');
  std::filesystem::create_directories(root + "/" + long_dir);
  test::write_file(root + "/" + long_dir + "/" + long_name, test::splitmix64_bytes(1, 70000));
  test::write_file(root + "/empty", {});
  test::write_file(root + "/small", {'h', 'i', '\n'});
  std::filesystem::create_symlink("small", root + "/link-to-small");
  std::filesystem::create_hard_link(root + "/small", root + "/hard-small");
  if (format != "ustar") {
    std::filesystem::create_symlink(std::string(150, 't'), root + "/long-target");
  }
  ASSERT_TRUE(test::shell(scratch_.path(),
                          "tar --format=" + format + " --sort=name -C root -cf out.tar ."));
  check_against_gnu_tar(scratch_, "out.tar", root);

  auto parsed = parse_bytes(test::read_file(scratch_.file("out.tar")));
  ASSERT_TRUE(parsed.ok());
  bool saw_hard = false;
  bool saw_symlink = false;
  bool saw_long = false;
  for (const TarEntry& entry : parsed->entries) {
    if (entry.path == "./hard-small" || entry.path == "./small") {
      if (entry.type == TarEntryType::kHardLink) {
        saw_hard = true;
        EXPECT_EQ(entry.size, 0U);
      }
    }
    if (entry.path == "./link-to-small") {
      saw_symlink = true;
      EXPECT_EQ(entry.type, TarEntryType::kSymlink);
      EXPECT_EQ(entry.link_path, "small");
    }
    if (entry.path == "./long-target") {
      EXPECT_EQ(entry.link_path, std::string(150, 't'));
    }
    if (entry.path.size() > (format == "ustar" ? 100U : 255U)) saw_long = true;
    EXPECT_FALSE(entry.unsafe_path) << entry.path;
  }
  EXPECT_TRUE(saw_hard);
  EXPECT_TRUE(saw_symlink);
  EXPECT_TRUE(saw_long);
}

TEST_P(TarReaderGnuTar, RandomTree) {
  const std::string root = scratch_.file("root");
  test::make_random_tree(root, 20261125, 30, GetParam() != "ustar");
  ASSERT_TRUE(test::shell(scratch_.path(),
                          "tar --format=" + GetParam() + " --sort=name -C root -cf out.tar ."));
  check_against_gnu_tar(scratch_, "out.tar", root);
  check_against_python_tarfile(scratch_, "out.tar");
}

INSTANTIATE_TEST_SUITE_P(Formats, TarReaderGnuTar, ::testing::Values("gnu", "ustar", "pax"));

TEST(TarReader, DevicesAndFifos) {
  test::ScratchDir scratch;
  const std::string root = scratch.file("root");
  std::filesystem::create_directories(root);
  const bool have_devices = test::shell(root, "mknod null c 1 3 && mknod loop b 7 0");
  ASSERT_TRUE(test::shell(root, "mkfifo pipe"));
  ASSERT_TRUE(test::shell(scratch.path(), "tar --format=pax -C root -cf out.tar ."));
  check_against_gnu_tar(scratch, "out.tar", root);
  check_against_python_tarfile(scratch, "out.tar");
  auto parsed = parse_bytes(test::read_file(scratch.file("out.tar")));
  ASSERT_TRUE(parsed.ok());
  int found = 0;
  for (const TarEntry& entry : parsed->entries) {
    if (entry.path == "./pipe") {
      EXPECT_EQ(entry.type, TarEntryType::kFifo);
      ++found;
    }
    if (entry.path == "./null") {
      EXPECT_EQ(entry.type, TarEntryType::kCharDevice);
      EXPECT_EQ(entry.dev_major, 1);
      EXPECT_EQ(entry.dev_minor, 3);
      ++found;
    }
    if (entry.path == "./loop") {
      EXPECT_EQ(entry.type, TarEntryType::kBlockDevice);
      EXPECT_EQ(entry.dev_major, 7);
      ++found;
    }
  }
  EXPECT_EQ(found, have_devices ? 3 : 1);
}

TEST(TarReader, PaxXattrRecordsFromGnuTar) {
  test::ScratchDir scratch;
  const std::string root = scratch.file("root");
  std::filesystem::create_directories(root);
  test::write_file(root + "/file", {'x'});
  ASSERT_TRUE(test::shell(scratch.path(),
                          "tar --format=pax --pax-option=SCHILY.xattr.user.note:=hello "
                          "-C root -cf out.tar file"));
  check_against_gnu_tar(scratch, "out.tar", root);
  check_against_python_tarfile(scratch, "out.tar");
  auto parsed = parse_bytes(test::read_file(scratch.file("out.tar")));
  ASSERT_TRUE(parsed.ok());
  ASSERT_EQ(parsed->entries.size(), 1U);
  ASSERT_EQ(parsed->entries[0].xattrs.size(), 1U);
  EXPECT_EQ(parsed->entries[0].xattrs[0].first, "user.note");
  EXPECT_EQ(parsed->entries[0].xattrs[0].second, "hello");
}

TEST(TarReader, RecordPaddingAndTrailingBytesAreKept) {
  test::ScratchDir scratch;
  const std::string root = scratch.file("root");
  std::filesystem::create_directories(root);
  test::write_file(root + "/a", test::splitmix64_bytes(3, 1000));
  // Default blocking factor 20: the archive is padded with zeros to a 10 KiB record.
  ASSERT_TRUE(
      test::shell(scratch.path(), "tar -C root -cf out.tar a && printf 'extra!' >> out.tar"));
  const auto bytes = test::read_file(scratch.file("out.tar"));
  ASSERT_EQ(bytes.size(), 10240U + 6);
  auto parsed = parse_bytes(bytes);
  ASSERT_TRUE(parsed.ok()) << parsed.error().to_string();
  EXPECT_EQ(parsed->reassembled, bytes);
  EXPECT_EQ(parsed->end_offset, 512U + 1024U);
  EXPECT_EQ(parsed->trailing_bytes, bytes.size() - parsed->end_offset - 1024);
}

TEST(TarReader, GnuSparseIsRefused) {
  test::ScratchDir scratch;
  ASSERT_TRUE(test::shell(scratch.path(),
                          "mkdir root && truncate -s 1M root/sparse && "
                          "printf data >> root/sparse && "
                          "tar --format=gnu -S -C root -cf gnu.tar sparse && "
                          "tar --format=pax -S -C root -cf pax.tar sparse"));
  expect_error(parse_bytes(test::read_file(scratch.file("gnu.tar"))), ErrorCode::kUnsupported,
               "GNU sparse entry 'sparse'");
  expect_error(parse_bytes(test::read_file(scratch.file("pax.tar"))), ErrorCode::kUnsupported,
               "GNU sparse pax record 'GNU.sparse.");
}

// --- Interpretation rules (Go archive/tar), on hand-made headers ---

TEST(TarReader, PaxSizeWinsOverUstarSize) {
  // ustar size 0 plus pax size=600 (CVE-2025-62518): the 600 bytes are content, not a header.
  std::vector<std::uint8_t> tar = make_pax(pax_record("size", "600"));
  append(tar, make_header("smuggler", '0', 0));
  std::string content(600, 'c');
  // Make the content look like a header to prove it is not read as one.
  const auto fake = make_header("hidden", '0', 0);
  std::copy(fake.begin(), fake.end(), content.begin());
  append_content(tar, content);
  append_end(tar);
  auto parsed = parse_bytes(tar);
  ASSERT_TRUE(parsed.ok()) << parsed.error().to_string();
  ASSERT_EQ(parsed->entries.size(), 1U);
  EXPECT_EQ(parsed->entries[0].path, "smuggler");
  EXPECT_EQ(parsed->entries[0].size, 600U);
  EXPECT_EQ(parsed->contents[0].size(), 600U);
  EXPECT_EQ(parsed->reassembled, tar);
}

TEST(TarReader, PaxAppliesAcrossGnuLongNameToTheEntry) {
  // x -> L -> file: pax path wins and applies to the file, not to the 'L' header.
  std::vector<std::uint8_t> tar =
      make_pax(pax_record("path", "from-pax") + pax_record("mtime", "1700000000.25") +
               pax_record("uid", "4000000000"));
  const std::string long_name(300, 'L');
  append(tar, make_header("././@LongLink", 'L', long_name.size() + 1));
  append_content(tar, long_name + std::string(1, '\0'));
  append(tar, make_header("short", '0', 3));
  append_content(tar, "abc");
  append(tar, make_header("././@LongLink", 'L', long_name.size()));
  append_content(tar, long_name);
  append(tar, make_header("short2", '0', 0));
  append_end(tar);
  auto parsed = parse_bytes(tar);
  ASSERT_TRUE(parsed.ok()) << parsed.error().to_string();
  ASSERT_EQ(parsed->entries.size(), 2U);
  EXPECT_EQ(parsed->entries[0].path, "from-pax");
  EXPECT_EQ(parsed->entries[0].mtime, 1700000000);
  EXPECT_EQ(parsed->entries[0].pax_mtime, "1700000000.25");
  EXPECT_EQ(parsed->entries[0].uid, 4000000000);
  EXPECT_EQ(parsed->entries[1].path, long_name);
  EXPECT_EQ(parsed->entries[1].header_offset, 512U * 2 + 512U * 2 + 512U + 512U);
}

TEST(TarReader, HeaderOnlyTypesCarryNoContent) {
  // A symlink whose size field says 512: the next block is the next header, as in Go.
  std::vector<std::uint8_t> tar = make_header("link", '2', 512, "target");
  append(tar, make_header("next", '0', 1));
  append_content(tar, "z");
  append(tar, make_header("olddir/", '\0', 0));
  append_end(tar);
  auto parsed = parse_bytes(tar);
  ASSERT_TRUE(parsed.ok()) << parsed.error().to_string();
  ASSERT_EQ(parsed->entries.size(), 3U);
  EXPECT_EQ(parsed->entries[0].type, TarEntryType::kSymlink);
  EXPECT_EQ(parsed->entries[0].size, 0U);
  EXPECT_EQ(parsed->entries[1].path, "next");
  EXPECT_EQ(parsed->entries[2].type, TarEntryType::kDirectory);
}

TEST(TarReader, GlobalHeaderIsItsOwnEntry) {
  std::vector<std::uint8_t> tar = make_pax(pax_record("comment", "hi"), 'g');
  append(tar, make_header("f", '0', 0));
  append_end(tar);
  auto parsed = parse_bytes(tar);
  ASSERT_TRUE(parsed.ok()) << parsed.error().to_string();
  ASSERT_EQ(parsed->entries.size(), 2U);
  EXPECT_EQ(parsed->entries[0].type, TarEntryType::kGlobalHeader);
  ASSERT_EQ(parsed->entries[0].pax_records.size(), 1U);
  EXPECT_EQ(parsed->entries[0].pax_records[0].second, "hi");
  EXPECT_EQ(parsed->entries[1].path, "f");
}

TEST(TarReader, WhiteoutsAndUnsafePathsAreFlaggedAndKept) {
  std::vector<std::uint8_t> tar;
  for (const char* name : {"etc/.wh.passwd", "dir/.wh..wh..opq", "/etc/shadow", "a/../../x", "..",
                           "ok/..name", "ok/name.."}) {
    append(tar, make_header(name, '0', 0));
  }
  append(tar, make_header("hl", '1', 0, "../outside"));
  append(tar, make_header("sl", '2', 0, "/etc"));
  append_end(tar);
  auto parsed = parse_bytes(tar);
  ASSERT_TRUE(parsed.ok()) << parsed.error().to_string();
  const auto& e = parsed->entries;
  ASSERT_EQ(e.size(), 9U);
  EXPECT_TRUE(e[0].whiteout);
  EXPECT_FALSE(e[0].opaque_whiteout);
  EXPECT_TRUE(e[1].whiteout);
  EXPECT_TRUE(e[1].opaque_whiteout);
  EXPECT_EQ(e[2].path, "/etc/shadow");
  EXPECT_TRUE(e[2].unsafe_path);
  EXPECT_TRUE(e[3].unsafe_path);
  EXPECT_TRUE(e[4].unsafe_path);
  EXPECT_FALSE(e[5].unsafe_path);
  EXPECT_FALSE(e[6].unsafe_path);
  EXPECT_TRUE(e[7].unsafe_link);
  EXPECT_FALSE(e[7].unsafe_path);
  EXPECT_TRUE(e[8].unsafe_link);
  EXPECT_EQ(parsed->reassembled, tar);
}

TEST(TarReader, Base256SizeIsRead) {
  std::vector<std::uint8_t> header = make_header("big", '0', 0);
  std::fill(header.begin() + 124, header.begin() + 136, 0);
  header[124] = 0x80;
  header[135] = 0x05;  // size 5
  test::set_checksum(header);
  std::vector<std::uint8_t> tar = header;
  append_content(tar, "12345");
  append_end(tar);
  auto parsed = parse_bytes(tar);
  ASSERT_TRUE(parsed.ok()) << parsed.error().to_string();
  EXPECT_EQ(parsed->entries[0].size, 5U);
}

TEST(TarReader, SignedChecksumIsAccepted) {
  std::vector<std::uint8_t> header = make_header("\xE9t\xE9", '0', 0);
  // Recompute the checksum summing signed chars, as old tars did.
  std::fill(header.begin() + 148, header.begin() + 156, ' ');
  int sum = 0;
  for (const std::uint8_t byte : header) sum += static_cast<std::int8_t>(byte);
  test::set_octal(header, 148, 7, static_cast<std::uint64_t>(sum));
  std::vector<std::uint8_t> tar = header;
  append_end(tar);
  auto parsed = parse_bytes(tar);
  ASSERT_TRUE(parsed.ok()) << parsed.error().to_string();
}

// --- Bad input ---

std::vector<std::uint8_t> small_archive() {
  std::vector<std::uint8_t> tar = make_pax(pax_record("path", std::string(200, 'p')));
  append(tar, make_header("f", '0', 700));
  append_content(tar, std::string(700, 'x'));
  append_end(tar);
  return tar;
}

TEST(TarReaderBadInput, TruncatedAnywhere) {
  const auto tar = small_archive();
  // Layout: pax header 0, its data 512, entry header 1024, content 1536..2236, padding to 2560,
  // end blocks 2560..3584. Cut inside each part.
  for (const std::size_t keep : {1UL, 511UL, 700UL, 1100UL, 1636UL, 2300UL, 3000UL, 3500UL}) {
    SCOPED_TRACE(keep);
    const std::vector<std::uint8_t> cut(tar.begin(),
                                        tar.begin() + static_cast<std::ptrdiff_t>(keep));
    const auto result = parse_bytes(cut);
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.error().code, ErrorCode::kCorruptInput);
    EXPECT_NE(result.error().message.find("truncated"), std::string::npos)
        << result.error().to_string();
  }
  // Ending at an entry boundary with one or no end block is accepted, as Go does.
  for (const std::size_t keep : {2560UL, 3072UL}) {
    const std::vector<std::uint8_t> cut(tar.begin(),
                                        tar.begin() + static_cast<std::ptrdiff_t>(keep));
    auto parsed = parse_bytes(cut);
    ASSERT_TRUE(parsed.ok()) << parsed.error().to_string();
    EXPECT_EQ(parsed->reassembled, cut);
    EXPECT_EQ(parsed->saw_end, keep == 3072);
  }
}

TEST(TarReaderBadInput, EmptyInput) {
  expect_error(parse_bytes({}), ErrorCode::kCorruptInput, "empty input");
  // The smallest valid archive: two zero blocks.
  auto parsed = parse_bytes(std::vector<std::uint8_t>(1024, 0));
  ASSERT_TRUE(parsed.ok());
  EXPECT_TRUE(parsed->entries.empty());
}

TEST(TarReaderBadInput, BadChecksum) {
  auto tar = small_archive();
  tar[1024 + 10] ^= 0x01;  // a byte of the entry header's name
  expect_error(parse_bytes(tar), ErrorCode::kCorruptInput, "offset 1024: checksum mismatch");
}

TEST(TarReaderBadInput, BadNumericFields) {
  auto with_size_field = [](const std::vector<std::uint8_t>& field) {
    std::vector<std::uint8_t> header = make_header("f", '0', 0);
    std::copy(field.begin(), field.end(), header.begin() + 124);
    test::set_checksum(header);
    append_end(header);
    return header;
  };
  std::vector<std::uint8_t> negative(12, 0xFF);  // base-256 -1
  expect_error(parse_bytes(with_size_field(negative)), ErrorCode::kCorruptInput, "size");
  std::vector<std::uint8_t> huge(12, 0);
  huge[0] = 0x80;
  huge[3] = 0x01;  // 2^64: beyond int64
  expect_error(parse_bytes(with_size_field(huge)), ErrorCode::kCorruptInput, "size");
  std::vector<std::uint8_t> big(12, 0);
  big[0] = 0x80;
  big[5] = 0x01;  // 2^48 bytes: above the 1 TiB default cap
  expect_error(parse_bytes(with_size_field(big)), ErrorCode::kLimitExceeded,
               "exceeds the cap of 1099511627776");
  const std::string garbage = "00000009000";
  expect_error(parse_bytes(with_size_field({garbage.begin(), garbage.end()})),
               ErrorCode::kCorruptInput, "invalid size");
}

TEST(TarReaderBadInput, PaxRecordsThatLie) {
  const auto archive_with = [](const std::string& records) {
    std::vector<std::uint8_t> tar = make_pax(records);
    append(tar, make_header("f", '0', 0));
    append_end(tar);
    return tar;
  };
  expect_error(parse_bytes(archive_with("99 path=abc\n")), ErrorCode::kCorruptInput,
               "claims length 99");
  expect_error(parse_bytes(archive_with("10 path=abc\n")), ErrorCode::kCorruptInput, "newline");
  expect_error(parse_bytes(archive_with("x1 path=a\n")), ErrorCode::kCorruptInput,
               "non-decimal length");
  expect_error(parse_bytes(archive_with("0 \n")), ErrorCode::kCorruptInput, "claims length 0");
  expect_error(parse_bytes(archive_with("8 nokey\n")), ErrorCode::kCorruptInput, "key=value");
  expect_error(parse_bytes(archive_with(pax_record("size", "-5"))), ErrorCode::kCorruptInput,
               "invalid pax size");
  expect_error(parse_bytes(archive_with(pax_record("mtime", "12x"))), ErrorCode::kCorruptInput,
               "invalid pax mtime");
  expect_error(parse_bytes(archive_with(pax_record("path", std::string("a\0b", 3)))),
               ErrorCode::kCorruptInput, "NUL");
}

TEST(TarReaderBadInput, OversizedHeaders) {
  // A pax header announcing 2 MiB of records: refused before reading them (1 MiB cap).
  std::vector<std::uint8_t> tar = make_header("PaxHeaders/f", 'x', 2U << 20U);
  expect_error(parse_bytes(tar), ErrorCode::kLimitExceeded, "cap of 1048576");
  // A pax size record above the entry cap.
  TarLimits limits;
  limits.max_entry_size = 1000;
  std::vector<std::uint8_t> sized = make_pax(pax_record("size", "5000"));
  append(sized, make_header("f", '0', 0));
  expect_error(parse_bytes(sized, limits), ErrorCode::kLimitExceeded, "entry size 5000");
  // A GNU long name above the path cap.
  limits = TarLimits{};
  limits.max_path_length = 100;
  std::vector<std::uint8_t> named = make_header("././@LongLink", 'L', 300);
  append_content(named, std::string(300, 'n'));
  append(named, make_header("f", '0', 0));
  append_end(named);
  expect_error(parse_bytes(named, limits), ErrorCode::kLimitExceeded, "path longer");
  // Entry count cap.
  limits = TarLimits{};
  limits.max_entries = 2;
  std::vector<std::uint8_t> many;
  for (int i = 0; i < 3; ++i)
    append(many, make_header(std::string("f") + std::to_string(i), '0', 0));
  append_end(many);
  expect_error(parse_bytes(many, limits), ErrorCode::kLimitExceeded, "more than 2 entries");
}

TEST(TarReaderBadInput, BrokenEndOfArchive) {
  std::vector<std::uint8_t> partial = make_header("f", '0', 0);
  partial.resize(partial.size() + 512 + 100, 0);
  expect_error(parse_bytes(partial), ErrorCode::kCorruptInput, "followed by a partial block");
  std::vector<std::uint8_t> resumed = make_header("f", '0', 0);
  resumed.resize(resumed.size() + 512, 0);
  append(resumed, make_header("g", '0', 0));
  expect_error(parse_bytes(resumed), ErrorCode::kCorruptInput, "followed by a non-zero block");
  std::vector<std::uint8_t> dangling = make_pax(pax_record("path", "x"));
  append_end(dangling);
  expect_error(parse_bytes(dangling), ErrorCode::kCorruptInput,
               "extended header is followed by the end");
}

TEST(TarReaderBadInput, ErrorIsSticky) {
  auto tar = small_archive();
  tar[1024 + 10] ^= 0x01;
  MemoryByteSource source(tar);
  TarReader reader(source);
  auto first = reader.next();
  ASSERT_FALSE(first.ok());
  auto second = reader.next();
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().message, first.error().message);
}

// --- Lent buffers ---

// Lends a fresh buffer of `size` bytes (filled with 0xEE, so a byte read from a stale place
// shows) on each request and keeps them all.
class KeptBuffers final : public TarReadBuffers {
 public:
  explicit KeptBuffers(std::size_t size) : size_(size) {}
  MutableByteSpan next_buffer() override { return buffers_.emplace_back(size_, 0xEE); }
  [[nodiscard]] std::size_t lent() const { return buffers_.size(); }
  [[nodiscard]] bool holds(ByteSpan bytes) const {
    return std::any_of(buffers_.begin(), buffers_.end(), [&](const auto& buffer) {
      return !bytes.empty() && bytes.data() >= buffer.data() &&
             bytes.data() + bytes.size() <= buffer.data() + buffer.size();
    });
  }

 private:
  std::size_t size_;
  std::list<std::vector<std::uint8_t>> buffers_;
};

// A pax header group larger than several lent buffers, files of many sizes, trailing bytes.
std::vector<std::uint8_t> archive_across_buffers() {
  std::vector<std::uint8_t> tar =
      make_pax(pax_record("SCHILY.xattr.user.big", std::string(40000, 'x')));
  std::size_t index = 0;
  for (const std::size_t size : {0UL, 1UL, 511UL, 512UL, 700UL, 5000UL, 70000UL, 3000UL}) {
    append(tar, make_header(std::string(1, static_cast<char>('a' + index)), '0', size));
    std::string content(size, '\0');
    for (std::size_t i = 0; i < size; ++i) content[i] = static_cast<char>((i * 131 + index) % 251);
    append_content(tar, content);
    ++index;
  }
  append_end(tar);
  tar.resize(tar.size() + 10000, 0);
  return tar;
}

TEST(TarReaderLentBuffers, EventsEqualTheOwnBuffersAndStayWhereTheyWereHandedOut) {
  const auto tar = archive_across_buffers();
  auto own = parse_bytes(tar);
  ASSERT_TRUE(own.ok()) << own.error().to_string();
  for (const std::size_t size :
       {TarReader::kMinLentBuffer, std::size_t{3000}, std::size_t{65536}}) {
    for (const std::size_t step : {std::size_t{0}, std::size_t{1000}}) {
      SCOPED_TRACE(std::to_string(size) + " byte buffers, reads of at most " +
                   std::to_string(step));
      MemoryByteSource whole(tar);
      TrickleByteSource trickle(tar, std::max<std::size_t>(step, 1));
      ByteSource& source = step == 0 ? static_cast<ByteSource&>(whole) : trickle;
      KeptBuffers buffers(size);
      TarReader reader(source, {}, &buffers);
      std::vector<std::uint8_t> reassembled;
      std::vector<std::vector<std::uint8_t>> contents;
      std::vector<std::pair<ByteSpan, std::vector<std::uint8_t>>> handed_out;
      while (true) {
        auto event = reader.next();
        ASSERT_TRUE(event.ok()) << event.error().to_string();
        if (event->kind == TarEventKind::kDone) break;
        reassembled.insert(reassembled.end(), event->bytes.begin(), event->bytes.end());
        if (event->kind == TarEventKind::kHeader) contents.emplace_back();
        if (event->kind == TarEventKind::kContent) {
          contents.back().insert(contents.back().end(), event->bytes.begin(), event->bytes.end());
        }
        if (event->kind != TarEventKind::kHeader && !event->bytes.empty()) {
          EXPECT_TRUE(buffers.holds(event->bytes));
          handed_out.emplace_back(
              event->bytes, std::vector<std::uint8_t>(event->bytes.begin(), event->bytes.end()));
        }
      }
      EXPECT_EQ(reassembled, tar);
      EXPECT_EQ(contents, own->contents);
      EXPECT_GT(buffers.lent(), tar.size() / size);
      for (const auto& [span, copy] : handed_out) {
        EXPECT_TRUE(std::equal(span.begin(), span.end(), copy.begin(), copy.end()));
      }
    }
  }
}

TEST(TarReaderLentBuffers, TooSmallABufferIsAnError) {
  const auto tar = small_archive();
  MemoryByteSource source(tar);
  KeptBuffers buffers(TarReader::kMinLentBuffer - 1);
  TarReader reader(source, {}, &buffers);
  auto event = reader.next();
  ASSERT_FALSE(event.ok());
  EXPECT_EQ(event.error().code, ErrorCode::kInternal);
  EXPECT_NE(event.error().message.find("lent a buffer of 2047 bytes"), std::string::npos)
      << event.error().to_string();
}

TEST(TarReaderLentBuffers, ContentGivenBackComesAgainWithMore) {
  std::vector<std::uint8_t> tar = make_header("f", '0', 10000);
  std::string content(10000, '\0');
  for (std::size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>(i % 253);
  append_content(tar, content);
  append_end(tar);
  TrickleByteSource source(tar, 3000);
  KeptBuffers buffers(TarReader::kMinLentBuffer);
  TarReader reader(source, {}, &buffers);
  ASSERT_EQ(reader.next()->kind, TarEventKind::kHeader);
  EXPECT_FALSE(reader.give_back(1));  // not content
  std::string seen;
  std::size_t given_back = 0;  // times
  while (true) {
    auto event = reader.next();
    ASSERT_TRUE(event.ok()) << event.error().to_string();
    if (event->kind != TarEventKind::kContent) break;
    const std::string piece(event->bytes.begin(), event->bytes.end());
    EXPECT_EQ(event->offset, 512 + seen.size());
    // Keep back all but 100 bytes each time, as long as the reader takes them.
    EXPECT_FALSE(reader.give_back(piece.size() + 1));
    const std::size_t back = piece.size() > 100 ? piece.size() - 100 : 0;
    if (back > 0 && reader.give_back(back)) {
      ++given_back;
      seen += piece.substr(0, piece.size() - back);
    } else {
      seen += piece;
    }
  }
  EXPECT_EQ(seen, content);
  EXPECT_GE(given_back, 10U);  // each time 100 bytes on, and the buffers crossed
  EXPECT_EQ(reader.offset(), tar.size() - 1024);

  // A reader with its own buffer gives nothing back.
  MemoryByteSource whole(tar);
  TarReader own(whole);
  ASSERT_TRUE(own.next().ok());
  ASSERT_EQ(own.next()->kind, TarEventKind::kContent);
  EXPECT_FALSE(own.give_back(1));
}

TEST(TarReaderLentBuffers, TruncationAfterGivingBackIsStillAnError) {
  std::vector<std::uint8_t> tar = make_header("f", '0', 5000);
  tar.resize(tar.size() + 3000, 'c');
  MemoryByteSource source(tar);
  KeptBuffers buffers(TarReader::kMinLentBuffer * 4);
  TarReader reader(source, {}, &buffers);
  ASSERT_TRUE(reader.next().ok());
  auto piece = reader.next();
  ASSERT_TRUE(piece.ok());
  ASSERT_EQ(piece->bytes.size(), 3000U);
  ASSERT_TRUE(reader.give_back(1000));
  auto again = reader.next();
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, ErrorCode::kCorruptInput);
  EXPECT_NE(again.error().message.find("truncated"), std::string::npos);
}

// Every entry, and the offset of each event, when content is passed over with skip_content():
// (after a header, or after the first content event of an entry when `after_first_piece`).
Result<std::vector<std::pair<std::string, std::uint64_t>>> headers_skipping_content(
    ByteSource& source, bool after_first_piece) {
  TarReader reader(source);
  std::vector<std::pair<std::string, std::uint64_t>> seen;
  for (;;) {
    auto event = reader.next();
    if (!event.ok()) return std::move(event).error();
    if (event->kind == TarEventKind::kDone) break;
    if (event->kind == TarEventKind::kHeader) {
      seen.emplace_back(event->entry->path, event->offset);
      if (!after_first_piece) STRATA_TRY(reader.skip_content());
    } else if (event->kind == TarEventKind::kContent) {
      STRATA_TRY(reader.skip_content());
    } else {
      seen.emplace_back("event", event->offset);
    }
  }
  seen.emplace_back("end", reader.offset());
  return seen;
}

TEST(TarReaderSkipContent, GivesTheHeadersAndOffsetsOfAFullRead) {
  // Three files of sizes around the reader's 1 MiB buffer, and an empty one, between headers.
  std::vector<std::uint8_t> tar;
  const std::vector<std::uint64_t> sizes = {3, 0, TarReader::kBufferSize - 100,
                                            TarReader::kBufferSize * 2 + 513};
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    append(tar, make_header("file" + std::to_string(i), '0', sizes[i]));
    append_content(tar, std::string(sizes[i], static_cast<char>('a' + i)));
  }
  append_end(tar);
  auto full = parse_bytes(tar);
  ASSERT_TRUE(full.ok()) << full.error().to_string();
  for (const bool after_first_piece : {false, true}) {
    SCOPED_TRACE(after_first_piece);
    MemoryByteSource memory(tar);
    TrickleByteSource trickle(tar, 3000);  // the default skip: reads into scratch
    for (ByteSource* source :
         {static_cast<ByteSource*>(&memory), static_cast<ByteSource*>(&trickle)}) {
      auto seen = headers_skipping_content(*source, after_first_piece);
      ASSERT_TRUE(seen.ok()) << seen.error().to_string();
      std::vector<std::string> names;
      for (const auto& [name, offset] : *seen) {
        if (name.rfind("file", 0) == 0) names.push_back(name);
      }
      ASSERT_EQ(names.size(), full->entries.size());
      for (std::size_t i = 0; i < names.size(); ++i) EXPECT_EQ(names[i], full->entries[i].path);
      EXPECT_EQ(seen->back().second, tar.size());  // the reader ends where a full read ends
    }
  }
}

TEST(TarReaderSkipContent, ContentCutShortIsTheTruncationError) {
  std::vector<std::uint8_t> tar;
  append(tar, make_header("big", '0', 5000));
  append_content(tar, std::string(5000, 'b'));
  append_end(tar);
  for (const std::size_t keep : {600UL, 4000UL, 5511UL}) {
    SCOPED_TRACE(keep);
    const std::vector<std::uint8_t> cut(tar.begin(),
                                        tar.begin() + static_cast<std::ptrdiff_t>(keep));
    MemoryByteSource memory(cut);
    auto seen = headers_skipping_content(memory, false);
    ASSERT_FALSE(seen.ok());
    EXPECT_EQ(seen.error().code, ErrorCode::kCorruptInput);
    EXPECT_NE(seen.error().message.find("truncated"), std::string::npos)
        << seen.error().to_string();
    EXPECT_NE(seen.error().message.find("'big'"), std::string::npos) << seen.error().to_string();
  }
}

}  // namespace
}  // namespace strata
