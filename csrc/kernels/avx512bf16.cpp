// AVX512_BF16 kernels: bf16 activations x bf16 weights with fp32 accumulation (vdpbf16ps, or on Intel CPUs fp32
// FMAs on the exactly widened values for tiles of >= 4 rows: bf16_tiles below).
//
// vdpbf16ps does 32 multiply-adds (16 lanes x a pair) per zmm instruction; on Zen 4 one per cycle (110-117 G/s per
// core, twice the fp32 FMA rate). Its latency needs >= 6 independent accumulators; the main tile is 8 rows x 32
// columns (16 accumulators, 2 weight zmm per k-pair, the row's pair broadcast from memory), as for q8. Weights are
// packed [panel][K2][16][2] so one k-pair of one panel is one zmm. The epilogue stores float (last layer) or bf16
// (vcvtneps2bf16, the next layer's input, zero padded to an even width): no separate conversion pass between layers.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "avx512_lowp.h"
#include "avx512_lowp_tiles.h"
#include "simd_avx512.h"

namespace aefast {
namespace {

using avx512::lane_mask;
using avx512::PanelSum;

constexpr std::size_t kPairElems = kPanelWidth * kPairK;  // bf16 values in one k-pair of one panel: 32 = 1 zmm

template <int MR, int NP>
inline void zero(__m512 (&acc)[MR][NP]) {
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 16
    for (int p = 0; p < NP; ++p) acc[r][p] = _mm512_setzero_ps();
}

// The epilogue of an MR x NP tile of fp32 sums: C = act(acc * input_scale + bias), stored as float or bf16 bits.
template <int MR, int NP>
inline void store(const Bf16DenseBlock& b, std::size_t r0, std::size_t p0, const __m512 (&acc)[MR][NP]) {
  const __m512 input_scale = _mm512_set1_ps(b.input_scale);
  avx512::store_tile<MR, NP>(
      b, r0, p0,
      [&](int p, std::size_t) { return [&acc, p, input_scale](int r) { return PanelSum{acc[r][p], input_scale}; }; },
      [&](std::size_t row, std::size_t j, __mmask16 mask, __m512 v) {
        if (b.c_bf16)
          _mm256_mask_storeu_epi16(static_cast<std::uint16_t*>(b.c) + row * b.ldc + j, mask,
                                   (__m256i)_mm512_cvtneps_pbh(v));
        else
          _mm512_mask_storeu_ps(static_cast<float*>(b.c) + row * b.ldc + j, mask, v);
      });
}

// C[r0 .. r0 + MR, panels p0 .. p0 + NP] over all of K, with vdpbf16ps.
struct Bf16Tile {
  template <int MR, int NP>
  static void run(const Bf16DenseBlock& b, std::size_t r0, std::size_t p0) {
    const std::size_t k2 = pair_count(b.k);
    const std::size_t panel_stride = k2 * kPairElems;
    const std::uint16_t* w = b.packed_w + p0 * panel_stride;
    const std::uint16_t* a = b.a + r0 * b.lda;

    __m512 acc[MR][NP];
    zero(acc);

    for (std::size_t q = 0; q < k2; ++q) {
      __m512bh wv[NP];
#pragma GCC unroll 16
      for (int p = 0; p < NP; ++p) {
        // Few rows: the weight streams are the bottleneck (see the q8 kernel); fetch them ahead into L1.
        if constexpr (MR <= 4) _mm_prefetch(reinterpret_cast<const char*>(w + p * panel_stride + (q + 8) * kPairElems), _MM_HINT_T0);
        wv[p] = (__m512bh)_mm512_loadu_si512(w + p * panel_stride + q * kPairElems);
      }
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r) {
        std::uint32_t pair;
        std::memcpy(&pair, a + r * b.lda + q * kPairK, 4);
        const __m512bh av = (__m512bh)_mm512_set1_epi32(int(pair));
#pragma GCC unroll 16
        for (int p = 0; p < NP; ++p) acc[r][p] = _mm512_dpbf16_ps(acc[r][p], wv[p], av);
      }
    }

