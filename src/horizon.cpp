#include "cesr/horizon.hpp"

#include "cesr/error.hpp"
#include "cesr/stop.hpp"

#include <boost/math/tools/toms748_solve.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace cesr {

std::string_view to_string(HorizonMode m) {
  switch (m) {
    case HorizonMode::Auto: return "auto";
    case HorizonMode::Exact: return "exact";
    case HorizonMode::Stepping: return "stepping";
  }
  return "auto";
}

HorizonMode parse_horizon(std::string_view text) {
  if (text == "auto") return HorizonMode::Auto;
  if (text == "exact") return HorizonMode::Exact;
  if (text == "stepping") return HorizonMode::Stepping;
  throw FieldError("horizon", fmt::format("horizon must be auto, exact or stepping, got '{}'", text));
}

namespace {
// The roots cost O(d) secular evaluations of O(d) each: refuse beyond this d.
constexpr std::size_t max_horizon_dim = 20000;
// k = 3 and 4: the generic blocks' root search costs O(d) gaps of ~100 O(d m)
// evaluations each (m = 6, 10).
constexpr std::size_t max_generic_dim = 2000;
constexpr int max_root_iterations = 200;
// Visits of the first-crossing search (each O(d)) before it gives up.
constexpr int max_search_nodes = 200000;
constexpr std::uint64_t forever = std::numeric_limits<std::uint64_t>::max();
}  // namespace

std::optional<std::string> horizon_unsupported(const Spectrum& spectrum, const MethodSpec& spec,
                                               const NoiseModel& noise) {
  if (spec.time() != Time::Constant || !spec.lr_schedule.constant() || !spec.momentum_schedule.constant())
    return std::string("the method's coefficients change with the step");
  if (!noise.batch_schedule.constant()) return std::string("the batch size changes with the step");
  if (noise.additive()) return std::string("the additive noise model is not covered by the spectral path");
  if (spec.states() > 2 && spectrum.lambda.size() > max_generic_dim)
    return fmt::format("d = {} exceeds the budget of the spectral path for k = {} state vectors (d <= {})",
                       spectrum.lambda.size(), spec.states(), max_generic_dim);
  if (spectrum.lambda.size() > max_horizon_dim)
    return fmt::format("d = {} exceeds the spectral path's O(d^2) budget (d <= {})", spectrum.lambda.size(),
                       max_horizon_dim);
  return std::nullopt;
}

std::string HorizonReport::describe() const {
  if (!exact) return fmt::format("time stepping ({})", reason);
  return fmt::format("exact spectral ({}, {} modes, rtol {:.3g})", to_string(precision), modes, rtol);
}

namespace {

// max over lo <= t <= hi of t e^{t ell} (ell < 0; hi = forever means no end).
template <class Real>
Real peak(const Real& ell, std::uint64_t lo, std::uint64_t hi) {
  using std::exp;
  if (!is_finite(ell) && ell < 0) return Real(0);  // z = 0
  const Real l = Real(lo);
  if (!(ell < 0)) return hi == forever ? Real(std::numeric_limits<double>::infinity()) : Real(hi);
  const Real arg = -1 / ell;  // where t e^{t ell} peaks
  if (arg <= l) return l * exp(l * ell);
  if (hi != forever && Real(hi) < arg) return Real(hi) * exp(Real(hi) * ell);
  return arg * exp(Real(-1));
}

// e^{t ell} with z^0 = 1 also for z = 0.
template <class Real>
Real power(const Real& ell, std::uint64_t t) {
  using std::exp;
  if (t == 0) return Real(1);
  return exp(Real(t) * ell);
}

}  // namespace

