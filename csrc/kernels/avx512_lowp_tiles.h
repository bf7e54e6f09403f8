// What the AVX-512 low-precision kernels (avx512vnni.cpp, avx512bf16.cpp) share about their tiles: the panel group
// size and the loop over row strips and panels. Include only from those files (built with AVX-512 flags).
#pragma once
#include <algorithm>
#include <cstddef>

namespace aefast::avx512 {
namespace {  // internal linkage: see simd_math.h

// Panels per group: as many as fit half of a 1 MB L2 (a group stays there while the block's row tiles pass over
// it), 8 at most, and at least the 2 of a main tile. panel_bytes = K x 16 x bytes per weight: 8 panels at
// K = 784 (q8: 100 KB), 3 at K = 10000 (q8: 480 KB; 8 would be 1.28 MB, re-streamed from L3 for every row tile).
inline std::size_t panels_per_group(std::size_t panel_bytes) {
  return std::clamp<std::size_t>((std::size_t(512) << 10) / std::max<std::size_t>(panel_bytes, 1), 2, 8);
}

// Rows [r0, r0 + MR) over panels [p, p_end): NP panels per tile, the remainder in halving tile widths.
// Tile::run<MR, NP>(b, r0, p0) computes one MR x NP-panel tile over all of K.
template <class Tile, int MR, int NP, class Block>
inline void row_strip(const Block& b, std::size_t r0, std::size_t p, std::size_t p_end) {
  for (; p + NP <= p_end; p += NP) Tile::template run<MR, NP>(b, r0, p);
  if constexpr (NP > 1)
    if (p < p_end) row_strip<Tile, MR, NP / 2>(b, r0, p, p_end);
}

// The last `rows` (< the main tile's MR, at most 15) rows of a block from row r over panels [pg, pe): at least 8 go as
// one 8 x 2-panel strip first, the rest (the whole batch below 8 rows) in wider tiles: 1 x 8 panels, 2..4 x 4,
// 5..7 x 2.
template <class Tile, class Block>
inline void leftover_rows(const Block& b, std::size_t r, std::size_t rows, std::size_t pg, std::size_t pe) {
  if (rows >= 8) {
    row_strip<Tile, 8, 2>(b, r, pg, pe);
    r += 8, rows -= 8;
  }
  switch (rows) {
    case 1: row_strip<Tile, 1, 8>(b, r, pg, pe); break;
    case 2: row_strip<Tile, 2, 4>(b, r, pg, pe); break;
    case 3: row_strip<Tile, 3, 4>(b, r, pg, pe); break;
    case 4: row_strip<Tile, 4, 4>(b, r, pg, pe); break;
    case 5: row_strip<Tile, 5, 2>(b, r, pg, pe); break;
    case 6: row_strip<Tile, 6, 2>(b, r, pg, pe); break;
    case 7: row_strip<Tile, 7, 2>(b, r, pg, pe); break;
    default: break;
  }
}

// The loop order of the VNNI and BF16 kernels: panel groups outermost (panels_per_group(panel_bytes) panels stay
// in L2 while every row tile of the block passes over them); inside a group, MR-row x NP-panel main tiles (a
// column of main tiles reuses its NP panels from L1), then the last rows as leftover_rows. The default 8 x 2 is
// the 8 x 32 tile; the VNNI kernel also instantiates the other tiles of its family (avx512vnni.cpp).
template <class Tile, int MR = 8, int NP = 2, class Block>
inline void run_tiles(const Block& b, std::size_t panel_bytes) {
  static_assert(MR >= 1 && MR <= 16, "leftover_rows takes at most 15 rows");
  const std::size_t group = panels_per_group(panel_bytes);
  for (std::size_t pg = b.panel_begin; pg < b.panel_end; pg += group) {
    const std::size_t pe = std::min(pg + group, b.panel_end);
    std::size_t r = b.row_begin;
    for (; r + MR <= b.row_end; r += MR) row_strip<Tile, MR, NP>(b, r, pg, pe);
    leftover_rows<Tile>(b, r, b.row_end - r, pg, pe);
  }
}

}  // namespace
}  // namespace aefast::avx512
