// Small helpers the library tests share: a registry method by name, and a
// method's coefficients handed to the dense oracle (tests/oracle.hpp, which
// itself includes nothing of the library).
#pragma once

#include "cesr/method.hpp"
#include "oracle.hpp"

#include <cmath>

namespace cesr_test {

/// The registry row `name` with lr and, unless NaN, momentum.
inline cesr::MethodSpec spec_of(const char* name, double lr, double momentum = std::nan("")) {
  cesr::MethodSpec m = cesr::method_spec(name, {{"lr", lr}});
  if (!std::isnan(momentum)) m.set("momentum", momentum);
  return m;
}

/// (P, q, r, o) of a method as the oracle's Coeffs, and its s0.
template <class Real>
oracle::Coeffs oracle_coeffs(const cesr::Method<Real>& m, oracle::Vec* s0 = nullptr) {
  oracle::Coeffs c{m.k, oracle::Mat(m.k, m.k), oracle::Vec(m.k), oracle::Vec(m.k), oracle::Vec(m.k)};
  if (s0) s0->resize(m.k);
  for (int a = 0; a < m.k; ++a) {
    for (int b = 0; b < m.k; ++b) c.P(a, b) = static_cast<oracle::Real>(m.P[a][b]);
    c.q(a) = static_cast<oracle::Real>(m.q[a]);
    c.r(a) = static_cast<oracle::Real>(m.r[a]);
    c.o(a) = static_cast<oracle::Real>(m.o[a]);
    if (s0) (*s0)(a) = static_cast<oracle::Real>(m.s0[a]);
  }
  return c;
}

}  // namespace cesr_test
