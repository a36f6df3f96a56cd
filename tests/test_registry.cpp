// Every registry row, through the engine, against independent routes
// (tests/oracle.hpp, written without the engine's code):
//   - the exact loss of each row and of random custom k = 3, 4 methods (constant
//     and time-varying) against the dense Kronecker oracle on all k^2 d entries;
//   - the row's coefficients against the oracle's own hand derivation of each
//     published update (both run through the dense oracle);
//   - the hand-specialised k = 1, 2 kernels against the generic kernel;
//   - the rate of k = 3, 4 methods against the dense operator's spectral radius,
//     in double and 50 digits, and the generic rate against the k <= 2 closed forms;
//   - the exact loss against a Monte Carlo of each published update on vectors.
#include <doctest/doctest.h>

#include "oracle.hpp"

#include "cesr/dynamics.hpp"
#include "cesr/method.hpp"
#include "cesr/rate.hpp"

#include <cmath>
#include <random>
#include <string>
#include <vector>

namespace {

using cesr::MethodPath;
using cesr::MethodSpec;
using cesr::NoiseModel;
using cesr::Spectrum;
using LD = long double;

const Spectrum problem{{1.0, 0.55, 0.3, 0.17, 0.09, 0.05}, {1.0, 2.0, 0.5, 1.0, 1.5, 0.8}};

std::vector<LD> ld(const std::vector<double>& v) { return {v.begin(), v.end()}; }

oracle::Coeffs to_oracle(const cesr::Method<double>& m) {
  oracle::Coeffs c{m.k, oracle::Mat(m.k, m.k), oracle::Vec(m.k), oracle::Vec(m.k), oracle::Vec(m.k)};
  for (int a = 0; a < m.k; ++a) {
    c.q(a) = m.q[a];
    c.r(a) = m.r[a];
    c.o(a) = m.o[a];
    for (int b = 0; b < m.k; ++b) c.P(a, b) = m.P[a][b];
  }
  return c;
}

/// The dense oracle's loss curve for a cesr path (its coefficients as data).
std::vector<LD> oracle_curve(const MethodPath<double>& path, const NoiseModel& n, std::uint64_t steps) {
  oracle::Vec s0(path.initial.k);
  for (int a = 0; a < path.initial.k; ++a) s0(a) = path.initial.s0[a];
  return oracle::dense_loss(ld(problem.lambda), ld(problem.init), s0, n.kurtosis, n.label_noise,
                            oracle::constant_batch(n.batch),
                            [&](std::uint64_t t) { return to_oracle(path.coefficients(t)); }, steps);
}

std::vector<LD> oracle_curve(const oracle::Method& m, const NoiseModel& n, std::uint64_t steps) {
  return oracle::dense_loss(ld(problem.lambda), ld(problem.init), m.s0, n.kurtosis, n.label_noise,
                            oracle::constant_batch(n.batch), m.coeffs, steps);
}

double worst_relative(const std::vector<LD>& a, const std::vector<LD>& b) {
  REQUIRE(a.size() == b.size());
  double worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    worst = std::max(worst, static_cast<double>(std::abs(a[i] / b[i] - 1)));
  return worst;
}

template <class Real>
std::vector<LD> engine_curve(const MethodPath<Real>& path, const NoiseModel& n, std::uint64_t steps,
                             cesr::Kernel kernel = cesr::Kernel::Auto) {
  cesr::Dynamics<Real> dyn(problem, path, n, kernel);
  std::vector<LD> out{static_cast<LD>(cesr::to_double(dyn.loss()))};
  for (std::uint64_t t = 0; t < steps; ++t) {
    dyn.step();
    if constexpr (std::is_same_v<Real, cesr::mp50>) out.push_back(dyn.loss().template convert_to<LD>());
    else out.push_back(static_cast<LD>(dyn.loss()));
  }
  return out;
}

/// Every registry row with one set of hyperparameters each (stable on `problem`),
/// with and without averaging, and the oracle's own derivation of its update.
struct Case {
  MethodSpec spec;
  oracle::Method independent;
};

std::vector<Case> cases() {
  const auto spec = [](const char* name, std::initializer_list<std::pair<std::string_view, double>> v,
                       const char* average = "") {
    MethodSpec s = cesr::method_spec(name, v);
    s.average = cesr::parse_average(average);
    s.validate();
    return s;
  };
  std::vector<Case> out;
  out.push_back({spec("sgd", {{"lr", 0.5}}), oracle::coeffs_sgd(0.5L)});
  out.push_back({spec("hb", {{"lr", 0.3}, {"momentum", 0.6}}), oracle::coeffs_heavy_ball(0.3L, 0.6L)});
  out.push_back({spec("nag", {{"lr", 0.3}, {"momentum", 0.6}}), oracle::coeffs_nesterov(0.3L, 0.6L)});
  out.push_back({spec("torch-sgd", {{"lr", 0.2}, {"momentum", 0.8}, {"dampening", 0.5}}),
                 oracle::coeffs_torch_sgd(0.2L, 0.8L, 0.5L, false)});
  out.push_back({spec("torch-sgd", {{"lr", 0.1}, {"momentum", 0.8}, {"nesterov", 1}}),
                 oracle::coeffs_torch_sgd(0.1L, 0.8L, 0.0L, true)});
  out.push_back({spec("qhm", {{"lr", 0.5}, {"momentum", 0.9}, {"nu", 0.7}}), oracle::coeffs_qhm(0.5L, 0.9L, 0.7L)});
  out.push_back({spec("schedule-free", {{"lr", 0.5}, {"momentum", 0.9}}), oracle::coeffs_schedule_free(0.5L, 0.9L)});
  out.push_back({spec("lookahead", {{"lr", 0.5}, {"sync", 4}, {"slow_step", 0.5}}),
                 oracle::coeffs_lookahead_sgd(0.5L, 4, 0.5L)});
  out.push_back({spec("lookahead", {{"lr", 0.2}, {"sync", 3}, {"slow_step", 0.6}, {"inner", 1}, {"momentum", 0.7}}),
                 oracle::coeffs_lookahead_torch_sgd(0.2L, 0.7L, 3, 0.6L)});
  out.push_back({spec("hb", {{"lr", 0.3}, {"momentum", 0.6}}, "ema:decay=0.9"),
                 oracle::coeffs_ema(oracle::coeffs_heavy_ball(0.3L, 0.6L), 0.9L)});
  out.push_back({spec("sgd", {{"lr", 0.5}}, "polyak"), oracle::coeffs_polyak(oracle::coeffs_sgd(0.5L))});
  out.push_back({spec("torch-sgd", {{"lr", 0.2}, {"momentum", 0.8}, {"dampening", 0.5}}, "tail:start=7"),
                 oracle::coeffs_tail(oracle::coeffs_torch_sgd(0.2L, 0.8L, 0.5L, false), 7)});
  out.push_back({spec("qhm", {{"lr", 0.5}, {"momentum", 0.9}, {"nu", 0.7}}, "tail:start=1"),
                 oracle::coeffs_tail(oracle::coeffs_qhm(0.5L, 0.9L, 0.7L), 1)});
  return out;
}

/// A random k-state method near the stable range (P a contraction-ish
/// perturbation of the identity, q and r of order one), possibly varying:
/// its coefficients then change every step (a tiny sinusoidal wobble).
MethodPath<double> random_method(std::mt19937_64& rng, int k, bool varying) {
  std::uniform_real_distribution<double> U(-1, 1);
  cesr::Method<double> m;
  m.k = k;
  for (int a = 0; a < k; ++a) {
    for (int b = 0; b < k; ++b) m.P[a][b] = (a == b ? 0.85 : 0.0) + 0.08 * U(rng);
    m.q[a] = 0.3 * (a == 0 ? 1.0 : U(rng));
    m.r[a] = a == 0 ? 1.0 : 0.3 * U(rng);
    m.o[a] = a == 0 ? 1.0 : 0.5 * U(rng);
    m.s0[a] = a == 0 ? 1.0 : U(rng);
  }
  MethodPath<double> path(m);
  if (varying) {
    const cesr::Method<double> base = m;
    path.at = [base](std::uint64_t t, cesr::Method<double>& c) {
      c = base;
      const double w = 1 + 0.2 * std::sin(0.37 * static_cast<double>(t));
      for (int a = 0; a < base.k; ++a) c.q[a] = base.q[a] * w;
      c.P[0][0] = base.P[0][0] - 0.05 * std::cos(0.11 * static_cast<double>(t));
      c.r[base.k - 1] = base.r[base.k - 1] * w;
    };
    path.constant_from = std::nullopt;
  }
  return path;
}

}  // namespace

