// Contraction rate rho(T) of the exact second-moment operator from its secular
// equation. Derivation and numerical design: docs/rate.md.
//
// Per direction i the deterministic part is M_i: S -> A_i S A_i^T with
// A_i = P - lambda_i q r^T, and everything the noise sees of the resolvent of
// M_i is the scalar
//   phi_i(z) = r^T [(z - M_i)^{-1} q q^T] r = sum_t (r^T A_i^t q)^2 z^{-t-1} = N_i(z) / C_i(z),
// with C_i the characteristic polynomial of M_i (degree 3 for k = 2, 1 for k = 1)
// and N_i of degree k. With u_i = lambda_i^2 / B the secular function is
//   g(z) = sum_i u_i N_i(z) / chi_i(z),   chi_i = C_i - (K - 2) u_i N_i,
// where chi_i is the characteristic polynomial of the block D_i (M_i plus the
// self-noise term). rho(T) is the root of g(z) = 1 above rho(D), or rho(D).
//
// Everything is evaluated in the gap variable x = 1 - z and in the small
// quantities of each direction: with F_i = I - A_i,
//   sigma1 = tr F_i,  sigma0 = det F_i,  d = 1 - det A_i,
// so that C_i, which is O(gap^3) near critical damping, is a product of small
// factors instead of a difference of O(1) terms.
#include "cesr/rate.hpp"

#include "cesr/parallel.hpp"
#include "kernels.hpp"
#include "double_double.hpp"
#include "rounded.hpp"

#include <Eigen/Dense>
#include <boost/math/tools/roots.hpp>
#include <boost/multiprecision/eigen.hpp>
#include <boost/math/tools/toms748_solve.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <optional>
#include <span>
#include <utility>
#include <type_traits>
#include <stdexcept>
#include <vector>

namespace cesr {

namespace {

/// sum, dsum and bad accumulated by body(i, sum, dsum, bad) over i < d. Up to
/// one chunk (include/cesr/parallel.hpp) this is the serial loop, vectorized
/// for the built-in floating types; longer loops are summed per chunk (on
/// several threads) and the chunks added in order, so the result does not
/// depend on the thread count.
template <class Real, class Body>
__attribute__((flatten)) void sum_range_simd(std::size_t begin, std::size_t end, Real& out_sum, Real& out_dsum,
                                             int& out_bad, const Body& body) {
  Real a = 0, b = 0;
  int r = 0;
#pragma omp simd reduction(+ : a, b, r)
  for (std::size_t i = begin; i < end; ++i) body(i, a, b, r);
  out_sum = a;
  out_dsum = b;
  out_bad = r;
}

// The vectorized loop of one chunk; flatten keeps the body inlined into it
// (for the built-in types only: inlining Boost.Multiprecision costs compile time).
template <class Real, class Body>
void sum_range(std::size_t begin, std::size_t end, Real& out_sum, Real& out_dsum, int& out_bad, const Body& body) {
  if constexpr (std::is_floating_point_v<Real>) {
    sum_range_simd(begin, end, out_sum, out_dsum, out_bad, body);
  } else {
    Real a = 0, b = 0;
    int r = 0;
    for (std::size_t i = begin; i < end; ++i) body(i, a, b, r);
    out_sum = a;
    out_dsum = b;
    out_bad = r;
  }
}

template <class Real, class Body>
void chunked_sums(std::size_t d, Real& sum, Real& dsum, int& bad, const Body& body) {
  const std::size_t chunks = chunk_count(d);
  if (chunks <= 1) {
    sum_range(0, d, sum, dsum, bad, body);
    return;
  }
  std::vector<Real> sums(chunks), dsums(chunks);
  std::vector<int> bads(chunks);
  for_each_chunk(d, [&](std::size_t c, std::size_t begin, std::size_t end) {
    sum_range(begin, end, sums[c], dsums[c], bads[c], body);
  });
  sum = 0;
  dsum = 0;
  bad = 0;
  for (std::size_t c = 0; c < chunks; ++c) {
    sum += sums[c];
    dsum += dsums[c];
    bad += bads[c];
  }
}

/// The kernel sums of src/kernels.hpp over d directions: chunk(begin, end)
/// per chunk (on several threads for long loops), the chunks added in order.
template <class Chunk>
kernels::SecularSums chunked_kernel(std::size_t d, const Chunk& chunk) {
  return chunked_reduce<kernels::SecularSums>(d, chunk, [](kernels::SecularSums& t, const kernels::SecularSums& p) {
    t.g += p.g;
    t.dg += p.dg;
    t.rejected += p.rejected;
  });
}

/// Constants of a method that do not depend on the direction. With E = I - P:
///   k = 2: sigma1 = tr_e + lambda qr, sigma0 = det_e + lambda c_e,
///          d = one_minus_det_p - lambda b1,  r^T A^t q has a0 = qr and
///          a1 - tr(A) a0 = b1 = -r^T adj(P) q (independent of lambda).
///   k = 1: y = 1 - A = tr_e + lambda qr.
template <class Real>
struct Coefficients {
  int k = 1;
  Real tr_e{}, det_e{}, c_e{}, qr{}, b1{}, one_minus_det_p{};
};

/// The direction-independent constants of a method with entries of type W
/// (P[a][b], q[a], r[a] for a, b < k), in W's arithmetic; `one` is W's 1.
template <class W>
struct Constants {
  W tr_e, det_e, c_e, qr, b1, one_minus_det_p;
};
template <class W, class EntryP, class EntryQ, class EntryR>
Constants<W> method_constants(int k, const EntryP& P, const EntryQ& q, const EntryR& r, const W& one) {
  Constants<W> c{};
  if (k == 1) {
    c.tr_e = one - P(0, 0);
    c.qr = q(0) * r(0);
    return c;
  }
  // E = I - P = [[e00, -p01], [-p10, e11]] (the signs are written out below,
  // so that W needs no unary minus).
  const W e00 = one - P(0, 0), p01 = P(0, 1), p10 = P(1, 0), e11 = one - P(1, 1);
  c.tr_e = e00 + e11;
  c.det_e = e00 * e11 - p01 * p10;
  // r^T adj(E) q, adj(E) = [[e11, p01], [p10, e00]]:
  c.c_e = r(0) * (e11 * q(0) + p01 * q(1)) + r(1) * (e00 * q(1) + p10 * q(0));
  // adj(P) = [[P11, -P01], [-P10, P00]]; b1 = -r^T adj(P) q.
  const W r_adjp_q = r(0) * (P(1, 1) * q(0) - P(0, 1) * q(1)) + r(1) * (P(0, 0) * q(1) - P(1, 0) * q(0));
  c.b1 = W(one - one) - r_adjp_q;
  c.qr = r(0) * q(0) + r(1) * q(1);
  // det P = det(I - E) = 1 - tr E + det E.
  c.one_minus_det_p = c.tr_e - c.det_e;
  return c;
}

/// The constants formed in the arithmetic of Wide and rounded once to Real.
template <class Real, class Wide>
Coefficients<Real> coefficients(const Method<Wide>& m) {
  const auto P = [&](int a, int b) { return m.P[a][b]; };
  const auto q = [&](int a) { return m.q[a]; };
  const auto r = [&](int a) { return m.r[a]; };
  const Constants<Wide> w = method_constants<Wide>(m.k, P, q, r, Wide(1));
  const auto to_real = [](const Wide& x) { return static_cast<Real>(x); };
  Coefficients<Real> c;
  c.k = m.k;
  c.tr_e = to_real(w.tr_e);
  c.qr = to_real(w.qr);
  if (m.k == 1) return c;
  c.det_e = to_real(w.det_e);
  c.c_e = to_real(w.c_e);
  c.b1 = to_real(w.b1);
  c.one_minus_det_p = to_real(w.one_minus_det_p);
  return c;
}

/// Thrown when rho(T) lies beyond the range of the working precision.
struct Overflow {};

template <class Real>
struct Evaluation {
  bool accepted = false;  ///< every direction is above its pole and every term >= 0
  Real g{};               ///< the secular function (meaningful when accepted)
  Real dg{};              ///< its derivative in x = 1 - z (>= 0)
};

/// A value with a bound on its rounding error (src/rounded.hpp); the
/// certificates of Secular::side use it.
template <class Real>
using Bounded = detail::Rounded<Real>;
using detail::rounded_once;

/// Where a point x lies relative to the gap 1 - rho(T) of the problem whose
/// constants are the exact ones rounded once to Real.
enum class Side {
  Below,    ///< x < gap, certified: every direction accepted at z = 1 - x and g < 1 there
  Above,    ///< x >= gap, certified: a direction rejected (z <= rho(D)) or g > 1
  Unknown,  ///< within the rounding errors of Real
};

/// The constants of a side test (Secular::side, double_double_certifies) as
/// bounded values of B (src/rounded.hpp's Rounded, or src/double_double.hpp's
/// BoundedDD): each with a bound on how far it is from the exact constant.
template <class B>
struct SideConstants {
  int k = 1;
  B zero, one, two, four, kb, ib, tr_e, det_e, c_e, qr, b1, omdp;
};

inline void clamp_nonnegative(detail::BoundedDD& n) {
  if (n.v.hi < 0) n.v = {0, 0};
}
template <class Real>
void clamp_nonnegative(Bounded<Real>& n) {
  if (n.v < 0) n.v = 0;
}

/// The terms of a side test over the directions [begin, end).
template <class B>
struct SidePart {
  bool rejected = false, undecided = false;
  B sum;
};
template <class B, class Value, class Exact>
SidePart<B> side_part(const SideConstants<B>& c, std::span<const Value> lambda, std::span<const Value> weight,
                      const Exact& exact_value, const B& x, std::size_t begin, std::size_t end) {
  SidePart<B> out;
  out.sum = c.zero;
  for (std::size_t i = begin; i < end; ++i) {
    const B l = exact_value(lambda[i]);
    const B u = l * l * c.ib;
    B n, chi;
    bool rejected = false;
    const auto require_positive = [&](const B& v) {
      const int sg = sign_of(v);
      if (sg < 0) rejected = true;
      if (sg == 0) out.undecided = true;
    };
    if (c.k == 1) {
      const B y = c.tr_e + l * c.qr;
      n = c.qr * c.qr;
      const B cc = y * (c.two - y) - x;  // z - A^2
      chi = cc - c.kb * u * n;
      require_positive(cc);
    } else {
      const B s1 = c.tr_e + l * c.qr, s0 = c.det_e + l * c.c_e, dd = c.omdp - l * c.b1;
      const B delta = c.one - dd, tau = c.two - s1, z = c.one - x;
      const B bq = s1 * (s1 - c.two) - c.two * s0;
      const B q = (x + bq) * x + s0 * (c.four - c.two * s1 + s0);
      const B n1 = c.b1 * c.b1 + c.two * tau * c.qr * c.b1 + delta * c.qr * c.qr;
      n = (c.qr * c.qr * z + n1) * z + delta * c.b1 * c.b1;
      clamp_nonnegative(n);  // N >= 0 above rho(M_i): a negative value is within its error of 0
      chi = (dd - x) * q - c.kb * u * n;
      require_positive(dd - x);             // z - det A
      require_positive(c.two - dd - x);     // z + det A
      require_positive(c.zero - (c.two * x + bq));  // Q increasing in z
      require_positive(q);
    }
    require_positive(chi);
    if (rejected) {
      out.rejected = true;  // z <= rho(D_i) <= rho(T), whatever the others say
      return out;
    }
    if (out.undecided) continue;
    B h = u * n / chi;
    if (!weight.empty()) h = h * exact_value(weight[i]);
    out.sum = out.sum + h;
  }
  return out;
}

/// The side of x for the problem of `c`: side_part per chunk of directions
/// (chunked_reduce, on several threads for long loops), the chunks' sums
/// added in chunk order; up to one chunk the serial loop.
template <class B, class Value, class Exact>
Side side_of(const SideConstants<B>& c, std::span<const Value> lambda, std::span<const Value> weight,
             const Exact& exact_value, const B& x) {
  const SidePart<B> all = chunked_reduce<SidePart<B>>(
      lambda.size(),
      [&](std::size_t begin, std::size_t end) { return side_part(c, lambda, weight, exact_value, x, begin, end); },
      [](SidePart<B>& total, const SidePart<B>& part) {
        total.rejected |= part.rejected;
        total.undecided |= part.undecided;
        total.sum = total.sum + part.sum;
      });
  if (all.rejected) return Side::Above;  // z <= rho(D_i) <= rho(T), whatever the others say
  if (all.undecided) return Side::Unknown;
  const int sg = sign_of(all.sum - c.one);
  return sg < 0 ? Side::Below : sg > 0 ? Side::Above : Side::Unknown;
}

/// The secular function and the per-direction poles for one problem.
template <class Real>
class Secular {
 public:
  Secular(const Spectrum& spectrum, const Coefficients<Real>& c, const NoiseModel& noise)
      : c_(c),
        // The additive model has no iterate-dependent noise: T = D = the
        // deterministic blocks M_i (no self-noise, no coupling), so g = 0 and
        // rho(T) = rho(D) = max_i rho(A_i)^2.
        kb_(noise.additive() ? Real(0) : Real(noise.kurtosis) - 2),
        inv_batch_(noise.additive() ? Real(0) : Real(1) / Real(noise.batch)),
        // Double reads the spectrum in place (no copy of d values per solve);
        // the wider types keep their own rounded copy.
        lambda_store_(std::is_same_v<Real, double> ? 0 : spectrum.lambda.size()),
        weight_store_(std::is_same_v<Real, double> ? 0 : spectrum.weight.size()),
        lambda_(view(spectrum.lambda, lambda_store_)),
        weight_(view(spectrum.weight, weight_store_)) {}

