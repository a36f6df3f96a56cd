// The spectral any-horizon path for k = 3 and 4 state vectors (src/horizon_k2.cpp,
// the generic block: Faddeev-LeVerrier on the m x m blocks in a wider
// precision, the circle |z| = r and its count certificate) against exact time
// stepping (src/dynamics.cpp) in long double and 50 digits: heavy ball, NAG
// and AccSGD with an EMA of the iterate (k = 3), a custom heavy ball with an
// extra EMA state (k = 3), a custom two-momentum method (k = 4), an EMA on a
// custom k = 3 method (k = 4); label noise, kurtosis 1 and 3, B = 1 and B > 1,
// a weighted spectrum, repeated eigenvalues. Then the generic block on the
// k = 2 cases against the k = 2 fast path, and the refusals. The spectral side
// shares no code with time stepping beyond the first steps, so each
// comparison can fail.
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

MethodSpec with_ema(MethodSpec m, double decay) {
  m.average = cesr::parse_average("ema:decay=" + std::to_string(decay));
  return m;
}
MethodSpec hb(double lr, double b) { return cesr::method_spec("hb", {{"lr", lr}, {"momentum", b}}); }

MethodSpec custom_hb_ema() {
  // Heavy ball in (x, v) form with a third state that averages x: the output
  // reads the average, the gradient is taken at x.
  MethodSpec m = cesr::method_spec("custom");
  m.custom.k = 3;
  const double lr = 0.2, b = 0.7, g = 0.95;
  // x' = x + b v - lr grad, v' = b v - lr grad, a' = g a + (1 - g) x'.
  m.custom.P[0] = {1, b, 0, 0};
  m.custom.P[1] = {0, b, 0, 0};
  m.custom.P[2] = {1 - g, (1 - g) * b, g, 0};
  m.custom.q = {lr, lr, (1 - g) * lr, 0};
  m.custom.r = {1, 0, 0, 0};
  m.custom.o = {0, 0, 1, 0};
  m.custom.s0 = {1, 0, 1, 1};
  return m;
}

MethodSpec custom_two_momentum() {
  // Two momentum buffers of different decays feeding one iterate, the
  // gradient at a look-ahead point, plus a damped memory of the iterate that
  // the output reads in part: k = 4, every state coupled.
  MethodSpec m = cesr::method_spec("custom");
  m.custom.k = 4;
  m.custom.P[0] = {1, 0.5, 0.3, 0};
  m.custom.P[1] = {0, 0.8, 0, 0};
  m.custom.P[2] = {0, 0, 0.5, 0};
  m.custom.P[3] = {0.1, 0, 0, 0.9};
  m.custom.q = {0.1, 0.1, 0.1, 0.01};
  m.custom.r = {1, 0.2, 0, 0};
  m.custom.o = {0.8, 0, 0, 0.2};
  m.custom.s0 = {1, 0, 0, 1};
  return m;
}

MethodSpec custom_k3() {
  // A k = 3 method in none of the registry's forms (three coupled states).
  MethodSpec m = cesr::method_spec("custom");
  m.custom.k = 3;
  m.custom.P[0] = {0.95, 0.2, 0.05, 0};
  m.custom.P[1] = {-0.05, 0.6, 0.1, 0};
  m.custom.P[2] = {0.1, 0, 0.7, 0};
  m.custom.q = {0.3, 0.2, -0.1, 0};
  m.custom.r = {1, 0.1, 0.2, 0};
  m.custom.o = {0.9, 0.3, 0.1, 0};
  m.custom.s0 = {1, 0.5, 0.2, 1};
  return m;
}

std::vector<Case> cases() {
  std::vector<Case> out;
  const Spectrum lu = cesr::make_spectrum("loguniform:d=12,kappa=1e3");
  const Spectrum pl = cesr::make_spectrum("powerlaw:d=10,alpha=1.5", "powerlaw:beta=0.5");
  out.push_back({"hb + ema B=4", lu, with_ema(hb(0.3, 0.8), 0.99), NoiseModel(4)});
  out.push_back({"hb + ema B=1 noise", pl, with_ema(hb(0.1, 0.5), 0.9), NoiseModel(1, 3, 0.01)});
  out.push_back({"nag + ema rademacher", pl,
                 with_ema(cesr::method_spec("nag", {{"lr", 0.2}, {"momentum", 0.9}}), 0.95), NoiseModel(2, 1, 0.01)});
  out.push_back({"asgd + ema", lu,
                 with_ema(cesr::method_spec("asgd", {{"lr", 0.3}, {"kappa", 300.0}, {"xi", 10.0}}), 0.99),
                 NoiseModel(4)});
  out.push_back({"custom hb with ema state", pl, custom_hb_ema(), NoiseModel(2, 3, 0.02)});
  out.push_back({"custom k=3", lu, custom_k3(), NoiseModel(8, 3, 0.001)});
  out.push_back({"custom two-momentum k=4", pl, custom_two_momentum(), NoiseModel(4, 3, 0.01)});
  out.push_back({"ema on custom k=3 (k=4)", lu, with_ema(custom_k3(), 0.8), NoiseModel(1)});
  {
    Spectrum s{{1, 0.5, 0.5, 0.5, 0.01, 0.01, 0.001}, {1, 1, 2, 0, 1, 0.5, 1}};
    out.push_back({"hb + ema repeated eigenvalues", s, with_ema(hb(0.05, 0.9), 0.9), NoiseModel(1, 3, 0.001)});
  }
  {
    Spectrum s{{1, 0.5, 0.5, 0.01, 0.001}, {1, 3, 1, 2, 1}};
    s.weight = {1, 3, 0.5, 2.5, 0.7};
    out.push_back({"asgd + ema weighted", s,
                   with_ema(cesr::method_spec("asgd", {{"lr", 0.1}, {"kappa", 100.0}, {"xi", 5.0}}), 0.95),
                   NoiseModel(2, 3, 0.01)});
  }
  return out;
}

}  // namespace

