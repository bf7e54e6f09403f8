// What the AVX-512 low-precision kernels (avx512vnni.cpp, avx512bf16.cpp) share about their tiles. Include only from
// those files (intrinsics; built with AVX-512 flags).
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <cstddef>

namespace aefast::avx512 {

// Panels per group: as many as fit half of a 1 MB L2 (a group stays there while the block's row tiles pass over
// it), 8 at most, and at least the 2 of a main tile. panel_bytes = K x 16 x bytes per weight: 8 panels at
// K = 784 (q8: 100 KB), 3 at K = 10000 (q8: 480 KB; 8 would be 1.28 MB, re-streamed from L3 for every row tile).
inline std::size_t panels_per_group(std::size_t panel_bytes) {
  return std::clamp<std::size_t>((std::size_t(512) << 10) / std::max<std::size_t>(panel_bytes, 1), 2, 8);
}

// Lanes [0, valid) of 16; none when valid <= 0.
inline __mmask16 column_mask(long valid) {
  return valid >= 16 ? __mmask16(0xffff) : valid <= 0 ? __mmask16(0) : __mmask16((1u << valid) - 1);
}

}  // namespace aefast::avx512
