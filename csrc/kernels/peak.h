// Register-only peak loops: the machine's multiply-add ceilings, measured in the same run as the benchmark.
//
// Each peak_*__<isa> function runs `iterations` iterations of a loop whose body is only independent multiply-add
// instructions on accumulators held in registers (no loads, no stores), and returns the multiply-adds it did.
// `seed` feeds the operands so the compiler can neither fold nor drop the loop (the accumulators are summed into
// the returned count's side value `*sink`). Callers must check the CPU first (peak.cpp: usable kinds only).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace aefast {

// fp32 FMA, 12 independent ymm accumulators (vfmadd231ps ymm: 8 multiply-adds each). AVX2 + FMA.
std::uint64_t peak_fp32_fma_ymm__avx2(std::uint64_t iterations, float seed, float* sink);
// fp32 FMA, 12 independent zmm accumulators (16 multiply-adds each). AVX-512 F.
std::uint64_t peak_fp32_fma_zmm__avx512(std::uint64_t iterations, float seed, float* sink);
// u8 x s8 -> int32 dot products, vpdpbusd zmm (64 multiply-adds each), 12 independent accumulators: Zen 4 ran
// 24 live zmm accumulators at ~56% of the 12-accumulator rate (docs/performance.md). AVX-512 VNNI.
std::uint64_t peak_int8_vpdpbusd__avx512vnni(std::uint64_t iterations, float seed, float* sink);
// bf16 pairs -> fp32, vdpbf16ps zmm (32 multiply-adds each), 12 independent accumulators. AVX-512 BF16.
std::uint64_t peak_bf16_vdpbf16ps__avx512bf16(std::uint64_t iterations, float seed, float* sink);

// Peak kinds this CPU can run (cpu_features()), in a fixed order; each needs the ISA named in peak.cpp.
std::vector<std::string> usable_peak_kinds();
// Why `kind` cannot run here ("" when it can): unknown, or which CPU feature is missing.
std::string peak_kind_problem(const std::string& kind);
// G multiply-adds per second of `kind` on the calling thread: the loop runs for about `seconds` in windows of about
// 2 ms, and the fastest window counts (a shared machine's preemptions fall in the other windows).
// Precondition: peak_kind_problem(kind) == "" and 0 < seconds.
double peak_gmacs(const std::string& kind, double seconds);

}  // namespace aefast
