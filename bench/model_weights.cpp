// Real-weights driver for bench/model_weights.sh. Three commands:
//   convert OUT_DIR FILE...  re-wraps real weights as safetensors (shared/specs/models.md §4.4):
//     ONNX: every FLOAT TensorProto (graph initializers, Constant-node attributes, subgraphs),
//       found by walking the protobuf (ModelProto.graph=7, GraphProto.node=1/initializer=5,
//       NodeProto.attribute=5, AttributeProto.t=5/g=6/tensors=10/graphs=11, TensorProto dims=1,
//       data_type=2, float_data=4, name=8, raw_data=9), written as F32, BF16 (round to nearest
//       even) and F16 (round to nearest even) files.
//     TFLite: every FLOAT16 tensor with its own buffer (FlatBuffer Model.subgraphs=2, buffers=4;
//       Tensor shape=0, type=1, buffer=2, name=3; Buffer data=0), written as native F16.
//   measure FILE...          per file: tensor-aware chunks (64 KiB average), their total size under
//     plain zstd -3 / -19 per chunk and under strata's per-chunk codec choice at the same levels,
//     and the codec's speed both ways.
//   finetune FILE PERCENT... perturbs PERCENT % of the tensors (the mantissa LSB of every other
//     element, as a short fine-tune would) and reports the bytes of new chunks (SHA-256 dedup
//     against the base) with tensor-aware chunking and with plain FastCDC over the whole file.
//   tune OUT FILE PERCENT    writes FILE with the same PERCENT % perturbation to OUT, for the
//     script's end-to-end `strata ingest` of a base layer and a fine-tuned layer.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "core/store/byte_group_codec.h"
#include "strata/models.h"
#include "strata/strata.h"

namespace {

using Bytes = std::vector<std::uint8_t>;

struct FloatTensor {
  std::string name;
  std::vector<std::uint64_t> shape;
  std::vector<float> values;          // FP32 sources
  std::vector<std::uint16_t> halves;  // native FP16 sources
};

Bytes read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

// --- ONNX (protobuf) ------------------------------------------------------------------------

struct ProtoField {
  std::uint32_t number = 0;
  std::uint32_t wire = 0;
  std::uint64_t value = 0;             // varint / fixed
  const std::uint8_t* data = nullptr;  // length-delimited payload
  std::size_t size = 0;
};

class ProtoReader {
 public:
  ProtoReader(const std::uint8_t* begin, std::size_t size) : at_(begin), end_(begin + size) {}
  bool next(ProtoField& field) {
    if (at_ >= end_) return false;
    std::uint64_t key = 0;
    if (!varint(key)) return false;
    field.number = static_cast<std::uint32_t>(key >> 3U);
    field.wire = static_cast<std::uint32_t>(key & 7U);
    switch (field.wire) {
      case 0: return varint(field.value);
      case 1: return fixed(field.value, 8);
      case 5: return fixed(field.value, 4);
      case 2: {
        std::uint64_t length = 0;
        if (!varint(length) || length > static_cast<std::uint64_t>(end_ - at_)) return false;
        field.data = at_;
        field.size = static_cast<std::size_t>(length);
        at_ += length;
        return true;
      }
      default: return false;
    }
  }
  bool varint(std::uint64_t& value) {
    value = 0;
    for (unsigned shift = 0; shift < 64 && at_ < end_; shift += 7) {
      const std::uint8_t byte = *at_++;
      value |= std::uint64_t{byte & 0x7FU} << shift;
      if ((byte & 0x80U) == 0) return true;
    }
    return false;
  }

