// Delta referrers between a registry and a strata client (docs/DELTA.md; internal, not
// installed): finding the delta referrer of an image manifest (GET /v2/<repo>/referrers/<digest>,
// else the distribution-spec v1.1 "Referrers Tag Schema" fallback tag sha256-<hex>, as
// shared/specs/layer-formats.md §3 describes) and reading its index, every size checked before it
// is fetched. A referrer that is missing, malformed or hostile is never fatal: the pull goes on
// without deltas and says why.
#pragma once

#include <optional>
#include <string>

#include "strata/pull_plan.h"
#include "strata/registry.h"

namespace strata::registry::detail {

struct FoundDeltas {
  std::string source;   // "api" | "tag" | "" (none found)
  std::string refused;  // why a referrer found was not used; empty when used or none
  Digest referrer;      // the artifact manifest used
  oci::Descriptor frames;
  std::optional<fastpull::DeltaIndex> index;  // set when usable
  std::uint64_t bytes_fetched = 0;            // referrer manifest and index blob
};

// Looks for the delta referrer of `subject` in `repository`. Errors only for what makes the pull
// itself impossible (none today: lookup failures become `refused`).
FoundDeltas find_delta_referrer(RegistryClient& client, const std::string& repository,
                                const Digest& subject);

}  // namespace strata::registry::detail
