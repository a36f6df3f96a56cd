// Contraction rate of the exact second-moment operator: rho = spectral radius
// of T = D + u v^T (block-diagonal D plus one rank-one coupling), gap = 1 - rho.
// Serial runtime scales as 1/gap and compute efficiency as gap / B.
//
// (Interface fixed here; implementation: src/rate.cpp, see docs/rate.md.)
#pragma once

#include "cesr/dynamics.hpp"
#include "cesr/method.hpp"
#include "cesr/real.hpp"
#include "cesr/spectrum.hpp"

#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace cesr {

template <class Real>
struct Rate {
  Real rho{};            ///< spectral radius of T
  Real gap{};            ///< 1 - rho, computed without cancellation near rho = 1
  bool stable = false;   ///< rho < 1
  int evaluations = 0;   ///< secular-function evaluations used
};

/// rho(T) in the working precision Real, from the secular equation (O(d) per
/// evaluation). Throws std::runtime_error if the root finder fails to converge.
/// When rho(T) exceeds the range of Real, rho = +infinity, gap = -infinity and
/// stable = false (a wider precision gives the finite value).
template <class Real>
Rate<Real> contraction_rate(const Spectrum& spectrum, const Method<Real>& method, const NoiseModel& noise);

/// The same through the generic path for any k (1..4): blocks of size
/// k(k+1)/2 factorised per direction, acceptance certified by positive
/// definiteness (src/rate.cpp). contraction_rate uses it for k > 2; tests hold
/// it against the k <= 2 closed forms.
template <class Real>
Rate<Real> contraction_rate_generic(const Spectrum& spectrum, const Method<Real>& method, const NoiseModel& noise);

/// The same, with the method given by its hyperparameters: the method's
/// constants (I - P, det(I - P), r^T adj(P) q, ...) are formed in 50-digit
/// arithmetic from the values as typed and rounded once to Real, so that e.g.
/// 1 - beta is not lost in the rounding of 1 + beta; in exact rational
/// arithmetic where 50 digits would not do (a structural cancellation such as
/// AccSGD's det(I - P) = 0 next to lambda_min = 1e-60). Prefer this overload.
template <class Real>
Rate<Real> contraction_rate(const Spectrum& spectrum, const MethodSpec& method, const NoiseModel& noise);

/// The gap of a constant-coefficient method (k <= 2, the closed forms) in
/// double and its derivatives with respect to parameters t_j of the method,
/// by implicit differentiation of the secular equation at its root:
///   g(x; c(t)) = 1  =>  d gap / d t_j = -(dg/dc . dc/dt_j) / (dg/dx),
/// with dg/dc summed over the directions in one O(d) pass and dc/dt_j, the
/// derivative of the method's constants (I - P, det(I - P), r^T adj(P) q, ...),
/// the central difference (c(plus[j]) - c(minus[j])) / (2 h) formed in 50-digit
/// arithmetic (an O(1) map of the hyperparameters). See docs/tune.md.
struct GapGradient {
  Rate<double> rate;             ///< exactly contraction_rate<double>(spectrum, method, noise)
  /// d gap / d t_j, one per pair; empty where the gap is not a simple root of
  /// g = 1 (rho = rho(D) with no root above it, k > 2, the generic fallback,
  /// overflow): the caller then has no derivative at this point.
  std::vector<double> gradient;
};

///
/// `gap_hint`, when finite, is a guess of the gap (the tuner passes the gap of
/// the point before): the root is then bracketed from it by two accepted
/// evaluations of the secular function on either side of g = 1 and refined by
/// Newton inside, skipping the rho(D) pass and the cold bracketing (about
/// 5 instead of 13 O(d) passes); where that fails within a few evaluations
/// the solve is the cold one. The gap agrees with the cold solve's to the
/// root finder's tolerance (tests/test_rate_hint.cpp), not bitwise.
GapGradient contraction_rate_gradient(const Spectrum& spectrum, const MethodSpec& method,
                                      const std::vector<MethodSpec>& plus, const std::vector<MethodSpec>& minus,
                                      double h, const NoiseModel& noise,
                                      double gap_hint = std::numeric_limits<double>::quiet_NaN());

