// A problem from a data set: the second moment H = X^T X / n of the rows, its
// eigendecomposition, the least-squares w*, the label noise and the fourth
// moments of the whitened coordinates, i.e. everything the model of
// docs/theory.md needs to describe SGD-type methods on this data (cesr problem,
// cesr.problem in Python; docs/data.md).
//
// The rows are the data distribution: a mini-batch draws rows uniformly, so
// the population loss is the empirical loss and H, w* are exact properties of
// the rows. The model then adds its own assumptions (independent whitened
// coordinates with one fourth moment K, label noise independent of x), which
// the report's kurtosis range and docs/data.md's runs on the real rows test.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace cesr {

/// n rows of d covariates (row-major: x[r * d + j]) and n labels.
struct DataSet {
  std::size_t n = 0, d = 0;
  std::vector<double> x;
  std::vector<double> y;
  /// Column names from a CSV header ("" for a .npy), d of them.
  std::vector<std::string> columns;
};

/// Largest d accepted: the eigendecomposition costs O(d^3) time (about a
/// minute at d = 4096 on one core) and the eigenvectors d^2 doubles.
inline constexpr std::size_t max_data_dimension = 4096;
/// Largest n * d^2 accepted: forming H and the whitened coordinates of every
/// row costs about 2 n d^2 floating-point operations (a minute or two at 1e11).
inline constexpr double max_data_work = 1e11;

/// The covariates from a CSV file (a header row naming the d columns, then one
/// row of d finite numbers per line; blank lines and '#' lines skipped) or a
/// 2-D C-order float64/float32 .npy array (by the file name's extension). Reads through
/// read_text_file / read_binary_file (bounded, regular files only). Errors name
/// the file and line (std::invalid_argument).
DataSet read_data(const std::string& path);

/// The labels from a CSV file (a header row, then one number per line) or a
/// 1-D .npy array (or 2-D with one column).
std::vector<double> read_labels(const std::string& path);

/// Parses CSV text as read_data does; `name` starts error messages.
DataSet parse_data_csv(std::string_view text, std::string_view name);
/// Parses CSV text as read_labels does.
std::vector<double> parse_labels_csv(std::string_view text, std::string_view name);

struct DataProblem {
  std::size_t n = 0, d = 0;
  bool centered = false;
  /// Eigenvalues of H above the null cutoff, in decreasing order (the spectrum's
  /// directions), and the initial moments (u_i^T w*)^2 for w_0 = 0 (centred:
  /// w_0 = 0 with the intercept at the label mean).
  std::vector<double> lambda, init;
  /// The same grouped for the weighted spectrum file: exactly equal eigenvalues
  /// on one line with weight w = their count and init their mean (the recursion
  /// is linear and identical in such directions, so this is exact).
  std::vector<double> line_lambda, line_weight, line_init;
  /// Fourth moment E[z_i^4] of z_i = u_i^T x / sqrt(lambda_i) over the rows, per
  /// direction (E[z_i^2] = 1 by construction).
  std::vector<double> kurtosis;
  double kurtosis_mean = 0, kurtosis_min = 0, kurtosis_max = 0;
  /// E[r^2 z_i^2] / E[r^2] per direction, r the residual: 1 when the label
  /// noise is independent of x as the model assumes (its noise term in
  /// direction i is then sigma^2 lambda_i / B); a value above 1 means more
  /// gradient noise in that direction than the model puts there (all 0 when
  /// RSS = 0).
  std::vector<double> noise_coupling;
  /// w* in the original coordinates (minimum norm: 0 in the null directions),
  /// and the intercept (label mean - column means . w*; 0 uncentred).
  std::vector<double> w_star;
  double intercept = 0;
  /// Column means (0 uncentred) and the label mean (0 uncentred).
  std::vector<double> column_mean;
  double label_mean = 0;
  double rss = 0;        ///< residual sum of squares of the least-squares fit
  std::size_t rank = 0;  ///< directions kept (d - null_directions)
  std::size_t null_directions = 0;
  /// sigma^2 = RSS / (n - rank); 0 when n <= rank (noise_estimated false).
  double noise = 0;
  bool noise_estimated = false;
  /// A bound on the absolute error of every computed eigenvalue of H (Weyl:
  /// rounding in forming H plus the eigensolver's backward error); eigenvalues
  /// at or below it cannot be told from 0 and are the null directions.
  double eigenvalue_error = 0;
  double null_cutoff = 0;  ///< = eigenvalue_error
  double kappa = 0, trace = 0, lambda_max = 0, lambda_min = 0;
  double initial_loss = 0;  ///< 1/2 sum_i lambda_i init_i = 1/2 w*^T H w*
  /// Largest relative error of a kept eigenvalue: eigenvalue_error / lambda_min.
  double lambda_min_relative_error = 0;
};

/// H = X^T X / n (centre = true: of the centred columns, and the labels
/// centred too, i.e. a fit with an intercept; still divided by n), its
/// eigendecomposition (Eigen's SelfAdjointEigenSolver), w* = sum over kept
/// directions of u_i (u_i^T X^T y / n) / lambda_i, the residuals, sigma^2 and the
/// fourth moments. Throws FieldError "data ..." for d beyond max_data_dimension,
/// n d^2 beyond max_data_work, n < 2, non-finite values, labels of the wrong
/// length ("labels ...") and a data set whose H is 0 (no direction above the
/// cutoff). Polls the stop flag (cesr/stop.hpp) once per block of rows.
DataProblem fit_problem(const DataSet& data, const std::vector<double>& labels, bool center);

/// The three files of `cesr problem --output PREFIX`: the weighted spectrum
/// (lines "lambda w"), the initial moments (one value per spectrum line) and the
/// JSON report. `spectrum_name` and `init_name` are the file names the JSON
/// records.
std::string spectrum_file_text(const DataProblem& p);
std::string init_file_text(const DataProblem& p);
std::string problem_json(const DataProblem& p, const std::string& spectrum_name, const std::string& init_name);

}  // namespace cesr
