// Hyperparameter tuning: for one method and one batch size, the hyperparameters
// that maximise the contraction gap 1 - rho (rate objective) or minimise the
// exact number of steps to a target loss (steps objective).
//
// Search: in log coordinates (log lr, log(1 - beta), log kappa_a, and the
// position of log xi between 0 and log sqrt(kappa_a)), a coarse global grid in
// which unstable points simply lose, then local refinement with NLopt's
// Nelder-Mead (restarted from its own answer until it stops improving, because
// the tuned heavy ball sits on a kink of the rate near critical damping) or
// Boost's Brent minimiser in one dimension. See docs/tune.md.
#pragma once

#include <limits>

#include "cesr/dynamics.hpp"
#include "cesr/horizon.hpp"
#include "cesr/method.hpp"
#include "cesr/spectrum.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cesr {

/// The tuner's limit on lambda_max / lambda_min (every objective): beyond it
/// the gaps (about 1/kappa), step counts and losses it compares in double
/// leave double's range; tune refuses such a spectrum (FieldError "spectrum").
inline constexpr double max_tunable_kappa = std::numeric_limits<double>::max();

/// rate: maximise the gap 1 - rho; steps: minimise the steps to a target;
/// final: minimise the exact loss L_T after a fixed number of steps T (a budget).
enum class Objective { Rate, Steps, Final };

/// rate | steps | final
std::string_view to_string(Objective o);
/// Parses rate|steps|final; throws std::invalid_argument naming --objective otherwise.
Objective parse_objective(std::string_view name);

/// The loss target of the steps objective (and of the step counts that the
/// rate objective derives from its asymptotic rate).
struct Target {
  double eps = 1e-6;                     ///< target loss, or fraction of L_0 when relative
  bool relative = true;                  ///< the target is eps * L_0
  std::uint64_t max_steps = 100'000'000; ///< the steps objective gives up beyond this (time stepping)
  /// How the steps objective reaches large step counts: the certified
  /// spectral path (horizon.hpp) where it applies, uncapped, unless Stepping.
  HorizonMode horizon = HorizonMode::Auto;
  double horizon_rtol = default_horizon_rtol;
  /// Throws std::invalid_argument naming --target: eps must be finite and > 0,
  /// below 1 when relative and below L_0 (`initial_loss`) when absolute.
  void validate(double initial_loss) const;
};

/// How the rate optimum is searched (docs/tune.md):
///  fast:   from a start (the optimum of a neighbouring problem, e.g. the
///          previous batch size of a sweep) or a coarse grid, a quasi-Newton
///          refinement on the exact gradient of the gap (implicit
///          differentiation of the secular equation), the global search only
///          where that loses the optimum;
///  global: the dense coarse grid and Nelder-Mead refinement everywhere.
enum class SearchMode { Fast, Global };

/// fast | global
std::string_view to_string(SearchMode m);
/// Parses fast|global; throws FieldError naming search_mode otherwise.
SearchMode parse_search_mode(std::string_view name);

/// A user's search box for one hyperparameter, in its own units (replaces the
/// default box of its Search; see docs/tune.md).
struct Box {
  double lo = 0, hi = 0;
};

struct TuneOptions {
  Objective objective = Objective::Rate;
  Target target;
  /// Hyperparameters held fixed, by field name; the others that the method's
  /// row declares a search for are tuned, the rest take their defaults.
  std::map<std::string, double, std::less<>> fixed;
  /// Search boxes by field name (default: the row's Search over the problem's scales).
  std::map<std::string, Box, std::less<>> boxes;
  /// Averaging applied to the method (part of the problem, never tuned).
  Average average;
  /// Schedules (part of the problem): the tuner scales the peak lr; a momentum
  /// schedule holds the momentum. Any schedule needs the steps objective.
  Schedule lr_schedule, momentum_schedule;
  /// The horizon T of the final objective (>= 1); horizon-dependent schedules
  /// are resolved with it.
  std::uint64_t horizon = 0;
  /// Recompute the reported gap with contraction_rate_auto (double, then long
  /// double, quad, mp50 until two agree); the search itself always runs in double.
  bool confirm_gap = true;
  SearchMode search_mode = SearchMode::Fast;
  /// Fast search: a start in the search coordinates (TuneResult::coordinates
  /// of the same method at a neighbouring problem), clamped into the box;
  /// empty: the fast search starts from a coarse grid. Ignored by the global
  /// search and by the steps-only and final objectives.
  std::vector<double> start;
};