template <class Real>
std::optional<SpectralLoss<Real>> SpectralLoss<Real>::build(const Spectrum& spectrum, const Method<Real>& m,
                                                            const NoiseModel& noise, std::string* why,
                                                            const MethodSpec* spec) {
  using std::abs;
  using std::log;
  using std::log1p;
  const auto fail = [&](std::string reason) {
    if (why) *why = std::move(reason);
    return std::optional<SpectralLoss>{};
  };
  if (m.k >= 2) return build_blocks(spectrum, m, noise, why, spec);
  if (m.k != 1) return fail(fmt::format("the method has k = {} state vectors", m.k));
  const std::size_t d = spectrum.lambda.size();
  const Real eps = epsilon<Real>();
  const Real B = Real(noise.batch), ekb = (Real(noise.kurtosis) - 2) / B, sigma2 = Real(noise.label_noise);
  const Real p = m.P[0][0], q = m.q[0], r = m.r[0], o = m.o[0], s0 = m.s0[0];
  const Real qq = q * q, rr = r * r, oo = o * o, qr = q * r, one_minus_p = 1 - p;

  SpectralLoss out;
  // Per direction: the pole delta_i = 1 - d_i in the small quantities,
  // s_i^2 = u_i v_i, v_i x0_i, and for the uncoupled case w_i y_i directly.
  struct Dir {
    Real delta, s2, vx, wy, wxinf;
  };
  std::vector<Dir> dirs(d);
  Real initial = 0;
  for (std::size_t i = 0; i < d; ++i) {
    const Real l = Real(spectrum.lambda[i]);
    // A line of weight m (a multiplicity) is the sum of m equal directions:
    // its initial error and its share of the noise forcing u are m times one's.
    const Real m_i = Real(spectrum.weight_at(i));
    const Real x0 = m_i * s0 * s0 * Real(spectrum.init[i]);
    const Real one_minus_a = one_minus_p + l * qr, a = p - l * qr;
    const Real delta = one_minus_a * (1 + a) - qq * ekb * rr * l * l;
    const Real u = m_i * qq * l / B, v = rr * l, w = oo * l / 2;
    dirs[i] = {delta, u * v, v * x0, w * x0, w * sigma2 * u};
    initial += l * x0;
  }
  out.initial_ = oo * initial / 2;
  std::sort(dirs.begin(), dirs.end(), [](const Dir& a, const Dir& b) { return a.delta < b.delta; });

  const bool coupled = qq * rr > 0 && oo > 0;
  // Merge equal poles (and poles within rounding of each other): the part of
  // a group orthogonal to its s_G evolves by itself and is invisible in the
  // loss (w is parallel to v), so the group acts as one pole of weight |s_G|^2.
  std::vector<Dir> poles;
  for (const Dir& x : dirs) {
    if (!poles.empty() && abs(x.delta - poles.back().delta) <= 2 * eps * abs(x.delta)) {
      Dir& g = poles.back();
      g.s2 += x.s2;
      g.vx += x.vx;
      g.wy += x.wy;
      g.wxinf += x.wxinf;
    } else {
      poles.push_back(x);
    }
  }
  const std::size_t n = poles.size();
  const Real gamma = Real(n + 8) * eps;  // worst-case relative rounding of an n-term sum

  if (!coupled) {
    // T = D: every direction decays alone, x_inf,i = sigma^2 u_i / delta_i.
    Real l_inf = 0, l_inf_abs = 0;
    for (const Dir& x : poles) {
      if (!(x.delta > 0 && x.delta < 2) && x.wy + x.wxinf != 0)
        return fail("a direction does not contract (|1 - delta| >= 1)");
    }
    for (const Dir& x : poles) {
      if (x.wy == 0 && x.wxinf == 0) continue;
      const Real xinf = x.wxinf / x.delta;
      HorizonMode1<Real> md;
      const Real z = 1 - x.delta;
      md.negative = z < 0;
      md.log_abs = x.delta < 1 ? log1p(-x.delta) : (z == 0 ? -Real(std::numeric_limits<double>::infinity())
                                                            : log(x.delta - 1));
      md.c = x.wy - xinf;
      md.c_error = 4 * eps * (abs(x.wy) + abs(xinf));
      md.log_error = z == 0 ? Real(0) : 8 * eps * abs(x.delta) / abs(z);
      out.modes_.push_back(md);
      l_inf += xinf;
      l_inf_abs += abs(xinf);
    }
    out.l_inf_ = l_inf;
    out.l_inf_error_ = gamma * l_inf_abs;
    out.gap_ = poles.empty() ? Real(1) : poles.front().delta;
    std::sort(out.modes_.begin(), out.modes_.end(),
              [](const auto& a, const auto& b) { return a.log_abs > b.log_abs; });
    return out;
  }

  if (!(poles.front().delta > 0)) return fail("the method does not contract (rho(D) >= 1)");
  // Secular function in mu = 1 - z about a base b (0 or a pole):
  // h = sum_i s_i^2 / ((delta_i - b) - tau) - 1, mu = b + tau.
  struct Sums {
    Real h, habs, dh;
  };
  int evaluations = 0;
  const auto sums = [&](const Real& base, const Real& tau) {
    Sums s{Real(-1), Real(1), Real(0)};
    for (const Dir& x : poles) {
      const Real den = (x.delta - base) - tau;
      const Real term = x.s2 / den;
      s.h += term;
      s.habs += abs(term);
      s.dh += term / den;
    }
    ++evaluations;
    return s;
  };
  // The method contracts iff h(mu = 0) < 0 (g(1) < 1): certified.
  const Sums at_zero = sums(Real(0), Real(0));
  if (!(at_zero.h + gamma * at_zero.habs < 0))
    return fail(at_zero.h > 0 ? "the method does not contract (rho >= 1)"
                              : "the method is too close to instability to certify in this precision");
  {
    // L_inf = w^T x_inf = (o^2 / 2 r^2) sigma^2 G1 / (1 - G1), G1 = sum s_i^2 / delta_i.
    const Real g1 = at_zero.h + 1, margin = -at_zero.h;
    out.l_inf_ = oo / (2 * rr) * sigma2 * g1 / margin;
    out.l_inf_error_ = abs(out.l_inf_) * (gamma * at_zero.habs / margin + gamma);
  }

  const std::uintmax_t max_iter_init = max_root_iterations;
  const auto tol = boost::math::tools::eps_tolerance<Real>(std::numeric_limits<Real>::digits - 3);
  // Root j lies in (lo_j, hi_j): (0, delta_0) for the top one, (delta_{j-1}, delta_j) after it.
  for (std::size_t j = 0; j < n; ++j) {
    if ((j & 63) == 0) throw_if_stopped();
    const Real lo = j == 0 ? Real(0) : poles[j - 1].delta, hi = poles[j].delta;
    // The half of the interval that holds the root decides the base: the
    // nearer pole (or 0 for the top root), so mu - pole is carried exactly.
    const Real mid = lo + (hi - lo) / 2;
    const Sums sm = sums(Real(0), mid);
    Real base, a, b;
    bool from_left;
    if (sm.h > 0) {  // root in (lo, mid]
      from_left = true;
      base = lo;
      a = 0;
      b = mid - lo;
    } else {  // root in [mid, hi)
      from_left = false;
      base = hi;
      a = mid - hi;
      b = 0;
    }
    // phi = h times the distance to the base pole: finite at both ends (the
    // base pole's term becomes -s^2 or +s^2), same root. For the top root
    // from 0 (no pole there), phi = h.
    const bool pole_base = !(j == 0 && from_left);
    const auto phi = [&](const Real& tau) {
      const Sums s = sums(base, tau);
      return pole_base ? abs(tau) * s.h : s.h;
    };
    Real tau;
    if (sm.h == 0) {
      tau = from_left ? b : a;
      a = b = tau;
    } else {
      Real fa, fb;
      if (pole_base && from_left) fa = -poles[j - 1].s2;
      else fa = phi(a);
      if (pole_base && !from_left) fb = poles[j].s2;
      else fb = phi(b);
      std::uintmax_t iters = max_iter_init;
      std::pair<Real, Real> br;
      try {
        br = boost::math::tools::toms748_solve(phi, a, b, fa, fb, tol, iters);
      } catch (const std::exception& e) {
        return fail(fmt::format("root {} of the secular equation: {}", j, e.what()));
      }
      if (iters >= max_iter_init) return fail(fmt::format("root {} of the secular equation did not converge", j));
      tau = br.first + (br.second - br.first) / 2;
      a = br.first;
      b = br.second;
    }
    // Inclusion radius: h is increasing with slope dh; its computed value is
    // within gamma habs of the true one.
    HorizonMode1<Real> md;
    Real vsum = 0, vabs = 0, vd = 0, m2 = 0, m3 = 0;
    for (const Dir& x : poles) {
      const Real den = (x.delta - base) - tau;
      const Real t1 = x.vx / den;
      vsum += t1;
      vabs += abs(t1);
      vd += abs(t1 / den);
      const Real sq = x.s2 / (den * den);
      m2 += sq;
      m3 += sq / abs(den);
    }
    ++evaluations;
    const Sums s = sums(base, tau);
    const Real radius = 2 * (abs(s.h) + gamma * s.habs) / s.dh + (b - a);
    const Real mu = base + tau;
    if (!(mu > radius)) return fail("the top mode is too close to 1 to certify in this precision");
    const Real z = 1 - mu;
    md.negative = z < 0;
    md.log_abs = mu < 1 ? log1p(-mu) : (z == 0 ? -Real(std::numeric_limits<double>::infinity()) : log(mu - 1));
    const Real mu_error = radius + 8 * eps * (abs(mu) + abs(base));
    // |log(1 + x)| <= 2 |x| for |x| <= 1/2: the bound on log |z|.
    if (!(mu_error < abs(z) / 2))
      return fail(fmt::format("a mode at z = {} is not separated from 0 in this precision", format_real(z, 3)));
    md.log_error = 2 * mu_error / abs(z);
    // c = (o^2 / 2 r^2) N / M with N = v^T R y0 = sum v_i x0_i / den_i - sigma^2 / mu
    // (the label-noise part in closed form at the root) and M = v^T R^2 u.
    const Real num = vsum - sigma2 / mu;
    const Real num_error = gamma * (vabs + sigma2 / abs(mu)) + radius * (vd + sigma2 / (mu * mu));
    const Real m2_error = gamma * m2 + 2 * radius * m3;
    const Real scale = oo / (2 * rr);
    md.c = scale * num / m2;
    md.c_error = scale * (num_error / m2 + abs(num) * m2_error / (m2 * m2)) + 4 * eps * abs(md.c);
    if (j == 0) out.gap_ = mu;
    out.modes_.push_back(md);
  }
  out.evaluations_ = evaluations;
  std::sort(out.modes_.begin(), out.modes_.end(), [](const auto& a, const auto& b) { return a.log_abs > b.log_abs; });
  return out;
}

