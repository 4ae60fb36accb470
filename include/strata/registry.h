// OCI distribution client: talks to a registry's /v2/ API over HTTP(S) (libcurl underneath, no curl
// types here). Facts: shared/specs/layer-formats.md §3 (distribution-spec v1.1: blob HEAD/GET,
// Range, POST+PUT and PATCH uploads, cross-repository mount, manifests, tag listing) and RFC 9110
// (Range, Content-Range, multipart/byteranges, Retry-After), RFC 6750 (Bearer challenges).
//
// Staged like the rest of strata:
//   1. vocabulary: image references, credentials (byte ranges: strata/bytes.h)
//   2. parsers (pure functions, fuzzed): WWW-Authenticate, Link, Content-Range, multipart
//      byteranges, Retry-After, Docker-style auth.json
//   3. RegistryClient: ping, blobs (HEAD, verified GET, range GETs), uploads, mounts, manifests,
//      tags. Every blob handed back as final has been checked against its digest.
//   4. image transfer: push an image from an OCI layout, pull one into a store and/or a layout.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "strata/buffer.h"
#include "strata/digest.h"
#include "strata/oci.h"
#include "strata/result.h"
#include "strata/store_pull.h"

namespace strata {
class ChunkStore;
}

namespace strata::registry {

// ---- 1. vocabulary ----------------------------------------------------------------------------

// "host[:port]/path/name[:tag][@sha256:...]". The first component is the registry when it holds a
// '.' or ':' or is "localhost"; otherwise the registry is Docker Hub ("docker.io", with "library/"
// before one-component names), as docker and skopeo read references.
struct ImageReference {
  std::string registry;    // "127.0.0.1:5000", "docker.io"
  std::string repository;  // "strata/test"
  std::string tag;         // empty when only a digest is given; "latest" when neither
  std::optional<Digest> digest;
  // The tag, else the digest: what goes after /manifests/.
  [[nodiscard]] std::string reference() const;
  [[nodiscard]] std::string to_string() const;
};
Result<ImageReference> parse_image_reference(std::string_view text);

struct Credentials {
  std::string username;
  std::string password;
};
// "user:pass" (the password may itself contain ':').
Result<Credentials> parse_credentials(std::string_view text);

// ---- 2. parsers -------------------------------------------------------------------------------

// Caps applied to what a registry sends back (hostile servers must not make us allocate freely).
inline constexpr std::size_t kMaxHeaderValueBytes = std::size_t{64} << 10U;
inline constexpr std::size_t kMaxTokenBytes = std::size_t{64} << 10U;
inline constexpr std::size_t kMaxMultipartParts = 4096;

// One challenge of a WWW-Authenticate header: scheme ("bearer", lowercased) and its auth-params
// (names lowercased, quoted-string values unescaped).
struct AuthChallenge {
  std::string scheme;
  std::map<std::string, std::string> params;
  friend bool operator==(const AuthChallenge&, const AuthChallenge&) = default;
};
Result<std::vector<AuthChallenge>> parse_www_authenticate(std::string_view header);

// The target of the rel="next" link in a Link header ("</v2/x/tags/list?n=2&last=b>; rel=next"),
// or nullopt when there is none.
Result<std::optional<std::string>> parse_next_link(std::string_view header);

// "bytes 0-99/1234" or "bytes 0-99/*".
struct ContentRange {
  std::uint64_t first = 0;
  std::uint64_t last = 0;  // inclusive
  std::optional<std::uint64_t> complete_length;
  friend bool operator==(const ContentRange&, const ContentRange&) = default;
};
Result<ContentRange> parse_content_range(std::string_view header);

// The boundary parameter of "multipart/byteranges; boundary=...". kUnsupported for another type.
Result<std::string> parse_multipart_boundary(std::string_view content_type);

// One part of a multipart/byteranges body: its Content-Range and a view of its bytes in the body.
struct BytePart {
  ContentRange range;
  ByteSpan bytes;
};
// Splits a multipart/byteranges body (RFC 9110 §14.6). Each part's length comes from its
// Content-Range and must be followed by the next delimiter; parts may come in any order and
// overlap. A part whose Content-Range does not fit `blob_size` (when known) is refused.
Result<std::vector<BytePart>> parse_multipart_byteranges(ByteSpan body, std::string_view boundary,
                                                         std::optional<std::uint64_t> blob_size);
// Copies each requested range out of the parts covering it (request order kept); kCorruptInput
// names a range no part covers.
Result<std::vector<std::vector<std::uint8_t>>> extract_ranges(std::span<const BytePart> parts,
                                                              std::span<const ByteRange> ranges);

// Retry-After as delay-seconds or an HTTP-date, relative to `now` (clamped to 0 .. one day).
std::optional<std::chrono::seconds> parse_retry_after(std::string_view header,
                                                      std::chrono::system_clock::time_point now);

// The credentials for `registry` in a Docker-style auth.json ({"auths":{"host":{"auth":
// base64("user:pass")}}}; keys may also be URLs such as "https://host/v1/"), or nullopt.
Result<std::optional<Credentials>> parse_auth_json(ByteSpan json, std::string_view registry);
// Searches $REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json, ~/.docker/config.json in
// that order; the first file that exists and names the registry wins.
Result<std::optional<Credentials>> load_credentials(std::string_view registry);

// ---- 3. the client ----------------------------------------------------------------------------

struct RetryPolicy {
  unsigned max_attempts = 5;  // per request, the first included
  std::chrono::milliseconds initial_backoff{200};
  std::chrono::milliseconds max_backoff{5000};
  // The deadline of one request, all its attempts and the waits between them included:
  // max_total + (the bytes it is expected to move) / min_bytes_per_second. It is enforced inside
  // an attempt too (a server dripping bytes just fast enough to dodge stall_timeout is cut off
  // there), and the error says the request ran past its deadline. The default rate (16 KiB/s,
  // 128 kbit/s) gives a 1 GiB blob about 18 hours: a slow link is never cut, an endless one is.
  std::chrono::milliseconds max_total{std::chrono::seconds(120)};
  std::uint64_t min_bytes_per_second = std::uint64_t{16} << 10U;  // 0 counts as 1
  std::chrono::seconds max_retry_after{30};  // a longer Retry-After is cut to this
};

struct ClientOptions {
  bool plain_http = false;  // --insecure: http:// instead of https://
  bool tls_verify = true;   // --tls-verify=false: https without certificate checks
  // Sent to the registry when it asks for Basic, and to the token realm its Bearer challenge
  // names: that realm may be another host (Docker Hub: auth.docker.io) but must be https unless
  // plain_http (an http realm of an https registry is refused, credentials or not).
  std::optional<Credentials> credentials;
  RetryPolicy retry;
  std::chrono::seconds connect_timeout{15};
  // A transfer slower than 1 byte/s for this long is abandoned (and retried): stalled servers.
  std::chrono::seconds stall_timeout{30};
  std::size_t max_json_bytes = oci::kMaxJsonBytes;
  // Uploads larger than this go in PATCH chunks of this size; 0: always monolithic (POST + PUT).
  std::uint64_t upload_chunk_bytes = 0;
  // A multi-range GET answered with a whole blob (200) no larger than this is cut up locally;
  // a larger one is abandoned and the ranges fetched one by one.
  std::uint64_t max_full_body_for_ranges = std::uint64_t{8} << 20U;
  // Bytes of range data one fetch_ranges() call may ask for (it holds them in memory).
  std::uint64_t max_ranges_bytes = std::uint64_t{256} << 20U;
};

// Bytes that crossed the wire, for reports.
struct TransferCounters {
  std::uint64_t bytes_received = 0;  // response bodies
  std::uint64_t bytes_sent = 0;      // request bodies
  std::uint64_t requests = 0;
  std::uint64_t retries = 0;
};

struct BlobInfo {
  std::uint64_t size = 0;
  std::optional<Digest> digest;  // Docker-Content-Digest, when the registry sends it
};

struct ManifestResponse {
  std::string media_type;  // Content-Type
  Digest digest;           // sha256 of the bytes (checked against what was asked / announced)
  std::vector<std::uint8_t> bytes;
};

// Reads bytes for an upload: fills the span from `offset` of the blob and returns the count.
// Called again from offset 0 when a request is retried.
using BlobReader = std::function<Result<std::size_t>(std::uint64_t offset, MutableByteSpan out)>;

// Thread-safe: any number of threads may call it at once (each request takes its own connection
// from a small pool; auth tokens are shared).
class RegistryClient {
 public:
  static Result<RegistryClient> create(std::string registry, ClientOptions options = {});
  RegistryClient(RegistryClient&&) noexcept;
  RegistryClient& operator=(RegistryClient&&) noexcept;
  ~RegistryClient();

