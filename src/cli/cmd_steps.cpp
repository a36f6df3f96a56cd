// cesr steps: the first step at which the exact expected loss reaches a target.
#include "common.hpp"

#include <fmt/format.h>

#include <iostream>

namespace cesr::cli {
namespace {

struct StepsOptions {
  ProblemOptions problem;
  double target = 0;
  bool relative = false;
  std::uint64_t max_steps = 100'000'000;
  std::string output;
  ProgressFlags progress;
};

int run_steps(const StepsOptions& o) {
  const Spectrum spectrum = o.problem.make_spectrum();
  const MethodSpec spec = o.problem.make_method();
  const NoiseModel noise = o.problem.make_noise();
  const Precision precision = o.problem.make_precision();
  if (!std::isfinite(o.target) || !(o.target > 0))
    throw UsageError(fmt::format("--target must be a finite number > 0, got {}", o.target));
  // The steps needed are not known in advance: the line shows those done.
  ProgressReporter progress("cesr steps", "steps", 0, o.progress.mode());
  const WorkScope counting(&progress.counter());
  return with_precision(precision, [&](auto zero) -> int {
    using Real = decltype(zero);
    const auto res = steps_to_target<Real>(spectrum, make_path<Real>(spec), noise, static_cast<Real>(o.target),
                                           o.relative, o.max_steps);
    if (res.diverged_at) {
      std::cerr << fmt::format("cesr steps: {} diverges: the loss exceeds {:.3g} at step {}\n", describe(spec),
                               divergence_threshold, *res.diverged_at);
      return Exit::diverged;
    }
    const std::string json = fmt::format(
        "{{\"steps\": {}, \"reached\": {}, \"loss\": {}, \"initial_loss\": {}}}\n",
        res.steps ? std::to_string(*res.steps) : "null", res.steps ? "true" : "false", format_real(res.loss),
        format_real(res.initial_loss));
    write_output(o.output, json);
    if (!res.steps)
      std::cerr << fmt::format("cesr steps: target not reached within --max-steps {} (loss {} at the last step)\n",
                               o.max_steps, format_real(res.loss, 6));
    return res.steps ? Exit::ok : Exit::not_reached;
  });
}

const Registrar registrar{{"steps", "Steps until the exact expected loss reaches a target", 20, [](CLI::App& app) {
  auto o = std::make_shared<StepsOptions>();
  add_problem_options(app, o->problem);
  app.add_option("--target", o->target, "Target loss EPS (absolute, or relative to L_0 with --relative)")
      ->required()
      ->group("Run");
  app.add_flag("--relative", o->relative, "The target is EPS * L_0")->group("Run");
  app.add_option("--max-steps", o->max_steps, "Give up after this many steps")->capture_default_str()->group("Run");
  app.add_option("--output,-o", o->output, "Write the JSON to FILE (atomically)")
      ->check(writable_output())
      ->group("Output");
  add_progress_options(app, o->progress);
  app.footer(
      "Prints JSON {\"steps\": t, \"reached\": true, \"loss\": L_t, \"initial_loss\": L_0}; exit 1 when the\n"
      "target is not reached within --max-steps, 3 when the method diverges.\n"
      "Example:\n  cesr steps --spectrum loguniform:d=100,kappa=1e4 --method sgd --lr 1 --batch 16 "
      "--target 1e-3 --relative");
  return [o] { return run_steps(*o); };
}}};

}  // namespace
}  // namespace cesr::cli
