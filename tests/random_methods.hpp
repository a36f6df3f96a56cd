// Random rate cases shared by the tests that hold a rate path against another
// (test_rate_hint: warm vs cold solves; test_double_double: the double-double
// certificate vs 50 digits): sgd, heavy ball, Nesterov and AccSGD at random
// step sizes up to 3x the deterministic limit (so some are unstable), batch
// sizes, kurtosis, the last of each spectrum's draws under additive noise.
#pragma once

#include "cesr/dynamics.hpp"
#include "cesr/method.hpp"
#include "cesr/spectrum.hpp"

#include <cmath>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <vector>

namespace cesr_test {

struct RateCase {
  cesr::Spectrum spectrum;
  cesr::MethodSpec method;
  cesr::NoiseModel noise;
};

/// The spread of the draws: per spectrum `draws` rounds of four methods; the
/// batch of round j is 2^(batch_shift (j mod 6)); 1 - momentum is
/// 10^(-beta_decades u), AccSGD's kappa 10^(1 + kappa_decades u) and its xi
/// 1 + xi_span u (u uniform on [0, 1]).
struct RateDraws {
  unsigned seed = 1;
  int draws = 8;
  int batch_shift = 2;
  double beta_decades = 4, kappa_decades = 4, xi_span = 3;
};

/// A spectrum of `d` log-uniform lines (condition number `kappa`) with weights 1, 1.5, 2, 2.5 in turn.
inline cesr::Spectrum weighted_loguniform(int d, double kappa) {
  cesr::Spectrum w = cesr::make_spectrum("loguniform:d=" + std::to_string(d) + ",kappa=" + std::to_string(kappa));
  w.weight.resize(w.lambda.size());
  for (std::size_t i = 0; i < w.weight.size(); ++i) w.weight[i] = 1.0 + static_cast<double>(i % 4) / 2;
  return w;
}

inline std::vector<RateCase> random_rate_cases(const std::vector<cesr::Spectrum>& spectra, const RateDraws& p) {
  std::mt19937_64 rng(p.seed);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::vector<RateCase> out;
  for (const cesr::Spectrum& s : spectra) {
    const double L = s.lambda_max();
    for (int j = 0; j < p.draws; ++j) {
      cesr::NoiseModel noise{static_cast<std::uint64_t>(1) << (p.batch_shift * (j % 6)), 1.5 + 2 * unit(rng), 0.0};
      if (j == p.draws - 1) noise.model = cesr::NoiseKind::Additive;
      const double lr = 3 * std::pow(10.0, -3 * unit(rng)) / L;
      const double beta = 1 - std::pow(10.0, -p.beta_decades * unit(rng));
      out.push_back({s, cesr::method_spec("sgd", {{"lr", lr}}), noise});
      out.push_back({s, cesr::method_spec("hb", {{"lr", lr * (1 - beta)}, {"momentum", beta}}), noise});
      out.push_back({s, cesr::method_spec("nag", {{"lr", lr / 2}, {"momentum", beta}}), noise});
      out.push_back({s,
                     cesr::method_spec("asgd", {{"lr", lr * L / 2},
                                                {"kappa", std::pow(10.0, 1 + p.kappa_decades * unit(rng))},
                                                {"xi", 1 + p.xi_span * unit(rng)}}),
                     noise});
    }
  }
  // Drop what is not a valid method (AccSGD's xi above sqrt(kappa), ...): drawn
  // all the same, so the cases that stay do not depend on which were dropped.
  std::erase_if(out, [](const RateCase& c) {
    try {
      c.method.validate();
      return false;
    } catch (const std::invalid_argument&) {
      return true;
    }
  });
  return out;
}

}  // namespace cesr_test
