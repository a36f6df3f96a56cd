// Checks of tests/oracle.hpp against itself, only through independent facts:
// closed forms on d = 1, a secular equation solved by bisection, the per-direction
// Kronecker route against the full cross-direction route (fourth moment summed
// entry by entry), identities between hand-derived coefficient sequences of
// different published methods, Monte Carlo of the published updates on vectors,
// and curves made by PyTorch itself (tests/data/torch, scripts/torch_reference.py).
// Set ORACLE_VERBOSE=1 to print every z statistic.
#include <doctest/doctest.h>

#include "oracle.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace {

using oracle::Coeffs;
using oracle::Mat;
using oracle::Method;
using oracle::Real;
using oracle::Vec;

bool verbose() { return std::getenv("ORACLE_VERBOSE") != nullptr; }

Real rel_err(Real a, Real b) { return std::abs(a - b) / std::max(std::abs(a), std::abs(b)); }

Real max_rel_diff(const std::vector<Real>& a, const std::vector<Real>& b) {
  REQUIRE(a.size() == b.size());
  Real m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, rel_err(a[i], b[i]));
  return m;
}

std::vector<Real> loss_of(const std::vector<Real>& lambda, const std::vector<Real>& init, const Method& m, double K,
                          double s2, std::uint64_t B, std::uint64_t steps) {
  return oracle::dense_loss(lambda, init, m.s0, K, s2, oracle::constant_batch(B), m.coeffs, steps);
}

// A random k-state method with time-varying coefficients, scaled to stay bounded.
Method random_method(int k, std::uint64_t seed) {
  struct Tab {
    std::vector<Coeffs> c;
  };
  auto tab = std::make_shared<Tab>();
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-1, 1);
  for (int period = 0; period < 5; ++period) {
    Coeffs c{k, Mat(k, k), Vec(k), Vec(k), Vec(k)};
    for (int i = 0; i < k; ++i) {
      for (int j = 0; j < k; ++j) c.P(i, j) = Real(u(rng));
      c.q(i) = Real(0.3 * u(rng));
      c.r(i) = Real(u(rng));
      c.o(i) = Real(u(rng));
    }
    Eigen::EigenSolver<Mat> es(c.P, false);
    Real rho = 0;
    for (int i = 0; i < k; ++i) rho = std::max(rho, std::abs(es.eigenvalues()(i)));
    c.P *= Real(0.95) / rho;
    tab->c.push_back(c);
  }
  Vec s0(k);
  for (int i = 0; i < k; ++i) s0(i) = Real(u(rng));
  return {[tab](std::uint64_t t) { return tab->c[(t * 7 + t / 3) % tab->c.size()]; }, s0};
}

// z statistics of a Monte Carlo (or PyTorch) curve against an exact curve, rows with se > 0.
struct ZStats {
  std::vector<double> z;
  double max_abs() const {
    double m = 0;
    for (double v : z) m = std::max(m, std::abs(v));
    return m;
  }
  double mean() const {
    double s = 0;
    for (double v : z) s += v;
    return z.empty() ? 0 : s / double(z.size());
  }
};

ZStats z_stats(const std::vector<std::uint64_t>& steps, const std::vector<Real>& mean, const std::vector<Real>& se,
               const std::vector<Real>& exact) {
  ZStats s;
  for (std::size_t j = 0; j < steps.size(); ++j) {
    REQUIRE(steps[j] < exact.size());
    if (se[j] > 0) s.z.push_back(double((mean[j] - exact[steps[j]]) / se[j]));
  }
  return s;
}

void print_z(const std::string& name, const ZStats& s, double bound) {
  if (!verbose()) return;
  std::printf("%-44s rows %2zu  max|z| %7.3f  mean z %+7.3f  (bound %.2f)\n", name.c_str(), s.z.size(), s.max_abs(),
              s.mean(), bound);
}

// ---------------------------------------------------------------------------
// Monte Carlo problem used for every published update.
const std::vector<Real> mc_lambda{1.0L, 0.45L, 0.2L, 0.08L};
const std::vector<Real> mc_init{1.0L, 0.5L, 2.0L, 1.0L};
constexpr std::uint64_t mc_runs = 20000, mc_steps = 40, mc_every = 8, mc_batch = 4;

// A deliberately wrong model for the same Monte Carlo: it must be rejected.
struct Wrong {
  std::string name;
  Method m;
};

