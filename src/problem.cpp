#include "cesr/problem.hpp"

#include "cesr/error.hpp"
#include "cesr/io.hpp"
#include "cesr/spectrum.hpp"
#include "cesr/stop.hpp"

#include <Eigen/Dense>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace cesr {

namespace {

bool ends_with(std::string_view s, std::string_view tail) {
  if (s.size() < tail.size()) return false;
  for (std::size_t i = 0; i < tail.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(s[s.size() - tail.size() + i])) != tail[i]) return false;
  return true;
}

// One CSV table: the header's fields and the numbers of each data row, row
// after row. Bounded: every pass consumes one line.
struct CsvTable {
  std::vector<std::string> header;
  std::vector<double> values;
  std::size_t rows = 0;
};

CsvTable parse_csv_numbers(std::string_view text, std::string_view name) {
  CsvTable t;
  bool have_header = false;
  std::size_t header_line = 0;
  for_each_csv_row(text, [&](const std::vector<std::string_view>& fields, std::size_t lineno) {
    if (!have_header) {
      // A header of numbers is a data row: the file has no header.
      bool numeric = true;
      for (const auto& h : fields) {
        double x = 0;
        const auto [p, ec] = std::from_chars(h.data(), h.data() + h.size(), x);
        numeric = numeric && !h.empty() && ec == std::errc{} && p == h.data() + h.size();
      }
      if (numeric)
        throw std::invalid_argument(
            fmt::format("{} line {}: expected a header row naming the columns, got numbers", name, lineno));
      t.header.assign(fields.begin(), fields.end());
      have_header = true;
      header_line = lineno;
      return;
    }
    if (fields.size() > t.header.size())
      throw std::invalid_argument(fmt::format("{} line {}: more than the {} fields of the header (line {})", name,
                                              lineno, t.header.size(), header_line));
    if (fields.size() < t.header.size())
      throw std::invalid_argument(fmt::format("{} line {}: {} fields, the header (line {}) has {}", name, lineno,
                                              fields.size(), header_line, t.header.size()));
    for (std::size_t field = 1; field <= fields.size(); ++field) {
      const std::string_view f = fields[field - 1];
      double x = 0;
      // A leading '+' reads as on the command line (from_chars takes none).
      const std::string_view digits = f.size() > 1 && f[0] == '+' && f[1] != '-' ? f.substr(1) : f;
      const auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), x);
      if (f.empty() || digits.empty() || ec != std::errc{} || p != digits.data() + digits.size() || !std::isfinite(x))
        throw std::invalid_argument(
            fmt::format("{} line {} field {}: '{}' is not a finite number", name, lineno, field, f));
      t.values.push_back(x);
    }
    ++t.rows;
  });
  if (!have_header) throw std::invalid_argument(fmt::format("{}: empty file (expected a header row and data rows)", name));
  if (t.rows == 0) throw std::invalid_argument(fmt::format("{}: no data rows after the header", name));
  return t;
}

[[noreturn]] void data_error(const std::string& message) { throw FieldError("data", "data: " + message); }

}  // namespace

DataSet parse_data_csv(std::string_view text, std::string_view name) {
  CsvTable t = parse_csv_numbers(text, name);
  DataSet s;
  s.n = t.rows;
  s.d = t.header.size();
  s.x = std::move(t.values);
  s.columns = std::move(t.header);
  return s;
}

std::vector<double> parse_labels_csv(std::string_view text, std::string_view name) {
  CsvTable t = parse_csv_numbers(text, name);
  if (t.header.size() != 1)
    throw std::invalid_argument(fmt::format("{}: {} columns, labels need one", name, t.header.size()));
  return std::move(t.values);
}

