// Runs ONE named kernel on one block, outside any Network: the hook behind aefast._core._test_kernel, which drives
// each kernel (and each of its register tiles) through its tile edges against its scalar twin
// (tests/test_microkernels.py, tests/test_tiles.py), and the timer behind the tile calibration
// (aefast/engine/tiles.py). The binding validates every field against the kernel's contract (dense.h) before calling.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "dispatch.h"

namespace aefast {

struct KernelTestCase {
  Compute compute;
  WeightType weight_type;   // f32/f16/i8 for Compute::f32; i8 for q8; bf16 for bf16
  InputType input_type;     // f32 compute: f32 or u8 A; q8: u8 codes; bf16: bf16 bits (read as u16)
  const void* weight;       // row-major W[k][n], packed here exactly as Network packs it
  std::size_t k, n;
  const float* scale;       // (n,) or null (1): the fp32 per-channel scale, or the q8 w_scale
  const float* bias;        // (n,)
  const void* a;            // A[r * lda + i]
  std::size_t lda;
  bool a_tail_safe;         // q8: rows readable up to 4 ceil(k / 4)
  const float* a_scale;     // q8: per row
  const std::int32_t* a_zero;
  float input_scale;        // f32 and bf16 computes
  void* c;                  // float, or bf16 bits when c_bf16
  std::size_t ldc;
  bool c_bf16;
  std::size_t row_begin, row_end, panel_begin, panel_end;
  Activation activation;
  bool clip;
};

// Runs the dense kernel of family `kernel` (find_*_kernels(kernel) must be non-null) on the case with register tile
// `tile` (an index of tile_names(tile_precision(compute, weight_type), kernel); 0 where there is no tile choice).
void run_kernel_test(const std::string& kernel, std::size_t tile, const KernelTestCase& t);

// Seconds per call of each tile of `precision`'s kernel family `kernel` (tile_names(precision, kernel); the family
// usable here) on one layer of k inputs x n outputs over `rows` rows, on the calling thread: weights and inputs are
// fixed pseudo-random values (q8: int8 weights, u8 codes; bf16: bf16 weights and inputs; f16: f16 weights, fp32
// inputs), ELU epilogue, all panels. Tiles are timed in `rounds` interleaved rounds (each round calls every tile
// once, after one untimed warm-up call of each), and the fastest call of each tile counts, so a burst of other work
// on a shared machine hits every tile alike and falls out of the minimum. Index i is tile i of the family's table.
std::vector<double> time_tiles(const std::string& precision, const std::string& kernel, std::size_t k, std::size_t n,
                               std::size_t rows, std::size_t rounds);

}  // namespace aefast
