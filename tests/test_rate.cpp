// The contraction rate from the secular equation against independent routes:
// the eigenvalues of the dense second-moment operator (built here from the
// formula, in double and in 50 digits), closed forms, the late-time ratio of
// the exact loss curve, and the known precision traps.
#include <doctest/doctest.h>

#include "cesr/dynamics.hpp"
#include "cesr/rate.hpp"

#include <Eigen/Dense>
#include <Eigen/Eigenvalues>
#include <boost/multiprecision/eigen.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

namespace {

using cesr::mp50;

/// The dense matrix of one step of the second-moment recursion (label noise
/// excluded), in the coordinates (S00, S01, S11) per direction for k = 2 and
/// S00 for k = 1. Built from
///   S_i' = A_i S_i A_i^T + (1/B) q q^T lambda_i [(K-2) lambda_i r^T S_i r + psi],
///   psi = sum_j lambda_j r^T S_j r.
template <class Real>
Eigen::Matrix<Real, Eigen::Dynamic, Eigen::Dynamic> dense_operator(const cesr::Spectrum& s,
                                                                   const cesr::Method<Real>& m,
                                                                   const cesr::NoiseModel& noise) {
  using Mat2 = Eigen::Matrix<Real, 2, 2>;
  const int k = m.k, n = k == 1 ? 1 : 3;
  const int d = static_cast<int>(s.dim());
  Eigen::Matrix<Real, Eigen::Dynamic, Eigen::Dynamic> T(n * d, n * d);
  T.setZero();
  Mat2 P = Mat2::Zero();
  Eigen::Matrix<Real, 2, 1> q, r;
  for (int a = 0; a < k; ++a) {
    q(a) = m.q[a];
    r(a) = m.r[a];
    for (int b = 0; b < k; ++b) P(a, b) = m.P[a][b];
  }
  if (k == 1) {
    P(1, 1) = 0;
    q(1) = 0;
    r(1) = 0;
  }
  const Real B = Real(noise.batch), K = Real(noise.kurtosis);
  // Basis of symmetric matrices matching the coordinates.
  std::vector<Mat2> basis;
  if (k == 1) {
    basis.push_back((Mat2() << 1, 0, 0, 0).finished());
  } else {
    basis.push_back((Mat2() << 1, 0, 0, 0).finished());
    basis.push_back((Mat2() << 0, 1, 1, 0).finished());
    basis.push_back((Mat2() << 0, 0, 0, 1).finished());
  }
  const auto coords = [&](const Mat2& S) {
    Eigen::Matrix<Real, Eigen::Dynamic, 1> v(n);
    if (k == 1) v(0) = S(0, 0);
    else v << S(0, 0), S(0, 1), S(1, 1);
    return v;
  };
  const Mat2 qq = q * q.transpose();
  for (int i = 0; i < d; ++i) {
    const Real li = Real(s.lambda[i]);
    const Mat2 A = P - li * q * r.transpose();
    for (int c = 0; c < n; ++c) {
      const Mat2& S = basis[c];
      const Real rsr = r.dot(S * r);
      // deterministic part and self-noise: into block i
      const Mat2 own = A * S * A.transpose() + qq * (li * (K - 2) * li * rsr / B);
      T.block(n * i, n * i + c, n, 1) += coords(own);
      // coupling through psi: into every block j
      for (int j = 0; j < d; ++j) {
        const Real lj = Real(s.lambda[j]);
        T.block(n * j, n * i + c, n, 1) += coords(qq * (lj * li * rsr / B));
      }
    }
  }
  return T;
}

template <class Real>
Real dense_rho(const cesr::Spectrum& s, const cesr::Method<Real>& m, const cesr::NoiseModel& noise) {
  using std::abs;
  const auto T = dense_operator(s, m, noise);
  Eigen::EigenSolver<Eigen::Matrix<Real, Eigen::Dynamic, Eigen::Dynamic>> es(T, false);
  REQUIRE(es.info() == Eigen::Success);
  Real best = 0;
  for (Eigen::Index i = 0; i < es.eigenvalues().size(); ++i) {
    const Real a = abs(es.eigenvalues()(i));
    if (a > best) best = a;
  }
  return best;
}

/// A random problem: d directions, log-uniform eigenvalues, a random method.
struct RandomCase {
  cesr::Spectrum spectrum;
  cesr::MethodSpec spec;
  cesr::NoiseModel noise;
};

RandomCase random_case(std::mt19937_64& rng, const std::string& kind, int d) {
  std::uniform_real_distribution<double> U(0, 1);
  RandomCase c;
  for (int i = 0; i < d; ++i) {
    c.spectrum.lambda.push_back(std::pow(10.0, -3 * U(rng)));
    c.spectrum.init.push_back(1);
  }
  const double lmax = *std::max_element(c.spectrum.lambda.begin(), c.spectrum.lambda.end());
  c.spec.name = kind;
  // Step sizes from well inside to well outside the stable range.
  const double lr = std::pow(10.0, -2 + 2.6 * U(rng)) / lmax;
  const std::uint64_t batches[] = {1, 2, 5, 30, 1000};
  const double kurt[] = {1, 1.5, 2, 3, 3, 6};
  c.noise.batch = batches[rng() % 5];
  c.noise.kurtosis = kurt[rng() % 6];
  if (kind == "sgd") {
    c.spec.set("lr", lr);
  } else if (kind == "hb" || kind == "nag") {
    c.spec.set("lr", lr);
    c.spec.set("momentum", 1 - std::pow(10.0, -2.5 * U(rng)));
  } else if (kind == "asgd") {
    c.spec.set("lr", lr);
    const double kappa = std::pow(10.0, 3 * U(rng)) + 1;
    double xi = std::max(1.0, std::sqrt(kappa) * U(rng));
    if (0.49 * xi > kappa) xi = kappa;
    c.spec.set("kappa", kappa).set("xi", xi);
  } else {
    {
      cesr::Method<double> m;
      m.k = 2;
      // A quasi-hyperbolic-momentum-like method: P fixes (1, 1), q, r generic.
      const double b = U(rng), w = U(rng);
      m.P = {{{1 + b * w, -b * w}, {1.0, 0.0}}};
      m.q = {lr, lr * 0.3 * U(rng)};
      m.r = {1 + 0.5 * U(rng), -0.5 * U(rng)};
      m.o = {1, 0};
      c.spec.custom = m;
    }
  }
  return c;
}

}  // namespace

