// Exact loss at any horizon for constant-coefficient methods, at a cost that
// does not grow with t.
//
// The second moments evolve as x_{t+1} = T x_t + g with T = D + u v^T
// (dynamics.hpp), so L_t = L_inf + w^T T^t (x_0 - x_inf). For one state
// vector (k = 1: SGD and any custom k = 1 method) u_i v_i >= 0, so T is
// similar to the symmetric D + s s^T (s_i^2 = u_i v_i): its eigenvalues are
// real, one in each gap between the sorted poles of the secular equation and
// one above them, and the loss weights w are parallel to v, so
//   L_t = L_inf + sum_j c_j z_j^t,
// a sum over at most d modes. Each root is bracketed (TOMS 748) as an offset
// from its nearest pole (1 - z written in the small quantities), and every
// mode carries a first-order error bound (root inclusion radius, rounding of
// its sums); every value handed out is checked against the requested relative
// tolerance, escalating the working precision (double, long double, quad,
// mp50) until it holds. Methods with k = 2, 3 or 4 state vectors take the
// circle construction of src/horizon_k2.cpp (real modes outside |z| = r,
// counted by the argument principle, and a bounded remainder). Where the
// structure does not apply (schedules, an unstable method, a too large d) or
// cannot be certified, the callers time-step instead and say so. Derivation
// and certification: docs/theory.md, section 8.
#pragma once

#include "cesr/dynamics.hpp"
#include "cesr/method.hpp"
#include "cesr/real.hpp"
#include "cesr/spectrum.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cesr {

/// How loss, steps, check and the tuner's steps objective reach large t:
/// the certified spectral path where it applies, else time stepping (Auto);
/// only the spectral path (Exact: an error where it does not apply); only
/// time stepping (Stepping).
enum class HorizonMode { Auto, Exact, Stepping };
std::string_view to_string(HorizonMode m);
/// Parses auto|exact|stepping; throws FieldError naming `horizon` otherwise.
HorizonMode parse_horizon(std::string_view text);

/// The default relative tolerance of the spectral path (--horizon-rtol).
inline constexpr double default_horizon_rtol = 1e-10;

/// Why the spectral path cannot serve this problem (empty when it may: the
/// method has constant coefficients, the batch is constant and d is within
/// the root-finding budget: d <= 20000, and d <= 2000 for k = 3 and 4). Stability and
/// the precision needed are decided later, by the solver itself.
std::optional<std::string> horizon_unsupported(const Spectrum& spectrum, const MethodSpec& spec,
                                               const NoiseModel& noise);

/// The k = 2 count certificate's budget of arc evaluations (each O(d); 32768
/// by default): beyond it the spectral path refuses and the callers time-step.
/// Returns the previous budget (tests lower it to see the refusal).
int set_k2_arc_budget(int arcs);

/// Tests: build the blocks of k = 2 methods by the generic construction of
/// k = 3 and 4 (Faddeev-LeVerrier in a wider precision) instead of the k = 2
/// fast path. Returns the previous setting.
bool set_generic_k2_blocks(bool on);

/// One mode c z^t of the loss, with z = sign * exp(log_abs).
template <class Real>
struct HorizonMode1 {
  Real log_abs{};      ///< log |z| (-inf for z = 0)
  bool negative = false;
  Real c{};            ///< coefficient
  Real c_error{};      ///< bound on |c - exact c| (absolute)
  Real log_error{};    ///< bound on |log|z| - exact|
};

/// A value with its error bound: |loss - L_t| <= error.
template <class Real>
struct Bounded {
  Real value{};
  Real error{};
};

/// The spectral representation of L_t in one working precision.
template <class Real>
class SpectralLoss {
 public:
  /// Builds the modes. Returns an empty optional (with `why` set) when the
  /// method is not stable with certainty in this precision, or the problem
  /// is not of the supported form (see horizon_unsupported).
  /// With `spec` (the method's row and hyperparameters), the k = 2 path
  /// forms its direction-independent constants in exact arithmetic and
  /// rounds them once (as the rate does), else from `method`.
  static std::optional<SpectralLoss> build(const Spectrum& spectrum, const Method<Real>& method,
                                           const NoiseModel& noise, std::string* why,
                                           const MethodSpec* spec = nullptr);

