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
  Bf16DenseFn dense;
  ToBf16RowsFn to_bf16;
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

// The kernels of a usable ISA by name ("auto" = the best, less "amx" unless AEFAST_AMX=1), or nullptr if the
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

// The tile names of q8 kernel family `kernel` (known, usable here or not), default first; empty if unknown.
std::vector<std::string> q8_tile_names(const std::string& kernel);
// The index of tile `tile` in q8 family `kernel`'s table, or -1 with `problem` set to why (unknown kernel, or a tile
// name it lacks: the message lists the valid ones). "" names the default tile (index 0).
long q8_tile_index(const std::string& kernel, const std::string& tile, std::string* problem);

}  // namespace aefast
