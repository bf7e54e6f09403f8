// The one pybind11 file. Shapes and dtypes are checked here with the GIL held;
// compute runs with the GIL released. Nothing unchecked reaches the C++ side.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "dispatch.h"
#include "kernel_tester.h"
#include "kernels/peak.h"
#include "network.h"

namespace py = pybind11;
using aefast::Activation;
using aefast::Compute;
using aefast::InputType;
using aefast::WeightType;

namespace {

std::string shape_of(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
  return s + (a.ndim() == 1 ? ",)" : ")");
}

std::string dtype_of(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

template <typename T>
bool has_dtype(const py::array& a) { return a.dtype().equal(py::dtype::of<T>()); }

// `what` must be a C-contiguous numpy array with ndim dimensions (dtype checked by the caller).
py::array checked_array(const py::handle& obj, const std::string& what, int ndim) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(what + " must be a numpy.ndarray, got " + py::str(py::type::of(obj)).cast<std::string>());
  auto a = py::reinterpret_borrow<py::array>(obj);
  if (a.ndim() != ndim)
    throw py::value_error(what + " must be " + std::to_string(ndim) + "-D, got shape " + shape_of(a));
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(what + " must be C-contiguous (use numpy.ascontiguousarray)");
  return a;
}

[[noreturn]] void bad_dtype(const std::string& what, const py::array& a, const char* expected) {
  throw py::type_error(what + " has dtype " + dtype_of(a) + ", expected " + expected);
}

const aefast::IsaKernels& checked_isa(const std::string& name) {
  const aefast::IsaKernels* isa = aefast::find_isa(name);
  if (!isa) {
    std::string usable;
    for (const auto& n : aefast::usable_isas()) usable += (usable.empty() ? "" : ", ") + n;
    throw py::value_error("isa '" + name + "' is not usable on this CPU; expected 'auto' or one of: " + usable);
  }
  return *isa;
}

// A model activation string (aefast/model/activations.py): "linear", "elu", "sigmoid", "relu", "tanh", or "elu(A)" /
// "leaky_relu(A)" with A a finite float32 number (read with from_chars: no locale, no leading blanks or '+').
Activation checked_activation(const py::handle& obj, const std::string& what) {
  using aefast::ActivationKind;
  if (!py::isinstance<py::str>(obj)) throw py::type_error(what + " must be a str");
  const std::string s = obj.cast<std::string>();
  if (s == "linear") return {ActivationKind::linear, 1.0f};
  if (s == "elu") return {ActivationKind::elu, 1.0f};
  if (s == "sigmoid") return {ActivationKind::sigmoid, 1.0f};
  if (s == "relu") return {ActivationKind::relu, 1.0f};
  if (s == "tanh") return {ActivationKind::tanh, 1.0f};
  for (const auto& [prefix, kind] : {std::pair<std::string, ActivationKind>{"elu(", ActivationKind::elu},
                                     std::pair<std::string, ActivationKind>{"leaky_relu(", ActivationKind::leaky_relu}}) {
    if (s.size() > prefix.size() + 1 && s.compare(0, prefix.size(), prefix) == 0 && s.back() == ')') {
      const char* first = s.data() + prefix.size();
      const char* last = s.data() + s.size() - 1;
      float alpha = 0.0f;
      const auto [end, error] = std::from_chars(first, last, alpha);
      if (error != std::errc() || end != last || !std::isfinite(alpha))
        throw py::value_error(what + " is '" + s + "': its parameter is not a finite float32 number");
      return {kind, alpha};
    }
  }
  throw py::value_error(what + " is '" + s + "', expected 'linear', 'elu', 'sigmoid', 'relu', 'tanh', "
                        "'elu(ALPHA)' or 'leaky_relu(SLOPE)'");
}

// A float32 (n,) vector from the layer dict.
py::array checked_vector(const py::dict& layer, const char* key, const std::string& where, std::size_t n) {
  const std::string what = where + "[\"" + key + "\"]";
  py::array v = checked_array(layer[key], what, 1);
  if (!has_dtype<float>(v)) bad_dtype(what, v, "float32");
  if (std::size_t(v.shape(0)) != n)
    throw py::value_error(what + " has shape " + shape_of(v) + ", expected (" + std::to_string(n) + ",)");
  return v;
}

const char* compute_name(Compute c) { return c == Compute::q8 ? "q8" : c == Compute::bf16 ? "bf16" : "f32"; }

// q8 sums: |sum_k q x w| <= K 255 128 and |zero x colsum| <= 255 127 K must stay below 2^31.
constexpr std::size_t kMaxQ8Inputs = 65536;

// The layer's "compute" key (default: bf16 for uint16 weights, f32 otherwise), checked against its weight type.
Compute checked_compute(const py::dict& layer, const std::string& where, WeightType type) {
  std::string name = type == WeightType::bf16 ? "bf16" : "f32";
  if (layer.contains("compute")) {
    if (!py::isinstance<py::str>(layer["compute"])) throw py::type_error(where + "[\"compute\"] must be a str");
    name = layer["compute"].cast<std::string>();
  }
  if (name == "f32" && type != WeightType::bf16) return Compute::f32;
  if (name == "q8" && type == WeightType::i8) return Compute::q8;
  if (name == "bf16" && type == WeightType::bf16) return Compute::bf16;
  throw py::value_error(where + "[\"compute\"] is '" + name + "' for " +
                        (type == WeightType::bf16 ? "uint16 (bf16)" : type == WeightType::i8 ? "int8" : "float") +
                        " weights; expected 'f32' (float32/float16/int8 weights), 'q8' (int8) or 'bf16' (uint16)");
}

void check_bf16_finite(const py::array& w, const std::string& where) {
  const auto* bits = static_cast<const std::uint16_t*>(w.data());
  for (py::ssize_t i = 0; i < w.size(); ++i)
    if ((bits[i] & 0x7f80u) == 0x7f80u)
      throw py::value_error(where + "[\"weight\"] holds an infinite or NaN bf16 value at flat index " +
                            std::to_string(i) + "; weights must be finite");
}

// threads as passed to Network(): a Python int (or numpy integer) in [0, ThreadPool::kMaxThreads]; 0 = the CPUs this
// process may run on (its affinity mask). Checked here so that 2**63 or "2" is a short error, not a failed overload.
std::size_t checked_threads(const py::handle& obj) {
  constexpr std::size_t kMax = aefast::ThreadPool::kMaxThreads;
  const std::string range = "threads must be >= 0 (0 = the CPUs this process may use) and <= " + std::to_string(kMax);
  if (PyBool_Check(obj.ptr()) || !PyIndex_Check(obj.ptr()))
    throw py::type_error(range + ", got a " + py::str(py::type::of(obj).attr("__name__")).cast<std::string>());
  const auto index = py::reinterpret_steal<py::object>(PyNumber_Index(obj.ptr()));
  if (!index) throw py::error_already_set();  // an __index__ that raised
  int overflow = 0;
  const long long n = PyLong_AsLongLongAndOverflow(index.ptr(), &overflow);
  if (overflow || n < 0 || std::size_t(n) > kMax)
    throw py::value_error(range + ", got " + (overflow ? std::string(overflow > 0 ? "more than 2**63" : "less than -2**63")
                                                        : std::to_string(n)));
  return n ? std::size_t(n) : std::min(aefast::usable_cpus(), kMax);
}

bool overlaps(const py::array& a, const py::array& b) {
  const auto* a0 = static_cast<const char*>(a.data());
  const auto* b0 = static_cast<const char*>(b.data());
  return a.nbytes() > 0 && b.nbytes() > 0 && a0 < b0 + b.nbytes() && b0 < a0 + a.nbytes();
}

// ---- the kernel tester's hook (test-only): every argument checked against the kernel contract of dense.h ----

Compute checked_compute_name(const std::string& name) {
  if (name == "f32") return Compute::f32;
  if (name == "q8") return Compute::q8;
  if (name == "bf16") return Compute::bf16;
  throw py::value_error("compute is '" + name + "', expected 'f32', 'q8' or 'bf16'");
}

// (begin, end) from None (the whole [0, limit)) or a pair of ints with 0 <= begin <= end <= limit.
std::pair<std::size_t, std::size_t> checked_range(const py::object& obj, const std::string& what, std::size_t limit) {
  if (obj.is_none()) return {0, limit};
  const std::string expected = what + " must be None or (begin, end) with 0 <= begin <= end <= " + std::to_string(limit);
  if (!py::isinstance<py::tuple>(obj) && !py::isinstance<py::list>(obj)) throw py::type_error(expected);
  const auto seq = obj.cast<py::sequence>();
  if (seq.size() != 2) throw py::value_error(expected + ", got " + std::to_string(seq.size()) + " items");
  long long v[2];
  for (int i = 0; i < 2; ++i) {
    if (PyBool_Check(seq[i].ptr()) || !py::isinstance<py::int_>(seq[i])) throw py::type_error(expected);
    v[i] = seq[i].cast<long long>();
  }
  if (v[0] < 0 || v[0] > v[1] || std::size_t(v[1]) > limit)
    throw py::value_error(expected + ", got (" + std::to_string(v[0]) + ", " + std::to_string(v[1]) + ")");
  return {std::size_t(v[0]), std::size_t(v[1])};
}

// A tile name of `precision`'s kernel family `kernel` -> its index (tile_index); a clear error listing the valid
// names. precision "" (a layer whose kernel has no tile choice) refuses any tile.
std::size_t checked_tile(const std::string& precision, const std::string& kernel, const py::handle& obj,
                         const std::string& what) {
  if (precision.empty())
    throw py::value_error(what + " is for q8, bf16 and f16-weight layers only (f32 and int8 weights on the f32 "
                          "compute have no tile choice)");
  if (!py::isinstance<py::str>(obj)) throw py::type_error(what + " must be a str (a tile name, e.g. '8x32')");
  std::string problem;
  const long index = aefast::tile_index(precision, kernel, obj.cast<std::string>(), &problem);
  if (index < 0) throw py::value_error(what + ": " + problem);
  return std::size_t(index);
}

py::array test_kernel(const std::string& kernel, const std::string& compute_name_arg, const py::handle& w_obj,
                      const py::handle& bias_obj, const py::handle& a_obj, const py::object& scale_obj,
                      double input_scale, const py::object& a_scale_obj, const py::object& a_zero_obj,
                      bool a_tail_safe, const py::object& rows_obj, const py::object& panels_obj,
                      const py::object& ldc_obj, const py::handle& activation_obj, bool clip, bool c_bf16,
                      const py::object& tile_obj, bool q8_elu) {
  const Compute compute = checked_compute_name(compute_name_arg);
  const std::string problem = aefast::kernel_problem(compute, kernel);
  if (!problem.empty()) throw py::value_error(problem);
  py::array w = checked_array(w_obj, "weight", 2);
  WeightType wtype;
  if (has_dtype<float>(w)) wtype = WeightType::f32;
  else if (w.dtype().kind() == 'f' && w.itemsize() == 2 && w.dtype().byteorder() != '>') wtype = WeightType::f16;
  else if (has_dtype<std::int8_t>(w)) wtype = WeightType::i8;
  else if (has_dtype<std::uint16_t>(w)) wtype = WeightType::bf16;
  else bad_dtype("weight", w, "float32, float16, int8 or uint16 (bf16 bits)");
  if ((compute == Compute::f32 && wtype == WeightType::bf16) || (compute == Compute::q8 && wtype != WeightType::i8) ||
      (compute == Compute::bf16 && wtype != WeightType::bf16))
    throw py::type_error("weight has dtype " + dtype_of(w) + " for compute '" + compute_name_arg +
                         "'; expected float32/float16/int8 (f32), int8 (q8) or uint16 (bf16)");
  const std::size_t tile =
      tile_obj.is_none() ? 0 : checked_tile(aefast::tile_precision(compute, wtype), kernel, tile_obj, "tile");
  const std::size_t k = w.shape(0), n = w.shape(1);
  if (k == 0 || n == 0) throw py::value_error("weight has shape " + shape_of(w) + "; k and n must be >= 1");
  if (compute == Compute::q8 && k > kMaxQ8Inputs)
    throw py::value_error("weight has " + std::to_string(k) + " inputs; q8 takes at most " + std::to_string(kMaxQ8Inputs));
  if (wtype == WeightType::bf16) check_bf16_finite(w, "kernel test");
  py::array bias = checked_array(bias_obj, "bias", 1);
  if (!has_dtype<float>(bias)) bad_dtype("bias", bias, "float32");
  if (std::size_t(bias.shape(0)) != n)
    throw py::value_error("bias has shape " + shape_of(bias) + ", expected (" + std::to_string(n) + ",)");
  py::array scale;  // (a default py::array is an empty array, not null: use scale_data)
  const float* scale_data = nullptr;
  if (!scale_obj.is_none()) {
    if (compute == Compute::bf16) throw py::value_error("scale is not used by bf16 kernels; pass None");
    scale = checked_array(scale_obj, "scale", 1);
    if (!has_dtype<float>(scale)) bad_dtype("scale", scale, "float32");
    if (std::size_t(scale.shape(0)) != n)
      throw py::value_error("scale has shape " + shape_of(scale) + ", expected (" + std::to_string(n) + ",)");
    scale_data = static_cast<const float*>(scale.data());
  }
  py::array a = checked_array(a_obj, "a", 2);
  InputType itype = InputType::f32;
  if (compute == Compute::f32) {
    if (has_dtype<float>(a)) itype = InputType::f32;
    else if (has_dtype<std::uint8_t>(a)) itype = InputType::u8;
    else bad_dtype("a", a, "float32 or uint8 (f32 compute)");
  } else if (compute == Compute::q8) {
    if (!has_dtype<std::uint8_t>(a)) bad_dtype("a", a, "uint8 (q8 codes)");
  } else if (!has_dtype<std::uint16_t>(a)) {
    bad_dtype("a", a, "uint16 (bf16 bits)");
  }
  const std::size_t total_rows = a.shape(0), lda = a.shape(1);
  const std::size_t quads = aefast::quad_count(k) * aefast::kQuadK, pairs = aefast::pair_count(k) * aefast::kPairK;
  if (lda < k) throw py::value_error("a has shape " + shape_of(a) + "; its rows (lda) must hold k = " + std::to_string(k) + " inputs");
  const auto [row_begin, row_end] = checked_range(rows_obj, "rows", total_rows);
  const auto [panel_begin, panel_end] = checked_range(panels_obj, "panels", aefast::panel_count(n));
  if (compute == Compute::q8 && a_tail_safe && lda < quads)
    throw py::value_error("a_tail_safe needs rows readable up to 4 ceil(k / 4) = " + std::to_string(quads) +
                          " bytes; a has lda " + std::to_string(lda));
  if (compute != Compute::q8 && a_tail_safe) throw py::value_error("a_tail_safe is for q8 kernels only");
  if (compute == Compute::bf16) {
    if (lda < pairs)
      throw py::value_error("bf16 rows must be readable up to 2 ceil(k / 2) = " + std::to_string(pairs) +
                            "; a has lda " + std::to_string(lda));
    const auto* bits = static_cast<const std::uint16_t*>(a.data());
    for (std::size_t r = row_begin; r < row_end; ++r)
      for (std::size_t i = k; i < pairs; ++i)
        if (bits[r * lda + i] != 0)
          throw py::value_error("bf16 row " + std::to_string(r) + " must be zero padded at column " + std::to_string(i));
  }
  const float* a_scale = nullptr;
  const std::int32_t* a_zero = nullptr;
  py::array a_scale_arr, a_zero_arr;
  if (compute == Compute::q8) {
    if (a_scale_obj.is_none() || a_zero_obj.is_none())
      throw py::value_error("q8 kernels need a_scale (float32, (rows,)) and a_zero (int32, (rows,))");
    a_scale_arr = checked_array(a_scale_obj, "a_scale", 1);
    a_zero_arr = checked_array(a_zero_obj, "a_zero", 1);
    if (!has_dtype<float>(a_scale_arr)) bad_dtype("a_scale", a_scale_arr, "float32");
    if (!has_dtype<std::int32_t>(a_zero_arr)) bad_dtype("a_zero", a_zero_arr, "int32");
    if (std::size_t(a_scale_arr.shape(0)) != total_rows || std::size_t(a_zero_arr.shape(0)) != total_rows)
      throw py::value_error("a_scale and a_zero must have shape (" + std::to_string(total_rows) + ",), got " +
                            shape_of(a_scale_arr) + " and " + shape_of(a_zero_arr));
    a_scale = static_cast<const float*>(a_scale_arr.data());
    a_zero = static_cast<const std::int32_t*>(a_zero_arr.data());
    for (std::size_t r = 0; r < total_rows; ++r)
      if (a_zero[r] < 0 || a_zero[r] > 255)
        throw py::value_error("a_zero[" + std::to_string(r) + "] is " + std::to_string(a_zero[r]) + ", expected 0..255");
    if (input_scale != 1.0) throw py::value_error("q8 kernels take their input scale from a_scale; input_scale must be 1");
  } else if (!a_scale_obj.is_none() || !a_zero_obj.is_none()) {
    throw py::value_error("a_scale and a_zero are for q8 kernels only");
  }
  if (!std::isfinite(input_scale)) throw py::value_error("input_scale must be finite");
  if (c_bf16 && compute != Compute::bf16) throw py::value_error("c_bf16 is for bf16 kernels only");
  // A bf16 output of odd width also gets the zero in column n (the next layer's padding).
  const std::size_t min_ldc = n + (c_bf16 && n % 2 ? 1 : 0);
  std::size_t ldc = min_ldc;
  if (!ldc_obj.is_none()) {
    if (PyBool_Check(ldc_obj.ptr()) || !py::isinstance<py::int_>(ldc_obj)) throw py::type_error("ldc must be None or an int");
    const long long v = ldc_obj.cast<long long>();
    if (v < 0 || std::size_t(v) < min_ldc)
      throw py::value_error("ldc is " + std::to_string(v) + ", expected >= " + std::to_string(min_ldc) +
                            (min_ldc > n ? " (n + 1: an odd-width bf16 output also gets the zero in column n)" : ""));
    ldc = std::size_t(v);
  }
  Activation activation = checked_activation(activation_obj, "activation");
  if (q8_elu) {
    if (compute != Compute::q8 || activation.kind != aefast::ActivationKind::elu)
      throw py::value_error("q8_elu is for q8 kernels with an ELU activation ('elu' or 'elu(A)')");
    activation.kind = aefast::ActivationKind::elu_q8;
  }
  // The output starts as NaN (float) or 0xffff (a bf16 NaN) everywhere: cells the kernel must not write stay so.
  py::array out;
  if (c_bf16) {
    py::array_t<std::uint16_t> o({total_rows, ldc});
    std::fill(o.mutable_data(), o.mutable_data() + o.size(), std::uint16_t(0xffff));
    out = o;
  } else {
    py::array_t<float> o({total_rows, ldc});
    std::fill(o.mutable_data(), o.mutable_data() + o.size(), std::numeric_limits<float>::quiet_NaN());
    out = o;
  }
  const aefast::KernelTestCase t{compute, wtype, itype, w.data(), k, n,
                                 scale_data,
                                 static_cast<const float*>(bias.data()), a.data(), lda, a_tail_safe, a_scale, a_zero,
                                 float(input_scale), out.mutable_data(), ldc, c_bf16, row_begin, row_end,
                                 panel_begin, panel_end, activation, clip};
  {
    py::gil_scoped_release release;
    aefast::run_kernel_test(kernel, tile, t);
  }
  return out;
}

// Owns the packed network; the Python-visible object.
class PyNetwork {
 public:
  PyNetwork(const py::list& layers, const std::string& isa, const py::object& threads) {
    const aefast::IsaKernels& kernels = checked_isa(isa);
    const std::size_t n_threads = checked_threads(threads);
    if (layers.empty()) throw py::value_error("layers must hold at least one layer dict");
    std::vector<aefast::LayerSpec> specs;
    std::vector<py::array> keep_alive;
    for (std::size_t i = 0; i < layers.size(); ++i) {
      const std::string where = "layers[" + std::to_string(i) + "]";
      if (!py::isinstance<py::dict>(layers[i])) throw py::type_error(where + " must be a dict");
      const auto layer = layers[i].cast<py::dict>();
      for (const char* key : {"weight", "bias", "activation"})
        if (!layer.contains(key)) throw py::value_error(where + " is missing the key \"" + key + "\"");
      for (const auto& item : layer) {
        const std::string key = py::str(item.first).cast<std::string>();
        if (key != "weight" && key != "bias" && key != "activation" && key != "scale" && key != "compute" &&
            key != "tile")
          throw py::value_error(where + " has an unknown key \"" + key +
                                "\" (expected weight, scale, bias, activation, compute, tile)");
      }
      py::array w = checked_array(layer["weight"], where + "[\"weight\"]", 2);
      WeightType type;
      if (has_dtype<float>(w)) type = WeightType::f32;
      else if (w.dtype().kind() == 'f' && w.itemsize() == 2 && w.dtype().byteorder() != '>') type = WeightType::f16;
      else if (has_dtype<std::int8_t>(w)) type = WeightType::i8;
      else if (has_dtype<std::uint16_t>(w)) type = WeightType::bf16;
      else bad_dtype(where + "[\"weight\"]", w, "float32, float16, int8 or uint16 (bf16 bits)");
      const Compute compute = checked_compute(layer, where, type);
      if (i > 0 && compute != specs.front().compute)
        throw py::value_error(where + " computes in " + compute_name(compute) + " but layers[0] in " +
                              compute_name(specs.front().compute) + "; every layer must use the same compute");
      const std::size_t in = w.shape(0), out = w.shape(1);
      if (compute == Compute::q8 && in > kMaxQ8Inputs)
        throw py::value_error(where + " has " + std::to_string(in) + " inputs; q8 layers take at most " +
                              std::to_string(kMaxQ8Inputs) + " (int32 sums of u8 x s8 products must not overflow)");
      if (type == WeightType::bf16) check_bf16_finite(w, where);
      if (in == 0 || out == 0)
        throw py::value_error(where + "[\"weight\"] has shape " + shape_of(w) + "; widths must be >= 1");
      if (!specs.empty() && specs.back().out != in)
        throw py::value_error(where + "[\"weight\"] has " + std::to_string(in) + " inputs but layers[" +
                              std::to_string(i - 1) + "] has " + std::to_string(specs.back().out) +
                              " outputs; layers must chain");
      const bool has_scale = layer.contains("scale") && !layer["scale"].is_none();
      const float* scale = nullptr;
      if (type == WeightType::i8) {
        if (!has_scale) throw py::value_error(where + " has int8 weights but no \"scale\" (float32, (out,))");
        py::array s = checked_vector(layer, "scale", where, out);
        scale = static_cast<const float*>(s.data());
        keep_alive.push_back(s);
      } else if (has_scale) {
        throw py::value_error(where + " has a \"scale\" but " + dtype_of(w) + " weights; scale is for int8 only");
      }
      py::array b = checked_vector(layer, "bias", where, out);
      keep_alive.push_back(w);
      keep_alive.push_back(b);
      std::size_t tile = 0;
      if (layer.contains("tile") && !layer["tile"].is_none())
        tile = checked_tile(aefast::tile_precision(compute, type), aefast::tile_kernel(kernels, compute),
                            layer["tile"], where + "[\"tile\"]");
      specs.push_back({type, w.data(), scale, static_cast<const float*>(b.data()), in, out,
                       checked_activation(layer["activation"], where + "[\"activation\"]"), compute, tile});
    }
    // Packs (copies) the weights and starts the pool; a thread the OS refuses is a RuntimeError naming the count.
    net_ = std::make_unique<aefast::Network>(specs, kernels, n_threads);
  }

