#include "cesr/simulate.hpp"

#include "cesr/error.hpp"
#include "cesr/progress.hpp"
#include "cesr/stop.hpp"

#include <Eigen/Dense>
#include <boost/random/mersenne_twister.hpp>
#include <boost/random/normal_distribution.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <exception>
#include <limits>
#include <map>
#include <mutex>
#include <random>
#include <stdexcept>
#include <thread>

namespace cesr {

std::string_view to_string(Covariates law) {
  switch (law) {
    case Covariates::Gaussian: return "gaussian";
    case Covariates::Rademacher: return "rademacher";
    case Covariates::Uniform: return "uniform";
  }
  return "?";
}

Covariates parse_covariates(std::string_view name) {
  if (name == "gaussian") return Covariates::Gaussian;
  if (name == "rademacher") return Covariates::Rademacher;
  if (name == "uniform") return Covariates::Uniform;
  throw std::invalid_argument(
      fmt::format("--covariates: unknown law '{}' (expected gaussian, rademacher or uniform)", name));
}

double fourth_moment(Covariates law) {
  switch (law) {
    case Covariates::Gaussian: return 3;
    case Covariates::Rademacher: return 1;
    case Covariates::Uniform: return 9.0 / 5.0;  // E[x^4] = 9/5 for x uniform on [-sqrt 3, sqrt 3]
  }
  return 3;
}

void SimulationConfig::validate() const {
  if (runs < 2) throw std::invalid_argument(fmt::format("--runs must be >= 2 (for a standard error), got {}", runs));
  // Every run is simulated: far beyond this no one waits for the answer (and
  // counts near 2^64 overflowed the block arithmetic to zero runs).
  if (runs > (std::uint64_t{1} << 40))
    throw std::invalid_argument(fmt::format("--runs must be <= 2^40, got {}", runs));
  if (every < 1) throw std::invalid_argument(fmt::format("--every must be >= 1, got {}", every));
  if (threads > 4096) throw std::invalid_argument(fmt::format("--threads must be <= 4096, got {}", threads));
}

SimulationCost simulation_cost(const Spectrum& spectrum, const NoiseModel& noise, const SimulationConfig& config) {
  SimulationCost c;
  c.points = static_cast<double>(config.steps / std::max<std::uint64_t>(config.every, 1)) + 2;
  // Measured peak resident size: 550 bytes per recorded step (d = 2, 1e6
  // steps, double and mp50 alike): the exact curve, the per-worker and merged
  // moments and above all the rendered table; plus the exact recursion's and
  // the runs' per-direction state.
  c.bytes = c.points * 600 + static_cast<double>(spectrum.dim()) * 400;
  // Measured on one core: about 40 ns per run and step plus 3 ns per
  // covariate entry (batch times d).
  c.core_seconds = static_cast<double>(config.runs) * static_cast<double>(config.steps) *
                   (40e-9 + 3e-9 * static_cast<double>(noise.batch) * static_cast<double>(spectrum.dim()));
  return c;
}

void check_simulation_size(const Spectrum& spectrum, const NoiseModel& noise, const SimulationConfig& config) {
  const SimulationCost c = simulation_cost(spectrum, noise, config);
  const double physical = physical_memory();
  if (physical > 0 && c.bytes > 0.8 * physical)
    throw FieldError("steps", fmt::format("steps {} with every {} records {:.3g} points: about {:.3g} GiB, more "
                                          "than this machine's memory ({:.3g} GiB), and the runs would take about "
                                          "{:.2g} core-hours; record fewer points (a larger every) or run fewer steps",
                                          config.steps, config.every, c.points, c.bytes / double(1u << 30),
                                          physical / double(1u << 30), c.core_seconds / 3600));
}

std::optional<double> SimulationResult::z(std::size_t i) const {
  if (!(std_error.at(i) > 0)) return std::nullopt;
  return (mean[i] - theory[i]) / std_error[i];
}

namespace {

using Engine = boost::random::mt19937_64;
using Vector = Eigen::ArrayXd;
using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// Run j's engine: a seed sequence over (seed, j), so streams are split by run.
Engine engine_for_run(std::uint64_t seed, std::uint64_t run) {
  std::seed_seq seq{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32),
                    static_cast<std::uint32_t>(run), static_cast<std::uint32_t>(run >> 32)};
  return Engine(seq);
}

/// Fills `n` whitened coordinates of the chosen law.
class CovariateSampler {
 public:
  explicit CovariateSampler(Covariates law) : law_(law) {}