/// contraction_rate<double>(spectrum, method, noise) started from a guess of
/// the gap, as contraction_rate_gradient's gap_hint (k <= 2; k > 2 and a
/// non-finite hint solve cold).
Rate<double> contraction_rate_near(const Spectrum& spectrum, const MethodSpec& method, const NoiseModel& noise,
                                   double gap_hint);

/// The rate with automatic precision: double first, then long double, quad and
/// mp50 until two successive precisions agree on the gap to `rtol` (relative).
struct AutoRate {
  double rho = 0, gap = 0;        ///< rounded to double
  std::string rho_text, gap_text; ///< every digit of the precision used
  bool stable = false;
  Precision precision = Precision::Double;  ///< precision whose answer is reported
  int evaluations = 0;            ///< summed over all precisions tried
  /// auto: the reported precision agreed with the one below it to rtol (false
  /// when mp50 is reported because quad and mp50 did not agree). A forced
  /// precision reports only certified answers (contraction_rate_in).
  bool agreed = true;
  /// auto with RateConfirmation::Bound: the long double gap was certified by
  /// the double-double rounding bound (the exact gap lies within rtol / 2 of
  /// it, sign included) instead of by quad's agreement.
  bool bounded = false;
};

/// How contraction_rate_auto certifies an answer that double does not.
enum class RateConfirmation {
  /// Two successive precisions agree to rtol (double, long double, quad, mp50).
  Agreement,
  /// As Agreement, except that where double and long double disagree, the
  /// long double gap of a one- or two-state method stands when
  /// double_double_certifies it: quad is not run. Where the bound does not
  /// decide, on to quad as before. (The tuner's confirmation.)
  Bound,
};

/// The smallest rtol contraction_rate_auto accepts: quad and mp50 agree on a
/// gap to about 1e-34 at best, so a smaller tolerance could not be certified.
inline constexpr double min_rate_rtol = 1e-32;

///
/// With a finite `gap_hint` (a guess of the gap: the tuner's search value at
/// the point it confirms) each precision's solve starts from a guess, the
/// first from gap_hint and each next one from the gap of the one before
/// (contraction_rate_near's warm start: the same root to the root finder's
/// accuracy, each certified by its own bracket of accepted points; about a
/// third of the secular evaluations). Without one, the cold solves.
AutoRate contraction_rate_auto(const Spectrum& spectrum, const MethodSpec& method, const NoiseModel& noise,
                               double rtol = 1e-10, double gap_hint = std::numeric_limits<double>::quiet_NaN(),
                               RateConfirmation confirmation = RateConfirmation::Agreement);

/// Whether the secular function evaluated in double-double arithmetic with a
/// bound on every rounding error (src/double_double.hpp; the method's exact
/// constants rounded to double-double, lambda_i exact) puts z = 1 - gap (1 -
/// rtol / 2) above rho(T) (every direction accepted, g < 1) and z = 1 - gap
/// (1 + rtol / 2) at or below it (a direction rejected, or g > 1): then the
/// exact gap lies between the two, so within rtol / 2 of `gap` with its sign.
/// False where the bound does not decide, for k > 2 (no closed-form terms), a
/// method without exact coefficients, a gap of 0 or not finite. O(d), on the
/// kernel threads, about ten double passes.
bool double_double_certifies(const Spectrum& spectrum, const MethodSpec& method, const NoiseModel& noise,
                             long double gap, double rtol);

/// The same in one fixed precision (no escalation), reported like AutoRate,
/// and only when that precision certifies it: for k <= 2 a second evaluation
/// of the secular function with bounds on every rounding error must decide the
/// sign of the gap (at z = 1) and bracket the gap within a factor 3 (at
/// 1 - gap/2 and 1 - 3 gap/2); for k > 2 the next precision must agree on the
/// verdict and on the gap to a factor 2. Otherwise throws FieldError naming
/// "precision" ("precision double cannot decide the sign of the gap ...: use
/// --precision auto"). auto (contraction_rate_auto) throws FieldError naming
/// "rtol" when rtol < min_rate_rtol.
AutoRate contraction_rate_in(Precision precision, const Spectrum& spectrum, const MethodSpec& method,
                             const NoiseModel& noise);

}  // namespace cesr
