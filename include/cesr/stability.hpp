// Stability limits in the step size: the largest stable step size of a method
// (where the contraction rate rho reaches 1) and the step size that maximises
// the gap 1 - rho, at fixed momentum / AccSGD parameters, batch size and K.
// Implementation: src/stability.cpp, see docs/stability.md.
#pragma once

#include "cesr/dynamics.hpp"
#include "cesr/method.hpp"
#include "cesr/real.hpp"
#include "cesr/spectrum.hpp"

#include <optional>
#include <stdexcept>
#include <string>

namespace cesr {

/// The method with its step size replaced by `lr`. For MethodKind::Custom the
/// step size scales the gradient injection q of the given (P, q, r, o), so
/// lr = 1 is the method as given.
MethodSpec with_step_size(const MethodSpec& method, double lr);

/// Thrown when the method is unstable at every step size tried (the method
/// diverges; what() says why). `cesr stability` maps it to exit code 3.
struct UnstableAtEveryStepSize : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <class Real>
struct StabilityLimits {
  Real lr_max{};       ///< largest stable step size: rho(lr_max) = 1
  Real lr_best{};      ///< step size that maximises the gap on (0, lr_max)
  Real gap_best{};     ///< the gap 1 - rho at lr_best
  int rate_evaluations = 0;     ///< contraction_rate calls
  int secular_evaluations = 0;  ///< secular-function evaluations summed over them
};

/// Stability limits in the working precision Real. The step size of `method`
/// is ignored. lr_max is the first step size, growing from the stable
/// small-step regime, at which rho reaches 1 (a root of rho(lr) = 1 found with
/// TOMS 748 to the precision of the double step size); lr_best maximises the
/// gap (coarse log-spaced scan of (lr_max 1e-8, lr_max), then Brent's method in
/// log lr, located to about sqrt(eps) relatively; the gap there is exact to the
/// precision of Real). The problem depends on the step size only through
/// lr lambda_i, so the search runs on the spectrum scaled by a power of two
/// near 1 / lambda_max (exactly) with the step size in units of 1 / lambda_max.
/// Throws UnstableAtEveryStepSize when no stable step size is found down to
/// 2^-400 / lambda_max, or when a custom method has q = 0 or r = 0 (the step
/// size does not enter it) and rho >= 1; std::invalid_argument naming
/// --spectrum when the step sizes (about 1 / lambda_max) are outside the range
/// of normal doubles, and naming --method-file when a custom method is stable
/// for every step size (q = 0 or r = 0, or stable up to 2^400 in units).
template <class Real>
StabilityLimits<Real> stability_limits(const Spectrum& spectrum, const MethodSpec& method, const NoiseModel& noise);

/// As above with automatic precision (double, then long double, quad, mp50
/// until two successive precisions agree on lr_max and on the best gap to
/// `rtol`) or one fixed precision; values rounded to double plus their text
/// with 17 significant digits.
struct AutoStability {
  double lr_max = 0, lr_best = 0, gap_best = 0;
  std::string lr_max_text, lr_best_text, gap_best_text;
  Precision precision = Precision::Double;
  int rate_evaluations = 0, secular_evaluations = 0;
};

AutoStability stability_limits_auto(const Spectrum& spectrum, const MethodSpec& method, const NoiseModel& noise,
                                    std::optional<Precision> precision = std::nullopt, double rtol = 1e-10);

}  // namespace cesr
