// AMX kernels: quantized-activation int8 (q8, uint8 activations x int8 weights -> exact int32, tdpbusd) and bf16
// (bf16 pairs -> fp32 sums, tdpbf16ps; below the q8 part).
//
// Built with the AVX-512 flags plus -mavx512vnni -mamx-tile -mamx-int8 (CMakeLists.txt, by file name); call only when
// dispatch says the CPU has them AND the OS granted the tile data (cpu_features.cpp requests it once per process).
//
// Operands. The packed q8 weights ([panel][K4][16][4], dense.h) are already what tdpbusd wants as its B operand: one
// k-quad of one panel is a 64-byte tile row (16 columns x 4 k-bytes), so 16 consecutive quads of a panel (1 KB,
// stride 64) are one B tile covering 64 k. An A tile is 16 rows x 64 bytes of the activation rows (stride lda); a C
// tile is 16 rows x 16 int32 columns. With the 8 tile registers the main tile is 32 rows x 32 columns: 4 C tiles
// (tmm0-3), 2 A (tmm4-5), 2 B (tmm6-7); per 64 k, 4 tdpbusd (16 x 16 x 64 multiply-adds each) for 4 tile loads.
//
// Edges, exactly: N is padded to whole panels by the packing (zero weights; the epilogue masks the store); the K
// rest after the last whole 64 (K % 64 bytes, K4 % 16 quads) is copied into zero-filled 64-byte scratch rows for A
// and B (no read past a row's K bytes or a panel's K4 quads); rows below 16 at the end of a block run with a tile
// config of that many A and C rows (ldtilecfg clears the tiles, so a config only changes between tiles).
// Epilogue: the C tiles are stored to an int32 scratch (4 KB, in L1) and go through the same zero-point correction
// and float epilogue as the VNNI kernels (simd::epilogue): the outputs are bit-identical to every other q8 kernel.
//
// Tile config is per thread: every call loads it at entry and releases the tiles at exit (_tile_release), so any
// thread-pool worker can run it and no tile state outlives a call.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "amx.h"
#include "avx512_lowp.h"
#include "avx512_lowp_tiles.h"
#include "simd_avx512.h"

