// The warm-started rate (contraction_rate_near, contraction_rate_gradient's
// gap_hint): from any guess of the gap, the gap of the cold solve to the root
// finder's accuracy and the same stability verdict, on many random methods
// (SGD, heavy ball, Nesterov, AccSGD; near the stability edge and far inside;
// additive noise, a weighted spectrum); and a near guess really skips most of
// the cold solve's secular evaluations (a far one, or one beyond a pole of
// the secular function, falls back to the cold solve).
#include <doctest/doctest.h>

#include "random_methods.hpp"

#include "cesr/rate.hpp"

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

using namespace cesr;

namespace {

using Case = cesr_test::RateCase;

std::vector<Case> random_cases() {
  return cesr_test::random_rate_cases({make_spectrum("powerlaw:d=3000,alpha=1.5"), make_spectrum("loguniform:d=500,kappa=1e6"),
                                       make_spectrum("powerlaw:d=70000,alpha=0.7"), cesr_test::weighted_loguniform(800, 1e4)},
                                      {1414, 10, 2, 4, 4, 3});
}

}  // namespace

TEST_CASE("contraction_rate_near: the cold gap from any guess, and fewer evaluations from a near one") {
  int cases = 0, unstable = 0, near_guesses = 0, near_cheaper = 0, near_warm_evals = 0, near_cold_evals = 0;
  for (const Case& c : random_cases()) {
    const Rate<double> cold = contraction_rate<double>(c.spectrum, c.method, c.noise);
    if (!std::isfinite(cold.gap)) continue;
    ++cases;
    unstable += !cold.stable;
    CAPTURE(describe(c.method));
    CAPTURE(c.noise.batch);
    CAPTURE(cold.gap);
    const double g = cold.gap;
    // The reference: the same problem in long double (its own loop, 64-bit
    // mantissa). The warm gap must be as accurate as the cold one: within
    // four times the cold error (or 1e-12 relative).
    const double ref = static_cast<double>(contraction_rate<long double>(c.spectrum, c.method, c.noise).gap);
    const double tol = std::max(1e-12 * std::abs(ref), 4 * std::abs(g - ref));
    CAPTURE(ref);
    for (const double guess : {g, g * (1 + 1e-12), g * (1 + 1e-6), g * (1 - 1e-3), g * 1.1, g * 0.5, g * 3, -g,
                               g + 1e-3, 0.0, -0.5, 1e-300, 0.9}) {
      CAPTURE(guess);
      const Rate<double> warm = contraction_rate_near(c.spectrum, c.method, c.noise, guess);
      CHECK(warm.stable == cold.stable);
      CHECK(std::abs(warm.gap - ref) <= tol);
      // A guess within 1e-12 (a lower precision's gap, or a search's next
      // point nearly on top): on the root's side of every pole.
      // (The additive model has no root of g = 1: rho = rho(D), always cold.)
      if (guess != g * (1 + 1e-12) || c.noise.additive()) continue;
      ++near_guesses;
      near_warm_evals += warm.evaluations;
      near_cold_evals += cold.evaluations;
      near_cheaper += warm.evaluations < cold.evaluations;
    }
  }
  MESSAGE(cases, " methods (", unstable, " unstable); a guess within 1e-12: ", near_warm_evals, " secular evaluations "
          "against ", near_cold_evals, " cold, fewer in ", near_cheaper, " of ", near_guesses);
  CHECK(cases > 120);
  CHECK(unstable > 5);
  CHECK(near_cheaper * 10 > near_guesses * 9);
  CHECK(near_warm_evals * 2 < near_cold_evals);
}