DataSet read_data(const std::string& path) {
  if (ends_with(path, ".csv")) return parse_data_csv(read_text_file(path, "data file"), path);
  if (ends_with(path, ".npy")) {
    NpyArray a = read_npy_array(path, "data file");
    if (a.shape.size() != 2)
      throw std::invalid_argument(
          fmt::format("'{}': shape ({},) is one-dimensional, the data need (n, d) (data file)", path, a.shape[0]));
    DataSet s;
    s.n = a.shape[0];
    s.d = a.shape[1];
    s.x = std::move(a.values);
    s.columns.assign(s.d, "");
    return s;
  }
  throw std::invalid_argument(fmt::format("'{}': the data file must end in .csv or .npy (data file)", path));
}

std::vector<double> read_labels(const std::string& path) {
  if (ends_with(path, ".csv")) return parse_labels_csv(read_text_file(path, "labels file"), path);
  if (ends_with(path, ".npy")) {
    NpyArray a = read_npy_array(path, "labels file");
    if (a.shape.size() == 2 && a.shape[1] != 1)
      throw std::invalid_argument(fmt::format("'{}': shape ({}, {}), labels need (n,) or (n, 1) (labels file)", path,
                                              a.shape[0], a.shape[1]));
    return std::move(a.values);
  }
  throw std::invalid_argument(fmt::format("'{}': the labels file must end in .csv or .npy (labels file)", path));
}

