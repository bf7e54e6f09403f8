// AVX-512 fused dense + bias + activation kernels over the packed panels of dense.h.
//
// A packed panel is 16 columns: one zmm (or two ymm: the f16 tiles on Zen 4). Register tile: MR rows x NP panels,
// MR * NP panel accumulators, NP panels of weights and one broadcast register, of 32 registers.
// Zen 4 retires one 512-bit FMA per cycle (two 256-bit pipes, 117 GFLOP/s at 3.66 GHz, the
// same as AVX2) with 4-cycle latency, so a tile needs >= 4 independent accumulators and few
// loads per FMA: the gain over AVX2 is the larger register tile (fewer loads and broadcasts per
// FMA, wide tiles for small batches), not a higher peak. Tile shapes and measured speed:
// docs/engine.md "Tiles (AVX-512)".
// Every tile accumulates each output in k order from zero with FMA, so a row's result does
// not depend on its tile, and equals the AVX2 kernels' result bit for bit.
// This file is compiled with AVX-512 flags: it uses no out-of-line standard-library templates
// (their merged copies could be picked for code that runs on CPUs without AVX-512).
#include "avx512.h"

#include <immintrin.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "simd_avx512.h"

namespace aefast {
namespace {

// Vector width of a tile's inner loop. Zmm: one register per 16-column panel; f32 weights are loaded as they are,
// f16 weights are one 256-bit load and a vcvtph2ps zmm per panel and k, in the weight load.
struct Zmm {
  using T = __m512;
  static constexpr int kPerPanel = 1;
  static T zero() { return _mm512_setzero_ps(); }
  static T load(const float* w) { return _mm512_loadu_ps(w); }
  static T load(const std::uint16_t* w) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w)));
  }
  // One input element broadcast to all lanes (uint8 widened here, in the A-tile load).
  static T broadcast(const float* a) { return _mm512_set1_ps(*a); }
  static T broadcast(const std::uint8_t* a) { return _mm512_set1_ps(float(*a)); }
  static T fma(T a, T b, T c) { return _mm512_fmadd_ps(a, b, c); }
  static __m512 panel(const T* v) { return v[0]; }
};
// Ymm: two per panel, all 32 registers (EVEX), f16 weights widened by vcvtph2ps ymm (the f16 tiles of CPUs whose
// 512-bit units are two 256-bit halves: f16_ymm_tiles below).
struct Ymm {
  using T = __m256;
  static constexpr int kPerPanel = 2;
  static T zero() { return _mm256_setzero_ps(); }
  static T load(const float* w) { return _mm256_loadu_ps(w); }
  static T load(const std::uint16_t* w) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w))); }
  static T broadcast(const float* a) { return _mm256_set1_ps(*a); }
  static T broadcast(const std::uint8_t* a) { return _mm256_set1_ps(float(*a)); }
  static T fma(T a, T b, T c) { return _mm256_fmadd_ps(a, b, c); }
  static __m512 panel(const T* v) { return _mm512_insertf32x8(_mm512_castps256_ps512(v[0]), v[1], 1); }
};

using avx512::lane_mask;
using avx512::PanelSum;

// C[r0 .. r0+MR, panels p0 .. p0+NP] for all K; w points at panel p0's packed weights (w[k * 16 + c]; the next
// panel starts K * 16 weights further on).
template <typename V, typename W, typename A, int MR, int NP>
inline void tile(const DenseBlock& b, const W* w, std::size_t r0, std::size_t p0) {
  constexpr int kVecs = NP * V::kPerPanel;  // weight vectors per k
  constexpr int kLanes = int(kPanelWidth) / V::kPerPanel;
  static_assert(MR * kVecs + kVecs + 1 <= 32, "register tile too large");
  const std::size_t panel_stride = b.k * kPanelWidth;
  const A* a = static_cast<const A*>(b.a) + r0 * b.lda;

  typename V::T acc[MR][kVecs];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 16
    for (int v = 0; v < kVecs; ++v) acc[r][v] = V::zero();

  for (std::size_t k = 0; k < b.k; ++k) {
    const W* wk = w + k * kPanelWidth;
    typename V::T wv[kVecs];
#pragma GCC unroll 16
    for (int v = 0; v < kVecs; ++v) {
      wv[v] = V::load(wk + (v / V::kPerPanel) * panel_stride + (v % V::kPerPanel) * kLanes);
      // Keep the weights in registers: GCC would otherwise fold the load into every row's FMA
      // (MR loads per weight vector instead of one; 3 x 4 zmm ran at 62 instead of 112 GFLOP/s).
      __asm__("" : "+v"(wv[v]));
    }
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const typename V::T av = V::broadcast(a + r * b.lda + k);
#pragma GCC unroll 16
      for (int v = 0; v < kVecs; ++v) acc[r][v] = V::fma(av, wv[v], acc[r][v]);
    }
  }

  const __m512 input_scale = _mm512_set1_ps(b.input_scale);
  avx512::store_tile<MR, NP>(
      b, r0, p0,
      [&](int p, std::size_t j) {
        const __m512 scale = _mm512_mul_ps(_mm512_loadu_ps(b.scale + j), input_scale);
        return [&acc, p, scale](int r) { return PanelSum{V::panel(&acc[r][p * V::kPerPanel]), scale}; };
      },
      [&](std::size_t row, std::size_t j, __mmask16 mask, __m512 v) {
        _mm512_mask_storeu_ps(b.c + row * b.ldc + j, mask, v);
      });
}

