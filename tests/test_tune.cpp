// The tuner against independent routes to the same optimum:
//  - a brute-force grid, refined twice around its best cell (no optimiser, no
//    shared search code), for every method on several spectra and batches;
//  - closed forms in the deterministic limit (huge batch, two eigenvalues);
//  - the reported gap, step count and final loss against the dense oracle
//    (tests/oracle.hpp: its own coefficients, long double, no code of src/).
#include <doctest/doctest.h>

#include "cesr/rate.hpp"
#include "cesr/tune.hpp"
#include "oracle.hpp"
#include "grid_search.hpp"
#include "tune_compare.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <limits>
#include <vector>

using namespace cesr;

namespace {

// gap of a spec, or -1 when unstable / not computable.
double gap_of(const Spectrum& s, const MethodSpec& m, const NoiseModel& n) {
  try {
    m.validate();
    const auto r = contraction_rate<double>(s, make_method<double>(m), n);
    return r.stable ? r.gap : -1.0;
  } catch (const std::exception&) {
    return -1.0;
  }
}

using cesr_test::grid_max;

// The brute-force optimum of the gap for a method, over a box wider than the
// tuner's own.
double brute_force_gap(const Spectrum& s, const std::string& kind, const NoiseModel& n) {
  const double L = s.lambda_max(), kappa = s.kappa();
  const double lr_lo = std::log(1e-4 * std::min(1.0 / L, double(n.batch) / (3 * s.trace())));
  MethodSpec m;
  m.name = kind;
  if (kind == "sgd")
    return grid_max([&](const std::vector<double>& x) {
      m.set("lr", std::exp(x[0]));
      return gap_of(s, m, n);
    }, {lr_lo}, {std::log(2.0 / L)}, {400});
  if (kind == "hb" || kind == "nag")
    // (ln eta, ln(1 - beta))
    return grid_max([&](const std::vector<double>& x) {
      m.set("lr", std::exp(x[0]));
      m.set("momentum", -std::expm1(x[1]));
      return gap_of(s, m, n);
    }, {lr_lo + std::log(0.01 / std::sqrt(kappa)), std::log(0.01 / std::sqrt(kappa))}, {std::log(4.0 / L), 0.0},
                    {120, 120});
  if (kind == "asgd")
    // (ln lr, ln kappa_a, ln xi / ln sqrt(kappa_a))
    return grid_max([&](const std::vector<double>& x) {
      m.set("lr", std::exp(x[0]));
      m.set("kappa", std::exp(x[1]));
      m.set("xi", std::min(std::pow(std::exp(x[1]), x[2] / 2), std::exp(x[1]) / 0.49));
      return gap_of(s, m, n);
    }, {lr_lo, 0.0, 0.0}, {std::log(4.0 / L), std::log(100 * 3 * s.trace() / s.lambda_min()), 1.0},
                    {24, 24, 12});
  return -1;
}

Spectrum make(const char* spec) { return make_spectrum(spec); }

std::vector<long double> ld(const std::vector<double>& v) { return {v.begin(), v.end()}; }

/// The oracle's hand-derived coefficients of a tuned spec (sgd, hb, nag); for
/// asgd, which the oracle does not derive, the registry's (P, q, r, o, s0)
/// rounded to long double (the dense recursion is still the oracle's own).
oracle::Method oracle_method(const MethodSpec& m) {
  const long double lr = m.value("lr");
  if (m.name == "sgd") return oracle::coeffs_sgd(lr);
  if (m.name == "hb") return oracle::coeffs_heavy_ball(lr, m.value("momentum"));
  if (m.name == "nag") return oracle::coeffs_nesterov(lr, m.value("momentum"));
  const auto c = make_method<long double>(m);
  oracle::Coeffs k{c.k, oracle::Mat(c.k, c.k), oracle::Vec(c.k), oracle::Vec(c.k), oracle::Vec(c.k)};
  oracle::Vec s0(c.k);
  for (int a = 0; a < c.k; ++a) {
    k.q(a) = c.q[a];
    k.r(a) = c.r[a];
    k.o(a) = c.o[a];
    s0(a) = c.s0[a];
    for (int b = 0; b < c.k; ++b) k.P(a, b) = c.P[a][b];
  }
  return {[k](std::uint64_t) { return k; }, s0};
}

/// 1 - the spectral radius of the oracle's dense second-moment operator.
double oracle_gap(const Spectrum& s, const MethodSpec& m, const NoiseModel& n) {
  return static_cast<double>(1 - oracle::dense_rho(ld(s.lambda), n.kurtosis, n.batch, oracle_method(m).coeffs(0)));
}

/// The oracle's exact loss curve L_0..L_steps.
std::vector<long double> oracle_curve(const Spectrum& s, const MethodSpec& m, const NoiseModel& n,
                                      std::uint64_t steps) {
  const oracle::Method om = oracle_method(m);
  return oracle::dense_loss(ld(s.lambda), ld(s.init), om.s0, n.kurtosis, n.label_noise,
                            oracle::constant_batch(n.batch), om.coeffs, steps);
}

/// Checks that the oracle's curve first reaches `goal` at step t (to 1e-9 relative
/// at the two steps either side of it, the engine running in double).
void check_first_passage(const std::vector<long double>& curve, std::uint64_t t, long double goal) {
  REQUIRE(curve.size() > t);
  CHECK(curve[t] <= goal * (1 + 1e-9L));
  if (t > 0) CHECK(curve[t - 1] > goal * (1 - 1e-9L));
  for (std::uint64_t i = 0; i + 1 < t; ++i)
    if (curve[i] <= goal * (1 - 1e-9L)) {
      FAIL_CHECK("the oracle's curve reaches the goal at step ", i, " before ", t);
      break;
    }
}

/// The first step where the oracle's curve is <= goal, or -1 within `cap` steps.
std::int64_t oracle_first_passage(const Spectrum& s, const MethodSpec& m, const NoiseModel& n, long double goal,
                                  std::uint64_t cap) {
  const auto curve = oracle_curve(s, m, n, cap);
  for (std::size_t i = 0; i < curve.size(); ++i)
    if (curve[i] <= goal) return static_cast<std::int64_t>(i);
  return -1;
}

}  // namespace

