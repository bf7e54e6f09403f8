#include "cpu_features.h"

#include <cstddef>

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#define AEFAST_X86 1
#endif

namespace aefast {

static CpuFeatures detect() {
  CpuFeatures f;
#ifdef AEFAST_X86
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = c & bit_OSXSAVE;
  const bool avx = c & bit_AVX;
  bool ymm_enabled = false, zmm_enabled = false;
  if (osxsave) {
    unsigned xlo, xhi;
    __asm__("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0));
    ymm_enabled = (xlo & 0x6) == 0x6;
    zmm_enabled = (xlo & 0xe6) == 0xe6;
  }
  const bool fma = c & bit_FMA;
  const bool f16c = c & bit_F16C;
  unsigned a7 = 0, b7 = 0, c7 = 0, d7 = 0, a71 = 0, b71 = 0, c71 = 0, d71 = 0;
  if (__get_cpuid_count(7, 0, &a7, &b7, &c7, &d7) && a7 >= 1) __get_cpuid_count(7, 1, &a71, &b71, &c71, &d71);
  f.avx2 = avx && (b7 & bit_AVX2) && ymm_enabled;
  f.fma = fma && ymm_enabled;
  f.f16c = f16c && ymm_enabled;
  f.avx512f = (b7 & bit_AVX512F) && zmm_enabled;
  f.avx512bw = f.avx512f && (b7 & bit_AVX512BW);
  f.avx512dq = f.avx512f && (b7 & bit_AVX512DQ);
  f.avx512vl = f.avx512f && (b7 & bit_AVX512VL);
  f.avx512vnni = f.avx512f && (c7 & bit_AVX512VNNI);
  f.avx512bf16 = f.avx512f && (a71 & bit_AVX512BF16);   // CPUID.(EAX=7,ECX=1):EAX[5]
  f.avx_vnni = avx && ymm_enabled && (a71 & bit_AVXVNNI);   // CPUID.(EAX=7,ECX=1):EAX[4]
#endif
  return f;
}

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

std::string missing_features(const char* needs) {
  static const struct {
    const char* name;
    bool CpuFeatures::*flag;
  } kFlags[] = {{"avx2", &CpuFeatures::avx2},         {"fma", &CpuFeatures::fma},
                {"f16c", &CpuFeatures::f16c},         {"avx512f", &CpuFeatures::avx512f},
                {"avx512bw", &CpuFeatures::avx512bw}, {"avx512dq", &CpuFeatures::avx512dq},
                {"avx512vl", &CpuFeatures::avx512vl}, {"avx512vnni", &CpuFeatures::avx512vnni},
                {"avx512bf16", &CpuFeatures::avx512bf16}, {"avx_vnni", &CpuFeatures::avx_vnni}};
  std::string missing;
  const std::string all = needs;
  for (std::size_t start = 0; start < all.size();) {
    std::size_t end = all.find(' ', start);
    if (end == std::string::npos) end = all.size();
    const std::string name = all.substr(start, end - start);
    start = end + 1;
    if (name.empty()) continue;
    bool has = false;
    for (const auto& f : kFlags)
      if (name == f.name) has = cpu_features().*(f.flag);
    if (!has) missing += (missing.empty() ? "" : ", ") + name;
  }
  return missing;
}

}  // namespace aefast
