// Weighted spectra (a line of weight w stands for w directions with the same
// eigenvalue and initial moment) against the expanded spectrum, where every
// direction is its own line: the loss curve (fast k = 1, k = 2 kernels and the
// generic one), the contraction rate (closed form and generic path), the
// steps to a target and the tuned hyperparameters must agree to rounding.
// The expanded spectrum runs the long-standing unweighted code, so the two
// routes share no weight arithmetic.
#include <doctest/doctest.h>

#include "method_specs.hpp"
#include "cesr/dynamics.hpp"
#include "cesr/rate.hpp"
#include "cesr/simulate.hpp"
#include "cesr/stability.hpp"
#include "cesr/tune.hpp"

#include <cmath>
#include <vector>

namespace {

using cesr::Kernel;
using cesr::Method;
using cesr::MethodSpec;
using cesr::NoiseModel;
using cesr::Spectrum;

Spectrum weighted_problem() {
  Spectrum s;
  s.lambda = {1.0, 0.3, 0.05, 0.01};
  s.weight = {3, 1, 7, 2};
  s.init = {1.0, 0.5, 2.0, 0.25};
  return s;
}

using cesr_test::spec_of;

// A k = 3 method (heavy ball with an extra EMA state that is never read):
// exercises the generic kernel and the generic rate path.
Method<double> three_state(double eta, double beta) {
  Method<double> m;
  m.k = 3;
  m.P = {};
  m.P[0][0] = 1 + beta;
  m.P[0][1] = -beta;
  m.P[1][0] = 1;
  m.P[2][0] = 0.5;
  m.P[2][2] = 0.5;
  m.q = {eta, 0, 0};
  m.r = {1, 0, 0};
  m.o = {1, 0, 0};
  m.s0 = {1, 1, 1};
  return m;
}

void check_curves(const Spectrum& w, const Spectrum& e, const cesr::MethodPath<double>& path, const NoiseModel& noise,
                  Kernel kernel) {
  cesr::Dynamics<double> a(w, path, noise, kernel), b(e, path, noise, kernel);
  CHECK(a.loss() == doctest::Approx(b.loss()).epsilon(1e-15));
  for (int t = 0; t < 300; ++t) {
    a.step();
    b.step();
    CHECK(a.loss() == doctest::Approx(b.loss()).epsilon(1e-13));
  }
  CHECK(a.loss() < 0.5 * b.loss() + b.loss());  // a live comparison: the loss has moved
}

}  // namespace

TEST_CASE("weighted spectrum: loss curves equal to the expanded spectrum's (every kernel)") {
  const Spectrum w = weighted_problem();
  const Spectrum e = cesr::expand_weights(w, "test");
  REQUIRE(e.dim() == 13);
  CHECK(w.initial_loss() == doctest::Approx(e.initial_loss()).epsilon(1e-15));
  for (const NoiseModel& noise : {NoiseModel(1, 3, 0), NoiseModel(4, 1, 0.02), NoiseModel(2, 9.0 / 5, 0.1)}) {
    for (const Kernel kernel : {Kernel::Auto, Kernel::Generic}) {
      check_curves(w, e, cesr::make_path<double>(spec_of("sgd", 0.3)), noise, kernel);
      check_curves(w, e, cesr::make_path<double>(spec_of("hb", 0.2, 0.8)), noise, kernel);
      check_curves(w, e, cesr::make_path<double>(spec_of("nag", 0.2, 0.7)), noise, kernel);
      check_curves(w, e, cesr::MethodPath<double>(three_state(0.2, 0.6)), noise, kernel);
    }
  }
  // The weights matter: the same lines unweighted give another curve.
  Spectrum plain = w;
  plain.weight.clear();
  const auto curve_w = cesr::loss_curve<double>(w, cesr::make_path<double>(spec_of("sgd", 0.3)), NoiseModel(1), 50);
  const auto curve_p = cesr::loss_curve<double>(plain, cesr::make_path<double>(spec_of("sgd", 0.3)), NoiseModel(1), 50);
  CHECK(std::abs(curve_w.loss.back() / curve_p.loss.back() - 1) > 0.1);
}