  void forward(const py::handle& x_obj, const py::handle& out_obj, long begin, long end, bool clip,
               double input_scale) const {
    const long n_layers = long(net_->layer_count());
    if (end == -1) end = n_layers;
    if (begin < 0 || begin >= n_layers || end < 1 || end > n_layers || begin >= end)
      throw py::value_error("need 0 <= begin < end <= " + std::to_string(n_layers) + " (end=-1 means " +
                            std::to_string(n_layers) + "), got begin=" + std::to_string(begin) +
                            ", end=" + std::to_string(end));
    if (!std::isfinite(input_scale)) throw py::value_error("input_scale must be finite");
    // After os.fork() the child's copy of this Network holds locks copied in whatever state the parent's threads had
    // them (its scratch free list may be locked forever): refuse rather than risk a deadlock.
    if (aefast::fork_generation() != built_at_fork_generation_)
      throw std::runtime_error("this Network was built before os.fork() and cannot run in the child; build a new "
                               "one here (aefast.Engine rebuilds its own)");
    const auto sizes = net_->layer_sizes();
    py::array x = checked_array(x_obj, "x", 2);
    InputType x_type;
    if (has_dtype<float>(x)) x_type = InputType::f32;
    else if (has_dtype<std::uint8_t>(x)) x_type = InputType::u8;
    else bad_dtype("x", x, "float32 or uint8");
    const std::size_t rows = x.shape(0);
    if (std::size_t(x.shape(1)) != sizes[begin])
      throw py::value_error("x has shape " + shape_of(x) + ", expected (N, " + std::to_string(sizes[begin]) +
                            ") for begin=" + std::to_string(begin));
    py::array out = checked_array(out_obj, "out", 2);
    if (!has_dtype<float>(out)) bad_dtype("out", out, "float32");
    if (!out.writeable()) throw py::value_error("out must be writeable");
    if (std::size_t(out.shape(0)) != rows || std::size_t(out.shape(1)) != sizes[end])
      throw py::value_error("out has shape " + shape_of(out) + ", expected (" + std::to_string(rows) + ", " +
                            std::to_string(sizes[end]) + ") for end=" + std::to_string(end));
    if (overlaps(x, out)) throw py::value_error("out must not share memory with x");
    const void* x_data = x.data();
    float* out_data = static_cast<float*>(out.mutable_data());
    py::gil_scoped_release release;
    net_->forward(x_data, x_type, out_data, rows, begin, end, clip, float(input_scale));
  }