TEST_CASE("tuned gap is within 0.1% of a brute-force grid, every method, several spectra and batches") {
  for (const char* spec : {"loguniform:d=40,kappa=1e4", "powerlaw:d=40,alpha=2", "powerlaw:d=40,alpha=0.5"}) {
    const Spectrum s = make(spec);
    for (const std::string kind : {"sgd", "hb", "nag", "asgd"}) {
      for (std::uint64_t batch : {1, 16, 1024}) {
        const NoiseModel n{batch, 3.0, 0.0};
        const TuneResult r = tune(s, kind, n, TuneOptions{});
        const double brute = brute_force_gap(s, kind, n);
        CAPTURE(spec);
        CAPTURE(kind);
        CAPTURE(batch);
        CAPTURE(r.gap);
        CAPTURE(brute);
        REQUIRE(r.stable);
        REQUIRE(brute > 0);
        CHECK(r.gap >= brute * (1 - 1e-3));
        if (std::getenv("CESR_TEST_VERBOSE"))
          fmt::print("{} {} B={} tuned/brute = {:.6f} evals {}\n", spec, kind, batch, r.gap / brute,
                     r.evaluations);
        // The reported gap is the gap of the printed hyperparameters: 1 - the
        // spectral radius of the oracle's dense operator (long double).
        CHECK(oracle_gap(s, r.method, n) == doctest::Approx(r.gap).epsilon(1e-8));
      }
    }
  }
}

