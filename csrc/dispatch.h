// Run-time ISA selection. The only unit that knows which kernel files exist.
#pragma once
#include <string>
#include <vector>

#include "cpu_features.h"
#include "kernels/dense.h"

namespace aefast {

// The kernels of one compute, named by the instruction set they need (the names the kernel tester and the tests
// use). `needs` lists the CpuFeatures fields the kernel files are compiled for (cpu_features.h missing_features).
// fp32 compute: dense[weight type][input type] and the standalone ELU; the "avx512" family's int8-weight entries
// are the AVX2 kernels (weight-only int8 has no zmm kernel).
struct F32Kernels {
  const char* name;
  const char* needs;
  DenseBlockFn dense[3][2];
  EluFn elu;
  const F16TileTable* f16_tiles;  // the f16-weight tiles; tiles[0].dense == dense[f16]
};
// q8: a family of register tiles (dense.h Q8TileTable; tiles[0] the default), all with bit-identical outputs.
struct Q8Kernels {
  const char* name;
  const char* needs;
  const Q8TileTable* tiles;
  QuantizeRowsFn quantize_rows;
  Q8DenseFn dense(std::size_t tile) const { return tiles->tiles[tile].dense; }
};
struct Bf16Kernels {
  const char* name;
  const char* needs;
  const Bf16TileTable* tiles;
  ToBf16RowsFn to_bf16;
  Bf16DenseFn dense(std::size_t tile) const { return tiles->tiles[tile].dense; }
};

// One ISA level's kernels: what a Network built with isa=name runs. A level may borrow a lower level's kernel where
// the CPU lacks an extension (an AVX-512 CPU without VNNI runs q8 with the AVX2 kernel); q8->name / bf16->name say
// which kernel really runs.
struct IsaKernels {
  const char* name;
  const F32Kernels* f32;
  const Q8Kernels* q8;
  const Bf16Kernels* bf16;
};

// Every ISA level this build has, best first, usable here or not; "scalar" is last.
std::vector<std::string> known_isas();
// Why ISA level `name` cannot run here ("" when it can): unknown, or the CPU features it lacks.
std::string isa_problem(const std::string& name);

// Names of the ISAs usable on this CPU, best first; "scalar" is always last.
std::vector<std::string> usable_isas();

// The kernels of a usable ISA by name ("auto" = the best less "amx", which is opt-in), or nullptr if the
// name is unknown or the CPU cannot run it.
const IsaKernels* find_isa(const std::string& name);

// Every kernel of `compute` this build has, best first, usable here or not.
std::vector<std::string> kernel_names(Compute compute);
// Why kernel `name` of `compute` cannot run here ("" when it can): unknown, or the CPU features it lacks.
std::string kernel_problem(Compute compute, const std::string& name);
// The named kernel family, or nullptr unless kernel_problem(compute, name) == "".
const F32Kernels* find_f32_kernels(const std::string& name);
const Q8Kernels* find_q8_kernels(const std::string& name);
const Bf16Kernels* find_bf16_kernels(const std::string& name);

// Register tile families by precision: "q8" (the q8 kernels), "bf16" (the bf16 kernels) and "f16" (the fp32
// kernels on f16 weights). The tile names of `precision`'s kernel family `kernel` (known, usable here or not), default
// first; empty if the precision or the kernel is unknown.
std::vector<std::string> tile_names(const std::string& precision, const std::string& kernel);
// The index of tile `tile` in that family's table, or -1 with `problem` set to why (unknown precision or kernel, or
// a tile name it lacks: the message lists the valid ones). "" names the default tile (index 0).
long tile_index(const std::string& precision, const std::string& kernel, const std::string& tile,
                std::string* problem);
// The number of tiles of that family (0 if unknown).
std::size_t tile_count(const std::string& precision, const std::string& kernel);
// The tile precision of a layer computing in `compute` on `weight` ("q8", "bf16", "f16"), or "" when its kernel has
// no tile choice (f32 compute on f32 or int8 weights); and the kernel family that runs it on `isa`.
const char* tile_precision(Compute compute, WeightType weight);
const char* tile_kernel(const IsaKernels& isa, Compute compute);

}  // namespace aefast