  const aefast::Network& net() const { return *net_; }

 private:
  std::unique_ptr<aefast::Network> net_;
  std::uint64_t built_at_fork_generation_ = aefast::fork_generation();
};

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "aefast compiled core: fused dense kernels with run-time ISA dispatch";
  if (const std::string problem = aefast::disabled_features_problem(); !problem.empty())
    throw py::value_error(problem);
  m.def("cpu_features", [] {
    const auto& f = aefast::cpu_features();
    py::dict d;
    d["avx2"] = f.avx2;
    d["fma"] = f.fma;
    d["f16c"] = f.f16c;
    d["avx512f"] = f.avx512f;
    d["avx512bw"] = f.avx512bw;
    d["avx512dq"] = f.avx512dq;
    d["avx512vl"] = f.avx512vl;
    d["avx512vnni"] = f.avx512vnni;
    d["avx512bf16"] = f.avx512bf16;
    d["avx_vnni"] = f.avx_vnni;
    d["amx_tile"] = f.amx_tile;
    d["amx_int8"] = f.amx_int8;
    d["amx_bf16"] = f.amx_bf16;
    return d;
  }, "CPU features detected at run time (CPUID + XGETBV; AMX also needs the OS's tile data permission).");
  m.def("amx_problem", [] { return aefast::amx_problem(); },
        "Why AMX is off although CPUID lists it ('' when on or absent): XCR0 or the OS's refused tile permission.");
  m.def("cpu_identity", [] {
    const auto& id = aefast::cpu_identity();
    py::dict d;
    d["vendor"] = id.vendor;
    d["family"] = id.family;
    d["model"] = id.model;
    return d;
  }, "{'vendor', 'family', 'model'} from CPUID (display family and model, as /proc/cpuinfo shows them).");