TEST_CASE("weighted spectrum: rate, stability, steps and tune equal to the expanded spectrum's") {
  const Spectrum w = weighted_problem();
  const Spectrum e = cesr::expand_weights(w, "test");
  for (const NoiseModel& noise : {NoiseModel(1, 3, 0), NoiseModel(8, 1, 0)}) {
    for (const MethodSpec& m : {spec_of("sgd", 0.1), spec_of("hb", 0.05, 0.8), spec_of("nag", 0.03, 0.9)}) {
      const auto rw = cesr::contraction_rate<double>(w, m, noise);
      const auto re = cesr::contraction_rate<double>(e, m, noise);
      CHECK(rw.gap == doctest::Approx(re.gap).epsilon(1e-13));
      const auto gw = cesr::contraction_rate_generic<double>(w, cesr::make_method<double>(m), noise);
      CHECK(gw.gap == doctest::Approx(re.gap).epsilon(1e-11));
      const auto sw = cesr::steps_to_target<double>(w, cesr::make_path<double>(m), noise, 1e-4, true, 100000);
      const auto se = cesr::steps_to_target<double>(e, cesr::make_path<double>(m), noise, 1e-4, true, 100000);
      REQUIRE(se.steps);
      CHECK(sw.steps == se.steps);
      CHECK(rw.stable);
    }
    const auto k3w = cesr::contraction_rate<double>(w, three_state(0.2, 0.6), noise);
    const auto k3e = cesr::contraction_rate<double>(e, three_state(0.2, 0.6), noise);
    CHECK(k3w.gap == doctest::Approx(k3e.gap).epsilon(1e-11));
    // The coupling really is weighted: at B = 1 the rate differs from the unweighted lines'.
    Spectrum plain = w;
    plain.weight.clear();
    if (noise.batch == 1)
      CHECK(std::abs(cesr::contraction_rate<double>(plain, spec_of("sgd", 0.3), noise).gap /
                         cesr::contraction_rate<double>(w, spec_of("sgd", 0.3), noise).gap -
                     1) > 0.005);
    const auto lw = cesr::stability_limits<double>(w, spec_of("hb", 0.2, 0.8), noise);
    const auto le = cesr::stability_limits<double>(e, spec_of("hb", 0.2, 0.8), noise);
    CHECK(lw.lr_max == doctest::Approx(le.lr_max).epsilon(1e-9));
  }
  cesr::TuneOptions opt;
  opt.confirm_gap = false;
  for (const cesr::Objective obj : {cesr::Objective::Rate, cesr::Objective::Steps}) {
    opt.objective = obj;
    opt.target.eps = 1e-3;
    const auto tw = cesr::tune(w, "hb", NoiseModel(4), opt);
    const auto te = cesr::tune(e, "hb", NoiseModel(4), opt);
    CHECK(tw.method.value("lr") == doctest::Approx(te.method.value("lr")).epsilon(1e-6));
    CHECK(tw.method.value("momentum") == doctest::Approx(te.method.value("momentum")).epsilon(1e-6));
    CHECK(tw.steps == te.steps);
  }
}

TEST_CASE("weighted spectrum: a fractional weight is a measure, run exactly; the simulation refuses it") {
  // Weight 2.5 lies between 2 and 3 directions: the loss and the rate at B = 1
  // (where the coupling matters) lie strictly between theirs.
  Spectrum s;
  s.lambda = {1.0, 0.1};
  s.init = {1.0, 1.0};
  const auto gap_with = [&](double w) {
    Spectrum t = s;
    t.weight = {1.0, w};
    return cesr::contraction_rate<double>(t, spec_of("sgd", 0.5), NoiseModel(1)).gap;
  };
  const double g2 = gap_with(2), g25 = gap_with(2.5), g3 = gap_with(3);
  CHECK(g2 > g25);
  CHECK(g25 > g3);
  Spectrum f = s;
  f.weight = {1.0, 2.5};
  CHECK(f.fractional());
  cesr::SimulationConfig cfg;
  cfg.steps = 5;
  cfg.runs = 10;
  CHECK_THROWS_WITH_AS(cesr::monte_carlo_loss(f, cesr::make_path<double>(spec_of("sgd", 0.5)), NoiseModel(1), cfg),
                       doctest::Contains("needs whole directions, but spectrum line 2 has weight 2.5"),
                       std::invalid_argument);
}

TEST_CASE("weighted spectrum: the simulation of whole weights runs the expanded directions") {
  Spectrum w;
  w.lambda = {1.0, 0.2};
  w.weight = {2, 3};
  w.init = {1.0, 2.0};
  cesr::SimulationConfig cfg;
  cfg.steps = 20;
  cfg.every = 5;
  cfg.runs = 4000;
  cfg.seed = 7;
  const auto r = cesr::simulate(w, spec_of("sgd", 0.4), NoiseModel(2), cfg);
  REQUIRE(r.step.size() == 5);
  for (std::size_t i = 1; i < r.step.size(); ++i) {  // t = 0 is deterministic
    REQUIRE(r.z(i));
    CHECK(std::abs(*r.z(i)) < 4.5);
  }
}
