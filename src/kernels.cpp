// The O(d) kernels of src/kernels.hpp (the rate's, and the time step of
// Dynamics<double>) in three instruction sets with one result.
//
// Each kernel is written once on GCC vector types of W doubles and compiled
// for W = 2 (the x86-64 baseline, SSE2), W = 4 (AVX2) and W = 8 (AVX-512).
// The order of the sums does not depend on W: direction i of a chunk is added
// to lane i mod 8 of eight accumulators (a W-wide variant holds them in 8 / W
// registers), a short tail is padded to eight lanes and masked, and the lanes
// are combined in one fixed tree. The arithmetic is IEEE double in every
// variant, and this file is compiled with -ffp-contract=off (CMakeLists.txt):
// a contracted a b + c rounds once instead of twice, which would make the
// AVX2 and AVX-512 variants (which have FMA) differ from the baseline in the
// last bits. So all three give the same bits (tests/test_isa.cpp), the
// choice of instruction set changes only the time (bench/README.md), and the
// terms are the ones of the scalar formulas, rounded as before.
#include "kernels.hpp"

#include "cesr/isa.hpp"

#include <algorithm>
#include <atomic>
#include <limits>
#include <cstring>
#include <stdexcept>
#include <string>

namespace cesr {

namespace {

bool cpu_has(Isa isa) {
  switch (isa) {
    case Isa::Baseline: return true;
    case Isa::Avx2: return __builtin_cpu_supports("x86-64-v3");
    case Isa::Avx512: return __builtin_cpu_supports("x86-64-v4");
  }
  return false;
}

Isa widest() {
  if (cpu_has(Isa::Avx512)) return Isa::Avx512;
  if (cpu_has(Isa::Avx2)) return Isa::Avx2;
  return Isa::Baseline;
}

std::atomic<Isa>& selected() {
  static std::atomic<Isa> isa{widest()};
  return isa;
}

}  // namespace

std::string_view to_string(Isa isa) {
  switch (isa) {
    case Isa::Baseline: return "baseline";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
  }
  return "?";
}

bool isa_supported(Isa isa) { return cpu_has(isa); }
Isa best_isa() { return widest(); }
Isa kernel_isa() { return selected().load(std::memory_order_relaxed); }

void set_kernel_isa(Isa isa) {
  if (!cpu_has(isa))
    throw std::invalid_argument("set_kernel_isa: this CPU does not run the " + std::string(to_string(isa)) +
                                " kernels");
  selected().store(isa, std::memory_order_relaxed);
}

namespace kernels {

namespace {

constexpr int lanes = 8;

template <int W>
struct Vec {
  typedef double V __attribute__((vector_size(8 * W)));
};
// Conditions are selects on a comparison of doubles (`a > 0 ? x : y`), never
// integer mask vectors: GCC 12 turns those into scalar code for AVX-512, while
// a select compiles to a compare into a mask register and a blend.


/// S sums of the terms body(l, w, t, bad) over n directions, and the count of
/// directions the body marks rejected (bad = 1; else 0): direction i in lane
/// i mod 8, whatever W, then the lanes added in a fixed tree.
template <int S, int W>
struct Totals {
  double sum[S];
  int rejected;
};

template <int W, int S, class Body>
[[gnu::always_inline]] inline Totals<S, W> sum_lanes(const double* lambda, const double* w, std::size_t n,
                                                     const Body& body) {
  using V = typename Vec<W>::V;
  constexpr int P = lanes / W;  // registers per accumulator
  V acc[P][S], bad[P];
  for (int p = 0; p < P; ++p) {
    for (int s = 0; s < S; ++s) acc[p][s] = V{};
    bad[p] = V{};
  }
  V ones;
  for (int j = 0; j < W; ++j) ones[j] = 1.0;
  std::size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    for (int p = 0; p < P; ++p) {
      V l, wv = ones;
      std::memcpy(&l, lambda + i + p * W, sizeof l);
      if (w) std::memcpy(&wv, w + i + p * W, sizeof wv);
      V t[S], b;
      body(l, wv, t, b);
      for (int s = 0; s < S; ++s) acc[p][s] += t[s];
      bad[p] += b;
    }
  }
  if (i < n) {
    // The last n - i < 8 directions, padded with a copy of the last one and
    // masked out of the sums.
    double lpad[lanes], wpad[lanes];
    for (int j = 0; j < lanes; ++j) {
      const std::size_t k = i + j < n ? i + j : n - 1;
      lpad[j] = lambda[k];
      wpad[j] = w ? w[k] : 1.0;
    }
    const double count = static_cast<double>(n - i);
    for (int p = 0; p < P; ++p) {
      V l, wv, index;
      std::memcpy(&l, lpad + p * W, sizeof l);
      std::memcpy(&wv, wpad + p * W, sizeof wv);
      for (int j = 0; j < W; ++j) index[j] = static_cast<double>(p * W + j);
      V t[S], b;
      body(l, wv, t, b);
      const V zero{};
      for (int s = 0; s < S; ++s) acc[p][s] += index < count ? t[s] : zero;
      bad[p] += index < count ? b : zero;
    }
  }
  Totals<S, W> out;
  const auto lane = [&](int s, int j) { return acc[j / W][s][j % W]; };
  for (int s = 0; s < S; ++s)
    out.sum[s] = ((lane(s, 0) + lane(s, 1)) + (lane(s, 2) + lane(s, 3))) +
                 ((lane(s, 4) + lane(s, 5)) + (lane(s, 6) + lane(s, 7)));
  double rejected = 0;  // a count below 2^53: exact
  for (int p = 0; p < P; ++p)
    for (int j = 0; j < W; ++j) rejected += bad[p][j];
  out.rejected = static_cast<int>(std::min<double>(rejected, std::numeric_limits<int>::max()));
  return out;
}

// The bodies: the formulas of Secular::operator() and Secular::terms (k = 1,
// k = 2) and of secular_sensitivity in src/rate.cpp, operation for operation
// (same association, scalars broadcast where the scalar code had scalars).

template <int W>
[[gnu::always_inline]] inline SecularSums secular_k1_impl(const ConstantsK1& c, const double* lambda,
                                                          const double* w, std::size_t n, double x) {
  using V = typename Vec<W>::V;
  const bool weighted = w != nullptr;
  const auto body = [&](const V& l, const V& wv, V* t, V& bad) __attribute__((always_inline)) {
    const V y = c.tr_e + l * c.qr;
    const V u = l * l * c.ib;
    const V cc = y * (2.0 - y) - x;  // z - A^2
    const V chi = cc - c.kb * u * c.n;
    const V zero{}, one = zero + 1.0;
    bad = (cc > 0.0 ? zero : one) + (chi > 0.0 ? zero : one);  // !(cc > 0) | !(chi > 0), NaN included
    V h = u * c.n / chi;
    if (weighted) h *= wv;
    t[0] = h;
    t[1] = h / chi;  // d chi / dx = -1
  };
  const Totals<2, W> r = sum_lanes<W, 2>(lambda, w, n, body);
  return {r.sum[0], r.sum[1], r.rejected};
}

/// The quantities of Secular::terms for k = 2 (same operations).
template <int W>
struct PartsK2 {
  using V = typename Vec<W>::V;
  V s1, s0, dd, delta, tau, bq, q, n1, nv, above_det, u, dq, cc, chi;
};
template <int W>
[[gnu::always_inline]] inline PartsK2<W> parts_k2(const ConstantsK2& c, const typename Vec<W>::V& l, double x) {
  using V = typename Vec<W>::V;
  const double a0 = c.qr, b1 = c.b1, z = 1 - x;
  PartsK2<W> p;
  p.s1 = c.tr_e + l * c.qr;
  p.s0 = c.det_e + l * c.c_e;
  p.dd = c.omdp - l * c.b1;  // 1 - det A
  p.delta = 1.0 - p.dd;      // det A
  p.tau = 2.0 - p.s1;        // tr A
  p.bq = p.s1 * (p.s1 - 2.0) - 2.0 * p.s0;
  p.q = (x + p.bq) * x + p.s0 * (4.0 - 2.0 * p.s1 + p.s0);
  p.n1 = b1 * b1 + 2.0 * p.tau * a0 * b1 + p.delta * a0 * a0;
  const V nn = (a0 * a0 * z + p.n1) * z + p.delta * b1 * b1;
  const V zero{};
  p.nv = nn < 0.0 ? zero : nn;  // std::max(nn, 0)
  p.above_det = p.delta >= 0.0 ? p.dd - x : 2.0 - p.dd - x;
  p.u = l * l * c.ib;
  p.dq = 2 * x + p.bq;
  p.cc = (p.dd - x) * p.q;
  p.chi = p.cc - c.kb * p.u * p.nv;
  return p;
}

template <int W>
[[gnu::always_inline]] inline SecularSums secular_k2_impl(const ConstantsK2& c, const double* lambda,
                                                          const double* w, std::size_t n, double x) {
  using V = typename Vec<W>::V;
  const bool weighted = w != nullptr;
  const double a0 = c.qr, z = 1 - x;
  const auto body = [&](const V& l, const V& wv, V* t, V& bad) __attribute__((always_inline)) {
    const PartsK2<W> p = parts_k2<W>(c, l, x);
    const V &dd = p.dd, &q = p.q, &n1 = p.n1, &nv = p.nv, &u = p.u, &dq = p.dq, &chi = p.chi;
    const V zero{}, one = zero + 1.0;
    // Any failed condition rejects (NaN fails each of them).
    bad = (p.above_det > 0.0 ? zero : one) + (dq < 0.0 ? zero : one) + (q > 0.0 ? zero : one) +
          (chi > 0.0 ? zero : one);
    const V dn = -(2 * a0 * a0 * z + n1);
    const V dchi = (dd - x) * dq - q - c.kb * u * dn;
    const V h = u * nv / chi;
    const V dh = (u * dn - h * dchi) / chi;
    if (weighted) {
      t[0] = wv * h;
      t[1] = wv * dh;
    } else {
      t[0] = h;
      t[1] = dh;
    }
  };
  const Totals<2, W> r = sum_lanes<W, 2>(lambda, w, n, body);
  return {r.sum[0], r.sum[1], r.rejected};
}

template <int W>
[[gnu::always_inline]] inline std::array<double, 3> sensitivity_k1_impl(const ConstantsK1& c, const double* lambda,
                                                                         const double* w, std::size_t n, double x) {
  using V = typename Vec<W>::V;
  const auto body = [&](const V& l, const V& wv, V* t, V& bad) __attribute__((always_inline)) {
    const V y = c.tr_e + l * c.qr, u = l * l * c.ib;
    const V chi = y * (2.0 - y) - x - c.kb * u * c.n;
    const V h = u * c.n / chi;
    const V h_y = -wv * h * (2.0 - 2.0 * y) / chi;                  // through chi
    const V h_qr = wv * 2.0 * c.qr * u * (1.0 + c.kb * h) / chi;  // through n (numerator and self-noise)
    t[0] = h_y;
    t[1] = l * h_y;
    t[2] = h_qr;
    bad = V{};
  };
  const Totals<3, W> r = sum_lanes<W, 3>(lambda, w, n, body);
  return {r.sum[0], r.sum[1], r.sum[2]};
}

template <int W>
[[gnu::always_inline]] inline std::array<double, 8> sensitivity_k2_impl(const ConstantsK2& c, const double* lambda,
                                                                         const double* w, std::size_t n, double x) {
  using V = typename Vec<W>::V;
  const double tr_e = c.tr_e, det_e = c.det_e, c_e = c.c_e, a0 = c.qr, b1 = c.b1, omdp = c.omdp;
  const double kb = c.kb, ib = c.ib, z = 1 - x;
  const auto body = [&](const V& l, const V& wv, V* t, V& bad) __attribute__((always_inline)) {
    const V s1 = tr_e + l * a0, s0 = det_e + l * c_e, dd = omdp - l * b1;
    const V delta = 1.0 - dd, tau = 2.0 - s1;
    const V bq = s1 * (s1 - 2.0) - 2.0 * s0;
    const V q = (x + bq) * x + s0 * (4.0 - 2.0 * s1 + s0);
    const V n1 = b1 * b1 + 2.0 * tau * a0 * b1 + delta * a0 * a0;
    const V nn = (a0 * a0 * z + n1) * z + delta * b1 * b1;
    const V u = l * l * ib;
    const V chi = (dd - x) * q - kb * u * nn;
    const V h = u * nn / chi;
    // Partial derivatives of q, n and chi in (s1, s0, dd, a0, b1).
    const V q_s1 = x * (2.0 * s1 - 2.0) - 2.0 * s0;
    const V q_s0 = -2 * x + 4.0 - 2.0 * s1 + 2.0 * s0;
    const double n_s1 = z * (-2 * a0 * b1);
    const double n_dd = z * (-a0 * a0) - b1 * b1;
    const V n_a0 = 2 * a0 * z * z + z * (2.0 * tau * b1 + 2.0 * delta * a0);
    const V n_b1 = z * (2 * b1 + 2.0 * tau * a0) + 2.0 * delta * b1;
    const V kbu = kb * u;
    const V chi_s1 = (dd - x) * q_s1 - kbu * n_s1;
    const V chi_s0 = (dd - x) * q_s0;
    const V chi_dd = q - kbu * n_dd;
    const V chi_a0 = -kbu * n_a0;
    const V chi_b1 = -kbu * n_b1;
    // dh = (u dn - h dchi) / chi.
    const V h_s1 = (u * n_s1 - h * chi_s1) / chi;
    const V h_s0 = -h * chi_s0 / chi;
    const V h_dd = (u * n_dd - h * chi_dd) / chi;
    const V h_a0 = (u * n_a0 - h * chi_a0) / chi;
    const V h_b1 = (u * n_b1 - h * chi_b1) / chi;
    t[0] = wv * h_s1;
    t[1] = wv * l * h_s1;
    t[2] = wv * h_a0;
    t[3] = wv * h_s0;
    t[4] = wv * l * h_s0;
    t[5] = wv * h_dd;
    t[6] = wv * l * h_dd;
    t[7] = wv * h_b1;
    bad = V{};
  };
  const Totals<8, W> r = sum_lanes<W, 8>(lambda, w, n, body);
  std::array<double, 8> out;
  for (int s = 0; s < 8; ++s) out[s] = r.sum[s];
  return out;
}

/// Lane-wise sqrt (-fno-math-errno, CMakeLists.txt, lets it compile to the
/// vector instruction: a negative argument's lane is discarded by its caller).
template <int W>
[[gnu::always_inline]] inline typename Vec<W>::V lane_sqrt(const typename Vec<W>::V& v) {
  typename Vec<W>::V r;
  for (int j = 0; j < W; ++j) r[j] = __builtin_sqrt(v[j]);
  return r;
}

/// The smallest pole(l) over lambda[0..n) and its first index: per lane (a
/// lane moves only on a strictly smaller value, as the serial scan), then the
/// lanes' minima, ties to the smallest index.
template <int W, class Pole>
[[gnu::always_inline]] inline PoleMin pole_min(const double* lambda, std::size_t n, const Pole& pole) {
  using V = typename Vec<W>::V;
  constexpr int P = lanes / W;
  const double inf = __builtin_inf();
  V best[P], arg[P];
  for (int p = 0; p < P; ++p) {
    best[p] = V{} + inf;
    arg[p] = V{} - 1.0;
  }
  V offset;
  for (int j = 0; j < W; ++j) offset[j] = j;
  const auto take = [&](int p, const V& x, const V& index) __attribute__((always_inline)) {
    const V smaller = x < best[p] ? V{} + 1.0 : V{};
    best[p] = smaller > 0.0 ? x : best[p];
    arg[p] = smaller > 0.0 ? index : arg[p];
  };
  std::size_t i = 0;
  for (; i + lanes <= n; i += lanes)
    for (int p = 0; p < P; ++p) {
      V l;
      std::memcpy(&l, lambda + i + p * W, sizeof l);
      take(p, pole(l), offset + static_cast<double>(i + p * W));
    }
  for (; i < n; ++i) {  // the tail, one direction at a time in its lane
    const std::size_t r = i % lanes;
    V l{};
    l = l + lambda[i];
    const double x = pole(l)[0];
    const int p = static_cast<int>(r) / W, j = static_cast<int>(r) % W;
    if (x < best[p][j]) best[p][j] = x, arg[p][j] = static_cast<double>(i);
  }
  PoleMin out{inf, 0};
  double out_arg = -1;
  for (int p = 0; p < P; ++p)
    for (int j = 0; j < W; ++j) {
      const double x = best[p][j], a = arg[p][j];
      if (a < 0) continue;
      if (x < out.x || (x == out.x && (out_arg < 0 || a < out_arg))) out.x = x, out_arg = a;
    }
  if (out_arg >= 0) out.index = static_cast<std::size_t>(out_arg);
  return out;
}

template <int W>
[[gnu::always_inline]] inline PoleMin pole_min_k1_impl(const ConstantsK1& c, const double* lambda, std::size_t n) {
  using V = typename Vec<W>::V;
  // Secular::deterministic_pole, k = 1.
  return pole_min<W>(lambda, n, [&](const V& l) __attribute__((always_inline)) {
    const V y = c.tr_e + l * c.qr;
    V xm = y * (2.0 - y);
    if (c.kb > 0) xm -= c.kb * l * l * c.ib * c.qr * c.qr;
    return xm;
  });
}

template <int W>
[[gnu::always_inline]] inline PoleMin pole_min_k2_impl(const ConstantsK2& c, const double* lambda, std::size_t n) {
  using V = typename Vec<W>::V;
  // Secular::deterministic_pole, k = 2: both branches, the complex pair's where disc < 0.
  return pole_min<W>(lambda, n, [&](const V& l) __attribute__((always_inline)) {
    const V s1 = c.tr_e + l * c.qr;
    const V s0 = c.det_e + l * c.c_e;
    const V disc = s1 * s1 - 4 * s0;
    const V complex = c.omdp - l * c.b1;  // |mu|^2 = det A
    const V sq = lane_sqrt<W>(disc);
    const V qq = (s1 >= 0.0 ? s1 + sq : s1 - sq) / 2;
    const V zero{};
    const V y1 = qq;
    const V y2 = qq != 0.0 ? s0 / qq : zero;
    const V a = y1 * (2.0 - y1), b = y2 * (2.0 - y2);
    const V real = b < a ? b : a;  // std::min(a, b)
    return disc < 0.0 ? complex : real;
  });
}

template <int W>
[[gnu::always_inline]] inline std::size_t first_unaccepted_chi_k2_impl(const ConstantsK2& c, const double* lambda,
                                                                       std::size_t n, double x) {
  using V = typename Vec<W>::V;
  const auto fails = [&](const V& l) __attribute__((always_inline)) {
    const V chi = parts_k2<W>(c, l, x).chi;
    return chi > 0.0 ? V{} : V{} + 1.0;
  };
  // Blocks of 64 checked at once; the first failing one again lane by lane.
  constexpr std::size_t block = 64;
  std::size_t i = 0;
  for (; i + block <= n; i += block) {
    V any{};
    for (std::size_t k = 0; k < block; k += W) {
      V l;
      std::memcpy(&l, lambda + i + k, sizeof l);
      any += fails(l);
    }
    double count = 0;
    for (int j = 0; j < W; ++j) count += any[j];
    if (count > 0) break;
  }
  for (; i < n; ++i) {
    V l{};
    l = l + lambda[i];
    if (fails(l)[0] > 0) return i;
  }
  return n;
}

template <int W>
[[gnu::always_inline]] inline std::pair<double, double> min_max_impl(const double* v, std::size_t n) {
  using V = typename Vec<W>::V;
  V lo = V{} + v[0], hi = lo;
  std::size_t i = 0;
  for (; i + W <= n; i += W) {
    V x;
    std::memcpy(&x, v + i, sizeof x);
    lo = x < lo ? x : lo;
    hi = x > hi ? x : hi;
  }
  double a = v[0], b = v[0];
  for (int j = 0; j < W; ++j) a = lo[j] < a ? lo[j] : a, b = hi[j] > b ? hi[j] : b;
  for (; i < n; ++i) a = v[i] < a ? v[i] : a, b = v[i] > b ? v[i] : b;
  return {a, b};
}
std::pair<double, double> min_max_baseline(const double* v, std::size_t n) { return min_max_impl<2>(v, n); }
__attribute__((target("arch=x86-64-v3"))) std::pair<double, double> min_max_avx2(const double* v, std::size_t n) {
  return min_max_impl<4>(v, n);
}
__attribute__((target("arch=x86-64-v4"))) std::pair<double, double> min_max_avx512(const double* v, std::size_t n) {
  return min_max_impl<8>(v, n);
}

/// One time step over n directions, in place: the NS state arrays st[k], and
/// NT sums of the terms body(l, wl, s, t) (s the state, updated; t the
/// terms), direction i in lane i mod 8 whatever W, then the lanes added in the
/// tree of sum_lanes. A short tail is padded (with the last direction's
/// eigenvalue and a zero state), its results stored for the real directions
/// only and masked out of the sums.
template <int W, int NS, int NT, class Body>
[[gnu::always_inline]] inline std::array<double, NT> step_lanes(double* const* st, const double* lambda,
                                                                const double* wlam, std::size_t n,
                                                                const Body& body) {
  using V = typename Vec<W>::V;
  constexpr int P = lanes / W;
  V acc[P][NT];
  for (int p = 0; p < P; ++p)
    for (int t = 0; t < NT; ++t) acc[p][t] = V{};
  std::size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    for (int p = 0; p < P; ++p) {
      const std::size_t o = i + p * W;
      V l, wl{}, s[NS], t[NT];
      std::memcpy(&l, lambda + o, sizeof l);
      if (wlam) std::memcpy(&wl, wlam + o, sizeof wl);
      // Unrolled: a loop of copies compiles to a detour through the stack
      // (two 16-byte stores read back as one 32-byte load, which stalls).
#pragma GCC unroll 10
      for (int k = 0; k < NS; ++k) std::memcpy(&s[k], st[k] + o, sizeof l);
      body(l, wl, s, t);
#pragma GCC unroll 10
      for (int k = 0; k < NS; ++k) std::memcpy(st[k] + o, &s[k], sizeof l);
      for (int k = 0; k < NT; ++k) acc[p][k] += t[k];
    }
  }
  if (i < n) {
    const std::size_t m = n - i;
    double lpad[lanes], wpad[lanes], spad[NS][lanes];
    for (int j = 0; j < lanes; ++j) {
      const bool real = static_cast<std::size_t>(j) < m;
      const std::size_t k = real ? i + j : n - 1;
      lpad[j] = lambda[k];
      wpad[j] = wlam ? wlam[k] : 0.0;
      for (int e = 0; e < NS; ++e) spad[e][j] = real ? st[e][k] : 0.0;
    }
    const double count = static_cast<double>(m);
    for (int p = 0; p < P; ++p) {
      V l, wl, s[NS], t[NT], index;
      std::memcpy(&l, lpad + p * W, sizeof l);
      std::memcpy(&wl, wpad + p * W, sizeof wl);
#pragma GCC unroll 10
      for (int k = 0; k < NS; ++k) std::memcpy(&s[k], spad[k] + p * W, sizeof l);
      for (int j = 0; j < W; ++j) index[j] = static_cast<double>(p * W + j);
      body(l, wl, s, t);
#pragma GCC unroll 10
      for (int k = 0; k < NS; ++k) std::memcpy(spad[k] + p * W, &s[k], sizeof l);
      const V zero{};
      for (int k = 0; k < NT; ++k) acc[p][k] += index < count ? t[k] : zero;
    }
    for (std::size_t j = 0; j < m; ++j)
      for (int e = 0; e < NS; ++e) st[e][i + j] = spad[e][j];
  }
  std::array<double, NT> out;
  const auto lane = [&](int t, int j) { return acc[j / W][t][j % W]; };
  for (int t = 0; t < NT; ++t)
    out[t] = ((lane(t, 0) + lane(t, 1)) + (lane(t, 2) + lane(t, 3))) +
             ((lane(t, 4) + lane(t, 5)) + (lane(t, 6) + lane(t, 7)));
  return out;
}

// The bodies: Dynamics::step_k1 and step_k2 (src/dynamics.cpp) operation for
// operation (same association, the scalars broadcast).
template <int W>
[[gnu::always_inline]] inline StepSums step_k1_impl(const StepConstants& c, double* s, const double* lambda,
                                                    const double* wlam, std::size_t n) {
  using V = typename Vec<W>::V;
  const double p = c.p00, qr = c.qr00, rr = c.r2a, qq = c.qqa, ekb = c.ekb, coupling = c.coupling;
  const bool weighted = wlam != nullptr;
  double* st[1] = {s};
  const auto body = [=](const V& l, const V& wl, V* x, V* t) __attribute__((always_inline)) {
    const V A = p - l * qr;
    V nz;
    if (weighted) nz = l * (ekb * l * rr * x[0]) + wl * coupling;
    else nz = l * (ekb * l * rr * x[0] + coupling);
    const V an = A * A * x[0] + qq * nz;
    x[0] = an;
    t[0] = l * an;
  };
  const auto r = step_lanes<W, 1, 1>(st, lambda, wlam, n, body);
  return {r[0], r[0]};
}

template <int W, bool Same>
[[gnu::always_inline]] inline StepSums step_k2_body(const StepConstants& k, double* a, double* b, double* cc,
                                                    const double* lambda, const double* wlam, std::size_t n) {
  using V = typename Vec<W>::V;
  const bool weighted = wlam != nullptr;
  double* st[3] = {a, b, cc};
  constexpr int NT = Same ? 1 : 2;
  // By value: the state's stores could alias the constants' struct, so a body
  // that read them through a reference would reload them on every step.
  const StepConstants c = k;
  const auto body = [=](const V& l, const V& wl, V* x, V* t) __attribute__((always_inline)) {
    const V A00 = c.p00 - l * c.qr00, A01 = c.p01 - l * c.qr01;
    const V A10 = c.p10 - l * c.qr10, A11 = c.p11 - l * c.qr11;
    const V ai = x[0], bi = x[1], ci = x[2];
    const V z2 = c.r2a * ai + c.r2b * bi + c.r2c * ci;
    V nz;
    if (weighted) nz = l * (c.ekb * l * z2) + wl * c.coupling;
    else nz = l * (c.ekb * l * z2 + c.coupling);
    const V T00 = A00 * ai + A01 * bi, T01 = A00 * bi + A01 * ci;
    const V T10 = A10 * ai + A11 * bi, T11 = A10 * bi + A11 * ci;
    const V an = T00 * A00 + T01 * A01 + c.qqa * nz;
    const V bn = T10 * A00 + T11 * A01 + c.qqb * nz;
    const V cn = T10 * A10 + T11 * A11 + c.qqc * nz;
    x[0] = an;
    x[1] = bn;
    x[2] = cn;
    t[0] = l * (c.s2a * an + c.s2b * bn + c.s2c * cn);
    if constexpr (!Same) t[1] = l * (c.o2a * an + c.o2b * bn + c.o2c * cn);
  };
  const auto r = step_lanes<W, 3, NT>(st, lambda, wlam, n, body);
  if constexpr (Same) return {r[0], r[0]};
  else return {r[0], r[1]};
}

template <int W>
[[gnu::always_inline]] inline StepSums step_k2_impl(const StepConstants& c, double* a, double* b, double* cc,
                                                    const double* lambda, const double* wlam, std::size_t n,
                                                    bool same) {
  return same ? step_k2_body<W, true>(c, a, b, cc, lambda, wlam, n)
              : step_k2_body<W, false>(c, a, b, cc, lambda, wlam, n);
}

StepSums step_k1_baseline(const StepConstants& c, double* s, const double* l, const double* w, std::size_t n) {
  return step_k1_impl<2>(c, s, l, w, n);
}
__attribute__((target("arch=x86-64-v3"))) StepSums step_k1_avx2(const StepConstants& c, double* s, const double* l,
                                                                 const double* w, std::size_t n) {
  return step_k1_impl<4>(c, s, l, w, n);
}
__attribute__((target("arch=x86-64-v4"))) StepSums step_k1_avx512(const StepConstants& c, double* s,
                                                                   const double* l, const double* w, std::size_t n) {
  return step_k1_impl<8>(c, s, l, w, n);
}
StepSums step_k2_baseline(const StepConstants& c, double* a, double* b, double* cc, const double* l, const double* w,
                          std::size_t n, bool same) {
  return step_k2_impl<2>(c, a, b, cc, l, w, n, same);
}
__attribute__((target("arch=x86-64-v3"))) StepSums step_k2_avx2(const StepConstants& c, double* a, double* b,
                                                                 double* cc, const double* l, const double* w,
                                                                 std::size_t n, bool same) {
  return step_k2_impl<4>(c, a, b, cc, l, w, n, same);
}
__attribute__((target("arch=x86-64-v4"))) StepSums step_k2_avx512(const StepConstants& c, double* a, double* b,
                                                                   double* cc, const double* l, const double* w,
                                                                   std::size_t n, bool same) {
  return step_k2_impl<8>(c, a, b, cc, l, w, n, same);
}

// One entry per instruction set (the baseline is this file's default target).
#define CESR_KERNEL_VARIANTS(name, Ret, Consts)                                                               \
  Ret name##_baseline(const Consts& c, const double* l, const double* w, std::size_t n, double x) {          \
    return name##_impl<2>(c, l, w, n, x);                                                                     \
  }                                                                                                           \
  __attribute__((target("arch=x86-64-v3"))) Ret name##_avx2(const Consts& c, const double* l, const double* w, \
                                                            std::size_t n, double x) {                        \
    return name##_impl<4>(c, l, w, n, x);                                                                     \
  }                                                                                                           \
  __attribute__((target("arch=x86-64-v4"))) Ret name##_avx512(const Consts& c, const double* l,               \
                                                              const double* w, std::size_t n, double x) {     \
    return name##_impl<8>(c, l, w, n, x);                                                                     \
  }
