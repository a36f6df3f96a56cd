// The problem's spectrum: eigenvalues of the diagonal covariance H and the
// initial second moments of the error in each eigendirection.
//
// A spectrum is defined by double-precision inputs (generated or read from a
// file); every later computation converts these doubles exactly to the working
// scalar, so each precision solves the same problem.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace cesr {

struct Spectrum {
  std::vector<double> lambda;  ///< eigenvalues of H, each > 0 (any order)
  std::vector<double> init;    ///< E[e_{0,i}^2] >= 0, same length and order

  std::size_t dim() const { return lambda.size(); }
  double lambda_max() const;
  double lambda_min() const;
  double kappa() const { return lambda_max() / lambda_min(); }
  double trace() const;
  /// Initial loss L_0 = 1/2 sum_i lambda_i E[e_{0,i}^2].
  double initial_loss() const;
};

/// Largest dimension accepted (memory: a few tens of bytes per direction).
inline constexpr std::size_t max_dimension = std::size_t{1} << 31;

/// Throws std::invalid_argument (naming `what`) when d directions of
/// `bytes_per_direction` each would not fit in 80% of this machine's physical
/// memory. The default (56) is a double-precision run of a k = 2 method, as
/// measured (peak resident size at d = 1e6): the spectrum (2 doubles) and the
/// engine's lambda, initial moments and 3 state entries; Dynamics checks its
/// own precision and k (mp50 k = 2: 336 bytes, measured 335).
void check_fits_in_memory(std::size_t d, std::string_view what, double bytes_per_direction = 56);
/// Physical memory of this machine in bytes (0 when unknown).
double physical_memory();

/// Eigenvalues from a SPEC string:
///   powerlaw:d=N,alpha=A[,scale=S]    lambda_i = S i^-A, i = 1..N
///   loguniform:d=N,kappa=K[,scale=S]  lambda_i = S K^(-(i-1)/(N-1))
///   file:PATH                         one positive value per line, '#' comments
/// Throws std::invalid_argument with a one-line message naming the problem.
std::vector<double> parse_spectrum(std::string_view spec);

/// Initial second moments from an INIT string for d directions:
///   isotropic | powerlaw:beta=b | file:PATH
std::vector<double> parse_init(std::string_view init, std::size_t d);

/// Both of the above, validated together.
Spectrum make_spectrum(std::string_view spec, std::string_view init = "isotropic");

/// Reads one finite number per non-empty, non-comment line of a text file
/// (through read_text_file: a regular text file within its size limit; `what`
/// names the file's role in those messages). `positive` demands > 0, otherwise
/// >= 0. Errors name the file and line.
std::vector<double> read_values_file(const std::string& path, bool positive, std::string_view what);

/// Parses a finite double from the whole of `text` (no trailing characters);
/// throws std::invalid_argument naming `what` and the text otherwise.
double parse_finite(std::string_view text, std::string_view what);

}  // namespace cesr
