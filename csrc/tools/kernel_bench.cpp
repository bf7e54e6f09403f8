// Standalone single-thread timing of the f32/f16 dense kernels, AVX2 against AVX-512 in the same
// process, beside the core's fp32 FMA peak (the register-only loops of csrc/kernels/peak*.cpp, as
// aefast._core.peak measures them); not part of the extension. Built by CMake with each kernel file's
// own flags, from the repository root:
//   cmake -S . -B build/tools -DAEFAST_TOOLS=ON -Dpybind11_DIR=$(python3 -m pybind11 --cmakedir)
//   cmake --build build/tools --target kernel_bench
//   build/tools/kernel_bench peak                 (ymm and zmm FMA peaks; zmm needs AVX-512 F/BW/DQ/VL)
//   build/tools/kernel_bench ROWS K N REPS [f32,f16] [avx2,avx512]
//       e.g. 96 1000 1000 200 (row block), 1 1000 784 3000 f32,f16 avx512 (batch 1, fp32 against fp16 weights)
// Runs every listed ISA x weight type in alternating rounds (so a noisy neighbour hits both alike), each round REPS/10
// calls (random weights, ELU), and prints each ISA's best time, its GFLOP/s and the ratio to the first.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/avx2.h"
#include "kernels/avx512.h"
#include "kernels/peak.h"

using namespace aefast;

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The core's FMA throughput from the shared register-only loop (peak.h), printed as GFLOP/s (2 flops per
// multiply-add) for each kind this CPU can run.
void peak() {
  for (const char* kind : {"fp32_fma", "fp32_fma_zmm"}) {
    const std::string problem = peak_kind_problem(kind);
    if (!problem.empty()) {
      std::printf("%s: skipped (%s)\n", kind, problem.c_str());
      continue;
    }
    std::printf("%s peak: %.1f GFLOP/s\n", kind, 2 * peak_gmacs(kind, 1.0));
  }
}

struct Kernel {
  std::string name, weights;
  DenseBlockFn fn;
};

bool listed(const std::string& list, const std::string& name) {
  return ("," + list + ",").find("," + name + ",") != std::string::npos;
}

// The kernels of every listed ISA for every listed weight type (f32, f16), ISA-major.
std::vector<Kernel> kernels(const std::string& weights, const std::string& isas) {
  const std::vector<Kernel> all = {{"avx2", "f32", dense_f32w_f32x__avx2},     {"avx2", "f16", dense_f16w_f32x__avx2},
                                   {"avx512", "f32", dense_f32w_f32x__avx512}, {"avx512", "f16", dense_f16w_f32x__avx512}};
  std::vector<Kernel> chosen;
  for (const Kernel& kernel : all)
    if (listed(isas, kernel.name) && listed(weights, kernel.weights)) chosen.push_back(kernel);
  return chosen;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && std::strcmp(argv[1], "peak") == 0) {
    peak();
    return 0;
  }
  const std::string weights = argc > 5 ? argv[5] : "f32";
  const std::string isas = argc > 6 ? argv[6] : "avx2,avx512";
  const std::vector<Kernel> chosen = kernels(weights, isas);
  if (argc < 5 || argc > 7 || chosen.empty()) {
    std::fprintf(stderr, "usage: %s peak | ROWS K N REPS [f32,f16] [avx2,avx512]\n", argv[0]);
    return 2;
  }
  const std::size_t rows = std::atoi(argv[1]), k = std::atoi(argv[2]), n = std::atoi(argv[3]);
  const int reps = std::max(10, std::atoi(argv[4]));
  const std::size_t panels = panel_count(n);
  std::vector<float> a(rows * k), w(panels * k * kPanelWidth), c(rows * n), scale(panels * kPanelWidth, 1.0f),
      bias(panels * kPanelWidth, 0.0f);
  std::vector<std::uint16_t> w16(w.size());
  for (float& v : a) v = float(std::rand()) / RAND_MAX;
  for (std::size_t i = 0; i < w.size(); ++i) {
    w[i] = float(std::rand()) / RAND_MAX - 0.5f;
    const _Float16 half = static_cast<_Float16>(w[i]);  // GCC >= 12 / Clang on x86-64: round to nearest even
    std::memcpy(&w16[i], &half, 2);
  }
  std::vector<double> best(chosen.size(), 1e9);
  for (int round = 0; round < 10; ++round)
    for (std::size_t i = 0; i < chosen.size(); ++i) {
      const void* packed = chosen[i].weights == "f16" ? static_cast<const void*>(w16.data()) : w.data();
      const DenseBlock block{a.data(), k, packed, scale.data(), bias.data(), 1.0f, k, n, c.data(), n,
                             0,        rows, 0,  panels,       Activation{ActivationKind::elu, 1.0f}, false};
      for (int rep = 0; rep < reps / 10; ++rep) {
        const auto start = std::chrono::steady_clock::now();
        chosen[i].fn(block);
        best[i] = std::min(best[i], seconds_since(start));
      }
    }
  for (std::size_t i = 0; i < chosen.size(); ++i)
    std::printf("%-6s %s rows %zu K %zu N %zu: %8.1f us, %6.1f GFLOP/s, %.2fx %s %s\n", chosen[i].name.c_str(),
                chosen[i].weights.c_str(), rows, k, n, best[i] * 1e6, 2.0 * rows * k * n / best[i] / 1e9,
                best[0] / best[i], chosen[0].name.c_str(), chosen[0].weights.c_str());
}
