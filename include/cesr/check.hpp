// Holding a loss curve produced elsewhere (PyTorch, JAX, cesr simulate, ...)
// against the exact expected loss.
//
// Rows with a standard error are judged by z = (loss - theory) / stderr
// against one threshold z* chosen so that a correct curve passes with
// probability >= 1 - alpha whatever the number n of such rows (Sidak:
// P(max |Z_i| <= z*) >= prod P(|Z_i| <= z*) = 1 - alpha for jointly Gaussian
// Z_i with any correlation, so the rows of one simulation, which share runs,
// are covered). Rows without a standard error are judged by the relative error
// |loss - theory| <= rtol * theory. See docs/check.md.
#pragma once

#include "cesr/dynamics.hpp"
#include "cesr/method.hpp"
#include "cesr/spectrum.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cesr {

/// A loss curve as read from a file: one entry per data row.
struct ObservedCurve {
  std::vector<std::uint64_t> step;
  std::vector<double> loss;
  std::vector<std::optional<double>> std_error;  ///< empty where the file gives none
  std::vector<std::size_t> line;                 ///< line number of each row in the file (1-based)
  bool has_std_error_column = false;
};

/// Parses CSV text with a header naming the columns `step`, `loss` and
/// optionally `stderr` (any order; other columns are ignored; without a `loss`
/// column, `mean` as written by cesr simulate is read instead). Steps are
/// integers >= 0, distinct, in any order; losses finite and >= 0; a standard
/// error finite and >= 0 or an empty field. Blank lines and lines starting with
/// '#' are skipped. Throws std::invalid_argument "NAME line N: ..." on the
/// first malformed line, and for a file without data rows.
ObservedCurve parse_curve_csv(std::string_view text, std::string_view name);

/// Reads (read_text_file: a regular text file within its size limit) and
/// parses a file; errors name the path.
ObservedCurve read_curve_csv(const std::string& path);

/// The z threshold for n simultaneous two-sided tests at family-wise level
/// alpha (Sidak): z* = Phi^{-1}(1 - p/2) with p = 1 - (1 - alpha)^{1/n}.
/// n = 0 gives +infinity.
double sidak_threshold(std::size_t n, double alpha);

struct CheckOptions {
  double rtol = 0.05;          ///< relative tolerance for rows without a standard error
  double alpha = 1e-3;         ///< family-wise false-alarm probability of the z-test
  std::optional<double> zmax;  ///< fixed |z| threshold (overrides the Sidak one)
  /// Throws std::invalid_argument naming --rtol, --alpha or --zmax.
  void validate() const;
};

struct RowCheck {
  double theory = 0;
  double rel_error = 0;     ///< (loss - theory) / theory
  std::optional<double> z;  ///< (loss - theory) / stderr where stderr > 0
  double score = 0;         ///< |z| / z* or |rel_error| / rtol: the row passes when <= 1
  bool pass = true;
};

struct CheckReport {
  std::vector<RowCheck> rows;
  double zmax = 0;                 ///< threshold used for the z rows
  std::size_t z_rows = 0;          ///< rows judged by z
  std::size_t rtol_rows = 0;       ///< rows judged by the relative tolerance
  std::size_t within_3 = 0;        ///< z rows with |z| <= 3
  double max_abs_z = 0;            ///< largest |z| (0 without z rows)
  double max_abs_rel_error = 0;    ///< largest |relative error| over all rows
  std::size_t failed = 0;          ///< rows that fail
  bool agree = true;               ///< no row fails
  std::vector<std::size_t> worst;  ///< row indices, largest score first (at most 5)
};

/// Judges `loss` (with optional standard errors) against `theory`, row by row.
CheckReport check_curve(const std::vector<double>& loss, const std::vector<std::optional<double>>& std_error,
                        const std::vector<double>& theory, const CheckOptions& options);

/// The exact expected loss at arbitrary (unsorted, distinct) steps.
struct ExactAtSteps {
  std::vector<double> loss;                  ///< same order as the steps asked for
  std::optional<std::uint64_t> diverged_at;  ///< the exact loss overflows at this step
};

/// The work (d + 64) x last step of the exact recursion that exact_loss_at
/// computes in a precision: about 30 s on one core (double 3e10, long 7.5e8,
/// quad 5e7, mp50 3e7; docs/check.md).
std::uint64_t max_exact_work(Precision precision);
/// Throws FieldError naming `field` when (d + 64) last_step exceeds max_exact_work.
void check_exact_work(std::size_t dim, std::uint64_t last_step, Precision precision, std::string_view field);

/// Refuses (check_exact_work, field "input") a last step beyond the budget.
template <class Real>
ExactAtSteps exact_loss_at(const Spectrum& spectrum, const MethodPath<Real>& method, const NoiseModel& noise,
                           const std::vector<std::uint64_t>& steps);

}  // namespace cesr
