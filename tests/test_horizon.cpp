// The spectral any-horizon path (src/horizon.cpp) against exact time stepping
// (src/dynamics.cpp) in long double and 50 digits: L_t within the stated
// tolerance at near and far steps, and first-crossing step counts equal, for
// SGD and custom k = 1 methods, nearly unstable step sizes, label-noise
// floors, Rademacher covariates, repeated eigenvalues and non-monotone curves,
// both target kinds. Time stepping shares no code with the spectral path (no
// roots, no residues), so each comparison can fail.
#include <doctest/doctest.h>

#include "cesr/dynamics.hpp"
#include "cesr/horizon.hpp"
#include "cesr/method.hpp"
#include "cesr/spectrum.hpp"
#include "horizon_checks.hpp"

#include <cmath>
#include <string>
#include <vector>

namespace {

using cesr::HorizonReport;
using cesr::MethodSpec;
using cesr::NoiseModel;
using cesr::Spectrum;

using horizon_checks::Case;
using horizon_checks::stepped;

MethodSpec sgd(double lr) { return cesr::method_spec("sgd", {{"lr", lr}}); }

MethodSpec custom1(double p, double q, double r, double o, double s0 = 1) {
  MethodSpec m = cesr::method_spec("custom");
  m.custom.k = 1;
  m.custom.P[0][0] = p;
  m.custom.q[0] = q;
  m.custom.r[0] = r;
  m.custom.o[0] = o;
  m.custom.s0[0] = s0;
  return m;
}

// The largest lr at which SGD is stable on this problem (bisection on the
// time-stepped loss would be slow; the secular condition g(1) < 1 is enough:
// sum_i (lr^2 lambda_i^2 / B) / (1 - (1 - lr lambda_i)^2 - (K-2) lr^2 lambda_i^2 / B) < 1).
double sgd_lr_limit(const Spectrum& s, const NoiseModel& n) {
  double lo = 0, hi = 2 / s.lambda_max();
  for (int it = 0; it < 200; ++it) {
    const double lr = (lo + hi) / 2;
    long double g = 0;
    bool ok = true;
    for (double l : s.lambda) {
      const long double a = 1 - (long double)lr * l;
      const long double delta = 1 - a * a - (n.kurtosis - 2) * (long double)lr * lr * l * l / n.batch;
      if (!(delta > 0)) ok = false;
      g += (long double)lr * lr * l * l / n.batch / delta;
    }
    if (ok && g < 1) lo = lr;
    else hi = lr;
  }
  return lo;
}

std::vector<Case> cases() {
  std::vector<Case> out;
  const Spectrum lu = cesr::make_spectrum("loguniform:d=40,kappa=1e3");
  const Spectrum pl = cesr::make_spectrum("powerlaw:d=30,alpha=1.5", "powerlaw:beta=0.5");
  const auto at = [](const Spectrum& s, const NoiseModel& n, double fraction) {
    return sgd(fraction * sgd_lr_limit(s, n));
  };
  out.push_back({"sgd lu B=1", lu, at(lu, NoiseModel(1), 0.5), NoiseModel(1)});
  out.push_back({"sgd lu B=8", lu, at(lu, NoiseModel(8), 0.8), NoiseModel(8)});
  out.push_back({"sgd pl B=4 noise", pl, at(pl, NoiseModel(4), 0.6), NoiseModel(4, 3, 0.05)});
  out.push_back({"sgd lu rademacher", lu, at(lu, NoiseModel(2, 1), 0.9), NoiseModel(2, 1, 0)});
  out.push_back({"sgd lu heavy tails noise", lu, at(lu, NoiseModel(1, 9), 0.3), NoiseModel(1, 9, 0.01)});
  {
    NoiseModel n(1);
    out.push_back({"sgd nearly unstable", lu, sgd(0.999 * sgd_lr_limit(lu, n)), n});
  }
  {
    NoiseModel n(16, 3, 0.1);
    out.push_back({"sgd nearly unstable noise", pl, sgd(0.99 * sgd_lr_limit(pl, n)), n});
  }
  // Weight decay and an output that is not the query point (o != r), a
  // state that starts at 2 e_0, a negative P (oscillating modes).
  out.push_back({"custom decay", lu, custom1(0.999, 0.05, 1, 0.7, 2), NoiseModel(2, 3, 0.02)});
  out.push_back({"custom negative", pl, custom1(-0.3, 0.1, 1, 1), NoiseModel(1)});
  {
    // Repeated eigenvalues (merged poles) and a zero initial moment.
    Spectrum s{{1, 1, 0.5, 0.5, 0.5, 0.1, 0.01, 0.01}, {1, 2, 1, 0, 3, 1, 1, 0.5}};
    out.push_back({"repeated eigenvalues", s, sgd(0.3), NoiseModel(1, 3, 0.001)});
  }
  {
    // Initial error below the floor in the slow directions: L_t falls, then
    // rises to the floor (non-monotone).
    Spectrum s{{1, 0.3, 0.1, 0.01}, {5, 0, 0, 0}};
    out.push_back({"non-monotone", s, sgd(0.5), NoiseModel(1, 3, 0.5)});
  }
  {
    // A weighted spectrum (fractional and whole weights, a repeated line):
    // time stepping carries the weights in its sums, the spectral path in u and x_0.
    Spectrum s{{1, 0.5, 0.5, 0.05, 0.003}, {1, 2, 0.5, 1, 3}};
    s.weight = {1, 3, 0.25, 2.5, 7};
    out.push_back({"weighted", s, sgd(0.25), NoiseModel(2, 3, 0.01)});
  }
  return out;
}


}  // namespace

