// cesr stability: the largest stable step size of a method and the step size
// that maximises its contraction gap (see docs/stability.md).
#include "common.hpp"

#include "cesr/stability.hpp"

#include <fmt/format.h>

#include <cmath>
#include <iostream>

namespace cesr::cli {
namespace {

struct StabilityOptions {
  ProblemOptions problem;
  double rtol = 1e-10;
  std::string format, output;
};

int run_stability(StabilityOptions o) {
  const Spectrum spectrum = o.problem.make_spectrum();
  // The step size is the unknown: validate the other hyperparameters with a
  // unit step size, which stability_limits replaces.
  bool from_file = false;
  try {
    from_file = method_info(o.problem.method).from_file;
  } catch (const std::invalid_argument&) {
    // an unknown method: make_method names it
  }
  if (!from_file) o.problem.hyper["lr"] = "1";
  const MethodSpec spec = o.problem.make_method();
  const NoiseModel noise = o.problem.make_noise();
  const std::optional<Precision> precision = o.problem.make_auto_precision();
  const Format format = parse_json_or_table(o.format);
  check_escalation_rtol(o.rtol);
  AutoStability s;
  try {
    s = stability_limits_auto(spectrum, spec, noise, precision, o.rtol);
  } catch (const UnstableAtEveryStepSize& e) {
    std::cerr << fmt::format("cesr stability: {}\n", e.what());
    return Exit::diverged;
  }
  std::string text;
  if (format == Format::Json) {
    text = fmt::format(
        "{{\"lr_max\": {}, \"lr_best\": {}, \"gap_best\": {}, \"precision\": \"{}\", \"rate_evaluations\": {}, "
        "\"secular_evaluations\": {}}}\n",
        s.lr_max_text, s.lr_best_text, s.gap_best_text, to_string(s.precision), s.rate_evaluations,
        s.secular_evaluations);
  } else {
    Table t{{"lr_max", "lr_best", "gap_best", "precision", "rate_evaluations"}, {}};
    t.rows.push_back({Cell::number(s.lr_max_text), Cell::number(s.lr_best_text), Cell::number(s.gap_best_text),
                      Cell::string(std::string(to_string(s.precision))),
                      Cell::number(std::to_string(s.rate_evaluations))});
    text = render(t, format);
  }
  write_output(o.output, text);
  return Exit::ok;
}

const Registrar registrar{{"stability", "Largest stable step size and the step size with the best gap", 35,
                           [](CLI::App& app) {
  auto o = std::make_shared<StabilityOptions>();
  ProblemFlags flags;
  flags.step_size = false;  // the unknown
  flags.auto_precision = true;
  add_problem_options(app, o->problem, flags);
  app.add_option("--rtol", o->rtol,
                 "With --precision auto: relative agreement on lr_max and the best gap required between two "
                 "successive precisions")
      ->capture_default_str()
      ->group("Numerics");
  add_output_options(app, o->format, o->output, "json|table", "json");
  app.footer(
      "Prints {\"lr_max\": largest stable step size (rho = 1), \"lr_best\": step size with the largest gap,\n"
      "\"gap_best\": that gap, \"precision\": P, \"rate_evaluations\": n, \"secular_evaluations\": m}, all with 17\n"
      "significant digits. The other hyperparameters, the batch size and K are held fixed. lr_best is\n"
      "located by Brent's method to about 1e-8 relatively (the gap is flat there); the gap at it is exact.\n"
      "For --method custom the step size multiplies q of the method file.\n"
      "Exit codes: 0 ok, 2 bad input (including a spectrum whose step sizes ~1/lambda_max leave the range of\n"
      "double), 3 the method diverges at every step size (e.g. a custom method with q = 0 and rho >= 1).\n"
      "Example:\n  cesr stability --spectrum loguniform:d=100,kappa=1e4 --method hb --momentum 0.9 --batch 8");
  return [o] { return run_stability(*o); };
}}};

}  // namespace
}  // namespace cesr::cli
