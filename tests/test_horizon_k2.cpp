// The spectral any-horizon path for k = 2 state vectors (src/horizon_k2.cpp:
// the real eigenvalues of T outside a circle, counted by the argument
// principle, plus a bounded remainder; the early steps time-stepped with a
// rounding bound) against exact time stepping (src/dynamics.cpp) in long
// double and 50 digits: heavy ball, NAG, AccSGD, QHM and a custom k = 2
// method; underdamped, overdamped, near critical damping, nearly unstable;
// label-noise floors, kurtosis 1 and 3, B = 1, 16, 1024; absolute and relative
// targets; L_t within the tolerance and first-crossing counts equal. The
// spectral side shares no code with time stepping beyond the first steps,
// which it takes from Dynamics (their values are compared here too), so
// each comparison can fail.
#include <doctest/doctest.h>

#include "cesr/dynamics.hpp"
#include "cesr/horizon.hpp"
#include "cesr/method.hpp"
#include "cesr/rate.hpp"
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

MethodSpec hb(double lr, double b) { return cesr::method_spec("hb", {{"lr", lr}, {"momentum", b}}); }

// The largest lr at which heavy ball with momentum b is stable in second
// moment, by bisection on the rate's secular equation.
double hb_lr_limit(const Spectrum& s, double b, const NoiseModel& n) {
  double lo = 0, hi = 2 * (1 + b) / s.lambda_max();
  for (int it = 0; it < 100; ++it) {
    const double lr = (lo + hi) / 2;
    const auto r = cesr::contraction_rate<long double>(s, cesr::make_method<long double>(hb(lr, b)), n);
    if (r.stable) lo = lr;
    else hi = lr;
  }
  return lo;
}

MethodSpec custom_k2() {
  // A k = 2 method in none of the registry's forms: a damped buffer that the
  // output reads only in part, the gradient at a mixed point, s0 = (1, 0.5).
  MethodSpec m = cesr::method_spec("custom");
  m.custom.k = 2;
  m.custom.P[0] = {0.97, 0.2, 0, 0};
  m.custom.P[1] = {-0.05, 0.6, 0, 0};
  m.custom.q = {0.3, 0.4, 0, 0};
  m.custom.r = {1, 0.1, 0, 0};
  m.custom.o = {0.9, 0.3, 0, 0};
  m.custom.s0 = {1, 0.5, 1, 1};
  return m;
}

std::vector<Case> cases() {
  std::vector<Case> out;
  const Spectrum lu = cesr::make_spectrum("loguniform:d=30,kappa=1e3");
  const Spectrum pl = cesr::make_spectrum("powerlaw:d=24,alpha=1.5", "powerlaw:beta=0.5");
  // Rate-tuned points (cesr tune --objective rate, B = 4 on lu): most
  // directions underdamped, the slowest near critical damping.
  out.push_back({"hb tuned B=4", lu, hb(0.11172256017704943, 0.9205517929261201), NoiseModel(4)});
  out.push_back({"nag tuned", lu,
                 cesr::method_spec("nag", {{"lr", 0.06780762226979968}, {"momentum", 0.9748901304420611}}),
                 NoiseModel(4)});
  out.push_back({"asgd tuned", lu,
                 cesr::method_spec("asgd", {{"lr", 0.47587072340886205}, {"kappa", 1628.4371818345683},
                                            {"xi", 23.788102941768}}),
                 NoiseModel(4)});
  out.push_back({"qhm tuned", lu,
                 cesr::method_spec("qhm", {{"lr", 4.857234413451851}, {"momentum", 0.9827925064788782},
                                           {"nu", 0.9020275695716036}}),
                 NoiseModel(4)});
  // Noise-limited heavy ball at B = 1 (small momentum: most directions overdamped).
  out.push_back({"hb B=1 overdamped", lu, hb(0.5 * hb_lr_limit(lu, 0.3, NoiseModel(1)), 0.3), NoiseModel(1)});
  out.push_back({"hb noise floor B=16", pl, hb(0.3, 0.8), NoiseModel(16, 3, 0.05)});
  out.push_back({"nag rademacher noise", pl, cesr::method_spec("nag", {{"lr", 0.2}, {"momentum", 0.9}}),
                 NoiseModel(2, 1, 0.01)});
  out.push_back({"hb B=1024 underdamped", lu, hb(1.0, 0.95), NoiseModel(1024)});
  {
    NoiseModel n(2);
    out.push_back({"hb nearly unstable", pl, hb(0.99 * hb_lr_limit(pl, 0.7, n), 0.7), n});
  }
  {
    // Critical damping of the bottom direction: beta = (1 - sqrt(lr lambda_min))^2.
    const Spectrum s = cesr::make_spectrum("loguniform:d=10,kappa=100");
    const double lr = 0.5, b = std::pow(1 - std::sqrt(lr * 0.01), 2);
    out.push_back({"hb critical damping", s, hb(lr, b), NoiseModel(16)});
  }
  out.push_back({"custom k=2", lu, custom_k2(), NoiseModel(2, 3, 0.02)});
  {
    // Repeated eigenvalues merge into one block that carries their
    // multiplicity in u (a spectral path that dropped it was 2x off here).
    Spectrum s{{1, 0.5, 0.5, 0.5, 0.01, 0.01, 0.001}, {1, 1, 2, 0, 1, 0.5, 1}};
    out.push_back({"hb repeated eigenvalues", s, hb(0.05, 0.9), NoiseModel(1, 3, 0.001)});
  }
  {
    // A weighted spectrum (fractional and whole weights, a repeated line).
    Spectrum s{{1, 0.5, 0.5, 0.01, 0.001}, {1, 3, 1, 2, 1}};
    s.weight = {1, 3, 0.5, 2.5, 0.7};
    out.push_back({"asgd weighted", s,
                   cesr::method_spec("asgd", {{"lr", 0.1}, {"kappa", 100.0}, {"xi", 5.0}}), NoiseModel(2, 3, 0.01)});
  }
  return out;
}


}  // namespace

