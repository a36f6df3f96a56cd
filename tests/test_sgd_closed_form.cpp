// Closed forms and limits of the exact loss curve:
// - d = 1 SGD: the second moment obeys m' = rho m + eta^2 lambda sigma^2 / B with
//   rho = (1 - eta lambda)^2 + (K - 1) eta^2 lambda^2 / B, so
//   L_t = lambda/2 (rho^t (m_0 - m_inf) + m_inf), m_inf = eta^2 lambda sigma^2 / (B (1 - rho));
// - B -> infinity: the method becomes deterministic; the loss of gradient
//   descent / heavy ball / AccSGD is computed from the iterates themselves
//   (closed form for GD and HB, the authors' update written out for AccSGD);
// - heavy ball and Nesterov with beta = 0 are SGD (k = 2 code path vs k = 1).
#include <doctest/doctest.h>

#include "method_specs.hpp"
#include "cesr/dynamics.hpp"

#include <cmath>
#include <complex>
#include <vector>

namespace {

using cesr::MethodSpec;
using cesr::NoiseModel;
using cesr::Spectrum;

using cesr_test::spec_of;

// Batch so large that the sampling noise (relative size ~ tr(H) eta / B per
// step) is far below double rounding over a few hundred steps.
constexpr std::uint64_t huge_batch = 1'000'000'000'000'000;  // 1e15

const Spectrum deterministic_problem{{1.0, 0.6, 0.25, 0.07, 0.01}, {1.0, 0.5, 2.0, 1.5, 3.0}};

}  // namespace

TEST_CASE("d = 1 SGD follows its closed form") {
  for (const double K : {3.0, 1.0, 5.0}) {
    for (const std::uint64_t B : {1u, 4u, 64u}) {
      for (const double s2 : {0.0, 0.25}) {
        CAPTURE(K);
        CAPTURE(B);
        CAPTURE(s2);
        const double lambda = 0.7, eta = 0.3, m0 = 2.0;
        const Spectrum s{{lambda}, {m0}};
        const NoiseModel noise{B, K, s2};
        const auto curve = cesr::loss_curve<double>(s, cesr::make_method<double>(spec_of("sgd", eta)),
                                                    noise, 200, 1);
        const double rho = std::pow(1 - eta * lambda, 2) + (K - 1) * eta * eta * lambda * lambda / double(B);
        const double m_inf = eta * eta * lambda * s2 / (double(B) * (1 - rho));
        REQUIRE(curve.loss.size() == 201);
        for (std::size_t t = 0; t < curve.loss.size(); ++t) {
          const double want = lambda / 2 * (std::pow(rho, double(t)) * (m0 - m_inf) + m_inf);
          CHECK(curve.loss[t] == doctest::Approx(want).epsilon(1e-13));
        }
      }
    }
  }
}

TEST_CASE("d = 1 SGD with rho > 1 diverges where the closed form passes the largest double") {
  const double lambda = 1.0, eta = 1.9;  // rho = 0.81 + 2 * 3.61 = 8.03 at B = 1
  const Spectrum s{{lambda}, {1.0}};
  const double rho = std::pow(1 - eta * lambda, 2) + 2 * eta * eta * lambda * lambda;
  const auto curve = cesr::loss_curve<double>(s, cesr::make_method<double>(spec_of("sgd", eta)),
                                              NoiseModel{1, 3.0, 0.0}, 1000, 1);
  REQUIRE(curve.diverged_at);
  // First t with 1/2 rho^t > DBL_MAX.
  const auto first = static_cast<std::uint64_t>(
      std::floor((std::log(cesr::divergence_threshold) + std::log(2.0)) / std::log(rho)) + 1);
  CHECK(*curve.diverged_at == first);
  CHECK(curve.step.size() == first);
}

