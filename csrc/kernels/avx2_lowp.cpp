// AVX2 q8 and bf16 kernels (see avx2.h). Same packed layouts as the AVX-512 kernels (dense.h).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "avx2.h"
#include "simd_avx2.h"

namespace aefast {
namespace {

using avx2::epilogue;
using avx2::store8;

// ---- q8 -------------------------------------------------------------------------------------------------------
// One k-quad of 4 columns is 16 int8 = one ymm of int16 after vpmovsxbw: [c0k0 c0k1 c0k2 c0k3 c1k0 ...]. The row's
// quad as int16, repeated (one vpbroadcastq from a widened copy), meets it in vpmaddwd: lanes hold (c, k0k1) and
// (c, k2k3) partial sums, added in pairs (hadd) only once, after the k loop. Tile: MR <= 6 rows x 8 columns = 2 MR
// accumulators + 2 weight registers + 1 broadcast (15 of 16 ymm at MR = 6). Row tiles are the outer loop: a tile's
// rows are widened to int16 once (`wide`, MR x K4 quads) and then meet every panel, so the k loop has no per-row
// widening: 2 + MR + 4 MR µops per 32 MR multiply-adds (6.2 per µop at MR = 6; the fp32 6 x 16 FMA tile: 4.8).
template <int MR>
inline void q8_tile(const Q8DenseBlock& b, const std::int64_t* wide, std::size_t r0, std::size_t p, int half) {
  const std::size_t k4 = quad_count(b.k);
  const std::int8_t* w = b.packed_w + p * k4 * kPanelWidth * kQuadK + half * 32;
  __m256i acc[MR][2];
  for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
  for (std::size_t q = 0; q < k4; ++q) {
    const __m256i w0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + q * 64)));
    const __m256i w1 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + q * 64 + 16)));
    for (int r = 0; r < MR; ++r) {
      const __m256i av = _mm256_set1_epi64x(wide[r * k4 + q]);
      acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(av, w0));
      acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(av, w1));
    }
  }
  const std::size_t j = p * kPanelWidth + 8 * half;   // columns j .. j + 7
  const __m256i colsum = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.colsum + j));
  const __m256 w_scale = _mm256_loadu_ps(b.w_scale + j), bias = _mm256_loadu_ps(b.bias + j);
  for (int r = 0; r < MR; ++r) {
    const std::size_t row = r0 + r;
    // hadd -> [c0 c1 c4 c5 | c2 c3 c6 c7]; the permute puts the 8 columns in order.
    const __m256i sums = _mm256_permute4x64_epi64(_mm256_hadd_epi32(acc[r][0], acc[r][1]), 0xd8);
    const __m256i exact = _mm256_sub_epi32(sums, _mm256_mullo_epi32(_mm256_set1_epi32(b.a_zero[row]), colsum));
    const __m256 scale = _mm256_mul_ps(_mm256_set1_ps(b.a_scale[row]), w_scale);
    store8(b.c + row * b.ldc + j, long(b.n) - long(j),
           epilogue(_mm256_cvtepi32_ps(exact), scale, bias, b.activation, b.clip));
  }
}

// Rows [r0, r0 + MR) widened (row quads as 4 int16) into wide[MR][K4], then run over every panel half.
template <int MR>
void q8_row_strip(const Q8DenseBlock& b, std::int64_t* wide, std::size_t r0) {
  const std::size_t k4 = quad_count(b.k), full_quads = b.a_tail_safe ? k4 : b.k / kQuadK;
  for (int r = 0; r < MR; ++r) {
    const std::uint8_t* a = b.a + (r0 + r) * b.lda;
    for (std::size_t q = 0; q < k4; ++q) {
      std::uint32_t quad = 0;
      std::memcpy(&quad, a + q * kQuadK, q < full_quads ? 4 : b.k - q * kQuadK);
      wide[r * k4 + q] = _mm_cvtsi128_si64(_mm_cvtepu8_epi16(_mm_cvtsi32_si128(int(quad))));
    }
  }
  for (std::size_t p = b.panel_begin; p < b.panel_end; ++p)
    for (int half = 0; half < 2 && p * kPanelWidth + 8 * half < b.n; ++half) q8_tile<MR>(b, wide, r0, p, half);
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
      const __m256 v = epilogue(acc[r][h], input_scale, bias, b.activation, b.clip);
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
  thread_local std::vector<std::int64_t> wide;   // 6 rows x K4 quads as int16: 48 KB at K = 1000
  wide.resize(6 * quad_count(b.k));
  std::size_t r = b.row_begin;
  for (; r + 6 <= b.row_end; r += 6) q8_row_strip<6>(b, wide.data(), r);
  switch (b.row_end - r) {
    case 1: q8_row_strip<1>(b, wide.data(), r); break;
    case 2: q8_row_strip<2>(b, wide.data(), r); break;
    case 3: q8_row_strip<3>(b, wide.data(), r); break;
    case 4: q8_row_strip<4>(b, wide.data(), r); break;
    case 5: q8_row_strip<5>(b, wide.data(), r); break;
    default: break;
  }
}

