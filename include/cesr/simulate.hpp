// Monte Carlo of the real stochastic iteration, to hold against the exact curve.
//
// Each run draws B fresh covariates per step, x = H^{1/2} xi with independent
// whitened coordinates xi of a chosen law, labels with noise of variance sigma^2,
// and runs the method's actual update on its k state vectors (error coordinates):
//   s_{t+1} = P_t s_t - q_t (x) g(z_t),   z_t = r_t^T s_t,   e_t = o^T s_t,
//   g(z) = (1/B) sum_b x_b (x_b^T z - eps_b),
// with e_0,i = sqrt(E[e_0,i^2]) and state vector a starting at s0[a] e_0. The loss
// of a run is 1/2 sum_i lambda_i e_t,i^2; its mean over runs estimates the
// expected loss that cesr::loss_curve computes exactly. See docs/simulate.md.
#pragma once

#include "cesr/dynamics.hpp"
#include "cesr/method.hpp"
#include "cesr/real.hpp"
#include "cesr/spectrum.hpp"

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace cesr {

/// Law of the whitened covariate coordinates (mean 0, variance 1).
enum class Covariates {
  Gaussian,    ///< N(0, 1): fourth moment K = 3
  Rademacher,  ///< +-1 with probability 1/2: K = 1
  Uniform,     ///< uniform on [-sqrt 3, sqrt 3]: K = 9/5
};

/// Command-line name: gaussian, rademacher, uniform.
std::string_view to_string(Covariates law);
/// Parses gaussian|rademacher|uniform; throws std::invalid_argument otherwise.
Covariates parse_covariates(std::string_view name);
/// E[xi^4] of the law: the K that the exact recursion needs for it.
double fourth_moment(Covariates law);

struct SimulationConfig {
  std::uint64_t steps = 0;   ///< T: steps per run
  std::uint64_t every = 1;   ///< record t = 0, every, 2 every, ... and always T
  std::uint64_t runs = 0;    ///< R >= 2 independent runs
  std::uint64_t seed = 0;    ///< run j draws from an engine seeded by (seed, j)
  Covariates covariates = Covariates::Gaussian;
  unsigned threads = 0;      ///< worker threads (0: hardware concurrency); never changes the output
  /// Throws std::invalid_argument naming --runs, --every or --threads.
  void validate() const;
};

/// What a simulation needs, estimated from measurements (src/simulate.cpp).
struct SimulationCost {
  double points = 0;        ///< recorded steps
  double bytes = 0;         ///< peak memory
  double core_seconds = 0;  ///< time on one core
};
SimulationCost simulation_cost(const Spectrum& spectrum, const NoiseModel& noise, const SimulationConfig& config);
/// Throws FieldError naming `steps` (with the memory and time it would need)
/// when the recorded points would not fit in 80% of physical memory;
/// simulate and monte_carlo_loss call it before any work.
void check_simulation_size(const Spectrum& spectrum, const NoiseModel& noise, const SimulationConfig& config);

/// Mean and standard error over runs of the loss at the recorded steps.
struct MonteCarloCurve {
  std::vector<std::uint64_t> step;
  std::vector<double> mean;       ///< (1/R) sum over runs of 1/2 sum_i lambda_i e_t,i^2
  std::vector<double> std_error;  ///< sample standard deviation / sqrt(R)
  /// Share of the summed loss that the single largest run carries. It is of
  /// order log(R)/R when the loss has light tails, and large when one rare run
  /// dominates the mean (heavy tails: the mean converges slowly and the
  /// standard error and z are unreliable).
  std::vector<double> largest_share;
  std::uint64_t runs = 0;
  /// First recorded step where some run's loss overflowed (exceeded
  /// divergence_threshold or stopped being finite); the vectors then stop before it.
  std::optional<std::uint64_t> diverged_at;
};

/// Runs the real iteration of `method` R times. Uses noise.batch and
/// noise.label_noise; noise.kurtosis is ignored (the law fixes the fourth
/// moment). The result depends on (seed, runs) and the problem only, never on
/// the thread count: run j always uses the stream seeded by (seed, j), and the
/// per-run results are reduced in run order.
MonteCarloCurve monte_carlo_loss(const Spectrum& spectrum, const MethodPath<double>& method, const NoiseModel& noise,
                                 const SimulationConfig& config);

/// A simulation next to the exact curve, as plain vectors (one entry per recorded step).
struct SimulationResult {
  std::vector<std::uint64_t> step;
  std::vector<double> theory;     ///< exact expected loss from cesr::loss_curve (rounded to double)
  std::vector<double> mean;       ///< Monte Carlo mean over runs
  std::vector<double> std_error;  ///< its standard error
  std::vector<double> largest_share;  ///< see MonteCarloCurve::largest_share
  std::uint64_t runs = 0;
  Covariates covariates = Covariates::Gaussian;
  double kurtosis = 3;            ///< K used for the theory column
  /// Set when the method diverges (the exact loss, or a run's loss, overflows at
  /// this step); the vectors then hold the points before it.
  std::optional<std::uint64_t> diverged_at;

  /// z = (mean - theory) / std_error at point i; empty when std_error is 0.
  std::optional<double> z(std::size_t i) const;
};

/// The exact curve (in `precision`, with K = noise.kurtosis) and the Monte
/// Carlo curve at the same steps. The exact curve is computed first; when it
/// diverges nothing is simulated.
SimulationResult simulate(const Spectrum& spectrum, const MethodSpec& method, const NoiseModel& noise,
                          const SimulationConfig& config, Precision precision = Precision::Double);

}  // namespace cesr