  m.attr("MAX_THREADS") = aefast::ThreadPool::kMaxThreads;
  // The activation kinds every kernel's epilogue runs (the layer dict's "activation" strings name them).
  m.attr("ACTIVATIONS") = py::make_tuple("linear", "elu", "sigmoid", "relu", "leaky_relu", "tanh");
  m.def("isas", &aefast::usable_isas, "ISAs usable on this CPU, best first; 'scalar' is always there.");

  // The engine's input fast path: the range of a float32 image batch in one pass, without NumPy's per-reduction
  // overhead (two reductions cost ~5 us at batch 1; this ~0.2 us). NaN anywhere gives (nan, nan).
  m.def("float_range", [](const py::handle& x_obj) {
    py::array x = checked_array(x_obj, "x", 2);
    if (!has_dtype<float>(x)) bad_dtype("x", x, "float32");
    const float* v = static_cast<const float*>(x.data());
    const std::size_t n = std::size_t(x.size());
    float lo = std::numeric_limits<float>::infinity(), hi = -lo;
    bool nan = false;
    {
      py::gil_scoped_release release;
      for (std::size_t i = 0; i < n; ++i) {
        lo = v[i] < lo ? v[i] : lo;   // compiles to vminps / vmaxps (NaN handled below)
        hi = v[i] > hi ? v[i] : hi;
        nan |= v[i] != v[i];
      }
    }
    if (nan) lo = hi = std::numeric_limits<float>::quiet_NaN();
    return py::make_tuple(lo, hi);
  }, py::arg("x"), "(min, max) of a C-contiguous 2-D float32 array; (nan, nan) if it holds NaN; (inf, -inf) if empty.");

