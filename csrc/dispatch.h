// Run-time ISA selection. The only unit that knows which kernel files exist.
#pragma once
#include <string>
#include <vector>

#include "kernels/dense.h"

namespace aefast {

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool avx512f = false;
};

// CPUID (and OS support for the YMM state via XGETBV), read once.
const CpuFeatures& cpu_features();

// One ISA's kernels: dense[weight type][input type] and the standalone ELU.
struct IsaKernels {
  const char* name;
  DenseBlockFn dense[3][2];
  EluFn elu;
};

// Names of the ISAs usable on this CPU, best first; "scalar" is always last.
std::vector<std::string> usable_isas();

// The kernels of a usable ISA by name ("auto" = the best), or nullptr if the
// name is unknown or the CPU cannot run it.
const IsaKernels* find_isa(const std::string& name);

}  // namespace aefast
