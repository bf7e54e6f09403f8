// AMX kernels (amx.cpp). Declarations only; call only when dispatch says the CPU has AMX-TILE + AMX-INT8 with the
// OS's tile data permission (cpu_features.h amx_tile) and the AVX-512 VNNI features the file is also built for.
#pragma once
#include "dense.h"

namespace aefast {

void dense_q8__amx(const Q8DenseBlock& b);   // 32x32 tile (2 x 2 C tiles); blocks under 12 rows run VNNI 8x32k4
extern const Q8TileTable q8_tiles__amx;      // its tile family, 32x32 first
void dense_bf16__amx(const Bf16DenseBlock& b);  // tdpbf16ps 16x32 tiles; needs amx_bf16 and avx512bf16

}  // namespace aefast