    store(b, r0, p0, acc);
  }
};

// One float scratch per thread for a tile's activation rows widened to fp32, grown on demand, freed when the
// thread exits (8 rows x 2 K2 floats: 32 KB at K = 1000).
struct RowScratch {
  float* data = nullptr;
  std::size_t floats = 0;
  ~RowScratch() { std::free(data); }
  float* get(std::size_t n) {
    if (n <= floats) return data;
    std::free(data);
    floats = 0;
    data = static_cast<float*>(std::aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64));
    if (data) floats = n;
    return data;
  }
};

// The calling thread's scratch of at least n floats (nullptr when it cannot be allocated).
float* row_scratch(std::size_t n) {
  thread_local RowScratch scratch;
  return scratch.get(n);
}

// The same tile in fp32 FMAs on bf16 values widened exactly (a bf16 is the high half of its float): per k-pair and
// panel the weight zmm gives its even rows by a shift and its odd rows by a mask, and each row's pair is read from its
// activations widened once per tile; every sum takes the odd product, then the even one, each rounded, as
// vdpbf16ps (and the AVX2 and scalar kernels) do. vdpbf16ps also treats subnormal operands as zero and flushes a
// subnormal result of each step to zero (DAZ and FTZ are implied, whatever MXCSR says); the FMAs here run with
// MXCSR's DAZ and FTZ bits set for the sums (restored before the epilogue, which both tiles run with the caller's
// MXCSR), so the sums match vdpbf16ps bit for bit there too (tests/test_bf16_tiles.py, subnormal cases). For CPUs whose
// vdpbf16ps issues at half the FMA rate (below).
constexpr unsigned kDazFtz = 0x8040;  // MXCSR: FTZ (bit 15) | DAZ (bit 6)

struct Bf16FmaTile {
  template <int MR, int NP>
  static void run(const Bf16DenseBlock& b, std::size_t r0, std::size_t p0) {
    const std::size_t k2 = pair_count(b.k), width = k2 * kPairK;
    float* af = row_scratch(MR * width);
    if (!af) return Bf16Tile::run<MR, NP>(b, r0, p0);  // no memory for the scratch: vdpbf16ps, the same sums
    for (int r = 0; r < MR; ++r) {
      const std::uint16_t* row = b.a + (r0 + r) * b.lda;
      for (std::size_t i = 0; i < width; i += 16) {
        const __mmask16 m = lane_mask(long(width - i));
        const __m512i wide = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, row + i));
        _mm512_mask_storeu_ps(af + r * width + i, m, _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16)));
      }
    }
    const std::size_t panel_stride = k2 * kPairElems;
    const std::uint16_t* w = b.packed_w + p0 * panel_stride;
    const __m512i high = _mm512_set1_epi32(int(0xffff0000u));

    __m512 acc[MR][NP];
    zero(acc);

    const unsigned csr = _mm_getcsr();
    _mm_setcsr(csr | kDazFtz);
    for (std::size_t q = 0; q < k2; ++q) {
      __m512 w_odd[NP], w_even[NP];
#pragma GCC unroll 16
      for (int p = 0; p < NP; ++p) {
        if constexpr (MR <= 4) _mm_prefetch(reinterpret_cast<const char*>(w + p * panel_stride + (q + 8) * kPairElems), _MM_HINT_T0);
        const __m512i raw = _mm512_loadu_si512(w + p * panel_stride + q * kPairElems);
        w_odd[p] = _mm512_castsi512_ps(_mm512_and_si512(raw, high));
        w_even[p] = _mm512_castsi512_ps(_mm512_slli_epi32(raw, 16));
      }
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r) {
        const __m512 a_odd = _mm512_set1_ps(af[r * width + 2 * q + 1]);
        const __m512 a_even = _mm512_set1_ps(af[r * width + 2 * q]);
#pragma GCC unroll 16
        for (int p = 0; p < NP; ++p) acc[r][p] = _mm512_fmadd_ps(a_odd, w_odd[p], acc[r][p]);
#pragma GCC unroll 16
        for (int p = 0; p < NP; ++p) acc[r][p] = _mm512_fmadd_ps(a_even, w_even[p], acc[r][p]);
      }
    }
    _mm_setcsr(csr);
    store(b, r0, p0, acc);
  }
};

