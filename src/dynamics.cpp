#include "cesr/dynamics.hpp"

#include "cesr/progress.hpp"
#include "cesr/stop.hpp"

#include <fmt/format.h>

#include <cmath>
#include <stdexcept>

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
}  // namespace

void NoiseModel::validate() const {
  if (batch < 1) throw std::invalid_argument(fmt::format("--batch must be >= 1, got {}", batch));
  if (!std::isfinite(kurtosis) || !(kurtosis >= 1))
    throw std::invalid_argument(fmt::format("--kurtosis must be a finite number >= 1, got {}", kurtosis));
  if (!std::isfinite(label_noise) || !(label_noise >= 0))
    throw std::invalid_argument(fmt::format("--noise must be a finite number >= 0, got {}", label_noise));
}

namespace {
constexpr int unique_entries(int k) { return k * (k + 1) / 2; }
}  // namespace

template <class Real>
Dynamics<Real>::Dynamics(const Spectrum& spectrum, const MethodPath<Real>& method, const NoiseModel& noise,
                         Kernel kernel)
    : path_(method),
      method_(method.initial),
      noise_(noise),
      kernel_(kernel),
      inv_batch_(Real(1) / Real(noise.batch)),
      excess_kurtosis_over_batch_((Real(noise.kurtosis) - 2) / Real(noise.batch)),
      label_noise_(noise.label_noise),
      lambda_(spectrum.lambda.begin(), spectrum.lambda.end()) {
  if (spectrum.init.size() != spectrum.lambda.size())
    throw std::invalid_argument("spectrum and initial moments differ in length");
  if (method.initial.k < 1 || method.initial.k > max_states)
    throw std::invalid_argument(fmt::format("a method has 1..{} states, got {}", max_states, method.initial.k));
  state_.resize(static_cast<std::size_t>(unique_entries(method.initial.k)) * lambda_.size());
  init_.assign(spectrum.init.begin(), spectrum.init.end());
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
void Dynamics<Real>::reset() {
  // S_i(0) = E[e_{0,i}^2] s0 s0^T: state vector a starts at s0[a] e_0.
  method_ = path_.coefficients(0);
  const int k = method_.k;
  const std::size_t d = lambda_.size();
  Real* out = state_.data();
  for (int a = 0; a < k; ++a)
    for (int b = a; b < k; ++b) {
      const Real w = method_.s0[a] * method_.s0[b];
      for (std::size_t i = 0; i < d; ++i) *out++ = w * init_[i];
    }
  t_ = 0;
  scale_exp_ = 0;
  scaled_label_noise_ = label_noise_;
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
  excess_kurtosis_over_batch_ = (Real(noise_.kurtosis) - 2) / Real(batch);
}

template <class Real>
void Dynamics<Real>::step_k1(const Method<Real>& next, Real& psi, Real& loss) {
  const Method<Real>& m = method_;
  const std::size_t d = lambda_.size();
  const Real ekb = excess_kurtosis_over_batch_;
  const Real coupling = (scaled_psi_ + scaled_label_noise_) * inv_batch_;
  Real* __restrict lam = lambda_.data();
  Real* __restrict a = state_.data();
  const Real p = m.P[0][0], qr = m.q[0] * m.r[0], rr = m.r[0] * m.r[0], qq = m.q[0] * m.q[0];
  for_each_direction(d, psi, loss, [&](std::size_t i, Real& psi_sum, Real& loss_sum) {
    const Real l = lam[i];
    const Real A = p - l * qr;
    const Real n = l * (ekb * l * rr * a[i] + coupling);
    const Real an = A * A * a[i] + qq * n;
    a[i] = an;
    psi_sum += l * an;
    loss_sum += l * an;
  });
  psi *= next.r[0] * next.r[0];
  loss *= next.o[0] * next.o[0];
}

template <class Real>
void Dynamics<Real>::step_k2(const Method<Real>& next, Real& psi, Real& loss) {
  const auto& P = method_.P;
  const auto& q = method_.q;
  const auto& r = method_.r;
  const std::size_t d = lambda_.size();
  // Noise injected in direction i: lambda_i (ekb lambda_i z2_i + coupling) q q^T
  // with ekb = (K-2)/B and coupling = (psi + sigma^2)/B.
  const Real ekb = excess_kurtosis_over_batch_;
  const Real coupling = (scaled_psi_ + scaled_label_noise_) * inv_batch_;
  Real* __restrict lam = lambda_.data();
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
  const auto kernel = [&](auto same_output) {
    for_each_direction(d, psi, loss, [&](std::size_t i, Real& psi_sum, Real& loss_sum) {
      const Real l = lam[i];
      const Real A00 = p00 - l * qr00, A01 = p01 - l * qr01;
      const Real A10 = p10 - l * qr10, A11 = p11 - l * qr11;
      const Real ai = a[i], bi = b[i], ci = c[i];
      const Real z2 = r2a * ai + r2b * bi + r2c * ci;
      const Real n = l * (ekb * l * z2 + coupling);
      // T = A S, S' = T A^T + n q q^T
      const Real T00 = A00 * ai + A01 * bi, T01 = A00 * bi + A01 * ci;
      const Real T10 = A10 * ai + A11 * bi, T11 = A10 * bi + A11 * ci;
      const Real an = T00 * A00 + T01 * A01 + qqa * n;
      const Real bn = T10 * A00 + T11 * A01 + qqb * n;
      const Real cn = T10 * A10 + T11 * A11 + qqc * n;
      a[i] = an;
      b[i] = bn;
      c[i] = cn;
      psi_sum += l * (s2a * an + s2b * bn + s2c * cn);
      if constexpr (!decltype(same_output)::value) loss_sum += l * (o2a * an + o2b * bn + o2c * cn);
    });
  };
  if (same) {
    kernel(std::true_type{});
    loss = psi;
  } else {
    kernel(std::false_type{});
  }
}

// Any k = K: per direction S' = A S A^T + n q q^T on the K(K+1)/2 unique entries.
template <class Real>
template <int K>
void Dynamics<Real>::generic_step(const Method<Real>& next, Real& psi_out, Real& loss_out) {
  constexpr int n_entries = unique_entries(K);
  const Method<Real>& m = method_;
  const std::size_t d = lambda_.size();
  const Real ekb = excess_kurtosis_over_batch_;
  const Real coupling = (scaled_psi_ + scaled_label_noise_) * inv_batch_;
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
    const Real noise = l * (ekb * l * z2 + coupling);
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
void Dynamics<Real>::step() {
  // The sums after the update are taken with the coefficients of step t + 1
  // (they feed its noise and its output).
  const Method<Real>* next = &method_;
  if (!path_.constant()) {
    next_ = path_.initial;
    path_.at(t_ + 1, next_);
    next = &next_;
  }
  if ((t_ & 1023) == 0) {
    throw_if_stopped();                // a front end may ask long runs to stop
    if (t_ > 0) count_work(1024);      // and show their progress
  }
  if (!noise_.batch_schedule.constant()) set_batch(noise_.batch_at(t_));
  Real psi = 0, loss = 0;
  const bool fast = kernel_ == Kernel::Auto;
  switch (method_.k) {
    case 1:
      if (fast) step_k1(*next, psi, loss);
      else generic_step<1>(*next, psi, loss);
      break;
    case 2:
      if (fast) step_k2(*next, psi, loss);
      else generic_step<2>(*next, psi, loss);
      break;
    case 3: generic_step<3>(*next, psi, loss); break;
    default: generic_step<4>(*next, psi, loss); break;
  }
  if (!path_.constant()) std::swap(method_, next_);
  scaled_psi_ = psi;
  scaled_loss_ = loss / 2;
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
  const Real goal = relative ? target * out.initial_loss : target;
  for (;;) {
    out.loss = dyn.loss();
    out.steps_run = dyn.time();
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

#define CESR_INSTANTIATE(Real)                                                                          \
  template class Dynamics<Real>;                                                                       \
  template LossCurve<Real> loss_curve<Real>(const Spectrum&, const MethodPath<Real>&, const NoiseModel&, \
                                            std::uint64_t, std::uint64_t);                             \
  template StepsResult<Real> steps_to_target<Real>(const Spectrum&, const MethodPath<Real>&,           \
                                                   const NoiseModel&, const Real&, bool, std::uint64_t);
CESR_FOR_EACH_REAL(CESR_INSTANTIATE)
#undef CESR_INSTANTIATE

}  // namespace cesr
