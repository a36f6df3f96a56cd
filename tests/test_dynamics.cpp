// The O(d) time stepping of src/dynamics.cpp against two dense oracles built
// here from scratch, plus double vs 50-digit agreement, divergence reporting
// and the steps-to-target search.
//
// Oracle 1 (full covariance): the whole kd x kd second moment M = E[s s^T] of
// the stacked state s = (s^(1); ...; s^(k)), each s^(a) in R^d, propagated as
//   s' = (P (x) I - q r^T (x) H) s - (q (x) I) [(H^ - H) z - (1/B) sum_b x_b xi_b],
//   M' = A M A^T + q q^T (x) ( E[(H^ - H) Z (H^ - H)] + (sigma^2 / B) H ),
// with Z = E[z z^T] (z = r^T s) and the fourth moment of x = H^(1/2) u taken
// entry by entry from E[u_a u_b u_c u_e] = d_ab d_ce + d_ac d_be + d_ae d_bc
// + (K - 3) d_abce. It keeps every cross-direction entry and starts from a
// correlated E[e_0 e_0^T], so it also checks that only the diagonal blocks
// matter.
//
// Oracle 2 (Kronecker): the k^2 d entries vec S_i with
//   vec S_i' = (A_i (x) A_i) vec S_i + (1/B) vec(q q^T) [ (K-2) lambda_i^2 vec(r r^T)^T vec S_i
//              + lambda_i sum_j lambda_j vec(r r^T)^T vec S_j + sigma^2 lambda_i ],
// assembled as one dense matrix T and one forcing vector f, x' = T x + f.
#include <doctest/doctest.h>

#include "method_specs.hpp"
#include "cesr/dynamics.hpp"

#include <Eigen/Dense>

#include <malloc.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <random>
#include <vector>

namespace {

using cesr::Method;
using cesr::MethodSpec;
using cesr::NoiseModel;
using cesr::Spectrum;
using Mat = Eigen::Matrix<long double, Eigen::Dynamic, Eigen::Dynamic>;
using Vec = Eigen::Matrix<long double, Eigen::Dynamic, 1>;

using cesr_test::spec_of;

MethodSpec asgd_spec(double lr, double kappa, double xi) {
  return cesr::method_spec("asgd", {{"lr", lr}, {"kappa", kappa}, {"xi", xi}});
}

// Quasi-hyperbolic momentum (Ma & Yarats 2019) with state (e, gradient buffer):
//   b' = beta b + (1 - beta) g,   e' = e - eta ((1 - nu) g + nu b').
Method<double> qhm(double eta, double beta, double nu) {
  Method<double> m;
  m.k = 2;
  m.P = {{{1.0, -eta * nu * beta}, {0.0, beta}}};
  m.q = {eta * (1 - nu * beta), -(1 - beta)};
  m.r = {1.0, 0.0};
  m.o = {1.0, 0.0};
  return m;
}

// A random k = 2 method: P near a contraction, small gradient injection,
// generic query and output vectors.
Method<double> random_method(unsigned seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-1, 1);
  Method<double> m;
  m.k = 2;
  m.P = {{{0.7 + 0.2 * u(rng), 0.3 * u(rng)}, {0.3 * u(rng), 0.6 + 0.2 * u(rng)}}};
  m.q = {0.3 + 0.1 * u(rng), 0.2 * u(rng)};
  m.r = {1.0 + 0.2 * u(rng), 0.3 * u(rng)};
  m.o = {1.0 + 0.1 * u(rng), 0.2 * u(rng)};
  return m;
}

Method<double> random_method_k1(unsigned seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-1, 1);
  Method<double> m;
  m.k = 1;
  m.P[0][0] = 0.95 + 0.04 * u(rng);
  m.q[0] = 0.4 + 0.1 * u(rng);
  m.r[0] = 1.0 + 0.3 * u(rng);
  m.o[0] = 0.8 + 0.3 * u(rng);
  return m;
}

Spectrum small_spectrum(std::size_t d, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> lam(0.05, 1.0), init(0.2, 2.0);
  Spectrum s;
  for (std::size_t i = 0; i < d; ++i) {
    s.lambda.push_back(lam(rng));
    s.init.push_back(init(rng));
  }
  return s;
}

Mat kron(const Mat& a, const Mat& b) {
  Mat out(a.rows() * b.rows(), a.cols() * b.cols());
  for (Eigen::Index i = 0; i < a.rows(); ++i)
    for (Eigen::Index j = 0; j < a.cols(); ++j) out.block(i * b.rows(), j * b.cols(), b.rows(), b.cols()) = a(i, j) * b;
  return out;
}

struct Small {
  Mat P;
  Vec q, r, o;
};

Small small_of(const Method<double>& m) {
  Small s{Mat(m.k, m.k), Vec(m.k), Vec(m.k), Vec(m.k)};
  for (int a = 0; a < m.k; ++a) {
    s.q(a) = m.q[a];
    s.r(a) = m.r[a];
    s.o(a) = m.o[a];
    for (int b = 0; b < m.k; ++b) s.P(a, b) = m.P[a][b];
  }
  return s;
}