void check_mc(const std::string& name, const Method& m, const oracle::Factory& factory, oracle::Law law, double s2,
              std::uint64_t seed, const std::vector<Wrong>& wrong = {}) {
  const double K = law == oracle::Law::gaussian ? 3.0 : 1.0;
  const auto exact = loss_of(mc_lambda, mc_init, m, K, s2, mc_batch, mc_steps);
  const auto mc = oracle::mc_loss(mc_lambda, mc_init, s2, mc_batch, law, factory, mc_steps, mc_every, mc_runs, seed);
  // t = 0 is deterministic: exact equality with the exact curve.
  CHECK(double(rel_err(mc.mean[0], exact[0])) < 1e-15);
  const ZStats s = z_stats(mc.steps, mc.mean, mc.std_error, exact);
  const double bound = oracle::bonferroni_bound(s.z.size(), 1e-3);
  // Coefficient of variation of the per-run loss: the z-test needs a light-tailed loss
  // (a near-unstable method has a heavy-tailed loss whose sample mean undershoots).
  Real cv = 0;
  for (std::size_t j = 1; j < mc.steps.size(); ++j)
    cv = std::max(cv, mc.std_error[j] * std::sqrt(Real(mc_runs)) / mc.mean[j]);
  if (verbose()) std::printf("   cv %.2f  ", double(cv));
  print_z("mc " + name, s, bound);
  CHECK(double(cv) < 4);
  CAPTURE(name);
  CHECK(s.z.size() == mc_steps / mc_every);
  CHECK(s.max_abs() < bound);
  for (const auto& w : wrong) {
    const ZStats sw = z_stats(mc.steps, mc.mean, mc.std_error, loss_of(mc_lambda, mc_init, w.m, K, s2, mc_batch, mc_steps));
    if (verbose()) std::printf("            ");
    print_z("mc " + name + " vs WRONG " + w.name, sw, bound);
    CAPTURE(w.name);
    CHECK(sw.max_abs() > bound);
  }
}

Method with_output(Method m, Vec o) {
  const oracle::CoeffFn f = m.coeffs;
  m.coeffs = [f, o](std::uint64_t t) {
    Coeffs c = f(t);
    c.o = o;
    return c;
  };
  return m;
}
// Lookahead over torch SGD with the reference's pullback_momentum = "reset": the buffer is
// zeroed at every synchronisation (then refilled by mu * 0 + (1 - tau) g).
Method buffer_reset_at_sync(Real lr, Real mu, std::uint64_t sync, Real alpha) {
  Method m = oracle::coeffs_lookahead_torch_sgd(lr, mu, sync, alpha);
  const oracle::CoeffFn f = m.coeffs;
  m.coeffs = [f, sync](std::uint64_t t) {
    Coeffs c = f(t);
    if ((t + 1) % sync == 0) {
      c.P.row(1).setZero();
      c.q(1) = 0;
    }
    return c;
  };
  return m;
}

// Every step uses the coefficients of the next one (e.g. torch SGD's first buffer damped too).
Method shifted(Method m) {
  const oracle::CoeffFn f = m.coeffs;
  m.coeffs = [f](std::uint64_t t) { return f(t + 1); };
  return m;
}

// ---------------------------------------------------------------------------
// PyTorch reference curves.
struct Curve {
  std::vector<std::uint64_t> steps;
  std::vector<Real> mean, se;
};

std::string data_path(const std::string& file) { return std::string(CESR_SOURCE_DIR) + "/tests/data/torch/" + file; }

std::vector<std::vector<std::string>> read_csv(const std::string& path, std::string& header) {
  std::ifstream in(path);
  REQUIRE_MESSAGE(in.good(), "cannot open " << path);
  std::getline(in, header);
  std::vector<std::vector<std::string>> rows;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    std::vector<std::string> f;
    std::stringstream ss(line);
    std::string cell;
    while (std::getline(ss, cell, ',')) f.push_back(cell);
    rows.push_back(f);
  }
  return rows;
}

Curve read_curve(const std::string& name) {
  std::string header;
  const auto rows = read_csv(data_path(name + ".csv"), header);
  REQUIRE(header == "step,loss,stderr");
  Curve c;
  for (const auto& r : rows) {
    REQUIRE(r.size() == 3);
    c.steps.push_back(std::stoull(r[0]));
    c.mean.push_back(std::stold(r[1]));
    c.se.push_back(std::stold(r[2]));
  }
  return c;
}