// quantize_rows__scalar's float operations, 8 lanes at a time (min/max are exact, so the reduction order does not
// matter; each value goes through the same roundings): bit-identical results.
void quantize_rows__avx2(const float* x, std::size_t ldx, std::size_t rows, std::size_t k, float extra_scale,
                         std::uint8_t* q, std::size_t ldq, float* scale, std::int32_t* zero) {
  const __m256 inf = _mm256_set1_ps(__builtin_inff()), sign = _mm256_set1_ps(-0.0f);
  for (std::size_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ldx;
    __m256 vlo = _mm256_setzero_ps(), vhi = _mm256_setzero_ps(), bad = _mm256_setzero_ps();
    std::size_t i = 0;
    for (; i + 8 <= k; i += 8) {
      const __m256 v = _mm256_loadu_ps(xr + i);
      bad = _mm256_or_ps(bad, _mm256_cmp_ps(_mm256_andnot_ps(sign, v), inf, _CMP_NLT_UQ));  // inf or NaN
      vlo = _mm256_min_ps(vlo, v);
      vhi = _mm256_max_ps(vhi, v);
    }
    alignas(32) float lo8[8], hi8[8];
    _mm256_store_ps(lo8, vlo);
    _mm256_store_ps(hi8, vhi);
    bool finite = _mm256_movemask_ps(bad) == 0;
    float lo = 0.0f, hi = 0.0f;
    for (int l = 0; l < 8; ++l) lo = std::min(lo, lo8[l]), hi = std::max(hi, hi8[l]);
    for (std::size_t t = i; t < k; ++t) {
      finite = finite && std::isfinite(xr[t]);
      lo = std::min(lo, xr[t]);
      hi = std::max(hi, xr[t]);
    }
    const RowQuantization rq = row_quantization(lo, hi, finite);
    const float inv = rq.inv, s = rq.scale;
    const std::int32_t z = rq.zero;
    std::uint8_t* qr = q + r * ldq;
    const __m256 vinv = _mm256_set1_ps(inv), vz = _mm256_set1_ps(float(z)), v255 = _mm256_set1_ps(255.0f);
    for (i = 0; finite && i + 8 <= k; i += 8) {
      __m256 t = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(xr + i), vinv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      t = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(t, vz), _mm256_setzero_ps()), v255);
      const __m256i n = _mm256_cvtps_epi32(t);   // 0..255: exact
      const __m128i n16 = _mm_packus_epi32(_mm256_castsi256_si128(n), _mm256_extracti128_si256(n, 1));
      _mm_storel_epi64(reinterpret_cast<__m128i*>(qr + i), _mm_packus_epi16(n16, n16));
    }
    for (std::size_t t = finite ? i : 0; t < k; ++t) {
      const float v = finite ? __builtin_nearbyintf(xr[t] * inv) + float(z) : float(z);
      qr[t] = std::uint8_t(std::min(std::max(v, 0.0f), 255.0f));
    }
    if (ldq > k) std::memset(qr + k, int(z), ldq - k);
    scale[r] = finite ? s * extra_scale : __builtin_nanf("");
    zero[r] = z;
  }
}

void dense_bf16__avx2(const Bf16DenseBlock& b) {
  rows_by_panels(b, 4, [&](std::size_t r, std::size_t p) { bf16_tile<4>(b, r, p); },
                 [&](std::size_t r, std::size_t p) { bf16_tile<1>(b, r, p); });
  if (b.c_bf16 && b.n % 2 && b.panel_end * kPanelWidth >= b.n)
    for (std::size_t r = b.row_begin; r < b.row_end; ++r) static_cast<std::uint16_t*>(b.c)[r * b.ldc + b.n] = 0;
}

}  // namespace aefast
