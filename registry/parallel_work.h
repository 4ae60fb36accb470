// Running numbered pieces of work on a few threads (internal to registry/, not installed): the
// image pull's layers and the model pull's range batches. Each piece runs once; the first error
// stops new pieces from starting and is returned after the running ones end. Rests on std::thread
// only (the pieces block on the network, so they get threads of their own rather than TBB tasks).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "strata/result.h"

namespace strata::registry::detail {

// Runs work(i) for i in [0, count) on up to `jobs` threads (the caller's among them).
inline Result<void> run_parallel(std::size_t count, std::size_t jobs,
                                 const std::function<Result<void>(std::size_t)>& work) {
  std::atomic<std::size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex error_mutex;
  std::optional<Error> first_error;
  const auto worker = [&] {
    while (!failed.load()) {
      const std::size_t i = next.fetch_add(1);
      if (i >= count) return;
      auto result = work(i);
      if (!result.ok()) {
        std::lock_guard lock(error_mutex);
        if (!first_error) first_error = std::move(result).error();
        failed.store(true);
      }
    }
  };
  const std::size_t threads = std::min<std::size_t>(std::max<std::size_t>(1, jobs), count);
  std::vector<std::thread> pool;
  for (std::size_t t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& thread : pool) thread.join();
  if (first_error) return std::move(*first_error);
  return {};
}

}  // namespace strata::registry::detail
