// The spectral path for methods with k = 2, 3 or 4 state vectors (heavy ball,
// NAG, AccSGD, QHM, any of them with an EMA of the iterate, custom k <= 4): the
// real eigenvalues of T = D + u v^T outside a circle |z| = r, certified in
// number by the argument principle, plus the rest of L_t bounded as a whole by
// a contour integral over that circle.
//
// With G(z) = w^T (z - T)^{-1} y (y = x_0 - x_inf), L_t - L_inf is
// (1 / 2 pi i) times the integral of G(z) z^t over a large circle. Shrinking it
// to |z| = r picks up the residues c_j z_j^t of the eigenvalues outside, and
// leaves |integral over |z| = r| <= r^(t+1) max_{|z|=r} |G(z)|.
//
// Per direction the block D_i is the m x m map S -> A S A^T + (K-2) lambda^2 / B
// q q^T r^T S r on symmetric k x k matrices (m = k(k+1)/2: 3, 6, 10); every
// quantity of the secular form (g = v^T R u, w^T R u, v^T R x_0, w^T R x_0,
// R = (z - D)^{-1}) is a sum of N_i(x) / chi_i(x) with chi_i = det(z - D_i) of
// degree m and N_i of degree m - 1 in x = 1 - z. Two constructions of the
// block polynomials:
//  - k = 2 (the fast path): chi_i from sigma1 = tr(I - A_i), sigma0 =
//    det(I - A_i) and 1 - det A_i (as the rate's secular function is), so the
//    poles near z = 1 carry a relative error of a few ulps; the numerators
//    from E = I - D_i in closed form.
//  - any k (the generic block): E = I - D_i on the unique entries of symmetric
//    k x k matrices, formed from F = I - A_i, and chi_i and the numerators by
//    Faddeev-LeVerrier, all in a wider precision with rounding bounds and then
//    rounded once, so the cancellation of det(x - E) near x = 0 costs the
//    wider precision's digits, not the working one's.
//
// The circle: r lies above every block eigenvalue that is not real and
// positive (the complex ones, the negative ones, and for the generic block the
// real positive ones below a complex one of their block or invisible to g).
// Outside, the remaining block poles are real, and the eigenvalues of T there
// are the real roots of g = 1, found between consecutive poles by TOMS 748.
// Their number is certified: on an adaptive set of arcs of |z| = r each chi_i
// and 1 - g are bounded away from 0 by exact Taylor bounds of the polynomials
// (plus their rounding), which also fixes the winding of each, so (#zeros of
// det(z - T) outside) = (#zeros of prod chi_i outside) - winding(1 - g) is
// known exactly; a count that disagrees with the roots found refuses. The same
// arcs bound |G|. Derivation and certification: docs/theory.md, section 8.
#include "cesr/horizon.hpp"

#include "cesr/error.hpp"
#include "cesr/stop.hpp"
#include "rounded.hpp"

#include <Eigen/Eigenvalues>
#include <boost/math/tools/toms748_solve.hpp>
#include <boost/multiprecision/cpp_bin_float.hpp>
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
// Tests: build k = 2 blocks by the generic construction too.
std::atomic<bool> generic_k2_blocks{false};
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
// p(x) by Horner's rule.
template <class Real, std::size_t L>
Real horner(const std::array<Real, L>& c, const Real& x) {
  Real v = c[L - 1];
  for (std::size_t k = L - 1; k-- > 0;) v = v * x + c[k];
  return v;
}

constexpr int binomial(int n, int k) {
  int b = 1;
  for (int j = 1; j <= k; ++j) b = b * (n - k + j) / j;
  return b;
}

