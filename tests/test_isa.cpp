// The rate's kernels in every instruction set this CPU runs
// (include/cesr/isa.hpp): the same bits as the baseline (SSE2) variant for
// the gap and its gradient, on spectra whose length is and is not a multiple
// of the eight lanes and of a chunk, weighted and not, k = 1 and k = 2; and
// the double gap (kernels) against the long-double one (the template loop of
// src/rate.cpp, another code path) to the accuracy of double. The same for
// the time step of Dynamics<double> (k = 1, k = 2), against long-double stepping.
#include <doctest/doctest.h>

#include "cesr/dynamics.hpp"
#include "cesr/isa.hpp"
#include "cesr/parallel.hpp"
#include "cesr/rate.hpp"

#include <cmath>
#include <random>
#include <string>
#include <vector>

using namespace cesr;

namespace {

struct Case {
  Spectrum spectrum;
  MethodSpec method;
  NoiseModel noise;
};

// lr and momentum at a fraction of the stable range (relative to lambda_max).
std::vector<Case> cases() {
  std::vector<Spectrum> spectra = {make_spectrum("powerlaw:d=100003,alpha=1.5"), make_spectrum("loguniform:d=13,kappa=1e4"),
                                   make_spectrum("powerlaw:d=65536,alpha=0.8")};
  {
    Spectrum w = make_spectrum("loguniform:d=40001,kappa=1e5");
    w.weight.resize(w.lambda.size());
    for (std::size_t i = 0; i < w.weight.size(); ++i) w.weight[i] = i == 5 ? 2.5 : 1.0 + static_cast<double>(i % 3);
    spectra.push_back(w);
  }
  std::mt19937_64 rng(14);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::vector<Case> out;
  for (const Spectrum& s : spectra) {
    const double L = s.lambda_max();
    for (int j = 0; j < 4; ++j) {
      const NoiseModel noise{std::uint64_t(j % 2 ? 1 : 64), j < 2 ? 3.0 : 1.5, 0.0};
      const double lr = std::pow(10.0, -2 * unit(rng)) / L;
      out.push_back({s, method_spec("sgd", {{"lr", lr}}), noise});
      const double beta = 1 - std::pow(10.0, -3 * unit(rng));
      out.push_back({s, method_spec("hb", {{"lr", lr * (1 - beta)}, {"momentum", beta}}), noise});
      out.push_back({s, method_spec("nag", {{"lr", lr}, {"momentum", beta}}), noise});
      out.push_back({s, method_spec("asgd", {{"lr", lr * L}, {"kappa", 1e3 * (1 + unit(rng))}, {"xi", 10.0}}), noise});
    }
  }
  return out;
}

struct Answer {
  Rate<double> rate;
  std::vector<double> gradient;
};

Answer answer(const Case& c) {
  Answer a;
  a.rate = contraction_rate<double>(c.spectrum, c.method, c.noise);
  // The gradient along lr (a relative step of 1e-6 each way).
  MethodSpec plus = c.method, minus = c.method;
  const double lr = c.method.value("lr");
  plus.set("lr", lr * (1 + 1e-6));
  minus.set("lr", lr * (1 - 1e-6));
  a.gradient = contraction_rate_gradient(c.spectrum, c.method, {plus}, {minus}, 1e-6 * lr, c.noise).gradient;
  return a;
}

}  // namespace

TEST_CASE("every instruction set of the kernels gives the baseline's bits") {
  const Isa saved = kernel_isa();
  const std::vector<Case> all = cases();
  set_kernel_isa(Isa::Baseline);
  std::vector<Answer> base;
  for (const Case& c : all) base.push_back(answer(c));
  int stable = 0, with_gradient = 0;
  for (const Answer& a : base) stable += a.rate.stable, with_gradient += !a.gradient.empty();
  CHECK(stable > static_cast<int>(all.size()) / 2);  // the cases reach the interesting (stable) branch
  CHECK(with_gradient > static_cast<int>(all.size()) / 2);
  int compared = 0;
  for (Isa isa : {Isa::Avx2, Isa::Avx512}) {
    if (!isa_supported(isa)) continue;
    set_kernel_isa(isa);
    for (unsigned threads : {1u, 2u}) {
      const KernelThreads scope(threads);
      for (std::size_t i = 0; i < all.size(); ++i) {
        CAPTURE(to_string(isa));
        CAPTURE(describe(all[i].method));
        CAPTURE(all[i].spectrum.lambda.size());
        const Answer a = answer(all[i]);
        CHECK(a.rate.gap == base[i].rate.gap);  // bitwise (NaN never: the gap is finite or -inf)
        CHECK(a.rate.stable == base[i].rate.stable);
        CHECK(a.rate.evaluations == base[i].rate.evaluations);
        REQUIRE(a.gradient.size() == base[i].gradient.size());
        for (std::size_t j = 0; j < a.gradient.size(); ++j) CHECK(a.gradient[j] == base[i].gradient[j]);
        ++compared;
      }
    }
  }
  set_kernel_isa(saved);
  MESSAGE("compared ", compared, " answers against the baseline (best ISA here: ", to_string(best_isa()), ")");
}