// The fixed PyTorch problem: lambda_i = i^-1.5, d = 20, E[e_0^2] = 1, batch 4, 200 steps.
const std::vector<Real>& torch_lambda() {
  static const std::vector<Real> l = [] {
    std::vector<Real> v;
    for (int i = 1; i <= 20; ++i) v.push_back(std::pow(Real(i), Real(-1.5)));
    return v;
  }();
  return l;
}
const std::vector<Real> torch_init(20, 1.0L);
constexpr std::uint64_t torch_batch = 4, torch_steps = 200;

ZStats torch_z(const Curve& c, const Method& m, double s2) {
  const auto exact = loss_of(torch_lambda(), torch_init, m, 3.0, s2, torch_batch, torch_steps);
  CHECK(double(rel_err(c.mean[0], exact[0])) < 1e-15);  // step 0 is deterministic
  return z_stats(c.steps, c.mean, c.se, exact);
}

void check_torch(const std::string& name, const Method& right, double s2_right,
                 const std::vector<std::pair<std::string, std::pair<Method, double>>>& wrong) {
  const Curve c = read_curve(name);
  REQUIRE(c.steps.size() == 21);
  const ZStats s = torch_z(c, right, s2_right);
  const double bound = oracle::bonferroni_bound(s.z.size(), 1e-3);
  print_z("torch " + name, s, bound);
  CAPTURE(name);
  CHECK(s.z.size() == 20);
  CHECK(s.max_abs() < bound);
  for (const auto& [wname, w] : wrong) {
    const ZStats sw = torch_z(c, w.first, w.second);
    print_z("torch " + name + " vs WRONG " + wname, sw, bound);
    CAPTURE(wname);
    CHECK(sw.max_abs() > bound);
  }
}

// torch's SequentialLR(LinearLR(start_factor=1/20, total_iters=20), CosineAnnealingLR(T_max=180),
// milestones=[20]) as a closed form: the lr in the param group when step t is taken.
Real schedule_lr(std::uint64_t t) {
  const Real base = 0.05L, pi = std::acos(Real(-1));
  if (t < 20) return base * (Real(1) / 20 + (1 - Real(1) / 20) * Real(t) / 20);
  return base * (1 + std::cos(pi * Real(t - 20) / 180)) / 2;
}

}  // namespace

// ===========================================================================
TEST_CASE("d = 1 SGD: dense_loss follows the closed form, with and without label noise") {
  // e' = (1 - eta hhat) e + eta (1/B) sum_b x_b xi_b, hhat = (1/B) sum x_b^2, E[hhat] = lambda,
  // E[hhat^2] = lambda^2 + Var(x^2)/B = lambda^2 (1 + (K - 1)/B), so
  //   E[e'^2] = a E[e^2] + eta^2 sigma^2 lambda / B,  a = (1 - eta lambda)^2 + (K - 1) eta^2 lambda^2 / B,
  //   m_t = a^t (m_0 - m_inf) + m_inf,  m_inf = eta^2 sigma^2 lambda / (B (1 - a)).
  for (double K : {1.0, 3.0, 5.0})
    for (std::uint64_t B : {1u, 3u, 16u})
      for (double s2 : {0.0, 0.4}) {
        CAPTURE(K);
        CAPTURE(B);
        CAPTURE(s2);
        const Real lambda = 0.8L, eta = 0.35L, m0 = 1.7L;
        const Real a = (1 - eta * lambda) * (1 - eta * lambda) + (Real(K) - 1) * eta * eta * lambda * lambda / Real(B);
        const Real m_inf = eta * eta * Real(s2) * lambda / (Real(B) * (1 - a));
        const auto L = loss_of({lambda}, {m0}, oracle::coeffs_sgd(eta), K, s2, B, 300);
        Real worst = 0;
        for (std::size_t t = 0; t < L.size(); ++t) {
          const Real want = lambda / 2 * (std::pow(a, Real(t)) * (m0 - m_inf) + m_inf);
          worst = std::max(worst, rel_err(L[t], want));
        }
        CHECK(double(worst) < 1e-15);
        if (s2 > 0) CHECK(double(rel_err(L.back(), lambda / 2 * m_inf)) < 1e-12);  // the label-noise floor
        CHECK(double(rel_err(oracle::dense_rho({lambda}, K, B, oracle::coeffs_sgd(eta).coeffs(0)), a)) < 1e-16);
      }
}

