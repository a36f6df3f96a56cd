// The noisy quadratic model's additive noise and the power preconditioner:
// the engine against a closed form (d = 1 SGD), the dense full-covariance
// oracle of the preconditioned / additive update (tests/oracle.hpp, route 4,
// derived from the update without the change of variables the engine uses),
// the deterministic spectral radius, and a Monte Carlo of the real iteration
// with Gaussian gradient noise written here.
#include <doctest/doctest.h>

#include "oracle.hpp"

#include "method_specs.hpp"
#include "cesr/dynamics.hpp"
#include "cesr/error.hpp"
#include "cesr/rate.hpp"
#include "cesr/simulate.hpp"

#include <cmath>
#include <complex>
#include <random>
#include <vector>

namespace {

using cesr::MethodSpec;
using cesr::NoiseModel;
using cesr::Spectrum;

using cesr_test::spec_of;

NoiseModel additive(std::uint64_t batch, double c = 1) {
  NoiseModel n(batch);
  n.model = cesr::NoiseKind::Additive;
  n.noise_scale = c;
  return n;
}

std::vector<long double> ld(const std::vector<double>& v) { return {v.begin(), v.end()}; }

}  // namespace

TEST_CASE("additive noise, d = 1 SGD: the closed form, its floor and the steps to a target above it") {
  // e' = (1 - eta lambda) e - eta zeta, Var zeta = c lambda / B:
  //   E e_t^2 = a^t e0^2 + f (1 - a^t) / (1 - a),  a = (1 - eta lambda)^2,  f = eta^2 c lambda / B.
  const double lambda = 0.7, eta = 0.5, c = 2, e0 = 3;
  const std::uint64_t B = 4;
  Spectrum s;
  s.lambda = {lambda};
  s.init = {e0};
  const auto path = cesr::make_path<double>(spec_of("sgd", eta));
  const auto curve = cesr::loss_curve<double>(s, path, additive(B, c), 200);
  const long double a = (1 - (long double)eta * lambda) * (1 - (long double)eta * lambda);
  const long double f = (long double)eta * eta * c * lambda / B;
  for (std::size_t t = 0; t < curve.loss.size(); ++t) {
    const long double at = std::pow(a, (long double)t);
    const long double exact = 0.5L * lambda * (at * e0 + f * (1 - at) / (1 - a));
    CHECK(curve.loss[t] == doctest::Approx(double(exact)).epsilon(1e-13));
  }
  const long double floor = 0.5L * lambda * f / (1 - a);  // = eta c lambda / (2 B (2 - eta lambda))
  CHECK(cesr::loss_floor<double>(s, path.initial, additive(B, c)) == doctest::Approx(double(floor)).epsilon(1e-14));
  CHECK(cesr::loss_floor<double>(s, path.initial, NoiseModel(B)) == 0);
  // Steps to 1.5 x the floor: the first t with the closed form below it.
  const double goal = 1.5 * double(floor);
  std::uint64_t first = 0;
  while (0.5L * lambda * (std::pow(a, (long double)first) * e0 + f * (1 - std::pow(a, (long double)first)) / (1 - a)) > goal)
    ++first;
  const auto st = cesr::steps_to_target<double>(s, path, additive(B, c), goal, false, 100000);
  REQUIRE(st.steps);
  CHECK(*st.steps == first);
  REQUIRE(st.floor);
  CHECK(*st.floor == doctest::Approx(double(floor)).epsilon(1e-14));
  // At or below the floor: never reached, nothing run.
  const auto below = cesr::steps_to_target<double>(s, path, additive(B, c), 0.999 * double(floor), false, 100000);
  CHECK_FALSE(below.steps);
  CHECK(below.steps_run == 0);
  // Unstable (eta lambda > 2): no floor.
  CHECK(std::isinf(cesr::loss_floor<double>(s, cesr::make_method<double>(spec_of("sgd", 3.0)), additive(B, c))));
}

