// AVX2 q8 and bf16 kernels (see avx2.h). Same packed layouts as the AVX-512 kernels (dense.h).
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "avx2.h"
#include "math_avx2.h"

namespace aefast {
namespace {

inline __m256i lane_mask(long valid) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(std::clamp(valid, 0L, 8L))), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

inline __m256 activate(__m256 v, Activation activation, bool clip) {
  if (activation == Activation::elu) v = avx2::elu(v);
  else if (activation == Activation::sigmoid) v = avx2::sigmoid(v);
  if (clip) v = _mm256_min_ps(_mm256_max_ps(v, _mm256_setzero_ps()), _mm256_set1_ps(1.0f));
  return v;
}

inline void store8(float* c, long valid, __m256 v) {
  if (valid >= 8) _mm256_storeu_ps(c, v);
  else if (valid > 0) _mm256_maskstore_ps(c, lane_mask(valid), v);
}

// ---- q8 -------------------------------------------------------------------------------------------------------
// One k-quad of 4 columns is 16 int8 = one ymm of int16 after vpmovsxbw: [c0k0 c0k1 c0k2 c0k3 c1k0 ...]. The row's
// quad, widened and repeated, meets it in vpmaddwd: lanes hold (c, k0k1) and (c, k2k3) partial sums, added in
// pairs (hadd) only once, after the k loop. Tile: MR rows x 16 columns = 4 MR accumulators (MR <= 2: 8 + 4 + 1 ymm).
template <int MR>
inline void q8_tile(const Q8DenseBlock& b, std::size_t r0, std::size_t p) {
  const std::size_t k4 = quad_count(b.k), full_quads = b.a_tail_safe ? k4 : b.k / kQuadK;
  const std::int8_t* w = b.packed_w + p * k4 * kPanelWidth * kQuadK;
  __m256i acc[MR][4];
  for (int r = 0; r < MR; ++r)
    for (int g = 0; g < 4; ++g) acc[r][g] = _mm256_setzero_si256();
  auto step = [&](std::size_t q, std::size_t bytes) {
    __m256i wv[4];
    for (int g = 0; g < 4; ++g)
      wv[g] = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + q * 64 + g * 16)));
    for (int r = 0; r < MR; ++r) {
      std::uint32_t quad = 0;
      std::memcpy(&quad, b.a + (r0 + r) * b.lda + q * kQuadK, bytes);
      const __m256i av = _mm256_broadcastq_epi64(_mm_cvtepu8_epi16(_mm_cvtsi32_si128(int(quad))));
      for (int g = 0; g < 4; ++g) acc[r][g] = _mm256_add_epi32(acc[r][g], _mm256_madd_epi16(av, wv[g]));
    }
  };
  for (std::size_t q = 0; q < full_quads; ++q) step(q, 4);
  if (full_quads < k4) step(full_quads, b.k - full_quads * kQuadK);

  const std::size_t j0 = p * kPanelWidth;
  for (int h = 0; h < 2; ++h) {  // columns j0 + 8h .. j0 + 8h + 7
    const std::size_t j = j0 + 8 * h;
    const __m256i colsum = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.colsum + j));
    const __m256 w_scale = _mm256_loadu_ps(b.w_scale + j), bias = _mm256_loadu_ps(b.bias + j);
    for (int r = 0; r < MR; ++r) {
      const std::size_t row = r0 + r;
      // hadd -> [c0 c1 c4 c5 | c2 c3 c6 c7]; the permute puts the 8 columns in order.
      const __m256i sums = _mm256_permute4x64_epi64(_mm256_hadd_epi32(acc[r][2 * h], acc[r][2 * h + 1]), 0xd8);
      const __m256i exact = _mm256_sub_epi32(sums, _mm256_mullo_epi32(_mm256_set1_epi32(b.a_zero[row]), colsum));
      const __m256 scale = _mm256_mul_ps(_mm256_set1_ps(b.a_scale[row]), w_scale);
      store8(b.c + row * b.ldc + j, long(b.n) - long(j),
             activate(_mm256_fmadd_ps(_mm256_cvtepi32_ps(exact), scale, bias), b.activation, b.clip));
    }
  }
}

