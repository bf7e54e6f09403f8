// bf16 dot-product peak loop: vdpbf16ps on zmm (see peak.h). Compiled with AVX-512 F/BW/DQ/VL + BF16.
#include <immintrin.h>

#include "peak.h"
#include "peak_loop.h"

namespace aefast {

std::uint64_t peak_bf16_vdpbf16ps__avx512bf16(std::uint64_t iterations, float seed, float* sink) {
  // acc += a0*b0 + a1*b1 per fp32 lane with a, b ~ 1e-3: the sums stay finite and normal however long it runs.
  const __m512 small = _mm512_set1_ps(seed * 1e-3f);
  const __m512bh ab = _mm512_cvtne2ps_pbh(small, small);
  const __m512 s = run_peak_chains(iterations, [&](int j) { return _mm512_set1_ps(seed + j); },
                                   [&](__m512 c) { return _mm512_dpbf16_ps(c, ab, ab); },
                                   [](__m512 x, __m512 y) { return _mm512_add_ps(x, y); });
  *sink = _mm512_reduce_add_ps(s);
  return iterations * kPeakChains * 32;
}

}  // namespace aefast