  [[nodiscard]] const std::string& registry() const;
  [[nodiscard]] TransferCounters counters() const;

  // GET /v2/: reachable and speaking the API (authenticating when it asks).
  Result<void> ping();

  // HEAD /v2/<repo>/blobs/<digest>: nullopt when the registry does not have it.
  Result<std::optional<BlobInfo>> stat_blob(const std::string& repository, const Digest& digest);
  // The whole blob in memory (at most max_bytes), verified against its digest.
  Result<std::vector<std::uint8_t>> fetch_blob(const std::string& repository, const Digest& digest,
                                               std::uint64_t max_bytes);
  // The whole blob, of `size` bytes (its descriptor's), into the file `path`: written to
  // "<path>.partial", verified, then renamed. An existing "<path>.partial" (an earlier call that
  // failed) and a connection dropped mid-blob resume with a Range request for the rest; a
  // registry answering 200 restarts from byte 0; a partial answered 416 and a final digest
  // mismatch discard the file and try once more from 0. A partial longer than `size` is
  // discarded before asking; a registry sending more than `size` bytes (a Content-Length above
  // it, or a body running past it) is cut off there with kCorruptInput, the partial discarded, so
  // the file never holds more than `size` bytes. "<path>.partial" is opened without following a
  // symbolic link (one planted there is an error naming the path). `progress` gets the bytes held
  // so far. Returns the size.
  Result<std::uint64_t> fetch_blob_to_file(const std::string& repository, const Digest& digest,
                                           std::uint64_t size, const std::string& path,
                                           const std::function<void(std::uint64_t)>& progress = {});
  // Bytes [offset, offset + length) of a blob (Range GET). Cannot be checked against the blob
  // digest: callers check them against their own (TOC / chunk) digests.
  Result<std::vector<std::uint8_t>> fetch_range(const std::string& repository, const Digest& digest,
                                                std::uint64_t offset, std::uint64_t length);
  // Bytes [offset, offset + length) of a blob given to `sink` in order as they arrive, never held
  // whole (a pull decodes a long run of chunks while it streams in). Each byte reaches `sink` once:
  // a dropped connection is retried from where the delivered bytes end (the Range starts one byte
  // early and that byte must match the last one delivered). A registry that ignores Range (200)
  // has the wanted bytes cut out of the whole blob and the transfer ends once they are delivered,
  // unhashed, like any range answer: callers check the bytes against their own digests. An error
  // from `sink` ends the transfer and is returned. Fewer bytes than `length` is kCorruptInput.
  Result<void> stream_range(const std::string& repository, const Digest& digest,
                            std::uint64_t offset, std::uint64_t length,
                            const std::function<Result<void>(ByteSpan)>& sink);
  // Several ranges in one multi-range request where the registry supports it, falling back to
  // single ranges (a 200 full body, 400, 416, or an unusable multipart answer). Request order.
  Result<std::vector<std::vector<std::uint8_t>>> fetch_ranges(const std::string& repository,
                                                              const Digest& digest,
                                                              std::span<const ByteRange> ranges);