// Rows [r0, r0+MR) over panels [p_begin, p_end) (weights from w, panel p_begin's): NP panels at a time, then the
// rest in one tile.
template <typename V, typename W, typename A, int MR, int NP>
inline void row_strip(const DenseBlock& b, const W* w, std::size_t r0, std::size_t p_begin, std::size_t p_end) {
  const std::size_t panel_stride = b.k * kPanelWidth;
  std::size_t p = p_begin;
  for (; p + NP <= p_end; p += NP) tile<V, W, A, MR, NP>(b, w + (p - p_begin) * panel_stride, r0, p);
  const W* rest = w + (p - p_begin) * panel_stride;
  if constexpr (NP > 1) {
    switch (p_end - p) {
      case 1: return tile<V, W, A, MR, 1>(b, rest, r0, p);
      case 2: if constexpr (NP > 2) return tile<V, W, A, MR, 2>(b, rest, r0, p); break;
      case 3: if constexpr (NP > 3) return tile<V, W, A, MR, 3>(b, rest, r0, p); break;
      default: break;
    }
  }
}

// Panels per tile for a strip of `rows` rows: the most of 4, 2, 1 (so full 4-panel groups split evenly) whose
// accumulators, weights and broadcast fit the 32 registers: 1..6 rows x 4 panels (64 columns: small batches still
// get >= 4 FMA chains and few loads per FMA), 7..8 rows x 2; with Ymm (two registers per panel) 1..2 rows x 4,
// 3..6 x 2, 7..8 x 1.
template <typename V>
constexpr int panels_per_tile(int rows) {
  const auto fits = [rows](int np) { return (rows + 1) * np * V::kPerPanel + 1 <= 32; };
  return fits(4) ? 4 : fits(2) ? 2 : 1;
}

// Rows [r0, r0+rows), 1 <= rows <= 8, over panels [p_begin, p_end) (weights from w); each weight is read once.
template <typename V, typename W, typename A>
void strip(const DenseBlock& b, const W* w, std::size_t r0, std::size_t rows, std::size_t p_begin, std::size_t p_end) {
  switch (rows) {
    case 1: return row_strip<V, W, A, 1, panels_per_tile<V>(1)>(b, w, r0, p_begin, p_end);
    case 2: return row_strip<V, W, A, 2, panels_per_tile<V>(2)>(b, w, r0, p_begin, p_end);
    case 3: return row_strip<V, W, A, 3, panels_per_tile<V>(3)>(b, w, r0, p_begin, p_end);
    case 4: return row_strip<V, W, A, 4, panels_per_tile<V>(4)>(b, w, r0, p_begin, p_end);
    case 5: return row_strip<V, W, A, 5, panels_per_tile<V>(5)>(b, w, r0, p_begin, p_end);
    case 6: return row_strip<V, W, A, 6, panels_per_tile<V>(6)>(b, w, r0, p_begin, p_end);
    case 7: return row_strip<V, W, A, 7, panels_per_tile<V>(7)>(b, w, r0, p_begin, p_end);
    case 8: return row_strip<V, W, A, 8, panels_per_tile<V>(8)>(b, w, r0, p_begin, p_end);
    default: return;
  }
}