  m.def("elu", [](const py::handle& x_obj, const std::string& isa) {
    const aefast::IsaKernels& kernels = checked_isa(isa);
    py::array x = checked_array(x_obj, "x", 1);
    if (!has_dtype<float>(x)) bad_dtype("x", x, "float32");
    py::array_t<float> y(x.shape(0));
    const float* src = static_cast<const float*>(x.data());
    float* dst = y.mutable_data();
    const std::size_t n = x.shape(0);
    {
      py::gil_scoped_release release;
      kernels.f32->elu(src, dst, n);
    }
    return y;
  }, py::arg("x"), py::arg("isa") = "auto", "ELU (alpha = 1) of a float32 1-D array, with the chosen ISA's kernel.");

  // --- peak: the machine's multiply-add ceilings (aefast/bench/machine.py); see csrc/kernels/peak.h ---
  m.def("peak", [](const std::string& kind, double seconds) {
    if (!std::isfinite(seconds) || seconds <= 0 || seconds > 60)
      throw py::value_error("seconds must be in (0, 60], got " + std::to_string(seconds));
    const std::string problem = aefast::peak_kind_problem(kind);
    if (!problem.empty()) {
      std::string usable;
      for (const auto& n : aefast::usable_peak_kinds()) usable += (usable.empty() ? "" : ", ") + n;
      throw py::value_error(problem + "; usable on this CPU: " + (usable.empty() ? "none" : usable));
    }
    py::gil_scoped_release release;
    return aefast::peak_gmacs(kind, seconds);
  }, py::arg("kind"), py::arg("seconds") = 0.2,
  "G multiply-adds per second of a register-only loop of `kind` ('fp32_fma': ymm FMA, 'fp32_fma_zmm', "
  "'int8_vpdpbusd', 'bf16_vdpbf16ps') on the calling thread: the fastest ~2 ms window of about `seconds`.");