template <class Real>
Bounded<Real> SpectralLoss<Real>::at(std::uint64_t t) const {
  using std::abs;
  using std::expm1;
  const Real eps = epsilon<Real>();
  // L_0 as time stepping measures it (the modes sum to it within rounding).
  if (t == 0) return {initial_, Real(modes_.size() + 8) * eps * abs(initial_)};
  const Real tt = Real(t);
  Real sum = l_inf_, size = abs(l_inf_), err = l_inf_error_;
  for (const auto& md : modes_) {
    const Real zt = power(md.log_abs, t);
    if (zt == 0) continue;
    const Real term = (md.negative && (t & 1)) ? -md.c * zt : md.c * zt;
    sum += term;
    size += abs(term);
    // |c z^t - c~ z~^t| <= |c~ - c| z^t + |c| z^t (e^{t dlog} - 1) + rounding of exp.
    const Real growth = t == 0 ? Real(0) : expm1(tt * md.log_error);
    const Real rounding = eps * (4 + abs(tt * md.log_abs));
    err += md.c_error * zt * (1 + growth) + abs(md.c) * zt * (growth + rounding);
  }
  err += Real(modes_.size() + 8) * epsilon<Real>() * size;
  return {sum, err};
}

template <class Real>
std::uint64_t SpectralLoss<Real>::settled(double rtol) const {
  using std::abs;
  if (radius_ == 0) return 0;  // no remainder: certified from t = 0
  // The remainder mode (c = 0) alone: the outer modes' own bounds are the
  // solver's to certify (or escalate).
  const Real tol = Real(rtol) / 4;
  Real rest = 0, log_r = 0;
  for (const auto& md : modes_)
    if (md.c == 0 && md.c_error > rest) rest = md.c_error, log_r = md.log_abs;
  if (rest == 0) return 0;
  const auto ok = [&](std::uint64_t t) { return rest * power(log_r, t) <= tol * abs(at(t).value); };
  std::uint64_t hi = 1;
  while (!ok(hi)) {
    if (hi >= (std::uint64_t{1} << 62)) return forever;
    hi *= 2;
  }
  std::uint64_t lo = hi / 2;  // not ok (or 0)
  if (hi == 1) return ok(0) ? 0 : 1;
  while (hi - lo > 1) {
    const std::uint64_t mid = lo + (hi - lo) / 2;
    (ok(mid) ? hi : lo) = mid;
  }
  return hi;
}