 private:
  bool fixed(std::uint64_t& value, unsigned bytes) {
    if (static_cast<std::size_t>(end_ - at_) < bytes) return false;
    value = 0;
    for (unsigned i = 0; i < bytes; ++i) value |= std::uint64_t{at_[i]} << (8U * i);
    at_ += bytes;
    return true;
  }
  const std::uint8_t* at_;
  const std::uint8_t* end_;
};

void walk_graph(const std::uint8_t* data, std::size_t size, std::vector<FloatTensor>& out);

void read_tensor(const std::uint8_t* data, std::size_t size, std::vector<FloatTensor>& out) {
  ProtoReader reader(data, size);
  ProtoField field;
  FloatTensor tensor;
  std::uint64_t type = 0;
  const std::uint8_t* raw = nullptr;
  std::size_t raw_size = 0;
  std::vector<float> typed;
  while (reader.next(field)) {
    if (field.number == 1 && field.wire == 0) tensor.shape.push_back(field.value);
    if (field.number == 1 && field.wire == 2) {
      ProtoReader dims(field.data, field.size);
      std::uint64_t dim = 0;
      while (dims.varint(dim)) tensor.shape.push_back(dim);
    }
    if (field.number == 2 && field.wire == 0) type = field.value;
    if (field.number == 4 && field.wire == 2) {
      for (std::size_t i = 0; i + 4 <= field.size; i += 4) {
        float value = 0;
        std::memcpy(&value, field.data + i, 4);
        typed.push_back(value);
      }
    }
    if (field.number == 4 && field.wire == 5) {
      const auto bits = static_cast<std::uint32_t>(field.value);
      float value = 0;
      std::memcpy(&value, &bits, 4);
      typed.push_back(value);
    }
    if (field.number == 8 && field.wire == 2) {
      tensor.name.assign(reinterpret_cast<const char*>(field.data), field.size);
    }
    if (field.number == 9 && field.wire == 2) {
      raw = field.data;
      raw_size = field.size;
    }
  }
  if (type != 1) return;  // TensorProto.FLOAT only
  std::uint64_t elements = 1;
  for (const std::uint64_t dim : tensor.shape) elements *= dim;
  if (raw != nullptr) {
    if (raw_size != elements * 4) return;
    tensor.values.resize(elements);
    std::memcpy(tensor.values.data(), raw, raw_size);
  } else {
    if (typed.size() != elements) return;
    tensor.values = std::move(typed);
  }
  if (!tensor.values.empty()) out.push_back(std::move(tensor));
}

void walk_attribute(const std::uint8_t* data, std::size_t size, std::vector<FloatTensor>& out) {
  ProtoReader reader(data, size);
  ProtoField field;
  while (reader.next(field)) {
    if (field.wire != 2) continue;
    if (field.number == 5 || field.number == 10) read_tensor(field.data, field.size, out);
    if (field.number == 6 || field.number == 11) walk_graph(field.data, field.size, out);
  }
}

void walk_graph(const std::uint8_t* data, std::size_t size, std::vector<FloatTensor>& out) {
  ProtoReader reader(data, size);
  ProtoField field;
  while (reader.next(field)) {
    if (field.wire != 2) continue;
    if (field.number == 5) read_tensor(field.data, field.size, out);
    if (field.number == 1) {
      ProtoReader node(field.data, field.size);
      ProtoField node_field;
      while (node.next(node_field)) {
        if (node_field.number == 5 && node_field.wire == 2) {
          walk_attribute(node_field.data, node_field.size, out);
        }
      }
    }
  }
}

std::vector<FloatTensor> extract_onnx(const Bytes& file) {
  std::vector<FloatTensor> tensors;
  ProtoReader reader(file.data(), file.size());
  ProtoField field;
  while (reader.next(field)) {
    if (field.number == 7 && field.wire == 2) walk_graph(field.data, field.size, tensors);
  }
  return tensors;
}

// --- TFLite (FlatBuffers) -------------------------------------------------------------------

class FlatBuffer {
 public:
  explicit FlatBuffer(const Bytes& bytes) : bytes_(bytes) {}
  bool u32(std::size_t at, std::uint32_t& value) const {
    if (at + 4 > bytes_.size()) return false;
    value = bytes_[at] | (std::uint32_t{bytes_[at + 1]} << 8U) |
            (std::uint32_t{bytes_[at + 2]} << 16U) | (std::uint32_t{bytes_[at + 3]} << 24U);
    return true;
  }
  // Position of field `index` of the table at `table`, or 0 when absent.
  std::size_t field(std::size_t table, unsigned index) const {
    std::uint32_t back = 0;
    if (!u32(table, back)) return 0;
    const std::int64_t vtable = static_cast<std::int64_t>(table) - static_cast<std::int32_t>(back);
    if (vtable < 0 || static_cast<std::size_t>(vtable) + 4 > bytes_.size()) return 0;
    const std::size_t v = static_cast<std::size_t>(vtable);
    const std::size_t vsize = bytes_[v] | (std::size_t{bytes_[v + 1]} << 8U);
    const std::size_t slot = 4 + 2 * index;
    if (slot + 2 > vsize || v + slot + 2 > bytes_.size()) return 0;
    const std::size_t offset = bytes_[v + slot] | (std::size_t{bytes_[v + slot + 1]} << 8U);
    return offset == 0 ? 0 : table + offset;
  }
  // Follows the uoffset stored at `at`.
  std::size_t deref(std::size_t at) const {
    std::uint32_t offset = 0;
    return at != 0 && u32(at, offset) && at + offset < bytes_.size() ? at + offset : 0;
  }
  const Bytes& bytes() const { return bytes_; }

