// oracle.hpp -- independent references for the exact expected loss of linear
// stochastic optimizers on Gaussian (or independent-coordinate) linear
// regression with diagonal covariance H = diag(lambda).
//
// Written from the mathematics and the published algorithms only; it shares no
// code path with src/ (header-only, Eigen + the standard library, long double
// throughout). Three independent routes to the same numbers live here:
//
//   1. dense_loss / dense_rho: per eigendirection, the FULL k x k second moment
//      S_i = E[s_i s_i^T] (all k^2 entries, no symmetry reduction), propagated as
//      vec(S_i') = (A_i (x) A_i) vec(S_i) + noise, with the rank-one coupling
//      psi = tr(H Z) written out.
//   2. full_loss / full_rho (small d only): the whole kd x kd second moment of
//      the stacked state, cross-direction blocks included, with the fourth
//      moment E[x x^T Z x x^T] summed entry by entry from the four-index moment
//      tensor E[x_i x_j x_k x_l] (no closed form used).
//   3. mc_loss: Monte Carlo of the PUBLISHED updates on vectors (torch SGD, QHM,
//      Schedule-Free SGD, Lookahead, averaging, SGD / heavy ball / Nesterov),
//      which never go through (P, q, r, o).
// and, separately, hand-derived coefficient sequences coeffs_* of each published
// update (the second derivation the engine's registry rows are compared with).
//
// ---------------------------------------------------------------------------
// The model (error coordinates e = w - w*):
//   s_{t+1} = P_t s_t - q_t (x) g(z_t),   z_t = r_t^T s_t,   e_t = o_t^T s_t,
//   g(z) = (1/B_t) sum_b x_b (x_b^T z - xi_b),  x_b iid, E[x x^T] = H, xi_b label
//   noise with variance sigma2, independent of x.
// s_t stacks k vectors of R^d; "P_t s_t" acts on the state index, "q (x) g"
// puts q_a * g into state vector a. Coeffs(t) holds the coefficients of the
// update t -> t+1, and the loss at time t is read with o of Coeffs(t).
// Initial state s_0 = s0 (x) e_0, E[e_{0,i}^2] = init_i (the Monte Carlo starts
// from the deterministic e_{0,i} = sqrt(init_i), which has the same second
// moments; the recursion only ever sees second moments).
// Loss L_t = 1/2 sum_i lambda_i E[e_{t,i}^2].
//
// Fourth moment (derived here, used in both routes 1 and 2):
// write x_i = sqrt(lambda_i) u_i with independent, zero-mean, unit-variance
// u_i and E[u_i^4] = K (K = 3 for Gaussian, 1 for Rademacher). Odd moments of
// distinct coordinates factor into zero, so
//   E[u_i u_j u_k u_l] = d_ij d_kl + d_ik d_jl + d_il d_jk + (K - 3) d_ijkl
// (the three pairings, corrected on the all-equal diagonal where the pairings
// count 3 but the moment is K). Contracting with a symmetric Z:
//   [E x x^T Z x x^T]_{il} = sum_{jk} E[x_i x_j x_k x_l] Z_jk
//     = lambda_i lambda_l Z_il          (pairing ij,kl)
//     + lambda_i lambda_l Z_li          (pairing ik,jl)
//     + d_il lambda_i sum_j lambda_j Z_jj   (pairing il,jk)
//     + (K - 3) d_il lambda_i^2 Z_ii,
//   i.e.  E[x x^T Z x x^T] = 2 H Z H + tr(H Z) H + (K - 3) diag(lambda_i^2 Z_ii).
// For K = 3 this is the Gaussian (Isserlis) formula 2HZH + tr(HZ)H.
// The mini-batch average of B iid samples has Cov = (1/B)(E[xx^T Z xx^T] - HZH),
// so in direction i the gradient-noise variance is
//   (1/B) [ (K - 2) lambda_i^2 Z_ii + lambda_i tr(H Z) ] + sigma2 lambda_i / B,
// and only the diagonal Z_jj = r^T S_j r enters the diagonal blocks: this is
// why cross-direction blocks never feed back into the per-direction ones.
// ---------------------------------------------------------------------------
#pragma once