TEST_CASE("horizon k = 3, 4: the cases take the spectral path") {
  for (const Case& c : cases()) {
    CAPTURE(c.name);
    CHECK(c.spec.states() >= 3);
    HorizonReport rep;
    const auto fast = cesr::horizon_loss_at<double>(c.spectrum, c.spec, c.noise, {0, 10, 100000}, 1e-10, rep);
    INFO(rep.describe());
    CHECK(fast);
    CHECK(rep.exact);
  }
}

TEST_CASE("horizon k = 3, 4: L_t equals 50-digit time stepping to the tolerance, early and late") {
  horizon_checks::check_against_mp50(cases(), {0, 1, 2, 7, 100, 1000, 3000});
}

TEST_CASE("horizon k = 3, 4: far steps equal long-double time stepping") {
  horizon_checks::check_far_steps(cases(), {10000, 50000, 200000});
}

TEST_CASE("horizon k = 3, 4: the first crossing equals time stepping, absolute and relative targets") {
  horizon_checks::check_crossings(cases(), horizon_checks::momentum_targets, 3'000'000, true);
}

TEST_CASE("horizon k = 3, 4: an average slower than the method is refused, and time stepping answers") {
  // The EMA's own block poles (0.98 and below) are eigenvalues of T that the
  // noise coupling g does not see, above the method's top mode (0.926).
  const Spectrum lu = cesr::make_spectrum("loguniform:d=12,kappa=1e3");
  const MethodSpec m = with_ema(custom_k3(), 0.98);
  const NoiseModel n(1);
  HorizonReport rep;
  const auto fast = cesr::horizon_steps<double>(lu, m, n, 1e-6, true, 1e-10, rep);
  CHECK(!fast);
  CHECK(rep.reason.find("does not see") != std::string::npos);
  bool fell_back = false;
  HorizonReport rep2;
  const auto any = cesr::steps_any_horizon(lu, m, n, 1e-6, true, cesr::HorizonMode::Auto, 1e-10, 100'000'000,
                                           std::nullopt, 1e-10, rep2, fell_back);
  REQUIRE(any);
  CHECK(!rep2.exact);
  const auto ref = cesr::steps_to_target<long double>(lu, cesr::make_path<long double>(m), n, 1e-6, true, 10'000'000);
  REQUIRE(ref.steps);
  REQUIRE(any->steps);
  CHECK(*any->steps == *ref.steps);
}

TEST_CASE("horizon k = 3, 4: a count certificate out of budget refuses, and time stepping answers") {
  const Case c = cases()[0];
  const int saved = cesr::set_k2_arc_budget(3);
  HorizonReport rep;
  const auto fast = cesr::horizon_steps<double>(c.spectrum, c.spec, c.noise, 1e-6, true, 1e-10, rep);
  CHECK(!fast);
  CHECK(rep.reason.find("arcs") != std::string::npos);
  bool fell_back = false;
  HorizonReport rep2;
  const auto any = cesr::steps_any_horizon(c.spectrum, c.spec, c.noise, 1e-6, true, cesr::HorizonMode::Auto, 1e-10,
                                           100'000'000, std::nullopt, 1e-10, rep2, fell_back);
  cesr::set_k2_arc_budget(saved);
  REQUIRE(any);
  CHECK(!rep2.exact);
  const auto ref = cesr::steps_to_target<long double>(c.spectrum, cesr::make_path<long double>(c.spec), c.noise,
                                                      1e-6, true, 10'000'000);
  REQUIRE(ref.steps);
  REQUIRE(any->steps);
  CHECK(*any->steps == *ref.steps);
  HorizonReport rep3;
  const auto again = cesr::horizon_steps<double>(c.spectrum, c.spec, c.noise, 1e-6, true, 1e-10, rep3);
  REQUIRE(again);
  REQUIRE(again->steps);
  CHECK(*again->steps == *ref.steps);
}
