// The peak kinds, which CPU features each needs, and the windowed timer (compiled without ISA flags: it only
// calls the per-ISA loops after checking cpu_features()).
#include "peak.h"

#include <chrono>

#include "cpu_features.h"

namespace aefast {

namespace {

using PeakLoop = std::uint64_t (*)(std::uint64_t, float, float*);

struct PeakKind {
  const char* name;
  PeakLoop loop;
  const char* needs;  // the CPU features the loop's file is compiled for, for error messages
  bool (*usable)(const CpuFeatures&);
};

const PeakKind kPeakKinds[] = {
    {"fp32_fma", peak_fp32_fma_ymm__avx2, "AVX2 and FMA", [](const CpuFeatures& f) { return f.avx2 && f.fma; }},
    {"fp32_fma_zmm", peak_fp32_fma_zmm__avx512, "AVX-512 F/BW/DQ/VL", has_avx512_base},
    {"int8_vpdpbusd", peak_int8_vpdpbusd__avx512vnni, "AVX-512 F/BW/DQ/VL and AVX512_VNNI",
     [](const CpuFeatures& f) { return has_avx512_base(f) && f.avx512vnni; }},
    {"bf16_vdpbf16ps", peak_bf16_vdpbf16ps__avx512bf16, "AVX-512 F/BW/DQ/VL and AVX512_BF16",
     [](const CpuFeatures& f) { return has_avx512_base(f) && f.avx512bf16; }},
};

const PeakKind* find_kind(const std::string& name) {
  for (const PeakKind& k : kPeakKinds)
    if (name == k.name) return &k;
  return nullptr;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

std::vector<std::string> usable_peak_kinds() {
  std::vector<std::string> names;
  for (const PeakKind& k : kPeakKinds)
    if (k.usable(cpu_features())) names.emplace_back(k.name);
  return names;
}

std::string peak_kind_problem(const std::string& kind) {
  const PeakKind* k = find_kind(kind);
  if (!k) return "unknown peak kind '" + kind + "'";
  if (!k->usable(cpu_features())) return "peak kind '" + kind + "' needs " + k->needs + ", which this CPU lacks";
  return "";
}

double peak_gmacs(const std::string& kind, double seconds) {
  const PeakLoop loop = find_kind(kind)->loop;
  constexpr double kWindowS = 2e-3;
  float sink = 0;
  std::uint64_t iterations = 256;
  double best = 0;  // multiply-adds per second
  const auto start = std::chrono::steady_clock::now();
  do {
    const auto window = std::chrono::steady_clock::now();
    const std::uint64_t madds = loop(iterations, 1.0f + float(iterations & 7), &sink);
    const double t = seconds_since(window);
    if (t < kWindowS / 2 && iterations < (std::uint64_t(1) << 40)) {
      iterations *= 2;  // still sizing the window: too short to time well
      continue;
    }
    if (t > 0 && madds / t > best) best = madds / t;
  } while (seconds_since(start) < seconds || best == 0);
  volatile float keep = sink;  // the loops' results are used
  (void)keep;
  return best / 1e9;
}

}  // namespace aefast
