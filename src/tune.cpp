#include "cesr/tune.hpp"

#include "cesr/rate.hpp"
#include "cesr/progress.hpp"
#include "cesr/stop.hpp"

#include <boost/math/tools/minima.hpp>
#include <fmt/format.h>
#include <nlopt.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <type_traits>
#include <vector>

namespace cesr {

std::string_view to_string(Objective o) {
  return o == Objective::Rate ? "rate" : o == Objective::Steps ? "steps" : "final";
}

Objective parse_objective(std::string_view name) {
  if (name == "rate") return Objective::Rate;
  if (name == "steps") return Objective::Steps;
  if (name == "final") return Objective::Final;
  throw FieldError("objective", fmt::format("objective: unknown objective '{}' (expected rate, steps or final)", name));
}

std::string_view to_string(SearchMode m) { return m == SearchMode::Fast ? "fast" : "global"; }

SearchMode parse_search_mode(std::string_view name) {
  if (name == "fast") return SearchMode::Fast;
  if (name == "global") return SearchMode::Global;
  throw FieldError("search_mode",
                   fmt::format("search_mode: unknown search mode '{}' (expected fast or global)", name));
}

void Target::validate(double initial_loss) const {
  if (!std::isfinite(eps) || !(eps > 0))
    throw std::invalid_argument(fmt::format("--target must be a finite number > 0, got {}", eps));
  if (relative && !(eps < 1))
    throw std::invalid_argument(fmt::format("--target {} with --relative must be < 1 (L_0 already meets it)", eps));
  if (!relative && !(eps < initial_loss))
    throw std::invalid_argument(
        fmt::format("--target {} is not below the initial loss L_0 = {:.6g} (use --relative for a fraction of L_0)",
                    eps, initial_loss));
  if (max_steps < 1) throw std::invalid_argument("--max-steps must be >= 1");
}

std::optional<std::uint64_t> asymptotic_steps(double rho, double gap, double initial_loss, const Target& target) {
  if (!(rho < 1) || !(gap > 0)) return std::nullopt;
  const double log_ratio = target.relative ? -std::log(target.eps) : std::log(initial_loss / target.eps);
  if (!(log_ratio > 0)) return std::uint64_t{0};
  // -ln rho = -log1p(-gap) without cancellation when the gap is tiny.
  const double rate = -std::log1p(-gap);
  const double t = std::ceil(log_ratio / rate);
  if (!(t < 1.8e19)) return std::nullopt;
  return static_cast<std::uint64_t>(t);
}

double fractional_steps(const Spectrum& spectrum, const MethodPath<double>& method, const NoiseModel& noise,
                        const Target& target, std::uint64_t cap) {
  constexpr double lost = std::numeric_limits<double>::infinity();
  constexpr std::uint64_t window = 4096;  // steps between progress checks
  Dynamics<double> dyn(spectrum, method, noise);
  const double goal = target.relative ? target.eps * dyn.loss() : target.eps;
  double previous = dyn.loss();
  if (previous <= goal) return 0;
  // The additive model's loss floor: a goal at or below it is never reached.
  if (noise.additive() && method.constant_from && noise.batch_schedule.constant() &&
      !(loss_floor(spectrum, method.coefficients(*method.constant_from), noise) < goal))
    return lost;
  cap = std::min(cap, target.max_steps);
  // Steps needed at the average decrease since `mark` (robust to the
  // oscillation of momentum methods, unlike a one-step decrease).
  double mark_loss = previous;
  std::uint64_t mark_t = 0;
  const auto projected = [&](double now) {
    const double per_step = std::log(mark_loss / now) / static_cast<double>(dyn.time() - mark_t);
    if (!(per_step > 0)) return lost;
    return static_cast<double>(dyn.time()) + std::log(now / goal) / per_step;
  };
  while (dyn.time() < cap) {
    dyn.step();
    if (dyn.diverged()) return lost;
    const double now = dyn.loss();
    if (now <= goal) {
      // Interpolate ln L linearly between t-1 and t; the result lies in (t-1, t].
      const double frac = std::log(previous / goal) / std::log(previous / now);
      return static_cast<double>(dyn.time() - 1) + std::clamp(frac, 0.0, 1.0);
    }
    previous = now;
    if (dyn.time() % window == 0) {
      // A run that, at its recent pace, cannot reach the goal within max_steps
      // (a noise floor above the target, or a crawl) stops here.
      if (dyn.time() >= 4 * window) {
        const double t = projected(now);
        if (!(t <= static_cast<double>(target.max_steps))) return t;
      }
      mark_loss = now;
      mark_t = dyn.time();
    }
  }
  // Not reached within the cap: extrapolate at the recent average pace.
  if (dyn.time() == mark_t) return static_cast<double>(dyn.time()) + 1;
  return projected(dyn.loss());
}

namespace {

// A search box in transformed coordinates and the map back to a method.
struct Space {
  std::vector<double> lo, hi;
  std::vector<int> points;  // coarse grid points per axis
  // Per axis: the upper edge is a constraint the method is advised to keep
  // (AccSGD's xi <= sqrt(kappa_a)), where optima commonly sit, rather than
  // the end of a range that an optimum may leave.
  std::vector<bool> hi_is_constraint;
  std::vector<SearchAxis> report;
  std::function<MethodSpec(const std::vector<double>&)> decode;
  // True when the mean iteration already diverges (the second moment does too),
  // so the point is skipped without computing a rate.
  std::function<bool(const MethodSpec&)> surely_unstable = [](const MethodSpec&) { return false; };
  std::size_t dim() const { return lo.size(); }
};

// Coarse grid sizes by dimension: dense enough that the grid always puts a
// point inside the stable, near-optimal band, which the local search refines.
constexpr int grid_1d = 40, grid_2d = 16, grid_3d_main = 10, grid_3d_root = 6, grid_more = 6;

// The search space of a registry row, from the Search of each hyperparameter
// (docs/tune.md): hyperparameters fixed by the user or with Search::None are
// held; the others get an axis in their coordinate.
Space make_space(const Spectrum& s, const MethodInfo& row, const NoiseModel& noise, const TuneOptions& o) {
  const double L = s.lambda_max(), mu = s.lambda_min(), tr = s.trace();
  const double K = std::max(noise.kurtosis, 1.0);
  const double B = static_cast<double>(noise.batch);
  if (row.from_file)
    throw FieldError("method", fmt::format("method: {} cannot be tuned (its (P, q, r, o) has no hyperparameters)",
                                           row.name));
  MethodSpec base;
  base.name = std::string(row.name);
  base.average = o.average;
  base.lr_schedule = o.lr_schedule;
  base.momentum_schedule = o.momentum_schedule;
  for (const auto& [field, v] : o.fixed) {
    const Hyperparameter* h = row.find(field);
    if (!h) throw FieldError(field, fmt::format("{} {} does not apply to method {}", field, v, row.name));
    h->check(v);
    base.set(field, v);
  }
  for (const auto& [field, box] : o.boxes) {
    const Hyperparameter* h = row.find(field);
    if (!h || h->search == Search::None)
      throw FieldError("search", fmt::format("search: method {} does not tune {}", row.name, field));
    if (o.fixed.count(field)) throw FieldError("search", fmt::format("search: {} is held fixed", field));
    if (!(std::isfinite(box.lo) && std::isfinite(box.hi) && box.lo < box.hi))
      throw FieldError("search", fmt::format("search: {} box [{}, {}] must have finite lo < hi", field, box.lo, box.hi));
    try {
      h->check(box.lo);
      h->check(box.hi);
    } catch (const FieldError& e) {
      throw FieldError("search", fmt::format("search: {} box [{}, {}]: {}", field, box.lo, box.hi, e.what()));
    }
  }
  // Step sizes that matter lie between a small fraction of the noise-limited
  // step B / (K tr H) (or 1/L when that is smaller) and the deterministic limit.
  const double step_floor = 1e-2 * std::min(1.0 / L, B / (K * tr));
  // 1 - beta down to a twentieth of the deterministic optimum 2/sqrt(kappa).
  double log_damping_floor = std::log(0.1 / std::sqrt(L / mu));
  // Under a budget of T steps the best momentum can average the noise over the
  // whole run: let 1 - beta go down to 1/T (measured: heavy ball at B = 1,
  // T = 1e5 on powerlaw:d=100,alpha=1.5 with noise wants beta = 0.99987).
  if (o.objective == Objective::Final && o.horizon > 0)
    log_damping_floor = std::min(log_damping_floor, -std::log(static_cast<double>(o.horizon)));
  // kappa_a up to ten times the statistical condition number K tr(H) / mu.
  const double log_condition_hi = std::log(10 * K * tr / mu);

  const auto free = [&](const Hyperparameter& h) {
    if (h.name == "momentum" && !o.momentum_schedule.constant()) return false;  // the schedule holds it
    return h.search != Search::None && !base.values.count(h.name);
  };
  const Hyperparameter* damping_axis = nullptr;
  for (const auto& h : row.hyperparameters)
    if (free(h) && h.search == Search::Damping) damping_axis = &h;
  int n_free = 0;
  bool has_root = false;
  for (const auto& h : row.hyperparameters)
    if (free(h)) ++n_free, has_root |= h.search == Search::RootOfKappa;

  Space sp;
  // Axis decoders run in declaration order of this list: all values first,
  // then the step size (which may be relative to 1 - momentum), then xi
  // (relative to kappa_a).
  struct Axis {
    const Hyperparameter* h;
    int index;
    int stage;
    std::function<void(MethodSpec&, double)> set;
  };
  std::vector<Axis> axes;
  const auto add = [&](const Hyperparameter& h, double lo, double hi, int stage, std::string coordinate, double box_lo,
                       double box_hi, std::function<void(MethodSpec&, double)> set) {
    const int index = static_cast<int>(sp.lo.size());
    sp.lo.push_back(lo);
    sp.hi.push_back(hi);
    int pts = n_free == 1 ? grid_1d : n_free == 2 ? grid_2d : n_free == 3 ? grid_3d_main : grid_more;
    if (n_free == 3 && has_root && h.search == Search::RootOfKappa) pts = grid_3d_root;
    sp.points.push_back(pts);
    sp.hi_is_constraint.push_back(false);
    sp.report.push_back({std::string(h.name), std::move(coordinate), box_lo, box_hi});
    axes.push_back({&h, index, stage, std::move(set)});
  };
  for (const auto& h : row.hyperparameters) {
    if (!free(h)) continue;
    const std::string name(h.name);
    const auto box = o.boxes.find(name);
    const bool user = box != o.boxes.end();
    switch (h.search) {
      case Search::None: break;
      case Search::StepSize: {
        const bool relative = row.effective_step && !user;
        // Under a schedule lr is a peak, which may exceed a constant step's limit.
        const bool scheduled = !o.lr_schedule.constant();
        const double cap = (h.search_max > 0 && !scheduled ? h.search_max : 4.0) / L;
        const auto set = [name, relative](MethodSpec& m, double x) {
          const double damping = relative && m.get("momentum") ? 1 - *m.get("momentum") : 1;
          m.set(name, std::exp(x) * damping);
        };
        if (user) {
          add(h, std::log(box->second.lo), std::log(box->second.hi), 1, "log " + name, box->second.lo, box->second.hi,
              set);
        } else if (relative && damping_axis) {
          // x = ln(lr / (1 - beta)), the effective step: at small batch the
          // good points lie along x = const.
          add(h, std::log(step_floor), std::log(cap) - log_damping_floor, 1, "log " + name + "/(1 - momentum)",
              step_floor, cap / std::exp(log_damping_floor), set);
        } else if (relative && base.get("momentum")) {
          const double damping = 1 - *base.get("momentum");
          add(h, std::log(step_floor * damping) - std::log(damping), std::log(cap) - std::log(damping), 1,
              "log " + name, step_floor * damping, cap, set);
        } else {
          add(h, std::log(step_floor), std::log(cap), 1, "log " + name, step_floor, cap, set);
        }
        break;
      }
      case Search::Damping: {
        const auto set = [name](MethodSpec& m, double x) { m.set(name, 0.0 - std::expm1(x)); };  // never "-0"
        const double lo = user ? std::log(1 - box->second.hi) : log_damping_floor;
        const double hi = user ? std::log(1 - box->second.lo) : 0.0;
        add(h, lo, hi, 0, "log(1 - " + name + ")", 0.0 - std::expm1(hi), 0.0 - std::expm1(lo), set);
        break;
      }
      case Search::Unit: {
        const double lo = user ? box->second.lo : 0.0, hi = user ? box->second.hi : 1.0;
        add(h, lo, hi, 0, name, lo, hi, [name](MethodSpec& m, double x) { m.set(name, x); });
        break;
      }
      case Search::Condition: {
        // With xi fixed, kappa_a >= max(1, xi^2) keeps 1 <= xi <= sqrt(kappa_a) valid.
        double floor = 1.0;
        for (const auto& g : row.hyperparameters)
          if (g.search == Search::RootOfKappa && base.get(g.name)) floor = std::max(floor, std::pow(*base.get(g.name), 2));
        const double lo = user ? std::log(box->second.lo) : std::log(floor);
        const double hi = user ? std::log(box->second.hi) : std::max(log_condition_hi, std::log(floor) + 1);
        add(h, lo, hi, 0, "log " + name, std::exp(lo), std::exp(hi),
            [name](MethodSpec& m, double x) { m.set(name, std::exp(x)); });
        break;
      }
      case Search::RootOfKappa: {
        if (user) {
          add(h, std::log(box->second.lo), std::log(box->second.hi), 2, "log " + name, box->second.lo, box->second.hi,
              [name](MethodSpec& m, double x) { m.set(name, std::exp(x)); });
        } else {
          // xi = kappa_a^(t/2), t in [0, 1]: 1 <= xi <= sqrt(kappa_a).
          add(h, 0.0, 1.0, 2, name + " = kappa^(t/2), t", 0.0, 1.0, [name](MethodSpec& m, double t) {
            m.set(name, std::pow(m.value("kappa"), t / 2));
          });
          sp.hi_is_constraint.back() = true;
        }
        break;
      }
    }
  }
  sp.decode = [base, axes](const std::vector<double>& x) {
    MethodSpec m = base;
    for (int stage = 0; stage < 3; ++stage)
      for (const auto& a : axes)
        if (a.stage == stage) a.set(m, x[static_cast<std::size_t>(a.index)]);
    return m;
  };
  if (row.mean_diverges && o.lr_schedule.constant() && o.momentum_schedule.constant()) {
    const auto test = row.mean_diverges;
    sp.surely_unstable = [test, L](const MethodSpec& m) { return test(m, L); };
  }
  return sp;
}

// Counts evaluations and remembers the best point seen, whatever the local
// optimiser ends up reporting.
struct Evaluator {
  std::function<double(const MethodSpec&, int&)> value;  // lower is better; +inf: lost
  const Space* space = nullptr;
  int evaluations = 0, rate_evaluations = 0, failures = 0;
  std::vector<double> best_x;
  double best = std::numeric_limits<double>::infinity();
  /// The gap of the last point of the rate objective in double (NaN: none
  /// yet): the next point's rate solve starts from it (contraction_rate_near).
  /// A function of the points evaluated since the last reset, so a search
  /// that is the same sequence of points gives the same values.
  double gap_hint = std::numeric_limits<double>::quiet_NaN();

