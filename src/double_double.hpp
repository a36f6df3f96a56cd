// Double-double arithmetic (an unevaluated sum hi + lo of two doubles, about
// 106 bits) from error-free transformations with FMA, and a value with a
// bound on its absolute error carried along (as src/rounded.hpp does for the
// built-in types). The rate's certificate of a long double gap
// (long_double_certifies in rate.cpp) evaluates the secular function in it:
// quad's precision at a few times double's cost. Internal to src/.
//
// The operations are the algorithms of Joldes, Muller and Popescu ("Tight and
// rigorous error bounds for basic building blocks of double-word
// arithmetic", ACM TOMS 2017): sum (their Algorithm 6, relative error at most
// 3u^2 + 13u^3), product (Algorithm 12, 5u^2 with Muller and Rideau's 2022
// correction) and quotient (Algorithm 18, 10u^2, here with its
// double-word-times-double and plus-double steps done by the double-word
// ones, which are at least as accurate), u = 2^-53, when nothing underflows
// or overflows. Every operation is
// charged dd_epsilon = 2^-100 = 64 u^2 relative (a margin of 6 or more over
// those bounds), and a result whose high part leaves [2^-900, 2^900] (or is
// not finite) gets an infinite error bound, so that no low part is ever
// subnormal or lost: such a value decides nothing (sign_of gives 0).
// tests/test_double_double.cpp checks the bound against 50-digit arithmetic.
#pragma once

#include <cmath>
#include <limits>

namespace cesr::detail {

struct DoubleDouble {
  double hi = 0, lo = 0;
};

/// The relative error charged to each double-double operation.
inline constexpr double dd_epsilon = 0x1p-100;

inline DoubleDouble two_sum(double a, double b) {
  const double s = a + b;
  const double bb = s - a;
  return {s, (a - (s - bb)) + (b - bb)};
}
inline DoubleDouble fast_two_sum(double a, double b) {  // |a| >= |b| (or a = 0)
  const double s = a + b;
  return {s, b - (s - a)};
}
inline DoubleDouble two_prod(double a, double b) {
  const double p = a * b;
  return {p, std::fma(a, b, -p)};
}

inline DoubleDouble operator+(const DoubleDouble& x, const DoubleDouble& y) {
  const DoubleDouble s = two_sum(x.hi, y.hi), t = two_sum(x.lo, y.lo);
  const DoubleDouble v = fast_two_sum(s.hi, s.lo + t.hi);
  return fast_two_sum(v.hi, t.lo + v.lo);
}
inline DoubleDouble operator-(const DoubleDouble& x) { return {-x.hi, -x.lo}; }
inline DoubleDouble operator-(const DoubleDouble& x, const DoubleDouble& y) { return x + (-y); }
inline DoubleDouble operator*(const DoubleDouble& x, const DoubleDouble& y) {
  const DoubleDouble c = two_prod(x.hi, y.hi);
  const double tl0 = x.lo * y.lo;
  const double tl1 = std::fma(x.hi, y.lo, tl0);
  const double cl2 = std::fma(x.lo, y.hi, tl1);
  const double cl3 = c.lo + cl2;
  return fast_two_sum(c.hi, cl3);
}
inline DoubleDouble operator/(const DoubleDouble& x, const DoubleDouble& y) {
  // Algorithm 18: 1/y by a Newton step, then x times it with a correction.
  const double th = 1 / y.hi;
  const double rh = std::fma(-y.hi, th, 1.0);
  const double rl = -(y.lo * th);
  const DoubleDouble e = fast_two_sum(rh, rl);
  const DoubleDouble delta = DoubleDouble{th, 0} * e;
  const DoubleDouble m = DoubleDouble{th, 0} + delta;
  return x * m;
}

/// A double-double value with a bound `e` (a double, rounded up by a
/// margin) on its absolute error.
struct BoundedDD {
  DoubleDouble v;
  double e = 0;
};

namespace dd_detail {
// |v| from above, and the error bound of a result: the propagated part plus
// one operation's rounding, each double operation of the bound itself
// covered by the factor (1 + 2^-48) (at most 8 roundings of 2^-53 each);
// infinite outside the safe range.
inline double magnitude(const DoubleDouble& v) { return std::abs(v.hi) * (1 + 0x1p-50); }
inline BoundedDD finish(const DoubleDouble& v, double propagated) {
  const double a = std::abs(v.hi);
  const bool safe = std::isfinite(v.hi) && (a == 0 || (a >= 0x1p-900 && a <= 0x1p900));
  if (!safe) return {v, std::numeric_limits<double>::infinity()};
  return {v, (propagated + dd_epsilon * magnitude(v)) * (1 + 0x1p-48)};
}
}  // namespace dd_detail

/// A double known exactly.
inline BoundedDD exact_dd(double x) { return {{x, 0}, 0}; }

inline BoundedDD operator+(const BoundedDD& a, const BoundedDD& b) {
  return dd_detail::finish(a.v + b.v, a.e + b.e);
}
inline BoundedDD operator-(const BoundedDD& a, const BoundedDD& b) {
  return dd_detail::finish(a.v - b.v, a.e + b.e);
}
inline BoundedDD operator*(const BoundedDD& a, const BoundedDD& b) {
  using dd_detail::magnitude;
  return dd_detail::finish(a.v * b.v, magnitude(a.v) * b.e + magnitude(b.v) * a.e + a.e * b.e);
}
/// |b| - e_b > 0 must hold (the caller has decided the denominator's sign).
inline BoundedDD operator/(const BoundedDD& a, const BoundedDD& b) {
  using dd_detail::magnitude;
  const DoubleDouble v = a.v / b.v;
  const double below = std::abs(b.v.hi) * (1 - 0x1p-50) - b.e;  // |b| from below, less its error
  if (!(below > 0)) return {v, std::numeric_limits<double>::infinity()};
  return dd_detail::finish(v, (a.e + magnitude(v) * b.e) / below * (1 + 0x1p-50));
}

/// +1 or -1 when the sign is decided (the error bound, with a factor 2 of
/// margin, is below |v|), 0 when not; an exact 0 counts as not positive.
inline int sign_of(const BoundedDD& a) {
  if (std::isnan(a.v.hi) || !std::isfinite(a.e)) return 0;
  if (a.e == 0) return a.v.hi > 0 ? 1 : -1;
  const double lower = std::abs(a.v.hi) * (1 - 0x1p-50);  // |v| from below (|lo| <= ulp(hi) / 2)
  if (lower > 2 * a.e) return a.v.hi > 0 ? 1 : -1;
  return 0;
}

}  // namespace cesr::detail
