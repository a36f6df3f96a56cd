// Stability limits in the step size from the exact contraction rate.
// Method: docs/stability.md.
#include "cesr/stability.hpp"

#include "cesr/rate.hpp"

#include <boost/math/tools/minima.hpp>
#include <boost/math/tools/toms748_solve.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

namespace cesr {

MethodSpec with_step_size(const MethodSpec& method, double lr) {
  MethodSpec m = method;
  if (m.info().from_file) {
    for (double& x : m.custom.q) x *= lr;
  } else {
    m.set("lr", lr);
  }
  return m;
}

namespace {

/// The gap as a function of the step size in units of 2^-e (e = ilogb of
/// lambda_max) on the spectrum scaled by 2^-e, counting the work. The step
/// size proper is lr = u 2^-e; lr lambda_i = u (lambda_i 2^-e) exactly.
template <class Real>
struct GapOfStep {
  const Spectrum& spectrum;  ///< the scaled spectrum
  const MethodSpec& method;
  const NoiseModel& noise;
  int exponent = 0;  ///< e
  int calls = 0, secular = 0;

  double step(double u) const { return std::ldexp(u, -exponent); }

  Rate<Real> rate(double u) {
    ++calls;
    Rate<Real> r;
    try {
      r = contraction_rate<Real>(spectrum, with_step_size(method, u), noise);
    } catch (const std::runtime_error& e) {
      throw std::runtime_error(fmt::format("{} (at step size {:.17g})", e.what(), step(u)));
    }
    secular += r.evaluations;
    return r;
  }
  /// The gap rounded to double (for the root finder and the minimiser, which
  /// work on the double-valued step size).
  double operator()(double u) { return to_double(rate(u).gap); }
};

bool all_zero(const Method<double>::Vector& v, int k) {
  for (int a = 0; a < k; ++a)
    if (v[a] != 0) return false;
  return true;
}

}  // namespace

template <class Real>
StabilityLimits<Real> stability_limits(const Spectrum& spectrum, const MethodSpec& method, const NoiseModel& noise) {
  if (spectrum.lambda.empty()) throw std::invalid_argument("stability_limits: empty spectrum");
  if (!noise.batch_schedule.constant())
    throw FieldError("batch_schedule", "batch_schedule: stability needs a constant batch size (use steps or loss)");
  const bool custom = method.info().from_file;
  const std::string name = custom ? describe(method) : method.name;
  // The rate needs constant coefficients (after at most one first step).
  (void)make_method<double>(with_step_size(method, 1.0));
  // 0. Units: rho depends on the step size only through lr lambda_i, so scale
  //    the spectrum by 2^-e (exact) with 2^e <= lambda_max < 2^(e+1) and search
  //    u = lr 2^e, of order 1 whatever the scale of the spectrum.
  const double lambda_max = spectrum.lambda_max();
  const int e = std::ilogb(lambda_max);
  Spectrum unit = spectrum;
  for (double& l : unit.lambda) {
    const double scaled = std::ldexp(l, -e);
    if (std::ldexp(scaled, e) != l || !(scaled > 0))
      throw std::invalid_argument(fmt::format(
          "--spectrum: eigenvalue {:.3g} is too small relative to lambda_max = {:.3g} for double precision", l,
          lambda_max));
    l = scaled;
  }
  GapOfStep<Real> gap{unit, method, noise, e};
  // A custom method with q = 0 or r = 0 does not depend on the step size.
  if (custom && (all_zero(method.custom.q, method.custom.k) || all_zero(method.custom.r, method.custom.k))) {
    const char* which = all_zero(method.custom.q, method.custom.k) ? "q = 0" : "r = 0";
    const Rate<Real> r = gap.rate(1.0);
    if (!(r.gap > 0))
      throw UnstableAtEveryStepSize(fmt::format(
          "{} diverges at every step size: rho = {} >= 1, and the step size does not enter the method ({} in "
          "the method file)",
          name, format_real(r.rho, 10), which));
    throw std::invalid_argument(fmt::format(
        "--method-file: the step size does not enter the method ({}), so there is no largest stable step size "
        "(rho = {} < 1 at every step size)",
        which, format_real(r.rho, 10)));
  }
  // 1. A stable and an unstable step size, starting at u = 1 (lr = 1 /
  //    lambda_max up to a factor 2; the deterministic SGD limit is 2 /
  //    lambda_max). For a custom method in units of 1 / (max|q| max|r|).
  double u0 = 1;
  if (custom) {
    double qm = 0, rm = 0;
    for (int a = 0; a < method.custom.k; ++a) {
      qm = std::max(qm, std::abs(method.custom.q[a]));
      rm = std::max(rm, std::abs(method.custom.r[a]));
    }
    const double c = 1 / (qm * rm);
    if (std::isfinite(c) && c > 0) u0 = std::ldexp(1.0, std::ilogb(c));
  }
  double lo = u0, hi = u0;
  double g_lo = gap(u0), g_hi = g_lo;
  constexpr int max_doublings = 400;
  if (g_lo > 0) {
    for (int i = 0;; ++i) {
      if (i == max_doublings) {
        const std::string msg = fmt::format("{} is stable for every step size up to {:.3g}: no largest stable step size",
                                            name, gap.step(hi));
        if (custom) throw std::invalid_argument("--method-file: " + msg);
        throw std::runtime_error("stability: " + msg);
      }
      lo = hi;
      g_lo = g_hi;
      hi = 2 * hi;
      g_hi = gap(hi);
      if (!(g_hi > 0)) break;
    }
  } else {
    for (int i = 0;; ++i) {
      if (i == max_doublings)
        throw UnstableAtEveryStepSize(fmt::format(
            "{} diverges at every step size down to {:.3g} (2^-400 / lambda_max): rho >= 1 there (gap {})", name,
            gap.step(lo), format_real(g_lo, 3)));
      hi = lo;
      g_hi = g_lo;
      lo = lo / 2;
      g_lo = gap(lo);
      if (g_lo > 0) break;
    }
  }
  // 2. rho(lr_max) = 1: TOMS 748 on the gap, to a few ulps of the step size.
  double u_max = hi;
  if (g_hi != 0) {
    boost::uintmax_t iters = 200;
    const auto r = boost::math::tools::toms748_solve(std::ref(gap), lo, hi, g_lo, g_hi,
                                                     boost::math::tools::eps_tolerance<double>(50), iters);
    if (iters >= 200) throw std::runtime_error("stability: the root finder did not converge on lr_max");
    u_max = r.first;  // the stable side of the final bracket
  }
  // 3. The best gap: a coarse scan in log lr, then Brent around the best point.
  constexpr int scan = 33;
  const double t_min = std::log(u_max) - std::log(1e8), t_max = std::log(u_max);
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
  double u_best = std::exp(m.first);
  if (-m.second < value[best]) u_best = std::exp(t[best]);
  // 4. Back to step sizes: exact unless they leave the normal doubles.
  const double lr_max = gap.step(u_max), lr_best = gap.step(u_best);
  if (!std::isnormal(lr_max) || !std::isnormal(lr_best))
    throw std::invalid_argument(fmt::format(
        "--spectrum: lambda_max = {:.3g} puts the step sizes (lr_max = {:.3g} / lambda_max) outside the range of "
        "double",
        lambda_max, u_max * std::ldexp(lambda_max, -e)));
  StabilityLimits<Real> out;
  out.lr_max = Real(lr_max);
  out.lr_best = Real(lr_best);
  out.gap_best = gap.rate(u_best).gap;
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
  check_escalation_rtol(rtol);
  int calls = 0, secular = 0;  // work summed over the precisions tried
  const auto close = [rtol](double x, double y) { return std::abs(x - y) <= rtol * std::max(std::abs(x), std::abs(y)); };
  return escalate_precision(
      [&](Precision p) {
        AutoStability s = stability_in(p, spectrum, method, noise);
        calls += s.rate_evaluations;
        secular += s.secular_evaluations;
        s.rate_evaluations = calls;
        s.secular_evaluations = secular;
        return s;
      },
      [&](const AutoStability& prev, const AutoStability& cur) {
        return close(cur.lr_max, prev.lr_max) && close(cur.gap_best, prev.gap_best);
      });
}

#define CESR_INSTANTIATE(Real) \
  template StabilityLimits<Real> stability_limits<Real>(const Spectrum&, const MethodSpec&, const NoiseModel&);
CESR_FOR_EACH_REAL(CESR_INSTANTIATE)
#undef CESR_INSTANTIATE

}  // namespace cesr