CESR_KERNEL_VARIANTS(secular_k1, SecularSums, ConstantsK1)
CESR_KERNEL_VARIANTS(secular_k2, SecularSums, ConstantsK2)
using Sens1 = std::array<double, 3>;
using Sens2 = std::array<double, 8>;
CESR_KERNEL_VARIANTS(sensitivity_k1, Sens1, ConstantsK1)
CESR_KERNEL_VARIANTS(sensitivity_k2, Sens2, ConstantsK2)
#undef CESR_KERNEL_VARIANTS

#define CESR_POLE_VARIANTS(name, Consts)                                                                          \
  PoleMin name##_baseline(const Consts& c, const double* l, std::size_t n) { return name##_impl<2>(c, l, n); }    \
  __attribute__((target("arch=x86-64-v3"))) PoleMin name##_avx2(const Consts& c, const double* l, std::size_t n) { \
    return name##_impl<4>(c, l, n);                                                                                 \
  }                                                                                                                 \
  __attribute__((target("arch=x86-64-v4"))) PoleMin name##_avx512(const Consts& c, const double* l,                \
                                                                  std::size_t n) {                                  \
    return name##_impl<8>(c, l, n);                                                                                 \
  }
CESR_POLE_VARIANTS(pole_min_k1, ConstantsK1)
CESR_POLE_VARIANTS(pole_min_k2, ConstantsK2)
#undef CESR_POLE_VARIANTS