// The Taylor coefficients p^(j)(x) / j! at x (c[j]), each with a bound on its
// error (e[j]: coefficient errors plus the rounding of the evaluation, 16 eps
// of the absolute terms); v, d1, d2 and err, err1, err2 name the first three.
template <class S, class Real, int N>
struct Taylor {
  std::array<S, N + 1> c;
  std::array<Real, N + 1> e;
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
Taylor<S, Real, N> taylor(const Poly<Real, N>& p, const S& x) {
  using std::abs;
  static_assert(N >= 2);
  const Real g = 16 * epsilon<Real>();
  std::array<S, N + 1> pw;
  if constexpr (std::is_same_v<S, Cx<Real>>) pw[0] = Cx<Real>{Real(1), Real(0)};
  else pw[0] = Real(1);
  for (int k = 1; k <= N; ++k) pw[k] = pw[k - 1] * x;
  const Real ax = magnitude(x);
  std::array<Real, N + 1> apw;
  apw[0] = Real(1);
  for (int k = 1; k <= N; ++k) apw[k] = apw[k - 1] * ax;
  Taylor<S, Real, N> t;
  for (int j = 0; j <= N; ++j) t.c[j] = pw[0] * Real(0), t.e[j] = Real(0);
  for (int k = 0; k <= N; ++k) {
    const Real bound = p.e[k] + g * abs(p.c[k]);
    t.c[0] = t.c[0] + times(pw[k], p.c[k]);
    t.e[0] += bound * apw[k];
    for (int j = 1; j <= k; ++j) {
      const Real binom = Real(binomial(k, j));
      t.c[j] = t.c[j] + times(pw[k - j], binom * p.c[k]);
      t.e[j] += binom * bound * apw[k - j];
    }
  }
  t.v = t.c[0], t.d1 = t.c[1], t.d2 = t.c[2];
  t.err = t.e[0], t.err1 = t.e[1], t.err2 = t.e[2];
  return t;
}
// A bound on |p(x + delta) - p(x)| over |delta| <= h, from the Taylor
// coefficients at x and their errors.
template <class S, class Real, int N>
Real variation(const Taylor<S, Real, N>& t, const Real& h) {
  Real v = 0, hp = 1;
  for (int j = 1; j <= N; ++j) {
    hp *= h;
    v += (magnitude(t.c[j]) + t.e[j]) * hp;
  }
  return v;
}
// A bound on |p'(x + delta) - p'(x)| over |delta| <= h (h tiny: first order in
// h, the higher terms bounded by |delta| <= 1).
template <class S, class Real, int N>
Real slope_variation(const Taylor<S, Real, N>& t, const Real& h) {
  Real v = 0;
  for (int j = 2; j <= N; ++j) v += Real(j) * (magnitude(t.c[j]) + t.e[j]) * h;
  return v;
}

enum Pair { RQ = 0, OQ = 1, RS = 2, OS = 3 };

// One direction (equal eigenvalues merged) with an M x M block: chi(x) =
// det(z - D_i) and the four numerators, each term being scale * N / chi.
template <class Real, int M>
struct Dir {
  Poly<Real, M> chi;
  std::array<Poly<Real, M - 1>, 4> num;
  std::array<Real, 4> scale;
  double lambda = 0;
  std::array<std::complex<double>, M> poles;  // approximate eigenvalues of D_i (z)
  double det_a = 0;                          // k = 2: det A_i (a lower bound of the circle)
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
Dir<Real, 3> make_dir(const Method<Real>& m, const K2Constants<Real>& k, double lambda, double init, double weight,
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
  Dir<Real, 3> d;
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

// --- The generic block (any k): E = I - D_i on the unique entries of
// symmetric k x k matrices, chi and the numerators by Faddeev-LeVerrier, in a
// wider precision W with rounding bounds, rounded once to the working one.
template <class Real>
struct WiderOf {
  using type = quad;
};
template <>
struct WiderOf<quad> {
  using type = mp50;
};
template <>
struct WiderOf<mp50> {
  using type = boost::multiprecision::cpp_bin_float_100;
};
template <class Real>
using Wider = typename WiderOf<Real>::type;

template <class To, class From>
To convert_to(const From& x) {
  if constexpr (std::is_same_v<To, From>) return x;
  else if constexpr (std::is_arithmetic_v<To> && std::is_arithmetic_v<From>) return static_cast<To>(x);
  else if constexpr (!std::is_arithmetic_v<From>) return x.template convert_to<To>();
  else return To(x);
}

template <class W>
Bd<W> neg(const Bd<W>& a) {
  return {-a.v, a.e};
}

// The method's coefficients in W, each with its error bound.
template <class W>
struct WideMethod {
  int k = 0;
  std::array<std::array<Bd<W>, max_states>, max_states> P;
  std::array<Bd<W>, max_states> q, r, o, s0;
};
// From the exact coefficients (one rounding to W), or from the working
// precision's (their own rounding, rel_error |v|, on top).
template <class W, class From>
WideMethod<W> widen(const Method<From>& m, const W& rel_error) {
  using std::abs;
  const auto one = [&](const From& x) {
    const W v = convert_to<W>(x);
    return Bd<W>{v, (rel_error + epsilon<W>()) * abs(v)};
  };
  WideMethod<W> w;
  w.k = m.k;
  for (int a = 0; a < max_states; ++a) {
    w.q[a] = one(m.q[a]), w.r[a] = one(m.r[a]), w.o[a] = one(m.o[a]), w.s0[a] = one(m.s0[a]);
    for (int b = 0; b < max_states; ++b) w.P[a][b] = one(m.P[a][b]);
  }
  return w;
}

template <class Real, int K, class W>
Dir<Real, K*(K + 1) / 2> make_dir_generic(const WideMethod<W>& wm, double lambda, double init, double weight,
                                          const Bd<W>& kb, const Bd<W>& ib, const Real& ib_real) {
  using std::abs;
  constexpr int M = K * (K + 1) / 2;
  using B = Bd<W>;
  const B one = exact(W(1)), zero = exact(W(0)), two = exact(W(2));
  const B l = exact(W(lambda));
  // F = I - A with A = P - lambda q r^T.
  std::array<std::array<B, K>, K> F;
  for (int a = 0; a < K; ++a)
    for (int b = 0; b < K; ++b)
      F[a][b] = (a == b ? one - wm.P[a][b] : neg(wm.P[a][b])) + l * wm.q[a] * wm.r[b];
  // The unique entries (a <= b) of a symmetric k x k matrix; a quadratic form
  // a^T S a reads them with weight 2 off the diagonal.
  std::array<std::pair<int, int>, M> ix;
  {
    int n = 0;
    for (int a = 0; a < K; ++a)
      for (int b = a; b < K; ++b) ix[n++] = {a, b};
  }
  std::array<B, M> qt, st, rt, ot;
  for (int i = 0; i < M; ++i) {
    const auto [a, b] = ix[i];
    const B w = a == b ? one : two;
    qt[i] = wm.q[a] * wm.q[b];
    st[i] = wm.s0[a] * wm.s0[b];
    rt[i] = w * wm.r[a] * wm.r[b];
    ot[i] = w * wm.o[a] * wm.o[b];
  }
  const B kap = kb * l * l * ib;  // (K - 2) lambda^2 / B
  // E = I - D_i: (A S A^T)_ab = sum_{c <= d} S_cd (A_ac A_bd + [c != d] A_ad A_bc)
  // with A = I - F, so the identity cancels exactly and E is formed from F.
  using Mat = std::array<std::array<B, M>, M>;
  Mat E;
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < M; ++j) {
      const auto [a, b] = ix[i];
      const auto [c, d] = ix[j];
      B e = zero;
      if (a == c) e = e + F[b][d];
      if (b == d) e = e + F[a][c];
      e = e - F[a][c] * F[b][d];
      if (c != d) {
        if (a == d) e = e + F[b][c];
        if (b == c) e = e + F[a][d];
        e = e - F[a][d] * F[b][c];
      }
      E[i][j] = e - kap * qt[i] * rt[j];
    }
  // Faddeev-LeVerrier: det(x - E) = sum_j c_j x^j (c_M = 1) and
  // adj(x - E) = sum_{k=1}^M B_k x^(M-k), B_1 = I, B_k = E B_(k-1) + c_(M-k+1) I,
  // c_(M-k) = -tr(E B_k) / k.
  std::array<B, M + 1> c;
  c[M] = one;
  const std::array<std::pair<const std::array<B, M>*, const std::array<B, M>*>, 4> pairs{
      {{&rt, &qt}, {&ot, &qt}, {&rt, &st}, {&ot, &st}}};
  std::array<std::array<B, M>, 4> num;
  Mat Bk, next;
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < M; ++j) Bk[i][j] = i == j ? one : zero;
  for (int k = 1; k <= M; ++k) {
    if (k > 1) {
      for (int i = 0; i < M; ++i)
        for (int j = 0; j < M; ++j) {
          B s = i == j ? c[M - k + 1] : zero;
          for (int n = 0; n < M; ++n) s = s + E[i][n] * Bk[n][j];
          next[i][j] = s;
        }
      Bk = next;
    }
    for (int p = 0; p < 4; ++p) {
      const auto& av = *pairs[p].first;
      const auto& bv = *pairs[p].second;
      B s = zero;
      for (int i = 0; i < M; ++i) {
        B row = zero;
        for (int j = 0; j < M; ++j) row = row + Bk[i][j] * bv[j];
        s = s + av[i] * row;
      }
      num[p][M - k] = s;
    }
    B tr = zero;
    for (int i = 0; i < M; ++i)
      for (int j = 0; j < M; ++j) tr = tr + E[i][j] * Bk[j][i];
    c[M - k] = neg(tr) / exact(W(k));
  }
  // In z: det(z - D_i) = det(E - x) = (-1)^M det(x - E) and
  // a^T adj(z - D_i) b = (-1)^(M-1) a^T adj(x - E) b; rounded once to Real.
  const Real eps = epsilon<Real>();
  const auto lift = [&](const B& b, bool flip) {
    const Real v = convert_to<Real>(flip ? -b.v : b.v);
    return Bd<Real>{v, convert_to<Real>(b.e) * (1 + 4 * eps) + eps * abs(v)};
  };
  Dir<Real, M> d;
  d.lambda = lambda;
  {
    std::array<Bd<Real>, M + 1> ch;
    for (int j = 0; j <= M; ++j) ch[j] = lift(c[j], M % 2 == 1);
    d.chi = poly<Real, M>(ch);
  }
  for (int p = 0; p < 4; ++p) {
    std::array<Bd<Real>, M> n;
    for (int j = 0; j < M; ++j) n[j] = lift(num[p][j], M % 2 == 0);
    d.num[p] = poly<Real, M - 1>(n);
  }
  const Real L = Real(lambda), x0 = Real(init), mult = Real(weight);
  d.scale = {mult * L * L * ib_real, mult * L * L * ib_real / 2, L * x0, L * x0 / 2};
  // Approximate block poles (eigenvalues of D_i = I - E), only to place the
  // circle and to start the refinement of the real ones.
  Eigen::Matrix<double, M, M> Md;
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < M; ++j) Md(i, j) = (i == j ? 1.0 : 0.0) - convert_to<double>(E[i][j].v);
  Eigen::EigenSolver<Eigen::Matrix<double, M, M>> es(Md, false);
  for (int i = 0; i < M; ++i) d.poles[i] = es.eigenvalues()(i);
  d.det_a = 0;
  return d;
}