 private:
  const Bytes& bytes_;
};

std::vector<FloatTensor> extract_tflite(const Bytes& file) {
  std::vector<FloatTensor> tensors;
  const FlatBuffer fb(file);
  std::uint32_t root = 0;  // the root table's uoffset sits at byte 0
  if (!fb.u32(0, root) || root >= file.size()) return tensors;
  const std::size_t model = root;
  const std::size_t subgraphs = fb.deref(fb.field(model, 2));
  const std::size_t buffers = fb.deref(fb.field(model, 4));
  std::uint32_t subgraph_count = 0;
  std::uint32_t buffer_count = 0;
  if (subgraphs == 0 || buffers == 0 || !fb.u32(subgraphs, subgraph_count) ||
      !fb.u32(buffers, buffer_count)) {
    return tensors;
  }
  std::set<std::uint32_t> used;
  for (std::uint32_t s = 0; s < subgraph_count; ++s) {
    const std::size_t subgraph = fb.deref(subgraphs + 4 + 4 * s);
    const std::size_t list = fb.deref(fb.field(subgraph, 0));
    std::uint32_t count = 0;
    if (list == 0 || !fb.u32(list, count)) continue;
    for (std::uint32_t t = 0; t < count; ++t) {
      const std::size_t tensor = fb.deref(list + 4 + 4 * t);
      const std::size_t type_at = fb.field(tensor, 1);
      if (type_at == 0 || file[type_at] != 1) continue;  // TensorType FLOAT16
      std::uint32_t buffer_index = 0;
      const std::size_t buffer_at = fb.field(tensor, 2);
      if (buffer_at == 0 || !fb.u32(buffer_at, buffer_index) || buffer_index >= buffer_count ||
          !used.insert(buffer_index).second) {
        continue;
      }
      const std::size_t buffer = fb.deref(buffers + 4 + 4 * buffer_index);
      const std::size_t data = fb.deref(fb.field(buffer, 0));
      std::uint32_t data_bytes = 0;
      if (data == 0 || !fb.u32(data, data_bytes) || data_bytes < 2 ||
          data + 4 + data_bytes > file.size()) {
        continue;
      }
      FloatTensor out;
      const std::size_t shape = fb.deref(fb.field(tensor, 0));
      std::uint32_t dims = 0;
      std::uint64_t elements = 1;
      if (shape != 0 && fb.u32(shape, dims)) {
        for (std::uint32_t d = 0; d < dims; ++d) {
          std::uint32_t dim = 0;
          if (fb.u32(shape + 4 + 4 * d, dim)) out.shape.push_back(dim);
          elements *= dim;
        }
      }
      if (elements * 2 != data_bytes) continue;
      const std::size_t name = fb.deref(fb.field(tensor, 3));
      std::uint32_t name_length = 0;
      if (name != 0 && fb.u32(name, name_length) && name + 4 + name_length <= file.size()) {
        out.name.assign(reinterpret_cast<const char*>(file.data() + name + 4), name_length);
      }
      out.halves.resize(elements);
      std::memcpy(out.halves.data(), file.data() + data + 4, data_bytes);
      tensors.push_back(std::move(out));
    }
  }
  return tensors;
}

// --- conversions and the safetensors writer --------------------------------------------------

std::uint32_t float_bits(float value) {
  std::uint32_t bits = 0;
  std::memcpy(&bits, &value, 4);
  return bits;
}

std::uint16_t to_bf16(float value) {
  const std::uint32_t bits = float_bits(value);
  if ((bits & 0x7FFFFFFFU) > 0x7F800000U) return static_cast<std::uint16_t>((bits >> 16U) | 0x40U);
  return static_cast<std::uint16_t>((bits + 0x7FFFU + ((bits >> 16U) & 1U)) >> 16U);
}

std::uint16_t to_f16(float value) {
  const std::uint32_t bits = float_bits(value);
  const std::uint32_t sign = (bits >> 16U) & 0x8000U;
  const std::int32_t exponent = static_cast<std::int32_t>((bits >> 23U) & 0xFFU) - 127 + 15;
  std::uint32_t mantissa = bits & 0x7FFFFFU;
  if (((bits >> 23U) & 0xFFU) == 0xFFU) {
    return static_cast<std::uint16_t>(sign | 0x7C00U | (mantissa != 0 ? 0x200U : 0U));
  }
  if (exponent >= 31) return static_cast<std::uint16_t>(sign | 0x7C00U);
  if (exponent <= 0) {
    if (exponent < -10) return static_cast<std::uint16_t>(sign);
    mantissa |= 0x800000U;
    const auto shift = static_cast<std::uint32_t>(14 - exponent);
    std::uint32_t half = mantissa >> shift;
    const std::uint32_t rest = mantissa & ((1U << shift) - 1U);
    const std::uint32_t halfway = 1U << (shift - 1U);
    if (rest > halfway || (rest == halfway && (half & 1U) != 0)) ++half;
    return static_cast<std::uint16_t>(sign | half);
  }
  std::uint32_t half = (static_cast<std::uint32_t>(exponent) << 10U) | (mantissa >> 13U);
  const std::uint32_t rest = mantissa & 0x1FFFU;
  if (rest > 0x1000U || (rest == 0x1000U && (half & 1U) != 0)) ++half;  // may carry into exponent
  return static_cast<std::uint16_t>(sign | half);
}

struct NamedBlob {
  std::string name;
  std::vector<std::uint64_t> shape;
  Bytes bytes;
};

// safetensors as the reference writer lays it out (specs/models.md §3): tensors sorted by name
// (one dtype per file), header padded with spaces to a multiple of 8.
Bytes write_safetensors(std::vector<NamedBlob> blobs, const std::string& dtype) {
  std::sort(blobs.begin(), blobs.end(),
            [](const NamedBlob& a, const NamedBlob& b) { return a.name < b.name; });
  nlohmann::ordered_json header;
  header["__metadata__"] = {{"format", "pt"}, {"source", "strata bench (derived)"}};
  std::uint64_t offset = 0;
  for (const NamedBlob& blob : blobs) {
    header[blob.name] = {{"dtype", dtype},
                         {"shape", blob.shape},
                         {"data_offsets", {offset, offset + blob.bytes.size()}}};
    offset += blob.bytes.size();
  }
  std::string text = header.dump();
  while (text.size() % 8 != 0) text.push_back(' ');
  Bytes file;
  for (unsigned i = 0; i < 8; ++i) {
    file.push_back(static_cast<std::uint8_t>(std::uint64_t{text.size()} >> (8U * i)));
  }
  file.insert(file.end(), text.begin(), text.end());
  for (const NamedBlob& blob : blobs) file.insert(file.end(), blob.bytes.begin(), blob.bytes.end());
  return file;
}

void write_file(const std::string& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

template <typename Convert>
std::vector<NamedBlob> convert_tensors(const std::vector<FloatTensor>& tensors, std::size_t width,
                                       Convert convert) {
  std::vector<NamedBlob> blobs;
  std::set<std::string> names;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const FloatTensor& tensor = tensors[i];
    NamedBlob blob;
    blob.name = tensor.name.empty() ? "const_" + std::to_string(i) : tensor.name;
    while (!names.insert(blob.name).second) blob.name += "_dup";
    blob.shape = tensor.shape;
    const std::size_t count = tensor.values.empty() ? tensor.halves.size() : tensor.values.size();
    blob.bytes.resize(count * width);
    for (std::size_t e = 0; e < count; ++e) convert(tensor, e, blob.bytes.data() + e * width);
    blobs.push_back(std::move(blob));
  }
  return blobs;
}

// Tesseract .traineddata (specs/models.md §3): i32 entry count, i64 offsets (-1 = absent), then
// the components back to back. Each component becomes one I8 tensor: the integerized LSTM and the
// dictionaries are the integer control group that must stay plain zstd.
std::vector<NamedBlob> extract_traineddata(const Bytes& file) {
  std::vector<NamedBlob> blobs;
  if (file.size() < 4) return blobs;
  std::uint32_t count = 0;
  std::memcpy(&count, file.data(), 4);
  if (count > 64 || file.size() < 4 + 8 * std::size_t{count}) return blobs;
  std::vector<std::pair<std::uint64_t, std::uint32_t>> starts;
  for (std::uint32_t i = 0; i < count; ++i) {
    std::int64_t offset = 0;
    std::memcpy(&offset, file.data() + 4 + 8 * i, 8);
    if (offset >= 0 && static_cast<std::uint64_t>(offset) < file.size()) {
      starts.emplace_back(static_cast<std::uint64_t>(offset), i);
    }
  }
  std::sort(starts.begin(), starts.end());
  for (std::size_t k = 0; k < starts.size(); ++k) {
    const std::uint64_t end = k + 1 < starts.size() ? starts[k + 1].first : file.size();
    NamedBlob blob;
    blob.name = "component_" + std::to_string(starts[k].second);
    blob.bytes.assign(file.begin() + static_cast<std::ptrdiff_t>(starts[k].first),
                      file.begin() + static_cast<std::ptrdiff_t>(end));
    blob.shape = {blob.bytes.size()};
    if (!blob.bytes.empty()) blobs.push_back(std::move(blob));
  }
  return blobs;
}

int command_convert(const std::string& out_dir, const std::vector<std::string>& inputs) {
  for (const std::string& input : inputs) {
    const Bytes file = read_all(input);
    const std::string stem = std::filesystem::path(input).stem().string();
    if (input.ends_with(".traineddata")) {
      auto blobs = extract_traineddata(file);
      std::printf("%s: %zu components as I8 tensors\n", input.c_str(), blobs.size());
      if (!blobs.empty()) {
        write_file(out_dir + "/" + stem + ".i8.safetensors", write_safetensors(blobs, "I8"));
      }
      continue;
    }
    const bool onnx = input.ends_with(".onnx");
    const auto tensors = onnx ? extract_onnx(file) : extract_tflite(file);
    std::uint64_t elements = 0;
    for (const FloatTensor& t : tensors) elements += t.values.size() + t.halves.size();
    std::printf("%s: %zu %s tensors, %llu elements\n", input.c_str(), tensors.size(),
                onnx ? "FLOAT" : "FLOAT16", static_cast<unsigned long long>(elements));
    if (tensors.empty()) continue;
    if (onnx) {
      write_file(out_dir + "/" + stem + ".f32.safetensors",
                 write_safetensors(
                     convert_tensors(tensors, 4,
                                     [](const FloatTensor& t, std::size_t e, std::uint8_t* out) {
                                       std::memcpy(out, &t.values[e], 4);
                                     }),
                     "F32"));
      write_file(out_dir + "/" + stem + ".bf16.safetensors",
                 write_safetensors(
                     convert_tensors(tensors, 2,
                                     [](const FloatTensor& t, std::size_t e, std::uint8_t* out) {
                                       const std::uint16_t h = to_bf16(t.values[e]);
                                       std::memcpy(out, &h, 2);
                                     }),
                     "BF16"));
      write_file(out_dir + "/" + stem + ".f16.safetensors",
                 write_safetensors(
                     convert_tensors(tensors, 2,
                                     [](const FloatTensor& t, std::size_t e, std::uint8_t* out) {
                                       const std::uint16_t h = to_f16(t.values[e]);
                                       std::memcpy(out, &h, 2);
                                     }),
                     "F16"));
    } else {
      write_file(out_dir + "/" + stem + ".f16native.safetensors",
                 write_safetensors(
                     convert_tensors(tensors, 2,
                                     [](const FloatTensor& t, std::size_t e, std::uint8_t* out) {
                                       std::memcpy(out, &t.halves[e], 2);
                                     }),
                     "F16"));
    }
  }
  return 0;
}

// --- measure ---------------------------------------------------------------------------------

struct LoadedModel {
  Bytes file;
  strata::ModelLayout layout;
  std::vector<strata::TensorChunk> chunks;
};

bool load_model(const std::string& path, LoadedModel& model) {
  model.file = read_all(path);
  auto layout = strata::parse_model_layout(strata::ByteSpan(model.file), model.file.size());
  if (!layout.ok()) {
    std::fprintf(stderr, "%s: %s\n", path.c_str(), layout.error().to_string().c_str());
    return false;
  }
  model.layout = std::move(layout).value();
  auto chunks = strata::chunk_model_file(strata::ByteSpan(model.file), model.layout, {});
  if (!chunks.ok()) return false;
  model.chunks = std::move(chunks).value();
  return true;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

int command_measure(const std::vector<std::string>& inputs) {
  std::printf("%-42s %5s %6s | %6s %7s | %7s %5s %8s %5s | %7s %7s %7s | %7s %7s\n", "file",
              "dtype", "MB", "zstd-3", "zstd-19", "strata3", "bg%", "strata19", "bg%", "enc",
              "fast", "dec", "z3 enc", "z3 dec");
  std::printf("%-42s %5s %6s | %14s | %29s | %23s | %15s\n", "", "", "", "ratio, per chunk",
              "ratio, per-chunk codec choice", "strata MB/s (level 3)", "zstd -3 MB/s");
  for (const std::string& path : inputs) {
    LoadedModel model;
    if (!load_model(path, model)) return 1;
    std::uint64_t plain3 = 0, plain19 = 0, chosen3 = 0, chosen19 = 0;
    std::uint64_t grouped3 = 0, grouped19 = 0, fast3 = 0;
    double fast_seconds = 0;
    double choose_seconds = 0, decode_seconds = 0, plain_seconds = 0, plain_decode_seconds = 0;
    for (const strata::TensorChunk& chunk : model.chunks) {
      const strata::ByteSpan raw(model.file.data() + chunk.chunk.offset, chunk.chunk.length);
      auto start = std::chrono::steady_clock::now();
      auto z3 = strata::compress_plain(raw, 3);
      plain_seconds += seconds_since(start);
      start = std::chrono::steady_clock::now();
      auto z3_back = strata::decompress_plain(strata::ByteSpan(*z3));
      plain_decode_seconds += seconds_since(start);
      plain3 += z3->size();
      plain19 += strata::compress_plain(raw, 19)->size();
      start = std::chrono::steady_clock::now();
      auto c3 = strata::choose_codec(raw, chunk.element_width, chunk.element_phase, {3});
      choose_seconds += seconds_since(start);
      start = std::chrono::steady_clock::now();
      auto back = strata::decode_chunk(c3->codec, strata::ByteSpan(c3->bytes), raw.size());
      decode_seconds += seconds_since(start);
      if (!back.ok() || !std::equal(raw.begin(), raw.end(), back->begin())) {
        std::fprintf(stderr, "round trip failed at %llu\n",
                     static_cast<unsigned long long>(chunk.chunk.offset));
        return 1;
      }
      chosen3 += c3->bytes.size();
      start = std::chrono::steady_clock::now();
      auto fast = strata::choose_codec(
          raw, chunk.element_width, chunk.element_phase,
          {3, strata::PlaneLayout::kSeparatePlanes, strata::CodecChoice::kGroupingFirst});
      fast_seconds += seconds_since(start);
      fast3 += fast->bytes.size();
      if (c3->codec == strata::ChunkCodec::kByteGroupZstd) grouped3 += raw.size();
      auto c19 = strata::choose_codec(raw, chunk.element_width, chunk.element_phase, {19});
      chosen19 += c19->bytes.size();
      if (c19->codec == strata::ChunkCodec::kByteGroupZstd) grouped19 += raw.size();
    }
    const double size = static_cast<double>(model.file.size());
    const std::string dtype =
        model.layout.tensors.empty() ? "-" : model.layout.tensors.front().dtype_name;
    std::printf(
        "%-42s %5s %6.2f | %6.3f %7.3f | %7.3f %5.1f %8.3f %5.1f | %7.0f %7.0f %7.0f | %7.0f "
        "%7.0f\n",
        std::filesystem::path(path).filename().string().c_str(), dtype.c_str(), size / 1e6,
        size / static_cast<double>(plain3), size / static_cast<double>(plain19),
        size / static_cast<double>(chosen3), 100.0 * static_cast<double>(grouped3) / size,
        size / static_cast<double>(chosen19), 100.0 * static_cast<double>(grouped19) / size,
        size / 1e6 / choose_seconds, size / 1e6 / fast_seconds, size / 1e6 / decode_seconds,
        size / 1e6 / plain_seconds, size / 1e6 / plain_decode_seconds);
    if (fast3 != chosen3) {
      std::printf("%-42s kGroupingFirst stored %+lld bytes vs kSmaller\n", "",
                  static_cast<long long>(fast3) - static_cast<long long>(chosen3));
    }
  }
  return 0;
}

// --- fine-tune -------------------------------------------------------------------------------

std::uint64_t mix(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30U)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27U)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31U);
}

