// AVX-512 VNNI kernels for quantized-activation int8 (q8): uint8 activations x int8 weights -> int32 with vpdpbusd.
//
// Tile design (measured rates on Zen 4, one core: vpdpbusd 233 G multiply-adds/s = 64 per cycle, i.e. one zmm
// vpdpbusd per cycle at ~5 cycles latency; docs/engine.md): the main tile is 8 rows x 32 columns
// = 16 zmm int32 accumulators (enough independent chains to cover the latency twice over), 2 weight zmm loaded per
// k-quad and one 4-byte broadcast per row; 19 of 32 registers, so the epilogue never spills. A 12 x 32 tile
// (24 accumulators) measured slower (register pressure), 4 x 64 too (a 64-column panel pair of K = 784 is 50 KB,
// more than the 32 KB L1). Leftover rows (and whole batches below 8 rows) take wider tiles, 1 x 128, 2..4 x 64,
// 5..7 x 32, so every weight zmm feeds several accumulators or enough independent chains.
// Every tile accumulates exactly in int32; results do not depend on tiling, batch size or threads.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "avx512_lowp.h"
#include "avx512_lowp_tiles.h"
#include "simd_avx512.h"

namespace aefast {
namespace {

using avx512::lane_mask;
using avx512::PanelSum;

constexpr std::size_t kQuadBytes = kPanelWidth * kQuadK;  // one k-quad of one panel: 64 bytes = 1 zmm
constexpr std::size_t kPrefetchQuads = 8;

inline std::uint32_t load_quad(const std::uint8_t* a) {
  std::uint32_t v;
  std::memcpy(&v, a, 4);
  return v;
}

// The last quad of a row whose length is not a multiple of 4, without reading past the row.
inline std::uint32_t load_partial_quad(const std::uint8_t* a, std::size_t n) {
  std::uint32_t v = 0;
  std::memcpy(&v, a, n);
  return v;
}

// C[r0 .. r0 + MR, panels p0 .. p0 + NP] over all of K; the k loop unrolled KU times (the same steps in the same
// order: KU only changes the loop's branch and counter overhead).
template <int KU>
struct VnniTile {
  template <int MR, int NP>
  static void run(const Q8DenseBlock& b, std::size_t r0, std::size_t p0) {
    const std::size_t k4 = quad_count(b.k);
    const std::size_t full_quads = b.a_tail_safe ? k4 : b.k / kQuadK;
    const std::size_t panel_stride = k4 * kQuadBytes;
    const std::int8_t* w = b.packed_w + p0 * panel_stride;
    const std::uint8_t* a = b.a + r0 * b.lda;

    __m512i acc[MR][NP];
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 16
      for (int p = 0; p < NP; ++p) acc[r][p] = _mm512_setzero_si512();

    auto step = [&](std::size_t q, auto quad_of_row) {
      __m512i wv[NP];
#pragma GCC unroll 16
      for (int p = 0; p < NP; ++p) {
        // Few rows (batch 1..4): each weight feeds only MR multiply-adds, so the weight streams (one per panel) are
        // the bottleneck; fetch them kPrefetchQuads ahead into L1 (reading past a panel's end only touches the next
        // panel or, for the last one, lines within the packed buffer's page).
        if constexpr (MR <= 4) _mm_prefetch(reinterpret_cast<const char*>(w + p * panel_stride + (q + kPrefetchQuads) * kQuadBytes), _MM_HINT_T0);
        wv[p] = _mm512_loadu_si512(w + p * panel_stride + q * kQuadBytes);
      }
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r) {
        const __m512i av = _mm512_set1_epi32(int(quad_of_row(r)));
#pragma GCC unroll 16
        for (int p = 0; p < NP; ++p) acc[r][p] = _mm512_dpbusd_epi32(acc[r][p], av, wv[p]);
      }
    };
    std::size_t q = 0;
    if constexpr (KU > 1)
      for (; q + KU <= full_quads; q += KU)
#pragma GCC unroll 8
        for (int u = 0; u < KU; ++u) {
          const std::size_t qu = q + u;
          step(qu, [&](int r) { return load_quad(a + r * b.lda + qu * kQuadK); });
        }
    for (; q < full_quads; ++q)
      step(q, [&](int r) { return load_quad(a + r * b.lda + q * kQuadK); });
    if (full_quads < k4) {
      const std::size_t q = full_quads, rest = b.k - q * kQuadK;
      step(q, [&](int r) { return load_partial_quad(a + r * b.lda + q * kQuadK, rest); });
    }