// Oracle 1: full kd x kd covariance. Returns L_t for t = 0..steps.
std::vector<long double> full_covariance_losses(const Spectrum& sp, const Method<double>& method,
                                                const NoiseModel& noise, int steps, unsigned seed) {
  const Small m = small_of(method);
  const int k = method.k;
  const auto d = static_cast<Eigen::Index>(sp.dim());
  Mat H = Mat::Zero(d, d);
  for (Eigen::Index i = 0; i < d; ++i) H(i, i) = sp.lambda[i];
  const Mat I = Mat::Identity(d, d);
  const Mat A = kron(m.P, I) - kron(m.q * m.r.transpose(), H);
  const Mat Q = kron(m.q, I);      // kd x d: injects a d-vector into every state block
  const Mat R = kron(m.r.transpose(), I);  // d x kd: z = R s
  const Mat O = kron(m.o.transpose(), I);  // d x kd: e = O s
  // Correlated initial error with the prescribed variances: C0 = D^(1/2) C D^(1/2)
  // for a random correlation matrix C.
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> g;
  Mat G(d, d);
  for (Eigen::Index i = 0; i < d; ++i)
    for (Eigen::Index j = 0; j < d; ++j) G(i, j) = g(rng);
  Mat C = G * G.transpose() + Mat::Identity(d, d) * 0.5L;
  Vec dsc = C.diagonal().cwiseSqrt().cwiseInverse();
  C = dsc.asDiagonal() * C * dsc.asDiagonal();
  Mat C0(d, d);
  for (Eigen::Index i = 0; i < d; ++i)
    for (Eigen::Index j = 0; j < d; ++j) C0(i, j) = std::sqrt(sp.init[i] * sp.init[j]) * C(i, j);
  Mat M = kron(Mat::Ones(k, k), C0);  // every state vector starts at e_0
  const long double K = noise.kurtosis, B = static_cast<long double>(noise.batch), s2 = noise.label_noise;
  const auto fourth = [&](Eigen::Index a, Eigen::Index b, Eigen::Index c, Eigen::Index e) -> long double {
    long double v = (a == b && c == e) + (a == c && b == e) + (a == e && b == c);
    if (a == b && b == c && c == e) v += K - 3;
    return v;
  };
  std::vector<long double> losses;
  for (int t = 0;; ++t) {
    losses.push_back(0.5L * (H * O * M * O.transpose()).trace());
    if (t == steps) break;
    const Mat Z = R * M * R.transpose();
    // E[x x^T Z x x^T]_{ae} = sum_{bc} sqrt(l_a l_b l_c l_e) E[u_a u_b u_c u_e] Z_bc
    Mat E4 = Mat::Zero(d, d);
    for (Eigen::Index a = 0; a < d; ++a)
      for (Eigen::Index e = 0; e < d; ++e)
        for (Eigen::Index b = 0; b < d; ++b)
          for (Eigen::Index c = 0; c < d; ++c)
            E4(a, e) += std::sqrt(H(a, a) * H(b, b) * H(c, c) * H(e, e)) * fourth(a, b, c, e) * Z(b, c);
    const Mat gradient_noise = (E4 - H * Z * H) / B + (s2 / B) * H;
    M = A * M * A.transpose() + Q * gradient_noise * Q.transpose();
  }
  return losses;
}

// Oracle 2: dense operator on the k^2 d entries, x' = T x + f.
struct KronOperator {
  Mat T;
  Vec f, x0, loss_row;
};

KronOperator kron_operator(const Spectrum& sp, const Method<double>& method, const NoiseModel& noise) {
  const Small m = small_of(method);
  const int k = method.k, k2 = k * k;
  const auto d = static_cast<Eigen::Index>(sp.dim());
  const Mat qq = m.q * m.q.transpose(), rr = m.r * m.r.transpose(), oo = m.o * m.o.transpose();
  const Vec vqq = qq.reshaped(), vrr = rr.reshaped(), voo = oo.reshaped();
  Vec s0(k);  // S_i(0) = init_i s0 s0^T
  for (int a = 0; a < k; ++a) s0(a) = method.s0[a];
  const long double K = noise.kurtosis, B = static_cast<long double>(noise.batch), s2 = noise.label_noise;
  KronOperator op{Mat::Zero(k2 * d, k2 * d), Vec::Zero(k2 * d), Vec::Zero(k2 * d), Vec::Zero(k2 * d)};
  for (Eigen::Index i = 0; i < d; ++i) {
    const long double l = sp.lambda[i];
    const Mat Ai = m.P - l * m.q * m.r.transpose();
    op.T.block(i * k2, i * k2, k2, k2) = kron(Ai, Ai) + ((K - 2) * l * l / B) * vqq * vrr.transpose();
    for (Eigen::Index j = 0; j < d; ++j)  // rank-one coupling through psi
      op.T.block(i * k2, j * k2, k2, k2) += (l / B) * vqq * (static_cast<long double>(sp.lambda[j]) * vrr.transpose());
    op.f.segment(i * k2, k2) = (s2 * l / B) * vqq;
    op.x0.segment(i * k2, k2) = static_cast<long double>(sp.init[i]) * (s0 * s0.transpose()).reshaped();
    op.loss_row.segment(i * k2, k2) = 0.5L * l * voo;
  }
  return op;
}

std::vector<long double> kron_losses(const KronOperator& op, int steps) {
  std::vector<long double> losses;
  Vec x = op.x0;
  for (int t = 0;; ++t) {
    losses.push_back(op.loss_row.dot(x));
    if (t == steps) break;
    x = op.T * x + op.f;
  }
  return losses;
}

