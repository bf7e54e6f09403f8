// Vector expm1 / ELU / sigmoid, written once for any float vector type V. Included by simd_avx2.h (V = 8
// floats) and simd_avx512.h (V = 16 floats), which supply V's operations, and by scalar.cpp (V = 1 float, for
// expm1_q8 only); the same algorithm, constants and
// operation order at every width, so every lane of every ISA is bit-identical for the same input (tested:
// tests/test_kernels.py::test_simd_isas_agree_bit_for_bit, tests/test_microkernels.py).
//
// V provides: T (the float vector), I (the int32 vector), M (a lane mask); set1, izero, fmadd, fnmadd, mul, add,
// sub, div, min, max (both return their second operand when either is NaN, as minps/maxps do), round (to nearest
// even), abs, or_sign (x | -0.0), lt/gt/ge (ordered compares -> M), select(m, if_true, if_false), pow2(n, extra)
// (2^(int(n) + extra) from an integral n), int_where(m, v) (v where m, else 0), mul_where(m, x, c) (x * c where m,
// else x), shl23(y) (the float whose bits are y's bits shifted left by 23).
//
// Everything here has internal linkage: each ISA file is compiled with its own flags, and the linker must never
// pick a copy compiled for another ISA.
#pragma once

#include "dense.h"

