// Plain reference kernels: the twins every fast kernel is tested against.
#pragma once
#include "dense.h"

namespace aefast {

// dense_<weight type>w_<input type>x__scalar: see DenseBlock in dense.h.
void dense_f32w_f32x__scalar(const DenseBlock& b);
void dense_f32w_u8x__scalar(const DenseBlock& b);
void dense_f16w_f32x__scalar(const DenseBlock& b);
void dense_f16w_u8x__scalar(const DenseBlock& b);
void dense_i8w_f32x__scalar(const DenseBlock& b);
void dense_i8w_u8x__scalar(const DenseBlock& b);
void elu__scalar(const float* x, float* y, std::size_t n);

}  // namespace aefast