  // --- which kernels exist, which run here, and the kernel tester's hook (tests/test_microkernels.py) ---
  m.def("known_isas", &aefast::known_isas, "Every ISA level this build has, best first, usable here or not.");
  m.def("isa_problem", &aefast::isa_problem, py::arg("isa"),
        "Why ISA level `isa` cannot run on this CPU ('' when it can): unknown, or the CPU features it lacks.");
  m.def("kernel_names", [](const std::string& compute) { return aefast::kernel_names(checked_compute_name(compute)); },
        py::arg("compute"), "Every kernel of compute 'f32', 'q8' or 'bf16' this build has, best first.");
  m.def("kernel_problem", [](const std::string& compute, const std::string& kernel) {
    return aefast::kernel_problem(checked_compute_name(compute), kernel);
  }, py::arg("compute"), py::arg("kernel"), "Why that kernel cannot run on this CPU ('' when it can).");
  m.def("_test_kernel", &test_kernel, py::arg("kernel"), py::arg("compute"), py::arg("weight"), py::arg("bias"),
        py::arg("a"), py::kw_only(), py::arg("scale") = py::none(), py::arg("input_scale") = 1.0,
        py::arg("a_scale") = py::none(), py::arg("a_zero") = py::none(), py::arg("a_tail_safe") = false,
        py::arg("rows") = py::none(), py::arg("panels") = py::none(), py::arg("ldc") = py::none(),
        py::arg("activation") = "linear", py::arg("clip") = false, py::arg("c_bf16") = false,
        py::arg("tile") = py::none(), py::arg("q8_elu") = false,
        "Test hook: runs ONE named dense kernel (kernel_names(compute)) on weight (k, n) packed as a Network packs "
        "it, A rows a[r, :k] (lda = a.shape[1]), rows [begin, end) and panels [begin, end) of 16 columns, into an "
        "output of shape (a.shape[0], ldc) prefilled with NaN (float32; uint16 0xffff when c_bf16), and returns it. "
        "tile: a name of tile_names(precision, kernel) for q8, bf16 and f16 weights (precision 'q8', 'bf16' or 'f16'; "
        "None: the family's default). q8_elu (q8, ELU): the ELU as a Network's q8 layers compute it (dense.h "
        "ActivationKind::elu_q8: the cheaper expm1); without it the kernel computes the ELU of the other computes.");
  m.def("kernel_for", [](const std::string& isa, const std::string& compute) {
    const aefast::IsaKernels& k = checked_isa(isa);
    const Compute c = checked_compute_name(compute == "f16" ? "f32" : compute);
    return std::string(aefast::tile_kernel(k, c));
  }, py::arg("isa"), py::arg("compute"),
  "The kernel family a Network built with `isa` runs for `compute` here (what Network.kernel will say); 'f16' "
  "(f16 weights on the f32 compute) gives the f32 family.");
  m.def("tile_names", [](const std::string& precision, const std::string& kernel) {
    if (precision == "f32") {
      const std::string problem = aefast::kernel_problem(Compute::f32, kernel);
      if (problem.rfind("unknown", 0) == 0) throw py::value_error(problem);
      return std::vector<std::string>{};
    }
    std::string problem;
    if (aefast::tile_index(precision, kernel, "", &problem) < 0) throw py::value_error(problem);
    return aefast::tile_names(precision, kernel);
  }, py::arg("precision"), py::arg("kernel"),
  "The register tiles of a kernel family (usable here or not), its default first: precision 'q8' (e.g. '8x32'), "
  "'bf16' ('dpbf16', 'fma', 'mixed' on avx512bf16) or 'f16' (the f32 families on f16 weights: 'zmm', 'ymm' on "
  "avx512); [] for 'f32' (f32 and int8 weights), which has no tile choice.");
  m.def("_time_tiles", [](const std::string& precision, const std::string& kernel, long long k, long long n,
                          long long rows, long long rounds) {
    std::string problem;
    if (aefast::tile_index(precision, kernel, "", &problem) < 0) throw py::value_error(problem);
    problem = aefast::kernel_problem(checked_compute_name(precision == "f16" ? "f32" : precision), kernel);
    if (!problem.empty()) throw py::value_error(problem);
    if (k < 1 || k > (long long)kMaxQ8Inputs) throw py::value_error("k must be in 1.." + std::to_string(kMaxQ8Inputs));
    if (n < 1 || n > 65536) throw py::value_error("n must be in 1..65536");
    if (rows < 1 || rows > 4096) throw py::value_error("rows must be in 1..4096");
    if (rounds < 1 || rounds > 1000) throw py::value_error("rounds must be in 1..1000");
    std::vector<double> seconds;
    {
      py::gil_scoped_release release;
      seconds = aefast::time_tiles(precision, kernel, std::size_t(k), std::size_t(n), std::size_t(rows),
                                   std::size_t(rounds));
    }
    py::dict out;
    const auto names = aefast::tile_names(precision, kernel);
    for (std::size_t i = 0; i < names.size(); ++i) out[py::str(names[i])] = seconds[i];
    return out;
  }, py::arg("precision"), py::arg("kernel"), py::arg("k"), py::arg("n"), py::arg("rows"), py::arg("rounds") = 5,
  "Tile calibration timer: {tile: seconds per call} of every tile of `precision`'s kernel family `kernel` ('q8', "
  "'bf16' or 'f16'; usable here) on one k x n layer over `rows` rows on the calling thread (fixed pseudo-random "
  "operands, ELU; fastest of `rounds` interleaved rounds).");

