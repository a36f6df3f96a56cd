// Schedules: a value that depends on the step t (the update from e_t to
// e_{t+1}) -- a learning-rate factor m_t that multiplies the peak lr, an
// absolute momentum, or a batch size. The loss stays exact under any schedule:
// the engine's coefficients simply change with the step (MethodPath).
//
// Learning-rate shapes (m_t; "final" F defaults to 0; warmup=W in every shape:
// m_t = (t + 1)/W for t < W, and step/invtime count t from the end of warmup):
//   constant                                   1
//   cosine:steps=T[,warmup=W][,final=F]        F + (1 - F)(1 + cos(pi (t - W)/(T - W)))/2 on [W, T), F after
//   linear:steps=T[,warmup=W][,final=F]        1 - (1 - F)(t - W)/(T - W) on [W, T), F after
//   wsd:steps=T,decay=D[,warmup=W][,final=F]   1 until T - D, then 1 - (1 - F)(t - T + D)/D on [T - D, T), F after
//   step:every=N,factor=G[,warmup=W]           G^floor((t - W)/N)
//   invtime:t0=T0[,power=P][,warmup=W]         (1 + (t - W)/T0)^(-P), P = 1 by default
//   file:PATH                                  CSV step,factor; first row step 0; piecewise constant
// In cosine, linear and wsd, steps may be left out (the run's horizon is used)
// and warmup/decay may be a percentage of the horizon (warmup=5%, rounded to
// the nearest step). Batch sizes: constant | ramp:start=B0,every=N,max=BMAX[,factor=F]
// (B_t = min(BMAX, B0 F^floor(t/N)), F = 2) | file:PATH (CSV step,batch).
// Momentum: constant | file:PATH (CSV step,momentum, absolute values).
// See docs/schedules.md.
#pragma once

#include "cesr/error.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cesr {

class Schedule {
 public:
  enum class Shape { Constant, Cosine, Linear, Wsd, Step, InvTime, Table, Ramp };

  /// A constant schedule (value 1 for a factor).
  Schedule() = default;

  /// Parses a learning-rate factor schedule; throws FieldError naming `field`
  /// (e.g. "lr_schedule") with the rule that was broken.
  static Schedule learning_rate(std::string_view text, std::string_view field = "lr_schedule");
  /// constant | file:PATH with CSV step,momentum.
  static Schedule momentum(std::string_view text, std::string_view field = "momentum_schedule");
  /// constant | ramp:... | file:PATH with CSV step,batch.
  static Schedule batch(std::string_view text, std::string_view field = "batch_schedule");

  bool constant() const { return shape_ == Shape::Constant; }
  /// True when steps/warmup/decay still wait for the run's horizon (resolve()).
  bool needs_horizon() const;
  /// The schedule with a left-out steps = horizon and percentages resolved.
  Schedule resolve(std::uint64_t horizon) const;
  /// The value used at step t (needs_horizon() must be false).
  double at(std::uint64_t t) const;
  /// The text the schedule was parsed from ("constant" for the default).
  const std::string& text() const { return text_; }

 private:
  Shape shape_ = Shape::Constant;
  std::string text_ = "constant", field_;
  std::optional<std::uint64_t> steps_;
  std::uint64_t warmup_ = 0, decay_ = 0, every_ = 1;
  std::optional<double> warmup_fraction_, decay_fraction_;
  double final_ = 0, factor_ = 2, t0_ = 1, power_ = 1, start_ = 1, max_ = 1;
  std::vector<std::pair<std::uint64_t, double>> table_;  // (first step, value), steps increasing
};

/// The schedules of one run. A constant schedule changes nothing.
struct Schedules {
  Schedule lr;        ///< factor m_t on the peak lr
  Schedule momentum;  ///< absolute momentum at step t (replaces the momentum hyperparameter)
  Schedule batch;     ///< batch size at step t (replaces the batch size)
  bool constant() const { return lr.constant() && momentum.constant() && batch.constant(); }
  /// Resolves horizon-dependent shapes (a no-op for the others).
  Schedules resolve(std::uint64_t horizon) const {
    return {lr.resolve(horizon), momentum.resolve(horizon), batch.resolve(horizon)};
  }
};

}  // namespace cesr
