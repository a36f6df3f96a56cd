#include "cesr/dynamics.hpp"

#include "cesr/error.hpp"
#include "cesr/parallel.hpp"
#include "cesr/progress.hpp"
#include "cesr/stop.hpp"
#include "kernels.hpp"

#include <Eigen/Dense>
#include <boost/multiprecision/eigen.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <type_traits>
#include <vector>

namespace cesr {

namespace {
// Runs body(i, psi, loss) for i < d, accumulating two sums. For the built-in
// floating types the loop is vectorized (the sums are reordered into SIMD
// lanes, which changes rounding only); other scalars run it in order.
template <class Real, class Body>
inline void for_each_direction(std::size_t d, Real& psi, Real& loss, Body&& body) {
  Real p = 0, l = 0;
  if constexpr (std::is_floating_point_v<Real>) {
#pragma omp simd reduction(+ : p, l)
    for (std::size_t i = 0; i < d; ++i) body(i, p, l);
  } else {
    for (std::size_t i = 0; i < d; ++i) body(i, p, l);
  }
  psi = p;
  loss = l;
}

// A double time-step kernel of src/kernels.cpp over d directions, run as
// kernel(begin, end) per chunk of include/cesr/parallel.hpp on the kernel
// threads, the chunks' sums added in chunk order: the same bits for any
// number of threads (one chunk: the kernel over all d, on this thread).
template <class Kernel>
kernels::StepSums chunked_step(std::size_t d, const Kernel& kernel) {
  return chunked_reduce<kernels::StepSums>(d, kernel, [](kernels::StepSums& t, const kernels::StepSums& p) {
    t.psi += p.psi;
    t.loss += p.loss;
  });
}
}  // namespace

namespace {
constexpr int unique_entries(int k) { return k * (k + 1) / 2; }

// Calls f(std::integral_constant<int, k>) for k = 1..max_states.
template <class F>
void for_k(int k, F&& f) {
  switch (k) {
    case 1: f(std::integral_constant<int, 1>{}); break;
    case 2: f(std::integral_constant<int, 2>{}); break;
    case 3: f(std::integral_constant<int, 3>{}); break;
    default: f(std::integral_constant<int, 4>{}); break;
  }
}

// The running rounding bound (Dynamics::track_rounding) in units of the unit
// roundoff u, counted from the kernels' operations (step_k1, step_k2,
// generic_step; a fused multiply-add only rounds less, and reordering a sum
// keeps these bounds), to first order in u:
// - S' = A S A^T + n q q^T: each A_ab = P_ab - lambda (q_a r_b) has 3 roundings,
//   on both sides; A S adds K, (A S) A^T + q q^T n adds K + 1; one to spare.
//   Entry (a, b) is off by at most that times (|A| |S| |A|^T)_ab <=
//   max|S| v_a v_b with v = (|P| + lambda |q||r|^T) 1.
constexpr int error_update(int k) { return 2 * k + 8; }
// - n = lambda ((K-2)/B lambda z + (psi + sigma^2)/B) with z = r^T S r summed
//   over the unique entries (each weight rounded once): relative to the sum of
//   the magnitudes of its terms, unique + 12 (constants, products, sums).
constexpr int error_noise(int k) { return unique_entries(k) + 12; }
// - q_a q_b and its product with n.
constexpr int error_injection = 3;
// The sums psi and L of a tracked run: blocks of sum_block terms added in
// order, the block sums with Neumaier's compensation, so their error is
// (sum_block + 2) u sum |x_i| (+ O(d u^2)) rather than d u; each term x_i =
// lambda_i sum_e w_e S_e has unique + 3 roundings of its own (w_e included).
constexpr std::size_t sum_block = 64;
constexpr int error_sum(int k) { return static_cast<int>(sum_block) + unique_entries(k) + 6; }

// Index of the diagonal entry (a, a) among the unique entries of a k x k symmetric matrix in row order.
constexpr int diagonal_entry(int k, int a) { return a * k - a * (a - 1) / 2; }

// Rounding below the normal range errs by at most half the smallest
// subnormal, absolutely; the bound adds a multiple of the smallest normal
// number instead, which keeps E itself out of the (slow) subnormal range.
template <class Real>
Real smallest_positive() {
  return std::numeric_limits<Real>::min();
}
}  // namespace

void NoiseModel::validate() const {
  if (batch < 1) throw std::invalid_argument(fmt::format("--batch must be >= 1, got {}", batch));
  if (!std::isfinite(noise_scale) || !(noise_scale >= 0))
    throw FieldError("noise_scale", fmt::format("noise_scale must be a finite number >= 0, got {}", noise_scale));
  if (additive()) {
    // The additive model's noise does not come from sampling data.
    if (kurtosis != 3)
      throw FieldError("kurtosis", "kurtosis does not apply to the additive noise model (no data-sampling term)");
    if (label_noise != 0)
      throw FieldError("noise", "noise (label noise) does not apply to the additive noise model; its gradient "
                                "noise is C / B (noise_scale or noise_covariance)");
  }
  if (!std::isfinite(kurtosis) || !(kurtosis >= 1))
    throw std::invalid_argument(fmt::format("--kurtosis must be a finite number >= 1, got {}", kurtosis));
  if (!std::isfinite(label_noise) || !(label_noise >= 0))
    throw std::invalid_argument(fmt::format("--noise must be a finite number >= 0, got {}", label_noise));
}


template <class Real>
Dynamics<Real>::Dynamics(const Spectrum& spectrum, const MethodPath<Real>& method, const NoiseModel& noise,
                         Kernel kernel)
    : path_(method),
      method_(method.initial),
      noise_(noise),
      kernel_(kernel),
      inv_batch_(Real(1) / Real(noise.batch)),
      excess_kurtosis_over_batch_(noise.additive() ? Real(0) : (Real(noise.kurtosis) - 2) / Real(noise.batch)),
      // The additive model's constant forcing takes the label noise's slot:
      // c for C = c H, 1 when the spectrum gives C_ii (folded into the injection).
      label_noise_(!noise.additive()                    ? Real(noise.label_noise)
                   : spectrum.noise_covariance.empty() ? Real(noise.noise_scale)
                                                        : Real(1)) {
  if (spectrum.init.size() != spectrum.lambda.size())
    throw std::invalid_argument("spectrum and initial moments differ in length");
  if (method.initial.k < 1 || method.initial.k > max_states)
    throw std::invalid_argument(fmt::format("a method has 1..{} states, got {}", max_states, method.initial.k));
  // Memory per direction: the spectrum's two doubles, then lambda, the
  // initial moments and k(k+1)/2 state entries in Real (checked before
  // allocating: 56 bytes for double k = 2, 336 for mp50, as measured).
  check_fits_in_memory(spectrum.dim(), "spectrum",
                       2.0 * sizeof(double) + double(2 + unique_entries(method.initial.k)) * sizeof(Real));
  lambda_.assign(spectrum.lambda.begin(), spectrum.lambda.end());
  choose_units(spectrum);
  state_.resize(static_cast<std::size_t>(unique_entries(method.initial.k)) * lambda_.size());
  init_.assign(spectrum.init.begin(), spectrum.init.end());
  if (spectrum.weighted() && spectrum.weight.size() != spectrum.lambda.size())
    throw std::invalid_argument("spectrum and weights differ in length");
  const bool own_covariance = noise.additive() && !spectrum.noise_covariance.empty();
  if (own_covariance && spectrum.noise_covariance.size() != spectrum.lambda.size())
    throw std::invalid_argument("spectrum and noise covariance differ in length");
  if (spectrum.weighted() || own_covariance) {
    using std::ldexp;
    weighted_lambda_.resize(lambda_.size());
    for (std::size_t i = 0; i < lambda_.size(); ++i) {
      const Real w(spectrum.weight_at(i));
      init_[i] *= w;
      // In the rescaled units (lambda / 2^e, lr 2^e, sigma^2 / 2^e) C_ii is C_ii / 2^(2e):
      // one 2^-e here, the other in the forcing's sigma^2 slot.
      weighted_lambda_[i] =
          w * (own_covariance ? ldexp(Real(spectrum.noise_covariance[i]), -lambda_exp_) : lambda_[i]);
    }
  }
  reset();
}

namespace {
// The state is rescaled by 2^(-+rescale_step) when the scaled loss leaves
// [2^-rescale_step, 2^rescale_step]: far inside double's range (2^+-1022), so
// entries up to 2^600 / lambda_i times the loss still fit, and rarely (a
// method growing by 1% per step triggers it once every ~28,000 steps).
constexpr int rescale_step = 400;
// The scale exponent stays within +-2^20: a loss below 2^(-2^20) (or a state
// that kept growing after the loss passed every threshold) is then left to
// underflow (overflow) as in unscaled arithmetic, and the exponent never wraps.
constexpr int max_scale_exp = 1 << 20;
}  // namespace

template <class Real>
void Dynamics<Real>::choose_units(const Spectrum& spectrum) {
  using std::frexp;
  using std::ldexp;
  // lambda_max / 2^e in [1/2, 1), unless that would push lambda_min below
  // the normal range of Real (kappa > 2^1021 in double): then as far as
  // keeps it normal. Powers of two: the rescaling itself is exact.
  double top = 0, bottom = std::numeric_limits<double>::infinity();
  for (const double l : spectrum.lambda)
    if (l > 0) {
      top = std::max(top, l);
      bottom = std::min(bottom, l);
    }
  if (!(top > 0) || !std::isfinite(top)) return;
  int e_top = 0, e_bottom = 0;
  std::frexp(top, &e_top);
  std::frexp(bottom, &e_bottom);
  lambda_exp_ = std::min(e_top, e_bottom - std::numeric_limits<Real>::min_exponent);
  for (Real& l : lambda_) l = ldexp(l, -lambda_exp_);
  // A state vector that starts at 0 and whose gradient injection q_a is
  // nearer 1 in the original units than in the rescaled ones (q_a = O(1)
  // where a parameter's is O(lr) = O(1/lambda)) carries gradients: it is
  // measured in units of 2^e. One that starts at s0_a e_0 != 0 is in the
  // units of e_0. Any choice is exact; this one keeps every entry near 1.
  const Method<Real>& m = path_.initial;
  for (int a = 0; a < m.k; ++a) {
    if (m.s0[a] != 0 || m.q[a] == 0 || !is_finite(m.q[a])) continue;
    int eq = 0;
    frexp(m.q[a], &eq);
    if (std::abs(eq) < std::abs(eq + lambda_exp_)) unit_exp_[a] = lambda_exp_;
  }
}

template <class Real>
void Dynamics<Real>::to_units(Method<Real>& m) const {
  using std::ldexp;
  if (lambda_exp_ == 0) return;
  for (int a = 0; a < m.k; ++a) {
    for (int b = 0; b < m.k; ++b) m.P[a][b] = ldexp(m.P[a][b], unit_exp_[b] - unit_exp_[a]);
    m.q[a] = ldexp(m.q[a], lambda_exp_ - unit_exp_[a]);
    m.r[a] = ldexp(m.r[a], unit_exp_[a]);
    m.o[a] = ldexp(m.o[a], unit_exp_[a]);
    m.s0[a] = ldexp(m.s0[a], -unit_exp_[a]);
  }
}

template <class Real>
void Dynamics<Real>::reset() {
  using std::ldexp;
  // S_i(0) = E[e_{0,i}^2] s0 s0^T: state vector a starts at s0[a] e_0.
  method_ = path_.coefficients(0);
  to_units(method_);
  const int k = method_.k;
  const std::size_t d = lambda_.size();
  Real* out = state_.data();
  for (int a = 0; a < k; ++a)
    for (int b = a; b < k; ++b) {
      const Real w = method_.s0[a] * method_.s0[b];
      for (std::size_t i = 0; i < d; ++i) *out++ = w * init_[i];
    }
  t_ = 0;
  // L = 2^e L~ in the rescaled units (and psi likewise), sigma^2 -> sigma^2 / 2^e.
  scale_exp_ = lambda_exp_;
  scaled_label_noise_ = ldexp(label_noise_, -scale_exp_);
  measure();
  rescale();
  publish();
}

template <class Real>
void Dynamics<Real>::rescale() {
  using std::abs;
  using std::ldexp;
  const Real size = scaled_loss_ > abs(scaled_psi_) ? scaled_loss_ : abs(scaled_psi_);
  const Real high = ldexp(Real(1), rescale_step), low = ldexp(Real(1), -rescale_step);
  int shift = 0;
  if (size > high && is_finite(size)) shift = -rescale_step;
  else if (size > 0 && size < low) shift = rescale_step;
  if (shift == 0 || std::abs(scale_exp_ - shift) > max_scale_exp) return;
  if (shift > 0) {
    // A state component that neither the loss nor psi sees (possible for a
    // custom method) may be large while both are tiny: scale up only as far
    // as keeps every entry below 2^(2 rescale_step), far from overflow.
    // (Only such a method can make this O(d) scan run on many steps.)
    Real largest = 0;
    for (const Real& x : state_) largest = abs(x) > largest ? abs(x) : largest;
    while (shift > 0 && ldexp(largest, shift) > ldexp(Real(1), 2 * rescale_step)) shift -= rescale_step / 4;
    if (shift <= 0) return;
  }
  // Multiplying by a power of two is exact (barring subnormals, which only
  // the upward shift can meet, and then it recovers lost digits).
  for (Real& x : state_) x = ldexp(x, shift);
  for (Real& x : bound_) x = ldexp(x, shift);
  bound_psi_ = ldexp(bound_psi_, shift);
  bound_loss_ = ldexp(bound_loss_, shift);
  psi_error_ = ldexp(psi_error_, shift);
  loss_error_ = ldexp(loss_error_, shift);
  scaled_loss_ = ldexp(scaled_loss_, shift);
  scaled_psi_ = ldexp(scaled_psi_, shift);
  scale_exp_ -= shift;
  scaled_label_noise_ = ldexp(label_noise_, -scale_exp_);
}

template <class Real>
void Dynamics<Real>::publish() {
  using std::ldexp;
  loss_ = ldexp(scaled_loss_, scale_exp_);
  psi_ = ldexp(scaled_psi_, scale_exp_);
}

template <class Real>
void Dynamics<Real>::measure() {
  // psi = sum_i lambda_i r^T S_i r and 2 L = sum_i lambda_i o^T S_i o, entry by entry.
  const auto& r = method_.r;
  const auto& o = method_.o;
  const int k = method_.k;
  const std::size_t d = lambda_.size();
  Real psi = 0, loss = 0;
  const Real* entry = state_.data();
  for (int a = 0; a < k; ++a)
    for (int b = a; b < k; ++b, entry += d) {
      const Real mult = a == b ? Real(1) : Real(2);
      const Real wr = mult * r[a] * r[b], wo = mult * o[a] * o[b];
      if (wr == 0 && wo == 0) continue;
      Real weighted = 0;
      for (std::size_t i = 0; i < d; ++i) weighted += lambda_[i] * entry[i];
      psi += wr * weighted;
      loss += wo * weighted;
    }
  scaled_psi_ = psi;
  scaled_loss_ = loss / 2;
}

template <class Real>
void Dynamics<Real>::set_batch(std::uint64_t batch) {
  inv_batch_ = Real(1) / Real(batch);
  excess_kurtosis_over_batch_ = noise_.additive() ? Real(0) : (Real(noise_.kurtosis) - 2) / Real(batch);
}

template <class Real>
template <bool Weighted>
void Dynamics<Real>::step_k1(const Method<Real>& next, Real& psi, Real& loss) {
  const Method<Real>& m = method_;
  const std::size_t d = lambda_.size();
  const Real ekb = excess_kurtosis_over_batch_;
  const Real coupling = this->coupling();
  Real* __restrict lam = lambda_.data();
  const Real* __restrict wlam = weighted_lambda_.data();
  Real* __restrict a = state_.data();
  const Real p = m.P[0][0], qr = m.q[0] * m.r[0], rr = m.r[0] * m.r[0], qq = m.q[0] * m.q[0];
  if constexpr (std::is_same_v<Real, double>) {
    // The same operations in the widest instruction set (src/kernels.cpp).
    kernels::StepConstants c{};
    c.p00 = p;
    c.qr00 = qr;
    c.r2a = rr;
    c.qqa = qq;
    c.ekb = ekb;
    c.coupling = coupling;
    const double* wl = Weighted ? wlam : nullptr;
    const kernels::StepSums s = chunked_step(d, [&](std::size_t begin, std::size_t end) {
      return kernels::step_k1(c, a + begin, lam + begin, wl ? wl + begin : nullptr, end - begin);
    });
    psi = s.psi;
    loss = s.loss;
  } else {
    for_each_direction(d, psi, loss, [&](std::size_t i, Real& psi_sum, Real& loss_sum) {
      const Real l = lam[i];
      const Real A = p - l * qr;
      Real n;
      if constexpr (Weighted) n = l * (ekb * l * rr * a[i]) + wlam[i] * coupling;
      else n = l * (ekb * l * rr * a[i] + coupling);
      const Real an = A * A * a[i] + qq * n;
      a[i] = an;
      psi_sum += l * an;
      loss_sum += l * an;
    });
  }
  psi *= next.r[0] * next.r[0];
  loss *= next.o[0] * next.o[0];
}

template <class Real>
template <bool Weighted>
void Dynamics<Real>::step_k2(const Method<Real>& next, Real& psi, Real& loss) {
  const auto& P = method_.P;
  const auto& q = method_.q;
  const auto& r = method_.r;
  const std::size_t d = lambda_.size();
  // Noise injected in direction i: lambda_i (ekb lambda_i z2_i + coupling) q q^T
  // with ekb = (K-2)/B and coupling = (psi + sigma^2)/B.
  const Real ekb = excess_kurtosis_over_batch_;
  const Real coupling = this->coupling();
  Real* __restrict lam = lambda_.data();
  const Real* __restrict wlam = weighted_lambda_.data();
  Real* __restrict a = state_.data();
  Real* __restrict b = a + d;
  Real* __restrict c = b + d;
  const Real p00 = P[0][0], p01 = P[0][1], p10 = P[1][0], p11 = P[1][1];
  const Real qr00 = q[0] * r[0], qr01 = q[0] * r[1], qr10 = q[1] * r[0], qr11 = q[1] * r[1];
  const Real r2a = r[0] * r[0], r2b = 2 * r[0] * r[1], r2c = r[1] * r[1];
  // The sums read the coefficients of the next step (the same for a constant method).
  const auto& rn = next.r;
  const auto& on = next.o;
  const Real s2a = rn[0] * rn[0], s2b = 2 * rn[0] * rn[1], s2c = rn[1] * rn[1];
  const Real o2a = on[0] * on[0], o2b = 2 * on[0] * on[1], o2c = on[1] * on[1];
  const Real qqa = q[0] * q[0], qqb = q[0] * q[1], qqc = q[1] * q[1];
  // When the output is the query point (o = r: SGD, heavy ball, AccSGD and
  // any custom method of that form) the loss sum is psi / 2: one weighted
  // sum instead of two, decided by the data, not by the method's name.
  const bool same = on[0] == rn[0] && on[1] == rn[1];
  if constexpr (std::is_same_v<Real, double>) {
    // The same operations in the widest instruction set (src/kernels.cpp).
    const kernels::StepConstants k{p00,  p01,  p10,  p11,  qr00, qr01, qr10, qr11, r2a,      r2b, r2c,
                                   s2a,  s2b,  s2c,  o2a,  o2b,  o2c,  qqa,  qqb,  qqc,      ekb, coupling};
    const double* wl = Weighted ? wlam : nullptr;
    const kernels::StepSums s = chunked_step(d, [&](std::size_t begin, std::size_t end) {
      return kernels::step_k2(k, a + begin, b + begin, c + begin, lam + begin, wl ? wl + begin : nullptr,
                              end - begin, same);
    });
    psi = s.psi;
    loss = s.loss;
    return;
  }
  // The gradient queried at the first state and read there at the next step
  // (r = r' = (1, 0): heavy ball, AccSGD): the weights of b and c in r^T S r
  // are zeros, and leaving their terms out gives the same bits (x + 0·y is x)
  // with fewer x87 80-bit loads, the slowest part of the long double step
  // (16-19% less time on Zen 5, bench/README.md).
  const bool first_state = r[0] == 1 && r[1] == 0 && rn[0] == 1 && rn[1] == 0;
  const auto kernel = [&](auto same_output, auto first) {
    for_each_direction(d, psi, loss, [&](std::size_t i, Real& psi_sum, Real& loss_sum) {
      const Real l = lam[i];
      const Real A00 = p00 - l * qr00, A01 = p01 - l * qr01;
      const Real A10 = p10 - l * qr10, A11 = p11 - l * qr11;
      const Real ai = a[i], bi = b[i], ci = c[i];
      Real z2;
      if constexpr (decltype(first)::value) z2 = ai;
      else z2 = r2a * ai + r2b * bi + r2c * ci;
      Real n;
      if constexpr (Weighted) n = l * (ekb * l * z2) + wlam[i] * coupling;
      else n = l * (ekb * l * z2 + coupling);
      // T = A S, S' = T A^T + n q q^T
      const Real T00 = A00 * ai + A01 * bi, T01 = A00 * bi + A01 * ci;
      const Real T10 = A10 * ai + A11 * bi, T11 = A10 * bi + A11 * ci;
      const Real an = T00 * A00 + T01 * A01 + qqa * n;
      const Real bn = T10 * A00 + T11 * A01 + qqb * n;
      const Real cn = T10 * A10 + T11 * A11 + qqc * n;
      a[i] = an;
      b[i] = bn;
      c[i] = cn;
      if constexpr (decltype(first)::value) psi_sum += l * an;
      else psi_sum += l * (s2a * an + s2b * bn + s2c * cn);
      if constexpr (!decltype(same_output)::value) loss_sum += l * (o2a * an + o2b * bn + o2c * cn);
    });
  };
  if (!same) {
    kernel(std::false_type{}, std::false_type{});
    return;
  }
  if (first_state) kernel(std::true_type{}, std::true_type{});
  else kernel(std::true_type{}, std::false_type{});
  loss = psi;
}

// Any k = K: per direction S' = A S A^T + n q q^T on the K(K+1)/2 unique entries.
template <class Real>
template <int K, bool Weighted>
void Dynamics<Real>::generic_step(const Method<Real>& next, Real& psi_out, Real& loss_out) {
  constexpr int n_entries = unique_entries(K);
  const Method<Real>& m = method_;
  const std::size_t d = lambda_.size();
  const Real ekb = excess_kurtosis_over_batch_;
  const Real coupling = this->coupling();
  // Weights of the unique entries in r^T S r (step t and t + 1) and o^T S o.
  std::array<Real, n_entries> wr{}, wr_next{}, wo_next{};
  std::array<std::array<Real, K>, K> qq{};
  {
    int e = 0;
    for (int a = 0; a < K; ++a)
      for (int b = a; b < K; ++b, ++e) {
        const Real mult = a == b ? Real(1) : Real(2);
        wr[e] = mult * m.r[a] * m.r[b];
        wr_next[e] = mult * next.r[a] * next.r[b];
        wo_next[e] = mult * next.o[a] * next.o[b];
      }
    for (int a = 0; a < K; ++a)
      for (int b = 0; b < K; ++b) qq[a][b] = m.q[a] * m.q[b];
  }
  // Local copies, so that the per-direction loop sees no aliasing and vectorizes.
  std::array<std::array<Real, K>, K> P{}, qr{};
  for (int a = 0; a < K; ++a)
    for (int b = 0; b < K; ++b) {
      P[a][b] = m.P[a][b];
      qr[a][b] = m.q[a] * m.r[b];
    }
  Real psi = 0, loss = 0;
  Real* __restrict base = state_.data();
  const Real* __restrict lam = lambda_.data();
  const Real* __restrict wlam = weighted_lambda_.data();
  const auto body = [&](std::size_t i, Real& psi_sum, Real& loss_sum) {
    const Real l = lam[i];
    Real S[K][K], A[K][K], T[K][K];
    {
      int e = 0;
      for (int a = 0; a < K; ++a)
        for (int b = a; b < K; ++b, ++e) S[a][b] = S[b][a] = base[static_cast<std::size_t>(e) * d + i];
    }
    Real z2 = 0;
    {
      int e = 0;
      for (int a = 0; a < K; ++a)
        for (int b = a; b < K; ++b, ++e) z2 += wr[e] * S[a][b];
    }
    Real noise;
    if constexpr (Weighted) noise = l * (ekb * l * z2) + wlam[i] * coupling;
    else noise = l * (ekb * l * z2 + coupling);
    for (int a = 0; a < K; ++a)
      for (int b = 0; b < K; ++b) A[a][b] = P[a][b] - l * qr[a][b];
    for (int a = 0; a < K; ++a)
      for (int b = 0; b < K; ++b) {
        Real sum = 0;
        for (int c = 0; c < K; ++c) sum += A[a][c] * S[c][b];
        T[a][b] = sum;
      }
    Real p = 0, o = 0;
    int e = 0;
    for (int a = 0; a < K; ++a)
      for (int b = a; b < K; ++b, ++e) {
        Real sum = qq[a][b] * noise;
        for (int c = 0; c < K; ++c) sum += T[a][c] * A[b][c];
        base[static_cast<std::size_t>(e) * d + i] = sum;
        p += wr_next[e] * sum;
        o += wo_next[e] * sum;
      }
    psi_sum += l * p;
    loss_sum += l * o;
  };
  for_each_direction(d, psi, loss, body);
  psi_out = psi;
  loss_out = loss;
}

template <class Real>
bool Dynamics<Real>::track_rounding() {
  using std::abs;
  if (!path_.constant() || t_ != 0) return false;
  // T is positive when the own-direction coefficient of r^T S_i r in the
  // injection, (K - 2 + w_i) lambda_i^2 / B, is >= 0: always unweighted
  // (K >= 1); with weights, K >= 2 is asked for.
  if (!noise_.additive() && noise_.kurtosis < 2 && !weighted_lambda_.empty()) return false;
  const int k = method_.k, n_entries = unique_entries(k);
  const std::size_t d = lambda_.size();
  const Real u = epsilon<Real>() / 2;
  // E doubles the state's memory: only where the state and E together fit.
  const double physical = physical_memory();
  if (physical > 0 && double(d) * (2.0 * sizeof(double) + double(2 + 2 * n_entries) * sizeof(Real)) > 0.8 * physical)
    return false;
  bound_.assign(state_.size(), Real(0));
  // S_i(0) = (s0_a s0_b) (w_i E[e_{0,i}^2]): three roundings per entry, whose
  // symmetric error is at most 3 u k max|S_i| in the Loewner order.
  for (std::size_t i = 0; i < d; ++i) {
    Real largest = 0;
    for (int e = 0; e < n_entries; ++e) largest = std::max<Real>(largest, abs(state_[e * d + i]));
    for (int a = 0; a < k; ++a)
      bound_[diagonal_entry(k, a) * d + i] = 3 * u * k * largest + smallest_positive<Real>();
  }
  for_k(k, [&](auto kk) { measure_bound<decltype(kk)::value>(); });
  publish();
  return true;
}

template <class Real>
Real Dynamics<Real>::rounding_bound() const {
  using std::abs;
  if (bound_.empty()) return Real(0);
  const Real absolute = bound_loss_ + loss_error_;
  if (scaled_loss_ == 0) return absolute == 0 ? Real(0) : std::numeric_limits<Real>::infinity();
  Real relative = absolute / abs(scaled_loss_);
  // publish() multiplies by 2^e, exactly unless L_t is below the normal range,
  // where it rounds to a multiple of the smallest subnormal.
  if (abs(loss_) < std::numeric_limits<Real>::min())
    relative = loss_ == 0 ? std::numeric_limits<Real>::infinity() : relative + smallest_positive<Real>() / abs(loss_);
  return relative;
}

template <class Real>
template <int K>
void Dynamics<Real>::measure_bound() {
  using std::abs;
  constexpr int n_entries = unique_entries(K);
  const Method<Real>& m = method_;  // a tracked method is constant: also step t + 1's
  std::array<Real, n_entries> wr{}, wo{};
  Real r1 = 0, o1 = 0;
  {
    int e = 0;
    for (int a = 0; a < K; ++a) {
      r1 += abs(m.r[a]);
      o1 += abs(m.o[a]);
      for (int b = a; b < K; ++b, ++e) {
        const Real mult = a == b ? Real(1) : Real(2);
        wr[e] = mult * m.r[a] * m.r[b];
        wo[e] = mult * m.o[a] * m.o[b];
      }
    }
  }
  const std::size_t d = lambda_.size();
  const Real* __restrict S = state_.data();
  const Real* __restrict E = bound_.data();
  const Real* __restrict lam = lambda_.data();
  // Neumaier's compensated sum of the block sums.
  Real psi = 0, psi_c = 0, loss = 0, loss_c = 0;
  const auto add = [](Real& sum, Real& comp, const Real& x) {
    const Real t = sum + x;
    if (abs(sum) >= abs(x)) comp += (sum - t) + x;
    else comp += (x - t) + sum;
    sum = t;
  };
  Real mass = 0, psi_e = 0, loss_e = 0;  // sum lambda_i max|S_i|, psi of E, 2 L of E
  for (std::size_t start = 0; start < d; start += sum_block) {
    const std::size_t end = std::min(d, start + sum_block);
    Real bp = 0, bl = 0, bm = 0, bpe = 0, ble = 0;
    const auto body = [&](std::size_t i) {
      Real sp = 0, so = 0, largest = 0, ep = 0, eo = 0;
      for (int e = 0; e < n_entries; ++e) {
        const Real s = S[e * d + i], x = E[e * d + i];
        sp += wr[e] * s;
        so += wo[e] * s;
        ep += wr[e] * x;
        eo += wo[e] * x;
        largest = abs(s) > largest ? abs(s) : largest;
      }
      const Real l = lam[i];
      bp += l * sp;
      bl += l * so;
      bm += l * largest;
      bpe += l * ep;
      ble += l * eo;
    };
    if constexpr (std::is_floating_point_v<Real>) {
#pragma omp simd reduction(+ : bp, bl, bm, bpe, ble)
      for (std::size_t i = start; i < end; ++i) body(i);
    } else {
      for (std::size_t i = start; i < end; ++i) body(i);
    }
    add(psi, psi_c, bp);
    add(loss, loss_c, bl);
    mass += bm;
    psi_e += bpe;
    loss_e += ble;
  }
  scaled_psi_ = psi + psi_c;
  scaled_loss_ = (loss + loss_c) / 2;
  const Real c = Real(error_sum(K)) * (epsilon<Real>() / 2) * mass;
  psi_error_ = c * r1 * r1;
  loss_error_ = c * o1 * o1 / 2;
  bound_psi_ = psi_e;
  bound_loss_ = loss_e / 2;
}

template <class Real>
template <int K, bool Weighted>
void Dynamics<Real>::bound_step() {
  using std::abs;
  constexpr int n_entries = unique_entries(K);
  const Method<Real>& m = method_;
  const std::size_t d = lambda_.size();
  const Real u = epsilon<Real>() / 2;
  const Real ekb = excess_kurtosis_over_batch_, ekb_abs = abs(ekb);
  // The computed state's coupling (its magnitude and the error of its psi),
  // and E's own: T acts on E without the constant forcing (label noise, the
  // additive model's C), which carries no error of the state.
  const Real coupling_state = abs(coupling());
  const Real coupling_error = noise_.additive() ? Real(0) : psi_error_ * inv_batch_;
  const Real coupling_bound = noise_.additive() ? Real(0) : bound_psi_ * inv_batch_;
  std::array<Real, n_entries> wr{};
  std::array<std::array<Real, K>, K> P{}, qr{}, qq{}, Pabs{}, qr_abs{};
  std::array<Real, K> q_abs{};
  Real r1 = 0, q1 = 0;
  {
    int e = 0;
    for (int a = 0; a < K; ++a) {
      q_abs[a] = abs(m.q[a]);
      q1 += q_abs[a];
      r1 += abs(m.r[a]);
      for (int b = a; b < K; ++b, ++e) wr[e] = (a == b ? Real(1) : Real(2)) * m.r[a] * m.r[b];
      for (int b = 0; b < K; ++b) {
        P[a][b] = m.P[a][b];
        Pabs[a][b] = abs(m.P[a][b]);
        qr[a][b] = m.q[a] * m.r[b];
        qr_abs[a][b] = abs(qr[a][b]);
        qq[a][b] = m.q[a] * m.q[b];
      }
    }
  }
  const Real update_u = Real(error_update(K)) * u, noise_u = Real(error_noise(K)) * u;
  const Real injection_u = Real(error_injection) * u;
  const Real floor = Real(error_update(K) + 4) * smallest_positive<Real>();  // rounding below the normal range
  Real* __restrict base = bound_.data();
  const Real* __restrict S = state_.data();
  const Real* __restrict lam = lambda_.data();
  const Real* __restrict wlam = weighted_lambda_.data();
  // By value: the loop then sees no aliasing through captured references and vectorizes.
  const auto body = [=](std::size_t i) {
    const Real l = lam[i];
    const Real f = Weighted ? abs(wlam[i]) : l;  // the injection's factor of the coupling
    Real largest = 0, Em[K][K], A[K][K], T[K][K];
    Real v[K];
    {
      int e = 0;
      for (int a = 0; a < K; ++a)
        for (int b = a; b < K; ++b, ++e) {
          const Real s = S[static_cast<std::size_t>(e) * d + i];
          largest = abs(s) > largest ? abs(s) : largest;
          Em[a][b] = Em[b][a] = base[static_cast<std::size_t>(e) * d + i];
        }
    }
    Real v1 = 0;
    for (int a = 0; a < K; ++a) {
      Real row = 0;
      for (int b = 0; b < K; ++b) {
        A[a][b] = P[a][b] - l * qr[a][b];
        row += Pabs[a][b] + l * qr_abs[a][b];
      }
      v[a] = row;
      v1 += row;
    }
    Real z = 0;
    {
      int e = 0;
      for (int a = 0; a < K; ++a)
        for (int b = a; b < K; ++b, ++e) z += wr[e] * Em[a][b];
    }
    Real n;
    if constexpr (Weighted) n = l * (ekb * l * z) + wlam[i] * coupling_bound;
    else n = l * (ekb * l * z + coupling_bound);
    // The state's injection n~ and its error: |n~| <= nu, |n~ - n| <= dn.
    const Real nu = l * l * ekb_abs * r1 * r1 * largest + f * coupling_state;
    const Real dn = noise_u * nu + f * coupling_error;
    const Real inject = dn + injection_u * nu;
    for (int a = 0; a < K; ++a)
      for (int b = 0; b < K; ++b) {
        Real sum = 0;
        for (int c = 0; c < K; ++c) sum += A[a][c] * Em[c][b];
        T[a][b] = sum;
      }
    int e = 0;
    for (int a = 0; a < K; ++a)
      for (int b = a; b < K; ++b, ++e) {
        Real sum = qq[a][b] * n;
        for (int c = 0; c < K; ++c) sum += T[a][c] * A[b][c];
        // |delta_ab| <= x v_a v_b + y |q_a||q_b|, so -N <= delta <= N for the
        // diagonal N_aa = x v_a |v|_1 + y |q_a| |q|_1 (Gershgorin).
        if (a == b) sum += update_u * largest * v[a] * v1 + inject * q_abs[a] * q1 + floor;
        base[static_cast<std::size_t>(e) * d + i] = sum;
      }
  };
  if constexpr (std::is_floating_point_v<Real>) {
#pragma omp simd
    for (std::size_t i = 0; i < d; ++i) body(i);
  } else {
    for (std::size_t i = 0; i < d; ++i) body(i);
  }
}

template <class Real>
void Dynamics<Real>::step() {
  // The sums after the update are taken with the coefficients of step t + 1
  // (they feed its noise and its output).
  const Method<Real>* next = &method_;
  if (!path_.constant()) {
    next_ = path_.initial;
    path_.at(t_ + 1, next_);
    to_units(next_);
    next = &next_;
  }
  if ((t_ & 1023) == 0) {
    throw_if_stopped();                // a front end may ask long runs to stop
    if (t_ > 0) count_work(1024);      // and show their progress
  }
  if (!noise_.batch_schedule.constant()) set_batch(noise_.batch_at(t_));
  const bool tracking = !bound_.empty();
  if (tracking) for_k(method_.k, [&](auto k) {
      if (weighted_lambda_.empty()) bound_step<decltype(k)::value, false>();
      else bound_step<decltype(k)::value, true>();
    });
  Real psi = 0, loss = 0;
  const bool fast = kernel_ == Kernel::Auto;
  // The unweighted kernels are separate instances, so a spectrum without
  // weights runs exactly the loop it ran before weights existed.
  const auto run = [&](auto weighted) {
    constexpr bool W = decltype(weighted)::value;
    switch (method_.k) {
      case 1:
        if (fast) step_k1<W>(*next, psi, loss);
        else generic_step<1, W>(*next, psi, loss);
        break;
      case 2:
        if (fast) step_k2<W>(*next, psi, loss);
        else generic_step<2, W>(*next, psi, loss);
        break;
      case 3: generic_step<3, W>(*next, psi, loss); break;
      default: generic_step<4, W>(*next, psi, loss); break;
    }
  };
  if (weighted_lambda_.empty()) run(std::false_type{});
  else run(std::true_type{});
  if (!path_.constant()) std::swap(method_, next_);
  scaled_psi_ = psi;
  scaled_loss_ = loss / 2;
  if (tracking) for_k(method_.k, [&](auto k) { measure_bound<decltype(k)::value>(); });
  ++t_;
  rescale();
  publish();
}

template <class Real>
void Dynamics<Real>::advance(std::uint64_t n) {
  for (std::uint64_t s = 0; s < n; ++s) step();
}

template <class Real>
bool Dynamics<Real>::diverged() const {
  return !is_finite(loss_) || loss_ > Real(divergence_threshold);
}

template <class Real>
LossCurve<Real> loss_curve(const Spectrum& spectrum, const MethodPath<Real>& method, const NoiseModel& noise,
                           std::uint64_t steps, std::uint64_t every) {
  if (every < 1) throw std::invalid_argument("--every must be >= 1");
  Dynamics<Real> dyn(spectrum, method, noise);
  LossCurve<Real> out;
  for (;;) {
    const std::uint64_t t = dyn.time();
    if (dyn.diverged()) {
      out.diverged_at = t;
      break;
    }
    if (t % every == 0 || t == steps) {
      out.step.push_back(t);
      out.loss.push_back(dyn.loss());
    }
    if (t == steps) break;
    dyn.step();
  }
  return out;
}

template <class Real>
StepsResult<Real> steps_to_target(const Spectrum& spectrum, const MethodPath<Real>& method, const NoiseModel& noise,
                                  const Real& target, bool relative, std::uint64_t max_steps) {
  Dynamics<Real> dyn(spectrum, method, noise);
  StepsResult<Real> out;
  out.initial_loss = dyn.loss();
  out.closest = out.initial_loss;
  const Real goal = relative ? target * out.initial_loss : target;
  if (noise.additive() && method.constant_from && noise.batch_schedule.constant()) {
    // The loss tends to the floor of the coefficients it settles on (or
    // diverges): a goal at or below it is never reached.
    out.floor = loss_floor(spectrum, method.coefficients(*method.constant_from), noise);
    if (is_finite(*out.floor) && goal <= *out.floor && out.initial_loss > goal) {
      out.loss = out.initial_loss;
      return out;
    }
  }
  for (;;) {
    out.loss = dyn.loss();
    out.steps_run = dyn.time();
    if (out.loss < out.closest) out.closest = out.loss;
    if (dyn.diverged()) {
      out.diverged_at = dyn.time();
      return out;
    }
    if (dyn.loss() <= goal) {
      out.steps = dyn.time();
      return out;
    }
    if (dyn.time() >= max_steps) return out;
    dyn.step();
  }
}

template <class Real>
Real loss_floor(const Spectrum& spectrum, const Method<Real>& m, const NoiseModel& noise) {
  if (!noise.additive()) return Real(0);
  if (!noise.batch_schedule.constant())
    throw FieldError("batch_schedule", "batch_schedule: the loss floor needs a constant batch size");
  using Mat = Eigen::Matrix<Real, Eigen::Dynamic, Eigen::Dynamic, 0, 10, 10>;
  using Vec = Eigen::Matrix<Real, Eigen::Dynamic, 1, 0, 10, 1>;
  const int k = m.k;
  std::vector<std::pair<int, int>> pairs;
  for (int a = 0; a < k; ++a)
    for (int b = a; b < k; ++b) pairs.emplace_back(a, b);
  const int n = static_cast<int>(pairs.size());
  const bool own = !spectrum.noise_covariance.empty();
  const Real forcing = (own ? Real(1) : Real(noise.noise_scale)) / Real(noise.batch);
  Real floor = 0;
  Real A[max_states][max_states];
  for (std::size_t i = 0; i < spectrum.dim(); ++i) {
    const Real l(spectrum.lambda[i]);
    for (int a = 0; a < k; ++a)
      for (int b = 0; b < k; ++b) A[a][b] = m.P[a][b] - l * m.q[a] * m.r[b];
    Mat M(n, n);
    Vec rhs(n);
    const Real inject = (own ? Real(spectrum.noise_covariance[i]) : l) * Real(spectrum.weight_at(i)) * forcing;
    for (int row = 0; row < n; ++row) {
      const auto [a, b] = pairs[row];
      rhs[row] = inject * m.q[a] * m.q[b];
      for (int col = 0; col < n; ++col) {
        const auto [c, d] = pairs[col];
        Real image = A[a][c] * A[b][d];
        if (c != d) image += A[a][d] * A[b][c];
        M(row, col) = (row == col ? Real(1) : Real(0)) - image;
      }
    }
    // The stationary S = sum_t A^t Q A^tT exists only when rho(A) < 1, i.e.
    // when 1 > rho(M_i) for M_i: S -> A S A^T; certified without eigenvalues
    // (as in src/rate.cpp's generic path): M_i maps PSD to PSD, so
    // 1 > rho(M_i) exactly when W = (I - M_i)^{-1} I is positive definite.
    const Eigen::PartialPivLU<Mat> lu(M);
    Vec ident(n);
    for (int e = 0; e < n; ++e) ident[e] = pairs[e].first == pairs[e].second ? Real(1) : Real(0);
    const Vec W = lu.solve(ident);
    Eigen::Matrix<Real, Eigen::Dynamic, Eigen::Dynamic, 0, max_states, max_states> Wm(k, k);
    for (int e = 0; e < n; ++e) Wm(pairs[e].first, pairs[e].second) = Wm(pairs[e].second, pairs[e].first) = W[e];
    Eigen::LLT<decltype(Wm)> chol(Wm);
    if (chol.info() != Eigen::Success || !is_finite(W.sum())) return std::numeric_limits<Real>::infinity();
    const Vec S = lu.solve(rhs);
    Real oso = 0;
    for (int e = 0; e < n; ++e) {
      const auto [a, b] = pairs[e];
      oso += (a == b ? Real(1) : Real(2)) * m.o[a] * m.o[b] * S[e];
    }
    floor += l * oso;
  }
  return floor / 2;
}

#define CESR_INSTANTIATE(Real)                                                                          \
  template Real loss_floor<Real>(const Spectrum&, const Method<Real>&, const NoiseModel&);             \
  template class Dynamics<Real>;                                                                       \
  template LossCurve<Real> loss_curve<Real>(const Spectrum&, const MethodPath<Real>&, const NoiseModel&, \
                                            std::uint64_t, std::uint64_t);                             \
  template StepsResult<Real> steps_to_target<Real>(const Spectrum&, const MethodPath<Real>&,           \
                                                   const NoiseModel&, const Real&, bool, std::uint64_t);
CESR_FOR_EACH_REAL(CESR_INSTANTIATE)
#undef CESR_INSTANTIATE

}  // namespace cesr
