#include "cpu_features.h"

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#define AEFAST_X86 1
#endif
#if defined(AEFAST_X86) && defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#endif

namespace aefast {

namespace {

// Every CpuFeatures field by the name the project uses for it.
const struct {
  const char* name;
  bool CpuFeatures::*flag;
} kFlags[] = {{"avx2", &CpuFeatures::avx2},         {"fma", &CpuFeatures::fma},
              {"f16c", &CpuFeatures::f16c},         {"avx512f", &CpuFeatures::avx512f},
              {"avx512bw", &CpuFeatures::avx512bw}, {"avx512dq", &CpuFeatures::avx512dq},
              {"avx512vl", &CpuFeatures::avx512vl}, {"avx512vnni", &CpuFeatures::avx512vnni},
              {"avx512bf16", &CpuFeatures::avx512bf16}, {"avx_vnni", &CpuFeatures::avx_vnni},
              {"amx_tile", &CpuFeatures::amx_tile},     {"amx_int8", &CpuFeatures::amx_int8},
              {"amx_bf16", &CpuFeatures::amx_bf16}};

// The names in `list`, split at commas and spaces.
std::vector<std::string> split_names(const std::string& list) {
  std::vector<std::string> names;
  std::string name;
  for (const char ch : list + ",") {
    if (ch == ',' || ch == ' ') {
      if (!name.empty()) names.push_back(name);
      name.clear();
    } else {
      name += ch;
    }
  }
  return names;
}

bool CpuFeatures::*find_flag(const std::string& name) {
  for (const auto& f : kFlags)
    if (name == f.name) return f.flag;
  return nullptr;
}

const char* disabled_list() {
  const char* env = std::getenv("AEFAST_CPU_DISABLE");
  return env ? env : "";
}

bool disabled(const char* feature) {
  for (const std::string& name : split_names(disabled_list()))
    if (name == feature) return true;
  return false;
}

std::string amx_refusal;   // amx_problem(); written once by detect() (a function-local static's initializer)

// Asks Linux for the AMX tile data state for this process (all its threads, present and future); "" when granted.
// Linux >= 5.16 keeps the 8 KB tile state out of every process that did not ask, and a tile instruction before the
// grant raises SIGILL. Requesting again after a grant is harmless.
std::string request_amx_permission() {
#if defined(AEFAST_X86) && defined(__linux__)
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  if (syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) != 0)
    return std::string("the OS refused AMX tile data: arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) failed: ") +
           std::strerror(errno);
  return "";
#else
  return "the OS refused AMX tile data: no way to request it on this OS";
#endif
}

}  // namespace

static CpuFeatures detect() {
  CpuFeatures f;
#ifdef AEFAST_X86
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = c & bit_OSXSAVE;
  const bool avx = c & bit_AVX;
  bool ymm_enabled = false, zmm_enabled = false, tiles_enabled = false;
  if (osxsave) {
    unsigned xlo, xhi;
    __asm__("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0));
    ymm_enabled = (xlo & 0x6) == 0x6;
    zmm_enabled = (xlo & 0xe6) == 0xe6;
    tiles_enabled = (xlo & 0x60000) == 0x60000;   // XCR0 bits 17 (XTILECFG) and 18 (XTILEDATA)
  }
  const bool fma = c & bit_FMA;
  const bool f16c = c & bit_F16C;
  unsigned a7 = 0, b7 = 0, c7 = 0, d7 = 0, a71 = 0, b71 = 0, c71 = 0, d71 = 0;
  if (__get_cpuid_count(7, 0, &a7, &b7, &c7, &d7) && a7 >= 1) __get_cpuid_count(7, 1, &a71, &b71, &c71, &d71);
  f.avx2 = avx && (b7 & bit_AVX2) && ymm_enabled;
  f.fma = fma && ymm_enabled;
  f.f16c = f16c && ymm_enabled;
  f.avx512f = (b7 & bit_AVX512F) && zmm_enabled;
  f.avx512bw = f.avx512f && (b7 & bit_AVX512BW);
  f.avx512dq = f.avx512f && (b7 & bit_AVX512DQ);
  f.avx512vl = f.avx512f && (b7 & bit_AVX512VL);
  f.avx512vnni = f.avx512f && (c7 & bit_AVX512VNNI);
  f.avx512bf16 = f.avx512f && (a71 & bit_AVX512BF16);   // CPUID.(EAX=7,ECX=1):EAX[5]
  f.avx_vnni = avx && ymm_enabled && (a71 & bit_AVXVNNI);   // CPUID.(EAX=7,ECX=1):EAX[4]
  // CPUID.(EAX=7,ECX=0):EDX bit 24 AMX-TILE, 25 AMX-INT8, 22 AMX-BF16. The tile data permission is requested only
  // when the CPU and XCR0 have AMX and AEFAST_CPU_DISABLE does not remove amx_tile.
  const bool cpu_amx = (d7 >> 24) & 1;
  if (cpu_amx && !tiles_enabled) {
    amx_refusal = "XCR0 does not enable the AMX tile state (the OS does not save it)";
  } else if (cpu_amx && !disabled("amx_tile")) {
    amx_refusal = request_amx_permission();
    f.amx_tile = amx_refusal.empty();
  }
  f.amx_int8 = f.amx_tile && ((d7 >> 25) & 1);
  f.amx_bf16 = f.amx_tile && ((d7 >> 22) & 1);
#endif
  // AEFAST_CPU_DISABLE: features to treat as absent (tests run the lower dispatch paths on a CPU that has more).
  // It can only remove features; names it does not know are reported by disabled_features_problem().
  for (const std::string& name : split_names(disabled_list()))
    if (bool CpuFeatures::*flag = find_flag(name)) f.*flag = false;
  return f;
}

static CpuIdentity identify() {
  CpuIdentity id;
#ifdef AEFAST_X86
  unsigned a, b, c, d;
  if (!__get_cpuid(0, &a, &b, &c, &d)) return id;
  char vendor[13] = {};
  std::memcpy(vendor, &b, 4);
  std::memcpy(vendor + 4, &d, 4);
  std::memcpy(vendor + 8, &c, 4);
  id.vendor = vendor;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return id;
  const unsigned base_family = (a >> 8) & 0xf, base_model = (a >> 4) & 0xf;
  id.family = base_family == 0xf ? base_family + ((a >> 20) & 0xff) : base_family;
  id.model = base_family == 0x6 || base_family == 0xf ? base_model + (((a >> 16) & 0xf) << 4) : base_model;
#endif
  return id;
}

const CpuIdentity& cpu_identity() {
  static const CpuIdentity id = identify();
  return id;
}

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

const std::string& amx_problem() {
  cpu_features();
  return amx_refusal;
}

std::string missing_features(const char* needs) {
  std::string missing;
  for (const std::string& name : split_names(needs)) {
    bool CpuFeatures::*flag = find_flag(name);
    if (!flag || !(cpu_features().*flag)) {
      missing += (missing.empty() ? "" : ", ") + name;
      if (name == "amx_tile" && !amx_problem().empty()) missing += " (" + amx_problem() + ")";
    }
  }
  return missing;
}

std::string disabled_features_problem() {
  for (const std::string& name : split_names(disabled_list()))
    if (!find_flag(name)) {
      std::string known;
      for (const auto& f : kFlags) known += (known.empty() ? "" : ", ") + std::string(f.name);
      return "AEFAST_CPU_DISABLE names an unknown CPU feature '" + name + "'; expected a comma-separated list of: " +
             known;
    }
  return "";
}

}  // namespace aefast
