// A chain of fused dense layers with weights packed once, run back to back in one call.
// Inputs here are already validated by the binding (shapes, dtypes, ranges, aliasing).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "dispatch.h"
#include "kernels/dense.h"
#include "thread_pool.h"

namespace aefast {

// One layer as given by the caller (row-major weight[in][out]; scale only for int8, else null).
// compute: f32 for f32/f16/i8 weights, q8 for i8 weights, bf16 for bf16 weights; the same for every layer.
struct LayerSpec {
  WeightType weight_type;
  const void* weight;
  const float* scale;
  const float* bias;
  std::size_t in, out;
  Activation activation;
  Compute compute = Compute::f32;
  // q8, bf16, and f32 compute on f16 weights: the index of the register tile in the running kernel family's table
  // (tile_index(tile_precision(...), ...); 0 = its default). The outputs do not depend on it (every tile of a family
  // is bit-identical), only the speed.
  std::size_t tile = 0;
};

class Network {
 public:
  Network(const std::vector<LayerSpec>& layers, const IsaKernels& isa, std::size_t threads);

  // out[rows, width(end)] = layers [begin, end) applied to x[rows, width(begin)].
  // input_scale multiplies the first computed layer's accumulators; clip clamps the last layer's output to [0, 1].
  void forward(const void* x, InputType x_type, float* out, std::size_t rows, std::size_t begin, std::size_t end,
               bool clip, float input_scale) const;

  const char* isa_name() const { return isa_.name; }
  // The kernel that runs this network's layers ("avx512vnni", "avx2", ...).
  const char* kernel_name() const;
  Compute compute() const { return compute_; }
  std::size_t threads() const { return pool_.size(); }
  std::size_t nbytes() const;
  std::size_t layer_count() const { return layers_.size(); }
  std::vector<std::size_t> layer_sizes() const;
  // Per layer, the name of the register tile it runs with (a name of tile_names(precision, kernel) for q8, bf16
  // and f16-weight layers; "" for f32 and int8 weights on the f32 compute, which have no tile choice).
  std::vector<std::string> tile_names() const;

 private:
  struct PackedLayer {
    WeightType weight_type;
    std::size_t in, out;
    std::vector<std::uint8_t> weights;  // panels, see dense.h (q8 and bf16: k-grouped panels)
    std::vector<float> scale, bias;     // padded to the panel width
    std::vector<std::int32_t> colsum;   // q8 only: sum_k W[k, j], padded to the panel width
    Activation activation;
    std::size_t tile = 0;               // LayerSpec::tile
  };
  // Activation buffers of one forward() call (all pool slots), reused between calls: see acquire_scratch.
  struct Scratch {
    std::vector<float> buffer;
    float* slot(std::size_t index, std::size_t floats_per_slot) { return buffer.data() + index * floats_per_slot; }
  };
  struct LowpRows;  // one task's low-precision activations (network_lowp.cpp)

  // Rows per task when rows are split between threads (a multiple of the 6- and 8-row tiles; a block's
  // activations, 96 x 1000 floats, stay in L2 between layers).
  static constexpr std::size_t kMaxRowBlock = 96;
  // Below this many multiply-adds per call, waking workers costs more than it saves.
  static constexpr std::size_t kMinParallelWork = std::size_t(1) << 18;
  // After a call, at most one scratch of at most this many bytes is kept for the next call: memory held between
  // calls stays bounded whatever the number of concurrent callers and the largest batch seen.
  static constexpr std::size_t kKeptScratchBytes = std::size_t(64) << 20;
  std::size_t threads_for(std::size_t rows, std::size_t begin, std::size_t end) const;
  // task(i, slot) for every i in [0, count): on the calling thread (slot 0) when threads == 1, else on the pool.
  void run_blocks(std::size_t count, std::size_t threads,
                  const std::function<void(std::size_t, std::size_t)>& task) const;

  void run_layer(std::size_t layer, const void* a, InputType a_type, std::size_t lda, float* c, std::size_t ldc,
                 std::size_t rows, std::size_t panel_begin, std::size_t panel_end, bool clip, float input_scale) const;
  void run_rows(const void* x, InputType x_type, float* out, std::size_t rows, std::size_t begin,
                std::size_t end, bool clip, float input_scale, float* ping, float* pong) const;
  void forward_lowp(const void* x, InputType x_type, float* out, std::size_t rows, std::size_t begin,
                    std::size_t end, bool clip, float input_scale) const;
  std::size_t lowp_floats(std::size_t rows) const;
  std::unique_ptr<Scratch> acquire_scratch(std::size_t floats) const;
  void release_scratch(std::unique_ptr<Scratch> scratch) const;

  const IsaKernels& isa_;
  Compute compute_ = Compute::f32;
  std::vector<PackedLayer> layers_;
  std::size_t max_width_ = 0;
  mutable ThreadPool pool_;
  mutable std::mutex scratch_mutex_;
  mutable std::vector<std::unique_ptr<Scratch>> free_scratch_;
};

}  // namespace aefast