TEST_CASE("deterministic limit: tuned SGD and heavy ball reach the closed-form optimal rates") {
  // Two eigenvalues, batch 10^12: the noise terms are ~1e-12 of the drift.
  // SGD: rho_1 = (kappa-1)/(kappa+1); heavy ball (Polyak): rho_1 = (sqrt kappa - 1)/(sqrt kappa + 1);
  // the second moment contracts at rho_1^2.
  for (double kappa : {1e2, 1e4}) {
    const Spectrum s{{1.0, 1.0 / kappa}, {1.0, 1.0}};
    const NoiseModel n{1'000'000'000'000ULL, 3.0, 0.0};
    const double q = std::sqrt(kappa);
    const double sgd_gap = 1 - std::pow((kappa - 1) / (kappa + 1), 2);
    const double hb_gap = 1 - std::pow((q - 1) / (q + 1), 2);
    CAPTURE(kappa);
    CHECK(tune(s, "sgd", n, {}).gap == doctest::Approx(sgd_gap).epsilon(1e-3));
    const TuneResult hb = tune(s, "hb", n, {});
    CHECK(hb.gap == doctest::Approx(hb_gap).epsilon(1e-3));
    // Polyak's parameters: eta = 4/(sqrt L + sqrt mu)^2, beta = ((q-1)/(q+1))^2.
    CHECK(hb.method.value("lr") == doctest::Approx(4 / std::pow(1 + 1 / q, 2)).epsilon(2e-2));
    CHECK(hb.method.value("momentum") == doctest::Approx(std::pow((q - 1) / (q + 1), 2)).epsilon(2e-3));
  }
}

TEST_CASE("fixing a hyperparameter tunes only the others") {
  const Spectrum s = make("loguniform:d=40,kappa=1e4");
  const NoiseModel n{8, 3.0, 0.0};
  TuneOptions o;
  o.fixed["momentum"] = 0.9;
  const TuneResult r = tune(s, "hb", n, o);
  CHECK(r.method.value("momentum") == 0.9);
  MethodSpec m;
  m.name = "hb";
  m.set("momentum", 0.9);
  const double brute = grid_max([&](const std::vector<double>& x) {
    m.set("lr", std::exp(x[0]));
    return gap_of(s, m, n);
  }, {std::log(1e-6)}, {std::log(4.0)}, {400});
  CHECK(r.gap >= brute * (1 - 1e-3));
  // And the free one is really tuned: better than the same momentum at a poor step.
  CHECK(r.gap > 1.5 * gap_of(s, [&] { MethodSpec p = m; p.set("lr", r.method.value("lr") / 10); return p; }(), n));
}

TEST_CASE("steps objective: the printed hyperparameters reach the target at the printed step on the oracle") {
  const Spectrum s = make("loguniform:d=40,kappa=1e3");
  const long double goal = 1e-4L * s.initial_loss();
  // The count comes from the spectral path (auto) or, with stepping, from
  // time stepping in automatic precision; the oracle is dense either way.
  for (const HorizonMode mode : {HorizonMode::Auto, HorizonMode::Stepping})
  for (const std::string kind : {"sgd", "hb", "asgd"}) {
    for (std::uint64_t batch : {1, 64}) {
      const NoiseModel n{batch, 3.0, 0.0};
      TuneOptions o;
      o.objective = Objective::Steps;
      o.target = {1e-4, true};
      o.target.horizon = mode;
      const TuneResult r = tune(s, kind, n, o);
      CAPTURE(to_string(mode));
      REQUIRE(r.steps);
      // Round-trip the hyperparameters through 17 significant digits.
      MethodSpec m = r.method;
      for (auto& [name, v] : m.values) v = std::strtod(fmt::format("{:.17g}", v).c_str(), nullptr);
      CAPTURE(kind);
      CAPTURE(batch);
      CAPTURE(*r.steps);
      check_first_passage(oracle_curve(s, m, n, *r.steps), *r.steps, goal);
      // The steps optimum is no worse than the rate optimum's step count (on the oracle).
      const TuneResult rate = tune(s, kind, n, {});
      const std::int64_t at_rate = oracle_first_passage(s, rate.method, n, goal, 4 * *r.steps + 1000);
      CAPTURE(at_rate);
      CHECK((at_rate < 0 || static_cast<std::int64_t>(*r.steps) <= at_rate));
    }
  }
}