TEST_CASE("rho from the secular equation equals the dense operator's spectral radius (double)") {
  std::mt19937_64 rng(20261129);
  int unstable = 0, stable = 0;
  for (const std::string kind : {"sgd", "hb", "nag", "asgd", "custom"}) {
    for (int trial = 0; trial < 60; ++trial) {
      const int d = 1 + static_cast<int>(rng() % 6);
      const RandomCase c = random_case(rng, kind, d);
      const auto m = cesr::make_method<double>(c.spec);
      const double dense = dense_rho(c.spectrum, m, c.noise);
      const auto rate = cesr::contraction_rate<double>(c.spectrum, m, c.noise);
      INFO("method ", cesr::describe(c.spec), " d=", d, " B=", c.noise.batch, " K=", c.noise.kurtosis);
      CHECK(rate.rho == doctest::Approx(dense).epsilon(1e-7));
      if (std::abs(dense - 1) > 1e-6) CHECK(rate.stable == (dense < 1));
      (dense < 1 ? stable : unstable)++;
      // The gap against 1 - the dense radius (absolute: 1 - dense cancels in
      // double; the small gaps are tested below against 50 digits).
      CHECK(std::abs(rate.gap - (1 - dense)) <= 1e-7 * std::max(1.0, dense));
    }
  }
  // The sample covers both sides of the stability boundary.
  CHECK(stable > 50);
  CHECK(unstable > 50);
}

TEST_CASE("rho in 50 digits equals the dense operator's spectral radius in 50 digits") {
  std::mt19937_64 rng(7);
  for (const std::string kind : {"sgd", "hb", "nag", "asgd", "custom"}) {
    for (int trial = 0; trial < 3; ++trial) {
      const RandomCase c = random_case(rng, kind, 3);
      const auto m = cesr::make_method<mp50>(c.spec);
      const mp50 dense = dense_rho(c.spectrum, m, c.noise);
      const auto rate = cesr::contraction_rate<mp50>(c.spectrum, m, c.noise);
      INFO("method ", cesr::describe(c.spec), " B=", c.noise.batch, " K=", c.noise.kurtosis);
      CHECK(abs(rate.rho - dense) <= mp50("1e-40") * dense);
    }
  }
}

