// int8 dot-product peak loop: vpdpbusd on zmm (see peak.h). Compiled with AVX-512 F/BW/DQ/VL + VNNI.
#include <immintrin.h>

#include "peak.h"
#include "peak_loop.h"

namespace aefast {

std::uint64_t peak_int8_vpdpbusd__avx512vnni(std::uint64_t iterations, float seed, float* sink) {
  // acc += sum of 4 u8 x s8 products per int32 lane; int32 wraps, which costs nothing and is never read as a value.
  const int byte = static_cast<int>(seed) & 0x7f;
  const __m512i a = _mm512_set1_epi8(static_cast<char>(byte | 1)), b = _mm512_set1_epi8(static_cast<char>(-byte));
  const __m512i s = run_peak_chains(iterations, [&](int j) { return _mm512_set1_epi32(byte + j); },
                                    [&](__m512i c) { return _mm512_dpbusd_epi32(c, a, b); },
                                    [](__m512i x, __m512i y) { return _mm512_add_epi32(x, y); });
  *sink = static_cast<float>(_mm512_reduce_add_epi32(s));
  return iterations * kPeakChains * 64;
}

}  // namespace aefast
