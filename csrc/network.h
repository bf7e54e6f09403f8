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
struct LayerSpec {
  WeightType weight_type;
  const void* weight;
  const float* scale;
  const float* bias;
  std::size_t in, out;
  Activation activation;
};

class Network {
 public:
  Network(const std::vector<LayerSpec>& layers, const IsaKernels& isa, std::size_t threads);

  // out[rows, width(end)] = layers [begin, end) applied to x[rows, width(begin)].
  // input_scale multiplies the first computed layer's accumulators; clip clamps the last layer's output to [0, 1].
  void forward(const void* x, InputType x_type, float* out, std::size_t rows, std::size_t begin, std::size_t end,
               bool clip, float input_scale) const;

  const char* isa_name() const { return isa_.name; }
  std::size_t threads() const { return pool_.size(); }
  std::size_t nbytes() const;
  std::size_t layer_count() const { return layers_.size(); }
  std::vector<std::size_t> layer_sizes() const;

 private:
  struct PackedLayer {
    WeightType weight_type;
    std::size_t in, out;
    std::vector<std::uint8_t> weights;  // panels, see dense.h
    std::vector<float> scale, bias;     // padded to the panel width
    Activation activation;
  };
  // Two ping-pong activation buffers per pool slot, owned by one forward() call at a time.
  struct Scratch {
    std::vector<float> buffer;
    float* slot(std::size_t index, std::size_t floats_per_slot) { return buffer.data() + index * floats_per_slot; }
  };

  void run_layer(std::size_t layer, const void* a, InputType a_type, std::size_t lda, float* c, std::size_t ldc,
                 std::size_t rows, std::size_t panel_begin, std::size_t panel_end, bool clip, float input_scale) const;
  void run_rows(const void* x, InputType x_type, float* out, std::size_t rows, std::size_t begin,
                std::size_t end, bool clip, float input_scale, float* ping, float* pong) const;
  std::unique_ptr<Scratch> acquire_scratch(std::size_t floats) const;
  void release_scratch(std::unique_ptr<Scratch> scratch) const;

  const IsaKernels& isa_;
  std::vector<PackedLayer> layers_;
  std::size_t max_width_ = 0;
  mutable ThreadPool pool_;
  mutable std::mutex scratch_mutex_;
  mutable std::vector<std::unique_ptr<Scratch>> free_scratch_;
};

}  // namespace aefast
