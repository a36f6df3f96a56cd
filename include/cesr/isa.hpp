// Instruction sets of the rate's O(d) kernels (the secular sums of k = 1 and
// k = 2 and the gap's gradient pass, src/kernels.cpp).
//
// The portable build targets the x86-64 baseline (SSE2); the kernels are
// compiled once more for AVX2 and for AVX-512 and the widest one the CPU has
// is chosen at run time. Every variant sums the same terms in the same order
// (eight fixed lanes per chunk, combined in a fixed tree) with the same
// operations, none contracted into FMAs, so the results are bitwise the same
// whichever variant runs: the instruction set changes the time, never a digit.
#pragma once

#include <string_view>

namespace cesr {

enum class Isa {
  Baseline,  ///< x86-64 baseline, SSE2 (two lanes per instruction)
  Avx2,      ///< AVX2 (four lanes)
  Avx512,    ///< AVX-512F (eight lanes)
};

std::string_view to_string(Isa isa);

/// Whether this CPU runs the variant.
bool isa_supported(Isa isa);
/// The widest variant this CPU runs.
Isa best_isa();
/// The variant the kernels use (best_isa() unless set_kernel_isa chose another).
Isa kernel_isa();
/// Selects the variant for the whole process (benchmarks and tests compare
/// them). Throws std::invalid_argument when the CPU does not run it.
void set_kernel_isa(Isa isa);

}  // namespace cesr
