// AMX kernels: quantized-activation int8 (q8, uint8 activations x int8 weights -> exact int32, tdpbusd) and bf16
// (bf16 pairs -> fp32 sums, tdpbf16ps; below the q8 part).
//
// Built with the AVX-512 flags plus -mavx512vnni -mavx512bf16 -mamx-tile -mamx-int8 -mamx-bf16 (CMakeLists.txt, by
// file name); call only when dispatch says the CPU has what each entry needs AND the OS granted the tile data (cpu_features.cpp requests it once per process).
//
// Operands. The packed q8 weights ([panel][K4][16][4], dense.h) are already what tdpbusd wants as its B operand: one
// k-quad of one panel is a 64-byte tile row (16 columns x 4 k-bytes), so 16 consecutive quads of a panel (1 KB,
// stride 64) are one B tile covering 64 k; likewise the packed bf16 weights ([panel][K2][16][2]) for tdpbf16ps, a
// k-pair per tile row, 32 k per B tile. An A tile is 16 rows x 64 bytes of the activation rows (stride lda); a C
// tile is 16 rows x 16 int32 (q8) or fp32 (bf16) columns. With the 8 tile registers the main tile is 32 rows x 32 columns: 4 C tiles
// (tmm0-3), 2 A (tmm4-5), 2 B (tmm6-7); per 64 k, 4 tdpbusd (16 x 16 x 64 multiply-adds each) for 4 tile loads.
//
// Edges, exactly: N is padded to whole panels by the packing (zero weights; the epilogue masks the store); the K
// rest after the last whole 64 bytes of A (K4 % 16 quads, K2 % 16 pairs) is copied into zero-filled 64-byte scratch rows for A
// and B (no read past a row's K bytes or a panel's K4 quads); rows below 16 at the end of a block run with a tile
// config of that many A and C rows (ldtilecfg clears the tiles, so a config only changes between tiles).
// Epilogue: the C tiles are stored to a scratch (4 KB, in L1) and go through the same zero-point correction and float
// epilogue as the VNNI kernels (simd::epilogue): q8 outputs are bit-identical to every other q8 kernel. bf16 sums
// follow tdpbf16ps's order, not vdpbf16ps's: close to the other bf16 kernels (the fp32 sum bound), not identical.
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

// One k-group of one panel (a k-quad of int8 or a k-pair of bf16: 16 columns x 4 bytes) is one B tile row.
constexpr std::size_t kGroupBytes = kPanelWidth * kQuadK;
constexpr std::size_t kStepBytes = 64;     // bytes of an A row per tile step (64 int8 or 32 bf16 k)
constexpr std::size_t kStepGroups = 16;    // B tile rows per step
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

// What differs between the two computes: A element size, what one B tile row packs (a k-quad of int8 or a k-pair of
// bf16: 64 bytes of a panel either way), the dot-product instruction and the epilogue. (The tile intrinsics are
// macros that paste their register numbers into the assembly: hence a macro, not a template, picks the instruction.)
//   a_bytes: how many bytes of every A row may be read whole (q8: K, as a user row may end there, dense.h
//            a_tail_safe; bf16: 2 K2 values, zero padded by contract); groups: B tile rows per panel (K4, K2).
struct Q8Ops {
  using Block = Q8DenseBlock;
  using Acc = std::int32_t;
  static constexpr std::size_t elem = 1;
  static std::size_t groups(const Block& b) { return quad_count(b.k); }
  static std::size_t a_bytes(const Block& b) { return b.k; }
  static constexpr bool bf16 = false;   // tdpbusd
  // The VNNI kernels' epilogue (avx512::store_tile) with a run-time row count: exact int32 less zero * colsum, to
  // float, * (row scale * channel scale) + bias, activation, clip; masked store of the columns below n.
  static void store(const Block& b, std::size_t r0, std::size_t rows, std::size_t j, const Acc* c, std::size_t ldc) {
    const __mmask16 mask = lane_mask(long(b.n) - long(j));
    const __m512 bias = _mm512_loadu_ps(b.bias + j);
    const __m512i colsum = _mm512_loadu_si512(b.colsum + j);
    const __m512 w_scale = _mm512_loadu_ps(b.w_scale + j);
    for (std::size_t r = 0; r < rows; ++r) {
      const std::size_t row = r0 + r;
      const __m512i acc = _mm512_loadu_si512(c + r * ldc);
      const __m512i exact = _mm512_sub_epi32(acc, _mm512_mullo_epi32(_mm512_set1_epi32(b.a_zero[row]), colsum));
      const __m512 scale = _mm512_mul_ps(_mm512_set1_ps(b.a_scale[row]), w_scale);
      _mm512_mask_storeu_ps(b.c + row * b.ldc + j, mask,
                            simd::epilogue<avx512::F32x16>(_mm512_cvtepi32_ps(exact), scale, bias, b.activation, b.clip));
    }
  }
};

