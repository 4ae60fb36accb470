// A minimal outside user of the installed library: chunks a buffer and prints the chunk count.
#include <strata/strata.h>

#include <cstdio>
#include <vector>

int main() {
  std::vector<std::uint8_t> data(1 << 20);
  std::uint32_t state = 1;
  for (auto& byte : data) {
    state = state * 1103515245U + 12345U;
    byte = static_cast<std::uint8_t>(state >> 24U);
  }
  auto chunks = strata::chunk_buffer(data, strata::ChunkerOptions{});
  if (!chunks.ok()) return 1;
  std::printf("chunks=%zu digest=%s\n", chunks->size(),
              strata::sha256_of(data).to_string().c_str());
  return 0;
}