TEST_CASE("horizon: L_t equals 50-digit time stepping to the tolerance, early and late") {
  horizon_checks::check_against_mp50(cases(), {0, 1, 2, 3, 7, 20, 100, 333, 1000, 3000});
}

TEST_CASE("horizon: far steps equal long-double time stepping") {
  horizon_checks::check_far_steps(cases(), {10000, 50000, 200000});
}

TEST_CASE("horizon: the first crossing equals time stepping, absolute and relative targets") {
  const auto targets = [](const Case& c) {
    const double l0 = c.spectrum.initial_loss();
    return std::vector<std::pair<double, bool>>{{0.5, true}, {1e-2, true}, {1e-4, true}, {0.3 * l0, false}, {1e-3 * l0, false}};
  };
  horizon_checks::check_crossings(cases(), targets, 2'000'000, false);
}

TEST_CASE("horizon: a target below the noise floor is never reached, one just above it is") {
  const Spectrum sp = cesr::make_spectrum("loguniform:d=20,kappa=100");
  const Case c{"floor", sp, sgd(0.5 * sgd_lr_limit(sp, NoiseModel(1))), NoiseModel(1, 3, 0.1)};
  // The floor from a long long-double run (converged: the gap is ~1e-2).
  const auto far = stepped<long double>(c, {20000});
  const double floor = (double)far[0];
  HorizonReport rep;
  const auto below = cesr::horizon_steps<double>(c.spectrum, c.spec, c.noise, floor * (1 - 1e-6), false, 1e-10, rep);
  INFO(rep.describe());
  REQUIRE(below);
  CHECK(!below->steps);
  const auto above = cesr::horizon_steps<double>(c.spectrum, c.spec, c.noise, floor * (1 + 1e-6), false, 1e-10, rep);
  REQUIRE(above);
  REQUIRE(above->steps);
  const auto ref = cesr::steps_to_target<long double>(c.spectrum, cesr::make_path<long double>(c.spec), c.noise,
                                                      floor * (1 + 1e-6), false, 100000);
  REQUIRE(ref.steps);
  CHECK(*above->steps == *ref.steps);
}

TEST_CASE("horizon: a crossing after millions of steps equals long-double stepping") {
  // SGD at kappa = 1e6 (d = 3): the crossing of 1e-9 L_0 near 7e6 steps is
  // stepped in long double (7e6 steps of d = 3 are cheap).
  Spectrum s{{1, 1e-3, 1e-6}, {1, 1, 1}};
  const MethodSpec m = sgd(0.5);
  const NoiseModel n(1);
  HorizonReport rep;
  const auto fast = cesr::horizon_steps<double>(s, m, n, 1e-9, true, 1e-10, rep);
  REQUIRE(fast);
  REQUIRE(fast->steps);
  const auto ref =
      cesr::steps_to_target<long double>(s, cesr::make_path<long double>(m), n, 1e-9, true, 100'000'000);
  REQUIRE(ref.steps);
  CHECK(*fast->steps == *ref.steps);
  CHECK(*fast->steps > 5'000'000u);
}

TEST_CASE("horizon: where it does not apply it says why") {
  const Spectrum s = cesr::make_spectrum("loguniform:d=10,kappa=10");
  HorizonReport rep;
  // Heavy ball with an EMA of the iterate slower than the method (k = 3).
  MethodSpec ema = cesr::method_spec("hb", {{"lr", 0.5}, {"momentum", 0.5}});
  ema.average = cesr::parse_average("ema:decay=0.999");
  const auto k3 = cesr::horizon_loss_at<double>(s, ema, NoiseModel(1), {0, 10}, 1e-10, rep);
  CHECK(!k3);
  CHECK(!rep.reason.empty());
  // Unstable: lr beyond the limit.
  const auto unstable = cesr::horizon_loss_at<double>(s, sgd(1.99), NoiseModel(1), {0, 10}, 1e-10, rep);
  CHECK(!unstable);
  CHECK(rep.reason.find("does not contract") != std::string::npos);
  CHECK_THROWS_AS(cesr::parse_horizon("fast"), cesr::FieldError);
}
