// Standalone single-thread timing of the AVX2 f32 dense kernel, and of a bare FMA loop for the core's
// peak; not part of the extension build. Build and run from the repository root:
//   g++ -O3 -std=c++17 -mavx2 -mfma -mf16c -Icsrc csrc/tools/kernel_bench.cpp csrc/kernels/avx2.cpp -o /tmp/kernel_bench
//   /tmp/kernel_bench peak
//   /tmp/kernel_bench ROWS K N REPS      e.g. 96 1000 1000 200 (row block), 1 1000 100 3000 (batch 1)
// Prints the best time over REPS calls (random weights, ELU) and the GFLOP/s it means.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "kernels/avx2.h"

using namespace aefast;

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// 12 independent register-only FMA chains: the core's FMA throughput, no memory traffic.
void peak() {
  const long iterations = 4000000;
  double best = 1e9;
  for (int rep = 0; rep < 20; ++rep) {
    const auto start = std::chrono::steady_clock::now();
    for (long i = 0; i < iterations; ++i)
      __asm__ volatile(
          "vfmadd231ps %%ymm15,%%ymm14,%%ymm0\n vfmadd231ps %%ymm15,%%ymm14,%%ymm1\n"
          "vfmadd231ps %%ymm15,%%ymm14,%%ymm2\n vfmadd231ps %%ymm15,%%ymm14,%%ymm3\n"
          "vfmadd231ps %%ymm15,%%ymm14,%%ymm4\n vfmadd231ps %%ymm15,%%ymm14,%%ymm5\n"
          "vfmadd231ps %%ymm15,%%ymm14,%%ymm6\n vfmadd231ps %%ymm15,%%ymm14,%%ymm7\n"
          "vfmadd231ps %%ymm15,%%ymm14,%%ymm8\n vfmadd231ps %%ymm15,%%ymm14,%%ymm9\n"
          "vfmadd231ps %%ymm15,%%ymm14,%%ymm10\n vfmadd231ps %%ymm15,%%ymm14,%%ymm11\n" ::
              : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11");
    best = std::min(best, seconds_since(start));
  }
  std::printf("FMA peak: %.1f GFLOP/s (12 chains x 8 lanes x 2 flops)\n", iterations * 12 * 16 / best / 1e9);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && std::strcmp(argv[1], "peak") == 0) return peak(), 0;
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s peak | ROWS K N REPS\n", argv[0]);
    return 2;
  }
  const std::size_t rows = std::atoi(argv[1]), k = std::atoi(argv[2]), n = std::atoi(argv[3]);
  const int reps = std::atoi(argv[4]);
  const std::size_t panels = panel_count(n);
  std::vector<float> a(rows * k), w(panels * k * kPanelWidth), c(rows * n), scale(panels * kPanelWidth, 1.0f),
      bias(panels * kPanelWidth, 0.0f);
  for (float& v : a) v = float(std::rand()) / RAND_MAX;
  for (float& v : w) v = float(std::rand()) / RAND_MAX - 0.5f;
  const DenseBlock block{a.data(), k, w.data(), scale.data(), bias.data(), 1.0f, k, n, c.data(), n,
                         0,        rows, 0,    panels,       Activation::elu, false};
  double best = 1e9;
  for (int rep = 0; rep < reps; ++rep) {
    const auto start = std::chrono::steady_clock::now();
    dense_f32w_f32x__avx2(block);
    best = std::min(best, seconds_since(start));
  }
  std::printf("rows %zu K %zu N %zu: %.1f us, %.1f GFLOP/s\n", rows, k, n, best * 1e6, 2.0 * rows * k * n / best / 1e9);
}