struct Bf16Ops {
  using Block = Bf16DenseBlock;
  using Acc = float;
  static constexpr std::size_t elem = 2;
  static std::size_t groups(const Block& b) { return pair_count(b.k); }
  static std::size_t a_bytes(const Block& b) { return 2 * kPairK * pair_count(b.k); }
  static constexpr bool bf16 = true;    // tdpbf16ps
  // The avx512bf16 kernel's epilogue: act(acc * input_scale + bias), clip; float or bf16 bits (nearest even).
  static void store(const Block& b, std::size_t r0, std::size_t rows, std::size_t j, const Acc* c, std::size_t ldc) {
    const __mmask16 mask = lane_mask(long(b.n) - long(j));
    const __m512 bias = _mm512_loadu_ps(b.bias + j), input_scale = _mm512_set1_ps(b.input_scale);
    for (std::size_t r = 0; r < rows; ++r) {
      const std::size_t row = r0 + r;
      const __m512 v = simd::epilogue<avx512::F32x16>(_mm512_loadu_ps(c + r * ldc), input_scale, bias, b.activation,
                                                      b.clip);
      if (b.c_bf16)
        _mm256_mask_storeu_epi16(static_cast<std::uint16_t*>(b.c) + row * b.ldc + j, mask,
                                 (__m256i)_mm512_cvtneps_pbh(v));
      else
        _mm512_mask_storeu_ps(static_cast<float*>(b.c) + row * b.ldc + j, mask, v);
    }
  }
};

// Scratch of one block: the C tiles' sums (32 x 32), the K rest of A (32 rows) zero-padded to 64 bytes, and the K
// rest of each panel of the current group (16 B rows of 64 bytes, zero after the panel's last k-group).
template <class Ops>
struct alignas(64) Scratch {
  typename Ops::Acc c[2 * kTileRows][32];
  std::uint8_t a[2 * kTileRows][kStepBytes];
  std::uint8_t b[kMaxGroup][kStepGroups][kGroupBytes];
  std::size_t b_panel0 = 0;   // the group's first panel (b[0])
};

inline const std::uint8_t* bytes(const void* p) { return static_cast<const std::uint8_t*>(p); }

// The K rest of panels [pg, pe) into s.b.
template <class Ops>
void fill_b_rest(const typename Ops::Block& b, std::size_t pg, std::size_t pe, Scratch<Ops>& s) {
  const std::size_t g = Ops::groups(b), full = Ops::a_bytes(b) / kStepBytes, rest = g - full * kStepGroups;
  s.b_panel0 = pg;
  if (rest == 0) return;
  for (std::size_t p = pg; p < pe; ++p) {
    std::memcpy(s.b[p - pg], bytes(b.packed_w) + (p * g + full * kStepGroups) * kGroupBytes, rest * kGroupBytes);
    std::memset(s.b[p - pg][rest], 0, (kStepGroups - rest) * kGroupBytes);
  }
}

