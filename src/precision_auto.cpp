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
#include <optional>
#include <stdexcept>
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
  if (exact) *exact = {widen(r.loss), widen(r.initial_loss), widen(r.closest)};
  return out;
}

// The double run with its own rounding bound (Dynamics::track_rounding): the
// coefficients are formed in 50 digits and rounded once, so that they are
// within a unit roundoff of the exact ones, which the bound assumes. Nothing
// when the bound does not apply (coefficients that change with the step,
// T not positive) or does not certify rtol / 2.
std::optional<Dynamics<double>> tracked_double(const Spectrum& spectrum, const MethodSpec& method,
                                               const NoiseModel& noise) {
  const MethodPath<mp50> exact = make_path<mp50>(method);
  if (!exact.constant()) return std::nullopt;
  std::optional<Dynamics<double>> dyn;
  dyn.emplace(spectrum, MethodPath<double>(exact.initial.cast<double>()), noise);
  if (!dyn->track_rounding()) return std::nullopt;
  return dyn;
}

std::optional<AutoLossCurve> certified_curve(const Spectrum& spectrum, const MethodSpec& method,
                                             const NoiseModel& noise, std::uint64_t steps, std::uint64_t every,
                                             double rtol) {
  if (every < 1) throw std::invalid_argument("--every must be >= 1");
  std::optional<Dynamics<double>> dyn = tracked_double(spectrum, method, noise);
  if (!dyn) return std::nullopt;
  AutoLossCurve out;
  out.precision = Precision::Double;
  out.certified = true;
  for (;;) {
    const std::uint64_t t = dyn->time();
    if (dyn->diverged()) return std::nullopt;  // the precisions compare where it diverges
    const double bound = dyn->rounding_bound();
    // Hopeless long before the end: stop paying for it.
    if (!(bound <= 64 * rtol)) return std::nullopt;
    if (t % every == 0 || t == steps) {
      if (!(bound <= rtol / 2)) return std::nullopt;
      out.disagreement = std::max(out.disagreement, bound);
      out.step.push_back(t);
      out.loss.push_back(dyn->loss());
      out.loss_text.push_back(format_real(dyn->loss(), round_trip_digits<double>()));
    }
    if (t == steps) break;
    dyn->step();
  }
  return out;
}

std::optional<AutoSteps> certified_steps(const Spectrum& spectrum, const MethodSpec& method, const NoiseModel& noise,
                                         double target, bool relative, std::uint64_t max_steps, double rtol) {
  // The additive model's floor is computed apart (loss_floor): left to the precisions' comparison.
  if (noise.additive()) return std::nullopt;
  std::optional<Dynamics<double>> dyn = tracked_double(spectrum, method, noise);
  if (!dyn) return std::nullopt;
  const double u = std::numeric_limits<double>::epsilon() / 2;
  const double initial = dyn->loss(), initial_bound = dyn->rounding_bound();
  if (!(initial_bound <= rtol / 2)) return std::nullopt;
  const double goal = relative ? target * initial : target;
  // The exact goal is target L_0: within goal (b_0 + u) of the computed one (and a unit to spare).
  const double goal_error = relative ? std::abs(goal) * (initial_bound + 2 * u) : 0;
  AutoSteps out;
  out.precision = Precision::Double;
  out.certified = true;
  out.initial_loss = initial;
  out.initial_loss_text = format_real(initial, round_trip_digits<double>());
  for (;;) {
    if (dyn->diverged()) return std::nullopt;
    const double loss = dyn->loss(), bound = dyn->rounding_bound();
    if (!(bound <= rtol / 2)) return std::nullopt;
    // L_t <= goal is decided only when the computed values are farther apart than their errors.
    if (!(std::abs(loss - goal) > bound * std::abs(loss) + goal_error)) return std::nullopt;
    out.loss = loss;
    out.steps_run = dyn->time();
    if (loss <= goal) out.steps = dyn->time();
    if (loss <= goal || dyn->time() >= max_steps) break;
    dyn->step();
  }
  out.loss_text = format_real(out.loss, round_trip_digits<double>());
  return out;
}

// Over the first `count` values of each (all by default).
double worst_difference(const std::vector<mp50>& a, const std::vector<mp50>& b,
                        std::size_t count = std::numeric_limits<std::size_t>::max()) {
  if (a.size() != b.size()) return std::numeric_limits<double>::infinity();
  double worst = 0;
  for (std::size_t i = 0; i < std::min(count, a.size()); ++i)
    worst = std::max(worst, relative_difference_wide(a[i], b[i]));
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
  if (std::optional<AutoLossCurve> certified = certified_curve(spectrum, method, noise, steps, every, rtol))
    return std::move(*certified);
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
                               double target, bool relative, std::uint64_t max_steps, double rtol,
                               StepsQuestion question) {
  check_escalation_rtol(rtol);
  if (std::optional<AutoSteps> certified = certified_steps(spectrum, method, noise, target, relative, max_steps, rtol))
    return std::move(*certified);
  // Run::second holds L at the last step, L_0 and the least L_t, in 50 digits.
  using Run = std::pair<AutoSteps, std::vector<mp50>>;
  // StepsQuestion::Reached: neither run reaches the goal, and both stay above
  // it by far more than they differ. Each compares its own L_t with its own
  // target L_0 (relative), which are off alike: the margin asked of the least
  // L_t covers both. The values are mp50's widening of each precision's own.
  const auto decided = [&](const Run& lo, const Run& hi, double difference) {
    if (question != StepsQuestion::Reached || lo.first.steps || hi.first.steps || lo.first.diverged_at ||
        hi.first.diverged_at || lo.first.steps_run != hi.first.steps_run || !(difference <= decision_rtol))
      return false;
    for (const Run* r : {&lo, &hi}) {
      const mp50 goal = relative ? mp50(target) * r->second[1] : mp50(target);
      const mp50& least = r->second[2];
      if (!(least > goal && to_double(mp50((least - goal) / least)) > 16 * difference)) return false;
    }
    return true;
  };
  Run result = escalate_precision(
      [&](Precision p) {
        Run r;
        r.first = with_precision(p, [&](auto zero) {
          return steps_in<decltype(zero)>(spectrum, method, noise, target, relative, max_steps, &r.second);
        });
        return r;
      },
      [&](const Run& lo, Run& hi) {
        // The Count rule compares L at the last step and L_0; the least L_t only the decision.
        const double count_difference = worst_difference(lo.second, hi.second, 2);
        hi.first.disagreement = count_difference;
        hi.first.agreed = lo.first.steps == hi.first.steps && lo.first.diverged_at == hi.first.diverged_at &&
                          lo.first.steps_run == hi.first.steps_run && count_difference <= rtol;
        if (!hi.first.agreed) {
          const double difference = worst_difference(lo.second, hi.second);
          if (decided(lo, hi, difference)) {
            hi.first.agreed = hi.first.decided = true;
            hi.first.disagreement = difference;
          }
        }
        return hi.first.agreed;
      });
  return std::move(result.first);
}

}  // namespace cesr
