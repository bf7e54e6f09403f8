#include "kernel_tester.h"

#include "packing.h"

namespace aefast {

void run_kernel_test(const std::string& kernel, const KernelTestCase& t) {
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
    find_q8_kernels(kernel)->dense(block);
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

}  // namespace aefast
