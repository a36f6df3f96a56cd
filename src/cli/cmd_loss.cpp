// cesr loss: the exact expected loss curve L_t, optionally for several methods
// or batch sizes at once, as a table and/or a figure.
#include "common.hpp"

#include "cesr/frontier.hpp"
#include "cesr/plot.hpp"

#include <fmt/format.h>

#include <iostream>
#include <limits>

namespace cesr::cli {
namespace {

struct LossOptions {
  ProblemOptions problem;
  std::uint64_t steps = 0;
  std::uint64_t every = 1;
  std::string format, output;
  int digits = 3;
  double rtol = 1e-10;
  std::vector<std::string> compare;  // extra methods, KIND:key=value,...
  std::string compare_batches;       // comma-separated batch sizes
  std::string plot, plot_scale = "semilogy";
  FigureOptions figure;
  const CLI::Option* batch_flag = nullptr;
  HorizonOptions horizon;
  ProgressFlags progress;
};

/// A method written as NAME[:key=value,...], e.g. hb:lr=0.5,momentum=0.9 or
/// custom:file=m.json: the keys are the method's hyperparameters (as their
/// flags without --), file and average.
MethodSpec parse_compare(const std::string& text) {
  const auto fail = [&](const std::string& why) -> UsageError {
    return UsageError(fmt::format("--compare {}: {}", text, why));
  };
  const auto colon = text.find(':');
  ProblemOptions p;
  p.method = text.substr(0, colon);
  if (colon != std::string::npos) {
    std::string_view rest = std::string_view(text).substr(colon + 1);
    while (!rest.empty()) {
      const auto comma = rest.find(',');
      const std::string_view item = rest.substr(0, comma);
      rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
      const auto eq = item.find('=');
      if (eq == std::string_view::npos) throw fail(fmt::format("'{}' is not key=value", item));
      std::string key(item.substr(0, eq));
      const std::string value(item.substr(eq + 1));
      std::replace(key.begin(), key.end(), '-', '_');
      if (key == "file") {
        p.method_file = value;
      } else if (key == "average") {
        p.average = value;
      } else {
        const Hyperparameter* h = nullptr;
        for (const auto& row : methods())
          if (!h) h = row.find(key);
        if (!h) throw fail(fmt::format("unknown key '{}' (a hyperparameter of the method, file or average)", key));
        if (h->flag) {
          if (value != "0" && value != "1" && value != "true" && value != "false")
            throw fail(fmt::format("{} must be true or false, got '{}'", key, value));
          p.switches[key] = value == "1" || value == "true";
        } else {
          p.hyper[key] = value;
        }
      }
    }
  }
  try {
    return p.make_method();
  } catch (const UsageError& e) {
    throw fail(e.what());
  }
}

/// A hyperparameter for the long-format table: the shortest text that reads
/// back as the same double, always with a '.' or an exponent, so that numpy's
/// genfromtxt reads the column as floats and an empty cell (a method without
/// this hyperparameter) as NaN; in an integer column it would read -1.
std::string float_text(double v) {
  std::string s = fmt::format("{}", v);
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}

/// One computed curve: values as printed (full precision) and as plotted.
struct Curve {
  MethodSpec spec;
  std::uint64_t batch = 1;
  std::vector<std::uint64_t> step;
  std::vector<std::string> text;
  std::vector<double> value;
};

plot::Figure loss_figure(const std::vector<Curve>& curves, bool several_methods, bool several_batches,
                         const LossOptions& o) {
  constexpr plot::Stroke strokes[] = {plot::Stroke::Solid, plot::Stroke::Dashed, plot::Stroke::Dotted,
                                      plot::Stroke::DashDot};
  const plot::Scales scales = plot::parse_scales(o.plot_scale);
  plot::Panel panel;
  panel.xscale = scales.x;
  panel.yscale = scales.y;
  panel.xlabel = "step t";
  panel.ylabel = "expected loss L_t";
  panel.xlabel_tex = "step $t$";
  panel.ylabel_tex = "expected loss $L_t$";
  panel.title = spectrum_title(o.problem.spectrum);
  if (!several_batches) panel.title += fmt::format(", B = {}", curves.front().batch);
  std::vector<std::string> methods;
  std::vector<std::uint64_t> batches;
  for (const Curve& c : curves) {
    const std::string m = method_label(c.spec);  // "HB, η = 0.1, β = 0.9": the registry's paper name
    if (std::find(methods.begin(), methods.end(), m) == methods.end()) methods.push_back(m);
    if (std::find(batches.begin(), batches.end(), c.batch) == batches.end()) batches.push_back(c.batch);
    const auto mi = static_cast<int>(std::find(methods.begin(), methods.end(), m) - methods.begin());
    const auto bi = static_cast<int>(std::find(batches.begin(), batches.end(), c.batch) - batches.begin());
    plot::Series s;
    s.x.assign(c.step.begin(), c.step.end());
    s.y = c.value;
    // Batch sizes differ in colour and dash (distinguishable in gray too; dots
    // from the fifth on), methods in colour.
    if (several_methods && several_batches) {
      s.name = fmt::format("{}, B = {}", m, c.batch);
      s.color = mi;
      s.stroke = strokes[bi % 4];
      s.markers = bi / 4 % 2 == 1;
    } else if (several_batches) {
      s.name = fmt::format("B = {}", c.batch);
      s.color = bi;
      s.stroke = strokes[bi % 4];
      s.markers = bi / 4 % 2 == 1;
    } else {
      s.name = m;
      s.color = mi;
      s.stroke = strokes[(mi / 7) % 4];
    }
    panel.series.push_back(std::move(s));
  }
  plot::Figure fig;
  fig.panels.push_back(std::move(panel));
  apply_figure_options(fig, o.figure);
  return fig;
}

int run_loss(const LossOptions& o) {
  o.horizon.make_mode();  // a bad --horizon fails before any work
  const Spectrum spectrum = o.problem.make_spectrum();
  ProblemOptions problem = o.problem;
  problem.horizon = o.steps;  // for schedules that leave out steps=
  std::vector<MethodSpec> specs{problem.make_method()};
  for (const auto& text : o.compare) {
    specs.push_back(parse_compare(text));
    // The schedules are part of the problem: every curve runs under them.
    MethodSpec& c = specs.back();
    if (c.info().find("lr")) c.lr_schedule = specs.front().lr_schedule;
    if (c.info().find("momentum") && !c.values.count("momentum")) c.momentum_schedule = specs.front().momentum_schedule;
    try {
      c.validate();
    } catch (const std::invalid_argument& e) {
      throw UsageError(fmt::format("--compare {}: {}", text, cli_message(e)));
    }
  }
  const NoiseModel base_noise = problem.make_noise();
  const std::optional<Precision> precision = o.problem.make_auto_precision();
  check_escalation_rtol(o.rtol);
  const bool pgfplots = o.format == "pgfplots";
  const Format format = pgfplots ? Format::Csv : parse_format(o.format);
  if (o.every < 1) throw UsageError(fmt::format("--every must be >= 1, got {}", o.every));
  check_digits(o.digits, precision.value_or(Precision::Double));  // auto prints 17 digits
  try {
    plot::parse_scales(o.plot_scale);
  } catch (const std::invalid_argument& e) {
    usage_error("--plot-scale", e);
  }
  check_figure_options(o.figure, 1, pgfplots || !o.plot.empty());
  std::vector<std::uint64_t> batches{base_noise.batch};
  if (!o.compare_batches.empty()) {
    if (o.batch_flag && o.batch_flag->count() > 0)
      throw UsageError("--batches replaces --batch: give one of them");
    if (!base_noise.batch_schedule.constant())
      throw UsageError("--batches and --batch-schedule: give one of them");
    try {
      batches = parse_batches(o.compare_batches);  // the one batch-list rule (as frontier --batches)
    } catch (const std::invalid_argument& e) {
      usage_error("--batches", e);
    }
  }
  const bool several_methods = specs.size() > 1, several_batches = !o.compare_batches.empty();
  {
    // The printed rows are held in memory (as numbers and as text, a few
    // hundred bytes each with mp50): refuse a --steps/--every that would not fit.
    const double rows = (double(o.steps / o.every) + 2) * double(specs.size() * batches.size());
    try {
      check_fits_in_memory(static_cast<std::size_t>(std::min(rows * 4, 1e18)), "rows");
    } catch (const std::invalid_argument&) {
      throw UsageError(fmt::format("--steps {} --every {}: {:.3g} printed rows would not fit in memory; "
                                   "print fewer (a larger --every)",
                                   o.steps, o.every, rows));
    }
  }

  std::vector<Curve> curves;
  ProgressReporter progress("cesr loss", "steps", o.steps * specs.size() * batches.size(), o.progress.mode());
  const WorkScope counting(&progress.counter());
  for (const MethodSpec& spec : specs)
    for (std::uint64_t batch : batches) {
      NoiseModel noise = base_noise;
      noise.batch = batch;
      // Far horizons (more than 32 d steps, or --horizon exact): the certified
      // spectral path where it applies (it escalates its own precision);
      // otherwise time stepping in automatic (or the forced) precision.
      const bool far = o.horizon.make_mode() == HorizonMode::Auto &&
                       static_cast<double>(o.steps) > 32 * static_cast<double>(spectrum.dim());
      const std::optional<std::string> unsupported = horizon_unsupported(spectrum, spec, noise);
      const bool spectral = o.horizon.make_mode() == HorizonMode::Exact || (far && !unsupported);
      if (far && unsupported)
        std::cerr << fmt::format("cesr loss: {}: time stepping ({})\n", describe(spec), *unsupported);
      std::optional<std::uint64_t> diverged_at;
      if (spectral) {
        with_precision(precision.value_or(Precision::Double), [&](auto zero) {
          using Real = decltype(zero);
          const auto curve = horizon_curve<Real>("loss", spectrum, spec, noise, o.steps, o.every, o.horizon);
          diverged_at = curve.diverged_at;
          if (curve.diverged_at) return;
          Curve c{spec, batch, curve.step, {}, {}};
          for (const Real& l : curve.loss) {
            c.text.push_back(format_real(l));
            c.value.push_back(to_double(l));
          }
          curves.push_back(std::move(c));
        });
      } else {
        const AutoLossCurve curve = precision ? loss_curve_in(*precision, spectrum, spec, noise, o.steps, o.every)
                                              : loss_curve_auto(spectrum, spec, noise, o.steps, o.every, o.rtol);
        if (!curve.agreed)
          std::cerr << fmt::format("cesr loss: warning: {} at batch {}: quad and mp50 differ by {:.2g} > --rtol {:g}; "
                                   "the mp50 values are printed\n",
                                   describe(spec), batch, curve.disagreement, o.rtol);
        diverged_at = curve.diverged_at;
        if (!curve.diverged_at) curves.push_back(Curve{spec, batch, curve.step, curve.loss_text, curve.loss});
      }
      const bool ok = !diverged_at;
      if (diverged_at)
        std::cerr << fmt::format("cesr loss: {} diverges at batch {}: the loss exceeds {:.3g} at step {}\n",
                                 describe(spec), batch, divergence_threshold, *diverged_at);
      if (!ok) return Exit::diverged;
    }

  // With a batch schedule: the samples consumed before each printed step.
  const bool with_samples = !base_noise.batch_schedule.constant();
  const auto samples_before = [&](const std::vector<std::uint64_t>& steps) {
    std::vector<std::string> out;
    std::uint64_t t = 0, total = 0;
    long double beyond = 0;  // the count once it no longer fits in 64 bits
    for (const std::uint64_t s : steps) {
      for (; t < s; ++t) {
        const std::uint64_t b = base_noise.batch_at(t);
        if (beyond == 0 && total <= std::numeric_limits<std::uint64_t>::max() - b) {
          total += b;
        } else {
          if (beyond == 0) beyond = static_cast<long double>(total);
          beyond += static_cast<long double>(b);
        }
      }
      out.push_back(beyond > 0 ? format_real(static_cast<double>(beyond), 17) : std::to_string(total));
    }
    return out;
  };

  // Everything is computed: render, then write.
  std::string main_output;
  if (pgfplots) {
    main_output = plot::to_pgfplots(loss_figure(curves, several_methods, several_batches, o));
  } else {
    Table t;
    if (several_methods || several_batches) {
      // Long format: one row per (curve, step). The method is its registry
      // name and every hyperparameter has its own column (empty where a
      // method has none), so the CSV loads into pandas/numpy as is.
      std::vector<std::string> params;
      bool any_average = false;
      for (const Curve& c : curves) {
        for (const auto& h : c.spec.info().hyperparameters)
          if (c.spec.get(h.name) && std::find(params.begin(), params.end(), h.name) == params.end())
            params.emplace_back(h.name);
        any_average |= c.spec.average.given();
      }
      t.columns = {"method", "batch", "step", "loss"};
      if (with_samples) t.columns.push_back("samples");
      for (const auto& p : params) t.columns.push_back(p);
      if (any_average) t.columns.push_back("average");
      for (const Curve& c : curves) {
        const auto samples = with_samples ? samples_before(c.step) : std::vector<std::string>{};
        std::vector<Cell> tail;
        for (const auto& p : params) {
          const auto v = c.spec.get(p);
          tail.push_back(v ? Cell::number(float_text(*v)) : Cell::null());
        }
        if (any_average) tail.push_back(Cell::string(c.spec.average.given() ? to_string(c.spec.average) : "none"));
        for (std::size_t i = 0; i < c.step.size(); ++i) {
          t.rows.push_back({Cell::string(c.spec.name), Cell::number(std::to_string(c.batch)),
                            Cell::number(std::to_string(c.step[i])), Cell::number(c.text[i])});
          if (with_samples) t.rows.back().push_back(Cell::number(samples[i]));
          t.rows.back().insert(t.rows.back().end(), tail.begin(), tail.end());
        }
      }
    } else {
      t.columns = {"step", "loss"};
      if (with_samples) t.columns.push_back("samples");
      const Curve& c = curves.front();
      const auto samples = with_samples ? samples_before(c.step) : std::vector<std::string>{};
      for (std::size_t i = 0; i < c.step.size(); ++i) {
        t.rows.push_back({Cell::number(std::to_string(c.step[i])), Cell::number(c.text[i])});
        if (with_samples) t.rows.back().push_back(Cell::number(samples[i]));
      }
    }
    RenderOptions ro;
    if (format == Format::Markdown || format == Format::Latex) ro.digits = o.digits;
    if (format == Format::Latex) ro.caption = fmt::format("Exact expected loss on {}", o.problem.spectrum);
    main_output = render(t, format, ro);
  }
  std::string figure;
  if (!o.plot.empty()) figure = plot::render_for_file(loss_figure(curves, several_methods, several_batches, o), o.plot);
  write_output(o.output, main_output);
  write_plot(o.plot, figure);
  return Exit::ok;
}

const Registrar registrar{{"loss", "Exact expected loss curve L_t of a method", 10, [](CLI::App& app) {
  auto o = std::make_shared<LossOptions>();
  ProblemFlags flags;
  flags.auto_precision = true;
  flags.batch_list_flag = "--batches";
  add_problem_options(app, o->problem, flags);
  app.add_option("--rtol", o->rtol,
                 "With --precision auto: the relative accuracy required of every printed loss (met by double "
                 "alone where its rounding bound is within half of it, else by two successive precisions agreeing to it)")
      ->capture_default_str()
      ->group("Numerics");
  add_horizon_options(app, o->horizon);
  o->batch_flag = app.get_option("--batch");
  app.add_option("--steps", o->steps, "Number of steps T")->required()->group("Run");
  app.add_option("--every", o->every, "Print every N-th step (the last step is always printed)")
      ->capture_default_str()
      ->group("Run");
  app.add_option("--compare", o->compare,
                 "Add a curve for another method on the same problem, as NAME:key=value,... "
                 "(keys: its hyperparameters, e.g. hb:lr=0.1,momentum=0.9; average=ema:decay=0.9; "
                 "custom:file=PATH); repeatable")
      ->group("Compare");
  app.add_option("--batches,--compare-batches", o->compare_batches,
                 "One curve per batch size (replaces --batch): a list 1,8,64 or LO:HI:xF, as in cesr frontier "
                 "(each size once)")
      ->group("Compare");
  add_output_options(app, o->format, o->output, "csv|json|table|markdown|latex|pgfplots", "csv");
  add_digits_option(app, o->digits);
  add_progress_options(app, o->progress);
  add_plot_option(app, o->plot, "the loss curves");
  add_figure_options(app, o->figure);
  app.add_option("--plot-scale", o->plot_scale,
                 "Axes of the figure: loglog, semilogy (log loss), semilogx or linear; step 0 is left out "
                 "of a log step axis")
      ->capture_default_str()
      ->group("Output");
  app.footer(
      "Output: CSV step,loss for one curve; with --compare or --batches one row per curve and step,\n"
      "method,batch,step,loss, then one column per hyperparameter (empty where a method has none).\n"
      "--format pgfplots writes the figure (LaTeX) instead of a table.\n\n"
      "Examples:\n  cesr loss --spectrum powerlaw:d=1000,alpha=1.5 --method hb --lr 0.2 --momentum 0.9 "
      "--batch 8 --steps 1000 --every 100\n"
      "  cesr loss --method sgd --lr 0.1 --compare hb:lr=0.01,momentum=0.9 --batches 1,8,64 "
      "--steps 2000 --every 10 --plot loss.svg --output loss.csv");
  return [o] { return run_loss(*o); };
}}};

}  // namespace
}  // namespace cesr::cli
