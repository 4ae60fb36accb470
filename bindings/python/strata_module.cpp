// The Python module `strata` (pybind11, Debian's python3-pybind11) over the C ABI of
// include/strata/strata_c.h, so every call from Python crosses the same boundary a registry or a
// builder uses: chunk bytes (at once or streamed), open a store, ingest a layer from a path, a
// file descriptor or a file-like object, export a stored layer in any layer format to a file
// descriptor or a callable, pull an image or plan that pull, package, push and pull a model. A
// failed call raises strata.Error whose `code` is the C status (strata.INVALID_ARGUMENT, ...),
// `name` its short name; an exception raised by a Python callback becomes the __cause__ of an Error
// with code CALLBACK. The GIL is released around store work and taken again inside callbacks.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cctype>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "strata/strata_c.h"

namespace py = pybind11;

namespace {

PyObject* g_error_type = nullptr;  // strata.Error, created at import
struct ErrorTag {};                // names strata.Error's pybind11 registration

// Raises strata.Error(code, message); `cause` (a Python exception a callback raised) becomes its
// __cause__.
[[noreturn]] void raise_status(std::int32_t code, const std::string& message,
                               std::optional<py::error_already_set>* cause = nullptr) {
  const std::string text = std::string(strata_status_name(code)) + ": " + message;
  if (cause != nullptr && cause->has_value()) {
    py::raise_from(**cause, g_error_type, text.c_str());
    // raise_from set the new exception; give it its code and name before raising it.
    py::error_already_set raised;
    raised.value().attr("code") = code;
    raised.value().attr("name") = strata_status_name(code);
    throw raised;
  }
  py::object error = py::reinterpret_borrow<py::object>(g_error_type)(text);
  error.attr("code") = code;
  error.attr("name") = strata_status_name(code);
  PyErr_SetObject(g_error_type, error.ptr());
  throw py::error_already_set();
}

// Calls a C function `call(strata_error*)`; raises on failure.
template <typename Call>
void invoke(Call&& call, std::optional<py::error_already_set>* cause = nullptr) {
  strata_error err;
  STRATA_INIT(err);
  const std::int32_t code = call(&err);
  if (code != STRATA_OK) raise_status(code, err.message, cause);
}

std::int32_t collect_layer_plan(void* user, const strata_layer_plan* layer) {
  static_cast<std::vector<strata_layer_plan>*>(user)->push_back(*layer);
  return 0;
}

std::int32_t format_of(const std::string& name) {
  if (name == "tar") return STRATA_FORMAT_TAR;
  if (name == "gzip") return STRATA_FORMAT_GZIP;
  if (name == "zstd") return STRATA_FORMAT_ZSTD;
  if (name == "zstd:chunked") return STRATA_FORMAT_ZSTD_CHUNKED;
  if (name == "zstd:chunked-v1") return STRATA_FORMAT_ZSTD_CHUNKED_V1;
  if (name == "estargz") return STRATA_FORMAT_ESTARGZ;
  raise_status(STRATA_E_INVALID_ARGUMENT, "unknown layer format '" + name + "'");
}

std::int32_t algorithm_of(const std::string& name) {
  if (name == "fastcdc2016") return STRATA_CHUNK_FASTCDC2016;
  if (name == "fastcdc2020") return STRATA_CHUNK_FASTCDC2020;
  if (name == "xet") return STRATA_CHUNK_XET;
  if (name == "casync") return STRATA_CHUNK_CASYNC;
  raise_status(STRATA_E_INVALID_ARGUMENT, "unknown chunk algorithm '" + name + "'");
}

strata_chunker_options chunker_options(const std::string& algorithm, std::uint32_t min_size,
                                       std::uint32_t avg_size, std::uint32_t max_size,
                                       bool digests) {
  strata_chunker_options options;
  STRATA_INIT(options);
  invoke([&](strata_error* err) {
    return strata_chunker_options_init(&options, algorithm_of(algorithm), err);
  });
  if (min_size != 0) options.min_size = min_size;
  if (avg_size != 0) options.avg_size = avg_size;
  if (max_size != 0) options.max_size = max_size;
  options.with_digests = digests ? 1 : 0;
  return options;
}

std::int32_t append_chunk(void* user, const strata_chunk* chunk, const std::uint8_t*) {
  auto* list = static_cast<py::list*>(user);
  py::dict item;
  item["offset"] = chunk->offset;
  item["length"] = chunk->length;
  item["digest"] = std::string(chunk->digest);
  list->append(item);
  return 0;
}

std::string_view view_of(const py::bytes& data) {
  char* buffer = nullptr;
  Py_ssize_t length = 0;
  if (PyBytes_AsStringAndSize(data.ptr(), &buffer, &length) != 0) throw py::error_already_set();
  return {buffer, static_cast<std::size_t>(length)};
}

py::list chunk(const py::bytes& data, const std::string& algorithm, std::uint32_t min_size,
               std::uint32_t avg_size, std::uint32_t max_size, bool digests) {
  const auto options = chunker_options(algorithm, min_size, avg_size, max_size, digests);
  const std::string_view bytes = view_of(data);
  py::list out;
  invoke([&](strata_error* err) {
    return strata_chunk_buffer(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size(),
                               &options, append_chunk, &out, err);
  });
  return out;
}

class Chunker {
 public:
  Chunker(const std::string& algorithm, std::uint32_t min_size, std::uint32_t avg_size,
          std::uint32_t max_size, bool digests) {
    const auto options = chunker_options(algorithm, min_size, avg_size, max_size, digests);
    invoke([&](strata_error* err) { return strata_chunker_open(&options, &handle_, err); });
  }
  ~Chunker() {
    if (!closed_) strata_chunker_close(handle_, nullptr);
  }
  Chunker(const Chunker&) = delete;
  Chunker& operator=(const Chunker&) = delete;