double max_relative_error(const std::vector<double>& got, const std::vector<long double>& want) {
  REQUIRE(got.size() == want.size());
  double worst = 0;
  for (std::size_t t = 0; t < got.size(); ++t)
    worst = std::max(worst, static_cast<double>(std::abs((got[t] - want[t]) / want[t])));
  return worst;
}

struct Case {
  const char* name;
  Method<double> method;
};

std::vector<Case> all_methods() {
  return {
      {"sgd", cesr::make_method<double>(spec_of("sgd", 0.6))},
      {"hb", cesr::make_method<double>(spec_of("hb", 0.3, 0.6))},
      {"nag", cesr::make_method<double>(spec_of("nag", 0.3, 0.6))},
      {"asgd", cesr::make_method<double>(asgd_spec(0.3, 10, 2))},
      {"qhm", qhm(0.5, 0.8, 0.7)},
      {"random k=2", random_method(7)},
      {"random k=1", random_method_k1(11)},
  };
}

}  // namespace

TEST_CASE("the O(d) recursion equals the dense operators for every method, K and sigma^2") {
  constexpr int steps = 300;
  double worst_full = 0, worst_kron = 0;
  for (const std::size_t d : {3u, 5u}) {
    const Spectrum sp = small_spectrum(d, 100 + static_cast<unsigned>(d));
    for (const auto& c : all_methods()) {
      for (const double K : {3.0, 1.0}) {
        for (const double s2 : {0.0, 0.3}) {
          for (const std::uint64_t B : {1u, 4u}) {
            CAPTURE(c.name);
            CAPTURE(d);
            CAPTURE(K);
            CAPTURE(s2);
            CAPTURE(B);
            const NoiseModel noise{B, K, s2};
            const auto curve = cesr::loss_curve<double>(sp, c.method, noise, steps, 1);
            REQUIRE_FALSE(curve.diverged_at);
            REQUIRE(curve.loss.size() == steps + 1);
            const auto full = full_covariance_losses(sp, c.method, noise, steps, 5);
            const auto kr = kron_losses(kron_operator(sp, c.method, noise), steps);
            // The trajectory must actually move: the comparison is over a
            // change of several orders of magnitude or towards a noise floor.
            CHECK(std::abs(full.back() / full.front() - 1) > 0.1L);
            const double ef = max_relative_error(curve.loss, full), ek = max_relative_error(curve.loss, kr);
            CHECK(ef <= 1e-12);
            CHECK(ek <= 1e-12);
            worst_full = std::max(worst_full, ef);
            worst_kron = std::max(worst_kron, ek);
          }
        }
      }
    }
  }
  MESSAGE("largest relative difference over 112 runs x 301 steps: full covariance " << worst_full
                                                                                    << ", Kronecker " << worst_kron);
}

TEST_CASE("psi is the coupling sum of the dense state") {
  const Spectrum sp = small_spectrum(4, 3);
  const auto method = cesr::make_method<double>(spec_of("nag", 0.4, 0.5));
  const NoiseModel noise{2, 3.0, 0.1};
  const KronOperator op = kron_operator(sp, method, noise);
  const Small m = small_of(method);
  const Vec vrr = (m.r * m.r.transpose()).reshaped();
  cesr::Dynamics<double> dyn(sp, method, noise);
  Vec x = op.x0;
  for (int t = 0; t <= 50; ++t) {
    long double psi = 0;
    for (std::size_t i = 0; i < sp.dim(); ++i) psi += sp.lambda[i] * vrr.dot(x.segment(i * 4, 4));
    CHECK(dyn.time() == static_cast<std::uint64_t>(t));
    CHECK(dyn.psi() == doctest::Approx(static_cast<double>(psi)).epsilon(1e-13));
    x = op.T * x + op.f;
    dyn.step();
  }
  // reset() returns to t = 0 and L_0.
  dyn.reset();
  CHECK(dyn.time() == 0);
  CHECK(dyn.loss() == doctest::Approx(sp.initial_loss()).epsilon(1e-15));
}

TEST_CASE("double and 50-digit trajectories agree on a well-conditioned problem") {
  const Spectrum sp = cesr::make_spectrum("loguniform:d=200,kappa=10", "powerlaw:beta=0.5");
  for (const auto& spec : {spec_of("hb", 0.5, 0.5), spec_of("nag", 0.5, 0.5),
                           spec_of("sgd", 0.8), asgd_spec(0.5, 10, 2)}) {
    CAPTURE(cesr::describe(spec));
    const NoiseModel noise{256, 3.0, 1e-3};
    const auto lo = cesr::loss_curve<double>(sp, cesr::make_method<double>(spec), noise, 400, 10);
    const auto hi = cesr::loss_curve<cesr::mp50>(sp, cesr::make_method<cesr::mp50>(spec), noise, 400, 10);
    REQUIRE(lo.step == hi.step);
    double worst = 0;
    for (std::size_t i = 0; i < lo.loss.size(); ++i)
      worst = std::max(worst, std::abs(lo.loss[i] / cesr::to_double(hi.loss[i]) - 1));
    CHECK(worst <= 1e-13);
    CHECK(hi.loss.back() < hi.loss.front() / 10);
    MESSAGE(cesr::describe(spec) << ": largest relative double/mp50 difference " << worst);
  }
}

