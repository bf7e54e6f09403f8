#include "kernel_tester.h"

#include <algorithm>
#include <chrono>
#include <limits>

#include "kernels/scalar.h"
#include "packing.h"

namespace aefast {

void run_kernel_test(const std::string& kernel, std::size_t tile, const KernelTestCase& t) {
  const std::vector<std::uint8_t> packed =
      pack_panels(t.weight, t.k, t.n, element_size(t.weight_type), group_of(t.compute));
  std::vector<float> scale(panel_count(t.n) * kPanelWidth, 1.0f);
  if (t.scale) scale = padded(t.scale, t.n, 1.0f);
  const std::vector<float> bias = padded(t.bias, t.n, 0.0f);
  if (t.compute == Compute::q8) {
    const std::vector<std::int32_t> colsum = column_sums(static_cast<const std::int8_t*>(t.weight), t.k, t.n);
    const Q8DenseBlock block{static_cast<const std::uint8_t*>(t.a), t.lda, t.a_tail_safe, t.a_scale, t.a_zero,
                             reinterpret_cast<const std::int8_t*>(packed.data()), colsum.data(), scale.data(),
                             bias.data(), t.k, t.n, static_cast<float*>(t.c), t.ldc, t.row_begin, t.row_end,
                             t.panel_begin, t.panel_end, t.activation, t.clip};
    find_q8_kernels(kernel)->dense(tile)(block);
  } else if (t.compute == Compute::bf16) {
    const Bf16DenseBlock block{static_cast<const std::uint16_t*>(t.a), t.lda,
                               reinterpret_cast<const std::uint16_t*>(packed.data()), bias.data(), t.input_scale,
                               t.k, t.n, t.c, t.ldc, t.c_bf16, t.row_begin, t.row_end, t.panel_begin, t.panel_end,
                               t.activation, t.clip};
    find_bf16_kernels(kernel)->dense(tile)(block);
  } else {
    const DenseBlock block{t.a, t.lda, packed.data(), scale.data(), bias.data(), t.input_scale, t.k, t.n,
                           static_cast<float*>(t.c), t.ldc, t.row_begin, t.row_end, t.panel_begin, t.panel_end,
                           t.activation, t.clip};
    const F32Kernels* f32 = find_f32_kernels(kernel);
    if (t.weight_type == WeightType::f16) f32->f16_tiles->tiles[tile].dense[int(t.input_type)](block);
    else f32->dense[int(t.weight_type)][int(t.input_type)](block);
  }
}

namespace {

// Times `tiles` functions (each runs the whole block) as time_tiles says.
template <class Run>
std::vector<double> time_each(std::size_t tiles, std::size_t rounds, Run run) {
  std::vector<double> best(tiles, std::numeric_limits<double>::infinity());
  for (std::size_t t = 0; t < tiles; ++t) run(t);
  for (std::size_t round = 0; round < rounds; ++round)
    for (std::size_t t = 0; t < tiles; ++t) {
      const auto start = std::chrono::steady_clock::now();
      run(t);
      const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
      best[t] = std::min(best[t], took.count());
    }
  return best;
}

}  // namespace

std::vector<double> time_tiles(const std::string& precision, const std::string& kernel, std::size_t k, std::size_t n,
                               std::size_t rows, std::size_t rounds) {
  std::uint32_t state = 0x9e3779b9u;
  auto next = [&state] { return state = state * 1664525u + 1013904223u; };
  const std::vector<float> ones(panel_count(n) * kPanelWidth, 1e-3f), bias(panel_count(n) * kPanelWidth, 0.0f);
  const Activation elu{ActivationKind::elu, 1.0f};
  std::vector<float> c(rows * n);
  if (precision == "q8") {
    const Q8Kernels* q8 = find_q8_kernels(kernel);
    std::vector<std::int8_t> w(k * n);
    for (auto& v : w) v = std::int8_t(int(next() >> 24) % 255 - 127);
    const std::size_t lda = quad_count(k) * kQuadK;
    std::vector<std::uint8_t> a(rows * lda);
    for (auto& v : a) v = std::uint8_t(next() >> 24);
    const std::vector<std::uint8_t> packed = pack_panels(w.data(), k, n, 1, kQuadK);
    const std::vector<std::int32_t> colsum = column_sums(w.data(), k, n);
    const std::vector<float> a_scale(rows, 4e-3f);
    const std::vector<std::int32_t> a_zero(rows, 100);
    const Q8DenseBlock block{a.data(), lda, true, a_scale.data(), a_zero.data(),
                             reinterpret_cast<const std::int8_t*>(packed.data()), colsum.data(), ones.data(),
                             bias.data(), k, n, c.data(), n, 0, rows, 0, panel_count(n), elu, false};
    return time_each(q8->tiles->count, rounds, [&](std::size_t t) { q8->dense(t)(block); });
  }
  // bf16 and f16: 16-bit weights (bf16 or IEEE half bits of values in [-1/32, 1/32)) and inputs in [0, 1).
  std::vector<std::uint16_t> w(k * n);
  for (auto& v : w) v = precision == "bf16" ? float_to_bf16(float(int(next() >> 16) - 32768) * (1.0f / 1048576))
                                            : std::uint16_t(0x2000 | ((next() >> 16) & 0x83ff));
  if (precision == "bf16") {
    const Bf16Kernels* bf16 = find_bf16_kernels(kernel);
    const std::size_t lda = pair_count(k) * kPairK;
    std::vector<std::uint16_t> a(rows * lda, 0);
    for (std::size_t r = 0; r < rows; ++r)
      for (std::size_t i = 0; i < k; ++i) a[r * lda + i] = float_to_bf16(float(next() >> 8) * (1.0f / 16777216));
    const std::vector<std::uint8_t> packed = pack_panels(w.data(), k, n, 2, kPairK);
    const Bf16DenseBlock block{a.data(), lda, reinterpret_cast<const std::uint16_t*>(packed.data()), bias.data(),
                               1.0f, k, n, c.data(), n, false, 0, rows, 0, panel_count(n), elu, false};
    return time_each(bf16->tiles->count, rounds, [&](std::size_t t) { bf16->dense(t)(block); });
  }
  const F32Kernels* f32 = find_f32_kernels(kernel);
  std::vector<float> a(rows * k);
  for (auto& v : a) v = float(next() >> 8) * (1.0f / 16777216);
  const std::vector<std::uint8_t> packed = pack_panels(w.data(), k, n, 2, 1);
  const DenseBlock block{a.data(), k, packed.data(), ones.data(), bias.data(), 1.0f, k, n, c.data(), n, 0, rows, 0,
                         panel_count(n), elu, false};
  return time_each(f32->f16_tiles->count, rounds,
                   [&](std::size_t t) { f32->f16_tiles->tiles[t].dense[int(InputType::f32)](block); });
}

}  // namespace aefast