  py::list feed(const py::bytes& data) {
    const std::string_view bytes = view_of(data);
    py::list out;
    invoke([&](strata_error* err) {
      return strata_chunker_feed(handle_, reinterpret_cast<const std::uint8_t*>(bytes.data()),
                                 bytes.size(), append_chunk, &out, err);
    });
    return out;
  }
  py::list finish() {
    py::list out;
    invoke(
        [&](strata_error* err) { return strata_chunker_finish(handle_, append_chunk, &out, err); });
    return out;
  }
  void reset() {
    invoke([&](strata_error* err) { return strata_chunker_reset(handle_, err); });
  }
  // The handle value is kept: a call after close reaches the C ABI, which refuses it.
  void close() {
    invoke([&](strata_error* err) { return strata_chunker_close(handle_, err); });
    closed_ = true;
  }

 private:
  strata_chunker* handle_ = nullptr;
  bool closed_ = false;
};

strata_registry_options registry_options(bool plain_http, bool tls_verify,
                                         const std::optional<std::string>& username,
                                         const std::optional<std::string>& password) {
  strata_registry_options options;
  STRATA_INIT(options);
  options.plain_http = plain_http ? 1 : 0;
  options.tls_skip_verify = tls_verify ? 0 : 1;
  options.username = username ? username->c_str() : nullptr;
  options.password = password ? password->c_str() : nullptr;
  return options;
}

py::dict ingest_dict(const strata_ingest_report& report) {
  py::dict out;
  out["diff_id"] = std::string(report.diff_id);
  out["layer_digest"] = std::string(report.layer_digest);
  out["compression"] = std::string(report.compression);
  out["input_bytes"] = report.input_bytes;
  out["tar_bytes"] = report.tar_bytes;
  out["entries"] = report.entries;
  out["chunks"] = report.chunks;
  out["new_chunks"] = report.new_chunks;
  out["new_stored_bytes"] = report.new_stored_bytes;
  out["already_present"] = report.already_present != 0;
  return out;
}

// Context of a Python callback: the callable and the first exception it raised.
struct PyCallback {
  py::object callable;
  std::optional<py::error_already_set> raised;
};

std::int64_t read_from_python(void* user, std::uint8_t* buffer, std::size_t capacity) {
  auto* context = static_cast<PyCallback*>(user);
  const py::gil_scoped_acquire gil;
  try {
    const py::object chunk = context->callable(capacity);
    if (!PyBytes_Check(chunk.ptr())) {
      throw py::type_error("read(n) must return bytes");
    }
    const std::string_view bytes = view_of(py::reinterpret_borrow<py::bytes>(chunk));
    // More than asked is the C ABI's to refuse: report the true count without overrunning.
    if (bytes.size() > capacity) return static_cast<std::int64_t>(bytes.size());
    std::memcpy(buffer, bytes.data(), bytes.size());
    return static_cast<std::int64_t>(bytes.size());
  } catch (py::error_already_set& error) {
    context->raised.emplace(std::move(error));
  } catch (const std::exception& error) {
    PyErr_SetString(PyExc_RuntimeError, error.what());
    context->raised.emplace();
  }
  return -1;
}

std::int32_t write_to_python(void* user, const std::uint8_t* data, std::size_t length) {
  auto* context = static_cast<PyCallback*>(user);
  const py::gil_scoped_acquire gil;
  try {
    context->callable(py::bytes(reinterpret_cast<const char*>(data), length));
    return 0;
  } catch (py::error_already_set& error) {
    context->raised.emplace(std::move(error));
  } catch (const std::exception& error) {
    PyErr_SetString(PyExc_RuntimeError, error.what());
    context->raised.emplace();
  }
  return -1;
}

class Store {
 public:
  Store(const std::string& path, bool create) {
    strata_store_options options;
    STRATA_INIT(options);
    options.create_if_missing = create ? 1 : 0;
    invoke([&](strata_error* err) {
      return strata_store_open(path.c_str(), &options, &handle_, err);
    });
  }
  ~Store() {
    if (!closed_) strata_store_close(handle_, nullptr);
  }
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  [[nodiscard]] strata_store* handle() const { return handle_; }