TEST_CASE("steps objective for SGD matches a brute-force scan of the step size") {
  const Spectrum s = make("powerlaw:d=40,alpha=1.5");
  const NoiseModel n{4, 3.0, 0.0};
  TuneOptions o;
  o.objective = Objective::Steps;
  o.target = {1e-3, true};
  const TuneResult r = tune(s, "sgd", n, o);
  REQUIRE(r.steps);
  MethodSpec m;
  m.name = "sgd";
  std::uint64_t best = std::numeric_limits<std::uint64_t>::max();
  for (int i = 0; i < 800; ++i) {
    m.set("lr", std::exp(std::log(1e-3) + i * (std::log(2.0) - std::log(1e-3)) / 799));
    const auto res = steps_to_target<double>(s, make_method<double>(m), n, 1e-3, true, 10'000'000);
    if (res.steps) best = std::min(best, *res.steps);
  }
  CAPTURE(best);
  CHECK(*r.steps <= best);
}

TEST_CASE("asymptotic steps: the first t with L_0 rho^t <= goal, by counting; absolute targets use L_0") {
  // Brute force: multiply by rho until the goal is reached (long double).
  const auto count = [](long double rho, long double from, long double goal) {
    std::uint64_t t = 0;
    for (long double L = from; L > goal; L *= rho) ++t;
    return t;
  };
  const Target rel{1e-6, true};
  CHECK(*asymptotic_steps(0.5, 0.5, 3.0, rel) == 20);  // 2^-20 = 9.5e-7 <= 1e-6 < 2^-19
  CHECK(*asymptotic_steps(0.5, 0.5, 3.0, rel) == count(0.5L, 1, 1e-6L));
  const Target abs{1e-3, false};
  CHECK(*asymptotic_steps(0.9, 0.1, 2.0, abs) == count(0.9L, 2, 1e-3L));
  CHECK(*asymptotic_steps(0.9, 0.1, 2.0, abs) == 73);
  // A gap of 1e-7: rho is not exactly 1 - gap in double; the count follows the gap.
  const double gap = 1e-7;
  CHECK(*asymptotic_steps(1 - gap, gap, 1.0, rel) == count(1 - 1e-7L, 1, 1e-6L));
  // A gap of 1e-12 (1.4e13 steps): by bisection on powl(1 - gap, t) <= eps in long
  // double, whose rounding of 1 - gap moves t by ~5e-8 relative (-log(1 - gap)
  // in double would move it by 5e-5).
  {
    const long double g = 1e-12L, rho = 1 - g;
    std::uint64_t lo = 0, hi = std::uint64_t{1} << 50;  // powl(rho, lo) > eps >= powl(rho, hi)
    while (hi - lo > 1) {
      const std::uint64_t mid = lo + (hi - lo) / 2;
      (std::pow(rho, static_cast<long double>(mid)) <= 1e-6L ? hi : lo) = mid;
    }
    const auto t = asymptotic_steps(1 - 1e-12, 1e-12, 1.0, rel);
    REQUIRE(t);
    CHECK(std::abs(static_cast<double>(*t) - static_cast<double>(hi)) <= 1e-6 * static_cast<double>(hi));
  }
  CHECK(*asymptotic_steps(0.9, 0.1, 1e-4, abs) == 0);  // already below the target
  CHECK_FALSE(asymptotic_steps(1.0, 0.0, 1.0, rel).has_value());
}