TEST_CASE("the kernels' double gap agrees with the long-double loop to the accuracy of double") {
  int checked = 0;
  for (const Case& c : cases()) {
    const Rate<double> d = contraction_rate<double>(c.spectrum, c.method, c.noise);
    const Rate<long double> l = contraction_rate<long double>(c.spectrum, c.method, c.noise);
    CAPTURE(describe(c.method));
    CAPTURE(c.spectrum.lambda.size());
    CHECK(d.stable == l.stable);
    if (!d.stable || !l.stable) continue;
    CHECK(d.gap == doctest::Approx(static_cast<double>(l.gap)).epsilon(1e-9));
    ++checked;
  }
  CHECK(checked > 20);
}

TEST_CASE("set_kernel_isa refuses what the CPU does not run") {
  CHECK(isa_supported(Isa::Baseline));
  CHECK(isa_supported(best_isa()));
  for (Isa isa : {Isa::Avx2, Isa::Avx512})
    if (!isa_supported(isa)) CHECK_THROWS_AS(set_kernel_isa(isa), std::invalid_argument);
}

namespace {

// L_t at a few steps by double time stepping (the kernels for k = 1, 2).
std::vector<double> stepped_losses(const Case& c, const std::vector<std::uint64_t>& ts) {
  Dynamics<double> dyn(c.spectrum, make_path<double>(c.method), c.noise);
  std::vector<double> out;
  for (std::uint64_t t : ts) {
    dyn.advance(t - dyn.time());
    out.push_back(dyn.loss());
  }
  return out;
}

// Time-stepping cases: spectra of 13 and 1001 lines (a tail of 5 past the
// eight lanes) and a weighted one; o != r (nag) and o = r; label noise; the
// additive model with its own covariance (the weighted injection).
std::vector<Case> step_cases() {
  std::vector<Spectrum> spectra = {make_spectrum("loguniform:d=13,kappa=1e4"),
                                   make_spectrum("powerlaw:d=1001,alpha=1.2")};
  {
    Spectrum w = make_spectrum("loguniform:d=203,kappa=1e3");
    w.weight.resize(w.lambda.size());
    for (std::size_t i = 0; i < w.weight.size(); ++i) w.weight[i] = i == 7 ? 0.25 : 1.0 + static_cast<double>(i % 4);
    spectra.push_back(w);
  }
  std::vector<Case> out;
  for (const Spectrum& s : spectra) {
    const double tr = s.trace();  // the noise's scale: stable step sizes are ~ B / tr H
    const NoiseModel noise{2, 3.0, 0.01};
    out.push_back({s, method_spec("sgd", {{"lr", 0.3 / tr}}), noise});
    out.push_back({s, method_spec("hb", {{"lr", 0.02 / tr}, {"momentum", 0.95}}), noise});
    out.push_back({s, method_spec("nag", {{"lr", 0.1 / tr}, {"momentum", 0.9}}), NoiseModel{1, 1.5, 0.0}});
    out.push_back({s, method_spec("asgd", {{"lr", 0.5 * s.lambda_max() / tr}, {"kappa", 300.0}, {"xi", 10.0}}), noise});
  }
  {
    Spectrum s = make_spectrum("loguniform:d=29,kappa=1e2");
    s.noise_covariance.assign(s.lambda.size(), 0.5);
    NoiseModel additive{4, 3.0, 0.0};
    additive.model = NoiseKind::Additive;
    out.push_back({s, method_spec("hb", {{"lr", 0.1}, {"momentum", 0.8}}), additive});
    out.push_back({s, method_spec("sgd", {{"lr", 0.4}}), additive});
  }
  return out;
}

}  // namespace

TEST_CASE("time stepping in every instruction set gives the baseline's bits, and long double's losses") {
  const Isa saved = kernel_isa();
  const std::vector<std::uint64_t> ts{1, 2, 10, 333, 2000};
  const std::vector<Case> all = step_cases();
  set_kernel_isa(Isa::Baseline);
  std::vector<std::vector<double>> base;
  for (const Case& c : all) base.push_back(stepped_losses(c, ts));
  int compared = 0;
  for (Isa isa : {Isa::Avx2, Isa::Avx512}) {
    if (!isa_supported(isa)) continue;
    set_kernel_isa(isa);
    for (std::size_t i = 0; i < all.size(); ++i) {
      CAPTURE(to_string(isa));
      CAPTURE(describe(all[i].method));
      CAPTURE(all[i].spectrum.lambda.size());
      const std::vector<double> l = stepped_losses(all[i], ts);
      for (std::size_t j = 0; j < ts.size(); ++j) CHECK(l[j] == base[i][j]);  // bitwise
      ++compared;
    }
  }
  set_kernel_isa(saved);
  // Long double runs the template loop of src/dynamics.cpp, not the kernels.
  for (std::size_t i = 0; i < all.size(); ++i) {
    CAPTURE(describe(all[i].method));
    CAPTURE(all[i].spectrum.lambda.size());
    Dynamics<long double> dyn(all[i].spectrum, make_path<long double>(all[i].method), all[i].noise);
    for (std::size_t j = 0; j < ts.size(); ++j) {
      dyn.advance(ts[j] - dyn.time());
      const double ref = static_cast<double>(dyn.loss());
      CHECK(ref > 0);
      CHECK(std::abs(base[i][j] - ref) <= 1e-11 * ref);
    }
  }
  MESSAGE("compared ", compared, " time-stepped runs against the baseline (best ISA here: ", to_string(best_isa()),
          ")");
}
