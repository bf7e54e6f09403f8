// AVX-VNNI (VEX) kernels (avxvnni.cpp is the only file built with -mavxvnni).
// Declarations only, so any unit may include this; call only when dispatch says the CPU has AVX2, FMA, F16C and
// AVX-VNNI (an illegal instruction on CPUs without it, e.g. AMD Zen 4).
#pragma once
#include "dense.h"

namespace aefast {

// q8 (see Q8DenseBlock in dense.h) with vpdpbusd ymm: exact int32 sums, bit-identical to every q8 kernel.
void dense_q8__avxvnni(const Q8DenseBlock& b);  // the 6x16 tile
extern const Q8TileTable q8_tiles__avxvnni;     // its tile family, 6x16 first

}  // namespace aefast