DataProblem fit_problem(const DataSet& data, const std::vector<double>& labels, bool center) {
  using Eigen::Dynamic;
  using Eigen::Index;
  const std::size_t n = data.n, d = data.d;
  if (d < 1) data_error("no columns");
  if (n < 2) data_error(fmt::format("{} row{}, at least 2 are needed", n, n == 1 ? "" : "s"));
  if (d > max_data_dimension)
    data_error(fmt::format("d = {} columns exceeds the limit of {} (the eigendecomposition costs O(d^3) time)", d,
                           max_data_dimension));
  if (double(n) * double(d) * double(d) > max_data_work)
    data_error(fmt::format("n d^2 = {} x {}^2 = {:.3g} exceeds the limit of {:.0e} (forming H costs O(n d^2) time)", n,
                           d, double(n) * double(d) * double(d), max_data_work));
  if (data.x.size() != n * d) data_error(fmt::format("{} values for {} rows of {} columns", data.x.size(), n, d));
  if (labels.size() != n)
    throw FieldError("labels", fmt::format("labels: {} values, the data has {} rows", labels.size(), n));
  for (std::size_t i = 0; i < data.x.size(); ++i)
    if (!std::isfinite(data.x[i])) data_error(fmt::format("row {} column {} is {}", i / d + 1, i % d + 1, data.x[i]));
  for (std::size_t i = 0; i < n; ++i)
    if (!std::isfinite(labels[i])) throw FieldError("labels", fmt::format("labels: value {} is {}", i + 1, labels[i]));

  using RowMajor = Eigen::Matrix<double, Dynamic, Dynamic, Eigen::RowMajor>;
  const Eigen::Map<const RowMajor> X0(data.x.data(), Index(n), Index(d));
  const Eigen::Map<const Eigen::VectorXd> y0(labels.data(), Index(n));

  DataProblem p;
  p.n = n;
  p.d = d;
  p.centered = center;
  Eigen::RowVectorXd mean = Eigen::RowVectorXd::Zero(Index(d));
  double ybar = 0;
  if (center) {
    mean = X0.colwise().mean();
    ybar = y0.mean();
  }
  p.column_mean.assign(mean.data(), mean.data() + d);
  p.label_mean = ybar;

  // H and b = X^T y / n, by blocks of rows (the stop flag is polled per block).
  const Index block = 4096;
  Eigen::MatrixXd H = Eigen::MatrixXd::Zero(Index(d), Index(d));
  Eigen::VectorXd b = Eigen::VectorXd::Zero(Index(d));
  for (Index r0 = 0; r0 < Index(n); r0 += block) {
    throw_if_stopped();
    const Index m = std::min(block, Index(n) - r0);
    const Eigen::MatrixXd Xb = X0.middleRows(r0, m).rowwise() - mean;
    const Eigen::VectorXd yb = y0.segment(r0, m).array() - ybar;
    H.selfadjointView<Eigen::Lower>().rankUpdate(Xb.transpose());
    b.noalias() += Xb.transpose() * yb;
  }
  H = H.selfadjointView<Eigen::Lower>();
  H /= double(n);
  b /= double(n);

  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(H);
  if (eig.info() != Eigen::Success)
    throw std::runtime_error(fmt::format("data: the eigendecomposition of H (d = {}) did not converge", d));

  // Error bound (Weyl): forming each entry of H from n products is off by at
  // most gamma_{n+2} sqrt(H_jj H_kk) (Cauchy-Schwarz; +2 for the centring), so
  // by at most gamma_{n+2} tr(H) in Frobenius norm; the Householder-QR
  // eigensolver adds a backward error of a small multiple of d eps ||H||,
  // taken as 8 d eps tr(H).
  const double eps = std::numeric_limits<double>::epsilon();
  const double trace_h = H.trace();
  const double units = double(n) + 2 + 8 * double(d);
  p.eigenvalue_error = units * eps / (1 - units * eps) * trace_h;
  p.null_cutoff = p.eigenvalue_error;

  // Decreasing order; directions above the cutoff.
  std::vector<Index> kept;
  for (Index i = Index(d) - 1; i >= 0; --i)
    if (eig.eigenvalues()(i) > p.null_cutoff) kept.push_back(i);
  p.rank = kept.size();
  p.null_directions = d - p.rank;
  if (p.rank == 0)
    data_error(fmt::format("H = X^T X / n is zero to rounding: every eigenvalue is <= {:.3g}", p.null_cutoff));
  const Index r = Index(p.rank);
  Eigen::MatrixXd U(Index(d), r);
  Eigen::VectorXd lam(r);
  for (Index k = 0; k < r; ++k) {
    U.col(k) = eig.eigenvectors().col(kept[std::size_t(k)]);
    lam(k) = eig.eigenvalues()(kept[std::size_t(k)]);
  }
  // Least squares in the eigenbasis: c_k = u_k^T b / lambda_k, w* = U c
  // (minimum norm: no component in the null directions). For w_0 = 0 the
  // initial error is e_0 = -w*, so E[e_{0,k}^2] = c_k^2.
  const Eigen::VectorXd c = (U.transpose() * b).cwiseQuotient(lam);
  const Eigen::VectorXd w = U * c;
  p.w_star.assign(w.data(), w.data() + d);
  p.intercept = ybar - mean.dot(w);
  p.lambda.assign(lam.data(), lam.data() + r);
  p.init.resize(p.rank);
  for (Index k = 0; k < r; ++k) p.init[std::size_t(k)] = c(k) * c(k);

  // Residuals and fourth moments of the whitened coordinates, by blocks.
  Eigen::ArrayXd fourth = Eigen::ArrayXd::Zero(r), coupled = Eigen::ArrayXd::Zero(r);
  const Eigen::MatrixXd W = U * lam.cwiseSqrt().cwiseInverse().asDiagonal();  // z = W^T x
  double rss = 0;
  for (Index r0 = 0; r0 < Index(n); r0 += block) {
    throw_if_stopped();
    const Index m = std::min(block, Index(n) - r0);
    const Eigen::MatrixXd Xb = X0.middleRows(r0, m).rowwise() - mean;
    const Eigen::VectorXd res = (y0.segment(r0, m).array() - ybar).matrix() - Xb * w;
    rss += res.squaredNorm();
    const Eigen::ArrayXXd Z = (Xb * W).array();
    fourth += Z.square().square().colwise().sum().transpose();
    coupled += (Z.square().colwise() * res.array().square()).colwise().sum().transpose();
  }
  p.rss = rss;
  fourth /= double(n);
  p.kurtosis.assign(fourth.data(), fourth.data() + r);
  p.kurtosis_mean = fourth.mean();
  p.kurtosis_min = fourth.minCoeff();
  p.kurtosis_max = fourth.maxCoeff();
  // E[r^2 z_i^2] / E[r^2]: 1 for each direction when the residual is
  // independent of x (the model's label noise), 0 when there is no residual.
  if (rss > 0) {
    coupled /= rss;  // the 1/n of both means cancels
    p.noise_coupling.assign(coupled.data(), coupled.data() + r);
  } else {
    p.noise_coupling.assign(p.rank, 0.0);
  }

  // sigma^2: RSS over the residual degrees of freedom (n - rank, one fewer
  // for the intercept a centred fit estimates).
  const std::size_t dof_used = p.rank + (center ? 1 : 0);
  p.noise_estimated = n > dof_used;
  p.noise = p.noise_estimated ? rss / double(n - dof_used) : 0.0;

  p.lambda_max = p.lambda.front();
  p.lambda_min = p.lambda.back();
  p.kappa = p.lambda_max / p.lambda_min;
  p.trace = lam.sum();
  p.initial_loss = 0.5 * lam.dot(c.cwiseProduct(c));
  p.lambda_min_relative_error = p.eigenvalue_error / p.lambda_min;

  // Lines of the weighted spectrum: runs of exactly equal eigenvalues.
  for (std::size_t k = 0; k < p.rank;) {
    std::size_t j = k;
    double sum = 0;
    while (j < p.rank && p.lambda[j] == p.lambda[k]) sum += p.init[j++];
    p.line_lambda.push_back(p.lambda[k]);
    p.line_weight.push_back(double(j - k));
    p.line_init.push_back(sum / double(j - k));
    k = j;
  }
  return p;
}