TEST_CASE("dense_rho: SGD on d > 1 against its secular equation; dense vs full operator; decay rate of the loss") {
  // SGD's operator on the diagonal m_i: m_i' = a_i m_i + (eta^2 lambda_i / B) sum_j lambda_j m_j,
  // a_i = (1 - eta lambda_i)^2 + (K - 2) eta^2 lambda_i^2 / B. rho > max a_i solves
  // sum_i (eta^2 lambda_i^2 / B) / (z - a_i) = 1 (bisection, left side decreasing in z).
  const std::vector<Real> lam{1.0L, 0.5L, 0.3L, 0.1L, 0.02L, 0.007L};
  for (double K : {1.0, 3.0})
    for (std::uint64_t B : {1u, 8u}) {
      const Real eta = 0.6L;
      std::vector<Real> a;
      Real amax = 0;
      for (Real l : lam) {
        a.push_back((1 - eta * l) * (1 - eta * l) + (Real(K) - 2) * eta * eta * l * l / Real(B));
        amax = std::max(amax, a.back());
      }
      auto g = [&](Real z) {
        Real s = 0;
        for (std::size_t i = 0; i < lam.size(); ++i) s += eta * eta * lam[i] * lam[i] / Real(B) / (z - a[i]);
        return s;
      };
      Real lo = amax, hi = amax + 10;
      for (int it = 0; it < 300; ++it) {
        const Real mid = (lo + hi) / 2;
        (g(mid) > 1 ? lo : hi) = mid;
      }
      CAPTURE(K);
      CAPTURE(B);
      CHECK(double(rel_err(oracle::dense_rho(lam, K, B, oracle::coeffs_sgd(eta).coeffs(0)), lo)) < 1e-15);
    }

  // k = 2, 3 constant methods on tiny d: the per-direction k^2 d operator and the full (kd)^2 operator
  // (cross-direction blocks included) have the same spectral radius.
  const std::vector<Real> tiny{1.0L, 0.3L, 0.05L};
  const std::vector<std::pair<std::string, Coeffs>> cases{
      {"heavy ball", oracle::coeffs_heavy_ball(0.5L, 0.7L).coeffs(0)},
      {"nesterov", oracle::coeffs_nesterov(0.4L, 0.8L).coeffs(0)},
      {"torch-sgd tail", oracle::coeffs_torch_sgd(0.1L, 0.9L, 0.3L, false).coeffs(5)},
      {"qhm", oracle::coeffs_qhm(0.7L, 0.9L, 0.7L).coeffs(0)},
      {"random k=3", random_method(3, 11).coeffs(0)},
  };
  for (const auto& [name, c] : cases)
    for (double K : {1.0, 3.0}) {
      CAPTURE(name);
      CAPTURE(K);
      const Real rd = oracle::dense_rho(tiny, K, 2, c), rf = oracle::full_rho(tiny, K, 2, c);
      CHECK(double(rel_err(rd, rf)) < 1e-12);
    }

  // Constant method: L_{t+1} / L_t -> rho (heavy ball with real dominant mode).
  {
    const auto m = oracle::coeffs_heavy_ball(0.5L, 0.3L);
    const Real rho = oracle::dense_rho(lam, 3.0, 4, m.coeffs(0));
    const auto L = loss_of(lam, std::vector<Real>(lam.size(), 1.0L), m, 3.0, 0.0, 4, 20000);
    CHECK(double(rel_err(L[20000] / L[19999], rho)) < 1e-9);
  }
}

