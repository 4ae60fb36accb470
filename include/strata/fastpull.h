// Fast pulls, as one include: the lazy-pull layer formats (strata/chunked_layer.h), pull plans,
// rebuilds and the delta index (strata/pull_plan.h), pulls into a chunk store and delta referrers
// (strata/store_pull.h), and image conversion through a store (strata/convert.h). Kept so that
// code written against the one header still compiles; new code includes the header of the concern
// it uses. Everything is in namespace strata::fastpull. The registry client plugs in through
// RangeFetcher / RangeBatchFetcher: fetch(offset, length) -> bytes.
#pragma once

#include "strata/chunked_layer.h"
#include "strata/convert.h"
#include "strata/pull_plan.h"
#include "strata/store_pull.h"
