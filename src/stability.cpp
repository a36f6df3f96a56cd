// Stability limits in the step size from the exact contraction rate.
// Method: docs/stability.md.
#include "cesr/stability.hpp"

#include "cesr/rate.hpp"

#include <boost/math/tools/minima.hpp>
#include <boost/math/tools/toms748_solve.hpp>
#include <fmt/format.h>

#include <cmath>
#include <stdexcept>

namespace cesr {

MethodSpec with_step_size(const MethodSpec& method, double lr) {
  MethodSpec m = method;
  if (m.kind == MethodKind::Custom) {
    for (double& x : m.custom.q) x *= lr;
  } else {
    m.lr = lr;
  }
  return m;
}

namespace {

/// The gap as a function of the step size, counting the work.
template <class Real>
struct GapOfStep {
  const Spectrum& spectrum;
  const MethodSpec& method;
  const NoiseModel& noise;
  int calls = 0, secular = 0;

  Rate<Real> rate(double lr) {
    ++calls;
    Rate<Real> r;
    try {
      r = contraction_rate<Real>(spectrum, with_step_size(method, lr), noise);
    } catch (const std::runtime_error& e) {
      throw std::runtime_error(fmt::format("{} (at step size {:.17g})", e.what(), lr));
    }
    secular += r.evaluations;
    return r;
  }
  /// The gap rounded to double (for the root finder and the minimiser, which
  /// work on the double-valued step size as typed on the command line).
  double operator()(double lr) { return to_double(rate(lr).gap); }
};

}  // namespace

template <class Real>
StabilityLimits<Real> stability_limits(const Spectrum& spectrum, const MethodSpec& method, const NoiseModel& noise) {
  if (spectrum.lambda.empty()) throw std::invalid_argument("stability_limits: empty spectrum");
  GapOfStep<Real> gap{spectrum, method, noise};
  // 1. A stable and an unstable step size, starting at 1 / lambda_max (the
  //    deterministic SGD limit is 2 / lambda_max).
  const double lr0 = method.kind == MethodKind::Custom ? 1.0 : 1 / spectrum.lambda_max();
  double lo = lr0, hi = lr0;
  double g_lo = gap(lr0), g_hi = g_lo;
  constexpr int max_doublings = 400;
  if (g_lo > 0) {
    for (int i = 0;; ++i) {
      if (i == max_doublings)
        throw std::runtime_error(fmt::format("stability: stable for every step size up to {:.3g}", hi));
      lo = hi;
      g_lo = g_hi;
      hi = 2 * hi;
      g_hi = gap(hi);
      if (!(g_hi > 0)) break;
    }
  } else {
    for (int i = 0;; ++i) {
      if (i == max_doublings)
        throw std::runtime_error(fmt::format("stability: unstable for every step size down to {:.3g}", lo));
      hi = lo;
      g_hi = g_lo;
      lo = lo / 2;
      g_lo = gap(lo);
      if (g_lo > 0) break;
    }
  }
  // 2. rho(lr_max) = 1: TOMS 748 on the gap, to a few ulps of the step size.
  StabilityLimits<Real> out;
  if (g_hi == 0) {
    out.lr_max = Real(hi);
  } else {
    boost::uintmax_t iters = 200;
    const auto r = boost::math::tools::toms748_solve(std::ref(gap), lo, hi, g_lo, g_hi,
                                                     boost::math::tools::eps_tolerance<double>(50), iters);
    if (iters >= 200) throw std::runtime_error("stability: the root finder did not converge on lr_max");
    out.lr_max = Real(r.first);  // the stable side of the final bracket
  }
  // 3. The best gap: a coarse scan in log lr, then Brent around the best point.
  const double top = to_double(out.lr_max);
  constexpr int scan = 33;
  const double t_min = std::log(top) - std::log(1e8), t_max = std::log(top);
  std::array<double, scan> t{}, value{};
  int best = 0;
  for (int i = 0; i < scan; ++i) {
    t[i] = t_min + (t_max - t_min) * i / (scan - 1);
    value[i] = gap(std::exp(t[i]));
    if (value[i] > value[best]) best = i;
  }
  const double a = t[std::max(best - 1, 0)], b = t[std::min(best + 1, scan - 1)];
  boost::uintmax_t iters = 200;
  const auto m = boost::math::tools::brent_find_minima([&](double s) { return -gap(std::exp(s)); }, a, b,
                                                       std::numeric_limits<double>::digits / 2, iters);
  double lr_best = std::exp(m.first);
  if (-m.second < value[best]) lr_best = std::exp(t[best]);
  out.lr_best = Real(lr_best);
  out.gap_best = gap.rate(lr_best).gap;
  out.rate_evaluations = gap.calls;
  out.secular_evaluations = gap.secular;
  return out;
}

namespace {

template <class Real>
AutoStability report(const StabilityLimits<Real>& s) {
  AutoStability a;
  a.lr_max = to_double(s.lr_max);
  a.lr_best = to_double(s.lr_best);
  a.gap_best = to_double(s.gap_best);
  a.lr_max_text = format_real(a.lr_max, 17);
  a.lr_best_text = format_real(a.lr_best, 17);
  a.gap_best_text = format_real(s.gap_best, 17);
  a.precision = precision_of<Real>();
  a.rate_evaluations = s.rate_evaluations;
  a.secular_evaluations = s.secular_evaluations;
  return a;
}

AutoStability stability_in(Precision p, const Spectrum& spectrum, const MethodSpec& method,
                           const NoiseModel& noise) {
  return with_precision(p, [&](auto zero) {
    using Real = decltype(zero);
    return report(stability_limits<Real>(spectrum, method, noise));
  });
}

}  // namespace

AutoStability stability_limits_auto(const Spectrum& spectrum, const MethodSpec& method, const NoiseModel& noise,
                                    std::optional<Precision> precision, double rtol) {
  if (precision) return stability_in(*precision, spectrum, method, noise);
  if (!(rtol > 0) || !std::isfinite(rtol))
    throw std::invalid_argument(fmt::format("--rtol must be a finite number > 0, got {}", rtol));
  Precision p = Precision::Double;
  AutoStability prev = stability_in(p, spectrum, method, noise);
  int calls = prev.rate_evaluations, secular = prev.secular_evaluations;
  const auto close = [rtol](double x, double y) { return std::abs(x - y) <= rtol * std::max(std::abs(x), std::abs(y)); };
  while (p != Precision::Mp50) {
    p = next_precision(p);
    AutoStability cur = stability_in(p, spectrum, method, noise);
    calls += cur.rate_evaluations;
    secular += cur.secular_evaluations;
    cur.rate_evaluations = calls;
    cur.secular_evaluations = secular;
    const bool agree = close(cur.lr_max, prev.lr_max) && close(cur.gap_best, prev.gap_best);
    prev = cur;
    if (agree) break;
  }
  return prev;
}

template StabilityLimits<double> stability_limits<double>(const Spectrum&, const MethodSpec&, const NoiseModel&);
template StabilityLimits<long double> stability_limits<long double>(const Spectrum&, const MethodSpec&,
                                                                    const NoiseModel&);
template StabilityLimits<quad> stability_limits<quad>(const Spectrum&, const MethodSpec&, const NoiseModel&);
template StabilityLimits<mp50> stability_limits<mp50>(const Spectrum&, const MethodSpec&, const NoiseModel&);

}  // namespace cesr