  double operator()(const std::vector<double>& x) {
    count_work(1);  // the progress of a search counts points, not the time steps behind them
    const WorkScope points_only(nullptr);
    const double f = evaluate(x, [&](const MethodSpec& m, int& rate_evals) { return value(m, rate_evals); });
    if (f < best) {
      best = f;
      best_x = x;
    }
    return f;
  }

  /// The fast search's objective: minus the gap with its gradient in the
  /// search coordinates (`grad` left empty where the point has none). An
  /// unstable point has a finite value >= 0 (minus a negative gap), so the
  /// objective stays smooth across the stability boundary; only stable points
  /// (values < 0) can become the best.
  std::function<double(const std::vector<double>&, const MethodSpec&, int&, std::vector<double>&)> value_grad;

  double with_gradient(const std::vector<double>& x, std::vector<double>& grad) {
    grad.clear();
    const double f =
        evaluate(x, [&](const MethodSpec& m, int& rate_evals) { return value_grad(x, m, rate_evals, grad); });
    if (!std::isfinite(f)) grad.clear();
    if (f < 0 && f < best) {
      best = f;
      best_x = x;
    }
    return f;
  }

 private:
  // One point: +inf where the coordinates decode to an invalid or surely
  // unstable method, or where the rate's root finder gave up (not a candidate).
  template <class Call>
  double evaluate(const std::vector<double>& x, Call&& call) {
    throw_if_stopped();  // each point: a front end may ask a long search to stop
    const MethodSpec m = space->decode(x);
    double f = std::numeric_limits<double>::infinity();
    bool valid = true;
    try {
      m.validate();
    } catch (const std::invalid_argument&) {
      valid = false;
    }
    if (valid && !space->surely_unstable(m)) {
      ++evaluations;
      int rate_evals = 0;
      try {
        f = call(m, rate_evals);
      } catch (const std::runtime_error&) {
        ++failures;
      }
      rate_evaluations += rate_evals;
    }
    return std::isfinite(f) ? f : std::numeric_limits<double>::infinity();
  }
};

// -gap of a method in precision Real; +inf when unstable. In double the solve
// starts from `hint`, which is then set to this point's gap.
template <class Real>
double negative_gap(const Spectrum& spectrum, const MethodSpec& m, const NoiseModel& noise, int& evals,
                    double& hint) {
  Rate<Real> r;
  if constexpr (std::is_same_v<Real, double>) {
    r = contraction_rate_near(spectrum, m, noise, hint);
    hint = r.gap;
  } else {
    r = contraction_rate<Real>(spectrum, m, noise);
  }
  evals = r.evaluations;
  const double gap = to_double(r.gap);
  if (!r.stable || !std::isfinite(gap) || !(gap > 0)) return std::numeric_limits<double>::infinity();
  return -gap;
}

// Nelder-Mead keeps away from +inf; give it a large finite value instead.
constexpr double lost_value = 1e300;

// Whether axis i at x is held by a bound: on it, with the gradient g pushing
// out of the box.
bool pushed_out(const Space& sp, std::size_t i, double x, double g) {
  return (x <= sp.lo[i] && g > 0) || (x >= sp.hi[i] && g < 0);
}

// The objective of Nelder-Mead on the free axes of the search space: the
// held axes keep the values of `full`.
struct SubspaceObjective {
  Evaluator* ev;
  std::vector<double> full;
  std::vector<std::size_t> axes;  // the free axes, in order
};

double nlopt_thunk(unsigned n, const double* x, double*, void* data) {
  auto& sub = *static_cast<SubspaceObjective*>(data);
  std::vector<double> point = sub.full;
  for (unsigned i = 0; i < n; ++i) point[sub.axes[i]] = x[i];
  const double f = (*sub.ev)(point);
  return std::isfinite(f) ? f : lost_value;
}

// Nelder-Mead from x with initial steps `step`, restarted from its own answer
// with halved steps while that still improves (a simplex that collapsed on a
// kink of the objective restarts with a fresh shape). Axes marked in `held`
// keep their value of x (a bound that holds the optimum: the simplex then
// spans the other axes only).
void local_search(Evaluator& ev, const Space& sp, std::vector<double> x, std::vector<double> step, int max_eval,
                  const std::vector<bool>& held = {}) {
  const std::size_t n = sp.dim();
  SubspaceObjective sub{&ev, {}, {}};
  for (std::size_t i = 0; i < n; ++i)
    if (held.empty() || !held[i]) sub.axes.push_back(i);
  const std::size_t m = sub.axes.size();
  if (m == 0) return;
  const auto restrict_to = [&](const std::vector<double>& v) {
    std::vector<double> r(m);
    for (std::size_t i = 0; i < m; ++i) r[i] = v[sub.axes[i]];
    return r;
  };
  // Restart only while the best value overall improves, so that a second start
  // that falls into the basin already found stops after one pass.
  ev(x);
  double current = ev.best;
  for (int restart = 0; restart < 6; ++restart) {
    for (std::size_t i = 0; i < n; ++i) x[i] = std::clamp(x[i], sp.lo[i], sp.hi[i]);
    sub.full = x;
    nlopt::opt opt(nlopt::LN_NELDERMEAD, static_cast<unsigned>(m));
    opt.set_lower_bounds(restrict_to(sp.lo));
    opt.set_upper_bounds(restrict_to(sp.hi));
    opt.set_min_objective(nlopt_thunk, &sub);
    opt.set_initial_step(restrict_to(step));
    opt.set_xtol_abs(1e-6);
    opt.set_ftol_rel(1e-9);
    opt.set_maxeval(max_eval);
    double f = current;
    std::vector<double> y = restrict_to(x);
    try {
      opt.optimize(y, f);
    } catch (const Stopped&) {
      throw;  // a stop request (NLopt rethrows what the objective threw)
    } catch (const std::exception&) {
      // Round-off or a stalled simplex: the evaluator still holds the best point.
    }
    x = ev.best_x;
    const double improved = current - ev.best;
    current = ev.best;
    if (!(improved > 1e-8 * std::abs(current))) break;
    for (auto& s : step) s /= 2;
  }
}

struct Sample {
  double f;
  std::vector<double> x;
};

// The cell centres of a grid of points[i] cells of width cell[i] along each
// axis of the box, every one evaluated; the finite ones in grid order.
std::vector<Sample> grid_samples(Evaluator& ev, const Space& sp, const std::vector<int>& points,
                                 const std::vector<double>& cell) {
  const std::size_t n = points.size();
  std::vector<Sample> samples;
  std::vector<int> idx(n, 0);
  for (;;) {
    std::vector<double> x(n);
    for (std::size_t i = 0; i < n; ++i) x[i] = sp.lo[i] + (idx[i] + 0.5) * cell[i];
    const double f = ev(x);
    if (std::isfinite(f)) samples.push_back({f, x});
    std::size_t i = 0;
    while (i < n && ++idx[i] == points[i]) idx[i++] = 0;
    if (i == n) break;
  }
  return samples;
}

void search(Evaluator& ev, const Space& sp) {
  const std::size_t n = sp.dim();
  if (n == 0) {
    ev({});
    return;
  }
  // Coarse grid (cell centres), all points evaluated.
  std::vector<double> spacing(n);
  for (std::size_t i = 0; i < n; ++i) spacing[i] = (sp.hi[i] - sp.lo[i]) / sp.points[i];
  std::vector<Sample> samples = grid_samples(ev, sp, sp.points, spacing);
  if (samples.empty()) return;  // nothing stable anywhere in the box
  std::sort(samples.begin(), samples.end(), [](const Sample& a, const Sample& b) { return a.f < b.f; });

  if (n == 1) {
    // Brent's minimiser (golden section where parabolas fail, so a kink at the
    // optimum is fine) on the two cells around the best grid point.
    const double centre = samples.front().x[0];
    const double lo = std::max(sp.lo[0], centre - spacing[0]), hi = std::min(sp.hi[0], centre + spacing[0]);
    auto f = [&](double t) { return ev({t}); };
    boost::uintmax_t iterations = 200;
    boost::math::tools::brent_find_minima(f, lo, hi, 40, iterations);
    return;
  }
  // Local refinement from the best grid point and from the best one that is
  // not its neighbour (a second basin along the stability boundary).
  std::vector<std::vector<double>> starts{samples.front().x};
  for (const auto& s : samples) {
    bool far = false;
    for (std::size_t i = 0; i < n; ++i) far |= std::abs(s.x[i] - starts[0][i]) > 1.5 * spacing[i];
    if (far) {
      // Worth a second local search only if it is nearly as good (the values
      // are negative gaps or step counts; both compare by magnitude).
      const double a = samples.front().f, b = s.f;
      if ((a < 0 && b < 0.8 * a) || (a > 0 && b < 1.25 * a)) starts.push_back(s.x);
      break;
    }
  }
  const int max_eval = 150 * static_cast<int>(n);
  for (const auto& start : starts) local_search(ev, sp, start, spacing, max_eval);
}


double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// Quasi-Newton refinement of Evaluator::with_gradient from x: BFGS on the
// inverse Hessian, steps projected onto the box, Armijo backtracking (with a
// quadratic model of the step) that also retreats from +inf (points whose mean
// iteration diverges, overflow). `scale` is the size of a step that matters on
// each axis (the first step is at most that long). A point without an exact
// gradient (rho = rho(D) with no root of g = 1 above it, the generic path)
// gets central differences of the value instead. Stops when an iteration
// improves the value by less than 1e-13 relative, or the line search fails
// (a kink: the best point evaluated stands).
// Returns where it stopped, its value (+inf if the start was lost) and
// whether it converged (rather than stalled: a failed line search or the
// iteration cap).
struct QuasiNewtonEnd {
  double f;
  std::vector<double> x;
  bool converged;
  std::vector<double> g;  // the gradient at x (empty where there is none)
};
QuasiNewtonEnd quasi_newton(Evaluator& ev, const Space& sp, std::vector<double> x,
                                                    const std::vector<double>& scale, int max_iterations) {
  const std::size_t n = sp.dim();
  const auto clamp = [&](std::vector<double> p) {
    for (std::size_t i = 0; i < n; ++i) p[i] = std::clamp(p[i], sp.lo[i], sp.hi[i]);
    return p;
  };
  const auto eval = [&](const std::vector<double>& p, std::vector<double>& g) {
    const double f = ev.with_gradient(p, g);
    if (!std::isfinite(f) || g.size() == n) return f;
    g.assign(n, 0.0);
    std::vector<double> unused;
    for (std::size_t j = 0; j < n; ++j) {
      const double h = 1e-6 * scale[j];
      std::vector<double> pp = p, pm = p;
      pp[j] = std::min(p[j] + h, sp.hi[j]);
      pm[j] = std::max(p[j] - h, sp.lo[j]);
      const double fp = pp[j] == p[j] ? f : ev.with_gradient(pp, unused);
      const double fm = pm[j] == p[j] ? f : ev.with_gradient(pm, unused);
      if (std::isfinite(fp) && std::isfinite(fm) && pp[j] > pm[j]) g[j] = (fp - fm) / (pp[j] - pm[j]);
    }
    return f;
  };
  x = clamp(std::move(x));
  std::vector<double> g;
  double f = eval(x, g);
  if (!std::isfinite(f)) return {f, x, false, {}};
  // Inverse Hessian, row-major n x n; starts diagonal in the units of `scale`.
  std::vector<double> H(n * n, 0.0);
  const auto reset = [&] {
    std::fill(H.begin(), H.end(), 0.0);
    double gs = 0;
    for (std::size_t i = 0; i < n; ++i) gs = std::max(gs, std::abs(g[i]) * scale[i]);
    for (std::size_t i = 0; i < n; ++i) H[i * n + i] = gs > 0 ? scale[i] * scale[i] / gs : 0.0;
  };
  reset();
  bool first = true;
  // H <- (I - r s y^T) H (I - r y s^T) + r s s^T, r = 1 / s.y, when s.y > 0.
  const auto update = [&](const std::vector<double>& s, const std::vector<double>& y) {
    const double sy = dot(s, y);
    if (!(sy > 1e-14 * std::sqrt(dot(s, s) * dot(y, y)))) return false;
    if (first) {
      // Nocedal & Wright (6.20): the first update starts from (s.y / y.y) I.
      std::fill(H.begin(), H.end(), 0.0);
      for (std::size_t i = 0; i < n; ++i) H[i * n + i] = sy / dot(y, y);
      first = false;
    }
    const double r = 1 / sy;
    std::vector<double> Hy(n, 0.0);
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t j = 0; j < n; ++j) Hy[i] += H[i * n + j] * y[j];
    const double yHy = dot(y, Hy);
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t j = 0; j < n; ++j)
        H[i * n + j] += (1 + r * yHy) * r * s[i] * s[j] - r * (Hy[i] * s[j] + s[i] * Hy[j]);
    return true;
  };
  const auto direction = [&] {
    std::vector<double> p(n, 0.0);
    // Axes held by a bound: on it, with the gradient pushing out. The step
    // is the quasi-Newton one of the others (their block of H, so that the
    // held gradient does not steer them through H's coupling).
    std::vector<bool> held(n);
    for (std::size_t i = 0; i < n; ++i) held[i] = pushed_out(sp, i, x[i], g[i]);
    for (int attempt = 0; attempt < 2; ++attempt) {
      for (std::size_t i = 0; i < n; ++i) {
        p[i] = 0;
        if (held[i]) continue;
        for (std::size_t j = 0; j < n; ++j)
          if (!held[j]) p[i] -= H[i * n + j] * g[j];
        // At a bound, a step outwards is dropped (projection).
        if ((x[i] <= sp.lo[i] && p[i] < 0) || (x[i] >= sp.hi[i] && p[i] > 0)) p[i] = 0;
      }
      if (dot(p, g) < 0) break;
      reset();  // not a descent direction: back to the scaled gradient
      first = true;
    }
    return p;
  };
  // Stationary to the search's resolution, where a line search fails for
  // the rounding noise of the gap (1e-13 relative, 1e-11 next to a pole)
  // rather than at a kink: the projected gradient (a component at a bound
  // that points out of the box does not count) changes f by at most 1e-6 of
  // itself over a `scale` step on every axis -- a smooth optimum then has
  // ~1e-12 relative left to gain -- or by at most 1e-4 while the
  // quasi-Newton step `slope` promises less than 1e-10. At a kink the
  // gradient of the side the point is on stays large (AccSGD at d = 1e6,
  // B = 4096: 3e-2 of f over a `scale` step) while the inverse Hessian
  // collapses, so `slope` alone would not tell the two apart.
  const auto stationary = [&](const std::vector<double>& at, const std::vector<double>& grad, double slope) {
    double worst = 0;
    for (std::size_t i = 0; i < n; ++i) {
      if (pushed_out(sp, i, at[i], grad[i])) continue;
      worst = std::max(worst, std::abs(grad[i]) * scale[i]);
    }
    const double size = std::abs(f);
    return worst <= 1e-6 * size || (worst <= 1e-4 * size && std::abs(slope) <= 1e-10 * size);
  };
  double last_t = 1;
  for (int iter = 0; iter < max_iterations; ++iter) {
    std::vector<double> p = direction();
    const double slope = dot(p, g);
    if (!(slope < 0)) break;
    // No step longer than a few `scale` units (the objective has cliffs).
    double longest = 0;  // of p, in `scale` units
    for (std::size_t i = 0; i < n; ++i) longest = std::max(longest, std::abs(p[i]) / scale[i]);
    const auto first_step = [&] { return longest > 4 ? 4 / longest : 1.0; };
    // Along a cliff the accepted steps stay short for a while: start the next
    // line search from four times the last one (at most 1).
    double t = std::min(first_step(), 4 * last_t);
    std::vector<double> xn, gn;
    double fn = 0;
    bool accepted = false;
    for (int ls = 0; ls < 40; ++ls) {
      xn = clamp([&] {
        std::vector<double> q(n);
        for (std::size_t i = 0; i < n; ++i) q[i] = x[i] + t * p[i];
        return q;
      }());
      if (xn == x) break;
      fn = eval(xn, gn);
      std::vector<double> step(n);
      for (std::size_t i = 0; i < n; ++i) step[i] = xn[i] - x[i];
      if (std::isfinite(fn) && fn <= f + 1e-4 * dot(g, step) && gn.size() == n) {
        accepted = true;
        break;
      }
      // Minimiser of the quadratic through f, the slope and fn, kept in [t/10, t/2].
      const double ts = t * slope;
      double next = std::isfinite(fn) ? -ts * t / (2 * (fn - f - ts)) : t / 4;
      if (!(next >= t / 10)) next = t / 10;
      if (!(next <= t / 2)) next = t / 2;
      t = next;
    }
    // Negative curvature along p (the slope at the new point steeper than
    // at the start, where BFGS cannot update: s.y < 0): the step is
    // extended fourfold while the Armijo condition holds and the value
    // keeps falling, up to 4 `scale` units. Without it the iteration
    // repeats the same short step (heavy ball at d = 1e6, B = 8: 100 steps
    // of 2e-4 of a unit from a finish corner).
    if (accepted && dot(gn, p) < slope) {
      const double t_cap = longest > 0 ? 4 / longest : t;
      while (4 * t <= t_cap) {
        std::vector<double> xe(n), ge;
        for (std::size_t i = 0; i < n; ++i) xe[i] = x[i] + 4 * t * p[i];
        xe = clamp(std::move(xe));
        if (xe == xn) break;
        const double fe = eval(xe, ge);
        std::vector<double> step(n);
        for (std::size_t i = 0; i < n; ++i) step[i] = xe[i] - x[i];
        if (!(std::isfinite(fe) && fe < fn && fe <= f + 1e-4 * dot(g, step) && ge.size() == n)) break;
        const bool steeper = dot(ge, p) < dot(gn, p);
        xn = std::move(xe), gn = std::move(ge), fn = fe, t *= 4;
        if (!steeper) break;
      }
    }
    if (!accepted) return {f, x, stationary(x, g, slope), g};
    last_t = t;
    std::vector<double> s(n), y(n);
    for (std::size_t i = 0; i < n; ++i) s[i] = xn[i] - x[i], y[i] = gn[i] - g[i];
    const double improvement = f - fn;
    x = xn;
    f = fn;
    g = gn;
    update(s, y);
    // Converged: a step of natural length gains nothing; a short one that
    // gains nothing is a stall (a kink).
    if (!(improvement > 1e-13 * std::abs(f))) return {f, x, t >= 0.5 || stationary(x, g, dot(direction(), g)), g};
  }
  return {f, x, false, g};
}

