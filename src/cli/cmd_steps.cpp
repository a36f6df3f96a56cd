// cesr steps: the first step at which the exact expected loss reaches a target.
#include "common.hpp"

#include <fmt/format.h>

#include <cmath>
#include <iostream>

namespace cesr::cli {
namespace {

struct StepsOptions {
  ProblemOptions problem;
  double target = 0;
  bool relative = false;
  std::uint64_t max_steps = 100'000'000;
  double rtol = 1e-10;
  std::string output;
  HorizonOptions horizon;
  ProgressFlags progress;
};

int run_steps(const StepsOptions& o) {
  const Spectrum spectrum = o.problem.make_spectrum();
  const MethodSpec spec = o.problem.make_method();
  const NoiseModel noise = o.problem.make_noise();
  const std::optional<Precision> precision = o.problem.make_auto_precision();
  check_escalation_rtol(o.rtol);
  if (!std::isfinite(o.target) || !(o.target > 0))
    throw UsageError(fmt::format("--target must be a finite number > 0, got {}", o.target));
  const HorizonMode mode = o.horizon.make_mode();
  // The steps needed are not known in advance: the line shows those done
  // (summed over the precisions that automatic precision runs).
  ProgressReporter progress("cesr steps", "steps", 0, o.progress.mode());
  const WorkScope counting(&progress.counter());
  HorizonReport rep;
  bool fell_back = false;
  const std::optional<AutoSteps> res = steps_any_horizon(spectrum, spec, noise, o.target, o.relative, mode,
                                                         o.horizon.rtol, o.max_steps, precision, o.rtol, rep, fell_back);
  if (!res) throw std::runtime_error(fmt::format("--horizon exact cannot answer: {}", rep.reason));
  if (fell_back && rep.reason.find("does not contract") == std::string::npos)  // time stepping reports the divergence
    std::cerr << fmt::format("cesr steps: {}: time stepping ({})\n", describe(spec), rep.reason);
  if (!res->agreed)
    std::cerr << fmt::format("cesr steps: warning: quad and mp50 do not agree to --rtol {:g}; mp50's answer "
                             "is printed\n",
                             o.rtol);
  if (res->diverged_at) {
    std::cerr << fmt::format("cesr steps: {} diverges: the loss exceeds {:.3g} at step {}\n", describe(spec),
                             divergence_threshold, *res->diverged_at);
    return Exit::diverged;
  }
  // The additive model adds its loss floor (the loss as t -> infinity).
  const std::string floor =
      res->floor ? fmt::format(", \"loss_floor\": {}", std::isfinite(*res->floor) ? format_real(*res->floor) : "null")
                 : "";
  const std::string json = fmt::format(
      "{{\"steps\": {}, \"reached\": {}, \"loss\": {}, \"initial_loss\": {}{}, \"horizon\": \"{}\"}}\n",
      res->steps ? std::to_string(*res->steps) : "null", res->steps ? "true" : "false", res->loss_text,
      res->initial_loss_text, floor, rep.exact ? "exact" : "stepping");
  write_output(o.output, json);
  if (rep.exact && rep.near_target)
    std::cerr << fmt::format("cesr steps: note: the target is within the tolerance (--horizon-rtol {:.3g}) of L "
                             "at a step compared; time stepping may count one step more or fewer\n",
                             o.horizon.rtol);
  if (!res->steps && res->floor && res->steps_run == 0)
    std::cerr << fmt::format("cesr steps: the target is at or below the loss floor {} of the additive noise: never reached\n",
                             format_real(*res->floor, 6));
  else if (!res->steps && rep.exact)
    std::cerr << fmt::format("cesr steps: the target is below the noise floor (L_inf = {}): never reached\n",
                             format_real(res->loss, 6));
  else if (!res->steps)
    std::cerr << fmt::format("cesr steps: target not reached within --max-steps {} (loss {} at the last step)\n",
                             o.max_steps, format_real(res->loss, 6));
  return res->steps ? Exit::ok : Exit::not_reached;
}

const Registrar registrar{{"steps", "Steps until the exact expected loss reaches a target", 20, [](CLI::App& app) {
  auto o = std::make_shared<StepsOptions>();
  ProblemFlags flags;
  flags.auto_precision = true;
  add_problem_options(app, o->problem, flags);
  app.add_option("--rtol", o->rtol,
                 "With --precision auto: the relative accuracy required of the losses compared (met by double "
                 "alone where its rounding bound is within half of it and decides every comparison, else by two "
                 "successive precisions agreeing to it and finding the same step)")
      ->capture_default_str()
      ->group("Numerics");
  app.add_option("--target", o->target, "Target loss EPS (absolute, or relative to L_0 with --relative)")
      ->required()
      ->group("Run");
  app.add_flag("--relative", o->relative, "The target is EPS * L_0")->group("Run");
  app.add_option("--max-steps", o->max_steps, "Give up time stepping after this many steps (the exact path has no cap)")
      ->capture_default_str()
      ->group("Run");
  add_horizon_options(app, o->horizon);
  app.add_option("--output,-o", o->output, "Write the JSON to FILE (atomically)")
      ->check(writable_output())
      ->group("Output");
  add_progress_options(app, o->progress);
  app.footer(
      "Prints JSON {\"steps\": t, \"reached\": true, \"loss\": L_t, \"initial_loss\": L_0, \"horizon\": \"exact\"};\n"
      "exit 1 when the target is not reached (within --max-steps when time stepping), 3 when the method diverges.\n"
      "Example:\n  cesr steps --spectrum loguniform:d=100,kappa=1e4 --method sgd --lr 1 --batch 16 "
      "--target 1e-3 --relative");
  return [o] { return run_steps(*o); };
}}};

}  // namespace
}  // namespace cesr::cli