TEST_CASE("contraction_rate_gradient with a gap hint: the cold gap and gradient") {
  const Spectrum s = make_spectrum("powerlaw:d=20000,alpha=1.5");
  const NoiseModel n{16, 3.0, 0.0};
  for (const double beta : {0.9, 0.999, 0.99995}) {
    const double lr = 0.5 * (1 - beta);
    const MethodSpec m = method_spec("hb", {{"lr", lr}, {"momentum", beta}});
    const MethodSpec plus = method_spec("hb", {{"lr", lr * (1 + 1e-6)}, {"momentum", beta}});
    const MethodSpec minus = method_spec("hb", {{"lr", lr * (1 - 1e-6)}, {"momentum", beta}});
    const GapGradient cold = contraction_rate_gradient(s, m, {plus}, {minus}, 1e-6 * lr, n);
    REQUIRE(cold.rate.stable);
    REQUIRE(cold.gradient.size() == 1);
    for (const double f : {1.0, 1.001, 0.9}) {
      const GapGradient warm = contraction_rate_gradient(s, m, {plus}, {minus}, 1e-6 * lr, n, f * cold.rate.gap);
      CAPTURE(beta);
      CAPTURE(f);
      CHECK(warm.rate.gap == doctest::Approx(cold.rate.gap).epsilon(1e-12));
      REQUIRE(warm.gradient.size() == 1);
      // The gradient at two roots 1e-12 apart: equal to ~1e-9 (the
      // sensitivity pass is smooth in x there).
      CHECK(warm.gradient[0] == doctest::Approx(cold.gradient[0]).epsilon(1e-8));
      // The root of tuned heavy ball lies within 1e-6 of the pole: a guess
      // 1e-3 off is beyond it or too far below, and the solve is cold.
      if (f == 1.0) CHECK(warm.rate.evaluations < cold.rate.evaluations);
    }
  }
}

// Two root-finder stops at d = 1e6 that time stepping would not notice but
// the tuner's cost does (docs/rate.md): a cold solve whose root lies within
// ulps of its pole stops its log-distance phase once x is resolved (36
// secular evaluations before, 8 after), and a warm one stops where the
// Newton step rounds to the iterate (it bisected back instead: 5-8
// evaluations from these guesses before, 4-6 after; ~20 more at some points
// of the tuner). Each gap is held against long double's cold solve.
TEST_CASE("root finder stops at d = 1e6: a root within ulps of its pole, a Newton step below an ulp") {
  const Spectrum s = make_spectrum("powerlaw:d=1000000,alpha=1.5");
  {
    const MethodSpec m =
        method_spec("asgd", {{"lr", 0.1213924462005835}, {"kappa", 148036279.16224355}, {"xi", 3.24076850862333}});
    const NoiseModel noise{16, 3.0, 0.0};
    const Rate<double> r = contraction_rate<double>(s, m, noise);
    const Rate<long double> ref = contraction_rate<long double>(s, m, noise);
    CHECK(r.stable);
    // Double knows the pole only to ~eps times the direction's small
    // quantities, 2.4e-12 of this gap (the root lies 1e-14 of it above the
    // pole): as close as double can be, within the automatic rate's 1e-10.
    CHECK(std::abs(r.gap - static_cast<double>(ref.gap)) <= 1e-10 * static_cast<double>(ref.gap));
    CHECK(r.evaluations <= 12);
  }
  {
    const MethodSpec m =
        method_spec("asgd", {{"lr", 1.5938234929991928}, {"kappa", 453223340.6567049}, {"xi", 21289.042736973988}});
    const NoiseModel noise{4096, 3.0, 0.0};
    const Rate<long double> ref = contraction_rate<long double>(s, m, noise);
    const double exact = static_cast<double>(ref.gap);
    for (const double rel : {1e-3, 1e-6, -1e-6, -1e-3, -1e-2, -1.6e-2, -3e-2, 1e-2, 3e-2}) {
      const Rate<double> r = contraction_rate_near(s, m, noise, exact * (1 + rel));
      CHECK(std::abs(r.gap - exact) <= 1e-12 * exact);
      CHECK(r.evaluations <= 6);  // 5-8 before the fix at these guesses
    }
  }
}