// Quasi-Newton, then, where it stalled (a kink of the rate: the maximum of
// two smooth branches, which no gradient method crosses), Nelder-Mead from
// its answer with steps of `scale` / 4.
QuasiNewtonEnd refine(Evaluator& ev, const Space& sp, const std::vector<double>& x0,
                      const std::vector<double>& scale, int max_iterations) {
  QuasiNewtonEnd end = quasi_newton(ev, sp, x0, scale, max_iterations);
  if (!end.converged && std::isfinite(end.f) && max_iterations > 8) {
    const std::size_t n = sp.dim();
    std::vector<double> step(scale);
    for (auto& v : step) v /= 4;
    // Axes held by a bound: the point is on it and the gradient pushes out
    // by at least 1e-3 of f over a `scale` step (AccSGD's xi = sqrt(kappa_a)
    // at B >= 1024 on d = 1e6: 0.8). The polish then runs on the other axes
    // (a simplex of n instead of n + 1 points), and on all of them again
    // only if the bound no longer holds at its answer.
    const auto held_by_bounds = [&](const std::vector<double>& x, const std::vector<double>& g, double f) {
      std::vector<bool> held(n, false);
      for (std::size_t i = 0; i < n && g.size() == n; ++i)
        held[i] = pushed_out(sp, i, x[i], g[i]) && std::abs(g[i]) * scale[i] >= 1e-3 * std::abs(f);
      return held;
    };
    const std::vector<bool> held = held_by_bounds(end.x, end.g, end.f);
    const auto count_held = std::count(held.begin(), held.end(), true);
    if (count_held == 0) {
      local_search(ev, sp, end.x, step, 40 * static_cast<int>(n));
    } else if (static_cast<std::size_t>(count_held) < n) {
      local_search(ev, sp, end.x, step, 40 * static_cast<int>(n), held);
      std::vector<double> g_end;
      const std::vector<double> x_end = ev.best_x;
      const double f_end = ev.with_gradient(x_end, g_end);
      if (held_by_bounds(x_end, g_end, f_end) != held) local_search(ev, sp, ev.best_x, step, 40 * static_cast<int>(n));
    } else {
      local_search(ev, sp, ev.best_x, step, 40 * static_cast<int>(n));
    }
  }
  return end;
}