template <class Real>
Real SpectralLoss<Real>::lower_bound(std::uint64_t lo, std::uint64_t hi) const {
  using std::abs;
  const Real eps = epsilon<Real>();
  Real sum = l_inf_ - l_inf_error_, size = abs(l_inf_);
  for (const auto& md : modes_) {
    const Real at_lo = power(md.log_abs, lo);
    Real term;
    if (md.negative || md.c < 0) {
      term = -abs(md.c) * at_lo;  // the most negative value over the range is at its start
      if (!md.negative) term = md.c * at_lo;
    } else {
      term = hi == forever ? Real(0) : md.c * power(md.log_abs, hi);
    }
    sum += term;
    size += abs(md.c) * at_lo;
    // First-order error over the range: |dc| z^t + |c| t dlog z^t (doubled), with t z^t <= peak.
    if (at_lo == 0) continue;
    const Real pk = peak(md.log_abs, lo, hi);
    sum -= md.c_error * at_lo * 2 + abs(md.c) * (2 * md.log_error + eps * abs(md.log_abs)) * pk +
           4 * eps * abs(md.c) * at_lo;
  }
  return sum - Real(modes_.size() + 8) * eps * size;
}

namespace {

// Runs solve(SpectralLoss<W>) in precision `start`, then the next ones, until
// it returns a value; the reason of the last failure otherwise.
template <class Result, class Solve>
std::optional<Result> escalate(Precision start, const Spectrum& spectrum, const MethodSpec& spec,
                               const NoiseModel& noise, HorizonReport& report, Solve&& solve) {
  if (auto why = horizon_unsupported(spectrum, spec, noise)) {
    report.reason = *why;
    return std::nullopt;
  }
  for (Precision p = start;; p = next_precision(p)) {
    std::optional<Result> res = with_precision(p, [&](auto zero) -> std::optional<Result> {
      using W = decltype(zero);
      std::string why;
      const auto sl = SpectralLoss<W>::build(spectrum, make_method<W>(spec), noise, &why, &spec);
      if (!sl) {
        report.reason = why;
        return std::nullopt;
      }
      report.modes = sl->modes();
      auto r = solve(*sl, report.reason);
      if (r) report.precision = p;
      return r;
    });
    if (res) {
      report.exact = true;
      report.reason.clear();
      return res;
    }
    // An unstable method stays unstable in every precision, and the k = 2
    // circle's structure (what lies outside it, how fast the rest decays)
    // does not depend on the precision either.
    for (const char* lasting : {"does not contract", "decays too slowly", "lie outside", "needs more than",
                                "no real eigenvalue", "no circle", "does not cover"})
      if (report.reason.find(lasting) != std::string::npos) return std::nullopt;
    if (p == Precision::Mp50) return std::nullopt;
  }
}

template <class To, class From>
To convert(const From& x) {
  if constexpr (std::is_same_v<To, From>) return x;
  else if constexpr (std::is_arithmetic_v<From> && std::is_arithmetic_v<To>) return static_cast<To>(x);
  else if constexpr (std::is_arithmetic_v<To>) return x.template convert_to<To>();
  else return To(x);
}

// The step before which a k = 2 spectral form is time-stepped instead
// (SpectralLoss::settled), within a work budget; empty (with `why`) beyond it.
template <class W>
std::optional<std::uint64_t> prefix_steps(const SpectralLoss<W>& sl, const Spectrum& spectrum, double rtol,
                                          std::string& why) {
  const std::uint64_t t = sl.settled(rtol);
  constexpr double max_prefix_work = 4e9;  // steps times directions
  if (t == forever || static_cast<double>(t) * static_cast<double>(std::max<std::size_t>(spectrum.dim(), 1)) >
                          max_prefix_work) {
    why = "the remainder of the k = 2 spectral form decays too slowly (the modes outside its circle do not "
          "dominate soon enough)";
    return std::nullopt;
  }
  return t;
}

}  // namespace

