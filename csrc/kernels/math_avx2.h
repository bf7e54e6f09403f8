// Vector expm1 / ELU / sigmoid for 8 floats (AVX2 + FMA). Include only from *avx2* files.
#pragma once
#include <immintrin.h>

#include "dense.h"

namespace aefast::avx2 {

// expm1(r) for |r| <= ln2/2: degree-8 Taylor polynomial r + r^2 (1/2! + r/3! + ... + r^6/8!).
// Truncation error <= |r|^9/9! < 2.1e-10 absolute, below 0.01 ulp of expm1(r); writing
// it as r + r^2 q keeps full relative accuracy near 0 (no 1 + ... - 1 cancellation).
inline __m256 expm1_reduced(__m256 r) {
  __m256 q = _mm256_set1_ps(1.0f / 40320);
  q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(1.0f / 5040));
  q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(1.0f / 720));
  q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(1.0f / 120));
  q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(1.0f / 24));
  q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(1.0f / 6));
  q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(0.5f));
  return _mm256_fmadd_ps(_mm256_mul_ps(r, r), q, r);
}

// Cody-Waite split x = n ln2 + r, |r| <= ln2/2; returns r and 2^(n + extra), where
// n + extra must lie in [-126, 127] (extra lets callers scale very negative x into range).
inline __m256 reduce_ln2(__m256 x, __m256* two_to_n, __m256i extra = _mm256_setzero_si256()) {
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);  // n * hi is exact (hi has 9 bits)
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  const __m256i biased = _mm256_add_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), extra), _mm256_set1_epi32(127));
  *two_to_n = _mm256_castsi256_ps(_mm256_slli_epi32(biased, 23));
  return r;
}

// expm1(x) for x <= 0 (x > 0 lanes give expm1(0) = 0: callers select x there).
// x is clamped to [-20, 0]: expm1(-20) rounds to -1 in float, so saturation is exact.
// |x| < 2^-24 returns x itself (exact there; keeps -0.0 and subnormals). NaN stays NaN.
inline __m256 expm1_nonpositive(__m256 x) {
  // min/max return their second operand when either is NaN: keep x second so NaN propagates.
  const __m256 xc = _mm256_min_ps(_mm256_setzero_ps(), _mm256_max_ps(_mm256_set1_ps(-20.0f), x));
  __m256 t;
  const __m256 r = reduce_ln2(xc, &t);
  const __m256 e = _mm256_fmadd_ps(t, expm1_reduced(r), _mm256_sub_ps(t, _mm256_set1_ps(1.0f)));
  const __m256 abs_x = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
  const __m256 tiny = _mm256_cmp_ps(abs_x, _mm256_set1_ps(0x1p-24f), _CMP_LT_OQ);
  return _mm256_blendv_ps(e, x, tiny);
}

inline __m256 elu(__m256 x) {
  return _mm256_blendv_ps(expm1_nonpositive(x), x, _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_GT_OQ));
}

// sigmoid(x) = 1 / (1 + e^-|x|) for x >= 0, e^-|x| / (1 + e^-|x|) otherwise: no overflow, and
// full relative accuracy for negative x. Below x = -80, e^-|x| is formed as (2^64 e^-|x|) 2^-64
// so that results in the float subnormal range round once; below -104 they round to 0.
inline __m256 sigmoid(__m256 x) {
  const __m256 neg_abs = _mm256_max_ps(_mm256_set1_ps(-104.0f), _mm256_or_ps(x, _mm256_set1_ps(-0.0f)));
  const __m256 deep = _mm256_cmp_ps(neg_abs, _mm256_set1_ps(-80.0f), _CMP_LT_OQ);
  const __m256i extra = _mm256_and_si256(_mm256_castps_si256(deep), _mm256_set1_epi32(64));
  __m256 t;
  const __m256 r = reduce_ln2(neg_abs, &t, extra);
  __m256 e = _mm256_fmadd_ps(t, expm1_reduced(r), t);  // e^-|x| in (0, 1], times 2^64 where deep
  e = _mm256_mul_ps(e, _mm256_blendv_ps(_mm256_set1_ps(1.0f), _mm256_set1_ps(0x1p-64f), deep));
  const __m256 s = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_add_ps(_mm256_set1_ps(1.0f), e));
  return _mm256_blendv_ps(_mm256_mul_ps(e, s), s, _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_GE_OQ));
}

// The activation of every kernel epilogue, then the optional clamp to [0, 1] (clip: the last layer only).
inline __m256 activate(__m256 v, Activation activation, bool clip) {
  if (activation == Activation::elu) v = elu(v);
  else if (activation == Activation::sigmoid) v = sigmoid(v);
  if (clip) v = _mm256_min_ps(_mm256_max_ps(v, _mm256_setzero_ps()), _mm256_set1_ps(1.0f));
  return v;
}

}  // namespace aefast::avx2