// Coarse grid sizes of the fast search without a start (it only has to land
// in the basin that the quasi-Newton refinement climbs).
constexpr int fast_grid_1d = 12, fast_grid_2d = 8, fast_grid_3d_main = 6, fast_grid_3d_root = 4;

// The fast search's answer must not depend on the route to it: a lone tune
// starts from the coarse grid, a frontier row from the previous batch's
// optimum, and both should print the same digits (a frontier row is `cesr
// tune` at its batch). So the search ends at a corner of the cell of a fixed
// lattice (1/64 of a coarse cell on each axis) that holds the best point --
// the nearest stable corner, in order of distance -- refined again from there
// with the record cleared. Two routes into the same basin then give the same
// point unless their optima straddle a lattice midplane (odds of about the
// routes' difference, ~1e-12 of the box, over the lattice step, ~2e-3 of it).
void route_free_finish(Evaluator& ev, const Space& sp, const std::vector<double>& cell, int max_iterations) {
  const std::size_t n = sp.dim();
  if (n == 0 || ev.best_x.size() != n || !std::isfinite(ev.best)) return;
  const double found = ev.best;
  const std::vector<double> found_x = ev.best_x;
  std::vector<double> below(n), above(n), scale(n);
  for (std::size_t i = 0; i < n; ++i) {
    const double step = cell[i] / 64;
    const double k = std::floor((found_x[i] - sp.lo[i]) / step);
    below[i] = std::clamp(sp.lo[i] + k * step, sp.lo[i], sp.hi[i]);
    above[i] = std::clamp(sp.lo[i] + (k + 1) * step, sp.lo[i], sp.hi[i]);
    scale[i] = cell[i] / 8;
  }
  // The 2^n corners, nearest first (in lattice steps; ties by corner index).
  std::vector<std::pair<double, unsigned>> corners;
  for (unsigned c = 0; c < (1u << n); ++c) {
    double dist = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const double v = (c >> i) & 1 ? above[i] : below[i];
      dist += std::pow((v - found_x[i]) / (cell[i] / 64), 2);
    }
    corners.emplace_back(dist, c);
  }
  std::sort(corners.begin(), corners.end());
  ev.best = std::numeric_limits<double>::infinity();
  ev.best_x.clear();
  // The rate solves start cold again: from here on every value depends only
  // on the corner and the points after it, whatever the route before.
  ev.gap_hint = std::numeric_limits<double>::quiet_NaN();
  for (const auto& [dist, c] : corners) {
    std::vector<double> x(n);
    for (std::size_t i = 0; i < n; ++i) x[i] = (c >> i) & 1 ? above[i] : below[i];
    std::vector<double> unused;
    if (!(ev.with_gradient(x, unused) < 0)) continue;  // unstable (or lost): the next corner
    refine(ev, sp, x, scale, max_iterations);
    return;
  }
  ev.best = found;  // no stable corner: the point found stands
  ev.best_x = found_x;
}