TEST_CASE("horizon k = 2: L_t equals 50-digit time stepping to the tolerance, early and late") {
  horizon_checks::check_against_mp50(cases(), {0, 1, 2, 7, 100, 1000, 3000});
}

TEST_CASE("horizon k = 2: far steps equal long-double time stepping") {
  horizon_checks::check_far_steps(cases(), {10000, 50000, 200000});
}

TEST_CASE("horizon k = 2: the first crossing equals time stepping, absolute and relative targets") {
  horizon_checks::check_crossings(cases(), horizon_checks::momentum_targets, 3'000'000, true);
}

TEST_CASE("horizon k = 2: far crossings of tuned heavy ball equal long-double stepping (d = 100, kappa = 1e4)") {
  // The case the all-eigenvalue attempt could not separate: most block
  // eigenvalues on |z| = momentum. Rate-tuned at B = 1 (cesr tune --objective rate).
  const Spectrum s = cesr::make_spectrum("loguniform:d=100,kappa=1e4");
  const Case c{"hb tuned kappa=1e4", s, hb(0.004536661094368624, 0.973108956109759), NoiseModel(1)};
  for (const double eps : {1e-3, 1e-6}) {
    CAPTURE(eps);
    HorizonReport rep;
    const auto fast = cesr::horizon_steps<double>(c.spectrum, c.spec, c.noise, eps, true, 1e-10, rep);
    INFO(rep.describe());
    REQUIRE(fast);
    REQUIRE(fast->steps);
    const auto ref = cesr::steps_to_target<long double>(c.spectrum, cesr::make_path<long double>(c.spec), c.noise,
                                                        eps, true, 20'000'000);
    REQUIRE(ref.steps);
    if (!rep.near_target) CHECK(*fast->steps == *ref.steps);
    CHECK(std::abs(fast->loss - (double)ref.loss) <= 1e-9 * (double)ref.loss);
  }
}