template <class Real>
std::optional<std::vector<Real>> horizon_loss_at(const Spectrum& spectrum, const MethodSpec& spec,
                                                 const NoiseModel& noise, const std::vector<std::uint64_t>& steps,
                                                 double rtol, HorizonReport& report) {
  report.rtol = rtol;
  std::optional<AutoLossCurve> early;  // time-stepped L_1.. where the remainder is loose (k = 2)
  return escalate<std::vector<Real>>(
      precision_of<Real>(), spectrum, spec, noise, report,
      [&](const auto& sl, std::string& why) -> std::optional<std::vector<Real>> {
        using W = std::decay_t<decltype(sl.initial_loss())>;
        using std::abs;
        std::vector<Real> out;
        out.reserve(steps.size());
        // The steps before the k = 2 remainder has decayed: time-stepped in
        // automatic precision to the same tolerance (loss_curve_auto).
        const auto prefix = prefix_steps(sl, spectrum, rtol, why);
        if (!prefix) return std::nullopt;
        std::uint64_t last = 0;
        for (const std::uint64_t t : steps)
          if (t < *prefix) last = std::max(last, t);
        if (last > 0 && (!early || early->step.size() <= last)) {
          constexpr std::uint64_t max_early = 2'000'000;
          if (last > max_early) {
            why = fmt::format("the k = 2 spectral form is loose before step {}, beyond the {} steps time-stepped",
                              *prefix, max_early);
            return std::nullopt;
          }
          early = loss_curve_auto(spectrum, spec, noise, last, 1, rtol);
          if (!early->agreed || early->diverged_at || early->step.size() <= last) {
            why = "the early steps are not certified by time stepping";
            early.reset();
            return std::nullopt;
          }
        }
        for (std::size_t i = 0; i < steps.size(); ++i) {
          if ((i & 1023) == 0) throw_if_stopped();
          if (steps[i] > 0 && steps[i] < *prefix) {
            out.push_back(Real(early->loss[steps[i]]));
            continue;
          }
          const auto v = sl.at(steps[i]);
          if (!(v.error <= W(rtol) * abs(v.value))) {
            why = fmt::format("L at step {} is not certified to rtol {:.3g} in {}", steps[i], rtol,
                              to_string(precision_of<W>()));
            return std::nullopt;
          }
          out.push_back(convert<Real>(v.value));
        }
        return out;
      });
}