TEST_CASE("every registry row: the engine equals the dense oracle, and the row equals the published update") {
  double worst_engine = 0, worst_rows = 0;
  for (const Case& c : cases())
    for (const double K : {1.0, 3.0})
      for (const double sigma2 : {0.0, 0.3}) {
        const NoiseModel n{3, K, sigma2};
        const auto path = cesr::make_path<double>(c.spec);
        const auto dense = oracle_curve(path, n, 300);
        const auto engine = engine_curve(path, n, 300);
        const auto published = oracle_curve(c.independent, n, 300);
        INFO(cesr::describe(c.spec), " K=", K, " sigma2=", sigma2);
        const double e = worst_relative(engine, dense), r = worst_relative(dense, published);
        CHECK(e <= 1e-12);
        CHECK(r <= 1e-12);
        worst_engine = std::max(worst_engine, e);
        worst_rows = std::max(worst_rows, r);
      }
  MESSAGE("engine vs dense oracle: ", worst_engine, "; registry rows vs hand-derived updates: ", worst_rows);
}

TEST_CASE("random custom methods with k = 1..4 states, constant and time-varying, against the dense oracle") {
  std::mt19937_64 rng(20261201);
  double worst = 0;
  for (int k = 1; k <= 4; ++k)
    for (const bool varying : {false, true})
      for (int trial = 0; trial < 3; ++trial) {
        const auto path = random_method(rng, k, varying);
        for (const double K : {1.0, 3.0}) {
          const NoiseModel n{2, K, trial == 1 ? 0.2 : 0.0};
          const double e = worst_relative(engine_curve(path, n, 250), oracle_curve(path, n, 250));
          INFO("k=", k, " varying=", varying, " K=", K);
          CHECK(e <= 1e-12);
          worst = std::max(worst, e);
        }
      }
  MESSAGE("custom k = 1..4 vs dense oracle: worst relative error ", worst);
}