TEST_CASE("bad tuning input is rejected with the flag named") {
  const Spectrum s = make("loguniform:d=10,kappa=1e2");
  const NoiseModel n{1, 3.0, 0.0};
  CHECK_THROWS_AS(tune(s, "custom", n, {}), std::invalid_argument);
  TuneOptions o;
  o.fixed["lr"] = -1;
  CHECK_THROWS_WITH_AS(tune(s, "sgd", n, o), doctest::Contains("lr must be > 0, got -1"), cesr::FieldError);
  TuneOptions p;
  p.fixed["momentum"] = 0.5;
  CHECK_THROWS_WITH_AS(tune(s, "sgd", n, p), doctest::Contains("momentum 0.5 does not apply to method sgd"),
                       cesr::FieldError);
  TuneOptions q;
  q.objective = Objective::Rate;
  CHECK_THROWS_WITH_AS(tune(s, "schedule-free", n, q), doctest::Contains("has no contraction rate"), cesr::FieldError);
  TuneOptions w;
  w.boxes["xi"] = {1, 1e4};
  CHECK_THROWS_WITH_AS(tune(s, "sgd", n, w), doctest::Contains("search: method sgd does not tune xi"),
                       cesr::FieldError);
  TuneOptions t;
  t.target = {2.0, true};
  CHECK_THROWS_WITH_AS(tune(s, "sgd", n, t), doctest::Contains("--target"), std::invalid_argument);
}

TEST_CASE("extreme damping: a search that double cannot resolve is repeated in long double") {
  // kappa = 1e10 with 1 - beta = 1e-8 fixed: the gap (~1e-11) is far below what
  // double resolves next to 1 - beta. The tuner must still return a stable
  // optimum, as good as a long-double scan of the step size.
  const Spectrum s = make("loguniform:d=50,kappa=1e10");
  const NoiseModel n{1, 3.0, 0.0};
  TuneOptions o;
  o.fixed["momentum"] = 1 - 1e-8;
  const TuneResult r = tune(s, "hb", n, o);
  REQUIRE(r.stable);
  MethodSpec m;
  m.name = "hb";
  m.set("momentum", o.fixed["momentum"]);
  double best = 0;
  for (int i = 0; i < 200; ++i) {
    m.set("lr", std::exp(std::log(1e-12) + i * (std::log(1e-6) - std::log(1e-12)) / 199));
    const auto rate = contraction_rate<long double>(s, make_method<long double>(m), n);
    if (rate.stable) best = std::max(best, static_cast<double>(rate.gap));
  }
  CAPTURE(r.gap);
  CAPTURE(best);
  REQUIRE(best > 0);
  CHECK(r.gap >= best * (1 - 1e-3));
  MESSAGE("search precision: ", to_string(r.search_precision));
}

TEST_CASE("steps objective with label noise: reached when the floor is below the target, null when above") {
  const Spectrum s = make("loguniform:d=50,kappa=1e3");
  TuneOptions o;
  o.objective = Objective::Steps;
  o.target = {1e-2, false};
  const NoiseModel quiet{4, 3.0, 1e-3};
  const TuneResult r = tune(s, "hb", quiet, o);
  REQUIRE(r.steps);
  check_first_passage(oracle_curve(s, r.method, quiet, *r.steps), *r.steps, 1e-2L);
  // One direction, lambda = 1, L_0 = 1/2, sigma^2 = 10, B = 1: SGD's stationary
  // loss is about eta sigma^2 / 4, below 1e-2 only for eta < 4e-3, and then
  // L_t ~ L_0 (1 - eta)^(2t) needs t > ln(50) / (2 eta) ~ 490 steps > max_steps = 100.
  const Spectrum one{{1.0}, {1.0}};
  const NoiseModel loud{1, 3.0, 10.0};
  // --max-steps caps time stepping only: SGD (k = 1) is answered by the
  // certified spectral path beyond it, and its count is the oracle's first passage.
  o.target.max_steps = 100;
  const TuneResult far = tune(one, "sgd", loud, o);
  REQUIRE(far.steps);
  CHECK(*far.steps > 100);
  check_first_passage(oracle_curve(one, far.method, loud, *far.steps), *far.steps, 1e-2L);
}