TEST_CASE("additive noise: heavy ball, Nesterov and a noise-covariance file against the dense oracle") {
  Spectrum s;
  s.lambda = {1.0, 0.4, 0.02};
  s.init = {1.0, 2.0, 0.5};
  const std::vector<double> cov_file{0.3, 2.0, 0.7};
  for (const MethodSpec& m : {spec_of("hb", 0.3, 0.8), spec_of("nag", 0.2, 0.9), spec_of("sgd", 0.9)}) {
    const auto method = cesr::make_method<long double>(m);
    oracle::Vec s0;
    const oracle::Coeffs c = cesr_test::oracle_coeffs(method, &s0);
    const std::vector<long double> ones(3, 1.0L);
    for (int own = 0; own < 2; ++own) {
      Spectrum sp = s;
      std::vector<long double> C;
      if (own) {
        sp.noise_covariance = cov_file;
        C = ld(cov_file);
      } else {
        for (double l : s.lambda) C.push_back(1.5L * l);
      }
      const auto engine = cesr::loss_curve<long double>(sp, cesr::make_path<long double>(m), additive(3, 1.5), 150);
      const auto dense = oracle::full_loss_general(ld(s.lambda), ld(s.init), s0, 3, 0, 3, c, 150, ones, &C);
      for (std::size_t t = 0; t <= 150; ++t) CHECK(double(engine.loss[t]) == doctest::Approx(double(dense[t])).epsilon(1e-13));
      // The floor is where the curve settles.
      const auto tail = cesr::loss_curve<long double>(sp, cesr::make_path<long double>(m), additive(3, 1.5), 200000, 200000);
      CHECK(double(tail.loss.back()) ==
            doctest::Approx(double(cesr::loss_floor<long double>(sp, method, additive(3, 1.5)))).epsilon(1e-12));
    }
  }
}

TEST_CASE("additive noise: the rate is the noiseless max_i rho(A_i)^2, whatever the batch size") {
  Spectrum s;
  s.lambda = {1.0, 0.3, 0.01};
  s.init = {1, 1, 1};
  for (const MethodSpec& m : {spec_of("hb", 0.5, 0.7), spec_of("sgd", 1.2), spec_of("nag", 0.3, 0.85)}) {
    const auto method = cesr::make_method<long double>(m);
    long double expected = 0;
    for (double l : s.lambda) {
      Eigen::Matrix<long double, -1, -1> A(method.k, method.k);
      for (int a = 0; a < method.k; ++a)
        for (int b = 0; b < method.k; ++b) A(a, b) = method.P[a][b] - l * method.q[a] * method.r[b];
      Eigen::EigenSolver<Eigen::Matrix<long double, -1, -1>> es(A, false);
      for (int a = 0; a < method.k; ++a) expected = std::max(expected, std::norm(es.eigenvalues()(a)));
    }
    for (std::uint64_t B : {1, 16, 1024}) {
      const auto r = cesr::contraction_rate<double>(s, m, additive(B));
      CHECK(r.rho == doctest::Approx(double(expected)).epsilon(1e-12));
      const auto g = cesr::contraction_rate_generic<double>(s, cesr::make_method<double>(m), additive(B));
      CHECK(g.rho == doctest::Approx(double(expected)).epsilon(1e-10));
    }
    // The multiplicative model at B = 1 is slower: the noise coupling counts there.
    CHECK(cesr::contraction_rate<double>(s, m, NoiseModel(1)).rho > double(expected) + 1e-6);
  }
}

TEST_CASE("additive noise: a Monte Carlo of the real iteration with Gaussian gradient noise") {
  // Written here: heavy ball on e with gradient H e + zeta, zeta ~ N(0, c H / B).
  const std::vector<double> lambda{1.0, 0.25};
  const double eta = 0.4, beta = 0.6, c = 2;
  const std::uint64_t B = 2, T = 30, R = 20000;
  Spectrum s;
  s.lambda = lambda;
  s.init = {1.0, 4.0};
  std::mt19937_64 eng(12345);
  std::normal_distribution<double> normal;
  std::vector<double> sum(T + 1, 0), sum2(T + 1, 0);
  for (std::uint64_t run = 0; run < R; ++run) {
    std::vector<double> e{1.0, 2.0}, prev = e;
    for (std::uint64_t t = 0;; ++t) {
      const double L = 0.5 * (lambda[0] * e[0] * e[0] + lambda[1] * e[1] * e[1]);
      sum[t] += L;
      sum2[t] += L * L;
      if (t == T) break;
      for (int i = 0; i < 2; ++i) {
        const double g = lambda[i] * e[i] + std::sqrt(c * lambda[i] / double(B)) * normal(eng);
        const double next = e[i] - eta * g + beta * (e[i] - prev[i]);
        prev[i] = e[i];
        e[i] = next;
      }
    }
  }
  const auto exact = cesr::loss_curve<double>(s, cesr::make_path<double>(spec_of("hb", eta, beta)), additive(B, c), T);
  for (std::uint64_t t = 5; t <= T; t += 5) {
    const double mean = sum[t] / R, var = sum2[t] / R - mean * mean;
    const double z = (mean - exact.loss[t]) / std::sqrt(var / R);
    CHECK(std::abs(z) < 4.5);
  }
  // cesr simulate's additive iteration against the same recursion.
  cesr::SimulationConfig cfg;
  cfg.steps = T;
  cfg.every = 10;
  cfg.runs = 8000;
  cfg.seed = 3;
  const auto r = cesr::simulate(s, spec_of("hb", eta, beta), additive(B, c), cfg);
  REQUIRE(r.step.size() == 4);
  for (std::size_t i = 1; i < r.step.size(); ++i) {
    REQUIRE(r.z(i));
    CHECK(std::abs(*r.z(i)) < 4.5);
  }
}