  /// g at z = 1 - x. A direction is accepted when z > rho(M_i) (checked by
  /// signs: z > |det A_i|, C_i increasing at z, C_i(z) > 0), N_i(z) >= 0 and
  /// chi_i(z) > 0; all of these then hold for every larger z, and every term
  /// of g is >= 0 and decreasing in z.
  Evaluation<Real> operator()(const Real& x) {
    ++evaluations_;
    // The root finders revisit points (a clamped Newton iterate lands on the
    // bracket's end, evaluated before): the same x gives the same bits, so
    // the last two points are answered without another O(d) pass. Counted
    // as evaluations all the same (what they report is unchanged).
    for (const Recent& r : recent_)
      if (r.valid && r.x == x) return r.e;
    const Evaluation<Real> e = evaluate(x);
    recent_[next_recent_] = {true, x, e};
    next_recent_ ^= 1;
    return e;
  }

  /// O(d) passes actually run (evaluations() less the repeats answered from
  /// the last two).
  int passes() const { return passes_; }

  /// g at z = 1 - x, always computed (one O(d) pass).
  Evaluation<Real> evaluate(const Real& x) {
    ++passes_;
    Real sum = 0, dsum = 0;
    int rejected = 0;
    const std::size_t d = lambda_.size();
    const Real* lam = lambda_.data();
    // A weighted line (w_i directions) injects w_i times the coupling into
    // its block and is read as before: its term of g is w_i times the
    // unweighted one (the poles do not move). The unweighted loops are
    // separate instances, unchanged.
    const Real* wt = weight_.data();
    // Double takes the kernels of src/kernels.cpp (the widest instruction
    // set the CPU has, with the same bits in each); the other types this
    // loop (vectorized for long double). Long loops are summed in fixed
    // chunks, on several threads (chunked_sums, chunked_kernel).
    if constexpr (std::is_same_v<Real, double>) {
      const double* w = weight_.empty() ? nullptr : wt;
      const kernels::SecularSums s = chunked_kernel(d, [&](std::size_t begin, std::size_t end) {
        const double* wb = w ? w + begin : nullptr;
        if (c_.k == 1) return kernels::secular_k1(k1(), lam + begin, wb, end - begin, x);
        return kernels::secular_k2(k2(), lam + begin, wb, end - begin, x);
      });
      Evaluation<Real> out;
      out.accepted = s.rejected == 0 && is_finite(s.g) && is_finite(s.dg);
      out.g = s.g;
      out.dg = s.dg;
      return out;
    }
    const auto run = [&](auto weighted) {
      constexpr bool W = decltype(weighted)::value;
      if (c_.k == 1) {
        const Real n = c_.qr * c_.qr, tr_e = c_.tr_e, qr = c_.qr, kb = kb_, ib = inv_batch_;
        const auto body = [&](std::size_t i, Real& acc, Real& dacc, int& bad) {
          const Real l = lam[i];
          const Real y = tr_e + l * qr;
          const Real u = l * l * ib;
          const Real cc = y * (2 - y) - x;  // z - A^2
          const Real chi = cc - kb * u * n;
          bad += !(cc > 0) | !(chi > 0);
          Real h = u * n / chi;
          if constexpr (W) h *= wt[i];
          acc += h;
          dacc += h / chi;  // d chi / dx = -1
        };
        chunked_sums(d, sum, dsum, rejected, body);
      } else {
        const auto body = [&](std::size_t i, Real& acc, Real& dacc, int& bad) {
          const Terms t = terms(lam[i], x);
          bad += !t.ok;
          if constexpr (W) {
            acc += wt[i] * t.h;
            dacc += wt[i] * t.dh;
          } else {
            acc += t.h;
            dacc += t.dh;
          }
        };
        chunked_sums(d, sum, dsum, rejected, body);
      }
    };
    if (weight_.empty()) run(std::false_type{});
    else run(std::true_type{});
    Evaluation<Real> out;
    out.accepted = rejected == 0 && is_finite(sum) && is_finite(dsum);
    out.g = sum;
    out.dg = dsum;
    return out;
  }