  void fill(double* x, std::size_t n, Engine& eng) {
    switch (law_) {
      case Covariates::Gaussian:
        for (std::size_t i = 0; i < n; ++i) x[i] = normal_(eng);
        return;
      case Covariates::Rademacher:
        // One 64-bit draw gives 64 independent fair signs.
        // Branch-free (a branch on a random bit mispredicts half the time).
        for (std::size_t i = 0; i < n; i += 64) {
          const std::uint64_t bits = eng();
          const std::size_t m = std::min<std::size_t>(64, n - i);
          for (std::size_t j = 0; j < m; ++j) x[i + j] = 1.0 - 2.0 * static_cast<double>((bits >> j) & 1);
        }
        return;
      case Covariates::Uniform: {
        // 53 random bits -> u in [0, 1); x = sqrt(3)(2u - 1) has variance 1.
        const double s3 = std::sqrt(3.0);
        for (std::size_t i = 0; i < n; ++i) {
          const double u = static_cast<double>(eng() >> 11) * 0x1.0p-53;
          x[i] = s3 * (2 * u - 1);
        }
        return;
      }
    }
  }

  double normal(Engine& eng) { return normal_(eng); }

 private:
  Covariates law_;
  boost::random::normal_distribution<double> normal_;
};

/// Welford/Chan accumulator of mean and sum of squared deviations per point,
/// in long double: a run's loss may be any finite double, and the squared
/// deviations of losses above 1e154 overflow a double (the standard error came
/// out inf next to a finite mean).
struct Moments {
  std::uint64_t n = 0;
  std::vector<long double> mean, m2;
  std::vector<double> lo, hi;            // smallest and largest run (order-independent)
  std::optional<std::size_t> first_bad;  // first point where some run overflowed

  explicit Moments(std::size_t points = 0)
      : mean(points, 0.0),
        m2(points, 0.0),
        lo(points, std::numeric_limits<double>::infinity()),
        hi(points, -std::numeric_limits<double>::infinity()) {}

  void add_run(const std::vector<double>& x, std::optional<std::size_t> bad) {
    ++n;
    const long double inv_n = 1.0L / static_cast<long double>(n);
    for (std::size_t p = 0; p < x.size(); ++p) {
      const long double delta = x[p] - mean[p];
      mean[p] += delta * inv_n;
      m2[p] += delta * (x[p] - mean[p]);
      lo[p] = std::min(lo[p], x[p]);
      hi[p] = std::max(hi[p], x[p]);
    }
    merge_bad(bad);
  }

  /// Chan et al.'s pairwise update: combines two disjoint sets of runs.
  void merge(const Moments& o) {
    if (o.n == 0) return;
    const long double na = static_cast<long double>(n), nb = static_cast<long double>(o.n), nt = na + nb;
    for (std::size_t p = 0; p < mean.size(); ++p) {
      const long double delta = o.mean[p] - mean[p];
      mean[p] += delta * (nb / nt);
      m2[p] += o.m2[p] + delta * delta * (na * nb / nt);
      lo[p] = std::min(lo[p], o.lo[p]);
      hi[p] = std::max(hi[p], o.hi[p]);
    }
    n += o.n;
    merge_bad(o.first_bad);
  }

