// AVX2 + FMA + F16C kernels (avx2.cpp is the only file built with those flags).
// Declarations only, so any unit may include this; call only when dispatch says the CPU can.
#pragma once
#include "dense.h"

namespace aefast {

// dense_<weight type>w_<input type>x__avx2: see DenseBlock in dense.h.
void dense_f32w_f32x__avx2(const DenseBlock& b);
void dense_f32w_u8x__avx2(const DenseBlock& b);
void dense_f16w_f32x__avx2(const DenseBlock& b);
void dense_f16w_u8x__avx2(const DenseBlock& b);
void dense_i8w_f32x__avx2(const DenseBlock& b);
void dense_i8w_u8x__avx2(const DenseBlock& b);
void elu__avx2(const float* x, float* y, std::size_t n);

}  // namespace aefast
