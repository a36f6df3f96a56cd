// The fast search's tuned point against the global search's (dense grid and
// restarted Nelder-Mead) at one problem: both stable, and the fast gap never
// more than 1e-6 (relative) below the global one. Returns fast / global.
#pragma once

#include <doctest/doctest.h>

#include "cesr/tune.hpp"

namespace cesr_test {

inline double fast_over_global(const cesr::TuneResult& fast, const cesr::TuneResult& global) {
  CAPTURE(fast.gap);
  CAPTURE(global.gap);
  REQUIRE(global.stable);
  REQUIRE(fast.stable);
  CHECK(fast.gap >= global.gap * (1 - 1e-6));
  return fast.gap / global.gap;
}

}  // namespace cesr_test