TEST_CASE("dense_loss (per direction, Kronecker) equals full_loss (kd x kd, fourth moment entry by entry)") {
  const std::vector<Real> lam{0.9L, 0.4L, 0.15L};
  const std::vector<Real> init{1.0L, 2.0L, 0.5L};
  const oracle::BatchFn batch = [](std::uint64_t t) { return std::uint64_t(1 + (t * 5) % 4); };
  std::vector<std::pair<std::string, Method>> methods;
  for (int k = 1; k <= 4; ++k) methods.push_back({"random k=" + std::to_string(k), random_method(k, 100 + k)});
  methods.push_back({"torch-sgd damp", oracle::coeffs_torch_sgd(0.2L, 0.8L, 0.4L, false)});
  methods.push_back({"torch-sgd nesterov", oracle::coeffs_torch_sgd(0.2L, 0.8L, 0.0L, true)});
  methods.push_back({"qhm", oracle::coeffs_qhm(0.5L, 0.9L, 0.7L)});
  methods.push_back({"schedule-free", oracle::coeffs_schedule_free(0.6L, 0.9L, 5)});
  methods.push_back({"lookahead sgd", oracle::coeffs_lookahead_sgd(0.5L, 5, 0.5L)});
  methods.push_back({"lookahead torch", oracle::coeffs_lookahead_torch_sgd(0.2L, 0.7L, 4, 0.6L)});
  methods.push_back({"ema(hb)", oracle::coeffs_ema(oracle::coeffs_heavy_ball(0.4L, 0.6L), 0.8L)});
  methods.push_back({"polyak(nesterov)", oracle::coeffs_polyak(oracle::coeffs_nesterov(0.4L, 0.6L))});
  methods.push_back({"tail3(lookahead torch)",
                     oracle::coeffs_tail(oracle::coeffs_lookahead_torch_sgd(0.2L, 0.7L, 4, 0.6L), 3)});
  for (const auto& [name, m] : methods)
    for (double K : {1.0, 3.0})
      for (double s2 : {0.0, 0.3}) {
        CAPTURE(name);
        CAPTURE(K);
        CAPTURE(s2);
        const auto a = oracle::dense_loss(lam, init, m.s0, K, s2, batch, m.coeffs, 200);
        const auto b = oracle::full_loss(lam, init, m.s0, K, s2, batch, m.coeffs, 200);
        CHECK(double(max_rel_diff(a, b)) < 1e-14);
      }
}

TEST_CASE("hand-derived sequences of different published methods agree where the methods coincide") {
  const std::vector<Real> lam{1.0L, 0.4L, 0.1L, 0.03L};
  const std::vector<Real> init{1.0L, 1.5L, 0.7L, 2.0L};
  auto same = [&](const Method& a, const Method& b, double tol = 1e-16, std::uint64_t every = 1) {
    for (double K : {1.0, 3.0})
      for (double s2 : {0.0, 0.2}) {
        const auto la = loss_of(lam, init, a, K, s2, 3, 150), lb = loss_of(lam, init, b, K, s2, 3, 150);
        Real worst = 0;
        for (std::size_t t = 0; t < la.size(); t += every) worst = std::max(worst, rel_err(la[t], lb[t]));
        CHECK(double(worst) < tol);
      }
  };
  SUBCASE("torch SGD without dampening is heavy ball (p_{t+1} - p_t = mu (p_t - p_{t-1}) - lr g_t)") {
    same(oracle::coeffs_torch_sgd(0.3L, 0.8L, 0, false), oracle::coeffs_heavy_ball(0.3L, 0.8L), 1e-13);
  }
  SUBCASE("torch SGD nesterov=True is Nesterov reported at the look-ahead point") {
    same(oracle::coeffs_torch_sgd(0.3L, 0.8L, 0, true), oracle::coeffs_nesterov(0.3L, 0.8L, true), 1e-13);
  }
  SUBCASE("torch SGD with momentum 0 is SGD whatever the dampening") {
    same(oracle::coeffs_torch_sgd(0.3L, 0, 0.5L, false), oracle::coeffs_sgd(0.3L));
  }
  SUBCASE("QHM with nu = 0 is SGD") { same(oracle::coeffs_qhm(0.3L, 0.9L, 0), oracle::coeffs_sgd(0.3L), 1e-15); }
  SUBCASE("heavy ball / Nesterov with beta = 0 are SGD") {
    same(oracle::coeffs_heavy_ball(0.3L, 0), oracle::coeffs_sgd(0.3L), 1e-15);
    same(oracle::coeffs_nesterov(0.3L, 0), oracle::coeffs_sgd(0.3L), 1e-15);
  }
  SUBCASE("Schedule-Free with beta = 0 is SGD averaged from step 1 (tail:start=1)") {
    same(oracle::coeffs_schedule_free(0.4L, 0), oracle::coeffs_tail(oracle::coeffs_sgd(0.4L), 1), 1e-14);
  }
  SUBCASE("Polyak is tail:start=0; EMA with decay 0 is the method itself") {
    same(oracle::coeffs_polyak(oracle::coeffs_heavy_ball(0.3L, 0.5L)),
         oracle::coeffs_tail(oracle::coeffs_heavy_ball(0.3L, 0.5L), 0), 1e-15);
    same(oracle::coeffs_ema(oracle::coeffs_qhm(0.3L, 0.9L, 0.6L), 0), oracle::coeffs_qhm(0.3L, 0.9L, 0.6L), 1e-15);
  }
  SUBCASE("Lookahead with alpha = 1 is its inner optimizer at the synchronisation steps") {
    same(oracle::coeffs_lookahead_sgd(0.4L, 5, 1), oracle::coeffs_sgd(0.4L), 1e-15, 5);
    same(oracle::coeffs_lookahead_torch_sgd(0.2L, 0.7L, 5, 1, 0.3L), oracle::coeffs_torch_sgd(0.2L, 0.7L, 0.3L, false),
         1e-15, 5);
  }
  SUBCASE("Schedule-Free weights: c_{t+1} = 1/(t+1) at constant lr; running max under a falling lr") {
    const auto sf = oracle::coeffs_schedule_free(0.4L, 0.9L);
    for (std::uint64_t t = 0; t < 50; ++t) CHECK(double(rel_err(sf.coeffs(t).P(1, 0), Real(1) / Real(t + 1))) < 1e-18);
    // gamma = 1, 1/2, 1/4, ...: lr_max stays 1, so the weights stay uniform: c = 1/(t+1) still.
    const auto fall = oracle::coeffs_schedule_free([](std::uint64_t t) { return std::pow(Real(0.5), Real(t)); }, 0.9L);
    for (std::uint64_t t = 0; t < 20; ++t) CHECK(double(rel_err(fall.coeffs(t).P(1, 0), Real(1) / Real(t + 1))) < 1e-18);
    // Warmup W = 4: gamma_t = lr (t+1)/4 for t < 4: c_{t+1} = (t+1)^2 / sum_{s<=t} (s+1)^2.
    const auto warm = oracle::coeffs_schedule_free(0.4L, 0.9L, 4);
    for (std::uint64_t t = 0; t < 4; ++t) {
      Real sum = 0;
      for (std::uint64_t s = 0; s <= t; ++s) sum += Real((s + 1) * (s + 1));
      CHECK(double(rel_err(warm.coeffs(t).P(1, 0), Real((t + 1) * (t + 1)) / sum)) < 1e-18);
    }
  }
}

