// Thread counts: how many worker threads a parallel step really gets for a request. Internal to
// the library (DESIGN.md §2 puts thread counts in core/base); the public options only carry the
// request (0: all the process may use). Rests on oneTBB's process-wide concurrency limit.
#pragma once

namespace strata {

// Worker threads a pipeline really gets for a request (0: all the process may use).
unsigned resolve_pipeline_threads(unsigned requested);

}  // namespace strata
