// cesr tune: the hyperparameters that maximise the contraction gap (rate
// objective) or minimise the exact steps to a target (steps objective) for one
// method at one batch size.
#include "common.hpp"

#include "cesr/tune.hpp"

#include <fmt/format.h>

#include <iostream>

namespace cesr::cli {
namespace {

struct TuneCliOptions {
  ProblemOptions problem;
  std::string objective = "rate";
  std::string target;  // empty: 1e-6 relative
  bool relative = false;
  std::uint64_t max_steps = 100'000'000;
  HorizonOptions horizon;
  std::vector<std::string> search;  // NAME=LO:HI
  std::uint64_t steps = 0;          // the final objective's horizon
  std::string search_mode = "fast";
  std::string format, output;
  ProgressFlags progress;
};

// 17 significant digits: pasting the value back gives the identical double.
std::string digits17(double x) { return fmt::format("{:.17g}", x); }

int run_tune(const TuneCliOptions& o) {
  const Spectrum spectrum = o.problem.make_spectrum();
  const NoiseModel noise = o.problem.make_noise();
  const Format format = parse_json_or_table(o.format);
  const MethodInfo* row = nullptr;
  try {
    row = &method_info(o.problem.method);
  } catch (const std::invalid_argument& e) {
    usage_error("--method", e);
  }
  if (!o.problem.method_file.empty())
    throw UsageError(fmt::format("--method-file {}: custom methods cannot be tuned", o.problem.method_file));
  TuneOptions t;
  t.fixed = o.problem.given_hyperparameters();
  t.average = o.problem.make_average();
  try {
    t.lr_schedule = Schedule::learning_rate(o.problem.lr_schedule);
    t.momentum_schedule = Schedule::momentum(o.problem.momentum_schedule);
  } catch (const std::invalid_argument& e) {
    usage_error("--lr-schedule", e);
  }
  t.boxes = parse_search_boxes(o.search);
  try {
    t.objective = parse_objective(o.objective);
  } catch (const std::invalid_argument& e) {
    usage_error("--objective", e);
  }
  if (o.target.empty()) {
    t.target.eps = 1e-6;
    t.target.relative = true;
  } else {
    try {
      t.target.eps = parse_finite(o.target, "--target");
    } catch (const std::invalid_argument& e) {
      usage_error("--target", e);
    }
    t.target.relative = o.relative;
  }
  t.target.max_steps = o.max_steps;
  t.search_mode = parse_search_mode(o.search_mode);
  t.target.horizon = o.horizon.make_mode();
  t.target.horizon_rtol = o.horizon.rtol;
  if (t.objective == Objective::Final) {
    if (o.steps == 0) throw UsageError("--objective final needs --steps T (the horizon)");
    t.horizon = o.steps;
  } else if (o.steps != 0) {
    throw UsageError("--steps applies only to --objective final (the steps objective counts steps to --target)");
  }
  TuneResult r;
  try {
    // The points a search tries are not known in advance: the line shows those tried.
    ProgressReporter progress("cesr tune", "points", 0, o.progress.mode());
    const WorkScope counting(&progress.counter());
    r = tune(spectrum, row->name, noise, t);
  } catch (const std::invalid_argument& e) {
    usage_error("--method", e);
  }
  const std::string name(row->name);
  if (!r.stable && t.objective != Objective::Steps) {
    std::cerr << fmt::format("cesr tune: {} has no {} hyperparameters at batch {} in the search box\n", name,
                             t.objective == Objective::Rate ? "stable" : "non-diverging", noise.batch);
    return Exit::diverged;
  }
  if (r.confirm_failed)
    std::cerr << fmt::format(
        "cesr tune: warning: the automatic-precision rate failed at the tuned point; the gap is the {} value\n",
        to_string(r.gap_precision));
  // The hyperparameters the row searches (tuned or fixed by the user), in its order.
  std::vector<std::pair<std::string, double>> params;
  for (const auto& h : row->hyperparameters)
    if (h.search != Search::None || r.method.values.count(h.name))
      if (const auto v = r.method.get(h.name)) params.emplace_back(std::string(h.name), *v);
  const bool final_objective = t.objective == Objective::Final;
  // The final objective reports its horizon as steps and L_T as loss.
  const std::string steps = final_objective ? std::to_string(t.horizon) : r.steps ? std::to_string(*r.steps) : "null";
  const std::string loss = r.final_loss ? digits17(*r.final_loss) : "null";
  const bool has_gap = r.stable && r.has_rate;
  const std::string gap = has_gap ? digits17(r.gap) : "null";
  std::string box;
  for (const auto& a : r.box)
    box += fmt::format("{}{{\"name\": \"{}\", \"coordinate\": \"{}\", \"lo\": {}, \"hi\": {}}}", box.empty() ? "" : ", ",
                       a.name, a.coordinate, digits17(a.lo), digits17(a.hi));
  std::string out;
  if (format == Format::Json) {
    std::string p;
    for (const auto& [name, value] : params) p += fmt::format("{}\"{}\": {}", p.empty() ? "" : ", ", name, digits17(value));
    out = fmt::format(
        "{{\"method\": \"{}\", \"batch\": {}, \"objective\": \"{}\", \"params\": {{{}}}, \"gap\": {}, \"steps\": {}, "
        "{}\"evaluations\": {}, \"search\": [{}]{}}}\n",
        name, noise.batch, to_string(t.objective), p, gap, steps,
        final_objective ? fmt::format("\"loss\": {}, ", loss) : std::string(), r.evaluations, box,
        t.average.given() ? fmt::format(", \"average\": \"{}\"", to_string(t.average)) : std::string());
  } else {
    Table tab{{"method", "batch", "objective"}, {}};
    std::vector<Cell> cells{Cell::string(name), Cell::number(std::to_string(noise.batch)),
                          Cell::string(std::string(to_string(t.objective)))};
    for (const auto& [name, value] : params) {
      tab.columns.push_back(name);
      cells.push_back(Cell::number(digits17(value)));
    }
    for (const char* c : {"gap", "steps"}) tab.columns.push_back(c);
    cells.push_back(has_gap ? Cell::number(gap) : Cell::null());
    cells.push_back(steps != "null" ? Cell::number(steps) : Cell::null());
    if (final_objective) {
      tab.columns.push_back("loss");
      cells.push_back(r.final_loss ? Cell::number(loss) : Cell::null());
    }
    tab.columns.push_back("evaluations");
    cells.push_back(Cell::number(std::to_string(r.evaluations)));
    tab.rows.push_back(cells);
    out = render(tab, Format::Text);
  }
  write_output(o.output, out);
  if (t.objective == Objective::Steps && !r.steps) {
    std::cerr << fmt::format("cesr tune: the target is not reached within --max-steps {}\n", o.max_steps);
    return Exit::not_reached;
  }
  return Exit::ok;
}

const Registrar registrar{{"tune", "Tune a method's hyperparameters at one batch size (rate or steps)", 40,
                           [](CLI::App& app) {
  auto o = std::make_shared<TuneCliOptions>();
  ProblemFlags flags;
  flags.precision = false;
  add_problem_options(app, o->problem, flags);
  add_threads_option(app);
  // The hyperparameter options fix a value; the others are tuned where the method searches them.
  mark_tuned_hyperparameters(app);
  app.add_option("--search", o->search,
                 "Search box of a tuned hyperparameter in its own units, NAME=LO:HI (e.g. xi=1:1e4 widens AccSGD's "
                 "xi beyond sqrt(kappa)); repeatable")
      ->group("Tuning");
  app.add_option("--objective", o->objective,
                 "rate: maximise the contraction gap 1 - rho; steps: minimise the exact steps to --target; final: "
                 "minimise the exact loss L_T after --steps T (schedules are part of the problem)")
      ->check(CLI::IsMember({"rate", "steps", "final"}))
      ->capture_default_str()
      ->group("Tuning");
  app.add_option("--target", o->target,
                 "Target loss EPS for the step count (absolute unless --relative); default 1e-6 relative")
      ->group("Tuning");
  app.add_flag("--relative", o->relative, "The target is EPS * L_0")->group("Tuning");
  app.add_option("--steps", o->steps, "Final objective: the horizon T (minimise the exact loss L_T)")
      ->group("Tuning");
  app.add_option("--max-steps", o->max_steps, "Steps objective: give up time stepping beyond this many steps (the exact path has no cap)")
      ->capture_default_str()
      ->group("Tuning");
  app.add_option("--search-mode", o->search_mode,
                 "fast: coarse grid, then quasi-Newton on the exact gradient of the gap; global: the dense grid "
                 "and Nelder-Mead everywhere (docs/tune.md)")
      ->check(CLI::IsMember({"fast", "global"}))
      ->capture_default_str()
      ->group("Tuning");
  add_horizon_options(app, o->horizon);
  add_output_options(app, o->format, o->output, "json|table", "json");
  add_progress_options(app, o->progress);
  app.footer(
      "Prints {\"method\", \"batch\", \"objective\", \"params\": {...}, \"gap\", \"steps\", \"evaluations\",\n"
      "\"search\": [the box searched: {\"name\", \"coordinate\", \"lo\", \"hi\"}, ...]};\n"
      "hyperparameters carry 17 significant digits, so they paste back into `cesr steps` exactly.\n"
      "The search runs in double; the reported gap is confirmed in automatic precision.\n"
      "Example:\n  cesr tune --spectrum loguniform:d=100,kappa=1e4 --method hb --batch 16");
  return [o] { return run_tune(*o); };
}}};

}  // namespace
}  // namespace cesr::cli