TEST_CASE("Monte Carlo of the published updates agrees with dense_loss of the hand-derived coefficients") {
  using oracle::Law;
  using Kind = oracle::Averaged::Kind;
  auto make = [](auto f) { return oracle::Factory(f); };
  // Rows are at t = 8, 16, ..., 40: the Lookahead sync periods (5 and 3) are chosen so that
  // most rows fall between synchronisations, where slow and fast weights differ.
  std::uint64_t seed = 1000;
  for (Law law : {Law::gaussian, Law::rademacher}) {
    const double s2 = law == Law::gaussian ? 0.0 : 0.3;
    const std::string tag = law == Law::gaussian ? " [gauss]" : " [rademacher, s2=0.3]";
    check_mc("sgd" + tag, oracle::coeffs_sgd(0.3L), make([] { return std::make_unique<oracle::PlainSGD>(0.3L); }), law,
             s2, ++seed);
    check_mc("heavy ball" + tag, oracle::coeffs_heavy_ball(0.1L, 0.6L),
             make([] { return std::make_unique<oracle::HeavyBall>(0.1L, 0.6L); }), law, s2, ++seed);
    check_mc("nesterov" + tag, oracle::coeffs_nesterov(0.1L, 0.6L),
             make([] { return std::make_unique<oracle::Nesterov>(0.1L, 0.6L); }), law, s2, ++seed);
    check_mc("torch-sgd damp" + tag, oracle::coeffs_torch_sgd(0.1L, 0.8L, 0.5L, false),
             make([] { return std::make_unique<oracle::TorchSGD>(0.1L, 0.8L, 0.5L, false); }), law, s2, ++seed,
             {{"first buffer damped", shifted(oracle::coeffs_torch_sgd(0.1L, 0.8L, 0.5L, false))}});
    check_mc("torch-sgd nesterov" + tag, oracle::coeffs_torch_sgd(0.05L, 0.8L, 0, true),
             make([] { return std::make_unique<oracle::TorchSGD>(0.05L, 0.8L, 0, true); }), law, s2, ++seed,
             {{"nag output e_t", oracle::coeffs_nesterov(0.05L, 0.8L, false)}});
    check_mc("qhm" + tag, oracle::coeffs_qhm(0.3L, 0.9L, 0.7L),
             make([] { return std::make_unique<oracle::QHM>(0.3L, 0.9L, 0.7L); }), law, s2, ++seed);
    check_mc("schedule-free" + tag, oracle::coeffs_schedule_free(0.3L, 0.9L),
             make([] { return std::make_unique<oracle::ScheduleFreeSGD>(0.3L, 0.9L); }), law, s2, ++seed,
             {{"loss at y", with_output(oracle::coeffs_schedule_free(0.3L, 0.9L), oracle::detail::vec2(0.1L, 0.9L))},
              {"loss at z", with_output(oracle::coeffs_schedule_free(0.3L, 0.9L), oracle::detail::vec2(1, 0))}});
    check_mc("schedule-free warmup 10" + tag, oracle::coeffs_schedule_free(0.3L, 0.9L, 10),
             make([] { return std::make_unique<oracle::ScheduleFreeSGD>(0.3L, 0.9L, 10); }), law, s2, ++seed);
    check_mc("lookahead sgd k=5 a=0.5" + tag, oracle::coeffs_lookahead_sgd(0.3L, 5, 0.5L), make([] {
               return std::make_unique<oracle::Lookahead>(std::make_unique<oracle::PlainSGD>(0.3L), 5, 0.5L);
             }),
             law, s2, ++seed,
             {{"loss at fast weights", with_output(oracle::coeffs_lookahead_sgd(0.3L, 5, 0.5L), oracle::detail::vec2(1, 0))}});
    check_mc("lookahead torch-sgd mu=0.7 k=3 a=0.6" + tag, oracle::coeffs_lookahead_torch_sgd(0.08L, 0.7L, 3, 0.6L),
             make([] {
               return std::make_unique<oracle::Lookahead>(std::make_unique<oracle::TorchSGD>(0.08L, 0.7L, 0, false), 3,
                                                          0.6L);
             }),
             law, s2, ++seed,
             {{"buffer reset at sync (pullback_momentum='reset')", buffer_reset_at_sync(0.08L, 0.7L, 3, 0.6L)},
              {"loss at fast weights", with_output(oracle::coeffs_lookahead_torch_sgd(0.08L, 0.7L, 3, 0.6L),
                                                   oracle::detail::vec3(1, 0, 0))}});
    check_mc("ema 0.8 of torch-sgd" + tag, oracle::coeffs_ema(oracle::coeffs_torch_sgd(0.05L, 0.8L, 0, false), 0.8L),
             make([] {
               return std::make_unique<oracle::Averaged>(std::make_unique<oracle::TorchSGD>(0.05L, 0.8L, 0, false),
                                                         Kind::ema, 0.8L);
             }),
             law, s2, ++seed,
             {{"decay convention swapped (0.2)", oracle::coeffs_ema(oracle::coeffs_torch_sgd(0.05L, 0.8L, 0, false), 0.2L)}});
    check_mc("polyak of heavy ball" + tag, oracle::coeffs_polyak(oracle::coeffs_heavy_ball(0.1L, 0.6L)), make([] {
               return std::make_unique<oracle::Averaged>(std::make_unique<oracle::HeavyBall>(0.1L, 0.6L), Kind::polyak);
             }),
             law, s2, ++seed, {{"e_0 left out (tail:start=1)", oracle::coeffs_tail(oracle::coeffs_heavy_ball(0.1L, 0.6L), 1)}});
    check_mc("tail:start=15 of sgd" + tag, oracle::coeffs_tail(oracle::coeffs_sgd(0.3L), 15), make([] {
               return std::make_unique<oracle::Averaged>(std::make_unique<oracle::PlainSGD>(0.3L), Kind::tail, 0, 15);
             }),
             law, s2, ++seed, {{"start 10", oracle::coeffs_tail(oracle::coeffs_sgd(0.3L), 10)}});
  }
}