TEST_CASE("QHM contains AccSGD (Ma & Yarats 2019): tuned independently, the two reach the same gap") {
  // Two different parameterisations, search spaces and coefficient factories
  // of one family of two-state methods; their tuned optima must coincide.
  for (const char* spec : {"loguniform:d=50,kappa=1e3", "powerlaw:d=50,alpha=2"})
    for (std::uint64_t batch : {1, 4}) {
      const Spectrum s = make(spec);
      const NoiseModel n{batch, 3.0, 0.0};
      const TuneResult qhm = tune(s, "qhm", n, {});
      const TuneResult asgd = tune(s, "asgd", n, {});
      INFO(std::string(spec), " B=", batch, " qhm ", qhm.gap, " asgd ", asgd.gap);
      // Equal at the optimum; the 3-d Nelder-Mead of either stops within 0.1%
      // of it (measured: 2e-10 at loguniform B = 4, 5.5e-4 at the worst case).
      CHECK(qhm.gap == doctest::Approx(asgd.gap).epsilon(1e-3));
      // And both beat heavy ball there (the accelerated small-batch regime).
      CHECK(qhm.gap > 1.5 * tune(s, "hb", n, {}).gap);
    }
}

TEST_CASE("final objective: the tuned L_T is within 0.1% of a dense grid over the peak step size") {
  // SGD under warmup + cosine at three budgets: the tuner (grid + Brent in log
  // lr) against 2000 log-spaced peak step sizes, each L_T by exact time stepping.
  const Spectrum s = make("loguniform:d=30,kappa=1e3");
  const NoiseModel n{4, 3.0, 0.05};
  for (const std::uint64_t T : {50u, 400u, 3000u}) {
    TuneOptions o;
    o.objective = Objective::Final;
    o.horizon = T;
    o.lr_schedule = cesr::Schedule::learning_rate("cosine:warmup=10%");
    const TuneResult r = tune(s, "sgd", n, o);
    REQUIRE(r.final_loss);
    double best = std::numeric_limits<double>::infinity();
    MethodSpec m = cesr::method_spec("sgd", {{"lr", 1.0}});
    m.lr_schedule = o.lr_schedule.resolve(T);
    for (int i = 0; i < 2000; ++i) {
      m.set("lr", std::exp(std::log(1e-3) + i * (std::log(4.0) - std::log(1e-3)) / 1999));
      const auto c = cesr::loss_curve<double>(s, cesr::make_path<double>(m), n, T, T);
      if (!c.diverged_at) best = std::min(best, c.loss.back());
    }
    INFO("T=", T, " tuned ", *r.final_loss, " grid ", best);
    CHECK(*r.final_loss <= best * (1 + 1e-3));
    // And the loss it reports is the loss of the hyperparameters it prints, on
    // the oracle with warmup + cosine written out from docs/schedules.md
    // (W = 10% of T: m_t = (t + 1)/W, then (1 + cos(pi (t - W)/(T - W)))/2).
    const long double peak = r.method.value("lr");
    const std::uint64_t W = T / 10;
    const oracle::ScalarFn lr = [=](std::uint64_t t) -> long double {
      if (t < W) return peak * (t + 1) / W;
      if (t >= T) return 0;
      return peak * (1 + std::cos(3.14159265358979323846264338327950288L * (t - W) / (T - W))) / 2;
    };
    const oracle::Method om = oracle::coeffs_sgd(lr);
    const auto exact = oracle::dense_loss(ld(s.lambda), ld(s.init), om.s0, n.kurtosis, n.label_noise,
                                          oracle::constant_batch(n.batch), om.coeffs, T);
    CHECK(static_cast<double>(exact.back()) == doctest::Approx(*r.final_loss).epsilon(1e-11));
  }
}