  // Uploads a blob of `size` bytes read through `reader` (monolithic, or chunked per
  // upload_chunk_bytes). `progress` gets bytes sent so far.
  Result<void> push_blob(const std::string& repository, const Digest& digest, std::uint64_t size,
                         const BlobReader& reader,
                         const std::function<void(std::uint64_t)>& progress = {});
  // POST ?mount=<digest>&from=<repo>: true when mounted; false when the registry declined (the
  // upload session it opened instead is abandoned; the caller uploads).
  Result<bool> mount_blob(const std::string& repository, const Digest& digest,
                          const std::string& from_repository);

  // GET /v2/<repo>/manifests/<tag|digest> accepting OCI and Docker v2 manifests and indexes;
  // the bytes are checked against the digest asked for, or the Docker-Content-Digest sent.
  Result<ManifestResponse> fetch_manifest(const std::string& repository,
                                          const std::string& reference);
  // PUT; returns the digest of the bytes (checked against Docker-Content-Digest when sent).
  Result<Digest> push_manifest(const std::string& repository, const std::string& reference,
                               std::string_view media_type, ByteSpan bytes);

  // GET /v2/<repo>/referrers/<digest> (distribution-spec v1.1): the image index of manifests
  // whose subject is `digest`, or nullopt when the registry has no referrers API (404), in which
  // case clients use the tag-schema fallback tag "sha256-<hex>".
  Result<std::optional<oci::Index>> fetch_referrers(const std::string& repository,
                                                    const Digest& digest);

  // GET /v2/<repo>/tags/list (?n=page_size when not 0), following rel="next" Links (bounded
  // pages).
  Result<std::vector<std::string>> list_tags(const std::string& repository,
                                             std::size_t page_size = 0);