  /// L_t with its error bound.
  Bounded<Real> at(std::uint64_t t) const;
  /// A lower bound on min L_t over lo <= t <= hi (hi = UINT64_MAX: all t >=
  /// lo), error margin already subtracted.
  Real lower_bound(std::uint64_t lo, std::uint64_t hi) const;
  /// L_inf (the label-noise floor) with its error bound.
  Bounded<Real> floor() const { return {l_inf_, l_inf_error_}; }
  /// L_0 = 1/2 sum_i lambda_i o^2 x_0,i, summed as time stepping does.
  const Real& initial_loss() const { return initial_; }
  /// 1 - rho(T) (the top mode), for reports.
  const Real& gap() const { return gap_; }
  std::size_t modes() const { return modes_.size(); }
  int evaluations() const { return evaluations_; }
  /// The first step from which the error bound of at(t) stays within rtol / 4
  /// of |L_t| (0 when it is from the start, as for k = 1; UINT64_MAX when no
  /// step below 2^62 is): for k = 2 the remainder is loose at small t, and the
  /// callers time-step the steps before this one.
  std::uint64_t settled(double rtol) const;
  /// k = 2: the radius r of the circle |z| = r that separates the outer real
  /// modes from the remainder (0 for k = 1), and the arcs that certified it.
  const Real& radius() const { return radius_; }
  int arcs() const { return arcs_; }

 private:
  // k = 2..4 (src/horizon_k2.cpp): the real eigenvalues of T outside |z| = r,
  // counted by the argument principle, plus the remainder as one more mode.
  static std::optional<SpectralLoss> build_blocks(const Spectrum& spectrum, const Method<Real>& method,
                                                  const NoiseModel& noise, std::string* why,
                                                  const MethodSpec* spec);

  std::vector<HorizonMode1<Real>> modes_;  // top (largest |z|) first
  Real l_inf_{}, l_inf_error_{}, initial_{}, gap_{}, radius_{};
  int evaluations_ = 0, arcs_ = 0;
};

/// What the spectral path did, for the output ("exact (double)" or the
/// reason it fell back to time stepping).
struct HorizonReport {
  bool exact = false;                       ///< the spectral path answered
  Precision precision = Precision::Double;  ///< the precision that certified it
  std::string reason;                       ///< why it did not answer (when !exact)
  double rtol = default_horizon_rtol;
  std::size_t modes = 0;
  /// The target was within the error bound (itself within rtol) of L at a
  /// step the search decided by the value.
  bool near_target = false;
  /// "exact spectral (double, 1000 modes, rtol 1e-10)" or "time stepping (REASON)".
  std::string describe() const;
};

/// L_t at t = 0, every, 2 every, ..., and t = steps, each certified to
/// relative tolerance rtol, in precision `start` or higher. Empty (report
/// says why) when the spectral path does not apply or cannot certify.
template <class Real>
std::optional<LossCurve<Real>> horizon_loss_curve(const Spectrum& spectrum, const MethodSpec& spec,
                                                  const NoiseModel& noise, std::uint64_t steps,
                                                  std::uint64_t every, double rtol, HorizonReport& report);

/// L_t at the given steps (any order), certified like horizon_loss_curve.
template <class Real>
std::optional<std::vector<Real>> horizon_loss_at(const Spectrum& spectrum, const MethodSpec& spec,
                                                 const NoiseModel& noise, const std::vector<std::uint64_t>& steps,
                                                 double rtol, HorizonReport& report);

/// The first t with L_t <= target (or <= target L_0 when relative), with no
/// cap on t: every comparison that decides it is certified (|L_t - goal|
/// above the error bound), and a step range is skipped only when a lower
/// bound of L over all of it stays above the goal, so the count is the
/// exact one, non-monotone curves included. `steps` is empty when the goal
/// lies below the noise floor (never reached). Empty optional (report says
/// why) when the spectral path does not apply or cannot decide.
template <class Real>
std::optional<StepsResult<Real>> horizon_steps(const Spectrum& spectrum, const MethodSpec& spec,
                                               const NoiseModel& noise, const Real& target, bool relative,
                                               double rtol, HorizonReport& report);

/// `steps` at any horizon, the strategy of `cesr steps` and `cesr.steps`:
/// in Auto, time stepping while it is cheaper than the spectral set-up (32 d
/// steps), then the certified spectral path (no cap), and where that does not
/// apply or cannot decide, time stepping up to `max_steps`; Exact: only the
/// spectral path; Stepping: only time stepping. Time stepping runs in the
/// forced `precision` or, without one, in automatic precision to `rtol`.
/// Empty only in Exact mode when the spectral path cannot answer (`report`
/// says why). `report.exact` tells which path answered; `fell_back` is set
/// when the spectral path was tried and time stepping answered instead.
std::optional<AutoSteps> steps_any_horizon(const Spectrum& spectrum, const MethodSpec& spec, const NoiseModel& noise,
                                           double target, bool relative, HorizonMode mode, double horizon_rtol,
                                           std::uint64_t max_steps, std::optional<Precision> precision, double rtol,
                                           HorizonReport& report, bool& fell_back);

/// The tuner's continuous stand-in for the step count (tune.hpp,
/// fractional_steps) through the spectral path, with no cap: +infinity when
/// the target is never reached. Empty when the path does not apply or cannot
/// decide (report says why).
std::optional<double> horizon_fractional_steps(const Spectrum& spectrum, const MethodSpec& spec,
                                               const NoiseModel& noise, double target, bool relative, double rtol,
                                               HorizonReport& report);

}  // namespace cesr
