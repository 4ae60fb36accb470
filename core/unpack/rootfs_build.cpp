// RootfsBuild (include/strata/unpack.h): the rootfs of `strata pull --unpack DIR`, built while the
// pull commits layers. A worker thread applies layer i once it and layers 0..i-1 are announced
// (the OCI changeset rules need bottom-first order: shared/specs/layer-formats.md §3, whiteouts
// and opaque directories), streaming each from the store through the one recipe reader
// (core/unpack/store_layer_tar.cpp). The tree grows in a private "<DIR>.partial-<hex>" directory
// (safe_path::PrivateDirectory: mkdtemp-like, removed with its contents unless published) and
// becomes DIR by one rename once every layer is applied and its diff_id verified, so a failed or
// interrupted pull never leaves a DIR that looks complete (issue 17, "Bad input").
#include <sys/stat.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "core/base/file_io.h"
#include "core/base/safe_path.h"
#include "core/unpack/layer_applier.h"
#include "strata/unpack.h"

namespace strata {
namespace {

// While it is built the tree is 0700 (PrivateDirectory's mode: no one else looks in); once done,
// what mkdir gives a directory under the usual umask 022.
constexpr unsigned kFinishedMode = 0755;
// Batches the recipe reader fetches ahead of the applier (its fetch threads decode while the
// applier writes files); a pull running beside it has its own threads.
constexpr unsigned kReadAhead = 2;

struct TargetName {
  std::string parent;
  std::string name;
};

// "unpack directory 'DIR' <what>" (built by appending: GCC 12 misreports "..." + std::string&&
// under -Wrestrict).
Error target_error(const std::string& directory, std::string_view what) {
  std::string message = "unpack directory '";
  message += directory;
  message += "' ";
  message += what;
  return make_error(ErrorCode::kInvalidArgument, std::move(message));
}

// "a/b/rootfs/" -> {"a/b", "rootfs"}; the last component must name a new directory.
Result<TargetName> split_target(const std::string& directory) {
  std::filesystem::path path(directory);
  if (!path.has_filename()) path = path.parent_path();
  TargetName target{path.parent_path().string(), path.filename().string()};
  if (target.name.empty() || target.name == "." || target.name == "..") {
    return target_error(directory, "does not name a directory to create");
  }
  if (target.parent.empty()) target.parent.push_back('.');  // "rootfs": the working directory
  return target;
}

// DIR must be absent or an empty directory: the rootfs replaces it whole, never merges into it.
Result<void> check_target(const std::string& directory) {
  struct stat info {};
  if (::lstat(directory.c_str(), &info) != 0) {
    if (errno == ENOENT) return {};
    return io_error("cannot stat", directory, errno);
  }
  if (!S_ISDIR(info.st_mode)) {
    return target_error(directory, "exists and is not a directory");
  }
  std::error_code error;
  if (!std::filesystem::is_empty(directory, error) || error) {
    return target_error(directory,
                        "is not empty: the rootfs goes into an empty or absent directory");
  }
  return {};
}

}  // namespace

struct RootfsBuild::Impl {
  Impl(const ChunkStore& store_in, const UnpackOptions& options_in, LayerDoneFn done,
       std::string name_in, safe_path::PrivateDirectory partial_in,
       safe_path::RootDirectory root_in)
      : store(store_in),
        options(options_in),
        layer_done(std::move(done)),
        name(std::move(name_in)),
        partial(std::move(partial_in)),
        root(std::move(root_in)),
        applier(root, options, report) {}
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  ~Impl() { stop(); }  // the worker ends before the members it uses

  void run();
  void stop();
  Result<void> announce(std::size_t index, const Digest& diff_id);  // caller holds `mutex`

  const ChunkStore& store;
  const UnpackOptions options;
  const LayerDoneFn layer_done;
  const std::string name;
  std::optional<safe_path::PrivateDirectory> partial;
  const std::string partial_path = partial->path();
  safe_path::RootDirectory root;
  UnpackReport report;  // the worker's until it ends
  unpack_detail::LayerApplier applier;
  std::atomic<bool> cancel{false};