std::set<strata::Digest> digests_of(const Bytes& file, const std::vector<strata::Chunk>& chunks) {
  std::set<strata::Digest> digests;
  for (const strata::Chunk& chunk : chunks) {
    digests.insert(strata::sha256_of(strata::ByteSpan(file.data() + chunk.offset, chunk.length)));
  }
  return digests;
}

// Tensors in a fixed pseudo-random order; the first `percent` % of them get the mantissa LSB of
// every other element flipped. Returns the bytes of the changed tensors.
std::uint64_t perturb_tensors(const strata::ModelLayout& layout, double percent, Bytes& file) {
  std::vector<std::size_t> order(layout.tensors.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [](std::size_t a, std::size_t b) { return mix(a) < mix(b); });
  const std::size_t changed = std::max<std::size_t>(
      1, static_cast<std::size_t>(percent / 100.0 * static_cast<double>(order.size()) + 0.5));
  std::uint64_t changed_bytes = 0;
  for (std::size_t k = 0; k < changed && k < order.size(); ++k) {
    const strata::TensorInfo& tensor = layout.tensors[order[k]];
    const std::uint32_t width = std::max<std::uint32_t>(1, strata::byte_group_width(tensor.dtype));
    for (std::uint64_t at = tensor.begin; at < tensor.end; at += 2ULL * width) file[at] ^= 1U;
    changed_bytes += tensor.end - tensor.begin;
  }
  return changed_bytes;
}

