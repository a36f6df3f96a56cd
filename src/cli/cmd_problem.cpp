// cesr problem: a problem (spectrum, initial moments, label noise, kurtosis)
// from a data set, for every other command.
#include "common.hpp"

#include "cesr/io.hpp"
#include "cesr/problem.hpp"

#include <fmt/format.h>

#include <iostream>

namespace cesr::cli {
namespace {

struct ProblemCommandOptions {
  std::string data, labels, output;
  bool center = false;
};

std::string base_name(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

int run_problem(const ProblemCommandOptions& o) {
  DataSet data;
  try {
    data = read_data(o.data);
  } catch (const std::invalid_argument& e) {
    usage_error("--data", e);
  }
  std::vector<double> labels;
  try {
    labels = read_labels(o.labels);
  } catch (const std::invalid_argument& e) {
    usage_error("--labels", e);
  }
  const DataProblem p = fit_problem(data, labels, o.center);  // FieldError naming data or labels
  const std::string spectrum = o.output + ".spectrum", init = o.output + ".init", json = o.output + ".json";
  // The JSON names the files as the other commands would be given them from
  // the folder of the files (the prefix's own name).
  const std::string report = problem_json(p, base_name(spectrum), base_name(init));
  write_files_together({{spectrum, spectrum_file_text(p)}, {init, init_file_text(p)}, {json, report}}, "--output");
  if (!p.noise_estimated)
    std::cerr << fmt::format(
        "cesr problem: note: n = {} rows leave no residual degrees of freedom (rank {}{}): noise written as 0\n", p.n,
        p.rank, p.centered ? " + intercept" : "");
  if (p.null_directions > 0)
    std::cerr << fmt::format("cesr problem: note: {} null direction{} (eigenvalue <= {:.3g}) left out of the spectrum\n",
                             p.null_directions, p.null_directions == 1 ? "" : "s", p.null_cutoff);
  write_output("-", report);
  return Exit::ok;
}

const Registrar registrar{{"problem", "A problem (spectrum, init, noise, kurtosis) from a data set X, y", 8,
                           [](CLI::App& app) {
  auto o = std::make_shared<ProblemCommandOptions>();
  app.add_option("--data", o->data, "Covariates X: a CSV file (header row, n rows of d numbers) or a 2-D float64/float32 .npy array (n, d)")
      ->required()
      ->group("Data");
  app.add_option("--labels", o->labels, "Labels y: a CSV file (header row, n numbers) or a 1-D .npy array")->required()->group("Data");
  app.add_flag("--center", o->center,
               "Subtract the column means of X and the mean of y (a fit with an intercept); H still divides by n")
      ->group("Data");
  app.add_option("--output,-o", o->output,
                 "Write PREFIX.spectrum (lines 'lambda w'), PREFIX.init and PREFIX.json (all or none)")
      ->required()
      ->check(writable_output())
      ->group("Output");
  app.footer(
      "H = X^T X / n, its eigendecomposition, w* by least squares in the eigenbasis (eigenvalues at or below a\n"
      "rounding bound are null directions, left out and counted), E[e_0,i^2] = (u_i^T w*)^2 for w_0 = 0,\n"
      "sigma^2 = RSS / (n - rank [- 1 centred]) and the fourth moments of z_i = u_i^T x / sqrt(lambda_i).\n"
      "Prints the JSON it writes. Use the result in any command:\n"
      "  --spectrum file:PREFIX.spectrum --init file:PREFIX.init --noise NOISE --kurtosis KURTOSIS_MEAN\n"
      "Example:\n  cesr problem --data X.csv --labels y.csv --center --output diabetes");
  return [o] { return run_problem(*o); };
}}};

}  // namespace
}  // namespace cesr::cli
