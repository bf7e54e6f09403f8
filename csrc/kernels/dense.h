// The kernel interface shared by every ISA: one fused dense + bias + activation
// block over packed weights. Pure functions on raw pointers; callers (the
// Network, after the binding has validated everything) guarantee the contract.
#pragma once
#include <cstddef>
#include <cstdint>

namespace aefast {

// Output channels per packed weight panel (two 8-float AVX2 registers).
constexpr std::size_t kPanelWidth = 16;

enum class Activation : int { linear = 0, elu = 1, sigmoid = 2 };
enum class WeightType : int { f32 = 0, f16 = 1, i8 = 2 };  // f16 is stored as IEEE binary16 bits
enum class InputType : int { f32 = 0, u8 = 1 };

// Packed weight layout (the same for every ISA), for a layer with K inputs and
// N outputs, P = ceil(N / 16) panels:
//   packed[(p * K + k) * 16 + c] = W[k, 16 p + c]   (0 where 16 p + c >= N)
// scale[j], bias[j] are padded to 16 P entries (padding: scale 1, bias 0);
// scale is the int8 per-channel scale, 1 for f32/f16 weights.
//
// One call computes C[r, j] for rows [row_begin, row_end) and the columns of
// panels [panel_begin, panel_end) (only j < N is written):
//   acc     = sum_{k = 0 .. K-1} A[r, k] * W[k, j]   (accumulated in k order,
//             one float accumulator per element: results do not depend on
//             which rows or panels share a call or a tile)
//   C[r, j] = act(acc * (scale[j] * input_scale) + bias[j]), clamped to [0, 1] if clip.
struct DenseBlock {
  const void* a;         // float or uint8 rows, A[r * lda + k]
  std::size_t lda;
  const void* packed_w;  // float, uint16 (f16 bits) or int8, layout above
  const float* scale;
  const float* bias;
  float input_scale;
  std::size_t k, n;
  float* c;              // C[r * ldc + j]; must not overlap A
  std::size_t ldc;
  std::size_t row_begin, row_end;
  std::size_t panel_begin, panel_end;
  Activation activation;
  bool clip;
};

using DenseBlockFn = void (*)(const DenseBlock&);
// y[i] = ELU(x[i]) = x > 0 ? x : expm1(x), for n floats (x and y may be equal).
using EluFn = void (*)(const float* x, float* y, std::size_t n);

inline std::size_t panel_count(std::size_t n) { return (n + kPanelWidth - 1) / kPanelWidth; }

}  // namespace aefast