TEST_CASE("small gaps: double to a few ulps absolute (SGD: relative), auto to rtol, against the 50-digit dense operator") {
  // Step sizes 1e-4 .. 1e-9 of 1/lambda_max: gaps of 1e-4 .. 1e-12. Momenta k/64,
  // so that 1 + beta is an exact double. In double the gap of SGD is formed
  // without cancellation (relative accuracy); with two states the gap carries
  // an absolute error of a few ulps of 1 (as 1 - rho would: the resolution the
  // automatic precision escalates past); auto meets its rtol.
  std::mt19937_64 rng(41);
  std::uniform_real_distribution<double> U(0, 1);
  double worst_double = 0, worst_auto = 0;
  int cases = 0;
  for (const std::string kind : {"sgd", "hb", "nag", "asgd"}) {
    for (int trial = 0; trial < 4; ++trial) {
      RandomCase c = random_case(rng, kind, 2 + trial % 2);
      const double lmax = *std::max_element(c.spectrum.lambda.begin(), c.spectrum.lambda.end());
      const double lr = std::pow(10.0, -4 - 5 * U(rng)) / lmax;
      c.spec.set("lr", lr);
      if (kind == "hb" || kind == "nag") c.spec.set("momentum", double(1 + rng() % 60) / 64);
      if (kind == "asgd") c.spec.set("kappa", 1 + 10 * U(rng)).set("xi", 1.0);
      const auto exact = dense_rho(c.spectrum, cesr::make_method<mp50>(c.spec), c.noise);
      const double gap = static_cast<double>(1 - exact);
      const auto rate = cesr::contraction_rate<double>(c.spectrum, cesr::make_method<double>(c.spec), c.noise);
      const cesr::AutoRate a = cesr::contraction_rate_auto(c.spectrum, c.spec, c.noise, 1e-10);
      INFO("method ", cesr::describe(c.spec), " B=", c.noise.batch, " K=", c.noise.kurtosis, " gap ", gap,
           " double ", rate.gap, " auto ", a.gap);
      REQUIRE(gap > 0);
      REQUIRE(gap < 1e-3);
      const double eps = std::numeric_limits<double>::epsilon();
      if (kind == "sgd") CHECK(std::abs(rate.gap - gap) <= 1e-12 * gap);
      CHECK(std::abs(rate.gap - gap) <= 8 * eps);
      CHECK(rate.stable);
      const double err = std::abs(a.gap - gap) / gap;
      CHECK(err <= 1e-10);
      CHECK(a.stable);
      worst_double = std::max(worst_double, std::abs(rate.gap - gap) / eps);
      worst_auto = std::max(worst_auto, err);
      ++cases;
    }
  }
  MESSAGE("small gaps: ", cases, " cases; worst double error ", worst_double, " ulps of 1; worst auto ", worst_auto,
          " relative");
}

TEST_CASE("d = 1 SGD: rho = (1 - eta lambda)^2 + (K - 1) eta^2 lambda^2 / B") {
  for (double lr : {0.1, 0.9, 1.7, 2.5})
    for (std::uint64_t B : {1u, 3u, 64u})
      for (double K : {1.0, 3.0, 5.0}) {
        const double l = 0.8;
        cesr::Spectrum s{{l}, {1}};
        const cesr::MethodSpec spec = cesr::method_spec("sgd", {{"lr", lr}});
        const cesr::NoiseModel noise{B, K, 0};
        const auto r = cesr::contraction_rate<mp50>(s, spec, noise);
        const mp50 h = mp50(lr) * mp50(l);
        const mp50 expected = (1 - h) * (1 - h) + (mp50(K) - 1) * h * h / mp50(B);
        CHECK(abs(r.rho - expected) <= mp50("1e-45"));
        CHECK(r.stable == (expected < 1));
      }
}

namespace {

/// Heavy ball's secular function in the closed form of THEORY.md, expanded in
/// powers of z (the textbook route, independent of src/rate.cpp):
///   g(z) = sum_i (eta^2 lambda_i^2 / B) z (z + beta) / chi_i(z),
///   chi_i = (z - p_i^2 - n_i) z (z + beta) + 2 p_i^2 beta z - beta^2 (z + beta),
///   p_i = 1 + beta - eta lambda_i, n_i = (K - 2) eta^2 lambda_i^2 / B.
template <class Real>
Real hb_closed_form_g(const cesr::Spectrum& s, Real eta, Real beta, const cesr::NoiseModel& noise, Real z) {
  Real g = 0;
  const Real B = Real(noise.batch), K = Real(noise.kurtosis);
  for (double lam : s.lambda) {
    const Real l = Real(lam);
    const Real p = 1 + beta - eta * l;
    const Real n = (K - 2) * eta * eta * l * l / B;
    const Real chi = (z - p * p - n) * z * (z + beta) + 2 * p * p * beta * z - beta * beta * (z + beta);
    g += eta * eta * l * l / B * z * (z + beta) / chi;
  }
  return g;
}

cesr::MethodSpec hb(double lr, double momentum) {
  return cesr::method_spec("hb", {{"lr", lr}, {"momentum", momentum}});
}

}  // namespace