  void merge_bad(std::optional<std::size_t> bad) {
    if (bad && (!first_bad || *bad < *first_bad)) first_bad = bad;
  }
};

/// One worker's buffers and the real iteration of one run.
class RunSimulator {
 public:
  RunSimulator(const Spectrum& spectrum, const MethodPath<double>& method, const NoiseModel& noise,
               const SimulationConfig& config, const std::vector<std::uint64_t>& record)
      : path_(method),
        config_(config),
        record_(record),
        d_(spectrum.dim()),
        noise_(noise),
        batch_(noise.batch),
        sigma_(std::sqrt(noise.label_noise)),
        sampler_(config.covariates) {
    lambda_ = Eigen::Map<const Vector>(spectrum.lambda.data(), static_cast<Eigen::Index>(d_));
    sqrt_lambda_ = lambda_.sqrt();
    if (noise.additive()) {
      // The NQM: gradient H z + zeta, zeta ~ N(0, C / B) independent of everything else.
      const Vector c = spectrum.noise_covariance.empty()
                           ? Vector(noise.noise_scale * lambda_)
                           : Vector(Eigen::Map<const Vector>(spectrum.noise_covariance.data(),
                                                             static_cast<Eigen::Index>(d_)));
      noise_sd_ = c.sqrt();
    }
    e0_ = Eigen::Map<const Vector>(spectrum.init.data(), static_cast<Eigen::Index>(d_)).sqrt();
    // Covariates are drawn in chunks of rows (at most ~128 KiB), so memory
    // stays O(d) whatever B is: g only needs sum_b x_b a_b.
    // (a batch schedule: chunks of its first batch size; larger batches take several)
    chunk_ = static_cast<std::size_t>(
        std::clamp<std::uint64_t>(16384 / std::max<std::size_t>(d_, 1), 1, noise.batch_at(0)));
    x_.resize(static_cast<Eigen::Index>(chunk_), static_cast<Eigen::Index>(d_));
    a_.resize(static_cast<Eigen::Index>(chunk_));
    losses_.resize(record_.size());
  }

  /// Simulates run j; losses() then holds its loss at each recorded step.
  /// Returns the first recorded point whose loss overflowed, if any.
  std::optional<std::size_t> run(std::uint64_t j) {
    Engine eng = engine_for_run(config_.seed, j);
    Method<double> m = path_.coefficients(0);
    const int k = m.k;
    std::vector<Vector> s(static_cast<std::size_t>(k)), next(static_cast<std::size_t>(k));
    for (int a = 0; a < k; ++a) s[a] = m.s0[a] * e0_;
    Vector g(d_), u(d_), e(d_);
    std::size_t point = 0;
    for (std::uint64_t t = 0;; ++t) {
      if (t > 0 && !path_.constant()) {
        m = path_.initial;
        path_.at(t, m);
      }
      if (point < record_.size() && record_[point] == t) {
        e = m.o[0] * s[0];
        for (int a = 1; a < k; ++a) e += m.o[a] * s[a];
        const double loss = 0.5 * (lambda_ * e.square()).sum();
        losses_[point] = loss;
        if (!std::isfinite(loss) || loss > divergence_threshold) {
          for (std::size_t p = point + 1; p < record_.size(); ++p) losses_[p] = loss;
          return point;
        }
        ++point;
      }
      if (t == config_.steps) {
        count_work(t == 0 ? 0 : (t & 15) == 0 ? 16 : t & 15);  // the steps since the last count
        break;
      }
      if ((t & 15) == 0) {
        throw_if_stopped();  // a step costs O(B d): poll often
        if (t > 0) count_work(16);
      }
      const std::uint64_t batch = noise_.batch_at(t);
      const double inv_b = 1.0 / static_cast<double>(batch);
      if (noise_.additive()) {
        // g = H z + zeta with zeta_i = sqrt(C_ii / B) N(0, 1).
        u = m.r[0] * s[0];
        for (int a = 1; a < k; ++a) u += m.r[a] * s[a];
        const double sd = std::sqrt(inv_b);
        for (std::size_t i = 0; i < d_; ++i) g[i] = lambda_[i] * u[i] + sd * noise_sd_[i] * sampler_.normal(eng);
      } else {
      // Whitened query point u = H^{1/2} z; x_b^T z = xi_b^T u.
      u = m.r[0] * s[0];
      for (int a = 1; a < k; ++a) u += m.r[a] * s[a];
      u *= sqrt_lambda_;
      g.setZero();
      for (std::uint64_t b0 = 0; b0 < batch; b0 += chunk_) {
        const auto rows = static_cast<Eigen::Index>(std::min<std::uint64_t>(chunk_, batch - b0));
        sampler_.fill(x_.data(), static_cast<std::size_t>(rows) * d_, eng);
        auto X = x_.topRows(rows);
        a_.head(rows).matrix().noalias() = X * u.matrix();
        if (sigma_ > 0)
          for (Eigen::Index b = 0; b < rows; ++b) a_[b] -= sigma_ * sampler_.normal(eng);
        g.matrix().noalias() += X.transpose() * a_.head(rows).matrix();
      }
      // g = H^{1/2} (1/B) sum_b xi_b (xi_b^T u - eps_b), the mini-batch gradient at z.
      g *= sqrt_lambda_ * inv_b;
      }
      // s' = P s - q (x) g
      for (int a = 0; a < k; ++a) {
        next[a] = -m.q[a] * g;
        for (int b = 0; b < k; ++b)
          if (m.P[a][b] != 0) next[a] += m.P[a][b] * s[b];
      }
      s.swap(next);
    }
    return std::nullopt;
  }

