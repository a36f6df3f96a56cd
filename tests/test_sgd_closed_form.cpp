// SGD on one direction has the closed form
// L_t = L_0 ((1 - eta lambda)^2 + (K - 1) eta^2 lambda^2 / B)^t.
#include <doctest/doctest.h>

#include "cesr/dynamics.hpp"

#include <cmath>

TEST_CASE("d = 1 SGD follows its closed form") {
  cesr::Spectrum s{{0.7}, {2.0}};
  cesr::MethodSpec m;
  m.kind = cesr::MethodKind::Sgd;
  m.lr = 0.3;
  const cesr::NoiseModel noise{4, 3.0, 0.0};
  const auto curve = cesr::loss_curve<double>(s, cesr::make_method<double>(m), noise, 200, 1);
  const double rho = std::pow(1 - 0.3 * 0.7, 2) + 2 * 0.09 * 0.49 / 4;
  for (std::size_t t = 0; t < curve.loss.size(); ++t)
    CHECK(curve.loss[t] == doctest::Approx(0.7 * std::pow(rho, double(t))).epsilon(1e-13));
}