std::size_t first_unaccepted_chi_k2_baseline(const ConstantsK2& c, const double* l, std::size_t n, double x) {
  return first_unaccepted_chi_k2_impl<2>(c, l, n, x);
}
__attribute__((target("arch=x86-64-v3"))) std::size_t first_unaccepted_chi_k2_avx2(const ConstantsK2& c,
                                                                                     const double* l, std::size_t n,
                                                                                     double x) {
  return first_unaccepted_chi_k2_impl<4>(c, l, n, x);
}
__attribute__((target("arch=x86-64-v4"))) std::size_t first_unaccepted_chi_k2_avx512(const ConstantsK2& c,
                                                                                       const double* l,
                                                                                       std::size_t n, double x) {
  return first_unaccepted_chi_k2_impl<8>(c, l, n, x);
}

}  // namespace

#define CESR_KERNEL_DISPATCH(name, Ret, Consts)                                            \
  Ret name(const Consts& c, const double* l, const double* w, std::size_t n, double x) { \
    switch (kernel_isa()) {                                                              \
      case Isa::Avx512: return name##_avx512(c, l, w, n, x);                             \
      case Isa::Avx2: return name##_avx2(c, l, w, n, x);                                 \
      case Isa::Baseline: break;                                                         \
    }                                                                                    \
    return name##_baseline(c, l, w, n, x);                                               \
  }
