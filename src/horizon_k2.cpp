// The spectral path for methods with k = 2 state vectors (heavy ball, NAG,
// AccSGD, QHM, custom k = 2): the real eigenvalues of T = D + u v^T outside a
// circle |z| = r, certified in number by the argument principle, plus the rest
// of L_t bounded as a whole by a contour integral over that circle.
//
// With G(z) = w^T (z - T)^{-1} y (y = x_0 - x_inf), L_t - L_inf is
// (1 / 2 pi i) times the integral of G(z) z^t over a large circle. Shrinking it
// to |z| = r picks up the residues c_j z_j^t of the eigenvalues outside, and
// leaves |integral over |z| = r| <= r^(t+1) max_{|z|=r} |G(z)|.
//
// Per direction the block D_i is the 3x3 map S -> A S A^T + (K-2) lambda^2 / B
// q q^T r^T S r on symmetric 2x2 matrices; every quantity of the secular form
// (g = v^T R u, w^T R u, v^T R x_0, w^T R x_0, R = (z - D)^{-1}) is a sum of
// N_i(x) / chi_i(x) with chi_i = det(z - D_i) a cubic and N_i a quadratic in
// x = 1 - z. chi_i is formed from sigma1 = tr(I - A_i), sigma0 = det(I - A_i)
// and 1 - det A_i (as the rate's secular function is), so the poles near z = 1
// are carried with a relative error of a few ulps.
//
// The circle: r lies above every block eigenvalue that is not real and
// positive (|det A_i|, the complex mu^2 of underdamped directions). Outside,
// the remaining block poles are real (the mu_1^2 of overdamped directions) and
// the eigenvalues of T there are the real roots of g = 1, found between
// consecutive poles by TOMS 748. Their number is certified: on an adaptive set
// of arcs of |z| = r each chi_i and 1 - g are bounded away from 0 by exact
// Taylor bounds of the polynomials (plus their rounding), which also fixes the
// winding of each, so (#zeros of det(z - T) outside) = (#zeros of prod chi_i
// outside) - winding(1 - g) is known exactly. The same arcs bound |G|.
// Derivation and certification: docs/theory.md, section 8.
#include "cesr/horizon.hpp"

#include "cesr/error.hpp"
#include "cesr/stop.hpp"
#include "rounded.hpp"

#include <Eigen/Eigenvalues>
#include <boost/math/tools/toms748_solve.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <complex>
#include <limits>
#include <vector>