  void close() {
    invoke([&](strata_error* err) { return strata_store_close(handle_, err); });
    closed_ = true;
  }

  py::dict stats() {
    strata_store_stats stats;
    STRATA_INIT(stats);
    invoke([&](strata_error* err) { return strata_store_stats_get(handle_, &stats, err); });
    py::dict out;
    out["chunks"] = stats.chunks;
    out["layers"] = stats.layers;
    out["raw_bytes"] = stats.raw_bytes;
    out["stored_bytes"] = stats.stored_bytes;
    out["packs"] = stats.packs;
    return out;
  }

  bool has_layer(const std::string& digest) {
    strata_error err;
    STRATA_INIT(err);
    const std::int32_t code = strata_store_has_layer(handle_, digest.c_str(), &err);
    if (code == STRATA_E_NOT_FOUND) return false;
    if (code != STRATA_OK) raise_status(code, err.message);
    return true;
  }

  // Exactly one of path, fd, reader (an object with read(n) -> bytes, or a callable n -> bytes).
  py::dict ingest(const std::optional<std::string>& path, const std::optional<int>& fd,
                  const py::object& reader, unsigned threads) {
    strata_ingest_options options;
    STRATA_INIT(options);
    options.threads = threads;
    strata_ingest_report report;
    STRATA_INIT(report);
    const int given = (path ? 1 : 0) + (fd ? 1 : 0) + (reader.is_none() ? 0 : 1);
    if (given != 1) {
      raise_status(STRATA_E_INVALID_ARGUMENT, "ingest takes exactly one of path, fd, reader");
    }
    if (path) {
      invoke([&](strata_error* err) {
        const py::gil_scoped_release released;
        return strata_ingest_path(handle_, path->c_str(), &options, &report, err);
      });
    } else if (fd) {
      invoke([&](strata_error* err) {
        const py::gil_scoped_release released;
        return strata_ingest_fd(handle_, *fd, &options, &report, err);
      });
    } else {
      PyCallback context{py::hasattr(reader, "read") ? reader.attr("read") : reader, {}};
      invoke(
          [&](strata_error* err) {
            const py::gil_scoped_release released;
            return strata_ingest_reader(handle_, read_from_python, &context, &options, &report,
                                        err);
          },
          &context.raised);
    }
    return ingest_dict(report);
  }

