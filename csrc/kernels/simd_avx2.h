// The 8-float (ymm, AVX2 + FMA) helpers every AVX2 kernel file uses: lane masks, masked loads and stores, and the
// activations of simd_math.h at this width. Include only from files built with -mavx2 -mfma (avx2*.cpp).
#pragma once
#include <immintrin.h>

#include <algorithm>

#include "dense.h"
#include "simd_math.h"

namespace aefast::avx2 {
namespace {  // internal linkage: see simd_math.h

// simd_math.h's operations on 8 floats; masks are all-ones / all-zero float lanes (blendv reads the sign bit).
struct F32x8 {
  using T = __m256;
  using I = __m256i;
  using M = __m256;
  static T set1(float v) { return _mm256_set1_ps(v); }
  static I izero() { return _mm256_setzero_si256(); }
  static T fmadd(T a, T b, T c) { return _mm256_fmadd_ps(a, b, c); }
  static T fnmadd(T a, T b, T c) { return _mm256_fnmadd_ps(a, b, c); }
  static T mul(T a, T b) { return _mm256_mul_ps(a, b); }
  static T add(T a, T b) { return _mm256_add_ps(a, b); }
  static T sub(T a, T b) { return _mm256_sub_ps(a, b); }
  static T div(T a, T b) { return _mm256_div_ps(a, b); }
  static T min(T a, T b) { return _mm256_min_ps(a, b); }
  static T max(T a, T b) { return _mm256_max_ps(a, b); }
  static T round(T x) { return _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static T abs(T x) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x); }
  static T or_sign(T x) { return _mm256_or_ps(x, _mm256_set1_ps(-0.0f)); }
  static M lt(T a, T b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
  static M gt(T a, T b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
  static M ge(T a, T b) { return _mm256_cmp_ps(a, b, _CMP_GE_OQ); }
  static T select(M m, T if_true, T if_false) { return _mm256_blendv_ps(if_false, if_true, m); }
  static T pow2(T n, I extra) {
    const I biased = _mm256_add_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), extra), _mm256_set1_epi32(127));
    return _mm256_castsi256_ps(_mm256_slli_epi32(biased, 23));
  }
  static I int_where(M m, int v) { return _mm256_and_si256(_mm256_castps_si256(m), _mm256_set1_epi32(v)); }
  static T mul_where(M m, T x, float c) { return _mm256_mul_ps(x, _mm256_blendv_ps(_mm256_set1_ps(1.0f), _mm256_set1_ps(c), m)); }
  static T shl23(T y) { return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(y), 23)); }
};

inline __m256 elu(__m256 x) { return simd::elu<F32x8>(x); }
inline __m256 sigmoid(__m256 x) { return simd::sigmoid<F32x8>(x); }
inline __m256 activate(__m256 v, Activation activation, bool clip) { return simd::activate<F32x8>(v, activation, clip); }
// act(sum * scale + bias), clamped to [0, 1] if clip: the epilogue of every AVX2 kernel.
inline __m256 epilogue(__m256 sum, __m256 scale, __m256 bias, Activation activation, bool clip) {
  return simd::epilogue<F32x8>(sum, scale, bias, activation, clip);
}

// Lanes [0, valid) set; valid may be <= 0 (none) or >= 8 (all).
inline __m256i lane_mask(long valid) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(std::clamp(valid, 0L, 8L))), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// x[0 .. valid) (valid <= 0: none; >= 8: all); lanes past valid read as 0 and touch no memory.
inline __m256 load8(const float* x, long valid) {
  return valid >= 8 ? _mm256_loadu_ps(x) : _mm256_maskload_ps(x, lane_mask(valid));
}

// c[0 .. valid) = v[0 .. valid) (valid <= 0: nothing; >= 8: all 8); memory past valid is not touched.
inline void store8(float* c, long valid, __m256 v) {
  if (valid >= 8) _mm256_storeu_ps(c, v);
  else if (valid > 0) _mm256_maskstore_ps(c, lane_mask(valid), v);
}

}  // namespace
}  // namespace aefast::avx2