CESR_KERNEL_DISPATCH(secular_k1, SecularSums, ConstantsK1)
CESR_KERNEL_DISPATCH(secular_k2, SecularSums, ConstantsK2)
CESR_KERNEL_DISPATCH(sensitivity_k1, Sens1, ConstantsK1)
CESR_KERNEL_DISPATCH(sensitivity_k2, Sens2, ConstantsK2)
#undef CESR_KERNEL_DISPATCH

#define CESR_POLE_DISPATCH(name, Consts)                                 \
  PoleMin name(const Consts& c, const double* l, std::size_t n) {       \
    switch (kernel_isa()) {                                             \
      case Isa::Avx512: return name##_avx512(c, l, n);                  \
      case Isa::Avx2: return name##_avx2(c, l, n);                      \
      case Isa::Baseline: break;                                        \
    }                                                                   \
    return name##_baseline(c, l, n);                                    \
  }
CESR_POLE_DISPATCH(pole_min_k1, ConstantsK1)
CESR_POLE_DISPATCH(pole_min_k2, ConstantsK2)
#undef CESR_POLE_DISPATCH

std::pair<double, double> min_max(const double* v, std::size_t n) {
  switch (kernel_isa()) {
    case Isa::Avx512: return min_max_avx512(v, n);
    case Isa::Avx2: return min_max_avx2(v, n);
    case Isa::Baseline: break;
  }
  return min_max_baseline(v, n);
}

