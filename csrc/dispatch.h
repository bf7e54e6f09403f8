// Run-time ISA selection. The only unit that knows which kernel files exist.
#pragma once
#include <string>

namespace aefast {

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool avx512f = false;
};

// CPUID (and OS support for the YMM state via XGETBV), read once.
const CpuFeatures& cpu_features();

}  // namespace aefast