// What the circle construction hands back to SpectralLoss.
template <class Real>
struct Parts {
  std::vector<HorizonMode1<Real>> modes;
  Real l_inf{}, l_inf_error{}, gap{}, radius{};
  int arcs = 0, evaluations = 0;
};

// The circle, its certificate and the outer modes, for blocks of size M.
// generic: the block poles are classified and the roots sought as for any k
// (see the generic block above); else the k = 2 rules (one outer candidate
// per block, one root per gap).
template <class Real, int M>
std::optional<Parts<Real>> circle_build(const std::vector<Dir<Real, M>>& dirs, const Real& sigma2, bool generic,
                                        std::string* why) {
  using std::abs;
  using std::cos;
  using std::log;
  using std::log1p;
  using std::sin;
  const auto fail = [&](std::string reason) {
    if (why) *why = std::move(reason);
    return std::optional<Parts<Real>>{};
  };
  const Real eps = epsilon<Real>();
  const Real pi = Real(3.14159265358979323846264338327950288419716939937510582097494459L);
  Parts<Real> out;
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
    Poly<Real, M> chi;
    Real pole_shift{};
    Real near{};  // offsets below this may lie across the (shifted) pole itself
  };
  const auto shift_to = [&](int dir, const Real& base) {
    Shift s;
    s.dir = dir;
    if (dir < 0) return s;
    const auto t = taylor<Real, Real, M>(dirs[dir].chi, base);
    s.chi.c = t.c;
    s.chi.e = t.e;
    s.chi.c[M] = dirs[dir].chi.c[M];
    s.chi.e[0] = Real(0);
    s.chi.e[M] = dirs[dir].chi.e[M];
    const Real slope = abs(t.d1) - t.err1;
    s.pole_shift = slope > 0 ? 2 * t.err / slope : Real(std::numeric_limits<double>::infinity());
    s.near = slope > 0 ? 4 * (abs(t.v) / slope + s.pole_shift) : s.pole_shift;
    return s;
  };
  const auto g_at = [&](const Real& base, const Real& tau, const Shift& sh) {
    ++evaluations;
    const Real x = base + tau;
    Real g = 0;
    for (std::size_t i = 0; i < d; ++i) {
      const Dir<Real, M>& dr = dirs[i];
      const bool shifted = static_cast<int>(i) == sh.dir;
      const Real& xi = shifted ? tau : x;
      const auto& ch = shifted ? sh.chi.c : dr.chi.c;
      const Real chi = horner(ch, xi);
      g += dr.scale[RQ] * horner(dr.num[RQ].c, x) / chi;
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
      const Dir<Real, M>& dr = dirs[i];
      const bool shifted = static_cast<int>(i) == sh.dir;
      auto c = shifted ? taylor<Real, Real, M>(sh.chi, tau) : taylor<Real, Real, M>(dr.chi, x);
      if (!shifted) {
        c.err += (abs(c.d1) + c.err1) * xerr;
        c.err1 += slope_variation(c, xerr);
      }
      const Real ac = abs(c.v), lo = ac - c.err;
      for (int k = 0; k < 4; ++k) {
        auto n = taylor<Real, Real, M - 1>(dr.num[k], x);
        n.err += (abs(n.d1) + n.err1) * xerr;
        n.err1 += slope_variation(n, xerr);
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
  out.l_inf = noise_coef * wu0;
  out.l_inf_error = abs(noise_coef) * (wu0_err + abs(wu0) * g1_err / (1 - g1 - g1_err)) + 8 * eps * abs(out.l_inf);

  // --- The block poles: those that are not real and positive (and det A_i)
  // must lie inside the circle; the real positive ones above them are the
  // outer poles, refined in the working precision on chi (in x).
  double inner = 0;
  struct Pole {
    Real x;
    int dir;
  };
  std::vector<Pole> outer;
  struct Candidate {
    int dir, pole;
  };
  std::vector<Candidate> candidates;
  double hidden = 0;  // the top block pole that g does not see (generic blocks)
  if (!generic) {
    // k = 2: per direction only the top pole (the Perron root of the block)
    // can be an outer one: the other two, and |det A_i|, bound the circle
    // from below.
    for (std::size_t i = 0; i < d; ++i) {
      inner = std::max(inner, std::abs(dirs[i].det_a));
      int best = 0;
      for (int k = 1; k < M; ++k)
        if (std::abs(dirs[i].poles[k]) > std::abs(dirs[i].poles[best])) best = k;
      const auto& p = dirs[i].poles[best];
      const int top = p.imag() == 0 && p.real() > 0 ? best : -1;
      if (top >= 0) candidates.push_back({static_cast<int>(i), top});
      for (int k = 0; k < M; ++k)
        if (k != top) inner = std::max(inner, std::abs(dirs[i].poles[k]));
    }
  } else {
    // The generic block: every real positive pole above the block's complex
    // and negative ones is a candidate (an EMA state adds real poles near 1
    // next to the momentum's), unless g does not see it (its numerator
    // vanishes with chi: the EMA's own poles, which no noise feeds back):
    // then it bounds the circle from below like the complex ones. The count
    // certificate decides whether this picture is right.
    for (std::size_t i = 0; i < d; ++i) {
      double cmax = 0;
      for (int k = 0; k < M; ++k) {
        const auto& p = dirs[i].poles[k];
        if (!(p.imag() == 0 && p.real() > 0)) cmax = std::max(cmax, std::abs(p));
      }
      inner = std::max(inner, cmax);
      for (int k = 0; k < M; ++k) {
        const auto& p = dirs[i].poles[k];
        if (!(p.imag() == 0 && p.real() > 0)) continue;
        // (|mu|^2 of an underdamped pair has the modulus of mu^2.)
        if (!(p.real() > cmax * (1 + 1e-9))) {
          inner = std::max(inner, p.real());
          continue;
        }
        // Seen by g: |N_RQ| at the pole well above its rounding level.
        const double x = 1 - p.real();
        double nv = 0, na = 0, xp = 1;
        for (int j = 0; j < M; ++j) {
          const double cj = to_double(dirs[i].num[RQ].c[j]);
          nv += cj * xp;
          na += std::abs(cj) * xp;
          xp *= x;
        }
        if (!(std::abs(nv) > 1e-6 * na)) {
          inner = std::max(inner, p.real());
          hidden = std::max(hidden, p.real());
          continue;
        }
        candidates.push_back({static_cast<int>(i), k});
      }
    }
  }
  for (const Candidate& cd : candidates) {
    const std::size_t i = static_cast<std::size_t>(cd.dir);
    const auto& p = dirs[i].poles[cd.pole];
    if (!(p.real() > inner * (1 + 1e-12))) continue;
    if (!(p.real() < 1)) return fail("the method does not contract (a block has rho >= 1)");
    // The bracket may not reach the block's other poles.
    double room = std::numeric_limits<double>::infinity();
    for (int k = 0; k < M; ++k)
      if (k != cd.pole) room = std::min(room, std::abs(dirs[i].poles[k] - p));
    const auto& cc = dirs[i].chi.c;
    const auto chi = [&](const Real& x) { return horner(cc, x); };
    const auto dchi = [&](const Real& x) {
      Real v = Real(M) * cc[M];
      for (int k = M - 1; k >= 1; --k) v = v * x + Real(k) * cc[k];
      return v;
    };
    // A few Newton steps in the working precision from the double estimate.
    Real x0 = Real(1 - p.real());
    for (int it = 0; it < 4; ++it) {
      const Real dc = dchi(x0);
      if (dc == 0) break;
      const Real nx = x0 - chi(x0) / dc;
      if (!(nx > 0)) break;
      x0 = nx;
    }
    Real w = abs(x0) * Real(1e-9);
    if (!(w > 0)) return fail("a real block pole could not be bracketed in this precision");
    Real lo = x0 - w, hi = x0 + w, flo = chi(lo), fhi = chi(hi);
    int guard = 0;
    while (!((flo < 0) != (fhi < 0)) && ++guard < 60 && (!generic || to_double(w) < room / 2)) {
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
  if (generic) {
    // The generic block: the residues of g at its poles need not alternate,
    // so each gap may hold no root or several. Every sign change of F on a
    // grid of each gap (finest next to its poles, each side evaluated from its
    // own pole) is bracketed and solved; roots the grid misses, and complex
    // eigenvalues outside the circle, make the count certificate refuse.
    struct Pt {
      Real base, tau, f;
      const Shift* sh;
    };
    const Shift none{};
    std::vector<Shift> shifts(outer.size());
    for (std::size_t j = 0; j < outer.size(); ++j) shifts[j] = shift_to(outer[j].dir, outer[j].x);
    constexpr int finest = 48;
    const auto scan = [&](const std::vector<Pt>& pts) -> bool {
      for (std::size_t j = 0; j + 1 < pts.size(); ++j) {
        const Pt& a = pts[j];
        const Pt& b = pts[j + 1];
        if (a.f == 0) {
          roots.push_back(Root{a.base, a.tau, Real(0), *a.sh});
          continue;
        }
        if (b.f == 0 || (a.f > 0) == (b.f > 0)) continue;
        std::optional<Root> rt;
        if (a.sh == b.sh && a.base == b.base) {
          rt = solve(a.base, *a.sh, a.tau, b.tau, a.f, b.f);
        } else {
          // Across the middle of a gap: the left end from the right pole.
          const Real ta = (a.base + a.tau) - b.base;
          const Real fa = F(b.base, ta, *b.sh);
          if (!(ta < b.tau)) return false;
          if (fa == 0 || (fa > 0) != (b.f > 0)) rt = solve(b.base, *b.sh, ta, b.tau, fa, b.f);
          else continue;  // the sign change is within rounding: the certificate decides
        }
        if (!rt) return false;
        roots.push_back(*rt);
      }
      return true;
    };
    for (std::size_t j = 0; j <= outer.size(); ++j) {
      if ((j & 15) == 0) throw_if_stopped();
      const bool last = j == outer.size();
      const Real xa = j == 0 ? Real(0) : outer[j - 1].x;
      const Shift& sa = j == 0 ? none : shifts[j - 1];
      const Real xb = last ? Real(1 - inner) : outer[j].x;
      const Real span = xb - xa;
      if (!(span > 0)) return fail("two outer block poles coincide in this precision");
      std::vector<Pt> pts;
      if (j == 0) pts.push_back({Real(0), Real(0), 1 - g1, &none});
      for (int k = finest; k >= 1; --k) {
        const Real t = span * Real(std::ldexp(1.0, -k));
        if (t > sa.near) pts.push_back({xa, t, F(xa, t, sa), &sa});
      }
      if (last) {
        for (int k = 9; k <= 15; ++k) {
          const Real t = span * Real(k) / 16;
          pts.push_back({xa, t, F(xa, t, sa), &sa});
        }
      } else {
        for (int k = 2; k <= finest; ++k) {
          const Real t = Real(0) - span * Real(std::ldexp(1.0, -k));
          if (-t > shifts[j].near) pts.push_back({xb, t, F(xb, t, shifts[j]), &shifts[j]});
        }
      }
      if (!scan(pts)) return fail("a real eigenvalue of T between block poles was not found");
    }
  } else {
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
  }
  // An eigenvalue of T that g does not see (the EMA of an iterate, slower
  // than the method) above the top mode: its residue is not one of g = 1,
  // and the circle would have to pass below it.
  if (hidden > 0 && (roots.empty() || !(1 - to_double(roots.front().base + roots.front().tau) > hidden)))
    return fail(fmt::format("a block pole that the noise coupling does not see (z = {:.6g}, e.g. an average slower "
                            "than the method) lies above the top mode; the spectral path does not cover it",
                            hidden));
  if (roots.empty()) return fail("no real eigenvalue of T lies outside the block poles' circle");

  // --- The circle: r in a gap of {inner, outer poles, roots} below the top
  // root, trading the arcs needed (about 1 / (r - inner)) against the decay of
  // the remainder relative to the top mode (log(rho / r)).
  const double rho = 1 - to_double(roots.front().base + roots.front().tau);
  std::vector<double> marks{inner};
  for (const Pole& p : outer) marks.push_back(1 - to_double(p.x));
  for (const Root& rt : roots) marks.push_back(1 - to_double(rt.base + rt.tau));
  std::sort(marks.begin(), marks.end());
  std::vector<std::pair<double, double>> circles;  // (cost, r)
  for (std::size_t j = 0; j + 1 < marks.size(); ++j) {
    const double a = marks[j], b = marks[j + 1];
    if (!(a >= inner) || !(b <= rho) || !(b > a)) continue;
    for (const double frac : {0.25, 0.5, 0.75}) {
      const double r = a + frac * (b - a);
      if (!(r > inner) || !(r < rho)) continue;
      const double arcs = 2 * 3.14159 * r / (r - inner) + 8 * std::log2(1 + r / std::min(r - a, b - r));
      const double steps = 40 / std::log(rho / r);
      const double cost = 150 * arcs + steps;
      circles.emplace_back(cost, r);
    }
  }
  if (circles.empty()) return fail("no circle separates the outer real modes from the block poles");
  std::stable_sort(circles.begin(), circles.end());
  Real r{}, xr{}, gmax{};
  int arcs = 0;
  std::vector<const Root*> outer_roots;
  const auto attempt = [&](double rr) -> std::optional<std::string> {
  r = Real(rr);
  xr = 1 - r;

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
      const Dir<Real, M>& dr = dirs[i];
      const auto c = taylor<Cx<Real>, Real, M>(dr.chi, x);
      const Real ac = cabs(c.v);
      const Real var = variation(c, h);
      if (!(c.err + var <= ac / 2)) return res;
      const Real lo = ac - c.err - var, mid = ac - c.err;
      vals[i] = to_cd(c.v);
      for (int k = 0; k < 4; ++k) {
        const auto n = taylor<Cx<Real>, Real, M - 1>(dr.num[k], x);
        const Real an = cabs(n.v);
        const Real nvar = variation(n, h);
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
  gmax = 0;
  arcs = 0;
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
    if (!start.ok) return std::optional<std::string>("the circle passes through a pole or an eigenvalue");
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
        return std::optional<std::string>(fmt::format("the count certificate needs more than {} arcs of |z| = {}",
                                max_arc_evaluations.load(), format_real(r, 6)));
      if ((arcs & 63) == 0) throw_if_stopped();
      const Real c = a + (b - a) / 2;
      const Real h = r * (b - a) / 2 + 8 * eps * r;
      const ArcOut o = arc(c, h, cur);
      if (!o.ok) {
        if (dep >= max_arc_halvings) return std::optional<std::string>("an arc of the count certificate cannot be certified");
        todo.emplace_back(c, b);
        depth.push_back(dep + 1);
        todo.emplace_back(a, c);
        depth.push_back(dep + 1);
        continue;
      }
      accumulate(o);
    }
    const ArcOut end = arc(pi, Real(0), cur);
    if (!end.ok) return std::optional<std::string>("the circle passes through a pole or an eigenvalue");
    accumulate(end);
  }
  // Winding numbers over the whole circle: twice those of the upper half.
  const double w_chi = wind_chi / 3.14159265358979323846, w_g = wind_g / 3.14159265358979323846;
  const double n_chi = std::round(w_chi), n_g = std::round(w_g);
  if (std::abs(w_chi - n_chi) > 0.25 || std::abs(w_g - n_g) > 0.25)
    return std::optional<std::string>("the winding numbers of the count certificate are not integers");
  const long poles_out = static_cast<long>(M) * static_cast<long>(d) - static_cast<long>(n_chi);
  const long expected = poles_out - static_cast<long>(n_g);
  long outer_poles = 0;
  for (const Pole& p : outer) outer_poles += p.x < xr;
  outer_roots.clear();
  for (const Root& rt : roots)
    if (rt.base + rt.tau < xr) outer_roots.push_back(&rt);
  if (poles_out != outer_poles)
    return std::optional<std::string>(fmt::format("{} block poles lie outside |z| = {}, {} of them real", poles_out, format_real(r, 6),
                            outer_poles));
  if (expected != static_cast<long>(outer_roots.size()))
    return std::optional<std::string>(fmt::format("{} eigenvalues of T lie outside |z| = {}, {} of them found real", expected,
                            format_real(r, 6), outer_roots.size()));
  return std::nullopt;
  };
  // The cheapest circle first; for the generic block, where complex
  // eigenvalues of T may lie among the lower real poles, a count that
  // disagrees retries on a larger circle (up to 4 circles).
  {
    std::optional<std::string> err;
    double tried = 0;
    int tries = 0;
    for (const auto& [cost, rr] : circles) {
      if (!(rr > tried)) continue;
      err = attempt(rr);
      if (!err) break;
      tried = rr;
      if (!generic || ++tries >= 4) break;
    }
    if (err) return fail(*err);
  }

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
    out.modes.push_back(md);
  }
  out.gap = roots.front().base + roots.front().tau;
  // The remainder: |L_t - L_inf - sum_j c_j z_j^t| <= r^(t+1) max |G| on |z| = r.
  HorizonMode1<Real> rest;
  rest.log_abs = log(r) * (1 - 8 * eps);  // log r < 0, rounded towards 0
  rest.c = 0;
  rest.c_error = r * gmax * (1 + 8 * eps);
  rest.log_error = 0;
  out.modes.push_back(rest);
  out.radius = r;
  out.arcs = arcs;
  out.evaluations = evaluations;
  std::sort(out.modes.begin(), out.modes.end(), [](const auto& a, const auto& b) { return a.log_abs > b.log_abs; });
  return out;
}

}  // namespace

int set_k2_arc_budget(int arcs) { return max_arc_evaluations.exchange(arcs); }
bool set_generic_k2_blocks(bool on) { return generic_k2_blocks.exchange(on); }

template <class Real>
std::optional<SpectralLoss<Real>> SpectralLoss<Real>::build_blocks(const Spectrum& spectrum, const Method<Real>& m,
                                                                   const NoiseModel& noise, std::string* why,
                                                                   const MethodSpec* spec) {
  const auto fail = [&](std::string reason) {
    if (why) *why = std::move(reason);
    return std::optional<SpectralLoss>{};
  };
  if (m.k < 2 || m.k > max_states) return fail(fmt::format("the method has k = {} state vectors", m.k));
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
    return fail(fmt::format("d = {} exceeds the k = {} spectral path's budget (d <= {})", merged.size(), m.k,
                            max_k2_dim));
  SpectralLoss out;
  {
    // L_0 as time stepping sums it: 1/2 sum_i lambda_i o^T S_i(0) o.
    Real initial = 0;
    Real so = 0;
    for (int a = 0; a < m.k; ++a) so += m.o[a] * m.s0[a];
    for (std::size_t i = 0; i < spectrum.lambda.size(); ++i)
      initial += Real(spectrum.weight_at(i)) * Real(spectrum.lambda[i]) * Real(spectrum.init[i]);
    out.initial_ = so * so * initial / 2;
  }
  if (merged.empty()) {
    out.gap_ = Real(1);
    return out;
  }
  const auto finish = [&](std::optional<Parts<Real>> parts) {
    if (!parts) return std::optional<SpectralLoss>{};
    out.modes_ = std::move(parts->modes);
    out.l_inf_ = parts->l_inf;
    out.l_inf_error_ = parts->l_inf_error;
    out.gap_ = parts->gap;
    out.radius_ = parts->radius;
    out.arcs_ = parts->arcs;
    out.evaluations_ = parts->evaluations;
    return std::optional<SpectralLoss>{std::move(out)};
  };
  if (m.k == 2 && !generic_k2_blocks.load()) {
    // The k = 2 fast path.
    K2Constants<Real> constants;
    if (spec) constants = k2_constants<Real>(make_method_exact(*spec));
    else constants = k2_constants<Real>(m);
    std::vector<Dir<Real, 3>> dirs;
    dirs.reserve(merged.size());
    for (std::size_t i = 0; i < merged.size(); ++i) {
      if ((i & 1023) == 0) throw_if_stopped();
      dirs.push_back(make_dir<Real>(m, constants, merged[i].lambda, merged[i].init, merged[i].weight, kb, ib));
    }
    return finish(circle_build<Real, 3>(dirs, sigma2, false, why));
  }
  // The generic block, formed in the wider precision W from the exact
  // coefficients when the method's row gives them.
  using W = Wider<Real>;
  WideMethod<W> wm;
  {
    bool have = false;
    if (spec) {
      try {
        wm = widen<W>(make_method_exact(*spec), W(0));
        have = true;
      } catch (const std::exception&) {
        have = false;
      }
    }
    if (!have) wm = widen<W>(m, convert_to<W>(epsilon<Real>()));
  }
  const Bd<W> kbw = rounded_once(W(noise.kurtosis) - 2), ibw = rounded_once(W(1) / W(noise.batch));
  const auto run = [&](auto kk) {
    constexpr int K = decltype(kk)::value;
    constexpr int M = K * (K + 1) / 2;
    std::vector<Dir<Real, M>> dirs;
    dirs.reserve(merged.size());
    for (std::size_t i = 0; i < merged.size(); ++i) {
      if ((i & 63) == 0) throw_if_stopped();
      dirs.push_back(make_dir_generic<Real, K>(wm, merged[i].lambda, merged[i].init, merged[i].weight, kbw, ibw,
                                               ib.v));
    }
    return finish(circle_build<Real, M>(dirs, sigma2, true, why));
  };
  if (m.k == 2) return run(std::integral_constant<int, 2>{});
  if (m.k == 3) return run(std::integral_constant<int, 3>{});
  return run(std::integral_constant<int, 4>{});
}

#define CESR_INSTANTIATE(Real)                                                                                 \
  template std::optional<SpectralLoss<Real>> SpectralLoss<Real>::build_blocks(const Spectrum&, const Method<Real>&, \
                                                                              const NoiseModel&, std::string*,      \
                                                                              const MethodSpec*);
CESR_FOR_EACH_REAL(CESR_INSTANTIATE)
#undef CESR_INSTANTIATE

}  // namespace cesr
