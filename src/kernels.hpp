// The rate's O(d) double-precision kernels over one chunk of directions:
// the secular function g and its x-derivative (Secular<double> in
// src/rate.cpp) and the partial derivatives of g in the method's constants
// (secular_sensitivity), for k = 1 and k = 2, each in the instruction set
// kernel_isa() selects (include/cesr/isa.hpp). The formulas are the ones
// documented at Secular::terms and secular_sensitivity; every variant gives
// the same bits (src/kernels.cpp).
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

}  // namespace cesr::kernels