    avx512::store_tile<MR, NP>(
        b, r0, p0,
        [&](int p, std::size_t j) {
          const __m512i colsum = _mm512_loadu_si512(b.colsum + j);
          const __m512 w_scale = _mm512_loadu_ps(b.w_scale + j);
          return [&b, &acc, r0, p, colsum, w_scale](int r) {
            const std::size_t row = r0 + r;
            const __m512i exact = _mm512_sub_epi32(acc[r][p], _mm512_mullo_epi32(_mm512_set1_epi32(b.a_zero[row]), colsum));
            return PanelSum{_mm512_cvtepi32_ps(exact), _mm512_mul_ps(_mm512_set1_ps(b.a_scale[row]), w_scale)};
          };
        },
        [&](std::size_t row, std::size_t j, __mmask16 mask, __m512 v) {
          _mm512_mask_storeu_ps(b.c + row * b.ldc + j, mask, v);
        });
  }
};

}  // namespace

namespace {
// Loop order and tile shapes: avx512::run_tiles (MR x 16 NP main tiles in L2-sized panel groups of K x 16 bytes
// each; leftover rows in its fixed leftover shapes).
template <int MR, int NP, int KU = 1>
void dense_q8_tile(const Q8DenseBlock& b) {
  static_assert(MR * NP + NP + 1 <= 32, "accumulators + weight registers + broadcast must fit 32 zmm");
  avx512::run_tiles<VnniTile<KU>, MR, NP>(b, b.k * kQuadBytes / kQuadK);
}

// The tile family, named MR x columns (suffix kU: the k loop unrolled U times); zmm accumulators = MR x NP. The
// accumulator counts sit on both sides of the counts where a full-width core's vpdpbusd rate falls (docs/engine.md
// "Tile choice"): 8, 12, 14, 16, 20, 24. 8x32 (16 accumulators) first: the tile measured best on Zen 4, the default.
const Q8Tile kTiles[] = {
    {"8x32", dense_q8_tile<8, 2>},   {"4x32", dense_q8_tile<4, 2>},   {"6x32", dense_q8_tile<6, 2>},
    {"7x32", dense_q8_tile<7, 2>},   {"10x32", dense_q8_tile<10, 2>}, {"12x32", dense_q8_tile<12, 2>},
    {"12x16", dense_q8_tile<12, 1>}, {"14x16", dense_q8_tile<14, 1>}, {"16x16", dense_q8_tile<16, 1>},
    {"3x64", dense_q8_tile<3, 4>},   {"4x64", dense_q8_tile<4, 4>},   {"6x64", dense_q8_tile<6, 4>},
    {"4x32k2", dense_q8_tile<4, 2, 2>}, {"6x32k2", dense_q8_tile<6, 2, 2>}, {"7x32k2", dense_q8_tile<7, 2, 2>},
    {"8x32k2", dense_q8_tile<8, 2, 2>}, {"6x32k4", dense_q8_tile<6, 2, 4>}, {"7x32k4", dense_q8_tile<7, 2, 4>},
    {"8x32k4", dense_q8_tile<8, 2, 4>}, {"8x32k8", dense_q8_tile<8, 2, 8>},
};
}  // namespace

const Q8TileTable q8_tiles__avx512vnni = {kTiles, sizeof(kTiles) / sizeof(kTiles[0])};

void dense_q8__avx512vnni(const Q8DenseBlock& b) { dense_q8_tile<8, 2>(b); }