// Tiles of at least kMinFmaRows rows on Bf16FmaTile, the others on Bf16Tile.
template <int kMinFmaRows>
struct MixedTile {
  template <int MR, int NP>
  static void run(const Bf16DenseBlock& b, std::size_t r0, std::size_t p0) {
    if constexpr (MR >= kMinFmaRows)
      Bf16FmaTile::run<MR, NP>(b, r0, p0);
    else
      Bf16Tile::run<MR, NP>(b, r0, p0);
  }
};

// Which tiles: vdpbf16ps does 32 multiply-adds per instruction; at one per cycle (AMD Zen 4 and 5) it is twice the
// fp32 FMA rate, but Intel's cores issue it at one per 2 cycles, half of their two zmm FMAs per cycle (measured on the
// Intel Xeon of this project's machines, family 6 model 167: vdpbf16ps 51-53 G multiply-adds/s per core, zmm FMA
// 103-104). There, one core, one layer of the default model (bench/layer_rates.py --compute bf16, loaded machine):
// the FMA tile ran 4-8 row tiles at 36-50 G multiply-adds/s against 33-39 with vdpbf16ps, and 1-2 row tiles (their
// weight stream, a shift and a mask per panel and k-pair for 1-2 rows of FMAs) at 14-30 against 18-31. Hence three
// tiles: "dpbf16" (vdpbf16ps throughout, the default), "fma" (every tile on FMAs) and "mixed" (tiles of >= 4 rows on
// FMAs, the rest vdpbf16ps; the built-in choice on Intel). Which one a layer runs is chosen in Python
// (aefast/engine/tiles.py) and passed in as a tile index. All give the same sums (the order above).
template <class Tile>
void dense_bf16_tiles(const Bf16DenseBlock& b) {
  avx512::run_tiles<Tile>(b, b.k * kPairElems * 2 / kPairK);
  if (b.c_bf16 && b.n % 2 && b.panel_end * kPanelWidth >= b.n)
    for (std::size_t r = b.row_begin; r < b.row_end; ++r) static_cast<std::uint16_t*>(b.c)[r * b.ldc + b.n] = 0;
}

const Bf16KernelTile kBf16Tiles[] = {
    {"dpbf16", dense_bf16_tiles<Bf16Tile>},
    {"fma", dense_bf16_tiles<Bf16FmaTile>},
    {"mixed", dense_bf16_tiles<MixedTile<4>>},
};

}  // namespace

// Loop order and tile shapes: avx512::run_tiles (8 x 32 main tiles in L2-sized panel groups of K x 32 bytes each),
// as the q8 kernel.
void dense_bf16__avx512bf16(const Bf16DenseBlock& b) { dense_bf16_tiles<Bf16Tile>(b); }
const Bf16TileTable bf16_tiles__avx512bf16 = {kBf16Tiles, 3};

void to_bf16_rows__avx512bf16(const float* x, std::size_t ldx, std::size_t rows, std::size_t k, std::uint16_t* y,
                              std::size_t ldy) {
  for (std::size_t r = 0; r < rows; ++r) {
    std::size_t i = 0;
    for (; i < k; i += 16) {
      const __mmask16 m = lane_mask(long(k - i));
      _mm256_mask_storeu_epi16(y + r * ldy + i, m, (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, x + r * ldx + i)));
    }
    for (i = k; i < ldy; ++i) y[r * ldy + i] = 0;
  }
}

}  // namespace aefast
