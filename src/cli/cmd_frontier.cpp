// cesr frontier: tuned serial runtime and compute efficiency across batch
// sizes, critical batch sizes and the heavy-ball window. With no --spectrum it
// runs an embedded default that shows both regimes of the paper.
#include "common.hpp"

#include "cesr/frontier.hpp"
#include "cesr/plot.hpp"

#include <fmt/format.h>

#include <cmath>

#include <algorithm>
#include <cstdio>
#include <limits>
#include <iostream>

#include <unistd.h>

namespace cesr::cli {
namespace {

struct FrontierCliOptions {
  std::vector<std::string> spectra;  // none: the embedded default problems
  std::vector<std::string> inits;    // none: isotropic; one: every problem; one per --spectrum: in order
  ProblemOptions fixed;              // --lr, --momentum, ...: held fixed, the rest tuned
  std::string methods = "sgd,hb,asgd";
  std::string batches = "1:65536:x2";
  std::string objective = "rate";
  std::string target;  // empty: 1e-6 relative
  std::string samples;  // final objective: budgets N
  std::string lr_schedule = "constant", average;
  std::vector<std::string> search;  // NAME=LO:HI
  bool relative = false;
  double kurtosis = 3;
  double noise = 0;
  NoiseModelOptions nqm;
  std::uint64_t max_steps = 100'000'000;
  HorizonOptions horizon;
  unsigned threads = 0;
  std::string search_mode = "fast";
  std::string format, output;
  int digits = 3;
  std::string plot;  // --plot FILE.svg | FILE.tex
  ProgressFlags progress;
  std::string plot_kind = "frontier";
  std::string table;  // rows | summary | both (empty: both, csv rows)
  FigureOptions figure;
};

struct Problem {
  std::string spectrum, title;
  std::string init = "isotropic";
  std::uint64_t samples = 0;  ///< the final objective's budget
};

// The embedded default: the heavy-ball window on a log-uniform spectrum, and
// AccSGD's small-batch advantage appearing on a fast power law and
// disappearing on a slow one.
const std::vector<Problem> default_problems{
    {"loguniform:d=1000,kappa=1e4", "log-uniform spectrum, kappa = 1e4: heavy ball keeps SGD's CE over a ~sqrt(kappa) "
                                    "wider window"},
    {"powerlaw:d=1000,alpha=2", "fast power law, alpha = 2: AccSGD beats SGD and heavy ball at small batch"},
    {"powerlaw:d=1000,alpha=0.5", "slow power law, alpha = 0.5: the three nearly overlap at small batch"},
};

/// A problem's spectrum and initial moments as one CSV cell: no commas (they
/// become ';') and no '#' (numpy's comment character, as '_').
std::string csv_name(std::string text) {
  for (char& c : text)
    if (c == ',') c = ';';
    else if (c == '#') c = '_';
  return text;
}

/// The table with every null cell (all of them numbers here) as "nan": an
/// empty CSV field where a number is expected reads as False in numpy's
/// genfromtxt(dtype=None) when a whole column is empty.
Table with_nan(Table t) {
  for (auto& row : t.rows)
    for (Cell& c : row)
      if (c.kind == Cell::Kind::Null) c = Cell::number("nan");
  return t;
}

/// A problem in a figure's words: its spectrum, and its initial moments when
/// they are not isotropic.
std::string figure_title(const Frontier& f) {
  std::string t = spectrum_title(f.spectrum_text);
  if (f.init_text != "isotropic") t += ", init " + f.init_text;
  return t;
}

/// Panel columns of a figure of `problems` problems (one panel each for the
/// trade-off and the final objective, two otherwise).
int figure_columns(bool one_panel_each, std::size_t problems) {
  return one_panel_each ? static_cast<int>(std::min<std::size_t>(problems, 2)) : 2;
}

/// Serial runtime and compute efficiency against batch size, log-log, one
/// colour per method, critical batches marked: two panels per problem; or the
/// trade-off, steps against samples B * steps: one panel per problem; or, for
/// the final objective, the tuned L_T against batch size: one panel per
/// problem and sample budget.
plot::Figure frontier_figure(const std::vector<Frontier>& results, bool tradeoff) {
  plot::Figure fig;
  const bool final_objective = !results.empty() && results.front().options.tune.objective == Objective::Final;
  fig.columns = figure_columns(tradeoff || final_objective, results.size());
  for (const Frontier& f : results) {
    const bool rate = f.options.tune.objective == Objective::Rate;
    std::vector<plot::FrontierCurve> curves;
    for (const MethodSummary& m : f.summary.methods) {
      plot::FrontierCurve c;
      c.name = paper_method_name(m.method);
      c.color = static_cast<int>(method_index(m.method));  // the same colour for a method in every figure
      // and a dash by its place in the run, so that the curves stay apart in gray (solid,
      // dashed, dotted; dash-dot marks the critical batches)
      constexpr plot::Stroke strokes[] = {plot::Stroke::Solid, plot::Stroke::Dashed, plot::Stroke::Dotted};
      c.stroke = strokes[curves.size() % 3];
      c.critical_batch = m.critical_batch;
      for (const FrontierRow& r : f.rows) {
        if (r.method != m.method) continue;
        constexpr double not_drawn = std::numeric_limits<double>::infinity();
        c.batch.push_back(static_cast<double>(r.batch));
        if (rate) c.serial.push_back(r.tuned.stable && r.tuned.gap > 0 ? 1 / r.tuned.gap : not_drawn);
        else c.serial.push_back(r.tuned.steps ? static_cast<double>(*r.tuned.steps) : not_drawn);
        c.ce.push_back(r.ce);
        c.steps.push_back(r.tuned.steps ? static_cast<double>(*r.tuned.steps) : not_drawn);
        c.loss.push_back(r.tuned.final_loss ? *r.tuned.final_loss : not_drawn);
      }
      curves.push_back(std::move(c));
    }
    if (final_objective) {
      fig.panels.push_back(
          plot::final_loss_panel(curves, fmt::format("{}, N = {} samples", figure_title(f), f.options.samples)));
      continue;
    }
    if (tradeoff) {
      fig.panels.push_back(plot::tradeoff_panel(curves, figure_title(f)));
      continue;
    }
    const auto panels = plot::frontier_panels(
        curves, figure_title(f), rate ? "serial runtime 1/(1 \u2212 \u03c1) (steps)" : "serial runtime (steps to target)",
        rate ? "compute efficiency (1 \u2212 \u03c1)/B" : "compute efficiency 1/(B \u00b7 steps)");
    fig.panels.insert(fig.panels.end(), panels.begin(), panels.end());
  }
  return fig;
}

int run_frontier(const FrontierCliOptions& o) {
  const bool pgfplots = o.format == "pgfplots";
  const Format format = pgfplots ? Format::Text : parse_format(o.format);
  check_digits(o.digits, Precision::Double);  // the frontier's values are doubles
  const bool tradeoff = o.plot_kind == "tradeoff";
  FrontierOptions fo;
  try {
    fo.methods = parse_methods(o.methods);
    fo.batches = parse_batches(o.batches);
    fo.tune.objective = parse_objective(o.objective);
  } catch (const std::invalid_argument& e) {
    usage_error("--methods", e);
  }
  // Fixed hyperparameters: each applies to the methods that have it, and at
  // least one of them must.
  fo.tune.fixed = o.fixed.given_hyperparameters();
  for (const auto& [field, value] : fo.tune.fixed) {
    const bool used = std::any_of(fo.methods.begin(), fo.methods.end(),
                                  [&](const std::string& m) { return method_info(m).find(field) != nullptr; });
    if (!used)
      throw UsageError(fmt::format("{} applies to none of --methods {} (a fixed hyperparameter applies to the methods "
                                   "that have it)",
                                   flag_of(field), o.methods));
  }
  // Which tables: csv holds one (rows unless --table summary), json all of them.
  FrontierParts parts = FrontierParts::Both;
  if (o.table == "rows") parts = FrontierParts::Rows;
  else if (o.table == "summary") parts = FrontierParts::Summary;
  if (!o.table.empty() && (format == Format::Json || pgfplots))
    throw UsageError(fmt::format("--table applies to the table, csv, markdown and latex formats (json holds rows and "
                                 "summary)"));
  if (format == Format::Csv && parts == FrontierParts::Both) {
    if (o.table == "both")
      throw UsageError("--table both: a CSV holds one table; use --table rows (the default) or --table summary");
    parts = FrontierParts::Rows;
  }
  if (tradeoff && o.plot.empty() && !pgfplots)
    throw UsageError("--plot-kind tradeoff applies to the figure: give --plot FILE.svg|FILE.tex or --format pgfplots");
  if (o.target.empty()) {
    fo.tune.target.eps = 1e-6;
    fo.tune.target.relative = true;
  } else {
    try {
      fo.tune.target.eps = parse_finite(o.target, "--target");
    } catch (const std::invalid_argument& e) {
      usage_error("--target", e);
    }
    fo.tune.target.relative = o.relative;
  }
  fo.tune.target.max_steps = o.max_steps;
  fo.tune.target.horizon = o.horizon.make_mode();
  fo.tune.target.horizon_rtol = o.horizon.rtol;
  fo.threads = o.threads;
  fo.tune.search_mode = parse_search_mode(o.search_mode);
  try {
    fo.tune.lr_schedule = Schedule::learning_rate(o.lr_schedule);
    fo.tune.average = parse_average(o.average);
    fo.tune.boxes = parse_search_boxes(o.search);
  } catch (const std::invalid_argument& e) {
    usage_error("--lr-schedule", e);
  }
  // The final objective: one frontier per sample budget.
  std::vector<std::uint64_t> budgets{0};
  if (fo.tune.objective == Objective::Final) {
    if (o.samples.empty()) throw UsageError("--objective final needs --samples N (a sample budget, or a list)");
    budgets.clear();
    std::string_view rest = o.samples;
    while (true) {
      const auto comma = rest.find(',');
      const std::string item(rest.substr(0, comma));
      double n = 0;
      try {
        n = parse_finite(item, "--samples");
      } catch (const std::invalid_argument&) {
        n = 0;
      }
      if (!(n >= 1 && n == std::floor(n) && n < 1.8e19))
        throw UsageError(fmt::format("--samples: '{}' is not a whole number >= 1 (in '{}')", item, o.samples));
      budgets.push_back(static_cast<std::uint64_t>(n));
      if (comma == std::string_view::npos) break;
      rest = rest.substr(comma + 1);
    }
    if (tradeoff)
      throw UsageError("--plot-kind tradeoff needs steps to a target: with --objective final the figure is the "
                       "tuned loss against batch size (--plot-kind frontier)");
  } else if (!o.samples.empty()) {
    throw UsageError("--samples applies only to --objective final");
  }
  NoiseModel noise{1, o.kurtosis, o.noise};
  o.nqm.apply(noise);
  if (noise.additive() && fo.tune.objective == Objective::Rate)
    throw UsageError("--objective rate does not apply to --noise-model additive: its rate is the noiseless one at "
                     "every batch size (use --objective steps with a --target above the loss floor, or final)");
  try {
    noise.validate();
  } catch (const std::invalid_argument& e) {
    usage_error("--kurtosis", e);
  }

  // The problems: the embedded default, or each --spectrum with its --init
  // (one --init for all of them, or one per --spectrum in order).
  std::vector<Problem> problems;
  if (o.spectra.empty()) problems = default_problems;
  else
    for (const std::string& s : o.spectra) problems.push_back({s, ""});
  if (o.inits.size() > 1 && o.inits.size() != problems.size())
    throw UsageError(fmt::format("--init: given {} times for {} problems; give it once (every problem) or once per "
                                 "--spectrum (in order)",
                                 o.inits.size(), problems.size()));
  for (std::size_t i = 0; i < problems.size(); ++i)
    if (!o.inits.empty()) problems[i].init = o.inits[o.inits.size() == 1 ? 0 : i];
  check_figure_options(o.figure,
                       figure_columns(tradeoff || fo.tune.objective == Objective::Final, problems.size() * budgets.size()),
                       pgfplots || !o.plot.empty());
  // Parse every problem before computing anything, so bad input fails at once.
  std::vector<Spectrum> spectra;
  for (const auto& p : problems) {
    ProblemOptions po;
    po.spectrum = p.spectrum;
    po.init = p.init;
    po.nqm = o.nqm;
    spectra.push_back(po.make_spectrum());
    if (const Spectrum& sp = spectra.back(); !sp.lambda.empty() && !std::isfinite(sp.lambda_max() / sp.lambda_min()))
      defer_note(fmt::format("cesr frontier: note: kappa = lambda_max / lambda_min of {} exceeds the double range: "
                             "null in JSON, nan in CSV (the text summary prints it from its logarithm)\n",
                             p.spectrum));
    try {
      if (fo.tune.objective != Objective::Final) fo.tune.target.validate(spectra.back().initial_loss());
    } catch (const std::invalid_argument& e) {
      usage_error("--target", e);
    }
  }

  std::vector<Frontier> results;
  // Problems, each at every budget (one budget, 0, unless the objective is final).
  {
    std::vector<Problem> each;
    std::vector<Spectrum> each_spectrum;
    for (std::size_t i = 0; i < problems.size(); ++i)
      for (std::uint64_t n : budgets) {
        Problem p = problems[i];
        p.samples = n;
        each.push_back(p);
        each_spectrum.push_back(spectra[i]);
      }
    problems = std::move(each);
    spectra = std::move(each_spectrum);
  }
  // SIGINT/SIGTERM stop the sweep after the rows in progress; the rows
  // finished are written (marked incomplete) before the process ends by the signal.
  const InterruptScope interrupt;
  bool complete = true;
  {
    const std::size_t rows_each = fo.methods.size() * fo.batches.size();
    ProgressReporter progress("cesr frontier", "rows tuned", rows_each * problems.size(), o.progress.mode());
    for (std::size_t i = 0; i < problems.size() && complete; ++i) {
      FrontierOptions opts = fo;
      opts.samples = problems[i].samples;
      opts.keep_partial = true;
      opts.progress = [&progress, base = i * rows_each, all = rows_each * problems.size()](std::size_t done,
                                                                                        std::size_t) {
        progress.set(base + done, all);
      };
      Frontier f = compute_frontier(spectra[i], noise, opts);
      f.spectrum_text = problems[i].spectrum;
      f.init_text = problems[i].init;
      complete = f.complete;
      if (!complete) progress.mark_stopped();
      results.push_back(std::move(f));
    }
  }
  for (const auto& f : results)
    for (const auto& r : f.rows)
      if (r.tuned.confirm_failed)
        std::cerr << fmt::format(
            "cesr frontier: warning: {} {} at batch {}: the automatic-precision rate failed at the tuned point; "
            "its gap is the {} value\n",
            f.spectrum_text, r.method, r.batch, to_string(r.tuned.gap_precision));

  std::string out;
  plot::Figure fig;
  if (pgfplots || !o.plot.empty()) {
    fig = frontier_figure(results, tradeoff);
    apply_figure_options(fig, o.figure);
  }
  if (pgfplots) {
    out = plot::to_pgfplots(fig);
  } else if (format == Format::Json) {
    // One shape for every run: a list with one problem object each.
    out = "[\n";
    for (std::size_t i = 0; i < results.size(); ++i)
      out += frontier_json(results[i]) + (i + 1 < results.size() ? ",\n" : "\n");
    out += "]\n";
  } else if (format == Format::Csv) {
    // One CSV: the rows (or summaries) of every problem, led by the problem's
    // number (its place in the JSON list), spectrum and initial moments.
    Table all;
    const bool final_objective = fo.tune.objective == Objective::Final;
    for (std::size_t i = 0; i < results.size(); ++i) {
      const Frontier& f = results[i];
      Table t = parts == FrontierParts::Summary ? summary_csv_table(f) : rows_table(f);
      std::vector<std::string> lead{"problem", "spectrum", "init"};
      std::vector<Cell> cells{Cell::number(std::to_string(i + 1)), Cell::string(csv_name(f.spectrum_text)),
                              Cell::string(csv_name(f.init_text))};
      if (final_objective) {
        lead.push_back("samples");
        cells.push_back(Cell::number(std::to_string(f.options.samples)));
      }
      if (all.columns.empty()) {
        all.columns = lead;
        all.columns.insert(all.columns.end(), t.columns.begin(), t.columns.end());
      }
      for (auto& row : t.rows) {
        row.insert(row.begin(), cells.begin(), cells.end());
        all.rows.push_back(std::move(row));
      }
    }
    out = render(with_nan(all), Format::Csv);
  } else {
    for (std::size_t i = 0; i < results.size(); ++i) {
      std::string title =
          o.spectra.empty() ? fmt::format("{} -- {}", problems[i].spectrum, problems[i].title) : problems[i].spectrum;
      if (problems[i].init != "isotropic") title += ", init " + problems[i].init;
      if (problems[i].samples) title += fmt::format(", N = {} samples", problems[i].samples);
      out += (i ? "\n" : "") + render_frontier(results[i], format, title, o.digits, parts);
    }
  }
  if (!complete) {
    std::size_t rows = 0;
    for (const auto& f : results) rows += f.rows.size();
    const std::string note = fmt::format("incomplete: interrupted after {} of {} rows", rows,
                                         fo.methods.size() * fo.batches.size() * problems.size());
    // JSON says "complete": false in the problem stopped; tables end with a note.
    if (format == Format::Csv || format == Format::Latex || pgfplots) out += (format == Format::Latex || pgfplots ? "% " : "# ") + note + "\n";
    else if (format != Format::Json) out += "\n(" + note + ")\n";
    std::cerr << fmt::format("cesr frontier: {}; writing them\n", note);
  }
  const std::string figure = o.plot.empty() ? "" : plot::render_for_file(fig, o.plot);
  write_output(o.output, out);
  write_plot(o.plot, figure);
  // (a signal after the last row: the output is complete, the exit still an interrupt's)
  if (!complete || interrupt.signal() != 0) interrupt.end_as_interrupted();
  // A method none of whose rows is usable has no frontier: say so, exit 1.
  std::string unusable;
  for (const Frontier& f : results)
    for (const MethodSummary& m : f.summary.methods)
      if (!m.best_ce && !m.best_loss) unusable += fmt::format("{}{} on {}", unusable.empty() ? "" : ", ", m.method,
                                              f.spectrum_text);
  if (!unusable.empty()) {
    std::cerr << fmt::format("cesr frontier: no usable batch size for {} ({})\n", unusable,
                             fo.tune.objective == Objective::Steps
                                 ? fmt::format("the target is not reached within --max-steps {}", o.max_steps)
                                 : std::string("no stable hyperparameters found"));
    return Exit::not_reached;
  }
  return Exit::ok;
}

const Registrar registrar{{"frontier",
                           "Tuned serial runtime vs compute efficiency across batch sizes (the main job)", 50,
                           [](CLI::App& app) {
  auto o = std::make_shared<FrontierCliOptions>();
  app.add_option("--spectrum", o->spectra,
                 "Eigenvalues of H: powerlaw:d=N,alpha=A[,scale=S], loguniform:d=N,kappa=K[,scale=S], "
                 "file:PATH (lambda or lambda w per line) or npy:PATH; repeatable (one problem each, one table "
                 "and figure). Without it: the embedded default (loguniform:d=1000,kappa=1e4, "
                 "powerlaw:d=1000,alpha=2 and powerlaw:d=1000,alpha=0.5)")
      ->group("Problem");
  app.add_option("--init", o->inits,
                 "Initial second moments: isotropic (default), powerlaw:beta=B, file:PATH or npy:PATH; once for "
                 "every problem, or once per --spectrum (in order)")
      ->group("Problem");
  o->nqm.kurtosis_option = app.add_option("--kurtosis", o->kurtosis, "Fourth moment K of the whitened covariates (3 Gaussian)")
      ->capture_default_str()
      ->group("Problem");
  o->nqm.noise_option =
      app.add_option("--noise", o->noise, "Label-noise variance sigma^2")->capture_default_str()->group("Problem");
  o->nqm.add(app);
  app.add_option("--methods,--method", o->methods, "Comma-separated methods to tune (any of cesr methods but custom)")
      ->capture_default_str()
      ->group("Sweep");
  app.add_option("--batches,--batch", o->batches, "Batch sizes: LO:HI:xF (LO, LO*F, ... up to HI) or a list 1,8,64")
      ->capture_default_str()
      ->group("Sweep");
  app.add_option("--objective", o->objective,
                 "rate: maximise the gap 1 - rho (ce = gap/B); steps: minimise exact steps (ce = 1/(B steps)); "
                 "final: minimise the exact loss at a sample budget --samples")
      ->check(CLI::IsMember({"rate", "steps", "final"}))
      ->capture_default_str()
      ->group("Sweep");
  app.add_option("--lr-schedule", o->lr_schedule,
                 "Learning-rate factor schedule (as in cesr loss; with --objective final, steps= may be left out: "
                 "each batch's horizon floor(N/B) is used, so warmup=5% scales with it)")
      ->capture_default_str()
      ->group("Sweep");
  app.add_option("--search", o->search,
                 "Search box of a tuned hyperparameter, NAME=LO:HI in its own units (applies to the methods that have "
                 "it); repeatable")
      ->group("Sweep");
  app.add_option("--average", o->average, "Tune the loss of an average of the iterate: ema:decay=G, polyak or tail:start=S")
      ->group("Sweep");
  app.add_option("--samples", o->samples,
                 "Final objective: the sample budget N (batch B runs floor(N/B) steps and is tuned for its L_T), "
                 "or a list 1e5,1e6 / LO:HI:xF for one frontier per budget")
      ->group("Sweep");
  app.add_option("--target", o->target,
                 "Target loss EPS (absolute unless --relative); default 1e-6 relative")
      ->group("Sweep");
  app.add_flag("--relative", o->relative, "The target is EPS * L_0")->group("Sweep");
  app.add_option("--max-steps", o->max_steps, "Steps objective: give up time stepping beyond this many steps (the exact path has no cap)")
      ->capture_default_str()
      ->group("Sweep");
  add_horizon_options(app, o->horizon);
  app.add_option("--threads", o->threads, "Worker threads (0: all cores); the output does not depend on it")
      ->capture_default_str()
      ->group("Sweep");
  app.add_option("--search-mode", o->search_mode,
                 "fast: each method's batches in order, each starting from the previous optimum (quasi-Newton on "
                 "the exact gradient of the gap, the global search where that loses the optimum); global: every "
                 "row by the dense grid and Nelder-Mead (docs/tune.md)")
      ->check(CLI::IsMember({"fast", "global"}))
      ->capture_default_str()
      ->group("Sweep");
  add_hyperparameter_options(app, o->fixed, true, "Fixed hyperparameters (each applies to the methods that have it)");
  mark_tuned_hyperparameters(app);
  add_output_options(app, o->format, o->output, "table|csv|json|markdown|latex|pgfplots", "table");
  app.add_option("--table", o->table,
                 "Tables shown: rows, summary or both (table, markdown, latex: both by default; csv: rows by "
                 "default, summary for the critical batches and window as CSV)")
      ->check(CLI::IsMember({"rows", "summary", "both"}))
      ->group("Output");
  add_digits_option(app, o->digits);
  add_progress_options(app, o->progress);
  add_plot_option(app, o->plot,
                  "serial runtime and compute efficiency against batch size, log-log, critical batch sizes "
                  "marked, slope -1 reference (or the trade-off: --plot-kind); with --objective final the tuned "
                  "loss L_T against batch size, one panel per problem and budget");
  app.add_option("--plot-kind", o->plot_kind,
                 "frontier: serial runtime and compute efficiency against B (two panels per problem); tradeoff: "
                 "steps against samples B*steps, one curve per method, critical batch ringed (one panel per problem)")
      ->check(CLI::IsMember({"frontier", "tradeoff"}))
      ->capture_default_str()
      ->group("Output");
  add_figure_options(app, o->figure);
  app.footer(
      "Rows: method, batch, gap, steps, ce and the tuned hyperparameters; then per method the best ce,\n"
      "the critical batch (ce falls to half its best, interpolated in log B / log ce) and McCandlish's\n"
      "E_min/S_min; and the heavy-ball window B_crit(hb)/B_crit(sgd) next to sqrt(kappa).\n"
      "With the rate objective, steps = ceil(ln(L_0/goal) / -ln rho) from the asymptotic rate.\n"
      "Examples:\n  cesr frontier\n"
      "  cesr frontier --spectrum loguniform:d=100,kappa=1e4 --methods sgd,hb --batches 1:4096:x4 --format json\n"
      "  cesr frontier --spectrum powerlaw:d=100,alpha=2 --spectrum powerlaw:d=100,alpha=0.5 --momentum 0.9 "
      "--methods sgd,hb\n"
      "  cesr frontier --spectrum loguniform:d=100,kappa=1e4 --objective steps --plot tradeoff.svg --plot-kind tradeoff");
  return [o] { return run_frontier(*o); };
}}};

}  // namespace
}  // namespace cesr::cli
