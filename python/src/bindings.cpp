// cesr._cesr: the library's functions for Python (pybind11). Thin on purpose:
// each function converts its arguments, releases the GIL, calls the library
// function that the matching CLI command calls (src/cli/cmd_*.cpp), and
// converts the result to numpy arrays and plain Python types. The classes
// users see (cesr.Spectrum, cesr.Method, the results) are Python, in
// python/cesr/__init__.py.
//
// Errors: the library names fields (cesr::FieldError) and a few messages
// still name CLI flags (--batch, --max-steps, ...); python_message() turns both
// into the Python argument names through one table, and every
// std::invalid_argument becomes a ValueError.
#include "cesr/check.hpp"
#include "cesr/dynamics.hpp"
#include "cesr/error.hpp"
#include "cesr/frontier.hpp"
#include "cesr/horizon.hpp"
#include "cesr/method.hpp"
#include "cesr/parallel.hpp"
#include "cesr/problem.hpp"
#include "cesr/rate.hpp"
#include "cesr/schedule.hpp"
#include "cesr/real.hpp"
#include "cesr/simulate.hpp"
#include "cesr/stop.hpp"
#include "cesr/spectrum.hpp"
#include "cesr/stability.hpp"
#include "cesr/tune.hpp"

#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <future>
#include <thread>
#include <cmath>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace py = pybind11;
using namespace pybind11::literals;

