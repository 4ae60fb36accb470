// Driver for bench/delta_model.sh (issue 16, "a full fine-tune pair and a partial one"): writes a
// synthetic BF16 safetensors model whose tensors are normal with varied standard deviations (the
// shape of real transformer weights: shared/specs/models.md §4.4 has no real BF16 weights on this
// machine), fine-tunes of it, and computes the floor the store's model deltas are held to: every
// tensor XOR'd with the base tensor of the same name, byte-grouped, zstd -19.
//   delta_model synth OUT SEED MIB                 a base model of about MIB MiB
//   delta_model finetune BASE OUT SEED full        every tensor W + N(0, 0.02 std(W)), to BF16
//   delta_model finetune BASE OUT SEED partial:N   the same for N tensors (the rest unchanged)
//   delta_model floor BASE NEW                     JSON: the floor and its parts
#include <zstd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "strata/model_formats.h"

namespace {

using Bytes = std::vector<std::uint8_t>;

Bytes read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_file(const std::string& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

std::uint16_t to_bf16(float value) {  // round to nearest even, as torch does
  std::uint32_t bits = 0;
  std::memcpy(&bits, &value, 4);
  bits += 0x7FFFU + ((bits >> 16U) & 1U);
  return static_cast<std::uint16_t>(bits >> 16U);
}

float from_bf16(std::uint16_t half) {
  const std::uint32_t bits = std::uint32_t{half} << 16U;
  float value = 0;
  std::memcpy(&value, &bits, 4);
  return value;
}

struct Tensor {
  std::string name;
  std::vector<std::uint64_t> shape;
  std::vector<std::uint16_t> values;
};

Bytes write_safetensors(const std::vector<Tensor>& tensors) {
  nlohmann::ordered_json header;
  header["__metadata__"] = {{"format", "pt"}};
  std::uint64_t offset = 0;
  std::vector<const Tensor*> sorted;
  for (const Tensor& tensor : tensors) sorted.push_back(&tensor);
  std::sort(sorted.begin(), sorted.end(),
            [](const Tensor* a, const Tensor* b) { return a->name < b->name; });
  for (const Tensor* tensor : sorted) {
    const std::uint64_t bytes = tensor->values.size() * 2;
    header[tensor->name] = {
        {"dtype", "BF16"}, {"shape", tensor->shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  while (text.size() % 8 != 0) text += ' ';
  Bytes file;
  for (unsigned i = 0; i < 8; ++i)
    file.push_back(static_cast<std::uint8_t>(text.size() >> (8U * i)));
  for (const char c : text) file.push_back(static_cast<std::uint8_t>(c));
  for (const Tensor* tensor : sorted) {
    for (const std::uint16_t value : tensor->values) {
      file.push_back(static_cast<std::uint8_t>(value));
      file.push_back(static_cast<std::uint8_t>(value >> 8U));
    }
  }
  return file;
}

std::vector<Tensor> read_safetensors(const Bytes& file) {
  auto layout = strata::parse_safetensors(strata::ByteSpan(file.data(), file.size()), file.size());
  if (!layout.ok()) {
    std::cerr << "not a safetensors file: " << layout.error().message << '\n';
    std::exit(1);
  }
  std::vector<Tensor> tensors;
  for (const strata::TensorInfo& info : layout->tensors) {
    Tensor tensor{info.name, info.shape, {}};
    for (std::uint64_t at = info.begin; at + 1 < info.end; at += 2) {
      tensor.values.push_back(static_cast<std::uint16_t>(file[at] | (file[at + 1] << 8U)));
    }
    tensors.push_back(std::move(tensor));
  }
  return tensors;
}

// A small decoder-only transformer in BF16: embedding, `layers` blocks of attention and MLP
// matrices with per-tensor standard deviations spread over 0.5-2x of 0.02, norms near 1.
std::vector<Tensor> synthesize(std::uint64_t seed, std::uint64_t mib) {
  std::mt19937_64 random(seed);
  const std::uint64_t hidden = 1024;
  const std::uint64_t mlp = 2816;
  const std::uint64_t vocab = 8192;
  const std::uint64_t per_layer = 2 * (4 * hidden * hidden + 3 * hidden * mlp + 2 * hidden);
  const std::uint64_t fixed = 2 * (vocab * hidden + hidden);
  const std::uint64_t target = mib << 20U;
  const std::uint64_t layers =
      std::max<std::uint64_t>(1, (target - std::min(target, fixed)) / per_layer);
  std::vector<Tensor> tensors;
  std::uniform_real_distribution<double> spread(0.5, 2.0);
  const auto add = [&](std::string name, std::vector<std::uint64_t> shape, double mean,
                       double std) {
    std::uint64_t count = 1;
    for (const std::uint64_t dim : shape) count *= dim;
    std::normal_distribution<float> normal(static_cast<float>(mean), static_cast<float>(std));
    Tensor tensor{std::move(name), std::move(shape), std::vector<std::uint16_t>(count)};
    for (std::uint16_t& value : tensor.values) value = to_bf16(normal(random));
    tensors.push_back(std::move(tensor));
  };
  add("model.embed_tokens.weight", {vocab, hidden}, 0, 0.02 * spread(random));
  for (std::uint64_t i = 0; i < layers; ++i) {
    const std::string prefix = "model.layers." + std::to_string(i) + ".";
    for (const char* name :
         {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"}) {
      add(prefix + name + ".weight", {hidden, hidden}, 0, 0.02 * spread(random));
    }
    add(prefix + "mlp.gate_proj.weight", {mlp, hidden}, 0, 0.02 * spread(random));
    add(prefix + "mlp.up_proj.weight", {mlp, hidden}, 0, 0.02 * spread(random));
    add(prefix + "mlp.down_proj.weight", {hidden, mlp}, 0, 0.02 * spread(random));
    add(prefix + "input_layernorm.weight", {hidden}, 1, 0.05);
    add(prefix + "post_attention_layernorm.weight", {hidden}, 1, 0.05);
  }
  add("model.norm.weight", {hidden}, 1, 0.05);
  return tensors;
}

// W + N(0, 0.02 std(W)), rounded to BF16.
void fine_tune(Tensor& tensor, std::mt19937_64& random) {
  double sum = 0;
  double squares = 0;
  for (const std::uint16_t value : tensor.values) {
    const double x = from_bf16(value);
    sum += x;
    squares += x * x;
  }
  const double n = static_cast<double>(tensor.values.size());
  const double std = std::sqrt(std::max(0.0, squares / n - (sum / n) * (sum / n)));
  std::normal_distribution<float> noise(0.0F, static_cast<float>(0.02 * std));
  for (std::uint16_t& value : tensor.values) value = to_bf16(from_bf16(value) + noise(random));
}

std::size_t zstd19(const Bytes& bytes) {
  Bytes out(ZSTD_compressBound(bytes.size()));
  const std::size_t written = ZSTD_compress(out.data(), out.size(), bytes.data(), bytes.size(), 19);
  if (ZSTD_isError(written)) {
    std::cerr << "zstd: " << ZSTD_getErrorName(written) << '\n';
    std::exit(1);
  }
  return written;
}

// One tensor's floor: XOR with the base values (none: zeros), two byte planes, zstd -19; the
// smaller of one frame over both planes and one frame per plane.
std::size_t tensor_floor(const Tensor& tensor, const Tensor* base) {
  const std::size_t n = tensor.values.size();
  Bytes low(n);
  Bytes high(n);
  for (std::size_t i = 0; i < n; ++i) {
    std::uint16_t value = tensor.values[i];
    if (base != nullptr && i < base->values.size()) value ^= base->values[i];
    low[i] = static_cast<std::uint8_t>(value);
    high[i] = static_cast<std::uint8_t>(value >> 8U);
  }
  const std::size_t separate = zstd19(low) + zstd19(high);
  Bytes both = low;
  both.insert(both.end(), high.begin(), high.end());
  return std::min(separate, zstd19(both));
}

int floor_command(const std::string& base_path, const std::string& new_path) {
  const Bytes base_file = read_file(base_path);
  const Bytes new_file = read_file(new_path);
  const std::vector<Tensor> base = read_safetensors(base_file);
  const std::vector<Tensor> tuned = read_safetensors(new_file);
  std::map<std::string, const Tensor*> by_name;
  for (const Tensor& tensor : base) by_name[tensor.name] = &tensor;
  std::uint64_t values = 0;
  std::uint64_t changed = 0;
  std::uint64_t changed_tensors = 0;
  for (const Tensor& tensor : tuned) {
    const auto found = by_name.find(tensor.name);
    const Tensor* match = found == by_name.end() ? nullptr : found->second;
    bool any = match == nullptr;
    for (std::size_t i = 0; i < tensor.values.size(); ++i) {
      const bool differs =
          match == nullptr || i >= match->values.size() || match->values[i] != tensor.values[i];
      changed += differs ? 1 : 0;
      any = any || differs;
    }
    values += tensor.values.size();
    changed_tensors += any ? 1 : 0;
  }
  // Two workers: the machine this runs on has two cores.
  std::size_t next = 0;
  std::mutex mutex;
  std::uint64_t tensor_bytes = 0;
  const auto work = [&] {
    while (true) {
      std::size_t index = 0;
      {
        const std::lock_guard lock(mutex);
        if (next == tuned.size()) return;
        index = next++;
      }
      const auto found = by_name.find(tuned[index].name);
      const std::size_t size =
          tensor_floor(tuned[index], found == by_name.end() ? nullptr : found->second);
      const std::lock_guard lock(mutex);
      tensor_bytes += size;
    }
  };
  std::thread other(work);
  work();
  other.join();
  // The header: zstd -19 of the new file's bytes before the first tensor.
  std::uint64_t header_length = 0;
  for (unsigned i = 0; i < 8; ++i) header_length |= std::uint64_t{new_file[i]} << (8U * i);
  header_length = std::min<std::uint64_t>(header_length + 8, new_file.size());
  const std::size_t header = zstd19(Bytes(new_file.begin(), new_file.begin() + header_length));
  const nlohmann::json report = {
      {"file_bytes", new_file.size()},      {"tensors", tuned.size()},
      {"changed_tensors", changed_tensors}, {"values", values},
      {"changed_values", changed},          {"floor_tensor_bytes", tensor_bytes},
      {"floor_header_bytes", header},       {"floor_bytes", tensor_bytes + header}};
  std::cout << report.dump() << '\n';
  return 0;
}

int usage() {
  std::cerr << "usage: delta_model synth OUT SEED MIB | finetune BASE OUT SEED full|partial:N | "
               "floor BASE NEW\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  if (args.size() == 4 && args[0] == "synth") {
    write_file(args[1], write_safetensors(synthesize(std::stoull(args[2]), std::stoull(args[3]))));
    return 0;
  }
  if (args.size() == 5 && args[0] == "finetune") {
    std::vector<Tensor> tensors = read_safetensors(read_file(args[1]));
    std::mt19937_64 random(std::stoull(args[3]));
    std::size_t count = tensors.size();
    if (args[4].rfind("partial:", 0) == 0) {
      count = std::stoull(args[4].substr(8));
    } else if (args[4] != "full") {
      return usage();
    }
    // partial: the largest tensors of the middle layers, as a fine-tune of a few blocks would.
    std::vector<std::size_t> order(tensors.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    if (count < tensors.size()) {
      std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
        return tensors[a].values.size() > tensors[b].values.size();
      });
      std::rotate(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(order.size() / 3),
                  order.end());
    }
    for (std::size_t i = 0; i < std::min(count, order.size()); ++i) {
      fine_tune(tensors[order[i]], random);
    }
    write_file(args[2], write_safetensors(tensors));
    return 0;
  }
  if (args.size() == 3 && args[0] == "floor") return floor_command(args[1], args[2]);
  return usage();
}