// The fast search (SearchMode::Fast) on ev.with_gradient, with ev.value for
// the global fallback: from `start` (clamped into the box) or from the best
// points of a coarse grid, quasi-Newton. A start that lost the optimum -- no
// stable point found, the answer on the box edge, or more than two global
// grid cells away from the start -- is followed by the global search.
// Returns whether the global search ran.
bool fast_search(Evaluator& ev, const Space& sp, const std::vector<double>& start) {
  const std::size_t n = sp.dim();
  if (n == 0) {
    ev({});
    return false;
  }
  if (n == 1) {
    // One hyperparameter (SGD's lr): the global search's 40-point grid and
    // Brent take ~70 points, fewer than the quasi-Newton climb with its
    // kink polish and the finish below (~210 at d = 1e5), and do not depend
    // on a start, so a frontier row is the lone tune.
    search(ev, sp);
    return false;
  }
  std::vector<double> spacing(n);
  for (std::size_t i = 0; i < n; ++i) spacing[i] = (sp.hi[i] - sp.lo[i]) / sp.points[i];
  // The coarse grid of the search without a start (its cells also measure
  // how far a continuation may move before it counts as lost).
  std::vector<int> points(n);
  const bool has_root_axis = n == 3 && sp.points[2] < sp.points[0];
  for (std::size_t i = 0; i < n; ++i)
    points[i] = n == 1 ? fast_grid_1d : n == 2 ? fast_grid_2d : (has_root_axis && i == 2) ? fast_grid_3d_root
                                                                                           : fast_grid_3d_main;
  std::vector<double> cell(n);
  for (std::size_t i = 0; i < n; ++i) cell[i] = (sp.hi[i] - sp.lo[i]) / points[i];
  constexpr int max_iterations = 100;
  if (start.size() == n) {
    std::vector<double> x0(n);
    for (std::size_t i = 0; i < n; ++i) x0[i] = std::clamp(start[i], sp.lo[i], sp.hi[i]);
    std::vector<double> scale(n);
    for (std::size_t i = 0; i < n; ++i) scale[i] = spacing[i] / 4;
    refine(ev, sp, x0, scale, max_iterations);
    // Lost: no stable point; an optimum that drifted onto an edge of the box
    // from inside (an optimum held by an edge the start was already on, or
    // by a constraint edge such as AccSGD's xi = sqrt(kappa_a), where the
    // optimum moves between batch sizes -- B = 512 inside, 1024 on it at
    // d = 1e6 -- is a constraint, not a loss); or a jump of more than two
    // coarse cells.
    bool lost = ev.best_x.size() != n || !std::isfinite(ev.best);
    for (std::size_t i = 0; !lost && i < n; ++i) {
      const double tol = 1e-6 * (sp.hi[i] - sp.lo[i]);
      const auto on_edge = [&](double v) {
        return v <= sp.lo[i] + tol || (v >= sp.hi[i] - tol && !sp.hi_is_constraint[i]);
      };
      lost |= on_edge(ev.best_x[i]) && !on_edge(x0[i]);
      lost |= std::abs(ev.best_x[i] - x0[i]) > 2 * cell[i];
    }
    if (lost) search(ev, sp);
    route_free_finish(ev, sp, cell, max_iterations);
    return lost;
  }
  // Coarse grid (cell centres).
  std::vector<Sample> samples = grid_samples(ev, sp, points, cell);
  if (samples.empty()) {
    // Nothing stable on the coarse grid: the dense one decides.
    search(ev, sp);
    route_free_finish(ev, sp, cell, max_iterations);
    return true;
  }
  std::stable_sort(samples.begin(), samples.end(), [](const Sample& a, const Sample& b) { return a.f < b.f; });
  std::vector<std::vector<double>> starts{samples.front().x};
  for (const auto& smp : samples) {
    bool far = false;
    for (std::size_t i = 0; i < n; ++i) far |= std::abs(smp.x[i] - starts[0][i]) > 1.5 * cell[i];
    if (far) {
      if (smp.f < 0.8 * samples.front().f) starts.push_back(smp.x);
      break;
    }
  }
  std::vector<double> scale(n);
  for (std::size_t i = 0; i < n; ++i) scale[i] = cell[i] / 2;
  refine(ev, sp, starts[0], scale, max_iterations);
  if (starts.size() > 1) {
    // The second basin is followed to the end only if a few iterations bring
    // it within 10% of the best gap so far.
    const QuasiNewtonEnd second = quasi_newton(ev, sp, starts[1], scale, 6);
    if (second.f < 0.9 * ev.best) refine(ev, sp, second.x, scale, max_iterations);
  }
  route_free_finish(ev, sp, cell, max_iterations);
  return false;
}
}  // namespace

