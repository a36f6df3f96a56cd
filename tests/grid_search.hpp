// A brute-force search for the tests of the tuner: a grid over a box, then
// (levels - 1) more grids spanning the two cells around the best point so far.
// No optimiser and no search code of src/ is involved.
#pragma once

#include <algorithm>
#include <cstddef>
#include <functional>
#include <limits>
#include <vector>

namespace cesr_test {

/// The smallest f(x, best) over the grids (f is given the best value so far,
/// e.g. to cap a time-stepping run).
inline double grid_min(const std::function<double(const std::vector<double>&, double)>& f, std::vector<double> lo,
                       std::vector<double> hi, const std::vector<int>& points, int levels = 3) {
  const std::size_t n = lo.size();
  double best = std::numeric_limits<double>::infinity();
  std::vector<double> best_x(n);
  for (int level = 0; level < levels; ++level) {
    std::vector<double> h(n);
    for (std::size_t i = 0; i < n; ++i) h[i] = (hi[i] - lo[i]) / (points[i] - 1);
    std::vector<int> idx(n, 0);
    for (;;) {
      std::vector<double> x(n);
      for (std::size_t i = 0; i < n; ++i) x[i] = lo[i] + idx[i] * h[i];
      const double v = f(x, best);
      if (v < best) {
        best = v;
        best_x = x;
      }
      std::size_t i = 0;
      while (i < n && ++idx[i] == points[i]) idx[i++] = 0;
      if (i == n) break;
    }
    for (std::size_t i = 0; i < n; ++i) {
      lo[i] = std::max(lo[i], best_x[i] - 2 * h[i]);
      hi[i] = std::min(hi[i], best_x[i] + 2 * h[i]);
    }
  }
  return best;
}

/// The largest f(x) over the same grids.
inline double grid_max(const std::function<double(const std::vector<double>&)>& f, std::vector<double> lo,
                       std::vector<double> hi, const std::vector<int>& points, int levels = 3) {
  return -grid_min([&f](const std::vector<double>& x, double) { return -f(x); }, std::move(lo), std::move(hi),
                   points, levels);
}

}  // namespace cesr_test