/// The worst relative difference over 500 steps between the hand-specialised
/// kernels (Kernel::Auto) and the generic one on each path, each within tol.
template <class Real>
double fast_vs_generic(const std::vector<MethodPath<Real>>& paths, double tol) {
  double worst = 0;
  for (const auto& path : paths) {
    const NoiseModel n{5, 3.0, 0.1};
    const double e = worst_relative(engine_curve(path, n, 500, cesr::Kernel::Auto),
                                    engine_curve(path, n, 500, cesr::Kernel::Generic));
    CHECK(e <= tol);
    worst = std::max(worst, e);
  }
  return worst;
}

TEST_CASE("the hand-specialised k = 1 and k = 2 kernels equal the generic kernel") {
  std::mt19937_64 rng(7);
  std::vector<MethodPath<double>> paths;
  for (const Case& c : cases())
    if (cesr::make_path<double>(c.spec).initial.k <= 2) paths.push_back(cesr::make_path<double>(c.spec));
  for (int k = 1; k <= 2; ++k) paths.push_back(random_method(rng, k, true));
  MESSAGE("fast vs generic kernel: ", fast_vs_generic(paths, 1e-13));
}

TEST_CASE("the long double k = 1 and k = 2 kernels equal the generic kernel") {
  // The long double step has its own fast path for r = r' = (1, 0) (heavy
  // ball, AccSGD, QHM), next to the general one (NAG, custom k = 2 methods).
  std::vector<MethodPath<LD>> paths;
  int first_state = 0;
  for (const Case& c : cases()) {
    auto path = cesr::make_path<LD>(c.spec);
    if (path.initial.k > 2) continue;
    if (path.initial.k == 2 && path.initial.r[0] == 1 && path.initial.r[1] == 0) ++first_state;
    paths.push_back(std::move(path));
  }
  CHECK(first_state >= 2);
  MESSAGE("long double fast vs generic kernel: ", fast_vs_generic(paths, 1e-16));
}

TEST_CASE("50 digits and double agree on a k = 4 method") {
  std::mt19937_64 rng(11);
  const auto path = random_method(rng, 4, true);
  MethodPath<cesr::mp50> wide(path.initial.cast<cesr::mp50>());
  wide.at = [path](std::uint64_t t, cesr::Method<cesr::mp50>& m) { m = path.coefficients(t).cast<cesr::mp50>(); };
  wide.constant_from = std::nullopt;
  const NoiseModel n{2, 3.0, 0.0};
  CHECK(worst_relative(engine_curve(path, n, 300), engine_curve(wide, n, 300)) <= 1e-13);
}

