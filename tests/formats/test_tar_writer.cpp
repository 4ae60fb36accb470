// Deterministic directory tars, read back by GNU tar (an independent reader): listings and
// extraction reproduce the tree (long names and link targets via PAX, symlinks, hard links, empty
// directories, fifos, modes), the bytes do not depend on creation order or inode numbers, the
// mtime and owner options reach every header, large ids go through PAX, and sockets are refused.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <functional>
#include <sstream>

#include "tests/oci_test_helpers.h"
#include "tests/test_support.h"

namespace strata {
namespace {

using test::TempDir;

const std::string kLongDirectory(90, 'd');
const std::string kLongFile(70, 'f');
const std::string kLongTarget = "../" + std::string(120, 't');

// The same tree whatever the order of creation (reverse creates the files in the opposite
// order, so inode numbers and directory order on disk differ).
void make_tree(const std::string& root, bool reverse) {
  for (const std::string& directory :
       {std::string("/etc/empty"), "/usr/share/" + kLongDirectory, std::string("/bin")}) {
    std::filesystem::create_directories(root + directory);
  }
  std::vector<std::function<void()>> steps = {
      [&] { test::write_text(root + "/etc/hello.txt", "hello\n"); },
      [&] { test::write_text(root + "/usr/share/" + kLongDirectory + "/" + kLongFile, "long\n"); },
      [&] { test::write_bytes(root + "/usr/share/random.bin", test::splitmix64_bytes(1, 70000)); },
      [&] { test::write_text(root + "/bin/tool.sh", "#!/bin/sh\necho hi\n"); },
      [&] { test::write_text(root + "/bin/zero", ""); },
  };
  if (reverse) std::reverse(steps.begin(), steps.end());
  for (const auto& step : steps) step();
  ASSERT_EQ(::symlink("../etc/hello.txt", (root + "/bin/hello-link").c_str()), 0);
  ASSERT_EQ(::symlink(kLongTarget.c_str(), (root + "/bin/long-link").c_str()), 0);
  ASSERT_EQ(::link((root + "/usr/share/random.bin").c_str(), (root + "/bin/a-hardlink").c_str()),
            0);
  ASSERT_EQ(::mkfifo((root + "/etc/fifo").c_str(), 0640), 0);
  ::chmod((root + "/bin/tool.sh").c_str(), 0755);
  ::chmod((root + "/etc/hello.txt").c_str(), 0600);
  ::chmod((root + "/etc").c_str(), 0750);
  ::chmod((root + "/usr/share/random.bin").c_str(), 0444);
}

std::vector<std::uint8_t> tar_of(const std::string& root, const oci::DirectoryTarOptions& options,
                                 oci::DirectoryTarStats* stats = nullptr) {
  std::vector<std::uint8_t> tar;
  auto written = oci::write_directory_tar(root, options, [&tar](ByteSpan bytes) -> Result<void> {
    tar.insert(tar.end(), bytes.begin(), bytes.end());
    return {};
  });
  EXPECT_TRUE(written.ok()) << written.error().to_string();
  if (stats != nullptr && written.ok()) *stats = *written;
  return tar;
}

// One line per path: type, mode, link count, link target (as find prints them).
std::string describe_tree(const std::string& root) {
  TempDir temp;
  test::shell("cd '" + root + "' && find . -printf '%p %y %m %n %l\\n' | LC_ALL=C sort > " +
              (temp / "list"));
  return test::read_text(temp / "list");
}

TEST(TarWriter, GnuTarExtractsTheSameTree) {
  TempDir temp;
  make_tree(temp / "src", false);
  oci::DirectoryTarStats stats;
  const auto tar = tar_of(temp / "src", {}, &stats);
  EXPECT_EQ(stats.bytes, tar.size());
  EXPECT_EQ(stats.entries, 15U);
  EXPECT_EQ(tar.size() % 512, 0U);
  test::write_bytes(temp / "layer.tar", tar);
  std::filesystem::create_directories(temp / "out");
  ASSERT_EQ(test::shell("tar -xpf " + (temp / "layer.tar") + " -C " + (temp / "out")), 0);
  // diff cannot compare fifos' contents; describe_tree covers their type and mode.
  EXPECT_EQ(test::shell("diff -r --no-dereference --exclude=fifo " + (temp / "src") + " " +
                        (temp / "out")),
            0);
  EXPECT_EQ(describe_tree(temp / "src"), describe_tree(temp / "out"));
  EXPECT_NE(describe_tree(temp / "out").find("./bin/long-link l 777 1 " + kLongTarget),
            std::string::npos);
}

TEST(TarWriter, ListingIsSortedWithNumericOwnersAndFixedMtime) {
  TempDir temp;
  make_tree(temp / "src", false);
  oci::DirectoryTarOptions options;
  options.mtime = 1700000000;
  options.uid = 1234;
  options.gid = 5678;
  test::write_bytes(temp / "layer.tar", tar_of(temp / "src", options));
  ASSERT_EQ(test::shell("tar --numeric-owner --full-time -tvf " + (temp / "layer.tar") + " > " +
                        (temp / "list")),
            0);
  const std::string listing = test::read_text(temp / "list");
  const std::string stamp = " 1234/5678 ";
  const std::string time = " 2023-11-14 22:13:20 ";
  std::vector<std::string> names;
  std::istringstream lines(listing);
  std::string line;
  while (std::getline(lines, line)) {
    EXPECT_NE(line.find(stamp), std::string::npos) << line;
    EXPECT_NE(line.find(time), std::string::npos) << line;
    const std::size_t at = line.find(time) + time.size();
    names.push_back(line.substr(at, line.find(' ', at) - at));
  }
  const std::vector<std::string> expected = {"bin/",
                                             "bin/a-hardlink",
                                             "bin/hello-link",
                                             "bin/long-link",
                                             "bin/tool.sh",
                                             "bin/zero",
                                             "etc/",
                                             "etc/empty/",
                                             "etc/fifo",
                                             "etc/hello.txt",
                                             "usr/",
                                             "usr/share/",
                                             "usr/share/" + kLongDirectory + "/",
                                             "usr/share/" + kLongDirectory + "/" + kLongFile,
                                             "usr/share/random.bin"};
  EXPECT_EQ(names, expected);
  // The first name in sorted order holds the data; the later one is a hard link to it.
  EXPECT_NE(listing.find("-r--r--r-- 1234/5678     70000 2023-11-14 22:13:20 bin/a-hardlink\n"),
            std::string::npos)
      << listing;
  EXPECT_NE(listing.find("hr--r--r-- 1234/5678         0 2023-11-14 22:13:20 usr/share/random.bin "
                         "link to bin/a-hardlink\n"),
            std::string::npos)
      << listing;
  EXPECT_NE(listing.find("prw-r----- "), std::string::npos);
  EXPECT_NE(listing.find("drwxr-x--- 1234/5678"), std::string::npos);
}

TEST(TarWriter, BytesDependOnlyOnTheTree) {
  TempDir temp;
  make_tree(temp / "a", false);
  make_tree(temp / "b", true);
  const auto first = tar_of(temp / "a", {});
  EXPECT_EQ(first, tar_of(temp / "a", {}));
  EXPECT_EQ(first, tar_of(temp / "b", {}));
  oci::DirectoryTarOptions other_mtime;
  other_mtime.mtime = 1;
  EXPECT_NE(first, tar_of(temp / "a", other_mtime));
}

TEST(TarWriter, LargeIdsAndMtimesUsePax) {
  TempDir temp;
  std::filesystem::create_directories(temp / "src");
  test::write_text(temp / "src/file", "x");
  oci::DirectoryTarOptions options;
  options.uid = 3000000;  // over the 7 octal digits of the ustar field
  options.gid = 0;
  options.mtime = 10000000000;  // year 2286: over 11 octal digits
  test::write_bytes(temp / "layer.tar", tar_of(temp / "src", options));
  ASSERT_EQ(test::shell("tar --numeric-owner --full-time -tvf " + (temp / "layer.tar") + " > " +
                        (temp / "list")),
            0);
  const std::string listing = test::read_text(temp / "list");
  EXPECT_NE(listing.find("3000000/0"), std::string::npos) << listing;
  EXPECT_NE(listing.find("2286-11-20"), std::string::npos) << listing;
}

TEST(TarWriter, DeviceNodesKeepTheirNumbers) {
  TempDir temp;
  std::filesystem::create_directories(temp / "src");
  if (::mknod((temp / "src/null").c_str(), S_IFCHR | 0666, makedev(1, 3)) != 0) {
    GTEST_SKIP() << "mknod not permitted here (needs root outside a restricted container)";
  }
  ::chmod((temp / "src/null").c_str(), 0666);
  test::write_bytes(temp / "layer.tar", tar_of(temp / "src", {}));
  ASSERT_EQ(
      test::shell("tar --numeric-owner -tvf " + (temp / "layer.tar") + " > " + (temp / "list")), 0);
  const std::string listing = test::read_text(temp / "list");
  EXPECT_EQ(listing.rfind("crw-rw-rw- ", 0), 0U) << listing;
  EXPECT_NE(listing.find(" 1,3 "), std::string::npos) << listing;
}

TEST(TarWriter, SocketsAreRefused) {
  TempDir temp;
  std::filesystem::create_directories(temp / "src");
  const std::string socket_path = temp / "src/sock";
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  ASSERT_LT(socket_path.size(), sizeof address.sun_path);
  std::copy(socket_path.begin(), socket_path.end(), address.sun_path);
  ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address), 0);
  auto written =
      oci::write_directory_tar(temp / "src", {}, [](ByteSpan) -> Result<void> { return {}; });
  ::close(fd);
  ASSERT_FALSE(written.ok());
  EXPECT_EQ(written.error().code, ErrorCode::kUnsupported);
  EXPECT_NE(written.error().message.find(socket_path + ": sockets"), std::string::npos)
      << written.error().message;
}