  // To `fd`, or to `write` (an object with write(bytes), or a callable taking bytes).
  py::dict export_layer(const std::string& layer, const std::string& format,
                        const std::optional<int>& fd, const py::object& writer, int level) {
    strata_export_options options;
    STRATA_INIT(options);
    options.format = format_of(format);
    options.level = level;
    strata_export_report report;
    STRATA_INIT(report);
    if (fd.has_value() == !writer.is_none()) {
      raise_status(STRATA_E_INVALID_ARGUMENT, "export takes exactly one of fd, write");
    }
    if (fd) {
      invoke([&](strata_error* err) {
        const py::gil_scoped_release released;
        return strata_export_fd(handle_, layer.c_str(), &options, *fd, &report, err);
      });
    } else {
      PyCallback context{py::hasattr(writer, "write") ? writer.attr("write") : writer, {}};
      invoke(
          [&](strata_error* err) {
            const py::gil_scoped_release released;
            return strata_export_writer(handle_, layer.c_str(), &options, write_to_python, &context,
                                        &report, err);
          },
          &context.raised);
    }
    py::dict out;
    out["media_type"] = std::string(report.media_type);
    out["digest"] = std::string(report.digest);
    out["size"] = report.size;
    out["diff_id"] = std::string(report.diff_id);
    out["tar_bytes"] = report.tar_bytes;
    out["annotations"] =
        py::module_::import("json").attr("loads")(std::string(report.annotations_json));
    return out;
  }

  py::dict pull_image(const std::string& reference, bool plain_http, bool tls_verify,
                      const std::optional<std::string>& username,
                      const std::optional<std::string>& password, bool whole_layers) {
    const auto registry = registry_options(plain_http, tls_verify, username, password);
    strata_pull_options options;
    STRATA_INIT(options);
    options.whole_layers = whole_layers ? 1 : 0;
    strata_pull_report report;
    STRATA_INIT(report);
    invoke([&](strata_error* err) {
      const py::gil_scoped_release released;
      return strata_image_pull(handle_, reference.c_str(), &registry, &options, &report, err);
    });
    py::dict out;
    out["manifest_digest"] = std::string(report.manifest_digest);
    out["layers"] = report.layers;
    out["layers_chunked"] = report.layers_chunked;
    out["layer_bytes"] = report.layer_bytes;
    out["bytes_fetched"] = report.bytes_fetched;
    out["chunks_local"] = report.chunks_local;
    out["chunks_fetched"] = report.chunks_fetched;
    return out;
  }

  // What pull_image would fetch, without fetching a layer: totals and a dict per layer.
  py::dict pull_plan(const std::string& reference, bool plain_http, bool tls_verify,
                     const std::optional<std::string>& username,
                     const std::optional<std::string>& password, bool whole_layers) {
    const auto registry = registry_options(plain_http, tls_verify, username, password);
    strata_pull_options options;
    STRATA_INIT(options);
    options.whole_layers = whole_layers ? 1 : 0;
    strata_image_plan plan;
    STRATA_INIT(plan);
    std::vector<strata_layer_plan> layers;  // filled without the GIL, converted after
    invoke([&](strata_error* err) {
      const py::gil_scoped_release released;
      return strata_image_pull_plan(handle_, reference.c_str(), &registry, &options,
                                    collect_layer_plan, &layers, &plan, err);
    });
    py::list layer_list;
    for (const strata_layer_plan& layer : layers) {
      py::dict item;
      item["digest"] = std::string(layer.digest);
      item["diff_id"] = std::string(layer.diff_id);
      item["size"] = layer.size;
      item["already_present"] = layer.already_present != 0;
      item["chunked"] = layer.chunked != 0;
      item["chunked_format"] = std::string(layer.chunked_format);
      item["whole_reason"] = std::string(layer.whole_reason);
      item["fetch_bytes"] = layer.fetch_bytes;
      item["metadata_bytes"] = layer.metadata_bytes;
      item["chunks"] = layer.chunks;
      item["chunks_local"] = layer.chunks_local;
      item["chunks_missing"] = layer.chunks_missing;
      item["ranges"] = layer.ranges;
      layer_list.append(std::move(item));
    }
    py::dict out;
    out["manifest_digest"] = std::string(plan.manifest_digest);
    out["layers"] = std::move(layer_list);
    out["layers_already_present"] = plan.layers_already_present;
    out["layers_chunked"] = plan.layers_chunked;
    out["chunks"] = plan.chunks;
    out["chunks_local"] = plan.chunks_local;
    out["chunks_missing"] = plan.chunks_missing;
    out["layer_bytes"] = plan.layer_bytes;
    out["fetch_bytes"] = plan.fetch_bytes;
    out["image_bytes"] = plan.image_bytes;
    return out;
  }

