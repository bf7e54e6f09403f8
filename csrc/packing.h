// The packed weight layouts of dense.h, built from row-major W[in][out]: shared by Network and the kernel tester,
// so a kernel under test reads exactly what it reads inside a Network.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/dense.h"

namespace aefast {

// Bytes per stored weight: 4 (f32), 2 (f16, bf16), 1 (i8).
std::size_t element_size(WeightType t);

// k per packed group of a compute: 1 (f32), kQuadK (q8), kPairK (bf16).
std::size_t group_of(Compute compute);

// Packs W[in][out] (elements of es bytes) into panels of 16 columns with k in groups of `group` (1: the fp32
// layout; 4: q8; 2: bf16; see dense.h), zero padded in both k and columns.
std::vector<std::uint8_t> pack_panels(const void* weight, std::size_t in, std::size_t out, std::size_t es,
                                      std::size_t group);

// colsum[j] = sum_k W[k, j] of int8 W[in][out], padded with zeros to 16 P entries (the q8 zero-point term).
std::vector<std::int32_t> column_sums(const std::int8_t* weight, std::size_t in, std::size_t out);

// v[0 .. n) then `pad` up to 16 P entries (P = panel_count(n)).
std::vector<float> padded(const float* v, std::size_t n, float pad);

}  // namespace aefast
