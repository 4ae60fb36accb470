// The tool's handling of `--store registry://HOST/REPO` where no registry is needed
// (docs/remote-store.md): malformed locations and gc are refused with a clear message and the
// usage/failure exit codes, and an unreachable registry is an error naming the problem, not a hang
// or a crash. The store shared through a live docker-registry is tests/integration/remote_store.sh.
#include <gtest/gtest.h>

#include <filesystem>

#include "tests/test_support.h"

namespace strata {
namespace {

TEST(CliRemoteStore, GcIsRefusedOnARemoteStore) {
  const auto result = test::run_tool("gc --store registry://127.0.0.1:9/team/store --insecure");
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.err.find("not supported on a remote store"), std::string::npos) << result.err;
}

TEST(CliRemoteStore, MalformedLocationsAreRefused) {
  for (const char* store :
       {"registry://", "registry://host", "registry://host/Bad", "registry://host/a/../b"}) {
    const auto result = test::run_tool(std::string("ls --store '") + store + "' --insecure");
    EXPECT_EQ(result.exit_code, 2) << store;
    EXPECT_NE(result.err.find("registry://HOST[:PORT]/REPO"), std::string::npos) << result.err;
  }
}

TEST(CliRemoteStore, UnreachableRegistryIsAClearError) {
  const std::string cache =
      (std::filesystem::temp_directory_path() / "strata-cli-remote-store-cache").string();
  std::filesystem::remove_all(cache);
  // Port 9 (discard) on loopback: nothing listens there, so the connection is refused at once
  // (the client's retries with backoff take a few seconds).
  const auto result =
      test::run_tool("stats --store registry://127.0.0.1:9/team/store --insecure --cache " + cache);
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("strata: error:"), std::string::npos) << result.err;
  std::filesystem::remove_all(cache);
}

}  // namespace
}  // namespace strata
