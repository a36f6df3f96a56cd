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

#include <cmath>
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

RandomCase random_case(std::mt19937_64& rng, cesr::MethodKind kind, int d) {
  std::uniform_real_distribution<double> U(0, 1);
  RandomCase c;
  for (int i = 0; i < d; ++i) {
    c.spectrum.lambda.push_back(std::pow(10.0, -3 * U(rng)));
    c.spectrum.init.push_back(1);
  }
  const double lmax = *std::max_element(c.spectrum.lambda.begin(), c.spectrum.lambda.end());
  c.spec.kind = kind;
  // Step sizes from well inside to well outside the stable range.
  const double lr = std::pow(10.0, -2 + 2.6 * U(rng)) / lmax;
  const std::uint64_t batches[] = {1, 2, 5, 30, 1000};
  const double kurt[] = {1, 1.5, 2, 3, 3, 6};
  c.noise.batch = batches[rng() % 5];
  c.noise.kurtosis = kurt[rng() % 6];
  switch (kind) {
    case cesr::MethodKind::Sgd: c.spec.lr = lr; break;
    case cesr::MethodKind::HeavyBall:
    case cesr::MethodKind::Nesterov:
      c.spec.lr = lr;
      c.spec.momentum = 1 - std::pow(10.0, -2.5 * U(rng));
      break;
    case cesr::MethodKind::AccSgd:
      c.spec.lr = lr;
      c.spec.kappa = std::pow(10.0, 3 * U(rng)) + 1;
      c.spec.xi = std::max(1.0, std::sqrt(c.spec.kappa) * U(rng));
      if (0.49 * c.spec.xi > c.spec.kappa) c.spec.xi = c.spec.kappa;
      break;
    case cesr::MethodKind::Custom: {
      cesr::Method<double> m;
      m.k = 2;
      // A quasi-hyperbolic-momentum-like method: P fixes (1, 1), q, r generic.
      const double b = U(rng), w = U(rng);
      m.P = {{{1 + b * w, -b * w}, {1.0, 0.0}}};
      m.q = {lr, lr * 0.3 * U(rng)};
      m.r = {1 + 0.5 * U(rng), -0.5 * U(rng)};
      m.o = {1, 0};
      c.spec.custom = m;
      c.spec.lr = cesr::MethodSpec::unset;
      break;
    }
  }
  return c;
}

}  // namespace

TEST_CASE("rho from the secular equation equals the dense operator's spectral radius (double)") {
  std::mt19937_64 rng(20261129);
  int unstable = 0, stable = 0;
  for (auto kind : {cesr::MethodKind::Sgd, cesr::MethodKind::HeavyBall, cesr::MethodKind::Nesterov,
                    cesr::MethodKind::AccSgd, cesr::MethodKind::Custom}) {
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
      // gap is 1 - rho
      CHECK(rate.gap == doctest::Approx(1 - rate.rho).epsilon(1e-12));
    }
  }
  // The sample covers both sides of the stability boundary.
  CHECK(stable > 50);
  CHECK(unstable > 50);
}

TEST_CASE("rho in 50 digits equals the dense operator's spectral radius in 50 digits") {
  std::mt19937_64 rng(7);
  for (auto kind : {cesr::MethodKind::Sgd, cesr::MethodKind::HeavyBall, cesr::MethodKind::Nesterov,
                    cesr::MethodKind::AccSgd, cesr::MethodKind::Custom}) {
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

TEST_CASE("d = 1 SGD: rho = (1 - eta lambda)^2 + (K - 1) eta^2 lambda^2 / B") {
  for (double lr : {0.1, 0.9, 1.7, 2.5})
    for (std::uint64_t B : {1u, 3u, 64u})
      for (double K : {1.0, 3.0, 5.0}) {
        const double l = 0.8;
        cesr::Spectrum s{{l}, {1}};
        cesr::MethodSpec spec;
        spec.kind = cesr::MethodKind::Sgd;
        spec.lr = lr;
        const cesr::NoiseModel noise{B, K, 0};
        const auto r = cesr::contraction_rate<mp50>(s, spec, noise);
        const mp50 h = mp50(lr) * mp50(l);
        const mp50 expected = (1 - h) * (1 - h) + (mp50(K) - 1) * h * h / mp50(B);
        CHECK(abs(r.rho - expected) <= mp50("1e-45"));
        CHECK(r.stable == (expected < 1));
      }
}
