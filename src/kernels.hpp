// The O(d) double-precision kernels: the rate's, over one chunk of directions:
// the secular function g and its x-derivative (Secular<double> in
// src/rate.cpp) and the partial derivatives of g in the method's constants
// (secular_sensitivity), for k = 1 and k = 2, each in the instruction set
// kernel_isa() selects (include/cesr/isa.hpp). The formulas are the ones
// documented at Secular::terms and secular_sensitivity; every variant gives
// the same bits (src/kernels.cpp); and the time step of Dynamics<double> for
// k = 1 and k = 2.
#pragma once

#include <array>
#include <cstddef>
#include <utility>

namespace cesr::kernels {

/// The constants of a k = 1 method (Coefficients in src/rate.cpp): y = tr_e +
/// lambda qr, n = qr^2, kb = K - 2, ib = 1/B.
struct ConstantsK1 {
  double tr_e, qr, n, kb, ib;
};
/// The constants of a k = 2 method: sigma1 = tr_e + lambda qr, sigma0 = det_e
/// + lambda c_e, 1 - det A = omdp - lambda b1, a0 = qr.
struct ConstantsK2 {
  double tr_e, det_e, c_e, qr, b1, omdp, kb, ib;
};

struct SecularSums {
  double g = 0, dg = 0;
  int rejected = 0;  ///< directions not above their pole at x (or with a term of the wrong sign)
};

/// g and dg/dx at x summed over lambda[0..n) (weights w[0..n), or none when
/// w is null).
SecularSums secular_k1(const ConstantsK1& c, const double* lambda, const double* w, std::size_t n, double x);
SecularSums secular_k2(const ConstantsK2& c, const double* lambda, const double* w, std::size_t n, double x);

/// dg/d(y), dg/d(lambda y) through chi, and dg/dqr through n (k = 1), summed
/// over lambda[0..n).
std::array<double, 3> sensitivity_k1(const ConstantsK1& c, const double* lambda, const double* w, std::size_t n,
                                     double x);
/// The sums g_s1, g_ls1, g_a0, g_s0, g_ls0, g_dd, g_ldd, g_b1 of
/// secular_sensitivity (k = 2).
std::array<double, 8> sensitivity_k2(const ConstantsK2& c, const double* lambda, const double* w, std::size_t n,
                                     double x);

/// The smallest of the closed-form poles x_i = 1 - rho(M_i) (k = 2; for
/// k = 1 1 - rho(D_i)) over lambda[0..n) of Secular::deterministic_pole, and
/// the first index attaining it (the serial scan's answer: `index` stays 0
/// when no pole is below +infinity).
struct PoleMin {
  double x;
  std::size_t index;
};
PoleMin pole_min_k1(const ConstantsK1& c, const double* lambda, std::size_t n);
PoleMin pole_min_k2(const ConstantsK2& c, const double* lambda, std::size_t n);

/// The first i < n whose k = 2 block has !(chi_i(x) > 0) (Secular::terms's
/// chi), or n when there is none.
std::size_t first_unaccepted_chi_k2(const ConstantsK2& c, const double* lambda, std::size_t n, double x);

/// The smallest and the largest of v[0..n) (n >= 1; v without NaN).
std::pair<double, double> min_max(const double* v, std::size_t n);

/// One time step of the second-moment recursion in double (Dynamics::step_k1
/// and step_k2 in src/dynamics.cpp), in place on the state, with the formulas
/// documented there. Per direction the noise injected is
/// n = lambda (ekb lambda z + coupling), or lambda ekb lambda z + wlam coupling
/// on a weighted spectrum (wlam non-null), z = r^T S r.
struct StepConstants {
  // k = 1: p, qr, rr, qq (A = p - lambda qr, S' = A^2 S + qq n, z = rr S).
  // k = 2: P, q r^T, the weights of r^T S r (this step) and of r^T S r, o^T S o
  // (the next step's sums) on the entries (S00, S01, S11), and q q^T.
  double p00, p01, p10, p11;
  double qr00, qr01, qr10, qr11;
  double r2a, r2b, r2c, s2a, s2b, s2c, o2a, o2b, o2c;
  double qqa, qqb, qqc;
  double ekb, coupling;
};
/// The sums psi = sum lambda_i (s2 . S_i') and, unless `same_output` (k = 2:
/// o = r, the loss sum is psi), loss = sum lambda_i (o2 . S_i'); k = 1 returns
/// sum lambda_i S_i' in both. Direction i is added to lane i mod 8 whatever the
/// instruction set, so every variant gives the same bits.
struct StepSums {
  double psi = 0, loss = 0;
};
StepSums step_k1(const StepConstants& c, double* s, const double* lambda, const double* wlam, std::size_t n);
StepSums step_k2(const StepConstants& c, double* a, double* b, double* cc, const double* lambda, const double* wlam,
                 std::size_t n, bool same_output);

}  // namespace cesr::kernels
