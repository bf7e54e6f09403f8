// Vector expm1 / ELU / sigmoid for 16 floats (AVX-512 F + DQ). Include only from *avx512* files.
// The same algorithms, constants and operation order as math_avx2.h (selects use mask registers
// instead of blendv), so every lane is bit-identical to the AVX2 result for the same input.
#pragma once
#include <immintrin.h>

#include "dense.h"

// GCC 12 warns "'__Y' may be used uninitialized" inside avx512fintrin.h for every inlined
// zmm intrinsic (GCC bug 105593, _mm512_undefined_ps; fixed in GCC 13): hundreds of false
// warnings per file. Silenced for the AVX-512 kernel files that include this header.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

namespace aefast::avx512 {

// expm1(r) for |r| <= ln2/2: degree-8 Taylor polynomial r + r^2 (1/2! + r/3! + ... + r^6/8!).
// Truncation error <= |r|^9/9! < 2.1e-10 absolute, below 0.01 ulp of expm1(r); writing
// it as r + r^2 q keeps full relative accuracy near 0 (no 1 + ... - 1 cancellation).
inline __m512 expm1_reduced(__m512 r) {
  __m512 q = _mm512_set1_ps(1.0f / 40320);
  q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(1.0f / 5040));
  q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(1.0f / 720));
  q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(1.0f / 120));
  q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(1.0f / 24));
  q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(1.0f / 6));
  q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(0.5f));
  return _mm512_fmadd_ps(_mm512_mul_ps(r, r), q, r);
}

// Cody-Waite split x = n ln2 + r, |r| <= ln2/2; returns r and 2^(n + extra), where
// n + extra must lie in [-126, 127] (extra lets callers scale very negative x into range).
inline __m512 reduce_ln2(__m512 x, __m512* two_to_n, __m512i extra = _mm512_setzero_si512()) {
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);  // n * hi is exact (hi has 9 bits)
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  const __m512i biased = _mm512_add_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), extra), _mm512_set1_epi32(127));
  *two_to_n = _mm512_castsi512_ps(_mm512_slli_epi32(biased, 23));
  return r;
}

// expm1(x) for x <= 0 (x > 0 lanes give expm1(0) = 0: callers select x there).
// x is clamped to [-20, 0]: expm1(-20) rounds to -1 in float, so saturation is exact.
// |x| < 2^-24 returns x itself (exact there; keeps -0.0 and subnormals). NaN stays NaN.
inline __m512 expm1_nonpositive(__m512 x) {
  // min/max return their second operand when either is NaN: keep x second so NaN propagates.
  const __m512 xc = _mm512_min_ps(_mm512_setzero_ps(), _mm512_max_ps(_mm512_set1_ps(-20.0f), x));
  __m512 t;
  const __m512 r = reduce_ln2(xc, &t);
  const __m512 e = _mm512_fmadd_ps(t, expm1_reduced(r), _mm512_sub_ps(t, _mm512_set1_ps(1.0f)));
  const __mmask16 tiny = _mm512_cmp_ps_mask(_mm512_abs_ps(x), _mm512_set1_ps(0x1p-24f), _CMP_LT_OQ);
  return _mm512_mask_blend_ps(tiny, e, x);
}

inline __m512 elu(__m512 x) {
  return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GT_OQ), expm1_nonpositive(x), x);
}

// sigmoid(x) = 1 / (1 + e^-|x|) for x >= 0, e^-|x| / (1 + e^-|x|) otherwise: no overflow, and
// full relative accuracy for negative x. Below x = -80, e^-|x| is formed as (2^64 e^-|x|) 2^-64
// so that results in the float subnormal range round once; below -104 they round to 0.
inline __m512 sigmoid(__m512 x) {
  const __m512 neg_abs = _mm512_max_ps(_mm512_set1_ps(-104.0f), _mm512_or_ps(x, _mm512_set1_ps(-0.0f)));
  const __mmask16 deep = _mm512_cmp_ps_mask(neg_abs, _mm512_set1_ps(-80.0f), _CMP_LT_OQ);
  const __m512i extra = _mm512_maskz_mov_epi32(deep, _mm512_set1_epi32(64));
  __m512 t;
  const __m512 r = reduce_ln2(neg_abs, &t, extra);
  __m512 e = _mm512_fmadd_ps(t, expm1_reduced(r), t);  // e^-|x| in (0, 1], times 2^64 where deep
  e = _mm512_mask_mul_ps(e, deep, e, _mm512_set1_ps(0x1p-64f));  // other lanes: e * 1 = e, as in AVX2
  const __m512 s = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_add_ps(_mm512_set1_ps(1.0f), e));
  return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GE_OQ), _mm512_mul_ps(e, s), s);
}

// The activation of every kernel epilogue, then the optional clamp to [0, 1] (clip: the last layer only).
inline __m512 activate(__m512 v, Activation activation, bool clip) {
  if (activation == Activation::elu) v = elu(v);
  else if (activation == Activation::sigmoid) v = sigmoid(v);
  if (clip) v = _mm512_min_ps(_mm512_max_ps(v, _mm512_setzero_ps()), _mm512_set1_ps(1.0f));
  return v;
}

}  // namespace aefast::avx512