  /// x_i^* = 1 - rho(D_i) minimised over i (i.e. 1 - rho(D)). For K <= 2 the
  /// pole of direction i is rho(M_i) (for K < 2 the self-noise term only adds
  /// a positive amount to chi_i above it); for K > 2 it is the largest real
  /// root of chi_i, which lies above rho(M_i).
  struct Base {
    Real x;      ///< 1 - rho(D)
    Real scale;  ///< size of the small quantities of the direction attaining it
  };
  Base base() const {
    using std::abs;
    using std::max;
    const std::size_t d = lambda_.size();
    // Pass 1: rho(M_i) in closed form (and for k = 1 rho(D_i) as well).
    // Per chunk (on several threads for long loops), then the chunks in
    // order: the first smallest, as a serial scan finds it.
    const std::size_t chunks = std::max<std::size_t>(chunk_count(d), 1);
    std::vector<Real> chunk_best(chunks, std::numeric_limits<Real>::infinity());
    std::vector<std::size_t> chunk_arg(chunks, 0);
    for_each_chunk(d, [&](std::size_t c, std::size_t begin, std::size_t end) {
      if constexpr (std::is_same_v<Real, double>) {
        // The same poles and the same first smallest, in the kernels of src/kernels.cpp.
        const kernels::PoleMin m = c_.k == 1 ? kernels::pole_min_k1(k1(), lambda_.data() + begin, end - begin)
                                             : kernels::pole_min_k2(k2(), lambda_.data() + begin, end - begin);
        if (m.x < chunk_best[c]) chunk_best[c] = m.x, chunk_arg[c] = begin + m.index;
        return;
      }
      for (std::size_t i = begin; i < end; ++i) {
        const Real x = deterministic_pole(lambda_[i]);
        if (x < chunk_best[c]) chunk_best[c] = x, chunk_arg[c] = i;
      }
    });
    Real best = std::numeric_limits<Real>::infinity();
    std::size_t arg = 0;
    for (std::size_t c = 0; c < chunks; ++c)
      if (chunk_best[c] < best) best = chunk_best[c], arg = chunk_arg[c];
    if (c_.k == 2 && kb_ > 0) {
      // Pass 2 (k = 2, K > 2): a direction whose chi is positive at the
      // current best is accepted there, so its self-noise pole lies below;
      // only the others need a root solve, which moves the best up.
      if constexpr (std::is_same_v<Real, double>) {
        // The same scan, skipping ahead to the next direction that is not
        // accepted at the current best (kernels: the same chi as terms()).
        for (std::size_t i = 0; i < d;) {
          i += kernels::first_unaccepted_chi_k2(k2(), lambda_.data() + i, d - i, best);
          if (i >= d) break;
          best = self_pole(lambda_[i], best), arg = i;
          ++i;
        }
      } else {
        for (std::size_t i = 0; i < d; ++i)
          if (!(terms(lambda_[i], best).chi > 0)) best = self_pole(lambda_[i], best), arg = i;
      }
    }
    // The pole of a direction is known to about eps times the size of its
    // small quantities (sigma1, sigma0, 1 - det A, or 1 - A for k = 1).
    const Real l = lambda_.empty() ? Real(0) : lambda_[arg];
    Real scale = abs(best);
    if (c_.k == 1) {
      scale = max(scale, abs(c_.tr_e + l * c_.qr));
    } else {
      scale = max(scale, abs(c_.tr_e + l * c_.qr));
      scale = max(scale, abs(c_.det_e + l * c_.c_e));
      scale = max(scale, abs(c_.one_minus_det_p - l * c_.b1));
    }
    return {best, scale};
  }

  /// 1 - rho(M_i), or 1 - rho(D_i) for k = 1.
  Real deterministic_pole(const Real& l) const {
    using std::sqrt;
    if (c_.k == 1) {
      const Real y = c_.tr_e + l * c_.qr;
      Real xm = y * (2 - y);
      if (kb_ > 0) xm -= kb_ * l * l * inv_batch_ * c_.qr * c_.qr;
      return xm;
    }
    const Real s1 = c_.tr_e + l * c_.qr;
    const Real s0 = c_.det_e + l * c_.c_e;
    const Real disc = s1 * s1 - 4 * s0;
    if (disc < 0) return c_.one_minus_det_p - l * c_.b1;  // complex pair: |mu|^2 = det A
    // Roots y of y^2 - sigma1 y + sigma0 (y = 1 - mu), the stable way.
    const Real sq = sqrt(disc);
    const Real qq = (s1 >= 0 ? s1 + sq : s1 - sq) / 2;
    const Real y1 = qq;
    const Real y2 = qq != 0 ? s0 / qq : Real(0);
    return std::min(y1 * (2 - y1), y2 * (2 - y2));
  }

  /// The side of x (see Side), from every direction's acceptance conditions
  /// and the sum g, each with a bound on its rounding error that starts from
  /// the rounding of the method's constants and of 1/B, K - 2.
  Side side(const Real& x_in) const {
    using B = Bounded<Real>;
    SideConstants<B> c;
    c.k = c_.k;
    c.zero = B{Real(0), Real(0)};
    c.one = B{Real(1), Real(0)};
    c.two = B{Real(2), Real(0)};
    c.four = B{Real(4), Real(0)};
    c.kb = rounded_once(kb_);
    c.ib = rounded_once(inv_batch_);
    c.tr_e = rounded_once(c_.tr_e);
    c.det_e = rounded_once(c_.det_e);
    c.c_e = rounded_once(c_.c_e);
    c.qr = rounded_once(c_.qr);
    c.b1 = rounded_once(c_.b1);
    c.omdp = rounded_once(c_.one_minus_det_p);
    const auto exact_value = [](const Real& v) { return B{v, Real(0)}; };
    return side_of(c, lambda_, weight_, exact_value, B{x_in, Real(0)});
  }

  struct Recent {
    bool valid = false;
    Real x{};
    Evaluation<Real> e{};
  };

 public:
  int evaluations() const { return evaluations_; }
  std::size_t dim() const { return lambda_.size(); }

 private:
  Recent recent_[2];
  int next_recent_ = 0;
  int passes_ = 0;
  // The constants as the kernels take them (double only).
  kernels::ConstantsK1 k1() const { return {c_.tr_e, c_.qr, c_.qr * c_.qr, kb_, inv_batch_}; }
  kernels::ConstantsK2 k2() const {
    return {c_.tr_e, c_.det_e, c_.c_e, c_.qr, c_.b1, c_.one_minus_det_p, kb_, inv_batch_};
  }

  struct Terms {
    bool ok;
    Real chi, h, dh;  // dh: derivative of h in x
  };

  /// The k = 2 term of direction with eigenvalue l at x.
  Terms terms(const Real& l, const Real& x) const {
    const Real s1 = c_.tr_e + l * c_.qr;
    const Real s0 = c_.det_e + l * c_.c_e;
    const Real dd = c_.one_minus_det_p - l * c_.b1;  // 1 - det A
    const Real delta = 1 - dd;                      // det A
    const Real tau = 2 - s1;                        // tr A
    // C(z) = (z - det A) Q(z), Q(z) = (z - mu1^2)(z - mu2^2), in x = 1 - z:
    const Real bq = s1 * (s1 - 2) - 2 * s0;
    const Real q = (x + bq) * x + s0 * (4 - 2 * s1 + s0);
    const Real z = 1 - x;
    const Real a0 = c_.qr, b1 = c_.b1;
    // N(z) = a0^2 z^2 + (b1^2 + 2 tr(A) a0 b1 + det(A) a0^2) z + det(A) b1^2.
    const Real n1 = b1 * b1 + 2 * tau * a0 * b1 + delta * a0 * a0;
    // N >= 0 whenever z > rho(M_i) (phi_i is a sum of squares over powers of
    // z); a negative value is rounding noise near a zero of N, clamped.
    const Real n = std::max((a0 * a0 * z + n1) * z + delta * b1 * b1, Real(0));
    const Real above_det = delta >= 0 ? dd - x : 2 - dd - x;  // z - |det A|
    const Real u = l * l * inv_batch_;
    const Real dq = 2 * x + bq;  // dQ/dx = -dQ/dz
    const Real cc = (dd - x) * q;
    const Real chi = cc - kb_ * u * n;
    const bool ok = (above_det > 0) & (dq < 0) & (q > 0) & (chi > 0);
    // Derivatives in x: N' = -(2 a0^2 z + n1), C' = -Q + (d - x) Q', chi' = C' - (K-2) u N'.
    const Real dn = -(2 * a0 * a0 * z + n1);
    const Real dchi = (dd - x) * dq - q - kb_ * u * dn;
    const Real h = u * n / chi;
    return {ok, chi, h, (u * dn - h * dchi) / chi};
  }

  /// For K > 2: the pole of a direction that is not yet accepted at x_hi (chi <= 0
  /// there): the root of chi in x < x_hi, found with TOMS 748.
  Real self_pole(const Real& l, const Real& x_hi) const {
    using std::abs;
    using std::max;
    using std::ldexp;
    using std::min;
    const auto chi = [&](const Real& x) { return terms(l, x).chi; };
    // Relative to x_hi when it is small (a pole at 2e-309 must not be
    // bracketed, and rounded, on a grid of eps), but not below 1100 binades
    // under 1 (x_hi = 0).
    const Real floor = ldexp(epsilon<Real>(), -1100);
    Real step = max(min(abs(x_hi), Real(1)) * epsilon<Real>() * 16, floor);
    Real x_lo = x_hi - step;
    Real f_lo = chi(x_lo);
    int guard = 0;
    while (!(f_lo > 0)) {
      step *= 4;
      x_lo = x_hi - step;
      f_lo = chi(x_lo);
      if (!is_finite(f_lo) || !is_finite(step)) throw Overflow{};
      if (++guard > 4000) throw std::runtime_error("contraction_rate: cannot bracket the self-noise pole");
    }
    const Real f_hi = chi(x_hi);
    if (f_hi == 0) return x_hi;
    boost::uintmax_t iters = 200;
    const auto tol = [floor](const Real& a, const Real& b) {
      using std::abs;
      using std::min;
      const Real eps = epsilon<Real>();
      return abs(a - b) <= 4 * eps * max(min(abs(a), abs(b)), floor);  // relative, or absolute near 0
    };
    const auto r = boost::math::tools::toms748_solve(chi, x_lo, x_hi, f_lo, f_hi, tol, iters);
    return r.first;  // the side where chi > 0: accepted
  }

  Coefficients<Real> c_;
  Real kb_, inv_batch_;
  static std::span<const Real> view(const std::vector<double>& values, std::vector<Real>& store) {
    if constexpr (std::is_same_v<Real, double>) {
      return {values.data(), values.size()};
    } else {
      std::copy(values.begin(), values.end(), store.begin());
      return {store.data(), store.size()};
    }
  }

