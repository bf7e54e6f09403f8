// fp32 FMA peak loop on zmm registers (see peak.h). Compiled with AVX-512 F/BW/DQ/VL.
#include <immintrin.h>

#include "peak.h"
#include "peak_loop.h"

namespace aefast {

std::uint64_t peak_fp32_fma_zmm__avx512(std::uint64_t iterations, float seed, float* sink) {
  const __m512 a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(seed);  // converges, as in peak_avx2.cpp
  const __m512 s = run_peak_chains(iterations, [&](int j) { return _mm512_set1_ps(seed + j); },
                                   [&](__m512 c) { return _mm512_fmadd_ps(c, a, b); },
                                   [](__m512 x, __m512 y) { return _mm512_add_ps(x, y); });
  *sink = _mm512_reduce_add_ps(s);
  return iterations * kPeakChains * 16;
}

}  // namespace aefast