namespace cesr::python {
namespace {

// ---------------------------------------------------------------------------
// Errors: the one table from library fields (and the CLI flags some library
// messages still use, written as fields: --max-steps -> max_steps) to Python
// argument names. A field not listed keeps its name (lr, momentum, batch,
// target, every, runs, ...).
const std::map<std::string, std::string, std::less<>> python_names{
    {"method_file", "method"},  // a custom method's (P, q, r, o) come from cesr.custom(...)
    {"spectrum", "spectrum"},
    {"init", "init"},
    {"data", "X"},  // cesr.problem(X, y)
    {"labels", "y"},
};

std::string python_name(std::string_view field) {
  std::string f(field);
  std::replace(f.begin(), f.end(), '-', '_');
  const auto it = python_names.find(f);
  return it == python_names.end() ? f : it->second;
}

/// The library's message in Python's words: a FieldError's leading field and
/// every "--flag" become the Python argument names.
std::string python_message(const std::exception& e) {
  std::string what = e.what();
  if (const auto* f = dynamic_cast<const FieldError*>(&e); f && what.rfind(f->field, 0) == 0)
    what = python_name(f->field) + what.substr(f->field.size());
  std::string out;
  for (std::size_t i = 0; i < what.size();) {
    const bool at_word_start = i == 0 || !(std::isalnum(static_cast<unsigned char>(what[i - 1])) || what[i - 1] == '-');
    if (at_word_start && what.compare(i, 2, "--") == 0 && i + 2 < what.size() &&
        std::islower(static_cast<unsigned char>(what[i + 2]))) {
      std::size_t j = i + 2;
      while (j < what.size() && (std::isalnum(static_cast<unsigned char>(what[j])) || what[j] == '-')) ++j;
      out += python_name(std::string_view(what).substr(i + 2, j - i - 2));
      i = j;
    } else {
      out += what[i++];
    }
  }
  return out;
}

[[noreturn]] void fail(const std::string& message) { throw py::value_error(message); }

// ---------------------------------------------------------------------------
// Ctrl-C. Python runs signal handlers in the main thread only, between
// bytecodes; a long library call in the main thread would hold KeyboardInterrupt
// back until it returned. run_interruptible runs the call on a helper thread
// while the main thread, the GIL released, waits and looks at pending signals
// every 50 ms; when a handler raises (KeyboardInterrupt), `stop` is set, the
// call is left to finish (those with a hook, such as frontier's per-row
// callback, stop early) and the exception is raised.
struct Stopped : std::exception {
  const char* what() const noexcept override { return "cesr: stopped"; }
};

bool in_main_thread() {
  const py::module_ threading = py::module_::import("threading");
  return threading.attr("current_thread")().is(threading.attr("main_thread")());
}

template <class F>
auto run_interruptible(F&& f, std::atomic<bool>& stop) -> decltype(f()) {
  using R = decltype(f());
  if (!in_main_thread()) {
    py::gil_scoped_release release;
    return f();
  }
  std::packaged_task<R()> task(std::forward<F>(f));
  std::future<R> result = task.get_future();
  std::thread worker(std::move(task));
  std::optional<py::error_already_set> interrupted;
  for (;;) {
    std::future_status status;
    {
      py::gil_scoped_release release;
      status = result.wait_for(std::chrono::milliseconds(50));
    }
    if (status == std::future_status::ready) break;
    if (!interrupted && PyErr_CheckSignals() != 0) {
      interrupted.emplace();  // fetches the KeyboardInterrupt (or whatever the handler raised)
      stop = true;
    }
  }
  worker.join();
  if (interrupted) throw std::move(*interrupted);
  return result.get();
}

/// A count argument given as a Python int: >= lo, as uint64.
std::uint64_t count(const char* name, long long v, long long lo) {
  if (v < lo) fail(fmt::format("{} must be >= {}, got {}", name, lo, v));
  return static_cast<std::uint64_t>(v);
}

double finite(const char* name, double v) {
  if (!std::isfinite(v)) fail(fmt::format("{} must be a finite number, got {}", name, v));
  return v;
}

/// threads= (as the CLI's --threads): 0..4096, 0 for every core.
unsigned threads_arg(long long threads) {
  if (threads < 0 || threads > 4096) fail(fmt::format("threads must be in 0..4096, got {}", threads));
  return static_cast<unsigned>(threads);
}

/// For its lifetime, the O(d) kernels called from this thread use `threads`
/// threads (0: every core); the results do not depend on it.
struct KernelThreadsArg {
  explicit KernelThreadsArg(unsigned threads)
      : scope(threads ? threads : std::max(1u, std::thread::hardware_concurrency())) {}
  KernelThreads scope;
};

/// precision= : double|long|quad|mp50 (and auto where allowed).
std::optional<Precision> parse_precision_arg(const std::string& text, bool allow_auto) {
  if (allow_auto && text == "auto") return std::nullopt;
  try {
    return parse_precision(text);
  } catch (const std::invalid_argument&) {
    fail(fmt::format("precision must be one of {}double, long, quad, mp50, got '{}'", allow_auto ? "auto, " : "", text));
  }
}

// ---------------------------------------------------------------------------
// Spectrum: the library's Spectrum and the CLI text that names it (for the
// frontier's JSON). Eigenvalues and initial moments are copied once, into the
// library's vectors; Python sees them as read-only numpy views.
struct SpectrumObject {
  Spectrum spectrum;
  std::string text;       // "powerlaw:d=100,alpha=1.5", "file:PATH", "array:d=N"
  std::string init_text;  // "isotropic", "powerlaw:beta=1", "array"
  // The noise model the problem is run with (Spectrum.with_noise_model) and
  // the preconditioner already applied to `spectrum` (Spectrum.preconditioned).
  NoiseKind model = NoiseKind::Multiplicative;
  double noise_scale = 1;
  double precondition = 0;
};

std::vector<double> to_vector(const py::array_t<double, py::array::c_style | py::array::forcecast>& a,
                              const char* name) {
  if (a.ndim() != 1) fail(fmt::format("{} must be a 1-D array, got {} dimensions", name, a.ndim()));
  return std::vector<double>(a.data(), a.data() + a.size());
}

void check_eigenvalues(const std::vector<double>& lambda) {
  if (lambda.empty()) fail("eigenvalues must not be empty");
  if (lambda.size() > max_dimension) fail(fmt::format("eigenvalues: d = {} exceeds the maximum {}", lambda.size(), max_dimension));
  for (std::size_t i = 0; i < lambda.size(); ++i)
    if (!(std::isfinite(lambda[i]) && lambda[i] > 0))
      fail(fmt::format("eigenvalues must be finite and > 0, got {} at index {}", lambda[i], i));
}

void check_init(const std::vector<double>& init, std::size_t d) {
  if (init.size() != d) fail(fmt::format("init must have {} entries (one per eigenvalue), got {}", d, init.size()));
  for (std::size_t i = 0; i < d; ++i)
    if (!(std::isfinite(init[i]) && init[i] >= 0))
      fail(fmt::format("init must be finite and >= 0, got {} at index {}", init[i], i));
}

std::vector<double> parse_init_text(const std::string& text, std::size_t d) {
  try {
    return parse_init(text, d);
  } catch (const std::invalid_argument& e) {
    fail("init: " + python_message(e));
  }
}

void check_initial_loss(const Spectrum& s) {
  if (!std::isfinite(s.initial_loss()))
    fail(fmt::format("init: the initial loss 1/2 sum lambda_i init_i overflows ({})", s.initial_loss()));
}

py::array_t<double> read_only_view(const std::vector<double>& v, py::handle owner) {
  py::array_t<double> a({static_cast<py::ssize_t>(v.size())}, {static_cast<py::ssize_t>(sizeof(double))}, v.data(),
                        owner);
  a.attr("setflags")("write"_a = false);
  return a;
}

// ---------------------------------------------------------------------------
// Methods: a validated MethodSpec.
struct MethodObject {
  MethodSpec spec;
};

/// A Python hyperparameter value as the library's double: numbers, bools for
/// switches (nesterov), a name for choices (lookahead's inner).
double hyper_value(const Hyperparameter* h, const std::string& name, const py::handle& v) {
  if (h && !h->choices.empty() && py::isinstance<py::str>(v)) {
    const std::string s = v.cast<std::string>();
    const auto c = std::find(h->choices.begin(), h->choices.end(), s);
    if (c == h->choices.end()) fail(fmt::format("{} must be {}, got '{}'", name, h->range_text(), s));
    return static_cast<double>(c - h->choices.begin());
  }
  if (py::isinstance<py::bool_>(v)) return v.cast<bool>() ? 1 : 0;
  if (py::isinstance<py::str>(v) || !(py::isinstance<py::int_>(v) || py::isinstance<py::float_>(v) ||
                                      py::hasattr(v, "__float__")))
    fail(fmt::format("{} must be a number, got {}", name, py::repr(v).cast<std::string>()));
  const double x = v.cast<double>();
  if (!std::isfinite(x)) fail(fmt::format("{} must be a finite number, got {}", name, x));
  return x;
}

/// The first registry row that has the field (for choices such as `inner`).
const Hyperparameter* any_hyperparameter(const std::string& name) {
  for (const auto& row : methods())
    if (const auto* h = row.find(name)) return h;
  return nullptr;
}

std::map<std::string, double, std::less<>> hyper_values(const py::dict& values, const MethodInfo* row) {
  std::map<std::string, double, std::less<>> out;
  for (const auto& [k, v] : values) {
    const std::string name = py::str(k);
    const Hyperparameter* h = row ? row->find(name) : nullptr;
    if (!h) h = any_hyperparameter(name);
    if (v.is_none()) continue;
    out[name] = hyper_value(h, name, v);
  }
  return out;
}

Average average_arg(const std::optional<std::string>& text) {
  if (!text || text->empty()) return {};
  return parse_average(*text);  // FieldError naming average
}

const MethodInfo& row_of(const std::string& name) { return method_info(name); }  // FieldError naming method

/// Schedules given as the CLI's text (None: constant); FieldError naming the field.
Schedule lr_schedule_arg(const std::optional<std::string>& text) {
  return text ? Schedule::learning_rate(*text) : Schedule();
}
Schedule momentum_schedule_arg(const std::optional<std::string>& text) {
  return text ? Schedule::momentum(*text) : Schedule();
}

/// The spec with a learning-rate schedule that still waits for the run's
/// horizon (cosine without steps=) replaced by none: for what does not depend
/// on the schedule (validation of the rest, states).
MethodSpec without_pending_schedule(const MethodSpec& spec) {
  MethodSpec probe = spec;
  if (probe.lr_schedule.needs_horizon()) probe.lr_schedule = Schedule();
  return probe;
}

/// Validates a spec whose lr schedule may still wait for its horizon (it is
/// resolved, and checked in full, by the call that knows the steps).
void validate_method(const MethodSpec& spec) {
  if (spec.lr_schedule.needs_horizon() && !spec.info().find("lr"))
    throw FieldError("lr_schedule", fmt::format("lr_schedule: method {} has no lr", spec.name));
  without_pending_schedule(spec).validate();
}

/// The spec of one run: an lr schedule that leaves out steps= takes the run's
/// horizon (loss and simulate: their steps; 0: none, as cesr steps and check).
MethodSpec spec_for_run(const MethodSpec& spec, std::uint64_t horizon) {
  MethodSpec s = spec;
  if (s.lr_schedule.needs_horizon() && horizon > 0) s.lr_schedule = s.lr_schedule.resolve(horizon);
  s.validate();  // "lr_schedule '...' needs the run's horizon (steps=)" when none is known
  return s;
}

MethodObject make_method_object(const std::string& name, const py::dict& values, const std::optional<std::string>& average,
                                const std::optional<std::string>& lr_schedule,
                                const std::optional<std::string>& momentum_schedule) {
  MethodObject m;
  const MethodInfo& row = row_of(name);
  if (row.from_file) fail("method: give a custom method as cesr.custom(P, q, r, o, s0=None)");
  m.spec.name = std::string(row.name);
  m.spec.values = hyper_values(values, &row);
  m.spec.average = average_arg(average);
  m.spec.lr_schedule = lr_schedule_arg(lr_schedule);
  m.spec.momentum_schedule = momentum_schedule_arg(momentum_schedule);
  validate_method(m.spec);
  return m;
}

std::vector<double> small_vector(const py::object& o, const char* name) {
  py::array_t<double, py::array::c_style | py::array::forcecast> a(o);
  if (a.ndim() != 1) fail(fmt::format("{} must be a vector, got {} dimensions", name, a.ndim()));
  return std::vector<double>(a.data(), a.data() + a.size());
}

MethodObject make_custom_object(const py::object& P, const py::object& q, const py::object& r, const py::object& o,
                                const py::object& s0, const std::optional<std::string>& average) {
  py::array_t<double, py::array::c_style | py::array::forcecast> Pa(P);
  if (Pa.ndim() != 2 || Pa.shape(0) != Pa.shape(1) || Pa.shape(0) < 1 || Pa.shape(0) > max_states)
    fail(fmt::format("P must be a k x k matrix with k = 1..{}", max_states));
  const int k = static_cast<int>(Pa.shape(0));
  MethodObject m;
  m.spec.name = "custom";
  Method<double>& c = m.spec.custom;
  c.k = k;
  for (int a = 0; a < k; ++a)
    for (int b = 0; b < k; ++b) {
      c.P[a][b] = Pa.at(a, b);
      if (!std::isfinite(c.P[a][b])) fail(fmt::format("P[{}][{}] must be finite, got {}", a, b, c.P[a][b]));
    }
  const auto fill = [&](const py::object& src, const char* name, Method<double>::Vector& dst) {
    const std::vector<double> v = small_vector(src, name);
    if (static_cast<int>(v.size()) != k) fail(fmt::format("{} must have {} entries (k from P), got {}", name, k, v.size()));
    for (int a = 0; a < k; ++a) {
      if (!std::isfinite(v[a])) fail(fmt::format("{}[{}] must be finite, got {}", name, a, v[a]));
      dst[a] = v[a];
    }
  };
  fill(q, "q", c.q);
  fill(r, "r", c.r);
  fill(o, "o", c.o);
  if (!s0.is_none()) fill(s0, "s0", c.s0);
  for (int a = k; a < max_states; ++a) c.s0[a] = 0;  // as read_method_file
  m.spec.average = average_arg(average);
  m.spec.validate();
  return m;
}

py::array_t<double> matrix_of(const Method<double>& c) {
  py::array_t<double> a(std::vector<py::ssize_t>{c.k, c.k});
  auto w = a.mutable_unchecked<2>();
  for (int i = 0; i < c.k; ++i)
    for (int j = 0; j < c.k; ++j) w(i, j) = c.P[i][j];
  return a;
}
py::array_t<double> vector_of(const Method<double>::Vector& v, int k) {
  py::array_t<double> a(k);
  std::copy(v.begin(), v.begin() + k, a.mutable_data());
  return a;
}

/// A validated spec's hyperparameters as Python values (choices by name, switches as bool).
py::dict params_of(const MethodSpec& spec, bool all) {
  py::dict out;
  for (const auto& h : spec.info().hyperparameters) {
    const bool given = spec.values.count(h.name) > 0;
    if (!all && !given) continue;
    const auto v = spec.get(h.name);
    if (!v) continue;
    const std::string name(h.name);
    if (!h.choices.empty()) out[name.c_str()] = std::string(h.choices.at(static_cast<std::size_t>(*v)));
    else if (h.flag) out[name.c_str()] = *v != 0;
    else if (h.integer) out[name.c_str()] = static_cast<long long>(*v);
    else out[name.c_str()] = *v;
  }
  return out;
}

// ---------------------------------------------------------------------------
// Shared arguments.
/// batch (None: 1) or batch_schedule (the CLI's text; it replaces batch).
NoiseModel noise_model(const SpectrumObject& sp, std::optional<long long> batch, double kurtosis, double noise,
                       const std::optional<std::string>& batch_schedule = std::nullopt) {
  NoiseModel n{1, kurtosis, noise};
  n.model = sp.model;
  n.noise_scale = sp.noise_scale;
  if (batch_schedule) {
    if (batch) fail("batch_schedule replaces batch: give one of them");
    n.batch_schedule = Schedule::batch(*batch_schedule);  // FieldError naming batch_schedule
    n.batch = n.batch_at(0);
  } else {
    n.batch = count("batch", batch.value_or(1), 1);
  }
  n.validate();  // names batch, kurtosis, noise
  return n;
}

template <class T>
py::array_t<T> array_of(const std::vector<T>& v) {
  py::array_t<T> a(static_cast<py::ssize_t>(v.size()));
  if (!v.empty()) std::memcpy(a.mutable_data(), v.data(), v.size() * sizeof(T));
  return a;
}

py::array_t<std::int64_t> steps_array(const std::vector<std::uint64_t>& v) {
  py::array_t<std::int64_t> a(static_cast<py::ssize_t>(v.size()));
  std::transform(v.begin(), v.end(), a.mutable_data(), [](std::uint64_t x) { return static_cast<std::int64_t>(x); });
  return a;
}

py::object optional_int(const std::optional<std::uint64_t>& v) {
  return v ? py::object(py::int_(*v)) : py::object(py::none());
}
py::object optional_float(const std::optional<double>& v) {
  return v ? py::object(py::float_(*v)) : py::object(py::none());
}
/// JSON's rule: non-finite numbers are None.
py::object finite_or_none(double x) { return std::isfinite(x) ? py::object(py::float_(x)) : py::object(py::none()); }

Target target_arg(std::optional<double> target, std::optional<bool> relative, long long max_steps) {
  Target t;
  if (!target) {
    t.eps = 1e-6;
    t.relative = relative.value_or(true);
  } else {
    t.eps = *target;
    t.relative = relative.value_or(false);
  }
  t.max_steps = count("max_steps", max_steps, 1);
  return t;
}

Objective objective_arg(const std::string& text) {
  try {
    return parse_objective(text);
  } catch (const std::invalid_argument&) {
    fail(fmt::format("objective must be 'rate' or 'steps', got '{}'", text));
  }
}

std::map<std::string, Box, std::less<>> boxes_arg(const py::dict& search) {
  std::map<std::string, Box, std::less<>> out;
  for (const auto& [k, v] : search) {
    const std::string name = py::str(k);
    const auto pair = v.cast<std::vector<double>>();
    if (pair.size() != 2) fail(fmt::format("search['{}'] must be a pair (lo, hi)", name));
    out[name] = Box{finite("search", pair[0]), finite("search", pair[1])};
  }
  return out;
}

// ---------------------------------------------------------------------------
// The functions.

/// horizon= and horizon_rtol= as the CLI's --horizon and --horizon-rtol.
HorizonMode horizon_arg(const std::string& horizon, double horizon_rtol) {
  if (!std::isfinite(horizon_rtol) || !(horizon_rtol > 0) || !(horizon_rtol < 1))
    throw FieldError("horizon_rtol", fmt::format("horizon_rtol must be in (0, 1), got {}", horizon_rtol));
  return parse_horizon(horizon);
}

py::dict loss_fn(const SpectrumObject& sp, const MethodObject& m, std::optional<long long> batch, long long steps,
                 long long every, double kurtosis, double noise, const std::string& precision, double rtol,
                 const std::string& horizon, double horizon_rtol, const std::optional<std::string>& batch_schedule) {
  const NoiseModel n = noise_model(sp, batch, kurtosis, noise, batch_schedule);
  const std::uint64_t T = count("steps", steps, 0), E = count("every", every, 1);
  const MethodSpec spec = spec_for_run(m.spec, T);
  const std::optional<Precision> p = parse_precision_arg(precision, true);
  check_escalation_rtol(rtol);
  const HorizonMode mode = horizon_arg(horizon, horizon_rtol);
  // As cesr loss: the certified spectral path for far horizons (more than
  // 32 d steps) where it applies, or always with horizon="exact"; else time
  // stepping in automatic (or the given) precision.
  const bool far = mode == HorizonMode::Auto && static_cast<double>(T) > 32 * static_cast<double>(sp.spectrum.dim());
  const bool spectral = mode == HorizonMode::Exact || (far && !horizon_unsupported(sp.spectrum, spec, n));
  std::vector<std::uint64_t> step;
  std::vector<double> loss;
  std::optional<std::uint64_t> diverged;
  HorizonReport rep;
  Precision answered = p.value_or(Precision::Double);
  bool certified = false;
  {
    std::atomic<bool> stop{false};
    run_interruptible([&] {
      const StopScope scope(&stop);
      if (spectral) {
        with_precision(p.value_or(Precision::Double), [&](auto zero) {
          using Real = decltype(zero);
          auto c = horizon_loss_curve<Real>(sp.spectrum, spec, n, T, E, horizon_rtol, rep);
          if (!c) return;
          step = std::move(c->step);
          for (const Real& l : c->loss) loss.push_back(to_double(l));
          diverged = c->diverged_at;
          answered = rep.precision;
        });
        if (!rep.exact && mode == HorizonMode::Exact)
          throw std::runtime_error(fmt::format("horizon='exact' cannot answer: {}", rep.reason));
      }
      if (!rep.exact) {
        AutoLossCurve c = p ? loss_curve_in(*p, sp.spectrum, spec, n, T, E)
                            : loss_curve_auto(sp.spectrum, spec, n, T, E, rtol);
        step = std::move(c.step);
        loss = std::move(c.loss);
        diverged = c.diverged_at;
        answered = c.precision;
        certified = c.certified;
      }
    }, stop);
  }
  // With a batch schedule: the samples consumed before each step (as cesr loss prints them).
  py::object samples = py::none();
  if (!n.batch_schedule.constant()) {
    std::vector<std::uint64_t> before;
    std::uint64_t t = 0, total = 0;
    for (const std::uint64_t s : step) {
      for (; t < s; ++t) total += n.batch_at(t);
      before.push_back(total);
    }
    samples = steps_array(before);
  }
  return py::dict("step"_a = steps_array(step), "loss"_a = array_of(loss), "diverged_at"_a = optional_int(diverged),
                  "samples"_a = samples, "precision"_a = std::string(to_string(answered)),
                  "horizon"_a = rep.exact ? "exact" : "stepping", "certified"_a = certified);
}

py::dict steps_fn(const SpectrumObject& sp, const MethodObject& m, std::optional<long long> batch, double target,
                  bool relative, long long max_steps, double kurtosis, double noise, const std::string& precision,
                  double rtol, const std::string& horizon, double horizon_rtol,
                  const std::optional<std::string>& batch_schedule) {
  const NoiseModel n = noise_model(sp, batch, kurtosis, noise, batch_schedule);
  const MethodSpec spec = spec_for_run(m.spec, 0);
  if (!(std::isfinite(target) && target > 0)) fail(fmt::format("target must be a finite number > 0, got {}", target));
  const std::uint64_t cap = count("max_steps", max_steps, 0);
  const std::optional<Precision> p = parse_precision_arg(precision, true);
  check_escalation_rtol(rtol);
  const HorizonMode mode = horizon_arg(horizon, horizon_rtol);
  std::optional<AutoSteps> res;
  HorizonReport rep;
  {
    std::atomic<bool> stop{false};
    run_interruptible([&] {
      const StopScope scope(&stop);
      bool fell_back = false;  // (cesr.steps reports the path in "horizon")
      res = steps_any_horizon(sp.spectrum, spec, n, target, relative, mode, horizon_rtol, cap, p, rtol, rep, fell_back);
    }, stop);
  }
  if (!res) throw std::runtime_error(fmt::format("horizon='exact' cannot answer: {}", rep.reason));
  return py::dict("steps"_a = optional_int(res->steps), "loss"_a = res->loss, "loss_text"_a = res->loss_text,
                  "initial_loss"_a = res->initial_loss, "steps_run"_a = res->steps_run,
                  "diverged_at"_a = optional_int(res->diverged_at),
                  "loss_floor"_a = res->floor ? py::object(py::float_(*res->floor)) : py::object(py::none()),
                  "precision"_a = std::string(to_string(res->precision)), "horizon"_a = rep.exact ? "exact" : "stepping",
                  "certified"_a = res->certified);
}

py::dict rate_dict(const AutoRate& r) {
  const bool finite_rho = r.rho_text != "inf";
  return py::dict("rho"_a = r.rho, "gap"_a = r.gap, "stable"_a = r.stable,
                  "precision"_a = std::string(to_string(r.precision)), "evaluations"_a = r.evaluations,
                  "rho_text"_a = finite_rho ? py::object(py::str(r.rho_text)) : py::object(py::none()),
                  "gap_text"_a = finite_rho ? py::object(py::str(r.gap_text)) : py::object(py::none()));
}

py::dict rate_fn(const SpectrumObject& sp, const MethodObject& m, std::optional<long long> batch, double kurtosis,
                 double noise, const std::string& precision, double rtol, long long threads) {
  const NoiseModel n = noise_model(sp, batch, kurtosis, noise);
  if (!m.spec.lr_schedule.constant() || !m.spec.momentum_schedule.constant())
    fail("method: a method with a schedule has no contraction rate (use loss or steps)");
  const std::optional<Precision> p = parse_precision_arg(precision, true);
  check_escalation_rtol(rtol);  // names rtol
  const unsigned kernel_threads = threads_arg(threads);
  AutoRate r;
  {
    py::gil_scoped_release release;
    const KernelThreadsArg scope(kernel_threads);
    r = p ? contraction_rate_in(*p, sp.spectrum, m.spec, n) : contraction_rate_auto(sp.spectrum, m.spec, n, rtol);
  }
  return rate_dict(r);
}

py::dict stability_fn(const SpectrumObject& sp, const std::string& method, const py::dict& values,
                      const std::optional<std::string>& average, std::optional<long long> batch, double kurtosis, double noise,
                      const std::string& precision, double rtol) {
  const MethodInfo& row = row_of(method);
  if (row.from_file) fail("method: stability takes a registry method by name (custom methods have no step size)");
  MethodSpec spec;
  spec.name = std::string(row.name);
  spec.values = hyper_values(values, &row);
  if (spec.values.count("lr")) fail("lr is what stability finds: leave it out");
  spec.values["lr"] = 1;  // replaced by stability_limits (as cesr stability does)
  spec.average = average_arg(average);
  spec.validate();
  const NoiseModel n = noise_model(sp, batch, kurtosis, noise);
  const std::optional<Precision> p = parse_precision_arg(precision, true);
  check_escalation_rtol(rtol);
  AutoStability s;
  {
    py::gil_scoped_release release;
    s = stability_limits_auto(sp.spectrum, spec, n, p, rtol);
  }
  return py::dict("lr_max"_a = s.lr_max, "lr_best"_a = s.lr_best, "gap_best"_a = s.gap_best,
                  "precision"_a = std::string(to_string(s.precision)), "rate_evaluations"_a = s.rate_evaluations,
                  "secular_evaluations"_a = s.secular_evaluations, "lr_max_text"_a = s.lr_max_text,
                  "lr_best_text"_a = s.lr_best_text, "gap_best_text"_a = s.gap_best_text);
}

py::object schedule_text(const Schedule& s) {
  return s.constant() ? py::object(py::none()) : py::object(py::str(s.text()));
}

py::dict tune_dict(const TuneResult& r, std::uint64_t batch, Objective objective, std::uint64_t horizon) {
  const MethodInfo& row = r.method.info();
  // The hyperparameters the row searches (tuned or fixed), in its order: as cesr tune prints them.
  py::dict params;
  for (const auto& h : row.hyperparameters)
    if (h.search != Search::None || r.method.values.count(h.name))
      if (const auto v = r.method.get(h.name)) {
        const std::string name(h.name);
        if (!h.choices.empty()) params[name.c_str()] = std::string(h.choices.at(static_cast<std::size_t>(*v)));
        else if (h.flag) params[name.c_str()] = *v != 0;
        else params[name.c_str()] = *v == 0 ? 0.0 : *v;  // never -0
      }
  py::list box;
  for (const auto& a : r.box) box.append(py::dict("name"_a = a.name, "coordinate"_a = a.coordinate, "lo"_a = a.lo, "hi"_a = a.hi));
  const bool has_gap = r.stable && r.has_rate;
  return py::dict("method"_a = std::string(row.name), "batch"_a = batch,
                  "objective"_a = std::string(to_string(objective)), "params"_a = params,
                  "all_params"_a = params_of(r.method, true), "average"_a = to_string(r.method.average),
                  "gap"_a = has_gap ? finite_or_none(r.gap) : py::object(py::none()),
                  "rho"_a = has_gap ? finite_or_none(r.rho) : py::object(py::none()),
                  "gap_text"_a = has_gap ? py::object(py::str(r.gap_text)) : py::object(py::none()),
                  "gap_precision"_a = std::string(to_string(r.gap_precision)), "stable"_a = r.stable,
                  "has_rate"_a = r.has_rate,
                  // the final objective reports its horizon as steps and L_T as loss (as cesr tune)
                  "steps"_a = objective == Objective::Final ? py::object(py::int_(horizon)) : optional_int(r.steps),
                  "loss"_a = optional_float(r.final_loss), "evaluations"_a = r.evaluations,
                  "rate_evaluations"_a = r.rate_evaluations, "confirm_failed"_a = r.confirm_failed, "search"_a = box,
                  "lr_schedule"_a = schedule_text(r.method.lr_schedule),
                  "momentum_schedule"_a = schedule_text(r.method.momentum_schedule));
}

py::dict tune_fn(const SpectrumObject& sp, const std::string& method, std::optional<long long> batch,
                 const std::string& objective, std::optional<double> target, std::optional<bool> relative,
                 long long max_steps, std::optional<long long> steps, const py::dict& fixed, const py::dict& search,
                 const std::optional<std::string>& average, const std::optional<std::string>& lr_schedule,
                 const std::optional<std::string>& momentum_schedule, const std::optional<std::string>& batch_schedule,
                 double kurtosis, double noise, const std::string& search_mode, long long threads) {
  const MethodInfo& row = row_of(method);
  const NoiseModel n = noise_model(sp, batch, kurtosis, noise, batch_schedule);
  TuneOptions t;
  t.objective = objective_arg(objective);
  if (t.objective == Objective::Final) {
    if (!steps) fail("steps: objective='final' needs steps=T (the horizon)");
    t.horizon = count("steps", *steps, 1);
  } else if (steps) {
    fail("steps applies only to objective='final' (the steps objective counts steps to target)");
  }
  t.lr_schedule = lr_schedule_arg(lr_schedule);
  t.momentum_schedule = momentum_schedule_arg(momentum_schedule);
  t.target = target_arg(target, relative, max_steps);
  t.fixed = hyper_values(fixed, &row);
  t.boxes = boxes_arg(search);
  t.average = average_arg(average);
  t.search_mode = parse_search_mode(search_mode);  // a FieldError naming search_mode
  const unsigned kernel_threads = threads_arg(threads);
  TuneResult r;
  {
    std::atomic<bool> stop{false};
    r = run_interruptible([&] {
      const StopScope scope(&stop);
      const KernelThreadsArg kernels(kernel_threads);  // on the thread that runs the search
      return tune(sp.spectrum, row.name, n, t);
    }, stop);
  }
  return tune_dict(r, n.batch, t.objective, t.horizon);
}

py::dict frontier_fn(const SpectrumObject& sp, const std::vector<std::string>& method_names_,
                     const py::object& batches, const std::string& objective, std::optional<double> target,
                     std::optional<bool> relative, long long max_steps, std::optional<long long> samples,
                     const py::dict& fixed, const py::dict& search, const std::optional<std::string>& average,
                     const std::optional<std::string>& lr_schedule, double kurtosis, double noise, long long threads,
                     const py::object& progress, const std::string& search_mode) {
  FrontierOptions fo;
  fo.methods.clear();
  for (const std::string& m : method_names_) {
    const MethodInfo* found = nullptr;
    try {
      found = &method_info(m);
    } catch (const std::invalid_argument&) {
      fail(fmt::format("methods: unknown method '{}' (expected one of {})", m, method_names()));
    }
    const MethodInfo& row = *found;
    if (row.from_file) fail("methods: custom methods have nothing to tune");
    if (std::find(fo.methods.begin(), fo.methods.end(), m) != fo.methods.end())
      fail(fmt::format("methods: '{}' is listed twice", m));
    fo.methods.emplace_back(row.name);
  }
  if (batches.is_none()) {
    fo.batches = parse_batches("1:65536:x2");
  } else if (py::isinstance<py::str>(batches)) {
    fo.batches = parse_batches(batches.cast<std::string>());  // names batches
  } else {
    std::set<long long> seen;
    for (const auto& b : batches) {
      if (!py::isinstance<py::int_>(b)) fail(fmt::format("batches must hold whole numbers >= 1, got {}", py::repr(b).cast<std::string>()));
      const long long v = b.cast<long long>();
      if (v < 1) fail(fmt::format("batches must hold whole numbers >= 1, got {}", v));
      if (!seen.insert(v).second) fail(fmt::format("batches: {} is listed twice", v));
      fo.batches.push_back(static_cast<std::uint64_t>(v));
    }
    if (fo.batches.empty()) fail("batches must not be empty");
  }
  fo.tune.objective = objective_arg(objective);
  fo.tune.target = target_arg(target, relative, max_steps);
  if (fo.tune.objective == Objective::Final) {
    if (!samples) fail("samples: objective='final' needs samples=N (a sample budget)");
    fo.samples = count("samples", *samples, 1);
  } else if (samples) {
    fail("samples applies only to objective='final'");
  }
  fo.tune.average = average_arg(average);
  fo.tune.lr_schedule = lr_schedule_arg(lr_schedule);
  fo.tune.boxes = boxes_arg(search);
  for (const auto& [k, v] : fixed) {
    const std::string name = py::str(k);
    if (v.is_none()) continue;
    fo.tune.fixed[name] = hyper_value(any_hyperparameter(name), name, v);
  }
  fo.threads = threads_arg(threads);
  fo.tune.search_mode = parse_search_mode(search_mode);
  NoiseModel n{1, kurtosis, noise};
  n.model = sp.model;
  n.noise_scale = sp.noise_scale;
  n.validate();
  if (n.additive() && fo.tune.objective == Objective::Rate)
    fail("objective: the rate objective does not apply to the additive noise model (its rate is the noiseless one "
         "at every batch size); use objective='steps' or 'final'");
  if (fo.tune.objective != Objective::Final) fo.tune.target.validate(sp.spectrum.initial_loss());
  // After each row: stop on Ctrl-C, then progress(done, total) (called from
  // the worker threads, one at a time); an exception it raises stops the sweep
  // and is raised here.
  std::atomic<bool> stop{false};
  std::optional<py::error_already_set> progress_error;
  fo.progress = [&](std::size_t done, std::size_t total) {
    if (stop) throw Stopped{};
    if (progress.is_none()) return;
    py::gil_scoped_acquire acquire;
    try {
      progress(done, total);
    } catch (py::error_already_set& e) {
      progress_error = std::move(e);
      stop = true;
      throw Stopped{};
    }
  };
  Frontier f;
  try {
    f = run_interruptible([&] {
      const StopScope scope(&stop);  // the rows in progress stop too
      return compute_frontier(sp.spectrum, n, fo);
    }, stop);
  } catch (const Stopped&) {
    if (progress_error) throw std::move(*progress_error);
    throw;  // not reached: a stop by Ctrl-C raises KeyboardInterrupt in run_interruptible
  }
  f.spectrum_text = sp.text;
  f.init_text = sp.init_text;
  // The rows and summary are those of the JSON (the package reads them from it).
  std::string title = sp.text;
  if (fo.samples) title += fmt::format(", N = {} samples", fo.samples);
  return py::dict("json"_a = frontier_json(f) + "\n",  // as `cesr frontier --spectrum ... --format json` prints it
                  "table"_a = render_frontier(f, Format::Text, title));
}

py::dict simulate_fn(const SpectrumObject& sp, const MethodObject& m, std::optional<long long> batch, long long steps,
                     long long runs, long long seed, long long every, const std::string& covariates,
                     std::optional<double> kurtosis, double noise, const std::string& precision, long long threads,
                     const std::optional<std::string>& batch_schedule) {
  SimulationConfig config;
  try {
    config.covariates = parse_covariates(covariates);
  } catch (const std::invalid_argument&) {
    fail(fmt::format("covariates must be 'gaussian', 'rademacher' or 'uniform', got '{}'", covariates));
  }
  config.steps = count("steps", steps, 0);
  config.runs = count("runs", runs, 2);
  config.seed = count("seed", seed, 0);
  config.every = count("every", every, 1);
  config.threads = threads_arg(threads);
  config.validate();
  // The theory uses the fourth moment of the simulated law unless kurtosis is given (as cesr simulate).
  const NoiseModel n = noise_model(sp, batch, kurtosis.value_or(fourth_moment(config.covariates)), noise, batch_schedule);
  const MethodSpec spec = spec_for_run(m.spec, config.steps);
  const Precision p = *parse_precision_arg(precision, false);
  SimulationResult r;
  {
    std::atomic<bool> stop{false};
    r = run_interruptible([&] {
      const StopScope scope(&stop);
      return simulate(sp.spectrum, spec, n, config, p);
    }, stop);
  }
  std::vector<double> z(r.step.size(), std::nan(""));
  for (std::size_t i = 0; i < z.size(); ++i)
    if (const auto zi = r.z(i)) z[i] = *zi;
  return py::dict("step"_a = steps_array(r.step), "theory"_a = array_of(r.theory), "mean"_a = array_of(r.mean),
                  "stderr"_a = array_of(r.std_error), "z"_a = array_of(z), "largest_share"_a = array_of(r.largest_share),
                  "runs"_a = r.runs, "covariates"_a = std::string(to_string(r.covariates)), "kurtosis"_a = r.kurtosis,
                  "diverged_at"_a = optional_int(r.diverged_at));
}

py::dict check_fn(const py::object& step_obj, const py::object& loss_obj, const py::object& stderr_obj,
                  const SpectrumObject& sp, const MethodObject& m, std::optional<long long> batch, double kurtosis,
                  double noise, const std::string& precision, double rtol, double alpha, std::optional<double> zmax,
                  const std::optional<std::string>& batch_schedule) {
  // Steps: whole numbers >= 0, distinct (any order).
  const std::vector<double> step_d = small_vector(step_obj, "step");
  const std::vector<double> loss = small_vector(loss_obj, "loss");
  if (step_d.empty()) fail("step must not be empty");
  if (loss.size() != step_d.size())
    fail(fmt::format("loss must have one entry per step ({}), got {}", step_d.size(), loss.size()));
  std::vector<std::uint64_t> steps;
  std::set<std::uint64_t> seen;
  for (std::size_t i = 0; i < step_d.size(); ++i) {
    const double s = step_d[i];
    if (!(s >= 0 && s == std::floor(s) && s < 1.8e19)) fail(fmt::format("step must hold whole numbers >= 0, got {} at index {}", s, i));
    const auto t = static_cast<std::uint64_t>(s);
    if (!seen.insert(t).second) fail(fmt::format("step {} is listed twice", t));
    steps.push_back(t);
    if (!(std::isfinite(loss[i]) && loss[i] >= 0)) fail(fmt::format("loss must be finite and >= 0, got {} at index {}", loss[i], i));
  }
  std::vector<std::optional<double>> se(steps.size());
  if (!stderr_obj.is_none()) {
    const std::vector<double> s = small_vector(stderr_obj, "stderr");
    if (s.size() != steps.size()) fail(fmt::format("stderr must have one entry per step ({}), got {}", steps.size(), s.size()));
    for (std::size_t i = 0; i < s.size(); ++i) {
      if (std::isnan(s[i])) continue;  // no standard error for this row
      if (!(std::isfinite(s[i]) && s[i] >= 0)) fail(fmt::format("stderr must be finite and >= 0 (or NaN), got {} at index {}", s[i], i));
      se[i] = s[i];
    }
  }
  const NoiseModel n = noise_model(sp, batch, kurtosis, noise, batch_schedule);
  const MethodSpec spec = spec_for_run(m.spec, 0);
  const Precision p = *parse_precision_arg(precision, false);
  CheckOptions options;
  options.rtol = rtol;
  options.alpha = alpha;
  options.zmax = zmax;
  options.validate();  // names rtol, alpha, zmax
  ExactAtSteps exact;
  CheckReport rep;
  {
    py::gil_scoped_release release;
    exact = with_precision(p, [&](auto zero) {
      using Real = decltype(zero);
      return exact_loss_at<Real>(sp.spectrum, make_path<Real>(spec), n, steps);
    });
    if (!exact.diverged_at) rep = check_curve(loss, se, exact.loss, options);
  }
  if (exact.diverged_at)
    return py::dict("diverged_at"_a = *exact.diverged_at);
  py::list rows;
  for (std::size_t i = 0; i < rep.rows.size(); ++i) {
    const RowCheck& r = rep.rows[i];
    rows.append(py::dict("index"_a = i, "step"_a = steps[i], "loss"_a = loss[i],
                         "stderr"_a = se[i] ? py::object(py::float_(*se[i])) : py::object(py::none()),
                         "theory"_a = r.theory, "rel_error"_a = r.rel_error, "z"_a = optional_float(r.z),
                         "score"_a = r.score, "pass"_a = r.pass));
  }
  py::list worst;
  for (const std::size_t i : rep.worst) worst.append(rows[i]);
  return py::dict("rows"_a = rows, "worst"_a = worst, "agree"_a = rep.agree, "zmax"_a = rep.zmax,
                  "z_rows"_a = rep.z_rows, "rtol_rows"_a = rep.rtol_rows, "within_3"_a = rep.within_3,
                  "max_abs_z"_a = rep.max_abs_z, "max_abs_rel_error"_a = rep.max_abs_rel_error,
                  "failed"_a = rep.failed, "theory"_a = array_of(exact.loss), "diverged_at"_a = py::none());
}

/// The registry as `cesr methods --format json` prints it (src/cli/cmd_methods.cpp).
py::list methods_fn() {
  py::list out;
  for (const auto& row : methods()) {
    py::list hp;
    for (const auto& h : row.hyperparameters) {
      py::object def = py::none();
      if (h.default_value) {
        if (!h.choices.empty()) def = py::str(std::string(h.choices.at(static_cast<std::size_t>(*h.default_value))));
        else if (h.flag) def = py::bool_(*h.default_value != 0);
        else def = py::float_(*h.default_value);
      }
      std::string flag = "--";
      for (char c : h.name) flag += c == '_' ? '-' : c;
      hp.append(py::dict("name"_a = std::string(h.name), "flag"_a = flag, "default"_a = def,
                         "required"_a = !h.default_value && !h.optional, "range"_a = h.range_text(),
                         "tuned"_a = h.search != Search::None, "search"_a = std::string(to_string(h.search)),
                         "description"_a = std::string(h.description)));
    }
    out.append(py::dict("name"_a = std::string(row.name), "states"_a = row.states,
                        "states_max"_a = std::max(row.states, row.states_max), "constant"_a = row.time == Time::Constant,
                        "rate"_a = row.time != Time::Varying, "description"_a = std::string(row.description),
                        "hyperparameters"_a = hp));
  }
  return out;
}

// cesr.problem(X, y, center): the library's fit_problem (as cesr problem).
py::dict problem_fn(const py::array_t<double, py::array::c_style | py::array::forcecast>& X,
                    const py::array_t<double, py::array::c_style | py::array::forcecast>& y, bool center) {
  if (X.ndim() != 2) fail(fmt::format("X must be a 2-D array (n rows, d columns), got {} dimensions", X.ndim()));
  if (y.ndim() != 1 && !(y.ndim() == 2 && y.shape(1) == 1))
    fail(fmt::format("y must be a 1-D array of n labels, got shape with {} dimensions", y.ndim()));
  DataSet data;
  data.n = static_cast<std::size_t>(X.shape(0));
  data.d = static_cast<std::size_t>(X.shape(1));
  data.x.assign(X.data(), X.data() + X.size());
  const std::vector<double> labels(y.data(), y.data() + y.size());
  DataProblem p;
  {
    std::atomic<bool> stop{false};
    p = run_interruptible(
        [&] {
          const StopScope scope(&stop);
          return fit_problem(data, labels, center);
        },
        stop);
  }
  const auto array = [](const std::vector<double>& v) { return py::array_t<double>(py::ssize_t(v.size()), v.data()); };
  return py::dict("eigenvalues"_a = array(p.lambda), "init"_a = array(p.init), "kurtosis"_a = array(p.kurtosis),
                  "line_eigenvalues"_a = array(p.line_lambda), "line_weights"_a = array(p.line_weight),
                  "line_init"_a = array(p.line_init), "w_star"_a = array(p.w_star), "intercept"_a = p.intercept,
                  "json"_a = problem_json(p, "PREFIX.spectrum", "PREFIX.init"),
                  "spectrum_text"_a = spectrum_file_text(p), "init_text"_a = init_file_text(p));
}

}  // namespace
}  // namespace cesr::python

