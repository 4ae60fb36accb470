// Thread counts against oneTBB's process-wide limit (tbb::info::default_concurrency(): the
// hardware threads this process may use, affinity and cgroup limits included).
#include "core/base/thread_count.h"

#include <tbb/info.h>

#include <algorithm>

namespace strata {

unsigned resolve_pipeline_threads(unsigned requested) {
  // TBB never runs more workers than its process-wide limit (the hardware threads by default);
  // asking an arena for more only makes TBB print a warning, so the request is clamped.
  const auto available = static_cast<unsigned>(std::max(1, tbb::info::default_concurrency()));
  return requested == 0 ? available : std::min(requested, available);
}

}  // namespace strata
