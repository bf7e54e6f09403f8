#include "kernel_tester.h"

#include <algorithm>
#include <chrono>
#include <limits>

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
    find_bf16_kernels(kernel)->dense(block);
  } else {
    const DenseBlock block{t.a, t.lda, packed.data(), scale.data(), bias.data(), t.input_scale, t.k, t.n,
                           static_cast<float*>(t.c), t.ldc, t.row_begin, t.row_end, t.panel_begin, t.panel_end,
                           t.activation, t.clip};
    find_f32_kernels(kernel)->dense[int(t.weight_type)][int(t.input_type)](block);
  }
}

std::vector<double> time_q8_tiles(const std::string& kernel, std::size_t k, std::size_t n, std::size_t rows,
                                  std::size_t rounds) {
  const Q8Kernels* q8 = find_q8_kernels(kernel);
  std::uint32_t state = 0x9e3779b9u;
  auto next = [&state] { return state = state * 1664525u + 1013904223u; };
  std::vector<std::int8_t> w(k * n);
  for (auto& v : w) v = std::int8_t(int(next() >> 24) % 255 - 127);
  const std::size_t lda = quad_count(k) * kQuadK;
  std::vector<std::uint8_t> a(rows * lda);
  for (auto& v : a) v = std::uint8_t(next() >> 24);
  const std::vector<std::uint8_t> packed = pack_panels(w.data(), k, n, 1, kQuadK);
  const std::vector<std::int32_t> colsum = column_sums(w.data(), k, n);
  const std::vector<float> w_scale(panel_count(n) * kPanelWidth, 1e-3f), bias(panel_count(n) * kPanelWidth, 0.0f);
  const std::vector<float> a_scale(rows, 4e-3f);
  const std::vector<std::int32_t> a_zero(rows, 100);
  std::vector<float> c(rows * n);
  const Q8DenseBlock block{a.data(), lda, true, a_scale.data(), a_zero.data(),
                           reinterpret_cast<const std::int8_t*>(packed.data()), colsum.data(), w_scale.data(),
                           bias.data(), k, n, c.data(), n, 0, rows, 0, panel_count(n),
                           Activation{ActivationKind::elu, 1.0f}, false};
  const std::size_t tiles = q8->tiles->count;
  std::vector<double> best(tiles, std::numeric_limits<double>::infinity());
  for (std::size_t t = 0; t < tiles; ++t) q8->dense(t)(block);
  for (std::size_t round = 0; round < rounds; ++round)
    for (std::size_t t = 0; t < tiles; ++t) {
      const auto start = std::chrono::steady_clock::now();
      q8->dense(t)(block);
      const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
      best[t] = std::min(best[t], took.count());
    }
  return best;
}

}  // namespace aefast