template <class Real>
std::optional<LossCurve<Real>> horizon_loss_curve(const Spectrum& spectrum, const MethodSpec& spec,
                                                  const NoiseModel& noise, std::uint64_t steps,
                                                  std::uint64_t every, double rtol, HorizonReport& report) {
  if (every < 1) throw FieldError("every", "every must be >= 1");
  // The steps loss_curve prints: t = 0, every, 2 every, ... <= steps, and steps.
  std::vector<std::uint64_t> ts;
  for (std::uint64_t t = 0;; t += every) {
    ts.push_back(t);
    if (steps - t < every) break;
  }
  if (ts.back() != steps) ts.push_back(steps);
  auto values = horizon_loss_at<Real>(spectrum, spec, noise, ts, rtol, report);
  if (!values) return std::nullopt;
  LossCurve<Real> out;
  out.step = std::move(ts);
  out.loss = std::move(*values);
  return out;
}

namespace {

enum class Verdict { Below, Above, Unsure };

// The first t with L_t <= goal. Outer empty: undecided in this precision
// (`why` says why); inner empty: never (the goal is below what L_t reaches).
// A comparison is decided when the error bound separates L_t from the goal;
// one that is not but whose bound is within rtol |L_t| is decided by the
// value and flagged in `near` (the target is within the tolerance of L at
// that step, where time stepping in any precision may decide either way).
template <class W>
std::optional<std::optional<std::uint64_t>> first_crossing(const SpectralLoss<W>& sl, const W& goal, double rtol,
                                                           std::string& why, bool& near, std::uint64_t from = 1) {
  using Out = std::optional<std::optional<std::uint64_t>>;
  bool undecided = false;
  std::uint64_t undecided_at = 0;
  const auto below = [&](std::uint64_t t) {
    const auto v = sl.at(t);
    using std::abs;
    if (v.value + v.error <= goal) return true;
    if (v.value - v.error > goal) return false;
    if (v.error <= W(rtol) * abs(v.value)) {
      near = true;
      return v.value <= goal;
    }
    undecided = true;
    undecided_at = t;
    return false;
  };
  const auto give_up = [&]() -> Out {
    why = fmt::format("L at step {} is not separated from the target in {}", undecided_at,
                      to_string(precision_of<W>()));
    return std::nullopt;
  };
  // t = 0 is L_0 itself (as time stepping measures it).
  if (sl.initial_loss() <= goal) return Out{std::uint64_t{0}};
  // An end: a step already below the goal, or one after which the lower
  // bound stays above it for ever.
  std::uint64_t end = 0;
  bool never_after = false;
  from = std::max<std::uint64_t>(from, 1);
  for (std::uint64_t t = from;; t = t > forever / 2 ? forever : 2 * t) {
    if (below(t)) {
      end = t;
      break;
    }
    if (undecided) return give_up();
    if (sl.lower_bound(t, forever) > goal) {
      end = t;
      never_after = true;
      break;
    }
    if (t == forever) {
      why = "the target is neither reached nor excluded at any step (it is within the tolerance of the floor)";
      return std::nullopt;
    }
  }
  // First t in [1, end] with L_t <= goal, depth first, left to right: a range
  // whose lower bound stays above the goal is skipped, the rest is split.
  int nodes = 0;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> stack{{from, end}};
  while (!stack.empty()) {
    if (++nodes > max_search_nodes) {
      why = "the first-crossing search needs too many steps to separate";
      return std::nullopt;
    }
    if ((nodes & 255) == 0) throw_if_stopped();
    const auto [lo, hi] = stack.back();
    stack.pop_back();
    if (lo > hi || sl.lower_bound(lo, hi) > goal) continue;
    if (below(lo)) return Out{lo};
    if (undecided) return give_up();
    if (lo == hi) continue;
    const std::uint64_t mid = lo + (hi - lo) / 2;
    stack.push_back({mid + 1, hi});
    stack.push_back({lo + 1, mid});
  }
  if (!never_after) {
    why = "the first-crossing search lost the crossing it had found";
    return std::nullopt;
  }
  return Out{std::optional<std::uint64_t>{}};
}

}  // namespace