/// One axis of the search, as reported: the hyperparameter, the coordinate
/// it is searched in and the box in the hyperparameter's own units.
struct SearchAxis {
  std::string name;        ///< field name
  std::string coordinate;  ///< "log lr", "log(1 - momentum)", "log lr/(1 - momentum)", "xi = kappa^(t/2)", ...
  double lo = 0, hi = 0;   ///< the box (for coupled coordinates: of the coordinate's argument)
};

struct TuneResult {
  MethodSpec method;                  ///< the tuned hyperparameters (validated)
  std::vector<SearchAxis> box;        ///< the search box used
  /// False for a method whose coefficients change with the step: it has no
  /// contraction rate (gap, rho and gap_text are then not set).
  bool has_rate = true;
  bool stable = false;                ///< false: no stable point was found at all
  double gap = 0;                     ///< 1 - rho at the tuned point
  double rho = 1;                     ///< rho at the tuned point
  std::string gap_text;               ///< the gap with every digit of its precision
  Precision gap_precision = Precision::Double;  ///< precision the reported gap carries
  /// True when the automatic-precision confirmation threw (root finder
  /// failure): gap/rho are then the search precision's values.
  bool confirm_failed = false;
  /// Precision of the search: double, or long double when double found no
  /// stable point at all.
  Precision search_precision = Precision::Double;
  /// Steps to the target: the exact count (steps objective, and the additive
  /// model under any objective: as `cesr steps` finds it, by the certified
  /// spectral path or time stepping in automatic precision) or
  /// ceil(ln(L_0 / goal) / -ln rho) (rate objective).
  /// Empty when the target is not reached (steps objective) or rho >= 1.
  std::optional<std::uint64_t> steps;
  int evaluations = 0;                ///< objective evaluations (hyperparameter points tried)
  /// Final objective: the exact expected loss L_T at the tuned point (double
  /// time stepping); empty when every point tried diverged.
  std::optional<double> final_loss;
  int rate_evaluations = 0;           ///< secular-function evaluations behind them
  /// The tuned point in the search coordinates (a start for the next problem of a sweep).
  std::vector<double> coordinates;
  /// The fast search fell back to the global one (the continuation lost the optimum).
  bool global_fallback = false;
};

/// Tunes the registry method `method` at batch size noise.batch over the
/// search space its row declares. Validates the options (FieldError naming
/// the field); a method with nothing to tune (custom) or a varying method with
/// the rate objective is refused the same way.
TuneResult tune(const Spectrum& spectrum, std::string_view method, const NoiseModel& noise, const TuneOptions& options);

/// Steps that an asymptotic contraction rate rho needs to take the loss from
/// L_0 to the target: ceil(ln(L_0 / goal) / -ln rho) with goal = eps L_0
/// (relative) or eps (absolute); 0 when L_0 <= goal; empty when rho >= 1.
std::optional<std::uint64_t> asymptotic_steps(double rho, double gap, double initial_loss, const Target& target);

/// A continuous stand-in for the step count, minimised by the steps objective:
/// with t the first step where L_t <= goal, t - 1 + ln(L_{t-1}/goal) / ln(L_{t-1}/L_t)
/// (so ceil of it is t). Beyond `cap` steps the run stops and the count is
/// extrapolated from the last decrease. Divergence or no progress: +infinity.
double fractional_steps(const Spectrum& spectrum, const MethodPath<double>& method, const NoiseModel& noise,
                        const Target& target, std::uint64_t cap);

}  // namespace cesr