  struct Impl;

 private:
  explicit RegistryClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// ---- 4. image transfer ------------------------------------------------------------------------

struct TransferProgress {
  std::uint64_t done_bytes = 0;
  std::uint64_t total_bytes = 0;
};
using TransferProgressFn = std::function<void(const TransferProgress&)>;

struct PushOptions {
  unsigned jobs = 4;                    // blobs in flight at once
  std::vector<std::string> mount_from;  // repositories to try mounting blobs from
};

struct PushReport {
  Digest manifest_digest;
  std::uint64_t blobs = 0;
  std::uint64_t blobs_uploaded = 0;
  std::uint64_t blobs_skipped = 0;  // already in the repository
  std::uint64_t blobs_mounted = 0;
  std::uint64_t bytes_uploaded = 0;  // blob bytes sent
  std::uint64_t bytes_skipped = 0;   // blob bytes not sent (present or mounted)
  TransferCounters wire;
};

// Pushes the image `tag` of `layout` (config, layers, then the manifest) to `destination`.
Result<PushReport> push_image(RegistryClient& client, const oci::OciLayout& layout,
                              std::string_view tag, const ImageReference& destination,
                              const PushOptions& options, const TransferProgressFn& progress = {});

struct DeltaPushReport {
  Digest referrer_digest;
  std::string referrers;  // "api" (the registry lists it) | "tag" (fallback tag sha256-<hex>)
  std::uint64_t bytes_uploaded = 0;
};

// Pushes a delta referrer that fastpull::write_delta_referrer wrote into `layout` (docs/DELTA.md):
// its blobs, its manifest by digest, and, where the registry's referrers API does not list it,
// the fallback tag's index with it added. Push its subject image first.
Result<DeltaPushReport> push_delta_referrer(RegistryClient& client, const oci::OciLayout& layout,
                                            const oci::Descriptor& referrer,
                                            const ImageReference& destination);

struct PullOptions {
  unsigned jobs = 4;
  std::string work_directory;  // for downloads in flight; empty: the system temp directory
  // The platform picked from an index (multi-platform image).
  std::string os = "linux";
  std::string architecture = "amd64";
  // Layers annotated as zstd:chunked or eStargz are pulled by range requests: TOC first, then
  // only the chunks the store lacks (store only, no layout: a layout needs the exact blob).
  bool partial = true;
  // Partial pulls use the image's delta referrer (docs/DELTA.md) when there is one: a missing
  // chunk whose base the store holds comes as its delta.
  bool deltas = true;
  // A long run of chunks the store lacks (all of a new layer) streams in requests of at most this
  // many bytes (fastpull::StorePullOptions::stream_batch_bytes); what a request holds at once is
  // bounded apart from it (16 units of about 1 MiB).
  std::uint64_t stream_batch_bytes = std::uint64_t{64} << 20U;
  // Called once per layer as soon as it is in the store with its diff_id checked (fetched, or
  // found there already), on the thread that pulled it, with its index in the manifest and its
  // diff_id: a caller may start on it while later layers are fetched (RootfsBuild::layer_ready,
  // for `strata pull --unpack`). Only with a store.
  std::function<void(std::size_t index, const Digest& diff_id)> layer_stored;
};

struct PulledLayer {
  oci::Descriptor descriptor;
  Digest diff_id;
  std::uint64_t new_chunks = 0;
  std::uint64_t new_stored_bytes = 0;
  bool already_present = false;
  // Partial pull (chunked layers): which format, or why the layer was fetched whole instead.
  bool chunked = false;
  std::string chunked_format;        // "zstd:chunked", "zstd:chunked-v1", "estargz"; empty: whole
  std::string whole_reason;          // set when fetched whole ("not a chunked layer", "TOC: ...")
  std::uint64_t bytes_fetched = 0;   // blob bytes received for this layer (TOC and ranges included)
  std::uint64_t chunks_local = 0;    // chunks taken from the store
  std::uint64_t chunks_fetched = 0;  // chunk pieces fetched (whole or as deltas)
  std::uint64_t repeat_chunks = 0;   // chunks the layer repeats: fetched once, used again
  std::uint64_t frames_adopted = 0;  // fetched zstd frames stored as they came (no recompression)
  std::uint64_t fetch_batches = 0;   // range batches fetched (one multi-range or streamed GET each)
  // The largest batch: a multi-range batch is held whole, a streamed one 16 units of ~1 MiB at
  // most.
  std::uint64_t max_batch_bytes = 0;
  // Deltas (docs/DELTA.md): chunks decoded from a delta and a base the store held, the frames
  // bytes fetched for them (part of bytes_fetched), deltas that failed and came whole, and what
  // this layer's bytes_fetched would have been without deltas (TOC plus the plan's ranges).
  std::uint64_t metadata_bytes = 0;  // footer, TOC and tar-split (part of bytes_fetched)
  std::uint64_t delta_chunks = 0;
  std::uint64_t delta_bytes_fetched = 0;
  std::uint64_t delta_stored_chunks = 0;
  std::uint64_t delta_fallbacks = 0;
  std::uint64_t bytes_fetched_without_deltas = 0;
  fastpull::PullStageTimes stages;  // where this layer's time went (seconds)
};

struct PullReport {
  Digest manifest_digest;
  oci::Manifest manifest;
  std::vector<PulledLayer> layers;
  std::uint64_t layer_bytes = 0;    // sum of the layers' sizes
  std::uint64_t bytes_fetched = 0;  // blob bytes received (manifest and config included)
  TransferCounters wire;
  // The delta referrer: where it was found ("api" | "tag" | ""), why one found was not used, and
  // the bytes of its manifest and index. bytes_fetched_without_deltas: bytes_fetched with every
  // layer's delta work replaced by its plan without deltas and the referrer bytes taken out.
  std::string delta_referrer;
  std::string delta_refused;
  std::uint64_t delta_referrer_bytes = 0;
  std::uint64_t bytes_fetched_without_deltas = 0;
};

// Pulls `source`: manifest (an index is resolved to options' platform), config, every layer
// (fetched in parallel, each verified), ingested into `store` when given, and written with a tag
// into `layout` when given.
Result<PullReport> pull_image(RegistryClient& client, const ImageReference& source,
                              ChunkStore* store, oci::OciLayout* layout, std::string_view tag,
                              const PullOptions& options, const TransferProgressFn& progress = {});

// What a pull of `source` into `store` would fetch, found without fetching any layer: the manifest
// (an index resolved to options' platform) and the config are fetched, and for each chunked layer
// its TOC (range GETs: footer, TOC, tar-split) to plan it against the store, exactly as
// pull_image() plans before it fetches. The store is only read.
struct PlannedLayer {
  oci::Descriptor descriptor;
  Digest diff_id;
  bool already_present = false;  // the store holds the layer (by diff_id): nothing is fetched
  bool chunked = false;          // pulled by range requests for the missing chunks only
  std::string chunked_format;    // "zstd:chunked", "zstd:chunked-v1", "estargz"; empty: whole
  std::string whole_reason;      // set when the layer would be fetched whole
  // Blob bytes pull_image() would receive for this layer: 0 when already present, the blob's
  // size when whole, else metadata_bytes plus the planned ranges (bridged gaps included).
  std::uint64_t fetch_bytes = 0;
  std::uint64_t metadata_bytes = 0;  // footer / TOC / tar-split (read by the planning itself)
  std::uint64_t chunks = 0;          // chunked only: chunks the TOC names
  std::uint64_t chunks_local = 0;    // ... taken from the store (or zeros made)
  std::uint64_t chunks_missing = 0;  // ... fetched
  std::uint64_t ranges = 0;          // ... merged byte ranges fetched
  // ... of the missing chunks, those that would come as deltas from the image's delta referrer
  // (docs/DELTA.md), and the frames-blob bytes for them (part of fetch_bytes).
  std::uint64_t delta_chunks = 0;
  std::uint64_t delta_fetch_bytes = 0;
};

struct PullPlanReport {
  Digest manifest_digest;
  oci::Manifest manifest;
  std::vector<PlannedLayer> layers;
  std::uint64_t layer_bytes = 0;  // sum of the layers' sizes
  std::uint64_t fetch_bytes = 0;  // sum of the layers' fetch_bytes
  std::uint64_t image_bytes = 0;  // manifest (and index) and config, which a pull fetches too
  // The delta referrer, looked for as pull_image() does (partial pulls with deltas on): where it
  // was found ("api" | "tag" | ""), why one found is not used, and its manifest and index bytes
  // (a pull fetches them too).
  std::string delta_referrer;
  std::string delta_refused;
  std::uint64_t delta_referrer_bytes = 0;
  TransferCounters wire;  // what the planning itself cost
};

Result<PullPlanReport> plan_image_pull(RegistryClient& client, const ImageReference& source,
                                       const ChunkStore& store, const PullOptions& options);

}  // namespace strata::registry