template <class Real>
std::optional<StepsResult<Real>> horizon_steps(const Spectrum& spectrum, const MethodSpec& spec,
                                               const NoiseModel& noise, const Real& target, bool relative,
                                               double rtol, HorizonReport& report) {
  report.rtol = rtol;
  std::uint64_t stepped_to = 0;  // L_t > goal for every t <= stepped_to, by time stepping (k = 2)
  return escalate<StepsResult<Real>>(
      precision_of<Real>(), spectrum, spec, noise, report,
      [&](const auto& sl, std::string& why) -> std::optional<StepsResult<Real>> {
        using W = std::decay_t<decltype(sl.initial_loss())>;
        const W goal = relative ? convert<W>(target) * sl.initial_loss() : convert<W>(target);
        bool near = false;
        StepsResult<Real> out;
        out.initial_loss = convert<Real>(sl.initial_loss());
        const auto prefix = prefix_steps(sl, spectrum, rtol, why);
        if (!prefix) return std::nullopt;
        if (*prefix > 0 && !(sl.initial_loss() <= goal) && stepped_to < *prefix) {
          // The steps before the remainder has decayed: time stepping in
          // automatic precision (two precisions agreeing on the step).
          // Only whether the target is reached before the prefix ends is asked (StepsQuestion::Reached).
          const AutoSteps a = steps_to_target_auto(spectrum, spec, noise, to_double(target), relative, *prefix, rtol,
                                                   StepsQuestion::Reached);
          if (!a.agreed || a.diverged_at) {
            why = "the early steps are not certified by time stepping";
            return std::nullopt;
          }
          if (a.steps) {
            out.steps = a.steps;
            out.steps_run = *a.steps;
            out.loss = Real(a.loss);
            return out;
          }
          stepped_to = *prefix;
        }
        const auto first = first_crossing(sl, goal, rtol, why, near, *prefix + 1);
        if (!first) return std::nullopt;
        if (!*first) {
          out.loss = convert<Real>(sl.floor().value);  // never reached: the floor it tends to
          return out;
        }
        const std::uint64_t t = **first;
        out.steps = t;
        out.steps_run = t;
        out.loss = t == 0 ? out.initial_loss : convert<Real>(sl.at(t).value);
        report.near_target = near;
        return out;
      });
}

std::optional<double> horizon_fractional_steps(const Spectrum& spectrum, const MethodSpec& spec,
                                               const NoiseModel& noise, double target, bool relative,
                                               double rtol_asked, HorizonReport& report) {
  report.rtol = rtol_asked;
  return escalate<double>(
      Precision::Double, spectrum, spec, noise, report, [&](const auto& sl, std::string& why) -> std::optional<double> {
        using W = std::decay_t<decltype(sl.initial_loss())>;
        using std::log;
        const W goal = relative ? W(target) * sl.initial_loss() : W(target);
        bool near = false;
        // A stand-in for the search, not a count: decided to the tolerance
        // asked for where that holds, else (k = 2 in double) to 1e-4
        // relative, comparisons closer than that by the value, which moves
        // the count by about 1e-4 / (gap t) of itself. The count the tuner
        // reports comes from horizon_steps at the tolerance asked for.
        const bool loose_ok = sl.radius() > 0 && precision_of<W>() == Precision::Double;
        auto prefix = prefix_steps(sl, spectrum, rtol_asked, why);
        if (!prefix && loose_ok) prefix = prefix_steps(sl, spectrum, 1e-4, why);
        if (!prefix) return std::nullopt;
        if (*prefix > 0 && !(sl.initial_loss() <= goal)) {
          // The early steps in double (a stand-in, as above).
          Dynamics<double> dyn(spectrum, make_path<double>(spec), noise);
          const double g = to_double(goal);
          double before = dyn.loss();
          while (dyn.time() < *prefix) {
            if ((dyn.time() & 1023) == 0) throw_if_stopped();
            dyn.step();
            const double now = dyn.loss();
            if (now <= g) {
              const double frac = std::log(before / g) / std::log(before / now);
              return static_cast<double>(dyn.time() - 1) + std::clamp(frac, 0.0, 1.0);
            }
            before = now;
          }
        }
        auto first = first_crossing(sl, goal, rtol_asked, why, near, *prefix + 1);
        if (!first && loose_ok) first = first_crossing(sl, goal, 1e-4, why, near, *prefix + 1);
        if (!first) return std::nullopt;
        if (!*first) return std::numeric_limits<double>::infinity();
        const std::uint64_t t = **first;
        if (t == 0) return 0.0;
        const W before = t == 1 ? sl.initial_loss() : sl.at(t - 1).value, now = sl.at(t).value;
        // ln L linear between t - 1 and t (tune.hpp, fractional_steps).
        const double frac = to_double(log(before / goal) / log(before / now));
        return static_cast<double>(t - 1) + std::clamp(frac, 0.0, 1.0);
      });
}

