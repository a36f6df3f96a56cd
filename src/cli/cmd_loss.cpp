// cesr loss: the exact expected loss curve L_t.
#include "common.hpp"

#include <fmt/format.h>

#include <iostream>

namespace cesr::cli {
namespace {

struct LossOptions {
  ProblemOptions problem;
  std::uint64_t steps = 0;
  std::uint64_t every = 1;
  std::string format, output;
};

int run_loss(const LossOptions& o) {
  const Spectrum spectrum = o.problem.make_spectrum();
  const MethodSpec spec = o.problem.make_method();
  const NoiseModel noise = o.problem.make_noise();
  const Precision precision = o.problem.make_precision();
  const Format format = parse_format(o.format);
  if (o.every < 1) throw UsageError(fmt::format("--every must be >= 1, got {}", o.every));
  return with_precision(precision, [&](auto zero) -> int {
    using Real = decltype(zero);
    const auto curve = loss_curve<Real>(spectrum, make_method<Real>(spec), noise, o.steps, o.every);
    if (curve.diverged_at) {
      std::cerr << fmt::format("cesr loss: {} diverges: the loss exceeds {:.3g} at step {}\n", describe(spec),
                               divergence_threshold, *curve.diverged_at);
      return Exit::diverged;
    }
    Table t{{"step", "loss"}, {}};
    for (std::size_t i = 0; i < curve.step.size(); ++i)
      t.rows.push_back({Cell::number(std::to_string(curve.step[i])), Cell::number(format_real(curve.loss[i]))});
    write_output(o.output, render(t, format));
    return Exit::ok;
  });
}

const Registrar registrar{{"loss", "Exact expected loss curve L_t of a method", 10, [](CLI::App& app) {
  auto o = std::make_shared<LossOptions>();
  add_problem_options(app, o->problem);
  app.add_option("--steps", o->steps, "Number of steps T")->required()->group("Run");
  app.add_option("--every", o->every, "Print every N-th step (the last step is always printed)")
      ->capture_default_str()
      ->group("Run");
  add_output_options(app, o->format, o->output, "csv|json|table", "csv");
  app.footer(
      "Example:\n  cesr loss --spectrum powerlaw:d=1000,alpha=1.5 --method hb --lr 0.5 --momentum 0.9 "
      "--batch 8 --steps 1000 --every 100");
  return [o] { return run_loss(*o); };
}}};

}  // namespace
}  // namespace cesr::cli