// ---- bf16 -----------------------------------------------------------------------------------------------------
// A k-pair of 8 columns is 8 uint32 (even value low, odd high): the odd weights are the uint32 with the low half
// cleared, the even ones the uint32 shifted left by 16, both exact fp32. Tile: MR rows x 16 columns.
// float_to_bf16 (scalar.cpp) for 8 lanes: round to nearest even, NaN kept quiet, subnormals to signed zero.
inline __m128i to_bf16x8(__m256 v) {
  const __m256i bits = _mm256_castps_si256(v);
  const __m256i magnitude = _mm256_and_si256(bits, _mm256_set1_epi32(0x7fffffff));
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1));
  __m256i r = _mm256_srli_epi32(_mm256_add_epi32(bits, _mm256_add_epi32(_mm256_set1_epi32(0x7fff), lsb)), 16);
  const __m256i is_small = _mm256_cmpeq_epi32(_mm256_and_si256(bits, _mm256_set1_epi32(0x7f800000)), _mm256_setzero_si256());
  r = _mm256_blendv_epi8(r, _mm256_srli_epi32(_mm256_and_si256(bits, _mm256_set1_epi32(int(0x80000000u))), 16), is_small);
  const __m256i is_nan = _mm256_cmpgt_epi32(magnitude, _mm256_set1_epi32(0x7f800000));
  r = _mm256_blendv_epi8(r, _mm256_srli_epi32(_mm256_or_si256(bits, _mm256_set1_epi32(0x400000)), 16), is_nan);
  return _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));  // values < 2^16: exact
}

inline __m256 bf16_high(__m256i v) { return _mm256_castsi256_ps(_mm256_and_si256(v, _mm256_set1_epi32(int(0xffff0000u)))); }
inline __m256 bf16_low(__m256i v) { return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)); }

template <int MR>
inline void bf16_tile(const Bf16DenseBlock& b, std::size_t r0, std::size_t p) {
  const std::size_t k2 = pair_count(b.k);
  const std::uint16_t* w = b.packed_w + p * k2 * kPanelWidth * kPairK;
  __m256 acc[MR][2];
  for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  for (std::size_t q = 0; q < k2; ++q) {
    const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + q * 32));
    const __m256i w1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + q * 32 + 16));
    const __m256 w0_odd = bf16_high(w0), w0_even = bf16_low(w0), w1_odd = bf16_high(w1), w1_even = bf16_low(w1);
    for (int r = 0; r < MR; ++r) {
      std::uint32_t pair;
      std::memcpy(&pair, b.a + (r0 + r) * b.lda + q * kPairK, 4);
      const __m256i av = _mm256_set1_epi32(int(pair));
      const __m256 a_odd = bf16_high(av), a_even = bf16_low(av);
      acc[r][0] = _mm256_fmadd_ps(a_even, w0_even, _mm256_fmadd_ps(a_odd, w0_odd, acc[r][0]));
      acc[r][1] = _mm256_fmadd_ps(a_even, w1_even, _mm256_fmadd_ps(a_odd, w1_odd, acc[r][1]));
    }
  }
  const __m256 input_scale = _mm256_set1_ps(b.input_scale);
  for (int h = 0; h < 2; ++h) {
    const std::size_t j = p * kPanelWidth + 8 * h;
    const long valid = long(b.n) - long(j);
    const __m256 bias = _mm256_loadu_ps(b.bias + j);
    for (int r = 0; r < MR; ++r) {
      const __m256 v = activate(_mm256_fmadd_ps(acc[r][h], input_scale, bias), b.activation, b.clip);
      if (!b.c_bf16) {
        store8(static_cast<float*>(b.c) + (r0 + r) * b.ldc + j, valid, v);
        continue;
      }
      const __m128i packed = to_bf16x8(v);
      std::uint16_t* c = static_cast<std::uint16_t*>(b.c) + (r0 + r) * b.ldc + j;
      if (valid >= 8) _mm_storeu_si128(reinterpret_cast<__m128i*>(c), packed);
      else if (valid > 0) std::memcpy(c, &packed, std::size_t(valid) * 2);
    }
  }
}

template <typename Block, typename Tile4, typename Tile1>
void rows_by_panels(const Block& b, std::size_t rows_per_tile, Tile4 main_tile, Tile1 one_row_tile) {
  for (std::size_t p = b.panel_begin; p < b.panel_end; ++p) {
    std::size_t r = b.row_begin;
    for (; r + rows_per_tile <= b.row_end; r += rows_per_tile) main_tile(r, p);
    for (; r < b.row_end; ++r) one_row_tile(r, p);
  }
}

}  // namespace

void dense_q8__avx2(const Q8DenseBlock& b) {
  rows_by_panels(b, 2, [&](std::size_t r, std::size_t p) { q8_tile<2>(b, r, p); },
                 [&](std::size_t r, std::size_t p) { q8_tile<1>(b, r, p); });
}

void dense_bf16__avx2(const Bf16DenseBlock& b) {
  rows_by_panels(b, 4, [&](std::size_t r, std::size_t p) { bf16_tile<4>(b, r, p); },
                 [&](std::size_t r, std::size_t p) { bf16_tile<1>(b, r, p); });
  if (b.c_bf16 && b.n % 2 && b.panel_end * kPanelWidth >= b.n)
    for (std::size_t r = b.row_begin; r < b.row_end; ++r) static_cast<std::uint16_t*>(b.c)[r * b.ldc + b.n] = 0;
}

}  // namespace aefast