TEST_CASE("PyTorch's own curves (tests/data/torch) agree with dense_loss of the hand-derived coefficients") {
  const Real lr = 0.05L, mu = 0.9L;
  using W = std::vector<std::pair<std::string, std::pair<Method, double>>>;

  SUBCASE("torch.optim.SGD momentum 0.9 dampening 0.5") {
    // Wrong: dampening ignored; the first buffer damped too (b_0 = (1 - tau) g_0).
    const Method first_damped = shifted(oracle::coeffs_torch_sgd(lr, mu, 0.5L, false));
    check_torch("sgd_momentum_dampening", oracle::coeffs_torch_sgd(lr, mu, 0.5L, false), 0.0,
                W{{"dampening ignored", {oracle::coeffs_torch_sgd(lr, mu, 0, false), 0.0}},
                  {"first buffer damped", {first_damped, 0.0}}});
  }
  SUBCASE("torch.optim.SGD nesterov=True") {
    check_torch("sgd_nesterov", oracle::coeffs_torch_sgd(lr, mu, 0, true), 0.0,
                W{{"nag (output e_t, not the look-ahead p)", {oracle::coeffs_nesterov(lr, mu, false), 0.0}}});
    // the same curve from the Nesterov derivation reported at the look-ahead point
    const ZStats s = torch_z(read_curve("sgd_nesterov"), oracle::coeffs_nesterov(lr, mu, true), 0.0);
    CHECK(s.max_abs() < oracle::bonferroni_bound(s.z.size(), 1e-3));
  }
  SUBCASE("torch.optim.SGD momentum 0.9 with label noise 0.25") {
    check_torch("sgd_momentum_noise", oracle::coeffs_torch_sgd(lr, mu, 0, false), 0.25,
                W{{"label noise ignored", {oracle::coeffs_torch_sgd(lr, mu, 0, false), 0.0}}});
  }
  SUBCASE("AveragedModel (SWA) of plain SGD, updated after every step = tail:start=1") {
    check_torch("sgd_swa_tail", oracle::coeffs_tail(oracle::coeffs_sgd(0.2L), 1), 0.0,
                W{{"polyak (e_0 included)", {oracle::coeffs_polyak(oracle::coeffs_sgd(0.2L)), 0.0}},
                  {"no averaging", {oracle::coeffs_sgd(0.2L), 0.0}}});
  }
  SUBCASE("AveragedModel EMA 0.9 of SGD momentum 0.9, updated before training and after every step") {
    check_torch("sgd_momentum_ema", oracle::coeffs_ema(oracle::coeffs_torch_sgd(lr, mu, 0, false), 0.9L), 0.0,
                W{{"decay convention swapped (0.1)", {oracle::coeffs_ema(oracle::coeffs_torch_sgd(lr, mu, 0, false), 0.1L), 0.0}},
                  {"no averaging", {oracle::coeffs_torch_sgd(lr, mu, 0, false), 0.0}}});
  }
  SUBCASE("SGD momentum 0.9 under SequentialLR(LinearLR warmup 20, CosineAnnealingLR to 200)") {
    // the lr torch actually used at each step, as recorded by the script
    std::string header;
    const auto rows = read_csv(data_path("sgd_momentum_warmup_cosine_lr.csv"), header);
    REQUIRE(header == "step,lr");
    REQUIRE(rows.size() == torch_steps);
    std::vector<Real> used;
    Real worst = 0;
    for (const auto& r : rows) {
      used.push_back(std::stold(r[1]));
      worst = std::max(worst, std::abs(used.back() - schedule_lr(std::stoull(r[0]))));
    }
    CHECK(double(worst) < 1e-15);  // the closed form is what SequentialLR does (float64 rounding)
    // (dense_loss reads Coeffs(200) only for its o: any lr will do there)
    const oracle::ScalarFn recorded = [used](std::uint64_t t) { return used.at(std::min<std::size_t>(t, used.size() - 1)); };
    const oracle::ScalarFn late = [](std::uint64_t t) { return schedule_lr(t + 1); };
    check_torch("sgd_momentum_warmup_cosine", oracle::coeffs_torch_sgd(schedule_lr, mu, 0, false), 0.0,
                W{{"constant lr", {oracle::coeffs_torch_sgd(lr, mu, 0, false), 0.0}},
                  {"schedule one step early (lr(t+1))", {oracle::coeffs_torch_sgd(late, mu, 0, false), 0.0}}});
    const ZStats s = torch_z(read_curve("sgd_momentum_warmup_cosine"), oracle::coeffs_torch_sgd(recorded, mu, 0, false), 0.0);
    CHECK(s.max_abs() < oracle::bonferroni_bound(s.z.size(), 1e-3));
  }
}
