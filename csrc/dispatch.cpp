#include "dispatch.h"


#include "kernels/amx.h"
#include "kernels/avx2.h"
#include "kernels/avx512.h"
#include "kernels/avx512_lowp.h"
#include "kernels/avxvnni.h"
#include "kernels/scalar.h"

namespace aefast {
namespace {

// The AVX2 files are compiled with -mavx2 -mfma -mf16c; the AVX-512 files with AVX-512 F/BW/DQ/VL and those too.
#define AEFAST_AVX2_NEEDS "avx2 fma f16c"
#define AEFAST_AVX512_NEEDS AEFAST_AVX2_NEEDS " avx512f avx512bw avx512dq avx512vl"

const F16Tile kF16ScalarTile[] = {{"1x1", {dense_f16w_f32x__scalar, dense_f16w_u8x__scalar}}};
const F16TileTable kF16ScalarTiles = {kF16ScalarTile, 1};
const F16Tile kF16Avx2Tile[] = {{"ymm", {dense_f16w_f32x__avx2, dense_f16w_u8x__avx2}}};
const F16TileTable kF16Avx2Tiles = {kF16Avx2Tile, 1};

const F32Kernels kF32Scalar = {"scalar", "",
                               {{dense_f32w_f32x__scalar, dense_f32w_u8x__scalar},
                                {dense_f16w_f32x__scalar, dense_f16w_u8x__scalar},
                                {dense_i8w_f32x__scalar, dense_i8w_u8x__scalar}},
                               elu__scalar, &kF16ScalarTiles};
const F32Kernels kF32Avx2 = {"avx2", AEFAST_AVX2_NEEDS,
                             {{dense_f32w_f32x__avx2, dense_f32w_u8x__avx2},
                              {dense_f16w_f32x__avx2, dense_f16w_u8x__avx2},
                              {dense_i8w_f32x__avx2, dense_i8w_u8x__avx2}},
                             elu__avx2, &kF16Avx2Tiles};
const F32Kernels kF32Avx512 = {"avx512", AEFAST_AVX512_NEEDS,
                               {{dense_f32w_f32x__avx512, dense_f32w_u8x__avx512},
                                {dense_f16w_f32x__avx512, dense_f16w_u8x__avx512},
                                {dense_i8w_f32x__avx2, dense_i8w_u8x__avx2}},
                               elu__avx512, &f16_tiles__avx512};
const F32Kernels* const kF32[] = {&kF32Avx512, &kF32Avx2, &kF32Scalar};

// q8 tile tables: the VNNI families define theirs beside their tiles; the scalar twin and the vpmaddwd kernel have
// one shape each.
const Q8Tile kQ8ScalarTile[] = {{"1x1", dense_q8__scalar}};
const Q8TileTable kQ8ScalarTiles = {kQ8ScalarTile, 1};
const Q8Tile kQ8Avx2Tile[] = {{"6x8", dense_q8__avx2}};
const Q8TileTable kQ8Avx2Tiles = {kQ8Avx2Tile, 1};

const Q8Kernels kQ8Scalar = {"scalar", "", &kQ8ScalarTiles, quantize_rows__scalar};
const Q8Kernels kQ8Avx2 = {"avx2", AEFAST_AVX2_NEEDS, &kQ8Avx2Tiles, quantize_rows__avx2};
const Q8Kernels kQ8Avx512Vnni = {"avx512vnni", AEFAST_AVX512_NEEDS " avx512vnni", &q8_tiles__avx512vnni,
                                 quantize_rows__avx512};
const Q8Kernels kQ8AvxVnni = {"avxvnni", AEFAST_AVX2_NEEDS " avx_vnni", &q8_tiles__avxvnni, quantize_rows__avx2};
// amx.cpp is built with the AVX-512 VNNI flags too (its few-row blocks run the VNNI tile) and the AMX ones.
const Q8Kernels kQ8Amx = {"amx", AEFAST_AVX512_NEEDS " avx512vnni amx_tile amx_int8", &q8_tiles__amx,
                          quantize_rows__avx512};
const Q8Kernels* const kQ8[] = {&kQ8Amx, &kQ8Avx512Vnni, &kQ8AvxVnni, &kQ8Avx2, &kQ8Scalar};

const Bf16KernelTile kBf16ScalarTile[] = {{"1x1", dense_bf16__scalar}};
const Bf16TileTable kBf16ScalarTiles = {kBf16ScalarTile, 1};
const Bf16KernelTile kBf16Avx2Tile[] = {{"ymm", dense_bf16__avx2}};
const Bf16TileTable kBf16Avx2Tiles = {kBf16Avx2Tile, 1};

const Bf16Kernels kBf16Scalar = {"scalar", "", &kBf16ScalarTiles, to_bf16_rows__scalar};
const Bf16Kernels kBf16Avx2 = {"avx2", AEFAST_AVX2_NEEDS, &kBf16Avx2Tiles, to_bf16_rows__scalar};
const Bf16Kernels kBf16Avx512Bf16 = {"avx512bf16", AEFAST_AVX512_NEEDS " avx512bf16", &bf16_tiles__avx512bf16,
                                     to_bf16_rows__avx512bf16};
// fp32 sums in tdpbf16ps's order, not vdpbf16ps's: close to, not bit-identical with, the other bf16 kernels.
const Bf16KernelTile kBf16AmxTile[] = {{"16x32", dense_bf16__amx}};
const Bf16TileTable kBf16AmxTiles = {kBf16AmxTile, 1};
const Bf16Kernels kBf16Amx = {"amx", AEFAST_AVX512_NEEDS " avx512bf16 amx_tile amx_bf16", &kBf16AmxTiles,
                              to_bf16_rows__avx512bf16};
const Bf16Kernels* const kBf16[] = {&kBf16Amx, &kBf16Avx512Bf16, &kBf16Avx2, &kBf16Scalar};

// An ISA level: its name, the CPU features it needs, its fp32 kernels, and the low-precision kernels it may run, best
// first (the first the CPU can run is used). The level is usable when the CPU has `needs` and its fp32 kernels'.
struct Level {
  const char* name;
  const char* needs;
  const F32Kernels* f32;
  const Q8Kernels* q8[3];
  const Bf16Kernels* bf16[3];
};
// "amx": the AVX-512 fp32 kernels with the AMX q8 kernel (needs the OS's tile data permission: cpu_features.cpp).
const Level kLevels[] = {
    {"amx", "amx_tile amx_int8 avx512vnni", &kF32Avx512, {&kQ8Amx}, {&kBf16Amx, &kBf16Avx512Bf16, &kBf16Avx2}},
    {"avx512", "", &kF32Avx512, {&kQ8Avx512Vnni, &kQ8AvxVnni, &kQ8Avx2}, {&kBf16Avx512Bf16, &kBf16Avx2}},
    {"avx2", "", &kF32Avx2, {&kQ8AvxVnni, &kQ8Avx2}, {&kBf16Avx2}},
    {"scalar", "", &kF32Scalar, {&kQ8Scalar}, {&kBf16Scalar}},
};

template <class K>
bool usable(const K* k) { return k && missing_features(k->needs).empty(); }

// The CPU features level `level` lacks ("" when it can run): its fp32 kernels' and its own.
std::string level_missing(const Level& level) {
  std::string missing = missing_features(level.f32->needs);
  const std::string own = missing_features(level.needs);
  if (!own.empty()) missing += (missing.empty() ? "" : ", ") + own;
  return missing;
}

template <class K, std::size_t N>
const K* find_named(const K* const (&table)[N], const std::string& name) {
  for (const K* k : table)
    if (name == k->name) return k;
  return nullptr;
}

template <class K, std::size_t N>
std::string problem_of(const K* const (&table)[N], const std::string& name, const char* what) {
  const K* k = find_named(table, name);
  std::string known;
  for (const K* t : table) known += (known.empty() ? "" : ", ") + std::string(t->name);
  if (!k) return std::string("unknown ") + what + " '" + name + "' (expected one of: " + known + ")";
  const std::string missing = missing_features(k->needs);
  return missing.empty() ? "" : name + ": CPU lacks " + missing;
}

template <class K, std::size_t N>
const K* first_usable(const K* const (&choices)[N]) {
  for (const K* k : choices)
    if (usable(k)) return k;
  return nullptr;
}

// The usable levels, best first, each resolved to the kernels that run on this CPU.
std::vector<IsaKernels> resolve() {
  std::vector<IsaKernels> isas;
  for (const Level& level : kLevels)
    if (level_missing(level).empty()) isas.push_back({level.name, level.f32, first_usable(level.q8), first_usable(level.bf16)});
  return isas;
}

const std::vector<IsaKernels>& usable_levels() {
  static const std::vector<IsaKernels> isas = resolve();
  return isas;
}

}  // namespace

std::vector<std::string> known_isas() {
  std::vector<std::string> names;
  for (const Level& level : kLevels) names.emplace_back(level.name);
  return names;
}

std::string isa_problem(const std::string& name) {
  if (name == "auto") return "";
  for (const Level& level : kLevels)
    if (name == level.name) {
      const std::string missing = level_missing(level);
      return missing.empty() ? "" : name + ": CPU lacks " + missing;
    }
  std::string known;
  for (const std::string& n : known_isas()) known += (known.empty() ? "" : ", ") + n;
  return "unknown isa '" + name + "' (expected 'auto' or one of: " + known + ")";
}

std::vector<std::string> usable_isas() {
  std::vector<std::string> names;
  for (const IsaKernels& isa : usable_levels()) names.emplace_back(isa.name);
  return names;
}

// "auto" is the best usable level less amx: AMX is opt-in (docs/engine.md "AMX"); the Python engine passes
// isa="amx" for its "auto" when the user asks for it (aefast/engine/backend.py resolve_isa, AEFAST_AMX=1). The C++
// side reads no environment.
const IsaKernels* find_isa(const std::string& name) {
  const auto& isas = usable_levels();
  if (name == "auto") {
    for (const IsaKernels& isa : isas)
      if (std::string(isa.name) != "amx") return &isa;
  }
  for (const IsaKernels& isa : isas)
    if (name == isa.name) return &isa;
  return nullptr;
}

std::vector<std::string> kernel_names(Compute compute) {
  std::vector<std::string> names;
  if (compute == Compute::q8) for (const auto* k : kQ8) names.emplace_back(k->name);
  else if (compute == Compute::bf16) for (const auto* k : kBf16) names.emplace_back(k->name);
  else for (const auto* k : kF32) names.emplace_back(k->name);
  return names;
}

std::string kernel_problem(Compute compute, const std::string& name) {
  if (compute == Compute::q8) return problem_of(kQ8, name, "q8 kernel");
  if (compute == Compute::bf16) return problem_of(kBf16, name, "bf16 kernel");
  return problem_of(kF32, name, "f32 kernel");
}

const F32Kernels* find_f32_kernels(const std::string& name) {
  const F32Kernels* k = find_named(kF32, name);
  return usable(k) ? k : nullptr;
}
const Q8Kernels* find_q8_kernels(const std::string& name) {
  const Q8Kernels* k = find_named(kQ8, name);
  return usable(k) ? k : nullptr;
}
const Bf16Kernels* find_bf16_kernels(const std::string& name) {
  const Bf16Kernels* k = find_named(kBf16, name);
  return usable(k) ? k : nullptr;
}

namespace {

// The names of a tile table (Q8TileTable, F16TileTable, Bf16TileTable).
template <class Table>
std::vector<std::string> names_of(const Table* table) {
  std::vector<std::string> names;
  for (std::size_t i = 0; table && i < table->count; ++i) names.emplace_back(table->tiles[i].name);
  return names;
}

// The tile names of `precision`'s family `kernel`, with *known = whether the precision and the kernel exist.
std::vector<std::string> family_tiles(const std::string& precision, const std::string& kernel, bool* known) {
  *known = true;
  if (precision == "q8")
    if (const Q8Kernels* k = find_named(kQ8, kernel)) return names_of(k->tiles);
  if (precision == "bf16")
    if (const Bf16Kernels* k = find_named(kBf16, kernel)) return names_of(k->tiles);
  if (precision == "f16")
    if (const F32Kernels* k = find_named(kF32, kernel)) return names_of(k->f16_tiles);
  *known = false;
  return {};
}

}  // namespace

std::vector<std::string> tile_names(const std::string& precision, const std::string& kernel) {
  bool known = false;
  return family_tiles(precision, kernel, &known);
}

const char* tile_precision(Compute compute, WeightType weight) {
  if (compute == Compute::q8) return "q8";
  if (compute == Compute::bf16) return "bf16";
  return weight == WeightType::f16 ? "f16" : "";
}

const char* tile_kernel(const IsaKernels& isa, Compute compute) {
  return compute == Compute::q8 ? isa.q8->name : compute == Compute::bf16 ? isa.bf16->name : isa.f32->name;
}

std::size_t tile_count(const std::string& precision, const std::string& kernel) {
  return tile_names(precision, kernel).size();
}

long tile_index(const std::string& precision, const std::string& kernel, const std::string& tile,
                std::string* problem) {
  bool known = false;
  const std::vector<std::string> names = family_tiles(precision, kernel, &known);
  if (!known) {
    if (precision == "q8") *problem = problem_of(kQ8, kernel, "q8 kernel");
    else if (precision == "bf16") *problem = problem_of(kBf16, kernel, "bf16 kernel");
    else if (precision == "f16") *problem = problem_of(kF32, kernel, "f16 (f32) kernel");
    else *problem = "unknown tile precision '" + precision + "' (expected q8, bf16 or f16)";
    return -1;
  }
  if (tile.empty()) return 0;
  std::string list;
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (tile == names[i]) return long(i);
    list += (list.empty() ? "" : ", ") + names[i];
  }
  *problem = "unknown tile '" + tile + "' for the " + kernel + " " + precision + " kernel (expected one of: " + list + ")";
  return -1;
}

}  // namespace aefast