TEST(TarWriter, NotADirectoryIsRefused) {
  TempDir temp;
  test::write_text(temp / "file", "x");
  const auto sink = [](ByteSpan) -> Result<void> { return {}; };
  auto written = oci::write_directory_tar(temp / "file", {}, sink);
  ASSERT_FALSE(written.ok());
  EXPECT_EQ(written.error().code, ErrorCode::kInvalidArgument);
  written = oci::write_directory_tar(temp / "missing", {}, sink);
  ASSERT_FALSE(written.ok());
  EXPECT_EQ(written.error().code, ErrorCode::kIo);
}

// Extended attributes become PAX SCHILY.xattr records that GNU tar restores byte for byte
// (a binary value with NUL, '=' and newline included) and that can be turned off.
TEST(TarWriter, ExtendedAttributesTravelAsSchilyXattrRecords) {
  TempDir temp;
  std::filesystem::create_directories(temp / "src");
  test::write_text(temp / "src/tool", "x");
  const std::string value("cap\0=\n\xff", 7);
  if (::setxattr((temp / "src/tool").c_str(), "user.strata.test", value.data(), value.size(), 0) !=
      0) {
    GTEST_SKIP() << "no user extended attributes on this file system";
  }
  ASSERT_EQ(::setxattr((temp / "src/tool").c_str(), "user.a", "1", 1, 0), 0);
  const std::vector<std::uint8_t> tar = tar_of(temp / "src", {});
  const std::string text(tar.begin(), tar.end());
  // Sorted by name: user.a before user.strata.test.
  const auto first = text.find("SCHILY.xattr.user.a=1\n");
  const auto second = text.find("SCHILY.xattr.user.strata.test=" + value + "\n");
  ASSERT_NE(first, std::string::npos);
  ASSERT_NE(second, std::string::npos);
  EXPECT_LT(first, second);

  test::write_bytes(temp / "layer.tar", tar);
  std::filesystem::create_directories(temp / "out");
  ASSERT_EQ(test::shell("tar --xattrs --xattrs-include='user.*' -xf " + (temp / "layer.tar") +
                        " -C " + (temp / "out")),
            0);
  std::string restored(64, '\0');
  const ssize_t got =
      ::getxattr((temp / "out/tool").c_str(), "user.strata.test", restored.data(), restored.size());
  ASSERT_EQ(got, static_cast<ssize_t>(value.size()));
  restored.resize(static_cast<std::size_t>(got));
  EXPECT_EQ(restored, value);

  oci::DirectoryTarOptions without;
  without.xattrs = false;
  const std::vector<std::uint8_t> plain = tar_of(temp / "src", without);
  EXPECT_EQ(std::string(plain.begin(), plain.end()).find("SCHILY.xattr"), std::string::npos);
}

}  // namespace
}  // namespace strata
