// Linear stochastic methods as data.
//
// A method with k state vectors (k = 1 or 2) is four small objects (P, q, r, o):
//   s_{t+1} = P s_t - q (x) g(z_t),   z_t = r^T s_t,   e_t = o^T s_t,
// where s_t stacks the k state vectors (in error coordinates e = w - w*) and
// g(z) is the mini-batch gradient at z. SGD, heavy ball, Nesterov and AccSGD
// are rows of one table (make_method); any other (P, q, r, o) is a valid
// method too (custom). See docs/theory.md.
#pragma once

#include "cesr/real.hpp"

#include <array>
#include <cmath>
#include <limits>
#include <string>
#include <string_view>

namespace cesr {

template <class Real>
struct Method {
  int k = 1;                              ///< number of state vectors: 1 or 2
  std::array<std::array<Real, 2>, 2> P{}; ///< k x k transition (unused entries 0)
  std::array<Real, 2> q{};                ///< gradient injection
  std::array<Real, 2> r{};                ///< gradient query point z = r^T s
  std::array<Real, 2> o{};                ///< output e = o^T s

  /// The same method with every entry converted to another scalar type.
  template <class Other>
  Method<Other> cast() const {
    Method<Other> m;
    m.k = k;
    for (int i = 0; i < 2; ++i) {
      m.q[i] = static_cast<Other>(q[i]);
      m.r[i] = static_cast<Other>(r[i]);
      m.o[i] = static_cast<Other>(o[i]);
      for (int j = 0; j < 2; ++j) m.P[i][j] = static_cast<Other>(P[i][j]);
    }
    return m;
  }
};

enum class MethodKind { Sgd, HeavyBall, Nesterov, AccSgd, Custom };

/// Command-line name: sgd, hb, nag, asgd, custom.
std::string_view to_string(MethodKind kind);
/// Parses sgd|hb|nag|asgd|custom; throws std::invalid_argument otherwise.
MethodKind parse_method_kind(std::string_view name);

/// A method as the user names it: a kind and its hyperparameters (doubles, as
/// typed). Hyperparameters the kind does not use stay NaN.
struct MethodSpec {
  static constexpr double unset = std::numeric_limits<double>::quiet_NaN();
  MethodKind kind = MethodKind::Sgd;
  double lr = unset;           ///< step size eta (all built-in kinds)
  double momentum = unset;     ///< beta (hb, nag)
  double kappa = unset;        ///< kappa_a (asgd): long-step / short-step ratio
  double xi = unset;           ///< xi (asgd): statistical advantage parameter
  double small_const = 0.7;    ///< c (asgd), the authors' default
  Method<double> custom{};     ///< (P, q, r, o) for MethodKind::Custom

  /// Throws std::invalid_argument (one line, naming the flag and value) when a
  /// hyperparameter is missing or out of range.
  void validate() const;
};

/// Builds (P, q, r, o) in the working precision from validated hyperparameters.
///   sgd:  P = [1], q = [eta], r = o = [1]
///   hb:   P = [[1+b, -b], [1, 0]], q = (eta, 0), r = o = (1, 0)
///   nag:  as hb but r = (1+b, -b)
///   asgd: AccSGD exactly as Kidambi et al.'s optimizer (state: iterate, buffer):
///         L = lr kappa / c, alpha = 1 - c^2 xi / kappa, zeta = c / (c + 1 - alpha)
///         P = [[zeta + (1-zeta)(1-alpha), (1-zeta) alpha], [1-alpha, alpha]]
///         q = (zeta lr + (1-zeta)(1-alpha) L, (1-alpha) L), r = o = (1, 0)
template <class Real>
Method<Real> make_method(const MethodSpec& spec) {
  Method<Real> m;
  const Real lr = static_cast<Real>(spec.lr);
  switch (spec.kind) {
    case MethodKind::Sgd:
      m.k = 1;
      m.P[0][0] = 1;
      m.q[0] = lr;
      m.r[0] = 1;
      m.o[0] = 1;
      return m;
    case MethodKind::HeavyBall:
    case MethodKind::Nesterov: {
      const Real b = static_cast<Real>(spec.momentum);
      m.k = 2;
      m.P = {{{1 + b, -b}, {Real(1), Real(0)}}};
      m.q = {lr, Real(0)};
      m.o = {Real(1), Real(0)};
      if (spec.kind == MethodKind::HeavyBall) m.r = {Real(1), Real(0)};
      else m.r = {1 + b, -b};
      return m;
    }
    case MethodKind::AccSgd: {
      const Real kappa = static_cast<Real>(spec.kappa);
      const Real xi = static_cast<Real>(spec.xi);
      const Real c = static_cast<Real>(spec.small_const);
      const Real L = lr * kappa / c;
      const Real one_minus_alpha = c * c * xi / kappa;
      const Real alpha = 1 - one_minus_alpha;
      const Real zeta = c / (c + one_minus_alpha);
      m.k = 2;
      m.P = {{{zeta + (1 - zeta) * one_minus_alpha, (1 - zeta) * alpha},
              {one_minus_alpha, alpha}}};
      m.q = {zeta * lr + (1 - zeta) * one_minus_alpha * L, one_minus_alpha * L};
      m.r = {Real(1), Real(0)};
      m.o = {Real(1), Real(0)};
      return m;
    }
    case MethodKind::Custom:
      return spec.custom.template cast<Real>();
  }
  return m;
}

/// Reads a custom method from JSON {"P": [[..],[..]], "q": [..], "r": [..], "o": [..]}
/// (k = 1 or 2, all four keys required, finite numbers). Throws
/// std::invalid_argument naming the file and the problem.
Method<double> read_method_file(const std::string& path);

/// One-line human description, e.g. "hb(lr=0.5, momentum=0.9)".
std::string describe(const MethodSpec& spec);

}  // namespace cesr