  std::mutex mutex;
  std::condition_variable changed;
  std::map<std::size_t, Digest> announced;
  std::size_t applied = 0;
  std::optional<std::size_t> count;  // set by finish()
  std::optional<Error> failure;
  std::thread worker;
};

void RootfsBuild::Impl::run() {
  unpack_detail::StoreLayerRead read;
  read.check = StoreChunkCheck::kDecodeWithFrame;
  read.read_ahead = kReadAhead;
  read.by_diff_id = true;
  read.cancel = &cancel;
  for (;;) {
    Digest diff_id;
    std::size_t index = 0;
    {
      std::unique_lock lock(mutex);
      changed.wait(lock, [&] {
        return cancel.load() || announced.contains(applied) || (count && applied >= *count);
      });
      if (cancel.load() || (count && applied >= *count)) return;
      index = applied;
      diff_id = announced.at(index);
    }
    const auto started = std::chrono::steady_clock::now();
    auto result = unpack_detail::apply_store_layer(applier, store, diff_id, read);
    report.seconds +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    {
      std::lock_guard lock(mutex);
      if (!result.ok()) {
        failure = make_error(result.error().code, "layer " + std::to_string(index) + " (" +
                                                      diff_id.to_string() +
                                                      "): " + result.error().message);
      } else {
        ++report.layers;
        ++applied;
      }
    }
    changed.notify_all();
    if (!result.ok()) return;
    if (layer_done) layer_done(index + 1);
  }
}

void RootfsBuild::Impl::stop() {
  {
    std::lock_guard lock(mutex);
    cancel.store(true);
  }
  changed.notify_all();
  if (worker.joinable()) worker.join();
}

Result<void> RootfsBuild::Impl::announce(std::size_t index, const Digest& diff_id) {
  const auto [at, inserted] = announced.emplace(index, diff_id);
  if (!inserted && at->second != diff_id) {
    return make_error(ErrorCode::kInvalidArgument,
                      "layer " + std::to_string(index) + " was announced as " +
                          at->second.to_string() + ", the image says " + diff_id.to_string());
  }
  return {};
}

RootfsBuild::RootfsBuild(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RootfsBuild::RootfsBuild(RootfsBuild&&) noexcept = default;
RootfsBuild& RootfsBuild::operator=(RootfsBuild&&) noexcept = default;

// The worker stops with impl_, then the partial directory goes too, unless published.
RootfsBuild::~RootfsBuild() = default;

Result<RootfsBuild> RootfsBuild::begin(const ChunkStore& store, const std::string& directory,
                                       const UnpackOptions& options, LayerDoneFn layer_done) {
  auto target = split_target(directory);
  if (!target.ok()) return std::move(target).error();
  std::error_code error;
  std::filesystem::create_directories(target->parent, error);
  if (error) {
    return io_error("cannot create directory", target->parent, error.value());
  }
  STRATA_TRY(check_target(directory));
  auto partial = safe_path::PrivateDirectory::create(target->parent, target->name + ".partial-");
  if (!partial.ok()) return std::move(partial).error();
  auto root = safe_path::RootDirectory::open(partial->path(), false);
  if (!root.ok()) return std::move(root).error();
  auto impl = std::make_unique<Impl>(store, options, std::move(layer_done), target->name,
                                     std::move(*partial), std::move(*root));
  Impl* running = impl.get();
  impl->worker = std::thread([running] { running->run(); });
  return RootfsBuild(std::move(impl));
}

void RootfsBuild::layer_ready(std::size_t index, const Digest& diff_id) {
  {
    std::lock_guard lock(impl_->mutex);
    auto announced = impl_->announce(index, diff_id);
    if (!announced.ok() && !impl_->failure) impl_->failure = std::move(announced).error();
  }
  impl_->changed.notify_all();
}

Result<UnpackReport> RootfsBuild::finish(const std::vector<Digest>& diff_ids) {
  Impl& impl = *impl_;
  if (!impl.partial) {
    return make_error(ErrorCode::kInvalidArgument, "the rootfs build has already finished");
  }
  {
    std::unique_lock lock(impl.mutex);
    for (std::size_t i = 0; i < diff_ids.size() && !impl.failure; ++i) {
      auto announced = impl.announce(i, diff_ids[i]);
      if (!announced.ok()) impl.failure = std::move(announced).error();
    }
    if (!impl.failure && !impl.announced.empty() &&
        impl.announced.rbegin()->first >= diff_ids.size()) {
      impl.failure =
          make_error(ErrorCode::kInvalidArgument,
                     "layer " + std::to_string(impl.announced.rbegin()->first) +
                         " was announced, the image has " + std::to_string(diff_ids.size()));
    }
    impl.count = diff_ids.size();
    impl.changed.notify_all();
    impl.changed.wait(lock, [&] { return impl.failure || impl.applied >= diff_ids.size(); });
  }
  impl.stop();
  Result<void> done =
      impl.failure ? Result<void>(*impl.failure) : impl.applier.finish_directories();
  if (done.ok()) done = impl.partial->publish_as(impl.name, kFinishedMode);
  impl.partial.reset();  // removes the tree unless it was published
  if (!done.ok()) return std::move(done).error();
  return impl.report;
}

const std::string& RootfsBuild::partial_directory() const {
  return impl_->partial_path;
}

}  // namespace strata