namespace aefast::simd {
namespace {

// expm1(r) for |r| <= ln2/2: degree-8 Taylor polynomial r + r^2 (1/2! + r/3! + ... + r^6/8!).
// Truncation error <= |r|^9/9! < 2.1e-10 absolute, below 0.01 ulp of expm1(r); writing
// it as r + r^2 q keeps full relative accuracy near 0 (no 1 + ... - 1 cancellation).
template <class V>
inline typename V::T expm1_reduced(typename V::T r) {
  typename V::T q = V::set1(1.0f / 40320);
  q = V::fmadd(q, r, V::set1(1.0f / 5040));
  q = V::fmadd(q, r, V::set1(1.0f / 720));
  q = V::fmadd(q, r, V::set1(1.0f / 120));
  q = V::fmadd(q, r, V::set1(1.0f / 24));
  q = V::fmadd(q, r, V::set1(1.0f / 6));
  q = V::fmadd(q, r, V::set1(0.5f));
  return V::fmadd(V::mul(r, r), q, r);
}

// Cody-Waite split x = n ln2 + r, |r| <= ln2/2; returns r and 2^(n + extra), where
// n + extra must lie in [-126, 127] (extra lets callers scale very negative x into range).
template <class V>
inline typename V::T reduce_ln2(typename V::T x, typename V::T* two_to_n, typename V::I extra) {
  const typename V::T n = V::round(V::mul(x, V::set1(1.44269504088896341f)));
  typename V::T r = V::fnmadd(n, V::set1(0.693359375f), x);  // n * hi is exact (hi has 9 bits)
  r = V::fnmadd(n, V::set1(-2.12194440e-4f), r);
  *two_to_n = V::pow2(n, extra);
  return r;
}

// expm1(x) for x <= 0 (x > 0 lanes give expm1(0) = 0: callers select x there).
// x is clamped to [-20, 0]: expm1(-20) rounds to -1 in float, so saturation is exact.
// |x| < 2^-24 returns x itself (exact there; keeps -0.0 and subnormals). NaN stays NaN.
template <class V>
inline typename V::T expm1_nonpositive(typename V::T x) {
  // min/max return their second operand when either is NaN: keep x second so NaN propagates.
  const typename V::T xc = V::min(V::set1(0.0f), V::max(V::set1(-20.0f), x));
  typename V::T t;
  const typename V::T r = reduce_ln2<V>(xc, &t, V::izero());
  const typename V::T e = V::fmadd(t, expm1_reduced<V>(r), V::sub(t, V::set1(1.0f)));
  return V::select(V::lt(V::abs(x), V::set1(0x1p-24f)), x, e);
}

// expm1(x) for x <= 0 in the ELU of q8 layers (ActivationKind::elu_q8), whose output is quantized to 8 bits for the
// next layer or returned with the int8 compute's error (~1e-2 relative to float64): the reduction
// x = n ln2 + r in one FMA (ln2 rounded to float: r is off by at most 29 x 1.9e-9 for x >= -20), 2^n read from the
// exponent bits of y = x / ln2 + (1.5 2^23 + 127) (y - 1.5 2^23 - 127 = n exactly, rounded to nearest by the FMA; its
// low mantissa bits shifted left by 23 are the float 2^n), and r + r^2 (c2 + r (c3 + r (c4 + r c5))) with c fit to
// expm1 on |r| <= ln2/2 (relative error 9e-7 there, against 2.1e-10 for expm1_reduced's degree 8). Measured against
// float64 at 2 million points of [-20, 0) and 40 000 log-spaced ones down to -1e-30: relative error at most 8.7e-7
// of |expm1(x)| (tested <= 1e-6, tests/test_q8_elu.py), so the error of an ELU output v is below
// 1e-6 |v| <= 1e-6 |lo| <= 2.6e-4 of its row's quantization step (hi - lo) / 255 (lo = min(0, min of the row)).
// 16 vector operations against expm1_nonpositive's 25. x > 0 lanes give garbage (callers select x there); x is
// clamped below at -20 (expm1 rounds to -1 there); NaN stays NaN; -0.0 and tiny x give x up to sign (+0 for -0).
template <class V>
inline typename V::T expm1_q8(typename V::T x) {
  const typename V::T xc = V::max(V::set1(-20.0f), x);  // NaN second: propagates
  const typename V::T magic = V::set1(12583039.0f);      // 1.5 * 2^23 + 127
  const typename V::T y = V::fmadd(xc, V::set1(1.44269504088896341f), magic);
  const typename V::T n = V::sub(y, magic);
  const typename V::T r = V::fnmadd(n, V::set1(0.693147182f), xc);
  const typename V::T t = V::shl23(y);                   // 2^n
  typename V::T q = V::fmadd(V::set1(0x1.113726p-7f), r, V::set1(0x1.56e028p-5f));
  q = V::fmadd(q, r, V::set1(0x1.5556p-3f));
  q = V::fmadd(q, r, V::set1(0x1.fffeb6p-2f));
  const typename V::T p = V::fmadd(V::mul(r, r), q, r);  // expm1(r)
  return V::fmadd(t, p, V::sub(t, V::set1(1.0f)));
}

template <class V>
inline typename V::T elu(typename V::T x) {
  return V::select(V::gt(x, V::set1(0.0f)), x, expm1_nonpositive<V>(x));
}

// sigmoid(x) = 1 / (1 + e^-|x|) for x >= 0, e^-|x| / (1 + e^-|x|) otherwise: no overflow, and
// full relative accuracy for negative x. Below x = -80, e^-|x| is formed as (2^64 e^-|x|) 2^-64
// so that results in the float subnormal range round once; below -104 they round to 0.
template <class V>
inline typename V::T sigmoid(typename V::T x) {
  const typename V::T neg_abs = V::max(V::set1(-104.0f), V::or_sign(x));
  const typename V::M deep = V::lt(neg_abs, V::set1(-80.0f));
  typename V::T t;
  const typename V::T r = reduce_ln2<V>(neg_abs, &t, V::int_where(deep, 64));
  typename V::T e = V::fmadd(t, expm1_reduced<V>(r), t);  // e^-|x| in (0, 1], times 2^64 where deep
  e = V::mul_where(deep, e, 0x1p-64f);
  const typename V::T s = V::div(V::set1(1.0f), V::add(V::set1(1.0f), e));
  return V::select(V::ge(x, V::set1(0.0f)), s, V::mul(e, s));
}

// tanh(x) = sign(x) tanh|x|, tanh|x| = -e / (2 + e) with e = expm1(-2|x|) in [-1, 0]: no overflow, full relative
// accuracy near 0 (e ~ -2|x|), and exactly 1 once expm1 saturates (|x| >= 10, where tanh rounds to 1 in float).
// NaN stays NaN.
template <class V>
inline typename V::T tanh(typename V::T x) {
  const typename V::T e = expm1_nonpositive<V>(V::mul(V::set1(-2.0f), V::abs(x)));
  const typename V::T t = V::div(V::sub(V::set1(0.0f), e), V::add(V::set1(2.0f), e));
  return V::select(V::lt(x, V::set1(0.0f)), V::or_sign(t), t);
}

// The activation of every kernel epilogue, then the optional clamp to [0, 1] (clip: the last layer only).
// relu keeps NaN (max returns its second operand, v, when either is NaN); ELU multiplies its negative side by
// alpha (exact for alpha 1), the leaky ReLU its negative side by the slope alpha.
template <class V>
inline typename V::T activate(typename V::T v, Activation activation, bool clip) {
  switch (activation.kind) {
    case ActivationKind::linear: break;
    case ActivationKind::elu:
      v = V::select(V::gt(v, V::set1(0.0f)), v, V::mul(V::set1(activation.alpha), expm1_nonpositive<V>(v)));
      break;
    case ActivationKind::sigmoid: v = sigmoid<V>(v); break;
    case ActivationKind::relu: v = V::max(V::set1(0.0f), v); break;
    case ActivationKind::leaky_relu:
      v = V::select(V::gt(v, V::set1(0.0f)), v, V::mul(v, V::set1(activation.alpha)));
      break;
    case ActivationKind::tanh: v = tanh<V>(v); break;
    case ActivationKind::elu_q8:
      v = V::select(V::gt(v, V::set1(0.0f)), v, V::mul(V::set1(activation.alpha), expm1_q8<V>(v)));
      break;
  }
  if (clip) v = V::min(V::max(v, V::set1(0.0f)), V::set1(1.0f));
  return v;
}

// Every kernel's epilogue: activate(sum * scale + bias) (one fused multiply-add), then the clamp.
template <class V>
inline typename V::T epilogue(typename V::T sum, typename V::T scale, typename V::T bias, Activation activation,
                              bool clip) {
  return activate<V>(V::fmadd(sum, scale, bias), activation, clip);
}

}  // namespace
}  // namespace aefast::simd
