#include "network.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "packing.h"

namespace aefast {

Network::Network(const std::vector<LayerSpec>& layers, const IsaKernels& isa, std::size_t threads)
    : isa_(isa), pool_(threads) {
  compute_ = layers.empty() ? Compute::f32 : layers.front().compute;
  for (const LayerSpec& spec : layers) {
    PackedLayer layer{spec.weight_type, spec.in, spec.out, {}, {}, {}, {}, spec.activation, 0};
    if (spec.tile >= std::max<std::size_t>(1, tile_count(tile_precision(compute_, spec.weight_type),
                                                          tile_kernel(isa, compute_))))
      throw std::invalid_argument("tile index out of range");
    layer.tile = spec.tile;
    const std::size_t panels = panel_count(spec.out);
    layer.weights = pack_panels(spec.weight, spec.in, spec.out, element_size(spec.weight_type), group_of(compute_));
    if (compute_ == Compute::q8) {
      layer.colsum = column_sums(static_cast<const std::int8_t*>(spec.weight), spec.in, spec.out);
      // Every q8 ELU layer, a call's last too (so a chain equals its layers run in separate calls), computes the
      // cheaper expm1 (dense.h ActivationKind::elu_q8).
      if (layer.activation.kind == ActivationKind::elu) layer.activation.kind = ActivationKind::elu_q8;
    }
    layer.scale.assign(panels * kPanelWidth, 1.0f);
    if (spec.scale) layer.scale = padded(spec.scale, spec.out, 1.0f);
    layer.bias = padded(spec.bias, spec.out, 0.0f);
    max_width_ = std::max({max_width_, spec.in, spec.out});
    layers_.push_back(std::move(layer));
  }
}

std::size_t Network::nbytes() const {
  std::size_t total = 0;
  for (const PackedLayer& l : layers_)
    total += l.weights.size() + (l.scale.size() + l.bias.size()) * sizeof(float) + l.colsum.size() * sizeof(std::int32_t);
  return total;
}

const char* Network::kernel_name() const {
  return compute_ == Compute::q8 ? isa_.q8->name : compute_ == Compute::bf16 ? isa_.bf16->name : isa_.f32->name;
}

std::vector<std::string> Network::tile_names() const {
  std::vector<std::string> names;
  for (const PackedLayer& l : layers_) {
    const char* precision = tile_precision(compute_, l.weight_type);
    names.emplace_back(*precision ? aefast::tile_names(precision, tile_kernel(isa_, compute_))[l.tile] : "");
  }
  return names;
}

std::size_t Network::threads_for(std::size_t rows, std::size_t begin, std::size_t end) const {
  std::size_t work = 0;
  for (std::size_t l = begin; l < end; ++l) work += rows * layers_[l].in * layers_[l].out;
  return work < kMinParallelWork ? 1 : pool_.size();
}

void Network::run_blocks(std::size_t count, std::size_t threads,
                         const std::function<void(std::size_t, std::size_t)>& task) const {
  if (threads == 1) {
    for (std::size_t i = 0; i < count; ++i) task(i, 0);
  } else {
    pool_.run(count, task);
  }
}

std::vector<std::size_t> Network::layer_sizes() const {
  std::vector<std::size_t> sizes{layers_.front().in};
  for (const PackedLayer& l : layers_) sizes.push_back(l.out);
  return sizes;
}

void Network::run_layer(std::size_t layer, const void* a, InputType a_type, std::size_t lda, float* c,
                        std::size_t ldc, std::size_t rows, std::size_t panel_begin, std::size_t panel_end,
                        bool clip, float input_scale) const {
  const PackedLayer& l = layers_[layer];
  const DenseBlock block{a,         lda,    l.weights.data(), l.scale.data(), l.bias.data(), input_scale,
                         l.in,      l.out,  c,                ldc,            0,             rows,
                         panel_begin, panel_end, l.activation, clip};
  if (l.weight_type == WeightType::f16) isa_.f32->f16_tiles->tiles[l.tile].dense[int(a_type)](block);
  else isa_.f32->dense[int(l.weight_type)][int(a_type)](block);
}

void Network::run_rows(const void* x, InputType x_type, float* out, std::size_t rows, std::size_t begin,
                       std::size_t end, bool clip, float input_scale, float* ping, float* pong) const {
  const void* a = x;
  InputType a_type = x_type;
  for (std::size_t l = begin; l < end; ++l) {
    const bool last = l + 1 == end;
    float* c = last ? out : ((l - begin) % 2 ? pong : ping);
    run_layer(l, a, a_type, layers_[l].in, c, layers_[l].out, rows, 0, panel_count(layers_[l].out), clip && last,
              l == begin ? input_scale : 1.0f);
    a = c;
    a_type = InputType::f32;
  }
}

void Network::forward(const void* x, InputType x_type, float* out, std::size_t rows, std::size_t begin,
                      std::size_t end, bool clip, float input_scale) const {
  if (rows == 0) return;
  if (compute_ != Compute::f32) return forward_lowp(x, x_type, out, rows, begin, end, clip, input_scale);
  const std::size_t x_row_bytes = layers_[begin].in * (x_type == InputType::u8 ? 1 : sizeof(float));
  const std::size_t out_width = layers_[end - 1].out;
  const std::size_t threads = threads_for(rows, begin, end);

  if (threads == 1 || rows >= 2 * threads * kMaxRowBlock) {
    // Rows split into blocks; each task runs the whole chain on its block (no barrier between layers).
    const std::size_t block = std::min(kMaxRowBlock, (rows + 24 * threads - 1) / (24 * threads) * 6);
    const std::size_t per_slot = 2 * block * max_width_;
    auto scratch = acquire_scratch(per_slot * threads);
    const std::size_t blocks = (rows + block - 1) / block;
    auto task = [&](std::size_t i, std::size_t slot) {
      const std::size_t r0 = i * block, m = std::min(block, rows - r0);
      float* ping = scratch->slot(slot, per_slot);
      run_rows(static_cast<const std::uint8_t*>(x) + r0 * x_row_bytes, x_type, out + r0 * out_width, m, begin, end,
               clip, input_scale, ping, ping + block * max_width_);
    };
    run_blocks(blocks, threads, task);
    release_scratch(std::move(scratch));
    return;
  }

  // Few rows: every layer's output panels split between threads, all rows at once; layers in sequence.
  auto scratch = acquire_scratch(2 * rows * max_width_);
  float* buffers[2] = {scratch->slot(0, rows * max_width_), scratch->slot(1, rows * max_width_)};
  const void* a = x;
  InputType a_type = x_type;
  for (std::size_t l = begin; l < end; ++l) {
    const bool last = l + 1 == end;
    float* c = last ? out : buffers[(l - begin) % 2];
    const std::size_t panels = panel_count(layers_[l].out), chunks = std::min(panels, threads);
    pool_.run(chunks, [&](std::size_t i, std::size_t) {
      run_layer(l, a, a_type, layers_[l].in, c, layers_[l].out, rows, panels * i / chunks, panels * (i + 1) / chunks,
                clip && last, l == begin ? input_scale : 1.0f);
    });
    a = c;
    a_type = InputType::f32;
  }
  release_scratch(std::move(scratch));
}

std::unique_ptr<Network::Scratch> Network::acquire_scratch(std::size_t floats) const {
  std::unique_ptr<Scratch> scratch;
  {
    std::lock_guard<std::mutex> lock(scratch_mutex_);
    if (!free_scratch_.empty()) {
      scratch = std::move(free_scratch_.back());
      free_scratch_.pop_back();
    }
  }
  if (!scratch) scratch = std::make_unique<Scratch>();
  if (scratch->buffer.size() < floats) scratch->buffer.resize(floats);
  return scratch;
}

void Network::release_scratch(std::unique_ptr<Scratch> scratch) const {
  if (scratch->buffer.size() * sizeof(float) > kKeptScratchBytes) return;  // freed here: a rare, large call
  std::lock_guard<std::mutex> lock(scratch_mutex_);
  if (free_scratch_.empty()) free_scratch_.push_back(std::move(scratch));  // one kept; concurrent extras freed
}

}  // namespace aefast