namespace {

// The steps objective on `ev`: the fractional step count, each run capped at
// twice the best count so far (+16), so poor points are cheap.
// Whether the steps objective of this point goes through the spectral path.
bool spectral_steps(const Spectrum& spectrum, const MethodSpec& m, const NoiseModel& noise, const Target& target) {
  return target.horizon != HorizonMode::Stepping && !horizon_unsupported(spectrum, m, noise);
}

void use_steps_objective(Evaluator& ev, const Spectrum& spectrum, const NoiseModel& noise, const Target& target) {
  ev.value = [&ev, &spectrum, &noise, &target](const MethodSpec& m, int&) {
    if (spectral_steps(spectrum, m, noise, target)) {
      // Uncapped and O(d^2) whatever the count; where it cannot certify (or
      // the method does not contract), time stepping decides as before.
      HorizonReport rep;
      if (auto v = horizon_fractional_steps(spectrum, m, noise, target.eps, target.relative, target.horizon_rtol, rep))
        return *v;
    }
    const double cap = std::isfinite(ev.best) ? 2 * ev.best + 16 : 1e300;
    const auto cap_steps = static_cast<std::uint64_t>(std::min(cap, 1.8e19));
    return fractional_steps(spectrum, make_path<double>(m), noise, target, cap_steps);
  };
}

// The step count a tune reports: the exact first step with L_t <= goal, as
// `cesr steps` finds it (the certified spectral path where it applies, else
// time stepping in automatic precision: double alone drifts over long runs);
// empty when the target is not reached within max_steps or the method diverges.
std::optional<std::uint64_t> exact_steps(const Spectrum& spectrum, const MethodSpec& m, const NoiseModel& noise,
                                         const Target& target) {
  HorizonReport report;
  bool fell_back = false;
  // The search treats exact as auto (time stepping where the path refuses); so does its count.
  const HorizonMode mode = target.horizon == HorizonMode::Stepping ? HorizonMode::Stepping : HorizonMode::Auto;
  const std::optional<AutoSteps> res =
      steps_any_horizon(spectrum, m, noise, target.eps, target.relative, mode, target.horizon_rtol,
                        target.max_steps, std::nullopt, default_horizon_rtol, report, fell_back);
  if (!res || res->diverged_at) return std::nullopt;
  return res->steps;
}

// Steps objective for a method without a contraction rate: the coarse grid and
// the local refinement of search() on the step count itself, each run capped
// at twice the best count so far.
TuneResult tune_steps_only(const Spectrum& spectrum, const Space& space, const NoiseModel& noise,
                           const TuneOptions& options) {
  TuneResult out;
  out.box = space.report;
  out.has_rate = false;
  Evaluator ev;
  ev.space = &space;
  use_steps_objective(ev, spectrum, noise, options.target);
  search(ev, space);
  out.evaluations = ev.evaluations;
  if (ev.best_x.size() != space.dim() || !(ev.best <= static_cast<double>(options.target.max_steps))) {
    out.method = space.decode(ev.best_x.size() == space.dim() ? ev.best_x : space.lo);
    return out;
  }
  out.method = space.decode(ev.best_x);
  out.method.validate();
  out.steps = exact_steps(spectrum, out.method, noise, options.target);
  out.stable = out.steps.has_value();
  return out;
}

// Final objective: minimise ln L_T, the exact loss after T steps (double time
// stepping; a run that diverges loses), over the row's search space: the
// coarse grid and the local refinement of search().
TuneResult tune_final(const Spectrum& spectrum, const Space& space, const NoiseModel& noise,
                      const TuneOptions& options) {
  TuneResult out;
  out.box = space.report;
  out.has_rate = false;
  const auto final_loss = [&](const MethodSpec& m) {
    Dynamics<double> dyn(spectrum, make_path<double>(m), noise);
    for (std::uint64_t t = 0; t < options.horizon; ++t) {
      dyn.step();
      if (dyn.diverged()) return std::numeric_limits<double>::infinity();
    }
    return dyn.loss();
  };
  Evaluator ev;
  ev.space = &space;
  ev.value = [&](const MethodSpec& m, int&) {
    const double l = final_loss(m);
    return l > 0 ? std::log(l) : -std::numeric_limits<double>::max();
  };
  search(ev, space);
  out.evaluations = ev.evaluations;
  out.method = space.decode(ev.best_x.size() == space.dim() ? ev.best_x : space.lo);
  if (ev.best_x.size() == space.dim() && std::isfinite(ev.best)) {
    out.method.validate();
    out.final_loss = final_loss(out.method);
    out.stable = true;
  }
  return out;
}

}  // namespace