TEST_CASE("losses far below and far above 1 keep full precision (exact power-of-two rescaling)") {
  // Fast decay to ~1e-250 and, for the unstable neighbour, growth to ~1e+250:
  // both pass several rescalings and must still match 50 digits to rounding.
  const Spectrum sp = cesr::make_spectrum("loguniform:d=20,kappa=4", "isotropic");
  const NoiseModel noise{1000, 3.0, 0.0};
  // lr = 1: every direction contracts by |z| = sqrt(0.3) per step; lr = 2.7:
  // eta lambda_max > 2 (1 + beta), the top direction grows by about 1.29 per step.
  for (const auto& [lr, steps] : {std::pair{1.0, 450}, std::pair{2.7, 2000}}) {
    const auto spec = spec_of("hb", lr, 0.3);
    CAPTURE(lr);
    const auto lo = cesr::loss_curve<double>(sp, cesr::make_method<double>(spec), noise, steps, 10);
    const auto hi = cesr::loss_curve<cesr::mp50>(sp, cesr::make_method<cesr::mp50>(spec), noise, steps, 10);
    REQUIRE_FALSE(lo.diverged_at);
    REQUIRE(lo.step == hi.step);
    const double last = std::abs(std::log10(lo.loss.back()));
    CHECK(last > 150);
    double worst = 0;
    for (std::size_t i = 0; i < lo.loss.size(); ++i)
      worst = std::max(worst, std::abs(lo.loss[i] / cesr::to_double(hi.loss[i]) - 1));
    CHECK(worst <= 1e-12);
    MESSAGE("lr " << lr << ": final loss " << lo.loss.back() << ", largest double/mp50 difference " << worst);
  }
}

namespace {
// Spectral radius of the dense operator (the growth rate of a long run).
long double spectral_radius(const Mat& T) {
  Eigen::EigenSolver<Mat> es(T, false);
  return es.eigenvalues().cwiseAbs().maxCoeff();
}
}  // namespace

TEST_CASE("a mildly unstable method is reported as diverging at the same step in double and mp50") {
  const Spectrum sp = small_spectrum(4, 21);
  const NoiseModel noise{1, 3.0, 0.0};
  // Heavy ball whose instability comes from the gradient noise alone: choose
  // the step size by bisection on the dense operator so that rho(T) = 1.01.
  double lo = 0.01, hi = 2.0;
  for (int it = 0; it < 60; ++it) {
    const double mid = 0.5 * (lo + hi);
    const auto T = kron_operator(sp, cesr::make_method<double>(spec_of("hb", mid, 0.5)), noise).T;
    (spectral_radius(T) > 1.01L ? hi : lo) = mid;
  }
  const auto spec = spec_of("hb", lo, 0.5);
  const long double rho = spectral_radius(kron_operator(sp, cesr::make_method<double>(spec), noise).T);
  CHECK(std::abs(rho - 1.01L) < 1e-9L);
  constexpr std::uint64_t steps = 200000;
  const auto d64 = cesr::loss_curve<double>(sp, cesr::make_method<double>(spec), noise, steps, 1000);
  const auto m50 = cesr::loss_curve<cesr::mp50>(sp, cesr::make_method<cesr::mp50>(spec), noise, steps, 1000);
  REQUIRE(d64.diverged_at);
  REQUIRE(m50.diverged_at);
  CHECK(*d64.diverged_at == *m50.diverged_at);
  // Growth like rho^t: the loss passes the largest double near
  // t = log(DBL_MAX / L_0) / log(rho) (up to the transient's constant).
  const double predicted = (std::log(cesr::divergence_threshold) - std::log(sp.initial_loss())) / std::log(1.01);
  CHECK(std::abs(double(*d64.diverged_at) / predicted - 1) < 0.02);
  MESSAGE("rho = 1.01: diverged at step " << *d64.diverged_at << " (double), " << *m50.diverged_at
                                          << " (mp50); log(DBL_MAX / L_0) / log(rho) = " << predicted);
  // Only points before the divergence are kept, all finite.
  REQUIRE_FALSE(d64.step.empty());
  CHECK(d64.step.back() < *d64.diverged_at);
  for (double v : d64.loss) CHECK(std::isfinite(v));
  // The stable neighbour (rho < 1) does not diverge.
  const auto stable = spec_of("hb", 0.9 * lo, 0.5);
  CHECK(spectral_radius(kron_operator(sp, cesr::make_method<double>(stable), noise).T) < 1);
  CHECK_FALSE(cesr::loss_curve<double>(sp, cesr::make_method<double>(stable), noise, 20000, 20000).diverged_at);
}

