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

// Low-precision fallbacks for CPUs without VNNI / AVX512_BF16 (avx2_lowp.cpp): q8 with vpmaddwd on int16-widened
// values (exact: |u8 x s8| pair sums fit int32; vpmaddubsw is never used, its int16 pair sums saturate), bf16 by
// widening to fp32 with a shift and FMA in vdpbf16ps order (bit-identical to the scalar twin).
void dense_q8__avx2(const Q8DenseBlock& b);
void dense_bf16__avx2(const Bf16DenseBlock& b);
void quantize_rows__avx2(const float* x, std::size_t ldx, std::size_t rows, std::size_t k, float extra_scale,
                         std::uint8_t* q, std::size_t ldq, float* scale, std::int32_t* zero);

}  // namespace aefast
