// AVX512_BF16 kernels: bf16 activations x bf16 weights with fp32 accumulation (vdpbf16ps).
//
// vdpbf16ps does 32 multiply-adds (16 lanes x a pair) per zmm instruction; on Zen 4 one per cycle (110-117 G/s per
// core, twice the fp32 FMA rate). Its latency needs >= 6 independent accumulators; the main tile is 8 rows x 32
// columns (16 accumulators, 2 weight zmm per k-pair, the row's pair broadcast from memory), as for q8. Weights are
// packed [panel][K2][16][2] so one k-pair of one panel is one zmm. The epilogue stores float (last layer) or bf16
// (vcvtneps2bf16, the next layer's input, zero padded to an even width): no separate conversion pass between layers.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "avx512_lowp.h"
#include "avx512_lowp_tiles.h"
#include "simd_avx512.h"

namespace aefast {
namespace {

using avx512::lane_mask;
using avx512::PanelSum;

constexpr std::size_t kPairElems = kPanelWidth * kPairK;  // bf16 values in one k-pair of one panel: 32 = 1 zmm

// C[r0 .. r0 + MR, panels p0 .. p0 + NP] over all of K.
struct Bf16Tile {
  template <int MR, int NP>
  static void run(const Bf16DenseBlock& b, std::size_t r0, std::size_t p0) {
    const std::size_t k2 = pair_count(b.k);
    const std::size_t panel_stride = k2 * kPairElems;
    const std::uint16_t* w = b.packed_w + p0 * panel_stride;
    const std::uint16_t* a = b.a + r0 * b.lda;

    __m512 acc[MR][NP];
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 16
      for (int p = 0; p < NP; ++p) acc[r][p] = _mm512_setzero_ps();

    for (std::size_t q = 0; q < k2; ++q) {
      __m512bh wv[NP];
#pragma GCC unroll 16
      for (int p = 0; p < NP; ++p) {
        // Few rows: the weight streams are the bottleneck (see the q8 kernel); fetch them ahead into L1.
        if constexpr (MR <= 4) _mm_prefetch(reinterpret_cast<const char*>(w + p * panel_stride + (q + 8) * kPairElems), _MM_HINT_T0);
        wv[p] = (__m512bh)_mm512_loadu_si512(w + p * panel_stride + q * kPairElems);
      }
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r) {
        std::uint32_t pair;
        std::memcpy(&pair, a + r * b.lda + q * kPairK, 4);
        const __m512bh av = (__m512bh)_mm512_set1_epi32(int(pair));
#pragma GCC unroll 16
        for (int p = 0; p < NP; ++p) acc[r][p] = _mm512_dpbf16_ps(acc[r][p], wv[p], av);
      }
    }

    const __m512 input_scale = _mm512_set1_ps(b.input_scale);
    avx512::store_tile<MR, NP>(
        b, r0, p0,
        [&](int p, std::size_t) { return [&acc, p, input_scale](int r) { return PanelSum{acc[r][p], input_scale}; }; },
        [&](std::size_t row, std::size_t j, __mmask16 mask, __m512 v) {
          if (b.c_bf16)
            _mm256_mask_storeu_epi16(static_cast<std::uint16_t*>(b.c) + row * b.ldc + j, mask,
                                     (__m256i)_mm512_cvtneps_pbh(v));
          else
            _mm512_mask_storeu_ps(static_cast<float*>(b.c) + row * b.ldc + j, mask, v);
        });
  }
};

}  // namespace

// Loop order and tile shapes: avx512::run_tiles (8 x 32 main tiles in L2-sized panel groups of K x 32 bytes each),
// as the q8 kernel.
void dense_bf16__avx512bf16(const Bf16DenseBlock& b) {
  avx512::run_tiles<Bf16Tile>(b, b.k * kPairElems * 2 / kPairK);
  if (b.c_bf16 && b.n % 2 && b.panel_end * kPanelWidth >= b.n)
    for (std::size_t r = b.row_begin; r < b.row_end; ++r) static_cast<std::uint16_t*>(b.c)[r * b.ldc + b.n] = 0;
}

void to_bf16_rows__avx512bf16(const float* x, std::size_t ldx, std::size_t rows, std::size_t k, std::uint16_t* y,
                              std::size_t ldy) {
  for (std::size_t r = 0; r < rows; ++r) {
    std::size_t i = 0;
    for (; i < k; i += 16) {
      const __mmask16 m = lane_mask(long(k - i));
      _mm256_mask_storeu_epi16(y + r * ldy + i, m, (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, x + r * ldx + i)));
    }
    for (i = k; i < ldy; ++i) y[r * ldy + i] = 0;
  }
}

}  // namespace aefast
