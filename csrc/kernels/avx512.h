// AVX-512 (F/BW/DQ/VL) + FMA + F16C kernels (avx512.cpp is the only file built with those flags).
// Declarations only, so any unit may include this; call only when dispatch says the CPU can.
#pragma once
#include "dense.h"

namespace aefast {

// dense_<weight type>w_<input type>x__avx512: see DenseBlock in dense.h. The int8-weight
// entries of the avx512 ISA are the AVX2 kernels (dispatch.cpp).
void dense_f32w_f32x__avx512(const DenseBlock& b);
void dense_f32w_u8x__avx512(const DenseBlock& b);
void dense_f16w_f32x__avx512(const DenseBlock& b);
void dense_f16w_u8x__avx512(const DenseBlock& b);
void elu__avx512(const float* x, float* y, std::size_t n);
extern const F16TileTable f16_tiles__avx512;  // the f16-weight tiles: zmm (the two functions above), ymm

}  // namespace aefast