std::string spectrum_file_text(const DataProblem& p) {
  std::string out = fmt::format(
      "# cesr problem: eigenvalues lambda of H = X^T X / n{} (n = {}, d = {}) and their multiplicities w\n"
      "# lambda w\n",
      p.centered ? " of the centred columns" : "", p.n, p.d);
  for (std::size_t i = 0; i < p.line_lambda.size(); ++i)
    out += fmt::format("{:.17g} {}\n", p.line_lambda[i], p.line_weight[i]);
  return out;
}

std::string init_file_text(const DataProblem& p) {
  std::string out = "# cesr problem: E[e_0,i^2] = (u_i^T w*)^2 for w_0 = 0, one value per spectrum line\n";
  for (const double v : p.line_init) out += fmt::format("{:.17g}\n", v);
  return out;
}

std::string problem_json(const DataProblem& p, const std::string& spectrum_name, const std::string& init_name) {
  // One object, its fields in the order they have always been written (docs/data.md shows them).
  const nlohmann::ordered_json j = {
      {"d", p.d}, {"n", p.n}, {"centered", p.centered}, {"kappa", p.kappa}, {"trace", p.trace},
      {"lambda_max", p.lambda_max}, {"lambda_min", p.lambda_min}, {"noise", p.noise},
      {"noise_estimated", p.noise_estimated}, {"noise_rows", p.rss / double(p.n)}, {"rss", p.rss},
      {"kurtosis_mean", p.kurtosis_mean}, {"kurtosis_min", p.kurtosis_min}, {"kurtosis_max", p.kurtosis_max},
      {"null_directions", p.null_directions}, {"null_cutoff", p.null_cutoff}, {"rank", p.rank},
      {"lines", p.line_lambda.size()}, {"initial_loss", p.initial_loss},
      {"lambda_min_relative_error", p.lambda_min_relative_error}, {"spectrum", "file:" + spectrum_name},
      {"init", "file:" + init_name}, {"kurtosis_directions", p.kurtosis}, {"noise_coupling", p.noise_coupling},
      {"w_star", p.w_star}, {"intercept", p.intercept}};
  return j.dump(2) + "\n";
}

}  // namespace cesr