TEST_CASE("B -> infinity: gradient descent and heavy ball follow their deterministic closed forms") {
  const Spectrum& sp = deterministic_problem;
  const NoiseModel noise{huge_batch, 3.0, 0.0};
  constexpr int steps = 300;
  SUBCASE("gradient descent: e_t = (1 - eta lambda)^t e_0") {
    const double eta = 1.2;
    const auto curve = cesr::loss_curve<double>(sp, cesr::make_method<double>(spec_of("sgd", eta)),
                                                noise, steps, 1);
    for (int t = 0; t <= steps; ++t) {
      double L = 0;
      for (std::size_t i = 0; i < sp.dim(); ++i)
        L += 0.5 * sp.lambda[i] * sp.init[i] * std::pow(1 - eta * sp.lambda[i], 2.0 * t);
      CHECK(curve.loss[t] == doctest::Approx(L).epsilon(1e-12));
    }
  }
  SUBCASE("heavy ball: e_t = c1 z1^t + c2 z2^t, z^2 - (1 + beta - eta lambda) z + beta = 0, e_-1 = e_0") {
    for (const double beta : {0.3, 0.8}) {
      const double eta = 0.9;
      const auto curve = cesr::loss_curve<double>(
          sp, cesr::make_method<double>(spec_of("hb", eta, beta)), noise, steps, 1);
      using C = std::complex<double>;
      std::vector<C> z1, z2, c1, c2;
      for (std::size_t i = 0; i < sp.dim(); ++i) {
        const double p = 1 + beta - eta * sp.lambda[i];
        const C root = std::sqrt(C(p * p - 4 * beta));
        const C a = (p + root) / 2.0, b = (p - root) / 2.0;
        REQUIRE(std::abs(a - b) > 1e-3);  // distinct roots
        // c1 + c2 = e0, c1/a + c2/b = e0 (e_{-1} = e_0) with e0 = sqrt(init)
        const double e0 = std::sqrt(sp.init[i]);
        const C ca = e0 * (1.0 - 1.0 / b) / (1.0 / a - 1.0 / b);
        z1.push_back(a);
        z2.push_back(b);
        c1.push_back(ca);
        c2.push_back(e0 - ca);
      }
      for (int t = 0; t <= steps; ++t) {
        double L = 0;
        for (std::size_t i = 0; i < sp.dim(); ++i) {
          const double e = std::real(c1[i] * std::pow(z1[i], t) + c2[i] * std::pow(z2[i], t));
          L += 0.5 * sp.lambda[i] * e * e;
        }
        CAPTURE(beta);
        CAPTURE(t);
        CHECK(curve.loss[t] == doctest::Approx(L).epsilon(1e-10));
      }
      CHECK(curve.loss.back() < 1e-4 * curve.loss.front());
    }
  }
}

TEST_CASE("B -> infinity: Nesterov and heavy ball equal their deterministic iterations on a vector") {
  const Spectrum& sp = deterministic_problem;
  const NoiseModel noise{huge_batch, 3.0, 0.0};
  constexpr int steps = 250;
  const double eta = 0.8, beta = 0.7;
  for (const bool nesterov : {false, true}) {
    CAPTURE(nesterov);
    const auto curve = cesr::loss_curve<double>(
        sp, cesr::make_method<double>(spec_of(nesterov ? "nag" : "hb", eta, beta)),
        noise, steps, 1);
    std::vector<double> e(sp.dim()), prev(sp.dim());
    for (std::size_t i = 0; i < sp.dim(); ++i) e[i] = prev[i] = std::sqrt(sp.init[i]);
    for (int t = 0; t <= steps; ++t) {
      double L = 0;
      for (std::size_t i = 0; i < sp.dim(); ++i) L += 0.5 * sp.lambda[i] * e[i] * e[i];
      CHECK(curve.loss[t] == doctest::Approx(L).epsilon(1e-11));
      for (std::size_t i = 0; i < sp.dim(); ++i) {
        const double y = e[i] + beta * (e[i] - prev[i]);
        const double next = nesterov ? y - eta * sp.lambda[i] * y : e[i] - eta * sp.lambda[i] * e[i] + beta * (e[i] - prev[i]);
        prev[i] = e[i];
        e[i] = next;
      }
    }
  }
}

