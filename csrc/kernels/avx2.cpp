// AVX2/FMA fused dense + bias + activation kernels over the packed panels of dense.h.
//
// Register tile: MR rows x NP panels x 16 columns, 2 * MR * NP ymm accumulators.
// The main tile is 6 x 16 (12 accumulators + 2 weight registers + 1 broadcast = 15
// of 16 ymm). Leftover rows (1..5, which is the whole batch for N < 6) use wider
// tiles (1 x 64, 2 x 32) so that enough independent FMA chains hide the FMA latency
// while the weights stream through once. Every tile accumulates each output in k
// order from zero with FMA, so a row's result does not depend on its tile.
#include "avx2.h"

#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "simd_avx2.h"

namespace aefast {
namespace {

// Eight consecutive packed weights, widened to float.
inline __m256 load8(const float* w) { return _mm256_loadu_ps(w); }
inline __m256 load8(const std::uint16_t* w) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w)));
}
inline __m256 load8(const std::int8_t* w) {
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(w))));
}

// One input element broadcast to all lanes (uint8 widened here, in the A-tile load).
inline __m256 broadcast(const float* a) { return _mm256_broadcast_ss(a); }
inline __m256 broadcast(const std::uint8_t* a) { return _mm256_set1_ps(float(*a)); }

using avx2::epilogue;
using avx2::store8;

// C[r0 .. r0+MR, panels p0 .. p0+NP] for all K.
template <typename W, typename A, int MR, int NP>
inline void tile(const DenseBlock& b, std::size_t r0, std::size_t p0) {
  constexpr bool kHoistBroadcasts = MR + 2 + 2 * MR * NP <= 16;
  static_assert(kHoistBroadcasts || 2 * NP + 1 + 2 * MR * NP <= 16, "register tile too large");
  const std::size_t panel_stride = b.k * kPanelWidth;
  const W* w = static_cast<const W*>(b.packed_w) + p0 * panel_stride;
  const A* a = static_cast<const A*>(b.a) + r0 * b.lda;

  __m256 acc[MR][NP][2];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 16
    for (int p = 0; p < NP; ++p) acc[r][p][0] = acc[r][p][1] = _mm256_setzero_ps();

  for (std::size_t k = 0; k < b.k; ++k) {
    const W* wk = w + k * kPanelWidth;
    if constexpr (kHoistBroadcasts) {
      __m256 av[MR];
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r) av[r] = broadcast(a + r * b.lda + k);
#pragma GCC unroll 16
      for (int p = 0; p < NP; ++p) {
        __m256 w0 = load8(wk + p * panel_stride), w1 = load8(wk + p * panel_stride + 8);
        // Keep the loaded weights in registers: otherwise GCC folds the load into every row's FMA (a 2-row tile then
        // reads each weight twice; seen in objdump, and measured on the AVX-512 twin: 62 -> 112 GFLOP/s at 3 rows).
        __asm__("" : "+x"(w0), "+x"(w1));
#pragma GCC unroll 16
        for (int r = 0; r < MR; ++r) {
          acc[r][p][0] = _mm256_fmadd_ps(av[r], w0, acc[r][p][0]);
          acc[r][p][1] = _mm256_fmadd_ps(av[r], w1, acc[r][p][1]);
        }
      }
    } else {
      __m256 wv[NP][2];
#pragma GCC unroll 16
      for (int p = 0; p < NP; ++p) {
        wv[p][0] = load8(wk + p * panel_stride);
        wv[p][1] = load8(wk + p * panel_stride + 8);
      }
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r) {
        const __m256 av = broadcast(a + r * b.lda + k);
#pragma GCC unroll 16
        for (int p = 0; p < NP; ++p) {
          acc[r][p][0] = _mm256_fmadd_ps(av, wv[p][0], acc[r][p][0]);
          acc[r][p][1] = _mm256_fmadd_ps(av, wv[p][1], acc[r][p][1]);
        }
      }
    }
  }

  const __m256 input_scale = _mm256_set1_ps(b.input_scale);
#pragma GCC unroll 16
  for (int p = 0; p < NP; ++p) {
    const std::size_t j0 = (p0 + p) * kPanelWidth;
    const long valid = long(b.n) - long(j0);  // columns of this panel inside the layer
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      const std::size_t j = j0 + 8 * h;
      const __m256 scale = _mm256_mul_ps(_mm256_loadu_ps(b.scale + j), input_scale);
      const __m256 bias = _mm256_loadu_ps(b.bias + j);
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r)
        store8(b.c + (r0 + r) * b.ldc + j, valid - 8 * h, epilogue(acc[r][p][h], scale, bias, b.activation, b.clip));
    }
  }
}

// Rows [r0, r0+MR) over panels [p_begin, p_end): NP panels at a time, then one by one.
template <typename W, typename A, int MR, int NP>
inline void row_strip(const DenseBlock& b, std::size_t r0, std::size_t p_begin, std::size_t p_end) {
  std::size_t p = p_begin;
  if constexpr (NP > 1)
    for (; p + NP <= p_end; p += NP) tile<W, A, MR, NP>(b, r0, p);
  // Leftover panels in one tile when it fits (a lone 1 x 16 tile has only 2 FMA chains: latency-bound).
  if constexpr (NP == 4) {
    if (p_end - p == 3) return tile<W, A, MR, 3>(b, r0, p);
    if (p_end - p == 2) return tile<W, A, MR, 2>(b, r0, p);
  }
  for (; p < p_end; ++p) tile<W, A, MR, 1>(b, r0, p);
}

// Panel groups outermost so a group's weights (4 panels x K x 16) stay in L2 while
// every row tile of the block passes over them: weights stream from memory once.
template <typename W, typename A>
void dense(const DenseBlock& b) {
  constexpr std::size_t kPanelsPerGroup = 4;
  for (std::size_t pg = b.panel_begin; pg < b.panel_end; pg += kPanelsPerGroup) {
    const std::size_t pe = std::min(pg + kPanelsPerGroup, b.panel_end);
    std::size_t r = b.row_begin;
    for (; r + 6 <= b.row_end; r += 6) row_strip<W, A, 6, 1>(b, r, pg, pe);
    switch (b.row_end - r) {
      case 1: row_strip<W, A, 1, 4>(b, r, pg, pe); break;
      case 2: row_strip<W, A, 2, 2>(b, r, pg, pe); break;
      case 3: row_strip<W, A, 3, 1>(b, r, pg, pe); break;
      case 4: row_strip<W, A, 4, 1>(b, r, pg, pe); break;
      case 5: row_strip<W, A, 5, 1>(b, r, pg, pe); break;
      default: break;
    }
  }
}

}  // namespace

void dense_f32w_f32x__avx2(const DenseBlock& b) { dense<float, float>(b); }
void dense_f32w_u8x__avx2(const DenseBlock& b) { dense<float, std::uint8_t>(b); }
void dense_f16w_f32x__avx2(const DenseBlock& b) { dense<std::uint16_t, float>(b); }
void dense_f16w_u8x__avx2(const DenseBlock& b) { dense<std::uint16_t, std::uint8_t>(b); }
void dense_i8w_f32x__avx2(const DenseBlock& b) { dense<std::int8_t, float>(b); }
void dense_i8w_u8x__avx2(const DenseBlock& b) { dense<std::int8_t, std::uint8_t>(b); }

void elu__avx2(const float* x, float* y, std::size_t n) {
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, avx2::elu(_mm256_loadu_ps(x + i)));
  if (i < n) store8(y + i, long(n - i), avx2::elu(avx2::load8(x + i, long(n - i))));
}

}  // namespace aefast