#include <Eigen/Dense>

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace oracle {

using Real = long double;
using Mat = Eigen::Matrix<Real, -1, -1>;
using Vec = Eigen::Matrix<Real, -1, 1>;

// Coefficients of the update t -> t+1 (and, through o, of the output at t).
struct Coeffs {
  int k;
  Eigen::Matrix<long double, -1, -1> P;
  Eigen::Matrix<long double, -1, 1> q, r, o;
};
using CoeffFn = std::function<Coeffs(std::uint64_t t)>;
using BatchFn = std::function<std::uint64_t(std::uint64_t t)>;
using ScalarFn = std::function<Real(std::uint64_t t)>;

// A hand-derived method: coefficient sequence plus initial state s0 (s_0 = s0 (x) e_0).
struct Method {
  CoeffFn coeffs;
  Vec s0;
};

inline BatchFn constant_batch(std::uint64_t B) {
  return [B](std::uint64_t) { return B; };
}
inline ScalarFn constant(Real v) {
  return [v](std::uint64_t) { return v; };
}

namespace detail {

inline Mat kron(const Mat& a, const Mat& b) {
  Mat out(a.rows() * b.rows(), a.cols() * b.cols());
  for (Eigen::Index i = 0; i < a.rows(); ++i)
    for (Eigen::Index j = 0; j < a.cols(); ++j)
      out.block(i * b.rows(), j * b.cols(), b.rows(), b.cols()) = a(i, j) * b;
  return out;
}

// Column-major vec: vec(A S B^T) = (B (x) A) vec(S); for A S A^T it is (A (x) A).
inline Vec vec(const Mat& m) {
  Vec v(m.size());
  for (Eigen::Index j = 0; j < m.cols(); ++j)
    for (Eigen::Index i = 0; i < m.rows(); ++i) v(j * m.rows() + i) = m(i, j);
  return v;
}

inline void check_coeffs(const Coeffs& c, Eigen::Index k, std::uint64_t t) {
  if (c.k != k || c.P.rows() != k || c.P.cols() != k || c.q.size() != k || c.r.size() != k ||
      c.o.size() != k)
    throw std::invalid_argument("oracle: coefficients at step " + std::to_string(t) +
                                " do not have the size of s0");
}

inline void check_problem(const std::vector<Real>& lambda, const std::vector<Real>& init) {
  if (lambda.empty() || lambda.size() != init.size())
    throw std::invalid_argument("oracle: lambda and init must be non-empty and of equal size");
}

// E[u_i u_j u_k u_l] for independent zero-mean unit-variance coordinates with
// fourth moment K, by cases (not by the pairing formula).
inline Real whitened_moment4(std::size_t i, std::size_t j, std::size_t k, std::size_t l, Real K) {
  if (i == j && j == k && k == l) return K;
  if ((i == j && k == l) || (i == k && j == l) || (i == l && j == k)) return 1;
  return 0;
}

inline Mat ones_coeff_matrix(Real v) {
  Mat m(1, 1);
  m(0, 0) = v;
  return m;
}
inline Vec vec1(Real v) {
  Vec x(1);
  x(0) = v;
  return x;
}
inline Vec vec2(Real a, Real b) {
  Vec x(2);
  x << a, b;
  return x;
}
inline Vec vec3(Real a, Real b, Real c) {
  Vec x(3);
  x << a, b, c;
  return x;
}

}  // namespace detail

// ===========================================================================
// Route 1: per-direction full k x k second moments, Kronecker form.
// ===========================================================================
inline std::vector<long double> dense_loss(const std::vector<long double>& lambda,
                                           const std::vector<long double>& init,
                                           const Eigen::Matrix<long double, -1, 1>& s0, double K,
                                           double sigma2,
                                           std::function<std::uint64_t(std::uint64_t)> batch,
                                           CoeffFn coeffs, std::uint64_t steps) {
  detail::check_problem(lambda, init);
  const std::size_t d = lambda.size();
  const Eigen::Index k = s0.size();
  const Real Kr = Real(K), s2 = Real(sigma2);
  // m[i] = vec(S_i), k^2 entries, S_i(0) = init_i s0 s0^T.
  std::vector<Vec> m(d);
  const Vec ss0 = detail::vec(s0 * s0.transpose());
  for (std::size_t i = 0; i < d; ++i) m[i] = init[i] * ss0;

  auto loss_at = [&](const Coeffs& c) {
    const Vec oo = detail::kron(c.o, c.o);  // (o (x) o)^T vec(S) = o^T S o
    Real L = 0;
    for (std::size_t i = 0; i < d; ++i) L += lambda[i] * oo.dot(m[i]);
    return L / 2;
  };

  std::vector<Real> out;
  out.reserve(steps + 1);
  std::vector<Real> Z(d);
  for (std::uint64_t t = 0;; ++t) {
    const Coeffs c = coeffs(t);
    detail::check_coeffs(c, k, t);
    out.push_back(loss_at(c));
    if (t == steps) break;
    const std::uint64_t B = batch(t);
    if (B == 0) throw std::invalid_argument("oracle: batch size 0");
    const Real invB = Real(1) / Real(B);
    const Vec rr = detail::kron(c.r, c.r);  // Z_ii = E[z_i^2] = (r (x) r)^T vec(S_i)
    const Vec qq = detail::kron(c.q, c.q);  // vec(q q^T)
    Real psi = 0;                           // tr(H Z) = sum_j lambda_j Z_jj: the rank-one coupling
    for (std::size_t j = 0; j < d; ++j) {
      Z[j] = rr.dot(m[j]);
      psi += lambda[j] * Z[j];
    }
    for (std::size_t i = 0; i < d; ++i) {
      const Mat A = c.P - lambda[i] * c.q * c.r.transpose();
      const Mat AA = detail::kron(A, A);
      // diagonal (i,i) entry of E[x x^T Z x x^T] = 2HZH + tr(HZ)H + (K-3)diag(lambda^2 Z),
      // minus (HZH)_ii, over B; plus label noise.
      const Real l2Z = lambda[i] * lambda[i] * Z[i];
      const Real fourth_ii = 2 * l2Z + lambda[i] * psi + (Kr - 3) * l2Z;
      const Real var = invB * (fourth_ii - l2Z) + invB * s2 * lambda[i];
      m[i] = AA * m[i] + var * qq;
    }
  }
  return out;
}

// Spectral radius of the k^2 d x k^2 d second-moment operator (sigma2 plays no
// part), built as a dense matrix: diagonal blocks A_i (x) A_i + (K-2) lambda_i^2/B
// vec(qq^T)(r (x) r)^T, plus the rank-one lambda_i lambda_j / B vec(qq^T)(r (x) r)^T
// between every pair (i, j). Small d only (<= 30).
inline long double dense_rho(const std::vector<long double>& lambda, double K, std::uint64_t B,
                             const Coeffs& c) {
  const std::size_t d = lambda.size();
  const Eigen::Index k = c.k, kk = k * k;
  detail::check_coeffs(c, k, 0);
  if (B == 0) throw std::invalid_argument("oracle: batch size 0");
  const Real invB = Real(1) / Real(B), Kr = Real(K);
  const Vec rr = detail::kron(c.r, c.r), qq = detail::kron(c.q, c.q);
  const Mat qr = qq * rr.transpose();
  Mat T = Mat::Zero(kk * Eigen::Index(d), kk * Eigen::Index(d));
  for (std::size_t i = 0; i < d; ++i) {
    const Mat A = c.P - lambda[i] * c.q * c.r.transpose();
    T.block(Eigen::Index(i) * kk, Eigen::Index(i) * kk, kk, kk) +=
        detail::kron(A, A) + (Kr - 2) * lambda[i] * lambda[i] * invB * qr;
    for (std::size_t j = 0; j < d; ++j)
      T.block(Eigen::Index(i) * kk, Eigen::Index(j) * kk, kk, kk) += lambda[i] * lambda[j] * invB * qr;
  }
  Eigen::EigenSolver<Mat> es(T, false);
  if (es.info() != Eigen::Success) throw std::runtime_error("oracle: EigenSolver failed");
  Real rho = 0;
  for (Eigen::Index i = 0; i < es.eigenvalues().size(); ++i) rho = std::max(rho, std::abs(es.eigenvalues()(i)));
  return rho;
}

// ===========================================================================
// Route 2 (small d): the whole kd x kd second moment Sigma = E[s s^T] of the
// stacked state s = (s_1; ...; s_k), s_a in R^d (state-major). One step is
// s' = M s + q (x) (1/B) sum_b x_b xi_b with M = P (x) I - (q r^T) (x) Hhat, so
//   Sigma' = Mbar Sigma Mbar^T + (q q^T) (x) [ Cov_B(Z) + sigma2 H / B ],
//   Mbar = P (x) I - (q r^T) (x) H,  Z = E[z z^T] = sum_ab r_a r_b Sigma_ab,
//   Cov_B(Z) = (1/B) (E[x x^T Z x x^T] - H Z H),
// where E[x x^T Z x x^T] is summed entry by entry over the four-index tensor.
// ===========================================================================
namespace detail {

inline Mat fourth_moment_contraction(const std::vector<Real>& lambda, Real K, const Mat& Z) {
  const std::size_t d = lambda.size();
  Mat F = Mat::Zero(Eigen::Index(d), Eigen::Index(d));
  for (std::size_t i = 0; i < d; ++i)
    for (std::size_t l = 0; l < d; ++l) {
      Real acc = 0;
      for (std::size_t j = 0; j < d; ++j)
        for (std::size_t kx = 0; kx < d; ++kx) {
          const Real mom = whitened_moment4(i, j, kx, l, K);
          if (mom != 0)
            acc += std::sqrt(lambda[i] * lambda[j] * lambda[kx] * lambda[l]) * mom * Z(Eigen::Index(j), Eigen::Index(kx));
        }
      F(Eigen::Index(i), Eigen::Index(l)) = acc;
    }
  return F;
}

// One step of the full second moment (sigma2 = 0 gives the linear operator).
inline Mat full_step(const std::vector<Real>& lambda, Real K, Real sigma2, std::uint64_t B, const Coeffs& c,
                     const Mat& Sigma) {
  const Eigen::Index d = Eigen::Index(lambda.size()), k = c.k;
  Mat H = Mat::Zero(d, d);
  for (Eigen::Index i = 0; i < d; ++i) H(i, i) = lambda[std::size_t(i)];
  const Mat I = Mat::Identity(d, d);
  const Mat Mbar = kron(c.P, I) - kron(c.q * c.r.transpose(), H);
  Mat Z = Mat::Zero(d, d);
  for (Eigen::Index a = 0; a < k; ++a)
    for (Eigen::Index b = 0; b < k; ++b) Z += c.r(a) * c.r(b) * Sigma.block(a * d, b * d, d, d);
  const Mat F = fourth_moment_contraction(lambda, K, Z);
  const Mat noise = (F - H * Z * H) / Real(B) + sigma2 / Real(B) * H;
  return Mbar * Sigma * Mbar.transpose() + kron(c.q * c.q.transpose(), noise);
}

}  // namespace detail

inline std::vector<long double> full_loss(const std::vector<long double>& lambda,
                                          const std::vector<long double>& init, const Vec& s0, double K,
                                          double sigma2, BatchFn batch, CoeffFn coeffs, std::uint64_t steps) {
  detail::check_problem(lambda, init);
  const Eigen::Index d = Eigen::Index(lambda.size()), k = s0.size();
  // E[e_0 e_0^T] = diag(init) (independent coordinates); the deterministic start
  // sqrt(init) sqrt(init)^T has the same diagonal, and only the diagonal blocks
  // reach the loss, so either is fine: use the deterministic one, which
  // exercises the cross-direction blocks.
  Vec e0(d);
  for (Eigen::Index i = 0; i < d; ++i) e0(i) = std::sqrt(init[std::size_t(i)]);
  Mat Sigma = detail::kron(s0 * s0.transpose(), e0 * e0.transpose());
  std::vector<Real> out;
  for (std::uint64_t t = 0;; ++t) {
    const Coeffs c = coeffs(t);
    detail::check_coeffs(c, k, t);
    Mat E = Mat::Zero(d, d);  // E[e e^T] = sum_ab o_a o_b Sigma_ab
    for (Eigen::Index a = 0; a < k; ++a)
      for (Eigen::Index b = 0; b < k; ++b) E += c.o(a) * c.o(b) * Sigma.block(a * d, b * d, d, d);
    Real L = 0;
    for (Eigen::Index i = 0; i < d; ++i) L += lambda[std::size_t(i)] * E(i, i);
    out.push_back(L / 2);
    if (t == steps) break;
    Sigma = detail::full_step(lambda, Real(K), Real(sigma2), batch(t), c, Sigma);
  }
  return out;
}

// Spectral radius of the full (kd)^2 x (kd)^2 operator Sigma -> Sigma', built
// column by column by applying one step to each basis matrix. Tiny d only.
inline long double full_rho(const std::vector<long double>& lambda, double K, std::uint64_t B, const Coeffs& c) {
  const Eigen::Index n = Eigen::Index(lambda.size()) * c.k;
  Mat T(n * n, n * n);
  for (Eigen::Index col = 0; col < n * n; ++col) {
    Mat E = Mat::Zero(n, n);
    E(col % n, col / n) = 1;
    T.col(col) = detail::vec(detail::full_step(lambda, Real(K), 0, B, c, E));
  }
  Eigen::EigenSolver<Mat> es(T, false);
  Real rho = 0;
  for (Eigen::Index i = 0; i < es.eigenvalues().size(); ++i) rho = std::max(rho, std::abs(es.eigenvalues()(i)));
  return rho;
}

// ===========================================================================
// Route 4 (small d): the whole kd x kd second moment of the PRECONDITIONED
// update, and of the noisy quadratic model's additive noise, derived from the
// update itself (no change of variables). With a diagonal preconditioner
// Dp = diag(p) applied to the whole stochastic gradient,
//   s' = P s - q (x) Dp g(z),
// so s' = M s + q (x) Dp (1/B) sum_b x_b xi_b with M = P (x) I - (q r^T) (x) Dp Hhat:
//   Sigma' = Mbar Sigma Mbar^T + (q q^T) (x) Dp Cov(g) Dp,  Mbar = P (x) I - (q r^T) (x) Dp H,
// where Cov(g) is route 2's (1/B)(E[x x^T Z x x^T] - H Z H) + sigma2 H / B for
// sampled data, or C / B (C = diag(c_ii), independent of Z) for additive
// noise. The loss is 1/2 tr(H E[e e^T]) in the original coordinates.
// ===========================================================================
inline std::vector<long double> full_loss_general(const std::vector<long double>& lambda,
                                                  const std::vector<long double>& init, const Vec& s0, double K,
                                                  double sigma2, std::uint64_t B, const Coeffs& c,
                                                  std::uint64_t steps, const std::vector<long double>& precond,
                                                  const std::vector<long double>* additive_c = nullptr) {
  detail::check_problem(lambda, init);
  const Eigen::Index d = Eigen::Index(lambda.size()), k = s0.size();
  detail::check_coeffs(c, k, 0);
  Mat H = Mat::Zero(d, d), Dp = Mat::Zero(d, d);
  for (Eigen::Index i = 0; i < d; ++i) {
    H(i, i) = lambda[std::size_t(i)];
    Dp(i, i) = precond[std::size_t(i)];
  }
  const Mat I = Mat::Identity(d, d);
  const Mat Mbar = detail::kron(c.P, I) - detail::kron(c.q * c.r.transpose(), Dp * H);
  Vec e0(d);
  for (Eigen::Index i = 0; i < d; ++i) e0(i) = std::sqrt(init[std::size_t(i)]);
  Mat Sigma = detail::kron(s0 * s0.transpose(), e0 * e0.transpose());
  std::vector<Real> out;
  for (std::uint64_t t = 0;; ++t) {
    Mat E = Mat::Zero(d, d);
    for (Eigen::Index a = 0; a < k; ++a)
      for (Eigen::Index b = 0; b < k; ++b) E += c.o(a) * c.o(b) * Sigma.block(a * d, b * d, d, d);
    out.push_back((H * E).trace() / 2);
    if (t == steps) break;
    Mat cov = Mat::Zero(d, d);
    if (additive_c) {
      for (Eigen::Index i = 0; i < d; ++i) cov(i, i) = (*additive_c)[std::size_t(i)] / Real(B);
    } else {
      Mat Z = Mat::Zero(d, d);
      for (Eigen::Index a = 0; a < k; ++a)
        for (Eigen::Index b = 0; b < k; ++b) Z += c.r(a) * c.r(b) * Sigma.block(a * d, b * d, d, d);
      const Mat F = detail::fourth_moment_contraction(lambda, Real(K), Z);
      cov = (F - H * Z * H) / Real(B) + Real(sigma2) / Real(B) * H;
    }
    Sigma = Mbar * Sigma * Mbar.transpose() + detail::kron(c.q * c.q.transpose(), Dp * cov * Dp);
  }
  return out;
}

// ===========================================================================
// Hand-derived coefficient sequences of the published updates.
// Every state vector is written in error coordinates; r picks the point where
// the gradient is queried, o the point whose loss is reported.
// ===========================================================================

// Plain SGD, e_{t+1} = e_t - lr g(e_t). State (e_t); s0 = (1).
inline Method coeffs_sgd(ScalarFn lr) {
  CoeffFn f = [lr](std::uint64_t t) {
    return Coeffs{1, detail::ones_coeff_matrix(1), detail::vec1(lr(t)), detail::vec1(1), detail::vec1(1)};
  };
  return {f, detail::vec1(1)};
}
inline Method coeffs_sgd(Real lr) { return coeffs_sgd(constant(lr)); }

// Heavy ball (Polyak): e_{t+1} = e_t - lr g(e_t) + beta (e_t - e_{t-1}), e_{-1} = e_0.
// State (e_t, e_{t-1}); s0 = (1, 1).
//   P = [[1+beta, -beta], [1, 0]], q = (lr, 0), r = (1, 0), o = (1, 0).
inline Method coeffs_heavy_ball(Real lr, Real beta) {
  Coeffs c{2, Mat(2, 2), detail::vec2(lr, 0), detail::vec2(1, 0), detail::vec2(1, 0)};
  c.P << 1 + beta, -beta, 1, 0;
  return {[c](std::uint64_t) { return c; }, detail::vec2(1, 1)};
}

// Nesterov: y_t = e_t + beta (e_t - e_{t-1}), e_{t+1} = y_t - lr g(y_t), e_{-1} = e_0.
// State (e_t, e_{t-1}); s0 = (1, 1). P as heavy ball, q = (lr, 0), r = (1+beta, -beta).
// output_lookahead = false: o = (1, 0), the loss of e_t (cesr's 'nag');
// output_lookahead = true:  o = r, the loss of the look-ahead point y_t, which is
// the parameter torch.optim.SGD(nesterov=True) holds.
inline Method coeffs_nesterov(Real lr, Real beta, bool output_lookahead = false) {
  Coeffs c{2, Mat(2, 2), detail::vec2(lr, 0), detail::vec2(1 + beta, -beta), detail::vec2(1, 0)};
  c.P << 1 + beta, -beta, 1, 0;
  if (output_lookahead) c.o = c.r;
  return {[c](std::uint64_t) { return c; }, detail::vec2(1, 1)};
}

// torch.optim.SGD, weight_decay = 0, maximize = False (torch/optim/sgd.py,
// _single_tensor_sgd): with momentum mu != 0,
//   buf = g_0 (clone, undamped) on the first step, else buf = mu buf + (1 - tau) g_t;
//   step = g_t + mu buf (nesterov) or buf;  p <- p - lr_t step.
// With mu = 0 torch never creates the buffer (dampening has no effect): that is SGD.
// State (p_t, b_{t-1}) with b_{-1} := 0, so b_t = mu b_{t-1} + c_t g_t with
// c_0 = 1 (undamped first buffer) and c_t = 1 - tau for t >= 1; s0 = (1, 0).
// The buffer ADDS the gradient while the model subtracts q g: its q entry is -c_t.
//   plain:    p_{t+1} = p_t - lr mu b_{t-1} - lr c_t g_t
//             P = [[1, -lr mu], [0, mu]],   q = (lr c_t, -c_t)
//   nesterov: p_{t+1} = p_t - lr (g_t + mu b_t) = p_t - lr mu^2 b_{t-1} - lr (1 + mu c_t) g_t
//             P = [[1, -lr mu^2], [0, mu]], q = (lr (1 + mu c_t), -c_t)
//   r = o = (1, 0): gradient and loss at the parameter torch holds.
// lr(t) is the learning rate in the param group when step t is taken (a
// scheduler stepped after optimizer.step() sets lr(t+1)).
// torch refuses nesterov without momentum or with dampening; so does this.
inline Method coeffs_torch_sgd(ScalarFn lr, Real mu, Real tau, bool nesterov) {
  if (nesterov && (mu <= 0 || tau != 0))
    throw std::invalid_argument("Nesterov momentum requires a momentum and zero dampening");
  if (mu == 0) return coeffs_sgd(std::move(lr));
  CoeffFn f = [lr, mu, tau, nesterov](std::uint64_t t) {
    const Real ct = t == 0 ? Real(1) : 1 - tau;
    const Real a = lr(t);
    Coeffs c{2, Mat(2, 2), Vec(2), detail::vec2(1, 0), detail::vec2(1, 0)};
    if (nesterov) {
      c.P << 1, -a * mu * mu, 0, mu;
      c.q << a * (1 + mu * ct), -ct;
    } else {
      c.P << 1, -a * mu, 0, mu;
      c.q << a * ct, -ct;
    }
    return c;
  };
  return {f, detail::vec2(1, 0)};
}
inline Method coeffs_torch_sgd(Real lr, Real mu, Real tau, bool nesterov) {
  return coeffs_torch_sgd(constant(lr), mu, tau, nesterov);
}

// QHM (Ma & Yarats 2019, "Quasi-hyperbolic momentum and Adam for deep
// learning", ICLR; as facebookresearch/qhoptim's QHM): buf_0 = 0,
//   buf <- beta buf + (1 - beta) g_t,  theta <- theta - lr [(1 - nu) g_t + nu buf].
// State (theta_t, buf_t) (buf_t the buffer before step t); s0 = (1, 0).
//   theta_{t+1} = theta_t - lr nu beta buf_t - lr (1 - nu beta) g_t
//   buf_{t+1} = beta buf_t + (1 - beta) g_t  (added: q entry -(1 - beta))
//   P = [[1, -lr nu beta], [0, beta]], q = (lr (1 - nu beta), -(1 - beta)), r = o = (1, 0).
inline Method coeffs_qhm(Real lr, Real beta, Real nu) {
  Coeffs c{2, Mat(2, 2), detail::vec2(lr * (1 - nu * beta), -(1 - beta)), detail::vec2(1, 0), detail::vec2(1, 0)};
  c.P << 1, -lr * nu * beta, 0, beta;
  return {[c](std::uint64_t) { return c; }, detail::vec2(1, 0)};
}

// Schedule-Free SGD (Defazio, Yang, Mehta, Mishchenko, Khaled, Cutkosky 2024,
// "The Road Less Scheduled"; as facebookresearch/schedule_free's
// SGDScheduleFree / SGDScheduleFreeReference, r = 0, weight_lr_power = 2,
// weight_decay = 0):
//   y_t = (1 - beta) z_t + beta x_t, z_{t+1} = z_t - gamma_t g(y_t),
//   x_{t+1} = (1 - c_{t+1}) x_t + c_{t+1} z_{t+1},  x_0 = z_0 = w_0.
// The reference code keeps lr_max = max(lr_max, gamma_t) and
// weight_sum += lr_max^2, and sets c_{t+1} = lr_max^2 / weight_sum, i.e.
//   c_{t+1} = m_t^2 / sum_{s<=t} m_s^2,  m_s = max_{u<=s} gamma_u,
// so c_1 = 1 and c_{t+1} = 1/(t+1) at constant gamma. This equals
// gamma_t^2 / sum gamma_s^2 (the brief's form) whenever gamma is nondecreasing
// (constant, or the built-in linear warmup gamma_t = lr min(1, (t+1)/W)); the
// two differ only if a user's scheduler lowers the lr, where the code uses
// the running max, not gamma_t.
// State (z_t, x_t); s0 = (1, 1).
//   P_t = [[1, 0], [c, 1 - c]], q_t = (gamma_t, c gamma_t), r = (1 - beta, beta),
//   o = (0, 1) (the loss at x, the point the optimizer's eval() installs), c = c_{t+1}.
inline Method coeffs_schedule_free(ScalarFn gamma, Real beta) {
  struct Cache {
    std::vector<Real> m, sum;  // running max and prefix sums of its square
  };
  auto cache = std::make_shared<Cache>();
  CoeffFn f = [gamma, beta, cache](std::uint64_t t) {
    while (cache->m.size() <= t) {
      const std::uint64_t s = cache->m.size();
      const Real ms = s == 0 ? gamma(0) : std::max(cache->m.back(), gamma(s));
      cache->m.push_back(ms);
      cache->sum.push_back((s == 0 ? 0 : cache->sum.back()) + ms * ms);
    }
    const Real c = cache->m[t] * cache->m[t] / cache->sum[t];
    const Real g = gamma(t);
    Coeffs co{2, Mat(2, 2), detail::vec2(g, c * g), detail::vec2(1 - beta, beta), detail::vec2(0, 1)};
    co.P << 1, 0, c, 1 - c;
    return co;
  };
  return {f, detail::vec2(1, 1)};
}
inline Method coeffs_schedule_free(Real lr, Real beta, std::uint64_t warmup_steps = 0) {
  return coeffs_schedule_free(
      [lr, warmup_steps](std::uint64_t t) {
        return t < warmup_steps ? lr * Real(t + 1) / Real(warmup_steps) : lr;
      },
      beta);
}

// Lookahead (Zhang, Lucas, Hinton, Ba 2019, "Lookahead Optimizer: k steps
// forward, 1 step back"; as michaelrzhang/lookahead's lookahead_pytorch.py with
// the default pullback_momentum = "none"): after every `sync`-th inner step
// (global steps t with (t+1) % sync == 0),
//   fast <- alpha fast + (1 - alpha) slow,  slow <- fast.
// The loss is at the slow weights.
// Inner SGD: state (fast, slow); s0 = (1, 1); r = (1, 0), o = (0, 1).
//   ordinary step: P = I, q = (lr, 0)
//   sync step:     fast' = fast - lr g;  slow'' = (1 - a) slow + a fast';  fast'' = slow''
//                  P = [[a, 1 - a], [a, 1 - a]], q = (a lr, a lr)
inline Method coeffs_lookahead_sgd(Real lr, std::uint64_t sync, Real alpha) {
  if (sync == 0) throw std::invalid_argument("oracle: lookahead sync period 0");
  CoeffFn f = [lr, sync, alpha](std::uint64_t t) {
    Coeffs c{2, Mat(2, 2), Vec(2), detail::vec2(1, 0), detail::vec2(0, 1)};
    if ((t + 1) % sync == 0) {
      c.P << alpha, 1 - alpha, alpha, 1 - alpha;
      c.q << alpha * lr, alpha * lr;
    } else {
      c.P << 1, 0, 0, 1;
      c.q << lr, 0;
    }
    return c;
  };
  return {f, detail::vec2(1, 1)};
}

// Lookahead with inner torch.optim.SGD(lr, momentum mu, dampening tau): the
// inner optimizer's buffer is carried over a synchronisation (pullback "none")
// and its undamped first buffer happens once, at global step 0.
// State (fast p_t, b_{t-1}, slow), b_{-1} := 0; s0 = (1, 0, 1); r = (1, 0, 0), o = (0, 0, 1).
// c_t = 1 at t = 0, 1 - tau after.
// (b_t = mu b_{t-1} + c_t g_t adds the gradient: its q entry is -c_t)
//   ordinary step: P = [[1, -lr mu, 0], [0, mu, 0], [0, 0, 1]],   q = (lr c_t, -c_t, 0)
//   sync step:     fast' = fast - lr mu b - lr c_t g; slow'' = (1-a) slow + a fast'; fast'' = slow''
//                  P = [[a, -a lr mu, 1-a], [0, mu, 0], [a, -a lr mu, 1-a]],
//                  q = (a lr c_t, -c_t, a lr c_t)
inline Method coeffs_lookahead_torch_sgd(Real lr, Real mu, std::uint64_t sync, Real alpha, Real tau = 0) {
  if (sync == 0) throw std::invalid_argument("oracle: lookahead sync period 0");
  if (mu == 0) return coeffs_lookahead_sgd(lr, sync, alpha);
  CoeffFn f = [lr, mu, sync, alpha, tau](std::uint64_t t) {
    const Real ct = t == 0 ? Real(1) : 1 - tau;
    Coeffs c{3, Mat(3, 3), Vec(3), detail::vec3(1, 0, 0), detail::vec3(0, 0, 1)};
    if ((t + 1) % sync == 0) {
      const Real a = alpha;
      c.P << a, -a * lr * mu, 1 - a, 0, mu, 0, a, -a * lr * mu, 1 - a;
      c.q << a * lr * ct, -ct, a * lr * ct;
    } else {
      c.P << 1, -lr * mu, 0, 0, mu, 0, 0, 0, 1;
      c.q << lr * ct, -ct, 0;
    }
    return c;
  };
  return {f, detail::vec3(1, 0, 1)};
}

// Averaging of any method's output e_t = o_t^T s_t: one more state a_t with
//   a_0 = e_0,  a_{t+1} = w_t a_t + (1 - w_t) e_{t+1},
// and the loss at a. Since e_{t+1} = o_{t+1}^T (P_t s_t - q_t g), the augmented
// coefficients are (state (s_t, a_t), s0_aug = (s0, o_0^T s0)):
//   P_aug = [[P_t, 0], [(1-w_t) o_{t+1}^T P_t, w_t]],
//   q_aug = (q_t, (1-w_t) o_{t+1}^T q_t),  r_aug = (r_t, 0),  o_aug = (0, ..., 0, 1).
inline Method coeffs_average(const Method& base, ScalarFn weight) {
  const CoeffFn b = base.coeffs;
  CoeffFn f = [b, weight](std::uint64_t t) {
    const Coeffs c = b(t), next = b(t + 1);
    const Eigen::Index k = c.k;
    const Real w = weight(t);
    Coeffs a{int(k + 1), Mat::Zero(k + 1, k + 1), Vec::Zero(k + 1), Vec::Zero(k + 1), Vec::Zero(k + 1)};
    a.P.topLeftCorner(k, k) = c.P;
    a.P.block(k, 0, 1, k) = (1 - w) * next.o.transpose() * c.P;
    a.P(k, k) = w;
    a.q.head(k) = c.q;
    a.q(k) = (1 - w) * next.o.dot(c.q);
    a.r.head(k) = c.r;
    a.o(k) = 1;
    return a;
  };
  Vec s0(base.s0.size() + 1);
  s0.head(base.s0.size()) = base.s0;
  s0(base.s0.size()) = base.coeffs(0).o.dot(base.s0);
  return {f, s0};
}
// EMA a_{t+1} = gamma a_t + (1 - gamma) e_{t+1}: w_t = gamma.
inline Method coeffs_ema(const Method& base, Real gamma) { return coeffs_average(base, constant(gamma)); }
// Polyak a_t = mean(e_0..e_t): a_{t+1} = (t+1)/(t+2) a_t + e_{t+1}/(t+2).
inline Method coeffs_polyak(const Method& base) {
  return coeffs_average(base, [](std::uint64_t t) { return Real(t + 1) / Real(t + 2); });
}
// Tail a_t = e_t for t <= S (a_S = e_S), mean(e_S..e_t) for t >= S:
// w_t = 0 while t + 1 <= S, then a_t holds n = t - S + 1 terms: w_t = n / (n + 1).
// start = 0 is Polyak; torch.optim.swa_utils.AveragedModel updated after every
// step (its first update copies) is start = 1.
inline Method coeffs_tail(const Method& base, std::uint64_t start) {
  return coeffs_average(base, [start](std::uint64_t t) {
    if (t + 1 <= start) return Real(0);
    const Real n = Real(t - start + 1);
    return n / (n + 1);
  });
}

// ===========================================================================
// Route 3: Monte Carlo of the published updates on vectors.
// ===========================================================================
using GradFn = std::function<Vec(const Vec& at)>;

struct Optimizer {
  virtual ~Optimizer() = default;
  virtual void reset(const Vec& w0) = 0;
  // One update; calls grad exactly once (a fresh mini-batch at the point asked).
  virtual void step(const GradFn& grad, std::uint64_t t) = 0;
  // The point whose loss is reported.
  virtual Vec eval_point() const = 0;
  // The tensor the optimizer holds as its parameter (torch's p); Lookahead reads and writes it.
  virtual Vec& params() = 0;
};
using Factory = std::function<std::unique_ptr<Optimizer>()>;

// e_{t+1} = e_t - lr g(e_t).
struct PlainSGD : Optimizer {
  ScalarFn lr;
  Vec w;
  explicit PlainSGD(ScalarFn lr_) : lr(std::move(lr_)) {}
  explicit PlainSGD(Real lr_) : lr(constant(lr_)) {}
  void reset(const Vec& w0) override { w = w0; }
  void step(const GradFn& grad, std::uint64_t t) override { w -= lr(t) * grad(w); }
  Vec eval_point() const override { return w; }
  Vec& params() override { return w; }
};

// Polyak's heavy ball, e_{t+1} = e_t - lr g(e_t) + beta (e_t - e_{t-1}), e_{-1} = e_0.
struct HeavyBall : Optimizer {
  Real lr, beta;
  Vec w, prev;
  HeavyBall(Real lr_, Real beta_) : lr(lr_), beta(beta_) {}
  void reset(const Vec& w0) override { w = prev = w0; }
  void step(const GradFn& grad, std::uint64_t) override {
    Vec next = w - lr * grad(w) + beta * (w - prev);
    prev = w;
    w = std::move(next);
  }
  Vec eval_point() const override { return w; }
  Vec& params() override { return w; }
};

// Nesterov: y = e_t + beta (e_t - e_{t-1}), e_{t+1} = y - lr g(y), e_{-1} = e_0.
// Reports e_t (report_lookahead = false) or y_t = e_t + beta (e_t - e_{t-1}).
struct Nesterov : Optimizer {
  Real lr, beta;
  bool report_lookahead;
  Vec w, prev;
  Nesterov(Real lr_, Real beta_, bool lookahead = false) : lr(lr_), beta(beta_), report_lookahead(lookahead) {}
  void reset(const Vec& w0) override { w = prev = w0; }
  void step(const GradFn& grad, std::uint64_t) override {
    const Vec y = w + beta * (w - prev);
    Vec next = y - lr * grad(y);
    prev = w;
    w = std::move(next);
  }
  Vec eval_point() const override { return report_lookahead ? Vec(w + beta * (w - prev)) : w; }
  Vec& params() override { return w; }
};

// torch.optim.SGD (torch/optim/sgd.py, _single_tensor_sgd), weight_decay = 0.
struct TorchSGD : Optimizer {
  ScalarFn lr;
  Real momentum, dampening;
  bool nesterov;
  Vec p, buf;
  bool has_buf = false;
  TorchSGD(ScalarFn lr_, Real mu, Real tau, bool nest) : lr(std::move(lr_)), momentum(mu), dampening(tau), nesterov(nest) {
    if (nesterov && (momentum <= 0 || dampening != 0))
      throw std::invalid_argument("Nesterov momentum requires a momentum and zero dampening");
  }
  TorchSGD(Real lr_, Real mu, Real tau, bool nest) : TorchSGD(constant(lr_), mu, tau, nest) {}
  void reset(const Vec& w0) override {
    p = w0;
    has_buf = false;
  }
  void step(const GradFn& grad, std::uint64_t t) override {
    Vec d_p = grad(p);
    if (momentum != 0) {
      if (!has_buf) {
        buf = d_p;  // torch.clone(d_p).detach()
        has_buf = true;
      } else {
        buf = momentum * buf + (1 - dampening) * d_p;  // buf.mul_(momentum).add_(d_p, alpha=1 - dampening)
      }
      if (nesterov)
        d_p = d_p + momentum * buf;
      else
        d_p = buf;
    }
    p -= lr(t) * d_p;
  }
  Vec eval_point() const override { return p; }
  Vec& params() override { return p; }
};

// QHM (Ma & Yarats 2019; facebookresearch/qhoptim QHM.step): buffer starts at 0,
// buf = beta buf + (1 - beta) g; p -= lr nu buf; p -= lr (1 - nu) g.
struct QHM : Optimizer {
  Real lr, beta, nu;
  Vec p, buf;
  QHM(Real lr_, Real beta_, Real nu_) : lr(lr_), beta(beta_), nu(nu_) {}
  void reset(const Vec& w0) override {
    p = w0;
    buf = Vec::Zero(w0.size());
  }
  void step(const GradFn& grad, std::uint64_t) override {
    const Vec g = grad(p);
    buf = beta * buf + (1 - beta) * g;
    p -= lr * nu * buf;
    p -= lr * (1 - nu) * g;
  }
  Vec eval_point() const override { return p; }
  Vec& params() override { return p; }
};

// Schedule-Free SGD, written after facebookresearch/schedule_free's
// SGDScheduleFreeReference.step (r = 0, weight_lr_power = 2, no weight decay):
//   sched = (k+1)/warmup if k < warmup else 1; lr = lr0 sched;
//   lr_max = max(lr, lr_max); weight = lr_max^2; weight_sum += weight; ckp1 = weight/weight_sum;
//   z -= lr g(y); x = (1 - ckp1) x + ckp1 z; y = momentum x + (1 - momentum) z; p = y.
// The gradient is taken at p = y; eval() would install x, whose loss is reported.
struct ScheduleFreeSGD : Optimizer {
  Real lr0, momentum;
  std::uint64_t warmup;
  Real lr_max = -1, weight_sum = 0;
  Vec x, y, z;
  ScheduleFreeSGD(Real lr_, Real beta, std::uint64_t warmup_steps = 0) : lr0(lr_), momentum(beta), warmup(warmup_steps) {}
  void reset(const Vec& w0) override {
    x = y = z = w0;
    lr_max = -1;
    weight_sum = 0;
  }
  void step(const GradFn& grad, std::uint64_t k) override {
    const Real sched = k < warmup ? Real(k + 1) / Real(warmup) : Real(1);
    const Real lr = lr0 * sched;
    lr_max = std::max(lr, lr_max);
    const Real weight = lr_max * lr_max;
    weight_sum += weight;
    const Real ckp1 = weight / weight_sum;
    const Vec g = grad(y);
    z -= lr * g;
    x = (1 - ckp1) * x + ckp1 * z;
    y = momentum * x + (1 - momentum) * z;
  }
  Vec eval_point() const override { return x; }
  Vec& params() override { return y; }
};

// Lookahead (Zhang et al. 2019; michaelrzhang/lookahead lookahead_pytorch.py,
// pullback_momentum = "none"): inner.step; la_step += 1; if la_step >= la_steps:
// la_step = 0; p = la_alpha p + (1 - la_alpha) cached; cached = p.
// Reported: the slow (cached) weights.
struct Lookahead : Optimizer {
  std::unique_ptr<Optimizer> inner;
  std::uint64_t la_steps, la_step = 0;
  Real la_alpha;
  Vec cached;
  Lookahead(std::unique_ptr<Optimizer> in, std::uint64_t sync, Real alpha)
      : inner(std::move(in)), la_steps(sync), la_alpha(alpha) {}
  void reset(const Vec& w0) override {
    inner->reset(w0);
    cached = w0;
    la_step = 0;
  }
  void step(const GradFn& grad, std::uint64_t t) override {
    inner->step(grad, t);
    if (++la_step >= la_steps) {
      la_step = 0;
      Vec& p = inner->params();
      p = la_alpha * p + (1 - la_alpha) * cached;
      cached = p;
    }
  }
  Vec eval_point() const override { return cached; }
  Vec& params() override { return inner->params(); }
};

// Averaging of an optimizer's reported point e_t, from the definitions:
//   ema:    a_0 = e_0, a_{t+1} = gamma a_t + (1 - gamma) e_{t+1}
//   polyak: a_t = (e_0 + ... + e_t) / (t + 1)
//   tail S: a_t = e_t for t < S, (e_S + ... + e_t) / (t - S + 1) for t >= S
// (Polyak and tail keep a running sum and a count, not a recursion in a.)
struct Averaged : Optimizer {
  enum class Kind { ema, polyak, tail };
  std::unique_ptr<Optimizer> inner;
  Kind kind;
  Real gamma = 0;
  std::uint64_t start = 0, t_now = 0, count = 0;
  Vec avg, sum;
  Averaged(std::unique_ptr<Optimizer> in, Kind k, Real gamma_ = 0, std::uint64_t start_ = 0)
      : inner(std::move(in)), kind(k), gamma(gamma_), start(start_) {}
  void observe(const Vec& e) {
    switch (kind) {
      case Kind::ema:
        avg = t_now == 0 ? e : Vec(gamma * avg + (1 - gamma) * e);
        break;
      case Kind::polyak:
      case Kind::tail: {
        const std::uint64_t S = kind == Kind::polyak ? 0 : start;
        if (t_now < S) {
          avg = e;
        } else {
          if (count == 0) sum = Vec::Zero(e.size());
          sum += e;
          ++count;
          avg = sum / Real(count);
        }
        break;
      }
    }
  }
  void reset(const Vec& w0) override {
    inner->reset(w0);
    t_now = 0;
    count = 0;
    observe(inner->eval_point());
  }
  void step(const GradFn& grad, std::uint64_t t) override {
    inner->step(grad, t);
    t_now = t + 1;
    observe(inner->eval_point());
  }
  Vec eval_point() const override { return avg; }
  Vec& params() override { return inner->params(); }
};

enum class Law { gaussian, rademacher };

struct MonteCarlo {
  std::vector<std::uint64_t> steps;
  std::vector<long double> mean, std_error;  // per recorded step: sample mean, sample std / sqrt(runs)
};

// Runs `runs` independent copies from the deterministic e_0 = sqrt(init)
// (w* = 0, so the point is the error), each step's gradient a fresh batch of B
// samples x = sqrt(lambda) u (u iid N(0,1) or +-1), y = xi ~ N(0, sigma2):
//   g(w) = (1/B) sum_b x_b (x_b^T w - xi_b).
// Records the loss 1/2 sum lambda_i e_i^2 of eval_point() at t = 0, every,
// 2 every, ... and at `steps`.
inline MonteCarlo mc_loss(const std::vector<long double>& lambda, const std::vector<long double>& init,
                          double sigma2, std::uint64_t B, Law law, const Factory& factory, std::uint64_t steps,
                          std::uint64_t every, std::uint64_t runs, std::uint64_t seed) {
  detail::check_problem(lambda, init);
  if (B == 0 || every == 0 || runs < 2) throw std::invalid_argument("oracle: mc_loss needs B, every >= 1, runs >= 2");
  const Eigen::Index d = Eigen::Index(lambda.size());
  Vec sl(d), lam(d), e0(d);
  for (Eigen::Index i = 0; i < d; ++i) {
    lam(i) = lambda[std::size_t(i)];
    sl(i) = std::sqrt(lam(i));
    e0(i) = std::sqrt(init[std::size_t(i)]);
  }
  MonteCarlo out;
  for (std::uint64_t t = 0; t <= steps; t += every) out.steps.push_back(t);
  if (out.steps.back() != steps) out.steps.push_back(steps);
  const std::size_t n = out.steps.size();
  std::vector<Real> mean(n, 0), m2(n, 0);  // Welford

  std::mt19937_64 rng(seed);
  // Normals are drawn in double (a long double Box-Muller/polar draw costs twice as
  // much and adds nothing at Monte Carlo accuracy); all arithmetic is long double.
  std::normal_distribution<double> normal(0, 1);
  const Real sigma = std::sqrt(Real(sigma2));
  Vec x(d);
  GradFn grad = [&](const Vec& at) {
    Vec g = Vec::Zero(d);
    for (std::uint64_t b = 0; b < B; ++b) {
      if (law == Law::gaussian) {
        for (Eigen::Index i = 0; i < d; ++i) x(i) = sl(i) * normal(rng);
      } else {
        for (Eigen::Index i = 0; i < d; ++i) x(i) = (rng() >> 63) ? sl(i) : -sl(i);
      }
      Real resid = x.dot(at);
      if (sigma2 != 0) resid -= sigma * normal(rng);
      g += resid * x;
    }
    return Vec(g / Real(B));
  };
  auto loss = [&](const Vec& e) { return Real(0.5) * (lam.array() * e.array().square()).sum(); };

  for (std::uint64_t run = 0; run < runs; ++run) {
    auto opt = factory();
    opt->reset(e0);
    std::size_t next = 0;
    for (std::uint64_t t = 0;; ++t) {
      if (next < n && out.steps[next] == t) {
        const Real L = loss(opt->eval_point());
        const Real delta = L - mean[next];
        mean[next] += delta / Real(run + 1);
        m2[next] += delta * (L - mean[next]);
        ++next;
      }
      if (t == steps) break;
      opt->step(grad, t);
    }
  }
  for (std::size_t j = 0; j < n; ++j) {
    out.mean.push_back(mean[j]);
    out.std_error.push_back(std::sqrt(m2[j] / Real(runs - 1)) / std::sqrt(Real(runs)));
  }
  return out;
}

// Two-sided normal quantile z with P(|N(0,1)| > z) = p (bisection on erfc).
inline double normal_two_sided_quantile(double p) {
  double lo = 0, hi = 40;
  for (int it = 0; it < 200; ++it) {
    const double mid = (lo + hi) / 2;
    if (std::erfc(mid / std::sqrt(2.0)) > p)
      lo = mid;
    else
      hi = mid;
  }
  return (lo + hi) / 2;
}
// Bonferroni bound for `rows` two-sided tests at family-wise level alpha.
inline double bonferroni_bound(std::size_t rows, double alpha) {
  return normal_two_sided_quantile(alpha / double(rows));
}

}  // namespace oracle
