// cesr check: holds a loss curve from a file against the exact expected loss.
#include "common.hpp"

#include "cesr/check.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <iostream>

namespace cesr::cli {
namespace {

struct CheckCliOptions {
  ProblemOptions problem;
  std::string input;
  double rtol = 0.05;
  double alpha = 1e-3;
  std::optional<double> zmax;
  std::string format, output;
  HorizonOptions horizon;
  ProgressFlags progress;
};

std::string describe_row(const ObservedCurve& c, const CheckReport& rep, std::size_t i) {
  const RowCheck& row = rep.rows[i];
  std::string s = fmt::format("step {} (line {}): loss {:.6g} vs theory {:.6g}", c.step[i], c.line[i], c.loss[i],
                              row.theory);
  if (row.z) return s + fmt::format(", z = {:.3g}", *row.z);
  return s + fmt::format(", relative error {:+.3g}", row.rel_error);
}

int run_check(const CheckCliOptions& o) {
  ObservedCurve curve;
  try {
    curve = read_curve_csv(o.input);
  } catch (const std::invalid_argument& e) {
    usage_error("--input", e);
  }
  const Spectrum spectrum = o.problem.make_spectrum();
  const MethodSpec spec = o.problem.make_method();
  const NoiseModel noise = o.problem.make_noise();
  const Precision precision = o.problem.make_precision();
  const Format format = parse_format(o.format);
  CheckOptions options;
  options.rtol = o.rtol;
  options.alpha = o.alpha;
  options.zmax = o.zmax;
  try {
    options.validate();
  } catch (const std::invalid_argument& e) {
    usage_error("--rtol", e);
  }

  // Rows at large steps through the certified spectral path (as in loss).
  const HorizonMode mode = o.horizon.make_mode();
  const std::uint64_t last = curve.step.empty() ? 0 : *std::max_element(curve.step.begin(), curve.step.end());
  const bool spectral =
      mode == HorizonMode::Exact || (mode == HorizonMode::Auto && double(last) > 32 * double(spectrum.dim()));
  ProgressReporter progress("cesr check", "steps", *std::max_element(curve.step.begin(), curve.step.end()),
                            o.progress.mode());
  const WorkScope counting(&progress.counter());
  const ExactAtSteps exact = with_precision(precision, [&](auto zero) {
    using Real = decltype(zero);
    if (spectral) {
      HorizonReport rep;
      if (auto v = horizon_loss_at<Real>(spectrum, spec, noise, curve.step, o.horizon.rtol, rep)) {
        ExactAtSteps out;
        for (const Real& x : *v) out.loss.push_back(to_double(x));
        return out;
      }
      if (mode == HorizonMode::Exact)
        throw std::runtime_error(fmt::format("--horizon exact cannot answer: {}", rep.reason));
      if (rep.reason.find("does not contract") == std::string::npos)  // time stepping reports the divergence
        defer_note(fmt::format("cesr check: {}: time stepping ({})\n", describe(spec), rep.reason));
    }
    return exact_loss_at<Real>(spectrum, make_path<Real>(spec), noise, curve.step);
  });
  if (exact.diverged_at) {
    std::cerr << fmt::format("cesr check: {} diverges: the exact loss exceeds {:.3g} at step {}\n", describe(spec),
                             divergence_threshold, *exact.diverged_at);
    return Exit::diverged;
  }
  const CheckReport rep = check_curve(curve.loss, curve.std_error, exact.loss, options);
  if (rep.z_rows == 0)
    std::cerr << fmt::format(
        "cesr check: warning: no row has a standard error, so every row is judged by its relative error "
        "(--rtol {}), which cannot tell close models apart (e.g. torch's nesterov from nag, or a missing "
        "dampening); add a stderr column (the standard error of the mean over runs)\n",
        o.rtol);

  // Every field a number (pandas and numpy read the CSV as is), except
  // stderr where the input row has none (empty: NaN), rel_error where it is
  // beyond the double range (empty: NaN, never inf) and the two text columns:
  // judged_by says which test judged the row ("z", or "rel_error" where there
  // is no positive standard error; z is then undefined and written as 0).
  const bool se = curve.has_std_error_column;
  Table t;
  t.columns = {"step", "loss"};
  if (se) t.columns.push_back("stderr");
  for (const char* c : {"theory", "rel_error", "z", "judged_by", "verdict"}) t.columns.push_back(c);
  for (std::size_t i = 0; i < curve.step.size(); ++i) {
    const RowCheck& row = rep.rows[i];
    std::vector<Cell> cells{Cell::number(std::to_string(curve.step[i])), Cell::number(format_real(curve.loss[i]))};
    if (se) cells.push_back(curve.std_error[i] ? Cell::number(format_real(*curve.std_error[i])) : Cell::null());
    cells.push_back(Cell::number(format_real(row.theory)));
    // Beyond the double range (a loss of 1e308 against theory 0.3, or theory 0):
    // no number, never inf in a table.
    cells.push_back(std::isfinite(row.rel_error) ? Cell::number(format_real(row.rel_error, 6)) : Cell::null());
    cells.push_back(Cell::number(row.z ? format_real(*row.z, 6) : std::string("0")));
    cells.push_back(Cell::string(row.z ? "z" : "rel_error"));
    cells.push_back(Cell::string(row.pass ? "ok" : "FAIL"));
    t.rows.push_back(std::move(cells));
  }
  if (format == Format::Json) {
    // A relative error or |z| beyond the double range is null (JSON has no inf).
    const auto json_number = [](double v) { return std::isfinite(v) ? format_real(v, 17) : std::string("null"); };
    // The verdict and its rule with the rows, not only on stderr.
    std::string worst;
    for (const std::size_t i : rep.worst) worst += (worst.empty() ? "" : ", ") + std::to_string(curve.step[i]);
    write_output(
        o.output,
        fmt::format("{{\n  \"command\": \"check\",\n  \"input\": {},\n  \"spectrum\": {},\n  \"method\": {},\n"
                    "  \"batch\": {},\n  \"verdict\": \"{}\",\n  \"rows_total\": {},\n  \"failed\": {},\n"
                    "  \"z_rows\": {},\n  \"rtol_rows\": {},\n  \"zmax\": {},\n  \"zmax_rule\": \"{}\",\n"
                    "  \"alpha\": {},\n  \"rtol\": {},\n  \"max_abs_z\": {},\n  \"max_abs_rel_error\": {},\n"
                    "  \"worst_steps\": [{}],\n  \"weak\": {},\n  \"rows\": {}}}\n",
                    json_quote(o.input), json_quote(o.problem.spectrum), json_quote(describe(spec)), noise.batch,
                    rep.agree ? "agree" : "disagree", curve.step.size(), rep.failed, rep.z_rows, rep.rtol_rows,
                    rep.z_rows > 0 ? format_real(rep.zmax, 17) : "null", o.zmax ? "fixed" : "sidak",
                    fmt::format("{}", o.alpha), fmt::format("{}", o.rtol), json_number(rep.max_abs_z),
                    json_number(rep.max_abs_rel_error), worst, rep.z_rows == 0 ? "true" : "false",
                    render(t, Format::Json)));
  } else {
    write_output(o.output, render(t, format));
  }

  std::string tests;
  if (rep.z_rows > 0)
    tests += fmt::format("{} by z-test, |z| <= {:.3g} {}", rep.z_rows, rep.zmax,
                         o.zmax ? "(--zmax)" : fmt::format("(Sidak, alpha = {:g})", o.alpha));
  if (rep.rtol_rows > 0)
    tests += fmt::format("{}{} by relative error <= {:g}", tests.empty() ? "" : "; ", rep.rtol_rows, o.rtol);
  if (rep.agree) {
    std::cerr << fmt::format("cesr check: agree: {} rows ({}); worst {}\n", curve.step.size(), tests,
                             describe_row(curve, rep, rep.worst.front()));
    return Exit::ok;
  }
  std::string worst;
  for (const std::size_t i : rep.worst)
    if (!rep.rows[i].pass) worst += "\n  " + describe_row(curve, rep, i);
  std::cerr << fmt::format("cesr check: disagree: {} of {} rows fail ({}); worst:{}\n", rep.failed,
                           curve.step.size(), tests, worst);
  return Exit::not_reached;
}

const Registrar registrar{
    {"check", "Hold a loss curve from a file (step,loss[,stderr]) against the exact curve", 61, [](CLI::App& app) {
       auto o = std::make_shared<CheckCliOptions>();
       app.add_option("--input", o->input,
                      "CSV file with a header naming the columns step, loss and optionally stderr "
                      "(extra columns ignored, steps in any order)")
           ->required()
           ->group("Input");
       add_problem_options(app, o->problem);
       add_horizon_options(app, o->horizon);
       app.add_option("--rtol", o->rtol, "Relative tolerance for rows without a standard error")
           ->capture_default_str()
           ->group("Verdict");
       app.add_option("--alpha", o->alpha,
                      "Probability that a correct curve with standard errors is rejected (sets the "
                      "Sidak-corrected |z| threshold)")
           ->capture_default_str()
           ->group("Verdict");
       app.add_option("--zmax", o->zmax, "Fixed |z| threshold instead of the Sidak-corrected one")->group("Verdict");
       add_output_options(app, o->format, o->output, "csv|json|table", "table");
       add_progress_options(app, o->progress);
       app.footer(
           "Columns: step,loss[,stderr],theory,rel_error,z,judged_by,verdict; judged_by is z or rel_error\n"
           "(rows without a positive standard error, where z is written as 0). --format json is an object\n"
           "with the verdict, its rule (z_rows, zmax, rtol, ...; weak: no row has a standard error) and the rows.\n"
           "Exit status: 0 agree, 1 disagree (the worst rows are named on stderr), 2 bad input, 3 the method "
           "diverges.\n\n"
           "Example:\n  cesr simulate --spectrum powerlaw:d=100,alpha=1.5 --method hb --lr 0.5 --momentum 0.6 "
           "--batch 4 --steps 200 --every 20 --runs 4000 --seed 7 --output sim.csv\n"
           "  cesr check --input sim.csv --spectrum powerlaw:d=100,alpha=1.5 --method hb --lr 0.5 "
           "--momentum 0.6 --batch 4");
       return [o] { return run_check(*o); };
     }}};

}  // namespace
}  // namespace cesr::cli
