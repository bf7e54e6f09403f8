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
//   build/tools/kernel_bench q8 ROWS ROUNDS [amx,avx512vnni]
// Where an int8 (q8) layer of the default model (784-1000-100-1000-784) spends its time on one row block: per layer
// and kernel, in interleaved rounds (median of ROUNDS, each the best of 5 calls), the dense kernel with a linear
// epilogue, with ELU, with the ELU of q8 layers (ActivationKind::elu_q8: the cheaper expm1), and the next layer's
// quantization of its output (quantize_rows: a range pass and a quantization pass per row), in ns per output element
// and as shares of their sum (ELU as a Network runs it). Kernels: "amx", "avx512vnni" (the families'
// default tiles), "amx-TILE", "avx512vnni-TILE" (one tile of the family, e.g. amx-32x32, avx512vnni-8x32k4).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cpu_features.h"
#include "kernels/amx.h"
#include "kernels/avx2.h"
#include "kernels/avx512.h"
#include "kernels/avx512_lowp.h"
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

// The q8 layout of dense.h from row-major int8 W[k][n], and its column sums padded to whole panels.
std::vector<std::int8_t> pack_q8(const std::vector<std::int8_t>& w, std::size_t k, std::size_t n,
                                 std::vector<std::int32_t>* colsum) {
  const std::size_t k4 = quad_count(k), panels = panel_count(n);
  std::vector<std::int8_t> packed(panels * k4 * kPanelWidth * kQuadK, 0);
  colsum->assign(panels * kPanelWidth, 0);
  for (std::size_t i = 0; i < k; ++i)
    for (std::size_t j = 0; j < n; ++j) {
      packed[(((j / kPanelWidth) * k4 + i / kQuadK) * kPanelWidth + j % kPanelWidth) * kQuadK + i % kQuadK] = w[i * n + j];
      (*colsum)[j] += w[i * n + j];
    }
  return packed;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// kernel_bench q8 ROWS ROUNDS [KERNELS]: see the file comment.
int q8_breakdown(std::size_t rows, int rounds, const std::string& names) {
  struct Q8Kernel {
    std::string name;
    Q8DenseFn fn;
  };
  std::vector<Q8Kernel> chosen;
  const CpuFeatures& f = cpu_features();
  const bool vnni = has_avx512_base(f) && f.avx512vnni;
  // "amx" (the family default tile) and "amx-TILE" for each tile of the AMX family; likewise "avx512vnni-TILE".
  for (std::size_t t = 0; t < q8_tiles__amx.count; ++t)
    if (listed(names, std::string("amx-") + q8_tiles__amx.tiles[t].name) && vnni && f.amx_tile && f.amx_int8)
      chosen.push_back({std::string("amx-") + q8_tiles__amx.tiles[t].name, q8_tiles__amx.tiles[t].dense});
  for (std::size_t t = 0; t < q8_tiles__avx512vnni.count; ++t)
    if (listed(names, std::string("avx512vnni-") + q8_tiles__avx512vnni.tiles[t].name) && vnni)
      chosen.push_back({std::string("avx512vnni-") + q8_tiles__avx512vnni.tiles[t].name, q8_tiles__avx512vnni.tiles[t].dense});
  if (listed(names, "amx") && vnni && f.amx_tile && f.amx_int8) chosen.push_back({"amx", dense_q8__amx});
  if (listed(names, "avx512vnni") && vnni) chosen.push_back({"avx512vnni", dense_q8__avx512vnni});
  if (chosen.empty()) {
    std::fprintf(stderr, "no listed q8 kernel runs here\n");
    return 2;
  }
  const std::size_t shapes[][2] = {{784, 1000}, {1000, 100}, {100, 1000}, {1000, 784}};
  for (const auto& shape : shapes) {
    const std::size_t k = shape[0], n = shape[1], lda = quad_count(k) * kQuadK, panels = panel_count(n);
    std::vector<std::int8_t> w(k * n);
    for (auto& v : w) v = std::int8_t(std::rand() % 255 - 127);
    std::vector<std::int32_t> colsum;
    const std::vector<std::int8_t> packed = pack_q8(w, k, n, &colsum);
    std::vector<std::uint8_t> a(rows * lda), q(rows * quad_count(n) * kQuadK);
    for (auto& v : a) v = std::uint8_t(std::rand() >> 7);
    const std::vector<float> a_scale(rows, 4e-3f), w_scale(panels * kPanelWidth, 1e-3f), bias(panels * kPanelWidth, 0.0f);
    const std::vector<std::int32_t> a_zero(rows, 100);
    std::vector<float> c(rows * n), q_scale(rows);
    std::vector<std::int32_t> q_zero(rows);
    auto block = [&](ActivationKind act) {
      return Q8DenseBlock{a.data(), lda, true, a_scale.data(), a_zero.data(), packed.data(), colsum.data(),
                          w_scale.data(), bias.data(), k, n, c.data(), n, 0, rows, 0, panels, Activation{act, 1.0f},
                          false};
    };
    const Q8DenseBlock linear = block(ActivationKind::linear), elu = block(ActivationKind::elu),
                       elu_q8 = block(ActivationKind::elu_q8);
    const std::size_t ldq = quad_count(n) * kQuadK;
    // Variants per kernel: linear, ELU, quantize_rows of the ELU output, the q8 ELU.
    constexpr int kVariants = 4;
    std::vector<std::vector<double>> times(chosen.size() * kVariants);
    auto best_of_5 = [](auto call) {
      double best = 1e9;
      for (int i = 0; i < 5; ++i) {
        const auto start = std::chrono::steady_clock::now();
        call();
        best = std::min(best, seconds_since(start));
      }
      return best;
    };
    for (int round = 0; round < rounds; ++round)
      for (std::size_t i = 0; i < chosen.size(); ++i) {
        std::vector<double>* t = &times[kVariants * i];
        t[0].push_back(best_of_5([&] { chosen[i].fn(linear); }));
        t[1].push_back(best_of_5([&] { chosen[i].fn(elu); }));
        t[2].push_back(best_of_5([&] {
          quantize_rows__avx512(c.data(), n, rows, n, 1.0f, q.data(), ldq, q_scale.data(), q_zero.data());
        }));
        t[3].push_back(best_of_5([&] { chosen[i].fn(elu_q8); }));
      }
    const double outputs = double(rows * n);
    for (std::size_t i = 0; i < chosen.size(); ++i) {
      double ns[kVariants];
      for (int v = 0; v < kVariants; ++v) ns[v] = 1e9 * median(times[kVariants * i + v]) / outputs;
      const double total = ns[1] + ns[2];
      std::printf("%-18s %4zu x %4zu rows %zu, ns/output: linear %.3f (%.0f G/s), ELU +%.3f (q8 ELU +%.3f), "
                  "quantize_rows %.3f; total %.3f = %.0f%% / %.0f%% / %.0f%%; with the q8 ELU %.3f (%.2fx)\n",
                  chosen[i].name.c_str(), k, n, rows, ns[0], double(k) / ns[0], ns[1] - ns[0], ns[3] - ns[0], ns[2],
                  total, 100 * ns[0] / total, 100 * (ns[1] - ns[0]) / total, 100 * ns[2] / total, ns[3] + ns[2],
                  total / (ns[3] + ns[2]));
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && std::strcmp(argv[1], "peak") == 0) {
    peak();
    return 0;
  }
  if (argc >= 4 && std::strcmp(argv[1], "q8") == 0)
    return q8_breakdown(std::size_t(std::atoi(argv[2])), std::max(1, std::atoi(argv[3])),
                        argc > 4 ? argv[4] : "amx,avx512vnni");
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