TEST_CASE("B -> infinity: AccSGD equals the authors' optimizer step written out on a parameter vector") {
  // Kidambi et al. (2018), AccSGD.step, in parameter coordinates w with
  // gradient g = H (w - w*); the buffer starts as a copy of w:
  //   large_lr = lr kappa / c,  Alpha = 1 - c^2 xi / kappa,  Beta = 1 - Alpha,
  //   zeta = c / (c + Beta)
  //   buf *= 1/Beta - 1;  buf += -large_lr g;  buf += w;  buf *= Beta
  //   w += -lr g;  w *= zeta;  w += (1 - zeta) buf
  const Spectrum& sp = deterministic_problem;
  const NoiseModel noise{huge_batch, 3.0, 0.0};
  constexpr int steps = 300;
  for (const auto& [lr, kappa, xi, c] : {std::tuple{0.5, 20.0, 3.0, 0.7}, std::tuple{0.9, 100.0, 10.0, 0.7},
                                         std::tuple{0.3, 5.0, 1.0, 0.5}}) {
    MethodSpec spec;
    spec = cesr::method_spec("asgd", {{"lr", lr}, {"kappa", kappa}, {"xi", xi}, {"small_const", c}});
    CAPTURE(cesr::describe(spec));
    const auto curve = cesr::loss_curve<double>(sp, cesr::make_method<double>(spec), noise, steps, 1);
    std::vector<double> w_star{0.3, -1.0, 2.0, 0.5, -0.7}, w(sp.dim()), buf(sp.dim());
    for (std::size_t i = 0; i < sp.dim(); ++i) buf[i] = w[i] = w_star[i] + std::sqrt(sp.init[i]);
    const double large_lr = lr * kappa / c, Alpha = 1.0 - c * c * xi / kappa, Beta = 1.0 - Alpha;
    const double zeta = c / (c + Beta);
    for (int t = 0; t <= steps; ++t) {
      double L = 0;
      for (std::size_t i = 0; i < sp.dim(); ++i) L += 0.5 * sp.lambda[i] * (w[i] - w_star[i]) * (w[i] - w_star[i]);
      CHECK(curve.loss[t] == doctest::Approx(L).epsilon(1e-10));
      for (std::size_t i = 0; i < sp.dim(); ++i) {
        const double g = sp.lambda[i] * (w[i] - w_star[i]);
        buf[i] *= 1.0 / Beta - 1.0;
        buf[i] += -large_lr * g;
        buf[i] += w[i];
        buf[i] *= Beta;
        w[i] += -lr * g;
        w[i] *= zeta;
        w[i] += (1.0 - zeta) * buf[i];
      }
    }
    CHECK(curve.loss.back() < 1e-2 * curve.loss.front());
  }
}

TEST_CASE("heavy ball and Nesterov with beta = 0 are SGD") {
  const Spectrum sp = cesr::make_spectrum("powerlaw:d=50,alpha=1.3", "powerlaw:beta=0.4");
  for (const double K : {3.0, 1.0}) {
    for (const double s2 : {0.0, 0.5}) {
      const NoiseModel noise{3, K, s2};
      const auto sgd = cesr::loss_curve<double>(sp, cesr::make_method<double>(spec_of("sgd", 0.7)), noise,
                                                500, 1);
      for (const auto kind : {"hb", "nag"}) {
        CAPTURE(kind);
        CAPTURE(K);
        CAPTURE(s2);
        const auto mom = cesr::loss_curve<double>(sp, cesr::make_method<double>(spec_of(kind, 0.7, 0.0)), noise,
                                                  500, 1);
        REQUIRE(mom.loss.size() == sgd.loss.size());
        double worst = 0;
        for (std::size_t t = 0; t < sgd.loss.size(); ++t)
          worst = std::max(worst, std::abs(mom.loss[t] / sgd.loss[t] - 1));
        CHECK(worst <= 1e-13);
      }
      CHECK(sgd.loss.back() < 0.5 * sgd.loss.front());
    }
  }
}
