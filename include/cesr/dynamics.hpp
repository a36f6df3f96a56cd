// Exact second-moment dynamics: the expected loss of a linear stochastic method
// on Gaussian (or any independent-coordinate) linear regression with diagonal H.
//
// Per eigendirection i, with A_i = P - lambda_i q r^T and S_i = E[s_i s_i^T]:
//   S_i' = A_i S_i A_i^T + (1/B) q q^T [ (K-2) lambda_i^2 r^T S_i r
//                                        + lambda_i psi + sigma^2 lambda_i ],
//   psi  = sum_j lambda_j r^T S_j r,      L = 1/2 sum_i lambda_i o^T S_i o.
// A weighted spectrum (line i standing for w_i directions) carries
// M_i = w_i S_i: the same recursion with w_i lambda_i in the psi and label-noise
// injection, M_i(0) = w_i E[e_{0,i}^2] s0 s0^T, psi and L unchanged in form.
// The state is the k(k+1)/2 unique entries of S_i per direction (k = 1..4
// state vectors), so one step costs O(d); the coefficients may change with the
// step (MethodPath). Derivation: docs/theory.md.
#pragma once

#include "cesr/method.hpp"
#include "cesr/real.hpp"
#include "cesr/schedule.hpp"
#include "cesr/spectrum.hpp"

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace cesr {

/// Which gradient noise: the data-sampling noise of least squares on Gaussian
/// (or independent-coordinate) covariates, or the noisy quadratic model's
/// (Zhang et al. 2019) noise independent of the iterate, of covariance C / B.
enum class NoiseKind { Multiplicative, Additive };

/// Sampling noise: batch size, fourth moment of the whitened covariates, label
/// noise; or, for the additive model, the scale of C = c H (unless the spectrum
/// carries its own diagonal C, Spectrum::noise_covariance).
struct NoiseModel {
  NoiseModel() = default;
  NoiseModel(std::uint64_t b, double k = 3, double sigma2 = 0) : batch(b), kurtosis(k), label_noise(sigma2) {}
  std::uint64_t batch = 1;  ///< B >= 1 fresh samples per step
  double kurtosis = 3;      ///< K = E[xi^4] of whitened coordinates (3 Gaussian, 1 Rademacher)
  double label_noise = 0;   ///< sigma^2 >= 0
  NoiseKind model = NoiseKind::Multiplicative;
  double noise_scale = 1;   ///< additive model: c in C = c H
  bool additive() const { return model == NoiseKind::Additive; }
  /// Batch size at step t when not constant (replaces `batch`).
  Schedule batch_schedule;
  /// The batch size of step t.
  std::uint64_t batch_at(std::uint64_t t) const {
    return batch_schedule.constant() ? batch : static_cast<std::uint64_t>(batch_schedule.at(t));
  }
  /// Throws std::invalid_argument naming --batch, --kurtosis or --noise; a
  /// FieldError for noise_scale, and for kurtosis / noise under the additive
  /// model (which has no data-sampling term).
  void validate() const;
};

/// The additive model's stationary loss: L_inf = 1/2 sum_i lambda_i o^T S_i o
/// with S_i = A_i S_i A_i^T + (w_i C_ii / B) q q^T (one small linear solve per
/// line); +infinity when some A_i has spectral radius >= 1, 0 for the
/// multiplicative model. Needs constant coefficients and batch size.
template <class Real>
Real loss_floor(const Spectrum& spectrum, const Method<Real>& method, const NoiseModel& noise);

/// The loss reported as diverging once it exceeds this (the largest double),
/// in every precision, so that all precisions agree on when a run diverges.
inline constexpr double divergence_threshold = std::numeric_limits<double>::max();

/// Time-stepping of the exact second moments, one eigendirection per entry of
/// structure-of-arrays storage. Cost per step: O(d); memory: O(d).
///
/// The state is stored as S_i(t) 2^(-e) with an integer exponent e that is
/// moved by exact power-of-two rescalings whenever the loss drifts far from 1,
/// so a diverging double-precision run overflows in loss() (when L_t itself
/// passes the largest double), not earlier inside the state, and reports its
/// divergence at the same step as a 50-digit run.
///
/// The problem itself is solved in units where the largest eigenvalue is
/// about 1: lambda -> lambda / 2^e, and each state vector a is measured in
/// units of 2^(e u_a) (u_a = 1 for a state that carries gradients, such as
/// PyTorch's momentum buffer, 0 for one that carries parameters), which maps
/// (P, q, r, o, s0) to (D^-1 P D, 2^e D^-1 q, D r, D o, D^-1 s0) with
/// D = diag(2^(e u_a)), sigma^2 to sigma^2 / 2^e and L to L / 2^e. This is a
/// diagonal similarity by powers of two, so every rounded operation is the
/// same up to that power of two (exactly the same digits), but lr^2 lambda^2
/// and q q^T never overflow or underflow on a spectrum scaled by 1e+-300.
/// Which per-direction kernel Dynamics runs: the hand-specialised k = 1 and
/// k = 2 ones where they apply (Auto), or the generic one for any k (tests
/// hold the two against each other).
enum class Kernel { Auto, Generic };

template <class Real>
class Dynamics {
 public:
  Dynamics(const Spectrum& spectrum, const MethodPath<Real>& method, const NoiseModel& noise,
           Kernel kernel = Kernel::Auto);

  /// Back to S_i(0) = E[e_{0,i}^2] s0 s0^T (times w_i for a weighted spectrum), t = 0.
  void reset();
  /// Advances one step.
  void step();
  /// Advances n steps.
  void advance(std::uint64_t n);

  std::uint64_t time() const { return t_; }
  /// Expected loss L_t = 1/2 sum_i lambda_i o^T S_i(t) o.
  const Real& loss() const { return loss_; }
  /// The coupling psi_t = sum_i lambda_i r^T S_i(t) r.
  const Real& psi() const { return psi_; }
  /// True when L_t is not finite or exceeds divergence_threshold.
  bool diverged() const;

  std::size_t dim() const { return lambda_.size(); }
  /// The coefficients of the current step, in the rescaled units (see above).
  const Method<Real>& method() const { return method_; }
  /// The exponent e of the rescaling lambda -> lambda / 2^e.
  int lambda_exponent() const { return lambda_exp_; }

  /// Starts a running bound of this run's own rounding error (call at t = 0).
  /// The computed state obeys S~(t+1) = T S~(t) + delta_t with T the exact
  /// operator of the stored coefficients and delta_t the rounding of one step,
  /// bounded entry by entry from |S~|, |P| + lambda |q||r|^T and the operation
  /// counts; a diagonal matrix N_t with -N_t <= delta_t <= N_t (Loewner order)
  /// follows. T maps positive semidefinite tuples to positive semidefinite
  /// tuples, so the error stays between -E_t and E_t with E_{t+1} = T E_t + N_t,
  /// a second recursion run alongside; |loss() - L_t| <= rounding_bound() =
  /// 1/2 sum_i lambda_i o^T E_i o plus the rounding of that sum (first order in
  /// the unit roundoff; the sums psi and L are then taken blockwise with
  /// compensation, so their error does not grow with d). Returns false, and
  /// tracks nothing, where T need not be positive or the coefficients change:
  /// a time-varying MethodPath, or a weighted spectrum with kurtosis K < 2
  /// (where some weight w_i < 2 - K would break positivity); also where E, a
  /// second copy of the state, would not fit in memory.
  bool track_rounding();
  /// The bound on |loss() - L_t| (0 when not tracking); see track_rounding().
  Real rounding_bound() const;

 private:
  void measure();  // recomputes the scaled loss and psi from the state
  void rescale();  // keeps the scaled loss near 1 (exact powers of two)
  void publish();  // loss_ = scaled loss 2^e, psi_ likewise
  template <int K, bool Weighted>
  void generic_step(const Method<Real>& next, Real& psi, Real& loss);
  template <bool Weighted>
  void step_k1(const Method<Real>& next, Real& psi, Real& loss);
  template <bool Weighted>
  void step_k2(const Method<Real>& next, Real& psi, Real& loss);
  template <int K, bool Weighted>
  void bound_step();     // E_{t+1} = T E_t + N_t, before the state's own step
  template <int K>
  void measure_bound();  // psi, L (compensated), their error bounds, and E's psi and loss

  void set_batch(std::uint64_t batch);  // inv_batch_ and excess_kurtosis_over_batch_ of a batch size
  // (psi + sigma^2) / B, or for the additive model the constant forcing / B.
  Real coupling() const {
    return (noise_.additive() ? scaled_label_noise_ : scaled_psi_ + scaled_label_noise_) * inv_batch_;
  }
  void choose_units(const Spectrum& spectrum);  // lambda_exp_, unit_exp_ and lambda_
  void to_units(Method<Real>& m) const;  // coefficients in the rescaled units

  MethodPath<Real> path_;
  Method<Real> method_, next_;   // coefficients of steps t and t + 1
  NoiseModel noise_;
  Kernel kernel_;
  Real inv_batch_, excess_kurtosis_over_batch_, label_noise_;
  std::vector<Real> lambda_;
  std::vector<Real> init_;       // w_i E[e_{0,i}^2]
  // The factor of coupling() injected into line i (empty: lambda_i). For a
  // weighted spectrum w_i lambda_i: the state of line i is M_i = w_i S_i, whose
  // injection is w_i lambda_i (psi + sigma^2) / B while the kurtosis term and
  // the sums psi, L read M_i as they read S_i. For the additive model with its
  // own covariance w_i C_ii (and coupling() = 1 / B; with C = c H it is
  // c / B and the factor w_i lambda_i as above).
  std::vector<Real> weighted_lambda_;
  // The unique entries S_i(a, b), a <= b, in row order ((0,0), (0,1), ...,
  // (1,1), ...), entry e of direction i at state_[e d + i], times 2^(-scale_exp_).
  std::vector<Real> state_;
  Real loss_{}, psi_{};          // unscaled L_t and psi_t
  Real scaled_loss_{}, scaled_psi_{}, scaled_label_noise_{};
  int scale_exp_ = 0;
  int lambda_exp_ = 0;                      // lambda is stored as lambda / 2^lambda_exp_
  std::array<int, max_states> unit_exp_{};  // state vector a in units of 2^unit_exp_[a]
  std::uint64_t t_ = 0;
  // track_rounding(): E_i (same layout and scale as state_), its psi_E and
  // loss 1/2 sum lambda o^T E o, and the rounding bounds of the sums psi, L.
  std::vector<Real> bound_;
  Real bound_psi_{}, bound_loss_{}, psi_error_{}, loss_error_{};
};

/// Loss values at chosen steps.
template <class Real>
struct LossCurve {
  std::vector<std::uint64_t> step;
  std::vector<Real> loss;
  /// Set when the loss exceeded divergence_threshold (or stopped being finite)
  /// at this step; `step`/`loss` then hold only the points before it.
  std::optional<std::uint64_t> diverged_at;
};

/// L_t at t = 0, every, 2 every, ... and always at t = steps.
template <class Real>
LossCurve<Real> loss_curve(const Spectrum& spectrum, const MethodPath<Real>& method,
                           const NoiseModel& noise, std::uint64_t steps, std::uint64_t every = 1);

template <class Real>
struct StepsResult {
  std::optional<std::uint64_t> steps;  ///< first t with L_t <= target; empty if not reached
  Real loss{};                         ///< L at that step (or at the last step run)
  Real initial_loss{};                 ///< L_0
  std::uint64_t steps_run = 0;         ///< steps taken
  std::optional<std::uint64_t> diverged_at;
  /// Additive model with coefficients that settle (MethodPath::constant_from)
  /// and a constant batch: the loss floor L_inf of the settled ones. A goal
  /// at or below it is never reached, and nothing is run (steps_run = 0).
  std::optional<Real> floor;
  /// The least L_t over the steps run (t = 0 to steps_run): how close the run
  /// came to the target (steps_to_target_auto's decision rule).
  Real closest{};
};

/// First t <= max_steps with L_t <= target (or <= target * L_0 when relative).
template <class Real>
StepsResult<Real> steps_to_target(const Spectrum& spectrum, const MethodPath<Real>& method,
                                  const NoiseModel& noise, const Real& target, bool relative,
                                  std::uint64_t max_steps);

/// A loss curve in automatic precision: first a double run with its own
/// rounding bound (Dynamics::track_rounding) on coefficients formed in 50
/// digits and rounded once; when the bound is <= rtol / 2 at every reported
/// step, that run answers. Otherwise (or where the bound does not apply) it is
/// computed in double, then long double,
/// quad and mp50 until two successive precisions agree to `rtol` (relative)
/// at every reported step and on the divergence step; the values reported are
/// those of the higher of the two (loss_curve_auto). The mp50 curve is
/// reported when no two agree (agreed = false; mp50 against 100 digits: see
/// docs/loss.md).
struct AutoLossCurve {
  std::vector<std::uint64_t> step;
  std::vector<double> loss;              ///< rounded to double
  std::vector<std::string> loss_text;    ///< 17 digits (auto), every digit of a forced precision
  std::optional<std::uint64_t> diverged_at;
  Precision precision = Precision::Double;  ///< whose values are reported
  bool agreed = true;                    ///< false: mp50's, with nothing to compare it to
  double disagreement = 0;               ///< largest relative difference of the last pair compared
  /// Double answered alone: its running rounding bound (Dynamics::track_rounding)
  /// is <= rtol / 2 relative at every reported step; `disagreement` holds the
  /// largest bound.
  bool certified = false;
};

/// Relative difference of two losses, 0 when both are 0 (two curves that both
/// underflow agree).
double relative_difference(double a, double b);

AutoLossCurve loss_curve_auto(const Spectrum& spectrum, const MethodSpec& method, const NoiseModel& noise,
                              std::uint64_t steps, std::uint64_t every, double rtol = 1e-10);

/// steps_to_target in automatic precision: two successive precisions must
/// find the same step (or both none), the same divergence, and losses that
/// agree to `rtol`.
struct AutoSteps {
  std::optional<std::uint64_t> steps;
  std::string loss_text, initial_loss_text;
  double loss = 0, initial_loss = 0;
  std::uint64_t steps_run = 0;
  std::optional<std::uint64_t> diverged_at;
  Precision precision = Precision::Double;
  bool agreed = true;
  /// Double answered alone, its running rounding bound <= rtol / 2 at every
  /// step and every comparison with the target decided beyond that bound.
  bool certified = false;
  std::optional<double> floor;  ///< the additive model's loss floor (StepsResult::floor), rounded to double
  /// Accepted by the decision rule of StepsQuestion::Reached: the target is
  /// not reached within max_steps, and the loss is to `disagreement`, not rtol.
  bool decided = false;
  double disagreement = 0;  ///< relative difference of the two precisions that answered (0 when certified)
};

/// What steps_to_target_auto is asked. Count: the first step and the loss there
/// (or at max_steps), both to rtol. Reached: only whether the target is reached
/// within max_steps (a prefix of a longer search, a probe); a run that does not
/// reach it is then also accepted when two precisions agree on that, their
/// losses (L_0, the last and the least L_t) differ by at most decision_rtol and
/// the least L_t of each is above the target by more than 16 times that
/// difference. A run that reaches the target or diverges needs the Count rule.
enum class StepsQuestion { Count, Reached };
inline constexpr double decision_rtol = 1e-4;

AutoSteps steps_to_target_auto(const Spectrum& spectrum, const MethodSpec& method, const NoiseModel& noise,
                               double target, bool relative, std::uint64_t max_steps, double rtol = 1e-10,
                               StepsQuestion question = StepsQuestion::Count);

/// The same in one fixed precision, reported alike.
AutoLossCurve loss_curve_in(Precision precision, const Spectrum& spectrum, const MethodSpec& method,
                            const NoiseModel& noise, std::uint64_t steps, std::uint64_t every);
AutoSteps steps_to_target_in(Precision precision, const Spectrum& spectrum, const MethodSpec& method,
                             const NoiseModel& noise, double target, bool relative, std::uint64_t max_steps);

}  // namespace cesr