TEST_CASE("a large state entry that the loss does not see survives the rescaling") {
  // k = 2 with a decoupled second state: the observed first state decays by
  // 1/4 per step in second moment (to 1e-480 in 800 steps, which the
  // rescaling must follow), the unobserved one barely decays. Scaling the
  // state up to follow the loss must not overflow the unobserved entries.
  Method<double> m;
  m.k = 2;
  m.P = {{{0.5, 0.0}, {0.0, 0.999}}};
  m.q = {0.0, 0.0};
  m.r = {1.0, 0.0};
  m.o = {1.0, 0.0};
  const Spectrum sp{{1.0, 0.5}, {1.0, 2.0}};
  const NoiseModel noise{1, 3.0, 0.0};
  const auto lo = cesr::loss_curve<double>(sp, m, noise, 800, 100);
  const auto hi = cesr::loss_curve<cesr::mp50>(sp, m.cast<cesr::mp50>(), noise, 800, 100);
  REQUIRE_FALSE(lo.diverged_at);
  REQUIRE(lo.step == hi.step);
  // Exact: L_t = 1/2 sum_i lambda_i init_i 0.25^t.
  for (std::size_t i = 0; i < lo.step.size(); ++i) {
    const double want = 0.5 * 2.0 * std::pow(0.25, double(lo.step[i]));  // underflows to 0 beyond t ~ 537
    CHECK(lo.loss[i] == doctest::Approx(want).epsilon(1e-13));
    CHECK(std::abs(cesr::to_double(hi.loss[i]) - want) <= 1e-13 * want);
  }
}

TEST_CASE("a loss that decays for ever underflows to 0 and is never reported as diverging") {
  // rho = (1 - eta lambda)^2 = 2^-104 per step: the scale exponent would pass
  // 2^31 after 2e7 steps if it were not bounded.
  const Spectrum sp{{1.0 - std::ldexp(1.0, -52)}, {1.0}};
  MethodSpec spec = spec_of("sgd", 1.0);
  const NoiseModel noise{1, 1.0, 0.0};
  const auto curve = cesr::loss_curve<double>(sp, cesr::make_method<double>(spec), noise, 30'000'000, 10'000'000);
  CHECK_FALSE(curve.diverged_at);
  REQUIRE(curve.loss.size() == 4);
  CHECK(curve.loss[0] > 0);
  CHECK(curve.loss[3] == 0.0);
  const auto hi = cesr::steps_to_target<cesr::mp50>(sp, cesr::make_method<cesr::mp50>(spec), noise,
                                                    cesr::mp50(1e-300), false, 100);
  REQUIRE(hi.steps);
  CHECK(*hi.steps == 10);  // L_t = L_0 2^(-104 t) <= 1e-300 first at t = 10
}

TEST_CASE("loss_curve prints t = 0, N, 2N, ... and always the last step") {
  const Spectrum sp = small_spectrum(3, 1);
  const auto method = cesr::make_method<double>(spec_of("sgd", 0.5));
  const NoiseModel noise{2, 3.0, 0.0};
  const auto all = cesr::loss_curve<double>(sp, method, noise, 23, 1);
  const auto some = cesr::loss_curve<double>(sp, method, noise, 23, 5);
  CHECK(some.step == std::vector<std::uint64_t>{0, 5, 10, 15, 20, 23});
  for (std::size_t i = 0; i < some.step.size(); ++i) CHECK(some.loss[i] == all.loss[some.step[i]]);
  CHECK(cesr::loss_curve<double>(sp, method, noise, 20, 5).step == std::vector<std::uint64_t>{0, 5, 10, 15, 20});
  CHECK(cesr::loss_curve<double>(sp, method, noise, 0, 5).step == std::vector<std::uint64_t>{0});
  CHECK(cesr::loss_curve<double>(sp, method, noise, 3, 100).step == std::vector<std::uint64_t>{0, 3});
  CHECK_THROWS_AS(cesr::loss_curve<double>(sp, method, noise, 3, 0), std::invalid_argument);
}

TEST_CASE("steps_to_target finds the first step at or below the target") {
  const Spectrum sp = small_spectrum(5, 2);
  const auto method = cesr::make_method<double>(spec_of("hb", 0.4, 0.7));
  const NoiseModel noise{4, 3.0, 0.0};
  const auto curve = cesr::loss_curve<double>(sp, method, noise, 3000, 1);
  const double L0 = curve.loss.front();
  for (const double rel : {0.5, 1e-2, 1e-6}) {
    std::uint64_t first = 0;
    while (curve.loss[first] > rel * L0) ++first;
    const auto abs_res = cesr::steps_to_target<double>(sp, method, noise, rel * L0, false, 100000);
    const auto rel_res = cesr::steps_to_target<double>(sp, method, noise, rel, true, 100000);
    REQUIRE(abs_res.steps);
    REQUIRE(rel_res.steps);
    CHECK(*abs_res.steps == first);
    CHECK(*rel_res.steps == first);
    CHECK(abs_res.loss == curve.loss[first]);
    CHECK(rel_res.initial_loss == L0);
  }
  // Already reached at t = 0.
  CHECK(*cesr::steps_to_target<double>(sp, method, noise, 2.0, true, 10).steps == 0);
  // Not reached within max_steps: no step, the loss at the last step run.
  const auto miss = cesr::steps_to_target<double>(sp, method, noise, 1e-300, false, 50);
  CHECK_FALSE(miss.steps);
  CHECK_FALSE(miss.diverged_at);
  CHECK(miss.steps_run == 50);
  CHECK(miss.loss == curve.loss[50]);
}

