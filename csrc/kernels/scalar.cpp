// Plain reference kernels (no intrinsics, libm for expm1/exp). Slow but obvious.
#include "scalar.h"

#include <cmath>
#include <cstring>

namespace aefast {
namespace {

// IEEE binary16 bits -> float, every case (normal, subnormal, inf, NaN) exact.
float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = std::uint32_t(h & 0x8000u) << 16;
  const std::uint32_t exponent = (h >> 10) & 0x1fu;
  const std::uint32_t mantissa = h & 0x3ffu;
  std::uint32_t bits;
  if (exponent == 0) {  // zero or subnormal: mantissa * 2^-24 is exact in float
    const float magnitude = float(mantissa) * 0x1p-24f;
    std::memcpy(&bits, &magnitude, 4);
    bits |= sign;
  } else if (exponent == 31) {  // inf or NaN (payload kept)
    bits = sign | 0x7f800000u | (mantissa << 13);
  } else {  // rebias the exponent from 15 to 127
    bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
  }
  float out;
  std::memcpy(&out, &bits, 4);
  return out;
}

float widen(float w) { return w; }
float widen(std::uint16_t w) { return half_to_float(w); }
float widen(std::int8_t w) { return float(w); }
float widen(std::uint8_t a) { return float(a); }

float activate(float v, Activation activation, bool clip) {
  switch (activation) {
    case Activation::linear: break;
    case Activation::elu: v = v > 0.0f ? v : std::expm1(v); break;
    case Activation::sigmoid: v = float(1.0 / (1.0 + std::exp(-double(v)))); break;
  }
  if (clip) v = std::fmin(std::fmax(v, 0.0f), 1.0f);
  return v;
}

template <typename W, typename A>
void dense(const DenseBlock& b) {
  const W* packed = static_cast<const W*>(b.packed_w);
  const A* a = static_cast<const A*>(b.a);
  for (std::size_t r = b.row_begin; r < b.row_end; ++r) {
    const A* a_row = a + r * b.lda;
    for (std::size_t p = b.panel_begin; p < b.panel_end; ++p) {
      const W* panel = packed + p * b.k * kPanelWidth;
      float acc[kPanelWidth] = {};
      for (std::size_t k = 0; k < b.k; ++k) {
        const float a_rk = widen(a_row[k]);
        for (std::size_t c = 0; c < kPanelWidth; ++c) acc[c] += a_rk * widen(panel[k * kPanelWidth + c]);
      }
      for (std::size_t c = 0; c < kPanelWidth && p * kPanelWidth + c < b.n; ++c) {
        const std::size_t j = p * kPanelWidth + c;
        b.c[r * b.ldc + j] = activate(acc[c] * (b.scale[j] * b.input_scale) + b.bias[j], b.activation, b.clip);
      }
    }
  }
}

}  // namespace

void dense_f32w_f32x__scalar(const DenseBlock& b) { dense<float, float>(b); }
void dense_f32w_u8x__scalar(const DenseBlock& b) { dense<float, std::uint8_t>(b); }
void dense_f16w_f32x__scalar(const DenseBlock& b) { dense<std::uint16_t, float>(b); }
void dense_f16w_u8x__scalar(const DenseBlock& b) { dense<std::uint16_t, std::uint8_t>(b); }
void dense_i8w_f32x__scalar(const DenseBlock& b) { dense<std::int8_t, float>(b); }
void dense_i8w_u8x__scalar(const DenseBlock& b) { dense<std::int8_t, std::uint8_t>(b); }

void elu__scalar(const float* x, float* y, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) y[i] = activate(x[i], Activation::elu, false);
}

}  // namespace aefast