namespace aefast {
namespace {

using avx512::lane_mask;

constexpr std::size_t kQuadBytes = kPanelWidth * kQuadK;  // one k-quad of one panel: 64 bytes = one tile row
constexpr std::size_t kBlockK = 64;                        // k per tile step: 64 bytes of an A row
constexpr std::size_t kBlockQuads = kBlockK / kQuadK;      // 16 B tile rows
constexpr std::size_t kTileRows = 16;
constexpr std::size_t kMaxGroup = 8;                       // avx512::panels_per_group's largest group

// The ldtilecfg operand (palette 1): bytes 16.. column bytes per tile (uint16), 48.. rows per tile.
struct alignas(64) TileConfig {
  std::uint8_t palette = 1, start_row = 0, reserved[14] = {};
  std::uint16_t colsb[16] = {};
  std::uint8_t rows[16] = {};
};
static_assert(sizeof(TileConfig) == 64, "ldtilecfg reads 64 bytes");

// C tiles 0-3 and A tiles 4-5 with `rows` rows (1..16), B tiles 6-7 with 16 rows of 64 bytes.
inline void load_config(std::size_t rows) {
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.colsb[t] = 64;
    cfg.rows[t] = std::uint8_t(t < 6 ? rows : kTileRows);
  }
  _tile_loadconfig(&cfg);
}

// Scratch of one tile computation: the C tiles' int32 sums (32 x 32), and the K rest of A (32 rows) and B (2 panels)
// zero-padded to 64 bytes.
struct alignas(64) Scratch {
  std::int32_t c[2 * kTileRows][32];
  std::uint8_t a[2 * kTileRows][kBlockK];
  std::int8_t b[kMaxGroup][kBlockQuads][kQuadBytes];   // per panel of the current group, filled once per group
  std::size_t b_panel0 = 0;                            // the group's first panel (b[0])
};

// The K rest of panels [pg, pe) into s.b (zero rows after the panel's last quad).
inline void fill_b_rest(const Q8DenseBlock& b, std::size_t pg, std::size_t pe, Scratch& s) {
  const std::size_t k4 = quad_count(b.k), full = b.k / kBlockK;
  const std::size_t rest_quads = k4 - full * kBlockQuads;
  s.b_panel0 = pg;
  if (rest_quads == 0) return;
  for (std::size_t p = pg; p < pe; ++p) {
    std::memcpy(s.b[p - pg], b.packed_w + p * k4 * kQuadBytes + full * kBlockQuads * kQuadBytes,
                rest_quads * kQuadBytes);
    std::memset(s.b[p - pg][rest_quads], 0, (kBlockQuads - rest_quads) * kQuadBytes);
  }
}

// C[r0 .. r0 + rows, panels p0 .. p0 + NT] over all of K with MT (1 or 2) row tiles of `tile_rows` rows each (the
// loaded config's A and C rows); rows = MT * tile_rows, or fewer than 16 with MT = 1.
template <int MT, int NT>
void amx_tile(const Q8DenseBlock& b, std::size_t r0, std::size_t rows, std::size_t p0, Scratch& s) {
  const std::size_t k4 = quad_count(b.k);
  const std::size_t panel_stride = k4 * kQuadBytes;
  const std::int8_t* w = b.packed_w + p0 * panel_stride;
  const std::uint8_t* a = b.a + r0 * b.lda;
  const std::size_t tile_rows = MT == 2 ? kTileRows : rows;
  const std::size_t a1 = tile_rows * b.lda;  // the second row tile's offset in A

  _tile_zero(0);
  if constexpr (NT == 2) _tile_zero(1);
  if constexpr (MT == 2) _tile_zero(2);
  if constexpr (MT == 2 && NT == 2) _tile_zero(3);
  auto step = [&](const void* a0, const void* a1p, std::size_t lda, const void* b0, const void* b1, std::size_t ldb) {
    _tile_loadd(6, b0, ldb);
    if constexpr (NT == 2) _tile_loadd(7, b1, ldb);
    _tile_loadd(4, a0, lda);
    _tile_dpbusd(0, 4, 6);
    if constexpr (NT == 2) _tile_dpbusd(1, 4, 7);
    if constexpr (MT == 2) {
      _tile_loadd(5, a1p, lda);
      _tile_dpbusd(2, 5, 6);
      if constexpr (NT == 2) _tile_dpbusd(3, 5, 7);
    }
  };
  const std::size_t full = b.k / kBlockK;
  for (std::size_t kb = 0; kb < full; ++kb) {
    const std::int8_t* wk = w + kb * kBlockQuads * kQuadBytes;
    step(a + kb * kBlockK, a + a1 + kb * kBlockK, b.lda, wk, wk + panel_stride, kQuadBytes);
  }
  if (full * kBlockK < b.k) {
    const std::size_t rest = b.k - full * kBlockK;
    for (std::size_t r = 0; r < rows; ++r) {
      std::memcpy(s.a[r], a + r * b.lda + full * kBlockK, rest);
      std::memset(s.a[r] + rest, 0, kBlockK - rest);
    }
    const std::size_t pb = p0 - s.b_panel0;
    step(s.a[0], s.a[tile_rows], kBlockK, s.b[pb], s.b[pb + NT - 1], kQuadBytes);
  }
  constexpr std::size_t ldc = sizeof s.c[0];
  _tile_stored(0, &s.c[0][0], ldc);
  if constexpr (NT == 2) _tile_stored(1, &s.c[0][16], ldc);
  if constexpr (MT == 2) _tile_stored(2, &s.c[16][0], ldc);
  if constexpr (MT == 2 && NT == 2) _tile_stored(3, &s.c[16][16], ldc);

  // The VNNI kernels' epilogue (avx512::store_tile) with a run-time row count: exact int32 less zero * colsum, to
  // float, * (row scale * channel scale) + bias, activation, clip; masked store of the columns below n.
  for (int p = 0; p < NT; ++p) {
    const std::size_t j = (p0 + p) * kPanelWidth;
    const __mmask16 mask = lane_mask(long(b.n) - long(j));
    const __m512 bias = _mm512_loadu_ps(b.bias + j);
    const __m512i colsum = _mm512_loadu_si512(b.colsum + j);
    const __m512 w_scale = _mm512_loadu_ps(b.w_scale + j);
    for (std::size_t r = 0; r < rows; ++r) {
      const std::size_t row = r0 + r;
      const __m512i acc = _mm512_loadu_si512(&s.c[r][16 * p]);
      const __m512i exact = _mm512_sub_epi32(acc, _mm512_mullo_epi32(_mm512_set1_epi32(b.a_zero[row]), colsum));
      const __m512 scale = _mm512_mul_ps(_mm512_set1_ps(b.a_scale[row]), w_scale);
      _mm512_mask_storeu_ps(b.c + row * b.ldc + j, mask,
                            simd::epilogue<avx512::F32x16>(_mm512_cvtepi32_ps(exact), scale, bias, b.activation, b.clip));
    }
  }
}

// Rows [r0, r0 + rows) over panels [p, p_end): 2 panels per tile, a last odd panel alone.
template <int MT>
void amx_strip(const Q8DenseBlock& b, std::size_t r0, std::size_t rows, std::size_t p, std::size_t p_end, Scratch& s) {
  for (; p + 2 <= p_end; p += 2) amx_tile<MT, 2>(b, r0, rows, p, s);
  if (p < p_end) amx_tile<MT, 1>(b, r0, rows, p, s);
}

// Blocks of fewer rows run the VNNI kernel's 8x32k4 tile (the built-in choice on the Intel Xeon measured; exact int32
// sums, so the same outputs). Measured there (one core, loaded machine, docs/engine.md "AMX"): at 1-8 rows the VNNI
// tile ran the 784x1000 and 1000x784 layers 1.2-2.2x faster than 16-row AMX tiles holding mostly padding; at 12-16
// rows AMX was 1.1-1.3x faster.
constexpr std::size_t kAmxMinRows = 12;

void q8_vnni_for_amx(const Q8DenseBlock& b) {
  static const Q8DenseFn vnni = [] {
    for (std::size_t i = 0; i < q8_tiles__avx512vnni.count; ++i)
      if (std::strcmp(q8_tiles__avx512vnni.tiles[i].name, "8x32k4") == 0) return q8_tiles__avx512vnni.tiles[i].dense;
    return q8_tiles__avx512vnni.tiles[0].dense;
  }();
  vnni(b);
}

// The whole block: panel groups outermost (as the VNNI kernels: a group stays in L2 while the row tiles pass), then
// strips of MT x 16 rows, then one strip of 16, then the last rows (< 16) under a config of that many rows.
template <int MT>
void dense_q8_amx(const Q8DenseBlock& b) {
  const std::size_t rows = b.row_end - b.row_begin;
  if (rows < kAmxMinRows) {
    // Few rows: a 16-row tile would compute mostly padding; the VNNI tile is as fast or faster there (measured,
    // docs/engine.md "AMX"). Exact int32 sums either way: the outputs are the same.
    q8_vnni_for_amx(b);
    return;
  }
  Scratch s;
  const std::size_t group = avx512::panels_per_group(b.k * kQuadBytes / kQuadK);
  std::size_t config_rows = kTileRows;
  load_config(config_rows);
  for (std::size_t pg = b.panel_begin; pg < b.panel_end; pg += group) {
    const std::size_t pe = std::min(pg + group, b.panel_end);
    fill_b_rest(b, pg, pe, s);
    if (config_rows != kTileRows) load_config(config_rows = kTileRows);
    std::size_t r = b.row_begin;
    for (; r + MT * kTileRows <= b.row_end; r += MT * kTileRows) amx_strip<MT>(b, r, MT * kTileRows, pg, pe, s);
    if (MT == 2 && r + kTileRows <= b.row_end) {
      amx_strip<1>(b, r, kTileRows, pg, pe, s);
      r += kTileRows;
    }
    if (r < b.row_end) {
      load_config(config_rows = b.row_end - r);
      amx_strip<1>(b, r, b.row_end - r, pg, pe, s);
    }
  }
  _tile_release();
}

// ---- bf16: tdpbf16ps (bf16 pairs -> fp32). The packed bf16 weights ([panel][K2][16][2]) are B tiles as they are: a
// k-pair of a panel is a 64-byte tile row, 16 pairs (32 k) one B tile; an A tile is 16 rows x 32 bf16.
constexpr std::size_t kPairBytes = kPanelWidth * kPairK * 2;   // one k-pair of one panel: 64 bytes
constexpr std::size_t kBlockPairs = 16;                         // B tile rows: 32 k
constexpr std::size_t kPairElems = kPanelWidth * kPairK;        // bf16 values per k-pair of a panel

struct alignas(64) Bf16Scratch {
  float c[2 * kTileRows][32];
  std::uint16_t a[2 * kTileRows][2 * kBlockPairs];
  std::uint16_t b[kMaxGroup][kBlockPairs][kPairElems];
  std::size_t b_panel0 = 0;
};

inline void fill_b_rest(const Bf16DenseBlock& b, std::size_t pg, std::size_t pe, Bf16Scratch& s) {
  const std::size_t k2 = pair_count(b.k), full = k2 / kBlockPairs, rest = k2 - full * kBlockPairs;
  s.b_panel0 = pg;
  if (rest == 0) return;
  for (std::size_t p = pg; p < pe; ++p) {
    std::memcpy(s.b[p - pg], b.packed_w + p * k2 * kPairElems + full * kBlockPairs * kPairElems, rest * kPairBytes);
    std::memset(s.b[p - pg][rest], 0, (kBlockPairs - rest) * kPairBytes);
  }
}

template <int MT, int NT>
void amx_bf16_tile(const Bf16DenseBlock& b, std::size_t r0, std::size_t rows, std::size_t p0, Bf16Scratch& s) {
  const std::size_t k2 = pair_count(b.k);
  const std::size_t panel_stride = k2 * kPairElems;
  const std::uint16_t* w = b.packed_w + p0 * panel_stride;
  const std::uint16_t* a = b.a + r0 * b.lda;
  const std::size_t tile_rows = MT == 2 ? kTileRows : rows;
  const std::size_t a1 = tile_rows * b.lda;

  _tile_zero(0);
  if constexpr (NT == 2) _tile_zero(1);
  if constexpr (MT == 2) _tile_zero(2);
  if constexpr (MT == 2 && NT == 2) _tile_zero(3);
  auto step = [&](const void* a0, const void* a1p, std::size_t lda, const void* b0, const void* b1) {
    _tile_loadd(6, b0, kPairBytes);
    if constexpr (NT == 2) _tile_loadd(7, b1, kPairBytes);
    _tile_loadd(4, a0, lda);
    _tile_dpbf16ps(0, 4, 6);
    if constexpr (NT == 2) _tile_dpbf16ps(1, 4, 7);
    if constexpr (MT == 2) {
      _tile_loadd(5, a1p, lda);
      _tile_dpbf16ps(2, 5, 6);
      if constexpr (NT == 2) _tile_dpbf16ps(3, 5, 7);
    }
  };
  const std::size_t full = k2 / kBlockPairs, kblock = 2 * kBlockPairs;
  for (std::size_t kb = 0; kb < full; ++kb) {
    const std::uint16_t* wk = w + kb * kBlockPairs * kPairElems;
    step(a + kb * kblock, a + a1 + kb * kblock, b.lda * 2, wk, wk + panel_stride);
  }
  if (full * kBlockPairs < k2) {
    // A rows are readable and zero padded up to 2 K2 (dense.h), so whole pairs are copied.
    const std::size_t rest = 2 * (k2 - full * kBlockPairs);
    for (std::size_t r = 0; r < rows; ++r) {
      std::memcpy(s.a[r], a + r * b.lda + full * kblock, rest * 2);
      std::memset(s.a[r] + rest, 0, (kblock - rest) * 2);
    }
    const std::size_t pb = p0 - s.b_panel0;
    step(s.a[0], s.a[tile_rows], kblock * 2, s.b[pb], s.b[pb + NT - 1]);
  }
  constexpr std::size_t ldc = sizeof s.c[0];
  _tile_stored(0, &s.c[0][0], ldc);
  if constexpr (NT == 2) _tile_stored(1, &s.c[0][16], ldc);
  if constexpr (MT == 2) _tile_stored(2, &s.c[16][0], ldc);
  if constexpr (MT == 2 && NT == 2) _tile_stored(3, &s.c[16][16], ldc);

  // The avx512bf16 kernel's epilogue: act(acc * input_scale + bias), clip; float or bf16 bits (round to nearest even).
  const __m512 input_scale = _mm512_set1_ps(b.input_scale);
  for (int p = 0; p < NT; ++p) {
    const std::size_t j = (p0 + p) * kPanelWidth;
    const __mmask16 mask = lane_mask(long(b.n) - long(j));
    const __m512 bias = _mm512_loadu_ps(b.bias + j);
    for (std::size_t r = 0; r < rows; ++r) {
      const std::size_t row = r0 + r;
      const __m512 v = simd::epilogue<avx512::F32x16>(_mm512_loadu_ps(&s.c[r][16 * p]), input_scale, bias,
                                                      b.activation, b.clip);
      if (b.c_bf16)
        _mm256_mask_storeu_epi16(static_cast<std::uint16_t*>(b.c) + row * b.ldc + j, mask,
                                 (__m256i)_mm512_cvtneps_pbh(v));
      else
        _mm512_mask_storeu_ps(static_cast<float*>(b.c) + row * b.ldc + j, mask, v);
    }
  }
}

template <int MT>
void amx_bf16_strip(const Bf16DenseBlock& b, std::size_t r0, std::size_t rows, std::size_t p, std::size_t p_end,
                    Bf16Scratch& s) {
  for (; p + 2 <= p_end; p += 2) amx_bf16_tile<MT, 2>(b, r0, rows, p, s);
  if (p < p_end) amx_bf16_tile<MT, 1>(b, r0, rows, p, s);
}

// Every row count runs on AMX (no hand-off to the avx512bf16 kernel for few rows as in q8): its sums are in another
// order, and a layer's outputs must not depend on the batch size or the thread split.
template <int MT>
void dense_bf16_amx(const Bf16DenseBlock& b) {
  Bf16Scratch s;
  const std::size_t group = avx512::panels_per_group(b.k * kPairElems * 2 / kPairK);
  std::size_t config_rows = kTileRows;
  load_config(config_rows);
  for (std::size_t pg = b.panel_begin; pg < b.panel_end; pg += group) {
    const std::size_t pe = std::min(pg + group, b.panel_end);
    fill_b_rest(b, pg, pe, s);
    if (config_rows != kTileRows) load_config(config_rows = kTileRows);
    std::size_t r = b.row_begin;
    for (; r + MT * kTileRows <= b.row_end; r += MT * kTileRows) amx_bf16_strip<MT>(b, r, MT * kTileRows, pg, pe, s);
    if (MT == 2 && r + kTileRows <= b.row_end) {
      amx_bf16_strip<1>(b, r, kTileRows, pg, pe, s);
      r += kTileRows;
    }
    if (r < b.row_end) {
      load_config(config_rows = b.row_end - r);
      amx_bf16_strip<1>(b, r, b.row_end - r, pg, pe, s);
    }
  }
  _tile_release();
  if (b.c_bf16 && b.n % 2 && b.panel_end * kPanelWidth >= b.n)
    for (std::size_t r = b.row_begin; r < b.row_end; ++r) static_cast<std::uint16_t*>(b.c)[r * b.ldc + b.n] = 0;
}

// The family: rows x columns of the main tile (C tiles 1 x 2 or 2 x 2). 16x32 first, the default: over 96 rows it
// measured 1.0-1.3x the rate of 32x32 on the default model's layers (Intel Xeon, family 6 model 167).
const Q8Tile kTiles[] = {{"16x32", dense_q8_amx<1>}, {"32x32", dense_q8_amx<2>}};

}  // namespace

const Q8TileTable q8_tiles__amx = {kTiles, sizeof(kTiles) / sizeof(kTiles[0])};

void dense_q8__amx(const Q8DenseBlock& b) { dense_q8_amx<1>(b); }

void dense_bf16__amx(const Bf16DenseBlock& b) { dense_bf16_amx<1>(b); }

}  // namespace aefast