#define CESR_INSTANTIATE(Real)                                                                                 \
  template class SpectralLoss<Real>;                                                                          \
  template std::optional<LossCurve<Real>> horizon_loss_curve<Real>(const Spectrum&, const MethodSpec&,        \
                                                                   const NoiseModel&, std::uint64_t,          \
                                                                   std::uint64_t, double, HorizonReport&);    \
  template std::optional<std::vector<Real>> horizon_loss_at<Real>(const Spectrum&, const MethodSpec&,         \
                                                                  const NoiseModel&,                          \
                                                                  const std::vector<std::uint64_t>&, double,  \
                                                                  HorizonReport&);                            \
  template std::optional<StepsResult<Real>> horizon_steps<Real>(const Spectrum&, const MethodSpec&,           \
                                                                const NoiseModel&, const Real&, bool, double, \
                                                                HorizonReport&);
CESR_FOR_EACH_REAL(CESR_INSTANTIATE)
#undef CESR_INSTANTIATE

}  // namespace cesr

namespace cesr {

std::optional<AutoSteps> steps_any_horizon(const Spectrum& spectrum, const MethodSpec& spec, const NoiseModel& noise,
                                           double target, bool relative, HorizonMode mode, double horizon_rtol,
                                           std::uint64_t max_steps, std::optional<Precision> precision, double rtol,
                                           HorizonReport& report, bool& fell_back) {
  fell_back = false;
  const auto stepping = [&](std::uint64_t cap, StepsQuestion question) {
    return precision ? steps_to_target_in(*precision, spectrum, spec, noise, target, relative, cap)
                     : steps_to_target_auto(spectrum, spec, noise, target, relative, cap, rtol, question);
  };
  report.exact = false;
  if (mode == HorizonMode::Auto) {
    const std::optional<std::string> unsupported = horizon_unsupported(spectrum, spec, noise);
    const std::uint64_t cheap = std::min<std::uint64_t>(max_steps, 32 * spectrum.dim());
    // A probe: only a count it finds is reported, unless it is the whole answer.
    const bool whole = cheap == max_steps && unsupported;
    AutoSteps first = stepping(cheap, whole ? StepsQuestion::Count : StepsQuestion::Reached);
    report.reason = "reached by time stepping";
    if (first.steps || first.diverged_at || whole) return first;
  }
  if (mode != HorizonMode::Stepping) {
    // The spectral path certifies its own precision (escalating from the one given).
    std::optional<AutoSteps> res =
        with_precision(precision.value_or(Precision::Double), [&](auto zero) -> std::optional<AutoSteps> {
          using Real = decltype(zero);
          const auto fast =
              horizon_steps<Real>(spectrum, spec, noise, static_cast<Real>(target), relative, horizon_rtol, report);
          if (!fast) return std::nullopt;
          AutoSteps a;
          a.steps = fast->steps;
          a.steps_run = fast->steps_run;
          a.diverged_at = fast->diverged_at;
          a.loss = to_double(fast->loss);
          a.initial_loss = to_double(fast->initial_loss);
          a.loss_text = format_real(fast->loss);
          a.initial_loss_text = format_real(fast->initial_loss);
          a.precision = report.precision;
          return a;
        });
    if (res || mode == HorizonMode::Exact) return res;
    fell_back = true;
  } else {
    report.reason = "time stepping requested";
  }
  report.exact = false;
  return stepping(max_steps, StepsQuestion::Count);
}

}  // namespace cesr
