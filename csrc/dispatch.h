// Run-time ISA selection. The only unit that knows which kernel files exist.
#pragma once
#include <string>
#include <vector>

#include "kernels/dense.h"

namespace aefast {

// Each flag is set only when the CPU has the instructions AND the OS saves the registers they use (XGETBV).
struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512dq = false;
  bool avx512vl = false;
  bool avx512vnni = false;   // vpdpbusd on zmm/ymm (EVEX)
  bool avx512bf16 = false;   // vdpbf16ps, vcvtne2ps2bf16
  bool avx_vnni = false;     // vpdpbusd VEX form (Intel Alder Lake+; an illegal instruction on AMD Zen 4)
};

// CPUID (and OS support for the YMM/ZMM state via XGETBV), read once.
const CpuFeatures& cpu_features();

// One ISA's kernels: dense[weight type][input type] (fp32 compute), the standalone ELU, and the low-precision
// kernels. An ISA level may borrow a lower level's kernel where the CPU lacks an extension (an AVX-512 CPU
// without VNNI runs q8 with the AVX2 kernel); q8_name / bf16_name say which kernel really runs.
struct IsaKernels {
  const char* name;
  DenseBlockFn dense[3][2];
  EluFn elu;
  Q8DenseFn q8;
  QuantizeRowsFn quantize_rows;
  const char* q8_name;
  Bf16DenseFn bf16;
  ToBf16RowsFn to_bf16;
  const char* bf16_name;
};

// Names of the ISAs usable on this CPU, best first; "scalar" is always last.
std::vector<std::string> usable_isas();

// The kernels of a usable ISA by name ("auto" = the best), or nullptr if the
// name is unknown or the CPU cannot run it.
const IsaKernels* find_isa(const std::string& name);

}  // namespace aefast