  py::class_<PyNetwork>(m, "Network", "A chain of fused dense layers, weights packed once at construction.")
      .def(py::init<const py::list&, const std::string&, const py::object&>(), py::arg("layers"),
           py::arg("isa") = "auto", py::arg("threads") = 0)
      .def("forward", &PyNetwork::forward, py::arg("x"), py::arg("out"), py::arg("begin") = 0, py::arg("end") = -1,
           py::arg("clip") = false, py::arg("input_scale") = 1.0,
           "out[:] = layers[begin:end](x); x float32 or uint8 (N, width[begin]), out float32 (N, width[end]).")
      .def_property_readonly("isa", [](const PyNetwork& n) { return std::string(n.net().isa_name()); })
      .def_property_readonly("kernel", [](const PyNetwork& n) { return std::string(n.net().kernel_name()); },
                             "The kernel that runs the layers: the ISA, or for q8/bf16 the extension used "
                             "(amx, avx512vnni, avxvnni, avx512bf16, avx2, scalar; see kernel_names).")
      .def_property_readonly("compute", [](const PyNetwork& n) { return std::string(compute_name(n.net().compute())); })
      .def_property_readonly("threads", [](const PyNetwork& n) { return n.net().threads(); })
      .def_property_readonly("nbytes", [](const PyNetwork& n) { return n.net().nbytes(); })
      .def_property_readonly("layer_sizes", [](const PyNetwork& n) { return n.net().layer_sizes(); })
      .def_property_readonly("tiles", [](const PyNetwork& n) { return n.net().tile_names(); },
                             "Per layer, the register tile it runs with (q8, bf16 and f16 weights: a name of "
                             "tile_names(precision, kernel); '' where there is no tile choice).");
}
