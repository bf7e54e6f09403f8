// Network::forward for the low-precision computes (q8, bf16): what flows between layers and who converts it.
//
// q8:   each layer's fp32 epilogue output lands in a float staging block (rows x out, in L1/L2), then one pass per
//       row finds its range and quantizes it to uint8 with its own scale and zero point (quantize_rows), ready for
//       the next layer. uint8 images enter the first layer as they are (scale input_scale, zero point 0); float
//       inputs (images in [0, 1], codes) are quantized the same way first. The last layer stores float.
// bf16: each layer's epilogue stores bf16 straight into the next layer's input rows (zero padded to an even width);
//       the first layer's input is converted once (float: round to nearest even; uint8: exact).
// Work split: row blocks that run the whole chain (from 8 rows per thread), or each layer's panels split
// between threads with all rows (few rows), where the caller quantizes between layers.
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kernels/scalar.h"
#include "network.h"

namespace aefast {
namespace {

// Fewest rows per thread for the row-block split of the low-precision paths: one full 8-row tile each.
constexpr std::size_t kLowpRowsPerThread = 8;

std::size_t round_up(std::size_t value, std::size_t multiple) { return (value + multiple - 1) / multiple * multiple; }

// Carves 64-byte aligned arrays out of one float buffer (the first at base rounded up to 64 bytes: callers size the
// buffer with 64 bytes to spare).
class Carver {
 public:
  explicit Carver(float* base)
      : next_(reinterpret_cast<std::uint8_t*>(round_up(reinterpret_cast<std::uintptr_t>(base), 64))) {}
  template <typename T>
  T* take(std::size_t count) {
    T* p = reinterpret_cast<T*>(next_);
    next_ += round_up(count * sizeof(T), 64);
    return p;
  }
  static std::size_t bytes(std::size_t count, std::size_t size) { return round_up(count * size, 64); }

 private:
  std::uint8_t* next_;
};

}  // namespace

// One task's activations for up to `capacity` rows, carved from scratch: two alternating input sets (the layer
// being computed reads one, its output prepares the other) plus the q8 float staging block.
struct Network::LowpRows {
  // Input of the next layer to run.
  const void* a = nullptr;
  std::size_t lda = 0;
  bool tail_safe = true;
  int cur = 0;
  std::uint8_t* q[2];
  std::uint16_t* h[2];
  float* scale[2];
  std::int32_t* zero[2];
  float* staging;

  static std::size_t bytes(std::size_t capacity, std::size_t width) {
    const std::size_t w4 = round_up(width, kQuadK), w2 = round_up(width, kPairK);
    return 2 * (Carver::bytes(capacity * w4, 1) + Carver::bytes(capacity * w2, 2) + Carver::bytes(capacity, 4) +
                Carver::bytes(capacity, 4)) + Carver::bytes(capacity * width, 4) + 64;
  }

