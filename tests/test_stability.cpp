// Stability limits in the step size against closed forms (d = 1 SGD) and
// against the dense second-moment operator's spectral radius on both sides of
// the computed lr_max.
#include <doctest/doctest.h>

#include "cesr/rate.hpp"
#include "cesr/stability.hpp"
#include "cesr_run.hpp"

#include <Eigen/Dense>
#include <Eigen/Eigenvalues>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

namespace {

cesr::MethodSpec method(const char* kind, double momentum = std::nan("")) {
  cesr::MethodSpec m;
  m.name = kind;
  if (!std::isnan(momentum)) m.set("momentum", momentum);
  return m;
}

/// Spectral radius of the dense operator of one step, built from
/// S_i' = A_i S_i A_i^T + (1/B) q q^T lambda_i [(K-2) lambda_i r^T S_i r + sum_j lambda_j r^T S_j r].
double dense_rho(const cesr::Spectrum& s, const cesr::Method<double>& m, const cesr::NoiseModel& noise) {
  using Mat2 = Eigen::Matrix2d;
  const int n = m.k == 1 ? 1 : 3, d = static_cast<int>(s.dim());
  Eigen::MatrixXd T = Eigen::MatrixXd::Zero(n * d, n * d);
  Mat2 P = Mat2::Zero();
  Eigen::Vector2d q = Eigen::Vector2d::Zero(), r = Eigen::Vector2d::Zero();
  for (int a = 0; a < m.k; ++a) {
    q(a) = m.q[a];
    r(a) = m.r[a];
    for (int b = 0; b < m.k; ++b) P(a, b) = m.P[a][b];
  }
  const Mat2 basis[3] = {(Mat2() << 1, 0, 0, 0).finished(), (Mat2() << 0, 1, 1, 0).finished(),
                         (Mat2() << 0, 0, 0, 1).finished()};
  const auto coords = [&](const Mat2& S) {
    Eigen::VectorXd v(n);
    if (n == 1) v(0) = S(0, 0);
    else v << S(0, 0), S(0, 1), S(1, 1);
    return v;
  };
  const double B = double(noise.batch), K = noise.kurtosis;
  for (int i = 0; i < d; ++i) {
    const double li = s.lambda[i];
    const Mat2 A = P - li * q * r.transpose();
    for (int c = 0; c < n; ++c) {
      const double rsr = r.dot(basis[c] * r);
      T.block(n * i, n * i + c, n, 1) += coords(A * basis[c] * A.transpose() + q * q.transpose() * ((K - 2) * li * li * rsr / B));
      for (int j = 0; j < d; ++j)
        T.block(n * j, n * i + c, n, 1) += coords(q * q.transpose() * (s.lambda[j] * li * rsr / B));
    }
  }
  Eigen::EigenSolver<Eigen::MatrixXd> es(T, false);
  return es.eigenvalues().cwiseAbs().maxCoeff();
}

}  // namespace

TEST_CASE("d = 1 SGD: lr_max = 2 / (lambda (1 + (K-1)/B)) and lr_best = lr_max / 2") {
  for (std::uint64_t B : {1u, 4u, 100u})
    for (double K : {1.0, 3.0}) {
      const double l = 0.37;
      const cesr::Spectrum s{{l}, {1}};
      const cesr::NoiseModel noise{B, K, 0};
      const auto lim = cesr::stability_limits<double>(s, method("sgd"), noise);
      const double c = 1 + (K - 1) / double(B);
      INFO("B=", B, " K=", K);
      CHECK(lim.lr_max == doctest::Approx(2 / (l * c)).epsilon(1e-14));
      CHECK(lim.lr_best == doctest::Approx(1 / (l * c)).epsilon(1e-7));
      // gap at the optimum: 1 - [(1 - h)^2 + (c - 1) h^2] with h = 1/c
      CHECK(lim.gap_best == doctest::Approx(1 / c).epsilon(1e-13));
    }
}

TEST_CASE("lr_max separates a stable from an unstable dense operator, for every method") {
  const cesr::Spectrum s = cesr::make_spectrum("loguniform:d=5,kappa=100");
  cesr::MethodSpec asgd = method("asgd");
  asgd.set("kappa", 50).set("xi", 4);
  cesr::MethodSpec custom = method("custom");
  custom.custom.k = 2;
  custom.custom.P = {{{1.6, -0.6}, {1.0, 0.0}}};
  custom.custom.q = {1.0, 0.2};
  custom.custom.r = {1.3, -0.3};
  custom.custom.o = {1.0, 0.0};
  const cesr::MethodSpec methods[] = {method("sgd"), method("hb", 0.9),
                                      method("nag", 0.7), asgd, custom};
  for (const auto& m : methods)
    for (std::uint64_t B : {1u, 16u}) {
      const cesr::NoiseModel noise{B, 3, 0};
      INFO(cesr::describe(m), " B=", B);
      const auto lim = cesr::stability_limits<double>(s, m, noise);
      const double lr = lim.lr_max;
      INFO("lr_max=", lr);
      CHECK(dense_rho(s, cesr::make_method<double>(cesr::with_step_size(m, lr * (1 - 1e-6))), noise) < 1);
      CHECK(dense_rho(s, cesr::make_method<double>(cesr::with_step_size(m, lr * (1 + 1e-6))), noise) > 1);
      // lr_best is better than its neighbours and than a grid over (0, lr_max).
      CHECK(lim.lr_best < lim.lr_max);
      for (double f : {0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99}) {
        const auto r = cesr::contraction_rate<double>(s, cesr::with_step_size(m, f * lr), noise);
        CHECK(r.gap <= lim.gap_best * (1 + 1e-12));
      }
    }
}