TEST_CASE("horizon k = 2: a count certificate out of budget refuses, and time stepping answers") {
  const Spectrum s = cesr::make_spectrum("loguniform:d=30,kappa=1e3");
  const MethodSpec m = hb(0.11172256017704943, 0.9205517929261201);
  const NoiseModel n(4);
  const int saved = cesr::set_k2_arc_budget(3);  // fewer arcs than the coarsest cover of the circle
  HorizonReport rep;
  const auto fast = cesr::horizon_steps<double>(s, m, n, 1e-6, true, 1e-10, rep);
  CHECK(!fast);
  CHECK(rep.reason.find("arcs") != std::string::npos);
  bool fell_back = false;
  HorizonReport rep2;
  const auto any = cesr::steps_any_horizon(s, m, n, 1e-6, true, cesr::HorizonMode::Auto, 1e-10, 100'000'000,
                                           std::nullopt, 1e-10, rep2, fell_back);
  cesr::set_k2_arc_budget(saved);
  REQUIRE(any);
  CHECK(!rep2.exact);
  const auto ref = cesr::steps_to_target<long double>(s, cesr::make_path<long double>(m), n, 1e-6, true, 10'000'000);
  REQUIRE(ref.steps);
  REQUIRE(any->steps);
  CHECK(*any->steps == *ref.steps);
  // With the budget restored the spectral path answers the same count.
  HorizonReport rep3;
  const auto again = cesr::horizon_steps<double>(s, m, n, 1e-6, true, 1e-10, rep3);
  REQUIRE(again);
  CHECK(rep3.exact);
  REQUIRE(again->steps);
  CHECK(*again->steps == *ref.steps);
}

TEST_CASE("horizon k = 2: a noise floor is never crossed from above, a target just above it is") {
  const Spectrum sp = cesr::make_spectrum("loguniform:d=12,kappa=100");
  const Case c{"floor", sp, hb(0.2, 0.6), NoiseModel(2, 3, 0.1)};
  const double floor = (double)stepped<long double>(c, {40000})[0];
  HorizonReport rep;
  const auto below = cesr::horizon_steps<double>(c.spectrum, c.spec, c.noise, floor * (1 - 1e-6), false, 1e-10, rep);
  INFO(rep.describe());
  REQUIRE(below);
  CHECK(!below->steps);
  const auto above = cesr::horizon_steps<double>(c.spectrum, c.spec, c.noise, floor * (1 + 1e-6), false, 1e-10, rep);
  REQUIRE(above);
  REQUIRE(above->steps);
  const auto ref = cesr::steps_to_target<long double>(c.spectrum, cesr::make_path<long double>(c.spec), c.noise,
                                                      floor * (1 + 1e-6), false, 1'000'000);
  REQUIRE(ref.steps);
  CHECK(*above->steps == *ref.steps);
}

TEST_CASE("horizon k = 2: the generic block construction (k = 3, 4) gives the fast path's L_t and counts") {
  // The same problems through Faddeev-LeVerrier blocks in a wider precision
  // and the generic pole and root rules: each side is certified to 1e-10, so
  // they agree to 2e-10, and the first crossings are equal.
  const std::vector<std::uint64_t> ts{0, 1, 7, 100, 1000, 3000, 100000, 10000000};
  for (const Case& c : cases()) {
    CAPTURE(c.name);
    HorizonReport fast_rep, gen_rep;
    const auto fast = cesr::horizon_loss_at<double>(c.spectrum, c.spec, c.noise, ts, 1e-10, fast_rep);
    const bool saved = cesr::set_generic_k2_blocks(true);
    const auto gen = cesr::horizon_loss_at<double>(c.spectrum, c.spec, c.noise, ts, 1e-10, gen_rep);
    HorizonReport gen_steps_rep;
    const auto gen_steps = cesr::horizon_steps<double>(c.spectrum, c.spec, c.noise, 1e-6, true, 1e-10, gen_steps_rep);
    cesr::set_generic_k2_blocks(saved);
    INFO(fast_rep.describe());
    INFO(gen_rep.describe());
    REQUIRE(fast);
    REQUIRE(gen);
    for (std::size_t i = 0; i < ts.size(); ++i) {
      CAPTURE(ts[i]);
      CHECK(std::abs((*gen)[i] - (*fast)[i]) <= 2e-10 * (*fast)[i]);
    }
    HorizonReport fast_steps_rep;
    const auto fast_steps = cesr::horizon_steps<double>(c.spectrum, c.spec, c.noise, 1e-6, true, 1e-10, fast_steps_rep);
    REQUIRE(fast_steps);
    REQUIRE(gen_steps);
    CHECK(gen_steps->steps.has_value() == fast_steps->steps.has_value());  // below a noise floor: never
    if (gen_steps->steps && fast_steps->steps && !fast_steps_rep.near_target && !gen_steps_rep.near_target)
      CHECK(*gen_steps->steps == *fast_steps->steps);
  }
}