// C[r0 .. r0 + rows, panels p0 .. p0 + NT] over all of K with MT (1 or 2) row tiles of `tile_rows` rows each (the
// loaded config's A and C rows); rows = MT * tile_rows, or fewer than 16 with MT = 1.
template <class Ops, int MT, int NT>
void amx_tile(const typename Ops::Block& b, std::size_t r0, std::size_t rows, std::size_t p0, Scratch<Ops>& s) {
  const std::size_t panel_stride = Ops::groups(b) * kGroupBytes, lda = b.lda * Ops::elem;
  const std::uint8_t* w = bytes(b.packed_w) + p0 * panel_stride;
  const std::uint8_t* a = bytes(b.a) + r0 * lda;
  const std::size_t tile_rows = MT == 2 ? kTileRows : rows;
  const std::size_t a1 = tile_rows * lda;  // the second row tile's offset in A

  _tile_zero(0);
  if constexpr (NT == 2) _tile_zero(1);
  if constexpr (MT == 2) _tile_zero(2);
  if constexpr (MT == 2 && NT == 2) _tile_zero(3);
#define AEFAST_AMX_DP(c, a, b) \
  do {                          \
    if constexpr (Ops::bf16)    \
      _tile_dpbf16ps(c, a, b);  \
    else                        \
      _tile_dpbusd(c, a, b);    \
  } while (0)
  auto step = [&](const void* a0, const void* a1p, std::size_t ld, const void* b0, const void* b1) {
    _tile_loadd(6, b0, kGroupBytes);
    if constexpr (NT == 2) _tile_loadd(7, b1, kGroupBytes);
    _tile_loadd(4, a0, ld);
    AEFAST_AMX_DP(0, 4, 6);
    if constexpr (NT == 2) AEFAST_AMX_DP(1, 4, 7);
    if constexpr (MT == 2) {
      _tile_loadd(5, a1p, ld);
      AEFAST_AMX_DP(2, 5, 6);
      if constexpr (NT == 2) AEFAST_AMX_DP(3, 5, 7);
    }
  };
#undef AEFAST_AMX_DP
  const std::size_t a_bytes = Ops::a_bytes(b), full = a_bytes / kStepBytes;
  for (std::size_t kb = 0; kb < full; ++kb) {
    const std::uint8_t* wk = w + kb * kStepGroups * kGroupBytes;
    step(a + kb * kStepBytes, a + a1 + kb * kStepBytes, lda, wk, wk + panel_stride);
  }
  if (full * kStepGroups < Ops::groups(b)) {
    const std::size_t rest = a_bytes - full * kStepBytes;
    for (std::size_t r = 0; r < rows; ++r) {
      std::memcpy(s.a[r], a + r * lda + full * kStepBytes, rest);
      std::memset(s.a[r] + rest, 0, kStepBytes - rest);
    }
    const std::size_t pb = p0 - s.b_panel0;
    step(s.a[0], s.a[tile_rows], kStepBytes, s.b[pb], s.b[pb + NT - 1]);
  }
  constexpr std::size_t ldc = sizeof s.c[0];
  _tile_stored(0, &s.c[0][0], ldc);
  if constexpr (NT == 2) _tile_stored(1, &s.c[0][16], ldc);
  if constexpr (MT == 2) _tile_stored(2, &s.c[16][0], ldc);
  if constexpr (MT == 2 && NT == 2) _tile_stored(3, &s.c[16][16], ldc);
  for (int p = 0; p < NT; ++p) Ops::store(b, r0, rows, (p0 + p) * kPanelWidth, &s.c[0][16 * p], 32);
}

// Rows [r0, r0 + rows) over panels [p, p_end): 2 panels per tile, a last odd panel alone.
template <class Ops, int MT>
void amx_strip(const typename Ops::Block& b, std::size_t r0, std::size_t rows, std::size_t p, std::size_t p_end,
               Scratch<Ops>& s) {
  for (; p + 2 <= p_end; p += 2) amx_tile<Ops, MT, 2>(b, r0, rows, p, s);
  if (p < p_end) amx_tile<Ops, MT, 1>(b, r0, rows, p, s);
}