int command_tune(const std::string& out, const std::string& path, const std::string& percent) {
  LoadedModel base;
  if (!load_model(path, base)) return 1;
  const std::uint64_t changed = perturb_tensors(base.layout, std::stod(percent), base.file);
  std::printf("%s: %s%% of %zu tensors changed, %llu of %zu bytes\n", path.c_str(), percent.c_str(),
              base.layout.tensors.size(), static_cast<unsigned long long>(changed),
              base.file.size());
  write_file(out, base.file);
  return 0;
}

int command_finetune(const std::string& path, const std::vector<std::string>& percents) {
  LoadedModel base;
  if (!load_model(path, base)) return 1;
  std::vector<strata::Chunk> base_chunks;
  for (const strata::TensorChunk& chunk : base.chunks) base_chunks.push_back(chunk.chunk);
  const auto base_tensor_digests = digests_of(base.file, base_chunks);
  auto base_plain = strata::chunk_buffer(strata::ByteSpan(base.file), {});
  const auto base_plain_digests = digests_of(base.file, *base_plain);
  std::printf("%s: %zu tensors, %.2f MB, %zu chunks\n", path.c_str(), base.layout.tensors.size(),
              static_cast<double>(base.file.size()) / 1e6, base.chunks.size());
  std::printf("%9s %9s %11s | %14s %14s | %14s %14s\n", "tensors%", "changed", "bytes%",
              "new B (tensor)", "stored B", "new B (plain)", "stored B");
  for (const std::string& percent_text : percents) {
    const double percent = std::stod(percent_text);
    const std::size_t changed = std::max<std::size_t>(
        1, static_cast<std::size_t>(
               percent / 100.0 * static_cast<double>(base.layout.tensors.size()) + 0.5));
    Bytes tuned = base.file;
    const std::uint64_t changed_bytes = perturb_tensors(base.layout, percent, tuned);
    auto tuned_chunks = strata::chunk_model_file(strata::ByteSpan(tuned), base.layout, {});
    std::uint64_t new_bytes = 0, new_stored = 0;
    for (const strata::TensorChunk& chunk : *tuned_chunks) {
      const strata::ByteSpan raw(tuned.data() + chunk.chunk.offset, chunk.chunk.length);
      if (base_tensor_digests.count(strata::sha256_of(raw)) != 0) continue;
      new_bytes += raw.size();
      new_stored +=
          strata::choose_codec(raw, chunk.element_width, chunk.element_phase, {3})->bytes.size();
    }
    auto plain_chunks = strata::chunk_buffer(strata::ByteSpan(tuned), {});
    std::uint64_t plain_new = 0, plain_stored = 0;
    for (const strata::Chunk& chunk : *plain_chunks) {
      const strata::ByteSpan raw(tuned.data() + chunk.offset, chunk.length);
      if (base_plain_digests.count(strata::sha256_of(raw)) != 0) continue;
      plain_new += raw.size();
      plain_stored += strata::compress_plain(raw, 3)->size();
    }
    std::printf(
        "%8.1f%% %9zu %10.2f%% | %14llu %14llu | %14llu %14llu\n", percent, changed,
        100.0 * static_cast<double>(changed_bytes) / static_cast<double>(tuned.size()),
        static_cast<unsigned long long>(new_bytes), static_cast<unsigned long long>(new_stored),
        static_cast<unsigned long long>(plain_new), static_cast<unsigned long long>(plain_stored));
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  if (args.size() >= 2 && args[0] == "convert") {
    return command_convert(args[1], std::vector<std::string>(args.begin() + 2, args.end()));
  }
  if (args.size() >= 2 && args[0] == "measure") {
    return command_measure(std::vector<std::string>(args.begin() + 1, args.end()));
  }
  if (args.size() >= 3 && args[0] == "finetune") {
    return command_finetune(args[1], std::vector<std::string>(args.begin() + 2, args.end()));
  }
  if (args.size() == 4 && args[0] == "tune") return command_tune(args[1], args[2], args[3]);
  std::fprintf(stderr,
               "usage: model_weights convert OUT_DIR FILE.onnx|FILE.tflite...\n"
               "       model_weights measure FILE.safetensors...\n"
               "       model_weights finetune FILE.safetensors PERCENT...\n"
               "       model_weights tune OUT.safetensors FILE.safetensors PERCENT\n");
  return 2;
}
