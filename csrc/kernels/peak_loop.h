// The shared body of the register-only peak loops (peak.h): kPeakChains independent dependency chains, each
// c <- step(c) per iteration. Included only by the peak_<isa>.cpp files; every instantiation has its own lambda
// types, so no inline code compiled for one ISA can be picked by the linker for another.
#pragma once
#include <cstdint>

namespace aefast {

// Enough independent chains to cover each multiply-add's latency on Zen 4; 24 live zmm accumulators measured
// slower for vpdpbusd (docs/performance.md). Named locals, not an array: an array made GCC 12 copy every
// accumulator twice per iteration.
constexpr int kPeakChains = 12;

// Runs `iterations` x kPeakChains steps; chain j starts at init(j) (distinct: identical chains would be merged by
// the compiler); returns the chains folded with add(a, b), for the caller's sink.
template <typename Init, typename Step, typename Add>
auto run_peak_chains(std::uint64_t iterations, Init init, Step step, Add add) {
  auto c0 = init(0), c1 = init(1), c2 = init(2), c3 = init(3), c4 = init(4), c5 = init(5), c6 = init(6),
       c7 = init(7), c8 = init(8), c9 = init(9), c10 = init(10), c11 = init(11);
  for (std::uint64_t i = 0; i < iterations; ++i) {
    c0 = step(c0); c1 = step(c1); c2 = step(c2); c3 = step(c3); c4 = step(c4); c5 = step(c5);
    c6 = step(c6); c7 = step(c7); c8 = step(c8); c9 = step(c9); c10 = step(c10); c11 = step(c11);
  }
  return add(add(add(add(c0, c1), add(c2, c3)), add(add(c4, c5), add(c6, c7))),
             add(add(c8, c9), add(c10, c11)));
}

}  // namespace aefast
