// fp32 FMA peak loop on ymm registers (see peak.h). Compiled with -mavx2 -mfma.
#include <immintrin.h>

#include "peak.h"
#include "peak_loop.h"

namespace aefast {

std::uint64_t peak_fp32_fma_ymm__avx2(std::uint64_t iterations, float seed, float* sink) {
  // acc <- acc * a + b converges to b / (1 - a): no overflow, no subnormals however long it runs.
  const __m256 a = _mm256_set1_ps(0.999f), b = _mm256_set1_ps(seed);
  const __m256 s = run_peak_chains(iterations, [&](int j) { return _mm256_set1_ps(seed + j); },
                                   [&](__m256 c) { return _mm256_fmadd_ps(c, a, b); },
                                   [](__m256 x, __m256 y) { return _mm256_add_ps(x, y); });
  *sink = _mm256_cvtss_f32(s);
  return iterations * kPeakChains * 8;
}

}  // namespace aefast