  std::vector<Real> lambda_store_, weight_store_;
  std::span<const Real> lambda_;
  std::span<const Real> weight_;  // w_i, empty when unweighted
  mutable int evaluations_ = 0;
};

/// The root of g = 1 from a guess of it (in a search, the gap of the point
/// before), or no value: the caller then solves cold.
///
/// From the guess, Newton steps on F = 1/g - 1, each overshot by a factor 2,
/// until two accepted points (every direction above its pole) lie on either
/// side of g = 1: that certifies the bracket as solve_in_range's does (every
/// point between them is accepted, and g is increasing in x there). z = 1
/// inside the bracket is evaluated as solve_in_range does, so the stability
/// verdict is decided the same way; then its Newton phase b) in the bracket.
/// No value when the guess or a step lands beyond a pole, no bracket appears
/// within 8 evaluations (a far guess) or Newton does not settle. Skips the
/// rho(D) pass, the cold bracketing and the log-distance phase.
template <class Real>
std::optional<Real> root_near(Secular<Real>& g, const Real& hint) {
  if (!is_finite(hint)) return std::nullopt;
  Evaluation<Real> e = g(hint);
  if (!e.accepted || !(e.g > 0) || !(e.dg > 0)) return std::nullopt;
  if (e.g == 1) return hint;
  const bool below = e.g < 1;  // the guess lies below the root in x
  Real lo = hint, hi = hint;
  Real base = hint, first = hint;  // the point the steps start from; the first Newton iterate
  bool bracketed = false;
  for (int probe = 0; probe < 8 && !bracketed; ++probe) {
    const Real step = e.g * (1 - e.g) / e.dg;  // Newton on F from `base`
    if (probe == 0) first = hint + step;
    // At least a few ulps of `base` (a guess that is the root already: its
    // step rounds away), in the direction of the root.
    using std::abs;
    using std::max;
    const Real least = 8 * epsilon<Real>() * max(abs(base), std::numeric_limits<Real>::min());
    const Real move = 2 * step;
    const Real x = base + (abs(move) >= least ? move : below ? least : -least);
    if (x == base || !is_finite(x)) return std::nullopt;
    const Evaluation<Real> ex = g(x);
    // Beyond a pole (only above an accepted point): the root then lies closer
    // to that pole than the Newton step of g from here suggests -- typically
    // within 1e-6 relative of it, where g is dominated by one small term
    // until very near it (tuned heavy ball) -- which the cold solve's
    // log-distance phase finds; probing for it here costs more.
    if (!ex.accepted) return std::nullopt;
    if (!(ex.g > 0) || !(ex.dg > 0)) return std::nullopt;
    if (below ? ex.g > 1 : ex.g < 1) {
      (below ? hi : lo) = x;
      bracketed = true;
    } else {
      // Still on the guess's side: closer to the root; step on from there.
      (below ? lo : hi) = x;
      base = x;
      e = ex;
    }
  }
  if (!bracketed) return std::nullopt;
  if (lo < 0 && hi > 0) {
    // As solve_in_range: z = 1 decides stability exactly.
    const Evaluation<Real> e0 = g(Real(0));
    if (!e0.accepted) return std::nullopt;
    if (e0.g == 1) return Real(0);
    (e0.g < 1 ? lo : hi) = 0;
  }
  // Newton on F = 1/g - 1 inside [lo, hi], which every evaluation narrows
  // (F > 0: below the root; F < 0: above), with bisection where a step
  // leaves it; to Newton phase b)'s tolerance (digits - 2 bits relative to
  // x), or to the noise floor of the computed F: when |F| stops falling for
  // two steps, the rounding errors of g (cancellations in its terms: 1e-13
  // for AccSGD at B = 1 in double) decide its sign, and the point with the
  // smallest |F| is the root as far as g determines it (the cold solve's
  // Newton then walks that band by halving steps, ~20 evaluations).
  using std::abs;
  const Real tol = ldexp(Real(1), 3 - std::numeric_limits<Real>::digits);
  const Real sqrt_eps = ldexp(Real(1), -std::numeric_limits<Real>::digits / 2);
  Real x = std::clamp(base == hint ? first : base, lo, hi);
  Real best_x = x, best_f = std::numeric_limits<Real>::infinity();
  int stalled = 0;
  for (int it = 0; it < 40; ++it) {
    const Evaluation<Real> ev = g(x);
    if (!ev.accepted || !(ev.g > 0) || !(ev.dg > 0)) return std::nullopt;  // rounding at a pole: cold
    const Real f = 1 / ev.g - 1, df = -ev.dg / (ev.g * ev.g);
    if (f == 0) return x;
    (f > 0 ? lo : hi) = x;
    // Stalls count only once the bracket is within sqrt(eps) of x
    // relatively, never for the far iterates of a bisection.
    using std::max;
    const bool tight = hi - lo <= sqrt_eps * max(abs(lo), abs(hi));
    if (abs(f) < best_f / 2) {
      best_f = abs(f), best_x = x, stalled = 0;
    } else if (tight && ++stalled >= 2) {
      return best_x;
    } else if (abs(f) < best_f) {
      best_f = abs(f), best_x = x;
    }
    // Quad and 50 digits confirm a lower precision's gap (the tuner's
    // confirmation, contraction_rate_auto with a hint): a root bracketed to
    // 2^-(digits - 23) relative (quad: 8e-28, far below what double shows
    // or rtol >= 1e-32 compares) stands. Without this, where the computed F
    // is noise below that (AccSGD at B = 4, d = 1e6: |F| ~ 1e-27), the loop
    // halves the bracket down to digits - 2 bits, ~20 more O(d) passes.
    // The same for a Newton step that small (the iterate is that close).
    constexpr bool wide = std::numeric_limits<Real>::digits > std::numeric_limits<long double>::digits;
    const Real settled = ldexp(Real(1), 23 - std::numeric_limits<Real>::digits);
    if (wide && hi - lo <= settled * max(abs(lo), abs(hi))) return best_x;
    Real next = x - f / df;
    // A step within the tolerance is convergence even where it rounds to x
    // itself, which every evaluation makes an end of the bracket: x is then
    // the root as far as g resolves it. (Tested after the bisection
    // fallback, such a step read as leaving the bracket, and the loop halved
    // its way back to x through ~20 more O(d) passes: AccSGD near its
    // optimum at d = 1e6, where the last Newton step is 1e-21 next to an ulp
    // of 7e-21.)
    if (abs(next - x) <= (wide ? settled : tol) * abs(x)) return next > lo && next < hi ? next : x;
    if (!(next > lo && next < hi)) next = lo + (hi - lo) / 2;
    if (next == lo || next == hi) return next;
    x = next;
  }
  return std::nullopt;
}

/// rho(T) from the secular equation; from `hint` (a guess of the gap) where
/// root_near brackets the root from it, else cold.
template <class Real>
Rate<Real> solve_in_range(const Spectrum& spectrum, const Coefficients<Real>& coef, const NoiseModel& noise,
                          const std::optional<Real>& hint = std::nullopt) {
  using std::abs;
  using std::max;
  using std::min;
  if (spectrum.lambda.empty()) throw std::invalid_argument("contraction_rate: empty spectrum");
  Secular<Real> g(spectrum, coef, noise);
  Rate<Real> out;
  const Real eps = epsilon<Real>();
  const auto finish = [&](const Real& x) {
    out.gap = x;
    out.rho = 1 - x;
    out.stable = x > 0;
    out.evaluations = g.evaluations();
    return out;
  };
  if (hint)
    if (const std::optional<Real> root = root_near(g, *hint)) return finish(*root);

  // 1. The base x_b = 1 - rho(D) from the closed-form block radii, then an
  //    accepted point x_hi near it with g(x_hi) > 1. Numerically the base can
  //    sit on either side of the true one (by ~sqrt(eps) near critical
  //    damping), so: step down (towards larger z) until every term is
  //    accepted, then bisect between the accepted and the rejected point
  //    while g <= 1; if the base was accepted with g <= 1, look just above it
  //    the same way.
  const auto base = g.base();
  const Real xb = base.x;
  if (!is_finite(xb) || !is_finite(base.scale)) throw Overflow{};
  const Real scale = base.scale != 0 ? base.scale : Real(1);
  // Relative to the base itself when it is far smaller than the direction's
  // small quantities (kappa = 1e300, lr 1e-10: 1 - rho(D) = 2e-309 next to
  // 1 - beta = 0.1), or the bracket could not resolve the gap and rounds it to
  // 0; but at most 1100 binades below them (a base of 0 would otherwise start
  // at mp50's denorm_min and step up from there for ever). Never 0: with
  // subnormal small quantities (lr 1e-320) 4 eps scale underflows, and the
  // steps below that grow from it would stay 0 for ever.
  using std::ldexp;
  const Real size = xb > 0 && xb < scale ? xb : scale;
  const Real resolution =
      max(max(Real(4 * eps * size), ldexp(Real(4 * eps * scale), -1100)), std::numeric_limits<Real>::denorm_min());
  Real x_hi = xb;
  Evaluation<Real> e_hi = g(x_hi);
  Real x_rej = xb;
  bool have_rejected = !e_hi.accepted;
  if (!e_hi.accepted) {
    for (Real step = resolution;; step *= 16) {
      if (!is_finite(step) || step > 1e6 * (scale + 1))
        throw std::runtime_error("contraction_rate: no accepted point above rho(D)");
      x_rej = x_hi;
      x_hi = xb - step;
      e_hi = g(x_hi);
      if (e_hi.accepted) break;
    }
  } else if (!(e_hi.g > 1)) {
    for (Real step = resolution; step <= scale; step *= 16) {
      const Evaluation<Real> e = g(xb + step);
      if (!e.accepted) {
        x_rej = xb + step;
        have_rejected = true;
        break;
      }
      x_hi = xb + step;
      e_hi = e;
      if (e.g > 1) break;
    }
  }
  for (int halvings = 0; have_rejected && !(e_hi.g > 1) && x_rej - x_hi > resolution &&
                         halvings <= std::numeric_limits<Real>::digits;
       ++halvings) {
    const Real mid = (x_hi + x_rej) / 2;
    if (mid == x_hi || mid == x_rej) break;
    const Evaluation<Real> e = g(mid);
    if (e.accepted) {
      x_hi = mid;
      e_hi = e;
    } else {
      x_rej = mid;
    }
  }
  // g is decreasing in z, i.e. increasing in x. If g <= 1 just above the base,
  // there is no root above rho(D) and rho(T) = rho(D).
  if (!(e_hi.g > 1)) return finish(x_hi);
  // The pole of g, as far as it is resolved (for phase 3a below).
  const Real pole = have_rejected ? x_rej : x_hi + resolution;

  // 2. The other end: g < 1. Try z = 1 first: it decides stability exactly.
  Real x_lo = 0;
  Evaluation<Real> e_lo;
  bool need_lo = true;
  if (x_hi > 0) {
    const Evaluation<Real> e0 = g(Real(0));
    if (e0.accepted && e0.g == 1) return finish(Real(0));
    if (e0.accepted && e0.g < 1) {
      e_lo = e0;
      need_lo = false;
    } else if (e0.accepted) {
      x_hi = 0;  // g(1) > 1: unstable, the root lies at z > 1
      e_hi = e0;
    }
  }
  for (Real step = max(abs(x_hi), Real(1)); need_lo; step *= 4) {
    x_lo = x_hi - step;
    e_lo = g(x_lo);
    if (e_lo.accepted && e_lo.g < 1) break;
    if (!is_finite(step) || !is_finite(x_lo)) throw Overflow{};
  }

  // 3. The root, in two Newton phases, each with Boost's bisection fallback
  //    inside the bracket [x_lo, x_hi] (every point evaluated lies in it and is
  //    therefore accepted).
  //    a) In t = log(p - x), the log-distance to the pole p of g, on log g:
  //       near a pole of order m, g ~ c (p - x)^-m, so log g is nearly linear
  //       in t whether the pole is simple or (near critical damping) double,
  //       and the root is found in a few steps even when it sits within
  //       1e-9 of the pole relatively. To half the digits of Real.
  //    b) In x on F(x) = 1/g(x) - 1 from that guess, to full precision
  //       relative to x itself (the gap), which phase a) alone does not give
  //       when the gap is much smaller than the distance to the pole.
  using std::exp;
  using std::log;
  // When the root lies within a few ulps of the pole (AccSGD at B = 16,
  // d = 1e6, xi = 3.2: 1e-14 of the gap), t cannot reach its tolerance --
  // the x it maps to moves in steps of an ulp -- and Boost's iteration,
  // seeing no convergence, bisects away and halves its way back through ~30
  // evaluations of the same few doubles. The root is resolved in x once two
  // successive iterates lie within 4 ulps of each other, or the points
  // evaluated (g < 1 below the root, g > 1 above) bracket it that tightly:
  // the phase stops there (a zero of log g for Boost's iteration), and phase
  // b) starts from that point.
  Real below = x_lo, above = x_hi;
  std::optional<Real> resolved, previous;
  const auto in_t = [&](const Real& t) {
    const Real dist = exp(t);
    // exp(log(.)) need not round-trip: stay inside the bracket.
    const Real x = std::clamp(pole - dist, x_lo, x_hi);
    const Evaluation<Real> e = g(x);
    // Between two accepted points every point is accepted in exact arithmetic;
    // a rejection inside the bracket means rounding noise within a few ulps of
    // the pole, where g is effectively infinite: report "g > 1, move away".
    if (!e.accepted) return std::make_pair(Real(std::numeric_limits<Real>::max_exponent), Real(-1));
    if (e.g < 1) below = max(below, x);
    if (e.g > 1) above = min(above, x);
    const bool still = previous && x > x_lo && x < x_hi && abs(x - *previous) <= 4 * eps * abs(x);
    previous = x;
    if (still || above - below <= 4 * eps * max(abs(above), abs(below))) {
      resolved = x;
      return std::make_pair(Real(0), -e.dg / e.g * dist);
    }
    return std::make_pair(log(e.g), -e.dg / e.g * dist);
  };
  const Real t_near = log(pole - x_hi), t_far = log(pole - x_lo);
  boost::uintmax_t iters_t = 200;
  const Real t = boost::math::tools::newton_raphson_iterate(in_t, t_near, t_near, t_far,
                                                            std::numeric_limits<Real>::digits / 2, iters_t);
  Real guess = resolved ? *resolved : pole - exp(t);
  if (!(guess >= x_lo && guess <= x_hi)) guess = (x_lo + x_hi) / 2;
  const auto in_x = [&](const Real& x) {
    const Evaluation<Real> e = g(x);
    if (!e.accepted) return std::make_pair(Real(-1), Real(-1) / (x_hi - x_lo));  // as above: g = infinity
    return std::make_pair(1 / e.g - 1, -e.dg / (e.g * e.g));
  };
  boost::uintmax_t iters_x = 200;
  const Real root = boost::math::tools::newton_raphson_iterate(in_x, guess, x_lo, x_hi,
                                                               std::numeric_limits<Real>::digits - 2, iters_x);
  if (iters_t >= 200 || iters_x >= 200) throw std::runtime_error("contraction_rate: the root finder did not converge");
  return finish(root);
}

/// rho(T), or rho = +infinity (gap = -infinity, unstable) when it overflows
/// the working precision (a higher precision has a wider exponent range).
template <class Real>
Rate<Real> solve(const Spectrum& spectrum, const Coefficients<Real>& coef, const NoiseModel& noise,
                 const std::optional<Real>& hint = std::nullopt) {
  try {
    return solve_in_range(spectrum, coef, noise, hint);
  } catch (const Overflow&) {
    Rate<Real> out;
    out.rho = std::numeric_limits<Real>::infinity();
    out.gap = -std::numeric_limits<Real>::infinity();
    out.stable = false;
    out.evaluations = 0;
    return out;
  }
}

// --- Any k: the secular function from the k(k+1)/2 x k(k+1)/2 blocks --------
//
// For k > 2 there is no closed form worth having: per direction the
// deterministic block M_i: S -> A_i S A_i^T (in the k(k+1)/2 unique entries of
// S, n <= 10) is built and z I - M_i factorised. With
//   phi_i(z) = r^T [(z - M_i)^{-1} q q^T] r   and   phi_i'(x) = r^T (z - M_i)^{-2} q q^T r,
// the self-noise (K-2) u_i q q^T r^T S r is a rank-one term, so the term of g is
// h_i = u_i phi_i / (1 - (K-2) u_i phi_i) (Sherman-Morrison), with x-derivative
// u_i phi_i' / (1 - (K-2) u_i phi_i)^2. A point z is accepted for direction i
// when z > rho(M_i), certified without eigenvalues: M_i maps PSD matrices to
// PSD matrices, so z > rho(M_i) iff W = (z - M_i)^{-1} I is positive definite
// (if z > rho, W = sum_n M_i^n(I) / z^(n+1) >= I / z; conversely W > 0 with
// M_i(W) = z W - I < z W bounds rho(M_i) below z); and, for K > 2, when
// 1 - (K-2) u_i phi_i > 0, which is z > rho(D_i) for the positive rank-one
// perturbation D_i of M_i. (For K < 2 the self-noise term only adds to the
// denominator; the full operator stays positive since K - 1 >= 0.) Every
// accepted term is then >= 0 and decreasing in z, as the guarantees of the
// k <= 2 path require.

template <class Real>
class GenericSecular {
 public:
  GenericSecular(const Spectrum& spectrum, const Method<Real>& m, const NoiseModel& noise)
      : m_(m),
        // The additive model has no iterate-dependent noise: T = D = the
        // deterministic blocks M_i (no self-noise, no coupling), so g = 0 and
        // rho(T) = rho(D) = max_i rho(A_i)^2.
        kb_(noise.additive() ? Real(0) : Real(noise.kurtosis) - 2),
        inv_batch_(noise.additive() ? Real(0) : Real(1) / Real(noise.batch)),
        lambda_(spectrum.lambda.begin(), spectrum.lambda.end()),
        weight_(spectrum.weight.begin(), spectrum.weight.end()) {
    const int k = m.k;
    for (int a = 0; a < k; ++a)
      for (int b = a; b < k; ++b) {
        pairs_.push_back({a, b});
        const Real mult = a == b ? Real(1) : Real(2);
        w_.push_back(mult * m.r[a] * m.r[b]);
        qq_.push_back(m.q[a] * m.q[b]);
      }
  }

