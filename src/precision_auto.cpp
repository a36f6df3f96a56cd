// Automatic precision for loss curves and steps-to-target: the recursion in
// double, then long double, quad and mp50 until two successive precisions
// agree to a relative tolerance (the rule contraction_rate_auto uses for the
// gap). Double alone can lose 7-11 digits on momentum methods with beta near
// 1 (the three second-moment entries of a slow direction nearly cancel), and
// only a second, more precise run tells when.
#include "cesr/dynamics.hpp"

#include <algorithm>
#include <cmath>
#include <ios>
#include <limits>
#include <type_traits>

namespace cesr {

double relative_difference(double a, double b) {
  if (a == b) return 0;
  const double scale = std::max(std::abs(a), std::abs(b));
  if (!std::isfinite(scale)) return std::numeric_limits<double>::infinity();
  return std::abs(a - b) / scale;
}

namespace {

// Compares in 50 digits, so that a loss below double's normal range
// (subnormal or 0 in double, still exact in long double) counts as a
// disagreement instead of passing as "both tiny".
double relative_difference_wide(const mp50& u, const mp50& v) {
  using boost::multiprecision::abs;
  if (u == v) return 0;
  const mp50 scale = abs(u) > abs(v) ? abs(u) : abs(v);
  return to_double(mp50(abs(u - v) / scale));
}

template <class Real>
mp50 widen(const Real& x) {
  if (!is_finite(x)) return mp50(to_double(x));
  if constexpr (std::is_same_v<Real, quad>) return mp50(x.str(40, std::ios_base::scientific));
  else return mp50(x);
}

template <class Real>
AutoLossCurve curve_in(const Spectrum& spectrum, const MethodSpec& method, const NoiseModel& noise,
                       std::uint64_t steps, std::uint64_t every, std::vector<mp50>* exact) {
  // Forced precisions print every digit they have; auto prints 17, since two
  // precisions agree only to rtol.
  const int digits = exact ? round_trip_digits<double>() : round_trip_digits<Real>();
  const LossCurve<Real> c = loss_curve<Real>(spectrum, make_path<Real>(method), noise, steps, every);
  AutoLossCurve out;
  out.step = c.step;
  out.diverged_at = c.diverged_at;
  out.precision = precision_of<Real>();
  for (const Real& l : c.loss) {
    out.loss.push_back(to_double(l));
    out.loss_text.push_back(format_real(l, digits));
    if (exact) exact->push_back(widen(l));
  }
  return out;
}

template <class Real>
AutoSteps steps_in(const Spectrum& spectrum, const MethodSpec& method, const NoiseModel& noise, double target,
                   bool relative, std::uint64_t max_steps, std::vector<mp50>* exact) {
  const int digits = exact ? round_trip_digits<double>() : round_trip_digits<Real>();
  const StepsResult<Real> r =
      steps_to_target<Real>(spectrum, make_path<Real>(method), noise, Real(target), relative, max_steps);
  AutoSteps out;
  out.steps = r.steps;
  out.steps_run = r.steps_run;
  out.diverged_at = r.diverged_at;
  out.loss = to_double(r.loss);
  out.initial_loss = to_double(r.initial_loss);
  out.loss_text = format_real(r.loss, digits);
  out.initial_loss_text = format_real(r.initial_loss, digits);
  out.precision = precision_of<Real>();
  if (r.floor) out.floor = to_double(*r.floor);
  if (exact) *exact = {widen(r.loss), widen(r.initial_loss)};
  return out;
}

double worst_difference(const std::vector<mp50>& a, const std::vector<mp50>& b) {
  if (a.size() != b.size()) return std::numeric_limits<double>::infinity();
  double worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i) worst = std::max(worst, relative_difference_wide(a[i], b[i]));
  return worst;
}

}  // namespace

AutoLossCurve loss_curve_in(Precision precision, const Spectrum& spectrum, const MethodSpec& method,
                            const NoiseModel& noise, std::uint64_t steps, std::uint64_t every) {
  return with_precision(precision, [&](auto zero) {
    return curve_in<decltype(zero)>(spectrum, method, noise, steps, every, nullptr);
  });
}

AutoSteps steps_to_target_in(Precision precision, const Spectrum& spectrum, const MethodSpec& method,
                             const NoiseModel& noise, double target, bool relative, std::uint64_t max_steps) {
  return with_precision(precision, [&](auto zero) {
    return steps_in<decltype(zero)>(spectrum, method, noise, target, relative, max_steps, nullptr);
  });
}

AutoLossCurve loss_curve_auto(const Spectrum& spectrum, const MethodSpec& method, const NoiseModel& noise,
                              std::uint64_t steps, std::uint64_t every, double rtol) {
  check_escalation_rtol(rtol);
  using Run = std::pair<AutoLossCurve, std::vector<mp50>>;
  Run result = escalate_precision(
      [&](Precision p) {
        Run r;
        r.first = with_precision(p, [&](auto zero) {
          return curve_in<decltype(zero)>(spectrum, method, noise, steps, every, &r.second);
        });
        return r;
      },
      [&](const Run& lo, Run& hi) {
        const bool same_end = lo.first.diverged_at == hi.first.diverged_at;
        hi.first.disagreement = same_end ? worst_difference(lo.second, hi.second)
                                         : std::numeric_limits<double>::infinity();
        hi.first.agreed = hi.first.disagreement <= rtol;
        return hi.first.agreed;
      });
  return std::move(result.first);
}

AutoSteps steps_to_target_auto(const Spectrum& spectrum, const MethodSpec& method, const NoiseModel& noise,
                               double target, bool relative, std::uint64_t max_steps, double rtol) {
  check_escalation_rtol(rtol);
  using Run = std::pair<AutoSteps, std::vector<mp50>>;
  Run result = escalate_precision(
      [&](Precision p) {
        Run r;
        r.first = with_precision(p, [&](auto zero) {
          return steps_in<decltype(zero)>(spectrum, method, noise, target, relative, max_steps, &r.second);
        });
        return r;
      },
      [&](const Run& lo, Run& hi) {
        hi.first.agreed = lo.first.steps == hi.first.steps && lo.first.diverged_at == hi.first.diverged_at &&
                          lo.first.steps_run == hi.first.steps_run && worst_difference(lo.second, hi.second) <= rtol;
        return hi.first.agreed;
      });
  return std::move(result.first);
}

}  // namespace cesr
