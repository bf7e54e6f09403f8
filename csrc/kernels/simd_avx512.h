// The 16-float (zmm, AVX-512 F/DQ) helpers every AVX-512 kernel file uses: lane masks, the activations of
// simd_math.h at this width, and the one tile epilogue of the fp32, VNNI and BF16 kernels. Include only from files
// built with AVX-512 flags (avx512*.cpp).
#pragma once
#include <immintrin.h>

#include <cstddef>

#include "dense.h"
#include "simd_math.h"

// GCC 12 warns "'__Y' may be used uninitialized" inside avx512fintrin.h for every inlined
// zmm intrinsic (GCC bug 105593, _mm512_undefined_ps; fixed in GCC 13): hundreds of false
// warnings per file. Silenced for the AVX-512 kernel files that include this header.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

namespace aefast::avx512 {
namespace {  // internal linkage: see simd_math.h

// simd_math.h's operations on 16 floats; masks are mask registers.
struct F32x16 {
  using T = __m512;
  using I = __m512i;
  using M = __mmask16;
  static T set1(float v) { return _mm512_set1_ps(v); }
  static I izero() { return _mm512_setzero_si512(); }
  static T fmadd(T a, T b, T c) { return _mm512_fmadd_ps(a, b, c); }
  static T fnmadd(T a, T b, T c) { return _mm512_fnmadd_ps(a, b, c); }
  static T mul(T a, T b) { return _mm512_mul_ps(a, b); }
  static T add(T a, T b) { return _mm512_add_ps(a, b); }
  static T sub(T a, T b) { return _mm512_sub_ps(a, b); }
  static T div(T a, T b) { return _mm512_div_ps(a, b); }
  static T min(T a, T b) { return _mm512_min_ps(a, b); }
  static T max(T a, T b) { return _mm512_max_ps(a, b); }
  static T round(T x) { return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static T abs(T x) { return _mm512_abs_ps(x); }
  static T or_sign(T x) { return _mm512_or_ps(x, _mm512_set1_ps(-0.0f)); }
  static M lt(T a, T b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
  static M gt(T a, T b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
  static M ge(T a, T b) { return _mm512_cmp_ps_mask(a, b, _CMP_GE_OQ); }
  static T select(M m, T if_true, T if_false) { return _mm512_mask_blend_ps(m, if_false, if_true); }
  static T pow2(T n, I extra) {
    const I biased = _mm512_add_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), extra), _mm512_set1_epi32(127));
    return _mm512_castsi512_ps(_mm512_slli_epi32(biased, 23));
  }
  static I int_where(M m, int v) { return _mm512_maskz_mov_epi32(m, _mm512_set1_epi32(v)); }
  static T mul_where(M m, T x, float c) { return _mm512_mask_mul_ps(x, m, x, _mm512_set1_ps(c)); }
  static T shl23(T y) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_castps_si512(y), 23)); }
};

inline __m512 elu(__m512 x) { return simd::elu<F32x16>(x); }
inline __m512 activate(__m512 v, Activation activation, bool clip) { return simd::activate<F32x16>(v, activation, clip); }

// Lanes [0, valid) of 16; none when valid <= 0, all when valid >= 16.
inline __mmask16 lane_mask(long valid) {
  return valid >= 16 ? __mmask16(0xffff) : valid <= 0 ? __mmask16(0) : __mmask16((1u << valid) - 1);
}

// One row of one panel before the epilogue: C = act(sum * scale + bias).
struct PanelSum {
  __m512 sum, scale;
};

// The epilogue of an MR-row x NP-panel register tile (rows r0 .., panels p0 ..) of any AVX-512 kernel: for panel p
// (columns j = 16 (p0 + p) .. j + 15, only j < n written) and row r,
//   C[r0 + r, j ..] = act(sum * scale + bias[j ..]), clamped to [0, 1] if clip,
// where panel(p, j) returns a function row(r) -> PanelSum (what the kernel's accumulators mean: fp32 sums, or exact
// int32 sums less the zero-point term) and store(row, j, mask, v) writes the masked 16 values (float or bf16).
template <int MR, int NP, typename Block, typename Panel, typename Store>
inline void store_tile(const Block& b, std::size_t r0, std::size_t p0, Panel panel, Store store) {
#pragma GCC unroll 16
  for (int p = 0; p < NP; ++p) {
    const std::size_t j = (p0 + p) * kPanelWidth;
    const __mmask16 mask = lane_mask(long(b.n) - long(j));
    const __m512 bias = _mm512_loadu_ps(b.bias + j);
    const auto row = panel(p, j);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const PanelSum s = row(r);
      store(r0 + r, j, mask, simd::epilogue<F32x16>(s.sum, s.scale, bias, b.activation, b.clip));
    }
  }
}

}  // namespace
}  // namespace aefast::avx512
