// AVX-VNNI (VEX-encoded vpdpbusd on ymm: Intel Alder Lake and later, without AVX-512) kernel for quantized-activation
// int8 (q8): uint8 activations x int8 weights -> exact int32 sums, the same packed layout and contract as every q8
// kernel (dense.h Q8DenseBlock) and bit-identical results (the epilogue is simd_math.h's at 8 lanes).
//
// A packed k-quad of one 16-column panel is 64 bytes: columns 0..7 (4 k-bytes each) are one ymm, columns 8..15 the
// next, exactly the operand vpdpbusd ymm takes against a row's 4-byte quad broadcast to all lanes. VEX has 16
// registers: the default main tile is 6 rows x 16 columns = 12 accumulators + 2 weight registers + 1 broadcast (15),
// as the AVX2 fp32 tile (the family, kTiles below, also has 4x16, 5x16 and 2x32); leftover rows take wider tiles
// where they fit (1..2 rows x 32 columns; 3..5 rows x 16).
// Compiled with -mavx2 -mfma -mf16c -mavxvnni; dispatched only when CPUID reports AVX-VNNI.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "avxvnni.h"
#include "simd_avx2.h"

namespace aefast {
namespace {

constexpr std::size_t kQuadBytes = kPanelWidth * kQuadK;  // one k-quad of one panel: 64 bytes = 2 ymm

inline std::uint32_t load_quad(const std::uint8_t* a, std::size_t bytes) {
  std::uint32_t v = 0;
  std::memcpy(&v, a, bytes);  // bytes < 4 only for the last quad of an unpadded row: never reads past it
  return v;
}

// C[r0 .. r0 + MR, panels p0 .. p0 + NP] over all of K; the k loop unrolled KU times (the same steps in the same
// order).
template <int MR, int NP, int KU>
inline void tile(const Q8DenseBlock& b, std::size_t r0, std::size_t p0) {
  static_assert(2 * MR * NP + 2 * NP + 1 <= 16, "register tile too large");
  const std::size_t k4 = quad_count(b.k);
  const std::size_t full_quads = b.a_tail_safe ? k4 : b.k / kQuadK;
  const std::size_t panel_stride = k4 * kQuadBytes;
  const std::int8_t* w = b.packed_w + p0 * panel_stride;
  const std::uint8_t* a = b.a + r0 * b.lda;

  __m256i acc[MR][2 * NP];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 16
    for (int v = 0; v < 2 * NP; ++v) acc[r][v] = _mm256_setzero_si256();

  auto step = [&](std::size_t q, std::size_t bytes) {
    __m256i wv[2 * NP];
#pragma GCC unroll 16
    for (int v = 0; v < 2 * NP; ++v)
      wv[v] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + (v / 2) * panel_stride + q * kQuadBytes + (v % 2) * 32));
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const __m256i av = _mm256_set1_epi32(int(load_quad(a + r * b.lda + q * kQuadK, bytes)));
#pragma GCC unroll 16
      for (int v = 0; v < 2 * NP; ++v) acc[r][v] = _mm256_dpbusd_avx_epi32(acc[r][v], av, wv[v]);
    }
  };
  std::size_t q = 0;
  if constexpr (KU > 1)
    for (; q + KU <= full_quads; q += KU)
#pragma GCC unroll 8
      for (int u = 0; u < KU; ++u) step(q + u, kQuadK);
  for (; q < full_quads; ++q) step(q, kQuadK);
  if (full_quads < k4) step(full_quads, b.k - full_quads * kQuadK);

#pragma GCC unroll 16
  for (int v = 0; v < 2 * NP; ++v) {
    const std::size_t j = (p0 + v / 2) * kPanelWidth + (v % 2) * 8;  // columns j .. j + 7 (padded to 16 P)
    const __m256i colsum = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.colsum + j));
    const __m256 w_scale = _mm256_loadu_ps(b.w_scale + j), bias = _mm256_loadu_ps(b.bias + j);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const std::size_t row = r0 + r;
      const __m256i exact = _mm256_sub_epi32(acc[r][v], _mm256_mullo_epi32(_mm256_set1_epi32(b.a_zero[row]), colsum));
      const __m256 scale = _mm256_mul_ps(_mm256_set1_ps(b.a_scale[row]), w_scale);
      avx2::store8(b.c + row * b.ldc + j, long(b.n) - long(j),
                   avx2::epilogue(_mm256_cvtepi32_ps(exact), scale, bias, b.activation, b.clip));
    }
  }
}

// Rows [r0, r0 + MR) over panels [p, p_end): NP panels per tile, then one by one.
template <int MR, int NP, int KU>
inline void row_strip(const Q8DenseBlock& b, std::size_t r0, std::size_t p, std::size_t p_end) {
  for (; p + NP <= p_end; p += NP) tile<MR, NP, KU>(b, r0, p);
  if constexpr (NP > 1)
    for (; p < p_end; ++p) tile<MR, 1, KU>(b, r0, p);
}

// Panel groups of 4 outermost (4 x K x 16 bytes: 50 KB at K = 784, kept in L2 while every row tile passes over them),
// MR x 16 NP main tiles inside, the last rows (fewer than MR) in one strip of their own width.
template <int MR, int NP, int KU = 1>
void dense_tile(const Q8DenseBlock& b) {
  static_assert(MR <= 6, "leftover strips exist for 1..5 rows");
  constexpr std::size_t kPanelsPerGroup = 4;
  for (std::size_t pg = b.panel_begin; pg < b.panel_end; pg += kPanelsPerGroup) {
    const std::size_t pe = std::min(pg + kPanelsPerGroup, b.panel_end);
    std::size_t r = b.row_begin;
    for (; r + MR <= b.row_end; r += MR) row_strip<MR, NP, KU>(b, r, pg, pe);
    switch (b.row_end - r) {
      case 1: row_strip<1, 2, KU>(b, r, pg, pe); break;
      case 2: row_strip<2, 2, KU>(b, r, pg, pe); break;
      case 3: row_strip<3, 1, KU>(b, r, pg, pe); break;
      case 4: row_strip<4, 1, KU>(b, r, pg, pe); break;
      case 5: row_strip<5, 1, KU>(b, r, pg, pe); break;
      default: break;
    }
  }
}

// The tile family, named MR x columns (suffix kU: the k loop unrolled U times; ymm accumulators = 2 MR NP of the 16
// VEX registers); 6x16 first, the default.
const Q8Tile kTiles[] = {
    {"6x16", dense_tile<6, 1>},       {"4x16", dense_tile<4, 1>},       {"5x16", dense_tile<5, 1>},
    {"2x32", dense_tile<2, 2>},       {"6x16k2", dense_tile<6, 1, 2>},  {"6x16k4", dense_tile<6, 1, 4>},
    {"5x16k4", dense_tile<5, 1, 4>},
};

}  // namespace

const Q8TileTable q8_tiles__avxvnni = {kTiles, sizeof(kTiles) / sizeof(kTiles[0])};

void dense_q8__avxvnni(const Q8DenseBlock& b) { dense_tile<6, 1>(b); }

}  // namespace aefast