TEST_CASE("rate of k = 3 and k = 4 methods: the secular root equals the dense operator's spectral radius") {
  std::mt19937_64 rng(424242);
  int stable = 0, unstable = 0;
  double worst_double = 0, worst_mp = 0;
  for (int k = 3; k <= 4; ++k)
    for (int trial = 0; trial < 12; ++trial) {
      MethodPath<double> path = random_method(rng, k, false);
      // Spread the cases over stable and unstable ones.
      for (int a = 0; a < k; ++a) path.initial.q[a] *= 0.5 + 2.5 * (trial % 4) / 3.0;
      const std::uint64_t B = trial % 3 == 0 ? 1 : 8;
      const NoiseModel n{B, trial % 2 ? 1.0 : 3.0, 0.0};
      const LD dense = oracle::dense_rho(ld(problem.lambda), n.kurtosis, B, to_oracle(path.initial));
      const auto rd = cesr::contraction_rate<double>(problem, path.initial, n);
      const auto rm = cesr::contraction_rate<cesr::mp50>(problem, path.initial.cast<cesr::mp50>(), n);
      INFO("k=", k, " trial=", trial, " dense rho=", static_cast<double>(dense));
      const double ed = std::abs(rd.rho - static_cast<double>(dense)) / static_cast<double>(dense);
      const double em = static_cast<double>(std::abs(rm.rho.convert_to<LD>() - dense) / dense);
      CHECK(ed <= 1e-10);
      CHECK(em <= 1e-14);
      CHECK(rd.stable == (dense < 1));
      CHECK(rm.stable == (dense < 1));
      (dense < 1 ? stable : unstable)++;
      worst_double = std::max(worst_double, ed);
      worst_mp = std::max(worst_mp, em);
    }
  CHECK(stable >= 5);
  CHECK(unstable >= 3);
  MESSAGE("k = 3, 4 rate vs dense operator: double ", worst_double, ", mp50 ", worst_mp, " (", stable, " stable, ",
          unstable, " unstable)");
}

TEST_CASE("the generic rate equals the k <= 2 closed-form path (50 digits)") {
  for (const Case& c : cases()) {
    if (c.spec.time() == cesr::Time::Varying) continue;
    const auto m = cesr::make_method<cesr::mp50>(c.spec);
    if (m.k > 2) continue;
    for (const std::uint64_t B : {1u, 16u}) {
      const NoiseModel n{B, B == 1 ? 1.0 : 3.0, 0.0};
      const auto closed = cesr::contraction_rate<cesr::mp50>(problem, m, n);
      const auto generic = cesr::contraction_rate_generic<cesr::mp50>(problem, m, n);
      INFO(cesr::describe(c.spec), " B=", B);
      CHECK(closed.stable == generic.stable);
      CHECK(abs(closed.rho - generic.rho) <= cesr::mp50("1e-40"));
    }
  }
}

TEST_CASE("a method constant after its first step has the rate of its tail; averaging keeps the base rate") {
  const NoiseModel n{4, 3.0, 0.0};
  const MethodSpec damped = cesr::method_spec("torch-sgd", {{"lr", 0.2}, {"momentum", 0.8}, {"dampening", 0.5}});
  const auto tail = cesr::make_path<double>(damped).coefficients(5);
  const LD dense = oracle::dense_rho(ld(problem.lambda), 3.0, 4, to_oracle(tail));
  CHECK(cesr::contraction_rate<double>(problem, damped, n).rho == doctest::Approx(double(dense)).epsilon(1e-12));
  // An EMA of the iterate decays like the slower of the method and the EMA itself.
  MethodSpec ema = cesr::method_spec("hb", {{"lr", 0.3}, {"momentum", 0.6}});
  const double base = cesr::contraction_rate<double>(problem, ema, n).rho;
  ema.average = cesr::parse_average("ema:decay=0.5");
  const double averaged = cesr::contraction_rate<double>(problem, ema, n).rho;
  const LD dense_ema = oracle::dense_rho(ld(problem.lambda), 3.0, 4, to_oracle(cesr::make_method<double>(ema)));
  CHECK(averaged == doctest::Approx(double(dense_ema)).epsilon(1e-12));
  CHECK(averaged == doctest::Approx(std::max(base, 0.25)).epsilon(1e-12));
}

