#include "packing.h"

#include <algorithm>
#include <cstring>

namespace aefast {

std::size_t element_size(WeightType t) {
  switch (t) {
    case WeightType::f32: return 4;
    case WeightType::f16: return 2;
    case WeightType::i8: return 1;
    case WeightType::bf16: return 2;
  }
  return 4;
}

std::size_t group_of(Compute compute) {
  return compute == Compute::q8 ? kQuadK : compute == Compute::bf16 ? kPairK : 1;
}

std::vector<std::uint8_t> pack_panels(const void* weight, std::size_t in, std::size_t out, std::size_t es,
                                      std::size_t group) {
  const std::size_t panels = panel_count(out), kg = (in + group - 1) / group;
  std::vector<std::uint8_t> packed(panels * kg * group * kPanelWidth * es, 0);
  const auto* src = static_cast<const std::uint8_t*>(weight);
  for (std::size_t p = 0; p < panels; ++p) {
    const std::size_t j0 = p * kPanelWidth, cols = std::min(kPanelWidth, out - j0);
    for (std::size_t k = 0; k < in; ++k)
      for (std::size_t c = 0; c < cols; ++c)
        std::memcpy(&packed[(((p * kg + k / group) * kPanelWidth + c) * group + k % group) * es],
                    src + (k * out + j0 + c) * es, es);
  }
  return packed;
}

std::vector<std::int32_t> column_sums(const std::int8_t* weight, std::size_t in, std::size_t out) {
  std::vector<std::int32_t> colsum(panel_count(out) * kPanelWidth, 0);
  for (std::size_t k = 0; k < in; ++k)
    for (std::size_t j = 0; j < out; ++j) colsum[j] += weight[k * out + j];
  return colsum;
}

std::vector<float> padded(const float* v, std::size_t n, float pad) {
  std::vector<float> out(panel_count(n) * kPanelWidth, pad);
  std::copy(v, v + n, out.begin());
  return out;
}

}  // namespace aefast