namespace cesr {

namespace {

// Arc evaluations (each O(d)) of the count certificate before it refuses.
std::atomic<int> max_arc_evaluations{1 << 15};
constexpr int max_arc_halvings = 48;
constexpr int max_k2_root_iterations = 200;
constexpr std::size_t max_k2_dim = 20000;

// A value with a first-order bound on its absolute rounding error (src/rounded.hpp).
template <class Real>
using Bd = detail::Rounded<Real>;
using detail::exact;
using detail::rounded_once;

// Complex numbers in any working precision (std::complex is only specified
// for the built-in types).
template <class Real>
struct Cx {
  Real re{}, im{};
};
template <class Real>
Cx<Real> operator+(const Cx<Real>& a, const Cx<Real>& b) {
  return {a.re + b.re, a.im + b.im};
}
template <class Real>
Cx<Real> operator-(const Cx<Real>& a, const Cx<Real>& b) {
  return {a.re - b.re, a.im - b.im};
}
template <class Real>
Cx<Real> operator*(const Cx<Real>& a, const Cx<Real>& b) {
  return {a.re * b.re - a.im * b.im, a.re * b.im + a.im * b.re};
}
template <class Real>
Cx<Real> operator*(const Cx<Real>& a, const Real& s) {
  return {a.re * s, a.im * s};
}
template <class Real>
Cx<Real> operator/(const Cx<Real>& a, const Cx<Real>& b) {
  const Real den = b.re * b.re + b.im * b.im;
  return {(a.re * b.re + a.im * b.im) / den, (a.im * b.re - a.re * b.im) / den};
}
template <class Real>
Real cabs(const Cx<Real>& a) {
  using std::sqrt;
  return sqrt(a.re * a.re + a.im * a.im);
}
template <class Real>
std::complex<double> to_cd(const Cx<Real>& a) {
  return {to_double(a.re), to_double(a.im)};
}

// A polynomial in x of degree N with bounds on the errors of its coefficients.
template <class Real, int N>
struct Poly {
  std::array<Real, N + 1> c{}, e{};
};
template <class Real, int N>
Poly<Real, N> poly(const std::array<Bd<Real>, N + 1>& b) {
  Poly<Real, N> p;
  for (int k = 0; k <= N; ++k) p.c[k] = b[k].v, p.e[k] = b[k].e;
  return p;
}

// p, p' and p''/2 at x, each with a bound on its error (coefficient errors
// plus the rounding of the evaluation, 16 eps of the absolute terms).
template <class S, class Real>
struct Taylor {
  S v, d1, d2;
  Real err, err1, err2;
};
template <class Real>
Real magnitude(const Real& x) {
  using std::abs;
  return abs(x);
}
template <class Real>
Real magnitude(const Cx<Real>& x) {
  return cabs(x);
}
template <class S, class Real>
S times(const S& a, const Real& s) {
  return a * s;
}
template <class S, class Real, int N>
Taylor<S, Real> taylor(const Poly<Real, N>& p, const S& x) {
  using std::abs;
  const Real g = 16 * epsilon<Real>();
  std::array<S, 4> pw;
  if constexpr (std::is_same_v<S, Cx<Real>>) pw[0] = Cx<Real>{Real(1), Real(0)};
  else pw[0] = Real(1);
  for (int k = 1; k <= N; ++k) pw[k] = pw[k - 1] * x;
  const Real ax = magnitude(x);
  std::array<Real, 4> apw{Real(1), ax, ax * ax, ax * ax * ax};
  Taylor<S, Real> t{pw[0] * Real(0), pw[0] * Real(0), pw[0] * Real(0), Real(0), Real(0), Real(0)};
  for (int k = 0; k <= N; ++k) {
    const Real bound = p.e[k] + g * abs(p.c[k]);
    t.v = t.v + times(pw[k], p.c[k]);
    t.err += bound * apw[k];
    if (k >= 1) {
      t.d1 = t.d1 + times(pw[k - 1], Real(k) * p.c[k]);
      t.err1 += Real(k) * bound * apw[k - 1];
    }
    if (k >= 2) {
      const Real binom = Real(k * (k - 1) / 2);
      t.d2 = t.d2 + times(pw[k - 2], binom * p.c[k]);
      t.err2 += binom * bound * apw[k - 2];
    }
  }
  return t;
}

enum Pair { RQ = 0, OQ = 1, RS = 2, OS = 3 };

// One direction (equal eigenvalues merged): chi(x) = det(z - D_i) and the four
// numerators, each term being scale * N / chi.
template <class Real>
struct Dir2 {
  Poly<Real, 3> chi;
  std::array<Poly<Real, 2>, 4> num;
  std::array<Real, 4> scale;
  double lambda = 0;
  std::array<std::complex<double>, 3> poles;  // approximate eigenvalues of D_i (z)
  double det_a = 0;                          // det A_i
};

// The direction-independent constants of a k = 2 method (src/rate.cpp,
// method_constants): with E = I - P, tr E, det E, r^T adj(E) q, b1 = -r^T adj(P) q,
// r^T q and 1 - det P, each with its error bound.
template <class Real>
struct K2Constants {
  Bd<Real> tr_e, det_e, c_e, b1, qr, omdp;
};

// Formed in the arithmetic of W, then rounded once to Real (W = exact: only
// that rounding; W = Real: the bounds of every operation).
template <class Real, class W>
K2Constants<Real> k2_constants(const Method<W>& m) {
  const auto lift = [](const W& x) {
    if constexpr (std::is_same_v<W, Real>) return rounded_once(x);
    else return rounded_once(static_cast<Real>(x));
  };
  if constexpr (std::is_same_v<W, Real>) {
    using B = Bd<Real>;
    const B one = exact(Real(1)), zero = exact(Real(0));
    const B P00 = lift(m.P[0][0]), P01 = lift(m.P[0][1]), P10 = lift(m.P[1][0]), P11 = lift(m.P[1][1]);
    const B q0 = lift(m.q[0]), q1 = lift(m.q[1]), r0 = lift(m.r[0]), r1 = lift(m.r[1]);
    const B e00 = one - P00, e11 = one - P11;
    K2Constants<Real> c;
    c.tr_e = e00 + e11;
    c.det_e = e00 * e11 - P01 * P10;
    c.c_e = r0 * (e11 * q0 + P01 * q1) + r1 * (e00 * q1 + P10 * q0);
    c.b1 = zero - (r0 * (P11 * q0 - P01 * q1) + r1 * (P00 * q1 - P10 * q0));
    c.qr = r0 * q0 + r1 * q1;
    c.omdp = c.tr_e - c.det_e;
    return c;
  } else {
    const W one(1);
    const W e00 = one - m.P[0][0], e11 = one - m.P[1][1], p01 = m.P[0][1], p10 = m.P[1][0];
    const W tr_e = e00 + e11, det_e = e00 * e11 - p01 * p10;
    const W c_e = m.r[0] * (e11 * m.q[0] + p01 * m.q[1]) + m.r[1] * (e00 * m.q[1] + p10 * m.q[0]);
    const W b1 = W(0) - (m.r[0] * (m.P[1][1] * m.q[0] - p01 * m.q[1]) + m.r[1] * (m.P[0][0] * m.q[1] - p10 * m.q[0]));
    const W qr = m.r[0] * m.q[0] + m.r[1] * m.q[1];
    return {lift(tr_e), lift(det_e), lift(c_e), lift(b1), lift(qr), lift(tr_e - det_e)};
  }
}

template <class Real>
Dir2<Real> make_dir(const Method<Real>& m, const K2Constants<Real>& k, double lambda, double init, double weight,
                    const Bd<Real>& kb, const Bd<Real>& ib) {
  using B = Bd<Real>;
  const B one = exact(Real(1)), two = exact(Real(2)), four = exact(Real(4)), zero = exact(Real(0));
  const B P00 = rounded_once(m.P[0][0]), P01 = rounded_once(m.P[0][1]);
  const B P10 = rounded_once(m.P[1][0]), P11 = rounded_once(m.P[1][1]);
  const B q0 = rounded_once(m.q[0]), q1 = rounded_once(m.q[1]), r0 = rounded_once(m.r[0]), r1 = rounded_once(m.r[1]);
  const B o0 = rounded_once(m.o[0]), o1 = rounded_once(m.o[1]), a0 = rounded_once(m.s0[0]), a1 = rounded_once(m.s0[1]);
  const B l = exact(Real(lambda));
  // The small quantities (as in the rate's secular function, src/rate.cpp).
  const B b1 = k.b1, qr = k.qr;
  const B s1 = k.tr_e + l * qr, s0 = k.det_e + l * k.c_e, dd = k.omdp - l * b1;
  const B delta = one - dd, tau = two - s1;
  const B bq = s1 * (s1 - two) - two * s0, cq = s0 * (four - two * s1 + s0);
  // C(x) = (1 - det A - x)(x^2 + bq x + cq) = (z - det A)(z - mu1^2)(z - mu2^2).
  // N(z) = a0^2 z^2 + n1 z + det(A) b1^2 = r~^T adj(z - D_i) q~ (also with the self-noise).
  const B n1 = b1 * b1 + two * tau * qr * b1 + delta * qr * qr;
  const B nx0 = qr * qr + n1 + delta * b1 * b1, nx1 = zero - (two * qr * qr + n1), nx2 = qr * qr;
  const B kap = kb * l * l * ib;  // (K - 2) lambda^2 / B
  Dir2<Real> d;
  d.lambda = lambda;
  d.chi = poly<Real, 3>({dd * cq - kap * nx0, (dd * bq - cq) - kap * nx1, (dd - bq) - kap * nx2, exact(Real(-1))});
  d.num[RQ] = poly<Real, 2>({nx0, nx1, nx2});
  // The other numerators from E = I - D_i: a^T adj(x - E) b =
  // (a.b) x^2 + (a^T E b - t1 a.b) x + (a^T E^2 b - t1 a^T E b + t2 a.b).
  const B A00 = P00 - l * q0 * r0, A01 = P01 - l * q0 * r1, A10 = P10 - l * q1 * r0, A11 = P11 - l * q1 * r1;
  const std::array<B, 3> qt{q0 * q0, q0 * q1, q1 * q1}, rt{r0 * r0, two * r0 * r1, r1 * r1};
  const std::array<B, 3> ot{o0 * o0, two * o0 * o1, o1 * o1}, st{a0 * a0, a0 * a1, a1 * a1};
  std::array<std::array<B, 3>, 3> M{{{A00 * A00, two * A00 * A01, A01 * A01},
                                     {A00 * A10, A00 * A11 + A01 * A10, A01 * A11},
                                     {A10 * A10, two * A10 * A11, A11 * A11}}};
  std::array<std::array<B, 3>, 3> E;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) {
      M[i][j] = M[i][j] + kap * qt[i] * rt[j];
      E[i][j] = (i == j ? one : zero) - M[i][j];
    }
  std::array<std::array<B, 3>, 3> E2;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) E2[i][j] = E[i][0] * E[0][j] + E[i][1] * E[1][j] + E[i][2] * E[2][j];
  const B t1 = E[0][0] + E[1][1] + E[2][2];
  const B t2 = (E[0][0] * E[1][1] - E[0][1] * E[1][0]) + (E[0][0] * E[2][2] - E[0][2] * E[2][0]) +
               (E[1][1] * E[2][2] - E[1][2] * E[2][1]);
  const auto numerator = [&](const std::array<B, 3>& a, const std::array<B, 3>& b) {
    B ab = zero, aeb = zero, ae2b = zero;
    for (int i = 0; i < 3; ++i) {
      ab = ab + a[i] * b[i];
      for (int j = 0; j < 3; ++j) {
        aeb = aeb + a[i] * E[i][j] * b[j];
        ae2b = ae2b + a[i] * E2[i][j] * b[j];
      }
    }
    return poly<Real, 2>({ae2b - t1 * aeb + t2 * ab, aeb - t1 * ab, ab});
  };
  d.num[OQ] = numerator(ot, qt);
  d.num[RS] = numerator(rt, st);
  d.num[OS] = numerator(ot, st);
  // u carries the line's multiplicity (or weight) m: scale of v^T R u and
  // w^T R u is m lambda^2 / B; x_0 is already the line's summed initial error.
  const Real L = Real(lambda), x0 = Real(init), mult = Real(weight);
  d.scale = {mult * L * L * ib.v, mult * L * L * ib.v / 2, L * x0, L * x0 / 2};
  // Approximate block poles, only to place the circle (the certificate does
  // not rely on them).
  Eigen::Matrix3d Md;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) Md(i, j) = to_double(M[i][j].v);
  Eigen::EigenSolver<Eigen::Matrix3d> es(Md, false);
  for (int i = 0; i < 3; ++i) d.poles[i] = es.eigenvalues()(i);
  d.det_a = to_double(delta.v);
  return d;
}

}  // namespace