TuneResult tune(const Spectrum& spectrum, std::string_view method, const NoiseModel& noise, const TuneOptions& options) {
  noise.validate();
  const MethodInfo& row = method_info(method);
  // The search compares gaps (about 1/kappa or less), step counts (about
  // kappa or more) and losses in double: beyond kappa ~ 1e308 they leave its
  // range, and the answer would be a wrong verdict ("no stable
  // hyperparameters") or lr = 0: refused.
  if (!(spectrum.lambda_max() / spectrum.lambda_min() <= max_tunable_kappa))
    throw FieldError("spectrum", fmt::format("spectrum: kappa = lambda_max/lambda_min = {:.3g}/{:.3g} exceeds the "
                                             "double range, beyond what the tuner resolves",
                                             spectrum.lambda_max(), spectrum.lambda_min()));
  if (options.objective == Objective::Final) {
    if (options.horizon < 1) throw FieldError("steps", "steps: the final objective needs a horizon T >= 1");
    TuneOptions o = options;
    o.lr_schedule = options.lr_schedule.resolve(options.horizon);
    o.momentum_schedule = options.momentum_schedule.resolve(options.horizon);
    NoiseModel n = noise;
    n.batch_schedule = noise.batch_schedule.resolve(options.horizon);
    return tune_final(spectrum, make_space(spectrum, row, n, o), n, o);
  }
  options.target.validate(spectrum.initial_loss());
  const Space space = make_space(spectrum, row, noise, options);
  MethodSpec probe;
  probe.name = std::string(row.name);
  probe.average = options.average;
  probe.lr_schedule = options.lr_schedule;
  probe.momentum_schedule = options.momentum_schedule;
  const bool has_rate = probe.time() != Time::Varying && noise.batch_schedule.constant();
  if (!has_rate && options.objective == Objective::Rate)
    throw FieldError("objective", fmt::format("objective: {} changes its coefficients (or batch size) with the step, "
                                              "so it has no contraction rate; use the steps objective",
                                              describe(probe)));
  if (!has_rate) return tune_steps_only(spectrum, space, noise, options);
  if (noise.additive() && options.objective == Objective::Steps) {
    // Under additive noise the rate optimum (the noiseless one) is no start
    // for the steps search: its loss floor may lie above the target. Search
    // the steps themselves over the whole box, then report the rate there.
    TuneResult out = tune_steps_only(spectrum, space, noise, options);
    out.has_rate = true;
    const AutoRate r = contraction_rate_auto(spectrum, out.method, noise);
    out.rate_evaluations += r.evaluations;
    out.gap = r.gap;
    out.rho = r.rho;
    out.gap_text = r.gap_text;
    out.gap_precision = r.precision;
    out.stable = out.steps.has_value() && r.stable;
    return out;
  }

  // Rate objective: minimise -gap (unstable points have gap <= 0 and lose).
  // The search runs in double. If double finds no stable point at all (at
  // extreme conditioning, 1 - beta and the gap can fall below what double
  // resolves near critical damping), it is repeated in long double.
  TuneResult out;
  out.box = space.report;
  Evaluator rate_ev;
  std::optional<AutoRate> confirmed;  // the auto-precision rate at the rate optimum
  for (Precision p : {Precision::Double, Precision::Long}) {
    rate_ev = Evaluator{};
    rate_ev.space = &space;
    if (p == Precision::Double)
      rate_ev.value = [&](const MethodSpec& m, int& evals) {
        return negative_gap<double>(spectrum, m, noise, evals, rate_ev.gap_hint);
      };
    else
      rate_ev.value = [&](const MethodSpec& m, int& evals) {
        return negative_gap<long double>(spectrum, m, noise, evals, rate_ev.gap_hint);
      };
    // Under the additive model the rate is rho(D) = max_i rho(A_i)^2 at every
    // point (no root of g = 1, so no gradient), and its optimum is a kink
    // where branches of different directions meet: nothing for the
    // quasi-Newton climb, so the fast search is the global one there.
    const bool fast = options.search_mode == SearchMode::Fast && !noise.additive();
    if (p == Precision::Double && fast) {
      rate_ev.value_grad = [&](const std::vector<double>& x, const MethodSpec& m, int& evals,
                               std::vector<double>& grad) {
        // Central differences of the O(1) map from coordinates to the
        // method's constants (in 50 digits); the gap's sensitivity to those
        // constants comes from the secular equation.
        constexpr double h = 1e-6;
        std::vector<MethodSpec> plus, minus;
        for (std::size_t j = 0; j < x.size(); ++j) {
          std::vector<double> xp = x, xm = x;
          xp[j] += h;
          xm[j] -= h;
          plus.push_back(space.decode(xp));
          minus.push_back(space.decode(xm));
        }
        const GapGradient r = contraction_rate_gradient(spectrum, m, plus, minus, h, noise, rate_ev.gap_hint);
        evals = r.rate.evaluations;
        const double gap = r.rate.gap;
        rate_ev.gap_hint = gap;
        if (!std::isfinite(gap)) return std::numeric_limits<double>::infinity();
        grad.clear();
        for (double v : r.gradient) grad.push_back(-v);
        // Stable points only are candidates (with_gradient keeps the best < 0).
        if (r.rate.stable != (gap > 0)) return std::numeric_limits<double>::infinity();
        return -gap;
      };
      out.global_fallback = fast_search(rate_ev, space, options.start);
    } else {
      search(rate_ev, space);
      out.global_fallback = options.search_mode == SearchMode::Fast;
    }
    out.evaluations += rate_ev.evaluations;
    out.rate_evaluations += rate_ev.rate_evaluations;
    out.search_precision = p;
    if (rate_ev.best_x.size() != space.dim() || !std::isfinite(rate_ev.best)) continue;
    // A double optimum that automatic precision finds unstable (the trap of
    // THEORY.md: a nearly defective block misjudged in double) is searched again.
    if (p == Precision::Double && options.confirm_gap && options.objective == Objective::Rate) {
      try {
        // Started from the search's gap there (the precisions' solves warm).
        confirmed = contraction_rate_auto(spectrum, space.decode(rate_ev.best_x), noise, 1e-10, -rate_ev.best,
                                          RateConfirmation::Bound);
      } catch (const std::runtime_error&) {
        confirmed.reset();  // handled (and reported) with the final confirmation below
      }
      if (confirmed) {
        out.rate_evaluations += confirmed->evaluations;
        if (!confirmed->stable) {
          confirmed.reset();
          continue;
        }
      }
    }
    break;
  }
  if (rate_ev.best_x.size() != space.dim() || !std::isfinite(rate_ev.best)) {
    // No stable point in either precision: report the lower corner of the box
    // (or the last point tried) as the unstable answer.
    out.method = space.decode(rate_ev.best_x.size() == space.dim() ? rate_ev.best_x : space.lo);
    return out;
  }
  std::vector<double> best_x = rate_ev.best_x;
  out.coordinates = best_x;
  bool steps_reached = true;

  if (options.objective == Objective::Steps) {
    // Steps objective: start from the rate optimum (the steps optimum tends to it
    // as the target shrinks) and minimise the fractional step count locally.
    // Runs stop at twice the best count so far, so poor points are cheap.
    Evaluator steps_ev;
    steps_ev.space = &space;
    use_steps_objective(steps_ev, spectrum, noise, options.target);
    const std::size_t n = space.dim();
    if (n == 1) {
      const double spacing = (space.hi[0] - space.lo[0]) / space.points[0];
      steps_ev({best_x[0]});
      auto f = [&](double t) { return steps_ev({t}); };
      boost::uintmax_t iterations = 200;
      boost::math::tools::brent_find_minima(f, std::max(space.lo[0], best_x[0] - 2 * spacing),
                                            std::min(space.hi[0], best_x[0] + 2 * spacing), 40, iterations);
    } else if (n > 1) {
      std::vector<double> step(n);
      for (std::size_t i = 0; i < n; ++i) step[i] = (space.hi[i] - space.lo[i]) / space.points[i];
      local_search(steps_ev, space, best_x, step, 100 * static_cast<int>(n));
    } else {
      steps_ev({});
    }
    // With label noise the loss has a floor that grows with the step size:
    // at and near the rate optimum it can lie above the target while smaller
    // steps reach it, and the step count has its best far from the rate
    // optimum (diabetes, SGD at B = 1024: 41 steps next to it, 33 or fewer at
    // a third of its step size). So the whole box is searched on the step
    // count too (runs capped at twice the best count, so cheap).
    const bool unreached = !(steps_ev.best <= static_cast<double>(options.target.max_steps));
    if (n > 0 && (unreached || noise.label_noise > 0)) search(steps_ev, space);
    out.evaluations += steps_ev.evaluations;
    if (steps_ev.best_x.size() == n && std::isfinite(steps_ev.best)) best_x = steps_ev.best_x;
    steps_reached = steps_ev.best <= static_cast<double>(options.target.max_steps) ||
                    (std::isfinite(steps_ev.best) && steps_ev.best_x.size() == n &&
                     spectral_steps(spectrum, space.decode(steps_ev.best_x), noise, options.target));
  }

  out.method = space.decode(best_x);
  out.method.validate();
  std::optional<AutoRate> final_rate;
  if (options.confirm_gap) {
    const bool moved = options.objective == Objective::Steps;  // the steps optimum is another point
    if (confirmed && !moved) {
      final_rate = confirmed;
    } else {
      try {
        final_rate = contraction_rate_auto(spectrum, out.method, noise);
        out.rate_evaluations += final_rate->evaluations;
      } catch (const std::runtime_error&) {
        // The escalating root finder failed at this point: keep the search's
        // double-precision gap and say so (TuneResult::confirm_failed).
        out.confirm_failed = true;
      }
    }
  }
  if (final_rate) {
    const AutoRate& r = *final_rate;
    out.stable = r.stable;
    out.gap = r.gap;
    out.rho = r.rho;
    out.gap_text = r.gap_text;
    out.gap_precision = r.precision;
  } else {
    // In the search's precision (throws if even that fails here).
    with_precision(out.search_precision == Precision::Long ? Precision::Long : Precision::Double, [&](auto zero) {
      using Real = decltype(zero);
      const Rate<Real> r = contraction_rate<Real>(spectrum, out.method, noise);
      out.rate_evaluations += r.evaluations;
      out.stable = r.stable;
      out.gap = to_double(r.gap);
      out.rho = to_double(r.rho);
      out.gap_text = format_real(r.gap);
      out.gap_precision = precision_of<Real>();
    });
  }
  if (options.objective == Objective::Steps && !steps_reached) {
    out.steps.reset();  // no point reached the target within max_steps
  } else if (options.objective == Objective::Steps || noise.additive()) {
    // (The additive model's loss tends to a floor, not to 0: the rate alone
    // does not tell the steps to a target, or whether it is reached at all.)
    out.steps = exact_steps(spectrum, out.method, noise, options.target);
  } else {
    out.steps = asymptotic_steps(out.rho, out.gap, spectrum.initial_loss(), options.target);
  }
  return out;
}

}  // namespace cesr