  const std::vector<double>& losses() const { return losses_; }

 private:
  MethodPath<double> path_;  // a copy per worker: a path's callable may keep state
  const SimulationConfig& config_;
  const std::vector<std::uint64_t>& record_;
  std::size_t d_;
  NoiseModel noise_;
  std::uint64_t batch_;
  double sigma_;
  CovariateSampler sampler_;
  Vector lambda_, sqrt_lambda_, e0_;
  Vector noise_sd_;  // additive model: sqrt(C_ii)
  std::size_t chunk_ = 1;
  RowMatrix x_;
  Vector a_;
  std::vector<double> losses_;
};

/// Recorded steps: 0, every, 2 every, ... and always T.
std::vector<std::uint64_t> recorded_steps(std::uint64_t steps, std::uint64_t every) {
  std::vector<std::uint64_t> out;
  for (std::uint64_t t = 0; t < steps; t += every) out.push_back(t);
  out.push_back(steps);
  return out;
}

}  // namespace

MonteCarloCurve monte_carlo_loss(const Spectrum& weighted, const MethodPath<double>& method, const NoiseModel& noise,
                                 const SimulationConfig& config) {
  config.validate();
  noise.validate();
  // The real iteration needs whole directions: a weighted line of weight w is w of them.
  const Spectrum spectrum = expand_weights(weighted, "the Monte Carlo simulation");
  if (spectrum.init.size() != spectrum.lambda.size())
    throw std::invalid_argument("spectrum and initial moments differ in length");
  check_simulation_size(spectrum, noise, config);
  const std::vector<std::uint64_t> record = recorded_steps(config.steps, config.every);

  // Runs are grouped in blocks of consecutive indices that depend on R only;
  // blocks are handed to threads in order, and their moments are merged in
  // block order (a finished block waits in `pending` for its predecessors), so
  // the floating-point reduction is the same for any thread count.
  constexpr std::uint64_t block_runs = 4;
  const std::uint64_t blocks = (config.runs + block_runs - 1) / block_runs;
  unsigned threads = config.threads ? config.threads : std::max(1u, std::thread::hardware_concurrency());
  threads = static_cast<unsigned>(std::min<std::uint64_t>(threads, blocks));

  Moments total(record.size());
  std::map<std::uint64_t, Moments> pending;
  std::uint64_t next_merge = 0;
  std::mutex mutex;
  std::atomic<std::uint64_t> next_block{0};
  std::atomic<bool> failed{false};
  std::exception_ptr error;

  const std::atomic<bool>* stop = stop_flag();  // the workers poll the caller's flag
  std::atomic<std::uint64_t>* work = work_counter();  // and count into the caller's counter
  auto worker = [&] {
    try {
      const StopScope scope(stop);
      const WorkScope counting(work);
      RunSimulator sim(spectrum, method, noise, config, record);
      for (;;) {
        const std::uint64_t blk = next_block.fetch_add(1);
        if (blk >= blocks || failed) return;
        Moments acc(record.size());
        const std::uint64_t end = std::min(config.runs, (blk + 1) * block_runs);
        for (std::uint64_t j = blk * block_runs; j < end; ++j) {
          const auto bad = sim.run(j);
          acc.add_run(sim.losses(), bad);
        }
        std::lock_guard lock(mutex);
        pending.emplace(blk, std::move(acc));
        for (auto it = pending.find(next_merge); it != pending.end(); it = pending.find(next_merge)) {
          total.merge(it->second);
          pending.erase(it);
          ++next_merge;
        }
      }
    } catch (...) {
      std::lock_guard lock(mutex);
      if (!error) error = std::current_exception();
      failed = true;
    }
  };
  if (threads <= 1) {
    worker();
  } else {
    std::vector<std::jthread> pool;
    for (unsigned i = 0; i < threads; ++i) pool.emplace_back(worker);
  }
  if (error) std::rethrow_exception(error);

  MonteCarloCurve out;
  out.runs = total.n;
  const std::size_t good = total.first_bad ? *total.first_bad : record.size();
  if (total.first_bad) out.diverged_at = record[*total.first_bad];
  const long double r = static_cast<long double>(total.n);
  for (std::size_t p = 0; p < good; ++p) {
    out.step.push_back(record[p]);
    out.mean.push_back(static_cast<double>(total.mean[p]));
    const long double m2 = std::max(0.0L, total.m2[p]);
    // At most the largest loss, so a finite double.
    out.std_error.push_back(static_cast<double>(std::sqrt(m2 / (r - 1) / r)));
    // Share of the summed loss carried by the largest run (losses are >= 0).
    const long double sum = total.mean[p] * r;
    out.largest_share.push_back(sum > 0 ? static_cast<double>(std::min(1.0L, total.hi[p] / sum)) : 0.0);
  }
  return out;
}