  LowpRows(float* base, std::size_t capacity, std::size_t width) {
    Carver carve(base);
    for (int i = 0; i < 2; ++i) {
      q[i] = carve.take<std::uint8_t>(capacity * round_up(width, kQuadK));
      h[i] = carve.take<std::uint16_t>(capacity * round_up(width, kPairK));
      scale[i] = carve.take<float>(capacity);
      zero[i] = carve.take<std::int32_t>(capacity);
    }
    staging = carve.take<float>(capacity * width);
  }
};

std::size_t Network::lowp_floats(std::size_t rows) const {
  return (LowpRows::bytes(rows, max_width_) + sizeof(float) - 1) / sizeof(float);
}

void Network::forward_lowp(const void* x, InputType x_type, float* out, std::size_t rows, std::size_t begin,
                           std::size_t end, bool clip, float input_scale) const {
  const bool q8 = compute_ == Compute::q8;

  // The first layer's input, for rows [0, m) of x.
  auto prepare_input = [&](LowpRows& s, const void* xs, std::size_t m) {
    const std::size_t k = layers_[begin].in;
    s.cur = 0;
    if (q8 && x_type == InputType::u8) {
      s.a = xs, s.lda = k, s.tail_safe = k % kQuadK == 0;
      std::fill(s.scale[0], s.scale[0] + m, input_scale);
      std::fill(s.zero[0], s.zero[0] + m, 0);
    } else if (q8) {
      isa_.q8->quantize_rows(static_cast<const float*>(xs), k, m, k, input_scale, s.q[0], round_up(k, kQuadK),
                             s.scale[0], s.zero[0]);
      s.a = s.q[0], s.lda = round_up(k, kQuadK), s.tail_safe = true;
    } else if (x_type == InputType::u8) {  // bf16: uint8 values are exact in bf16 (8 significant bits)
      const std::size_t ld = round_up(k, kPairK);
      for (std::size_t r = 0; r < m; ++r) {
        const std::uint8_t* src = static_cast<const std::uint8_t*>(xs) + r * k;
        std::uint16_t* dst = s.h[0] + r * ld;
        for (std::size_t i = 0; i < k; ++i) dst[i] = float_to_bf16(float(src[i]));
        for (std::size_t i = k; i < ld; ++i) dst[i] = 0;
      }
      s.a = s.h[0], s.lda = ld;
    } else {
      isa_.bf16->to_bf16(static_cast<const float*>(xs), k, m, k, s.h[0], round_up(k, kPairK));
      s.a = s.h[0], s.lda = round_up(k, kPairK);
    }
  };

  // Layer l on rows [0, m) of the task's input, panels [pb, pe); output to `out_rows` if last, else staged.
  auto run_layer = [&](const LowpRows& s, std::size_t l, std::size_t m, std::size_t pb, std::size_t pe,
                       float* out_rows) {
    const PackedLayer& L = layers_[l];
    const bool last = l + 1 == end;
    if (q8) {
      const Q8DenseBlock block{static_cast<const std::uint8_t*>(s.a), s.lda, s.tail_safe, s.scale[s.cur],
                               s.zero[s.cur], reinterpret_cast<const std::int8_t*>(L.weights.data()),
                               L.colsum.data(), L.scale.data(), L.bias.data(), L.in, L.out,
                               last ? out_rows : s.staging, L.out, 0, m, pb, pe, L.activation, clip && last};
      isa_.q8->dense(L.tile)(block);
    } else {
      const Bf16DenseBlock block{static_cast<const std::uint16_t*>(s.a), s.lda,
                                 reinterpret_cast<const std::uint16_t*>(L.weights.data()), L.bias.data(),
                                 l == begin ? input_scale : 1.0f, L.in, L.out,
                                 last ? static_cast<void*>(out_rows) : static_cast<void*>(s.h[1 - s.cur]),
                                 last ? L.out : round_up(L.out, kPairK), !last, 0, m, pb, pe, L.activation,
                                 clip && last};
      isa_.bf16->dense(L.tile)(block);
    }
  };

  // After layer l (not the last) has run on all its panels: its output becomes the next input.
  auto advance = [&](LowpRows& s, std::size_t l, std::size_t m) {
    const std::size_t n = layers_[l].out, next = 1 - s.cur;
    if (q8) {
      isa_.q8->quantize_rows(s.staging, n, m, n, 1.0f, s.q[next], round_up(n, kQuadK), s.scale[next], s.zero[next]);
      s.a = s.q[next], s.lda = round_up(n, kQuadK), s.tail_safe = true;
    } else {
      s.a = s.h[next], s.lda = round_up(n, kPairK);
    }
    s.cur = next;
  };

  const std::size_t x_row_bytes = layers_[begin].in * (x_type == InputType::u8 ? 1 : sizeof(float));
  const std::size_t out_width = layers_[end - 1].out;
  const std::size_t threads = threads_for(rows, begin, end);

  // Row blocks once every thread gets a full 8-row tile: each thread then quantizes its own rows between layers and
  // needs no barrier. Measured on the 2-core Zen 4 (int8, default model): 32..512 rows went from 120-140k to
  // 200-210k images/s against the panel split below; at 16 rows both gave ~170k. The block count is a multiple of
  // the thread count, so the threads get equal work.
  if (threads == 1 || rows >= threads * kLowpRowsPerThread) {
    const std::size_t blocks_wanted = threads * ((rows + threads * kMaxRowBlock - 1) / (threads * kMaxRowBlock));
    const std::size_t block = std::min(kMaxRowBlock, round_up((rows + blocks_wanted - 1) / blocks_wanted, 8));
    const std::size_t per_slot = lowp_floats(block);
    auto scratch = acquire_scratch(per_slot * threads);
    const std::size_t blocks = (rows + block - 1) / block;
    auto task = [&](std::size_t i, std::size_t slot) {
      const std::size_t r0 = i * block, m = std::min(block, rows - r0);
      LowpRows s(scratch->slot(slot, per_slot), block, max_width_);
      prepare_input(s, static_cast<const std::uint8_t*>(x) + r0 * x_row_bytes, m);
      for (std::size_t l = begin; l < end; ++l) {
        run_layer(s, l, m, 0, panel_count(layers_[l].out), out + r0 * out_width);
        if (l + 1 < end) advance(s, l, m);
      }
    };
    run_blocks(blocks, threads, task);
    release_scratch(std::move(scratch));
    return;
  }

  // Few rows: each layer's panels split between threads; one synchronisation per layer.
  auto scratch = acquire_scratch(lowp_floats(rows));
  LowpRows s(scratch->slot(0, 0), rows, max_width_);
  prepare_input(s, x, rows);
  for (std::size_t l = begin; l < end; ++l) {
    const std::size_t panels = panel_count(layers_[l].out), chunks = std::min(panels, threads);
    pool_.run(chunks, [&](std::size_t i, std::size_t) {
      run_layer(s, l, rows, panels * i / chunks, panels * (i + 1) / chunks, out);
    });
    if (l + 1 < end) advance(s, l, rows);
  }
  release_scratch(std::move(scratch));
}

}  // namespace aefast
