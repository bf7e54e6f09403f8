// What the CPU can run, read once from CPUID (and XGETBV for the OS's register saving). A leaf: the dispatch unit
// (which kernels to run) and the peak loops (which loops may run) both read it; it knows nothing of either.
#pragma once
#include <string>

namespace aefast {

// Each flag is set only when the CPU has the instructions AND the OS saves the registers they use (XGETBV).
struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512dq = false;
  bool avx512vl = false;
  bool avx512vnni = false;   // vpdpbusd on zmm/ymm (EVEX)
  bool avx512bf16 = false;   // vdpbf16ps, vcvtne2ps2bf16
  bool avx_vnni = false;     // vpdpbusd VEX form (Intel Alder Lake+; an illegal instruction on AMD Zen 4)
  // AMX (Intel Sapphire Rapids+): set only when CPUID has it, XCR0 enables the tile state (XTILECFG, XTILEDATA) AND
  // the OS granted this process the tile data (Linux arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA), requested
  // once at detection): without that grant the first tile instruction raises SIGILL.
  bool amx_tile = false;     // ldtilecfg, tileloadd, tilestored, tilezero
  bool amx_int8 = false;     // tdpbusd (u8 x s8 -> int32)
  bool amx_bf16 = false;     // tdpbf16ps (bf16 pairs -> fp32)
};

// CPUID (and OS support for the YMM/ZMM state via XGETBV), read once, less the features named in the environment
// variable AEFAST_CPU_DISABLE (comma-separated field names, e.g. "avx512vnni,avx512bf16": lets tests run the
// lower dispatch paths on a CPU that has more; it can only remove features).
const CpuFeatures& cpu_features();

// Why AEFAST_CPU_DISABLE cannot be honoured ("" when it can): it names a feature this file does not know.
std::string disabled_features_problem();

// The names of `needs` (space-separated CpuFeatures field names, e.g. "avx2 fma f16c") that this CPU lacks, joined
// by ", "; "" when it has them all. An unknown name counts as lacking.
std::string missing_features(const char* needs);

// Why the AMX features are off although CPUID lists them ("" when they are on, or the CPU lacks them): XCR0 without
// the tile state, or "the OS refused AMX tile data: <errno text>". missing_features appends it to "amx_tile".
const std::string& amx_problem();

// Which CPU this is, from CPUID leaf 0 and 1: the vendor string ("GenuineIntel", "AuthenticAMD"; "" off x86) and the
// display family and model (base + extended fields, as /proc/cpuinfo shows them: Zen 4 family 25, Zen 5 family 26,
// Sapphire Rapids family 6 model 143). The tile calibration's cache key (aefast/engine/tiles.py) holds them.
struct CpuIdentity {
  std::string vendor;
  unsigned family = 0, model = 0;
};
const CpuIdentity& cpu_identity();

// The feature sets the kernel files are compiled for (CMakeLists.txt gives each file its flags).
inline bool has_avx2_fma_f16c(const CpuFeatures& f) { return f.avx2 && f.fma && f.f16c; }
inline bool has_avx512_base(const CpuFeatures& f) { return f.avx512f && f.avx512bw && f.avx512dq && f.avx512vl; }

}  // namespace aefast