  Evaluation<Real> operator()(const Real& x) {
    ++evaluations_;
    using Mat = Eigen::Matrix<Real, Eigen::Dynamic, Eigen::Dynamic, 0, 10, 10>;
    using Vec = Eigen::Matrix<Real, Eigen::Dynamic, 1, 0, 10, 1>;
    const int k = m_.k, n = static_cast<int>(pairs_.size());
    const Real z = 1 - x;
    Evaluation<Real> out;
    if (!(z > 0)) return out;
    Real sum = 0, dsum = 0;
    Mat M(n, n);
    Vec rhs(n), ident(n);
    for (int e = 0; e < n; ++e) {
      rhs[e] = qq_[e];
      ident[e] = pairs_[e].first == pairs_[e].second ? Real(1) : Real(0);
    }
    Real A[max_states][max_states];
    for (std::size_t i = 0; i < lambda_.size(); ++i) {
      const Real& l = lambda_[i];
      for (int a = 0; a < k; ++a)
        for (int b = 0; b < k; ++b) A[a][b] = m_.P[a][b] - l * m_.q[a] * m_.r[b];
      const Real u = l * l * inv_batch_;
      for (int row = 0; row < n; ++row) {
        const auto [a, b] = pairs_[row];
        for (int col = 0; col < n; ++col) {
          const auto [c, d] = pairs_[col];
          Real image = A[a][c] * A[b][d];
          if (c != d) image += A[a][d] * A[b][c];
          M(row, col) = (row == col ? z : Real(0)) - image;
        }
      }
      const Eigen::PartialPivLU<Mat> lu(M);
      const Vec W = lu.solve(ident);
      Eigen::Matrix<Real, Eigen::Dynamic, Eigen::Dynamic, 0, max_states, max_states> Wm(k, k);
      for (int e = 0; e < n; ++e) Wm(pairs_[e].first, pairs_[e].second) = Wm(pairs_[e].second, pairs_[e].first) = W[e];
      Eigen::LLT<decltype(Wm)> chol(Wm);
      if (chol.info() != Eigen::Success) return out;
      const Vec y = lu.solve(rhs);
      const Vec dy = lu.solve(y);
      Real phi = 0, dphi = 0;
      for (int e = 0; e < n; ++e) {
        phi += w_[e] * y[e];
        dphi += w_[e] * dy[e];
      }
      const Real den = 1 - kb_ * u * phi;
      if (!(phi >= 0) || !(dphi >= 0) || !(den > 0)) return out;
      // A weighted line: w_i times the term (its injection is w_i u_i).
      const Real w = weight_.empty() ? Real(1) : weight_[i];
      const Real h = w * u * phi / den, dh = w * u * dphi / (den * den);
      sum += h;
      dsum += dh;
    }
    out.accepted = is_finite(sum) && is_finite(dsum);
    out.g = sum;
    out.dg = dsum;
    return out;
  }