TEST_CASE("heavy ball: the closed-form secular function of THEORY.md is 1 at the computed rho (50 digits)") {
  std::mt19937_64 rng(99);
  std::uniform_real_distribution<double> U(0, 1);
  int checked = 0;
  for (int trial = 0; trial < 20; ++trial) {
    const RandomCase c = random_case(rng, "hb", 1 + static_cast<int>(rng() % 8));
    const auto r = cesr::contraction_rate<mp50>(c.spectrum, c.spec, c.noise);
    const mp50 g = hb_closed_form_g<mp50>(c.spectrum, mp50(c.spec.value("lr")), mp50(c.spec.value("momentum")), c.noise, r.rho);
    INFO(cesr::describe(c.spec), " B=", c.noise.batch, " K=", c.noise.kurtosis);
    // Either a root of the secular equation, or rho(D) (then g has a pole there).
    if (abs(g) < 1e6) {
      CHECK(abs(g - 1) <= mp50("1e-35"));
      ++checked;
    }
  }
  CHECK(checked >= 15);
}

TEST_CASE("deterministic heavy ball limit: rho -> ((sqrt(kappa) - 1) / (sqrt(kappa) + 1))^2 as B -> infinity") {
  const cesr::Spectrum s = cesr::make_spectrum("loguniform:d=50,kappa=1e4");
  const double lmax = s.lambda_max(), lmin = s.lambda_min(), kappa = lmax / lmin;
  const double lr = 4 / std::pow(std::sqrt(lmax) + std::sqrt(lmin), 2);
  const double beta = std::pow((std::sqrt(kappa) - 1) / (std::sqrt(kappa) + 1), 2);
  double previous = 1;
  for (std::uint64_t B : {std::uint64_t{1'000'000'000}, std::uint64_t{1'000'000'000'000},
                          std::uint64_t{1'000'000'000'000'000}, std::uint64_t{10'000'000'000'000'000'000u}}) {
    const auto r = cesr::contraction_rate<double>(s, hb(lr, beta), cesr::NoiseModel{B, 3, 0});
    const double err = std::abs(r.rho - beta) / (1 - beta);
    INFO("B = ", B, " rho = ", r.rho, " beta = ", beta, " (rho - beta)/(1 - beta) = ", err);
    CHECK(r.rho >= beta * (1 - 1e-15));  // noise never speeds the method up
    CHECK(err < previous);
    previous = err;
  }
  CHECK(previous < 1e-4);
}

TEST_CASE("the late-time ratio L_{t+1} / L_t of the exact loss curve tends to rho") {
  struct Case {
    cesr::MethodSpec spec;
    std::uint64_t batch;
    double kurtosis;
  };
  const cesr::MethodSpec sgd = cesr::method_spec("sgd", {{"lr", 0.9}});
  cesr::MethodSpec nag = hb(0.4, 0.6);
  nag.name = "nag";
  const cesr::MethodSpec asgd = cesr::method_spec("asgd", {{"lr", 0.3}, {"kappa", 30}, {"xi", 3}});
  const Case cases[] = {{sgd, 2, 3}, {hb(0.5, 0.5), 4, 3}, {hb(0.9, 0.3), 1, 1}, {nag, 3, 5}, {asgd, 2, 3},
                        {hb(1.9, 0.2), 1, 3} /* unstable: the ratio tends to rho > 1 */};
  const cesr::Spectrum s = cesr::make_spectrum("loguniform:d=6,kappa=30");
  for (const auto& c : cases) {
    const cesr::NoiseModel noise{c.batch, c.kurtosis, 0.0};
    const auto r = cesr::contraction_rate<double>(s, c.spec, noise);
    const std::uint64_t steps = 3000;
    const auto curve = cesr::loss_curve<mp50>(s, cesr::make_method<mp50>(c.spec), noise, steps, 1);
    REQUIRE(curve.loss.size() >= 2);
    const std::size_t n = curve.loss.size();
    const double ratio = static_cast<double>(curve.loss[n - 1] / curve.loss[n - 2]);
    INFO(cesr::describe(c.spec), " B=", c.batch, " steps=", n - 1, " rho=", r.rho);
    CHECK(ratio == doctest::Approx(r.rho).epsilon(1e-9));
  }
}

TEST_CASE("trap: at kappa = 1e12 near critical damping, double from rounded P is wrong, auto is right") {
  // lambda_min = 1e-12, eta = 1, beta = (1 - sqrt(eta lambda_min))^2: critically
  // damped in the slowest direction; the gap is ~2e-6 and C_i(z) = O(gap^3).
  const cesr::Spectrum s = cesr::make_spectrum("loguniform:d=10,kappa=1e12");
  // A beta whose last bit is set, so that 1 + beta is not a double.
  double beta = 0.999998000001;
  if ((1 + beta) - 1 == beta) beta = std::nextafter(beta, 0.0);
  REQUIRE((1 + beta) - 1 != beta);
  const cesr::MethodSpec spec = hb(1.0, beta);
  const cesr::NoiseModel noise{1'000'000'000'000, 3, 0};
  const auto exact = cesr::contraction_rate<mp50>(s, spec, noise);
  const double gap = static_cast<double>(exact.gap);
  REQUIRE(exact.stable);
  // In double with P = [[1 + beta, -beta], [1, 0]] rounded, the fixed point
  // P 1 = 1 is lost and 1 - beta is perturbed by eps / (1 - beta) relatively.
  const auto naive = cesr::contraction_rate<double>(s, cesr::make_method<double>(spec), noise);
  CHECK(std::abs(naive.gap - gap) > 1e-6 * gap);
  // The textbook closed form in double, at (the double nearest to) the true
  // rho, where it should be 1: chi_i is a difference of O(1) terms equal to
  // O(gap^3) in the slowest direction, and double precision loses it.
  const double z = static_cast<double>(exact.rho);
  const double g_double = hb_closed_form_g<double>(s, 1.0, beta, noise, z);
  const mp50 g_exact = hb_closed_form_g<mp50>(s, mp50(1), mp50(beta), noise, mp50(z));
  INFO("closed form at rho: double ", g_double, ", 50 digits ", static_cast<double>(g_exact));
  CHECK(abs(hb_closed_form_g<mp50>(s, mp50(1), mp50(beta), noise, exact.rho) - 1) < 1e-9);  // g is steep here
  CHECK(abs(g_double - g_exact) > 0.5 * g_exact);
  const cesr::AutoRate a = cesr::contraction_rate_auto(s, spec, noise, 1e-10);
  CHECK(a.stable);
  CHECK(std::abs(a.gap - gap) <= 1e-10 * gap);
  INFO("auto precision ", cesr::to_string(a.precision), " naive gap ", naive.gap, " exact gap ", gap);
  CHECK(a.precision != cesr::Precision::Double);
}

TEST_CASE("trap: a tuned-looking heavy ball that diverges comes out unstable") {
  // The deterministic optimum for kappa = 1e12 (eta = 4 / (sqrt(L) + sqrt(mu))^2,
  // beta = ((sqrt(kappa) - 1) / (sqrt(kappa) + 1))^2) is critically damped at
  // lambda_max too, where the noise of even B = 1e9 pushes rho above 1.
  const cesr::Spectrum s = cesr::make_spectrum("loguniform:d=10,kappa=1e12");
  const double k = 1e12;
  const double lr = 4 / std::pow(1 + std::sqrt(1 / k), 2);
  const double beta = std::pow((std::sqrt(k) - 1) / (std::sqrt(k) + 1), 2);
  const cesr::NoiseModel noise{1'000'000'000, 3, 0};
  const cesr::AutoRate a = cesr::contraction_rate_auto(s, hb(lr, beta), noise);
  CHECK_FALSE(a.stable);
  CHECK(a.rho > 1);
  // Independent confirmation: the exact loss grows, at the rate rho.
  const auto curve = cesr::loss_curve<mp50>(s, cesr::make_method<mp50>(hb(lr, beta)), noise, 4000, 1);
  const std::size_t n = curve.loss.size();
  REQUIRE(n > 100);
  CHECK(curve.loss[n - 1] > curve.loss[n - 2]);
  CHECK(static_cast<double>(curve.loss[n - 1] / curve.loss[n - 2]) == doctest::Approx(a.rho).epsilon(1e-6));
}

TEST_CASE("label noise does not change rho; K != 3 does") {
  const cesr::Spectrum s = cesr::make_spectrum("powerlaw:d=50,alpha=1.5");
  const auto spec = hb(0.3, 0.9);
  const auto a = cesr::contraction_rate<double>(s, spec, cesr::NoiseModel{8, 3, 0});
  const auto b = cesr::contraction_rate<double>(s, spec, cesr::NoiseModel{8, 3, 2.5});
  const auto c = cesr::contraction_rate<double>(s, spec, cesr::NoiseModel{8, 1, 0});
  CHECK(a.rho == b.rho);
  CHECK(c.rho < a.rho);  // less kurtosis, less noise
}

TEST_CASE("escalation: where double is off by more than rtol, auto goes on and matches 50 digits") {
  // The deterministic optimum at kappa = 1e4 is critically damped at both ends
  // of the spectrum; with B = 1e6 the root sits next to a nearly triple
  // eigenvalue and double carries only ~9 correct digits of the gap.
  const cesr::Spectrum s = cesr::make_spectrum("loguniform:d=30,kappa=1e4");
  const double lmin = s.lambda_min();
  const double lr = 4 / std::pow(1 + std::sqrt(lmin), 2), beta = std::pow((100.0 - 1) / (100.0 + 1), 2);
  const cesr::NoiseModel noise{1'000'000, 3, 0};
  const auto exact = cesr::contraction_rate<mp50>(s, hb(lr, beta), noise);
  const double gap = static_cast<double>(exact.gap);
  const auto d = cesr::contraction_rate<double>(s, hb(lr, beta), noise);
  INFO("exact gap ", gap, " double gap ", d.gap);
  CHECK(std::abs(d.gap - gap) > 1e-10 * std::abs(gap));
  const cesr::AutoRate a = cesr::contraction_rate_auto(s, hb(lr, beta), noise, 1e-10);
  CHECK(a.precision >= cesr::Precision::Quad);
  CHECK(std::abs(a.gap - gap) <= 1e-10 * std::abs(gap));
  CHECK(a.stable == exact.stable);
}

TEST_CASE("escalation: a gap that rounds to 0 in double and long double is not taken as an answer") {
  // kappa = 1e50: the slowest direction of heavy ball contracts its second
  // moment by 1 - 2 eta lambda_min / (1 - beta) + O((eta lambda_min)^2), a gap
  // of 2e-51, far below the resolution of rho in double and long double. The
  // bracket is now relative to the base, so both resolve it; before, both
  // returned gap 0, and two zeros must never "agree" (auto went on to quad).
  const cesr::Spectrum s = cesr::make_spectrum("loguniform:d=2,kappa=1e50");
  const double lr = 0.01, beta = 0.9;
  const cesr::AutoRate a = cesr::contraction_rate_auto(s, hb(lr, beta), cesr::NoiseModel{1, 3, 0}, 1e-10);
  const double expected = 2 * lr * s.lambda_min() / (1 - beta);
  INFO("gap ", a.gap, " expected ", expected);
  CHECK(a.stable);
  CHECK(a.precision >= cesr::Precision::Long);
  CHECK(std::abs(a.gap - expected) <= 1e-12 * expected);
  const cesr::AutoRate d = cesr::contraction_rate_in(cesr::Precision::Double, s, hb(lr, beta), cesr::NoiseModel{1, 3, 0});
  CHECK(d.stable);
  CHECK(std::abs(d.gap - expected) <= 1e-12 * expected);
}

TEST_CASE("accuracy sweep: auto within 1e-10 of 50 digits for kappa up to 1e12 and B from 1 to 1e9") {
  int cases = 0, stable = 0;
  double worst = 0;
  for (double kappa : {1e2, 1e6, 1e12}) {
    const cesr::Spectrum s = cesr::make_spectrum(fmt::format("loguniform:d=8,kappa={}", kappa));
    const double lmin = s.lambda_min();
    std::vector<cesr::MethodSpec> methods;
    methods.push_back(cesr::method_spec("sgd", {{"lr", 1}}));
    for (double lr : {0.05, 1.0}) {
      const double critical = std::pow(1 - std::sqrt(lr * lmin), 2);
      methods.push_back(hb(lr, critical));
      cesr::MethodSpec nag = hb(lr, 0.99);
      nag.name = "nag";
      methods.push_back(nag);
    }
    methods.push_back(hb(4 / std::pow(1 + std::sqrt(lmin), 2), std::pow((std::sqrt(kappa) - 1) / (std::sqrt(kappa) + 1), 2)));
    methods.push_back(cesr::method_spec("asgd", {{"lr", 0.3}, {"kappa", std::sqrt(kappa)}, {"xi", std::pow(kappa, 0.25)}}));
    for (const auto& m : methods)
      for (std::uint64_t B : {std::uint64_t{1}, std::uint64_t{1000}, std::uint64_t{1'000'000'000}}) {
        const cesr::NoiseModel noise{B, 3, 0};
        const auto exact = cesr::contraction_rate<mp50>(s, m, noise);
        const cesr::AutoRate a = cesr::contraction_rate_auto(s, m, noise);
        const double err = std::abs(a.gap - static_cast<double>(exact.gap)) / std::abs(static_cast<double>(exact.gap));
        INFO("kappa=", kappa, " B=", B, " ", cesr::describe(m), " error ", err);
        CHECK(a.stable == exact.stable);
        CHECK(err <= 1e-10);
        worst = std::max(worst, err);
        ++cases;
        stable += exact.stable;
      }
  }
  MESSAGE("accuracy sweep: ", cases, " cases, ", stable, " stable, worst relative gap error ", worst);
  CHECK(stable > 10);
  CHECK(cases - stable > 10);
}

TEST_CASE("heavy ball with beta = 0 (3x3 blocks) has the rate of SGD (1x1 blocks)") {
  std::mt19937_64 rng(5);
  for (int trial = 0; trial < 40; ++trial) {
    RandomCase c = random_case(rng, "sgd", 1 + static_cast<int>(rng() % 10));
    const auto sgd = cesr::contraction_rate<mp50>(c.spectrum, c.spec, c.noise);
    const auto h = cesr::contraction_rate<mp50>(c.spectrum, hb(c.spec.value("lr"), 0.0), c.noise);
    INFO(cesr::describe(c.spec), " B=", c.noise.batch, " K=", c.noise.kurtosis);
    CHECK(abs(h.rho - sgd.rho) <= mp50("1e-40") * sgd.rho);
    CHECK(h.stable == sgd.stable);
  }
}

TEST_CASE("a gap below the double range (kappa = 1e300, lr 1e-10): the closed form 2 lr lambda_min / (1 - beta)") {
  // Heavy ball on lambda = (1, 1e-300): the slow direction's deterministic
  // second-moment radius is (1 - lr lambda/(1 - beta) + O((lr lambda)^2))^2,
  // its noise (lambda^2 / B = 1e-600) and the fast direction's share of the
  // secular function (~1e-11) move the root by far less than 1e-20 relative,
  // so gap = 2 lr lambda_min / (1 - beta) to ~1e-20. It used to come out as
  // -0, "unstable", in every precision (the bracket's resolution was eps
  // times 1 - beta, 0.1, not eps times the gap).
  const cesr::Spectrum sp = cesr::make_spectrum("loguniform:d=2,kappa=1e300", "isotropic");
  const auto spec = cesr::method_spec("hb", {{"lr", 1e-10}, {"momentum", 0.9}});
  const cesr::NoiseModel noise{1};
  const mp50 lmin(*std::min_element(sp.lambda.begin(), sp.lambda.end()));
  const mp50 want = 2 * mp50("1e-10") * lmin / (1 - mp50("0.9"));
  for (const auto p : {cesr::Precision::Long, cesr::Precision::Quad, cesr::Precision::Mp50}) {
    CAPTURE(cesr::to_string(p));
    const cesr::AutoRate r = cesr::contraction_rate_in(p, sp, spec, noise);
    CHECK(r.stable);
    CHECK(cesr::to_double(mp50(abs(mp50(r.gap_text) / want - 1))) <= 1e-15);
  }
  const cesr::AutoRate a = cesr::contraction_rate_auto(sp, spec, noise, 1e-10);
  CHECK(a.stable);
  CHECK(a.precision != cesr::Precision::Double);
  CHECK(cesr::to_double(mp50(abs(mp50(a.gap_text) / want - 1))) <= 1e-10);
}
