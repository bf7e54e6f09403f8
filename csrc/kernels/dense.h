// The kernel interface shared by every ISA: one fused dense + bias + activation
// block over packed weights. Pure functions on raw pointers; callers (the
// Network, after the binding has validated everything) guarantee the contract.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>

namespace aefast {

// Output channels per packed weight panel (two 8-float AVX2 registers).
constexpr std::size_t kPanelWidth = 16;

enum class ActivationKind : int { linear = 0, elu = 1, sigmoid = 2, relu = 3, leaky_relu = 4, tanh = 5, elu_q8 = 6 };
// elu_q8 is no model's activation: a Network computing in q8 gives it to its ELU layers (all of them, so a chain
// equals its single layers run one after another). The same function with a cheaper expm1 on its negative side,
// accurate to 1e-6 relative, far under the int8 compute's own error (simd_math.h expm1_q8).
// A layer's activation (aefast/model/activations.py): its kind and alpha, the ELU's alpha (z <= 0: alpha expm1(z))
// or the leaky ReLU's slope (z <= 0: alpha z); alpha is unused by the other kinds. Built by the binding from the
// model's activation string ("elu", "elu(0.5)", "leaky_relu(0.01)", ...).
struct Activation {
  ActivationKind kind = ActivationKind::linear;
  float alpha = 1.0f;
};
enum class WeightType : int { f32 = 0, f16 = 1, i8 = 2, bf16 = 3 };  // f16 / bf16 are stored as their bits
// What the layer computes in: fp32 activations (f32/f16/int8 weights widened), quantized uint8 activations x int8
// weights (q8), or bf16 activations x bf16 weights (bf16). One network computes in one of them.
enum class Compute : int { f32 = 0, q8 = 1, bf16 = 2 };
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

namespace aefast {

// ---------------------------------------------------------------------------------------------------------------
// Low-precision compute: quantized-activation int8 ("q8") and bf16. Both pack K in groups that one dot-product
// instruction consumes per output lane, so a packed k-group of one panel is exactly one 64-byte zmm:
//   q8:   packed[((p * K4 + q) * 16 + c) * 4 + i] = W[4 q + i, 16 p + c]   (int8, K4 = ceil(K / 4), zero padded)
//   bf16: packed[((p * K2 + q) * 16 + c) * 2 + i] = W[2 q + i, 16 p + c]   (bf16 bits, K2 = ceil(K / 2), zero padded)
// Zero weights in the padding make the padded inputs' values irrelevant (they are still read: see below).
// ---------------------------------------------------------------------------------------------------------------
constexpr std::size_t kQuadK = 4;  // int8 inputs per vpdpbusd lane
constexpr std::size_t kPairK = 2;  // bf16 inputs per vdpbf16ps lane

inline std::size_t quad_count(std::size_t k) { return (k + kQuadK - 1) / kQuadK; }
inline std::size_t pair_count(std::size_t k) { return (k + kPairK - 1) / kPairK; }

// int8 x quantized uint8 activations. Row r of A holds q[r, k] = round(a[r, k] / a_scale[r]) + a_zero[r] in [0, 255]
// (asymmetric per row; uint8 images enter as they are: a_scale = 1/255, a_zero = 0). For every row r and column j:
//   acc     = sum_k q[r, k] * W[k, j] - a_zero[r] * colsum[j]      (exact int32; colsum[j] = sum_k W[k, j])
//   C[r, j] = act(float(acc) * (a_scale[r] * w_scale[j]) + bias[j]), clamped to [0, 1] if clip.
// The kernel reads whole quads: A rows must be readable up to 4 * K4 bytes (callers pad internal buffers; the
// last quad of an unpadded user row is read through a bounded copy, see a_tail_safe).
struct Q8DenseBlock {
  const std::uint8_t* a;
  std::size_t lda;
  bool a_tail_safe;        // true when every row is readable up to 4 * K4 bytes (K % 4 == 0 or padded rows)
  const float* a_scale;    // per row (indexed by r, like A)
  const std::int32_t* a_zero;
  const std::int8_t* packed_w;
  const std::int32_t* colsum;  // padded to 16 P (0)
  const float* w_scale;        // padded to 16 P (1)
  const float* bias;           // padded to 16 P (0)
  std::size_t k, n;
  float* c;
  std::size_t ldc;
  std::size_t row_begin, row_end;
  std::size_t panel_begin, panel_end;
  Activation activation;
  bool clip;
};

// bf16 x bf16 with fp32 accumulation, in vdpbf16ps order: for each pair q,
//   acc = fma(A[r, 2q + 1], W[2q + 1, j], acc); acc = fma(A[r, 2q], W[2q, j], acc)
// (products of bf16 values are exact in fp32). A rows are bf16 bits, readable and zero padded up to 2 * K2.
// Output: C[r, j] = act(acc * input_scale + bias[j]) (clamped if clip), stored as float (c_bf16 false) or as
// bf16 bits rounded to nearest even (c_bf16 true; then a zero is stored in column n when n is odd, so the row is
// a ready zero-padded input for the next layer).
struct Bf16DenseBlock {
  const std::uint16_t* a;
  std::size_t lda;
  const std::uint16_t* packed_w;
  const float* bias;  // padded to 16 P (0)
  float input_scale;
  std::size_t k, n;
  void* c;  // float or uint16 (bf16 bits)
  std::size_t ldc;
  bool c_bf16;
  std::size_t row_begin, row_end;
  std::size_t panel_begin, panel_end;
  Activation activation;
  bool clip;
};

using Q8DenseFn = void (*)(const Q8DenseBlock&);
using Bf16DenseFn = void (*)(const Bf16DenseBlock&);

// One register tile of a q8 kernel family: its stable name, "MRxCOLS" (main tile rows x columns, e.g. "8x32"), and
// the dense function that runs the whole block with it (leftover rows and panels in the family's other shapes).
// Every tile of every family computes the same exact int32 sums and the same epilogue: outputs are bit-identical
// across tiles (tests/test_tiles.py); only the speed differs.
struct Q8Tile {
  const char* name;
  Q8DenseFn dense;
};
// A family's tiles; tiles[0] is the family's default (the tile a Network gets when none is named).
template <class Tile>
struct TileTable {
  const Tile* tiles;
  std::size_t count;
};
using Q8TileTable = TileTable<Q8Tile>;

// The tile families of the fp32 kernels on f16 weights (dense[input type], named e.g. "zmm", "ymm") and of the bf16
// kernels ("dpbf16", "fma", "mixed"): as Q8Tile, every tile of a family gives bit-identical outputs (each output is
// one chain in k order with the same roundings; tests/test_tiles_f16.py), only the speed differs.
struct F16Tile {
  const char* name;
  DenseBlockFn dense[2];
};
using F16TileTable = TileTable<F16Tile>;
struct Bf16KernelTile {
  const char* name;
  Bf16DenseFn dense;
};
using Bf16TileTable = TileTable<Bf16KernelTile>;

// A row's quantization from its range (lo = min(0, min x), hi = max(0, max x)): q = clamp(rne(x * inv) + zero, 0,
// 255) and x ~ (q - zero) * scale. The one definition every ISA's quantize_rows uses, so their codes are bit-identical
// (tested). A row of zeros, or one holding NaN/inf (finite false), gets inv 0, scale 1, zero 0.
struct RowQuantization {
  float inv = 0.0f, scale = 1.0f;
  std::int32_t zero = 0;
};

inline RowQuantization row_quantization(float lo, float hi, bool finite) {
  RowQuantization p;
  if (finite && hi > lo) {
    p.inv = 255.0f / (hi - lo);
    p.scale = (hi - lo) / 255.0f;
    p.zero = std::int32_t(std::fmin(std::fmax(std::nearbyint(-lo * p.inv), 0.0f), 255.0f));
  }
  return p;
}

// Per-row asymmetric uint8 quantization of float rows x[rows, k] (row stride ldx) into q[rows, ldq] (ldq >= 4 K4;
// columns k .. ldq are set to the row's zero point), with scale[r], zero[r]:
//   lo = min(0, min_k x), hi = max(0, max_k x); (inv, scale, zero) = row_quantization(lo, hi, finite),
//   q = clamp(rne(x * inv) + zero, 0, 255)
// then scale[r] *= extra_scale. A row holding NaN or +-inf gets scale NaN (so the next layer's outputs are NaN:
// never hidden) and q = zero. Every ISA computes exactly these float operations (bit-identical results).
using QuantizeRowsFn = void (*)(const float* x, std::size_t ldx, std::size_t rows, std::size_t k, float extra_scale,
                                std::uint8_t* q, std::size_t ldq, float* scale, std::int32_t* zero);

// float -> bf16 bits, round to nearest even; NaN stays NaN (quiet), subnormals flush to signed zero (as vdpbf16ps
// reads them). Rows x[rows, k] (stride ldx) into y[rows, ldy]; y[r, k .. ldy) is zeroed.
using ToBf16RowsFn = void (*)(const float* x, std::size_t ldx, std::size_t rows, std::size_t k, std::uint16_t* y,
                              std::size_t ldy);

}  // namespace aefast
