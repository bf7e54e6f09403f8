#include "dispatch.h"

#include "kernels/avx2.h"
#include "kernels/avx512.h"
#include "kernels/avx512_lowp.h"
#include "kernels/scalar.h"

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

static const IsaKernels kScalar = {
    "scalar",
    {{dense_f32w_f32x__scalar, dense_f32w_u8x__scalar},
     {dense_f16w_f32x__scalar, dense_f16w_u8x__scalar},
     {dense_i8w_f32x__scalar, dense_i8w_u8x__scalar}},
    elu__scalar,
    dense_q8__scalar, quantize_rows__scalar, "scalar",
    dense_bf16__scalar, to_bf16_rows__scalar, "scalar",
};

static const IsaKernels kAvx2 = {
    "avx2",
    {{dense_f32w_f32x__avx2, dense_f32w_u8x__avx2},
     {dense_f16w_f32x__avx2, dense_f16w_u8x__avx2},
     {dense_i8w_f32x__avx2, dense_i8w_u8x__avx2}},
    elu__avx2,
    dense_q8__avx2, quantize_rows__avx2, "avx2",
    dense_bf16__avx2, to_bf16_rows__scalar, "avx2",
};

// The AVX-512 level: F/BW/DQ/VL (+ the AVX2/FMA/F16C its files are also built with): zmm fp32/fp16 kernels;
// weight-only int8 (fp32 compute) borrows AVX2's; VNNI and BF16 kernels where the CPU has those extensions, else
// the AVX2 ones.
static IsaKernels avx512_kernels(const CpuFeatures& f) {
  IsaKernels isa = kAvx2;
  isa.name = "avx512";
  isa.dense[int(WeightType::f32)][0] = dense_f32w_f32x__avx512;
  isa.dense[int(WeightType::f32)][1] = dense_f32w_u8x__avx512;
  isa.dense[int(WeightType::f16)][0] = dense_f16w_f32x__avx512;
  isa.dense[int(WeightType::f16)][1] = dense_f16w_u8x__avx512;
  isa.elu = elu__avx512;
  if (f.avx512vnni) {
    isa.q8 = dense_q8__avx512vnni;
    isa.quantize_rows = quantize_rows__avx512;
    isa.q8_name = "avx512vnni";
  }
  if (f.avx512bf16) {
    isa.bf16 = dense_bf16__avx512bf16;
    isa.to_bf16 = to_bf16_rows__avx512bf16;
    isa.bf16_name = "avx512bf16";
  }
  return isa;
}

// Best first. The AVX2 files are compiled with -mavx2 -mfma -mf16c, so they need all three.
static std::vector<const IsaKernels*> usable() {
  std::vector<const IsaKernels*> isas;
  const CpuFeatures& f = cpu_features();
  const bool avx2 = f.avx2 && f.fma && f.f16c;
  static const IsaKernels kAvx512 = avx512_kernels(f);
  if (avx2 && f.avx512f && f.avx512bw && f.avx512dq && f.avx512vl) isas.push_back(&kAvx512);
  if (avx2) isas.push_back(&kAvx2);
  isas.push_back(&kScalar);
  return isas;
}

std::vector<std::string> usable_isas() {
  std::vector<std::string> names;
  for (const IsaKernels* isa : usable()) names.emplace_back(isa->name);
  return names;
}

const IsaKernels* find_isa(const std::string& name) {
  const auto isas = usable();
  if (name == "auto") return isas.front();
  for (const IsaKernels* isa : isas)
    if (name == isa->name) return isa;
  return nullptr;
}

}  // namespace aefast
