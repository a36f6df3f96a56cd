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

//
// A weighted spectrum (a spectral measure) gives each line i a weight w_i > 0:
// w_i directions with eigenvalue lambda_i and initial moment init_i each.
// Weights need not be whole (stochastic Lanczos quadrature produces such
// measures); for whole weights every result equals that of the expanded
// spectrum. An empty `weight` means every line is one direction.
struct Spectrum {
  std::vector<double> lambda;  ///< eigenvalues of H, each > 0 (any order)
  std::vector<double> init;    ///< E[e_{0,i}^2] >= 0 of each direction of line i
  std::vector<double> weight;  ///< w_i > 0 directions per line; empty: all 1
  /// The additive (NQM) noise model's gradient-noise covariance C_ii >= 0 per
  /// line (each of its directions); empty: C = c H (NoiseModel::noise_scale).
  /// Unused by the multiplicative model.
  std::vector<double> noise_covariance;

  /// Number of lines (entries of lambda).
  std::size_t dim() const { return lambda.size(); }
  bool weighted() const { return !weight.empty(); }
  double weight_at(std::size_t i) const { return weight.empty() ? 1.0 : weight[i]; }
  /// Number of directions, sum_i w_i (= dim() when unweighted).
  double directions() const;
  /// Some weight is not a whole number (the problem is a spectral measure, not a finite d).
  bool fractional() const;
  double lambda_max() const;
  double lambda_min() const;
  double kappa() const { return lambda_max() / lambda_min(); }
  /// tr(H) = sum_i w_i lambda_i.
  double trace() const;
  /// Initial loss L_0 = 1/2 sum_i w_i lambda_i E[e_{0,i}^2].
  double initial_loss() const;
};

/// The spectrum with each line of whole weight w repeated w times (weight
/// dropped); throws std::invalid_argument for a fractional weight (naming the
/// line and `what`, the computation that needs whole directions) or when the
/// expansion would exceed max_dimension.
Spectrum expand_weights(const Spectrum& s, std::string_view what);

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

/// Eigenvalues and weights from a SPEC string (init left empty):
///   powerlaw:d=N,alpha=A[,scale=S]    lambda_i = S i^-A, i = 1..N
///   loguniform:d=N,kappa=K[,scale=S]  lambda_i = S K^(-(i-1)/(N-1))
///   file:PATH                         per line one positive value, or two:
///                                     lambda w (w > 0 directions); '#' comments
///   npy:PATH                          a 1-D float64/float32 .npy array
/// Weights are kept only when some weight differs from 1.
/// Throws std::invalid_argument with a one-line message naming the problem.
Spectrum read_spectrum(std::string_view spec);

/// The eigenvalues of an unweighted SPEC (as read_spectrum); a weighted file
/// is refused (use read_spectrum).
std::vector<double> parse_spectrum(std::string_view spec);

/// Initial second moments from an INIT string for d spectrum lines:
///   isotropic | powerlaw:beta=b (counts lines) | file:PATH | npy:PATH
std::vector<double> parse_init(std::string_view init, std::size_t d);

/// A C-order little-endian float64/float32 .npy array of one or two
/// dimensions: its shape and values (row-major), read as read_npy does.
struct NpyArray {
  std::vector<std::size_t> shape;
  std::vector<double> values;
};
NpyArray read_npy_array(const std::string& path, std::string_view what);

/// The values of a .npy file holding a 1-D little-endian float64 or float32
/// array (read through read_binary_file, so bounded), as doubles. Anything
/// else (another dtype, a shape that is not (n,), Fortran order, a truncated
/// file) is refused with one line naming the file and `what`.
std::vector<double> read_npy(const std::string& path, std::string_view what);

/// Both of the above, validated together.
Spectrum make_spectrum(std::string_view spec, std::string_view init = "isotropic");

/// Additive-noise covariance C_ii from a COVARIANCE string for d spectrum
/// lines: file:PATH (one value >= 0 per line) or npy:PATH.
std::vector<double> parse_noise_covariance(std::string_view text, std::size_t d);

/// The exponent gamma of a PRECONDITION string: "none" (0) or power:p=gamma,
/// 0 <= gamma <= 1; throws std::invalid_argument otherwise.
double parse_precondition(std::string_view text);

/// The problem of a diagonal preconditioner p_i = (lambda_i / lambda_max)^-gamma
/// applied to the whole stochastic gradient (noise included), rewritten as an
/// unpreconditioned one: in the coordinates f = p^(-1/2) e the update of any
/// linear method is the plain one with covariates p^(1/2) x ~ N(0, pH), so
///   lambda_i -> p_i lambda_i,  init_i -> init_i / p_i,  C_ii -> p_i C_ii,
/// weights and the whitened covariates (hence K) unchanged, and the loss
/// 1/2 e^T H e = 1/2 f^T (pH) f is the same at every step. lambda_max keeps
/// p = 1, so a step size keeps its meaning at the top of the spectrum.
/// gamma = 0 returns the spectrum unchanged. (docs/theory.md, section 7.)
Spectrum precondition(const Spectrum& s, double gamma);

/// Reads one finite number per non-empty, non-comment line of a text file
/// (through read_text_file: a regular text file within its size limit; `what`
/// names the file's role in those messages). `positive` demands > 0, otherwise
/// >= 0. Errors name the file and line.
std::vector<double> read_values_file(const std::string& path, bool positive, std::string_view what);

/// Parses a finite double from the whole of `text` (no trailing characters);
/// throws std::invalid_argument naming `what` and the text otherwise.
double parse_finite(std::string_view text, std::string_view what);

}  // namespace cesr
