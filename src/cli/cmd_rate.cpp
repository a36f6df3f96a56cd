// cesr rate: the contraction rate rho of the exact second-moment operator and
// its gap 1 - rho, from the secular equation (see docs/rate.md).
#include "common.hpp"

#include "cesr/rate.hpp"

#include <fmt/format.h>

#include <cmath>
#include <iostream>

namespace cesr::cli {
namespace {

struct RateOptions {
  ProblemOptions problem;
  double rtol = 1e-10;
  std::string format, output;
};

std::string render_rate(const AutoRate& r, Format format) {
  // rho beyond the range of the precision used is infinite: JSON null.
  const bool finite = r.rho_text != "inf";
  if (format == Format::Json)
    return fmt::format(
        "{{\"rho\": {}, \"gap\": {}, \"stable\": {}, \"precision\": \"{}\", \"evaluations\": {}}}\n",
        finite ? r.rho_text : "null", finite ? r.gap_text : "null", r.stable ? "true" : "false",
        to_string(r.precision), r.evaluations);
  Table t{{"rho", "gap", "stable", "precision", "evaluations"}, {}};
  t.rows.push_back({Cell::number(r.rho_text), Cell::number(r.gap_text), Cell::string(r.stable ? "true" : "false"),
                    Cell::string(std::string(to_string(r.precision))),
                    Cell::number(std::to_string(r.evaluations))});
  return render(t, format);
}

int run_rate(const RateOptions& o) {
  const Spectrum spectrum = o.problem.make_spectrum();
  const MethodSpec spec = o.problem.make_method();
  const NoiseModel noise = o.problem.make_noise();
  const std::optional<Precision> precision = o.problem.make_auto_precision();
  const Format format = parse_json_or_table(o.format);
  check_escalation_rtol(o.rtol);
  const AutoRate r = precision ? contraction_rate_in(*precision, spectrum, spec, noise)
                               : contraction_rate_auto(spectrum, spec, noise, o.rtol);
  write_output(o.output, render_rate(r, format));
  if (!precision && !r.agreed && r.rho_text != "inf")
    std::cerr << fmt::format("cesr rate: note: quad and mp50 did not agree on the gap to --rtol {:g}; the mp50 answer "
                             "is printed\n",
                             o.rtol);
  if (!r.stable) {
    if (r.rho_text == "inf")
      std::cerr << fmt::format("cesr rate: {} diverges at batch {}: rho exceeds the range of {}\n", describe(spec),
                               noise.batch, to_string(r.precision));
    else
      std::cerr << fmt::format("cesr rate: {} diverges at batch {}: rho = {} >= 1\n", describe(spec), noise.batch,
                               round_number_text(r.rho_text, 10));
    return Exit::diverged;
  }
  return Exit::ok;
}

const Registrar registrar{{"rate", "Contraction rate rho and gap 1 - rho of the second-moment operator", 30,
                           [](CLI::App& app) {
  auto o = std::make_shared<RateOptions>();
  ProblemFlags flags;
  flags.auto_precision = true;
  add_problem_options(app, o->problem, flags);
  add_threads_option(app);
  app.add_option("--rtol", o->rtol,
                 "With --precision auto: relative agreement on the gap required between two successive precisions "
                 "(1e-32 to 1)")
      ->capture_default_str()
      ->group("Numerics");
  add_output_options(app, o->format, o->output, "json|table", "json");
  app.footer(
      "Prints {\"rho\": rho, \"gap\": 1 - rho, \"stable\": rho < 1, \"precision\": P, \"evaluations\": n}.\n"
      "rho is the spectral radius of the exact second-moment operator (a root of its secular equation),\n"
      "printed with every digit of the precision P that produced it; gap keeps its relative accuracy\n"
      "when rho is close to 1. The label noise does not change rho. Exit 3 (with the JSON still\n"
      "printed) when rho >= 1. With --precision auto, P is the precision of the printed digits; the\n"
      "next lower precision agreed with it to --rtol (double alone is never reported by auto).\n"
      "A forced --precision prints only what it certifies: when its rounding errors could flip the\n"
      "sign of the gap, or leave not one digit of it certain, exit 2 with a message (use auto).\n"
      "Example:\n  cesr rate --spectrum loguniform:d=100,kappa=1e4 --method hb --lr 0.1 --momentum 0.9 --batch 8");
  return [o] { return run_rate(*o); };
}}};

}  // namespace
}  // namespace cesr::cli