namespace {

// The quantization half of quantize_rows__scalar for one row x[0, k) whose range gave rq and finite, 16 lanes at a
// time with the same roundings: rne(x * inv) as an int32 (|x * inv| <= 255 within the row's range, so exact and in
// range), + zero, clamped below at 0 and above at 255 by the unsigned saturating narrowing: the same code as
// clamp(rne(x * inv) + zero, 0, 255) in float. A range so narrow that inv overflowed to inf (hi - lo < 7.5e-37) takes
// the float formula itself (x * inv is then +-inf or NaN, which the integer conversion would not clamp alike).
void quantize_row(const float* xr, std::size_t k, const RowQuantization& rq, bool finite, float extra_scale,
                  std::uint8_t* qr, std::size_t ldq, float* scale, std::int32_t* zero) {
  const std::int32_t z = rq.zero;
  const __m512 vinv = _mm512_set1_ps(rq.inv);
  const __m512i vz = _mm512_set1_epi32(z), zeros = _mm512_setzero_si512();
  if (finite && !std::isfinite(rq.inv)) {
    const __m512 fz = _mm512_set1_ps(float(z));
    for (std::size_t i = 0; i < k; i += 16) {
      const __mmask16 m = lane_mask(long(k - i));
      __m512 t = _mm512_add_ps(_mm512_roundscale_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, xr + i), vinv),
                                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), fz);
      t = _mm512_min_ps(_mm512_max_ps(t, _mm512_setzero_ps()), _mm512_set1_ps(255.0f));
      _mm_mask_storeu_epi8(qr + i, m, _mm512_cvtusepi32_epi8(_mm512_cvtps_epu32(t)));
    }
  } else if (finite) {
    std::size_t i = 0;
    for (; i + 16 <= k; i += 16) {
      const __m512i t = _mm512_cvt_roundps_epi32(_mm512_mul_ps(_mm512_loadu_ps(xr + i), vinv),
                                                 _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(qr + i),
                       _mm512_cvtusepi32_epi8(_mm512_max_epi32(_mm512_add_epi32(t, vz), zeros)));
    }
    if (i < k) {
      const __mmask16 m = lane_mask(long(k - i));
      const __m512i t = _mm512_cvt_roundps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, xr + i), vinv),
                                                 _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      _mm_mask_storeu_epi8(qr + i, m, _mm512_cvtusepi32_epi8(_mm512_max_epi32(_mm512_add_epi32(t, vz), zeros)));
    }
  } else {
    std::memset(qr, int(z), k);
  }
  if (ldq > k) std::memset(qr + k, int(z), ldq - k);
  *scale = finite ? rq.scale * extra_scale : __builtin_nanf("");
  *zero = z;
}

}  // namespace

// The float operations of quantize_rows__scalar, 16 lanes at a time (min/max are exact, so the order of the
// reduction does not matter; the per-value operations are the same roundings), hence bit-identical results.
void quantize_rows__avx512(const float* x, std::size_t ldx, std::size_t rows, std::size_t k, float extra_scale,
                           std::uint8_t* q, std::size_t ldq, float* scale, std::int32_t* zero) {
  for (std::size_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ldx;
    __m512 vlo = _mm512_setzero_ps(), vhi = _mm512_setzero_ps();
    __mmask16 bad = 0;
    for (std::size_t i = 0; i < k; i += 16) {
      const __mmask16 m = lane_mask(long(k - i));
      const __m512 v = _mm512_maskz_loadu_ps(m, xr + i);
      bad |= _mm512_fpclass_ps_mask(v, 0x99);  // QNaN | +inf | -inf | SNaN
      vlo = _mm512_min_ps(vlo, v);
      vhi = _mm512_max_ps(vhi, v);
    }
    const bool finite = bad == 0;
    const RowQuantization rq = row_quantization(_mm512_reduce_min_ps(vlo), _mm512_reduce_max_ps(vhi), finite);
    quantize_row(xr, k, rq, finite, extra_scale, q + r * ldq, ldq, scale + r, zero + r);
  }
}

}  // namespace aefast