SimulationResult simulate(const Spectrum& spectrum, const MethodSpec& method, const NoiseModel& noise,
                          const SimulationConfig& config, Precision precision) {
  config.validate();
  noise.validate();
  check_simulation_size(spectrum, noise, config);
  SimulationResult out;
  out.covariates = config.covariates;
  out.kurtosis = noise.kurtosis;
  out.runs = config.runs;
  std::vector<double> theory;
  std::optional<std::uint64_t> theory_diverged;
  with_precision(precision, [&](auto zero) {
    using Real = decltype(zero);
    const auto curve = loss_curve<Real>(spectrum, make_path<Real>(method), noise, config.steps, config.every);
    for (const auto& l : curve.loss) theory.push_back(to_double(l));
    theory_diverged = curve.diverged_at;
  });
  if (theory_diverged) {
    out.diverged_at = theory_diverged;
    return out;
  }
  const MonteCarloCurve mc = monte_carlo_loss(spectrum, make_path<double>(method), noise, config);
  out.diverged_at = mc.diverged_at;
  out.step = mc.step;
  out.mean = mc.mean;
  out.std_error = mc.std_error;
  out.largest_share = mc.largest_share;
  out.theory.assign(theory.begin(), theory.begin() + static_cast<std::ptrdiff_t>(mc.step.size()));
  return out;
}

}  // namespace cesr