TEST_CASE("auto precision agrees with 50 digits on lr_max and the best gap") {
  const cesr::Spectrum s = cesr::make_spectrum("loguniform:d=20,kappa=1e6");
  const auto m = method("hb", 0.99);
  const cesr::NoiseModel noise{32, 3, 0};
  const auto a = cesr::stability_limits_auto(s, m, noise);
  const auto e = cesr::stability_limits_auto(s, m, noise, cesr::Precision::Mp50);
  CHECK(a.lr_max == doctest::Approx(e.lr_max).epsilon(1e-10));
  CHECK(a.gap_best == doctest::Approx(e.gap_best).epsilon(1e-10));
  CHECK(a.precision != cesr::Precision::Double);
}

TEST_CASE("d = 1 SGD at extreme scales: the search runs in units of 1 / lambda_max") {
  for (double l : {1e-300, 1e300})
    for (std::uint64_t B : {1u, 4u}) {
      const double K = 3, c = 1 + (K - 1) / double(B);
      const cesr::Spectrum s{{l}, {1}};
      const cesr::NoiseModel noise{B, K, 0};
      INFO("lambda=", l, " B=", B);
      const auto lim = cesr::stability_limits<double>(s, method("sgd"), noise);
      CHECK(lim.lr_max == doctest::Approx(2 / (l * c)).epsilon(1e-12));
      CHECK(lim.lr_best == doctest::Approx(1 / (l * c)).epsilon(1e-7));
      CHECK(lim.gap_best == doctest::Approx(1 / c).epsilon(1e-12));
      const auto a = cesr::stability_limits_auto(s, method("sgd"), noise);
      CHECK(a.lr_max == doctest::Approx(2 / (l * c)).epsilon(1e-12));
    }
  // Step sizes beyond the normal doubles: invalid input naming --spectrum.
  for (double l : {1e308, 1e-310}) {
    const cesr::Spectrum s{{l}, {1}};
    INFO("lambda=", l);
    try {
      cesr::stability_limits<double>(s, method("sgd"), cesr::NoiseModel{1, 3, 0});
      FAIL("no exception");
    } catch (const std::invalid_argument& e) {
      CHECK(std::string(e.what()).find("--spectrum") != std::string::npos);
    }
  }
}

TEST_CASE("a custom method with q = 0 or with rho(P) >= 1 diverges at every step size") {
  const cesr::Spectrum s = cesr::make_spectrum("powerlaw:d=3,alpha=1");
  const cesr::NoiseModel noise{1, 3, 0};
  const auto custom = [](double p, double q) {
    cesr::MethodSpec m = method("custom");
    m.custom.k = 1;
    m.custom.P[0][0] = p;
    m.custom.q[0] = q;
    m.custom.r[0] = 1;
    m.custom.o[0] = 1;
    return m;
  };
  CHECK_THROWS_AS(cesr::stability_limits<double>(s, custom(1, 0), noise), cesr::UnstableAtEveryStepSize);
  CHECK_THROWS_AS(cesr::stability_limits_auto(s, custom(1, 0), noise), cesr::UnstableAtEveryStepSize);
  CHECK_THROWS_AS(cesr::stability_limits<double>(s, custom(1.5, 1), noise), cesr::UnstableAtEveryStepSize);
  // q = 0 with rho < 1: stable at every step size, so no lr_max (bad input).
  CHECK_THROWS_AS(cesr::stability_limits<double>(s, custom(0.5, 0), noise), std::invalid_argument);
}

namespace {

std::size_t lines(const std::string& text) { return std::count(text.begin(), text.end(), '\n'); }

}  // namespace

TEST_CASE("cesr stability end to end: extreme scales, diverging and out-of-range problems") {
  for (const char* scale : {"1e-300", "1e300"}) {
    const auto r = cesr_test::run_cesr(std::string("stability --method sgd --spectrum powerlaw:d=1,alpha=1,scale=") +
                                       scale + " --batch 4");
    INFO(scale, " ", r.err);
    REQUIRE(r.code == 0);
    const auto at = r.out.find("\"lr_max\": ");
    REQUIRE(at != std::string::npos);
    const double lr_max = std::stod(r.out.substr(at + 10));
    CHECK(lr_max == doctest::Approx(2 / (std::stod(scale) * 1.5)).epsilon(1e-12));
  }
  {
    const auto r = cesr_test::run_cesr("stability --method sgd --spectrum powerlaw:d=3,alpha=1,scale=1e300");
    INFO(r.err);
    CHECK(r.code == 0);
  }
  {
    const auto r = cesr_test::run_cesr("stability --method sgd --spectrum loguniform:d=2,kappa=1e300");
    INFO(r.err);
    CHECK(r.code == 0);
  }
  {
    const auto r = cesr_test::run_cesr("stability --method sgd --spectrum powerlaw:d=3,alpha=1,scale=1e308");
    CHECK(r.code == 2);
    CHECK(lines(r.err) == 1);
    CHECK(r.err.find("--spectrum") != std::string::npos);
    CHECK(r.out.empty());
  }
  const auto file = cesr_test::capture_dir() / "q0.json";
  std::ofstream(file) << R"({"P":[[1]],"q":[0],"r":[1],"o":[1]})";
  {
    const auto r = cesr_test::run_cesr("stability --method custom --method-file '" + file.string() +
                                       "' --spectrum powerlaw:d=3,alpha=1");
    INFO(r.err);
    CHECK(r.code == 3);
    CHECK(lines(r.err) == 1);
    CHECK(r.err.find("q = 0") != std::string::npos);
    CHECK(r.out.empty());
  }
}