StepSums step_k1(const StepConstants& c, double* s, const double* lambda, const double* wlam, std::size_t n) {
  switch (kernel_isa()) {
    case Isa::Avx512: return step_k1_avx512(c, s, lambda, wlam, n);
    case Isa::Avx2: return step_k1_avx2(c, s, lambda, wlam, n);
    case Isa::Baseline: break;
  }
  return step_k1_baseline(c, s, lambda, wlam, n);
}

StepSums step_k2(const StepConstants& c, double* a, double* b, double* cc, const double* lambda, const double* wlam,
                 std::size_t n, bool same_output) {
  switch (kernel_isa()) {
    case Isa::Avx512: return step_k2_avx512(c, a, b, cc, lambda, wlam, n, same_output);
    case Isa::Avx2: return step_k2_avx2(c, a, b, cc, lambda, wlam, n, same_output);
    case Isa::Baseline: break;
  }
  return step_k2_baseline(c, a, b, cc, lambda, wlam, n, same_output);
}

std::size_t first_unaccepted_chi_k2(const ConstantsK2& c, const double* l, std::size_t n, double x) {
  switch (kernel_isa()) {
    case Isa::Avx512: return first_unaccepted_chi_k2_avx512(c, l, n, x);
    case Isa::Avx2: return first_unaccepted_chi_k2_avx2(c, l, n, x);
    case Isa::Baseline: break;
  }
  return first_unaccepted_chi_k2_baseline(c, l, n, x);
}

}  // namespace kernels

}  // namespace cesr
