// AVX-512 low-precision kernels: q8 with VNNI (avx512vnni.cpp) and bf16 with AVX512_BF16 (avx512bf16.cpp).
// Declarations only; call only when dispatch says the CPU has the features each file was built for.
#pragma once
#include "dense.h"

namespace aefast {

void dense_q8__avx512vnni(const Q8DenseBlock& b);                  // needs AVX-512 F/BW/DQ/VL + VNNI (8x32 tile)
extern const Q8TileTable q8_tiles__avx512vnni;                     // its tile family, 8x32 first
void quantize_rows__avx512(const float* x, std::size_t ldx, std::size_t rows, std::size_t k, float extra_scale,
                           std::uint8_t* q, std::size_t ldq, float* scale, std::int32_t* zero);  // (built with VNNI)
void dense_bf16__avx512bf16(const Bf16DenseBlock& b);              // needs AVX-512 F/BW/DQ/VL + BF16 (dpbf16 tile)
extern const Bf16TileTable bf16_tiles__avx512bf16;                 // its tile family: dpbf16, fma, mixed
void to_bf16_rows__avx512bf16(const float* x, std::size_t ldx, std::size_t rows, std::size_t k, std::uint16_t* y,
                              std::size_t ldy);

}  // namespace aefast