TEST_CASE("the noise model rejects what has no meaning") {
  CHECK_NOTHROW(NoiseModel{1, 1.0, 0.0}.validate());
  CHECK_THROWS_WITH_AS(NoiseModel({0, 3.0, 0.0}).validate(), doctest::Contains("--batch"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(NoiseModel({1, 0.5, 0.0}).validate(), doctest::Contains("--kurtosis"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(NoiseModel({1, NAN, 0.0}).validate(), doctest::Contains("--kurtosis"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(NoiseModel({1, 3.0, -1.0}).validate(), doctest::Contains("--noise"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(NoiseModel({1, 3.0, INFINITY}).validate(), doctest::Contains("--noise"),
                       std::invalid_argument);
}

namespace {
// The spectrum times `scale`, initial moments unchanged.
Spectrum scaled(const Spectrum& sp, double scale) {
  Spectrum out = sp;
  for (double& l : out.lambda) l *= scale;
  return out;
}
// A k = 2 custom method in the units of a spectrum scaled by `scale`: what is
// a step size (P entries that multiply a gradient buffer, q of parameter-like
// states) is divided by it; a state that carries gradients keeps q = O(1).
// (The buffer starts at 0, as in PyTorch: a buffer starting at e_0 would mix
// units, and at scale 1e-200 start 1e200 times larger than any gradient.)
Method<double> qhm_scaled(double scale) {
  Method<double> m = qhm(0.5 / scale, 0.8, 0.7);
  m.s0 = {1.0, 0.0, 0.0, 0.0};
  return m;
}
Method<double> random_scaled(unsigned seed, double scale) {
  Method<double> m = random_method(seed);
  for (double& q : m.q) q /= scale;
  return m;
}
}  // namespace

TEST_CASE("spectra scaled by 1e+-200 and 2^+-664 give the dense oracle's losses (no lr^2 lambda^2 overflow)") {
  // The Kronecker oracle runs in long double (exponent range 1e+-4932), so at
  // these scales it forms lr^2 lambda^2 and q q^T without overflow or
  // underflow; the engine in double must agree to rounding. (At 1e-300 the
  // loss itself soon falls below the normal range of double, which is the
  // limit of the printed number, not of the recursion.)
  const Spectrum base = small_spectrum(5, 42);
  constexpr int steps = 200;
  for (const double scale : {1e200, 1e-200, std::ldexp(1.0, 664), std::ldexp(1.0, -664), 1e300, 1e-250}) {
    const std::vector<Case> cases{
        {"sgd", cesr::make_method<double>(spec_of("sgd", 0.6 / scale))},
        {"hb", cesr::make_method<double>(spec_of("hb", 0.3 / scale, 0.6))},
        {"nag", cesr::make_method<double>(spec_of("nag", 0.3 / scale, 0.6))},
        {"asgd", cesr::make_method<double>(asgd_spec(0.3 / scale, 10, 2))},
        {"qhm (gradient buffer)", qhm_scaled(scale)},
        {"random k=2", random_scaled(7, scale)},
    };
    const Spectrum sp = scaled(base, scale);
    for (const auto& c : cases)
      for (const double s2 : {0.0, 0.3}) {
        CAPTURE(scale);
        CAPTURE(std::string(c.name));
        CAPTURE(s2);
        const NoiseModel noise{4, 3.0, s2};
        const auto curve = cesr::loss_curve<double>(sp, c.method, noise, steps, 1);
        REQUIRE_FALSE(curve.diverged_at);
        const auto want = kron_losses(kron_operator(sp, c.method, noise), steps);
        CHECK(std::abs(want.back() / want.front() - 1) > 0.1L);
        CHECK(max_relative_error(curve.loss, want) <= 1e-12);
      }
  }
}

TEST_CASE("every method row, schedule and average is invariant under lambda -> s lambda, lr -> lr / s") {
  // L_t(s lambda, lr / s) = s L_t(lambda, lr) without label noise: the
  // unscaled run (lambda_max < 1) needs no rescaling, the scaled ones do.
  const Spectrum base = cesr::make_spectrum("loguniform:d=40,kappa=100", "isotropic");
  std::vector<MethodSpec> specs{
      cesr::method_spec("torch-sgd", {{"lr", 0.2}, {"momentum", 0.9}, {"dampening", 0.5}}),
      cesr::method_spec("torch-sgd", {{"lr", 0.2}, {"momentum", 0.9}, {"nesterov", 1}}),
      cesr::method_spec("qhm", {{"lr", 0.5}, {"momentum", 0.9}, {"nu", 0.7}}),
      cesr::method_spec("schedule-free", {{"lr", 0.5}, {"momentum", 0.9}}),
      cesr::method_spec("lookahead", {{"lr", 0.5}, {"sync", 5}, {"slow_step", 0.5}}),
      cesr::method_spec("lookahead", {{"lr", 0.2}, {"sync", 3}, {"slow_step", 0.5}, {"inner", 1}, {"momentum", 0.9}}),
      spec_of("hb", 0.2, 0.9),
      spec_of("sgd", 0.8),
  };
  specs[6].average = cesr::parse_average("polyak");
  specs[7].average = cesr::parse_average("ema:decay=0.9");
  MethodSpec cosine = spec_of("nag", 0.3, 0.9);
  cosine.lr_schedule = cesr::Schedule::learning_rate("cosine:steps=300,warmup=30,final=0.1");
  specs.push_back(cosine);
  constexpr int steps = 300;
  NoiseModel noise{8, 3.0, 0.0};
  noise.batch_schedule = cesr::Schedule::batch("ramp:start=8,every=50,max=64");
  for (const auto& spec : specs) {
    CAPTURE(cesr::describe(spec));
    spec.validate();
    const auto ref = cesr::loss_curve<double>(base, cesr::make_path<double>(spec), noise, steps, 10);
    REQUIRE_FALSE(ref.diverged_at);
    CHECK(ref.loss.back() < ref.loss.front() / 10);
    for (const double s : {1e250, 1e-250, std::ldexp(1.0, 664)}) {
      CAPTURE(s);
      MethodSpec m = spec;
      m.set("lr", spec.value("lr") / s);
      const auto got = cesr::loss_curve<double>(scaled(base, s), cesr::make_path<double>(m), noise, steps, 10);
      REQUIRE_FALSE(got.diverged_at);
      REQUIRE(got.loss.size() == ref.loss.size());
      double worst = 0;
      for (std::size_t i = 0; i < got.loss.size(); ++i) worst = std::max(worst, std::abs(got.loss[i] / (s * ref.loss[i]) - 1));
      // (s = 1e+-250 is no power of two: lambda s and lr / s each round, so
      // lr lambda moves by an ulp, which 300 momentum steps amplify: 1.2e-13
      // seen for nag with a cosine schedule in the portable build)
      CHECK(worst <= 5e-13);
    }
  }
}

namespace {
// Resident memory of this process in bytes (Linux /proc/self/statm).
double resident_bytes() {
  std::ifstream f("/proc/self/statm");
  double size = 0, resident = 0;
  f >> size >> resident;
  return resident * static_cast<double>(::sysconf(_SC_PAGESIZE));
}

template <class Real>
double measured_bytes_per_direction(const Spectrum& sp, const cesr::MethodSpec& spec) {
  const auto path = cesr::make_path<Real>(spec);
  const double before = resident_bytes();
  const cesr::Dynamics<Real> dyn(sp, path, NoiseModel{1});
  return (resident_bytes() - before) / static_cast<double>(sp.dim());
}
}  // namespace

TEST_CASE("the memory check's bytes per direction are the measured ones, per precision and k") {
  // Dynamics refuses d when 16 + (2 + k(k+1)/2) sizeof(Real) bytes per
  // direction exceed memory; the engine's own share (all but the spectrum's
  // 16) is measured here as resident memory (mp50, k = 2: about 320 bytes,
  // not the 64 once assumed).
  // Large blocks from mmap and back to the system when freed, so that each
  // measurement sees its own pages (glibc would otherwise raise the threshold
  // after the first free and reuse resident heap memory).
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
  const Spectrum sp = cesr::make_spectrum("loguniform:d=400000,kappa=10", "isotropic");
  const auto hb = spec_of("hb", 0.1, 0.5), sgd = spec_of("sgd", 0.1);
  const auto check = [&](double measured, double model) {
    CAPTURE(measured);
    CAPTURE(model);
    CHECK(measured > 0.8 * model);
    CHECK(measured < 1.25 * model);
  };
  check(measured_bytes_per_direction<double>(sp, hb), 5 * sizeof(double));
  check(measured_bytes_per_direction<double>(sp, sgd), 3 * sizeof(double));
  check(measured_bytes_per_direction<long double>(sp, hb), 5 * sizeof(long double));
  check(measured_bytes_per_direction<cesr::mp50>(sp, hb), 5 * sizeof(cesr::mp50));
  MESSAGE("sizeof(mp50) = " << sizeof(cesr::mp50) << ", mp50 k = 2: " << measured_bytes_per_direction<cesr::mp50>(sp, hb)
                            << " bytes per direction");
}

TEST_CASE("loss and steps in automatic precision meet --rtol where double loses 7 digits") {
  const Spectrum sp = cesr::make_spectrum("loguniform:d=50,kappa=1e4", "isotropic");
  const NoiseModel noise{100};
  const auto spec = spec_of("nag", 0.0005, 0.999);
  constexpr std::uint64_t steps = 20000, every = 5000;
  const auto ref = cesr::loss_curve<cesr::mp50>(sp, cesr::make_path<cesr::mp50>(spec), noise, steps, every);
  const auto dbl = cesr::loss_curve_in(cesr::Precision::Double, sp, spec, noise, steps, every);
  const auto aut = cesr::loss_curve_auto(sp, spec, noise, steps, every, 1e-10);
  REQUIRE(ref.loss.size() == 5);
  REQUIRE(aut.loss.size() == 5);
  double err_double = 0, err_auto = 0;
  for (std::size_t i = 0; i < ref.loss.size(); ++i) {
    const double want = cesr::to_double(ref.loss[i]);
    err_double = std::max(err_double, std::abs(dbl.loss[i] / want - 1));
    err_auto = std::max(err_auto, std::abs(aut.loss[i] / want - 1));
    CHECK(std::abs(std::stod(aut.loss_text[i]) / aut.loss[i] - 1) <= 3e-16);
  }
  CHECK(err_double > 1e-8);  // the hard case: double alone is off by ~1e-7
  CHECK(err_auto <= 1e-10);
  CHECK(aut.agreed);
  CHECK(aut.precision != cesr::Precision::Double);
  MESSAGE("nag beta = 0.999, 2e4 steps: double " << err_double << ", auto (" << cesr::to_string(aut.precision)
                                                 << ") " << err_auto);

  // steps: the same step as 50 digits, the loss to rtol.
  const double target = 1e-4;
  const auto want = cesr::steps_to_target<cesr::mp50>(sp, cesr::make_path<cesr::mp50>(spec), noise, cesr::mp50(target),
                                                      true, steps);
  const auto got = cesr::steps_to_target_auto(sp, spec, noise, target, true, steps, 1e-10);
  REQUIRE(want.steps);
  CHECK(got.steps == want.steps);
  CHECK(std::abs(got.loss / cesr::to_double(want.loss) - 1) <= 1e-10);

  // An ordinary case: double answers alone, its rounding bound within rtol / 2
  // (tests/test_rounding_bound.cpp holds the bound against 50 digits).
  const auto easy = cesr::loss_curve_auto(sp, spec_of("hb", 0.5, 0.5), noise, 200, 50, 1e-10);
  CHECK(easy.precision == cesr::Precision::Double);
  CHECK(easy.certified);
  CHECK(easy.agreed);
  CHECK(easy.disagreement < 0.5e-10);
}

TEST_CASE("asked only whether a target is reached, two precisions decide what they agree on far from it") {
  // The case above: double is off by ~1e-7 after 2e4 steps, long double by far less.
  const Spectrum sp = cesr::make_spectrum("loguniform:d=50,kappa=1e4", "isotropic");
  const NoiseModel noise{100};
  const auto spec = spec_of("nag", 0.0005, 0.999);
  constexpr std::uint64_t steps = 20000;
  // The least L_t over the run, in 50 digits (a target of 0 is never reached).
  const auto ref = cesr::steps_to_target<cesr::mp50>(sp, cesr::make_path<cesr::mp50>(spec), noise, cesr::mp50(0),
                                                      false, steps);
  REQUIRE(!ref.steps);
  const double least = cesr::to_double(ref.closest), initial = cesr::to_double(ref.initial_loss);
  CHECK(least <= cesr::to_double(ref.loss));
  const auto reached = cesr::StepsQuestion::Reached;

  // Far below the run: long double decides it; counting needs a third precision.
  const auto far = cesr::steps_to_target_auto(sp, spec, noise, 1e-3 * least, false, steps, 1e-10, reached);
  CHECK(!far.steps);
  CHECK(far.agreed);
  CHECK(far.decided);
  CHECK(far.precision == cesr::Precision::Long);
  CHECK(far.disagreement > 1e-10);
  CHECK(far.disagreement <= cesr::decision_rtol);
  const auto counted = cesr::steps_to_target_auto(sp, spec, noise, 1e-3 * least, false, steps, 1e-10);
  CHECK(!counted.steps);
  CHECK(!counted.decided);
  CHECK(counted.precision >= cesr::Precision::Quad);
  CHECK(std::abs(counted.loss / cesr::to_double(ref.loss) - 1) <= 1e-10);

  // Just below the least L_t (1e-8 relative, inside 16 times double's error):
  // not decided by the pair; the answer is still 50 digits' (not reached).
  const double below = least * (1 - 1e-8) / initial, above = least * (1 + 1e-8) / initial;
  const auto close = cesr::steps_to_target_auto(sp, spec, noise, below, true, steps, 1e-10, reached);
  CHECK(!close.steps);
  CHECK(close.agreed);
  CHECK(!close.decided);
  CHECK(close.precision >= cesr::Precision::Quad);
  // Just above it: reached, and the step is 50 digits'.
  const auto want = cesr::steps_to_target<cesr::mp50>(sp, cesr::make_path<cesr::mp50>(spec), noise,
                                                       cesr::mp50(above), true, steps);
  REQUIRE(want.steps);
  const auto crossing = cesr::steps_to_target_auto(sp, spec, noise, above, true, steps, 1e-10, reached);
  CHECK(crossing.steps == want.steps);
  CHECK(!crossing.decided);
  CHECK(std::abs(crossing.loss / cesr::to_double(want.loss) - 1) <= 1e-10);
  MESSAGE("nag beta = 0.999: decided in " << cesr::to_string(far.precision) << " at difference " << far.disagreement
                                          << "; counted in " << cesr::to_string(counted.precision) << "; crossing at "
                                          << *want.steps << " of " << steps);
}

TEST_CASE("automatic precision escalates when the loss falls below double's normal range") {
  // Scale 1e-300: after a few hundred steps L_t < 2.2e-308 is subnormal in
  // double (few digits left); long double still holds it. Auto must not take
  // two tiny numbers as agreeing.
  Spectrum sp = small_spectrum(5, 3);
  for (double& l : sp.lambda) l *= 1e-300;
  const auto spec = spec_of("sgd", 0.6e300);
  const NoiseModel noise{4};
  const auto ref = cesr::loss_curve<cesr::mp50>(sp, cesr::make_path<cesr::mp50>(spec), noise, 300, 10);
  const auto aut = cesr::loss_curve_auto(sp, spec, noise, 300, 10, 1e-10);
  REQUIRE(aut.loss.size() == ref.loss.size());
  CHECK(cesr::to_double(ref.loss.back()) < 1e-310);
  CHECK(aut.precision != cesr::Precision::Double);
  double worst = 0;
  for (std::size_t i = 0; i < ref.loss.size(); ++i)
    worst = std::max(worst, cesr::to_double(cesr::mp50(abs(cesr::mp50(aut.loss_text[i]) / ref.loss[i] - 1))));
  CHECK(worst <= 1e-10);
}
