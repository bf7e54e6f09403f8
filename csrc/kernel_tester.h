// Runs ONE named kernel on one block, outside any Network: the hook behind aefast._core._test_kernel, which drives
// each kernel through its tile edges against its scalar twin (tests/test_microkernels.py). Test-only; the binding
// validates every field against the kernel's contract (dense.h) before calling.
#pragma once
#include <cstddef>
#include <cstdint>

#include "dispatch.h"

namespace aefast {

struct KernelTestCase {
  Compute compute;
  WeightType weight_type;   // f32/f16/i8 for Compute::f32; i8 for q8; bf16 for bf16
  InputType input_type;     // f32 compute: f32 or u8 A; q8: u8 codes; bf16: bf16 bits (read as u16)
  const void* weight;       // row-major W[k][n], packed here exactly as Network packs it
  std::size_t k, n;
  const float* scale;       // (n,) or null (1): the fp32 per-channel scale, or the q8 w_scale
  const float* bias;        // (n,)
  const void* a;            // A[r * lda + i]
  std::size_t lda;
  bool a_tail_safe;         // q8: rows readable up to 4 ceil(k / 4)
  const float* a_scale;     // q8: per row
  const std::int32_t* a_zero;
  float input_scale;        // f32 and bf16 computes
  void* c;                  // float, or bf16 bits when c_bf16
  std::size_t ldc;
  bool c_bf16;
  std::size_t row_begin, row_end, panel_begin, panel_end;
  Activation activation;
  bool clip;
};

// Runs the dense kernel of family `kernel` (find_*_kernels(kernel) must be non-null) on the case.
void run_kernel_test(const std::string& kernel, const KernelTestCase& t);

}  // namespace aefast