PYBIND11_MODULE(_cesr, mod) {
  using namespace cesr;
  using namespace cesr::python;
  mod.doc() = "cesr's library (exact expected losses of linear stochastic optimizers); use the package cesr";
  mod.attr("__version__") = CESR_VERSION;

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const std::invalid_argument& e) {  // FieldError included
      PyErr_SetString(PyExc_ValueError, python_message(e).c_str());
    } catch (const UnstableAtEveryStepSize& e) {
      PyErr_SetString(PyExc_ValueError, (std::string("method: ") + e.what()).c_str());
    }
  });

  py::class_<SpectrumObject>(mod, "NativeSpectrum")
      .def_static(
          "from_text",
          [](const std::string& text, const std::string& init) {
            SpectrumObject s;
            try {
              s.spectrum = read_spectrum(text);
            } catch (const std::invalid_argument& e) {
              fail("spectrum: " + python_message(e));
            }
            s.spectrum.init = parse_init_text(init, s.spectrum.lambda.size());
            check_initial_loss(s.spectrum);
            s.text = text;
            s.init_text = init;
            return s;
          },
          "text"_a, "init"_a = "isotropic")
      .def_static(
          "from_arrays",
          [](const py::array_t<double, py::array::c_style | py::array::forcecast>& eigenvalues,
             const py::object& init, const std::string& text, const std::string& init_text, const py::object& weights) {
            SpectrumObject s;
            s.spectrum.lambda = to_vector(eigenvalues, "eigenvalues");
            check_eigenvalues(s.spectrum.lambda);
            if (!weights.is_none()) {
              auto w = to_vector(py::array_t<double, py::array::c_style | py::array::forcecast>(weights), "weights");
              if (w.size() != s.spectrum.lambda.size())
                fail(fmt::format("weights must have {} entries (one per eigenvalue), got {}", s.spectrum.lambda.size(), w.size()));
              for (std::size_t i = 0; i < w.size(); ++i)
                if (!(std::isfinite(w[i]) && w[i] > 0))
                  fail(fmt::format("weights must be finite and > 0, got {} at index {}", w[i], i));
              if (std::any_of(w.begin(), w.end(), [](double x) { return x != 1; })) s.spectrum.weight = std::move(w);
            }
            if (init.is_none()) {
              s.spectrum.init.assign(s.spectrum.lambda.size(), 1.0);
              s.init_text = "isotropic";
            } else if (py::isinstance<py::str>(init)) {
              s.init_text = init.cast<std::string>();
              s.spectrum.init = parse_init_text(s.init_text, s.spectrum.lambda.size());
            } else {
              s.spectrum.init = to_vector(py::array_t<double, py::array::c_style | py::array::forcecast>(init), "init");
              check_init(s.spectrum.init, s.spectrum.lambda.size());
              s.init_text = init_text.empty() ? "array" : init_text;
            }
            check_initial_loss(s.spectrum);
            s.text = text.empty() ? fmt::format("array:d={}", s.spectrum.lambda.size()) : text;
            return s;
          },
          "eigenvalues"_a, "init"_a = py::none(), "text"_a = "", "init_text"_a = "", "weights"_a = py::none())
      .def(
          "with_problem",
          [](const SpectrumObject& self, const std::string& model, double scale, const py::object& covariance,
             double gamma) {
            SpectrumObject s = self;
            if (model == "additive") s.model = NoiseKind::Additive;
            else if (model == "multiplicative") s.model = NoiseKind::Multiplicative;
            else fail(fmt::format("noise_model must be 'multiplicative' or 'additive', got '{}'", model));
            if (!(std::isfinite(scale) && scale >= 0)) fail(fmt::format("noise_scale must be finite and >= 0, got {}", scale));
            s.noise_scale = scale;
            if (!covariance.is_none()) {
              if (s.model != NoiseKind::Additive) fail("noise_covariance applies only to noise_model='additive'");
              if (py::isinstance<py::str>(covariance)) {
                try {
                  s.spectrum.noise_covariance = parse_noise_covariance(covariance.cast<std::string>(), s.spectrum.dim());
                } catch (const std::invalid_argument& e) {
                  fail("noise_covariance: " + python_message(e));
                }
              } else {
                auto c = to_vector(py::array_t<double, py::array::c_style | py::array::forcecast>(covariance), "noise_covariance");
                if (c.size() != s.spectrum.dim())
                  fail(fmt::format("noise_covariance must have {} entries (one per eigenvalue), got {}", s.spectrum.dim(), c.size()));
                for (std::size_t i = 0; i < c.size(); ++i)
                  if (!(std::isfinite(c[i]) && c[i] >= 0))
                    fail(fmt::format("noise_covariance must be finite and >= 0, got {} at index {}", c[i], i));
                s.spectrum.noise_covariance = std::move(c);
              }
            }
            if (gamma != 0) {
              if (self.precondition != 0) fail("precondition: the spectrum is already preconditioned");
              if (!(gamma >= 0 && gamma <= 1)) fail(fmt::format("precondition must be in [0, 1], got {}", gamma));
              s.spectrum = precondition(s.spectrum, gamma);
              s.precondition = gamma;
            }
            return s;
          },
          "model"_a, "scale"_a, "covariance"_a, "precondition"_a)
      .def_property_readonly("weights", [](py::object self) -> py::object {
        const auto& s = self.cast<const SpectrumObject&>().spectrum;
        if (!s.weighted()) return py::none();
        return read_only_view(s.weight, self);
      })
      .def_property_readonly("noise_covariance", [](py::object self) -> py::object {
        const auto& s = self.cast<const SpectrumObject&>().spectrum;
        if (s.noise_covariance.empty()) return py::none();
        return read_only_view(s.noise_covariance, self);
      })
      .def_property_readonly("noise_model", [](const SpectrumObject& s) {
        return std::string(s.model == NoiseKind::Additive ? "additive" : "multiplicative");
      })
      .def_readonly("noise_scale", &SpectrumObject::noise_scale)
      .def_readonly("precondition", &SpectrumObject::precondition)
      .def_property_readonly("directions", [](const SpectrumObject& s) { return s.spectrum.directions(); })
      .def_property_readonly("fractional", [](const SpectrumObject& s) { return s.spectrum.fractional(); })
      .def_property_readonly("eigenvalues", [](py::object self) {
        return read_only_view(self.cast<const SpectrumObject&>().spectrum.lambda, self);
      })
      .def_property_readonly("init", [](py::object self) {
        return read_only_view(self.cast<const SpectrumObject&>().spectrum.init, self);
      })
      .def_readonly("text", &SpectrumObject::text)
      .def_readonly("init_text", &SpectrumObject::init_text)
      .def_property_readonly("d", [](const SpectrumObject& s) { return s.spectrum.dim(); })
      .def_property_readonly("lambda_max", [](const SpectrumObject& s) { return s.spectrum.lambda_max(); })
      .def_property_readonly("lambda_min", [](const SpectrumObject& s) { return s.spectrum.lambda_min(); })
      .def_property_readonly("kappa", [](const SpectrumObject& s) { return s.spectrum.kappa(); })
      .def_property_readonly("trace", [](const SpectrumObject& s) { return s.spectrum.trace(); })
      .def_property_readonly("initial_loss", [](const SpectrumObject& s) { return s.spectrum.initial_loss(); });

  py::class_<MethodObject>(mod, "NativeMethod")
      .def_static("registry", &make_method_object, "name"_a, "values"_a, "average"_a = py::none(),
                  "lr_schedule"_a = py::none(), "momentum_schedule"_a = py::none())
      .def_static("custom", &make_custom_object, "P"_a, "q"_a, "r"_a, "o"_a, "s0"_a = py::none(),
                  "average"_a = py::none())
      .def_property_readonly("name", [](const MethodObject& m) { return m.spec.name; })
      .def_property_readonly("describe", [](const MethodObject& m) { return describe(m.spec); })
      .def_property_readonly("states", [](const MethodObject& m) { return without_pending_schedule(m.spec).states(); })
      .def_property_readonly("constant", [](const MethodObject& m) { return m.spec.time() == Time::Constant; })
      .def_property_readonly("has_rate", [](const MethodObject& m) { return m.spec.time() != Time::Varying; })
      .def_property_readonly("lr_schedule", [](const MethodObject& m) { return schedule_text(m.spec.lr_schedule); })
      .def_property_readonly("momentum_schedule",
                             [](const MethodObject& m) { return schedule_text(m.spec.momentum_schedule); })
      .def_property_readonly("average", [](const MethodObject& m) { return to_string(m.spec.average); })
      .def("params", [](const MethodObject& m, bool all) { return params_of(m.spec, all); }, "all"_a = false)
      .def_property_readonly("coefficients", [](const MethodObject& m) {
        // (P, q, r, o, s0) of step 0, averaging included
        const Method<double> c = make_path<double>(without_pending_schedule(m.spec)).coefficients(0);
        return py::make_tuple(matrix_of(c), vector_of(c.q, c.k), vector_of(c.r, c.k), vector_of(c.o, c.k),
                              vector_of(c.s0, c.k));
      });

  mod.def("methods", &methods_fn);
  mod.def("loss", &loss_fn, "spectrum"_a, "method"_a, "batch"_a, "steps"_a, "every"_a, "kurtosis"_a, "noise"_a,
          "precision"_a, "rtol"_a, "horizon"_a, "horizon_rtol"_a, "batch_schedule"_a);
  mod.def("steps", &steps_fn, "spectrum"_a, "method"_a, "batch"_a, "target"_a, "relative"_a, "max_steps"_a,
          "kurtosis"_a, "noise"_a, "precision"_a, "rtol"_a, "horizon"_a, "horizon_rtol"_a, "batch_schedule"_a);
  mod.def("rate", &rate_fn, "spectrum"_a, "method"_a, "batch"_a, "kurtosis"_a, "noise"_a, "precision"_a, "rtol"_a,
          "threads"_a);
  mod.def("stability", &stability_fn, "spectrum"_a, "method"_a, "values"_a, "average"_a, "batch"_a, "kurtosis"_a,
          "noise"_a, "precision"_a, "rtol"_a);
  mod.def("tune", &tune_fn, "spectrum"_a, "method"_a, "batch"_a, "objective"_a, "target"_a, "relative"_a,
          "max_steps"_a, "steps"_a, "fixed"_a, "search"_a, "average"_a, "lr_schedule"_a, "momentum_schedule"_a,
          "batch_schedule"_a, "kurtosis"_a, "noise"_a, "search_mode"_a, "threads"_a);
  mod.def("frontier", &frontier_fn, "spectrum"_a, "methods"_a, "batches"_a, "objective"_a, "target"_a, "relative"_a,
          "max_steps"_a, "samples"_a, "fixed"_a, "search"_a, "average"_a, "lr_schedule"_a, "kurtosis"_a, "noise"_a,
          "threads"_a, "progress"_a, "search_mode"_a);
  mod.def("simulate", &simulate_fn, "spectrum"_a, "method"_a, "batch"_a, "steps"_a, "runs"_a, "seed"_a, "every"_a,
          "covariates"_a, "kurtosis"_a, "noise"_a, "precision"_a, "threads"_a, "batch_schedule"_a);
  mod.def("problem", &problem_fn, "X"_a, "y"_a, "center"_a);
  mod.def("check", &check_fn, "step"_a, "loss"_a, "stderr"_a, "spectrum"_a, "method"_a, "batch"_a, "kurtosis"_a,
          "noise"_a, "precision"_a, "rtol"_a, "alpha"_a, "zmax"_a, "batch_schedule"_a);
}