TEST_CASE("fast search: never more than 1e-6 below the global search, every method with a rate, spectra, batches") {
  // The fast search (coarse grid + quasi-Newton on the implicit gradient of
  // the gap) against today's global search (dense grid + restarted
  // Nelder-Mead), which agrees with an independent optimiser to 1e-9.
  int cases = 0, fast_evaluations = 0, global_evaluations = 0;
  double worst = 2;
  for (const char* spec : {"loguniform:d=40,kappa=1e4", "powerlaw:d=40,alpha=2", "powerlaw:d=40,alpha=0.5",
                           "loguniform:d=100,kappa=1e6"}) {
    const Spectrum s = make(spec);
    for (const std::string kind : {"sgd", "hb", "nag", "asgd", "torch-sgd", "qhm"}) {
      for (std::uint64_t batch : {1, 16, 1024}) {
        const NoiseModel n{batch, 3.0, 0.0};
        TuneOptions global;
        global.search_mode = SearchMode::Global;
        TuneOptions fast;
        fast.search_mode = SearchMode::Fast;
        const TuneResult g = tune(s, kind, n, global);
        const TuneResult f = tune(s, kind, n, fast);
        const std::string spec_text = spec;
        CAPTURE(spec_text);
        CAPTURE(kind);
        CAPTURE(batch);
        worst = std::min(worst, cesr_test::fast_over_global(f, g));
        fast_evaluations += f.evaluations;
        global_evaluations += g.evaluations;
        ++cases;
      }
    }
  }
  if (std::getenv("CESR_TEST_VERBOSE"))
    fmt::print("{} cases: worst fast/global {:.12f}, evaluations fast {} global {}\n", cases, worst,
               fast_evaluations, global_evaluations);
  CHECK(fast_evaluations * 2 < global_evaluations);
}

TEST_CASE("contraction_rate_gradient: the implicit derivative of the gap equals central differences in long double") {
  // The derivative from the secular equation (one O(d) pass at the root)
  // against differences of two independent long-double root solves.
  const Spectrum s = make("loguniform:d=50,kappa=1e3");
  struct Case {
    MethodSpec m;
    std::uint64_t batch;
  };
  const std::vector<Case> cases{
      {method_spec("sgd", {{"lr", 0.3}}), 4},
      {method_spec("hb", {{"lr", 0.05}, {"momentum", 0.9}}), 8},
      {method_spec("nag", {{"lr", 0.2}, {"momentum", 0.8}}), 32},
      {method_spec("asgd", {{"lr", 0.5}, {"kappa", 300.0}, {"xi", 5.0}}), 16},
      {method_spec("qhm", {{"lr", 0.5}, {"momentum", 0.95}, {"nu", 0.7}}), 2},
  };
  for (const auto& c : cases) {
    const NoiseModel n{c.batch, 3.0, 0.0};
    const std::vector<std::string> names = [&] {
      std::vector<std::string> v;
      for (const auto& [k, x] : c.m.values) v.push_back(k);
      return v;
    }();
    // Parameters t_j = log of each hyperparameter.
    const double h = 1e-6;
    std::vector<MethodSpec> plus, minus;
    for (const auto& name : names) {
      MethodSpec p = c.m, q = c.m;
      p.set(name, c.m.value(name) * std::exp(h));
      q.set(name, c.m.value(name) * std::exp(-h));
      plus.push_back(p);
      minus.push_back(q);
    }
    const GapGradient g = contraction_rate_gradient(s, c.m, plus, minus, h, n);
    CAPTURE(describe(c.m));
    REQUIRE(g.rate.stable);
    CHECK(g.rate.gap == contraction_rate<double>(s, c.m, n).gap);
    REQUIRE(g.gradient.size() == names.size());
    for (std::size_t j = 0; j < names.size(); ++j) {
      const double step = 1e-4;
      MethodSpec p = c.m, q = c.m;
      p.set(names[j], c.m.value(names[j]) * std::exp(step));
      q.set(names[j], c.m.value(names[j]) * std::exp(-step));
      const long double fd = (contraction_rate<long double>(s, p, n).gap - contraction_rate<long double>(s, q, n).gap) /
                             (2 * step);
      CAPTURE(names[j]);
      CAPTURE(g.gradient[j]);
      CAPTURE(static_cast<double>(fd));
      CHECK(g.gradient[j] == doctest::Approx(static_cast<double>(fd)).epsilon(1e-5).scale(0));
    }
  }
}