  py::dict model_pull(const std::string& reference, const std::optional<std::string>& out_directory,
                      bool plain_http, bool tls_verify, const std::optional<std::string>& username,
                      const std::optional<std::string>& password) {
    const auto registry = registry_options(plain_http, tls_verify, username, password);
    strata_model_pull_report report;
    STRATA_INIT(report);
    invoke([&](strata_error* err) {
      const py::gil_scoped_release released;
      return strata_model_pull(handle_, reference.c_str(), &registry,
                               out_directory ? out_directory->c_str() : nullptr, &report, err);
    });
    py::dict out;
    out["manifest_digest"] = std::string(report.manifest_digest);
    out["files"] = report.files;
    out["total_bytes"] = report.total_bytes;
    out["bytes_fetched"] = report.bytes_fetched;
    out["chunks"] = report.chunks;
    out["chunks_fetched"] = report.chunks_fetched;
    return out;
  }

 private:
  strata_store* handle_ = nullptr;
  bool closed_ = false;
};

py::dict model_package(const std::string& source, const std::string& layout, const std::string& tag,
                       const std::string& format, Store* store) {
  strata_model_package_options options;
  STRATA_INIT(options);
  if (format == "docker") {
    options.format = STRATA_MODEL_DOCKER;
  } else if (format == "modelpack") {
    options.format = STRATA_MODEL_MODELPACK;
  } else {
    raise_status(STRATA_E_INVALID_ARGUMENT, "unknown model format '" + format + "'");
  }
  options.store = store == nullptr ? nullptr : store->handle();
  strata_model_package_report report;
  STRATA_INIT(report);
  invoke([&](strata_error* err) {
    const py::gil_scoped_release released;
    return strata_model_package(source.c_str(), layout.c_str(), tag.c_str(), &options, &report,
                                err);
  });
  py::dict out;
  out["manifest_digest"] = std::string(report.manifest_digest);
  out["files"] = report.files;
  out["weight_files"] = report.weight_files;
  out["total_bytes"] = report.total_bytes;
  out["weight_bytes"] = report.weight_bytes;
  return out;
}

py::dict model_push(const std::string& layout, const std::string& tag, const std::string& reference,
                    bool plain_http, bool tls_verify, const std::optional<std::string>& username,
                    const std::optional<std::string>& password) {
  const auto registry = registry_options(plain_http, tls_verify, username, password);
  strata_model_push_report report;
  STRATA_INIT(report);
  invoke([&](strata_error* err) {
    const py::gil_scoped_release released;
    return strata_model_push(layout.c_str(), tag.c_str(), reference.c_str(), &registry, &report,
                             err);
  });
  py::dict out;
  out["manifest_digest"] = std::string(report.manifest_digest);
  out["blobs_uploaded"] = report.blobs_uploaded;
  out["blobs_skipped"] = report.blobs_skipped;
  out["bytes_uploaded"] = report.bytes_uploaded;
  return out;
}

}  // namespace

