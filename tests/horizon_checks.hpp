// The checks shared by the spectral any-horizon tests (test_horizon for k = 1,
// test_horizon_k2 for k = 2): a case, exact time stepping of it, and the three
// comparisons of the spectral path against time stepping (L_t against 50 digits
// early and late, far L_t against long double, first crossings against long
// double).
#pragma once

#include <doctest/doctest.h>

#include "cesr/dynamics.hpp"
#include "cesr/horizon.hpp"
#include "cesr/method.hpp"
#include "cesr/spectrum.hpp"

#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace horizon_checks {

struct Case {
  std::string name;
  cesr::Spectrum spectrum;
  cesr::MethodSpec spec;
  cesr::NoiseModel noise;
};

/// L_t of the case at the steps ts (increasing), by time stepping in Real.
template <class Real>
std::vector<Real> stepped(const Case& c, const std::vector<std::uint64_t>& ts) {
  cesr::Dynamics<Real> dyn(c.spectrum, cesr::make_path<Real>(c.spec), c.noise);
  std::vector<Real> out;
  for (std::uint64_t t : ts) {
    dyn.advance(t - dyn.time());
    out.push_back(dyn.loss());
  }
  return out;
}

/// The spectral L_t (double, exact path required) within 1e-10 of 50-digit stepping.
inline void check_against_mp50(const std::vector<Case>& cases, const std::vector<std::uint64_t>& ts) {
  for (const Case& c : cases) {
    CAPTURE(c.name);
    cesr::HorizonReport rep;
    const auto fast = cesr::horizon_loss_at<double>(c.spectrum, c.spec, c.noise, ts, 1e-10, rep);
    INFO(rep.describe());
    REQUIRE(fast);
    CHECK(rep.exact);
    const auto ref = stepped<cesr::mp50>(c, ts);
    for (std::size_t i = 0; i < ts.size(); ++i) {
      CAPTURE(ts[i]);
      const double exact = cesr::to_double(ref[i]);
      CHECK(std::abs((*fast)[i] - exact) <= 1e-10 * exact);
    }
  }
}

/// The spectral L_t (long double) within 1e-10 of long-double stepping at far steps.
inline void check_far_steps(const std::vector<Case>& cases, const std::vector<std::uint64_t>& ts) {
  for (const Case& c : cases) {
    CAPTURE(c.name);
    cesr::HorizonReport rep;
    const auto fast = cesr::horizon_loss_at<long double>(c.spectrum, c.spec, c.noise, ts, 1e-10, rep);
    INFO(rep.describe());
    REQUIRE(fast);
    const auto ref = stepped<long double>(c, ts);
    for (std::size_t i = 0; i < ts.size(); ++i) {
      CAPTURE(ts[i]);
      // Long double stepping drifts by about t * 1e-19 relative.
      CHECK(std::abs((double)((*fast)[i] - ref[i])) <= 1e-10 * (double)ref[i]);
    }
  }
}

/// The targets of the k >= 2 crossing checks: relative 0.5, 1e-2, 1e-9 and
/// absolute 0.3 L_0 and 1e-5 L_0 (L_0 by long-double stepping).
inline std::vector<std::pair<double, bool>> momentum_targets(const Case& c) {
  const double l0 = cesr::to_double(stepped<long double>(c, {0})[0]);
  return {{0.5, true}, {1e-2, true}, {1e-9, true}, {0.3 * l0, false}, {1e-5 * l0, false}};
}

/// The spectral first crossing of each target (eps, relative) equals
/// long-double stepping (run to `cap` steps), and its loss agrees to 1e-9.
/// With `skip_near`, a count the path flags as a near tie (the target within
/// the tolerance of L at the crossing) is not compared.
template <class Targets>
void check_crossings(const std::vector<Case>& cases, const Targets& targets_of, std::uint64_t cap,
                     bool skip_near) {
  for (const Case& c : cases) {
    CAPTURE(c.name);
    const std::vector<std::pair<double, bool>> targets = targets_of(c);
    for (const auto& [eps, relative] : targets) {
      CAPTURE(eps);
      CAPTURE(relative);
      cesr::HorizonReport rep;
      const auto fast = cesr::horizon_steps<double>(c.spectrum, c.spec, c.noise, eps, relative, 1e-10, rep);
      INFO(rep.describe());
      REQUIRE(fast);
      const auto ref = cesr::steps_to_target<long double>(c.spectrum, cesr::make_path<long double>(c.spec), c.noise,
                                                          eps, relative, cap);
      if (ref.steps) {
        REQUIRE(fast->steps);
        if (!(skip_near && rep.near_target)) CHECK(*fast->steps == *ref.steps);
        CHECK(std::abs(fast->loss - (double)ref.loss) <= 1e-9 * (double)ref.loss);
      } else {
        // Not reached within cap steps: the spectral path says never (below
        // the floor) or gives a count beyond the stepped range.
        if (fast->steps) CHECK(*fast->steps > cap);
      }
    }
  }
}

}  // namespace horizon_checks
