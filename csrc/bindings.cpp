// The one pybind11 file. Shapes and dtypes are checked here with the GIL held;
// compute runs with the GIL released.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "dispatch.h"

namespace py = pybind11;

PYBIND11_MODULE(_core, m) {
  m.doc() = "aefast compiled core: fused dense kernels with run-time ISA dispatch";
  m.def("cpu_features", [] {
    const auto& f = aefast::cpu_features();
    py::dict d;
    d["avx2"] = f.avx2;
    d["fma"] = f.fma;
    d["f16c"] = f.f16c;
    d["avx512f"] = f.avx512f;
    return d;
  }, "CPU features detected at run time (CPUID + XGETBV).");
}
