// Scalar types and precision selection.
//
// Every numeric routine in cesr is a template on one scalar type `Real`. It is
// instantiated for four types, chosen at run time by `Precision`:
//   double       53-bit binary64
//   long double  64-bit x87 extended
//   quad         113-bit IEEE binary128 (GCC __float128 through Boost.Multiprecision)
//   mp50         50 decimal digits (Boost.Multiprecision cpp_bin_float_50)
// Math calls inside templates are unqualified after `using std::sqrt;` etc., so
// the Boost.Multiprecision overloads are found by argument-dependent lookup.
#pragma once

#include <boost/multiprecision/cpp_bin_float.hpp>
#include <boost/multiprecision/float128.hpp>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>

/// Applies MACRO(Real) to every supported scalar type; src/*.cpp use it for
/// their explicit instantiations, so the list of precisions lives here only.
#define CESR_FOR_EACH_REAL(MACRO) MACRO(double) MACRO(long double) MACRO(::cesr::quad) MACRO(::cesr::mp50)

namespace cesr {

using quad = boost::multiprecision::float128;
using mp50 = boost::multiprecision::cpp_bin_float_50;

enum class Precision { Double, Long, Quad, Mp50 };

/// Name as used on the command line: double, long, quad, mp50.
std::string_view to_string(Precision p);
/// Parses double|long|quad|mp50; throws std::invalid_argument otherwise.
Precision parse_precision(std::string_view s);

/// The next higher precision (Mp50 is the last; returns Mp50 for it).
constexpr Precision next_precision(Precision p) {
  switch (p) {
    case Precision::Double: return Precision::Long;
    case Precision::Long: return Precision::Quad;
    default: return Precision::Mp50;
  }
}

template <class Real>
constexpr Precision precision_of() {
  if constexpr (std::is_same_v<Real, double>) return Precision::Double;
  else if constexpr (std::is_same_v<Real, long double>) return Precision::Long;
  else if constexpr (std::is_same_v<Real, quad>) return Precision::Quad;
  else {
    static_assert(std::is_same_v<Real, mp50>, "cesr: unsupported scalar type");
    return Precision::Mp50;
  }
}

/// Calls f(Real{}) with the scalar type that `p` names (f is a generic lambda).
template <class F>
decltype(auto) with_precision(Precision p, F&& f) {
  switch (p) {
    case Precision::Double: return f(double{});
    case Precision::Long: return f(static_cast<long double>(0));
    case Precision::Quad: return f(quad{});
    case Precision::Mp50: return f(mp50{});
  }
  throw std::logic_error("cesr: unknown precision");
}

/// Automatic precision: evaluates eval(p) for p = double, long, quad, mp50 in
/// turn until agree(previous, current) holds, and returns the last answer (the
/// mp50 one when no two successive precisions agree).
template <class Eval, class Agree>
auto escalate_precision(Eval&& eval, Agree&& agree) {
  Precision p = Precision::Double;
  auto prev = eval(p);
  while (p != Precision::Mp50) {
    p = next_precision(p);
    auto cur = eval(p);
    const bool done = agree(prev, cur);
    prev = std::move(cur);
    if (done) break;
  }
  return prev;
}

/// The agreement tolerance of escalate_precision's callers (--rtol): throws
/// std::invalid_argument unless 0 < rtol < 1.
void check_escalation_rtol(double rtol);

/// Unit roundoff of Real: 2^(1 - digits).
template <class Real>
Real epsilon() { return std::numeric_limits<Real>::epsilon(); }

/// Significant decimal digits that round-trip a value of Real (17 for double).
template <class Real>
constexpr int round_trip_digits() { return std::numeric_limits<Real>::max_digits10; }

/// Converts any supported scalar to double (rounding).
template <class Real>
double to_double(const Real& x) {
  if constexpr (std::is_arithmetic_v<Real>) return static_cast<double>(x);
  else return x.template convert_to<double>();
}

/// Scientific notation with `digits` significant digits ("1.2345e-07"),
/// "inf"/"-inf"/"nan" for non-finite values. digits <= 0 means
/// round_trip_digits<Real>().
template <class Real>
std::string format_real(const Real& x, int digits = 0);

/// True if x is finite (works for every supported scalar).
template <class Real>
bool is_finite(const Real& x) {
  using std::isfinite;
  using boost::multiprecision::isfinite;
  return static_cast<bool>(isfinite(x));
}

}  // namespace cesr
