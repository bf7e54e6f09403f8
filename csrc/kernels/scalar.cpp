// Plain reference kernels (no intrinsics, libm for expm1/exp). Slow but obvious.
#include "scalar.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "simd_math.h"

namespace aefast {
namespace {

// simd_math.h's operations on one float, those expm1_q8 uses: the same roundings as the vector instructions
// (std::fma is the correctly rounded fused multiply-add), so the twin's elu_q8 is bit-identical to the kernels'.
struct F32x1 {
  using T = float;
  static T set1(float v) { return v; }
  static T fmadd(T a, T b, T c) { return std::fma(a, b, c); }
  static T fnmadd(T a, T b, T c) { return std::fma(-a, b, c); }
  static T mul(T a, T b) { return a * b; }
  static T sub(T a, T b) { return a - b; }
  static T max(T a, T b) { return a > b ? a : b; }  // b when either is NaN, as maxps
  static T shl23(T y) {
    std::uint32_t bits;
    std::memcpy(&bits, &y, 4);
    bits <<= 23;
    std::memcpy(&y, &bits, 4);
    return y;
  }
};

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
  switch (activation.kind) {
    case ActivationKind::linear: break;
    case ActivationKind::elu: v = v > 0.0f ? v : activation.alpha * std::expm1(v); break;
    case ActivationKind::sigmoid: v = float(1.0 / (1.0 + std::exp(-double(v)))); break;
    case ActivationKind::relu: v = v < 0.0f ? 0.0f : v; break;   // NaN stays NaN, as in the SIMD kernels
    case ActivationKind::leaky_relu: v = v > 0.0f ? v : activation.alpha * v; break;
    case ActivationKind::tanh: v = std::tanh(v); break;
    case ActivationKind::elu_q8: v = v > 0.0f ? v : activation.alpha * simd::expm1_q8<F32x1>(v); break;
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
  for (std::size_t i = 0; i < n; ++i) y[i] = activate(x[i], Activation{ActivationKind::elu, 1.0f}, false);
}

void dense_q8__scalar(const Q8DenseBlock& b) {
  const std::size_t k4 = quad_count(b.k);
  for (std::size_t r = b.row_begin; r < b.row_end; ++r) {
    const std::uint8_t* a_row = b.a + r * b.lda;
    for (std::size_t p = b.panel_begin; p < b.panel_end; ++p) {
      const std::int8_t* panel = b.packed_w + p * k4 * kPanelWidth * kQuadK;
      std::int32_t acc[kPanelWidth] = {};
      for (std::size_t k = 0; k < b.k; ++k) {  // only real inputs: padding contributes 0 in the fast kernels too
        const std::int8_t* wk = panel + (k / kQuadK) * kPanelWidth * kQuadK + k % kQuadK;
        for (std::size_t c = 0; c < kPanelWidth; ++c) acc[c] += std::int32_t(a_row[k]) * std::int32_t(wk[c * kQuadK]);
      }
      for (std::size_t c = 0; c < kPanelWidth && p * kPanelWidth + c < b.n; ++c) {
        const std::size_t j = p * kPanelWidth + c;
        const std::int32_t v = acc[c] - b.a_zero[r] * b.colsum[j];
        b.c[r * b.ldc + j] = activate(std::fma(float(v), b.a_scale[r] * b.w_scale[j], b.bias[j]), b.activation, b.clip);
      }
    }
  }
}

void dense_bf16__scalar(const Bf16DenseBlock& b) {
  const std::size_t k2 = pair_count(b.k);
  for (std::size_t r = b.row_begin; r < b.row_end; ++r) {
    const std::uint16_t* a_row = b.a + r * b.lda;
    for (std::size_t p = b.panel_begin; p < b.panel_end; ++p) {
      const std::uint16_t* panel = b.packed_w + p * k2 * kPanelWidth * kPairK;
      float acc[kPanelWidth] = {};
      for (std::size_t q = 0; q < k2; ++q) {
        const float a_odd = bf16_to_float(a_row[2 * q + 1]), a_even = bf16_to_float(a_row[2 * q]);
        for (std::size_t c = 0; c < kPanelWidth; ++c) {
          const std::uint16_t* w = panel + (q * kPanelWidth + c) * kPairK;
          acc[c] = std::fma(a_odd, bf16_to_float(w[1]), acc[c]);
          acc[c] = std::fma(a_even, bf16_to_float(w[0]), acc[c]);
        }
      }
      for (std::size_t c = 0; c < kPanelWidth && p * kPanelWidth + c < b.n; ++c) {
        const std::size_t j = p * kPanelWidth + c;
        const float v = activate(std::fma(acc[c], b.input_scale, b.bias[j]), b.activation, b.clip);
        if (b.c_bf16) static_cast<std::uint16_t*>(b.c)[r * b.ldc + j] = float_to_bf16(v);
        else static_cast<float*>(b.c)[r * b.ldc + j] = v;
      }
    }
    if (b.c_bf16 && b.n % 2 && b.panel_end * kPanelWidth >= b.n) static_cast<std::uint16_t*>(b.c)[r * b.ldc + b.n] = 0;
  }
}

void quantize_rows__scalar(const float* x, std::size_t ldx, std::size_t rows, std::size_t k, float extra_scale,
                           std::uint8_t* q, std::size_t ldq, float* scale, std::int32_t* zero) {
  for (std::size_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ldx;
    float lo = 0.0f, hi = 0.0f;
    bool finite = true;
    for (std::size_t i = 0; i < k; ++i) {
      finite = finite && std::isfinite(xr[i]);
      lo = std::fmin(lo, xr[i]);
      hi = std::fmax(hi, xr[i]);
    }
    std::uint8_t* qr = q + r * ldq;
    const RowQuantization rq = row_quantization(lo, hi, finite);
    const float inv = rq.inv, s = rq.scale;
    const std::int32_t z = rq.zero;
    for (std::size_t i = 0; i < k; ++i) {
      const float v = finite ? std::nearbyint(xr[i] * inv) + float(z) : float(z);
      qr[i] = std::uint8_t(std::fmin(std::fmax(v, 0.0f), 255.0f));
    }
    for (std::size_t i = k; i < ldq; ++i) qr[i] = std::uint8_t(z);
    scale[r] = finite ? s * extra_scale : std::numeric_limits<float>::quiet_NaN();
    zero[r] = z;
  }
}

std::uint16_t float_to_bf16(float x) {
  std::uint32_t bits;
  std::memcpy(&bits, &x, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return std::uint16_t((bits >> 16) | 0x40);  // NaN: keep it quiet
  if ((bits & 0x7f800000u) == 0) return std::uint16_t((bits >> 16) & 0x8000);        // zero or subnormal
  bits += 0x7fffu + ((bits >> 16) & 1u);  // round to nearest even (overflow to inf is the correct rounding)
  return std::uint16_t(bits >> 16);
}

void to_bf16_rows__scalar(const float* x, std::size_t ldx, std::size_t rows, std::size_t k, std::uint16_t* y,
                          std::size_t ldy) {
  for (std::size_t r = 0; r < rows; ++r) {
    for (std::size_t i = 0; i < k; ++i) y[r * ldy + i] = float_to_bf16(x[r * ldx + i]);
    for (std::size_t i = k; i < ldy; ++i) y[r * ldy + i] = 0;
  }
}

}  // namespace aefast