TEST_CASE("Monte Carlo of each published update lands on the exact loss of its row") {
  // The oracle's optimizers run the published algorithms on vectors (not
  // through P, q, r, o); their mean loss over runs is held against cesr's
  // exact curve by z-test (Bonferroni over all rows of all cases).
  using oracle::Averaged;
  struct McCase {
    MethodSpec spec;
    oracle::Factory factory;
  };
  const auto spec = [](const char* name, std::initializer_list<std::pair<std::string_view, double>> v,
                       const char* average = "") {
    MethodSpec s = cesr::method_spec(name, v);
    s.average = cesr::parse_average(average);
    return s;
  };
  const std::vector<McCase> mc{
      {spec("torch-sgd", {{"lr", 0.2}, {"momentum", 0.6}, {"dampening", 0.5}}),
       [] { return std::make_unique<oracle::TorchSGD>(oracle::constant(0.2L), 0.6L, 0.5L, false); }},
      {spec("torch-sgd", {{"lr", 0.1}, {"momentum", 0.6}, {"nesterov", 1}}),
       [] { return std::make_unique<oracle::TorchSGD>(oracle::constant(0.1L), 0.6L, 0.0L, true); }},
      {spec("qhm", {{"lr", 0.3}, {"momentum", 0.8}, {"nu", 0.7}}),
       [] { return std::make_unique<oracle::QHM>(0.3L, 0.8L, 0.7L); }},
      {spec("schedule-free", {{"lr", 0.3}, {"momentum", 0.9}}),
       [] { return std::make_unique<oracle::ScheduleFreeSGD>(0.3L, 0.9L); }},
      {spec("lookahead", {{"lr", 0.3}, {"sync", 3}, {"slow_step", 0.5}}),
       [] { return std::make_unique<oracle::Lookahead>(std::make_unique<oracle::PlainSGD>(0.3L), 3, 0.5L); }},
      {spec("sgd", {{"lr", 0.3}}, "polyak"),
       [] { return std::make_unique<Averaged>(std::make_unique<oracle::PlainSGD>(0.3L), Averaged::Kind::polyak); }},
      {spec("sgd", {{"lr", 0.3}}, "ema:decay=0.8"),
       [] { return std::make_unique<Averaged>(std::make_unique<oracle::PlainSGD>(0.3L), Averaged::Kind::ema, 0.8L); }},
  };
  const std::uint64_t steps = 40, every = 10, runs = 8000;
  const double bound = oracle::bonferroni_bound(mc.size() * 4, 1e-3);
  double worst = 0;
  std::uint64_t seed = 500;
  for (const McCase& c : mc) {
    const NoiseModel n{4, 3.0, 0.1};
    const auto exact = cesr::loss_curve<double>(problem, cesr::make_path<double>(c.spec), n, steps, every);
    const auto sim = oracle::mc_loss(ld(problem.lambda), ld(problem.init), 0.1, 4, oracle::Law::gaussian, c.factory,
                                     steps, every, runs, ++seed);
    REQUIRE(sim.steps.size() == exact.step.size());
    for (std::size_t i = 1; i < sim.steps.size(); ++i) {
      const double z = static_cast<double>((sim.mean[i] - exact.loss[i]) / sim.std_error[i]);
      INFO(cesr::describe(c.spec), " step ", sim.steps[i], " z=", z);
      CHECK(std::abs(z) <= bound);
      worst = std::max(worst, std::abs(z));
    }
  }
  MESSAGE("Monte Carlo of published updates: max |z| = ", worst, " (bound ", bound, ")");
}

TEST_CASE("nearly singular methods: where the closed-form Newton gives up, the generic path answers") {
  // AccSGD with xi = 1e-12: alpha = 1 - 4.9e-14, the buffer's slow mode; the
  // k = 2 root finder did not converge here (exit 4 before).
  const cesr::Spectrum s = cesr::make_spectrum("powerlaw:d=20,alpha=1.5");
  const MethodSpec m = cesr::method_spec("asgd", {{"lr", 0.1}, {"kappa", 10}, {"xi", 1e-12}});
  const NoiseModel n{8, 3.0, 0.0};
  const auto r = cesr::contraction_rate_auto(s, m, n);
  const LD dense = oracle::dense_rho(ld(s.lambda), 3.0, 8, to_oracle(cesr::make_method<double>(m)));
  CHECK(r.stable);
  CHECK(r.gap == doctest::Approx(static_cast<double>(1 - dense)).epsilon(1e-4));
  CHECK(r.gap == doctest::Approx(2 * 0.49e-12 / 10).epsilon(1e-3));  // 1 - alpha^2 ~ 2 (1 - alpha)
}