PYBIND11_MODULE(strata, m) {
  m.doc() = "strata: content-defined chunking, a dedup chunk store and OCI layer formats (C ABI)";
  static py::exception<ErrorTag> error_type(m, "Error", PyExc_RuntimeError);
  g_error_type = error_type.ptr();
  error_type.attr("code") = 0;
  error_type.attr("name") = "ok";

  for (const std::int32_t code :
       {STRATA_E_INVALID_ARGUMENT, STRATA_E_IO, STRATA_E_CORRUPT_INPUT, STRATA_E_UNSUPPORTED,
        STRATA_E_LIMIT_EXCEEDED, STRATA_E_NOT_FOUND, STRATA_E_DIGEST_MISMATCH, STRATA_E_UNSAFE_PATH,
        STRATA_E_INTERNAL, STRATA_E_BAD_HANDLE, STRATA_E_CALLBACK, STRATA_E_OUT_OF_MEMORY}) {
    std::string name = strata_status_name(code);
    for (char& c : name) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    m.attr(name.c_str()) = code;
  }
  m.def("version", [] { return std::string(strata_version_string()); });
  m.def("abi_version", [] { return strata_abi_version(); });
  m.def("chunk", &chunk, py::arg("data"), py::arg("algorithm") = "fastcdc2020",
        py::arg("min_size") = 0, py::arg("avg_size") = 0, py::arg("max_size") = 0,
        py::arg("digests") = true,
        "Chunks of `data`: a list of {offset, length, digest} (sizes 0: the algorithm's)");

  py::class_<Chunker>(m, "Chunker")
      .def(py::init<const std::string&, std::uint32_t, std::uint32_t, std::uint32_t, bool>(),
           py::arg("algorithm") = "fastcdc2020", py::arg("min_size") = 0, py::arg("avg_size") = 0,
           py::arg("max_size") = 0, py::arg("digests") = true)
      .def("feed", &Chunker::feed, py::arg("data"))
      .def("finish", &Chunker::finish)
      .def("reset", &Chunker::reset)
      .def("close", &Chunker::close)
      .def("__enter__", [](Chunker& self) -> Chunker& { return self; })
      .def("__exit__", [](Chunker& self, const py::args&) { self.close(); });

  py::class_<Store>(m, "Store")
      .def(py::init<const std::string&, bool>(), py::arg("path"), py::arg("create") = true)
      .def("close", &Store::close)
      .def("stats", &Store::stats)
      .def("has_layer", &Store::has_layer, py::arg("digest"))
      .def("ingest", &Store::ingest, py::kw_only(), py::arg("path") = py::none(),
           py::arg("fd") = py::none(), py::arg("reader") = py::none(), py::arg("threads") = 0)
      .def("export", &Store::export_layer, py::arg("layer"), py::arg("format") = "zstd:chunked",
           py::kw_only(), py::arg("fd") = py::none(), py::arg("write") = py::none(),
           py::arg("level") = 0)
      .def("pull_image", &Store::pull_image, py::arg("reference"), py::kw_only(),
           py::arg("plain_http") = false, py::arg("tls_verify") = true,
           py::arg("username") = py::none(), py::arg("password") = py::none(),
           py::arg("whole_layers") = false)
      .def("pull_plan", &Store::pull_plan, py::arg("reference"), py::kw_only(),
           py::arg("plain_http") = false, py::arg("tls_verify") = true,
           py::arg("username") = py::none(), py::arg("password") = py::none(),
           py::arg("whole_layers") = false)
      .def("model_pull", &Store::model_pull, py::arg("reference"), py::kw_only(),
           py::arg("out_directory") = py::none(), py::arg("plain_http") = false,
           py::arg("tls_verify") = true, py::arg("username") = py::none(),
           py::arg("password") = py::none())
      .def("__enter__", [](Store& self) -> Store& { return self; })
      .def("__exit__", [](Store& self, const py::args&) { self.close(); });

  m.def("model_package", &model_package, py::arg("source"), py::arg("layout"), py::arg("tag"),
        py::kw_only(), py::arg("format") = "docker", py::arg("store") = nullptr);
  m.def("model_push", &model_push, py::arg("layout"), py::arg("tag"), py::arg("reference"),
        py::kw_only(), py::arg("plain_http") = false, py::arg("tls_verify") = true,
        py::arg("username") = py::none(), py::arg("password") = py::none());
}