int set_k2_arc_budget(int arcs) { return max_arc_evaluations.exchange(arcs); }

template <class Real>
std::optional<SpectralLoss<Real>> SpectralLoss<Real>::build_k2(const Spectrum& spectrum, const Method<Real>& m,
                                                               const NoiseModel& noise, std::string* why,
                                                               const MethodSpec* spec) {
  using std::abs;
  using std::cos;
  using std::log;
  using std::log1p;
  using std::sin;
  const auto fail = [&](std::string reason) {
    if (why) *why = std::move(reason);
    return std::optional<SpectralLoss>{};
  };
  const Real eps = epsilon<Real>();
  const Real pi = Real(3.14159265358979323846264338327950288419716939937510582097494459L);
  const Real sigma2 = Real(noise.label_noise);
  const Bd<Real> kb = rounded_once(Real(noise.kurtosis) - 2), ib = rounded_once(Real(1) / Real(noise.batch));

  // Directions with lambda = 0 neither move nor are read. Equal eigenvalues
  // have equal blocks and merge: the sum of their states evolves by the same
  // block, with the noise forcing and the initial errors of all of them, so a
  // merged line carries its multiplicity (a weighted line its weight) in u
  // and its summed initial error in x_0.
  struct Line {
    double lambda, init, weight;
  };
  std::vector<Line> li;
  for (std::size_t i = 0; i < spectrum.lambda.size(); ++i)
    if (spectrum.lambda[i] > 0 && spectrum.init[i] >= 0)
      li.push_back({spectrum.lambda[i], spectrum.weight_at(i) * spectrum.init[i], spectrum.weight_at(i)});
  std::sort(li.begin(), li.end(), [](const Line& a, const Line& b) { return a.lambda < b.lambda; });
  std::vector<Line> merged;
  for (const Line& p : li) {
    if (!merged.empty() && merged.back().lambda == p.lambda) {
      merged.back().init += p.init;
      merged.back().weight += p.weight;
    } else {
      merged.push_back(p);
    }
  }
  if (merged.size() > max_k2_dim)
    return fail(fmt::format("d = {} exceeds the k = 2 spectral path's budget (d <= {})", merged.size(), max_k2_dim));
  SpectralLoss out;
  {
    // L_0 as time stepping sums it: 1/2 sum_i lambda_i o^T S_i(0) o.
    Real initial = 0;
    const Real so = m.o[0] * m.s0[0] + m.o[1] * m.s0[1];
    for (std::size_t i = 0; i < spectrum.lambda.size(); ++i)
      initial += Real(spectrum.weight_at(i)) * Real(spectrum.lambda[i]) * Real(spectrum.init[i]);
    out.initial_ = so * so * initial / 2;
  }
  if (merged.empty()) {
    out.gap_ = Real(1);
    return out;
  }
  K2Constants<Real> constants;
  if (spec) constants = k2_constants<Real>(make_method_exact(*spec));
  else constants = k2_constants<Real>(m);
  std::vector<Dir2<Real>> dirs;
  dirs.reserve(merged.size());
  for (std::size_t i = 0; i < merged.size(); ++i) {
    if ((i & 1023) == 0) throw_if_stopped();
    dirs.push_back(make_dir<Real>(m, constants, merged[i].lambda, merged[i].init, merged[i].weight, kb, ib));
  }
  const std::size_t d = dirs.size();
  const Real gamma = Real(d + 16) * eps;  // relative rounding of a d-term sum
  int evaluations = 0;

  // --- The real line: g(x) alone (for brackets), and the full sums with
  // error bounds at a root. The direction `base_dir` (-1: none) is evaluated
  // through its chi shifted to x = base, so x = base + tau keeps tau exact.
  // The error of the shifted chi's value at the base is not an evaluation
  // error but the uncertainty of where the pole is: the computed modes are
  // those of a problem whose pole sits at the root of the shifted chi,
  // within pole_shift of the exact one; the root moves with it, and the
  // bounds of the mode account for the move (first order) instead.
  struct Shift {
    int dir = -1;
    Poly<Real, 3> chi;
    Real pole_shift{};
  };
  const auto shift_to = [&](int dir, const Real& base) {
    Shift s;
    s.dir = dir;
    if (dir < 0) return s;
    const auto t = taylor<Real, Real, 3>(dirs[dir].chi, base);
    s.chi.c = {t.v, t.d1, t.d2, dirs[dir].chi.c[3]};
    s.chi.e = {Real(0), t.err1, t.err2, Real(0)};
    const Real slope = abs(t.d1) - t.err1;
    s.pole_shift = slope > 0 ? 2 * t.err / slope : Real(std::numeric_limits<double>::infinity());
    return s;
  };
  const auto g_at = [&](const Real& base, const Real& tau, const Shift& sh) {
    ++evaluations;
    const Real x = base + tau;
    Real g = 0;
    for (std::size_t i = 0; i < d; ++i) {
      const Dir2<Real>& dr = dirs[i];
      const bool shifted = static_cast<int>(i) == sh.dir;
      const Real& xi = shifted ? tau : x;
      const auto& ch = shifted ? sh.chi.c : dr.chi.c;
      const Real chi = ((ch[3] * xi + ch[2]) * xi + ch[1]) * xi + ch[0];
      const Poly<Real, 2>& n = dr.num[RQ];
      g += dr.scale[RQ] * ((n.c[2] * x + n.c[1]) * x + n.c[0]) / chi;
    }
    return g;
  };
  struct Full {
    std::array<Real, 4> f{}, df{}, err{}, abs{}, derr{};
    Real d2g{};
    std::array<Real, 4> base_df{};  // the shifted direction's part of df
    Real base_d2g{};
  };
  const auto full_at = [&](const Real& base, const Real& tau, const Shift& sh) {
    ++evaluations;
    const Real x = base + tau;
    const Real xerr = eps * abs(x);
    Full s;
    for (std::size_t i = 0; i < d; ++i) {
      const Dir2<Real>& dr = dirs[i];
      const bool shifted = static_cast<int>(i) == sh.dir;
      auto c = shifted ? taylor<Real, Real, 3>(sh.chi, tau) : taylor<Real, Real, 3>(dr.chi, x);
      if (!shifted) {
        c.err += (abs(c.d1) + c.err1) * xerr;
        c.err1 += 2 * (abs(c.d2) + c.err2) * xerr + 3 * xerr;
      }
      const Real ac = abs(c.v), lo = ac - c.err;
      for (int k = 0; k < 4; ++k) {
        auto n = taylor<Real, Real, 2>(dr.num[k], x);
        n.err += (abs(n.d1) + n.err1) * xerr;
        n.err1 += 2 * abs(n.d2) * xerr;
        const Real f = n.v / c.v;
        const Real df = (n.d1 - f * c.d1) / c.v;  // d/dx (N / chi)
        const Real sc = dr.scale[k];
        s.f[k] += sc * f;
        s.df[k] += sc * df;
        s.abs[k] += abs(sc * f);
        const Real ferr = lo > 0 ? (n.err + abs(f) * c.err) / lo + 8 * eps * abs(f)
                                 : Real(std::numeric_limits<double>::infinity());
        const Real dferr = lo > 0 ? (n.err1 + abs(f) * c.err1 + ferr * abs(c.d1) + abs(df) * c.err) / lo +
                                        16 * eps * abs(df)
                                  : Real(std::numeric_limits<double>::infinity());
        s.err[k] += abs(sc) * ferr;
        s.derr[k] += abs(sc) * dferr + 16 * eps * abs(sc * df);
        if (shifted) s.base_df[k] = sc * df;
        if (k == RQ) {
          // (N / chi)'' = (N'' - 2 f' chi' - f chi'') / chi.
          const Real d2 = (2 * n.d2 - 2 * df * c.d1 - f * 2 * c.d2) / c.v;
          s.d2g += sc * d2;
          if (shifted) s.base_d2g = sc * d2;
        }
      }
    }
    for (int k = 0; k < 4; ++k) s.err[k] += gamma * s.abs[k];
    return s;
  };

  // --- Stability and the floor: 1 - g(1) > 0 (z = 1, x = 0), certified.
  const Full at_one = full_at(Real(0), Real(0), Shift{});
  const Real g1 = at_one.f[RQ], g1_err = at_one.err[RQ];
  if (!(1 - g1 > g1_err))
    return fail(g1 > 1 ? "the method does not contract (rho >= 1)"
                       : "the method is too close to instability to certify in this precision");
  const Real noise_coef = sigma2 / (1 - g1);
  const Real wu0 = at_one.f[OQ], wu0_err = at_one.err[OQ];
  out.l_inf_ = noise_coef * wu0;
  out.l_inf_error_ = abs(noise_coef) * (wu0_err + abs(wu0) * g1_err / (1 - g1 - g1_err)) + 8 * eps * abs(out.l_inf_);

  // --- The block poles: those that are not real and positive (and det A_i)
  // must lie inside the circle; the real positive ones above them are the
  // outer poles, refined in the working precision on chi (in x).
  double inner = 0;
  struct Pole {
    Real x;
    int dir;
  };
  std::vector<Pole> outer;
  // Per direction only the top pole (the Perron root of the block) can be
  // an outer one: the other two, and |det A_i|, bound the circle from below.
  std::vector<int> top(d, -1);
  for (std::size_t i = 0; i < d; ++i) {
    inner = std::max(inner, std::abs(dirs[i].det_a));
    int best = 0;
    for (int k = 1; k < 3; ++k)
      if (std::abs(dirs[i].poles[k]) > std::abs(dirs[i].poles[best])) best = k;
    const auto& p = dirs[i].poles[best];
    if (p.imag() == 0 && p.real() > 0) top[i] = best;
    for (int k = 0; k < 3; ++k)
      if (k != top[i]) inner = std::max(inner, std::abs(dirs[i].poles[k]));
  }
  for (std::size_t i = 0; i < d; ++i) {
    if (top[i] < 0) continue;
    {
      const auto& p = dirs[i].poles[top[i]];
      if (!(p.real() > inner * (1 + 1e-12))) continue;
      if (!(p.real() < 1)) return fail("the method does not contract (a block has rho >= 1)");
      // Bracket the root of chi near x0 = 1 - p and solve.
      const auto chi = [&](const Real& x) {
        const auto& c = dirs[i].chi.c;
        return ((c[3] * x + c[2]) * x + c[1]) * x + c[0];
      };
      // A few Newton steps in the working precision from the double estimate.
      Real x0 = Real(1 - p.real());
      for (int it = 0; it < 4; ++it) {
        const auto& c = dirs[i].chi.c;
        const Real dchi = (3 * c[3] * x0 + 2 * c[2]) * x0 + c[1];
        if (dchi == 0) break;
        const Real nx = x0 - chi(x0) / dchi;
        if (!(nx > 0)) break;
        x0 = nx;
      }
      Real w = abs(x0) * Real(1e-9);
      if (!(w > 0)) return fail("a real block pole could not be bracketed in this precision");
      Real lo = x0 - w, hi = x0 + w, flo = chi(lo), fhi = chi(hi);
      int guard = 0;
      while (!((flo < 0) != (fhi < 0)) && ++guard < 60) {
        w *= 4;
        lo = x0 - w;
        hi = x0 + w;
        flo = chi(lo);
        fhi = chi(hi);
      }
      if (!((flo < 0) != (fhi < 0)) || !(lo > 0))
        return fail("a real block pole could not be bracketed in this precision");
      std::uintmax_t iters = max_k2_root_iterations;
      const auto tol = boost::math::tools::eps_tolerance<Real>(std::numeric_limits<Real>::digits - 2);
      std::pair<Real, Real> br;
      try {
        br = boost::math::tools::toms748_solve(chi, lo, hi, flo, fhi, tol, iters);
      } catch (const std::exception& e) {
        return fail(fmt::format("a block pole: {}", e.what()));
      }
      outer.push_back({br.first + (br.second - br.first) / 2, static_cast<int>(i)});
    }
  }
  if (!(inner < 1)) return fail("the method does not contract (a block has rho >= 1)");
  std::sort(outer.begin(), outer.end(), [](const Pole& a, const Pole& b) { return a.x < b.x; });
  for (std::size_t j = 1; j < outer.size(); ++j)
    if (!(outer[j].x > outer[j - 1].x)) return fail("two outer block poles coincide in this precision");

  // --- The real roots of F = 1 - g above the inner poles: one in each gap
  // between consecutive outer poles (F runs from +inf to -inf in x), one in
  // (0, x_1) (F(0) > 0), and the highest one below the lowest outer pole.
  struct Root {
    Real base, tau, width;
    Shift shift;
  };
  std::vector<Root> roots;
  const auto F = [&](const Real& base, const Real& tau, const Shift& sh) { return 1 - g_at(base, tau, sh); };
  // Root of F(base + tau) for tau in [ta, tb] (F of opposite signs at the ends).
  const auto solve = [&](const Real& base, const Shift& sh, Real ta, Real tb, Real fa, Real fb) -> std::optional<Root> {
    if (fa == 0) return Root{base, ta, Real(0), sh};
    if (fb == 0) return Root{base, tb, Real(0), sh};
    std::uintmax_t iters = max_k2_root_iterations;
    const auto tol = boost::math::tools::eps_tolerance<Real>(std::numeric_limits<Real>::digits - 3);
    try {
      const auto br = boost::math::tools::toms748_solve([&](const Real& t) { return F(base, t, sh); }, ta, tb, fa,
                                                        fb, tol, iters);
      if (iters >= static_cast<std::uintmax_t>(max_k2_root_iterations)) return std::nullopt;
      return Root{base, br.first + (br.second - br.first) / 2, br.second - br.first, sh};
    } catch (const std::exception&) {
      return std::nullopt;
    }
  };
  // Just inside (x_a, x_b) from the pole at one end: the first offset where F
  // has the sign it takes next to that pole.
  const auto near_pole = [&](const Real& base, const Shift& sh, const Real& span,
                             bool positive) -> std::optional<Real> {
    Real t = span / 2;
    for (int k = 0; k < std::numeric_limits<Real>::digits + 8; ++k) {
      const Real f = F(base, t, sh);
      if (positive ? f > 0 : f < 0) return t;
      t /= 2;
      if (t == 0) break;
    }
    return std::nullopt;
  };
  const auto solve_gap = [&](const Real& xa, int pa, const Real& xb, int pb) -> std::optional<Root> {
    // F(xa+) > 0 (xa a pole, or 0 with F(0) > 0) and F(xb-) < 0 (xb a pole).
    const Real mid = xa + (xb - xa) / 2;
    const Real fm = F(mid, Real(0), Shift{});
    if (fm > 0) {  // the root is in (mid, xb): offsets from the pole xb
      const Shift sh = shift_to(pb, xb);
      const auto t = near_pole(xb, sh, mid - xb, false);
      if (!t) return std::nullopt;
      return solve(xb, sh, mid - xb, *t, fm, F(xb, *t, sh));
    }
    if (pa < 0) return solve(xa, Shift{}, Real(0), mid - xa, 1 - g1, fm);
    const Shift sh = shift_to(pa, xa);
    const auto t = near_pole(xa, sh, mid - xa, true);
    if (!t) return std::nullopt;
    return solve(xa, sh, *t, mid - xa, F(xa, *t, sh), fm);
  };
  for (std::size_t j = 0; j < outer.size(); ++j) {
    if ((j & 63) == 0) throw_if_stopped();
    const Real xa = j == 0 ? Real(0) : outer[j - 1].x;
    const int pa = j == 0 ? -1 : outer[j - 1].dir;
    auto rt = solve_gap(xa, pa, outer[j].x, outer[j].dir);
    if (!rt) return fail(fmt::format("the real eigenvalue below block pole {} was not found", j));
    roots.push_back(*rt);
  }
  {
    // Below the lowest outer pole (or below z = 1 without one), down to the
    // inner poles: the first sign change on a grid, finest next to the pole.
    const Real xa = outer.empty() ? Real(0) : outer.back().x;
    const int pa = outer.empty() ? -1 : outer.back().dir;
    const Real xm = Real(1 - inner);
    const Shift sh = shift_to(pa, xa);
    std::vector<Real> ts;
    const Real span = xm - xa;
    for (int k = 40; k >= 1; --k) ts.push_back(span * Real(std::ldexp(1.0, -k)));
    for (int j = 9; j <= 15; ++j) ts.push_back(span * Real(j) / 16);
    Real tprev = 0, fprev = outer.empty() ? 1 - g1 : Real(1);
    bool have_prev = outer.empty();
    for (const Real& t : ts) {
      const Real f = F(xa, t, sh);
      if (!have_prev) {
        if (f > 0) tprev = t, fprev = f, have_prev = true;
        continue;
      }
      if (f < 0) {
        auto rt = solve(xa, sh, tprev, t, fprev, f);
        if (rt) roots.push_back(*rt);
        break;
      }
      tprev = t;
      fprev = f;
    }
  }
  if (roots.empty()) return fail("no real eigenvalue of T lies outside the block poles' circle");

  // --- The circle: r in a gap of {inner, outer poles, roots} below the top
  // root, trading the arcs needed (about 1 / (r - inner)) against the decay of
  // the remainder relative to the top mode (log(rho / r)).
  const double rho = 1 - to_double(roots.front().base + roots.front().tau);
  std::vector<double> marks{inner};
  for (const Pole& p : outer) marks.push_back(1 - to_double(p.x));
  for (const Root& rt : roots) marks.push_back(1 - to_double(rt.base + rt.tau));
  std::sort(marks.begin(), marks.end());
  double best_r = 0, best_cost = std::numeric_limits<double>::infinity();
  for (std::size_t j = 0; j + 1 < marks.size(); ++j) {
    const double a = marks[j], b = marks[j + 1];
    if (!(a >= inner) || !(b <= rho) || !(b > a)) continue;
    for (const double frac : {0.25, 0.5, 0.75}) {
      const double r = a + frac * (b - a);
      if (!(r > inner) || !(r < rho)) continue;
      const double arcs = 2 * 3.14159 * r / (r - inner) + 8 * std::log2(1 + r / std::min(r - a, b - r));
      const double steps = 40 / std::log(rho / r);
      const double cost = 150 * arcs + steps;
      if (cost < best_cost) best_cost = cost, best_r = r;
    }
  }
  if (!(best_r > 0)) return fail("no circle separates the outer real modes from the block poles");
  const Real r = Real(best_r);
  const Real xr = 1 - r;

  // --- The arcs of the upper half circle (the lower half is its mirror image:
  // every coefficient is real). Each arc bounds every chi_i and 1 - g away
  // from 0 (by half their value at the centre), and |G| from above.
  struct ArcOut {
    bool ok = false;
    Real gmax{};
    Cx<Real> omg{};
  };
  std::vector<std::complex<double>> prev(d), cur(d);
  const auto arc = [&](const Real& theta, const Real& h, std::vector<std::complex<double>>& vals) -> ArcOut {
    ArcOut res;
    const Cx<Real> z{r * cos(theta), r * sin(theta)};
    const Cx<Real> x{1 - z.re, Real(0) - z.im};
    std::array<Cx<Real>, 4> S{};
    std::array<Real, 4> R{}, A{};
    for (std::size_t i = 0; i < d; ++i) {
      const Dir2<Real>& dr = dirs[i];
      const auto c = taylor<Cx<Real>, Real, 3>(dr.chi, x);
      const Real ac = cabs(c.v);
      const Real var = (cabs(c.d1) + c.err1) * h + (cabs(c.d2) + c.err2) * h * h + h * h * h;
      if (!(c.err + var <= ac / 2)) return res;
      const Real lo = ac - c.err - var, mid = ac - c.err;
      vals[i] = to_cd(c.v);
      for (int k = 0; k < 4; ++k) {
        const auto n = taylor<Cx<Real>, Real, 2>(dr.num[k], x);
        const Real an = cabs(n.v);
        const Real nvar = (cabs(n.d1) + n.err1) * h + (cabs(n.d2) + n.err2) * h * h;
        const Cx<Real> f = n.v / c.v;
        const Real af = cabs(f), sc = abs(dr.scale[k]);
        const Real ferr = (n.err + af * c.err) / mid + 8 * eps * af;
        const Real fvar = (nvar * (ac + c.err) + (an + n.err) * var) / (lo * mid);
        S[k] = S[k] + f * dr.scale[k];
        R[k] += sc * (ferr + fvar + 4 * eps * af);
        A[k] += sc * af;
      }
    }
    for (int k = 0; k < 4; ++k) R[k] += gamma * A[k];
    const Cx<Real> omg{1 - S[RQ].re, Real(0) - S[RQ].im};
    const Real aomg = cabs(omg);
    if (!(R[RQ] <= aomg / 2)) return res;
    // y = x_0 - x_inf: a^T R(z) x_inf = sigma^2 / (1 - g(1)) (A(z) - A(1)) / x.
    const Real ax = cabs(x), xlo = ax - h;
    if (!(xlo > 0)) return res;
    const Cx<Real> one{Real(1), Real(0)};
    const Cx<Real> inv_x = one / x;
    const Real an = abs(noise_coef);
    const Cx<Real> dg{S[RQ].re - g1, S[RQ].im}, dwu{S[OQ].re - wu0, S[OQ].im};
    const Cx<Real> vy = S[RS] - dg * inv_x * noise_coef;
    const Cx<Real> wy = S[OS] - dwu * inv_x * noise_coef;
    const Real rvy =
        R[RS] + an * ((R[RQ] + g1_err) / xlo + cabs(dg) * h / (xlo * ax)) + 8 * eps * (cabs(vy) + cabs(S[RS]));
    const Real rwy =
        R[OS] + an * ((R[OQ] + wu0_err) / xlo + cabs(dwu) * h / (xlo * ax)) + 8 * eps * (cabs(wy) + cabs(S[OS]));
    res.gmax = (cabs(wy) + rwy) + (cabs(S[OQ]) + R[OQ]) * (cabs(vy) + rvy) / (aomg - R[RQ]);
    res.gmax *= 1 + 64 * eps;
    res.omg = omg;
    res.ok = true;
    return res;
  };
  double wind_chi = 0, wind_g = 0;
  std::complex<double> prev_g;
  Real gmax = 0;
  int arcs = 0;
  const auto accumulate = [&](const ArcOut& a) {
    for (std::size_t i = 0; i < d; ++i) wind_chi += std::arg(cur[i] * std::conj(prev[i]));
    const std::complex<double> gc = to_cd(a.omg);
    wind_g += std::arg(gc * std::conj(prev_g));
    prev_g = gc;
    std::swap(prev, cur);
    if (a.gmax > gmax) gmax = a.gmax;
  };
  {
    const ArcOut start = arc(Real(0), Real(0), prev);
    if (!start.ok) return fail("the circle passes through a pole or an eigenvalue");
    prev_g = to_cd(start.omg);
    gmax = start.gmax;
    // Coarse to start with: the arcs split where a pole or an eigenvalue is near.
    const int pieces = 16;
    // Intervals [a, b] kept on a stack, leftmost on top, so the centres are visited in order.
    std::vector<std::pair<Real, Real>> todo;
    std::vector<int> depth;
    for (int j = pieces - 1; j >= 0; --j) {
      todo.emplace_back(pi * Real(j) / Real(pieces), pi * Real(j + 1) / Real(pieces));
      depth.push_back(0);
    }
    while (!todo.empty()) {
      const auto [a, b] = todo.back();
      const int dep = depth.back();
      todo.pop_back();
      depth.pop_back();
      if (++arcs > max_arc_evaluations.load())
        return fail(fmt::format("the count certificate needs more than {} arcs of |z| = {}",
                                max_arc_evaluations.load(), format_real(r, 6)));
      if ((arcs & 63) == 0) throw_if_stopped();
      const Real c = a + (b - a) / 2;
      const Real h = r * (b - a) / 2 + 8 * eps * r;
      const ArcOut o = arc(c, h, cur);
      if (!o.ok) {
        if (dep >= max_arc_halvings) return fail("an arc of the count certificate cannot be certified");
        todo.emplace_back(c, b);
        depth.push_back(dep + 1);
        todo.emplace_back(a, c);
        depth.push_back(dep + 1);
        continue;
      }
      accumulate(o);
    }
    const ArcOut end = arc(pi, Real(0), cur);
    if (!end.ok) return fail("the circle passes through a pole or an eigenvalue");
    accumulate(end);
  }
  // Winding numbers over the whole circle: twice those of the upper half.
  const double w_chi = wind_chi / 3.14159265358979323846, w_g = wind_g / 3.14159265358979323846;
  const double n_chi = std::round(w_chi), n_g = std::round(w_g);
  if (std::abs(w_chi - n_chi) > 0.25 || std::abs(w_g - n_g) > 0.25)
    return fail("the winding numbers of the count certificate are not integers");
  const long poles_out = static_cast<long>(3 * d) - static_cast<long>(n_chi);
  const long expected = poles_out - static_cast<long>(n_g);
  long outer_poles = 0;
  for (const Pole& p : outer) outer_poles += p.x < xr;
  std::vector<const Root*> outer_roots;
  for (const Root& rt : roots)
    if (rt.base + rt.tau < xr) outer_roots.push_back(&rt);
  if (poles_out != outer_poles)
    return fail(fmt::format("{} block poles lie outside |z| = {}, {} of them real", poles_out, format_real(r, 6),
                            outer_poles));
  if (expected != static_cast<long>(outer_roots.size()))
    return fail(fmt::format("{} eigenvalues of T lie outside |z| = {}, {} of them found real", expected,
                            format_real(r, 6), outer_roots.size()));

  // --- The outer modes: residues c_j = (w^T R u)(v^T R y) / (v^T R^2 u) at
  // each root, with the root's inclusion radius carried into log|z_j| and c_j.
  for (const Root* rt : outer_roots) {
    const Full s = full_at(rt->base, rt->tau, rt->shift);
    const Real x = rt->base + rt->tau;
    const Real Fv = 1 - s.f[RQ];  // F' = -dg/dx, and v^T R^2 u = dg/dx
    const Real dg = s.df[RQ], dg_lo = abs(dg) - s.derr[RQ];
    if (!(dg_lo > 0)) return fail("an outer eigenvalue is not a simple root in this precision");
    const Real shift = rt->shift.pole_shift;  // the root moves with its pole (0 without one)
    const Real radius = 2 * (abs(Fv) + s.err[RQ] + shift * abs(s.base_df[RQ])) / dg_lo + rt->width;
    const Real mu_error = radius + 8 * eps * (abs(x) + abs(rt->base));
    const Real z = 1 - x;
    if (!(mu_error < z / 2) || !(x > mu_error))
      return fail(fmt::format("the mode at z = {} is not certified in this precision", format_real(z, 6)));
    HorizonMode1<Real> md;
    md.negative = false;
    md.log_abs = log1p(-x);
    md.log_error = 2 * mu_error / z + 4 * eps * abs(md.log_abs);
    const Real wu = s.f[OQ], vy = s.f[RS] - sigma2 / x;
    // y's label-noise part: d/dx [sigma^2 / (1 - g(1)) (g - g(1)) / x] at g = 1.
    const Real dwu = s.df[OQ], dvy = s.df[RS] - noise_coef * dg / x + sigma2 / (x * x);
    md.c = wu * vy / dg;
    const Real dc = (dwu * vy * dg + wu * dvy * dg - wu * vy * s.d2g) / (dg * dg);
    const Real vy_err = s.err[RS] + 4 * eps * sigma2 / x;
    // Moving the base pole alone changes c by at most shift |dc/dpole|, and
    // d/dpole of the base terms is minus their d/dx (they depend on x - pole).
    const Real dvy_base = s.base_df[RS] - noise_coef * s.base_df[RQ] / x;
    const Real dc_base =
        (s.base_df[OQ] * vy * dg + wu * dvy_base * dg - wu * vy * s.base_d2g) / (dg * dg);
    md.c_error = 2 * radius * abs(dc) + 2 * shift * abs(dc_base) +
                 (s.err[OQ] * abs(vy) + abs(wu) * vy_err) / dg_lo +
                 abs(md.c) * s.derr[RQ] / dg_lo + 8 * eps * abs(md.c);
    if (!is_finite(md.c) || !is_finite(md.c_error)) return fail("a residue overflows in this precision");
    out.modes_.push_back(md);
  }
  out.gap_ = roots.front().base + roots.front().tau;
  // The remainder: |L_t - L_inf - sum_j c_j z_j^t| <= r^(t+1) max |G| on |z| = r.
  HorizonMode1<Real> rest;
  rest.log_abs = log(r) * (1 - 8 * eps);  // log r < 0, rounded towards 0
  rest.c = 0;
  rest.c_error = r * gmax * (1 + 8 * eps);
  rest.log_error = 0;
  out.modes_.push_back(rest);
  out.radius_ = r;
  out.arcs_ = arcs;
  out.evaluations_ = evaluations;
  std::sort(out.modes_.begin(), out.modes_.end(), [](const auto& a, const auto& b) { return a.log_abs > b.log_abs; });
  return out;
}

#define CESR_INSTANTIATE(Real)                                                                             \
  template std::optional<SpectralLoss<Real>> SpectralLoss<Real>::build_k2(const Spectrum&, const Method<Real>&, \
                                                                          const NoiseModel&, std::string*,      \
                                                                          const MethodSpec*);
CESR_FOR_EACH_REAL(CESR_INSTANTIATE)
#undef CESR_INSTANTIATE

}  // namespace cesr