  int evaluations() const { return evaluations_; }

 private:
  Method<Real> m_;
  Real kb_, inv_batch_;
  std::vector<Real> lambda_;
  std::vector<Real> weight_;  // w_i, empty when unweighted
  std::vector<std::pair<int, int>> pairs_;
  std::vector<Real> w_, qq_;
  int evaluations_ = 0;
};

/// rho(T) for any k from GenericSecular: stability is decided at z = 1, the
/// pole rho(D) is located by bisection on the acceptance test, and the root of
/// g = 1 by TOMS 748 inside a bracket of accepted points.
template <class Real>
Rate<Real> solve_generic(const Spectrum& spectrum, const Method<Real>& method, const NoiseModel& noise) {
  using std::abs;
  using std::max;
  if (spectrum.lambda.empty()) throw std::invalid_argument("contraction_rate: empty spectrum");
  GenericSecular<Real> g(spectrum, method, noise);
  Rate<Real> out;
  const auto finish = [&](const Real& x) {
    out.gap = x;
    out.rho = 1 - x;
    out.stable = x > 0;
    out.evaluations = g.evaluations();
    return out;
  };
  const Real eps = epsilon<Real>();
  const int max_halvings = 4 * std::numeric_limits<Real>::digits + 100;
  // Bracket: an accepted point lo with g < 1 and above it (in x) either an
  // accepted point hi with g > 1 (found) or a rejected point rej.
  Real lo = 0, rej = 1, hi = 1;
  bool found = false;
  const Evaluation<Real> e0 = g(Real(0));
  if (e0.accepted && e0.g == 1) return finish(Real(0));
  if (!e0.accepted || e0.g > 1) {
    // Unstable: the root or the pole lies at z > 1. Step up in z; the point
    // visited before the first accepted one with g < 1 is the nearest above it.
    Real prev = 0;
    bool prev_above_root = e0.accepted;
    for (Real step = 1;; step *= 4) {
      if (!is_finite(step)) throw Overflow{};
      const Real x = -step;
      const Evaluation<Real> e = g(x);
      if (e.accepted && e.g < 1) {
        lo = x;
        break;
      }
      prev = x;
      prev_above_root = e.accepted;
    }
    if (prev_above_root) {
      hi = prev;
      found = true;
    } else {
      rej = prev;
    }
  }
  // Narrow [lo, rej] until a point with g > 1 appears (the root lies below it)
  // or the pole is resolved (no root above rho(D): rho(T) = rho(D)).
  for (int i = 0; !found && i < max_halvings; ++i) {
    const Real mid = (lo + rej) / 2;
    if (mid == lo || mid == rej || rej - lo <= 4 * eps * max(abs(lo), abs(rej))) break;
    const Evaluation<Real> e = g(mid);
    if (!e.accepted) {
      rej = mid;
    } else if (e.g > 1) {
      hi = mid;
      found = true;
    } else {
      lo = mid;
    }
  }
  if (!found) return finish(lo);
  const auto f = [&](const Real& x) {
    const Evaluation<Real> e = g(x);
    // Inside the bracket every point is accepted in exact arithmetic; a
    // rejection is rounding within a few ulps of the pole: g = infinity there.
    if (!e.accepted) return Real(-1);
    return 1 / e.g - 1;
  };
  boost::uintmax_t iters = 400;
  const auto root = boost::math::tools::toms748_solve(
      f, lo, hi, boost::math::tools::eps_tolerance<Real>(std::numeric_limits<Real>::digits - 3), iters);
  if (iters >= 400) throw std::runtime_error("contraction_rate: the root finder did not converge");
  // The end where g < 1 (at or above the root in z): never a stable verdict
  // that an exact evaluation at the reported point would contradict.
  return finish(root.first);
}

template <class Real>
AutoRate report(const Rate<Real>& r) {
  AutoRate a;
  a.rho = to_double(r.rho);
  a.gap = to_double(r.gap);
  a.rho_text = format_real(r.rho);
  a.gap_text = format_real(r.gap);
  a.stable = r.stable;
  a.precision = precision_of<Real>();
  a.evaluations = r.evaluations;
  return a;
}

}  // namespace

template <class Real>
Rate<Real> contraction_rate_generic(const Spectrum& spectrum, const Method<Real>& method, const NoiseModel& noise) {
  try {
    return solve_generic<Real>(spectrum, method, noise);
  } catch (const Overflow&) {
    Rate<Real> out;
    out.rho = std::numeric_limits<Real>::infinity();
    out.gap = -std::numeric_limits<Real>::infinity();
    return out;
  }
}

// The k <= 2 closed forms with Newton steps are fast; where their root finder
// gives up (nearly singular methods, e.g. AccSGD with xi ~ 1e-12, where
// alpha = 1 - 5e-14), the generic path -- bisection and TOMS 748 only, every
// point certified -- answers instead of an internal failure.
template <class Real, class Wide>
Rate<Real> closed_form_or_generic(const Spectrum& spectrum, const Method<Wide>& method, const NoiseModel& noise) {
  if (method.k > 2) return contraction_rate_generic(spectrum, method.template cast<Real>(), noise);
  try {
    return solve<Real>(spectrum, coefficients<Real, Wide>(method), noise);
  } catch (const std::runtime_error&) {
    return contraction_rate_generic(spectrum, method.template cast<Real>(), noise);
  }
}

template <class Real>
Rate<Real> contraction_rate(const Spectrum& spectrum, const Method<Real>& method, const NoiseModel& noise) {
  return closed_form_or_generic<Real>(spectrum, method, noise);
}

namespace {

/// Whether the 50-digit constants of a k <= 2 method can be rounded to Real
/// as they are: each small quantity a + lambda b of the extreme directions
/// (sigma1, sigma0, 1 - det A; 1 - A for k = 1) is formed with a bound on the
/// error that the entries' 50-digit rounding (up to 64 eps relative, or
/// absolute for P against its 1s) and the arithmetic leave, and that bound must
/// be below 2^-(digits of Real + 10) of the quantity. A structural cancellation
/// (det(I - P) = 0 for a method that fixes the constant vector: 1e-50 after
/// rounding, next to lambda_min r^T adj(I - P) q = 1e-61 at kappa = 1e60) fails
/// this, and the constants are then formed exactly instead.
template <class Real>
bool rounds_cleanly(const Method<mp50>& m, const Spectrum& spectrum) {
  using B = Bounded<mp50>;
  using boost::multiprecision::abs;
  const mp50 eps = 64 * epsilon<mp50>();
  const auto P = [&](int a, int b) {
    const mp50& v = m.P[a][b];
    return B{v, eps * (abs(v) > 1 ? abs(v) : mp50(1))};
  };
  const auto q = [&](int a) { return B{m.q[a], eps * abs(m.q[a])}; };
  const auto r = [&](int a) { return B{m.r[a], eps * abs(m.r[a])}; };
  const Constants<B> c = method_constants<B>(m.k, P, q, r, B{mp50(1), mp50(0)});
  const mp50 tol = ldexp(mp50(1), -(std::numeric_limits<Real>::digits + 10));
  const auto clean = [&](const B& a) { return a.e <= tol * abs(a.v); };
  if (spectrum.lambda.empty()) return true;  // nothing to round (the solve refuses an empty spectrum)
  const auto [lambda_min, lambda_max] = kernels::min_max(spectrum.lambda.data(), spectrum.lambda.size());
  for (const double lambda : {lambda_min, lambda_max}) {
    const B l{mp50(lambda), mp50(0)};
    if (!clean(c.tr_e + l * c.qr)) return false;
    if (m.k == 2 && (!clean(c.det_e + l * c.c_e) || !clean(c.one_minus_det_p - l * c.b1))) return false;
  }
  return true;
}

/// f(method) with the method's coefficients in 50 digits, or exact where the
/// 50-digit constants would not round cleanly to Real (rounds_cleanly); k > 2
/// (the generic path, which forms A_i = P - lambda_i q r^T in Real) always
/// from 50 digits.
template <class Real, class F>
decltype(auto) with_method(const Spectrum& spectrum, const MethodSpec& spec, F&& f) {
  const Method<mp50> wide = make_method<mp50>(spec);
  if (wide.k <= 2 && !spectrum.lambda.empty() && !rounds_cleanly<Real>(wide, spectrum))
    return f(make_method_exact(spec));
  return f(wide);
}

}  // namespace

// The constants from 50-digit coefficients, or from the exact (rational) ones
// where a cancellation needs it (with_method): a structural cancellation
// (det(I - P) = 0 when P fixes the constant vector, as for AccSGD, whose P
// entries are quotients that 50 digits round) then stays exact at every
// scale, and sigma0 = det(I - P) + lambda c_e keeps its relative precision
// for lambda = 1e-60 (a 50-digit det(I - P) is 1e-50).
template <class Real>
Rate<Real> contraction_rate(const Spectrum& spectrum, const MethodSpec& method, const NoiseModel& noise) {
  return with_method<Real>(spectrum, method,
                           [&](const auto& m) { return closed_form_or_generic<Real>(spectrum, m, noise); });
}

namespace {
/// contraction_rate<Real>(spectrum, method, noise) started from a guess of
/// the gap (root_near; k <= 2), cold without one (a non-finite guess).
template <class Real>
Rate<Real> rate_near(const Spectrum& spectrum, const MethodSpec& method, const NoiseModel& noise, double gap_hint) {
  if (!std::isfinite(gap_hint)) return contraction_rate<Real>(spectrum, method, noise);
  return with_method<Real>(spectrum, method, [&](const auto& m) {
    if (m.k > 2) return contraction_rate_generic(spectrum, m.template cast<Real>(), noise);
    // As closed_form_or_generic, with the hint.
    try {
      return solve<Real>(spectrum, coefficients<Real>(m), noise, std::optional<Real>(Real(gap_hint)));
    } catch (const std::runtime_error&) {
      return contraction_rate_generic(spectrum, m.template cast<Real>(), noise);
    }
  });
}
}  // namespace

namespace {
void require_constant_batch(const NoiseModel& noise) {
  if (!noise.batch_schedule.constant())
    throw FieldError("batch_schedule", "batch_schedule: the rate needs a constant batch size (use steps or loss)");
}
}  // namespace

namespace {

/// Whether Real certifies a rate it computed. For k <= 2 from the secular
/// function with rounding-error bounds (Secular::side): the sign of the gap at
/// x = 0, and that the gap lies between half and 1.5 times the computed one.
/// For k > 2 (no bounds on the factorised blocks) by the next precision, which
/// must give the same verdict and a gap within a factor 2 (mp50, the last, is
/// taken as it is). Throws FieldError("precision", ...) otherwise.
template <class Real, class Wide>
void certify_fixed(const Spectrum& spectrum, const MethodSpec& method, const NoiseModel& noise,
                   const Method<Wide>& wide_method, const Rate<Real>& r) {
  using std::abs;
  const std::string name(to_string(precision_of<Real>()));
  const auto undetermined = [&] {
    return FieldError("precision", fmt::format("precision {} cannot decide the sign of the gap (rho is within the "
                                               "rounding errors of {} of 1): use --precision auto",
                                               name, name));
  };
  const auto unresolved = [&] {
    return FieldError("precision",
                      fmt::format("precision {} cannot resolve the gap (computed {:.3g}, not one digit certain): "
                                  "use --precision auto",
                                  name, to_double(r.gap)));
  };
  if (wide_method.k > 2) {
    if constexpr (!std::is_same_v<Real, mp50>) {
      using Next = std::conditional_t<std::is_same_v<Real, double>, long double,
                                      std::conditional_t<std::is_same_v<Real, long double>, quad, mp50>>;
      const Rate<Next> wide = contraction_rate<Next>(spectrum, method, noise);
      if (wide.stable != r.stable) throw undetermined();
      if (!is_finite(r.gap)) return;  // unstable beyond the range of Real, as the next precision confirms
      if (is_finite(wide.gap) && !(abs(to_double(r.gap) - to_double(wide.gap)) <= abs(to_double(wide.gap)) / 2))
        throw unresolved();
    }
    return;
  }
  const Secular<Real> g(spectrum, coefficients<Real, Wide>(wide_method), noise);
  const Side at_one = g.side(Real(0));
  if (at_one == Side::Unknown || (at_one == Side::Below) != r.stable) throw undetermined();
  // rho beyond the range of Real (reported as infinite): only when z = 1 is
  // certified unstable (a stable problem whose small quantities underflow, e.g.
  // sgd at lr 5e-309 on lambda = (1e308, 4e-4), can overflow the bracket too).
  if (!is_finite(r.gap)) return;
  if (r.gap == 0) return;  // only with a certified unstable verdict (Above at x = 0: rho = 1 exactly)
  // A subnormal gap has lost digits of its own (sgd at lr 1e-320: 1.93e-322 for 2.0e-322 in double).
  if (abs(r.gap) < std::numeric_limits<Real>::min()) throw unresolved();
  const Real a = r.gap / 2, b = 3 * r.gap / 2;
  if (g.side(a < b ? a : b) != Side::Below || g.side(a < b ? b : a) != Side::Above) throw unresolved();
}

}  // namespace

AutoRate contraction_rate_in(Precision precision, const Spectrum& spectrum, const MethodSpec& method,
                             const NoiseModel& noise) {
  require_constant_batch(noise);
  return with_precision(precision, [&](auto zero) {
    using Real = decltype(zero);
    const Rate<Real> r = contraction_rate<Real>(spectrum, method, noise);
    with_method<Real>(spectrum, method, [&](const auto& m) { certify_fixed<Real>(spectrum, method, noise, m, r); });
    return report(r);
  });
}

namespace {
/// One precision's answer for the escalation (certified by the agreement of
/// two precisions instead).
AutoRate uncertified_rate_in(Precision precision, const Spectrum& spectrum, const MethodSpec& method,
                             const NoiseModel& noise, double gap_hint) {
  return with_precision(precision, [&](auto zero) {
    using Real = decltype(zero);
    return report(rate_near<Real>(spectrum, method, noise, gap_hint));
  });
}
}  // namespace

bool double_double_certifies(const Spectrum& spectrum, const MethodSpec& method, const NoiseModel& noise,
                             long double gap, double rtol) {
  using detail::BoundedDD;
  using detail::exact_dd;
  require_constant_batch(noise);
  if (!std::isfinite(gap) || gap == 0 || !(rtol > 0 && rtol < 1) || spectrum.lambda.empty()) return false;
  std::optional<Method<exact>> m;
  try {
    m = make_method_exact(method);
  } catch (const std::exception&) {
    return false;  // no exact coefficients (a method file): not decided here
  }
  if (m->k > 2) return false;
  // The exact constants, rounded to 50 digits (2^-166 relative) and split
  // into a double-double (2^-106): within 2^-104 of the exact ones.
  const Coefficients<mp50> wide = coefficients<mp50, exact>(*m);
  const auto constant = [](const mp50& v) {
    const double hi = static_cast<double>(v);
    const double lo = static_cast<double>(mp50(v - hi));
    BoundedDD out{{hi, lo}, std::abs(hi) * 0x1p-104};
    if (!std::isfinite(hi) || (hi != 0 && !(std::abs(hi) >= 0x1p-900 && std::abs(hi) <= 0x1p900)))
      out.e = std::numeric_limits<double>::infinity();
    return out;
  };
  SideConstants<BoundedDD> c;
  c.k = m->k;
  c.zero = exact_dd(0);
  c.one = exact_dd(1);
  c.two = exact_dd(2);
  c.four = exact_dd(4);
  // K - 2 and 1/B as Secular forms them (0 for the additive model).
  c.kb = noise.additive() ? exact_dd(0) : exact_dd(noise.kurtosis) - exact_dd(2);
  c.ib = noise.additive() ? exact_dd(0) : exact_dd(1) / exact_dd(static_cast<double>(noise.batch));
  if (!noise.additive() && static_cast<double>(noise.batch) > 0x1p53) return false;  // B not exact as a double
  c.tr_e = constant(wide.tr_e);
  c.qr = constant(wide.qr);
  if (m->k == 2) {
    c.det_e = constant(wide.det_e);
    c.c_e = constant(wide.c_e);
    c.b1 = constant(wide.b1);
    c.omdp = constant(wide.one_minus_det_p);
  }
  const auto exact_value = [](double v) { return exact_dd(v); };
  const std::span<const double> lambda(spectrum.lambda), weight(spectrum.weight);
  // The two ends, exact double-doubles: gap (1 -+ rtol / 2) rounded to long
  // double (what is tested is where they lie, not how they were formed).
  const long double a = gap * (1 - static_cast<long double>(rtol) / 2), b = gap * (1 + static_cast<long double>(rtol) / 2);
  const auto point = [](long double x) {
    // x = hi + lo exactly: hi is x rounded to double, and x - hi (at most 11
    // significant bits, exact in long double) is a double below ulp(hi) / 2.
    const double hi = static_cast<double>(x);
    return BoundedDD{{hi, static_cast<double>(x - hi)}, 0};
  };
  if (!(std::abs(a) >= 0x1p-900L && std::abs(b) >= 0x1p-900L && std::abs(a) <= 0x1p900L && std::abs(b) <= 0x1p900L))
    return false;  // outside double-double's safe range
  const BoundedDD lo = point(std::min(a, b)), hi = point(std::max(a, b));
  // Below at lo: every direction accepted at z = 1 - lo and g < 1 there, so
  // rho(T) < 1 - lo; Above at hi: rho(T) >= 1 - hi.
  return side_of(c, lambda, weight, exact_value, lo) == Side::Below &&
         side_of(c, lambda, weight, exact_value, hi) == Side::Above;
}

AutoRate contraction_rate_auto(const Spectrum& spectrum, const MethodSpec& method, const NoiseModel& noise,
                               double rtol, double gap_hint, RateConfirmation confirmation) {
  check_escalation_rtol(rtol);
  if (!(rtol >= min_rate_rtol))
    throw FieldError("rtol", fmt::format("rtol must be in [{:g}, 1) for the rate (quad and mp50, the last two "
                                         "precisions, agree to about 1e-34 at best), got {:g}",
                                         min_rate_rtol, rtol));
  require_constant_batch(noise);
  int total = 0;  // evaluations summed over the precisions tried
  return escalate_precision(
      [&](Precision p) {
        AutoRate r = uncertified_rate_in(p, spectrum, method, noise, gap_hint);
        // The next precision starts from this one's gap (when hinted at all).
        if (std::isfinite(gap_hint) && std::isfinite(r.gap)) gap_hint = r.gap;
        total += r.evaluations;
        r.evaluations = total;
        return r;
      },
      [&](const AutoRate& prev, AutoRate& cur) {
        // A gap of exactly 0 means rho rounded to 1 in that precision: it says
        // nothing about stability, so two such answers do not count as agreeing.
        // Compared in 50 digits from every digit of each: rounded to double,
        // two gaps agree exactly whenever both are right to double's
        // precision, which made any rtol below ~1e-16 stop at long double.
        const auto agreement = [&] {
          const auto finite_text = [](const std::string& t) { return t.find_first_of("in") == std::string::npos; };
          // rho beyond a precision's range prints inf: no agreement.
          if (cur.stable != prev.stable || !finite_text(cur.gap_text) || !finite_text(prev.gap_text)) return false;
          const mp50 a(cur.gap_text), b(prev.gap_text);
          if (a == 0) return false;
          using boost::multiprecision::abs;
          return abs(a - b) <= mp50(rtol) * (abs(a) > abs(b) ? abs(a) : abs(b));
        };
        cur.agreed = agreement();
        // Long double certified by the double-double bound: quad not needed.
        if (!cur.agreed && confirmation == RateConfirmation::Bound && cur.precision == Precision::Long &&
            double_double_certifies(spectrum, method, noise, std::strtold(cur.gap_text.c_str(), nullptr), rtol))
          cur.agreed = cur.bounded = true;
        return cur.agreed;
      });
}

// --- Derivatives of the gap with respect to the method (the tuner's gradient) ---
//
// At a simple root x* of g(x; c) = 1 (x = 1 - z, c the method's constants of
// Coefficients), the implicit function theorem gives dx*/dc = -(dg/dc)/(dg/dx).
// dg/dx is the secular function's own derivative (> 0 above the poles); dg/dc
// is the sum over directions of the partial derivatives of the terms h_i,
// written out below from the same formulas as Secular::terms.
namespace {

/// The constants that the terms depend on, in a fixed order (k = 2: tr_e,
/// det_e, c_e, qr, b1, 1 - det P; k = 1: tr_e, qr).
template <class Real>
std::vector<Real> constants_of(const Coefficients<Real>& c) {
  if (c.k == 1) return {c.tr_e, c.qr};
  return {c.tr_e, c.det_e, c.c_e, c.qr, c.b1, c.one_minus_det_p};
}

/// dg/dc at x, in the order of constants_of (double precision).
std::vector<double> secular_sensitivity(const Spectrum& spectrum, const Coefficients<double>& c,
                                        const NoiseModel& noise, double x) {
  // The same constants as Secular: the additive model has no self-noise and
  // no coupling (g = 0, so it never reaches this point with a root).
  const double kb = noise.additive() ? 0.0 : noise.kurtosis - 2;
  const double ib = noise.additive() ? 0.0 : 1.0 / static_cast<double>(noise.batch);
  const std::size_t d = spectrum.lambda.size();
  const double* lam = spectrum.lambda.data();
  // A weighted line's term is w_i times the unweighted one, and so are its
  // partial derivatives (the poles do not depend on w_i).
  const double* wt = spectrum.weight.empty() ? nullptr : spectrum.weight.data();
  // Sums of `terms` partial derivatives per chunk, the chunks added in order.
  constexpr int max_sums = 8;
  using Sums = std::array<double, max_sums>;
  const std::size_t chunks = std::max<std::size_t>(chunk_count(d), 1);
  std::vector<Sums> partial(chunks, Sums{});
  // The terms' partial derivatives (formulas in src/kernels.cpp, from the
  // same expressions as Secular::terms), per chunk, the chunks added in order.
  if (c.k == 1) {
    // h = u n / chi, chi = y (2 - y) - x - kb u n, n = qr^2, y = tr_e + l qr.
    const kernels::ConstantsK1 k1{c.tr_e, c.qr, c.qr * c.qr, kb, ib};
    for_each_chunk(d, [&](std::size_t ch, std::size_t begin, std::size_t end) {
      const auto p = kernels::sensitivity_k1(k1, lam + begin, wt ? wt + begin : nullptr, end - begin, x);
      partial[ch] = {p[0], p[1], p[2]};
    });
    Sums t{};
    for (const Sums& p : partial)
      for (int k = 0; k < max_sums; ++k) t[k] += p[k];
    return {t[0], t[1] + t[2]};
  }
  const kernels::ConstantsK2 k2{c.tr_e, c.det_e, c.c_e, c.qr, c.b1, c.one_minus_det_p, kb, ib};
  for_each_chunk(d, [&](std::size_t ch, std::size_t begin, std::size_t end) {
    const auto p = kernels::sensitivity_k2(k2, lam + begin, wt ? wt + begin : nullptr, end - begin, x);
    std::copy(p.begin(), p.end(), partial[ch].begin());
  });
  Sums t{};
  for (const Sums& p : partial)
    for (int k = 0; k < max_sums; ++k) t[k] += p[k];
  const double g_s1 = t[0], g_ls1 = t[1], g_a0 = t[2], g_s0 = t[3], g_ls0 = t[4], g_dd = t[5], g_ldd = t[6],
               g_b1 = t[7];
  // s1 = tr_e + l qr, s0 = det_e + l c_e, 1 - det A = (1 - det P) - l b1, a0 = qr.
  return {g_s1, g_s0, g_ls0, g_ls1 + g_a0, g_b1 - g_ldd, g_dd};
}

}  // namespace

GapGradient contraction_rate_gradient(const Spectrum& spectrum, const MethodSpec& method,
                                      const std::vector<MethodSpec>& plus, const std::vector<MethodSpec>& minus,
                                      double h, const NoiseModel& noise, double gap_hint) {
  require_constant_batch(noise);
  if (plus.size() != minus.size()) throw std::invalid_argument("contraction_rate_gradient: unpaired directions");
  if (!(h > 0)) throw std::invalid_argument("contraction_rate_gradient: the difference step must be > 0");
  GapGradient out;
  const Method<mp50> wide = make_method<mp50>(method);
  if (wide.k > 2) {
    out.rate = contraction_rate_generic(spectrum, wide.cast<double>(), noise);
    return out;
  }
  // As contraction_rate: exact constants where 50 digits lose a cancellation.
  const Coefficients<double> coef = rounds_cleanly<double>(wide, spectrum)
                                        ? coefficients<double, mp50>(wide)
                                        : coefficients<double, exact>(make_method_exact(method));
  try {
    out.rate = solve<double>(spectrum, coef, noise,
                             std::isfinite(gap_hint) ? std::optional<double>(gap_hint) : std::nullopt);
  } catch (const std::runtime_error&) {
    out.rate = contraction_rate_generic(spectrum, wide.cast<double>(), noise);
    return out;  // the generic fallback: no derivative
  }
  const double x = out.rate.gap;
  if (!std::isfinite(x)) return out;
  // Is x a root of g = 1 (rather than rho(D) with g <= 1 above it)?
  Secular<double> g(spectrum, coef, noise);
  const Evaluation<double> e = g(x);
  if (!e.accepted || !(std::abs(e.g - 1) <= 1e-6) || !(e.dg > 0) || !std::isfinite(e.dg)) return out;
  const std::vector<double> sens = secular_sensitivity(spectrum, coef, noise, x);
  for (double s : sens)
    if (!std::isfinite(s)) return out;
  const mp50 two_h = 2 * mp50(h);
  for (std::size_t j = 0; j < plus.size(); ++j) {
    const auto cp = constants_of(coefficients<mp50, mp50>(make_method<mp50>(plus[j])));
    const auto cm = constants_of(coefficients<mp50, mp50>(make_method<mp50>(minus[j])));
    if (cp.size() != sens.size() || cm.size() != sens.size())
      throw std::invalid_argument("contraction_rate_gradient: the directions change the method's state count");
    double dg = 0;
    for (std::size_t k = 0; k < sens.size(); ++k) dg += sens[k] * static_cast<double>((cp[k] - cm[k]) / two_h);
    out.gradient.push_back(-dg / e.dg);
  }
  return out;
}

Rate<double> contraction_rate_near(const Spectrum& spectrum, const MethodSpec& method, const NoiseModel& noise,
                                   double gap_hint) {
  return rate_near<double>(spectrum, method, noise, gap_hint);
}

#define CESR_INSTANTIATE(Real)                                                                           \
  template Rate<Real> contraction_rate<Real>(const Spectrum&, const Method<Real>&, const NoiseModel&); \
  template Rate<Real> contraction_rate<Real>(const Spectrum&, const MethodSpec&, const NoiseModel&);      \
  template Rate<Real> contraction_rate_generic<Real>(const Spectrum&, const Method<Real>&, const NoiseModel&);
CESR_FOR_EACH_REAL(CESR_INSTANTIATE)
#undef CESR_INSTANTIATE

}  // namespace cesr
