// cesr simulate: Monte Carlo of the real stochastic iteration next to the exact curve.
#include "common.hpp"

#include "cesr/check.hpp"
#include "cesr/plot.hpp"
#include "cesr/simulate.hpp"

#include <fmt/format.h>

#include <cmath>
#include <iostream>

namespace cesr::cli {
namespace {

struct SimulateOptions {
  ProblemOptions problem;
  std::uint64_t steps = 0;
  std::uint64_t runs = 0;
  std::uint64_t seed = 1;
  std::uint64_t every = 1;
  std::string covariates = "gaussian";
  unsigned threads = 0;
  std::string format, output;
  std::string plot, plot_scale = "semilogy";  // --plot FILE.svg | FILE.tex
  FigureOptions figure;
  const CLI::Option* kurtosis_flag = nullptr;  // to tell "--kurtosis given" from its default
  ProgressFlags progress;
};

/// Heuristic: warn about heavy tails when the largest run carries more than
/// this many times ln(R)/R of the summed loss (about what an exponential tail
/// gives; a Gaussian-like loss gives less).
constexpr double heavy_tail_factor = 10;

/// The simulation as a table with the normative columns
/// step,theory,mean,stderr,z,judged_by: every field is a number except
/// judged_by, which says how the summary judged the point ("z", or "rel_error"
/// where stderr = 0, as at step 0 where every run has the same loss: z is then
/// undefined and written as 0).
Table simulation_table(const SimulationResult& r, const CheckReport& rep) {
  Table t{{"step", "theory", "mean", "stderr", "z", "judged_by"}, {}};
  for (std::size_t i = 0; i < r.step.size(); ++i) {
    const auto& z = rep.rows[i].z;
    t.rows.push_back({Cell::number(std::to_string(r.step[i])), Cell::number(format_real(r.theory[i])),
                      Cell::number(format_real(r.mean[i])), Cell::number(format_real(r.std_error[i])),
                      Cell::number(z ? format_real(*z, 6) : std::string("0")), Cell::string(z ? "z" : "rel_error")});
  }
  return t;
}

/// The JSON form: the run's metadata and verdict, then the rows.
std::string simulation_json(const SimulationResult& r, const CheckReport& rep, const MethodSpec& spec,
                            const NoiseModel& noise, const SimulationConfig& config, std::string_view spectrum,
                            std::string_view rule, const std::optional<std::size_t>& heavy_tail) {
  const std::string rows = render(simulation_table(r, rep), Format::Json);
  std::string worst = "null";
  for (std::size_t i = 0; i < rep.rows.size(); ++i)
    if (rep.rows[i].z && std::abs(*rep.rows[i].z) == rep.max_abs_z) worst = std::to_string(r.step[i]);
  return fmt::format(
      "{{\n  \"command\": \"simulate\",\n  \"spectrum\": {},\n  \"method\": {},\n  \"batch\": {},\n"
      "  \"runs\": {},\n  \"seed\": {},\n  \"steps\": {},\n  \"every\": {},\n  \"covariates\": \"{}\",\n"
      "  \"kurtosis\": {},\n  \"verdict\": \"{}\",\n  \"rule\": {},\n  \"z_points\": {},\n"
      "  \"within_3\": {},\n  \"zmax\": {},\n  \"max_abs_z\": {},\n  \"max_abs_z_step\": {},\n"
      "  \"heavy_tail_step\": {},\n  \"rows\": {}}}\n",
      json_quote(spectrum), json_quote(describe(spec)), noise.batch, r.runs, config.seed, config.steps,
      config.every, to_string(r.covariates), fmt::format("{}", r.kurtosis), rep.agree ? "agree" : "disagree",
      json_quote(rule), rep.z_rows, rep.within_3, rep.z_rows > 0 ? format_real(rep.zmax, 17) : "null",
      format_real(rep.max_abs_z, 17), worst, heavy_tail ? std::to_string(r.step[*heavy_tail]) : "null", rows);
}

int run_simulate(const SimulateOptions& o) {
  const Spectrum spectrum = o.problem.make_spectrum();
  ProblemOptions problem_with_horizon = o.problem;
  problem_with_horizon.horizon = o.steps;  // for schedules that leave out steps=
  const MethodSpec spec = problem_with_horizon.make_method();
  const Precision precision = o.problem.make_precision();
  const bool pgfplots = o.format == "pgfplots";
  const Format format = pgfplots ? Format::Csv : parse_format(o.format);
  plot::Scales scales;
  try {
    scales = plot::parse_scales(o.plot_scale);
  } catch (const std::invalid_argument& e) {
    usage_error("--plot-scale", e);
  }
  check_figure_options(o.figure, 1, pgfplots || !o.plot.empty());
  SimulationConfig config;
  try {
    config.covariates = parse_covariates(o.covariates);
  } catch (const std::invalid_argument& e) {
    usage_error("--covariates", e);
  }
  config.steps = o.steps;
  config.every = o.every;
  config.runs = o.runs;
  config.seed = o.seed;
  config.threads = o.threads;
  try {
    config.validate();
  } catch (const std::invalid_argument& e) {
    usage_error("--runs", e);
  }
  // The theory column uses the fourth moment of the simulated law unless --kurtosis overrides it.
  ProblemOptions problem = o.problem;
  if (o.problem.nqm.kind() == NoiseKind::Additive) {
    // The additive model draws no covariates: its gradient noise is Gaussian N(0, C/B).
    if (config.covariates != Covariates::Gaussian)
      throw UsageError("--covariates does not apply to --noise-model additive (no data is sampled)");
  } else if (o.kurtosis_flag == nullptr || o.kurtosis_flag->count() == 0) {
    problem.kurtosis = fourth_moment(config.covariates);
  }
  const NoiseModel noise = problem.make_noise();

  const SimulationResult result = [&] {
    // Counted in steps: the exact curve's, then every run's (0, unknown, past 2^64).
    const double total = double(o.steps) * (double(o.runs) + 1);
    ProgressReporter progress("cesr simulate", "steps", total < 1.8e19 ? std::uint64_t(total) : 0, o.progress.mode());
    const WorkScope counting(&progress.counter());
    return simulate(spectrum, spec, noise, config, precision);
  }();
  if (result.diverged_at) {
    std::cerr << fmt::format("cesr simulate: {} diverges: the loss exceeds {:.3g} at step {}\n", describe(spec),
                             divergence_threshold, *result.diverged_at);
    return Exit::diverged;
  }
  std::vector<std::optional<double>> se(result.std_error.begin(), result.std_error.end());
  const CheckReport rep = check_curve(result.mean, se, result.theory, CheckOptions{});
  std::string worst;
  for (std::size_t i = 0; i < rep.rows.size(); ++i)
    if (rep.rows[i].z && std::abs(*rep.rows[i].z) == rep.max_abs_z)
      worst = fmt::format(", largest |z| = {:.3g} at step {}", rep.max_abs_z, result.step[i]);
  const std::string rule =
      rep.z_rows > 0 ? fmt::format("|z| <= {:.3g}, Sidak-corrected for {} points at alpha = 0.001", rep.zmax,
                                   rep.z_rows)
                     : std::string("relative error <= 0.05: no point has a positive standard error");
  // The z-test needs the mean over runs to be near Gaussian. Close to the
  // stability edge the loss is heavy-tailed (its variance involves fourth
  // moments of the error, which blow up at smaller step sizes than the second),
  // and one rare run can carry most of the sample variance; say so.
  std::size_t heavy = result.largest_share.size();
  for (std::size_t i = 0; i < result.largest_share.size(); ++i)
    if (heavy == result.largest_share.size() || result.largest_share[i] > result.largest_share[heavy]) heavy = i;
  const double runs = static_cast<double>(result.runs);
  std::optional<std::size_t> heavy_tail;
  if (heavy < result.largest_share.size() && result.largest_share[heavy] > heavy_tail_factor * std::log(runs) / runs)
    heavy_tail = heavy;

  // The exact curve, the simulated mean and its +-2 standard-error band.
  plot::Figure figure = plot::simulation_figure(
      std::vector<double>(result.step.begin(), result.step.end()), result.theory, result.mean, result.std_error,
      fmt::format("{}, B = {}, {} runs", method_label(spec), noise.batch, result.runs), scales);
  apply_figure_options(figure, o.figure);
  const std::string plot_text = o.plot.empty() ? "" : plot::render_for_file(figure, o.plot);
  write_output(o.output, pgfplots                  ? plot::to_pgfplots(figure)
                         : format == Format::Json ? simulation_json(result, rep, spec, noise, config,
                                                                    o.problem.spectrum, rule, heavy_tail)
                                                  : render(simulation_table(result, rep), format));
  write_plot(o.plot, plot_text);

  if (heavy_tail)
    std::cerr << fmt::format(
        "cesr simulate: warning: at step {} one of the {} runs carries {:.0f}% of the summed loss: the loss is "
        "heavy-tailed there, so the mean converges slowly and stderr and z are unreliable\n",
        result.step[heavy], result.runs, 100 * result.largest_share[heavy]);
  std::cerr << fmt::format(
      "cesr simulate: {} runs, {} covariates (theory with K = {:g}): {}/{} points within 3 standard errors{}; "
      "{} ({})\n",
      result.runs, to_string(result.covariates), result.kurtosis, rep.within_3, rep.z_rows, worst,
      rep.agree ? "agrees with the exact curve" : "DISAGREES with the exact curve", rule);
  return Exit::ok;
}

const Registrar registrar{
    {"simulate", "Monte Carlo of the real stochastic iteration against the exact curve", 60, [](CLI::App& app) {
       auto o = std::make_shared<SimulateOptions>();
       add_problem_options(app, o->problem);
       CLI::Option* kurtosis = app.get_option("--kurtosis");
       kurtosis->description("Fourth moment K for the theory column (default: that of --covariates)");
       kurtosis->default_str("from --covariates");
       o->kurtosis_flag = kurtosis;
       app.add_option("--steps", o->steps, "Number of steps T per run")->required()->group("Simulation");
       app.add_option("--runs", o->runs, "Number of independent runs R (>= 2)")->required()->group("Simulation");
       app.add_option("--seed", o->seed, "Seed: run j draws from a stream seeded by (seed, j)")
           ->capture_default_str()
           ->group("Simulation");
       app.add_option("--every", o->every, "Record every N-th step (the last step is always recorded)")
           ->capture_default_str()
           ->group("Simulation");
       app.add_option("--covariates", o->covariates,
                      "Law of the whitened covariates: gaussian (K = 3), rademacher (K = 1) or uniform "
                      "(K = 1.8); sets the theory's K unless --kurtosis is given")
           ->capture_default_str()
           ->group("Simulation");
       app.add_option("--threads", o->threads,
                      "Worker threads (0: all cores); the output is the same for any value")
           ->capture_default_str()
           ->group("Simulation");
       add_output_options(app, o->format, o->output, "csv|json|table|pgfplots", "csv");
       add_progress_options(app, o->progress);
       add_plot_option(app, o->plot,
                       "the exact curve and the simulated mean with a band of +-2 standard errors");
       app.add_option("--plot-scale", o->plot_scale, "Axes of the figure: loglog, semilogy, semilogx or linear")
           ->capture_default_str()
           ->group("Output");
       add_figure_options(app, o->figure);
       app.footer(
           "Columns: step,theory,mean,stderr,z,judged_by with z = (mean - theory)/stderr; where stderr = 0\n"
           "(step 0: every run starts alike) z is undefined, written as 0, and judged_by is rel_error\n"
           "instead of z. A summary (points within 3 standard errors, largest |z|, verdict) goes to stderr;\n"
           "--format json is an object with the run's metadata (runs, seed, covariates, K, verdict, ...) and\n"
           "its rows.\n\n"
           "Example:\n  cesr simulate --spectrum powerlaw:d=100,alpha=1.5 --method hb --lr 0.5 --momentum 0.6 "
           "--batch 4 --steps 200 --every 20 --runs 4000 --seed 7 --output sim.csv");
       return [o] { return run_simulate(*o); };
     }}};

}  // namespace
}  // namespace cesr::cli
