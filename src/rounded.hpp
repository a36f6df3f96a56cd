// A value with a first-order bound on its absolute rounding error, and the
// arithmetic that carries the bound along: a + b, a - b, a b and a / b each add
// one rounding of the result, eps |result| (the product of two errors is added
// as well). The rate's certificates (Secular::side in rate.cpp) and the k = 2
// spectral path's arc bounds (horizon_k2.cpp) use it. Internal to src/.
#pragma once

#include "cesr/real.hpp"

#include <boost/multiprecision/number.hpp>

#include <cmath>

namespace cesr::detail {

template <class Real>
struct Rounded {
  Real v{}, e{};
};

/// A value known exactly (no error).
template <class Real>
Rounded<Real> exact(const Real& v) {
  return {v, Real(0)};
}

/// A value that has been rounded once: error eps |v|.
template <class Real>
Rounded<Real> rounded_once(const Real& v) {
  using std::abs;
  return {v, epsilon<Real>() * abs(v)};
}

template <class Real>
Rounded<Real> operator+(const Rounded<Real>& a, const Rounded<Real>& b) {
  using std::abs;
  const Real v = a.v + b.v;
  return {v, a.e + b.e + epsilon<Real>() * abs(v)};
}
template <class Real>
Rounded<Real> operator-(const Rounded<Real>& a, const Rounded<Real>& b) {
  using std::abs;
  const Real v = a.v - b.v;
  return {v, a.e + b.e + epsilon<Real>() * abs(v)};
}
template <class Real>
Rounded<Real> operator*(const Rounded<Real>& a, const Rounded<Real>& b) {
  using std::abs;
  const Real v = a.v * b.v;
  return {v, abs(a.v) * b.e + abs(b.v) * a.e + a.e * b.e + epsilon<Real>() * abs(v)};
}
/// |b| - e_b > 0 must hold (the caller has decided the denominator's sign).
template <class Real>
Rounded<Real> operator/(const Rounded<Real>& a, const Rounded<Real>& b) {
  using std::abs;
  const Real v = a.v / b.v;
  return {v, (a.e + abs(v) * b.e) / (abs(b.v) - b.e) + epsilon<Real>() * abs(v)};
}

/// The sign of a bounded value: +1 or -1 when decided (the error bound, with
/// a factor 2 of margin, is below |v|), 0 when not. An exact 0 counts as not
/// positive (a condition "> 0" that fails exactly).
template <class Real>
int sign_of(const Rounded<Real>& a) {
  using std::isnan;
  using boost::multiprecision::isnan;
  // A value that overflowed to +-infinity (an opposite infinity would have
  // made it NaN) is far beyond its error: rho = 1e400 at lr = 1e200.
  if (!is_finite(a.v)) return isnan(a.v) ? 0 : (a.v > 0 ? 1 : -1);
  if (!is_finite(a.e)) return 0;
  if (a.e == 0) return a.v > 0 ? 1 : -1;
  if (a.v > 2 * a.e) return 1;
  if (a.v < -2 * a.e) return -1;
  return 0;
}

}  // namespace cesr::detail