// Every row strip of the block over panels [pg, pe), whose weights start at w (panel pg's). Rows go in strips of
// 8; the last 9..15 rows are split into two strips of 4..8 rather than 8 + a 1..7-row strip (a 1-row strip
// streams the group from L2 at ~40% of peak).
template <typename V, typename W, typename A>
void group_rows(const DenseBlock& b, const W* w, std::size_t pg, std::size_t pe) {
  constexpr std::size_t kRows = 8;
  std::size_t r = b.row_begin;
  for (; b.row_end - r >= 2 * kRows; r += kRows) strip<V, W, A>(b, w, r, kRows, pg, pe);
  const std::size_t rest = b.row_end - r;  // 0..15
  const std::size_t first = rest > kRows ? rest - rest / 2 : rest;
  strip<V, W, A>(b, w, r, first, pg, pe);
  strip<V, W, A>(b, w, r + first, rest - first, pg, pe);
}

// Panel groups of 4 outermost so a group's weights (4 panels x K x 16) stay in L2 while every row strip of the
// block passes over them: weights stream from memory once.
template <typename W, typename A, typename V = Zmm>
void dense_panels(const DenseBlock& b) {
  constexpr std::size_t kPanelsPerGroup = 4;
  const W* packed = static_cast<const W*>(b.packed_w);
  for (std::size_t pg = b.panel_begin; pg < b.panel_end; pg += kPanelsPerGroup) {
    const std::size_t pe = b.panel_end - pg > kPanelsPerGroup ? pg + kPanelsPerGroup : b.panel_end;
    group_rows<V, W, A>(b, packed + pg * b.k * kPanelWidth, pg, pe);
  }
}

// ---- f16 weights: the zmm and the ymm tiles ---------------------------------------------------------------------
// zmm (one 256-bit load + vcvtph2ps zmm per panel and k) wherever a 512-bit FMA is one full-width operation; ymm on
// CPUs that split it into two 256-bit halves (AMD family 25 with AVX-512, Zen 4), where vcvtph2ps zmm issues at one
// per 2 cycles and stalls the FMAs (there: batch 1 at 55 GFLOP/s with zmm against 86 with ymm). Measured on the
// Intel Xeon of this project's machines (family 6 model 167), one core, kernel_bench: zmm against ymm, 1 x 784 x
// 1000: 62 against 51 GFLOP/s; 16 x 784 x 1000: 149 against 86; 96 x 1000 x 1000: 141 against 78 (fp32 weights:
// 17, 120, 114: f16 halves the weight bytes the tiles stream from L2 and L3). Which one a layer runs is chosen in
// Python (aefast/engine/tiles.py: pinned, measured or the built-in table) and passed in as a tile index. Both run
// every output as one FMA chain in k order, so the choice never changes a result.

}  // namespace

const F16Tile kF16Tiles[] = {
    {"zmm", {dense_panels<std::uint16_t, float, Zmm>, dense_panels<std::uint16_t, std::uint8_t, Zmm>}},
    {"ymm", {dense_panels<std::uint16_t, float, Ymm>, dense_panels<std::uint16_t, std::uint8_t, Ymm>}},
};
const F16TileTable f16_tiles__avx512 = {kF16Tiles, 2};

void dense_f32w_f32x__avx512(const DenseBlock& b) { dense_panels<float, float>(b); }
void dense_f32w_u8x__avx512(const DenseBlock& b) { dense_panels<float, std::uint8_t>(b); }
void dense_f16w_f32x__avx512(const DenseBlock& b) { dense_panels<std::uint16_t, float, Zmm>(b); }
void dense_f16w_u8x__avx512(const DenseBlock& b) { dense_panels<std::uint16_t, std::uint8_t, Zmm>(b); }

void elu__avx512(const float* x, float* y, std::size_t n) {
  std::size_t i = 0;
  for (; i + kPanelWidth <= n; i += kPanelWidth) _mm512_storeu_ps(y + i, avx512::elu(_mm512_loadu_ps(x + i)));
  if (i < n) {
    const __mmask16 mask = lane_mask(long(n - i));
    _mm512_mask_storeu_ps(y + i, mask, avx512::elu(_mm512_maskz_loadu_ps(mask, x + i)));
  }
}

}  // namespace aefast
