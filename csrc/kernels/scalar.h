// Plain reference kernels: the twins every fast kernel is tested against.
#pragma once
#include "dense.h"

namespace aefast {

// dense_<weight type>w_<input type>x__scalar: see DenseBlock in dense.h.
void dense_f32w_f32x__scalar(const DenseBlock& b);
void dense_f32w_u8x__scalar(const DenseBlock& b);
void dense_f16w_f32x__scalar(const DenseBlock& b);
void dense_f16w_u8x__scalar(const DenseBlock& b);
void dense_i8w_f32x__scalar(const DenseBlock& b);
void dense_i8w_u8x__scalar(const DenseBlock& b);
void elu__scalar(const float* x, float* y, std::size_t n);

// Low-precision twins (see Q8DenseBlock, Bf16DenseBlock, QuantizeRowsFn, ToBf16RowsFn in dense.h).
void dense_q8__scalar(const Q8DenseBlock& b);
void dense_bf16__scalar(const Bf16DenseBlock& b);
void quantize_rows__scalar(const float* x, std::size_t ldx, std::size_t rows, std::size_t k, float extra_scale,
                           std::uint8_t* q, std::size_t ldq, float* scale, std::int32_t* zero);
void to_bf16_rows__scalar(const float* x, std::size_t ldx, std::size_t rows, std::size_t k, std::uint16_t* y,
                          std::size_t ldy);
// One value's conversion, shared by the scalar twins and the packing code.
std::uint16_t float_to_bf16(float x);
inline float bf16_to_float(std::uint16_t h) {
  const std::uint32_t bits = std::uint32_t(h) << 16;
  float f;
  __builtin_memcpy(&f, &bits, 4);
  return f;
}

}  // namespace aefast