// The whole block: panel groups outermost (as the VNNI kernels: a group stays in L2 while the row tiles pass), then
// strips of MT x 16 rows, then one strip of 16, then the last rows (< 16) under a config of that many rows.
template <class Ops, int MT>
void amx_block(const typename Ops::Block& b) {
  Scratch<Ops> s;
  const std::size_t group = avx512::panels_per_group(Ops::groups(b) * kGroupBytes);
  std::size_t config_rows = kTileRows;
  load_config(config_rows);
  for (std::size_t pg = b.panel_begin; pg < b.panel_end; pg += group) {
    const std::size_t pe = std::min(pg + group, b.panel_end);
    fill_b_rest(b, pg, pe, s);
    if (config_rows != kTileRows) load_config(config_rows = kTileRows);
    std::size_t r = b.row_begin;
    for (; r + MT * kTileRows <= b.row_end; r += MT * kTileRows) amx_strip<Ops, MT>(b, r, MT * kTileRows, pg, pe, s);
    if (MT == 2 && r + kTileRows <= b.row_end) {
      amx_strip<Ops, 1>(b, r, kTileRows, pg, pe, s);
      r += kTileRows;
    }
    if (r < b.row_end) {
      load_config(config_rows = b.row_end - r);
      amx_strip<Ops, 1>(b, r, b.row_end - r, pg, pe, s);
    }
  }
  _tile_release();
}

// q8 blocks of fewer rows run the VNNI kernel's 8x32k4 tile (the built-in choice on the Intel Xeon measured; exact
// int32 sums, so the same outputs). Measured there (one core, loaded machine, docs/engine.md "AMX"): at 1-8 rows the
// VNNI tile ran the 784x1000 and 1000x784 layers 1.2-2.2x faster than 16-row AMX tiles holding mostly padding; at
// 12-16 rows AMX was 1.1-1.3x faster.
constexpr std::size_t kAmxMinRows = 12;

void q8_vnni_for_amx(const Q8DenseBlock& b) {
  static const Q8DenseFn vnni = [] {
    for (std::size_t i = 0; i < q8_tiles__avx512vnni.count; ++i)
      if (std::strcmp(q8_tiles__avx512vnni.tiles[i].name, "8x32k4") == 0) return q8_tiles__avx512vnni.tiles[i].dense;
    return q8_tiles__avx512vnni.tiles[0].dense;
  }();
  vnni(b);
}

template <int MT>
void dense_q8_amx(const Q8DenseBlock& b) {
  if (b.row_end - b.row_begin < kAmxMinRows) return q8_vnni_for_amx(b);
  amx_block<Q8Ops, MT>(b);
}

// bf16: every row count runs on AMX (no hand-off to the avx512bf16 kernel for few rows as in q8): its sums are in
// another order, and a layer's outputs must not depend on the batch size or the thread split.
void dense_bf16_amx(const Bf16DenseBlock& b) {
  amx_block<Bf16Ops, 1>(b);
  if (b.c_bf16 && b.n % 2 && b.panel_end * kPanelWidth >= b.n)
    for (std::size_t r = b.row_begin; r < b.row_end; ++r) static_cast<std::uint16_t*>(b.c)[r * b.ldc + b.n] = 0;
}

// The q8 family: rows x columns of the main tile (C tiles 2 x 2 or 1 x 2). 32x32 first, the default: it loads each
// B tile (1 KB of a panel, streamed from L2) for two A tiles, and measured 1.15-1.21x faster than 16x32 on whole
// default-model engines at batch 256-4096 (equal at 16, where both run 16-row strips; docs/engine.md "AMX").
const Q8Tile kTiles[] = {{"32x32", dense_q8_amx<2>}, {"16x32", dense_q8_amx<1>}};

}  // namespace

const Q8TileTable q8_tiles__amx = {kTiles, sizeof(kTiles) / sizeof(kTiles[0])};

void dense_q8__amx(const Q8DenseBlock& b) { dense_q8_amx<2>(b); }

void dense_bf16__amx(const Bf16DenseBlock& b) { dense_bf16_amx(b); }

}  // namespace aefast