TEST_CASE("additive noise: the data-sampling options do not apply") {
  NoiseModel n = additive(4);
  n.kurtosis = 1;
  CHECK_THROWS_WITH_AS(n.validate(), doctest::Contains("kurtosis does not apply to the additive"), cesr::FieldError);
  n.kurtosis = 3;
  n.label_noise = 0.1;
  CHECK_THROWS_WITH_AS(n.validate(), doctest::Contains("noise (label noise) does not apply"), cesr::FieldError);
  n.label_noise = 0;
  n.noise_scale = -1;
  CHECK_THROWS_WITH_AS(n.validate(), doctest::Contains("noise_scale must be a finite number >= 0"), cesr::FieldError);
}

TEST_CASE("preconditioning power:p=gamma equals the preconditioned update (dense oracle), noise included") {
  Spectrum s;
  s.lambda = {1.0, 0.1, 0.01};
  s.init = {1.0, 0.5, 3.0};
  const double gamma = 0.5;
  std::vector<long double> p;
  for (double l : s.lambda) p.push_back(std::pow((long double)l / 1.0L, -(long double)gamma));
  const Spectrum pre = cesr::precondition(s, gamma);
  CHECK(pre.lambda[0] == 1.0);  // lambda_max keeps its step size
  CHECK(pre.initial_loss() == doctest::Approx(s.initial_loss()).epsilon(1e-15));
  for (const MethodSpec& m : {spec_of("sgd", 0.6), spec_of("hb", 0.3, 0.7)}) {
    const auto method = cesr::make_method<long double>(m);
    oracle::Vec s0;
    const oracle::Coeffs c = cesr_test::oracle_coeffs(method, &s0);
    // Multiplicative model: Gaussian and Rademacher covariates, label noise.
    for (const double K : {3.0, 1.0}) {
      const auto engine =
          cesr::loss_curve<long double>(pre, cesr::make_path<long double>(m), NoiseModel(2, K, 0.05), 100);
      const auto dense = oracle::full_loss_general(ld(s.lambda), ld(s.init), s0, K, 0.05, 2, c, 100, p);
      for (std::size_t t = 0; t <= 100; ++t) CHECK(double(engine.loss[t]) == doctest::Approx(double(dense[t])).epsilon(1e-12));
    }
    // Additive model, C = c H and a file, preconditioned.
    Spectrum with_c = s;
    with_c.noise_covariance = {0.5, 0.2, 0.05};
    for (int own = 0; own < 2; ++own) {
      const Spectrum src = own ? with_c : s;
      std::vector<long double> C;
      for (std::size_t i = 0; i < 3; ++i) C.push_back(own ? with_c.noise_covariance[i] : 2.0L * s.lambda[i]);
      const auto engine =
          cesr::loss_curve<long double>(cesr::precondition(src, gamma), cesr::make_path<long double>(m), additive(5, 2), 100);
      const auto dense = oracle::full_loss_general(ld(s.lambda), ld(s.init), s0, 3, 0, 5, c, 100, p, &C);
      for (std::size_t t = 0; t <= 100; ++t) CHECK(double(engine.loss[t]) == doctest::Approx(double(dense[t])).epsilon(1e-12));
    }
  }
  CHECK(cesr::parse_precondition("power:p=0.25") == 0.25);
  CHECK(cesr::parse_precondition("none") == 0);
  CHECK_THROWS_WITH_AS(cesr::parse_precondition("power:p=1.5"), doctest::Contains("p must be in [0, 1]"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(cesr::parse_precondition("adam"), doctest::Contains("unknown preconditioner"), std::invalid_argument);
}

TEST_CASE("additive noise: the floor of a method whose first step differs (torch-sgd's buffer) is that of its tail") {
  Spectrum s;
  s.lambda = {1.0, 0.2};
  s.init = {1.0, 1.0};
  MethodSpec m = cesr::method_spec("torch-sgd", {{"lr", 0.3}, {"momentum", 0.5}, {"dampening", 0.3}});
  const auto path = cesr::make_path<double>(m);
  REQUIRE_FALSE(path.constant());
  REQUIRE(path.constant_from);
  const auto tail = cesr::loss_curve<double>(s, path, additive(2), 20000, 20000);
  const auto st = cesr::steps_to_target<double>(s, path, additive(2), 1e-9, false, 100000000);
  REQUIRE(st.floor);
  CHECK(*st.floor == doctest::Approx(tail.loss.back()).epsilon(1e-12));
  CHECK_FALSE(st.steps);
  CHECK(st.steps_run == 0);  // answered without running 10^8 steps
}
